/* io: files from users and for users. safetensors (mmap, validated before use);
 * later the checkpoint layouts, HDF5 checkpoints and PNG. */
#ifndef FS_IO_H
#define FS_IO_H

#include <stddef.h>
#include <stdint.h>
#include "core/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- safetensors
 * Format: u64 little-endian header length N, N bytes of JSON
 * {"name": {"dtype": "F16", "shape": [..], "data_offsets": [begin, end]}, ...,
 *  "__metadata__": {"k": "v"}}, then the data; offsets are relative to the
 * byte after the header. Validation before any use: N <= 100 MB and inside the
 * file, the header is a JSON object (parsed with jansson), known dtypes,
 * shapes non-negative without overflow, shape x dtype size == end - begin,
 * ranges inside the file, no overlaps, no duplicate names. */
#define FS_ST_MAX_HEADER (100u * 1000u * 1000u)
#define FS_ST_MAX_DIMS 8

typedef struct fs_st_tensor {
    const char *name;
    fs_dtype dtype;
    int ndim;
    int64_t shape[FS_ST_MAX_DIMS];
    uint64_t numel;
    uint64_t begin, end;     /* byte range, relative to the data section */
    const void *data;        /* into the mapping: may be unaligned, never cast it */
} fs_st_tensor;

typedef struct fs_safetensors fs_safetensors;

fs_code fs_safetensors_open(const char *path, fs_safetensors **out, fs_error *err);
/* Same validation over a buffer the caller keeps alive (fuzzing, tests);
 * `label` names it in errors. */
fs_code fs_safetensors_parse(const void *buf, size_t len, const char *label,
                             fs_safetensors **out, fs_error *err);
void fs_safetensors_close(fs_safetensors *st);

const char *fs_safetensors_path(const fs_safetensors *st);
size_t fs_safetensors_count(const fs_safetensors *st);
const fs_st_tensor *fs_safetensors_at(const fs_safetensors *st, size_t i); /* sorted by name */
const fs_st_tensor *fs_safetensors_find(const fs_safetensors *st, const char *name);
/* __metadata__ value for key, or NULL. */
const char *fs_safetensors_meta(const fs_safetensors *st, const char *key);

/* Converts the tensor to float32 into dst (numel floats); copies, so unaligned
 * data is fine. Errors name the file and the tensor. */
fs_code fs_safetensors_read_f32(const fs_safetensors *st, const fs_st_tensor *t, float *dst,
                                fs_error *err);

/* Writer (tests, golden files, sparse checkpoints): writes to path.tmp and
 * renames, so a failed write never replaces a good file. If data[i] is NULL
 * the tensor's bytes are left as a hole (sparse file, nothing written). */
typedef struct fs_st_entry {
    const char *name;
    fs_dtype dtype;
    int ndim;
    int64_t shape[FS_ST_MAX_DIMS];
    const void *data;
} fs_st_entry;
fs_code fs_safetensors_write(const char *path, const fs_st_entry *entries, size_t count,
                             const char *const *meta_kv /* key, value, ..., NULL */,
                             fs_error *err);

#ifdef __cplusplus
}
#endif
#endif
