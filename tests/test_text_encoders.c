/* tests/test_text_encoders.c: the C text encoders and the SDXL conditioning
 * against transformers / open_clip (tools/gen_text_golden.py, tests/data/text/).
 *
 * Golden: each encoder is opened from every layout (the diffusers pipeline
 * folder, the encoder's own folder, its weights file given directly, the SGM
 * single file), loaded, and run on the golden ids; the hidden state after
 * layers - 1 layers (SDXL's) and the pooled output must be within rel L2
 * 1e-4 of the float64 reference, and every layout must give the same bits
 * (the weights are exact in F16 and BF16). The same with 1 and 2 threads.
 * Conditioning: context = [hidden_l | hidden_g], y = [pooled_g | time
 * embeddings], the zero branch for an absent negative prompt, an encoded
 * negative prompt, two chunks, and the errors.
 * Full-size: sparse SDXL base 1.0 files (every tensor a hole, real names and
 * shapes) in both layouts bind all 196 + 517 tensors with SDXL's configs and
 * parameter counts, reading no weight data.
 * Errors: missing and misshapen tensors, ids outside the vocabulary, layer
 * counts out of range. Strings: fs_sdxl_condition_text on random encoders
 * with the real vocabulary equals fs_sdxl_condition on the tokenizer's ids
 * (chunk padding, empty negative prompt). Exits 77 (skipped) without the
 * golden data. */
#define _GNU_SOURCE
#include <ftw.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "io/io.h"
#include "kernels/kernels.h"
#include "text/clip_internal.h"
#include "text/tokenizer.h"

#define TOL 1e-4
enum { T = 77, NSEQ = 3 };

static char data_dir[600], tmpdir[600];

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb; (void)flag; (void)ftw;
    return remove(path);
}

static double rel_l2(const float *a, const float *ref, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)ref[i];
        num += d * d;
        den += (double)ref[i] * ref[i];
    }
    if (!(num == num)) return INFINITY;
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* ---------------------------------------------------------------- golden io */

typedef struct {
    int32_t ids[2][NSEQ * T];         /* [encoder][seq][t] */
    float *hidden[2], *pooled[2];     /* [NSEQ][T][width], [NSEQ][pooled width] */
    size_t hidden_n[2], pooled_n[2];
    float time_ids[6], time_embeds[6 * FS_SDXL_TIME_ID_DIM];
} golden;

static float *read_floats(const fs_safetensors *io, const char *name, size_t *n) {
    const fs_st_tensor *t = fs_safetensors_find(io, name);
    CHECK(t != NULL, "io.safetensors has no %s", name);
    if (!t) return NULL;
    float *v = malloc(t->numel * sizeof(float));
    fs_error err = {0};
    CHECK(fs_safetensors_read_f32(io, t, v, &err) == FS_OK, "%s: %s", name, err.msg);
    if (n) *n = t->numel;
    return v;
}

static int load_golden(golden *g) {
    char path[700];
    snprintf(path, sizeof path, "%s/io.safetensors", data_dir);
    fs_safetensors *io = NULL;
    fs_error err = {0};
    if (fs_safetensors_open(path, &io, &err) != FS_OK) return -1;
    static const char *const ids[2] = {"ids_l", "ids_g"}, *const hid[2] = {"hidden_l", "hidden_g"},
                             *const pool[2] = {"pooled_l", "pooled_g"};
    for (int e = 0; e < 2; e++) {
        const fs_st_tensor *t = fs_safetensors_find(io, ids[e]);
        CHECK(t && t->dtype == FS_DTYPE_I32 && t->numel == NSEQ * T, "%s", ids[e]);
        if (t) memcpy(g->ids[e], t->data, sizeof g->ids[e]);
        g->hidden[e] = read_floats(io, hid[e], &g->hidden_n[e]);
        g->pooled[e] = read_floats(io, pool[e], &g->pooled_n[e]);
    }
    float *ti = read_floats(io, "time_ids", NULL), *te = read_floats(io, "time_embeds", NULL);
    if (ti) memcpy(g->time_ids, ti, sizeof g->time_ids);
    if (te) memcpy(g->time_embeds, te, sizeof g->time_embeds);
    free(ti);
    free(te);
    fs_safetensors_close(io);
    return 0;
}

/* ---------------------------------------------------------------- golden runs */

typedef struct { float *hidden, *pooled; } result;

static fs_clip *open_loaded(const char *path, int which, fs_clip_layout layout, const char *what) {
    fs_clip *m = NULL;
    fs_error err = {0};
    fs_code rc = fs_clip_open(path, which, &m, &err);
    CHECK(rc == FS_OK, "%s: open: %s", what, err.msg);
    if (rc) return NULL;
    const fs_clip_info *info = fs_clip_get_info(m);
    CHECK(info->layout == layout, "%s: layout %d", what, (int)info->layout);
    CHECK(info->tensors_unexpected == 0, "%s: %zu unexpected (%s)", what, info->tensors_unexpected,
          info->first_unexpected);
    CHECK(info->tensors_bound == m->nslots, "%s: %zu of %zu bound", what, info->tensors_bound,
          m->nslots);
    CHECK(m->block == NULL, "%s: opening allocated the weights", what);
    rc = fs_clip_load_weights(m, &err);
    CHECK(rc == FS_OK, "%s: load: %s", what, err.msg);
    if (rc) { fs_clip_free(m); return NULL; }
    return m;
}

static result run(const fs_clip *m, const int32_t *ids, int n_seq, const char *what) {
    const fs_clip_config *c = &m->config;
    int pw = c->projection ? c->projection : c->width;
    result r = {malloc((size_t)n_seq * T * c->width * sizeof(float)),
                malloc((size_t)n_seq * pw * sizeof(float))};
    fs_error err = {0};
    fs_code rc = fs_clip_encode(m, ids, n_seq, c->layers - 1, r.hidden, r.pooled, &err);
    CHECK(rc == FS_OK, "%s: encode: %s", what, err.msg);
    return r;
}

static void test_golden(const golden *g) {
    static const char *const sub[2] = {"text_encoder", "text_encoder_2"};
    static const char *const file[2] = {"model.fp16.safetensors", "model.safetensors"};
    const fs_clip_config want[2] = {
        {.vocab = 128, .positions = 77, .width = 64, .layers = 3, .heads = 1, .mlp = 128,
         .act = FS_CLIP_QUICK_GELU, .eps = 1e-5f, .projection = 0},
        {.vocab = 128, .positions = 77, .width = 128, .layers = 2, .heads = 2, .mlp = 128,
         .act = FS_CLIP_GELU, .eps = 1e-5f, .projection = 128}};
    for (int e = 0; e < 2; e++) {
        char paths[4][800], what[4][64];
        fs_clip_layout layouts[4] = {FS_CLIP_LAYOUT_DIFFUSERS, FS_CLIP_LAYOUT_DIFFUSERS,
                                     FS_CLIP_LAYOUT_DIFFUSERS, FS_CLIP_LAYOUT_SGM};
        snprintf(paths[0], sizeof paths[0], "%s", data_dir);
        snprintf(paths[1], sizeof paths[1], "%s/%s", data_dir, sub[e]);
        snprintf(paths[2], sizeof paths[2], "%s/%s/%s", data_dir, sub[e], file[e]);
        snprintf(paths[3], sizeof paths[3], "%s/sgm.safetensors", data_dir);
        snprintf(what[0], sizeof what[0], "encoder %d, pipeline folder", e);
        snprintf(what[1], sizeof what[1], "encoder %d, encoder folder", e);
        snprintf(what[2], sizeof what[2], "encoder %d, weights file", e);
        snprintf(what[3], sizeof what[3], "encoder %d, SGM file", e);
        result first = {0};
        for (int l = 0; l < 4; l++) {
            fs_clip *m = open_loaded(paths[l], e, layouts[l], what[l]);
            if (!m) continue;
            const fs_clip_config *c = &m->config;
            CHECK(!memcmp(c, &want[e], sizeof *c), "%s: config %d/%d/%d/%d/%d/%d act %d eps %g "
                  "proj %d", what[l], c->vocab, c->positions, c->width, c->layers, c->heads, c->mlp,
                  (int)c->act, c->eps, c->projection);
            double t0 = fs_now();
            result r = run(m, g->ids[e], NSEQ, what[l]);
            double dt = fs_now() - t0;
            size_t nh = (size_t)NSEQ * T * c->width, np = g->pooled_n[e];
            double eh = rel_l2(r.hidden, g->hidden[e], nh), ep = rel_l2(r.pooled, g->pooled[e], np);
            printf("  %-32s hidden rel L2 %.2e, pooled %.2e (%.1f ms)\n", what[l], eh, ep, dt * 1e3);
            CHECK(nh == g->hidden_n[e] && eh <= TOL, "%s: hidden %.3e", what[l], eh);
            CHECK(ep <= TOL, "%s: pooled %.3e", what[l], ep);
            for (int s = 0; s < NSEQ; s++) {
                size_t pw = np / NSEQ;
                double es = rel_l2(r.pooled + s * pw, g->pooled[e] + s * pw, pw);
                CHECK(es <= TOL, "%s: pooled of sequence %d %.3e", what[l], s, es);
            }
            if (!first.hidden) {
                first = r;
                /* threads: same bits with 1 and 2 */
                int saved = fs_threads_count();
                for (int t = 1; t <= 2; t++) {
                    fs_threads_init(t);
                    result q = run(m, g->ids[e], NSEQ, what[l]);
                    CHECK(!memcmp(q.hidden, r.hidden, nh * 4) && !memcmp(q.pooled, r.pooled, np * 4),
                          "%s: %d threads give other bits", what[l], t);
                    free(q.hidden);
                    free(q.pooled);
                }
                fs_threads_init(saved);
                /* one sequence alone: the same values up to float noise */
                for (int s = 0; s < NSEQ; s++) {
                    result q = run(m, g->ids[e] + s * T, 1, what[l]);
                    size_t hw = (size_t)T * c->width, pw = np / NSEQ;
                    double d = rel_l2(q.hidden, g->hidden[e] + s * hw, hw);
                    double dp = rel_l2(q.pooled, g->pooled[e] + s * pw, pw);
                    CHECK(d <= TOL && dp <= TOL, "%s: sequence %d alone: %.3e %.3e", what[l], s, d, dp);
                    free(q.hidden);
                    free(q.pooled);
                }
                /* every layer count and the no-hidden call */
                fs_error err = {0};
                float *h = malloc(nh * sizeof(float));
                CHECK(fs_clip_encode(m, g->ids[e], NSEQ, c->layers, h, NULL, &err) == FS_OK,
                      "%s", err.msg);
                CHECK(memcmp(h, r.hidden, nh * 4) != 0, "%s: the last layer's output equals the "
                      "penultimate", what[l]);
                CHECK(fs_clip_encode(m, g->ids[e], NSEQ, 0, NULL, NULL, &err) == FS_OK, "%s", err.msg);
                CHECK(fs_clip_encode(m, g->ids[e], NSEQ, 0, h, NULL, &err) == FS_ERR_INVALID &&
                      strstr(err.msg, "after 0 layers"), "%s", err.msg);
                CHECK(fs_clip_encode(m, g->ids[e], NSEQ, c->layers + 1, h, NULL, &err) ==
                      FS_ERR_INVALID, "%s", err.msg);
                int32_t bad[T];
                memcpy(bad, g->ids[e], sizeof bad);
                bad[5] = c->vocab;
                CHECK(fs_clip_encode(m, bad, 1, 1, h, NULL, &err) == FS_ERR_RANGE &&
                      strstr(err.msg, "position 5"), "%s", err.msg);
                bad[5] = -1;
                CHECK(fs_clip_encode(m, bad, 1, 1, h, NULL, &err) == FS_ERR_RANGE, "%s", err.msg);
                free(h);
            } else {
                CHECK(!memcmp(r.hidden, first.hidden, nh * 4) &&
                      !memcmp(r.pooled, first.pooled, np * 4),
                      "%s: not the same bits as the pipeline folder", what[l]);
                free(r.hidden);
                free(r.pooled);
            }
            fs_clip_free(m);
        }
        free(first.hidden);
        free(first.pooled);
    }
}

/* ---------------------------------------------------------------- conditioning */

static void test_condition(const golden *g) {
    fs_clip *l = open_loaded(data_dir, 0, FS_CLIP_LAYOUT_DIFFUSERS, "cond: CLIP-L");
    fs_clip *G = open_loaded(data_dir, 1, FS_CLIP_LAYOUT_DIFFUSERS, "cond: bigG");
    if (!l || !G) { fs_clip_free(l); fs_clip_free(G); return; }
    const int Cl = 64, Cg = 128, C = Cl + Cg, P = 128, Y = P + 6 * FS_SDXL_TIME_ID_DIM;
    CHECK(fs_sdxl_context_floats(l, G, 2) == (size_t)2 * T * C && fs_sdxl_y_floats(G) == (size_t)Y,
          "sizes");
    const fs_sdxl_sizes sz = {(int)g->time_ids[0], (int)g->time_ids[1], (int)g->time_ids[2],
                              (int)g->time_ids[3], (int)g->time_ids[4], (int)g->time_ids[5]};
    /* the golden conditioning of sequence s */
    float *want_ctx = malloc((size_t)NSEQ * T * C * sizeof(float));
    float *want_y = malloc((size_t)NSEQ * Y * sizeof(float));
    for (int s = 0; s < NSEQ; s++) {
        for (int t = 0; t < T; t++) {
            float *o = want_ctx + ((size_t)s * T + t) * C;
            memcpy(o, g->hidden[0] + ((size_t)s * T + t) * Cl, Cl * sizeof(float));
            memcpy(o + Cl, g->hidden[1] + ((size_t)s * T + t) * Cg, Cg * sizeof(float));
        }
        memcpy(want_y + (size_t)s * Y, g->pooled[1] + (size_t)s * P, P * sizeof(float));
        memcpy(want_y + (size_t)s * Y + P, g->time_embeds, sizeof g->time_embeds);
    }
    const size_t cn = (size_t)T * C;
    float *ctx = malloc(2 * 2 * cn * sizeof(float)), *y = malloc(2 * (size_t)Y * sizeof(float));
    float *ctx2 = malloc(2 * 2 * cn * sizeof(float)), *y2 = malloc(2 * (size_t)Y * sizeof(float));
    fs_error err = {0};
    fs_sdxl_prompt_ids p0 = {1, g->ids[0], g->ids[1]};
    fs_sdxl_prompt_ids empty = {1, g->ids[0] + 2 * T, g->ids[1] + 2 * T};

    /* no negative prompt: [zeros + sizes, prompt] */
    CHECK(fs_sdxl_condition(l, G, &p0, NULL, &sz, ctx, y, &err) == FS_OK, "%s", err.msg);
    int zero = 1;
    for (size_t i = 0; i < cn; i++) zero &= ctx[i] == 0.0f;
    for (int i = 0; i < P; i++) zero &= y[i] == 0.0f;
    CHECK(zero, "uncond branch without a negative prompt is not zero");
    double e_size = rel_l2(y + P, g->time_embeds, 6 * FS_SDXL_TIME_ID_DIM);
    double e_ctx = rel_l2(ctx + cn, want_ctx, cn), e_y = rel_l2(y + Y, want_y, Y);
    printf("  conditioning: context rel L2 %.2e, y %.2e, size embeddings %.2e\n", e_ctx, e_y, e_size);
    CHECK(e_size <= TOL, "uncond size embeddings %.3e", e_size);
    CHECK(e_ctx <= TOL && e_y <= TOL, "cond: context %.3e, y %.3e", e_ctx, e_y);

    /* an encoded negative prompt (the empty one): the prompt's bits unchanged */
    CHECK(fs_sdxl_condition(l, G, &p0, &empty, &sz, ctx2, y2, &err) == FS_OK, "%s", err.msg);
    CHECK(!memcmp(ctx2 + cn, ctx + cn, cn * 4) && !memcmp(y2 + Y, y + Y, (size_t)Y * 4),
          "the prompt's conditioning changed with the negative prompt");
    double e_nc = rel_l2(ctx2, want_ctx + 2 * cn, cn), e_ny = rel_l2(y2, want_y + 2 * Y, Y);
    CHECK(e_nc <= TOL && e_ny <= TOL, "negative: context %.3e, y %.3e", e_nc, e_ny);

    /* two chunks: tokens of both, pooled from the first */
    int32_t il[2 * T], ig[2 * T];
    memcpy(il, g->ids[0], sizeof il);
    memcpy(ig, g->ids[1], sizeof ig);
    fs_sdxl_prompt_ids two = {2, il, ig};
    CHECK(fs_sdxl_condition_one(l, G, &two, 0, &sz, ctx2, y2, &err) == FS_OK, "%s", err.msg);
    double e2 = rel_l2(ctx2, want_ctx, 2 * cn), e2y = rel_l2(y2, want_y, Y);
    printf("  two chunks: context rel L2 %.2e, y %.2e\n", e2, e2y);
    CHECK(e2 <= TOL && e2y <= TOL, "two chunks: context %.3e, y %.3e", e2, e2y);
    CHECK(fs_sdxl_condition(l, G, &two, &empty, &sz, ctx2, y2, &err) == FS_ERR_INVALID &&
          strstr(err.msg, "chunks"), "%s", err.msg);
    CHECK(fs_sdxl_condition(l, l, &p0, NULL, &sz, ctx2, y2, &err) == FS_ERR_INVALID &&
          strstr(err.msg, "projection"), "%s", err.msg);
    fs_sdxl_prompt_ids none = {0, il, ig};
    CHECK(fs_sdxl_condition(l, G, &none, NULL, &sz, ctx2, y2, &err) == FS_ERR_INVALID, "%s", err.msg);

    free(want_ctx); free(want_y); free(ctx); free(y); free(ctx2); free(y2);
    fs_clip_free(l);
    fs_clip_free(G);
}

/* ---------------------------------------------------------------- broken files */

/* Copies sgm.safetensors to path without `drop` and with `grow`'s first dim + 1. */
static void write_variant(const char *path, const char *drop, const char *grow) {
    char src[700];
    snprintf(src, sizeof src, "%s/sgm.safetensors", data_dir);
    fs_safetensors *st = NULL;
    fs_error err = {0};
    CHECK(fs_safetensors_open(src, &st, &err) == FS_OK, "%s", err.msg);
    if (!st) return;
    size_t n = fs_safetensors_count(st), k = 0;
    fs_st_entry *e = calloc(n, sizeof *e);
    void **bufs = calloc(n, sizeof *bufs);
    for (size_t i = 0; i < n; i++) {
        const fs_st_tensor *t = fs_safetensors_at(st, i);
        if (drop && !strcmp(t->name, drop)) continue;
        e[k].name = t->name;
        e[k].dtype = t->dtype;
        e[k].ndim = t->ndim;
        memcpy(e[k].shape, t->shape, sizeof t->shape);
        size_t bytes = t->end - t->begin;
        if (grow && !strcmp(t->name, grow)) {
            e[k].shape[0]++;
            bytes += bytes / (size_t)t->shape[0];
        }
        bufs[k] = calloc(1, bytes ? bytes : 1);
        memcpy(bufs[k], t->data, t->end - t->begin);
        e[k].data = bufs[k];
        k++;
    }
    CHECK(fs_safetensors_write(path, e, k, NULL, &err) == FS_OK, "%s", err.msg);
    for (size_t i = 0; i < k; i++) free(bufs[i]);
    free(bufs);
    free(e);
    fs_safetensors_close(st);
}

static void expect_error(const char *path, int which, fs_code code, const char *a, const char *b) {
    fs_clip *m = NULL;
    fs_error err = {0};
    fs_code rc = fs_clip_open(path, which, &m, &err);
    printf("  error: %s\n", err.msg);
    CHECK(rc == code, "got %s (%s)", fs_code_name(rc), err.msg);
    CHECK(!a || strstr(err.msg, a), "message '%s' does not name '%s'", err.msg, a);
    CHECK(!b || strstr(err.msg, b), "message '%s' does not name '%s'", err.msg, b);
    CHECK(m == NULL, "an encoder came back on error");
    fs_clip_free(m);
}

static void test_errors(void) {
    char path[800];
    const char *in_proj = "conditioner.embedders.1.model.transformer.resblocks.1.attn.in_proj_weight";
    snprintf(path, sizeof path, "%s/missing.safetensors", tmpdir);
    write_variant(path, in_proj, NULL);
    expect_error(path, 1, FS_ERR_FORMAT, in_proj, "layers.1.self_attn.q_proj.weight");
    write_variant(path, NULL, in_proj);
    expect_error(path, 1, FS_ERR_FORMAT, in_proj, "[385, 128]");
    const char *fc2 = "conditioner.embedders.0.transformer.text_model.encoder.layers.2.mlp.fc2.bias";
    write_variant(path, fc2, NULL);
    expect_error(path, 0, FS_ERR_FORMAT, fc2, path);
    write_variant(path, NULL, "conditioner.embedders.1.model.text_projection");
    expect_error(path, 1, FS_ERR_FORMAT, "text_projection", "[129, 128]");
    /* an extra tensor in the namespace is counted, not fatal */
    write_variant(path, "conditioner.embedders.1.model.logit_scale", NULL);
    fs_clip *m = NULL;
    fs_error err = {0};
    CHECK(fs_clip_open(path, 1, &m, &err) == FS_OK, "%s", err.msg);
    fs_clip_free(m);
    snprintf(path, sizeof path, "%s/io.safetensors", data_dir);
    expect_error(path, 0, FS_ERR_FORMAT, "no CLIP-L", NULL);
    expect_error(data_dir, 2, FS_ERR_INVALID, "encoders 0 and 1", NULL);
    expect_error(tmpdir, 1, FS_ERR_IO, "text_encoder_2/config.json", NULL);
}

/* ---------------------------------------------------------------- full size, sparse */

static const char te_config[] =
    "{\"architectures\": [\"CLIPTextModel\"], \"attention_dropout\": 0.0, \"bos_token_id\": 0, "
    "\"dropout\": 0.0, \"eos_token_id\": 2, \"hidden_act\": \"quick_gelu\", \"hidden_size\": 768, "
    "\"initializer_factor\": 1.0, \"initializer_range\": 0.02, \"intermediate_size\": 3072, "
    "\"layer_norm_eps\": 1e-05, \"max_position_embeddings\": 77, \"model_type\": \"clip_text_model\", "
    "\"num_attention_heads\": 12, \"num_hidden_layers\": 12, \"pad_token_id\": 1, "
    "\"projection_dim\": 768, \"torch_dtype\": \"float16\", \"vocab_size\": 49408}\n";
static const char te2_config[] =
    "{\"architectures\": [\"CLIPTextModelWithProjection\"], \"attention_dropout\": 0.0, "
    "\"bos_token_id\": 0, \"dropout\": 0.0, \"eos_token_id\": 2, \"hidden_act\": \"gelu\", "
    "\"hidden_size\": 1280, \"initializer_factor\": 1.0, \"initializer_range\": 0.02, "
    "\"intermediate_size\": 5120, \"layer_norm_eps\": 1e-05, \"max_position_embeddings\": 77, "
    "\"model_type\": \"clip_text_model\", \"num_attention_heads\": 20, \"num_hidden_layers\": 32, "
    "\"pad_token_id\": 1, \"projection_dim\": 1280, \"torch_dtype\": \"float16\", "
    "\"vocab_size\": 49408}\n";

typedef struct { fs_st_entry *e; char **names; size_t n, cap; } entries;

static void push(entries *x, const char *name, fs_dtype dt, json_t *shape, int64_t scale0) {
    if (x->n == x->cap) {
        x->cap = x->cap ? 2 * x->cap : 1024;
        x->e = realloc(x->e, x->cap * sizeof *x->e);
        x->names = realloc(x->names, x->cap * sizeof *x->names);
    }
    fs_st_entry *e = &x->e[x->n];
    memset(e, 0, sizeof *e);
    x->names[x->n] = strdup(name);
    e->name = x->names[x->n];
    e->dtype = dt;
    e->ndim = shape ? (int)json_array_size(shape) : 0;
    for (int d = 0; d < e->ndim; d++)
        e->shape[d] = json_integer_value(json_array_get(shape, (size_t)d)) * (d ? 1 : scale0);
    x->n++;
}

static void write_entries(const char *path, entries *x) {
    fs_error err = {0};
    CHECK(fs_safetensors_write(path, x->e, x->n, NULL, &err) == FS_OK, "%s", err.msg);
    for (size_t i = 0; i < x->n; i++) free(x->names[i]);
    free(x->e);
    free(x->names);
    memset(x, 0, sizeof *x);
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    CHECK(f && fputs(text, f) >= 0 && fclose(f) == 0, "writing %s", path);
}

static void check_sdxl(const char *path, int which, fs_clip_layout layout, const char *what) {
    fs_clip *m = NULL;
    fs_error err = {0};
    CHECK(fs_clip_open(path, which, &m, &err) == FS_OK, "%s: %s", what, err.msg);
    if (!m) return;
    const fs_clip_info *info = fs_clip_get_info(m);
    fs_clip_config want = fs_clip_config_sdxl(which);
    static const uint64_t params[2] = {123060480ull, 694659840ull};
    static const size_t tensors[2] = {196, 517};
    printf("  %s: %zu tensors bound, %llu parameters, %zu unexpected\n", what, info->tensors_bound,
           (unsigned long long)info->params, info->tensors_unexpected);
    CHECK(info->layout == layout, "%s: layout", what);
    CHECK(!memcmp(&info->config, &want, sizeof want), "%s: not SDXL's config", what);
    CHECK(info->tensors_bound == tensors[which], "%s: %zu bound", what, info->tensors_bound);
    CHECK(info->params == params[which] && info->params_by_dtype[FS_DTYPE_F16] == params[which],
          "%s: %llu parameters", what, (unsigned long long)info->params);
    CHECK(info->tensors_unexpected == 0, "%s: %zu unexpected (%s)", what,
          info->tensors_unexpected, info->first_unexpected);
    CHECK(m->block == NULL, "%s: binding allocated the weights", what);
    fs_clip_free(m);
}

static void test_sparse(void) {
    char path[900], dir[800];
    const char *env = getenv("FS_TEST_DATA");
    snprintf(path, sizeof path, "%s/sdxl_base_1.0_names.json", env ? env : "tests/data");
    json_error_t je;
    json_t *names = json_load_file(path, 0, &je);
    CHECK(names != NULL, "cannot read %s: %s", path, je.text);
    if (!names) return;
    static const char *const comps[2] = {"text_encoder", "text_encoder_2"};
    /* SGM: both encoders (q/k/v fused), position_ids, logit_scale, and one UNet tensor */
    entries x = {0};
    for (int c = 0; c < 2; c++) {
        const char *key;
        json_t *v;
        json_object_foreach(json_object_get(names, comps[c]), key, v) {
            const char *sgm = json_string_value(json_array_get(v, 0));
            const char *third = strchr(sgm, '[');
            if (!third) push(&x, sgm, FS_DTYPE_F16, json_array_get(v, 1), 1);
            else if (!strcmp(third, "[q-third]")) {
                char fused[256];
                snprintf(fused, sizeof fused, "%.*s", (int)(third - sgm), sgm);
                push(&x, fused, FS_DTYPE_F16, json_array_get(v, 1), 3);
            }
        }
    }
    json_t *pos = json_pack("[ii]", 1, 77), *u = json_pack("[ii]", 1280, 320);
    push(&x, "conditioner.embedders.0.transformer.text_model.embeddings.position_ids",
         FS_DTYPE_I64, pos, 1);
    push(&x, "conditioner.embedders.1.model.logit_scale", FS_DTYPE_F32, NULL, 1);
    push(&x, "model.diffusion_model.time_embed.0.weight", FS_DTYPE_F16, u, 1);
    json_decref(pos);
    json_decref(u);
    snprintf(path, sizeof path, "%s/sd_xl_base_1.0.safetensors", tmpdir);
    write_entries(path, &x);
    check_sdxl(path, 0, FS_CLIP_LAYOUT_SGM, "sparse SGM file, CLIP-L");
    check_sdxl(path, 1, FS_CLIP_LAYOUT_SGM, "sparse SGM file, bigG");

    /* diffusers: text_encoder/ and text_encoder_2/ with the published configs */
    snprintf(dir, sizeof dir, "%s/sdxl", tmpdir);
    mkdir(dir, 0755);
    for (int c = 0; c < 2; c++) {
        const char *key;
        json_t *v;
        json_object_foreach(json_object_get(names, comps[c]), key, v)
            push(&x, key, FS_DTYPE_F16, json_array_get(v, 1), 1);
        snprintf(path, sizeof path, "%s/%s", dir, comps[c]);
        mkdir(path, 0755);
        snprintf(path, sizeof path, "%s/%s/model.fp16.safetensors", dir, comps[c]);
        write_entries(path, &x);
        snprintf(path, sizeof path, "%s/%s/config.json", dir, comps[c]);
        write_text(path, c ? te2_config : te_config);
        check_sdxl(dir, c, FS_CLIP_LAYOUT_DIFFUSERS, c ? "sparse diffusers folder, bigG"
                                                       : "sparse diffusers folder, CLIP-L");
    }
    json_decref(names);
}

/* ---------------------------------------------------------------- strings */

/* ids of text in `style`, padded with empty windows to `chunks` */
static int32_t *ids_of(const fs_tokenizer *tok, fs_tok_style style, const char *text, int chunks) {
    int32_t *ids = NULL;
    int n = 0;
    fs_error err = {0};
    CHECK(fs_tokenize_chunks(tok, style, text, &ids, &n, &err) == FS_OK, "%s", err.msg);
    CHECK(n <= chunks, "%d chunks", n);
    ids = realloc(ids, (size_t)chunks * T * sizeof(int32_t));
    for (int c = n; c < chunks; c++)
        CHECK(fs_tokenize_window(tok, style, "", ids + (size_t)c * T, &err) == FS_OK, "%s", err.msg);
    return ids;
}

static void test_strings(void) {
    fs_tokenizer *tok = NULL;
    fs_error err = {0};
    if (fs_tokenizer_load_default(&tok, &err) != FS_OK) {
        printf("  strings: no tokenizer (%s): skipped\n", err.msg);
        return;
    }
    fs_clip_config cl = {.vocab = 49408, .positions = 77, .width = 64, .layers = 2, .heads = 1,
                         .mlp = 64, .act = FS_CLIP_QUICK_GELU, .eps = 1e-5f};
    fs_clip_config cg = cl;
    cg.act = FS_CLIP_GELU;
    cg.projection = 32;
    fs_clip *l = NULL, *g = NULL;
    CHECK(fs_clip_create_random(&cl, 1, &l, &err) == FS_OK, "%s", err.msg);
    CHECK(fs_clip_create_random(&cg, 2, &g, &err) == FS_OK, "%s", err.msg);
    if (!l || !g) { fs_clip_free(l); fs_clip_free(g); fs_tokenizer_free(tok); return; }
    const fs_sdxl_sizes sz = {1024, 1024, 0, 0, 1024, 1024};
    char longp[2000] = "";
    for (int i = 0; i < 90; i++) strcat(longp, i % 7 ? "word " : "lantern, ");
    const struct { const char *prompt, *neg; int chunks; } cases[] = {
        {"a photo of a cat", NULL, 1},
        {"a photo of a cat", "", 1},
        {"a photo of a cat", "blurry, low quality", 1},
        {"", "ugly", 1},
        {longp, "blurry", 2},
        {"short", longp, 2},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        float *ctx = NULL, *y = NULL;
        int k = 0;
        fs_code rc = fs_sdxl_condition_text(l, g, tok, tok, cases[i].prompt, cases[i].neg, &sz,
                                            &ctx, &y, &k, &err);
        CHECK(rc == FS_OK && k == cases[i].chunks, "case %zu: %s, %d chunks", i, err.msg, k);
        if (rc) continue;
        int has_neg = cases[i].neg && *cases[i].neg;
        int32_t *pl = ids_of(tok, FS_TOK_CLIP_L, cases[i].prompt, k);
        int32_t *pg = ids_of(tok, FS_TOK_OPENCLIP, cases[i].prompt, k);
        int32_t *nl = has_neg ? ids_of(tok, FS_TOK_CLIP_L, cases[i].neg, k) : NULL;
        int32_t *ng = has_neg ? ids_of(tok, FS_TOK_OPENCLIP, cases[i].neg, k) : NULL;
        size_t cn = fs_sdxl_context_floats(l, g, k), yn = fs_sdxl_y_floats(g);
        float *ctx2 = malloc(2 * cn * sizeof(float)), *y2 = malloc(2 * yn * sizeof(float));
        fs_sdxl_prompt_ids p = {k, pl, pg}, n = {k, nl, ng};
        CHECK(fs_sdxl_condition(l, g, &p, has_neg ? &n : NULL, &sz, ctx2, y2, &err) == FS_OK,
              "%s", err.msg);
        CHECK(!memcmp(ctx, ctx2, 2 * cn * 4) && !memcmp(y, y2, 2 * yn * 4),
              "case %zu: strings and ids give other bits", i);
        int zero = 1;
        for (size_t j = 0; j < cn; j++) zero &= ctx[j] == 0.0f;
        CHECK(zero == !has_neg, "case %zu: uncond zero %d, negative %d", i, zero, has_neg);
        if (i == 0) {
            /* the id windows are what the encoders saw: BOS, ..., EOS, pad */
            CHECK(pl[0] == FS_TOK_BOS && pg[0] == FS_TOK_BOS && pl[T - 1] == FS_TOK_EOS &&
                  pg[T - 1] == 0, "windows %d %d %d %d", pl[0], pg[0], pl[T - 1], pg[T - 1]);
        }
        free(pl); free(pg); free(nl); free(ng); free(ctx2); free(y2);
        fs_free(ctx);
        fs_free(y);
    }
    float *ctx = NULL, *y = NULL;
    int k = 0;
    CHECK(fs_sdxl_condition_text(l, g, tok, tok, NULL, NULL, &sz, &ctx, &y, &k, &err) ==
          FS_ERR_INVALID && !ctx && !y, "%s", err.msg);
    printf("  strings: %zu prompts through the tokenizer match the id path\n",
           sizeof cases / sizeof cases[0]);
    fs_clip_free(l);
    fs_clip_free(g);
    fs_tokenizer_free(tok);
}

int main(void) {
    const char *env = getenv("FS_TEST_DATA");
    snprintf(data_dir, sizeof data_dir, "%s/text", env ? env : "tests/data");
    golden g;
    memset(&g, 0, sizeof g);
    if (load_golden(&g)) {
        printf("test_text_encoders: no golden data in %s: skipped\n", data_dir);
        return 77;
    }
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/fs_text_XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 1; }
    /* one thread except where threads are the point: on a busy machine every
     * parallel region of these tiny models waits for a descheduled thread */
    fs_threads_init(1);
    double t0 = fs_now();
    test_golden(&g);
    double t1 = fs_now();
    test_condition(&g);
    test_errors();
    double t2 = fs_now();
    test_sparse();
    double t3 = fs_now();
    test_strings();
    printf("  times: golden %.2f s, conditioning and errors %.2f s, sparse %.2f s, strings %.2f s\n",
           t1 - t0, t2 - t1, t3 - t2, fs_now() - t3);
    nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    for (int e = 0; e < 2; e++) { free(g.hidden[e]); free(g.pooled[e]); }
    return check_report("test_text_encoders");
}
