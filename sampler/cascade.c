/* sampler/cascade.c: FreeScale's self-cascade arithmetic on a latent strip:
 * the noised upsampled latent and the detail-control ("cosine scale") blend
 * (spec/freescale.md sections 2-3, pipeline_freescale.py L881-899). All
 * elementwise: any split of the latent gives the same bits. */
#include <math.h>
#include "sampler/sampler.h"

void fs_sampler_add_noise(const fs_schedule *s, int i, const float *z, const float *eps,
                          size_t n, float *noisy) {
    if (s->kind == FS_SCHED_EULER) {
        const float sigma = s->sigmas[i];
        for (size_t k = 0; k < n; k++) noisy[k] = z[k] + eps[k] * sigma;
        return;
    }
    int t = s->timesteps[i] < FS_TRAIN_STEPS ? s->timesteps[i] : FS_TRAIN_STEPS - 1;
    const float a = s->alphas_cumprod[t];
    const float sa = sqrtf(a), sb = sqrtf(1.0f - a);
    for (size_t k = 0; k < n; k++) noisy[k] = sa * z[k] + sb * eps[k];
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
    float noisy[16];
    for (size_t p = 0; p < pixels; p++) {
        const float c = !mask || mask[p] != 0.0f ? c_fg : c_bg;
        const size_t o = p * (size_t)channels;
        fs_sampler_add_noise(s, i, z + o, eps + o, (size_t)channels, noisy);
        for (int k = 0; k < channels; k++) x[o + k] = x[o + k] * (1.0f - c) + noisy[k] * c;
    }
}
