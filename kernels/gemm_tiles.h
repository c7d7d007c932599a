/* kernels/gemm_tiles.h (private to kernels/): the one door to BLAS for the
 * ops, and the fixed-tile row GEMM that fs_linear is made of.
 *
 * Every BLAS call of an op goes through fs_sgemm: one single-threaded
 * OpenBLAS sgemm on the calling thread, whose shape the caller has fixed from
 * global quantities only (see kernels.h, "Exactness"). */
#ifndef FS_KERNELS_GEMM_TILES_H
#define FS_KERNELS_GEMM_TILES_H

#include <stddef.h>
#include <stdint.h>
#include "core/core.h"

/* Row-major C[M][N] = alpha * op(A) * op(B) + beta * C, op(A) is M x K
 * (A is [M][lda] or, with trans_a, [K][lda]), op(B) is K x N (B is [K][ldb]
 * or, with trans_b, [N][ldb]).
 *
 * The first call on each thread first runs one throw-away sgemm that makes
 * OpenBLAS fault in its per-thread packing buffer. Why (measured with perf
 * and gdb on OpenBLAS 0.3.21, Zen): when the OpenBLAS "m" (row-major N) fits
 * one GEMM_P block (<= 320 floats for sgemm), the driver packs every B panel
 * at the start of the buffer and the kernel's prefetcht1 of the "next" panel
 * lands on buffer pages that were never touched; each such prefetch costs a
 * page walk, and the product runs at 11-12 GFLOP/s instead of 42-44. Once
 * the pages are present (any earlier call that packed a wide B), the same
 * shapes reach full speed. The warm-up changes no result bits (prefetches
 * have no arithmetic effect; checked). */
void fs_sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
              int lda, const float *B, int ldb, float beta, float *C, int ldc);

/* Runs the warm-up on every thread of the pool now (optional: fs_sgemm does
 * it lazily; benchmarks call it so their first timing is not the cold one). */
void fs_sgemm_warm_all(void);

/* C[m][n] = A[m][k] * B[n][k]^T (+ bias[n]) for rows m0 .. m0+m-1 of a global
 * matrix, in tiles of FS_GEMM_TILE rows at global multiples of the tile, each
 * cut into column blocks of fs_gemm_col_block(n) columns (fixed by n), each
 * (tile, block) one sgemm of shape FS_GEMM_TILE x block x k (partial tiles
 * zero-padded in scratch) and one task for the threads (OpenMP). scratch may be NULL (then the
 * few bytes needed are fs_alloc'ed). */
fs_code fs_gemm_rows_nt(const float *a, float *c, size_t m, int k, int n, const float *b,
                        const float *bias, int64_t m0, fs_arena *scratch, fs_error *err);
/* The same with tiles of `tile` rows (at global multiples of it) instead of
 * FS_GEMM_TILE; the caller picks tile from global quantities only. Scratch:
 * 2 * tile * (k + n) floats when the first or last tile is partial. */
fs_code fs_gemm_rows_nt_tiled(const float *a, float *c, size_t m, int k, int n, const float *b,
                              const float *bias, int64_t m0, int tile, fs_arena *scratch,
                              fs_error *err);
/* Scratch bytes fs_gemm_rows_nt needs from an arena (partial first/last tile). */
size_t fs_gemm_rows_nt_scratch_bytes(int k, int n);
/* Width of the column blocks (all but the last) the row GEMM cuts n into. */
int fs_gemm_col_block(int n);

/* Takes `bytes` from the arena (64-byte aligned) or, when the arena is NULL,
 * from fs_alloc (then *owned is set and the caller fs_frees it). Returns NULL
 * with err set when there is not enough room, naming `what`. */
void *fs_scratch_take(fs_arena *scratch, size_t bytes, void **owned, const char *what,
                      fs_error *err);

#endif
