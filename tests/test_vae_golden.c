/* tests/test_vae_golden.c: the C VAE against diffusers' AutoencoderKL
 * (PyTorch, CPU, float64 goldens) on the tiny configurations of
 * tests/data/vae/<config>/ made by tools/gen_vae_golden.py.
 *
 * For each config, both checkpoint layouts (the diffusers vae/ folder and
 * the SGM single file) are opened, loaded and run on io.safetensors' inputs:
 * the encoder's moments and activations, the posterior sample from the saved
 * noise (scaled latent), the decoder's image and activations, and diffusers'
 * tiled encode and decode with the saved tile size; every tensor must match
 * with relative L2 error <= 1e-4 (each figure printed). The two layouts hold
 * the same f32 weights, so their outputs must be the same bits; so must the
 * leanest memory scheme with small bands. Exits 77 (skipped) without data. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/io.h"
#include "vae/vae.h"
#include "check.h"

#define TOL 1e-4

enum { MAX_BLOCKS = 24 };
typedef struct {
    int count;
    char name[MAX_BLOCKS][48];
    float *data[MAX_BLOCKS];
    size_t numel[MAX_BLOCKS];
} blocks;

static void on_block(void *user, const char *name, int b, const float *x, int rows, int w, int c) {
    blocks *k = user;
    if (k->count >= MAX_BLOCKS || b != 0) return;
    int i = k->count++;
    snprintf(k->name[i], sizeof k->name[i], "%s", name);
    k->numel[i] = (size_t)rows * w * c;
    k->data[i] = malloc(k->numel[i] * sizeof(float));
    memcpy(k->data[i], x, k->numel[i] * sizeof(float));
}

static double rel_l2(const float *a, const float *ref, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)ref[i];
        num += d * d;
        den += (double)ref[i] * ref[i];
    }
    if (!(num == num)) return INFINITY;
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

static float *io_tensor(const fs_safetensors *io, const char *name, const fs_st_tensor **info) {
    const fs_st_tensor *t = fs_safetensors_find(io, name);
    CHECK(t != NULL, "io.safetensors has no tensor %s", name);
    if (!t) return NULL;
    float *v = malloc((t->numel ? t->numel : 1) * sizeof(float));
    fs_error err = {0};
    fs_code rc = fs_safetensors_read_f32(io, t, v, &err);
    CHECK(rc == FS_OK, "%s: %s", name, err.msg);
    if (rc) { free(v); return NULL; }
    if (info) *info = t;
    return v;
}

static void compare(const char *config, const char *label, const fs_safetensors *io,
                    const char *name, const float *got, size_t n) {
    const fs_st_tensor *t = NULL;
    float *ref = io_tensor(io, name, &t);
    if (!ref) return;
    CHECK(t->numel == n, "%s %s: %s has %llu values, C %zu", config, label, name,
          (unsigned long long)t->numel, n);
    if (t->numel == n) {
        double e = rel_l2(got, ref, n);
        printf("  %-36s rel L2 %.3g\n", name, e);
        CHECK(e <= TOL, "%s %s: %s rel L2 %.3g > %g", config, label, name, e, TOL);
    }
    free(ref);
}

typedef struct {
    float *moments, *latent, *decoded, *moments_tiled, *decoded_tiled;
    size_t nm, nl, nd;
} outputs;

static void outputs_free(outputs *o) {
    free(o->moments); free(o->latent); free(o->decoded); free(o->moments_tiled);
    free(o->decoded_tiled);
    memset(o, 0, sizeof *o);
}

/* Runs the model at path on io's inputs, compares with the goldens. */
static int run_layout(const char *config, const char *label, const char *path,
                      const fs_safetensors *io, outputs *out) {
    fs_error err = {0};
    fs_vae *v = NULL;
    fs_code rc = fs_vae_open(path, &v, &err);
    CHECK(rc == FS_OK, "%s %s: open %s: %s", config, label, path, err.msg);
    if (rc) return -1;
    rc = fs_vae_load_weights(v, &err);
    CHECK(rc == FS_OK, "%s %s: load: %s", config, label, err.msg);
    const fs_vae_info *info = fs_vae_get_info(v);
    CHECK(info->tensors_unexpected == 0, "%s %s: %zu unexpected tensors (first %s)", config,
          label, info->tensors_unexpected, info->first_unexpected);
    const fs_vae_config *c = &info->config;
    const fs_st_tensor *zt = NULL, *it = NULL;
    float *z = io_tensor(io, "z", &zt), *img = io_tensor(io, "image", &it);
    float *noise = io_tensor(io, "noise", NULL), *ts = io_tensor(io, "tile_sample", NULL);
    if (rc || !z || !img || !noise || !ts) {
        free(z); free(img); free(noise); free(ts);
        fs_vae_free(v);
        return -1;
    }
    const int n = (int)zt->shape[0], h = (int)zt->shape[1], w = (int)zt->shape[2];
    const int f = 1 << (c->levels - 1);
    CHECK(it->shape[1] == h * f && it->shape[2] == w * f, "%s: image %lldx%lld for latent %dx%d",
          config, (long long)it->shape[1], (long long)it->shape[2], h, w);
    out->nm = (size_t)n * h * w * 2 * c->latent_channels;
    out->nl = out->nm / 2;
    out->nd = (size_t)n * h * f * w * f * c->out_channels;
    out->moments = malloc(out->nm * sizeof(float));
    out->latent = malloc(out->nl * sizeof(float));
    out->decoded = malloc(out->nd * sizeof(float));
    out->moments_tiled = malloc(out->nm * sizeof(float));
    out->decoded_tiled = malloc(out->nd * sizeof(float));
    fs_strip_plan plan;
    fs_strip_plan_make(h, 1, 1, &plan, &err);
    blocks tr = {0};
    fs_vae_trace trace = {on_block, &tr};
    fs_vae_opts o = {0};
    o.trace = &trace;
    double t0 = fs_now();
    rc = fs_vae_encode(v, NULL, &plan, h, w, n, img, out->moments, &o, &err);
    CHECK(rc == FS_OK, "%s %s: encode: %s", config, label, err.msg);
    if (!rc) rc = fs_vae_decode(v, NULL, &plan, h, w, n, z, out->decoded, &o, &err);
    CHECK(rc == FS_OK, "%s %s: decode: %s", config, label, err.msg);
    printf("%s [%s, %s]: latent %dx%d, batch %d, encode + decode %.3f s\n", config, label,
           info->weights_path, h, w, n, fs_now() - t0);
    if (!rc) {
        compare(config, label, io, "moments", out->moments, out->nm);
        fs_vae_sample(c, n, h, w, 0, h, out->moments, noise, 0, 0, out->latent);
        compare(config, label, io, "latent", out->latent, out->nl);
        compare(config, label, io, "decoded", out->decoded, out->nd);
        for (int i = 0; i < tr.count; i++) {
            char name[64];
            snprintf(name, sizeof name, "act.%s", tr.name[i]);
            if (!strcmp(tr.name[i], "moments")) continue;
            compare(config, label, io, name, tr.data[i], tr.numel[i]);
        }
        CHECK(tr.count == 5 + 2 * c->levels, "%s: %d traced blocks", config, tr.count);
    }
    for (int i = 0; i < tr.count; i++) free(tr.data[i]);
    /* tiled, with the saved tile size */
    fs_vae_opts to = {0};
    to.tiled = 1;
    to.tile_sample = (int)ts[0];
    if (!rc) rc = fs_vae_encode(v, NULL, &plan, h, w, n, img, out->moments_tiled, &to, &err);
    if (!rc) rc = fs_vae_decode(v, NULL, &plan, h, w, n, z, out->decoded_tiled, &to, &err);
    CHECK(rc == FS_OK, "%s %s: tiled: %s", config, label, err.msg);
    if (!rc) {
        compare(config, label, io, "moments_tiled", out->moments_tiled, out->nm);
        compare(config, label, io, "decoded_tiled", out->decoded_tiled, out->nd);
    }
    /* the leanest scheme, two-row bands: the same bits */
    fs_vae_opts lo = {0};
    lo.force_scheme = 6;
    lo.band_bytes = 1;
    float *m2 = malloc(out->nm * sizeof(float)), *d2 = malloc(out->nd * sizeof(float));
    if (!rc) rc = fs_vae_encode(v, NULL, &plan, h, w, n, img, m2, &lo, &err);
    if (!rc) rc = fs_vae_decode(v, NULL, &plan, h, w, n, z, d2, &lo, &err);
    CHECK(rc == FS_OK, "%s %s: lean: %s", config, label, err.msg);
    if (!rc)
        CHECK(!memcmp(m2, out->moments, out->nm * sizeof(float)) &&
              !memcmp(d2, out->decoded, out->nd * sizeof(float)),
              "%s %s: the lean scheme changes bits", config, label);
    free(m2); free(d2);
    free(z); free(img); free(noise); free(ts);
    fs_vae_free(v);
    return rc ? -1 : 0;
}

static int exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

static void run_config(const char *root, const char *config) {
    char dir[1300], path[1400];
    snprintf(dir, sizeof dir, "%s/%s", root, config);
    snprintf(path, sizeof path, "%s/io.safetensors", dir);
    fs_error err = {0};
    fs_safetensors *io = NULL;
    fs_code rc = fs_safetensors_open(path, &io, &err);
    CHECK(rc == FS_OK, "%s: %s", config, err.msg);
    if (rc) return;
    outputs a = {0}, b = {0};
    int ok_a = run_layout(config, "diffusers", dir, io, &a) == 0;
    snprintf(path, sizeof path, "%s/sgm.safetensors", dir);
    int ok_b = exists(path) && run_layout(config, "sgm", path, io, &b) == 0;
    if (ok_a && ok_b)
        CHECK(!memcmp(a.moments, b.moments, a.nm * sizeof(float)) &&
              !memcmp(a.decoded, b.decoded, a.nd * sizeof(float)) &&
              !memcmp(a.decoded_tiled, b.decoded_tiled, a.nd * sizeof(float)),
              "%s: the diffusers and SGM layouts give different bits", config);
    outputs_free(&a);
    outputs_free(&b);
    fs_safetensors_close(io);
}

static int by_name(const void *x, const void *y) {
    return strcmp(*(char *const *)x, *(char *const *)y);
}

int main(void) {
    fs_threads_init(0);
    const char *data = getenv("FS_TEST_DATA");
    char root[1024];
    snprintf(root, sizeof root, "%s/vae", data ? data : "tests/data");
    DIR *d = opendir(root);
    if (!d) {
        printf("test_vae_golden: no golden data at %s: skipped\n", root);
        return 77;
    }
    char *names[64];
    int count = 0;
    for (struct dirent *e; (e = readdir(d)) && count < 64;) {
        char path[1400];
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "%s/%s/io.safetensors", root, e->d_name);
        if (exists(path)) names[count++] = strdup(e->d_name);
    }
    closedir(d);
    if (!count) {
        printf("test_vae_golden: no config under %s: skipped\n", root);
        return 77;
    }
    qsort(names, (size_t)count, sizeof *names, by_name);
    for (int i = 0; i < count; i++) {
        run_config(root, names[i]);
        free(names[i]);
    }
    return check_report("test_vae_golden");
}
