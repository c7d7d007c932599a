/* jobs/job_keys.h: private to jobs/: the key table shared by the reader
 * (jobs.c) and the writer (job_text.c), so they cannot drift apart. */
#ifndef FS_JOBS_JOB_KEYS_H
#define FS_JOBS_JOB_KEYS_H

#include "core/core.h"

typedef enum {
    K_MODEL, K_PROMPT, K_NEGATIVE_PROMPT, K_SEED, K_STEPS, K_GUIDANCE, K_SCHEDULER, K_SIZE,
    K_OUTPUT, K_PRECISION, K_NOISE, K_ORIGINAL_SIZE, K_TARGET_SIZE, K_CROP, K_VAE_TILING,
    K_COUNT
} fs_job_key;

extern const char *const fs_job_key_names[K_COUNT];
extern const char *const fs_job_scheduler_names[2];   /* by fs_scheduler_kind */
extern const char *const fs_job_precision_names[3];   /* fp32, fp16, bf16 */
extern const fs_dtype fs_job_precision_dtypes[3];

#endif
