/* unet/fwd_ops.c: the forward pass's door to memory, kernels and comm.
 *
 * Every helper here is "dry-aware" (see forward.h): in the sizing pass it
 * computes and sends nothing and only records the scratch bytes its op would
 * take from the arena on top of what is in use. In the real pass it calls the
 * kernel on the forward's one arena.
 *
 * Communication only happens when the level's plan has more than one part:
 * a one-part plan is a whole map on one process whatever the communicator
 * (the distributed test runs the 1-part forward on every rank beside the
 * strip forward), and its halo rows are all off the map, hence zeros. */
#include <math.h>
#include <string.h>
#include "unet/forward.h"

/* Element loops smaller than this run on the calling thread: a parallel
 * region costs more than it saves there, and far more on a busy machine
 * where a team member may be descheduled. (Elementwise: no effect on bits.) */
#define PAR_MIN ((size_t)1 << 16)

/* ---------------------------------------------------------------- memory */

enum { FWD_ALIGN = 64 };
/* What the dry pass hands out instead of memory; never read or written. */
static _Alignas(64) unsigned char dry_placeholder[FWD_ALIGN];

static size_t align_up(size_t v) { return (v + FWD_ALIGN - 1) / FWD_ALIGN * FWD_ALIGN; }

void *fwd_take(fwd *f, size_t bytes) {
    if (f->dry) {
        f->used = align_up(f->used) + bytes;
        if (f->used > f->peak) f->peak = f->used;
        return dry_placeholder;
    }
    void *p = fs_arena_alloc(f->arena, bytes ? bytes : 1);
    if (!p)
        fs_fail(f->err, FS_ERR_NOMEM,
                "UNet forward: arena full: %zu more bytes wanted, %zu of %zu in use (the sizing "
                "pass and the real pass disagree)",
                bytes, fs_arena_used(f->arena), fs_arena_capacity(f->arena));
    return p;
}

float *fwd_floats(fwd *f, size_t count) {
    if (count > SIZE_MAX / sizeof(float)) {
        fs_fail(f->err, FS_ERR_RANGE, "UNet forward: %zu floats do not fit in memory", count);
        return NULL;
    }
    return fwd_take(f, count * sizeof(float));
}

size_t fwd_mark(const fwd *f) { return f->dry ? f->used : fs_arena_mark(f->arena); }

void fwd_reset(fwd *f, size_t mark) {
    if (f->dry) {
        if (mark <= f->used) f->used = mark;
    } else {
        fs_arena_reset(f->arena, mark);
    }
}

/* Dry pass: an op will take `bytes` of scratch on top of what is in use. */
static void need(fwd *f, size_t bytes) {
    size_t top = align_up(f->used) + bytes;
    if (top > f->peak) f->peak = top;
}

size_t fwd_tensor_floats(const fwd *f, const fwd_level *lv, int c) {
    return (size_t)f->n * (size_t)lv->rows * (size_t)lv->w * (size_t)c;
}

/* ---------------------------------------------------------------- norms */

fs_code fwd_gn_stats(fwd *f, const fwd_level *lv, const float *x, int c, float eps,
                     float **mean, float **rstd) {
    const int groups = f->cfg->groups, n = f->n;
    const size_t m = (size_t)n * groups * 2; /* partials per row */
    *mean = fwd_floats(f, (size_t)n * groups);
    *rstd = fwd_floats(f, (size_t)n * groups);
    if (!*mean || !*rstd) return f->err ? f->err->code : FS_ERR_NOMEM;
    size_t mark = fwd_mark(f);
    double *own = fwd_take(f, (size_t)lv->rows * m * sizeof(double));
    double *all = own;
    if (own && lv->plan->parts > 1) all = fwd_take(f, (size_t)lv->h * m * sizeof(double));
    if (!own || !all) return f->err ? f->err->code : FS_ERR_NOMEM;
    fs_code rc = FS_OK;
    if (!f->dry) {
        fs_groupnorm_partials(x, n, lv->rows, lv->w, c, groups, own);
        if (lv->plan->parts > 1)
            rc = fs_comm_allgather_row_partials(f->comm, lv->plan, own, m, all, f->err);
        if (rc == FS_OK) fs_groupnorm_finish(all, lv->h, n, lv->w, c, groups, eps, *mean, *rstd);
    }
    fwd_reset(f, mark);
    return rc;
}

void fwd_gn_apply(fwd *f, const fwd_level *lv, const float *x, int c, const float *mean,
                  const float *rstd, const fs_norm_w *nw, int silu, float *buf, int top,
                  int bot) {
    if (f->dry) return;
    const int groups = f->cfg->groups;
    const size_t item = (size_t)lv->rows * lv->w * c, row = (size_t)lv->w * c;
    const size_t item_buf = (size_t)(top + lv->rows + bot) * row;
    if (top == 0 && bot == 0) {
        fs_groupnorm_apply(x, buf, f->n, lv->rows, lv->w, c, groups, mean, rstd, nw->gamma,
                           nw->beta, silu);
        return;
    }
    for (int b = 0; b < f->n; b++)
        fs_groupnorm_apply(x + b * item, buf + b * item_buf + (size_t)top * row, 1, lv->rows,
                           lv->w, c, groups, mean + (size_t)b * groups, rstd + (size_t)b * groups,
                           nw->gamma, nw->beta, silu);
}

void fwd_layernorm(fwd *f, const float *x, float *y, size_t tokens, const fs_norm_w *nw) {
    if (f->dry) return;
    fs_layernorm(x, y, tokens, nw->c, 1e-5f, nw->gamma, nw->beta);
}

/* ---------------------------------------------------------------- comm */

void fwd_copy_own(fwd *f, const fwd_level *lv, const float *x, int c, float *buf, int top,
                  int bot) {
    if (f->dry) return;
    const size_t row = (size_t)lv->w * c, item = (size_t)lv->rows * row;
    const size_t item_buf = (size_t)(top + lv->rows + bot) * row;
    for (int b = 0; b < f->n; b++)
        memcpy(buf + b * item_buf + (size_t)top * row, x + b * item, item * sizeof(float));
}

fs_code fwd_halo(fwd *f, const fwd_level *lv, float *buf, int c, int top, int bot) {
    if (f->dry || (top == 0 && bot == 0)) return FS_OK;
    const size_t row = (size_t)lv->w * c;
    if (lv->plan->parts > 1)
        return fs_comm_halo(f->comm, lv->plan, buf, f->n, row, top, bot, f->err);
    /* One part: the strip is the whole map, every halo row is padding. */
    const size_t item_buf = (size_t)(top + lv->rows + bot) * row;
    for (int b = 0; b < f->n; b++) {
        float *item = buf + b * item_buf;
        memset(item, 0, (size_t)top * row * sizeof(float));
        memset(item + (size_t)(top + lv->rows) * row, 0, (size_t)bot * row * sizeof(float));
    }
    return FS_OK;
}

fs_code fwd_allgather(fwd *f, const fwd_level *lv, const float *own, float *full, int c) {
    if (f->dry) return FS_OK;
    if (lv->plan->parts > 1)
        return fs_comm_allgather_rows(f->comm, lv->plan, own, full, f->n, (size_t)lv->w * c,
                                      f->err);
    if (own != full) memcpy(full, own, fwd_tensor_floats(f, lv, c) * sizeof(float));
    return FS_OK;
}

/* ---------------------------------------------------------------- GEMM ops */

fs_code fwd_conv(fwd *f, const fs_conv2d_desc *d, const float *x, const fs_conv_w *cw,
                 float *y) {
    if (f->dry) {
        need(f, fs_conv2d_scratch_bytes(d));
        return FS_OK;
    }
    return fs_conv2d(d, x, cw->w, cw->b, y, f->arena, f->err);
}

fs_code fwd_linear(fwd *f, const float *x, size_t x_item, float *y, size_t y_item, int items,
                   size_t m, const fs_linear_w *lw, int64_t m0) {
    if (f->dry) {
        need(f, fs_linear_scratch_bytes(lw->in, lw->out));
        return FS_OK;
    }
    for (int b = 0; b < items; b++) {
        fs_code rc = fs_linear(x + b * x_item, y + b * y_item, m, lw->in, lw->out, lw->w, lw->b,
                               m0, f->arena, f->err);
        if (rc) return rc;
    }
    return FS_OK;
}

void fwd_small_linear(fwd *f, const float *x, float *y, int m, const fs_linear_w *lw) {
    if (f->dry) return;
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
}

fs_code fwd_attention(fwd *f, const float *q, const float *k, const float *v, float *o, int nq,
                      int nk, int heads, int dh, int64_t q0) {
    if (f->dry) {
        need(f, fs_attention_scratch_bytes(nk, heads, dh));
        return FS_OK;
    }
    const int ld = heads * dh;
    const float scale = (float)(1.0 / sqrt((double)dh));
    return fs_attention(q, ld, k, ld, v, ld, o, ld, nq, nk, heads, dh, scale, q0, f->arena,
                        f->err);
}

/* ---------------------------------------------------------------- pointwise */

void fwd_geglu(fwd *f, const float *x, float *y, size_t m, int d) {
    if (!f->dry) fs_geglu(x, y, m, d);
}

void fwd_silu(fwd *f, const float *x, float *y, size_t count) {
    if (!f->dry) fs_silu(x, y, count);
}

void fwd_add(fwd *f, float *y, const float *x, size_t count) {
    if (f->dry) return;
#pragma omp parallel for schedule(static) num_threads(fs_threads_count()) if (count >= PAR_MIN)
    for (size_t i = 0; i < count; i++) y[i] += x[i];
}

void fwd_add_bcast(fwd *f, float *y, const float *v, int n, size_t pixels, int c) {
    if (f->dry) return;
#pragma omp parallel for schedule(static) num_threads(fs_threads_count()) \
    if ((size_t)n * pixels * c >= PAR_MIN)
    for (size_t bp = 0; bp < (size_t)n * pixels; bp++) {
        const float *vb = v + (bp / pixels) * (size_t)c;
        float *yp = y + bp * (size_t)c;
        for (int ch = 0; ch < c; ch++) yp[ch] += vb[ch];
    }
}

void fwd_concat(fwd *f, const float *a, int ca, const float *s, int cs, float *y, size_t pixels) {
    if (f->dry) return;
    const size_t cy = (size_t)ca + (size_t)cs;
#pragma omp parallel for schedule(static) num_threads(fs_threads_count()) \
    if (pixels * cy >= PAR_MIN)
    for (size_t p = 0; p < pixels; p++) {
        memcpy(y + p * cy, a + p * (size_t)ca, (size_t)ca * sizeof(float));
        memcpy(y + p * cy + ca, s + p * (size_t)cs, (size_t)cs * sizeof(float));
    }
}

void fwd_copy(fwd *f, float *dst, const float *src, size_t count) {
    if (!f->dry && dst != src) memcpy(dst, src, count * sizeof(float));
}

void fwd_upsample2x(fwd *f, const float *x, float *y, int n, int rows, int w, int c) {
    if (!f->dry) fs_upsample_nearest2x(x, y, n, rows, w, c);
}

void fwd_trace(fwd *f, const char *name, const fwd_level *lv, const float *x, int c) {
    if (!f->dry && f->trace && f->trace->on_block)
        f->trace->on_block(f->trace->user, name, x, f->n, lv->rows, lv->w, c);
}
