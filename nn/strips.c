/* nn/strips.c: the helpers of nn.h that work across the strips of a map:
 * GroupNorm statistics of the whole map, the copy into and the halo rows of
 * a halo buffer, the all-gather of a map and exact row sums. The data stay
 * in the backend's memory; what crosses ranks goes through comm/ (MPI on
 * host memory): in place when the backend's memory is the host's, else
 * through host copies of just the rows that cross. Either way a multi-rank
 * pass gives the same bits as a one-rank one: the ops' tiles and
 * reductions are fixed in global coordinates.
 *
 * As nn/ops.c: the sizing pass moves nothing, the real pass calls the
 * backend's ops, each timed into FS_PROFILE's table. */
#include <stdlib.h>
#include <string.h>
#include "nn/profile.h"


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

/* The halo exchange on device memory: only the own rows a neighbour can
 * need (the first `bot` and the last `top`: every rank asks for the same
 * halo widths) come to a host copy of the buffer, comm fills its halo rows
 * in place, and only those go back. */
static fs_code halo_staged(nn_ctx *f, const nn_level *lv, float *buf, size_t row, int top,
                           int bot) {
    const size_t item_buf = (size_t)(top + lv->rows + bot) * row, pitch = item_buf * sizeof(float);
    const int head = bot < lv->rows ? bot : lv->rows, tail = top < lv->rows ? top : lv->rows;
    float *h = host_alloc(f, (size_t)f->n * pitch); /* untouched rows are never resident */
    if (!h) return FS_ERR_NOMEM;
    const size_t own0 = (size_t)top * row, tail0 = (size_t)(top + lv->rows - tail) * row;
    fs_code rc = NN_OP(f, download_rows, h + own0, pitch, buf + own0, pitch,
                       (size_t)head * row * sizeof(float), (size_t)f->n, f->err);
    if (!rc)
        rc = NN_OP(f, download_rows, h + tail0, pitch, buf + tail0, pitch,
                   (size_t)tail * row * sizeof(float), (size_t)f->n, f->err);
    if (!rc) rc = fs_comm_halo(f->comm, lv->plan, h, f->n, row, top, bot, f->err);
    if (!rc)
        rc = NN_OP(f, upload_rows, buf, pitch, h, pitch, (size_t)top * row * sizeof(float),
                   (size_t)f->n, f->err);
    const size_t bot0 = (size_t)(top + lv->rows) * row;
    if (!rc)
        rc = NN_OP(f, upload_rows, buf + bot0, pitch, h + bot0, pitch,
                   (size_t)bot * row * sizeof(float), (size_t)f->n, f->err);
    free(h);
    return rc;
}

fs_code nn_halo(nn_ctx *f, const nn_level *lv, float *buf, int c, int top, int bot) {
    if (f->dry || (top == 0 && bot == 0)) return FS_OK;
    nn_prof_time t0 = nn_prof_t(f);
    const size_t row = (size_t)lv->w * c;
    fs_code rc = FS_OK;
    if (lv->plan->parts > 1 && nn_backend(f)->host_memory) {
        rc = fs_comm_halo(f->comm, lv->plan, buf, f->n, row, top, bot, f->err);
    } else if (lv->plan->parts > 1) {
        rc = halo_staged(f, lv, buf, row, top, bot);
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
    } else if (nn_backend(f)->host_memory) {
        rc = fs_comm_allgather_rows(f->comm, lv->plan, own, full, f->n, row, f->err);
    } else {
        const size_t full_bytes = (size_t)f->n * lv->h * row * sizeof(float);
        float *ho = host_alloc(f, own_bytes), *hf = ho ? host_alloc(f, full_bytes) : NULL;
        rc = hf ? FS_OK : FS_ERR_NOMEM;
        if (!rc) rc = NN_OP(f, download, ho, own, own_bytes, f->err);
        if (!rc) rc = fs_comm_allgather_rows(f->comm, lv->plan, ho, hf, f->n, row, f->err);
        if (!rc) rc = NN_OP(f, upload, full, hf, full_bytes, f->err);
        free(ho);
        free(hf);
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
