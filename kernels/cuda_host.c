/* The CPU side of the optional CUDA backend: without CUDA in the build every
 * entry point says so (fs_cuda_available() is 0, so callers that check it
 * never reach the others) and callers use the CPU ops. */
#include <stdio.h>
#include "kernels/kernels.h"

#ifndef FS_HAVE_CUDA
#define NO_CUDA(err) fs_fail((err), FS_ERR_UNSUPPORTED, "built without CUDA (nvcc not found at configure time)")

int fs_cuda_available(char *why, size_t why_len) {
    if (why && why_len) snprintf(why, why_len, "built without CUDA (nvcc not found at configure time)");
    return 0;
}
fs_code fs_cuda_open(fs_cuda **out, int device, size_t scratch_bytes, fs_error *err) {
    (void)device; (void)scratch_bytes;
    *out = NULL;
    return NO_CUDA(err);
}
void fs_cuda_close(fs_cuda *cu) { (void)cu; }
const char *fs_cuda_device_name(const fs_cuda *cu) { (void)cu; return "none"; }
fs_code fs_cuda_alloc(fs_cuda *cu, void **dptr, size_t bytes, fs_error *err) {
    (void)cu; (void)bytes;
    *dptr = NULL;
    return NO_CUDA(err);
}
void fs_cuda_free(fs_cuda *cu, void *dptr) { (void)cu; (void)dptr; }
fs_code fs_cuda_upload(fs_cuda *cu, void *dst, const void *src, size_t bytes, fs_error *err) {
    (void)cu; (void)dst; (void)src; (void)bytes;
    return NO_CUDA(err);
}
fs_code fs_cuda_download(fs_cuda *cu, void *dst, const void *src, size_t bytes, fs_error *err) {
    (void)cu; (void)dst; (void)src; (void)bytes;
    return NO_CUDA(err);
}
fs_code fs_cuda_sync(fs_cuda *cu, fs_error *err) { (void)cu; return NO_CUDA(err); }
fs_code fs_cuda_upload_rows(fs_cuda *cu, void *dst, size_t dst_pitch, const void *src,
                            size_t src_pitch, size_t row_bytes, size_t rows, fs_error *err) {
    (void)cu; (void)dst; (void)dst_pitch; (void)src; (void)src_pitch; (void)row_bytes; (void)rows;
    return NO_CUDA(err);
}
fs_code fs_cuda_download_rows(fs_cuda *cu, void *dst, size_t dst_pitch, const void *src,
                              size_t src_pitch, size_t row_bytes, size_t rows, fs_error *err) {
    (void)cu; (void)dst; (void)dst_pitch; (void)src; (void)src_pitch; (void)row_bytes; (void)rows;
    return NO_CUDA(err);
}
fs_code fs_cuda_silu(fs_cuda *cu, const float *x, float *y, size_t n, fs_error *err) {
    (void)cu; (void)x; (void)y; (void)n;
    return NO_CUDA(err);
}
fs_code fs_cuda_gelu(fs_cuda *cu, const float *x, float *y, size_t n, fs_error *err) {
    (void)cu; (void)x; (void)y; (void)n;
    return NO_CUDA(err);
}
fs_code fs_cuda_quick_gelu(fs_cuda *cu, const float *x, float *y, size_t n, fs_error *err) {
    (void)cu; (void)x; (void)y; (void)n;
    return NO_CUDA(err);
}
fs_code fs_cuda_geglu(fs_cuda *cu, const float *x, float *y, size_t m, int d, fs_error *err) {
    (void)cu; (void)x; (void)y; (void)m; (void)d;
    return NO_CUDA(err);
}
fs_code fs_cuda_upsample_nearest2x(fs_cuda *cu, const float *x, float *y, int n, int rows, int w,
                                   int c, fs_error *err) {
    (void)cu; (void)x; (void)y; (void)n; (void)rows; (void)w; (void)c;
    return NO_CUDA(err);
}
fs_code fs_cuda_add(fs_cuda *cu, float *y, const float *x, size_t count, fs_error *err) {
    (void)cu; (void)y; (void)x; (void)count;
    return NO_CUDA(err);
}
fs_code fs_cuda_add_bcast(fs_cuda *cu, float *y, const float *v, int n, size_t pixels, int c,
                          fs_error *err) {
    (void)cu; (void)y; (void)v; (void)n; (void)pixels; (void)c;
    return NO_CUDA(err);
}
fs_code fs_cuda_concat(fs_cuda *cu, const float *a, int ca, const float *s, int cs, float *y,
                       size_t pixels, fs_error *err) {
    (void)cu; (void)a; (void)ca; (void)s; (void)cs; (void)y; (void)pixels;
    return NO_CUDA(err);
}
fs_code fs_cuda_scale_channels(fs_cuda *cu, float *x, size_t pixels, int c, int first, float b,
                               fs_error *err) {
    (void)cu; (void)x; (void)pixels; (void)c; (void)first; (void)b;
    return NO_CUDA(err);
}
fs_code fs_cuda_copy(fs_cuda *cu, void *dst, const void *src, size_t bytes, fs_error *err) {
    (void)cu; (void)dst; (void)src; (void)bytes;
    return NO_CUDA(err);
}
fs_code fs_cuda_zero(fs_cuda *cu, void *dst, size_t bytes, fs_error *err) {
    (void)cu; (void)dst; (void)bytes;
    return NO_CUDA(err);
}
fs_code fs_cuda_small_linear(fs_cuda *cu, const float *x, float *y, int m, int k, int nout,
                             const float *w, const float *bias, fs_error *err) {
    (void)cu; (void)x; (void)y; (void)m; (void)k; (void)nout; (void)w; (void)bias;
    return NO_CUDA(err);
}
fs_code fs_cuda_groupnorm_partials(fs_cuda *cu, const float *x, int n, int rows, int w, int c,
                                   int groups, double *part, fs_error *err) {
    (void)cu; (void)x; (void)n; (void)rows; (void)w; (void)c; (void)groups; (void)part;
    return NO_CUDA(err);
}
fs_code fs_cuda_groupnorm_apply(fs_cuda *cu, const float *x, float *y, int n, int rows, int w,
                                int c, int groups, const float *mean, const float *rstd,
                                const float *gamma, const float *beta, int silu, fs_error *err) {
    (void)cu; (void)x; (void)y; (void)n; (void)rows; (void)w; (void)c; (void)groups;
    (void)mean; (void)rstd; (void)gamma; (void)beta; (void)silu;
    return NO_CUDA(err);
}
fs_code fs_cuda_layernorm(fs_cuda *cu, const float *x, float *y, size_t tokens, int c, float eps,
                          const float *gamma, const float *beta, fs_error *err) {
    (void)cu; (void)x; (void)y; (void)tokens; (void)c; (void)eps; (void)gamma; (void)beta;
    return NO_CUDA(err);
}
fs_code fs_cuda_linear(fs_cuda *cu, const float *x, float *y, size_t m, int k, int nout,
                       const float *w, const float *bias, int64_t m0, fs_error *err) {
    (void)cu; (void)x; (void)y; (void)m; (void)k; (void)nout; (void)w; (void)bias; (void)m0;
    return NO_CUDA(err);
}
fs_code fs_cuda_linear_whole(fs_cuda *cu, const float *x, float *y, size_t m, int k, int nout,
                             const float *w, const float *bias, fs_error *err) {
    (void)cu; (void)x; (void)y; (void)m; (void)k; (void)nout; (void)w; (void)bias;
    return NO_CUDA(err);
}
size_t fs_cuda_mem_current(const fs_cuda *cu) { (void)cu; return 0; }
size_t fs_cuda_mem_peak(const fs_cuda *cu) { (void)cu; return 0; }
void fs_cuda_mem_reset_peak(fs_cuda *cu) { (void)cu; }
fs_code fs_cuda_conv2d(fs_cuda *cu, const fs_conv2d_desc *d, const float *x, const float *w,
                       const float *bias, float *y, fs_error *err) {
    (void)cu; (void)d; (void)x; (void)w; (void)bias; (void)y;
    return NO_CUDA(err);
}
fs_code fs_cuda_attention(fs_cuda *cu, const float *q, int ldq, const float *k, int ldk,
                          const float *v, int ldv, float *o, int ldo, int nq, int nk, int heads,
                          int dh, float scale, int64_t q0, fs_error *err) {
    (void)cu; (void)q; (void)ldq; (void)k; (void)ldk; (void)v; (void)ldv; (void)o; (void)ldo;
    (void)nq; (void)nk; (void)heads; (void)dh; (void)scale; (void)q0;
    return NO_CUDA(err);
}
#endif
