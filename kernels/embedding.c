/* kernels/embedding.c: the sinusoidal timestep embedding of diffusers'
 * get_timestep_embedding with flip_sin_to_cos = True, downscale_freq_shift = 0,
 * scale 1, max_period 10000: out[i] = [cos(t_i f_j) (j < half), sin(t_i f_j)],
 * zero-padded by one column when dim is odd.
 *
 * The arithmetic follows torch in float32 step by step (exponent = -ln(10000)
 * * j as float, divided by half, exp, times t), so the arguments of sin/cos are
 * the same floats as PyTorch's; only sinf/cosf themselves may differ by an ulp.
 * The op is tiny (n x dim, a few hundred values per UNet call), so the fast
 * version is the same arithmetic run in parallel and gives the reference's
 * bits. */
#include <math.h>
#include "kernels/kernels.h"

static float timestep_arg(float t, int j, int half) {
    float exponent = -(float)log(10000.0) * (float)j;
    exponent = exponent / (float)half;
    return t * expf(exponent);
}

void fs_timestep_embedding_ref(const float *t, int n, int dim, float *out) {
    int half = dim / 2;
    for (int i = 0; i < n; i++) {
        float *o = out + (size_t)i * dim;
        for (int j = 0; j < half; j++) {
            float a = timestep_arg(t[i], j, half);
            o[j] = cosf(a);
            o[half + j] = sinf(a);
        }
        if (dim % 2) o[dim - 1] = 0.0f;
    }
}

void fs_timestep_embedding(const float *t, int n, int dim, float *out) {
    int half = dim / 2;
    if (n <= 0 || dim <= 0) return;
    int tasks = n * (half > 0 ? half : 1);
#pragma omp parallel for schedule(static)
    for (int k = 0; k < tasks; k++) {
        if (half == 0) continue;
        int i = k / half, j = k % half;
        float a = timestep_arg(t[i], j, half);
        out[(size_t)i * dim + j] = cosf(a);
        out[(size_t)i * dim + half + j] = sinf(a);
    }
    if (dim % 2)
        for (int i = 0; i < n; i++) out[(size_t)i * dim + dim - 1] = 0.0f;
}

void fs_embed_tokens(const int32_t *ids, size_t m, int positions, int c, const float *tokens,
                     const float *pos, float *x) {
    for (size_t r = 0; r < m; r++) {
        const float *te = tokens + (size_t)ids[r] * c;
        const float *pe = pos + (r % (size_t)positions) * c;
        for (int i = 0; i < c; i++) x[r * c + i] = te[i] + pe[i];
    }
}
