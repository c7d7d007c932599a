// The CUDA backend's context: device queries, the stream, the cuBLAS handle,
// the scratch buffer and host <-> device copies.
#include <stdio.h>
#include <stdlib.h>
#include "kernels/cuda/cuda_internal.h"

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

extern "C" void fs_cuda_close(fs_cuda *cu) {
    if (!cu) return;
    if (cu->scratch) cudaFree(cu->scratch);
    if (cu->blas) cublasDestroy(cu->blas);
    if (cu->stream) cudaStreamDestroy(cu->stream);
    free(cu->live);
    free(cu);
}

extern "C" fs_code fs_cuda_open(fs_cuda **out, int device, size_t scratch_bytes, fs_error *err) {
    *out = NULL;
    char why[160];
    int count = fs_cuda_available(why, sizeof why);
    if (count == 0) return fs_fail(err, FS_ERR_UNSUPPORTED, "no usable GPU: %s", why);
    if (device < 0 || device >= count)
        return fs_fail(err, FS_ERR_RANGE, "GPU %d asked for, the machine has %d", device, count);
    fs_cuda *cu = (fs_cuda *)calloc(1, sizeof *cu);
    if (!cu) return fs_fail(err, FS_ERR_NOMEM, "cuda context");
    cu->device = device;
    cu->scratch_bytes = scratch_bytes ? scratch_bytes : ((size_t)1 << 30);
    fs_code rc = FS_OK;
    cudaDeviceProp prop;
    cudaError_t e = cudaSetDevice(device);
    if (e == cudaSuccess) e = cudaGetDeviceProperties(&prop, device);
    if (e == cudaSuccess) e = cudaStreamCreateWithFlags(&cu->stream, cudaStreamNonBlocking);
    if (e == cudaSuccess) e = cudaMalloc((void **)&cu->scratch, cu->scratch_bytes);
    if (e != cudaSuccess) {
        rc = fs_fail(err, e == cudaErrorMemoryAllocation ? FS_ERR_NOMEM : FS_ERR_UNSUPPORTED,
                     "cuda open GPU %d (scratch %.0f MB): %s", device, cu->scratch_bytes / 1e6,
                     cudaGetErrorString(e));
        fs_cuda_close(cu);
        return rc;
    }
    cublasStatus_t s = cublasCreate(&cu->blas);
    if (s == CUBLAS_STATUS_SUCCESS) s = cublasSetStream(cu->blas, cu->stream);
    // Plain FP32 (no TF32): the GPU ops stay within 1e-5 of the references.
    if (s == CUBLAS_STATUS_SUCCESS) s = cublasSetMathMode(cu->blas, CUBLAS_DEFAULT_MATH);
    // No atomics: split-K reductions in a fixed order, same bits every run.
    if (s == CUBLAS_STATUS_SUCCESS) s = cublasSetAtomicsMode(cu->blas, CUBLAS_ATOMICS_NOT_ALLOWED);
    if (s != CUBLAS_STATUS_SUCCESS) {
        rc = fs_fail(err, FS_ERR_UNSUPPORTED, "cublas init: %s", cublasGetStatusString(s));
        fs_cuda_close(cu);
        return rc;
    }
    cu->sms = prop.multiProcessorCount;
    cu->mem_now = cu->mem_peak = cu->scratch_bytes;
    snprintf(cu->name, sizeof cu->name, "%s (sm_%d%d, %d SMs, %.1f GiB)", prop.name, prop.major,
             prop.minor, prop.multiProcessorCount, prop.totalGlobalMem / 1073741824.0);
    *out = cu;
    return FS_OK;
}

extern "C" const char *fs_cuda_device_name(const fs_cuda *cu) { return cu ? cu->name : "none"; }

extern "C" fs_code fs_cuda_alloc(fs_cuda *cu, void **dptr, size_t bytes, fs_error *err) {
    *dptr = NULL;
    if (cu->nlive == cu->cap_live) {
        size_t cap = cu->cap_live ? 2 * cu->cap_live : 64;
        void *grown = realloc(cu->live, cap * sizeof *cu->live);
        if (!grown) return fs_fail(err, FS_ERR_NOMEM, "cuda alloc: out of host memory");
        cu->live = (decltype(cu->live))grown;
        cu->cap_live = cap;
    }
    cudaError_t e = cudaMalloc(dptr, bytes ? bytes : 1);
    if (e != cudaSuccess) {
        *dptr = NULL;
        size_t free_b = 0, total_b = 0;
        cudaGetLastError(); // clear the sticky-free allocation error
        cudaMemGetInfo(&free_b, &total_b);
        return fs_fail(err, FS_ERR_NOMEM,
                       "cuda alloc of %.1f MB: %s (%.1f of %.1f GB free on the device, %.1f GB "
                       "held by this context)",
                       bytes / 1e6, cudaGetErrorString(e), free_b / 1e9, total_b / 1e9,
                       cu->mem_now / 1e9);
    }
    cu->live[cu->nlive].p = *dptr;
    cu->live[cu->nlive++].bytes = bytes;
    cu->mem_now += bytes;
    if (cu->mem_now > cu->mem_peak) cu->mem_peak = cu->mem_now;
    return FS_OK;
}

extern "C" void fs_cuda_free(fs_cuda *cu, void *dptr) {
    if (!dptr) return;
    for (size_t i = cu->nlive; i-- > 0;)
        if (cu->live[i].p == dptr) {
            cu->mem_now -= cu->live[i].bytes;
            cu->live[i] = cu->live[--cu->nlive];
            break;
        }
    cudaFree(dptr);
}

extern "C" size_t fs_cuda_mem_current(const fs_cuda *cu) { return cu ? cu->mem_now : 0; }
extern "C" size_t fs_cuda_mem_peak(const fs_cuda *cu) { return cu ? cu->mem_peak : 0; }
extern "C" void fs_cuda_mem_reset_peak(fs_cuda *cu) {
    if (cu) cu->mem_peak = cu->mem_now;
}

extern "C" fs_code fs_cuda_upload(fs_cuda *cu, void *dst, const void *src, size_t bytes,
                                  fs_error *err) {
    FS_CU(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, cu->stream), err, "upload");
    FS_CU(cudaStreamSynchronize(cu->stream), err, "upload");
    return FS_OK;
}

extern "C" fs_code fs_cuda_download(fs_cuda *cu, void *dst, const void *src, size_t bytes,
                                    fs_error *err) {
    FS_CU(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, cu->stream), err, "download");
    FS_CU(cudaStreamSynchronize(cu->stream), err, "download");
    return FS_OK;
}

// Pitched rows one way (cudaMemcpy2D), synchronous for the host buffer.
static fs_code copy_rows(fs_cuda *cu, void *dst, size_t dst_pitch, const void *src,
                         size_t src_pitch, size_t row_bytes, size_t rows, cudaMemcpyKind kind,
                         fs_error *err, const char *what) {
    if (!rows || !row_bytes) return FS_OK;
    FS_CU(cudaMemcpy2DAsync(dst, dst_pitch, src, src_pitch, row_bytes, rows, kind, cu->stream),
          err, what);
    FS_CU(cudaStreamSynchronize(cu->stream), err, what);
    return FS_OK;
}

extern "C" fs_code fs_cuda_upload_rows(fs_cuda *cu, void *dst, size_t dst_pitch,
                                       const void *src, size_t src_pitch, size_t row_bytes,
                                       size_t rows, fs_error *err) {
    return copy_rows(cu, dst, dst_pitch, src, src_pitch, row_bytes, rows,
                     cudaMemcpyHostToDevice, err, "upload rows");
}

extern "C" fs_code fs_cuda_download_rows(fs_cuda *cu, void *dst, size_t dst_pitch,
                                         const void *src, size_t src_pitch, size_t row_bytes,
                                         size_t rows, fs_error *err) {
    return copy_rows(cu, dst, dst_pitch, src, src_pitch, row_bytes, rows,
                     cudaMemcpyDeviceToHost, err, "download rows");
}

extern "C" fs_code fs_cuda_sync(fs_cuda *cu, fs_error *err) {
    FS_CU(cudaStreamSynchronize(cu->stream), err, "sync");
    return FS_OK;
}
