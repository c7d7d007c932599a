/* sampler: noise schedules and sampler steps as diffusers runs them for
 * SDXL (scheduler_config.json of stabilityai/stable-diffusion-xl-base-1.0:
 * 1000 train steps, scaled_linear betas 0.00085..0.012, epsilon prediction,
 * "leading" timestep spacing, steps_offset 1, set_alpha_to_one false).
 *
 *   Euler (EulerDiscreteScheduler, s_churn 0): x0 = n * init_sigma; model
 *   input x / sqrt(sigma_i^2 + 1) at timestep t_i; x += (sigma_{i+1} -
 *   sigma_i) * eps.
 *   DDIM (DDIMScheduler, eta 0): x0 = n (init_sigma 1); model input x;
 *   x_prev = sqrt(a_prev) * x0_pred + sqrt(1 - a_prev) * eps, a_prev the
 *   alphas_cumprod at t_i - 1000/steps, or alphas_cumprod[0] past the end.
 *
 * Every step is elementwise, so strips step on their own: any split of the
 * latent gives the same bits. Arithmetic follows diffusers' float32 order of
 * operations where that matters for matching it to 1e-6. */
#ifndef FS_SAMPLER_H
#define FS_SAMPLER_H

#include <stddef.h>
#include <stdint.h>
#include "core/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The schedulers (a job's `scheduler`: jobs/ names them euler and ddim). */
typedef enum { FS_SCHED_EULER = 0, FS_SCHED_DDIM = 1 } fs_scheduler_kind;

#define FS_TRAIN_STEPS 1000
#define FS_MAX_STEPS 1000

typedef struct fs_schedule {
    fs_scheduler_kind kind;
    int steps;
    int timesteps[FS_MAX_STEPS];       /* t_i, i = 0..steps-1: 981, 961, ..., 1 for 50 steps */
    float sigmas[FS_MAX_STEPS + 1];    /* Euler: sigma(t_i), sigmas[steps] = 0 (float32 as diffusers) */
    float alphas_cumprod[FS_TRAIN_STEPS];
    float init_sigma;                  /* Euler: sqrt(sigma_0^2 + 1) (leading); DDIM: 1 */
} fs_schedule;

/* steps in 1..FS_MAX_STEPS. */
fs_code fs_schedule_make(fs_scheduler_kind kind, int steps, fs_schedule *s, fs_error *err);

/* The factor on x for the model input at step i (Euler: 1/sqrt(sigma_i^2+1),
 * DDIM: 1). */
float fs_schedule_input_scale(const fs_schedule *s, int i);

/* eps = eps_u + w (eps_c - eps_u), n elements (CFG with batch [uncond, cond]). */
void fs_sampler_cfg(const float *eps_uncond, const float *eps_cond, float guidance, size_t n,
                    float *eps);

/* One step from step i to i+1 on n elements of x (in place). Euler runs
 * diffusers' float32 operations in its order (x0 = x - sigma*eps, d = (x -
 * x0)/sigma, x + d*dt), not the simplified x + dt*eps, which differs in the
 * last bits (sampler/step.c). An i outside 0..steps-1 leaves x alone. */
void fs_sampler_step(const fs_schedule *s, int i, float *x, const float *eps, size_t n);

/* Initial latent strip: rows [row0, row0 + rows) of an h x w x 4 latent
 * (NHWC), value (y, x, c) = init_sigma * fs_rng_normal(seed, FS_STREAM_NOISE,
 * (y * w + x) * 4 + c): the same numbers whatever the split. (For another
 * channel count c the index is (y * w + x) * c + ch.) */
#define FS_STREAM_NOISE 1
void fs_sampler_init_noise(const fs_schedule *s, uint64_t seed, int h, int w, int c, int row0,
                           int rows, float *x);

/* The same from a noise tensor n (NHWC strip, unit variance, e.g. read from
 * a job's noise file): x = init_sigma * n. */
void fs_sampler_scale_noise(const fs_schedule *s, const float *noise, size_t n, float *x);

/* Reads a noise file: a .safetensors with tensor "noise" [1, c, h, w]
 * (NCHW, F32/F16/BF16, as diffusers' latents=) and returns rows [row0, row0
 * + rows) as NHWC. Errors name the file and what is wrong (missing tensor,
 * shape not [1, c, h, w]). */
fs_code fs_noise_file_read(const char *path, int h, int w, int c, int row0, int rows, float *x,
                           fs_error *err);


/* ---------------------------------------------------------------- the self-cascade
 * (sampler/cascade.c; spec/freescale.md sections 2 and 3.) */

/* Counter-based streams of a cascade (seed = the job's): the key of every
 * random number is (stream, global index), so no value depends on the split. */
#define FS_STREAM_STAGE_NOISE(s) (0x100u + (uint64_t)(s))   /* eps of stage s, index (y w + x) 4 + c */
#define FS_STREAM_POSTERIOR(s) (0x200u + (uint64_t)(s))     /* VAE sample of stage s's input */
#define FS_STREAM_JITTER(s) (0x300u + (uint64_t)(s))        /* scale-fusion windows of stage s */

/* noisy = add_noise(z, eps, t_i): Euler z + sigma_i eps (the variance-exploding
 * form the official code mixes in), DDIM sqrt(a_t) z + sqrt(1 - a_t) eps. */
void fs_sampler_add_noise(const fs_schedule *s, int i, const float *z, const float *eps,
                          size_t n, float *noisy);

/* Restrained dilation's schedule: the factor for step i of stage `stage`
 * whose latent is w_lat wide over a base (stage 0) of base_w_lat: d =
 * w_lat / base_w_lat (the width alone, as the official target_size[1] //
 * 1024) for steps i < dilate_tau of stages after the first, else 1. */
int fs_cascade_dilation(int stage, int i, int dilate_tau, int w_lat, int base_w_lat);

/* cosine_factor(t) = (1 + cos(pi (1000 - t) / 1000)) / 2 at t = timesteps[i]. */
double fs_detail_cosine(const fs_schedule *s, int i);

/* Detail control before every UNet call of a later stage:
 * x = (1 - c) x + c add_noise(z, eps, t_i), c = cosine^alpha; with a mask
 * ([rows][w] values 0 or 1, NULL = none) the exponent is per pixel: m
 * alpha_fg + (1 - m) alpha_bg. x, z, eps: [pixels][channels]. */
void fs_detail_blend(const fs_schedule *s, int i, float alpha_fg, float alpha_bg,
                     const float *mask, const float *z, const float *eps, size_t pixels,
                     int channels, float *x);

#ifdef __cplusplus
}
#endif
#endif
