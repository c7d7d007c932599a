/* core: dtype conversions (all 65536 half values against the compiler's
 * _Float16, rounding at every midpoint), Philox known answers, normal
 * sampler statistics, arenas and counted memory, error values. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "check.h"
#include "core/core.h"

static uint32_t fbits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float bitsf(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

static void test_f16_all_values(void) {
    int bad_to32 = 0, bad_round = 0, nans = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        uint16_t hv = (uint16_t)h;
        _Float16 ref;
        memcpy(&ref, &hv, 2);
        float want = (float)ref, got = fs_f16_to_f32(hv);
        if (isnan(want)) {
            nans++;
            if (!isnan(got)) bad_to32++;
            /* a quiet NaN keeps its payload and sign through both directions */
            if ((hv & 0x200) && fs_f32_to_f16(got) != hv) bad_round++;
            continue;
        }
        if (fbits(want) != fbits(got)) bad_to32++;   /* exact, incl. -0, Inf, subnormals */
        if (fs_f32_to_f16(got) != hv) bad_round++;   /* round trip is the identity */
    }
    CHECK(nans == 2 * 1023, "NaN count %d", nans);
    CHECK(bad_to32 == 0, "%d half values convert wrongly to float", bad_to32);
    CHECK(bad_round == 0, "%d half values do not round-trip", bad_round);
}

/* f32 -> f16 rounding against the compiler's conversion at every midpoint
 * between adjacent halves, one ulp either side, and random floats. */
static void test_f16_rounding(void) {
    int bad = 0, tried = 0;
    for (uint32_t h = 0; h < 0x7c00; h++) {
        float lo = fs_f16_to_f32((uint16_t)h), hi = fs_f16_to_f32((uint16_t)(h + 1));
        float mid = (float)(((double)lo + (double)hi) / 2);  /* exact: halves have 11 bits */
        float cases[3] = {mid, nextafterf(mid, 0), nextafterf(mid, INFINITY)};
        for (int s = 0; s < 2; s++)
            for (int i = 0; i < 3; i++) {
                float f = s ? -cases[i] : cases[i];
                _Float16 r = (_Float16)f;
                uint16_t want;
                memcpy(&want, &r, 2);
                tried++;
                if (fs_f32_to_f16(f) != want) bad++;
            }
    }
    uint64_t state = 88172645463325252ull;
    for (int i = 0; i < 4000000; i++) {
        state ^= state << 13; state ^= state >> 7; state ^= state << 17;
        float f = bitsf((uint32_t)state);
        _Float16 r = (_Float16)f;
        uint16_t want;
        memcpy(&want, &r, 2);
        uint16_t got = fs_f32_to_f16(f);
        tried++;
        if (isnan(f) ? !isnan(fs_f16_to_f32(got)) : got != want) bad++;
    }
    CHECK(bad == 0, "%d of %d floats round to the wrong half", bad, tried);
    CHECK(fs_f32_to_f16(65504.f) == 0x7bff, "max half");
    CHECK(fs_f32_to_f16(65520.f) == 0x7c00, "65520 rounds to Inf");
    CHECK(fs_f32_to_f16(-INFINITY) == 0xfc00, "-Inf");
    CHECK(fs_f32_to_f16(0x1p-25f) == 0x0000, "2^-25 ties to even zero");
    CHECK(fs_f32_to_f16(0x1.8p-25f) == 0x0001, "1.5 * 2^-25 rounds up to the smallest subnormal");
    CHECK(isnan(fs_f16_to_f32(fs_f32_to_f16(NAN))), "NaN stays NaN");
}

static void test_bf16(void) {
    int bad = 0;
    for (uint32_t b = 0; b < 65536; b++) {
        float f = fs_bf16_to_f32((uint16_t)b);
        if (fbits(f) != b << 16) bad++;                    /* exact by definition */
        if (!isnan(f) && fs_f32_to_bf16(f) != b) bad++;   /* round trip */
        if (isnan(f) && !isnan(fs_bf16_to_f32(fs_f32_to_bf16(f)))) bad++;
    }
    CHECK(bad == 0, "%d bf16 values wrong", bad);
    /* ties to even at bit 16 */
    CHECK(fs_f32_to_bf16(bitsf(0x3f808000u)) == 0x3f80, "tie rounds down to even");
    CHECK(fs_f32_to_bf16(bitsf(0x3f818000u)) == 0x3f82, "tie rounds up to even");
    CHECK(fs_f32_to_bf16(bitsf(0x3f808001u)) == 0x3f81, "above tie rounds up");
    CHECK(fs_f32_to_bf16(bitsf(0x7f7fffffu)) == 0x7f80, "FLT_MAX rounds to Inf");
    float sub = bitsf(0x00010000u);  /* a float subnormal that bf16 holds exactly */
    CHECK(fs_f32_to_bf16(sub) == 0x0001, "subnormal kept");
}

static void test_convert(void) {
    unsigned char buf[1 + 8 * 4];
    float want[4] = {1.5f, -2.25f, 65504.f, 0x1p-24f}, got[4];
    uint16_t h[4];
    for (int i = 0; i < 4; i++) h[i] = fs_f32_to_f16(want[i]);
    memcpy(buf + 1, h, sizeof h);  /* deliberately unaligned */
    CHECK(fs_convert_to_f32(got, buf + 1, 4, FS_DTYPE_F16, NULL) == FS_OK, "f16");
    CHECK(!memcmp(got, want, sizeof want), "f16 values");
    memcpy(buf + 1, want, sizeof want);
    CHECK(fs_convert_to_f32(got, buf + 1, 4, FS_DTYPE_F32, NULL) == FS_OK, "f32");
    CHECK(!memcmp(got, want, sizeof want), "f32 values");
    fs_error err = {0};
    CHECK(fs_convert_to_f32(got, buf, 1, FS_DTYPE_I64, &err) == FS_ERR_UNSUPPORTED, "i64");
    CHECK(strstr(err.msg, "I64") != NULL, "message names the dtype: %s", err.msg);
    fs_dtype dt;
    CHECK(fs_dtype_from_name("BF16", &dt) == 0 && dt == FS_DTYPE_BF16, "BF16 name");
    CHECK(fs_dtype_from_name("F17", &dt) == -1, "unknown name");
    CHECK(fs_dtype_size(FS_DTYPE_F8_E4M3) == 1 && fs_dtype_size(FS_DTYPE_I64) == 8, "sizes");
}

/* Random123's published known-answer vectors (tests/kat_vectors). */
static void test_philox_kat(void) {
    static const uint32_t kat[3][10] = {
        {0, 0, 0, 0, 0, 0, 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
        {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0x408f276d,
         0x41c83b0e, 0xa20bc7c6, 0x6d5451fd},
        {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0, 0xd16cfe09,
         0x94fdcceb, 0x5001e420, 0x24126ea1},
    };
    for (int i = 0; i < 3; i++) {
        uint32_t out[4];
        fs_philox4x32_10(kat[i], kat[i] + 4, out);
        CHECK(!memcmp(out, kat[i] + 6, sizeof out), "KAT %d: %08x %08x %08x %08x", i, out[0],
              out[1], out[2], out[3]);
    }
}

static void test_normal(void) {
    const size_t n = 1 << 20;
    float *z = fs_alloc(n * sizeof(float));
    fs_rng_fill_normal(z, n, 42, 7, 1000);
    double s = 0, s2 = 0, s4 = 0;
    int mismatch = 0;
    for (size_t i = 0; i < n; i++) {
        s += z[i]; s2 += (double)z[i] * z[i]; s4 += (double)z[i] * z[i] * z[i] * z[i];
        if (i % 4099 == 0 && fbits(z[i]) != fbits(fs_rng_normal(42, 7, 1000 + i))) mismatch++;
    }
    double mean = s / n, var = s2 / n - mean * mean, kurt = s4 / n;
    CHECK(fabs(mean) < 5 / sqrt((double)n), "mean %g", mean);
    CHECK(fabs(var - 1) < 5 * sqrt(2.0 / n), "variance %g", var);
    CHECK(fabs(kurt - 3) < 0.05, "fourth moment %g", kurt);
    CHECK(mismatch == 0, "fill and single draws differ");
    /* a strip drawn at its global offset equals the slice of the whole */
    float part[100];
    fs_rng_fill_normal(part, 100, 42, 7, 1000 + 777);
    CHECK(!memcmp(part, z + 777, sizeof part), "offset fill equals slice");
    /* other streams and seeds are different numbers */
    CHECK(fs_rng_normal(42, 8, 1000) != z[0] && fs_rng_normal(43, 7, 1000) != z[0], "streams");
    fs_free(z);
    int hist[7] = {0};
    for (int i = 0; i < 70000; i++) {
        int64_t v = fs_rng_randint(1, 2, (uint64_t)i, -3, 3);
        if (v < -3 || v > 3) { CHECK(0, "randint out of range: %lld", (long long)v); break; }
        hist[v + 3]++;
    }
    for (int i = 0; i < 7; i++) CHECK(abs(hist[i] - 10000) < 500, "randint bucket %d: %d", i, hist[i]);
    for (int i = 0; i < 1000; i++) {
        double u = fs_rng_uniform(5, 0, (uint64_t)i);
        if (!(u >= 0 && u < 1)) { CHECK(0, "uniform out of range %g", u); break; }
    }
}

static void test_memory(void) {
    size_t before = fs_mem_current();
    fs_mem_reset_peak();
    void *p = fs_alloc(1000), *q = fs_alloc(3000);
    CHECK(((uintptr_t)p & 63) == 0 && ((uintptr_t)q & 63) == 0, "aligned");
    CHECK(fs_mem_current() == before + 4000, "current %zu", fs_mem_current() - before);
    fs_free(p);
    CHECK(fs_mem_peak() >= before + 4000, "peak");
    fs_free(q);
    CHECK(fs_mem_current() == before, "freed");
    fs_error err = {0};
    fs_arena *a = fs_arena_create(1024, &err);
    CHECK(a != NULL, "arena");
    void *x = fs_arena_alloc(a, 100);
    size_t mark = fs_arena_mark(a);
    void *y = fs_arena_alloc(a, 200);
    CHECK(x && y && ((uintptr_t)y & 63) == 0 && (char *)y >= (char *)x + 100, "bump");
    CHECK(fs_arena_alloc(a, 2000) == NULL, "full arena returns NULL");
    fs_arena_reset(a, mark);
    CHECK(fs_arena_alloc(a, 200) == y, "reset reuses");
    CHECK(fs_arena_peak(a) >= 328, "arena peak %zu", fs_arena_peak(a));
    fs_arena_destroy(a);
    CHECK(fs_mem_peak_rss() > 0, "rss");
}

static void test_errors(void) {
    fs_error err = {0};
    CHECK(fs_fail(&err, FS_ERR_FORMAT, "tensor %s: bad", "a.b") == FS_ERR_FORMAT, "code");
    fs_error_prefix(&err, "%s: ", "x.safetensors");
    CHECK(!strcmp(err.msg, "x.safetensors: tensor a.b: bad"), "%s", err.msg);
    CHECK(fs_fail(NULL, FS_ERR_IO, "x") == FS_ERR_IO, "NULL error is allowed");
}

int main(void) {
    fs_threads_init(0);
    test_f16_all_values();
    test_f16_rounding();
    test_bf16();
    test_convert();
    test_philox_kat();
    test_normal();
    test_memory();
    test_errors();
    return check_report("test_core");
}
