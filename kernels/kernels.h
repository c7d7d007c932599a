/* kernels: the ops the networks are built from. Each op has a plain reference
 * loop (fs_*_ref: obviously correct, slow) and a fast CPU version (fs_*),
 * tested against each other on random inputs by tests/test_ops.c.
 *
 * Layout: activations NHWC float32. Spatial ops work on a row strip of a map
 * whose global size is given: the strip's buffer holds global rows
 * [x_row0, x_row0 + x_rows) of each of the n images ([n][x_rows][w][c]),
 * including the halo rows the op needs. Rows of the buffer that fall outside
 * the global map [0, h) are treated as zeros whatever they hold (padding).
 *
 * Exactness: a fast op gives the same bits for an output element whatever
 * strip it is computed in and whatever the thread count. GEMMs therefore run
 * on tiles with a fixed shape whose bounds are fixed in global coordinates
 * (measured: OpenBLAS results for a row change with M and with its thread
 * count, but not with the content of the other rows of a same-shape call). */
#ifndef FS_KERNELS_H
#define FS_KERNELS_H

#include <stddef.h>
#include <stdint.h>
#include "core/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- GEMM tiles
 * C[m][nout] = A[m][k] * W[nout][k]^T (+ bias) for rows m0 .. m0+m-1 of a
 * global matrix: work is cut into tiles of FS_GEMM_TILE rows aligned on global
 * multiples of the tile, every tile computed by one single-threaded sgemm
 * call of the full tile shape (a partial tile is zero-padded into scratch).
 * This is the only way ops call BLAS. */
#define FS_GEMM_TILE 256
void fs_linear_ref(const float *x, float *y, size_t m, int k, int nout,
                   const float *w, const float *bias);
fs_code fs_linear(const float *x, float *y, size_t m, int k, int nout,
                  const float *w, const float *bias, int64_t m0,
                  fs_arena *scratch, fs_error *err);
/* The same for a matrix every rank holds whole (the text context's K and V
 * inputs): the row count m is then a global quantity, so the rows are not
 * padded to FS_GEMM_TILE: m <= FS_LINEAR_WHOLE_MAX rows make one row tile of
 * exactly m rows (more: FS_GEMM_TILE tiles from row 0). Never call it on a
 * strip of a larger matrix: the bits would depend on the split. */
#define FS_LINEAR_WHOLE_MAX 1024
fs_code fs_linear_whole(const float *x, float *y, size_t m, int k, int nout,
                        const float *w, const float *bias, fs_arena *scratch,
                        fs_error *err);
size_t fs_linear_whole_scratch_bytes(size_t m, int k, int nout);
/* Scratch bytes fs_linear / fs_conv2d / fs_attention take from their arena
 * (for fs_threads_count() threads), so callers can plan memory. A NULL
 * scratch arena is allowed: the op then fs_allocs its scratch itself. */
size_t fs_linear_scratch_bytes(int k, int nout);

/* ---------------------------------------------------------------- conv2d
 * Weights OHWI: [cout][k][k][cin]; bias [cout] or NULL. Padding is
 * dil * (k - 1) / 2 on every side (PyTorch's padding = dilation for k = 3). */
typedef struct fs_conv2d_desc {
    int n;                /* batch */
    int in_h, in_w;       /* the global input map */
    int cin, cout;
    int k;                /* 1 or 3 */
    int stride;           /* 1 or 2 */
    int dil;              /* 1 .. 8 */
    int x_row0, x_rows;   /* global input rows held in x (may reach outside [0, in_h)) */
    int y_row0, y_rows;   /* global output rows to compute into y ([n][y_rows][out_w][cout]) */
    /* 0: the padding above. 1: padding dil * (k - 1) / 2 at the bottom and
     * right only, none at the top and left: PyTorch's F.pad(x, (0, 1, 0, 1))
     * then a padding-0 conv (the VAE encoder's stride-2 downsampler). */
    int pad_end;
} fs_conv2d_desc;

/* Output size with symmetric padding; with pad_end it is
 * (in + dil * (k - 1) / 2 - dil * (k - 1) - 1) / stride + 1 (fs_conv2d_desc_out_size). */
int fs_conv2d_out_size(int in, int k, int stride, int dil);
/* Output rows (in = d->in_h) or columns (in = d->in_w) of d, padding mode included. */
int fs_conv2d_desc_out_size(const fs_conv2d_desc *d, int in);
/* Global input rows [*row0, *row1) that output rows [y_row0, y_row0 + y_rows)
 * read, not clipped to the map (the halo a strip needs). */
void fs_conv2d_input_rows(const fs_conv2d_desc *d, int *row0, int *row1);
/* PyTorch OIHW [cout][cin][k][k] -> OHWI. */
void fs_conv2d_weight_from_oihw(const float *oihw, float *ohwi, int cout, int cin, int k);
void fs_conv2d_ref(const fs_conv2d_desc *d, const float *x, const float *w,
                   const float *bias, float *y);
fs_code fs_conv2d(const fs_conv2d_desc *d, const float *x, const float *w,
                  const float *bias, float *y, fs_arena *scratch, fs_error *err);
size_t fs_conv2d_scratch_bytes(const fs_conv2d_desc *d);

/* ---------------------------------------------------------------- norms
 * GroupNorm with statistics supplied by the caller, so they can be global
 * across strips. Partials are per global row, in double:
 * part[((r * n + b) * groups + g) * 2 + 0] = sum, [.. + 1] = sum of squares,
 * each summed in a fixed order (pixels, then channels of the group). */
void fs_groupnorm_partials(const float *x, int n, int rows, int w, int c, int groups,
                           double *part);
/* Folds the partials of all h rows of the map (global row order) into mean
 * and rstd = 1/sqrt(var + eps) per [b][g] (biased variance, as PyTorch). */
void fs_groupnorm_finish(const double *part, int h, int n, int w, int c, int groups,
                         float eps, float *mean, float *rstd);
/* The same from the totals: sums[(b * groups + g) * 2 + {0, 1}] = the sum
 * and the sum of squares over the whole map (fs_groupnorm_finish adds the
 * rows in order, then calls it). */
void fs_groupnorm_finish_sums(const double *sums, int h, int n, int w, int c, int groups,
                              float eps, float *mean, float *rstd);
/* y = (x - mean) * rstd * gamma + beta, then SiLU if silu; y may equal x. */
void fs_groupnorm_apply(const float *x, float *y, int n, int rows, int w, int c, int groups,
                        const float *mean, const float *rstd, const float *gamma,
                        const float *beta, int silu);
/* Reference: whole map at once, two-pass statistics in double. */
void fs_groupnorm_ref(const float *x, float *y, int n, int h, int w, int c, int groups,
                      float eps, const float *gamma, const float *beta, int silu);

/* Per token over c channels (biased variance). gamma/beta may be NULL. */
void fs_layernorm_ref(const float *x, float *y, size_t tokens, int c, float eps,
                      const float *gamma, const float *beta);
void fs_layernorm(const float *x, float *y, size_t tokens, int c, float eps,
                  const float *gamma, const float *beta);

/* ---------------------------------------------------------------- pointwise
 * y may equal x. GEGLU (diffusers): x is [m][2d], y[m][d] = x[:, :d] * gelu(x[:, d:]). */
void fs_silu_ref(const float *x, float *y, size_t n);
void fs_silu(const float *x, float *y, size_t n);
void fs_gelu_ref(const float *x, float *y, size_t n);        /* erf GELU */
void fs_gelu(const float *x, float *y, size_t n);
void fs_quick_gelu_ref(const float *x, float *y, size_t n);  /* x * sigmoid(1.702 x) */
void fs_quick_gelu(const float *x, float *y, size_t n);
void fs_geglu_ref(const float *x, float *y, size_t m, int d);
void fs_geglu(const float *x, float *y, size_t m, int d);

/* Sinusoidal timestep embedding as diffusers with flip_sin_to_cos = True,
 * downscale_freq_shift = 0: out[i] = [cos(t f_j) for j < dim/2, sin(t f_j) ...],
 * f_j = exp(-ln(10000) j / (dim/2)). out is [n][dim]. */
void fs_timestep_embedding_ref(const float *t, int n, int dim, float *out);
void fs_timestep_embedding(const float *t, int n, int dim, float *out);
/* The text encoders' input: x[r] = tokens[ids[r]] + pos[r % positions] for
 * rows r < m, each [c] floats (ids already checked against the vocabulary). */
void fs_embed_tokens(const int32_t *ids, size_t m, int positions, int c, const float *tokens,
                     const float *pos, float *x);

/* ---------------------------------------------------------------- glue
 * The elementwise steps between the networks' ops (kernels/glue.c), each one
 * float operation per element in index order (bits independent of threads):
 * y += x; y -= x; y[b][p][ch] += v[b][ch] for p < pixels; y[p] = [a[p] (ca
 * floats) | s[p] (cs floats)]; x[p][ch] *= b for ch < first (rows of c). */
void fs_add(float *y, const float *x, size_t count);
void fs_sub(float *y, const float *x, size_t count);
void fs_add_bcast(float *y, const float *v, int n, size_t pixels, int c);
void fs_concat(const float *a, int ca, const float *s, int cs, float *y, size_t pixels);
void fs_scale_channels(float *x, size_t pixels, int c, int first, float b);
/* Tiny products (the embeddings, m = batch): y[i][j] = b[j] + sum_p x[i][p]
 * w[j][p] summed in double in index order, one output per work item (no GEMM
 * tiles: m is a global quantity there, every rank computes it all). */
void fs_small_linear(const float *x, float *y, int m, int k, int nout, const float *w,
                     const float *bias);

/* ---------------------------------------------------------------- resampling
 * Nearest 2x: x holds rows [n][rows][w][c], y gets [n][2 rows][2 w][c]. */
void fs_upsample_nearest2x_ref(const float *x, float *y, int n, int rows, int w, int c);
void fs_upsample_nearest2x(const float *x, float *y, int n, int rows, int w, int c);

/* Bicubic resize with PyTorch's semantics (align_corners = False, a = -0.75,
 * taps clamped to the border, src = (dst + 0.5) * in / out - 0.5).
 * x holds global rows [x_row0, x_row0 + x_rows) of an in_h x in_w map (must
 * cover every row the wanted output rows read, after clamping); y gets
 * global output rows [y_row0, y_row0 + y_rows) of out_h x out_w. */
typedef struct fs_resize_desc {
    int n, c;
    int in_h, in_w, out_h, out_w;
    int x_row0, x_rows;
    int y_row0, y_rows;
} fs_resize_desc;
void fs_resize_bicubic_input_rows(const fs_resize_desc *d, int *row0, int *row1);
void fs_resize_bicubic_ref(const fs_resize_desc *d, const float *x, float *y);
void fs_resize_bicubic(const fs_resize_desc *d, const float *x, float *y);
/* A detail mask at a latent's size: out[y][x] (rows x w of an h x w map
 * starting at global row row0) = 1 where the u8 mask (mh x mw) is nonzero at
 * PyTorch's nearest index (upsample_nearest2d, no align_corners), else 0. */
void fs_mask_nearest(const uint8_t *mask, int mh, int mw, int h, int w, int row0, int rows,
                     float *out);
/* diffusers' tiled VAE seam (kernels/tiles.c): b [bh][bw][c] takes a's last
 * e = min(extent of a, of b, blend) rows (vertical: a above b, same width)
 * or columns (a left of b, same height) linearly: b[k] = a[.. - e + k] (1 -
 * k/e) + b[k] (k/e) for k < e, the weights rounded to float from double as
 * diffusers' blend_v / blend_h compute them. */
void fs_tile_blend(const float *a, int ah, int aw, float *b, int bh, int bw, int c, int blend,
                   int vertical);

/* ---------------------------------------------------------------- blur
 * Gaussian low-pass (FreeScale's fusion blur, spec/freescale.md section 5):
 * g[i] = exp(-(i - (k-1)/2)^2 / (2 sigma^2)) normalised to sum 1, applied by
 * zero-padded correlation (no renormalisation at the borders) along the axes
 * in `axes`: FS_BLUR_H | FS_BLUR_W is the 2-D spatial blur (variant B),
 * FS_BLUR_W | FS_BLUR_C variant A, all three the 3-D blur of HEAD (variant C,
 * over rows, columns and channels of each batch item). */
enum { FS_BLUR_H = 1, FS_BLUR_W = 2, FS_BLUR_C = 4 };
void fs_gaussian_kernel1d(int k, float sigma, float *g);
typedef struct fs_blur_desc {
    int n, h, w, c;        /* global map */
    int k;                 /* odd kernel size */
    int axes;              /* FS_BLUR_* bits */
    int x_row0, x_rows;    /* rows held (with halo k/2 when FS_BLUR_H) */
    int y_row0, y_rows;    /* rows to produce */
} fs_blur_desc;
void fs_blur_ref(const fs_blur_desc *d, const float *g, const float *x, float *y);
fs_code fs_blur(const fs_blur_desc *d, const float *g, const float *x, float *y,
                fs_arena *scratch, fs_error *err);

/* The paper's frequency-domain Gaussian low-pass (FS_BLUR_FFT, kernels/
 * spectral.c, FFTW): per item and channel, the 2-D DFT of the whole h x w
 * map times exp(-2 pi^2 sigma^2 (fy^2 + fx^2)) (fy, fx in cycles per sample,
 * the DFT of a continuous Gaussian of std sigma: a periodic, not zero-padded,
 * blur), inverse DFT, real part. x, y: [n][h][w][c] whole maps (may alias). */
fs_code fs_blur_fft(const float *x, float *y, int n, int h, int w, int c, float sigma,
                    fs_error *err);

/* ---------------------------------------------------------------- FreeU
 * FreeU's Fourier filter (spec/freescale.md section 7) on a map cut into
 * row strips: x' = Re(IFFT(mask * FFT(x))), the mask `s` on the fftshifted
 * 2x2 centre block (unshifted frequencies (ky, kx) in {-1, 0}^2), else 1.
 * Equals x + (s - 1) / (h w) * Re(sum_k X(k) e^{2 pi i (ky y / h + kx x / w)})
 * with X(k) = sum_{y, x} x[y][x] e^{-2 pi i (ky y / h + kx x / w)}: four
 * complex coefficients per channel, which a strip computes for its own rows
 * (per-row partials, summed across ranks in global row order) instead of an
 * FFT of the whole map.
 * fs_freeu_row_coeffs: the partial of global row y ([w][c], one item) into
 * out [4][c][2] doubles (k order (0,0), (0,-1), (-1,0), (-1,-1); re, im).
 * fs_freeu_apply: rows [row0, row0 + rows) of one item ([rows][w][c]) in
 * place, from the summed coefficients (same layout). fs_freeu_ref: the whole
 * map with FFTW's full 2-D FFT (the test's reference), one item [h][w][c]. */
void fs_freeu_row_coeffs(const float *row, int y, int h, int w, int c, double *out);
void fs_freeu_apply(float *x, int row0, int rows, int h, int w, int c, const double *coeffs,
                    float s);
fs_code fs_freeu_ref(const float *x, float *y, int h, int w, int c, float s, fs_error *err);
/* Strips of n items: fs_freeu_partials writes the partials of global rows
 * [row0, row0 + rows) of x [n][rows][w][c] into part [rows][n][4][c][2];
 * fs_freeu_apply_items applies summed coefficients [n][4][c][2] in place. */
void fs_freeu_partials(const float *x, int n, int row0, int rows, int h, int w, int c,
                       double *part);
void fs_freeu_apply_items(float *x, int n, int row0, int rows, int h, int w, int c,
                          const double *coeffs, float s);

/* ---------------------------------------------------------------- attention
 * o = softmax(q k^T * scale) v for each of `heads` heads of dimension dh.
 * q: nq rows of heads*dh floats with row stride ldq (floats); k, v: nk rows
 * (ldk, ldv); o: nq rows (ldo). Head h uses columns [h*dh, (h+1)*dh).
 * The fast version streams over key blocks (online softmax): no nq x nk
 * matrix, scratch independent of nk. q0 is the global index of q's first row:
 * query tiles are aligned on it so results do not depend on the split. */
void fs_attention_ref(const float *q, int ldq, const float *k, int ldk, const float *v, int ldv,
                      float *o, int ldo, int nq, int nk, int heads, int dh, float scale);
fs_code fs_attention(const float *q, int ldq, const float *k, int ldk, const float *v, int ldv,
                     float *o, int ldo, int nq, int nk, int heads, int dh, float scale,
                     int64_t q0, fs_arena *scratch, fs_error *err);
size_t fs_attention_scratch_bytes(int nk, int heads, int dh);
/* Causal attention (the text encoders' mask): query row r, global index
 * g = q0 + r, attends to keys 0 .. min(g, nk - 1) only (queries and keys
 * are the same tokens, both counted from 0). Same tiles and exactness as
 * fs_attention; the same scratch. */
void fs_attention_causal_ref(const float *q, int ldq, const float *k, int ldk, const float *v,
                             int ldv, float *o, int ldo, int nq, int nk, int heads, int dh,
                             float scale, int64_t q0);
fs_code fs_attention_causal(const float *q, int ldq, const float *k, int ldk, const float *v,
                            int ldv, float *o, int ldo, int nq, int nk, int heads, int dh,
                            float scale, int64_t q0, fs_arena *scratch, fs_error *err);

/* ---------------------------------------------------------------- sampler steps
 * The samplers' elementwise updates (kernels/steps.c) with coefficients
 * sampler/ derives from the schedule, in diffusers' float32 order:
 * CFG eps = u + g (c - u); Euler x = s + ((s - (s - sigma e)) / sigma) dt;
 * DDIM x = sqrt_alpha_prev ((x - sqrt_beta_t e) / sqrt_alpha_t) + dir e;
 * noised = a z + b e (Euler: a = 1, b = sigma; DDIM: sqrt(alpha), sqrt(1 -
 * alpha)); detail mix x = x (1 - c) + (a z + b e) c with c = c_fg where
 * the mask [pixels] is nonzero (or NULL), else c_bg; y = x k. */
typedef struct fs_ddim_coeffs {
    float sqrt_beta_t, sqrt_alpha_t, dir, sqrt_alpha_prev;
} fs_ddim_coeffs;
void fs_cfg_combine(const float *eps_uncond, const float *eps_cond, float guidance, size_t n,
                    float *eps);
void fs_euler_update(float *x, const float *eps, size_t n, float sigma, float dt);
void fs_ddim_update(float *x, const float *eps, size_t n, const fs_ddim_coeffs *c);
void fs_noised(const float *z, const float *eps, size_t n, float a, float b, float *noisy);
void fs_detail_mix(float *x, const float *z, const float *eps, const float *mask, size_t pixels,
                   int channels, float a, float b, float c_fg, float c_bg);
void fs_scale(const float *x, float *y, size_t n, float k);
/* The VAE's latent side: the posterior sample of moments [pixels][2 L]
 * ([mean | logvar] per pixel) with eps [pixels][L]: s = mean + exp(0.5 *
 * clamp(logvar, -30, 20)) * eps, latent = (s - shift) * scaling (diffusers'
 * DiagonalGaussianDistribution.sample, then the pipeline's scaling); and its
 * inverse before a decode, z = latent / scaling + shift. */
void fs_posterior_sample(const float *moments, const float *eps, size_t pixels, int L,
                         float shift, float scaling, float *latent);
void fs_latent_unscale(const float *latent, float *z, size_t n, float scaling, float shift);

/* ---------------------------------------------------------------- token grids
 * Scale fusion's windows and fast_mode's sub-lattices (unet/fusion.c) as
 * moves of tokens (c floats each) of an fh x fw map (kernels/grid.c). A grid
 * is the ny x nx tokens (y0 + i dy, x0 + j dx), which may lie off the map.
 * fs_grid_gather: dst[i][j] = that token of src (src holds map rows from
 * src_row0, [..][fw][c]) when it is on the map, else pad ([c]; NULL only
 * when every token is on the map).
 * fs_grid_scatter: the reverse, into dst (map rows from dst_row0); every
 * token must be on the map and in dst.
 * fs_window_add: for a unit-step grid, out[t] += o[i][j] and cnt[t] += 1 for
 * each of its tokens t on the map and in out's rows [row0, row0 + rows) (out
 * [rows][fw][c], cnt [rows][fw]): a window's contribution, added after the
 * windows before it.
 * fs_divide_counts: out[t] /= cnt[t] where cnt[t] > 0, t < tokens. */
typedef struct fs_grid { int y0, x0, ny, nx, dy, dx; } fs_grid;
void fs_grid_gather(float *dst, const float *src, int src_row0, int fh, int fw, int c,
                    const fs_grid *g, const float *pad);
void fs_grid_scatter(float *dst, int dst_row0, int fw, int c, const fs_grid *g,
                     const float *src);
void fs_window_add(float *out, float *cnt, int row0, int rows, int fw, int c, const fs_grid *g,
                   const float *o);
void fs_divide_counts(float *out, const float *cnt, size_t tokens, int c);

/* ---------------------------------------------------------------- CUDA
 * The optional GPU backend (the .cu files of kernels/cuda, built when nvcc is found; see
 * kernels/cuda_host.c for the build without it). One opaque context per rank
 * holds the device, a stream, a cuBLAS handle and a scratch buffer; ops take
 * DEVICE pointers, are queued on the context's stream and return at once
 * (errors of a launch are reported; errors inside a kernel surface at the
 * next fs_cuda_sync). Each op mirrors the CPU op of the same name above and
 * is tested against its fs_*_ref through the CUDA backend by tests/test_ops.c.
 *
 * Exactness across ranks holds on the GPU as on the CPU: cuBLAS is called
 * only on tiles of a fixed shape at fixed global positions (a partial tile
 * is zero-padded in scratch), cuBLAS runs in plain FP32 (no TF32, no split-K
 * atomics), and every reduction has a fixed tree per row, so an output
 * element has the same bits whatever strip computes it. Results are not
 * bit-identical to the CPU ops (other summation orders), only within 1e-5.
 *
 * fs_cuda_available() is the number of usable devices (0 without CUDA in the
 * build, a driver or a device; why says which). */
int fs_cuda_available(char *why, size_t why_len);
typedef struct fs_cuda fs_cuda;
/* Opens `device` with a scratch buffer of scratch_bytes (0: 1 GiB); the GEMM
 * tile sizes are chosen so every op fits in it. */
fs_code fs_cuda_open(fs_cuda **out, int device, size_t scratch_bytes, fs_error *err);
void fs_cuda_close(fs_cuda *cu);
/* "NVIDIA H200 (sm_90, 132 SMs, 139.8 GiB)" */
const char *fs_cuda_device_name(const fs_cuda *cu);
fs_code fs_cuda_alloc(fs_cuda *cu, void **dptr, size_t bytes, fs_error *err);
void fs_cuda_free(fs_cuda *cu, void *dptr);
/* Copies wait for the stream (synchronous for the host buffer). */
fs_code fs_cuda_upload(fs_cuda *cu, void *dst, const void *src, size_t bytes, fs_error *err);
fs_code fs_cuda_download(fs_cuda *cu, void *dst, const void *src, size_t bytes, fs_error *err);
fs_code fs_cuda_sync(fs_cuda *cu, fs_error *err);
/* `rows` rows of row_bytes between pitched buffers (cudaMemcpy2D: a halo's
 * edge rows of every item in one copy), synchronous for the host buffer. */
fs_code fs_cuda_upload_rows(fs_cuda *cu, void *dst, size_t dst_pitch, const void *src,
                            size_t src_pitch, size_t row_bytes, size_t rows, fs_error *err);
fs_code fs_cuda_download_rows(fs_cuda *cu, void *dst, size_t dst_pitch, const void *src,
                              size_t src_pitch, size_t row_bytes, size_t rows, fs_error *err);

/* Pointwise (y may equal x). */
fs_code fs_cuda_silu(fs_cuda *cu, const float *x, float *y, size_t n, fs_error *err);
fs_code fs_cuda_gelu(fs_cuda *cu, const float *x, float *y, size_t n, fs_error *err);
fs_code fs_cuda_quick_gelu(fs_cuda *cu, const float *x, float *y, size_t n, fs_error *err);
fs_code fs_cuda_geglu(fs_cuda *cu, const float *x, float *y, size_t m, int d, fs_error *err);
fs_code fs_cuda_upsample_nearest2x(fs_cuda *cu, const float *x, float *y, int n, int rows, int w,
                                   int c, fs_error *err);
/* Elementwise helpers of the networks' glue (nn/): y += x; y[b][p][ch] +=
 * v[b][ch] for p < pixels; y[p] = [a[p] (ca floats) | s[p] (cs floats)];
 * x[p][ch] *= b for ch < first; dst = src (may overlap); dst = 0. */
fs_code fs_cuda_add(fs_cuda *cu, float *y, const float *x, size_t count, fs_error *err);
fs_code fs_cuda_add_bcast(fs_cuda *cu, float *y, const float *v, int n, size_t pixels, int c,
                          fs_error *err);
fs_code fs_cuda_concat(fs_cuda *cu, const float *a, int ca, const float *s, int cs, float *y,
                       size_t pixels, fs_error *err);
fs_code fs_cuda_scale_channels(fs_cuda *cu, float *x, size_t pixels, int c, int first, float b,
                               fs_error *err);
fs_code fs_cuda_copy(fs_cuda *cu, void *dst, const void *src, size_t bytes, fs_error *err);
fs_code fs_cuda_zero(fs_cuda *cu, void *dst, size_t bytes, fs_error *err);
/* Tiny products (the embeddings, m = batch): y[i][j] = b[j] + sum_p x[i][p]
 * w[j][p], summed in double in index order, one thread per output (no
 * cuBLAS tiles: m is a global quantity there, every rank computes it all). */
fs_code fs_cuda_small_linear(fs_cuda *cu, const float *x, float *y, int m, int k, int nout,
                             const float *w, const float *bias, fs_error *err);
/* GroupNorm in the CPU op's three steps: per-row partials (device, same
 * layout as fs_groupnorm_partials: [rows][n][groups][2] doubles; summed
 * across ranks by comm/ and folded by the host's fs_groupnorm_finish), then
 * the apply step with mean and rstd on the device ([n][groups] floats). */
fs_code fs_cuda_groupnorm_partials(fs_cuda *cu, const float *x, int n, int rows, int w, int c,
                                   int groups, double *part, fs_error *err);
fs_code fs_cuda_groupnorm_apply(fs_cuda *cu, const float *x, float *y, int n, int rows, int w,
                                int c, int groups, const float *mean, const float *rstd,
                                const float *gamma, const float *beta, int silu, fs_error *err);
fs_code fs_cuda_layernorm(fs_cuda *cu, const float *x, float *y, size_t tokens, int c, float eps,
                          const float *gamma, const float *beta, fs_error *err);
/* GEMM ops: the CPU ops' contracts (m0, q0: the global index of the first
 * row, on which the fixed tiles are aligned). */
fs_code fs_cuda_linear(fs_cuda *cu, const float *x, float *y, size_t m, int k, int nout,
                       const float *w, const float *bias, int64_t m0, fs_error *err);
/* fs_linear_whole's contract (a matrix every rank holds whole, e.g. the
 * text context's K and V inputs): m <= 2048 rows make one tile of exactly m
 * rows (no padding to the strip tile), more the tiles of fs_cuda_linear from
 * row 0. */
fs_code fs_cuda_linear_whole(fs_cuda *cu, const float *x, float *y, size_t m, int k, int nout,
                             const float *w, const float *bias, fs_error *err);
/* Device memory this context has allocated (fs_cuda_alloc, and the scratch):
 * now and at most since fs_cuda_open or the last reset. */
size_t fs_cuda_mem_current(const fs_cuda *cu);
size_t fs_cuda_mem_peak(const fs_cuda *cu);
void fs_cuda_mem_reset_peak(fs_cuda *cu);
fs_code fs_cuda_conv2d(fs_cuda *cu, const fs_conv2d_desc *d, const float *x, const float *w,
                       const float *bias, float *y, fs_error *err);
fs_code fs_cuda_attention(fs_cuda *cu, const float *q, int ldq, const float *k, int ldk,
                          const float *v, int ldv, float *o, int ldo, int nq, int nk, int heads,
                          int dh, float scale, int64_t q0, fs_error *err);

/* ---------------------------------------------------------------- backends
 * The one door from the networks (through nn/) to a device: a table of ops
 * fixed when a backend is made (ggml's ggml-backend-impl.h is the model).
 * The CPU backend (kernels/backend_cpu.c) wraps the fast ops above; the CUDA
 * backend (kernels/backend_cuda.c) wraps the fs_cuda_* ops. Pointers are
 * the backend's memory (host or device; see host_memory) except where an op
 * says "host". Every op returns its error (fs_fail into err), nothing else
 * reports one. An op a backend lacks fails with FS_ERR_UNSUPPORTED naming
 * the op: never a silently different result. Each op's contract is the CPU
 * op's of the same name above; tests/test_ops.c runs every op of every
 * backend against the reference loops.
 *
 * It lives here, not in nn/, because it is the kernels' contract (device
 * pointers, scratch, tiles), tested without nn's dry pass and comm; nn/
 * adds the sizing pass, the profile and the traffic between ranks on top. */
typedef struct fs_backend fs_backend;
typedef struct fs_backend_ops {
    /* memory */
    fs_code (*alloc)(const fs_backend *be, void **p, size_t bytes, fs_error *err);
    void (*free)(const fs_backend *be, void *p);
    /* The contents of [p, p + bytes) are no longer needed: host memory gives
     * its whole pages back to the system (after filling the range with NaN,
     * so a later read shows in any result); device memory keeps them. */
    void (*discard)(const fs_backend *be, void *p, size_t bytes);
    fs_code (*upload)(const fs_backend *be, void *dst, const void *host, size_t bytes,
                      fs_error *err);
    fs_code (*download)(const fs_backend *be, void *host, const void *src, size_t bytes,
                        fs_error *err);
    /* rows rows of row_bytes each between pitched buffers (edge rows only) */
    fs_code (*upload_rows)(const fs_backend *be, void *dst, size_t dst_pitch, const void *host,
                           size_t host_pitch, size_t row_bytes, size_t rows, fs_error *err);
    fs_code (*download_rows)(const fs_backend *be, void *host, size_t host_pitch,
                             const void *src, size_t src_pitch, size_t row_bytes, size_t rows,
                             fs_error *err);
    fs_code (*copy)(const fs_backend *be, void *dst, const void *src, size_t bytes,
                    fs_error *err); /* may overlap */
    fs_code (*zero)(const fs_backend *be, void *dst, size_t bytes, fs_error *err);
    /* GEMM ops (scratch: the caller's arena on the CPU, the context's own on a device) */
    fs_code (*conv2d)(const fs_backend *be, const fs_conv2d_desc *d, const float *x,
                      const float *w, const float *bias, float *y, fs_arena *scratch,
                      fs_error *err);
    fs_code (*linear)(const fs_backend *be, const float *x, float *y, size_t m, int k, int nout,
                      const float *w, const float *bias, int64_t m0, fs_arena *scratch,
                      fs_error *err);
    fs_code (*linear_whole)(const fs_backend *be, const float *x, float *y, size_t m, int k,
                            int nout, const float *w, const float *bias, fs_arena *scratch,
                            fs_error *err);
    fs_code (*small_linear)(const fs_backend *be, const float *x, float *y, int m, int k,
                            int nout, const float *w, const float *bias, fs_error *err);
    /* diffusers' sinusoidal Timesteps of n values t (host memory) into out [n][dim] */
    fs_code (*timestep_embedding)(const fs_backend *be, const float *t, int n, int dim,
                                  float *out, fs_error *err);
    fs_code (*embed_tokens)(const fs_backend *be, const int32_t *ids, size_t m, int positions,
                            int c, const float *tokens, const float *pos, float *x,
                            fs_error *err);
    fs_code (*attention)(const fs_backend *be, const float *q, int ldq, const float *k, int ldk,
                         const float *v, int ldv, float *o, int ldo, int nq, int nk, int heads,
                         int dh, float scale, int64_t q0, fs_arena *scratch, fs_error *err);
    fs_code (*attention_causal)(const fs_backend *be, const float *q, int ldq, const float *k,
                                int ldk, const float *v, int ldv, float *o, int ldo, int nq,
                                int nk, int heads, int dh, float scale, int64_t q0,
                                fs_arena *scratch, fs_error *err);
    /* norms (GroupNorm's partials are summed and folded by the caller, on the host) */
    fs_code (*gn_partials)(const fs_backend *be, const float *x, int n, int rows, int w, int c,
                           int groups, double *part, fs_error *err);
    fs_code (*gn_apply)(const fs_backend *be, const float *x, float *y, int n, int rows, int w,
                        int c, int groups, const float *mean, const float *rstd,
                        const float *gamma, const float *beta, int silu, fs_error *err);
    fs_code (*layernorm)(const fs_backend *be, const float *x, float *y, size_t tokens, int c,
                         float eps, const float *gamma, const float *beta, fs_error *err);
    /* activations and pointwise */
    fs_code (*silu)(const fs_backend *be, const float *x, float *y, size_t n, fs_error *err);
    fs_code (*gelu)(const fs_backend *be, const float *x, float *y, size_t n, fs_error *err);
    fs_code (*quick_gelu)(const fs_backend *be, const float *x, float *y, size_t n,
                          fs_error *err);
    fs_code (*geglu)(const fs_backend *be, const float *x, float *y, size_t m, int d,
                     fs_error *err);
    fs_code (*add)(const fs_backend *be, float *y, const float *x, size_t count, fs_error *err);
    fs_code (*sub)(const fs_backend *be, float *y, const float *x, size_t count, fs_error *err);
    fs_code (*add_bcast)(const fs_backend *be, float *y, const float *v, int n, size_t pixels,
                         int c, fs_error *err);
    fs_code (*concat)(const fs_backend *be, const float *a, int ca, const float *s, int cs,
                      float *y, size_t pixels, fs_error *err);
    fs_code (*scale_channels)(const fs_backend *be, float *x, size_t pixels, int c, int first,
                              float b, fs_error *err);
    /* resampling */
    fs_code (*upsample_nearest2x)(const fs_backend *be, const float *x, float *y, int n,
                                  int rows, int w, int c, fs_error *err);
    fs_code (*resize_bicubic)(const fs_backend *be, const fs_resize_desc *d, const float *x,
                              float *y, fs_error *err);
    /* FreeScale: blurs (g: the d->k taps, host), FreeU's filter, fusion's grids */
    fs_code (*blur)(const fs_backend *be, const fs_blur_desc *d, const float *g, const float *x,
                    float *y, fs_arena *scratch, fs_error *err);
    fs_code (*blur_fft)(const fs_backend *be, const float *x, float *y, int n, int h, int w,
                        int c, float sigma, fs_error *err);
    fs_code (*freeu_partials)(const fs_backend *be, const float *x, int n, int row0, int rows,
                              int h, int w, int c, double *part, fs_error *err);
    fs_code (*freeu_apply)(const fs_backend *be, float *x, int n, int row0, int rows, int h,
                           int w, int c, const double *coeffs, float s, fs_error *err);
    fs_code (*grid_gather)(const fs_backend *be, float *dst, const float *src, int src_row0,
                           int fh, int fw, int c, const fs_grid *g, const float *pad,
                           fs_error *err);
    fs_code (*grid_scatter)(const fs_backend *be, float *dst, int dst_row0, int fw, int c,
                            const fs_grid *g, const float *src, fs_error *err);
    fs_code (*window_add)(const fs_backend *be, float *out, float *cnt, int row0, int rows,
                          int fw, int c, const fs_grid *g, const float *o, fs_error *err);
    fs_code (*divide_counts)(const fs_backend *be, float *out, const float *cnt, size_t tokens,
                             int c, fs_error *err);
    /* the sampler's steps, and the initial noise: normal numbers index0 ..
     * index0 + n - 1 of the Philox stream (seed, stream), core's
     * fs_rng_fill_normal */
    fs_code (*cfg)(const fs_backend *be, const float *eps_uncond, const float *eps_cond,
                   float guidance, size_t n, float *eps, fs_error *err);
    fs_code (*euler_step)(const fs_backend *be, float *x, const float *eps, size_t n, float sigma,
                          float dt, fs_error *err);
    fs_code (*ddim_step)(const fs_backend *be, float *x, const float *eps, size_t n,
                         const fs_ddim_coeffs *c, fs_error *err);
    fs_code (*add_noise)(const fs_backend *be, const float *z, const float *eps, size_t n,
                         float a, float b, float *noisy, fs_error *err);
    fs_code (*detail_blend)(const fs_backend *be, float *x, const float *z, const float *eps,
                            const float *mask, size_t pixels, int channels, float a, float b,
                            float c_fg, float c_bg, fs_error *err);
    fs_code (*scale)(const fs_backend *be, const float *x, float *y, size_t n, float k,
                     fs_error *err);
    fs_code (*noise_fill)(const fs_backend *be, float *x, size_t n, uint64_t seed,
                          uint64_t stream, uint64_t index0, fs_error *err);
    /* the VAE's latent side and the detail mask (host u8 mask) */
    fs_code (*posterior_sample)(const fs_backend *be, const float *moments, const float *eps,
                                size_t pixels, int L, float shift, float scaling, float *latent,
                                fs_error *err);
    fs_code (*latent_unscale)(const fs_backend *be, const float *latent, float *z, size_t n,
                              float scaling, float shift, fs_error *err);
    fs_code (*mask_nearest)(const fs_backend *be, const uint8_t *mask, int mh, int mw, int h,
                            int w, int row0, int rows, float *out, fs_error *err);
    fs_code (*tile_blend)(const fs_backend *be, const float *a, int ah, int aw, float *b, int bh,
                          int bw, int c, int blend, int vertical, fs_error *err);
} fs_backend_ops;

struct fs_backend {
    const char *name;          /* "cpu", "cuda": starts an unsupported op's message */
    /* the ops' buffers are host memory: comm (MPI) can read and write them
     * in place; otherwise rows that cross ranks are staged through the host */
    int host_memory;
    int gemm_rows;             /* rows of the fixed GEMM tile (FS_GEMM_TILE on the CPU) */
    void *ctx;                 /* the device context (fs_cuda *), NULL on the CPU */
    const fs_backend_ops *op;
};

/* The CPU backend (one, static). */
const fs_backend *fs_backend_cpu(void);
/* The CUDA backend on an open context (the backend holds cu, not owns it). */
fs_backend fs_backend_cuda(fs_cuda *cu);

#ifdef __cplusplus
}
#endif
#endif
