/* unet/fusion.c: FreeScale's scale fusion (unet.h, spec/freescale.md
 * section 5) in place of every self-attention (attn1), on this rank's strip:
 *   G  = to_out(global attention of the own queries)       (as the plain block)
 *   Lo = to_out(average of the window attentions covering each own token)
 *   hs += G + blur(Lo - G)       (= blur(Lo) + G - blur(G): the blur is linear)
 * The geometry and the window rule are in unet/fusion.h.
 *
 * What crosses ranks: nothing beyond the plain block's gather of the normed
 * tokens (every rank makes K and V of every token, so any window's keys are
 * at hand), then the blur's halo rows (k / 2 = s - 1 rows when the blur runs
 * along rows), or for the FFT blur an all-gather of Lo - G.
 *
 * Exactness for any split: queries come from the same m0-aligned GEMM tiles
 * as the plain forward; a window's attention runs on its own gathered keys
 * and values with query tiles aligned on window coordinates (q0 = first
 * window row computed x window width), so a query's bits depend only on its
 * place in its window, never on the rows computed with it; the window
 * outputs are added per token in window ordinal order whatever rows a rank
 * owns; sub-lattices (fast_mode) align their tiles the same way; the
 * averaging divides by an exact integer count; the blur's output row depends
 * only on its global index and the input rows.
 *
 * Averaging happens before to_out (to_out is affine and the weights of an
 * average sum to 1, so this equals averaging the post-to_out outputs, up to
 * rounding) to run one to_out GEMM per token instead of one per covering
 * window. */
#include <math.h>
#include <string.h>
#include "unet/forward.h"
#include "unet/fusion.h"

static int cdiv(int a, int b) { return (a + b - 1) / b; }
static int imax(int a, int b) { return a > b ? a : b; }
static int imin(int a, int b) { return a < b ? a : b; }

/* Largest blur kernel fs_blur takes (kernels/blur.c): s <= 32. */
#define FUS_MAX_SCALE 32

/* ---------------------------------------------------------------- geometry */

fs_code fus_geometry(int lat_h, int lat_w, int base_h, int base_w, int fh, int fw, fus_geom *g,
                     fs_error *err) {
    memset(g, 0, sizeof *g);
    if (base_h < 1 || base_w < 1)
        return fs_fail(err, FS_ERR_INVALID,
                       "scale fusion: the base latent %dx%d must be at least 1x1 (base_h, "
                       "base_w: the stage-0 latent)", base_h, base_w);
    g->s_h = lat_h / base_h;
    g->s_w = lat_w / base_w;
    if (g->s_h < 1 || g->s_w < 1)
        return fs_fail(err, FS_ERR_INVALID,
                       "scale fusion: the stage latent %dx%d is smaller than the base %dx%d "
                       "along an axis (scale %d x %d); fusion needs a stage at least the base",
                       lat_h, lat_w, base_h, base_w, g->s_h, g->s_w);
    g->s = imax(g->s_h, g->s_w);
    if (g->s > FUS_MAX_SCALE)
        return fs_fail(err, FS_ERR_UNSUPPORTED,
                       "scale fusion: scale %d (stage %dx%d over base %dx%d) needs a blur kernel "
                       "of %d, above the %d the blur takes", g->s, lat_h, lat_w, base_h, base_w,
                       2 * g->s - 1, 2 * FUS_MAX_SCALE - 1);
    g->fh = fh;
    g->fw = fw;
    if (fh < 1 || fw < 1)
        return fs_fail(err, FS_ERR_INVALID, "scale fusion: empty %dx%d feature map", fh, fw);
    g->ph = imax(1, fh / g->s); /* a map smaller than the scale: one-token windows */
    g->pw = imax(1, fw / g->s);
    g->sh = imax(1, g->ph / 2);
    g->sw = imax(1, g->pw / 2);
    g->rh = g->ph / 8;
    g->rw = g->pw / 8;
    g->nh = fh > g->ph ? cdiv(fh - g->ph, g->sh) + 1 : 1;
    g->nw = fw > g->pw ? cdiv(fw - g->pw, g->sw) + 1 : 1;
    if ((int64_t)g->nh * g->nw > 65536)
        return fs_fail(err, FS_ERR_UNSUPPORTED,
                       "scale fusion: %d x %d windows at a %dx%d map exceed the 65536 the jitter "
                       "key numbers", g->nh, g->nw, fh, fw);
    g->k = 2 * g->s - 1;
    return FS_OK;
}

void fus_axis_window(int L, int P, int S, int r, int i, int *start, int *end, int *lo,
                     int *hi) {
    int a = i * S, e = a + P;
    if (e > L) { /* shifted back to end at the border */
        a += L - e;
        e = L;
    }
    if (a < 0) {
        e -= a;
        a = 0;
    }
    *start = a;
    *end = e;
    if (a != 0 && e != L) { *lo = -r; *hi = r; }
    else if (a == 0 && e != L) { *lo = -r; *hi = 0; }
    else if (a != 0 && e == L) { *lo = 0; *hi = r; }
    else { *lo = 0; *hi = 0; }
}

uint64_t fus_jitter_index(int step, int block, int window, int axis) {
    return (((uint64_t)step * 256 + (uint64_t)block) * 65536 + (uint64_t)window) * 2 +
           (uint64_t)axis;
}

void fus_views(const fus_geom *g, uint64_t seed, uint64_t stream, int step, int block,
               fus_view *views) {
    for (int wy = 0; wy < g->nh; wy++)
        for (int wx = 0; wx < g->nw; wx++) {
            const int win = wy * g->nw + wx;
            int a, e, lo, hi, jy = 0, jx = 0;
            fus_axis_window(g->fh, g->ph, g->sh, g->rh, wy, &a, &e, &lo, &hi);
            if (hi > lo)
                jy = (int)fs_rng_randint(seed, stream, fus_jitter_index(step, block, win, 0), lo,
                                         hi);
            views[win].y0 = a + jy + g->rh;
            fus_axis_window(g->fw, g->pw, g->sw, g->rw, wx, &a, &e, &lo, &hi);
            if (hi > lo)
                jx = (int)fs_rng_randint(seed, stream, fus_jitter_index(step, block, win, 1), lo,
                                         hi);
            views[win].x0 = a + jx + g->rw;
        }
}

/* ---------------------------------------------------------------- local path */

fs_code fus_local(nn_ctx *nn, const fus_geom *g, const fus_view *views, const float *q,
                  const float *k, const float *v, const float *pad_q, const float *pad_k,
                  const float *pad_v, int row0, int rows, int c, int heads, float *out) {
    const int P = g->ph * g->pw, fw = g->fw, dh = c / heads;
    const size_t T = (size_t)rows * fw, mark = nn_mark(nn);
    float *kw = nn_floats(nn, (size_t)P * c);
    float *vw = kw ? nn_floats(nn, (size_t)P * c) : NULL;
    float *qw = vw ? nn_floats(nn, (size_t)P * c) : NULL;
    float *ow = qw ? nn_floats(nn, (size_t)P * c) : NULL;
    float *cnt = ow ? nn_floats(nn, T) : NULL;
    if (!cnt) return nn_oom(nn);
    fs_code rc = FS_OK;
    if (nn->dry) { /* the scratch of one window's attention (all have P keys) */
        rc = nn_attention(nn, qw, kw, vw, ow, P, P, heads, dh, 0);
        nn_reset(nn, mark);
        return rc;
    }
    rc = nn_zero(nn, out, T * c);
    if (!rc) rc = nn_zero(nn, cnt, T);
    for (int win = 0; win < g->nh * g->nw && !rc; win++) {
        /* the window's top-left in map coordinates (negative: padding) */
        const int ty0 = views[win].y0 - g->rh, tx0 = views[win].x0 - g->rw;
        const int a = imax(ty0, row0), b = imin(ty0 + g->ph, row0 + rows);
        if (a >= b) continue; /* no own row in this window */
        const int i0 = a - ty0, i1 = b - ty0, nq = (i1 - i0) * g->pw;
        const fs_grid whole = {ty0, tx0, g->ph, g->pw, 1, 1};
        const fs_grid own = {a, tx0, i1 - i0, g->pw, 1, 1};
        rc = nn_grid_gather(nn, kw, k, 0, g->fh, fw, c, &whole, pad_k);
        if (!rc) rc = nn_grid_gather(nn, vw, v, 0, g->fh, fw, c, &whole, pad_v);
        if (!rc) rc = nn_grid_gather(nn, qw, q, row0, g->fh, fw, c, &own, pad_q);
        /* tiles aligned on the window's token index: q0 = i0 * pw */
        if (!rc) rc = nn_attention(nn, qw, kw, vw, ow, nq, P, heads, dh, (int64_t)i0 * g->pw);
        /* value and count of the real tokens, this window after the ones before */
        if (!rc) rc = nn_window_add(nn, out, cnt, row0, rows, fw, c, &own, ow);
    }
    /* value / count where count > 0 (every token is covered: jitter <= stride / 2) */
    if (!rc) rc = nn_divide_counts(nn, out, cnt, T, c);
    nn_reset(nn, mark);
    return rc;
}

/* ---------------------------------------------------------------- global path */

fs_code fus_global(nn_ctx *nn, const fus_geom *g, int fast_mode, const float *q, const float *k,
                   const float *v, int row0, int rows, int c, int heads, float *out) {
    const int fh = g->fh, fw = g->fw, dh = c / heads;
    if (!fast_mode) /* as the plain block: the own queries over every token */
        return nn_attention(nn, q, k, v, out, rows * fw, fh * fw, heads, dh,
                            (int64_t)row0 * fw);
    const int sh = g->s_h, sw = g->s_w, ns = cdiv(fh, sh) * cdiv(fw, sw);
    const size_t mark = nn_mark(nn);
    float *ks = nn_floats(nn, (size_t)ns * c);
    float *vs = ks ? nn_floats(nn, (size_t)ns * c) : NULL;
    float *qs = vs ? nn_floats(nn, (size_t)ns * c) : NULL;
    float *os = qs ? nn_floats(nn, (size_t)ns * c) : NULL;
    if (!os) return nn_oom(nn);
    fs_code rc = FS_OK;
    if (nn->dry) { /* the largest sub-lattice's attention scratch */
        rc = nn_attention(nn, qs, ks, vs, os, ns, ns, heads, dh, 0);
        nn_reset(nn, mark);
        return rc;
    }
    /* sub-lattice (a, b): rows a, a + s_h, ..., columns b, b + s_w, ... */
    for (int a = 0; a < sh && a < fh && !rc; a++)
        for (int b = 0; b < sw && b < fw && !rc; b++) {
            const int hs = cdiv(fh - a, sh), ws = cdiv(fw - b, sw);
            /* own rows of the sub-lattice: i with row0 <= a + i s_h < row0 + rows */
            const int i0 = row0 <= a ? 0 : cdiv(row0 - a, sh);
            const int i1 = row0 + rows <= a ? 0 : cdiv(row0 + rows - a, sh);
            if (i0 >= i1) continue;
            const fs_grid whole = {a, b, hs, ws, sh, sw};
            const fs_grid own = {a + i0 * sh, b, i1 - i0, ws, sh, sw};
            rc = nn_grid_gather(nn, ks, k, 0, fh, fw, c, &whole, NULL);
            if (!rc) rc = nn_grid_gather(nn, vs, v, 0, fh, fw, c, &whole, NULL);
            if (!rc) rc = nn_grid_gather(nn, qs, q, row0, fh, fw, c, &own, NULL);
            if (!rc)
                rc = nn_attention(nn, qs, ks, vs, os, (i1 - i0) * ws, hs * ws, heads, dh,
                                  (int64_t)i0 * ws);
            /* each token is in exactly one sub-lattice */
            if (!rc) rc = nn_grid_scatter(nn, out, row0, fw, c, &own, os);
        }
    nn_reset(nn, mark);
    return rc;
}

/* ---------------------------------------------------------------- blur and blend */

int fus_blur_halo(fs_blur_kind kind, const fus_geom *g) {
    return kind == FS_BLUR_3D || kind == FS_BLUR_HW ? g->k / 2 : 0;
}

fs_code fus_blend(nn_ctx *nn, const nn_level *lv, const fus_geom *g, fs_blur_kind kind,
                  float sigma, int c, const float *G, float *lo, float *out) {
    const int n = nn->n, hr = fus_blur_halo(kind, g);
    const size_t row = (size_t)lv->w * c, T = (size_t)lv->rows * lv->w;
    const size_t item_lo = (size_t)(lv->rows + 2 * hr) * row, mark = nn_mark(nn);
    fs_code rc = FS_OK;
    for (int b = 0; b < n && !rc; b++) /* D = Lo - G in the own rows */
        rc = nn_sub(nn, nn_at(nn, lo, b * item_lo + (size_t)hr * row), nn_cat(nn, G, b * T * c),
                    T * c);
    if (kind == FS_BLUR_FFT) {
        /* the whole map on every rank, blurred there; own rows kept */
        float *full = nn_floats(nn, (size_t)n * lv->h * row);
        if (!full) return nn_oom(nn);
        rc = nn_allgather(nn, lv, lo, full, c);
        if (!rc) rc = nn_blur_fft(nn, full, lv->h, lv->w, c, sigma);
        for (int b = 0; b < n && !rc; b++)
            rc = nn_copy(nn, nn_at(nn, out, b * T * c),
                         nn_cat(nn, full, ((size_t)b * lv->h + lv->row0) * row), T * c);
    } else {
        float gk[2 * FUS_MAX_SCALE - 1]; /* the taps: the op's parameters, on the host */
        fs_gaussian_kernel1d(g->k, sigma, gk);
        fs_blur_desc d = {0};
        d.n = n;
        d.h = lv->h;
        d.w = lv->w;
        d.c = c;
        d.k = g->k;
        d.axes = kind == FS_BLUR_3D   ? FS_BLUR_H | FS_BLUR_W | FS_BLUR_C
                 : kind == FS_BLUR_WC ? FS_BLUR_W | FS_BLUR_C
                                      : FS_BLUR_H | FS_BLUR_W;
        d.x_row0 = lv->row0 - hr;
        d.x_rows = lv->rows + 2 * hr;
        d.y_row0 = lv->row0;
        d.y_rows = lv->rows;
        if (hr) rc = nn_halo(nn, lv, lo, c, hr, hr);
        if (!rc) rc = nn_blur(nn, &d, gk, lo, out);
    }
    if (!rc) rc = nn_add(nn, out, G, (size_t)n * T * c); /* G + blur(Lo - G) */
    nn_reset(nn, mark);
    return rc;
}

/* ---------------------------------------------------------------- the block's attn1 */

/* pad = lw applied to a zero token: its bias, or zeros. */
static fs_code zero_token_proj(nn_ctx *nn, const nn_linear_w *lw, float *pad) {
    return lw->b ? nn_copy(nn, pad, lw->b, (size_t)lw->out) : nn_zero(nn, pad, (size_t)lw->out);
}

fs_code fwd_fused_self_attention(fwd *f, const fwd_level *lv, const fs_tblock_w *bw, int heads,
                                 const float *ln, const float *all, float *hs) {
    const fs_unet_freescale *fsx = f->fsx;
    const int c = bw->attn1_q.out, n = f->nn.n;
    const size_t T = (size_t)lv->rows * lv->w, N = (size_t)lv->h * lv->w;
    const int64_t m0 = (int64_t)lv->row0 * lv->w;
    fus_geom g;
    fs_code rc = fus_geometry(f->lat_h, f->lat_w, fsx->base_h, fsx->base_w, lv->h, lv->w, &g,
                              f->nn.err);
    if (rc) return rc;
    fus_view *views = fs_alloc((size_t)g.nh * g.nw * sizeof *views);
    if (!views) return fs_fail(f->nn.err, FS_ERR_NOMEM, "scale fusion: out of memory");
    fus_views(&g, fsx->jitter_seed, fsx->jitter_stream, fsx->step, f->attn_ordinal, views);

    const int hr = fus_blur_halo(fsx->blur, &g);
    const size_t mark = nn_mark(&f->nn), item_lo = (size_t)(lv->rows + 2 * hr) * lv->w * c;
    float *G = nn_floats(&f->nn, (size_t)n * T * c);
    float *lo = G ? nn_floats(&f->nn, (size_t)n * item_lo) : NULL;
    float *pads = lo ? nn_floats(&f->nn, (size_t)3 * c) : NULL;
    if (!pads) rc = nn_oom(&f->nn);
    if (!rc) rc = zero_token_proj(&f->nn, &bw->attn1_q, pads);
    if (!rc) rc = zero_token_proj(&f->nn, &bw->attn1_k, nn_at(&f->nn, pads, c));
    if (!rc) rc = zero_token_proj(&f->nn, &bw->attn1_v, nn_at(&f->nn, pads, 2 * (size_t)c));
    for (int b = 0; b < n && !rc; b++) {
        const size_t m1 = nn_mark(&f->nn);
        float *k = nn_floats(&f->nn, N * c);
        float *v = k ? nn_floats(&f->nn, N * c) : NULL;
        float *q = v ? nn_floats(&f->nn, T * c) : NULL;
        float *o = q ? nn_floats(&f->nn, T * c) : NULL;
        if (!o) rc = nn_oom(&f->nn);
        /* K, V of every token (the same tiles on every rank), Q of the own ones */
        const float *src = nn_cat(&f->nn, all, b * N * c);
        if (!rc) rc = nn_linear(&f->nn, src, 0, k, 0, 1, N, &bw->attn1_k, 0);
        if (!rc) rc = nn_linear(&f->nn, src, 0, v, 0, 1, N, &bw->attn1_v, 0);
        if (!rc)
            rc = nn_linear(&f->nn, nn_cat(&f->nn, ln, b * T * c), 0, q, 0, 1, T, &bw->attn1_q,
                           m0);
        if (!rc)
            rc = fus_global(&f->nn, &g, fsx->fast_mode, q, k, v, lv->row0, lv->rows, c, heads,
                            o);
        if (!rc)
            rc = nn_linear(&f->nn, o, 0, nn_at(&f->nn, G, b * T * c), 0, 1, T, &bw->attn1_out,
                           m0);
        if (!rc)
            rc = fus_local(&f->nn, &g, views, q, k, v, pads, nn_cat(&f->nn, pads, c),
                           nn_cat(&f->nn, pads, 2 * (size_t)c), lv->row0, lv->rows, c, heads, o);
        if (!rc)
            rc = nn_linear(&f->nn, o, 0, nn_at(&f->nn, lo, b * item_lo + (size_t)hr * lv->w * c),
                           0, 1, T, &bw->attn1_out, m0);
        nn_reset(&f->nn, m1);
    }
    float *out = rc ? NULL : nn_floats(&f->nn, (size_t)n * T * c);
    if (!rc && !out) rc = nn_oom(&f->nn);
    if (!rc) rc = fus_blend(&f->nn, lv, &g, fsx->blur, fsx->blur_sigma, c, G, lo, out);
    if (!rc) rc = nn_add(&f->nn, hs, out, (size_t)n * T * c);
    nn_reset(&f->nn, mark);
    fs_free(views);
    return rc;
}

/* ---------------------------------------------------------------- checks */

int fwd_fs_active(const fs_unet_freescale *fsx) {
    return fsx && (fsx->dilation > 1 || fsx->fusion || fsx->freeu.on);
}

fs_code fwd_fs_check(const fs_unet_freescale *fsx, const fs_unet_config *cfg, int h, int w,
                     fs_error *err) {
    if (!fsx) return FS_OK;
    if (fsx->dilation < 0 || fsx->dilation > 8)
        return fs_fail(err, FS_ERR_INVALID,
                       "UNet forward: dilation %d is outside 1..8 (1 = off)", fsx->dilation);
    if (fsx->freeu.on && !(isfinite(fsx->freeu.b1) && isfinite(fsx->freeu.b2) &&
                           isfinite(fsx->freeu.s1) && isfinite(fsx->freeu.s2)))
        return fs_fail(err, FS_ERR_INVALID, "UNet forward: FreeU factors must be finite");
    if (!fsx->fusion) return FS_OK;
    if (fsx->blur < FS_BLUR_3D || fsx->blur > FS_BLUR_FFT)
        return fs_fail(err, FS_ERR_INVALID, "UNet forward: unknown fusion blur kind %d",
                       (int)fsx->blur);
    if (!(fsx->blur_sigma > 0.0f) || !isfinite(fsx->blur_sigma))
        return fs_fail(err, FS_ERR_INVALID, "UNet forward: blur sigma %g must be > 0",
                       (double)fsx->blur_sigma);
    if (fsx->step < 0)
        return fs_fail(err, FS_ERR_INVALID, "UNet forward: step %d < 0", fsx->step);
    int blocks = cfg->depth_mid;
    for (int l = 0; l < cfg->levels; l++)
        blocks += cfg->depth[l] * (2 * cfg->layers_per_block + 1);
    if (blocks > 256)
        return fs_fail(err, FS_ERR_UNSUPPORTED,
                       "UNet forward: %d self-attentions exceed the 256 the jitter key numbers",
                       blocks);
    for (int l = 0; l < cfg->levels; l++) { /* every attention level's geometry */
        if (cfg->depth[l] <= 0 && !(l == cfg->levels - 1 && cfg->depth_mid > 0)) continue;
        fus_geom g;
        fs_code rc = fus_geometry(h, w, fsx->base_h, fsx->base_w, h >> l, w >> l, &g, err);
        if (rc) {
            fs_error_prefix(err, "UNet forward, level %d: ", l);
            return rc;
        }
    }
    return FS_OK;
}
