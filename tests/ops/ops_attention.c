/* Op cases: fs_attention (kernels/attention.c, streaming softmax on fixed
 * tiles) against the three-pass double reference fs_attention_ref: any
 * nq / nk (1 and odd included, nk = 77 as for text tokens), several heads of
 * dimension 64 or odd sizes, a single head of dimension 512 (the VAE's), row
 * strides wider than heads*dh, and global query offsets q0. Exactness: a
 * random split of the queries (each piece with its own q0) and 1 vs 2 threads
 * give the whole-run bits.
 *
 * Inputs: q, k in [-2, 2) so the softmax is far from uniform, v in [-1, 2):
 * an output is a convex combination of v rows, its float error is about
 * eps * max|v| * (a few), and v's mean of 0.5 keeps max|ref| ~ max|v| so the
 * normalised error measures that (tolerance 1e-5; measured worst ~1e-6). */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "kernels/kernels.h"
#include "ops/ops_harness.h"

static void attention_case(int nq, int nk, int heads, int dh, int pad, int64_t q0) {
    char shape[160];
    snprintf(shape, sizeof shape, "nq=%d nk=%d heads=%d dh=%d ld+%d q0=%lld", nq, nk, heads, dh,
             pad, (long long)q0);
    int ld = heads * dh + pad;
    float scale = 1.0f / sqrtf((float)dh);
    float *q = harness_random((size_t)nq * ld, -2.0f, 2.0f);
    float *k = harness_random((size_t)nk * ld, -2.0f, 2.0f);
    float *v = harness_random((size_t)nk * ld, -1.0f, 2.0f);
    size_t no = (size_t)nq * ld;
    float *ref = fs_alloc(no * sizeof(float)), *fast = fs_alloc(no * sizeof(float));
    float *part = fs_alloc(no * sizeof(float));
    /* the padding columns of o are not outputs: same value everywhere */
    for (size_t i = 0; i < no; i++) ref[i] = fast[i] = 0.0f;
    fs_error err = {0};
    fs_arena *arena = fs_arena_create(fs_attention_scratch_bytes(nk, heads, dh), &err);

    fs_attention_ref(q, ld, k, ld, v, ld, ref, ld, nq, nk, heads, dh, scale);
    if (fs_attention(q, ld, k, ld, v, ld, fast, ld, nq, nk, heads, dh, scale, q0, arena, &err) !=
        FS_OK)
        fprintf(stderr, "attention [%s]: %s\n", shape, err.msg);
    harness_compare("attention", shape, ref, fast, no, 1e-5);

    /* a random split of the queries */
    for (size_t i = 0; i < no; i++) part[i] = 0.0f;
    for (int r0 = 0; r0 < nq;) {
        int len = harness_int(1, nq - r0);
        if (fs_attention(q + (size_t)r0 * ld, ld, k, ld, v, ld, part + (size_t)r0 * ld, ld, len,
                         nk, heads, dh, scale, q0 + r0, arena, &err) != FS_OK)
            fprintf(stderr, "attention split [%s]: %s\n", shape, err.msg);
        r0 += len;
    }
    harness_identical("attention split", shape, fast, part, no);

    int saved = fs_threads_count();
    for (int t = 1; t <= 2; t++) {
        fs_threads_init(t);
        for (size_t i = 0; i < no; i++) part[i] = 0.0f;
        fs_attention(q, ld, k, ld, v, ld, part, ld, nq, nk, heads, dh, scale, q0, NULL, &err);
        harness_identical("attention threads", shape, fast, part, no);
    }
    fs_threads_init(saved);

    fs_arena_destroy(arena);
    fs_free(q); fs_free(k); fs_free(v); fs_free(ref); fs_free(fast); fs_free(part);
}

static void attention_errors(void) {
    float buf[64] = {0};
    fs_error err = {0};
    float got[4], want[4] = {FS_ERR_INVALID, FS_ERR_INVALID, FS_ERR_INVALID, FS_ERR_INVALID};
    got[0] = (float)fs_attention(buf, 8, buf, 8, buf, 8, buf, 8, 1, 0, 1, 8, 1.0f, 0, NULL, &err);
    got[1] = (float)fs_attention(buf, 4, buf, 8, buf, 8, buf, 8, 1, 1, 1, 8, 1.0f, 0, NULL, &err);
    got[2] = (float)fs_attention(buf, 8, buf, 8, buf, 8, buf, 8, 1, 1, 1, 8, 1.0f, -1, NULL, &err);
    got[3] = (float)fs_attention(buf, 8, buf, 8, buf, 8, buf, 8, 1, 1, 1, 8, NAN, 0, NULL, &err);
    harness_identical("attention errors", "nk=0, ldq<dh, q0<0, scale NaN", want, got, 4);
}

void ops_cases_attention(void) {
    attention_errors();
    attention_case(1, 1, 1, 64, 0, 0);
    attention_case(3, 5, 2, 64, 0, 0);
    attention_case(257, 77, 3, 64, 5, 0);
    attention_case(300, 513, 2, 64, 0, 200);
    attention_case(600, 300, 1, 512, 0, 0);
    attention_case(130, 260, 1, 512, 3, 1000);
    attention_case(513, 1, 2, 64, 0, 255);
    attention_case(64, 1000, 10, 64, 0, 4000);
    for (int i = 0; i < 8; i++) {
        static const int dhs[] = {8, 17, 40, 64, 64, 64, 80, 160};
        attention_case(harness_int(1, 700), harness_int(1, 700), harness_int(1, 4),
                       dhs[harness_int(0, 7)], harness_int(0, 1) ? 0 : harness_int(1, 9),
                       harness_int(0, 1) ? 0 : harness_int(0, 3000));
    }
}
