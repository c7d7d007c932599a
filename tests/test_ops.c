/* The one op harness: runs every group of op cases (tests/ops/ops_*.c), each fast
 * op against its reference on fresh random inputs, and prints one line per
 * op with the case count and the worst normalised error. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "ops/ops_harness.h"

uint64_t harness_seed;
static uint64_t rng_index;

typedef struct { char op[64]; int cases, failed; double worst, tol; } op_stat;
static op_stat stats[128];
static int nstats;

static op_stat *stat_for(const char *op, double tol) {
    for (int i = 0; i < nstats; i++)
        if (!strcmp(stats[i].op, op)) return &stats[i];
    if (nstats == 128) { fprintf(stderr, "too many ops\n"); exit(2); }
    op_stat *s = &stats[nstats++];
    snprintf(s->op, sizeof s->op, "%s", op);
    s->tol = tol;
    return s;
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
    op_stat *s = stat_for(op, tol);
    s->cases++;
    if (err > s->worst) s->worst = err;
    if (bad || !(err <= tol) || maxref == 0) {
        s->failed++;
        fprintf(stderr, "FAIL %s [%s]: normalised error %.3g (tol %.3g), rel L2 %.3g%s%s\n", op,
                shape, err, tol, rel2, bad ? ", non-finite output" : "",
                maxref == 0 ? ", reference is all zero (useless case)" : "");
        return 0;
    }
    return 1;
}

int harness_identical(const char *op, const char *shape, const float *a, const float *b,
                      size_t n) {
    op_stat *s = stat_for(op, 0);
    s->cases++;
    if (memcmp(a, b, n * sizeof(float))) {
        size_t i = 0;
        while (i < n && !memcmp(&a[i], &b[i], sizeof(float))) i++;
        s->failed++;
        fprintf(stderr, "FAIL %s [%s]: not bit-identical (first difference at %zu: %.9g vs %.9g)\n",
                op, shape, i, a[i], b[i]);
        return 0;
    }
    return 1;
}

int main(void) {
    const char *env = getenv("FS_TEST_SEED");
    harness_seed = env ? strtoull(env, NULL, 0) : (uint64_t)time(NULL) ^ ((uint64_t)clock() << 32);
    printf("test_ops: seed %" PRIu64 " (replay with FS_TEST_SEED=%" PRIu64 ")\n", harness_seed,
           harness_seed);
    fs_threads_init(0);
    void (*groups[])(void) = {ops_cases_linear, ops_cases_conv, ops_cases_attention, ops_cases_norm,
                              ops_cases_pointwise, ops_cases_resize, ops_cases_blur,
                              ops_cases_embedding,
                              ops_cases_freeu};
    for (size_t i = 0; i < sizeof groups / sizeof groups[0]; i++) groups[i]();
    int failed = 0, cases = 0;
    for (int i = 0; i < nstats; i++) {
        printf("  %-28s %4d cases  worst %.3g (tol %.3g)  %s\n", stats[i].op, stats[i].cases,
               stats[i].worst, stats[i].tol, stats[i].failed ? "FAILED" : "ok");
        failed += stats[i].failed;
        cases += stats[i].cases;
    }
    printf("test_ops: %d ops, %d cases, %d failed\n", nstats, cases, failed);
    return failed ? 1 : 0;
}
