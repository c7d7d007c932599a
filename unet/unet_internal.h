/* unet internals shared by the loader (load.c, names.c, config.c) and the
 * forward pass (forward.c, blocks.c): the weights as a flat tree of structs
 * of float pointers (llm.c style), every pointer filled by name binding.
 * Not a public header: only unet/ includes it. */
#ifndef FS_UNET_INTERNAL_H
#define FS_UNET_INTERNAL_H

#include "nn/nn.h"
#include "unet/unet.h"

/* Linear: w [out][in] (PyTorch layout), b [out] or NULL. Conv: w OHWI
 * [out][k][k][in], b [out] or NULL (converted from OIHW at load). GroupNorm /
 * LayerNorm affine parameters [c]. The layouts nn/'s helpers take. */
typedef nn_linear_w fs_linear_w;
typedef nn_conv_w fs_conv_w;
typedef nn_norm_w fs_norm_w;

typedef struct {
    int cin, cout;
    fs_norm_w norm1;
    fs_conv_w conv1;
    fs_linear_w time_emb_proj;    /* time_embed_dim -> cout */
    fs_norm_w norm2;
    fs_conv_w conv2;
    fs_conv_w conv_shortcut;      /* 1x1, w == NULL when cin == cout */
} fs_resnet_w;

typedef struct {
    fs_norm_w norm1, norm2, norm3;                 /* LayerNorms, eps 1e-5 */
    fs_linear_w attn1_q, attn1_k, attn1_v, attn1_out;  /* self: q/k/v no bias */
    fs_linear_w attn2_q, attn2_k, attn2_v, attn2_out;  /* cross: k/v from context_dim */
    fs_linear_w ff_proj;                           /* GEGLU: c -> 8c ([value | gate]) */
    fs_linear_w ff_out;                            /* 4c -> c */
} fs_tblock_w;

typedef struct {
    int channels, heads, depth;
    fs_norm_w norm;                /* GroupNorm, eps_transformer */
    fs_linear_w proj_in, proj_out; /* use_linear_projection */
    fs_tblock_w *blocks;           /* [depth] */
} fs_transformer_w;

typedef struct {
    fs_resnet_w resnets[2 + 1];          /* down: layers_per_block; up: +1 */
    fs_transformer_w attentions[2 + 1];  /* depth 0 at levels without attention */
    fs_conv_w sampler;                   /* downsampler (stride 2) or upsampler conv; w NULL if none */
} fs_level_w;

typedef struct fs_unet_weights {
    fs_linear_w time_linear_1, time_linear_2;   /* time_embedding */
    fs_linear_w add_linear_1, add_linear_2;     /* add_embedding (label_emb) */
    fs_conv_w conv_in;
    fs_level_w down[FS_UNET_MAX_LEVELS];
    fs_resnet_w mid_resnets[2];
    fs_transformer_w mid_attention;
    fs_level_w up[FS_UNET_MAX_LEVELS];          /* up[0] is the coarsest (diffusers order) */
    fs_norm_w conv_norm_out;
    fs_conv_w conv_out;
} fs_unet_weights;

/* One weight slot of the binding table (io.h's weight tables): the internal
 * (diffusers) name, the expected PyTorch shape, where the converted floats
 * go, and how: as they are, or OIHW convolutions turned OHWI. */
typedef fs_wslot fs_unet_slot;
enum { FS_SLOT_PLAIN = FS_WSLOT_PLAIN, FS_SLOT_CONV_OIHW = FS_WSLOT_CONV_OIHW };

struct fs_unet {
    fs_unet_config config;
    fs_unet_info info;
    fs_unet_weights w;
    fs_unet_slot *slots;          /* the binding table */
    size_t nslots;
    fs_safetensors *st;           /* open file (NULL for random weights) */
    float *arena_weights;         /* one block holding every converted weight */
    struct fs_unet_gpu *gpu;      /* the device copy (fs_unet_use_gpu), or NULL */
};

/* unet/gpu.c: frees the device copy; the GPU context of the device copy
 * (NULL: none); the model the forward pass reads weights from (the device
 * shadow, or u itself). */
void fs_unet_gpu_drop(fs_unet *u);
fs_cuda *fs_unet_gpu_ctx(const fs_unet *u);
const fs_unet *fs_unet_gpu_model(const fs_unet *u);

/* The binding table for a config (fills u->slots, u->nslots, and points every
 * slot's dst into u->w). Allocates the tblock arrays. */
fs_code fs_unet_build_slots(fs_unet *u, fs_error *err);
#endif
