/* worker/render.c: one render on every rank: the conditioning, then each
 * stage (worker/stage.c) with the moves between stages and the images
 * (worker/images.c). Exactness: every rank computes the conditioning itself
 * from the same ids (same bits), the sampler is elementwise, the networks
 * are exact across splits, and every random number is keyed by global index. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "worker/render_internal.h"

fs_code render_agree(render_run *r, fs_code rc) {
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
    m->stage = stage, m->h = height / 8, m->w = width / 8;
    m->plan = calloc(1, sizeof *m->plan);
    if (!m->plan) return fs_fail(r->err, FS_ERR_NOMEM, "render: out of memory");
    fs_code rc = render_strip_plan(m->h, r->size, fs_unet_get_info(r->unet)->config.levels,
                                   m->plan, r->err);
    if (rc) {
        fs_error_prefix(r->err, "stage %d (%dx%d) on %d ranks: ", stage, width, height, r->size);
        return rc;
    }
    size_t n = (size_t)stage_rows(r, m) * m->w * 4;
    m->x = fs_alloc(sizeof(float) * (n ? n : 1));
    return m->x ? FS_OK : fs_fail(r->err, FS_ERR_NOMEM, "render: out of memory for the latent");
}

void stage_map_free(stage_map *m) {
    fs_free(m->x);
    free(m->plan);
    memset(m, 0, sizeof *m);
}

static fs_code condition(render_run *r) {
    const fs_job *job = r->job;
    fs_clip *cl, *cg;
    fs_tokenizer *tl, *tg;
    fs_code rc = fs_models_text(r->models, &cl, &cg, &tl, &tg, r->err);
    if (rc) return rc;
    fs_sdxl_sizes sizes = {
        .orig_h = job->orig_height, .orig_w = job->orig_width,
        .crop_top = job->crop_top, .crop_left = job->crop_left,
        .target_h = job->target_height, .target_w = job->target_width,
    };
    const char *neg = job->negative_prompt[0] ? job->negative_prompt : NULL;
    rc = fs_sdxl_condition_text(cl, cg, tl, tg, job->prompt, neg, &sizes, &r->context, &r->y,
                                &r->chunks, r->err);
    fs_models_drop_text(r->models);   /* the encoders are not needed again */
    return rc;
}

static void report_latent(render_run *r, const stage_map *m) {
    if (r->hooks && r->hooks->on_latent)
        r->hooks->on_latent(r->hooks->user, m->stage, m->x, m->plan->row0[r->rank],
                            stage_rows(r, m), m->h, m->w);
}

/* Per-stage time and peaks: a stage's peaks count from its start. */
static void stage_begin(render_run *r) {
    r->stage_t0 = fs_now();
    fs_mem_reset_peak();
    r->rss_resettable = fs_mem_reset_peak_rss() == 0;
}
static void stage_end(render_run *r, int s) {
    r->stats->stage_seconds[s] = fs_now() - r->stage_t0;
    r->stats->stage_peak_alloc[s] = fs_mem_peak();
    r->stats->stage_peak_rss[s] = r->rss_resettable ? fs_mem_peak_rss() : 0;
}

/* Stage 0, then every later stage from the one before. */
static fs_code run_stages(render_run *r) {
    const fs_job *job = r->job;
    int ns = job->n_stages > 0 ? job->n_stages : 1;
    stage_map cur, next;
    memset(&next, 0, sizeof next);
    int w0, h0;
    render_stage_size(job, 0, &w0, &h0);
    fs_code rc = stage_map_make(r, 0, w0, h0, &cur);
    r->base_h = cur.h, r->base_w = cur.w;
    stage_begin(r);
    rc = render_agree(r, rc);
    if (!rc && job->input_image[0]) rc = render_input_image(r, &cur);
    else if (!rc) rc = stage_denoise(r, &cur, NULL, NULL);
    if (!rc && !r->stop) report_latent(r, &cur);
    if (ns > 1) stage_end(r, 0);
    for (int s = 1; !rc && !r->stop && s < ns; s++) {
        float *img = NULL, *z = NULL, *mask = NULL;
        /* the previous stage's image: needed for RGB upsampling, and for its PNG */
        int emit = job->stage_outputs;
        if (emit || !job->upsample_latent) rc = render_decode(r, &cur, &img, emit);
        stage_begin(r);   /* the previous image was that stage's output */
        int ws, hs;
        render_stage_size(job, s, &ws, &hs);
        if (!rc) rc = stage_map_make(r, s, ws, hs, &next);
        rc = render_agree(r, rc);
        if (!rc) rc = render_upsample(r, &cur, img, &next, &z);
        fs_free(img);
        if (!rc) rc = render_progress(r, "upsample", s, 1, 1);
        if (!rc) rc = render_mask(r, &next, &mask);
        if (!rc && !r->stop) rc = stage_denoise(r, &next, z, mask);
        fs_free(z), fs_free(mask);
        stage_map_free(&cur);
        cur = next;
        memset(&next, 0, sizeof next);
        if (!rc && !r->stop) report_latent(r, &cur);
        if (s < ns - 1) stage_end(r, s);
    }
    /* the UNet's weights go before the last decode */
    fs_models_drop_unet(r->models);
    r->unet = NULL;
    if (!rc && !r->stop) rc = render_decode(r, &cur, NULL, 1);
    stage_end(r, ns - 1);
    stage_map_free(&cur);
    stage_map_free(&next);
    return rc;
}

fs_code fs_worker_render(fs_comm *comm, const fs_job *job, fs_models *models,
                         const fs_render_hooks *hooks, fs_render_stats *stats, fs_error *err) {
    fs_render_stats st;
    memset(&st, 0, sizeof st);
    if (comm) fs_comm_traffic_reset(comm);
    render_run r;
    memset(&r, 0, sizeof r);
    r.comm = comm, r.job = job, r.models = models, r.hooks = hooks, r.err = err;
    r.rank = fs_comm_rank(comm), r.size = fs_comm_size(comm);
    r.stats = &st;

    double t0 = fs_now();
    fs_code rc = render_agree(&r, condition(&r));
    st.seconds_text = fs_now() - t0;
    if (!rc) rc = render_progress(&r, "text", 0, 1, 1);
    st.peak_alloc = fs_mem_peak(), st.peak_rss = fs_mem_peak_rss();   /* before stages reset them */

    t0 = fs_now();
    r.sched = malloc(sizeof *r.sched);
    if (!rc && !r.stop) {
        rc = r.sched ? fs_schedule_make(job->scheduler, job->steps, r.sched, err)
                     : fs_fail(err, FS_ERR_NOMEM, "render: out of memory");
        if (!rc) rc = fs_models_unet(models, &r.unet, err);
        rc = render_agree(&r, rc);
        if (!rc) rc = run_stages(&r);
    }
    st.seconds_stages = fs_now() - t0;
    if (!rc && !r.stop) rc = render_progress(&r, "vae", r.job->n_stages - 1, 1, 1);
    fs_models_drop_unet(models);
    fs_models_drop_vae(models);
    fs_free(r.context), fs_free(r.y);
    free(r.sched);
    st.stopped = r.stop;
    /* the whole render's peaks: the largest of the text phase's and the stages' */
    st.peak_alloc = st.peak_alloc > fs_mem_peak() ? st.peak_alloc : fs_mem_peak();
    st.peak_rss = st.peak_rss > fs_mem_peak_rss() ? st.peak_rss : fs_mem_peak_rss();
    for (int s = 0; s < FS_JOB_MAX_STAGES; s++) {
        if (st.stage_peak_alloc[s] > st.peak_alloc) st.peak_alloc = st.stage_peak_alloc[s];
        if (st.stage_peak_rss[s] > st.peak_rss) st.peak_rss = st.stage_peak_rss[s];
    }
    if (comm) fs_comm_traffic(comm, st.traffic);
    if (stats) *stats = st;
    return rc;
}
