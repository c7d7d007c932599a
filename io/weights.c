/* io/weights.c: weight tables (io.h, "weight tables") and diffusers
 * component folders, the part of loading a network that does not depend on
 * which network it is: binding slots to a safetensors file's tensors by name
 * and shape from the header alone, one block for all converted weights, and
 * the parallel conversion to float32 (with fused-tensor slices, transposes
 * and OIHW convolutions turned OHWI). io/model.c builds on it. */
#include <stdio.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "io/io.h"

uint64_t fs_wslot_numel(const fs_wslot *s) {
    uint64_t n = 1;
    for (int d = 0; d < s->ndim; d++) n *= (uint64_t)s->shape[d];
    return n;
}

/* Floats per row (the product of dims after the first). */
static uint64_t row_floats(const fs_wslot *s) {
    uint64_t n = 1;
    for (int d = 1; d < s->ndim; d++) n *= (uint64_t)s->shape[d];
    return n;
}

/* Offsets rounded up to 16 floats, so every tensor starts 64-byte aligned. */
static uint64_t padded(uint64_t n) { return (n + 15) & ~(uint64_t)15; }

fs_code fs_wslots_alloc(fs_wslot *slots, size_t n, const char *model, float **block,
                        uint64_t *params, fs_error *err) {
    uint64_t total = 0, count = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t k = fs_wslot_numel(&slots[i]);
        total += padded(k);
        count += k;
    }
    *block = NULL;
    if (total > SIZE_MAX / sizeof(float))
        return fs_fail(err, FS_ERR_NOMEM, "%s: %llu weights do not fit in memory", model,
                       (unsigned long long)total);
    float *b = fs_alloc((size_t)(total ? total : 1) * sizeof(float));
    if (!b)
        return fs_fail(err, FS_ERR_NOMEM, "%s: cannot allocate %.2f GB for %llu weights", model,
                       (double)total * sizeof(float) / 1e9, (unsigned long long)count);
    uint64_t at = 0;
    for (size_t i = 0; i < n; i++) {
        *slots[i].dst = b + at;
        at += padded(fs_wslot_numel(&slots[i]));
    }
    *block = b;
    if (params) *params = count;
    return FS_OK;
}

/* ---------------------------------------------------------------- binding */

static void shape_str(char *out, size_t cap, int ndim, const int64_t *shape) {
    size_t at = 0;
    at += (size_t)snprintf(out, cap, "[");
    for (int d = 0; d < ndim && at < cap; d++)
        at += (size_t)snprintf(out + at, cap - at, "%s%lld", d ? ", " : "", (long long)shape[d]);
    if (at < cap) snprintf(out + at, cap - at, "]");
}

fs_code fs_wslot_bind(fs_wslot *s, const fs_safetensors *st, const char *file_name, int64_t row0,
                      int64_t file_rows, const char *model, fs_error *err) {
    const char *path = fs_safetensors_path(st);
    char also[200] = "";
    if (strcmp(file_name, s->name)) snprintf(also, sizeof also, " (internal '%s')", s->name);
    s->src = NULL;
    const fs_st_tensor *t = fs_safetensors_find(st, file_name);
    if (!t) return fs_fail(err, FS_ERR_FORMAT, "%s: %s tensor '%s'%s is missing", path, model,
                           file_name, also);
    int64_t want[4];
    for (int d = 0; d < s->ndim; d++) want[d] = s->shape[d];
    if (file_rows > 0) {
        want[0] = file_rows;
        if (row0 < 0 || row0 + s->shape[0] > file_rows)
            return fs_fail(err, FS_ERR_INVALID, "%s: rows [%lld, %lld) of %s tensor '%s' are "
                           "outside its %lld rows", path, (long long)row0,
                           (long long)(row0 + s->shape[0]), model, file_name,
                           (long long)file_rows);
    }
    int same = t->ndim == s->ndim;
    for (int d = 0; same && d < s->ndim; d++) same = t->shape[d] == want[d];
    if (!same) {
        char got[96], exp[96];
        shape_str(got, sizeof got, t->ndim, t->shape);
        shape_str(exp, sizeof exp, s->ndim, want);
        return fs_fail(err, FS_ERR_FORMAT, "%s: %s tensor '%s'%s has shape %s, expected %s for "
                       "this configuration", path, model, file_name, also, got, exp);
    }
    if (!fs_dtype_is_float(t->dtype))
        return fs_fail(err, FS_ERR_UNSUPPORTED, "%s: %s tensor '%s' has dtype %s (F32, F16, "
                       "BF16 or F64 wanted)", path, model, file_name, fs_dtype_name(t->dtype));
    s->src = t;
    s->src_row0 = file_rows > 0 ? row0 : 0;
    return FS_OK;
}

size_t fs_wslots_unbound(const fs_wslot *slots, size_t n, const fs_safetensors *st,
                         const char *prefix, const char *const *ignore, char *first,
                         size_t first_cap) {
    size_t count = fs_safetensors_count(st), pl = strlen(prefix), unbound = 0;
    const fs_st_tensor *base = count ? fs_safetensors_at(st, 0) : NULL;
    unsigned char *bound = calloc(count ? count : 1, 1);
    if (first && first_cap) first[0] = 0;
    if (!bound) return 0;
    for (size_t i = 0; i < n; i++)
        if (slots[i].src && slots[i].src >= base && slots[i].src < base + count)
            bound[slots[i].src - base] = 1;
    for (size_t i = 0; i < count; i++) {
        const fs_st_tensor *t = fs_safetensors_at(st, i);
        if (bound[i] || strncmp(t->name, prefix, pl)) continue;
        int skip = 0;
        for (const char *const *g = ignore; g && *g && !skip; g++) skip = !strcmp(*g, t->name);
        if (skip) continue;
        if (!unbound++ && first && first_cap) snprintf(first, first_cap, "%s", t->name);
    }
    free(bound);
    return unbound;
}

/* ---------------------------------------------------------------- pieces */

/* One piece of work: rows [r0, r1) of a slot (rows = shape[0]). */
typedef struct { size_t slot; int64_t r0, r1; } piece;
enum { PIECE_FLOATS = 1 << 20 };

/* Splits every slot into pieces of whole rows (at most PIECE_FLOATS floats,
 * or one row) so large tensors spread over threads; *tmp_floats is the
 * scratch one piece needs. */
/* The scratch one piece needs: a piece's floats, or a row longer than that. */
static size_t piece_floats(const fs_wslot *slots, size_t n) {
    size_t most = PIECE_FLOATS;
    for (size_t i = 0; i < n; i++) {
        size_t row = (size_t)row_floats(&slots[i]);
        if (row > most) most = row;
    }
    return most;
}

size_t fs_wslots_scratch_bytes(const fs_wslot *slots, size_t n) {
    /* fs_wslots_foreach_piece: one piece buffer per thread of the team */
    return (size_t)omp_get_max_threads() * piece_floats(slots, n) * sizeof(float);
}

static fs_code make_pieces(const fs_wslot *slots, size_t n, const char *model, piece **out,
                           size_t *count, size_t *tmp_floats, fs_error *err) {
    piece *pieces = NULL;
    size_t np = 0, cap = 0;
    *tmp_floats = piece_floats(slots, n);
    for (size_t i = 0; i < n; i++) {
        const fs_wslot *s = &slots[i];
        int64_t rows = s->ndim ? s->shape[0] : 1, row = (int64_t)row_floats(s);
        if (rows <= 0 || row <= 0) continue;
        int64_t step = row >= PIECE_FLOATS ? 1 : PIECE_FLOATS / row;
        for (int64_t r = 0; r < rows; r += step) {
            if (np == cap) {
                cap = cap ? 2 * cap : 4096;
                piece *p = realloc(pieces, cap * sizeof *p);
                if (!p) {
                    free(pieces);
                    return fs_fail(err, FS_ERR_NOMEM, "%s: out of memory", model);
                }
                pieces = p;
            }
            pieces[np++] = (piece){i, r, r + step < rows ? r + step : rows};
        }
    }
    *out = pieces;
    *count = np;
    return FS_OK;
}

fs_code fs_wslots_foreach_piece(const fs_wslot *slots, size_t n, fs_wslot_piece_fn fn,
                                void *user, const char *model, fs_error *err) {
    piece *pieces = NULL;
    size_t np = 0, tmp_floats = 0;
    fs_code rc = make_pieces(slots, n, model, &pieces, &np, &tmp_floats, err);
    if (rc) return rc;
    /* the error reported is the one of the first failing piece, whatever the
     * thread timing */
    size_t first_bad = SIZE_MAX;
    #pragma omp parallel
    {
        float *tmp = fs_alloc(tmp_floats * sizeof(float));
        fs_error mine = {0};
        size_t my_bad = SIZE_MAX;
        #pragma omp for schedule(dynamic, 1)
        for (size_t k = 0; k < np; k++) {
            if (my_bad != SIZE_MAX) continue;
            const piece *pc = &pieces[k];
            if (!tmp) {
                my_bad = k;
                fs_fail(&mine, FS_ERR_NOMEM, "%s: out of memory for scratch", model);
            } else if (fn(user, &slots[pc->slot], pc->r0, pc->r1, tmp, &mine)) {
                my_bad = k;
            }
        }
        #pragma omp critical
        if (my_bad < first_bad) {
            first_bad = my_bad;
            rc = mine.code;
            if (err) *err = mine;
        }
        fs_free(tmp);
    }
    free(pieces);
    return rc;
}

/* ---------------------------------------------------------------- convert */

/* dst[j * ld + i] = src[i * cols + j] for i < rows, j < cols. */
static void transpose(const float *src, size_t rows, size_t cols, float *dst, size_t ld) {
    for (size_t i = 0; i < rows; i++)
        for (size_t j = 0; j < cols; j++) dst[j * ld + i] = src[i * cols + j];
}

void fs_wslot_arrange(const fs_wslot *s, const float *src, int64_t r0, int64_t r1, float *out) {
    size_t row = (size_t)row_floats(s), rows = (size_t)(r1 - r0);
    if (s->kind == FS_WSLOT_TRANSPOSE) {
        /* file [a][b] -> [b][a]: these rows are columns [r0, r1) of the result */
        transpose(src, rows, row, out + r0, (size_t)s->shape[0]);
    } else if (s->kind == FS_WSLOT_CONV_OIHW) {
        /* an output channel's [I][H*W] becomes [H*W][I] */
        size_t cin = (size_t)s->shape[1];
        for (size_t i = 0; i < rows; i++)
            transpose(src + i * row, cin, row / cin, out + ((size_t)r0 + i) * row, cin);
    } else {
        memcpy(out + (size_t)r0 * row, src, rows * row * sizeof(float));
    }
}

/* Rows [r0, r1) of a bound slot to f32, then to their place. */
static fs_code load_piece(void *user, const fs_wslot *s, int64_t r0, int64_t r1, float *tmp,
                          fs_error *err) {
    const fs_safetensors *st = user;
    const fs_st_tensor *t = s->src;
    if (!t) return fs_fail(err, FS_ERR_INVALID, "%s: slot '%s' is not bound",
                           fs_safetensors_path(st), s->name);
    size_t row = (size_t)row_floats(s), rows = (size_t)(r1 - r0), n = rows * row;
    const unsigned char *src = (const unsigned char *)t->data +
                               (size_t)(s->src_row0 + r0) * row * fs_dtype_size(t->dtype);
    int direct = s->kind == FS_WSLOT_PLAIN;
    float *out = *s->dst;
    fs_code rc = fs_convert_to_f32(direct ? out + (size_t)r0 * row : tmp, src, n, t->dtype, err);
    if (rc) {
        fs_error_prefix(err, "%s: tensor '%s': ", fs_safetensors_path(st), t->name);
        return rc;
    }
    if (!direct) fs_wslot_arrange(s, tmp, r0, r1, out);
    return FS_OK;
}

fs_code fs_wslots_load(const fs_wslot *slots, size_t n, const fs_safetensors *st,
                       const char *model, fs_error *err) {
    for (size_t i = 0; i < n; i++)
        if ((slots[i].kind == FS_WSLOT_TRANSPOSE && slots[i].ndim != 2) ||
            (slots[i].kind == FS_WSLOT_CONV_OIHW && slots[i].ndim != 4))
            return fs_fail(err, FS_ERR_INVALID, "%s: slot '%s': %d-D, not the %s its kind wants",
                           model, slots[i].name, slots[i].ndim,
                           slots[i].kind == FS_WSLOT_TRANSPOSE ? "matrix" : "convolution");
    return fs_wslots_foreach_piece(slots, n, load_piece, (void *)st, model, err);
}

/* ---------------------------------------------------------------- diffusers folders */

int fs_is_file(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

static int join(char *out, size_t cap, const char *dir, const char *name) {
    int n = snprintf(out, cap, "%s/%s", dir, name);
    return n >= 0 && (size_t)n < cap ? 0 : -1;
}

fs_code fs_diffusers_component(const char *path, const char *subfolder,
                               const char *const *files, const char *model, char *config,
                               char *weights, size_t cap, fs_error *err) {
    char dir[1024];
    if (join(dir, sizeof dir, path, subfolder) || join(config, cap, dir, "config.json"))
        return fs_fail(err, FS_ERR_INVALID, "%s: path too long", path);
    if (!fs_is_file(config)) {
        snprintf(dir, sizeof dir, "%s", path);
        if (join(config, cap, dir, "config.json") || !fs_is_file(config))
            return fs_fail(err, FS_ERR_IO, "%s: no %s folder: neither %s/config.json nor "
                           "config.json is there", path, model, subfolder);
    }
    for (size_t i = 0; files[i]; i++)
        if (!join(weights, cap, dir, files[i]) && fs_is_file(weights)) return FS_OK;
    char list[512] = "";
    size_t at = 0;
    for (size_t i = 0; files[i] && at < sizeof list; i++)
        at += (size_t)snprintf(list + at, sizeof list - at, "%s%s", i ? " or " : "", files[i]);
    return fs_fail(err, FS_ERR_IO, "%s: no %s (only safetensors weights are read)", dir, list);
}

fs_code fs_wslots_round(const fs_wslot *slots, size_t n, fs_dtype dt, fs_error *err) {
    if (dt != FS_DTYPE_F32 && dt != FS_DTYPE_F16 && dt != FS_DTYPE_BF16)
        return fs_fail(err, FS_ERR_UNSUPPORTED, "weight precision %s: only F32, F16, BF16",
                       fs_dtype_name(dt));
    if (dt == FS_DTYPE_F32) return FS_OK;
    for (size_t i = 0; i < n; i++) {
        float *w = slots[i].dst ? *slots[i].dst : NULL;
        if (!w) return fs_fail(err, FS_ERR_INVALID, "%s: weights not loaded", slots[i].name);
        uint64_t m = fs_wslot_numel(&slots[i]);
        if (dt == FS_DTYPE_F16)
            for (uint64_t k = 0; k < m; k++) w[k] = fs_f16_to_f32(fs_f32_to_f16(w[k]));
        else
            for (uint64_t k = 0; k < m; k++) w[k] = fs_bf16_to_f32(fs_f32_to_bf16(w[k]));
    }
    return FS_OK;
}
