/* The op harness (test-backend-ops style): every fast op is run against its
 * reference loop on fresh random inputs over many shapes. Each case file
 * (tests/ops/ops_<group>.c) defines one ops_cases_<group>() that calls
 * harness_compare for every shape it tries. */
#ifndef FS_OPS_HARNESS_H
#define FS_OPS_HARNESS_H
#include <stddef.h>
#include <stdint.h>
#include "core/core.h"

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
#endif
