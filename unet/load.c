/* unet/load.c: making a UNet's weights: deterministic random ones
 * (benchmarks, tests, the embedded default model) or from a checkpoint in
 * either layout, through io's model core. What is the UNet's own: where its
 * config comes from (config.json, or inferred from an SGM file's shapes) and
 * its SGM names (names.c); the table is slots.c's. fs_unet_open binds every
 * slot by name and shape from the header alone, touching no weight page;
 * fs_unet_load_weights converts them (OIHW convolutions to OHWI), then closes
 * the file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "unet/loader.h"

static const fs_model_kind unet_kind = {
    .label = "UNet",
    .subfolder = "unet",
    .files = fs_diffusers_model_files,
    .sgm_prefix = "model.diffusion_model.",
    .probe = "conv_in.weight",
};

fs_code fs_unet_create_random(const fs_unet_config *cfg, uint64_t seed, fs_unet **out,
                              fs_error *err) {
    *out = NULL;
    fs_unet *u = calloc(1, sizeof *u);
    if (!u) return fs_fail(err, FS_ERR_NOMEM, "UNet: out of memory");
    u->config = *cfg;
    fs_model_stats stats;
    fs_code rc = fs_unet_build_slots(u, err);
    if (!rc) rc = fs_model_random(u->slots, u->nslots, seed, &u->arena_weights, &stats, "UNet",
                                  err);
    if (rc) { fs_unet_free(u); return rc; }
    FS_MODEL_STATS_TO(&u->info, &stats);
    u->info.config = u->config;
    *out = u;
    return FS_OK;
}

/* The SGM file's name of every slot (prefix included). */
static fs_code sgm_files(const fs_unet *u, fs_wfile **out, fs_error *err) {
    fs_wfile *files = calloc(u->nslots ? u->nslots : 1, sizeof *files);
    if (!files) return fs_fail(err, FS_ERR_NOMEM, "UNet: out of memory");
    char name[256];
    for (size_t i = 0; i < u->nslots; i++) {
        if (fs_unet_sgm_name(&u->config, u->slots[i].name, name, sizeof name)) {
            free(files);
            return fs_fail(err, FS_ERR_INVALID, "UNet: no SGM name for '%s'", u->slots[i].name);
        }
        snprintf(files[i].name, sizeof files[i].name, "%s%s", unet_kind.sgm_prefix, name);
    }
    *out = files;
    return FS_OK;
}

fs_code fs_unet_open(const char *path, fs_unet **out, fs_error *err) {
    *out = NULL;
    fs_unet *u = calloc(1, sizeof *u);
    if (!u) return fs_fail(err, FS_ERR_NOMEM, "UNet: out of memory");
    fs_model_file f;
    fs_code rc = fs_model_open(path, &unet_kind, &f, err);
    u->st = f.st;
    if (!rc) rc = f.sgm ? fs_unet_config_infer(f.st, unet_kind.sgm_prefix, &u->config, err)
                        : fs_unet_config_from_json(f.config, &u->config, err);
    if (!rc) rc = fs_unet_build_slots(u, err);
    fs_wfile *files = NULL;
    if (!rc && f.sgm) rc = sgm_files(u, &files, err);
    fs_model_stats stats;
    if (!rc) rc = fs_model_bind(u->slots, u->nslots, &f, files, NULL, &unet_kind, &stats, err);
    free(files);
    if (rc) { fs_unet_free(u); return rc; }
    FS_MODEL_STATS_TO(&u->info, &stats);
    u->info.config = u->config;
    *out = u;
    return FS_OK;
}

fs_code fs_unet_load_weights(fs_unet *u, fs_error *err) {
    return fs_model_load(u->slots, u->nslots, &u->st, &u->arena_weights, &u->info.params, "UNet",
                         u->info.weights_path, err);
}

const fs_unet_info *fs_unet_get_info(const fs_unet *u) { return &u->info; }
size_t fs_unet_load_scratch(const fs_unet *u) { return fs_wslots_scratch_bytes(u->slots, u->nslots); }

void fs_unet_free(fs_unet *u) {
    if (!u) return;
    fs_unet_gpu_drop(u);
    fs_unet_free_slots(u);
    fs_model_release(&u->slots, &u->nslots, &u->arena_weights, &u->st);
    free(u);
}

fs_code fs_unet_round_weights(fs_unet *u, fs_dtype dt, fs_error *err) {
    return fs_model_round(u->slots, u->nslots, u->arena_weights, dt, "UNet", err);
}
