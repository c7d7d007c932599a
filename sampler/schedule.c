/* sampler/schedule.c: the SDXL noise schedule, computed exactly as diffusers
 * 0.42.1 (torch 2.15, numpy 2.4) computes it on CPU, so the tables match
 * tests/data/sampler/golden.safetensors bit for bit.
 *
 * What "exactly" took (each measured against torch on all 1000 values,
 * tools/gen_sampler_golden.py):
 * - betas = torch.linspace(sqrt(0.00085), sqrt(0.012), 1000, float32) ** 2.
 *   torch's CPU linspace (RangeFactoriesKernel.cpp, scalar loop) is
 *   start + step * i for i < n/2 and end - step * (n-1-i) for the rest, in
 *   float32 with step = (end - start) / (n - 1); torch's wheel is compiled
 *   with FMA contraction, so each value is one fused multiply-add. Computed
 *   without the fusion, 145 of the 1000 values differ by an ulp.
 * - alphas_cumprod = torch.cumprod(1 - betas): on CPU torch accumulates a
 *   float32 cumprod in double (acc_type<float, cpu> is double) and rounds each
 *   output to float32; a float32 running product differs in 944 values.
 * - sigma(t) = ((1 - ac) / ac) ** 0.5 in float32 torch ops (pow 0.5 is sqrt);
 *   np.interp at integer timesteps returns the table value itself, and the
 *   float64 -> float32 cast gives it back unchanged.
 * - init_noise_sigma ("leading") = (max(sigmas) ** 2 + 1) ** 0.5 on a float32
 *   0-dim tensor: sqrtf(m * m + 1). */
#include <math.h>
#include <string.h>
#include "sampler/sampler.h"

static void train_schedule(float ac[FS_TRAIN_STEPS]) {
    const int n = FS_TRAIN_STEPS;
    /* Python's 0.00085 ** 0.5 in double, then Scalar.to<float>() */
    const float start = (float)sqrt(0.00085), end = (float)sqrt(0.012);
    const float step = (end - start) / (float)(n - 1);
    double acc = 1.0;
    for (int i = 0; i < n; i++) {
        float b = i < n / 2 ? fmaf(step, (float)i, start) : fmaf(-step, (float)(n - 1 - i), end);
        float alpha = 1.0f - b * b;
        acc *= (double)alpha;
        ac[i] = (float)acc;
    }
}

/* sigma of train timestep t, float32 as torch computes the table. t past the
 * table (only t = 1000, for 1000 "leading" steps) takes the last entry, as
 * np.interp clamps. */
static float sigma_at(const float ac[FS_TRAIN_STEPS], int t) {
    if (t > FS_TRAIN_STEPS - 1) t = FS_TRAIN_STEPS - 1;
    if (t < 0) t = 0;
    float a = ac[t];
    return sqrtf((1.0f - a) / a);
}

fs_code fs_schedule_make(fs_scheduler_kind kind, int steps, fs_schedule *s, fs_error *err) {
    if (!s) return fs_fail(err, FS_ERR_INVALID, "schedule: no output");
    if (kind != FS_SCHED_EULER && kind != FS_SCHED_DDIM)
        return fs_fail(err, FS_ERR_INVALID, "schedule: unknown scheduler kind %d", (int)kind);
    if (steps < 1 || steps > FS_MAX_STEPS)
        return fs_fail(err, FS_ERR_RANGE, "schedule: steps %d outside 1..%d", steps, FS_MAX_STEPS);
    memset(s, 0, sizeof *s);
    s->kind = kind;
    s->steps = steps;
    train_schedule(s->alphas_cumprod);
    /* "leading" spacing, steps_offset 1: (arange(steps) * (1000 // steps))
     * reversed, + 1 (the same integers for Euler and DDIM). */
    const int ratio = FS_TRAIN_STEPS / steps;
    for (int i = 0; i < steps; i++) s->timesteps[i] = (steps - 1 - i) * ratio + 1;
    /* Sigmas are filled for DDIM too (its step does not use them; FreeScale's
     * noising of an upsampled latent at step i may). */
    float max_sigma = 0.0f;
    for (int i = 0; i < steps; i++) {
        s->sigmas[i] = sigma_at(s->alphas_cumprod, s->timesteps[i]);
        if (s->sigmas[i] > max_sigma) max_sigma = s->sigmas[i];
    }
    s->sigmas[steps] = 0.0f;
    s->init_sigma = kind == FS_SCHED_EULER ? sqrtf(max_sigma * max_sigma + 1.0f) : 1.0f;
    return FS_OK;
}

/* diffusers divides: sample / ((sigma**2 + 1) ** 0.5). The contract hands out
 * a factor, and x * (1 / s) is within one ulp of x / s (the test measures
 * the bound against the golden model inputs). */
float fs_schedule_input_scale(const fs_schedule *s, int i) {
    if (s->kind != FS_SCHED_EULER) return 1.0f;
    if (i < 0) i = 0;
    if (i > s->steps) i = s->steps;
    float sigma = s->sigmas[i];
    return 1.0f / sqrtf(sigma * sigma + 1.0f);
}
