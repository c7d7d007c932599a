/* kernels/cuda/: what the .cu files share (not public: kernels/kernels.h is).
 * The context is a flat struct: device, one stream, one cuBLAS handle bound
 * to it, and one scratch buffer that ops carve in stream order (an op's
 * scratch is free again once the next op is queued behind it). */
#ifndef FS_KERNELS_CUDA_INTERNAL_H
#define FS_KERNELS_CUDA_INTERNAL_H
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stdint.h>
#include "kernels/kernels.h"

struct fs_cuda {
    int device;
    cudaStream_t stream;
    cublasHandle_t blas;
    char *scratch;
    size_t scratch_bytes;
    int sms;
    char name[320];
    /* device bytes allocated through the context: the live blocks (cudaFree
     * does not tell a block's size), now and at peak */
    struct fs_cuda_block { void *p; size_t bytes; } *live;
    size_t nlive, cap_live, mem_now, mem_peak;
};

/* Fails with the CUDA error's text, naming the op. */
#define FS_CU(expr, err, what)                                                                \
    do {                                                                                      \
        cudaError_t fs_cu_e_ = (expr);                                                        \
        if (fs_cu_e_ != cudaSuccess)                                                          \
            return fs_fail((err), FS_ERR_UNSUPPORTED, "cuda %s: %s", (what),                  \
                           cudaGetErrorString(fs_cu_e_));                                     \
    } while (0)
#define FS_CUBLAS(expr, err, what)                                                            \
    do {                                                                                      \
        cublasStatus_t fs_cb_s_ = (expr);                                                     \
        if (fs_cb_s_ != CUBLAS_STATUS_SUCCESS)                                                \
            return fs_fail((err), FS_ERR_UNSUPPORTED, "cublas %s: %s", (what),                \
                           cublasGetStatusString(fs_cb_s_));                                  \
    } while (0)
/* After a kernel launch: launch errors (bad configuration) now. */
#define FS_CU_LAUNCHED(err, what) FS_CU(cudaGetLastError(), err, what)

/* Blocks for a grid-stride loop over n items. */
static inline unsigned fs_cu_blocks(size_t n, int threads) {
    size_t b = (n + (size_t)threads - 1) / (size_t)threads;
    if (b > 65535u * 32u) b = 65535u * 32u;
    return b ? (unsigned)b : 1u;
}

/* Scratch of `bytes` (256-byte aligned pieces) or a clear error. */
static inline fs_code fs_cu_scratch(fs_cuda *cu, size_t bytes, char **out, fs_error *err,
                                    const char *what) {
    if (bytes > cu->scratch_bytes)
        return fs_fail(err, FS_ERR_NOMEM,
                       "cuda %s: needs %.1f MB of scratch, the context has %.1f MB "
                       "(fs_cuda_open's scratch_bytes)",
                       what, bytes / 1e6, cu->scratch_bytes / 1e6);
    *out = cu->scratch;
    return FS_OK;
}
static inline size_t fs_cu_align(size_t bytes) { return (bytes + 255) & ~(size_t)255; }

/* Stages a tile of `rows` global rows from tile_row0 into dst [rows][width]:
 * global row g comes from src row g - r0 (row stride lds) when r0 <= g < r1,
 * else it is zeros (the fixed-shape tile's padding). */
static __global__ void fs_cu_stage_rows(const float *src, int lds, float *dst, int64_t tile_row0,
                                        int64_t r0, int64_t r1, int rows, int width) {
    size_t total = (size_t)rows * width;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        int64_t g = tile_row0 + (int64_t)(i / width);
        dst[i] = (g >= r0 && g < r1) ? src[(size_t)(g - r0) * lds + i % width] : 0.0f;
    }
}
#endif
