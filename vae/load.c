/* vae/load.c: making a VAE's weights: deterministic random ones, or from a
 * checkpoint in either layout, through io's model core. What is the VAE's
 * own: its config (config.json, or inferred from an SGM file's shapes) and
 * its file names (SGM, or diffusers' old attention names; slots.c). The core
 * binds every slot by name and shape from the header alone and loads them
 * (OIHW convolutions to OHWI), then closes the file. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "vae/vae_internal.h"

#define SGM_PREFIX "first_stage_model."

static const fs_model_kind vae_kind = {
    .label = "VAE",
    .subfolder = "vae",
    .files = fs_diffusers_model_files,
    .sgm_prefix = SGM_PREFIX,
    .probe = "decoder.conv_in.weight",
};

fs_code fs_vae_create_random(const fs_vae_config *cfg, uint64_t seed, fs_vae **out,
                             fs_error *err) {
    *out = NULL;
    fs_vae *v = calloc(1, sizeof *v);
    if (!v) return fs_fail(err, FS_ERR_NOMEM, "VAE: out of memory");
    v->config = *cfg;
    fs_model_stats stats;
    fs_code rc = vae_build_slots(v, 0, err);
    if (!rc) rc = fs_model_random(v->slots, v->nslots, seed, &v->block, &stats, "VAE", err);
    if (rc) { fs_vae_free(v); return rc; }
    FS_MODEL_STATS_TO(&v->info, &stats);
    v->info.config = v->config;
    *out = v;
    return FS_OK;
}

/* ---------------------------------------------------------------- config.json */

/* A list of `levels` copies of `want` when present. */
static fs_code expect_list_of(const fs_json_file *f, const char *key, int levels, const char *want) {
    json_t *v = json_object_get(f->root, key);
    if (!v || json_is_null(v)) return FS_OK;
    if (!json_is_array(v) || (int)json_array_size(v) != levels)
        return fs_json_bad_key(f, key, "one block type per level");
    for (int i = 0; i < levels; i++) {
        json_t *e = json_array_get(v, (size_t)i);
        if (!json_is_string(e) || strcmp(json_string_value(e), want))
            return fs_fail(f->err, FS_ERR_UNSUPPORTED, "%s: key '%s'[%d]: only \"%s\" is supported",
                           f->path, key, i, want);
    }
    return FS_OK;
}

static fs_code config_from_json(const char *path, fs_vae_config *c, fs_error *err) {
    fs_json_file f;
    fs_code rc = fs_json_open(&f, path, err);
    if (rc) return rc;
    json_t *root = f.root;
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
                rc = fs_json_bad_key(&f, "block_out_channels", "positive integers");
            else
                c->channels[l] = (int)json_integer_value(e);
        }
    }
    json_t *act = json_object_get(root, "act_fn");
    if (!rc && act && !json_is_null(act) &&
        (!json_is_string(act) || strcmp(json_string_value(act), "silu")))
        rc = fs_fail(err, FS_ERR_UNSUPPORTED, "%s: key 'act_fn': only \"silu\" is supported", path);
    if (!rc) rc = fs_json_int(&f, "in_channels", 3, 1, 1 << 16, &c->in_channels);
    if (!rc) rc = fs_json_int(&f, "out_channels", 3, 1, 1 << 16, &c->out_channels);
    if (!rc) rc = fs_json_int(&f, "latent_channels", 4, 1, 1 << 16, &c->latent_channels);
    if (!rc) rc = fs_json_int(&f, "layers_per_block", 1, 1, 64, &c->layers_per_block);
    if (!rc) rc = fs_json_int(&f, "norm_num_groups", 32, 1, 1 << 16, &c->groups);
    if (!rc) rc = fs_json_int(&f, "mid_block_add_attention", 1, 0, 1, &c->mid_attention);
    if (!rc) rc = fs_json_int(&f, "use_quant_conv", 1, 0, 1, &c->quant_conv);
    if (!rc) rc = fs_json_int(&f, "use_post_quant_conv", 1, 0, 1, &c->post_quant_conv);
    if (!rc) rc = fs_json_int(&f, "sample_size", 1024, 0, 1 << 20, &c->sample_size);
    /* diffusers' default is SD 1.x's 0.18215; SDXL's file says 0.13025 */
    if (!rc) rc = fs_json_float(&f, "scaling_factor", 0.18215f, &c->scaling_factor);
    if (!rc) rc = fs_json_float(&f, "shift_factor", 0.0f, &c->shift_factor);
    if (!rc) rc = expect_list_of(&f, "down_block_types", c->levels, "DownEncoderBlock2D");
    if (!rc) rc = expect_list_of(&f, "up_block_types", c->levels, "UpDecoderBlock2D");
    fs_json_close(&f);
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

/* The file's name of every slot: SGM's (prefix included), or in a
 * diffusers file the old attention names (query, key, value, proj_attn)
 * where the file has those instead. */
static fs_code file_names(const fs_vae *v, int sgm, fs_wfile **out, fs_error *err) {
    fs_wfile *files = calloc(v->nslots ? v->nslots : 1, sizeof *files);
    if (!files) return fs_fail(err, FS_ERR_NOMEM, "VAE: out of memory");
    char mapped[256];
    for (size_t i = 0; i < v->nslots; i++) {
        const char *name = v->slots[i].name;
        if (sgm) {
            if (vae_sgm_name(&v->config, name, mapped, sizeof mapped)) {
                free(files);
                return fs_fail(err, FS_ERR_INVALID, "VAE: no SGM name for '%s'", name);
            }
            snprintf(files[i].name, sizeof files[i].name, SGM_PREFIX "%s", mapped);
        } else if (!fs_safetensors_find(v->st, name) &&
                   !vae_old_attention_name(name, mapped, sizeof mapped) &&
                   fs_safetensors_find(v->st, mapped)) {
            snprintf(files[i].name, sizeof files[i].name, "%s", mapped);
        } else {
            snprintf(files[i].name, sizeof files[i].name, "%s", name);
        }
    }
    *out = files;
    return FS_OK;
}

/* A diffusers file whose old-style attention is 4-D (very old conversions)
 * binds like an SGM one: the projections' shape decides. */
static int attention_is_4d(const fs_safetensors *st, const char *name) {
    const fs_st_tensor *t = fs_safetensors_find(st, name);
    return t && t->ndim == 4;
}

fs_code fs_vae_open(const char *path, fs_vae **out, fs_error *err) {
    *out = NULL;
    fs_vae *v = calloc(1, sizeof *v);
    if (!v) return fs_fail(err, FS_ERR_NOMEM, "VAE: out of memory");
    fs_model_file f;
    fs_code rc = fs_model_open(path, &vae_kind, &f, err);
    v->st = f.st;
    if (!rc) rc = f.sgm ? config_infer(f.st, &v->config, err)
                        : config_from_json(f.config, &v->config, err);
    if (!rc) {
        int att4 = f.sgm;
        if (!f.sgm && v->config.mid_attention)
            att4 = attention_is_4d(v->st, "encoder.mid_block.attentions.0.to_q.weight") ||
                   attention_is_4d(v->st, "encoder.mid_block.attentions.0.query.weight");
        rc = vae_build_slots(v, att4, err);
    }
    fs_wfile *files = NULL;
    if (!rc) rc = file_names(v, f.sgm, &files, err);
    fs_model_stats stats;
    if (!rc) rc = fs_model_bind(v->slots, v->nslots, &f, files, NULL, &vae_kind, &stats, err);
    free(files);
    if (rc) { fs_vae_free(v); return rc; }
    FS_MODEL_STATS_TO(&v->info, &stats);
    v->info.config = v->config;
    *out = v;
    return FS_OK;
}

fs_code fs_vae_load_weights(fs_vae *v, fs_error *err) {
    return fs_model_load(v->slots, v->nslots, &v->st, &v->block, NULL, "VAE",
                         v->info.weights_path, err);
}

const fs_vae_info *fs_vae_get_info(const fs_vae *v) { return &v->info; }
size_t fs_vae_load_scratch(const fs_vae *v) { return fs_wslots_scratch_bytes(v->slots, v->nslots); }

void fs_vae_free(fs_vae *v) {
    if (!v) return;
    fs_model_release(&v->slots, &v->nslots, &v->block, &v->st);
    vae_free_slots(v);
    free(v);
}

fs_code fs_vae_round_weights(fs_vae *v, fs_dtype dt, fs_error *err) {
    return fs_model_round(v->slots, v->nslots, v->block, dt, "VAE", err);
}
