/* worker/conditioning.c: the model family's conditioning, behind the model
 * bundle, so the render's loop (render.c and below) knows no text encoder:
 * it asks for the context and the added condition y of both CFG branches,
 * or for their sizes when it runs dry. SDXL: CLIP-L and OpenCLIP-bigG on the
 * prompt's 75-token chunks, the pooled bigG vector and the six size ids
 * (text/). A second family fills these two functions. */
#include <stdlib.h>
#include "worker/worker.h"

#define F(n) ((size_t)(n) * sizeof(float))
static size_t max_sz(size_t a, size_t b) { return a > b ? a : b; }

/* Prompt chunks as fs_sdxl_condition_text makes them: the longest of both
 * tokenizers' windows of the prompt and (when there is one) the negative. */
static fs_code prompt_chunks(const fs_job *job, const fs_tokenizer *tl, const fs_tokenizer *tg,
                             int *chunks, fs_error *err) {
    *chunks = 1;
    const char *text[2] = {job->prompt, job->negative_prompt};
    for (int i = 0; i < (job->negative_prompt[0] ? 4 : 2); i++) {
        int32_t *ids = NULL;
        int k = 0;
        fs_code rc = fs_tokenize_chunks(i % 2 ? tg : tl, i % 2 ? FS_TOK_OPENCLIP : FS_TOK_CLIP_L,
                                        text[i / 2], &ids, &k, err);
        free(ids);
        if (rc) return rc;
        if (k > *chunks) *chunks = k;
    }
    return FS_OK;
}

fs_code fs_models_condition(fs_models *m, const fs_job *job, float **context, float **y,
                            int *chunks, fs_error *err) {
    fs_clip *cl, *cg;
    fs_tokenizer *tl, *tg;
    fs_code rc = fs_models_text(m, &cl, &cg, &tl, &tg, err);
    if (rc) return rc;
    fs_sdxl_sizes sizes = {
        .orig_h = job->orig_height, .orig_w = job->orig_width,
        .crop_top = job->crop_top, .crop_left = job->crop_left,
        .target_h = job->target_height, .target_w = job->target_width,
    };
    const char *neg = job->negative_prompt[0] ? job->negative_prompt : NULL;
    rc = fs_sdxl_condition_text(cl, cg, tl, tg, job->prompt, neg, &sizes, context, y, chunks,
                                err);
    fs_models_drop_text(m);   /* the encoders are not needed again */
    return rc;
}

/* The text phase holds the conditioning, then per branch both encoders'
 * outputs and one encoder's activations at a time (text/sdxl_text.c,
 * text/clip.c's sizing pass); loading an encoder holds the loader's piece
 * buffers besides the weights (f32: rounded to the precision in place). */
fs_code fs_models_condition_plan(fs_models *m, const fs_job *job, fs_condition_plan *p,
                                 fs_error *err) {
    const fs_clip *cl, *cg;
    const fs_unet *u;
    const fs_vae *v;
    const fs_tokenizer *tl, *tg;
    fs_code rc = fs_models_shapes(m, &cl, &cg, &u, &v, &tl, &tg, err);
    if (!rc) rc = prompt_chunks(job, tl, tg, &p->chunks, err);
    if (rc) return rc;
    const int k = p->chunks;
    const fs_clip_config *ccl = &fs_clip_get_info(cl)->config;
    const fs_clip_config *ccg = &fs_clip_get_info(cg)->config;
    p->text_params = fs_clip_get_info(cl)->params + fs_clip_get_info(cg)->params;
    p->weight_bytes = F(p->text_params);
    p->cond_bytes = F(2 * fs_sdxl_context_floats(cl, cg, k) + 2 * fs_sdxl_y_floats(cg));
    size_t outs = F((size_t)k * ccl->positions * ccl->width +
                    (size_t)k * ccg->positions * ccg->width + (size_t)k * ccg->projection);
    p->act_bytes = outs + max_sz(fs_clip_encode_bytes(cl, k), fs_clip_encode_bytes(cg, k));
    p->load_bytes = max_sz(fs_clip_load_scratch(cl), fs_clip_load_scratch(cg));
    return FS_OK;
}
