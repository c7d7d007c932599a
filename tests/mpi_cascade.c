/* tests/mpi_cascade.c: FreeScale's self-cascade gives the same latent at
 * every stage, bit for bit, on any number of ranks. Every rank first renders
 * the job alone (comm NULL) and keeps each stage's whole latent; then all
 * ranks render it together and each compares its strip of every stage with
 * the same rows of its alone run; rank 0 also compares the final and the
 * per-stage PNG files byte for byte. Embedded tiny model, non-square stages
 * (strips split unevenly at 3 ranks), few steps:
 *   a. three stages, fast_mode, FreeU, a detail mask, per-stage PNGs;
 *   b. an input image (img2img, stage 0 skipped), latent-space upsampling,
 *      the FFT blur, two stages;
 *   c. two stages with the 2-D (hw) blur, no FreeU, DDIM. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <mpi.h>

#include "coordinator/commands.h"
#include "io/io.h"
#include "check.h"

static int rank, size;

typedef struct stages_capture {
    float *lat[FS_JOB_MAX_STAGES];   /* whole latent (alone) or own rows (together) */
    int row0[FS_JOB_MAX_STAGES], rows[FS_JOB_MAX_STAGES], h[FS_JOB_MAX_STAGES], w[FS_JOB_MAX_STAGES];
    int count;
} stages_capture;

static void on_latent(void *user, int stage, const float *s, int row0, int rows, int h, int w) {
    stages_capture *c = user;
    if (stage >= FS_JOB_MAX_STAGES) return;
    size_t n = (size_t)rows * w * 4;
    c->lat[stage] = malloc(n * sizeof(float) + 1);
    memcpy(c->lat[stage], s, n * sizeof(float));
    c->row0[stage] = row0, c->rows[stage] = rows, c->h[stage] = h, c->w[stage] = w;
    if (stage + 1 > c->count) c->count = stage + 1;
}

static void capture_free(stages_capture *c) {
    for (int i = 0; i < FS_JOB_MAX_STAGES; i++) free(c->lat[i]);
    memset(c, 0, sizeof *c);
}

static int same_file(const char *a, const char *b) {
    size_t la = 0, lb = 0;
    unsigned char *x = check_slurp(a, &la), *y = check_slurp(b, &lb);
    int same = x && y && la == lb && la > 0 && !memcmp(x, y, la);
    free(x), free(y);
    return same;
}

static void set_stages(fs_job *j, int n, const int *wh) {
    j->n_stages = n;
    for (int i = 0; i < n; i++) j->stage_width[i] = wh[2 * i], j->stage_height[i] = wh[2 * i + 1];
    j->width = wh[2 * (n - 1)], j->height = wh[2 * (n - 1) + 1];
    j->orig_width = j->target_width = wh[0];
    j->orig_height = j->target_height = wh[1];
}

static fs_job base_job(void) {
    fs_job j;
    fs_job_defaults(&j);
    snprintf(j.prompt, sizeof j.prompt, "a castle on a hill under a starry sky");
    snprintf(j.negative_prompt, sizeof j.negative_prompt, "blurry");
    j.seed = 9;
    j.steps = 4;
    j.restart_step = 1;
    j.dilate_tau = 3;
    j.freeu = 1;
    return j;
}

static void run_case(fs_comm *comm, const char *dir, const char *name, fs_job job) {
    fs_error err = {0};
    int stopped = 0;
    /* alone: every rank its own files */
    fs_job alone = job;
    snprintf(alone.output, sizeof alone.output, "%s/%s_alone_r%d.png", dir, name, rank);
    stages_capture a = {0}, t = {0};
    fs_render_hooks ha = {.on_latent = on_latent, .user = &a};
    coord_render_opts oa = {.extra = &ha};
    fs_code rc = coord_render(NULL, &alone, &oa, &stopped, &err);
    CHECK(rc == FS_OK, "%s alone: %s", name, err.msg);
    /* together */
    fs_job together = job;
    snprintf(together.output, sizeof together.output, "%s/%s_together.png", dir, name);
    fs_render_hooks ht = {.on_latent = on_latent, .user = &t};
    coord_render_opts ot = {.extra = &ht};
    rc = coord_render(comm, &together, &ot, &stopped, &err);
    CHECK(rc == FS_OK, "%s on %d ranks: %s", name, size, err.msg);
    CHECK(a.count == job.n_stages && t.count == job.n_stages, "%s: %d / %d stages reported", name,
          a.count, t.count);
    int all_same = 1;
    for (int s = 0; s < t.count && s < a.count; s++) {
        size_t row = (size_t)t.w[s] * 4;
        int same = a.lat[s] && t.lat[s] && a.h[s] == t.h[s] &&
                   !memcmp(a.lat[s] + (size_t)t.row0[s] * row, t.lat[s],
                           sizeof(float) * row * t.rows[s]);
        CHECK(same, "%s: stage %d latent rows %d..%d differ from one rank", name, s, t.row0[s],
              t.row0[s] + t.rows[s]);
        all_same &= same;
    }
    int sum = all_same;
    MPI_Allreduce(MPI_IN_PLACE, &sum, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (rank == 0) {
        CHECK(same_file(alone.output, together.output), "%s: final PNG differs", name);
        if (job.stage_outputs)
            for (int s = 0; s + 1 < job.n_stages; s++) {
                char pa[1200], pt[1200];
                snprintf(pa, sizeof pa, "%s/%s_alone_r0_%dx%d.png", dir, name, job.stage_width[s],
                         job.stage_height[s]);
                snprintf(pt, sizeof pt, "%s/%s_together_%dx%d.png", dir, name,
                         job.stage_width[s], job.stage_height[s]);
                CHECK(same_file(pa, pt), "%s: stage %d PNG %s differs from %s", name, s, pt, pa);
            }
        printf("%s: %d stages on %d ranks: every stage's latent identical to one rank: %s\n", name,
               t.count, size, sum ? "yes" : "NO");
    }
    capture_free(&a), capture_free(&t);
}

static void write_png(const char *path, int w, int h, int channels, int pattern) {
    fs_png_writer *pw = NULL;
    fs_error err = {0};
    uint8_t *row = malloc((size_t)w * channels);
    CHECK(fs_png_create(path, w, h, channels, NULL, &pw, &err) == FS_OK, "%s", err.msg);
    for (int y = 0; pw && y < h; y++) {
        for (int x = 0; x < w; x++)
            for (int c = 0; c < channels; c++) {
                int dx = x - w / 2, dy = y - h / 2;
                row[(size_t)x * channels + c] =
                    pattern ? (uint8_t)((dx * dx + dy * dy < w * h / 8) ? 255 : 0)
                            : (uint8_t)((x * 7 + y * 3 + c * 50) & 255);
            }
        fs_png_write_rows(pw, row, 1, &err);
    }
    if (pw) CHECK(fs_png_finish(pw, &err) == FS_OK, "%s", err.msg);
    free(row);
}

int main(int argc, char **argv) {
    fs_comm *comm = NULL;
    fs_error err = {0};
    if (fs_comm_init(&argc, &argv, &comm, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
    fs_threads_init(1);
    rank = fs_comm_rank(comm), size = fs_comm_size(comm);
    char dir[64], mask[128], input[128];
    snprintf(dir, sizeof dir, "mpi_cascade_np%d", size);
    snprintf(mask, sizeof mask, "%s/mask.png", dir);
    snprintf(input, sizeof input, "%s/input.png", dir);
    if (rank == 0) {
        mkdir(dir, 0755);
        write_png(mask, 40, 24, 1, 1);
        write_png(input, 192, 128, 3, 0);
    }
    MPI_Barrier(MPI_COMM_WORLD);

    static const int three[] = {192, 128, 384, 256, 768, 512};
    fs_job a = base_job();
    set_stages(&a, 3, three);
    a.fast_mode = 1;
    a.stage_outputs = 1;
    snprintf(a.mask, sizeof a.mask, "%s", mask);
    a.cosine_scale = 3.0f, a.cosine_scale_bg = 0.5f;
    run_case(comm, dir, "a", a);

    fs_job b = base_job();
    set_stages(&b, 2, three);
    snprintf(b.input_image, sizeof b.input_image, "%s", input);
    b.upsample_latent = 1;
    b.blur = FS_BLUR_FFT;
    run_case(comm, dir, "b", b);

    fs_job c = base_job();
    set_stages(&c, 2, three);
    c.blur = FS_BLUR_HW;
    c.freeu = 0;
    c.scheduler = FS_SCHED_DDIM;
    run_case(comm, dir, "c", c);

    int fails = check_failures;
    MPI_Allreduce(MPI_IN_PLACE, &fails, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    int status = rank == 0 ? check_report("mpi_cascade") : 0;
    fs_comm_free(comm);
    return fails ? 1 : status;
}
