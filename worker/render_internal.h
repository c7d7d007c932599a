/* worker/render_internal.h: what the render's files share (not public).
 *
 * Files and their direction (calls point down this list, never up):
 *   render.c   the render state (worker.h's fs_render_*) and the loop over it
 *   plan.c     fs_worker_plan: the same loop run dry
 *   stage.c    one sampler step of a stage, and the stage's working set
 *   images.c   the pixel side: decodes, the move between stages, input image, mask
 *   inputs.c   the user's files (input image, mask, noise), read on rank 0 only
 *   run.c      what they all stand on: buffers (real or counted), the networks'
 *              calls (real or sized), agreement and progress across ranks
 *
 * A run is real (compute, communicate) or dry (the plan: every buffer the real
 * run would hold is counted instead of allocated, every network call is its
 * sizing pass, nothing is computed or sent). The same code takes both paths,
 * so the plan cannot drift from the render. */
#ifndef FS_WORKER_RENDER_INTERNAL_H
#define FS_WORKER_RENDER_INTERNAL_H
#include "sampler/sampler.h"
#include "worker/worker.h"

/* Counted bytes held now, the peak since the last window start, and the
 * peak of the current phase (dry runs; the real run measures fs_mem_*). */
typedef struct run_ledger {
    size_t cur, peak, phase;
} run_ledger;

typedef enum { RUN_PHASE_NONE, RUN_PHASE_UNET, RUN_PHASE_VAE } run_phase_kind;

/* One stage's latent as this rank holds it. */
typedef struct stage_map {
    int stage;
    int h, w;                    /* latent size */
    fs_strip_plan *plan;         /* latent rows, multiples of 2^(levels-1) */
    float *x;                    /* own rows [rows][w][channels] (run_floats) */
} stage_map;

/* What a stage's sampler steps read besides the state (rebuilt from the job
 * and the keys whenever a stage is entered or resumed). */
typedef struct stage_work {
    int stage;                   /* -1: none built */
    float *xin, *eps;            /* the UNet batch in and out */
    float *noise;                /* later stages: the stage's noise (Philox keys) */
    float *mask;                 /* later stages with a mask: own rows [rows][w] */
} stage_work;

/* The user's files a job names, read once by rank 0 (worker/inputs.c; no
 * other rank opens a user file) and handed to every rank: the mask whole
 * (every stage resizes it), the input image's and the noise file's own rows
 * of stage 0 (the noise as the latent's NHWC floats). */
typedef struct fs_job_inputs {
    uint8_t *mask;
    int mask_w, mask_h;
    uint8_t *image;              /* own pixel rows [rows * f][W][3] */
    float *noise;                /* own latent rows [rows][w][channels] */
} fs_job_inputs;

typedef struct render_run {
    fs_comm *comm;               /* NULL: one process (and always in a dry run) */
    const fs_job *job;
    fs_models *models;
    const fs_render_hooks *hooks;
    fs_error *err;
    int rank, size;              /* dry: the strip planned (0, the largest) of `size` */
    fs_denoiser_desc den;        /* latent channels, VAE factor, tokens, widths */
    float *context, *y;          /* conditioning of both CFG branches */
    int chunks;
    fs_schedule *sched;
    fs_unet *unet;               /* loaded for the sampler loops (dry: shapes only) */
    fs_vae *vae;                 /* loaded when first needed (dry: shapes only) */
    int base_h, base_w;          /* stage-0 latent size */
    int stop;                    /* Ctrl-C: every rank agrees */
    fs_render_stats *stats;      /* per-stage figures */
    double stage_t0;
    int rss_resettable;
    fs_job_inputs inputs;        /* the user's files as rank 0 read them */
    /* the render state and its stage's working set */
    stage_map cur;
    float *z;                    /* later stages: the upsampled clean latent (own rows) */
    stage_work work;
    /* dry runs only */
    int dry;
    run_ledger led;
    run_phase_kind phase;        /* what the ledger's phase peak belongs to */
    int phase_stage;
    fs_job_plan *plan;           /* the figures the dry run fills */
    int unet_seen_dil[FS_JOB_MAX_STAGES][8];   /* sizing passes done per stage: dilations */
    double unet_seen_flops[FS_JOB_MAX_STAGES][8];
    int unet_nseen[FS_JOB_MAX_STAGES];
} render_run;

static inline int stage_rows(const render_run *r, const stage_map *m) {
    return fs_strip_rows(m->plan, r->rank);
}

/* ---- the render's geometry and settings */
/* Stage s's size in pixels (a plain job: its size). */
static inline void render_stage_size(const fs_job *job, int s, int *width, int *height) {
    int several = job->n_stages > 1;
    *width = several ? job->stage_width[s] : job->width;
    *height = several ? job->stage_height[s] : job->height;
}
/* The UNet batch: 2 under CFG, 1 at guidance <= 1 (diffusers: no CFG batch). */
static inline int render_batch(const fs_job *job) { return job->guidance > 1.0f ? 2 : 1; }
/* worker/run.c: FreeScale's UNet settings for step i of a stage whose
 * latent is lat_w wide (base: stage 0's latent). */
fs_unet_freescale render_unet_settings(const fs_job *job, int stage, int i, int lat_w,
                                       int base_h, int base_w);
/* worker/run.c: the VAE options of every decode and encode of the job. */
fs_vae_opts render_vae_opts(const fs_job *job);

/* ---- worker/render.c: a render (dry_plan NULL) or its dry run on strip 0
 * of dry_ranks, filling dry_plan's figures; from stage 0's start, or from a
 * state (from, not NULL). */
fs_code render_open(fs_comm *comm, const fs_job *job, fs_models *models,
                    const fs_render_hooks *hooks, fs_job_plan *dry_plan, int dry_ranks,
                    const fs_render_state *from, fs_render **out, fs_error *err);

/* ---- worker/run.c */
/* Buffers of floats: real runs fs_alloc (at least one float); dry runs count
 * the same bytes and hand out a token that must not be touched. NULL (err
 * set) when out of memory. run_free takes NULL. */
float *run_floats(render_run *r, size_t count);
void run_free(render_run *r, void *p);
/* Bytes a network holds while it is loaded (dry runs: counted). */
void run_hold(render_run *r, size_t bytes);
void run_drop(render_run *r, size_t bytes);
/* A phase (the ledger's phase peak goes to the one that ends). */
void run_phase(render_run *r, run_phase_kind kind, int stage);
/* A stage's measuring window (fs_render_stats.stage_*; the plan's peak_window). */
void run_window_begin(render_run *r);
void run_window_end(render_run *r, int stage);
/* A failure on any rank stops every rank at the same point. */
fs_code render_agree(render_run *r, fs_code rc);
/* Rank 0 asks on_progress whether to go on; everyone learns the answer. */
fs_code render_progress(render_run *r, const char *phase, int stage, int step, int steps);
/* Stage `stage`'s latent map (width x height pixels) cut over the ranks. */
fs_code stage_map_make(render_run *r, int stage, int width, int height, stage_map *m);
void stage_map_free(render_run *r, stage_map *m);
/* The networks: loaded on first use (dry: their shapes, weights counted). */
fs_code run_unet_load(render_run *r);
void run_unet_drop(render_run *r);
fs_code run_vae_load(render_run *r);
/* One UNet evaluation of step i on m (dry: its sizing pass, the largest
 * strip's arena and FLOPs, counted into the plan). */
fs_code run_unet_eval(render_run *r, const stage_map *m, int step, int n, const float *xin,
                      const float *t, const float *ctx, int ctx_len, const float *y, float *eps);
/* A VAE decode (z -> image) or encode (image -> moments) of m's map (dry:
 * sizing, counted into the plan). */
fs_code run_vae(render_run *r, const stage_map *m, int decode, const float *in, float *out);

/* ---- worker/inputs.c */
/* Rank 0 reads the job's input image, mask and noise file (sizes checked
 * from their headers before any decoding) and hands each rank what it
 * needs of them for stage 0's map m (the noise file and the input image
 * only with stage0_start: they feed nothing else); every rank calls it. */
fs_code inputs_read(render_run *r, const stage_map *m, int stage0_start);
void inputs_free(fs_job_inputs *in);

/* ---- worker/stage.c */
/* Builds the working set of the current stage (r->cur) for its steps. */
fs_code stage_work_make(render_run *r);
void stage_work_free(render_run *r);
/* Stage 0's starting latent: the seeded noise or the job's noise file. */
fs_code stage_initial_noise(render_run *r);
/* A later stage's starting latent x = add_noise(z, noise, t_restart). */
void stage_restart(render_run *r);
/* Sampler step i of the current stage on r->cur.x. */
fs_code stage_step(render_run *r, int i);

/* ---- worker/images.c */
/* Decodes m's latent: the float image strip ([f rows][f w][3], run_floats)
 * to *img (NULL: not kept); emit: rank 0 gets the 8-bit rows through the
 * hooks as stage m->stage's image. */
fs_code render_decode(render_run *r, const stage_map *m, float **img, int emit);
/* The next stage's starting latent z (own rows of `next`, run_floats) from
 * the previous stage: RGB (decode, bicubic, encode, posterior sample) or,
 * with upsample_latent, bicubic on the latent. img: prev's decoded strip when
 * already made, else NULL. */
fs_code render_upsample(render_run *r, const stage_map *prev, const float *img,
                        const stage_map *next, float **z);
/* The job's input image as stage 0's latent (encode + posterior sample). */
fs_code render_input_image(render_run *r, stage_map *m);
/* The job's mask for a stage's latent: own rows [rows][w] of 0/1 (run_floats). */
fs_code render_mask(render_run *r, const stage_map *m, float **mask);
#endif
