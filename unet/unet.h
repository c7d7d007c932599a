/* unet: the SDXL UNet (eps prediction) on row strips. Loads real SDXL
 * checkpoints in both layouts (SGM single file, diffusers folder), F32/F16/
 * BF16, and tiny test UNets with the same block types.
 *
 * Internal naming is diffusers' (down_blocks.1.attentions.0...); SGM names
 * are mapped to it when a single file is read (spec/sdxl.md section 7.3). */
#ifndef FS_UNET_H
#define FS_UNET_H

#include <stddef.h>
#include "comm/comm.h"
#include "core/core.h"
#include "io/io.h"

#ifdef __cplusplus
extern "C" {
#endif

#define FS_UNET_MAX_LEVELS 4

typedef struct fs_unet_config {
    int in_channels, out_channels;          /* 4, 4 */
    int levels;                              /* 3 */
    int channels[FS_UNET_MAX_LEVELS];        /* block_out_channels: 320, 640, 1280 */
    int layers_per_block;                    /* 2 (down); up blocks have one more */
    int depth[FS_UNET_MAX_LEVELS];           /* transformer layers per level: 0, 2, 10 (0 = no attention) */
    int depth_mid;                           /* 10 */
    int heads[FS_UNET_MAX_LEVELS];           /* attention heads per level: -, 10, 20 (head dim = ch / heads) */
    int context_dim;                         /* 2048 */
    int adm_in_channels;                     /* 2816: y = pooled ‖ 6 size embeddings */
    int time_embed_dim;                      /* 1280 = 4 x channels[0] */
    int groups;                              /* 32 */
    float eps_resnet;                        /* 1e-5 (ResBlocks, conv_norm_out) */
    float eps_transformer;                   /* 1e-6 (SpatialTransformer GroupNorm); LayerNorms 1e-5 */
} fs_unet_config;

/* SDXL base 1.0's configuration. */
fs_unet_config fs_unet_config_sdxl(void);

typedef enum { FS_UNET_LAYOUT_DIFFUSERS = 0, FS_UNET_LAYOUT_SGM } fs_unet_layout;

/* ---------------------------------------------------------------- loading
 * path: an SGM single file (.safetensors with model.diffusion_model.*), a
 * diffusers pipeline folder (with unet/), or a diffusers unet folder
 * (config.json + diffusion_pytorch_model[.fp16].safetensors). The config
 * comes from config.json, or is inferred from tensor shapes for a single
 * file (heads = ch / 64, as SGM's num_head_channels = 64). Every tensor is
 * bound by name with its shape checked; a missing or misshapen tensor is an
 * error naming it; unexpected tensors are counted and listed in the info. */
typedef struct fs_unet fs_unet;

typedef struct fs_unet_info {
    fs_unet_layout layout;
    char weights_path[1024];         /* the safetensors file bound */
    fs_unet_config config;
    size_t tensors_bound;            /* 1,680 for SDXL */
    size_t tensors_unexpected;       /* in the UNet's namespace but not bound */
    char first_unexpected[256];
    uint64_t params;                 /* 2,567,463,684 for SDXL */
    uint64_t params_by_dtype[FS_DTYPE_COUNT];
} fs_unet_info;

/* Binds every tensor (checks names and shapes) without reading weight data. */
fs_code fs_unet_open(const char *path, fs_unet **out, fs_error *err);
/* Reads and converts the weights to f32 (OHWI for convolutions). */
fs_code fs_unet_load_weights(fs_unet *u, fs_error *err);
/* Rounds the loaded weights to dt's precision (F32: no change; F16, BF16:
 * what a half-precision pipeline computes with). */
fs_code fs_unet_round_weights(fs_unet *u, fs_dtype dt, fs_error *err);
const fs_unet_info *fs_unet_get_info(const fs_unet *u);
void fs_unet_free(fs_unet *u);
/* Tiny or full UNet with deterministic random weights (benchmarks, the
 * embedded default model): every weight ~ N(0, scale / sqrt(fan_in)). */
fs_code fs_unet_create_random(const fs_unet_config *cfg, uint64_t seed, fs_unet **out,
                              fs_error *err);

/* ---------------------------------------------------------------- forward
 * eps = UNet(x, t, context, y) for a batch of n (2 under CFG: [uncond, cond]).
 * Each rank passes its strip of x: global latent rows [plan->row0[rank],
 * plan->row0[rank+1]) of an h x w latent, as [n][rows][w][in_channels]
 * (NHWC), and gets the same rows of eps. plan boundaries must be multiples
 * of 2^(levels-1) latent rows (every level has whole rows). t: [n] timesteps;
 * context: [n][ctx_len][context_dim]; y: [n][adm_in_channels]. comm may be
 * NULL for one process. */
typedef struct fs_unet_trace {
    /* Called after conv_in, every down block, the mid block and every up block
     * with this rank's strip of the activation ([n][rows][w][c]); name is the
     * diffusers module name ("down_blocks.0", "mid_block", "up_blocks.2"). */
    void (*on_block)(void *user, const char *name, const float *strip, int n, int rows,
                     int w, int c);
    void *user;
} fs_unet_trace;

fs_code fs_unet_forward(fs_unet *u, fs_comm *comm, const fs_strip_plan *plan, int h, int w,
                        int n, const float *x, const float *t, const float *context,
                        int ctx_len, const float *y, float *eps, const fs_unet_trace *trace,
                        fs_error *err);


/* ---------------------------------------------------------------- FreeScale inside the UNet
 * (spec/freescale.md sections 4, 5, 7; the caller (the cascade) decides per
 * stage and step what is on.)
 *
 * Restrained dilation: the nine 3x3 convs of SDXL's list, generalised to L
 * levels: the downsampler at the end of down level L-2, conv1/conv2 of every
 * resnet of down level L-1 and of the mid block, dilated (and padded) by
 * `dilation`; never the up blocks or other convs. 1 = off.
 *
 * Scale fusion (fusion = 1): every self-attention (attn1) of every
 * transformer block is replaced by out = blur(local) + global - blur(global),
 * all on post-to_out outputs. Geometry per level from the stage's latent
 * (h_lat, w_lat) and the base (stage-0) latent (base_h, base_w): s_h = h_lat
 * / base_h, s_w = w_lat / base_w (integer division), s = max(s_h, s_w);
 * window P = (feature h / s, feature w / s), stride P / 2, jitter r = P / 8
 * per axis, window count and placement as the official get_views, the
 * border-dependent jitter ranges, zero-padded Y (LayerNorm-ed input) by r on
 * every side (padded tokens enter the softmax with zero keys/values), value
 * / count averaging; r = 0: no padding, no jitter. With a base of 128 x 128
 * latents (1024^2) and stages that are integer multiples, everything equals
 * the official code (unet/fusion.h documents the general rule).
 * Global path: full attention over all tokens, or (fast_mode) over the s_h x
 * s_w dilated sub-lattices. Blur: Gaussian sigma `blur_sigma`, k = 2 s - 1,
 * zero padding, over the axes of `blur` (FS_BLUR_3D = HEAD's rows, columns
 * and feature channels, per batch item; FS_BLUR_WC = variant A (columns and
 * channels); FS_BLUR_HW = variant B (rows and columns, per channel);
 * FS_BLUR_FFT = the paper's frequency-domain Gaussian low-pass of the rows
 * and columns, per channel, computed with FFTW over the whole map).
 * Window jitter: j = fs_rng_randint(jitter_seed, jitter_stream, index, lo, hi)
 * with index = (((step * 256 + block) * 65536 + window) * 2 + axis), block the
 * self-attention's ordinal in forward order (down blocks, mid, up blocks, one
 * per transformer layer, from 0), window = wy * n_x + wx, axis 0 rows / 1
 * columns; both CFG halves share the windows. Same windows whatever the split.
 *
 * FreeU (freeu.on): in the up blocks, before each resnet's concat of (h,
 * skip): where h comes from level L-1 (every resnet of up block 0 and resnet
 * 0 of up block 1), h[:, :C/2] *= b1 and skip = FourierFilter(skip, s1);
 * where h comes from level L-2 (the other resnets of up block 1 and resnet 0
 * of up block 2), b2 and s2. (SDXL: 1280- and 640-channel h, as the official
 * rule by channel count.) FourierFilter scales the 2x2 centre block of the
 * fftshifted spectrum by s and keeps the real part: computed exactly from the
 * four DFT coefficients k in {-1, 0}^2 per channel, summed over all strips in
 * a fixed order. */
typedef enum { FS_BLUR_3D = 0, FS_BLUR_WC, FS_BLUR_HW, FS_BLUR_FFT } fs_blur_kind;

typedef struct fs_unet_freeu {
    int on;
    float b1, b2, s1, s2;            /* 1.1, 1.2, 0.6, 0.4 */
} fs_unet_freeu;

typedef struct fs_unet_freescale {
    int dilation;                    /* 1 = off */
    int fusion;                      /* 0 = plain self-attention */
    int base_h, base_w;              /* stage-0 latent size */
    int fast_mode;
    fs_blur_kind blur;
    float blur_sigma;                /* 1.0 */
    uint64_t jitter_seed, jitter_stream;
    int step;                        /* sampler step index (part of the jitter key) */
    fs_unet_freeu freeu;
} fs_unet_freescale;

/* Runs this model's forward passes on a GPU (kernels.h's fs_cuda context,
 * which must outlive the model or the next call): copies the weights as
 * they are now (f32, after any fs_unet_round_weights) to the device once.
 * fs_unet_forward then still takes and returns host tensors but computes on
 * the device (bits differ from the CPU's, within 1e-5). The GPU ops follow
 * the CPU's exactness rules (test_ops' CUDA cases find strips bit-identical
 * to the whole map) and traffic between ranks goes through comm's transport
 * (the MPI one stages only the rows that cross through host copies); a run
 * on several GPUs is not tested yet. Restrained dilation runs there; scale
 * fusion and FreeU are refused for now. cu NULL: back to the CPU. */
typedef struct fs_cuda fs_cuda;
fs_code fs_unet_use_gpu(fs_unet *u, fs_cuda *cu, fs_error *err);

/* fs_unet_forward with FreeScale's changes (fsx NULL or all off: exactly
 * fs_unet_forward). */
fs_code fs_unet_forward_fs(fs_unet *u, fs_comm *comm, const fs_strip_plan *plan, int h, int w,
                           int n, const float *x, const float *t, const float *context,
                           int ctx_len, const float *y, float *eps, const fs_unet_trace *trace,
                           const fs_unet_freescale *fsx, fs_error *err);

/* Planning: what fs_unet_forward_fs would take on strip `rank` of plan,
 * from its sizing (dry) pass alone, which needs the weights' shapes, not
 * their values (a model just opened will do): the bytes of its arena
 * (activations and scratch; the weights and the caller's x, eps, context
 * not included) and the FLOPs of its matrix products (NULL: not wanted).
 * Sizes are the CPU pass's (a GPU pass cuts some blocks differently). */
/* Planning: the scratch loading the weights holds besides them (bytes). */
size_t fs_unet_load_scratch(const fs_unet *u);
fs_code fs_unet_forward_cost(const fs_unet *u, const fs_strip_plan *plan, int rank, int h, int w,
                             int n, int ctx_len, const fs_unet_freescale *fsx, size_t *bytes,
                             double *flops, fs_error *err);

#ifdef __cplusplus
}
#endif
#endif
