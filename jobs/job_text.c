/* jobs/job_text.c: what is made from the key table (job_keys.c) besides
 * reading: the checks of a built job (fs_job_validate), its YAML form
 * (fs_job_to_yaml), which fs_job_parse must read back to the same bytes,
 * and the key list as Markdown (fs_job_keys_markdown: `freescale keys`,
 * the README's table). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "jobs/job_keys.h"
#include "jobs/jobs.h"

const char *fs_scheduler_name(fs_scheduler_kind k) {
    const fs_job_key_def *d = &fs_job_keys[K_SCHEDULER];
    return (int)k >= 0 && (int)k < d->count ? d->names[k] : "unknown";
}

/* The name of an enum or choice value, or NULL. */
static const char *value_name(const fs_job_key_def *d, int v) {
    for (int i = 0; i < d->count; i++)
        if ((d->values ? d->values[i] : i) == v) return d->names[i];
    return NULL;
}

/* ---------------------------------------------------------------- validate */

/* One key's value as its entry allows (the reader guarantees it for a
 * parsed job; a job built or changed by hand is checked here). */
static fs_code check_key(const fs_job_key_def *d, const fs_job *job, fs_error *err) {
    if (d->check) return d->check(d, job, err);
    /* JK_INT, JK_BOOL, JK_CHOICE, JK_ENUM: an int field */
    int int_field = d->type == JK_INT || d->type == JK_BOOL || d->type == JK_CHOICE ||
                    d->type == JK_ENUM;
    int v = int_field ? *JK_CFIELD(int, job, d->field) : 0;
    switch (d->type) {
    case JK_STRING:
    case JK_PATH: {
        const char *s = JK_CFIELD(char, job, d->field);
        fs_code rc = jk_check_text(job, d->name, s, d->size, err);
        if (rc || !d->nonempty || s[0]) return rc;
        if (d->required)
            return fs_fail(err, FS_ERR_INVALID, "%s: missing required key '%s' (%s)", job->source,
                           d->name, d->nonempty);
        return fs_fail(err, FS_ERR_INVALID, "%s: %s: must not be empty (%s)", job->source, d->name,
                       d->nonempty);
    }
    case JK_U64: return FS_OK;  /* the field holds nothing else */
    case JK_INT: return jk_check_range(job, d->name, NULL, v, (int)d->lo, (int)d->hi, 1, err);
    case JK_NUMBER:
        return jk_check_number(job, d->name, *JK_CFIELD(float, job, d->field), (float)d->min,
                               (float)d->max, d->lo_open, err);
    case JK_BOOL: return jk_check_range(job, d->name, NULL, v, 0, 1, 1, err);
    case JK_CHOICE: return jk_check_range(job, d->name, NULL, v, 0, d->count - 1, 1, err);
    case JK_ENUM: {
        if (value_name(d, v)) return FS_OK;
        char names[128] = "";
        for (int i = 0; i < d->count; i++)
            snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? ", " : "",
                     d->names[i]);
        return fs_fail(err, FS_ERR_INVALID, "%s: %s: expected one of %s, got %d", job->source,
                       d->name, names, v);
    }
    case JK_PAIR: {
        const jr_pair_spec *p = &d->pair;
        fs_code rc = jk_check_range(job, d->name, p->names[0], *JK_CFIELD(int, job, d->field), p->lo,
                                    p->hi, p->mult, err);
        return rc ? rc : jk_check_range(job, d->name, p->names[1], *JK_CFIELD(int, job, d->field2),
                                        p->lo, p->hi, p->mult, err);
    }
    case JK_CUSTOM: return FS_OK;  /* its check, if any, ran above */
    }
    return fs_fail(err, FS_ERR_INVALID, "%s: %s: internal: no check for its type", job->source,
                   d->name);
}

/* Every key in the table's order; the keys that follow others check their
 * bounds against them (restart_step, dilate_tau: steps; stages: size) in
 * their entries' checks. Not checked here: that input_image is stage 0's
 * size (the renderer reads the PNG; jobs reads no images). */
fs_code fs_job_validate(const fs_job *job, fs_error *err) {
    if (!job) return fs_fail(err, FS_ERR_INVALID, "fs_job_validate: no job");
    if (strnlen(job->source, sizeof job->source) == sizeof job->source)
        return fs_fail(err, FS_ERR_INVALID, "job: source is not NUL-terminated");
    for (int k = 0; k < K_COUNT; k++) {
        fs_code rc = check_key(&fs_job_keys[k], job, err);
        if (rc) return rc;
    }
    return FS_OK;
}

/* ---------------------------------------------------------------- to YAML */

static void write_key(jk_sink *o, const fs_job_key_def *d, const fs_job *job) {
    const char *name;
    switch (d->type) {
    case JK_PATH:
        if (!d->file_kind && !JK_CFIELD(char, job, d->field)[0]) {
            jk_put(o, "default");  /* the embedded model */
            return;
        }
        /* fall through */
    case JK_STRING: jk_put_quoted(o, JK_CFIELD(char, job, d->field), d->size); return;
    case JK_U64: jk_put(o, "%llu", (unsigned long long)*JK_CFIELD(uint64_t, job, d->field)); return;
    case JK_INT: jk_put(o, "%d", *JK_CFIELD(int, job, d->field)); return;
    case JK_NUMBER: jk_put_float(o, *JK_CFIELD(float, job, d->field)); return;
    case JK_BOOL: jk_put(o, "%s", *JK_CFIELD(int, job, d->field) ? "true" : "false"); return;
    case JK_CHOICE:
    case JK_ENUM:
        name = value_name(d, *JK_CFIELD(int, job, d->field));
        jk_put(o, "%s", name ? name : "unknown");
        return;
    case JK_PAIR:
        jk_put(o, "[%d, %d]", *JK_CFIELD(int, job, d->field), *JK_CFIELD(int, job, d->field2));
        return;
    case JK_CUSTOM: d->write(o, d, job); return;
    }
}

size_t fs_job_to_yaml(const fs_job *job, char *buf, size_t cap) {
    jk_sink o = {buf, buf ? cap : 0, 0};
    if (o.cap) buf[0] = 0;
    for (int k = 0; k < K_COUNT; k++) {
        jk_put(&o, "%s: ", fs_job_keys[k].name);
        write_key(&o, &fs_job_keys[k], job);
        jk_put(&o, "\n");
    }
    return o.len;
}

/* ---------------------------------------------------------------- the key list */

/* What a value of the key may be, from its entry. */
static void describe_key(jk_sink *o, const fs_job_key_def *d) {
    const jr_pair_spec *p = &d->pair;
    switch (d->type) {
    case JK_STRING: jk_put(o, "a string"); return;
    case JK_PATH:
        jk_put(o, "%s that must exist", d->file_kind ? d->file_kind : "a file or a folder");
        return;
    case JK_U64:
    case JK_INT:
        jk_put(o, "an integer %llu..%llu", (unsigned long long)d->lo, (unsigned long long)d->hi);
        return;
    case JK_NUMBER:
        if (d->lo_open) jk_put(o, "a number > %g and <= %g", d->min, d->max);
        else jk_put(o, "a number %g..%g", d->min, d->max);
        return;
    case JK_BOOL: jk_put(o, "true or false"); return;
    case JK_CHOICE:
    case JK_ENUM:
        for (int i = 0; i < d->count; i++)
            jk_put(o, "%s`%s`", i == 0 ? "" : i + 1 < d->count ? ", " : " or ", d->names[i]);
        return;
    case JK_PAIR:
        jk_put(o, "one integer for both, [%s, %s] or {%s:, %s:}: ", p->names[0], p->names[1],
               p->names[0], p->names[1]);
        if (p->mult > 1) jk_put(o, "multiples of %d in %d..%d", p->mult, p->lo, p->hi);
        else jk_put(o, "integers %d..%d", p->lo, p->hi);
        return;
    case JK_CUSTOM: d->describe(o, d); return;
    }
}

size_t fs_job_keys_markdown(char *buf, size_t cap) {
    jk_sink o = {buf, buf ? cap : 0, 0};
    if (o.cap) buf[0] = 0;
    jk_put(&o, "| key | value | default | |\n|---|---|---|---|\n");
    for (int k = 0; k < K_COUNT; k++) {
        const fs_job_key_def *d = &fs_job_keys[k];
        jk_put(&o, "| `%s` | ", d->name);
        describe_key(&o, d);
        if (d->required) jk_put(&o, " | (required)");
        else if (d->follows) jk_put(&o, " | %s", d->follows);
        else if (!d->def[0]) jk_put(&o, " | none");
        else jk_put(&o, " | `%s`", d->def);
        jk_put(&o, " | %s |\n", d->help);
    }
    return o.len;
}
