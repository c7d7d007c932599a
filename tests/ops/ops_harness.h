/* The op harness (ggml's test-backend-ops style): every op of every backend
 * compiled in (kernels.h's table: the CPU's always, CUDA's when a device is
 * there) is run against its reference loop on fresh random inputs over many
 * shapes. Each case file (tests/ops/ops_<group>.c) defines one
 * ops_cases_<group>() that calls harness_compare for every shape it tries;
 * test_ops.c runs every group once per backend (harness_be). The cases call
 * the ops through the hb_* wrappers (ops_backend.c), which have the CPU
 * ops' signatures on host buffers and run the op on harness_be (inputs
 * uploaded, outputs downloaded: plain copies on the CPU). */
#ifndef FS_OPS_HARNESS_H
#define FS_OPS_HARNESS_H
#include <stddef.h>
#include <stdint.h>
#include "core/core.h"
#include "kernels/kernels.h"

/* Seed of this run: FS_TEST_SEED if set, else from the clock (printed, so a
 * failure can be replayed with FS_TEST_SEED=<seed>). */
extern uint64_t harness_seed;

/* Uniform random floats in [lo, hi) from the run's stream (never all zero). */
void harness_fill(float *x, size_t n, float lo, float hi);
float *harness_random(size_t n, float lo, float hi);   /* fs_alloc'ed; fs_free it */
int harness_int(int lo, int hi);                        /* uniform in [lo, hi] */

/* Normalised error: max |fast - ref| / max |ref| (and the relative L2 error,
 * reported). Fails the case when the normalised error exceeds tol or any
 * value is NaN/Inf where the reference is finite. `shape` describes the case.
 * Returns 1 when it passed. */
int harness_compare(const char *op, const char *shape, const float *ref, const float *fast,
                    size_t n, double tol);
/* For results that must be bit-identical (strip vs whole-map, threads). */
int harness_identical(const char *op, const char *shape, const float *a, const float *b,
                      size_t n);

/* The backend the groups run on now, and whether it is the CPU's (the cases
 * of the CPU code itself: threads, fast math, argument checks, scratch
 * arenas, run there only). Op names are prefixed "<backend> " elsewhere. */
extern const fs_backend *harness_be;
int harness_on_cpu(void);

/* The fast ops on harness_be, with the CPU ops' signatures (kernels.h) on
 * host buffers. An op harness_be lacks (FS_ERR_UNSUPPORTED, not on the
 * CPU) makes the next comparison count as "unsupported" instead of
 * comparing; any other failure is printed and fails the next comparison. */
fs_code hb_linear(const float *x, float *y, size_t m, int k, int nout, const float *w,
                  const float *bias, int64_t m0, fs_arena *scratch, fs_error *err);
fs_code hb_linear_whole(const float *x, float *y, size_t m, int k, int nout, const float *w,
                        const float *bias, fs_arena *scratch, fs_error *err);
fs_code hb_conv2d(const fs_conv2d_desc *d, const float *x, const float *w, const float *bias,
                  float *y, fs_arena *scratch, fs_error *err);
fs_code hb_attention(const float *q, int ldq, const float *k, int ldk, const float *v, int ldv,
                     float *o, int ldo, int nq, int nk, int heads, int dh, float scale,
                     int64_t q0, fs_arena *scratch, fs_error *err);
fs_code hb_attention_causal(const float *q, int ldq, const float *k, int ldk, const float *v,
                            int ldv, float *o, int ldo, int nq, int nk, int heads, int dh,
                            float scale, int64_t q0, fs_arena *scratch, fs_error *err);
void hb_groupnorm_partials(const float *x, int n, int rows, int w, int c, int groups,
                           double *part);
void hb_groupnorm_apply(const float *x, float *y, int n, int rows, int w, int c, int groups,
                        const float *mean, const float *rstd, const float *gamma,
                        const float *beta, int silu);
void hb_layernorm(const float *x, float *y, size_t tokens, int c, float eps, const float *gamma,
                  const float *beta);
void hb_silu(const float *x, float *y, size_t n);
void hb_gelu(const float *x, float *y, size_t n);
void hb_quick_gelu(const float *x, float *y, size_t n);
void hb_geglu(const float *x, float *y, size_t m, int d);
void hb_upsample_nearest2x(const float *x, float *y, int n, int rows, int w, int c);
void hb_resize_bicubic(const fs_resize_desc *d, const float *x, float *y);
fs_code hb_blur(const fs_blur_desc *d, const float *g, const float *x, float *y,
                fs_arena *scratch, fs_error *err);
fs_code hb_blur_fft(const float *x, float *y, int n, int h, int w, int c, float sigma,
                    fs_error *err);
void hb_freeu_row_coeffs(const float *row, int y, int h, int w, int c, double *out);
void hb_freeu_apply(float *x, int row0, int rows, int h, int w, int c, const double *coeffs,
                    float s);

/* harness_be's memory, for cases that call its table directly: a copy of
 * host (NULL: uninitialised), back into host, freed. Exit on failure. */
void *hb_from(const void *host, size_t bytes);
void hb_to(void *host, const void *dev, size_t bytes);
void hb_free(void *dev);
/* Records an op's return code as the wrappers do; 1 when it ran. */
int hb_ran(const char *op, fs_code rc, const fs_error *err);
/* An op called on the table directly (returning rc): its n floats at dev
 * must be ref's bits. */
void hb_check_identical(const char *op, const char *shape, fs_code rc, const fs_error *err,
                        const void *dev, const float *ref, size_t n);

/* Case groups. */
void ops_cases_linear(void);
void ops_cases_conv(void);
void ops_cases_attention(void);
void ops_cases_norm(void);
void ops_cases_pointwise(void);
void ops_cases_resize(void);
void ops_cases_blur(void);
void ops_cases_embedding(void);
void ops_cases_freeu(void);
void ops_cases_glue(void);
void ops_cases_grid(void);
void ops_cases_steps(void);
#endif
