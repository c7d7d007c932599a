/* vae/codec.c: fs_vae_decode and fs_vae_encode, the public entry points:
 * check the model, then run the tiled pass (tiled.c, opts->tiled) or the
 * strip pass (forward.c). They live apart from both so that calls point one
 * way: codec.c -> tiled.c -> forward.c (the tiled pass runs strip passes
 * per tile) -> levels.c -> blocks.c. */
#include "vae/fwd.h"

static fs_code check_model(const fs_vae *v, const fs_strip_plan *plan, const void *in,
                           const void *out, const char *what, fs_error *err) {
    if (!v || !plan || !in || !out)
        return fs_fail(err, FS_ERR_INVALID, "%s: NULL model, plan or tensor", what);
    if (!v->block || v->st)
        return fs_fail(err, FS_ERR_INVALID, "%s: the weights are not loaded (call "
                       "fs_vae_load_weights)", what);
    return FS_OK;
}

fs_code fs_vae_decode(fs_vae *v, fs_comm *comm, const fs_strip_plan *plan, int h, int w, int n,
                      const float *z, float *image, const fs_vae_opts *opts, fs_error *err) {
    fs_error local = {0};
    if (!err) err = &local; /* the helpers read the code back */
    fs_code rc = check_model(v, plan, z, image, "VAE decode", err);
    if (rc) return rc;
    if (opts && opts->tiled) return vae_tiled(v, comm, plan, h, w, n, z, image, opts, 1, err);
    return vae_strips(v, comm, plan, h, w, n, z, image, opts, 1, err);
}

fs_code fs_vae_encode(fs_vae *v, fs_comm *comm, const fs_strip_plan *plan, int h, int w, int n,
                      const float *image, float *moments, const fs_vae_opts *opts,
                      fs_error *err) {
    fs_error local = {0};
    if (!err) err = &local;
    fs_code rc = check_model(v, plan, image, moments, "VAE encode", err);
    if (rc) return rc;
    if (opts && opts->tiled) return vae_tiled(v, comm, plan, h, w, n, image, moments, opts, 0, err);
    return vae_strips(v, comm, plan, h, w, n, image, moments, opts, 0, err);
}

