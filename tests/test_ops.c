/* The one op harness: runs every group of op cases (tests/ops/ops_*.c) on
 * every backend compiled in (kernels.h's table: the CPU's, then CUDA's when
 * the build has it and a device answers; without one its cases are
 * skipped), each op against its reference on fresh random inputs, and
 * prints one line per op and backend with the case count and the worst
 * normalised error. An op a backend lacks is listed as unsupported there. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "ops/ops_harness.h"

uint64_t harness_seed;
static uint64_t rng_index;

typedef struct { char op[64]; int cases, failed, unsupported; double worst, tol; } op_stat;
static op_stat stats[256];
static int nstats;

/* Device ops are not bit-identical to the CPU's (other summation orders):
 * the former test_cuda's bound, 1e-5 of the largest reference value, at least. */
#define DEVICE_TOL 1e-5

static op_stat *stat_for(const char *op, double tol) {
    char name[64];
    if (harness_on_cpu()) snprintf(name, sizeof name, "%s", op);
    else snprintf(name, sizeof name, "%s %s", harness_be->name, op);
    for (int i = 0; i < nstats; i++)
        if (!strcmp(stats[i].op, name)) return &stats[i];
    if (nstats == 256) { fprintf(stderr, "too many ops\n"); exit(2); }
    op_stat *s = &stats[nstats++];
    snprintf(s->op, sizeof s->op, "%s", name);
    s->tol = tol;
    return s;
}

/* ops_backend.c: what the last op call left (0 ran, 1 unsupported, 2 failed). */
int hb_take_pending(void);

/* Consumes the last op's status for a comparison of op: -1 when the values
 * are to be compared, else the comparison's result (1 passed: skipped as
 * unsupported; 0 failed: the op failed). */
static int op_status(op_stat *s, const char *shape) {
    switch (hb_take_pending()) {
    case 1:
        s->unsupported++;
        return 1;
    case 2:
        s->cases++;
        s->failed++;
        fprintf(stderr, "FAIL %s [%s]: the op failed on %s\n", s->op, shape, harness_be->name);
        return 0;
    default: return -1;
    }
}

void harness_fill(float *x, size_t n, float lo, float hi) {
    for (size_t i = 0; i < n; i++)
        x[i] = lo + (hi - lo) * (float)fs_rng_uniform(harness_seed, 1, rng_index++);
}

float *harness_random(size_t n, float lo, float hi) {
    float *x = fs_alloc((n ? n : 1) * sizeof(float));
    if (!x) { fprintf(stderr, "out of memory\n"); exit(2); }
    harness_fill(x, n, lo, hi);
    return x;
}

int harness_int(int lo, int hi) {
    return (int)fs_rng_randint(harness_seed, 2, rng_index++, lo, hi);
}

int harness_compare(const char *op, const char *shape, const float *ref, const float *fast,
                    size_t n, double tol) {
    if (!harness_on_cpu() && tol < DEVICE_TOL) tol = DEVICE_TOL;
    op_stat *s = stat_for(op, tol);
    int st = op_status(s, shape);
    if (st >= 0) return st;
    double maxref = 0, maxdiff = 0, l2d = 0, l2r = 0;
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        double r = ref[i], f = fast[i];
        if (isfinite(r) && !isfinite(f)) bad = 1;
        double d = fabs(f - r);
        if (d > maxdiff) maxdiff = d;
        if (fabs(r) > maxref) maxref = fabs(r);
        l2d += d * d; l2r += r * r;
    }
    double err = maxref > 0 ? maxdiff / maxref : maxdiff;
    double rel2 = l2r > 0 ? sqrt(l2d / l2r) : sqrt(l2d);
    s->cases++;
    if (err > s->worst) s->worst = err;
    if (bad || !(err <= tol) || maxref == 0) {
        s->failed++;
        fprintf(stderr, "FAIL %s [%s]: normalised error %.3g (tol %.3g), rel L2 %.3g%s%s\n", s->op,
                shape, err, tol, rel2, bad ? ", non-finite output" : "",
                maxref == 0 ? ", reference is all zero (useless case)" : "");
        return 0;
    }
    return 1;
}

int harness_identical(const char *op, const char *shape, const float *a, const float *b,
                      size_t n) {
    op_stat *s = stat_for(op, 0);
    int st = op_status(s, shape);
    if (st >= 0) return st;
    s->cases++;
    if (memcmp(a, b, n * sizeof(float))) {
        size_t i = 0;
        while (i < n && !memcmp(&a[i], &b[i], sizeof(float))) i++;
        s->failed++;
        fprintf(stderr, "FAIL %s [%s]: not bit-identical (first difference at %zu: %.9g vs %.9g)\n",
                s->op, shape, i, a[i], b[i]);
        return 0;
    }
    return 1;
}

static void run_groups(void) {
    void (*groups[])(void) = {ops_cases_linear, ops_cases_conv,      ops_cases_attention,
                              ops_cases_norm,   ops_cases_pointwise, ops_cases_resize,
                              ops_cases_blur,   ops_cases_embedding, ops_cases_freeu,
                              ops_cases_glue,   ops_cases_grid,      ops_cases_steps};
    for (size_t i = 0; i < sizeof groups / sizeof groups[0]; i++) groups[i]();
}

int main(void) {
    const char *env = getenv("FS_TEST_SEED");
    harness_seed = env ? strtoull(env, NULL, 0) : (uint64_t)time(NULL) ^ ((uint64_t)clock() << 32);
    printf("test_ops: seed %" PRIu64 " (replay with FS_TEST_SEED=%" PRIu64 ")\n", harness_seed,
           harness_seed);
    fs_threads_init(0);
    harness_be = fs_backend_cpu();
    run_groups();

    /* the CUDA backend, on a device if there is one */
    char why[256];
    fs_cuda *cu = NULL;
    fs_error err = {0};
    if (!fs_cuda_available(why, sizeof why)) {
        printf("test_ops: cuda backend skipped: %s\n", why);
    } else if (fs_cuda_open(&cu, 0, (size_t)512 << 20, &err) != FS_OK) {
        fprintf(stderr, "test_ops: cuda: %s\n", err.msg);
        return 1;
    } else {
        printf("test_ops: cuda backend on %s\n", fs_cuda_device_name(cu));
        fs_backend cuda = fs_backend_cuda(cu);
        harness_be = &cuda;
        run_groups();
        harness_be = fs_backend_cpu();
        fs_cuda_close(cu);
    }

    int failed = 0, cases = 0;
    for (int i = 0; i < nstats; i++) {
        if (!stats[i].cases && stats[i].unsupported) {
            printf("  %-33s unsupported (%d cases skipped)\n", stats[i].op, stats[i].unsupported);
            continue;
        }
        printf("  %-33s %4d cases  worst %.3g (tol %.3g)  %s", stats[i].op, stats[i].cases,
               stats[i].worst, stats[i].tol, stats[i].failed ? "FAILED" : "ok");
        if (stats[i].unsupported) printf(" (%d unsupported)", stats[i].unsupported);
        printf("\n");
        failed += stats[i].failed;
        cases += stats[i].cases;
    }
    printf("test_ops: %d ops, %d cases, %d failed\n", nstats, cases, failed);
    return failed ? 1 : 0;
}
