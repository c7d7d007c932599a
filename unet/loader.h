/* unet/loader.h: what the loader's files (slots.c, config.c, names.c, load.c)
 * share among themselves; private to unet/ (the forward pass does not need it). */
#ifndef FS_UNET_LOADER_H
#define FS_UNET_LOADER_H

#include "unet/unet_internal.h"

/* slots.c */
fs_code fs_unet_config_check(const fs_unet_config *c, fs_error *err);
void fs_unet_free_slots(fs_unet *u);              /* the slots and the tblock arrays */
static inline uint64_t fs_unet_slot_numel(const fs_unet_slot *s) { return fs_wslot_numel(s); }

/* config.c: a diffusers unet/config.json; or the shapes of an SGM file's
 * tensors named prefix + SGM name (prefix "model.diffusion_model."). */
fs_code fs_unet_config_from_json(const char *path, fs_unet_config *out, fs_error *err);
fs_code fs_unet_config_infer(const fs_safetensors *st, const char *prefix, fs_unet_config *out,
                             fs_error *err);

/* names.c: the SGM name (without "model.diffusion_model.") of a diffusers UNet
 * tensor name under config c. Returns 0, or -1 if the name is not a UNet
 * tensor of that config or does not fit in cap. */
int fs_unet_sgm_name(const fs_unet_config *c, const char *diffusers, char *out, size_t cap);

#endif
