/* worker/stage.c: the sampler loop of one render stage on this rank's strip.
 * Stage 0 is the plain SDXL loop; every later stage is FreeScale's: restart
 * at job->restart_step from the noised upsampled latent, blend toward it
 * before every UNet call (detail control), restrained dilation for steps
 * before dilate_tau, scale fusion in every self-attention. FreeU follows the
 * job in every stage (spec/freescale.md sections 2-7). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "worker/render_internal.h"

static fs_code initial_noise(render_run *r, stage_map *m) {
    const fs_job *job = r->job;
    int rows = stage_rows(r, m), row0 = m->plan->row0[r->rank];
    if (!job->noise[0]) {
        fs_sampler_init_noise(r->sched, job->seed, m->h, m->w, 4, row0, rows, m->x);
        return FS_OK;
    }
    fs_code rc = fs_noise_file_read(job->noise, m->h, m->w, 4, row0, rows, m->x, r->err);
    if (!rc) fs_sampler_scale_noise(r->sched, m->x, (size_t)rows * m->w * 4, m->x);
    return rc;
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

fs_code stage_denoise(render_run *r, stage_map *m, const float *z, const float *mask) {
    const fs_job *job = r->job;
    const fs_unet_config *uc = &fs_unet_get_info(r->unet)->config;
    int rows = stage_rows(r, m), w = m->w;
    int n = render_batch(job), cfg = n == 2;
    size_t per = (size_t)rows * w * 4, ctx_len = (size_t)r->chunks * 77;
    const float *ctx_use = cfg ? r->context : r->context + ctx_len * (size_t)uc->context_dim;
    const float *y_use = cfg ? r->y : r->y + (size_t)uc->adm_in_channels;
    float *xin = fs_alloc(sizeof(float) * (per ? per : 1) * n);
    float *eps = fs_alloc(sizeof(float) * (per ? per : 1) * n);
    float *noise = z ? fs_alloc(sizeof(float) * (per ? per : 1)) : NULL;
    fs_code rc = (!xin || !eps || (z && !noise))
                     ? fs_fail(r->err, FS_ERR_NOMEM, "render: out of memory for stage %d's strip",
                               m->stage)
                     : FS_OK;
    int first = 0;
    if (!rc && !z) {
        rc = initial_noise(r, m);
    } else if (!rc) {
        /* one noise tensor per stage, reused for every step's noised latent */
        first = job->restart_step;
        fs_rng_fill_normal(noise, per, job->seed, FS_STREAM_STAGE_NOISE(m->stage),
                           (uint64_t)m->plan->row0[r->rank] * w * 4);
        fs_sampler_add_noise(r->sched, first, z, noise, per, m->x);
    }
    rc = render_agree(r, rc);
    for (int i = first; !rc && i < job->steps && !r->stop; i++) {
        if (z) /* at i = restart this changes nothing: x is already that value */
            fs_detail_blend(r->sched, i, job->cosine_scale, job->cosine_scale_bg, mask, z, noise,
                            (size_t)rows * w, 4, m->x);
        float scale = fs_schedule_input_scale(r->sched, i), t[2];
        for (int b = 0; b < n; b++) {
            for (size_t k = 0; k < per; k++) xin[b * per + k] = m->x[k] * scale;
            t[b] = (float)r->sched->timesteps[i];
        }
        fs_unet_freescale f = render_unet_settings(job, m->stage, i, w, r->base_h, r->base_w);
        rc = fs_unet_forward_fs(r->unet, r->comm, m->plan, m->h, w, n, xin, t, ctx_use,
                                (int)ctx_len, y_use, eps, NULL, &f, r->err);
        if (rc) break;
        if (cfg) fs_sampler_cfg(eps, eps + per, job->guidance, per, eps);
        fs_sampler_step(r->sched, i, m->x, eps, per);
        rc = render_progress(r, "unet", m->stage, i + 1 - first, job->steps - first);
    }
    fs_free(xin), fs_free(eps), fs_free(noise);
    return rc;
}
