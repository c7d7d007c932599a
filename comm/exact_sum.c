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
 * sum in any fixed order (cancellation loses nothing).
 *
 * fs_comm_sum_rows_exact is written over the transport's all-reduce of
 * int64, with the failure of any rank agreed on by an all-reduce of max. */
#include <math.h>
#include <string.h>
#include "comm/transport.h"

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

fs_code fs_comm_sum_rows_exact(fs_comm *c, const fs_strip_plan *plan, const double *own_part,
                               size_t m, double *sum, fs_error *err)
{
    if (!sum || !plan)
        return fs_fail(err, FS_ERR_INVALID, "exact row sum: NULL plan or sum");
    const int parts = plan->parts;
    if (parts > 1) {
        fs_code code = fs_comm_check_plan(c, plan, "exact row sum", err);
        if (code)
            return code;
    }
    const int rank = parts > 1 ? c->rank : 0;
    const int rows = fs_strip_rows(plan, rank);
    if (m > SIZE_MAX / sizeof(int64_t) / FS_EXACT_LIMBS / 2)
        return fs_fail(err, FS_ERR_RANGE, "exact row sum: %zu values", m);
    const size_t limbs = m * FS_EXACT_LIMBS;
    int64_t *acc = fs_alloc(2 * limbs * sizeof(int64_t) + 8);
    if (!acc)
        return fs_fail(err, FS_ERR_NOMEM, "exact row sum: %zu values", m);
    memset(acc, 0, limbs * sizeof(int64_t));
    fs_code code = FS_OK;
    for (int r = 0; r < rows && !code; r++)
        for (size_t j = 0; j < m; j++)
            if (fs_exact_add(acc + j * FS_EXACT_LIMBS, own_part[(size_t)r * m + j])) {
                code = fs_fail(err, FS_ERR_RANGE,
                               "exact row sum: value %g (row %d, index %zu) is not finite or "
                               "not below 2^110", own_part[(size_t)r * m + j],
                               plan->row0[rank] + r, j);
                break;
            }
    /* every rank reaches the all-reduce, a failed one too (with zeros): the
     * failure is then agreed on below, nobody is left waiting */
    int64_t *total = acc + limbs;
    if (code)
        memset(acc, 0, limbs * sizeof(int64_t));
    memcpy(total, acc, limbs * sizeof(int64_t));
    if (parts > 1) {
        int bad = code != FS_OK;
        fs_code rc = c->t->ops->allreduce_i64(c->t, fs_comm_host(total), limbs, FS_REDUCE_SUM,
                                              NULL, err);
        if (rc) {
            fs_free(acc);
            return rc;
        }
        fs_comm_count(c, FS_TRAFFIC_REDUCE, limbs * sizeof(int64_t), limbs * sizeof(int64_t));
        fs_error local = {0};
        fs_code agreed = fs_comm_allreduce_max_int(c, &bad, &local);
        if (!code && agreed)
            code = fs_fail(err, agreed, "%s", local.msg);
        else if (!code && bad)
            code = fs_fail(err, FS_ERR_RANGE, "exact row sum: a value on another rank is not "
                                              "finite or not below 2^110");
    }
    for (size_t j = 0; j < m && !code; j++)
        if (fs_exact_value(total + j * FS_EXACT_LIMBS, &sum[j]))
            code = fs_fail(err, FS_ERR_RANGE, "exact row sum: the sum at index %zu reaches 2^110",
                           j);
    fs_free(acc);
    return code;
}
