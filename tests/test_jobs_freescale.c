/* jobs/: the FreeScale keys (stages and its presets, restart_step,
 * cosine_scale(_bg), dilate_tau, fast_mode, upsample, mask, input_image,
 * freeu, blur, blur_sigma, stage_outputs): every error with its code, its
 * file:line:col and what was expected; the values and the defaults that
 * follow other keys (size and the time ids follow the stages, restart_step
 * and dilate_tau follow steps, freeu follows the stage count) in a file and
 * through --set; fs_job_validate on hand-made jobs; the shipped example jobs
 * load and round-trip. */
#include "jobs_check.h"
#include "unet/unet.h"   /* fs_blur_kind */

static void expect_job_err_(int line, fs_code rc, fs_code want, const fs_error *err, ...) {
    va_list ap;
    va_start(ap, err);
    expect_msg(line, rc, want, err, ap);
    va_end(ap);
}
/* fs_job_validate on the job as it stands (after --set). */
#define EXPECT_INVALID_JOB(code, ...)                                                           \
    do {                                                                                        \
        fs_error e_ = {0};                                                                      \
        expect_job_err_(__LINE__, fs_job_validate(&job, &e_), code, &e_, __VA_ARGS__,           \
                        (const char *)NULL);                                                    \
    } while (0)

static void set_ok(int line, const char *assignment) {
    fs_error err = {0};
    CHECK(fs_job_set(&job, assignment, &err) == FS_OK, "line %d: --set %s: %s", line, assignment,
          err.msg);
}
#define SET(a) set_ok(__LINE__, a)
#define VALID() do { fs_error e_ = {0}; \
    CHECK(fs_job_validate(&job, &e_) == FS_OK, "line %d: %s", __LINE__, e_.msg); } while (0)

static int stages_are(int n, const int *w, const int *h) {
    if (job.n_stages != n) return 0;
    for (int i = 0; i < FS_JOB_MAX_STAGES; i++)
        if (job.stage_width[i] != (i < n ? w[i] : 0) || job.stage_height[i] != (i < n ? h[i] : 0))
            return 0;
    return 1;
}

static int freeu_is(int on, float b1, float b2, float s1, float s2) {
    return job.freeu == on && job.freeu_b1 == b1 && job.freeu_b2 == b2 && job.freeu_s1 == s1 &&
           job.freeu_s2 == s2;
}

static void test_freescale_errors(void) {
    /* stages */
    EXPECT_ERR("prompt: a\nstages: 3k\n", FS_ERR_INVALID, "job.yaml:2:9:",
               "stages: expected a list of 1..8 sizes", "or one of 2k, 4k, 8k, 16k, got '3k'");
    EXPECT_ERR("prompt: a\nstages: 1024\n", FS_ERR_INVALID, "job.yaml:2:9:", "got '1024'");
    EXPECT_ERR("prompt: a\nstages: 4K\n", FS_ERR_INVALID, "job.yaml:2:9:", "got '4K'");
    EXPECT_ERR("prompt: a\nstages: {width: 64}\n", FS_ERR_INVALID, "job.yaml:2:9:", "got a mapping");
    EXPECT_ERR("prompt: a\nstages:\n", FS_ERR_INVALID, "job.yaml:2:8:", "got nothing (null)");
    EXPECT_ERR("prompt: a\nstages: []\n", FS_ERR_RANGE, "job.yaml:2:9:",
               "stages: expected 1..8 sizes, got a sequence of 0 items");
    EXPECT_ERR("prompt: a\nstages: [64, 64, 64, 64, 64, 64, 64, 64, 64]\n", FS_ERR_RANGE,
               "job.yaml:2:9:", "got a sequence of 9 items");
    EXPECT_ERR("prompt: a\nstages: [2048, 1024]\n", FS_ERR_INVALID, "job.yaml:2:16:",
               "stages[1]: [1024, 1024] is smaller than stages[0], [2048, 2048]",
               "at least as wide and as tall");
    EXPECT_ERR("prompt: a\nstages: [[1024, 2048], [2048, 1024]]\n", FS_ERR_INVALID, "job.yaml:2:24:",
               "stages[1]: [2048, 1024] is smaller than stages[0], [1024, 2048]");
    EXPECT_ERR("prompt: a\nstages:\n  - 512\n  - {width: 1024, height: 448}\n", FS_ERR_INVALID,
               "job.yaml:4:5:", "stages[1]: [1024, 448] is smaller than stages[0], [512, 512]");
    EXPECT_ERR("prompt: a\nstages: [1024, 1000]\n", FS_ERR_RANGE, "job.yaml:2:16:",
               "stages[1]: expected a multiple of 64 in 64..65536, got '1000'");
    EXPECT_ERR("prompt: a\nstages: [1024, [2048, 100]]\n", FS_ERR_RANGE, "job.yaml:2:23:",
               "stages[1]: height: expected a multiple of 64");
    EXPECT_ERR("prompt: a\nstages: [1024, [2048]]\n", FS_ERR_INVALID, "job.yaml:2:16:",
               "stages[1]: expected [width, height], got a sequence of 1 item");
    EXPECT_ERR("prompt: a\nstages: [1024, {width: 2048, hieght: 2048}]\n", FS_ERR_INVALID,
               "job.yaml:2:30:", "stages[1]: unknown key 'hieght' (did you mean 'height'?)");
    /* size and the last stage: both lines named */
    EXPECT_ERR("prompt: a\nstages: 4k\nsize: 2048\n", FS_ERR_INVALID, "job.yaml:3:7:",
               "size: [2048, 2048] differs from the last stage of stages (line 2, column 9), "
               "[4096, 4096]", "leave size out");
    EXPECT_ERR("prompt: a\nsize: [1024, 512]\nstages: [512, 1024]\n", FS_ERR_INVALID,
               "job.yaml:2:7:", "size: [1024, 512] differs", "(line 3, column 9), [1024, 1024]");
    /* restart_step and dilate_tau against steps, wherever steps is */
    EXPECT_ERR("prompt: a\nrestart_step: 50\n", FS_ERR_RANGE, "job.yaml:2:15:",
               "restart_step: expected an integer 0..49 (below steps: 50, the default), got 50");
    EXPECT_ERR("prompt: a\nrestart_step: 15\nsteps: 10\n", FS_ERR_RANGE, "job.yaml:2:15:",
               "restart_step: expected an integer 0..9 (below steps: 10, line 3), got 15");
    EXPECT_ERR("prompt: a\nrestart_step: -1\n", FS_ERR_RANGE, "job.yaml:2:15:",
               "restart_step: expected an integer 0..999, got '-1'");
    EXPECT_ERR("prompt: a\nrestart_step: 1000\n", FS_ERR_RANGE, "job.yaml:2:15:", "got '1000'");
    EXPECT_ERR("prompt: a\nrestart_step: 0.3\n", FS_ERR_INVALID, "job.yaml:2:15:", "got '0.3'");
    EXPECT_ERR("prompt: a\nsteps: 20\ndilate_tau: 21\n", FS_ERR_RANGE, "job.yaml:3:13:",
               "dilate_tau: expected an integer 0..20 (at most steps: 20, line 2), got 21");
    EXPECT_ERR("prompt: a\ndilate_tau: 1001\n", FS_ERR_RANGE, "job.yaml:2:13:",
               "dilate_tau: expected an integer 0..1000, got '1001'");
    /* numbers */
    EXPECT_ERR("prompt: a\ncosine_scale: -0.5\n", FS_ERR_RANGE, "job.yaml:2:15:",
               "cosine_scale: expected a number 0..100, got '-0.5'");
    EXPECT_ERR("prompt: a\ncosine_scale: two\n", FS_ERR_INVALID, "job.yaml:2:15:", "got 'two'");
    EXPECT_ERR("prompt: a\ncosine_scale_bg: 101\n", FS_ERR_RANGE, "job.yaml:2:18:",
               "cosine_scale_bg: expected a number 0..100, got '101'");
    EXPECT_ERR("prompt: a\nblur_sigma: 0\n", FS_ERR_RANGE, "job.yaml:2:13:",
               "blur_sigma: expected a number > 0 and <= 100, got '0'");
    EXPECT_ERR("prompt: a\nblur_sigma: 1e-50\n", FS_ERR_RANGE, "job.yaml:2:13:", "got '1e-50'");
    EXPECT_ERR("prompt: a\nblur_sigma: -1\n", FS_ERR_RANGE, "job.yaml:2:13:", "got '-1'");
    EXPECT_ERR("prompt: a\nblur_sigma: .nan\n", FS_ERR_INVALID, "job.yaml:2:13:", "got '.nan'");
    /* booleans and enums */
    EXPECT_ERR("prompt: a\nfast_mode: 1\n", FS_ERR_INVALID, "job.yaml:2:12:",
               "fast_mode: expected true, false, yes or no, got '1'");
    EXPECT_ERR("prompt: a\nstage_outputs: all\n", FS_ERR_INVALID, "job.yaml:2:16:",
               "stage_outputs: expected true, false, yes or no");
    EXPECT_ERR("prompt: a\nupsample: bicubic\n", FS_ERR_INVALID, "job.yaml:2:11:",
               "upsample: expected one of rgb, latent, got 'bicubic'");
    EXPECT_ERR("prompt: a\nblur: gauss\n", FS_ERR_INVALID, "job.yaml:2:7:",
               "blur: expected one of 3d, wc, hw, fft, got 'gauss'");
    EXPECT_ERR("prompt: a\nblur: 3D\n", FS_ERR_INVALID, "job.yaml:2:7:", "got '3D'");
    /* freeu */
    EXPECT_ERR("prompt: a\nfreeu: maybe\n", FS_ERR_INVALID, "job.yaml:2:8:",
               "freeu: expected true, false or {b1: ..., b2: ..., s1: ..., s2: ...}, got 'maybe'");
    EXPECT_ERR("prompt: a\nfreeu: [1.1, 1.2]\n", FS_ERR_INVALID, "job.yaml:2:8:",
               "got a sequence of 2 items");
    EXPECT_ERR("prompt: a\nfreeu: {b1: 1.2, b3: 0.5}\n", FS_ERR_INVALID, "job.yaml:2:18:",
               "freeu: unknown key 'b3' (did you mean 'b1'?)");
    EXPECT_ERR("prompt: a\nfreeu: {backbone: 1}\n", FS_ERR_INVALID, "job.yaml:2:9:",
               "freeu: unknown key 'backbone' (known keys: b1, b2, s1, s2)");
    EXPECT_ERR("prompt: a\nfreeu:\n  s1: 0.5\n  s1: 0.6\n", FS_ERR_INVALID, "job.yaml:4:3:",
               "freeu: duplicate key 's1' (first at line 3");
    EXPECT_ERR("prompt: a\nfreeu: {s2: 11}\n", FS_ERR_RANGE, "job.yaml:2:13:",
               "freeu: s2: expected a number 0..10, got '11'");
    EXPECT_ERR("prompt: a\nfreeu: {b2: high}\n", FS_ERR_INVALID, "job.yaml:2:13:",
               "freeu: b2: expected a number 0..10, got 'high'");
    /* paths: PNG files relative to the job's folder */
    EXPECT_ERR("prompt: a\nmask: nope.png\n", FS_ERR_IO, "job.yaml:2:7:",
               "mask: 'nope.png' does not exist", tmpdir);
    EXPECT_ERR("prompt: a\nmask: sdxl\n", FS_ERR_IO, "job.yaml:2:7:",
               "mask: 'sdxl' is not a file (expected a PNG file)");
    EXPECT_ERR("prompt: a\ninput_image: in2.png\n", FS_ERR_IO, "job.yaml:2:14:",
               "input_image: 'in2.png' does not exist");
    EXPECT_ERR("prompt: a\ninput_image: [a]\n", FS_ERR_INVALID, "job.yaml:2:14:",
               "input_image: expected a string");
    /* unknown keys suggest the new ones too */
    EXPECT_ERR("prompt: a\nstage: 4k\n", FS_ERR_INVALID, "unknown key 'stage' (did you mean 'stages'?)");
    EXPECT_ERR("prompt: a\nfreeU: true\n", FS_ERR_INVALID, "(did you mean 'freeu'?)");
    EXPECT_ERR("prompt: a\nrestart: 3\n", FS_ERR_INVALID, "(did you mean 'restart_step'?)");
    EXPECT_ERR("prompt: a\ncosine: 1\n", FS_ERR_INVALID, "(did you mean 'cosine_scale'?)");
    EXPECT_ERR("prompt: a\nblur_sigm: 1\n", FS_ERR_INVALID, "(did you mean 'blur_sigma'?)");
    EXPECT_ERR("prompt: a\nwindow: 1\n", FS_ERR_INVALID, "job.yaml:2:1:",
               "unknown key 'window' (known keys: model,", "stages, restart_step, cosine_scale, "
               "cosine_scale_bg, dilate_tau, fast_mode, upsample, mask, input_image, freeu, blur, "
               "blur_sigma, stage_outputs, scale_fusion, dilation)");
    EXPECT_ERR("prompt: a\nscale_fusion: maybe\n", FS_ERR_INVALID, "job.yaml:2:15:",
               "scale_fusion: expected true, false, yes or no");
    EXPECT_ERR("prompt: a\ndilation: 2\n", FS_ERR_INVALID, "job.yaml:2:11:",
               "dilation: expected true, false, yes or no");
    EXPECT_ERR("prompt: a\nstages: 2k\nstages: 4k\n", FS_ERR_INVALID, "job.yaml:3:1:",
               "duplicate key 'stages'");
}

static void test_freescale_good(void) {
    char want[1024];
    static const int sq4k[] = {1024, 2048, 4096}, sq16k[] = {1024, 2048, 4096, 8192, 16384};
    /* defaults: a plain render, FreeU off, the official FreeScale values otherwise */
    OK("prompt: a\n");
    CHECK(stages_are(1, (int[]){1024}, (int[]){1024}), "n_stages %d", job.n_stages);
    CHECK(job.restart_step == 15 && job.dilate_tau == 35, "%d %d", job.restart_step, job.dilate_tau);
    CHECK(job.cosine_scale == 2.0f && job.cosine_scale_bg == 1.0f && job.blur_sigma == 1.0f, "floats");
    CHECK(!job.fast_mode && !job.upsample_latent && !job.stage_outputs && job.blur == FS_BLUR_3D,
          "flags");
    CHECK(!job.mask[0] && !job.input_image[0], "paths");
    CHECK(freeu_is(0, 1.1f, 1.2f, 0.6f, 0.4f), "freeu off for a plain render");
    /* one stage is the size, and the time ids follow it */
    OK("prompt: a\nsize: [768, 512]\n");
    CHECK(stages_are(1, (int[]){768}, (int[]){512}) && job.orig_width == 768 && job.orig_height == 512,
          "plain stage 0");
    /* presets; size and the time ids follow; FreeU on for a cascade */
    OK("prompt: a\nstages: 4k\n");
    CHECK(stages_are(3, sq4k, sq4k), "4k");
    CHECK(job.width == 4096 && job.height == 4096, "size follows the last stage");
    CHECK(job.orig_width == 1024 && job.orig_height == 1024 && job.target_width == 1024 &&
          job.target_height == 1024, "time ids at stage 0");
    CHECK(freeu_is(1, 1.1f, 1.2f, 0.6f, 0.4f), "freeu on for a cascade");
    OK("prompt: a\nstages: 2k\n");
    CHECK(stages_are(2, sq4k, sq4k) && job.width == 2048, "2k");
    OK("prompt: a\nstages: \"8k\"\n");
    CHECK(stages_are(4, sq16k, sq16k) && job.height == 8192, "8k (quoted)");
    OK("prompt: a\nstages: 16k\nsize: 16384\n");
    CHECK(stages_are(5, sq16k, sq16k) && job.width == 16384, "16k, with an equal size");
    /* list forms, non-square, equal neighbours, and the size given as well */
    OK("prompt: a\nstages: [[512, 384], {height: 768, width: 1024}, [1024, 768], 2048]\n"
       "size: {width: 2048, height: 2048}\ntarget_size: [4096, 4096]\n");
    CHECK(stages_are(4, (int[]){512, 1024, 1024, 2048}, (int[]){384, 768, 768, 2048}), "list");
    CHECK(job.orig_width == 512 && job.orig_height == 384 && job.target_width == 4096, "ids");
    OK("prompt: a\nstages:\n  - 64\n  - 64\n  - 64\n  - 64\n  - 64\n  - 64\n  - 64\n  - 128\n");
    CHECK(job.n_stages == 8 && job.stage_width[7] == 128 && job.width == 128, "8 stages");
    OK("prompt: a\nstages: [1024]\n");
    CHECK(stages_are(1, (int[]){1024}, (int[]){1024}) && job.freeu == 0, "one listed stage");
    /* every key */
    OK("prompt: a\nstages: [512, 1024]\nrestart_step: 10\ncosine_scale: 1.5\n"
       "cosine_scale_bg: 0.5\ndilate_tau: 40\nfast_mode: true\nupsample: latent\nmask: mask.png\n"
       "input_image: in.png\nfreeu: {b1: 1.3, s2: 0.2}\nblur: fft\nblur_sigma: 0.5\n"
       "stage_outputs: yes\n");
    CHECK(job.restart_step == 10 && job.dilate_tau == 40 && job.cosine_scale == 1.5f &&
          job.cosine_scale_bg == 0.5f && job.fast_mode == 1 && job.upsample_latent == 1 &&
          job.blur == FS_BLUR_FFT && job.blur_sigma == 0.5f && job.stage_outputs == 1, "values");
    CHECK(freeu_is(1, 1.3f, 1.2f, 0.6f, 0.2f), "freeu mapping, missing fields at their defaults");
    path_in(want, sizeof want, "mask.png");
    CHECK(!strcmp(job.mask, want), "mask %s", job.mask);
    path_in(want, sizeof want, "in.png");
    CHECK(!strcmp(job.input_image, want), "input_image %s", job.input_image);
    OK("prompt: a\nblur: wc\nupsample: rgb\nmask: \"\"\ninput_image: ~\nfreeu: {}\n");
    CHECK(job.blur == FS_BLUR_WC && !job.upsample_latent && !job.mask[0] && !job.input_image[0] &&
          freeu_is(1, 1.1f, 1.2f, 0.6f, 0.4f), "empty forms");
    OK("prompt: a\nblur: hw\nfreeu: true\n");
    CHECK(job.blur == FS_BLUR_HW && job.freeu == 1, "freeu on for one stage when asked");
    OK("prompt: a\nstages: 4k\nfreeu: no\nblur: 3d\n");
    CHECK(freeu_is(0, 1.1f, 1.2f, 0.6f, 0.4f) && job.blur == FS_BLUR_3D, "freeu off when asked");
    /* defaults from steps: int(0.3 steps), round(0.7 steps) halves to even */
    OK("prompt: a\nsteps: 20\n");
    CHECK(job.restart_step == 6 && job.dilate_tau == 14, "20: %d %d", job.restart_step, job.dilate_tau);
    OK("prompt: a\nsteps: 15\n");
    CHECK(job.restart_step == 4 && job.dilate_tau == 10, "15: %d %d", job.restart_step, job.dilate_tau);
    OK("prompt: a\nsteps: 5\n");
    CHECK(job.restart_step == 1 && job.dilate_tau == 4, "5: %d %d", job.restart_step, job.dilate_tau);
    OK("prompt: a\nsteps: 1\n");
    CHECK(job.restart_step == 0 && job.dilate_tau == 1, "1: %d %d", job.restart_step, job.dilate_tau);
    /* explicit values, named before steps */
    OK("prompt: a\nrestart_step: 19\ndilate_tau: 0\nsteps: 20\n");
    CHECK(job.restart_step == 19 && job.dilate_tau == 0, "explicit");
    OK("prompt: a\nsteps: 20\ndilate_tau: 20\n");
    CHECK(job.dilate_tau == 20, "tau = steps");
}

static void test_freescale_set(void) {
    static const int sq4k[] = {1024, 2048, 4096};
    fs_error err = {0};
    char a[1100], want[1024];
    /* stages: presets and lists; size, time ids and freeu follow */
    OK("prompt: a\n");
    SET("stages=4k");
    CHECK(stages_are(3, sq4k, sq4k) && job.width == 4096 && job.orig_width == 1024 &&
          job.target_height == 1024 && job.freeu == 1, "--set stages=4k");
    VALID();
    SET("stages=[512,1024]");
    CHECK(stages_are(2, (int[]){512, 1024}, (int[]){512, 1024}) && job.width == 1024 &&
          job.orig_width == 512 && job.target_width == 512 && job.freeu == 1, "--set stages=[512,1024]");
    VALID();
    SET("stages=[512]");
    CHECK(job.n_stages == 1 && job.width == 512 && job.freeu == 0, "back to one stage: freeu off");
    VALID();
    SET("size=[768, 512]");
    CHECK(stages_are(1, (int[]){768}, (int[]){512}) && job.orig_width == 768 && job.orig_height == 512,
          "--set size moves the one stage and the ids");
    VALID();
    /* explicit freeu stays; its mapping form */
    SET("freeu=true");
    SET("stages=[768, 1536]");
    CHECK(job.freeu == 1, "an explicit freeu=true stays on");
    SET("stages=[[768, 512]]");
    /* the rule has no memory: on for a cascade was the default, so it followed */
    CHECK(job.freeu == 0, "freeu that equals the cascade default follows it");
    SET("stages=2k");
    SET("freeu=false");
    CHECK(freeu_is(0, 1.1f, 1.2f, 0.6f, 0.4f), "--set freeu=false");
    SET("stages=4k");
    CHECK(job.freeu == 0, "an explicit freeu=false stays off for a cascade");
    SET("freeu={b1: 1.2}");
    CHECK(freeu_is(1, 1.2f, 1.2f, 0.6f, 0.4f), "--set freeu={b1: 1.2}");
    SET("stages=[1024]");
    CHECK(freeu_is(1, 1.2f, 1.2f, 0.6f, 0.4f), "changed factors keep freeu on");
    SET("freeu={s1: 0.5, s2: 0.25, b2: 1.4, b1: 1}");
    CHECK(freeu_is(1, 1.0f, 1.4f, 0.5f, 0.25f), "all factors");
    VALID();
    /* steps: restart_step and dilate_tau follow while they are the defaults */
    OK("prompt: a\nstages: 2k\n");
    SET("steps=20");
    CHECK(job.restart_step == 6 && job.dilate_tau == 14, "after --set steps=20: %d %d",
          job.restart_step, job.dilate_tau);
    SET("steps=50");
    CHECK(job.restart_step == 15 && job.dilate_tau == 35, "and back");
    SET("restart_step=10");
    SET("dilate_tau=30");
    SET("steps=20");
    CHECK(job.restart_step == 10 && job.dilate_tau == 30, "explicit values stay: %d %d",
          job.restart_step, job.dilate_tau);
    EXPECT_INVALID_JOB(FS_ERR_RANGE, "job.yaml: dilate_tau: expected an integer 0..20 (at most "
                       "steps: 20), got 30");
    SET("dilate_tau=20");
    VALID();
    SET("steps=10");
    EXPECT_INVALID_JOB(FS_ERR_RANGE, "job.yaml: restart_step: expected an integer 0..9 (below "
                       "steps: 10), got 10");
    SET("restart_step=60");  /* bounds against steps are checked after all overrides */
    SET("steps=100");
    VALID();
    OK("prompt: a\nrestart_step: 15\nsteps: 50\n");  /* the default's value follows too */
    SET("steps=20");
    CHECK(job.restart_step == 6, "%d", job.restart_step);
    /* a size that disagrees with the stages is caught by validate */
    OK("prompt: a\nstages: 4k\n");
    SET("size=2048");
    EXPECT_INVALID_JOB(FS_ERR_INVALID, "job.yaml: size: [2048, 2048] differs from the last stage "
                       "of stages, [4096, 4096]");
    SET("stages=2k");
    VALID();
    /* the other keys */
    SET("cosine_scale=1");
    SET("cosine_scale_bg=0.5");
    SET("fast_mode=yes");
    SET("upsample=latent");
    SET("blur=wc");
    SET("blur_sigma=2");
    SET("stage_outputs=true");
    CHECK(job.cosine_scale == 1.0f && job.cosine_scale_bg == 0.5f && job.fast_mode &&
          job.upsample_latent && job.blur == FS_BLUR_WC && job.blur_sigma == 2.0f &&
          job.stage_outputs, "other keys");
    path_in(want, sizeof want, "mask.png");
    snprintf(a, sizeof a, "mask=%s", want);
    SET(a);
    CHECK(!strcmp(job.mask, want), "%s", job.mask);
    path_in(want, sizeof want, "in.png");
    snprintf(a, sizeof a, "input_image=%s", want);
    SET(a);
    CHECK(!strcmp(job.input_image, want), "%s", job.input_image);
    SET("mask=");
    CHECK(!job.mask[0], "mask= clears it");
    VALID();
    CHECK(fs_job_set(&job, "mask=/nonexistent/m.png", &err) == FS_ERR_IO &&
          strstr(err.msg, "--set mask: '/nonexistent/m.png' does not exist"), "%s", err.msg);

    EXPECT_SET_ERR("stages=5k", FS_ERR_INVALID, "--set stages: expected a list of 1..8 sizes",
                   "got '5k'");
    EXPECT_SET_ERR("stages=[2048,1024]", FS_ERR_INVALID,
                   "--set stages[1]: [1024, 1024] is smaller than stages[0], [2048, 2048]");
    EXPECT_SET_ERR("stages=[]", FS_ERR_RANGE, "--set stages: expected 1..8 sizes");
    EXPECT_SET_ERR("blur=gauss", FS_ERR_INVALID, "--set blur: expected one of 3d, wc, hw, fft, "
                   "got 'gauss'");
    EXPECT_SET_ERR("freeu={b3: 1}", FS_ERR_INVALID, "--set freeu: unknown key 'b3'");
    EXPECT_SET_ERR("freeu=on", FS_ERR_INVALID, "--set freeu: expected true, false or {b1:");
    EXPECT_SET_ERR("restart_step=-1", FS_ERR_RANGE, "--set restart_step: expected an integer 0..999");
    EXPECT_SET_ERR("blur_sigma=0", FS_ERR_RANGE, "--set blur_sigma: expected a number > 0");
    EXPECT_SET_ERR("upsample=nearest", FS_ERR_INVALID, "--set upsample: expected one of rgb, latent");
    EXPECT_SET_ERR("stagse=4k", FS_ERR_INVALID, "--set", "(did you mean 'stages'?)");

    /* validate on hand-made jobs */
    fs_job_defaults(&job);
    strcpy(job.prompt, "x");
    VALID();
    job.width = 2048;
    EXPECT_INVALID_JOB(FS_ERR_INVALID, "size: [2048, 1024] differs from the last stage");
    job.stage_width[0] = 2048;
    VALID();
    job.stage_width[3] = 64;
    EXPECT_INVALID_JOB(FS_ERR_INVALID, "stages: entry 3 is past the 1 stage and must be 0");
    job.stage_width[3] = 0;
    job.n_stages = 9;
    EXPECT_INVALID_JOB(FS_ERR_RANGE, "stages: count: expected an integer 1..8, got 9");
    job.n_stages = 2;
    job.stage_width[1] = 1024, job.stage_height[1] = 1024;
    job.width = 1024;
    EXPECT_INVALID_JOB(FS_ERR_INVALID, "stages[1]: [1024, 1024] is smaller than stages[0], [2048, 1024]");
    job.stage_width[1] = 2048;
    job.width = 2048;
    VALID();
    job.blur_sigma = 0;
    EXPECT_INVALID_JOB(FS_ERR_RANGE, "blur_sigma: expected a number > 0 and <= 100, got 0");
    job.blur_sigma = 1;
    job.cosine_scale = NAN;
    EXPECT_INVALID_JOB(FS_ERR_RANGE, "cosine_scale: expected a number 0..100");
    job.cosine_scale = 2;
    job.blur = 4;
    EXPECT_INVALID_JOB(FS_ERR_RANGE, "blur: expected an integer 0..3, got 4");
    job.blur = 0;
    job.freeu_s1 = 0.5f;
    EXPECT_INVALID_JOB(FS_ERR_INVALID, "freeu: off, but b1, b2, s1, s2 are not the defaults");
    job.freeu = 1;
    VALID();
    job.freeu_b2 = -1;
    EXPECT_INVALID_JOB(FS_ERR_RANGE, "freeu: b2: expected a number 0..10, got -1");
}

/* The shipped example jobs load, and every one round-trips. */
static void test_example_jobs(void) {
    char dir[1024], p[1200];
    fs_error err = {0};
    static const int sq4k[] = {1024, 2048, 4096};
    snprintf(dir, sizeof dir, "%s", __FILE__);  /* .../tests/test_jobs.c */
    char *slash = strrchr(dir, '/');
    if (!slash) { printf("test_jobs: no source path, example jobs skipped\n"); return; }
    *slash = 0;
    snprintf(p, sizeof p, "%s/../jobs/freescale_4k.yaml", dir);
    CHECK(fs_job_load(p, &job, &err) == FS_OK, "%s", err.msg);
    CHECK(stages_are(3, sq4k, sq4k) && job.steps == 50 && job.seed == 123 && job.guidance == 7.5f &&
          job.restart_step == 15 && job.dilate_tau == 35 && job.cosine_scale == 2.0f &&
          freeu_is(1, 1.1f, 1.2f, 0.6f, 0.4f) && job.blur == FS_BLUR_3D && job.blur_sigma == 1.0f &&
          !job.fast_mode && !job.upsample_latent && job.orig_width == 1024 && !job.model[0] &&
          !strcmp(job.negative_prompt, "blurry, ugly, duplicate, poorly drawn, deformed, mosaic"),
          "freescale_4k.yaml: the official configuration");
    SET("steps=20");
    CHECK(job.restart_step == 6 && job.dilate_tau == 14, "the 4k example follows --set steps");
    snprintf(p, sizeof p, "%s/../jobs/freescale_tiny.yaml", dir);
    CHECK(fs_job_load(p, &job, &err) == FS_OK, "%s", err.msg);
    CHECK(stages_are(2, (int[]){256, 512}, (int[]){256, 512}) && job.steps == 10 &&
          job.restart_step == 3 && job.dilate_tau == 7 && job.freeu == 1 && job.width == 512 &&
          job.orig_width == 256, "freescale_tiny.yaml");
    const char *names[] = {"example.yaml", "freescale_4k.yaml", "freescale_tiny.yaml"};
    static char text[16384];
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/../jobs/%s", dir, names[i]);
        FILE *f = fopen(p, "rb");
        CHECK(f != NULL, "cannot open %s", p);
        if (!f) continue;
        size_t n = fread(text, 1, sizeof text - 1, f);
        fclose(f);
        text[n] = 0;
        round_trip(__LINE__, text);
    }
}

int main(void) {
    if (jobs_setup()) return 1;
    test_freescale_errors();
    test_freescale_good();
    test_freescale_set();
    test_example_jobs();
    jobs_cleanup(NULL);
    return check_report("test_jobs_freescale");
}
