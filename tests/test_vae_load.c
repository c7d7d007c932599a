/* Tests for the VAE loader (vae/slots.c, load.c):
 *  - SDXL's binding table is the real checkpoint's: 248 tensors, 83,653,863
 *    parameters, every diffusers name and shape of
 *    tests/data/sdxl_base_1.0_names.json, and every SGM name the slots map
 *    to is the file's (first_stage_model.*);
 *  - round trips: a random tiny VAE written as a diffusers folder (F32),
 *    as a diffusers file with the old attention names (query, key, value,
 *    proj_attn), and as an SGM single file (F32, 1x1-conv attention, group
 *    count in __metadata__) loads back to a VAE that decodes to the same bits;
 *  - refusals name what is wrong: a missing tensor, a misshapen one, an
 *    unsupported config.json key, bad metadata. */
#define _GNU_SOURCE
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "io/io.h"
#include "kernels/kernels.h"
#include "vae/vae_internal.h"

static void test_sdxl_names(void) {
    const char *data = getenv("FS_TEST_DATA");
    char path[1024];
    snprintf(path, sizeof path, "%s/sdxl_base_1.0_names.json", data ? data : "tests/data");
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (!root) { printf("test_vae_load: no %s: names test skipped\n", path); return; }
    json_t *names = json_object_get(root, "vae");
    fs_vae v;
    memset(&v, 0, sizeof v);
    v.config = fs_vae_config_sdxl();
    fs_error err = {0};
    CHECK(vae_build_slots(&v, 0, &err) == FS_OK, "%s", err.msg);
    uint64_t params = 0;
    for (size_t i = 0; i < v.nslots; i++) {
        const fs_wslot *s = &v.slots[i];
        params += fs_wslot_numel(s);
        json_t *e = json_object_get(names, s->name);
        CHECK(e != NULL, "%s is not an SDXL VAE tensor", s->name);
        if (!e) continue;
        json_t *shape = json_array_get(e, 1);
        int same = (int)json_array_size(shape) == s->ndim;
        for (int d = 0; same && d < s->ndim; d++)
            same = json_integer_value(json_array_get(shape, (size_t)d)) == s->shape[d];
        CHECK(same, "%s: shape differs from the checkpoint's", s->name);
        char sgm[256], full[300];
        CHECK(vae_sgm_name(&v.config, s->name, sgm, sizeof sgm) == 0, "%s: no SGM name", s->name);
        snprintf(full, sizeof full, "first_stage_model.%s", sgm);
        const char *want = json_string_value(json_array_get(e, 0));
        CHECK(want && !strcmp(full, want), "%s -> %s, the checkpoint says %s", s->name, full,
              want ? want : "?");
    }
    CHECK(v.nslots == 248 && json_object_size(names) == 248, "%zu slots, %zu names", v.nslots,
          json_object_size(names));
    CHECK(params == 83653863ull, "%llu params", (unsigned long long)params);
    vae_free_slots(&v);
    json_decref(root);
}

/* ---------------------------------------------------------------- writing */

enum { LAYOUT_DIFFUSERS, LAYOUT_OLD_NAMES, LAYOUT_SGM };

/* v's weights as PyTorch tensors (OIHW convs) under the layout's names. */
static int write_vae(const fs_vae *v, int layout, const char *path, const char *drop,
                     const char *misshape, const char *const *meta) {
    fs_st_entry *e = calloc(v->nslots, sizeof *e);
    float **bufs = calloc(v->nslots, sizeof *bufs);
    char (*names)[300] = calloc(v->nslots, sizeof *names);
    size_t count = 0;
    for (size_t i = 0; i < v->nslots; i++) {
        const fs_wslot *s = &v->slots[i];
        if (drop && !strcmp(s->name, drop)) continue;
        char mapped[256];
        if (layout == LAYOUT_SGM) {
            vae_sgm_name(&v->config, s->name, mapped, sizeof mapped);
            snprintf(names[count], sizeof names[count], "first_stage_model.%s", mapped);
        } else if (layout == LAYOUT_OLD_NAMES && !vae_old_attention_name(s->name, mapped, sizeof mapped)) {
            snprintf(names[count], sizeof names[count], "%s", mapped);
        } else {
            snprintf(names[count], sizeof names[count], "%s", s->name);
        }
        size_t n = (size_t)fs_wslot_numel(s);
        float *b = malloc(n * sizeof(float));
        if (s->kind == FS_WSLOT_CONV_OIHW) { /* OHWI back to OIHW */
            int o = (int)s->shape[0], in = (int)s->shape[1], k = (int)s->shape[2];
            for (int a = 0; a < o; a++)
                for (int c = 0; c < in; c++)
                    for (int y = 0; y < k; y++)
                        for (int x = 0; x < k; x++)
                            b[(((size_t)a * in + c) * k + y) * k + x] =
                                (*s->dst)[(((size_t)a * k + y) * k + x) * in + c];
        } else {
            memcpy(b, *s->dst, n * sizeof(float));
        }
        bufs[count] = b;
        e[count].name = names[count];
        e[count].dtype = FS_DTYPE_F32;
        e[count].ndim = s->ndim;
        for (int d = 0; d < s->ndim; d++) e[count].shape[d] = s->shape[d];
        if (layout == LAYOUT_SGM && s->ndim == 2) { /* attention projections: 1x1 convs */
            e[count].ndim = 4;
            e[count].shape[2] = e[count].shape[3] = 1;
        }
        if (misshape && !strcmp(s->name, misshape)) e[count].shape[0] += 1, e[count].data = NULL;
        else e[count].data = b;
        count++;
    }
    fs_error err = {0};
    fs_code rc = fs_safetensors_write(path, e, count, meta, &err);
    CHECK(rc == FS_OK, "write %s: %s", path, err.msg);
    for (size_t i = 0; i < count; i++) free(bufs[i]);
    free(bufs); free(e); free(names);
    return rc == FS_OK ? 0 : -1;
}

static void write_config(const fs_vae_config *c, const char *path, const char *extra) {
    FILE *f = fopen(path, "w");
    fprintf(f, "{\"_class_name\": \"AutoencoderKL\", \"block_out_channels\": [");
    for (int l = 0; l < c->levels; l++) fprintf(f, "%s%d", l ? ", " : "", c->channels[l]);
    fprintf(f, "], \"down_block_types\": [");
    for (int l = 0; l < c->levels; l++) fprintf(f, "%s\"DownEncoderBlock2D\"", l ? ", " : "");
    fprintf(f, "], \"up_block_types\": [");
    for (int l = 0; l < c->levels; l++) fprintf(f, "%s\"UpDecoderBlock2D\"", l ? ", " : "");
    fprintf(f, "], \"in_channels\": %d, \"out_channels\": %d, \"latent_channels\": %d, "
               "\"layers_per_block\": %d, \"norm_num_groups\": %d, \"act_fn\": \"silu\", "
               "\"scaling_factor\": %.9g, \"shift_factor\": null, \"sample_size\": %d, "
               "\"force_upcast\": true, \"use_quant_conv\": true, \"use_post_quant_conv\": true, "
               "\"mid_block_add_attention\": %s%s}\n",
            c->in_channels, c->out_channels, c->latent_channels, c->layers_per_block, c->groups,
            c->scaling_factor, c->sample_size, c->mid_attention ? "true" : "false",
            extra ? extra : "");
    fclose(f);
}

static float *decode(fs_vae *v, int h, int w, size_t *count) {
    const fs_vae_config *c = &fs_vae_get_info(v)->config;
    int f = 1 << (c->levels - 1);
    size_t nz = (size_t)h * w * c->latent_channels;
    *count = (size_t)h * f * w * f * c->out_channels;
    float *z = malloc(nz * sizeof(float)), *img = malloc(*count * sizeof(float));
    fs_rng_fill_normal(z, nz, 1, 2, 0);
    fs_strip_plan plan;
    fs_error err = {0};
    fs_strip_plan_make(h, 1, 1, &plan, &err);
    fs_code rc = fs_vae_decode(v, NULL, &plan, h, w, 1, z, img, NULL, &err);
    CHECK(rc == FS_OK, "decode: %s", err.msg);
    free(z);
    return img;
}

static fs_vae *open_load(const char *path, fs_error *err) {
    fs_vae *v = NULL;
    if (fs_vae_open(path, &v, err)) return NULL;
    if (fs_vae_load_weights(v, err)) { fs_vae_free(v); return NULL; }
    return v;
}

static void test_round_trips(void) {
    char dir[256];
    snprintf(dir, sizeof dir, "/tmp/fs_vae_load_XXXXXX");
    if (!mkdtemp(dir)) { perror("mkdtemp"); return; }
    fs_vae_config c = fs_vae_config_sdxl();
    c.levels = 3;
    c.channels[0] = 8; c.channels[1] = 16; c.channels[2] = 16;
    c.groups = 4;
    c.sample_size = 64;
    fs_error err = {0};
    fs_vae *ref = NULL;
    CHECK(fs_vae_create_random(&c, 9, &ref, &err) == FS_OK, "%s", err.msg);
    if (!ref) return;
    size_t n = 0, n2 = 0;
    float *want = decode(ref, 5, 6, &n);
    char path[512], vdir[400], cfg[512];
    snprintf(vdir, sizeof vdir, "%s/vae", dir);
    mkdir(vdir, 0755);
    snprintf(cfg, sizeof cfg, "%s/config.json", vdir);
    write_config(&c, cfg, NULL);
    static const char *const meta4[] = {"norm_num_groups", "4", NULL};
    struct { const char *label; int layout; const char *file; const char *open; } cases[] = {
        {"diffusers folder", LAYOUT_DIFFUSERS, "vae/diffusion_pytorch_model.safetensors", ""},
        {"old attention names", LAYOUT_OLD_NAMES, "vae/diffusion_pytorch_model.safetensors",
         "vae/diffusion_pytorch_model.safetensors"},
        {"SGM single file", LAYOUT_SGM, "sgm.safetensors", "sgm.safetensors"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        snprintf(path, sizeof path, "%s/%s", dir, cases[k].file);
        write_vae(ref, cases[k].layout, path, NULL, NULL,
                  cases[k].layout == LAYOUT_SGM ? meta4 : NULL);
        snprintf(path, sizeof path, "%s/%s", dir, cases[k].open);
        fs_vae *v = open_load(cases[k].open[0] ? path : dir, &err);
        CHECK(v != NULL, "%s: %s", cases[k].label, err.msg);
        if (!v) continue;
        const fs_vae_info *info = fs_vae_get_info(v);
        CHECK(info->tensors_bound == ref->nslots && info->tensors_unexpected == 0 &&
              info->params == fs_vae_get_info(ref)->params && info->config.groups == 4,
              "%s: %zu bound, %zu unexpected, groups %d", cases[k].label, info->tensors_bound,
              info->tensors_unexpected, info->config.groups);
        CHECK(info->layout == (cases[k].layout == LAYOUT_SGM ? FS_VAE_LAYOUT_SGM
                                                            : FS_VAE_LAYOUT_DIFFUSERS),
              "%s: layout", cases[k].label);
        float *got = decode(v, 5, 6, &n2);
        CHECK(n2 == n && !memcmp(got, want, n * sizeof(float)), "%s: decodes differently",
              cases[k].label);
        free(got);
        fs_vae_free(v);
    }

    /* refusals */
    fs_vae *v = NULL;
    snprintf(path, sizeof path, "%s/sgm.safetensors", dir);
    write_vae(ref, LAYOUT_SGM, path, "decoder.up_blocks.1.resnets.0.conv2.bias", NULL, meta4);
    fs_code rc = fs_vae_open(path, &v, &err);
    CHECK(rc == FS_ERR_FORMAT && strstr(err.msg, "first_stage_model.decoder.up.1.block.0.conv2.bias"),
          "missing tensor: %d %s", rc, err.msg);
    fs_vae_free(v);
    v = NULL;
    write_vae(ref, LAYOUT_SGM, path, NULL, "encoder.mid_block.attentions.0.to_k.weight", meta4);
    rc = fs_vae_open(path, &v, &err);
    CHECK(rc == FS_ERR_FORMAT && strstr(err.msg, "attn_1.k.weight") && strstr(err.msg, "shape"),
          "misshapen tensor: %d %s", rc, err.msg);
    fs_vae_free(v);
    v = NULL;
    static const char *const bad_meta[] = {"norm_num_groups", "four", NULL};
    write_vae(ref, LAYOUT_SGM, path, NULL, NULL, bad_meta);
    rc = fs_vae_open(path, &v, &err);
    CHECK(rc == FS_ERR_FORMAT && strstr(err.msg, "norm_num_groups"), "bad metadata: %d %s", rc,
          err.msg);
    fs_vae_free(v);
    v = NULL;
    write_config(&c, cfg, ", \"act_fn\": \"relu\"");
    rc = fs_vae_open(dir, &v, &err);
    CHECK(rc == FS_ERR_UNSUPPORTED && strstr(err.msg, "act_fn"), "relu: %d %s", rc, err.msg);
    fs_vae_free(v);
    v = NULL;
    write_config(&c, cfg, ", \"norm_num_groups\": 3");
    rc = fs_vae_open(dir, &v, &err);
    CHECK(rc == FS_ERR_INVALID && strstr(err.msg, "groups"), "3 groups: %d %s", rc, err.msg);
    fs_vae_free(v);

    free(want);
    fs_vae_free(ref);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", dir);
}

int main(void) {
    fs_threads_init(0);
    test_sdxl_names();
    test_round_trips();
    return check_report("test_vae_load");
}
