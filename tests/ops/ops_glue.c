/* Op cases: the glue ops of the backend table (kernels/glue.c on the CPU:
 * add, subtract, broadcast add, concat, channel scaling, the tiny embedding
 * products) and its memory ops (copies that may overlap, zero fills, the
 * pitched row copies a halo uses), against plain host loops. Every op but
 * small_linear is one float operation (or none) per element, so the bits
 * must match; small_linear sums in double in index order, as the loop here
 * (built -ffp-contract=off), so it must match too. On a CUDA device also
 * what is its own: GEGLU refused in place, copies through a 4 KB scratch,
 * and a layer too big for the context's scratch refused clearly. */
#include "ops/ops_harness.h"
#include <stdio.h>
#include <string.h>

#define OP(name, ...) harness_be->op->name(harness_be, __VA_ARGS__)

/* One check of an op's return code. */
static void code_is(const char *op, const char *what, fs_code got, fs_code want) {
    float g = (float)got, w = (float)want;
    harness_identical(op, what, &w, &g, 1);
}

static void add_sub_case(size_t n) {
    char shape[48];
    snprintf(shape, sizeof shape, "n=%zu", n);
    float *x = harness_random(n, -2, 2), *y = harness_random(n, -2, 2);
    float *ref = fs_alloc(n * sizeof(float) + 4);
    fs_error err = {0};
    for (int op = 0; op < 2; op++) {
        for (size_t i = 0; i < n; i++) ref[i] = op ? y[i] - x[i] : y[i] + x[i];
        void *dx = hb_from(x, n * 4), *dy = hb_from(y, n * 4);
        fs_code rc = op ? OP(sub, dy, dx, n, &err) : OP(add, dy, dx, n, &err);
        hb_check_identical(op ? "sub" : "add", shape, rc, &err, dy, ref, n);
        hb_free(dx);
        hb_free(dy);
    }
    fs_free(x);
    fs_free(y);
    fs_free(ref);
}

static void bcast_concat_scale(void) {
    fs_error err = {0};
    /* add_bcast: y[b][p][ch] += v[b][ch] */
    const int bn = 2, c = 19;
    const size_t pixels = 37, total = (size_t)bn * pixels * c;
    float *y = harness_random(total, -1, 1), *v = harness_random((size_t)bn * c, -1, 1);
    float *ref = fs_alloc(4096 * sizeof(float));
    for (int b = 0; b < bn; b++)
        for (size_t p = 0; p < pixels; p++)
            for (int ch = 0; ch < c; ch++) {
                size_t i = ((size_t)b * pixels + p) * c + ch;
                ref[i] = y[i] + v[(size_t)b * c + ch];
            }
    void *dy = hb_from(y, total * 4), *dv = hb_from(v, (size_t)bn * c * 4);
    hb_check_identical("add_bcast", "n=2 pixels=37 c=19",
                       OP(add_bcast, dy, dv, bn, pixels, c, &err), &err, dy, ref, total);
    hb_free(dy);
    hb_free(dv);

    /* concat: y[p] = [a[p] (5) | s[p] (7)] */
    const int ca = 5, cs = 7;
    const size_t px = 101, ctotal = px * (ca + cs);
    float *a = harness_random(px * ca, -1, 1), *s = harness_random(px * cs, -1, 1);
    for (size_t p = 0; p < px; p++) {
        memcpy(ref + p * (ca + cs), a + p * ca, ca * 4);
        memcpy(ref + p * (ca + cs) + ca, s + p * cs, cs * 4);
    }
    void *da = hb_from(a, px * ca * 4), *ds = hb_from(s, px * cs * 4);
    void *dout = hb_from(NULL, ctotal * 4);
    hb_check_identical("concat", "pixels=101 5|7", OP(concat, da, ca, ds, cs, dout, px, &err), &err,
                       dout, ref, ctotal);
    hb_free(da);
    hb_free(ds);
    hb_free(dout);

    /* scale_channels: the first 9 of 19 channels times 1.7, the rest untouched;
     * first = 0 touches nothing; first > c is refused */
    const int sc = 19, first = 9;
    const size_t spx = 33, stotal = spx * sc;
    memcpy(ref, y, stotal * 4);
    for (size_t p = 0; p < spx; p++)
        for (int ch = 0; ch < first; ch++) ref[p * sc + ch] *= 1.7f;
    dy = hb_from(y, stotal * 4);
    fs_code rc = OP(scale_channels, dy, spx, sc, first, 1.7f, &err);
    if (rc == FS_OK) rc = OP(scale_channels, dy, spx, sc, 0, 5.0f, &err);
    hb_check_identical("scale_channels", "pixels=33 c=19 first=9", rc, &err, dy, ref, stotal);
    code_is("scale_channels", "first > c refused",
            OP(scale_channels, dy, spx, sc, sc + 1, 1.7f, &err), FS_ERR_INVALID);
    hb_free(dy);
    fs_free(y);
    fs_free(v);
    fs_free(ref);
    fs_free(a);
    fs_free(s);
}

static void small_linear_case(int m, int k, int nout) {
    char shape[64];
    float *x = harness_random((size_t)m * k, -1, 1);
    float *w = harness_random((size_t)nout * k, -0.05f, 0.05f);
    float *bias = harness_random(nout, -1, 1), *ref = fs_alloc((size_t)m * nout * 4);
    void *dx = hb_from(x, (size_t)m * k * 4), *dw = hb_from(w, (size_t)nout * k * 4);
    void *db = hb_from(bias, nout * 4), *dout = hb_from(NULL, (size_t)m * nout * 4);
    fs_error err = {0};
    for (int with_bias = 1; with_bias >= 0; with_bias--) {
        for (int i = 0; i < m; i++)
            for (int j = 0; j < nout; j++) {
                double s = with_bias ? (double)bias[j] : 0.0;
                for (int p = 0; p < k; p++)
                    s += (double)x[(size_t)i * k + p] * (double)w[(size_t)j * k + p];
                ref[(size_t)i * nout + j] = (float)s;
            }
        snprintf(shape, sizeof shape, "m=%d k=%d nout=%d bias=%d", m, k, nout, with_bias);
        hb_check_identical("small_linear", shape,
                           OP(small_linear, dx, dout, m, k, nout, dw, with_bias ? db : NULL, &err),
                           &err, dout, ref, (size_t)m * nout);
    }
    hb_free(dx);
    hb_free(dw);
    hb_free(db);
    hb_free(dout);
    fs_free(x);
    fs_free(w);
    fs_free(bias);
    fs_free(ref);
}

/* count floats from buf + from to buf + to within a copy of base (n
 * floats) on backend be, against memmove on the host. */
static void copy_case(const fs_backend *be, const char *name, const float *base, size_t n,
                      size_t from, size_t to, size_t count) {
    const fs_backend *saved = harness_be;
    harness_be = be;
    float *dbuf = hb_from(base, n * 4), *ref = fs_alloc(n * 4);
    memcpy(ref, base, n * 4);
    memmove(ref + to, ref + from, count * 4);
    fs_error err = {0};
    hb_check_identical("copy", name, be->op->copy(be, dbuf + to, dbuf + from, count * 4, &err),
                       &err, dbuf, ref, n);
    fs_free(ref);
    hb_free(dbuf);
    harness_be = saved;
}

static void memory_cases(const fs_backend *small_scratch) {
    const size_t n = 100003;
    float *x = harness_random(n, -1, 1), *ref = fs_alloc(n * 4);
    fs_error err = {0};
    /* copy: disjoint, in place, overlapping both ways (a short shift and a
     * long one), on this backend and, on a device, one with 4 KB of scratch */
    float *dz = hb_from(NULL, n * 4), *dx = hb_from(x, n * 4);
    fs_code rc = OP(copy, dz, dx, n * 4, &err);
    if (rc == FS_OK) rc = OP(copy, dz, dz, n * 4, &err);
    hb_check_identical("copy", "disjoint, then in place", rc, &err, dz, x, n);
    hb_free(dz);
    const fs_backend *bes[2] = {harness_be, small_scratch};
    const size_t shifts[2] = {3, 5000};
    for (int k = 0; k < 2; k++)
        for (int s = 0; bes[k] && s < 2; s++) {
            char name[64];
            snprintf(name, sizeof name, "forward by %zu%s", shifts[s], k ? " (4 KB scratch)" : "");
            copy_case(bes[k], name, x, n, shifts[s], 0, n - shifts[s]);
            snprintf(name, sizeof name, "backward by %zu%s", shifts[s], k ? " (4 KB scratch)" : "");
            copy_case(bes[k], name, x, n, 0, shifts[s], n - shifts[s]);
        }
    /* zero: floats [7, 1007) only */
    memcpy(ref, x, n * 4);
    memset(ref + 7, 0, 1000 * 4);
    hb_check_identical("zero", "floats [7, 1007) of 100003", OP(zero, dx + 7, 1000 * 4, &err), &err,
                       dx, ref, n);
    /* pitched rows (a halo's edge rows of every item): 3 items of 10 rows of
     * 17 floats, rows [2, 5) of each (51 floats) out to a host buffer of
     * pitch 60 floats and back into rows [6, 9) */
    const size_t row = 17, item = 10 * row, pitch = 60;
    float host[3 * 60], *dbuf = hb_from(x, 3 * item * 4);
    memset(host, 0, sizeof host);
    rc = OP(download_rows, host, pitch * 4, dbuf + 2 * row, item * 4, 3 * row * 4, 3, &err);
    if (rc == FS_OK)
        rc = OP(upload_rows, dbuf + 6 * row, item * 4, host, pitch * 4, 3 * row * 4, 3, &err);
    memcpy(ref, x, 3 * item * 4);
    for (int b = 0; b < 3; b++)
        memcpy(ref + b * item + 6 * row, x + b * item + 2 * row, 3 * row * 4);
    hb_check_identical("rows copy", "3 items, rows [2, 5) -> [6, 9), host pitch 60", rc, &err, dbuf,
                       ref, 3 * item);
    hb_free(dbuf);
    hb_free(dx);
    fs_free(x);
    fs_free(ref);
}

/* The text encoders' input rows: a token's row plus its position's. */
static void embed_tokens_case(size_t m, int positions, int c, int vocab) {
    char shape[80];
    snprintf(shape, sizeof shape, "m=%zu positions=%d c=%d vocab=%d", m, positions, c, vocab);
    float *tok = harness_random((size_t)vocab * c, -1, 1);
    float *pos = harness_random((size_t)positions * c, -1, 1), *ref = fs_alloc(m * c * 4 + 4);
    int32_t *ids = fs_alloc(m * sizeof(int32_t) + 4);
    for (size_t r = 0; r < m; r++) {
        ids[r] = harness_int(0, vocab - 1);
        for (int i = 0; i < c; i++)
            ref[r * c + i] = tok[(size_t)ids[r] * c + i] + pos[(r % positions) * c + i];
    }
    void *dt = hb_from(tok, (size_t)vocab * c * 4), *dp = hb_from(pos, (size_t)positions * c * 4);
    void *di = hb_from(ids, m * sizeof(int32_t)), *dx = hb_from(NULL, m * c * 4);
    fs_error err = {0};
    hb_check_identical("embed tokens", shape,
                       OP(embed_tokens, di, m, positions, c, dt, dp, dx, &err), &err, dx, ref,
                       m * c);
    hb_free(dt);
    hb_free(dp);
    hb_free(di);
    hb_free(dx);
    fs_free(tok);
    fs_free(pos);
    fs_free(ref);
    fs_free(ids);
}

void ops_cases_glue(void) {
    embed_tokens_case(154, 77, 64, 1000); /* two sequences, as CFG's pair */
    embed_tokens_case(harness_int(1, 300), harness_int(1, 80), harness_int(1, 100), 50);
    static const size_t sizes[] = {1, 7, 65536, 100003};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) add_sub_case(sizes[i]);
    bcast_concat_scale();
    small_linear_case(2, 1280, 700); /* SDXL's time embedding */
    small_linear_case(1, 7, 3);
    small_linear_case(harness_int(1, 4), harness_int(1, 300), harness_int(1, 300));
    fs_cuda *tiny = NULL, *small = NULL;
    fs_backend tiny_be = {0}, small_be = {0};
    fs_error err = {0};
    const int cuda = !strcmp(harness_be->name, "cuda");
    if (cuda && fs_cuda_open(&tiny, 0, 4096, &err) == FS_OK) tiny_be = fs_backend_cuda(tiny);
    if (cuda && !tiny) code_is("cuda open", "a 4 KB context", FS_ERR_INVALID, FS_OK);
    memory_cases(tiny ? &tiny_be : NULL);
    if (!cuda) return;
    fs_cuda_close(tiny);
    /* GEGLU in place: y would overwrite x while other threads read it */
    float *dx = hb_from(NULL, 64 * 4);
    code_is("geglu", "in place refused on the device", OP(geglu, dx, dx, 2, 16, &err),
            FS_ERR_INVALID);
    /* scratch too small for a layer: a clear error, nothing launched */
    const fs_conv2d_desc d = {.n = 1, .in_h = 4096, .in_w = 4096, .cin = 512, .cout = 512, .k = 3,
                              .stride = 1, .dil = 1, .x_rows = 4096, .y_rows = 4096};
    if (fs_cuda_open(&small, 0, 1 << 20, &err) == FS_OK) {
        small_be = fs_backend_cuda(small);
        fs_code rc = small_be.op->conv2d(&small_be, &d, dx, dx, NULL, dx, NULL, &err);
        code_is("conv2d", "1 MB of scratch refused for a 512-channel 3x3", rc, FS_ERR_NOMEM);
        code_is("conv2d", "the error names the scratch",
                strstr(err.msg, "scratch") ? FS_OK : FS_ERR_INVALID, FS_OK);
        fs_cuda_close(small);
    } else {
        code_is("cuda open", "a 1 MB context", FS_ERR_INVALID, FS_OK);
    }
    hb_free(dx);
}
