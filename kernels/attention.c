/* kernels/attention.c: multi-head scaled dot-product attention
 * o = softmax(q k^T * scale) v, as a plain three-pass reference in double and
 * as a flash-style streaming version on fixed-shape query tiles.
 *
 * The fast version works on one (query tile, head) at a time: BQ queries at
 * a global multiple of BQ, against the keys in blocks of BK. Everything is
 * kept transposed so the queries are the long, contiguous dimension:
 *   S^T[BK][BQ] = scale * Kblk Q^T          (register-blocked FMA loops,
 *   online softmax down the columns of S^T   attention_micro.c: they beat
 *   O^T[dh][BQ] = alpha * O^T + Vblk^T P^T   OpenBLAS on these small shapes)
 * and o = O^T / l is written back at the end. No nq x nk matrix exists, the
 * scratch (S^T, O^T and Q^T) does not depend on nk, and a query's
 * result depends only on its global index (its place in its tile), nk, and
 * the data: any split of the queries (q0, nq) gives the same bits.
 *
 * Causal attention (fs_attention_causal, the text encoders' mask) uses the
 * same tiles: a query tile skips the key blocks that start after its last
 * global query index (a property of the tile, not of the split), and in the
 * blocks it computes, a score whose key index exceeds its query's global
 * index is set to -inf before the block maximum and its probability to
 * exactly 0 (the fast exp never returns 0 by itself: it clamps its input). */
#include <math.h>
#include <omp.h>
#include <string.h>
#include "kernels/fastmath.h"
#include "kernels/attention_micro.h"
#include "kernels/gemm_tiles.h"
#include "kernels/kernels.h"

/* Queries per tile: S^T (BK x BQ) stays in L2 (256 KB of 512) between the
 * score loop, the softmax and the output loop. */
#define ATT_BQ 256
/* Row stride of S^T: not a multiple of 4 KB, so the output loop's walk down a
 * 16-query column (one cache line per key) spreads over all L1 sets instead
 * of 4 of them (measured: 1.5x faster). */
#define ATT_LDS (ATT_BQ + 16)
/* Keys per block (fewer when nk is small: nk is the same on every rank). */
#define ATT_BK_MAX 256

static int att_bk(int nk) {
    int bk = (nk + 15) / 16 * 16;
    return bk < ATT_BK_MAX ? bk : ATT_BK_MAX;
}

/* ---------------------------------------------------------------- reference */

/* causal: query i (global q0 + i) sees keys j <= q0 + i only. */
static void attention_ref(const float *q, int ldq, const float *k, int ldk, const float *v,
                          int ldv, float *o, int ldo, int nq, int nk, int heads, int dh,
                          float scale, int64_t q0, int causal) {
    if (nq <= 0 || nk <= 0) return;
    double *s = fs_alloc((size_t)nk * sizeof(double));
    double *acc = fs_alloc((size_t)dh * sizeof(double));
    if (!s || !acc) { fs_free(s); fs_free(acc); return; }
    for (int h = 0; h < heads; h++)
        for (int i = 0; i < nq; i++) {
            int nvis = nk;
            if (causal && q0 + i + 1 < nk) nvis = (int)(q0 + i + 1);
            const float *qi = q + (size_t)i * ldq + (size_t)h * dh;
            double mx = -INFINITY;
            for (int j = 0; j < nvis; j++) {
                const float *kj = k + (size_t)j * ldk + (size_t)h * dh;
                double dot = 0;
                for (int d = 0; d < dh; d++) dot += (double)qi[d] * kj[d];
                s[j] = dot * scale;
                if (s[j] > mx) mx = s[j];
            }
            double sum = 0;
            for (int j = 0; j < nvis; j++) {
                s[j] = exp(s[j] - mx);
                sum += s[j];
            }
            for (int d = 0; d < dh; d++) acc[d] = 0;
            for (int j = 0; j < nvis; j++) {
                const float *vj = v + (size_t)j * ldv + (size_t)h * dh;
                for (int d = 0; d < dh; d++) acc[d] += s[j] * vj[d];
            }
            float *oi = o + (size_t)i * ldo + (size_t)h * dh;
            for (int d = 0; d < dh; d++) oi[d] = (float)(acc[d] / sum);
        }
    fs_free(s);
    fs_free(acc);
}

void fs_attention_ref(const float *q, int ldq, const float *k, int ldk, const float *v, int ldv,
                      float *o, int ldo, int nq, int nk, int heads, int dh, float scale) {
    attention_ref(q, ldq, k, ldk, v, ldv, o, ldo, nq, nk, heads, dh, scale, 0, 0);
}

void fs_attention_causal_ref(const float *q, int ldq, const float *k, int ldk, const float *v,
                             int ldv, float *o, int ldo, int nq, int nk, int heads, int dh,
                             float scale, int64_t q0) {
    attention_ref(q, ldq, k, ldk, v, ldv, o, ldo, nq, nk, heads, dh, scale, q0, 1);
}

/* ---------------------------------------------------------------- scratch */

typedef struct att_slice {
    float *st;      /* [BK][ATT_LDS] scores, then probabilities */
    float *ot;      /* [dh][BQ] output accumulator, transposed */
    float *qs;      /* Q^T of the tile in 16-query panels (attention_micro.h) */
    float *ks, *vs; /* the key / value block packed in panels (attention_micro.h) */
    float *m, *l, *alpha, *lsum; /* [BQ] */
} att_slice;

static size_t round16(size_t n) { return (n + 15) / 16 * 16; }

static size_t att_slice_floats(int bk, int dh) {
    return round16((size_t)bk * ATT_LDS) + 2 * round16((size_t)dh * ATT_BQ) +
           2 * round16(fs_att_packed_floats(bk, dh)) + 4 * round16(ATT_BQ);
}

static att_slice att_slice_at(float *base, int bk, int dh) {
    att_slice s;
    s.st = base;
    s.ot = s.st + round16((size_t)bk * ATT_LDS);
    s.qs = s.ot + round16((size_t)dh * ATT_BQ);
    s.ks = s.qs + round16((size_t)dh * ATT_BQ);
    s.vs = s.ks + round16(fs_att_packed_floats(bk, dh));
    s.m = s.vs + round16(fs_att_packed_floats(bk, dh));
    s.l = s.m + round16(ATT_BQ);
    s.alpha = s.l + round16(ATT_BQ);
    s.lsum = s.alpha + round16(ATT_BQ);
    return s;
}

size_t fs_attention_scratch_bytes(int nk, int heads, int dh) {
    if (nk <= 0 || dh <= 0) return 0;
    return (size_t)fs_threads_count() * att_slice_floats(att_bk(nk), dh) * sizeof(float) + 256;
}

/* ---------------------------------------------------------------- one tile */

/* exp(x) for x <= 0 on 8 lanes with explicit FMAs (Cephes' expf scheme as
 * fs_fast_expf: n = round(x log2 e), two-part ln 2 reduction, degree-5
 * polynomial, 2^n into the exponent; x is clamped at -87.3 so 2^n stays
 * normal). Explicit _mm256_fmadd_ps is one fixed rounding, so this is as
 * deterministic as the scalar code while taking half the operations; it is
 * the softmax's whole cost (one exp per score, against 4*dh flops of GEMM). */
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
static inline __m256 att_exp8(__m256 x) {
    x = _mm256_max_ps(x, _mm256_set1_ps(-87.3f));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

/* sr[i] = exp(sr[i] - mx[i]), lsum[i] += sr[i] for one row of BQ scores. */
static inline void att_exp_row(float *restrict sr, const float *restrict mx,
                               float *restrict lsum) {
    for (int i = 0; i < ATT_BQ; i += 16) {
        __m256 p0 = att_exp8(_mm256_sub_ps(_mm256_loadu_ps(sr + i), _mm256_loadu_ps(mx + i)));
        __m256 p1 = att_exp8(_mm256_sub_ps(_mm256_loadu_ps(sr + i + 8), _mm256_loadu_ps(mx + i + 8)));
        _mm256_storeu_ps(sr + i, p0);
        _mm256_storeu_ps(sr + i + 8, p1);
        _mm256_storeu_ps(lsum + i, _mm256_add_ps(_mm256_loadu_ps(lsum + i), p0));
        _mm256_storeu_ps(lsum + i + 8, _mm256_add_ps(_mm256_loadu_ps(lsum + i + 8), p1));
    }
}
static inline float att_exp1(float x) {
    return _mm256_cvtss_f32(att_exp8(_mm256_set1_ps(x)));
}
/* As att_exp_row for a row whose columns i < i0 are masked (causal): they
 * get probability exactly 0 and add nothing to lsum; the other columns get
 * the very same values as att_exp_row gives them. */
static inline void att_exp_row_masked(float *restrict sr, const float *restrict mx,
                                      float *restrict lsum, int i0) {
    int start = i0 / 16 * 16 < ATT_BQ ? i0 / 16 * 16 : ATT_BQ;
    memset(sr, 0, (size_t)start * sizeof(float));
    const __m256 lim = _mm256_set1_ps((float)i0);
    const __m256 iota = _mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7);
    for (int i = start; i < ATT_BQ; i += 16) {
        __m256 keep0 = _mm256_cmp_ps(_mm256_add_ps(_mm256_set1_ps((float)i), iota), lim, _CMP_GE_OQ);
        __m256 keep1 = _mm256_cmp_ps(_mm256_add_ps(_mm256_set1_ps((float)(i + 8)), iota), lim,
                                     _CMP_GE_OQ);
        __m256 p0 = att_exp8(_mm256_sub_ps(_mm256_loadu_ps(sr + i), _mm256_loadu_ps(mx + i)));
        __m256 p1 = att_exp8(_mm256_sub_ps(_mm256_loadu_ps(sr + i + 8), _mm256_loadu_ps(mx + i + 8)));
        p0 = _mm256_and_ps(p0, keep0);
        p1 = _mm256_and_ps(p1, keep1);
        _mm256_storeu_ps(sr + i, p0);
        _mm256_storeu_ps(sr + i + 8, p1);
        _mm256_storeu_ps(lsum + i, _mm256_add_ps(_mm256_loadu_ps(lsum + i), p0));
        _mm256_storeu_ps(lsum + i + 8, _mm256_add_ps(_mm256_loadu_ps(lsum + i + 8), p1));
    }
}
#else
static inline void att_exp_row(float *restrict sr, const float *restrict mx,
                               float *restrict lsum) {
    for (int i = 0; i < ATT_BQ; i++) {
        float p = fs_fast_expf(sr[i] - mx[i]);
        sr[i] = p;
        lsum[i] += p;
    }
}
static inline float att_exp1(float x) { return fs_fast_expf(x); }
static inline void att_exp_row_masked(float *restrict sr, const float *restrict mx,
                                      float *restrict lsum, int i0) {
    for (int i = 0; i < ATT_BQ; i++) {
        if (i < i0) { sr[i] = 0.0f; continue; }
        float p = fs_fast_expf(sr[i] - mx[i]);
        sr[i] = p;
        lsum[i] += p;
    }
}
#endif

/* Online-softmax step for one key block: kv valid rows of st (the rest are
 * set to probability 0); updates m, l and rescales ot. Vectorised along the
 * queries (contiguous); every query column gets the same arithmetic whatever
 * its neighbours. */
static void att_softmax_block(const att_slice *s, int kv, int bk, int dh, int causal,
                              int64_t kb_minus_g0) {
    const int BQ = ATT_BQ;
    float *restrict mx = s->alpha; /* new max, then the rescale factor */
    float *restrict lsum = s->lsum;
    /* causal: key row r is masked for the query columns i < i0(r) = kb + r - g0
     * (key index above the query's); only blocks on the diagonal have any */
    int masked = causal && kb_minus_g0 + kv - 1 > 0;
    if (masked)
        for (int r = 0; r < kv; r++) {
            int64_t i0 = kb_minus_g0 + r;
            float *restrict sr = s->st + (size_t)r * ATT_LDS;
            for (int i = 0; i < BQ && i < i0; i++) sr[i] = -INFINITY;
        }
    for (int i = 0; i < BQ; i++) mx[i] = s->m[i];
    for (int r = 0; r < kv; r++) {
        const float *restrict sr = s->st + (size_t)r * ATT_LDS;
        for (int i = 0; i < BQ; i++) mx[i] = sr[i] > mx[i] ? sr[i] : mx[i];
    }
    for (int i = 0; i < BQ; i++) lsum[i] = 0.0f;
    for (int r = 0; r < kv; r++) {
        int64_t i0 = masked ? kb_minus_g0 + r : 0;
        if (i0 <= 0) att_exp_row(s->st + (size_t)r * ATT_LDS, mx, lsum);
        else att_exp_row_masked(s->st + (size_t)r * ATT_LDS, mx, lsum, i0 < BQ ? (int)i0 : BQ);
    }
    if (kv < bk) memset(s->st + (size_t)kv * ATT_LDS, 0, (size_t)(bk - kv) * ATT_LDS * sizeof(float));
    int rescale = 0;
    for (int i = 0; i < BQ; i++) {
        float old = s->m[i];
        float a = old == -INFINITY ? 0.0f : att_exp1(old - mx[i]);
        rescale |= a != 1.0f;
        s->m[i] = mx[i];
        s->l[i] = s->l[i] * a + lsum[i];
        mx[i] = a;
    }
    if (!rescale) return; /* every factor is exactly 1: multiplying changes no bit */
    for (int d = 0; d < dh; d++) {
        float *restrict od = s->ot + (size_t)d * BQ;
        for (int i = 0; i < BQ; i++) od[i] *= mx[i];
    }
}

typedef struct att_args {
    const float *q, *k, *v;
    float *o;
    int ldq, ldk, ldv, ldo, nq, nk, dh, bk;
    float scale;
    int64_t q0;
    int causal;
} att_args;

static void att_tile(const att_args *A, int64_t t, int h, const att_slice *s) {
    const int BQ = ATT_BQ, bk = A->bk, dh = A->dh;
    const int64_t g0 = t * BQ;
    const int64_t lo = g0 > A->q0 ? g0 : A->q0;
    const int64_t hi = g0 + BQ < A->q0 + A->nq ? g0 + BQ : A->q0 + A->nq;
    /* Q^T of the tile (zero columns for the queries not wanted) */
    fs_att_pack_qt(A->q + (size_t)(lo - A->q0) * A->ldq + (size_t)h * dh, A->ldq, (int)(lo - g0),
                   (int)(hi - g0), dh, BQ, s->qs);
    for (int i = 0; i < BQ; i++) {
        s->m[i] = -INFINITY;
        s->l[i] = 0.0f;
    }
    memset(s->ot, 0, (size_t)dh * BQ * sizeof(float));
    for (int kb = 0; kb < A->nk; kb += bk) {
        /* causal: keys from here on are after every query of the tile */
        if (A->causal && kb > g0 + BQ - 1) break;
        int kv = A->nk - kb < bk ? A->nk - kb : bk;
        const float *kp = A->k + (size_t)kb * A->ldk + (size_t)h * dh;
        const float *vp = A->v + (size_t)kb * A->ldv + (size_t)h * dh;
        /* S^T = scale K Q^T and O^T += V^T P^T on the kv keys there are
         * (attention_micro.c: fixed-order FMA chains, no padding needed) */
        fs_att_pack_k(kp, A->ldk, kv, dh, s->ks);
        fs_att_scores(s->ks, kv, s->qs, dh, BQ, A->scale, s->st, ATT_LDS);
        att_softmax_block(s, kv, bk, dh, A->causal, kb - g0);
        fs_att_pack_v(vp, A->ldv, kv, dh, s->vs);
        fs_att_pv(s->vs, kv, s->st, ATT_LDS, dh, BQ, s->ot);
    }
    /* o = O^T / l, transposed back into the wanted rows */
    fs_att_store_o(s->ot, BQ, s->l, (int)(lo - g0), (int)(hi - g0), dh,
                   A->o + (size_t)(lo - A->q0) * A->ldo + (size_t)h * dh, A->ldo);
}

/* ---------------------------------------------------------------- driver */

static fs_code attention(const float *q, int ldq, const float *k, int ldk, const float *v,
                         int ldv, float *o, int ldo, int nq, int nk, int heads, int dh,
                         float scale, int64_t q0, int causal, fs_arena *scratch, fs_error *err) {
    if (nq < 0 || nk < 1 || heads < 1 || dh < 1)
        return fs_fail(err, FS_ERR_INVALID, "attention: bad shape nq=%d nk=%d heads=%d dh=%d",
                       nq, nk, heads, dh);
    if (q0 < 0) return fs_fail(err, FS_ERR_INVALID, "attention: q0=%lld < 0", (long long)q0);
    int64_t width = (int64_t)heads * dh;
    if (ldq < width || ldk < width || ldv < width || ldo < width)
        return fs_fail(err, FS_ERR_INVALID,
                       "attention: row strides ldq=%d ldk=%d ldv=%d ldo=%d below heads*dh=%lld",
                       ldq, ldk, ldv, ldo, (long long)width);
    if (!isfinite(scale)) return fs_fail(err, FS_ERR_INVALID, "attention: scale is not finite");
    if (nq == 0) return FS_OK;
    if (!q || !k || !v || !o) return fs_fail(err, FS_ERR_INVALID, "attention: NULL q, k, v or o");

    const int nt = fs_threads_count(), bk = att_bk(nk);
    const size_t slice_floats = att_slice_floats(bk, dh);
    size_t mark = scratch ? fs_arena_mark(scratch) : 0;
    void *owned = NULL;
    float *slices = fs_scratch_take(scratch, (size_t)nt * slice_floats * sizeof(float), &owned,
                                    "attention", err);
    if (!slices) return err ? err->code : FS_ERR_NOMEM;

    att_args A = {q, k, v, o, ldq, ldk, ldv, ldo, nq, nk, dh, bk, scale, q0, causal};
    const int64_t t0 = q0 / ATT_BQ, t1 = (q0 + nq - 1) / ATT_BQ;
    const int64_t items = (t1 - t0 + 1) * heads;
#pragma omp parallel num_threads(nt)
    {
        att_slice s = att_slice_at(slices + (size_t)omp_get_thread_num() * slice_floats, bk, dh);
#pragma omp for schedule(dynamic, 1)
        for (int64_t it = 0; it < items; it++) att_tile(&A, t0 + it / heads, (int)(it % heads), &s);
    }
    if (scratch) fs_arena_reset(scratch, mark);
    fs_free(owned);
    return FS_OK;
}

fs_code fs_attention(const float *q, int ldq, const float *k, int ldk, const float *v, int ldv,
                     float *o, int ldo, int nq, int nk, int heads, int dh, float scale,
                     int64_t q0, fs_arena *scratch, fs_error *err) {
    return attention(q, ldq, k, ldk, v, ldv, o, ldo, nq, nk, heads, dh, scale, q0, 0, scratch,
                     err);
}

fs_code fs_attention_causal(const float *q, int ldq, const float *k, int ldk, const float *v,
                            int ldv, float *o, int ldo, int nq, int nk, int heads, int dh,
                            float scale, int64_t q0, fs_arena *scratch, fs_error *err) {
    return attention(q, ldq, k, ldk, v, ldv, o, ldo, nq, nk, heads, dh, scale, q0, 1, scratch,
                     err);
}
