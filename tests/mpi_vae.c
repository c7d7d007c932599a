/* tests/mpi_vae.c: the VAE's encoder and decoder on row strips equal the
 * whole-map passes BIT FOR BIT, whatever the rank count, memory scheme,
 * band size or thread count; so do the tiled modes.
 *
 * Tiny random VAEs (fs_vae_create_random) with SDXL's block structure
 * (4 levels, 2 resnets per encoder level, 3 per decoder level, narrowing
 * resnets with 1x1 shortcuts, mid attention). Every rank first runs the
 * whole map itself with a one-part plan (no comm call: checked with the
 * traffic counters), under each of the six memory schemes with one-row
 * bands (every scheme must give the default's bits); then the strip pass of
 * the job's plan (latent sizes that give uneven strips, a one-row strip at 4
 * ranks), with the default scheme and with the leanest one; the strips are
 * all-gathered and memcmp'ed with the whole map. Also: traced activations,
 * batch 2, the posterior sample's noise independent of the split, the
 * tiled modes, 1 vs 2 threads (one rank), a memory budget that forces the
 * lean schemes, and refused calls. Run by ctest at 1..4 ranks. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <mpi.h>

#include "comm/comm.h"
#include "vae/vae.h"
#include "check.h"

static fs_comm *comm;
static int rank, size;

static float *random_floats(size_t n, uint64_t stream, float scale) {
    float *x = malloc(n * sizeof(float));
    fs_rng_fill_normal(x, n, 777, stream, 0);
    for (size_t i = 0; i < n; i++) x[i] *= scale;
    return x;
}

static size_t diff_bits(const float *a, const float *b, size_t count, size_t *first) {
    size_t diffs = 0;
    for (size_t i = 0; i < count; i++)
        if (memcmp(&a[i], &b[i], sizeof(float)) && !diffs++) *first = i;
    return diffs;
}

static uint64_t traffic_total(void) {
    fs_traffic t[FS_TRAFFIC_KINDS];
    fs_comm_traffic(comm, t);
    uint64_t s = 0;
    for (int k = 0; k < FS_TRAFFIC_KINDS; k++) s += t[k].bytes_sent + t[k].bytes_recv + t[k].calls;
    return s;
}

/* Rows [row0, row0 + rows) of each of n items of a [n][h][row] tensor. */
static float *cut_rows(const float *x, int n, int h, int row0, int rows, size_t row) {
    float *s = malloc((size_t)n * rows * row * sizeof(float) + 4);
    for (int b = 0; b < n; b++)
        memcpy(s + (size_t)b * rows * row, x + ((size_t)b * h + row0) * row,
               (size_t)rows * row * sizeof(float));
    return s;
}

/* Gathers every rank's strip ([n][rows * k][row]) and compares with whole. */
static void same_as_whole(const char *what, const fs_strip_plan *plan, int k, const float *strip,
                          const float *whole, int n, size_t row) {
    fs_strip_plan p = *plan;
    p.h = plan->h * k;
    for (int q = 0; q <= plan->parts; q++) p.row0[q] = plan->row0[q] * k;
    size_t count = (size_t)n * p.h * row;
    float *full = malloc(count * sizeof(float));
    fs_error err = {0};
    CHECK(fs_comm_allgather_rows(comm, &p, strip, full, n, row, &err) == FS_OK, "%s", err.msg);
    size_t first = 0, diffs = diff_bits(full, whole, count, &first);
    CHECK(diffs == 0, "%s on %d ranks: %zu of %zu values differ from the whole map, first at %zu "
          "(%.9g vs %.9g)", what, size, diffs, count, first, diffs ? full[first] : 0.0,
          diffs ? whole[first] : 0.0);
    free(full);
}

typedef struct {
    const char *label;
    fs_vae_config cfg;
    int h, w, n;
} vae_case;

static void run_case(const vae_case *vc) {
    fs_error err = {0};
    fs_vae *v = NULL;
    CHECK(fs_vae_create_random(&vc->cfg, 31, &v, &err) == FS_OK, "%s: %s", vc->label, err.msg);
    if (!v) return;
    const fs_vae_config *c = &vc->cfg;
    const int h = vc->h, w = vc->w, n = vc->n, f = 1 << (c->levels - 1);
    const size_t zrow = (size_t)w * c->latent_channels, mrow = 2 * zrow;
    const size_t irow = (size_t)w * f * c->in_channels, orow = (size_t)w * f * c->out_channels;
    float *z = random_floats((size_t)n * h * zrow, 1, 1.0f);
    float *img = random_floats((size_t)n * h * f * irow, 2, 0.5f);
    float *dec = malloc((size_t)n * h * f * orow * sizeof(float));
    float *enc = malloc((size_t)n * h * mrow * sizeof(float));
    float *tmp_d = malloc((size_t)n * h * f * orow * sizeof(float));
    float *tmp_e = malloc((size_t)n * h * mrow * sizeof(float));
    fs_strip_plan whole, plan;
    fs_strip_plan_make(h, 1, 1, &whole, &err);
    CHECK(fs_strip_plan_make(h, size, 1, &plan, &err) == FS_OK, "%s: %s", vc->label, err.msg);

    /* the whole map, every scheme, one-row bands: the same bits */
    fs_vae_opts o = {0};
    fs_comm_traffic_reset(comm);
    double t0 = fs_now();
    fs_code rc = fs_vae_decode(v, comm, &whole, h, w, n, z, dec, &o, &err);
    CHECK(rc == FS_OK, "%s: whole decode: %s", vc->label, err.msg);
    rc = fs_vae_encode(v, comm, &whole, h, w, n, img, enc, &o, &err);
    CHECK(rc == FS_OK, "%s: whole encode: %s", vc->label, err.msg);
    double t_whole = fs_now() - t0;
    CHECK(traffic_total() == 0, "%s: the one-part passes talked to other ranks", vc->label);
    int bad = 0;
    for (size_t i = 0; i < (size_t)n * h * f * orow; i++) bad += !isfinite(dec[i]);
    for (size_t i = 0; i < (size_t)n * h * mrow; i++) bad += !isfinite(enc[i]);
    CHECK(bad == 0, "%s: %d non-finite outputs", vc->label, bad);
    CHECK(memcmp(dec, dec + (size_t)h * f * orow, (size_t)h * f * orow * sizeof(float)) != 0,
          "%s: batch items decode alike", vc->label);
    for (int s = 1; s <= 6; s++) {
        o.force_scheme = s;
        o.band_bytes = 1;
        rc = fs_vae_decode(v, comm, &whole, h, w, n, z, tmp_d, &o, &err);
        CHECK(rc == FS_OK, "%s: decode scheme %d: %s", vc->label, s - 1, err.msg);
        size_t first = 0, d = diff_bits(tmp_d, dec, (size_t)n * h * f * orow, &first);
        CHECK(d == 0, "%s: decode scheme %d, one-row bands: %zu values differ (first %zu)",
              vc->label, s - 1, d, first);
        rc = fs_vae_encode(v, comm, &whole, h, w, n, img, tmp_e, &o, &err);
        CHECK(rc == FS_OK, "%s: encode scheme %d: %s", vc->label, s - 1, err.msg);
        d = diff_bits(tmp_e, enc, (size_t)n * h * mrow, &first);
        CHECK(d == 0, "%s: encode scheme %d: %zu values differ", vc->label, s - 1, d);
    }

    /* strips: the default scheme with whole-strip bands, the leanest with 3-row ones */
    const int row0 = plan.row0[rank], rows = fs_strip_rows(&plan, rank);
    float *zs = cut_rows(z, n, h, row0, rows, zrow);
    float *is = cut_rows(img, n, h * f, row0 * f, rows * f, irow);
    float *ds = malloc((size_t)n * rows * f * orow * sizeof(float) + 4);
    float *es = malloc((size_t)n * rows * mrow * sizeof(float) + 4);
    double t_strip = 0;
    for (int pass = 0; pass < 2; pass++) {
        fs_vae_opts so = {0};
        if (pass) {
            so.force_scheme = 6;
            so.band_bytes = 3 * orow * 4 * 32;
        }
        t0 = fs_now();
        rc = fs_vae_decode(v, comm, &plan, h, w, n, zs, ds, &so, &err);
        CHECK(rc == FS_OK, "%s: strip decode: %s", vc->label, err.msg);
        rc = fs_vae_encode(v, comm, &plan, h, w, n, is, es, &so, &err);
        CHECK(rc == FS_OK, "%s: strip encode: %s", vc->label, err.msg);
        if (!pass) t_strip = fs_now() - t0;
        char what[96];
        snprintf(what, sizeof what, "%s decode%s", vc->label, pass ? " (lean)" : "");
        same_as_whole(what, &plan, f, ds, dec, n, orow);
        snprintf(what, sizeof what, "%s encode%s", vc->label, pass ? " (lean)" : "");
        same_as_whole(what, &plan, 1, es, enc, n, mrow);
    }

    /* the sample: noise by global index, whatever the split */
    float *lat_whole = malloc((size_t)n * h * zrow * sizeof(float));
    float *lat_strip = malloc((size_t)n * rows * zrow * sizeof(float) + 4);
    fs_vae_sample(c, n, h, w, 0, h, enc, NULL, 5, 9, lat_whole);
    fs_vae_sample(c, n, h, w, row0, rows, es, NULL, 5, 9, lat_strip);
    same_as_whole("sample", &plan, 1, lat_strip, lat_whole, n, zrow);

    /* tiled modes (tiles of 32 px / 4 latents here): strips == whole */
    fs_vae_opts to = {0};
    to.tiled = 1;
    to.tile_sample = 4 * f;
    fs_comm_traffic_reset(comm);
    rc = fs_vae_decode(v, comm, &whole, h, w, n, z, tmp_d, &to, &err);
    CHECK(rc == FS_OK, "%s: whole tiled decode: %s", vc->label, err.msg);
    CHECK(traffic_total() == 0, "%s: the one-part tiled decode talked to other ranks", vc->label);
    rc = fs_vae_decode(v, comm, &plan, h, w, n, zs, ds, &to, &err);
    CHECK(rc == FS_OK, "%s: strip tiled decode: %s", vc->label, err.msg);
    same_as_whole("tiled decode", &plan, f, ds, tmp_d, n, orow);
    CHECK(memcmp(tmp_d, dec, (size_t)n * h * f * orow * sizeof(float)) != 0,
          "%s: tiled decode equals the untiled one (tiles not used?)", vc->label);
    rc = fs_vae_encode(v, comm, &whole, h, w, n, img, tmp_e, &to, &err);
    CHECK(rc == FS_OK, "%s: whole tiled encode: %s", vc->label, err.msg);
    rc = fs_vae_encode(v, comm, &plan, h, w, n, is, es, &to, &err);
    CHECK(rc == FS_OK, "%s: strip tiled encode: %s", vc->label, err.msg);
    same_as_whole("tiled encode", &plan, 1, es, tmp_e, n, mrow);

    if (rank == 0)
        printf("%s: latent %dx%d (image %dx%d), batch %d, %d rank(s): whole map decode+encode "
               "%.3f s, strips %.3f s (rank 0)\n", vc->label, h, w, h * f, w * f, n, size,
               t_whole, t_strip);

    if (size == 1) { /* threads */
        fs_threads_init(2);
        fs_vae_opts so = {0};
        rc = fs_vae_decode(v, comm, &whole, h, w, n, z, tmp_d, &so, &err);
        size_t first = 0;
        CHECK(rc == FS_OK && diff_bits(tmp_d, dec, (size_t)n * h * f * orow, &first) == 0,
              "%s: 2 threads change the decode", vc->label);
        rc = fs_vae_encode(v, comm, &whole, h, w, n, img, tmp_e, &so, &err);
        CHECK(rc == FS_OK && diff_bits(tmp_e, enc, (size_t)n * h * mrow, &first) == 0,
              "%s: 2 threads change the encode", vc->label);
        fs_threads_init(0);
    }
    free(z); free(img); free(dec); free(enc); free(tmp_d); free(tmp_e);
    free(zs); free(is); free(ds); free(es); free(lat_whole); free(lat_strip);
    fs_vae_free(v);
}

/* A budget chooses leaner schemes, still the same bits; a budget below the
 * leanest is refused with what it would need; bad calls are refused. */
static void test_budget_and_refusals(const fs_vae_config *cfg) {
    fs_error err = {0};
    fs_vae *v = NULL;
    if (fs_vae_create_random(cfg, 3, &v, &err) != FS_OK) return;
    const int h = 32, w = 32, f = 1 << (cfg->levels - 1); /* maps outweigh op scratch */
    fs_strip_plan whole;
    fs_strip_plan_make(h, 1, 1, &whole, &err);
    fs_vae_opts o = {0};
    o.band_bytes = 1 << 16; /* bands well below a map, as at full size */
    size_t fast = 0, lean = 0;
    double flops_fast = 0, flops_lean = 0;
    CHECK(fs_vae_plan(v, 1, &whole, h, w, &o, &fast, &flops_fast, &err) == FS_OK, "%s", err.msg);
    o.force_scheme = 6;
    CHECK(fs_vae_plan(v, 1, &whole, h, w, &o, &lean, &flops_lean, &err) == FS_OK, "%s", err.msg);
    CHECK(lean < fast && flops_lean > flops_fast,
          "the lean scheme should need less memory and more FLOPs: %zu vs %zu B, %.3g vs %.3g",
          lean, fast, flops_lean, flops_fast);
    o.force_scheme = 0;
    o.max_bytes = (fast + lean) / 2;
    size_t mid = 0;
    CHECK(fs_vae_plan(v, 1, &whole, h, w, &o, &mid, NULL, &err) == FS_OK && mid <= o.max_bytes,
          "a budget between: %zu B for %zu allowed (%s)", mid, o.max_bytes, err.msg);
    size_t zc = (size_t)h * w * cfg->latent_channels, ic = zc / cfg->latent_channels * f * f * 3;
    float *z = random_floats(zc, 3, 1.0f), *a = malloc(ic * sizeof(float)),
          *b = malloc(ic * sizeof(float));
    fs_vae_opts none = {0};
    CHECK(fs_vae_decode(v, NULL, &whole, h, w, 1, z, a, &none, &err) == FS_OK, "%s", err.msg);
    CHECK(fs_vae_decode(v, NULL, &whole, h, w, 1, z, b, &o, &err) == FS_OK, "%s", err.msg);
    CHECK(!memcmp(a, b, ic * sizeof(float)), "a budget changes the decode's bits");
    o.max_bytes = lean / 3;
    fs_code rc = fs_vae_decode(v, NULL, &whole, h, w, 1, z, b, &o, &err);
    CHECK(rc == FS_ERR_NOMEM && strstr(err.msg, "leanest"), "tiny budget: %d %s", rc, err.msg);
    /* plan for another height; more parts than ranks; weights not loaded */
    fs_strip_plan p2;
    fs_strip_plan_make(4, 1, 1, &p2, &err);
    rc = fs_vae_decode(v, comm, &p2, h, w, 1, z, b, &none, &err);
    CHECK(rc == FS_ERR_INVALID && strstr(err.msg, "plan"), "plan mismatch: %d %s", rc, err.msg);
    fs_strip_plan_make(h, size + 1 <= h ? size + 1 : h, 1, &p2, &err);
    if (p2.parts != size) {
        rc = fs_vae_decode(v, comm, &p2, h, w, 1, z, b, &none, &err);
        CHECK(rc == FS_ERR_INVALID && strstr(err.msg, "parts"), "parts: %d %s", rc, err.msg);
    }
    free(z); free(a); free(b);
    fs_vae_free(v);
}

static fs_vae_config tiny(int levels, const int *ch, int layers, int groups, int attention) {
    fs_vae_config c = fs_vae_config_sdxl();
    c.levels = levels;
    for (int l = 0; l < levels; l++) c.channels[l] = ch[l];
    c.layers_per_block = layers;
    c.groups = groups;
    c.mid_attention = attention;
    c.sample_size = 32;
    return c;
}

int main(int argc, char **argv) {
    fs_error err = {0};
    if (fs_comm_init(&argc, &argv, &comm, &err) != FS_OK) {
        fprintf(stderr, "mpi_vae: %s\n", err.msg);
        return 1;
    }
    rank = fs_comm_rank(comm);
    size = fs_comm_size(comm);
    fs_threads_init(0);
    double t0 = fs_now();
    /* SDXL's structure: 4 levels, widths growing then flat, 2 resnets per
     * encoder level; 6 x 5 latent rows: strips 2/2/1/1 at 4 ranks */
    vae_case a = {"sdxl-like", tiny(4, (int[]){8, 16, 32, 32}, 2, 4, 1), 6, 5, 2};
    /* 3 levels, one resnet per level, no mid attention, 7 x 6 latent */
    vae_case b = {"three-level", tiny(3, (int[]){16, 16, 8}, 1, 8, 0), 7, 6, 1};
    run_case(&a);
    run_case(&b);
    test_budget_and_refusals(&a.cfg);
    int counts[2] = {check_count, check_failures}, totals[2];
    MPI_Allreduce(counts, totals, 2, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (rank == 0)
        printf("mpi_vae: %d ranks, %d checks, %d failed (all ranks), %.2f s\n", size, totals[0],
               totals[1], fs_now() - t0);
    fs_comm_free(comm);
    return totals[1] ? 1 : 0;
}
