/* tests/test_unet_golden.c: the C UNet against diffusers (PyTorch, CPU, fp32)
 * on the tiny golden configurations of tests/data/unet/<config>/ made by
 * tools/gen_unet_golden.py.
 *
 * For each config, both checkpoint layouts are opened (the diffusers folder
 * and the SGM single file sgm.safetensors), loaded, and run on the inputs of
 * io.safetensors (NHWC x, t, context, y); every block activation act.<module>
 * and eps must match with relative L2 error <= 1e-4 (each figure printed).
 * The two layouts hold the same f32 weights (the golden weights are exact in
 * F16 and BF16), so their eps must also be bit-identical to each other.
 * Exits 77 (skipped) when there is no golden data at all. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "unet_golden.h"

#define TOL 1e-4

static int exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* ---------------------------------------------------------------- one layout */

/* Runs the model at `path` on the io inputs; compares with the goldens.
 * Returns eps (malloc'ed) or NULL. */
static float *run_layout(const char *config, const char *label, const char *path,
                         const fs_safetensors *io) {
    fs_error err = {0};
    fs_unet *u = NULL;
    fs_code rc = fs_unet_open(path, &u, &err);
    CHECK(rc == FS_OK, "%s %s: open %s: %s", config, label, path, err.msg);
    if (rc) return NULL;
    rc = fs_unet_load_weights(u, &err);
    CHECK(rc == FS_OK, "%s %s: load: %s", config, label, err.msg);
    const fs_unet_info *info = fs_unet_get_info(u);
    CHECK(info->tensors_unexpected == 0, "%s %s: %zu unexpected tensors (first %s)", config,
          label, info->tensors_unexpected, info->first_unexpected);
    const fs_st_tensor *xt = NULL, *ct = NULL;
    float *x = io_tensor(io, "x", &xt), *t = io_tensor(io, "t", NULL);
    float *ctx = io_tensor(io, "context", &ct), *y = io_tensor(io, "y", NULL);
    float *eps_ref = io_tensor(io, "eps", NULL);
    float *eps = NULL;
    if (rc == FS_OK && x && t && ctx && y && eps_ref && xt->ndim == 4 && ct->ndim == 3) {
        int n = (int)xt->shape[0], h = (int)xt->shape[1], w = (int)xt->shape[2];
        int ctx_len = (int)ct->shape[1];
        const fs_unet_config *c = &info->config;
        CHECK(xt->shape[3] == c->in_channels, "%s: x has %lld channels, the UNet %d", config,
              (long long)xt->shape[3], c->in_channels);
        fs_strip_plan plan;
        fs_strip_plan_make(h, 1, 1, &plan, &err);
        blocks tr = {0};
        fs_unet_trace trace = {on_block, &tr};
        size_t eps_n = (size_t)n * h * w * c->out_channels;
        eps = malloc(eps_n * sizeof(float));
        double t0 = fs_now();
        rc = fs_unet_forward(u, NULL, &plan, h, w, n, x, t, ctx, ctx_len, y, eps, &trace, &err);
        CHECK(rc == FS_OK, "%s %s: forward: %s", config, label, err.msg);
        printf("%s [%s, %s]: latent %dx%d batch %d, %.3f s\n", config, label,
               info->weights_path, h, w, n, fs_now() - t0);
        for (int i = 0; rc == FS_OK && i < tr.count; i++) {
            char name[64];
            snprintf(name, sizeof name, "act.%s", tr.name[i]);
            const fs_st_tensor *at = fs_safetensors_find(io, name);
            CHECK(at != NULL, "%s: io.safetensors has no %s", config, name);
            if (!at) continue;
            CHECK(at->numel == tr.numel[i], "%s: %s has %llu values, the C block %zu", config,
                  name, (unsigned long long)at->numel, tr.numel[i]);
            if (at->numel != tr.numel[i]) continue;
            float *ref = io_tensor(io, name, NULL);
            if (!ref) continue;
            double e = rel_l2(tr.data[i], ref, tr.numel[i]);
            printf("  %-16s rel L2 %.3g\n", name, e);
            CHECK(e <= TOL, "%s %s: %s rel L2 %.3g > %g", config, label, name, e, TOL);
            free(ref);
        }
        if (rc == FS_OK) {
            double e = rel_l2(eps, eps_ref, eps_n);
            printf("  %-16s rel L2 %.3g\n", "eps", e);
            CHECK(e <= TOL, "%s %s: eps rel L2 %.3g > %g", config, label, e, TOL);
        } else {
            free(eps);
            eps = NULL;
        }
        blocks_free(&tr);
    }
    free(x); free(t); free(ctx); free(y); free(eps_ref);
    fs_unet_free(u);
    return eps;
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
    const fs_st_tensor *xt = fs_safetensors_find(io, "x");
    size_t eps_n = 0;
    const fs_st_tensor *et = fs_safetensors_find(io, "eps");
    if (et) eps_n = (size_t)et->numel;
    float *eps_dir = NULL, *eps_sgm = NULL;
    snprintf(path, sizeof path, "%s/unet", dir);
    CHECK(exists(path), "%s: no diffusers folder %s", config, path);
    if (exists(path) && xt) eps_dir = run_layout(config, "diffusers", dir, io);
    snprintf(path, sizeof path, "%s/sgm.safetensors", dir);
    if (!exists(path)) /* e.g. a head count a single file cannot express (README) */
        printf("%s: no SGM file, diffusers layout only\n", config);
    else if (xt)
        eps_sgm = run_layout(config, "sgm", path, io);
    if (eps_dir && eps_sgm)
        CHECK(!memcmp(eps_dir, eps_sgm, eps_n * sizeof(float)),
              "%s: the diffusers and SGM layouts give different eps bits", config);
    free(eps_dir);
    free(eps_sgm);
    fs_safetensors_close(io);
}

static int by_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(void) {
    fs_threads_init(0);
    const char *data = getenv("FS_TEST_DATA");
    char root[1024];
    snprintf(root, sizeof root, "%s/unet", data ? data : "tests/data");
    DIR *d = opendir(root);
    if (!d) {
        printf("test_unet_golden: no golden data at %s: skipped\n", root);
        return 77;
    }
    char *names[256];
    int count = 0;
    for (struct dirent *e; (e = readdir(d)) && count < 256;) {
        char path[1400];
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "%s/%s/io.safetensors", root, e->d_name);
        if (exists(path)) names[count++] = strdup(e->d_name);
    }
    closedir(d);
    if (count == 0) {
        printf("test_unet_golden: no config with io.safetensors under %s: skipped\n", root);
        return 77;
    }
    qsort(names, (size_t)count, sizeof *names, by_name);
    for (int i = 0; i < count; i++) {
        run_config(root, names[i]);
        free(names[i]);
    }
    return check_report("test_unet_golden");
}
