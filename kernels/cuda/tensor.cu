// The networks' glue on the device (nn/'s add, add_bcast, concat,
// scale_channels, copy, zero, small_linear): grid-stride loops with the CPU
// ops' formulas, so every result is the same bits as nn/ops.c's (one float
// add or multiply per element; small_linear sums in double in index order).
#include "kernels/cuda/cuda_internal.h"

__global__ static void add_kernel(float *y, const float *x, size_t n) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        y[i] += x[i];
}

extern "C" fs_code fs_cuda_add(fs_cuda *cu, float *y, const float *x, size_t count,
                               fs_error *err) {
    if (count == 0) return FS_OK;
    add_kernel<<<fs_cu_blocks(count, 256), 256, 0, cu->stream>>>(y, x, count);
    FS_CU_LAUNCHED(err, "add");
    return FS_OK;
}

// y[b][p][ch] += v[b][ch]: per_item = pixels * c elements share item b's v.
__global__ static void add_bcast_kernel(float *y, const float *v, size_t total, size_t per_item,
                                        int c) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x)
        y[i] += v[(i / per_item) * (size_t)c + i % (size_t)c];
}

extern "C" fs_code fs_cuda_add_bcast(fs_cuda *cu, float *y, const float *v, int n, size_t pixels,
                                     int c, fs_error *err) {
    if (n < 0 || c < 0)
        return fs_fail(err, FS_ERR_INVALID, "cuda add_bcast: n=%d c=%d must not be negative", n, c);
    const size_t per_item = pixels * (size_t)c, total = (size_t)n * per_item;
    if (total == 0) return FS_OK;
    add_bcast_kernel<<<fs_cu_blocks(total, 256), 256, 0, cu->stream>>>(y, v, total, per_item, c);
    FS_CU_LAUNCHED(err, "add_bcast");
    return FS_OK;
}

// y[p] = [a[p] | s[p]]: one thread per output float, reads gathered.
__global__ static void concat_kernel(const float *a, int ca, const float *s, int cs, float *y,
                                     size_t total) {
    const size_t cy = (size_t)ca + (size_t)cs;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        size_t p = i / cy, ch = i % cy;
        y[i] = ch < (size_t)ca ? a[p * (size_t)ca + ch] : s[p * (size_t)cs + (ch - (size_t)ca)];
    }
}

extern "C" fs_code fs_cuda_concat(fs_cuda *cu, const float *a, int ca, const float *s, int cs,
                                  float *y, size_t pixels, fs_error *err) {
    if (ca < 0 || cs < 0)
        return fs_fail(err, FS_ERR_INVALID, "cuda concat: ca=%d cs=%d must not be negative", ca,
                       cs);
    const size_t total = pixels * ((size_t)ca + (size_t)cs);
    if (total == 0) return FS_OK;
    concat_kernel<<<fs_cu_blocks(total, 256), 256, 0, cu->stream>>>(a, ca, s, cs, y, total);
    FS_CU_LAUNCHED(err, "concat");
    return FS_OK;
}

// x[p][ch] *= b for ch < first: one thread per scaled element.
__global__ static void scale_channels_kernel(float *x, size_t total, int c, int first, float b) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x)
        x[(i / (size_t)first) * (size_t)c + i % (size_t)first] *= b;
}

extern "C" fs_code fs_cuda_scale_channels(fs_cuda *cu, float *x, size_t pixels, int c, int first,
                                          float b, fs_error *err) {
    if (first <= 0) return FS_OK;  // nn_scale_channels: nothing to scale
    if (first > c)
        return fs_fail(err, FS_ERR_INVALID, "cuda scale_channels: first=%d exceeds c=%d", first,
                       c);
    const size_t total = pixels * (size_t)first;
    if (total == 0) return FS_OK;
    scale_channels_kernel<<<fs_cu_blocks(total, 256), 256, 0, cu->stream>>>(x, total, c, first,
                                                                            b);
    FS_CU_LAUNCHED(err, "scale_channels");
    return FS_OK;
}

// memmove on the stream. cudaMemcpyAsync is undefined for overlapping
// ranges, so an overlap of distance d < bytes is copied in pieces in the
// safe direction (ascending when dst < src, descending when dst > src): each
// piece's writes land only on source bytes already copied. A piece is d
// bytes copied directly (its source and destination are disjoint), or, when
// d is small, up to the scratch size bounced through the scratch buffer, so
// a shift by a few floats does not become millions of copies.
extern "C" fs_code fs_cuda_copy(fs_cuda *cu, void *dst, const void *src, size_t bytes,
                                fs_error *err) {
    if (bytes == 0 || dst == src) return FS_OK;
    char *d = (char *)dst;
    const char *s = (const char *)src;
    const size_t dist = d > s ? (size_t)(d - s) : (size_t)(s - d);
    if (dist >= bytes) {
        FS_CU(cudaMemcpyAsync(d, s, bytes, cudaMemcpyDeviceToDevice, cu->stream), err, "copy");
        return FS_OK;
    }
    const size_t bounce = cu->scratch_bytes < bytes ? cu->scratch_bytes : bytes;
    const int via_scratch = bounce > dist;
    const size_t piece = via_scratch ? bounce : dist;
    for (size_t done = 0; done < bytes;) {
        const size_t len = bytes - done < piece ? bytes - done : piece;
        // ascending pieces from the start when dst < src, else from the end
        const size_t off = d < s ? done : bytes - done - len;
        if (via_scratch) {
            FS_CU(cudaMemcpyAsync(cu->scratch, s + off, len, cudaMemcpyDeviceToDevice, cu->stream),
                  err, "copy (overlapping, to scratch)");
            FS_CU(cudaMemcpyAsync(d + off, cu->scratch, len, cudaMemcpyDeviceToDevice, cu->stream),
                  err, "copy (overlapping, from scratch)");
        } else {
            FS_CU(cudaMemcpyAsync(d + off, s + off, len, cudaMemcpyDeviceToDevice, cu->stream), err,
                  "copy (overlapping)");
        }
        done += len;
    }
    return FS_OK;
}

extern "C" fs_code fs_cuda_zero(fs_cuda *cu, void *dst, size_t bytes, fs_error *err) {
    if (bytes == 0) return FS_OK;
    FS_CU(cudaMemsetAsync(dst, 0, bytes, cu->stream), err, "zero");
    return FS_OK;
}

// One thread per y[i][j], summing in double in index order from the bias:
// nn_small_linear's exact arithmetic (m is tiny, so no GEMM tiling). The
// explicit _rn product and sum keep nvcc from fusing them into an FMA: the
// CPU build has -ffp-contract=off, so the bits match nn/ops.c's.
__global__ static void small_linear_kernel(const float *x, float *y, int m, int k, int nout,
                                           const float *w, const float *bias) {
    const size_t total = (size_t)m * (size_t)nout;
    for (size_t ij = (size_t)blockIdx.x * blockDim.x + threadIdx.x; ij < total;
         ij += (size_t)gridDim.x * blockDim.x) {
        const size_t i = ij / (size_t)nout, j = ij % (size_t)nout;
        const float *xr = x + i * (size_t)k, *wr = w + j * (size_t)k;
        double s = bias ? (double)bias[j] : 0.0;
        for (int p = 0; p < k; p++) s = __dadd_rn(s, __dmul_rn((double)xr[p], (double)wr[p]));
        y[ij] = (float)s;
    }
}

extern "C" fs_code fs_cuda_small_linear(fs_cuda *cu, const float *x, float *y, int m, int k,
                                        int nout, const float *w, const float *bias,
                                        fs_error *err) {
    if (m < 0 || k < 0 || nout < 0)
        return fs_fail(err, FS_ERR_INVALID,
                       "cuda small_linear: m=%d k=%d nout=%d must not be negative", m, k, nout);
    const size_t total = (size_t)m * (size_t)nout;
    if (total == 0) return FS_OK;
    // 128 threads: enough blocks to spread a few thousand outputs over the SMs
    small_linear_kernel<<<fs_cu_blocks(total, 128), 128, 0, cu->stream>>>(x, y, m, k, nout, w,
                                                                          bias);
    FS_CU_LAUNCHED(err, "small_linear");
    return FS_OK;
}
