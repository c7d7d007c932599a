/* tests/test_cascade_golden.c: FreeScale's self-cascade (worker/stage.c,
 * worker/images.c, sampler/cascade.c, the UNet's dilation / scale fusion /
 * FreeU) against the PyTorch reference tools/ref_freescale.py on the tiny
 * diffusers pipeline of tests/data/render/pipe (tests/data/cascade/README.md).
 * Both sides draw the same Philox numbers (initial noise, posterior sample,
 * stage noise, window jitter), so every stage's final latent must agree:
 * relative L2 <= 1e-3 per stage, per case (two and three stages, square and
 * non-square, FreeU on and off, fast mode, a detail mask, the 3-D and the
 * 2-D blur). Prints every measured error.
 *
 * Debugging aids (environment, this test only):
 *   FS_CASCADE_CASES=a,c   run only these cases
 *   FS_CASCADE_DUMP=DIR    write DIR/<case>.c.safetensors: every stage's latent
 *                          (NCHW, as the golden) and every decoded image (NCHW),
 *                          to compare with ref_freescale.py --debug DIR's tensors */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator/commands.h"
#include "io/io.h"
#include "check.h"

#define LIMIT 1e-3

typedef struct capture {
    float *latent[FS_JOB_MAX_STAGES];   /* NHWC [h][w][4] */
    int lh[FS_JOB_MAX_STAGES], lw[FS_JOB_MAX_STAGES];
    float *image[2 * FS_JOB_MAX_STAGES]; /* NHWC, in decode order */
    int ih[2 * FS_JOB_MAX_STAGES], iw[2 * FS_JOB_MAX_STAGES], istage[2 * FS_JOB_MAX_STAGES];
    int nimages;
    int bad;                            /* a hook saw something it cannot hold */
} capture;

static void on_latent(void *user, int stage, const float *s, int row0, int rows, int h, int w) {
    capture *c = user;
    if (stage < 0 || stage >= FS_JOB_MAX_STAGES) { c->bad = 1; return; }
    if (!c->latent[stage]) {
        c->latent[stage] = calloc((size_t)h * w * 4, sizeof(float));
        c->lh[stage] = h, c->lw[stage] = w;
    }
    if (!c->latent[stage] || c->lh[stage] != h || c->lw[stage] != w) { c->bad = 1; return; }
    memcpy(c->latent[stage] + (size_t)row0 * w * 4, s, sizeof(float) * (size_t)rows * w * 4);
}

/* Images come stage by stage (an image's strips in one run of calls): a new
 * entry starts whenever the stage changes. */
static void on_image(void *user, int stage, const float *s, int row0, int rows, int h, int w) {
    capture *c = user;
    int k = c->nimages - 1;
    if (k < 0 || c->istage[k] != stage) {
        if (c->nimages == 2 * FS_JOB_MAX_STAGES) { c->bad = 1; return; }
        k = c->nimages++;
        c->image[k] = calloc((size_t)h * w * 3, sizeof(float));
        c->ih[k] = h, c->iw[k] = w, c->istage[k] = stage;
    }
    if (!c->image[k] || c->ih[k] != h || c->iw[k] != w) { c->bad = 1; return; }
    memcpy(c->image[k] + (size_t)row0 * w * 3, s, sizeof(float) * (size_t)rows * w * 3);
}

static void capture_free(capture *c) {
    for (int i = 0; i < FS_JOB_MAX_STAGES; i++) free(c->latent[i]);
    for (int i = 0; i < c->nimages; i++) free(c->image[i]);
}

/* rel L2 of a (NHWC [h][w][c]) against b (NCHW [c][h][w]) */
static double rel_l2_nchw(const float *nhwc, const float *nchw, int h, int w, int c) {
    double num = 0, den = 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int k = 0; k < c; k++) {
                double a = nhwc[((size_t)y * w + x) * c + k], b = nchw[((size_t)k * h + y) * w + x];
                num += (a - b) * (a - b), den += b * b;
            }
    return sqrt(num / (den > 0 ? den : 1));
}

static float *to_nchw(const float *nhwc, int h, int w, int c) {
    float *o = malloc(sizeof(float) * (size_t)h * w * c);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int k = 0; k < c; k++)
                o[((size_t)k * h + y) * w + x] = nhwc[((size_t)y * w + x) * c + k];
    return o;
}

/* ---------------------------------------------------------------- the job from cases.json */
static int get_int(json_t *o, const char *k) { return (int)json_integer_value(json_object_get(o, k)); }
static double get_num(json_t *o, const char *k) { return json_number_value(json_object_get(o, k)); }
static int get_pair(json_t *o, const char *k, int *a, int *b) {
    json_t *v = json_object_get(o, k);
    if (!json_is_array(v) || json_array_size(v) != 2) return 0;
    *a = (int)json_integer_value(json_array_get(v, 0));
    *b = (int)json_integer_value(json_array_get(v, 1));
    return 1;
}

/* fs_job_defaults, then every key of the case (names as the fs_job fields;
 * tools/ref_freescale.py case_keys). Returns 0 when a key is missing or bad. */
static int build_job(const char *data, const char *tmp, const char *name, json_t *k, fs_job *job) {
    fs_job_defaults(job);
    snprintf(job->model, sizeof job->model, "%s/render/pipe", data);
    snprintf(job->output, sizeof job->output, "%s/%s.png", tmp, name);
    const char *prompt = json_string_value(json_object_get(k, "prompt"));
    json_t *neg = json_object_get(k, "negative_prompt");
    const char *sched = json_string_value(json_object_get(k, "scheduler"));
    const char *blur = json_string_value(json_object_get(k, "blur"));
    const char *up = json_string_value(json_object_get(k, "upsample"));
    const char *prec = json_string_value(json_object_get(k, "precision"));
    json_t *mask = json_object_get(k, "mask"), *stages = json_object_get(k, "stages");
    json_t *ff = json_object_get(k, "freeu_factors");
    if (!prompt || !sched || !blur || !up || !prec || !json_is_array(stages) ||
        json_array_size(stages) < 1 || json_array_size(stages) > FS_JOB_MAX_STAGES ||
        !json_is_array(ff) || json_array_size(ff) != 4)
        return 0;
    snprintf(job->prompt, sizeof job->prompt, "%s", prompt);
    if (json_is_string(neg))
        snprintf(job->negative_prompt, sizeof job->negative_prompt, "%s", json_string_value(neg));
    job->seed = (uint64_t)json_integer_value(json_object_get(k, "seed"));
    job->steps = get_int(k, "steps");
    job->guidance = (float)get_num(k, "guidance");
    if (!strcmp(sched, "euler")) job->scheduler = FS_SCHED_EULER;
    else if (!strcmp(sched, "ddim")) job->scheduler = FS_SCHED_DDIM;
    else return 0;
    if (strcmp(prec, "fp32")) return 0;
    job->precision = FS_DTYPE_F32;
    if (!get_pair(k, "size", &job->width, &job->height) ||
        !get_pair(k, "original_size", &job->orig_width, &job->orig_height) ||
        !get_pair(k, "target_size", &job->target_width, &job->target_height) ||
        !get_pair(k, "crop", &job->crop_left, &job->crop_top))
        return 0;
    job->vae_tiling = json_is_true(json_object_get(k, "vae_tiling"));
    job->n_stages = (int)json_array_size(stages);
    for (int s = 0; s < job->n_stages; s++) {
        json_t *p = json_array_get(stages, (size_t)s);
        if (!json_is_array(p) || json_array_size(p) != 2) return 0;
        job->stage_width[s] = (int)json_integer_value(json_array_get(p, 0));
        job->stage_height[s] = (int)json_integer_value(json_array_get(p, 1));
    }
    job->restart_step = get_int(k, "restart_step");
    job->dilate_tau = get_int(k, "dilate_tau");
    job->cosine_scale = (float)get_num(k, "cosine_scale");
    job->cosine_scale_bg = (float)get_num(k, "cosine_scale_bg");
    job->fast_mode = json_is_true(json_object_get(k, "fast_mode"));
    if (!strcmp(up, "rgb")) job->upsample_latent = 0;
    else if (!strcmp(up, "latent")) job->upsample_latent = 1;
    else return 0;
    if (json_is_string(mask))
        snprintf(job->mask, sizeof job->mask, "%s/cascade/%s", data, json_string_value(mask));
    job->freeu = json_is_true(json_object_get(k, "freeu"));
    job->freeu_b1 = (float)json_number_value(json_array_get(ff, 0));
    job->freeu_b2 = (float)json_number_value(json_array_get(ff, 1));
    job->freeu_s1 = (float)json_number_value(json_array_get(ff, 2));
    job->freeu_s2 = (float)json_number_value(json_array_get(ff, 3));
    static const char *const blurs[4] = {"3d", "wc", "hw", "fft"};
    job->blur = -1;
    for (int i = 0; i < 4; i++)
        if (!strcmp(blur, blurs[i])) job->blur = i;
    if (job->blur < 0) return 0;
    job->blur_sigma = (float)get_num(k, "blur_sigma");
    job->stage_outputs = 0;
    return 1;
}

static void dump(const char *dir, const char *name, const capture *cap, int n_stages) {
    fs_st_entry e[3 * FS_JOB_MAX_STAGES];
    char names[3 * FS_JOB_MAX_STAGES][64];
    float *bufs[3 * FS_JOB_MAX_STAGES];
    size_t n = 0;
    for (int s = 0; s < n_stages; s++) {
        if (!cap->latent[s]) continue;
        snprintf(names[n], sizeof names[n], "%s.stage%d", name, s);
        bufs[n] = to_nchw(cap->latent[s], cap->lh[s], cap->lw[s], 4);
        e[n] = (fs_st_entry){names[n], FS_DTYPE_F32, 4, {1, 4, cap->lh[s], cap->lw[s]}, bufs[n]};
        n++;
    }
    for (int i = 0; i < cap->nimages; i++) {
        snprintf(names[n], sizeof names[n], "%s.image%d_of_stage%d", name, i, cap->istage[i]);
        bufs[n] = to_nchw(cap->image[i], cap->ih[i], cap->iw[i], 3);
        e[n] = (fs_st_entry){names[n], FS_DTYPE_F32, 4, {1, 3, cap->ih[i], cap->iw[i]}, bufs[n]};
        n++;
    }
    char path[1200];
    snprintf(path, sizeof path, "%s/%s.c.safetensors", dir, name);
    fs_error err = {0};
    if (fs_safetensors_write(path, e, n, NULL, &err)) fprintf(stderr, "dump: %s\n", err.msg);
    else printf("  dumped %s\n", path);
    for (size_t i = 0; i < n; i++) free(bufs[i]);
}

static int wanted(const char *name) {
    const char *list = getenv("FS_CASCADE_CASES");
    if (!list || !*list) return 1;
    size_t len = strlen(name);
    for (const char *p = list; *p;) {
        const char *q = strchr(p, ',');
        size_t n = q ? (size_t)(q - p) : strlen(p);
        if (n == len && !strncmp(p, name, n)) return 1;
        if (!q) break;
        p = q + 1;
    }
    return 0;
}

static void run_case(const char *data, fs_safetensors *gold, json_t *cs, const char *tmp) {
    const char *name = json_string_value(json_object_get(cs, "name"));
    json_t *keys = json_object_get(cs, "keys"), *lats = json_object_get(cs, "latents");
    CHECK(name && json_is_object(keys) && json_is_array(lats), "a case without name/keys/latents");
    if (!name || !json_is_object(keys) || !json_is_array(lats) || !wanted(name)) return;
    fs_job job;
    int ok = build_job(data, tmp, name, keys, &job);
    CHECK(ok, "case %s: missing or bad keys in cases.json", name);
    if (!ok) return;
    CHECK((int)json_array_size(lats) == job.n_stages, "case %s: %zu latents for %d stages", name,
          json_array_size(lats), job.n_stages);
    fs_error err = {0};
    fs_code rc = fs_job_validate(&job, &err);
    CHECK(rc == FS_OK, "case %s: the job does not validate: %s", name, err.msg);
    if (rc) return;

    capture cap;
    memset(&cap, 0, sizeof cap);
    fs_render_hooks extra = {.on_latent = on_latent, .on_image = on_image, .user = &cap};
    coord_render_opts opts = {.extra = &extra};
    int stopped = 0;
    double t0 = fs_now();
    rc = coord_render(NULL, &job, &opts, &stopped, &err);
    double secs = fs_now() - t0;
    CHECK(rc == FS_OK && !stopped, "case %s: render: %s", name, err.msg);
    CHECK(!cap.bad, "case %s: the hooks saw an unexpected stage or size", name);
    if (rc) { capture_free(&cap); return; }

    printf("case %s (%s), %.1f s:\n", name, json_string_value(json_object_get(cs, "what")), secs);
    for (int s = 0; s < job.n_stages; s++) {
        const char *lname = json_string_value(json_array_get(lats, (size_t)s));
        const fs_st_tensor *t = lname ? fs_safetensors_find(gold, lname) : NULL;
        int h = job.stage_height[s] / 8, w = job.stage_width[s] / 8;
        CHECK(t && t->numel == (uint64_t)4 * h * w, "case %s: golden %s missing or not %dx%d",
              name, lname ? lname : "?", h, w);
        CHECK(cap.latent[s] && cap.lh[s] == h && cap.lw[s] == w,
              "case %s: stage %d latent not reported at %dx%d", name, s, h, w);
        if (!t || t->numel != (uint64_t)4 * h * w || !cap.latent[s] || cap.lh[s] != h ||
            cap.lw[s] != w)
            continue;
        float *ref = malloc(sizeof(float) * t->numel);
        rc = fs_safetensors_read_f32(gold, t, ref, &err);
        CHECK(rc == FS_OK, "%s: %s", lname, err.msg);
        double e = rc ? 1 : rel_l2_nchw(cap.latent[s], ref, h, w, 4);
        printf("  stage %d (%dx%d px, latent %dx%d): rel L2 %.3e\n", s, job.stage_width[s],
               job.stage_height[s], w, h, e);
        CHECK(e <= LIMIT, "case %s stage %d: latent rel L2 %.3g > %g", name, s, e, LIMIT);
        free(ref);
    }
    /* the final PNG is there, at the last stage's size */
    uint8_t *px = NULL;
    int pw = 0, ph = 0;
    rc = fs_png_read(job.output, 3, 0, &px, &pw, &ph, &err);
    CHECK(rc == FS_OK && pw == job.width && ph == job.height, "case %s: PNG %s: %s (%dx%d)", name,
          job.output, err.msg, pw, ph);
    free(px);
    const char *dir = getenv("FS_CASCADE_DUMP");
    if (dir && *dir) dump(dir, name, &cap, job.n_stages);
    capture_free(&cap);
}

int main(void) {
    const char *data = getenv("FS_TEST_DATA");
    if (!data) data = "tests/data";
    fs_threads_init(0);
    char path[1024];
    snprintf(path, sizeof path, "%s/cascade/cases.json", data);
    json_error_t jerr;
    json_t *cases = json_load_file(path, 0, &jerr);
    CHECK(json_is_array(cases), "%s: %s", path, jerr.text);
    if (!json_is_array(cases)) return check_report("test_cascade_golden");
    CHECK(json_array_size(cases) >= 4, "only %zu cases", json_array_size(cases));
    snprintf(path, sizeof path, "%s/cascade/golden.safetensors", data);
    fs_safetensors *gold = NULL;
    fs_error err = {0};
    CHECK(fs_safetensors_open(path, &gold, &err) == FS_OK, "%s", err.msg);
    char tmp[] = "/tmp/fs_cascade_golden_XXXXXX";
    int have_tmp = mkdtemp(tmp) != NULL;
    CHECK(have_tmp, "mkdtemp");
    size_t i;
    json_t *cs;
    if (gold && have_tmp) json_array_foreach(cases, i, cs) run_case(data, gold, cs, tmp);
    fs_safetensors_close(gold);
    json_decref(cases);
    if (have_tmp) {
        char cmd[256];
        snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
        if (system(cmd)) {}
    }
    return check_report("test_cascade_golden");
}
