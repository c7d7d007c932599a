/* Op cases: the sinusoidal timestep embedding (kernels/embedding.c).
 * Fast against reference (the same float32 steps as diffusers, so they must
 * agree to the bit), the reference against the formula in double (differs
 * only by float32 rounding of the argument t * f_j, up to ~1e3 * 2^-24), and
 * hand-computed values. */
#include <math.h>
#include <stdio.h>
#include "kernels/kernels.h"
#include "ops/ops_harness.h"

static void embedding_case(int n, int dim, int integer_t) {
    char shape[64];
    snprintf(shape, sizeof shape, "n=%d dim=%d%s", n, dim, integer_t ? " integer t" : "");
    float *t = harness_random((size_t)n, 0.0f, 1000.0f);
    if (integer_t)
        for (int i = 0; i < n; i++) t[i] = floorf(t[i]);
    size_t total = (size_t)n * dim;
    float *ref = fs_alloc(total * sizeof(float)), *fast = fs_alloc(total * sizeof(float));
    float *dbl = fs_alloc(total * sizeof(float));
    fs_timestep_embedding_ref(t, n, dim, ref);
    fs_timestep_embedding(t, n, dim, fast);
    harness_identical("timestep_embedding", shape, ref, fast, total);
    int half = dim / 2;
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < half; j++) {
            double a = t[i] * exp(-log(10000.0) * j / half);
            dbl[(size_t)i * dim + j] = (float)cos(a);
            dbl[(size_t)i * dim + half + j] = (float)sin(a);
        }
        if (dim % 2) dbl[(size_t)i * dim + dim - 1] = 0.0f;
    }
    harness_compare("timestep_embedding vs double", shape, dbl, ref, total, 2e-4);
    fs_free(t);
    fs_free(ref);
    fs_free(fast);
    fs_free(dbl);
}

static void embedding_known(void) {
    /* dim 4: f = [1, 10000^(-1/2) = 0.01]; t = 0 and t = 1; dim 5 pads a 0 */
    float t[2] = {0.0f, 1.0f}, out[10];
    float want[10] = {1, 1, 0, 0, 0, (float)cos(1.0), (float)cos(0.01), (float)sin(1.0),
                      (float)sin(0.01), 0};
    fs_timestep_embedding(t, 2, 5, out);
    harness_compare("timestep_embedding hand-computed", "dim=5", want, out, 10, 1e-6);
}

/* diffusers' get_timestep_embedding (flip_sin_to_cos = True, shift 0) run
 * with PyTorch 2.15 on CPU for t = [999, 681, 1.5], dim 320, at the indices
 * below (of the flattened [3][320] output):
 *   half = 160; e = exp(-math.log(10000) * arange(160, float32) / 160)
 *   e = t[:, None] * e[None]; out = cat([cos(e), sin(e)], -1)
 * PyTorch's vectorised exp is not correctly rounded (1 ulp), which moves
 * t f_j by up to 999 * 2^-24: agreement is ~6e-5, not bits. */
static void embedding_torch(void) {
    static const int idx[18] = {0, 1, 5, 17, 80, 159, 160, 161, 200, 319, 323, 420, 490,
                                640, 682, 800, 890, 959};
    static const float want[18] = {
        0.999649823f, 0.802677512f, 0.125231117f, 0.0412140712f, -0.844469786f, 0.994406343f,
        -0.0264607519f, 0.596413314f, -0.589929104f, 0.105622061f, 0.343411565f, -0.550292075f,
        -0.314439833f, 0.070737198f, 0.991077125f, 0.997494996f, 0.00843501929f, 0.000158888055f};
    float t[3] = {999.0f, 681.0f, 1.5f}, out[960], got[18];
    fs_timestep_embedding(t, 3, 320, out);
    for (int i = 0; i < 18; i++) got[i] = out[idx[i]];
    harness_compare("timestep_embedding vs torch", "t = 999, 681, 1.5, dim 320", want, got, 18,
                    1e-4);
}

/* Through the backend table (t on the host, out in the backend's memory):
 * the reference's bits on every backend. */
static void embedding_table_case(int n, int dim) {
    char shape[48];
    snprintf(shape, sizeof shape, "n=%d dim=%d", n, dim);
    float *t = harness_random((size_t)n, 0.0f, 1000.0f);
    size_t total = (size_t)n * dim;
    float *ref = fs_alloc(total * sizeof(float));
    fs_timestep_embedding_ref(t, n, dim, ref);
    void *d = hb_from(NULL, total * sizeof(float));
    fs_error err = {0};
    hb_check_identical("timestep_embedding (table)", shape,
                       harness_be->op->timestep_embedding(harness_be, t, n, dim, d, &err), &err,
                       d, ref, total);
    hb_free(d);
    fs_free(t), fs_free(ref);
}

void ops_cases_embedding(void) {
    embedding_table_case(2, 320);
    embedding_table_case(3, 7);
    if (!harness_on_cpu()) return; /* the kernel itself: host code for every backend */
    embedding_known();
    embedding_torch();
    embedding_case(2, 320, 1);   /* SDXL time_proj */
    embedding_case(2, 256, 0);   /* SDXL add_time_proj (per micro-conditioning id) */
    embedding_case(12, 256, 1);
    embedding_case(1, 3, 0);
    embedding_case(3, 7, 0);
    for (int i = 0; i < 6; i++)
        embedding_case(harness_int(1, 4), harness_int(2, 600), harness_int(0, 1));
}
