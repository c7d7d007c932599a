/* Op cases: GroupNorm (partials / finish / apply against fs_groupnorm_ref)
 * and LayerNorm (kernels/norm.c).
 *
 * GroupNorm's statistics must be the same bits however the map is cut into
 * row strips: each case computes the per-row partials of several random
 * strip splits (one-row strips included) into one global array, folds them in
 * row order and checks mean/rstd and the applied output against the
 * whole-map ones bit for bit, and against the reference within tolerance. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "kernels/kernels.h"
#include "ops/ops_harness.h"

/* Rows [r0, r1) of each of the n images of a [n][h][row_len] map. */
static float *take_rows(const float *x, int n, int h, size_t row_len, int r0, int r1) {
    float *s = fs_alloc((size_t)n * (r1 - r0) * row_len * sizeof(float) + 1);
    for (int b = 0; b < n; b++)
        memcpy(s + (size_t)b * (r1 - r0) * row_len, x + ((size_t)b * h + r0) * row_len,
               (size_t)(r1 - r0) * row_len * sizeof(float));
    return s;
}

static void put_rows(float *y, const float *s, int n, int h, size_t row_len, int r0, int r1) {
    for (int b = 0; b < n; b++)
        memcpy(y + ((size_t)b * h + r0) * row_len, s + (size_t)b * (r1 - r0) * row_len,
               (size_t)(r1 - r0) * row_len * sizeof(float));
}

/* A random split of [0, h) into strips: fills cuts[0] = 0 < ... < cuts[k] = h,
 * returns k. mode 0: random; 1: one-row strips. */
static int random_split(int h, int mode, int *cuts) {
    int k = 0;
    cuts[0] = 0;
    while (cuts[k] < h) {
        int step = mode == 1 ? 1 : harness_int(1, h - cuts[k]);
        cuts[k + 1] = cuts[k] + step;
        k++;
    }
    return k;
}

static void groupnorm_case(int n, int h, int w, int c, int groups, int silu, int affine,
                           float lo, float hi) {
    char shape[128];
    float eps = 1e-5f;
    snprintf(shape, sizeof shape, "n=%d h=%d w=%d c=%d groups=%d silu=%d affine=%d", n, h, w, c,
             groups, silu, affine);
    size_t row_len = (size_t)w * c, total = (size_t)n * h * row_len;
    size_t ng = (size_t)n * groups, npart = (size_t)h * ng * 2;
    float *x = harness_random(total, lo, hi);
    float *gamma = affine ? harness_random((size_t)c, 0.5f, 1.5f) : NULL;
    float *beta = affine ? harness_random((size_t)c, -0.5f, 0.5f) : NULL;
    float *ref = fs_alloc(total * sizeof(float)), *fast = fs_alloc(total * sizeof(float));
    float *strip_y = fs_alloc(total * sizeof(float));
    double *part = fs_alloc(npart * sizeof(double)), *wpart = fs_alloc(npart * sizeof(double));
    float *mean = fs_alloc(ng * sizeof(float)), *rstd = fs_alloc(ng * sizeof(float));
    float *smean = fs_alloc(ng * sizeof(float)), *srstd = fs_alloc(ng * sizeof(float));

    fs_groupnorm_ref(x, ref, n, h, w, c, groups, eps, gamma, beta, silu);
    hb_groupnorm_partials(x, n, h, w, c, groups, part);
    memcpy(wpart, part, npart * sizeof(double));
    fs_groupnorm_finish(part, h, n, w, c, groups, eps, mean, rstd);
    hb_groupnorm_apply(x, fast, n, h, w, c, groups, mean, rstd, gamma, beta, silu);
    harness_compare("groupnorm", shape, ref, fast, total, 2e-5);

    int cuts[4096];
    for (int trial = 0; trial < 3; trial++) {
        int k = random_split(h, trial == 2 ? 1 : 0, cuts);
        /* 1 thread for the first split, 3 for the others: threads must not matter */
        int saved = fs_threads_count();
        fs_threads_init(trial == 0 ? 1 : 3);
        memset(part, 0xff, npart * sizeof(double)); /* garbage: every entry must be written */
        for (int s = 0; s < k; s++) {
            float *xs = take_rows(x, n, h, row_len, cuts[s], cuts[s + 1]);
            hb_groupnorm_partials(xs, n, cuts[s + 1] - cuts[s], w, c, groups,
                                  part + (size_t)cuts[s] * ng * 2);
            fs_free(xs);
        }
        fs_groupnorm_finish(part, h, n, w, c, groups, eps, smean, srstd);
        for (int s = 0; s < k; s++) {
            float *xs = take_rows(x, n, h, row_len, cuts[s], cuts[s + 1]);
            /* in place on the strip */
            hb_groupnorm_apply(xs, xs, n, cuts[s + 1] - cuts[s], w, c, groups, smean, srstd,
                               gamma, beta, silu);
            put_rows(strip_y, xs, n, h, row_len, cuts[s], cuts[s + 1]);
            fs_free(xs);
        }
        fs_threads_init(saved);
        char sshape[192];
        snprintf(sshape, sizeof sshape, "%s, %d strips", shape, k);
        /* doubles compared as their bytes */
        harness_identical("groupnorm strip partials", sshape, (const float *)wpart,
                          (const float *)part, 2 * npart);
        harness_identical("groupnorm strip mean", sshape, mean, smean, ng);
        harness_identical("groupnorm strip rstd", sshape, rstd, srstd, ng);
        harness_identical("groupnorm strip output", sshape, fast, strip_y, total);
    }
    fs_free(x);
    fs_free(gamma);
    fs_free(beta);
    fs_free(ref);
    fs_free(fast);
    fs_free(strip_y);
    fs_free(part);
    fs_free(wpart);
    fs_free(mean);
    fs_free(rstd);
    fs_free(smean);
    fs_free(srstd);
}

/* Known values, by hand: a 1x1x2 map with c = 4 in 2 groups of 2 channels,
 * pixels p0 = (1, 0, 3, 0), p1 = (3, 0, 5, 4):
 * group 0 = {1, 0, 3, 0}: mean 1, var (0 + 1 + 4 + 1) / 4 = 1.5;
 * group 1 = {3, 0, 5, 4}: mean 3, var (0 + 9 + 4 + 1) / 4 = 3.5. */
static void groupnorm_known(void) {
    float x[8] = {1, 0, 3, 0, 3, 0, 5, 4}, y[8], want[8];
    double part[2 * 2];
    float mean[2], rstd[2];
    double r0 = 1.0 / sqrt(1.5), r1 = 1.0 / sqrt(3.5);
    double m[2] = {1, 3}, r[2] = {r0, r1};
    for (int p = 0; p < 2; p++)
        for (int ch = 0; ch < 4; ch++)
            want[p * 4 + ch] = (float)((x[p * 4 + ch] - m[ch / 2]) * r[ch / 2]);
    hb_groupnorm_partials(x, 1, 1, 2, 4, 2, part);
    fs_groupnorm_finish(part, 1, 1, 2, 4, 2, 0.0f, mean, rstd);
    hb_groupnorm_apply(x, y, 1, 1, 2, 4, 2, mean, rstd, NULL, NULL, 0);
    harness_compare("groupnorm hand-computed", "1x1x2x4", want, y, 8, 1e-6);
    if (!harness_on_cpu()) return; /* the reference is the CPU's own */
    fs_groupnorm_ref(x, y, 1, 1, 2, 4, 2, 0.0f, NULL, NULL, 0);
    harness_compare("groupnorm_ref hand-computed", "1x1x2x4", want, y, 8, 1e-6);
}

static void layernorm_case(size_t tokens, int c, int affine, float lo, float hi) {
    char shape[96];
    snprintf(shape, sizeof shape, "tokens=%zu c=%d affine=%d", tokens, c, affine);
    size_t total = tokens * (size_t)c;
    float *x = harness_random(total, lo, hi);
    float *gamma = affine & 1 ? harness_random((size_t)c, 0.5f, 1.5f) : NULL;
    float *beta = affine & 2 ? harness_random((size_t)c, -0.5f, 0.5f) : NULL;
    float *ref = fs_alloc(total * sizeof(float)), *fast = fs_alloc(total * sizeof(float));
    float *other = fs_alloc(total * sizeof(float));
    fs_layernorm_ref(x, ref, tokens, c, 1e-5f, gamma, beta);
    hb_layernorm(x, fast, tokens, c, 1e-5f, gamma, beta);
    harness_compare("layernorm", shape, ref, fast, total, 2e-5);
    memcpy(other, x, total * sizeof(float));
    int saved = fs_threads_count();
    fs_threads_init(1);
    hb_layernorm(other, other, tokens, c, 1e-5f, gamma, beta);
    fs_threads_init(saved);
    harness_identical("layernorm in-place/threads", shape, fast, other, total);
    fs_free(x);
    fs_free(gamma);
    fs_free(beta);
    fs_free(ref);
    fs_free(fast);
    fs_free(other);
}

void ops_cases_norm(void) {
    groupnorm_known();
    /* SDXL-like: 32 groups of 10 / 20 channels, batch 2 (CFG) */
    groupnorm_case(2, 8, 8, 320, 32, 1, 1, -2.0f, 3.0f);
    groupnorm_case(2, 5, 3, 640, 32, 0, 1, -1.0f, 1.0f);
    groupnorm_case(1, 4, 4, 1280, 32, 1, 0, -3.0f, 1.0f); /* > one channel block */
    groupnorm_case(1, 1, 1, 4, 4, 0, 1, -1.0f, 1.0f);     /* one value per group: y = beta */
    for (int i = 0; i < 14; i++) {
        int groups = harness_int(1, 8);
        int c = groups * harness_int(1, 24), h = harness_int(1, 13), w = harness_int(1, 13);
        float lo = (float)harness_int(-4, 2);
        /* one value per group normalises to 0: then give it gamma/beta */
        int affine = h * w * (c / groups) == 1 ? 1 : harness_int(0, 1);
        groupnorm_case(harness_int(1, 2), h, w, c, groups, harness_int(0, 1), affine, lo,
                       lo + (float)harness_int(1, 4));
    }
    static const int cs[] = {1, 7, 8, 9, 64, 320, 768, 1280, 2048};
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++)
        /* c = 1 normalises to 0: give it a beta so the case checks something */
        layernorm_case((size_t)harness_int(1, 40), cs[i], cs[i] == 1 ? 2 : harness_int(0, 3),
                       -2.0f, 3.0f);
    for (int i = 0; i < 6; i++) {
        int c = harness_int(1, 1500);
        layernorm_case((size_t)harness_int(1, 300), c, c == 1 ? 2 : harness_int(0, 3), -1.0f, 1.0f);
    }
}
