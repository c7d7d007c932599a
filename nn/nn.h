/* nn: the forward passes' door to memory, kernels and comm, shared by the
 * networks (unet/, vae/, text/): ops on a rank's row strip of a map, each a
 * thin "dry-aware" wrapper of a kernel or comm call.
 *
 * A forward pass runs twice over the same code: first a "dry" sizing pass
 * that takes and returns memory exactly as the real pass will but computes
 * and communicates nothing (it counts bytes and FLOPs), then the real pass on
 * one arena of the size the dry pass measured. So the memory plan can never
 * drift from the code: there is one description of what each block holds at
 * once, the code itself.
 *
 * Every op call and every loop over tensor data goes through an nn_* helper,
 * and every helper through the context's backend table (kernels.h), so a
 * network has nothing to branch on; each returns its error (fs_code, the
 * message in err) and nothing else reports one;
 * in the dry pass the helpers do nothing except count the scratch and FLOPs
 * the op would take. Block code offsets pointers only through nn_at(), which
 * leaves dry-pass pointers (placeholders) alone.
 *
 * Memory comes two ways: the arena (a stack: nn_take / nn_mark / nn_reset)
 * for temporaries that die in order, and counted heap blocks (nn_heap_floats /
 * nn_heap_free) for large maps whose lifetimes overlap out of stack order.
 * The dry pass tracks both; its `peak` is the most bytes resident at once
 * (arena in use + heap blocks, less what nn_heap_release gave back).
 *
 * Communication only happens when a level's plan has more than one part:
 * a one-part plan is a whole map on one process whatever the communicator,
 * and its halo rows are all off the map, hence zeros. */
#ifndef FS_NN_H
#define FS_NN_H

#include <stddef.h>
#include <stdint.h>
#include "comm/comm.h"
#include "core/core.h"
#include "kernels/kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One resolution level of a network as this rank sees it. */
typedef struct nn_level {
    const fs_strip_plan *plan;   /* the plan at this level */
    int h, w;                    /* the global map */
    int rank;                    /* this strip's index in the plan */
    int row0, rows;              /* this strip's global rows */
} nn_level;

/* Weights in the layouts the helpers take. Linear: w [out][in] (PyTorch),
 * b [out] or NULL. Conv: w OHWI [out][k][k][in] (converted at load), b [out]
 * or NULL. Norm: GroupNorm / LayerNorm affine parameters [c]. */
typedef struct { float *w, *b; int in, out; } nn_linear_w;
typedef struct { float *w, *b; int in, out, k; } nn_conv_w;
typedef struct { float *gamma, *beta; int c; } nn_norm_w;

typedef struct nn_ctx {
    const char *what;            /* "VAE decode": starts error messages */
    fs_comm *comm;               /* used only when a plan has > 1 part */
    int n;                       /* batch */
    int dry;                     /* sizing pass: count memory, compute nothing */
    fs_arena *arena;             /* real pass: the stack of temporaries and op scratch */
    fs_error *err;
    /* counters (both passes; the dry pass's are the plan) */
    size_t used;                 /* arena bytes in use (dry pass) */
    size_t arena_peak;           /* most arena bytes in use at once (dry pass) */
    size_t heap;                 /* heap bytes resident now */
    size_t peak;                 /* most arena + heap bytes in use at once */
    size_t resident_peak;        /* most bytes resident at once: the arena's high-water
                                    mark so far (its pages stay once touched) + heap; what
                                    the process's counted bytes (fs_mem_*) measure */
    double flops;                /* floating-point operations of the GEMM ops */
    int level;                   /* resolution level being computed (FS_PROFILE's rows) */
    /* The device every op of the pass runs on (kernels.h's table): its
     * memory holds the arena, the heap blocks and the weights. NULL: the
     * CPU backend. Rows that cross ranks go through host copies when the
     * backend's memory is not the host's. */
    const fs_backend *be;
} nn_ctx;

/* ---------------------------------------------------------------- profile
 * FS_PROFILE=1 in the environment: every helper below times itself (wall
 * clock and process CPU time, real pass only) into a table by op kind,
 * level (nn_ctx.level) and shape, printed to stderr at exit as time and
 * GFLOP/s per evaluation, averaged over the evaluations after the first (the
 * warm-up, when there are several). nn_profile_eval marks the start
 * (begin = 1) and the end of one evaluation (a forward, a decode). */
void nn_profile_eval(const nn_ctx *f, int begin);

/* The pass's backend (the CPU's when the context names none). */
static inline const fs_backend *nn_backend(const nn_ctx *f) {
    return f->be ? f->be : fs_backend_cpu();
}

/* ---------------------------------------------------------------- memory */
void *nn_take(nn_ctx *f, size_t bytes);        /* arena; NULL (err set) when full */
float *nn_floats(nn_ctx *f, size_t count);
size_t nn_mark(const nn_ctx *f);
void nn_reset(nn_ctx *f, size_t mark);
/* p + off in the real pass; p itself (a placeholder) in the dry pass. */
static inline float *nn_at(const nn_ctx *f, float *p, size_t off) { return f->dry ? p : p + off; }
static inline const float *nn_cat(const nn_ctx *f, const float *p, size_t off) {
    return f->dry ? p : p + off;
}
/* A heap block of `count` floats (fs_alloc; a placeholder in the dry pass),
 * counted resident from the start, or with `lazy` not counted at all: the
 * caller then counts the parts it writes (nn_note_heap), since the system
 * gives a large block pages only when they are first written. NULL (err
 * set) on failure. On host memory the process's counted bytes (core's
 * fs_mem_*) follow the same counts, so a measured peak is the sizing pass's
 * model of what is resident, not the blocks' reserved size. */
float *nn_heap_floats(nn_ctx *f, size_t count, int lazy);
/* Frees a block from nn_heap_floats; `counted` is the bytes of it still
 * counted resident. */
void nn_heap_free(nn_ctx *f, float *p, size_t counted);
/* Gives the whole pages of floats [p, p + count) back to the system (their
 * contents are lost: the caller no longer needs them) and stops counting
 * them. Returns the bytes no longer counted (count * 4). */
size_t nn_heap_release(nn_ctx *f, float *p, size_t count);
/* Counts bytes resident (add) or no longer resident (!add). */
void nn_note_heap(nn_ctx *f, size_t bytes, int add);

/* Copies between the host and the backend's memory (copies on the CPU). */
fs_code nn_upload(nn_ctx *f, void *dst, const void *host, size_t bytes);
fs_code nn_download(nn_ctx *f, void *host, const void *src, size_t bytes);

size_t nn_tensor_floats(const nn_ctx *f, const nn_level *lv, int c);
/* The error code of a failed allocation (the helpers set err). */
static inline fs_code nn_oom(const nn_ctx *f) {
    return f->err && f->err->code ? f->err->code : FS_ERR_NOMEM;
}

/* ---------------------------------------------------------------- norms
 * GroupNorm statistics over the whole map of level lv (all strips).
 * nn_gn_partials: per-row partial sums of `rows` rows at x (any rows of the
 * strip, [n][rows][w][c]) into part (fs_groupnorm_partials' layout).
 * nn_gn_finish: own_part holds the partials of this strip's own rows (in
 * row order); sums every strip's exactly across ranks (fixed-point, so the
 * same bits for any split: comm.h's fs_comm_sum_rows_exact) and folds the
 * totals into mean and rstd [n][groups]. Partials, mean and rstd are in the
 * backend's memory (the partials come to the host to be summed: a few kB). */
fs_code nn_gn_partials(nn_ctx *f, const float *x, int rows, int w, int c, int groups,
                       double *part);
fs_code nn_gn_finish(nn_ctx *f, const nn_level *lv, const double *own_part, int c, int groups,
                     float eps, float *mean, float *rstd);
/* Both at once for x = this strip's own rows [n][rows][w][c]; mean and rstd
 * [n][groups] are taken from the arena (the caller resets). */
fs_code nn_gn_stats(nn_ctx *f, const nn_level *lv, const float *x, int c, int groups, float eps,
                    float **mean, float **rstd);
/* Writes GN(x) (with SiLU if silu) of the own rows into the own rows of the
 * halo buffer buf ([n][top + rows + bot][w][c]). */
fs_code nn_gn_apply(nn_ctx *f, const nn_level *lv, const float *x, int c, int groups,
                    const float *mean, const float *rstd, const nn_norm_w *nw, int silu, float *buf,
                    int top, int bot);
/* y = GN(x) (+ SiLU) for `rows` rows of one item (n = 1 statistics). */
fs_code nn_gn_apply_rows(nn_ctx *f, const float *x, float *y, int rows, int w, int c, int groups,
                         const float *mean, const float *rstd, const nn_norm_w *nw, int silu);
fs_code nn_layernorm(nn_ctx *f, const float *x, float *y, size_t tokens, float eps,
                     const nn_norm_w *nw);

/* ---------------------------------------------------------------- comm (nn/strips.c) */
/* Copies x (own rows) into the own rows of halo buffer buf. */
fs_code nn_copy_own(nn_ctx *f, const nn_level *lv, const float *x, int c, float *buf, int top,
                    int bot);
/* Fills the halo rows of buf from the ranks that own them (zeros off the map). */
fs_code nn_halo(nn_ctx *f, const nn_level *lv, float *buf, int c, int top, int bot);
/* All strips' rows [n][rows][w*c] -> [n][h][w*c] on every rank. */
fs_code nn_allgather(nn_ctx *f, const nn_level *lv, const float *own, float *full, int c);

/* ---------------------------------------------------------------- GEMM ops */
fs_code nn_conv(nn_ctx *f, const fs_conv2d_desc *d, const float *x, const nn_conv_w *cw,
                float *y);
/* y_b = x_b W^T + bias for items b < items: x_b = x + b * x_item, y_b = y +
 * b * y_item (floats), m rows each, the first being global row m0. */
fs_code nn_linear(nn_ctx *f, const float *x, size_t x_item, float *y, size_t y_item, int items,
                  size_t m, const nn_linear_w *lw, int64_t m0);
/* y = x W^T + bias for a matrix of m rows every rank holds whole (the text
 * context): fs_linear_whole, no row padding. */
fs_code nn_linear_whole(nn_ctx *f, const float *x, float *y, size_t m, const nn_linear_w *lw);
/* diffusers' sinusoidal Timesteps of n host values t into out [n][dim]. */
fs_code nn_timestep_embedding(nn_ctx *f, const float *t, int n, int dim, float *out);
/* Tiny products (embeddings, m = batch): a deterministic parallel loop with
 * double sums instead of 256-row GEMM tiles. */
fs_code nn_small_linear(nn_ctx *f, const float *x, float *y, int m, const nn_linear_w *lw);
/* x[r] = tokens[ids[r]] + pos[r % positions] for r < m (fs_embed_tokens;
 * ids in the backend's memory). */
fs_code nn_embed_tokens(nn_ctx *f, const int32_t *ids, size_t m, int positions, int c,
                        const float *tokens, const float *pos, float *x);
/* Attention with scale 1/sqrt(dh); q, k, v, o rows of heads * dh floats. */
fs_code nn_attention(nn_ctx *f, const float *q, const float *k, const float *v, float *o, int nq,
                     int nk, int heads, int dh, int64_t q0);
/* The same with the text encoders' causal mask (fs_attention_causal) and
 * its own scale. */
fs_code nn_attention_causal(nn_ctx *f, const float *q, const float *k, const float *v, float *o,
                            int nq, int nk, int heads, int dh, float scale, int64_t q0);

/* ---------------------------------------------------------------- pointwise */
fs_code nn_geglu(nn_ctx *f, const float *x, float *y, size_t m, int d);
fs_code nn_silu(nn_ctx *f, const float *x, float *y, size_t count);
fs_code nn_gelu(nn_ctx *f, const float *x, float *y, size_t count);
fs_code nn_quick_gelu(nn_ctx *f, const float *x, float *y, size_t count);
fs_code nn_add(nn_ctx *f, float *y, const float *x, size_t count);           /* y += x */
fs_code nn_sub(nn_ctx *f, float *y, const float *x, size_t count);           /* y -= x */
/* y[b][p][ch] += v[b][ch] for p < pixels. */
fs_code nn_add_bcast(nn_ctx *f, float *y, const float *v, int n, size_t pixels, int c);
/* y[p] = [a[p] (ca channels) | s[p] (cs channels)] for p < pixels. */
fs_code nn_concat(nn_ctx *f, const float *a, int ca, const float *s, int cs, float *y,
                  size_t pixels);
fs_code nn_copy(nn_ctx *f, float *dst, const float *src, size_t count);      /* memmove */
fs_code nn_zero(nn_ctx *f, float *dst, size_t count);
fs_code nn_upsample2x(nn_ctx *f, const float *x, float *y, int n, int rows, int w, int c);

/* ---------------------------------------------------------------- FreeScale (ops_fs.c)
 * fs_blur on a buffer holding the rows d says (the caller made the halo);
 * g: the d->k taps, in host memory (the op's parameters, not a tensor). */
fs_code nn_blur(nn_ctx *f, const fs_blur_desc *d, const float *g, const float *x, float *y);
/* fs_blur_fft in place on whole maps x [n][h][w][c] (every rank the same). */
fs_code nn_blur_fft(nn_ctx *f, float *x, int h, int w, int c, float sigma);
/* sum[m] = the per-row partials own_part ([own rows][m], this strip's rows
 * of level lv) of all strips, summed exactly (fs_comm_sum_rows_exact: one
 * all-reduce of m * 7 int64): the same bits for any split. Both in the
 * backend's memory (nn/strips.c). */
fs_code nn_sum_rows(nn_ctx *f, const nn_level *lv, const double *own_part, size_t m,
                    double *sum);
/* FreeU's Fourier filter (kernels.h) with scale s on this strip's own rows
 * x [n][rows][w][c], in place: per-row partials, summed exactly across ranks,
 * applied per item. */
fs_code nn_freeu_filter(nn_ctx *f, const nn_level *lv, float *x, int c, float s);
/* Scale fusion's token moves (kernels.h, "token grids"). */
fs_code nn_grid_gather(nn_ctx *f, float *dst, const float *src, int src_row0, int fh, int fw,
                       int c, const fs_grid *g, const float *pad);
fs_code nn_grid_scatter(nn_ctx *f, float *dst, int dst_row0, int fw, int c, const fs_grid *g,
                        const float *src);
fs_code nn_window_add(nn_ctx *f, float *out, float *cnt, int row0, int rows, int fw, int c,
                      const fs_grid *g, const float *o);
fs_code nn_divide_counts(nn_ctx *f, float *out, const float *cnt, size_t tokens, int c);
/* x[p][ch] *= b for ch < first, p < pixels (rows of c floats). */
fs_code nn_scale_channels(nn_ctx *f, float *x, size_t pixels, int c, int first, float b);

#ifdef __cplusplus
}
#endif
#endif
