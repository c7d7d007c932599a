/* tests/mpi_freescale.c: the UNet with FreeScale's changes (restrained
 * dilation, scale fusion with every blur kind and both global paths, FreeU)
 * on row strips equals the whole-map forward BIT FOR BIT, for every traced
 * block activation and for eps.
 *
 * Tiny random UNets (fs_unet_create_random) with SDXL's block types: every
 * rank first runs the whole map itself with a one-part plan (no comm call:
 * checked by the traffic counters), then the strip forward on the job's plan;
 * the traced activations and eps strips are all-gathered and memcmp'ed with
 * the whole-map ones. Each configuration must also change eps against the
 * plain forward (the hooks act). Latents are twice the base on both axes
 * (s = 2), so windows have jitter radius >= 1 at both attention levels of
 * the SDXL-shaped case, windows and blur halos cross strip boundaries, and
 * 3 ranks give uneven strips. On one rank the thread count must not change a
 * bit either. Prints the bytes each rank sent per evaluation by kind. Run by
 * ctest at 1..4 ranks. */
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
    int rows[MAX_TRACE], w[MAX_TRACE], c[MAX_TRACE];
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
    t->rows[i] = rows; t->w[i] = w; t->c[i] = c;
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

static const char *blur_name(fs_blur_kind k) {
    return k == FS_BLUR_3D ? "3d" : k == FS_BLUR_WC ? "wc" : k == FS_BLUR_HW ? "hw" : "fft";
}

/* ---------------------------------------------------------------- one model */

typedef struct {
    const char *label;
    fs_unet_config cfg;
    int h, w, base_h, base_w, n, ctx_len;
} fs_case;

typedef struct {
    fs_unet *u;
    const fs_case *fc;
    float *x, *ctx, *y, *xs, *eps_plain;
    float t[2];
    fs_strip_plan whole, plan;
} model;

/* One FreeScale setting: whole map vs strips, bits; differs from plain. */
static void run_setting(model *m, const fs_unet_freescale *fsx, const char *what) {
    const fs_case *fc = m->fc;
    const fs_unet_config *c = &fc->cfg;
    const int h = fc->h, w = fc->w, n = fc->n, L = fc->ctx_len;
    const size_t eps_count = (size_t)n * h * w * c->out_channels;
    fs_error err = {0};
    char label[160];
    snprintf(label, sizeof label, "%s [%s]", fc->label, what);

    float *eps_whole = malloc(eps_count * sizeof(float));
    trace_log tw = {0}, ts = {0};
    fs_unet_trace trw = {on_block, &tw}, trs = {on_block, &ts};
    fs_comm_traffic_reset(comm);
    double t0 = fs_now();
    fs_code rc = fs_unet_forward_fs(m->u, comm, &m->whole, h, w, n, m->x, m->t, m->ctx, L, m->y,
                                    eps_whole, &trw, fsx, &err);
    double t_whole = fs_now() - t0;
    CHECK(rc == FS_OK, "%s: whole-map forward: %s", label, err.msg);
    CHECK(traffic_total() == 0, "%s: the one-part forward talked to other ranks", label);
    int bad = 0;
    for (size_t i = 0; i < eps_count; i++) bad += !isfinite(eps_whole[i]);
    CHECK(bad == 0, "%s: eps has %d non-finite values", label, bad);
    size_t first = 0;
    double maxd = 0;
    size_t changed = diff_bits(eps_whole, m->eps_plain, eps_count, &first, &maxd);
    CHECK(changed > eps_count / 2 && maxd > 1e-4,
          "%s: only %zu of %zu eps values differ from the plain forward (max %.3g): the hooks "
          "do not act", label, changed, eps_count, maxd);

    int rows = fs_strip_rows(&m->plan, rank);
    float *eps_strip = malloc((size_t)n * rows * w * c->out_channels * sizeof(float));
    fs_comm_traffic_reset(comm);
    t0 = fs_now();
    rc = fs_unet_forward_fs(m->u, comm, &m->plan, h, w, n, m->xs, m->t, m->ctx, L, m->y,
                            eps_strip, &trs, fsx, &err);
    double t_strip = fs_now() - t0;
    CHECK(rc == FS_OK, "%s: strip forward on rank %d: %s", label, rank, err.msg);
    fs_traffic traffic[FS_TRAFFIC_KINDS];
    fs_comm_traffic(comm, traffic);

    CHECK(ts.count == tw.count && tw.count == 2 * c->levels + 2, "%s: %d vs %d traced blocks",
          label, ts.count, tw.count);
    for (int i = 0; i <= ts.count && i <= tw.count; i++) {
        const int is_eps = i == ts.count || i == tw.count;
        const char *name = is_eps ? "eps" : ts.name[i];
        int bw = is_eps ? w : ts.w[i], bc = is_eps ? c->out_channels : ts.c[i];
        fs_strip_plan lp;
        CHECK(fs_strip_plan_coarsen(&m->plan, w / bw, &lp, &err) == FS_OK, "%s", err.msg);
        if (!is_eps && ts.rows[i] != fs_strip_rows(&lp, rank)) {
            CHECK(0, "%s: %s strip has %d rows, the level plan says %d", label, name, ts.rows[i],
                  fs_strip_rows(&lp, rank));
            continue;
        }
        size_t count = (size_t)n * lp.h * bw * bc;
        float *full = malloc(count * sizeof(float));
        CHECK(fs_comm_allgather_rows(comm, &lp, is_eps ? eps_strip : ts.data[i], full, n,
                                     (size_t)bw * bc, &err) == FS_OK, "%s", err.msg);
        const float *ref = is_eps ? eps_whole : tw.data[i];
        size_t diffs = diff_bits(full, ref, count, &first, &maxd);
        CHECK(diffs == 0,
              "%s on %d ranks: %s: %zu of %zu values differ from the whole map; first at "
              "element %zu (%.9g vs %.9g), max |diff| %.3g",
              label, size, name, diffs, count, first, diffs ? full[first] : 0.0,
              diffs ? ref[first] : 0.0, maxd);
        free(full);
    }

    uint64_t mine[FS_TRAFFIC_KINDS];
    for (int k = 0; k < FS_TRAFFIC_KINDS; k++) mine[k] = traffic[k].bytes_sent;
    uint64_t *all = rank == 0 ? malloc(sizeof mine * (size_t)size) : NULL;
    fs_comm_gather_bytes(comm, mine, sizeof mine, all, 0, &err);
    if (rank == 0) {
        printf("%s: latent %dx%d (base %dx%d), batch %d, %d rank(s): whole %.3f s, strips "
               "%.3f s (rank 0)\n", label, h, w, fc->base_h, fc->base_w, n, size, t_whole,
               t_strip);
        for (int k = 0; k < FS_TRAFFIC_KINDS; k++) {
            uint64_t any = 0;
            for (int r = 0; r < size; r++) any |= all[(size_t)r * FS_TRAFFIC_KINDS + k];
            if (!any) continue;
            printf("  bytes sent per evaluation, %-6s:", fs_traffic_name((fs_traffic_kind)k));
            for (int r = 0; r < size; r++)
                printf(" %9llu", (unsigned long long)all[(size_t)r * FS_TRAFFIC_KINDS + k]);
            printf("\n");
        }
        free(all);
    }

    if (size == 1 && fsx->fast_mode == 0 && fsx->blur == FS_BLUR_3D) {
        /* the thread count does not change a bit */
        fs_threads_init(2);
        float *eps2 = malloc(eps_count * sizeof(float));
        rc = fs_unet_forward_fs(m->u, comm, &m->whole, h, w, n, m->x, m->t, m->ctx, L, m->y,
                                eps2, NULL, fsx, &err);
        CHECK(rc == FS_OK, "%s: 2-thread forward: %s", label, err.msg);
        size_t diffs = diff_bits(eps2, eps_whole, eps_count, &first, &maxd);
        CHECK(rc != FS_OK || diffs == 0, "%s: 2 threads change %zu eps values (max %.3g)", label,
              diffs, maxd);
        fs_threads_init(0);
        free(eps2);
    }
    trace_free(&tw);
    trace_free(&ts);
    free(eps_whole);
    free(eps_strip);
}

static fs_unet_freescale base_fsx(const fs_case *fc) {
    fs_unet_freescale s;
    memset(&s, 0, sizeof s);
    s.dilation = 2;
    s.fusion = 1;
    s.base_h = fc->base_h;
    s.base_w = fc->base_w;
    s.blur = FS_BLUR_3D;
    s.blur_sigma = 1.0f;
    s.jitter_seed = 123;
    s.jitter_stream = 6;
    s.step = 17;
    s.freeu = (fs_unet_freeu){1, 1.1f, 1.2f, 0.6f, 0.4f};
    return s;
}

static void run_case(const fs_case *fc, int all_settings) {
    fs_error err = {0};
    model m;
    memset(&m, 0, sizeof m);
    m.fc = fc;
    CHECK(fs_unet_create_random(&fc->cfg, 77, &m.u, &err) == FS_OK, "%s: create: %s", fc->label,
          err.msg);
    if (!m.u) return;
    const fs_unet_config *c = &fc->cfg;
    const int h = fc->h, w = fc->w, n = fc->n, L = fc->ctx_len;
    const int align = 1 << (c->levels - 1);
    m.x = random_floats((size_t)n * h * w * c->in_channels, 1, 1.0f);
    m.ctx = random_floats((size_t)n * L * c->context_dim, 2, 1.0f);
    m.y = random_floats((size_t)n * c->adm_in_channels, 3, 1.0f);
    m.t[0] = 601.0f;
    m.t[1] = 601.0f;
    CHECK(fs_strip_plan_make(h, 1, align, &m.whole, &err) == FS_OK, "%s", err.msg);
    CHECK(fs_strip_plan_make(h, size, align, &m.plan, &err) == FS_OK, "%s", err.msg);
    int rows = fs_strip_rows(&m.plan, rank), row0 = m.plan.row0[rank];
    m.xs = malloc((size_t)n * rows * w * c->in_channels * sizeof(float));
    for (int b = 0; b < n; b++)
        memcpy(m.xs + (size_t)b * rows * w * c->in_channels,
               m.x + ((size_t)b * h + row0) * w * c->in_channels,
               (size_t)rows * w * c->in_channels * sizeof(float));
    m.eps_plain = malloc((size_t)n * h * w * c->out_channels * sizeof(float));
    CHECK(fs_unet_forward(m.u, comm, &m.whole, h, w, n, m.x, m.t, m.ctx, L, m.y, m.eps_plain,
                          NULL, &err) == FS_OK, "%s: plain forward: %s", fc->label, err.msg);

    fs_unet_freescale s = base_fsx(fc);
    char what[96];
    if (all_settings) {
        /* every blur kind with the full global path; fast_mode with the
         * halo blur and the gathered one */
        for (int fast = 0; fast <= 1; fast++)
            for (int k = FS_BLUR_3D; k <= FS_BLUR_FFT; k++) {
                if (fast && k != FS_BLUR_3D && k != FS_BLUR_FFT) continue;
                s.fast_mode = fast;
                s.blur = (fs_blur_kind)k;
                snprintf(what, sizeof what, "d2 fusion %s%s freeu", blur_name(s.blur),
                         fast ? " fast" : "");
                run_setting(&m, &s, what);
            }
    } else {
        run_setting(&m, &s, "d2 fusion 3d freeu");
        s.dilation = 3; /* wider halos, the downsampler's 3 rows on top and 2 below */
        s.blur = FS_BLUR_HW;
        s.fast_mode = 1;
        run_setting(&m, &s, "d3 fusion hw fast freeu");
        /* each of the other hooks alone */
        s = base_fsx(fc);
        s.fusion = 0;
        s.freeu.on = 0;
        run_setting(&m, &s, "dilation 2 only");
        s = base_fsx(fc);
        s.dilation = 1;
        s.fusion = 0;
        run_setting(&m, &s, "freeu only");
    }
    free(m.x); free(m.ctx); free(m.y); free(m.xs); free(m.eps_plain);
    fs_unet_free(m.u);
}

/* ---------------------------------------------------------------- refusals */

static void test_refusals(const fs_case *fc) {
    fs_error err = {0};
    fs_unet *u = NULL;
    if (fs_unet_create_random(&fc->cfg, 5, &u, &err) != FS_OK) return;
    fs_strip_plan p;
    fs_strip_plan_make(fc->h, 1, 4, &p, &err);
    size_t big = (size_t)2 * fc->h * fc->w * 4 + 4096;
    float *buf = calloc(big, sizeof(float)), t[2] = {1, 1};
    fs_unet_freescale s = base_fsx(fc);
    s.base_h = fc->h * 2; /* a base larger than the stage */
    fs_code rc = fs_unet_forward_fs(u, comm, &p, fc->h, fc->w, 1, buf, t, buf, 1, buf, buf, NULL,
                                    &s, &err);
    CHECK(rc == FS_ERR_INVALID && strstr(err.msg, "smaller than the base"), "big base: %d %s",
          rc, err.msg);
    s = base_fsx(fc);
    s.dilation = 9;
    rc = fs_unet_forward_fs(u, comm, &p, fc->h, fc->w, 1, buf, t, buf, 1, buf, buf, NULL, &s,
                            &err);
    CHECK(rc == FS_ERR_INVALID && strstr(err.msg, "dilation 9"), "dilation 9: %d %s", rc,
          err.msg);
    s = base_fsx(fc);
    s.blur_sigma = 0;
    rc = fs_unet_forward_fs(u, comm, &p, fc->h, fc->w, 1, buf, t, buf, 1, buf, buf, NULL, &s,
                            &err);
    CHECK(rc == FS_ERR_INVALID && strstr(err.msg, "sigma"), "sigma 0: %d %s", rc, err.msg);
    free(buf);
    fs_unet_free(u);
}

/* ---------------------------------------------------------------- main */

static fs_unet_config tiny_config(const int *ch, const int *depth, int depth_mid,
                                  const int *heads, int groups) {
    fs_unet_config c;
    memset(&c, 0, sizeof c);
    c.in_channels = 4;
    c.out_channels = 4;
    c.levels = 3;
    for (int l = 0; l < 3; l++) {
        c.channels[l] = ch[l];
        c.depth[l] = depth[l];
        c.heads[l] = heads[l];
    }
    c.layers_per_block = 2;
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
        fprintf(stderr, "mpi_freescale: %s\n", err.msg);
        return 1;
    }
    rank = fs_comm_rank(comm);
    size = fs_comm_size(comm);
    fs_threads_init(0);
    double t0 = fs_now();

    /* SDXL's shape in miniature (attention at levels 1, 2 and mid), latent
     * 64x96 over a 32x48 base: level 1 (32x48) windows 16x24, stride 8x12,
     * r 2x3, 3x3 windows; level 2 (16x24) windows 8x12, stride 4x6, r 1x1;
     * 4 coarse rows per rank at 4 ranks (d = 2 halos reach past them). */
    fs_case a = {"sdxl-like", tiny_config((int[]){32, 64, 64}, (int[]){0, 1, 2}, 1,
                                          (int[]){1, 2, 2}, 8),
                 64, 96, 32, 48, 2, 7};
    /* The brief's small case: latent 32x48 over 16x24, attention at levels 0
     * and 1 (r 2x3 and 1x1; level 0 has 3 row windows crossing every strip
     * boundary), none in the mid block. */
    fs_case b = {"small", tiny_config((int[]){32, 64, 64}, (int[]){1, 1, 0}, 0,
                                      (int[]){1, 2, 2}, 8),
                 32, 48, 16, 24, 2, 5};
    run_case(&a, 1);
    run_case(&b, 0);
    test_refusals(&b);

    int counts[2] = {check_count, check_failures}, totals[2];
    MPI_Allreduce(counts, totals, 2, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (rank == 0)
        printf("mpi_freescale: %d ranks, %d checks, %d failed (all ranks), %.2f s\n", size,
               totals[0], totals[1], fs_now() - t0);
    fs_comm_free(comm);
    return totals[1] ? 1 : 0;
}
