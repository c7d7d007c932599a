/* Op cases: nearest 2x upsampling and PyTorch-semantics bicubic resizing
 * (kernels/resize.c). Bicubic: golden values from PyTorch, fast against the
 * reference on random up- and down-scales (non-integer ratios, odd sizes,
 * batch 2), and random output-row strips, each fed exactly the input rows
 * fs_resize_bicubic_input_rows names, identical to the whole-map result. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "kernels/kernels.h"
#include "ops/ops_harness.h"

/* ---------------------------------------------------------------- nearest */

static void nearest_case(int n, int rows, int w, int c) {
    char shape[64];
    snprintf(shape, sizeof shape, "n=%d rows=%d w=%d c=%d", n, rows, w, c);
    size_t nin = (size_t)n * rows * w * c, nout = 4 * nin;
    float *x = harness_random(nin, -1.0f, 1.0f);
    float *ref = fs_alloc(nout * sizeof(float)), *fast = fs_alloc(nout * sizeof(float));
    fs_upsample_nearest2x_ref(x, ref, n, rows, w, c);
    hb_upsample_nearest2x(x, fast, n, rows, w, c);
    harness_identical("upsample_nearest2x", shape, ref, fast, nout);
    fs_free(x);
    fs_free(ref);
    fs_free(fast);
}

/* ---------------------------------------------------------------- bicubic */

/* The map used for the golden values: exact in float, varied enough. */
static float golden_value(int b, int ch, int y, int x) {
    return (float)((7 * y + 3 * x + 5 * ch + 11 * b) % 13 - 6) / 4.0f;
}

/* Golden outputs, NHWC, from PyTorch 2.15 (CPU):
 *   def v(b, ch, y, x): return ((7*y + 3*x + 5*ch + 11*b) % 13 - 6) / 4.0
 *   x = torch.tensor([[[[v(b,ch,y,xx) for xx in range(iw)] for y in range(ih)]
 *                      for ch in range(c)] for b in range(n)], dtype=torch.float32)
 *   y = F.interpolate(x, size=(oh, ow), mode='bicubic', align_corners=False)
 *   print(y.permute(0, 2, 3, 1).flatten()[::stride])
 * Not bit for bit: PyTorch's build contracts its float formulas into FMAs
 * (its impulse response at 4 -> 7 shows weights 0.59375 -+ 1 ulp where the
 * unfused formula gives t = 0.5 exactly), so compare within 2e-6. */
static const float golden_1x1_3x4_to_5x7[35] = {
    -1.74241316f, -1.47775364f, -1.00996768f, -0.386999905f, 0.235967949f, 0.703752935f,
    0.968412399f, -0.787412405f, -0.41162625f, 0.0285012461f, -0.335500002f, -0.699500859f,
    -0.259373307f, 0.116412275f, 0.175587773f, 0.659302771f, 1.07256782f, -0.250000298f,
    -1.57256782f, -1.15930164f, -0.675587654f, -0.616412997f, -0.240626946f, 0.19950062f,
    -0.164500132f, -0.528500438f, -0.0883729309f, 0.287412763f, -1.468413f, -1.20375359f,
    -0.735967696f, -0.112999901f, 0.509968042f, 0.977752864f, 1.24241245f};
static const float golden_1x2_9x6_to_4x5[40] = {
    -0.142940491f, 0.890872359f, 0.111059733f, -0.62532717f, -1.03857422f, 0.0662231445f,
    0.47832197f, 0.757773995f, 0.32618615f, -0.758426368f, 0.486856133f, -1.42665732f,
    0.548135579f, -0.358048648f, -1.10443115f, 0.49275589f, -0.058114782f, 1.47821987f,
    0.852044165f, -0.752317071f, 0.78131777f, -1.10204363f, 0.867341042f, -0.191885501f,
    -0.816051483f, 0.854431152f, 0.233389169f, -0.798136294f, 1.14354801f, -0.73685658f,
    0.508425951f, -0.472247094f, -0.990902781f, 0.245190248f, -0.528224945f, 0.678779602f,
    -0.00972163212f, -0.36106047f, 1.09770644f, -0.107059836f};
/* n=2 c=3 4x5 -> 8x10, every 37th of the 480 outputs */
static const float golden_2x3_4x5_to_8x10_every37[13] = {
    -1.76367188f, 0.0423202515f, 0.82649231f, -0.402671814f, 0.0458984375f,
    0.102210999f, -0.816871643f, 1.8144722f, -0.102210999f, 0.069519043f,
    0.228504181f, -0.82649231f, -0.0765419006f};

static void bicubic_golden(int n, int c, int ih, int iw, int oh, int ow, const float *want,
                           int stride, int count) {
    char shape[96];
    snprintf(shape, sizeof shape, "PyTorch golden n=%d c=%d %dx%d -> %dx%d", n, c, ih, iw, oh, ow);
    float *x = fs_alloc((size_t)n * ih * iw * c * sizeof(float));
    for (int b = 0; b < n; b++)
        for (int y = 0; y < ih; y++)
            for (int xx = 0; xx < iw; xx++)
                for (int ch = 0; ch < c; ch++)
                    x[(((size_t)b * ih + y) * iw + xx) * c + ch] = golden_value(b, ch, y, xx);
    size_t nout = (size_t)n * oh * ow * c;
    float *ref = fs_alloc(nout * sizeof(float)), *fast = fs_alloc(nout * sizeof(float));
    float got_ref[64], got_fast[64];
    fs_resize_desc d = {.n = n, .c = c, .in_h = ih, .in_w = iw, .out_h = oh, .out_w = ow,
                        .x_row0 = 0, .x_rows = ih, .y_row0 = 0, .y_rows = oh};
    fs_resize_bicubic_ref(&d, x, ref);
    hb_resize_bicubic(&d, x, fast);
    for (int i = 0; i < count; i++) {
        got_ref[i] = ref[(size_t)i * stride];
        got_fast[i] = fast[(size_t)i * stride];
    }
    harness_compare("resize_bicubic_ref vs torch", shape, want, got_ref, (size_t)count, 2e-6);
    harness_compare("resize_bicubic vs torch", shape, want, got_fast, (size_t)count, 2e-6);
    fs_free(x);
    fs_free(ref);
    fs_free(fast);
}

/* By hand (and PyTorch agrees): 2x upscale of the ramp 0 1 2 3. Scale 0.5, src
 * = d/2 - 1/4; weights at t = 1/4: cc2(1.25) = -0.10546875, cc1(.25) =
 * 0.87890625, cc1(.75) = 0.26171875, cc2(1.75) = -0.03515625; e.g. d = 0: taps
 * clamp to (0, 0, 0, 1) with t = 3/4, giving -0.10546875. All exact in float. */
static void bicubic_ramp(void) {
    const float want[8] = {-0.10546875f, 0.19140625f, 0.66796875f, 1.296875f,
                           1.703125f, 2.33203125f, 2.80859375f, 3.10546875f};
    float x[4 * 4], y[8 * 8], row[8], col[8];
    for (int r = 0; r < 4; r++)
        for (int cc = 0; cc < 4; cc++) x[r * 4 + cc] = (float)cc; /* ramp along w */
    fs_resize_desc d = {.n = 1, .c = 1, .in_h = 4, .in_w = 4, .out_h = 8, .out_w = 8,
                        .x_row0 = 0, .x_rows = 4, .y_row0 = 0, .y_rows = 8};
    hb_resize_bicubic(&d, x, y);
    for (int r = 0; r < 8; r++) {
        memcpy(row, y + r * 8, sizeof row);
        harness_identical("resize_bicubic ramp", "4 -> 8 along w, by hand", want, row, 8);
    }
    for (int r = 0; r < 4; r++)
        for (int cc = 0; cc < 4; cc++) x[r * 4 + cc] = (float)r; /* ramp along h */
    fs_resize_bicubic_ref(&d, x, y);
    for (int cc = 0; cc < 8; cc++) {
        for (int r = 0; r < 8; r++) col[r] = y[r * 8 + cc];
        harness_identical("resize_bicubic ramp", "4 -> 8 along h, by hand (ref)", want, col, 8);
    }
}

static void bicubic_case(int n, int c, int ih, int iw, int oh, int ow) {
    char shape[96];
    snprintf(shape, sizeof shape, "n=%d c=%d %dx%d -> %dx%d", n, c, ih, iw, oh, ow);
    size_t in_row = (size_t)iw * c, out_row = (size_t)ow * c;
    size_t nin = (size_t)n * ih * in_row, nout = (size_t)n * oh * out_row;
    float *x = harness_random(nin, -1.0f, 2.0f);
    float *ref = fs_alloc(nout * sizeof(float)), *fast = fs_alloc(nout * sizeof(float));
    float *strips = fs_alloc(nout * sizeof(float));
    fs_resize_desc d = {.n = n, .c = c, .in_h = ih, .in_w = iw, .out_h = oh, .out_w = ow,
                        .x_row0 = 0, .x_rows = ih, .y_row0 = 0, .y_rows = oh};
    fs_resize_bicubic_ref(&d, x, ref);
    hb_resize_bicubic(&d, x, fast);
    harness_compare("resize_bicubic", shape, ref, fast, nout, 1e-6);
    /* same float operations in the same order: the fast version is exact */
    harness_identical("resize_bicubic fast == ref", shape, ref, fast, nout);

    for (int trial = 0; trial < 2; trial++) {
        int saved = fs_threads_count(), y0 = 0, nstrips = 0;
        fs_threads_init(trial == 0 ? 1 : 3);
        while (y0 < oh) {
            int y1 = trial == 1 ? y0 + 1 : y0 + harness_int(1, oh - y0);
            fs_resize_desc s = d;
            s.y_row0 = y0;
            s.y_rows = y1 - y0;
            int r0, r1;
            fs_resize_bicubic_input_rows(&s, &r0, &r1);
            s.x_row0 = r0;
            s.x_rows = r1 - r0;
            float *xs = fs_alloc((size_t)n * (r1 - r0) * in_row * sizeof(float));
            float *ys = fs_alloc((size_t)n * (y1 - y0) * out_row * sizeof(float));
            for (int b = 0; b < n; b++)
                memcpy(xs + (size_t)b * (r1 - r0) * in_row, x + ((size_t)b * ih + r0) * in_row,
                       (size_t)(r1 - r0) * in_row * sizeof(float));
            hb_resize_bicubic(&s, xs, ys);
            for (int b = 0; b < n; b++)
                memcpy(strips + ((size_t)b * oh + y0) * out_row,
                       ys + (size_t)b * (y1 - y0) * out_row,
                       (size_t)(y1 - y0) * out_row * sizeof(float));
            fs_free(xs);
            fs_free(ys);
            y0 = y1;
            nstrips++;
        }
        fs_threads_init(saved);
        char sshape[160];
        snprintf(sshape, sizeof sshape, "%s, %d strips", shape, nstrips);
        harness_identical("resize_bicubic strips", sshape, fast, strips, nout);
    }
    fs_free(x);
    fs_free(ref);
    fs_free(fast);
    fs_free(strips);
}

/* The rows a strip reads, by brute force over the reference's taps. */
static void bicubic_input_rows_case(int ih, int oh) {
    int y0 = harness_int(0, oh - 1), y1 = harness_int(y0 + 1, oh), r0, r1;
    fs_resize_desc d = {.n = 1, .c = 1, .in_h = ih, .in_w = 1, .out_h = oh, .out_w = 1,
                        .x_row0 = 0, .x_rows = ih, .y_row0 = y0, .y_rows = y1 - y0};
    fs_resize_bicubic_input_rows(&d, &r0, &r1);
    int lo = ih, hi = -1;
    float scale = (float)ih / (float)oh;
    for (int oy = y0; oy < y1; oy++) {
        int i0 = (int)floorf(scale * ((float)oy + 0.5f) - 0.5f);
        for (int k = -1; k <= 2; k++) {
            int r = i0 + k < 0 ? 0 : i0 + k > ih - 1 ? ih - 1 : i0 + k;
            lo = r < lo ? r : lo;
            hi = r > hi ? r : hi;
        }
    }
    float want[2] = {(float)lo, (float)(hi + 1)}, got[2] = {(float)r0, (float)r1};
    char shape[64];
    snprintf(shape, sizeof shape, "in %d out %d rows [%d, %d)", ih, oh, y0, y1);
    harness_identical("resize_bicubic_input_rows", shape, want, got, 2);
}

void ops_cases_resize(void) {
    nearest_case(1, 1, 1, 1);
    nearest_case(2, 3, 5, 7);
    nearest_case(2, 16, 16, 320);
    for (int i = 0; i < 5; i++)
        nearest_case(harness_int(1, 2), harness_int(1, 9), harness_int(1, 9), harness_int(1, 40));

    bicubic_ramp();
    bicubic_golden(1, 1, 3, 4, 5, 7, golden_1x1_3x4_to_5x7, 1, 35);
    bicubic_golden(1, 2, 9, 6, 4, 5, golden_1x2_9x6_to_4x5, 1, 40);
    bicubic_golden(2, 3, 4, 5, 8, 10, golden_2x3_4x5_to_8x10_every37, 37, 13);

    bicubic_case(1, 3, 8, 8, 16, 16);   /* RGB 2x, FreeScale's stage step */
    bicubic_case(2, 4, 6, 10, 6, 10);   /* same size: identity */
    bicubic_case(1, 3, 1, 1, 5, 3);     /* one input pixel */
    bicubic_case(2, 3, 12, 9, 5, 4);    /* downscale */
    for (int i = 0; i < 12; i++)
        bicubic_case(harness_int(1, 2), harness_int(1, 5), harness_int(1, 20), harness_int(1, 20),
                     harness_int(1, 40), harness_int(1, 40));
    if (harness_on_cpu()) /* geometry, on the host */
        for (int i = 0; i < 20; i++)
            bicubic_input_rows_case(harness_int(1, 30), harness_int(1, 60));
}
