/* nn/strips.c: the helpers of nn.h that work across the strips of a map:
 * GroupNorm statistics of the whole map, the copy into and the halo rows of
 * a halo buffer, the all-gather of a map and exact row sums. The data stay
 * in the backend's memory; what crosses ranks goes through comm/'s
 * transport, which moves device buffers itself (the MPI transport stages
 * just the rows that cross through host copies, with the backend's memory
 * ops; the row partials of the exact sums come to the host, a few kB). Either way a multi-rank
 * pass gives the same bits as a one-rank one: the ops' tiles and
 * reductions are fixed in global coordinates.
 *
 * As nn/ops.c: the sizing pass moves nothing, the real pass calls the
 * backend's ops, each timed into FS_PROFILE's table. */
#include <stdlib.h>
#include <string.h>
#include "nn/profile.h"


/* A buffer of the backend's memory as comm sees it. */
static fs_comm_buf comm_buf(const fs_backend *be, void *p) {
    return be->host_memory ? fs_comm_host(p) : fs_comm_device(p);
}

static void *host_alloc(nn_ctx *f, size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) fs_fail(f->err, FS_ERR_NOMEM, "%s: %.1f MB of host staging", f->what, bytes / 1e6);
    return p;
}

/* sums[m] (host) = the exact sums of the per-row partials own_part (the
 * backend's memory, [own rows][m]) over every strip of lv: one all-reduce
 * of m * 7 int64, the same bits for any split (comm.h,
 * fs_comm_sum_rows_exact). */
static fs_code sum_rows_host(nn_ctx *f, const nn_level *lv, const double *own_part, size_t m,
                             double *sums) {
    const size_t bytes = (size_t)lv->rows * m * sizeof(double);
    double *own = host_alloc(f, bytes);
    if (!own) return FS_ERR_NOMEM;
    fs_code rc = NN_OP(f, download, own, own_part, bytes, f->err);
    if (!rc)
        rc = fs_comm_sum_rows_exact(lv->plan->parts > 1 ? f->comm : NULL, lv->plan, own, m, sums,
                                    f->err);
    free(own);
    return rc;
}

/* ---------------------------------------------------------------- GroupNorm */

/* The partials come to the host (per row, so a few kB), are summed exactly
 * across ranks and folded there, and go back as mean / rstd. */
fs_code nn_gn_finish(nn_ctx *f, const nn_level *lv, const double *own_part, int c, int groups,
                     float eps, float *mean, float *rstd) {
    if (f->dry) return FS_OK;
    nn_prof_time t0 = nn_prof_t(f);
    const size_t m = (size_t)f->n * groups * 2, stats = (size_t)f->n * groups;
    double *sums = host_alloc(f, m * sizeof(double));
    float *hm = sums ? host_alloc(f, 2 * stats * sizeof(float)) : NULL;
    fs_code rc = hm ? sum_rows_host(f, lv, own_part, m, sums) : FS_ERR_NOMEM;
    if (!rc) {
        fs_groupnorm_finish_sums(sums, lv->h, f->n, lv->w, c, groups, eps, hm, hm + stats);
        rc = NN_OP(f, upload, mean, hm, stats * sizeof(float), f->err);
    }
    if (!rc) rc = NN_OP(f, upload, rstd, hm + stats, stats * sizeof(float), f->err);
    free(sums);
    free(hm);
    nn_prof_add(f, t0, PK_GN, 0, "stats c=%d", c);
    return rc;
}

fs_code nn_gn_stats(nn_ctx *f, const nn_level *lv, const float *x, int c, int groups, float eps,
                    float **mean, float **rstd) {
    const size_t m = (size_t)f->n * groups * 2;
    *mean = nn_floats(f, (size_t)f->n * groups);
    *rstd = *mean ? nn_floats(f, (size_t)f->n * groups) : NULL;
    if (!*rstd) return nn_oom(f);
    size_t mark = nn_mark(f);
    double *own = nn_take(f, (size_t)lv->rows * m * sizeof(double));
    if (!own) return nn_oom(f);
    fs_code rc = nn_gn_partials(f, x, lv->rows, lv->w, c, groups, own);
    if (!rc) rc = nn_gn_finish(f, lv, own, c, groups, eps, *mean, *rstd);
    nn_reset(f, mark);
    return rc;
}

fs_code nn_gn_apply(nn_ctx *f, const nn_level *lv, const float *x, int c, int groups,
                    const float *mean, const float *rstd, const nn_norm_w *nw, int silu,
                    float *buf, int top, int bot) {
    if (f->dry) return FS_OK;
    nn_prof_time t0 = nn_prof_t(f);
    const size_t item = (size_t)lv->rows * lv->w * c, row = (size_t)lv->w * c;
    const size_t item_buf = (size_t)(top + lv->rows + bot) * row;
    fs_code rc = FS_OK;
    if (top == 0 && bot == 0) {
        rc = NN_OP(f, gn_apply, x, buf, f->n, lv->rows, lv->w, c, groups, mean, rstd, nw->gamma,
                   nw->beta, silu, f->err);
    } else {
        for (int b = 0; b < f->n && !rc; b++)
            rc = NN_OP(f, gn_apply, x + b * item, buf + b * item_buf + (size_t)top * row, 1,
                       lv->rows, lv->w, c, groups, mean + (size_t)b * groups,
                       rstd + (size_t)b * groups, nw->gamma, nw->beta, silu, f->err);
    }
    nn_prof_add(f, t0, PK_GN, 0, "apply%s c=%d", silu ? "+silu" : "", c);
    return rc;
}

/* ---------------------------------------------------------------- halo buffers */

fs_code nn_copy_own(nn_ctx *f, const nn_level *lv, const float *x, int c, float *buf, int top,
                    int bot) {
    if (f->dry) return FS_OK;
    nn_prof_time t0 = nn_prof_t(f);
    const size_t row = (size_t)lv->w * c, item = (size_t)lv->rows * row;
    const size_t item_buf = (size_t)(top + lv->rows + bot) * row;
    fs_code rc = FS_OK;
    for (int b = 0; b < f->n && !rc; b++)
        rc = NN_OP(f, copy, buf + b * item_buf + (size_t)top * row, x + b * item,
                   item * sizeof(float), f->err);
    nn_prof_add(f, t0, PK_MOVE, 0, "copy into halo buffer");
    return rc;
}

fs_code nn_halo(nn_ctx *f, const nn_level *lv, float *buf, int c, int top, int bot) {
    if (f->dry || (top == 0 && bot == 0)) return FS_OK;
    nn_prof_time t0 = nn_prof_t(f);
    const size_t row = (size_t)lv->w * c;
    fs_code rc = FS_OK;
    if (lv->plan->parts > 1) {
        /* on device memory the transport moves only the edge rows (staged
         * through host copies where it cannot reach the device) */
        const fs_backend *be = nn_backend(f);
        rc = fs_comm_halo_buf(f->comm, lv->plan, comm_buf(be, buf), (void *)be, f->n, row, top,
                              bot, f->err);
    } else { /* One part: the strip is the whole map, every halo row is padding. */
        const size_t item_buf = (size_t)(top + lv->rows + bot) * row;
        for (int b = 0; b < f->n && !rc; b++) {
            float *item = buf + b * item_buf;
            rc = NN_OP(f, zero, item, (size_t)top * row * sizeof(float), f->err);
            if (!rc)
                rc = NN_OP(f, zero, item + (size_t)(top + lv->rows) * row,
                           (size_t)bot * row * sizeof(float), f->err);
        }
    }
    nn_prof_add(f, t0, PK_MOVE, 0, "halo");
    return rc;
}

/* ---------------------------------------------------------------- gathers and sums */

fs_code nn_allgather(nn_ctx *f, const nn_level *lv, const float *own, float *full, int c) {
    if (f->dry) return FS_OK;
    nn_prof_time t0 = nn_prof_t(f);
    const size_t own_bytes = nn_tensor_floats(f, lv, c) * sizeof(float);
    const size_t row = (size_t)lv->w * c;
    fs_code rc = FS_OK;
    if (lv->plan->parts == 1) {
        if (own != full) rc = NN_OP(f, copy, full, own, own_bytes, f->err);
    } else {
        const fs_backend *be = nn_backend(f);
        rc = fs_comm_allgather_rows_buf(f->comm, lv->plan, comm_buf(be, (void *)own),
                                        comm_buf(be, full), (void *)be, f->n, row, f->err);
    }
    nn_prof_add(f, t0, PK_MOVE, 0, "allgather");
    return rc;
}

fs_code nn_sum_rows(nn_ctx *f, const nn_level *lv, const double *own_part, size_t m,
                    double *sum) {
    if (f->dry) return FS_OK;
    nn_prof_time t0 = nn_prof_t(f);
    double *h = host_alloc(f, m * sizeof(double));
    fs_code rc = h ? sum_rows_host(f, lv, own_part, m, h) : FS_ERR_NOMEM;
    if (!rc) rc = NN_OP(f, upload, sum, h, m * sizeof(double), f->err);
    free(h);
    nn_prof_add(f, t0, PK_MOVE, 0, "sum rows m=%zu", m);
    return rc;
}
