/* text/encoders.h: SDXL's two text encoders and its conditioning (the
 * encoder section of text/text.h).
 *
 * Encoder 0 is OpenAI CLIP ViT-L/14's text model (quick GELU), encoder 1
 * OpenCLIP ViT-bigG/14's (erf GELU, text_projection); both are the same
 * pre-LayerNorm transformer with learned positions and a causal mask.
 * Weights come from either checkpoint layout: a diffusers folder
 * (text_encoder/, text_encoder_2/: HF CLIPTextModel and
 * CLIPTextModelWithProjection names, config.json) or an SGM single file
 * (conditioner.embedders.0.transformer.text_model.* HF names,
 * conditioner.embedders.1.model.* OpenCLIP names, whose fused in_proj is
 * split into q, k, v and whose text_projection is transposed at load). The
 * internal names are HF's.
 *
 * Distribution: the encoders are small next to the UNet, so every rank runs
 * them itself on the same ids (no communication); the results depend on
 * nothing but the ids and the weights (not on threads), so all ranks hold
 * the same bits. */
#ifndef FS_TEXT_ENCODERS_H
#define FS_TEXT_ENCODERS_H

#include <stddef.h>
#include <stdint.h>
#include "core/core.h"
#include "io/io.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- one encoder */
typedef enum { FS_CLIP_QUICK_GELU = 0, FS_CLIP_GELU } fs_clip_act;

typedef struct fs_clip_config {
    int vocab;          /* 49408 */
    int positions;      /* 77: tokens per sequence */
    int width;          /* 768 (L) / 1280 (bigG) */
    int layers;         /* 12 / 32 */
    int heads;          /* 12 / 20 (head dim 64) */
    int mlp;            /* 3072 / 5120 */
    fs_clip_act act;    /* quick GELU (L) / erf GELU (bigG) */
    float eps;          /* LayerNorm eps, 1e-5 */
    int projection;     /* text_projection's output width (1280 for bigG); 0 = none (L) */
} fs_clip_config;

fs_clip_config fs_clip_config_sdxl(int which);   /* which: 0 CLIP-L, 1 bigG */

typedef enum { FS_CLIP_LAYOUT_DIFFUSERS = 0, FS_CLIP_LAYOUT_SGM } fs_clip_layout;

typedef struct fs_clip_info {
    fs_clip_layout layout;
    char weights_path[1024];
    fs_clip_config config;
    size_t tensors_bound;        /* slots bound (bigG from SGM: q, k, v count 3 per in_proj) */
    size_t tensors_unexpected;   /* in the encoder's namespace, not bound, not ignored */
    char first_unexpected[256];
    uint64_t params;             /* 123,060,480 (L); 694,659,840 (bigG) */
    uint64_t params_by_dtype[FS_DTYPE_COUNT];
} fs_clip_info;

typedef struct fs_clip fs_clip;

/* Binds encoder `which` (0: CLIP-L, 1: bigG) from path without reading
 * weight data: an SGM single file, a diffusers pipeline folder (its
 * text_encoder/ or text_encoder_2/), or that encoder folder itself
 * (config.json + model[.fp16].safetensors). The config comes from
 * config.json, or from the tensor shapes of a single file (heads = width /
 * 64; the activation is the one of CLIP-L or bigG). Every tensor is checked
 * by name and shape; position_ids and logit_scale are ignored. */
fs_code fs_clip_open(const char *path, int which, fs_clip **out, fs_error *err);
/* Reads and converts the weights to f32, then closes the file. */
fs_code fs_clip_load_weights(fs_clip *m, fs_error *err);
/* An encoder with deterministic random weights (tests, benchmarks). */
fs_code fs_clip_create_random(const fs_clip_config *cfg, uint64_t seed, fs_clip **out,
                              fs_error *err);
/* Rounds the loaded weights to dt's precision (F32: no change; F16, BF16:
 * what a half-precision pipeline computes with). */
fs_code fs_clip_round_weights(fs_clip *m, fs_dtype dt, fs_error *err);
const fs_clip_info *fs_clip_get_info(const fs_clip *m);
void fs_clip_free(fs_clip *m);

/* Runs the encoder on n_seq sequences of config.positions token ids each
 * (ids [n_seq][positions], each id in [0, vocab)).
 * hidden (NULL: not wanted): [n_seq][positions][width], the residual stream
 *   after the first hidden_layers layers (1 .. layers), no final LayerNorm.
 *   SDXL takes hidden_layers = layers - 1 for both encoders (diffusers'
 *   hidden_states[-2]; SGM's layer_idx 11 of CLIP-L, "penultimate" of bigG).
 * pooled (NULL: not wanted): [n_seq][projection, or width when there is no
 *   projection]: final LayerNorm of the last layer's output at the row of
 *   the sequence's largest id (its first, i.e. the first EOS 49407: SGM's
 *   and HF's argmax rule), times text_projection when there is one.
 * The sequences are computed together (rows s * positions + t of one set of
 * products): a sequence's bits depend on the number of sequences in the call
 * and its place there, never on threads. */
fs_code fs_clip_encode(const fs_clip *m, const int32_t *ids, int n_seq, int hidden_layers,
                       float *hidden, float *pooled, fs_error *err);
/* Bytes fs_clip_encode allocates for n_seq sequences (activations and op
 * scratch), for memory planning. */
size_t fs_clip_encode_bytes(const fs_clip *m, int n_seq);
/* Planning: the scratch loading the weights holds besides them (bytes). */
size_t fs_clip_load_scratch(const fs_clip *m);

/* ---------------------------------------------------------------- SDXL conditioning
 * context = [CLIP-L hidden | bigG hidden] per token ([chunks * 77][768 +
 * 1280]: a prompt of k 77-token chunks gives 77 k tokens, each chunk encoded
 * on its own as A1111 and stable-diffusion.cpp do), y = [pooled of chunk 0
 * (1280) | Timestep256 of orig_h, orig_w, crop_top, crop_left, target_h,
 * target_w] (2816; the UNet's sinusoid, [cos | sin]). */
typedef struct fs_sdxl_sizes {
    int orig_h, orig_w;        /* typically the output's (H, W) in pixels */
    int crop_top, crop_left;   /* typically (0, 0) */
    int target_h, target_w;    /* typically the output's (H, W) */
} fs_sdxl_sizes;

#define FS_SDXL_TIME_ID_DIM 256
/* Token ids of one prompt for both encoders: chunks x 77 each, from the
 * tokenizer (CLIP-L pads with 49407, bigG with 0). */
typedef struct fs_sdxl_prompt_ids {
    int chunks;
    const int32_t *ids_l;      /* [chunks][77] */
    const int32_t *ids_g;      /* [chunks][77] */
} fs_sdxl_prompt_ids;

/* Sizes of one branch's outputs for `chunks` chunks. */
size_t fs_sdxl_context_floats(const fs_clip *clip_l, const fs_clip *clip_g, int chunks);
size_t fs_sdxl_y_floats(const fs_clip *clip_g);

/* The conditioning of classifier-free guidance, batch order [uncond, cond]
 * as fs_unet_forward takes it: context [2][chunks * 77][768 + 1280], y
 * [2][2816]. neg NULL (an empty or absent negative prompt) gives diffusers'
 * force_zeros_for_empty_prompt branch: zero context and zero pooled, the
 * size embeddings kept. Otherwise neg is encoded like the prompt and must
 * have as many chunks (pad the shorter prompt with empty-prompt chunks, as
 * A1111 does). The branches are encoded separately: the prompt's result
 * does not depend on the negative prompt. */
fs_code fs_sdxl_condition(const fs_clip *clip_l, const fs_clip *clip_g,
                          const fs_sdxl_prompt_ids *prompt, const fs_sdxl_prompt_ids *neg,
                          const fs_sdxl_sizes *sizes, float *context, float *y, fs_error *err);

/* One branch alone (batch 1): context [chunks * 77][2048], y [2816]; ids
 * NULL gives the zero branch (size embeddings kept) of `chunks` chunks;
 * otherwise chunks is ids->chunks and the argument is ignored. */
fs_code fs_sdxl_condition_one(const fs_clip *clip_l, const fs_clip *clip_g,
                              const fs_sdxl_prompt_ids *ids, int chunks,
                              const fs_sdxl_sizes *sizes, float *context, float *y,
                              fs_error *err);

/* From prompt strings (text/sdxl_text.c): tok_l and tok_g tokenize for
 * CLIP-L and bigG (FS_TOK_CLIP_L / FS_TOK_OPENCLIP styles, tokenizer.h) into
 * 77-id chunks; all four id lists (both encoders, prompt and negative) are
 * padded with empty-prompt chunks to the longest. negative NULL or "" gives
 * the zero branch (diffusers' force_zeros_for_empty_prompt; note diffusers
 * itself encodes an explicit ""). *context ([2][*chunks * 77][2048]) and *y
 * ([2][2816]), batch [uncond, cond], are fs_alloc'ed: fs_free them. */
typedef struct fs_tokenizer fs_tokenizer;
fs_code fs_sdxl_condition_text(const fs_clip *clip_l, const fs_clip *clip_g,
                               const fs_tokenizer *tok_l, const fs_tokenizer *tok_g,
                               const char *prompt, const char *negative,
                               const fs_sdxl_sizes *sizes, float **context, float **y,
                               int *chunks, fs_error *err);

#ifdef __cplusplus
}
#endif
#endif
