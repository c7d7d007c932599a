/* unet/load.c: making a UNet's weights: deterministic random ones
 * (benchmarks, tests, the embedded default model) or from a checkpoint in
 * either layout. fs_unet_open finds the layout and the config, then binds
 * every slot of the table (slots.c) by name and shape from the header alone,
 * touching no weight page; fs_unet_load_weights converts F32/F16/BF16 to f32
 * (OIHW convolutions to OHWI) in parallel pieces, then closes the file (the
 * slots' src pointers are cleared: only the converted copy remains). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "kernels/kernels.h"
#include "unet/loader.h"

/* ---------------------------------------------------------------- random */

/* FNV-1a of the tensor name: each slot draws from its own Philox stream, so
 * a tensor's values do not depend on which other tensors the config has. */
static uint64_t name_stream(const char *s) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

/* dst[i] = fs_rng_normal(seed, stream, offset + i), computed a Philox block
 * (four normals) at a time instead of one block per value. Same values as
 * core's definition (box_muller in core/rng.c); the unit test holds them equal. */
static double open_unit(uint32_t w) { return ((double)w + 0.5) * 0x1p-32; }

static void fill_normal(float *dst, size_t n, uint64_t seed, uint64_t stream, uint64_t offset) {
    size_t i = 0;
    while (i < n && (offset + i) % 4) { dst[i] = fs_rng_normal(seed, stream, offset + i); i++; }
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    for (; i + 4 <= n; i += 4) {
        uint64_t b = (offset + i) / 4;
        const uint32_t ctr[4] = {(uint32_t)b, (uint32_t)(b >> 32), (uint32_t)stream,
                                 (uint32_t)(stream >> 32)};
        uint32_t w[4];
        fs_philox4x32_10(ctr, key, w);
        for (int p = 0; p < 2; p++) {
            double r = sqrt(-2.0 * log(open_unit(w[2 * p])));
            double th = 2.0 * M_PI * open_unit(w[2 * p + 1]);
            dst[i + 2 * p] = (float)(r * cos(th));
            dst[i + 2 * p + 1] = (float)(r * sin(th));
        }
    }
    for (; i < n; i++) dst[i] = fs_rng_normal(seed, stream, offset + i);
}

/* Exposed for the unit test that holds fill_normal to fs_rng_normal. */
void fs_unet_test_fill_normal(float *dst, size_t n, uint64_t seed, uint64_t stream,
                              uint64_t offset) {
    fill_normal(dst, n, seed, stream, offset);
}

/* A norm's affine parameters: the module's last name component is norm,
 * norm1.. or conv_norm_out. */
static int is_norm(const char *name) {
    const char *end = strrchr(name, '.');
    if (!end) return 0;
    const char *start = end;
    while (start > name && start[-1] != '.') start--;
    return !strncmp(start, "norm", 4) || !strncmp(start, "conv_norm_out", 13);
}

/* One piece of work: rows [r0, r1) of a slot (rows = shape[0]). */
typedef struct { size_t slot; int64_t r0, r1; } piece;
enum { PIECE_FLOATS = 1 << 20 };

/* Value of element i (PyTorch order) of slot s: matrices and convolutions
 * N(0, 1/fan_in); norms gamma 1 + 0.05 N, beta 0.05 N; other biases 0.02 N. */
static void random_piece(const fs_unet *u, const piece *pc, uint64_t seed, float *tmp) {
    const fs_unet_slot *s = &u->slots[pc->slot];
    uint64_t row = fs_unet_slot_numel(s) / (uint64_t)s->shape[0];
    size_t n = (size_t)((pc->r1 - pc->r0) * (int64_t)row);
    float *out = *s->dst + (size_t)pc->r0 * row;
    float *gen = s->kind == FS_SLOT_CONV_OIHW ? tmp : out;
    fill_normal(gen, n, seed, name_stream(s->name), (uint64_t)pc->r0 * row);
    float scale, shift = 0;
    if (s->ndim >= 2) scale = (float)(1.0 / sqrt((double)row));
    else if (is_norm(s->name)) {
        scale = 0.05f;
        size_t len = strlen(s->name);
        shift = len > 7 && !strcmp(s->name + len - 7, ".weight") ? 1.0f : 0.0f;
    } else scale = 0.02f;
    for (size_t i = 0; i < n; i++) gen[i] = gen[i] * scale + shift;
    if (s->kind == FS_SLOT_CONV_OIHW)
        fs_conv2d_weight_from_oihw(tmp, out, (int)(pc->r1 - pc->r0), (int)s->shape[1],
                                   (int)s->shape[2]);
}

/* Splits every slot into pieces of whole rows (at most PIECE_FLOATS floats,
 * or one row) so large tensors spread over threads; *tmp_floats is the
 * scratch one piece needs. */
static fs_code make_pieces(const fs_unet *u, piece **out, size_t *count, size_t *tmp_floats,
                           fs_error *err) {
    piece *pieces = NULL;
    size_t np = 0, cap = 0;
    *tmp_floats = PIECE_FLOATS;
    for (size_t i = 0; i < u->nslots; i++) {
        const fs_unet_slot *s = &u->slots[i];
        int64_t rows = s->shape[0], row = (int64_t)(fs_unet_slot_numel(s) / (uint64_t)rows);
        int64_t step = row >= PIECE_FLOATS ? 1 : PIECE_FLOATS / row;
        if ((size_t)row > *tmp_floats) *tmp_floats = (size_t)row;
        for (int64_t r = 0; r < rows; r += step) {
            if (np == cap) {
                cap = cap ? 2 * cap : 4096;
                piece *p = realloc(pieces, cap * sizeof *p);
                if (!p) {
                    free(pieces);
                    return fs_fail(err, FS_ERR_NOMEM, "UNet: out of memory");
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

fs_code fs_unet_create_random(const fs_unet_config *cfg, uint64_t seed, fs_unet **out,
                              fs_error *err) {
    *out = NULL;
    fs_unet *u = calloc(1, sizeof *u);
    if (!u) return fs_fail(err, FS_ERR_NOMEM, "UNet: out of memory");
    u->config = *cfg;
    piece *pieces = NULL;
    size_t np = 0, tmp_floats = 0;
    fs_code rc = fs_unet_build_slots(u, err);
    if (!rc) rc = fs_unet_alloc_weights(u, err);
    if (!rc) rc = make_pieces(u, &pieces, &np, &tmp_floats, err);
    if (!rc) {
        int failed = 0;
        #pragma omp parallel
        {
            float *tmp = fs_alloc(tmp_floats * sizeof(float));
            if (!tmp) {
                #pragma omp atomic write
                failed = 1;
            }
            #pragma omp for schedule(dynamic, 1)
            for (size_t k = 0; k < np; k++)
                if (tmp) random_piece(u, &pieces[k], seed, tmp);
            fs_free(tmp);
        }
        if (failed) rc = fs_fail(err, FS_ERR_NOMEM, "UNet: out of memory for init scratch");
    }
    free(pieces);
    if (rc) { fs_unet_free(u); return rc; }
    u->info.layout = FS_UNET_LAYOUT_DIFFUSERS;
    snprintf(u->info.weights_path, sizeof u->info.weights_path, "(random, seed %llu)",
             (unsigned long long)seed);
    u->info.config = u->config;
    u->info.tensors_bound = u->nslots;
    u->info.params_by_dtype[FS_DTYPE_F32] = u->info.params;
    *out = u;
    return FS_OK;
}

/* ---------------------------------------------------------------- open */

#define SGM_PREFIX "model.diffusion_model."

static int is_file(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

static int join(char *out, size_t cap, const char *dir, const char *name) {
    int n = snprintf(out, cap, "%s/%s", dir, name);
    return n >= 0 && (size_t)n < cap ? 0 : -1;
}

static void shape_str(char *out, size_t cap, int ndim, const int64_t *shape) {
    size_t at = 0;
    at += (size_t)snprintf(out, cap, "[");
    for (int d = 0; d < ndim && at < cap; d++)
        at += (size_t)snprintf(out + at, cap - at, "%s%lld", d ? ", " : "", (long long)shape[d]);
    if (at < cap) snprintf(out + at, cap - at, "]");
}

/* Binds every slot to its tensor (name and shape), counts parameters per
 * dtype and the tensors of the UNet's namespace nobody asked for. Reads the
 * header only: no weight page is touched. */
static fs_code bind_slots(fs_unet *u, int sgm, fs_error *err) {
    const fs_safetensors *st = u->st;
    const char *path = fs_safetensors_path(st);
    size_t count = fs_safetensors_count(st);
    const fs_st_tensor *first = count ? fs_safetensors_at(st, 0) : NULL;
    unsigned char *bound = calloc(count ? count : 1, 1);
    if (!bound) return fs_fail(err, FS_ERR_NOMEM, "%s: out of memory", path);
    fs_unet_info *info = &u->info;
    fs_code rc = FS_OK;
    char name[320], sgm_name[256];
    for (size_t i = 0; i < u->nslots && !rc; i++) {
        fs_unet_slot *s = &u->slots[i];
        if (sgm) {
            if (fs_unet_sgm_name(&u->config, s->name, sgm_name, sizeof sgm_name)) {
                rc = fs_fail(err, FS_ERR_INVALID, "UNet: no SGM name for '%s'", s->name);
                break;
            }
            snprintf(name, sizeof name, SGM_PREFIX "%s", sgm_name);
        } else {
            snprintf(name, sizeof name, "%s", s->name);
        }
        const fs_st_tensor *t = fs_safetensors_find(st, name);
        if (!t) {
            if (sgm)
                rc = fs_fail(err, FS_ERR_FORMAT, "%s: UNet tensor '%s' (diffusers '%s') is missing",
                             path, name, s->name);
            else
                rc = fs_fail(err, FS_ERR_FORMAT, "%s: UNet tensor '%s' is missing", path, name);
            break;
        }
        int same = t->ndim == s->ndim;
        for (int d = 0; same && d < s->ndim; d++) same = t->shape[d] == s->shape[d];
        if (!same) {
            char got[96], want[96];
            shape_str(got, sizeof got, t->ndim, t->shape);
            shape_str(want, sizeof want, s->ndim, s->shape);
            rc = fs_fail(err, FS_ERR_FORMAT, "%s: UNet tensor '%s' has shape %s, expected %s for "
                         "this configuration", path, name, got, want);
            break;
        }
        if (!fs_dtype_is_float(t->dtype)) {
            rc = fs_fail(err, FS_ERR_UNSUPPORTED, "%s: UNet tensor '%s' has dtype %s (F32, F16, "
                         "BF16 or F64 wanted)", path, name, fs_dtype_name(t->dtype));
            break;
        }
        s->src = t;
        bound[t - first] = 1;
        info->params_by_dtype[t->dtype] += t->numel;
        info->params += t->numel;
        info->tensors_bound++;
    }
    for (size_t i = 0; i < count && !rc; i++) {
        const fs_st_tensor *t = fs_safetensors_at(st, i);
        if (bound[i] || (sgm && strncmp(t->name, SGM_PREFIX, strlen(SGM_PREFIX)))) continue;
        if (!info->tensors_unexpected++)
            snprintf(info->first_unexpected, sizeof info->first_unexpected, "%s", t->name);
    }
    free(bound);
    return rc;
}

/* Finds the UNet in a diffusers folder (pipeline or unet folder): its
 * config.json and weights, the full-precision file first. */
static fs_code find_diffusers(const char *path, char *config, char *weights, size_t cap,
                              fs_error *err) {
    char dir[1024];
    if (join(dir, sizeof dir, path, "unet") || join(config, cap, dir, "config.json"))
        return fs_fail(err, FS_ERR_INVALID, "%s: path too long", path);
    if (!is_file(config)) {
        snprintf(dir, sizeof dir, "%s", path);
        join(config, cap, dir, "config.json");
        if (!is_file(config))
            return fs_fail(err, FS_ERR_IO, "%s: not a UNet folder: neither unet/config.json nor "
                           "config.json is there", path);
    }
    static const char *const files[] = {"diffusion_pytorch_model.safetensors",
                                        "diffusion_pytorch_model.fp16.safetensors"};
    for (size_t i = 0; i < 2; i++)
        if (!join(weights, cap, dir, files[i]) && is_file(weights)) return FS_OK;
    return fs_fail(err, FS_ERR_IO, "%s: no %s or %s (only safetensors weights are read)", dir,
                   files[0], files[1]);
}

static int has_prefix_tensor(const fs_safetensors *st, const char *prefix) {
    size_t n = fs_safetensors_count(st), pl = strlen(prefix);
    for (size_t i = 0; i < n; i++)
        if (!strncmp(fs_safetensors_at(st, i)->name, prefix, pl)) return 1;
    return 0;
}

fs_code fs_unet_open(const char *path, fs_unet **out, fs_error *err) {
    *out = NULL;
    struct stat sb;
    if (stat(path, &sb) != 0)
        return fs_fail(err, FS_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    fs_unet *u = calloc(1, sizeof *u);
    if (!u) return fs_fail(err, FS_ERR_NOMEM, "UNet: out of memory");
    fs_code rc = FS_OK;
    int sgm = 0;
    char config[1100], weights[1100];
    if (S_ISDIR(sb.st_mode)) {
        rc = find_diffusers(path, config, weights, sizeof config, err);
        if (!rc) rc = fs_unet_config_from_json(config, &u->config, err);
        if (!rc) rc = fs_safetensors_open(weights, &u->st, err);
    } else {
        snprintf(weights, sizeof weights, "%s", path);
        rc = fs_safetensors_open(path, &u->st, err);
        if (!rc && has_prefix_tensor(u->st, SGM_PREFIX)) {
            sgm = 1;
            rc = fs_unet_config_infer(u->st, SGM_PREFIX, &u->config, err);
        } else if (!rc) {
            /* a diffusers unet file given directly: its config.json is beside it */
            const char *slash = strrchr(path, '/');
            int dl = slash ? (int)(slash - path) : 1;
            snprintf(config, sizeof config, "%.*s/config.json", dl, slash ? path : ".");
            if (fs_safetensors_find(u->st, "conv_in.weight") && is_file(config))
                rc = fs_unet_config_from_json(config, &u->config, err);
            else
                rc = fs_fail(err, FS_ERR_FORMAT, "%s: no UNet in this file (no " SGM_PREFIX "* "
                             "tensors, and not a diffusers UNet file with config.json beside it)",
                             path);
        }
    }
    if (!rc) rc = fs_unet_build_slots(u, err);
    if (!rc) {
        u->info.layout = sgm ? FS_UNET_LAYOUT_SGM : FS_UNET_LAYOUT_DIFFUSERS;
        snprintf(u->info.weights_path, sizeof u->info.weights_path, "%.1023s", weights);
        u->info.config = u->config;
        rc = bind_slots(u, sgm, err);
    }
    if (rc) { fs_unet_free(u); return rc; }
    *out = u;
    return FS_OK;
}

/* ---------------------------------------------------------------- convert */

/* Rows [r0, r1) of a bound slot to f32 (and OIHW -> OHWI). */
static fs_code load_piece(const fs_unet *u, const piece *pc, float *tmp, fs_error *err) {
    const fs_unet_slot *s = &u->slots[pc->slot];
    const fs_st_tensor *t = s->src;
    size_t row = (size_t)(fs_unet_slot_numel(s) / (uint64_t)s->shape[0]);
    size_t n = (size_t)(pc->r1 - pc->r0) * row;
    float *out = *s->dst + (size_t)pc->r0 * row;
    const unsigned char *src = (const unsigned char *)t->data +
                               (size_t)pc->r0 * row * fs_dtype_size(t->dtype);
    int conv = s->kind == FS_SLOT_CONV_OIHW;
    fs_code rc = fs_convert_to_f32(conv ? tmp : out, src, n, t->dtype, err);
    if (rc) {
        fs_error_prefix(err, "%s: tensor '%s': ", fs_safetensors_path(u->st), t->name);
        return rc;
    }
    if (conv)
        fs_conv2d_weight_from_oihw(tmp, out, (int)(pc->r1 - pc->r0), (int)s->shape[1],
                                   (int)s->shape[2]);
    return FS_OK;
}

fs_code fs_unet_load_weights(fs_unet *u, fs_error *err) {
    if (!u->st)
        return fs_fail(err, FS_ERR_INVALID, "UNet %s: no checkpoint bound to load from",
                       u->info.weights_path);
    fs_code rc = FS_OK;
    if (!u->arena_weights && (rc = fs_unet_alloc_weights(u, err))) return rc;
    piece *pieces = NULL;
    size_t np = 0, tmp_floats = 0;
    if ((rc = make_pieces(u, &pieces, &np, &tmp_floats, err))) return rc;
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
            if (!tmp) { my_bad = k; fs_fail(&mine, FS_ERR_NOMEM, "UNet: out of memory for scratch"); }
            else if (load_piece(u, &pieces[k], tmp, &mine)) my_bad = k;
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
    if (rc) return rc;
    /* the converted copy is all the forward pass reads: drop the mapping so
     * the file's pages stop counting against this process */
    for (size_t i = 0; i < u->nslots; i++) u->slots[i].src = NULL;
    fs_safetensors_close(u->st);
    u->st = NULL;
    return FS_OK;
}

/* ---------------------------------------------------------------- lifetime */

const fs_unet_info *fs_unet_get_info(const fs_unet *u) { return &u->info; }

void fs_unet_free(fs_unet *u) {
    if (!u) return;
    fs_free(u->arena_weights);
    fs_unet_free_slots(u);
    if (u->st) fs_safetensors_close(u->st);
    free(u);
}
