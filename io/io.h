/* io: files from users and for users. safetensors (mmap, validated before use);
 * weight tables, the checkpoint layouts, PNG; later HDF5 checkpoints. */
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

/* ---------------------------------------------------------------- weight tables
 * (io/weights.c) A model's weights as a table of slots, shared by the
 * networks' loaders: each slot is one tensor of a checkpoint (the model's
 * internal name, its shape as stored in the file) and the pointer that gets
 * its float32 copy. A loader builds the table for its config, allocates it
 * (fs_wslots_alloc), binds each slot from the file's header alone
 * (fs_wslot_bind: name, shape, dtype; no weight page is read), then converts
 * everything (fs_wslots_load). Layout differences are slot properties: a
 * slot may take a row range of a fused file tensor (OpenCLIP's in_proj),
 * transpose a matrix, or hand its rows to the model's own hook (OIHW). */
typedef enum {
    FS_WSLOT_PLAIN = 0,     /* the file's values in the file's order */
    FS_WSLOT_TRANSPOSE,     /* 2-D: the file's [a][b] becomes [b][a] */
    FS_WSLOT_CUSTOM,        /* rows go through the table's fs_wslot_rows_fn */
} fs_wslot_kind;

typedef struct fs_wslot {
    char name[160];           /* internal name (messages, random-init streams) */
    int ndim;
    int64_t shape[4];         /* the slot's shape in the file (PyTorch order) */
    float **dst;              /* receives the converted floats */
    int kind;                 /* fs_wslot_kind */
    const fs_st_tensor *src;  /* set by fs_wslot_bind */
    int64_t src_row0;         /* the slot is rows [src_row0, src_row0 + shape[0]) of src */
} fs_wslot;

uint64_t fs_wslot_numel(const fs_wslot *s);
/* Rearranges `rows` converted rows of slot s (FS_WSLOT_CUSTOM): src and dst
 * are both rows x (numel / shape[0]) floats, dst at the rows' place. */
typedef void (*fs_wslot_rows_fn)(const fs_wslot *s, const float *src, float *dst, int64_t rows);

/* One fs_alloc block for all slots (each 64-byte aligned), every *dst pointed
 * into it. *params = the number of floats; the caller fs_frees *block. */
fs_code fs_wslots_alloc(fs_wslot *slots, size_t n, const char *model, float **block,
                        uint64_t *params, fs_error *err);

/* Binds s to tensor file_name of st. file_rows = 0: the tensor has exactly
 * the slot's shape; file_rows > 0: the tensor is [file_rows, shape[1..]] and
 * the slot takes its rows [row0, row0 + shape[0]). Errors (missing,
 * misshapen, not a float dtype) name the file, `model`, the file's name of
 * the tensor and, when it differs, the internal one. */
fs_code fs_wslot_bind(fs_wslot *s, const fs_safetensors *st, const char *file_name, int64_t row0,
                      int64_t file_rows, const char *model, fs_error *err);

/* Tensors of st under prefix ("" for all) that no slot is bound to and that
 * are not named in ignore (NULL-terminated full names, or NULL): returns how
 * many, and copies the first (in name order) into first. */
size_t fs_wslots_unbound(const fs_wslot *slots, size_t n, const fs_safetensors *st,
                         const char *prefix, const char *const *ignore, char *first,
                         size_t first_cap);

/* Work on every slot in pieces of whole rows (about 1M floats, or one row),
 * spread over the thread pool: fn gets the rows [r0, r1) of slot s and a
 * scratch of max(1M, one row) floats. The error returned is the one of the
 * first failing piece in table order, whatever the thread timing. */
typedef fs_code (*fs_wslot_piece_fn)(void *user, const fs_wslot *s, int64_t r0, int64_t r1,
                                     float *tmp, fs_error *err);
fs_code fs_wslots_foreach_piece(const fs_wslot *slots, size_t n, fs_wslot_piece_fn fn,
                                void *user, const char *model, fs_error *err);

/* Converts every slot (bound to tensors of st; F32/F16/BF16/F64) into its
 * *dst; custom may be NULL when no slot is FS_WSLOT_CUSTOM. */
fs_code fs_wslots_load(const fs_wslot *slots, size_t n, const fs_safetensors *st,
                       fs_wslot_rows_fn custom, const char *model, fs_error *err);
/* Rounds every slot's loaded floats to the nearest value of dt (F16 or BF16,
 * round to nearest even; F32: nothing): the weights a half-precision pipeline
 * holds, computed on in float32. */
fs_code fs_wslots_round(const fs_wslot *slots, size_t n, fs_dtype dt, fs_error *err);

/* ---------------------------------------------------------------- diffusers folders
 * A diffusers component: path is a pipeline folder holding subfolder/ (e.g.
 * "unet", "text_encoder_2") or that component folder itself. Fills config
 * with <dir>/config.json and weights with the first of files[] (NULL-ended)
 * found in dir. Errors name the path and `model`. */
fs_code fs_diffusers_component(const char *path, const char *subfolder,
                               const char *const *files, const char *model, char *config,
                               char *weights, size_t cap, fs_error *err);
int fs_is_file(const char *path);


/* ---------------------------------------------------------------- PNG (io/png.c, libpng)
 * Writer: 8-bit RGB (channels 3) or grey (1), rows streamed top to bottom so
 * an image far larger than memory can be written from gathered strips. It
 * writes <path>.tmp.<pid> and renames it over path only in fs_png_finish: a
 * failed or aborted render never replaces a good image. text_kv: key, value,
 * ..., NULL: tEXt chunks (iTXt when the value is not Latin-1), written before
 * the image data as other SDXL tools do ("parameters", "prompt", ...). */
typedef struct fs_png_writer fs_png_writer;
fs_code fs_png_create(const char *path, int width, int height, int channels,
                      const char *const *text_kv, fs_png_writer **out, fs_error *err);
/* count rows of width * channels bytes each. */
fs_code fs_png_write_rows(fs_png_writer *w, const uint8_t *rows, int count, fs_error *err);
/* All height rows must have been written; then the file is renamed into place. */
fs_code fs_png_finish(fs_png_writer *w, fs_error *err);
/* Drops the temporary file (safe on NULL, and after a failed call). A failed
 * fs_png_write_rows / fs_png_finish has already removed the temporary; the
 * writer then only needs fs_png_abort to be freed. A successful
 * fs_png_finish frees the writer itself. */
void fs_png_abort(fs_png_writer *w);

/* diffusers' postprocess: u8 = round(clamp(x / 2 + 0.5, 0, 1) * 255) for n
 * values of an image in [-1, 1]. */
void fs_image_to_u8(const float *x, size_t n, uint8_t *out);
/* The inverse diffusers applies to an input image: x = u8 / 255 * 2 - 1. */
void fs_image_from_u8(const uint8_t *u8, size_t n, float *out);

/* Reader (input images, masks): any PNG libpng reads (palette, grey, 16-bit,
 * alpha, interlaced) converted to 8-bit with `channels` = 3 (RGB; grey
 * replicated, alpha dropped over nothing) or 1 (grey: luminance as
 * libpng's rgb_to_gray, alpha dropped). *pixels is malloc'ed ([h][w][ch]).
 * Refuses images over max_pixels (0: 2^31) before allocating. Errors name
 * the file and libpng's reason; never longjmp out to the caller. */
fs_code fs_png_read(const char *path, int channels, uint64_t max_pixels, uint8_t **pixels,
                    int *width, int *height, fs_error *err);
fs_code fs_png_read_mem(const void *buf, size_t len, const char *label, int channels,
                        uint64_t max_pixels, uint8_t **pixels, int *width, int *height,
                        fs_error *err);
/* The text chunks of a PNG as key, value, ..., NULL (malloc'ed strings and
 * array: free with fs_png_text_free). */
fs_code fs_png_read_text(const char *path, char ***kv, fs_error *err);
void fs_png_text_free(char **kv);

#ifdef __cplusplus
}
#endif
#endif
