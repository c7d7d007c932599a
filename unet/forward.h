/* unet/forward.h: what the forward-pass files (forward.c, blocks.c,
 * fwd_ops.c) share; private to unet/ (the loader does not need it).
 *
 * A forward pass runs twice over the same code: first a "dry" sizing pass
 * that takes and returns memory exactly as the real pass will but computes
 * and communicates nothing, then the real pass on one arena of the size the
 * dry pass measured. So the memory plan can never drift from the code: there
 * is one description of what each block holds at once, the code itself.
 *
 * Every op call and every loop over tensor data goes through an fwd_* helper
 * of fwd_ops.c; the helpers do nothing in the dry pass except count the
 * scratch the op would take. Block code offsets pointers only through
 * fwd_at(), which leaves dry-pass pointers (placeholders) alone. */
#ifndef FS_UNET_FORWARD_H
#define FS_UNET_FORWARD_H

#include "kernels/kernels.h"
#include "unet/unet_internal.h"

/* One UNet level (resolution) as this rank sees it. */
typedef struct fwd_level {
    const fs_strip_plan *plan;   /* the plan coarsened to this level */
    int h, w;                    /* the global map */
    int rank;                    /* this strip's index in the plan */
    int row0, rows;              /* this strip's global rows */
} fwd_level;

typedef struct fwd {
    const fs_unet_config *cfg;
    fs_comm *comm;               /* used only when a plan has > 1 part */
    int n;                       /* batch */
    int dry;                     /* sizing pass: count memory, compute nothing */
    fs_arena *arena;             /* real pass: every activation and op scratch */
    size_t used, peak;           /* dry pass: bytes that would be in use / at most */
    fs_error *err;
    const float *emb_silu;       /* [n][time_embed_dim]: SiLU(time + add embedding) */
    const float *context;        /* [n][ctx_len][context_dim] */
    int ctx_len;
    const fs_unet_trace *trace;
    fs_strip_plan plans[FS_UNET_MAX_LEVELS];
    fwd_level lv[FS_UNET_MAX_LEVELS];
} fwd;

/* ---------------------------------------------------------------- memory */
void *fwd_take(fwd *f, size_t bytes);          /* NULL (err set) when the arena is full */
float *fwd_floats(fwd *f, size_t count);
size_t fwd_mark(const fwd *f);
void fwd_reset(fwd *f, size_t mark);
/* p + off in the real pass; p itself (a placeholder) in the dry pass. */
static inline float *fwd_at(const fwd *f, float *p, size_t off) { return f->dry ? p : p + off; }
static inline const float *fwd_cat(const fwd *f, const float *p, size_t off) {
    return f->dry ? p : p + off;
}

/* ---------------------------------------------------------------- ops
 * Tensors are this rank's strip [n][rows][w][c] of a level unless said
 * otherwise; a "halo buffer" is [n][top + rows + bot][w][c]. */
size_t fwd_tensor_floats(const fwd *f, const fwd_level *lv, int c);
/* GroupNorm statistics over the whole map (all strips): mean and rstd
 * [n][groups], taken from the arena (the caller resets). */
fs_code fwd_gn_stats(fwd *f, const fwd_level *lv, const float *x, int c, float eps,
                     float **mean, float **rstd);
/* Writes GN(x) (with SiLU if silu) into the own rows of halo buffer buf. */
void fwd_gn_apply(fwd *f, const fwd_level *lv, const float *x, int c, const float *mean,
                  const float *rstd, const fs_norm_w *nw, int silu, float *buf, int top,
                  int bot);
/* Copies x into the own rows of halo buffer buf. */
void fwd_copy_own(fwd *f, const fwd_level *lv, const float *x, int c, float *buf, int top,
                  int bot);
/* Fills the halo rows of buf from the ranks that own them (zeros off the map). */
fs_code fwd_halo(fwd *f, const fwd_level *lv, float *buf, int c, int top, int bot);
/* All strips' rows [n][rows][w*c] -> [n][h][w*c] on every rank. */
fs_code fwd_allgather(fwd *f, const fwd_level *lv, const float *own, float *full, int c);
fs_code fwd_conv(fwd *f, const fs_conv2d_desc *d, const float *x, const fs_conv_w *cw,
                 float *y);
/* y_b = x_b W^T + bias for items b < items: x_b = x + b * x_item, y_b = y +
 * b * y_item (floats), m rows each, the first being global row m0. */
fs_code fwd_linear(fwd *f, const float *x, size_t x_item, float *y, size_t y_item, int items,
                   size_t m, const fs_linear_w *lw, int64_t m0);
/* Tiny products (the embeddings, m = batch): a deterministic parallel loop
 * with double sums instead of 256-row GEMM tiles. */
void fwd_small_linear(fwd *f, const float *x, float *y, int m, const fs_linear_w *lw);
fs_code fwd_attention(fwd *f, const float *q, const float *k, const float *v, float *o, int nq,
                      int nk, int heads, int dh, int64_t q0);
void fwd_layernorm(fwd *f, const float *x, float *y, size_t tokens, const fs_norm_w *nw);
void fwd_geglu(fwd *f, const float *x, float *y, size_t m, int d);
void fwd_silu(fwd *f, const float *x, float *y, size_t count);
void fwd_add(fwd *f, float *y, const float *x, size_t count);          /* y += x */
/* y[b][p][ch] += v[b][ch] for p < pixels. */
void fwd_add_bcast(fwd *f, float *y, const float *v, int n, size_t pixels, int c);
/* y[p] = [a[p] (ca channels) | s[p] (cs channels)] for p < pixels. */
void fwd_concat(fwd *f, const float *a, int ca, const float *s, int cs, float *y, size_t pixels);
void fwd_copy(fwd *f, float *dst, const float *src, size_t count);
void fwd_upsample2x(fwd *f, const float *x, float *y, int n, int rows, int w, int c);
void fwd_trace(fwd *f, const char *name, const fwd_level *lv, const float *x, int c);

/* Bytes of the arena fs_unet_forward takes on strip `rank` of plan (the dry
 * pass alone; needs only the weights' shapes, not their values). For memory
 * planning before a stage starts; a candidate for unet.h. */
fs_code fs_unet_forward_bytes(const fs_unet *u, const fs_strip_plan *plan, int rank, int h,
                              int w, int n, int ctx_len, size_t *bytes, fs_error *err);

/* ---------------------------------------------------------------- blocks (blocks.c) */
/* y = ResnetBlock2D(x): x [n][rows][w][rw->cin], y [..][rw->cout]; x != y. */
fs_code fwd_resblock(fwd *f, const fwd_level *lv, const fs_resnet_w *rw, const float *x,
                     float *y);
/* x = Transformer2DModel(x, context), in place. */
fs_code fwd_transformer(fwd *f, const fwd_level *lv, const fs_transformer_w *tw, float *x);
/* Stride-2 3x3 conv from level `fine` to the next coarser level `coarse`. */
fs_code fwd_downsample(fwd *f, const fwd_level *fine, const fwd_level *coarse,
                       const fs_conv_w *cw, const float *x, float *y);
/* Nearest 2x then 3x3 conv, from level `coarse` to the finer level `fine`. */
fs_code fwd_upsample(fwd *f, const fwd_level *coarse, const fwd_level *fine,
                     const fs_conv_w *cw, const float *x, float *y);
/* y = conv3x3(x) (stride 1) with its halo; with nw, x is first normed by a
 * global GroupNorm (eps) + SiLU (conv_norm_out before conv_out). */
fs_code fwd_conv3x3(fwd *f, const fwd_level *lv, const fs_conv_w *cw, const fs_norm_w *nw,
                    float eps, const float *x, float *y);

#endif
