/* Op cases: SiLU, erf GELU, quick GELU, GEGLU (kernels/pointwise.c) and the
 * fast exp/erf they are built on (kernels/fastmath.h). Fast against reference
 * on random inputs of many sizes (odd ones, several OpenMP chunks); bit
 * identity in place vs out of place, for 1 vs 3 threads, and for an array
 * computed in two pieces vs whole. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "kernels/kernels.h"
#include "kernels/fastmath.h"
#include "ops/ops_harness.h"

typedef void (*unary_fn)(const float *, float *, size_t);

static const struct {
    const char *name;
    unary_fn ref, fast;
    double tol;
} unary_ops[] = {
    {"silu", fs_silu_ref, hb_silu, 1e-6},
    {"gelu", fs_gelu_ref, hb_gelu, 1e-6},
    {"quick_gelu", fs_quick_gelu_ref, hb_quick_gelu, 1e-6},
};

static void unary_case(int op, size_t n, float lo, float hi) {
    char shape[96], name[64];
    snprintf(shape, sizeof shape, "n=%zu range [%g, %g)", n, lo, hi);
    float *x = harness_random(n, lo, hi);
    /* The error is measured against the largest output. In a tiny array a lone
     * very negative input would set that scale, where float GELU's relative
     * error is unbounded (1 + erf cancels; PyTorch's float GELU too): pin one
     * large value. */
    if (n < 16) x[0] = 0.75f * hi;
    float *ref = fs_alloc(n * sizeof(float)), *fast = fs_alloc(n * sizeof(float));
    float *other = fs_alloc(n * sizeof(float));
    unary_ops[op].ref(x, ref, n);
    unary_ops[op].fast(x, fast, n);
    harness_compare(unary_ops[op].name, shape, ref, fast, n, unary_ops[op].tol);

    /* in place */
    memcpy(other, x, n * sizeof(float));
    unary_ops[op].fast(other, other, n);
    snprintf(name, sizeof name, "%s in-place", unary_ops[op].name);
    harness_identical(name, shape, fast, other, n);

    /* two pieces at a random cut, one thread vs three */
    size_t cut = (size_t)harness_int(0, (int)n);
    int saved = fs_threads_count();
    fs_threads_init(1);
    unary_ops[op].fast(x, other, cut);
    fs_threads_init(3);
    unary_ops[op].fast(x + cut, other + cut, n - cut);
    fs_threads_init(saved);
    snprintf(name, sizeof name, "%s split/threads", unary_ops[op].name);
    harness_identical(name, shape, fast, other, n);
    fs_free(x);
    fs_free(ref);
    fs_free(fast);
    fs_free(other);
}

/* fs_fast_expf's relative error and fs_fast_erff's absolute error on dense
 * grids, measured against double libm. */
static void fastmath_cases(void) {
    size_t n = 200001;
    float *ones = fs_alloc(n * sizeof(float)), *ratio = fs_alloc(n * sizeof(float));
    float *ref = fs_alloc(n * sizeof(float)), *fast = fs_alloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) {
        float v = -87.0f + 175.0f * (float)i / (float)(n - 1);
        ones[i] = 1.0f;
        ratio[i] = (float)((double)fs_fast_expf(v) / exp((double)v));
    }
    harness_compare("fast_expf (relative)", "grid [-87, 88]", ones, ratio, n, 5e-7);
    for (size_t i = 0; i < n; i++) {
        float v = -6.0f + 12.0f * (float)i / (float)(n - 1);
        ref[i] = (float)erf((double)v);
        fast[i] = fs_fast_erff(v);
    }
    harness_compare("fast_erff", "grid [-6, 6]", ref, fast, n, 5e-7);
    /* small arguments: relative accuracy near 0 matters for GELU's slope */
    for (size_t i = 0; i < n; i++) {
        float v = 1e-3f * ((float)i / (float)(n - 1) - 0.5f);
        ref[i] = (float)erf((double)v);
        fast[i] = fs_fast_erff(v);
    }
    harness_compare("fast_erff", "grid [-5e-4, 5e-4]", ref, fast, n, 5e-7);
    /* the activations at the ends of float's exp range stay finite and exact */
    float ends[6] = {-1e4f, -200.0f, -90.0f, 90.0f, 200.0f, 1e4f}, e_ref[6], e_fast[6];
    fs_silu_ref(ends, e_ref, 6);
    fs_silu(ends, e_fast, 6);
    harness_compare("silu", "extreme inputs", e_ref, e_fast, 6, 1e-6);
    fs_gelu_ref(ends, e_ref, 6);
    fs_gelu(ends, e_fast, 6);
    harness_compare("gelu", "extreme inputs", e_ref, e_fast, 6, 1e-6);
    fs_free(ones);
    fs_free(ratio);
    fs_free(ref);
    fs_free(fast);
}

static void geglu_case(size_t m, int d) {
    char shape[64];
    snprintf(shape, sizeof shape, "m=%zu d=%d", m, d);
    size_t nin = m * 2 * (size_t)d, nout = m * (size_t)d;
    float *x = harness_random(nin, -6.0f, 6.0f);
    if (nout < 16) x[0] = x[d] = 4.5f; /* a large output sets the scale, as in unary_case */
    float *ref = fs_alloc(nout * sizeof(float)), *fast = fs_alloc(nout * sizeof(float));
    float *inplace = fs_alloc(nin * sizeof(float));
    fs_geglu_ref(x, ref, m, d);
    hb_geglu(x, fast, m, d);
    harness_compare("geglu", shape, ref, fast, nout, 1e-6);
    if (harness_on_cpu()) { /* a device refuses it in place (y would overwrite x) */
        memcpy(inplace, x, nin * sizeof(float));
        fs_geglu(inplace, inplace, m, d);
        harness_identical("geglu in-place", shape, fast, inplace, nout);
    }
    int saved = fs_threads_count();
    fs_threads_init(1);
    hb_geglu(x, inplace, m, d);
    fs_threads_init(saved);
    harness_identical("geglu threads", shape, fast, inplace, nout);
    fs_free(x);
    fs_free(ref);
    fs_free(fast);
    fs_free(inplace);
}

void ops_cases_pointwise(void) {
    static const size_t sizes[] = {1, 7, 8, 9, 31, 1000, 16384, 16385, 70001};
    for (int op = 0; op < 3; op++)
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            unary_case(op, sizes[s], -8.0f, 8.0f);
            unary_case(op, sizes[s], -120.0f, 120.0f);
        }
    for (int op = 0; op < 3; op++)
        for (int i = 0; i < 4; i++) unary_case(op, (size_t)harness_int(1, 50000), -20.0f, 20.0f);
    if (harness_on_cpu()) fastmath_cases(); /* the CPU's fast exp and erf */
    geglu_case(1, 1);
    geglu_case(3, 5);
    geglu_case(77, 1280);
    for (int i = 0; i < 8; i++) geglu_case((size_t)harness_int(1, 64), harness_int(1, 700));
}
