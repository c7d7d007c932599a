/* text/sdxl_text.c: SDXL conditioning from prompt strings, the thin layer
 * between the tokenizer (tokenizer.h) and the encoders (encoders.h).
 *
 * Each prompt is cut into 77-id windows by each encoder's tokenizer style
 * (CLIP-L: transformers' CLIPTokenizer, pad 49407; bigG: open_clip, pad 0).
 * The two styles clean text differently, so their chunk counts can differ;
 * like A1111, every id list (both encoders, prompt and negative prompt) is
 * padded with empty-prompt windows (BOS, EOS, padding) to the longest, so
 * the branches' contexts have the same token count. An absent or empty
 * negative prompt gives the zero branch (force_zeros_for_empty_prompt). */
#include <stdlib.h>
#include <string.h>
#include "text/encoders.h"
#include "text/tokenizer.h"

typedef struct { int32_t *ids; int chunks; } windows;

static fs_code tokenize(const fs_tokenizer *tok, fs_tok_style style, const char *text,
                        windows *w, fs_error *err) {
    fs_code rc = fs_tokenize_chunks(tok, style, text, &w->ids, &w->chunks, err);
    if (rc) fs_error_prefix(err, "SDXL conditioning: ");
    return rc;
}

/* Pads w to `chunks` windows with empty-prompt windows. */
static fs_code pad_to(const fs_tokenizer *tok, fs_tok_style style, windows *w, int chunks,
                      fs_error *err) {
    if (w->chunks >= chunks) return FS_OK;
    int32_t *ids = realloc(w->ids, (size_t)chunks * FS_TOK_CONTEXT * sizeof(int32_t));
    if (!ids) return fs_fail(err, FS_ERR_NOMEM, "SDXL conditioning: out of memory");
    w->ids = ids;
    int32_t empty[FS_TOK_CONTEXT];
    fs_code rc = fs_tokenize_window(tok, style, "", empty, err);
    if (rc) return rc;
    for (int c = w->chunks; c < chunks; c++)
        memcpy(ids + (size_t)c * FS_TOK_CONTEXT, empty, sizeof empty);
    w->chunks = chunks;
    return FS_OK;
}

fs_code fs_sdxl_condition_text(const fs_clip *clip_l, const fs_clip *clip_g,
                               const fs_tokenizer *tok_l, const fs_tokenizer *tok_g,
                               const char *prompt, const char *negative,
                               const fs_sdxl_sizes *sizes, float **context, float **y,
                               int *chunks, fs_error *err) {
    *context = *y = NULL;
    *chunks = 0;
    if (!clip_l || !clip_g || !tok_l || !tok_g || !prompt)
        return fs_fail(err, FS_ERR_INVALID, "SDXL conditioning: NULL encoder, tokenizer or "
                       "prompt");
    int positions = fs_clip_get_info(clip_l)->config.positions;
    if (positions != FS_TOK_CONTEXT)
        return fs_fail(err, FS_ERR_INVALID, "SDXL conditioning: the encoders take %d tokens, "
                       "the tokenizer makes %d", positions, FS_TOK_CONTEXT);
    const int has_neg = negative && *negative;
    windows w[4] = {{0}}; /* prompt L, prompt G, negative L, negative G */
    const fs_tokenizer *toks[2] = {tok_l, tok_g};
    const fs_tok_style styles[2] = {FS_TOK_CLIP_L, FS_TOK_OPENCLIP};
    fs_code rc = FS_OK;
    for (int i = 0; i < (has_neg ? 4 : 2) && !rc; i++)
        rc = tokenize(toks[i % 2], styles[i % 2], i < 2 ? prompt : negative, &w[i], err);
    int k = 0;
    for (int i = 0; i < 4; i++) k = w[i].chunks > k ? w[i].chunks : k;
    for (int i = 0; i < (has_neg ? 4 : 2) && !rc; i++)
        rc = pad_to(toks[i % 2], styles[i % 2], &w[i], k, err);
    float *ctx = NULL, *yy = NULL;
    if (!rc) {
        ctx = fs_alloc(2 * fs_sdxl_context_floats(clip_l, clip_g, k) * sizeof(float));
        yy = fs_alloc(2 * fs_sdxl_y_floats(clip_g) * sizeof(float));
        if (!ctx || !yy)
            rc = fs_fail(err, FS_ERR_NOMEM, "SDXL conditioning: out of memory for %d chunks", k);
    }
    if (!rc) {
        fs_sdxl_prompt_ids p = {k, w[0].ids, w[1].ids}, n = {k, w[2].ids, w[3].ids};
        rc = fs_sdxl_condition(clip_l, clip_g, &p, has_neg ? &n : NULL, sizes, ctx, yy, err);
    }
    for (int i = 0; i < 4; i++) free(w[i].ids);
    if (rc) {
        fs_free(ctx);
        fs_free(yy);
        return rc;
    }
    *context = ctx;
    *y = yy;
    *chunks = k;
    return FS_OK;
}
