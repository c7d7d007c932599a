/* comm/strip_plan.c: how a map's rows are cut into one strip per rank.
 *
 * Pure arithmetic, no MPI: the coordinator uses it to plan before any rank
 * does work, and every rank recomputes the same plan from (h, parts, align).
 * The cut is in units of `align` rows (the last unit may be partial, ending
 * at h), so every boundary but the last is a multiple of align and each
 * coarser UNet level still has whole rows on every rank. */
#include "comm/comm.h"

fs_code fs_strip_plan_make(int h, int parts, int align, fs_strip_plan *plan, fs_error *err)
{
    if (!plan)
        return fs_fail(err, FS_ERR_INVALID, "strip plan: plan is NULL");
    if (h < 1)
        return fs_fail(err, FS_ERR_INVALID, "strip plan: map height %d must be >= 1", h);
    if (parts < 1 || parts > FS_MAX_RANKS)
        return fs_fail(err, FS_ERR_INVALID, "strip plan: %d parts is outside 1..%d", parts,
                       FS_MAX_RANKS);
    if (align < 1)
        return fs_fail(err, FS_ERR_INVALID, "strip plan: alignment %d must be >= 1", align);

    /* Units of `align` rows; a trailing partial unit still counts as one,
     * since it is a strip of at least one row. */
    int units = (int)(((int64_t)h + align - 1) / align);
    if (units < parts)
        return fs_fail(err, FS_ERR_RANGE,
                       "strip plan: %d rows in units of %d give only %d strip(s), cannot cut "
                       "%d parts; at most %d parts would fit",
                       h, align, units, parts, units);

    int base = units / parts, extra = units % parts;
    plan->h = h;
    plan->parts = parts;
    plan->align = align;
    int64_t unit0 = 0;
    for (int r = 0; r < parts; r++) {
        plan->row0[r] = (int)(unit0 * align);
        /* The first `extra` strips get one unit more, so any imbalance (and
         * the short last unit) lands on the last ranks. */
        unit0 += base + (r < extra ? 1 : 0);
    }
    plan->row0[parts] = h;
    return FS_OK;
}

fs_code fs_strip_plan_coarsen(const fs_strip_plan *fine, int factor, fs_strip_plan *coarse,
                              fs_error *err)
{
    if (!fine || !coarse)
        return fs_fail(err, FS_ERR_INVALID, "strip plan coarsen: plan is NULL");
    if (factor < 1)
        return fs_fail(err, FS_ERR_INVALID, "strip plan coarsen: factor %d must be >= 1", factor);
    if (fine->parts < 1 || fine->parts > FS_MAX_RANKS || fine->h < 1)
        return fs_fail(err, FS_ERR_INVALID, "strip plan coarsen: malformed plan (h %d, %d parts)",
                       fine->h, fine->parts);
    for (int r = 1; r < fine->parts; r++)
        if (fine->row0[r] % factor != 0)
            return fs_fail(err, FS_ERR_INVALID,
                           "strip plan coarsen: boundary of strip %d at row %d is not a multiple "
                           "of the factor %d (plan alignment %d)",
                           r, fine->row0[r], factor, fine->align);
    /* Kept on a local copy so coarse may alias fine. */
    int parts = fine->parts, h = fine->h;
    coarse->parts = parts;
    coarse->h = (h + factor - 1) / factor;   /* as a stride-`factor` conv rounds up */
    coarse->align = fine->align % factor == 0 ? fine->align / factor : 1;
    for (int r = 0; r < parts; r++)
        coarse->row0[r] = fine->row0[r] / factor;
    coarse->row0[parts] = coarse->h;
    /* Every fine strip had >= 1 row and interior boundaries divide exactly,
     * so coarse strips cannot be empty; check anyway, the plan may be forged. */
    for (int r = 0; r < parts; r++)
        if (coarse->row0[r + 1] <= coarse->row0[r])
            return fs_fail(err, FS_ERR_RANGE,
                           "strip plan coarsen: strip %d is empty at factor %d", r, factor);
    return FS_OK;
}

int fs_strip_plan_owner(const fs_strip_plan *plan, int y)
{
    if (!plan || y < 0 || y >= plan->h)
        return -1;
    int lo = 0, hi = plan->parts - 1;  /* the answer r has row0[r] <= y < row0[r+1] */
    while (lo < hi) {
        int mid = lo + (hi - lo + 1) / 2;
        if (plan->row0[mid] <= y)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}
