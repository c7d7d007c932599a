/* libFuzzer target for the safetensors reader: any byte string must either
 * be refused with an error or parse into tensors whose every byte range can
 * be read (ASan sees the exact input buffer, so a range check that lets a
 * tensor past the end is an overread it reports).
 * fuzz-sources: io/safetensors.c
 * fuzz-libs: -ljansson -lm */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "io/io.h"

#define READ_MAX_ELEMENTS (1u << 16)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static float dst[READ_MAX_ELEMENTS];
    fs_safetensors *st = NULL;
    fs_error err;
    if (fs_safetensors_parse(data, size, "fuzz-input", &st, &err) != FS_OK) {
        if (st != NULL || memchr(err.msg, 0, sizeof err.msg) == NULL) abort();
        return 0;
    }
    size_t n = fs_safetensors_count(st);
    for (size_t i = 0; i < n; i++) {
        const fs_st_tensor *t = fs_safetensors_at(st, i);
        if (fs_safetensors_find(st, t->name) != t) abort(); /* sorted, unique names */
        if (t->numel <= READ_MAX_ELEMENTS && fs_dtype_is_float(t->dtype) &&
            fs_safetensors_read_f32(st, t, dst, &err) != FS_OK)
            abort(); /* a validated float tensor must always convert */
        if (!fs_dtype_is_float(t->dtype) && t->end > t->begin) {
            /* touch the raw bytes of the other dtypes too */
            volatile uint8_t sink = ((const uint8_t *)t->data)[t->end - t->begin - 1];
            (void)sink;
        }
    }
    (void)fs_safetensors_meta(st, "format");
    fs_safetensors_close(st);
    return 0;
}
