/* The model bundle of a render: open everything up front (bind names and
 * shapes, read no weights), then load one phase's networks at a time. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "worker/worker.h"

/* The embedded default: a tiny SDXL-architecture model. Its seed is part of
 * its definition (changing it changes every default image). */
#define EMBEDDED_SEED 20241212u

struct fs_models {
    char path[1024];          /* "" = embedded */
    int is_dir;
    fs_dtype precision;
    char describe[1200];
    fs_clip *clip_l, *clip_g;
    fs_tokenizer *tok_l, *tok_g;
    fs_unet *unet;
    fs_vae *vae;
    int unet_loaded, vae_loaded, text_loaded;
    fs_denoiser_desc den;     /* from the configurations, at open */
};

fs_unet_config fs_models_embedded_unet_config(void) {
    fs_unet_config c = fs_unet_config_sdxl();
    c.levels = 3;
    c.channels[0] = 32, c.channels[1] = 64, c.channels[2] = 128;
    c.layers_per_block = 1;
    c.depth[0] = 0, c.depth[1] = 1, c.depth[2] = 1;
    c.depth_mid = 1;
    c.heads[0] = 1, c.heads[1] = 1, c.heads[2] = 2;
    c.context_dim = 64 + 64;                         /* CLIP-L width + bigG width */
    c.adm_in_channels = 64 + 6 * FS_SDXL_TIME_ID_DIM; /* pooled + size embeddings */
    c.time_embed_dim = 4 * c.channels[0];
    c.groups = 8;   /* several channels per group: with one, the norm erases t and y */
    return c;
}

fs_vae_config fs_models_embedded_vae_config(void) {
    fs_vae_config c = fs_vae_config_sdxl();
    c.channels[0] = 16, c.channels[1] = 32, c.channels[2] = 64, c.channels[3] = 64;
    c.layers_per_block = 1;
    c.groups = 8;
    return c;
}

fs_clip_config fs_models_embedded_clip_config(int which) {
    fs_clip_config c = fs_clip_config_sdxl(which);   /* real vocabulary: the real tokenizer */
    c.width = 64, c.layers = 2, c.heads = 1, c.mlp = 128;
    c.projection = which ? 64 : 0;
    return c;
}

static int is_dir(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* The denoiser description from the networks' configurations (the embedded
 * default's, or the ones fs_models_open bound), after checking that they fit
 * together. */
static fs_code describe(fs_models *m, fs_error *err) {
    fs_unet_config uc;
    fs_vae_config vc;
    fs_clip_config cl;
    if (fs_models_embedded(m)) {
        uc = fs_models_embedded_unet_config();
        vc = fs_models_embedded_vae_config();
        cl = fs_models_embedded_clip_config(0);
    } else {
        uc = fs_unet_get_info(m->unet)->config;
        vc = fs_vae_get_info(m->vae)->config;
        cl = fs_clip_get_info(m->clip_l)->config;
    }
    if (uc.in_channels != vc.latent_channels || uc.out_channels != vc.latent_channels)
        return fs_fail(err, FS_ERR_UNSUPPORTED, "%s: the UNet takes %d and gives %d channels "
                       "(its config) but the VAE's latent has %d (its config)", m->describe,
                       uc.in_channels, uc.out_channels, vc.latent_channels);
    if (vc.levels != 4)
        return fs_fail(err, FS_ERR_UNSUPPORTED, "%s: the VAE scales by %d (%d levels); only 8 "
                       "(4 levels) is supported: job sizes are multiples of 64 for it",
                       m->describe, 1 << (vc.levels - 1), vc.levels);
    fs_denoiser_desc *d = &m->den;
    d->latent_channels = vc.latent_channels;
    d->vae_factor = 1 << (vc.levels - 1);
    d->row_align = 1 << (uc.levels - 1);
    d->token_window = cl.positions;
    d->context_dim = uc.context_dim;
    d->adm_in = uc.adm_in_channels;
    d->prediction = FS_PREDICT_EPSILON;
    return FS_OK;
}

fs_code fs_models_open(const char *path, fs_dtype precision, fs_models **out, fs_error *err) {
    *out = NULL;
    if (precision != FS_DTYPE_F32 && precision != FS_DTYPE_F16 && precision != FS_DTYPE_BF16)
        return fs_fail(err, FS_ERR_INVALID, "weight precision %s: only F32, F16, BF16",
                       fs_dtype_name(precision));
    fs_models *m = calloc(1, sizeof *m);
    if (!m) return fs_fail(err, FS_ERR_NOMEM, "models: out of memory");
    m->precision = precision;
    fs_code rc = FS_OK;
    if (!path || !*path) {
        snprintf(m->describe, sizeof m->describe,
                 "embedded default model (tiny, random weights: the image is NOT meaningful; "
                 "set model: to SDXL base 1.0 weights for real pictures)");
    } else {
        snprintf(m->path, sizeof m->path, "%s", path);
        m->is_dir = is_dir(path);
        /* Bind every network now: a wrong path or tensor fails before any work. */
        rc = fs_clip_open(path, 0, &m->clip_l, err);
        if (!rc) rc = fs_clip_open(path, 1, &m->clip_g, err);
        if (!rc) rc = fs_unet_open(path, &m->unet, err);
        if (!rc) rc = fs_vae_open(path, &m->vae, err);
        snprintf(m->describe, sizeof m->describe, "%s (%s)", path,
                 m->is_dir ? "diffusers folder" : "single file");
    }
    if (!rc) rc = describe(m, err);
    if (rc) { fs_models_free(m); return rc; }
    *out = m;
    return FS_OK;
}

fs_code fs_models_denoiser(const fs_models *m, fs_denoiser_desc *d, fs_error *err) {
    (void)err;
    *d = m->den;
    return FS_OK;
}

void fs_models_free(fs_models *m) {
    if (!m) return;
    fs_models_drop_text(m);
    fs_clip_free(m->clip_l), fs_clip_free(m->clip_g);
    fs_unet_free(m->unet);
    fs_vae_free(m->vae);
    free(m);
}

int fs_models_embedded(const fs_models *m) { return m->path[0] == 0; }
const char *fs_models_describe(const fs_models *m) { return m->describe; }

fs_code fs_models_text(fs_models *m, fs_clip **clip_l, fs_clip **clip_g, fs_tokenizer **tok_l,
                       fs_tokenizer **tok_g, fs_error *err) {
    fs_code rc = FS_OK;
    if (!m->text_loaded) {
        const char *dir = m->is_dir ? m->path : NULL;
        if (!m->tok_l) rc = fs_tokenizer_load_for_model(dir, "tokenizer", &m->tok_l, err);
        if (!rc && !m->tok_g) rc = fs_tokenizer_load_for_model(dir, "tokenizer_2", &m->tok_g, err);
        for (int which = 0; !rc && which < 2; which++) {
            fs_clip **c = which ? &m->clip_g : &m->clip_l;
            if (fs_models_embedded(m)) {
                fs_clip_config cfg = fs_models_embedded_clip_config(which);
                rc = fs_clip_create_random(&cfg, EMBEDDED_SEED + 1 + (uint64_t)which, c, err);
            } else {
                if (!*c) rc = fs_clip_open(m->path, which, c, err);
                if (!rc) rc = fs_clip_load_weights(*c, err);
            }
            if (!rc) rc = fs_clip_round_weights(*c, m->precision, err);
        }
        if (rc) { fs_models_drop_text(m); return rc; }
        m->text_loaded = 1;
    }
    *clip_l = m->clip_l, *clip_g = m->clip_g, *tok_l = m->tok_l, *tok_g = m->tok_g;
    return FS_OK;
}

void fs_models_drop_text(fs_models *m) {
    /* fs_clip has no "unload": free it; it is re-opened (bound) when wanted again. */
    fs_clip_free(m->clip_l), fs_clip_free(m->clip_g);
    m->clip_l = m->clip_g = NULL;
    fs_tokenizer_free(m->tok_l), fs_tokenizer_free(m->tok_g);
    m->tok_l = m->tok_g = NULL;
    m->text_loaded = 0;
}

fs_code fs_models_unet(fs_models *m, fs_unet **unet, fs_error *err) {
    fs_code rc = FS_OK;
    if (!m->unet_loaded) {
        if (fs_models_embedded(m)) {
            fs_unet_config cfg = fs_models_embedded_unet_config();
            rc = fs_unet_create_random(&cfg, EMBEDDED_SEED + 3, &m->unet, err);
        } else {
            if (!m->unet) rc = fs_unet_open(m->path, &m->unet, err);
            if (!rc) rc = fs_unet_load_weights(m->unet, err);
        }
        if (!rc) rc = fs_unet_round_weights(m->unet, m->precision, err);
        if (rc) { fs_models_drop_unet(m); return rc; }
        m->unet_loaded = 1;
    }
    *unet = m->unet;
    return FS_OK;
}

void fs_models_drop_unet(fs_models *m) {
    fs_unet_free(m->unet);
    m->unet = NULL;
    m->unet_loaded = 0;
}

fs_code fs_models_vae(fs_models *m, fs_vae **vae, fs_error *err) {
    fs_code rc = FS_OK;
    if (!m->vae_loaded) {
        if (fs_models_embedded(m)) {
            fs_vae_config cfg = fs_models_embedded_vae_config();
            rc = fs_vae_create_random(&cfg, EMBEDDED_SEED + 4, &m->vae, err);
        } else {
            if (!m->vae) rc = fs_vae_open(m->path, &m->vae, err);
            if (!rc) rc = fs_vae_load_weights(m->vae, err);
        }
        if (!rc) rc = fs_vae_round_weights(m->vae, m->precision, err);
        if (rc) { fs_models_drop_vae(m); return rc; }
        m->vae_loaded = 1;
    }
    *vae = m->vae;
    return FS_OK;
}

void fs_models_drop_vae(fs_models *m) {
    fs_vae_free(m->vae);
    m->vae = NULL;
    m->vae_loaded = 0;
}

fs_code fs_models_shapes(fs_models *m, const fs_clip **clip_l, const fs_clip **clip_g,
                         const fs_unet **unet, const fs_vae **vae, const fs_tokenizer **tok_l,
                         const fs_tokenizer **tok_g, fs_error *err) {
    fs_code rc = FS_OK;
    if (fs_models_embedded(m)) {
        /* nothing bound at open: build the tiny networks (what a render would) */
        fs_clip *cl, *cg;
        fs_tokenizer *tl, *tg;
        fs_unet *u;
        fs_vae *v;
        rc = fs_models_text(m, &cl, &cg, &tl, &tg, err);
        if (!rc) rc = fs_models_unet(m, &u, err);
        if (!rc) rc = fs_models_vae(m, &v, err);
    } else {
        /* what fs_models_open bound (re-bound if a phase was dropped since),
         * and the tokenizers (vocabulary files, not weights) */
        const char *dir = m->is_dir ? m->path : NULL;
        if (!m->tok_l) rc = fs_tokenizer_load_for_model(dir, "tokenizer", &m->tok_l, err);
        if (!rc && !m->tok_g) rc = fs_tokenizer_load_for_model(dir, "tokenizer_2", &m->tok_g, err);
        if (!rc && !m->clip_l) rc = fs_clip_open(m->path, 0, &m->clip_l, err);
        if (!rc && !m->clip_g) rc = fs_clip_open(m->path, 1, &m->clip_g, err);
        if (!rc && !m->unet) rc = fs_unet_open(m->path, &m->unet, err);
        if (!rc && !m->vae) rc = fs_vae_open(m->path, &m->vae, err);
    }
    if (rc) return rc;
    *clip_l = m->clip_l, *clip_g = m->clip_g, *unet = m->unet, *vae = m->vae;
    *tok_l = m->tok_l, *tok_g = m->tok_g;
    return FS_OK;
}
