// Pointwise ops and the nearest 2x upsample on the device: grid-stride loops,
// the same formulas as kernels/pointwise.c and kernels/resize.c.
#include "kernels/cuda/cuda_internal.h"

enum { ACT_SILU, ACT_GELU, ACT_QUICK_GELU };

__device__ static inline float act(int kind, float v) {
    switch (kind) {
    case ACT_SILU: return v / (1.0f + expf(-v));
    // erfc, not 1 + erf: no cancellation for negative v (1 + erff(-3.5) keeps
    // one significant bit in float)
    case ACT_GELU: return 0.5f * v * erfcf(-v * 0.70710678118654752f);
    default: return v / (1.0f + expf(-1.702f * v));
    }
}

__global__ static void act_kernel(int kind, const float *x, float *y, size_t n) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        y[i] = act(kind, x[i]);
}

static fs_code launch_act(fs_cuda *cu, int kind, const float *x, float *y, size_t n,
                          fs_error *err, const char *what) {
    if (n == 0) return FS_OK;
    act_kernel<<<fs_cu_blocks(n, 256), 256, 0, cu->stream>>>(kind, x, y, n);
    FS_CU_LAUNCHED(err, what);
    return FS_OK;
}

extern "C" fs_code fs_cuda_silu(fs_cuda *cu, const float *x, float *y, size_t n, fs_error *err) {
    return launch_act(cu, ACT_SILU, x, y, n, err, "silu");
}
extern "C" fs_code fs_cuda_gelu(fs_cuda *cu, const float *x, float *y, size_t n, fs_error *err) {
    return launch_act(cu, ACT_GELU, x, y, n, err, "gelu");
}
extern "C" fs_code fs_cuda_quick_gelu(fs_cuda *cu, const float *x, float *y, size_t n,
                                      fs_error *err) {
    return launch_act(cu, ACT_QUICK_GELU, x, y, n, err, "quick_gelu");
}

// y[i][j] = x[i][j] * gelu(x[i][d + j]); y may equal x (row i of y is
// written after every read of row i: y[i][j] sits at or before x[i][j]).
__global__ static void geglu_kernel(const float *x, float *y, size_t m, int d) {
    size_t n = m * (size_t)d;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        size_t r = i / d, j = i % d;
        float a = x[r * 2 * d + j], g = x[r * 2 * d + d + j];
        y[i] = a * act(ACT_GELU, g);
    }
}

extern "C" fs_code fs_cuda_geglu(fs_cuda *cu, const float *x, float *y, size_t m, int d,
                                 fs_error *err) {
    if (m == 0 || d <= 0) return FS_OK;
    // In place, row r's outputs would overwrite row r/2's inputs before other
    // blocks read them: only out-of-place is safe on the device.
    if (x == y) return fs_fail(err, FS_ERR_INVALID, "cuda geglu: y must not alias x on the GPU");
    geglu_kernel<<<fs_cu_blocks(m * (size_t)d, 256), 256, 0, cu->stream>>>(x, y, m, d);
    FS_CU_LAUNCHED(err, "geglu");
    return FS_OK;
}

__global__ static void upsample2x_kernel(const float *x, float *y, int n, int rows, int w, int c) {
    size_t total = (size_t)n * rows * 2 * w * 2 * c;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        size_t ch = i % c, t = i / c;
        size_t ox = t % (2 * (size_t)w);
        t /= 2 * (size_t)w;
        size_t oy = t % (2 * (size_t)rows), b = t / (2 * (size_t)rows);
        y[i] = x[((b * rows + oy / 2) * w + ox / 2) * c + ch];
    }
}

extern "C" fs_code fs_cuda_upsample_nearest2x(fs_cuda *cu, const float *x, float *y, int n,
                                              int rows, int w, int c, fs_error *err) {
    size_t total = (size_t)n * rows * 2 * w * 2 * c;
    if (total == 0) return FS_OK;
    upsample2x_kernel<<<fs_cu_blocks(total, 256), 256, 0, cu->stream>>>(x, y, n, rows, w, c);
    FS_CU_LAUNCHED(err, "upsample_nearest2x");
    return FS_OK;
}
