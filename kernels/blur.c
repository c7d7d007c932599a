/* kernels/blur.c: FreeScale's Gaussian low-pass used by scale fusion
 * (spec/freescale.md section 5): a normalised 1-D Gaussian g applied by
 * zero-padded correlation along a chosen set of axes of an NHWC map, with no
 * renormalisation at the borders:
 *   variant A = FS_BLUR_W | FS_BLUR_C (release code: conv2d with groups = h),
 *   variant B = FS_BLUR_H | FS_BLUR_W (per-channel spatial blur),
 *   variant C = all three (HEAD: conv3d over rows, columns and channels).
 * The reference sums the k^naxes taps of the outer-product kernel directly;
 * the fast version runs one 1-D pass per axis (H, then W, then C) for each
 * output row, so an output row's bits depend only on its global index and the
 * input rows, never on the strip or the thread that computes it. */
#include <math.h>
#include <omp.h>
#include "kernels/kernels.h"

/* Largest kernel (tap lists live on the stack); FreeScale uses 2s - 1 at
 * scale s: 15 at 8192^2, 31 at 16384^2. */
#define FS_BLUR_MAX_K 63

/* In double, rounded once to float (PyTorch builds it in float32; the two
 * differ by at most an ulp of each weight). */
static double gaussian_weight(int i, int k, float sigma) {
    double dx = i - (k - 1) / 2.0;
    return exp(-dx * dx / (2.0 * (double)sigma * (double)sigma));
}

void fs_gaussian_kernel1d(int k, float sigma, float *g) {
    double sum = 0.0;
    for (int i = 0; i < k; i++) sum += gaussian_weight(i, k, sigma);
    for (int i = 0; i < k; i++) g[i] = (float)(gaussian_weight(i, k, sigma) / sum);
}

static int blur_desc_ok(const fs_blur_desc *d) {
    return d->n > 0 && d->h > 0 && d->w > 0 && d->c > 0 && d->k > 0 && (d->k % 2) == 1 &&
           d->k <= FS_BLUR_MAX_K && d->axes > 0 &&
           (d->axes & ~(FS_BLUR_H | FS_BLUR_W | FS_BLUR_C)) == 0 && d->x_rows > 0 && d->y_rows > 0;
}

/* Value of global element (b, row, col, ch), zero outside the map or outside
 * the rows held. */
static double blur_at(const fs_blur_desc *d, const float *x, int b, int row, int col, int ch) {
    if (row < 0 || row >= d->h || col < 0 || col >= d->w || ch < 0 || ch >= d->c) return 0.0;
    int lr = row - d->x_row0;
    if (lr < 0 || lr >= d->x_rows) return 0.0;
    return x[(((size_t)b * d->x_rows + lr) * d->w + col) * d->c + ch];
}

void fs_blur_ref(const fs_blur_desc *d, const float *g, const float *x, float *y) {
    if (!blur_desc_ok(d)) return;
    int r = d->k / 2;
    int rh = d->axes & FS_BLUR_H ? r : 0, rw = d->axes & FS_BLUR_W ? r : 0;
    int rc = d->axes & FS_BLUR_C ? r : 0;
    for (int b = 0; b < d->n; b++)
        for (int oy = 0; oy < d->y_rows; oy++)
            for (int ox = 0; ox < d->w; ox++)
                for (int ch = 0; ch < d->c; ch++) {
                    int row = d->y_row0 + oy;
                    double acc = 0.0;
                    for (int i = -rh; i <= rh; i++)
                        for (int j = -rw; j <= rw; j++)
                            for (int l = -rc; l <= rc; l++) {
                                double wt = (rh ? (double)g[i + r] : 1.0) *
                                            (rw ? (double)g[j + r] : 1.0) *
                                            (rc ? (double)g[l + r] : 1.0);
                                acc += wt * blur_at(d, x, b, row + i, ox + j, ch + l);
                            }
                    y[(((size_t)b * d->y_rows + oy) * d->w + ox) * d->c + ch] = (float)acc;
                }
}

/* out[e] = sum over taps t of wts[t] * src[t][e], for e < len: each element
 * starts at 0 and adds its taps in the order given. Blocks of 32 outputs keep
 * their partial sums in four 8-float vector registers across the taps (one
 * load per tap and element, no load/store of partial sums); GCC's vector
 * extension does exactly the scalar IEEE operations, lane by lane (no FMA
 * under -ffp-contract=off), so the tail loop gives the same bits. */
typedef float fs_v8f __attribute__((vector_size(32), aligned(4)));
static void taps_run(float *restrict out, size_t len, const float *const *src, const float *wts,
                     int ntaps) {
    size_t e0 = 0;
    for (; e0 + 32 <= len; e0 += 32) {
        fs_v8f a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
        for (int t = 0; t < ntaps; t++) {
            const fs_v8f *p = (const fs_v8f *)(src[t] + e0);
            float wt = wts[t];
            a0 = a0 + wt * p[0];
            a1 = a1 + wt * p[1];
            a2 = a2 + wt * p[2];
            a3 = a3 + wt * p[3];
        }
        fs_v8f *o = (fs_v8f *)(out + e0);
        o[0] = a0;
        o[1] = a1;
        o[2] = a2;
        o[3] = a3;
    }
    for (; e0 + 8 <= len; e0 += 8) {
        fs_v8f a0 = {0};
        for (int t = 0; t < ntaps; t++) a0 = a0 + wts[t] * *(const fs_v8f *)(src[t] + e0);
        *(fs_v8f *)(out + e0) = a0;
    }
    for (; e0 < len; e0++) {
        float acc = 0.0f;
        for (int t = 0; t < ntaps; t++) acc += wts[t] * src[t][e0];
        out[e0] = acc;
    }
}

/* One 1-D pass along an axis of `count` positions, each a contiguous run of
 * `stride` floats (W: count = w, stride = c; C, per pixel: count = c,
 * stride = 1). Positions with all k taps in range go through one long
 * taps_run; the r at each end drop their out-of-range taps (zero padding). */
static void axis_pass(float *out, const float *in, int count, size_t stride, int k,
                      const float *g) {
    int r = k / 2;
    const float *src[64];
    float wts[64];
    for (int pos = 0; pos < count; pos++) {
        int interior = pos >= r && pos + r < count;
        if (interior) { /* the whole interior at once */
            int last = count - r; /* positions [pos, last) */
            for (int j = 0; j < k; j++) {
                src[j] = in + (size_t)(pos - r + j) * stride;
                wts[j] = g[j];
            }
            taps_run(out + (size_t)pos * stride, (size_t)(last - pos) * stride, src, wts, k);
            pos = last - 1;
            continue;
        }
        int nt = 0;
        for (int j = 0; j < k; j++) {
            int q = pos - r + j;
            if (q < 0 || q >= count) continue;
            src[nt] = in + (size_t)q * stride;
            wts[nt++] = g[j];
        }
        taps_run(out + (size_t)pos * stride, stride, src, wts, nt);
    }
}

/* One output row: H pass into t1 (or x's row itself), W pass into t2 (or t1),
 * C pass into out (or a copy). Every element starts at 0 and adds the
 * in-range taps in tap order, whichever path computes it. */
static void blur_row(const fs_blur_desc *d, const float *g, const float *x, int b, int row,
                     float *t1, float *t2, float *out) {
    int r = d->k / 2, k = d->k, w = d->w, c = d->c;
    size_t row_len = (size_t)w * c;
    const float *src;
    if (d->axes & FS_BLUR_H) {
        const float *rows[64];
        float wts[64];
        int nt = 0;
        for (int i = 0; i < k; i++) {
            int gr = row - r + i;
            if (gr < 0 || gr >= d->h) continue; /* zero padding */
            rows[nt] = x + ((size_t)b * d->x_rows + (gr - d->x_row0)) * row_len;
            wts[nt++] = g[i];
        }
        taps_run(t1, row_len, rows, wts, nt);
        src = t1;
    } else {
        src = x + ((size_t)b * d->x_rows + (row - d->x_row0)) * row_len;
    }
    if (d->axes & FS_BLUR_W) {
        axis_pass(t2, src, w, (size_t)c, k, g);
        src = t2;
    }
    if (d->axes & FS_BLUR_C) {
        for (int col = 0; col < w; col++)
            axis_pass(out + (size_t)col * c, src + (size_t)col * c, c, 1, k, g);
    } else {
        for (size_t e = 0; e < row_len; e++) out[e] = src[e];
    }
}

fs_code fs_blur(const fs_blur_desc *d, const float *g, const float *x, float *y,
                fs_arena *scratch, fs_error *err) {
    if (!d || !g || !x || !y) return fs_fail(err, FS_ERR_INVALID, "fs_blur: NULL argument");
    if (!blur_desc_ok(d))
        return fs_fail(err, FS_ERR_INVALID,
                       "fs_blur: bad descriptor (n %d h %d w %d c %d k %d axes %d x_rows %d "
                       "y_rows %d): sizes must be > 0, k odd and <= %d, axes a nonzero set "
                       "of FS_BLUR_*",
                       d->n, d->h, d->w, d->c, d->k, d->axes, d->x_rows, d->y_rows, FS_BLUR_MAX_K);
    if (x == y) return fs_fail(err, FS_ERR_INVALID, "fs_blur: y must not alias x");
    if (d->y_row0 < 0 || d->y_row0 + d->y_rows > d->h)
        return fs_fail(err, FS_ERR_RANGE, "fs_blur: output rows [%d, %d) outside the map [0, %d)",
                       d->y_row0, d->y_row0 + d->y_rows, d->h);
    int rh = d->axes & FS_BLUR_H ? d->k / 2 : 0;
    int need0 = d->y_row0 - rh < 0 ? 0 : d->y_row0 - rh;
    int need1 = d->y_row0 + d->y_rows + rh > d->h ? d->h : d->y_row0 + d->y_rows + rh;
    if (d->x_row0 > need0 || d->x_row0 + d->x_rows < need1)
        return fs_fail(err, FS_ERR_RANGE,
                       "fs_blur: output rows [%d, %d) with kernel %d read input rows [%d, %d), "
                       "but x holds [%d, %d)",
                       d->y_row0, d->y_row0 + d->y_rows, d->k, need0, need1, d->x_row0,
                       d->x_row0 + d->x_rows);

    size_t row_len = (size_t)d->w * d->c;
    int nthreads = omp_get_max_threads();
    size_t bytes = (size_t)nthreads * 2 * row_len * sizeof(float);
    size_t mark = scratch ? fs_arena_mark(scratch) : 0;
    float *tmp = scratch ? fs_arena_alloc(scratch, bytes) : fs_alloc(bytes);
    if (!tmp)
        return fs_fail(err, FS_ERR_NOMEM, "fs_blur: no room for %zu bytes of row scratch (%s)",
                       bytes, scratch ? "arena full" : "fs_alloc failed");

    int tasks = d->n * d->y_rows;
#pragma omp parallel for schedule(static)
    for (int t = 0; t < tasks; t++) {
        int b = t / d->y_rows, oy = t % d->y_rows;
        float *t1 = tmp + (size_t)omp_get_thread_num() * 2 * row_len, *t2 = t1 + row_len;
        blur_row(d, g, x, b, d->y_row0 + oy, t1, t2, y + (size_t)t * row_len);
    }
    if (scratch)
        fs_arena_reset(scratch, mark);
    else
        fs_free(tmp);
    return FS_OK;
}
