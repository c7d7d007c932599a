/* kernels/fastmath.h (private to kernels/): vectorisable float exp and erf for
 * the fast pointwise ops (SiLU, GELU, quick GELU, GroupNorm + SiLU).
 *
 * Why not libm: expf/erff calls stop GCC from vectorising a loop (glibc only
 * offers its vector variants under -ffast-math, which the exactness rules
 * forbid). These are straight-line IEEE operations on floats, so a vectorised
 * loop body and its scalar remainder give the same bits for the same input:
 * an element's result never depends on where a thread's chunk starts. */
#ifndef FS_KERNELS_FASTMATH_H
#define FS_KERNELS_FASTMATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* c ? a : b as a bit blend. GCC (with the default -ftrapping-math) will not
 * if-convert a float ?: whose arms hold arithmetic (it sinks the arithmetic
 * into a branch it may not speculate), so loops using ?: stay scalar; this
 * blend, with quiet comparisons (isless, isgreater), vectorises. */
static inline float fs_select(int c, float a, float b) {
    int32_t m = -(int32_t)(c != 0), ia, ib;
    memcpy(&ia, &a, sizeof ia);
    memcpy(&ib, &b, sizeof ib);
    int32_t r = (ia & m) | (ib & ~m);
    float f;
    memcpy(&f, &r, sizeof f);
    return f;
}

/* exp(x), about 2 ulp over the range used. Cephes' expf scheme: n = round(x
 * log2 e) by the 1.5*2^23 trick (no rint call), Cody-Waite reduction with a
 * two-part ln 2, a degree-5 polynomial for exp(r), r in [-ln2/2, ln2/2], then
 * 2^n put into the exponent bits. x is clamped so 2^n stays a normal number:
 * exp(x) for x < -87.3 returns ~1e-38 instead of a denormal or 0, which the
 * callers (1 + exp(-x)) cannot tell apart. */
static inline float fs_fast_expf(float x) {
    x = fs_select(isless(x, -87.3f), -87.3f, x);
    x = fs_select(isgreater(x, 88.3f), 88.3f, x);
    const float round_magic = 12582912.0f; /* 1.5 * 2^23 */
    float n = (x * 1.44269504088896341f + round_magic) - round_magic;
    float r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

/* erf(x) as the rational x P(x^2) / Q(x^2) on [-4, 4] (the approximation used
 * by Eigen and XLA for float erf): absolute error about 4e-7 (measured
 * against double erf by tests/ops/ops_pointwise.c). Beyond |x| = 3.917 the
 * float value of erf (rounded) is exactly +-1, which is returned, so GELU of a very
 * negative input is exactly 0 as with PyTorch's float erf. */
static inline float fs_fast_erff(float x) {
    int saturated = isgreater(fabsf(x), 3.917f);
    float sat = copysignf(1.0f, x);
    x = fs_select(isless(x, -4.0f), -4.0f, x);
    x = fs_select(isgreater(x, 4.0f), 4.0f, x);
    float x2 = x * x;
    float p = -2.72614225801306e-10f;
    p = p * x2 + 2.77068142495902e-08f;
    p = p * x2 + -2.10102402082508e-06f;
    p = p * x2 + -5.69250639462346e-05f;
    p = p * x2 + -7.34990630326855e-04f;
    p = p * x2 + -2.95459980854025e-03f;
    p = p * x2 + -1.60960333262415e-02f;
    p = p * x;
    float q = -1.45660718464996e-05f;
    q = q * x2 + -2.13374055278905e-04f;
    q = q * x2 + -1.68282697438203e-03f;
    q = q * x2 + -7.37332916720468e-03f;
    q = q * x2 + -1.42647390514189e-02f;
    return fs_select(saturated, sat, p / q);
}

/* x * sigmoid(x). */
static inline float fs_fast_silu(float x) { return x / (1.0f + fs_fast_expf(-x)); }

/* 0.5 x (1 + erf(x / sqrt 2)). */
static inline float fs_fast_gelu(float x) {
    return 0.5f * x * (1.0f + fs_fast_erff(x * 0.70710678118654752f));
}

#endif
