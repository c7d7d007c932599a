/* unet/gpu.c: the UNet's weights on a GPU (fs_unet_use_gpu). The device copy
 * is a "shadow" model: the same config and binding table built again (so
 * its tree of structs is its own), every slot pointed at the same offset in
 * one device block as the host slot has in the host block (io's model core
 * copies them through the backend's memory ops here). The forward pass then
 * runs the same code on the shadow, on the context's CUDA backend. */
#include <stdlib.h>
#include <string.h>
#include "unet/forward.h"
#include "unet/loader.h"

struct fs_unet_gpu {
    fs_cuda *cu;
    fs_backend be;     /* the CUDA backend of cu */
    float *dev;        /* every weight, as laid out in u->arena_weights */
    fs_unet *shadow;   /* config + slots + weights pointing into dev */
};

void fs_unet_gpu_drop(fs_unet *u) {
    if (!u || !u->gpu) return;
    if (u->gpu->dev) u->gpu->be.op->free(&u->gpu->be, u->gpu->dev);
    if (u->gpu->shadow) {
        fs_unet_free_slots(u->gpu->shadow);
        free(u->gpu->shadow);
    }
    free(u->gpu);
    u->gpu = NULL;
}

fs_cuda *fs_unet_gpu_ctx(const fs_unet *u) { return u && u->gpu ? u->gpu->cu : NULL; }
const fs_unet *fs_unet_gpu_model(const fs_unet *u) { return u && u->gpu ? u->gpu->shadow : u; }
const fs_backend *fs_unet_backend(const fs_unet *u) {
    return u && u->gpu ? &u->gpu->be : fs_backend_cpu();
}

/* The device's side of the core's upload (io/ knows no device): the
 * backend's memory ops. */
static fs_code dev_alloc(void *be, void **dev, size_t bytes, fs_error *err) {
    const fs_backend *b = be;
    return b->op->alloc(b, dev, bytes, err);
}
static fs_code dev_copy(void *be, void *dev, const void *host, size_t bytes, fs_error *err) {
    const fs_backend *b = be;
    return b->op->upload(b, dev, host, bytes, err);
}
static void dev_free(void *be, void *dev) {
    const fs_backend *b = be;
    b->op->free(b, dev);
}

fs_code fs_unet_use_gpu(fs_unet *u, fs_cuda *cu, fs_error *err) {
    if (!u) return fs_fail(err, FS_ERR_INVALID, "UNet to GPU: NULL model");
    fs_unet_gpu_drop(u);
    if (!cu) return FS_OK;
    if (!u->arena_weights || !u->slots)
        return fs_fail(err, FS_ERR_INVALID,
                       "UNet to GPU: the weights are not loaded (call fs_unet_load_weights)");
    struct fs_unet_gpu *g = calloc(1, sizeof *g);
    fs_unet *s = calloc(1, sizeof *s);
    if (!g || !s) {
        free(g);
        free(s);
        return fs_fail(err, FS_ERR_NOMEM, "UNet to GPU: out of memory");
    }
    g->cu = cu;
    g->be = fs_backend_cuda(cu);
    g->shadow = s;
    s->config = u->config;
    s->info = u->info;
    u->gpu = g;
    const fs_wdevice dev = {.user = &g->be, .alloc = dev_alloc, .copy = dev_copy, .free = dev_free};
    fs_code rc = fs_unet_build_slots(s, err);
    if (!rc) rc = fs_model_upload(u->slots, u->nslots, u->arena_weights, s->slots, s->nslots, &dev,
                                  &g->dev, "UNet", err);
    if (rc) fs_unet_gpu_drop(u);
    return rc;
}
