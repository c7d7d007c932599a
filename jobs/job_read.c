/* jobs/job_read.c: the value readers shared by every key (jobs.c): one
 * YAML node -> one checked C value, or an error that names where the value
 * came from ("job.yaml:3:8: steps: ..." or "--set steps: ...") and what was
 * expected. A reader writes its output only on success, so a failed --set
 * leaves the job as it was. */
#include "jobs/job_read.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

fs_code jr_fail_at(const jr_ctx *c, const yd_node *n, fs_code code, const char *fmt, ...) {
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
void jr_show(const char *s, size_t len, char *out, size_t cap) {
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

int jr_is_null(const yd_node *n) { return !n || yd_is_null(n); }

/* What was found, for "expected X, got Y". */
const char *jr_describe(const yd_node *n, char *buf, size_t cap) {
    char v[200];
    if (jr_is_null(n)) return "nothing (null)";
    if (n->kind == YD_SEQ)
        snprintf(buf, cap, "a sequence of %zu item%s", n->count, n->count == 1 ? "" : "s");
    else if (n->kind == YD_MAP)
        snprintf(buf, cap, "a mapping");
    else {
        jr_show(n->text, n->len, v, sizeof v);
        snprintf(buf, cap, "%s'%s'", n->plain ? "" : "a string ", v);
    }
    return buf;
}

fs_code jr_fail_expected(const jr_ctx *c, const yd_node *n, fs_code code, const char *sub,
                         const char *expected) {
    char d[256];
    return jr_fail_at(c, n, code, "%s%sexpected %s, got %s", sub ? sub : "", sub ? ": " : "",
                      expected, jr_describe(n, d, sizeof d));
}

/* ---------------------------------------------------------------- scalars */

/* 0: a decimal integer in [lo, hi]; 1: not a decimal integer; 2: one out of range. */
static int read_uint(const yd_node *n, uint64_t lo, uint64_t hi, uint64_t *out) {
    if (jr_is_null(n) || n->kind != YD_SCALAR || !n->plain || n->len != strlen(n->text)) return 1;
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

fs_code jr_get_u64(const jr_ctx *c, const yd_node *n, const char *sub, uint64_t lo, uint64_t hi,
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
    if (r) return jr_fail_expected(c, n, r == 2 ? FS_ERR_RANGE : FS_ERR_INVALID, sub, what);
    *out = v;
    return FS_OK;
}

fs_code jr_get_int(const jr_ctx *c, const yd_node *n, const char *sub, int lo, int hi, int mult,
                   int *out) {
    uint64_t v = 0;
    fs_code rc = jr_get_u64(c, n, sub, (uint64_t)lo, (uint64_t)hi, (uint64_t)mult, &v);
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

fs_code jr_get_number(const jr_ctx *c, const yd_node *n, const char *sub, double lo, double hi,
                      int lo_open, float *out) {
    char what[64];
    if (lo_open) snprintf(what, sizeof what, "a number > %g and <= %g", lo, hi);
    else snprintf(what, sizeof what, "a number %g..%g", lo, hi);
    if (jr_is_null(n) || n->kind != YD_SCALAR || !n->plain || n->len != strlen(n->text) ||
        !is_decimal_number(n->text))
        return jr_fail_expected(c, n, FS_ERR_INVALID, sub, what);
    double d = strtod(n->text, NULL);
    if (!(d >= lo && d <= hi) || (lo_open && d == lo))
        return jr_fail_expected(c, n, FS_ERR_RANGE, sub, what);
    /* strtof, not (float)d: one rounding, so the %.9g that fs_job_to_yaml
     * writes reads back to the same float */
    float f = strtof(n->text, NULL);
    /* 1e-50 is > 0 but its float is 0: refused, the float is what is used */
    if (lo_open && !(f > lo)) return jr_fail_expected(c, n, FS_ERR_RANGE, sub, what);
    *out = f == 0 ? 0.0f : f;  /* -0 becomes 0: one spelling per value */
    return FS_OK;
}

int jr_bool_value(const yd_node *n) {
    static const char *const yes[] = {"true", "yes"}, *const no[] = {"false", "no"};
    if (!jr_is_null(n) && n->kind == YD_SCALAR && n->plain && n->len == strlen(n->text))
        for (int i = 0; i < 2; i++) {
            if (!strcasecmp(n->text, yes[i])) return 1;
            if (!strcasecmp(n->text, no[i])) return 0;
        }
    return -1;
}

fs_code jr_get_bool(const jr_ctx *c, const yd_node *n, int *out) {
    int b = jr_bool_value(n);
    if (b < 0) return jr_fail_expected(c, n, FS_ERR_INVALID, NULL, "true, false, yes or no");
    *out = b;
    return FS_OK;
}

/* Copies a string value into dst[cap] (zero-filled, so equal jobs are equal
 * bytes). null_ok: null and absent give "". */
fs_code jr_get_string(const jr_ctx *c, const yd_node *n, size_t cap, int null_ok, char *dst) {
    if (jr_is_null(n) && null_ok) {
        memset(dst, 0, cap);
        return FS_OK;
    }
    if (jr_is_null(n) || n->kind != YD_SCALAR)
        return jr_fail_expected(c, n, FS_ERR_INVALID, NULL, "a string");
    size_t nul = strlen(n->text);
    if (nul != n->len)
        return jr_fail_at(c, n, FS_ERR_INVALID, "the string holds a NUL byte (at byte %zu); "
                          "strings cannot contain \\0", nul);
    if (n->len > cap - 1)
        return jr_fail_at(c, n, FS_ERR_RANGE, "%zu bytes long, at most %zu allowed", n->len,
                          cap - 1);
    size_t bad = yd_utf8_check(n->text, n->len);
    if (bad != n->len)
        return jr_fail_at(c, n, FS_ERR_INVALID, "not valid UTF-8 (at byte %zu)", bad);
    memset(dst, 0, cap);
    memcpy(dst, n->text, n->len);
    return FS_OK;
}

fs_code jr_get_enum(const jr_ctx *c, const yd_node *n, const char *const *names, int count,
                    int *out) {
    if (!jr_is_null(n) && n->kind == YD_SCALAR)
        for (int i = 0; i < count; i++)
            if (n->len == strlen(names[i]) && !strcmp(n->text, names[i])) { *out = i; return FS_OK; }
    char what[128] = "one of ";
    for (int i = 0; i < count; i++) {
        strcat(what, names[i]);
        if (i + 1 < count) strcat(what, ", ");
    }
    return jr_fail_expected(c, n, FS_ERR_INVALID, NULL, what);
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
static const char *suggest(const char *name, const jr_names *names) {
    const char *best = NULL;
    size_t best_d = 3, ln = strlen(name);
    for (int i = 0; i < names->count; i++) {
        size_t d = levenshtein(name, jr_name(names, i));
        if (d < best_d) { best_d = d; best = jr_name(names, i); }
    }
    if (best || ln < 3) return best;
    for (int i = 0; i < names->count; i++) {
        const char *known = jr_name(names, i);
        size_t lk = strlen(known);
        if (!strncmp(name, known, ln < lk ? ln : lk)) return known;
    }
    return NULL;
}

int jr_find_name(const char *name, size_t len, const jr_names *names) {
    if (len != strlen(name)) return -1;
    for (int i = 0; i < names->count; i++)
        if (!strcmp(name, jr_name(names, i))) return i;
    return -1;
}

fs_code jr_fail_unknown(const jr_ctx *c, const yd_node *key, const jr_names *names) {
    char v[200], known[1024] = "";
    jr_show(key->text, key->len, v, sizeof v);
    if (!strcmp(key->text, "<<"))
        return jr_fail_at(c, key, FS_ERR_INVALID, "merge keys ('<<') are not supported; "
                          "write the keys out");
    const char *s = key->len == strlen(key->text) ? suggest(key->text, names) : NULL;
    if (s) return jr_fail_at(c, key, FS_ERR_INVALID, "unknown key '%s' (did you mean '%s'?)", v, s);
    for (int i = 0; i < names->count; i++) {
        strcat(known, jr_name(names, i));
        if (i + 1 < names->count) strcat(known, ", ");
    }
    return jr_fail_at(c, key, FS_ERR_INVALID, "unknown key '%s' (known keys: %s)", v, known);
}

/* A key node of a mapping: a non-null scalar naming one of names. seen[i]
 * holds the node that named i first (duplicates are errors). */
fs_code jr_read_key(const jr_ctx *c, const yd_node *key, const jr_names *names,
                    const yd_node **seen, int *index) {
    char d[256];
    if (jr_is_null(key) || key->kind != YD_SCALAR)
        return jr_fail_at(c, key, FS_ERR_INVALID, "expected a key name, got %s",
                          jr_describe(key, d, sizeof d));
    int k = jr_find_name(key->text, key->len, names);
    if (k < 0) return jr_fail_unknown(c, key, names);
    if (seen[k])
        return jr_fail_at(c, key, FS_ERR_INVALID,
                          "duplicate key '%s' (first at line %d, column %d; again at line %d, "
                          "column %d)", jr_name(names, k), seen[k]->line, seen[k]->col, key->line, key->col);
    seen[k] = key;
    *index = k;
    return FS_OK;
}

fs_code jr_get_pair(const jr_ctx *c, const yd_node *n, const jr_pair_spec *ps, int *a, int *b) {
    int v[2];
    fs_code rc;
    char what[128];
    snprintf(what, sizeof what, "an integer, [%s, %s] or {%s: ..., %s: ...}", ps->names[0],
             ps->names[1], ps->names[0], ps->names[1]);
    if (jr_is_null(n)) return jr_fail_expected(c, n, FS_ERR_INVALID, NULL, what);
    if (n->kind == YD_SCALAR) {
        if ((rc = jr_get_int(c, n, NULL, ps->lo, ps->hi, ps->mult, &v[0]))) return rc;
        v[1] = v[0];
    } else if (n->kind == YD_SEQ) {
        if (n->count != 2) {
            snprintf(what, sizeof what, "[%s, %s]", ps->names[0], ps->names[1]);
            return jr_fail_expected(c, n, FS_ERR_INVALID, NULL, what);
        }
        for (int i = 0; i < 2; i++)
            if ((rc = jr_get_int(c, n->items[i], ps->names[i], ps->lo, ps->hi, ps->mult, &v[i])))
                return rc;
    } else {
        const yd_node *seen[2] = {NULL, NULL};
        for (size_t i = 0; i < n->count; i++) {
            int k;
            jr_names names = JR_NAMES(ps->names, 2);
            if ((rc = jr_read_key(c, n->items[2 * i], &names, seen, &k)) ||
                (rc = jr_get_int(c, n->items[2 * i + 1], ps->names[k], ps->lo, ps->hi, ps->mult,
                                 &v[k])))
                return rc;
        }
        for (int k = 0; k < 2; k++)
            if (!seen[k])
                return jr_fail_at(c, n, FS_ERR_INVALID,
                                  "missing '%s' (expected {%s: ..., %s: ...})", ps->names[k],
                                  ps->names[0], ps->names[1]);
    }
    *a = v[0];
    *b = v[1];
    return FS_OK;
}

/* model, noise, mask, input_image: must exist; stored as the absolute,
 * resolved path so the job means the same file from any directory (and
 * round-trips unchanged). */
fs_code jr_get_path(const jr_ctx *c, const yd_node *n, const char *file_kind, char *dst) {
    char given[FS_JOB_PATH_MAX], joined[FS_JOB_PATH_MAX + 4096], sh[200];
    fs_code rc = jr_get_string(c, n, sizeof given, 1, given);
    if (rc) return rc;
    if (!given[0] || (!file_kind && !strcmp(given, "default"))) {
        memset(dst, 0, FS_JOB_PATH_MAX);  /* the embedded model / none */
        return FS_OK;
    }
    if (given[0] != '/' && c->base_dir && c->base_dir[0])
        snprintf(joined, sizeof joined, "%s/%s", c->base_dir, given);
    else
        snprintf(joined, sizeof joined, "%s", given);
    jr_show(given, strlen(given), sh, sizeof sh);
    struct stat st;
    if (stat(joined, &st) != 0)
        return jr_fail_at(c, n, FS_ERR_IO, "'%s' does not exist (looked for %s: %s)", sh, joined,
                          strerror(errno));
    if (file_kind && !S_ISREG(st.st_mode))
        return jr_fail_at(c, n, FS_ERR_IO, "'%s' is not a file (expected %s)", sh, file_kind);
    if (!file_kind && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
        return jr_fail_at(c, n, FS_ERR_IO, "'%s' is neither a file nor a folder", sh);
    char *real = realpath(joined, NULL);
    if (!real) return jr_fail_at(c, n, FS_ERR_IO, "cannot resolve '%s': %s", sh, strerror(errno));
    size_t len = strlen(real);
    if (len >= FS_JOB_PATH_MAX || yd_utf8_check(real, len) != len) {
        free(real);
        return jr_fail_at(c, n, FS_ERR_RANGE, "the resolved path of '%s' is longer than %d bytes "
                          "or not UTF-8", sh, FS_JOB_PATH_MAX - 1);
    }
    memset(dst, 0, FS_JOB_PATH_MAX);
    memcpy(dst, real, len);
    free(real);
    return FS_OK;
}
