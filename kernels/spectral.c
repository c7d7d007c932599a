/* kernels/spectral.c: the two frequency-domain ops, on FFTW (single precision).
 *
 * FreeU's Fourier filter (spec/freescale.md section 7, spec/distributed.md):
 * the official code scales the fftshifted 2x2 centre block of the 2-D DFT by
 * s and keeps the real part of the inverse. The block is the unshifted
 * frequencies K = {-1, 0}^2 (fftshift moves frequency 0 to index n // 2 for
 * even and odd n alike), so
 *   x' = x + (s - 1) / (h w) * Re(sum_{k in K} X(k) e^{2 pi i (ky y / h + kx x / w)})
 * and X(k) for k in K needs only two column sums per row and channel. A strip
 * computes its rows' partials (fs_freeu_row_coeffs), the partials are summed
 * in global row order (an all-reduce of 8 numbers per channel across ranks),
 * and each strip applies the same formula to its own rows (fs_freeu_apply):
 * an element's bits depend only on its global position and the summed
 * coefficients, never on the strip or the thread. fs_freeu_ref is the
 * official code done literally with a full FFT (the tests' reference).
 *
 * fs_blur_fft: the paper's frequency-domain Gaussian, a periodic blur done as
 * one real-to-complex 2-D FFT per (item, channel).
 *
 * FFTW's planner is not thread-safe (only fftwf_execute* is): every plan
 * creation and destruction goes through one named OpenMP critical section. */
#include <fftw3.h>  /* before anything that pulls in <complex.h> (spec/platform.md) */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include "kernels/kernels.h"

static const double fs_two_pi = 6.283185307179586476925286766559;

/* e^{2 pi i k / n} for 0 <= k < n, always computed the same way, so a table
 * entry and an on-the-fly value have the same bits. */
static void twiddle(int k, int n, double *re, double *im) {
    double a = fs_two_pi * (double)k / (double)n;
    *re = cos(a);
    *im = sin(a);
}

static fftwf_plan plan_many_dft(int h, int w, int howmany, fftwf_complex *buf, int sign) {
    fftwf_plan p;
    int dims[2] = {h, w};
#pragma omp critical(fs_fftw_planner)
    p = fftwf_plan_many_dft(2, dims, howmany, buf, NULL, howmany, 1, buf, NULL, howmany, 1, sign,
                            FFTW_ESTIMATE);
    return p;
}

static void plan_destroy(fftwf_plan p) {
    if (!p) return;
#pragma omp critical(fs_fftw_planner)
    fftwf_destroy_plan(p);
}

/* ---------------------------------------------------------------- FreeU */

void fs_freeu_row_coeffs(const float *row, int y, int h, int w, int c, double *out) {
    /* out[0][ch] = A0 = sum_x row (k = (0,0)); out[1][ch] = A1 = sum_x row e^{+2 pi i x / w}
     * (kx = -1); ky = -1 multiplies both by e^{+2 pi i y / h}. Sums run in
     * ascending x, in double, so a row's partial has fixed bits. */
    double *k00 = out, *k01 = out + 2 * (size_t)c, *k10 = out + 4 * (size_t)c,
           *k11 = out + 6 * (size_t)c;
    memset(out, 0, 8 * (size_t)c * sizeof(double));
    for (int x = 0; x < w; x++) {
        double cb, sb;
        twiddle(x, w, &cb, &sb);
        const float *r = row + (size_t)x * c;
        for (int ch = 0; ch < c; ch++) {
            double v = r[ch];
            k00[2 * ch] += v;
            k01[2 * ch] += v * cb;
            k01[2 * ch + 1] += v * sb;
        }
    }
    double ca, sa;
    twiddle(((y % h) + h) % h, h, &ca, &sa);
    for (int ch = 0; ch < c; ch++) {
        double a0 = k00[2 * ch], a1r = k01[2 * ch], a1i = k01[2 * ch + 1];
        k10[2 * ch] = a0 * ca;
        k10[2 * ch + 1] = a0 * sa;
        k11[2 * ch] = a1r * ca - a1i * sa;
        k11[2 * ch + 1] = a1r * sa + a1i * ca;
    }
}

/* Channels per block of the per-row combined coefficients (on the stack). */
#define FREEU_CB 256

void fs_freeu_apply(float *x, int row0, int rows, int h, int w, int c, const double *coeffs,
                    float s) {
    if (rows <= 0 || h <= 0 || w <= 0 || c <= 0) return;
    /* A 1-long axis has only frequency 0: the official slice [-1:1] then
     * selects one index, so the kx or ky = -1 terms would count it twice. */
    const double use_y = h > 1 ? 1.0 : 0.0, use_x = w > 1 ? 1.0 : 0.0;
    const double f = ((double)s - 1.0) / ((double)h * (double)w);
    const double *k00 = coeffs, *k01 = coeffs + 2 * (size_t)c, *k10 = coeffs + 4 * (size_t)c,
                 *k11 = coeffs + 6 * (size_t)c;
    /* Column twiddles once per call; without memory they are recomputed per
     * use, with the same bits. */
    double *tw = fs_alloc(2 * (size_t)w * sizeof(double));
    if (tw)
        for (int i = 0; i < w; i++) twiddle(i, w, &tw[2 * i], &tw[2 * i + 1]);
#pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; r++) {
        int y = row0 + r;
        double ca, sa;
        twiddle(((y % h) + h) % h, h, &ca, &sa);
        /* Per row and channel: P0 = X00 + X10 e^{-ia}, P1 = X01 + X11 e^{-ia}
         * (a = 2 pi y / h); then the sum is Re P0 + Re(P1 e^{-ib}). */
        double p0r[FREEU_CB], p1r[FREEU_CB], p1i[FREEU_CB];
        float *xr = x + (size_t)r * w * c;
        for (int c0 = 0; c0 < c; c0 += FREEU_CB) {
            int nc = c - c0 < FREEU_CB ? c - c0 : FREEU_CB;
            for (int j = 0; j < nc; j++) {
                size_t ch = (size_t)(c0 + j);
                p0r[j] = k00[2 * ch] + use_y * (k10[2 * ch] * ca + k10[2 * ch + 1] * sa);
                p1r[j] = use_x * (k01[2 * ch] + use_y * (k11[2 * ch] * ca + k11[2 * ch + 1] * sa));
                p1i[j] =
                    use_x * (k01[2 * ch + 1] + use_y * (k11[2 * ch + 1] * ca - k11[2 * ch] * sa));
            }
            for (int col = 0; col < w; col++) {
                double cb, sb;
                if (tw) cb = tw[2 * col], sb = tw[2 * col + 1];
                else twiddle(col, w, &cb, &sb);
                float *px = xr + (size_t)col * c + c0;
                for (int j = 0; j < nc; j++) {
                    double v = p0r[j] + (p1r[j] * cb + p1i[j] * sb);
                    px[j] = (float)((double)px[j] + f * v);
                }
            }
        }
    }
    fs_free(tw);
}

void fs_freeu_partials(const float *x, int n, int row0, int rows, int h, int w, int c,
                       double *part) {
    const size_t per_item = (size_t)4 * c * 2, m = (size_t)n * per_item;
    const size_t row = (size_t)w * c, item = (size_t)rows * row;
#pragma omp parallel for schedule(static) num_threads(fs_threads_count()) if (item >= 4096)
    for (int64_t t = 0; t < (int64_t)rows * n; t++) {
        int r = (int)(t / n), b = (int)(t % n);
        fs_freeu_row_coeffs(x + b * item + (size_t)r * row, row0 + r, h, w, c,
                            part + (size_t)r * m + (size_t)b * per_item);
    }
}

void fs_freeu_apply_items(float *x, int n, int row0, int rows, int h, int w, int c,
                          const double *coeffs, float s) {
    const size_t per_item = (size_t)4 * c * 2, item = (size_t)rows * w * c;
    for (int b = 0; b < n; b++)
        fs_freeu_apply(x + b * item, row0, rows, h, w, c, coeffs + (size_t)b * per_item, s);
}

/* Python's slice [start:stop] on an axis of length n, as torch resolves it. */
static void py_slice(int start, int stop, int n, int *a, int *b) {
    if (start < 0) start = start + n < 0 ? 0 : start + n;
    if (start > n) start = n;
    if (stop < 0) stop = stop + n < 0 ? 0 : stop + n;
    if (stop > n) stop = n;
    *a = start;
    *b = stop > start ? stop : start;
}

fs_code fs_freeu_ref(const float *x, float *y, int h, int w, int c, float s, fs_error *err) {
    if (h <= 0 || w <= 0 || c <= 0)
        return fs_fail(err, FS_ERR_INVALID, "freeu_ref: bad map %dx%dx%d", h, w, c);
    size_t n = (size_t)h * w * c;
    if ((double)h * w * c > 1e9)
        return fs_fail(err, FS_ERR_RANGE, "freeu_ref: map %dx%dx%d too large for the reference",
                       h, w, c);
    fftwf_complex *buf = fs_alloc(n * sizeof(fftwf_complex));
    fftwf_complex *sh = fs_alloc(n * sizeof(fftwf_complex));
    fftwf_plan fwd = NULL, inv = NULL;
    fs_code rc = FS_OK;
    if (!buf || !sh) {
        rc = fs_fail(err, FS_ERR_NOMEM, "freeu_ref: %zu bytes for a %dx%dx%d map",
                     2 * n * sizeof(fftwf_complex), h, w, c);
        goto done;
    }
    /* one plan transforms every channel: [h][w][c] with stride c, distance 1 */
    fwd = plan_many_dft(h, w, c, buf, FFTW_FORWARD);
    inv = plan_many_dft(h, w, c, buf, FFTW_BACKWARD);
    if (!fwd || !inv) {
        rc = fs_fail(err, FS_ERR_INVALID, "freeu_ref: FFTW gave no plan for %dx%dx%d", h, w, c);
        goto done;
    }
    for (size_t i = 0; i < n; i++) buf[i][0] = x[i], buf[i][1] = 0.0f;
    fftwf_execute(fwd);
    /* fftshift: shifted[i][j] = X[(i - h//2) mod h][(j - w//2) mod w] */
    for (int i = 0; i < h; i++)
        for (int j = 0; j < w; j++) {
            int si = ((i - h / 2) % h + h) % h, sj = ((j - w / 2) % w + w) % w;
            memcpy(sh[((size_t)i * w + j) * c], buf[((size_t)si * w + sj) * c],
                   (size_t)c * sizeof(fftwf_complex));
        }
    /* mask[..., crow - 1:crow + 1, ccol - 1:ccol + 1] = s, threshold 1 */
    int r0, r1, q0, q1;
    py_slice(h / 2 - 1, h / 2 + 1, h, &r0, &r1);
    py_slice(w / 2 - 1, w / 2 + 1, w, &q0, &q1);
    for (int i = r0; i < r1; i++)
        for (int j = q0; j < q1; j++) {
            fftwf_complex *p = sh + ((size_t)i * w + j) * c;
            for (int ch = 0; ch < c; ch++) p[ch][0] *= s, p[ch][1] *= s;
        }
    /* ifftshift: X[i][j] = shifted[(i + h//2) mod h][(j + w//2) mod w] */
    for (int i = 0; i < h; i++)
        for (int j = 0; j < w; j++) {
            int si = (i + h / 2) % h, sj = (j + w / 2) % w;
            memcpy(buf[((size_t)i * w + j) * c], sh[((size_t)si * w + sj) * c],
                   (size_t)c * sizeof(fftwf_complex));
        }
    fftwf_execute(inv);
    /* ifftn's 1/(h w), then .real */
    double scale = 1.0 / ((double)h * w);
    for (size_t i = 0; i < n; i++) y[i] = (float)((double)buf[i][0] * scale);
done:
    plan_destroy(fwd);
    plan_destroy(inv);
    fs_free(buf);
    fs_free(sh);
    return rc;
}

/* ---------------------------------------------------------------- FFT blur */

/* exp(-2 pi^2 sigma^2 f^2) at the signed DFT frequencies f = k/n (k > n/2
 * taken as k - n; at n/2 for even n both signs give the same value). */
static void gauss_response(int n, int count, float sigma, double *g) {
    double a = 0.5 * fs_two_pi * fs_two_pi * (double)sigma * (double)sigma;
    for (int k = 0; k < count; k++) {
        double f = (double)(2 * k > n ? k - n : k) / (double)n;
        g[k] = exp(-a * f * f);
    }
}

fs_code fs_blur_fft(const float *x, float *y, int n, int h, int w, int c, float sigma,
                    fs_error *err) {
    if (n <= 0 || h <= 0 || w <= 0 || c <= 0)
        return fs_fail(err, FS_ERR_INVALID, "blur_fft: bad map %dx%dx%dx%d", n, h, w, c);
    if (!(sigma >= 0.0f) || !isfinite(sigma))
        return fs_fail(err, FS_ERR_INVALID, "blur_fft: sigma %g (want finite, >= 0)",
                       (double)sigma);
    if ((double)h * w > 1e9)
        return fs_fail(err, FS_ERR_RANGE, "blur_fft: map %dx%d too large", h, w);
    const size_t hw = (size_t)h * w, wc = (size_t)w / 2 + 1, spec = (size_t)h * wc;
    const int nthreads = omp_get_max_threads();
    /* one real and one half-spectrum buffer per thread, all 64-byte aligned
     * (fs_alloc) like the planning buffers, as new-array execute requires */
    float **re = calloc((size_t)nthreads, sizeof *re);
    fftwf_complex **cx = calloc((size_t)nthreads, sizeof *cx);
    double *gy = malloc(((size_t)h + wc) * sizeof(double));
    fftwf_plan fwd = NULL, inv = NULL;
    fs_code rc = FS_OK;
    if (!re || !cx || !gy) goto nomem;
    for (int t = 0; t < nthreads; t++) {
        re[t] = fs_alloc(hw * sizeof(float));
        cx[t] = fs_alloc(spec * sizeof(fftwf_complex));
        if (!re[t] || !cx[t]) goto nomem;
    }
#pragma omp critical(fs_fftw_planner)
    {
        fwd = fftwf_plan_dft_r2c_2d(h, w, re[0], cx[0], FFTW_ESTIMATE);
        inv = fftwf_plan_dft_c2r_2d(h, w, cx[0], re[0], FFTW_ESTIMATE);
    }
    if (!fwd || !inv) {
        rc = fs_fail(err, FS_ERR_INVALID, "blur_fft: FFTW gave no plan for %dx%d", h, w);
        goto done;
    }
    double *gx = gy + h;
    gauss_response(h, h, sigma, gy);
    gauss_response(w, (int)wc, sigma, gx);
    const double inv_hw = 1.0 / (double)hw;
    const long pairs = (long)n * c;
    /* each (item, channel) pair is one independent transform: its bits do
     * not depend on the thread that runs it; x and y may alias because a
     * pair reads and writes only its own channel */
#pragma omp parallel for schedule(dynamic, 1)
    for (long p = 0; p < pairs; p++) {
        int t = omp_get_thread_num();
        float *r = re[t];
        fftwf_complex *z = cx[t];
        size_t base = (size_t)(p / c) * hw * c, ch = (size_t)(p % c);
        for (size_t i = 0; i < hw; i++) r[i] = x[base + i * c + ch];
        fftwf_execute_dft_r2c(fwd, r, z);
        for (int ky = 0; ky < h; ky++)
            for (size_t kx = 0; kx < wc; kx++) {
                float m = (float)(gy[ky] * gx[kx] * inv_hw);
                fftwf_complex *v = &z[(size_t)ky * wc + kx];
                (*v)[0] *= m;
                (*v)[1] *= m;
            }
        fftwf_execute_dft_c2r(inv, z, r);
        for (size_t i = 0; i < hw; i++) y[base + i * c + ch] = r[i];
    }
    goto done;
nomem:
    rc = fs_fail(err, FS_ERR_NOMEM, "blur_fft: buffers for %d threads of a %dx%d map", nthreads,
                 h, w);
done:
#pragma omp critical(fs_fftw_planner)
    {
        if (fwd) fftwf_destroy_plan(fwd);
        if (inv) fftwf_destroy_plan(inv);
    }
    if (re)
        for (int t = 0; t < nthreads; t++) fs_free(re[t]);
    if (cx)
        for (int t = 0; t < nthreads; t++) fs_free(cx[t]);
    free(re);
    free(cx);
    free(gy);
    return rc;
}
