/* jobs/jobs.c: the job schema. Reads the tree yaml_doc.c builds, one key at
 * a time, into an fs_job; every value goes through the same readers whether
 * it comes from the file or from --set, so both give the same checks and the
 * same messages (only the prefix differs: "job.yaml:3:8: steps: ..." or
 * "--set steps: ..."). fs_job_validate and fs_job_to_yaml are in job_text.c. */
#include "jobs/jobs.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include "jobs/job_keys.h"
#include "jobs/yaml_doc.h"

#define JOB_FILE_MAX (1u << 20)  /* a job is a few hundred bytes; refuse anything absurd */

const char *const fs_job_key_names[K_COUNT] = {
    [K_MODEL] = "model",         [K_PROMPT] = "prompt",       [K_NEGATIVE_PROMPT] = "negative_prompt",
    [K_SEED] = "seed",           [K_STEPS] = "steps",         [K_GUIDANCE] = "guidance",
    [K_SCHEDULER] = "scheduler", [K_SIZE] = "size",           [K_OUTPUT] = "output",
    [K_PRECISION] = "precision", [K_NOISE] = "noise",         [K_ORIGINAL_SIZE] = "original_size",
    [K_TARGET_SIZE] = "target_size", [K_CROP] = "crop",       [K_VAE_TILING] = "vae_tiling",
};

const char *const fs_job_scheduler_names[2] = {"euler", "ddim"};
const char *const fs_job_precision_names[3] = {"fp32", "fp16", "bf16"};
const fs_dtype fs_job_precision_dtypes[3] = {FS_DTYPE_F32, FS_DTYPE_F16, FS_DTYPE_BF16};

/* Where a value comes from, for the messages. */
typedef struct {
    const char *label;     /* the job file's label; NULL: a --set */
    const char *base_dir;  /* relative model/noise paths start here (NULL: cwd) */
    const char *key;       /* the key being read (NULL: none yet) */
    fs_error *err;
} ctx;

static fs_code fail_at(const ctx *c, const yd_node *n, fs_code code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static fs_code fail_at(const ctx *c, const yd_node *n, fs_code code, const char *fmt, ...) {
    char body[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(body, sizeof body, fmt, ap);
    va_end(ap);
    const char *key = c->key ? c->key : "", *sep = c->key ? ": " : "";
    if (c->label)
        return fs_fail(c->err, code, "%s:%d:%d: %s%s%s", c->label, n ? n->line : 1, n ? n->col : 1,
                       key, sep, body);
    return fs_fail(c->err, code, "--set%s%s: %s", c->key ? " " : "", key, body);
}

/* A value for a message: at most 40 bytes, control bytes escaped, UTF-8 kept. */
static void show(const char *s, size_t len, char *out, size_t cap) {
    size_t o = 0, i = 0;
    const size_t shown = 40;
    while (i < len && i < shown && o + 8 < cap) {
        unsigned char ch = (unsigned char)s[i];
        uint32_t cp;
        size_t n = ch >= 0x80 ? yd_utf8_decode((const unsigned char *)s + i, len - i, &cp) : 1;
        if (ch >= 0x80 && n > 1) {
            if (i + n > shown) break;  /* never cut a character in half */
            memcpy(out + o, s + i, n);
            o += n;
            i += n;
            continue;
        }
        if (ch == '\n') o += (size_t)snprintf(out + o, cap - o, "\\n");
        else if (ch < 0x20 || ch >= 0x7F) o += (size_t)snprintf(out + o, cap - o, "\\x%02X", ch);
        else out[o++] = (char)ch;
        i++;
    }
    if (i < len && o + 4 < cap) { memcpy(out + o, "...", 3); o += 3; }
    out[o] = 0;
}

static int is_null(const yd_node *n) { return !n || yd_is_null(n); }

/* What was found, for "expected X, got Y". */
static const char *describe(const yd_node *n, char *buf, size_t cap) {
    char v[200];
    if (is_null(n)) return "nothing (null)";
    if (n->kind == YD_SEQ)
        snprintf(buf, cap, "a sequence of %zu item%s", n->count, n->count == 1 ? "" : "s");
    else if (n->kind == YD_MAP)
        snprintf(buf, cap, "a mapping");
    else {
        show(n->text, n->len, v, sizeof v);
        snprintf(buf, cap, "%s'%s'", n->plain ? "" : "a string ", v);
    }
    return buf;
}

static fs_code fail_expected(const ctx *c, const yd_node *n, fs_code code, const char *sub,
                             const char *expected) {
    char d[256];
    return fail_at(c, n, code, "%s%sexpected %s, got %s", sub ? sub : "", sub ? ": " : "",
                   expected, describe(n, d, sizeof d));
}

/* ---------------------------------------------------------------- scalars */

/* 0: a decimal integer in [lo, hi]; 1: not a decimal integer; 2: one out of range. */
static int read_uint(const yd_node *n, uint64_t lo, uint64_t hi, uint64_t *out) {
    if (is_null(n) || n->kind != YD_SCALAR || !n->plain || n->len != strlen(n->text)) return 1;
    const char *s = n->text;
    int neg = 0;
    if (*s == '+' || *s == '-') neg = *s++ == '-';
    if (!*s) return 1;
    for (const char *p = s; *p; p++)
        if (*p < '0' || *p > '9') return 1;
    /* YAML 1.1 reads 010 as octal 8: refuse the ambiguity instead of guessing */
    if (s[0] == '0' && s[1]) return 1;
    errno = 0;
    unsigned long long v = strtoull(s, NULL, 10);
    if (errno == ERANGE || (neg && v != 0) || v < lo || v > hi) return 2;
    *out = v;
    return 0;
}

static fs_code get_u64(const ctx *c, const yd_node *n, const char *sub, uint64_t lo, uint64_t hi,
                       uint64_t mult, uint64_t *out) {
    char what[96];
    if (mult > 1)
        snprintf(what, sizeof what, "a multiple of %llu in %llu..%llu", (unsigned long long)mult,
                 (unsigned long long)lo, (unsigned long long)hi);
    else
        snprintf(what, sizeof what, "an integer %llu..%llu", (unsigned long long)lo,
                 (unsigned long long)hi);
    uint64_t v = 0;
    int r = read_uint(n, lo, hi, &v);
    if (r == 0 && mult > 1 && v % mult) r = 2;
    if (r) return fail_expected(c, n, r == 2 ? FS_ERR_RANGE : FS_ERR_INVALID, sub, what);
    *out = v;
    return FS_OK;
}

static fs_code get_int(const ctx *c, const yd_node *n, const char *sub, int lo, int hi, int mult,
                       int *out) {
    uint64_t v;
    fs_code rc = get_u64(c, n, sub, (uint64_t)lo, (uint64_t)hi, (uint64_t)mult, &v);
    if (!rc) *out = (int)v;
    return rc;
}

/* YAML's decimal float form only: no hex, inf or nan (strtod would take them). */
static int is_decimal_number(const char *s) {
    if (*s == '+' || *s == '-') s++;
    int digits = 0;
    while (*s >= '0' && *s <= '9') s++, digits++;
    if (*s == '.') {
        s++;
        while (*s >= '0' && *s <= '9') s++, digits++;
    }
    if (!digits) return 0;
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '+' || *s == '-') s++;
        if (*s < '0' || *s > '9') return 0;
        while (*s >= '0' && *s <= '9') s++;
    }
    return *s == 0;
}

static fs_code get_number(const ctx *c, const yd_node *n, double lo, double hi, float *out) {
    char what[64];
    snprintf(what, sizeof what, "a number %g..%g", lo, hi);
    if (is_null(n) || n->kind != YD_SCALAR || !n->plain || n->len != strlen(n->text) ||
        !is_decimal_number(n->text))
        return fail_expected(c, n, FS_ERR_INVALID, NULL, what);
    double d = strtod(n->text, NULL);
    if (!(d >= lo && d <= hi)) return fail_expected(c, n, FS_ERR_RANGE, NULL, what);
    /* strtof, not (float)d: one rounding, so the %.9g that fs_job_to_yaml
     * writes reads back to the same float */
    float f = strtof(n->text, NULL);
    *out = f == 0 ? 0.0f : f;  /* -0 becomes 0: one spelling per value */
    return FS_OK;
}

static fs_code get_bool(const ctx *c, const yd_node *n, int *out) {
    static const char *const yes[] = {"true", "yes"}, *const no[] = {"false", "no"};
    if (!is_null(n) && n->kind == YD_SCALAR && n->plain && n->len == strlen(n->text))
        for (int i = 0; i < 2; i++) {
            if (!strcasecmp(n->text, yes[i])) { *out = 1; return FS_OK; }
            if (!strcasecmp(n->text, no[i])) { *out = 0; return FS_OK; }
        }
    return fail_expected(c, n, FS_ERR_INVALID, NULL, "true, false, yes or no");
}

/* Copies a string value into dst[cap] (zero-filled, so equal jobs are equal
 * bytes). null_ok: null and absent give "". */
static fs_code get_string(const ctx *c, const yd_node *n, size_t cap, int null_ok, char *dst) {
    if (is_null(n) && null_ok) {
        memset(dst, 0, cap);
        return FS_OK;
    }
    if (is_null(n) || n->kind != YD_SCALAR) return fail_expected(c, n, FS_ERR_INVALID, NULL, "a string");
    size_t nul = strlen(n->text);
    if (nul != n->len)
        return fail_at(c, n, FS_ERR_INVALID, "the string holds a NUL byte (at byte %zu); "
                       "strings cannot contain \\0", nul);
    if (n->len > cap - 1)
        return fail_at(c, n, FS_ERR_RANGE, "%zu bytes long, at most %zu allowed", n->len, cap - 1);
    size_t bad = yd_utf8_check(n->text, n->len);
    if (bad != n->len) return fail_at(c, n, FS_ERR_INVALID, "not valid UTF-8 (at byte %zu)", bad);
    memset(dst, 0, cap);
    memcpy(dst, n->text, n->len);
    return FS_OK;
}

static fs_code get_enum(const ctx *c, const yd_node *n, const char *const *names, int count,
                        int *out) {
    if (!is_null(n) && n->kind == YD_SCALAR)
        for (int i = 0; i < count; i++)
            if (n->len == strlen(names[i]) && !strcmp(n->text, names[i])) { *out = i; return FS_OK; }
    char what[128] = "one of ";
    for (int i = 0; i < count; i++) {
        strcat(what, names[i]);
        if (i + 1 < count) strcat(what, ", ");
    }
    return fail_expected(c, n, FS_ERR_INVALID, NULL, what);
}

/* ---------------------------------------------------------------- keys */

static size_t levenshtein(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b), row[64];
    if (la >= 63 || lb >= 63) return (size_t)-1;
    for (size_t j = 0; j <= lb; j++) row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j], best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            diag = up;
            row[j] = best;
        }
    }
    return row[lb];
}

/* The known name nearest to an unknown one: edit distance <= 2, or one
 * name a prefix of the other ("negative" -> "negative_prompt"); NULL if none. */
static const char *suggest(const char *name, const char *const *names, int count) {
    const char *best = NULL;
    size_t best_d = 3, ln = strlen(name);
    for (int i = 0; i < count; i++) {
        size_t d = levenshtein(name, names[i]);
        if (d < best_d) { best_d = d; best = names[i]; }
    }
    if (best || ln < 3) return best;
    for (int i = 0; i < count; i++) {
        size_t lk = strlen(names[i]);
        if (!strncmp(name, names[i], ln < lk ? ln : lk)) return names[i];
    }
    return NULL;
}

static int find_name(const char *name, size_t len, const char *const *names, int count) {
    if (len != strlen(name)) return -1;
    for (int i = 0; i < count; i++)
        if (!strcmp(name, names[i])) return i;
    return -1;
}

static fs_code fail_unknown(const ctx *c, const yd_node *key, const char *const *names, int count) {
    char v[200], known[512] = "";
    show(key->text, key->len, v, sizeof v);
    if (!strcmp(key->text, "<<"))
        return fail_at(c, key, FS_ERR_INVALID, "merge keys ('<<') are not supported; "
                       "write the keys out");
    const char *s = key->len == strlen(key->text) ? suggest(key->text, names, count) : NULL;
    if (s) return fail_at(c, key, FS_ERR_INVALID, "unknown key '%s' (did you mean '%s'?)", v, s);
    for (int i = 0; i < count; i++) {
        strcat(known, names[i]);
        if (i + 1 < count) strcat(known, ", ");
    }
    return fail_at(c, key, FS_ERR_INVALID, "unknown key '%s' (known keys: %s)", v, known);
}

/* A key node of a mapping: a non-null scalar naming one of names. seen[i]
 * holds the node that named i first (duplicates are errors). */
static fs_code read_key(const ctx *c, const yd_node *key, const char *const *names, int count,
                        const yd_node **seen, int *index) {
    char d[256];
    if (is_null(key) || key->kind != YD_SCALAR)
        return fail_at(c, key, FS_ERR_INVALID, "expected a key name, got %s", describe(key, d, sizeof d));
    int k = find_name(key->text, key->len, names, count);
    if (k < 0) return fail_unknown(c, key, names, count);
    if (seen[k])
        return fail_at(c, key, FS_ERR_INVALID,
                       "duplicate key '%s' (first at line %d, column %d; again at line %d, column %d)",
                       names[k], seen[k]->line, seen[k]->col, key->line, key->col);
    seen[k] = key;
    *index = k;
    return FS_OK;
}

/* size-like values: one integer (both), [a, b] or {a: A, b: B}. */
typedef struct {
    const char *names[2];
    int lo, hi, mult;
} pair_spec;

static const pair_spec size_spec = {{"width", "height"}, 64, 65536, 64};
static const pair_spec cond_spec = {{"width", "height"}, 1, 65536, 1};
static const pair_spec crop_spec = {{"left", "top"}, 0, 65536, 1};

static fs_code get_pair(const ctx *c, const yd_node *n, const pair_spec *ps, int *a, int *b) {
    int v[2];
    fs_code rc;
    char what[128];
    snprintf(what, sizeof what, "an integer, [%s, %s] or {%s: ..., %s: ...}", ps->names[0],
             ps->names[1], ps->names[0], ps->names[1]);
    if (is_null(n)) return fail_expected(c, n, FS_ERR_INVALID, NULL, what);
    if (n->kind == YD_SCALAR) {
        if ((rc = get_int(c, n, NULL, ps->lo, ps->hi, ps->mult, &v[0]))) return rc;
        v[1] = v[0];
    } else if (n->kind == YD_SEQ) {
        if (n->count != 2) {
            snprintf(what, sizeof what, "[%s, %s]", ps->names[0], ps->names[1]);
            return fail_expected(c, n, FS_ERR_INVALID, NULL, what);
        }
        for (int i = 0; i < 2; i++)
            if ((rc = get_int(c, n->items[i], ps->names[i], ps->lo, ps->hi, ps->mult, &v[i])))
                return rc;
    } else {
        const yd_node *seen[2] = {NULL, NULL};
        for (size_t i = 0; i < n->count; i++) {
            int k;
            if ((rc = read_key(c, n->items[2 * i], ps->names, 2, seen, &k)) ||
                (rc = get_int(c, n->items[2 * i + 1], ps->names[k], ps->lo, ps->hi, ps->mult, &v[k])))
                return rc;
        }
        for (int k = 0; k < 2; k++)
            if (!seen[k])
                return fail_at(c, n, FS_ERR_INVALID, "missing '%s' (expected {%s: ..., %s: ...})",
                               ps->names[k], ps->names[0], ps->names[1]);
    }
    *a = v[0];
    *b = v[1];
    return FS_OK;
}

/* model and noise: must exist; stored as the absolute, resolved path so the
 * job means the same file from any directory (and round-trips unchanged). */
static fs_code get_path(const ctx *c, const yd_node *n, int is_model, char *dst) {
    char given[FS_JOB_PATH_MAX], joined[FS_JOB_PATH_MAX + 4096], sh[200];
    fs_code rc = get_string(c, n, sizeof given, 1, given);
    if (rc) return rc;
    if (!given[0] || (is_model && !strcmp(given, "default"))) {
        memset(dst, 0, FS_JOB_PATH_MAX);  /* the embedded model / the seeded RNG */
        return FS_OK;
    }
    if (given[0] != '/' && c->base_dir && c->base_dir[0])
        snprintf(joined, sizeof joined, "%s/%s", c->base_dir, given);
    else
        snprintf(joined, sizeof joined, "%s", given);
    show(given, strlen(given), sh, sizeof sh);
    struct stat st;
    if (stat(joined, &st) != 0)
        return fail_at(c, n, FS_ERR_IO, "'%s' does not exist (looked for %s: %s)", sh, joined,
                       strerror(errno));
    if (!is_model && !S_ISREG(st.st_mode))
        return fail_at(c, n, FS_ERR_IO, "'%s' is not a file (expected a .safetensors file)", sh);
    if (is_model && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
        return fail_at(c, n, FS_ERR_IO, "'%s' is neither a file nor a folder", sh);
    char *real = realpath(joined, NULL);
    if (!real) return fail_at(c, n, FS_ERR_IO, "cannot resolve '%s': %s", sh, strerror(errno));
    size_t len = strlen(real);
    if (len >= FS_JOB_PATH_MAX || yd_utf8_check(real, len) != len) {
        free(real);
        return fail_at(c, n, FS_ERR_RANGE, "the resolved path of '%s' is longer than %d bytes or "
                       "not UTF-8", sh, FS_JOB_PATH_MAX - 1);
    }
    memset(dst, 0, FS_JOB_PATH_MAX);
    memcpy(dst, real, len);
    free(real);
    return FS_OK;
}

/* Reads one key's value into job; on error the job is unchanged. */
static fs_code set_value(ctx *c, fs_job_key k, const yd_node *v, fs_job *job) {
    fs_code rc = FS_OK;
    int i = 0, w = 0, h = 0;
    uint64_t u = 0;
    c->key = fs_job_key_names[k];
    switch (k) {
    case K_MODEL: return get_path(c, v, 1, job->model);
    case K_NOISE: return get_path(c, v, 0, job->noise);
    case K_PROMPT: {
        char text[FS_JOB_TEXT_MAX];
        if ((rc = get_string(c, v, sizeof text, 0, text))) return rc;
        if (!text[0]) return fail_at(c, v, FS_ERR_INVALID, "must not be empty (the text to draw)");
        memcpy(job->prompt, text, sizeof text);
        return FS_OK;
    }
    case K_NEGATIVE_PROMPT: return get_string(c, v, FS_JOB_TEXT_MAX, 1, job->negative_prompt);
    case K_OUTPUT: {
        char path[FS_JOB_PATH_MAX];
        if ((rc = get_string(c, v, sizeof path, 0, path))) return rc;
        if (!path[0]) return fail_at(c, v, FS_ERR_INVALID, "must not be empty (the PNG to write)");
        memcpy(job->output, path, sizeof path);
        return FS_OK;
    }
    case K_SEED:
        if (!(rc = get_u64(c, v, NULL, 0, UINT64_MAX, 1, &u))) job->seed = u;
        return rc;
    case K_STEPS: return get_int(c, v, NULL, 1, 1000, 1, &job->steps);
    case K_GUIDANCE: return get_number(c, v, 0, 100, &job->guidance);
    case K_SCHEDULER:
        if (!(rc = get_enum(c, v, fs_job_scheduler_names, 2, &i))) job->scheduler = (fs_scheduler_kind)i;
        return rc;
    case K_PRECISION:
        if (!(rc = get_enum(c, v, fs_job_precision_names, 3, &i)))
            job->precision = fs_job_precision_dtypes[i];
        return rc;
    case K_SIZE:
        if (!(rc = get_pair(c, v, &size_spec, &w, &h))) job->width = w, job->height = h;
        return rc;
    case K_ORIGINAL_SIZE:
        if (!(rc = get_pair(c, v, &cond_spec, &w, &h))) job->orig_width = w, job->orig_height = h;
        return rc;
    case K_TARGET_SIZE:
        if (!(rc = get_pair(c, v, &cond_spec, &w, &h))) job->target_width = w, job->target_height = h;
        return rc;
    case K_CROP:
        if (!(rc = get_pair(c, v, &crop_spec, &w, &h))) job->crop_left = w, job->crop_top = h;
        return rc;
    case K_VAE_TILING: return get_bool(c, v, &job->vae_tiling);
    case K_COUNT: break;
    }
    return fs_fail(c->err, FS_ERR_INVALID, "internal: key %d", (int)k);
}

/* ---------------------------------------------------------------- entry points */

void fs_job_defaults(fs_job *job) {
    memset(job, 0, sizeof *job);  /* zero tails and padding: equal jobs are equal bytes */
    strcpy(job->source, "--set");
    job->seed = 0;
    job->steps = 50;
    job->guidance = 7.5f;
    job->scheduler = FS_SCHED_EULER;
    job->width = job->height = 1024;
    strcpy(job->output, "out.png");
    job->precision = FS_DTYPE_F32;
    job->orig_width = job->target_width = 1024;
    job->orig_height = job->target_height = 1024;
}

static fs_code apply_root(ctx *c, const yd_node *root, fs_job *job) {
    char d[256];
    if (!is_null(root) && root->kind != YD_MAP)
        return fail_at(c, root, FS_ERR_FORMAT, "the top level must be a mapping of keys "
                       "(prompt: ..., steps: ...), got %s", describe(root, d, sizeof d));
    const yd_node *seen[K_COUNT] = {0};
    fs_code rc;
    size_t pairs = is_null(root) ? 0 : root->count;
    for (size_t i = 0; i < pairs; i++) {
        int k;
        c->key = NULL;
        if ((rc = read_key(c, root->items[2 * i], fs_job_key_names, K_COUNT, seen, &k)) ||
            (rc = set_value(c, (fs_job_key)k, root->items[2 * i + 1], job)))
            return rc;
    }
    c->key = NULL;
    if (!seen[K_PROMPT])
        return fail_at(c, is_null(root) ? NULL : root, FS_ERR_INVALID,
                       "missing required key 'prompt' (the text to draw)");
    /* micro-conditioning follows the size unless the file says otherwise */
    if (!seen[K_ORIGINAL_SIZE]) job->orig_width = job->width, job->orig_height = job->height;
    if (!seen[K_TARGET_SIZE]) job->target_width = job->width, job->target_height = job->height;
    return FS_OK;
}

fs_code fs_job_parse(const char *text, size_t len, const char *label, const char *base_dir,
                     fs_job *job, fs_error *err) {
    fs_job_defaults(job);
    if (!label) label = "<string>";
    snprintf(job->source, sizeof job->source, "%s", label);
    ctx c = {label, base_dir, NULL, err};
    if (len > JOB_FILE_MAX)
        return fail_at(&c, NULL, FS_ERR_FORMAT, "%zu bytes; a job file holds at most %u", len,
                       JOB_FILE_MAX);
    yd_doc doc;
    yd_error ye;
    if (yd_parse(text ? text : "", text ? len : 0, &doc, &ye))
        return fs_fail(err, ye.code, "%s:%d:%d: %s", label, ye.line, ye.col, ye.msg);
    fs_code rc = apply_root(&c, doc.root, job);
    yd_free(&doc);
    return rc ? rc : fs_job_validate(job, err);
}

fs_code fs_job_load(const char *path, fs_job *job, fs_error *err) {
    fs_job_defaults(job);
    FILE *f = fopen(path, "rb");
    if (!f) return fs_fail(err, FS_ERR_IO, "%s: cannot open the job file: %s", path, strerror(errno));
    char *buf = malloc(JOB_FILE_MAX + 1);
    if (!buf) {
        fclose(f);
        return fs_fail(err, FS_ERR_NOMEM, "%s: out of memory", path);
    }
    size_t len = fread(buf, 1, JOB_FILE_MAX + 1, f);
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return fs_fail(err, FS_ERR_IO, "%s: cannot read the job file", path);
    }
    /* the job file's folder: relative model and noise paths start there */
    char dir[FS_JOB_PATH_MAX];
    const char *slash = strrchr(path, '/');
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == path) snprintf(dir, sizeof dir, "/");
    else snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    fs_code rc = fs_job_parse(buf, len, path, dir, job, err);
    free(buf);
    return rc;
}

/* String keys take the rest of the argument as it is (a prompt may hold
 * ": " or "#"); a value that starts with a quote is read as a YAML string. */
static int literal_string_key(fs_job_key k, const char *value) {
    int str = k == K_MODEL || k == K_PROMPT || k == K_NEGATIVE_PROMPT || k == K_OUTPUT || k == K_NOISE;
    return str && value[0] != '"' && value[0] != '\'';
}

fs_code fs_job_set(fs_job *job, const char *assignment, fs_error *err) {
    ctx c = {NULL, NULL, NULL, err};
    char sh[200];
    const char *eq = assignment ? strchr(assignment, '=') : NULL;
    if (!eq || eq == assignment) {
        show(assignment ? assignment : "", assignment ? strlen(assignment) : 0, sh, sizeof sh);
        return fail_at(&c, NULL, FS_ERR_INVALID, "expected key=value, got '%s'", sh);
    }
    yd_node keynode = {.kind = YD_SCALAR, .text = (char *)assignment, .len = (size_t)(eq - assignment)};
    char keybuf[64];
    if (keynode.len >= sizeof keybuf)
        return fail_unknown(&c, &keynode, fs_job_key_names, K_COUNT);
    memcpy(keybuf, assignment, keynode.len);
    keybuf[keynode.len] = 0;
    keynode.text = keybuf;
    int k = find_name(keybuf, keynode.len, fs_job_key_names, K_COUNT);
    if (k < 0) return fail_unknown(&c, &keynode, fs_job_key_names, K_COUNT);
    const char *value = eq + 1;
    int old_w = job->width, old_h = job->height;
    fs_code rc;
    if (literal_string_key((fs_job_key)k, value)) {
        yd_node v = {.kind = YD_SCALAR, .text = (char *)value, .len = strlen(value), .plain = 0};
        rc = set_value(&c, (fs_job_key)k, &v, job);
    } else {
        yd_doc doc;
        yd_error ye;
        c.key = fs_job_key_names[k];
        if (yd_parse(value, strlen(value), &doc, &ye)) {
            show(value, strlen(value), sh, sizeof sh);
            return fail_at(&c, NULL, ye.code, "cannot read '%s' as a YAML value: %s", sh, ye.msg);
        }
        rc = set_value(&c, (fs_job_key)k, doc.root, job);
        yd_free(&doc);
    }
    if (rc) return rc;
    /* original_size and target_size that equal the size follow it (see jobs.h) */
    if (k == K_SIZE) {
        if (job->orig_width == old_w && job->orig_height == old_h)
            job->orig_width = job->width, job->orig_height = job->height;
        if (job->target_width == old_w && job->target_height == old_h)
            job->target_width = job->width, job->target_height = job->height;
    }
    return FS_OK;
}
