/* libFuzzer target for the job reader (jobs/): any byte string must either
 * be refused with a message that starts "fuzz.yaml:LINE:COL: ", or give a
 * job that passes fs_job_validate and whose fs_job_to_yaml text reads back
 * to the same bytes. An input that starts with "--set " is instead one
 * fs_job_set assignment on a parsed job: refused with "--set" and the job
 * untouched, or applied and then held to the same checks, except that the
 * bounds that depend on steps (restart_step < steps, dilate_tau <= steps)
 * are fs_job_validate's after all overrides: a --set of one of those two
 * may leave a job that validate refuses, naming that key.
 * fuzz-sources: jobs/jobs.c jobs/job_keys.c jobs/job_read.c jobs/job_text.c jobs/yaml_doc.c
 * fuzz-libs: -lyaml -lm */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "jobs/jobs.h"

static fs_job job, before, back;
static char yaml[64 * 1024];

/* "fuzz.yaml:" then digits ':' digits ": " */
static int has_position(const char *msg) {
    const char *p = msg + strlen("fuzz.yaml:");
    if (strncmp(msg, "fuzz.yaml:", strlen("fuzz.yaml:"))) return 0;
    for (int part = 0; part < 2; part++) {
        if (*p < '1' || *p > '9') return 0;
        while (*p >= '0' && *p <= '9') p++;
        if (*p++ != ':') return 0;
    }
    return *p == ' ';
}

static void round_trip(void) {
    fs_error err;
    if (fs_job_validate(&job, &err) != FS_OK) abort();
    size_t n = fs_job_to_yaml(&job, yaml, sizeof yaml);
    if (n >= sizeof yaml || strlen(yaml) != n) abort();
    if (fs_job_parse(yaml, n, job.source, NULL, &back, &err) != FS_OK) abort();
    if (memcmp(&job, &back, sizeof job) != 0) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fs_error err;
    memset(&err, 0, sizeof err);
    if (size >= 6 && !memcmp(data, "--set ", 6)) {
        char *a = malloc(size - 6 + 1);
        if (!a) return 0;
        memcpy(a, data + 6, size - 6);
        a[size - 6] = 0;  /* argv strings end at their first NUL */
        if (fs_job_parse("prompt: p\nsize: [512, 768]\n", 27, "fuzz.yaml", NULL, &job, &err)) abort();
        memcpy(&before, &job, sizeof job);
        fs_code rc = fs_job_set(&job, a, &err);
        int restart = !strncmp(a, "restart_step=", 13), tau = !strncmp(a, "dilate_tau=", 11);
        free(a);
        if (rc != FS_OK) {
            if (strncmp(err.msg, "--set", 5) || memchr(err.msg, 0, sizeof err.msg) == NULL) abort();
            if (memcmp(&job, &before, sizeof job) != 0) abort();  /* a failed --set changes nothing */
            return 0;
        }
        if ((restart || tau) && (rc = fs_job_validate(&job, &err)) != FS_OK) {
            /* only that bound may fail, and then the rest must hold: put it back */
            const char *want = restart ? "fuzz.yaml: restart_step: " : "fuzz.yaml: dilate_tau: ";
            if (rc != FS_ERR_RANGE || strncmp(err.msg, want, strlen(want))) abort();
            if (restart) job.restart_step = before.restart_step;
            else job.dilate_tau = before.dilate_tau;
        }
        round_trip();
        return 0;
    }
    fs_code rc = fs_job_parse((const char *)data, size, "fuzz.yaml", NULL, &job, &err);
    if (rc != FS_OK) {
        if (memchr(err.msg, 0, sizeof err.msg) == NULL || !has_position(err.msg)) abort();
        return 0;
    }
    round_trip();
    return 0;
}
