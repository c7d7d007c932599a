/* worker/plan.c: a render's memory and work per rank, before any work: the
 * render's own loop (worker/render.c) run dry on strip 0 of `ranks`, the
 * largest. Every buffer the render would hold is counted instead of
 * allocated and every network call is that network's sizing pass (the
 * UNet's dry forward with the very fs_unet_freescale of each step,
 * fs_vae_plan with the render's VAE options), so the plan is the render's
 * code with the data left out and cannot drift from it. */
#include <stdlib.h>
#include <string.h>
#include "worker/render_internal.h"

/* The rank counts every stage can be cut into: every strip needs at least
 * one group of row_align latent rows of every stage. */
static fs_code check_ranks(const fs_job *job, const fs_denoiser_desc *d, int ranks,
                           fs_job_plan *jp, fs_error *err) {
    jp->max_ranks = FS_MAX_RANKS;
    for (int s = 0; s < jp->n_stages; s++) {
        int w, h;
        render_stage_size(job, s, &w, &h);
        int units = (h / d->vae_factor + d->row_align - 1) / d->row_align;
        if (units < jp->max_ranks) jp->max_ranks = units;
    }
    if (ranks < 1 || ranks > jp->max_ranks)
        return fs_fail(err, FS_ERR_RANGE, "%d rank(s): impossible; every rank needs at least "
                       "one group of %d latent rows (%d px) of every stage, so at most %d "
                       "rank(s) for this job", ranks, d->row_align, d->vae_factor * d->row_align,
                       jp->max_ranks);
    return FS_OK;
}

/* The geometry of each stage on `ranks` strips, beside the dry run's figures. */
static fs_code stage_geometry(const fs_job *job, const fs_denoiser_desc *d, int ranks,
                              fs_job_plan *jp, fs_error *err) {
    for (int s = 0; s < jp->n_stages; s++) {
        fs_stage_plan *sp = &jp->stage[s];
        sp->stage = s;
        render_stage_size(job, s, &sp->img_w, &sp->img_h);
        sp->lat_w = sp->img_w / d->vae_factor, sp->lat_h = sp->img_h / d->vae_factor;
        fs_strip_plan *plan = malloc(sizeof *plan);
        if (!plan) return fs_fail(err, FS_ERR_NOMEM, "plan: out of memory");
        fs_code rc = fs_strip_plan_make(sp->lat_h, ranks, d->row_align, plan, err);
        if (!rc) {
            sp->max_rows = sp->min_rows = fs_strip_rows(plan, 0);
            for (int q = 1; q < ranks; q++) {
                int r = fs_strip_rows(plan, q);
                if (r > sp->max_rows) sp->max_rows = r;
                if (r < sp->min_rows) sp->min_rows = r;
            }
        }
        free(plan);
        if (rc) return rc;
        sp->max_dilation = 1;
        sp->first_step = s > 0 ? job->restart_step : 0;
    }
    return FS_OK;
}

fs_code fs_worker_plan(const fs_job *job, fs_models *models, int ranks, fs_job_plan *jp,
                       fs_error *err) {
    memset(jp, 0, sizeof *jp);
    fs_denoiser_desc d;
    fs_code rc = fs_models_denoiser(models, &d, err);
    if (rc) return rc;
    jp->ranks = ranks, jp->batch = job->guidance > 1.0f ? 2 : 1;
    jp->n_stages = job->n_stages > 0 ? job->n_stages : 1;
    if ((rc = check_ranks(job, &d, ranks, jp, err))) return rc;
    if ((rc = stage_geometry(job, &d, ranks, jp, err))) return rc;

    fs_render *R = NULL;
    rc = render_open(NULL, job, models, NULL, jp, ranks, NULL, &R, err);
    while (!rc && !fs_render_finished(R)) rc = fs_render_advance(R);
    fs_render_end(R, NULL);
    if (rc) {
        fs_error_prefix(err, "plan: ");
        return rc;
    }
    jp->peak_bytes = jp->peak_text;
    for (int s = 0; s < jp->n_stages; s++) {
        fs_stage_plan *sp = &jp->stage[s];
        sp->peak_bytes = sp->peak_unet > sp->peak_vae ? sp->peak_unet : sp->peak_vae;
        if (sp->peak_bytes > jp->peak_bytes) jp->peak_bytes = sp->peak_bytes;
    }
    return FS_OK;
}
