/* jobs/job_text.c: the job's cross-key checks (fs_job_validate) and its
 * YAML form (fs_job_to_yaml), which fs_job_parse must read back to the
 * same bytes: strings are written double-quoted with every character the
 * YAML reader would refuse or fold (controls, line separators, BOM) escaped. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "jobs/job_keys.h"
#include "jobs/jobs.h"
#include "jobs/yaml_doc.h"

const char *fs_scheduler_name(fs_scheduler_kind k) {
    return k == FS_SCHED_EULER || k == FS_SCHED_DDIM ? fs_job_scheduler_names[k] : "unknown";
}

static const char *precision_name(fs_dtype dt) {
    for (int i = 0; i < 3; i++)
        if (fs_job_precision_dtypes[i] == dt) return fs_job_precision_names[i];
    return NULL;
}

/* ---------------------------------------------------------------- validate */

static fs_code check_text(const fs_job *job, const char *key, const char *s, size_t cap,
                          fs_error *err) {
    size_t len = strnlen(s, cap);
    if (len == cap)
        return fs_fail(err, FS_ERR_INVALID, "%s: %s: not NUL-terminated within %zu bytes",
                       job->source, key, cap);
    size_t bad = yd_utf8_check(s, len);
    if (bad != len)
        return fs_fail(err, FS_ERR_INVALID, "%s: %s: not valid UTF-8 (at byte %zu)", job->source,
                       key, bad);
    return FS_OK;
}

static fs_code check_range(const fs_job *job, const char *key, const char *sub, int v, int lo,
                           int hi, int mult, fs_error *err) {
    if (v >= lo && v <= hi && v % mult == 0) return FS_OK;
    if (mult > 1)
        return fs_fail(err, FS_ERR_RANGE, "%s: %s: %s: expected a multiple of %d in %d..%d, got %d",
                       job->source, key, sub, mult, lo, hi, v);
    return fs_fail(err, FS_ERR_RANGE, "%s: %s%s%s: expected an integer %d..%d, got %d", job->source,
                   key, sub ? ": " : "", sub ? sub : "", lo, hi, v);
}

fs_code fs_job_validate(const fs_job *job, fs_error *err) {
    if (!job) return fs_fail(err, FS_ERR_INVALID, "fs_job_validate: no job");
    if (strnlen(job->source, sizeof job->source) == sizeof job->source)
        return fs_fail(err, FS_ERR_INVALID, "job: source is not NUL-terminated");
    fs_code rc;
    if ((rc = check_text(job, "model", job->model, sizeof job->model, err)) ||
        (rc = check_text(job, "prompt", job->prompt, sizeof job->prompt, err)) ||
        (rc = check_text(job, "negative_prompt", job->negative_prompt, sizeof job->negative_prompt,
                         err)) ||
        (rc = check_text(job, "output", job->output, sizeof job->output, err)) ||
        (rc = check_text(job, "noise", job->noise, sizeof job->noise, err)))
        return rc;
    if (!job->prompt[0])
        return fs_fail(err, FS_ERR_INVALID, "%s: missing required key 'prompt' (the text to draw)",
                       job->source);
    if (!job->output[0])
        return fs_fail(err, FS_ERR_INVALID, "%s: output: must not be empty (the PNG to write)",
                       job->source);
    if ((rc = check_range(job, "steps", NULL, job->steps, 1, 1000, 1, err))) return rc;
    if (!(job->guidance >= 0 && job->guidance <= 100))  /* also refuses NaN */
        return fs_fail(err, FS_ERR_RANGE, "%s: guidance: expected a number 0..100, got %g",
                       job->source, (double)job->guidance);
    if (job->scheduler != FS_SCHED_EULER && job->scheduler != FS_SCHED_DDIM)
        return fs_fail(err, FS_ERR_INVALID, "%s: scheduler: expected one of euler, ddim, got %d",
                       job->source, (int)job->scheduler);
    if (!precision_name(job->precision))
        return fs_fail(err, FS_ERR_INVALID, "%s: precision: expected one of fp32, fp16, bf16, got %s",
                       job->source, fs_dtype_name(job->precision));
    if ((rc = check_range(job, "size", "width", job->width, 64, 65536, 64, err)) ||
        (rc = check_range(job, "size", "height", job->height, 64, 65536, 64, err)) ||
        (rc = check_range(job, "original_size", "width", job->orig_width, 1, 65536, 1, err)) ||
        (rc = check_range(job, "original_size", "height", job->orig_height, 1, 65536, 1, err)) ||
        (rc = check_range(job, "target_size", "width", job->target_width, 1, 65536, 1, err)) ||
        (rc = check_range(job, "target_size", "height", job->target_height, 1, 65536, 1, err)) ||
        (rc = check_range(job, "crop", "left", job->crop_left, 0, 65536, 1, err)) ||
        (rc = check_range(job, "crop", "top", job->crop_top, 0, 65536, 1, err)) ||
        (rc = check_range(job, "vae_tiling", NULL, job->vae_tiling, 0, 1, 1, err)))
        return rc;
    return FS_OK;
}

/* ---------------------------------------------------------------- to YAML */

typedef struct {
    char *buf;
    size_t cap, len;  /* len: bytes the whole text needs, even past cap */
} sink;

static void put(sink *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(sink *o, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    size_t room = o->len < o->cap ? o->cap - o->len : 0;
    int n = vsnprintf(room ? o->buf + o->len : NULL, room, fmt, ap);
    va_end(ap);
    if (n > 0) o->len += (size_t)n;
}

/* Characters libyaml's reader accepts as they are inside a double-quoted
 * scalar; U+0085, U+2028 and U+2029 are line breaks there (folded), U+FEFF
 * a byte order mark: all escaped. */
static int printable(uint32_t cp) {
    if (cp == 0x2028 || cp == 0x2029 || cp == 0xFEFF) return 0;
    return (cp >= 0x20 && cp <= 0x7E) || (cp >= 0xA0 && cp <= 0xD7FF) ||
           (cp >= 0xE000 && cp <= 0xFFFD) || (cp >= 0x10000 && cp <= 0x10FFFF);
}

static void put_quoted(sink *o, const char *s, size_t cap) {
    const unsigned char *u = (const unsigned char *)s;
    size_t len = strnlen(s, cap), i = 0;
    put(o, "\"");
    while (i < len) {
        uint32_t cp;
        size_t n = yd_utf8_decode(u + i, len - i, &cp);
        if (!n) { cp = u[i]; n = 1; }  /* not UTF-8 (fs_job_validate refuses it): as U+00xx */
        if (cp == '"') put(o, "\\\"");
        else if (cp == '\\') put(o, "\\\\");
        else if (cp == '\n') put(o, "\\n");
        else if (cp == '\t') put(o, "\\t");
        else if (cp == '\r') put(o, "\\r");
        else if (printable(cp)) put(o, "%.*s", (int)n, s + i);
        else if (cp < 0x100) put(o, "\\x%02X", (unsigned)cp);
        else if (cp < 0x10000) put(o, "\\u%04X", (unsigned)cp);
        else put(o, "\\U%08X", (unsigned)cp);
        i += n;
    }
    put(o, "\"");
}

size_t fs_job_to_yaml(const fs_job *job, char *buf, size_t cap) {
    sink o = {buf, buf ? cap : 0, 0};
    if (o.cap) buf[0] = 0;
    for (int k = 0; k < K_COUNT; k++) {
        put(&o, "%s: ", fs_job_key_names[k]);
        switch ((fs_job_key)k) {  /* no default: a new key without a writer is a warning */
        case K_MODEL:
            if (job->model[0]) put_quoted(&o, job->model, sizeof job->model);
            else put(&o, "default");
            break;
        case K_PROMPT: put_quoted(&o, job->prompt, sizeof job->prompt); break;
        case K_NEGATIVE_PROMPT:
            put_quoted(&o, job->negative_prompt, sizeof job->negative_prompt);
            break;
        case K_SEED: put(&o, "%llu", (unsigned long long)job->seed); break;
        case K_STEPS: put(&o, "%d", job->steps); break;
        case K_GUIDANCE: {
            /* the shortest %g that reads back (strtof) to the same float;
             * 9 digits always do */
            char num[32];
            for (int digits = 6; digits <= 9; digits++) {
                snprintf(num, sizeof num, "%.*g", digits, (double)job->guidance);
                if (strtof(num, NULL) == job->guidance) break;
            }
            put(&o, "%s", num);
            break;
        }
        case K_SCHEDULER: put(&o, "%s", fs_scheduler_name(job->scheduler)); break;
        case K_SIZE: put(&o, "[%d, %d]", job->width, job->height); break;
        case K_OUTPUT: put_quoted(&o, job->output, sizeof job->output); break;
        case K_PRECISION: {
            const char *p = precision_name(job->precision);
            put(&o, "%s", p ? p : "unknown");
            break;
        }
        case K_NOISE: put_quoted(&o, job->noise, sizeof job->noise); break;
        case K_ORIGINAL_SIZE: put(&o, "[%d, %d]", job->orig_width, job->orig_height); break;
        case K_TARGET_SIZE: put(&o, "[%d, %d]", job->target_width, job->target_height); break;
        case K_CROP: put(&o, "[%d, %d]", job->crop_left, job->crop_top); break;
        case K_VAE_TILING: put(&o, "%s", job->vae_tiling ? "true" : "false"); break;
        case K_COUNT: break;
        }
        put(&o, "\n");
    }
    return o.len;
}
