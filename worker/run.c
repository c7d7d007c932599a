/* worker/run.c: what the render's files stand on, for a real run and for a
 * dry one (the plan) alike: buffers, the networks' calls, the phases and
 * measuring windows, agreement and progress across ranks.
 *
 * In a dry run every buffer is counted in the ledger instead of allocated,
 * and every network call is that network's own sizing pass (the UNet's dry
 * forward with the very settings of the step, fs_vae_plan with the render's
 * VAE options), so `plan` is the render's own code with the data left out. */
#include <stdlib.h>
#include <string.h>
#include "worker/render_internal.h"

#define F(n) ((size_t)(n) * sizeof(float))
static size_t max_sz(size_t a, size_t b) { return a > b ? a : b; }

/* ---------------------------------------------------------------- buffers */

/* A dry run's token: the bytes it stands for, never the data. */
typedef struct dry_token {
    size_t bytes;
} dry_token;

static void led_hold(render_run *r, size_t b) {
    run_ledger *m = &r->led;
    m->cur += b;
    if (m->cur > m->peak) m->peak = m->cur;
    if (m->cur > m->phase) m->phase = m->cur;
}

float *run_floats(render_run *r, size_t count) {
    size_t bytes = F(count ? count : 1);
    if (!r->dry) {
        float *p = fs_alloc(bytes);
        if (!p) fs_fail(r->err, FS_ERR_NOMEM, "render: out of memory for %zu MB", bytes >> 20);
        return p;
    }
    dry_token *t = malloc(sizeof *t);
    if (!t) { fs_fail(r->err, FS_ERR_NOMEM, "plan: out of memory"); return NULL; }
    t->bytes = bytes;
    led_hold(r, bytes);
    return (float *)(void *)t;
}

void run_free(render_run *r, void *p) {
    if (!p) return;
    if (!r->dry) { fs_free(p); return; }
    r->led.cur -= ((dry_token *)p)->bytes;
    free(p);
}

void run_hold(render_run *r, size_t bytes) { if (r->dry) led_hold(r, bytes); }
void run_drop(render_run *r, size_t bytes) { if (r->dry) r->led.cur -= bytes; }
/* An arena that lives only inside a call. */
static void transient(render_run *r, size_t bytes) {
    led_hold(r, bytes);
    r->led.cur -= bytes;
}

/* ---------------------------------------------------------------- phases */

void run_phase(render_run *r, run_phase_kind kind, int stage) {
    if (!r->dry) return;
    size_t p = r->led.phase;
    r->led.phase = r->led.cur;
    if (r->phase != RUN_PHASE_NONE) {
        fs_stage_plan *sp = &r->plan->stage[r->phase_stage];
        if (r->phase == RUN_PHASE_UNET) sp->peak_unet = max_sz(sp->peak_unet, p);
        else sp->peak_vae = max_sz(sp->peak_vae, p);
    }
    r->phase = kind, r->phase_stage = stage;
}

void run_window_begin(render_run *r) {
    if (r->dry) {
        r->led.peak = r->led.cur;
        return;
    }
    r->stage_t0 = fs_now();
    fs_mem_reset_peak();
    r->rss_resettable = fs_mem_reset_peak_rss() == 0;
}

void run_window_end(render_run *r, int s) {
    if (r->dry) {
        r->plan->stage[s].peak_window = r->led.peak;
        return;
    }
    r->stats->stage_seconds[s] = fs_now() - r->stage_t0;
    r->stats->stage_peak_alloc[s] = fs_mem_peak();
    r->stats->stage_peak_rss[s] = r->rss_resettable ? fs_mem_peak_rss() : 0;
}

/* ---------------------------------------------------------------- ranks */

fs_code render_agree(render_run *r, fs_code rc) {
    if (r->dry) return rc;
    int failed = rc != FS_OK;
    fs_error e2 = {0};
    if (fs_comm_allreduce_max_int(r->comm, &failed, &e2))
        return rc ? rc : fs_fail(r->err, e2.code, "%s", e2.msg);
    if (failed && !rc)
        return fs_fail(r->err, FS_ERR_COMM, "render stopped: another rank failed (its message "
                       "is in its own output)");
    return rc;
}

fs_code render_progress(render_run *r, const char *phase, int stage, int step, int steps) {
    if (r->dry) return FS_OK;
    int s = 0;
    const fs_render_hooks *hk = r->hooks;
    if (r->rank == 0 && hk && hk->on_progress)
        s = hk->on_progress(hk->user, phase, stage, r->job->n_stages, step, steps) != 0;
    fs_code rc = r->comm ? fs_comm_bcast(r->comm, &s, sizeof s, 0, r->err) : FS_OK;
    r->stop = r->stop || s;
    return rc;
}

fs_code stage_map_make(render_run *r, int stage, int width, int height, stage_map *m) {
    memset(m, 0, sizeof *m);
    m->stage = stage, m->h = height / r->den.vae_factor, m->w = width / r->den.vae_factor;
    m->plan = calloc(1, sizeof *m->plan);
    if (!m->plan) return fs_fail(r->err, FS_ERR_NOMEM, "render: out of memory");
    fs_code rc = fs_strip_plan_make(m->h, r->size, r->den.row_align, m->plan, r->err);
    if (rc) {
        fs_error_prefix(r->err, "stage %d (%dx%d) on %d ranks: ", stage, width, height, r->size);
        return rc;
    }
    m->x = run_floats(r, (size_t)stage_rows(r, m) * m->w * r->den.latent_channels);
    return m->x ? FS_OK : r->err->code;
}

void stage_map_free(render_run *r, stage_map *m) {
    run_free(r, m->x);
    free(m->plan);
    memset(m, 0, sizeof *m);
}

/* ---------------------------------------------------------------- networks */

/* Dry: the networks' shapes as fs_models_open bound them (no weight read). */
static fs_code shapes(render_run *r, const fs_unet **u, const fs_vae **v) {
    const fs_clip *cl, *cg;
    const fs_tokenizer *tl, *tg;
    return fs_models_shapes(r->models, &cl, &cg, u, v, &tl, &tg, r->err);
}

fs_code run_unet_load(render_run *r) {
    if (r->unet) return FS_OK;
    if (!r->dry) return fs_models_unet(r->models, &r->unet, r->err);
    const fs_unet *u;
    const fs_vae *v;
    fs_code rc = shapes(r, &u, &v);
    if (rc) return rc;
    r->unet = (fs_unet *)u;   /* shapes only: the sizing passes read no weight */
    run_hold(r, r->plan->unet_weight_bytes);
    transient(r, fs_unet_load_scratch(u));   /* the loader's piece buffers */
    return FS_OK;
}

void run_unet_drop(render_run *r) {
    if (!r->unet) return;
    if (r->dry) run_drop(r, r->plan->unet_weight_bytes);
    else fs_models_drop_unet(r->models);
    r->unet = NULL;
}

fs_code run_vae_load(render_run *r) {
    if (r->vae) return FS_OK;
    if (!r->dry) return fs_models_vae(r->models, &r->vae, r->err);
    const fs_unet *u;
    const fs_vae *v;
    fs_code rc = shapes(r, &u, &v);
    if (rc) return rc;
    r->vae = (fs_vae *)v;
    run_hold(r, r->plan->vae_weight_bytes);
    transient(r, fs_vae_load_scratch(v));   /* the loader's piece buffers */
    return FS_OK;
}

fs_vae_opts render_vae_opts(const fs_job *job) {
    fs_vae_opts o;
    memset(&o, 0, sizeof o);
    o.tiled = job->vae_tiling;
    o.force_scheme = -1;
    return o;
}

fs_unet_freescale render_unet_settings(const fs_job *job, int stage, int i, int lat_w,
                                       int base_h, int base_w) {
    fs_unet_freescale f;
    memset(&f, 0, sizeof f);
    f.dilation = 1;
    f.blur = (fs_blur_kind)job->blur;
    f.blur_sigma = job->blur_sigma;
    f.base_h = base_h, f.base_w = base_w;
    f.fast_mode = job->fast_mode;
    f.jitter_seed = job->seed;
    f.jitter_stream = FS_STREAM_JITTER(stage);
    f.step = i;
    f.freeu.on = job->freeu;
    f.freeu.b1 = job->freeu_b1, f.freeu.b2 = job->freeu_b2;
    f.freeu.s1 = job->freeu_s1, f.freeu.s2 = job->freeu_s2;
    if (stage > 0) {
        f.fusion = job->scale_fusion;
        if (job->dilation)
            f.dilation = fs_cascade_dilation(stage, i, job->dilate_tau, lat_w, base_w);
    }
    return f;
}

/* The UNet's sizing pass for step i of stage m->stage: the arena and FLOPs
 * of the strips that can need the most (first, an interior one, last). Only
 * the dilation changes the pass from step to step (the step index moves
 * scale fusion's windows, not their count), so each factor is sized once
 * per stage and its FLOPs reused. */
static fs_code unet_size(render_run *r, const stage_map *m, int n, int ctx_len,
                         const fs_unet_freescale *f) {
    fs_stage_plan *sp = &r->plan->stage[m->stage];
    int s = m->stage, k = 0;
    while (k < r->unet_nseen[s] && r->unet_seen_dil[s][k] != f->dilation) k++;
    if (k == r->unet_nseen[s]) {
        if (k == 8) return fs_fail(r->err, FS_ERR_INVALID, "plan: too many dilation factors");
        const fs_strip_plan *plan = m->plan;
        int ranks[3] = {0, plan->parts > 2 ? 1 : 0, plan->parts - 1};
        double flops = 0;
        for (int q = 0; q < 3; q++) {
            if (q && ranks[q] == ranks[q - 1]) continue;
            size_t b = 0;
            double fl = 0;
            fs_code rc = fs_unet_forward_cost(r->unet, plan, ranks[q], m->h, m->w, n, ctx_len,
                                              f, &b, &fl, r->err);
            if (rc) return rc;
            sp->unet_act_bytes = max_sz(sp->unet_act_bytes, b);
            if (fl > flops) flops = fl;
        }
        r->unet_seen_dil[s][k] = f->dilation, r->unet_seen_flops[s][k] = flops;
        r->unet_nseen[s]++;
        if (f->dilation > sp->max_dilation) sp->max_dilation = f->dilation;
        if (flops > sp->unet_flops) sp->unet_flops = flops;
    }
    sp->stage_flops += r->unet_seen_flops[s][k];
    sp->evals++;
    transient(r, sp->unet_act_bytes);
    return FS_OK;
}

fs_code run_unet_eval(render_run *r, const stage_map *m, int step, int n, const float *xin,
                      const float *t, const float *ctx, int ctx_len, const float *y, float *eps) {
    fs_unet_freescale f = render_unet_settings(r->job, m->stage, step, m->w, r->base_h, r->base_w);
    fs_code rc;
    if (r->dry) rc = unet_size(r, m, n, ctx_len, &f);
    else rc = fs_unet_forward_fs(r->unet, r->comm, m->plan, m->h, m->w, n, xin, t, ctx, ctx_len,
                                 y, eps, NULL, &f, r->err);
    if (rc) fs_error_prefix(r->err, "stage %d, step %d: ", m->stage, step);
    return rc;
}

/* Activation bytes of one decode (or encode) of m's latent, as fs_vae_decode
 * / fs_vae_encode take them with the render's options. In tiled mode, when
 * diffusers' tiling is on for this size (vae/tiled.c's rule), every rank runs
 * each tile as a strip pass of its own and holds the whole input and two
 * rows of whole tiles: those are added here. */
static fs_code vae_size(render_run *r, const stage_map *m, int decode, size_t *bytes) {
    const fs_vae_config *c = &fs_vae_get_info(r->vae)->config;
    const int h = m->h, w = m->w, ranks = m->plan->parts;
    fs_vae_opts o = render_vae_opts(r->job);
    const int f = 1 << (c->levels - 1), ts = o.tile_sample ? o.tile_sample : c->sample_size;
    const int tl = ts / f;
    fs_code rc;
    if (o.tiled && (w > tl || h > tl)) {
        double ov = o.tile_overlap > 0 ? (double)o.tile_overlap : 0.25;
        int th = h < tl ? h : tl, tw = w < tl ? w : tl;
        fs_strip_plan tp;
        rc = fs_strip_plan_make(th, th >= ranks ? ranks : 1, 1, &tp, r->err);
        fs_vae_opts one = o;
        one.tiled = 0;
        if (!rc) rc = fs_vae_plan(r->vae, decode, &tp, th, tw, &one, bytes, NULL, r->err);
        int step = (int)((decode ? tl : ts) * (1.0 - ov));
        step = step > 0 ? step : 1;
        int cols = ((decode ? w : w * f) + step - 1) / step;
        size_t tile_out = decode ? F((size_t)f * f * th * tw * c->out_channels)
                                 : F((size_t)th * tw * 2 * c->latent_channels);
        size_t input = decode ? F((size_t)h * w * c->latent_channels)
                              : F((size_t)f * f * h * w * c->in_channels);
        *bytes += 2 * (size_t)cols * tile_out + (ranks > 1 ? input : 0);
    } else {
        rc = fs_vae_plan(r->vae, decode, m->plan, h, w, &o, bytes, NULL, r->err);
    }
    if (rc) fs_error_prefix(r->err, "stage %d, VAE %s: ", m->stage, decode ? "decode" : "encode");
    return rc;
}

/* decode: z -> img; else img -> moments. */
fs_code run_vae(render_run *r, const stage_map *m, int decode, const float *in, float *out) {
    if (!r->dry) {
        fs_vae_opts o = render_vae_opts(r->job);
        return decode ? fs_vae_decode(r->vae, r->comm, m->plan, m->h, m->w, 1, in, out, &o, r->err)
                      : fs_vae_encode(r->vae, r->comm, m->plan, m->h, m->w, 1, in, out, &o, r->err);
    }
    size_t b = 0;
    fs_code rc = vae_size(r, m, decode, &b);
    fs_stage_plan *sp = &r->plan->stage[m->stage];
    size_t *act = decode ? &sp->decode_act_bytes : &sp->encode_act_bytes;
    *act = max_sz(*act, b);
    if (!rc) transient(r, b);
    return rc;
}
