/* jobs/job_keys.c: the table of job keys (job_keys.h says what an entry
 * holds), the functions of the keys with structure (stages, freeu) and of
 * the checks that depend on steps, and the sink and checks they share with
 * job_text.c. */
#include "jobs/job_keys.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "unet/unet.h"   /* fs_blur_kind: the order of the blur names */

_Static_assert(sizeof(fs_scheduler_kind) == sizeof(int) && sizeof(fs_dtype) == sizeof(int),
               "JK_ENUM fields are read and written as int");

/* ---------------------------------------------------------------- output sink */

void jk_put(jk_sink *o, const char *fmt, ...) {
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

void jk_put_quoted(jk_sink *o, const char *s, size_t cap) {
    const unsigned char *u = (const unsigned char *)s;
    size_t len = strnlen(s, cap), i = 0;
    jk_put(o, "\"");
    while (i < len) {
        uint32_t cp;
        size_t n = yd_utf8_decode(u + i, len - i, &cp);
        if (!n) { cp = u[i]; n = 1; }  /* not UTF-8 (fs_job_validate refuses it): as U+00xx */
        if (cp == '"') jk_put(o, "\\\"");
        else if (cp == '\\') jk_put(o, "\\\\");
        else if (cp == '\n') jk_put(o, "\\n");
        else if (cp == '\t') jk_put(o, "\\t");
        else if (cp == '\r') jk_put(o, "\\r");
        else if (printable(cp)) jk_put(o, "%.*s", (int)n, s + i);
        else if (cp < 0x100) jk_put(o, "\\x%02X", (unsigned)cp);
        else if (cp < 0x10000) jk_put(o, "\\u%04X", (unsigned)cp);
        else jk_put(o, "\\U%08X", (unsigned)cp);
        i += n;
    }
    jk_put(o, "\"");
}

/* 9 digits always read back to the same float. */
void jk_put_float(jk_sink *o, float v) {
    char num[32];
    for (int digits = 6; digits <= 9; digits++) {
        snprintf(num, sizeof num, "%.*g", digits, (double)v);
        if (strtof(num, NULL) == v) break;
    }
    jk_put(o, "%s", num);
}

/* ---------------------------------------------------------------- checks of a built job */

fs_code jk_check_text(const fs_job *job, const char *key, const char *s, size_t cap, fs_error *err) {
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

fs_code jk_check_range(const fs_job *job, const char *key, const char *sub, int v, int lo, int hi,
                       int mult, fs_error *err) {
    if (v >= lo && v <= hi && v % mult == 0) return FS_OK;
    if (mult > 1)
        return fs_fail(err, FS_ERR_RANGE, "%s: %s: %s: expected a multiple of %d in %d..%d, got %d",
                       job->source, key, sub, mult, lo, hi, v);
    return fs_fail(err, FS_ERR_RANGE, "%s: %s%s%s: expected an integer %d..%d, got %d", job->source,
                   key, sub ? ": " : "", sub ? sub : "", lo, hi, v);
}

fs_code jk_check_number(const fs_job *job, const char *key, float v, float lo, float hi,
                        int lo_open, fs_error *err) {
    if (v >= lo && v <= hi && !(lo_open && v == lo)) return FS_OK;  /* also refuses NaN */
    return fs_fail(err, FS_ERR_RANGE, "%s: %s: expected a number %s%g%s%g, got %g", job->source,
                   key, lo_open ? "> " : "", (double)lo, lo_open ? " and <= " : "..", (double)hi,
                   (double)v);
}

/* ---------------------------------------------------------------- stages */

/* Presets: "2k" is [1024, 2048], each next one adds the double (squares). */
static const char *const stage_presets[] = {"2k", "4k", "8k", "16k"};
#define N_PRESETS 4
#define PRESET_BASE 1024

/* "a list of 1..8 sizes (each an integer, [width, height] or {width: ...,
 * height: ...}) or one of 2k, 4k, 8k, 16k": the count from the entry. */
static fs_code stages_expected(jr_ctx *c, const fs_job_key_def *d, const yd_node *v) {
    char what[200];
    int at = snprintf(what, sizeof what, "a list of %llu..%llu sizes (each an integer, [%s, %s] or "
                      "{%s: ..., %s: ...}) or one of", (unsigned long long)d->lo,
                      (unsigned long long)d->hi, d->pair.names[0], d->pair.names[1],
                      d->pair.names[0], d->pair.names[1]);
    for (int p = 0; p < N_PRESETS && at > 0 && (size_t)at < sizeof what; p++)
        at += snprintf(what + at, sizeof what - (size_t)at, "%s %s", p ? "," : "", stage_presets[p]);
    return jr_fail_expected(c, v, FS_ERR_INVALID, NULL, what);
}

static fs_code read_stages(jr_ctx *c, const fs_job_key_def *d, const yd_node *v, fs_job *job) {
    int n = 0, w[FS_JOB_MAX_STAGES] = {0}, h[FS_JOB_MAX_STAGES] = {0};
    fs_code rc = FS_OK;
    if (!jr_is_null(v) && v->kind == YD_SCALAR) {
        for (int p = 0; p < N_PRESETS && !n; p++)
            if (v->len == strlen(stage_presets[p]) && !strcmp(v->text, stage_presets[p])) {
                n = p + 2;
                for (int i = 0; i < n; i++) w[i] = h[i] = PRESET_BASE << i;
            }
        if (!n) return stages_expected(c, d, v);
    } else if (!jr_is_null(v) && v->kind == YD_SEQ) {
        if (v->count < d->lo || v->count > d->hi) {
            char what[64];
            snprintf(what, sizeof what, "%llu..%llu sizes", (unsigned long long)d->lo,
                     (unsigned long long)d->hi);
            return jr_fail_expected(c, v, FS_ERR_RANGE, NULL, what);
        }
        const char *key = c->key;
        char item[32];
        c->key = item;  /* "stages[1]: height: ..." */
        for (size_t i = 0; i < v->count && !rc; i++) {
            snprintf(item, sizeof item, "%s[%zu]", key, i);
            rc = jr_get_pair(c, v->items[i], &d->pair, &w[i], &h[i]);
            if (!rc && i > 0 && (w[i] < w[i - 1] || h[i] < h[i - 1]))
                rc = jr_fail_at(c, v->items[i], FS_ERR_INVALID,
                                "[%d, %d] is smaller than %s[%zu], [%d, %d]: a stage must be at least "
                                "as wide and as tall as the one before",
                                w[i], h[i], key, i - 1, w[i - 1], h[i - 1]);
        }
        c->key = key;
        if (rc) return rc;
        n = (int)v->count;
    } else {
        return stages_expected(c, d, v);
    }
    job->n_stages = n;
    memset(job->stage_width, 0, sizeof job->stage_width);  /* unused tails stay 0: equal bytes */
    memset(job->stage_height, 0, sizeof job->stage_height);
    memcpy(job->stage_width, w, sizeof(int) * (size_t)n);
    memcpy(job->stage_height, h, sizeof(int) * (size_t)n);
    return FS_OK;
}

/* Squares as one integer, others as [width, height]. */
static void write_stages(jk_sink *o, const fs_job_key_def *d, const fs_job *job) {
    (void)d;
    int n = job->n_stages < 1 ? 1 : job->n_stages;  /* fs_job_validate refuses what is clamped */
    if (n > FS_JOB_MAX_STAGES) n = FS_JOB_MAX_STAGES;
    jk_put(o, "[");
    for (int i = 0; i < n; i++) {
        int w = job->stage_width[i], h = job->stage_height[i];
        if (w == h) jk_put(o, "%s%d", i ? ", " : "", w);
        else jk_put(o, "%s[%d, %d]", i ? ", " : "", w, h);
    }
    jk_put(o, "]");
}

static void describe_stages(jk_sink *o, const fs_job_key_def *d) {
    jk_put(o, "a list of %llu..%llu sizes (each as `size`: multiples of %d in %d..%d), each at least "
           "as wide and as tall as the one before; or a preset of squares from %d, doubling:",
           (unsigned long long)d->lo, (unsigned long long)d->hi, d->pair.mult, d->pair.lo,
           d->pair.hi, PRESET_BASE);
    for (int p = 0; p < N_PRESETS; p++) jk_put(o, "%s `%s`", p ? "," : "", stage_presets[p]);
}

/* The stage list and the size it ends at; stage entries past the count
 * are 0, so equal jobs are equal bytes. */
static fs_code check_stages(const fs_job_key_def *d, const fs_job *job, fs_error *err) {
    fs_code rc;
    int n = job->n_stages;
    if ((rc = jk_check_range(job, d->name, "count", n, (int)d->lo, (int)d->hi, 1, err))) return rc;
    for (int i = 0; i < FS_JOB_MAX_STAGES; i++) {
        char sub[32];
        snprintf(sub, sizeof sub, "stage %d width", i);
        if (i >= n) {
            if (job->stage_width[i] || job->stage_height[i])
                return fs_fail(err, FS_ERR_INVALID, "%s: stages: entry %d is past the %d stage%s "
                               "and must be 0", job->source, i, n, n == 1 ? "" : "s");
            continue;
        }
        if ((rc = jk_check_range(job, d->name, sub, job->stage_width[i], d->pair.lo, d->pair.hi,
                                 d->pair.mult, err)))
            return rc;
        snprintf(sub, sizeof sub, "stage %d height", i);
        if ((rc = jk_check_range(job, d->name, sub, job->stage_height[i], d->pair.lo, d->pair.hi,
                                 d->pair.mult, err)))
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
    return FS_OK;
}

/* ---------------------------------------------------------------- freeu */

const char *const fs_job_freeu_names[4] = {"b1", "b2", "s1", "s2"};
const float fs_job_freeu_defaults[4] = {1.1f, 1.2f, 0.6f, 0.4f};

/* true / false / {b1:, b2:, s1:, s2:}: the value says everything, so a
 * factor left out (or FreeU turned off) is back at its default. */
static fs_code read_freeu(jr_ctx *c, const fs_job_key_def *d, const yd_node *v, fs_job *job) {
    float f[4];
    memcpy(f, fs_job_freeu_defaults, sizeof f);
    int on = jr_bool_value(v);
    if (on < 0 && !jr_is_null(v) && v->kind == YD_MAP) {
        const yd_node *seen[4] = {0};
        jr_names names = JR_NAMES(fs_job_freeu_names, 4);
        for (size_t i = 0; i < v->count; i++) {
            int k;
            fs_code rc;
            if ((rc = jr_read_key(c, v->items[2 * i], &names, seen, &k)) ||
                (rc = jr_get_number(c, v->items[2 * i + 1], fs_job_freeu_names[k], d->min, d->max,
                                    0, &f[k])))
                return rc;
        }
        on = 1;
    }
    if (on < 0)
        return jr_fail_expected(c, v, FS_ERR_INVALID, NULL,
                                "true, false or {b1: ..., b2: ..., s1: ..., s2: ...}");
    fs_job_freeu_set(job, on, f);
    return FS_OK;
}

/* false, true, or the mapping when a factor differs from its default. */
static void write_freeu(jk_sink *o, const fs_job_key_def *d, const fs_job *job) {
    (void)d;
    if (!job->freeu || fs_job_freeu_factors_default(job)) {
        jk_put(o, "%s", job->freeu ? "true" : "false");
        return;
    }
    float f[4];
    fs_job_freeu_get(job, f);
    jk_put(o, "{");
    for (int i = 0; i < 4; i++) {
        jk_put(o, "%s%s: ", i ? ", " : "", fs_job_freeu_names[i]);
        jk_put_float(o, f[i]);
    }
    jk_put(o, "}");
}

static void describe_freeu(jk_sink *o, const fs_job_key_def *d) {
    jk_put(o, "true, false or {");
    for (int i = 0; i < 4; i++) jk_put(o, "%s%s:", i ? ", " : "", fs_job_freeu_names[i]);
    jk_put(o, "}: numbers %g..%g; a factor left out is its default (", d->min, d->max);
    for (int i = 0; i < 4; i++) {
        jk_put(o, "%s", i ? ", " : "");
        jk_put_float(o, fs_job_freeu_defaults[i]);
    }
    jk_put(o, ")");
}

static fs_code check_freeu(const fs_job_key_def *d, const fs_job *job, fs_error *err) {
    fs_code rc;
    if ((rc = jk_check_range(job, d->name, NULL, job->freeu, 0, 1, 1, err))) return rc;
    float f[4];
    fs_job_freeu_get(job, f);
    for (int i = 0; i < 4; i++) {
        char key[16];
        snprintf(key, sizeof key, "%s: %s", d->name, fs_job_freeu_names[i]);
        if ((rc = jk_check_number(job, key, f[i], (float)d->min, (float)d->max, 0, err))) return rc;
    }
    /* "freeu: false" is written without factors: an off FreeU holds the defaults */
    if (!job->freeu && !fs_job_freeu_factors_default(job)) {
        const char *const *n = fs_job_freeu_names;
        const float *f0 = fs_job_freeu_defaults;
        return fs_fail(err, FS_ERR_INVALID, "%s: %s: off, but %s, %s, %s, %s are not the defaults "
                       "%g, %g, %g, %g (they only mean something when FreeU is on)", job->source,
                       d->name, n[0], n[1], n[2], n[3], (double)f0[0], (double)f0[1],
                       (double)f0[2], (double)f0[3]);
    }
    return FS_OK;
}

/* ---------------------------------------------------------------- checks against steps
 * A file may name steps after these keys and --set may change either, so
 * the reader checks only the entry's range; fs_job_validate (and the file's
 * resolution in jobs.c) check the bound against steps. */

static fs_code check_restart(const fs_job_key_def *d, const fs_job *job, fs_error *err) {
    if (job->restart_step >= 0 && job->restart_step < job->steps) return FS_OK;
    return fs_fail(err, FS_ERR_RANGE, "%s: %s: expected an integer 0..%d (below steps: %d), got %d",
                   job->source, d->name, job->steps - 1, job->steps, job->restart_step);
}

static fs_code check_dilate_tau(const fs_job_key_def *d, const fs_job *job, fs_error *err) {
    if (job->dilate_tau >= 0 && job->dilate_tau <= job->steps) return FS_OK;
    return fs_fail(err, FS_ERR_RANGE, "%s: %s: expected an integer 0..%d (at most steps: %d), got "
                   "%d", job->source, d->name, job->steps, job->steps, job->dilate_tau);
}

/* precision names the dtype it got, not its number. */
static fs_code check_precision(const fs_job_key_def *d, const fs_job *job, fs_error *err) {
    for (int i = 0; i < d->count; i++)
        if ((int)job->precision == d->values[i]) return FS_OK;
    return fs_fail(err, FS_ERR_INVALID, "%s: %s: expected one of fp32, fp16, bf16, got %s",
                   job->source, d->name, fs_dtype_name(job->precision));
}

/* ---------------------------------------------------------------- the table */

static const char *const scheduler_names[] = {[FS_SCHED_EULER] = "euler", [FS_SCHED_DDIM] = "ddim"};
static const char *const precision_names[] = {"fp32", "fp16", "bf16"};
static const int precision_values[] = {FS_DTYPE_F32, FS_DTYPE_F16, FS_DTYPE_BF16};
static const char *const upsample_names[] = {"rgb", "latent"};  /* by upsample_latent */
static const char *const blur_names[] = {[FS_BLUR_3D] = "3d", [FS_BLUR_WC] = "wc",
                                         [FS_BLUR_HW] = "hw", [FS_BLUR_FFT] = "fft"};

#define FIELD(f) .field = offsetof(fs_job, f), .size = sizeof(((fs_job *)0)->f)
#define PAIR(f1, f2) .field = offsetof(fs_job, f1), .field2 = offsetof(fs_job, f2)
#define NAMES(a) .names = (a), .count = (int)(sizeof(a) / sizeof *(a))
#define SIZE_SPEC {{"width", "height"}, 64, 65536, 64}

const fs_job_key_def fs_job_keys[K_COUNT] = {
    [K_MODEL] = {"model", JK_PATH, FIELD(model), .def = "default",
                 .help = "SGM .safetensors file or diffusers folder (relative to the job file); "
                         "`default` or \"\": the embedded tiny model, whose pictures are noise"},
    [K_PROMPT] = {"prompt", JK_STRING, FIELD(prompt), .required = 1,
                  .nonempty = "the text to draw",
                  .help = "the text to draw; past 75 tokens it is encoded in 75-token chunks"},
    [K_NEGATIVE_PROMPT] = {"negative_prompt", JK_STRING, FIELD(negative_prompt), .def = "",
                           .help = "what not to draw; none: SDXL's zero branch"},
    [K_SEED] = {"seed", JK_U64, FIELD(seed), .lo = 0, .hi = UINT64_MAX, .def = "0",
                .help = "keys every random number: the same pixels on any rank count"},
    [K_STEPS] = {"steps", JK_INT, FIELD(steps), .lo = 1, .hi = 1000, .def = "50",
                 .help = "sampler steps"},
    [K_GUIDANCE] = {"guidance", JK_NUMBER, FIELD(guidance), .min = 0, .max = 100, .def = "7.5",
                    .help = "CFG scale"},
    [K_SCHEDULER] = {"scheduler", JK_ENUM, FIELD(scheduler), NAMES(scheduler_names), .def = "euler",
                     .help = "diffusers' EulerDiscreteScheduler or DDIMScheduler (eta 0)"},
    [K_SIZE] = {"size", JK_PAIR, PAIR(width, height), .pair = SIZE_SPEC, .def = "1024",
                .help = "the picture; with stages, the last stage (left out, it follows them; "
                        "given, it must equal the last)"},
    [K_OUTPUT] = {"output", JK_STRING, FIELD(output), .nonempty = "the PNG to write",
                  .def = "out.png",
                  .help = "the PNG to write, relative to the directory the render runs in"},
    [K_PRECISION] = {"precision", JK_ENUM, FIELD(precision), NAMES(precision_names),
                     .values = precision_values, .def = "fp32", .check = check_precision,
                     .help = "the values the weights are rounded to after loading; compute is fp32"},
    [K_NOISE] = {"noise", JK_PATH, FIELD(noise), .file_kind = "a .safetensors file", .def = "",
                 .help = "initial noise instead of the seeded RNG: tensor `noise` [1, 4, h/8, w/8], "
                         "F32 NCHW as diffusers' `latents=`, before init_noise_sigma"},
    [K_ORIGINAL_SIZE] = {"original_size", JK_PAIR, PAIR(orig_width, orig_height),
                         .pair = {{"width", "height"}, 1, 65536, 1}, .follows = "stage 0's size",
                         .help = "SDXL micro-conditioning; FreeScale keeps the time ids at the "
                                 "base size"},
    [K_TARGET_SIZE] = {"target_size", JK_PAIR, PAIR(target_width, target_height),
                       .pair = {{"width", "height"}, 1, 65536, 1}, .follows = "stage 0's size",
                       .help = "SDXL micro-conditioning, as original_size"},
    [K_CROP] = {"crop", JK_PAIR, PAIR(crop_left, crop_top), .pair = {{"left", "top"}, 0, 65536, 1},
                .def = "0", .help = "SDXL micro-conditioning: the crop's top-left corner"},
    [K_VAE_TILING] = {"vae_tiling", JK_BOOL, FIELD(vae_tiling), .def = "false",
                      .help = "diffusers' tiled VAE instead of exact strips"},
    /* FreeScale */
    [K_STAGES] = {"stages", JK_CUSTOM, .lo = 1, .hi = FS_JOB_MAX_STAGES, .pair = SIZE_SPEC,
                  .follows = "one stage: size", .read = read_stages, .write = write_stages,
                  .describe = describe_stages, .check = check_stages,
                  .help = "FreeScale's self-cascade, stage by stage; one stage is a plain render"},
    [K_RESTART_STEP] = {"restart_step", JK_INT, FIELD(restart_step), .lo = 0, .hi = 999,
                        .follows = "int(0.3 * steps): 15 at 50", .check = check_restart,
                        .help = "the step each later stage restarts at; below steps"},
    [K_COSINE_SCALE] = {"cosine_scale", JK_NUMBER, FIELD(cosine_scale), .min = 0, .max = 100,
                        .def = "2.0",
                        .help = "the detail blend's alpha (with a mask: where the mask is nonzero)"},
    [K_COSINE_SCALE_BG] = {"cosine_scale_bg", JK_NUMBER, FIELD(cosine_scale_bg), .min = 0,
                           .max = 100, .def = "1.0",
                           .help = "the detail blend's alpha where the mask is zero (mask only)"},
    [K_DILATE_TAU] = {"dilate_tau", JK_INT, FIELD(dilate_tau), .lo = 0, .hi = 1000,
                      .follows = "round(0.7 * steps), halves to even: 35 at 50",
                      .check = check_dilate_tau,
                      .help = "the later stages' convs are dilated while step < tau; at most steps"},
    [K_FAST_MODE] = {"fast_mode", JK_BOOL, FIELD(fast_mode), .def = "false",
                     .help = "global attention on dilated sub-lattices"},
    [K_UPSAMPLE] = {"upsample", JK_CHOICE, FIELD(upsample_latent), NAMES(upsample_names),
                    .def = "rgb",
                    .help = "between stages: decode, bicubic, encode; or bicubic on the latent"},
    [K_MASK] = {"mask", JK_PATH, FIELD(mask), .file_kind = "a PNG file", .def = "",
                .help = "detail mask: cosine_scale where nonzero, cosine_scale_bg elsewhere"},
    [K_INPUT_IMAGE] = {"input_image", JK_PATH, FIELD(input_image), .file_kind = "a PNG file",
                       .def = "",
                       .help = "img2img: replaces stage 0, whose size it must have (the renderer "
                               "checks)"},
    [K_FREEU] = {"freeu", JK_CUSTOM, .min = 0, .max = 10,
                 .follows = "on for several stages, off for one", .read = read_freeu,
                 .write = write_freeu, .describe = describe_freeu, .check = check_freeu,
                 .help = "FreeU in the up blocks; off, a plain render matches diffusers'"},
    [K_BLUR] = {"blur", JK_CHOICE, FIELD(blur), NAMES(blur_names), .def = "3d",
                .help = "scale fusion's low-pass: the official HEAD's 3-D blur, variants A (wc) "
                        "and B (hw), or the paper's FFT"},
    [K_BLUR_SIGMA] = {"blur_sigma", JK_NUMBER, FIELD(blur_sigma), .min = 0, .max = 100,
                      .lo_open = 1, .def = "1.0", .help = "the low-pass's Gaussian sigma"},
    [K_STAGE_OUTPUTS] = {"stage_outputs", JK_BOOL, FIELD(stage_outputs), .def = "false",
                         .help = "also write each earlier stage's PNG next to output, as "
                                 "`NAME_<W>x<H>.png`"},
    [K_SCALE_FUSION] = {"scale_fusion", JK_BOOL, FIELD(scale_fusion), .def = "true",
                        .help = "scale fusion in the later stages; false for ablations"},
    [K_DILATION] = {"dilation", JK_BOOL, FIELD(dilation), .def = "true",
                    .help = "restrained dilation in the later stages; false for ablations"},
};
