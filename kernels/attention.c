/* kernels/attention.c: multi-head scaled dot-product attention
 * o = softmax(q k^T * scale) v, as a plain three-pass reference in double and
 * as a flash-style streaming version on fixed-shape OpenBLAS tiles.
 *
 * The fast version works on one (query tile, head) at a time: BQ queries at
 * a global multiple of BQ, against the keys in blocks of BK. Everything is
 * kept transposed so the queries are the long, contiguous dimension:
 *   S^T[BK][BQ] = scale * Kblk Q^T          (one sgemm, OpenBLAS m = BQ)
 *   online softmax down the columns of S^T  (running max m, sum l per query)
 *   O^T[dh][BQ] = alpha * O^T + Vblk^T P^T  (one sgemm, OpenBLAS m = BQ)
 * and o = O^T / l is written back at the end. No nq x nk matrix exists, the
 * scratch (S^T, O^T and padded copies) does not depend on nk, and a query's
 * result depends only on its global index (its place in its tile), nk, and
 * the data: any split of the queries (q0, nq) gives the same bits. */
#include <math.h>
#include <omp.h>
#include <string.h>
#include "kernels/fastmath.h"
#include "kernels/gemm_tiles.h"
#include "kernels/kernels.h"

/* Queries per tile: one OpenBLAS GEMM_P block (320) holds them, so the packed
 * S^T / Q panel stays in L2 across the kernel's sweep. */
#define ATT_BQ 256
/* Keys per block (fewer when nk is small: nk is the same on every rank). */
#define ATT_BK_MAX 256

static int att_bk(int nk) {
    int bk = (nk + 15) / 16 * 16;
    return bk < ATT_BK_MAX ? bk : ATT_BK_MAX;
}

/* ---------------------------------------------------------------- reference */

void fs_attention_ref(const float *q, int ldq, const float *k, int ldk, const float *v, int ldv,
                      float *o, int ldo, int nq, int nk, int heads, int dh, float scale) {
    if (nq <= 0 || nk <= 0) return;
    double *s = fs_alloc((size_t)nk * sizeof(double));
    double *acc = fs_alloc((size_t)dh * sizeof(double));
    if (!s || !acc) { fs_free(s); fs_free(acc); return; }
    for (int h = 0; h < heads; h++)
        for (int i = 0; i < nq; i++) {
            const float *qi = q + (size_t)i * ldq + (size_t)h * dh;
            double mx = -INFINITY;
            for (int j = 0; j < nk; j++) {
                const float *kj = k + (size_t)j * ldk + (size_t)h * dh;
                double dot = 0;
                for (int d = 0; d < dh; d++) dot += (double)qi[d] * kj[d];
                s[j] = dot * scale;
                if (s[j] > mx) mx = s[j];
            }
            double sum = 0;
            for (int j = 0; j < nk; j++) {
                s[j] = exp(s[j] - mx);
                sum += s[j];
            }
            for (int d = 0; d < dh; d++) acc[d] = 0;
            for (int j = 0; j < nk; j++) {
                const float *vj = v + (size_t)j * ldv + (size_t)h * dh;
                for (int d = 0; d < dh; d++) acc[d] += s[j] * vj[d];
            }
            float *oi = o + (size_t)i * ldo + (size_t)h * dh;
            for (int d = 0; d < dh; d++) oi[d] = (float)(acc[d] / sum);
        }
    fs_free(s);
    fs_free(acc);
}

/* ---------------------------------------------------------------- scratch */

typedef struct att_slice {
    float *st;      /* [BK][BQ] scores, then probabilities */
    float *ot;      /* [dh][BQ] output accumulator, transposed */
    float *qs;      /* [BQ][dh] padded query tile */
    float *ks, *vs; /* [BK][dh] padded last key / value block */
    float *m, *l, *alpha, *lsum; /* [BQ] */
} att_slice;

static size_t round16(size_t n) { return (n + 15) / 16 * 16; }

static size_t att_slice_floats(int bk, int dh) {
    return round16((size_t)bk * ATT_BQ) + 2 * round16((size_t)dh * ATT_BQ) +
           2 * round16((size_t)bk * dh) + 4 * round16(ATT_BQ);
}

static att_slice att_slice_at(float *base, int bk, int dh) {
    att_slice s;
    s.st = base;
    s.ot = s.st + round16((size_t)bk * ATT_BQ);
    s.qs = s.ot + round16((size_t)dh * ATT_BQ);
    s.ks = s.qs + round16((size_t)dh * ATT_BQ);
    s.vs = s.ks + round16((size_t)bk * dh);
    s.m = s.vs + round16((size_t)bk * dh);
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
#endif

/* Online-softmax step for one key block: kv valid rows of st (the rest are
 * set to probability 0); updates m, l and rescales ot. Vectorised along the
 * queries (contiguous); every query column gets the same arithmetic whatever
 * its neighbours. */
static void att_softmax_block(const att_slice *s, int kv, int bk, int dh) {
    const int BQ = ATT_BQ;
    float *restrict mx = s->alpha; /* new max, then the rescale factor */
    float *restrict lsum = s->lsum;
    for (int i = 0; i < BQ; i++) mx[i] = s->m[i];
    for (int r = 0; r < kv; r++) {
        const float *restrict sr = s->st + (size_t)r * BQ;
        for (int i = 0; i < BQ; i++) mx[i] = sr[i] > mx[i] ? sr[i] : mx[i];
    }
    for (int i = 0; i < BQ; i++) lsum[i] = 0.0f;
    for (int r = 0; r < kv; r++) att_exp_row(s->st + (size_t)r * BQ, mx, lsum);
    if (kv < bk) memset(s->st + (size_t)kv * BQ, 0, (size_t)(bk - kv) * BQ * sizeof(float));
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
} att_args;

static void att_tile(const att_args *A, int64_t t, int h, const att_slice *s) {
    const int BQ = ATT_BQ, bk = A->bk, dh = A->dh;
    const int64_t g0 = t * BQ;
    const int64_t lo = g0 > A->q0 ? g0 : A->q0;
    const int64_t hi = g0 + BQ < A->q0 + A->nq ? g0 + BQ : A->q0 + A->nq;
    const float *qp;
    int ldq;
    if (lo == g0 && hi == g0 + BQ) {
        qp = A->q + (size_t)(g0 - A->q0) * A->ldq + (size_t)h * dh;
        ldq = A->ldq;
    } else {
        memset(s->qs, 0, (size_t)BQ * dh * sizeof(float));
        for (int64_t r = lo; r < hi; r++)
            memcpy(s->qs + (size_t)(r - g0) * dh, A->q + (size_t)(r - A->q0) * A->ldq + (size_t)h * dh,
                   (size_t)dh * sizeof(float));
        qp = s->qs;
        ldq = dh;
    }
    for (int i = 0; i < BQ; i++) {
        s->m[i] = -INFINITY;
        s->l[i] = 0.0f;
    }
    memset(s->ot, 0, (size_t)dh * BQ * sizeof(float));
    for (int kb = 0; kb < A->nk; kb += bk) {
        int kv = A->nk - kb < bk ? A->nk - kb : bk;
        const float *kp = A->k + (size_t)kb * A->ldk + (size_t)h * dh;
        const float *vp = A->v + (size_t)kb * A->ldv + (size_t)h * dh;
        int ldk = A->ldk, ldv = A->ldv;
        if (kv < bk) { /* the last block, padded to the full shape */
            memset(s->ks, 0, (size_t)bk * dh * sizeof(float));
            memset(s->vs, 0, (size_t)bk * dh * sizeof(float));
            for (int r = 0; r < kv; r++) {
                memcpy(s->ks + (size_t)r * dh, kp + (size_t)r * A->ldk, (size_t)dh * sizeof(float));
                memcpy(s->vs + (size_t)r * dh, vp + (size_t)r * A->ldv, (size_t)dh * sizeof(float));
            }
            kp = s->ks;
            vp = s->vs;
            ldk = ldv = dh;
        }
        fs_sgemm(0, 1, bk, BQ, dh, A->scale, kp, ldk, qp, ldq, 0.0f, s->st, BQ);
        att_softmax_block(s, kv, bk, dh);
        fs_sgemm(1, 0, dh, BQ, bk, 1.0f, vp, ldv, s->st, BQ, 1.0f, s->ot, BQ);
    }
    for (int64_t r = lo; r < hi; r++) {
        size_t i = (size_t)(r - g0);
        float *orow = A->o + (size_t)(r - A->q0) * A->ldo + (size_t)h * dh;
        float inv_l = s->l[i];
        for (int d = 0; d < dh; d++) orow[d] = s->ot[(size_t)d * BQ + i] / inv_l;
    }
}

/* ---------------------------------------------------------------- driver */

fs_code fs_attention(const float *q, int ldq, const float *k, int ldk, const float *v, int ldv,
                     float *o, int ldo, int nq, int nk, int heads, int dh, float scale,
                     int64_t q0, fs_arena *scratch, fs_error *err) {
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

    att_args A = {q, k, v, o, ldq, ldk, ldv, ldo, nq, nk, dh, bk, scale, q0};
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
