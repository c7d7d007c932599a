/* text/clip_load.c: a text encoder's configuration and weights. The binding
 * table lists every tensor under its HF name (text_model.encoder.layers.N.
 * self_attn.q_proj.weight, ...) with the file's name, shape and any layout
 * conversion: in an SGM single file encoder 0 keeps HF names under
 * conditioner.embedders.0.transformer., while encoder 1 has OpenCLIP's
 * (conditioner.embedders.1.model.transformer.resblocks.N.attn.in_proj_weight
 * holding q, k and v stacked, q first; text_projection stored as P for
 * x @ P, where HF stores P^T as a Linear weight). Binding reads the header
 * only; opening, binding, loading and random weights are io's model core. */
#include <jansson.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "text/clip_internal.h"

static const char *const weight_files[] = {"model.safetensors", "model.fp16.safetensors", NULL};
static const fs_model_kind clip_kind[2] = {
    {.label = "CLIP-L text encoder", .subfolder = "text_encoder", .files = weight_files,
     .sgm_prefix = "conditioner.embedders.0.transformer.",
     .probe = "text_model.embeddings.token_embedding.weight"},
    {.label = "OpenCLIP-bigG text encoder", .subfolder = "text_encoder_2", .files = weight_files,
     .sgm_prefix = "conditioner.embedders.1.model.",
     .probe = "text_model.embeddings.token_embedding.weight"},
};


fs_clip_config fs_clip_config_sdxl(int which) {
    fs_clip_config c = {.vocab = 49408, .positions = 77, .eps = 1e-5f};
    if (which == 0) {
        c.width = 768; c.layers = 12; c.heads = 12; c.mlp = 3072;
        c.act = FS_CLIP_QUICK_GELU;
    } else {
        c.width = 1280; c.layers = 32; c.heads = 20; c.mlp = 5120;
        c.act = FS_CLIP_GELU; c.projection = 1280;
    }
    return c;
}

static fs_code config_check(const fs_clip_config *c, const char *where, fs_error *err) {
    if (c->vocab < 1 || c->positions < 1 || c->width < 1 || c->layers < 1 || c->mlp < 1 ||
        c->projection < 0)
        return fs_fail(err, FS_ERR_INVALID, "%s: text encoder config: vocab %d, positions %d, "
                       "width %d, layers %d, mlp %d, projection %d must be positive", where,
                       c->vocab, c->positions, c->width, c->layers, c->mlp, c->projection);
    if (c->heads < 1 || c->width % c->heads)
        return fs_fail(err, FS_ERR_INVALID, "%s: text encoder config: %d heads do not divide "
                       "width %d", where, c->heads, c->width);
    if (c->act != FS_CLIP_QUICK_GELU && c->act != FS_CLIP_GELU)
        return fs_fail(err, FS_ERR_INVALID, "%s: text encoder config: activation %d", where,
                       (int)c->act);
    if (!(c->eps > 0)) return fs_fail(err, FS_ERR_INVALID, "%s: LayerNorm eps must be > 0", where);
    return FS_OK;
}

/* ---------------------------------------------------------------- the table */

/* Described to the core's table builder (io.h); each slot's file name is
 * recorded beside it (the builder's file_prefix adds an SGM file's prefix). */
static void add_hf(fs_wtable *b, float **dst, int64_t d0, int64_t d1, const char *name) {
    fs_wtable_add(b, dst, FS_WSLOT_PLAIN, d1 ? 2 : 1, (int64_t[]){d0, d1}, "%s", name);
}

static void add_linear_hf(fs_wtable *b, fs_clip_linear *l, int in, int out, const char *p) {
    *l = (fs_clip_linear){.in = in, .out = out};
    fs_wtable_pair(b, &l->w, &l->b, FS_WSLOT_PLAIN, 2, (int64_t[]){out, in}, p);
}

static void add_norm_hf(fs_wtable *b, fs_clip_norm *n, int c, const char *p) {
    *n = (fs_clip_norm){.c = c};
    fs_wtable_pair(b, &n->gamma, &n->beta, FS_WSLOT_PLAIN, 1, (int64_t[]){c}, p);
}

/* HF internal name, OpenCLIP file name (SGM encoder 1). */
static void add_oc(fs_wtable *b, float **dst, int64_t d0, int64_t d1, const char *hf,
                   const char *oc) {
    fs_wtable_add_from(b, dst, FS_WSLOT_PLAIN, 2, (int64_t[]){d0, d1}, hf, oc, 0, 0);
}

static void add_linear_oc(fs_wtable *b, fs_clip_linear *l, int in, int out, const char *hf,
                          const char *oc) {
    *l = (fs_clip_linear){.in = in, .out = out};
    fs_wtable_pair_from(b, &l->w, &l->b, 2, (int64_t[]){out, in}, hf, oc);
}

static void add_norm_oc(fs_wtable *b, fs_clip_norm *n, int c, const char *hf, const char *oc) {
    *n = (fs_clip_norm){.c = c};
    fs_wtable_pair_from(b, &n->gamma, &n->beta, 1, (int64_t[]){c}, hf, oc);
}

static void free_slots(fs_clip *m) {
    free(m->w.layers);
    free(m->slots);
    memset(&m->w, 0, sizeof m->w);
    m->slots = NULL;
    m->nslots = 0;
}

/* The table for m->config in module order; with files, also where each
 * slot is in a file of the given layout. */
static fs_code build_slots(fs_clip *m, int sgm, fs_wfile **files, fs_error *err) {
    const fs_clip_config *c = &m->config;
    fs_code rc = config_check(c, clip_kind[m->which].label, err);
    if (rc) return rc;
    free_slots(m);
    m->w.layers = calloc((size_t)c->layers, sizeof *m->w.layers);
    if (!m->w.layers) return fs_fail(err, FS_ERR_NOMEM, "text encoder: out of memory");
    fs_wtable b = {.model = "text encoder", .err = err, .files_on = files != NULL,
                   .file_prefix = sgm ? clip_kind[m->which].sgm_prefix : NULL};
    const int C = c->width, oc = sgm && m->which == 1;
    fs_clip_weights *w = &m->w;
    char p[64], q[160], o[160];
    if (oc) {
        add_oc(&b, &w->token_embedding, c->vocab, C, "text_model.embeddings.token_embedding.weight",
               "token_embedding.weight");
        add_oc(&b, &w->position_embedding, c->positions, C,
               "text_model.embeddings.position_embedding.weight", "positional_embedding");
    } else {
        add_hf(&b, &w->token_embedding, c->vocab, C, "text_model.embeddings.token_embedding.weight");
        add_hf(&b, &w->position_embedding, c->positions, C,
               "text_model.embeddings.position_embedding.weight");
    }
    for (int l = 0; l < c->layers; l++) {
        fs_clip_layer *L = &w->layers[l];
        snprintf(p, sizeof p, "text_model.encoder.layers.%d", l);
        if (!oc) {
            snprintf(q, sizeof q, "%s.self_attn.q_proj", p); add_linear_hf(&b, &L->q, C, C, q);
            snprintf(q, sizeof q, "%s.self_attn.k_proj", p); add_linear_hf(&b, &L->k, C, C, q);
            snprintf(q, sizeof q, "%s.self_attn.v_proj", p); add_linear_hf(&b, &L->v, C, C, q);
            snprintf(q, sizeof q, "%s.self_attn.out_proj", p); add_linear_hf(&b, &L->out, C, C, q);
            snprintf(q, sizeof q, "%s.layer_norm1", p); add_norm_hf(&b, &L->ln1, C, q);
            snprintf(q, sizeof q, "%s.mlp.fc1", p); add_linear_hf(&b, &L->fc1, C, c->mlp, q);
            snprintf(q, sizeof q, "%s.mlp.fc2", p); add_linear_hf(&b, &L->fc2, c->mlp, C, q);
            snprintf(q, sizeof q, "%s.layer_norm2", p); add_norm_hf(&b, &L->ln2, C, q);
            continue;
        }
        /* OpenCLIP: resblocks.N.{ln_1, attn.in_proj_*, attn.out_proj, ln_2, mlp.c_fc, mlp.c_proj} */
        char r[96];
        snprintf(r, sizeof r, "transformer.resblocks.%d", l);
        snprintf(q, sizeof q, "%s.layer_norm1", p); snprintf(o, sizeof o, "%s.ln_1", r);
        add_norm_oc(&b, &L->ln1, C, q, o);
        fs_clip_linear *qkv[3] = {&L->q, &L->k, &L->v};
        static const char part[3] = {'q', 'k', 'v'};
        for (int j = 0; j < 3; j++) {
            qkv[j]->in = qkv[j]->out = C;
            snprintf(q, sizeof q, "%s.self_attn.%c_proj.weight", p, part[j]);
            snprintf(o, sizeof o, "%s.attn.in_proj_weight", r);
            fs_wtable_add_from(&b, &qkv[j]->w, FS_WSLOT_PLAIN, 2, (int64_t[]){C, C}, q, o,
                               (int64_t)j * C, 3 * (int64_t)C);
            snprintf(q, sizeof q, "%s.self_attn.%c_proj.bias", p, part[j]);
            snprintf(o, sizeof o, "%s.attn.in_proj_bias", r);
            fs_wtable_add_from(&b, &qkv[j]->b, FS_WSLOT_PLAIN, 1, (int64_t[]){C}, q, o,
                               (int64_t)j * C, 3 * (int64_t)C);
        }
        snprintf(q, sizeof q, "%s.self_attn.out_proj", p); snprintf(o, sizeof o, "%s.attn.out_proj", r);
        add_linear_oc(&b, &L->out, C, C, q, o);
        snprintf(q, sizeof q, "%s.layer_norm2", p); snprintf(o, sizeof o, "%s.ln_2", r);
        add_norm_oc(&b, &L->ln2, C, q, o);
        snprintf(q, sizeof q, "%s.mlp.fc1", p); snprintf(o, sizeof o, "%s.mlp.c_fc", r);
        add_linear_oc(&b, &L->fc1, C, c->mlp, q, o);
        snprintf(q, sizeof q, "%s.mlp.fc2", p); snprintf(o, sizeof o, "%s.mlp.c_proj", r);
        add_linear_oc(&b, &L->fc2, c->mlp, C, q, o);
    }
    if (oc) add_norm_oc(&b, &w->final_ln, C, "text_model.final_layer_norm", "ln_final");
    else add_norm_hf(&b, &w->final_ln, C, "text_model.final_layer_norm");
    if (c->projection) {
        w->projection.in = C;
        w->projection.out = c->projection;
        if (oc) /* P [width][projection] for x @ P: transposed into the Linear weight */
            fs_wtable_add_from(&b, &w->projection.w, FS_WSLOT_TRANSPOSE, 2,
                               (int64_t[]){C, c->projection}, "text_projection.weight",
                               "text_projection", 0, 0);
        else
            add_hf(&b, &w->projection.w, c->projection, C, "text_projection.weight");
    }
    rc = fs_wtable_finish(&b, &m->slots, &m->nslots, files);
    if (rc) free_slots(m);
    return rc;
}

/* ---------------------------------------------------------------- config.json */

/* HF CLIPTextConfig. *projection_known = 0 when the file does not say
 * whether the model has a text_projection (no "architectures"). */
static fs_code config_from_json(const char *path, fs_clip_config *c, int *projection_known,
                                fs_error *err) {
    fs_json_file f;
    fs_code rc = fs_json_open(&f, path, err);
    if (rc) return rc;
    json_t *root = f.root;
    memset(c, 0, sizeof *c);
    static const struct { const char *key; int def; size_t at; } ints[] = {
        {"vocab_size", 49408, offsetof(fs_clip_config, vocab)},
        {"max_position_embeddings", 77, offsetof(fs_clip_config, positions)},
        {"hidden_size", -1, offsetof(fs_clip_config, width)},
        {"num_hidden_layers", -1, offsetof(fs_clip_config, layers)},
        {"num_attention_heads", -1, offsetof(fs_clip_config, heads)},
        {"intermediate_size", -1, offsetof(fs_clip_config, mlp)},
        {"projection_dim", 0, offsetof(fs_clip_config, projection)},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0] && !rc; i++)
        rc = fs_json_int(&f, ints[i].key, ints[i].def, 0, 1 << 24, (int *)((char *)c + ints[i].at));
    if (!rc) {
        json_t *act = json_object_get(root, "hidden_act");
        const char *a = json_is_string(act) ? json_string_value(act) : act ? NULL : "quick_gelu";
        if (a && !strcmp(a, "quick_gelu")) c->act = FS_CLIP_QUICK_GELU;
        else if (a && !strcmp(a, "gelu")) c->act = FS_CLIP_GELU;
        else rc = fs_fail(err, FS_ERR_UNSUPPORTED, "%s: key 'hidden_act' is %s; \"quick_gelu\" "
                          "and \"gelu\" are supported", path, a ? a : "not a string");
    }
    if (!rc) {
        json_t *eps = json_object_get(root, "layer_norm_eps");
        c->eps = 1e-5f;
        if (eps && !json_is_null(eps)) {
            if (!json_is_number(eps) || !(json_number_value(eps) > 0))
                rc = fs_fail(err, FS_ERR_FORMAT, "%s: key 'layer_norm_eps': expected a positive "
                             "number", path);
            else c->eps = (float)json_number_value(eps);
        }
    }
    *projection_known = 0;
    json_t *arch = json_object_get(root, "architectures");
    if (!rc && json_is_array(arch) && json_is_string(json_array_get(arch, 0))) {
        const char *a = json_string_value(json_array_get(arch, 0));
        if (!strcmp(a, "CLIPTextModel")) {
            c->projection = 0;
            *projection_known = 1;
        } else if (!strcmp(a, "CLIPTextModelWithProjection")) {
            *projection_known = 1;
            if (c->projection < 1)
                rc = fs_fail(err, FS_ERR_FORMAT, "%s: CLIPTextModelWithProjection without a "
                             "positive 'projection_dim'", path);
        } else {
            rc = fs_fail(err, FS_ERR_UNSUPPORTED, "%s: architecture \"%s\" (CLIPTextModel and "
                         "CLIPTextModelWithProjection are supported)", path, a);
        }
    }
    fs_json_close(&f);
    return rc;
}

/* ---------------------------------------------------------------- SGM shapes */

static const fs_st_tensor *find_2d(const fs_safetensors *st, const char *prefix,
                                   const char *name) {
    char full[320];
    snprintf(full, sizeof full, "%s%s", prefix, name);
    const fs_st_tensor *t = fs_safetensors_find(st, full);
    return t && t->ndim == 2 ? t : NULL;
}

/* The config of encoder `which` in an SGM file: sizes from the embedding,
 * MLP and projection shapes, layers by counting, heads = width / 64 (one
 * head when narrower: tiny test models), the activation of the model. */
static fs_code config_infer(const fs_safetensors *st, int which, fs_clip_config *c,
                            fs_error *err) {
    const char *pre = clip_kind[which].sgm_prefix, *path = fs_safetensors_path(st);
    const int oc = which == 1;
    const char *tok = oc ? "token_embedding.weight" : "text_model.embeddings.token_embedding.weight";
    const char *pos = oc ? "positional_embedding" : "text_model.embeddings.position_embedding.weight";
    const char *fc1 = oc ? "transformer.resblocks.%d.mlp.c_fc.weight"
                         : "text_model.encoder.layers.%d.mlp.fc1.weight";
    const fs_st_tensor *t, *p, *f;
    char name[160];
    snprintf(name, sizeof name, fc1, 0);
    if (!(t = find_2d(st, pre, tok)) || !(p = find_2d(st, pre, pos)) || !(f = find_2d(st, pre, name)))
        return fs_fail(err, FS_ERR_FORMAT, "%s: cannot infer the %s's configuration: '%s%s', "
                       "'%s%s' or '%s%s' is missing or not 2-D", path, clip_kind[which].label,
                       pre, tok, pre, pos, pre, name);
    memset(c, 0, sizeof *c);
    c->vocab = (int)t->shape[0];
    c->width = (int)t->shape[1];
    c->positions = (int)p->shape[0];
    c->mlp = (int)f->shape[0];
    for (;;) {
        snprintf(name, sizeof name, fc1, c->layers);
        if (!find_2d(st, pre, name)) break;
        c->layers++;
    }
    if (c->width > 64 && c->width % 64)
        return fs_fail(err, FS_ERR_UNSUPPORTED, "%s: the %s is %d wide, not a multiple of the "
                       "head size 64", path, clip_kind[which].label, c->width);
    c->heads = c->width <= 64 ? 1 : c->width / 64;
    c->act = oc ? FS_CLIP_GELU : FS_CLIP_QUICK_GELU;
    c->eps = 1e-5f;
    if (oc) {
        const fs_st_tensor *pj = find_2d(st, pre, "text_projection");
        if (!pj) return fs_fail(err, FS_ERR_FORMAT, "%s: '%stext_projection' is missing or not "
                                "2-D", path, pre);
        c->projection = (int)pj->shape[1];
    }
    fs_code rc = config_check(c, path, err);
    if (rc) fs_error_prefix(err, "inferred from shapes: ");
    return rc;
}

/* ---------------------------------------------------------------- open */

fs_code fs_clip_open(const char *path, int which, fs_clip **out, fs_error *err) {
    *out = NULL;
    if (which != 0 && which != 1)
        return fs_fail(err, FS_ERR_INVALID, "text encoder %d: SDXL has encoders 0 and 1", which);
    fs_clip *m = calloc(1, sizeof *m);
    if (!m) return fs_fail(err, FS_ERR_NOMEM, "text encoder: out of memory");
    m->which = which;
    int projection_known = 1;
    fs_model_file f;
    fs_code rc = fs_model_open(path, &clip_kind[which], &f, err);
    m->st = f.st;
    if (!rc) rc = f.sgm ? config_infer(m->st, which, &m->config, err)
                        : config_from_json(f.config, &m->config, &projection_known, err);
    if (!rc && !projection_known) {
        const fs_st_tensor *t = fs_safetensors_find(m->st, "text_projection.weight");
        m->config.projection = t && t->ndim == 2 ? (int)t->shape[0] : 0;
    }
    fs_wfile *files = NULL;
    if (!rc) rc = build_slots(m, f.sgm, &files, err);
    /* position_ids (HF) and logit_scale (OpenCLIP) are no weights of the encoder */
    char pos_ids[200], logit[200];
    snprintf(pos_ids, sizeof pos_ids, "%stext_model.embeddings.position_ids",
             f.sgm ? clip_kind[0].sgm_prefix : "");
    snprintf(logit, sizeof logit, "%slogit_scale", f.sgm ? clip_kind[1].sgm_prefix : "");
    const char *const ignore[] = {pos_ids, logit, NULL};
    fs_model_stats stats;
    if (!rc) rc = fs_model_bind(m->slots, m->nslots, &f, files, ignore, &clip_kind[which], &stats,
                                err);
    free(files);
    if (rc) { fs_clip_free(m); return rc; }
    FS_MODEL_STATS_TO(&m->info, &stats);
    m->info.config = m->config;
    *out = m;
    return FS_OK;
}

fs_code fs_clip_load_weights(fs_clip *m, fs_error *err) {
    return fs_model_load(m->slots, m->nslots, &m->st, &m->block, NULL, clip_kind[m->which].label,
                         m->info.weights_path, err);
}

fs_code fs_clip_create_random(const fs_clip_config *cfg, uint64_t seed, fs_clip **out,
                              fs_error *err) {
    *out = NULL;
    fs_clip *m = calloc(1, sizeof *m);
    if (!m) return fs_fail(err, FS_ERR_NOMEM, "text encoder: out of memory");
    m->config = *cfg;
    m->which = cfg->projection ? 1 : 0;
    fs_model_stats stats;
    fs_code rc = build_slots(m, 0, NULL, err);
    if (!rc) rc = fs_model_random(m->slots, m->nslots, seed, &m->block, &stats, "text encoder",
                                  err);
    if (rc) { fs_clip_free(m); return rc; }
    FS_MODEL_STATS_TO(&m->info, &stats);
    m->info.config = m->config;
    *out = m;
    return FS_OK;
}

/* ---------------------------------------------------------------- lifetime */

const fs_clip_info *fs_clip_get_info(const fs_clip *m) { return &m->info; }
size_t fs_clip_load_scratch(const fs_clip *m) { return fs_wslots_scratch_bytes(m->slots, m->nslots); }

void fs_clip_free(fs_clip *m) {
    if (!m) return;
    fs_model_release(&m->slots, &m->nslots, &m->block, &m->st);
    free_slots(m);
    free(m);
}

fs_code fs_clip_round_weights(fs_clip *m, fs_dtype dt, fs_error *err) {
    return fs_model_round(m->slots, m->nslots, m->block, dt, "text encoder", err);
}
