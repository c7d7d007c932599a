/* A minimal check library for the test programs: each CHECK prints what
 * failed and where, the program's exit status is the failure count (capped). */
#ifndef FS_TESTS_CHECK_H
#define FS_TESTS_CHECK_H
#include <stdio.h>
#include <string.h>
#include <math.h>
#include <stdlib.h>

static int check_failures = 0;
static int check_count = 0;

#define CHECK(cond, ...) do { \
    check_count++; \
    if (!(cond)) { \
        check_failures++; \
        fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
        fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); \
    } } while (0)

/* A whole file's bytes (malloc'ed; NULL if it cannot be opened). */
static inline unsigned char *check_slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(n > 0 ? (size_t)n : 1);
    *len = b ? fread(b, 1, n > 0 ? (size_t)n : 0, f) : 0;
    fclose(f);
    return b;
}

/* Returns the process exit status and prints the summary line. */
static inline int check_report(const char *name) {
    printf("%s: %d checks, %d failed\n", name, check_count, check_failures);
    return check_failures ? 1 : 0;
}
#endif
