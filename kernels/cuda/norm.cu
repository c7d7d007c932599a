// GroupNorm (per-row partials, apply) and LayerNorm on the device. Sums are
// in double over a fixed reduction tree per row or token (threads stride the
// row, then a shared-memory tree), so a row's partial has the same bits
// whatever strip holds it; the CPU's order differs, so bits differ from the
// CPU op's, by far less than 1e-6 relative.
#include "kernels/cuda/cuda_internal.h"

#define NORM_THREADS 256

// Tree sum of v over the block's NORM_THREADS threads; every thread gets it.
__device__ static double block_sum(double v, double *sh) {
    sh[threadIdx.x] = v;
    __syncthreads();
    for (int s = NORM_THREADS / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) sh[threadIdx.x] += sh[threadIdx.x + s];
        __syncthreads();
    }
    double r = sh[0];
    __syncthreads();
    return r;
}

// One block per (row, item, group): part[((r * n + b) * groups + g) * 2 + {0, 1}].
__global__ static void gn_partials_kernel(const float *x, int n, int rows, int w, int c,
                                          int groups, double *part) {
    __shared__ double sh[NORM_THREADS];
    int id = blockIdx.x;
    int g = id % groups, b = (id / groups) % n, r = id / (groups * n);
    int cg = c / groups;
    const float *row = x + ((size_t)b * rows + r) * (size_t)w * c + (size_t)g * cg;
    double s = 0.0, ss = 0.0;
    for (size_t i = threadIdx.x; i < (size_t)w * cg; i += NORM_THREADS) {
        double v = row[(i / cg) * c + i % cg];
        s += v;
        ss += v * v;
    }
    s = block_sum(s, sh);
    ss = block_sum(ss, sh);
    if (threadIdx.x == 0) {
        part[(size_t)id * 2] = s;
        part[(size_t)id * 2 + 1] = ss;
    }
}

extern "C" fs_code fs_cuda_groupnorm_partials(fs_cuda *cu, const float *x, int n, int rows, int w,
                                              int c, int groups, double *part, fs_error *err) {
    if (groups <= 0 || c % groups)
        return fs_fail(err, FS_ERR_INVALID, "cuda groupnorm: %d channels in %d groups", c, groups);
    size_t blocks = (size_t)rows * n * groups;
    if (blocks == 0) return FS_OK;
    if (blocks > 0x7fffffffu) return fs_fail(err, FS_ERR_RANGE, "cuda groupnorm: map too large");
    gn_partials_kernel<<<(unsigned)blocks, NORM_THREADS, 0, cu->stream>>>(x, n, rows, w, c, groups,
                                                                          part);
    FS_CU_LAUNCHED(err, "groupnorm partials");
    return FS_OK;
}

__global__ static void gn_apply_kernel(const float *x, float *y, int n, int rows, int w, int c,
                                       int groups, const float *mean, const float *rstd,
                                       const float *gamma, const float *beta, int silu) {
    size_t total = (size_t)n * rows * w * c, per_item = (size_t)rows * w * c;
    int cg = c / groups;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        int ch = (int)(i % c);
        int bg = (int)(i / per_item) * groups + ch / cg;
        float v = (x[i] - mean[bg]) * rstd[bg];
        if (gamma) v *= gamma[ch];
        if (beta) v += beta[ch];
        if (silu) v = v / (1.0f + expf(-v));
        y[i] = v;
    }
}

extern "C" fs_code fs_cuda_groupnorm_apply(fs_cuda *cu, const float *x, float *y, int n, int rows,
                                           int w, int c, int groups, const float *mean,
                                           const float *rstd, const float *gamma,
                                           const float *beta, int silu, fs_error *err) {
    if (groups <= 0 || c % groups)
        return fs_fail(err, FS_ERR_INVALID, "cuda groupnorm: %d channels in %d groups", c, groups);
    size_t total = (size_t)n * rows * w * c;
    if (total == 0) return FS_OK;
    gn_apply_kernel<<<fs_cu_blocks(total, 256), 256, 0, cu->stream>>>(
        x, y, n, rows, w, c, groups, mean, rstd, gamma, beta, silu);
    FS_CU_LAUNCHED(err, "groupnorm apply");
    return FS_OK;
}

// One block per token: mean, then the centred sum of squares (two passes,
// as the reference), in double.
__global__ static void layernorm_kernel(const float *x, float *y, int c, float eps,
                                        const float *gamma, const float *beta) {
    __shared__ double sh[NORM_THREADS];
    const float *xr = x + (size_t)blockIdx.x * c;
    float *yr = y + (size_t)blockIdx.x * c;
    double s = 0.0;
    for (int i = threadIdx.x; i < c; i += NORM_THREADS) s += xr[i];
    double mu = block_sum(s, sh) / c;
    double ss = 0.0;
    for (int i = threadIdx.x; i < c; i += NORM_THREADS) ss += (xr[i] - mu) * (xr[i] - mu);
    double rs = 1.0 / sqrt(block_sum(ss, sh) / c + (double)eps);
    for (int i = threadIdx.x; i < c; i += NORM_THREADS) {
        double v = (xr[i] - mu) * rs;
        if (gamma) v *= gamma[i];
        if (beta) v += beta[i];
        yr[i] = (float)v;
    }
}

extern "C" fs_code fs_cuda_layernorm(fs_cuda *cu, const float *x, float *y, size_t tokens, int c,
                                     float eps, const float *gamma, const float *beta,
                                     fs_error *err) {
    if (tokens == 0) return FS_OK;
    if (tokens > 0x7fffffffu) return fs_fail(err, FS_ERR_RANGE, "cuda layernorm: too many tokens");
    layernorm_kernel<<<(unsigned)tokens, NORM_THREADS, 0, cu->stream>>>(x, y, c, eps, gamma, beta);
    FS_CU_LAUNCHED(err, "layernorm");
    return FS_OK;
}
