/* kernels/gemm_tiles.c: the ops' only door to BLAS (fs_sgemm, with the
 * per-thread OpenBLAS warm-up explained in gemm_tiles.h) and the fixed-tile
 * row GEMM behind fs_linear.
 *
 * Exactness of the row GEMM: OpenBLAS's result for a row of C depends on the
 * call's shape and on the row's place in the call, never on the other rows'
 * values. Tiles of FS_GEMM_TILE rows start at global multiples of the tile,
 * so a global row always sits at the same place of a same-shape call,
 * whatever m0/m split of the rows a caller (a rank, a strip) asks for. */
#include <cblas.h>
#include <omp.h>
#include <string.h>
#include "kernels/gemm_tiles.h"
#include "kernels/kernels.h"

/* ---------------------------------------------------------------- the call */

static _Thread_local int sgemm_thread_warm;

/* One 512 x 384 x 320 product: OpenBLAS "m" = 384 > GEMM_P, so the driver
 * packs all 512 columns of B into the buffer (655 KB), which faults in every
 * page the small-m kernels later prefetch (about 15-60 KB past the start of
 * the B area). About 3 ms, once per thread. */
static void sgemm_warm_this_thread(void) {
    enum { WM = 512, WN = 384, WK = 320 };
    sgemm_thread_warm = 1;
    float *buf = fs_alloc(((size_t)WM * WK + (size_t)WN * WK + (size_t)WM * WN) * sizeof(float));
    if (!buf) return; /* only speed is at stake */
    float *a = buf, *b = a + (size_t)WM * WK, *c = b + (size_t)WN * WK;
    memset(a, 0, ((size_t)WM * WK + (size_t)WN * WK) * sizeof(float));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, WM, WN, WK, 1.0f, a, WK, b, WK, 0.0f, c,
                WN);
    fs_free(buf);
}

void fs_sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
              int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    if (!sgemm_thread_warm) sgemm_warm_this_thread();
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void fs_sgemm_warm_all(void) {
#pragma omp parallel num_threads(fs_threads_count())
    {
        if (!sgemm_thread_warm) sgemm_warm_this_thread();
    }
}

void *fs_scratch_take(fs_arena *scratch, size_t bytes, void **owned, const char *what,
                      fs_error *err) {
    *owned = NULL;
    void *p;
    if (scratch) {
        p = fs_arena_alloc(scratch, bytes ? bytes : 1);
        if (!p)
            fs_fail(err, FS_ERR_NOMEM,
                    "%s: scratch arena too small: needs %zu more bytes, %zu of %zu in use", what,
                    bytes, fs_arena_used(scratch), fs_arena_capacity(scratch));
        return p;
    }
    p = fs_alloc(bytes ? bytes : 1);
    if (!p) fs_fail(err, FS_ERR_NOMEM, "%s: cannot allocate %zu bytes of scratch", what, bytes);
    *owned = p;
    return p;
}

/* ---------------------------------------------------------------- row tiles */

size_t fs_gemm_rows_nt_scratch_bytes(int k, int n) {
    /* Two slots (the first and the last tile are the only partial ones), each
     * an A tile and a C tile, plus alignment slack. */
    return 2 * (size_t)FS_GEMM_TILE * ((size_t)k + (size_t)n) * sizeof(float) + 256;
}

static void add_bias_rows(float *c, size_t rows, int n, const float *bias) {
    if (!bias) return;
    for (size_t r = 0; r < rows; r++) {
        float *cr = c + r * (size_t)n;
        for (int j = 0; j < n; j++) cr[j] += bias[j];
    }
}

fs_code fs_gemm_rows_nt(const float *a, float *c, size_t m, int k, int n, const float *b,
                        const float *bias, int64_t m0, fs_arena *scratch, fs_error *err) {
    if (k <= 0 || n <= 0 || m0 < 0)
        return fs_fail(err, FS_ERR_INVALID, "gemm rows: bad shape k=%d n=%d m0=%lld", k, n,
                       (long long)m0);
    if (m == 0) return FS_OK;
    if (!a || !c || !b) return fs_fail(err, FS_ERR_INVALID, "gemm rows: NULL matrix");
    const int64_t T = FS_GEMM_TILE;
    const int64_t t_first = m0 / T, t_last = (m0 + (int64_t)m - 1) / T;
    const int64_t ntiles = t_last - t_first + 1;
    const int first_partial = m0 % T != 0 || (int64_t)m < T;
    const int last_partial = (m0 + (int64_t)m) % T != 0;

    float *slots = NULL;
    void *owned = NULL;
    size_t mark = scratch ? fs_arena_mark(scratch) : 0;
    const size_t slot_floats = (size_t)T * ((size_t)k + (size_t)n);
    if (first_partial || last_partial) {
        slots = fs_scratch_take(scratch, 2 * slot_floats * sizeof(float), &owned, "gemm rows",
                                err);
        if (!slots) return err ? err->code : FS_ERR_NOMEM;
    }

#pragma omp parallel for schedule(dynamic, 1) num_threads(fs_threads_count())
    for (int64_t i = 0; i < ntiles; i++) {
        int64_t t = t_first + i;
        int64_t g0 = t * T;                                   /* global first row */
        int64_t lo = g0 > m0 ? g0 : m0;                       /* rows wanted: [lo, hi) */
        int64_t hi = g0 + T < m0 + (int64_t)m ? g0 + T : m0 + (int64_t)m;
        size_t rows = (size_t)(hi - lo);
        float *cdst = c + (size_t)(lo - m0) * (size_t)n;
        if (lo == g0 && hi == g0 + T) {
            fs_sgemm(0, 1, (int)T, n, k, 1.0f, a + (size_t)(g0 - m0) * (size_t)k, k, b, k, 0.0f,
                     cdst, n);
        } else {
            /* A partial tile: the wanted rows at their places in a zeroed T-row
             * tile, so the call has the full shape. */
            float *at = slots + (t == t_first ? 0 : slot_floats);
            float *ct = at + (size_t)T * (size_t)k;
            size_t off = (size_t)(lo - g0);
            memset(at, 0, (size_t)T * (size_t)k * sizeof(float));
            memcpy(at + off * (size_t)k, a + (size_t)(lo - m0) * (size_t)k,
                   rows * (size_t)k * sizeof(float));
            fs_sgemm(0, 1, (int)T, n, k, 1.0f, at, k, b, k, 0.0f, ct, n);
            memcpy(cdst, ct + off * (size_t)n, rows * (size_t)n * sizeof(float));
        }
        add_bias_rows(cdst, rows, n, bias);
    }
    if (scratch) fs_arena_reset(scratch, mark);
    fs_free(owned);
    return FS_OK;
}
