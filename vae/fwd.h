/* vae/fwd.h: what the VAE's pass files (blocks.c, levels.c, forward.c,
 * tiled.c, codec.c) share; private to vae/. Calls point one way: codec.c ->
 * tiled.c -> forward.c -> levels.c -> blocks.c.
 *
 * A pass works on one batch item at a time (nn_ctx.n = 1) and on this
 * rank's row strip at every resolution. Resolution r is the image divided by
 * 2^r: r = 0 the image, r = levels - 1 the latent. A map held whole is a
 * vmap: one heap block of the strip's rows plus halo rows above and below;
 * maps are filled band by band (a band: a few rows, with the temporaries of
 * its ops on the arena), and each map's GroupNorm statistics are summed
 * while its bands are written, so a statistic is ready when the map is.
 *
 * Memory schemes per resolution (vae/levels.c explains them): whether a
 * resnet's middle activation h is held (S) or recomputed band by band (R),
 * and, on the decoder, whether the upsampler's output u is held (STORE) or
 * recomputed from the coarser map on each pass that needs it (HS: u twice,
 * the next resnet's h and shortcut held; THREE: u three times, nothing
 * held but the output, the coarse map given back as it is consumed). */
#ifndef FS_VAE_FWD_H
#define FS_VAE_FWD_H

#include "vae/vae_internal.h"

#define VAE_MAX_GROUPS 1024

/* A level's scheme: bit 0 = resnets recompute h (R); the transition kind
 * (decoder levels below the latent one) is scheme >> 1. */
enum { VAE_SCHEMES = 6 };
enum { VAE_TRANS_STORE = 0, VAE_TRANS_HS = 1, VAE_TRANS_THREE = 2 };
static inline int vae_scheme_recompute(int s) { return s & 1; }
static inline int vae_scheme_transition(int s) { return s >> 1; }

typedef struct vmap {
    float *p;                /* [top + rows + bot][w][c] */
    size_t floats;
    size_t counted;          /* bytes of the block counted resident */
    int lazy;                /* counted as rows are written (VAE_TRANS_THREE's output) */
    int committed_to;        /* (lazy maps) own rows below this are counted */
    int released_to;         /* storage rows [0, released_to) given back */
    const nn_level *lv;
    int c, top, bot;
    int halo_filled;         /* the halo rows hold the neighbours' rows */
    int halo_counted;        /* (lazy maps) their bytes are counted */
    int has_stats;           /* mean / rstd are this map's statistics */
    float mean[VAE_MAX_GROUPS], rstd[VAE_MAX_GROUPS];
} vmap;

typedef struct vfwd {
    nn_ctx nn;
    const fs_vae_config *cfg;
    const vae_weights *w;
    int levels;
    fs_strip_plan plans[FS_VAE_MAX_LEVELS];
    nn_level lv[FS_VAE_MAX_LEVELS];      /* lv[r]: resolution r */
    int scheme[FS_VAE_MAX_LEVELS];
    size_t band_bytes;                   /* what a band's temporaries aim at */
    const fs_vae_trace *trace;
    int item;                            /* batch item being computed (traces) */
    int level;                           /* resolution being computed (accounting) */
    size_t level_peak[FS_VAE_MAX_LEVELS];
    double level_flops[FS_VAE_MAX_LEVELS];
} vfwd;

/* ---------------------------------------------------------------- blocks.c */
/* Accounting: the level now computed (peaks and FLOPs per level). */
void vfwd_enter(vfwd *f, int r);
void vfwd_account(vfwd *f);

fs_code vmap_alloc(vfwd *f, vmap *m, const nn_level *lv, int c, int halo, int lazy);
void vmap_free(vfwd *f, vmap *m);
/* Pointer to global row g of the map (g inside its held rows). */
float *vmap_row(const vfwd *f, const vmap *m, int g);
/* Exchanges the halo rows (once per content: writers clear halo_filled). */
fs_code vmap_halo(vfwd *f, vmap *m);
/* Counts rows [g0, g1) written into a lazy map. */
void vmap_commit(vfwd *f, vmap *m, int g0, int g1);
/* Gives back the map's rows above global row g (they are no longer read). */
void vmap_release_above(vfwd *f, vmap *m, int g);
/* Statistics of the own rows (when not made while writing). */
fs_code vmap_stats(vfwd *f, vmap *m);

/* GroupNorm partial sums collected while a map's own rows are written. */
typedef struct vacc {
    double *part;
    const nn_level *lv;
    int c;
    size_t mark;
} vacc;
fs_code vacc_begin(vfwd *f, vacc *a, const nn_level *lv, int c);
/* Own rows [g0, g1) at p ([g1 - g0][w][c]). */
void vacc_rows(vfwd *f, vacc *a, const float *p, int g0, int g1);
fs_code vacc_end(vfwd *f, vacc *a, vmap *m);

/* A GroupNorm to apply before a conv: statistics of its input, affine
 * parameters, and whether SiLU follows. */
typedef struct vgn {
    const float *mean, *rstd;
    const nn_norm_w *nw;
    int silu;
} vgn;
static inline vgn vgn_of(const vmap *m, const nn_norm_w *nw, int silu) {
    vgn g = {m->mean, m->rstd, nw, silu};
    return g;
}

/* y = conv(pre(x)) for output rows [o0, o1) of level `out`: x holds rows
 * [a, b) of level `in` contiguously at xp (c channels); pre is the GroupNorm
 * gn (or none) then, with up, nearest 2x (then `out` is twice `in`). stride 2
 * with pad_end is the encoder's downsampler. Output rows with no input rows
 * available fail with an error (a band that was cut too thin). */
fs_code vband_conv(vfwd *f, const nn_level *in, const float *xp, int a, int b, int c,
                   const vgn *gn, int up, const nn_conv_w *cw, int stride, int pad_end,
                   const nn_level *out, int o0, int o1, float *y);
/* Rows per band for a pattern whose temporaries take `bytes_per_row` per
 * output row (at least 1, at most the strip). */
int vband_rows(const vfwd *f, const nn_level *lv, size_t bytes_per_row);

/* ResnetBlock2D (GroupNorm, SiLU, conv3x3, twice; 1x1 shortcut when the
 * width changes). x must have its statistics. y == x: in place (same width).
 * recompute: h is not held but made twice in bands (x needs 2 halo rows). */
fs_code vresnet(vfwd *f, const vae_resnet_w *rw, vmap *x, vmap *y, int recompute);
/* The mid block's attention, in place on x (latent level). */
fs_code vattention(vfwd *f, const vae_attn_w *aw, vmap *x);

/* ---------------------------------------------------------------- levels.c */
/* The trace hook after a block (nothing in a dry pass). */
void vfwd_trace(vfwd *f, const char *name, const vmap *m);
/* The decoder from z (this item's strip, [rows][w][latent]) to the image
 * strip ([8 rows][8 w][out]); the encoder from the image strip to moments. */
fs_code vae_decoder_run(vfwd *f, const float *z, float *image);
fs_code vae_encoder_run(vfwd *f, const float *image, float *moments);

/* ---------------------------------------------------------------- forward.c */
/* The strip passes (no tiling): every item of in -> out. */
fs_code vae_strips(fs_vae *v, fs_comm *comm, const fs_strip_plan *plan, int h, int w, int n,
                   const float *in, float *out, const fs_vae_opts *opts, int decode,
                   fs_error *err);

/* ---------------------------------------------------------------- tiled.c */
/* diffusers' tiled_decode / _tiled_encode (opts->tiled). */
fs_code vae_tiled(fs_vae *v, fs_comm *comm, const fs_strip_plan *plan, int h, int w, int n,
                  const float *in, float *out, const fs_vae_opts *opts, int decode,
                  fs_error *err);

#endif
