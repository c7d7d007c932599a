/* libFuzzer target for the PNG reader (fs_png_read_mem, max_pixels 2^20):
 * any byte string must be refused with an error (outputs cleared, message
 * terminated) or decode into w x h x channels bytes that can all be read
 * (ASan sees the exact allocation). Bit 0 of the input's length picks the
 * output (1 grey / 3 RGB); when bit 1 is set the harness first rewrites every
 * chunk's CRC on a copy, so mutations reach the chunk parsers and the
 * decompressor instead of stopping at the CRC check (the other half of the
 * inputs keeps the CRC paths fuzzed). Seeds: tools/gen_png_corpus.py.
 * fuzz-sources: io/png.c
 * fuzz-libs: -lpng16 -lz -lm */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include "io/io.h"

#define MAX_PIXELS (1u << 20)

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void fix_crcs(uint8_t *b, size_t len) {
    size_t p = 8;
    while (p + 12 <= len) {
        uint32_t n = be32(b + p);
        if (n > len - p - 12) break;
        uint32_t crc = (uint32_t)crc32(0, b + p + 4, n + 4);
        b[p + 8 + n] = (uint8_t)(crc >> 24);
        b[p + 9 + n] = (uint8_t)(crc >> 16);
        b[p + 10 + n] = (uint8_t)(crc >> 8);
        b[p + 11 + n] = (uint8_t)crc;
        p += 12 + (size_t)n;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const int channels = (size & 1) ? 1 : 3;
    uint8_t *copy = NULL;
    const uint8_t *in = data;
    if (size & 2) {
        copy = malloc(size ? size : 1);
        if (!copy) return 0;
        memcpy(copy, data, size);
        fix_crcs(copy, size);
        in = copy;
    }
    uint8_t *px = (uint8_t *)1;
    int w = -1, h = -1;
    fs_error err;
    fs_code rc = fs_png_read_mem(in, size, "fuzz-input", channels, MAX_PIXELS, &px, &w, &h, &err);
    if (rc != FS_OK) {
        if (px != NULL || w != 0 || h != 0 || memchr(err.msg, 0, sizeof err.msg) == NULL) abort();
    } else {
        if (!px || w <= 0 || h <= 0 || (uint64_t)w * (uint64_t)h > MAX_PIXELS) abort();
        size_t n = (size_t)w * (size_t)h * (size_t)channels;
        unsigned sum = 0;
        for (size_t i = 0; i < n; i += 61) sum += px[i];
        volatile unsigned sink = sum + px[n - 1];
        (void)sink;
        free(px);
    }
    free(copy);
    return 0;
}
