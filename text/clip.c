/* text/clip.c: the text encoders' forward pass and SDXL's conditioning.
 *
 * One CLIP text transformer layer (HF CLIPEncoderLayer, pre-LayerNorm):
 *   x += out_proj(causal_attention(q(LN1 x), k(LN1 x), v(LN1 x)))
 *   x += fc2(act(fc1(LN2 x)))            act: quick GELU (L) or erf GELU (bigG)
 * on x = token_embedding[id] + position_embedding[t]. Every product is an
 * nn_linear_whole over all sequences' tokens at once (rows s * 77 + t: every
 * rank holds the whole matrix, so its row count is a global quantity and no
 * row is padded), attention is nn_attention_causal per sequence (queries and
 * keys at q0 = 0). Results depend only on the ids, the weights and the
 * number of sequences in the call; no thread count or rank enters. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "nn/nn.h"
#include "text/clip_internal.h"

/* ---------------------------------------------------------------- forward
 * Like the UNet's (nn.h): a dry sizing pass over this same code, then the
 * real pass on one arena of the size it measured, every op through the nn
 * helpers (so through the pass's backend table). */

typedef struct {
    nn_ctx nn;
    const fs_clip_config *c;
    size_t m;                  /* rows: n_seq * positions */
    int n_seq;
} enc;

static nn_linear_w lin(const fs_clip_linear *l) {
    return (nn_linear_w){l->w, l->b, l->in, l->out};
}
static nn_norm_w norm(const fs_clip_norm *n) { return (nn_norm_w){n->gamma, n->beta, n->c}; }

static fs_code linear(enc *e, const float *x, float *y, const fs_clip_linear *l) {
    nn_linear_w w = lin(l);
    return nn_linear_whole(&e->nn, x, y, e->m, &w);
}

static fs_code layernorm(enc *e, const float *x, float *y, size_t rows, const fs_clip_norm *n) {
    nn_norm_w w = norm(n);
    return nn_layernorm(&e->nn, x, y, rows, e->c->eps, &w);
}

/* One encoder layer on x [m][width], in place; h, q, k, v, a, f are scratch. */
static fs_code layer(enc *e, const fs_clip_layer *L, float *x, float *h, float *q, float *k,
                     float *v, float *a, float *f) {
    const fs_clip_config *c = e->c;
    const int C = c->width, T = c->positions, dh = C / c->heads;
    const size_t n = e->m * (size_t)C;
    fs_code rc = layernorm(e, x, h, e->m, &L->ln1);
    if (!rc) rc = linear(e, h, q, &L->q);
    if (!rc) rc = linear(e, h, k, &L->k);
    if (!rc) rc = linear(e, h, v, &L->v);
    const float scale = 1.0f / sqrtf((float)dh);
    for (int s = 0; s < e->n_seq && !rc; s++) {
        size_t off = (size_t)s * T * C;
        rc = nn_attention_causal(&e->nn, nn_cat(&e->nn, q, off), nn_cat(&e->nn, k, off),
                                 nn_cat(&e->nn, v, off), nn_at(&e->nn, a, off), T, T, c->heads,
                                 dh, scale, 0);
    }
    if (!rc) rc = linear(e, a, h, &L->out);
    if (!rc) rc = nn_add(&e->nn, x, h, n);
    if (!rc) rc = layernorm(e, x, h, e->m, &L->ln2);
    if (!rc) rc = linear(e, h, f, &L->fc1);
    const size_t nf = e->m * (size_t)c->mlp;
    if (!rc)
        rc = c->act == FS_CLIP_GELU ? nn_gelu(&e->nn, f, f, nf) : nn_quick_gelu(&e->nn, f, f, nf);
    if (!rc) rc = linear(e, f, h, &L->fc2);
    if (!rc) rc = nn_add(&e->nn, x, h, n);
    return rc;
}

/* One whole pass (dry or real): ids, hidden and pooled are host memory. */
static fs_code encode_pass(enc *e, const fs_clip *m, const int32_t *ids, int hidden_layers,
                           float *hidden, float *pooled) {
    const fs_clip_config *c = e->c;
    const int C = c->width, T = c->positions;
    nn_ctx *f = &e->nn;
    const size_t w = e->m * (size_t)C;
    float *x = nn_floats(f, w), *h = x ? nn_floats(f, w) : NULL, *q = h ? nn_floats(f, w) : NULL;
    float *k = q ? nn_floats(f, w) : NULL, *v = k ? nn_floats(f, w) : NULL;
    float *a = v ? nn_floats(f, w) : NULL;
    float *ff = a ? nn_floats(f, e->m * (size_t)c->mlp) : NULL;
    int32_t *dids = ff ? nn_take(f, e->m * sizeof(int32_t)) : NULL;
    if (!dids) return nn_oom(f);
    fs_code rc = nn_upload(f, dids, ids, e->m * sizeof(int32_t));
    if (!rc)
        rc = nn_embed_tokens(f, dids, e->m, T, C, m->w.token_embedding, m->w.position_embedding,
                             x);
    const int run = pooled ? c->layers : hidden_layers;
    for (int l = 0; l < run && !rc; l++) {
        rc = layer(e, &m->w.layers[l], x, h, q, k, v, a, ff);
        if (!rc && hidden && l + 1 == hidden_layers)
            rc = nn_download(f, hidden, x, w * sizeof(float));
    }
    if (!rc && pooled) {
        float *rows = nn_floats(f, (size_t)e->n_seq * C);
        float *rows_ln = rows ? nn_floats(f, (size_t)e->n_seq * C) : NULL;
        if (!rows_ln) return nn_oom(f);
        /* the row of each sequence's largest id (its first occurrence; the
         * dry pass copies nothing and reads no ids) */
        for (int s = 0; s < e->n_seq && !rc && !f->dry; s++) {
            const int32_t *id = ids + (size_t)s * T;
            int at = 0;
            for (int t = 1; t < T; t++)
                if (id[t] > id[at]) at = t;
            rc = nn_copy(f, nn_at(f, rows, (size_t)s * C),
                         nn_cat(f, x, ((size_t)s * T + at) * C), (size_t)C);
        }
        if (!rc) rc = layernorm(e, rows, rows_ln, (size_t)e->n_seq, &m->w.final_ln);
        const size_t np = (size_t)e->n_seq * (c->projection ? c->projection : C);
        float *out = rows_ln;
        if (!rc && c->projection) {
            nn_linear_w pw = lin(&m->w.projection);
            out = nn_floats(f, np);
            if (!out) return nn_oom(f);
            rc = nn_linear_whole(f, rows_ln, out, (size_t)e->n_seq, &pw);
        }
        if (!rc) rc = nn_download(f, pooled, out, np * sizeof(float));
    }
    return rc;
}

/* A context for n_seq sequences on the CPU backend (the text encoders run
 * on the host: every rank computes the same conditioning). */
static fs_code setup(enc *e, const fs_clip *m, int n_seq, fs_error *err) {
    memset(e, 0, sizeof *e);
    e->c = &m->config;
    e->n_seq = n_seq;
    e->m = (size_t)n_seq * (size_t)m->config.positions;
    e->nn = (nn_ctx){.what = "text encoder", .n = 1, .err = err, .be = fs_backend_cpu()};
    return FS_OK;
}

size_t fs_clip_encode_bytes(const fs_clip *m, int n_seq) {
    if (n_seq < 1) return 0;
    fs_error err = {0};
    enc e;
    setup(&e, m, n_seq, &err);
    e.nn.dry = 1;
    /* the dry pass reads no ids: the pooled row is found only in the real pass */
    static const int32_t none[1];
    float out[1];
    fs_code rc = encode_pass(&e, m, none, m->config.layers - 1, out, out);
    return rc ? 0 : e.nn.arena_peak + 4096;
}

fs_code fs_clip_encode(const fs_clip *m, const int32_t *ids, int n_seq, int hidden_layers,
                       float *hidden, float *pooled, fs_error *err) {
    const fs_clip_config *c = &m->config;
    const int T = c->positions;
    if (!m->block || m->st)
        return fs_fail(err, FS_ERR_INVALID, "text encoder %s: weights are not loaded",
                       m->info.weights_path);
    if (n_seq < 1 || !ids)
        return fs_fail(err, FS_ERR_INVALID, "text encoder: %d sequences%s", n_seq,
                       ids ? "" : " (ids NULL)");
    if (hidden && (hidden_layers < 1 || hidden_layers > c->layers))
        return fs_fail(err, FS_ERR_INVALID, "text encoder: hidden state after %d layers asked, "
                       "the model has %d", hidden_layers, c->layers);
    for (size_t i = 0; i < (size_t)n_seq * T; i++)
        if (ids[i] < 0 || ids[i] >= c->vocab)
            return fs_fail(err, FS_ERR_RANGE, "text encoder: token id %d at sequence %zu, "
                           "position %zu is outside the vocabulary [0, %d)", (int)ids[i],
                           i / (size_t)T, i % (size_t)T, c->vocab);
    if (!hidden && !pooled) return FS_OK;

    fs_error local = {0};
    if (!err) err = &local;
    enc e;
    setup(&e, m, n_seq, err);
    e.nn.dry = 1; /* sizing pass */
    fs_code rc = encode_pass(&e, m, ids, hidden_layers, hidden, pooled);
    if (rc) return rc;
    const size_t bytes = e.nn.arena_peak + 4096;
    e.nn.dry = 0;
    e.nn.arena = fs_arena_create(bytes, err);
    if (!e.nn.arena)
        return fs_fail(err, FS_ERR_NOMEM, "text encoder: cannot allocate %.1f MB for %d "
                       "sequences", (double)bytes / 1e6, n_seq);
    rc = encode_pass(&e, m, ids, hidden_layers, hidden, pooled);
    fs_arena_destroy(e.nn.arena);
    return rc;
}

/* ---------------------------------------------------------------- SDXL */

static fs_code check_pair(const fs_clip *l, const fs_clip *g, fs_error *err) {
    if (!l || !g) return fs_fail(err, FS_ERR_INVALID, "SDXL conditioning: an encoder is NULL");
    if (l->config.positions != g->config.positions)
        return fs_fail(err, FS_ERR_INVALID, "SDXL conditioning: the encoders take %d and %d "
                       "tokens", l->config.positions, g->config.positions);
    if (!g->config.projection)
        return fs_fail(err, FS_ERR_INVALID, "SDXL conditioning: the second encoder has no "
                       "text_projection (pooled output)");
    if (l->config.layers < 2 || g->config.layers < 2)
        return fs_fail(err, FS_ERR_INVALID, "SDXL conditioning: the penultimate hidden state "
                       "needs 2 layers or more (%d, %d)", l->config.layers, g->config.layers);
    return FS_OK;
}

size_t fs_sdxl_context_floats(const fs_clip *l, const fs_clip *g, int chunks) {
    return (size_t)chunks * l->config.positions * (size_t)(l->config.width + g->config.width);
}

size_t fs_sdxl_y_floats(const fs_clip *g) {
    return (size_t)g->config.projection + 6 * FS_SDXL_TIME_ID_DIM;
}

/* The size part of y: Timestep256 of the six ids in diffusers' order
 * (_get_add_time_ids: original_size + crops_coords_top_left + target_size). */
static fs_code size_embeddings(const fs_sdxl_sizes *sz, float *out, fs_error *err) {
    const float t[6] = {(float)sz->orig_h,   (float)sz->orig_w,    (float)sz->crop_top,
                        (float)sz->crop_left, (float)sz->target_h, (float)sz->target_w};
    const fs_backend *be = fs_backend_cpu();   /* the conditioning is made on the host */
    return be->op->timestep_embedding(be, t, 6, FS_SDXL_TIME_ID_DIM, out, err);
}

/* Encodes n_seq sequences with both encoders; writes context rows of each
 * sequence into ctx_of[s] and the pooled vector of sequence s into pool_of[s]
 * (NULL: not wanted). */
static fs_code encode_both(const fs_clip *l, const fs_clip *g, const int32_t *ids_l,
                           const int32_t *ids_g, int n_seq, float *const *ctx_of,
                           float *const *pool_of, fs_error *err) {
    const int T = l->config.positions, Cl = l->config.width, Cg = g->config.width;
    const int P = g->config.projection;
    size_t rows = (size_t)n_seq * T;
    float *hl = fs_alloc(rows * Cl * sizeof(float)), *hg = fs_alloc(rows * Cg * sizeof(float));
    float *pool = fs_alloc((size_t)n_seq * P * sizeof(float));
    fs_code rc = FS_OK;
    if (!hl || !hg || !pool)
        rc = fs_fail(err, FS_ERR_NOMEM, "SDXL conditioning: out of memory for %d sequences", n_seq);
    if (!rc) rc = fs_clip_encode(l, ids_l, n_seq, l->config.layers - 1, hl, NULL, err);
    if (!rc) rc = fs_clip_encode(g, ids_g, n_seq, g->config.layers - 1, hg, pool, err);
    if (!rc)
        for (int s = 0; s < n_seq; s++) {
            for (int t = 0; t < T; t++) {
                size_t r = (size_t)s * T + t;
                float *o = ctx_of[s] + (size_t)t * (Cl + Cg);
                memcpy(o, hl + r * Cl, (size_t)Cl * sizeof(float));
                memcpy(o + Cl, hg + r * Cg, (size_t)Cg * sizeof(float));
            }
            if (pool_of[s]) memcpy(pool_of[s], pool + (size_t)s * P, (size_t)P * sizeof(float));
        }
    fs_free(hl);
    fs_free(hg);
    fs_free(pool);
    return rc;
}

static fs_code check_ids(const fs_sdxl_prompt_ids *ids, const char *what, fs_error *err) {
    if (ids->chunks < 1 || !ids->ids_l || !ids->ids_g)
        return fs_fail(err, FS_ERR_INVALID, "SDXL conditioning: %s has %d chunks%s", what,
                       ids->chunks, ids->ids_l && ids->ids_g ? "" : " or NULL ids");
    return FS_OK;
}

fs_code fs_sdxl_condition_one(const fs_clip *clip_l, const fs_clip *clip_g,
                              const fs_sdxl_prompt_ids *ids, int chunks,
                              const fs_sdxl_sizes *sizes, float *context, float *y,
                              fs_error *err) {
    fs_code rc = check_pair(clip_l, clip_g, err);
    if (rc) return rc;
    if (ids && (rc = check_ids(ids, "the prompt", err))) return rc;
    if (ids) chunks = ids->chunks;
    if (chunks < 1)
        return fs_fail(err, FS_ERR_INVALID, "SDXL conditioning: %d chunks", chunks);
    if (!sizes || !context || !y)
        return fs_fail(err, FS_ERR_INVALID, "SDXL conditioning: NULL sizes, context or y");
    const int T = clip_l->config.positions, P = clip_g->config.projection;
    const size_t per_chunk = (size_t)T * (clip_l->config.width + clip_g->config.width);
    if (!ids) {
        memset(context, 0, (size_t)chunks * per_chunk * sizeof(float));
        memset(y, 0, (size_t)P * sizeof(float));
    } else {
        float **ctx_of = malloc((size_t)chunks * 2 * sizeof(float *));
        if (!ctx_of) return fs_fail(err, FS_ERR_NOMEM, "SDXL conditioning: out of memory");
        float **pool_of = ctx_of + chunks;
        for (int s = 0; s < chunks; s++) {
            ctx_of[s] = context + (size_t)s * per_chunk;
            pool_of[s] = s ? NULL : y;  /* pooled from chunk 0 */
        }
        rc = encode_both(clip_l, clip_g, ids->ids_l, ids->ids_g, chunks, ctx_of, pool_of, err);
        free(ctx_of);
        if (rc) return rc;
    }
    return size_embeddings(sizes, y + P, err);
}

fs_code fs_sdxl_condition(const fs_clip *clip_l, const fs_clip *clip_g,
                          const fs_sdxl_prompt_ids *prompt, const fs_sdxl_prompt_ids *neg,
                          const fs_sdxl_sizes *sizes, float *context, float *y, fs_error *err) {
    fs_code rc = check_pair(clip_l, clip_g, err);
    if (rc) return rc;
    if (!prompt) return fs_fail(err, FS_ERR_INVALID, "SDXL conditioning: no prompt ids");
    if ((rc = check_ids(prompt, "the prompt", err))) return rc;
    const int k = prompt->chunks;
    if (neg && (rc = check_ids(neg, "the negative prompt", err))) return rc;
    if (neg && neg->chunks != k)
        return fs_fail(err, FS_ERR_INVALID, "SDXL conditioning: the prompt has %d chunks, the "
                       "negative prompt %d (pad the shorter one with empty-prompt chunks)", k,
                       neg->chunks);
    /* The branches are encoded by separate calls, so the prompt's bits never
     * depend on the negative prompt. neg NULL: force_zeros_for_empty_prompt. */
    const size_t ctx_n = fs_sdxl_context_floats(clip_l, clip_g, k), y_n = fs_sdxl_y_floats(clip_g);
    if ((rc = fs_sdxl_condition_one(clip_l, clip_g, neg, k, sizes, context, y, err))) return rc;
    return fs_sdxl_condition_one(clip_l, clip_g, prompt, k, sizes, context + ctx_n, y + y_n, err);
}
