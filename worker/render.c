/* One render on every rank: conditioning, the sampler loop over the UNet on
 * this rank's latent strip, the VAE decode of the strip, and the image rows
 * sent to rank 0 in order. Exactness: every rank computes the conditioning
 * itself from the same ids (same bits), the sampler is elementwise, the
 * networks are exact across splits, and the noise is keyed by global index. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sampler/sampler.h"
#include "worker/worker.h"

#define TAG_IMAGE 701

/* A failure on any rank stops every rank at the same point. */
static fs_code agree(fs_comm *comm, fs_code rc, fs_error *err) {
    int failed = rc != FS_OK;
    fs_error e2 = {0};
    if (fs_comm_allreduce_max_int(comm, &failed, &e2)) return rc ? rc : fs_fail(err, e2.code, "%s", e2.msg);
    if (failed && !rc)
        return fs_fail(err, FS_ERR_COMM, "render stopped: another rank failed (its message is in "
                       "its own output)");
    return rc;
}

/* Rank 0 asks the hook whether to go on; everyone learns the answer. */
static fs_code ask_progress(fs_comm *comm, const fs_render_hooks *hooks, const char *phase,
                            int step, int steps, int *stop, fs_error *err) {
    int s = 0;
    if (fs_comm_rank(comm) == 0 && hooks && hooks->on_progress)
        s = hooks->on_progress(hooks->user, phase, step, steps) != 0;
    fs_code rc = comm ? fs_comm_bcast(comm, &s, sizeof s, 0, err) : FS_OK;
    *stop = s;
    return rc;
}

/* The conditioning of both CFG branches, [uncond, cond]. */
static fs_code condition(fs_models *models, const fs_job *job, float **context, float **y,
                         int *chunks, fs_error *err) {
    fs_clip *cl, *cg;
    fs_tokenizer *tl, *tg;
    fs_code rc = fs_models_text(models, &cl, &cg, &tl, &tg, err);
    if (rc) return rc;
    fs_sdxl_sizes sizes = {
        .orig_h = job->orig_height, .orig_w = job->orig_width,
        .crop_top = job->crop_top, .crop_left = job->crop_left,
        .target_h = job->target_height, .target_w = job->target_width,
    };
    const char *neg = job->negative_prompt[0] ? job->negative_prompt : NULL;
    rc = fs_sdxl_condition_text(cl, cg, tl, tg, job->prompt, neg, &sizes, context, y, chunks, err);
    fs_models_drop_text(models);   /* the encoders are not needed again */
    return rc;
}

/* The initial latent strip: seeded counter-based noise, or the job's file. */
static fs_code initial_latent(const fs_job *job, const fs_schedule *s, int h, int w, int row0,
                              int rows, float *x, fs_error *err) {
    if (!job->noise[0]) {
        fs_sampler_init_noise(s, job->seed, h, w, 4, row0, rows, x);
        return FS_OK;
    }
    fs_code rc = fs_noise_file_read(job->noise, h, w, 4, row0, rows, x, err);
    if (!rc) fs_sampler_scale_noise(s, x, (size_t)rows * w * 4, x);
    return rc;
}

/* The sampler loop on this strip. batch 2 under CFG, [uncond, cond]; with
 * guidance <= 1 diffusers runs the cond branch alone, and so do we. */
static fs_code denoise(fs_comm *comm, const fs_job *job, fs_unet *unet, const fs_strip_plan *plan,
                       int h, int w, const float *context, const float *y, int chunks, float *x,
                       const fs_render_hooks *hooks, int *stop, fs_error *err) {
    int rank = fs_comm_rank(comm), rows = fs_strip_rows(plan, rank);
    const fs_unet_config *uc = &fs_unet_get_info(unet)->config;
    int cfg = job->guidance > 1.0f, n = cfg ? 2 : 1;
    size_t per = (size_t)rows * w * 4, ctx_len = (size_t)chunks * 77;
    size_t ctx_item = ctx_len * (size_t)uc->context_dim, y_item = (size_t)uc->adm_in_channels;
    const float *ctx_use = cfg ? context : context + ctx_item;   /* cond only: the second item */
    const float *y_use = cfg ? y : y + y_item;
    fs_schedule *s = malloc(sizeof *s);
    float *xin = fs_alloc(sizeof(float) * per * n), *eps = fs_alloc(sizeof(float) * per * n);
    fs_code rc = (!s || !xin || !eps) ? fs_fail(err, FS_ERR_NOMEM, "render: out of memory for the "
                                                "latent strip") : FS_OK;
    if (!rc) rc = fs_schedule_make(job->scheduler, job->steps, s, err);
    if (!rc) rc = initial_latent(job, s, h, w, plan->row0[rank], rows, x, err);
    rc = agree(comm, rc, err);
    for (int i = 0; !rc && i < job->steps && !*stop; i++) {
        float scale = fs_schedule_input_scale(s, i), t[2];
        for (int b = 0; b < n; b++) {
            for (size_t k = 0; k < per; k++) xin[b * per + k] = x[k] * scale;
            t[b] = (float)s->timesteps[i];
        }
        rc = fs_unet_forward(unet, comm, plan, h, w, n, xin, t, ctx_use, (int)ctx_len, y_use, eps,
                             NULL, err);
        if (rc) break;
        if (cfg) fs_sampler_cfg(eps, eps + per, job->guidance, per, eps);
        fs_sampler_step(s, i, x, eps, per);
        rc = ask_progress(comm, hooks, "unet", i + 1, job->steps, stop, err);
    }
    free(s);
    fs_free(xin), fs_free(eps);
    return rc;
}

/* Rank 0 hands its own rows to on_rows, then every other rank's in order. */
static fs_code collect_rows(fs_comm *comm, const fs_strip_plan *plan, int factor, int width,
                            const uint8_t *mine, const fs_render_hooks *hooks, fs_error *err) {
    int rank = fs_comm_rank(comm), size = fs_comm_size(comm);
    size_t row_bytes = (size_t)width * 3;
    if (rank != 0)
        return fs_comm_send_bytes(comm, mine, row_bytes * factor * fs_strip_rows(plan, rank), 0,
                                  TAG_IMAGE, err);
    fs_code rc = FS_OK;
    if (hooks && hooks->on_rows)
        rc = hooks->on_rows(hooks->user, mine, 0, factor * fs_strip_rows(plan, 0), width, err);
    uint8_t *buf = NULL;
    for (int r = 1; r < size; r++) {
        size_t bytes = row_bytes * factor * fs_strip_rows(plan, r);
        uint8_t *nb = realloc(buf, bytes);
        if (!nb) { free(buf); return fs_fail(err, FS_ERR_NOMEM, "render: out of memory"); }
        buf = nb;
        /* Receive even after a failed write so the senders are not left waiting. */
        fs_code r2 = fs_comm_recv_bytes(comm, buf, bytes, r, TAG_IMAGE, err);
        if (!rc) rc = r2;
        if (!rc && hooks && hooks->on_rows)
            rc = hooks->on_rows(hooks->user, buf, factor * plan->row0[r],
                                factor * fs_strip_rows(plan, r), width, err);
    }
    free(buf);
    return rc;
}

static fs_code decode(fs_comm *comm, const fs_job *job, fs_models *models,
                      const fs_strip_plan *plan, int h, int w, float *x,
                      const fs_render_hooks *hooks, fs_error *err) {
    int rank = fs_comm_rank(comm), rows = fs_strip_rows(plan, rank);
    fs_vae *vae = NULL;
    fs_code rc = fs_models_vae(models, &vae, err);
    const fs_vae_config *vc = rc ? NULL : &fs_vae_get_info(vae)->config;
    int factor = vc ? 1 << (vc->levels - 1) : 8;
    if (!rc && (factor * h != job->height || factor * w != job->width))
        rc = fs_fail(err, FS_ERR_UNSUPPORTED, "render: the VAE scales by %d, the job's size "
                     "%dx%d needs 8", factor, job->width, job->height);
    size_t pix = (size_t)factor * rows * factor * w * 3;
    float *img = rc ? NULL : fs_alloc(sizeof(float) * (pix ? pix : 1));
    uint8_t *u8 = rc ? NULL : malloc(pix ? pix : 1);
    if (!rc && (!img || !u8)) rc = fs_fail(err, FS_ERR_NOMEM, "render: out of memory for the "
                                          "image strip (%zu bytes)", pix * 5);
    rc = agree(comm, rc, err);
    if (!rc) {
        fs_vae_unscale(vc, x, x, (size_t)rows * w * 4);
        fs_vae_opts opts = {.tiled = job->vae_tiling, .force_scheme = -1};
        rc = fs_vae_decode(vae, comm, plan, h, w, 1, x, img, &opts, err);
    }
    if (!rc && hooks && hooks->on_image)
        hooks->on_image(hooks->user, img, factor * plan->row0[rank], factor * rows, job->height,
                        job->width);
    if (!rc) fs_image_to_u8(img, pix, u8);
    fs_free(img);
    fs_models_drop_vae(models);
    rc = agree(comm, rc, err);
    if (!rc) rc = collect_rows(comm, plan, factor, job->width, u8, hooks, err);
    free(u8);
    return rc;
}

fs_code fs_worker_render(fs_comm *comm, const fs_job *job, fs_models *models,
                         const fs_render_hooks *hooks, fs_render_stats *stats, fs_error *err) {
    fs_render_stats st;
    memset(&st, 0, sizeof st);
    if (comm) fs_comm_traffic_reset(comm);
    int rank = fs_comm_rank(comm), stop = 0;
    int h = job->height / 8, w = job->width / 8;
    float *context = NULL, *y = NULL, *x = NULL;
    int chunks = 0;

    double t0 = fs_now();
    fs_code rc = condition(models, job, &context, &y, &chunks, err);
    rc = agree(comm, rc, err);
    st.seconds_text = fs_now() - t0;
    if (!rc) rc = ask_progress(comm, hooks, "text", 1, 1, &stop, err);

    fs_unet *unet = NULL;
    fs_strip_plan *plan = calloc(1, sizeof *plan);
    if (!plan) rc = rc ? rc : fs_fail(err, FS_ERR_NOMEM, "render: out of memory");
    t0 = fs_now();
    if (!rc && !stop) {
        rc = fs_models_unet(models, &unet, err);
        int align = rc ? 1 : 1 << (fs_unet_get_info(unet)->config.levels - 1);
        if (!rc) rc = fs_strip_plan_make(h, fs_comm_size(comm), align, plan, err);
        if (!rc) {
            st.strip_rows = fs_strip_rows(plan, rank);
            x = fs_alloc(sizeof(float) * (size_t)(st.strip_rows ? st.strip_rows : 1) * w * 4);
            if (!x) rc = fs_fail(err, FS_ERR_NOMEM, "render: out of memory for the latent");
        }
        rc = agree(comm, rc, err);
        if (!rc) rc = denoise(comm, job, unet, plan, h, w, context, y, chunks, x, hooks, &stop, err);
        fs_models_drop_unet(models);
    }
    fs_free(context), fs_free(y);
    context = y = NULL;
    st.seconds_unet = fs_now() - t0;
    if (!rc && !stop && hooks && hooks->on_latent)
        hooks->on_latent(hooks->user, x, plan->row0[rank], st.strip_rows, h, w);

    t0 = fs_now();
    if (!rc && !stop) rc = decode(comm, job, models, plan, h, w, x, hooks, err);
    if (!rc && !stop) rc = ask_progress(comm, hooks, "vae", 1, 1, &stop, err);
    st.seconds_vae = fs_now() - t0;
    fs_free(x);
    free(plan);
    st.stopped = stop;
    st.peak_alloc = fs_mem_peak();
    st.peak_rss = fs_mem_peak_rss();
    if (comm) fs_comm_traffic(comm, st.traffic);
    if (stats) *stats = st;
    return rc;
}
