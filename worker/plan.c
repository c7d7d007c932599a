/* worker/plan.c: a render's memory and work per rank, before any work.
 *
 * The activations come from the networks' own sizing passes (the UNet's dry
 * forward with the very fs_unet_freescale the render passes at each step,
 * fs_vae_plan with the render's VAE options), so they cannot drift from the
 * code. Around them, a replay of run_stages (worker/render.c) holds and
 * drops the buffers the render holds, with the same sizes in the same
 * order, and keeps the peaks of each phase and of each stage's measuring
 * window (render.c's stage_begin / stage_end). If render.c, stage.c or
 * images.c change what they hold, this replay must follow. */
#include <stdlib.h>
#include <string.h>
#include "worker/render_internal.h"

#define F(n) ((size_t)(n) * sizeof(float))

/* Counted bytes held now, the window's peak, and the current phase's peak. */
typedef struct sim {
    size_t cur, peak, phase;
} sim;

static void hold(sim *m, size_t b) {
    m->cur += b;
    if (m->cur > m->peak) m->peak = m->cur;
    if (m->cur > m->phase) m->phase = m->cur;
}
static void drop(sim *m, size_t b) { m->cur -= b; }
/* An activation arena that lives only inside a call. */
static void transient(sim *m, size_t b) {
    hold(m, b);
    drop(m, b);
}
static size_t phase_end(sim *m) {
    size_t p = m->phase;
    m->phase = m->cur;
    return p;
}
static size_t max_sz(size_t a, size_t b) { return a > b ? a : b; }

typedef struct planner {
    const fs_job *job;
    const fs_unet *unet;
    const fs_vae *vae;
    int ranks, levels, batch, ctx_len, base_h, base_w;
    fs_strip_plan plans[FS_JOB_MAX_STAGES];   /* latent strips of each stage */
    fs_error *err;
} planner;

/* Prompt chunks as fs_sdxl_condition_text makes them: the longest of both
 * tokenizers' windows of the prompt and (when there is one) the negative. */
static fs_code prompt_chunks(const fs_job *job, const fs_tokenizer *tl, const fs_tokenizer *tg,
                             int *chunks, fs_error *err) {
    *chunks = 1;
    const char *text[2] = {job->prompt, job->negative_prompt};
    for (int i = 0; i < (job->negative_prompt[0] ? 4 : 2); i++) {
        int32_t *ids = NULL;
        int k = 0;
        fs_code rc = fs_tokenize_chunks(i % 2 ? tg : tl, i % 2 ? FS_TOK_OPENCLIP : FS_TOK_CLIP_L,
                                        text[i / 2], &ids, &k, err);
        free(ids);
        if (rc) return rc;
        if (k > *chunks) *chunks = k;
    }
    return FS_OK;
}

/* The UNet over stage s's steps: arena and FLOPs of the largest step on the
 * strips that can need the most (first, an interior one, last). Only the
 * dilation changes the pass from step to step (the step index moves scale
 * fusion's windows, not their count), so each factor is sized once. */
static fs_code unet_stage(planner *p, fs_stage_plan *sp) {
    const fs_job *job = p->job;
    const fs_strip_plan *plan = &p->plans[sp->stage];
    int ranks[3] = {0, plan->parts > 2 ? 1 : 0, plan->parts - 1};
    int seen[FS_JOB_MAX_STAGES + 2], nseen = 0;
    double seen_flops[FS_JOB_MAX_STAGES + 2];
    for (int i = sp->first_step; i < job->steps; i++) {
        fs_unet_freescale f =
            render_unet_settings(job, sp->stage, i, sp->lat_w, p->base_h, p->base_w);
        int k = 0;
        while (k < nseen && seen[k] != f.dilation) k++;
        if (k == nseen) {
            if (nseen == FS_JOB_MAX_STAGES + 2)
                return fs_fail(p->err, FS_ERR_INVALID, "plan: too many dilation factors");
            seen[k] = f.dilation, seen_flops[k] = 0, nseen++;
            for (int q = 0; q < 3; q++) {
                if (q && ranks[q] == ranks[q - 1]) continue;
                size_t b = 0;
                double fl = 0;
                fs_code rc = fs_unet_forward_cost(p->unet, plan, ranks[q], sp->lat_h, sp->lat_w,
                                                  p->batch, p->ctx_len, &f, &b, &fl, p->err);
                if (rc) {
                    fs_error_prefix(p->err, "plan, stage %d, step %d: ", sp->stage, i);
                    return rc;
                }
                sp->unet_act_bytes = max_sz(sp->unet_act_bytes, b);
                if (fl > seen_flops[k]) seen_flops[k] = fl;
            }
            if (f.dilation > sp->max_dilation) sp->max_dilation = f.dilation;
            if (seen_flops[k] > sp->unet_flops) sp->unet_flops = seen_flops[k];
        }
        sp->stage_flops += seen_flops[k];
    }
    return FS_OK;
}

/* Activation bytes of one decode (or encode) of stage s's latent, as
 * fs_vae_decode / fs_vae_encode take them with the render's options. In
 * tiled mode, when diffusers' tiling is on for this size (vae/tiled.c's
 * rule), every rank runs each tile as a strip pass of its own and holds
 * the whole input and two rows of whole tiles: those are added here. */
static fs_code vae_stage(planner *p, const fs_stage_plan *sp, int decode, size_t *bytes) {
    const fs_vae_config *c = &fs_vae_get_info(p->vae)->config;
    const int s = sp->stage, h = sp->lat_h, w = sp->lat_w;
    const fs_strip_plan *plan = &p->plans[s];
    fs_vae_opts o = render_vae_opts(p->job);
    const int f = 1 << (c->levels - 1), ts = o.tile_sample ? o.tile_sample : c->sample_size;
    const int tl = ts / f;
    fs_code rc;
    if (o.tiled && (w > tl || h > tl)) {
        double ov = o.tile_overlap > 0 ? (double)o.tile_overlap : 0.25;
        int th = h < tl ? h : tl, tw = w < tl ? w : tl;
        fs_strip_plan tp;
        rc = fs_strip_plan_make(th, th >= p->ranks ? p->ranks : 1, 1, &tp, p->err);
        fs_vae_opts one = o;
        one.tiled = 0;
        if (!rc) rc = fs_vae_plan(p->vae, decode, &tp, th, tw, &one, bytes, NULL, p->err);
        int step = (int)((decode ? tl : ts) * (1.0 - ov));
        step = step > 0 ? step : 1;
        int cols = ((decode ? w : w * f) + step - 1) / step;
        size_t tile_out = decode ? F((size_t)64 * th * tw * c->out_channels)
                                 : F((size_t)th * tw * 2 * c->latent_channels);
        size_t input = decode ? F((size_t)h * w * c->latent_channels)
                              : F((size_t)64 * h * w * c->in_channels);
        *bytes += 2 * (size_t)cols * tile_out + (p->ranks > 1 ? input : 0);
    } else {
        rc = fs_vae_plan(p->vae, decode, plan, h, w, &o, bytes, NULL, p->err);
    }
    if (rc) fs_error_prefix(p->err, "plan, stage %d, VAE %s: ", s, decode ? "decode" : "encode");
    return rc;
}

/* render_decode of stage s: latent copy, image strip, the decoder's arena.
 * The image strip stays held (the caller drops it). Returns its bytes. */
static size_t sim_decode(sim *m, const fs_stage_plan *sp, size_t *img_bytes) {
    size_t lat = F((size_t)sp->max_rows * sp->lat_w * 4);
    size_t pix = F((size_t)64 * sp->max_rows * sp->lat_w * 3);
    lat = lat ? lat : F(1), pix = pix ? pix : F(1);
    hold(m, lat);
    hold(m, pix);
    transient(m, sp->decode_act_bytes);
    drop(m, lat);
    *img_bytes = max_sz(*img_bytes, lat + pix);
    return pix;
}

/* The sampler loop of a stage: batch in and out, the stage noise (later
 * stages), the UNet's arena. */
static void sim_loop(sim *m, const planner *p, fs_stage_plan *sp, int later) {
    size_t per = (size_t)sp->max_rows * sp->lat_w * 4, n = (size_t)p->batch;
    size_t bufs = 2 * F((per ? per : 1) * n) + (later ? F(per ? per : 1) : 0);
    if (sp->evals == 0) return;
    hold(m, bufs);
    transient(m, sp->unet_act_bytes);
    drop(m, bufs);
    sp->latent_bytes += bufs;
}

static void replay(planner *p, fs_job_plan *jp) {
    const fs_job *job = p->job;
    int ns = jp->n_stages;
    sim m = {jp->unet_weight_bytes + jp->cond_bytes, 0, 0};
    int vae_held = 0;
#define NEED_VAE() do { if (!vae_held) { hold(&m, jp->vae_weight_bytes); vae_held = 1; } } while (0)
    fs_stage_plan *s0 = &jp->stage[0];
    size_t x_prev = F((size_t)s0->max_rows * s0->lat_w * 4);
    hold(&m, x_prev);
    m.peak = m.phase = m.cur;   /* stage_begin: the window counts from here */
    s0->latent_bytes = x_prev;
    if (job->input_image[0]) {
        size_t img = F((size_t)64 * s0->max_rows * s0->lat_w * 3 + 1);
        size_t mom = F((size_t)s0->max_rows * s0->lat_w * 8 + 1);
        NEED_VAE();
        hold(&m, img + mom);
        transient(&m, s0->encode_act_bytes);
        drop(&m, img + mom);
        s0->image_bytes = img + mom;
        s0->peak_vae = phase_end(&m);
    } else {
        sim_loop(&m, p, s0, 0);
        s0->peak_unet = phase_end(&m);
    }
    if (ns > 1) s0->peak_window = m.peak;
    for (int s = 1; s < ns; s++) {
        fs_stage_plan *prev = &jp->stage[s - 1], *sp = &jp->stage[s];
        size_t img = 0;
        phase_end(&m);
        if (job->stage_outputs || !job->upsample_latent) {
            NEED_VAE();
            img = sim_decode(&m, prev, &prev->image_bytes);
            prev->peak_vae = max_sz(prev->peak_vae, phase_end(&m));
        }
        m.peak = m.phase = m.cur;   /* stage_begin */
        size_t x = F((size_t)sp->max_rows * sp->lat_w * 4), per = x ? x : F(1);
        size_t z = F((size_t)sp->max_rows * sp->lat_w * 4 + 1);
        hold(&m, per + z);
        if (job->upsample_latent) {
            transient(&m, F((size_t)prev->lat_h * prev->lat_w * 4));
            sp->image_bytes = img + F((size_t)prev->lat_h * prev->lat_w * 4);
        } else {
            size_t full = F((size_t)64 * prev->lat_h * prev->lat_w * 3);
            size_t mine = F((size_t)64 * sp->max_rows * sp->lat_w * 3 + 1);
            size_t mom = F((size_t)sp->max_rows * sp->lat_w * 8 + 1);
            hold(&m, mine);
            transient(&m, full);            /* the gathered previous image */
            hold(&m, mom);
            transient(&m, sp->encode_act_bytes);
            drop(&m, mine + mom);
            sp->image_bytes = img + mine + max_sz(full, mom);
        }
        drop(&m, img);
        sp->peak_vae = phase_end(&m);
        size_t mask = job->mask[0] ? F((size_t)sp->max_rows * sp->lat_w + 1) : 0;
        hold(&m, mask);
        sim_loop(&m, p, sp, 1);
        sp->peak_unet = phase_end(&m);
        sp->latent_bytes += per + z + mask + x_prev;
        drop(&m, z + mask + x_prev);
        x_prev = per;
        if (s < ns - 1) sp->peak_window = m.peak;
    }
    /* the UNet's weights go before the last decode */
    fs_stage_plan *last = &jp->stage[ns - 1];
    drop(&m, jp->unet_weight_bytes);
    phase_end(&m);
    NEED_VAE();
    size_t img = sim_decode(&m, last, &last->image_bytes);
    drop(&m, img);
    last->peak_vae = max_sz(last->peak_vae, phase_end(&m));
    last->peak_window = m.peak;
#undef NEED_VAE
}

static fs_code plan_job(planner *pp, const fs_job *job, const fs_unet *u, const fs_clip *cl,
                        const fs_clip *cg, const fs_vae *v, const fs_tokenizer *tl,
                        const fs_tokenizer *tg, int ranks, fs_job_plan *jp, fs_error *err) {
    fs_code rc = FS_OK;
    pp->job = job, pp->unet = u, pp->vae = v, pp->ranks = ranks, pp->err = err;
    pp->levels = fs_unet_get_info(u)->config.levels;
    pp->batch = render_batch(job);
    jp->ranks = ranks, jp->batch = pp->batch;
    jp->n_stages = job->n_stages > 0 ? job->n_stages : 1;
    if ((rc = prompt_chunks(job, tl, tg, &jp->chunks, err))) return rc;
    pp->ctx_len = jp->chunks * 77;

    /* the rank counts every stage can be cut into */
    int align = 1 << (pp->levels - 1);
    jp->max_ranks = FS_MAX_RANKS;
    for (int s = 0; s < jp->n_stages; s++) {
        int w, h;
        render_stage_size(job, s, &w, &h);
        int units = (h / 8 + align - 1) / align;
        if (units < jp->max_ranks) jp->max_ranks = units;
    }
    if (ranks < 1 || ranks > jp->max_ranks)
        return fs_fail(err, FS_ERR_RANGE, "%d rank(s): impossible; every rank needs at least "
                       "one group of %d latent rows (%d px) of every stage, so at most %d "
                       "rank(s) for this job", ranks, align, 8 * align, jp->max_ranks);

    /* weights as held: f32 (rounded to the job's precision in place) */
    jp->text_params = fs_clip_get_info(cl)->params + fs_clip_get_info(cg)->params;
    jp->unet_params = fs_unet_get_info(u)->params;
    jp->vae_params = fs_vae_get_info(v)->params;
    jp->text_weight_bytes = F(jp->text_params);
    jp->unet_weight_bytes = F(jp->unet_params);
    jp->vae_weight_bytes = F(jp->vae_params);

    /* text phase (text/sdxl_text.c, text/clip.c): the conditioning, then per
     * branch both encoders' outputs and one encoder's activations at a time */
    const fs_clip_config *ccl = &fs_clip_get_info(cl)->config;
    const fs_clip_config *ccg = &fs_clip_get_info(cg)->config;
    int k = jp->chunks;
    jp->cond_bytes = F(2 * fs_sdxl_context_floats(cl, cg, k) + 2 * fs_sdxl_y_floats(cg));
    size_t outs = F((size_t)k * ccl->positions * ccl->width +
                    (size_t)k * ccg->positions * ccg->width + (size_t)k * ccg->projection);
    jp->text_act_bytes = outs + max_sz(fs_clip_encode_bytes(cl, k), fs_clip_encode_bytes(cg, k));
    jp->peak_text = jp->text_weight_bytes + jp->cond_bytes + jp->text_act_bytes;

    for (int s = 0; !rc && s < jp->n_stages; s++) {
        fs_stage_plan *sp = &jp->stage[s];
        sp->stage = s;
        render_stage_size(job, s, &sp->img_w, &sp->img_h);
        sp->lat_w = sp->img_w / 8, sp->lat_h = sp->img_h / 8;
        if (s == 0) pp->base_h = sp->lat_h, pp->base_w = sp->lat_w;
        rc = render_strip_plan(sp->lat_h, ranks, pp->levels, &pp->plans[s], err);
        if (rc) break;
        sp->max_rows = sp->min_rows = fs_strip_rows(&pp->plans[s], 0);
        for (int q = 1; q < ranks; q++) {
            int r = fs_strip_rows(&pp->plans[s], q);
            if (r > sp->max_rows) sp->max_rows = r;
            if (r < sp->min_rows) sp->min_rows = r;
        }
        sp->max_dilation = 1;
        sp->first_step = s > 0 ? job->restart_step : 0;
        sp->evals = s == 0 && job->input_image[0] ? 0 : job->steps - sp->first_step;
        if (sp->evals) rc = unet_stage(pp, sp);
        if (!rc) rc = vae_stage(pp, sp, 1, &sp->decode_act_bytes);
        int encodes = s > 0 ? !job->upsample_latent : job->input_image[0] != 0;
        if (!rc && encodes) rc = vae_stage(pp, sp, 0, &sp->encode_act_bytes);
    }
    if (rc) return rc;
    replay(pp, jp);
    jp->peak_bytes = jp->peak_text;
    for (int s = 0; s < jp->n_stages; s++) {
        fs_stage_plan *sp = &jp->stage[s];
        sp->peak_bytes = max_sz(sp->peak_unet, sp->peak_vae);
        jp->peak_bytes = max_sz(jp->peak_bytes, sp->peak_bytes);
    }
    return FS_OK;
}

fs_code fs_worker_plan(const fs_job *job, fs_models *models, int ranks, fs_job_plan *jp,
                       fs_error *err) {
    memset(jp, 0, sizeof *jp);
    const fs_clip *cl, *cg;
    const fs_unet *u;
    const fs_vae *v;
    const fs_tokenizer *tl, *tg;
    fs_code rc = fs_models_shapes(models, &cl, &cg, &u, &v, &tl, &tg, err);
    if (rc) return rc;
    planner *pp = calloc(1, sizeof *pp);   /* 8 strip plans of 16 KB: off the stack */
    if (!pp) return fs_fail(err, FS_ERR_NOMEM, "plan: out of memory");
    rc = plan_job(pp, job, u, cl, cg, v, tl, tg, ranks, jp, err);
    free(pp);
    return rc;
}
