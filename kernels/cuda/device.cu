// The CUDA backend's device queries and first kernel (SiLU, checked against
// fs_silu_ref by tests/test_cuda.c on a machine with a GPU). Host in, host
// out for now; device-resident tensors come with the UNet.
#include <cuda_runtime.h>
#include <stdio.h>
#include "kernels/kernels.h"

extern "C" int fs_cuda_available(char *why, size_t why_len) {
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
        if (why && why_len) snprintf(why, why_len, "%s", cudaGetErrorString(e));
        return 0;
    }
    if (count == 0) {
        if (why && why_len) snprintf(why, why_len, "no CUDA device");
        return 0;
    }
    return count;
}

__global__ static void silu_kernel(const float *x, float *y, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        float v = x[i];
        y[i] = v / (1.0f + expf(-v));
    }
}

extern "C" fs_code fs_cuda_silu(const float *x, float *y, size_t n, fs_error *err) {
    float *d = NULL;
    cudaError_t e = cudaMalloc(&d, 2 * n * sizeof(float));
    if (e != cudaSuccess) return fs_fail(err, FS_ERR_NOMEM, "cuda silu: %s", cudaGetErrorString(e));
    e = cudaMemcpy(d, x, n * sizeof(float), cudaMemcpyHostToDevice);
    if (e == cudaSuccess) {
        unsigned blocks = (unsigned)((n + 255) / 256);
        silu_kernel<<<blocks, 256>>>(d, d + n, n);
        e = cudaGetLastError();
    }
    if (e == cudaSuccess) e = cudaMemcpy(y, d + n, n * sizeof(float), cudaMemcpyDeviceToHost);
    cudaFree(d);
    return e == cudaSuccess ? FS_OK : fs_fail(err, FS_ERR_UNSUPPORTED, "cuda silu: %s", cudaGetErrorString(e));
}
