/* jobs/job_read.h: private to jobs/: the value readers (job_read.c) that
 * turn one YAML node into one checked C value for the key readers in
 * jobs.c. Every error names where the value came from and what was
 * expected; outputs are written only on success. */
#ifndef FS_JOBS_JOB_READ_H
#define FS_JOBS_JOB_READ_H

#include <stddef.h>
#include <stdint.h>
#include "core/core.h"
#include "jobs/jobs.h"
#include "jobs/yaml_doc.h"

/* Where a value comes from, for the messages. */
typedef struct {
    const char *label;     /* the job file's label; NULL: a --set */
    const char *base_dir;  /* relative paths start here (NULL: cwd) */
    const char *key;       /* the key being read (NULL: none yet) */
    fs_error *err;
} jr_ctx;

/* "label:LINE:COL: key: body" (n NULL: 1:1) or "--set key: body". */
fs_code jr_fail_at(const jr_ctx *c, const yd_node *n, fs_code code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* "[sub: ]expected WHAT, got <what n is>". */
fs_code jr_fail_expected(const jr_ctx *c, const yd_node *n, fs_code code, const char *sub,
                         const char *expected);
/* A value for a message: at most 40 bytes, control bytes escaped. */
void jr_show(const char *s, size_t len, char *out, size_t cap);
const char *jr_describe(const yd_node *n, char *buf, size_t cap);
int jr_is_null(const yd_node *n);   /* absent (NULL) or a YAML null */

/* Plain decimal integers in [lo, hi], a multiple of mult when mult > 1;
 * sub names a part of the value in messages ("width"), or NULL. */
fs_code jr_get_u64(const jr_ctx *c, const yd_node *n, const char *sub, uint64_t lo, uint64_t hi,
                   uint64_t mult, uint64_t *out);
fs_code jr_get_int(const jr_ctx *c, const yd_node *n, const char *sub, int lo, int hi, int mult,
                   int *out);
/* A decimal number in [lo, hi], or (lo, hi] when lo_open (the float it
 * rounds to must then be > lo too). */
fs_code jr_get_number(const jr_ctx *c, const yd_node *n, const char *sub, double lo, double hi,
                      int lo_open, float *out);
/* true/false/yes/no in any case (plain scalars only): 1, 0; -1 otherwise. */
int jr_bool_value(const yd_node *n);
fs_code jr_get_bool(const jr_ctx *c, const yd_node *n, int *out);
/* A string into dst[cap], zero-filled; null_ok: null gives "". */
fs_code jr_get_string(const jr_ctx *c, const yd_node *n, size_t cap, int null_ok, char *dst);
/* One of names (exact, case-sensitive); *out its index. */
fs_code jr_get_enum(const jr_ctx *c, const yd_node *n, const char *const *names, int count,
                    int *out);

/* The names a mapping's keys may take: count strings, each at `stride`
 * bytes from the one before, so both a plain array of names and the name
 * field of a table of structs (the job keys) can be searched. */
typedef struct {
    const void *first;   /* the first name's (const char *) slot */
    size_t stride;
    int count;
} jr_names;
#define JR_NAMES(array, n) ((jr_names){(array), sizeof *(array), (n)})
static inline const char *jr_name(const jr_names *ns, int i) {
    return *(const char *const *)(const void *)((const char *)ns->first + (size_t)i * ns->stride);
}

/* Keys of a mapping: index of name in names, or -1. */
int jr_find_name(const char *name, size_t len, const jr_names *names);
/* "unknown key 'x' (did you mean 'y'?)" or "(known keys: ...)". */
fs_code jr_fail_unknown(const jr_ctx *c, const yd_node *key, const jr_names *names);
/* A key node naming one of names; seen[i] holds the node that named i
 * first (a second one is a duplicate-key error). */
fs_code jr_read_key(const jr_ctx *c, const yd_node *key, const jr_names *names,
                    const yd_node **seen, int *index);

/* size-like values: one integer (both), [a, b] or {a: A, b: B}, each part
 * a multiple of mult in lo..hi (the job key table holds the specs). */
typedef struct {
    const char *names[2];
    int lo, hi, mult;
} jr_pair_spec;
fs_code jr_get_pair(const jr_ctx *c, const yd_node *n, const jr_pair_spec *ps, int *a, int *b);

/* A path that must exist, stored absolute and resolved (relative ones
 * start at c->base_dir). file_kind NULL: a model (a file or a folder;
 * "default" = the embedded model); otherwise a regular file, file_kind
 * saying which for the message ("a PNG file"). null or "" give "". */
fs_code jr_get_path(const jr_ctx *c, const yd_node *n, const char *file_kind, char *dst);

#endif
