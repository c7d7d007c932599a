/* sampler/cascade.c: FreeScale's self-cascade arithmetic on a latent strip:
 * the noised upsampled latent and the detail-control ("cosine scale") blend
 * (spec/freescale.md sections 2-3, pipeline_freescale.py L881-899). All
 * elementwise: any split of the latent gives the same bits. */
#include <math.h>
#include "kernels/kernels.h"
#include "sampler/sampler.h"

/* The noised latent's coefficients: noisy = a z + b eps. Euler's z + eps *
 * sigma is a = 1, b = sigma (1 * z is z exactly and the product commutes:
 * the same bits); DDIM's sqrt(alpha) z + sqrt(1 - alpha) eps. */
static void noise_coeffs(const fs_schedule *s, int i, float *a, float *b) {
    if (s->kind == FS_SCHED_EULER) {
        *a = 1.0f;
        *b = s->sigmas[i];
        return;
    }
    int t = s->timesteps[i] < FS_TRAIN_STEPS ? s->timesteps[i] : FS_TRAIN_STEPS - 1;
    const float alpha = s->alphas_cumprod[t];
    *a = sqrtf(alpha);
    *b = sqrtf(1.0f - alpha);
}

/* The elementwise loops are the backend table's (kernels/steps.c), here the
 * CPU's on the host buffers the API takes; its ops cannot fail. */
void fs_sampler_add_noise(const fs_schedule *s, int i, const float *z, const float *eps,
                          size_t n, float *noisy) {
    float a, b;
    noise_coeffs(s, i, &a, &b);
    const fs_backend *be = fs_backend_cpu();
    (void)be->op->add_noise(be, z, eps, n, a, b, noisy, NULL);
}

int fs_cascade_dilation(int stage, int i, int dilate_tau, int w_lat, int base_w_lat) {
    if (stage <= 0 || i >= dilate_tau || base_w_lat <= 0) return 1;
    int d = w_lat / base_w_lat;
    return d > 1 ? d : 1;
}

double fs_detail_cosine(const fs_schedule *s, int i) {
    const double T = FS_TRAIN_STEPS;
    return 0.5 * (1.0 + cos(M_PI * (T - s->timesteps[i]) / T));
}

void fs_detail_blend(const fs_schedule *s, int i, float alpha_fg, float alpha_bg,
                     const float *mask, const float *z, const float *eps, size_t pixels,
                     int channels, float *x) {
    const double cf = fs_detail_cosine(s, i);
    const float c_fg = (float)pow(cf, alpha_fg), c_bg = (float)pow(cf, alpha_bg);
    float a, b;
    noise_coeffs(s, i, &a, &b);
    const fs_backend *be = fs_backend_cpu();
    (void)be->op->detail_blend(be, x, z, eps, mask, pixels, channels, a, b, c_fg, c_bg, NULL);
}
