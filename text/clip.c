/* text/clip.c: the text encoders' forward pass and SDXL's conditioning.
 *
 * One CLIP text transformer layer (HF CLIPEncoderLayer, pre-LayerNorm):
 *   x += out_proj(causal_attention(q(LN1 x), k(LN1 x), v(LN1 x)))
 *   x += fc2(act(fc1(LN2 x)))            act: quick GELU (L) or erf GELU (bigG)
 * on x = token_embedding[id] + position_embedding[t]. Every product is an
 * fs_linear_whole over all sequences' tokens at once (rows s * 77 + t: every
 * rank holds the whole matrix, so its row count is a global quantity and no
 * row is padded), attention is fs_attention_causal per sequence (queries and
 * keys at q0 = 0). Results depend only on the ids, the weights and the
 * number of sequences in the call; no thread count or rank enters. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "kernels/kernels.h"
#include "text/clip_internal.h"

/* ---------------------------------------------------------------- memory */

typedef struct {
    size_t m;                  /* rows: n_seq * positions */
    size_t act_floats;         /* x, h, q, k, v, a [m][width], f [m][mlp], pooled rows */
    size_t scratch_bytes;      /* the ops' arena */
} encode_plan;

static size_t round16(size_t n) { return (n + 15) / 16 * 16; }

static encode_plan plan_encode(const fs_clip_config *c, int n_seq) {
    encode_plan p;
    p.m = (size_t)n_seq * (size_t)c->positions;
    size_t w = round16(p.m * (size_t)c->width);
    p.act_floats = 6 * w + round16(p.m * (size_t)c->mlp) + 2 * round16((size_t)n_seq * c->width);
    size_t s = fs_attention_scratch_bytes(c->positions, c->heads, c->width / c->heads);
    size_t lin[4] = {fs_linear_whole_scratch_bytes(p.m, c->width, c->width),
                     fs_linear_whole_scratch_bytes(p.m, c->width, c->mlp),
                     fs_linear_whole_scratch_bytes(p.m, c->mlp, c->width),
                     c->projection ? fs_linear_whole_scratch_bytes((size_t)n_seq, c->width,
                                                                   c->projection) : 0};
    for (int i = 0; i < 4; i++) s = lin[i] > s ? lin[i] : s;
    p.scratch_bytes = s + 4096;
    return p;
}

size_t fs_clip_encode_bytes(const fs_clip *m, int n_seq) {
    if (n_seq < 1) return 0;
    encode_plan p = plan_encode(&m->config, n_seq);
    return p.act_floats * sizeof(float) + p.scratch_bytes;
}

/* ---------------------------------------------------------------- forward */

typedef struct {
    const fs_clip_config *c;
    size_t m;
    int n_seq;
    fs_arena *arena;
    fs_error *err;
} enc;

static fs_code linear(const enc *e, const float *x, float *y, const fs_clip_linear *l) {
    return fs_linear_whole(x, y, e->m, l->in, l->out, l->w, l->b, e->arena, e->err);
}

static void add_into(float *y, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] += x[i];
}

/* One encoder layer on x [m][width], in place; h, q, k, v, a, f are scratch. */
static fs_code layer(const enc *e, const fs_clip_layer *L, float *x, float *h, float *q,
                     float *k, float *v, float *a, float *f) {
    const fs_clip_config *c = e->c;
    const int C = c->width, T = c->positions, dh = C / c->heads;
    const size_t n = e->m * (size_t)C;
    fs_code rc;
    fs_layernorm(x, h, e->m, C, c->eps, L->ln1.gamma, L->ln1.beta);
    if ((rc = linear(e, h, q, &L->q)) || (rc = linear(e, h, k, &L->k)) ||
        (rc = linear(e, h, v, &L->v)))
        return rc;
    const float scale = 1.0f / sqrtf((float)dh);
    for (int s = 0; s < e->n_seq; s++) {
        size_t off = (size_t)s * T * C;
        rc = fs_attention_causal(q + off, C, k + off, C, v + off, C, a + off, C, T, T, c->heads,
                                 dh, scale, 0, e->arena, e->err);
        if (rc) return rc;
    }
    if ((rc = linear(e, a, h, &L->out))) return rc;
    add_into(x, h, n);
    fs_layernorm(x, h, e->m, C, c->eps, L->ln2.gamma, L->ln2.beta);
    if ((rc = linear(e, h, f, &L->fc1))) return rc;
    size_t nf = e->m * (size_t)c->mlp;
    if (c->act == FS_CLIP_GELU) fs_gelu(f, f, nf);
    else fs_quick_gelu(f, f, nf);
    if ((rc = linear(e, f, h, &L->fc2))) return rc;
    add_into(x, h, n);
    return FS_OK;
}

fs_code fs_clip_encode(const fs_clip *m, const int32_t *ids, int n_seq, int hidden_layers,
                       float *hidden, float *pooled, fs_error *err) {
    const fs_clip_config *c = &m->config;
    const int C = c->width, T = c->positions;
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

    encode_plan p = plan_encode(c, n_seq);
    float *buf = fs_alloc(p.act_floats * sizeof(float));
    fs_arena *arena = fs_arena_create(p.scratch_bytes, err);
    if (!buf || !arena) {
        fs_free(buf);
        fs_arena_destroy(arena);
        return fs_fail(err, FS_ERR_NOMEM, "text encoder: cannot allocate %.1f MB for %d "
                       "sequences", (double)(p.act_floats * sizeof(float) + p.scratch_bytes) / 1e6,
                       n_seq);
    }
    const size_t w = round16(p.m * (size_t)C);
    float *x = buf, *h = x + w, *q = h + w, *k = q + w, *v = k + w, *a = v + w;
    float *f = a + w, *rows = f + round16(p.m * (size_t)c->mlp);
    float *rows_ln = rows + round16((size_t)n_seq * C);

    for (size_t r = 0; r < p.m; r++) {
        const float *te = m->w.token_embedding + (size_t)ids[r] * C;
        const float *pe = m->w.position_embedding + (r % (size_t)T) * C;
        for (int i = 0; i < C; i++) x[r * C + i] = te[i] + pe[i];
    }
    enc e = {c, p.m, n_seq, arena, err};
    int run = pooled ? c->layers : hidden_layers;
    fs_code rc = FS_OK;
    for (int l = 0; l < run && !rc; l++) {
        rc = layer(&e, &m->w.layers[l], x, h, q, k, v, a, f);
        if (!rc && hidden && l + 1 == hidden_layers)
            memcpy(hidden, x, p.m * (size_t)C * sizeof(float));
    }
    if (!rc && pooled) {
        /* the row of each sequence's largest id (its first occurrence) */
        for (int s = 0; s < n_seq; s++) {
            const int32_t *id = ids + (size_t)s * T;
            int at = 0;
            for (int t = 1; t < T; t++)
                if (id[t] > id[at]) at = t;
            memcpy(rows + (size_t)s * C, x + ((size_t)s * T + at) * C, (size_t)C * sizeof(float));
        }
        fs_layernorm(rows, rows_ln, (size_t)n_seq, C, c->eps, m->w.final_ln.gamma,
                     m->w.final_ln.beta);
        if (c->projection)
            rc = fs_linear_whole(rows_ln, pooled, (size_t)n_seq, C, c->projection,
                                 m->w.projection.w, NULL, arena, err);
        else
            memcpy(pooled, rows_ln, (size_t)n_seq * C * sizeof(float));
    }
    fs_arena_destroy(arena);
    fs_free(buf);
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
static void size_embeddings(const fs_sdxl_sizes *sz, float *out) {
    const float t[6] = {(float)sz->orig_h,   (float)sz->orig_w,    (float)sz->crop_top,
                        (float)sz->crop_left, (float)sz->target_h, (float)sz->target_w};
    fs_timestep_embedding(t, 6, FS_SDXL_TIME_ID_DIM, out);
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
    size_embeddings(sizes, y + P);
    return FS_OK;
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
