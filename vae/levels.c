/* vae/levels.c: the encoder and the decoder as sequences of levels, and the
 * decoder's upsampling transitions in their three memory schemes.
 *
 * Why schemes. Decoding 4096 x 4096 px (a 512 x 512 latent) holds maps of
 * 2 MB per row at every resolution from 1024 up (1024 x 512 ch, 2048 x 256,
 * 4096 x 128, f32), i.e. 2, 4 and 8 GB per map; the upsampler's output at
 * 2048 (512 ch) and 4096 (256 ch) would be 8 and 16 GB. Every GroupNorm
 * needs its input's statistics over the whole map before any row can be
 * normed, so a chain of layers cannot simply stream: each GroupNorm is a
 * sync point at which either the map is held or its producer is re-run.
 * Statistics are summed while a map is produced (one extra pass costs only
 * the producer's FLOPs), and the schemes choose what to hold:
 *
 *  resnets, S: h (the middle activation) held; y overwrites x row by row
 *    (a y row needs only its own x row once h exists). Maps held: x, h.
 *  resnets, R: h is made band by band twice: once for its statistics, once
 *    (with a row either side, from x rows two either side) to finish y in
 *    place. Maps held: x only; conv1 runs twice.
 *  transition (upsampler then the level's first resnet, which may narrow):
 *    STORE: u = conv(up2x(x)) held, then the resnet as above.
 *    HS: u is never held: pass a makes u in bands for its statistics, pass b
 *      makes u again (one row either side) to produce the resnet's h and its
 *      shortcut, both held; pass c finishes y from h. Held: x (shrinking
 *      during pass b), h, y. u is computed twice.
 *    THREE: pass a as HS; pass b makes u and h for h's statistics only;
 *      pass c makes u (two rows either side), h (one) and y. Held: x
 *      shrinking while y grows: about one full-resolution map. u is
 *      computed three times.
 * "Shrinking" and "grows": a map made here is counted resident as its rows
 * are first written (the system gives a large block pages on first touch),
 * and an input map that will not be read again gives its rows back
 * (madvise) as soon as no later band needs them; the sizing pass counts
 * exactly that, so the planner sees the true peak.
 * The planner (forward.c) measures every scheme's peak bytes and FLOPs with
 * the sizing pass and takes, per level, the fastest that fits the budget:
 * at 4096 px, THREE + R at the finest level keeps the decoder near one
 * 8 GB map.
 *
 * Levels are resolutions: r = 0 is the image, r = levels - 1 the latent.
 * Decoder up block i runs at r = last - i; its upsampler belongs to the
 * transition into r - 1. Encoder down block l runs at r = l; its
 * downsampler (stride 2, padding bottom / right only) starts level l + 1. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include "vae/fwd.h"

/* The trace hook after a block (nothing in a dry pass). */
void vfwd_trace(vfwd *f, const char *name, const vmap *m) {
    if (!f->nn.dry && f->trace && f->trace->on_block)
        f->trace->on_block(f->trace->user, name, f->item, vmap_row(f, m, m->lv->row0),
                           m->lv->rows, m->lv->w, m->c);
}

static int floor_div2(int v) { return v >= 0 ? v / 2 : -((1 - v) / 2); }

/* Bands over this strip's rows [row0, row1) of lv, `B` rows each. */
#define FOR_BANDS(lv, B, J, e)                                                         \
    for (int J = (lv)->row0, e = 0; J < (lv)->row0 + (lv)->rows &&                     \
                                    ((e = J + (B) < (lv)->row0 + (lv)->rows ? J + (B)  \
                                                : (lv)->row0 + (lv)->rows), 1);         \
         J = e)

/* ---------------------------------------------------------------- decoder */

/* u rows [u0, u1) (clipped to the map) into ub from the coarse map x. */
static fs_code make_u(vfwd *f, const vmap *x, const nn_conv_w *upc, const nn_level *fine,
                      int *u0, int *u1, float *ub) {
    if (*u0 < 0) *u0 = 0;
    if (*u1 > fine->h) *u1 = fine->h;
    const nn_level *coarse = x->lv;
    return vband_conv(f, coarse, x->p, coarse->row0 - x->top, coarse->row0 + coarse->rows + x->bot,
                      x->c, NULL, 1, upc, 1, 0, fine, *u0, *u1, ub);
}

/* The transition from the coarse map x (freed here) to level `fine`: the
 * upsampler upc, then resnet rw into the new map *y. */
static fs_code up_transition(vfwd *f, vmap *x, const nn_conv_w *upc, const vae_resnet_w *rw,
                             const nn_level *fine, vmap *y, int scheme) {
    const int kind = vae_scheme_transition(scheme), R = vae_scheme_recompute(scheme);
    const int cu = upc->out, row0 = fine->row0, row1 = fine->row0 + fine->rows;
    const size_t urow = (size_t)fine->w * cu, yrow = (size_t)fine->w * rw->cout;
    fs_code rc = vmap_halo(f, x);
    vacc acc;
    if (rc) return rc;
    if (kind == VAE_TRANS_STORE) {
        vmap u;
        rc = vmap_alloc(f, &u, fine, cu, 2, 1);
        const int B = vband_rows(f, fine, sizeof(float) * 4 * urow);
        if (!rc) rc = vacc_begin(f, &acc, fine, cu);
        FOR_BANDS(fine, B, J, e) {
            if (rc) break;
            int u0 = J, u1 = e;
            rc = make_u(f, x, upc, fine, &u0, &u1, vmap_row(f, &u, J));
            vmap_commit(f, &u, J, e);
            if (!rc) vacc_rows(f, &acc, vmap_row(f, &u, J), J, e);
            if (!rc) vmap_release_above(f, x, floor_div2(e - 3)); /* see THREE below */
        }
        if (!rc) rc = vacc_end(f, &acc, &u);
        vmap_free(f, x);
        if (rc) { vmap_free(f, &u); return rc; }
        if (rw->cin == rw->cout) {
            rc = vresnet(f, rw, &u, &u, R);
            *y = u;
            return rc;
        }
        rc = vmap_alloc(f, y, fine, rw->cout, 2, 1);
        if (!rc) rc = vresnet(f, rw, &u, y, R);
        vmap_free(f, &u);
        return rc;
    }

    /* pass a: u's statistics */
    vmap ust, hst;
    memset(&ust, 0, offsetof(vmap, mean));
    memset(&hst, 0, offsetof(vmap, mean));
    ust.lv = hst.lv = fine;
    ust.c = cu;
    hst.c = rw->cout;
    const int B = vband_rows(f, fine, sizeof(float) * (6 * urow + 4 * yrow));
    size_t mark = nn_mark(&f->nn);
    rc = vacc_begin(f, &acc, fine, cu);
    float *ub = rc ? NULL : nn_floats(&f->nn, (size_t)(B + 4) * urow);
    float *hb = ub ? nn_floats(&f->nn, (size_t)(B + 2) * yrow) : NULL;
    if (!rc && !hb) rc = nn_oom(&f->nn);
    FOR_BANDS(fine, B, J, e) {
        if (rc) break;
        int u0 = J, u1 = e;
        rc = make_u(f, x, upc, fine, &u0, &u1, ub);
        if (!rc) vacc_rows(f, &acc, ub, J, e);
    }
    if (!rc) rc = vacc_end(f, &acc, &ust);
    nn_reset(&f->nn, mark);
    vgn g1 = vgn_of(&ust, &rw->norm1, 1);
    vmap h = {0};

    /* pass b: HS holds h and the shortcut (in y); THREE takes h's statistics */
    const int hs = kind == VAE_TRANS_HS;
    if (!rc && hs) rc = vmap_alloc(f, y, fine, rw->cout, 2, 1);
    if (!rc && hs) rc = vmap_alloc(f, &h, fine, rw->cout, 1, 1);
    mark = nn_mark(&f->nn);
    if (!rc) rc = vacc_begin(f, &acc, fine, rw->cout);
    ub = rc ? NULL : nn_floats(&f->nn, (size_t)(B + 4) * urow);
    hb = ub ? nn_floats(&f->nn, (size_t)(B + 2) * yrow) : NULL;
    if (!rc && !hb) rc = nn_oom(&f->nn);
    FOR_BANDS(fine, B, J, e) {
        if (rc) break;
        int u0 = J - 1, u1 = e + 1;
        rc = make_u(f, x, upc, fine, &u0, &u1, ub);
        float *hout = hs ? vmap_row(f, &h, J) : hb;
        if (!rc) rc = vband_conv(f, fine, ub, u0, u1, cu, &g1, 0, &rw->conv1, 1, 0, fine, J, e, hout);
        if (!rc) vacc_rows(f, &acc, hout, J, e);
        if (!rc && hs) { /* the shortcut of u rows [J, e), into y */
            const float *ur = nn_cat(&f->nn, ub, (size_t)(J - u0) * urow);
            if (rw->shortcut.w)
                rc = vband_conv(f, fine, ur, J, e, cu, NULL, 0, &rw->shortcut, 1, 0, fine, J, e,
                                vmap_row(f, y, J));
            else
                nn_copy(&f->nn, vmap_row(f, y, J), ur, (size_t)(e - J) * urow);
            vmap_commit(f, &h, J, e);
            vmap_commit(f, y, J, e);
            if (!rc) vmap_release_above(f, x, floor_div2(e - 3)); /* x is read only here */
        }
    }
    if (!rc) rc = vacc_end(f, &acc, hs ? &h : &hst);
    nn_reset(&f->nn, mark);
    if (rc) {
        vmap_free(f, &h);
        return rc;
    }

    if (hs) { /* pass c: y += conv2(SiLU(GN2(h))) */
        vmap_free(f, x);
        rc = vmap_halo(f, &h);
        vgn g2 = vgn_of(&h, &rw->norm2, 1);
        mark = nn_mark(&f->nn);
        if (!rc) rc = vacc_begin(f, &acc, fine, rw->cout);
        float *t = rc ? NULL : nn_floats(&f->nn, (size_t)B * yrow);
        if (!rc && !t) rc = nn_oom(&f->nn);
        FOR_BANDS(fine, B, J, e) {
            if (rc) break;
            rc = vband_conv(f, fine, h.p, row0 - 1, row1 + 1, rw->cout, &g2, 0, &rw->conv2, 1, 0,
                            fine, J, e, t);
            if (!rc) {
                nn_add(&f->nn, vmap_row(f, y, J), t, (size_t)(e - J) * yrow);
                vacc_rows(f, &acc, vmap_row(f, y, J), J, e);
            }
        }
        if (!rc) rc = vacc_end(f, &acc, y);
        nn_reset(&f->nn, mark);
        vmap_free(f, &h);
        y->halo_filled = 0;
        return rc;
    }

    /* THREE, pass c: u (two rows either side) -> h (one) -> y, x given back */
    vgn g2 = vgn_of(&hst, &rw->norm2, 1);
    rc = vmap_alloc(f, y, fine, rw->cout, 2, 1);
    mark = nn_mark(&f->nn);
    if (!rc) rc = vacc_begin(f, &acc, fine, rw->cout);
    ub = rc ? NULL : nn_floats(&f->nn, (size_t)(B + 4) * urow);
    hb = ub ? nn_floats(&f->nn, (size_t)(B + 2) * yrow) : NULL;
    if (!rc && !hb) rc = nn_oom(&f->nn);
    FOR_BANDS(fine, B, J, e) {
        if (rc) break;
        int u0 = J - 2, u1 = e + 2, h0 = J - 1 > 0 ? J - 1 : 0, h1 = e + 1 < fine->h ? e + 1 : fine->h;
        rc = make_u(f, x, upc, fine, &u0, &u1, ub);
        if (!rc) rc = vband_conv(f, fine, ub, u0, u1, cu, &g1, 0, &rw->conv1, 1, 0, fine, h0, h1, hb);
        float *yr = vmap_row(f, y, J);
        if (!rc) rc = vband_conv(f, fine, hb, h0, h1, rw->cout, &g2, 0, &rw->conv2, 1, 0, fine, J, e, yr);
        if (!rc) {
            vmap_commit(f, y, J, e);
            const float *ur = nn_cat(&f->nn, ub, (size_t)(J - u0) * urow);
            if (rw->shortcut.w) {
                size_t m2 = nn_mark(&f->nn);
                float *s = nn_floats(&f->nn, (size_t)(e - J) * yrow);
                rc = s ? vband_conv(f, fine, ur, J, e, cu, NULL, 0, &rw->shortcut, 1, 0, fine, J, e, s)
                       : nn_oom(&f->nn);
                if (!rc) nn_add(&f->nn, yr, s, (size_t)(e - J) * yrow);
                nn_reset(&f->nn, m2);
            } else {
                nn_add(&f->nn, yr, ur, (size_t)(e - J) * yrow);
            }
        }
        if (!rc) vacc_rows(f, &acc, yr, J, e);
        /* the next band reads u from e - 2: up2x rows from e - 3, coarse rows
         * from floor((e - 3) / 2); everything above is given back */
        if (!rc) vmap_release_above(f, x, floor_div2(e - 3));
    }
    if (!rc) rc = vacc_end(f, &acc, y);
    nn_reset(&f->nn, mark);
    vmap_free(f, x);
    y->halo_filled = 0;
    return rc;
}

/* x -> x (same width, in place) or a new map (wider / narrower). */
static fs_code resnet_step(vfwd *f, const vae_resnet_w *rw, vmap *x, int R) {
    if (rw->cin == rw->cout) return vresnet(f, rw, x, x, R);
    vmap y;
    fs_code rc = vmap_alloc(f, &y, x->lv, rw->cout, 2, 1);
    if (!rc) rc = vresnet(f, rw, x, &y, R);
    vmap_free(f, x);
    *x = y;
    return rc;
}

static fs_code mid_block(vfwd *f, const vae_mid_w *mw, vmap *x, int R) {
    fs_code rc = resnet_step(f, &mw->res[0], x, R);
    if (!rc && mw->attn.c) rc = vattention(f, &mw->attn, x);
    if (!rc) rc = resnet_step(f, &mw->res[1], x, R);
    return rc;
}

/* y = conv(GN + SiLU (x)) (or no norm) into rows of a plain strip buffer
 * `out` ([rows][w][cout] of level `lo`), in bands. */
static fs_code conv_to_strip(vfwd *f, vmap *x, const nn_norm_w *nw, const nn_conv_w *cw,
                             const nn_level *lo, float *out) {
    const nn_level *lv = x->lv;
    fs_code rc = vmap_halo(f, x);
    if (!rc && nw && !x->has_stats) rc = vmap_stats(f, x);
    vgn g = vgn_of(x, nw, 1);
    const int B = vband_rows(f, lo, sizeof(float) * 3 * (size_t)lv->w * x->c);
    FOR_BANDS(lo, B, J, e) {
        if (rc) break;
        rc = vband_conv(f, lv, x->p, lv->row0 - x->top, lv->row0 + lv->rows + x->bot, x->c,
                        nw ? &g : NULL, 0, cw, 1, 0, lo, J, e,
                        nn_at(&f->nn, out, (size_t)(J - lo->row0) * lo->w * cw->out));
    }
    return rc;
}

fs_code vae_decoder_run(vfwd *f, const float *z, float *image) {
    const fs_vae_config *c = f->cfg;
    const vae_decoder_w *d = &f->w->dec;
    const int last = f->levels - 1, L = c->layers_per_block, lat = c->latent_channels;
    const nn_level *lvL = &f->lv[last];
    char name[64];
    nn_profile_eval(&f->nn, 1);
    vfwd_enter(f, last);
    /* post_quant_conv (1x1), then conv_in */
    vmap zq, x;
    fs_code rc = vmap_alloc(f, &zq, lvL, lat, 1, 0);
    if (rc) return rc;
    const size_t zfloats = (size_t)lvL->rows * lvL->w * lat;
    if (f->w->post_quant_conv.w)
        rc = vband_conv(f, lvL, z, lvL->row0, lvL->row0 + lvL->rows, lat, NULL, 0,
                        &f->w->post_quant_conv, 1, 0, lvL, lvL->row0, lvL->row0 + lvL->rows,
                        vmap_row(f, &zq, lvL->row0));
    else
        nn_copy(&f->nn, vmap_row(f, &zq, lvL->row0), z, zfloats);
    if (!rc) rc = vmap_alloc(f, &x, lvL, c->channels[last], 2, 0);
    if (!rc) {
        rc = conv_to_strip(f, &zq, NULL, &d->conv_in, lvL, vmap_row(f, &x, lvL->row0));
        vmap_free(f, &zq);
    }
    if (rc) return rc;
    vfwd_trace(f, "decoder.conv_in", &x);
    int R = vae_scheme_recompute(f->scheme[last]);
    rc = mid_block(f, &d->mid, &x, R);
    if (!rc) vfwd_trace(f, "decoder.mid_block", &x);
    for (int i = 0; i <= last && !rc; i++) {
        const int r = last - i;
        int j0 = 0;
        if (i > 0) {
            vfwd_enter(f, r);
            vmap y;
            rc = up_transition(f, &x, &d->upsample[i - 1], &d->up[i][0], &f->lv[r], &y,
                               f->scheme[r]);
            x = y;
            j0 = 1;
        }
        R = vae_scheme_recompute(f->scheme[r]);
        for (int j = j0; j <= L && !rc; j++) rc = resnet_step(f, &d->up[i][j], &x, R);
        snprintf(name, sizeof name, "decoder.up_blocks.%d.resnets.%d", i, L);
        if (!rc) vfwd_trace(f, name, &x);
    }
    if (!rc) rc = conv_to_strip(f, &x, &d->norm_out, &d->conv_out, &f->lv[0], image);
    vmap_free(f, &x);
    vfwd_account(f);
    nn_profile_eval(&f->nn, 0);
    return rc;
}

/* ---------------------------------------------------------------- encoder */

fs_code vae_encoder_run(vfwd *f, const float *image, float *moments) {
    const fs_vae_config *c = f->cfg;
    const vae_encoder_w *en = &f->w->enc;
    const int last = f->levels - 1, L = c->layers_per_block, lat2 = 2 * c->latent_channels;
    const nn_level *lv0 = &f->lv[0], *lvL = &f->lv[last];
    char name[64];
    nn_profile_eval(&f->nn, 1);
    vfwd_enter(f, 0);
    vmap im, x;
    fs_code rc = vmap_alloc(f, &im, lv0, c->in_channels, 1, 0);
    if (rc) return rc;
    nn_copy(&f->nn, vmap_row(f, &im, lv0->row0), image, (size_t)lv0->rows * lv0->w * c->in_channels);
    rc = vmap_alloc(f, &x, lv0, c->channels[0], 2, 0);
    if (!rc) rc = conv_to_strip(f, &im, NULL, &en->conv_in, lv0, vmap_row(f, &x, lv0->row0));
    vmap_free(f, &im);
    if (rc) return rc;
    vfwd_trace(f, "encoder.conv_in", &x);
    for (int l = 0; l <= last && !rc; l++) {
        if (l > 0) { /* the previous level's downsampler */
            vfwd_enter(f, l);
            const nn_level *fine = &f->lv[l - 1], *lv = &f->lv[l];
            vmap y;
            vacc acc;
            rc = vmap_halo(f, &x);
            if (!rc) rc = vmap_alloc(f, &y, lv, x.c, 2, 1);
            if (rc) break;
            const int B = vband_rows(f, lv, sizeof(float) * 4 * (size_t)fine->w * x.c);
            rc = vacc_begin(f, &acc, lv, x.c);
            FOR_BANDS(lv, B, J, e) {
                if (rc) break;
                rc = vband_conv(f, fine, x.p, fine->row0 - x.top, fine->row0 + fine->rows + x.bot,
                                x.c, NULL, 0, &en->downsample[l - 1], 2, 1, lv, J, e,
                                vmap_row(f, &y, J));
                vmap_commit(f, &y, J, e);
                if (!rc) vacc_rows(f, &acc, vmap_row(f, &y, J), J, e);
                /* the next band reads fine rows from 2 e on */
                if (!rc) vmap_release_above(f, &x, 2 * e);
            }
            if (!rc) rc = vacc_end(f, &acc, &y);
            vmap_free(f, &x);
            x = y;
        }
        const int R = vae_scheme_recompute(f->scheme[l]);
        for (int j = 0; j < L && !rc; j++) rc = resnet_step(f, &en->down[l][j], &x, R);
        snprintf(name, sizeof name, "encoder.down_blocks.%d.resnets.%d", l, L - 1);
        if (!rc) vfwd_trace(f, name, &x);
    }
    if (!rc) rc = mid_block(f, &en->mid, &x, vae_scheme_recompute(f->scheme[last]));
    if (!rc) vfwd_trace(f, "encoder.mid_block", &x);
    /* conv_norm_out + SiLU + conv_out, then quant_conv (1x1) */
    const size_t mark = nn_mark(&f->nn), mfloats = (size_t)lvL->rows * lvL->w * lat2;
    float *t = rc ? NULL : nn_floats(&f->nn, mfloats + 1);
    if (!rc && !t) rc = nn_oom(&f->nn);
    if (!rc) rc = conv_to_strip(f, &x, &en->norm_out, &en->conv_out, lvL, t);
    if (!rc && f->w->quant_conv.w)
        rc = vband_conv(f, lvL, t, lvL->row0, lvL->row0 + lvL->rows, lat2, NULL, 0,
                        &f->w->quant_conv, 1, 0, lvL, lvL->row0, lvL->row0 + lvL->rows, moments);
    else if (!rc)
        nn_copy(&f->nn, moments, t, mfloats);
    nn_reset(&f->nn, mark);
    vmap_free(f, &x);
    if (!rc && !f->nn.dry && f->trace && f->trace->on_block)
        f->trace->on_block(f->trace->user, "moments", f->item, moments, lvL->rows, lvL->w, lat2);
    vfwd_account(f);
    nn_profile_eval(&f->nn, 0);
    return rc;
}
