/* kernels/pointwise.c: elementwise activations (SiLU, erf GELU, quick GELU)
 * and GEGLU, each as a reference loop (double precision, libm) and a fast
 * version (OpenMP over fixed chunks, vectorised float with fastmath.h).
 *
 * Every element's value depends only on that element, and the fast code is
 * the same straight-line float arithmetic for every element, so results are
 * bit-identical for any thread count and any split of the array. */
#include <math.h>
#include "kernels/kernels.h"
#include "kernels/fastmath.h"

/* Elements per OpenMP work item: big enough to amortise scheduling, small
 * enough to balance. Only affects speed, never the bits. */
#define POINTWISE_CHUNK 16384

/* ---------------------------------------------------------------- references */

void fs_silu_ref(const float *x, float *y, size_t n) {
    for (size_t i = 0; i < n; i++) {
        double v = x[i];
        y[i] = (float)(v / (1.0 + exp(-v)));
    }
}

static double gelu_erf_double(double v) { return 0.5 * v * (1.0 + erf(v / sqrt(2.0))); }

void fs_gelu_ref(const float *x, float *y, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = (float)gelu_erf_double(x[i]);
}

void fs_quick_gelu_ref(const float *x, float *y, size_t n) {
    for (size_t i = 0; i < n; i++) {
        double v = x[i];
        y[i] = (float)(v / (1.0 + exp(-1.702 * v)));
    }
}

void fs_geglu_ref(const float *x, float *y, size_t m, int d) {
    /* Row order works in place (y == x): see fs_geglu. */
    for (size_t r = 0; r < m; r++) {
        const float *xr = x + r * 2 * (size_t)d;
        float *yr = y + r * (size_t)d;
        for (int j = 0; j < d; j++) {
            double a = xr[j], g = xr[d + j];
            yr[j] = (float)(a * gelu_erf_double(g));
        }
    }
}

/* ---------------------------------------------------------------- fast */

void fs_silu(const float *x, float *y, size_t n) {
    size_t chunks = (n + POINTWISE_CHUNK - 1) / POINTWISE_CHUNK;
#pragma omp parallel for schedule(static)
    for (size_t ci = 0; ci < chunks; ci++) {
        size_t lo = ci * POINTWISE_CHUNK, hi = lo + POINTWISE_CHUNK < n ? lo + POINTWISE_CHUNK : n;
        for (size_t i = lo; i < hi; i++) y[i] = fs_fast_silu(x[i]);
    }
}

void fs_gelu(const float *x, float *y, size_t n) {
    size_t chunks = (n + POINTWISE_CHUNK - 1) / POINTWISE_CHUNK;
#pragma omp parallel for schedule(static)
    for (size_t ci = 0; ci < chunks; ci++) {
        size_t lo = ci * POINTWISE_CHUNK, hi = lo + POINTWISE_CHUNK < n ? lo + POINTWISE_CHUNK : n;
        for (size_t i = lo; i < hi; i++) y[i] = fs_fast_gelu(x[i]);
    }
}

void fs_quick_gelu(const float *x, float *y, size_t n) {
    size_t chunks = (n + POINTWISE_CHUNK - 1) / POINTWISE_CHUNK;
#pragma omp parallel for schedule(static)
    for (size_t ci = 0; ci < chunks; ci++) {
        size_t lo = ci * POINTWISE_CHUNK, hi = lo + POINTWISE_CHUNK < n ? lo + POINTWISE_CHUNK : n;
        for (size_t i = lo; i < hi; i++) {
            float v = x[i];
            y[i] = v / (1.0f + fs_fast_expf(-1.702f * v));
        }
    }
}

/* In place (y == x) the output row r, y[r*d .. r*d+d), overlaps input rows
 * r/2 .. r: a row's inputs may already have been overwritten by an earlier
 * row. So in place runs sequentially in row order, where each output element
 * y[r*d+j] is written after both of its inputs x[2rd+j], x[2rd+d+j] (which lie
 * at or after it) were read, and nothing read later lies before it. */
void fs_geglu(const float *x, float *y, size_t m, int d) {
    size_t dd = (size_t)d;
    if (x == y) {
        for (size_t r = 0; r < m; r++) {
            const float *xr = x + r * 2 * dd;
            float *yr = y + r * dd;
            for (size_t j = 0; j < dd; j++) {
                float a = xr[j], g = xr[dd + j];
                yr[j] = a * fs_fast_gelu(g);
            }
        }
        return;
    }
#pragma omp parallel for schedule(static)
    for (size_t r = 0; r < m; r++) {
        const float *restrict xr = x + r * 2 * dd;
        float *restrict yr = y + r * dd;
        for (size_t j = 0; j < dd; j++) yr[j] = xr[j] * fs_fast_gelu(xr[dd + j]);
    }
}
