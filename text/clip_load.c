/* text/clip_load.c: a text encoder's configuration and weights. The binding
 * table lists every tensor under its HF name (text_model.encoder.layers.N.
 * self_attn.q_proj.weight, ...) with the file's name, shape and any layout
 * conversion: in an SGM single file encoder 0 keeps HF names under
 * conditioner.embedders.0.transformer., while encoder 1 has OpenCLIP's
 * (conditioner.embedders.1.model.transformer.resblocks.N.attn.in_proj_weight
 * holding q, k and v stacked, q first; text_projection stored as P for
 * x @ P, where HF stores P^T as a Linear weight). Binding reads the header
 * only; loading converts through io's weight tables. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "text/clip_internal.h"

static const char *const sgm_prefix[2] = {"conditioner.embedders.0.transformer.",
                                          "conditioner.embedders.1.model."};
static const char *const subfolder[2] = {"text_encoder", "text_encoder_2"};
static const char *const model_name[2] = {"CLIP-L text encoder", "OpenCLIP-bigG text encoder"};

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

/* Where a slot's values are in the file being bound (parallel to slots). */
typedef struct { char name[200]; int64_t row0, rows; } file_src;

typedef struct {
    fs_clip *m;
    file_src *src;        /* NULL when only the table is wanted */
    size_t cap;
    int sgm;
    fs_code rc;
    fs_error *err;
} builder;

/* Adds slot `internal` (shape as in the file, 1-D or 2-D) reading file
 * tensor `file` (rows [row0, row0 + shape[0]) of a tensor of `rows` rows
 * when rows > 0). */
static void add(builder *b, float **dst, int kind, int64_t d0, int64_t d1, const char *internal,
                const char *file, int64_t row0, int64_t rows) {
    if (b->rc) return;
    fs_clip *m = b->m;
    if (m->nslots == b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 256;
        fs_wslot *s = realloc(m->slots, cap * sizeof *s);
        file_src *f = b->src ? realloc(b->src, cap * sizeof *f) : NULL;
        if (s) m->slots = s;
        if (f) b->src = f;
        if (!s || (b->src && !f)) {
            b->rc = fs_fail(b->err, FS_ERR_NOMEM, "text encoder: out of memory for slots");
            return;
        }
        b->cap = cap;
    }
    fs_wslot *s = &m->slots[m->nslots];
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "%s", internal);
    s->ndim = d1 ? 2 : 1;
    s->shape[0] = d0;
    s->shape[1] = d1;
    s->dst = dst;
    s->kind = kind;
    if (b->src) {
        file_src *f = &b->src[m->nslots];
        snprintf(f->name, sizeof f->name, "%s%s", b->sgm ? sgm_prefix[m->which] : "", file);
        f->row0 = row0;
        f->rows = rows;
    }
    m->nslots++;
}

/* An HF-named slot whose file name is the same (diffusers; SGM encoder 0). */
static void add_hf(builder *b, float **dst, int64_t d0, int64_t d1, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void add_hf(builder *b, float **dst, int64_t d0, int64_t d1, const char *fmt, ...) {
    char name[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    add(b, dst, FS_WSLOT_PLAIN, d0, d1, name, name, 0, 0);
}

static void add_linear_hf(builder *b, fs_clip_linear *l, int in, int out, const char *p) {
    l->in = in;
    l->out = out;
    add_hf(b, &l->w, out, in, "%s.weight", p);
    add_hf(b, &l->b, out, 0, "%s.bias", p);
}

static void add_norm_hf(builder *b, fs_clip_norm *n, int c, const char *p) {
    n->c = c;
    add_hf(b, &n->gamma, c, 0, "%s.weight", p);
    add_hf(b, &n->beta, c, 0, "%s.bias", p);
}

/* HF internal name, OpenCLIP file name (SGM encoder 1). */
static void add_oc(builder *b, float **dst, int64_t d0, int64_t d1, const char *hf,
                   const char *oc) {
    add(b, dst, FS_WSLOT_PLAIN, d0, d1, hf, oc, 0, 0);
}

static void add_linear_oc(builder *b, fs_clip_linear *l, int in, int out, const char *hf,
                          const char *oc) {
    char h[160], o[160];
    l->in = in;
    l->out = out;
    snprintf(h, sizeof h, "%s.weight", hf); snprintf(o, sizeof o, "%s.weight", oc);
    add_oc(b, &l->w, out, in, h, o);
    snprintf(h, sizeof h, "%s.bias", hf); snprintf(o, sizeof o, "%s.bias", oc);
    add_oc(b, &l->b, out, 0, h, o);
}

static void add_norm_oc(builder *b, fs_clip_norm *n, int c, const char *hf, const char *oc) {
    char h[160], o[160];
    n->c = c;
    snprintf(h, sizeof h, "%s.weight", hf); snprintf(o, sizeof o, "%s.weight", oc);
    add_oc(b, &n->gamma, c, 0, h, o);
    snprintf(h, sizeof h, "%s.bias", hf); snprintf(o, sizeof o, "%s.bias", oc);
    add_oc(b, &n->beta, c, 0, h, o);
}

static void free_slots(fs_clip *m) {
    free(m->w.layers);
    free(m->slots);
    memset(&m->w, 0, sizeof m->w);
    m->slots = NULL;
    m->nslots = 0;
}

/* The table for m->config in module order; with src, also where each slot
 * is in a file of the given layout. */
static fs_code build_slots(fs_clip *m, int sgm, file_src **src, fs_error *err) {
    const fs_clip_config *c = &m->config;
    fs_code rc = config_check(c, model_name[m->which], err);
    if (rc) return rc;
    free_slots(m);
    m->w.layers = calloc((size_t)c->layers, sizeof *m->w.layers);
    if (!m->w.layers) return fs_fail(err, FS_ERR_NOMEM, "text encoder: out of memory");
    builder b = {.m = m, .sgm = sgm, .err = err};
    if (src) {
        b.src = malloc(sizeof *b.src);
        if (!b.src) return fs_fail(err, FS_ERR_NOMEM, "text encoder: out of memory");
    }
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
            add(&b, &qkv[j]->w, FS_WSLOT_PLAIN, C, C, q, o, (int64_t)j * C, 3 * (int64_t)C);
            snprintf(q, sizeof q, "%s.self_attn.%c_proj.bias", p, part[j]);
            snprintf(o, sizeof o, "%s.attn.in_proj_bias", r);
            add(&b, &qkv[j]->b, FS_WSLOT_PLAIN, C, 0, q, o, (int64_t)j * C, 3 * (int64_t)C);
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
            add(&b, &w->projection.w, FS_WSLOT_TRANSPOSE, C, c->projection,
                "text_projection.weight", "text_projection", 0, 0);
        else
            add_hf(&b, &w->projection.w, c->projection, C, "text_projection.weight");
    }
    if (b.rc) {
        free(b.src);
        free_slots(m);
        return b.rc;
    }
    if (src) *src = b.src;
    return FS_OK;
}

/* ---------------------------------------------------------------- config.json */

static fs_code json_int(const char *path, json_t *root, const char *key, int def, int *out,
                        fs_error *err) {
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) {
        if (def < 0) return fs_fail(err, FS_ERR_FORMAT, "%s: key '%s' is missing", path, key);
        *out = def;
        return FS_OK;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 1 << 24)
        return fs_fail(err, FS_ERR_FORMAT, "%s: key '%s': expected an integer in [0, %d]", path,
                       key, 1 << 24);
    *out = (int)json_integer_value(v);
    return FS_OK;
}

/* HF CLIPTextConfig. *projection_known = 0 when the file does not say
 * whether the model has a text_projection (no "architectures"). */
static fs_code config_from_json(const char *path, fs_clip_config *c, int *projection_known,
                                fs_error *err) {
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (!root) return fs_fail(err, FS_ERR_FORMAT, "%s: line %d: %s", path, je.line, je.text);
    fs_code rc = FS_OK;
    memset(c, 0, sizeof *c);
    if (!json_is_object(root)) rc = fs_fail(err, FS_ERR_FORMAT, "%s: not a JSON object", path);
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
        rc = json_int(path, root, ints[i].key, ints[i].def, (int *)((char *)c + ints[i].at), err);
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
    json_decref(root);
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
    const char *pre = sgm_prefix[which], *path = fs_safetensors_path(st);
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
                       "'%s%s' or '%s%s' is missing or not 2-D", path, model_name[which], pre, tok,
                       pre, pos, pre, name);
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
                       "head size 64", path, model_name[which], c->width);
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

static int has_prefix_tensor(const fs_safetensors *st, const char *prefix) {
    size_t n = fs_safetensors_count(st), pl = strlen(prefix);
    for (size_t i = 0; i < n; i++)
        if (!strncmp(fs_safetensors_at(st, i)->name, prefix, pl)) return 1;
    return 0;
}

/* Binds every slot (header only) and counts what the file has beyond them. */
static fs_code bind_all(fs_clip *m, int sgm, const file_src *src, fs_error *err) {
    fs_clip_info *info = &m->info;
    const char *label = model_name[m->which];
    for (size_t i = 0; i < m->nslots; i++) {
        fs_wslot *s = &m->slots[i];
        fs_code rc = fs_wslot_bind(s, m->st, src[i].name, src[i].row0, src[i].rows, label, err);
        if (rc) return rc;
        uint64_t n = fs_wslot_numel(s);
        info->params_by_dtype[s->src->dtype] += n;
        info->params += n;
        info->tensors_bound++;
    }
    char pos_ids[200], logit[200];
    snprintf(pos_ids, sizeof pos_ids, "%stext_model.embeddings.position_ids",
             sgm ? sgm_prefix[0] : "");
    snprintf(logit, sizeof logit, "%slogit_scale", sgm ? sgm_prefix[1] : "");
    const char *const ignore[] = {pos_ids, logit, NULL};
    info->tensors_unexpected = fs_wslots_unbound(m->slots, m->nslots, m->st,
                                                 sgm ? sgm_prefix[m->which] : "", ignore,
                                                 info->first_unexpected,
                                                 sizeof info->first_unexpected);
    return FS_OK;
}

fs_code fs_clip_open(const char *path, int which, fs_clip **out, fs_error *err) {
    *out = NULL;
    if (which != 0 && which != 1)
        return fs_fail(err, FS_ERR_INVALID, "text encoder %d: SDXL has encoders 0 and 1", which);
    struct stat sb;
    if (stat(path, &sb) != 0)
        return fs_fail(err, FS_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    fs_clip *m = calloc(1, sizeof *m);
    if (!m) return fs_fail(err, FS_ERR_NOMEM, "text encoder: out of memory");
    m->which = which;
    fs_code rc = FS_OK;
    int sgm = 0, projection_known = 1;
    char config[1100], weights[1100];
    if (S_ISDIR(sb.st_mode)) {
        static const char *const files[] = {"model.safetensors", "model.fp16.safetensors", NULL};
        rc = fs_diffusers_component(path, subfolder[which], files, model_name[which], config,
                                    weights, sizeof config, err);
        if (!rc) rc = config_from_json(config, &m->config, &projection_known, err);
        if (!rc) rc = fs_safetensors_open(weights, &m->st, err);
    } else {
        snprintf(weights, sizeof weights, "%s", path);
        rc = fs_safetensors_open(path, &m->st, err);
        if (!rc && has_prefix_tensor(m->st, sgm_prefix[which])) {
            sgm = 1;
            rc = config_infer(m->st, which, &m->config, err);
        } else if (!rc) {
            /* a diffusers encoder file given directly: config.json beside it */
            const char *slash = strrchr(path, '/');
            int dl = slash ? (int)(slash - path) : 1;
            snprintf(config, sizeof config, "%.*s/config.json", dl, slash ? path : ".");
            if (fs_safetensors_find(m->st, "text_model.embeddings.token_embedding.weight") &&
                fs_is_file(config))
                rc = config_from_json(config, &m->config, &projection_known, err);
            else
                rc = fs_fail(err, FS_ERR_FORMAT, "%s: no %s in this file (no %s* tensors, and not "
                             "a diffusers text encoder file with config.json beside it)", path,
                             model_name[which], sgm_prefix[which]);
        }
    }
    if (!rc && !projection_known) {
        const fs_st_tensor *t = fs_safetensors_find(m->st, "text_projection.weight");
        m->config.projection = t && t->ndim == 2 ? (int)t->shape[0] : 0;
    }
    file_src *src = NULL;
    if (!rc) rc = build_slots(m, sgm, &src, err);
    if (!rc) {
        m->info.layout = sgm ? FS_CLIP_LAYOUT_SGM : FS_CLIP_LAYOUT_DIFFUSERS;
        snprintf(m->info.weights_path, sizeof m->info.weights_path, "%.1023s", weights);
        m->info.config = m->config;
        rc = bind_all(m, sgm, src, err);
    }
    free(src);
    if (rc) { fs_clip_free(m); return rc; }
    *out = m;
    return FS_OK;
}

fs_code fs_clip_load_weights(fs_clip *m, fs_error *err) {
    if (!m->st)
        return fs_fail(err, FS_ERR_INVALID, "text encoder %s: no checkpoint bound to load from",
                       m->info.weights_path);
    fs_code rc = FS_OK;
    if (!m->block &&
        (rc = fs_wslots_alloc(m->slots, m->nslots, model_name[m->which], &m->block, NULL, err)))
        return rc;
    if ((rc = fs_wslots_load(m->slots, m->nslots, m->st, NULL, model_name[m->which], err)))
        return rc;
    for (size_t i = 0; i < m->nslots; i++) m->slots[i].src = NULL;
    fs_safetensors_close(m->st);
    m->st = NULL;
    return FS_OK;
}

/* ---------------------------------------------------------------- random */

/* FNV-1a of the name: each tensor its own stream, whatever else the config has. */
static uint64_t name_stream(const char *s) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

fs_code fs_clip_create_random(const fs_clip_config *cfg, uint64_t seed, fs_clip **out,
                              fs_error *err) {
    *out = NULL;
    fs_clip *m = calloc(1, sizeof *m);
    if (!m) return fs_fail(err, FS_ERR_NOMEM, "text encoder: out of memory");
    m->config = *cfg;
    m->which = cfg->projection ? 1 : 0;
    fs_code rc = build_slots(m, 0, NULL, err);
    if (!rc) rc = fs_wslots_alloc(m->slots, m->nslots, "text encoder", &m->block,
                                  &m->info.params, err);
    if (rc) { fs_clip_free(m); return rc; }
    /* matrices and embeddings N(0, 1/fan_in); LayerNorm gamma 1 + 0.05 N,
     * beta and biases 0.02 N (fs_rng_fill_normal is threaded and exact) */
    for (size_t i = 0; i < m->nslots; i++) {
        const fs_wslot *s = &m->slots[i];
        size_t n = (size_t)fs_wslot_numel(s);
        float *d = *s->dst;
        fs_rng_fill_normal(d, n, seed, name_stream(s->name), 0);
        size_t len = strlen(s->name);
        int norm = strstr(s->name, "norm") != NULL, gamma = len > 7 && !strcmp(s->name + len - 7, ".weight");
        float scale = s->ndim == 2 ? (float)(1.0 / sqrt((double)s->shape[1])) : norm ? 0.05f : 0.02f;
        float shift = s->ndim == 1 && norm && gamma ? 1.0f : 0.0f;
        for (size_t k = 0; k < n; k++) d[k] = d[k] * scale + shift;
    }
    m->info.layout = FS_CLIP_LAYOUT_DIFFUSERS;
    snprintf(m->info.weights_path, sizeof m->info.weights_path, "(random, seed %llu)",
             (unsigned long long)seed);
    m->info.config = m->config;
    m->info.tensors_bound = m->nslots;
    m->info.params_by_dtype[FS_DTYPE_F32] = m->info.params;
    *out = m;
    return FS_OK;
}

/* ---------------------------------------------------------------- lifetime */

const fs_clip_info *fs_clip_get_info(const fs_clip *m) { return &m->info; }

void fs_clip_free(fs_clip *m) {
    if (!m) return;
    fs_free(m->block);
    free_slots(m);
    if (m->st) fs_safetensors_close(m->st);
    free(m);
}

fs_code fs_clip_round_weights(fs_clip *m, fs_dtype dt, fs_error *err) {
    if (!m->block) return fs_fail(err, FS_ERR_INVALID, "text encoder: weights not loaded");
    return fs_wslots_round(m->slots, m->nslots, dt, err);
}
