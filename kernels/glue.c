/* kernels/glue.c: the elementwise steps between the networks' ops (kernels.h,
 * "glue"): residual adds, the fusion's difference, the time embedding's
 * broadcast, the skip concatenation, FreeU's backbone scaling and the tiny
 * embedding products. Each output element is one fixed sequence of float
 * operations whatever the thread count, so the bits never depend on it. */
#include <string.h>
#include "kernels/kernels.h"

/* Element loops smaller than this run on the calling thread: a parallel
 * region costs more than it saves there, and far more on a busy machine
 * where a team member may be descheduled. (Elementwise: no effect on bits.) */
#define PAR_MIN ((size_t)1 << 16)

void fs_add(float *y, const float *x, size_t count) {
#pragma omp parallel for schedule(static) num_threads(fs_threads_count()) if (count >= PAR_MIN)
    for (size_t i = 0; i < count; i++) y[i] += x[i];
}

void fs_sub(float *y, const float *x, size_t count) {
#pragma omp parallel for schedule(static) num_threads(fs_threads_count()) if (count >= PAR_MIN)
    for (size_t i = 0; i < count; i++) y[i] -= x[i];
}

void fs_add_bcast(float *y, const float *v, int n, size_t pixels, int c) {
#pragma omp parallel for schedule(static) num_threads(fs_threads_count()) \
    if ((size_t)n * pixels * c >= PAR_MIN)
    for (size_t bp = 0; bp < (size_t)n * pixels; bp++) {
        const float *vb = v + (bp / pixels) * (size_t)c;
        float *yp = y + bp * (size_t)c;
        for (int ch = 0; ch < c; ch++) yp[ch] += vb[ch];
    }
}

void fs_concat(const float *a, int ca, const float *s, int cs, float *y, size_t pixels) {
    const size_t cy = (size_t)ca + (size_t)cs;
#pragma omp parallel for schedule(static) num_threads(fs_threads_count()) \
    if (pixels * cy >= PAR_MIN)
    for (size_t p = 0; p < pixels; p++) {
        memcpy(y + p * cy, a + p * (size_t)ca, (size_t)ca * sizeof(float));
        memcpy(y + p * cy + ca, s + p * (size_t)cs, (size_t)cs * sizeof(float));
    }
}

void fs_scale_channels(float *x, size_t pixels, int c, int first, float b) {
    if (first <= 0) return;
#pragma omp parallel for schedule(static) num_threads(fs_threads_count()) \
    if (pixels * (size_t)first >= PAR_MIN)
    for (size_t p = 0; p < pixels; p++) {
        float *xp = x + p * (size_t)c;
        for (int ch = 0; ch < first; ch++) xp[ch] *= b;
    }
}

void fs_small_linear(const float *x, float *y, int m, int k, int nout, const float *w,
                     const float *bias) {
#pragma omp parallel for schedule(static) num_threads(fs_threads_count()) \
    if ((size_t)m * nout * k >= PAR_MIN)
    for (int64_t ij = 0; ij < (int64_t)m * nout; ij++) {
        int i = (int)(ij / nout), j = (int)(ij % nout);
        const float *xr = x + (size_t)i * k, *wr = w + (size_t)j * k;
        double s = bias ? (double)bias[j] : 0.0;
        for (int p = 0; p < k; p++) s += (double)xr[p] * (double)wr[p];
        y[(size_t)i * nout + j] = (float)s;
    }
}
