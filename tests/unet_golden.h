/* What the UNet golden tests share (tests/test_unet_golden.c on the CPU,
 * tests/test_unet_cuda.c on the GPU): a trace that keeps every block's
 * output, relative L2 error, and reading io.safetensors tensors as floats.
 * Header-only (static): each test is one program. */
#ifndef FS_TESTS_UNET_GOLDEN_H
#define FS_TESTS_UNET_GOLDEN_H
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "io/io.h"
#include "unet/unet.h"

/* ---------------------------------------------------------------- trace */

enum { MAX_BLOCKS = 16 };
typedef struct {
    int count;
    char name[MAX_BLOCKS][32];
    float *data[MAX_BLOCKS];
    size_t numel[MAX_BLOCKS];
} blocks;

static void on_block(void *user, const char *name, const float *x, int n, int rows, int w,
                     int c) {
    blocks *b = user;
    if (b->count >= MAX_BLOCKS) return;
    int i = b->count++;
    snprintf(b->name[i], sizeof b->name[i], "%s", name);
    b->numel[i] = (size_t)n * rows * w * c;
    b->data[i] = malloc(b->numel[i] * sizeof(float));
    memcpy(b->data[i], x, b->numel[i] * sizeof(float));
}

__attribute__((unused)) static void blocks_free(blocks *b) {
    for (int i = 0; i < b->count; i++) free(b->data[i]);
    b->count = 0;
}

/* ---------------------------------------------------------------- helpers */

__attribute__((unused)) static double rel_l2(const float *a, const float *ref, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)ref[i];
        num += d * d;
        den += (double)ref[i] * ref[i];
    }
    if (!(num == num)) return INFINITY;
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* A tensor of io.safetensors as floats (malloc'ed), or NULL with a failed check. */
__attribute__((unused)) static float *io_tensor(const fs_safetensors *io, const char *name, const fs_st_tensor **info) {
    const fs_st_tensor *t = fs_safetensors_find(io, name);
    CHECK(t != NULL, "io.safetensors has no tensor %s", name);
    if (!t) return NULL;
    float *v = malloc((t->numel ? t->numel : 1) * sizeof(float));
    fs_error err = {0};
    fs_code rc = fs_safetensors_read_f32(io, t, v, &err);
    CHECK(rc == FS_OK, "%s: %s", name, err.msg);
    if (rc) { free(v); return NULL; }
    if (info) *info = t;
    return v;
}

#endif
