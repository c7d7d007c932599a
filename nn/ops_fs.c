/* nn/ops_fs.c: the strip ops FreeScale adds (nn.h, "FreeScale"): the
 * fusion blur on a halo buffer or on the whole gathered map (FFT), per-row
 * partials summed exactly across ranks, FreeU's Fourier filter on strips and
 * the backbone scaling of the first channels.
 *
 * As nn/ops.c: in the sizing pass a helper only records the scratch its op
 * would take from the arena; in the real pass it runs the kernel. */
#include <omp.h>
#include <string.h>
#include "nn/profile.h"

/* Dry pass: the op will take `bytes` of arena scratch on top of what is in
 * use (taken and given back at once: the arena's peak records it). */
/* The real pass of an op with no GPU version yet: a clear refusal. */
#define NO_GPU(op) \
    do { \
        if (f->gpu) \
            return fs_fail(f->err, FS_ERR_UNSUPPORTED, "%s: %s has no GPU version yet", \
                           f->what, (op)); \
    } while (0)

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
    NO_GPU("the fusion blur");
    nn_prof_time t0 = nn_prof_t(f);
    fs_code rc = fs_blur(d, g, x, y, f->arena, f->err);
    nn_prof_add(f, t0, PK_ELEM, 0, "blur k=%d axes=%d c=%d", d->k, d->axes, d->c);
    return rc;
}

fs_code nn_blur_fft(nn_ctx *f, float *x, int h, int w, int c, float sigma) {
    if (f->dry) return FS_OK; /* FFTW's buffers are its own (heap) */
    NO_GPU("the FFT blur");
    nn_prof_time t0 = nn_prof_t(f);
    fs_code rc = fs_blur_fft(x, x, f->n, h, w, c, sigma, f->err);
    nn_prof_add(f, t0, PK_ELEM, 0, "blur fft %dx%d c=%d", h, w, c);
    return rc;
}

fs_code nn_sum_rows(nn_ctx *f, const nn_level *lv, const double *own_part, size_t m,
                    double *sum) {
    if (f->dry) return FS_OK;
    nn_prof_time t0 = nn_prof_t(f);
    /* exact (order-free) sums: one all-reduce of m * 7 int64, the same bits
     * for any split (comm.h, fs_comm_sum_rows_exact) */
    fs_code rc = fs_comm_sum_rows_exact(lv->plan->parts > 1 ? f->comm : NULL, lv->plan, own_part,
                                        m, sum, f->err);
    nn_prof_add(f, t0, PK_MOVE, 0, "sum rows m=%zu", m);
    return rc;
}

fs_code nn_freeu_filter(nn_ctx *f, const nn_level *lv, float *x, int c, float s) {
    if (!f->dry) NO_GPU("FreeU's Fourier filter");
    const size_t per_item = (size_t)4 * c * 2, m = (size_t)f->n * per_item;
    const size_t mark = nn_mark(f);
    double *own = nn_take(f, ((size_t)lv->rows * m + 1) * sizeof(double));
    double *sum = own ? nn_take(f, m * sizeof(double)) : NULL;
    if (!sum) return nn_oom(f);
    const size_t row = (size_t)lv->w * c, item = (size_t)lv->rows * row;
    if (!f->dry) {
        nn_prof_time t0 = nn_prof_t(f);
        /* partials of each own row, [row][item][4][c][2] */
#pragma omp parallel for schedule(static) num_threads(fs_threads_count()) if (item >= 4096)
        for (int64_t t = 0; t < (int64_t)lv->rows * f->n; t++) {
            int r = (int)(t / f->n), b = (int)(t % f->n);
            fs_freeu_row_coeffs(x + b * item + (size_t)r * row, lv->row0 + r, lv->h, lv->w, c,
                                own + (size_t)r * m + (size_t)b * per_item);
        }
        nn_prof_add(f, t0, PK_ELEM, 0, "freeu partials c=%d", c);
    }
    fs_code rc = nn_sum_rows(f, lv, own, m, sum);
    if (!rc && !f->dry) {
        nn_prof_time t0 = nn_prof_t(f);
        for (int b = 0; b < f->n; b++)
            fs_freeu_apply(x + b * item, lv->row0, lv->rows, lv->h, lv->w, c,
                           sum + (size_t)b * per_item, s);
        nn_prof_add(f, t0, PK_ELEM, 0, "freeu apply c=%d", c);
    }
    nn_reset(f, mark);
    return rc;
}

void nn_scale_channels(nn_ctx *f, float *x, size_t pixels, int c, int first, float b) {
    if (f->dry || first <= 0) return;
    nn_prof_time t0 = nn_prof_t(f);
#pragma omp parallel for schedule(static) num_threads(fs_threads_count()) \
    if (pixels * (size_t)first >= ((size_t)1 << 16))
    for (size_t p = 0; p < pixels; p++) {
        float *xp = x + p * (size_t)c;
        for (int ch = 0; ch < first; ch++) xp[ch] *= b;
    }
    nn_prof_add(f, t0, PK_ELEM, 0, "scale channels");
}
