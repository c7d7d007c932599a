/* nn/ops_gpu.c: the helpers of nn.h on the GPU (f->gpu set), for the ones
 * that are more than one CUDA op call (those are inline in ops.c). Traffic
 * between ranks goes through host copies of the rows that cross (MPI on host
 * memory; NCCL would take device pointers instead), so a multi-rank GPU pass
 * gives the same bits as a one-rank one: the CUDA ops' tiles and reductions
 * are fixed in global coordinates like the CPU ops'. */
#include <stdlib.h>
#include <string.h>
#include "nn/gpu.h"

static void *host_alloc(nn_ctx *f, size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) fs_fail(f->err, FS_ERR_NOMEM, "%s: %.1f MB of host staging", f->what, bytes / 1e6);
    return p;
}

void nn_gpu_gn_partials(nn_ctx *f, const float *x, int rows, int w, int c, int groups,
                        double *part) {
    if (f->err && f->err->code) return;
    fs_cuda_groupnorm_partials(f->gpu, x, f->n, rows, w, c, groups, part, f->err);
}

/* The partials come to the host (per row, so a few kB), are folded there
 * exactly as on the CPU (nn_gn_fold) and go back as mean / rstd. */
fs_code nn_gpu_gn_finish(nn_ctx *f, const nn_level *lv, const double *own_part, int c,
                         int groups, float eps, float *mean, float *rstd) {
    if (f->err && f->err->code) return f->err->code;
    const size_t m = (size_t)f->n * groups * 2;
    const size_t stats = (size_t)f->n * groups;
    double *own = host_alloc(f, (size_t)lv->rows * m * sizeof(double));
    float *hm = own ? host_alloc(f, 2 * stats * sizeof(float)) : NULL;
    fs_code rc = hm ? FS_OK : FS_ERR_NOMEM;
    if (!rc) rc = fs_cuda_download(f->gpu, own, own_part, (size_t)lv->rows * m * sizeof(double),
                                   f->err);
    if (!rc) rc = nn_gn_fold(f, lv, own, c, groups, eps, hm, hm + stats);
    if (!rc) rc = fs_cuda_upload(f->gpu, mean, hm, stats * sizeof(float), f->err);
    if (!rc) rc = fs_cuda_upload(f->gpu, rstd, hm + stats, stats * sizeof(float), f->err);
    free(own);
    free(hm);
    return rc;
}

void nn_gpu_gn_apply(nn_ctx *f, const nn_level *lv, const float *x, int c, int groups,
                     const float *mean, const float *rstd, const nn_norm_w *nw, int silu,
                     float *buf, int top, int bot) {
    if (f->err && f->err->code) return;
    const size_t item = (size_t)lv->rows * lv->w * c, row = (size_t)lv->w * c;
    const size_t item_buf = (size_t)(top + lv->rows + bot) * row;
    if (top == 0 && bot == 0) {
        fs_cuda_groupnorm_apply(f->gpu, x, buf, f->n, lv->rows, lv->w, c, groups, mean, rstd,
                                nw->gamma, nw->beta, silu, f->err);
        return;
    }
    for (int b = 0; b < f->n && !f->err->code; b++)
        fs_cuda_groupnorm_apply(f->gpu, x + b * item, buf + b * item_buf + (size_t)top * row, 1,
                                lv->rows, lv->w, c, groups, mean + (size_t)b * groups,
                                rstd + (size_t)b * groups, nw->gamma, nw->beta, silu, f->err);
}

void nn_gpu_copy_own(nn_ctx *f, const nn_level *lv, const float *x, int c, float *buf, int top,
                     int bot) {
    if (f->err && f->err->code) return;
    const size_t row = (size_t)lv->w * c, item = (size_t)lv->rows * row;
    const size_t item_buf = (size_t)(top + lv->rows + bot) * row;
    for (int b = 0; b < f->n && !f->err->code; b++)
        fs_cuda_copy(f->gpu, buf + b * item_buf + (size_t)top * row, x + b * item,
                     item * sizeof(float), f->err);
}

fs_code nn_gpu_halo(nn_ctx *f, const nn_level *lv, float *buf, int c, int top, int bot) {
    if (f->err && f->err->code) return f->err->code;
    const size_t row = (size_t)lv->w * c;
    const size_t item_buf = (size_t)(top + lv->rows + bot) * row;
    fs_code rc = FS_OK;
    if (lv->plan->parts == 1) { /* the whole map: every halo row is padding */
        for (int b = 0; b < f->n && !rc; b++) {
            float *item = buf + b * item_buf;
            rc = fs_cuda_zero(f->gpu, item, (size_t)top * row * sizeof(float), f->err);
            if (!rc)
                rc = fs_cuda_zero(f->gpu, item + (size_t)(top + lv->rows) * row,
                                  (size_t)bot * row * sizeof(float), f->err);
        }
        return rc;
    }
    /* The halo buffer through the host: fs_comm_halo sends own rows and
     * fills the halo rows in place. */
    const size_t bytes = (size_t)f->n * item_buf * sizeof(float);
    float *h = host_alloc(f, bytes);
    if (!h) return FS_ERR_NOMEM;
    rc = fs_cuda_download(f->gpu, h, buf, bytes, f->err);
    if (!rc) rc = fs_comm_halo(f->comm, lv->plan, h, f->n, row, top, bot, f->err);
    if (!rc) rc = fs_cuda_upload(f->gpu, buf, h, bytes, f->err);
    free(h);
    return rc;
}

fs_code nn_gpu_allgather(nn_ctx *f, const nn_level *lv, const float *own, float *full, int c) {
    if (f->err && f->err->code) return f->err->code;
    const size_t own_bytes = nn_tensor_floats(f, lv, c) * sizeof(float);
    if (lv->plan->parts == 1)
        return own == full ? FS_OK : fs_cuda_copy(f->gpu, full, own, own_bytes, f->err);
    const size_t full_bytes = (size_t)f->n * lv->h * lv->w * c * sizeof(float);
    float *ho = host_alloc(f, own_bytes), *hf = ho ? host_alloc(f, full_bytes) : NULL;
    fs_code rc = hf ? FS_OK : FS_ERR_NOMEM;
    if (!rc) rc = fs_cuda_download(f->gpu, ho, own, own_bytes, f->err);
    if (!rc)
        rc = fs_comm_allgather_rows(f->comm, lv->plan, ho, hf, f->n, (size_t)lv->w * c, f->err);
    if (!rc) rc = fs_cuda_upload(f->gpu, full, hf, full_bytes, f->err);
    free(ho);
    free(hf);
    return rc;
}
