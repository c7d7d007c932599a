/* vae/forward.c: the strip pass (vae_strips, which codec.c and tiled.c
 * call) and fs_vae_plan: the levels' geometry for a strip plan, the planner
 * that picks each level's memory scheme (levels.c) from sizing passes, the
 * arena, and the loop over batch items; also the posterior sample and the
 * latent scaling. Calls point down only: codec.c -> tiled.c -> forward.c ->
 * levels.c -> blocks.c.
 *
 * The planner runs the sizing pass with every scheme at every level and
 * records each level's peak bytes and FLOPs, then takes per level the
 * fewest FLOPs whose peak fits opts->max_bytes. A level's peak depends only
 * on its own scheme (what it inherits is the previous level's output, the
 * same in every scheme), so levels choose independently. Every rank makes
 * the same choice without talking: it measures the strips that can be the
 * largest (the first, the second, the last) and takes the maximum, so all
 * ranks run the same passes and the same collective calls. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "vae/fwd.h"

/* ---------------------------------------------------------------- setup */

static size_t default_band_bytes(const fs_vae_opts *o) {
    if (o && o->band_bytes) return o->band_bytes;
    size_t b = o && o->max_bytes ? o->max_bytes / 24 : (size_t)256 << 20;
    if (b < ((size_t)16 << 20)) b = (size_t)16 << 20;
    if (b > ((size_t)512 << 20)) b = (size_t)512 << 20;
    return b;
}

/* The levels of an h x w latent cut by `plan` (latent rows), as strip
 * `rank` sees them: resolution r is 2^(levels-1-r) times the latent. */
static fs_code setup(vfwd *f, const fs_vae *v, const fs_strip_plan *plan, int rank, int h, int w,
                     const fs_vae_opts *o, int decode, fs_error *err) {
    const fs_vae_config *c = &v->config;
    const char *what = decode ? "VAE decode" : "VAE encode";
    if (h < 1 || w < 1) return fs_fail(err, FS_ERR_INVALID, "%s: latent %dx%d", what, h, w);
    if (plan->h != h || plan->parts < 1)
        return fs_fail(err, FS_ERR_INVALID,
                       "%s: the strip plan cuts %d rows into %d parts, the latent has %d rows",
                       what, plan->h, plan->parts, h);
    if (rank < 0 || rank >= plan->parts)
        return fs_fail(err, FS_ERR_INVALID, "%s: strip %d of a %d-part plan", what, rank,
                       plan->parts);
    const int last = c->levels - 1;
    if (((int64_t)h << last) > (1 << 24) || ((int64_t)w << last) > (1 << 24))
        return fs_fail(err, FS_ERR_RANGE, "%s: latent %dx%d is too large", what, h, w);
    f->nn.what = what;
    f->nn.n = 1;
    f->nn.err = err;
    f->cfg = c;
    f->w = &v->w;
    f->levels = c->levels;
    f->band_bytes = default_band_bytes(o);
    f->trace = o ? o->trace : NULL;
    f->level = -1;
    for (int r = 0; r <= last; r++) {
        const int k = 1 << (last - r);
        fs_strip_plan *p = &f->plans[r];
        p->h = h * k;
        p->parts = plan->parts;
        p->align = plan->align * k;
        for (int i = 0; i <= plan->parts; i++) p->row0[i] = plan->row0[i] * k;
        nn_level *lv = &f->lv[r];
        lv->plan = p;
        lv->h = h * k;
        lv->w = w * k;
        lv->rank = rank;
        lv->row0 = p->row0[rank];
        lv->rows = p->row0[rank + 1] - p->row0[rank];
    }
    return FS_OK;
}

static fs_code run(vfwd *f, int decode, const float *in, float *out) {
    return decode ? vae_decoder_run(f, in, out) : vae_encoder_run(f, in, out);
}

/* ---------------------------------------------------------------- planner */

typedef struct measured {
    size_t level_peak[FS_VAE_MAX_LEVELS];
    double level_flops[FS_VAE_MAX_LEVELS];
    size_t peak, arena;
    size_t resident;     /* most bytes resident at once (nn_ctx.resident_peak) */
    double flops;
} measured;

/* One sizing pass of strip `rank` with the given schemes. */
static fs_code measure(const fs_vae *v, int decode, const fs_strip_plan *plan, int rank, int h,
                       int w, const fs_vae_opts *o, const int *schemes, measured *out,
                       fs_error *err) {
    vfwd *f = calloc(1, sizeof *f);
    if (!f) return fs_fail(err, FS_ERR_NOMEM, "VAE: out of memory");
    fs_code rc = setup(f, v, plan, rank, h, w, o, decode, err);
    if (!rc) {
        static const float none[1];
        memcpy(f->scheme, schemes, sizeof f->scheme);
        f->nn.dry = 1;
        f->trace = NULL;
        rc = run(f, decode, none, (float *)none);
    }
    memset(out, 0, sizeof *out);
    for (int r = 0; r < f->levels && !rc; r++) {
        out->level_peak[r] = f->level_peak[r];
        out->level_flops[r] = f->level_flops[r];
        if (f->level_peak[r] > out->peak) out->peak = f->level_peak[r];
        out->flops += f->level_flops[r];
    }
    out->arena = f->nn.arena_peak;
    out->resident = f->nn.resident_peak;
    free(f);
    return rc;
}

/* The strips that can need the most: the first (most rows), the second
 * (interior, as many rows as any interior one) and the last. */
static fs_code measure_all(const fs_vae *v, int decode, const fs_strip_plan *plan, int h, int w,
                           const fs_vae_opts *o, const int *schemes, measured *worst,
                           fs_error *err) {
    int ranks[3] = {0, plan->parts > 2 ? 1 : 0, plan->parts - 1};
    memset(worst, 0, sizeof *worst);
    for (int i = 0; i < 3; i++) {
        if (i && ranks[i] == ranks[i - 1]) continue;
        measured m;
        fs_code rc = measure(v, decode, plan, ranks[i], h, w, o, schemes, &m, err);
        if (rc) return rc;
        for (int r = 0; r < FS_VAE_MAX_LEVELS; r++) {
            if (m.level_peak[r] > worst->level_peak[r]) worst->level_peak[r] = m.level_peak[r];
            if (m.level_flops[r] > worst->level_flops[r]) worst->level_flops[r] = m.level_flops[r];
        }
        if (m.peak > worst->peak) worst->peak = m.peak;
        if (m.flops > worst->flops) worst->flops = m.flops;
        if (m.arena > worst->arena) worst->arena = m.arena;
        if (m.resident > worst->resident) worst->resident = m.resident;
    }
    return FS_OK;
}

static fs_code choose(const fs_vae *v, int decode, const fs_strip_plan *plan, int h, int w,
                      const fs_vae_opts *o, int *schemes, measured *chosen, fs_error *err) {
    const int levels = v->config.levels;
    const char *what = decode ? "VAE decode" : "VAE encode";
    int force = o && o->force_scheme > 0 ? o->force_scheme : 0;
    if (force > VAE_SCHEMES)
        return fs_fail(err, FS_ERR_INVALID, "%s: scheme %d forced (1..%d)", what, force, VAE_SCHEMES);
    for (int r = 0; r < FS_VAE_MAX_LEVELS; r++) schemes[r] = force ? force - 1 : 0;
    if (!force && o && o->max_bytes) {
        measured m[VAE_SCHEMES];
        int all[FS_VAE_MAX_LEVELS];
        for (int k = 0; k < VAE_SCHEMES; k++) {
            for (int r = 0; r < FS_VAE_MAX_LEVELS; r++) all[r] = k;
            fs_code rc = measure_all(v, decode, plan, h, w, o, all, &m[k], err);
            if (rc) return rc;
        }
        for (int r = 0; r < levels; r++) {
            int best = -1;
            size_t least = SIZE_MAX;
            for (int k = 0; k < VAE_SCHEMES; k++) {
                if (m[k].level_peak[r] < least) least = m[k].level_peak[r];
                if (m[k].level_peak[r] <= o->max_bytes &&
                    (best < 0 || m[k].level_flops[r] < m[best].level_flops[r]))
                    best = k;
            }
            if (best < 0)
                return fs_fail(err, FS_ERR_NOMEM,
                               "%s: resolution level %d needs %.2f GB of activations with the "
                               "leanest scheme, %.2f GB allowed (use more ranks, or tiling)",
                               what, r, (double)least / 1e9, (double)o->max_bytes / 1e9);
            schemes[r] = best;
        }
    }
    fs_code rc = measure_all(v, decode, plan, h, w, o, schemes, chosen, err);
    if (!rc) {
        static const char *const names[VAE_SCHEMES] = {"S", "R", "HS+S", "HS+R", "THREE+S",
                                                       "THREE+R"};
        char line[256];
        size_t at = 0;
        for (int r = 0; r < levels && at < sizeof line; r++)
            at += (size_t)snprintf(line + at, sizeof line - at, " %d:%s (%.2f GB)", r,
                                   names[schemes[r]], (double)chosen->level_peak[r] / 1e9);
        fs_log(FS_LOG_DEBUG, "%s %dx%d latent, %d part(s): schemes per resolution%s; peak %.2f "
               "GB, %.3g FLOP per item", what, h, w, plan->parts, line,
               (double)chosen->peak / 1e9, chosen->flops);
    }
    if (!rc && !force && o && o->max_bytes && chosen->peak > o->max_bytes)
        rc = fs_fail(err, FS_ERR_NOMEM, "%s: %.2f GB of activations needed, %.2f GB allowed",
                     what, (double)chosen->peak / 1e9, (double)o->max_bytes / 1e9);
    return rc;
}

/* ---------------------------------------------------------------- running */

fs_code vae_strips(fs_vae *v, fs_comm *comm, const fs_strip_plan *plan, int h, int w, int n,
                   const float *in, float *out, const fs_vae_opts *opts, int decode,
                   fs_error *err) {
    const char *what = decode ? "VAE decode" : "VAE encode";
    if (n < 1) return fs_fail(err, FS_ERR_INVALID, "%s: batch %d", what, n);
    int rank = 0;
    if (plan->parts > 1) {
        if (!comm || fs_comm_size(comm) != plan->parts)
            return fs_fail(err, FS_ERR_INVALID,
                           "%s: the plan has %d parts but the communicator has %d rank(s)", what,
                           plan->parts, comm ? fs_comm_size(comm) : 0);
        rank = fs_comm_rank(comm);
    }
    int schemes[FS_VAE_MAX_LEVELS];
    measured worst;
    fs_code rc = choose(v, decode, plan, h, w, opts, schemes, &worst, err);
    if (rc) return rc;
    vfwd *f = calloc(1, sizeof *f);
    if (!f) return fs_fail(err, FS_ERR_NOMEM, "%s: out of memory", what);
    rc = setup(f, v, plan, rank, h, w, opts, decode, err);
    memcpy(f->scheme, schemes, sizeof f->scheme);
    f->nn.comm = comm;
    if (!rc) { /* this strip's own sizing pass: the arena */
        static const float none[1];
        f->nn.dry = 1;
        rc = run(f, decode, none, (float *)none);
    }
    if (!rc) {
        size_t cap = f->nn.arena_peak + 4096;
        memset(f->level_peak, 0, sizeof f->level_peak);
        memset(f->level_flops, 0, sizeof f->level_flops);
        f->nn = (nn_ctx){.what = f->nn.what, .comm = comm, .n = 1, .err = err};
        f->nn.arena = fs_arena_create(cap, err);
        if (!f->nn.arena) {
            rc = err && err->code ? err->code : FS_ERR_NOMEM;
            fs_error_prefix(err, "%s (%.1f MB of temporaries): ", what, (double)cap / 1e6);
        }
    }
    const fs_vae_config *c = &v->config;
    const int last = c->levels - 1, s = 1 << last;
    const nn_level *lvL = &f->lv[last];
    const size_t lat_item = (size_t)lvL->rows * lvL->w * (decode ? c->latent_channels
                                                                 : 2 * c->latent_channels);
    const size_t img_item = (size_t)lvL->rows * s * lvL->w * s *
                            (decode ? c->out_channels : c->in_channels);
    for (int b = 0; b < n && !rc; b++) {
        f->item = b;
        f->level = -1;
        rc = decode ? vae_decoder_run(f, in + b * lat_item, out + b * img_item)
                    : vae_encoder_run(f, in + b * img_item, out + b * lat_item);
    }
    fs_arena_destroy(f->nn.arena);
    free(f);
    return rc;
}

fs_code fs_vae_plan(const fs_vae *v, int decode, const fs_strip_plan *plan, int h, int w,
                    const fs_vae_opts *opts, size_t *bytes, double *flops, fs_error *err) {
    fs_error local = {0};
    if (!err) err = &local;
    if (!v || !plan) return fs_fail(err, FS_ERR_INVALID, "VAE plan: NULL model or plan");
    int schemes[FS_VAE_MAX_LEVELS];
    measured worst;
    fs_code rc = choose(v, decode, plan, h, w, opts, schemes, &worst, err);
    if (bytes) *bytes = rc ? 0 : worst.resident + 4096;
    if (flops) *flops = rc ? 0 : worst.flops;
    return rc;
}

/* ---------------------------------------------------------------- latents */

fs_code fs_vae_sample(const fs_vae_config *c, int n, int h, int w, int row0, int rows,
                      const float *moments, const float *noise, uint64_t seed, uint64_t stream,
                      float *latent) {
    const fs_backend *be = fs_backend_cpu();
    const int L = c->latent_channels;
    const size_t row = (size_t)w * L;
    fs_error err = {0};
    float *eps = noise ? NULL : malloc(row * sizeof(float));
    if (!noise && !eps) return FS_ERR_NOMEM;
    fs_code rc = FS_OK;
    for (int b = 0; b < n && !rc; b++)
        for (int y = 0; y < rows && !rc; y++) {
            const size_t at = ((size_t)b * rows + y) * row;
            const float *nz = noise ? noise + at : eps;
            if (!noise)   /* one row of eps at a time: the row's global index keys it */
                rc = be->op->noise_fill(be, eps, row, seed, stream,
                                        ((uint64_t)b * h + row0 + y) * row, &err);
            if (!rc)
                rc = be->op->posterior_sample(be, moments + 2 * at, nz, (size_t)w, L,
                                              c->shift_factor, c->scaling_factor, latent + at,
                                              &err);
        }
    free(eps);
    return rc;
}

fs_code fs_vae_unscale(const fs_vae_config *c, const float *latent, float *z, size_t count) {
    const fs_backend *be = fs_backend_cpu();
    fs_error err = {0};
    return be->op->latent_unscale(be, latent, z, count, c->scaling_factor, c->shift_factor, &err);
}
