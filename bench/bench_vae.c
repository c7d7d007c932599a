/* bench_vae: time and memory of the VAE on one process: SDXL's full VAE
 * config (random weights) decoding a latent of side size/8, or encoding an
 * image, under a memory budget for activations (the planner picks each
 * resolution's scheme, vae/levels.c). Prints the planned peak and FLOPs
 * (the sizing pass), the time, GFLOP/s of the counted work (convolutions,
 * linears, attention; recomputation included), and the process's peak RSS
 * (VmHWM: weights, activations, everything) next to the budget.
 *
 * Usage: bench_vae [--decode-size PX | --encode-size PX] [--max-gb G]
 *                  [--scheme K] [--tiled] [--plan-only]
 *   --decode-size 4096: a 512 x 512 latent -> 4096 x 4096 RGB (default 1024);
 *   --max-gb G: activation budget, GB (default 11, so that with the 0.33 GB
 *               of weights and the runtime the process stays under 12 GB);
 *               0: no budget (the fastest schemes);
 *   --scheme K: force scheme K-1 at every level (1..6; see vae/fwd.h);
 *   --tiled:    diffusers' tiled mode (1024 px tiles) instead of strips;
 *   --plan-only: print the plan (every scheme's peak and FLOPs) and stop.
 * FS_THREADS sets the thread count. Run it on a quiet machine: the 4096
 * decode is ~0.4 PFLOP (about an hour on two cores). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/core.h"
#include "vae/vae.h"

static float *bench_random(size_t n, uint64_t stream, float scale) {
    float *x = fs_alloc(n * sizeof(float));
    if (!x) { fprintf(stderr, "bench_vae: out of memory (%zu floats)\n", n); exit(2); }
    fs_rng_fill_normal(x, n, 4321, stream, 0);
    for (size_t i = 0; i < n; i++) x[i] *= scale;
    return x;
}

static double gb(size_t b) { return (double)b / 1e9; }

int main(int argc, char **argv) {
    int size = 1024, decode = 1, force = 0, tiled = 0, plan_only = 0;
    double max_gb = 11.0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--decode-size") && i + 1 < argc) { size = atoi(argv[++i]); decode = 1; }
        else if (!strcmp(argv[i], "--encode-size") && i + 1 < argc) { size = atoi(argv[++i]); decode = 0; }
        else if (!strcmp(argv[i], "--max-gb") && i + 1 < argc) max_gb = atof(argv[++i]);
        else if (!strcmp(argv[i], "--scheme") && i + 1 < argc) force = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--tiled")) tiled = 1;
        else if (!strcmp(argv[i], "--plan-only")) plan_only = 1;
        else {
            fprintf(stderr, "usage: bench_vae [--decode-size PX | --encode-size PX] [--max-gb G] "
                            "[--scheme K] [--tiled] [--plan-only]\n");
            return 2;
        }
    }
    if (size < 8 || size % 8) { fprintf(stderr, "bench_vae: size %d is not a multiple of 8\n", size); return 2; }
    fs_threads_init(0);
    fs_log_set_level(FS_LOG_DEBUG);
    fs_error err = {0};
    fs_vae_config cfg = fs_vae_config_sdxl();
    fs_vae *v = NULL;
    double t0 = fs_now();
    if (fs_vae_create_random(&cfg, 7, &v, &err)) { fprintf(stderr, "bench_vae: %s\n", err.msg); return 1; }
    const fs_vae_info *info = fs_vae_get_info(v);
    printf("bench_vae: SDXL VAE (random, %llu params, %.2f GB f32) made in %.1f s; %d thread(s)\n",
           (unsigned long long)info->params, (double)info->params * 4 / 1e9, fs_now() - t0,
           fs_threads_count());
    const int lat = size / 8;
    fs_strip_plan plan;
    fs_strip_plan_make(lat, 1, 1, &plan, &err);
    fs_vae_opts o = {0};
    o.max_bytes = (size_t)(max_gb * 1e9);
    o.force_scheme = force;
    o.tiled = tiled;

    /* the plan: every scheme alone, then the chosen mix */
    for (int k = 1; k <= 6 && plan_only; k++) {
        fs_vae_opts ok = o;
        ok.force_scheme = k;
        size_t bytes = 0;
        double flops = 0;
        if (fs_vae_plan(v, decode, &plan, lat, lat, &ok, &bytes, &flops, &err) == FS_OK)
            printf("  scheme %d everywhere: %.2f GB, %.1f TFLOP\n", k - 1, gb(bytes), flops / 1e12);
    }
    size_t bytes = 0;
    double flops = 0;
    fs_code rc = fs_vae_plan(v, decode, &plan, lat, lat, &o, &bytes, &flops, &err);
    if (rc) { fprintf(stderr, "bench_vae: plan: %s\n", err.msg); return 1; }
    printf("%s %dx%d px (latent %dx%d), budget %.2f GB: planned %.2f GB of activations, "
           "%.1f TFLOP\n", decode ? "decode" : "encode", size, size, lat, lat, max_gb, gb(bytes),
           flops / 1e12);
    if (plan_only) { fs_vae_free(v); return 0; }

    size_t lat_n = (size_t)lat * lat * (decode ? cfg.latent_channels : 2 * cfg.latent_channels);
    size_t img_n = (size_t)size * size * 3;
    float *in = decode ? bench_random(lat_n, 1, 1.0f) : bench_random(img_n, 2, 0.5f);
    float *out = fs_alloc((decode ? img_n : lat_n) * sizeof(float));
    if (!out) { fprintf(stderr, "bench_vae: out of memory\n"); return 2; }
    printf("before the pass: RSS peak %.2f GB\n", gb(fs_mem_peak_rss()));
    fflush(stdout);
    t0 = fs_now();
    rc = decode ? fs_vae_decode(v, NULL, &plan, lat, lat, 1, in, out, &o, &err)
                : fs_vae_encode(v, NULL, &plan, lat, lat, 1, in, out, &o, &err);
    double dt = fs_now() - t0;
    if (rc) { fprintf(stderr, "bench_vae: %s\n", err.msg); return 1; }
    double sum = 0;
    size_t nout = decode ? img_n : lat_n;
    for (size_t i = 0; i < nout; i++) sum += out[i];
    printf("%s %dx%d: %.1f s, %.1f GFLOP/s (counted work), output mean %.4g\n",
           decode ? "decode" : "encode", size, size, dt, flops / dt * 1e-9, sum / (double)nout);
    printf("peak RSS %.2f GB (budget for activations %.2f GB; weights %.2f GB; "
           "counted allocations peak %.2f GB)\n", gb(fs_mem_peak_rss()), max_gb,
           (double)info->params * 4 / 1e9, gb(fs_mem_peak()));
    fs_free(in);
    fs_free(out);
    fs_vae_free(v);
    return 0;
}
