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

static fs_code check_number(const fs_job *job, const char *key, float v, float lo, float hi,
                            int lo_open, fs_error *err) {
    if (v >= lo && v <= hi && !(lo_open && v == lo)) return FS_OK;  /* also refuses NaN */
    return fs_fail(err, FS_ERR_RANGE, "%s: %s: expected a number %s%g%s%g, got %g", job->source,
                   key, lo_open ? "> " : "", (double)lo, lo_open ? " and <= " : "..", (double)hi,
                   (double)v);
}

/* The FreeScale keys: what the reader guarantees for a parsed job, checked
 * again for one built or changed by hand (and after --set). */
static fs_code validate_freescale(const fs_job *job, fs_error *err) {
    fs_code rc;
    int n = job->n_stages;
    if ((rc = check_text(job, "mask", job->mask, sizeof job->mask, err)) ||
        (rc = check_text(job, "input_image", job->input_image, sizeof job->input_image, err)) ||
        (rc = check_range(job, "stages", "count", n, 1, FS_JOB_MAX_STAGES, 1, err)))
        return rc;
    for (int i = 0; i < FS_JOB_MAX_STAGES; i++) {
        char sub[32];
        snprintf(sub, sizeof sub, "stage %d width", i);
        if (i >= n) {
            if (job->stage_width[i] || job->stage_height[i])  /* equal jobs are equal bytes */
                return fs_fail(err, FS_ERR_INVALID, "%s: stages: entry %d is past the %d stage%s "
                               "and must be 0", job->source, i, n, n == 1 ? "" : "s");
            continue;
        }
        if ((rc = check_range(job, "stages", sub, job->stage_width[i], 64, 65536, 64, err)))
            return rc;
        snprintf(sub, sizeof sub, "stage %d height", i);
        if ((rc = check_range(job, "stages", sub, job->stage_height[i], 64, 65536, 64, err)))
            return rc;
        if (i > 0 && (job->stage_width[i] < job->stage_width[i - 1] ||
                      job->stage_height[i] < job->stage_height[i - 1]))
            return fs_fail(err, FS_ERR_INVALID, "%s: stages[%d]: [%d, %d] is smaller than "
                           "stages[%d], [%d, %d]: a stage must be at least as wide and as tall as "
                           "the one before", job->source, i, job->stage_width[i],
                           job->stage_height[i], i - 1, job->stage_width[i - 1],
                           job->stage_height[i - 1]);
    }
    if (job->width != job->stage_width[n - 1] || job->height != job->stage_height[n - 1])
        return fs_fail(err, FS_ERR_INVALID, "%s: size: [%d, %d] differs from the last stage of "
                       "stages, [%d, %d]", job->source, job->width, job->height,
                       job->stage_width[n - 1], job->stage_height[n - 1]);
    if (job->restart_step < 0 || job->restart_step >= job->steps)
        return fs_fail(err, FS_ERR_RANGE, "%s: restart_step: expected an integer 0..%d (below "
                       "steps: %d), got %d", job->source, job->steps - 1, job->steps,
                       job->restart_step);
    if (job->dilate_tau < 0 || job->dilate_tau > job->steps)
        return fs_fail(err, FS_ERR_RANGE, "%s: dilate_tau: expected an integer 0..%d (at most "
                       "steps: %d), got %d", job->source, job->steps, job->steps, job->dilate_tau);
    float f[4];
    fs_job_freeu_get(job, f);
    if ((rc = check_number(job, "cosine_scale", job->cosine_scale, 0, 100, 0, err)) ||
        (rc = check_number(job, "cosine_scale_bg", job->cosine_scale_bg, 0, 100, 0, err)) ||
        (rc = check_number(job, "blur_sigma", job->blur_sigma, 0, 100, 1, err)) ||
        (rc = check_range(job, "fast_mode", NULL, job->fast_mode, 0, 1, 1, err)) ||
        (rc = check_range(job, "upsample", NULL, job->upsample_latent, 0, 1, 1, err)) ||
        (rc = check_range(job, "freeu", NULL, job->freeu, 0, 1, 1, err)) ||
        (rc = check_range(job, "blur", NULL, job->blur, 0, 3, 1, err)) ||
        (rc = check_range(job, "stage_outputs", NULL, job->stage_outputs, 0, 1, 1, err)) ||
        (rc = check_range(job, "scale_fusion", NULL, job->scale_fusion, 0, 1, 1, err)) ||
        (rc = check_range(job, "dilation", NULL, job->dilation, 0, 1, 1, err)))
        return rc;
    for (int i = 0; i < 4; i++) {
        char key[16];
        snprintf(key, sizeof key, "freeu: %s", fs_job_freeu_names[i]);
        if ((rc = check_number(job, key, f[i], 0, 10, 0, err))) return rc;
    }
    /* "freeu: false" is written without factors: an off FreeU holds the defaults */
    if (!job->freeu && !fs_job_freeu_factors_default(job))
        return fs_fail(err, FS_ERR_INVALID, "%s: freeu: off, but b1, b2, s1, s2 are not the "
                       "defaults 1.1, 1.2, 0.6, 0.4 (they only mean something when FreeU is on)",
                       job->source);
    /* input_image must be stage 0's size: the renderer checks it (jobs reads no images) */
    return FS_OK;
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
    return validate_freescale(job, err);
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

/* The shortest %g that reads back (strtof) to the same float; 9 digits
 * always do. */
static void put_float(sink *o, float v) {
    char num[32];
    for (int digits = 6; digits <= 9; digits++) {
        snprintf(num, sizeof num, "%.*g", digits, (double)v);
        if (strtof(num, NULL) == v) break;
    }
    put(o, "%s", num);
}

static void put_name(sink *o, const char *const *names, int count, int v) {
    put(o, "%s", v >= 0 && v < count ? names[v] : "unknown");
}

/* Squares as one integer, others as [width, height]. */
static void put_stages(sink *o, const fs_job *job) {
    int n = job->n_stages < 1 ? 1 : job->n_stages;  /* fs_job_validate refuses what is clamped */
    if (n > FS_JOB_MAX_STAGES) n = FS_JOB_MAX_STAGES;
    put(o, "[");
    for (int i = 0; i < n; i++) {
        int w = job->stage_width[i], h = job->stage_height[i];
        if (w == h) put(o, "%s%d", i ? ", " : "", w);
        else put(o, "%s[%d, %d]", i ? ", " : "", w, h);
    }
    put(o, "]");
}

static void put_freeu(sink *o, const fs_job *job) {
    if (!job->freeu || fs_job_freeu_factors_default(job)) {
        put(o, "%s", job->freeu ? "true" : "false");
        return;
    }
    float f[4];
    fs_job_freeu_get(job, f);
    put(o, "{");
    for (int i = 0; i < 4; i++) {
        put(o, "%s%s: ", i ? ", " : "", fs_job_freeu_names[i]);
        put_float(o, f[i]);
    }
    put(o, "}");
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
        case K_GUIDANCE: put_float(&o, job->guidance); break;
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
        case K_STAGES: put_stages(&o, job); break;
        case K_RESTART_STEP: put(&o, "%d", job->restart_step); break;
        case K_COSINE_SCALE: put_float(&o, job->cosine_scale); break;
        case K_COSINE_SCALE_BG: put_float(&o, job->cosine_scale_bg); break;
        case K_DILATE_TAU: put(&o, "%d", job->dilate_tau); break;
        case K_FAST_MODE: put(&o, "%s", job->fast_mode ? "true" : "false"); break;
        case K_UPSAMPLE: put_name(&o, fs_job_upsample_names, 2, job->upsample_latent); break;
        case K_MASK: put_quoted(&o, job->mask, sizeof job->mask); break;
        case K_INPUT_IMAGE: put_quoted(&o, job->input_image, sizeof job->input_image); break;
        case K_FREEU: put_freeu(&o, job); break;
        case K_BLUR: put_name(&o, fs_job_blur_names, 4, job->blur); break;
        case K_BLUR_SIGMA: put_float(&o, job->blur_sigma); break;
        case K_STAGE_OUTPUTS: put(&o, "%s", job->stage_outputs ? "true" : "false"); break;
        case K_SCALE_FUSION: put(&o, "%s", job->scale_fusion ? "true" : "false"); break;
        case K_DILATION: put(&o, "%s", job->dilation ? "true" : "false"); break;
        case K_COUNT: break;
        }
        put(&o, "\n");
    }
    return o.len;
}
