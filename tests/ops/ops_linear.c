/* Op cases: fs_linear (kernels/linear.c on the fixed-tile GEMM of
 * kernels/gemm_tiles.c) against fs_linear_ref, and its exactness: the rows of
 * a random split of m (each piece computed with its own m0) and a run on
 * 1 thread vs 2 must give the whole-matrix bits.
 *
 * Tolerance: the reference sums in double; the fast one in float with
 * OpenBLAS's blocking, whose error grows like eps * sqrt(k) relative to the
 * typical output (random signs). Normalised by max|ref| (about 3-4 typical
 * outputs), 1e-5 * max(1, sqrt(k / 256)) leaves a margin of ~10x over what
 * is measured (worst ~1e-6 at k = 1280). */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "kernels/kernels.h"
#include "ops/ops_harness.h"

static double linear_tol(int k) {
    double f = sqrt((double)k / 256.0);
    return 1e-5 * (f > 1 ? f : 1);
}

/* One shape: fast vs reference at global offset m0, then the split and
 * thread checks. */
static void linear_case(size_t m, int k, int nout, int with_bias, int64_t m0) {
    char shape[160];
    snprintf(shape, sizeof shape, "m=%zu k=%d nout=%d bias=%d m0=%lld", m, k, nout, with_bias,
             (long long)m0);
    float *x = harness_random(m * (size_t)k, -1.0f, 1.0f);
    float *w = harness_random((size_t)nout * k, -1.0f, 1.0f);
    float *b = with_bias ? harness_random((size_t)nout, -1.0f, 1.0f) : NULL;
    size_t ny = m * (size_t)nout;
    float *ref = fs_alloc(ny * sizeof(float) + 4), *fast = fs_alloc(ny * sizeof(float) + 4);
    float *part = fs_alloc(ny * sizeof(float) + 4);
    fs_error err = {0};
    fs_arena *arena = fs_arena_create(fs_linear_scratch_bytes(k, nout), &err);

    fs_linear_ref(x, ref, m, k, nout, w, b);
    memset(fast, 0xff, ny * sizeof(float)); /* NaN: every output must be written */
    if (hb_linear(x, fast, m, k, nout, w, b, m0, arena, &err) != FS_OK)
        fprintf(stderr, "linear [%s]: %s\n", shape, err.msg);
    harness_compare("linear", shape, ref, fast, ny, linear_tol(k));

    /* a random split of the rows: each piece with its own global offset */
    memset(part, 0xff, ny * sizeof(float));
    for (size_t r0 = 0; r0 < m;) {
        size_t len = (size_t)harness_int(1, (int)(m - r0 < 300 ? m - r0 : 300));
        if (hb_linear(x + r0 * k, part + r0 * nout, len, k, nout, w, b, m0 + (int64_t)r0, arena,
                      &err) != FS_OK)
            fprintf(stderr, "linear split [%s]: %s\n", shape, err.msg);
        r0 += len;
    }
    harness_identical("linear split", shape, fast, part, ny);

    /* threads: 1 vs 2, without an arena (scratch then fs_alloc'ed) */
    int saved = fs_threads_count();
    fs_threads_init(1);
    memset(part, 0xff, ny * sizeof(float));
    hb_linear(x, part, m, k, nout, w, b, m0, NULL, &err);
    harness_identical("linear threads", shape, fast, part, ny);
    fs_threads_init(2);
    memset(part, 0xff, ny * sizeof(float));
    hb_linear(x, part, m, k, nout, w, b, m0, NULL, &err);
    harness_identical("linear threads", shape, fast, part, ny);
    fs_threads_init(saved);

    fs_arena_destroy(arena);
    fs_free(x); fs_free(w); fs_free(b); fs_free(ref); fs_free(fast); fs_free(part);
}

/* fs_linear_whole (a matrix every rank holds whole: one tile of m rows, or
 * 256-row tiles above FS_LINEAR_WHOLE_MAX) against the reference, and the
 * same bits on 1 and 2 threads. */
static void linear_whole_case(size_t m, int k, int nout, int with_bias) {
    char shape[160];
    snprintf(shape, sizeof shape, "whole m=%zu k=%d nout=%d bias=%d", m, k, nout, with_bias);
    float *x = harness_random(m * (size_t)k, -1.0f, 1.0f);
    float *w = harness_random((size_t)nout * k, -1.0f, 1.0f);
    float *b = with_bias ? harness_random((size_t)nout, -1.0f, 1.0f) : NULL;
    size_t ny = m * (size_t)nout;
    float *ref = fs_alloc(ny * sizeof(float) + 4), *fast = fs_alloc(ny * sizeof(float) + 4);
    float *part = fs_alloc(ny * sizeof(float) + 4);
    fs_error err = {0};
    fs_arena *arena = fs_arena_create(fs_linear_whole_scratch_bytes(m, k, nout) + 64, &err);
    fs_linear_ref(x, ref, m, k, nout, w, b);
    memset(fast, 0xff, ny * sizeof(float));
    if (hb_linear_whole(x, fast, m, k, nout, w, b, arena, &err) != FS_OK)
        fprintf(stderr, "linear whole [%s]: %s\n", shape, err.msg);
    harness_compare("linear whole", shape, ref, fast, ny, linear_tol(k));
    if (m > 2048) { /* beyond one tile on every backend: the tiles from row 0 */
        memset(part, 0xff, ny * sizeof(float));
        hb_linear(x, part, m, k, nout, w, b, 0, NULL, &err);
        harness_identical("linear whole = tiles from row 0", shape, fast, part, ny);
    }
    int saved = fs_threads_count();
    for (int t = 1; t <= 2; t++) {
        fs_threads_init(t);
        memset(part, 0xff, ny * sizeof(float));
        hb_linear_whole(x, part, m, k, nout, w, b, NULL, &err);
        harness_identical("linear whole threads", shape, fast, part, ny);
    }
    fs_threads_init(saved);
    fs_arena_destroy(arena);
    fs_free(x); fs_free(w); fs_free(b); fs_free(ref); fs_free(fast); fs_free(part);
}

/* Bad input is refused with a message, not a crash. */
static void linear_errors(void) {
    float one = 1.0f, out = 0.0f;
    fs_error err = {0};
    fs_code c1 = fs_linear(&one, &out, 1, 0, 1, &one, NULL, 0, NULL, &err);
    fs_code c2 = fs_linear(&one, &out, 1, 1, 1, &one, NULL, -3, NULL, &err);
    fs_code c3 = fs_linear(NULL, &out, 1, 1, 1, &one, NULL, 0, NULL, &err);
    float got[3] = {(float)c1, (float)c2, (float)c3};
    float want[3] = {FS_ERR_INVALID, FS_ERR_INVALID, FS_ERR_INVALID};
    harness_identical("linear errors", "k=0, m0<0, x=NULL", want, got, 3);
}

void ops_cases_linear(void) {
    if (harness_on_cpu()) linear_errors();
    /* fixed shapes at the tile edges */
    linear_case(1, 1, 1, 1, 0);
    linear_case(1, 7, 5, 0, 255);
    linear_case(256, 64, 48, 1, 0);
    linear_case(257, 33, 65, 1, 0);
    linear_case(300, 320, 320, 1, 200);
    linear_case(513, 1280, 96, 1, 511);
    linear_case(64, 2048, 40, 0, 7);
    /* wide outputs: several column blocks (fs_gemm_col_block), uneven last */
    linear_case(300, 24, 1300, 1, 100);
    linear_case(257, 16, 700, 0, 0);
    linear_case(40, 8, 10240, 1, 3);
    linear_whole_case(154, 64, 1280, 1);
    linear_whole_case(77, 33, 650, 0);
    linear_whole_case(1100, 8, 48, 1);
    linear_whole_case(5000, 96, 80, 1);
    /* random shapes */
    for (int i = 0; i < 14; i++) {
        size_t m = (size_t)harness_int(1, 700);
        int k = harness_int(1, 400), nout = harness_int(1, 400);
        linear_case(m, k, nout, harness_int(0, 1), harness_int(0, 1) ? 0 : harness_int(0, 2000));
    }
}
