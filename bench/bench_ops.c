/* bench_ops: speed of the GEMM-based ops (conv2d, linear, attention) against
 * the machine's sgemm ceiling measured in the same run: OpenBLAS at its best,
 * i.e. with all of its own threads on a 2048^3 product (best of a few runs).
 * The ops themselves run as the engine runs them: OpenBLAS single-threaded,
 * OpenMP over fixed tiles, fs_threads_count() threads.
 *
 * Usage: bench_ops [reps]   (FS_THREADS sets the thread count). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cblas.h>
#include "core/core.h"
#include "kernels/kernels.h"

void openblas_set_num_threads(int num_threads); /* OpenBLAS extension */

static float *bench_random(size_t n, uint64_t stream) {
    float *x = fs_alloc(n * sizeof(float));
    if (!x) { fprintf(stderr, "bench_ops: out of memory (%zu floats)\n", n); exit(2); }
    fs_rng_fill_normal(x, n, 1234, stream, 0);
    return x;
}

/* Best wall time of `reps` runs of sgemm 2048^3 with `threads` OpenBLAS threads. */
static double sgemm_best(int threads, int reps) {
    const int n = 2048;
    float *a = bench_random((size_t)n * n, 1), *b = bench_random((size_t)n * n, 2);
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

typedef struct row { const char *op, *shape; double ms, gflops; size_t scratch; } row;

static void check(fs_code rc, fs_error *err, const char *what) {
    if (rc != FS_OK) { fprintf(stderr, "bench_ops: %s: %s\n", what, err->msg); exit(1); }
}

int main(int argc, char **argv) {
    int reps = argc > 1 ? atoi(argv[1]) : 3;
    if (reps < 1) reps = 1;
    fs_threads_init(0);
    int nt = fs_threads_count();
    fs_error err = {0};

    /* The ceiling is taken before and after the ops, best of both: on a
     * shared machine a busy moment should not flatter the ops. */
    double ceiling = sgemm_best(nt, reps);
    double single = sgemm_best(1, reps);
    row rows[3];

    { /* conv 3x3 320 -> 320 on 128 x 128, batch 1, stride 1 */
        fs_conv2d_desc d = {1, 128, 128, 320, 320, 3, 1, 1, 0, 128, 0, 128, 0};
        size_t nx = (size_t)128 * 128 * 320;
        float *x = bench_random(nx, 3), *w = bench_random((size_t)320 * 9 * 320, 4);
        float *bias = bench_random(320, 5), *y = fs_alloc(nx * sizeof(float));
        fs_arena *arena = fs_arena_create(fs_conv2d_scratch_bytes(&d), &err);
        if (!arena) check(FS_ERR_NOMEM, &err, "conv arena");
        double best = 1e30;
        for (int r = 0; r < reps + 1; r++) {
            double t = fs_now();
            check(fs_conv2d(&d, x, w, bias, y, arena, &err), &err, "conv2d");
            t = fs_now() - t;
            if (r > 0 && t < best) best = t;
        }
        double flop = 2.0 * 128 * 128 * 320 * 320 * 9;
        rows[0] = (row){"conv2d 3x3", "1x128x128x320 -> 320", best * 1e3, flop / best * 1e-9,
                        fs_arena_peak(arena)};
        fs_arena_destroy(arena);
        fs_free(x); fs_free(w); fs_free(bias); fs_free(y);
    }
    { /* linear m=4096, k=1280, nout=1280 */
        size_t m = 4096;
        int k = 1280, nout = 1280;
        float *x = bench_random(m * k, 6), *w = bench_random((size_t)nout * k, 7);
        float *bias = bench_random((size_t)nout, 8), *y = fs_alloc(m * nout * sizeof(float));
        fs_arena *arena = fs_arena_create(fs_linear_scratch_bytes(k, nout), &err);
        if (!arena) check(FS_ERR_NOMEM, &err, "linear arena");
        double best = 1e30;
        for (int r = 0; r < reps + 1; r++) {
            double t = fs_now();
            check(fs_linear(x, y, m, k, nout, w, bias, 0, arena, &err), &err, "linear");
            t = fs_now() - t;
            if (r > 0 && t < best) best = t;
        }
        double flop = 2.0 * m * k * nout;
        rows[1] = (row){"linear", "4096x1280 -> 1280", best * 1e3, flop / best * 1e-9,
                        fs_arena_peak(arena)};
        fs_arena_destroy(arena);
        fs_free(x); fs_free(w); fs_free(bias); fs_free(y);
    }
    { /* self-attention, 4096 tokens, 10 heads of 64 */
        int n = 4096, heads = 10, dh = 64, ld = heads * dh;
        float *q = bench_random((size_t)n * ld, 9), *k = bench_random((size_t)n * ld, 10);
        float *v = bench_random((size_t)n * ld, 11), *o = fs_alloc((size_t)n * ld * sizeof(float));
        fs_arena *arena = fs_arena_create(fs_attention_scratch_bytes(n, heads, dh), &err);
        if (!arena) check(FS_ERR_NOMEM, &err, "attention arena");
        double best = 1e30;
        for (int r = 0; r < reps + 1; r++) {
            double t = fs_now();
            check(fs_attention(q, ld, k, ld, v, ld, o, ld, n, n, heads, dh, 0.125f, 0, arena,
                               &err), &err, "attention");
            t = fs_now() - t;
            if (r > 0 && t < best) best = t;
        }
        double flop = 4.0 * n * n * dh * heads;
        rows[2] = (row){"attention", "4096 tok, 10 x 64", best * 1e3, flop / best * 1e-9,
                        fs_arena_peak(arena)};
        fs_arena_destroy(arena);
        fs_free(q); fs_free(k); fs_free(v); fs_free(o);
    }

    double again = sgemm_best(nt, reps);
    if (again > ceiling) ceiling = again;
    again = sgemm_best(1, reps);
    if (again > single) single = again;

    printf("bench_ops: %d threads, best of %d runs\n", nt, reps);
    printf("sgemm ceiling (OpenBLAS, %d threads, 2048^3): %8.1f GFLOP/s\n", nt, ceiling);
    printf("sgemm single thread (2048^3):                 %8.1f GFLOP/s\n", single);
    printf("%-12s %-22s %10s %10s %10s %14s\n", "op", "shape", "ms", "GFLOP/s", "of sgemm",
           "scratch bytes");
    for (int i = 0; i < 3; i++)
        printf("%-12s %-22s %10.1f %10.1f %9.1f%% %14zu\n", rows[i].op, rows[i].shape, rows[i].ms,
               rows[i].gflops, 100.0 * rows[i].gflops / ceiling, rows[i].scratch);
    printf("targets: conv >= 70%%, attention >= 50%% of the sgemm ceiling "
           "(scratch 0: no partial tile, nothing taken)\n");
    return 0;
}
