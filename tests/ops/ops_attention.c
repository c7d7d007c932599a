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
 * normalised error measures that (tolerance 1e-5; measured worst ~1e-6).
 *
 * Causal cases (fs_attention_causal against fs_attention_causal_ref, query
 * global index q0 + r sees keys 0 .. q0 + r): nq = nk = 77 as in the text
 * encoders, several query tiles and key blocks (blocks skipped and masked on
 * the diagonal), q0 offsets, queries past the last key (they see all keys),
 * with the same split and thread checks. A causal run must also differ from
 * the unmasked one wherever a query has keys after it. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "kernels/kernels.h"
#include "ops/ops_harness.h"

typedef fs_code (*attention_fn)(const float *, int, const float *, int, const float *, int,
                                 float *, int, int, int, int, int, float, int64_t, fs_arena *,
                                 fs_error *);

static void attention_case(int nq, int nk, int heads, int dh, int pad, int64_t q0, int causal) {
    char shape[160];
    snprintf(shape, sizeof shape, "%snq=%d nk=%d heads=%d dh=%d ld+%d q0=%lld",
             causal ? "causal " : "", nq, nk, heads, dh, pad, (long long)q0);
    attention_fn run = causal ? hb_attention_causal : hb_attention;
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

    if (causal) fs_attention_causal_ref(q, ld, k, ld, v, ld, ref, ld, nq, nk, heads, dh, scale, q0);
    else fs_attention_ref(q, ld, k, ld, v, ld, ref, ld, nq, nk, heads, dh, scale);
    fs_code rc = run(q, ld, k, ld, v, ld, fast, ld, nq, nk, heads, dh, scale, q0, arena, &err);
    const int unsupported = rc == FS_ERR_UNSUPPORTED;
    if (rc != FS_OK && rc != FS_ERR_UNSUPPORTED)
        fprintf(stderr, "attention [%s]: %s\n", shape, err.msg);
    harness_compare("attention", shape, ref, fast, no, 1e-5);

    /* a random split of the queries */
    for (size_t i = 0; i < no; i++) part[i] = 0.0f;
    for (int r0 = 0; r0 < nq;) {
        int len = harness_int(1, nq - r0);
        rc = run(q + (size_t)r0 * ld, ld, k, ld, v, ld, part + (size_t)r0 * ld, ld, len, nk,
                 heads, dh, scale, q0 + r0, arena, &err);
        if (rc != FS_OK && rc != FS_ERR_UNSUPPORTED)
            fprintf(stderr, "attention split [%s]: %s\n", shape, err.msg);
        r0 += len;
    }
    harness_identical("attention split", shape, fast, part, no);

    int saved = fs_threads_count();
    for (int t = 1; t <= 2; t++) {
        fs_threads_init(t);
        for (size_t i = 0; i < no; i++) part[i] = 0.0f;
        run(q, ld, k, ld, v, ld, part, ld, nq, nk, heads, dh, scale, q0, NULL, &err);
        harness_identical("attention threads", shape, fast, part, no);
    }
    fs_threads_init(saved);

    if (causal && q0 + 1 < nk && !unsupported) {
        /* the mask does something: the first query (it sees q0 + 1 < nk keys)
         * differs from unmasked attention in every column of its heads */
        hb_attention(q, ld, k, ld, v, ld, part, ld, nq, nk, heads, dh, scale, q0, NULL, &err);
        int differ = 1;
        for (int c = 0; c < heads * dh; c++) differ &= part[c] != fast[c];
        float got = (float)differ, want = 1.0f;
        harness_identical("attention causal mask", shape, &want, &got, 1);
    }

    fs_arena_destroy(arena);
    fs_free(q); fs_free(k); fs_free(v); fs_free(ref); fs_free(fast); fs_free(part);
}

static void attention_errors(void) {
    float buf[64] = {0};
    fs_error err = {0};
    float got[8], want[8];
    for (int c = 0; c < 2; c++) {
        attention_fn run = c ? fs_attention_causal : fs_attention;
        got[4 * c + 0] = (float)run(buf, 8, buf, 8, buf, 8, buf, 8, 1, 0, 1, 8, 1.0f, 0, NULL, &err);
        got[4 * c + 1] = (float)run(buf, 4, buf, 8, buf, 8, buf, 8, 1, 1, 1, 8, 1.0f, 0, NULL, &err);
        got[4 * c + 2] = (float)run(buf, 8, buf, 8, buf, 8, buf, 8, 1, 1, 1, 8, 1.0f, -1, NULL, &err);
        got[4 * c + 3] = (float)run(buf, 8, buf, 8, buf, 8, buf, 8, 1, 1, 1, 8, NAN, 0, NULL, &err);
    }
    for (int i = 0; i < 8; i++) want[i] = FS_ERR_INVALID;
    harness_identical("attention errors", "nk=0, ldq<dh, q0<0, scale NaN (plain, causal)", want,
                      got, 8);
}

void ops_cases_attention(void) {
    if (harness_on_cpu()) attention_errors();
    attention_case(1, 1, 1, 64, 0, 0, 0);
    attention_case(3, 5, 2, 64, 0, 0, 0);
    attention_case(257, 77, 3, 64, 5, 0, 0);
    attention_case(300, 513, 2, 64, 0, 200, 0);
    attention_case(600, 300, 1, 512, 0, 0, 0);
    attention_case(130, 260, 1, 512, 3, 1000, 0);
    attention_case(513, 1, 2, 64, 0, 255, 0);
    attention_case(64, 1000, 10, 64, 0, 4000, 0);
    /* the CUDA kernel's tiles: queries across the 1024-query tile at global
     * row 1024, a short key set with padded strides, the VAE's single
     * 512-wide head, and 64 heads x 2048 keys (512-query tiles, three) */
    attention_case(300, 300, 4, 64, 0, 900, 0);
    attention_case(200, 77, 3, 40, 8, 0, 0);
    attention_case(600, 600, 1, 512, 0, 0, 0);
    if (!harness_on_cpu()) /* 6 GFLOP: the double reference alone takes seconds */
        attention_case(1500, 2048, 64, 8, 0, 0, 0);
    for (int i = 0; i < 8; i++) {
        static const int dhs[] = {8, 17, 40, 64, 64, 64, 80, 160};
        attention_case(harness_int(1, 700), harness_int(1, 700), harness_int(1, 4),
                       dhs[harness_int(0, 7)], harness_int(0, 1) ? 0 : harness_int(1, 9),
                       harness_int(0, 1) ? 0 : harness_int(0, 3000), 0);
    }
    /* causal: the text encoders' shape, one token, tiles and blocks on and off
     * the diagonal, offsets, queries past the last key */
    attention_case(77, 77, 2, 64, 0, 0, 1);
    attention_case(77, 77, 20, 64, 3, 0, 1);
    attention_case(1, 1, 1, 64, 0, 0, 1);
    attention_case(231, 231, 1, 64, 0, 0, 1);
    attention_case(600, 600, 2, 64, 0, 0, 1);
    attention_case(300, 700, 1, 40, 2, 200, 1);
    attention_case(100, 50, 2, 17, 0, 20, 1);
    attention_case(520, 900, 1, 64, 0, 250, 1);
    for (int i = 0; i < 6; i++) {
        static const int dhs[] = {8, 17, 64, 64, 80, 160};
        int nk = harness_int(1, 800);
        attention_case(harness_int(1, 700), nk, harness_int(1, 4), dhs[harness_int(0, 5)],
                       harness_int(0, 1) ? 0 : harness_int(1, 9),
                       harness_int(0, 1) ? 0 : harness_int(0, nk + 100), 1);
    }
}
