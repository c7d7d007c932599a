/* vae internals shared by the loader (slots.c, load.c) and the passes
 * (blocks.c, levels.c, forward.c, tiled.c, codec.c): the weights as a tree of structs
 * of float pointers, every pointer filled by name binding (io.h's weight
 * tables). Not a public header: only vae/ includes it. */
#ifndef FS_VAE_INTERNAL_H
#define FS_VAE_INTERNAL_H

#include "nn/nn.h"
#include "vae/vae.h"

#define VAE_MAX_LAYERS 3   /* resnets per decoder level: layers_per_block + 1 <= 3 */

typedef struct {
    int cin, cout;
    nn_norm_w norm1, norm2;
    nn_conv_w conv1, conv2;
    nn_conv_w shortcut;      /* 1x1, w == NULL when cin == cout */
} vae_resnet_w;

/* The mid block's single-head attention over every token (head dim = c). */
typedef struct {
    int c;
    nn_norm_w norm;          /* group_norm */
    nn_linear_w q, k, v, out;
} vae_attn_w;

typedef struct {
    vae_resnet_w res[2];
    vae_attn_w attn;         /* attn.c == 0 when the config has no mid attention */
} vae_mid_w;

typedef struct {
    nn_conv_w conv_in;
    vae_resnet_w down[FS_VAE_MAX_LEVELS][VAE_MAX_LAYERS];
    nn_conv_w downsample[FS_VAE_MAX_LEVELS];   /* w NULL at the last level */
    vae_mid_w mid;
    nn_norm_w norm_out;
    nn_conv_w conv_out;      /* -> 2 * latent (mean, logvar) */
} vae_encoder_w;

typedef struct {
    nn_conv_w conv_in;
    vae_mid_w mid;
    vae_resnet_w up[FS_VAE_MAX_LEVELS][VAE_MAX_LAYERS]; /* up[0] is the coarsest (diffusers) */
    nn_conv_w upsample[FS_VAE_MAX_LEVELS];              /* w NULL for the last up block */
    nn_norm_w norm_out;
    nn_conv_w conv_out;
} vae_decoder_w;

typedef struct {
    vae_encoder_w enc;
    vae_decoder_w dec;
    nn_conv_w quant_conv;        /* 1x1 2L -> 2L (w NULL without) */
    nn_conv_w post_quant_conv;   /* 1x1 L -> L */
} vae_weights;

struct fs_vae {
    fs_vae_config config;
    fs_vae_info info;
    vae_weights w;
    fs_wslot *slots;             /* the binding table */
    size_t nslots;
    fs_safetensors *st;          /* open file (NULL for random weights / after loading) */
    float *block;                /* one block holding every converted weight */
};

/* slots.c */
fs_code vae_config_check(const fs_vae_config *c, fs_error *err);
/* The binding table for v->config (points every slot's dst into v->w). With
 * sgm_attention, the attention projections are [c][c][1][1] (1x1 convs, as
 * SGM files store them) instead of [c][c]. */
fs_code vae_build_slots(fs_vae *v, int sgm_attention, fs_error *err);
void vae_free_slots(fs_vae *v);
/* The SGM name (without "first_stage_model.") of an internal (diffusers)
 * tensor name; 0, or -1 if it is not a VAE tensor name of c. */
int vae_sgm_name(const fs_vae_config *c, const char *diffusers, char *out, size_t cap);
/* The old diffusers spelling of attention names (query, key, value,
 * proj_attn); 0 when the name has one, -1 otherwise. */
int vae_old_attention_name(const char *diffusers, char *out, size_t cap);

#endif
