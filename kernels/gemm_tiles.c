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

/* Column blocks. A product's C columns (rows of W) are cut into blocks at
 * fixed places that depend on n alone, and each (row tile, column block) is
 * one sgemm and one task for the threads. Why: a layer whose strip holds a
 * single row tile (every token product at SDXL's 16x16 level, the text
 * context's K and V) would otherwise keep one thread busy and the other idle;
 * and measured on one core (OpenBLAS 0.3.21, Zen), blocks of ~320 columns
 * run as fast or faster than the whole width (M=256, K=1280: 44 GFLOP/s at
 * N = 320, 41.5 at 1280, 38.8 at 10240: a narrow packed W block stays in L2).
 * Results: an element's bits depend on its call's shape and its place in the
 * call; both are fixed by (k, n) and its global row, never by the split or
 * the thread count. */
enum { GEMM_COL_TARGET = 320 };

int fs_gemm_col_block(int n) {
    int blocks = (n + GEMM_COL_TARGET / 2) / GEMM_COL_TARGET;
    if (blocks <= 1) return n;
    int nb = (n + blocks - 1) / blocks;
    nb = (nb + 15) / 16 * 16; /* whole micro-kernel panels */
    return nb < n ? nb : n;
}

size_t fs_gemm_rows_nt_scratch_bytes(int k, int n) {
    /* Two slots (the first and the last tile are the only partial ones), each
     * an A tile and a C tile, plus alignment slack. */
    return 2 * (size_t)FS_GEMM_TILE * ((size_t)k + (size_t)n) * sizeof(float) + 256;
}

static void add_bias_rows(float *c, size_t rows, int ldc, int nc, const float *bias) {
    if (!bias) return;
    for (size_t r = 0; r < rows; r++) {
        float *cr = c + r * (size_t)ldc;
        for (int j = 0; j < nc; j++) cr[j] += bias[j];
    }
}

fs_code fs_gemm_rows_nt_tiled(const float *a, float *c, size_t m, int k, int n, const float *b,
                              const float *bias, int64_t m0, int tile, fs_arena *scratch,
                              fs_error *err) {
    if (k <= 0 || n <= 0 || m0 < 0 || tile <= 0)
        return fs_fail(err, FS_ERR_INVALID, "gemm rows: bad shape k=%d n=%d m0=%lld tile=%d", k,
                       n, (long long)m0, tile);
    if (m == 0) return FS_OK;
    if (!a || !c || !b) return fs_fail(err, FS_ERR_INVALID, "gemm rows: NULL matrix");
    const int64_t T = tile;
    const int64_t t_first = m0 / T, t_last = (m0 + (int64_t)m - 1) / T;
    const int64_t ntiles = t_last - t_first + 1;
    const int first_partial = m0 % T != 0 || (int64_t)m < T;
    const int last_partial = (m0 + (int64_t)m) % T != 0;
    const int nb = fs_gemm_col_block(n), ncb = (n + nb - 1) / nb;

    float *slots = NULL;
    void *owned = NULL;
    size_t mark = scratch ? fs_arena_mark(scratch) : 0;
    const size_t slot_floats = (size_t)T * ((size_t)k + (size_t)n);
    if (first_partial || last_partial) {
        slots = fs_scratch_take(scratch, 2 * slot_floats * sizeof(float), &owned, "gemm rows",
                                err);
        if (!slots) return err ? err->code : FS_ERR_NOMEM;
        /* The partial tiles' rows at their places in zeroed T-row tiles, so
         * their calls have the full shape; made before the tasks because all
         * column blocks of a tile read them. */
        for (int s = 0; s < 2; s++) {
            int64_t t = s == 0 ? t_first : t_last;
            if (s == 1 && (t_last == t_first || !last_partial)) break;
            if (s == 0 && !first_partial) continue;
            int64_t g0 = t * T;
            int64_t lo = g0 > m0 ? g0 : m0;
            int64_t hi = g0 + T < m0 + (int64_t)m ? g0 + T : m0 + (int64_t)m;
            float *at = slots + (size_t)s * slot_floats;
            memset(at, 0, (size_t)T * (size_t)k * sizeof(float));
            memcpy(at + (size_t)(lo - g0) * (size_t)k, a + (size_t)(lo - m0) * (size_t)k,
                   (size_t)(hi - lo) * (size_t)k * sizeof(float));
        }
    }

#pragma omp parallel for schedule(dynamic, 1) num_threads(fs_threads_count())
    for (int64_t task = 0; task < ntiles * ncb; task++) {
        int64_t t = t_first + task / ncb;
        int j0 = (int)(task % ncb) * nb;
        int nc = n - j0 < nb ? n - j0 : nb;
        int64_t g0 = t * T;                                   /* global first row */
        int64_t lo = g0 > m0 ? g0 : m0;                       /* rows wanted: [lo, hi) */
        int64_t hi = g0 + T < m0 + (int64_t)m ? g0 + T : m0 + (int64_t)m;
        size_t rows = (size_t)(hi - lo);
        float *cdst = c + (size_t)(lo - m0) * (size_t)n + j0;
        const float *bj = b + (size_t)j0 * (size_t)k;
        if (lo == g0 && hi == g0 + T) {
            fs_sgemm(0, 1, (int)T, nc, k, 1.0f, a + (size_t)(g0 - m0) * (size_t)k, k, bj, k,
                     0.0f, cdst, n);
        } else {
            const int s = t == t_first && first_partial ? 0 : 1;
            const float *at = slots + (size_t)s * slot_floats;
            float *ct = slots + (size_t)s * slot_floats + (size_t)T * (size_t)k;
            size_t off = (size_t)(lo - g0);
            fs_sgemm(0, 1, (int)T, nc, k, 1.0f, at, k, bj, k, 0.0f, ct + j0, n);
            for (size_t r = 0; r < rows; r++)
                memcpy(cdst + r * (size_t)n, ct + (off + r) * (size_t)n + j0,
                       (size_t)nc * sizeof(float));
        }
        add_bias_rows(cdst, rows, n, nc, bias ? bias + j0 : NULL);
    }
    if (scratch) fs_arena_reset(scratch, mark);
    fs_free(owned);
    return FS_OK;
}

fs_code fs_gemm_rows_nt(const float *a, float *c, size_t m, int k, int n, const float *b,
                        const float *bias, int64_t m0, fs_arena *scratch, fs_error *err) {
    return fs_gemm_rows_nt_tiled(a, c, m, k, n, b, bias, m0, FS_GEMM_TILE, scratch, err);
}
