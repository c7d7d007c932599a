// The GEMM ops on the device: linear and conv2d as cuBLAS SGEMMs on tiles of
// a fixed shape at fixed global positions (kernels/kernels.h, "CUDA"). The
// tile's operands always sit in the context's scratch (256-byte aligned,
// fixed leading dimensions), so every tile is the same cuBLAS call whatever
// rank, strip or buffer offset it comes from: same kernel, same bits.
#include "kernels/cuda/cuda_internal.h"

// Rows per linear tile, fixed (the exactness rule), so a strip's GEMMs are
// padded to it. Measured on an H200 against one PyTorch GEMM of the same
// rows: 2048-row tiles ran 8192 x 640 -> 5120 at 0.74x and 2048 x 1280 ->
// 10240 at 0.94x; 4096-row tiles 0.87x and 0.50x (half of each tile wasted).
#define LINEAR_TILE 2048
// The conv tile's pixel count aims at this many bytes of im2col + output.
#define CONV_TILE_BYTES ((size_t)384 << 20)
#define CONV_TILE_MAX_PIXELS 32768

// y rows of the tile that lie in [r0, r1): y[g - r0][j] = c[r][j] + bias[j].
__global__ static void unstage_rows_kernel(const float *c, float *y, const float *bias,
                                           int64_t tile_row0, int64_t r0, int64_t r1, int rows,
                                           int nout) {
    size_t total = (size_t)rows * nout;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        int64_t g = tile_row0 + (int64_t)(i / nout);
        if (g < r0 || g >= r1) continue;
        int j = (int)(i % nout);
        y[(size_t)(g - r0) * nout + j] = c[i] + (bias ? bias[j] : 0.0f);
    }
}

// Row-major C[p][nout] = A[p][k] * W[nout][k]^T, i.e. column-major
// C^T (nout x p) = W^T(col-major k x nout)^T * A^T (k x p).
static fs_code gemm_nt(fs_cuda *cu, const float *a, const float *w, float *c, int p, int k,
                       int nout, fs_error *err, const char *what) {
    const float one = 1.0f, zero = 0.0f;
    FS_CUBLAS(cublasSgemm(cu->blas, CUBLAS_OP_T, CUBLAS_OP_N, nout, p, k, &one, w, k, a, k, &zero,
                          c, nout),
              err, what);
    return FS_OK;
}

// Rows [m0, m0 + m) through tiles of `tile` rows aligned on global multiples.
static fs_code linear_tiles(fs_cuda *cu, const float *x, float *y, size_t m, int k, int nout,
                            const float *w, const float *bias, int64_t m0, int tile,
                            fs_error *err) {
    if (m == 0) return FS_OK;
    if (k <= 0 || nout <= 0) return fs_fail(err, FS_ERR_INVALID, "cuda linear: k %d, nout %d", k, nout);
    size_t a_bytes = fs_cu_align((size_t)tile * k * 4);
    char *s = NULL;
    fs_code rc = fs_cu_scratch(cu, a_bytes + (size_t)tile * nout * 4, &s, err, "linear");
    if (rc) return rc;
    float *a = (float *)s, *c = (float *)(s + a_bytes);
    int64_t r0 = m0, r1 = m0 + (int64_t)m;
    int64_t t0 = r0 >= 0 ? r0 / tile : -((-r0 + tile - 1) / tile);
    for (int64_t t = t0; t * tile < r1; t++) {
        int64_t row0 = t * tile;
        fs_cu_stage_rows<<<fs_cu_blocks((size_t)tile * k, 256), 256, 0, cu->stream>>>(
            x, k, a, row0, r0, r1, tile, k);
        FS_CU_LAUNCHED(err, "linear stage");
        if ((rc = gemm_nt(cu, a, w, c, tile, k, nout, err, "linear"))) return rc;
        unstage_rows_kernel<<<fs_cu_blocks((size_t)tile * nout, 256), 256, 0,
                              cu->stream>>>(c, y, bias, row0, r0, r1, tile, nout);
        FS_CU_LAUNCHED(err, "linear unstage");
    }
    return FS_OK;
}

extern "C" fs_code fs_cuda_linear(fs_cuda *cu, const float *x, float *y, size_t m, int k, int nout,
                                  const float *w, const float *bias, int64_t m0, fs_error *err) {
    return linear_tiles(cu, x, y, m, k, nout, w, bias, m0, LINEAR_TILE, err);
}

extern "C" fs_code fs_cuda_linear_whole(fs_cuda *cu, const float *x, float *y, size_t m, int k,
                                        int nout, const float *w, const float *bias,
                                        fs_error *err) {
    // every rank holds all m rows: a tile of exactly m rows is the same call everywhere
    int tile = m <= LINEAR_TILE ? (int)(m ? m : 1) : LINEAR_TILE;
    return linear_tiles(cu, x, y, m, k, nout, w, bias, 0, tile, err);
}

// ---------------------------------------------------------------- conv2d

typedef struct conv_geom {
    int n, in_h, in_w, cin, cout, k, stride, dil, padb;
    int out_h, out_w;
    int x_row0, x_rows, y_row0, y_rows;
} conv_geom;

// im2col of output rows [oy0, oy0 + tr) of item b: a[p][(ky * k + kx) * cin + ci],
// p = r * out_w + ox. Rows the caller did not ask for, and taps in the
// padding or outside the rows held, are zeros.
__global__ static void im2col_kernel(const float *x, float *a, conv_geom g, int b, int oy0, int tr) {
    size_t K = (size_t)g.k * g.k * g.cin;
    size_t total = (size_t)tr * g.out_w * K;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        size_t p = i / K, q = i % K;
        int ci = (int)(q % g.cin), tap = (int)(q / g.cin);
        int ky = tap / g.k, kx = tap % g.k;
        int oy = oy0 + (int)(p / g.out_w), ox = (int)(p % g.out_w);
        float v = 0.0f;
        if (oy >= g.y_row0 && oy < g.y_row0 + g.y_rows && oy < g.out_h) {
            int iy = oy * g.stride - g.padb + ky * g.dil, ix = ox * g.stride - g.padb + kx * g.dil;
            if (iy >= 0 && iy < g.in_h && ix >= 0 && ix < g.in_w && iy >= g.x_row0 &&
                iy < g.x_row0 + g.x_rows)
                v = x[(((size_t)b * g.x_rows + (iy - g.x_row0)) * g.in_w + ix) * g.cin + ci];
        }
        a[i] = v;
    }
}

// y[b][oy - y_row0][ox][co] = c[p][co] + bias[co] for the tile's wanted rows.
__global__ static void conv_out_kernel(const float *c, float *y, const float *bias, conv_geom g,
                                       int b, int oy0, int tr) {
    size_t total = (size_t)tr * g.out_w * g.cout;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        int oy = oy0 + (int)(i / ((size_t)g.out_w * g.cout));
        if (oy < g.y_row0 || oy >= g.y_row0 + g.y_rows || oy >= g.out_h) continue;
        int co = (int)(i % g.cout);
        size_t rest = i / g.cout;
        int ox = (int)(rest % g.out_w);
        y[(((size_t)b * g.y_rows + (oy - g.y_row0)) * g.out_w + ox) * g.cout + co] =
            c[i] + (bias ? bias[co] : 0.0f);
    }
}

extern "C" fs_code fs_cuda_conv2d(fs_cuda *cu, const fs_conv2d_desc *d, const float *x,
                                  const float *w, const float *bias, float *y, fs_error *err) {
    if ((d->k != 1 && d->k != 3) || d->stride < 1 || d->stride > 2 || d->dil < 1 || d->cin <= 0 ||
        d->cout <= 0)
        return fs_fail(err, FS_ERR_INVALID, "cuda conv2d: k %d stride %d dil %d cin %d cout %d",
                       d->k, d->stride, d->dil, d->cin, d->cout);
    conv_geom g = {d->n, d->in_h, d->in_w, d->cin, d->cout, d->k, d->stride, d->dil,
                   d->pad_end ? 0 : d->dil * (d->k - 1) / 2, fs_conv2d_desc_out_size(d, d->in_h),
                   fs_conv2d_desc_out_size(d, d->in_w), d->x_row0, d->x_rows, d->y_row0, d->y_rows};
    if (d->y_rows <= 0 || d->n <= 0) return FS_OK;
    if (d->y_row0 < 0 || d->y_row0 + d->y_rows > g.out_h)
        return fs_fail(err, FS_ERR_RANGE, "cuda conv2d: output rows [%d, %d) outside the map's %d",
                       d->y_row0, d->y_row0 + d->y_rows, g.out_h);
    int need0, need1;
    fs_conv2d_input_rows(d, &need0, &need1);
    if (need0 < 0) need0 = 0;
    if (need1 > d->in_h) need1 = d->in_h;
    if (need0 < need1 && (need0 < d->x_row0 || need1 > d->x_row0 + d->x_rows))
        return fs_fail(err, FS_ERR_RANGE, "cuda conv2d: needs input rows [%d, %d), holds [%d, %d)",
                       need0, need1, d->x_row0, d->x_row0 + d->x_rows);
    // The tile: tr whole output rows, from the layer's geometry alone.
    size_t K = (size_t)d->k * d->k * d->cin;
    size_t px = CONV_TILE_BYTES / ((K + (size_t)d->cout) * 4);
    if (px > CONV_TILE_MAX_PIXELS) px = CONV_TILE_MAX_PIXELS;
    int tr = (int)(px / (size_t)g.out_w);
    if (tr < 1) tr = 1;
    if (tr > g.out_h) tr = g.out_h;
    int p = tr * g.out_w;
    size_t a_bytes = fs_cu_align((size_t)p * K * 4);
    char *s = NULL;
    fs_code rc = fs_cu_scratch(cu, a_bytes + (size_t)p * d->cout * 4, &s, err, "conv2d");
    if (rc) return rc;
    float *a = (float *)s, *c = (float *)(s + a_bytes);
    for (int b = 0; b < d->n; b++)
        for (int t = d->y_row0 / tr; t * tr < d->y_row0 + d->y_rows; t++) {
            im2col_kernel<<<fs_cu_blocks((size_t)p * K, 256), 256, 0, cu->stream>>>(x, a, g, b,
                                                                                  t * tr, tr);
            FS_CU_LAUNCHED(err, "conv2d im2col");
            if ((rc = gemm_nt(cu, a, w, c, p, (int)K, d->cout, err, "conv2d"))) return rc;
            conv_out_kernel<<<fs_cu_blocks((size_t)p * d->cout, 256), 256, 0, cu->stream>>>(
                c, y, bias, g, b, t * tr, tr);
            FS_CU_LAUNCHED(err, "conv2d out");
        }
    return FS_OK;
}
