/* tests/mpi_render_state.c: the render as a state (worker.h's fs_render_*),
 * at 1..4 ranks, on a masked non-square 2-stage cascade with a noise file:
 * 1. the state advances as documented: one step at a time within a stage,
 *    stage 0 from step 0, stage 1 from restart_step, then done;
 * 2. the user's files are read by rank 0 alone: every other rank's job names
 *    a mask and a noise file that do not exist, and the image is still the
 *    one a single process makes;
 * 3. a render stopped at a state (mid stage 0, between the stages, mid stage
 *    1), ended, and resumed from a copy of that state gives the same image
 *    bytes as the uninterrupted render;
 * 4. a state that does not fit the job is refused with a message. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <mpi.h>

#include "io/io.h"
#include "worker/worker.h"
#include "check.h"

static int rank, size;

/* rank 0 collects the final image's 8-bit rows */
typedef struct image_sink {
    uint8_t *px;
    int w, h;
} image_sink;

static fs_code sink_begin(void *user, int stage, int width, int height, fs_error *err) {
    (void)stage, (void)err;
    image_sink *s = user;
    free(s->px);
    s->px = calloc((size_t)width * height * 3, 1);
    s->w = width, s->h = height;
    return FS_OK;
}
static fs_code sink_rows(void *user, const uint8_t *rows, int y0, int count, int width,
                         fs_error *err) {
    (void)err;
    image_sink *s = user;
    memcpy(s->px + (size_t)y0 * width * 3, rows, (size_t)count * width * 3);
    return FS_OK;
}
static fs_code sink_end(void *user, int stage, int ok, fs_error *err) {
    (void)user, (void)stage, (void)ok, (void)err;
    return FS_OK;
}

static char mask_path[128], noise_path[128];

static fs_job make_job(int real_files) {
    fs_job j;
    fs_job_defaults(&j);
    snprintf(j.prompt, sizeof j.prompt, "a harbour at night");
    snprintf(j.negative_prompt, sizeof j.negative_prompt, "fog");
    j.seed = 31;
    j.steps = 4;
    j.n_stages = 2;
    j.stage_width[0] = 64, j.stage_height[0] = 128;    /* latent 16 rows: 4 ranks cut it */
    j.stage_width[1] = 128, j.stage_height[1] = 256;
    j.width = 128, j.height = 256;
    j.orig_width = j.target_width = 64, j.orig_height = j.target_height = 128;
    j.restart_step = 1, j.dilate_tau = 3;
    j.freeu = 1;
    j.cosine_scale = 3.0f;
    snprintf(j.mask, sizeof j.mask, "%s", real_files ? mask_path : "/nonexistent/mask.png");
    snprintf(j.noise, sizeof j.noise, "%s",
             real_files ? noise_path : "/nonexistent/noise.safetensors");
    return j;
}

static void write_inputs(void) {
    fs_error err = {0};
    uint8_t m[40 * 20];
    for (int i = 0; i < 40 * 20; i++) m[i] = (i % 40 > 12 && i / 40 > 5) ? 255 : 0;
    fs_png_writer *pw = NULL;
    CHECK(fs_png_create(mask_path, 40, 20, 1, NULL, &pw, &err) == FS_OK &&
          fs_png_write_rows(pw, m, 20, &err) == FS_OK && fs_png_finish(pw, &err) == FS_OK,
          "mask: %s", err.msg);
    static float z[4 * 16 * 8];
    for (int i = 0; i < 4 * 16 * 8; i++) z[i] = (float)((i * 7919) % 1000) / 500.0f - 1.0f;
    fs_st_entry e = {"noise", FS_DTYPE_F32, 4, {1, 4, 16, 8}, z};
    CHECK(fs_safetensors_write(noise_path, &e, 1, NULL, &err) == FS_OK, "noise: %s", err.msg);
}

typedef struct stop_at {
    const char *what;
    int stage, step;
} stop_at;

/* Renders the job; with `stop`, ends at that state and resumes from a copy. */
static void render(fs_comm *comm, const fs_job *job, const stop_at *stop, int check_order,
                   image_sink *sink) {
    fs_error err = {0};
    fs_models *m = NULL;
    CHECK(fs_models_open("", FS_DTYPE_F32, &m, &err) == FS_OK, "%s", err.msg);
    fs_render_hooks hk = {.begin_image = sink_begin, .on_rows = sink_rows,
                          .end_image = sink_end, .user = sink};
    fs_render *r = NULL;
    fs_code rc = fs_render_begin(comm, job, m, &hk, &r, &err);
    CHECK(rc == FS_OK, "begin: %s", err.msg);
    int last_stage = 0, last_step = 0, stopped = 0;
    while (!rc && !fs_render_finished(r)) {
        fs_render_state s = fs_render_get_state(r);
        if (stop && s.stage == stop->stage && s.step == stop->step) {
            /* a checkpoint: copy the state, end the render, resume from it */
            size_t n = (size_t)s.rows * s.lat_w * s.channels;
            float *x = malloc(sizeof(float) * (n + 1)), *z = s.z ? malloc(sizeof(float) * (n + 1)) : NULL;
            memcpy(x, s.x, sizeof(float) * n);
            if (z) memcpy(z, s.z, sizeof(float) * n);
            fs_render_state copy = s;
            copy.x = x, copy.z = z;
            fs_render_end(r, NULL);
            fs_models_free(m);
            CHECK(fs_models_open("", FS_DTYPE_F32, &m, &err) == FS_OK, "%s", err.msg);
            rc = fs_render_resume(comm, job, m, &hk, &copy, &r, &err);
            CHECK(rc == FS_OK, "resume at %s: %s", stop->what, err.msg);
            free(x), free(z);
            stop = NULL, stopped = 1;
            continue;
        }
        if (check_order) {
            int first = s.stage ? job->restart_step : 0;
            CHECK(s.stage >= last_stage && s.first_step == first && s.step >= first &&
                  s.step <= job->steps && s.x && s.rows > 0,
                  "state: stage %d step %d (first %d) after stage %d step %d", s.stage, s.step,
                  s.first_step, last_stage, last_step);
            CHECK(s.stage != last_stage || s.step == last_step || s.step == last_step + 1,
                  "state: step %d after %d in stage %d", s.step, last_step, s.stage);
            CHECK((s.stage > 0 && s.step < job->steps) == (s.z != NULL),
                  "state: z at stage %d step %d", s.stage, s.step);
            last_stage = s.stage, last_step = s.step;
        }
        rc = fs_render_advance(r);
        CHECK(rc == FS_OK, "advance: %s", err.msg);
    }
    if (check_order)
        CHECK(last_stage == 1 && last_step == job->steps && fs_render_get_state(r).done,
              "the render ended at stage %d step %d", last_stage, last_step);
    CHECK(!stop || stopped, "the render never reached the state to stop at");
    fs_render_end(r, NULL);
    fs_models_free(m);
}

static void refused(fs_comm *comm, const fs_job *job) {
    fs_error err = {0};
    fs_models *m = NULL;
    CHECK(fs_models_open("", FS_DTYPE_F32, &m, &err) == FS_OK, "%s", err.msg);
    float x[4 * 32 * 32] = {0};
    fs_render_state s = {.stage = 1, .n_stages = 2, .step = 2, .first_step = 1, .steps = 4,
                         .lat_h = 32, .lat_w = 32, .channels = 4, .row0 = 0, .rows = 32,
                         .x = x, .z = x, .noise_seed = job->seed,
                         .noise_stream = 0x101};
    fs_render *r = NULL;
    fs_code rc = fs_render_resume(comm, job, m, NULL, &s, &r, &err);
    CHECK(rc == FS_ERR_INVALID && strstr(err.msg, "resume") && strstr(err.msg, "32x32x4"),
          "a state of another size: %d '%s'", rc, err.msg);
    fs_render_end(r, NULL);
    if (rank == 0) printf("refused: %s\n", err.msg);
    s.lat_h = 32, s.lat_w = 16, s.rows = 0, s.noise_seed = job->seed + 1;
    rc = fs_render_resume(comm, job, m, NULL, &s, &r, &err);
    CHECK(rc == FS_ERR_INVALID && strstr(err.msg, "noise keys"),
          "a state of another seed: %d '%s'", rc, err.msg);
    fs_render_end(r, NULL);
    fs_models_free(m);
    if (rank == 0) printf("refused: %s\n", err.msg);
}

int main(int argc, char **argv) {
    fs_comm *comm = NULL;
    fs_error err = {0};
    if (fs_comm_init(&argc, &argv, &comm, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
    fs_threads_init(1);
    rank = fs_comm_rank(comm), size = fs_comm_size(comm);
    char dir[64];
    snprintf(dir, sizeof dir, "mpi_render_state_np%d", size);
    snprintf(mask_path, sizeof mask_path, "%s/mask.png", dir);
    snprintf(noise_path, sizeof noise_path, "%s/noise.safetensors", dir);
    if (rank == 0) {
        mkdir(dir, 0755);
        write_inputs();
    }
    MPI_Barrier(MPI_COMM_WORLD);

    /* the reference: one process */
    image_sink ref = {0};
    if (rank == 0) {
        fs_job alone = make_job(1);
        render(NULL, &alone, NULL, 1, &ref);
        CHECK(ref.px && ref.w == 128 && ref.h == 256, "reference image %dx%d", ref.w, ref.h);
    }
    /* together; only rank 0's job names files that exist */
    fs_job job = make_job(rank == 0);
    stop_at stops[] = {{"stage 0 step 2", 0, 2}, {"between the stages", 0, 4},
                       {"stage 1 step 2", 1, 2}, {"stage 1 at its restart", 1, 1}};
    for (int k = -1; k < (int)(sizeof stops / sizeof stops[0]); k++) {
        image_sink got = {0};
        render(comm, &job, k < 0 ? NULL : &stops[k], k < 0, &got);
        if (rank == 0) {
            int same = ref.px && got.px && got.w == ref.w && got.h == ref.h &&
                       !memcmp(ref.px, got.px, (size_t)ref.w * ref.h * 3);
            CHECK(same, "%d ranks, %s: the image differs from one process's", size,
                  k < 0 ? "uninterrupted" : stops[k].what);
            printf("%d ranks, %s: identical to one process: %s\n", size,
                   k < 0 ? "uninterrupted (files read on rank 0 only)" : stops[k].what,
                   same ? "yes" : "NO");
        }
        free(got.px);
    }
    refused(comm, &job);
    free(ref.px);
    int fails = check_failures;
    MPI_Allreduce(MPI_IN_PLACE, &fails, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    int status = rank == 0 ? check_report("mpi_render_state") : 0;
    fs_comm_free(comm);
    return fails ? 1 : status;
}
