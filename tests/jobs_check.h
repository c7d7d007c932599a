/* tests/jobs_check.h: what the jobs/ tests (test_jobs.c,
 * test_jobs_freescale.c) share: a fresh temp dir holding the files the jobs
 * name (model, noise, mask and input PNGs: jobs only checks that they
 * exist), parse-and-expect helpers that check an error's code AND every
 * needle of its message, and the round trip through fs_job_to_yaml. */
#ifndef FS_TESTS_JOBS_CHECK_H
#define FS_TESTS_JOBS_CHECK_H
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "check.h"
#include "jobs/jobs.h"

static inline double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static char tmpdir[512];   /* realpath of a fresh temp dir: the base_dir of every parse */
static fs_job job, job2;   /* ~12 KB each: static */

static inline void path_in(char *out, size_t cap, const char *name) {
    snprintf(out, cap, "%s/%s", tmpdir, name);
}

static inline void write_file(const char *name, const char *text, size_t len) {
    char p[1024];
    path_in(p, sizeof p, name);
    FILE *f = fopen(p, "wb");
    CHECK(f != NULL, "cannot write %s", p);
    if (!f) return;
    fwrite(text, 1, len, f);
    fclose(f);
}

static inline fs_code parse(const char *text, fs_error *err) {
    return fs_job_parse(text, strlen(text), "job.yaml", tmpdir, &job, err);
}

/* The error code and every needle (NULL-terminated) in the message. */
static inline void expect_msg(int line, fs_code rc, fs_code want, const fs_error *err, va_list ap) {
    CHECK(rc == want, "line %d: got %s, want %s: %s", line, fs_code_name(rc), fs_code_name(want),
          err->msg);
    for (const char *s; (s = va_arg(ap, const char *)) != NULL;)
        CHECK(strstr(err->msg, s) != NULL, "line %d: message \"%s\" lacks \"%s\"", line, err->msg, s);
}

static inline void expect_err_(int line, const char *text, fs_code want, ...) {
    fs_error err = {0};
    fs_code rc = parse(text, &err);
    va_list ap;
    va_start(ap, want);
    expect_msg(line, rc, want, &err, ap);
    va_end(ap);
}
#define EXPECT_ERR(text, code, ...) expect_err_(__LINE__, text, code, __VA_ARGS__, (const char *)NULL)

/* --set on a job that parsed; the job must be unchanged by a failed --set. */
static inline void expect_set_err_(int line, const char *assignment, fs_code want, ...) {
    fs_error err = {0};
    CHECK(parse("prompt: a\n", &err) == FS_OK, "%s", err.msg);
    memcpy(&job2, &job, sizeof job);
    fs_code rc = fs_job_set(&job, assignment, &err);
    va_list ap;
    va_start(ap, want);
    expect_msg(line, rc, want, &err, ap);
    va_end(ap);
    CHECK(memcmp(&job, &job2, sizeof job) == 0, "line %d: failed --set changed the job", line);
}
#define EXPECT_SET_ERR(a, code, ...) expect_set_err_(__LINE__, a, code, __VA_ARGS__, (const char *)NULL)

static inline void ok(int line, const char *text) {
    fs_error err = {0};
    fs_code rc = parse(text, &err);
    CHECK(rc == FS_OK, "line %d: %s", line, err.msg);
}
#define OK(text) ok(__LINE__, text)

/* parse -> to_yaml -> parse must give the same bytes. */
static inline void round_trip(int line, const char *text) {
    static char yaml[64 * 1024];
    fs_error err = {0};
    fs_code rc = fs_job_parse(text, strlen(text), "rt.yaml", tmpdir, &job, &err);
    CHECK(rc == FS_OK, "line %d: %s", line, err.msg);
    if (rc) return;
    size_t n = fs_job_to_yaml(&job, yaml, sizeof yaml);
    CHECK(n < sizeof yaml && strlen(yaml) == n, "line %d: %zu", line, n);
    rc = fs_job_parse(yaml, n, "rt.yaml", "/nonexistent", &job2, &err);
    CHECK(rc == FS_OK, "line %d: %s\n%s", line, err.msg, yaml);
    CHECK(memcmp(&job, &job2, sizeof job) == 0, "line %d: round trip differs:\n%s", line, yaml);
}

static const char *const jobs_files[] = {"m.safetensors", "noise.safetensors", "mask.png", "in.png"};
static const char *const jobs_dirs[] = {"models", "sdxl"};

/* A fresh temp dir (its realpath in tmpdir) with the files above; 0 on success. */
static inline int jobs_setup(void) {
    char t[] = "/tmp/fs_test_jobs_XXXXXX", p[1024];
    if (!mkdtemp(t)) { perror("mkdtemp"); return 1; }
    char *real = realpath(t, NULL);
    if (!real) { perror("realpath"); return 1; }
    snprintf(tmpdir, sizeof tmpdir, "%s", real);
    free(real);
    for (size_t i = 0; i < sizeof jobs_files / sizeof *jobs_files; i++)
        write_file(jobs_files[i], "x", 1);
    for (size_t i = 0; i < sizeof jobs_dirs / sizeof *jobs_dirs; i++) {
        path_in(p, sizeof p, jobs_dirs[i]);
        mkdir(p, 0755);
    }
    return 0;
}

/* Removes what jobs_setup made, and extra (NULL-terminated) files a test wrote. */
static inline void jobs_cleanup(const char *const *extra) {
    char p[1024];
    for (size_t i = 0; i < sizeof jobs_files / sizeof *jobs_files; i++) {
        path_in(p, sizeof p, jobs_files[i]);
        unlink(p);
    }
    for (; extra && *extra; extra++) {
        path_in(p, sizeof p, *extra);
        unlink(p);
    }
    for (size_t i = 0; i < sizeof jobs_dirs / sizeof *jobs_dirs; i++) {
        path_in(p, sizeof p, jobs_dirs[i]);
        rmdir(p);
    }
    rmdir(tmpdir);
}
#endif
