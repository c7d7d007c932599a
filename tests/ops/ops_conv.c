/* Op cases: fs_conv2d (kernels/conv2d.c, tiled implicit GEMM) against
 * fs_conv2d_ref over many shapes (odd widths 1, 3, 7, 33, odd channel
 * counts, batch 2, kernel 1/3, stride 1/2, dilation 1..8), and its
 * exactness: the whole output map, then several random splits into row
 * strips (one-row strips included), each strip given exactly the input rows
 * fs_conv2d_input_rows names (rows outside the map filled with NaN, which
 * must never be read), must give the whole-map bits; so must 1 and 2
 * threads. Also the OIHW -> OHWI weight reorder, refused bad input, and the
 * pad_end mode (padding at the bottom and right only) by hand and on shapes.
 *
 * Tolerance: float sums of K = k*k*cin products (OpenBLAS blocking) against
 * a double reference: error ~ eps * sqrt(K) of a typical output, normalised
 * by max|ref|; 1e-5 * max(1, sqrt(K / 256)) (measured worst ~1e-6). */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "kernels/kernels.h"
#include "ops/ops_harness.h"

static double conv_tol(int K) {
    double f = sqrt((double)K / 256.0);
    return 1e-5 * (f > 1 ? f : 1);
}

/* x strip holding global rows [r0, r1) of each image (NaN outside the map). */
static float *conv_strip_input(const float *x, const fs_conv2d_desc *whole, int r0, int r1) {
    size_t row = (size_t)whole->in_w * whole->cin, rows = (size_t)(r1 - r0);
    float *s = fs_alloc((size_t)whole->n * rows * row * sizeof(float) + 4);
    for (int b = 0; b < whole->n; b++)
        for (int r = r0; r < r1; r++) {
            float *dst = s + ((size_t)b * rows + (size_t)(r - r0)) * row;
            if (r < 0 || r >= whole->in_h)
                for (size_t i = 0; i < row; i++) dst[i] = NAN;
            else
                memcpy(dst, x + ((size_t)b * whole->in_h + r) * row, row * sizeof(float));
        }
    return s;
}

/* Computes output rows [y0, y1) from a strip with exactly their input rows,
 * into the matching rows of y_whole_layout ([n][out_h][out_w][cout]). */
static void conv_strip(const fs_conv2d_desc *whole, const float *x, const float *w,
                       const float *bias, int y0, int y1, float *y, fs_arena *arena,
                       const char *shape) {
    fs_conv2d_desc d = *whole;
    d.y_row0 = y0;
    d.y_rows = y1 - y0;
    int r0, r1;
    fs_conv2d_input_rows(&d, &r0, &r1);
    d.x_row0 = r0;
    d.x_rows = r1 - r0;
    float *xs = conv_strip_input(x, whole, r0, r1);
    int out_h = fs_conv2d_desc_out_size(whole, whole->in_h);
    int out_w = fs_conv2d_desc_out_size(whole, whole->in_w);
    size_t orow = (size_t)out_w * whole->cout;
    float *ys = fs_alloc((size_t)whole->n * (size_t)(y1 - y0) * orow * sizeof(float) + 4);
    fs_error err = {0};
    if (hb_conv2d(&d, xs, w, bias, ys, arena, &err) != FS_OK)
        fprintf(stderr, "conv2d strip [%d,%d) [%s]: %s\n", y0, y1, shape, err.msg);
    for (int b = 0; b < whole->n; b++)
        memcpy(y + ((size_t)b * out_h + y0) * orow, ys + (size_t)b * (y1 - y0) * orow,
               (size_t)(y1 - y0) * orow * sizeof(float));
    fs_free(xs);
    fs_free(ys);
}

static void conv_case_pad(int n, int in_h, int in_w, int cin, int cout, int k, int stride, int dil,
                          int with_bias, int pad_end) {
    char shape[192];
    snprintf(shape, sizeof shape, "n=%d in=%dx%d cin=%d cout=%d k=%d stride=%d dil=%d bias=%d%s",
             n, in_h, in_w, cin, cout, k, stride, dil, with_bias, pad_end ? " pad_end" : "");
    fs_conv2d_desc whole = {n, in_h, in_w, cin, cout, k, stride, dil, 0, in_h, 0, 0, pad_end};
    int out_h = fs_conv2d_desc_out_size(&whole, in_h);
    int out_w = fs_conv2d_desc_out_size(&whole, in_w);
    whole.y_rows = out_h;
    size_t K = (size_t)k * k * cin;
    size_t nx = (size_t)n * in_h * in_w * cin, ny = (size_t)n * out_h * out_w * cout;
    float *x = harness_random(nx, -1.0f, 1.0f);
    float *w = harness_random((size_t)cout * K, -1.0f, 1.0f);
    float *bias = with_bias ? harness_random((size_t)cout, -1.0f, 1.0f) : NULL;
    float *ref = fs_alloc(ny * sizeof(float) + 4), *fast = fs_alloc(ny * sizeof(float) + 4);
    float *strips = fs_alloc(ny * sizeof(float) + 4);
    fs_error err = {0};
    fs_arena *arena = fs_arena_create(fs_conv2d_scratch_bytes(&whole), &err);

    fs_conv2d_ref(&whole, x, w, bias, ref);
    memset(fast, 0xff, ny * sizeof(float));
    if (hb_conv2d(&whole, x, w, bias, fast, arena, &err) != FS_OK)
        fprintf(stderr, "conv2d [%s]: %s\n", shape, err.msg);
    harness_compare("conv2d", shape, ref, fast, ny, conv_tol((int)K));

    /* strips: three random splits, then one-row strips */
    for (int trial = 0; trial < 4; trial++) {
        memset(strips, 0xff, ny * sizeof(float));
        for (int y0 = 0; y0 < out_h;) {
            int len = trial == 3 ? 1 : harness_int(1, out_h - y0);
            conv_strip(&whole, x, w, bias, y0, y0 + len, strips, arena, shape);
            y0 += len;
        }
        harness_identical(trial == 3 ? "conv2d one-row strips" : "conv2d strips", shape, fast,
                          strips, ny);
    }

    /* threads: 1 vs 2 (and no arena) */
    int saved = fs_threads_count();
    for (int t = 1; t <= 2; t++) {
        fs_threads_init(t);
        memset(strips, 0xff, ny * sizeof(float));
        hb_conv2d(&whole, x, w, bias, strips, NULL, &err);
        harness_identical("conv2d threads", shape, fast, strips, ny);
    }
    fs_threads_init(saved);

    /* a buffer that lacks the last input row when the output reads it is
     * refused, not read past (on every backend: the table's contract) */
    int need0, need1;
    fs_conv2d_input_rows(&whole, &need0, &need1); /* the last row read: need1 - 1 */
    if (in_h > 1 && need1 >= in_h) {
        fs_conv2d_desc bad = whole;
        bad.x_rows = in_h - 1;
        void *dx = hb_from(x, nx * sizeof(float)), *dw = hb_from(w, (size_t)cout * K * 4);
        void *dy = hb_from(NULL, ny * sizeof(float));
        float got = (float)harness_be->op->conv2d(harness_be, &bad, dx, dw, NULL, dy, arena, &err);
        float want = FS_ERR_RANGE;
        harness_identical("conv2d missing row refused", shape, &want, &got, 1);
        hb_free(dx); hb_free(dw); hb_free(dy);
    }

    fs_arena_destroy(arena);
    fs_free(x); fs_free(w); fs_free(bias); fs_free(ref); fs_free(fast); fs_free(strips);
}

static void conv_case(int n, int in_h, int in_w, int cin, int cout, int k, int stride, int dil,
                      int with_bias) {
    conv_case_pad(n, in_h, in_w, cin, cout, k, stride, dil, with_bias, 0);
}

/* pad_end (the VAE encoder's downsampler, F.pad(x, (0, 1, 0, 1)) then a
 * padding-0 stride-2 conv) by hand: output (oy, ox) reads input rows 2oy ..
 * 2oy+2 and columns 2ox .. 2ox+2, zeros past the bottom / right edge, which
 * is not what the symmetric padding reads (2oy-1 .. 2oy+1). */
static void conv_pad_end_by_hand(void) {
    const int h = 6, w = 5, cin = 2, cout = 3;
    fs_conv2d_desc d = {1, h, w, cin, cout, 3, 2, 1, 0, h, 0, 0, 1};
    int oh = fs_conv2d_desc_out_size(&d, h), ow = fs_conv2d_desc_out_size(&d, w);
    float sizes[4] = {(float)oh, (float)ow, 0, 0}, want_sizes[4] = {3, 2, 0, 1};
    d.y_row0 = 1;
    d.y_rows = 2;
    int r0, r1;
    fs_conv2d_input_rows(&d, &r0, &r1); /* rows 2 .. 6: one row past the map, none on top */
    sizes[2] = (float)(r0 - 2);
    sizes[3] = (float)(r1 - 6);
    harness_identical("conv2d pad_end sizes", "6x5 stride 2: out 3x2, rows [2, 7)", want_sizes,
                      sizes, 4);
    d.y_row0 = 0;
    d.y_rows = oh;
    float *x = harness_random((size_t)h * w * cin, -1, 1);
    float *wt = harness_random((size_t)cout * 9 * cin, -1, 1), *bias = harness_random(cout, -1, 1);
    float y[3 * 2 * 3], want[3 * 2 * 3];
    for (int oy = 0; oy < oh; oy++)
        for (int ox = 0; ox < ow; ox++)
            for (int co = 0; co < cout; co++) {
                double s = bias[co];
                for (int ky = 0; ky < 3; ky++)
                    for (int kx = 0; kx < 3; kx++)
                        for (int ci = 0; ci < cin; ci++) {
                            int iy = 2 * oy + ky, ix = 2 * ox + kx;
                            if (iy < h && ix < w)
                                s += (double)x[(iy * w + ix) * cin + ci] *
                                     wt[((co * 3 + ky) * 3 + kx) * cin + ci];
                        }
                want[(oy * ow + ox) * cout + co] = (float)s;
            }
    if (harness_on_cpu()) { /* the reference is the CPU's own */
        fs_conv2d_ref(&d, x, wt, bias, y);
        harness_compare("conv2d_ref pad_end", "by hand, 6x5 cin=2 cout=3", want, y, 18, 1e-6);
    }
    fs_error err = {0};
    hb_conv2d(&d, x, wt, bias, y, NULL, &err);
    harness_compare("conv2d pad_end", "by hand, 6x5 cin=2 cout=3", want, y, 18, 1e-5);
    fs_free(x); fs_free(wt); fs_free(bias);
}

/* PyTorch OIHW -> OHWI by index, and a conv with reordered weights. */
static void conv_weight_layout(void) {
    int cout = 3, cin = 5, k = 3;
    size_t nw = (size_t)cout * cin * k * k;
    float *oihw = harness_random(nw, -1, 1), *ohwi = fs_alloc(nw * sizeof(float));
    float *want = fs_alloc(nw * sizeof(float));
    fs_conv2d_weight_from_oihw(oihw, ohwi, cout, cin, k);
    for (int o = 0; o < cout; o++)
        for (int i = 0; i < cin; i++)
            for (int ky = 0; ky < k; ky++)
                for (int kx = 0; kx < k; kx++)
                    want[((o * k + ky) * k + kx) * cin + i] = oihw[((o * cin + i) * k + ky) * k + kx];
    harness_identical("conv2d weight_from_oihw", "cout=3 cin=5 k=3", want, ohwi, nw);
    fs_free(oihw); fs_free(ohwi); fs_free(want);
}

static void conv_sizes_and_errors(void) {
    /* out size and halo rows, by hand */
    float got[8], want[8] = {64, 32, 32, 8, 62, 11, 24, 3};
    got[0] = (float)fs_conv2d_out_size(64, 3, 1, 1);
    got[1] = (float)fs_conv2d_out_size(64, 3, 2, 1);
    got[2] = (float)fs_conv2d_out_size(63, 3, 2, 4);
    int r0, r1;
    fs_conv2d_desc d = {1, 64, 64, 4, 4, 3, 1, 2, 0, 64, 10, 50, 0}; /* rows 10..59, halo 2 */
    fs_conv2d_input_rows(&d, &r0, &r1);
    got[3] = (float)r0;
    got[4] = (float)r1;
    fs_conv2d_desc s2 = {1, 64, 64, 4, 4, 3, 2, 1, 0, 64, 6, 6, 0}; /* stride 2: rows 11..23 */
    fs_conv2d_input_rows(&s2, &r0, &r1);
    got[5] = (float)r0;
    got[6] = (float)r1;
    got[7] = (float)fs_conv2d_out_size(5, 1, 2, 1);
    harness_identical("conv2d sizes", "out_size / input_rows", want, got, 8);

    /* refused input */
    float buf[64] = {0}, out[64];
    fs_error err = {0};
    fs_conv2d_desc bad = {1, 4, 4, 1, 1, 5, 1, 1, 0, 4, 0, 4, 0};
    float codes[5], wantc[5] = {FS_ERR_UNSUPPORTED, FS_ERR_UNSUPPORTED, FS_ERR_RANGE, FS_ERR_RANGE,
                                FS_ERR_NOMEM};
    codes[0] = (float)fs_conv2d(&bad, buf, buf, NULL, out, NULL, &err);
    bad.k = 3; bad.dil = 9;
    codes[1] = (float)fs_conv2d(&bad, buf, buf, NULL, out, NULL, &err);
    bad.dil = 1; bad.y_rows = 5;
    codes[2] = (float)fs_conv2d(&bad, buf, buf, NULL, out, NULL, &err);
    bad.y_rows = 2; bad.x_row0 = 1; bad.x_rows = 1; /* needs rows 0..2 */
    codes[3] = (float)fs_conv2d(&bad, buf, buf, NULL, out, NULL, &err);
    bad.x_row0 = 0; bad.x_rows = 4;
    fs_arena *tiny = fs_arena_create(64, &err); /* far below fs_conv2d_scratch_bytes */
    codes[4] = (float)fs_conv2d(&bad, buf, buf, NULL, out, tiny, &err);
    fs_arena_destroy(tiny);
    harness_identical("conv2d errors", "k=5, dil=9, rows past map, strip lacks rows, tiny arena",
                      wantc, codes, 5);
}

void ops_cases_conv(void) {
    if (harness_on_cpu()) { /* layouts, sizes and argument checks: the CPU's own */
        conv_weight_layout();
        conv_sizes_and_errors();
    }
    conv_pad_end_by_hand();
    /* pad_end: even and odd maps, 3x3 stride 2 (the VAE's) and stride 1, 1x1 */
    conv_case_pad(1, 8, 8, 4, 8, 3, 2, 1, 1, 1);
    conv_case_pad(2, 9, 7, 5, 70, 3, 2, 1, 1, 1);
    conv_case_pad(1, 16, 33, 12, 66, 3, 2, 1, 0, 1);
    conv_case_pad(1, 7, 5, 3, 4, 3, 1, 2, 1, 1);
    conv_case_pad(1, 6, 6, 3, 4, 1, 2, 1, 1, 1);
    /* fixed shapes: widths 1/3/7/33, both GEMM orientations (cout < 64 and
     * >= 64), 1x1 (direct-input tiles), wide maps cut into column tiles */
    conv_case(1, 5, 1, 3, 5, 3, 1, 1, 1);
    conv_case(2, 9, 3, 7, 9, 3, 2, 1, 1);
    conv_case(1, 11, 7, 5, 70, 3, 1, 2, 1);
    conv_case(2, 13, 33, 9, 65, 3, 1, 1, 0);
    conv_case(1, 17, 33, 17, 3, 3, 2, 8, 1);
    conv_case(2, 40, 16, 12, 80, 1, 1, 1, 1);
    conv_case(1, 6, 33, 12, 67, 1, 2, 1, 1);
    conv_case(1, 5, 1100, 3, 4, 3, 1, 1, 1);
    conv_case(1, 4, 700, 5, 66, 3, 2, 3, 1);
    conv_case(1, 16, 16, 320, 320, 3, 1, 1, 1);
    conv_case(1, 33, 9, 4, 64, 3, 1, 4, 1);
    /* wide outputs: several column blocks of output channels, uneven last */
    conv_case(1, 6, 5, 8, 700, 3, 1, 1, 1);
    conv_case(2, 4, 9, 3, 1000, 1, 1, 1, 1);
    /* random shapes over every stride / dilation */
    for (int i = 0; i < 16; i++) {
        static const int widths[] = {1, 2, 3, 5, 7, 8, 16, 31, 33, 47};
        int k = harness_int(0, 3) ? 3 : 1;
        int in_w = widths[harness_int(0, 9)];
        conv_case(harness_int(1, 2), harness_int(1, 24), in_w, harness_int(1, 40),
                  harness_int(1, 90), k, harness_int(1, 2), harness_int(1, 8), harness_int(0, 1));
    }
}
