/* vae/blocks.c: the VAE's building blocks on one item's row strip: maps
 * (vmap: a heap block of the strip's rows with halo rows), GroupNorm
 * statistics summed while a map is written, the band convolution every conv
 * goes through (GroupNorm + SiLU and nearest 2x applied to just the band's
 * input rows), ResnetBlock2D in two memory schemes, and the mid block's
 * single-head attention over every token.
 *
 * Exactness: a conv output row is computed by the same fixed-shape GEMM
 * tiles (kernels/conv2d.c) whatever band or strip asks for it, GroupNorm
 * partial sums are per global row and summed exactly (fixed point), and
 * attention's products sit on global token tiles: every scheme and every
 * rank split gives the same bits. */
#include <stddef.h>
#include <string.h>
#include "vae/fwd.h"

/* ---------------------------------------------------------------- accounting */

static size_t resident(const vfwd *f) {
    return (f->nn.dry ? f->nn.used : fs_arena_used(f->nn.arena)) + f->nn.heap;
}

void vfwd_account(vfwd *f) {
    int r = f->level;
    if (r < 0 || r >= FS_VAE_MAX_LEVELS) return;
    if (f->nn.peak > f->level_peak[r]) f->level_peak[r] = f->nn.peak;
    f->level_flops[r] += f->nn.flops;
    f->nn.flops = 0;
}

void vfwd_enter(vfwd *f, int r) {
    vfwd_account(f);
    f->level = r;
    f->nn.level = r; /* FS_PROFILE's rows */
    f->nn.peak = resident(f); /* the level's own peak starts from what it inherits */
}

/* ---------------------------------------------------------------- maps */

static size_t row_floats(const vmap *m) { return (size_t)m->lv->w * m->c; }

fs_code vmap_alloc(vfwd *f, vmap *m, const nn_level *lv, int c, int halo, int lazy) {
    memset(m, 0, offsetof(vmap, mean));
    m->lv = lv;
    m->c = c;
    m->top = m->bot = halo;
    m->lazy = lazy;
    m->floats = (size_t)(lv->rows + 2 * halo) * lv->w * c;
    m->p = nn_heap_floats(&f->nn, m->floats, lazy);
    if (!m->p) return nn_oom(&f->nn);
    m->counted = lazy ? 0 : m->floats * sizeof(float);
    return FS_OK;
}

void vmap_free(vfwd *f, vmap *m) {
    if (m->p) nn_heap_free(&f->nn, m->p, m->counted);
    m->p = NULL;
    m->counted = 0;
}

float *vmap_row(const vfwd *f, const vmap *m, int g) {
    return nn_at(&f->nn, m->p, (size_t)(g - (m->lv->row0 - m->top)) * row_floats(m));
}

fs_code vmap_halo(vfwd *f, vmap *m) {
    if (m->halo_filled) return FS_OK;
    fs_code rc = nn_halo(&f->nn, m->lv, m->p, m->c, m->top, m->bot);
    if (rc) return rc;
    if (m->lazy && !m->halo_counted) {
        size_t bytes = (size_t)(m->top + m->bot) * row_floats(m) * sizeof(float);
        nn_note_heap(&f->nn, bytes, 1);
        m->counted += bytes;
        m->halo_counted = 1;
    }
    m->halo_filled = 1;
    return FS_OK;
}

void vmap_commit(vfwd *f, vmap *m, int g0, int g1) {
    /* rows are first written in increasing order; later passes rewrite them */
    if (!m->lazy) return;
    if (m->committed_to < m->lv->row0) m->committed_to = m->lv->row0;
    if (g0 < m->committed_to) g0 = m->committed_to;
    if (g1 <= g0) return;
    size_t bytes = (size_t)(g1 - g0) * row_floats(m) * sizeof(float);
    nn_note_heap(&f->nn, bytes, 1);
    m->counted += bytes;
    m->committed_to = g1;
}

void vmap_release_above(vfwd *f, vmap *m, int g) {
    if (m->lazy && !m->halo_counted) { /* (callers exchange halos first; keep counts whole) */
        size_t bytes = (size_t)(m->top + m->bot) * row_floats(m) * sizeof(float);
        nn_note_heap(&f->nn, bytes, 1);
        m->counted += bytes;
        m->halo_counted = 1;
    }
    int total = m->top + m->lv->rows + m->bot;
    int s = g - (m->lv->row0 - m->top);
    if (s > total) s = total;
    if (s <= m->released_to) return;
    const size_t row = row_floats(m);
    float *p = nn_at(&f->nn, m->p, (size_t)m->released_to * row);
    size_t bytes = nn_heap_release(&f->nn, p, (size_t)(s - m->released_to) * row);
    m->counted = m->counted > bytes ? m->counted - bytes : 0;
    m->released_to = s;
}

/* ---------------------------------------------------------------- statistics */

fs_code vacc_begin(vfwd *f, vacc *a, const nn_level *lv, int c) {
    a->mark = nn_mark(&f->nn);
    a->lv = lv;
    a->c = c;
    a->part = nn_take(&f->nn, (size_t)lv->rows * 2 * f->cfg->groups * sizeof(double));
    return a->part ? FS_OK : nn_oom(&f->nn);
}

void vacc_rows(vfwd *f, vacc *a, const float *p, int g0, int g1) {
    if (f->nn.dry) return;
    double *at = a->part + (size_t)(g0 - a->lv->row0) * 2 * f->cfg->groups;
    nn_gn_partials(&f->nn, p, g1 - g0, a->lv->w, a->c, f->cfg->groups, at);
}

fs_code vacc_end(vfwd *f, vacc *a, vmap *m) {
    fs_code rc = nn_gn_finish(&f->nn, a->lv, a->part, a->c, f->cfg->groups, f->cfg->eps,
                              m->mean, m->rstd);
    nn_reset(&f->nn, a->mark);
    m->has_stats = rc == FS_OK;
    return rc;
}

fs_code vmap_stats(vfwd *f, vmap *m) {
    vacc a;
    fs_code rc = vacc_begin(f, &a, m->lv, m->c);
    if (rc) return rc;
    vacc_rows(f, &a, vmap_row(f, m, m->lv->row0), m->lv->row0, m->lv->row0 + m->lv->rows);
    return vacc_end(f, &a, m);
}

/* ---------------------------------------------------------------- band conv */

int vband_rows(const vfwd *f, const nn_level *lv, size_t bytes_per_row) {
    size_t b = bytes_per_row ? f->band_bytes / bytes_per_row : (size_t)lv->rows;
    if (b < 1) b = 1;
    if (b > (size_t)lv->rows) b = (size_t)lv->rows;
    return (int)b;
}

fs_code vband_conv(vfwd *f, const nn_level *in, const float *xp, int a, int b, int c,
                   const vgn *gn, int up, const nn_conv_w *cw, int stride, int pad_end,
                   const nn_level *out, int o0, int o1, float *y) {
    if (o1 <= o0) return FS_OK;
    if (c != cw->in)
        return fs_fail(f->nn.err, FS_ERR_INVALID, "%s: a conv of %d input channels given %d",
                       f->nn.what, cw->in, c);
    fs_conv2d_desc d = {0};
    d.n = 1;
    d.in_h = up ? 2 * in->h : in->h;
    d.in_w = up ? 2 * in->w : in->w;
    d.cin = cw->in;
    d.cout = cw->out;
    d.k = cw->k;
    d.stride = stride;
    d.dil = 1;
    d.pad_end = pad_end;
    d.y_row0 = o0;
    d.y_rows = o1 - o0;
    if (fs_conv2d_desc_out_size(&d, d.in_h) != out->h || fs_conv2d_desc_out_size(&d, d.in_w) != out->w)
        return fs_fail(f->nn.err, FS_ERR_INVALID, "%s: a conv from %dx%d does not make %dx%d",
                       f->nn.what, d.in_h, d.in_w, out->h, out->w);
    int r0, r1;
    fs_conv2d_input_rows(&d, &r0, &r1);
    if (r0 < 0) r0 = 0;
    if (r1 > d.in_h) r1 = d.in_h;
    int c0 = r0, c1 = r1 > r0 ? r1 : r0;
    if (up) { /* conv rows [r0, r1) are the nearest-2x copies of rows [r0/2, ceil(r1/2)) */
        c0 = r0 / 2;
        c1 = (c1 + 1) / 2;
    }
    if (c0 < a || c1 > b)
        return fs_fail(f->nn.err, FS_ERR_RANGE,
                       "%s: output rows [%d, %d) need input rows [%d, %d), the band holds [%d, %d)",
                       f->nn.what, o0, o1, c0, c1, a, b);
    const size_t row = (size_t)in->w * c, mark = nn_mark(&f->nn);
    const float *src = nn_cat(&f->nn, xp, (size_t)(c0 - a) * row);
    fs_code rc = FS_OK;
    if (gn && c1 > c0) {
        float *t = nn_floats(&f->nn, (size_t)(c1 - c0) * row);
        if (!t) return nn_oom(&f->nn);
        rc = nn_gn_apply_rows(&f->nn, src, t, c1 - c0, in->w, c, f->cfg->groups, gn->mean,
                              gn->rstd, gn->nw, gn->silu);
        src = t;
    }
    if (!rc && up) {
        float *u = nn_floats(&f->nn, 4 * (size_t)(c1 - c0) * row + 1);
        if (!u) return nn_oom(&f->nn);
        rc = nn_upsample2x(&f->nn, src, u, 1, c1 - c0, in->w, c);
        src = u;
        d.x_row0 = 2 * c0;
        d.x_rows = 2 * (c1 - c0);
    } else {
        d.x_row0 = c0;
        d.x_rows = c1 - c0;
    }
    if (!rc) rc = nn_conv(&f->nn, &d, src, cw, y);
    nn_reset(&f->nn, mark);
    return rc;
}

/* ---------------------------------------------------------------- ResnetBlock2D */

/* t += shortcut(x rows [g0, g1)) (a 1x1 conv) or the rows themselves; xr
 * holds those rows. diffusers adds input + hidden: the same bits. */
static fs_code add_residual(vfwd *f, const vae_resnet_w *rw, const nn_level *lv, const float *xr,
                            int g0, int g1, float *t) {
    const size_t count = (size_t)(g1 - g0) * lv->w * rw->cout;
    if (!rw->shortcut.w) return nn_add(&f->nn, t, xr, count);
    const size_t mark = nn_mark(&f->nn);
    float *s = nn_floats(&f->nn, count);
    fs_code rc = s ? FS_OK : nn_oom(&f->nn);
    if (!rc) rc = vband_conv(f, lv, xr, g0, g1, rw->cin, NULL, 0, &rw->shortcut, 1, 0, lv, g0, g1, s);
    if (!rc) rc = nn_add(&f->nn, t, s, count);
    nn_reset(&f->nn, mark);
    return rc;
}

/* Scheme S: h held (one map), then y band by band (in place over x when the
 * width is kept: a y row needs only its own x row once h exists). */
static fs_code resnet_held(vfwd *f, const vae_resnet_w *rw, vmap *x, vmap *y) {
    const nn_level *lv = x->lv;
    const int row0 = lv->row0, row1 = lv->row0 + lv->rows;
    const int xa = row0 - x->top, xb = row1 + x->bot;
    vmap h;
    vacc acc;
    fs_code rc = vmap_alloc(f, &h, lv, rw->cout, 1, 1);
    if (rc) return rc;
    vgn g1 = vgn_of(x, &rw->norm1, 1);
    size_t per_row = (size_t)lv->w * sizeof(float) * (2 * (size_t)rw->cin + 3 * (size_t)rw->cout);
    const int B = vband_rows(f, lv, per_row);
    rc = vacc_begin(f, &acc, lv, rw->cout);
    for (int J = row0; J < row1 && !rc; J += B) {
        int e = J + B < row1 ? J + B : row1;
        rc = vband_conv(f, lv, x->p, xa, xb, rw->cin, &g1, 0, &rw->conv1, 1, 0, lv, J, e,
                        vmap_row(f, &h, J));
        vmap_commit(f, &h, J, e);
        if (!rc) vacc_rows(f, &acc, vmap_row(f, &h, J), J, e);
    }
    if (!rc) rc = vacc_end(f, &acc, &h);
    if (!rc) rc = vmap_halo(f, &h);
    if (!rc) rc = vacc_begin(f, &acc, lv, rw->cout);
    vgn g2 = vgn_of(&h, &rw->norm2, 1);
    const size_t mark = nn_mark(&f->nn);
    float *t = rc ? NULL : nn_floats(&f->nn, (size_t)B * lv->w * rw->cout);
    if (!rc && !t) rc = nn_oom(&f->nn);
    for (int J = row0; J < row1 && !rc; J += B) {
        int e = J + B < row1 ? J + B : row1;
        rc = vband_conv(f, lv, h.p, row0 - 1, row1 + 1, rw->cout, &g2, 0, &rw->conv2, 1, 0, lv, J,
                        e, t);
        if (!rc) rc = add_residual(f, rw, lv, vmap_row(f, x, J), J, e, t);
        if (!rc) rc = nn_copy(&f->nn, vmap_row(f, y, J), t, (size_t)(e - J) * lv->w * rw->cout);
        if (!rc) {
            vmap_commit(f, y, J, e);
            vacc_rows(f, &acc, vmap_row(f, y, J), J, e);
            if (x != y) vmap_release_above(f, x, e); /* x is consumed */
        }
    }
    nn_reset(&f->nn, mark);
    if (!rc) rc = vacc_end(f, &acc, y);
    y->halo_filled = 0;
    vmap_free(f, &h);
    return rc;
}

/* Scheme R: h is never held. Pass 1 makes h band by band for its statistics
 * only; pass 2 makes each band's h again with one row either side (from x
 * rows two either side) and finishes y. In place, a band overwrites x rows
 * the next band reads as its top halo: they are carried over. */
static fs_code resnet_recompute(vfwd *f, const vae_resnet_w *rw, vmap *x, vmap *y) {
    const nn_level *lv = x->lv;
    const int row0 = lv->row0, row1 = lv->row0 + lv->rows, H = lv->h;
    const int xa = row0 - x->top, xb = row1 + x->bot, inplace = x == y;
    const size_t xrow = (size_t)lv->w * rw->cin, hrow = (size_t)lv->w * rw->cout;
    vmap hst; /* h's statistics only */
    memset(&hst, 0, offsetof(vmap, mean));
    hst.lv = lv;
    hst.c = rw->cout;
    vacc acc;
    vgn g1 = vgn_of(x, &rw->norm1, 1);
    size_t per_row = sizeof(float) * (3 * xrow + 4 * hrow);
    const int B = vband_rows(f, lv, per_row);
    fs_code rc = vacc_begin(f, &acc, lv, rw->cout);
    size_t mark = nn_mark(&f->nn);
    float *t = rc ? NULL : nn_floats(&f->nn, (size_t)B * hrow);
    if (!rc && !t) rc = nn_oom(&f->nn);
    for (int J = row0; J < row1 && !rc; J += B) {
        int e = J + B < row1 ? J + B : row1;
        rc = vband_conv(f, lv, x->p, xa, xb, rw->cin, &g1, 0, &rw->conv1, 1, 0, lv, J, e, t);
        if (!rc) vacc_rows(f, &acc, t, J, e);
    }
    nn_reset(&f->nn, mark);
    if (!rc) rc = vacc_end(f, &acc, &hst);
    vgn g2 = vgn_of(&hst, &rw->norm2, 1);

    if (!rc) rc = vacc_begin(f, &acc, lv, rw->cout);
    mark = nn_mark(&f->nn);
    float *xband = rc ? NULL : nn_floats(&f->nn, (size_t)(B + 4) * xrow);
    float *hband = xband ? nn_floats(&f->nn, (size_t)(B + 2) * hrow) : NULL;
    float *carry = hband ? nn_floats(&f->nn, 2 * xrow) : NULL;
    t = carry ? nn_floats(&f->nn, (size_t)B * hrow) : NULL;
    if (!rc && !t) rc = nn_oom(&f->nn);
    int carry0 = 0, carry1 = 0; /* global rows held in carry */
    for (int J = row0; J < row1 && !rc; J += B) {
        int e = J + B < row1 ? J + B : row1;
        /* x rows [a, b): two either side of the band, as far as x holds them */
        int a = J - 2 > xa ? J - 2 : xa, b = e + 2 < xb ? e + 2 : xb;
        for (int g = a; g < b; g++) {
            const float *src = inplace && g >= row0 && g < J
                                   ? nn_cat(&f->nn, carry, (size_t)(g - carry0) * xrow)
                                   : vmap_row(f, x, g);
            if (inplace && g >= row0 && g < J && (g < carry0 || g >= carry1))
                rc = fs_fail(f->nn.err, FS_ERR_INVALID, "%s: resnet band %d needs row %d, gone",
                             f->nn.what, J, g);
            nn_copy(&f->nn, nn_at(&f->nn, xband, (size_t)(g - a) * xrow), src, xrow);
        }
        int h0 = J - 1 > 0 ? J - 1 : 0, h1 = e + 1 < H ? e + 1 : H;
        if (!rc) rc = vband_conv(f, lv, xband, a, b, rw->cin, &g1, 0, &rw->conv1, 1, 0, lv, h0, h1, hband);
        if (!rc) rc = vband_conv(f, lv, hband, h0, h1, rw->cout, &g2, 0, &rw->conv2, 1, 0, lv, J, e, t);
        if (!rc) rc = add_residual(f, rw, lv, nn_cat(&f->nn, xband, (size_t)(J - a) * xrow), J, e, t);
        if (rc) break;
        if (inplace) { /* keep x rows [e - 2, e) for the next band before y covers them */
            carry0 = e - 2 > a ? e - 2 : a;
            carry1 = e;
            rc = nn_copy(&f->nn, carry, nn_cat(&f->nn, xband, (size_t)(carry0 - a) * xrow),
                         (size_t)(carry1 - carry0) * xrow);
        }
        if (!rc) rc = nn_copy(&f->nn, vmap_row(f, y, J), t, (size_t)(e - J) * hrow);
        if (rc) break;
        vmap_commit(f, y, J, e);
        vacc_rows(f, &acc, vmap_row(f, y, J), J, e);
        if (!inplace) vmap_release_above(f, x, e - 2); /* x is consumed */
    }
    nn_reset(&f->nn, mark);
    if (!rc) rc = vacc_end(f, &acc, y);
    y->halo_filled = 0;
    return rc;
}

fs_code vresnet(vfwd *f, const vae_resnet_w *rw, vmap *x, vmap *y, int recompute) {
    if (x->c != rw->cin || y->c != rw->cout || (x == y && rw->cin != rw->cout))
        return fs_fail(f->nn.err, FS_ERR_INVALID, "%s: resnet %d -> %d on maps of %d -> %d",
                       f->nn.what, rw->cin, rw->cout, x->c, y->c);
    const int need = recompute ? 2 : 1;
    if (x->top < need || x->bot < need)
        return fs_fail(f->nn.err, FS_ERR_INVALID, "%s: resnet input has %d halo rows, needs %d",
                       f->nn.what, x->top, need);
    fs_code rc = x->has_stats ? FS_OK : vmap_stats(f, x);
    if (!rc) rc = vmap_halo(f, x);
    if (!rc) rc = recompute ? resnet_recompute(f, rw, x, y) : resnet_held(f, rw, x, y);
    return rc;
}

/* ---------------------------------------------------------------- attention */

/* Query tokens per chunk: bounds q and o; chunks start at global multiples
 * of it so the products' tiles sit at the same place for any split. */
#define ATT_CHUNK 4096

fs_code vattention(vfwd *f, const vae_attn_w *aw, vmap *x) {
    const nn_level *lv = x->lv;
    const int c = aw->c;
    const size_t T = (size_t)lv->rows * lv->w, N = (size_t)lv->h * lv->w;
    const int64_t m0 = (int64_t)lv->row0 * lv->w;
    if (N > (size_t)INT32_MAX) return fs_fail(f->nn.err, FS_ERR_RANGE, "%s: %zu tokens", f->nn.what, N);
    fs_code rc = x->has_stats ? FS_OK : vmap_stats(f, x);
    if (rc) return rc;
    float *xo = vmap_row(f, x, lv->row0);
    /* every rank makes K and V of every token from the gathered normed
     * tokens (half the bytes of gathering K and V) */
    const int gathered = lv->plan->parts > 1; /* (dry-pass pointers cannot be compared) */
    float *ln = nn_heap_floats(&f->nn, T * c, 0), *all = ln, *k = NULL, *v = NULL;
    if (!ln) return nn_oom(&f->nn);
    rc = nn_gn_apply_rows(&f->nn, xo, ln, lv->rows, lv->w, c, f->cfg->groups, x->mean, x->rstd,
                          &aw->norm, 0);
    if (!rc && gathered) {
        all = nn_heap_floats(&f->nn, N * c, 0);
        rc = all ? nn_allgather(&f->nn, lv, ln, all, c) : nn_oom(&f->nn);
    }
    if (!rc) {
        k = nn_heap_floats(&f->nn, N * c, 0);
        v = k ? nn_heap_floats(&f->nn, N * c, 0) : NULL;
        if (!v) rc = nn_oom(&f->nn);
    }
    if (!rc) rc = nn_linear(&f->nn, all, 0, k, 0, 1, N, &aw->k, 0);
    if (!rc) rc = nn_linear(&f->nn, all, 0, v, 0, 1, N, &aw->v, 0);
    if (gathered) nn_heap_free(&f->nn, all, all ? N * c * sizeof(float) : 0);
    const size_t mark = nn_mark(&f->nn), cap = T < ATT_CHUNK ? T : ATT_CHUNK;
    float *q = rc ? NULL : nn_floats(&f->nn, cap * c);
    float *o = q ? nn_floats(&f->nn, cap * c) : NULL;
    if (!rc && !o) rc = nn_oom(&f->nn);
    for (size_t s = 0, e; s < T && !rc; s = e) {
        int64_t g0 = m0 + (int64_t)s;
        e = (size_t)((g0 / ATT_CHUNK + 1) * ATT_CHUNK - m0);
        if (e > T) e = T;
        size_t mm = e - s;
        rc = nn_linear(&f->nn, nn_cat(&f->nn, ln, s * c), 0, q, 0, 1, mm, &aw->q, g0);
        if (!rc) rc = nn_attention(&f->nn, q, k, v, o, (int)mm, (int)N, 1, c, g0);
        if (!rc) rc = nn_linear(&f->nn, o, 0, q, 0, 1, mm, &aw->out, g0);
        if (!rc) rc = nn_add(&f->nn, nn_at(&f->nn, xo, s * c), q, mm * c); /* + residual */
    }
    nn_reset(&f->nn, mark);
    nn_heap_free(&f->nn, v, v ? N * c * sizeof(float) : 0);
    nn_heap_free(&f->nn, k, k ? N * c * sizeof(float) : 0);
    nn_heap_free(&f->nn, ln, T * c * sizeof(float));
    x->has_stats = 0;
    x->halo_filled = 0;
    return rc;
}
