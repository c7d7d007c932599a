/* bench_unet: time per UNet evaluation (batch 2, as under CFG) on one process,
 * beside the machine's sgemm rate measured in the same run (OpenBLAS with all
 * its threads on a 2048^3 product, the ceiling bench_ops uses, and the
 * single-thread rate). FLOPs are counted from the config: convolutions,
 * linears (token products, embeddings, cross-attention K/V) and the two
 * attention products; norms and pointwise ops are not counted.
 *
 * Usage: bench_unet [--full | --medium | --model PATH] [--latent N] [--gpu] [reps]
 *   default: a tiny SDXL-shaped UNet (channels 64/128/256) at a 32x32 latent;
 *   --full:  SDXL base 1.0 (random weights, ~10 GB) at a 64x64 latent;
 *   --medium: SDXL's widths, heads and context (every layer shape of the full
 *            model) with transformer depth 0/2/2 and mid 2 (~3 GB), at a
 *            64x64 latent: the profiling size (same per-layer costs, short
 *            runs, little memory);
 *   --model: any UNet fs_unet_open reads (the same weights PyTorch times in
 *            bench/unet_vs_torch.sh), at a 64x64 latent;
 *   --latent N: an N x N latent instead (a multiple of 4);
 *   --gpu:   the forward on GPU 0 (fs_unet_use_gpu; FP32): the time per eval
 *            includes copying x, context and eps between host and device;
 *            the peer is tools/bench_unet_torch.py --device cuda.
 * Small maps waste GEMM work: token products run in 256-row tiles, so a
 * level with fewer tokens per batch item (8x8 = 64 at a 32x32 latent) pads
 * them; the FLOPs below count only the useful work.
 * FS_THREADS sets the thread count. Prints ms/eval, GFLOP/s, peak RSS and the
 * peak of counted allocations (fs_mem_peak). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cblas.h>
#include "core/core.h"
#include "kernels/kernels.h"
#include "unet/unet.h"

void openblas_set_num_threads(int num_threads); /* OpenBLAS extension */

static float *bench_random(size_t n, uint64_t stream, float scale) {
    float *x = fs_alloc(n * sizeof(float));
    if (!x) { fprintf(stderr, "bench_unet: out of memory (%zu floats)\n", n); exit(2); }
    fs_rng_fill_normal(x, n, 1234, stream, 0);
    for (size_t i = 0; i < n; i++) x[i] *= scale;
    return x;
}

/* Best GFLOP/s of `reps` sgemm 2048^3 runs with `threads` OpenBLAS threads. */
static double sgemm_best(int threads, int reps) {
    const int n = 2048;
    float *a = bench_random((size_t)n * n, 1, 1), *b = bench_random((size_t)n * n, 2, 1);
    float *c = fs_alloc((size_t)n * n * sizeof(float));
    openblas_set_num_threads(threads);
    double best = 1e30;
    for (int r = 0; r < reps + 1; r++) { /* +1: the first run warms up */
        double t = fs_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f,
                    c, n);
        t = fs_now() - t;
        if (r > 0 && t < best) best = t;
    }
    openblas_set_num_threads(1); /* the engine's rule: BLAS single-threaded */
    fs_free(a); fs_free(b); fs_free(c);
    return 2.0 * n * n * n / best * 1e-9;
}

/* ---------------------------------------------------------------- FLOP count */

typedef struct { double conv, linear, attn; } flops;

static void conv(flops *f, int n, int oh, int ow, int cin, int cout, int k) {
    f->conv += 2.0 * n * oh * ow * (double)cout * cin * k * k;
}

static void resnet(flops *f, const fs_unet_config *c, int n, int h, int w, int cin, int cout) {
    conv(f, n, h, w, cin, cout, 3);
    conv(f, n, h, w, cout, cout, 3);
    if (cin != cout) conv(f, n, h, w, cin, cout, 1);
    f->linear += 2.0 * n * c->time_embed_dim * cout;
}

static void transformer(flops *f, const fs_unet_config *c, int n, int h, int w, int ch,
                        int depth, int ctx_len) {
    if (depth <= 0) return;
    double T = (double)h * w, C = ch;
    f->linear += 2 * 2.0 * n * T * C * C; /* proj_in, proj_out */
    for (int k = 0; k < depth; k++) {
        f->linear += 4 * 2.0 * n * T * C * C;                         /* self q, k, v, out */
        f->attn += 2 * 2.0 * n * T * T * C;                            /* q k^T, p v */
        f->linear += 2 * 2.0 * n * T * C * C;                          /* cross q, out */
        f->linear += 2 * 2.0 * n * ctx_len * (double)c->context_dim * C; /* cross k, v */
        f->attn += 2 * 2.0 * n * T * ctx_len * C;
        f->linear += 2.0 * n * T * C * 8 * C + 2.0 * n * T * 4 * C * C; /* GEGLU ff */
    }
}

static flops count_flops(const fs_unet_config *c, int n, int h, int w, int ctx_len) {
    flops f = {0, 0, 0};
    const int last = c->levels - 1, L = c->layers_per_block, temb = c->time_embed_dim;
    f.linear += 2.0 * n * (c->channels[0] * (double)temb + 2.0 * temb * temb +
                           (double)c->adm_in_channels * temb);
    conv(&f, n, h, w, c->in_channels, c->channels[0], 3);
    int ch = c->channels[0];
    for (int l = 0; l < c->levels; l++) {
        int lh = h >> l, lw = w >> l;
        for (int j = 0; j < L; j++) {
            resnet(&f, c, n, lh, lw, ch, c->channels[l]);
            ch = c->channels[l];
            transformer(&f, c, n, lh, lw, ch, c->depth[l], ctx_len);
        }
        if (l < last) conv(&f, n, lh / 2, lw / 2, ch, ch, 3);
    }
    int lh = h >> last, lw = w >> last;
    resnet(&f, c, n, lh, lw, ch, ch);
    transformer(&f, c, n, lh, lw, ch, c->depth_mid, ctx_len);
    resnet(&f, c, n, lh, lw, ch, ch);
    for (int i = 0; i < c->levels; i++) {
        int l = last - i, cout = c->channels[l], cinput = l ? c->channels[l - 1] : c->channels[0];
        lh = h >> l;
        lw = w >> l;
        for (int j = 0; j <= L; j++) {
            int skip = j == L ? cinput : cout;
            resnet(&f, c, n, lh, lw, ch + skip, cout);
            ch = cout;
            transformer(&f, c, n, lh, lw, ch, c->depth[l], ctx_len);
        }
        if (l > 0) conv(&f, n, 2 * lh, 2 * lw, ch, ch, 3);
    }
    conv(&f, n, h, w, c->channels[0], c->out_channels, 3);
    return f;
}

/* ---------------------------------------------------------------- main */

int main(int argc, char **argv) {
    int full = 0, medium = 0, reps = 3, latent = 0, gpu = 0;
    const char *model = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--full")) full = 1;
        else if (!strcmp(argv[i], "--medium")) medium = 1;
        else if (!strcmp(argv[i], "--model") && i + 1 < argc) model = argv[++i];
        else if (!strcmp(argv[i], "--latent") && i + 1 < argc) latent = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--gpu")) gpu = 1;
        else if (atoi(argv[i]) > 0) reps = atoi(argv[i]);
        else {
            fprintf(stderr, "usage: bench_unet [--full | --medium | --model PATH] [--latent N] "
                            "[--gpu] [reps]\n");
            return 2;
        }
    }
    fs_threads_init(0);
    const int nt = fs_threads_count();
    fs_error err = {0};

    fs_unet_config cfg = fs_unet_config_sdxl();
    int h = 64, w = 64, ctx_len = 77;
    const char *label = "SDXL base 1.0 (random weights)";
    if (medium && !full && !model) {
        cfg.depth[2] = 2;
        cfg.depth_mid = 2;
        label = "medium SDXL (320/640/1280, depth 0/2/2, mid 2, random weights)";
    } else if (!full && !model) {
        cfg.channels[0] = 64; cfg.channels[1] = 128; cfg.channels[2] = 256;
        cfg.depth[1] = 1; cfg.depth[2] = 2; cfg.depth_mid = 2;
        cfg.heads[0] = 1; cfg.heads[1] = 2; cfg.heads[2] = 4;  /* head dim 64 */
        cfg.context_dim = 256;
        cfg.adm_in_channels = 256;
        cfg.time_embed_dim = 256;
        h = w = 32;
        label = "tiny SDXL-shaped (64/128/256, depth 0/1/2, mid 2)";
    }
    fs_unet *u = NULL;
    double t0 = fs_now();
    if (model) {
        /* bind, check, convert: the model's own config replaces the above */
        if (fs_unet_open(model, &u, &err) || fs_unet_load_weights(u, &err)) {
            fprintf(stderr, "bench_unet: %s\n", err.msg);
            return 1;
        }
        cfg = fs_unet_get_info(u)->config;
        label = model;
    }
    double t_init = fs_now() - t0;
    if (latent > 0) h = w = latent;
    const int n = 2;

    double ceiling = sgemm_best(nt, reps), single = sgemm_best(1, reps);
    if (!u) {
        t0 = fs_now();
        if (fs_unet_create_random(&cfg, 7, &u, &err) != FS_OK) {
            fprintf(stderr, "bench_unet: %s\n", err.msg);
            return 1;
        }
        t_init = fs_now() - t0;
    }
    const fs_unet_info *info = fs_unet_get_info(u);
    fs_cuda *cu = NULL;
    double t_upload = 0;
    if (gpu) {
        t0 = fs_now();
        if (fs_cuda_open(&cu, 0, 0, &err) || fs_unet_use_gpu(u, cu, &err)) {
            fprintf(stderr, "bench_unet: GPU: %s\n", err.msg);
            return 1;
        }
        t_upload = fs_now() - t0;
    }

    float *x = bench_random((size_t)n * h * w * cfg.in_channels, 3, 1);
    float *ctx = bench_random((size_t)n * ctx_len * cfg.context_dim, 4, 1);
    float *y = bench_random((size_t)n * cfg.adm_in_channels, 5, 1);
    float *eps = fs_alloc((size_t)n * h * w * cfg.out_channels * sizeof(float));
    float t[2] = {999, 999};
    fs_strip_plan plan;
    fs_strip_plan_make(h, 1, 1, &plan, &err);

    double best = 1e30, sum = 0;
    size_t mem_before = fs_mem_current();
    fs_mem_reset_peak();
    for (int r = 0; r < reps + 1; r++) { /* +1: the first run warms up */
        double ts = fs_now();
        if (fs_unet_forward(u, NULL, &plan, h, w, n, x, t, ctx, ctx_len, y, eps, NULL, &err)) {
            fprintf(stderr, "bench_unet: forward: %s\n", err.msg);
            return 1;
        }
        ts = fs_now() - ts;
        if (r > 0) {
            sum += ts;
            if (ts < best) best = ts;
        }
    }
    flops f = count_flops(&cfg, n, h, w, ctx_len);
    double total = f.conv + f.linear + f.attn;
    printf("bench_unet: %s, latent %dx%d, batch %d, context %d, %d thread(s)\n", label, h, w, n,
           ctx_len, nt);
    printf("  params %.1f M (%.2f GB f32), %s %.2f s\n", info->params / 1e6,
           info->params * 4.0 / 1e9, model ? "load" : "random init", t_init);
    if (cu)
        printf("  on %s (FP32), weights copied in %.2f s\n", fs_cuda_device_name(cu), t_upload);
    printf("  GFLOP per eval: %.2f (conv %.2f, linear %.2f, attention %.2f)\n", total / 1e9,
           f.conv / 1e9, f.linear / 1e9, f.attn / 1e9);
    printf("  time per eval: best %.1f ms, mean %.1f ms over %d runs\n", best * 1e3,
           sum / reps * 1e3, reps);
    if (cu)
        printf("  achieved %.1f GFLOP/s on the GPU; device memory at peak %.2f GB (weights "
               "%.2f GB; the rest: activations, inputs and the op scratch)\n",
               total / best / 1e9, fs_cuda_mem_peak(cu) / 1e9, info->params * 4.0 / 1e9);
    else
        printf("  achieved %.1f GFLOP/s = %.0f%% of the sgemm ceiling %.1f GFLOP/s "
               "(OpenBLAS %d threads, 2048^3); single-thread sgemm %.1f GFLOP/s\n",
               total / best / 1e9, 100.0 * total / best / 1e9 / ceiling, ceiling, nt, single);
    printf("  memory: peak RSS %.1f MB; fs_alloc peak during the evals %.1f MB (held before: weights and "
           "inputs %.1f MB; the forward's arena and op scratch %.1f MB)\n",
           fs_mem_peak_rss() / 1e6, fs_mem_peak() / 1e6, mem_before / 1e6,
           (fs_mem_peak() - mem_before) / 1e6);
    fs_free(x); fs_free(ctx); fs_free(y); fs_free(eps);
    fs_unet_free(u);
    fs_cuda_close(cu);
    return 0;
}
