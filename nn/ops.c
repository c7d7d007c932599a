/* nn/ops.c: the dry-aware helpers of nn.h: memory (arena stack and counted
 * heap blocks), GroupNorm statistics across strips, halos and gathers, the
 * GEMM ops (with their FLOPs counted) and the pointwise ops, each timed into
 * FS_PROFILE's table (nn/profile.c) when that is on.
 *
 * In the sizing pass a helper computes and sends nothing and only records
 * the scratch bytes its op would take from the arena on top of what is in
 * use. In the real pass it calls the kernel on the forward's one arena. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "nn/gpu.h"
#include "nn/profile.h"

/* Element loops smaller than this run on the calling thread: a parallel
 * region costs more than it saves there, and far more on a busy machine
 * where a team member may be descheduled. (Elementwise: no effect on bits.) */
#define PAR_MIN ((size_t)1 << 16)

/* The GPU branch of a helper that cannot fail on the CPU: skipped after a
 * first failure (f->err keeps it), the op's own failure lands in f->err. */
#define GPU_VOID(call) \
    do { \
        if (f->gpu) { \
            if (!f->err->code) (void)(call); \
            return; \
        } \
    } while (0)
#define GPU_RC(call) \
    do { \
        if (f->gpu) return f->err->code ? f->err->code : (call); \
    } while (0)

/* ---------------------------------------------------------------- memory */

enum { NN_ALIGN = 64 };
/* What the dry pass hands out instead of memory; never read or written. */
static _Alignas(64) unsigned char dry_placeholder[NN_ALIGN];

static size_t align_up(size_t v) { return (v + NN_ALIGN - 1) / NN_ALIGN * NN_ALIGN; }

static size_t arena_now(const nn_ctx *f) { return f->dry ? f->used : fs_arena_used(f->arena); }

static void bump_peak(nn_ctx *f, size_t extra) {
    size_t now = arena_now(f) + f->heap + extra;
    if (now > f->peak) f->peak = now;
}

void *nn_take(nn_ctx *f, size_t bytes) {
    if (f->dry) {
        f->used = align_up(f->used) + bytes;
        if (f->used > f->arena_peak) f->arena_peak = f->used;
        bump_peak(f, 0);
        return dry_placeholder;
    }
    void *p = fs_arena_alloc(f->arena, bytes ? bytes : 1);
    if (!p)
        fs_fail(f->err, FS_ERR_NOMEM,
                "%s: arena full: %zu more bytes wanted, %zu of %zu in use (the sizing pass and "
                "the real pass disagree)",
                f->what, bytes, fs_arena_used(f->arena), fs_arena_capacity(f->arena));
    else
        bump_peak(f, 0);
    return p;
}

float *nn_floats(nn_ctx *f, size_t count) {
    if (count > SIZE_MAX / sizeof(float)) {
        fs_fail(f->err, FS_ERR_RANGE, "%s: %zu floats do not fit in memory", f->what, count);
        return NULL;
    }
    return nn_take(f, count * sizeof(float));
}

size_t nn_mark(const nn_ctx *f) { return f->dry ? f->used : fs_arena_mark(f->arena); }

void nn_reset(nn_ctx *f, size_t mark) {
    if (f->dry) {
        if (mark <= f->used) f->used = mark;
    } else {
        fs_arena_reset(f->arena, mark);
    }
}

/* Dry pass: an op will take `bytes` of scratch on top of what is in use. */
static void need(nn_ctx *f, size_t bytes) {
    size_t top = align_up(f->used) + bytes;
    if (top > f->arena_peak) f->arena_peak = top;
    size_t now = top + f->heap;
    if (now > f->peak) f->peak = now;
}

float *nn_heap_floats(nn_ctx *f, size_t count, int lazy) {
    if (count > SIZE_MAX / sizeof(float) - NN_ALIGN) {
        fs_fail(f->err, FS_ERR_RANGE, "%s: %zu floats do not fit in memory", f->what, count);
        return NULL;
    }
    size_t bytes = count * sizeof(float);
    float *p = (float *)dry_placeholder;
    if (!f->dry && f->gpu) {
        if (fs_cuda_alloc(f->gpu, (void **)&p, bytes, f->err)) return NULL;
    } else if (!f->dry) {
        p = fs_alloc(bytes ? bytes : 1);
    }
    if (!p) {
        fs_fail(f->err, FS_ERR_NOMEM, "%s: cannot allocate %.2f GB for a map", f->what,
                (double)bytes / 1e9);
        return NULL;
    }
    if (!lazy) {
        f->heap += bytes;
        bump_peak(f, 0);
    }
    return p;
}

void nn_heap_free(nn_ctx *f, float *p, size_t counted) {
    if (!p) return;
    f->heap = f->heap > counted ? f->heap - counted : 0;
    if (!f->dry && f->gpu)
        fs_cuda_free(f->gpu, p);
    else if (!f->dry)
        fs_free(p);
}

size_t nn_heap_release(nn_ctx *f, float *p, size_t count) {
    size_t bytes = count * sizeof(float);
    if (!f->dry && bytes && !f->gpu) { /* device memory: only the count drops */
        /* NaN first: a later read of released rows shows in any result, even
         * where the range holds no whole page (small maps in tests) */
        const uint32_t nan_bits = 0x7fc00000u;
        for (size_t i = 0; i < count; i++) memcpy(p + i, &nan_bits, sizeof nan_bits);
        /* only whole pages strictly inside the range: the neighbours are live */
        uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
        uintptr_t a = ((uintptr_t)p + page - 1) / page * page;
        uintptr_t b = ((uintptr_t)p + bytes) / page * page;
        if (b > a) madvise((void *)a, b - a, MADV_DONTNEED);
    }
    f->heap = f->heap > bytes ? f->heap - bytes : 0;
    return bytes;
}

void nn_note_heap(nn_ctx *f, size_t bytes, int add) {
    if (add) {
        f->heap += bytes;
        bump_peak(f, 0);
    } else {
        f->heap = f->heap > bytes ? f->heap - bytes : 0;
    }
}

size_t nn_tensor_floats(const nn_ctx *f, const nn_level *lv, int c) {
    return (size_t)f->n * (size_t)lv->rows * (size_t)lv->w * (size_t)c;
}

/* ---------------------------------------------------------------- norms */

void nn_gn_partials(nn_ctx *f, const float *x, int rows, int w, int c, int groups,
                    double *part) {
    if (f->dry || rows <= 0) return;
    if (f->gpu) {
        nn_gpu_gn_partials(f, x, rows, w, c, groups, part);
        return;
    }
    nn_prof_time t0 = nn_prof_t(f);
    fs_groupnorm_partials(x, f->n, rows, w, c, groups, part);
    nn_prof_add(f, t0, PK_GN, 0, "partials c=%d", c);
}

fs_code nn_gn_fold(nn_ctx *f, const nn_level *lv, const double *own_part, int c, int groups,
                   float eps, float *mean, float *rstd) {
    /* the totals by exact (order-free) sums: one all-reduce of a few kB, the
     * same bits for any split (comm.h, fs_comm_sum_rows_exact) */
    const size_t m = (size_t)f->n * groups * 2;
    double *sums = malloc(m * sizeof(double));
    if (!sums) return fs_fail(f->err, FS_ERR_NOMEM, "%s: GroupNorm statistics", f->what);
    fs_code rc = fs_comm_sum_rows_exact(lv->plan->parts > 1 ? f->comm : NULL, lv->plan, own_part,
                                        m, sums, f->err);
    if (rc == FS_OK) fs_groupnorm_finish_sums(sums, lv->h, f->n, lv->w, c, groups, eps, mean, rstd);
    free(sums);
    return rc;
}

fs_code nn_gn_finish(nn_ctx *f, const nn_level *lv, const double *own_part, int c, int groups,
                     float eps, float *mean, float *rstd) {
    if (f->dry) return FS_OK;
    if (f->gpu) return nn_gpu_gn_finish(f, lv, own_part, c, groups, eps, mean, rstd);
    nn_prof_time t0 = nn_prof_t(f);
    fs_code rc = nn_gn_fold(f, lv, own_part, c, groups, eps, mean, rstd);
    nn_prof_add(f, t0, PK_GN, 0, "stats c=%d", c);
    return rc;
}

fs_code nn_gn_stats(nn_ctx *f, const nn_level *lv, const float *x, int c, int groups, float eps,
                    float **mean, float **rstd) {
    const size_t m = (size_t)f->n * groups * 2;
    *mean = nn_floats(f, (size_t)f->n * groups);
    *rstd = *mean ? nn_floats(f, (size_t)f->n * groups) : NULL;
    if (!*rstd) return nn_oom(f);
    size_t mark = nn_mark(f);
    double *own = nn_take(f, (size_t)lv->rows * m * sizeof(double));
    if (!own) return nn_oom(f);
    nn_gn_partials(f, x, lv->rows, lv->w, c, groups, own);
    fs_code rc = nn_gn_finish(f, lv, own, c, groups, eps, *mean, *rstd);
    nn_reset(f, mark);
    return rc;
}

void nn_gn_apply(nn_ctx *f, const nn_level *lv, const float *x, int c, int groups,
                 const float *mean, const float *rstd, const nn_norm_w *nw, int silu, float *buf,
                 int top, int bot) {
    if (f->dry) return;
    if (f->gpu) {
        nn_gpu_gn_apply(f, lv, x, c, groups, mean, rstd, nw, silu, buf, top, bot);
        return;
    }
    nn_prof_time t0 = nn_prof_t(f);
    const size_t item = (size_t)lv->rows * lv->w * c, row = (size_t)lv->w * c;
    const size_t item_buf = (size_t)(top + lv->rows + bot) * row;
    if (top == 0 && bot == 0) {
        fs_groupnorm_apply(x, buf, f->n, lv->rows, lv->w, c, groups, mean, rstd, nw->gamma,
                           nw->beta, silu);
    } else {
        for (int b = 0; b < f->n; b++)
            fs_groupnorm_apply(x + b * item, buf + b * item_buf + (size_t)top * row, 1, lv->rows,
                               lv->w, c, groups, mean + (size_t)b * groups,
                               rstd + (size_t)b * groups, nw->gamma, nw->beta, silu);
    }
    nn_prof_add(f, t0, PK_GN, 0, "apply%s c=%d", silu ? "+silu" : "", c);
}

void nn_gn_apply_rows(nn_ctx *f, const float *x, float *y, int rows, int w, int c, int groups,
                      const float *mean, const float *rstd, const nn_norm_w *nw, int silu) {
    if (f->dry || rows <= 0) return;
    GPU_VOID(fs_cuda_groupnorm_apply(f->gpu, x, y, 1, rows, w, c, groups, mean, rstd, nw->gamma,
                                     nw->beta, silu, f->err));
    nn_prof_time t0 = nn_prof_t(f);
    fs_groupnorm_apply(x, y, 1, rows, w, c, groups, mean, rstd, nw->gamma, nw->beta, silu);
    nn_prof_add(f, t0, PK_GN, 0, "apply%s c=%d", silu ? "+silu" : "", c);
}

void nn_layernorm(nn_ctx *f, const float *x, float *y, size_t tokens, float eps,
                  const nn_norm_w *nw) {
    if (f->dry) return;
    GPU_VOID(fs_cuda_layernorm(f->gpu, x, y, tokens, nw->c, eps, nw->gamma, nw->beta, f->err));
    nn_prof_time t0 = nn_prof_t(f);
    fs_layernorm(x, y, tokens, nw->c, eps, nw->gamma, nw->beta);
    nn_prof_add(f, t0, PK_LN, 0, "c=%d", nw->c);
}

/* ---------------------------------------------------------------- comm */

void nn_copy_own(nn_ctx *f, const nn_level *lv, const float *x, int c, float *buf, int top,
                 int bot) {
    if (f->dry) return;
    if (f->gpu) {
        nn_gpu_copy_own(f, lv, x, c, buf, top, bot);
        return;
    }
    nn_prof_time t0 = nn_prof_t(f);
    const size_t row = (size_t)lv->w * c, item = (size_t)lv->rows * row;
    const size_t item_buf = (size_t)(top + lv->rows + bot) * row;
    for (int b = 0; b < f->n; b++)
        memcpy(buf + b * item_buf + (size_t)top * row, x + b * item, item * sizeof(float));
    nn_prof_add(f, t0, PK_MOVE, 0, "copy into halo buffer");
}

fs_code nn_halo(nn_ctx *f, const nn_level *lv, float *buf, int c, int top, int bot) {
    if (f->dry || (top == 0 && bot == 0)) return FS_OK;
    GPU_RC(nn_gpu_halo(f, lv, buf, c, top, bot));
    nn_prof_time t0 = nn_prof_t(f);
    const size_t row = (size_t)lv->w * c;
    fs_code rc = FS_OK;
    if (lv->plan->parts > 1) {
        rc = fs_comm_halo(f->comm, lv->plan, buf, f->n, row, top, bot, f->err);
    } else { /* One part: the strip is the whole map, every halo row is padding. */
        const size_t item_buf = (size_t)(top + lv->rows + bot) * row;
        for (int b = 0; b < f->n; b++) {
            float *item = buf + b * item_buf;
            memset(item, 0, (size_t)top * row * sizeof(float));
            memset(item + (size_t)(top + lv->rows) * row, 0, (size_t)bot * row * sizeof(float));
        }
    }
    nn_prof_add(f, t0, PK_MOVE, 0, "halo");
    return rc;
}

fs_code nn_allgather(nn_ctx *f, const nn_level *lv, const float *own, float *full, int c) {
    if (f->dry) return FS_OK;
    GPU_RC(nn_gpu_allgather(f, lv, own, full, c));
    nn_prof_time t0 = nn_prof_t(f);
    fs_code rc = FS_OK;
    if (lv->plan->parts > 1)
        rc = fs_comm_allgather_rows(f->comm, lv->plan, own, full, f->n, (size_t)lv->w * c,
                                    f->err);
    else if (own != full)
        memcpy(full, own, nn_tensor_floats(f, lv, c) * sizeof(float));
    nn_prof_add(f, t0, PK_MOVE, 0, "allgather");
    return rc;
}

/* ---------------------------------------------------------------- GEMM ops */

fs_code nn_conv(nn_ctx *f, const fs_conv2d_desc *d, const float *x, const nn_conv_w *cw,
                float *y) {
    const double flop = 2.0 * d->n * d->y_rows * fs_conv2d_desc_out_size(d, d->in_w) *
                        (double)d->cout * d->k * d->k * d->cin;
    f->flops += flop;
    if (f->dry) {
        need(f, fs_conv2d_scratch_bytes(d));
        return FS_OK;
    }
    GPU_RC(fs_cuda_conv2d(f->gpu, d, x, cw->w, cw->b, y, f->err));
    nn_prof_time t0 = nn_prof_t(f);
    fs_code rc = fs_conv2d(d, x, cw->w, cw->b, y, f->arena, f->err);
    nn_prof_add(f, t0, PK_CONV, flop, "%dx%d/%d %d->%d %dx%d", d->k, d->k, d->stride, d->cin,
                d->cout, d->in_h, d->in_w);
    return rc;
}

fs_code nn_linear(nn_ctx *f, const float *x, size_t x_item, float *y, size_t y_item, int items,
                  size_t m, const nn_linear_w *lw, int64_t m0) {
    const double flop = 2.0 * items * (double)m * lw->in * lw->out;
    f->flops += flop;
    if (f->dry) {
        need(f, fs_linear_scratch_bytes(lw->in, lw->out));
        return FS_OK;
    }
    if (f->gpu && f->err->code) return f->err->code;
    if (f->gpu) {
        fs_code grc = FS_OK;
        for (int b = 0; b < items && !grc; b++)
            grc = fs_cuda_linear(f->gpu, x + b * x_item, y + b * y_item, m, lw->in, lw->out,
                                 lw->w, lw->b, m0, f->err);
        return grc;
    }
    nn_prof_time t0 = nn_prof_t(f);
    fs_code rc = FS_OK;
    for (int b = 0; b < items && !rc; b++)
        rc = fs_linear(x + b * x_item, y + b * y_item, m, lw->in, lw->out, lw->w, lw->b, m0,
                       f->arena, f->err);
    nn_prof_add(f, t0, PK_LINEAR, flop, "%d->%d m=%zu", lw->in, lw->out, m);
    return rc;
}

fs_code nn_linear_whole(nn_ctx *f, const float *x, float *y, size_t m, const nn_linear_w *lw) {
    const double flop = 2.0 * (double)m * lw->in * lw->out;
    f->flops += flop;
    if (f->dry) {
        need(f, fs_linear_whole_scratch_bytes(m, lw->in, lw->out));
        return FS_OK;
    }
    /* every rank computes all m rows from row 0: the same tiles everywhere */
    GPU_RC(fs_cuda_linear_whole(f->gpu, x, y, m, lw->in, lw->out, lw->w, lw->b, f->err));
    nn_prof_time t0 = nn_prof_t(f);
    fs_code rc = fs_linear_whole(x, y, m, lw->in, lw->out, lw->w, lw->b, f->arena, f->err);
    nn_prof_add(f, t0, PK_LINEAR, flop, "%d->%d whole m=%zu", lw->in, lw->out, m);
    return rc;
}

void nn_small_linear(nn_ctx *f, const float *x, float *y, int m, const nn_linear_w *lw) {
    if (f->dry) return;
    GPU_VOID(fs_cuda_small_linear(f->gpu, x, y, m, lw->in, lw->out, lw->w, lw->b, f->err));
    nn_prof_time t0 = nn_prof_t(f);
    const int k = lw->in, nout = lw->out;
#pragma omp parallel for schedule(static) num_threads(fs_threads_count()) \
    if ((size_t)m * nout * k >= PAR_MIN)
    for (int64_t ij = 0; ij < (int64_t)m * nout; ij++) {
        int i = (int)(ij / nout), j = (int)(ij % nout);
        const float *xr = x + (size_t)i * k, *wr = lw->w + (size_t)j * k;
        double s = lw->b ? (double)lw->b[j] : 0.0;
        for (int p = 0; p < k; p++) s += (double)xr[p] * (double)wr[p];
        y[(size_t)i * nout + j] = (float)s;
    }
    nn_prof_add(f, t0, PK_SMALL, 2.0 * m * (double)k * nout, "%d->%d", k, nout);
}

fs_code nn_attention(nn_ctx *f, const float *q, const float *k, const float *v, float *o, int nq,
                     int nk, int heads, int dh, int64_t q0) {
    const double flop = 4.0 * nq * (double)nk * dh * heads;
    f->flops += flop;
    if (f->dry) {
        need(f, fs_attention_scratch_bytes(nk, heads, dh));
        return FS_OK;
    }
    const int ld = heads * dh;
    const float scale = (float)(1.0 / sqrt((double)dh));
    GPU_RC(fs_cuda_attention(f->gpu, q, ld, k, ld, v, ld, o, ld, nq, nk, heads, dh, scale, q0,
                             f->err));
    nn_prof_time t0 = nn_prof_t(f);
    fs_code rc = fs_attention(q, ld, k, ld, v, ld, o, ld, nq, nk, heads, dh, scale, q0, f->arena,
                              f->err);
    nn_prof_add(f, t0, PK_ATTN, flop, "nq=%d nk=%d heads=%d", nq, nk, heads);
    return rc;
}

/* ---------------------------------------------------------------- pointwise */

void nn_geglu(nn_ctx *f, const float *x, float *y, size_t m, int d) {
    if (f->dry) return;
    GPU_VOID(fs_cuda_geglu(f->gpu, x, y, m, d, f->err));
    nn_prof_time t0 = nn_prof_t(f);
    fs_geglu(x, y, m, d);
    nn_prof_add(f, t0, PK_GEGLU, 0, "d=%d", d);
}

void nn_silu(nn_ctx *f, const float *x, float *y, size_t count) {
    if (f->dry) return;
    GPU_VOID(fs_cuda_silu(f->gpu, x, y, count, f->err));
    nn_prof_time t0 = nn_prof_t(f);
    fs_silu(x, y, count);
    nn_prof_add(f, t0, PK_ELEM, 0, "silu");
}

void nn_add(nn_ctx *f, float *y, const float *x, size_t count) {
    if (f->dry) return;
    GPU_VOID(fs_cuda_add(f->gpu, y, x, count, f->err));
    nn_prof_time t0 = nn_prof_t(f);
#pragma omp parallel for schedule(static) num_threads(fs_threads_count()) if (count >= PAR_MIN)
    for (size_t i = 0; i < count; i++) y[i] += x[i];
    nn_prof_add(f, t0, PK_ELEM, 0, "add");
}

void nn_add_bcast(nn_ctx *f, float *y, const float *v, int n, size_t pixels, int c) {
    if (f->dry) return;
    GPU_VOID(fs_cuda_add_bcast(f->gpu, y, v, n, pixels, c, f->err));
    nn_prof_time t0 = nn_prof_t(f);
#pragma omp parallel for schedule(static) num_threads(fs_threads_count()) \
    if ((size_t)n * pixels * c >= PAR_MIN)
    for (size_t bp = 0; bp < (size_t)n * pixels; bp++) {
        const float *vb = v + (bp / pixels) * (size_t)c;
        float *yp = y + bp * (size_t)c;
        for (int ch = 0; ch < c; ch++) yp[ch] += vb[ch];
    }
    nn_prof_add(f, t0, PK_ELEM, 0, "add broadcast");
}

void nn_concat(nn_ctx *f, const float *a, int ca, const float *s, int cs, float *y,
               size_t pixels) {
    if (f->dry) return;
    GPU_VOID(fs_cuda_concat(f->gpu, a, ca, s, cs, y, pixels, f->err));
    nn_prof_time t0 = nn_prof_t(f);
    const size_t cy = (size_t)ca + (size_t)cs;
#pragma omp parallel for schedule(static) num_threads(fs_threads_count()) \
    if (pixels * cy >= PAR_MIN)
    for (size_t p = 0; p < pixels; p++) {
        memcpy(y + p * cy, a + p * (size_t)ca, (size_t)ca * sizeof(float));
        memcpy(y + p * cy + ca, s + p * (size_t)cs, (size_t)cs * sizeof(float));
    }
    nn_prof_add(f, t0, PK_MOVE, 0, "concat");
}

void nn_copy(nn_ctx *f, float *dst, const float *src, size_t count) {
    if (f->dry || dst == src || !count) return;
    GPU_VOID(fs_cuda_copy(f->gpu, dst, src, count * sizeof(float), f->err));
    nn_prof_time t0 = nn_prof_t(f);
    memmove(dst, src, count * sizeof(float));
    nn_prof_add(f, t0, PK_MOVE, 0, "copy");
}

void nn_zero(nn_ctx *f, float *dst, size_t count) {
    if (f->dry || !count) return;
    GPU_VOID(fs_cuda_zero(f->gpu, dst, count * sizeof(float), f->err));
    memset(dst, 0, count * sizeof(float));
}

void nn_upsample2x(nn_ctx *f, const float *x, float *y, int n, int rows, int w, int c) {
    if (f->dry) return;
    GPU_VOID(fs_cuda_upsample_nearest2x(f->gpu, x, y, n, rows, w, c, f->err));
    nn_prof_time t0 = nn_prof_t(f);
    fs_upsample_nearest2x(x, y, n, rows, w, c);
    nn_prof_add(f, t0, PK_MOVE, 0, "upsample 2x");
}
