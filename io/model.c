/* io/model.c: the model core (io.h, "model core"): the table builder the
 * networks describe their tensors to, opening a checkpoint in either layout,
 * binding, loading, rounding, deterministic random weights, the copy to a
 * device and freeing: everything about a network's weights that does not
 * depend on which network it is. Built on the weight tables (io/weights.c). */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "io/io.h"

/* ---------------------------------------------------------------- the builder */

static fs_wslot *grow(fs_wtable *t) {
    if (t->rc) return NULL;
    if (t->n == t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 256;
        fs_wslot *s = realloc(t->slots, cap * sizeof *s);
        fs_wfile *f = t->files_on ? realloc(t->files, cap * sizeof *f) : NULL;
        if (s) t->slots = s;
        if (f) t->files = f;
        if (!s || (t->files_on && !f)) {
            t->rc = fs_fail(t->err, FS_ERR_NOMEM, "%s: out of memory for the weight table",
                            t->model);
            return NULL;
        }
        t->cap = cap;
    }
    fs_wslot *s = &t->slots[t->n++];
    memset(s, 0, sizeof *s);
    return s;
}

static void set_slot(fs_wtable *t, fs_wslot *s, float **dst, int kind, int ndim,
                     const int64_t *shape, const char *file, int64_t row0, int64_t rows) {
    s->ndim = ndim;
    for (int d = 0; d < ndim; d++) s->shape[d] = shape[d];
    s->dst = dst;
    s->kind = kind;
    if (t->files_on) {
        fs_wfile *f = &t->files[t->n - 1];
        snprintf(f->name, sizeof f->name, "%s%s", t->file_prefix ? t->file_prefix : "",
                 file ? file : s->name);
        f->row0 = row0;
        f->rows = rows;
    }
}

void fs_wtable_add(fs_wtable *t, float **dst, int kind, int ndim, const int64_t *shape,
                   const char *fmt, ...) {
    fs_wslot *s = grow(t);
    if (!s) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->name, sizeof s->name, fmt, ap);
    va_end(ap);
    set_slot(t, s, dst, kind, ndim, shape, NULL, 0, 0);
}

void fs_wtable_add_from(fs_wtable *t, float **dst, int kind, int ndim, const int64_t *shape,
                        const char *internal, const char *file, int64_t row0, int64_t rows) {
    fs_wslot *s = grow(t);
    if (!s) return;
    snprintf(s->name, sizeof s->name, "%s", internal);
    set_slot(t, s, dst, kind, ndim, shape, file, row0, rows);
}

void fs_wtable_pair(fs_wtable *t, float **w, float **b, int kind, int ndim, const int64_t *shape,
                    const char *prefix) {
    fs_wtable_add(t, w, kind, ndim, shape, "%s.weight", prefix);
    if (b) fs_wtable_add(t, b, FS_WSLOT_PLAIN, 1, shape, "%s.bias", prefix);
}

void fs_wtable_pair_from(fs_wtable *t, float **w, float **b, int ndim, const int64_t *shape,
                         const char *internal, const char *file) {
    static const char *const part[2] = {"weight", "bias"};
    float **dst[2] = {w, b};
    for (int i = 0; i < 2 && dst[i]; i++) {
        char in[sizeof t->slots->name], fn[sizeof t->files->name];
        snprintf(in, sizeof in, "%s.%s", internal, part[i]);
        snprintf(fn, sizeof fn, "%s.%s", file, part[i]);
        fs_wtable_add_from(t, dst[i], FS_WSLOT_PLAIN, i ? 1 : ndim, shape, in, fn, 0, 0);
    }
}

fs_code fs_wtable_finish(fs_wtable *t, fs_wslot **slots, size_t *n, fs_wfile **files) {
    if (t->rc || !files) free(t->files);
    if (t->rc) {
        free(t->slots);
        *slots = NULL;
        *n = 0;
    } else {
        *slots = t->slots;
        *n = t->n;
        if (files) *files = t->files;
    }
    t->slots = NULL;
    t->files = NULL;
    t->n = t->cap = 0;
    return t->rc;
}

/* ---------------------------------------------------------------- open */

const char *const fs_diffusers_model_files[] = {"diffusion_pytorch_model.safetensors",
                                                "diffusion_pytorch_model.fp16.safetensors", NULL};

static int has_prefix_tensor(const fs_safetensors *st, const char *prefix) {
    size_t n = fs_safetensors_count(st), pl = strlen(prefix);
    for (size_t i = 0; i < n; i++)
        if (!strncmp(fs_safetensors_at(st, i)->name, prefix, pl)) return 1;
    return 0;
}

fs_code fs_model_open(const char *path, const fs_model_kind *k, fs_model_file *f, fs_error *err) {
    memset(f, 0, sizeof *f);
    struct stat sb;
    if (stat(path, &sb) != 0)
        return fs_fail(err, FS_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    fs_code rc = FS_OK;
    if (S_ISDIR(sb.st_mode)) {
        rc = fs_diffusers_component(path, k->subfolder, k->files, k->label, f->config,
                                    f->weights, sizeof f->config, err);
        if (!rc) rc = fs_safetensors_open(f->weights, &f->st, err);
        return rc;
    }
    snprintf(f->weights, sizeof f->weights, "%s", path);
    if ((rc = fs_safetensors_open(path, &f->st, err))) return rc;
    if (has_prefix_tensor(f->st, k->sgm_prefix)) {
        f->sgm = 1;
        return FS_OK;
    }
    /* a diffusers weight file given directly: its config.json is beside it */
    const char *slash = strrchr(path, '/');
    int dl = slash ? (int)(slash - path) : 1;
    snprintf(f->config, sizeof f->config, "%.*s/config.json", dl, slash ? path : ".");
    if (fs_safetensors_find(f->st, k->probe) && fs_is_file(f->config)) return FS_OK;
    fs_safetensors_close(f->st);
    f->st = NULL;
    return fs_fail(err, FS_ERR_FORMAT, "%s: no %s in this file (no %s* tensors, and not a "
                   "diffusers %s file with config.json beside it)", path, k->label,
                   k->sgm_prefix, k->label);
}

/* ---------------------------------------------------------------- bind */

fs_code fs_model_bind(fs_wslot *slots, size_t n, const fs_model_file *f, const fs_wfile *files,
                      const char *const *ignore, const fs_model_kind *k, fs_model_stats *stats,
                      fs_error *err) {
    memset(stats, 0, sizeof *stats);
    stats->layout = f->sgm;
    snprintf(stats->weights_path, sizeof stats->weights_path, "%.1023s", f->weights);
    for (size_t i = 0; i < n; i++) {
        fs_wslot *s = &slots[i];
        fs_code rc = files ? fs_wslot_bind(s, f->st, files[i].name, files[i].row0,
                                           files[i].rows, k->label, err)
                           : fs_wslot_bind(s, f->st, s->name, 0, 0, k->label, err);
        if (rc) return rc;
        uint64_t count = fs_wslot_numel(s);
        stats->params_by_dtype[s->src->dtype] += count;
        stats->params += count;
        stats->tensors_bound++;
    }
    stats->tensors_unexpected = fs_wslots_unbound(slots, n, f->st, f->sgm ? k->sgm_prefix : "",
                                                  ignore, stats->first_unexpected,
                                                  sizeof stats->first_unexpected);
    return FS_OK;
}

/* ---------------------------------------------------------------- load, round, free */

fs_code fs_model_load(fs_wslot *slots, size_t n, fs_safetensors **st, float **block,
                      uint64_t *params, const char *model, const char *path, fs_error *err) {
    if (!*st)
        return fs_fail(err, FS_ERR_INVALID, "%s %s: no checkpoint bound to load from", model,
                       path);
    fs_code rc = FS_OK;
    if (!*block && (rc = fs_wslots_alloc(slots, n, model, block, params, err))) return rc;
    if ((rc = fs_wslots_load(slots, n, *st, model, err))) return rc;
    /* the converted copy is all the passes read: drop the mapping so the
     * file's pages stop counting against this process */
    for (size_t i = 0; i < n; i++) slots[i].src = NULL;
    fs_safetensors_close(*st);
    *st = NULL;
    return FS_OK;
}

fs_code fs_model_round(const fs_wslot *slots, size_t n, const float *block, fs_dtype dt,
                       const char *model, fs_error *err) {
    if (!block) return fs_fail(err, FS_ERR_INVALID, "%s: weights not loaded", model);
    return fs_wslots_round(slots, n, dt, err);
}

void fs_model_release(fs_wslot **slots, size_t *n, float **block, fs_safetensors **st) {
    fs_free(*block);
    free(*slots);
    if (*st) fs_safetensors_close(*st);
    *block = NULL;
    *slots = NULL;
    *n = 0;
    *st = NULL;
}

/* ---------------------------------------------------------------- random */

/* FNV-1a of the tensor name: each slot draws from its own Philox stream. */
static uint64_t name_stream(const char *s) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

/* A norm's affine parameters: the module (the name's second-last
 * component) is named *norm* (norm1, group_norm, layer_norm2, conv_norm_out). */
static int is_norm(const char *name) {
    const char *end = strrchr(name, '.');
    if (!end) return 0;
    const char *start = end;
    while (start > name && start[-1] != '.') start--;
    for (const char *p = start; p + 4 <= end; p++)
        if (!strncmp(p, "norm", 4)) return 1;
    return 0;
}

/* Rows [r0, r1) of slot s, drawn in PyTorch order (tmp), then arranged. */
static fs_code random_piece(void *user, const fs_wslot *s, int64_t r0, int64_t r1, float *tmp,
                            fs_error *err) {
    (void)err;
    const uint64_t seed = *(const uint64_t *)user;
    uint64_t row = fs_wslot_numel(s) / (uint64_t)s->shape[0];
    size_t n = (size_t)((r1 - r0) * (int64_t)row);
    int direct = s->kind == FS_WSLOT_PLAIN;
    float *gen = direct ? *s->dst + (size_t)r0 * row : tmp;
    fs_rng_fill_normal(gen, n, seed, name_stream(s->name), (uint64_t)r0 * row);
    float scale, shift = 0;
    if (s->ndim >= 2) scale = (float)(1.0 / sqrt((double)row));
    else if (is_norm(s->name)) {
        scale = 0.05f;
        size_t len = strlen(s->name);
        shift = len > 7 && !strcmp(s->name + len - 7, ".weight") ? 1.0f : 0.0f;
    } else scale = 0.02f;
    for (size_t i = 0; i < n; i++) gen[i] = gen[i] * scale + shift;
    if (!direct) fs_wslot_arrange(s, tmp, r0, r1, *s->dst);
    return FS_OK;
}

fs_code fs_model_random(fs_wslot *slots, size_t n, uint64_t seed, float **block,
                        fs_model_stats *stats, const char *model, fs_error *err) {
    memset(stats, 0, sizeof *stats);
    fs_code rc = fs_wslots_alloc(slots, n, model, block, &stats->params, err);
    if (!rc) rc = fs_wslots_foreach_piece(slots, n, random_piece, &seed, model, err);
    if (rc) return rc;
    snprintf(stats->weights_path, sizeof stats->weights_path, "(random, seed %llu)",
             (unsigned long long)seed);
    stats->tensors_bound = n;
    stats->params_by_dtype[FS_DTYPE_F32] = stats->params;
    return FS_OK;
}

/* ---------------------------------------------------------------- device */

fs_code fs_model_upload(const fs_wslot *host, size_t n, const float *host_block, fs_wslot *dev,
                        size_t dev_n, const fs_wdevice *d, float **dev_block, const char *model,
                        fs_error *err) {
    *dev_block = NULL;
    if (!host_block)
        return fs_fail(err, FS_ERR_INVALID, "%s to the device: the weights are not loaded",
                       model);
    if (dev_n != n)
        return fs_fail(err, FS_ERR_INVALID, "%s to the device: %zu slots rebuilt, the model has "
                       "%zu", model, dev_n, n);
    /* the block's extent: the last slot's end (slots are 64-byte aligned in it) */
    size_t floats = 0;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(dev[i].name, host[i].name))
            return fs_fail(err, FS_ERR_INVALID, "%s to the device: slot %zu is %s, the model's "
                           "is %s", model, i, dev[i].name, host[i].name);
        size_t end = (size_t)(*host[i].dst - host_block) + (size_t)fs_wslot_numel(&host[i]);
        if (end > floats) floats = end;
    }
    void *mem = NULL;
    fs_code rc = d->alloc(d->user, &mem, floats * sizeof(float), err);
    for (size_t i = 0; !rc && i < n; i++) {
        float *at = (float *)mem + (*host[i].dst - host_block);
        rc = d->copy(d->user, at, *host[i].dst, (size_t)fs_wslot_numel(&host[i]) * sizeof(float),
                     err);
    }
    if (rc) {
        fs_error_prefix(err, "%s to the device (%.2f GB of weights): ", model, floats * 4.0 / 1e9);
        if (mem) d->free(d->user, mem);
        return rc;
    }
    for (size_t i = 0; i < n; i++) *dev[i].dst = (float *)mem + (*host[i].dst - host_block);
    *dev_block = mem;
    return FS_OK;
}
