/* comm/exact_sum.c: sums of doubles that do not depend on the order of the
 * additions, so a reduction across ranks can be one all-reduce of a few
 * bytes per value instead of a gather of every row's partials in row order.
 *
 * Each value is turned into a fixed-point integer of FS_EXACT_LIMBS limbs of
 * 32 bits (bit 0 of limb 0 weighs 2^-FS_EXACT_BIAS), held in int64 so that up
 * to 2^31 values add into a limb without overflow and carries can wait until
 * the end. Integer addition is associative: the same integer comes out of any
 * grouping of the same values, here and in MPI_Allreduce(MPI_INT64_T, SUM).
 * The conversion of one value is deterministic (bits below 2^-112 are
 * dropped toward zero), so the result is a function of the values alone:
 * the same bits for any rank count, and closer to the true sum than a double
 * sum in any fixed order (cancellation loses nothing). */
#include <math.h>
#include <string.h>
#include "comm/comm.h"

#define LIMB ((int64_t)1 << 32)

int fs_exact_add(int64_t acc[FS_EXACT_LIMBS], double v) {
    if (v == 0.0) return 0;
    if (!isfinite(v) || fabs(v) >= FS_EXACT_MAX) return -1;
    int e;
    double f = frexp(fabs(v), &e);              /* |v| = f 2^e, f in [0.5, 1) */
    uint64_t mant = (uint64_t)ldexp(f, 53);     /* exact: < 2^53 */
    int shift = e - 53 + FS_EXACT_BIAS;         /* the weight of mant's bit 0 */
    if (shift < 0) {
        if (shift <= -53) return 0;             /* below the grid altogether */
        mant >>= -shift;
        shift = 0;
    }
    /* mant << (shift % 32) < 2^85: at most three limbs, all below the top
     * one for |v| < FS_EXACT_MAX (shift <= 2^110's 169: limbs 5 and 6) */
    unsigned __int128 w = (unsigned __int128)mant << (shift % 32);
    for (int i = shift / 32; w && i < FS_EXACT_LIMBS; i++, w >>= 32) {
        int64_t chunk = (int64_t)(uint32_t)w;
        acc[i] += v < 0 ? -chunk : chunk;
    }
    return 0;
}

/* Carries up: limbs 0 .. L-2 in [0, 2^32), the top one signed. */
static void normalize(int64_t acc[FS_EXACT_LIMBS]) {
    for (int i = 0; i < FS_EXACT_LIMBS - 1; i++) {
        int64_t low = acc[i] & (LIMB - 1);
        acc[i + 1] += (acc[i] - low) / LIMB;   /* exact: acc - low is a multiple of 2^32 */
        acc[i] = low;
    }
}

int fs_exact_value(const int64_t in[FS_EXACT_LIMBS], double *out) {
    int64_t a[FS_EXACT_LIMBS];
    memcpy(a, in, sizeof a);
    normalize(a);
    int neg = a[FS_EXACT_LIMBS - 1] < 0;
    if (neg) { /* the magnitude: negate every limb, carry again */
        for (int i = 0; i < FS_EXACT_LIMBS; i++) a[i] = -a[i];
        normalize(a);
    }
    /* the top limb carries bits 192 .. 223 of the grid: past 2^31 there the
     * sum has left the range the values were checked against */
    if (a[FS_EXACT_LIMBS - 1] >= ((int64_t)1 << 30)) return -1;
    int t = FS_EXACT_LIMBS - 1;
    while (t > 0 && a[t] == 0) t--;
    /* the top 64 bits exactly, rounded once to a double, plus the next limb:
     * a deterministic function of the integer (within 2 ulp of it) */
    double v;
    if (t == 0) {
        v = ldexp((double)a[0], -FS_EXACT_BIAS);
    } else {
        uint64_t hi = ((uint64_t)a[t] << 32) | (uint64_t)a[t - 1];
        v = ldexp((double)hi, 32 * (t - 1) - FS_EXACT_BIAS);
        if (t >= 2) v += ldexp((double)a[t - 2], 32 * (t - 2) - FS_EXACT_BIAS);
    }
    *out = neg ? -v : v;
    return 0;
}
