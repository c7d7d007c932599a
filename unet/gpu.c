/* unet/gpu.c: the UNet's weights on a GPU (fs_unet_use_gpu). The device copy
 * is a "shadow" model: the same config and binding table built again (so
 * its tree of structs is its own), every slot pointed at the same offset in
 * one device block as the host slot has in the host block. The forward pass
 * then runs the same code on the shadow, on the context's CUDA backend. */
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

fs_code fs_unet_use_gpu(fs_unet *u, fs_cuda *cu, fs_error *err) {
    if (!u) return fs_fail(err, FS_ERR_INVALID, "UNet to GPU: NULL model");
    fs_unet_gpu_drop(u);
    if (!cu) return FS_OK;
    if (!u->arena_weights || !u->slots)
        return fs_fail(err, FS_ERR_INVALID,
                       "UNet to GPU: the weights are not loaded (call fs_unet_load_weights)");
    /* the block's extent: the last slot's end (slots are 64-byte aligned in it) */
    size_t floats = 0;
    for (size_t i = 0; i < u->nslots; i++) {
        size_t end = (size_t)(*u->slots[i].dst - u->arena_weights) +
                     (size_t)fs_wslot_numel(&u->slots[i]);
        if (end > floats) floats = end;
    }
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
    fs_code rc = fs_unet_build_slots(s, err);
    if (!rc && s->nslots != u->nslots)
        rc = fs_fail(err, FS_ERR_INVALID, "UNet to GPU: %zu slots rebuilt, the model has %zu",
                     s->nslots, u->nslots);
    for (size_t i = 0; !rc && i < u->nslots; i++)
        if (strcmp(s->slots[i].name, u->slots[i].name))
            rc = fs_fail(err, FS_ERR_INVALID, "UNet to GPU: slot %zu is %s, the model's is %s", i,
                         s->slots[i].name, u->slots[i].name);
    if (!rc) rc = g->be.op->alloc(&g->be, (void **)&g->dev, floats * sizeof(float), err);
    if (!rc)
        rc = g->be.op->upload(&g->be, g->dev, u->arena_weights, floats * sizeof(float), err);
    if (rc) {
        fs_error_prefix(err, "UNet to GPU (%.2f GB of weights): ", floats * 4.0 / 1e9);
        fs_unet_gpu_drop(u);
        return rc;
    }
    for (size_t i = 0; i < u->nslots; i++)
        *s->slots[i].dst = g->dev + (*u->slots[i].dst - u->arena_weights);
    return FS_OK;
}
