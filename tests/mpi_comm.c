/* tests/mpi_comm.c: the comm module at 1..4 ranks (run by ctest under mpirun).
 *
 * Checks, against data every rank can generate on its own (fs_rng):
 * - strip plans: coverage, alignment, even unit counts with the extra units
 *   first, minimum sizes, the too-few-rows error naming how many parts fit,
 *   coarsening, owner lookup (random h / parts / align, rank-local);
 * - halo exchange against the known global map, including halos wider than
 *   the neighbouring strips (1-row strips, halo 8), halos wider than the map,
 *   batch 2, one-sided halos, and the exact byte counters it must report;
 * - all-gather and gather of strips, bit for bit;
 * - exact row sums: bit-identical to the sum of all rows on one rank, within
 *   1e-15, exact under cancellation, a NaN on one rank failing every rank;
 * - `freescale check` (fs_worker_check): strips bit-identical to the whole
 *   map, its GroupNorm statistics by the exact all-reduce, not a gather;
 * - broadcast, and argument errors that return before any traffic.
 * The exit status is non-zero on every rank when any rank failed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <mpi.h>

#include "comm/comm.h"
#include "worker/worker.h"
#include "check.h"

static fs_comm *comm;
static int rank, size;
static const uint64_t seed = 20261125;

/* Value e of row y of batch item b of the global test map `stream`. */
static float global_value(uint64_t stream, int h, size_t re, int b, int y, size_t e)
{
    return fs_rng_normal(seed, stream, ((uint64_t)b * (uint64_t)h + (uint64_t)y) * re + e);
}

/* ---------------------------------------------------------------- plans */

static void check_plan_case(int h, int parts, int align)
{
    fs_strip_plan p;
    fs_error err = {0};
    fs_code code = fs_strip_plan_make(h, parts, align, &p, &err);
    int units = (h + align - 1) / align;
    if (units < parts) {
        char want[64];
        snprintf(want, sizeof want, "at most %d parts", units);
        CHECK(code == FS_ERR_RANGE, "h %d parts %d align %d: code %d", h, parts, align, code);
        CHECK(strstr(err.msg, want) != NULL, "error message '%s' lacks '%s'", err.msg, want);
        return;
    }
    CHECK(code == FS_OK, "h %d parts %d align %d: %s", h, parts, align, err.msg);
    if (code)
        return;
    CHECK(p.h == h && p.parts == parts && p.align == align, "plan header");
    CHECK(p.row0[0] == 0 && p.row0[parts] == h, "coverage: %d..%d of %d", p.row0[0],
          p.row0[parts], h);
    int base = units / parts, extra = units % parts, bad = 0;
    for (int r = 0; r < parts; r++) {
        int rows = fs_strip_rows(&p, r);
        int want_units = base + (r < extra);
        int got_units = (rows + align - 1) / align;
        if (rows < 1 || got_units != want_units)
            bad++;
        if (r > 0 && p.row0[r] % align != 0)
            bad++;
        if (r < parts - 1 && rows != want_units * align)  /* only the last may be short */
            bad++;
        if (rows < align && r < parts - 1)
            bad++;
    }
    CHECK(bad == 0, "h %d parts %d align %d: %d bad strips", h, parts, align, bad);

    /* Owner lookup agrees with the boundaries. */
    int wrong = 0;
    for (int r = 0; r < parts; r++)
        for (int y = p.row0[r]; y < p.row0[r + 1]; y++)
            wrong += fs_strip_plan_owner(&p, y) != r;
    CHECK(wrong == 0 && fs_strip_plan_owner(&p, -1) == -1 && fs_strip_plan_owner(&p, h) == -1,
          "owner lookup: %d wrong", wrong);

    /* Coarsening by each factor: allowed exactly when every interior
     * boundary divides; rows are row0 / f and ceil(h / f). */
    for (int f = 1; f <= 8; f *= 2) {
        int divides = 1;
        for (int r = 1; r < parts; r++)
            divides &= p.row0[r] % f == 0;
        fs_strip_plan cp;
        code = fs_strip_plan_coarsen(&p, f, &cp, &err);
        CHECK((code == FS_OK) == divides, "coarsen h %d parts %d align %d by %d: code %d", h,
              parts, align, f, code);
        if (code)
            continue;
        int cbad = cp.h != (h + f - 1) / f || cp.parts != parts || cp.row0[parts] != cp.h;
        for (int r = 0; r < parts; r++)
            cbad += cp.row0[r] != p.row0[r] / f || fs_strip_rows(&cp, r) < 1;
        CHECK(cbad == 0, "coarsen h %d parts %d align %d by %d", h, parts, align, f);
    }
}

static void test_plans(void)
{
    const int aligns[] = {1, 2, 3, 4, 8};
    for (int i = 0; i < 3000; i++) {
        int h = (int)fs_rng_randint(seed, 1, (uint64_t)i * 3, 1, 600);
        int parts = (int)fs_rng_randint(seed, 1, (uint64_t)i * 3 + 1, 1, 80);
        int align = aligns[fs_rng_randint(seed, 1, (uint64_t)i * 3 + 2, 0, 4)];
        check_plan_case(h, parts, align);
    }
    /* Edge cases by hand. */
    check_plan_case(1, 1, 1);
    check_plan_case(1, 1, 4);
    check_plan_case(4, 4, 1);
    check_plan_case(4, 5, 1);
    check_plan_case(17, 5, 4);   /* 5 units, the last one row */
    check_plan_case(16, 5, 4);   /* too few: 4 parts would fit */
    fs_strip_plan p;
    fs_error err = {0};
    CHECK(fs_strip_plan_make(0, 1, 1, &p, &err) == FS_ERR_INVALID, "h 0 accepted");
    CHECK(fs_strip_plan_make(8, 0, 1, &p, &err) == FS_ERR_INVALID, "0 parts accepted");
    CHECK(fs_strip_plan_make(8, 1, 0, &p, &err) == FS_ERR_INVALID, "align 0 accepted");
    CHECK(fs_strip_plan_make(1 << 20, FS_MAX_RANKS + 1, 1, &p, &err) == FS_ERR_INVALID,
          "too many parts accepted");
    /* A known cut: 10 units of 4 (last of 2 rows) over 3 parts: 4, 3, 3 units. */
    CHECK(fs_strip_plan_make(38, 3, 4, &p, &err) == FS_OK && p.row0[1] == 16 && p.row0[2] == 28 &&
              p.row0[3] == 38, "38 rows / 3 parts / align 4: %d %d %d", p.row0[1], p.row0[2],
          p.row0[3]);
}

/* ---------------------------------------------------------------- halos */

static void test_halo(int h, int align, int n, size_t re, int top, int bot)
{
    fs_strip_plan p;
    fs_error err = {0};
    if (fs_strip_plan_make(h, size, align, &p, &err) != FS_OK)
        return;  /* too few rows for this rank count: not this case's subject */
    const uint64_t stream = 100 + (uint64_t)h * 7 + (uint64_t)top;
    const int r0 = p.row0[rank], own = fs_strip_rows(&p, rank), item = top + own + bot;
    const size_t total = (size_t)n * (size_t)item * re;
    float *buf = malloc(total * sizeof(float)), *want = malloc(total * sizeof(float));
    for (int b = 0; b < n; b++)
        for (int i = 0; i < item; i++) {
            int y = r0 - top + i;
            int mine = i >= top && i < top + own;
            for (size_t e = 0; e < re; e++) {
                size_t at = ((size_t)b * item + i) * re + e;
                float v = y >= 0 && y < h ? global_value(stream, h, re, b, y, e) : 0.0f;
                want[at] = v;
                buf[at] = mine ? v : 12345.0f;  /* halo rows start as garbage */
            }
        }
    fs_comm_traffic_reset(comm);
    fs_code code = fs_comm_halo(comm, &p, buf, n, re, top, bot, &err);
    CHECK(code == FS_OK, "halo h %d: %s", h, err.msg);
    size_t bad = 0;
    for (size_t i = 0; i < total; i++)
        bad += memcmp(&buf[i], &want[i], sizeof(float)) != 0;
    CHECK(bad == 0, "halo h %d align %d n %d re %zu top %d bot %d: %zu wrong values on rank %d",
          h, align, n, re, top, bot, bad, rank);

    /* Bytes this rank must send: rows of its strip inside other ranks' halos. */
    uint64_t rows_out = 0, rows_in = 0;
    for (int q = 0; q < size; q++) {
        if (q == rank)
            continue;
        for (int y = p.row0[q] - top; y < p.row0[q]; y++)
            rows_out += fs_strip_plan_owner(&p, y) == rank;
        for (int y = p.row0[q + 1]; y < p.row0[q + 1] + bot; y++)
            rows_out += fs_strip_plan_owner(&p, y) == rank;
    }
    for (int i = 0; i < item; i++) {
        int y = r0 - top + i;
        rows_in += (i < top || i >= top + own) && y >= 0 && y < h;
    }
    uint64_t row_bytes = (uint64_t)re * sizeof(float) * (uint64_t)n;
    fs_traffic t[FS_TRAFFIC_KINDS];
    fs_comm_traffic(comm, t);
    CHECK(t[FS_TRAFFIC_HALO].bytes_sent == rows_out * row_bytes,
          "halo bytes sent %llu, expected %llu", (unsigned long long)t[FS_TRAFFIC_HALO].bytes_sent,
          (unsigned long long)(rows_out * row_bytes));
    CHECK(t[FS_TRAFFIC_HALO].bytes_recv == rows_in * row_bytes,
          "halo bytes received %llu, expected %llu",
          (unsigned long long)t[FS_TRAFFIC_HALO].bytes_recv,
          (unsigned long long)(rows_in * row_bytes));
    CHECK(t[FS_TRAFFIC_HALO].calls == 1 && t[FS_TRAFFIC_GATHER].calls == 0, "call counters");
    uint64_t mine[2] = {t[FS_TRAFFIC_HALO].bytes_sent, t[FS_TRAFFIC_HALO].bytes_recv}, all[2];
    MPI_Allreduce(mine, all, 2, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD);
    CHECK(all[0] == all[1], "halo: %llu bytes sent in all, %llu received",
          (unsigned long long)all[0], (unsigned long long)all[1]);
    free(buf);
    free(want);
}

/* ---------------------------------------------------------------- gathers */

static void test_gathers(int h, int align, int n, size_t re)
{
    fs_strip_plan p;
    fs_error err = {0};
    if (fs_strip_plan_make(h, size, align, &p, &err) != FS_OK)
        return;
    const uint64_t stream = 500 + (uint64_t)h;
    const int r0 = p.row0[rank], own = fs_strip_rows(&p, rank);
    size_t full_n = (size_t)n * h * re, own_n = (size_t)n * own * re;
    float *global = malloc(full_n * sizeof(float)), *full = malloc(full_n * sizeof(float));
    float *mine = malloc(own_n * sizeof(float));
    for (int b = 0; b < n; b++)
        for (int y = 0; y < h; y++)
            for (size_t e = 0; e < re; e++)
                global[((size_t)b * h + y) * re + e] = global_value(stream, h, re, b, y, e);
    for (int b = 0; b < n; b++)
        memcpy(mine + (size_t)b * own * re, global + ((size_t)b * h + r0) * re,
               (size_t)own * re * sizeof(float));

    fs_comm_traffic_reset(comm);
    for (size_t i = 0; i < full_n; i++)
        full[i] = -7.0f;
    CHECK(fs_comm_allgather_rows(comm, &p, mine, full, n, re, &err) == FS_OK, "%s", err.msg);
    CHECK(memcmp(full, global, full_n * sizeof(float)) == 0, "allgather h %d n %d re %zu", h, n,
          re);
    fs_traffic t[FS_TRAFFIC_KINDS];
    fs_comm_traffic(comm, t);
    uint64_t own_bytes = (uint64_t)own_n * sizeof(float);
    CHECK(t[FS_TRAFFIC_GATHER].bytes_sent == own_bytes * (uint64_t)(size - 1) &&
              t[FS_TRAFFIC_GATHER].bytes_recv == (uint64_t)(full_n - own_n) * sizeof(float) &&
              t[FS_TRAFFIC_GATHER].calls == 1,
          "allgather counters: sent %llu recv %llu", (unsigned long long)t[FS_TRAFFIC_GATHER].bytes_sent,
          (unsigned long long)t[FS_TRAFFIC_GATHER].bytes_recv);

    int root = size - 1;
    for (size_t i = 0; i < full_n; i++)
        full[i] = -7.0f;
    CHECK(fs_comm_gather_rows(comm, &p, mine, rank == root ? full : NULL, n, re, root, &err) ==
              FS_OK, "%s", err.msg);
    if (rank == root)
        CHECK(memcmp(full, global, full_n * sizeof(float)) == 0, "gather h %d n %d", h, n);
    free(global);
    free(full);
    free(mine);
}

/* ---------------------------------------------------------------- reductions */

/* h rows of m partials spanning many magnitudes, so a different order of
 * additions would round differently (malloc'ed). */
static double *spread_rows(int h, size_t m)
{
    double *rows = malloc((size_t)h * m * sizeof(double));
    for (int y = 0; y < h; y++)
        for (size_t j = 0; j < m; j++)
            rows[(size_t)y * m + j] = (double)fs_rng_normal(seed, 900, (uint64_t)y * m + j) *
                                      pow(10.0, (double)((y * 5 + (int)j) % 13) - 6.0) +
                                      (double)fs_rng_normal(seed, 901, (uint64_t)y * m + j) * 1e-9;
    return rows;
}

/* Exact sums: the result is a function of the values alone (every rank
 * computes the expected bits from all rows, in another order), within
 * 1e-15 of the long double sum of their magnitudes, exact under
 * cancellation, and a bad value on one rank fails every rank. */
static double exact_of(const double *v, size_t count, size_t stride, int reverse)
{
    int64_t acc[FS_EXACT_LIMBS] = {0};
    for (size_t i = 0; i < count; i++)
        CHECK(fs_exact_add(acc, v[(reverse ? count - 1 - i : i) * stride]) == 0, "value %g",
              v[i * stride]);
    double out = 0;
    CHECK(fs_exact_value(acc, &out) == 0, "exact value out of range");
    return out;
}

static void test_sum_rows_exact(int h, int align, size_t m)
{
    fs_strip_plan p;
    fs_error err = {0};
    if (fs_strip_plan_make(h, size, align, &p, &err) != FS_OK)
        return;
    double *rows = spread_rows(h, m);
    double *sum = malloc(m * sizeof(double));
    fs_comm_traffic_reset(comm);
    CHECK(fs_comm_sum_rows_exact(comm, &p, rows + (size_t)p.row0[rank] * m, m, sum, &err) ==
              FS_OK, "%s", err.msg);
    int same = 1;
    double worst = 0;
    for (size_t j = 0; j < m; j++) {
        double want = exact_of(rows + j, (size_t)h, m, j % 2);
        same &= memcmp(&want, &sum[j], sizeof want) == 0;
        long double ld = 0, mag = 0;
        for (int y = 0; y < h; y++) {
            ld += rows[(size_t)y * m + j];
            mag += fabsl((long double)rows[(size_t)y * m + j]);
        }
        double e = (double)(fabsl(ld - sum[j]) / (mag > 0 ? mag : 1));
        if (e > worst) worst = e;
    }
    CHECK(same, "exact row sums h %d m %zu differ from the all-rows exact sum", h, m);
    CHECK(worst < 1e-15, "exact row sum off the long double sum by %g", worst);
    fs_traffic t[FS_TRAFFIC_KINDS];
    fs_comm_traffic(comm, t);
    if (size > 1)
        CHECK(t[FS_TRAFFIC_REDUCE].bytes_sent >= m * FS_EXACT_LIMBS * 8 &&
                  t[FS_TRAFFIC_REDUCE].bytes_sent < m * FS_EXACT_LIMBS * 8 + 64,
              "exact sum sent %llu bytes for %zu values",
              (unsigned long long)t[FS_TRAFFIC_REDUCE].bytes_sent, m);
    free(rows);
    free(sum);
}

static void test_exact_edges(void)
{
    /* cancellation: a double sum in this order gives 0, the exact one 1 */
    const double c[3] = {1e20, 1.0, -1e20};
    CHECK(exact_of(c, 3, 1, 0) == 1.0 && exact_of(c, 3, 1, 1) == 1.0, "1e20 + 1 - 1e20 = %g",
          exact_of(c, 3, 1, 0));
    /* the doubles nearest -0.1, -0.2 and 0.3 add up to exactly -2^-55 */
    const double neg[3] = {-0.1, -0.2, 0.3};
    CHECK(exact_of(neg, 3, 1, 0) == -0x1p-55, "-0.1 - 0.2 + 0.3 = %a", exact_of(neg, 3, 1, 0));
    int64_t acc[FS_EXACT_LIMBS] = {0};
    CHECK(fs_exact_add(acc, 1e34) == -1 && fs_exact_add(acc, NAN) == -1 &&
              fs_exact_add(acc, INFINITY) == -1, "out-of-range values must be refused");
    double tiny = 0x1p-100, v = 0;
    memset(acc, 0, sizeof acc);
    CHECK(fs_exact_add(acc, tiny) == 0 && fs_exact_value(acc, &v) == 0 && v == tiny,
          "2^-100 kept exactly (%g)", v);
    /* a NaN in the last rank's rows: every rank fails, none waits */
    fs_strip_plan p;
    fs_error err = {0};
    if (fs_strip_plan_make(2 * size, size, 1, &p, &err) != FS_OK)
        return;
    double own[2 * 3] = {1, 2, 3, 4, 5, 6}, sum[3];
    if (rank == size - 1)
        own[4] = NAN;
    fs_code rc = fs_comm_sum_rows_exact(comm, &p, own, 3, sum, &err);
    CHECK(rc == FS_ERR_RANGE, "a NaN on rank %d must fail rank %d too (%d: %s)", size - 1, rank,
          rc, err.msg);
}

/* ---------------------------------------------------------------- check */

/* The check command's block: strips equal the whole map bit for bit, and
 * its statistics travel as the render's do (one exact all-reduce of
 * n * 32 * 2 sums of FS_EXACT_LIMBS int64, plus the agreement on failure),
 * with no gather in the strip pass. */
static void test_worker_check(int s, int channels, int dilation)
{
    fs_check_params p = fs_check_default_params();
    p.size = s;
    p.channels = channels;
    p.dilation = dilation;
    fs_check_report rep;
    fs_error err = {0};
    CHECK(fs_worker_check(comm, &p, &rep, &err) == FS_OK, "check: %s", err.msg);
    CHECK(rep.identical && rep.mismatches == 0, "check %d x %d c%d: %zu values differ", s, s,
          channels, rep.mismatches);
    const uint64_t sums = (uint64_t)p.batch * 32 * 2 * FS_EXACT_LIMBS * sizeof(int64_t);
    const fs_traffic *r = &rep.traffic[FS_TRAFFIC_REDUCE];
    if (size > 1)
        CHECK(r->bytes_sent == sums + sizeof(int) && r->bytes_recv == sums + sizeof(int) &&
                  r->calls == 2, "check reduce traffic: %llu bytes in %llu calls, want %llu in 2",
              (unsigned long long)r->bytes_sent, (unsigned long long)r->calls,
              (unsigned long long)(sums + sizeof(int)));
    else
        CHECK(r->calls == 0, "check on one rank: %llu reductions", (unsigned long long)r->calls);
    CHECK(rep.traffic[FS_TRAFFIC_GATHER].calls == 0 && rep.traffic[FS_TRAFFIC_HALO].calls == 1,
          "check strip pass: %llu gathers, %llu halo exchanges",
          (unsigned long long)rep.traffic[FS_TRAFFIC_GATHER].calls,
          (unsigned long long)rep.traffic[FS_TRAFFIC_HALO].calls);
}

/* ---------------------------------------------------------------- misc */

static void test_bcast_and_errors(void)
{
    fs_error err = {0};
    char msg[100];
    int root = size - 1;
    for (int i = 0; i < 100; i++)
        msg[i] = rank == root ? (char)(i * 3) : 0;
    fs_comm_traffic_reset(comm);
    CHECK(fs_comm_bcast(comm, msg, sizeof msg, root, &err) == FS_OK, "%s", err.msg);
    int bad = 0;
    for (int i = 0; i < 100; i++)
        bad += msg[i] != (char)(i * 3);
    CHECK(bad == 0, "bcast content");
    fs_traffic t[FS_TRAFFIC_KINDS];
    fs_comm_traffic(comm, t);
    CHECK(rank == root ? t[FS_TRAFFIC_BCAST].bytes_sent == 100u * (uint64_t)(size - 1)
                       : t[FS_TRAFFIC_BCAST].bytes_recv == 100u,
          "bcast counters");
    CHECK(fs_comm_bcast(comm, msg, sizeof msg, size, &err) == FS_ERR_INVALID, "bad root accepted");
    CHECK(strcmp(fs_traffic_name(FS_TRAFFIC_HALO), "halo") == 0, "traffic name");

    /* Errors found before any traffic: every rank returns the same code. */
    fs_strip_plan wrong;
    CHECK(fs_strip_plan_make(64, size + 1, 1, &wrong, &err) == FS_OK, "%s", err.msg);
    float dummy[64] = {0};
    err.msg[0] = 0;
    CHECK(fs_comm_halo(comm, &wrong, dummy, 1, 1, 1, 1, &err) == FS_ERR_INVALID &&
              strstr(err.msg, "ranks") != NULL, "plan/rank mismatch: '%s'", err.msg);
    fs_strip_plan p;
    CHECK(fs_strip_plan_make(64, size, 1, &p, &err) == FS_OK, "%s", err.msg);
    CHECK(fs_comm_halo(comm, &p, dummy, 1, 1, -1, 1, &err) == FS_ERR_INVALID, "negative halo");
    CHECK(fs_comm_halo(comm, &p, NULL, 1, 1, 1, 1, &err) == FS_ERR_INVALID, "NULL buffer");
    CHECK(fs_comm_allgather_rows(comm, &p, dummy, NULL, 1, 1, &err) == FS_ERR_INVALID,
          "NULL full buffer");
    CHECK(fs_comm_barrier(comm, &err) == FS_OK, "%s", err.msg);
}

int main(int argc, char **argv)
{
    fs_error err = {0};
    if (fs_comm_init(&argc, &argv, &comm, &err) != FS_OK) {
        fprintf(stderr, "mpi_comm: %s\n", err.msg);
        return 1;
    }
    rank = fs_comm_rank(comm);
    size = fs_comm_size(comm);

    test_plans();

    test_halo(13, 1, 1, 7, 1, 1);
    test_halo(size, 1, 2, 3, 8, 8);             /* 1-row strips, halo 8 */
    test_halo(size, 1, 1, 4, size + 3, size + 2);  /* halo wider than the map */
    test_halo(2 * size + 1, 2, 2, 5, 3, 0);     /* top only, as a stride-2 conv */
    test_halo(2 * size + 1, 1, 2, 5, 0, 2);     /* bottom only */
    test_halo(37, 4, 2, 5, 8, 7);
    test_halo(40, 4, 1, 33, 4, 4);
    test_halo(9, 1, 1, 2, 0, 0);

    test_gathers(13, 1, 1, 7);
    test_gathers(size, 1, 2, 3);
    test_gathers(37, 4, 2, 5);
    test_gathers(41, 2, 3, 17);

    test_sum_rows_exact(29, 1, 6);
    test_sum_rows_exact(64, 4, 96);
    test_sum_rows_exact(size, 1, 1);
    test_exact_edges();

    test_worker_check(12, 64, 1);
    test_worker_check(2 * size + 1, 32, 3);  /* halos wider than the thinnest strips */

    test_bcast_and_errors();

    int counts[2] = {check_count, check_failures}, totals[2];
    MPI_Allreduce(counts, totals, 2, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (rank == 0)
        printf("mpi_comm: %d ranks, %d checks, %d failed (all ranks)\n", size, totals[0],
               totals[1]);
    fs_comm_free(comm);
    return totals[1] ? 1 : 0;
}
