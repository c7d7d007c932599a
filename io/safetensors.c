/* safetensors: reading (mmap or a caller's buffer), validating every header
 * field before anything is used, lookup by name, conversion to float32, and
 * a writer (temp file + rename, holes for tensors without data).
 *
 * Why validate everything up front: the header comes from a user's file, and
 * the rest of the engine trusts the offsets and shapes it gets from here. Every
 * error names the file and, where there is one, the tensor. */
#include "io/io.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

struct fs_safetensors {
    char *label;              /* the path, or the caller's label: every error names it */
    json_t *root;             /* kept alive: tensor names point into its keys */
    const json_t *meta;       /* the __metadata__ object, or NULL */
    void *map;                /* mmap of the file (open), NULL for parse */
    size_t map_len;
    size_t count;
    fs_st_tensor *tensors;    /* sorted by name */
};

/* Names and labels can be as long as the header; keep messages readable. */
#define NAME_FMT "%.256s"

static uint64_t load_u64_le(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static void store_u64_le(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) { p[i] = (unsigned char)(v & 0xff); v >>= 8; }
}

/* ---------------------------------------------------------------- duplicates
 * jansson's JSON_REJECT_DUPLICATES reports the position just after the
 * repeated key but names it only when it is under 20 characters. Everything
 * before that position is valid JSON (jansson parsed it), so a small lexer
 * walking up to it finds the key and the top-level key it sits under. */

/* Decodes the JSON string token at s[0..n) (quotes included); NULL if not one. */
static char *decode_json_string(const char *s, size_t n) {
    json_error_t jerr;
    json_t *j = json_loadb(s, n, JSON_DECODE_ANY, &jerr);
    char *out = NULL;
    if (j && json_is_string(j)) out = strdup(json_string_value(j));
    json_decref(j);
    return out;
}

static void find_duplicate_key(const char *text, size_t pos, char **key, int *key_depth,
                               char **outer) {
    size_t key_at = 0, key_len = 0, outer_at = 0, outer_len = 0;
    int depth = 0, have_key = 0, have_outer = 0;
    *key = NULL; *outer = NULL; *key_depth = 0;
    for (size_t i = 0; i < pos; i++) {
        char c = text[i];
        if (c == '{' || c == '[') depth++;
        else if (c == '}' || c == ']') depth--;
        else if (c == '"') {
            size_t start = i++;
            while (i < pos && text[i] != '"') i += (text[i] == '\\') ? 2 : 1;
            if (i >= pos) break;
            size_t len = i - start + 1;
            size_t j = i + 1;
            while (j < pos && (text[j] == ' ' || text[j] == '\t' || text[j] == '\n' || text[j] == '\r')) j++;
            int is_key = (j < pos && text[j] == ':');
            /* The duplicate is the last string before pos: jansson stops
             * right after it, before reading its ':'. */
            key_at = start; key_len = len; *key_depth = depth; have_key = 1;
            if (is_key && depth == 1) { outer_at = start; outer_len = len; have_outer = 1; }
        }
    }
    if (have_key) *key = decode_json_string(text + key_at, key_len);
    if (have_outer) *outer = decode_json_string(text + outer_at, outer_len);
}

static fs_code json_failure(const char *label, const char *text, size_t len,
                            const json_error_t *jerr, fs_error *err) {
    if (json_error_code(jerr) == json_error_duplicate_key && jerr->position >= 0 &&
        (size_t)jerr->position <= len) {
        char *key, *outer;
        int depth;
        find_duplicate_key(text, (size_t)jerr->position, &key, &depth, &outer);
        fs_code rc;
        if (key && depth == 1)
            rc = fs_fail(err, FS_ERR_FORMAT, "%s: duplicate tensor name '" NAME_FMT "' in the header",
                         label, key);
        else if (key && outer)
            rc = fs_fail(err, FS_ERR_FORMAT, "%s: tensor '" NAME_FMT "': duplicate key '" NAME_FMT "'",
                         label, outer, key);
        else
            rc = fs_fail(err, FS_ERR_FORMAT, "%s: duplicate key in the header at byte %d",
                         label, jerr->position);
        free(key);
        free(outer);
        return rc;
    }
    return fs_fail(err, FS_ERR_FORMAT, "%s: header is not valid JSON: %s (line %d, column %d)",
                   label, jerr->text, jerr->line, jerr->column);
}

/* ---------------------------------------------------------------- validation */

/* Reads a JSON integer that must be >= 0 into *out. */
static int get_nonneg_int(const json_t *v, uint64_t *out) {
    if (!json_is_integer(v)) return -1;
    json_int_t i = json_integer_value(v);
    if (i < 0) return -2;
    *out = (uint64_t)i;
    return 0;
}

/* Parses one tensor entry: fields, dtype, shape, offsets, sizes. */
static fs_code parse_entry(const char *label, const char *name, const json_t *obj,
                           uint64_t data_len, const unsigned char *data, fs_st_tensor *t,
                           fs_error *err) {
    if (!json_is_object(obj))
        return fs_fail(err, FS_ERR_FORMAT, "%s: tensor '" NAME_FMT "': entry is not a JSON object",
                       label, name);
    const json_t *jdt = json_object_get(obj, "dtype");
    const json_t *jshape = json_object_get(obj, "shape");
    const json_t *joff = json_object_get(obj, "data_offsets");
    const char *missing = !jdt ? "dtype" : !jshape ? "shape" : !joff ? "data_offsets" : NULL;
    if (missing)
        return fs_fail(err, FS_ERR_FORMAT, "%s: tensor '" NAME_FMT "': missing field \"%s\"",
                       label, name, missing);
    t->name = name;

    if (!json_is_string(jdt))
        return fs_fail(err, FS_ERR_FORMAT, "%s: tensor '" NAME_FMT "': \"dtype\" is not a string",
                       label, name);
    if (fs_dtype_from_name(json_string_value(jdt), &t->dtype) != 0)
        return fs_fail(err, FS_ERR_FORMAT, "%s: tensor '" NAME_FMT "': unknown dtype '%.64s'",
                       label, name, json_string_value(jdt));

    if (!json_is_array(jshape))
        return fs_fail(err, FS_ERR_FORMAT, "%s: tensor '" NAME_FMT "': \"shape\" is not an array",
                       label, name);
    size_t ndim = json_array_size(jshape);
    if (ndim > FS_ST_MAX_DIMS)
        return fs_fail(err, FS_ERR_FORMAT, "%s: tensor '" NAME_FMT "': too many dimensions (%zu > %d)",
                       label, name, ndim, FS_ST_MAX_DIMS);
    t->ndim = (int)ndim;
    uint64_t numel = 1;
    for (size_t d = 0; d < ndim; d++) {
        uint64_t extent;
        int r = get_nonneg_int(json_array_get(jshape, d), &extent);
        if (r != 0)
            return fs_fail(err, FS_ERR_FORMAT, "%s: tensor '" NAME_FMT "': shape[%zu] is %s",
                           label, name, d, r == -2 ? "negative" : "not an integer");
        t->shape[d] = (int64_t)extent;
        if (__builtin_mul_overflow(numel, extent, &numel))
            return fs_fail(err, FS_ERR_FORMAT,
                           "%s: tensor '" NAME_FMT "': shape's element count overflows 64 bits",
                           label, name);
    }
    t->numel = numel;

    if (!json_is_array(joff) || json_array_size(joff) != 2)
        return fs_fail(err, FS_ERR_FORMAT,
                       "%s: tensor '" NAME_FMT "': \"data_offsets\" is not an array [begin, end]",
                       label, name);
    for (int k = 0; k < 2; k++) {
        int r = get_nonneg_int(json_array_get(joff, (size_t)k), k ? &t->end : &t->begin);
        if (r != 0)
            return fs_fail(err, FS_ERR_FORMAT, "%s: tensor '" NAME_FMT "': data_offsets[%d] is %s",
                           label, name, k, r == -2 ? "negative" : "not an integer");
    }
    if (t->begin > t->end)
        return fs_fail(err, FS_ERR_FORMAT,
                       "%s: tensor '" NAME_FMT "': data_offsets begin %llu > end %llu",
                       label, name, (unsigned long long)t->begin, (unsigned long long)t->end);
    uint64_t bytes;
    if (__builtin_mul_overflow(numel, (uint64_t)fs_dtype_size(t->dtype), &bytes))
        return fs_fail(err, FS_ERR_FORMAT,
                       "%s: tensor '" NAME_FMT "': byte size of %llu elements of %s overflows 64 bits",
                       label, name, (unsigned long long)numel, fs_dtype_name(t->dtype));
    if (bytes != t->end - t->begin)
        return fs_fail(err, FS_ERR_FORMAT,
                       "%s: tensor '" NAME_FMT "': %llu elements of %s need %llu bytes but "
                       "data_offsets [%llu, %llu] span %llu",
                       label, name, (unsigned long long)numel, fs_dtype_name(t->dtype),
                       (unsigned long long)bytes, (unsigned long long)t->begin,
                       (unsigned long long)t->end, (unsigned long long)(t->end - t->begin));
    if (t->end > data_len)
        return fs_fail(err, FS_ERR_FORMAT,
                       "%s: tensor '" NAME_FMT "': data_offsets [%llu, %llu] run past the end of "
                       "the data section (%llu bytes)",
                       label, name, (unsigned long long)t->begin, (unsigned long long)t->end,
                       (unsigned long long)data_len);
    t->data = data + t->begin;
    return FS_OK;
}

/* __metadata__ must be an object whose values are all strings. */
static fs_code check_metadata(const char *label, const json_t *meta, fs_error *err) {
    if (!json_is_object(meta))
        return fs_fail(err, FS_ERR_FORMAT, "%s: __metadata__ is not a JSON object", label);
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)meta, k, v) {
        if (!json_is_string(v))
            return fs_fail(err, FS_ERR_FORMAT,
                           "%s: __metadata__ value for key '" NAME_FMT "' is not a string", label, k);
    }
    return FS_OK;
}

static int cmp_by_begin(const void *a, const void *b) {
    const fs_st_tensor *x = *(const fs_st_tensor *const *)a, *y = *(const fs_st_tensor *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return strcmp(x->name, y->name);
}

static int cmp_by_name(const void *a, const void *b) {
    return strcmp(((const fs_st_tensor *)a)->name, ((const fs_st_tensor *)b)->name);
}

/* Non-empty byte ranges must not share a byte. (Gaps are allowed: the
 * reference implementation rejects them, but they harm nothing here.) */
static fs_code check_overlaps(const char *label, fs_st_tensor *ts, size_t n, fs_error *err) {
    if (n < 2) return FS_OK;
    const fs_st_tensor **order = malloc(n * sizeof *order);
    if (!order) return fs_fail(err, FS_ERR_NOMEM, "%s: out of memory checking ranges", label);
    for (size_t i = 0; i < n; i++) order[i] = &ts[i];
    qsort(order, n, sizeof *order, cmp_by_begin);
    const fs_st_tensor *reach = NULL; /* the tensor reaching furthest so far */
    fs_code rc = FS_OK;
    for (size_t i = 0; i < n && rc == FS_OK; i++) {
        const fs_st_tensor *t = order[i];
        if (t->begin == t->end) continue;
        if (reach && t->begin < reach->end)
            rc = fs_fail(err, FS_ERR_FORMAT,
                         "%s: tensors '" NAME_FMT "' [%llu, %llu] and '" NAME_FMT "' [%llu, %llu] overlap",
                         label, reach->name, (unsigned long long)reach->begin,
                         (unsigned long long)reach->end, t->name, (unsigned long long)t->begin,
                         (unsigned long long)t->end);
        if (!reach || t->end > reach->end) reach = t;
    }
    free(order);
    return rc;
}

fs_code fs_safetensors_parse(const void *buf, size_t len, const char *label,
                             fs_safetensors **out, fs_error *err) {
    *out = NULL;
    if (!label) label = "<buffer>";
    if (!buf && len) return fs_fail(err, FS_ERR_INVALID, "%s: NULL buffer", label);
    const unsigned char *bytes = buf;
    if (len < 8)
        return fs_fail(err, FS_ERR_FORMAT,
                       "%s: truncated: %zu bytes, shorter than the 8-byte header length", label, len);
    uint64_t hlen = load_u64_le(bytes);
    if (hlen > FS_ST_MAX_HEADER)
        return fs_fail(err, FS_ERR_FORMAT, "%s: header length %llu exceeds the %u-byte limit",
                       label, (unsigned long long)hlen, FS_ST_MAX_HEADER);
    if (hlen > len - 8)
        return fs_fail(err, FS_ERR_FORMAT,
                       "%s: truncated: header of %llu bytes runs past the end (%zu bytes in all)",
                       label, (unsigned long long)hlen, len);
    const char *text = (const char *)bytes + 8;
    const unsigned char *data = bytes + 8 + hlen;
    uint64_t data_len = len - 8 - hlen;

    fs_safetensors *st = calloc(1, sizeof *st);
    if (!st || !(st->label = strdup(label))) {
        free(st);
        return fs_fail(err, FS_ERR_NOMEM, "%s: out of memory", label);
    }
    fs_code rc = FS_OK;
    json_error_t jerr;
    st->root = json_loadb(text, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (!st->root) {
        rc = json_failure(label, text, (size_t)hlen, &jerr, err);
        goto fail;
    }
    if (!json_is_object(st->root)) {
        rc = fs_fail(err, FS_ERR_FORMAT, "%s: header is not a JSON object", label);
        goto fail;
    }
    size_t n = json_object_size(st->root);
    st->tensors = calloc(n ? n : 1, sizeof *st->tensors);
    if (!st->tensors) {
        rc = fs_fail(err, FS_ERR_NOMEM, "%s: out of memory for %zu tensors", label, n);
        goto fail;
    }
    const char *key;
    json_t *val;
    json_object_foreach(st->root, key, val) {
        if (strcmp(key, "__metadata__") == 0) {
            if ((rc = check_metadata(label, val, err)) != FS_OK) goto fail;
            st->meta = val;
            continue;
        }
        rc = parse_entry(label, key, val, data_len, data, &st->tensors[st->count], err);
        if (rc != FS_OK) goto fail;
        st->count++;
    }
    if ((rc = check_overlaps(label, st->tensors, st->count, err)) != FS_OK) goto fail;
    qsort(st->tensors, st->count, sizeof *st->tensors, cmp_by_name);
    *out = st;
    return FS_OK;
fail:
    fs_safetensors_close(st);
    return rc;
}

fs_code fs_safetensors_open(const char *path, fs_safetensors **out, fs_error *err) {
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return fs_fail(err, FS_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return fs_fail(err, FS_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return fs_fail(err, FS_ERR_IO, "%s: not a regular file", path);
    }
    size_t size = (size_t)sb.st_size;
    void *map = NULL;
    if (size > 0) {
        map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            int e = errno;
            close(fd);
            return fs_fail(err, FS_ERR_IO, "%s: cannot mmap %zu bytes: %s", path, size, strerror(e));
        }
    }
    close(fd); /* the mapping keeps the file */
    fs_code rc = fs_safetensors_parse(map, size, path, out, err);
    if (rc != FS_OK) {
        if (map) munmap(map, size);
        return rc;
    }
    (*out)->map = map;
    (*out)->map_len = size;
    return FS_OK;
}

void fs_safetensors_close(fs_safetensors *st) {
    if (!st) return;
    if (st->map) munmap(st->map, st->map_len);
    json_decref(st->root);
    free(st->tensors);
    free(st->label);
    free(st);
}

const char *fs_safetensors_path(const fs_safetensors *st) { return st->label; }
size_t fs_safetensors_count(const fs_safetensors *st) { return st->count; }

const fs_st_tensor *fs_safetensors_at(const fs_safetensors *st, size_t i) {
    return i < st->count ? &st->tensors[i] : NULL;
}

const fs_st_tensor *fs_safetensors_find(const fs_safetensors *st, const char *name) {
    if (!name) return NULL;
    fs_st_tensor key = {.name = name};
    return bsearch(&key, st->tensors, st->count, sizeof key, cmp_by_name);
}

const char *fs_safetensors_meta(const fs_safetensors *st, const char *key) {
    if (!st->meta) return NULL;
    return json_string_value(json_object_get(st->meta, key));
}

fs_code fs_safetensors_read_f32(const fs_safetensors *st, const fs_st_tensor *t, float *dst,
                                fs_error *err) {
    if (!t) return fs_fail(err, FS_ERR_INVALID, "%s: no tensor given", st->label);
    if (!fs_dtype_is_float(t->dtype))
        return fs_fail(err, FS_ERR_UNSUPPORTED,
                       "%s: tensor '" NAME_FMT "': dtype %s does not convert to float32",
                       st->label, t->name, fs_dtype_name(t->dtype));
    if (t->numel > SIZE_MAX)
        return fs_fail(err, FS_ERR_RANGE, "%s: tensor '" NAME_FMT "': too many elements",
                       st->label, t->name);
    if (t->numel == 0) return FS_OK; /* dst may be NULL for an empty tensor */
    fs_code rc = fs_convert_to_f32(dst, t->data, (size_t)t->numel, t->dtype, err);
    if (rc != FS_OK) fs_error_prefix(err, "%s: tensor '" NAME_FMT "': ", st->label, t->name);
    return rc;
}

/* ---------------------------------------------------------------- writer */

static int write_all(int fd, const void *p, size_t n) {
    const char *c = p;
    while (n > 0) {
        ssize_t w = write(fd, c, n > (1u << 30) ? (1u << 30) : n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Builds the header JSON (metadata first, like the reference writer) and each
 * entry's byte count; offsets are contiguous in entry order. */
static fs_code build_header(const char *path, const fs_st_entry *entries, size_t count,
                            const char *const *meta_kv, uint64_t *sizes, char **json_out,
                            fs_error *err) {
    json_t *root = json_object();
    fs_code rc = FS_OK;
    if (!root) return fs_fail(err, FS_ERR_NOMEM, "%s: out of memory", path);
    if (meta_kv && meta_kv[0]) {
        json_t *meta = json_object();
        json_object_set_new(root, "__metadata__", meta);
        for (size_t i = 0; meta_kv[i]; i += 2) {
            if (!meta_kv[i + 1]) {
                rc = fs_fail(err, FS_ERR_INVALID, "%s: metadata key '" NAME_FMT "' has no value",
                             path, meta_kv[i]);
                goto done;
            }
            if (json_object_set_new(meta, meta_kv[i], json_string(meta_kv[i + 1])) != 0) {
                rc = fs_fail(err, FS_ERR_INVALID, "%s: metadata key '" NAME_FMT "': key or value "
                             "is not valid UTF-8", path, meta_kv[i]);
                goto done;
            }
        }
    }
    uint64_t offset = 0;
    for (size_t i = 0; i < count; i++) {
        const fs_st_entry *e = &entries[i];
        const char *name = e->name ? e->name : "(null)";
        if (!e->name || strcmp(e->name, "__metadata__") == 0) {
            rc = fs_fail(err, FS_ERR_INVALID, "%s: entry %zu: invalid tensor name '%s'", path, i, name);
            goto done;
        }
        if (json_object_get(root, name)) {
            rc = fs_fail(err, FS_ERR_INVALID, "%s: duplicate tensor name '" NAME_FMT "'", path, name);
            goto done;
        }
        if ((unsigned)e->dtype >= FS_DTYPE_COUNT || e->ndim < 0 || e->ndim > FS_ST_MAX_DIMS) {
            rc = fs_fail(err, FS_ERR_INVALID, "%s: tensor '" NAME_FMT "': bad dtype %d or ndim %d",
                         path, name, (int)e->dtype, e->ndim);
            goto done;
        }
        uint64_t bytes = fs_dtype_size(e->dtype);
        json_t *shape = json_array();
        for (int d = 0; d < e->ndim; d++) {
            json_array_append_new(shape, json_integer(e->shape[d]));
            if (e->shape[d] < 0 || __builtin_mul_overflow(bytes, (uint64_t)e->shape[d], &bytes)) {
                json_decref(shape);
                rc = fs_fail(err, FS_ERR_INVALID, "%s: tensor '" NAME_FMT "': bad shape[%d] = %lld",
                             path, name, d, (long long)e->shape[d]);
                goto done;
            }
        }
        if (offset + bytes < offset || offset + bytes > (uint64_t)INT64_MAX) {
            json_decref(shape);
            rc = fs_fail(err, FS_ERR_INVALID, "%s: tensor '" NAME_FMT "': file too large", path, name);
            goto done;
        }
        json_t *entry = json_object();
        json_object_set_new(entry, "dtype", json_string(fs_dtype_name(e->dtype)));
        json_object_set_new(entry, "shape", shape);
        json_object_set_new(entry, "data_offsets",
                            json_pack("[II]", (json_int_t)offset, (json_int_t)(offset + bytes)));
        if (json_object_set_new(root, name, entry) != 0) {
            rc = fs_fail(err, FS_ERR_INVALID, "%s: tensor '" NAME_FMT "': name is not valid UTF-8",
                         path, name);
            goto done;
        }
        sizes[i] = bytes;
        offset += bytes;
    }
    *json_out = json_dumps(root, JSON_COMPACT);
    if (!*json_out) rc = fs_fail(err, FS_ERR_NOMEM, "%s: cannot serialise the header", path);
done:
    json_decref(root);
    return rc;
}

fs_code fs_safetensors_write(const char *path, const fs_st_entry *entries, size_t count,
                             const char *const *meta_kv, fs_error *err) {
    uint64_t *sizes = calloc(count ? count : 1, sizeof *sizes);
    char *json = NULL, *tmp = NULL;
    int fd = -1;
    fs_code rc = FS_OK;
    if (!sizes) return fs_fail(err, FS_ERR_NOMEM, "%s: out of memory", path);
    if ((rc = build_header(path, entries, count, meta_kv, sizes, &json, err)) != FS_OK) goto done;

    /* Pad the header with spaces so the data section starts 8-byte aligned,
     * as the reference writer does. */
    size_t jlen = strlen(json), hlen = (jlen + 7) & ~(size_t)7;
    unsigned char prefix[8];
    store_u64_le(prefix, hlen);

    size_t plen = strlen(path);
    tmp = malloc(plen + 5);
    if (!tmp) { rc = fs_fail(err, FS_ERR_NOMEM, "%s: out of memory", path); goto done; }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) { rc = fs_fail(err, FS_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno)); goto done; }

    static const char spaces[8] = "        ";
    int bad = write_all(fd, prefix, 8) || write_all(fd, json, jlen) ||
              write_all(fd, spaces, hlen - jlen);
    uint64_t total = 8 + hlen;
    for (size_t i = 0; i < count && !bad; i++) {
        if (entries[i].data)
            bad = write_all(fd, entries[i].data, (size_t)sizes[i]);
        else /* a hole: nothing written, the file system stores no blocks */
            bad = lseek(fd, (off_t)sizes[i], SEEK_CUR) < 0;
        total += sizes[i];
    }
    /* ftruncate gives trailing holes their length; fsync before rename so a
     * crash never leaves a renamed but empty file. */
    if (!bad) bad = ftruncate(fd, (off_t)total) != 0 || fsync(fd) != 0;
    if (bad) { rc = fs_fail(err, FS_ERR_IO, "%s: write failed: %s", tmp, strerror(errno)); goto done; }
    if (close(fd) != 0) {
        fd = -1;
        rc = fs_fail(err, FS_ERR_IO, "%s: close failed: %s", tmp, strerror(errno));
        goto done;
    }
    fd = -1;
    if (rename(tmp, path) != 0)
        rc = fs_fail(err, FS_ERR_IO, "%s: cannot rename %s into place: %s", path, tmp, strerror(errno));
done:
    if (fd >= 0) close(fd);
    if (rc != FS_OK && tmp) unlink(tmp);
    free(tmp);
    free(json);
    free(sizes);
    return rc;
}
