/* The CPU side of the optional CUDA backend: without CUDA in the build every
 * query says "no device" and callers use the CPU ops. */
#include <stdio.h>
#include "kernels/kernels.h"

#ifndef FS_HAVE_CUDA
int fs_cuda_available(char *why, size_t why_len) {
    if (why && why_len) snprintf(why, why_len, "built without CUDA (nvcc not found at configure time)");
    return 0;
}
fs_code fs_cuda_silu(const float *x, float *y, size_t n, fs_error *err) {
    (void)x; (void)y; (void)n;
    return fs_fail(err, FS_ERR_UNSUPPORTED, "built without CUDA");
}
#endif
