/* freescale render: rank 0 reads and validates the job, broadcasts it, every
 * rank renders its strip, rank 0 writes the PNG row by row from the gathered
 * strips through a temporary file (a failed or stopped run never replaces a
 * good image). Progress: a bar on a terminal, one line per step otherwise. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "coordinator/commands.h"
#include "io/io.h"

static volatile sig_atomic_t g_interrupted = 0;
static void on_sigint(int sig) { (void)sig; g_interrupted = 1; }

typedef struct render_ctx {
    coord_progress progress;
    double t_start, t_steps;   /* render start; first UNet step's start */
    int last_len;
    fs_png_writer *png;         /* the image being written (rank 0) */
    const fs_job *job;
    const char **kv;            /* PNG text chunks */
    const fs_render_hooks *extra;
} render_ctx;

static void fmt_eta(double s, char *out, size_t cap) {
    int t = (int)(s + 0.5);
    if (t >= 3600) snprintf(out, cap, "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60);
    else snprintf(out, cap, "%d:%02d", t / 60, t % 60);
}

static int on_progress(void *user, const char *phase, int stage, int n_stages, int step,
                       int steps) {
    render_ctx *c = user;
    char tag[32] = "";
    if (n_stages > 1) snprintf(tag, sizeof tag, "stage %d/%d ", stage + 1, n_stages);
    double now = fs_now();
    if (strcmp(phase, "unet")) c->t_steps = now;   /* the rate counts this stage's steps */
    if (c->progress != COORD_PROGRESS_NONE) {
        if (!strcmp(phase, "unet")) {
            double el = now - c->t_steps, rate = step / (el > 0 ? el : 1e-9);
            char eta[32];
            fmt_eta((steps - step) / rate, eta, sizeof eta);
            if (c->progress == COORD_PROGRESS_BAR) {
                char bar[31];
                int fill = (int)(30.0 * step / steps);
                for (int i = 0; i < 30; i++) bar[i] = i < fill ? '#' : '.';
                bar[30] = 0;
                fprintf(stderr, "\r  %s[%s] step %d/%d  %.2f it/s  ETA %s ", tag, bar, step,
                        steps, rate, eta);
                if (step == steps) fputc('\n', stderr);
            } else {
                fprintf(stderr, "%sstep %d/%d %.3f it/s eta %s\n", tag, step, steps, rate, eta);
            }
        } else {
            fprintf(stderr, "%s%s%s done (%.1f s)\n",
                    c->progress == COORD_PROGRESS_BAR ? "  " : "", tag, phase, now - c->t_start);
        }
        fflush(stderr);
    }
    return g_interrupted;
}

/* Earlier stages' images go next to the output: NAME_<W>x<H>.png. */
static void stage_path(const char *output, int width, int height, char *out, size_t cap) {
    const char *dot = strrchr(output, '.'), *slash = strrchr(output, '/');
    int stem = dot && (!slash || dot > slash) ? (int)(dot - output) : (int)strlen(output);
    snprintf(out, cap, "%.*s_%dx%d.png", stem, output, width, height);
}

static fs_code begin_image(void *user, int stage, int width, int height, fs_error *err) {
    render_ctx *c = user;
    char path[FS_JOB_PATH_MAX + 32];
    const char *target = c->job->output;
    if (stage < c->job->n_stages - 1) {
        stage_path(c->job->output, width, height, path, sizeof path);
        target = path;
    }
    return fs_png_create(target, width, height, 3, c->kv, &c->png, err);
}

static fs_code on_rows(void *user, const uint8_t *rows, int y0, int count, int width,
                       fs_error *err) {
    (void)y0, (void)width;
    render_ctx *c = user;
    return c->png ? fs_png_write_rows(c->png, rows, count, err) : FS_OK;
}

static fs_code end_image(void *user, int stage, int ok, fs_error *err) {
    (void)stage;
    render_ctx *c = user;
    fs_code rc = FS_OK;
    if (c->png) {
        if (ok) rc = fs_png_finish(c->png, err);
        else fs_png_abort(c->png);
    }
    c->png = NULL;
    return rc;
}

static void pass_latent(void *user, int stage, const float *s, int row0, int rows, int h,
                        int w) {
    render_ctx *c = user;
    if (c->extra && c->extra->on_latent)
        c->extra->on_latent(c->extra->user, stage, s, row0, rows, h, w);
}
static void pass_image(void *user, int stage, const float *s, int row0, int rows, int h, int w) {
    render_ctx *c = user;
    if (c->extra && c->extra->on_image)
        c->extra->on_image(c->extra->user, stage, s, row0, rows, h, w);
}

void coord_png_text(const fs_job *job, const char *model_desc, char *params, size_t cap,
                    char *yaml, size_t yaml_cap, const char *kv[16]) {
    /* "parameters" in the layout A1111-style tools read. */
    snprintf(params, cap,
             "%s\nNegative prompt: %s\nSteps: %d, Sampler: %s, CFG scale: %g, Seed: %llu, "
             "Size: %dx%d, Model: %s, Version: freescale %s",
             job->prompt, job->negative_prompt, job->steps,
             job->scheduler == FS_SCHED_DDIM ? "DDIM" : "Euler", job->guidance,
             (unsigned long long)job->seed, job->width, job->height,
             job->model[0] ? job->model : "embedded default", FS_VERSION);
    /* The job as it reproduces the picture: where it was written is not part of it
     * (and would make the same render give different bytes in another place). */
    static fs_job copy;
    copy = *job;
    copy.output[0] = 0;
    fs_job_to_yaml(&copy, yaml, yaml_cap);
    int i = 0;
    kv[i++] = "parameters", kv[i++] = params;
    kv[i++] = "prompt", kv[i++] = job->prompt;
    kv[i++] = "negative_prompt", kv[i++] = job->negative_prompt;
    kv[i++] = "model", kv[i++] = model_desc;
    kv[i++] = "freescale_job", kv[i++] = yaml;
    kv[i++] = "Software", kv[i++] = "freescale " FS_VERSION;
    kv[i] = NULL;
}

static void print_stats(fs_comm *comm, const fs_render_stats *st) {
    enum { LINE = 1024 };
    int rank = fs_comm_rank(comm), size = fs_comm_size(comm);
    char line[LINE];
    uint64_t sent = 0;
    for (int k = 0; k < FS_TRAFFIC_KINDS; k++) sent += st->traffic[k].bytes_sent;
    snprintf(line, LINE,
             "  rank %d: text %.2f s, stages %.2f s; peak RSS %.1f MB (counted buffers %.1f MB); "
             "sent %.1f kB",
             rank, st->seconds_text, st->seconds_stages, st->peak_rss / 1e6,
             st->peak_alloc / 1e6, sent / 1e3);
    for (int s = 0; s < FS_JOB_MAX_STAGES && st->stage_seconds[s] > 0; s++) {
        size_t at = strlen(line);
        if (at + 80 < LINE)
            snprintf(line + at, LINE - at, "\n    stage %d: %.2f s, peak RSS %.1f MB, buffers %.1f MB", s,
                     st->stage_seconds[s], st->stage_peak_rss[s] / 1e6,
                     st->stage_peak_alloc[s] / 1e6);
    }
    char *all = rank == 0 ? calloc((size_t)size, LINE) : NULL;
    fs_error e = {0};
    if (comm) fs_comm_gather_bytes(comm, line, LINE, all, 0, &e);
    else if (all) memcpy(all, line, LINE);
    if (rank == 0 && all) {
        fprintf(stderr, "stats (%d rank(s), %d thread(s) each):\n", size, fs_threads_count());
        for (int r = 0; r < size; r++) fprintf(stderr, "%s\n", all + (size_t)r * LINE);
    }
    free(all);
}

fs_code coord_render(fs_comm *comm, fs_job *job, const coord_render_opts *opts, int *stopped,
                     fs_error *err) {
    int rank = fs_comm_rank(comm);
    *stopped = 0;
    fs_code rc = comm ? fs_comm_bcast(comm, job, sizeof *job, 0, err) : FS_OK;
    if (rc) return rc;
    fs_models *models = NULL;
    rc = fs_models_open(job->model, job->precision, &models, err);
    const char *kv[16] = {NULL};
    render_ctx ctx = {.progress = opts ? opts->progress : COORD_PROGRESS_NONE,
                      .t_start = fs_now(), .extra = opts ? opts->extra : NULL, .job = job,
                      .kv = kv};
    if (!rc && rank == 0) {
        static char params[FS_JOB_TEXT_MAX * 2 + 2048], yaml[FS_JOB_TEXT_MAX * 2 + 8192];
        coord_png_text(job, fs_models_describe(models), params, sizeof params, yaml, sizeof yaml,
                       kv);
        if (ctx.progress != COORD_PROGRESS_NONE)
            fprintf(stderr, "render: %dx%d, %d %s steps, guidance %g, seed %llu, %d rank(s)\n"
                    "model: %s\n", job->width, job->height, job->steps,
                    fs_scheduler_name(job->scheduler), job->guidance,
                    (unsigned long long)job->seed, fs_comm_size(comm),
                    fs_models_describe(models));
    }
    /* Every rank learns whether the set-up worked before any collective work. */
    int failed = rc != FS_OK;
    fs_error e2 = {0};
    if (fs_comm_allreduce_max_int(comm, &failed, &e2) && !rc) rc = fs_fail(err, e2.code, "%s", e2.msg);
    if (failed && !rc) rc = fs_fail(err, FS_ERR_COMM, "render not started: another rank failed");
    fs_render_hooks hooks = {.on_progress = on_progress, .begin_image = begin_image,
                             .on_rows = on_rows, .end_image = end_image,
                             .on_latent = pass_latent, .on_image = pass_image, .user = &ctx};
    fs_render_stats st = {0};
    if (!rc) rc = fs_worker_render(comm, job, models, &hooks, &st, err);
    *stopped = st.stopped;
    if (ctx.png) fs_png_abort(ctx.png);   /* only after a failure inside an image */
    if (opts && opts->stats && (!rc || st.stopped)) print_stats(comm, &st);
    fs_models_free(models);
    return rc;
}

static void usage(void) {
    fprintf(stderr, "usage: freescale render JOB.yaml [--set key=value]... [--stats] "
                    "[--progress bar|lines|none]\n");
}

int cmd_render(int argc, char **argv) {
    const char *path = NULL;
    coord_render_opts o = {.progress = isatty(2) ? COORD_PROGRESS_BAR : COORD_PROGRESS_LINES};
    const char *sets[64];
    int nsets = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--set") && i + 1 < argc && nsets < 64) sets[nsets++] = argv[++i];
        else if (!strcmp(argv[i], "--stats")) o.stats = 1;
        else if (!strcmp(argv[i], "--progress") && i + 1 < argc) {
            const char *v = argv[++i];
            if (!strcmp(v, "bar")) o.progress = COORD_PROGRESS_BAR;
            else if (!strcmp(v, "lines")) o.progress = COORD_PROGRESS_LINES;
            else if (!strcmp(v, "none")) o.progress = COORD_PROGRESS_NONE;
            else { usage(); return 2; }
        } else if (argv[i][0] == '-' || path) {
            fprintf(stderr, "freescale render: unexpected argument '%s'\n", argv[i]);
            usage();
            return 2;
        } else path = argv[i];
    }
    if (!path) { usage(); return 2; }
    fs_error err = {0};
    fs_comm *comm = NULL;
    if (fs_comm_init(NULL, NULL, &comm, &err)) {
        fprintf(stderr, "freescale: %s\n", err.msg);
        return 1;
    }
    fs_threads_init(0);
    int rank = fs_comm_rank(comm);
    fs_job *job = calloc(1, sizeof *job);
    fs_code rc = job ? FS_OK : fs_fail(&err, FS_ERR_NOMEM, "out of memory");
    /* Rank 0 alone reads the job: the others get it by broadcast. */
    if (!rc && rank == 0) {
        rc = fs_job_load(path, job, &err);
        for (int i = 0; !rc && i < nsets; i++) rc = fs_job_set(job, sets[i], &err);
        if (!rc && nsets) rc = fs_job_validate(job, &err);
    }
    int failed = rc != FS_OK;
    fs_comm_allreduce_max_int(comm, &failed, NULL);
    int stopped = 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, NULL);
    if (!failed) rc = coord_render(comm, job, &o, &stopped, &err);
    int status = 0;
    if (rc) {
        if (rank == 0 || rc != FS_ERR_COMM) fprintf(stderr, "freescale: %s\n", err.msg);
        status = 1;
    } else if (failed) {
        status = 1;
    } else if (stopped) {
        if (rank == 0)
            fprintf(stderr, "freescale: interrupted: no image written (%s left as it was)\n",
                    job->output);
        status = 130;
    } else if (rank == 0) {
        printf("wrote %s (%dx%d)\n", job->output, job->width, job->height);
    }
    free(job);
    fs_comm_free(comm);
    return status;
}
