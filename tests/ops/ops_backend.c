/* The harness's door to the backend under test (ops_harness.h, "hb_*"):
 * each wrapper has the CPU op's signature on host buffers, copies the
 * inputs (and the outputs' current contents: cases prefill them with NaN to
 * see that every output is written, or keep padding columns) into
 * harness_be's memory, runs the table's op there and copies the outputs
 * back. On the CPU backend these are plain copies around the same fast op,
 * so its bits are the op's own. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ops/ops_harness.h"

const fs_backend *harness_be;

int harness_on_cpu(void) { return harness_be == fs_backend_cpu(); }

/* What the last op call left for the next comparison: 0 ran, 1 unsupported
 * on this backend, 2 failed (message printed). */
static int pending;

int hb_take_pending(void) {
    int p = pending;
    pending = 0;
    return p;
}

int hb_ran(const char *op, fs_code rc, const fs_error *err) {
    if (rc == FS_OK) return 1;
    if (rc == FS_ERR_UNSUPPORTED && !harness_on_cpu()) {
        if (pending == 0) pending = 1;
        return 0;
    }
    fprintf(stderr, "%s %s: %s (%s)\n", harness_be->name, op, err ? err->msg : "",
            fs_code_name(rc));
    pending = 2;
    return 0;
}

void *hb_from(const void *host, size_t bytes) {
    void *d = NULL;
    fs_error err = {0};
    if (harness_be->op->alloc(harness_be, &d, bytes ? bytes : 4, &err) != FS_OK ||
        (host && bytes && harness_be->op->upload(harness_be, d, host, bytes, &err) != FS_OK)) {
        fprintf(stderr, "%s memory: %s\n", harness_be->name, err.msg);
        exit(2);
    }
    return d;
}

void hb_to(void *host, const void *dev, size_t bytes) {
    fs_error err = {0};
    if (bytes && harness_be->op->download(harness_be, host, dev, bytes, &err) != FS_OK) {
        fprintf(stderr, "%s memory: %s\n", harness_be->name, err.msg);
        exit(2);
    }
}

void hb_free(void *dev) {
    if (dev) harness_be->op->free(harness_be, dev);
}

void hb_check_identical(const char *op, const char *shape, fs_code rc, const fs_error *err,
                        const void *dev, const float *ref, size_t n) {
    float *got = fs_alloc(n * sizeof(float) + 4);
    if (hb_ran(op, rc, err)) hb_to(got, dev, n * sizeof(float));
    harness_identical(op, shape, ref, got, n);
    fs_free(got);
}

#define F(n) ((size_t)(n) * sizeof(float))
#define OP(name, ...) harness_be->op->name(harness_be, __VA_ARGS__)

/* An output buffer: y's device copy, or x's when the op runs in place. */
static void *out_of(const void *x, void *dx, void *y, size_t bytes) {
    return y == x ? dx : hb_from(y, bytes);
}

fs_code hb_linear(const float *x, float *y, size_t m, int k, int nout, const float *w,
                  const float *bias, int64_t m0, fs_arena *scratch, fs_error *err) {
    void *dx = hb_from(x, F(m * k)), *dw = hb_from(w, F((size_t)nout * k));
    void *db = bias ? hb_from(bias, F(nout)) : NULL, *dy = hb_from(y, F(m * nout));
    fs_code rc = OP(linear, dx, dy, m, k, nout, dw, db, m0, scratch, err);
    if (hb_ran("linear", rc, err)) hb_to(y, dy, F(m * nout));
    hb_free(dx); hb_free(dw); hb_free(db); hb_free(dy);
    return rc;
}

fs_code hb_linear_whole(const float *x, float *y, size_t m, int k, int nout, const float *w,
                        const float *bias, fs_arena *scratch, fs_error *err) {
    void *dx = hb_from(x, F(m * k)), *dw = hb_from(w, F((size_t)nout * k));
    void *db = bias ? hb_from(bias, F(nout)) : NULL, *dy = hb_from(y, F(m * nout));
    fs_code rc = OP(linear_whole, dx, dy, m, k, nout, dw, db, scratch, err);
    if (hb_ran("linear whole", rc, err)) hb_to(y, dy, F(m * nout));
    hb_free(dx); hb_free(dw); hb_free(db); hb_free(dy);
    return rc;
}

fs_code hb_conv2d(const fs_conv2d_desc *d, const float *x, const float *w, const float *bias,
                  float *y, fs_arena *scratch, fs_error *err) {
    const size_t nx = (size_t)d->n * (d->x_rows > 0 ? d->x_rows : 0) * d->in_w * d->cin;
    const int out_w = fs_conv2d_desc_out_size(d, d->in_w);
    const size_t ny = (size_t)d->n * (d->y_rows > 0 ? d->y_rows : 0) * (out_w > 0 ? out_w : 0) *
                      d->cout;
    void *dx = hb_from(x, F(nx)), *dw = hb_from(w, F((size_t)d->cout * d->k * d->k * d->cin));
    void *db = bias ? hb_from(bias, F(d->cout)) : NULL, *dy = hb_from(y, F(ny));
    fs_code rc = OP(conv2d, d, dx, dw, db, dy, scratch, err);
    if (hb_ran("conv2d", rc, err)) hb_to(y, dy, F(ny));
    hb_free(dx); hb_free(dw); hb_free(db); hb_free(dy);
    return rc;
}

static fs_code attention_any(int causal, const float *q, int ldq, const float *k, int ldk,
                             const float *v, int ldv, float *o, int ldo, int nq, int nk,
                             int heads, int dh, float scale, int64_t q0, fs_arena *scratch,
                             fs_error *err) {
    void *dq = hb_from(q, F((size_t)nq * ldq)), *dk = hb_from(k, F((size_t)nk * ldk));
    void *dv = hb_from(v, F((size_t)nk * ldv)), *dout = hb_from(o, F((size_t)nq * ldo));
    fs_code rc = causal ? OP(attention_causal, dq, ldq, dk, ldk, dv, ldv, dout, ldo, nq, nk,
                             heads, dh, scale, q0, scratch, err)
                        : OP(attention, dq, ldq, dk, ldk, dv, ldv, dout, ldo, nq, nk, heads, dh,
                             scale, q0, scratch, err);
    if (hb_ran(causal ? "causal attention" : "attention", rc, err))
        hb_to(o, dout, F((size_t)nq * ldo));
    hb_free(dq); hb_free(dk); hb_free(dv); hb_free(dout);
    return rc;
}

fs_code hb_attention(const float *q, int ldq, const float *k, int ldk, const float *v, int ldv,
                     float *o, int ldo, int nq, int nk, int heads, int dh, float scale,
                     int64_t q0, fs_arena *scratch, fs_error *err) {
    return attention_any(0, q, ldq, k, ldk, v, ldv, o, ldo, nq, nk, heads, dh, scale, q0, scratch,
                         err);
}

fs_code hb_attention_causal(const float *q, int ldq, const float *k, int ldk, const float *v,
                            int ldv, float *o, int ldo, int nq, int nk, int heads, int dh,
                            float scale, int64_t q0, fs_arena *scratch, fs_error *err) {
    return attention_any(1, q, ldq, k, ldk, v, ldv, o, ldo, nq, nk, heads, dh, scale, q0, scratch,
                         err);
}

void hb_groupnorm_partials(const float *x, int n, int rows, int w, int c, int groups,
                           double *part) {
    const size_t nx = (size_t)n * rows * w * c, np = (size_t)rows * n * groups * 2;
    fs_error err = {0};
    void *dx = hb_from(x, F(nx)), *dp = hb_from(part, np * sizeof(double));
    if (hb_ran("groupnorm partials", OP(gn_partials, dx, n, rows, w, c, groups, dp, &err), &err))
        hb_to(part, dp, np * sizeof(double));
    hb_free(dx); hb_free(dp);
}

void hb_groupnorm_apply(const float *x, float *y, int n, int rows, int w, int c, int groups,
                        const float *mean, const float *rstd, const float *gamma,
                        const float *beta, int silu) {
    const size_t nx = (size_t)n * rows * w * c, ng = (size_t)n * groups;
    fs_error err = {0};
    void *dx = hb_from(x, F(nx)), *dy = out_of(x, dx, y, F(nx));
    void *dm = hb_from(mean, F(ng)), *dr = hb_from(rstd, F(ng));
    void *dg = gamma ? hb_from(gamma, F(c)) : NULL, *db = beta ? hb_from(beta, F(c)) : NULL;
    fs_code rc = OP(gn_apply, dx, dy, n, rows, w, c, groups, dm, dr, dg, db, silu, &err);
    if (hb_ran("groupnorm apply", rc, &err)) hb_to(y, dy, F(nx));
    if (dy != dx) hb_free(dy);
    hb_free(dx); hb_free(dm); hb_free(dr); hb_free(dg); hb_free(db);
}

void hb_layernorm(const float *x, float *y, size_t tokens, int c, float eps, const float *gamma,
                  const float *beta) {
    const size_t nx = tokens * c;
    fs_error err = {0};
    void *dx = hb_from(x, F(nx)), *dy = out_of(x, dx, y, F(nx));
    void *dg = gamma ? hb_from(gamma, F(c)) : NULL, *db = beta ? hb_from(beta, F(c)) : NULL;
    if (hb_ran("layernorm", OP(layernorm, dx, dy, tokens, c, eps, dg, db, &err), &err))
        hb_to(y, dy, F(nx));
    if (dy != dx) hb_free(dy);
    hb_free(dx); hb_free(dg); hb_free(db);
}

typedef fs_code (*unary_op)(const fs_backend *, const float *, float *, size_t, fs_error *);

static void unary(const char *name, unary_op op, const float *x, float *y, size_t n) {
    fs_error err = {0};
    void *dx = hb_from(x, F(n)), *dy = out_of(x, dx, y, F(n));
    if (hb_ran(name, op(harness_be, dx, dy, n, &err), &err)) hb_to(y, dy, F(n));
    if (dy != dx) hb_free(dy);
    hb_free(dx);
}

void hb_silu(const float *x, float *y, size_t n) { unary("silu", harness_be->op->silu, x, y, n); }
void hb_gelu(const float *x, float *y, size_t n) { unary("gelu", harness_be->op->gelu, x, y, n); }
void hb_quick_gelu(const float *x, float *y, size_t n) {
    unary("quick gelu", harness_be->op->quick_gelu, x, y, n);
}

void hb_geglu(const float *x, float *y, size_t m, int d) {
    fs_error err = {0};
    void *dx = hb_from(x, F(m * 2 * d)), *dy = y == x ? dx : hb_from(y, F(m * d));
    if (hb_ran("geglu", OP(geglu, dx, dy, m, d, &err), &err)) hb_to(y, dy, F(m * d));
    if (dy != dx) hb_free(dy);
    hb_free(dx);
}

void hb_upsample_nearest2x(const float *x, float *y, int n, int rows, int w, int c) {
    const size_t nx = (size_t)n * rows * w * c;
    fs_error err = {0};
    void *dx = hb_from(x, F(nx)), *dy = hb_from(y, F(4 * nx));
    if (hb_ran("nearest 2x", OP(upsample_nearest2x, dx, dy, n, rows, w, c, &err), &err))
        hb_to(y, dy, F(4 * nx));
    hb_free(dx); hb_free(dy);
}

void hb_resize_bicubic(const fs_resize_desc *d, const float *x, float *y) {
    const size_t nx = (size_t)d->n * d->x_rows * d->in_w * d->c;
    const size_t ny = (size_t)d->n * d->y_rows * d->out_w * d->c;
    fs_error err = {0};
    void *dx = hb_from(x, F(nx)), *dy = hb_from(y, F(ny));
    if (hb_ran("bicubic", OP(resize_bicubic, d, dx, dy, &err), &err)) hb_to(y, dy, F(ny));
    hb_free(dx); hb_free(dy);
}

fs_code hb_blur(const fs_blur_desc *d, const float *g, const float *x, float *y,
                fs_arena *scratch, fs_error *err) {
    const size_t row = (size_t)d->w * d->c;
    const size_t nx = (size_t)d->n * (d->x_rows > 0 ? d->x_rows : 0) * row;
    const size_t ny = (size_t)d->n * (d->y_rows > 0 ? d->y_rows : 0) * row;
    void *dx = hb_from(x, F(nx)), *dy = hb_from(y, F(ny));
    fs_code rc = OP(blur, d, g, dx, dy, scratch, err);
    if (hb_ran("blur", rc, err)) hb_to(y, dy, F(ny));
    hb_free(dx); hb_free(dy);
    return rc;
}

fs_code hb_blur_fft(const float *x, float *y, int n, int h, int w, int c, float sigma,
                    fs_error *err) {
    const size_t nx = (size_t)(n > 0 ? n : 0) * (h > 0 ? h : 0) * (w > 0 ? w : 0) * c;
    void *dx = hb_from(x, F(nx)), *dy = out_of(x, dx, y, F(nx));
    fs_code rc = OP(blur_fft, dx, dy, n, h, w, c, sigma, err);
    if (hb_ran("blur fft", rc, err)) hb_to(y, dy, F(nx));
    if (dy != dx) hb_free(dy);
    hb_free(dx);
    return rc;
}

void hb_freeu_row_coeffs(const float *row, int y, int h, int w, int c, double *out) {
    const size_t nk = (size_t)8 * c;
    fs_error err = {0};
    void *dx = hb_from(row, F((size_t)w * c)), *dk = hb_from(out, nk * sizeof(double));
    if (hb_ran("freeu partials", OP(freeu_partials, dx, 1, y, 1, h, w, c, dk, &err), &err))
        hb_to(out, dk, nk * sizeof(double));
    hb_free(dx); hb_free(dk);
}

void hb_freeu_apply(float *x, int row0, int rows, int h, int w, int c, const double *coeffs,
                    float s) {
    const size_t nx = (size_t)(rows > 0 ? rows : 0) * w * c;
    fs_error err = {0};
    void *dx = hb_from(x, F(nx)), *dk = hb_from(coeffs, (size_t)8 * c * sizeof(double));
    if (hb_ran("freeu apply", OP(freeu_apply, dx, 1, row0, rows, h, w, c, dk, s, &err), &err))
        hb_to(x, dx, F(nx));
    hb_free(dx); hb_free(dk);
}
