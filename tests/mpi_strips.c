/* tests/mpi_strips.c: the distributed-exactness test of the foundation.
 *
 * For every spatial op of kernels/kernels.h: the global input is built from
 * fs_rng (the same on every rank), the whole-map result is computed on every
 * rank with the fast op (what a 1-rank run computes), then each rank computes
 * its own strip with halos filled by fs_comm_halo (statistics by the exact
 * sums, K/V by the comm gathers), the strips are all-gathered and the result
 * must equal the whole-map result BIT FOR BIT (memcmp). Strip plans use
 * align 1, 2 and 4 with uneven strips, and halos wider than a strip (1..2-row
 * strips against dilation 8). Run by ctest at 1..4 ranks; prints the bytes each rank sent
 * per op and traffic kind (the op's own traffic, not the verifying gather).
 * Exit status non-zero on every rank if any rank failed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <mpi.h>

#include "comm/comm.h"
#include "kernels/kernels.h"
#include "check.h"

static fs_comm *comm;
static int rank, size;
static fs_arena *scratch;
static const uint64_t seed = 77031;
static uint64_t next_stream = 1;

/* ---------------------------------------------------------------- helpers */

static float *random_floats(size_t n, float scale)
{
    float *x = fs_alloc(n * sizeof(float) + 64);
    fs_rng_fill_normal(x, n, seed, next_stream++, 0);
    for (size_t i = 0; i < n; i++)
        x[i] *= scale;
    return x;
}

static float *floats(size_t n) { return fs_alloc(n * sizeof(float) + 64); }

/* Traffic of the op itself, per op group: taken before the verifying gather. */
enum { OP_CONV, OP_GN, OP_UPSAMPLE, OP_RESIZE, OP_BLUR, OP_ATTN, OP_GROUPS };
static const char *op_names[OP_GROUPS] = {"conv2d", "groupnorm", "upsample", "resize",
                                          "blur", "attention"};
static fs_traffic op_traffic[OP_GROUPS][FS_TRAFFIC_KINDS];
static double op_seconds[OP_GROUPS];
static int op_cases[OP_GROUPS];

static void take_traffic(int op)
{
    fs_traffic t[FS_TRAFFIC_KINDS];
    fs_comm_traffic(comm, t);
    for (int k = 0; k < FS_TRAFFIC_KINDS; k++) {
        op_traffic[op][k].bytes_sent += t[k].bytes_sent;
        op_traffic[op][k].bytes_recv += t[k].bytes_recv;
        op_traffic[op][k].calls += t[k].calls;
    }
    fs_comm_traffic_reset(comm);
}

/* [n][top + own + bot][re]: own rows copied from the global [n][h][re] map,
 * halo rows (initially NaN, to catch any not filled) from fs_comm_halo. */
static float *strip_with_halo(const fs_strip_plan *p, const float *global, int n, size_t re,
                              int top, int bot)
{
    int r0 = p->row0[rank], own = fs_strip_rows(p, rank), item = top + own + bot;
    float *buf = floats((size_t)n * item * re);
    for (size_t i = 0; i < (size_t)n * item * re; i++)
        buf[i] = NAN;
    for (int b = 0; b < n; b++)
        memcpy(buf + ((size_t)b * item + top) * re, global + ((size_t)b * p->h + r0) * re,
               (size_t)own * re * sizeof(float));
    fs_error err = {0};
    fs_code code = fs_comm_halo(comm, p, buf, n, re, top, bot, &err);
    CHECK(code == FS_OK, "halo: %s", err.msg);
    return buf;
}

/* All-gathers the output strips (plan `out`, [n][own][re] each) and
 * compares them bit for bit with the whole-map result; says where the first
 * difference is (batch item, global row, owner rank, element). */
static void compare_whole(const char *op, const char *shape, const fs_strip_plan *out,
                          const float *own_y, const float *whole, int n, size_t re)
{
    fs_comm_traffic_reset(comm);  /* the verifying gather is not the op's traffic */
    size_t total = (size_t)n * out->h * re;
    float *full = floats(total);
    fs_error err = {0};
    CHECK(fs_comm_allgather_rows(comm, out, own_y, full, n, re, &err) == FS_OK, "%s", err.msg);
    fs_comm_traffic_reset(comm);
    if (rank == 0) {  /* full is the same on every rank: check once */
        size_t diffs = 0, first = 0;
        double maxd = 0.0;
        for (size_t i = 0; i < total; i++)
            if (memcmp(&full[i], &whole[i], sizeof(float)) != 0) {
                if (!diffs++)
                    first = i;
                double d = fabs((double)full[i] - (double)whole[i]);
                if (d > maxd || isnan(d))
                    maxd = d;
            }
        size_t row = first / re;
        int b = (int)(row / (size_t)out->h), y = (int)(row % (size_t)out->h);
        CHECK(diffs == 0,
              "%s %s on %d ranks: %zu of %zu values differ from the whole map; first at item %d "
              "row %d (rank %d's strip) elem %zu: %.9g vs %.9g; max |diff| %.3g",
              op, shape, size, diffs, total, b, y, fs_strip_plan_owner(out, y), first % re,
              diffs ? full[first] : 0.0, diffs ? whole[first] : 0.0, maxd);
        int bad = 0, nonzero = 0;  /* the whole-map result must be real, non-trivial numbers */
        for (size_t i = 0; i < total; i++) {
            bad += !isfinite(whole[i]);
            nonzero += whole[i] != 0.0f;
        }
        CHECK(bad == 0 && nonzero > 0, "%s %s: %d non-finite values, %d non-zero in the whole-map "
              "result", op, shape, bad, nonzero);
    }
    fs_free(full);
}

static int make_plan(int h, int align, fs_strip_plan *p)
{
    fs_error err = {0};
    fs_code code = fs_strip_plan_make(h, size, align, p, &err);
    CHECK(code == FS_OK, "plan h %d align %d: %s", h, align, err.msg);
    return code == FS_OK;
}

/* ---------------------------------------------------------------- conv2d */

static void conv_case(int n, int h, int w, int cin, int cout, int k, int stride, int dil,
                      int align)
{
    fs_strip_plan in, out;
    if (!make_plan(h, align, &in))
        return;
    fs_error err = {0};
    if (stride == 1)
        out = in;
    else if (fs_strip_plan_coarsen(&in, stride, &out, &err) != FS_OK) {
        CHECK(0, "coarsen: %s", err.msg);
        return;
    }
    int out_h = fs_conv2d_out_size(h, k, stride, dil), out_w = fs_conv2d_out_size(w, k, stride, dil);
    CHECK(out_h == out.h, "conv out_h %d vs coarse plan %d", out_h, out.h);
    if (out_h != out.h)
        return;
    char shape[160];
    snprintf(shape, sizeof shape, "n%d %dx%d cin%d cout%d k%d s%d d%d align%d", n, h, w, cin,
             cout, k, stride, dil, align);
    size_t mark = fs_arena_mark(scratch);
    float *x = random_floats((size_t)n * h * w * cin, 1.0f);
    float *wt = random_floats((size_t)cout * k * k * cin, 0.3f);
    float *bias = random_floats((size_t)cout, 0.1f);
    size_t out_re = (size_t)out_w * cout;

    fs_conv2d_desc d = {n, h, w, cin, cout, k, stride, dil, 0, h, 0, out_h, 0};
    float *whole = floats((size_t)n * out_h * out_re);
    CHECK(fs_conv2d(&d, x, wt, bias, whole, scratch, &err) == FS_OK, "%s: %s", shape, err.msg);
    fs_arena_reset(scratch, mark);

    /* The halo every rank needs for its output rows; the same top/bot on
     * every rank (collective), so the widest need over all ranks. */
    int top = 0, bot = 0;
    for (int r = 0; r < size; r++) {
        fs_conv2d_desc dr = d;
        dr.y_row0 = out.row0[r];
        dr.y_rows = fs_strip_rows(&out, r);
        int i0, i1;
        fs_conv2d_input_rows(&dr, &i0, &i1);
        if (in.row0[r] - i0 > top)
            top = in.row0[r] - i0;
        if (i1 - in.row0[r + 1] > bot)
            bot = i1 - in.row0[r + 1];
    }
    double t0 = fs_now();
    fs_comm_traffic_reset(comm);
    float *xs = strip_with_halo(&in, x, n, (size_t)w * cin, top, bot);
    fs_conv2d_desc ds = d;
    ds.x_row0 = in.row0[rank] - top;
    ds.x_rows = top + fs_strip_rows(&in, rank) + bot;
    ds.y_row0 = out.row0[rank];
    ds.y_rows = fs_strip_rows(&out, rank);
    float *ys = floats((size_t)n * ds.y_rows * out_re);
    CHECK(fs_conv2d(&ds, xs, wt, bias, ys, scratch, &err) == FS_OK, "%s strip: %s", shape,
          err.msg);
    fs_arena_reset(scratch, mark);
    take_traffic(OP_CONV);
    op_seconds[OP_CONV] += fs_now() - t0;
    op_cases[OP_CONV]++;
    compare_whole("conv2d", shape, &out, ys, whole, n, out_re);
    fs_free(x); fs_free(wt); fs_free(bias); fs_free(whole); fs_free(xs); fs_free(ys);
}

static void test_conv(void)
{
    const int aligns[] = {1, 2, 4};
    for (int ai = 0; ai < 3; ai++) {
        int align = aligns[ai];
        int h = 4 * align * 5 / 2 + 3;  /* 13, 23, 43: uneven strips at every P */
        /* 1x1 convs: no halo. */
        conv_case(2, h, 5, 6, 7, 1, 1, 1, align);
        if (align > 1)
            conv_case(2, h, 6, 5, 4, 1, 2, 1, align);
        for (int dil = 1; dil <= 8; dil++) {
            conv_case(2, h, 9, 5, 6, 3, 1, dil, align);
            if (align > 1)  /* stride 2 needs even boundaries to coarsen */
                conv_case(2, h, 9, 4, 5, 3, 2, dil, align);
        }
    }
    /* Thin strips against a wide halo: one row per rank (plus one), dilation 8. */
    conv_case(2, size + 1, 7, 3, 4, 3, 1, 8, 1);
    conv_case(1, 2 * size, 7, 3, 4, 3, 2, 8, 2);
    /* More channels than a register block, output width over a tile. */
    conv_case(1, 11, 37, 40, 33, 3, 1, 2, 1);
    /* Several 512-pixel tiles per strip and tiles across strip boundaries,
     * with cout >= 64 (the untransposed GEMM layout). */
    conv_case(1, 37, 40, 16, 72, 1, 1, 1, 4);
    conv_case(1, 37, 40, 16, 72, 3, 1, 1, 4);
    conv_case(1, 37, 40, 16, 72, 3, 1, 3, 2);
    conv_case(1, 37, 40, 16, 72, 3, 1, 8, 1);
    conv_case(1, 37, 40, 16, 72, 3, 2, 1, 4);
    conv_case(1, 37, 40, 16, 72, 3, 2, 8, 2);
}

/* ---------------------------------------------------------------- GroupNorm */

static void groupnorm_case(int n, int h, int w, int c, int groups, int silu, int align)
{
    fs_strip_plan p;
    if (!make_plan(h, align, &p))
        return;
    char shape[128];
    snprintf(shape, sizeof shape, "n%d %dx%d c%d g%d silu%d align%d", n, h, w, c, groups, silu,
             align);
    size_t re = (size_t)w * c, m = (size_t)n * groups * 2;
    /* A mean far from zero makes the variance sensitive to summation order. */
    float *x = random_floats((size_t)n * h * re, 2.0f);
    for (size_t i = 0; i < (size_t)n * h * re; i++)
        x[i] += 3.0f;
    float *gamma = random_floats((size_t)c, 1.0f), *beta = random_floats((size_t)c, 1.0f);
    float mean[256], rstd[256];
    const float eps = 1e-5f;

    /* Statistics by exact sums, as the render (nn's GroupNorm): the whole
     * map's partials summed locally, the strips' across ranks. */
    double *part = fs_alloc((size_t)h * m * sizeof(double)), sums[512];
    float *whole = floats((size_t)n * h * re);
    fs_strip_plan one;
    fs_error err = {0};
    CHECK(fs_strip_plan_make(h, 1, 1, &one, &err) == FS_OK, "%s", err.msg);
    fs_groupnorm_partials(x, n, h, w, c, groups, part);
    CHECK(fs_comm_sum_rows_exact(NULL, &one, part, m, sums, &err) == FS_OK, "%s", err.msg);
    fs_groupnorm_finish_sums(sums, h, n, w, c, groups, eps, mean, rstd);
    fs_groupnorm_apply(x, whole, n, h, w, c, groups, mean, rstd, gamma, beta, silu);

    double t0 = fs_now();
    fs_comm_traffic_reset(comm);
    int own = fs_strip_rows(&p, rank);
    float *xs = strip_with_halo(&p, x, n, re, 0, 0);
    double *own_part = fs_alloc((size_t)own * m * sizeof(double));
    fs_groupnorm_partials(xs, n, own, w, c, groups, own_part);
    memset(sums, 0, sizeof sums);
    CHECK(fs_comm_sum_rows_exact(comm, &p, own_part, m, sums, &err) == FS_OK, "%s", err.msg);
    float smean[256], srstd[256];
    fs_groupnorm_finish_sums(sums, h, n, w, c, groups, eps, smean, srstd);
    CHECK(memcmp(smean, mean, sizeof(float) * (size_t)n * groups) == 0 &&
              memcmp(srstd, rstd, sizeof(float) * (size_t)n * groups) == 0,
          "groupnorm %s: statistics differ from the whole map's", shape);
    float *ys = floats((size_t)n * own * re);
    fs_groupnorm_apply(xs, ys, n, own, w, c, groups, smean, srstd, gamma, beta, silu);
    take_traffic(OP_GN);
    op_seconds[OP_GN] += fs_now() - t0;
    op_cases[OP_GN]++;
    compare_whole("groupnorm", shape, &p, ys, whole, n, re);
    fs_free(x); fs_free(gamma); fs_free(beta); fs_free(part); fs_free(whole);
    fs_free(xs); fs_free(own_part); fs_free(ys);
}

static void test_groupnorm(void)
{
    groupnorm_case(2, 13, 6, 12, 4, 0, 1);
    groupnorm_case(2, 13, 6, 12, 4, 1, 1);
    groupnorm_case(1, 22, 5, 64, 32, 1, 2);
    groupnorm_case(2, 37, 3, 32, 32, 0, 4);
    groupnorm_case(1, size, 9, 24, 8, 1, 1);  /* one row per rank */
    groupnorm_case(2, 37, 40, 64, 32, 1, 4);
}

/* ---------------------------------------------------------------- upsample */

static void upsample_case(int n, int h, int w, int c, int align)
{
    fs_strip_plan p, p2;
    if (!make_plan(h, align, &p))
        return;
    /* The output strips are the input strips doubled. */
    p2 = p;
    p2.h = 2 * h;
    p2.align = 2 * align;
    for (int r = 0; r <= size; r++)
        p2.row0[r] = 2 * p.row0[r];
    char shape[96];
    snprintf(shape, sizeof shape, "n%d %dx%d c%d align%d", n, h, w, c, align);
    size_t re = (size_t)w * c, re2 = 2 * re;
    float *x = random_floats((size_t)n * h * re, 1.0f);
    float *whole = floats((size_t)n * 2 * h * re2);
    fs_upsample_nearest2x(x, whole, n, h, w, c);
    double t0 = fs_now();
    fs_comm_traffic_reset(comm);
    int own = fs_strip_rows(&p, rank);
    float *xs = strip_with_halo(&p, x, n, re, 0, 0);
    float *ys = floats((size_t)n * 2 * own * re2);
    fs_upsample_nearest2x(xs, ys, n, own, w, c);
    take_traffic(OP_UPSAMPLE);
    op_seconds[OP_UPSAMPLE] += fs_now() - t0;
    op_cases[OP_UPSAMPLE]++;
    compare_whole("upsample", shape, &p2, ys, whole, n, re2);
    fs_free(x); fs_free(whole); fs_free(xs); fs_free(ys);
}

static void test_upsample(void)
{
    upsample_case(2, 13, 5, 6, 1);
    upsample_case(1, 22, 7, 3, 2);
    upsample_case(2, 20, 4, 8, 4);
}

/* ---------------------------------------------------------------- bicubic resize */

static void resize_case(int n, int c, int in_h, int in_w, int out_h, int out_w, int align)
{
    fs_strip_plan in, out;
    if (!make_plan(in_h, align, &in) || !make_plan(out_h, align, &out))
        return;
    char shape[128];
    snprintf(shape, sizeof shape, "n%d c%d %dx%d->%dx%d align%d", n, c, in_h, in_w, out_h, out_w,
             align);
    size_t re = (size_t)in_w * c, ore = (size_t)out_w * c;
    float *x = random_floats((size_t)n * in_h * re, 1.0f);
    fs_resize_desc d = {n, c, in_h, in_w, out_h, out_w, 0, in_h, 0, out_h};
    float *whole = floats((size_t)n * out_h * ore);
    fs_resize_bicubic(&d, x, whole);

    /* The input rows each rank's output strip reads, as a halo around its
     * input strip (the two plans cut the maps independently). */
    int top = 0, bot = 0;
    for (int r = 0; r < size; r++) {
        fs_resize_desc dr = d;
        dr.y_row0 = out.row0[r];
        dr.y_rows = fs_strip_rows(&out, r);
        int i0, i1;
        fs_resize_bicubic_input_rows(&dr, &i0, &i1);
        if (in.row0[r] - i0 > top)
            top = in.row0[r] - i0;
        if (i1 - in.row0[r + 1] > bot)
            bot = i1 - in.row0[r + 1];
    }
    double t0 = fs_now();
    fs_comm_traffic_reset(comm);
    float *xs = strip_with_halo(&in, x, n, re, top, bot);
    fs_resize_desc ds = d;
    ds.x_row0 = in.row0[rank] - top;
    ds.x_rows = top + fs_strip_rows(&in, rank) + bot;
    ds.y_row0 = out.row0[rank];
    ds.y_rows = fs_strip_rows(&out, rank);
    float *ys = floats((size_t)n * ds.y_rows * ore);
    fs_resize_bicubic(&ds, xs, ys);
    take_traffic(OP_RESIZE);
    op_seconds[OP_RESIZE] += fs_now() - t0;
    op_cases[OP_RESIZE]++;
    compare_whole("resize", shape, &out, ys, whole, n, ore);
    fs_free(x); fs_free(whole); fs_free(xs); fs_free(ys);
}

static void test_resize(void)
{
    resize_case(2, 4, 13, 9, 26, 18, 1);   /* x2, as between cascade stages */
    resize_case(1, 3, 20, 7, 41, 15, 2);   /* a non-integer factor */
    resize_case(2, 5, 43, 11, 17, 6, 1);   /* downscale: wide input halos */
    resize_case(1, 4, 24, 8, 48, 16, 4);
}

/* ---------------------------------------------------------------- blur */

static void blur_case(int n, int h, int w, int c, int k, int axes, int align)
{
    fs_strip_plan p;
    if (!make_plan(h, align, &p))
        return;
    char shape[128];
    snprintf(shape, sizeof shape, "n%d %dx%d c%d k%d axes%s%s%s align%d", n, h, w, c, k,
             axes & FS_BLUR_H ? "H" : "", axes & FS_BLUR_W ? "W" : "", axes & FS_BLUR_C ? "C" : "",
             align);
    size_t re = (size_t)w * c;
    float g[64];
    fs_gaussian_kernel1d(k, (float)k / 3.0f, g);
    float *x = random_floats((size_t)n * h * re, 1.0f);
    fs_blur_desc d = {n, h, w, c, k, axes, 0, h, 0, h};
    float *whole = floats((size_t)n * h * re);
    fs_error err = {0};
    size_t mark = fs_arena_mark(scratch);
    CHECK(fs_blur(&d, g, x, whole, scratch, &err) == FS_OK, "%s: %s", shape, err.msg);
    fs_arena_reset(scratch, mark);

    int halo = axes & FS_BLUR_H ? k / 2 : 0;
    double t0 = fs_now();
    fs_comm_traffic_reset(comm);
    float *xs = strip_with_halo(&p, x, n, re, halo, halo);
    fs_blur_desc ds = d;
    ds.x_row0 = p.row0[rank] - halo;
    ds.x_rows = fs_strip_rows(&p, rank) + 2 * halo;
    ds.y_row0 = p.row0[rank];
    ds.y_rows = fs_strip_rows(&p, rank);
    float *ys = floats((size_t)n * ds.y_rows * re);
    CHECK(fs_blur(&ds, g, xs, ys, scratch, &err) == FS_OK, "%s strip: %s", shape, err.msg);
    fs_arena_reset(scratch, mark);
    take_traffic(OP_BLUR);
    op_seconds[OP_BLUR] += fs_now() - t0;
    op_cases[OP_BLUR]++;
    compare_whole("blur", shape, &p, ys, whole, n, re);
    fs_free(x); fs_free(whole); fs_free(xs); fs_free(ys);
}

static void test_blur(void)
{
    const int variants[3] = {FS_BLUR_H | FS_BLUR_W, FS_BLUR_W | FS_BLUR_C,
                             FS_BLUR_H | FS_BLUR_W | FS_BLUR_C};
    for (int v = 0; v < 3; v++) {
        blur_case(2, 13, 8, 6, 3, variants[v], 1);
        blur_case(1, 22, 9, 5, 7, variants[v], 2);   /* s = 4: halo 3 */
        blur_case(2, 43, 6, 4, 15, variants[v], 4);  /* s = 8: halo 7 */
        blur_case(1, size + 2, 5, 3, 9, variants[v], 1);  /* halo 4 over 1..2-row strips */
    }
}

/* ---------------------------------------------------------------- attention */

static void attention_case(int h, int w, int heads, int dh, int align)
{
    fs_strip_plan p;
    if (!make_plan(h, align, &p))
        return;
    char shape[128];
    int c = heads * dh, ntok = h * w;
    snprintf(shape, sizeof shape, "%dx%d tokens %d heads %d dh %d align%d", h, w, ntok, heads,
             dh, align);
    size_t re = (size_t)w * c, total = (size_t)ntok * c;
    float *q = random_floats(total, 1.0f), *k = random_floats(total, 1.0f);
    float *v = random_floats(total, 1.0f);
    float scale = 1.0f / sqrtf((float)dh);
    float *whole = floats(total);
    fs_error err = {0};
    size_t mark = fs_arena_mark(scratch);
    CHECK(fs_attention(q, c, k, c, v, c, whole, c, ntok, ntok, heads, dh, scale, 0, scratch,
                       &err) == FS_OK, "%s: %s", shape, err.msg);
    fs_arena_reset(scratch, mark);

    /* Each rank holds Q, K, V of its own rows; K and V are all-gathered. */
    double t0 = fs_now();
    fs_comm_traffic_reset(comm);
    int r0 = p.row0[rank], own = fs_strip_rows(&p, rank);
    size_t own_n = (size_t)own * re, off = (size_t)r0 * re;
    float *kf = floats(total), *vf = floats(total);
    CHECK(fs_comm_allgather_rows(comm, &p, k + off, kf, 1, re, &err) == FS_OK, "%s", err.msg);
    CHECK(fs_comm_allgather_rows(comm, &p, v + off, vf, 1, re, &err) == FS_OK, "%s", err.msg);
    float *os = floats(own_n);
    CHECK(fs_attention(q + off, c, kf, c, vf, c, os, c, own * w, ntok, heads, dh, scale,
                       (int64_t)r0 * w, scratch, &err) == FS_OK, "%s strip: %s", shape, err.msg);
    fs_arena_reset(scratch, mark);
    take_traffic(OP_ATTN);
    op_seconds[OP_ATTN] += fs_now() - t0;
    op_cases[OP_ATTN]++;
    compare_whole("attention", shape, &p, os, whole, 1, re);
    fs_free(q); fs_free(k); fs_free(v); fs_free(whole); fs_free(kf); fs_free(vf); fs_free(os);
}

static void test_attention(void)
{
    attention_case(13, 7, 2, 8, 1);
    attention_case(22, 9, 1, 64, 2);    /* 198 tokens: query tiles cross strips */
    attention_case(20, 16, 2, 40, 4);   /* 320 tokens */
    attention_case(size + 1, 5, 1, 80, 1);
    attention_case(28, 25, 2, 32, 4);   /* 700 tokens: several query tiles per strip */
}

/* ---------------------------------------------------------------- main */

static void print_traffic(void)
{
    /* Per rank, per op and kind: bytes sent by the op itself. */
    uint64_t mine[OP_GROUPS][FS_TRAFFIC_KINDS];
    for (int o = 0; o < OP_GROUPS; o++)
        for (int k = 0; k < FS_TRAFFIC_KINDS; k++)
            mine[o][k] = op_traffic[o][k].bytes_sent;
    uint64_t *all = rank == 0 ? malloc(sizeof mine * (size_t)size) : NULL;
    MPI_Gather(mine, OP_GROUPS * FS_TRAFFIC_KINDS, MPI_UINT64_T, all,
               OP_GROUPS * FS_TRAFFIC_KINDS, MPI_UINT64_T, 0, MPI_COMM_WORLD);
    if (rank != 0)
        return;
    printf("bytes sent per rank by each op (all its cases), %d ranks:\n", size);
    for (int o = 0; o < OP_GROUPS; o++)
        for (int k = 0; k < FS_TRAFFIC_KINDS; k++) {
            uint64_t any = 0;
            for (int r = 0; r < size; r++)
                any |= all[((size_t)r * OP_GROUPS + o) * FS_TRAFFIC_KINDS + k];
            if (!any)
                continue;
            printf("  %-10s %-7s", op_names[o], fs_traffic_name((fs_traffic_kind)k));
            for (int r = 0; r < size; r++)
                printf(" %10llu", (unsigned long long)all[((size_t)r * OP_GROUPS + o) *
                                                          FS_TRAFFIC_KINDS + k]);
            printf("\n");
        }
    for (int o = 0; o < OP_GROUPS; o++)
        printf("  %-10s %d cases, %.3f s on rank 0 (strip work + its traffic)\n", op_names[o],
               op_cases[o], op_seconds[o]);
    free(all);
}

int main(int argc, char **argv)
{
    fs_error err = {0};
    if (fs_comm_init(&argc, &argv, &comm, &err) != FS_OK) {
        fprintf(stderr, "mpi_strips: %s\n", err.msg);
        return 1;
    }
    rank = fs_comm_rank(comm);
    size = fs_comm_size(comm);
    fs_threads_init(0);
    scratch = fs_arena_create((size_t)64 << 20, &err);
    if (!scratch) {
        fprintf(stderr, "mpi_strips: %s\n", err.msg);
        fs_comm_free(comm);
        return 1;
    }
    double t0 = fs_now();
    test_conv();
    test_groupnorm();
    test_upsample();
    test_resize();
    test_blur();
    test_attention();
    print_traffic();

    int counts[2] = {check_count, check_failures}, totals[2];
    MPI_Allreduce(counts, totals, 2, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (rank == 0)
        printf("mpi_strips: %d ranks, %d checks, %d failed (all ranks), %.2f s\n", size,
               totals[0], totals[1], fs_now() - t0);
    fs_arena_destroy(scratch);
    fs_comm_free(comm);
    return totals[1] ? 1 : 0;
}
