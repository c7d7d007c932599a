/* Op cases: the sampler's elementwise steps of the backend table
 * (kernels/steps.c on the CPU) against plain loops here in diffusers'
 * float32 order: CFG, the Euler and DDIM updates, the noised latent (both
 * schedulers' coefficient forms), the detail blend with and without a mask,
 * scaling and the Philox noise fill; the VAE's posterior sample and unscaling
 * and the detail mask's nearest resize. One fixed float sequence per element:
 * the bits must match, and a strip computed alone (from its offset) must
 * give the whole latent's bits. */
#include "ops/ops_harness.h"
#include <math.h>
#include <stdio.h>
#include <string.h>

#define OP(name, ...) harness_be->op->name(harness_be, __VA_ARGS__)

static void steps_case(size_t pixels, int ch) {
    char shape[48];
    snprintf(shape, sizeof shape, "pixels=%zu c=%d", pixels, ch);
    const size_t n = pixels * (size_t)ch;
    float *x = harness_random(n, -3, 3), *e = harness_random(n, -3, 3);
    float *u = harness_random(n, -3, 3), *z = harness_random(n, -2, 2);
    float *mask = harness_random(pixels, 0, 1), *ref = fs_alloc(n * 4 + 4);
    for (size_t p = 0; p < pixels; p++) mask[p] = mask[p] < 0.5f ? 0.0f : 1.0f;
    fs_error err = {0};
    void *dx = hb_from(x, n * 4), *de = hb_from(e, n * 4), *du = hb_from(u, n * 4);
    void *dz = hb_from(z, n * 4), *dm = hb_from(mask, pixels * 4), *dy = hb_from(NULL, n * 4);

    const float g = 7.5f;
    for (size_t k = 0; k < n; k++) ref[k] = u[k] + g * (e[k] - u[k]);
    hb_check_identical("cfg", shape, OP(cfg, du, de, g, n, dy, &err), &err, dy, ref, n);

    const float sigma = 3.7f, dt = -0.41f;
    for (size_t k = 0; k < n; k++) {
        float pred = x[k] - sigma * e[k], deriv = (x[k] - pred) / sigma;
        ref[k] = x[k] + deriv * dt;
    }
    hb_check_identical("euler step", shape, OP(euler_step, dx, de, n, sigma, dt, &err), &err, dx,
                       ref, n);
    /* a strip from its offset: the same bits */
    if (n > 3) {
        hb_to(ref, dx, n * 4);
        void *dx2 = hb_from(x, n * 4);
        fs_code rc =
            OP(euler_step, (float *)dx2 + 3, (const float *)de + 3, n - 3, sigma, dt, &err);
        if (rc == FS_OK) rc = OP(euler_step, dx2, de, 3, sigma, dt, &err);
        hb_check_identical("euler step strips", shape, rc, &err, dx2, ref, n);
        hb_free(dx2);
    }

    const fs_ddim_coeffs c = {sqrtf(0.6f), sqrtf(0.4f), sqrtf(1.0f - 0.55f), sqrtf(0.55f)};
    float *x1 = fs_alloc(n * 4 + 4);
    hb_to(x1, dx, n * 4);
    for (size_t k = 0; k < n; k++) {
        float pred = (x1[k] - c.sqrt_beta_t * e[k]) / c.sqrt_alpha_t, dir = c.dir * e[k];
        ref[k] = c.sqrt_alpha_prev * pred + dir;
    }
    hb_check_identical("ddim step", shape, OP(ddim_step, dx, de, n, &c, &err), &err, dx, ref, n);

    for (int form = 0; form < 2; form++) {
        const float a = form ? sqrtf(0.3f) : 1.0f, b = form ? sqrtf(0.7f) : 5.5f;
        for (size_t k = 0; k < n; k++) ref[k] = form ? a * z[k] + b * e[k] : z[k] + e[k] * b;
        hb_check_identical("add noise", form ? "ddim form" : "euler form (z + eps sigma)",
                           OP(add_noise, dz, de, n, a, b, dy, &err), &err, dy, ref, n);
        for (int masked = 0; masked < 2; masked++) {
            const float cf = 0.8f, cb = 0.3f;
            for (size_t p = 0; p < pixels; p++) {
                const float cc = !masked || mask[p] != 0.0f ? cf : cb;
                for (int k = 0; k < ch; k++) {
                    size_t i = p * ch + k;
                    float noisy = form ? a * z[i] + b * e[i] : z[i] + e[i] * b;
                    ref[i] = x[i] * (1.0f - cc) + noisy * cc;
                }
            }
            void *dx3 = hb_from(x, n * 4);
            hb_check_identical(
                "detail blend", masked ? "masked" : "no mask",
                OP(detail_blend, dx3, dz, de, masked ? dm : NULL, pixels, ch, a, b, cf, cb, &err),
                &err, dx3, ref, n);
            hb_free(dx3);
        }
    }

    for (size_t k = 0; k < n; k++) ref[k] = x[k] * 14.6146f;
    void *dx4 = hb_from(x, n * 4);
    hb_check_identical("scale", shape, OP(scale, dx4, dy, n, 14.6146f, &err), &err, dy, ref, n);
    hb_free(dx4);
    hb_free(dx);
    hb_free(de);
    hb_free(du);
    hb_free(dz);
    hb_free(dm);
    hb_free(dy);
    fs_free(x);
    fs_free(e);
    fs_free(u);
    fs_free(z);
    fs_free(mask);
    fs_free(ref);
    fs_free(x1);
}

/* Normal numbers index0 .. index0 + n - 1 of a stream: core's generator. */
static void noise_case(size_t n, uint64_t index0) {
    char shape[64];
    snprintf(shape, sizeof shape, "n=%zu from %llu", n, (unsigned long long)index0);
    float *ref = fs_alloc(n * 4 + 4);
    fs_rng_fill_normal(ref, n, 1234, 7, index0);
    void *d = hb_from(NULL, n * 4);
    fs_error err = {0};
    hb_check_identical("noise fill", shape, OP(noise_fill, d, n, 1234, 7, index0, &err), &err, d,
                       ref, n);
    hb_free(d);
    fs_free(ref);
}

/* The VAE's posterior sample and its inverse scaling, against loops here in
 * diffusers' order (sample = mean + std * eps with std = exp(0.5 logvar),
 * logvar clamped to [-30, 20]; then (sample - shift) * scaling). */
static void latent_case(size_t pixels, int L) {
    char shape[48];
    snprintf(shape, sizeof shape, "pixels=%zu latent=%d", pixels, L);
    const size_t n = pixels * (size_t)L;
    float *mom = harness_random(2 * n, -40, 30), *e = harness_random(n, -3, 3);
    float *ref = fs_alloc(n * 4 + 4);
    const float shift = 0.0609f, scaling = 0.13025f;
    for (size_t p = 0; p < pixels; p++)
        for (int c = 0; c < L; c++) {
            float lv = mom[2 * p * L + L + c];
            lv = fmaxf(-30.0f, fminf(20.0f, lv));
            float sample = mom[2 * p * L + c] + expf(0.5f * lv) * e[p * L + c];
            ref[p * L + c] = (sample - shift) * scaling;
        }
    fs_error err = {0};
    void *dm = hb_from(mom, 2 * n * 4), *de = hb_from(e, n * 4), *dy = hb_from(NULL, n * 4);
    hb_check_identical("posterior sample", shape,
                       OP(posterior_sample, dm, de, pixels, L, shift, scaling, dy, &err), &err,
                       dy, ref, n);
    for (size_t k = 0; k < n; k++) ref[k] = e[k] / scaling + shift;
    hb_check_identical("latent unscale", shape,
                       OP(latent_unscale, de, dy, n, scaling, shift, &err), &err, dy, ref, n);
    hb_free(dm), hb_free(de), hb_free(dy);
    fs_free(mom), fs_free(e), fs_free(ref);
}

/* The detail mask at a latent's size: PyTorch's nearest indices (for 5 -> 3
 * rows: 0, 1, 3; for 7 -> 4 columns: 0, 1, 3, 5, as F.interpolate(mode=
 * 'nearest') picks them), and a strip of rows alone equal to the whole. */
static void mask_case(void) {
    uint8_t m[5 * 7];
    for (int i = 0; i < 5 * 7; i++) m[i] = i % 3 == 0 ? 200 : 0;
    const int iy[3] = {0, 1, 3}, ix[4] = {0, 1, 3, 5};
    float ref[12];
    for (int y = 0; y < 3; y++)
        for (int x = 0; x < 4; x++) ref[y * 4 + x] = m[iy[y] * 7 + ix[x]] ? 1.0f : 0.0f;
    fs_error err = {0};
    void *d = hb_from(NULL, sizeof ref);
    hb_check_identical("mask nearest", "5x7 -> 3x4", OP(mask_nearest, m, 5, 7, 3, 4, 0, 3, d, &err),
                       &err, d, ref, 12);
    hb_free(d);
    /* upscales (2x exactly and 3 -> 7), whole map against row strips */
    const int mh[2] = {4, 3}, h[2] = {8, 7};
    for (int k = 0; k < 2; k++) {
        const int mw = 5, w = 11;
        uint8_t *mk = fs_alloc((size_t)mh[k] * mw);
        for (int i = 0; i < mh[k] * mw; i++) mk[i] = (uint8_t)(harness_int(0, 1) * 255);
        float *whole = fs_alloc((size_t)h[k] * w * 4);
        void *dw = hb_from(NULL, (size_t)h[k] * w * 4), *ds = hb_from(NULL, (size_t)h[k] * w * 4);
        fs_code rc = OP(mask_nearest, mk, mh[k], mw, h[k], w, 0, h[k], dw, &err);
        if (!rc) hb_to(whole, dw, (size_t)h[k] * w * 4);
        for (int y0 = 0; !rc && y0 < h[k]; y0 += 3) {
            int rows = h[k] - y0 < 3 ? h[k] - y0 : 3;
            rc = OP(mask_nearest, mk, mh[k], mw, h[k], w, y0, rows, (float *)ds + (size_t)y0 * w,
                    &err);
        }
        hb_check_identical("mask nearest", k ? "3 -> 7 rows, strips" : "2x, strips", rc, &err, ds,
                           whole, (size_t)h[k] * w);
        hb_free(dw), hb_free(ds);
        fs_free(mk), fs_free(whole);
    }
}

/* diffusers' tiled VAE seams (blend_v, blend_h), against its formulas here. */
static void tile_blend_case(int ah, int bh, int w, int c, int blend, int vertical) {
    char shape[64];
    snprintf(shape, sizeof shape, "%s %d onto %d, w=%d c=%d blend=%d",
             vertical ? "rows" : "columns", ah, bh, w, c, blend);
    /* vertical: a [ah][w][c] above b [bh][w][c]; horizontal: a [w][ah][c] left of b [w][bh][c] */
    const int a_h = vertical ? ah : w, a_w = vertical ? w : ah;
    const int b_h = vertical ? bh : w, b_w = vertical ? w : bh;
    const size_t na = (size_t)a_h * a_w * c, nb = (size_t)b_h * b_w * c;
    float *a = harness_random(na, -2, 2), *b = harness_random(nb, -2, 2);
    float *ref = fs_alloc(nb * 4 + 4);
    memcpy(ref, b, nb * 4);
    int e = vertical ? (a_h < b_h ? a_h : b_h) : (a_w < b_w ? a_w : b_w);
    if (blend < e) e = blend;
    for (int k = 0; k < e; k++) {
        const float wa = (float)(1.0 - (double)k / e), wb = (float)((double)k / e);
        for (int y = 0; y < (vertical ? 1 : b_h); y++)
            for (int i = 0; i < (vertical ? b_w * c : c); i++) {
                size_t ai = vertical ? (size_t)(a_h - e + k) * a_w * c + i
                                     : ((size_t)y * a_w + (a_w - e + k)) * c + i;
                size_t bi = vertical ? (size_t)k * b_w * c + i : ((size_t)y * b_w + k) * c + i;
                ref[bi] = a[ai] * wa + b[bi] * wb;
            }
    }
    fs_error err = {0};
    void *da = hb_from(a, na * 4), *db = hb_from(b, nb * 4);
    hb_check_identical("tile blend", shape,
                       OP(tile_blend, da, a_h, a_w, db, b_h, b_w, c, blend, vertical, &err), &err,
                       db, ref, nb);
    hb_free(da), hb_free(db);
    fs_free(a), fs_free(b), fs_free(ref);
}

void ops_cases_steps(void) {
    tile_blend_case(12, 10, 9, 3, 4, 1);
    tile_blend_case(3, 10, 9, 3, 8, 1);    /* a shorter than the blend */
    tile_blend_case(12, 10, 7, 4, 5, 0);
    tile_blend_case(harness_int(1, 20), harness_int(1, 20), harness_int(1, 12), 3,
                    harness_int(1, 16), harness_int(0, 1));
    latent_case(1, 4);
    latent_case((size_t)harness_int(1, 5000), 4);
    mask_case();
    steps_case(1, 4);
    steps_case(128 * 96, 4); /* a 1024 x 768 latent */
    steps_case((size_t)harness_int(1, 5000), harness_int(1, 16));
    noise_case(1, 0);
    noise_case(4096 * 4, 3 * 4096);
    noise_case((size_t)harness_int(1, 100000), (uint64_t)harness_int(0, 1 << 30));
}
