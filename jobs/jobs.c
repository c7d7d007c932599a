/* jobs/jobs.c: the job schema. Reads the tree yaml_doc.c builds, one key at
 * a time, into an fs_job; every value goes through the same readers
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

const char *const fs_job_key_names[K_COUNT] = {
    [K_MODEL] = "model",         [K_PROMPT] = "prompt",       [K_NEGATIVE_PROMPT] = "negative_prompt",
    [K_SEED] = "seed",           [K_STEPS] = "steps",         [K_GUIDANCE] = "guidance",
    [K_SCHEDULER] = "scheduler", [K_SIZE] = "size",           [K_OUTPUT] = "output",
    [K_PRECISION] = "precision", [K_NOISE] = "noise",         [K_ORIGINAL_SIZE] = "original_size",
    [K_TARGET_SIZE] = "target_size", [K_CROP] = "crop",       [K_VAE_TILING] = "vae_tiling",
    [K_STAGES] = "stages",       [K_RESTART_STEP] = "restart_step",
    [K_COSINE_SCALE] = "cosine_scale", [K_COSINE_SCALE_BG] = "cosine_scale_bg",
    [K_DILATE_TAU] = "dilate_tau", [K_FAST_MODE] = "fast_mode", [K_UPSAMPLE] = "upsample",
    [K_MASK] = "mask",           [K_INPUT_IMAGE] = "input_image", [K_FREEU] = "freeu",
    [K_BLUR] = "blur",           [K_BLUR_SIGMA] = "blur_sigma", [K_STAGE_OUTPUTS] = "stage_outputs",
    [K_SCALE_FUSION] = "scale_fusion", [K_DILATION] = "dilation",
};

const char *const fs_job_scheduler_names[2] = {"euler", "ddim"};
const char *const fs_job_precision_names[3] = {"fp32", "fp16", "bf16"};
const fs_dtype fs_job_precision_dtypes[3] = {FS_DTYPE_F32, FS_DTYPE_F16, FS_DTYPE_BF16};
const char *const fs_job_upsample_names[2] = {"rgb", "latent"};
const char *const fs_job_blur_names[4] = {[FS_JOB_BLUR_3D] = "3d", [FS_JOB_BLUR_WC] = "wc",
                                          [FS_JOB_BLUR_HW] = "hw", [FS_JOB_BLUR_FFT] = "fft"};
const char *const fs_job_freeu_names[4] = {"b1", "b2", "s1", "s2"};
const float fs_job_freeu_defaults[4] = {1.1f, 1.2f, 0.6f, 0.4f};

/* ---------------------------------------------------------------- FreeScale values */

/* Presets: "2k" is [1024, 2048], each next one adds the double (squares). */
static const char *const stage_presets[] = {"2k", "4k", "8k", "16k"};
#define N_PRESETS 4
#define STAGES_WHAT "a list of 1..8 sizes (each an integer, [width, height] or {width: ..., " \
                    "height: ...}) or one of 2k, 4k, 8k, 16k"

static fs_code get_stages(jr_ctx *c, const yd_node *v, fs_job *job) {
    int n = 0, w[FS_JOB_MAX_STAGES] = {0}, h[FS_JOB_MAX_STAGES] = {0};
    fs_code rc = FS_OK;
    if (!jr_is_null(v) && v->kind == YD_SCALAR) {
        for (int p = 0; p < N_PRESETS && !n; p++)
            if (v->len == strlen(stage_presets[p]) && !strcmp(v->text, stage_presets[p])) {
                n = p + 2;
                for (int i = 0; i < n; i++) w[i] = h[i] = 1024 << i;
            }
        if (!n) return jr_fail_expected(c, v, FS_ERR_INVALID, NULL, STAGES_WHAT);
    } else if (!jr_is_null(v) && v->kind == YD_SEQ) {
        if (v->count < 1 || v->count > FS_JOB_MAX_STAGES)
            return jr_fail_expected(c, v, FS_ERR_RANGE, NULL, "1..8 sizes");
        const char *key = c->key;
        char item[32];
        c->key = item;  /* "stages[1]: height: ..." */
        for (size_t i = 0; i < v->count && !rc; i++) {
            snprintf(item, sizeof item, "%s[%zu]", key, i);
            rc = jr_get_pair(c, v->items[i], &jr_size_spec, &w[i], &h[i]);
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
        return jr_fail_expected(c, v, FS_ERR_INVALID, NULL, STAGES_WHAT);
    }
    job->n_stages = n;
    memset(job->stage_width, 0, sizeof job->stage_width);  /* unused tails stay 0: equal bytes */
    memset(job->stage_height, 0, sizeof job->stage_height);
    memcpy(job->stage_width, w, sizeof(int) * (size_t)n);
    memcpy(job->stage_height, h, sizeof(int) * (size_t)n);
    return FS_OK;
}

static void set_freeu(fs_job *job, int on, const float f[4]) {
    job->freeu = on;
    job->freeu_b1 = f[0], job->freeu_b2 = f[1], job->freeu_s1 = f[2], job->freeu_s2 = f[3];
}

/* true / false / {b1:, b2:, s1:, s2:}: the value says everything, so a
 * factor left out (or FreeU turned off) is back at its default. */
static fs_code get_freeu(jr_ctx *c, const yd_node *v, fs_job *job) {
    float f[4];
    memcpy(f, fs_job_freeu_defaults, sizeof f);
    int on = jr_bool_value(v);
    if (on < 0 && !jr_is_null(v) && v->kind == YD_MAP) {
        const yd_node *seen[4] = {0};
        for (size_t i = 0; i < v->count; i++) {
            int k;
            fs_code rc;
            if ((rc = jr_read_key(c, v->items[2 * i], fs_job_freeu_names, 4, seen, &k)) ||
                (rc = jr_get_number(c, v->items[2 * i + 1], fs_job_freeu_names[k], 0, 10, 0, &f[k])))
                return rc;
        }
        on = 1;
    }
    if (on < 0)
        return jr_fail_expected(c, v, FS_ERR_INVALID, NULL,
                                "true, false or {b1: ..., b2: ..., s1: ..., s2: ...}");
    set_freeu(job, on, f);
    return FS_OK;
}

/* Reads one key's value into job; on error the job is unchanged. */
static fs_code set_value(jr_ctx *c, fs_job_key k, const yd_node *v, fs_job *job) {
    fs_code rc = FS_OK;
    int i = 0, w = 0, h = 0;
    uint64_t u = 0;
    c->key = fs_job_key_names[k];
    switch (k) {
    case K_MODEL: return jr_get_path(c, v, NULL, job->model);
    case K_NOISE: return jr_get_path(c, v, "a .safetensors file", job->noise);
    case K_MASK: return jr_get_path(c, v, "a PNG file", job->mask);
    case K_INPUT_IMAGE: return jr_get_path(c, v, "a PNG file", job->input_image);
    case K_PROMPT: {
        char text[FS_JOB_TEXT_MAX];
        if ((rc = jr_get_string(c, v, sizeof text, 0, text))) return rc;
        if (!text[0]) return jr_fail_at(c, v, FS_ERR_INVALID, "must not be empty (the text to draw)");
        memcpy(job->prompt, text, sizeof text);
        return FS_OK;
    }
    case K_NEGATIVE_PROMPT: return jr_get_string(c, v, FS_JOB_TEXT_MAX, 1, job->negative_prompt);
    case K_OUTPUT: {
        char path[FS_JOB_PATH_MAX];
        if ((rc = jr_get_string(c, v, sizeof path, 0, path))) return rc;
        if (!path[0]) return jr_fail_at(c, v, FS_ERR_INVALID, "must not be empty (the PNG to write)");
        memcpy(job->output, path, sizeof path);
        return FS_OK;
    }
    case K_SEED:
        if (!(rc = jr_get_u64(c, v, NULL, 0, UINT64_MAX, 1, &u))) job->seed = u;
        return rc;
    case K_STEPS: return jr_get_int(c, v, NULL, 1, 1000, 1, &job->steps);
    case K_GUIDANCE: return jr_get_number(c, v, NULL, 0, 100, 0, &job->guidance);
    case K_SCHEDULER:
        if (!(rc = jr_get_enum(c, v, fs_job_scheduler_names, 2, &i)))
            job->scheduler = (fs_scheduler_kind)i;
        return rc;
    case K_PRECISION:
        if (!(rc = jr_get_enum(c, v, fs_job_precision_names, 3, &i)))
            job->precision = fs_job_precision_dtypes[i];
        return rc;
    case K_SIZE:
        if (!(rc = jr_get_pair(c, v, &jr_size_spec, &w, &h))) job->width = w, job->height = h;
        return rc;
    case K_ORIGINAL_SIZE:
        if (!(rc = jr_get_pair(c, v, &jr_cond_spec, &w, &h)))
            job->orig_width = w, job->orig_height = h;
        return rc;
    case K_TARGET_SIZE:
        if (!(rc = jr_get_pair(c, v, &jr_cond_spec, &w, &h)))
            job->target_width = w, job->target_height = h;
        return rc;
    case K_CROP:
        if (!(rc = jr_get_pair(c, v, &jr_crop_spec, &w, &h))) job->crop_left = w, job->crop_top = h;
        return rc;
    case K_VAE_TILING: return jr_get_bool(c, v, &job->vae_tiling);
    case K_STAGES: return get_stages(c, v, job);
    /* the bounds against steps are checked once every key is known (a file
     * may name steps after them; --set: fs_job_validate) */
    case K_RESTART_STEP: return jr_get_int(c, v, NULL, 0, 999, 1, &job->restart_step);
    case K_DILATE_TAU: return jr_get_int(c, v, NULL, 0, 1000, 1, &job->dilate_tau);
    case K_COSINE_SCALE: return jr_get_number(c, v, NULL, 0, 100, 0, &job->cosine_scale);
    case K_COSINE_SCALE_BG: return jr_get_number(c, v, NULL, 0, 100, 0, &job->cosine_scale_bg);
    case K_FAST_MODE: return jr_get_bool(c, v, &job->fast_mode);
    case K_UPSAMPLE:
        if (!(rc = jr_get_enum(c, v, fs_job_upsample_names, 2, &i))) job->upsample_latent = i;
        return rc;
    case K_FREEU: return get_freeu(c, v, job);
    case K_BLUR:
        if (!(rc = jr_get_enum(c, v, fs_job_blur_names, 4, &i))) job->blur = i;
        return rc;
    case K_BLUR_SIGMA: return jr_get_number(c, v, NULL, 0, 100, 1, &job->blur_sigma);
    case K_STAGE_OUTPUTS: return jr_get_bool(c, v, &job->stage_outputs);
    case K_SCALE_FUSION: return jr_get_bool(c, v, &job->scale_fusion);
    case K_DILATION: return jr_get_bool(c, v, &job->dilation);
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
    job->n_stages = 1;
    job->stage_width[0] = job->stage_height[0] = 1024;
    job->restart_step = fs_job_default_restart(job->steps);
    job->cosine_scale = 2.0f;
    job->cosine_scale_bg = 1.0f;
    job->dilate_tau = fs_job_default_dilate_tau(job->steps);
    set_freeu(job, 0, fs_job_freeu_defaults);  /* a plain render: diffusers' plain pipeline */
    job->blur = FS_JOB_BLUR_3D;
    job->blur_sigma = 1.0f;
    job->scale_fusion = 1;
    job->dilation = 1;
}

/* The keys a file left out that follow others, and the checks between
 * keys, each error at the value it is about (vals: the value nodes). */
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
        c->key = fs_job_key_names[K_SIZE];
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
    } else if (job->restart_step >= job->steps) {
        c->key = fs_job_key_names[K_RESTART_STEP];
        return jr_fail_at(c, vals[K_RESTART_STEP], FS_ERR_RANGE,
                          "expected an integer 0..%d (below steps: %d, %s), got %d",
                          job->steps - 1, job->steps, steps_at, job->restart_step);
    }
    if (!vals[K_DILATE_TAU]) {
        job->dilate_tau = fs_job_default_dilate_tau(job->steps);
    } else if (job->dilate_tau > job->steps) {
        c->key = fs_job_key_names[K_DILATE_TAU];
        return jr_fail_at(c, vals[K_DILATE_TAU], FS_ERR_RANGE,
                          "expected an integer 0..%d (at most steps: %d, %s), got %d", job->steps,
                          job->steps, steps_at, job->dilate_tau);
    }
    /* FreeU by default for cascades only: one stage must match diffusers' plain pipeline */
    if (!vals[K_FREEU]) set_freeu(job, job->n_stages > 1, fs_job_freeu_defaults);
    return FS_OK;
}

static fs_code apply_root(jr_ctx *c, const yd_node *root, fs_job *job) {
    char d[256];
    if (!jr_is_null(root) && root->kind != YD_MAP)
        return jr_fail_at(c, root, FS_ERR_FORMAT, "the top level must be a mapping of keys "
                          "(prompt: ..., steps: ...), got %s", jr_describe(root, d, sizeof d));
    const yd_node *seen[K_COUNT] = {0}, *vals[K_COUNT] = {0};
    fs_code rc;
    size_t pairs = jr_is_null(root) ? 0 : root->count;
    for (size_t i = 0; i < pairs; i++) {
        int k;
        c->key = NULL;
        if ((rc = jr_read_key(c, root->items[2 * i], fs_job_key_names, K_COUNT, seen, &k)) ||
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
    int str = k == K_MODEL || k == K_PROMPT || k == K_NEGATIVE_PROMPT || k == K_OUTPUT ||
              k == K_NOISE || k == K_MASK || k == K_INPUT_IMAGE;
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
            set_freeu(job, n > 1, fs_job_freeu_defaults);
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
    yd_node keynode = {.kind = YD_SCALAR, .text = (char *)assignment, .len = (size_t)(eq - assignment)};
    char keybuf[64];
    if (keynode.len >= sizeof keybuf)
        return jr_fail_unknown(&c, &keynode, fs_job_key_names, K_COUNT);
    memcpy(keybuf, assignment, keynode.len);
    keybuf[keynode.len] = 0;
    keynode.text = keybuf;
    int k = jr_find_name(keybuf, keynode.len, fs_job_key_names, K_COUNT);
    if (k < 0) return jr_fail_unknown(&c, &keynode, fs_job_key_names, K_COUNT);
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
        c.key = fs_job_key_names[k];
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
