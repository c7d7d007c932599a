/* Op cases: scale fusion's token moves (kernels.h, "token grids";
 * kernels/grid.c on the CPU) against plain loops here: a window gathered
 * from a strip with its off-map tokens replaced by the pad token, a dilated
 * sub-lattice gathered and scattered back, windows added into an own-rows
 * buffer one after another with their counts, and the average. Moves and
 * one add or divide per element: the bits must match. */
#include "ops/ops_harness.h"
#include <stdio.h>
#include <string.h>

#define OP(name, ...) harness_be->op->name(harness_be, __VA_ARGS__)

/* A grid of an fh x fw map of c channels: gathered from the strip of rows
 * [row0, row0 + rows), which must hold every on-map token of the grid. */
static void gather_case(int fh, int fw, int c, int row0, int rows, fs_grid g, int with_pad) {
    char shape[128];
    snprintf(shape, sizeof shape, "%dx%d c=%d rows [%d, %d) grid (%d,%d) %dx%d step %d,%d%s", fh,
             fw, c, row0, row0 + rows, g.y0, g.x0, g.ny, g.nx, g.dy, g.dx, with_pad ? " pad" : "");
    const size_t ns = (size_t)rows * fw * c, nd = (size_t)g.ny * g.nx * c;
    float *src = harness_random(ns, -1, 1), *pad = harness_random(c, 2, 3);
    float *ref = fs_alloc(nd * sizeof(float) + 4);
    for (int i = 0; i < g.ny; i++)
        for (int j = 0; j < g.nx; j++) {
            const int y = g.y0 + i * g.dy, x = g.x0 + j * g.dx;
            const int on = y >= 0 && y < fh && x >= 0 && x < fw;
            for (int ch = 0; ch < c; ch++)
                ref[((size_t)i * g.nx + j) * c + ch] =
                    on ? src[((size_t)(y - row0) * fw + x) * c + ch] : pad[ch];
        }
    void *ds = hb_from(src, ns * 4), *dp = hb_from(pad, (size_t)c * 4), *dd = hb_from(NULL, nd * 4);
    fs_error err = {0};
    hb_check_identical("grid gather", shape,
                       OP(grid_gather, dd, ds, row0, fh, fw, c, &g, with_pad ? dp : NULL, &err),
                       &err, dd, ref, nd);
    /* and back: scatter into a copy of the strip (tokens all on the map) */
    if (!with_pad) {
        float *back = harness_random(nd, 5, 6), *sref = fs_alloc(ns * sizeof(float) + 4);
        memcpy(sref, src, ns * 4);
        for (int i = 0; i < g.ny; i++)
            for (int j = 0; j < g.nx; j++)
                memcpy(sref + ((size_t)(g.y0 + i * g.dy - row0) * fw + g.x0 + j * g.dx) * c,
                       back + ((size_t)i * g.nx + j) * c, (size_t)c * 4);
        void *db = hb_from(back, nd * 4);
        hb_check_identical("grid scatter", shape, OP(grid_scatter, ds, row0, fw, c, &g, db, &err),
                           &err, ds, sref, ns);
        hb_free(db);
        fs_free(back);
        fs_free(sref);
    }
    hb_free(ds);
    hb_free(dp);
    hb_free(dd);
    fs_free(src);
    fs_free(pad);
    fs_free(ref);
}

/* nwin windows of ph x pw at random places (partly off the map) added into
 * the own rows [row0, row0 + rows) of an fh x fw map, then averaged. */
static void window_case(int fh, int fw, int c, int row0, int rows, int ph, int pw, int nwin) {
    char shape[128];
    snprintf(shape, sizeof shape, "%dx%d c=%d rows [%d, %d) %d windows %dx%d", fh, fw, c, row0,
             row0 + rows, nwin, ph, pw);
    const size_t T = (size_t)rows * fw, no = (size_t)ph * pw * c;
    float *ref = fs_alloc(T * c * sizeof(float) + 4), *cnt = fs_alloc(T * sizeof(float) + 4);
    memset(ref, 0, T * c * 4);
    memset(cnt, 0, T * 4);
    float *dout = hb_from(ref, T * c * 4), *dcnt = hb_from(cnt, T * 4);
    float *o = fs_alloc(no * sizeof(float) + 4);
    float *dow = hb_from(NULL, no * 4);
    fs_error err = {0};
    fs_code rc = FS_OK;
    for (int k = 0; k < nwin && rc == FS_OK; k++) {
        fs_grid g = {
            harness_int(-ph / 2, fh - ph / 2), harness_int(-pw / 2, fw - pw / 2), ph, pw, 1, 1};
        harness_fill(o, no, -1, 1);
        for (int i = 0; i < ph; i++)
            for (int j = 0; j < pw; j++) {
                const int y = g.y0 + i, x = g.x0 + j;
                if (y < row0 || y >= row0 + rows || x < 0 || x >= fw) continue;
                const size_t t = (size_t)(y - row0) * fw + x;
                for (int ch = 0; ch < c; ch++) ref[t * c + ch] += o[((size_t)i * pw + j) * c + ch];
                cnt[t] += 1.0f;
            }
        hb_free(dow);
        dow = hb_from(o, no * 4);
        rc = OP(window_add, dout, dcnt, row0, rows, fw, c, &g, dow, &err);
    }
    hb_check_identical("window add", shape, rc, &err, dout, ref, T * c);
    hb_check_identical("window count", shape, FS_OK, &err, dcnt, cnt, T);
    for (size_t t = 0; t < T; t++)
        if (cnt[t] > 0.0f)
            for (int ch = 0; ch < c; ch++) ref[t * c + ch] /= cnt[t];
    hb_check_identical("divide counts", shape, OP(divide_counts, dout, dcnt, T, c, &err), &err,
                       dout, ref, T * c);
    hb_free(dout);
    hb_free(dcnt);
    hb_free(dow);
    fs_free(ref);
    fs_free(cnt);
    fs_free(o);
}

void ops_cases_grid(void) {
    /* a fusion window with padding rows above and columns left of the map */
    gather_case(16, 12, 8, 0, 16, (fs_grid){-2, -3, 8, 6, 1, 1}, 1);
    /* own rows of a strip only, a window past the right edge */
    gather_case(16, 12, 5, 5, 6, (fs_grid){6, 8, 4, 6, 1, 1}, 1);
    /* fast_mode's sub-lattices: steps 2 and 3, the own rows of a strip */
    gather_case(12, 9, 4, 0, 12, (fs_grid){1, 2, 6, 3, 2, 3}, 0);
    gather_case(12, 9, 3, 4, 5, (fs_grid){5, 0, 2, 5, 2, 2}, 0);
    gather_case(64, 64, 320, 0, 64, (fs_grid){0, 1, 32, 32, 2, 2}, 0);
    window_case(16, 12, 8, 0, 16, 8, 6, 9);
    window_case(16, 12, 5, 5, 6, 6, 6, 12);
    window_case(32, 32, 64, 8, 8, 16, 16, 9);
    for (int i = 0; i < 4; i++) {
        int fh = harness_int(2, 24), fw = harness_int(2, 24), row0 = harness_int(0, fh - 1);
        window_case(fh, fw, harness_int(1, 40), row0, harness_int(1, fh - row0), harness_int(1, fh),
                    harness_int(1, fw), harness_int(1, 10));
    }
}
