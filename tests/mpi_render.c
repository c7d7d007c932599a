/* tests/mpi_render.c: `freescale render` gives the same PNG, byte for byte,
 * for any rank count. Every rank first renders the job alone (comm NULL: the
 * one-process path) to its own file; then all ranks render it together and
 * rank 0 compares the two files' bytes. The job uses the embedded default
 * model, a non-square size whose latent rows split unevenly at 3 and 4
 * ranks, a negative prompt (both CFG branches encoded) and a few steps of
 * each scheduler. Also: the PNG's text chunks carry the job; a failing
 * render (bad noise file) leaves an existing image untouched on every rank
 * count, and every rank returns the error instead of hanging. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <mpi.h>

#include "coordinator/commands.h"
#include "io/io.h"
#include "check.h"

static int rank, size;

static fs_job base_job(const char *dir, const char *name, fs_scheduler_kind sched) {
    fs_job j;
    fs_job_defaults(&j);
    snprintf(j.prompt, sizeof j.prompt, "a lighthouse on a cliff at dusk, oil painting");
    snprintf(j.negative_prompt, sizeof j.negative_prompt, "blurry, ugly");
    j.seed = 77;
    j.steps = 3;
    j.scheduler = sched;
    j.width = 128, j.height = 192;          /* latent 16 x 24: strips 8/8/4/4 at 4 ranks */
    j.orig_width = j.target_width = j.width;
    j.orig_height = j.target_height = j.height;
    snprintf(j.output, sizeof j.output, "%s/%s", dir, name);
    return j;
}

static void one_case(fs_comm *comm, const char *dir, fs_scheduler_kind sched) {
    char name[64];
    fs_error err = {0};
    int stopped = 0;
    /* 1: alone, every rank its own file */
    snprintf(name, sizeof name, "alone_%s_r%d.png", fs_scheduler_name(sched), rank);
    fs_job alone = base_job(dir, name, sched);
    fs_code rc = coord_render(NULL, &alone, NULL, &stopped, &err);
    CHECK(rc == FS_OK && !stopped, "render alone: %s", err.msg);
    /* 2: together; only rank 0's job counts (broadcast) */
    snprintf(name, sizeof name, "together_%s.png", fs_scheduler_name(sched));
    fs_job together = base_job(dir, name, sched);
    if (rank != 0) memset(&together, 0xA5, sizeof together);   /* must come from rank 0 */
    rc = coord_render(comm, &together, NULL, &stopped, &err);
    CHECK(rc == FS_OK && !stopped, "render on %d ranks: %s", size, err.msg);
    if (rank != 0) return;
    size_t la = 0, lb = 0;
    unsigned char *a = check_slurp(alone.output, &la), *b = check_slurp(together.output, &lb);
    CHECK(a && b && la == lb && la > 100 && !memcmp(a, b, la),
          "%s: %zu bytes alone vs %zu on %d ranks: not the same PNG", fs_scheduler_name(sched),
          la, lb, size);
    printf("%s: %d ranks: PNG %zu bytes, identical to one rank: %s\n", fs_scheduler_name(sched),
           size, lb, a && b && la == lb && !memcmp(a, b, la) ? "yes" : "NO");
    free(a), free(b);
    /* the image is not flat (the pipeline did something) */
    uint8_t *px = NULL;
    int w = 0, h = 0;
    rc = fs_png_read(together.output, 3, 0, &px, &w, &h, &err);
    CHECK(rc == FS_OK && w == 128 && h == 192, "read back: %s", err.msg);
    if (px) {
        int lo = 255, hi = 0;
        for (size_t i = 0; i < (size_t)w * h * 3; i++) lo = px[i] < lo ? px[i] : lo, hi = px[i] > hi ? px[i] : hi;
        CHECK(hi - lo > 20, "image nearly flat: %d..%d", lo, hi);
        free(px);
    }
    char **kv = NULL;
    rc = fs_png_read_text(together.output, &kv, &err);
    int seen_prompt = 0, seen_params = 0;
    for (size_t i = 0; kv && kv[i]; i += 2) {
        if (!strcmp(kv[i], "prompt")) seen_prompt = !strcmp(kv[i + 1], together.prompt);
        if (!strcmp(kv[i], "parameters")) seen_params = strstr(kv[i + 1], "Seed: 77") != NULL;
    }
    CHECK(rc == FS_OK && seen_prompt && seen_params, "PNG text chunks: prompt %d parameters %d",
          seen_prompt, seen_params);
    fs_png_text_free(kv);
}

/* A render that fails after the PNG was opened leaves the old file as it was. */
static void failing_case(fs_comm *comm, const char *dir) {
    fs_job j = base_job(dir, "keep.png", FS_SCHED_EULER);
    char noise[900];
    snprintf(noise, sizeof noise, "%s/bad_noise.safetensors", dir);
    if (rank == 0) {
        FILE *f = fopen(j.output, "wb");
        fputs("a good image", f);
        fclose(f);
        /* a noise file with the wrong shape */
        float z[4 * 8 * 8] = {0};
        fs_st_entry e = {"noise", FS_DTYPE_F32, 4, {1, 4, 8, 8}, z};
        fs_error err = {0};
        CHECK(fs_safetensors_write(noise, &e, 1, NULL, &err) == FS_OK, "%s", err.msg);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    snprintf(j.noise, sizeof j.noise, "%s", noise);
    fs_error err = {0};
    int stopped = 0;
    fs_code rc = coord_render(comm, &j, NULL, &stopped, &err);
    CHECK(rc != FS_OK, "a render with a misshapen noise file succeeded");
    if (rank == 0) {
        CHECK(strstr(err.msg, "bad_noise.safetensors") != NULL, "error does not name the file: %s",
              err.msg);
        size_t n = 0;
        unsigned char *b = check_slurp(j.output, &n);
        CHECK(b && n == 12 && !memcmp(b, "a good image", 12), "the existing file was touched");
        free(b);
        printf("failing render: '%s'; old file kept\n", err.msg);
    }
}

int main(int argc, char **argv) {
    fs_comm *comm = NULL;
    fs_error err = {0};
    if (fs_comm_init(&argc, &argv, &comm, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
    fs_threads_init(1);
    rank = fs_comm_rank(comm), size = fs_comm_size(comm);
    char dir[64];
    snprintf(dir, sizeof dir, "mpi_render_np%d", size);
    if (rank == 0) mkdir(dir, 0755);
    MPI_Barrier(MPI_COMM_WORLD);
    one_case(comm, dir, FS_SCHED_EULER);
    one_case(comm, dir, FS_SCHED_DDIM);
    failing_case(comm, dir);
    int fails = check_failures;
    MPI_Allreduce(MPI_IN_PLACE, &fails, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    int status = rank == 0 ? check_report("mpi_render") : 0;
    fs_comm_free(comm);
    return fails ? 1 : status;
}
