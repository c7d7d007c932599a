/* jobs: the job file. A YAML document (libyaml) becomes a validated fs_job;
 * every error names the file, the line and the column (1-based) and says
 * what was expected. The struct is flat (fixed-size strings, no pointers) so
 * rank 0 can broadcast it as bytes and a checkpoint can hash it.
 *
 * Keys (spec/freescale.md section 11 gives the defaults):
 *   model:            SGM .safetensors file or diffusers folder; absent or
 *                     "default": the embedded tiny model (pictures are noise)
 *   prompt:           string (required)
 *   negative_prompt:  string; absent or "" = none (SDXL's zero branch)
 *   seed:             integer >= 0                          (0)
 *   steps:            integer 1..1000                       (50)
 *   guidance:         number 0..100 (CFG scale)             (7.5)
 *   scheduler:        euler | ddim                          (euler)
 *   size:             [width, height] or {width:, height:} or a single
 *                     integer for a square; multiples of 64, 64..65536
 *                                                           (1024 x 1024)
 *   output:           PNG path                              (out.png)
 *   precision:        fp32 | fp16 | bf16: the values the weights are rounded
 *                     to after loading (fp16 = what a half-precision
 *                     pipeline holds); compute is fp32      (fp32)
 *   noise:            a .safetensors file with tensor "noise" [1, 4, h/8, w/8]
 *                     (F32, NCHW as diffusers' `latents=` argument, before the
 *                     scheduler's init_noise_sigma): initial noise instead of
 *                     the seeded counter-based RNG
 *   original_size, target_size: [width, height]   (stage 0's size: FreeScale
 *                     keeps the time ids at the base size, spec section 1.2;
 *                     for one stage that is the size)
 *   crop: [left, top]                                   ([0, 0])
 *   vae_tiling:       bool: diffusers' tiled VAE instead of exact strips (false)
 *
 * FreeScale (spec/freescale.md sections 2-5, 7, 11):
 *   stages:           the self-cascade: a list of 1..8 sizes (each written
 *                     like size: an integer for a square, [width, height] or
 *                     {width:, height:}), multiples of 64, each at least as
 *                     wide and as tall as the one before; or a preset (squares)
 *                     "2k" = [1024, 2048], "4k" = [1024, 2048, 4096],
 *                     "8k" = [1024 .. 8192], "16k" = [1024 .. 16384].
 *                     With stages, size is the last stage (left out it follows;
 *                     given, it must equal it). Absent: one stage = size, a
 *                     plain render                          ([size])
 *   restart_step:     0..steps-1: the step each later stage restarts at
 *                                                    (int(0.3 * steps): 15 at 50)
 *   cosine_scale:     number 0..100: the detail blend's alpha       (2.0)
 *   cosine_scale_bg:  number 0..100: alpha outside the mask (mask only) (1.0)
 *   dilate_tau:       0..steps: convs are dilated while step < tau
 *                                      (round(0.7 * steps), halves to even: 35 at 50)
 *   fast_mode:        bool: global attention on dilated sub-lattices (false)
 *   upsample:         rgb | latent: decode-bicubic-encode, or bicubic on the
 *                     latent (upsample_latent 0 / 1)             (rgb)
 *   mask:             PNG file (must exist; "" = none): cosine_scale where
 *                     nonzero, cosine_scale_bg elsewhere         ("")
 *   input_image:      PNG file (must exist; "" = none) that replaces stage 0;
 *                     it must be stage 0's size, which the renderer checks
 *                     (jobs reads no images)                     ("")
 *   freeu:            true | false | {b1:, b2:, s1:, s2:} (numbers 0..10; a
 *                     factor left out is its default 1.1, 1.2, 0.6, 0.4; false
 *                     also resets them)   (on for several stages, off for one:
 *                                          a plain render matches diffusers')
 *   blur:             3d | wc | hw | fft: scale fusion's low-pass (fs_job_blur) (3d)
 *   blur_sigma:       number > 0, at most 100                     (1.0)
 *   stage_outputs:    bool: also write each earlier stage's PNG next to output
 *                     as NAME_<W>x<H>.png                        (false)
 *   scale_fusion:     bool: scale fusion in the later stages (true); false for
 *                     ablations and the cascade-without-fusion benchmark
 *   dilation:         bool: restrained dilation in the later stages (true)
 *
 * Unknown keys are errors that suggest the nearest known key.
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

#ifdef __cplusplus
extern "C" {
#endif

#define FS_JOB_PATH_MAX 1024
#define FS_JOB_TEXT_MAX 4096   /* prompt bytes + 1 */

typedef enum { FS_SCHED_EULER = 0, FS_SCHED_DDIM = 1 } fs_scheduler_kind;
/* Scale fusion's low-pass (same order as unet's fs_blur_kind). */
typedef enum { FS_JOB_BLUR_3D = 0, FS_JOB_BLUR_WC, FS_JOB_BLUR_HW, FS_JOB_BLUR_FFT } fs_job_blur;
#define FS_JOB_MAX_STAGES 8

typedef struct fs_job {
    char source[FS_JOB_PATH_MAX];      /* the job file ("<string>" or "--set" for others) */
    char model[FS_JOB_PATH_MAX];       /* "" = the embedded default model */
    char prompt[FS_JOB_TEXT_MAX];
    char negative_prompt[FS_JOB_TEXT_MAX];   /* "" = none */
    uint64_t seed;
    int steps;
    float guidance;
    fs_scheduler_kind scheduler;
    int width, height;                 /* pixels, multiples of 64 */
    char output[FS_JOB_PATH_MAX];
    fs_dtype precision;                /* FS_DTYPE_F32, FS_DTYPE_F16, FS_DTYPE_BF16 */
    char noise[FS_JOB_PATH_MAX];       /* "" = seeded RNG */
    int orig_width, orig_height;       /* micro-conditioning; set from size when absent */
    int target_width, target_height;
    int crop_left, crop_top;
    int vae_tiling;

    /* ---- FreeScale (spec/freescale.md; the keys below, issue 6). A job
     * with one stage is a plain render (the keys below other than freeu are
     * then ignored); with several, stage 0 is rendered at stage size 0 and
     * every later stage is the self-cascade's upscale. */
    int n_stages;                              /* 1..FS_JOB_MAX_STAGES; 1 = plain */
    int stage_width[FS_JOB_MAX_STAGES];        /* pixels, multiples of 64; the last */
    int stage_height[FS_JOB_MAX_STAGES];       /*   equals (width, height) */
    int restart_step;                          /* 0..steps-1; default int(0.3 * steps) */
    float cosine_scale;                        /* alpha (2.0) */
    float cosine_scale_bg;                     /* alpha outside the mask (1.0) */
    int dilate_tau;                            /* dilation for steps i < tau (35 at 50 steps:
                                                  default round(0.7 * steps)) */
    int fast_mode;                             /* sub-lattice global attention (false) */
    int upsample_latent;                       /* 1: bicubic on the latent instead of RGB */
    char mask[FS_JOB_PATH_MAX];                /* detail mask PNG ("" = none) */
    char input_image[FS_JOB_PATH_MAX];         /* img2img: replaces stage 0 ("" = none) */
    int freeu;                                 /* default: on for cascades, off for 1 stage */
    float freeu_b1, freeu_b2, freeu_s1, freeu_s2;  /* 1.1, 1.2, 0.6, 0.4 */
    int blur;                                  /* fs_job_blur */
    float blur_sigma;                          /* 1.0 */
    int stage_outputs;                         /* also write each earlier stage's PNG */
    int scale_fusion;                          /* ablation switch: 0 = plain self-attention (1) */
    int dilation;                              /* ablation switch: 0 = no restrained dilation (1) */
} fs_job;

/* The defaults above (prompt empty: a job must set it); every byte not
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

#ifdef __cplusplus
}
#endif
#endif
