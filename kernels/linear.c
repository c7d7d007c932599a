/* kernels/linear.c: the fully connected layer y = x W^T + b (PyTorch's
 * nn.Linear layout: W is [nout][k]), as a plain reference loop and as fixed
 * tiles of single-threaded OpenBLAS calls (kernels/gemm_tiles.c): row tiles
 * at global multiples of FS_GEMM_TILE for strips of a matrix (fs_linear), or
 * one tile of the whole matrix's rows when every rank has all of them
 * (fs_linear_whole: no zero rows computed for nothing). */
#include "kernels/gemm_tiles.h"
#include "kernels/kernels.h"

void fs_linear_ref(const float *x, float *y, size_t m, int k, int nout, const float *w,
                   const float *bias) {
    for (size_t i = 0; i < m; i++) {
        const float *xr = x + i * (size_t)k;
        for (int j = 0; j < nout; j++) {
            const float *wr = w + (size_t)j * (size_t)k;
            double s = bias ? (double)bias[j] : 0.0;
            for (int p = 0; p < k; p++) s += (double)xr[p] * (double)wr[p];
            y[i * (size_t)nout + (size_t)j] = (float)s;
        }
    }
}

size_t fs_linear_scratch_bytes(int k, int nout) {
    return k > 0 && nout > 0 ? fs_gemm_rows_nt_scratch_bytes(k, nout) : 0;
}

fs_code fs_linear(const float *x, float *y, size_t m, int k, int nout, const float *w,
                  const float *bias, int64_t m0, fs_arena *scratch, fs_error *err) {
    if (k <= 0 || nout <= 0)
        return fs_fail(err, FS_ERR_INVALID, "linear: k=%d and nout=%d must be positive", k, nout);
    if (m0 < 0)
        return fs_fail(err, FS_ERR_INVALID, "linear: first row index m0=%lld is negative",
                       (long long)m0);
    if (m == 0) return FS_OK;
    if (!x || !y || !w) return fs_fail(err, FS_ERR_INVALID, "linear: NULL x, y or w");
    fs_code rc = fs_gemm_rows_nt(x, y, m, k, nout, w, bias, m0, scratch, err);
    if (rc != FS_OK && err) fs_error_prefix(err, "linear %zux%dx%d: ", m, k, nout);
    return rc;
}

static int linear_whole_tile(size_t m) {
    return m <= FS_LINEAR_WHOLE_MAX ? (int)m : FS_GEMM_TILE;
}

size_t fs_linear_whole_scratch_bytes(size_t m, int k, int nout) {
    if (m == 0 || k <= 0 || nout <= 0) return 0;
    return m <= FS_LINEAR_WHOLE_MAX ? 0 : fs_gemm_rows_nt_scratch_bytes(k, nout);
}

fs_code fs_linear_whole(const float *x, float *y, size_t m, int k, int nout, const float *w,
                        const float *bias, fs_arena *scratch, fs_error *err) {
    if (k <= 0 || nout <= 0)
        return fs_fail(err, FS_ERR_INVALID, "linear (whole): k=%d and nout=%d must be positive",
                       k, nout);
    if (m == 0) return FS_OK;
    if (!x || !y || !w) return fs_fail(err, FS_ERR_INVALID, "linear (whole): NULL x, y or w");
    fs_code rc = fs_gemm_rows_nt_tiled(x, y, m, k, nout, w, bias, 0, linear_whole_tile(m),
                                       scratch, err);
    if (rc != FS_OK && err) fs_error_prefix(err, "linear (whole) %zux%dx%d: ", m, k, nout);
    return rc;
}
