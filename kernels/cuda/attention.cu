// Attention on the device: softmax(q k^T * scale) v per head, by query tiles
// of a fixed size aligned on global query indices (q0). A tile's queries are
// staged (zero rows past the strip) into scratch; one strided-batched cuBLAS
// GEMM over the heads makes the tile's scores against all nk keys, a block
// per row turns them into exp(s - max) with the row's sum, a second batched
// GEMM multiplies by V, and the output rows are divided by their sums on the
// way out: four launches per tile. The scores (heads x TQ x nk floats) are
// the only buffer that grows with nk; TQ, a power of two, shrinks with nk so
// they stay under 256 MB (the VAE's 4096^2 mid-block attention: 262,144 keys,
// 256 queries per tile), and is at most max(nk, 1024) so a self-attention
// map is not padded past one tile. Every shape depends on nk, heads and dh
// only, so a query row gets the same bits whatever strip computes it.
#include <float.h>
#include "kernels/cuda/cuda_internal.h"

#define ATT_SCORE_BYTES ((size_t)256 << 20)
#define ATT_TILE_MAX 4096
#define ATT_TILE_MIN 16
#define SOFTMAX_THREADS 256

// Row r of s (n floats): s = exp(s - max), sum[r] = the sum (double tree).
__global__ static void softmax_rows_kernel(float *s, int n, double *sum) {
    __shared__ float shm[SOFTMAX_THREADS];
    __shared__ double shs[SOFTMAX_THREADS];
    float *row = s + (size_t)blockIdx.x * n;
    float m = -FLT_MAX;
    for (int i = threadIdx.x; i < n; i += SOFTMAX_THREADS) m = fmaxf(m, row[i]);
    shm[threadIdx.x] = m;
    __syncthreads();
    for (int k = SOFTMAX_THREADS / 2; k > 0; k >>= 1) {
        if ((int)threadIdx.x < k) shm[threadIdx.x] = fmaxf(shm[threadIdx.x], shm[threadIdx.x + k]);
        __syncthreads();
    }
    m = shm[0];
    double acc = 0.0;
    for (int i = threadIdx.x; i < n; i += SOFTMAX_THREADS) {
        float e = expf(row[i] - m);
        row[i] = e;
        acc += e;
    }
    shs[threadIdx.x] = acc;
    __syncthreads();
    for (int k = SOFTMAX_THREADS / 2; k > 0; k >>= 1) {
        if ((int)threadIdx.x < k) shs[threadIdx.x] += shs[threadIdx.x + k];
        __syncthreads();
    }
    if (threadIdx.x == 0) sum[blockIdx.x] = shs[0];
}

// o[(g - r0) * ldo + h * dh + j] = os[r][h * dh + j] / sum[h][r] for the
// tile's rows in [r0, r1).
__global__ static void unstage_o_kernel(const float *os, const double *sum, float *o, int ldo,
                                        int64_t tile_row0, int64_t r0, int64_t r1, int rows,
                                        int heads, int dh) {
    int width = heads * dh;
    size_t total = (size_t)rows * width;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        int r = (int)(i / width), j = (int)(i % width);
        int64_t g = tile_row0 + r;
        if (g < r0 || g >= r1) continue;
        o[(size_t)(g - r0) * ldo + j] = (float)(os[i] / sum[(size_t)(j / dh) * rows + r]);
    }
}

extern "C" fs_code fs_cuda_attention(fs_cuda *cu, const float *q, int ldq, const float *k,
                                     int ldk, const float *v, int ldv, float *o, int ldo, int nq,
                                     int nk, int heads, int dh, float scale, int64_t q0,
                                     fs_error *err) {
    if (nq <= 0) return FS_OK;
    int width = heads * dh;
    if (nk <= 0 || heads <= 0 || dh <= 0 || ldq < width || ldk < width || ldv < width ||
        ldo < width)
        return fs_fail(err, FS_ERR_INVALID,
                       "cuda attention: nk %d heads %d dh %d, strides q %d k %d v %d o %d", nk,
                       heads, dh, ldq, ldk, ldv, ldo);
    size_t cap = ATT_SCORE_BYTES / ((size_t)heads * nk * 4);
    if (cap > ATT_TILE_MAX) cap = ATT_TILE_MAX;
    if (cap > (size_t)(nk > 1024 ? nk : 1024)) cap = nk > 1024 ? nk : 1024;
    size_t tq = ATT_TILE_MIN;
    while (tq * 2 <= cap) tq *= 2;
    int TQ = (int)tq;
    size_t qs_bytes = fs_cu_align((size_t)TQ * width * 4);
    size_t s_bytes = fs_cu_align((size_t)heads * TQ * nk * 4);
    size_t sum_bytes = fs_cu_align((size_t)TQ * heads * 8);
    char *s = NULL;
    fs_code rc = fs_cu_scratch(cu, 2 * qs_bytes + s_bytes + sum_bytes, &s, err, "attention");
    if (rc) return rc;
    float *qs = (float *)s, *os = (float *)(s + qs_bytes), *sc = (float *)(s + 2 * qs_bytes);
    double *sum = (double *)(s + 2 * qs_bytes + s_bytes);
    int64_t r0 = q0, r1 = q0 + nq;
    int64_t t0 = r0 >= 0 ? r0 / TQ : -((-r0 + TQ - 1) / TQ);
    const float one = 1.0f, zero = 0.0f;
    for (int64_t t = t0; t * TQ < r1; t++) {
        int64_t row0 = t * TQ;
        fs_cu_stage_rows<<<fs_cu_blocks((size_t)TQ * width, 256), 256, 0, cu->stream>>>(
            q, ldq, qs, row0, r0, r1, TQ, width);
        FS_CU_LAUNCHED(err, "attention stage");
        // scores, per head column-major nk x TQ: S^T = K_h (nk x dh) * Q_h^T
        FS_CUBLAS(cublasSgemmStridedBatched(cu->blas, CUBLAS_OP_T, CUBLAS_OP_N, nk, TQ, dh,
                                            &scale, k, ldk, dh, qs, width, dh, &zero, sc, nk,
                                            (long long)TQ * nk, heads),
                  err, "attention scores");
        softmax_rows_kernel<<<(unsigned)((size_t)heads * TQ), SOFTMAX_THREADS, 0, cu->stream>>>(
            sc, nk, sum);
        FS_CU_LAUNCHED(err, "attention softmax");
        // per head O_h^T (dh x TQ) = V_h^T (dh x nk) * P^T (nk x TQ)
        FS_CUBLAS(cublasSgemmStridedBatched(cu->blas, CUBLAS_OP_N, CUBLAS_OP_N, dh, TQ, nk, &one,
                                            v, ldv, dh, sc, nk, (long long)TQ * nk, &zero, os,
                                            width, dh, heads),
                  err, "attention values");
        unstage_o_kernel<<<fs_cu_blocks((size_t)TQ * width, 256), 256, 0, cu->stream>>>(
            os, sum, o, ldo, row0, r0, r1, TQ, heads, dh);
        FS_CU_LAUNCHED(err, "attention unstage");
    }
    return FS_OK;
}
