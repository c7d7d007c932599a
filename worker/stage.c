/* worker/stage.c: one sampler step of a render stage on this rank's strip,
 * and what the steps read besides the state. Stage 0 is the plain SDXL
 * loop; every later stage is FreeScale's: restart at job->restart_step from
 * the noised upsampled latent, blend toward it before every UNet call
 * (detail control), restrained dilation for steps before dilate_tau, scale
 * fusion in every self-attention. FreeU follows the job in every stage
 * (spec/freescale.md sections 2-7).
 *
 * The working set (UNet batch buffers, the stage's noise, the mask) is
 * rebuilt from the job and the Philox keys whenever a stage is entered, so a
 * step needs nothing from the steps before it but the state (x, z). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "kernels/kernels.h"
#include "worker/render_internal.h"

/* Floats of the current stage's own latent rows. */
static size_t own_floats(const render_run *r) {
    return (size_t)stage_rows(r, &r->cur) * r->cur.w * r->den.latent_channels;
}

fs_code stage_work_make(render_run *r) {
    stage_work *wk = &r->work;
    if (wk->stage == r->cur.stage) return FS_OK;
    stage_work_free(r);
    const stage_map *m = &r->cur;
    size_t per = own_floats(r), n = (size_t)render_batch(r->job);
    fs_code rc = FS_OK;
    if (m->stage > 0) rc = render_mask(r, m, &wk->mask);
    if (!rc) {
        wk->xin = run_floats(r, (per ? per : 1) * n);
        wk->eps = run_floats(r, (per ? per : 1) * n);
        wk->noise = m->stage > 0 ? run_floats(r, per) : NULL;
        if (!wk->xin || !wk->eps || (m->stage > 0 && !wk->noise)) rc = r->err->code;
    }
    if (!rc && wk->noise && !r->dry)
        /* one noise tensor per stage, reused for every step's noised latent */
        fs_rng_fill_normal(wk->noise, per, r->job->seed, FS_STREAM_STAGE_NOISE(m->stage),
                           (uint64_t)m->plan->row0[r->rank] * m->w * r->den.latent_channels);
    if (rc) {
        fs_error_prefix(r->err, "stage %d: ", m->stage);
        stage_work_free(r);
        return rc;
    }
    wk->stage = m->stage;
    return FS_OK;
}

void stage_work_free(render_run *r) {
    stage_work *wk = &r->work;
    run_free(r, wk->xin), run_free(r, wk->eps), run_free(r, wk->noise), run_free(r, wk->mask);
    memset(wk, 0, sizeof *wk);
    wk->stage = -1;
}

fs_code stage_initial_noise(render_run *r) {
    const fs_job *job = r->job;
    stage_map *m = &r->cur;
    int rows = stage_rows(r, m), row0 = m->plan->row0[r->rank], c = r->den.latent_channels;
    if (r->dry) return FS_OK;
    if (!job->noise[0]) {
        fs_sampler_init_noise(r->sched, job->seed, m->h, m->w, c, row0, rows, m->x);
        return FS_OK;
    }
    /* rank 0 read the file and handed every rank its rows (worker/inputs.c) */
    size_t n = (size_t)rows * m->w * c;
    memcpy(m->x, r->inputs.noise, sizeof(float) * n);
    fs_sampler_scale_noise(r->sched, m->x, n, m->x);
    return FS_OK;
}

void stage_restart(render_run *r) {
    if (!r->dry)
        fs_sampler_add_noise(r->sched, r->job->restart_step, r->z, r->work.noise, own_floats(r),
                             r->cur.x);
}

fs_code stage_step(render_run *r, int i) {
    const fs_job *job = r->job;
    stage_map *m = &r->cur;
    stage_work *wk = &r->work;
    int n = render_batch(job), cfg = n == 2, c = r->den.latent_channels;
    size_t per = own_floats(r), ctx_len = (size_t)r->chunks * r->den.token_window;
    const float *ctx_use = NULL, *y_use = NULL;
    float t[2];
    if (!r->dry) {
        /* without CFG only the cond branch (the second) */
        ctx_use = cfg ? r->context : r->context + ctx_len * (size_t)r->den.context_dim;
        y_use = cfg ? r->y : r->y + (size_t)r->den.adm_in;
        if (r->z) /* at i = restart this changes nothing: x is already that value */
            fs_detail_blend(r->sched, i, job->cosine_scale, job->cosine_scale_bg, wk->mask, r->z,
                            wk->noise, (size_t)stage_rows(r, m) * m->w, c, m->x);
        float scale = fs_schedule_input_scale(r->sched, i);
        const fs_backend *be = fs_backend_cpu();
        for (int b = 0; b < n; b++) {
            fs_code rc = be->op->scale(be, m->x, wk->xin + b * per, per, scale, r->err);
            if (rc) return rc;
            t[b] = (float)r->sched->timesteps[i];
        }
    }
    fs_code rc = run_unet_eval(r, m, i, n, wk->xin, t, ctx_use, (int)ctx_len, y_use, wk->eps);
    if (rc || r->dry) return rc;
    if (cfg) fs_sampler_cfg(wk->eps, wk->eps + per, job->guidance, per, wk->eps);
    fs_sampler_step(r->sched, i, m->x, wk->eps, per);
    return FS_OK;
}
