/* bench_cuda: speed of the CUDA ops (kernels.h, "CUDA") on the shapes SDXL's
 * UNet and VAE give them. bench/cuda_vs_torch.py times the same cases, under
 * the same names, with PyTorch CUDA in plain FP32; bench/cuda_vs_torch.sh
 * runs both and joins them.
 *
 * Each case: device inputs filled with random normals (weights scaled by
 * 1/sqrt(fan-in)), one warm-up call, then `reps` timed calls, each followed
 * by fs_cuda_sync; the median wall time is reported. Wall time around call +
 * sync includes the launch and the sync's own latency (~10-30 us), which
 * PyTorch's CUDA events do not: for the smallest ops (well under 0.1 ms)
 * that latency is a visible part of the number.
 *
 * Usage: bench_cuda [reps] [--json FILE] [--only SUBSTRING]
 * Prints "bench_cuda: SKIP: <why>" and exits 0 without a usable GPU. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/core.h"
#include "kernels/kernels.h"

typedef enum { OP_CONV, OP_LINEAR, OP_ATTN, OP_GROUPNORM, OP_LAYERNORM, OP_GEGLU, OP_SILU } op_kind;

/* One case. Fields used per kind:
 *   conv:      n, h, w (input map), cin, cout, k, stride, pad_end
 *   linear:    m rows, cin -> cout
 *   attention: nq, nk, heads, dh (one batch item, q/k/v/o rows of heads*dh)
 *   groupnorm: n, h, w, cin channels, groups, eps (with SiLU)
 *   layernorm: m tokens x cin; geglu: m rows, d = cout (input m x 2d)
 *   silu:      m elements */
typedef struct bench_case {
    const char *name;
    op_kind kind;
    int n, h, w, cin, cout, k, stride, pad_end;
    size_t m;
    int nq, nk, heads, dh;
    int groups;
    float eps;
} bench_case;

/* The names are shared with cuda_vs_torch.py: change both or neither. */
static const bench_case CASES[] = {
    /* SDXL UNet convs at 1024^2 (latent 128^2), batch 2 (CFG). */
    {"unet_conv3x3_n2_128x128_320", OP_CONV, .n = 2, .h = 128, .w = 128, .cin = 320, .cout = 320, .k = 3, .stride = 1},
    {"unet_conv3x3_n2_64x64_640", OP_CONV, .n = 2, .h = 64, .w = 64, .cin = 640, .cout = 640, .k = 3, .stride = 1},
    {"unet_conv3x3_n2_32x32_1280", OP_CONV, .n = 2, .h = 32, .w = 32, .cin = 1280, .cout = 1280, .k = 3, .stride = 1},
    {"unet_conv3x3_n2_32x32_2560to1280", OP_CONV, .n = 2, .h = 32, .w = 32, .cin = 2560, .cout = 1280, .k = 3, .stride = 1},
    {"unet_conv1x1_n2_64x64_960to640", OP_CONV, .n = 2, .h = 64, .w = 64, .cin = 960, .cout = 640, .k = 1, .stride = 1},
    /* VAE decoder convs (1024^2 image). */
    {"vae_conv3x3_1024x1024_128", OP_CONV, .n = 1, .h = 1024, .w = 1024, .cin = 128, .cout = 128, .k = 3, .stride = 1},
    {"vae_conv3x3_512x512_256", OP_CONV, .n = 1, .h = 512, .w = 512, .cin = 256, .cout = 256, .k = 3, .stride = 1},
    {"vae_conv3x3_256x256_512", OP_CONV, .n = 1, .h = 256, .w = 256, .cin = 512, .cout = 512, .k = 3, .stride = 1},
    /* VAE encoder downsampler: F.pad(x, (0, 1, 0, 1)) then stride 2, padding 0. */
    {"vae_conv3x3s2_1024x1024_128", OP_CONV, .n = 1, .h = 1024, .w = 1024, .cin = 128, .cout = 128, .k = 3, .stride = 2, .pad_end = 1},
    /* UNet transformer linears. */
    {"linear_8192x640to5120", OP_LINEAR, .m = 8192, .cin = 640, .cout = 5120},
    {"linear_8192x2560to640", OP_LINEAR, .m = 8192, .cin = 2560, .cout = 640},
    {"linear_2048x1280to10240", OP_LINEAR, .m = 2048, .cin = 1280, .cout = 10240},
    /* Attention, one batch item. */
    {"attn_self_4096_h10_d64", OP_ATTN, .nq = 4096, .nk = 4096, .heads = 10, .dh = 64},
    {"attn_self_1024_h20_d64", OP_ATTN, .nq = 1024, .nk = 1024, .heads = 20, .dh = 64},
    {"attn_cross_4096x77_h10_d64", OP_ATTN, .nq = 4096, .nk = 77, .heads = 10, .dh = 64},
    {"attn_vae_16384_h1_d512", OP_ATTN, .nq = 16384, .nk = 16384, .heads = 1, .dh = 512},
    {"attn_vae_65536_h1_d512", OP_ATTN, .nq = 65536, .nk = 65536, .heads = 1, .dh = 512},
    /* GroupNorm + SiLU: partials, host finish (with the download), apply. */
    {"groupnorm_silu_n2_128x128_320_g32", OP_GROUPNORM, .n = 2, .h = 128, .w = 128, .cin = 320, .groups = 32, .eps = 1e-5f},
    {"groupnorm_silu_1024x1024_128_g32", OP_GROUPNORM, .n = 1, .h = 1024, .w = 1024, .cin = 128, .groups = 32, .eps = 1e-6f},
    /* Pointwise and per-token ops. */
    {"layernorm_8192x640", OP_LAYERNORM, .m = 8192, .cin = 640, .eps = 1e-5f},
    {"geglu_8192_d2560", OP_GEGLU, .m = 8192, .cout = 2560},
    {"silu_n2_128x128x320", OP_SILU, .m = (size_t)2 * 128 * 128 * 320},
};
#define NCASES (sizeof CASES / sizeof CASES[0])

#define MAX_DEV 16
#define POOL_FLOATS ((size_t)1 << 24) /* 64 MiB of normals, reused for every input */

typedef struct bench {
    fs_cuda *cu;
    fs_error err;
    float *pool, *stage;       /* host: normals, and a scaled copy for weights */
    void *dev[MAX_DEV];        /* device buffers of the current case */
    int ndev;
    void *host[4];             /* host buffers of the current case */
    int nhost;
    double *times;
    FILE *json;
    const char *json_path;
} bench;

static void bench_release(bench *b) {
    for (int i = 0; i < b->ndev; i++) fs_cuda_free(b->cu, b->dev[i]);
    b->ndev = 0;
    for (int i = 0; i < b->nhost; i++) fs_free(b->host[i]);
    b->nhost = 0;
}

static void bench_close(bench *b) {
    bench_release(b);
    if (b->cu) fs_cuda_close(b->cu);
    b->cu = NULL;
    fs_free(b->pool);
    fs_free(b->stage);
    free(b->times);
    b->pool = b->stage = NULL;
    b->times = NULL;
    if (b->json && fclose(b->json) != 0)
        fprintf(stderr, "bench_cuda: closing %s failed\n", b->json_path);
    b->json = NULL;
}

/* Errors end the run: a benchmark with a failing op has nothing to report. */
static void bench_die(bench *b, const char *what) {
    fprintf(stderr, "bench_cuda: %s: %s\n", what, b->err.msg);
    bench_close(b);
    exit(1);
}

static void check(bench *b, fs_code rc, const char *what) {
    if (rc != FS_OK) bench_die(b, what);
}

static void *dev_alloc(bench *b, size_t bytes, const char *what) {
    if (b->ndev == MAX_DEV) {
        fs_fail(&b->err, FS_ERR_RANGE, "more than %d device buffers in one case", MAX_DEV);
        bench_die(b, what);
    }
    void *p = NULL;
    check(b, fs_cuda_alloc(b->cu, &p, bytes, &b->err), what);
    b->dev[b->ndev++] = p;
    return p;
}

static void *host_alloc(bench *b, size_t bytes, const char *what) {
    void *p = fs_alloc(bytes);
    if (!p) {
        fs_fail(&b->err, FS_ERR_NOMEM, "%zu host bytes", bytes);
        bench_die(b, what);
    }
    b->host[b->nhost++] = p;
    return p;
}

/* A device buffer of n random normals times scale. The data are the pool's,
 * read from a start that depends on `stream` so buffers differ; the values
 * do not matter to the timings, only that they are finite and unstructured. */
static float *dev_random(bench *b, size_t n, float scale, unsigned stream, const char *what) {
    float *d = dev_alloc(b, n * sizeof(float), what);
    size_t start = ((size_t)stream * 1000003u) % POOL_FLOATS, done = 0;
    while (done < n) {
        size_t len = POOL_FLOATS - start;
        if (len > n - done) len = n - done;
        const float *src = b->pool + start;
        if (scale != 1.0f) {
            for (size_t i = 0; i < len; i++) b->stage[i] = src[i] * scale;
            src = b->stage;
        }
        check(b, fs_cuda_upload(b->cu, d + done, src, len * sizeof(float), &b->err), what);
        done += len;
        start = 0;
    }
    return d;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The buffers of one case, on the device unless named h_. */
typedef struct bufs {
    float *x, *w, *bias, *y, *q, *k, *v, *o, *gamma, *beta, *mean, *rstd;
    double *part, *h_part;
    float *h_mean, *h_rstd;
    fs_conv2d_desc conv;
} bufs;

/* One call of the case's op (queued; the caller syncs). GroupNorm does the
 * engine's whole sequence: its download and upload wait for the stream. */
static void run_once(bench *b, const bench_case *c, bufs *u) {
    fs_cuda *cu = b->cu;
    fs_error *err = &b->err;
    switch (c->kind) {
    case OP_CONV:
        check(b, fs_cuda_conv2d(cu, &u->conv, u->x, u->w, u->bias, u->y, err), c->name);
        break;
    case OP_LINEAR:
        check(b, fs_cuda_linear(cu, u->x, u->y, c->m, c->cin, c->cout, u->w, u->bias, 0, err),
              c->name);
        break;
    case OP_ATTN: {
        int ld = c->heads * c->dh;
        check(b, fs_cuda_attention(cu, u->q, ld, u->k, ld, u->v, ld, u->o, ld, c->nq, c->nk,
                                   c->heads, c->dh, 1.0f / sqrtf((float)c->dh), 0, err),
              c->name);
        break;
    }
    case OP_GROUPNORM: {
        size_t np = (size_t)c->h * c->n * c->groups * 2, ng = (size_t)c->n * c->groups;
        check(b, fs_cuda_groupnorm_partials(cu, u->x, c->n, c->h, c->w, c->cin, c->groups,
                                            u->part, err), c->name);
        check(b, fs_cuda_download(cu, u->h_part, u->part, np * sizeof(double), err), c->name);
        fs_groupnorm_finish(u->h_part, c->h, c->n, c->w, c->cin, c->groups, c->eps, u->h_mean,
                            u->h_rstd);
        check(b, fs_cuda_upload(cu, u->mean, u->h_mean, ng * sizeof(float), err), c->name);
        check(b, fs_cuda_upload(cu, u->rstd, u->h_rstd, ng * sizeof(float), err), c->name);
        check(b, fs_cuda_groupnorm_apply(cu, u->x, u->y, c->n, c->h, c->w, c->cin, c->groups,
                                         u->mean, u->rstd, u->gamma, u->beta, 1, err), c->name);
        break;
    }
    case OP_LAYERNORM:
        check(b, fs_cuda_layernorm(cu, u->x, u->y, c->m, c->cin, c->eps, u->gamma, u->beta, err),
              c->name);
        break;
    case OP_GEGLU:
        check(b, fs_cuda_geglu(cu, u->x, u->y, c->m, c->cout, err), c->name);
        break;
    case OP_SILU:
        check(b, fs_cuda_silu(cu, u->x, u->y, c->m, err), c->name);
        break;
    }
}

/* Allocates and fills the case's buffers; returns its work: FLOPs (2 per
 * multiply-add) for the GEMM ops, else the bytes it must move (*membound). */
static double setup(bench *b, const bench_case *c, bufs *u, char *shape, size_t shape_len,
                    int *membound) {
    memset(u, 0, sizeof *u);
    *membound = 0;
    switch (c->kind) {
    case OP_CONV: {
        fs_conv2d_desc d = {c->n, c->h, c->w, c->cin, c->cout, c->k, c->stride, 1,
                            0, c->h, 0, 0, c->pad_end};
        int oh = fs_conv2d_desc_out_size(&d, c->h), ow = fs_conv2d_desc_out_size(&d, c->w);
        d.y_rows = oh;
        u->conv = d;
        size_t nx = (size_t)c->n * c->h * c->w * c->cin, ny = (size_t)c->n * oh * ow * c->cout;
        size_t fan_in = (size_t)c->k * c->k * c->cin;
        u->x = dev_random(b, nx, 1.0f, 1, c->name);
        u->w = dev_random(b, (size_t)c->cout * fan_in, 1.0f / sqrtf((float)fan_in), 2, c->name);
        u->bias = dev_random(b, (size_t)c->cout, 0.1f, 3, c->name);
        u->y = dev_alloc(b, ny * sizeof(float), c->name);
        snprintf(shape, shape_len, "%dx%dx%dx%d -> %dx%dx%d%s", c->n, c->h, c->w, c->cin, oh, ow,
                 c->cout, c->stride == 2 ? " s2" : "");
        return 2.0 * (double)ny * (double)fan_in;
    }
    case OP_LINEAR:
        u->x = dev_random(b, c->m * c->cin, 1.0f, 1, c->name);
        u->w = dev_random(b, (size_t)c->cout * c->cin, 1.0f / sqrtf((float)c->cin), 2, c->name);
        u->bias = dev_random(b, (size_t)c->cout, 0.1f, 3, c->name);
        u->y = dev_alloc(b, c->m * c->cout * sizeof(float), c->name);
        snprintf(shape, shape_len, "%zux%d -> %d", c->m, c->cin, c->cout);
        return 2.0 * (double)c->m * c->cin * c->cout;
    case OP_ATTN: {
        size_t ld = (size_t)c->heads * c->dh;
        u->q = dev_random(b, (size_t)c->nq * ld, 1.0f, 1, c->name);
        u->k = dev_random(b, (size_t)c->nk * ld, 1.0f, 2, c->name);
        u->v = dev_random(b, (size_t)c->nk * ld, 1.0f, 3, c->name);
        u->o = dev_alloc(b, (size_t)c->nq * ld * sizeof(float), c->name);
        snprintf(shape, shape_len, "q %d k %d, %d x %d", c->nq, c->nk, c->heads, c->dh);
        return 4.0 * (double)c->nq * c->nk * c->dh * c->heads;
    }
    case OP_GROUPNORM: {
        size_t nx = (size_t)c->n * c->h * c->w * c->cin;
        size_t np = (size_t)c->h * c->n * c->groups * 2, ng = (size_t)c->n * c->groups;
        u->x = dev_random(b, nx, 1.0f, 1, c->name);
        u->gamma = dev_random(b, (size_t)c->cin, 1.0f, 2, c->name);
        u->beta = dev_random(b, (size_t)c->cin, 1.0f, 3, c->name);
        u->y = dev_alloc(b, nx * sizeof(float), c->name);
        u->part = dev_alloc(b, np * sizeof(double), c->name);
        u->mean = dev_alloc(b, ng * sizeof(float), c->name);
        u->rstd = dev_alloc(b, ng * sizeof(float), c->name);
        u->h_part = host_alloc(b, np * sizeof(double), c->name);
        u->h_mean = host_alloc(b, ng * sizeof(float), c->name);
        u->h_rstd = host_alloc(b, ng * sizeof(float), c->name);
        snprintf(shape, shape_len, "%dx%dx%dx%d, %d groups", c->n, c->h, c->w, c->cin, c->groups);
        *membound = 1;
        return 3.0 * (double)nx * sizeof(float); /* x read twice, y written */
    }
    case OP_LAYERNORM: {
        size_t nx = c->m * c->cin;
        u->x = dev_random(b, nx, 1.0f, 1, c->name);
        u->gamma = dev_random(b, (size_t)c->cin, 1.0f, 2, c->name);
        u->beta = dev_random(b, (size_t)c->cin, 1.0f, 3, c->name);
        u->y = dev_alloc(b, nx * sizeof(float), c->name);
        snprintf(shape, shape_len, "%zu x %d", c->m, c->cin);
        *membound = 1;
        return 2.0 * (double)nx * sizeof(float);
    }
    case OP_GEGLU:
        u->x = dev_random(b, c->m * 2 * (size_t)c->cout, 1.0f, 1, c->name);
        u->y = dev_alloc(b, c->m * c->cout * sizeof(float), c->name);
        snprintf(shape, shape_len, "%zu x %d -> %d", c->m, 2 * c->cout, c->cout);
        *membound = 1;
        return 3.0 * (double)c->m * c->cout * sizeof(float);
    case OP_SILU:
        u->x = dev_random(b, c->m, 1.0f, 1, c->name);
        u->y = dev_alloc(b, c->m * sizeof(float), c->name);
        snprintf(shape, shape_len, "%zu", c->m);
        *membound = 1;
        return 2.0 * (double)c->m * sizeof(float);
    }
    return 0;
}

static void usage(void) {
    fprintf(stderr, "usage: bench_cuda [reps] [--json FILE] [--only SUBSTRING]\n");
}

int main(int argc, char **argv) {
    int reps = 5;
    const char *json_path = NULL, *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json") && i + 1 < argc) {
            json_path = argv[++i];
        } else if (!strcmp(argv[i], "--only") && i + 1 < argc) {
            only = argv[++i];
        } else if (argv[i][0] >= '0' && argv[i][0] <= '9') {
            reps = atoi(argv[i]);
            if (reps < 1 || reps > 10000) {
                fprintf(stderr, "bench_cuda: reps '%s' not in 1..10000\n", argv[i]);
                return 2;
            }
        } else {
            usage();
            return 2;
        }
    }

    char why[256] = "";
    if (fs_cuda_available(why, sizeof why) == 0) {
        printf("bench_cuda: SKIP: %s\n", why);
        return 0;
    }

    fs_threads_init(0);
    bench b = {0};
    b.json_path = json_path;
    b.times = calloc((size_t)reps, sizeof(double));
    b.pool = fs_alloc(POOL_FLOATS * sizeof(float));
    b.stage = fs_alloc(POOL_FLOATS * sizeof(float));
    if (!b.times || !b.pool || !b.stage) {
        fs_fail(&b.err, FS_ERR_NOMEM, "%zu bytes", 2 * POOL_FLOATS * sizeof(float));
        bench_die(&b, "host buffers");
    }
    fs_rng_fill_normal(b.pool, POOL_FLOATS, 1234, 0, 0);
    if (json_path) {
        b.json = fopen(json_path, "w");
        if (!b.json) {
            fs_fail(&b.err, FS_ERR_IO, "cannot open %s for writing", json_path);
            bench_die(&b, "--json");
        }
    }
    check(&b, fs_cuda_open(&b.cu, 0, 0, &b.err), "fs_cuda_open(device 0)");
    printf("bench_cuda: %s, FP32, median of %d timed calls (each + fs_cuda_sync) after 1 warm-up\n",
           fs_cuda_device_name(b.cu), reps);
    printf("%-34s %-32s %10s %10s\n", "case", "shape", "ms", "rate");
    fflush(stdout);

    int ran = 0;
    for (size_t ci = 0; ci < NCASES; ci++) {
        const bench_case *c = &CASES[ci];
        if (only && !strstr(c->name, only)) continue;
        bufs u;
        char shape[64];
        int membound;
        double work = setup(&b, c, &u, shape, sizeof shape, &membound);
        run_once(&b, c, &u); /* warm-up: first-call setup, cuBLAS heuristics, caches */
        check(&b, fs_cuda_sync(b.cu, &b.err), c->name);
        for (int r = 0; r < reps; r++) {
            double t = fs_now();
            run_once(&b, c, &u);
            check(&b, fs_cuda_sync(b.cu, &b.err), c->name);
            b.times[r] = fs_now() - t;
        }
        qsort(b.times, (size_t)reps, sizeof(double), cmp_double);
        double med = reps % 2 ? b.times[reps / 2]
                              : 0.5 * (b.times[reps / 2 - 1] + b.times[reps / 2]);
        double rate = work / med * 1e-9; /* GFLOP/s or GB/s */
        printf("%-34s %-32s %10.3f %10.1f %s\n", c->name, shape, med * 1e3, rate,
               membound ? "GB/s" : "GFLOP/s");
        fflush(stdout);
        if (b.json) {
            if (membound)
                fprintf(b.json, "{\"case\": \"%s\", \"shape\": \"%s\", \"ms\": %.6f, "
                        "\"gflops\": null, \"gbps\": %.3f, \"reps\": %d}\n",
                        c->name, shape, med * 1e3, rate, reps);
            else
                fprintf(b.json, "{\"case\": \"%s\", \"shape\": \"%s\", \"ms\": %.6f, "
                        "\"gflops\": %.3f, \"reps\": %d}\n", c->name, shape, med * 1e3, rate,
                        reps);
            fflush(b.json);
        }
        bench_release(&b);
        ran++;
    }
    if (ran == 0) {
        fs_fail(&b.err, FS_ERR_INVALID, "no case matches --only '%s'", only ? only : "");
        bench_die(&b, "cases");
    }
    if (b.json && ferror(b.json)) {
        fs_fail(&b.err, FS_ERR_IO, "writing %s failed", json_path);
        bench_die(&b, "--json");
    }
    bench_close(&b);
    return 0;
}
