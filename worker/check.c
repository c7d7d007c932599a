/* The distributed exactness check: one UNet-style block (GroupNorm with
 * global statistics, SiLU, 3x3 convolution) computed on row strips with
 * halos and the exact reductions the render uses (fs_comm_sum_rows_exact,
 * as nn's GroupNorm), gathered and compared with the same block computed on
 * the whole map by one rank (the same exact sums, summed locally). */
#include <string.h>
#include "kernels/kernels.h"
#include "worker/worker.h"

fs_check_params fs_check_default_params(void) {
    fs_check_params p = {.size = 64, .channels = 320, .batch = 2, .dilation = 1, .seed = 1};
    return p;
}

/* The block on rows [row0, row0 + rows) of the map, given x with `halo` rows
 * above and below (rows outside the map are ignored by the ops). Statistics
 * come from `sums`, the totals over the whole map of the rows' partials. */
static fs_code block_forward(const fs_check_params *p, const float *x_halo, int row0, int rows,
                             int halo, const double *sums, const float *gamma,
                             const float *beta, const float *w, const float *bias, float *y,
                             fs_arena *scratch, fs_error *err) {
    const fs_backend *be = fs_backend_cpu();
    const int n = p->batch, s = p->size, c = p->channels, groups = 32;
    float mean[2 * 32], rstd[2 * 32];
    fs_groupnorm_finish_sums(sums, s, n, s, c, groups, 1e-5f, mean, rstd);
    size_t rows_in = (size_t)rows + 2 * halo;
    float *h = fs_arena_floats(scratch, (size_t)n * rows_in * s * c);
    if (!h) return fs_fail(err, FS_ERR_NOMEM, "check: scratch arena too small");
    fs_code rc = be->op->gn_apply(be, x_halo, h, n, (int)rows_in, s, c, groups, mean, rstd, gamma,
                                  beta, 1, err);
    fs_conv2d_desc d = {.n = n, .in_h = s, .in_w = s, .cin = c, .cout = c, .k = 3, .stride = 1,
                        .dil = p->dilation, .x_row0 = row0 - halo, .x_rows = (int)rows_in,
                        .y_row0 = row0, .y_rows = rows};
    return rc ? rc : be->op->conv2d(be, &d, h, w, bias, y, scratch, err);
}

fs_code fs_worker_check(fs_comm *comm, const fs_check_params *p, fs_check_report *report,
                        fs_error *err) {
    memset(report, 0, sizeof *report);
    const int n = p->batch, s = p->size, c = p->channels, groups = 32, halo = p->dilation;
    const int rank = fs_comm_rank(comm), size = fs_comm_size(comm);
    if (c % groups || s < 1 || n < 1 || halo < 1)
        return fs_fail(err, FS_ERR_INVALID, "check: channels must be a multiple of 32, size >= 1");
    fs_strip_plan plan, whole;
    fs_code rc = fs_strip_plan_make(s, size, 1, &plan, err);
    if (!rc) rc = fs_strip_plan_make(s, 1, 1, &whole, err);
    if (rc) return rc;
    const int row0 = plan.row0[rank], rows = fs_strip_rows(&plan, rank);
    const size_t row_elems = (size_t)s * c, map = (size_t)s * row_elems;
    const size_t mg = (size_t)n * groups * 2;

    /* Weights and the input: pure functions of the seed (same on every rank). */
    float *gamma = fs_alloc(c * 4), *beta = fs_alloc(c * 4), *bias = fs_alloc(c * 4);
    float *w = fs_alloc((size_t)c * 9 * c * 4), *x = fs_alloc(n * map * 4);
    float *y_whole = fs_alloc(n * map * 4), *y_strips = fs_alloc(n * map * 4);
    float *x_halo = fs_alloc((size_t)n * (rows + 2 * halo) * row_elems * 4);
    float *y_own = fs_alloc((size_t)n * rows * row_elems * 4 + 4);
    double *part = fs_alloc((size_t)s * mg * 8), *tmp = fs_alloc((size_t)s * mg * 8);
    double *sums = fs_alloc(mg * 8);
    size_t arena_bytes = (size_t)n * (s + 2 * halo) * row_elems * 4 + ((size_t)64 << 20);
    fs_arena *scratch = fs_arena_create(arena_bytes, err);
    if (!gamma || !beta || !bias || !w || !x || !y_whole || !y_strips || !x_halo || !y_own ||
        !part || !tmp || !sums || !scratch) {
        rc = scratch ? fs_fail(err, FS_ERR_NOMEM, "check: out of memory") : FS_ERR_NOMEM;
        goto done;
    }
    fs_rng_fill_normal(x, n * map, p->seed, 1, 0);
    fs_rng_fill_normal(w, (size_t)c * 9 * c, p->seed, 2, 0);
    rc = fs_backend_cpu()->op->scale(fs_backend_cpu(), w, w, (size_t)c * 9 * c, 0.02f, err);
    if (rc) goto done;
    for (int i = 0; i < c; i++) {
        gamma[i] = 1 + 0.1f * fs_rng_normal(p->seed, 3, i);
        beta[i] = 0.1f * fs_rng_normal(p->seed, 4, i);
        bias[i] = 0.1f * fs_rng_normal(p->seed, 5, i);
    }

    /* The strips: own rows copied into the middle of a halo buffer, halos
     * exchanged, statistics summed exactly across ranks, the block run on
     * own rows. */
    fs_comm_barrier(comm, err);
    fs_comm_traffic_reset(comm);
    double t0 = fs_now();
    for (int b = 0; b < n; b++)
        memcpy(x_halo + ((size_t)b * (rows + 2 * halo) + halo) * row_elems,
               x + ((size_t)b * s + row0) * row_elems, (size_t)rows * row_elems * 4);
    if ((rc = fs_comm_halo(comm, &plan, x_halo, n, row_elems, halo, halo, err))) goto done;
    /* Partials of own rows, [rows][n][groups][2]; the batch items are not
     * adjacent in x_halo (each has its own halo rows), so item by item. */
    for (int b = 0; b < n; b++) {
        rc = fs_backend_cpu()->op->gn_partials(
            fs_backend_cpu(), x_halo + ((size_t)b * (rows + 2 * halo) + halo) * row_elems, 1,
            rows, s, c, groups, tmp, err);
        if (rc) goto done;
        for (int r = 0; r < rows; r++)
            memcpy(part + ((size_t)r * n + b) * groups * 2, tmp + (size_t)r * groups * 2,
                   groups * 2 * sizeof(double));
    }
    if ((rc = fs_comm_sum_rows_exact(comm, &plan, part, mg, sums, err))) goto done;
    if ((rc = block_forward(p, x_halo, row0, rows, halo, sums, gamma, beta, w, bias, y_own,
                            scratch, err)))
        goto done;
    double t_strips = fs_now() - t0;
    fs_comm_traffic(comm, report->traffic);
    if ((rc = fs_comm_allgather_rows(comm, &plan, y_own, y_strips, n, row_elems, err))) goto done;

    /* The whole map on this rank alone: the same ops with no neighbours. */
    fs_arena_reset(scratch, 0);
    t0 = fs_now();
    rc = fs_backend_cpu()->op->gn_partials(fs_backend_cpu(), x, n, s, s, c, groups, part, err);
    if (rc) goto done;
    if ((rc = fs_comm_sum_rows_exact(NULL, &whole, part, mg, sums, err))) goto done;
    if ((rc = block_forward(p, x, 0, s, 0, sums, gamma, beta, w, bias, y_whole, scratch, err)))
        goto done;
    report->seconds_whole = fs_now() - t0;
    for (size_t i = 0; i < n * map; i++)
        report->mismatches += memcmp(&y_whole[i], &y_strips[i], 4) != 0;
    report->identical = report->mismatches == 0;
    report->seconds_strips = t_strips;
done:
    fs_free(gamma); fs_free(beta); fs_free(bias); fs_free(w); fs_free(x);
    fs_free(y_whole); fs_free(y_strips); fs_free(x_halo); fs_free(y_own);
    fs_free(part); fs_free(tmp); fs_free(sums);
    fs_arena_destroy(scratch);
    return rc;
}
