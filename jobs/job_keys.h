/* jobs/job_keys.h: private to jobs/: the key table shared by the reader
 * (jobs.c) and the writer (job_text.c), so they cannot drift apart, and the
 * defaults that follow other keys (restart_step, dilate_tau, freeu). */
#ifndef FS_JOBS_JOB_KEYS_H
#define FS_JOBS_JOB_KEYS_H

#include "core/core.h"
#include "jobs/jobs.h"

typedef enum {
    K_MODEL, K_PROMPT, K_NEGATIVE_PROMPT, K_SEED, K_STEPS, K_GUIDANCE, K_SCHEDULER, K_SIZE,
    K_OUTPUT, K_PRECISION, K_NOISE, K_ORIGINAL_SIZE, K_TARGET_SIZE, K_CROP, K_VAE_TILING,
    /* FreeScale */
    K_STAGES, K_RESTART_STEP, K_COSINE_SCALE, K_COSINE_SCALE_BG, K_DILATE_TAU, K_FAST_MODE,
    K_UPSAMPLE, K_MASK, K_INPUT_IMAGE, K_FREEU, K_BLUR, K_BLUR_SIGMA, K_STAGE_OUTPUTS,
    K_SCALE_FUSION, K_DILATION,
    K_COUNT
} fs_job_key;

extern const char *const fs_job_key_names[K_COUNT];
extern const char *const fs_job_scheduler_names[2];   /* by fs_scheduler_kind */
extern const char *const fs_job_precision_names[3];   /* fp32, fp16, bf16 */
extern const fs_dtype fs_job_precision_dtypes[3];
extern const char *const fs_job_upsample_names[2];    /* rgb, latent: by upsample_latent */
extern const char *const fs_job_blur_names[4];        /* by fs_job_blur */
extern const char *const fs_job_freeu_names[4];       /* b1, b2, s1, s2 */
extern const float fs_job_freeu_defaults[4];          /* 1.1, 1.2, 0.6, 0.4 */

/* The later stages restart at int(0.3 * steps), as the official pipeline
 * computes it (a double product truncated: the same value as Python's). */
static inline int fs_job_default_restart(int steps) { return (int)(0.3 * (double)steps); }

/* round(0.7 * steps) with Python's rounding (halves to even), so a Python
 * reference computes the same tau: 35 at 50 steps, 10 at 15 (10.5). */
static inline int fs_job_default_dilate_tau(int steps) {
    double x = 0.7 * (double)steps;
    int f = (int)x;  /* x >= 0: truncation is floor */
    double frac = x - (double)f;
    return frac > 0.5 || (frac == 0.5 && (f & 1)) ? f + 1 : f;
}

/* FreeU's factors as a job holds them: b1, b2, s1, s2. */
static inline void fs_job_freeu_get(const fs_job *j, float f[4]) {
    f[0] = j->freeu_b1, f[1] = j->freeu_b2, f[2] = j->freeu_s1, f[3] = j->freeu_s2;
}

static inline int fs_job_freeu_factors_default(const fs_job *j) {
    float f[4];
    fs_job_freeu_get(j, f);
    for (int i = 0; i < 4; i++)
        if (f[i] != fs_job_freeu_defaults[i]) return 0;
    return 1;
}

#endif
