/* nn/ops.c: the dry-aware helpers of nn.h on one rank's data: memory (arena
 * stack and counted heap blocks), the GEMM ops (with their FLOPs counted),
 * the norms and the pointwise ops, each one call of the pass's backend
 * table, timed into FS_PROFILE's table (nn/profile.c) when that is on. The
 * helpers that move rows between ranks are in nn/strips.c, FreeScale's in
 * nn/ops_fs.c.
 *
 * In the sizing pass a helper computes and sends nothing and only records
 * the scratch bytes its op would take from the arena on top of what is in
 * use. In the real pass it calls the backend's op on the pass's one arena. */
#include <math.h>
#include <string.h>
#include "nn/profile.h"


/* ---------------------------------------------------------------- memory */

enum { NN_ALIGN = 64 };
/* What the dry pass hands out instead of memory; never read or written. */
static _Alignas(64) unsigned char dry_placeholder[NN_ALIGN];

static size_t align_up(size_t v) { return (v + NN_ALIGN - 1) / NN_ALIGN * NN_ALIGN; }

static size_t arena_now(const nn_ctx *f) { return f->dry ? f->used : fs_arena_used(f->arena); }

/* The arena's high-water mark so far (with `top` bytes in use now). */
static size_t arena_high(const nn_ctx *f, size_t top) {
    size_t hw = f->dry ? f->arena_peak : fs_arena_peak(f->arena);
    return hw > top ? hw : top;
}

static void bump_peak(nn_ctx *f, size_t extra) {
    size_t now = arena_now(f) + f->heap + extra;
    if (now > f->peak) f->peak = now;
    size_t resident = arena_high(f, arena_now(f) + extra) + f->heap;
    if (resident > f->resident_peak) f->resident_peak = resident;
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
    if (f->arena_peak + f->heap > f->resident_peak) f->resident_peak = f->arena_peak + f->heap;
}

/* The real pass on host memory: the process's counted bytes (core's
 * fs_mem_*, what fs_render_stats reports) follow the pass's own residency
 * model of its heap blocks, as the sizing pass counts them: a lazy block
 * from the rows written to it, less the rows given back. */
static int counts_host(const nn_ctx *f) { return !f->dry && nn_backend(f)->host_memory; }

float *nn_heap_floats(nn_ctx *f, size_t count, int lazy) {
    if (count > SIZE_MAX / sizeof(float) - NN_ALIGN) {
        fs_fail(f->err, FS_ERR_RANGE, "%s: %zu floats do not fit in memory", f->what, count);
        return NULL;
    }
    size_t bytes = count * sizeof(float);
    float *p = (float *)dry_placeholder;
    if (!f->dry && NN_OP(f, alloc, (void **)&p, bytes, f->err)) {
        fs_error_prefix(f->err, "%s, a map: ", f->what);
        return NULL;
    }
    if (!lazy) {
        f->heap += bytes;
        bump_peak(f, 0);
    } else if (counts_host(f)) {
        fs_mem_note(fs_alloc_size(p), 0);   /* counted as its rows are written */
    }
    return p;
}

void nn_heap_free(nn_ctx *f, float *p, size_t counted) {
    if (!p) return;
    f->heap = f->heap > counted ? f->heap - counted : 0;
    if (counts_host(f)) {   /* fs_free uncounts the whole block: count back the rest */
        size_t size = fs_alloc_size(p);
        if (size > counted) fs_mem_note(size - counted, 1);
    }
    if (!f->dry) nn_backend(f)->op->free(nn_backend(f), p);
}

size_t nn_heap_release(nn_ctx *f, float *p, size_t count) {
    size_t bytes = count * sizeof(float);
    if (!f->dry && bytes) nn_backend(f)->op->discard(nn_backend(f), p, bytes);
    if (counts_host(f)) fs_mem_note(bytes, 0);
    f->heap = f->heap > bytes ? f->heap - bytes : 0;
    return bytes;
}

void nn_note_heap(nn_ctx *f, size_t bytes, int add) {
    if (counts_host(f)) fs_mem_note(bytes, add);
    if (add) {
        f->heap += bytes;
        bump_peak(f, 0);
    } else {
        f->heap = f->heap > bytes ? f->heap - bytes : 0;
    }
}

fs_code nn_timestep_embedding(nn_ctx *f, const float *t, int n, int dim, float *out) {
    if (f->dry) return FS_OK;
    return NN_OP(f, timestep_embedding, t, n, dim, out, f->err);
}

fs_code nn_upload(nn_ctx *f, void *dst, const void *host, size_t bytes) {
    if (f->dry || !bytes) return FS_OK;
    return NN_OP(f, upload, dst, host, bytes, f->err);
}

fs_code nn_download(nn_ctx *f, void *host, const void *src, size_t bytes) {
    if (f->dry || !bytes) return FS_OK;
    return NN_OP(f, download, host, src, bytes, f->err);
}

size_t nn_tensor_floats(const nn_ctx *f, const nn_level *lv, int c) {
    return (size_t)f->n * (size_t)lv->rows * (size_t)lv->w * (size_t)c;
}

/* ---------------------------------------------------------------- norms */

fs_code nn_gn_partials(nn_ctx *f, const float *x, int rows, int w, int c, int groups,
                       double *part) {
    if (f->dry || rows <= 0) return FS_OK;
    nn_prof_time t0 = nn_prof_t(f);
    fs_code rc = NN_OP(f, gn_partials, x, f->n, rows, w, c, groups, part, f->err);
    nn_prof_add(f, t0, PK_GN, 0, "partials c=%d", c);
    return rc;
}

fs_code nn_gn_apply_rows(nn_ctx *f, const float *x, float *y, int rows, int w, int c, int groups,
                         const float *mean, const float *rstd, const nn_norm_w *nw, int silu) {
    if (f->dry || rows <= 0) return FS_OK;
    nn_prof_time t0 = nn_prof_t(f);
    fs_code rc = NN_OP(f, gn_apply, x, y, 1, rows, w, c, groups, mean, rstd, nw->gamma, nw->beta,
                       silu, f->err);
    nn_prof_add(f, t0, PK_GN, 0, "apply%s c=%d", silu ? "+silu" : "", c);
    return rc;
}

fs_code nn_layernorm(nn_ctx *f, const float *x, float *y, size_t tokens, float eps,
                     const nn_norm_w *nw) {
    if (f->dry) return FS_OK;
    nn_prof_time t0 = nn_prof_t(f);
    fs_code rc = NN_OP(f, layernorm, x, y, tokens, nw->c, eps, nw->gamma, nw->beta, f->err);
    nn_prof_add(f, t0, PK_LN, 0, "c=%d", nw->c);
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
    nn_prof_time t0 = nn_prof_t(f);
    fs_code rc = NN_OP(f, conv2d, d, x, cw->w, cw->b, y, f->arena, f->err);
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
    nn_prof_time t0 = nn_prof_t(f);
    fs_code rc = FS_OK;
    for (int b = 0; b < items && !rc; b++)
        rc = NN_OP(f, linear, x + b * x_item, y + b * y_item, m, lw->in, lw->out, lw->w, lw->b,
                   m0, f->arena, f->err);
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
    nn_prof_time t0 = nn_prof_t(f);
    fs_code rc = NN_OP(f, linear_whole, x, y, m, lw->in, lw->out, lw->w, lw->b, f->arena, f->err);
    nn_prof_add(f, t0, PK_LINEAR, flop, "%d->%d whole m=%zu", lw->in, lw->out, m);
    return rc;
}

fs_code nn_small_linear(nn_ctx *f, const float *x, float *y, int m, const nn_linear_w *lw) {
    if (f->dry) return FS_OK;
    nn_prof_time t0 = nn_prof_t(f);
    fs_code rc = NN_OP(f, small_linear, x, y, m, lw->in, lw->out, lw->w, lw->b, f->err);
    nn_prof_add(f, t0, PK_SMALL, 2.0 * m * (double)lw->in * lw->out, "%d->%d", lw->in, lw->out);
    return rc;
}

fs_code nn_embed_tokens(nn_ctx *f, const int32_t *ids, size_t m, int positions, int c,
                        const float *tokens, const float *pos, float *x) {
    if (f->dry) return FS_OK;
    nn_prof_time t0 = nn_prof_t(f);
    fs_code rc = NN_OP(f, embed_tokens, ids, m, positions, c, tokens, pos, x, f->err);
    nn_prof_add(f, t0, PK_MOVE, 0, "token embedding c=%d", c);
    return rc;
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
    nn_prof_time t0 = nn_prof_t(f);
    fs_code rc = NN_OP(f, attention, q, ld, k, ld, v, ld, o, ld, nq, nk, heads, dh, scale, q0,
                       f->arena, f->err);
    nn_prof_add(f, t0, PK_ATTN, flop, "nq=%d nk=%d heads=%d", nq, nk, heads);
    return rc;
}

fs_code nn_attention_causal(nn_ctx *f, const float *q, const float *k, const float *v, float *o,
                            int nq, int nk, int heads, int dh, float scale, int64_t q0) {
    const double flop = 4.0 * nq * (double)nk * dh * heads; /* as if unmasked: an upper bound */
    f->flops += flop;
    if (f->dry) {
        need(f, fs_attention_scratch_bytes(nk, heads, dh));
        return FS_OK;
    }
    const int ld = heads * dh;
    nn_prof_time t0 = nn_prof_t(f);
    fs_code rc = NN_OP(f, attention_causal, q, ld, k, ld, v, ld, o, ld, nq, nk, heads, dh, scale,
                       q0, f->arena, f->err);
    nn_prof_add(f, t0, PK_ATTN, flop, "causal nq=%d nk=%d heads=%d", nq, nk, heads);
    return rc;
}

/* ---------------------------------------------------------------- pointwise */

fs_code nn_geglu(nn_ctx *f, const float *x, float *y, size_t m, int d) {
    if (f->dry) return FS_OK;
    nn_prof_time t0 = nn_prof_t(f);
    fs_code rc = NN_OP(f, geglu, x, y, m, d, f->err);
    nn_prof_add(f, t0, PK_GEGLU, 0, "d=%d", d);
    return rc;
}

/* An activation: one of the table's unary ops, timed under `label`. */
typedef fs_code (*unary_op)(const fs_backend *, const float *, float *, size_t, fs_error *);
static fs_code activation(nn_ctx *f, unary_op op, const char *label, const float *x, float *y,
                          size_t count) {
    if (f->dry) return FS_OK;
    nn_prof_time t0 = nn_prof_t(f);
    fs_code rc = op(nn_backend(f), x, y, count, f->err);
    nn_prof_add(f, t0, PK_ELEM, 0, "%s", label);
    return rc;
}

fs_code nn_silu(nn_ctx *f, const float *x, float *y, size_t count) {
    return activation(f, nn_backend(f)->op->silu, "silu", x, y, count);
}

fs_code nn_gelu(nn_ctx *f, const float *x, float *y, size_t count) {
    return activation(f, nn_backend(f)->op->gelu, "gelu", x, y, count);
}

fs_code nn_quick_gelu(nn_ctx *f, const float *x, float *y, size_t count) {
    return activation(f, nn_backend(f)->op->quick_gelu, "quick gelu", x, y, count);
}

/* y += x or y -= x: one of the table's in-place binary ops. */
typedef fs_code (*binary_op)(const fs_backend *, float *, const float *, size_t, fs_error *);
static fs_code accumulate(nn_ctx *f, binary_op op, const char *label, float *y, const float *x,
                          size_t count) {
    if (f->dry) return FS_OK;
    nn_prof_time t0 = nn_prof_t(f);
    fs_code rc = op(nn_backend(f), y, x, count, f->err);
    nn_prof_add(f, t0, PK_ELEM, 0, "%s", label);
    return rc;
}

fs_code nn_add(nn_ctx *f, float *y, const float *x, size_t count) {
    return accumulate(f, nn_backend(f)->op->add, "add", y, x, count);
}

fs_code nn_sub(nn_ctx *f, float *y, const float *x, size_t count) {
    return accumulate(f, nn_backend(f)->op->sub, "subtract", y, x, count);
}

fs_code nn_add_bcast(nn_ctx *f, float *y, const float *v, int n, size_t pixels, int c) {
    if (f->dry) return FS_OK;
    nn_prof_time t0 = nn_prof_t(f);
    fs_code rc = NN_OP(f, add_bcast, y, v, n, pixels, c, f->err);
    nn_prof_add(f, t0, PK_ELEM, 0, "add broadcast");
    return rc;
}

fs_code nn_concat(nn_ctx *f, const float *a, int ca, const float *s, int cs, float *y,
                  size_t pixels) {
    if (f->dry) return FS_OK;
    nn_prof_time t0 = nn_prof_t(f);
    fs_code rc = NN_OP(f, concat, a, ca, s, cs, y, pixels, f->err);
    nn_prof_add(f, t0, PK_MOVE, 0, "concat");
    return rc;
}

fs_code nn_copy(nn_ctx *f, float *dst, const float *src, size_t count) {
    if (f->dry || dst == src || !count) return FS_OK;
    nn_prof_time t0 = nn_prof_t(f);
    fs_code rc = NN_OP(f, copy, dst, src, count * sizeof(float), f->err);
    nn_prof_add(f, t0, PK_MOVE, 0, "copy");
    return rc;
}

/* Not timed: a zero fill is never worth a profile row. */
fs_code nn_zero(nn_ctx *f, float *dst, size_t count) {
    if (f->dry || !count) return FS_OK;
    return NN_OP(f, zero, dst, count * sizeof(float), f->err);
}

fs_code nn_upsample2x(nn_ctx *f, const float *x, float *y, int n, int rows, int w, int c) {
    if (f->dry) return FS_OK;
    nn_prof_time t0 = nn_prof_t(f);
    fs_code rc = NN_OP(f, upsample_nearest2x, x, y, n, rows, w, c, f->err);
    nn_prof_add(f, t0, PK_MOVE, 0, "upsample 2x");
    return rc;
}
