/* kernels/grid.c: scale fusion's token moves (kernels.h, "token grids"):
 * gathering a window or a sub-lattice of the map (zero-padded tokens
 * replaced by the projections of a zero token), putting a sub-lattice's
 * results back, adding a window's attention to the tokens it covers with
 * their counts, and the average. Every token is moved or added by one
 * thread in a fixed order, so the bits never depend on the thread count. */
#include <string.h>
#include "kernels/kernels.h"

#define PAR_MIN ((size_t)1 << 16)

void fs_grid_gather(float *dst, const float *src, int src_row0, int fh, int fw, int c,
                    const fs_grid *g, const float *pad) {
    const int ny = g->ny, nx = g->nx;
#pragma omp parallel for schedule(static) num_threads(fs_threads_count()) \
    if ((size_t)ny * nx * c >= PAR_MIN)
    for (int i = 0; i < ny; i++) {
        const int y = g->y0 + i * g->dy;
        for (int j = 0; j < nx; j++) {
            const int x = g->x0 + j * g->dx;
            const float *s = y >= 0 && y < fh && x >= 0 && x < fw
                                 ? src + ((size_t)(y - src_row0) * fw + x) * c
                                 : pad;
            memcpy(dst + ((size_t)i * nx + j) * c, s, (size_t)c * sizeof(float));
        }
    }
}

void fs_grid_scatter(float *dst, int dst_row0, int fw, int c, const fs_grid *g,
                     const float *src) {
    for (int i = 0; i < g->ny; i++)
        for (int j = 0; j < g->nx; j++)
            memcpy(dst + ((size_t)(g->y0 + i * g->dy - dst_row0) * fw + g->x0 + j * g->dx) * c,
                   src + ((size_t)i * g->nx + j) * c, (size_t)c * sizeof(float));
}

static int imax(int a, int b) { return a > b ? a : b; }
static int imin(int a, int b) { return a < b ? a : b; }

void fs_window_add(float *out, float *cnt, int row0, int rows, int fw, int c, const fs_grid *g,
                   const float *o) {
    const int i0 = imax(0, row0 - g->y0), i1 = imin(g->ny, row0 + rows - g->y0);
    const int x_lo = imax(g->x0, 0), x_hi = imin(g->x0 + g->nx, fw);
    if (i0 >= i1) return;
#pragma omp parallel for schedule(static) num_threads(fs_threads_count()) \
    if ((size_t)(i1 - i0) * g->nx * c >= PAR_MIN)
    for (int i = i0; i < i1; i++) {
        const int y = g->y0 + i;
        for (int x = x_lo; x < x_hi; x++) {
            const size_t t = (size_t)(y - row0) * fw + x;
            const float *src = o + ((size_t)i * g->nx + (x - g->x0)) * c;
            float *d = out + t * c;
            for (int ch = 0; ch < c; ch++) d[ch] += src[ch];
            cnt[t] += 1.0f;
        }
    }
}

void fs_divide_counts(float *out, const float *cnt, size_t tokens, int c) {
#pragma omp parallel for schedule(static) num_threads(fs_threads_count()) \
    if (tokens * c >= PAR_MIN)
    for (size_t t = 0; t < tokens; t++)
        if (cnt[t] > 0.0f)
            for (int ch = 0; ch < c; ch++) out[t * c + ch] /= cnt[t];
}
