/* vae/tiled.c: diffusers' tiled VAE (AutoencoderKL.enable_tiling():
 * tiled_decode and _tiled_encode, spec/freescale.md section 8), which
 * FreeScale's reference pipeline uses above 1024 px: the input is cut into
 * overlapping tiles that go through the network independently (each with
 * its own GroupNorm statistics and attention), each tile is blended with the
 * (already blended) tile above and the one to its left by linear ramps, and
 * the first `limit` rows / columns of each are kept. The result differs from
 * the untiled network; this mode exists to reproduce the reference's images.
 *
 * Distribution: every rank gets the whole input (an all-gather: a latent, or
 * an image of 3 channels), then every tile is computed by all ranks as a
 * strip pass of its own (a tile too short to cut is computed whole on every
 * rank: the same bits) and gathered, so every rank holds every tile of the
 * current and the previous tile row; each blends them exactly as diffusers
 * does and keeps the rows of its own strip. */
#include <stdlib.h>
#include <string.h>
#include "vae/fwd.h"

typedef struct geom {
    int in_h, in_w, in_c;       /* the whole input (latent or image) */
    int out_h, out_w, out_c;    /* the whole output */
    int scale;                  /* output units per input unit (8, or 1/8 as -8) */
    int tile_in;                /* tile side in input units */
    int step;                   /* tile starts every `step` input units */
    int blend, limit;           /* in output units */
} geom;

static int out_units(const geom *g, int in) { return g->scale > 0 ? in * g->scale : in / -g->scale; }

/* Output size diffusers' concatenation gives along a side of `in` units. */
static int tiled_size(const geom *g, int in) {
    int total = 0;
    for (int i = 0; i < in; i += g->step) {
        int t = out_units(g, in - i < g->tile_in ? in - i : g->tile_in);
        total += t < g->limit ? t : g->limit;
    }
    return total;
}

typedef struct tile {
    float *p;
    int h, w;   /* output units */
} tile;

/* Runs one tile (input rows [i, i + th), columns [j, j + tw) of `full`) on
 * all ranks; every rank gets the whole tile's output. */
static fs_code run_tile(fs_vae *v, fs_comm *comm, const geom *g, const float *full, int i, int j,
                        int th, int tw, int decode, const fs_vae_opts *o, tile *t, fs_error *err) {
    const int f = 1 << (v->config.levels - 1);
    const int lat_h = decode ? th : th / f, lat_w = decode ? tw : tw / f;
    const int P = comm ? fs_comm_size(comm) : 1, rank = comm ? fs_comm_rank(comm) : 0;
    const int parts = lat_h >= P ? P : 1;
    fs_strip_plan plan;
    fs_code rc = fs_strip_plan_make(lat_h, parts, 1, &plan, err);
    if (rc) return rc;
    const int me = parts > 1 ? rank : 0;
    /* this rank's strip of the tile's input and output */
    const int k_in = decode ? 1 : f, k_out = decode ? f : 1;
    const int r0 = plan.row0[me] * k_in, rows = (plan.row0[me + 1] - plan.row0[me]) * k_in;
    t->h = out_units(g, th);
    t->w = out_units(g, tw);
    const size_t in_row = (size_t)tw * g->in_c, out_row = (size_t)t->w * g->out_c;
    float *in = malloc((size_t)rows * in_row * sizeof(float) + 4);
    t->p = malloc((size_t)t->h * out_row * sizeof(float) + 4);
    float *strip = parts > 1 ? malloc((size_t)(rows / k_in) * k_out * out_row * sizeof(float) + 4)
                             : t->p;
    if (!in || !t->p || !strip) rc = fs_fail(err, FS_ERR_NOMEM, "VAE tiles: out of memory");
    for (int y = 0; y < rows && !rc; y++)
        memcpy(in + (size_t)y * in_row, full + (((size_t)(i + r0 + y)) * g->in_w + j) * g->in_c,
               in_row * sizeof(float));
    fs_vae_opts one = *o;
    one.tiled = 0;
    one.trace = NULL;
    if (!rc)
        rc = vae_strips(v, parts > 1 ? comm : NULL, &plan, lat_h, lat_w, 1, in, strip, &one, decode,
                        err);
    if (!rc && parts > 1) {
        fs_strip_plan op = plan;  /* the same cut in output rows */
        op.h = plan.h * k_out;
        for (int q = 0; q <= parts; q++) op.row0[q] = plan.row0[q] * k_out;
        rc = fs_comm_allgather_rows(comm, &op, strip, t->p, 1, out_row, err);
    }
    free(in);
    if (strip != t->p) free(strip);
    return rc;
}

fs_code vae_tiled(fs_vae *v, fs_comm *comm, const fs_strip_plan *plan, int h, int w, int n,
                  const float *in, float *out, const fs_vae_opts *o, int decode, fs_error *err) {
    const fs_vae_config *c = &v->config;
    const char *what = decode ? "VAE tiled decode" : "VAE tiled encode";
    const int f = 1 << (c->levels - 1);
    const int ts = o->tile_sample ? o->tile_sample : c->sample_size, tl = ts / f;
    const double ov = o->tile_overlap > 0 ? (double)o->tile_overlap : 0.25;
    if (ts < f || !(ov < 1.0))
        return fs_fail(err, FS_ERR_INVALID, "%s: tile of %d px, overlap %g", what, ts, ov);
    /* diffusers tiles only when a side exceeds the tile */
    if (decode ? !(w > tl || h > tl) : !(w * f > ts || h * f > ts))
        return vae_strips(v, comm, plan, h, w, n, in, out, o, decode, err);
    geom g;
    g.in_h = decode ? h : h * f;
    g.in_w = decode ? w : w * f;
    g.in_c = decode ? c->latent_channels : c->in_channels;
    g.out_h = decode ? h * f : h;
    g.out_w = decode ? w * f : w;
    g.out_c = decode ? c->out_channels : 2 * c->latent_channels;
    g.scale = decode ? f : -f;
    g.tile_in = decode ? tl : ts;
    g.step = (int)(g.tile_in * (1.0 - ov));
    g.blend = (int)((decode ? ts : tl) * ov);
    g.limit = (decode ? ts : tl) - g.blend;
    if (g.step < 1 || g.limit < 1 || (!decode && g.step % f))
        return fs_fail(err, FS_ERR_UNSUPPORTED, "%s: tiles of %d px with overlap %g give a step "
                       "of %d and keep %d", what, ts, ov, g.step, g.limit);
    if (tiled_size(&g, g.in_h) != g.out_h || tiled_size(&g, g.in_w) != g.out_w)
        return fs_fail(err, FS_ERR_UNSUPPORTED, "%s: tiles of %d px with overlap %g would make "
                       "%dx%d, not %dx%d (diffusers' sizes do not add up here)", what, ts, ov,
                       tiled_size(&g, g.in_h), tiled_size(&g, g.in_w), g.out_h, g.out_w);
    const int P = plan->parts;
    if (P > 1 && (!comm || fs_comm_size(comm) != P))
        return fs_fail(err, FS_ERR_INVALID, "%s: the plan has %d parts, the communicator %d",
                       what, P, comm ? fs_comm_size(comm) : 0);
    if (P == 1) comm = NULL; /* a one-part plan talks to nobody, whatever comm is */
    const int rank = P > 1 ? fs_comm_rank(comm) : 0;
    /* the whole input on every rank */
    const int k_in = decode ? 1 : f, k_out = decode ? f : 1;
    const size_t in_item = (size_t)g.in_h * g.in_w * g.in_c;
    const int out_row0 = plan->row0[rank] * k_out, out_rows = fs_strip_rows(plan, rank) * k_out;
    const size_t out_row = (size_t)g.out_w * g.out_c;
    float *full = P > 1 ? malloc((size_t)n * in_item * sizeof(float)) : (float *)in;
    if (!full) return fs_fail(err, FS_ERR_NOMEM, "%s: out of memory", what);
    fs_code rc = FS_OK;
    if (P > 1) {
        fs_strip_plan ip = *plan;
        ip.h = plan->h * k_in;
        for (int q = 0; q <= P; q++) ip.row0[q] = plan->row0[q] * k_in;
        rc = fs_comm_allgather_rows(comm, &ip, in, full, n, (size_t)g.in_w * g.in_c, err);
    }
    const int cols = (g.in_w + g.step - 1) / g.step;
    tile *prev = calloc((size_t)cols, sizeof *prev), *cur = calloc((size_t)cols, sizeof *cur);
    if (!prev || !cur) rc = fs_fail(err, FS_ERR_NOMEM, "%s: out of memory", what);
    for (int b = 0; b < n && !rc; b++) {
        const float *item = full + (size_t)b * in_item;
        float *oitem = out + (size_t)b * out_rows * out_row;
        for (int i = 0, ti = 0; i < g.in_h && !rc; i += g.step, ti++) {
            const int th = g.in_h - i < g.tile_in ? g.in_h - i : g.tile_in;
            const int y0 = ti * g.limit; /* output rows of this tile row: [y0, y0 + kept) */
            for (int j = 0, tj = 0; j < g.in_w && !rc; j += g.step, tj++) {
                const int tw = g.in_w - j < g.tile_in ? g.in_w - j : g.tile_in;
                free(cur[tj].p);
                cur[tj].p = NULL;
                /* every rank takes part in every tile (collective calls) */
                rc = run_tile(v, comm, &g, item, i, j, th, tw, decode, o, &cur[tj], err);
                if (rc) break;
                tile *t = &cur[tj];
                /* the seams with the tile above and the one to the left */
                const fs_backend *be = fs_backend_cpu();
                if (ti > 0 && prev[tj].p)
                    rc = be->op->tile_blend(be, prev[tj].p, prev[tj].h, prev[tj].w, t->p, t->h,
                                            t->w, g.out_c, g.blend, 1, err);
                if (!rc && tj > 0)
                    rc = be->op->tile_blend(be, cur[tj - 1].p, cur[tj - 1].h, cur[tj - 1].w,
                                            t->p, t->h, t->w, g.out_c, g.blend, 0, err);
                if (rc) break;
                const int kh = t->h < g.limit ? t->h : g.limit, kw = t->w < g.limit ? t->w : g.limit;
                for (int y = 0; y < kh; y++) {
                    int gy = y0 + y;
                    if (gy < out_row0 || gy >= out_row0 + out_rows) continue;
                    memcpy(oitem + (size_t)(gy - out_row0) * out_row + (size_t)tj * g.limit * g.out_c,
                           t->p + (size_t)y * t->w * g.out_c, (size_t)kw * g.out_c * sizeof(float));
                }
            }
            tile *swap = prev;
            prev = cur;
            cur = swap;
        }
        for (int tj = 0; tj < cols; tj++) {
            free(prev[tj].p);
            free(cur[tj].p);
            prev[tj].p = cur[tj].p = NULL;
        }
    }
    if (prev && cur)
        for (int tj = 0; tj < cols; tj++) {
            free(prev[tj].p);
            free(cur[tj].p);
        }
    free(prev);
    free(cur);
    if (full != in) free(full);
    return rc;
}
