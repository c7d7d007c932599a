/* nn/ops_fs.c: the strip ops FreeScale adds (nn.h, "FreeScale"): the
 * fusion blur on a halo buffer or on the whole gathered map (FFT), FreeU's
 * Fourier filter on strips, the backbone scaling of the first channels and
 * scale fusion's token moves.
 *
 * As nn/ops.c: in the sizing pass a helper only records the scratch its op
 * would take from the arena; in the real pass it calls the backend's op. */
#include <omp.h>
#include "nn/profile.h"


/* Dry pass: the op will take `bytes` of arena scratch on top of what is in
 * use (taken and given back at once: the arena's peak records it). */
static void need_scratch(nn_ctx *f, size_t bytes) {
    size_t mark = nn_mark(f);
    (void)nn_take(f, bytes);
    nn_reset(f, mark);
}

fs_code nn_blur(nn_ctx *f, const fs_blur_desc *d, const float *g, const float *x, float *y) {
    if (f->dry) {
        /* fs_blur: two rows of scratch per OpenMP thread */
        need_scratch(f, (size_t)omp_get_max_threads() * 2 * (size_t)d->w * d->c * sizeof(float) +
                            64);
        return FS_OK;
    }
    nn_prof_time t0 = nn_prof_t(f);
    fs_code rc = NN_OP(f, blur, d, g, x, y, f->arena, f->err);
    nn_prof_add(f, t0, PK_ELEM, 0, "blur k=%d axes=%d c=%d", d->k, d->axes, d->c);
    return rc;
}

fs_code nn_blur_fft(nn_ctx *f, float *x, int h, int w, int c, float sigma) {
    if (f->dry) return FS_OK; /* FFTW's buffers are its own (heap) */
    nn_prof_time t0 = nn_prof_t(f);
    fs_code rc = NN_OP(f, blur_fft, x, x, f->n, h, w, c, sigma, f->err);
    nn_prof_add(f, t0, PK_ELEM, 0, "blur fft %dx%d c=%d", h, w, c);
    return rc;
}

fs_code nn_freeu_filter(nn_ctx *f, const nn_level *lv, float *x, int c, float s) {
    const size_t per_item = (size_t)4 * c * 2, m = (size_t)f->n * per_item;
    const size_t mark = nn_mark(f);
    double *own = nn_take(f, ((size_t)lv->rows * m + 1) * sizeof(double));
    double *sum = own ? nn_take(f, m * sizeof(double)) : NULL;
    if (!sum) return nn_oom(f);
    fs_code rc = FS_OK;
    if (!f->dry) { /* partials of each own row, [row][item][4][c][2] */
        nn_prof_time t0 = nn_prof_t(f);
        rc = NN_OP(f, freeu_partials, x, f->n, lv->row0, lv->rows, lv->h, lv->w, c, own, f->err);
        nn_prof_add(f, t0, PK_ELEM, 0, "freeu partials c=%d", c);
    }
    if (!rc) rc = nn_sum_rows(f, lv, own, m, sum);
    if (!rc && !f->dry) {
        nn_prof_time t0 = nn_prof_t(f);
        rc = NN_OP(f, freeu_apply, x, f->n, lv->row0, lv->rows, lv->h, lv->w, c, sum, s, f->err);
        nn_prof_add(f, t0, PK_ELEM, 0, "freeu apply c=%d", c);
    }
    nn_reset(f, mark);
    return rc;
}

fs_code nn_scale_channels(nn_ctx *f, float *x, size_t pixels, int c, int first, float b) {
    if (f->dry || first <= 0) return FS_OK;
    nn_prof_time t0 = nn_prof_t(f);
    fs_code rc = NN_OP(f, scale_channels, x, pixels, c, first, b, f->err);
    nn_prof_add(f, t0, PK_ELEM, 0, "scale channels");
    return rc;
}

/* ---------------------------------------------------------------- scale fusion's grids */

fs_code nn_grid_gather(nn_ctx *f, float *dst, const float *src, int src_row0, int fh, int fw,
                       int c, const fs_grid *g, const float *pad) {
    if (f->dry) return FS_OK;
    nn_prof_time t0 = nn_prof_t(f);
    fs_code rc = NN_OP(f, grid_gather, dst, src, src_row0, fh, fw, c, g, pad, f->err);
    nn_prof_add(f, t0, PK_MOVE, 0, "fusion gather c=%d", c);
    return rc;
}

fs_code nn_grid_scatter(nn_ctx *f, float *dst, int dst_row0, int fw, int c, const fs_grid *g,
                        const float *src) {
    if (f->dry) return FS_OK;
    nn_prof_time t0 = nn_prof_t(f);
    fs_code rc = NN_OP(f, grid_scatter, dst, dst_row0, fw, c, g, src, f->err);
    nn_prof_add(f, t0, PK_MOVE, 0, "fusion scatter c=%d", c);
    return rc;
}

fs_code nn_window_add(nn_ctx *f, float *out, float *cnt, int row0, int rows, int fw, int c,
                      const fs_grid *g, const float *o) {
    if (f->dry) return FS_OK;
    nn_prof_time t0 = nn_prof_t(f);
    fs_code rc = NN_OP(f, window_add, out, cnt, row0, rows, fw, c, g, o, f->err);
    nn_prof_add(f, t0, PK_ELEM, 0, "fusion window sum c=%d", c);
    return rc;
}

fs_code nn_divide_counts(nn_ctx *f, float *out, const float *cnt, size_t tokens, int c) {
    if (f->dry) return FS_OK;
    nn_prof_time t0 = nn_prof_t(f);
    fs_code rc = NN_OP(f, divide_counts, out, cnt, tokens, c, f->err);
    nn_prof_add(f, t0, PK_ELEM, 0, "fusion average c=%d", c);
    return rc;
}
