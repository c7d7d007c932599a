/* worker: what every rank runs on its strip: a render (text conditioning,
 * the sampler loop over the UNet, the VAE decode of its strip), the model
 * bundle it runs, and the distributed exactness check (a GroupNorm + SiLU +
 * 3x3 convolution block compared bit for bit with the whole map).
 * The worker knows nothing of YAML or of output files: it takes a validated
 * fs_job and hands image rows to the coordinator's callback. */
#ifndef FS_WORKER_H
#define FS_WORKER_H
#include "comm/comm.h"
#include "core/core.h"
#include "jobs/jobs.h"
#include "text/text.h"
#include "unet/unet.h"
#include "vae/vae.h"

/* ---------------------------------------------------------------- models
 * The networks of one SDXL model, opened (bound, no weights read) up front so
 * a bad path or a missing tensor fails before any work, and loaded one phase
 * at a time so the peak holds one network: the text encoders for the
 * conditioning, then the UNet for the loop, then the VAE. */
typedef struct fs_models fs_models;

/* path: an SGM single file or a diffusers folder; NULL or "": the embedded
 * default, a tiny SDXL-architecture model (both tiny text encoders on the
 * real CLIP tokenizer, a tiny UNet and VAE) with deterministic weights from
 * a fixed seed. Its pictures are not meaningful: it exists so the whole
 * pipeline runs in seconds anywhere. precision: the weights are rounded to it
 * after loading (FS_DTYPE_F32 / F16 / BF16). */
fs_code fs_models_open(const char *path, fs_dtype precision, fs_models **out, fs_error *err);
void fs_models_free(fs_models *m);
int fs_models_embedded(const fs_models *m);
const char *fs_models_describe(const fs_models *m);   /* one line for logs */
/* Load (or build) a phase's networks; drop frees their weights. */
fs_code fs_models_text(fs_models *m, fs_clip **clip_l, fs_clip **clip_g, fs_tokenizer **tok_l,
                       fs_tokenizer **tok_g, fs_error *err);
void fs_models_drop_text(fs_models *m);
fs_code fs_models_unet(fs_models *m, fs_unet **unet, fs_error *err);
void fs_models_drop_unet(fs_models *m);
fs_code fs_models_vae(fs_models *m, fs_vae **vae, fs_error *err);
void fs_models_drop_vae(fs_models *m);
/* What the render needs to know of the denoiser and its VAE, instead of
 * SDXL's literals: worked out when the model is opened (the embedded
 * default: from its configurations), after checking that the networks fit
 * together (the UNet's in and out channels are the VAE's latent channels; a
 * VAE that does not scale by 8 is refused: the job sizes assume it). */
typedef enum { FS_PREDICT_EPSILON = 0 } fs_prediction;
typedef struct fs_denoiser_desc {
    int latent_channels;         /* 4 */
    int vae_factor;              /* pixels per latent pixel: 2^(VAE levels - 1) = 8 */
    int row_align;               /* latent rows a strip boundary falls on: 2^(UNet levels - 1) */
    int token_window;            /* tokens per prompt chunk (CLIP positions): 77 */
    int context_dim;             /* the UNet's cross-attention input width: 2048 */
    int adm_in;                  /* the added condition y's width: 2816 */
    fs_prediction prediction;    /* what the UNet predicts (epsilon: SDXL base) */
} fs_denoiser_desc;
fs_code fs_models_denoiser(const fs_models *m, fs_denoiser_desc *d, fs_error *err);

/* The conditioning of both CFG branches ([uncond, cond]) for the job's
 * prompt, as the model family makes it (worker/conditioning.c; SDXL: both
 * CLIP encoders, loaded for it and dropped after): *context [2][chunks *
 * token_window][context_dim] and *y [2][adm_in], fs_alloc'ed. */
fs_code fs_models_condition(fs_models *m, const fs_job *job, float **context, float **y,
                            int *chunks, fs_error *err);
/* What that takes, without reading a weight: prompt chunks, the encoders'
 * parameters and bytes as held, their activations at once, the loader's
 * scratch, and the conditioning kept through the render. */
typedef struct fs_condition_plan {
    int chunks;
    uint64_t text_params;
    size_t weight_bytes, act_bytes, load_bytes, cond_bytes;
} fs_condition_plan;
fs_code fs_models_condition_plan(fs_models *m, const fs_job *job, fs_condition_plan *p,
                                 fs_error *err);

/* For planning (worker/plan.c): the networks as fs_models_open bound them
 * (shapes and parameter counts, no weight read) and the tokenizers. The
 * embedded default binds nothing at open: its tiny networks are built here,
 * as a render would. Owned by m; valid until a phase is loaded or dropped. */
fs_code fs_models_shapes(fs_models *m, const fs_clip **clip_l, const fs_clip **clip_g,
                         const fs_unet **unet, const fs_vae **vae, const fs_tokenizer **tok_l,
                         const fs_tokenizer **tok_g, fs_error *err);
/* The embedded default's configurations (tests, benchmarks). */
fs_unet_config fs_models_embedded_unet_config(void);
fs_vae_config fs_models_embedded_vae_config(void);
fs_clip_config fs_models_embedded_clip_config(int which);

/* ---------------------------------------------------------------- render
 * Collective: every rank calls it with the same job (rank 0 reads it and
 * broadcasts it). Each rank denoises its row strip of the latent (strip
 * boundaries on multiples of 2^(levels-1) latent rows) and decodes it; rank 0
 * gets the image rows in order through on_rows. Same bits for any rank count.
 * A job with several stages runs FreeScale's self-cascade (worker/stage.c,
 * worker/images.c): stage 0 a plain render (or the job's input image),
 * every later stage upsampled from the previous one, re-noised to the
 * restart step and denoised with restrained dilation, scale fusion and
 * FreeU; every random number is keyed by global index (sampler.h streams). */
typedef struct fs_render_hooks {
    /* rank 0, after each phase and each step (phase "text", "unet", "vae",
     * "upsample"; stage of n_stages); a nonzero return stops the render on
     * every rank (Ctrl-C). */
    int (*on_progress)(void *user, const char *phase, int stage, int n_stages, int step,
                       int steps);
    /* rank 0: an image of stage `stage` begins (the final one is stage
     * n_stages - 1; earlier stages only with job->stage_outputs), its rows
     * come through on_rows, 8-bit RGB, top to bottom, then end_image (ok = 0:
     * the render failed or stopped, drop the file). */
    fs_code (*begin_image)(void *user, int stage, int width, int height, fs_error *err);
    fs_code (*on_rows)(void *user, const uint8_t *rows, int y0, int count, int width,
                       fs_error *err);
    fs_code (*end_image)(void *user, int stage, int ok, fs_error *err);
    /* every rank (optional): its strip of each stage's final latent (the scaled
     * latent the UNet works on, NHWC [rows][w][4]) and of the decoded image
     * (NHWC [rows][W][3], in [-1, 1], not clamped), in latent / pixel rows. */
    void (*on_latent)(void *user, int stage, const float *strip, int row0, int rows, int h,
                      int w);
    void (*on_image)(void *user, int stage, const float *strip, int row0, int rows, int height,
                     int width);
    void *user;
} fs_render_hooks;

typedef struct fs_render_stats {
    int stopped;                     /* 1: stopped by on_progress (no image) */
    double seconds_text;             /* tokenizer + text encoders */
    double seconds_stages;           /* the sampler loops with the VAE work between stages */
    size_t peak_alloc;               /* fs_mem_peak of this rank (bytes) */
    size_t peak_rss;                 /* VmHWM of this rank */
    /* per stage (the sampler loop and the upsampling into it; the last stage
     * also its final decode): wall time, and peaks measured from the stage's
     * start (counted buffers; VmHWM where Linux lets it be reset, else 0) */
    double stage_seconds[FS_JOB_MAX_STAGES];
    size_t stage_peak_alloc[FS_JOB_MAX_STAGES];
    size_t stage_peak_rss[FS_JOB_MAX_STAGES];
    fs_traffic traffic[FS_TRAFFIC_KINDS];
} fs_render_stats;

/* The whole render: fs_render_begin, fs_render_advance until
 * fs_render_finished, fs_render_end. */
fs_code fs_worker_render(fs_comm *comm, const fs_job *job, fs_models *models,
                         const fs_render_hooks *hooks, fs_render_stats *stats, fs_error *err);

/* ---------------------------------------------------------------- render state
 * A render in progress on this rank, advanced one unit at a time. Its state
 * is everything the continuation reads that cannot be recomputed from the
 * job: where it stands (stage, step) and the rank's strip of the stage's
 * latent x, plus, in a later stage's loop, the upsampled clean latent z the
 * detail blend pulls toward. The conditioning, the stage's noise (Philox
 * keys: seed, stream, global index) and the mask are deterministic and are
 * rebuilt from the job. A checkpoint is this state written out. */
typedef struct fs_render fs_render;
typedef struct fs_render_state {
    int stage, n_stages;
    int step;                    /* the next sampler step of the stage; == steps: its loop
                                    is over (the next advance changes stage or decodes) */
    int first_step, steps;       /* the stage's loop runs first_step .. steps - 1 */
    int done;                    /* the final image is out */
    int lat_h, lat_w, channels;  /* the stage's latent */
    int row0, rows;              /* this rank's strip of it */
    const float *x;              /* [rows][lat_w][channels] */
    const float *z;              /* the same shape, or NULL (stage 0, or the loop is over) */
    /* the Philox keys of the stage's noise (the detail blend's eps: value of
     * latent element e = fs_rng_normal(seed, stream, e)); resumes check them */
    uint64_t noise_seed, noise_stream;
} fs_render_state;

/* Collective, like fs_worker_render: the conditioning, the UNet, and stage
 * 0's starting latent. *out is set even on failure (fs_render_end frees it). */
fs_code fs_render_begin(fs_comm *comm, const fs_job *job, fs_models *models,
                        const fs_render_hooks *hooks, fs_render **out, fs_error *err);
/* Collective: a render that goes on from a state fs_render_get_state gave
 * (a copy of it: x and z are read here) of the same job, model and rank
 * count; the result is the same bits as an uninterrupted render. A state
 * that does not fit (another job's stage count or sizes, another strip) is
 * refused, naming what differs. */
fs_code fs_render_resume(fs_comm *comm, const fs_job *job, fs_models *models,
                         const fs_render_hooks *hooks, const fs_render_state *from,
                         fs_render **out, fs_error *err);
/* One sampler step; or, when the stage's loop is over, one stage change
 * (decode, upsample, re-noise) or the final decode. Collective. */
fs_code fs_render_advance(fs_render *r);
/* Done, or stopped by on_progress. */
int fs_render_finished(const fs_render *r);
fs_render_state fs_render_get_state(const fs_render *r);
/* Frees everything; the stats (may be NULL) of the render so far. */
void fs_render_end(fs_render *r, fs_render_stats *stats);

/* ---------------------------------------------------------------- plan
 * What a render of a job holds on each of `ranks` CPU ranks, worked out on
 * one process before any work (worker/plan.c): the render's own loop run
 * dry, on the networks' shapes only (fs_models_shapes): every buffer it
 * would hold is counted instead of allocated, every network call is that
 * network's sizing pass with the settings of the step. Every
 * figure is the largest strip's (strip 0: the first strips get the extra
 * rows). Bytes are buffers (fs_alloc) as fs_render_stats counts them; the
 * weights are held as f32 whatever the job's precision (they are rounded to
 * it in place). Allocations of a few MB inside the ops (per-thread GEMM
 * warm-up, attention and resize scratch) and the tiled VAE's tiles (malloc)
 * are not in the counted figures. */
typedef struct fs_stage_plan {
    int stage;
    int img_w, img_h, lat_w, lat_h;
    int max_rows;                /* latent rows of the largest strip */
    int min_rows;                /* of the smallest */
    int first_step, evals;       /* UNet evaluations: steps first_step .. steps-1 (none:
                                    stage 0 is the input image) */
    int max_dilation;            /* restrained dilation's largest factor (1: none) */
    size_t unet_act_bytes;       /* UNet forward arena, the largest over the stage's steps */
    double unet_flops;           /* FLOPs of one evaluation on the largest strip (largest step) */
    double stage_flops;          /* of all the stage's evaluations, this strip */
    size_t decode_act_bytes;     /* decode of this stage's latent (its image or the next
                                    stage's input; tiled: one tile and the tile rows) */
    size_t encode_act_bytes;     /* encode of the image upsampled into it (0: none) */
    size_t peak_unet;            /* the sampler loop: weights held + buffers + UNet arena */
    size_t peak_vae;             /* the VAE work: the upsample into the stage, its decode */
    size_t peak_window;          /* what fs_render_stats.stage_peak_alloc[stage] measures
                                    (the render's window leaves out the decode that feeds
                                    the next stage: it is in peak_vae) */
    size_t peak_bytes;           /* max(peak_unet, peak_vae) */
} fs_stage_plan;

typedef struct fs_job_plan {
    int ranks;
    int max_ranks;               /* most ranks every stage's latent can be cut into */
    int n_stages, chunks, batch; /* prompt chunks of 77 tokens; UNet batch (2: CFG) */
    uint64_t text_params, unet_params, vae_params;
    size_t text_weight_bytes, unet_weight_bytes, vae_weight_bytes;  /* as held (f32) */
    size_t text_act_bytes;       /* both encoders' activations, their outputs */
    size_t cond_bytes;           /* the conditioning kept through the stages */
    size_t peak_text;            /* the text phase: encoders + activations + conditioning */
    size_t peak_bytes;           /* the job's: text and every stage */
    fs_stage_plan stage[FS_JOB_MAX_STAGES];
} fs_job_plan;

/* Plans a validated job on `ranks` ranks. More ranks than a stage has
 * groups of 2^(levels-1) latent rows: FS_ERR_RANGE saying so, with
 * plan->max_ranks set. Reads no weights. */
fs_code fs_worker_plan(const fs_job *job, fs_models *models, int ranks, fs_job_plan *plan,
                       fs_error *err);

typedef struct fs_check_params {
    int size;        /* latent map is size x size */
    int channels;    /* multiple of 32 (GroupNorm groups) */
    int batch;       /* 2: the CFG pair */
    int dilation;    /* of the 3x3 convolution */
    uint64_t seed;
} fs_check_params;

typedef struct fs_check_report {
    int identical;            /* gathered strips == whole map, bit for bit */
    size_t mismatches;        /* elements that differ */
    double seconds_strips;    /* this rank's strip pass (max over ranks) */
    double seconds_whole;     /* the whole map on one rank */
    fs_traffic traffic[FS_TRAFFIC_KINDS];  /* this rank's traffic in the strip pass */
} fs_check_report;

fs_check_params fs_check_default_params(void);
/* Collective: every rank calls it; the report is valid on every rank. */
fs_code fs_worker_check(fs_comm *comm, const fs_check_params *p, fs_check_report *report,
                        fs_error *err);
#endif
