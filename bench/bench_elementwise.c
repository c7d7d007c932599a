/* bench_elementwise: speed of the non-GEMM ops (norms, activations, blur,
 * resampling) at SDXL / FreeScale sizes, each fast version against its own
 * reference loop in the same run, with the fast version's memory traffic
 * (bytes read + written once) per second, since these ops are meant to be
 * bandwidth-bound.
 *
 * Usage: bench_elementwise [reps]   (FS_THREADS sets the thread count). */
#include <stdio.h>
#include <stdlib.h>
#include "core/core.h"
#include "kernels/kernels.h"

static float *bench_random(size_t n, uint64_t stream) {
    float *x = fs_alloc(n * sizeof(float));
    if (!x) { fprintf(stderr, "bench_elementwise: out of memory (%zu floats)\n", n); exit(2); }
    fs_rng_fill_normal(x, n, 4321, stream, 0);
    return x;
}

static int reps = 5;

#define TIME(var, n, stmt)                                   \
    do {                                                     \
        double best_ = 1e30;                                 \
        for (int r_ = 0; r_ < (n); r_++) {                   \
            double t0_ = fs_now();                           \
            stmt;                                            \
            double dt_ = fs_now() - t0_;                     \
            if (dt_ < best_) best_ = dt_;                    \
        }                                                    \
        var = best_;                                         \
    } while (0)

static void report(const char *op, double fast, double ref, double bytes) {
    printf("  %-44s fast %8.2f ms  ref %9.2f ms  x%6.1f  %6.2f GB/s\n", op, fast * 1e3, ref * 1e3,
           ref / fast, bytes / fast * 1e-9);
}

int main(int argc, char **argv) {
    if (argc > 1) reps = atoi(argv[1]) > 0 ? atoi(argv[1]) : reps;
    fs_threads_init(0);
    printf("bench_elementwise: %d threads, best of %d (reference: 1 run)\n", fs_threads_count(),
           reps);
    /* A level-1/2 UNet map at 2048^2 with CFG: 2 x 128 x 128 x 640. */
    int n = 2, h = 128, w = 128, c = 640, groups = 32;
    size_t total = (size_t)n * h * w * c, tokens = (size_t)n * h * w;
    float *x = bench_random(total, 1), *y = bench_random(total, 2);
    float *gamma = bench_random((size_t)c, 3), *beta = bench_random((size_t)c, 4);
    double *part = fs_alloc((size_t)h * n * groups * 2 * sizeof(double));
    float mean[64], rstd[64];
    double tf, tr, fbytes = (double)total * sizeof(float);

    TIME(tf, reps, {
        fs_groupnorm_partials(x, n, h, w, c, groups, part);
        fs_groupnorm_finish(part, h, n, w, c, groups, 1e-5f, mean, rstd);
        fs_groupnorm_apply(x, y, n, h, w, c, groups, mean, rstd, gamma, beta, 1);
    });
    TIME(tr, 1, fs_groupnorm_ref(x, y, n, h, w, c, groups, 1e-5f, gamma, beta, 1));
    report("groupnorm+silu 2x128x128x640 (32 groups)", tf, tr, 3 * fbytes);

    TIME(tf, reps, fs_layernorm(x, y, tokens, c, 1e-5f, gamma, beta));
    TIME(tr, 1, fs_layernorm_ref(x, y, tokens, c, 1e-5f, gamma, beta));
    report("layernorm 32768 tokens x 640", tf, tr, 2 * fbytes);

    TIME(tf, reps, fs_silu(x, y, total));
    TIME(tr, 1, fs_silu_ref(x, y, total));
    report("silu 21M", tf, tr, 2 * fbytes);

    TIME(tf, reps, fs_gelu(x, y, total));
    TIME(tr, 1, fs_gelu_ref(x, y, total));
    report("gelu (erf) 21M", tf, tr, 2 * fbytes);

    TIME(tf, reps, fs_geglu(x, y, tokens, c / 2));
    TIME(tr, 1, fs_geglu_ref(x, y, tokens, c / 2));
    report("geglu 32768 x (2 x 320)", tf, tr, 1.5 * fbytes);

    /* The fusion blur at 4096^2 (k = 7), variant C, on a 16-row strip for the
     * reference (k^3 taps per output: slow), the whole map for the fast one. */
    float g[7];
    fs_gaussian_kernel1d(7, 1.0f, g);
    fs_error err;
    fs_arena *arena = fs_arena_create((size_t)64 << 20, &err);
    fs_blur_desc d = {.n = n, .h = h, .w = w, .c = c, .k = 7,
                      .axes = FS_BLUR_H | FS_BLUR_W | FS_BLUR_C,
                      .x_row0 = 0, .x_rows = h, .y_row0 = 0, .y_rows = h};
    TIME(tf, reps, fs_blur(&d, g, x, y, arena, &err));
    fs_blur_desc ds = d;
    ds.y_rows = 16;
    TIME(tr, 1, fs_blur_ref(&ds, g, x, y));
    report("blur C k=7 2x128x128x640 (ref: 16 rows, scaled)", tf, tr * h / 16, 2 * fbytes);
    d.axes = FS_BLUR_W | FS_BLUR_C;
    TIME(tf, reps, fs_blur(&d, g, x, y, arena, &err));
    ds.axes = d.axes;
    TIME(tr, 1, fs_blur_ref(&ds, g, x, y));
    report("blur A k=7 2x128x128x640 (ref: 16 rows, scaled)", tf, tr * h / 16, 2 * fbytes);

    /* FreeScale's RGB upscale between stages, 1024^2 -> 2048^2. */
    fs_resize_desc rd = {.n = 1, .c = 3, .in_h = 1024, .in_w = 1024, .out_h = 2048,
                         .out_w = 2048, .x_row0 = 0, .x_rows = 1024, .y_row0 = 0, .y_rows = 2048};
    float *img = fs_alloc((size_t)2048 * 2048 * 3 * sizeof(float));
    TIME(tf, reps, fs_resize_bicubic(&rd, x, img));
    TIME(tr, 1, fs_resize_bicubic_ref(&rd, x, img));
    report("bicubic 1024^2 -> 2048^2, c=3", tf, tr, (1024.0 * 1024 * 3 + 2048.0 * 2048 * 3) * 4);

    TIME(tf, reps, fs_upsample_nearest2x(x, y, n, 64, 64, c));
    TIME(tr, 1, fs_upsample_nearest2x_ref(x, y, n, 64, 64, c));
    report("nearest2x 2x64x64x640", tf, tr, 5 * (double)n * 64 * 64 * c * 4);

    fs_arena_destroy(arena);
    fs_free(x);
    fs_free(y);
    fs_free(gamma);
    fs_free(beta);
    fs_free(part);
    fs_free(img);
    return 0;
}
