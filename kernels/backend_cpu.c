/* kernels/backend_cpu.c: the CPU backend (kernels.h, "backends"): the table
 * of the fast CPU ops and the sampler's steps. Memory is the host's (fs_alloc), so uploads and
 * downloads are copies; only the GEMM ops and the blur take scratch, from
 * the caller's arena. The ops that cannot fail here return FS_OK. */
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "kernels/kernels.h"

static fs_code cpu_alloc(const fs_backend *be, void **p, size_t bytes, fs_error *err) {
    (void)be;
    *p = fs_alloc(bytes ? bytes : 1);
    if (!*p)
        return fs_fail(err, FS_ERR_NOMEM, "cannot allocate %.2f GB of host memory",
                       (double)bytes / 1e9);
    return FS_OK;
}

static void cpu_free(const fs_backend *be, void *p) { (void)be; fs_free(p); }

static void cpu_discard(const fs_backend *be, void *p, size_t bytes) {
    (void)be;
    if (!bytes) return;
    /* NaN first: a later read of discarded floats shows in any result, even
     * where the range holds no whole page (small maps in tests) */
    const uint32_t nan_bits = 0x7fc00000u;
    for (size_t i = 0; i < bytes / sizeof(float); i++)
        memcpy((char *)p + i * sizeof(float), &nan_bits, sizeof nan_bits);
    /* only whole pages strictly inside the range: the neighbours are live */
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t a = ((uintptr_t)p + page - 1) / page * page;
    uintptr_t b = ((uintptr_t)p + bytes) / page * page;
    if (b > a) madvise((void *)a, b - a, MADV_DONTNEED);
}

static fs_code cpu_move(const fs_backend *be, void *dst, const void *src, size_t bytes,
                        fs_error *err) {
    (void)be; (void)err;
    if (bytes && dst != src) memmove(dst, src, bytes);
    return FS_OK;
}

static fs_code cpu_move_rows(const fs_backend *be, void *dst, size_t dst_pitch, const void *src,
                             size_t src_pitch, size_t row_bytes, size_t rows, fs_error *err) {
    (void)be; (void)err;
    for (size_t r = 0; r < rows; r++)
        memcpy((char *)dst + r * dst_pitch, (const char *)src + r * src_pitch, row_bytes);
    return FS_OK;
}

static fs_code cpu_zero(const fs_backend *be, void *dst, size_t bytes, fs_error *err) {
    (void)be; (void)err;
    if (bytes) memset(dst, 0, bytes);
    return FS_OK;
}

static fs_code cpu_conv2d(const fs_backend *be, const fs_conv2d_desc *d, const float *x,
                          const float *w, const float *bias, float *y, fs_arena *scratch,
                          fs_error *err) {
    (void)be;
    return fs_conv2d(d, x, w, bias, y, scratch, err);
}

static fs_code cpu_linear(const fs_backend *be, const float *x, float *y, size_t m, int k,
                          int nout, const float *w, const float *bias, int64_t m0,
                          fs_arena *scratch, fs_error *err) {
    (void)be;
    return fs_linear(x, y, m, k, nout, w, bias, m0, scratch, err);
}

static fs_code cpu_linear_whole(const fs_backend *be, const float *x, float *y, size_t m, int k,
                                int nout, const float *w, const float *bias, fs_arena *scratch,
                                fs_error *err) {
    (void)be;
    return fs_linear_whole(x, y, m, k, nout, w, bias, scratch, err);
}

static fs_code cpu_small_linear(const fs_backend *be, const float *x, float *y, int m, int k,
                                int nout, const float *w, const float *bias, fs_error *err) {
    (void)be; (void)err;
    fs_small_linear(x, y, m, k, nout, w, bias);
    return FS_OK;
}

static fs_code cpu_embed_tokens(const fs_backend *be, const int32_t *ids, size_t m,
                                int positions, int c, const float *tokens, const float *pos,
                                float *x, fs_error *err) {
    (void)be; (void)err;
    fs_embed_tokens(ids, m, positions, c, tokens, pos, x);
    return FS_OK;
}

static fs_code cpu_attention(const fs_backend *be, const float *q, int ldq, const float *k,
                             int ldk, const float *v, int ldv, float *o, int ldo, int nq, int nk,
                             int heads, int dh, float scale, int64_t q0, fs_arena *scratch,
                             fs_error *err) {
    (void)be;
    return fs_attention(q, ldq, k, ldk, v, ldv, o, ldo, nq, nk, heads, dh, scale, q0, scratch,
                        err);
}

static fs_code cpu_attention_causal(const fs_backend *be, const float *q, int ldq,
                                    const float *k, int ldk, const float *v, int ldv, float *o,
                                    int ldo, int nq, int nk, int heads, int dh, float scale,
                                    int64_t q0, fs_arena *scratch, fs_error *err) {
    (void)be;
    return fs_attention_causal(q, ldq, k, ldk, v, ldv, o, ldo, nq, nk, heads, dh, scale, q0,
                               scratch, err);
}

static fs_code cpu_gn_partials(const fs_backend *be, const float *x, int n, int rows, int w,
                               int c, int groups, double *part, fs_error *err) {
    (void)be; (void)err;
    fs_groupnorm_partials(x, n, rows, w, c, groups, part);
    return FS_OK;
}

static fs_code cpu_gn_apply(const fs_backend *be, const float *x, float *y, int n, int rows,
                            int w, int c, int groups, const float *mean, const float *rstd,
                            const float *gamma, const float *beta, int silu, fs_error *err) {
    (void)be; (void)err;
    fs_groupnorm_apply(x, y, n, rows, w, c, groups, mean, rstd, gamma, beta, silu);
    return FS_OK;
}

static fs_code cpu_layernorm(const fs_backend *be, const float *x, float *y, size_t tokens,
                             int c, float eps, const float *gamma, const float *beta,
                             fs_error *err) {
    (void)be; (void)err;
    fs_layernorm(x, y, tokens, c, eps, gamma, beta);
    return FS_OK;
}

#define CPU_UNARY(name, fn) \
    static fs_code name(const fs_backend *be, const float *x, float *y, size_t n, \
                        fs_error *err) { \
        (void)be; (void)err; \
        fn(x, y, n); \
        return FS_OK; \
    }
CPU_UNARY(cpu_silu, fs_silu)
CPU_UNARY(cpu_gelu, fs_gelu)
CPU_UNARY(cpu_quick_gelu, fs_quick_gelu)

static fs_code cpu_geglu(const fs_backend *be, const float *x, float *y, size_t m, int d,
                         fs_error *err) {
    (void)be; (void)err;
    fs_geglu(x, y, m, d);
    return FS_OK;
}

static fs_code cpu_add(const fs_backend *be, float *y, const float *x, size_t count,
                       fs_error *err) {
    (void)be; (void)err;
    fs_add(y, x, count);
    return FS_OK;
}

static fs_code cpu_sub(const fs_backend *be, float *y, const float *x, size_t count,
                       fs_error *err) {
    (void)be; (void)err;
    fs_sub(y, x, count);
    return FS_OK;
}

static fs_code cpu_add_bcast(const fs_backend *be, float *y, const float *v, int n,
                             size_t pixels, int c, fs_error *err) {
    (void)be; (void)err;
    fs_add_bcast(y, v, n, pixels, c);
    return FS_OK;
}

static fs_code cpu_concat(const fs_backend *be, const float *a, int ca, const float *s, int cs,
                          float *y, size_t pixels, fs_error *err) {
    (void)be; (void)err;
    fs_concat(a, ca, s, cs, y, pixels);
    return FS_OK;
}

static fs_code cpu_scale_channels(const fs_backend *be, float *x, size_t pixels, int c,
                                  int first, float b, fs_error *err) {
    (void)be;
    if (first > c)
        return fs_fail(err, FS_ERR_INVALID, "scale channels: %d of %d channels", first, c);
    fs_scale_channels(x, pixels, c, first, b);
    return FS_OK;
}

static fs_code cpu_upsample(const fs_backend *be, const float *x, float *y, int n, int rows,
                            int w, int c, fs_error *err) {
    (void)be; (void)err;
    fs_upsample_nearest2x(x, y, n, rows, w, c);
    return FS_OK;
}

static fs_code cpu_resize_bicubic(const fs_backend *be, const fs_resize_desc *d, const float *x,
                                  float *y, fs_error *err) {
    (void)be; (void)err;
    fs_resize_bicubic(d, x, y);
    return FS_OK;
}

static fs_code cpu_blur(const fs_backend *be, const fs_blur_desc *d, const float *g,
                        const float *x, float *y, fs_arena *scratch, fs_error *err) {
    (void)be;
    return fs_blur(d, g, x, y, scratch, err);
}

static fs_code cpu_blur_fft(const fs_backend *be, const float *x, float *y, int n, int h, int w,
                            int c, float sigma, fs_error *err) {
    (void)be;
    return fs_blur_fft(x, y, n, h, w, c, sigma, err);
}

static fs_code cpu_freeu_partials(const fs_backend *be, const float *x, int n, int row0,
                                  int rows, int h, int w, int c, double *part, fs_error *err) {
    (void)be; (void)err;
    fs_freeu_partials(x, n, row0, rows, h, w, c, part);
    return FS_OK;
}

static fs_code cpu_freeu_apply(const fs_backend *be, float *x, int n, int row0, int rows, int h,
                               int w, int c, const double *coeffs, float s, fs_error *err) {
    (void)be; (void)err;
    fs_freeu_apply_items(x, n, row0, rows, h, w, c, coeffs, s);
    return FS_OK;
}

static fs_code cpu_grid_gather(const fs_backend *be, float *dst, const float *src, int src_row0,
                               int fh, int fw, int c, const fs_grid *g, const float *pad,
                               fs_error *err) {
    (void)be; (void)err;
    fs_grid_gather(dst, src, src_row0, fh, fw, c, g, pad);
    return FS_OK;
}

static fs_code cpu_grid_scatter(const fs_backend *be, float *dst, int dst_row0, int fw, int c,
                                const fs_grid *g, const float *src, fs_error *err) {
    (void)be; (void)err;
    fs_grid_scatter(dst, dst_row0, fw, c, g, src);
    return FS_OK;
}

static fs_code cpu_window_add(const fs_backend *be, float *out, float *cnt, int row0, int rows,
                              int fw, int c, const fs_grid *g, const float *o, fs_error *err) {
    (void)be; (void)err;
    fs_window_add(out, cnt, row0, rows, fw, c, g, o);
    return FS_OK;
}

static fs_code cpu_divide_counts(const fs_backend *be, float *out, const float *cnt,
                                 size_t tokens, int c, fs_error *err) {
    (void)be; (void)err;
    fs_divide_counts(out, cnt, tokens, c);
    return FS_OK;
}

static fs_code cpu_cfg(const fs_backend *be, const float *eps_uncond, const float *eps_cond,
                       float guidance, size_t n, float *eps, fs_error *err) {
    (void)be; (void)err;
    fs_cfg_combine(eps_uncond, eps_cond, guidance, n, eps);
    return FS_OK;
}

static fs_code cpu_euler_step(const fs_backend *be, float *x, const float *eps, size_t n,
                              float sigma, float dt, fs_error *err) {
    (void)be; (void)err;
    fs_euler_update(x, eps, n, sigma, dt);
    return FS_OK;
}

static fs_code cpu_ddim_step(const fs_backend *be, float *x, const float *eps, size_t n,
                             const fs_ddim_coeffs *c, fs_error *err) {
    (void)be; (void)err;
    fs_ddim_update(x, eps, n, c);
    return FS_OK;
}

static fs_code cpu_add_noise(const fs_backend *be, const float *z, const float *eps, size_t n,
                             float a, float b, float *noisy, fs_error *err) {
    (void)be; (void)err;
    fs_noised(z, eps, n, a, b, noisy);
    return FS_OK;
}

static fs_code cpu_detail_blend(const fs_backend *be, float *x, const float *z, const float *eps,
                                const float *mask, size_t pixels, int channels, float a, float b,
                                float c_fg, float c_bg, fs_error *err) {
    (void)be; (void)err;
    fs_detail_mix(x, z, eps, mask, pixels, channels, a, b, c_fg, c_bg);
    return FS_OK;
}

static fs_code cpu_posterior_sample(const fs_backend *be, const float *moments, const float *eps,
                                    size_t pixels, int L, float shift, float scaling,
                                    float *latent, fs_error *err) {
    (void)be; (void)err;
    fs_posterior_sample(moments, eps, pixels, L, shift, scaling, latent);
    return FS_OK;
}

static fs_code cpu_latent_unscale(const fs_backend *be, const float *latent, float *z, size_t n,
                                  float scaling, float shift, fs_error *err) {
    (void)be; (void)err;
    fs_latent_unscale(latent, z, n, scaling, shift);
    return FS_OK;
}

static fs_code cpu_mask_nearest(const fs_backend *be, const uint8_t *mask, int mh, int mw, int h,
                                int w, int row0, int rows, float *out, fs_error *err) {
    (void)be;
    if (mh < 1 || mw < 1 || h < 1 || w < 1 || row0 < 0 || rows < 0 || row0 + rows > h)
        return fs_fail(err, FS_ERR_INVALID, "mask: rows %d..%d of a %dx%d map from a %dx%d mask",
                       row0, row0 + rows, h, w, mh, mw);
    fs_mask_nearest(mask, mh, mw, h, w, row0, rows, out);
    return FS_OK;
}

static fs_code cpu_tile_blend(const fs_backend *be, const float *a, int ah, int aw, float *b,
                              int bh, int bw, int c, int blend, int vertical, fs_error *err) {
    (void)be;
    if ((vertical && aw != bw) || (!vertical && ah != bh) || c < 1)
        return fs_fail(err, FS_ERR_INVALID, "tile blend: %dx%d onto %dx%d (%s) of %d channels",
                       ah, aw, bh, bw, vertical ? "vertical" : "horizontal", c);
    fs_tile_blend(a, ah, aw, b, bh, bw, c, blend, vertical);
    return FS_OK;
}

static fs_code cpu_timestep_embedding(const fs_backend *be, const float *t, int n, int dim,
                                      float *out, fs_error *err) {
    (void)be;
    if (n < 0 || dim < 1)
        return fs_fail(err, FS_ERR_INVALID, "timestep embedding: %d values of width %d", n, dim);
    fs_timestep_embedding(t, n, dim, out);
    return FS_OK;
}

static fs_code cpu_scale(const fs_backend *be, const float *x, float *y, size_t n, float k,
                         fs_error *err) {
    (void)be; (void)err;
    fs_scale(x, y, n, k);
    return FS_OK;
}

static fs_code cpu_noise_fill(const fs_backend *be, float *x, size_t n, uint64_t seed,
                              uint64_t stream, uint64_t index0, fs_error *err) {
    (void)be; (void)err;
    fs_rng_fill_normal(x, n, seed, stream, index0);
    return FS_OK;
}

static const fs_backend_ops cpu_ops = {
    .alloc = cpu_alloc,
    .free = cpu_free,
    .discard = cpu_discard,
    .upload = cpu_move,
    .download = cpu_move,
    .upload_rows = cpu_move_rows,
    .download_rows = cpu_move_rows,
    .copy = cpu_move,
    .zero = cpu_zero,
    .conv2d = cpu_conv2d,
    .linear = cpu_linear,
    .linear_whole = cpu_linear_whole,
    .small_linear = cpu_small_linear,
    .embed_tokens = cpu_embed_tokens,
    .attention = cpu_attention,
    .attention_causal = cpu_attention_causal,
    .gn_partials = cpu_gn_partials,
    .gn_apply = cpu_gn_apply,
    .layernorm = cpu_layernorm,
    .silu = cpu_silu,
    .gelu = cpu_gelu,
    .quick_gelu = cpu_quick_gelu,
    .geglu = cpu_geglu,
    .add = cpu_add,
    .sub = cpu_sub,
    .add_bcast = cpu_add_bcast,
    .concat = cpu_concat,
    .scale_channels = cpu_scale_channels,
    .upsample_nearest2x = cpu_upsample,
    .resize_bicubic = cpu_resize_bicubic,
    .blur = cpu_blur,
    .blur_fft = cpu_blur_fft,
    .freeu_partials = cpu_freeu_partials,
    .freeu_apply = cpu_freeu_apply,
    .grid_gather = cpu_grid_gather,
    .grid_scatter = cpu_grid_scatter,
    .window_add = cpu_window_add,
    .divide_counts = cpu_divide_counts,
    .cfg = cpu_cfg,
    .euler_step = cpu_euler_step,
    .ddim_step = cpu_ddim_step,
    .add_noise = cpu_add_noise,
    .detail_blend = cpu_detail_blend,
    .scale = cpu_scale,
    .noise_fill = cpu_noise_fill,
    .posterior_sample = cpu_posterior_sample,
    .latent_unscale = cpu_latent_unscale,
    .mask_nearest = cpu_mask_nearest,
    .tile_blend = cpu_tile_blend,
    .timestep_embedding = cpu_timestep_embedding,
};

static const fs_backend cpu_backend = {
    .name = "cpu", .host_memory = 1, .gemm_rows = FS_GEMM_TILE, .ctx = NULL, .op = &cpu_ops};

const fs_backend *fs_backend_cpu(void) { return &cpu_backend; }
