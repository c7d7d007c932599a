/* tests/test_plan.c: fs_worker_plan (worker/plan.c), the figures behind
 * `freescale plan`.
 * 1. Against a real one-rank render of the embedded model (several job
 *    shapes: a plain render, a cascade with RGB upsampling, one with latent
 *    upsampling and stage outputs and a mask, an input image): each stage's
 *    planned window peak against fs_render_stats.stage_peak_alloc, the
 *    counted buffers the render measured in that stage, and the job's peak
 *    against fs_render_stats.peak_alloc. Not bit-equal: the ops take small
 *    scratch buffers outside the arenas the sizing passes measure
 *    (per-thread GEMM warm-up of 1.9 MB the first time a thread multiplies,
 *    attention, resize and scale-fusion scratch), so the measured value may
 *    exceed the plan by at most SLACK_MB and 10%, and never fall below it by
 *    more than 1% (the plan must not promise less than the render holds
 *    beyond that scratch, nor invent buffers).
 * 2. The plan's UNet activation bytes at 1 rank equal fs_unet_forward_bytes
 *    for the FreeScale settings written out here by hand (dilation 2 with
 *    fusion and FreeU, then dilation 1), and shrink at 4 ranks.
 * 3. Full-size SDXL base 1.0 as a sparse file (every tensor a hole: no
 *    weight can be read): the parameter counts of every network, weights x 4
 *    bytes held, the 4k cascade's rank limit (32: 128 latent rows of stage
 *    0 in groups of 4) and the error beyond it. */
#define _GNU_SOURCE
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "io/io.h"
#include "jobs/jobs.h"
#include "kernels/gemm_tiles.h"
#include "unet/forward.h"
#include "worker/worker.h"

#define SLACK_MB 1.0

static char tmpdir[512];

static void job_from(const char *text, fs_job *job) {
    fs_error err = {0};
    CHECK(fs_job_parse(text, strlen(text), "<test>", tmpdir, job, &err) == FS_OK, "%s\n%s",
          err.msg, text);
}

static void write_png(const char *name, int w, int h, int channels) {
    char path[700];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    unsigned char *px = malloc((size_t)w * h * channels);
    for (size_t i = 0; i < (size_t)w * h * channels; i++) px[i] = (unsigned char)(i * 37 % 251);
    fs_error err = {0};
    fs_png_writer *pw = NULL;
    CHECK(fs_png_create(path, w, h, channels, NULL, &pw, &err) == FS_OK, "%s", err.msg);
    if (pw) CHECK(fs_png_write_rows(pw, px, h, &err) == FS_OK && fs_png_finish(pw, &err) == FS_OK,
                  "%s", err.msg);
    free(px);
}

/* 1: plan, then render with a fresh model bundle, and compare per stage. */
static void against_render(const char *what, const char *text) {
    static fs_job job;
    job_from(text, &job);
    fs_error err = {0};
    fs_models *m = NULL;
    fs_job_plan plan;
    CHECK(fs_models_open(job.model, job.precision, &m, &err) == FS_OK, "%s", err.msg);
    CHECK(fs_worker_plan(&job, m, 1, &plan, &err) == FS_OK, "%s: %s", what, err.msg);
    fs_models_free(m);   /* its networks must not count in the render */
    m = NULL;
    CHECK(fs_models_open(job.model, job.precision, &m, &err) == FS_OK, "%s", err.msg);
    fs_render_stats st;
    CHECK(fs_worker_render(NULL, &job, m, NULL, &st, &err) == FS_OK, "%s: %s", what, err.msg);
    fs_models_free(m);
    for (int s = 0; s < plan.n_stages; s++) {
        const fs_stage_plan *sp = &plan.stage[s];
        double planned = sp->peak_window / 1e6, got = st.stage_peak_alloc[s] / 1e6;
        /* the plan counts what is resident (an arena's high-water mark, the
         * rows of a lazily filled map as written), as the render's counters
         * do; the ops' few-MB scratch outside the arenas is the difference */
        int vae = sp->peak_window != sp->peak_unet;
        printf("  %s, stage %d: planned %.3f MB, measured %.3f MB (%s decides; UNet arena "
               "%.3f, decode %.3f, encode %.3f MB)\n", what, s, planned, got, vae ? "VAE" : "UNet",
               sp->unet_act_bytes / 1e6, sp->decode_act_bytes / 1e6, sp->encode_act_bytes / 1e6);
        CHECK(got >= planned * 0.99 && got <= planned * 1.10 && got <= planned + SLACK_MB,
              "%s, stage %d: planned %.3f MB, measured %.3f MB (tolerance -1%%, +%.1f MB and "
              "+10%%)", what, s, planned, got, SLACK_MB);
        CHECK(sp->peak_bytes >= sp->peak_window, "%s, stage %d: the stage's peak is below its "
              "window", what, s);
    }
    CHECK(plan.peak_bytes >= plan.peak_text && plan.peak_text > plan.text_weight_bytes,
          "%s: job peak %zu, text %zu", what, plan.peak_bytes, plan.peak_text);
    /* the job's peak per rank: the largest phase, text included */
    double pj = plan.peak_bytes / 1e6, mj = st.peak_alloc / 1e6;
    printf("  %s: job peak planned %.3f MB, measured %.3f MB (%+.1f%%)\n", what, pj, mj,
           100.0 * (mj - pj) / pj);
    CHECK(mj >= pj * 0.99 && mj <= pj * 1.10, "%s: job peak planned %.3f MB, measured %.3f MB",
          what, pj, mj);
}

/* 2: the UNet's sizing pass with the settings spelled out by hand. */
static void unet_by_hand(void) {
    static fs_job job;
    job_from("prompt: a\nsteps: 4\nstages: [128, 256]\nrestart_step: 1\ndilate_tau: 3\n", &job);
    fs_error err = {0};
    fs_models *m = NULL;
    CHECK(fs_models_open(NULL, FS_DTYPE_F32, &m, &err) == FS_OK, "%s", err.msg);
    fs_job_plan p1, p4;
    CHECK(fs_worker_plan(&job, m, 1, &p1, &err) == FS_OK, "%s", err.msg);
    CHECK(fs_worker_plan(&job, m, 4, &p4, &err) == FS_OK, "%s", err.msg);
    fs_unet *u = NULL;
    CHECK(fs_models_unet(m, &u, &err) == FS_OK, "%s", err.msg);
    fs_strip_plan whole;
    CHECK(fs_strip_plan_make(32, 1, 4, &whole, &err) == FS_OK, "%s", err.msg);
    fs_unet_freescale f;
    memset(&f, 0, sizeof f);
    f.dilation = 2;   /* 256 / 128: steps 1 and 2 (< dilate_tau 3) of stage 1 */
    f.fusion = 1;
    f.base_h = f.base_w = 16;
    f.blur = FS_BLUR_3D, f.blur_sigma = 1.0f;
    f.freeu = (fs_unet_freeu){1, 1.1f, 1.2f, 0.6f, 0.4f};
    f.step = 1;
    size_t dil = 0, plain = 0;
    CHECK(fs_unet_forward_bytes(u, &whole, 0, 32, 32, 1, 77, &f, &dil, &err) == FS_OK, "%s",
          err.msg);
    f.dilation = 1, f.step = 3;
    CHECK(fs_unet_forward_bytes(u, &whole, 0, 32, 32, 1, 77, &f, &plain, &err) == FS_OK, "%s",
          err.msg);
    size_t want = dil > plain ? dil : plain;
    /* guidance 7.5 by default: batch 2 */
    CHECK(p1.batch == 2, "batch %d", p1.batch);
    size_t dil2 = 0;
    f.dilation = 2, f.step = 1;
    CHECK(fs_unet_forward_bytes(u, &whole, 0, 32, 32, 2, 77, &f, &dil2, &err) == FS_OK, "%s",
          err.msg);
    f.dilation = 1, f.step = 3;
    size_t plain2 = 0;
    CHECK(fs_unet_forward_bytes(u, &whole, 0, 32, 32, 2, 77, &f, &plain2, &err) == FS_OK, "%s",
          err.msg);
    want = dil2 > plain2 ? dil2 : plain2;
    CHECK(dil2 > dil, "batch 2 (%zu) is not larger than batch 1 (%zu)", dil2, dil);
    CHECK(p1.stage[1].unet_act_bytes == want, "plan %zu, by hand %zu", p1.stage[1].unet_act_bytes,
          want);
    CHECK(p1.stage[1].max_dilation == 2 && p1.stage[1].evals == 3 && p1.stage[1].first_step == 1,
          "dilation %d, %d evaluations from step %d", p1.stage[1].max_dilation,
          p1.stage[1].evals, p1.stage[1].first_step);
    for (int s = 0; s < 2; s++) {
        CHECK(p4.stage[s].unet_act_bytes < p1.stage[s].unet_act_bytes,
              "stage %d: UNet arena %zu at 4 ranks, %zu at 1", s, p4.stage[s].unet_act_bytes,
              p1.stage[s].unet_act_bytes);
        CHECK(p4.stage[s].max_rows * 4 == p1.stage[s].max_rows, "stage %d: rows %d vs %d", s,
              p4.stage[s].max_rows, p1.stage[s].max_rows);
        /* not 4x: every strip projects K and V of all tokens */
        CHECK(p1.stage[s].unet_flops > 2 * p4.stage[s].unet_flops, "stage %d: %g vs %g FLOP", s,
              p1.stage[s].unet_flops, p4.stage[s].unet_flops);
    }
    CHECK(p1.max_ranks == 4, "max ranks %d (stage 0: 16 latent rows in groups of 4)",
          p1.max_ranks);
    fs_job_plan p5;
    CHECK(fs_worker_plan(&job, m, 5, &p5, &err) == FS_ERR_RANGE && strstr(err.msg, "at most 4"),
          "5 ranks: %s", err.msg);
    fs_models_free(m);
}

/* 3: SDXL base 1.0 as holes (the SGM single file of tests/test_unet_sparse.c). */
static void push(fs_st_entry *e, size_t *n, char **pool, const char *name, fs_dtype dt,
                 json_t *shape, int64_t first_scale) {
    pool[*n] = strdup(name);
    fs_st_entry *x = &e[(*n)++];
    memset(x, 0, sizeof *x);
    x->name = pool[*n - 1];
    x->dtype = dt;
    x->ndim = (int)json_array_size(shape);
    for (int d = 0; d < x->ndim; d++)
        x->shape[d] = json_integer_value(json_array_get(shape, (size_t)d)) * (d ? 1 : first_scale);
    /* SGM's VAE attention projections are 1x1 convolutions (the list has
     * diffusers' linear shapes) */
    if (strstr(name, ".attn_1.") && x->ndim == 2)
        x->shape[2] = x->shape[3] = 1, x->ndim = 4;
}

static void sgm_file(json_t *names, const char *path) {
    static const char *const components[4] = {"unet", "vae", "text_encoder", "text_encoder_2"};
    size_t n = 0;
    fs_st_entry *e = calloc(4096, sizeof *e);
    char **pool = calloc(4096, sizeof *pool);
    for (int c = 0; c < 4; c++) {
        const char *key;
        json_t *v;
        json_object_foreach(json_object_get(names, components[c]), key, v) {
            const char *sgm = json_string_value(json_array_get(v, 0));
            const char *third = strchr(sgm, '[');
            if (!third) {
                push(e, &n, pool, sgm, FS_DTYPE_F16, json_array_get(v, 1), 1);
            } else if (!strcmp(third, "[q-third]")) {
                char fused[256];   /* OpenCLIP's in_proj: q, k, v stacked */
                snprintf(fused, sizeof fused, "%.*s", (int)(third - sgm), sgm);
                push(e, &n, pool, fused, FS_DTYPE_F16, json_array_get(v, 1), 3);
            }
        }
    }
    fs_error err = {0};
    CHECK(fs_safetensors_write(path, e, n, NULL, &err) == FS_OK, "%s", err.msg);
    for (size_t i = 0; i < n; i++) free(pool[i]);
    free(e);
    free(pool);
}

static void sdxl_sparse(void) {
    const char *data = getenv("FS_TEST_DATA");
    char names_path[1024], path[800], text[1200];
    snprintf(names_path, sizeof names_path, "%s/sdxl_base_1.0_names.json",
             data ? data : "tests/data");
    json_error_t je;
    json_t *names = json_load_file(names_path, 0, &je);
    CHECK(names != NULL, "cannot read %s: %s", names_path, je.text);
    if (!names) return;
    snprintf(path, sizeof path, "%s/sd_xl_base_1.0.safetensors", tmpdir);
    sgm_file(names, path);
    json_decref(names);
    snprintf(text, sizeof text, "model: %s\nprompt: a lighthouse\nprecision: fp16\n"
             "stages: 4k\nsteps: 30\n", path);
    static fs_job job;
    job_from(text, &job);
    fs_error err = {0};
    fs_models *m = NULL;
    CHECK(fs_models_open(job.model, job.precision, &m, &err) == FS_OK, "%s", err.msg);
    if (!m) return;
    fs_job_plan p8, p32;
    double t0 = fs_now();
    CHECK(fs_worker_plan(&job, m, 8, &p8, &err) == FS_OK, "%s", err.msg);
    printf("  SDXL 4k on 8 ranks planned in %.2f s: peak %.2f GB (stage 2 UNet arena %.2f GB, "
           "%.0f GFLOP per evaluation)\n", fs_now() - t0, p8.peak_bytes / 1e9,
           p8.stage[2].unet_act_bytes / 1e9, p8.stage[2].unet_flops / 1e9);
    CHECK(p8.unet_params == 2567463684ull && p8.vae_params == 83653863ull &&
              p8.text_params == 123060480ull + 694659840ull,
          "params: UNet %llu, VAE %llu, text %llu", (unsigned long long)p8.unet_params,
          (unsigned long long)p8.vae_params, (unsigned long long)p8.text_params);
    CHECK(p8.unet_weight_bytes == 4 * (size_t)2567463684ull, "UNet weights %zu bytes",
          p8.unet_weight_bytes);
    CHECK(p8.max_ranks == 32 && p8.n_stages == 3 && p8.stage[2].max_rows == 64,
          "max ranks %d, %d stages, stage 2 rows %d", p8.max_ranks, p8.n_stages,
          p8.stage[2].max_rows);
    CHECK(p8.peak_bytes > p8.unet_weight_bytes + p8.stage[2].unet_act_bytes,
          "peak %zu below the UNet's weights and arena", p8.peak_bytes);
    CHECK(fs_worker_plan(&job, m, 32, &p32, &err) == FS_OK, "%s", err.msg);
    CHECK(p32.stage[2].unet_act_bytes < p8.stage[2].unet_act_bytes, "32 ranks: %zu, 8: %zu",
          p32.stage[2].unet_act_bytes, p8.stage[2].unet_act_bytes);
    CHECK(fs_worker_plan(&job, m, 33, &p32, &err) == FS_ERR_RANGE, "33 ranks accepted");
    fs_models_free(m);
    unlink(path);
}

int main(void) {
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/fs_plan_XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 1; }
    fs_log_set_level(FS_LOG_WARN);
    /* every thread's one-time GEMM warm-up buffer (1.9 MB) now, not inside a
     * measured stage */
    fs_threads_init(2);
    fs_sgemm_warm_all();
    against_render("plain 128x192", "prompt: a cat\nnegative_prompt: dog\nsteps: 2\n"
                   "size: [128, 192]\n");
    against_render("plain 512x512 (VAE decides)", "prompt: a cat\nsteps: 1\nsize: 512\n");
    against_render("cascade rgb", "prompt: a cat\nsteps: 3\nstages: [128, 256]\n"
                   "restart_step: 1\n");
    write_png("mask.png", 64, 64, 1);
    against_render("cascade latent", "prompt: a cat\nsteps: 3\nstages: [128, [192, 256]]\n"
                   "upsample: latent\nstage_outputs: true\nmask: mask.png\nguidance: 1\n"
                   "output: /dev/null\n");
    write_png("input.png", 128, 128, 3);
    against_render("input image", "prompt: a cat\nsteps: 3\nstages: [128, 256]\n"
                   "input_image: input.png\nrestart_step: 2\n");
    unet_by_hand();
    sdxl_sparse();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", tmpdir);
    return check_report("test_plan");
}
