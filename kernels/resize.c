/* kernels/resize.c: nearest 2x upsampling (the UNet and VAE upsamplers) and
 * bicubic resizing with PyTorch's F.interpolate(mode='bicubic',
 * align_corners=False) semantics (FreeScale's RGB upscale between stages).
 *
 * PyTorch's bicubic (aten upsample_bicubic2d, CPU and CUDA), in float32:
 *   scale = (float)in / out                       (size given, no scale_factor)
 *   src   = scale * (dst + 0.5f) - 0.5f           (NOT clamped at 0 for cubic)
 *   i0    = floor(src), t = src - i0
 *   w     = [cc2(t + 1), cc1(t), cc1(1 - t), cc2((1 - t) + 1)], A = -0.75
 *           cc1(x) = ((A + 2) x - (A + 3)) x x + 1,  cc2(x) = ((A x - 5A) x + 8A) x - 4A
 *   taps  i0 - 1 .. i0 + 2, each index clamped to [0, in - 1]
 *   out   = sum_k wy[k] * (sum_j wx[j] * x[row k][col j]), both sums left to right.
 * The reference evaluates exactly that per output element. The fast version
 * computes the inner (horizontal) sums once per input row and caches them,
 * then combines 4 cached rows per output row: the same float operations in
 * the same order, so it gives the reference's bits, for any strip or thread
 * count (each output row depends only on its global index). */
#include <math.h>
#include <string.h>
#include "kernels/kernels.h"

/* ---------------------------------------------------------------- nearest 2x */

void fs_upsample_nearest2x_ref(const float *x, float *y, int n, int rows, int w, int c) {
    for (int b = 0; b < n; b++)
        for (int r = 0; r < 2 * rows; r++)
            for (int col = 0; col < 2 * w; col++)
                for (int ch = 0; ch < c; ch++)
                    y[(((size_t)b * 2 * rows + r) * 2 * w + col) * c + ch] =
                        x[(((size_t)b * rows + r / 2) * w + col / 2) * c + ch];
}

void fs_upsample_nearest2x(const float *x, float *y, int n, int rows, int w, int c) {
    if (n <= 0 || rows <= 0 || w <= 0 || c <= 0) return;
    size_t in_row = (size_t)w * c, out_row = 2 * in_row;
    int tasks = n * rows;
#pragma omp parallel for schedule(static)
    for (int t = 0; t < tasks; t++) {
        const float *src = x + (size_t)t * in_row;
        /* input row t = (b, r) becomes output rows 2t and 2t + 1 */
        float *dst = y + (size_t)2 * t * out_row;
        for (int col = 0; col < w; col++) {
            memcpy(dst + (size_t)2 * col * c, src + (size_t)col * c, (size_t)c * sizeof(float));
            memcpy(dst + (size_t)(2 * col + 1) * c, src + (size_t)col * c,
                   (size_t)c * sizeof(float));
        }
        memcpy(dst + out_row, dst, out_row * sizeof(float));
    }
}

/* ---------------------------------------------------------------- bicubic */

#define CUBIC_A (-0.75f)

static float cubic_conv1(float v) { return ((CUBIC_A + 2) * v - (CUBIC_A + 3)) * v * v + 1; }
static float cubic_conv2(float v) {
    return ((CUBIC_A * v - 5 * CUBIC_A) * v + 8 * CUBIC_A) * v - 4 * CUBIC_A;
}

/* Source position of output index dst: first tap index (i0 - 1, unclamped)
 * and the four weights. */
static void cubic_source(int in, int out, int dst, int *first, float wts[4]) {
    float scale = (float)in / (float)out;
    float src = scale * ((float)dst + 0.5f) - 0.5f;
    float fl = floorf(src);
    float t = src - fl;
    *first = (int)fl - 1;
    wts[0] = cubic_conv2(t + 1.0f);
    wts[1] = cubic_conv1(t);
    float t2 = 1.0f - t; /* as PyTorch: the last weight is cc2((1 - t) + 1), two roundings */
    wts[2] = cubic_conv1(t2);
    wts[3] = cubic_conv2(t2 + 1.0f);
}

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

void fs_resize_bicubic_input_rows(const fs_resize_desc *d, int *row0, int *row1) {
    if (d->y_rows <= 0 || d->in_h <= 0 || d->out_h <= 0) {
        *row0 = *row1 = 0;
        return;
    }
    float wts[4];
    int first, last;
    cubic_source(d->in_h, d->out_h, d->y_row0, &first, wts);
    cubic_source(d->in_h, d->out_h, d->y_row0 + d->y_rows - 1, &last, wts);
    *row0 = clampi(first, 0, d->in_h - 1);
    *row1 = clampi(last + 3, 0, d->in_h - 1) + 1; /* last tap is first + 3 */
}

/* Local index into x of global input row gr (clamped to the map, then to the
 * rows held, so a too-small buffer gives wrong values, never a bad read). */
static int held_row(const fs_resize_desc *d, int gr) {
    gr = clampi(gr, 0, d->in_h - 1);
    return clampi(gr - d->x_row0, 0, d->x_rows - 1);
}

static int resize_desc_ok(const fs_resize_desc *d) {
    return d->n > 0 && d->c > 0 && d->in_h > 0 && d->in_w > 0 && d->out_h > 0 && d->out_w > 0 &&
           d->x_rows > 0 && d->y_rows > 0;
}

void fs_resize_bicubic_ref(const fs_resize_desc *d, const float *x, float *y) {
    if (!resize_desc_ok(d)) return;
    int c = d->c;
    for (int b = 0; b < d->n; b++)
        for (int oy = 0; oy < d->y_rows; oy++) {
            int fy, fx;
            float wy[4], wx[4];
            cubic_source(d->in_h, d->out_h, d->y_row0 + oy, &fy, wy);
            for (int ox = 0; ox < d->out_w; ox++) {
                cubic_source(d->in_w, d->out_w, ox, &fx, wx);
                for (int ch = 0; ch < c; ch++) {
                    float h[4];
                    for (int k = 0; k < 4; k++) {
                        const float *xr = x + ((size_t)b * d->x_rows + held_row(d, fy + k)) *
                                                  (size_t)d->in_w * c;
                        float v[4];
                        for (int j = 0; j < 4; j++)
                            v[j] = xr[(size_t)clampi(fx + j, 0, d->in_w - 1) * c + ch];
                        h[k] = v[0] * wx[0] + v[1] * wx[1] + v[2] * wx[2] + v[3] * wx[3];
                    }
                    y[(((size_t)b * d->y_rows + oy) * d->out_w + ox) * c + ch] =
                        h[0] * wy[0] + h[1] * wy[1] + h[2] * wy[2] + h[3] * wy[3];
                }
            }
        }
}

/* Horizontal pass of one held input row: h[ox][ch] = sum_j wx[j] x[col j]. */
static void bicubic_hpass(const float *xr, int out_w, int c, const int *cols, const float *wx,
                          float *h) {
    for (int ox = 0; ox < out_w; ox++) {
        const int *cx = cols + 4 * ox;
        const float *p0 = xr + (size_t)cx[0] * c, *p1 = xr + (size_t)cx[1] * c;
        const float *p2 = xr + (size_t)cx[2] * c, *p3 = xr + (size_t)cx[3] * c;
        float w0 = wx[4 * ox], w1 = wx[4 * ox + 1], w2 = wx[4 * ox + 2], w3 = wx[4 * ox + 3];
        float *ho = h + (size_t)ox * c;
        for (int ch = 0; ch < c; ch++)
            ho[ch] = p0[ch] * w0 + p1[ch] * w1 + p2[ch] * w2 + p3[ch] * w3;
    }
}

/* Rows of horizontal results kept per thread: the 4 taps of the current
 * output row (consecutive output rows share most of them). */
#define BICUBIC_SLOTS 4

void fs_resize_bicubic(const fs_resize_desc *d, const float *x, float *y) {
    if (!resize_desc_ok(d)) return;
    int c = d->c, ow = d->out_w;
    int *cols = fs_alloc((size_t)ow * 4 * sizeof(int));
    float *wx = fs_alloc((size_t)ow * 4 * sizeof(float));
    if (!cols || !wx) { /* same bits, just slower */
        fs_free(cols);
        fs_free(wx);
        fs_resize_bicubic_ref(d, x, y);
        return;
    }
    for (int ox = 0; ox < ow; ox++) {
        int fx;
        cubic_source(d->in_w, ow, ox, &fx, wx + 4 * ox);
        for (int j = 0; j < 4; j++) cols[4 * ox + j] = clampi(fx + j, 0, d->in_w - 1);
    }
    size_t in_row = (size_t)d->in_w * c, out_row = (size_t)ow * c;
    int tasks = d->n * d->y_rows;
    int ref_fallback = 0;
#pragma omp parallel
    {
        float *cache = fs_alloc(BICUBIC_SLOTS * out_row * sizeof(float));
        long tag[BICUBIC_SLOTS];
        for (int s = 0; s < BICUBIC_SLOTS; s++) tag[s] = -1;
        if (!cache) {
#pragma omp atomic write
            ref_fallback = 1;
        }
#pragma omp for schedule(static)
        for (int t = 0; t < tasks; t++) {
            if (!cache) continue;
            int b = t / d->y_rows, oy = t % d->y_rows, fy;
            float wy[4];
            cubic_source(d->in_h, d->out_h, d->y_row0 + oy, &fy, wy);
            long need[4];
            for (int k = 0; k < 4; k++) need[k] = (long)b * d->x_rows + held_row(d, fy + k);
            const float *hr[4];
            for (int k = 0; k < 4; k++) {
                int slot = -1;
                for (int s = 0; s < BICUBIC_SLOTS; s++)
                    if (tag[s] == need[k]) slot = s;
                if (slot < 0) { /* evict a slot this output row does not use */
                    for (int s = 0; s < BICUBIC_SLOTS && slot < 0; s++) {
                        int used = 0;
                        for (int q = 0; q < 4; q++) used |= tag[s] == need[q];
                        if (!used) slot = s;
                    }
                    bicubic_hpass(x + (size_t)need[k] * in_row, ow, c, cols, wx,
                                  cache + (size_t)slot * out_row);
                    tag[slot] = need[k];
                }
                hr[k] = cache + (size_t)slot * out_row;
            }
            float *yr = y + (size_t)t * out_row;
            for (size_t e = 0; e < out_row; e++)
                yr[e] = hr[0][e] * wy[0] + hr[1][e] * wy[1] + hr[2][e] * wy[2] + hr[3][e] * wy[3];
        }
        fs_free(cache);
    }
    fs_free(cols);
    fs_free(wx);
    if (ref_fallback) fs_resize_bicubic_ref(d, x, y); /* a thread had no scratch */
}

/* PyTorch's nearest index (upsample_nearest2d, no align_corners): the scale
 * is in / out in float, the index floor(dst * scale) clamped. */
static int nearest_index(int dst, int in, int out) {
    if (in == out) return dst;
    if (out == 2 * in) return dst >> 1;
    float scale = (float)in / (float)out;
    int s = (int)floorf((float)dst * scale);
    return s < in - 1 ? s : in - 1;
}

void fs_mask_nearest(const uint8_t *mask, int mh, int mw, int h, int w, int row0, int rows,
                     float *out) {
    for (int y = 0; y < rows; y++) {
        const uint8_t *src = mask + (size_t)nearest_index(row0 + y, mh, h) * mw;
        for (int x = 0; x < w; x++)
            out[(size_t)y * w + x] = src[nearest_index(x, mw, w)] ? 1.0f : 0.0f;
    }
}
