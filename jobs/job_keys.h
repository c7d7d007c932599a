/* jobs/job_keys.h: private to jobs/: the table of job keys (job_keys.c),
 * one entry per key: its name, type, range, default, the fs_job field it
 * fills and one line of help. The reader (jobs.c), the validator and the
 * YAML writer (job_text.c) and the key list (`freescale keys`, the README's
 * table) all walk it, so a key is written down once. Keys with structure
 * (stages, freeu) name their own read, write, check and describe functions
 * in their entry; the defaults that follow other keys (size/stages,
 * original_size, restart_step, dilate_tau, freeu) are resolved in jobs.c
 * and described by the entry's `follows`. Also here: the output sink and
 * the value checks the entries share. */
#ifndef FS_JOBS_JOB_KEYS_H
#define FS_JOBS_JOB_KEYS_H

#include <stddef.h>
#include <stdint.h>
#include "core/core.h"
#include "jobs/job_read.h"
#include "jobs/jobs.h"
#include "jobs/yaml_doc.h"

/* The keys in the order the YAML text (validate's printout, the PNG's job
 * chunk) and the key list write them. */
typedef enum {
    K_MODEL, K_PROMPT, K_NEGATIVE_PROMPT, K_SEED, K_STEPS, K_GUIDANCE, K_SCHEDULER, K_SIZE,
    K_OUTPUT, K_PRECISION, K_NOISE, K_ORIGINAL_SIZE, K_TARGET_SIZE, K_CROP, K_VAE_TILING,
    /* FreeScale */
    K_STAGES, K_RESTART_STEP, K_COSINE_SCALE, K_COSINE_SCALE_BG, K_DILATE_TAU, K_FAST_MODE,
    K_UPSAMPLE, K_MASK, K_INPUT_IMAGE, K_FREEU, K_BLUR, K_BLUR_SIGMA, K_STAGE_OUTPUTS,
    K_SCALE_FUSION, K_DILATION,
    K_COUNT
} fs_job_key;

/* ---------------------------------------------------------------- output sink */

typedef struct jk_sink {
    char *buf;
    size_t cap, len;  /* len: bytes the whole text needs, even past cap */
} jk_sink;

void jk_put(jk_sink *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Double-quoted, with every character YAML would refuse or fold escaped. */
void jk_put_quoted(jk_sink *o, const char *s, size_t cap);
/* The shortest %g that reads back (strtof) to the same float. */
void jk_put_float(jk_sink *o, float v);

/* ---------------------------------------------------------------- checks of a built job
 * "SOURCE: key[: sub]: expected ..., got V" (the messages fs_job_validate gives). */
fs_code jk_check_text(const fs_job *job, const char *key, const char *s, size_t cap, fs_error *err);
fs_code jk_check_range(const fs_job *job, const char *key, const char *sub, int v, int lo, int hi,
                       int mult, fs_error *err);
fs_code jk_check_number(const fs_job *job, const char *key, float v, float lo, float hi,
                        int lo_open, fs_error *err);

/* ---------------------------------------------------------------- the table */

typedef enum {
    JK_STRING,   /* char[size]: UTF-8 text */
    JK_PATH,     /* char[size]: a file (file_kind) or, file_kind NULL, the model, which must
                    exist; stored absolute */
    JK_U64,      /* uint64_t: a decimal integer lo..hi */
    JK_INT,      /* int: a decimal integer lo..hi */
    JK_NUMBER,   /* float: a decimal number min..max (lo_open: > min) */
    JK_BOOL,     /* int 0/1: true, false, yes, no */
    JK_CHOICE,   /* int: the index of one of names (checked as an integer 0..count-1) */
    JK_ENUM,     /* a C enum: values[i] (or i) for names[i] (checked as one of them) */
    JK_PAIR,     /* int at field and at field2: one integer for both, [a, b] or {a:, b:} */
    JK_CUSTOM,   /* read, write and describe name functions */
} jk_type;

typedef struct fs_job_key_def fs_job_key_def;
struct fs_job_key_def {
    const char *name;
    jk_type type;
    size_t field, field2, size;         /* offsetof(fs_job, ...); a string's bytes */
    uint64_t lo, hi;                    /* JK_INT, JK_U64; JK_CUSTOM stages: the count */
    double min, max;                    /* JK_NUMBER; JK_CUSTOM freeu: each factor */
    int lo_open;                        /* JK_NUMBER: min itself is refused */
    jr_pair_spec pair;                  /* JK_PAIR; stages: each size */
    const char *const *names;           /* JK_CHOICE, JK_ENUM */
    const int *values;                  /* JK_ENUM: NULL = the index */
    int count;
    const char *file_kind;              /* JK_PATH: "a PNG file"; NULL: the model */
    int required;                       /* a file must name it */
    const char *nonempty;               /* strings: "" is refused; says what it is for */
    /* The default, as a plain YAML scalar read by the same reader as a file's
     * value ("" = null: none); NULL: required, or it follows other keys. */
    const char *def;
    const char *follows;                /* how a default that follows other keys is made */
    const char *help;                   /* one line for the key list */
    /* JK_CUSTOM: reads v into job (job unchanged on error); writes the value
     * as YAML; writes the key list's value column. */
    fs_code (*read)(jr_ctx *c, const fs_job_key_def *d, const yd_node *v, fs_job *job);
    void (*write)(jk_sink *o, const fs_job_key_def *d, const fs_job *job);
    void (*describe)(jk_sink *o, const fs_job_key_def *d);
    /* Replaces the type's own check in fs_job_validate (NULL: the type's). */
    fs_code (*check)(const fs_job_key_def *d, const fs_job *job, fs_error *err);
};

extern const fs_job_key_def fs_job_keys[K_COUNT];
/* The keys' names, for jr_read_key and its suggestions. */
#define FS_JOB_KEY_NAMES ((jr_names){&fs_job_keys[0].name, sizeof(fs_job_key_def), K_COUNT})

/* A field of job by its offset. */
#define JK_FIELD(type, job, off) ((type *)(void *)((char *)(job) + (off)))
#define JK_CFIELD(type, job, off) ((const type *)(const void *)((const char *)(job) + (off)))

/* ---------------------------------------------------------------- defaults that follow */

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

/* FreeU's factors: b1, b2, s1, s2 and their defaults 1.1, 1.2, 0.6, 0.4. */
extern const char *const fs_job_freeu_names[4];
extern const float fs_job_freeu_defaults[4];

static inline void fs_job_freeu_get(const fs_job *j, float f[4]) {
    f[0] = j->freeu_b1, f[1] = j->freeu_b2, f[2] = j->freeu_s1, f[3] = j->freeu_s2;
}

static inline void fs_job_freeu_set(fs_job *job, int on, const float f[4]) {
    job->freeu = on;
    job->freeu_b1 = f[0], job->freeu_b2 = f[1], job->freeu_s1 = f[2], job->freeu_s2 = f[3];
}

static inline int fs_job_freeu_factors_default(const fs_job *j) {
    float f[4];
    fs_job_freeu_get(j, f);
    for (int i = 0; i < 4; i++)
        if (f[i] != fs_job_freeu_defaults[i]) return 0;
    return 1;
}

#endif
