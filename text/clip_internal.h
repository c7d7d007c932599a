/* text/clip_internal.h: a text encoder's weights and binding table, shared by
 * the loader (clip_load.c) and the forward pass (clip.c); private to text/.
 * Weights are float pointers into one block, filled by name binding
 * (io.h's weight tables), in HF's internal names and PyTorch layouts. */
#ifndef FS_TEXT_CLIP_INTERNAL_H
#define FS_TEXT_CLIP_INTERNAL_H

#include "text/encoders.h"

/* Linear: w [out][in], b [out] or NULL. LayerNorm: gamma, beta [c]. */
typedef struct { float *w, *b; int in, out; } fs_clip_linear;
typedef struct { float *gamma, *beta; int c; } fs_clip_norm;

typedef struct {
    fs_clip_norm ln1, ln2;
    fs_clip_linear q, k, v, out;     /* self_attn.{q,k,v,out}_proj */
    fs_clip_linear fc1, fc2;         /* mlp */
} fs_clip_layer;

typedef struct {
    float *token_embedding;          /* [vocab][width] */
    float *position_embedding;       /* [positions][width] */
    fs_clip_layer *layers;           /* [layers] */
    fs_clip_norm final_ln;
    fs_clip_linear projection;       /* [projection][width], no bias; w NULL when absent */
} fs_clip_weights;

struct fs_clip {
    fs_clip_config config;
    fs_clip_info info;
    int which;                       /* 0: CLIP-L, 1: bigG (SGM names differ) */
    fs_clip_weights w;
    fs_wslot *slots;
    size_t nslots;
    fs_safetensors *st;              /* open checkpoint (NULL once loaded, or random) */
    float *block;                    /* every converted weight */
};

#endif
