/* vae: SDXL's AutoencoderKL on row strips: the encoder (image -> moments),
 * the posterior sample (counter-based noise), and the decoder (latent ->
 * RGB in [-1, 1]). Loads both checkpoint layouts (a diffusers vae/ folder,
 * the first_stage_model.* tensors of an SGM single file), F32/F16/BF16, and
 * tiny test VAEs with the same block types.
 *
 * Internal naming is diffusers' (decoder.up_blocks.0.resnets.1...); SGM
 * names are mapped to it when a single file is read (spec/sdxl.md 7.3).
 *
 * Distribution: like the UNet, every rank holds its row strip at every
 * resolution; 3x3 convs take halo rows from the neighbours, GroupNorm
 * statistics are summed over all strips exactly (fixed point), and the
 * mid-block attention all-gathers the normed tokens (K and V of every token
 * on every rank). Any rank count gives the same bits as one rank.
 *
 * Memory: inside a strip the high-resolution levels run in row bands with a
 * statistics pass before each GroupNorm, trading recomputation for memory
 * (vae/decoder.c describes the schemes); fs_vae_opts.max_bytes chooses the
 * fastest scheme per level that fits. Tiled mode (fs_vae_opts.tiled) instead
 * reproduces diffusers' enable_tiling() results. */
#ifndef FS_VAE_H
#define FS_VAE_H

#include <stddef.h>
#include <stdint.h>
#include "comm/comm.h"
#include "core/core.h"
#include "io/io.h"

#ifdef __cplusplus
extern "C" {
#endif

#define FS_VAE_MAX_LEVELS 4

typedef struct fs_vae_config {
    int in_channels, out_channels;     /* 3, 3 (RGB) */
    int latent_channels;               /* 4 */
    int levels;                        /* 4: the latent is 2^(levels-1) = 8 times smaller */
    int channels[FS_VAE_MAX_LEVELS];   /* block_out_channels: 128, 256, 512, 512 */
    int layers_per_block;              /* 2 (encoder); decoder up blocks have one more */
    int groups;                        /* 32 */
    float eps;                         /* 1e-6 (every GroupNorm) */
    int mid_attention;                 /* 1: the mid blocks have their attention */
    int quant_conv, post_quant_conv;   /* 1, 1 */
    float scaling_factor;              /* 0.13025 */
    float shift_factor;                /* 0 (absent in SDXL's config) */
    int sample_size;                   /* 1024: the tile diffusers' tiling uses by default */
} fs_vae_config;

/* SDXL base 1.0's configuration. */
fs_vae_config fs_vae_config_sdxl(void);

typedef enum { FS_VAE_LAYOUT_DIFFUSERS = 0, FS_VAE_LAYOUT_SGM } fs_vae_layout;

typedef struct fs_vae fs_vae;

typedef struct fs_vae_info {
    fs_vae_layout layout;
    char weights_path[1024];
    fs_vae_config config;
    size_t tensors_bound;            /* 248 for SDXL */
    size_t tensors_unexpected;       /* in the VAE's namespace but not bound */
    char first_unexpected[256];
    uint64_t params;                 /* 83,653,863 for SDXL */
    uint64_t params_by_dtype[FS_DTYPE_COUNT];
} fs_vae_info;

/* path: an SGM single file (first_stage_model.* tensors), a diffusers
 * pipeline folder (with vae/), a diffusers vae folder (config.json +
 * diffusion_pytorch_model[.fp16].safetensors) or such a weights file with
 * its config.json beside it. A single file's config is inferred from tensor
 * shapes (its group count from __metadata__ "norm_num_groups", default 32;
 * scaling factor 0.13025). Binds every tensor by name and shape without
 * reading weight data; errors name the tensor. */
fs_code fs_vae_open(const char *path, fs_vae **out, fs_error *err);
/* Reads and converts the weights to f32 (OHWI for convolutions). */
fs_code fs_vae_load_weights(fs_vae *v, fs_error *err);
/* Deterministic random weights (benchmarks, tests): conv and linear weights
 * ~ N(0, 1/fan_in), norms gamma 1 + 0.05 N, beta 0.05 N, biases 0.02 N. */
fs_code fs_vae_create_random(const fs_vae_config *cfg, uint64_t seed, fs_vae **out,
                             fs_error *err);
/* Rounds the loaded weights to dt's precision (F32: no change; F16, BF16:
 * what a half-precision pipeline computes with). */
fs_code fs_vae_round_weights(fs_vae *v, fs_dtype dt, fs_error *err);
const fs_vae_info *fs_vae_get_info(const fs_vae *v);
void fs_vae_free(fs_vae *v);

/* ---------------------------------------------------------------- running */

typedef struct fs_vae_trace {
    /* Called with this rank's strip ([rows][w][c], one item) after:
     * encoder.conv_in, encoder.down_blocks.<i>.resnets.<L-1> (before the
     * downsampler), encoder.mid_block, moments (after quant_conv), and
     * decoder.conv_in (after post_quant_conv), decoder.mid_block,
     * decoder.up_blocks.<i>.resnets.<L> (before the upsampler), for item `b`. */
    void (*on_block)(void *user, const char *name, int b, const float *strip, int rows, int w,
                     int c);
    void *user;
} fs_vae_trace;

typedef struct fs_vae_opts {
    /* Bytes of activations and scratch one rank may hold (weights not
     * included); 0: no limit (the fastest schemes). Too small: an error
     * saying how much the leanest schemes need. */
    size_t max_bytes;
    /* Tiled mode: diffusers' tiled_encode / tiled_decode (enable_tiling()):
     * independent tiles of tile_sample px (tile_sample / 2^(levels-1)
     * latents) every (1 - overlap) tile, blended over overlap * tile and cut
     * to the rest, used only when an image side exceeds the tile (as
     * diffusers). 0 fields take diffusers' values: the config's sample_size
     * (1024 for SDXL) and 0.25. */
    int tiled;
    int tile_sample;
    float tile_overlap;
    /* Tests: -1 (or 0-initialised opts' 0) lets max_bytes choose; k > 0
     * forces memory scheme k - 1 at every level (see vae/forward.c). */
    int force_scheme;
    /* Bytes a band's temporaries aim at (0: automatic, from max_bytes).
     * Tests set it small so strips are cut into many bands. */
    size_t band_bytes;
    const fs_vae_trace *trace;
} fs_vae_opts;

/* moments = quant_conv(encoder(image)): [n][rows][w][2 * latent] (mean then
 * logvar) for this rank's latent rows [plan->row0[rank], plan->row0[rank+1])
 * of an h x w latent; image is the same rows of the 8h x 8w image,
 * [n][8 rows][8 w][in_channels], values in [-1, 1]. Latent plan boundaries
 * may be any rows. comm may be NULL for one process. */
fs_code fs_vae_encode(fs_vae *v, fs_comm *comm, const fs_strip_plan *plan, int h, int w, int n,
                      const float *image, float *moments, const fs_vae_opts *opts,
                      fs_error *err);

/* The UNet's latent from moments: ((mean + exp(logvar / 2) * noise) - shift)
 * * scaling_factor, logvar clamped to [-30, 20] (diffusers). noise NULL:
 * noise value of element (b, y, x, ch) of the h x w latent is
 * fs_rng_normal(seed, stream, ((b * h + y) * w + x) * latent + ch), whoever
 * computes it; else noise holds this strip's [n][rows][w][latent]. The strip
 * is latent rows [row0, row0 + rows). */
fs_code fs_vae_sample(const fs_vae_config *c, int n, int h, int w, int row0, int rows,
                      const float *moments, const float *noise, uint64_t seed, uint64_t stream,
                      float *latent);
/* z = latent / scaling_factor + shift: what the decoder takes. In place ok. */
fs_code fs_vae_unscale(const fs_vae_config *c, const float *latent, float *z, size_t count);

/* image = decoder(post_quant_conv(z)), RGB in [-1, 1] (not clamped):
 * [n][8 rows][8 w][out_channels] for this rank's latent rows of z
 * ([n][rows][w][latent], the unscaled latent). */
fs_code fs_vae_decode(fs_vae *v, fs_comm *comm, const fs_strip_plan *plan, int h, int w, int n,
                      const float *z, float *image, const fs_vae_opts *opts, fs_error *err);

/* Planning: the scratch loading the weights holds besides them (bytes). */
size_t fs_vae_load_scratch(const fs_vae *v);
/* Bytes of activations and scratch a decode / encode of one item holds
 * resident at most on the largest strip of plan with these options (the
 * sizing pass alone; weights not included: the arena's high-water mark so
 * far plus the maps held, since arena pages stay once touched), and its
 * FLOPs. For memory planning before a stage
 * starts. Tiled mode: one tile's. */
fs_code fs_vae_plan(const fs_vae *v, int decode, const fs_strip_plan *plan, int h, int w,
                    const fs_vae_opts *opts, size_t *bytes, double *flops, fs_error *err);

#ifdef __cplusplus
}
#endif
#endif
