/* jobs/jobs.c: the job schema. Reads the tree yaml_doc.c builds, one key at
 * a time, into an fs_job, as the key's entry in the table (job_keys.c)
 * says; every value goes through the same readers
 * (job_read.c) whether it comes from the file or from --set, so both give
 * the same checks and the same messages (only the prefix differs:
 * "job.yaml:3:8: steps: ..." or "--set steps: ..."). Keys whose defaults
 * follow other keys (size/stages, original_size, restart_step, dilate_tau,
 * freeu) are resolved here: after all keys for a file, by the "follows while
 * it equals the old default" rule for --set. fs_job_validate and
 * fs_job_to_yaml are in job_text.c. */
#include "jobs/jobs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "jobs/job_keys.h"
#include "jobs/job_read.h"
#include "jobs/yaml_doc.h"

#define JOB_FILE_MAX (1u << 20)  /* a job is a few hundred bytes; refuse anything absurd */

/* ---------------------------------------------------------------- one key's value */

/* A string key: the reader writes only on success, and "" is refused for a
 * key that must say something, so the value is read aside first. */
static fs_code read_string(jr_ctx *c, const fs_job_key_def *d, const yd_node *v, fs_job *job) {
    char text[FS_JOB_TEXT_MAX > FS_JOB_PATH_MAX ? FS_JOB_TEXT_MAX : FS_JOB_PATH_MAX];
    fs_code rc = jr_get_string(c, v, d->size, !d->nonempty, text);
    if (rc) return rc;
    if (d->nonempty && !text[0])
        return jr_fail_at(c, v, FS_ERR_INVALID, "must not be empty (%s)", d->nonempty);
    memcpy(JK_FIELD(char, job, d->field), text, d->size);
    return FS_OK;
}

/* Reads one key's value into job, as its table entry says; on error the
 * job is unchanged. */
static fs_code set_value(jr_ctx *c, fs_job_key k, const yd_node *v, fs_job *job) {
    const fs_job_key_def *d = &fs_job_keys[k];
    fs_code rc = FS_OK;
    int i = 0, w = 0, h = 0;
    uint64_t u = 0;
    c->key = d->name;
    switch (d->type) {
    case JK_STRING: return read_string(c, d, v, job);
    case JK_PATH: return jr_get_path(c, v, d->file_kind, JK_FIELD(char, job, d->field));
    case JK_U64:
        if (!(rc = jr_get_u64(c, v, NULL, d->lo, d->hi, 1, &u))) *JK_FIELD(uint64_t, job, d->field) = u;
        return rc;
    /* restart_step and dilate_tau: the bounds against steps are checked once
     * every key is known (a file may name steps after them; --set:
     * fs_job_validate) */
    case JK_INT:
        return jr_get_int(c, v, NULL, (int)d->lo, (int)d->hi, 1, JK_FIELD(int, job, d->field));
    case JK_NUMBER:
        return jr_get_number(c, v, NULL, d->min, d->max, d->lo_open, JK_FIELD(float, job, d->field));
    case JK_BOOL: return jr_get_bool(c, v, JK_FIELD(int, job, d->field));
    case JK_CHOICE:
    case JK_ENUM:
        if (!(rc = jr_get_enum(c, v, d->names, d->count, &i)))
            *JK_FIELD(int, job, d->field) = d->values ? d->values[i] : i;
        return rc;
    case JK_PAIR:
        if (!(rc = jr_get_pair(c, v, &d->pair, &w, &h)))
            *JK_FIELD(int, job, d->field) = w, *JK_FIELD(int, job, d->field2) = h;
        return rc;
    case JK_CUSTOM: return d->read(c, d, v, job);
    }
    return fs_fail(c->err, FS_ERR_INVALID, "internal: key %d", (int)k);
}

/* ---------------------------------------------------------------- entry points */

/* The keys a file left out that follow others, and the checks between
 * keys (the entries' own checks), each error at the value it is about and
 * naming where steps came from (vals: the value nodes). */
static fs_code resolve_file(jr_ctx *c, const yd_node *const *vals, fs_job *job) {
    int n = job->n_stages, lw = job->stage_width[n - 1], lh = job->stage_height[n - 1];
    char steps_at[64];
    if (vals[K_STEPS])
        snprintf(steps_at, sizeof steps_at, "line %d", vals[K_STEPS]->line);
    else
        snprintf(steps_at, sizeof steps_at, "the default");
    if (!vals[K_STAGES]) {
        job->stage_width[0] = job->width;  /* one stage: the size */
        job->stage_height[0] = job->height;
    } else if (!vals[K_SIZE]) {
        job->width = lw, job->height = lh;
    } else if (job->width != lw || job->height != lh) {
        c->key = fs_job_keys[K_SIZE].name;
        return jr_fail_at(c, vals[K_SIZE], FS_ERR_INVALID,
                          "[%d, %d] differs from the last stage of stages (line %d, column %d), "
                          "[%d, %d]; leave size out (it follows stages) or make them equal",
                          job->width, job->height, vals[K_STAGES]->line, vals[K_STAGES]->col, lw, lh);
    }
    /* FreeScale keeps the time ids at the base size (spec 1.2) */
    if (!vals[K_ORIGINAL_SIZE])
        job->orig_width = job->stage_width[0], job->orig_height = job->stage_height[0];
    if (!vals[K_TARGET_SIZE])
        job->target_width = job->stage_width[0], job->target_height = job->stage_height[0];
    if (!vals[K_RESTART_STEP]) {
        job->restart_step = fs_job_default_restart(job->steps);
    } else if (fs_job_keys[K_RESTART_STEP].check(&fs_job_keys[K_RESTART_STEP], job, NULL)) {
        c->key = fs_job_keys[K_RESTART_STEP].name;
        return jr_fail_at(c, vals[K_RESTART_STEP], FS_ERR_RANGE,
                          "expected an integer 0..%d (below steps: %d, %s), got %d",
                          job->steps - 1, job->steps, steps_at, job->restart_step);
    }
    if (!vals[K_DILATE_TAU]) {
        job->dilate_tau = fs_job_default_dilate_tau(job->steps);
    } else if (fs_job_keys[K_DILATE_TAU].check(&fs_job_keys[K_DILATE_TAU], job, NULL)) {
        c->key = fs_job_keys[K_DILATE_TAU].name;
        return jr_fail_at(c, vals[K_DILATE_TAU], FS_ERR_RANGE,
                          "expected an integer 0..%d (at most steps: %d, %s), got %d", job->steps,
                          job->steps, steps_at, job->dilate_tau);
    }
    /* FreeU by default for cascades only: one stage must match diffusers' plain pipeline */
    if (!vals[K_FREEU]) fs_job_freeu_set(job, job->n_stages > 1, fs_job_freeu_defaults);
    return FS_OK;
}

/* Every key's default read from its entry by the key's own reader, then
 * the defaults that follow other keys as for a file that names no key.
 * The entries' defaults are constants the readers accept (test_jobs checks
 * the resulting values), so nothing here fails. */
void fs_job_defaults(fs_job *job) {
    memset(job, 0, sizeof *job);  /* zero tails and padding: equal jobs are equal bytes */
    strcpy(job->source, "--set");
    fs_error err;
    jr_ctx c = {"<defaults>", NULL, NULL, &err};
    for (int k = 0; k < K_COUNT; k++) {
        const char *def = fs_job_keys[k].def;
        if (!def) continue;
        yd_node v = {.kind = YD_SCALAR, .line = 1, .col = 1, .text = (char *)def,
                     .len = strlen(def), .plain = 1};
        (void)set_value(&c, (fs_job_key)k, &v, job);
    }
    job->n_stages = 1;  /* stages follows size: one stage */
    const yd_node *none[K_COUNT] = {0};
    (void)resolve_file(&c, none, job);
}

static fs_code apply_root(jr_ctx *c, const yd_node *root, fs_job *job) {
    char d[256];
    if (!jr_is_null(root) && root->kind != YD_MAP)
        return jr_fail_at(c, root, FS_ERR_FORMAT, "the top level must be a mapping of keys "
                          "(prompt: ..., steps: ...), got %s", jr_describe(root, d, sizeof d));
    const yd_node *seen[K_COUNT] = {0}, *vals[K_COUNT] = {0};
    fs_code rc;
    size_t pairs = jr_is_null(root) ? 0 : root->count;
    const jr_names names = FS_JOB_KEY_NAMES;
    for (size_t i = 0; i < pairs; i++) {
        int k;
        c->key = NULL;
        if ((rc = jr_read_key(c, root->items[2 * i], &names, seen, &k)) ||
            (rc = set_value(c, (fs_job_key)k, root->items[2 * i + 1], job)))
            return rc;
        vals[k] = root->items[2 * i + 1];
    }
    c->key = NULL;
    if (!seen[K_PROMPT])
        return jr_fail_at(c, jr_is_null(root) ? NULL : root, FS_ERR_INVALID,
                          "missing required key 'prompt' (the text to draw)");
    return resolve_file(c, vals, job);
}

fs_code fs_job_parse(const char *text, size_t len, const char *label, const char *base_dir,
                     fs_job *job, fs_error *err) {
    fs_job_defaults(job);
    if (!label) label = "<string>";
    snprintf(job->source, sizeof job->source, "%s", label);
    jr_ctx c = {label, base_dir, NULL, err};
    if (len > JOB_FILE_MAX)
        return jr_fail_at(&c, NULL, FS_ERR_FORMAT, "%zu bytes; a job file holds at most %u", len,
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
    int str = fs_job_keys[k].type == JK_STRING || fs_job_keys[k].type == JK_PATH;
    return str && value[0] != '"' && value[0] != '\'';
}

/* After --set k: the keys whose defaults follow k move along while they
 * still hold the default they had before (see jobs.h); one that differs was
 * chosen and stays. */
static void follow(const fs_job *old, fs_job_key k, fs_job *job) {
    int ow = old->stage_width[0], oh = old->stage_height[0];
    if (k == K_SIZE && job->n_stages == 1) {
        job->stage_width[0] = job->width;  /* one stage is the size */
        job->stage_height[0] = job->height;
    }
    if (k == K_STAGES) {
        int n = job->n_stages;
        job->width = job->stage_width[n - 1], job->height = job->stage_height[n - 1];
        if (old->freeu == (old->n_stages > 1) && fs_job_freeu_factors_default(job))
            fs_job_freeu_set(job, n > 1, fs_job_freeu_defaults);
    }
    if (k == K_SIZE || k == K_STAGES) {  /* the time ids follow stage 0 */
        if (job->orig_width == ow && job->orig_height == oh)
            job->orig_width = job->stage_width[0], job->orig_height = job->stage_height[0];
        if (job->target_width == ow && job->target_height == oh)
            job->target_width = job->stage_width[0], job->target_height = job->stage_height[0];
    }
    if (k == K_STEPS) {
        if (job->restart_step == fs_job_default_restart(old->steps))
            job->restart_step = fs_job_default_restart(job->steps);
        if (job->dilate_tau == fs_job_default_dilate_tau(old->steps))
            job->dilate_tau = fs_job_default_dilate_tau(job->steps);
    }
}

fs_code fs_job_set(fs_job *job, const char *assignment, fs_error *err) {
    jr_ctx c = {NULL, NULL, NULL, err};
    char sh[200];
    const char *eq = assignment ? strchr(assignment, '=') : NULL;
    if (!eq || eq == assignment) {
        jr_show(assignment ? assignment : "", assignment ? strlen(assignment) : 0, sh, sizeof sh);
        return jr_fail_at(&c, NULL, FS_ERR_INVALID, "expected key=value, got '%s'", sh);
    }
    const jr_names names = FS_JOB_KEY_NAMES;
    yd_node keynode = {.kind = YD_SCALAR, .text = (char *)assignment, .len = (size_t)(eq - assignment)};
    char keybuf[64];
    if (keynode.len >= sizeof keybuf)
        return jr_fail_unknown(&c, &keynode, &names);
    memcpy(keybuf, assignment, keynode.len);
    keybuf[keynode.len] = 0;
    keynode.text = keybuf;
    int k = jr_find_name(keybuf, keynode.len, &names);
    if (k < 0) return jr_fail_unknown(&c, &keynode, &names);
    const char *value = eq + 1;
    /* what the following keys compare against (see follow below) */
    const fs_job old = *job;
    fs_code rc;
    if (literal_string_key((fs_job_key)k, value)) {
        yd_node v = {.kind = YD_SCALAR, .text = (char *)value, .len = strlen(value), .plain = 0};
        rc = set_value(&c, (fs_job_key)k, &v, job);
    } else {
        yd_doc doc;
        yd_error ye;
        c.key = fs_job_keys[k].name;
        if (yd_parse(value, strlen(value), &doc, &ye)) {
            jr_show(value, strlen(value), sh, sizeof sh);
            return jr_fail_at(&c, NULL, ye.code, "cannot read '%s' as a YAML value: %s", sh, ye.msg);
        }
        rc = set_value(&c, (fs_job_key)k, doc.root, job);
        yd_free(&doc);
    }
    if (rc) return rc;
    follow(&old, (fs_job_key)k, job);
    return FS_OK;
}
