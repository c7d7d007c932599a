/* worker/render_internal.h: what the render's files share (not public). */
#ifndef FS_WORKER_RENDER_INTERNAL_H
#define FS_WORKER_RENDER_INTERNAL_H
#include "sampler/sampler.h"
#include "worker/worker.h"

typedef struct render_run {
    fs_comm *comm;
    const fs_job *job;
    fs_models *models;
    const fs_render_hooks *hooks;
    fs_error *err;
    int rank, size;
    float *context, *y;          /* conditioning of both CFG branches */
    int chunks;
    fs_schedule *sched;
    fs_unet *unet;               /* loaded for the sampler loops */
    fs_vae *vae;                 /* loaded when first needed */
    int base_h, base_w;          /* stage-0 latent size */
    int stop;                    /* Ctrl-C: every rank agrees */
    fs_render_stats *stats;      /* per-stage figures */
    double stage_t0;
    int rss_resettable;
} render_run;

/* One stage's latent as this rank holds it. */
typedef struct stage_map {
    int stage;
    int h, w;                    /* latent size */
    fs_strip_plan *plan;         /* latent rows, multiples of 2^(levels-1) */
    float *x;                    /* own rows [rows][w][4] (fs_alloc) */
} stage_map;

static inline int stage_rows(const render_run *r, const stage_map *m) {
    return fs_strip_rows(m->plan, r->rank);
}

/* ---- the render's geometry and settings, shared with the planner (plan.c) */
/* Stage s's size in pixels (a plain job: its size). */
static inline void render_stage_size(const fs_job *job, int s, int *width, int *height) {
    int several = job->n_stages > 1;
    *width = several ? job->stage_width[s] : job->width;
    *height = several ? job->stage_height[s] : job->height;
}
/* A stage's latent rows cut over `ranks` strips: boundaries on multiples of
 * 2^(levels-1) latent rows, so every UNet level has whole rows. */
static inline fs_code render_strip_plan(int lat_h, int ranks, int unet_levels,
                                        fs_strip_plan *plan, fs_error *err) {
    return fs_strip_plan_make(lat_h, ranks, 1 << (unet_levels - 1), plan, err);
}
/* The UNet batch: 2 under CFG, 1 at guidance <= 1 (diffusers: no CFG batch). */
static inline int render_batch(const fs_job *job) { return job->guidance > 1.0f ? 2 : 1; }
/* worker/stage.c: FreeScale's UNet settings for step i of a stage whose
 * latent is lat_w wide (base: stage 0's latent). */
fs_unet_freescale render_unet_settings(const fs_job *job, int stage, int i, int lat_w,
                                       int base_h, int base_w);
/* worker/images.c: the VAE options of every decode and encode of the job. */
fs_vae_opts render_vae_opts(const fs_job *job);

/* A failure on any rank stops every rank at the same point. */
fs_code render_agree(render_run *r, fs_code rc);
/* Rank 0 asks on_progress whether to go on; everyone learns the answer. */
fs_code render_progress(render_run *r, const char *phase, int stage, int step, int steps);
fs_code stage_map_make(render_run *r, int stage, int width, int height, stage_map *m);
void stage_map_free(stage_map *m);

/* worker/stage.c: the sampler loop of one stage on m->x. Stage 0: from the
 * initial noise (or the job's noise file), all steps. Later stages: z is the
 * upsampled latent (own rows), x starts at add_noise(z, eps_s, t_r) and every
 * step blends toward add_noise(z, eps_s, t_i) before the UNet call, with
 * dilation, scale fusion and FreeU. mask: own rows [rows][w] or NULL. */
fs_code stage_denoise(render_run *r, stage_map *m, const float *z, const float *mask);

/* worker/images.c */
fs_code render_vae(render_run *r, fs_vae **vae);
/* Decodes m's latent: the float image strip ([8 rows][8 w][3], fs_alloc'ed)
 * to *img (NULL: not kept); emit: rank 0 gets the 8-bit rows through the
 * hooks as stage m->stage's image. */
fs_code render_decode(render_run *r, const stage_map *m, float **img, int emit);
/* The next stage's starting latent z (own rows of `next`, fs_alloc'ed) from
 * the previous stage: RGB (decode, bicubic, encode, posterior sample) or,
 * with upsample_latent, bicubic on the latent. img: prev's decoded strip when
 * already made, else NULL. */
fs_code render_upsample(render_run *r, const stage_map *prev, const float *img,
                        const stage_map *next, float **z);
/* The job's input image as stage 0's latent (encode + posterior sample). */
fs_code render_input_image(render_run *r, stage_map *m);
/* The job's mask for a stage's latent: own rows [rows][w] of 0/1 (fs_alloc). */
fs_code render_mask(render_run *r, const stage_map *m, float **mask);
#endif
