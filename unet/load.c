/* unet/load.c: making a UNet's weights: deterministic random ones
 * (benchmarks, tests, the embedded default model) or from a checkpoint in
 * either layout. fs_unet_open finds the layout and the config, then binds
 * every slot of the table (slots.c) by name and shape from the header alone,
 * touching no weight page; fs_unet_load_weights converts F32/F16/BF16 to f32
 * (OIHW convolutions to OHWI) in parallel pieces, then closes the file (the
 * slots' src pointers are cleared: only the converted copy remains). The
 * generic part of binding and converting is io's weight tables (io/weights.c). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "kernels/kernels.h"
#include "unet/loader.h"

/* ---------------------------------------------------------------- random */

/* FNV-1a of the tensor name: each slot draws from its own Philox stream, so
 * a tensor's values do not depend on which other tensors the config has. */
static uint64_t name_stream(const char *s) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

/* dst[i] = fs_rng_normal(seed, stream, offset + i), computed a Philox block
 * (four normals) at a time instead of one block per value. Same values as
 * core's definition (box_muller in core/rng.c); the unit test holds them equal. */
static double open_unit(uint32_t w) { return ((double)w + 0.5) * 0x1p-32; }

static void fill_normal(float *dst, size_t n, uint64_t seed, uint64_t stream, uint64_t offset) {
    size_t i = 0;
    while (i < n && (offset + i) % 4) { dst[i] = fs_rng_normal(seed, stream, offset + i); i++; }
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    for (; i + 4 <= n; i += 4) {
        uint64_t b = (offset + i) / 4;
        const uint32_t ctr[4] = {(uint32_t)b, (uint32_t)(b >> 32), (uint32_t)stream,
                                 (uint32_t)(stream >> 32)};
        uint32_t w[4];
        fs_philox4x32_10(ctr, key, w);
        for (int p = 0; p < 2; p++) {
            double r = sqrt(-2.0 * log(open_unit(w[2 * p])));
            double th = 2.0 * M_PI * open_unit(w[2 * p + 1]);
            dst[i + 2 * p] = (float)(r * cos(th));
            dst[i + 2 * p + 1] = (float)(r * sin(th));
        }
    }
    for (; i < n; i++) dst[i] = fs_rng_normal(seed, stream, offset + i);
}

/* Exposed for the unit test that holds fill_normal to fs_rng_normal. */
void fs_unet_test_fill_normal(float *dst, size_t n, uint64_t seed, uint64_t stream,
                              uint64_t offset) {
    fill_normal(dst, n, seed, stream, offset);
}

/* A norm's affine parameters: the module's last name component is norm,
 * norm1.. or conv_norm_out. */
static int is_norm(const char *name) {
    const char *end = strrchr(name, '.');
    if (!end) return 0;
    const char *start = end;
    while (start > name && start[-1] != '.') start--;
    return !strncmp(start, "norm", 4) || !strncmp(start, "conv_norm_out", 13);
}

typedef struct { uint64_t seed; } random_ctx;

/* Rows [r0, r1) of slot s (PyTorch order): matrices and convolutions
 * N(0, 1/fan_in); norms gamma 1 + 0.05 N, beta 0.05 N; other biases 0.02 N. */
static fs_code random_piece(void *user, const fs_unet_slot *s, int64_t r0, int64_t r1,
                            float *tmp, fs_error *err) {
    (void)err;
    const random_ctx *c = user;
    uint64_t row = fs_unet_slot_numel(s) / (uint64_t)s->shape[0];
    size_t n = (size_t)((r1 - r0) * (int64_t)row);
    float *out = *s->dst + (size_t)r0 * row;
    float *gen = s->kind == FS_SLOT_CONV_OIHW ? tmp : out;
    fill_normal(gen, n, c->seed, name_stream(s->name), (uint64_t)r0 * row);
    float scale, shift = 0;
    if (s->ndim >= 2) scale = (float)(1.0 / sqrt((double)row));
    else if (is_norm(s->name)) {
        scale = 0.05f;
        size_t len = strlen(s->name);
        shift = len > 7 && !strcmp(s->name + len - 7, ".weight") ? 1.0f : 0.0f;
    } else scale = 0.02f;
    for (size_t i = 0; i < n; i++) gen[i] = gen[i] * scale + shift;
    if (s->kind == FS_SLOT_CONV_OIHW)
        fs_conv2d_weight_from_oihw(tmp, out, (int)(r1 - r0), (int)s->shape[1], (int)s->shape[2]);
    return FS_OK;
}

fs_code fs_unet_create_random(const fs_unet_config *cfg, uint64_t seed, fs_unet **out,
                              fs_error *err) {
    *out = NULL;
    fs_unet *u = calloc(1, sizeof *u);
    if (!u) return fs_fail(err, FS_ERR_NOMEM, "UNet: out of memory");
    u->config = *cfg;
    random_ctx ctx = {seed};
    fs_code rc = fs_unet_build_slots(u, err);
    if (!rc) rc = fs_unet_alloc_weights(u, err);
    if (!rc) rc = fs_wslots_foreach_piece(u->slots, u->nslots, random_piece, &ctx, "UNet", err);
    if (rc) { fs_unet_free(u); return rc; }
    u->info.layout = FS_UNET_LAYOUT_DIFFUSERS;
    snprintf(u->info.weights_path, sizeof u->info.weights_path, "(random, seed %llu)",
             (unsigned long long)seed);
    u->info.config = u->config;
    u->info.tensors_bound = u->nslots;
    u->info.params_by_dtype[FS_DTYPE_F32] = u->info.params;
    *out = u;
    return FS_OK;
}

/* ---------------------------------------------------------------- open */

#define SGM_PREFIX "model.diffusion_model."

/* Binds every slot to its tensor (name and shape), counts parameters per
 * dtype and the tensors of the UNet's namespace nobody asked for. Reads the
 * header only: no weight page is touched. */
static fs_code bind_slots(fs_unet *u, int sgm, fs_error *err) {
    fs_unet_info *info = &u->info;
    char name[320], sgm_name[256];
    for (size_t i = 0; i < u->nslots; i++) {
        fs_unet_slot *s = &u->slots[i];
        if (sgm) {
            if (fs_unet_sgm_name(&u->config, s->name, sgm_name, sizeof sgm_name))
                return fs_fail(err, FS_ERR_INVALID, "UNet: no SGM name for '%s'", s->name);
            snprintf(name, sizeof name, SGM_PREFIX "%s", sgm_name);
        } else {
            snprintf(name, sizeof name, "%s", s->name);
        }
        fs_code rc = fs_wslot_bind(s, u->st, name, 0, 0, "UNet", err);
        if (rc) return rc;
        info->params_by_dtype[s->src->dtype] += s->src->numel;
        info->params += s->src->numel;
        info->tensors_bound++;
    }
    info->tensors_unexpected = fs_wslots_unbound(u->slots, u->nslots, u->st, sgm ? SGM_PREFIX : "",
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

fs_code fs_unet_open(const char *path, fs_unet **out, fs_error *err) {
    *out = NULL;
    struct stat sb;
    if (stat(path, &sb) != 0)
        return fs_fail(err, FS_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    fs_unet *u = calloc(1, sizeof *u);
    if (!u) return fs_fail(err, FS_ERR_NOMEM, "UNet: out of memory");
    fs_code rc = FS_OK;
    int sgm = 0;
    char config[1100], weights[1100];
    if (S_ISDIR(sb.st_mode)) {
        static const char *const files[] = {"diffusion_pytorch_model.safetensors",
                                            "diffusion_pytorch_model.fp16.safetensors", NULL};
        rc = fs_diffusers_component(path, "unet", files, "UNet", config, weights, sizeof config,
                                    err);
        if (!rc) rc = fs_unet_config_from_json(config, &u->config, err);
        if (!rc) rc = fs_safetensors_open(weights, &u->st, err);
    } else {
        snprintf(weights, sizeof weights, "%s", path);
        rc = fs_safetensors_open(path, &u->st, err);
        if (!rc && has_prefix_tensor(u->st, SGM_PREFIX)) {
            sgm = 1;
            rc = fs_unet_config_infer(u->st, SGM_PREFIX, &u->config, err);
        } else if (!rc) {
            /* a diffusers unet file given directly: its config.json is beside it */
            const char *slash = strrchr(path, '/');
            int dl = slash ? (int)(slash - path) : 1;
            snprintf(config, sizeof config, "%.*s/config.json", dl, slash ? path : ".");
            if (fs_safetensors_find(u->st, "conv_in.weight") && fs_is_file(config))
                rc = fs_unet_config_from_json(config, &u->config, err);
            else
                rc = fs_fail(err, FS_ERR_FORMAT, "%s: no UNet in this file (no " SGM_PREFIX "* "
                             "tensors, and not a diffusers UNet file with config.json beside it)",
                             path);
        }
    }
    if (!rc) rc = fs_unet_build_slots(u, err);
    if (!rc) {
        u->info.layout = sgm ? FS_UNET_LAYOUT_SGM : FS_UNET_LAYOUT_DIFFUSERS;
        snprintf(u->info.weights_path, sizeof u->info.weights_path, "%.1023s", weights);
        u->info.config = u->config;
        rc = bind_slots(u, sgm, err);
    }
    if (rc) { fs_unet_free(u); return rc; }
    *out = u;
    return FS_OK;
}

/* ---------------------------------------------------------------- convert */

/* The row hook of the conversion: OIHW convolution rows to OHWI. */
static void conv_rows(const fs_wslot *s, const float *src, float *dst, int64_t rows) {
    fs_conv2d_weight_from_oihw(src, dst, (int)rows, (int)s->shape[1], (int)s->shape[2]);
}

fs_code fs_unet_load_weights(fs_unet *u, fs_error *err) {
    if (!u->st)
        return fs_fail(err, FS_ERR_INVALID, "UNet %s: no checkpoint bound to load from",
                       u->info.weights_path);
    fs_code rc = FS_OK;
    if (!u->arena_weights && (rc = fs_unet_alloc_weights(u, err))) return rc;
    if ((rc = fs_wslots_load(u->slots, u->nslots, u->st, conv_rows, "UNet", err))) return rc;
    /* the converted copy is all the forward pass reads: drop the mapping so
     * the file's pages stop counting against this process */
    for (size_t i = 0; i < u->nslots; i++) u->slots[i].src = NULL;
    fs_safetensors_close(u->st);
    u->st = NULL;
    return FS_OK;
}

/* ---------------------------------------------------------------- lifetime */

const fs_unet_info *fs_unet_get_info(const fs_unet *u) { return &u->info; }

void fs_unet_free(fs_unet *u) {
    if (!u) return;
    fs_unet_gpu_drop(u);
    fs_free(u->arena_weights);
    fs_unet_free_slots(u);
    if (u->st) fs_safetensors_close(u->st);
    free(u);
}

fs_code fs_unet_round_weights(fs_unet *u, fs_dtype dt, fs_error *err) {
    if (!u->arena_weights) return fs_fail(err, FS_ERR_INVALID, "UNet: weights not loaded");
    return fs_wslots_round(u->slots, u->nslots, dt, err);
}
