/* kernels/steps.c: the sampler's elementwise updates (kernels.h, "sampler
 * steps"): classifier-free guidance, the Euler and DDIM steps, the noised
 * latent, FreeScale's detail blend, scaling by a constant and the Philox
 * noise fill. sampler/ computes the coefficients from the schedule; these
 * loops apply them in diffusers' float32 order of operations (each torch op
 * rounds to float32; the build forbids fusing a*b+c), one element at a time,
 * so any split of the latent gives the same bits. */
#include <math.h>
#include "kernels/kernels.h"

void fs_cfg_combine(const float *eps_uncond, const float *eps_cond, float guidance, size_t n,
                    float *eps) {
    for (size_t k = 0; k < n; k++)
        eps[k] = eps_uncond[k] + guidance * (eps_cond[k] - eps_uncond[k]);
}

void fs_euler_update(float *x, const float *eps, size_t n, float sigma, float dt) {
    for (size_t k = 0; k < n; k++) {
        float sample = x[k];
        float pred = sample - sigma * eps[k];
        float deriv = (sample - pred) / sigma;
        x[k] = sample + deriv * dt;
    }
}

void fs_ddim_update(float *x, const float *eps, size_t n, const fs_ddim_coeffs *c) {
    for (size_t k = 0; k < n; k++) {
        float pred = (x[k] - c->sqrt_beta_t * eps[k]) / c->sqrt_alpha_t;
        float dir = c->dir * eps[k];
        x[k] = c->sqrt_alpha_prev * pred + dir;
    }
}

/* a * z + b * eps; with a = 1 (Euler: z + eps * sigma) the product 1 * z is
 * z exactly and eps * sigma = sigma * eps, so both forms are this one. */
void fs_noised(const float *z, const float *eps, size_t n, float a, float b, float *noisy) {
    for (size_t k = 0; k < n; k++) noisy[k] = a * z[k] + b * eps[k];
}

void fs_detail_mix(float *x, const float *z, const float *eps, const float *mask, size_t pixels,
                   int channels, float a, float b, float c_fg, float c_bg) {
    for (size_t p = 0; p < pixels; p++) {
        const float c = !mask || mask[p] != 0.0f ? c_fg : c_bg;
        const size_t o = p * (size_t)channels;
        for (int k = 0; k < channels; k++) {
            const float noisy = a * z[o + k] + b * eps[o + k];
            x[o + k] = x[o + k] * (1.0f - c) + noisy * c;
        }
    }
}

void fs_scale(const float *x, float *y, size_t n, float k) {
    for (size_t i = 0; i < n; i++) y[i] = x[i] * k;
}

void fs_posterior_sample(const float *moments, const float *eps, size_t pixels, int L,
                         float shift, float scaling, float *latent) {
    for (size_t p = 0; p < pixels; p++) {
        const float *m = moments + 2 * p * (size_t)L; /* [mean | logvar] */
        for (int ch = 0; ch < L; ch++) {
            float lv = m[L + ch];
            lv = lv < -30.0f ? -30.0f : lv > 20.0f ? 20.0f : lv;
            float sd = expf(0.5f * lv);
            float s = m[ch] + sd * eps[p * L + ch];
            latent[p * L + ch] = (s - shift) * scaling;
        }
    }
}

void fs_latent_unscale(const float *latent, float *z, size_t n, float scaling, float shift) {
    for (size_t i = 0; i < n; i++) z[i] = latent[i] / scaling + shift;
}
