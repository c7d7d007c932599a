/* jobs: the job file. A YAML document (libyaml) becomes a validated fs_job;
 * every error names the file, the line and the column (1-based) and says
 * what was expected. The struct is flat (fixed-size strings, no pointers) so
 * rank 0 can broadcast it as bytes and a checkpoint can hash it.
 *
 * The keys: one table, jobs/job_keys.c, gives each key's name, type,
 * range, default, the field it fills and a line of help; the reader, the
 * checks, the YAML text and --set all follow it. `freescale keys` prints it
 * as Markdown (fs_job_keys_markdown), and the README's "Job files" table is
 * that output (tests/cli_keys.sh compares them). spec/freescale.md section
 * 11 gives the FreeScale defaults' sources. Unknown keys are errors that
 * suggest the nearest known key.
 *
 * Reading rules (the same for the file and for --set):
 *   - one YAML document, a mapping at the top; at most 1 MiB, 10000 nodes,
 *     32 levels; anchors and aliases work (an alias shares the node, never
 *     copies it); tags other than the standard !!str/!!int/... are refused
 *   - integers are plain decimal digits (no 0x, no 1_000, no leading zeros,
 *     which YAML 1.1 reads as octal); a quoted "20" is a string, not 20
 *   - booleans: true/false/yes/no (any case)
 *   - strings: UTF-8 without NUL; prompt <= FS_JOB_TEXT_MAX-1 bytes, paths
 *     <= FS_JOB_PATH_MAX-1; null (or "") is "none" for negative_prompt,
 *     noise and model (= default)
 *   - model, noise, mask and input_image are checked to exist (all but
 *     model: a regular file) and are stored absolute (realpath), so a job
 *     means the same files from any directory; output is kept as written
 *     (relative to the directory the render runs in) and not checked
 *   - keys left out whose defaults depend on other keys are resolved after
 *     every key of the file, in any order: size (the last stage), stages
 *     (one: the size), original_size / target_size (stage 0), restart_step
 *     and dilate_tau (from steps), freeu (from the stage count). Their
 *     bounds against steps are checked then too, at the value's position.
 *   - fs_job_set moves such a key along when it still holds the default it
 *     had before the change (i.e. it was following); one that differs was
 *     chosen and stays: --set size (one stage: stage 0 follows; original/
 *     target_size follow stage 0), --set stages (size is the last stage;
 *     original/target_size follow stage 0; freeu follows the stage count
 *     unless its factors were changed), --set steps (restart_step,
 *     dilate_tau). The struct keeps no "explicit" flags, so a value set to
 *     exactly its default follows like one left out. So --set original_size=...
 *     after --set size=... pins it, and after validate the fields are concrete.
 *   - fs_job_set checks a value on its own; what depends on other keys
 *     (restart_step < steps, dilate_tau <= steps, size = last stage) is
 *     fs_job_validate's, after all overrides, so their order does not matter.
 *
 * Error codes: FS_ERR_FORMAT malformed YAML, a second document, top level
 * not a mapping, caps exceeded; FS_ERR_INVALID unknown key, duplicate key,
 * wrong type, unknown enum value, missing prompt, NUL or bad UTF-8, stages
 * that shrink, a size that is not the last stage; FS_ERR_RANGE a well-formed
 * value out of range or too long (restart_step >= steps included); FS_ERR_IO
 * a model/noise/mask/input_image path that does not exist or the job file
 * cannot be read.
 * On an error from fs_job_set the job is unchanged. */
#ifndef FS_JOBS_H
#define FS_JOBS_H

#include <stddef.h>
#include <stdint.h>
#include "core/core.h"
#include "sampler/sampler.h"   /* fs_scheduler_kind */

#ifdef __cplusplus
extern "C" {
#endif

#define FS_JOB_PATH_MAX 1024
#define FS_JOB_TEXT_MAX 4096   /* prompt bytes + 1 */

#define FS_JOB_MAX_STAGES 8

typedef struct fs_job {
    /* Each field below is filled by one key of the table (jobs/job_keys.c),
     * which gives its range and default; these comments say only how the
     * field holds the value. */
    char source[FS_JOB_PATH_MAX];      /* the job file ("<string>" or "--set" for others) */
    char model[FS_JOB_PATH_MAX];       /* "" = the embedded default model */
    char prompt[FS_JOB_TEXT_MAX];
    char negative_prompt[FS_JOB_TEXT_MAX];   /* "" = none */
    uint64_t seed;
    int steps;
    float guidance;
    fs_scheduler_kind scheduler;
    int width, height;                 /* pixels: size */
    char output[FS_JOB_PATH_MAX];
    fs_dtype precision;                /* FS_DTYPE_F32, FS_DTYPE_F16, FS_DTYPE_BF16 */
    char noise[FS_JOB_PATH_MAX];       /* "" = seeded RNG */
    int orig_width, orig_height;       /* micro-conditioning: original_size */
    int target_width, target_height;
    int crop_left, crop_top;
    int vae_tiling;

    /* ---- FreeScale (spec/freescale.md; the keys below, issue 6). A job
     * with one stage is a plain render (the keys below other than freeu are
     * then ignored); with several, stage 0 is rendered at stage size 0 and
     * every later stage is the self-cascade's upscale. */
    int n_stages;                              /* 1..FS_JOB_MAX_STAGES; 1 = plain */
    int stage_width[FS_JOB_MAX_STAGES];        /* pixels; the last equals (width, */
    int stage_height[FS_JOB_MAX_STAGES];       /*   height); entries past n_stages are 0 */
    int restart_step;
    float cosine_scale;                        /* the detail blend's alpha */
    float cosine_scale_bg;                     /* alpha outside the mask */
    int dilate_tau;                            /* dilation for steps i < tau */
    int fast_mode;
    int upsample_latent;                       /* upsample: 1 = latent, 0 = rgb */
    char mask[FS_JOB_PATH_MAX];                /* "" = none */
    char input_image[FS_JOB_PATH_MAX];         /* "" = none */
    int freeu;                                 /* on; the factors: */
    float freeu_b1, freeu_b2, freeu_s1, freeu_s2;
    int blur;                                  /* scale fusion's low-pass: fs_blur_kind
                                                  (unet/unet.h) */
    float blur_sigma;
    int stage_outputs;
    int scale_fusion;                          /* ablation switch: 0 = plain self-attention */
    int dilation;                              /* ablation switch: 0 = no restrained dilation */
} fs_job;

/* The table's defaults (prompt empty: a job must set it); every byte not
 * set is zero (string tails, padding), so equal jobs compare equal with
 * memcmp and hash the same. source is "--set". */
void fs_job_defaults(fs_job *job);

/* Reads and validates a job file. Errors: "job.yaml:3:5: unknown key
 * 'stpes' (did you mean 'steps'?)"; wrong type, out of range, missing
 * required key, duplicate key, a model or noise path that does not exist
 * (relative paths are taken relative to the job file's folder and stored
 * resolved), malformed YAML (libyaml's message with its position). */
fs_code fs_job_load(const char *path, fs_job *job, fs_error *err);
/* The same from a buffer; label names it in errors; relative paths are
 * taken relative to base_dir (NULL: the current directory). */
fs_code fs_job_parse(const char *text, size_t len, const char *label, const char *base_dir,
                     fs_job *job, fs_error *err);
/* Command-line override "key=value" (value parsed as YAML, e.g.
 * steps=20, size=[512,768], prompt="a cat", stages=4k, "stages=[512,1024]",
 * freeu={b1: 1.2}), applied after loading and validated like the file's
 * keys; errors name "--set key" ("--set steps: expected an integer
 * 1..1000, got '0'"). The string keys (prompt, negative_prompt, model,
 * noise, output, mask, input_image) take the rest of the argument as it is,
 * ": " and "#" included, unless it starts with a quote (' or "): then it is
 * read as a YAML string (escapes work). Relative paths start at the current
 * directory. Keys that follow this one move along (see above); call
 * fs_job_validate after the last one. */
fs_code fs_job_set(fs_job *job, const char *assignment, fs_error *err);
/* Cross-key checks after all overrides (required keys present, sizes
 * consistent, stages non-decreasing with the last one the size, unused
 * stage entries 0, restart_step < steps, dilate_tau <= steps, an off FreeU
 * holding the default factors, every enum and range); fs_job_load runs it,
 * call it again after fs_job_set. Not checked here: that input_image is
 * stage 0's size (the renderer reads the PNG). */
fs_code fs_job_validate(const fs_job *job, fs_error *err);
/* The job as YAML (every key, resolved), for logs and PNG text chunks;
 * fs_job_parse reads it back to the same bytes (source aside, which is the
 * label given); stages as a list (squares as one integer), freeu as
 * false, true or the mapping when a factor differs. Returns the length of
 * the whole text (like snprintf); buf gets at most cap-1 bytes and a NUL
 * (buf may be NULL when cap is 0). */
size_t fs_job_to_yaml(const fs_job *job, char *buf, size_t cap);
const char *fs_scheduler_name(fs_scheduler_kind k);
/* The key list as a Markdown table (key, value, default, help), one row per
 * key in the table's order: `freescale keys` and the README. Returns the
 * length like fs_job_to_yaml. */
size_t fs_job_keys_markdown(char *buf, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
