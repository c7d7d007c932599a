/* vae/load.c: making a VAE's weights: deterministic random ones, or from a
 * checkpoint in either layout. fs_vae_open finds the layout and the config
 * (config.json, or inferred from an SGM file's shapes), then binds every slot
 * of the table (slots.c) by name and shape from the header alone;
 * fs_vae_load_weights converts F32/F16/BF16 to f32 (OIHW -> OHWI for 3x3
 * convolutions) through io.h's weight tables, then closes the file. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "kernels/kernels.h"
#include "vae/vae_internal.h"

#define SGM_PREFIX "first_stage_model."

/* ---------------------------------------------------------------- random */

static uint64_t name_stream(const char *s) {   /* FNV-1a: one stream per tensor */
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

static int ends_with(const char *s, const char *tail) {
    size_t a = strlen(s), b = strlen(tail);
    return a >= b && !strcmp(s + a - b, tail);
}

/* A GroupNorm's parameters: the module name ends in norm, norm1/2,
 * conv_norm_out or group_norm. */
static int is_norm(const char *name) {
    const char *end = strrchr(name, '.'), *start = end;
    if (!end) return 0;
    while (start > name && start[-1] != '.') start--;
    return !strncmp(start, "norm", 4) || !strncmp(start, "conv_norm_out", 13) ||
           !strncmp(start, "group_norm", 10);
}

static fs_code random_piece(void *user, const fs_wslot *s, int64_t r0, int64_t r1, float *tmp,
                            fs_error *err) {
    (void)err;
    const uint64_t seed = *(const uint64_t *)user;
    uint64_t row = fs_wslot_numel(s) / (uint64_t)s->shape[0];
    size_t n = (size_t)((r1 - r0) * (int64_t)row);
    float *out = *s->dst + (size_t)r0 * row;
    float *gen = s->kind == FS_WSLOT_CUSTOM ? tmp : out;
    const uint64_t stream = name_stream(s->name), off = (uint64_t)r0 * row;
    for (size_t i = 0; i < n; i++) gen[i] = fs_rng_normal(seed, stream, off + i);
    float scale, shift = 0;
    if (s->ndim >= 2) scale = (float)(1.0 / sqrt((double)row));
    else if (is_norm(s->name)) {
        scale = 0.05f;
        shift = ends_with(s->name, ".weight") ? 1.0f : 0.0f;
    } else scale = 0.02f;
    for (size_t i = 0; i < n; i++) gen[i] = gen[i] * scale + shift;
    if (s->kind == FS_WSLOT_CUSTOM)
        fs_conv2d_weight_from_oihw(tmp, out, (int)(r1 - r0), (int)s->shape[1], (int)s->shape[2]);
    return FS_OK;
}

fs_code fs_vae_create_random(const fs_vae_config *cfg, uint64_t seed, fs_vae **out,
                             fs_error *err) {
    *out = NULL;
    fs_vae *v = calloc(1, sizeof *v);
    if (!v) return fs_fail(err, FS_ERR_NOMEM, "VAE: out of memory");
    v->config = *cfg;
    fs_code rc = vae_build_slots(v, 0, err);
    if (!rc) rc = fs_wslots_alloc(v->slots, v->nslots, "VAE", &v->block, &v->info.params, err);
    if (!rc) rc = fs_wslots_foreach_piece(v->slots, v->nslots, random_piece, &seed, "VAE", err);
    if (rc) { fs_vae_free(v); return rc; }
    v->info.layout = FS_VAE_LAYOUT_DIFFUSERS;
    snprintf(v->info.weights_path, sizeof v->info.weights_path, "(random, seed %llu)",
             (unsigned long long)seed);
    v->info.config = v->config;
    v->info.tensors_bound = v->nslots;
    v->info.params_by_dtype[FS_DTYPE_F32] = v->info.params;
    *out = v;
    return FS_OK;
}

/* ---------------------------------------------------------------- config.json */

typedef struct { const char *path; json_t *root; fs_error *err; } cfg_file;

static fs_code bad_key(const cfg_file *f, const char *key, const char *want) {
    return fs_fail(f->err, FS_ERR_FORMAT, "%s: key '%s': expected %s", f->path, key, want);
}

static fs_code get_int(const cfg_file *f, const char *key, int def, int lo, int hi, int *out) {
    json_t *v = json_object_get(f->root, key);
    if (!v || json_is_null(v)) {
        if (def < lo) return fs_fail(f->err, FS_ERR_FORMAT, "%s: key '%s' is missing", f->path, key);
        *out = def;
        return FS_OK;
    }
    if (json_is_boolean(v) && lo == 0 && hi == 1) {
        *out = json_is_true(v);
        return FS_OK;
    }
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        char want[64];
        snprintf(want, sizeof want, "an integer in [%d, %d]", lo, hi);
        return bad_key(f, key, want);
    }
    *out = (int)json_integer_value(v);
    return FS_OK;
}

static fs_code get_float(const cfg_file *f, const char *key, float def, float *out) {
    json_t *v = json_object_get(f->root, key);
    if (!v || json_is_null(v)) { *out = def; return FS_OK; }
    if (!json_is_number(v)) return bad_key(f, key, "a number");
    *out = (float)json_number_value(v);
    return FS_OK;
}

/* A list of `levels` copies of `want` when present. */
static fs_code expect_list_of(const cfg_file *f, const char *key, int levels, const char *want) {
    json_t *v = json_object_get(f->root, key);
    if (!v || json_is_null(v)) return FS_OK;
    if (!json_is_array(v) || (int)json_array_size(v) != levels)
        return bad_key(f, key, "one block type per level");
    for (int i = 0; i < levels; i++) {
        json_t *e = json_array_get(v, (size_t)i);
        if (!json_is_string(e) || strcmp(json_string_value(e), want))
            return fs_fail(f->err, FS_ERR_UNSUPPORTED, "%s: key '%s'[%d]: only \"%s\" is supported",
                           f->path, key, i, want);
    }
    return FS_OK;
}

static fs_code config_from_json(const char *path, fs_vae_config *c, fs_error *err) {
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (!root) return fs_fail(err, FS_ERR_FORMAT, "%s:%d:%d: %s", path, je.line, je.column, je.text);
    cfg_file f = {path, root, err};
    fs_code rc = FS_OK;
    *c = fs_vae_config_sdxl();
    json_t *boc = json_object_get(root, "block_out_channels");
    if (!json_is_array(boc) || json_array_size(boc) < 1 || json_array_size(boc) > FS_VAE_MAX_LEVELS)
        rc = fs_fail(err, FS_ERR_UNSUPPORTED, "%s: key 'block_out_channels': expected a list of "
                     "1..%d channel counts", path, FS_VAE_MAX_LEVELS);
    if (!rc) {
        c->levels = (int)json_array_size(boc);
        for (int l = 0; l < c->levels && !rc; l++) {
            json_t *e = json_array_get(boc, (size_t)l);
            if (!json_is_integer(e) || json_integer_value(e) < 1 || json_integer_value(e) > 1 << 16)
                rc = bad_key(&f, "block_out_channels", "positive integers");
            else
                c->channels[l] = (int)json_integer_value(e);
        }
    }
    json_t *act = json_object_get(root, "act_fn");
    if (!rc && act && !json_is_null(act) &&
        (!json_is_string(act) || strcmp(json_string_value(act), "silu")))
        rc = fs_fail(err, FS_ERR_UNSUPPORTED, "%s: key 'act_fn': only \"silu\" is supported", path);
    if (!rc) rc = get_int(&f, "in_channels", 3, 1, 1 << 16, &c->in_channels);
    if (!rc) rc = get_int(&f, "out_channels", 3, 1, 1 << 16, &c->out_channels);
    if (!rc) rc = get_int(&f, "latent_channels", 4, 1, 1 << 16, &c->latent_channels);
    if (!rc) rc = get_int(&f, "layers_per_block", 1, 1, 64, &c->layers_per_block);
    if (!rc) rc = get_int(&f, "norm_num_groups", 32, 1, 1 << 16, &c->groups);
    if (!rc) rc = get_int(&f, "mid_block_add_attention", 1, 0, 1, &c->mid_attention);
    if (!rc) rc = get_int(&f, "use_quant_conv", 1, 0, 1, &c->quant_conv);
    if (!rc) rc = get_int(&f, "use_post_quant_conv", 1, 0, 1, &c->post_quant_conv);
    if (!rc) rc = get_int(&f, "sample_size", 1024, 0, 1 << 20, &c->sample_size);
    /* diffusers' default is SD 1.x's 0.18215; SDXL's file says 0.13025 */
    if (!rc) rc = get_float(&f, "scaling_factor", 0.18215f, &c->scaling_factor);
    if (!rc) rc = get_float(&f, "shift_factor", 0.0f, &c->shift_factor);
    if (!rc) rc = expect_list_of(&f, "down_block_types", c->levels, "DownEncoderBlock2D");
    if (!rc) rc = expect_list_of(&f, "up_block_types", c->levels, "UpDecoderBlock2D");
    json_decref(root);
    if (!rc) {
        rc = vae_config_check(c, err);
        if (rc) fs_error_prefix(err, "%s: ", path);
    }
    return rc;
}

/* ---------------------------------------------------------------- SGM shapes */

static const fs_st_tensor *sgm_find(const fs_safetensors *st, const char *fmt, int a, int b) {
    char name[256];
    snprintf(name, sizeof name, fmt, a, b);
    return fs_safetensors_find(st, name);
}

/* An SGM file has no config: levels and resnets are counted, widths read
 * from shapes; the group count (not in any shape) from __metadata__
 * "norm_num_groups" (default SGM's 32), the scaling factor from
 * "scaling_factor" (default SDXL's 0.13025). */
static fs_code config_infer(const fs_safetensors *st, fs_vae_config *c, fs_error *err) {
    const char *path = fs_safetensors_path(st);
    *c = fs_vae_config_sdxl();
    const fs_st_tensor *ci = sgm_find(st, SGM_PREFIX "encoder.conv_in.weight", 0, 0);
    const fs_st_tensor *dci = sgm_find(st, SGM_PREFIX "decoder.conv_in.weight", 0, 0);
    const fs_st_tensor *dco = sgm_find(st, SGM_PREFIX "decoder.conv_out.weight", 0, 0);
    if (!ci || !dci || !dco || ci->ndim != 4 || dci->ndim != 4 || dco->ndim != 4)
        return fs_fail(err, FS_ERR_FORMAT, "%s: no 4-D " SGM_PREFIX "encoder.conv_in / "
                       "decoder.conv_in / decoder.conv_out weights: not an SGM VAE", path);
    c->in_channels = (int)ci->shape[1];
    c->latent_channels = (int)dci->shape[1];
    c->out_channels = (int)dco->shape[0];
    c->levels = 0;
    while (c->levels < FS_VAE_MAX_LEVELS + 1 &&
           sgm_find(st, SGM_PREFIX "encoder.down.%d.block.0.conv1.weight", c->levels, 0))
        c->levels++;
    if (c->levels < 1 || c->levels > FS_VAE_MAX_LEVELS)
        return fs_fail(err, FS_ERR_UNSUPPORTED, "%s: %d encoder levels (1..%d supported)", path,
                       c->levels, FS_VAE_MAX_LEVELS);
    for (int l = 0; l < c->levels; l++)
        c->channels[l] = (int)sgm_find(st, SGM_PREFIX "encoder.down.%d.block.0.conv1.weight", l, 0)
                             ->shape[0];
    c->layers_per_block = 0;
    while (c->layers_per_block < 64 &&
           sgm_find(st, SGM_PREFIX "encoder.down.%d.block.%d.conv1.weight", 0, c->layers_per_block))
        c->layers_per_block++;
    c->mid_attention = sgm_find(st, SGM_PREFIX "encoder.mid.attn_1.q.weight", 0, 0) != NULL;
    c->quant_conv = sgm_find(st, SGM_PREFIX "quant_conv.weight", 0, 0) != NULL;
    c->post_quant_conv = sgm_find(st, SGM_PREFIX "post_quant_conv.weight", 0, 0) != NULL;
    const char *g = fs_safetensors_meta(st, "norm_num_groups");
    if (g) {
        char *end;
        long v = strtol(g, &end, 10);
        if (*end || v < 1 || v > 1 << 16)
            return fs_fail(err, FS_ERR_FORMAT, "%s: __metadata__ norm_num_groups '%s' is not a "
                           "group count", path, g);
        c->groups = (int)v;
    }
    const char *sf = fs_safetensors_meta(st, "scaling_factor");
    if (sf) {
        char *end;
        double v = strtod(sf, &end);
        if (*end || !(v > 0))
            return fs_fail(err, FS_ERR_FORMAT, "%s: __metadata__ scaling_factor '%s'", path, sf);
        c->scaling_factor = (float)v;
    }
    fs_code rc = vae_config_check(c, err);
    if (rc) fs_error_prefix(err, "%s (inferred from the SGM tensors): ", path);
    return rc;
}

/* ---------------------------------------------------------------- open */

static fs_code bind_slots(fs_vae *v, int sgm, fs_error *err) {
    fs_vae_info *info = &v->info;
    char name[320], mapped[256];
    for (size_t i = 0; i < v->nslots; i++) {
        fs_wslot *s = &v->slots[i];
        if (sgm) {
            if (vae_sgm_name(&v->config, s->name, mapped, sizeof mapped))
                return fs_fail(err, FS_ERR_INVALID, "VAE: no SGM name for '%s'", s->name);
            snprintf(name, sizeof name, SGM_PREFIX "%s", mapped);
        } else if (!fs_safetensors_find(v->st, s->name) &&
                   !vae_old_attention_name(s->name, mapped, sizeof mapped) &&
                   fs_safetensors_find(v->st, mapped)) {
            snprintf(name, sizeof name, "%s", mapped);  /* query/key/value/proj_attn */
        } else {
            snprintf(name, sizeof name, "%s", s->name);
        }
        fs_code rc = fs_wslot_bind(s, v->st, name, 0, 0, "VAE", err);
        if (rc) return rc;
        info->params_by_dtype[s->src->dtype] += s->src->numel;
        info->params += s->src->numel;
        info->tensors_bound++;
    }
    info->tensors_unexpected = fs_wslots_unbound(v->slots, v->nslots, v->st, sgm ? SGM_PREFIX : "",
                                                 NULL, info->first_unexpected,
                                                 sizeof info->first_unexpected);
    return FS_OK;
}

static int has_prefix_tensor(const fs_safetensors *st, const char *prefix) {
    size_t n = fs_safetensors_count(st), pl = strlen(prefix);
    for (size_t i = 0; i < n; i++)
        if (!strncmp(fs_safetensors_at(st, i)->name, prefix, pl)) return 1;
    return 0;
}

/* A diffusers file whose old-style attention is 4-D (very old conversions)
 * binds like an SGM one: the projections' shape decides. */
static int attention_is_4d(const fs_safetensors *st, const char *name) {
    const fs_st_tensor *t = fs_safetensors_find(st, name);
    return t && t->ndim == 4;
}

fs_code fs_vae_open(const char *path, fs_vae **out, fs_error *err) {
    *out = NULL;
    struct stat sb;
    if (stat(path, &sb) != 0)
        return fs_fail(err, FS_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    fs_vae *v = calloc(1, sizeof *v);
    if (!v) return fs_fail(err, FS_ERR_NOMEM, "VAE: out of memory");
    fs_code rc = FS_OK;
    int sgm = 0;
    char config[1100], weights[1100];
    static const char *const files[] = {"diffusion_pytorch_model.safetensors",
                                        "diffusion_pytorch_model.fp16.safetensors", NULL};
    if (S_ISDIR(sb.st_mode)) {
        rc = fs_diffusers_component(path, "vae", files, "VAE", config, weights, sizeof config, err);
        if (!rc) rc = config_from_json(config, &v->config, err);
        if (!rc) rc = fs_safetensors_open(weights, &v->st, err);
    } else {
        snprintf(weights, sizeof weights, "%s", path);
        rc = fs_safetensors_open(path, &v->st, err);
        if (!rc && has_prefix_tensor(v->st, SGM_PREFIX)) {
            sgm = 1;
            rc = config_infer(v->st, &v->config, err);
        } else if (!rc) {
            const char *slash = strrchr(path, '/');
            int dl = slash ? (int)(slash - path) : 1;
            snprintf(config, sizeof config, "%.*s/config.json", dl, slash ? path : ".");
            if (fs_safetensors_find(v->st, "decoder.conv_in.weight") && fs_is_file(config))
                rc = config_from_json(config, &v->config, err);
            else
                rc = fs_fail(err, FS_ERR_FORMAT, "%s: no VAE in this file (no " SGM_PREFIX "* "
                             "tensors, and not a diffusers VAE file with config.json beside it)",
                             path);
        }
    }
    if (!rc) {
        int att4 = sgm;
        if (!sgm && v->config.mid_attention)
            att4 = attention_is_4d(v->st, "encoder.mid_block.attentions.0.to_q.weight") ||
                   attention_is_4d(v->st, "encoder.mid_block.attentions.0.query.weight");
        rc = vae_build_slots(v, att4, err);
    }
    if (!rc) {
        v->info.layout = sgm ? FS_VAE_LAYOUT_SGM : FS_VAE_LAYOUT_DIFFUSERS;
        snprintf(v->info.weights_path, sizeof v->info.weights_path, "%.1023s", weights);
        v->info.config = v->config;
        rc = bind_slots(v, sgm, err);
    }
    if (rc) { fs_vae_free(v); return rc; }
    *out = v;
    return FS_OK;
}

/* ---------------------------------------------------------------- convert */

static void conv_rows(const fs_wslot *s, const float *src, float *dst, int64_t rows) {
    fs_conv2d_weight_from_oihw(src, dst, (int)rows, (int)s->shape[1], (int)s->shape[2]);
}

fs_code fs_vae_load_weights(fs_vae *v, fs_error *err) {
    if (!v->st)
        return fs_fail(err, FS_ERR_INVALID, "VAE %s: no checkpoint bound to load from",
                       v->info.weights_path);
    fs_code rc = FS_OK;
    if (!v->block &&
        (rc = fs_wslots_alloc(v->slots, v->nslots, "VAE", &v->block, NULL, err)))
        return rc;
    if ((rc = fs_wslots_load(v->slots, v->nslots, v->st, conv_rows, "VAE", err))) return rc;
    for (size_t i = 0; i < v->nslots; i++) v->slots[i].src = NULL;
    fs_safetensors_close(v->st);
    v->st = NULL;
    return FS_OK;
}

const fs_vae_info *fs_vae_get_info(const fs_vae *v) { return &v->info; }

void fs_vae_free(fs_vae *v) {
    if (!v) return;
    fs_free(v->block);
    vae_free_slots(v);
    if (v->st) fs_safetensors_close(v->st);
    free(v);
}

fs_code fs_vae_round_weights(fs_vae *v, fs_dtype dt, fs_error *err) {
    if (!v->block) return fs_fail(err, FS_ERR_INVALID, "VAE: weights not loaded");
    return fs_wslots_round(v->slots, v->nslots, dt, err);
}
