/* Helpers for the UNet loader tests: write a UNet (its binding table, with
 * weights or as sparse holes) as a diffusers folder or an SGM single file,
 * write a diffusers config.json from an fs_unet_config, compare configs,
 * scratch folders. Header-only (static) because each test is one program;
 * include it first after defining _GNU_SOURCE (nftw). */
#ifndef FS_TESTS_UNET_FILES_H
#define FS_TESTS_UNET_FILES_H

#include <ftw.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "unet/loader.h"

__attribute__((unused)) static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb; (void)flag; (void)ftw;
    return remove(path);
}
__attribute__((unused)) static void rm_tree(const char *dir) { nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS); }

__attribute__((unused)) static void make_tmpdir(char *out, size_t cap, const char *tag) {
    const char *base = getenv("TMPDIR");
    snprintf(out, cap, "%s/fs_%s_XXXXXX", base && *base ? base : "/tmp", tag);
    if (!mkdtemp(out)) { perror("mkdtemp"); exit(1); }
}

__attribute__((unused)) static int config_equal(const fs_unet_config *a, const fs_unet_config *b) {
    int same = a->in_channels == b->in_channels && a->out_channels == b->out_channels &&
               a->levels == b->levels && a->layers_per_block == b->layers_per_block &&
               a->depth_mid == b->depth_mid && a->context_dim == b->context_dim &&
               a->adm_in_channels == b->adm_in_channels && a->time_embed_dim == b->time_embed_dim &&
               a->groups == b->groups && a->eps_resnet == b->eps_resnet &&
               a->eps_transformer == b->eps_transformer;
    for (int l = 0; same && l < a->levels; l++)
        same = a->channels[l] == b->channels[l] && a->depth[l] == b->depth[l] &&
               a->heads[l] == b->heads[l];
    return same;
}

/* A diffusers config.json for c (levels without attention are DownBlock2D /
 * UpBlock2D; the mid depth is transformer_layers_per_block's last entry).
 * extra: "key": value pairs spliced in last (they override), or NULL. */
__attribute__((unused)) static void write_config_json(const fs_unet_config *c, const char *path, const char *extra) {
    json_t *o = json_object(), *boc = json_array(), *tl = json_array(), *heads = json_array();
    json_t *down = json_array(), *up = json_array();
    int last = c->levels - 1;
    for (int l = 0; l < c->levels; l++) {
        json_array_append_new(boc, json_integer(c->channels[l]));
        int t = c->depth[l] ? c->depth[l] : l == last ? c->depth_mid : 1;
        json_array_append_new(tl, json_integer(t));
        json_array_append_new(heads, json_integer(c->heads[l]));
        json_array_append_new(down, json_string(c->depth[l] ? "CrossAttnDownBlock2D" : "DownBlock2D"));
        int lu = last - l;
        json_array_append_new(up, json_string(c->depth[lu] ? "CrossAttnUpBlock2D" : "UpBlock2D"));
    }
    json_object_set_new(o, "_class_name", json_string("UNet2DConditionModel"));
    json_object_set_new(o, "block_out_channels", boc);
    json_object_set_new(o, "layers_per_block", json_integer(c->layers_per_block));
    json_object_set_new(o, "transformer_layers_per_block", tl);
    json_object_set_new(o, "attention_head_dim", heads);
    json_object_set_new(o, "cross_attention_dim", json_integer(c->context_dim));
    json_object_set_new(o, "projection_class_embeddings_input_dim", json_integer(c->adm_in_channels));
    json_object_set_new(o, "addition_embed_type", json_string("text_time"));
    json_object_set_new(o, "addition_time_embed_dim", json_integer(256));
    json_object_set_new(o, "in_channels", json_integer(c->in_channels));
    json_object_set_new(o, "out_channels", json_integer(c->out_channels));
    json_object_set_new(o, "norm_num_groups", json_integer(c->groups));
    json_object_set_new(o, "norm_eps", json_real(c->eps_resnet));
    json_object_set_new(o, "use_linear_projection", json_true());
    json_object_set_new(o, "flip_sin_to_cos", json_true());
    json_object_set_new(o, "freq_shift", json_integer(0));
    json_object_set_new(o, "downsample_padding", json_integer(1));
    json_object_set_new(o, "sample_size", json_integer(128));
    json_object_set_new(o, "down_block_types", down);
    json_object_set_new(o, "up_block_types", up);
    if (c->time_embed_dim != 4 * c->channels[0])
        json_object_set_new(o, "time_embedding_dim", json_integer(c->time_embed_dim));
    if (extra) {
        char buf[1024];
        snprintf(buf, sizeof buf, "{%s}", extra);
        json_error_t je;
        json_t *x = json_loads(buf, 0, &je);
        CHECK(x != NULL, "extra config json: %s", je.text);
        if (x) json_object_update(o, x);
        json_decref(x);
    }
    CHECK(json_dump_file(o, path, JSON_INDENT(2)) == 0, "writing %s", path);
    json_decref(o);
}

/* Which tensors a written UNet file holds: all slots, except `drop`
 * (diffusers name), with `reshape`'s first dim + 1, plus `extra` (file name)
 * when non-NULL. with_data: the slots' weights (OHWI converted back to OIHW)
 * in dtype, otherwise holes. */
typedef struct {
    int sgm;
    fs_dtype dtype;
    int with_data;
    const char *drop, *reshape, *extra;
    const char *const *meta;
} unet_file_opts;

__attribute__((unused)) static void *encode(const float *src, size_t n, fs_dtype dt) {
    size_t es = fs_dtype_size(dt);
    unsigned char *out = malloc(n * es);
    for (size_t i = 0; i < n; i++) {
        if (dt == FS_DTYPE_F32) memcpy(out + 4 * i, &src[i], 4);
        else {
            uint16_t h = dt == FS_DTYPE_F16 ? fs_f32_to_f16(src[i]) : fs_f32_to_bf16(src[i]);
            memcpy(out + 2 * i, &h, 2);
        }
    }
    return out;
}

__attribute__((unused)) static void write_unet_file(const fs_unet *u, const char *path, const unet_file_opts *o) {
    size_t n = 0;
    fs_st_entry *e = calloc(u->nslots + 1, sizeof *e);
    char (*names)[320] = calloc(u->nslots + 1, sizeof *names);
    for (size_t i = 0; i < u->nslots; i++) {
        const fs_unet_slot *s = &u->slots[i];
        if (o->drop && !strcmp(o->drop, s->name)) continue;
        if (o->sgm) {
            char sg[256];
            CHECK(fs_unet_sgm_name(&u->config, s->name, sg, sizeof sg) == 0, "sgm name of %s", s->name);
            snprintf(names[n], sizeof names[n], "model.diffusion_model.%s", sg);
        } else {
            snprintf(names[n], sizeof names[n], "%s", s->name);
        }
        e[n].name = names[n];
        e[n].dtype = o->dtype;
        e[n].ndim = s->ndim;
        for (int d = 0; d < s->ndim; d++) e[n].shape[d] = s->shape[d];
        if (o->reshape && !strcmp(o->reshape, s->name)) e[n].shape[0]++;
        if (o->with_data) {
            size_t numel = (size_t)fs_unet_slot_numel(s);
            float *f = malloc(numel * sizeof *f);
            if (s->kind == FS_SLOT_CONV_OIHW) {
                int co = (int)s->shape[0], ci = (int)s->shape[1], k = (int)s->shape[2];
                for (int a = 0; a < co; a++)
                    for (int y = 0; y < k; y++)
                        for (int x = 0; x < k; x++)
                            for (int c = 0; c < ci; c++)
                                f[(((size_t)a * ci + c) * k + y) * k + x] =
                                    (*s->dst)[(((size_t)a * k + y) * k + x) * ci + c];
            } else {
                memcpy(f, *s->dst, numel * sizeof *f);
            }
            e[n].data = encode(f, numel, o->dtype);
            free(f);
        }
        n++;
    }
    if (o->extra) {
        e[n].name = o->extra;
        e[n].dtype = o->dtype;
        e[n].ndim = 1;
        e[n].shape[0] = 3;
        n++;
    }
    fs_error err = {0};
    CHECK(fs_safetensors_write(path, e, n, o->meta, &err) == FS_OK, "%s", err.msg);
    for (size_t i = 0; i < n; i++) free((void *)e[i].data);
    free(e);
    free(names);
}

/* A binding table without weights (for sparse files of any config). */
__attribute__((unused)) static fs_unet *table_only(const fs_unet_config *c) {
    fs_unet *u = calloc(1, sizeof *u);
    u->config = *c;
    fs_error err = {0};
    CHECK(fs_unet_build_slots(u, &err) == FS_OK, "%s", err.msg);
    return u;
}
#endif
