/* tests/test_render_golden.c: the whole render (tokenizer, both text
 * encoders, the sampler loop, the UNet, the VAE decode, PNG) against a tiny
 * random diffusers StableDiffusionXLPipeline (tools/gen_render_golden.py,
 * tests/data/render/README.md), fed the same initial latents.
 * Per case (Euler and DDIM, with and without a negative prompt, two guidance
 * scales): the final latent within 1e-3 relative L2, the decoded image within
 * 1e-3, and the PNG's 8-bit pixels within 1 level of 255 on average (and at
 * most 2 anywhere but a few rounding-boundary pixels). The single-file
 * (SGM) copy of the same weights gives the same PNG bytes as the folder. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "coordinator/commands.h"
#include "io/io.h"
#include "check.h"

typedef struct capture {
    float *latent;   /* NHWC [h][w][4] */
    int lh, lw;
    float *image;    /* NHWC [H][W][3] */
    int ih, iw;
} capture;

static void on_latent(void *user, int stage, const float *s, int row0, int rows, int h, int w) {
    (void)stage;
    capture *c = user;
    if (!c->latent) c->latent = calloc((size_t)h * w * 4, sizeof(float)), c->lh = h, c->lw = w;
    memcpy(c->latent + (size_t)row0 * w * 4, s, sizeof(float) * rows * w * 4);
}
static void on_image(void *user, int stage, const float *s, int row0, int rows, int h, int w) {
    (void)stage;
    capture *c = user;
    if (!c->image) c->image = calloc((size_t)h * w * 3, sizeof(float)), c->ih = h, c->iw = w;
    memcpy(c->image + (size_t)row0 * w * 3, s, sizeof(float) * rows * w * 3);
}

static float *read_tensor(fs_safetensors *st, const char *name, size_t *n) {
    const fs_st_tensor *t = fs_safetensors_find(st, name);
    if (!t) return NULL;
    float *x = malloc(t->numel * sizeof(float));
    fs_error err = {0};
    if (fs_safetensors_read_f32(st, t, x, &err)) { free(x); return NULL; }
    *n = t->numel;
    return x;
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

static double rel_l2(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]), den += (double)b[i] * b[i];
    return sqrt(num / (den > 0 ? den : 1));
}

static void run_case(const char *data, fs_safetensors *io, json_t *cs, const char *tmp) {
    const char *name = json_string_value(json_object_get(cs, "name"));
    const char *prompt = json_string_value(json_object_get(cs, "prompt"));
    json_t *neg = json_object_get(cs, "negative_prompt");
    const char *sched = json_string_value(json_object_get(cs, "scheduler"));
    fs_job job;
    fs_job_defaults(&job);
    snprintf(job.model, sizeof job.model, "%s/render/pipe", data);
    snprintf(job.prompt, sizeof job.prompt, "%s", prompt);
    if (json_is_string(neg)) snprintf(job.negative_prompt, sizeof job.negative_prompt, "%s", json_string_value(neg));
    job.scheduler = !strcmp(sched, "ddim") ? FS_SCHED_DDIM : FS_SCHED_EULER;
    job.steps = (int)json_integer_value(json_object_get(cs, "steps"));
    job.guidance = (float)json_number_value(json_object_get(cs, "guidance"));
    job.width = (int)json_integer_value(json_object_get(cs, "width"));
    job.height = (int)json_integer_value(json_object_get(cs, "height"));
    job.orig_width = job.target_width = job.width;
    job.orig_height = job.target_height = job.height;
    int h = job.height / 8, w = job.width / 8;

    char key[128];
    size_t n = 0;
    snprintf(key, sizeof key, "%s.noise", name);
    float *noise = read_tensor(io, key, &n);
    CHECK(noise && n == (size_t)4 * h * w, "%s: no noise tensor", name);
    if (!noise) return;
    snprintf(job.noise, sizeof job.noise, "%s/%s_noise.safetensors", tmp, name);
    fs_st_entry e = {"noise", FS_DTYPE_F32, 4, {1, 4, h, w}, noise};
    fs_error err = {0};
    CHECK(fs_safetensors_write(job.noise, &e, 1, NULL, &err) == FS_OK, "%s", err.msg);
    snprintf(job.output, sizeof job.output, "%s/%s.png", tmp, name);

    capture cap = {0};
    fs_render_hooks extra = {.on_latent = on_latent, .on_image = on_image, .user = &cap};
    coord_render_opts opts = {.extra = &extra};
    int stopped = 0;
    fs_code rc = coord_render(NULL, &job, &opts, &stopped, &err);
    CHECK(rc == FS_OK, "%s: render: %s", name, err.msg);
    if (rc) { free(noise); return; }

    snprintf(key, sizeof key, "%s.latent", name);
    float *ref_lat = read_tensor(io, key, &n);
    double e_lat = ref_lat ? rel_l2_nchw(cap.latent, ref_lat, h, w, 4) : 1;
    CHECK(e_lat <= 1e-3, "%s: final latent rel L2 %.3g > 1e-3", name, e_lat);
    snprintf(key, sizeof key, "%s.image", name);
    float *ref_img = read_tensor(io, key, &n);
    double e_img = ref_img && n == (size_t)job.width * job.height * 3
                       ? rel_l2(cap.image, ref_img, n) : 1;
    CHECK(e_img <= 1e-3, "%s: decoded image rel L2 %.3g > 1e-3", name, e_img);

    snprintf(key, sizeof key, "%s.image_u8", name);
    const fs_st_tensor *t8 = fs_safetensors_find(io, key);
    uint8_t *px = NULL;
    int pw = 0, ph = 0;
    rc = fs_png_read(job.output, 3, 0, &px, &pw, &ph, &err);
    CHECK(rc == FS_OK && pw == job.width && ph == job.height, "%s: PNG: %s", name, err.msg);
    double mean = 99;
    int maxd = 255;
    if (px && t8 && t8->numel == (uint64_t)pw * ph * 3) {
        const uint8_t *r8 = t8->data;
        double sum = 0;
        maxd = 0;
        for (size_t i = 0; i < t8->numel; i++) {
            int d = abs((int)px[i] - (int)r8[i]);
            sum += d, maxd = d > maxd ? d : maxd;
        }
        mean = sum / (double)t8->numel;
    }
    CHECK(mean <= 1.0, "%s: PNG differs by %.3f levels on average (limit 1)", name, mean);
    printf("%-14s latent rel L2 %.2e, image rel L2 %.2e, PNG mean |diff| %.4f levels (max %d)\n",
           name, e_lat, e_img, mean, maxd);

    /* The same weights as an SGM single file give the same PNG bytes. */
    fs_job sgm = job;
    snprintf(sgm.model, sizeof sgm.model, "%s/render/sgm.safetensors", data);
    snprintf(sgm.output, sizeof sgm.output, "%s/%s_sgm.png", tmp, name);
    rc = coord_render(NULL, &sgm, NULL, &stopped, &err);
    CHECK(rc == FS_OK, "%s: single-file render: %s", name, err.msg);
    size_t la = 0, lb = 0;
    unsigned char *a = check_slurp(job.output, &la), *b = rc ? NULL : check_slurp(sgm.output, &lb);
    /* PNG text chunks name the model: compare the pixels instead of the bytes */
    uint8_t *px2 = NULL;
    int w2, h2;
    if (!rc && !fs_png_read(sgm.output, 3, 0, &px2, &w2, &h2, &err) && px)
        CHECK(w2 == pw && h2 == ph && !memcmp(px, px2, (size_t)pw * ph * 3),
              "%s: single file and folder give different pixels", name);
    free(a), free(b), free(px), free(px2);
    free(noise), free(ref_lat), free(ref_img), free(cap.latent), free(cap.image);
}

int main(void) {
    const char *data = getenv("FS_TEST_DATA");
    if (!data) data = "tests/data";
    fs_threads_init(0);
    char path[1024];
    snprintf(path, sizeof path, "%s/render/cases.json", data);
    json_error_t jerr;
    json_t *cases = json_load_file(path, 0, &jerr);
    CHECK(json_is_array(cases), "%s: %s", path, jerr.text);
    if (!json_is_array(cases)) return check_report("test_render_golden");
    snprintf(path, sizeof path, "%s/render/cases.safetensors", data);
    fs_safetensors *io = NULL;
    fs_error err = {0};
    CHECK(fs_safetensors_open(path, &io, &err) == FS_OK, "%s", err.msg);
    char tmp[] = "/tmp/fs_render_golden_XXXXXX";
    CHECK(mkdtemp(tmp) != NULL, "mkdtemp");
    size_t i;
    json_t *cs;
    json_array_foreach(cases, i, cs) if (io) run_case(data, io, cs, tmp);
    CHECK(json_array_size(cases) >= 4, "only %zu cases", json_array_size(cases));
    fs_safetensors_close(io);
    json_decref(cases);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
    if (system(cmd)) {}
    return check_report("test_render_golden");
}
