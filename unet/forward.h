/* unet/forward.h: what the forward-pass files (forward.c, blocks.c) share;
 * private to unet/ (the loader does not need it).
 *
 * The forward pass runs on nn/'s dry-aware helpers (nn/nn.h): a "dry"
 * sizing pass over the same code first, then the real pass on one arena of
 * the size it measured. Every op call and every loop over tensor data goes
 * through an nn_* helper on f->nn; block code offsets pointers only through
 * nn_at() / nn_cat(), which leave dry-pass placeholders alone. */
#ifndef FS_UNET_FORWARD_H
#define FS_UNET_FORWARD_H

#include "kernels/kernels.h"
#include "nn/nn.h"
#include "unet/unet_internal.h"

/* One UNet level (resolution) as this rank sees it (nn.h). */
typedef nn_level fwd_level;

typedef struct fwd {
    nn_ctx nn;                   /* memory, comm, batch, dry pass, profile level */
    const fs_unet_config *cfg;
    const float *emb_silu;       /* [n][time_embed_dim]: SiLU(time + add embedding) */
    const float *context;        /* [n][ctx_len][context_dim] */
    int ctx_len;
    const fs_unet_trace *trace;
    fs_strip_plan plans[FS_UNET_MAX_LEVELS];
    fwd_level lv[FS_UNET_MAX_LEVELS];
    /* FreeScale (unet.h): NULL for the plain forward. */
    const fs_unet_freescale *fsx;
    int lat_h, lat_w;            /* the stage's latent (scale fusion's geometry) */
    int dil;                     /* dilation of the 3x3 convs of the block being run (1 = off) */
    int attn_ordinal;            /* self-attentions met so far in this pass: the jitter key's block */
} fwd;

/* The backend u's passes run on (unet/gpu.c): the CUDA backend of its
 * device copy after fs_unet_use_gpu, else the CPU's. */
const fs_backend *fs_unet_backend(const fs_unet *u);

/* The traced activation of a block (real pass only). */
fs_code fwd_trace(fwd *f, const char *name, const fwd_level *lv, const float *x, int c);

/* Bytes of the arena fs_unet_forward takes on strip `rank` of plan (the dry
 * pass alone): fs_unet_forward_cost (unet.h) without the FLOPs. */
fs_code fs_unet_forward_bytes(const fs_unet *u, const fs_strip_plan *plan, int rank, int h,
                              int w, int n, int ctx_len, const fs_unet_freescale *fsx,
                              size_t *bytes, fs_error *err);

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


/* ---------------------------------------------------------------- FreeScale (fusion.c, freeu.c) */
/* Checks fsx against the stage (latent h x w); NULL or all off is fine. */
fs_code fwd_fs_check(const fs_unet_freescale *fsx, const fs_unet_config *cfg, int h, int w,
                     fs_error *err);
/* Is any FreeScale change on? (fsx may be NULL) */
int fwd_fs_active(const fs_unet_freescale *fsx);
/* Scale fusion in place of attn1 (unet.h): hs += blur(local) + global -
 * blur(global). ln: this strip's LayerNorm-ed tokens [n][T][c]; all: every
 * token of the map [n][N][c] (ln itself for a one-part plan). */
fs_code fwd_fused_self_attention(fwd *f, const fwd_level *lv, const fs_tblock_w *bw, int heads,
                                 const float *ln, const float *all, float *hs);
/* Which FreeU factors act at up_blocks.<up_block>.resnets.<resnet>: 1 (b1,
 * s1), 2 (b2, s2) or 0 (none). */
int fwd_freeu_which(const fs_unet_config *cfg, int up_block, int resnet);
/* Restrained dilation's schedule (unet.h): is this 3x3 conv dilated? kind
 * FWD_CONV_DOWNSAMPLER: the downsampler at the end of down level `level`;
 * FWD_CONV_DOWN_RESNET / FWD_CONV_UP_RESNET: conv1 and conv2 of the resnets
 * of that down level / of the up block working at that level;
 * FWD_CONV_MID_RESNET: the mid block's; the others (conv_in, conv_out,
 * upsamplers) never. */
enum { FWD_CONV_IN, FWD_CONV_DOWN_RESNET, FWD_CONV_DOWNSAMPLER, FWD_CONV_MID_RESNET,
       FWD_CONV_UP_RESNET, FWD_CONV_UPSAMPLER, FWD_CONV_OUT };
int fwd_conv_dilated(const fs_unet_config *cfg, int kind, int level);
/* FreeU before up_blocks.<i>.resnets.<j>'s concat: h [n][rows][w][ch] (the
 * running tensor) gets h[..., :ch/2] *= b, the skip [n][rows][w][cs] the
 * Fourier filter with s; nothing where the rule (unet.h) says so. */
fs_code fwd_freeu(fwd *f, const fwd_level *lv, int up_block, int resnet, float *h, int ch,
                  float *skip, int cs);
#endif
