/* Op cases: the Gaussian blur of scale fusion (kernels/blur.c).
 * Pins the spec's derived kernels (k = 3, 7 at sigma 1), then runs the three
 * variants (A = W|C, B = H|W, C = H|W|C) and single axes, separable fast
 * against the direct k^naxes reference on random maps, and checks that
 * random row strips (each holding its k/2 halo, with garbage, NaN included,
 * in halo rows outside the map) give the whole-map fast result bit for bit. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "kernels/kernels.h"
#include "ops/ops_harness.h"

static void kernel_known(void) {
    /* spec/freescale.md section 5, [derived] values (5 decimals) */
    float want3[3] = {0.27407f, 0.45186f, 0.27407f}, g3[3];
    float want7[7] = {0.00443f, 0.05401f, 0.24204f, 0.39905f, 0.24204f, 0.05401f, 0.00443f}, g7[7];
    fs_gaussian_kernel1d(3, 1.0f, g3);
    fs_gaussian_kernel1d(7, 1.0f, g7);
    harness_compare("gaussian_kernel1d", "k=3 sigma=1 (spec)", want3, g3, 3, 2e-5);
    harness_compare("gaussian_kernel1d", "k=7 sigma=1 (spec)", want7, g7, 7, 2e-5);
    /* normalised to sum 1, symmetric */
    float g15[15], one = 1.0f, sum = 0.0f;
    fs_gaussian_kernel1d(15, 1.0f, g15);
    for (int i = 0; i < 15; i++) sum += g15[i];
    harness_compare("gaussian_kernel1d", "k=15 sums to 1", &one, &sum, 1, 1e-6);
    float rev[15];
    for (int i = 0; i < 15; i++) rev[i] = g15[14 - i];
    harness_identical("gaussian_kernel1d symmetric", "k=15", g15, rev, 15);
}

/* The three variants as FreeScale's code computes them, run with PyTorch 2.15
 * (CPU) on x[b][y][x][c] = ((7y + 3x + 5c + 11b) % 13 - 6) / 4, B=2 h=5 w=6
 * C=7, k=3, sigma=1, every 29th output of the flattened NHWC result:
 *   g = exp(-(arange(k) - (k-1)/2)^2 / 2); g /= g.sum()
 *   C: conv3d(x.view(1,B,h,w,C), (g x g x g).expand(B,1,k,k,k), padding=k//2, groups=B)
 *   A: conv2d(x, (g x g).expand(h,1,k,k), padding=k//2, groups=h)     (x as B,h,w,C)
 *   B: conv2d(x.permute(0,3,1,2), (g x g).expand(C,1,k,k), padding=k//2, groups=C) */
static void blur_torch(void) {
    static const float want_c[15] = {
        -0.0991246253f, 0.05440294f, -0.0103393504f, 0.0248384979f, 0.0681322068f,
        -0.0249246415f, 0.0341193043f, -0.01272735f, 0.0934417993f, -0.0681322291f,
        -0.0248384904f, 0.0103393504f, -0.0409493744f, 0.0569753796f, 0.0397292823f};
    static const float want_a[15] = {
        -0.392554522f, 0.146603793f, -0.0490883775f, 0.0635875016f, 0.249999985f,
        -0.206792414f, -0.0994774997f, -0.164010674f, 0.206792429f, -0.25f,
        -0.0635875016f, 0.0490883514f, -0.146603808f, 0.392554522f, 0.138275251f};
    static const float want_b[15] = {
        -0.293076992f, -0.127464831f, -0.293207586f, 0.0635875091f, -0.152484566f,
        -0.206792399f, 0.203529552f, -0.114271924f, 0.275309563f, 0.152484566f,
        -0.0635875091f, 0.293207586f, 0.0975154489f, 0.236741781f, 0.206792414f};
    enum { B = 2, H = 5, W = 6, C = 7 };
    float x[B * H * W * C], y[B * H * W * C], ref[B * H * W * C], got[15], got_ref[15], g[3];
    for (int b = 0; b < B; b++)
        for (int r = 0; r < H; r++)
            for (int col = 0; col < W; col++)
                for (int ch = 0; ch < C; ch++)
                    x[((b * H + r) * W + col) * C + ch] =
                        (float)((7 * r + 3 * col + 5 * ch + 11 * b) % 13 - 6) / 4.0f;
    fs_gaussian_kernel1d(3, 1.0f, g);
    const int axes[3] = {FS_BLUR_H | FS_BLUR_W | FS_BLUR_C, FS_BLUR_W | FS_BLUR_C,
                         FS_BLUR_H | FS_BLUR_W};
    const float *want[3] = {want_c, want_a, want_b};
    const char *names[3] = {"variant C vs torch conv3d", "variant A vs torch conv2d groups=h",
                            "variant B vs torch conv2d groups=C"};
    for (int v = 0; v < 3; v++) {
        fs_blur_desc d = {.n = B, .h = H, .w = W, .c = C, .k = 3, .axes = axes[v],
                          .x_row0 = 0, .x_rows = H, .y_row0 = 0, .y_rows = H};
        fs_error err;
        if (hb_blur(&d, g, x, y, NULL, &err) != FS_OK) memset(y, 0, sizeof y);
        fs_blur_ref(&d, g, x, ref);
        for (int i = 0; i < 15; i++) {
            got[i] = y[29 * i];
            got_ref[i] = ref[29 * i];
        }
        harness_compare("blur vs torch", names[v], want[v], got, 15, 1e-5);
        if (harness_on_cpu()) /* the reference is the CPU's own */
            harness_compare("blur_ref vs torch", names[v], want[v], got_ref, 15, 1e-5);
    }
}

static const char *axes_name(int axes) {
    switch (axes) {
    case FS_BLUR_W | FS_BLUR_C: return "A(w,c)";
    case FS_BLUR_H | FS_BLUR_W: return "B(h,w)";
    case FS_BLUR_H | FS_BLUR_W | FS_BLUR_C: return "C(h,w,c)";
    case FS_BLUR_H: return "h";
    case FS_BLUR_W: return "w";
    case FS_BLUR_C: return "c";
    default: return "h,c";
    }
}

/* Runs fs_blur on output rows [y0, y1) of x ([n][h][w][c]) from a buffer
 * holding rows [y0 - halo, y1 + halo), where rows outside the map hold junk. */
static fs_code blur_strip(const fs_blur_desc *whole, const float *g, const float *x, int y0,
                          int y1, float *y, fs_arena *arena) {
    int halo = whole->axes & FS_BLUR_H ? whole->k / 2 : 0;
    int x0 = y0 - halo, x1 = y1 + halo;
    size_t row_len = (size_t)whole->w * whole->c;
    float *xs = fs_alloc((size_t)whole->n * (x1 - x0) * row_len * sizeof(float));
    for (int b = 0; b < whole->n; b++)
        for (int r = x0; r < x1; r++) {
            float *dst = xs + ((size_t)b * (x1 - x0) + (r - x0)) * row_len;
            if (r < 0 || r >= whole->h)
                for (size_t e = 0; e < row_len; e++) dst[e] = (e % 3) ? NAN : 1e30f;
            else
                memcpy(dst, x + ((size_t)b * whole->h + r) * row_len, row_len * sizeof(float));
        }
    fs_blur_desc d = *whole;
    d.x_row0 = x0;
    d.x_rows = x1 - x0;
    d.y_row0 = y0;
    d.y_rows = y1 - y0;
    fs_error err;
    fs_code rc = hb_blur(&d, g, xs, y, arena, &err);
    if (rc != FS_OK && rc != FS_ERR_UNSUPPORTED) fprintf(stderr, "blur_strip: %s\n", err.msg);
    fs_free(xs);
    return rc;
}

static void blur_case(int n, int h, int w, int c, int k, float sigma, int axes, fs_arena *arena) {
    char shape[128];
    snprintf(shape, sizeof shape, "%s n=%d h=%d w=%d c=%d k=%d sigma=%g", axes_name(axes), n, h,
             w, c, k, sigma);
    size_t row_len = (size_t)w * c, total = (size_t)n * h * row_len;
    float g[31];
    fs_gaussian_kernel1d(k, sigma, g);
    float *x = harness_random(total, -2.0f, 3.0f);
    float *ref = fs_alloc(total * sizeof(float)), *fast = fs_alloc(total * sizeof(float));
    float *strips = fs_alloc(total * sizeof(float));
    fs_blur_desc d = {.n = n, .h = h, .w = w, .c = c, .k = k, .axes = axes,
                      .x_row0 = 0, .x_rows = h, .y_row0 = 0, .y_rows = h};
    fs_blur_ref(&d, g, x, ref);
    fs_error err;
    fs_code rc = hb_blur(&d, g, x, fast, arena, &err);
    if (rc != FS_OK) {
        if (rc != FS_ERR_UNSUPPORTED) fprintf(stderr, "FAIL blur [%s]: %s\n", shape, err.msg);
        memset(fast, 0, total * sizeof(float));
    }
    harness_compare("blur", shape, ref, fast, total, 2e-6);

    for (int trial = 0; trial < 2; trial++) {
        int saved = fs_threads_count();
        fs_threads_init(trial == 0 ? 1 : 3);
        int y0 = 0, ok = 1, nstrips = 0;
        while (y0 < h && ok) {
            int y1 = trial == 1 ? y0 + 1 : y0 + harness_int(1, h - y0);
            float *ys = fs_alloc((size_t)n * (y1 - y0) * row_len * sizeof(float));
            ok = blur_strip(&d, g, x, y0, y1, ys, trial ? NULL : arena) == FS_OK;
            for (int b = 0; b < n; b++)
                memcpy(strips + ((size_t)b * h + y0) * row_len,
                       ys + (size_t)b * (y1 - y0) * row_len,
                       (size_t)(y1 - y0) * row_len * sizeof(float));
            fs_free(ys);
            y0 = y1;
            nstrips++;
        }
        fs_threads_init(saved);
        char sshape[192];
        snprintf(sshape, sizeof sshape, "%s, %d strips", shape, nstrips);
        if (!ok) memset(strips, 0, total * sizeof(float));
        harness_identical("blur strips", sshape, fast, strips, total);
    }
    fs_free(x);
    fs_free(ref);
    fs_free(fast);
    fs_free(strips);
}

/* Bad input is refused with a message, never read out of bounds. */
static void blur_errors(fs_arena *arena) {
    float g[3], x[2 * 4 * 4] = {0}, y[2 * 4 * 4];
    fs_gaussian_kernel1d(3, 1.0f, g);
    fs_blur_desc d = {.n = 1, .h = 8, .w = 4, .c = 4, .k = 3, .axes = FS_BLUR_H | FS_BLUR_W,
                      .x_row0 = 2, .x_rows = 2, .y_row0 = 2, .y_rows = 2};
    fs_error err;
    float pass = 1.0f, got;
    /* rows 2..3 need 1..4 with the halo: refused */
    got = fs_blur(&d, g, x, y, arena, &err) == FS_ERR_RANGE && strstr(err.msg, "holds");
    harness_compare("blur errors", "missing halo", &pass, &got, 1, 0);
    d.axes = FS_BLUR_W | FS_BLUR_C; /* no H: no halo needed */
    got = fs_blur(&d, g, x, y, arena, &err) == FS_OK;
    harness_compare("blur errors", "no halo needed without H", &pass, &got, 1, 0);
    d.k = 4;
    got = fs_blur(&d, g, x, y, arena, &err) == FS_ERR_INVALID;
    harness_compare("blur errors", "even kernel", &pass, &got, 1, 0);
    d.k = 3;
    d.y_row0 = 7;
    got = fs_blur(&d, g, x, y, arena, &err) == FS_ERR_RANGE;
    harness_compare("blur errors", "output rows past the map", &pass, &got, 1, 0);
}

void ops_cases_blur(void) {
    fs_error err;
    fs_arena *arena = fs_arena_create((size_t)8 << 20, &err);
    if (harness_on_cpu()) kernel_known(); /* the taps are made on the host */
    blur_torch();
    static const int variants[] = {FS_BLUR_W | FS_BLUR_C, FS_BLUR_H | FS_BLUR_W,
                                   FS_BLUR_H | FS_BLUR_W | FS_BLUR_C, FS_BLUR_H, FS_BLUR_W,
                                   FS_BLUR_C, FS_BLUR_H | FS_BLUR_C};
    static const int ks[] = {1, 3, 5, 7, 15};
    for (size_t v = 0; v < sizeof variants / sizeof variants[0]; v++) {
        blur_case(2, 9, 7, 5, 3, 1.0f, variants[v], arena);
        blur_case(1, 16, 16, 24, 7, 1.0f, variants[v], arena);
        for (int i = 0; i < 3; i++)
            blur_case(harness_int(1, 2), harness_int(1, 14), harness_int(1, 14),
                      harness_int(1, 20), ks[harness_int(0, 4)], 0.5f + harness_int(0, 3) * 0.5f,
                      variants[v], arena);
    }
    /* k = 15 over a map smaller than the kernel, the 8192^2 setting */
    blur_case(2, 6, 5, 9, 15, 1.0f, FS_BLUR_H | FS_BLUR_W | FS_BLUR_C, arena);
    blur_case(1, 20, 18, 64, 15, 1.0f, FS_BLUR_H | FS_BLUR_W | FS_BLUR_C, NULL);
    if (harness_on_cpu()) blur_errors(arena);
    fs_arena_destroy(arena);
}
