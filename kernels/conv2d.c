/* kernels/conv2d.c: 2-D convolution on NHWC row strips (kernel 1 or 3,
 * stride 1 or 2, dilation 1..8, padding dil*(k-1)/2 on every side, or only at
 * the bottom and right with pad_end): a reference loop and a
 * tiled implicit GEMM on single-threaded OpenBLAS.
 *
 * The fast version never builds a whole-image im2col matrix. The output map
 * is cut into tiles of `tr` rows x `tw` columns at fixed global positions
 * (row tile ty covers output rows [ty*tr, ty*tr + tr)); each tile gathers its
 * own im2col block [P = tr*tw pixels][K = k*k*cin] into the thread's scratch
 * and makes one sgemm of the fixed shape P x cout x K. Pixels of a tile that
 * the caller did not ask for (outside the strip or the map) are zero rows.
 * The tile geometry depends only on the global map and the layer, so an
 * output pixel is computed by the same call shape at the same place in the
 * call whatever strip (or thread) computes it: bit-identical results for any
 * split (OpenBLAS's result for one pixel does not depend on the other pixels'
 * values, only on the shape and on its place). */
#include <omp.h>
#include <string.h>
#include "kernels/gemm_tiles.h"
#include "kernels/kernels.h"

/* Pixels per tile aimed at. The OpenBLAS "m" of the normal call is cout and
 * the pixels are its "n"; 512 pixels amortise the repacking of the weights
 * (cout x K per call) to 1/1024 of the work while the tile's im2col block
 * (512 x 2880 floats = 5.9 MB for a 3x3 conv over 320 channels) streams
 * through L3 once. */
#define CONV_TILE_PIXELS 512
/* Why no transposed product (C^T = W A^T) for small cout: measured, once
 * fs_sgemm's warm-up removes OpenBLAS's cold-buffer stall, the plain
 * orientation is as fast or faster for every layer shape tried (cout = 3, 4,
 * 128 ... 1280); layers with cout = 3 or 4 run at ~8 GFLOP/s either way,
 * bound by reading the im2col block for so few outputs. */

int fs_conv2d_out_size(int in, int k, int stride, int dil) {
    if (in <= 0 || k <= 0 || stride <= 0 || dil <= 0) return 0;
    int pad = dil * (k - 1) / 2;
    int span = in + 2 * pad - dil * (k - 1) - 1;
    return span < 0 ? 0 : span / stride + 1;
}

/* Padding before the first row / column: all of it, or none with pad_end. */
static int pad_begin(const fs_conv2d_desc *d) { return d->pad_end ? 0 : d->dil * (d->k - 1) / 2; }

int fs_conv2d_desc_out_size(const fs_conv2d_desc *d, int in) {
    if (!d->pad_end) return fs_conv2d_out_size(in, d->k, d->stride, d->dil);
    if (in <= 0 || d->k <= 0 || d->stride <= 0 || d->dil <= 0) return 0;
    int span = in + d->dil * (d->k - 1) / 2 - d->dil * (d->k - 1) - 1;
    return span < 0 ? 0 : span / d->stride + 1;
}

void fs_conv2d_input_rows(const fs_conv2d_desc *d, int *row0, int *row1) {
    int pad = pad_begin(d);
    *row0 = d->y_row0 * d->stride - pad;
    *row1 = d->y_rows > 0 ? (d->y_row0 + d->y_rows - 1) * d->stride - pad + d->dil * (d->k - 1) + 1
                          : *row0;
}

void fs_conv2d_weight_from_oihw(const float *oihw, float *ohwi, int cout, int cin, int k) {
    for (int o = 0; o < cout; o++)
        for (int i = 0; i < cin; i++)
            for (int ky = 0; ky < k; ky++)
                for (int kx = 0; kx < k; kx++)
                    ohwi[(((size_t)o * k + ky) * k + kx) * cin + i] =
                        oihw[(((size_t)o * cin + i) * k + ky) * k + kx];
}

/* ---------------------------------------------------------------- reference */

void fs_conv2d_ref(const fs_conv2d_desc *d, const float *x, const float *w, const float *bias,
                   float *y) {
    int pad = pad_begin(d);
    int out_w = fs_conv2d_desc_out_size(d, d->in_w);
    size_t K = (size_t)d->k * d->k * d->cin;
    for (int b = 0; b < d->n; b++)
        for (int oy = d->y_row0; oy < d->y_row0 + d->y_rows; oy++)
            for (int ox = 0; ox < out_w; ox++)
                for (int co = 0; co < d->cout; co++) {
                    double s = bias ? bias[co] : 0.0;
                    for (int ky = 0; ky < d->k; ky++) {
                        int iy = oy * d->stride - pad + ky * d->dil;
                        /* padding, and (defensively) rows the strip lacks */
                        if (iy < 0 || iy >= d->in_h || iy < d->x_row0 ||
                            iy >= d->x_row0 + d->x_rows)
                            continue;
                        for (int kx = 0; kx < d->k; kx++) {
                            int ix = ox * d->stride - pad + kx * d->dil;
                            if (ix < 0 || ix >= d->in_w) continue;
                            const float *xp =
                                x + (((size_t)b * d->x_rows + (iy - d->x_row0)) * d->in_w + ix) *
                                        d->cin;
                            const float *wp = w + co * K + ((size_t)ky * d->k + kx) * d->cin;
                            for (int ci = 0; ci < d->cin; ci++) s += (double)xp[ci] * wp[ci];
                        }
                    }
                    y[(((size_t)b * d->y_rows + (oy - d->y_row0)) * out_w + ox) * d->cout + co] =
                        (float)s;
                }
}

/* ---------------------------------------------------------------- the plan */

typedef struct conv_plan {
    int out_h, out_w, pad;
    int K;            /* k * k * cin: the GEMM's inner dimension */
    int tw, tr, P;    /* tile columns, tile rows, pixels per tile */
    int ntx;          /* column tiles across the map */
    size_t a_floats, c_floats, slice_floats; /* per-thread scratch */
} conv_plan;

static size_t round16(size_t n) { return (n + 15) / 16 * 16; }

/* Everything here derives from global quantities of the layer only. */
static void conv_plan_make(const fs_conv2d_desc *d, conv_plan *p) {
    p->pad = pad_begin(d);
    p->out_h = fs_conv2d_desc_out_size(d, d->in_h);
    p->out_w = fs_conv2d_desc_out_size(d, d->in_w);
    p->K = d->k * d->k * d->cin;
    p->ntx = (p->out_w + CONV_TILE_PIXELS - 1) / CONV_TILE_PIXELS;
    if (p->ntx < 1) p->ntx = 1;
    p->tw = (p->out_w + p->ntx - 1) / p->ntx;   /* even split of wide maps */
    if (p->tw < 1) p->tw = 1;
    p->tr = (CONV_TILE_PIXELS + p->tw / 2) / p->tw;
    if (p->tr > p->out_h) p->tr = p->out_h;
    if (p->tr < 1) p->tr = 1;
    p->P = p->tw * p->tr;
    p->a_floats = round16((size_t)p->P * p->K);
    p->c_floats = round16((size_t)p->P * d->cout);
    p->slice_floats = p->a_floats + p->c_floats;
}

size_t fs_conv2d_scratch_bytes(const fs_conv2d_desc *d) {
    if (!d || d->k <= 0 || d->cin <= 0 || d->cout <= 0 || d->in_w <= 0 || d->in_h <= 0) return 0;
    conv_plan p;
    conv_plan_make(d, &p);
    return (size_t)fs_threads_count() * p.slice_floats * sizeof(float) + 256;
}

static fs_code conv_check(const fs_conv2d_desc *d, const float *x, const float *w, float *y,
                          fs_error *err) {
    if (!d) return fs_fail(err, FS_ERR_INVALID, "conv2d: NULL descriptor");
    if (d->k != 1 && d->k != 3)
        return fs_fail(err, FS_ERR_UNSUPPORTED, "conv2d: kernel size %d (only 1 and 3)", d->k);
    if (d->stride != 1 && d->stride != 2)
        return fs_fail(err, FS_ERR_UNSUPPORTED, "conv2d: stride %d (only 1 and 2)", d->stride);
    if (d->dil < 1 || d->dil > 8)
        return fs_fail(err, FS_ERR_UNSUPPORTED, "conv2d: dilation %d (only 1..8)", d->dil);
    if (d->n < 1 || d->in_h < 1 || d->in_w < 1 || d->cin < 1 || d->cout < 1)
        return fs_fail(err, FS_ERR_INVALID, "conv2d: bad shape n=%d in=%dx%d cin=%d cout=%d",
                       d->n, d->in_h, d->in_w, d->cin, d->cout);
    /* int GEMM arguments: keep k*k*cin and a tile's P*K well inside int */
    if ((int64_t)d->cin * d->k * d->k > (1 << 20) || d->cout > (1 << 20) ||
        (int64_t)d->in_w * d->cin > ((int64_t)1 << 30))
        return fs_fail(err, FS_ERR_RANGE, "conv2d: sizes too large (cin=%d cout=%d in_w=%d)",
                       d->cin, d->cout, d->in_w);
    int out_h = fs_conv2d_desc_out_size(d, d->in_h);
    if (d->y_rows < 0 || d->y_row0 < 0 || d->y_row0 + d->y_rows > out_h)
        return fs_fail(err, FS_ERR_RANGE, "conv2d: output rows [%d, %d) outside the map [0, %d)",
                       d->y_row0, d->y_row0 + d->y_rows, out_h);
    if (d->x_rows < 0) return fs_fail(err, FS_ERR_INVALID, "conv2d: x_rows=%d", d->x_rows);
    if (d->y_rows == 0) return FS_OK;
    int r0, r1;
    fs_conv2d_input_rows(d, &r0, &r1);
    if (r0 < 0) r0 = 0;
    if (r1 > d->in_h) r1 = d->in_h;
    if (r0 < r1 && (r0 < d->x_row0 || r1 > d->x_row0 + d->x_rows))
        return fs_fail(err, FS_ERR_RANGE,
                       "conv2d: output rows [%d, %d) read input rows [%d, %d) but the strip "
                       "holds [%d, %d)",
                       d->y_row0, d->y_row0 + d->y_rows, r0, r1, d->x_row0,
                       d->x_row0 + d->x_rows);
    if (!x || !w || !y) return fs_fail(err, FS_ERR_INVALID, "conv2d: NULL x, w or y");
    return FS_OK;
}

/* ---------------------------------------------------------------- one tile */

/* The im2col block of tile (b, ty, tx): row p = r * tw + c is output pixel
 * (ty*tr + r, tx*tw + c), column (ky*k + kx)*cin + ci. Pixels not wanted and
 * taps in the padding are zeros; the strip's rows outside [0, in_h) are never
 * read. */
static void conv_gather(const fs_conv2d_desc *d, const conv_plan *p, const float *x, int b,
                        int ty, int tx, float *a) {
    const int cin = d->cin, k = d->k;
    const size_t K = (size_t)p->K, row_floats = (size_t)d->in_w * cin;
    for (int r = 0; r < p->tr; r++) {
        int oy = ty * p->tr + r;
        float *arow = a + (size_t)r * p->tw * K;
        if (oy < d->y_row0 || oy >= d->y_row0 + d->y_rows) {
            memset(arow, 0, (size_t)p->tw * K * sizeof(float));
            continue;
        }
        for (int c = 0; c < p->tw; c++) {
            int ox = tx * p->tw + c;
            float *ap = arow + (size_t)c * K;
            if (ox >= p->out_w) {
                memset(ap, 0, K * sizeof(float));
                continue;
            }
            int ix0 = ox * d->stride - p->pad;
            for (int ky = 0; ky < k; ky++) {
                float *at = ap + (size_t)ky * k * cin;
                int iy = oy * d->stride - p->pad + ky * d->dil;
                if (iy < 0 || iy >= d->in_h) {
                    memset(at, 0, (size_t)k * cin * sizeof(float));
                    continue;
                }
                const float *xr = x + ((size_t)b * d->x_rows + (size_t)(iy - d->x_row0)) * row_floats;
                if (d->dil == 1 && ix0 >= 0 && ix0 + k <= d->in_w) {
                    memcpy(at, xr + (size_t)ix0 * cin, (size_t)k * cin * sizeof(float));
                    continue;
                }
                for (int kx = 0; kx < k; kx++) {
                    int ix = ix0 + kx * d->dil;
                    if (ix < 0 || ix >= d->in_w)
                        memset(at + (size_t)kx * cin, 0, (size_t)cin * sizeof(float));
                    else
                        memcpy(at + (size_t)kx * cin, xr + (size_t)ix * cin,
                               (size_t)cin * sizeof(float));
                }
            }
        }
    }
}

/* C[P][cout] = A W^T as one sgemm per block of output channels (the blocks
 * of fs_gemm_col_block, fixed by cout): measured on one core, M = 512,
 * K = 5760: 40.3 GFLOP/s at N = 320 against 38.5 at 640 (256 x 11520: 40.4 at
 * 320, 37.5 at 1280), the narrow packed W block staying in L2, even though
 * each block packs the tile's im2col block again. */
static void conv_tile_gemm(int P, int cout, int K, const float *a, int lda, const float *w,
                           float *c) {
    const int nb = fs_gemm_col_block(cout);
    for (int j0 = 0; j0 < cout; j0 += nb) {
        int nc = cout - j0 < nb ? cout - j0 : nb;
        fs_sgemm(0, 1, P, nc, K, 1.0f, a, lda, w + (size_t)j0 * K, K, 0.0f, c + j0, cout);
    }
}

static void conv_tile(const fs_conv2d_desc *d, const conv_plan *p, const float *x,
                      const float *w, const float *bias, float *y, int b, int ty, int tx,
                      float *slice) {
    const int cout = d->cout, P = p->P, K = p->K;
    const int oy0 = ty * p->tr, ox0 = tx * p->tw;
    const int full = oy0 >= d->y_row0 && oy0 + p->tr <= d->y_row0 + d->y_rows &&
                     ox0 + p->tw <= p->out_w;
    const int whole_rows = full && p->tw == p->out_w; /* tile = contiguous block of y and x */
    float *a = slice, *c = slice + p->a_floats;
    const float *ap = a;
    int lda = K;
    if (whole_rows && d->k == 1 && d->stride == 1) {
        /* 1x1, stride 1: the tile's input pixels already are its im2col block */
        ap = x + ((size_t)b * d->x_rows + (size_t)(oy0 - d->x_row0)) * d->in_w * d->cin;
        lda = d->cin;
    } else {
        conv_gather(d, p, x, b, ty, tx, a);
    }
    float *ybase = y + ((size_t)b * d->y_rows) * p->out_w * cout;
    if (whole_rows) { /* the tile is a contiguous block of y: straight into it */
        float *yt = ybase + (size_t)(oy0 - d->y_row0) * p->out_w * cout;
        conv_tile_gemm(P, cout, K, ap, lda, w, yt);
        if (bias)
            for (size_t i = 0; i < (size_t)P; i++)
                for (int co = 0; co < cout; co++) yt[i * cout + co] += bias[co];
        return;
    }
    conv_tile_gemm(P, cout, K, ap, lda, w, c);
    for (int r = 0; r < p->tr; r++) {
        int oy = oy0 + r;
        if (oy < d->y_row0 || oy >= d->y_row0 + d->y_rows) continue;
        for (int cc = 0; cc < p->tw && ox0 + cc < p->out_w; cc++) {
            const float *cp = c + ((size_t)r * p->tw + cc) * cout;
            float *yp = ybase + ((size_t)(oy - d->y_row0) * p->out_w + ox0 + cc) * cout;
            for (int co = 0; co < cout; co++) yp[co] = cp[co] + (bias ? bias[co] : 0.0f);
        }
    }
}

/* ---------------------------------------------------------------- driver */

fs_code fs_conv2d(const fs_conv2d_desc *d, const float *x, const float *w, const float *bias,
                  float *y, fs_arena *scratch, fs_error *err) {
    fs_code rc = conv_check(d, x, w, y, err);
    if (rc != FS_OK || d->y_rows == 0) return rc;
    conv_plan p;
    conv_plan_make(d, &p);
    const int nt = fs_threads_count();
    const int ty0 = d->y_row0 / p.tr, ty1 = (d->y_row0 + d->y_rows - 1) / p.tr;
    const int nty = ty1 - ty0 + 1;
    const int64_t ntiles = (int64_t)d->n * nty * p.ntx;

    size_t mark = scratch ? fs_arena_mark(scratch) : 0;
    void *owned = NULL;
    float *slices = fs_scratch_take(scratch, (size_t)nt * p.slice_floats * sizeof(float), &owned,
                                    "conv2d", err);
    if (!slices) return err ? err->code : FS_ERR_NOMEM;

#pragma omp parallel num_threads(nt)
    {
        float *slice = slices + (size_t)omp_get_thread_num() * p.slice_floats;
#pragma omp for schedule(dynamic, 1)
        for (int64_t t = 0; t < ntiles; t++) {
            int b = (int)(t / ((int64_t)nty * p.ntx));
            int rest = (int)(t % ((int64_t)nty * p.ntx));
            conv_tile(d, &p, x, w, bias, y, b, ty0 + rest / p.ntx, rest % p.ntx, slice);
        }
    }
    if (scratch) fs_arena_reset(scratch, mark);
    fs_free(owned);
    return FS_OK;
}
