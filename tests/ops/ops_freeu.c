/* Op cases: the spectral ops (kernels/spectral.c).
 * FreeU's Fourier filter: fs_freeu_ref and the 4-coefficient strip path
 * against the official PyTorch code (tests/data/freeu/golden.safetensors,
 * tools/gen_freeu_golden.py); the strip path against fs_freeu_ref on random
 * maps (even/odd, 1- and 2-long axes, non-square, C up to 64); strips cut at
 * random rows equal the whole map bit for bit at 1 and 3 threads; the
 * output's spectrum (FFTW) shows the Hermitian facts of spec section 7.
 * fs_blur_fft: against a direct periodic Gaussian convolution in double
 * (sigma >= 1.75, where the sampled Gaussian's spectrum beyond Nyquist is
 * below 1e-6) and, for any sigma, against a direct DFT in double. */
#include <fftw3.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "io/io.h"
#include "kernels/kernels.h"
#include "ops/ops_harness.h"

static const double two_pi = 6.283185307179586476925286766559;

/* ---------------------------------------------------------------- FreeU */

/* Whole-map coefficients: the per-row partials summed in row order, as the
 * ranks' all-reduce does. */
static double *freeu_coeffs(const float *x, int h, int w, int c) {
    size_t nk = 8 * (size_t)c;
    double *sum = calloc(nk, sizeof(double)), *part = malloc(nk * sizeof(double));
    for (int y = 0; y < h; y++) {
        hb_freeu_row_coeffs(x + (size_t)y * w * c, y, h, w, c, part);
        for (size_t i = 0; i < nk; i++) sum[i] += part[i];
    }
    free(part);
    return sum;
}

static float *freeu_fast(const float *x, int h, int w, int c, float s) {
    size_t n = (size_t)h * w * c;
    float *y = fs_alloc(n * sizeof(float));
    memcpy(y, x, n * sizeof(float));
    double *k = freeu_coeffs(x, h, w, c);
    hb_freeu_apply(y, 0, h, h, w, c, k, s);
    free(k);
    return y;
}

static const char *data_dir(char *buf, size_t len) {
    const char *env = getenv("FS_TEST_DATA");
    if (env) return env;
    /* run by hand: tests/data next to this file */
    snprintf(buf, len, "%s", __FILE__);
    char *cut = strstr(buf, "/ops/ops_freeu.c");
    if (cut) snprintf(cut, len - (size_t)(cut - buf), "/data");
    else snprintf(buf, len, "tests/data");
    return buf;
}

static void freeu_golden(void) {
    char dir[1024], path[1200];
    snprintf(path, sizeof path, "%s/freeu/golden.safetensors", data_dir(dir, sizeof dir));
    fs_safetensors *st = NULL;
    fs_error err;
    float zero = 0.0f, one = 1.0f;
    if (fs_safetensors_open(path, &st, &err) != FS_OK) {
        fprintf(stderr, "FAIL freeu golden: %s\n", err.msg);
        harness_compare("freeu golden file", path, &one, &zero, 1, 0);
        return;
    }
    const fs_st_tensor *ts = fs_safetensors_find(st, "scale");
    float s = 0.0f;
    if (!ts || ts->numel != 1 || fs_safetensors_read_f32(st, ts, &s, &err) != FS_OK) s = NAN;
    int cases = 0;
    for (int i = 0;; i++) {
        char nx[16], ny[16], shape[96];
        snprintf(nx, sizeof nx, "x%d", i);
        snprintf(ny, sizeof ny, "y%d", i);
        const fs_st_tensor *tx = fs_safetensors_find(st, nx), *ty = fs_safetensors_find(st, ny);
        if (!tx || !ty) break;
        if (tx->ndim != 3 || ty->numel != tx->numel) break;
        int h = (int)tx->shape[0], w = (int)tx->shape[1], c = (int)tx->shape[2];
        size_t n = tx->numel;
        float *x = fs_alloc(n * sizeof(float)), *want = fs_alloc(n * sizeof(float));
        float *ref = fs_alloc(n * sizeof(float));
        fs_safetensors_read_f32(st, tx, x, &err);
        fs_safetensors_read_f32(st, ty, want, &err);
        snprintf(shape, sizeof shape, "torch Fourier_filter %dx%dx%d s=%g", h, w, c, s);
        if (fs_freeu_ref(x, ref, h, w, c, s, &err) != FS_OK) memset(ref, 0, n * sizeof(float));
        float *fast = freeu_fast(x, h, w, c, s);
        harness_compare("freeu_ref vs torch", shape, want, ref, n, 1e-5);
        harness_compare("freeu strips vs torch", shape, want, fast, n, 1e-5);
        fs_free(x), fs_free(want), fs_free(ref), fs_free(fast);
        cases++;
    }
    float got = cases >= 5 && s == 0.6f, pass = 1.0f;
    harness_compare("freeu golden file", "5 cases, scale 0.6", &pass, &got, 1, 0);
    fs_safetensors_close(st);
}

/* The fast path against the full FFT, whole map, and strips at random row
 * boundaries (each strip's rows' partials, summed in global row order; each
 * strip applied on its own buffer) bit for bit, at 1 and 3 threads. */
static void freeu_case(int h, int w, int c, float s) {
    char shape[96];
    snprintf(shape, sizeof shape, "h=%d w=%d c=%d s=%g", h, w, c, s);
    size_t row = (size_t)w * c, n = (size_t)h * row, nk = 8 * (size_t)c;
    float *x = harness_random(n, -2.0f, 3.0f), *ref = fs_alloc(n * sizeof(float));
    fs_error err;
    if (fs_freeu_ref(x, ref, h, w, c, s, &err) != FS_OK) {
        fprintf(stderr, "FAIL freeu_ref [%s]: %s\n", shape, err.msg);
        memset(ref, 0, n * sizeof(float));
    }
    float *whole = freeu_fast(x, h, w, c, s);
    harness_compare("freeu apply vs ref", shape, ref, whole, n, 1e-5);

    float *strips = fs_alloc(n * sizeof(float));
    double *parts = malloc((size_t)h * nk * sizeof(double)), *sum = malloc(nk * sizeof(double));
    for (int trial = 0; trial < 2; trial++) {
        int saved = fs_threads_count();
        fs_threads_init(trial == 0 ? 1 : 3);
        /* cut points */
        int cuts[64], ncut = 0, y0 = 0;
        while (y0 < h && ncut < 63) {
            cuts[ncut++] = y0;
            y0 = trial == 1 && h <= 8 ? y0 + 1 : y0 + harness_int(1, h - y0);
        }
        cuts[ncut] = h;
        /* each strip: partials of its own rows, from a copy of only its rows */
        for (int si = 0; si < ncut; si++) {
            int a = cuts[si], b = cuts[si + 1];
            float *xs = fs_alloc((size_t)(b - a) * row * sizeof(float));
            memcpy(xs, x + (size_t)a * row, (size_t)(b - a) * row * sizeof(float));
            for (int y = a; y < b; y++)
                hb_freeu_row_coeffs(xs + (size_t)(y - a) * row, y, h, w, c, parts + y * nk);
            fs_free(xs);
        }
        memset(sum, 0, nk * sizeof(double));
        for (int y = 0; y < h; y++)
            for (size_t i = 0; i < nk; i++) sum[i] += parts[y * nk + i];
        for (int si = 0; si < ncut; si++) {
            int a = cuts[si], b = cuts[si + 1];
            float *xs = fs_alloc((size_t)(b - a) * row * sizeof(float));
            memcpy(xs, x + (size_t)a * row, (size_t)(b - a) * row * sizeof(float));
            hb_freeu_apply(xs, a, b - a, h, w, c, sum, s);
            memcpy(strips + (size_t)a * row, xs, (size_t)(b - a) * row * sizeof(float));
            fs_free(xs);
        }
        fs_threads_init(saved);
        char sshape[160];
        snprintf(sshape, sizeof sshape, "%s, %d strips, %d threads", shape, ncut,
                 trial == 0 ? 1 : 3);
        harness_identical("freeu strips vs whole", sshape, whole, strips, n);
        harness_compare("freeu strips vs ref", sshape, ref, strips, n, 1e-5);
    }
    free(parts), free(sum);
    fs_free(x), fs_free(ref), fs_free(whole), fs_free(strips);
}

/* Is frequency k (mod n) in the official mask's index set along an axis of
 * length n: the fftshifted slice [n//2 - 1 : n//2 + 1], i.e. {0, -1}, which
 * for n = 1 is the single index 0. */
static int in_mask_axis(int k, int n) {
    k = ((k % n) + n) % n;
    return k == 0 || (n >= 2 && k == n - 1);
}

/* Spectrum of channel ch of a [h][w][c] map (FFTW, in double from float). */
static void spectrum(const float *x, int h, int w, int c, int ch, fftwf_complex *out) {
    fftwf_complex *in = fftwf_malloc((size_t)h * w * sizeof(fftwf_complex));
    for (size_t i = 0; i < (size_t)h * w; i++) in[i][0] = x[i * c + ch], in[i][1] = 0.0f;
    fftwf_plan p = fftwf_plan_dft_2d(h, w, in, out, FFTW_FORWARD, FFTW_ESTIMATE);
    fftwf_execute(p);
    fftwf_destroy_plan(p);
    fftwf_free(in);
}

/* Taking .real makes the mask Hermitian: Y(k) = (M(k) + M(-k)) / 2 X(k).
 * Every frequency of the fast path's output is checked against that, and the
 * spec's named facts are checked one by one where both axes are >= 3. */
static void freeu_hermitian(int h, int w, float s) {
    enum { C = 2 };
    size_t n = (size_t)h * w * C, hw = (size_t)h * w;
    float *x = harness_random(n, -2.0f, 3.0f);
    float *y = freeu_fast(x, h, w, C, s);
    fftwf_complex *X = fftwf_malloc(hw * sizeof(fftwf_complex));
    fftwf_complex *Y = fftwf_malloc(hw * sizeof(fftwf_complex));
    float *want = malloc(2 * hw * sizeof(float)), *got = malloc(2 * hw * sizeof(float));
    char shape[96];
    for (int ch = 0; ch < C; ch++) {
        spectrum(x, h, w, C, ch, X);
        spectrum(y, h, w, C, ch, Y);
        for (int ky = 0; ky < h; ky++)
            for (int kx = 0; kx < w; kx++) {
                double m = 1.0 + ((double)s - 1.0) / 2.0 *
                                     (in_mask_axis(ky, h) * in_mask_axis(kx, w) +
                                      in_mask_axis(-ky, h) * in_mask_axis(-kx, w));
                size_t i = (size_t)ky * w + kx;
                want[2 * i] = (float)(m * X[i][0]), want[2 * i + 1] = (float)(m * X[i][1]);
                got[2 * i] = Y[i][0], got[2 * i + 1] = Y[i][1];
            }
        snprintf(shape, sizeof shape, "h=%d w=%d s=%g ch=%d, every frequency", h, w, s, ch);
        harness_compare("freeu spectrum (M(k)+M(-k))/2", shape, want, got, 2 * hw, 1e-5);
        if (h < 3 || w < 3) continue;
        float xmax = 0.0f;
        for (size_t i = 0; i < hw; i++) xmax = fmaxf(xmax, hypotf(X[i][0], X[i][1]));
        /* the spec's list: factor for (ky, kx) */
        const double hs = (1.0 + s) / 2.0;
        const struct { int ky, kx; double f; const char *what; } facts[] = {
            {0, 0, s, "DC times s"},
            {1, 0, hs, "(1,0) times (1+s)/2"},   {-1, 0, hs, "(-1,0) times (1+s)/2"},
            {0, 1, hs, "(0,1) times (1+s)/2"},   {0, -1, hs, "(0,-1) times (1+s)/2"},
            {1, 1, hs, "(1,1) times (1+s)/2"},   {-1, -1, hs, "(-1,-1) times (1+s)/2"},
            {1, -1, 1.0, "(1,-1) unchanged"},    {-1, 1, 1.0, "(-1,1) unchanged"},
            {2, 2, 1.0, "(2,2) unchanged"},
        };
        size_t nfacts = sizeof facts / sizeof facts[0] - (h < 4 || w < 4); /* 2 = -1 mod 3 */
        for (size_t f = 0; f < nfacts; f++) {
            size_t i = (size_t)(((facts[f].ky % h) + h) % h) * w + ((facts[f].kx % w) + w) % w;
            /* the third value, equal in both, makes the error relative to
             * the spectrum's largest value (a bin may be near 0 by chance) */
            float wv[3] = {(float)(facts[f].f * X[i][0]), (float)(facts[f].f * X[i][1]), xmax};
            float gv[3] = {Y[i][0], Y[i][1], xmax};
            snprintf(shape, sizeof shape, "h=%d w=%d s=%g: %s", h, w, s, facts[f].what);
            harness_compare("freeu spectrum facts", shape, wv, gv, 3, 1e-5);
        }
    }
    fftwf_free(X), fftwf_free(Y), free(want), free(got);
    fs_free(x), fs_free(y);
}

static void freeu_errors(void) {
    float x[4] = {1, 2, 3, 4}, y[4];
    fs_error err;
    float pass = 1.0f, got = fs_freeu_ref(x, y, 0, 2, 1, 0.5f, &err) == FS_ERR_INVALID;
    harness_compare("freeu errors", "h = 0 refused", &pass, &got, 1, 0);
}

/* ---------------------------------------------------------------- FFT blur */

/* Direct periodic convolution with the sampled Gaussian of std sigma, in
 * double: every tap within +-ceil(6 sigma), wrapped onto the map (so every
 * periodic image of the kernel within that support is summed). */
static void blur_periodic_direct(const float *x, float *y, int n, int h, int w, int c,
                                 double sigma) {
    int r = (int)ceil(6.0 * sigma);
    double *g = malloc((2 * (size_t)r + 1) * sizeof(double));
    for (int i = -r; i <= r; i++)
        g[i + r] = exp(-(double)i * i / (2.0 * sigma * sigma)) / (sqrt(two_pi) * sigma);
    for (int b = 0; b < n; b++)
        for (int i = 0; i < h; i++)
            for (int j = 0; j < w; j++)
                for (int ch = 0; ch < c; ch++) {
                    double acc = 0.0;
                    for (int dy = -r; dy <= r; dy++) {
                        int yy = (((i - dy) % h) + h) % h;
                        for (int dx = -r; dx <= r; dx++) {
                            int xx = (((j - dx) % w) + w) % w;
                            acc += g[dy + r] * g[dx + r] *
                                   x[(((size_t)b * h + yy) * w + xx) * c + ch];
                        }
                    }
                    y[(((size_t)b * h + i) * w + j) * c + ch] = (float)acc;
                }
    free(g);
}

/* Re(IDFT(G(f) DFT(x))) with G = exp(-2 pi^2 sigma^2 (fy^2 + fx^2)) at the
 * signed frequencies, by direct separable DFTs in double. */
static void blur_dft_direct(const float *x, float *y, int n, int h, int w, int c,
                            double sigma) {
    size_t hw = (size_t)h * w;
    double *re = malloc(hw * sizeof(double)), *im = malloc(hw * sizeof(double));
    double *tr = malloc(hw * sizeof(double)), *ti = malloc(hw * sizeof(double));
    double a = two_pi * two_pi / 2.0 * sigma * sigma;
    for (int b = 0; b < n; b++)
        for (int ch = 0; ch < c; ch++) {
            /* forward along w, then along h */
            for (int i = 0; i < h; i++)
                for (int kx = 0; kx < w; kx++) {
                    double sr = 0, si = 0;
                    for (int j = 0; j < w; j++) {
                        double v = x[(((size_t)b * h + i) * w + j) * c + ch];
                        double t = -two_pi * (double)((long)kx * j % w) / w;
                        sr += v * cos(t), si += v * sin(t);
                    }
                    tr[(size_t)i * w + kx] = sr, ti[(size_t)i * w + kx] = si;
                }
            for (int ky = 0; ky < h; ky++)
                for (int kx = 0; kx < w; kx++) {
                    double sr = 0, si = 0;
                    for (int i = 0; i < h; i++) {
                        double t = -two_pi * (double)((long)ky * i % h) / h;
                        double vr = tr[(size_t)i * w + kx], vi = ti[(size_t)i * w + kx];
                        sr += vr * cos(t) - vi * sin(t), si += vr * sin(t) + vi * cos(t);
                    }
                    double fy = (double)(2 * ky > h ? ky - h : ky) / h;
                    double fx = (double)(2 * kx > w ? kx - w : kx) / w;
                    double m = exp(-a * (fy * fy + fx * fx));
                    re[(size_t)ky * w + kx] = sr * m, im[(size_t)ky * w + kx] = si * m;
                }
            /* inverse along h, then along w (real part only at the end) */
            for (int i = 0; i < h; i++)
                for (int kx = 0; kx < w; kx++) {
                    double sr = 0, si = 0;
                    for (int ky = 0; ky < h; ky++) {
                        double t = two_pi * (double)((long)ky * i % h) / h;
                        double vr = re[(size_t)ky * w + kx], vi = im[(size_t)ky * w + kx];
                        sr += vr * cos(t) - vi * sin(t), si += vr * sin(t) + vi * cos(t);
                    }
                    tr[(size_t)i * w + kx] = sr, ti[(size_t)i * w + kx] = si;
                }
            for (int i = 0; i < h; i++)
                for (int j = 0; j < w; j++) {
                    double sr = 0;
                    for (int kx = 0; kx < w; kx++) {
                        double t = two_pi * (double)((long)kx * j % w) / w;
                        sr += tr[(size_t)i * w + kx] * cos(t) - ti[(size_t)i * w + kx] * sin(t);
                    }
                    y[(((size_t)b * h + i) * w + j) * c + ch] = (float)(sr / (double)hw);
                }
        }
    free(re), free(im), free(tr), free(ti);
}

static void blur_fft_case(int n, int h, int w, int c, float sigma, int direct) {
    char shape[128];
    snprintf(shape, sizeof shape, "n=%d h=%d w=%d c=%d sigma=%g", n, h, w, c, sigma);
    size_t total = (size_t)n * h * w * c;
    float *x = harness_random(total, -2.0f, 3.0f);
    float *ref = fs_alloc(total * sizeof(float)), *got = fs_alloc(total * sizeof(float));
    float *again = fs_alloc(total * sizeof(float));
    fs_error err;
    int saved = fs_threads_count();
    fs_threads_init(1);
    fs_code rc = hb_blur_fft(x, got, n, h, w, c, sigma, &err);
    if (rc != FS_OK) {
        if (rc != FS_ERR_UNSUPPORTED) fprintf(stderr, "FAIL blur_fft [%s]: %s\n", shape, err.msg);
        memset(got, 0, total * sizeof(float));
    }
    /* 3 threads, in place (x and y alias): the same bits */
    fs_threads_init(3);
    memcpy(again, x, total * sizeof(float));
    if (hb_blur_fft(again, again, n, h, w, c, sigma, &err) != FS_OK)
        memset(again, 0, total * sizeof(float));
    fs_threads_init(saved);
    harness_identical("blur_fft in place, 3 threads", shape, got, again, total);
    blur_dft_direct(x, ref, n, h, w, c, sigma);
    harness_compare("blur_fft vs direct DFT", shape, ref, got, total, 1e-5);
    if (direct) {
        blur_periodic_direct(x, ref, n, h, w, c, sigma);
        harness_compare("blur_fft vs periodic conv", shape, ref, got, total, 1e-5);
    }
    fs_free(x), fs_free(ref), fs_free(got), fs_free(again);
}

static void blur_fft_errors(void) {
    float x[4] = {0}, y[4];
    fs_error err;
    float pass = 1.0f, got;
    got = fs_blur_fft(x, y, 0, 2, 2, 1, 1.0f, &err) == FS_ERR_INVALID;
    harness_compare("blur_fft errors", "n = 0 refused", &pass, &got, 1, 0);
    got = fs_blur_fft(x, y, 1, 2, 2, 1, -1.0f, &err) == FS_ERR_INVALID;
    harness_compare("blur_fft errors", "negative sigma refused", &pass, &got, 1, 0);
    got = fs_blur_fft(x, y, 1, 2, 2, 1, NAN, &err) == FS_ERR_INVALID;
    harness_compare("blur_fft errors", "NaN sigma refused", &pass, &got, 1, 0);
    /* sigma 0: the identity */
    float in[6] = {1, -2, 3, 0.5f, 7, -1}, out[6];
    got = fs_blur_fft(in, out, 1, 2, 3, 1, 0.0f, &err) == FS_OK;
    harness_compare("blur_fft errors", "sigma 0 accepted", &pass, &got, 1, 0);
    harness_compare("blur_fft sigma 0 is identity", "1x2x3x1", in, out, 6, 1e-6);
}

void ops_cases_freeu(void) {
    freeu_golden();
    static const int sizes[][3] = {{8, 8, 3},  {7, 5, 4},   {6, 10, 16}, {2, 9, 5},
                                   {9, 2, 5},  {2, 2, 3},   {1, 6, 2},   {5, 1, 3},
                                   {1, 1, 2},  {3, 3, 64},  {16, 12, 64}, {33, 17, 64},
                                   {4, 64, 7}, {64, 48, 40}};
    static const float scales[] = {0.6f, 0.4f, 1.1f, 0.0f};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        freeu_case(sizes[i][0], sizes[i][1], sizes[i][2], scales[i % 4]);
    for (int i = 0; i < 8; i++) {
        int h = harness_int(1, 24), w = harness_int(1, 24);
        float s = scales[harness_int(0, 3)];
        /* at most 2 x 2 every frequency is masked: s = 0 gives an all-zero
         * map, which the harness refuses as a useless reference */
        if (h <= 2 && w <= 2 && s == 0.0f) s = 0.6f;
        freeu_case(h, w, harness_int(1, 64), s);
    }
    static const int herm[][2] = {{8, 8}, {7, 5}, {6, 10}, {3, 3}, {2, 5},
                                  {5, 2}, {2, 2}, {1, 6},  {6, 1}, {9, 4}};
    for (size_t i = 0; i < sizeof herm / sizeof herm[0]; i++) {
        freeu_hermitian(herm[i][0], herm[i][1], 0.6f);
        freeu_hermitian(herm[i][0], herm[i][1], 0.4f);
    }
    if (harness_on_cpu()) freeu_errors();

    /* sigma >= 1.75: also against the sampled periodic Gaussian */
    blur_fft_case(2, 8, 8, 3, 2.0f, 1);
    blur_fft_case(1, 7, 5, 4, 1.75f, 1);
    blur_fft_case(2, 5, 12, 2, 3.0f, 1);
    blur_fft_case(1, 1, 9, 3, 2.0f, 1);
    blur_fft_case(1, 6, 1, 2, 2.5f, 1);
    blur_fft_case(1, 3, 4, 5, 4.0f, 1);
    for (int i = 0; i < 4; i++)
        blur_fft_case(harness_int(1, 2), harness_int(1, 12), harness_int(1, 12),
                      harness_int(1, 5), 1.75f + 0.25f * harness_int(0, 8), 1);
    /* small sigma (the sampled Gaussian aliases there): the DFT definition */
    blur_fft_case(2, 8, 8, 3, 0.5f, 0);
    blur_fft_case(1, 7, 9, 4, 1.0f, 0);
    blur_fft_case(1, 2, 2, 3, 1.0f, 0);
    blur_fft_case(1, 32, 24, 8, 1.5f, 0);
    blur_fft_case(1, 33, 64, 3, 6.0f, 0);
    if (harness_on_cpu()) blur_fft_errors();
}
