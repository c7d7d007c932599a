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

#ifdef __cplusplus
}
#endif
#endif
