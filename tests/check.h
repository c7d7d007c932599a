/* A minimal check library for the test programs: each CHECK prints what
 * failed and where, the program's exit status is the failure count (capped). */
#ifndef FS_TESTS_CHECK_H
#define FS_TESTS_CHECK_H
#include <stdio.h>
#include <string.h>
#include <math.h>

static int check_failures = 0;
static int check_count = 0;

#define CHECK(cond, ...) do { \
    check_count++; \
    if (!(cond)) { \
        check_failures++; \
        fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
        fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); \
    } } while (0)

/* Returns the process exit status and prints the summary line. */
static inline int check_report(const char *name) {
    printf("%s: %d checks, %d failed\n", name, check_count, check_failures);
    return check_failures ? 1 : 0;
}
#endif
