/* io/model_config.c: reading a network's config.json (io.h, "config.json
 * files"): the keys every network's config has the same way to read, each
 * error naming the file and the key. What a key means stays the network's. */
#include <jansson.h>
#include <stdio.h>
#include "io/io.h"

fs_code fs_json_open(fs_json_file *f, const char *path, fs_error *err) {
    json_error_t je;
    f->path = path;
    f->err = err;
    f->root = json_load_file(path, 0, &je);
    if (!f->root) return fs_fail(err, FS_ERR_FORMAT, "%s: line %d: %s", path, je.line, je.text);
    if (!json_is_object(f->root)) {
        fs_json_close(f);
        return fs_fail(err, FS_ERR_FORMAT, "%s: not a JSON object", path);
    }
    return FS_OK;
}

void fs_json_close(fs_json_file *f) {
    json_decref(f->root);
    f->root = NULL;
}

fs_code fs_json_bad_key(const fs_json_file *f, const char *key, const char *want) {
    return fs_fail(f->err, FS_ERR_FORMAT, "%s: key '%s': expected %s", f->path, key, want);
}

fs_code fs_json_int(const fs_json_file *f, const char *key, int def, int lo, int hi, int *out) {
    json_t *v = json_object_get(f->root, key);
    if (!v || json_is_null(v)) {
        if (def < lo)
            return fs_fail(f->err, FS_ERR_FORMAT, "%s: key '%s' is missing or null", f->path, key);
        *out = def;
        return FS_OK;
    }
    if (json_is_boolean(v) && lo == 0 && hi == 1) {
        *out = json_is_true(v);
        return FS_OK;
    }
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        char want[64];
        snprintf(want, sizeof want, "an integer in [%d, %d]", lo, hi);
        return fs_json_bad_key(f, key, want);
    }
    *out = (int)json_integer_value(v);
    return FS_OK;
}

fs_code fs_json_float(const fs_json_file *f, const char *key, float def, float *out) {
    json_t *v = json_object_get(f->root, key);
    if (!v || json_is_null(v)) {
        *out = def;
        return FS_OK;
    }
    if (!json_is_number(v)) return fs_json_bad_key(f, key, "a number");
    *out = (float)json_number_value(v);
    return FS_OK;
}
