/* worker/render.c: a render as an explicit state, advanced one step at a
 * time: the conditioning and stage 0's starting latent when it begins, then
 * each call either one sampler step, or one stage change (decode, upsample,
 * re-noise: worker/images.c, worker/stage.c), or the final decode.
 * fs_worker_render is the loop over it; fs_worker_plan (worker/plan.c) runs
 * the same loop dry. Exactness: every rank computes the conditioning itself
 * from the same ids (same bits), the sampler is elementwise, the networks
 * are exact across splits, and every random number is keyed by global index,
 * so a state carries everything the continuation reads except what is
 * recomputed from the job (conditioning, the stage's noise, the mask). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "worker/render_internal.h"

#define F(n) ((size_t)(n) * sizeof(float))
static size_t max_sz(size_t a, size_t b) { return a > b ? a : b; }

struct fs_render {
    render_run run;
    fs_render_stats st;
    int step;                    /* the next sampler step of run.cur.stage */
    int done;                    /* the final image is out */
    double t_stages;
};

/* ---------------------------------------------------------------- conditioning */

/* Dry: the text phase's figures and the weights of every network as held
 * (f32: rounded to the job's precision in place). */
static fs_code condition_dry(render_run *r) {
    const fs_clip *cl, *cg;
    const fs_unet *u;
    const fs_vae *v;
    const fs_tokenizer *tl, *tg;
    fs_job_plan *jp = r->plan;
    fs_condition_plan cp = {0};
    fs_code rc = fs_models_shapes(r->models, &cl, &cg, &u, &v, &tl, &tg, r->err);
    if (!rc) rc = fs_models_condition_plan(r->models, r->job, &cp, r->err);
    if (rc) return rc;
    r->chunks = jp->chunks = cp.chunks;
    jp->text_params = cp.text_params;
    jp->unet_params = fs_unet_get_info(u)->params;
    jp->vae_params = fs_vae_get_info(v)->params;
    jp->text_weight_bytes = cp.weight_bytes;
    jp->unet_weight_bytes = F(jp->unet_params);
    jp->vae_weight_bytes = F(jp->vae_params);
    jp->cond_bytes = cp.cond_bytes;
    jp->text_act_bytes = cp.act_bytes;
    jp->peak_text = cp.weight_bytes + max_sz(cp.load_bytes, cp.cond_bytes + cp.act_bytes);
    run_hold(r, jp->cond_bytes);   /* kept through the stages */
    return FS_OK;
}

static fs_code condition(render_run *r) {
    if (r->dry) return condition_dry(r);
    return fs_models_condition(r->models, r->job, &r->context, &r->y, &r->chunks, r->err);
}

/* ---------------------------------------------------------------- stages */

static void report_latent(render_run *r) {
    const stage_map *m = &r->cur;
    if (!r->dry && r->hooks && r->hooks->on_latent)
        r->hooks->on_latent(r->hooks->user, m->stage, m->x, m->plan->row0[r->rank],
                            stage_rows(r, m), m->h, m->w);
}

static int n_stages(const fs_job *job) { return job->n_stages > 0 ? job->n_stages : 1; }
static int first_step(const fs_job *job, int stage) { return stage > 0 ? job->restart_step : 0; }

/* Stage 0's starting latent: the seeded noise (or the job's noise file), or
 * the job's input image encoded (then stage 0 has no steps to run). */
static fs_code enter_stage0(fs_render *R) {
    render_run *r = &R->run;
    const fs_job *job = r->job;
    int w0, h0;
    render_stage_size(job, 0, &w0, &h0);
    fs_code rc = stage_map_make(r, 0, w0, h0, &r->cur);
    r->base_h = r->cur.h, r->base_w = r->cur.w;
    run_window_begin(r);
    rc = render_agree(r, rc);
    if (!rc) rc = inputs_read(r, &r->cur, 1);
    if (!rc && job->input_image[0]) {
        run_phase(r, RUN_PHASE_VAE, 0);
        R->step = job->steps;
        rc = render_input_image(r, &r->cur);
    } else if (!rc) {
        run_phase(r, RUN_PHASE_UNET, 0);
        R->step = 0;
        rc = render_agree(r, stage_initial_noise(r));
    }
    return rc;
}

/* The current stage's loop is over: its working set goes, its latent is reported. */
static void leave_loop(fs_render *R) {
    render_run *r = &R->run;
    stage_work_free(r);
    run_free(r, r->z);
    r->z = NULL;
    if (!r->stop) report_latent(r);
    if (r->cur.stage < n_stages(r->job) - 1) run_window_end(r, r->cur.stage);
}

/* From the finished stage s to stage s + 1: the previous image (for RGB
 * upsampling and for its PNG), the upsampled clean latent z, the stage's
 * noise and mask, and x noised to the restart step. */
static fs_code change_stage(fs_render *R) {
    render_run *r = &R->run;
    const fs_job *job = r->job;
    int s = r->cur.stage + 1;
    float *img = NULL;
    fs_code rc = FS_OK;
    int emit = job->stage_outputs;
    if (emit || !job->upsample_latent) {   /* the previous stage's VAE phase: its image */
        run_phase(r, RUN_PHASE_VAE, s - 1);
        rc = render_decode(r, &r->cur, &img, emit);
    }
    run_phase(r, RUN_PHASE_VAE, s);
    run_window_begin(r);   /* the previous image was that stage's output */
    int ws, hs;
    render_stage_size(job, s, &ws, &hs);
    stage_map next;
    memset(&next, 0, sizeof next);
    if (!rc) rc = stage_map_make(r, s, ws, hs, &next);
    rc = render_agree(r, rc);
    if (!rc) rc = render_upsample(r, &r->cur, img, &next, &r->z);
    run_free(r, img);
    if (!rc) rc = render_progress(r, "upsample", s, 1, 1);
    stage_map_free(r, &r->cur);
    r->cur = next;
    if (rc || r->stop) return rc;
    run_phase(r, RUN_PHASE_UNET, s);
    rc = render_agree(r, stage_work_make(r));
    if (!rc) stage_restart(r);
    R->step = first_step(job, s);
    return rc;
}

static fs_code finish(fs_render *R) {
    render_run *r = &R->run;
    fs_code rc = FS_OK;
    /* the UNet's weights go before the last decode */
    run_unet_drop(r);
    run_phase(r, RUN_PHASE_VAE, r->cur.stage);
    if (!r->stop) rc = render_decode(r, &r->cur, NULL, 1);
    run_window_end(r, r->cur.stage);
    run_phase(r, RUN_PHASE_NONE, 0);
    if (!rc && !r->stop) rc = render_progress(r, "vae", n_stages(r->job) - 1, 1, 1);
    R->done = 1;
    return rc;
}

/* ---------------------------------------------------------------- the state */

/* Where the state comes from: stage 0's start, or a state handed back. */
static fs_code enter_resumed(fs_render *R, const fs_render_state *from);

static fs_code begin(fs_render *R, const fs_render_state *from) {
    render_run *r = &R->run;
    const fs_job *job = r->job;
    double t0 = fs_now();
    fs_code rc = fs_models_denoiser(r->models, &r->den, r->err);
    if (!rc) rc = condition(r);
    rc = render_agree(r, rc);
    R->st.seconds_text = fs_now() - t0;
    if (!rc) rc = render_progress(r, "text", 0, 1, 1);
    if (!r->dry)   /* before the stages reset them */
        R->st.peak_alloc = fs_mem_peak(), R->st.peak_rss = fs_mem_peak_rss();
    R->t_stages = fs_now();
    if (rc || r->stop) return rc;
    r->sched = malloc(sizeof *r->sched);
    rc = r->sched ? fs_schedule_make(job->scheduler, job->steps, r->sched, r->err)
                  : fs_fail(r->err, FS_ERR_NOMEM, "render: out of memory");
    if (!rc) rc = run_unet_load(r);
    rc = render_agree(r, rc);
    if (!rc) rc = from ? enter_resumed(R, from) : enter_stage0(R);
    if (!rc && !r->stop && !from && R->step >= job->steps) leave_loop(R);
    return rc;
}

/* A state is this job's, at this rank count: the stage's latent size and
 * this rank's strip of it. */
static fs_code check_resumable(render_run *r, const fs_render_state *st) {
    const fs_job *job = r->job;
    int ns = n_stages(job), w, h;
    if (st->n_stages != ns || st->stage < 0 || st->stage >= ns || st->steps != job->steps)
        return fs_fail(r->err, FS_ERR_INVALID, "resume: the state is at stage %d of %d with %d "
                       "steps; this job has %d stage(s) of %d steps", st->stage, st->n_stages,
                       st->steps, ns, job->steps);
    if (st->done) return fs_fail(r->err, FS_ERR_INVALID, "resume: the render is already done");
    render_stage_size(job, st->stage, &w, &h);
    int lh = h / r->den.vae_factor, lw = w / r->den.vae_factor;
    if (st->lat_h != lh || st->lat_w != lw || st->channels != r->den.latent_channels)
        return fs_fail(r->err, FS_ERR_INVALID, "resume: the state's latent is %dx%dx%d; stage %d "
                       "of this job is %dx%dx%d", st->lat_h, st->lat_w, st->channels, st->stage,
                       lh, lw, r->den.latent_channels);
    int first = first_step(job, st->stage);
    if (st->step < first || st->step > job->steps)
        return fs_fail(r->err, FS_ERR_INVALID, "resume: step %d is outside stage %d's loop "
                       "(%d .. %d)", st->step, st->stage, first, job->steps);
    if (st->stage > 0 && st->step < job->steps && !st->z)
        return fs_fail(r->err, FS_ERR_INVALID, "resume: stage %d at step %d needs its clean "
                       "latent z", st->stage, st->step);
    if (!st->x) return fs_fail(r->err, FS_ERR_INVALID, "resume: the state has no latent");
    uint64_t stream = st->stage ? FS_STREAM_STAGE_NOISE(st->stage) : FS_STREAM_NOISE;
    if (st->noise_seed != job->seed || st->noise_stream != stream)
        return fs_fail(r->err, FS_ERR_INVALID, "resume: the state's noise keys (seed %llu, "
                       "stream 0x%llx) are not this job's (seed %llu, stream 0x%llx)",
                       (unsigned long long)st->noise_seed, (unsigned long long)st->noise_stream,
                       (unsigned long long)job->seed, (unsigned long long)stream);
    return FS_OK;
}

static fs_code enter_resumed(fs_render *R, const fs_render_state *from) {
    render_run *r = &R->run;
    const fs_job *job = r->job;
    int w0, h0, ws, hs;
    render_stage_size(job, 0, &w0, &h0);
    r->base_h = h0 / r->den.vae_factor, r->base_w = w0 / r->den.vae_factor;
    fs_code rc = check_resumable(r, from);
    if (!rc) {
        render_stage_size(job, from->stage, &ws, &hs);
        rc = stage_map_make(r, from->stage, ws, hs, &r->cur);
    }
    if (!rc && (from->row0 != r->cur.plan->row0[r->rank] || from->rows != stage_rows(r, &r->cur)))
        rc = fs_fail(r->err, FS_ERR_INVALID, "resume: the state holds latent rows %d .. %d; this "
                     "rank's strip is %d .. %d", from->row0, from->row0 + from->rows,
                     r->cur.plan->row0[r->rank], r->cur.plan->row0[r->rank] +
                     stage_rows(r, &r->cur));
    run_window_begin(r);
    rc = render_agree(r, rc);
    size_t n = (size_t)from->rows * from->lat_w * from->channels;
    if (!rc && !r->dry) memcpy(r->cur.x, from->x, sizeof(float) * n);
    if (!rc && from->z && from->step < job->steps) {
        r->z = run_floats(r, n + 1);
        if (!r->z) rc = r->err->code;
        else if (!r->dry) memcpy(r->z, from->z, sizeof(float) * n);
    }
    /* the mask is rebuilt from the job; the noise file and input image only
     * fed stage 0's start */
    if (!rc) rc = render_agree(r, rc);
    if (!rc && job->mask[0]) rc = inputs_read(r, &r->cur, 0);
    run_phase(r, RUN_PHASE_UNET, from->stage);
    R->step = from->step;
    return rc;
}

fs_code render_open(fs_comm *comm, const fs_job *job, fs_models *models,
                    const fs_render_hooks *hooks, fs_job_plan *dry_plan, int dry_ranks,
                    const fs_render_state *from, fs_render **out, fs_error *err) {
    fs_render *R = calloc(1, sizeof *R);
    *out = R;
    if (!R) return fs_fail(err, FS_ERR_NOMEM, "render: out of memory");
    render_run *r = &R->run;
    r->comm = dry_plan ? NULL : comm, r->job = job, r->models = models, r->hooks = hooks;
    r->err = err, r->stats = &R->st, r->work.stage = -1;
    r->dry = dry_plan != NULL, r->plan = dry_plan;
    r->rank = r->dry ? 0 : fs_comm_rank(comm);
    r->size = r->dry ? dry_ranks : fs_comm_size(comm);
    if (!r->dry && comm) fs_comm_traffic_reset(comm);
    if (!r->dry) fs_mem_reset_peak();   /* the render's own peak, not the process's so far */
    return begin(R, from);
}

fs_code fs_render_begin(fs_comm *comm, const fs_job *job, fs_models *models,
                        const fs_render_hooks *hooks, fs_render **out, fs_error *err) {
    return render_open(comm, job, models, hooks, NULL, 1, NULL, out, err);
}

fs_code fs_render_resume(fs_comm *comm, const fs_job *job, fs_models *models,
                         const fs_render_hooks *hooks, const fs_render_state *from,
                         fs_render **out, fs_error *err) {
    return render_open(comm, job, models, hooks, NULL, 1, from, out, err);
}

int fs_render_finished(const fs_render *R) { return !R || R->done || R->run.stop; }

fs_code fs_render_advance(fs_render *R) {
    render_run *r = &R->run;
    const fs_job *job = r->job;
    if (fs_render_finished(R)) return FS_OK;
    if (R->step < job->steps) {
        int s = r->cur.stage, first = first_step(job, s);
        fs_code rc = render_agree(r, stage_work_make(r));
        if (!rc) rc = stage_step(r, R->step);
        if (rc) return rc;
        R->step++;
        rc = render_progress(r, "unet", s, R->step - first, job->steps - first);
        if (!rc && R->step == job->steps) leave_loop(R);
        return rc;
    }
    if (r->cur.stage < n_stages(job) - 1) {
        fs_code rc = change_stage(R);
        if (!rc && !r->stop && R->step >= job->steps) leave_loop(R);
        return rc;
    }
    return finish(R);
}

fs_render_state fs_render_get_state(const fs_render *R) {
    fs_render_state s;
    memset(&s, 0, sizeof s);
    const render_run *r = &R->run;
    s.stage = r->cur.stage, s.n_stages = n_stages(r->job);
    s.step = R->step, s.first_step = first_step(r->job, s.stage), s.steps = r->job->steps;
    s.done = R->done;
    s.lat_h = r->cur.h, s.lat_w = r->cur.w, s.channels = r->den.latent_channels;
    if (r->cur.plan) s.row0 = r->cur.plan->row0[r->rank], s.rows = stage_rows(r, &r->cur);
    s.x = r->dry ? NULL : r->cur.x;
    s.z = r->dry ? NULL : r->z;
    s.noise_seed = r->job->seed;
    s.noise_stream = s.stage ? FS_STREAM_STAGE_NOISE(s.stage) : FS_STREAM_NOISE;
    return s;
}

void fs_render_end(fs_render *R, fs_render_stats *stats) {
    if (!R) return;
    render_run *r = &R->run;
    fs_render_stats *st = &R->st;
    st->seconds_stages = fs_now() - R->t_stages;
    stage_work_free(r);
    run_free(r, r->z);
    stage_map_free(r, &r->cur);
    if (!r->dry) {
        fs_models_drop_unet(r->models);
        fs_models_drop_vae(r->models);
    }
    inputs_free(&r->inputs);
    fs_free(r->context), fs_free(r->y);
    free(r->sched);
    st->stopped = r->stop;
    if (!r->dry) {
        /* the whole render's peaks: the largest of the text phase's and the stages' */
        st->peak_alloc = max_sz(st->peak_alloc, fs_mem_peak());
        st->peak_rss = max_sz(st->peak_rss, fs_mem_peak_rss());
        for (int s = 0; s < FS_JOB_MAX_STAGES; s++) {
            st->peak_alloc = max_sz(st->peak_alloc, st->stage_peak_alloc[s]);
            st->peak_rss = max_sz(st->peak_rss, st->stage_peak_rss[s]);
        }
        if (r->comm) fs_comm_traffic(r->comm, st->traffic);
    }
    if (stats) *stats = *st;
    free(R);
}

fs_code fs_worker_render(fs_comm *comm, const fs_job *job, fs_models *models,
                         const fs_render_hooks *hooks, fs_render_stats *stats, fs_error *err) {
    fs_render *R = NULL;
    fs_code rc = fs_render_begin(comm, job, models, hooks, &R, err);
    while (!rc && !fs_render_finished(R)) rc = fs_render_advance(R);
    fs_render_end(R, stats);
    return rc;
}
