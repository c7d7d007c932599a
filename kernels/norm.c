/* kernels/norm.c: GroupNorm (split into per-row partial sums, a fold and an
 * apply step, so statistics can be global across row strips held by different
 * ranks) and LayerNorm, each with a reference and a fast version.
 *
 * Exactness: a GroupNorm partial is computed per global row in a fixed order
 * (per channel over the row's pixels, then channels in order into the group),
 * and fs_groupnorm_finish adds rows in global row order. So the statistics
 * are the same bits whatever the strips or threads; the apply and LayerNorm
 * steps are per element / per token. */
#include <math.h>
#include <string.h>
#include "kernels/kernels.h"
#include "kernels/fastmath.h"

/* Channels handled at once by the fast loops: per-channel accumulators live
 * on the stack. Blocking does not change any sum's order (each channel is
 * summed over pixels on its own; channels join their group in order). */
#define NORM_CH_BLOCK 512

/* ---------------------------------------------------------------- GroupNorm */

/* Sum and sum of squares of each group over one row of w pixels. */
static void groupnorm_row_partials(const float *xr, int w, int c, int groups, double *out) {
    int cg = c / groups;
    double s[NORM_CH_BLOCK], q[NORM_CH_BLOCK];
    for (int g = 0; g < 2 * groups; g++) out[g] = 0.0;
    for (int c0 = 0; c0 < c; c0 += NORM_CH_BLOCK) {
        int cb = c - c0 < NORM_CH_BLOCK ? c - c0 : NORM_CH_BLOCK;
        for (int ch = 0; ch < cb; ch++) s[ch] = q[ch] = 0.0;
        for (int px = 0; px < w; px++) {
            const float *p = xr + (size_t)px * c + c0;
            for (int ch = 0; ch < cb; ch++) {
                double v = p[ch];
                s[ch] += v;
                q[ch] += v * v;
            }
        }
        for (int ch = 0; ch < cb; ch++) {
            int g = (c0 + ch) / cg;
            out[2 * g] += s[ch];
            out[2 * g + 1] += q[ch];
        }
    }
}

void fs_groupnorm_partials(const float *x, int n, int rows, int w, int c, int groups,
                           double *part) {
    if (n <= 0 || rows <= 0 || groups <= 0 || c % groups) return;
    int tasks = rows * n;
#pragma omp parallel for schedule(static)
    for (int t = 0; t < tasks; t++) {
        int r = t / n, b = t % n;
        const float *xr = x + ((size_t)b * rows + r) * (size_t)w * c;
        groupnorm_row_partials(xr, w, c, groups, part + ((size_t)r * n + b) * groups * 2);
    }
}

/* mean and rstd of one group from its sum s and sum of squares q over count values */
static void gn_stats(double s, double q, double count, float eps, float *mean, float *rstd) {
    double mu = count > 0 ? s / count : 0.0;
    double var = count > 0 ? q / count - mu * mu : 0.0;
    if (var < 0) var = 0; /* rounding can push a constant group below 0 */
    *mean = (float)mu;
    *rstd = (float)(1.0 / sqrt(var + (double)eps));
}

void fs_groupnorm_finish_sums(const double *sums, int h, int n, int w, int c, int groups,
                              float eps, float *mean, float *rstd) {
    if (n <= 0 || groups <= 0 || c % groups) return;
    double count = (double)h * w * (c / groups);
    for (int bg = 0; bg < n * groups; bg++)
        gn_stats(sums[(size_t)bg * 2], sums[(size_t)bg * 2 + 1], count, eps, &mean[bg],
                 &rstd[bg]);
}

void fs_groupnorm_finish(const double *part, int h, int n, int w, int c, int groups,
                         float eps, float *mean, float *rstd) {
    if (n <= 0 || groups <= 0 || c % groups) return;
    double count = (double)h * w * (c / groups);
    for (int b = 0; b < n; b++)
        for (int g = 0; g < groups; g++) {
            double s = 0.0, q = 0.0;
            for (int r = 0; r < h; r++) {
                const double *p = part + (((size_t)r * n + b) * groups + g) * 2;
                s += p[0];
                q += p[1];
            }
            gn_stats(s, q, count, eps, &mean[b * groups + g], &rstd[b * groups + g]);
        }
}

void fs_groupnorm_apply(const float *x, float *y, int n, int rows, int w, int c, int groups,
                        const float *mean, const float *rstd, const float *gamma,
                        const float *beta, int silu) {
    if (n <= 0 || rows <= 0 || groups <= 0 || c % groups) return;
    int cg = c / groups, tasks = rows * n;
#pragma omp parallel for schedule(static)
    for (int t = 0; t < tasks; t++) {
        int b = t / rows, r = t % rows;
        size_t row_off = ((size_t)b * rows + r) * (size_t)w * c;
        float m[NORM_CH_BLOCK], a[NORM_CH_BLOCK], sh[NORM_CH_BLOCK];
        for (int c0 = 0; c0 < c; c0 += NORM_CH_BLOCK) {
            int cb = c - c0 < NORM_CH_BLOCK ? c - c0 : NORM_CH_BLOCK;
            for (int ch = 0; ch < cb; ch++) {
                int g = (c0 + ch) / cg;
                m[ch] = mean[b * groups + g];
                a[ch] = rstd[b * groups + g] * (gamma ? gamma[c0 + ch] : 1.0f);
                sh[ch] = beta ? beta[c0 + ch] : 0.0f;
            }
            for (int px = 0; px < w; px++) {
                const float *xp = x + row_off + (size_t)px * c + c0;
                float *yp = y + row_off + (size_t)px * c + c0;
                if (silu)
                    for (int ch = 0; ch < cb; ch++)
                        yp[ch] = fs_fast_silu((xp[ch] - m[ch]) * a[ch] + sh[ch]);
                else
                    for (int ch = 0; ch < cb; ch++) yp[ch] = (xp[ch] - m[ch]) * a[ch] + sh[ch];
            }
        }
    }
}

void fs_groupnorm_ref(const float *x, float *y, int n, int h, int w, int c, int groups,
                      float eps, const float *gamma, const float *beta, int silu) {
    if (n <= 0 || groups <= 0 || c % groups) return;
    int cg = c / groups;
    size_t hw = (size_t)h * w;
    for (int b = 0; b < n; b++) {
        const float *xb = x + (size_t)b * hw * c;
        float *yb = y + (size_t)b * hw * c;
        for (int g = 0; g < groups; g++) {
            double s = 0.0, count = (double)hw * cg;
            for (size_t p = 0; p < hw; p++)
                for (int ch = g * cg; ch < (g + 1) * cg; ch++) s += xb[p * c + ch];
            double mu = s / count, ss = 0.0;
            for (size_t p = 0; p < hw; p++)
                for (int ch = g * cg; ch < (g + 1) * cg; ch++) {
                    double d = xb[p * c + ch] - mu;
                    ss += d * d;
                }
            double rs = 1.0 / sqrt(ss / count + (double)eps);
            for (size_t p = 0; p < hw; p++)
                for (int ch = g * cg; ch < (g + 1) * cg; ch++) {
                    double v = (xb[p * c + ch] - mu) * rs;
                    if (gamma) v *= gamma[ch];
                    if (beta) v += beta[ch];
                    if (silu) v = v / (1.0 + exp(-v));
                    yb[p * c + ch] = (float)v;
                }
        }
    }
}

/* ---------------------------------------------------------------- LayerNorm */

void fs_layernorm_ref(const float *x, float *y, size_t tokens, int c, float eps,
                      const float *gamma, const float *beta) {
    for (size_t t = 0; t < tokens; t++) {
        const float *xr = x + t * c;
        float *yr = y + t * c;
        double s = 0.0;
        for (int i = 0; i < c; i++) s += xr[i];
        double mu = s / c, ss = 0.0;
        for (int i = 0; i < c; i++) ss += (xr[i] - mu) * (xr[i] - mu);
        double rs = 1.0 / sqrt(ss / c + (double)eps);
        for (int i = 0; i < c; i++) {
            double v = (xr[i] - mu) * rs;
            if (gamma) v *= gamma[i];
            if (beta) v += beta[i];
            yr[i] = (float)v;
        }
    }
}

/* Sum of x[0..c) in double over 8 fixed lanes (vectorisable without
 * reassociation; the lane structure depends only on c). With mu != NULL it
 * sums (x - *mu)^2 instead. */
static double lane_sum(const float *x, int c, const double *mu) {
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int i = 0;
    if (mu) {
        double m = *mu;
        for (; i + 8 <= c; i += 8)
            for (int k = 0; k < 8; k++) {
                double d = x[i + k] - m;
                acc[k] += d * d;
            }
    } else {
        for (; i + 8 <= c; i += 8)
            for (int k = 0; k < 8; k++) acc[k] += x[i + k];
    }
    double s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (; i < c; i++) {
        if (mu) {
            double d = x[i] - *mu;
            s += d * d;
        } else {
            s += x[i];
        }
    }
    return s;
}

void fs_layernorm(const float *x, float *y, size_t tokens, int c, float eps,
                  const float *gamma, const float *beta) {
    if (c <= 0) return;
#pragma omp parallel for schedule(static)
    for (size_t t = 0; t < tokens; t++) {
        const float *xr = x + t * c;
        float *yr = y + t * c;
        double mu = lane_sum(xr, c, NULL) / c;
        double var = lane_sum(xr, c, &mu) / c;
        float mf = (float)mu, rf = (float)(1.0 / sqrt(var + (double)eps));
        if (gamma && beta)
            for (int i = 0; i < c; i++) yr[i] = (xr[i] - mf) * rf * gamma[i] + beta[i];
        else if (gamma)
            for (int i = 0; i < c; i++) yr[i] = (xr[i] - mf) * rf * gamma[i];
        else if (beta)
            for (int i = 0; i < c; i++) yr[i] = (xr[i] - mf) * rf + beta[i];
        else
            for (int i = 0; i < c; i++) yr[i] = (xr[i] - mf) * rf;
    }
}
