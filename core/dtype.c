/* Element types of weight files and their exact conversion to float32. */
#include <math.h>
#include <string.h>
#include "core/core.h"

static const struct { const char *name; size_t size; } dtype_info[FS_DTYPE_COUNT] = {
    [FS_DTYPE_F32] = {"F32", 4},   [FS_DTYPE_F16] = {"F16", 2},  [FS_DTYPE_BF16] = {"BF16", 2},
    [FS_DTYPE_F64] = {"F64", 8},   [FS_DTYPE_I64] = {"I64", 8},  [FS_DTYPE_I32] = {"I32", 4},
    [FS_DTYPE_I16] = {"I16", 2},   [FS_DTYPE_I8] = {"I8", 1},    [FS_DTYPE_U64] = {"U64", 8},
    [FS_DTYPE_U32] = {"U32", 4},   [FS_DTYPE_U16] = {"U16", 2},  [FS_DTYPE_U8] = {"U8", 1},
    [FS_DTYPE_BOOL] = {"BOOL", 1}, [FS_DTYPE_F8_E4M3] = {"F8_E4M3", 1},
    [FS_DTYPE_F8_E5M2] = {"F8_E5M2", 1},
};

size_t fs_dtype_size(fs_dtype dt) { return (unsigned)dt < FS_DTYPE_COUNT ? dtype_info[dt].size : 0; }
const char *fs_dtype_name(fs_dtype dt) {
    return (unsigned)dt < FS_DTYPE_COUNT ? dtype_info[dt].name : "?";
}
int fs_dtype_from_name(const char *name, fs_dtype *out) {
    for (int i = 0; i < FS_DTYPE_COUNT; i++)
        if (!strcmp(name, dtype_info[i].name)) { *out = (fs_dtype)i; return 0; }
    return -1;
}
int fs_dtype_is_float(fs_dtype dt) {
    return dt == FS_DTYPE_F32 || dt == FS_DTYPE_F16 || dt == FS_DTYPE_BF16 || dt == FS_DTYPE_F64;
}

static float bits_to_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static uint32_t f32_to_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

/* Exact: every half value (normal, subnormal, +-0, Inf, NaN) maps to the
 * float with the same value; NaN keeps its payload in the high mantissa bits. */
float fs_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    if (exp == 0x1f) return bits_to_f32(sign | 0x7f800000u | (man << 13));
    if (exp == 0) {
        if (man == 0) return bits_to_f32(sign);
        /* subnormal: man * 2^-24, exact in float */
        float v = (float)man * 0x1p-24f;
        return sign ? -v : v;
    }
    return bits_to_f32(sign | ((exp + 112) << 23) | (man << 13));
}

/* Round to nearest, ties to even; overflow to Inf; NaN stays NaN (quiet). */
uint16_t fs_f32_to_f16(float f) {
    uint32_t u = f32_to_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return sign | 0x7e00 | (uint16_t)((a >> 13) & 0x3ff);  /* NaN */
    if (a >= 0x477ff000u) return sign | 0x7c00;  /* >= 65520 rounds to Inf */
    if (a < 0x38800000u) {
        /* result is subnormal or zero: value / 2^-24, rounded to even */
        float v = bits_to_f32(a) * 0x1p24f;          /* exact scaling */
        float r = nearbyintf(v);                     /* default mode: ties to even */
        return sign | (uint16_t)r;                   /* r <= 1024: 1024 is the smallest normal */
    }
    uint32_t mant_round = a + 0x0fffu + ((a >> 13) & 1u);  /* ties to even at bit 13 */
    return sign | (uint16_t)((mant_round - 0x38000000u) >> 13);
}

float fs_bf16_to_f32(uint16_t b) { return bits_to_f32((uint32_t)b << 16); }

uint16_t fs_f32_to_bf16(float f) {
    uint32_t u = f32_to_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x0040);  /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

fs_code fs_convert_to_f32(float *dst, const void *src, size_t n, fs_dtype dt, fs_error *err) {
    const unsigned char *s = src;
    switch (dt) {
    case FS_DTYPE_F32:
        memcpy(dst, src, n * 4);  /* memcpy: src may be unaligned */
        return FS_OK;
    case FS_DTYPE_F16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, s + 2 * i, 2);
            dst[i] = fs_f16_to_f32(h);
        }
        return FS_OK;
    case FS_DTYPE_BF16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, s + 2 * i, 2);
            dst[i] = fs_bf16_to_f32(h);
        }
        return FS_OK;
    case FS_DTYPE_F64:
        for (size_t i = 0; i < n; i++) {
            double d;
            memcpy(&d, s + 8 * i, 8);
            dst[i] = (float)d;
        }
        return FS_OK;
    default:
        return fs_fail(err, FS_ERR_UNSUPPORTED, "cannot convert %s tensors to float32",
                       fs_dtype_name(dt));
    }
}
