/* tests/mpi_unet.c: the UNet forward on row strips equals the whole-map
 * forward BIT FOR BIT, for every block activation and for eps.
 *
 * Tiny random UNets (fs_unet_create_random) with the real block types: every
 * rank first runs the whole map itself with a one-part plan (no comm call is
 * made: the plan decides, not the communicator; checked by the traffic
 * counters), then the strip forward on the job's plan; the traced block
 * activations and eps strips are all-gathered and memcmp'ed with the whole-map
 * ones. Latent sizes give uneven strips at 3 ranks and one row per rank at the
 * coarsest level at 4 ranks. On one rank it also checks that the thread count
 * does not change a bit (1 vs 2 OpenMP threads), and that bad calls are
 * refused with a message. Prints the bytes each rank sent per evaluation by
 * traffic kind. Run by ctest at 1..4 ranks. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <mpi.h>

#include "comm/comm.h"
#include "unet/unet.h"
#include "check.h"

static fs_comm *comm;
static int rank, size;

/* ---------------------------------------------------------------- trace */

enum { MAX_TRACE = 16 };
typedef struct {
    int count;
    char name[MAX_TRACE][32];
    float *data[MAX_TRACE];
    int n[MAX_TRACE], rows[MAX_TRACE], w[MAX_TRACE], c[MAX_TRACE];
} trace_log;

static void on_block(void *user, const char *name, const float *strip, int n, int rows, int w,
                     int c) {
    trace_log *t = user;
    if (t->count >= MAX_TRACE) return;
    int i = t->count++;
    snprintf(t->name[i], sizeof t->name[i], "%s", name);
    size_t count = (size_t)n * rows * w * c;
    t->data[i] = malloc(count * sizeof(float));
    memcpy(t->data[i], strip, count * sizeof(float));
    t->n[i] = n; t->rows[i] = rows; t->w[i] = w; t->c[i] = c;
}

static void trace_free(trace_log *t) {
    for (int i = 0; i < t->count; i++) free(t->data[i]);
    t->count = 0;
}

/* ---------------------------------------------------------------- helpers */

static float *random_floats(size_t n, uint64_t stream, float scale) {
    float *x = malloc(n * sizeof(float));
    fs_rng_fill_normal(x, n, 4242, stream, 0);
    for (size_t i = 0; i < n; i++) x[i] *= scale;
    return x;
}

/* Counts values that differ in bits; reports the first and the largest gap. */
static size_t diff_bits(const float *a, const float *b, size_t count, size_t *first,
                        double *maxd) {
    size_t diffs = 0;
    *maxd = 0;
    for (size_t i = 0; i < count; i++)
        if (memcmp(&a[i], &b[i], sizeof(float))) {
            if (!diffs++) *first = i;
            double d = fabs((double)a[i] - (double)b[i]);
            if (d > *maxd || isnan(d)) *maxd = d;
        }
    return diffs;
}

static uint64_t traffic_total(void) {
    fs_traffic t[FS_TRAFFIC_KINDS];
    fs_comm_traffic(comm, t);
    uint64_t s = 0;
    for (int k = 0; k < FS_TRAFFIC_KINDS; k++) s += t[k].bytes_sent + t[k].bytes_recv + t[k].calls;
    return s;
}

/* ---------------------------------------------------------------- one case */

typedef struct {
    const char *label;
    fs_unet_config cfg;
    int h, w, n, ctx_len;
} unet_case;

static void run_case(const unet_case *uc) {
    fs_error err = {0};
    fs_unet *u = NULL;
    CHECK(fs_unet_create_random(&uc->cfg, 99, &u, &err) == FS_OK, "%s: create: %s", uc->label,
          err.msg);
    if (!u) return;
    const fs_unet_config *c = &uc->cfg;
    const int h = uc->h, w = uc->w, n = uc->n, L = uc->ctx_len;
    const int align = 1 << (c->levels - 1);
    float *x = random_floats((size_t)n * h * w * c->in_channels, 1, 1.0f);
    float *ctx = random_floats((size_t)n * L * c->context_dim, 2, 1.0f);
    float *y = random_floats((size_t)n * c->adm_in_channels, 3, 1.0f);
    float t[2] = {801.0f, 17.5f};
    size_t eps_count = (size_t)n * h * w * c->out_channels;

    /* the whole map, on every rank, with a one-part plan */
    fs_strip_plan whole;
    CHECK(fs_strip_plan_make(h, 1, align, &whole, &err) == FS_OK, "%s", err.msg);
    float *eps_whole = malloc(eps_count * sizeof(float));
    trace_log tw = {0}, ts = {0};
    fs_unet_trace trw = {on_block, &tw}, trs = {on_block, &ts};
    fs_comm_traffic_reset(comm);
    double t0 = fs_now();
    fs_code rc = fs_unet_forward(u, comm, &whole, h, w, n, x, t, ctx, L, y, eps_whole, &trw, &err);
    double t_whole = fs_now() - t0;
    CHECK(rc == FS_OK, "%s: whole-map forward: %s", uc->label, err.msg);
    CHECK(traffic_total() == 0, "%s: the one-part forward talked to other ranks", uc->label);
    int bad = 0, nonzero = 0;
    for (size_t i = 0; i < eps_count; i++) {
        bad += !isfinite(eps_whole[i]);
        nonzero += eps_whole[i] != 0.0f;
    }
    CHECK(bad == 0 && nonzero > (int)(eps_count / 2), "%s: eps has %d non-finite, %d non-zero of %zu",
          uc->label, bad, nonzero, eps_count);
    int expect_blocks = 1 + 2 * c->levels + 1;
    CHECK(tw.count == expect_blocks, "%s: %d traced blocks, expected %d", uc->label, tw.count,
          expect_blocks);

    /* the strips of this job's plan */
    fs_strip_plan plan;
    CHECK(fs_strip_plan_make(h, size, align, &plan, &err) == FS_OK, "%s: %s", uc->label, err.msg);
    int rows = fs_strip_rows(&plan, rank), row0 = plan.row0[rank];
    float *xs = malloc((size_t)n * rows * w * c->in_channels * sizeof(float));
    for (int b = 0; b < n; b++)
        memcpy(xs + (size_t)b * rows * w * c->in_channels,
               x + ((size_t)b * h + row0) * w * c->in_channels,
               (size_t)rows * w * c->in_channels * sizeof(float));
    float *eps_strip = malloc((size_t)n * rows * w * c->out_channels * sizeof(float));
    fs_comm_traffic_reset(comm);
    t0 = fs_now();
    rc = fs_unet_forward(u, comm, &plan, h, w, n, xs, t, ctx, L, y, eps_strip, &trs, &err);
    double t_strip = fs_now() - t0;
    CHECK(rc == FS_OK, "%s: strip forward on rank %d: %s", uc->label, rank, err.msg);
    fs_traffic traffic[FS_TRAFFIC_KINDS];
    fs_comm_traffic(comm, traffic);

    /* every traced activation, then eps: gather the strips, compare bits */
    CHECK(ts.count == tw.count, "%s: %d vs %d traced blocks", uc->label, ts.count, tw.count);
    for (int i = 0; i <= ts.count && i <= tw.count; i++) {
        const int is_eps = i == ts.count || i == tw.count;
        const char *name = is_eps ? "eps" : ts.name[i];
        if (!is_eps)
            CHECK(!strcmp(ts.name[i], tw.name[i]), "%s: block %d is %s vs %s", uc->label, i,
                  ts.name[i], tw.name[i]);
        int bw = is_eps ? w : ts.w[i], bc = is_eps ? c->out_channels : ts.c[i];
        int factor = w / bw;
        fs_strip_plan lp;
        CHECK(fs_strip_plan_coarsen(&plan, factor, &lp, &err) == FS_OK, "%s", err.msg);
        if (!is_eps && ts.rows[i] != fs_strip_rows(&lp, rank)) {
            CHECK(0, "%s: %s strip has %d rows, the level plan says %d", uc->label, name,
                  ts.rows[i], fs_strip_rows(&lp, rank));
            continue;
        }
        size_t count = (size_t)n * lp.h * bw * bc;
        float *full = malloc(count * sizeof(float));
        CHECK(fs_comm_allgather_rows(comm, &lp, is_eps ? eps_strip : ts.data[i], full, n,
                                     (size_t)bw * bc, &err) == FS_OK, "%s", err.msg);
        const float *ref = is_eps ? eps_whole : tw.data[i];
        size_t first = 0;
        double maxd;
        size_t diffs = diff_bits(full, ref, count, &first, &maxd);
        CHECK(diffs == 0,
              "%s on %d ranks: %s: %zu of %zu values differ from the whole map; first at "
              "element %zu (%.9g vs %.9g), max |diff| %.3g",
              uc->label, size, name, diffs, count, first, diffs ? full[first] : 0.0,
              diffs ? ref[first] : 0.0, maxd);
        free(full);
    }

    /* per rank: bytes sent per evaluation by kind */
    uint64_t mine[FS_TRAFFIC_KINDS + 1];
    for (int k = 0; k < FS_TRAFFIC_KINDS; k++) mine[k] = traffic[k].bytes_sent;
    memcpy(&mine[FS_TRAFFIC_KINDS], &t_strip, sizeof(double));
    uint64_t *all = rank == 0 ? malloc(sizeof mine * (size_t)size) : NULL;
    fs_comm_gather_bytes(comm, mine, sizeof mine, all, 0, &err);
    if (rank == 0) {
        printf("%s: latent %dx%d, batch %d, %d rank(s): whole map %.3f s, strips %.3f s "
               "(rank 0)\n", uc->label, h, w, n, size, t_whole, t_strip);
        for (int k = 0; k < FS_TRAFFIC_KINDS; k++) {
            uint64_t any = 0;
            for (int r = 0; r < size; r++) any |= all[(size_t)r * (FS_TRAFFIC_KINDS + 1) + k];
            if (!any) continue;
            printf("  bytes sent per evaluation, %-6s:", fs_traffic_name((fs_traffic_kind)k));
            for (int r = 0; r < size; r++)
                printf(" %9llu", (unsigned long long)all[(size_t)r * (FS_TRAFFIC_KINDS + 1) + k]);
            printf("\n");
        }
        free(all);
    }

    /* one rank: thread count does not change a bit */
    if (size == 1) {
        fs_threads_init(2);
        float *eps2 = malloc(eps_count * sizeof(float));
        rc = fs_unet_forward(u, comm, &whole, h, w, n, x, t, ctx, L, y, eps2, NULL, &err);
        CHECK(rc == FS_OK, "%s: 2-thread forward: %s", uc->label, err.msg);
        size_t first = 0;
        double maxd;
        size_t diffs = diff_bits(eps2, eps_whole, eps_count, &first, &maxd);
        CHECK(rc != FS_OK || diffs == 0, "%s: 2 threads change %zu eps values (max %.3g)",
              uc->label, diffs, maxd);
        fs_threads_init(0);
        free(eps2);
    }
    trace_free(&tw);
    trace_free(&ts);
    free(x); free(ctx); free(y); free(xs); free(eps_whole); free(eps_strip);
    fs_unet_free(u);
}

/* ---------------------------------------------------------------- refusals */

static void test_refusals(const fs_unet_config *cfg) {
    fs_error err = {0};
    fs_unet *u = NULL;
    if (fs_unet_create_random(cfg, 5, &u, &err) != FS_OK) return;
    fs_strip_plan p;
    fs_strip_plan_make(16, 1, 4, &p, &err);
    float buf[4096] = {0}, t[2] = {1, 1};
    err.msg[0] = 0;
    /* 18 rows: not a multiple of 4 (3 levels) */
    fs_strip_plan p18;
    fs_strip_plan_make(18, 1, 4, &p18, &err);
    fs_code rc = fs_unet_forward(u, comm, &p18, 18, 8, 1, buf, t, buf, 1, buf, buf, NULL, &err);
    CHECK(rc == FS_ERR_UNSUPPORTED && strstr(err.msg, "multiple"), "odd latent: %d %s", rc,
          err.msg);
    /* plan for another height */
    rc = fs_unet_forward(u, comm, &p, 8, 8, 1, buf, t, buf, 1, buf, buf, NULL, &err);
    CHECK(rc == FS_ERR_INVALID && strstr(err.msg, "plan"), "plan mismatch: %d %s", rc, err.msg);
    /* a plan with more parts than ranks */
    fs_strip_plan p2;
    fs_strip_plan_make(32, size + 1, 4, &p2, &err);
    rc = fs_unet_forward(u, comm, &p2, 32, 8, 1, buf, t, buf, 1, buf, buf, NULL, &err);
    CHECK(rc == FS_ERR_INVALID && strstr(err.msg, "parts"), "parts mismatch: %d %s", rc, err.msg);
    fs_unet_free(u);
}

/* ---------------------------------------------------------------- main */

static fs_unet_config tiny_config(int levels, int layers, const int *ch, const int *depth,
                                  int depth_mid, const int *heads, int groups) {
    fs_unet_config c;
    memset(&c, 0, sizeof c);
    c.in_channels = 4;
    c.out_channels = 4;
    c.levels = levels;
    for (int l = 0; l < levels; l++) {
        c.channels[l] = ch[l];
        c.depth[l] = depth[l];
        c.heads[l] = heads[l];
    }
    c.layers_per_block = layers;
    c.depth_mid = depth_mid;
    c.context_dim = 48;
    c.adm_in_channels = 40;
    c.time_embed_dim = 4 * ch[0];
    c.groups = groups;
    c.eps_resnet = 1e-5f;
    c.eps_transformer = 1e-6f;
    return c;
}

int main(int argc, char **argv) {
    fs_error err = {0};
    if (fs_comm_init(&argc, &argv, &comm, &err) != FS_OK) {
        fprintf(stderr, "mpi_unet: %s\n", err.msg);
        return 1;
    }
    rank = fs_comm_rank(comm);
    size = fs_comm_size(comm);
    fs_threads_init(0);
    double t0 = fs_now();

    /* SDXL's shape in miniature: 3 levels, no attention at level 0, head dim
     * 32; 16 rows = 4 units of 4 rows, so 4 ranks get one coarse row each. */
    unet_case a = {"sdxl-like", tiny_config(3, 2, (int[]){32, 64, 64}, (int[]){0, 1, 2}, 1,
                                            (int[]){1, 2, 2}, 16),
                   16, 24, 2, 7};
    /* 2 levels, attention at the finest level too, head dim 64, one resnet
     * per level, 10 rows: strips of 4/2/2/2 rows at 4 ranks */
    unet_case b = {"two-level", tiny_config(2, 1, (int[]){32, 64}, (int[]){1, 1}, 2,
                                            (int[]){1, 1}, 8),
                   10, 12, 2, 5};
    run_case(&a);
    run_case(&b);
    test_refusals(&a.cfg);

    int counts[2] = {check_count, check_failures}, totals[2];
    MPI_Allreduce(counts, totals, 2, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (rank == 0)
        printf("mpi_unet: %d ranks, %d checks, %d failed (all ranks), %.2f s\n", size, totals[0],
               totals[1], fs_now() - t0);
    fs_comm_free(comm);
    return totals[1] ? 1 : 0;
}
