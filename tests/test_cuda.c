/* The CUDA ops (kernels/kernels.h, "CUDA") against the CPU references on
 * random inputs, and the exactness rule on the GPU: a strip of rows computed
 * alone (its own buffer, its own global offset) gives the same bits as the
 * same rows of the whole map. Skips (ctest code 77) when the build has no
 * CUDA or the machine has no usable GPU. */
#include <stdio.h>
#include <stdint.h>
#include "check.h"
#include "core/core.h"
#include "kernels/kernels.h"

static fs_cuda *cu;
static fs_error err;

static float *host_random(size_t n, uint64_t stream, float scale) {
    float *x = fs_alloc(n * sizeof(float) + 4);
    fs_rng_fill_normal(x, n, 77, stream, 0);
    for (size_t i = 0; i < n; i++) x[i] *= scale;
    return x;
}

static void *dev_from(const void *host, size_t bytes) {
    void *d = NULL;
    if (fs_cuda_alloc(cu, &d, bytes, &err) != FS_OK) { fprintf(stderr, "%s\n", err.msg); exit(2); }
    if (host && fs_cuda_upload(cu, d, host, bytes, &err) != FS_OK) {
        fprintf(stderr, "%s\n", err.msg);
        exit(2);
    }
    return d;
}

static float *to_host(const void *dev, size_t n) {
    float *h = fs_alloc(n * sizeof(float) + 4);
    if (fs_cuda_download(cu, h, dev, n * sizeof(float), &err) != FS_OK) {
        fprintf(stderr, "%s\n", err.msg);
        exit(2);
    }
    return h;
}

/* max |a - b| / max |b|: the GEMM ops' error measure (float sums of up to
 * thousands of terms against double references). */
static double rel_max(const float *a, const float *b, size_t n) {
    double num = 0, den = 1e-30;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (d > num || d != d) num = d;
        if (fabs(b[i]) > den) den = fabs(b[i]);
    }
    return num / den;
}

static void test_pointwise(void) {
    const size_t n = 1000003;
    float *x = host_random(n, 1, 4.0f), *ref = fs_alloc(n * 4);
    float *dx = dev_from(x, n * 4), *dy = dev_from(NULL, n * 4);
    struct { const char *name; void (*ref)(const float *, float *, size_t);
             fs_code (*dev)(fs_cuda *, const float *, float *, size_t, fs_error *); } ops[] = {
        {"silu", fs_silu_ref, fs_cuda_silu},
        {"gelu", fs_gelu_ref, fs_cuda_gelu},
        {"quick_gelu", fs_quick_gelu_ref, fs_cuda_quick_gelu}};
    for (int o = 0; o < 3; o++) {
        ops[o].ref(x, ref, n);
        CHECK(ops[o].dev(cu, dx, dy, n, &err) == FS_OK, "%s: %s", ops[o].name, err.msg);
        float *got = to_host(dy, n);
        double worst = 0;
        for (size_t i = 0; i < n; i++) {
            double d = fabs((double)got[i] - ref[i]) / (fabs(ref[i]) + 1e-6);
            if (d > worst) worst = d;
        }
        CHECK(worst < 1e-5, "%s relative error %g", ops[o].name, worst);
        fs_free(got);
    }
    /* GEGLU: 700 rows of 2 x 640 (within x's n floats) */
    const size_t m = 700;
    const int d = 640;
    fs_geglu_ref(x, ref, m, d);
    CHECK(fs_cuda_geglu(cu, dx, dy, m, d, &err) == FS_OK, "geglu: %s", err.msg);
    float *got = to_host(dy, m * d);
    CHECK(rel_max(got, ref, m * d) < 1e-6, "geglu error %g", rel_max(got, ref, m * d));
    CHECK(fs_cuda_geglu(cu, dx, dx, m, d, &err) != FS_OK, "geglu in place must be refused");
    fs_free(got);
    /* nearest 2x: a copy, so exact */
    fs_upsample_nearest2x_ref(x, ref, 2, 5, 7, 3);
    CHECK(fs_cuda_upsample_nearest2x(cu, dx, dy, 2, 5, 7, 3, &err) == FS_OK, "%s", err.msg);
    got = to_host(dy, 2 * 10 * 14 * 3);
    CHECK(memcmp(got, ref, 2 * 10 * 14 * 3 * 4) == 0, "upsample differs");
    fs_free(got);
    fs_cuda_free(cu, dx); fs_cuda_free(cu, dy);
    fs_free(x); fs_free(ref);
}

static void test_norms(void) {
    const int n = 2, h = 16, w = 12, c = 64, groups = 32;
    size_t len = (size_t)n * h * w * c;
    float *x = host_random(len, 2, 3.0f), *ref = fs_alloc(len * 4);
    for (size_t i = 0; i < len; i++) x[i] += 1.5f; /* a mean far from 0 */
    float *gamma = host_random(c, 3, 1.0f), *beta = host_random(c, 4, 1.0f);
    fs_groupnorm_ref(x, ref, n, h, w, c, groups, 1e-5f, gamma, beta, 1);
    /* the device partials of the whole map, finished on the host */
    size_t np = (size_t)h * n * groups * 2;
    float *dx = dev_from(x, len * 4), *dy = dev_from(NULL, len * 4);
    double *dpart = dev_from(NULL, np * 8), *part = fs_alloc(np * 8);
    CHECK(fs_cuda_groupnorm_partials(cu, dx, n, h, w, c, groups, dpart, &err) == FS_OK, "%s",
          err.msg);
    CHECK(fs_cuda_download(cu, part, dpart, np * 8, &err) == FS_OK, "%s", err.msg);
    float mean[64], rstd[64];
    fs_groupnorm_finish(part, h, n, w, c, groups, 1e-5f, mean, rstd);
    float *dmean = dev_from(mean, sizeof mean), *drstd = dev_from(rstd, sizeof rstd);
    float *dg = dev_from(gamma, c * 4), *db = dev_from(beta, c * 4);
    CHECK(fs_cuda_groupnorm_apply(cu, dx, dy, n, h, w, c, groups, dmean, drstd, dg, db, 1, &err) ==
              FS_OK, "%s", err.msg);
    float *got = to_host(dy, len);
    CHECK(rel_max(got, ref, len) < 1e-5, "groupnorm error %g", rel_max(got, ref, len));
    /* a strip of rows [5, 16) in its own buffer: the same partials, bit for bit */
    const int r0 = 5, rows = h - r0;
    float *strip = fs_alloc((size_t)n * rows * w * c * 4);
    for (int b = 0; b < n; b++)
        memcpy(strip + (size_t)b * rows * w * c, x + ((size_t)b * h + r0) * w * c,
               (size_t)rows * w * c * 4);
    float *dstrip = dev_from(strip, (size_t)n * rows * w * c * 4);
    double *dpart2 = dev_from(NULL, (size_t)rows * n * groups * 16);
    double *part2 = fs_alloc((size_t)rows * n * groups * 16);
    CHECK(fs_cuda_groupnorm_partials(cu, dstrip, n, rows, w, c, groups, dpart2, &err) == FS_OK,
          "%s", err.msg);
    CHECK(fs_cuda_download(cu, part2, dpart2, (size_t)rows * n * groups * 16, &err) == FS_OK, "%s",
          err.msg);
    CHECK(memcmp(part2, part + (size_t)r0 * n * groups * 2, (size_t)rows * n * groups * 16) == 0,
          "groupnorm partials of a strip differ from the whole map's");
    fs_free(got); fs_free(strip); fs_free(part); fs_free(part2);
    fs_cuda_free(cu, dstrip); fs_cuda_free(cu, dpart); fs_cuda_free(cu, dpart2);
    fs_cuda_free(cu, dmean); fs_cuda_free(cu, drstd); fs_cuda_free(cu, dg); fs_cuda_free(cu, db);

    /* LayerNorm, 300 tokens of 640, with and without the affine part */
    const size_t tokens = 300;
    const int lc = 640;
    float *lx = host_random(tokens * lc, 5, 2.0f), *lref = fs_alloc(tokens * lc * 4);
    float *lg = host_random(lc, 6, 1.0f), *lb = host_random(lc, 7, 1.0f);
    float *dlx = dev_from(lx, tokens * lc * 4), *dly = dev_from(NULL, tokens * lc * 4);
    float *dlg = dev_from(lg, lc * 4), *dlb = dev_from(lb, lc * 4);
    for (int affine = 0; affine < 2; affine++) {
        fs_layernorm_ref(lx, lref, tokens, lc, 1e-5f, affine ? lg : NULL, affine ? lb : NULL);
        CHECK(fs_cuda_layernorm(cu, dlx, dly, tokens, lc, 1e-5f, affine ? dlg : NULL,
                                affine ? dlb : NULL, &err) == FS_OK, "%s", err.msg);
        got = to_host(dly, tokens * lc);
        CHECK(rel_max(got, lref, tokens * lc) < 1e-6, "layernorm (affine %d) error %g", affine,
              rel_max(got, lref, tokens * lc));
        fs_free(got);
    }
    fs_cuda_free(cu, dlx); fs_cuda_free(cu, dly); fs_cuda_free(cu, dlg); fs_cuda_free(cu, dlb);
    fs_free(lx); fs_free(lref); fs_free(lg); fs_free(lb);
    fs_cuda_free(cu, dx); fs_cuda_free(cu, dy);
    fs_free(x); fs_free(ref); fs_free(gamma); fs_free(beta);
}

static void test_linear(void) {
    /* 5000 rows cross the 2048-row tiles; global rows start at 300 */
    const size_t m = 5000;
    const int k = 96, nout = 80;
    const int64_t m0 = 300;
    float *x = host_random(m * k, 8, 1.0f), *w = host_random((size_t)nout * k, 9, 0.1f);
    float *bias = host_random(nout, 10, 1.0f), *ref = fs_alloc(m * nout * 4);
    fs_linear_ref(x, ref, m, k, nout, w, bias);
    float *dx = dev_from(x, m * k * 4), *dw = dev_from(w, (size_t)nout * k * 4);
    float *db = dev_from(bias, nout * 4), *dy = dev_from(NULL, m * nout * 4);
    CHECK(fs_cuda_linear(cu, dx, dy, m, k, nout, dw, db, m0, &err) == FS_OK, "%s", err.msg);
    float *whole = to_host(dy, m * nout);
    CHECK(rel_max(whole, ref, m * nout) < 2e-6, "linear error %g", rel_max(whole, ref, m * nout));
    /* rows [1777, 5000) alone, from an offset pointer and global row m0 + 1777 */
    const size_t split = 1777;
    float *dy2 = dev_from(NULL, (m - split) * nout * 4);
    CHECK(fs_cuda_linear(cu, dx + split * k, dy2, m - split, k, nout, dw, db, m0 + (int64_t)split,
                         &err) == FS_OK, "%s", err.msg);
    float *part = to_host(dy2, (m - split) * nout);
    CHECK(memcmp(part, whole + split * nout, (m - split) * nout * 4) == 0,
          "linear rows of a strip differ from the whole's");
    /* the whole-matrix form: 154 rows (a CFG pair's text context) in one
     * tile of exactly 154 rows; 5000 rows the same tiles as from global row 0 */
    float *ref_small = fs_alloc(154 * nout * 4);
    fs_linear_ref(x, ref_small, 154, k, nout, w, bias);
    CHECK(fs_cuda_linear_whole(cu, dx, dy2, 154, k, nout, dw, db, &err) == FS_OK, "%s", err.msg);
    float *small = to_host(dy2, 154 * nout);
    CHECK(rel_max(small, ref_small, 154 * nout) < 2e-6, "linear_whole error %g",
          rel_max(small, ref_small, 154 * nout));
    CHECK(fs_cuda_linear(cu, dx, dy, m, k, nout, dw, db, 0, &err) == FS_OK, "%s", err.msg);
    float *from0 = to_host(dy, m * nout);
    CHECK(fs_cuda_linear_whole(cu, dx, dy, m, k, nout, dw, db, &err) == FS_OK, "%s", err.msg);
    float *big = to_host(dy, m * nout);
    CHECK(memcmp(big, from0, m * nout * 4) == 0, "linear_whole of 5000 rows differs from the tiles from row 0");
    fs_free(ref_small); fs_free(small); fs_free(from0); fs_free(big);
    fs_free(whole); fs_free(part);
    fs_cuda_free(cu, dx); fs_cuda_free(cu, dw); fs_cuda_free(cu, db); fs_cuda_free(cu, dy);
    fs_cuda_free(cu, dy2);
    fs_free(x); fs_free(w); fs_free(bias); fs_free(ref);
}

/* Conv d over the whole map against the reference (rows [ref0, ref0 + nref)
 * of the output only when the map is large), then as two strips cut at
 * output row `cut`, each from a buffer of just the input rows it needs. */
static void conv_case(const char *name, fs_conv2d_desc d, int cut, int ref0, int nref) {
    int out_h = fs_conv2d_desc_out_size(&d, d.in_h), out_w = fs_conv2d_desc_out_size(&d, d.in_w);
    size_t K = (size_t)d.k * d.k * d.cin;
    size_t xlen = (size_t)d.n * d.in_h * d.in_w * d.cin, ylen = (size_t)d.n * out_h * out_w * d.cout;
    float *x = host_random(xlen, 11, 1.0f), *wt = host_random(d.cout * K, 12, 1.0f / sqrtf(K));
    float *bias = host_random(d.cout, 13, 1.0f);
    float *dx = dev_from(x, xlen * 4), *dw = dev_from(wt, d.cout * K * 4);
    float *db = dev_from(bias, d.cout * 4), *dy = dev_from(NULL, ylen * 4);
    d.x_row0 = 0; d.x_rows = d.in_h; d.y_row0 = 0; d.y_rows = out_h;
    CHECK(fs_cuda_conv2d(cu, &d, dx, dw, db, dy, &err) == FS_OK, "%s: %s", name, err.msg);
    float *whole = to_host(dy, ylen);
    /* the reference on rows [ref0, ref0 + nref) */
    fs_conv2d_desc r = d;
    r.y_row0 = ref0; r.y_rows = nref;
    size_t rrow = (size_t)out_w * d.cout;
    float *ref = fs_alloc((size_t)d.n * nref * rrow * 4), *sel = fs_alloc((size_t)d.n * nref * rrow * 4);
    fs_conv2d_ref(&r, x, wt, bias, ref);
    for (int b = 0; b < d.n; b++)
        memcpy(sel + (size_t)b * nref * rrow, whole + ((size_t)b * out_h + ref0) * rrow,
               nref * rrow * 4);
    double e = rel_max(sel, ref, (size_t)d.n * nref * rrow);
    CHECK(e < 2e-6, "conv %s: error %g against the reference", name, e);
    /* two strips, each from its own buffer holding only the rows it reads */
    for (int s = 0; s < 2; s++) {
        fs_conv2d_desc sd = d;
        sd.y_row0 = s ? cut : 0;
        sd.y_rows = s ? out_h - cut : cut;
        int a0, a1;
        fs_conv2d_input_rows(&sd, &a0, &a1);
        if (a0 < 0) a0 = 0;
        if (a1 > d.in_h) a1 = d.in_h;
        sd.x_row0 = a0; sd.x_rows = a1 - a0;
        size_t irow = (size_t)d.in_w * d.cin, slen = (size_t)d.n * sd.x_rows * irow;
        float *sx = fs_alloc(slen * 4 + 4);
        for (int b = 0; b < d.n; b++)
            memcpy(sx + (size_t)b * sd.x_rows * irow, x + ((size_t)b * d.in_h + a0) * irow,
                   sd.x_rows * irow * 4);
        float *dsx = dev_from(sx, slen * 4), *dsy = dev_from(NULL, (size_t)d.n * sd.y_rows * rrow * 4);
        CHECK(fs_cuda_conv2d(cu, &sd, dsx, dw, db, dsy, &err) == FS_OK, "%s strip: %s", name, err.msg);
        float *got = to_host(dsy, (size_t)d.n * sd.y_rows * rrow);
        int same = 1;
        for (int b = 0; b < d.n; b++)
            same &= memcmp(got + (size_t)b * sd.y_rows * rrow,
                           whole + ((size_t)b * out_h + sd.y_row0) * rrow, sd.y_rows * rrow * 4) == 0;
        CHECK(same, "conv %s: strip %d differs from the whole map's rows", name, s);
        fs_free(sx); fs_free(got);
        fs_cuda_free(cu, dsx); fs_cuda_free(cu, dsy);
    }
    /* a strip whose buffer lacks a row it needs is refused, not read past */
    fs_conv2d_desc bad = d;
    bad.x_rows = d.in_h - 1;
    CHECK(fs_cuda_conv2d(cu, &bad, dx, dw, db, dy, &err) == FS_ERR_RANGE, "%s: a missing "
          "input row must be refused", name);
    fs_free(x); fs_free(wt); fs_free(bias); fs_free(whole); fs_free(ref); fs_free(sel);
    fs_cuda_free(cu, dx); fs_cuda_free(cu, dw); fs_cuda_free(cu, db); fs_cuda_free(cu, dy);
}

static void test_conv(void) {
    fs_conv2d_desc d = {0};
    d.n = 2; d.in_h = 21; d.in_w = 19; d.cin = 8; d.cout = 12; d.k = 3; d.stride = 1; d.dil = 1;
    conv_case("3x3", d, 9, 0, 21);
    d.dil = 2;
    conv_case("3x3 dilation 2", d, 10, 0, 21);
    d.dil = 1; d.stride = 2; d.pad_end = 1; d.in_h = 22; d.in_w = 20;
    conv_case("3x3 stride 2 pad_end", d, 5, 0, 11);
    d.stride = 1; d.pad_end = 0; d.k = 1; d.cin = 24; d.cout = 5;
    conv_case("1x1", d, 3, 0, 22);
    /* a layer large enough for two row tiles (K = 4608, out_w 128: 168
     * rows per tile), the reference on rows across the seam */
    fs_conv2d_desc big = {0};
    big.n = 1; big.in_h = 256; big.in_w = 128; big.cin = 512; big.cout = 64; big.k = 3;
    big.stride = 1; big.dil = 1;
    conv_case("3x3 512 ch, two tiles", big, 150, 166, 4);
}

static void attention_case(const char *name, int nq, int nk, int heads, int dh, int pad,
                           int64_t q0, int cut) {
    int width = heads * dh, ld = width + pad;
    float *q = host_random((size_t)nq * ld, 14, 1.0f), *k = host_random((size_t)nk * ld, 15, 1.0f);
    float *v = host_random((size_t)nk * ld, 16, 1.0f);
    float *ref = fs_alloc((size_t)nq * ld * 4);
    float scale = 1.0f / sqrtf((float)dh);
    fs_attention_ref(q, ld, k, ld, v, ld, ref, ld, nq, nk, heads, dh, scale);
    float *dq = dev_from(q, (size_t)nq * ld * 4), *dk = dev_from(k, (size_t)nk * ld * 4);
    float *dv = dev_from(v, (size_t)nk * ld * 4), *dout = dev_from(NULL, (size_t)nq * ld * 4);
    CHECK(fs_cuda_attention(cu, dq, ld, dk, ld, dv, ld, dout, ld, nq, nk, heads, dh, scale, q0,
                            &err) == FS_OK, "%s: %s", name, err.msg);
    float *got = to_host(dout, (size_t)nq * ld);
    double worst = 0, den = 1e-30;
    for (int i = 0; i < nq; i++)
        for (int j = 0; j < width; j++) {
            double e = fabs((double)got[(size_t)i * ld + j] - ref[(size_t)i * ld + j]);
            if (e > worst || e != e) worst = e;
            if (fabs(ref[(size_t)i * ld + j]) > den) den = fabs(ref[(size_t)i * ld + j]);
        }
    CHECK(worst / den < 2e-6, "attention %s: error %g", name, worst / den);
    /* the query rows [cut, nq) alone, from their own buffer */
    float *dq2 = dev_from(q + (size_t)cut * ld, (size_t)(nq - cut) * ld * 4);
    float *do2 = dev_from(NULL, (size_t)(nq - cut) * ld * 4);
    CHECK(fs_cuda_attention(cu, dq2, ld, dk, ld, dv, ld, do2, ld, nq - cut, nk, heads, dh, scale,
                            q0 + cut, &err) == FS_OK, "%s: %s", name, err.msg);
    float *part = to_host(do2, (size_t)(nq - cut) * ld);
    int same = 1;
    for (int i = cut; i < nq; i++)
        same &= memcmp(part + (size_t)(i - cut) * ld, got + (size_t)i * ld, width * 4) == 0;
    CHECK(same, "attention %s: a strip's rows differ from the whole's", name);
    fs_free(q); fs_free(k); fs_free(v); fs_free(ref); fs_free(got); fs_free(part);
    fs_cuda_free(cu, dq); fs_cuda_free(cu, dk); fs_cuda_free(cu, dv); fs_cuda_free(cu, dout);
    fs_cuda_free(cu, dq2); fs_cuda_free(cu, do2);
}

/* One memmove case on context ctx: count floats from buf + from to buf + to
 * within a device copy of base (n floats), against memmove on the host. */
static void copy_case(fs_cuda *ctx, const char *name, const float *base, size_t n, size_t from,
                      size_t to, size_t count) {
    float *dbuf = dev_from(base, n * 4), *ref = fs_alloc(n * 4);
    memcpy(ref, base, n * 4);
    memmove(ref + to, ref + from, count * 4);
    CHECK(fs_cuda_copy(ctx, dbuf + to, dbuf + from, count * 4, &err) == FS_OK, "copy %s: %s",
          name, err.msg);
    CHECK(fs_cuda_sync(ctx, &err) == FS_OK, "copy %s: %s", name, err.msg);
    float *got = to_host(dbuf, n);
    CHECK(memcmp(got, ref, n * 4) == 0, "copy %s differs from memmove", name);
    fs_free(got); fs_free(ref);
    fs_cuda_free(cu, dbuf);
}

/* The glue ops against plain host loops: every one but small_linear is one
 * float operation (or none) per element, so the bits must match; small_linear
 * sums in double without FMA, like nn_small_linear (built -ffp-contract=off). */
static void test_glue(void) {
    /* add */
    const size_t n = 100003;
    float *x = host_random(n, 17, 2.0f), *y = host_random(n, 18, 2.0f), *ref = fs_alloc(n * 4);
    float *dx = dev_from(x, n * 4), *dy = dev_from(y, n * 4);
    for (size_t i = 0; i < n; i++) ref[i] = y[i] + x[i];
    CHECK(fs_cuda_add(cu, dy, dx, n, &err) == FS_OK, "add: %s", err.msg);
    float *got = to_host(dy, n);
    CHECK(memcmp(got, ref, n * 4) == 0, "add differs from the host loop");
    fs_free(got);

    /* add_bcast: y[b][p][ch] += v[b][ch] */
    {
        const int bn = 2, c = 19;
        const size_t pixels = 37, total = (size_t)bn * pixels * c;
        float *v = host_random((size_t)bn * c, 19, 1.0f);
        float *dv = dev_from(v, (size_t)bn * c * 4);
        CHECK(fs_cuda_upload(cu, dy, y, total * 4, &err) == FS_OK, "%s", err.msg);
        for (int b = 0; b < bn; b++)
            for (size_t p = 0; p < pixels; p++)
                for (int ch = 0; ch < c; ch++) {
                    size_t i = ((size_t)b * pixels + p) * c + ch;
                    ref[i] = y[i] + v[(size_t)b * c + ch];
                }
        CHECK(fs_cuda_add_bcast(cu, dy, dv, bn, pixels, c, &err) == FS_OK, "add_bcast: %s",
              err.msg);
        got = to_host(dy, total);
        CHECK(memcmp(got, ref, total * 4) == 0, "add_bcast differs from the host loop");
        fs_free(got); fs_free(v);
        fs_cuda_free(cu, dv);
    }

    /* concat: y[p] = [a[p] (5) | s[p] (7)] */
    {
        const int ca = 5, cs = 7;
        const size_t pixels = 101, total = pixels * (ca + cs);
        for (size_t p = 0; p < pixels; p++) {
            memcpy(ref + p * (ca + cs), x + p * ca, ca * 4);
            memcpy(ref + p * (ca + cs) + ca, y + p * cs, cs * 4);
        }
        float *ds = dev_from(y, pixels * cs * 4), *dout = dev_from(NULL, total * 4);
        CHECK(fs_cuda_concat(cu, dx, ca, ds, cs, dout, pixels, &err) == FS_OK, "concat: %s",
              err.msg);
        got = to_host(dout, total);
        CHECK(memcmp(got, ref, total * 4) == 0, "concat differs from the host loop");
        fs_free(got);
        fs_cuda_free(cu, ds); fs_cuda_free(cu, dout);
    }

    /* scale_channels: the first 9 of 19 channels times 1.7, the rest untouched */
    {
        const int c = 19, first = 9;
        const float b = 1.7f;
        const size_t pixels = 333, total = pixels * c;
        CHECK(fs_cuda_upload(cu, dy, y, total * 4, &err) == FS_OK, "%s", err.msg);
        memcpy(ref, y, total * 4);
        for (size_t p = 0; p < pixels; p++)
            for (int ch = 0; ch < first; ch++) ref[p * c + ch] *= b;
        CHECK(fs_cuda_scale_channels(cu, dy, pixels, c, first, b, &err) == FS_OK,
              "scale_channels: %s", err.msg);
        CHECK(fs_cuda_scale_channels(cu, dy, pixels, c, 0, 5.0f, &err) == FS_OK,
              "scale_channels first=0: %s", err.msg);
        got = to_host(dy, total);
        CHECK(memcmp(got, ref, total * 4) == 0, "scale_channels differs from the host loop");
        fs_free(got);
        CHECK(fs_cuda_scale_channels(cu, dy, pixels, c, c + 1, b, &err) == FS_ERR_INVALID,
              "scale_channels with first > c must be refused");
    }

    /* copy: disjoint, in place, then overlapping memmoves both ways with a
     * short shift (bounced through scratch) and a long one, on this context
     * and on one with 4 KB of scratch (many scratch pieces for the short
     * shift, direct pieces of the shift's size for the long one) */
    {
        float *dz = dev_from(NULL, n * 4);
        CHECK(fs_cuda_copy(cu, dz, dx, n * 4, &err) == FS_OK, "copy: %s", err.msg);
        CHECK(fs_cuda_copy(cu, dz, dz, n * 4, &err) == FS_OK, "copy in place: %s", err.msg);
        got = to_host(dz, n);
        CHECK(memcmp(got, x, n * 4) == 0, "copy differs from its source");
        fs_free(got);
        fs_cuda_free(cu, dz);
        fs_cuda *tiny = NULL;
        CHECK(fs_cuda_open(&tiny, 0, 4096, &err) == FS_OK, "%s", err.msg);
        fs_cuda *ctxs[2] = {cu, tiny};
        const size_t shifts[2] = {3, 5000};
        for (int k = 0; k < 2; k++) {
            if (!ctxs[k]) continue;
            for (int s = 0; s < 2; s++) {
                char name[64];
                snprintf(name, sizeof name, "forward by %zu (%s scratch)", shifts[s],
                         k ? "4 KB" : "512 MB");
                copy_case(ctxs[k], name, x, n, shifts[s], 0, n - shifts[s]);
                snprintf(name, sizeof name, "backward by %zu (%s scratch)", shifts[s],
                         k ? "4 KB" : "512 MB");
                copy_case(ctxs[k], name, x, n, 0, shifts[s], n - shifts[s]);
            }
        }
        if (tiny) fs_cuda_close(tiny);
    }

    /* zero: floats [7, 1007) only */
    CHECK(fs_cuda_upload(cu, dy, y, n * 4, &err) == FS_OK, "%s", err.msg);
    CHECK(fs_cuda_zero(cu, dy + 7, 1000 * 4, &err) == FS_OK, "zero: %s", err.msg);
    got = to_host(dy, n);
    memcpy(ref, y, n * 4);
    memset(ref + 7, 0, 1000 * 4);
    CHECK(memcmp(got, ref, n * 4) == 0, "zero touched the wrong floats");
    fs_free(got);

    /* small_linear: m=2, k=1280 -> 700, with and without bias */
    {
        const int m = 2, k = 1280, nout = 700;
        float *w = host_random((size_t)nout * k, 20, 0.05f), *bias = host_random(nout, 21, 1.0f);
        float *dw = dev_from(w, (size_t)nout * k * 4), *db = dev_from(bias, nout * 4);
        float *lref = fs_alloc((size_t)m * nout * 4), *dout = dev_from(NULL, (size_t)m * nout * 4);
        for (int with_bias = 1; with_bias >= 0; with_bias--) {
            for (int i = 0; i < m; i++)
                for (int j = 0; j < nout; j++) {
                    double s = with_bias ? (double)bias[j] : 0.0;
                    for (int p = 0; p < k; p++)
                        s += (double)x[(size_t)i * k + p] * (double)w[(size_t)j * k + p];
                    lref[(size_t)i * nout + j] = (float)s;
                }
            CHECK(fs_cuda_small_linear(cu, dx, dout, m, k, nout, dw, with_bias ? db : NULL,
                                       &err) == FS_OK, "small_linear: %s", err.msg);
            got = to_host(dout, (size_t)m * nout);
            double e = rel_max(got, lref, (size_t)m * nout);
            CHECK(e < 1e-6, "small_linear (bias %d) error %g", with_bias, e);
            CHECK(memcmp(got, lref, (size_t)m * nout * 4) == 0,
                  "small_linear (bias %d): not the host's double sum bit for bit", with_bias);
            fs_free(got);
        }
        fs_free(w); fs_free(bias); fs_free(lref);
        fs_cuda_free(cu, dw); fs_cuda_free(cu, db); fs_cuda_free(cu, dout);
    }
    fs_cuda_free(cu, dx); fs_cuda_free(cu, dy);
    fs_free(x); fs_free(y); fs_free(ref);
}

int main(void) {
    char why[256];
    if (!fs_cuda_available(why, sizeof why)) {
        printf("test_cuda: SKIP: %s\n", why);
        return 77;
    }
    fs_threads_init(0);
    if (fs_cuda_open(&cu, 0, (size_t)512 << 20, &err) != FS_OK) {
        fprintf(stderr, "test_cuda: %s\n", err.msg);
        return 1;
    }
    printf("test_cuda: %s\n", fs_cuda_device_name(cu));
    test_pointwise();
    test_norms();
    test_linear();
    test_conv();
    test_glue();
    /* the UNet's self-attention shape (rows cross the 1024-query tile at
     * global row 1024), a cross-attention-like short key set with padded
     * strides, and the VAE's single 512-wide head */
    attention_case("self", 300, 300, 4, 64, 0, 900, 100);
    attention_case("cross", 200, 77, 3, 40, 8, 0, 70);
    attention_case("vae head 512", 600, 600, 1, 512, 0, 0, 333);
    /* 64 heads x 2048 keys: 512-query tiles, three of them */
    attention_case("many heads", 1500, 2048, 64, 8, 0, 0, 700);
    /* scratch too small for a layer: a clear error, nothing launched */
    fs_conv2d_desc d = {0};
    d.n = 1; d.in_h = 4096; d.in_w = 4096; d.cin = 512; d.cout = 512; d.k = 3; d.stride = 1;
    d.dil = 1; d.x_rows = 4096; d.y_rows = 4096;
    fs_cuda *small = NULL;
    CHECK(fs_cuda_open(&small, 0, 1 << 20, &err) == FS_OK, "%s", err.msg);
    if (small) {
        float *any = dev_from(NULL, 256);
        CHECK(fs_cuda_conv2d(small, &d, any, any, NULL, any, &err) == FS_ERR_NOMEM,
              "1 MB of scratch must be refused for a 512-channel 3x3 conv");
        CHECK(strstr(err.msg, "scratch") != NULL, "the error names the scratch: %s", err.msg);
        fs_cuda_free(cu, any);
        fs_cuda_close(small);
    }
    fs_cuda_close(cu);
    return check_report("test_cuda");
}
