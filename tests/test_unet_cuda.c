/* tests/test_unet_cuda.c: the UNet forward on the GPU (fs_unet_use_gpu)
 * against the diffusers goldens of tests/data/unet (<= 1e-4 relative L2,
 * every traced block and eps) and against the CPU forward of the same
 * model (<= 1e-5); a second GPU pass gives the same bits; restrained
 * dilation matches the CPU's; scale fusion is refused with a clear error.
 * Skips (77) without a GPU or without the golden data. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "unet_golden.h"

static void run_config(fs_cuda *cu, const char *root, const char *config) {
    char dir[1300], path[1400];
    snprintf(dir, sizeof dir, "%s/%s", root, config);
    snprintf(path, sizeof path, "%s/io.safetensors", dir);
    fs_error err = {0};
    fs_safetensors *io = NULL;
    CHECK(fs_safetensors_open(path, &io, &err) == FS_OK, "%s: %s", config, err.msg);
    if (!io) return;
    fs_unet *u = NULL;
    CHECK(fs_unet_open(dir, &u, &err) == FS_OK, "%s: open: %s", config, err.msg);
    if (u) CHECK(fs_unet_load_weights(u, &err) == FS_OK, "%s: load: %s", config, err.msg);
    const fs_st_tensor *xt = NULL, *ct = NULL;
    float *x = io_tensor(io, "x", &xt), *t = io_tensor(io, "t", NULL);
    float *ctx = io_tensor(io, "context", &ct), *y = io_tensor(io, "y", NULL);
    float *eps_ref = io_tensor(io, "eps", NULL);
    if (!u || !x || !t || !ctx || !y || !eps_ref || !xt || !ct) goto done;
    const fs_unet_config *c = &fs_unet_get_info(u)->config;
    int n = (int)xt->shape[0], h = (int)xt->shape[1], w = (int)xt->shape[2];
    int ctx_len = (int)ct->shape[1];
    size_t eps_n = (size_t)n * h * w * c->out_channels;
    float *cpu = malloc(eps_n * 4), *gpu = malloc(eps_n * 4), *again = malloc(eps_n * 4);
    fs_strip_plan plan;
    fs_strip_plan_make(h, 1, 1, &plan, &err);
    CHECK(fs_unet_forward(u, NULL, &plan, h, w, n, x, t, ctx, ctx_len, y, cpu, NULL, &err) ==
              FS_OK, "%s: CPU forward: %s", config, err.msg);
    CHECK(fs_unet_use_gpu(u, cu, &err) == FS_OK, "%s: to GPU: %s", config, err.msg);
    blocks tr = {0};
    fs_unet_trace trace = {on_block, &tr};
    double t0 = fs_now();
    fs_code rc = fs_unet_forward(u, NULL, &plan, h, w, n, x, t, ctx, ctx_len, y, gpu, &trace, &err);
    CHECK(rc == FS_OK, "%s: GPU forward: %s", config, err.msg);
    printf("%s: latent %dx%d batch %d on the GPU, %.3f s\n", config, h, w, n, fs_now() - t0);
    if (rc == FS_OK) {
        for (int i = 0; i < tr.count; i++) {
            char name[64];
            snprintf(name, sizeof name, "act.%s", tr.name[i]);
            const fs_st_tensor *at = fs_safetensors_find(io, name);
            if (!at || at->numel != tr.numel[i]) {
                CHECK(0, "%s: %s missing or of another size", config, name);
                continue;
            }
            float *ref = io_tensor(io, name, NULL);
            if (!ref) continue;
            double e = rel_l2(tr.data[i], ref, tr.numel[i]);
            printf("  %-16s rel L2 %.3g\n", name, e);
            CHECK(e <= 1e-4, "%s: GPU %s rel L2 %.3g", config, name, e);
            free(ref);
        }
        double eg = rel_l2(gpu, eps_ref, eps_n), ec = rel_l2(gpu, cpu, eps_n);
        printf("  eps: rel L2 %.3g to diffusers, %.3g to the CPU forward\n", eg, ec);
        CHECK(eg <= 1e-4, "%s: GPU eps rel L2 %.3g to diffusers", config, eg);
        CHECK(ec <= 1e-5, "%s: GPU eps rel L2 %.3g to the CPU forward", config, ec);
        CHECK(fs_unet_forward(u, NULL, &plan, h, w, n, x, t, ctx, ctx_len, y, again, NULL,
                              &err) == FS_OK, "%s: %s", config, err.msg);
        CHECK(memcmp(gpu, again, eps_n * 4) == 0, "%s: two GPU passes differ", config);
    }
    blocks_free(&tr);
    /* restrained dilation on the GPU against the CPU's */
    fs_unet_freescale fsx = {0};
    fsx.dilation = 2;
    fsx.base_h = h;
    fsx.base_w = w;
    CHECK(fs_unet_forward_fs(u, NULL, &plan, h, w, n, x, t, ctx, ctx_len, y, gpu, NULL, &fsx,
                             &err) == FS_OK, "%s: GPU dilated: %s", config, err.msg);
    CHECK(fs_unet_use_gpu(u, NULL, &err) == FS_OK, "%s: back to the CPU", config);
    CHECK(fs_unet_forward_fs(u, NULL, &plan, h, w, n, x, t, ctx, ctx_len, y, cpu, NULL, &fsx,
                             &err) == FS_OK, "%s: CPU dilated: %s", config, err.msg);
    double ed = rel_l2(gpu, cpu, eps_n);
    printf("  dilation 2: GPU vs CPU rel L2 %.3g\n", ed);
    CHECK(ed <= 1e-5, "%s: dilated GPU eps rel L2 %.3g to the CPU's", config, ed);
    /* scale fusion: refused on the GPU, naming what is missing */
    CHECK(fs_unet_use_gpu(u, cu, &err) == FS_OK, "%s: to GPU again: %s", config, err.msg);
    fsx.dilation = 1;
    fsx.fusion = 1;
    err = (fs_error){0};
    CHECK(fs_unet_forward_fs(u, NULL, &plan, h, w, n, x, t, ctx, ctx_len, y, gpu, NULL, &fsx,
                             &err) == FS_ERR_UNSUPPORTED && strstr(err.msg, "GPU"),
          "%s: scale fusion on the GPU must be refused clearly (%s)", config, err.msg);
    free(cpu); free(gpu); free(again);
done:
    free(x); free(t); free(ctx); free(y); free(eps_ref);
    fs_unet_free(u); /* frees the device copy too */
    fs_safetensors_close(io);
}

int main(void) {
    char why[256];
    if (!fs_cuda_available(why, sizeof why)) {
        printf("test_unet_cuda: SKIP: %s\n", why);
        return 77;
    }
    fs_threads_init(0);
    const char *data = getenv("FS_TEST_DATA");
    char root[1024];
    snprintf(root, sizeof root, "%s/unet", data ? data : "tests/data");
    DIR *d = opendir(root);
    if (!d) {
        printf("test_unet_cuda: no golden data at %s: skipped\n", root);
        return 77;
    }
    fs_error err = {0};
    fs_cuda *cu = NULL;
    if (fs_cuda_open(&cu, 0, 0, &err) != FS_OK) {
        fprintf(stderr, "test_unet_cuda: %s\n", err.msg);
        closedir(d);
        return 1;
    }
    printf("test_unet_cuda: %s\n", fs_cuda_device_name(cu));
    int configs = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.' || strchr(e->d_name, '.')) continue;
        run_config(cu, root, e->d_name);
        configs++;
    }
    closedir(d);
    CHECK(configs >= 3, "%d golden configs found, expected 3", configs);
    fs_cuda_close(cu);
    return check_report("test_unet_cuda");
}
