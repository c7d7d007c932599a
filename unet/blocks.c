/* unet/blocks.c: the UNet's blocks on a row strip: ResnetBlock2D,
 * Transformer2DModel (with its BasicTransformerBlocks: global self-attention,
 * cross-attention, GEGLU feed-forward), the stride-2 downsampler, the nearest
 * 2x upsampler, and the plain 3x3 convs (conv_in, conv_norm_out + conv_out).
 * Module semantics are diffusers' (spec/sdxl.md sections 2.1-2.3).
 *
 * What crosses ranks here (spec/distributed.md 2.2): 3x3 convs take their
 * halo rows (1 each side; the downsampler 1 on top only; the upsampler 1
 * low-resolution row each side, exchanged before upsampling); GroupNorms
 * gather per-row partial sums so statistics are global; self-attention
 * all-gathers the LayerNorm-ed tokens and recomputes K and V for every token
 * on every rank (half the bytes of gathering K and V).
 *
 * With FreeScale on (forward.h's f->fsx): the 3x3 convs of a block run with
 * f->dil (restrained dilation: halo rows d, the downsampler d on top and d - 1
 * below), and attn1 becomes scale fusion (fusion.c).
 *
 * Token products (proj_in/out, q/k/v/out, feed-forward) run per batch item
 * with m0 = the global index of the strip's first token, so every GEMM tile
 * sits at the same global place whatever the split (bit-identical results). */
#include "unet/forward.h"

/* Feed-forward tokens per chunk, in the backend's GEMM tiles: bounds the
 * [tokens][8c] intermediate at any map size (CPU: 4 x 256 = 1024 tokens,
 * 42 MB at c = 1280). Chunks start at global multiples of it. On a GPU the
 * same 4 tiles of its 2048 rows make 8192 tokens (335 MB at c = 1280; memory
 * is less scarce there): a chunk smaller than a tile would fill part of
 * each tile with padding (measured: a 1024-token chunk took twice the
 * feed-forward's time). */
#define FF_CHUNK_TILES 4

static fs_code oom(fwd *f) { return f->nn.err && f->nn.err->code ? f->nn.err->code : FS_ERR_NOMEM; }

static fs_conv2d_desc conv_desc(const fwd *f, const fwd_level *in, const fs_conv_w *cw,
                                int stride) {
    fs_conv2d_desc d = {0};
    d.n = f->nn.n;
    d.in_h = in->h;
    d.in_w = in->w;
    d.cin = cw->in;
    d.cout = cw->out;
    d.k = cw->k;
    d.stride = stride;
    d.dil = 1;
    return d;
}

/* ---------------------------------------------------------------- ResnetBlock2D */

/* GN(x) + SiLU into a halo buffer of `dil` rows each side (a 3x3 conv with
 * dilation and padding dil reads dil rows beyond the strip), halo
 * exchanged, then the 3x3 conv. */
static fs_code gn_silu_conv(fwd *f, const fwd_level *lv, const float *x, const fs_norm_w *nw,
                            float eps, const fs_conv_w *cw, int dil, float *y) {
    size_t mark = nn_mark(&f->nn);
    float *mean, *rstd;
    fs_code rc = nn_gn_stats(&f->nn, lv, x, cw->in, f->cfg->groups, eps, &mean, &rstd);
    float *g = rc ? NULL
                  : nn_floats(&f->nn, (size_t)f->nn.n * (lv->rows + 2 * dil) * lv->w * cw->in);
    if (!rc && !g) rc = oom(f);
    if (!rc) {
        rc = nn_gn_apply(&f->nn, lv, x, cw->in, f->cfg->groups, mean, rstd, nw, 1, g, dil, dil);
        if (!rc) rc = nn_halo(&f->nn, lv, g, cw->in, dil, dil);
    }
    if (!rc) {
        fs_conv2d_desc d = conv_desc(f, lv, cw, 1);
        d.dil = dil;
        d.x_row0 = lv->row0 - dil;
        d.x_rows = lv->rows + 2 * dil;
        d.y_row0 = lv->row0;
        d.y_rows = lv->rows;
        rc = nn_conv(&f->nn, &d, g, cw, y);
    }
    nn_reset(&f->nn, mark);
    return rc;
}

fs_code fwd_resblock(fwd *f, const fwd_level *lv, const fs_resnet_w *rw, const float *x,
                     float *y) {
    const float eps = f->cfg->eps_resnet;
    const size_t mark = nn_mark(&f->nn), out_floats = nn_tensor_floats(&f->nn, lv, rw->cout);
    fs_code rc = FS_OK;
    float *h1 = nn_floats(&f->nn, out_floats);
    float *temb = h1 ? nn_floats(&f->nn, (size_t)f->nn.n * rw->cout) : NULL;
    if (!temb) rc = oom(f);
    /* h1 = conv1(SiLU(GN(x))) + time_emb_proj(SiLU(emb)) */
    if (!rc) rc = gn_silu_conv(f, lv, x, &rw->norm1, eps, &rw->conv1, f->dil, h1);
    if (!rc) {
        rc = nn_small_linear(&f->nn, f->emb_silu, temb, f->nn.n, &rw->time_emb_proj);
        if (!rc) rc = nn_add_bcast(&f->nn, h1, temb, f->nn.n, (size_t)lv->rows * lv->w, rw->cout);
        /* y = conv2(SiLU(GN(h1))) (dropout is 0) */
        if (!rc) rc = gn_silu_conv(f, lv, h1, &rw->norm2, eps, &rw->conv2, f->dil, y);
    }
    /* y += shortcut(x): a 1x1 conv when the channel count changes */
    if (!rc && rw->cin != rw->cout) {
        float *s = nn_floats(&f->nn, out_floats);
        if (!s) rc = oom(f);
        if (!rc) {
            fs_conv2d_desc d = conv_desc(f, lv, &rw->conv_shortcut, 1);
            d.x_row0 = d.y_row0 = lv->row0;
            d.x_rows = d.y_rows = lv->rows;
            rc = nn_conv(&f->nn, &d, x, &rw->conv_shortcut, s);
        }
        if (!rc) rc = nn_add(&f->nn, y, s, out_floats);
    } else if (!rc) {
        rc = nn_add(&f->nn, y, x, out_floats);
    }
    nn_reset(&f->nn, mark);
    return rc;
}

/* ---------------------------------------------------------------- attention */

/* hs += to_out(attention(to_q(ln), to_k(kv_src), to_v(kv_src))) for each
 * batch item: ln [n][T][c] (this strip's tokens), kv_src item b at
 * kv + b * nk * kv_dim: nk rows (all tokens of the map, or the text context).
 * With all_items, K and V of every item are made by one call each on the
 * whole context (fs_linear_whole: one tile of exactly n * nk rows);
 * otherwise one item at a time (a map's tokens: memory). */
static fs_code attend(fwd *f, const fwd_level *lv, const fs_linear_w *wq, const fs_linear_w *wk,
                      const fs_linear_w *wv, const fs_linear_w *wo, int heads, const float *ln,
                      const float *kv, int nk, int all_items, float *hs) {
    const int c = wq->out, dh = c / heads, kv_items = all_items ? f->nn.n : 1;
    const size_t T = (size_t)lv->rows * lv->w, mark = nn_mark(&f->nn), kv_item = (size_t)nk * wk->in;
    const int64_t m0 = (int64_t)lv->row0 * lv->w;
    float *k = nn_floats(&f->nn, (size_t)kv_items * nk * c);
    float *v = k ? nn_floats(&f->nn, (size_t)kv_items * nk * c) : NULL;
    float *q = v ? nn_floats(&f->nn, T * c) : NULL;
    float *o = q ? nn_floats(&f->nn, T * c) : NULL;
    fs_code rc = o ? FS_OK : oom(f);
    if (!rc && all_items) { /* the whole context, on every rank: no padded rows */
        rc = nn_linear_whole(&f->nn, kv, k, (size_t)f->nn.n * nk, wk);
        if (!rc) rc = nn_linear_whole(&f->nn, kv, v, (size_t)f->nn.n * nk, wv);
    }
    for (int b = 0; b < f->nn.n && !rc; b++) {
        const float *kb = k, *vb = v;
        if (all_items) {
            kb = nn_cat(&f->nn, k, (size_t)b * nk * c);
            vb = nn_cat(&f->nn, v, (size_t)b * nk * c);
        } else {
            const float *src = nn_cat(&f->nn, kv, b * kv_item);
            rc = nn_linear(&f->nn, src, 0, k, 0, 1, (size_t)nk, wk, 0);
            if (!rc) rc = nn_linear(&f->nn, src, 0, v, 0, 1, (size_t)nk, wv, 0);
        }
        if (!rc) rc = nn_linear(&f->nn, nn_cat(&f->nn, ln, b * T * c), 0, q, 0, 1, T, wq, m0);
        if (!rc) rc = nn_attention(&f->nn, q, kb, vb, o, (int)T, nk, heads, dh, m0);
        if (!rc) rc = nn_linear(&f->nn, o, 0, q, 0, 1, T, wo, m0);
        if (!rc) rc = nn_add(&f->nn, nn_at(&f->nn, hs, b * T * c), q, T * c);
    }
    nn_reset(&f->nn, mark);
    return rc;
}

/* ---------------------------------------------------------------- BasicTransformerBlock */

/* hs [n][T][c] in place; ln is a [n][T][c] work buffer. */
static fs_code tblock(fwd *f, const fwd_level *lv, const fs_tblock_w *bw, int heads, float *hs,
                      float *ln) {
    const int c = bw->attn1_q.out, n = f->nn.n;
    const size_t T = (size_t)lv->rows * lv->w, N = (size_t)lv->h * lv->w;
    const int64_t m0 = (int64_t)lv->row0 * lv->w;
    size_t mark = nn_mark(&f->nn);

    /* self-attention over every token of the map: gather the normed tokens,
     * every rank makes K and V for all of them */
    fs_code rc = nn_layernorm(&f->nn, hs, ln, n * T, 1e-5f, &bw->norm1);
    float *all = ln;
    if (!rc && lv->plan->parts > 1) {
        all = nn_floats(&f->nn, (size_t)n * N * c);
        rc = all ? nn_allgather(&f->nn, lv, ln, all, c) : oom(f);
    }
    if (!rc && f->fsx && f->fsx->fusion) /* FreeScale's scale fusion (fusion.c) */
        rc = fwd_fused_self_attention(f, lv, bw, heads, ln, all, hs);
    else if (!rc)
        rc = attend(f, lv, &bw->attn1_q, &bw->attn1_k, &bw->attn1_v, &bw->attn1_out, heads, ln,
                    all, (int)N, 0, hs);
    f->attn_ordinal++; /* the jitter key's block: one per self-attention, in forward order */
    nn_reset(&f->nn, mark);

    /* cross-attention on the text context */
    if (!rc) {
        rc = nn_layernorm(&f->nn, hs, ln, n * T, 1e-5f, &bw->norm2);
        if (!rc)
            rc = attend(f, lv, &bw->attn2_q, &bw->attn2_k, &bw->attn2_v, &bw->attn2_out, heads, ln,
                    f->context, f->ctx_len, 1, hs);
    }

    /* feed-forward: GEGLU(c -> 8c -> 4c) -> c, in token chunks */
    if (!rc) {
        rc = nn_layernorm(&f->nn, hs, ln, n * T, 1e-5f, &bw->norm3);
        const size_t chunk = FF_CHUNK_TILES * (size_t)nn_backend(&f->nn)->gemm_rows;
        size_t cap = T < chunk ? T : chunk;
        float *p = nn_floats(&f->nn, cap * 8 * c);
        float *g = p ? nn_floats(&f->nn, cap * 4 * c) : NULL;
        float *o = g ? nn_floats(&f->nn, cap * c) : NULL;
        if (!rc && !o) rc = oom(f);
        for (int b = 0; b < n && !rc; b++)
            for (size_t s = 0, e; s < T && !rc; s = e) {
                int64_t g0 = m0 + (int64_t)s;
                e = (size_t)((g0 / (int64_t)chunk + 1) * (int64_t)chunk - m0);
                if (e > T) e = T;
                size_t mm = e - s, at = (b * T + s) * c;
                rc = nn_linear(&f->nn, nn_cat(&f->nn, ln, at), 0, p, 0, 1, mm, &bw->ff_proj, g0);
                if (!rc) rc = nn_geglu(&f->nn, p, g, mm, 4 * c);
                if (!rc) rc = nn_linear(&f->nn, g, 0, o, 0, 1, mm, &bw->ff_out, g0);
                if (!rc) rc = nn_add(&f->nn, nn_at(&f->nn, hs, at), o, mm * c);
            }
        nn_reset(&f->nn, mark);
    }
    return rc;
}

/* ---------------------------------------------------------------- Transformer2DModel */

fs_code fwd_transformer(fwd *f, const fwd_level *lv, const fs_transformer_w *tw, float *x) {
    if (tw->depth <= 0) return FS_OK;
    const int c = tw->channels, n = f->nn.n;
    const size_t T = (size_t)lv->rows * lv->w, count = (size_t)n * T * c;
    const int64_t m0 = (int64_t)lv->row0 * lv->w;
    const size_t mark = nn_mark(&f->nn);
    float *hs = nn_floats(&f->nn, count);
    float *ln = hs ? nn_floats(&f->nn, count) : NULL;
    fs_code rc = ln ? FS_OK : oom(f);
    if (!rc) { /* GroupNorm (eps 1e-6, no SiLU) -> proj_in, per token */
        size_t m1 = nn_mark(&f->nn);
        float *mean, *rstd;
        rc = nn_gn_stats(&f->nn, lv, x, c, f->cfg->groups, f->cfg->eps_transformer, &mean, &rstd);
        if (!rc)
            rc = nn_gn_apply(&f->nn, lv, x, c, f->cfg->groups, mean, rstd, &tw->norm, 0, ln, 0,
                             0);
        nn_reset(&f->nn, m1);
    }
    if (!rc) rc = nn_linear(&f->nn, ln, T * c, hs, T * c, n, T, &tw->proj_in, m0);
    for (int k = 0; k < tw->depth && !rc; k++) rc = tblock(f, lv, &tw->blocks[k], tw->heads, hs, ln);
    if (!rc) rc = nn_linear(&f->nn, hs, T * c, ln, T * c, n, T, &tw->proj_out, m0);
    if (!rc) rc = nn_add(&f->nn, x, ln, count); /* + residual */
    nn_reset(&f->nn, mark);
    return rc;
}

/* ---------------------------------------------------------------- resampling */

fs_code fwd_downsample(fwd *f, const fwd_level *fine, const fwd_level *coarse,
                       const fs_conv_w *cw, const float *x, float *y) {
    /* output rows [R0/2, R1/2) read input rows [R0 - d, R1 + d - 1) with
     * dilation (and padding) d: d rows on top, d - 1 below (one on top
     * undilated) */
    const int dil = f->dil, top = dil, bot = dil - 1;
    const size_t mark = nn_mark(&f->nn);
    float *buf =
        nn_floats(&f->nn, (size_t)f->nn.n * (fine->rows + top + bot) * fine->w * cw->in);
    fs_code rc = buf ? FS_OK : oom(f);
    if (!rc) {
        rc = nn_copy_own(&f->nn, fine, x, cw->in, buf, top, bot);
        if (!rc) rc = nn_halo(&f->nn, fine, buf, cw->in, top, bot);
    }
    if (!rc) {
        fs_conv2d_desc d = conv_desc(f, fine, cw, 2);
        d.dil = dil;
        d.x_row0 = fine->row0 - top;
        d.x_rows = fine->rows + top + bot;
        d.y_row0 = coarse->row0;
        d.y_rows = coarse->rows;
        rc = nn_conv(&f->nn, &d, buf, cw, y);
    }
    nn_reset(&f->nn, mark);
    return rc;
}

fs_code fwd_upsample(fwd *f, const fwd_level *coarse, const fwd_level *fine,
                     const fs_conv_w *cw, const float *x, float *y) {
    /* fine rows [2 R0 - 1, 2 R1] feed the conv: coarse rows R0 - 1 .. R1, so
     * one low-resolution row each side is exchanged, then upsampled here */
    const int c = cw->in, rows = coarse->rows + 2;
    const size_t mark = nn_mark(&f->nn);
    float *buf = nn_floats(&f->nn, (size_t)f->nn.n * rows * coarse->w * c);
    float *up = buf ? nn_floats(&f->nn, (size_t)f->nn.n * 4 * rows * coarse->w * c) : NULL;
    fs_code rc = up ? FS_OK : oom(f);
    if (!rc) {
        rc = nn_copy_own(&f->nn, coarse, x, c, buf, 1, 1);
        if (!rc) rc = nn_halo(&f->nn, coarse, buf, c, 1, 1);
    }
    if (!rc) rc = nn_upsample2x(&f->nn, buf, up, f->nn.n, rows, coarse->w, c);
    if (!rc) {
        fs_conv2d_desc d = conv_desc(f, fine, cw, 1);
        d.x_row0 = 2 * (coarse->row0 - 1);
        d.x_rows = 2 * rows;
        d.y_row0 = fine->row0;
        d.y_rows = fine->rows;
        rc = nn_conv(&f->nn, &d, up, cw, y);
    }
    nn_reset(&f->nn, mark);
    return rc;
}

fs_code fwd_conv3x3(fwd *f, const fwd_level *lv, const fs_conv_w *cw, const fs_norm_w *nw,
                    float eps, const float *x, float *y) {
    if (nw) return gn_silu_conv(f, lv, x, nw, eps, cw, 1, y);
    const size_t mark = nn_mark(&f->nn);
    float *buf = nn_floats(&f->nn, (size_t)f->nn.n * (lv->rows + 2) * lv->w * cw->in);
    fs_code rc = buf ? FS_OK : oom(f);
    if (!rc) {
        rc = nn_copy_own(&f->nn, lv, x, cw->in, buf, 1, 1);
        if (!rc) rc = nn_halo(&f->nn, lv, buf, cw->in, 1, 1);
    }
    if (!rc) {
        fs_conv2d_desc d = conv_desc(f, lv, cw, 1);
        d.x_row0 = lv->row0 - 1;
        d.x_rows = lv->rows + 2;
        d.y_row0 = lv->row0;
        d.y_rows = lv->rows;
        rc = nn_conv(&f->nn, &d, buf, cw, y);
    }
    nn_reset(&f->nn, mark);
    return rc;
}
