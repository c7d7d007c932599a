/* kernels/attention_micro.c: the score and output products of a flash-
 * attention step as register-blocked loops on packed panels (see
 * attention_micro.h for why and for the panel layouts).
 *
 * Blocking: an output block of R <= 6 rows x 16 query columns lives in 2R AVX
 * registers (12 accumulators, 2 loaded operand vectors, 1 broadcast: 15 of
 * the 16 ymm registers) while the inner dimension streams by; each step is 2
 * vector loads, R broadcasts and 2R FMAs, so the loop is bound by the FMA
 * units. Query columns go in chunks of 16 so the operand reused across row
 * panels (a Q^T panel, or kv x 16 probabilities) stays in L1.
 *
 * Determinism: every output element is one FMA chain in a fixed order (d
 * ascending for a score, keys ascending for an output), then one multiply
 * (the scale) or one add (into ot). The blocking only decides which elements
 * share a loop, never the arithmetic of an element. */
#include <string.h>
#include "kernels/attention_micro.h"

enum { MICRO_R = 6, MICRO_Q = 16 };

size_t fs_att_packed_floats(int n, int dh) { return (size_t)n * (size_t)dh; }

void fs_att_pack_qt(const float *q, int ldq, int i0, int i1, int dh, int bq, float *qt) {
    for (int p = 0; p < bq; p += MICRO_Q) {
        float *panel = qt + (size_t)p * dh; /* [dh][16] */
        if (p + MICRO_Q <= i0 || p >= i1) {
            memset(panel, 0, (size_t)dh * MICRO_Q * sizeof(float));
            continue;
        }
        for (int c = 0; c < MICRO_Q; c++) {
            int i = p + c;
            if (i < i0 || i >= i1) {
                for (int d = 0; d < dh; d++) panel[(size_t)d * MICRO_Q + c] = 0.0f;
            } else {
                const float *qi = q + (size_t)(i - i0) * ldq;
                for (int d = 0; d < dh; d++) panel[(size_t)d * MICRO_Q + c] = qi[d];
            }
        }
    }
}

void fs_att_pack_k(const float *k, int ldk, int kv, int dh, float *kp) {
    for (int g = 0; g < kv; g += MICRO_R) {
        int R = kv - g < MICRO_R ? kv - g : MICRO_R;
        float *panel = kp + (size_t)g * dh; /* [dh][R] */
        for (int j = 0; j < R; j++) {
            const float *kr = k + (size_t)(g + j) * ldk;
            for (int d = 0; d < dh; d++) panel[(size_t)d * R + j] = kr[d];
        }
    }
}

void fs_att_pack_v(const float *v, int ldv, int kv, int dh, float *vp) {
    for (int g = 0; g < dh; g += MICRO_R) {
        int R = dh - g < MICRO_R ? dh - g : MICRO_R;
        float *panel = vp + (size_t)g * kv; /* [kv][R] */
        for (int r = 0; r < kv; r++)
            memcpy(panel + (size_t)r * R, v + (size_t)r * ldv + g, (size_t)R * sizeof(float));
    }
}

static void store_o_scalar(const float *ot, int bq, const float *l, int i0, int i1, int d0,
                           int d1, float *o, int ldo) {
    for (int i = i0; i < i1; i++)
        for (int d = d0; d < d1; d++)
            o[(size_t)(i - i0) * ldo + d] = ot[(size_t)d * bq + i] / l[i];
}

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>

#define ALWAYS_INLINE static inline __attribute__((always_inline))

void fs_att_store_o(const float *ot, int bq, const float *l, int i0, int i1, int dh, float *o,
                    int ldo) {
    const int d8 = dh / 8 * 8;
    int i = i0;
    for (; i + 8 <= i1; i += 8) {
        const __m256 lv = _mm256_loadu_ps(l + i);
        for (int d = 0; d < d8; d += 8) {
            __m256 r[8], t[8];
            for (int j = 0; j < 8; j++)
                r[j] = _mm256_div_ps(_mm256_loadu_ps(ot + (size_t)(d + j) * bq + i), lv);
            /* 8 x 8 transpose: r[j][k] (dim d + j, query i + k) -> row k */
            for (int j = 0; j < 8; j += 2) {
                t[j] = _mm256_unpacklo_ps(r[j], r[j + 1]);
                t[j + 1] = _mm256_unpackhi_ps(r[j], r[j + 1]);
            }
            for (int j = 0; j < 8; j += 4) {
                r[j] = _mm256_shuffle_ps(t[j], t[j + 2], 0x44);
                r[j + 1] = _mm256_shuffle_ps(t[j], t[j + 2], 0xEE);
                r[j + 2] = _mm256_shuffle_ps(t[j + 1], t[j + 3], 0x44);
                r[j + 3] = _mm256_shuffle_ps(t[j + 1], t[j + 3], 0xEE);
            }
            /* r[0..3]: queries 0,1,2,3 (low lanes) / 4,5,6,7 (high) of dims
             * 0-3 (r[0..3]) and 4-7 (r[4..7]) */
            for (int k = 0; k < 4; k++) {
                float *row_lo = o + (size_t)(i - i0 + k) * ldo + d;
                float *row_hi = o + (size_t)(i - i0 + k + 4) * ldo + d;
                _mm256_storeu_ps(row_lo, _mm256_permute2f128_ps(r[k], r[k + 4], 0x20));
                _mm256_storeu_ps(row_hi, _mm256_permute2f128_ps(r[k], r[k + 4], 0x31));
            }
        }
        if (d8 < dh) store_o_scalar(ot, bq, l, i, i + 8, d8, dh, o + (size_t)(i - i0) * ldo, ldo);
    }
    if (i < i1) store_o_scalar(ot, bq, l, i, i1, 0, dh, o + (size_t)(i - i0) * ldo, ldo);
}

/* st[j * lds + 0..16) = scale * sum_d kp[d * R + j] qt[d * 16 + 0..16), j < R. */
ALWAYS_INLINE void scores_block(const float *kp, const float *qt, int dh, __m256 scale,
                                float *st, int lds, const int R) {
    __m256 a0[MICRO_R], a1[MICRO_R];
    for (int j = 0; j < R; j++) a0[j] = a1[j] = _mm256_setzero_ps();
    for (int d = 0; d < dh; d++) {
        const __m256 q0 = _mm256_loadu_ps(qt + (size_t)d * MICRO_Q);
        const __m256 q1 = _mm256_loadu_ps(qt + (size_t)d * MICRO_Q + 8);
        for (int j = 0; j < R; j++) {
            const __m256 b = _mm256_broadcast_ss(kp + (size_t)d * R + j);
            a0[j] = _mm256_fmadd_ps(b, q0, a0[j]);
            a1[j] = _mm256_fmadd_ps(b, q1, a1[j]);
        }
    }
    for (int j = 0; j < R; j++) {
        _mm256_storeu_ps(st + (size_t)j * lds, _mm256_mul_ps(a0[j], scale));
        _mm256_storeu_ps(st + (size_t)j * lds + 8, _mm256_mul_ps(a1[j], scale));
    }
}

void fs_att_scores(const float *kp, int kv, const float *qt, int dh, int bq, float scale,
                   float *st, int lds) {
    const __m256 sc = _mm256_set1_ps(scale);
    for (int i0 = 0; i0 < bq; i0 += MICRO_Q) {
        const float *qpanel = qt + (size_t)i0 * dh;
        int g = 0;
        for (; g + MICRO_R <= kv; g += MICRO_R)
            scores_block(kp + (size_t)g * dh, qpanel, dh, sc, st + (size_t)g * lds + i0, lds,
                         MICRO_R);
        switch (kv - g) { /* the last, narrower panel */
        case 5: scores_block(kp + (size_t)g * dh, qpanel, dh, sc, st + (size_t)g * lds + i0, lds, 5); break;
        case 4: scores_block(kp + (size_t)g * dh, qpanel, dh, sc, st + (size_t)g * lds + i0, lds, 4); break;
        case 3: scores_block(kp + (size_t)g * dh, qpanel, dh, sc, st + (size_t)g * lds + i0, lds, 3); break;
        case 2: scores_block(kp + (size_t)g * dh, qpanel, dh, sc, st + (size_t)g * lds + i0, lds, 2); break;
        case 1: scores_block(kp + (size_t)g * dh, qpanel, dh, sc, st + (size_t)g * lds + i0, lds, 1); break;
        default: break;
        }
    }
}

/* ot[j * bq + 0..16) += sum_{r < kv} vp[r * R + j] st[r * lds + 0..16), j < R. */
ALWAYS_INLINE void pv_block(const float *vp, int kv, const float *st, int lds, int bq, float *ot,
                            const int R) {
    __m256 a0[MICRO_R], a1[MICRO_R];
    for (int j = 0; j < R; j++) a0[j] = a1[j] = _mm256_setzero_ps();
    for (int r = 0; r < kv; r++) {
        const __m256 p0 = _mm256_loadu_ps(st + (size_t)r * lds);
        const __m256 p1 = _mm256_loadu_ps(st + (size_t)r * lds + 8);
        for (int j = 0; j < R; j++) {
            const __m256 b = _mm256_broadcast_ss(vp + (size_t)r * R + j);
            a0[j] = _mm256_fmadd_ps(b, p0, a0[j]);
            a1[j] = _mm256_fmadd_ps(b, p1, a1[j]);
        }
    }
    for (int j = 0; j < R; j++) {
        float *o = ot + (size_t)j * bq;
        _mm256_storeu_ps(o, _mm256_add_ps(_mm256_loadu_ps(o), a0[j]));
        _mm256_storeu_ps(o + 8, _mm256_add_ps(_mm256_loadu_ps(o + 8), a1[j]));
    }
}

void fs_att_pv(const float *vp, int kv, const float *st, int lds, int dh, int bq, float *ot) {
    for (int i0 = 0; i0 < bq; i0 += MICRO_Q) {
        int g = 0;
        for (; g + MICRO_R <= dh; g += MICRO_R)
            pv_block(vp + (size_t)g * kv, kv, st + i0, lds, bq, ot + (size_t)g * bq + i0, MICRO_R);
        switch (dh - g) {
        case 5: pv_block(vp + (size_t)g * kv, kv, st + i0, lds, bq, ot + (size_t)g * bq + i0, 5); break;
        case 4: pv_block(vp + (size_t)g * kv, kv, st + i0, lds, bq, ot + (size_t)g * bq + i0, 4); break;
        case 3: pv_block(vp + (size_t)g * kv, kv, st + i0, lds, bq, ot + (size_t)g * bq + i0, 3); break;
        case 2: pv_block(vp + (size_t)g * kv, kv, st + i0, lds, bq, ot + (size_t)g * bq + i0, 2); break;
        case 1: pv_block(vp + (size_t)g * kv, kv, st + i0, lds, bq, ot + (size_t)g * bq + i0, 1); break;
        default: break;
        }
    }
}

#else /* portable: the same chains, one element at a time */

void fs_att_store_o(const float *ot, int bq, const float *l, int i0, int i1, int dh, float *o,
                    int ldo) {
    store_o_scalar(ot, bq, l, i0, i1, 0, dh, o, ldo);
}

static int panel_width(int n, int g) { return n - g < MICRO_R ? n - g : MICRO_R; }

void fs_att_scores(const float *kp, int kv, const float *qt, int dh, int bq, float scale,
                   float *st, int lds) {
    for (int r = 0; r < kv; r++) {
        int g = r / MICRO_R * MICRO_R, R = panel_width(kv, g);
        const float *panel = kp + (size_t)g * dh;
        for (int i = 0; i < bq; i++) {
            const float *qpanel = qt + (size_t)(i / MICRO_Q * MICRO_Q) * dh + i % MICRO_Q;
            float s = 0.0f;
            for (int d = 0; d < dh; d++)
                s += panel[(size_t)d * R + (r - g)] * qpanel[(size_t)d * MICRO_Q];
            st[(size_t)r * lds + i] = s * scale;
        }
    }
}

void fs_att_pv(const float *vp, int kv, const float *st, int lds, int dh, int bq, float *ot) {
    for (int d = 0; d < dh; d++) {
        int g = d / MICRO_R * MICRO_R, R = panel_width(dh, g);
        const float *panel = vp + (size_t)g * kv;
        for (int i = 0; i < bq; i++) {
            float s = 0.0f;
            for (int r = 0; r < kv; r++) s += panel[(size_t)r * R + (d - g)] * st[(size_t)r * lds + i];
            ot[(size_t)d * bq + i] += s;
        }
    }
}

#endif
