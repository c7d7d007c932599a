/* io: files from users and for users. safetensors (mmap, validated before use);
 * weight tables, the checkpoint layouts, PNG; later HDF5 checkpoints. */
#ifndef FS_IO_H
#define FS_IO_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
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
 * transpose a matrix, or turn a convolution from OIHW to OHWI. */
typedef enum {
    FS_WSLOT_PLAIN = 0,     /* the file's values in the file's order */
    FS_WSLOT_TRANSPOSE,     /* 2-D: the file's [a][b] becomes [b][a] */
    FS_WSLOT_CONV_OIHW,     /* 4-D convolution: the file's OIHW becomes OHWI */
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
/* The scratch fs_wslots_foreach_piece (so loading, the random fill) holds
 * at once: one piece buffer per thread. For memory plans. */
size_t fs_wslots_scratch_bytes(const fs_wslot *slots, size_t n);

/* Puts rows [r0, r1) of slot s, as the file orders them (src: (r1 - r0) x
 * numel / shape[0] floats), at their place in out (the slot's floats) as its
 * kind says. */
void fs_wslot_arrange(const fs_wslot *s, const float *src, int64_t r0, int64_t r1, float *out);
/* Converts every slot (bound to tensors of st; F32/F16/BF16/F64) into its
 * *dst, rearranged as its kind says. */
fs_code fs_wslots_load(const fs_wslot *slots, size_t n, const fs_safetensors *st,
                       const char *model, fs_error *err);
/* Rounds every slot's loaded floats to the nearest value of dt (F16 or BF16,
 * round to nearest even; F32: nothing): the weights a half-precision pipeline
 * holds, computed on in float32. */
fs_code fs_wslots_round(const fs_wslot *slots, size_t n, fs_dtype dt, fs_error *err);

/* ---------------------------------------------------------------- model core
 * (io/model.c) What every network's weights go through, whatever the
 * network: a network describes its tensors to the table builder (a short
 * list of calls in module order), then the core opens a checkpoint in
 * either layout, binds every slot by name and shape from the header alone,
 * loads (converting dtypes and layouts), rounds to a half precision, fills
 * deterministic random weights instead, copies the weights to a device
 * through the caller's functions, and frees. A network keeps its table
 * (slots, count), its open file and its block in its own struct and hands
 * them to these functions; its config, its names in the SGM layout and its
 * tree of weight pointers stay its own. */

/* Where a slot's values are in the file being bound: the file's name of the
 * tensor and, when rows > 0, rows [row0, row0 + shape[0]) of a tensor of
 * `rows` rows (a fused tensor). */
typedef struct fs_wfile {
    char name[320];
    int64_t row0, rows;
} fs_wfile;

/* The table builder. Start with {.model = "UNet", .err = err} (.files_on
 * = 1 to record file names beside the slots, each after file_prefix when
 * that is set); each add appends a slot; the
 * first failure is kept in rc and later adds do nothing; fs_wtable_finish
 * hands the table over (or frees it and returns rc). */
typedef struct fs_wtable {
    const char *model;
    fs_error *err;
    int files_on;
    const char *file_prefix;
    fs_wslot *slots;
    fs_wfile *files;      /* parallel to slots when files_on */
    size_t n, cap;
    fs_code rc;
} fs_wtable;

/* A slot named by fmt (printf), shape as in the file (PyTorch order); its
 * file name is the internal one. */
void fs_wtable_add(fs_wtable *t, float **dst, int kind, int ndim, const int64_t *shape,
                   const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* A slot whose file tensor has another name (and maybe a row range). */
void fs_wtable_add_from(fs_wtable *t, float **dst, int kind, int ndim, const int64_t *shape,
                        const char *internal, const char *file, int64_t row0, int64_t rows);
/* prefix.weight (shape, kind) and, when b is not NULL, prefix.bias
 * [shape[0]]: a Linear (2-D, PLAIN), a convolution (4-D, CONV_OIHW) or a
 * norm's gamma and beta (1-D). */
void fs_wtable_pair(fs_wtable *t, float **w, float **b, int kind, int ndim, const int64_t *shape,
                    const char *prefix);
/* The same with internal and file names of their own (prefix.weight /
 * prefix.bias in both). */
void fs_wtable_pair_from(fs_wtable *t, float **w, float **b, int ndim, const int64_t *shape,
                         const char *internal, const char *file);
fs_code fs_wtable_finish(fs_wtable *t, fs_wslot **slots, size_t *n, fs_wfile **files);

/* What a network's checkpoints look like. */
typedef struct fs_model_kind {
    const char *label;              /* "UNet", "VAE", "CLIP-L text encoder": messages */
    const char *subfolder;          /* its folder in a diffusers pipeline: "unet" */
    const char *const *files;       /* weight files in that folder, in preference order */
    const char *sgm_prefix;         /* its tensors in an SGM single file */
    const char *probe;              /* a tensor every diffusers file of it has */
} fs_model_kind;

/* The weight files of a diffusers ModelMixin folder (unet/, vae/). */
extern const char *const fs_diffusers_model_files[];

/* A checkpoint found and opened (header only). */
typedef struct fs_model_file {
    int sgm;                        /* an SGM single file (else diffusers) */
    char config[1100];              /* diffusers: its config.json */
    char weights[1100];             /* the safetensors file */
    fs_safetensors *st;
} fs_model_file;

/* path: a diffusers pipeline folder, the network's component folder, an SGM
 * single file (it has sgm_prefix tensors) or a diffusers weight file with
 * config.json beside it. Opens the weights (the caller closes f->st, or
 * hands it to fs_model_load); reads no config. */
fs_code fs_model_open(const char *path, const fs_model_kind *k, fs_model_file *f, fs_error *err);

/* What binding found (the networks' info structs have the same fields). */
typedef struct fs_model_stats {
    int layout;                     /* 0: diffusers (or random), 1: SGM */
    char weights_path[1024];
    size_t tensors_bound;
    size_t tensors_unexpected;      /* in the network's namespace but not bound */
    char first_unexpected[256];
    uint64_t params;
    uint64_t params_by_dtype[FS_DTYPE_COUNT];
} fs_model_stats;
/* Copies the stats into a network's info struct (same field names). */
#define FS_MODEL_STATS_TO(info, s)                                                      \
    do {                                                                                \
        (info)->layout = (s)->layout;                                                   \
        memcpy((info)->weights_path, (s)->weights_path, sizeof (info)->weights_path);    \
        (info)->tensors_bound = (s)->tensors_bound;                                     \
        (info)->tensors_unexpected = (s)->tensors_unexpected;                           \
        memcpy((info)->first_unexpected, (s)->first_unexpected,                         \
               sizeof (info)->first_unexpected);                                        \
        (info)->params = (s)->params;                                                   \
        memcpy((info)->params_by_dtype, (s)->params_by_dtype,                           \
               sizeof (info)->params_by_dtype);                                         \
    } while (0)

/* Binds every slot to f->st: slot i under files[i] (NULL: every slot under
 * its internal name). Counts parameters per dtype (the slots' floats) and
 * the tensors under the layout's prefix (SGM: k->sgm_prefix; diffusers: all)
 * that no slot took and ignore (NULL-ended full names, or NULL) does not
 * name. Reads the header only. */
fs_code fs_model_bind(fs_wslot *slots, size_t n, const fs_model_file *f, const fs_wfile *files,
                      const char *const *ignore, const fs_model_kind *k, fs_model_stats *stats,
                      fs_error *err);
/* Converts every bound slot into *block (allocated here when NULL;
 * *params, when given, gets the count), then closes *st: only the converted
 * copy remains. `path` names the checkpoint in the error when none is bound. */
fs_code fs_model_load(fs_wslot *slots, size_t n, fs_safetensors **st, float **block,
                      uint64_t *params, const char *model, const char *path, fs_error *err);
/* Deterministic random weights (tests, benchmarks, the embedded models):
 * allocates *block and fills every slot from its own Philox stream (FNV-1a
 * of its internal name, so a tensor's values do not depend on the rest of
 * the config), in PyTorch order before any layout conversion: matrices and
 * convolutions N(0, 1/fan_in); a norm's (a module named *norm*) gamma
 * 1 + 0.05 N and beta 0.05 N; other 1-D tensors 0.02 N. Any thread count
 * gives the same values. */
fs_code fs_model_random(fs_wslot *slots, size_t n, uint64_t seed, float **block,
                        fs_model_stats *stats, const char *model, fs_error *err);
/* fs_wslots_round after checking the weights are there. */
fs_code fs_model_round(const fs_wslot *slots, size_t n, const float *block, fs_dtype dt,
                       const char *model, fs_error *err);
/* Frees the table, the block and the file, and clears the pointers. */
void fs_model_release(fs_wslot **slots, size_t *n, float **block, fs_safetensors **st);

/* Device memory, through the caller's functions (io/ knows no device). */
typedef struct fs_wdevice {
    void *user;
    fs_code (*alloc)(void *user, void **dev, size_t bytes, fs_error *err);
    fs_code (*copy)(void *user, void *dev, const void *host, size_t bytes, fs_error *err);
    void (*free)(void *user, void *dev);
} fs_wdevice;
/* Copies every weight of the host table (loaded, in host_block) into one
 * device block laid out as host_block, and points each slot of dev (the
 * same table built again: same names in the same order) at its copy.
 * *dev_block: the device block (free it with d->free); NULL on failure. */
fs_code fs_model_upload(const fs_wslot *host, size_t n, const float *host_block, fs_wslot *dev,
                        size_t dev_n, const fs_wdevice *d, float **dev_block, const char *model,
                        fs_error *err);

/* config.json files (io/model_config.c), read with jansson: every error
 * names the file and the key. */
typedef struct fs_json_file {
    const char *path;
    struct json_t *root;
    fs_error *err;
} fs_json_file;
/* Parses path (a JSON object). Release with fs_json_close. */
fs_code fs_json_open(fs_json_file *f, const char *path, fs_error *err);
void fs_json_close(fs_json_file *f);
fs_code fs_json_bad_key(const fs_json_file *f, const char *key, const char *want);
/* An integer in [lo, hi] (booleans too when the range is [0, 1]); missing
 * or null: def, or an error when def < lo (required). */
fs_code fs_json_int(const fs_json_file *f, const char *key, int def, int lo, int hi, int *out);
/* A number; missing or null: def. */
fs_code fs_json_float(const fs_json_file *f, const char *key, float def, float *out);

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
