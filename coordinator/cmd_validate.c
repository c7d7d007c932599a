/* freescale validate JOB.yaml [--set key=value ...]: reads the job exactly as
 * render will (same parser, same overrides, same checks) and prints the
 * resolved job, so a mistake costs a second here rather than a queue slot. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "coordinator/commands.h"
#include "core/core.h"
#include "jobs/jobs.h"

static int usage_error(const char *why) {
    if (why) fprintf(stderr, "freescale validate: %s\n", why);
    fprintf(stderr, "usage: freescale validate JOB.yaml [--set key=value ...]\n");
    return 2;
}

int cmd_validate(int argc, char **argv) {
    const char *path = NULL;
    /* the overrides are applied after the file, in command-line order */
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--set")) {
            if (i + 1 >= argc) return usage_error("--set needs key=value");
            i++;
        } else if (!strncmp(argv[i], "--set=", 6)) {
            continue;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "freescale validate: unknown option '%s'\n", argv[i]);
            return usage_error(NULL);
        } else if (path) {
            return usage_error("one job file at a time");
        } else {
            path = argv[i];
        }
    }
    if (!path) return usage_error("no job file given");
    fs_job *job = malloc(sizeof *job);  /* ~12 KB: off the stack */
    if (!job) { fprintf(stderr, "freescale validate: out of memory\n"); return 1; }
    fs_error err = {0};
    fs_code rc = fs_job_load(path, job, &err);
    for (int i = 0; !rc && i < argc; i++) {
        if (!strcmp(argv[i], "--set")) rc = fs_job_set(job, argv[++i], &err);
        else if (!strncmp(argv[i], "--set=", 6)) rc = fs_job_set(job, argv[i] + 6, &err);
    }
    if (!rc) rc = fs_job_validate(job, &err);
    if (rc) {
        fprintf(stderr, "%s\n", err.msg);
        free(job);
        return 1;
    }
    size_t need = fs_job_to_yaml(job, NULL, 0);
    char *text = malloc(need + 1);
    if (!text) { fprintf(stderr, "freescale validate: out of memory\n"); free(job); return 1; }
    fs_job_to_yaml(job, text, need + 1);
    printf("%s: ok\n%s", path, text);
    free(text);
    free(job);
    return 0;
}
