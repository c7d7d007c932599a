/* kernels/backend_cuda.c: the CUDA backend (kernels.h, "backends"): the
 * table over the fs_cuda_* ops of one open context (kernels/cuda/, or the
 * stubs of kernels/cuda_host.c in a build without CUDA, which fail every op
 * with FS_ERR_UNSUPPORTED). The ops with no CUDA version yet fail the same
 * way, naming the op, instead of computing something else. Scratch arenas
 * are ignored: the context carries its own device scratch. */
#include <stdlib.h>
#include "kernels/kernels.h"

#define CU(be) ((fs_cuda *)(be)->ctx)

static fs_code missing(fs_error *err, const char *op) {
    return fs_fail(err, FS_ERR_UNSUPPORTED,
                   "%s has no GPU version yet (cuda backend): run it on CPU ranks", op);
}

static fs_code cu_alloc(const fs_backend *be, void **p, size_t bytes, fs_error *err) {
    return fs_cuda_alloc(CU(be), p, bytes, err);
}
static void cu_free(const fs_backend *be, void *p) { fs_cuda_free(CU(be), p); }
/* Device memory is not paged out: only the caller's count drops. */
static void cu_discard(const fs_backend *be, void *p, size_t bytes) {
    (void)be; (void)p; (void)bytes;
}
static fs_code cu_upload(const fs_backend *be, void *dst, const void *host, size_t bytes,
                         fs_error *err) {
    return fs_cuda_upload(CU(be), dst, host, bytes, err);
}
static fs_code cu_download(const fs_backend *be, void *host, const void *src, size_t bytes,
                           fs_error *err) {
    return fs_cuda_download(CU(be), host, src, bytes, err);
}
static fs_code cu_upload_rows(const fs_backend *be, void *dst, size_t dst_pitch, const void *host,
                              size_t host_pitch, size_t row_bytes, size_t rows, fs_error *err) {
    return fs_cuda_upload_rows(CU(be), dst, dst_pitch, host, host_pitch, row_bytes, rows, err);
}
static fs_code cu_download_rows(const fs_backend *be, void *host, size_t host_pitch,
                                const void *src, size_t src_pitch, size_t row_bytes, size_t rows,
                                fs_error *err) {
    return fs_cuda_download_rows(CU(be), host, host_pitch, src, src_pitch, row_bytes, rows, err);
}
static fs_code cu_copy(const fs_backend *be, void *dst, const void *src, size_t bytes,
                       fs_error *err) {
    return fs_cuda_copy(CU(be), dst, src, bytes, err);
}
static fs_code cu_zero(const fs_backend *be, void *dst, size_t bytes, fs_error *err) {
    return fs_cuda_zero(CU(be), dst, bytes, err);
}

static fs_code cu_conv2d(const fs_backend *be, const fs_conv2d_desc *d, const float *x,
                         const float *w, const float *bias, float *y, fs_arena *scratch,
                         fs_error *err) {
    (void)scratch;
    return fs_cuda_conv2d(CU(be), d, x, w, bias, y, err);
}
static fs_code cu_linear(const fs_backend *be, const float *x, float *y, size_t m, int k,
                         int nout, const float *w, const float *bias, int64_t m0,
                         fs_arena *scratch, fs_error *err) {
    (void)scratch;
    return fs_cuda_linear(CU(be), x, y, m, k, nout, w, bias, m0, err);
}
static fs_code cu_linear_whole(const fs_backend *be, const float *x, float *y, size_t m, int k,
                               int nout, const float *w, const float *bias, fs_arena *scratch,
                               fs_error *err) {
    (void)scratch;
    return fs_cuda_linear_whole(CU(be), x, y, m, k, nout, w, bias, err);
}
static fs_code cu_small_linear(const fs_backend *be, const float *x, float *y, int m, int k,
                               int nout, const float *w, const float *bias, fs_error *err) {
    return fs_cuda_small_linear(CU(be), x, y, m, k, nout, w, bias, err);
}
/* A few thousand values from host timesteps: made on the host (the CPU's
 * kernel, so the same bits) and copied to the device. */
static fs_code cu_timestep_embedding(const fs_backend *be, const float *t, int n, int dim,
                                     float *out, fs_error *err) {
    size_t bytes = (size_t)n * dim * sizeof(float);
    float *h = malloc(bytes ? bytes : 1);
    if (!h) return fs_fail(err, FS_ERR_NOMEM, "timestep embedding: out of memory");
    fs_timestep_embedding(t, n, dim, h);
    fs_code rc = fs_cuda_upload(CU(be), out, h, bytes, err);
    free(h);
    return rc;
}
static fs_code cu_embed_tokens(const fs_backend *be, const int32_t *ids, size_t m, int positions,
                               int c, const float *tokens, const float *pos, float *x,
                               fs_error *err) {
    (void)be; (void)ids; (void)m; (void)positions; (void)c; (void)tokens; (void)pos; (void)x;
    return missing(err, "the token embedding (the text encoders)");
}
static fs_code cu_attention(const fs_backend *be, const float *q, int ldq, const float *k,
                            int ldk, const float *v, int ldv, float *o, int ldo, int nq, int nk,
                            int heads, int dh, float scale, int64_t q0, fs_arena *scratch,
                            fs_error *err) {
    (void)scratch;
    return fs_cuda_attention(CU(be), q, ldq, k, ldk, v, ldv, o, ldo, nq, nk, heads, dh, scale, q0,
                             err);
}
static fs_code cu_attention_causal(const fs_backend *be, const float *q, int ldq, const float *k,
                                   int ldk, const float *v, int ldv, float *o, int ldo, int nq,
                                   int nk, int heads, int dh, float scale, int64_t q0,
                                   fs_arena *scratch, fs_error *err) {
    (void)be; (void)q; (void)ldq; (void)k; (void)ldk; (void)v; (void)ldv; (void)o; (void)ldo;
    (void)nq; (void)nk; (void)heads; (void)dh; (void)scale; (void)q0; (void)scratch;
    return missing(err, "causal attention (the text encoders)");
}

static fs_code cu_gn_partials(const fs_backend *be, const float *x, int n, int rows, int w,
                              int c, int groups, double *part, fs_error *err) {
    return fs_cuda_groupnorm_partials(CU(be), x, n, rows, w, c, groups, part, err);
}
static fs_code cu_gn_apply(const fs_backend *be, const float *x, float *y, int n, int rows,
                           int w, int c, int groups, const float *mean, const float *rstd,
                           const float *gamma, const float *beta, int silu, fs_error *err) {
    return fs_cuda_groupnorm_apply(CU(be), x, y, n, rows, w, c, groups, mean, rstd, gamma, beta,
                                   silu, err);
}
static fs_code cu_layernorm(const fs_backend *be, const float *x, float *y, size_t tokens, int c,
                            float eps, const float *gamma, const float *beta, fs_error *err) {
    return fs_cuda_layernorm(CU(be), x, y, tokens, c, eps, gamma, beta, err);
}

static fs_code cu_silu(const fs_backend *be, const float *x, float *y, size_t n, fs_error *err) {
    return fs_cuda_silu(CU(be), x, y, n, err);
}
static fs_code cu_gelu(const fs_backend *be, const float *x, float *y, size_t n, fs_error *err) {
    return fs_cuda_gelu(CU(be), x, y, n, err);
}
static fs_code cu_quick_gelu(const fs_backend *be, const float *x, float *y, size_t n,
                             fs_error *err) {
    return fs_cuda_quick_gelu(CU(be), x, y, n, err);
}
static fs_code cu_geglu(const fs_backend *be, const float *x, float *y, size_t m, int d,
                        fs_error *err) {
    return fs_cuda_geglu(CU(be), x, y, m, d, err);
}
static fs_code cu_add(const fs_backend *be, float *y, const float *x, size_t count,
                      fs_error *err) {
    return fs_cuda_add(CU(be), y, x, count, err);
}
static fs_code cu_sub(const fs_backend *be, float *y, const float *x, size_t count,
                      fs_error *err) {
    (void)be; (void)y; (void)x; (void)count;
    return missing(err, "subtract (scale fusion's Lo - G)");
}
static fs_code cu_add_bcast(const fs_backend *be, float *y, const float *v, int n, size_t pixels,
                            int c, fs_error *err) {
    return fs_cuda_add_bcast(CU(be), y, v, n, pixels, c, err);
}
static fs_code cu_concat(const fs_backend *be, const float *a, int ca, const float *s, int cs,
                         float *y, size_t pixels, fs_error *err) {
    return fs_cuda_concat(CU(be), a, ca, s, cs, y, pixels, err);
}
static fs_code cu_scale_channels(const fs_backend *be, float *x, size_t pixels, int c, int first,
                                 float b, fs_error *err) {
    return fs_cuda_scale_channels(CU(be), x, pixels, c, first, b, err);
}
static fs_code cu_upsample(const fs_backend *be, const float *x, float *y, int n, int rows, int w,
                           int c, fs_error *err) {
    return fs_cuda_upsample_nearest2x(CU(be), x, y, n, rows, w, c, err);
}
static fs_code cu_resize_bicubic(const fs_backend *be, const fs_resize_desc *d, const float *x,
                                 float *y, fs_error *err) {
    (void)be; (void)d; (void)x; (void)y;
    return missing(err, "bicubic resize");
}
static fs_code cu_blur(const fs_backend *be, const fs_blur_desc *d, const float *g,
                       const float *x, float *y, fs_arena *scratch, fs_error *err) {
    (void)be; (void)d; (void)g; (void)x; (void)y; (void)scratch;
    return missing(err, "the fusion blur");
}
static fs_code cu_blur_fft(const fs_backend *be, const float *x, float *y, int n, int h, int w,
                           int c, float sigma, fs_error *err) {
    (void)be; (void)x; (void)y; (void)n; (void)h; (void)w; (void)c; (void)sigma;
    return missing(err, "the FFT blur");
}
static fs_code cu_freeu_partials(const fs_backend *be, const float *x, int n, int row0, int rows,
                                 int h, int w, int c, double *part, fs_error *err) {
    (void)be; (void)x; (void)n; (void)row0; (void)rows; (void)h; (void)w; (void)c; (void)part;
    return missing(err, "FreeU's Fourier filter");
}
static fs_code cu_freeu_apply(const fs_backend *be, float *x, int n, int row0, int rows, int h,
                              int w, int c, const double *coeffs, float s, fs_error *err) {
    (void)be; (void)x; (void)n; (void)row0; (void)rows; (void)h; (void)w; (void)c; (void)coeffs;
    (void)s;
    return missing(err, "FreeU's Fourier filter");
}
static fs_code cu_grid_gather(const fs_backend *be, float *dst, const float *src, int src_row0,
                              int fh, int fw, int c, const fs_grid *g, const float *pad,
                              fs_error *err) {
    (void)be; (void)dst; (void)src; (void)src_row0; (void)fh; (void)fw; (void)c; (void)g;
    (void)pad;
    return missing(err, "scale fusion's window gather");
}
static fs_code cu_grid_scatter(const fs_backend *be, float *dst, int dst_row0, int fw, int c,
                               const fs_grid *g, const float *src, fs_error *err) {
    (void)be; (void)dst; (void)dst_row0; (void)fw; (void)c; (void)g; (void)src;
    return missing(err, "scale fusion's sub-lattice scatter");
}
static fs_code cu_window_add(const fs_backend *be, float *out, float *cnt, int row0, int rows,
                             int fw, int c, const fs_grid *g, const float *o, fs_error *err) {
    (void)be; (void)out; (void)cnt; (void)row0; (void)rows; (void)fw; (void)c; (void)g; (void)o;
    return missing(err, "scale fusion's window sum");
}
static fs_code cu_divide_counts(const fs_backend *be, float *out, const float *cnt,
                                size_t tokens, int c, fs_error *err) {
    (void)be; (void)out; (void)cnt; (void)tokens; (void)c;
    return missing(err, "scale fusion's window average");
}

static fs_code cu_cfg(const fs_backend *be, const float *eps_uncond, const float *eps_cond,
                      float guidance, size_t n, float *eps, fs_error *err) {
    (void)be; (void)eps_uncond; (void)eps_cond; (void)guidance; (void)n; (void)eps;
    return missing(err, "classifier-free guidance");
}
static fs_code cu_euler_step(const fs_backend *be, float *x, const float *eps, size_t n,
                             float sigma, float dt, fs_error *err) {
    (void)be; (void)x; (void)eps; (void)n; (void)sigma; (void)dt;
    return missing(err, "the Euler step");
}
static fs_code cu_ddim_step(const fs_backend *be, float *x, const float *eps, size_t n,
                            const fs_ddim_coeffs *c, fs_error *err) {
    (void)be; (void)x; (void)eps; (void)n; (void)c;
    return missing(err, "the DDIM step");
}
static fs_code cu_add_noise(const fs_backend *be, const float *z, const float *eps, size_t n,
                            float a, float b, float *noisy, fs_error *err) {
    (void)be; (void)z; (void)eps; (void)n; (void)a; (void)b; (void)noisy;
    return missing(err, "the noised latent");
}
static fs_code cu_detail_blend(const fs_backend *be, float *x, const float *z, const float *eps,
                               const float *mask, size_t pixels, int channels, float a, float b,
                               float c_fg, float c_bg, fs_error *err) {
    (void)be; (void)x; (void)z; (void)eps; (void)mask; (void)pixels; (void)channels; (void)a;
    (void)b; (void)c_fg; (void)c_bg;
    return missing(err, "the detail blend");
}
static fs_code cu_posterior_sample(const fs_backend *be, const float *moments, const float *eps,
                                   size_t pixels, int L, float shift, float scaling,
                                   float *latent, fs_error *err) {
    (void)be; (void)moments; (void)eps; (void)pixels; (void)L; (void)shift; (void)scaling;
    (void)latent;
    return missing(err, "the VAE's posterior sample");
}
static fs_code cu_latent_unscale(const fs_backend *be, const float *latent, float *z, size_t n,
                                 float scaling, float shift, fs_error *err) {
    (void)be; (void)latent; (void)z; (void)n; (void)scaling; (void)shift;
    return missing(err, "the latent's unscaling");
}
static fs_code cu_mask_nearest(const fs_backend *be, const uint8_t *mask, int mh, int mw, int h,
                               int w, int row0, int rows, float *out, fs_error *err) {
    (void)be; (void)mask; (void)mh; (void)mw; (void)h; (void)w; (void)row0; (void)rows;
    (void)out;
    return missing(err, "the detail mask's nearest resize");
}
static fs_code cu_tile_blend(const fs_backend *be, const float *a, int ah, int aw, float *b,
                             int bh, int bw, int c, int blend, int vertical, fs_error *err) {
    (void)be; (void)a; (void)ah; (void)aw; (void)b; (void)bh; (void)bw; (void)c; (void)blend;
    (void)vertical;
    return missing(err, "the tiled VAE's seam blend");
}
static fs_code cu_scale(const fs_backend *be, const float *x, float *y, size_t n, float k,
                        fs_error *err) {
    (void)be; (void)x; (void)y; (void)n; (void)k;
    return missing(err, "scaling by a constant");
}
static fs_code cu_noise_fill(const fs_backend *be, float *x, size_t n, uint64_t seed,
                             uint64_t stream, uint64_t index0, fs_error *err) {
    (void)be; (void)x; (void)n; (void)seed; (void)stream; (void)index0;
    return missing(err, "the Philox noise fill");
}

static const fs_backend_ops cuda_ops = {
    .alloc = cu_alloc,
    .free = cu_free,
    .discard = cu_discard,
    .upload = cu_upload,
    .download = cu_download,
    .upload_rows = cu_upload_rows,
    .download_rows = cu_download_rows,
    .copy = cu_copy,
    .zero = cu_zero,
    .conv2d = cu_conv2d,
    .linear = cu_linear,
    .linear_whole = cu_linear_whole,
    .small_linear = cu_small_linear,
    .embed_tokens = cu_embed_tokens,
    .timestep_embedding = cu_timestep_embedding,
    .attention = cu_attention,
    .attention_causal = cu_attention_causal,
    .gn_partials = cu_gn_partials,
    .gn_apply = cu_gn_apply,
    .layernorm = cu_layernorm,
    .silu = cu_silu,
    .gelu = cu_gelu,
    .quick_gelu = cu_quick_gelu,
    .geglu = cu_geglu,
    .add = cu_add,
    .sub = cu_sub,
    .add_bcast = cu_add_bcast,
    .concat = cu_concat,
    .scale_channels = cu_scale_channels,
    .upsample_nearest2x = cu_upsample,
    .resize_bicubic = cu_resize_bicubic,
    .blur = cu_blur,
    .blur_fft = cu_blur_fft,
    .freeu_partials = cu_freeu_partials,
    .freeu_apply = cu_freeu_apply,
    .grid_gather = cu_grid_gather,
    .grid_scatter = cu_grid_scatter,
    .window_add = cu_window_add,
    .divide_counts = cu_divide_counts,
    .cfg = cu_cfg,
    .euler_step = cu_euler_step,
    .ddim_step = cu_ddim_step,
    .add_noise = cu_add_noise,
    .detail_blend = cu_detail_blend,
    .scale = cu_scale,
    .noise_fill = cu_noise_fill,
    .posterior_sample = cu_posterior_sample,
    .latent_unscale = cu_latent_unscale,
    .mask_nearest = cu_mask_nearest,
    .tile_blend = cu_tile_blend,
};

/* kernels/cuda/gemm.cu's LINEAR_TILE: the rows of its fixed GEMM tile. */
enum { CUDA_GEMM_ROWS = 2048 };

fs_backend fs_backend_cuda(fs_cuda *cu) {
    return (fs_backend){
        .name = "cuda", .host_memory = 0, .gemm_rows = CUDA_GEMM_ROWS, .ctx = cu, .op = &cuda_ops};
}
