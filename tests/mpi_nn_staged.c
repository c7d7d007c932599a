/* tests/mpi_nn_staged.c: nn/strips.c's two ways across ranks give the same
 * bits. With a backend whose memory is the host's, comm reads and writes
 * the strips in place; with any other (a device), the MPI transport stages
 * only the rows that cross through host copies (comm/halo.c, gather.c). The second way runs here without a GPU: the CPU
 * backend's ops in a table marked "not host memory". For halos of 1 to 3
 * rows (wider than 1-row strips at 4 ranks) the halo rows must be the
 * map's rows (zeros off the map) either way, and the all-gather, the
 * GroupNorm statistics and the exact row sums must match bit for bit. Run
 * by ctest at 1..4 ranks; fails on every rank if any rank failed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <mpi.h>

#include "check.h"
#include "nn/nn.h"

enum { N = 2, W = 5, C = 8, GROUPS = 4 };

/* The map's value at (b, y, x, ch): the same on every rank. */
static float value(int b, int y, int x, int ch) {
    return (float)((7 * y + 3 * x + 5 * ch + 11 * b) % 17) / 8.0f - 1.0f;
}

typedef struct {
    float *halo;      /* [N][top + rows + bot][W][C] after nn_halo */
    float *full;      /* [N][h][W][C] after nn_allgather */
    float stats[2 * N * GROUPS];
    double sums[W];
} results;

static void run(const fs_backend *be, fs_comm *comm, const nn_level *lv, int top, int bot,
                results *out) {
    fs_error err = {0};
    nn_ctx f = {.what = "mpi_nn_staged", .comm = comm, .n = N, .err = &err, .be = be};
    f.arena = fs_arena_create((size_t)1 << 20, &err);
    const size_t row = (size_t)W * C, rows_buf = (size_t)(top + lv->rows + bot);
    float *own = fs_alloc((size_t)N * lv->rows * row * sizeof(float) + 4);
    out->halo = fs_alloc((size_t)N * rows_buf * row * sizeof(float) + 4);
    out->full = fs_alloc((size_t)N * lv->h * row * sizeof(float) + 4);
    for (int b = 0; b < N; b++)
        for (int r = 0; r < lv->rows; r++)
            for (int x = 0; x < W; x++)
                for (int ch = 0; ch < C; ch++)
                    own[(((size_t)b * lv->rows + r) * W + x) * C + ch] =
                        value(b, lv->row0 + r, x, ch);
    for (size_t i = 0; i < (size_t)N * rows_buf * row; i++) out->halo[i] = NAN;
    CHECK(nn_copy_own(&f, lv, own, C, out->halo, top, bot) == FS_OK, "%s", err.msg);
    CHECK(nn_halo(&f, lv, out->halo, C, top, bot) == FS_OK, "%s: %s", be->name, err.msg);
    CHECK(nn_allgather(&f, lv, own, out->full, C) == FS_OK, "%s: %s", be->name, err.msg);
    float *mean, *rstd;
    CHECK(nn_gn_stats(&f, lv, own, C, GROUPS, 1e-5f, &mean, &rstd) == FS_OK, "%s: %s",
          be->name, err.msg);
    memcpy(out->stats, mean, N * GROUPS * sizeof(float));
    memcpy(out->stats + N * GROUPS, rstd, N * GROUPS * sizeof(float));
    /* per-row partials of W values: row y's are its first channel's values */
    double *part = fs_alloc((size_t)lv->rows * W * sizeof(double) + 8);
    for (int r = 0; r < lv->rows; r++)
        for (int x = 0; x < W; x++) part[(size_t)r * W + x] = value(0, lv->row0 + r, x, 0);
    CHECK(nn_sum_rows(&f, lv, part, W, out->sums) == FS_OK, "%s: %s", be->name, err.msg);
    fs_free(part);
    fs_free(own);
    fs_arena_destroy(f.arena);
}

int main(int argc, char **argv) {
    fs_comm *comm = NULL;
    fs_error err = {0};
    if (fs_comm_init(&argc, &argv, &comm, &err) != FS_OK) {
        fprintf(stderr, "mpi_nn_staged: %s\n", err.msg);
        return 1;
    }
    const int rank = fs_comm_rank(comm), size = fs_comm_size(comm);
    fs_threads_init(0);
    fs_backend staged = *fs_backend_cpu();
    staged.name = "cpu, staged";
    staged.host_memory = 0;
    static const int heights[] = {4, 7, 13};
    static const int halos[][2] = {{1, 1}, {2, 1}, {3, 3}, {0, 2}};
    for (size_t hi = 0; hi < sizeof heights / sizeof heights[0]; hi++) {
        const int h = heights[hi];
        if (h < size) continue;
        fs_strip_plan plan;
        CHECK(fs_strip_plan_make(h, size, 1, &plan, &err) == FS_OK, "%s", err.msg);
        nn_level lv = {&plan, h, W, rank, plan.row0[rank], fs_strip_rows(&plan, rank)};
        for (size_t k = 0; k < sizeof halos / sizeof halos[0]; k++) {
            const int top = halos[k][0], bot = halos[k][1];
            results in_place, through_host;
            run(fs_backend_cpu(), comm, &lv, top, bot, &in_place);
            run(&staged, comm, &lv, top, bot, &through_host);
            const size_t row = (size_t)W * C, rows_buf = (size_t)(top + lv.rows + bot);
            /* the halo rows: the map's, or zeros off it */
            int right = 1;
            for (int b = 0; b < N; b++)
                for (size_t r = 0; r < rows_buf; r++) {
                    const int y = lv.row0 - top + (int)r;
                    for (int x = 0; x < W; x++)
                        for (int ch = 0; ch < C; ch++) {
                            float want = y >= 0 && y < h ? value(b, y, x, ch) : 0.0f;
                            right &= in_place.halo[((b * rows_buf + r) * W + x) * C + ch] == want;
                        }
                }
            CHECK(right, "h=%d halo %d/%d: the in-place halo rows are not the map's", h, top,
                  bot);
            CHECK(!memcmp(in_place.halo, through_host.halo, (size_t)N * rows_buf * row * 4),
                  "h=%d halo %d/%d: staged halo differs", h, top, bot);
            CHECK(!memcmp(in_place.full, through_host.full, (size_t)N * h * row * 4),
                  "h=%d: staged all-gather differs", h);
            CHECK(!memcmp(in_place.stats, through_host.stats, sizeof in_place.stats),
                  "h=%d: staged GroupNorm statistics differ", h);
            CHECK(!memcmp(in_place.sums, through_host.sums, sizeof in_place.sums),
                  "h=%d: staged row sums differ", h);
            fs_free(in_place.halo); fs_free(in_place.full);
            fs_free(through_host.halo); fs_free(through_host.full);
        }
    }
    int counts[2] = {check_count, check_failures}, totals[2];
    MPI_Allreduce(counts, totals, 2, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (rank == 0)
        printf("mpi_nn_staged: %d ranks, %d checks, %d failed (all ranks)\n", size, totals[0],
               totals[1]);
    fs_comm_free(comm);
    return totals[1] ? 1 : 0;
}
