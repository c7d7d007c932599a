/* unet/config.c: a UNet's configuration, read from a diffusers
 * unet/config.json or inferred from the tensor shapes of an SGM single file
 * (which has no config). Both reject what the forward pass does not compute
 * (conv projections, other embeddings, other block types) instead of
 * computing something else silently; every error names the file and the key
 * or tensor. */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "unet/loader.h"

/* ---------------------------------------------------------------- config.json */

/* An int or a list of n ints (one per level); missing -> def for all. */
static fs_code get_per_level(const fs_json_file *f, const char *key, int n, int def, int lo,
                             int out[FS_UNET_MAX_LEVELS]) {
    json_t *v = json_object_get(f->root, key);
    char want[96];
    snprintf(want, sizeof want, "an integer >= %d or a list of %d of them", lo, n);
    if (!v || json_is_null(v)) {
        if (def < 0) return fs_fail(f->err, FS_ERR_FORMAT, "%s: key '%s' is missing", f->path, key);
        for (int i = 0; i < n; i++) out[i] = def;
        return FS_OK;
    }
    if (json_is_integer(v)) {
        if (json_integer_value(v) < lo || json_integer_value(v) > 1 << 20) return fs_json_bad_key(f, key, want);
        for (int i = 0; i < n; i++) out[i] = (int)json_integer_value(v);
        return FS_OK;
    }
    if (!json_is_array(v) || (int)json_array_size(v) != n) return fs_json_bad_key(f, key, want);
    for (int i = 0; i < n; i++) {
        json_t *e = json_array_get(v, (size_t)i);
        if (!json_is_integer(e) || json_integer_value(e) < lo || json_integer_value(e) > 1 << 20)
            return fs_json_bad_key(f, key, want);
        out[i] = (int)json_integer_value(e);
    }
    return FS_OK;
}

/* A string key that must equal `want` when present (or always if required). */
static fs_code expect_string(const fs_json_file *f, const char *key, const char *want, int required) {
    json_t *v = json_object_get(f->root, key);
    if (!v || json_is_null(v)) {
        if (!required) return FS_OK;
        return fs_fail(f->err, FS_ERR_UNSUPPORTED, "%s: key '%s' is missing (\"%s\" is supported)",
                       f->path, key, want);
    }
    if (!json_is_string(v)) return fs_json_bad_key(f, key, "a string");
    if (strcmp(json_string_value(v), want))
        return fs_fail(f->err, FS_ERR_UNSUPPORTED, "%s: key '%s' is \"%s\"; only \"%s\" is supported",
                       f->path, key, json_string_value(v), want);
    return FS_OK;
}

/* A key that, when present and not null, must have the value diffusers'
 * default has (the forward pass computes only that). */
static fs_code expect_default(const fs_json_file *f, const char *key, json_t *want) {
    json_t *v = json_object_get(f->root, key);
    fs_code rc = FS_OK;
    /* numbers compare by value: 1 and 1.0 are the same setting */
    int same = !v || json_is_null(v) || json_equal(v, want) ||
               (json_is_number(v) && json_is_number(want) &&
                json_number_value(v) == json_number_value(want));
    if (!same) {
        char *got = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
        char *exp = json_dumps(want, JSON_ENCODE_ANY | JSON_COMPACT);
        rc = fs_fail(f->err, FS_ERR_UNSUPPORTED, "%s: key '%s' is %.100s; only %.100s is supported",
                     f->path, key, got ? got : "?", exp ? exp : "?");
        free(got);
        free(exp);
    }
    json_decref(want);
    return rc;
}

static fs_code parse_config(const fs_json_file *f, fs_unet_config *c) {
    fs_code rc;
    memset(c, 0, sizeof *c);

    json_t *boc = json_object_get(f->root, "block_out_channels");
    if (!boc) return fs_fail(f->err, FS_ERR_FORMAT, "%s: key 'block_out_channels' is missing", f->path);
    if (!json_is_array(boc) || json_array_size(boc) < 1 || json_array_size(boc) > FS_UNET_MAX_LEVELS) {
        char want[64];
        snprintf(want, sizeof want, "a list of 1 to %d integers", FS_UNET_MAX_LEVELS);
        return fs_json_bad_key(f, "block_out_channels", want);
    }
    c->levels = (int)json_array_size(boc);
    for (int l = 0; l < c->levels; l++) {
        json_t *e = json_array_get(boc, (size_t)l);
        if (!json_is_integer(e) || json_integer_value(e) < 1 || json_integer_value(e) > 1 << 16)
            return fs_json_bad_key(f, "block_out_channels", "positive integers");
        c->channels[l] = (int)json_integer_value(e);
    }
    if ((rc = fs_json_int(f, "in_channels", 4, 1, 1 << 16, &c->in_channels)) ||
        (rc = fs_json_int(f, "out_channels", 4, 1, 1 << 16, &c->out_channels)) ||
        (rc = fs_json_int(f, "layers_per_block", 2, 1, 1 << 16, &c->layers_per_block)) ||
        (rc = fs_json_int(f, "norm_num_groups", 32, 1, 1 << 16, &c->groups)) ||
        (rc = fs_json_int(f, "cross_attention_dim", -1, 1, 1 << 20, &c->context_dim)) ||
        (rc = fs_json_int(f, "projection_class_embeddings_input_dim", -1, 1, 1 << 20,
                      &c->adm_in_channels)) ||
        (rc = fs_json_int(f, "time_embedding_dim", 4 * c->channels[0], 1, 1 << 20, &c->time_embed_dim)))
        return rc;

    /* diffusers: num_attention_heads = num_attention_heads or attention_head_dim
     * (the latter is really the head count, a naming mistake kept for
     * compatibility) */
    json_t *nah = json_object_get(f->root, "num_attention_heads");
    const char *heads_key = nah && !json_is_null(nah) ? "num_attention_heads" : "attention_head_dim";
    int tl[FS_UNET_MAX_LEVELS];
    if ((rc = get_per_level(f, heads_key, c->levels, 8, 1, c->heads)) ||
        (rc = get_per_level(f, "transformer_layers_per_block", c->levels, 1, 1, tl)))
        return rc;

    json_t *eps = json_object_get(f->root, "norm_eps");
    if (eps && !json_is_null(eps)) {
        if (!json_is_number(eps) || !(json_number_value(eps) > 0))
            return fs_json_bad_key(f, "norm_eps", "a positive number");
        c->eps_resnet = (float)json_number_value(eps);
    } else {
        c->eps_resnet = 1e-5f;
    }
    c->eps_transformer = 1e-6f; /* Transformer2DModel's GroupNorm: fixed in diffusers */

    /* a level has attention iff its down block is a CrossAttn one; the up
     * blocks must mirror it (up_blocks.i is level levels-1-i) */
    json_t *down = json_object_get(f->root, "down_block_types");
    json_t *up = json_object_get(f->root, "up_block_types");
    char want[64];
    snprintf(want, sizeof want, "a list of %d block type names", c->levels);
    if (!json_is_array(down) || (int)json_array_size(down) != c->levels)
        return fs_json_bad_key(f, "down_block_types", want);
    if (!json_is_array(up) || (int)json_array_size(up) != c->levels)
        return fs_json_bad_key(f, "up_block_types", want);
    for (int l = 0; l < c->levels; l++) {
        const char *d = json_string_value(json_array_get(down, (size_t)l));
        const char *u = json_string_value(json_array_get(up, (size_t)(c->levels - 1 - l)));
        if (!d) return fs_json_bad_key(f, "down_block_types", want);
        if (!u) return fs_json_bad_key(f, "up_block_types", want);
        int da = !strcmp(d, "CrossAttnDownBlock2D"), ua = !strcmp(u, "CrossAttnUpBlock2D");
        if (!da && strcmp(d, "DownBlock2D"))
            return fs_fail(f->err, FS_ERR_UNSUPPORTED,
                           "%s: key 'down_block_types': \"%s\" (DownBlock2D and "
                           "CrossAttnDownBlock2D are supported)", f->path, d);
        if (!ua && strcmp(u, "UpBlock2D"))
            return fs_fail(f->err, FS_ERR_UNSUPPORTED,
                           "%s: key 'up_block_types': \"%s\" (UpBlock2D and CrossAttnUpBlock2D "
                           "are supported)", f->path, u);
        if (da != ua)
            return fs_fail(f->err, FS_ERR_UNSUPPORTED,
                           "%s: key 'up_block_types': \"%s\" does not mirror down block %d \"%s\"",
                           f->path, u, l, d);
        c->depth[l] = da ? tl[l] : 0;
    }
    c->depth_mid = tl[c->levels - 1];

    if ((rc = expect_string(f, "addition_embed_type", "text_time", 1)) ||
        (rc = expect_string(f, "mid_block_type", "UNetMidBlock2DCrossAttn", 0)) ||
        (rc = expect_string(f, "act_fn", "silu", 0)) ||
        (rc = expect_string(f, "resnet_time_scale_shift", "default", 0)) ||
        (rc = expect_string(f, "time_embedding_type", "positional", 0)))
        return rc;
    json_t *lin = json_object_get(f->root, "use_linear_projection");
    if (!json_is_boolean(lin)) return fs_json_bad_key(f, "use_linear_projection", "true or false");
    if (!json_is_true(lin))
        return fs_fail(f->err, FS_ERR_UNSUPPORTED,
                       "%s: key 'use_linear_projection' is false; only linear projections "
                       "(SDXL) are supported", f->path);
    if ((rc = expect_default(f, "flip_sin_to_cos", json_true())) ||
        (rc = expect_default(f, "freq_shift", json_integer(0))) ||
        (rc = expect_default(f, "center_input_sample", json_false())) ||
        (rc = expect_default(f, "dual_cross_attention", json_false())) ||
        (rc = expect_default(f, "only_cross_attention", json_false())) ||
        (rc = expect_default(f, "class_embed_type", json_null())) ||
        (rc = expect_default(f, "encoder_hid_dim", json_null())) ||
        (rc = expect_default(f, "time_cond_proj_dim", json_null())) ||
        (rc = expect_default(f, "reverse_transformer_layers_per_block", json_null())) ||
        (rc = expect_default(f, "conv_in_kernel", json_integer(3))) ||
        (rc = expect_default(f, "conv_out_kernel", json_integer(3))) ||
        (rc = expect_default(f, "downsample_padding", json_integer(1))) ||
        (rc = expect_default(f, "mid_block_scale_factor", json_real(1.0))) ||
        (rc = expect_default(f, "resnet_out_scale_factor", json_real(1.0))) ||
        (rc = expect_default(f, "attention_type", json_string("default"))))
        return rc;

    if ((rc = fs_unet_config_check(c, f->err))) fs_error_prefix(f->err, "%s: ", f->path);
    return rc;
}

fs_code fs_unet_config_from_json(const char *path, fs_unet_config *out, fs_error *err) {
    fs_json_file f;
    fs_code rc = fs_json_open(&f, path, err);
    if (rc) return rc;
    rc = parse_config(&f, out);
    fs_json_close(&f);
    return rc;
}

/* ---------------------------------------------------------------- SGM shapes */

typedef struct {
    const fs_safetensors *st;
    const char *prefix;
    fs_error *err;
} sgm_file;

static const fs_st_tensor *sgm_find(const sgm_file *f, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static const fs_st_tensor *sgm_find(const sgm_file *f, const char *fmt, ...) {
    char name[320];
    int at = snprintf(name, sizeof name, "%s", f->prefix);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name + at, sizeof name - (size_t)at, fmt, ap);
    va_end(ap);
    return fs_safetensors_find(f->st, name);
}

static fs_code missing(const sgm_file *f, const char *what) {
    return fs_fail(f->err, FS_ERR_FORMAT, "%s: tensor '%s%s' is missing (needed to infer the UNet "
                   "configuration)", fs_safetensors_path(f->st), f->prefix, what);
}

/* Counts transformer_blocks.N of the SpatialTransformer at `block` (e.g.
 * "input_blocks.4.1"); 0 if there is none. Rejects conv projections. */
static fs_code count_depth(const sgm_file *f, const char *block, int *depth) {
    *depth = 0;
    const fs_st_tensor *pin = sgm_find(f, "%s.proj_in.weight", block);
    if (!pin) return FS_OK;
    if (pin->ndim != 2)
        return fs_fail(f->err, FS_ERR_UNSUPPORTED,
                       "%s: tensor '%s%s.proj_in.weight' is a convolution; only linear "
                       "projections (SDXL) are supported", fs_safetensors_path(f->st), f->prefix, block);
    while (sgm_find(f, "%s.transformer_blocks.%d.attn1.to_q.weight", block, *depth)) (*depth)++;
    return FS_OK;
}

/* Optional __metadata__ integers that let a tiny SGM test file state what its
 * shapes cannot: "num_head_channels" (64 in SGM's SDXL config) and
 * "norm_num_groups" (32). */
static fs_code meta_int(const sgm_file *f, const char *key, int def, int *out) {
    const char *v = fs_safetensors_meta(f->st, key);
    *out = def;
    if (!v) return FS_OK;
    char *end;
    long x = strtol(v, &end, 10);
    if (*end || x < 1 || x > 1 << 16)
        return fs_fail(f->err, FS_ERR_FORMAT, "%s: __metadata__ '%s' is \"%.40s\", not a positive "
                       "integer", fs_safetensors_path(f->st), key, v);
    *out = (int)x;
    return FS_OK;
}

fs_code fs_unet_config_infer(const fs_safetensors *st, const char *prefix, fs_unet_config *out,
                             fs_error *err) {
    sgm_file f = {st, prefix, err};
    fs_unet_config c;
    memset(&c, 0, sizeof c);
    const fs_st_tensor *t;
    fs_code rc;
    int head_dim;
    if ((rc = meta_int(&f, "num_head_channels", 64, &head_dim)) ||
        (rc = meta_int(&f, "norm_num_groups", 32, &c.groups)))
        return rc;

    if (!(t = sgm_find(&f, "input_blocks.0.0.weight")) || t->ndim != 4)
        return missing(&f, "input_blocks.0.0.weight");
    int model_ch = (int)t->shape[0];
    c.in_channels = (int)t->shape[1];
    if (!(t = sgm_find(&f, "out.2.weight")) || t->ndim != 4) return missing(&f, "out.2.weight");
    c.out_channels = (int)t->shape[0];
    if (!(t = sgm_find(&f, "time_embed.0.weight")) || t->ndim != 2)
        return missing(&f, "time_embed.0.weight");
    c.time_embed_dim = (int)t->shape[0];
    if (!(t = sgm_find(&f, "label_emb.0.0.weight")) || t->ndim != 2)
        return missing(&f, "label_emb.0.0.weight (SDXL's size/pooled embedding)");
    c.adm_in_channels = (int)t->shape[1];

    /* input_blocks 1, 2, ...: resnets (in_layers), then a downsampler (op)
     * closing every level but the last; the first level's resnet count is
     * layers_per_block */
    int n = 1, level = 0, in_level = 0, L = -1;
    char block[64];
    for (;; n++) {
        if (sgm_find(&f, "input_blocks.%d.0.op.weight", n)) {
            if (L < 0) L = in_level;
            if (in_level != L) break;
            if (level + 1 >= FS_UNET_MAX_LEVELS)
                return fs_fail(err, FS_ERR_UNSUPPORTED, "%s: more than %d UNet levels (at "
                               "'%sinput_blocks.%d.0.op')", fs_safetensors_path(st),
                               FS_UNET_MAX_LEVELS, prefix, n);
            level++;
            in_level = 0;
            continue;
        }
        if (!(t = sgm_find(&f, "input_blocks.%d.0.in_layers.2.weight", n))) break;
        if (t->ndim != 4) return missing(&f, "input_blocks.N.0.in_layers.2.weight (a conv)");
        if (in_level == 0) c.channels[level] = (int)t->shape[0];
        snprintf(block, sizeof block, "input_blocks.%d.1", n);
        int d;
        if ((rc = count_depth(&f, block, &d))) return rc;
        if (in_level == 0) c.depth[level] = d;
        else if (d != c.depth[level])
            return fs_fail(err, FS_ERR_UNSUPPORTED,
                           "%s: '%sinput_blocks.%d.1' has %d transformer blocks, the level's "
                           "first has %d", fs_safetensors_path(st), prefix, n, d, c.depth[level]);
        in_level++;
    }
    if (L < 0) L = in_level;
    if (in_level != L || L == 0)
        return fs_fail(err, FS_ERR_FORMAT,
                       "%s: input_blocks: level %d has %d resnets, level 0 has %d (at "
                       "'%sinput_blocks.%d')", fs_safetensors_path(st), level, in_level, L, prefix, n);
    c.levels = level + 1;
    c.layers_per_block = L;
    if (c.channels[0] != model_ch)
        return fs_fail(err, FS_ERR_FORMAT, "%s: input_blocks.1 has %d channels, conv_in gives %d",
                       fs_safetensors_path(st), c.channels[0], model_ch);
    if ((rc = count_depth(&f, "middle_block.1", &c.depth_mid))) return rc;

    /* context_dim from the first cross-attention's key projection */
    c.context_dim = 0;
    for (size_t i = 0; i < fs_safetensors_count(st) && !c.context_dim; i++) {
        const fs_st_tensor *e = fs_safetensors_at(st, i);
        size_t pl = strlen(prefix), nl = strlen(e->name);
        if (nl > pl + 18 && !strncmp(e->name, prefix, pl) &&
            !strcmp(e->name + nl - 18, ".attn2.to_k.weight") && e->ndim == 2)
            c.context_dim = (int)e->shape[1];
    }
    int any_attn = c.depth_mid > 0;
    for (int l = 0; l < c.levels; l++) any_attn |= c.depth[l] > 0;
    if (!c.context_dim) {
        if (any_attn) return missing(&f, "*.attn2.to_k.weight");
        c.context_dim = 1; /* no cross-attention at all: unused */
    }
    for (int l = 0; l < c.levels; l++) {
        int attn = c.depth[l] > 0 || (l == c.levels - 1 && c.depth_mid > 0);
        /* A level narrower than one head gets a single head of its width
         * (tiny test models; SDXL's levels are all multiples of 64). */
        if (attn && c.channels[l] > head_dim && c.channels[l] % head_dim)
            return fs_fail(err, FS_ERR_UNSUPPORTED,
                           "%s: level %d has %d channels, not a multiple of the head size %d "
                           "(__metadata__ num_head_channels)", fs_safetensors_path(st), l,
                           c.channels[l], head_dim);
        c.heads[l] = c.channels[l] <= head_dim ? 1 : c.channels[l] / head_dim;
    }
    c.eps_resnet = 1e-5f;
    c.eps_transformer = 1e-6f;
    if ((rc = fs_unet_config_check(&c, err))) {
        fs_error_prefix(err, "%s: inferred ", fs_safetensors_path(st));
        return rc;
    }
    *out = c;
    return FS_OK;
}
