/* tests/test_cascade_math.c: the cascade's arithmetic in sampler/cascade.c
 * against plain reference code and the spec's numbers
 * (spec/freescale.md sections 2-4): the detail-blend weights at the listed
 * steps for alpha 2 and 1, the blend and the noised latent (Euler's
 * variance-exploding form, DDIM's), the masked blend, the dilation schedule
 * (which steps of which stages get which factor), and that each stage's
 * noise / posterior / jitter streams are distinct. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include "sampler/sampler.h"
#include "check.h"

static void weights(void) {
    fs_schedule s;
    fs_error err = {0};
    CHECK(fs_schedule_make(FS_SCHED_EULER, 50, &s, &err) == FS_OK, "%s", err.msg);
    /* spec section 3: c at i = 15, 20, ..., 45 */
    static const int at[] = {15, 20, 25, 30, 35, 40, 45};
    static const double a2[] = {0.5917, 0.3917, 0.2211, 0.1007, 0.0333, 0.0062, 0.0003};
    static const double a1[] = {0.769, 0.626, 0.470, 0.317, 0.183, 0.079, 0.016};
    for (int k = 0; k < 7; k++) {
        double c = fs_detail_cosine(&s, at[k]);
        CHECK(fabs(pow(c, 2.0) - a2[k]) < 6e-5, "alpha 2 at i=%d: %.5f, spec %.4f", at[k],
              pow(c, 2.0), a2[k]);
        CHECK(fabs(c - a1[k]) < 6e-4, "alpha 1 at i=%d: %.4f, spec %.3f", at[k], c, a1[k]);
    }
    CHECK(s.timesteps[15] == 681, "restart timestep %d, spec 681", s.timesteps[15]);
    /* the blend: x = (1 - c) x + c (z + sigma_i eps), against a plain loop */
    enum { P = 37, C = 4 };
    float x[P * C], z[P * C], e[P * C], mask[P], ref[P * C];
    for (int i = 0; i < P * C; i++) {
        x[i] = fs_rng_normal(5, 1, i), z[i] = fs_rng_normal(5, 2, i), e[i] = fs_rng_normal(5, 3, i);
        ref[i] = x[i];
    }
    for (int p = 0; p < P; p++) mask[p] = (float)(p % 3 == 0);
    int i = 20;
    double cf = fs_detail_cosine(&s, i);
    for (int p = 0; p < P; p++)
        for (int k = 0; k < C; k++) {
            double c = pow(cf, mask[p] != 0 ? 3.0 : 0.5);
            double noisy = (double)z[p * C + k] + (double)s.sigmas[i] * e[p * C + k];
            ref[p * C + k] = (float)((1 - c) * x[p * C + k] + c * noisy);
        }
    fs_detail_blend(&s, i, 3.0f, 0.5f, mask, z, e, P, C, x);
    double worst = 0;
    for (int q = 0; q < P * C; q++) worst = fmax(worst, fabs(x[q] - ref[q]) / (fabs(ref[q]) + 1e-3));
    CHECK(worst < 1e-5, "masked blend differs from the reference by %.2e", worst);
    /* at the restart step the blend of x = noisy changes x by rounding only */
    float xr[C], zr[C] = {0.3f, -1.2f, 2.0f, 0.0f}, er[C] = {1.0f, 0.5f, -0.25f, 2.0f};
    fs_sampler_add_noise(&s, 15, zr, er, C, xr);
    for (int k = 0; k < C; k++)
        CHECK(fabsf(xr[k] - (zr[k] + s.sigmas[15] * er[k])) < 1e-6f, "Euler add_noise");
    float xb[C];
    for (int k = 0; k < C; k++) xb[k] = xr[k];
    fs_detail_blend(&s, 15, 2.0f, 2.0f, NULL, zr, er, 1, C, xb);
    for (int k = 0; k < C; k++) CHECK(fabsf(xb[k] - xr[k]) <= 1e-5f * fabsf(xr[k]) + 1e-6f,
                                      "blend at restart moved x: %g vs %g", xb[k], xr[k]);
    /* DDIM: sqrt(a) z + sqrt(1 - a) eps */
    fs_schedule d;
    CHECK(fs_schedule_make(FS_SCHED_DDIM, 50, &d, &err) == FS_OK, "%s", err.msg);
    fs_sampler_add_noise(&d, 15, zr, er, C, xr);
    double a = d.alphas_cumprod[d.timesteps[15]];
    for (int k = 0; k < C; k++)
        CHECK(fabs(xr[k] - (sqrt(a) * zr[k] + sqrt(1 - a) * er[k])) < 1e-5, "DDIM add_noise");
}

static void dilation(void) {
    /* 1024 -> 2048 -> 4096: d = 2 then 4 for steps < 35, never in stage 0 */
    for (int i = 0; i < 50; i++) {
        CHECK(fs_cascade_dilation(0, i, 35, 128, 128) == 1, "stage 0 step %d dilated", i);
        CHECK(fs_cascade_dilation(1, i, 35, 256, 128) == (i < 35 ? 2 : 1), "stage 1 step %d", i);
        CHECK(fs_cascade_dilation(2, i, 35, 512, 128) == (i < 35 ? 4 : 1), "stage 2 step %d", i);
    }
    /* the width alone decides (official target_size[1] // 1024) */
    CHECK(fs_cascade_dilation(1, 0, 35, 256, 128) == 2 && fs_cascade_dilation(1, 0, 35, 320, 128) == 2,
          "non-integer width ratio: floor");
    CHECK(fs_cascade_dilation(1, 0, 0, 256, 128) == 1, "tau 0: never");
}

static void streams(void) {
    for (int s = 0; s < 8; s++) {
        uint64_t a = FS_STREAM_STAGE_NOISE(s), b = FS_STREAM_POSTERIOR(s), c = FS_STREAM_JITTER(s);
        CHECK(a != b && b != c && a != c && a != FS_STREAM_NOISE && b != FS_STREAM_NOISE,
              "stage %d streams collide", s);
    }
}

int main(void) {
    weights();
    dilation();
    streams();
    return check_report("test_cascade_math");
}
