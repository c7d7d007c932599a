/* sampler/step.c: CFG and the Euler / DDIM updates in the float32 order of
 * operations of diffusers 0.42.1 (each torch op rounds to float32, and the
 * CMake flags forbid the compiler to fuse a*b+c), so the steps match
 * diffusers' step() to the last bit on CPU (tests/test_sampler.c). This
 * file derives the scalar coefficients from the schedule; the elementwise
 * loops are ops of the backend table (kernels/steps.c), here the CPU's, on
 * the host buffers the API takes. */
#include <math.h>
#include "kernels/kernels.h"
#include "sampler/sampler.h"

void fs_sampler_cfg(const float *eps_uncond, const float *eps_cond, float guidance, size_t n,
                    float *eps) {
    /* noise_pred_uncond + guidance_scale * (noise_pred_text - noise_pred_uncond):
     * the Python float guidance becomes a float32 scalar in torch's mul.
     * (The CPU's ops cannot fail.) */
    const fs_backend *be = fs_backend_cpu();
    (void)be->op->cfg(be, eps_uncond, eps_cond, guidance, n, eps, NULL);
}

/* EulerDiscreteScheduler.step, epsilon prediction, s_churn 0 (gamma = 0, so
 * sigma_hat = sigma):
 *   pred_original_sample = sample - sigma_hat * model_output
 *   derivative = (sample - pred_original_sample) / sigma_hat
 *   dt = sigmas[i + 1] - sigma_hat
 *   prev_sample = sample + derivative * dt
 * Not simplified to x + dt * eps: (x - (x - s*e)) / s is not e in float32. */
static void euler_step(const fs_schedule *s, int i, float *x, const float *eps, size_t n) {
    const float sigma = s->sigmas[i];
    const float dt = s->sigmas[i + 1] - sigma;
    const fs_backend *be = fs_backend_cpu();
    (void)be->op->euler_step(be, x, eps, n, sigma, dt, NULL);
}

/* DDIMScheduler.step, epsilon prediction, eta 0, no clipping/thresholding:
 *   alpha_prod_t = alphas_cumprod[t]; alpha_prod_t_prev = alphas_cumprod[t -
 *   1000 // steps], or final_alpha_cumprod (alphas_cumprod[0], since
 *   set_alpha_to_one is false) when that is negative
 *   beta_prod_t = 1 - alpha_prod_t
 *   pred_original_sample = (sample - beta_prod_t ** 0.5 * eps) / alpha_prod_t ** 0.5
 *   std_dev_t = 0 (eta 0), so the direction is (1 - alpha_prod_t_prev) ** 0.5 * eps
 *   prev_sample = alpha_prod_t_prev ** 0.5 * pred_original_sample + direction
 * Every scalar is a float32 0-dim tensor and ** 0.5 is torch's sqrt. For
 * 1000 steps the first timestep is 1000, one past diffusers' table (it
 * raises an IndexError there); this clamps it to the last entry, as the Euler
 * table does through np.interp. */
static void ddim_step(const fs_schedule *s, int i, float *x, const float *eps, size_t n) {
    const float *ac = s->alphas_cumprod;
    int t = s->timesteps[i];
    int prev = t - FS_TRAIN_STEPS / s->steps;
    if (t > FS_TRAIN_STEPS - 1) t = FS_TRAIN_STEPS - 1;
    const float a_t = ac[t];
    const float a_prev = prev >= 0 ? ac[prev] : ac[0];
    const float beta_t = 1.0f - a_t;
    fs_ddim_coeffs c;
    c.sqrt_beta_t = sqrtf(beta_t);
    c.sqrt_alpha_t = sqrtf(a_t);
    c.dir = sqrtf(1.0f - a_prev - 0.0f * 0.0f);
    c.sqrt_alpha_prev = sqrtf(a_prev);
    const fs_backend *be = fs_backend_cpu();
    (void)be->op->ddim_step(be, x, eps, n, &c, NULL);
}

void fs_sampler_step(const fs_schedule *s, int i, float *x, const float *eps, size_t n) {
    /* a step outside the schedule is a caller bug; doing nothing keeps the
     * latent intact rather than reading past the tables */
    if (i < 0 || i >= s->steps) return;
    if (s->kind == FS_SCHED_EULER) euler_step(s, i, x, eps, n);
    else ddim_step(s, i, x, eps, n);
}
