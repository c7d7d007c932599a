/* jobs/: the job file. Every error case is checked for its code AND for a
 * message that names the file, the line:column and what was expected; good
 * jobs for every key, the defaults, each size form, --set overrides, the
 * round trip through fs_job_to_yaml (byte-identical struct) and relative
 * model paths resolved against the job file's folder (a temp dir). */
#include "jobs_check.h"

static void test_errors(void) {
    /* malformed YAML: libyaml's problem and position */
    EXPECT_ERR("prompt: [a\n", FS_ERR_FORMAT, "job.yaml:2:1:", "malformed YAML",
               "did not find expected ',' or ']'");
    EXPECT_ERR("prompt: a\n  steps: 3\n", FS_ERR_FORMAT, "job.yaml:2:8:", "malformed YAML",
               "mapping values are not allowed");
    EXPECT_ERR("prompt: \xff\n", FS_ERR_FORMAT, "job.yaml:1:9:", "malformed YAML", "UTF-8");
    EXPECT_ERR("prompt: a\x01\n", FS_ERR_FORMAT, "job.yaml:1:10:", "control characters");
    /* top level */
    EXPECT_ERR("- a\n- b\n", FS_ERR_FORMAT, "job.yaml:1:1:", "top level must be a mapping",
               "a sequence of 2 items");
    EXPECT_ERR("# c\nhello\n", FS_ERR_FORMAT, "job.yaml:2:1:", "top level must be a mapping",
               "'hello'");
    /* unknown keys */
    EXPECT_ERR("prompt: a\nstpes: 20\n", FS_ERR_INVALID, "job.yaml:2:1:", "unknown key 'stpes'",
               "(did you mean 'steps'?)");
    EXPECT_ERR("prompt: a\nnegative: x\n", FS_ERR_INVALID, "job.yaml:2:1:",
               "unknown key 'negative' (did you mean 'negative_prompt'?)");
    EXPECT_ERR("prompt: a\nguidence: 3\n", FS_ERR_INVALID, "did you mean 'guidance'?");
    EXPECT_ERR("prompt: a\ncolour: red\n", FS_ERR_INVALID, "job.yaml:2:1:", "unknown key 'colour'",
               "known keys: model, prompt");
    EXPECT_ERR("prompt: a\n[1]: 2\n", FS_ERR_INVALID, "job.yaml:2:1:", "expected a key name",
               "a sequence");
    EXPECT_ERR("prompt: a\n<<: {steps: 1}\n", FS_ERR_INVALID, "job.yaml:2:1:", "merge keys");
    /* duplicate keys: both positions */
    EXPECT_ERR("prompt: a\nsteps: 2\nsteps: 3\n", FS_ERR_INVALID, "job.yaml:3:1:",
               "duplicate key 'steps'", "first at line 2", "again at line 3");
    EXPECT_ERR("prompt: a\nsize: {width: 64, width: 128}\n", FS_ERR_INVALID, "job.yaml:2:19:",
               "size: duplicate key 'width'");
    /* wrong types */
    EXPECT_ERR("prompt: a\nsteps: ten\n", FS_ERR_INVALID, "job.yaml:2:8:",
               "steps: expected an integer 1..1000, got 'ten'");
    EXPECT_ERR("prompt: a\nsteps: \"20\"\n", FS_ERR_INVALID, "job.yaml:2:8:",
               "steps: expected an integer 1..1000, got a string '20'");
    EXPECT_ERR("prompt: a\nsteps: [1, 2]\n", FS_ERR_INVALID, "job.yaml:2:8:",
               "got a sequence of 2 items");
    EXPECT_ERR("prompt: a\nsteps: 20.5\n", FS_ERR_INVALID, "job.yaml:2:8:", "got '20.5'");
    EXPECT_ERR("prompt: a\nsteps: 0x10\n", FS_ERR_INVALID, "job.yaml:2:8:", "got '0x10'");
    EXPECT_ERR("prompt: a\nsteps: 010\n", FS_ERR_INVALID, "job.yaml:2:8:", "got '010'");
    EXPECT_ERR("prompt: a\nsteps:\n", FS_ERR_INVALID, "job.yaml:2:7:", "got nothing (null)");
    EXPECT_ERR("prompt: {a: 1}\n", FS_ERR_INVALID, "job.yaml:1:9:",
               "prompt: expected a string, got a mapping");
    EXPECT_ERR("prompt: a\nguidance: high\n", FS_ERR_INVALID, "job.yaml:2:11:",
               "guidance: expected a number 0..100, got 'high'");
    EXPECT_ERR("prompt: a\nguidance: .inf\n", FS_ERR_INVALID, "job.yaml:2:11:", "got '.inf'");
    EXPECT_ERR("prompt: a\nguidance: \"7\"\n", FS_ERR_INVALID, "job.yaml:2:11:", "got a string '7'");
    EXPECT_ERR("prompt: a\nvae_tiling: maybe\n", FS_ERR_INVALID, "job.yaml:2:13:",
               "vae_tiling: expected true, false, yes or no, got 'maybe'");
    EXPECT_ERR("prompt: a\nvae_tiling: 1\n", FS_ERR_INVALID, "job.yaml:2:13:", "got '1'");
    EXPECT_ERR("prompt: a\noutput: [x]\n", FS_ERR_INVALID, "job.yaml:2:9:", "output: expected a string");
    EXPECT_ERR("prompt: a\nsize: [64, 64, 64]\n", FS_ERR_INVALID, "job.yaml:2:7:",
               "size: expected [width, height], got a sequence of 3 items");
    EXPECT_ERR("prompt: a\nsize: {width: 1024, heigth: 768}\n", FS_ERR_INVALID, "job.yaml:2:21:",
               "size: unknown key 'heigth' (did you mean 'height'?)");
    EXPECT_ERR("prompt: a\nsize: {width: 1024}\n", FS_ERR_INVALID, "job.yaml:2:7:",
               "size: missing 'height'");
    EXPECT_ERR("prompt: a\ncrop: {left: 1, top: x}\n", FS_ERR_INVALID, "job.yaml:2:22:",
               "crop: top: expected an integer 0..65536, got 'x'");
    /* out of range */
    EXPECT_ERR("prompt: a\nsteps: 0\n", FS_ERR_RANGE, "job.yaml:2:8:",
               "steps: expected an integer 1..1000, got '0'");
    EXPECT_ERR("prompt: a\nsteps: 1001\n", FS_ERR_RANGE, "job.yaml:2:8:", "got '1001'");
    EXPECT_ERR("prompt: a\nsteps: 99999999999999999999999\n", FS_ERR_RANGE, "job.yaml:2:8:",
               "expected an integer 1..1000");
    EXPECT_ERR("prompt: a\nguidance: -1\n", FS_ERR_RANGE, "job.yaml:2:11:",
               "guidance: expected a number 0..100, got '-1'");
    EXPECT_ERR("prompt: a\nguidance: 100.5\n", FS_ERR_RANGE, "job.yaml:2:11:", "got '100.5'");
    EXPECT_ERR("prompt: a\nsize: 1000\n", FS_ERR_RANGE, "job.yaml:2:7:",
               "size: expected a multiple of 64 in 64..65536, got '1000'");
    EXPECT_ERR("prompt: a\nsize: 32\n", FS_ERR_RANGE, "job.yaml:2:7:", "got '32'");
    EXPECT_ERR("prompt: a\nsize: 65600\n", FS_ERR_RANGE, "job.yaml:2:7:", "got '65600'");
    EXPECT_ERR("prompt: a\nsize: 0\n", FS_ERR_RANGE, "job.yaml:2:7:", "got '0'");
    EXPECT_ERR("prompt: a\nsize: [1024, 1000]\n", FS_ERR_RANGE, "job.yaml:2:14:",
               "size: height: expected a multiple of 64 in 64..65536, got '1000'");
    EXPECT_ERR("prompt: a\nsize:\n  width: 100\n  height: 64\n", FS_ERR_RANGE, "job.yaml:3:10:",
               "size: width: expected a multiple of 64");
    EXPECT_ERR("prompt: a\nseed: -1\n", FS_ERR_RANGE, "job.yaml:2:7:",
               "seed: expected an integer 0..18446744073709551615, got '-1'");
    EXPECT_ERR("prompt: a\nseed: 18446744073709551616\n", FS_ERR_RANGE, "job.yaml:2:7:",
               "got '18446744073709551616'");
    EXPECT_ERR("prompt: a\ncrop: [-1, 0]\n", FS_ERR_RANGE, "job.yaml:2:8:", "crop: left:");
    EXPECT_ERR("prompt: a\noriginal_size: [0, 1024]\n", FS_ERR_RANGE, "job.yaml:2:17:",
               "original_size: width: expected an integer 1..65536");
    /* enums */
    EXPECT_ERR("prompt: a\nscheduler: heun\n", FS_ERR_INVALID, "job.yaml:2:12:",
               "scheduler: expected one of euler, ddim, got 'heun'");
    EXPECT_ERR("prompt: a\nprecision: fp8\n", FS_ERR_INVALID, "job.yaml:2:12:",
               "precision: expected one of fp32, fp16, bf16, got 'fp8'");
    /* the required prompt */
    EXPECT_ERR("steps: 3\n", FS_ERR_INVALID, "job.yaml:1:1:", "missing required key 'prompt'");
    EXPECT_ERR("", FS_ERR_INVALID, "job.yaml:1:1:", "missing required key 'prompt'");
    EXPECT_ERR("# only a comment\n", FS_ERR_INVALID, "job.yaml:1:1:", "missing required key 'prompt'");
    EXPECT_ERR("prompt: \"\"\n", FS_ERR_INVALID, "job.yaml:1:9:", "prompt: must not be empty");
    EXPECT_ERR("prompt:\n", FS_ERR_INVALID, "job.yaml:1:8:", "prompt: expected a string, got nothing");
    EXPECT_ERR("prompt: a\noutput: \"\"\n", FS_ERR_INVALID, "job.yaml:2:9:", "output: must not be empty");
    /* paths: relative to the job's folder (tmpdir), must exist */
    EXPECT_ERR("prompt: a\nmodel: nope.safetensors\n", FS_ERR_IO, "job.yaml:2:8:",
               "model: 'nope.safetensors' does not exist", tmpdir);
    EXPECT_ERR("prompt: a\nnoise: sdxl\n", FS_ERR_IO, "job.yaml:2:8:", "noise: 'sdxl' is not a file");
    EXPECT_ERR("prompt: a\nnoise: missing.safetensors\n", FS_ERR_IO, "job.yaml:2:8:",
               "does not exist");
    /* strings: length and NUL */
    {
        static char text[FS_JOB_TEXT_MAX + 64];
        int n = snprintf(text, sizeof text, "prompt: ");
        memset(text + n, 'x', FS_JOB_TEXT_MAX);  /* one byte too many */
        strcpy(text + n + FS_JOB_TEXT_MAX, "\n");
        EXPECT_ERR(text, FS_ERR_RANGE, "job.yaml:1:9:", "prompt: 4096 bytes long, at most 4095");
        strcpy(text + n + FS_JOB_TEXT_MAX - 1, "\n");  /* exactly the limit */
        OK(text);
        CHECK(strlen(job.prompt) == FS_JOB_TEXT_MAX - 1, "%zu", strlen(job.prompt));
    }
    EXPECT_ERR("prompt: \"a\\0b\"\n", FS_ERR_INVALID, "job.yaml:1:9:", "prompt:", "NUL byte");
    {
        fs_error err = {0};
        fs_code rc = fs_job_parse("prompt: a\0b\n", 12, "job.yaml", tmpdir, &job, &err);
        CHECK(rc == FS_ERR_FORMAT && strstr(err.msg, "job.yaml:1:10:"), "%s", err.msg);
    }
    /* one document per file */
    EXPECT_ERR("prompt: a\n---\nprompt: b\n", FS_ERR_FORMAT, "job.yaml:2:1:", "second YAML document");
    EXPECT_ERR("---\nprompt: a\n...\n---\nsteps: 3\n", FS_ERR_FORMAT, "job.yaml:4:1:",
               "second YAML document");
    /* aliases, tags, caps */
    EXPECT_ERR("prompt: *x\n", FS_ERR_FORMAT, "job.yaml:1:9:", "alias '*x' names no earlier anchor");
    EXPECT_ERR("prompt: !foo a\n", FS_ERR_FORMAT, "job.yaml:1:9:", "unsupported YAML tag '!foo'");
    {
        /* billion laughs: 9 levels of 10 aliases each is 10^9 leaves if
         * expanded; shared nodes make it ~100 nodes, refused as a wrong type */
        char text[4096];
        int n = snprintf(text, sizeof text, "- &l0 [lol, lol]\n");
        for (int lv = 1; lv < 10; lv++) {
            n += snprintf(text + n, sizeof text - n, "- &l%d [", lv);
            for (int k = 0; k < 10; k++) n += snprintf(text + n, sizeof text - n, "%s*l%d", k ? ", " : "", lv - 1);
            n += snprintf(text + n, sizeof text - n, "]\n");
        }
        double t0 = now_s();
        EXPECT_ERR(text, FS_ERR_FORMAT, "job.yaml:1:1:", "top level must be a mapping");
        CHECK(now_s() - t0 < 1.0, "billion laughs took %.2f s", now_s() - t0);
    }
    {
        static char text[64 * 1024];
        int n = snprintf(text, sizeof text, "prompt: a\nsteps: [");
        for (int k = 0; k < 12000; k++) n += snprintf(text + n, sizeof text - n, "1,");
        snprintf(text + n, sizeof text - n, "1]\n");
        EXPECT_ERR(text, FS_ERR_FORMAT, "job.yaml:2:", "more than 10000 YAML nodes");
        n = snprintf(text, sizeof text, "prompt: ");
        for (int k = 0; k < 100; k++) text[n++] = '[';
        text[n] = 0;
        EXPECT_ERR(text, FS_ERR_FORMAT, "job.yaml:1:", "nested deeper than 32 levels");
    }
    {
        size_t big = (1u << 20) + 1;
        char *text = malloc(big);
        memset(text, '#', big);
        fs_error err = {0};
        fs_code rc = fs_job_parse(text, big, "job.yaml", NULL, &job, &err);
        CHECK(rc == FS_ERR_FORMAT && strstr(err.msg, "job.yaml:1:1:") && strstr(err.msg, "at most"),
              "%s", err.msg);
        free(text);
    }
    /* fs_job_load: the path is the label; a missing file is FS_ERR_IO */
    {
        char p[1024];
        fs_error err = {0};
        write_file("bad.yaml", "prompt: a\nsteps: ten\n", 21);
        path_in(p, sizeof p, "bad.yaml");
        fs_code rc = fs_job_load(p, &job, &err);
        char want[1100];
        snprintf(want, sizeof want, "%s:2:8: steps: expected an integer", p);
        CHECK(rc == FS_ERR_INVALID && strstr(err.msg, want), "%s", err.msg);
        path_in(p, sizeof p, "absent.yaml");
        rc = fs_job_load(p, &job, &err);
        CHECK(rc == FS_ERR_IO && strstr(err.msg, "absent.yaml") && strstr(err.msg, "cannot open"),
              "%s", err.msg);
    }
}

static void test_good(void) {
    fs_error err = {0};
    /* defaults */
    OK("prompt: a cat\n");
    CHECK(!strcmp(job.prompt, "a cat") && !strcmp(job.source, "job.yaml"), "%s", job.prompt);
    CHECK(job.model[0] == 0 && job.negative_prompt[0] == 0 && job.noise[0] == 0, "empty strings");
    CHECK(job.seed == 0 && job.steps == 50 && job.guidance == 7.5f, "seed/steps/guidance");
    CHECK(job.scheduler == FS_SCHED_EULER && job.precision == FS_DTYPE_F32, "enums");
    CHECK(job.width == 1024 && job.height == 1024, "%dx%d", job.width, job.height);
    CHECK(!strcmp(job.output, "out.png"), "%s", job.output);
    CHECK(job.orig_width == 1024 && job.orig_height == 1024 && job.target_width == 1024 &&
          job.target_height == 1024, "micro-conditioning");
    CHECK(job.crop_left == 0 && job.crop_top == 0 && job.vae_tiling == 0, "crop, tiling");

    /* every key */
    OK("# a job\n"
       "model: m.safetensors\n"
       "prompt: 'a \"red\" fox'\n"
       "negative_prompt: >\n  blurry,\n  dark\n"
       "seed: 18446744073709551615\n"
       "steps: 1000\n"
       "guidance: 0\n"
       "scheduler: ddim\n"
       "size: [2048, 1536]\n"
       "output: renders/fox.png\n"
       "precision: bf16\n"
       "noise: noise.safetensors\n"
       "original_size: {height: 900, width: 1000}\n"
       "target_size: 512\n"
       "crop: [16, 32]\n"
       "vae_tiling: Yes\n");
    char want[1024];
    path_in(want, sizeof want, "m.safetensors");
    CHECK(!strcmp(job.model, want), "model %s", job.model);
    path_in(want, sizeof want, "noise.safetensors");
    CHECK(!strcmp(job.noise, want), "noise %s", job.noise);
    CHECK(!strcmp(job.prompt, "a \"red\" fox"), "%s", job.prompt);
    CHECK(!strcmp(job.negative_prompt, "blurry, dark\n"), "[%s]", job.negative_prompt);
    CHECK(job.seed == UINT64_MAX && job.steps == 1000 && job.guidance == 0.0f, "numbers");
    CHECK(job.scheduler == FS_SCHED_DDIM && job.precision == FS_DTYPE_BF16, "enums");
    CHECK(job.width == 2048 && job.height == 1536, "%dx%d", job.width, job.height);
    CHECK(!strcmp(job.output, "renders/fox.png"), "output kept as written: %s", job.output);
    CHECK(job.orig_width == 1000 && job.orig_height == 900, "%d %d", job.orig_width, job.orig_height);
    CHECK(job.target_width == 512 && job.target_height == 512, "target");
    CHECK(job.crop_left == 16 && job.crop_top == 32 && job.vae_tiling == 1, "crop, tiling");

    /* model forms, null strings, aliases, quoted keys, !!str */
    OK("model: default\nprompt: &p hello\nnegative_prompt: *p\nnoise: ~\n");
    CHECK(job.model[0] == 0 && !strcmp(job.negative_prompt, "hello") && !job.noise[0], "aliases");
    OK("model: sdxl\n\"prompt\": !!str 123\nnegative_prompt:\nvae_tiling: no\nprecision: fp16\n");
    path_in(want, sizeof want, "sdxl");
    CHECK(!strcmp(job.model, want) && !strcmp(job.prompt, "123") && job.vae_tiling == 0 &&
          job.precision == FS_DTYPE_F16, "folder model, !!str: %s %s", job.model, job.prompt);
    OK("{prompt: x, steps: +7, seed: -0, guidance: 1e1}\n");
    CHECK(job.steps == 7 && job.seed == 0 && job.guidance == 10.0f, "flow mapping");

    /* size forms; original/target follow the size when absent */
    OK("prompt: a\nsize: 768\n");
    CHECK(job.width == 768 && job.height == 768 && job.orig_width == 768 && job.target_height == 768,
          "square");
    OK("prompt: a\nsize: [1024, 768]\n");
    CHECK(job.width == 1024 && job.height == 768 && job.orig_width == 1024 && job.orig_height == 768 &&
          job.target_width == 1024 && job.target_height == 768, "sequence");
    OK("prompt: a\nsize: {width: 1024, height: 768}\n");
    CHECK(job.width == 1024 && job.height == 768, "mapping");
    OK("prompt: a\nsize:\n  height: 64\n  width: 65536\n");
    CHECK(job.width == 65536 && job.height == 64, "block mapping, bounds");
    OK("prompt: a\nsize: [1024, 768]\ntarget_size: [4096, 3072]\n");
    CHECK(job.orig_width == 1024 && job.orig_height == 768 && job.target_width == 4096, "target set");

    /* --set */
    OK("prompt: a\nsize: 1024\noriginal_size: 2048\n");
    CHECK(fs_job_set(&job, "steps=20", &err) == FS_OK && job.steps == 20, "%s", err.msg);
    CHECK(fs_job_set(&job, "size=[512, 768]", &err) == FS_OK, "%s", err.msg);
    CHECK(job.width == 512 && job.height == 768, "set size");
    CHECK(job.target_width == 512 && job.target_height == 768, "target follows the size");
    CHECK(job.orig_width == 2048 && job.orig_height == 2048, "an explicit original_size stays");
    CHECK(fs_job_set(&job, "original_size=[100, 200]", &err) == FS_OK &&
          fs_job_set(&job, "size={width: 64, height: 128}", &err) == FS_OK, "%s", err.msg);
    CHECK(job.orig_width == 100 && job.target_width == 64 && job.target_height == 128, "pinned");
    CHECK(fs_job_set(&job, "prompt=a cat: on a mat # not a comment", &err) == FS_OK &&
          !strcmp(job.prompt, "a cat: on a mat # not a comment"), "literal: %s", job.prompt);
    CHECK(fs_job_set(&job, "prompt=\"tab\\there\"", &err) == FS_OK && !strcmp(job.prompt, "tab\there"),
          "quoted: %s", job.prompt);
    CHECK(fs_job_set(&job, "negative_prompt=", &err) == FS_OK && !job.negative_prompt[0], "empty");
    CHECK(fs_job_set(&job, "seed=12345678901234", &err) == FS_OK && job.seed == 12345678901234ull, "seed");
    CHECK(fs_job_set(&job, "guidance=5", &err) == FS_OK && job.guidance == 5.0f, "guidance");
    CHECK(fs_job_set(&job, "scheduler=ddim", &err) == FS_OK && job.scheduler == FS_SCHED_DDIM, "ddim");
    CHECK(fs_job_set(&job, "vae_tiling=true", &err) == FS_OK && job.vae_tiling == 1, "tiling");
    CHECK(fs_job_set(&job, "crop=8", &err) == FS_OK && job.crop_left == 8 && job.crop_top == 8, "crop");
    path_in(want, sizeof want, "m.safetensors");
    CHECK(fs_job_set(&job, "", &err) == FS_ERR_INVALID, "empty assignment");
    {
        char a[1100];
        snprintf(a, sizeof a, "model=%s", want);  /* absolute: cwd does not matter */
        CHECK(fs_job_set(&job, a, &err) == FS_OK && !strcmp(job.model, want), "%s", err.msg);
        CHECK(fs_job_set(&job, "model=default", &err) == FS_OK && !job.model[0], "default");
    }
    CHECK(fs_job_validate(&job, &err) == FS_OK, "%s", err.msg);

    EXPECT_SET_ERR("steps=0", FS_ERR_RANGE, "--set steps: expected an integer 1..1000, got '0'");
    EXPECT_SET_ERR("steps=ten", FS_ERR_INVALID, "--set steps: expected an integer 1..1000, got 'ten'");
    EXPECT_SET_ERR("stpes=20", FS_ERR_INVALID, "--set", "unknown key 'stpes' (did you mean 'steps'?)");
    EXPECT_SET_ERR("steps", FS_ERR_INVALID, "--set", "expected key=value, got 'steps'");
    EXPECT_SET_ERR("=3", FS_ERR_INVALID, "--set", "expected key=value");
    EXPECT_SET_ERR("size=[512,", FS_ERR_FORMAT, "--set size:", "malformed YAML");
    EXPECT_SET_ERR("size=[512, 100]", FS_ERR_RANGE, "--set size: height: expected a multiple of 64");
    EXPECT_SET_ERR("steps=", FS_ERR_INVALID, "--set steps:", "got nothing (null)");
    EXPECT_SET_ERR("steps=1\n---\n2", FS_ERR_FORMAT, "--set steps:", "second YAML document");
    EXPECT_SET_ERR("prompt=", FS_ERR_INVALID, "--set prompt: must not be empty");
    EXPECT_SET_ERR("model=/nonexistent/m.safetensors", FS_ERR_IO, "--set model:", "does not exist");
    EXPECT_SET_ERR("prompt=\xff", FS_ERR_INVALID, "--set prompt:", "not valid UTF-8");
    EXPECT_SET_ERR("scheduler=Euler", FS_ERR_INVALID, "--set scheduler: expected one of euler, ddim");

    /* validate on hand-made jobs */
    fs_job_defaults(&job);
    CHECK(fs_job_validate(&job, &err) == FS_ERR_INVALID && strstr(err.msg, "missing required key 'prompt'"),
          "%s", err.msg);
    strcpy(job.prompt, "x");
    CHECK(fs_job_validate(&job, &err) == FS_OK, "%s", err.msg);
    job.width = 100;
    CHECK(fs_job_validate(&job, &err) == FS_ERR_RANGE && strstr(err.msg, "size: width"), "%s", err.msg);
    job.width = 64;
    job.guidance = NAN;
    CHECK(fs_job_validate(&job, &err) == FS_ERR_RANGE && strstr(err.msg, "guidance"), "%s", err.msg);
    CHECK(!strcmp(fs_scheduler_name(FS_SCHED_EULER), "euler") &&
          !strcmp(fs_scheduler_name(FS_SCHED_DDIM), "ddim"), "names");
}


static void test_round_trip(void) {
    round_trip(__LINE__, "prompt: a\n");
    round_trip(__LINE__,
               "model: sdxl\nprompt: \"q\\\"b\\\\s\\n\\t\\r \\x01\\x7F\\x85\\xA0 \\L\\P\\uFEFF\\uFFFE "
               "\\U0001F600 \u00e9\u4e2d  # : - [ ] { } & * ! | > ' % @ `  \"\n"
               "negative_prompt: ' leading and trailing '\nseed: 123456789012345678\n"
               "steps: 33\nguidance: 3.3333333\nscheduler: ddim\nsize: [128, 192]\n"
               "output: \"out dir/\u00fc.png\"\nprecision: fp16\nnoise: noise.safetensors\n"
               "original_size: [1, 65536]\ntarget_size: 7\ncrop: [65536, 0]\nvae_tiling: true\n");
    round_trip(__LINE__, "prompt: a\nstages: 4k\n");
    round_trip(__LINE__, "prompt: a\nstages: 4k\nfreeu: false\n");
    round_trip(__LINE__, "prompt: a\nfreeu: true\nsize: [1024, 512]\n");
    round_trip(__LINE__,
               "prompt: a\nstages: [[512, 384], 1024, [2048, 4096]]\nrestart_step: 0\n"
               "cosine_scale: 0.333\ncosine_scale_bg: 0\ndilate_tau: 50\nfast_mode: true\n"
               "upsample: latent\nmask: mask.png\ninput_image: in.png\n"
               "freeu: {b1: 1.05, b2: 0.1, s1: 1e-7, s2: 10}\nblur: hw\nblur_sigma: 1e-30\n"
               "stage_outputs: true\noriginal_size: 640\n");
    for (int b = 0; b < 4; b++) {
        char t[128];
        static const char *const blurs[] = {"3d", "wc", "hw", "fft"};
        snprintf(t, sizeof t, "prompt: b\nblur: %s\nsteps: %d\n", blurs[b], 1 + 333 * b);
        round_trip(__LINE__, t);
    }
    const char *guidance[] = {"0.1", "7.5", "1e-30", "99.99999", "100", "0.3", "1.17549435e-38"};
    for (size_t i = 0; i < sizeof guidance / sizeof *guidance; i++) {
        char t[128];
        snprintf(t, sizeof t, "prompt: g\nguidance: %s\n", guidance[i]);
        round_trip(__LINE__, t);
    }
    /* a readable form: the shortest float text, model default */
    fs_error err = {0};
    CHECK(parse("prompt: a\nguidance: 0.1\n", &err) == FS_OK, "%s", err.msg);
    char small[16];
    char full[4096];
    size_t n = fs_job_to_yaml(&job, full, sizeof full);
    CHECK(strstr(full, "guidance: 0.1\n") && strstr(full, "model: default\n") &&
          strstr(full, "size: [1024, 1024]\n") && strstr(full, "vae_tiling: false\n"), "%s", full);
    CHECK(strstr(full, "\nstages: [1024]\nrestart_step: 15\ncosine_scale: 2\ncosine_scale_bg: 1\n"
                 "dilate_tau: 35\nfast_mode: false\nupsample: rgb\nmask: \"\"\n"
                 "input_image: \"\"\nfreeu: false\nblur: 3d\nblur_sigma: 1\n"
                 "stage_outputs: false\n"), "%s", full);
    {
        char t[4096];
        CHECK(parse("prompt: a\nstages: [512, [1024, 768]]\nfreeu: {s2: 0.3}\n", &err) == FS_OK,
              "%s", err.msg);
        fs_job_to_yaml(&job, t, sizeof t);
        CHECK(strstr(t, "\nstages: [512, [1024, 768]]\n") &&
              strstr(t, "\nfreeu: {b1: 1.1, b2: 1.2, s1: 0.6, s2: 0.3}\n"), "%s", t);
        CHECK(parse("prompt: a\nstages: 2k\n", &err) == FS_OK, "%s", err.msg);
        fs_job_to_yaml(&job, t, sizeof t);
        CHECK(strstr(t, "\nstages: [1024, 2048]\n") && strstr(t, "\nfreeu: true\n") &&
              strstr(t, "\noriginal_size: [1024, 1024]\n") && strstr(t, "\nsize: [2048, 2048]\n"),
              "%s", t);
        CHECK(parse("prompt: a\nguidance: 0.1\n", &err) == FS_OK, "%s", err.msg);
    }
    /* truncation: like snprintf */
    CHECK(fs_job_to_yaml(&job, small, sizeof small) == n && strlen(small) == sizeof small - 1 &&
          !memcmp(small, full, sizeof small - 1), "truncated: %s", small);
    CHECK(fs_job_to_yaml(&job, NULL, 0) == n, "length only");
}
/* Relative model/noise paths start at the job file's folder, not the cwd. */
static void test_relative_paths(void) {
    char p[1024], want[1024];
    fs_error err = {0};
    path_in(p, sizeof p, "jobs");
    CHECK(mkdir(p, 0755) == 0, "mkdir %s", p);
    const char *job_text =
        "prompt: a\nmodel: ../models/../m.safetensors\nnoise: ../noise.safetensors\n";
    write_file("jobs/job.yaml", job_text, strlen(job_text));
    path_in(p, sizeof p, "jobs/job.yaml");
    CHECK(fs_job_load(p, &job, &err) == FS_OK, "%s", err.msg);
    path_in(want, sizeof want, "m.safetensors");
    CHECK(!strcmp(job.model, want), "model %s, want %s", job.model, want);
    path_in(want, sizeof want, "noise.safetensors");
    CHECK(!strcmp(job.noise, want), "noise %s, want %s", job.noise, want);
    CHECK(!strcmp(job.source, p), "source %s", job.source);
    /* the same text with the cwd as base does not find them */
    const char *text = "prompt: a\nmodel: m.safetensors\n";
    CHECK(fs_job_parse(text, strlen(text), "<string>", "/", &job, &err) == FS_ERR_IO &&
          strstr(err.msg, "<string>:2:8: model: 'm.safetensors' does not exist"), "%s", err.msg);
    path_in(p, sizeof p, "jobs/job.yaml");
    unlink(p);
    path_in(p, sizeof p, "jobs");
    rmdir(p);
}
/* The key table (jobs/job_keys.c) through the public API: fs_job_defaults
 * is pinned to the values the defaults have always had (so moving them into
 * the table changed no byte); the key list has one row per key that
 * fs_job_to_yaml writes, in its order; and every default the list prints is
 * the default the reader gives (--set key=DEFAULT on the defaults changes
 * nothing), so the README cannot state a default the code does not use. */
static void test_key_table(void) {
    static fs_job want;
    memset(&want, 0, sizeof want);
    strcpy(want.source, "--set");
    want.steps = 50, want.guidance = 7.5f, want.scheduler = FS_SCHED_EULER;
    want.width = want.height = 1024;
    strcpy(want.output, "out.png");
    want.precision = FS_DTYPE_F32;
    want.orig_width = want.orig_height = want.target_width = want.target_height = 1024;
    want.n_stages = 1, want.stage_width[0] = want.stage_height[0] = 1024;
    want.restart_step = 15, want.dilate_tau = 35;
    want.cosine_scale = 2.0f, want.cosine_scale_bg = 1.0f;
    want.freeu_b1 = 1.1f, want.freeu_b2 = 1.2f, want.freeu_s1 = 0.6f, want.freeu_s2 = 0.4f;
    want.blur_sigma = 1.0f, want.scale_fusion = 1, want.dilation = 1;
    fs_job_defaults(&job);
    CHECK(memcmp(&job, &want, sizeof job) == 0, "fs_job_defaults differs from the pinned defaults");

    static char md[32 * 1024], yaml[16 * 1024];
    size_t n = fs_job_keys_markdown(md, sizeof md);
    CHECK(n > 0 && n < sizeof md && strlen(md) == n, "markdown length %zu", n);
    char small[40];
    CHECK(fs_job_keys_markdown(small, sizeof small) == n && strlen(small) == sizeof small - 1,
          "a short buffer gets a cut, terminated text and the whole length");
    CHECK(!strncmp(md, "| key | value | default | |\n|---|---|---|---|\n", 44), "header: %.60s", md);
    strcpy(job.prompt, "p");
    fs_job_to_yaml(&job, yaml, sizeof yaml);
    const char *y = yaml, *row = strstr(md, "\n| `");
    int rows = 0;
    while (row) {
        row += 4;  /* the key's name, after "\n| `" */
        const char *name_end = strchr(row, '`'), *next = strstr(row, "\n| `");
        size_t len = name_end ? (size_t)(name_end - row) : 0;
        CHECK(len && !strncmp(y, row, len) && y[len] == ':', "row %d: '%.*s' vs yaml '%.20s'", rows,
              (int)len, row, y);
        y = strchr(y, '\n');
        y = y ? y + 1 : "";
        /* the default cell, the third: the second '|' after the name; `X` is
         * a value, none is "" */
        const char *cell = row;
        for (int bar = 0; bar < 2 && cell; bar++) cell = strchr(cell + 1, '|');
        if (cell && len < 32) {
            char a[128] = "";
            if (!strncmp(cell, "| `", 3)) {
                const char *end = strchr(cell + 3, '`');
                snprintf(a, sizeof a, "%.*s=%.*s", (int)len, row, end ? (int)(end - cell - 3) : 0,
                         cell + 3);
            } else if (!strncmp(cell, "| none |", 8)) {
                snprintf(a, sizeof a, "%.*s=", (int)len, row);
            }
            if (a[0]) {
                fs_error err = {0};
                fs_job_defaults(&job);
                fs_code rc = fs_job_set(&job, a, &err);
                CHECK(rc == FS_OK && memcmp(&job, &want, sizeof job) == 0,
                      "--set %s: the printed default is not the default (%s)", a, err.msg);
                rows++;
            }
        }
        row = next;
    }
    CHECK(!*y, "fs_job_to_yaml writes keys the list lacks: %.40s", y);
    CHECK(rows >= 20, "only %d defaults checked", rows);
}

int main(void) {
    if (jobs_setup()) return 1;
    test_key_table();
    test_errors();
    test_good();
    test_round_trip();
    test_relative_paths();
    static const char *const extra[] = {"bad.yaml", NULL};
    jobs_cleanup(extra);
    return check_report("test_jobs");
}
