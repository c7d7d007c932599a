/* core: tensors, dtypes, arenas, threads, errors, logging and the counter-based RNG.
 * The bottom layer of freescale: it knows nothing of models, ranks or files. */
#ifndef FS_CORE_H
#define FS_CORE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- errors
 * Errors are values: a code plus a message saying what went wrong and where.
 * Functions that can fail on user input return fs_code and fill an fs_error
 * (which may be NULL when the caller does not want the text). Nothing in the
 * engine calls abort() or exit() on bad input. */
typedef enum {
    FS_OK = 0,
    FS_ERR_INVALID,     /* bad argument or value */
    FS_ERR_IO,          /* open/read/write/mmap failed */
    FS_ERR_FORMAT,      /* a file's content is malformed */
    FS_ERR_NOMEM,       /* allocation or arena exhausted */
    FS_ERR_RANGE,       /* a size or index out of bounds */
    FS_ERR_COMM,        /* inter-rank communication failed */
    FS_ERR_UNSUPPORTED, /* valid but not implemented (dtype, option) */
} fs_code;

typedef struct fs_error {
    fs_code code;
    char msg[1024];
} fs_error;

/* Sets err (if non-NULL) to code and the printf-style message; returns code. */
fs_code fs_fail(fs_error *err, fs_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prepends context ("loading x.safetensors: ") to an existing message. */
void fs_error_prefix(fs_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *fs_code_name(fs_code code);

/* ---------------------------------------------------------------- logging */
typedef enum { FS_LOG_ERROR = 0, FS_LOG_WARN, FS_LOG_INFO, FS_LOG_DEBUG } fs_log_level;
void fs_log_set_level(fs_log_level level);
void fs_log(fs_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---------------------------------------------------------------- dtypes
 * Every dtype a safetensors file may name, so sizes can be validated; only
 * F32, F16, BF16 (and F64) convert to float activations. */
typedef enum {
    FS_DTYPE_F32 = 0, FS_DTYPE_F16, FS_DTYPE_BF16, FS_DTYPE_F64,
    FS_DTYPE_I64, FS_DTYPE_I32, FS_DTYPE_I16, FS_DTYPE_I8,
    FS_DTYPE_U64, FS_DTYPE_U32, FS_DTYPE_U16, FS_DTYPE_U8, FS_DTYPE_BOOL,
    FS_DTYPE_F8_E4M3, FS_DTYPE_F8_E5M2,
    FS_DTYPE_COUNT
} fs_dtype;

size_t fs_dtype_size(fs_dtype dt);
const char *fs_dtype_name(fs_dtype dt);            /* safetensors spelling: "F16" */
int fs_dtype_from_name(const char *name, fs_dtype *out); /* 0 on success, -1 unknown */
int fs_dtype_is_float(fs_dtype dt);                /* converts to f32 (F32/F16/BF16/F64) */

/* Exact conversions: f16/bf16 -> f32 is exact for every value (NaN payload kept
 * quiet, Inf, subnormals); f32 -> f16/bf16 rounds to nearest even. */
float fs_f16_to_f32(uint16_t h);
uint16_t fs_f32_to_f16(float f);
float fs_bf16_to_f32(uint16_t b);
uint16_t fs_f32_to_bf16(float f);
/* Converts n elements at src (any alignment) of dtype dt into dst. */
fs_code fs_convert_to_f32(float *dst, const void *src, size_t n, fs_dtype dt, fs_error *err);

/* ---------------------------------------------------------------- tensors
 * Activations are NHWC float32: a strip of rows is one contiguous block.
 * A tensor does not own its memory; arenas do. */
typedef struct fs_tensor {
    float *data;
    int n, h, w, c;
} fs_tensor;

static inline size_t fs_tensor_numel(const fs_tensor *t) {
    return (size_t)t->n * (size_t)t->h * (size_t)t->w * (size_t)t->c;
}
/* Pointer to element (b, y, x, ch). */
static inline float *fs_tensor_at(const fs_tensor *t, int b, int y, int x, int ch) {
    return t->data + ((((size_t)b * t->h + y) * t->w + x) * t->c + ch);
}

/* ---------------------------------------------------------------- memory
 * Large buffers go through fs_alloc/fs_free (64-byte aligned) so the process
 * peak is counted. A forward pass takes its temporaries from an arena: one
 * block reserved up front, bump allocation, reset to a mark. */
void *fs_alloc(size_t bytes);            /* NULL on failure; counted */
void fs_free(void *p);                   /* p from fs_alloc, or NULL */
/* The bytes of a block from fs_alloc (what fs_free uncounts). */
size_t fs_alloc_size(const void *p);
/* For blocks whose pages become resident only as they are written (or are
 * given back early): a caller that knows what is resident adds or removes
 * bytes from the count without allocating or freeing; before fs_free it
 * counts back what it removed, since fs_free uncounts the block's size. */
void fs_mem_note(size_t bytes, int add);
size_t fs_mem_current(void);             /* bytes held through fs_alloc now */
size_t fs_mem_peak(void);                /* high-water mark of fs_mem_current */
void fs_mem_reset_peak(void);
size_t fs_mem_peak_rss(void);            /* the OS's peak resident set (VmHWM), bytes */
int fs_mem_reset_peak_rss(void);         /* VmHWM back to the current RSS; -1 if unsupported */

typedef struct fs_arena fs_arena;
/* Reserved whole, counted (fs_mem_*) as its high-water mark rises: the
 * system gives the block pages as they are first written, and they stay. */
fs_arena *fs_arena_create(size_t capacity, fs_error *err);
/* An arena handing out pieces of memory the caller owns (a GPU buffer: the
 * arena only does the arithmetic, never touches base, and does not free it). */
fs_arena *fs_arena_over(void *base, size_t capacity, fs_error *err);
void fs_arena_destroy(fs_arena *a);
void *fs_arena_alloc(fs_arena *a, size_t bytes);  /* 64-byte aligned; NULL when full */
float *fs_arena_floats(fs_arena *a, size_t n);
size_t fs_arena_mark(const fs_arena *a);
void fs_arena_reset(fs_arena *a, size_t mark);     /* frees everything allocated after mark */
size_t fs_arena_used(const fs_arena *a);
size_t fs_arena_peak(const fs_arena *a);
size_t fs_arena_capacity(const fs_arena *a);

/* ---------------------------------------------------------------- threads
 * One pool (OpenMP) serves every CPU op. BLAS always runs single-threaded
 * inside it: OpenBLAS's own threading changes results with the thread count
 * (measured: 84 of 96 sgemm shapes differ between 1 and 2 threads), ours does
 * not, because every op splits work into pieces whose results do not depend
 * on which thread computes them. */
void fs_threads_init(int n);   /* n <= 0: FS_THREADS env, else all cores */
int fs_threads_count(void);

double fs_now(void);           /* monotonic seconds */

/* ---------------------------------------------------------------- RNG
 * Philox4x32-10 (Salmon et al., SC'11), counter based: the value for a
 * (seed, stream, index) never depends on who computes it or when, which is
 * what makes noise independent of rank count, threads and resuming. */
void fs_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);

/* Standard normal number `index` of stream `stream` for `seed`.
 * Block b = index / 4 is Philox(ctr = {b_lo, b_hi, stream_lo, stream_hi},
 * key = {seed_lo, seed_hi}); its four words give four normals by Box-Muller
 * (pairs (w0,w1) and (w2,w3)); u = (w + 0.5) / 2^32, computed in double. */
float fs_rng_normal(uint64_t seed, uint64_t stream, uint64_t index);
/* dst[i] = fs_rng_normal(seed, stream, offset + i) for i < n (threaded). */
void fs_rng_fill_normal(float *dst, size_t n, uint64_t seed, uint64_t stream, uint64_t offset);
/* Uniform in [0, 1): word (index % 4) of block index / 4, times 2^-32. */
double fs_rng_uniform(uint64_t seed, uint64_t stream, uint64_t index);
/* Uniform integer in [lo, hi] (inclusive) from the 64 bits of words 0..1 of
 * block `index` (one block per draw; modulo bias <= span / 2^64). */
int64_t fs_rng_randint(uint64_t seed, uint64_t stream, uint64_t index, int64_t lo, int64_t hi);

#ifdef __cplusplus
}
#endif
#endif
