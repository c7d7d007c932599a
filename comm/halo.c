/* comm/halo.c: halo exchange, written once over the transport's grouped
 * row send/receive.
 *
 * The plan alone says which rows go where: each rank needs the `top` rows
 * above its strip and the `bot` rows below, clipped to the map, from
 * whichever ranks own them (a thin strip may not cover a wide halo, so not
 * only the neighbours). A peer before this rank can only own top rows and
 * one after it only bottom rows, so that is one contiguous range per peer
 * and direction, and one message per peer for the whole batch. Only those
 * edge rows move, on the host or straight from a device buffer; rows off
 * the map are zeroed where they lie. */
#include <limits.h>
#include <stdlib.h>
#include "comm/transport.h"

enum { TAG_HALO = 7101 };

static void intersect(int a0, int a1, int b0, int b1, int *r0, int *r1)
{
    *r0 = a0 > b0 ? a0 : b0;
    *r1 = a1 < b1 ? a1 : b1;
}

/* Global rows that rank q needs as halo, clipped to the map: its top range
 * and its bottom range. */
static void halo_ranges(const fs_strip_plan *p, int q, int top, int bot, int *t0, int *t1,
                        int *b0, int *b1)
{
    int q0 = p->row0[q], q1 = p->row0[q + 1];
    *t0 = q0 - top < 0 ? 0 : q0 - top;
    *t1 = q0;
    *b0 = q1;
    *b1 = (int64_t)q1 + bot > p->h ? p->h : q1 + bot;
}

fs_code fs_comm_halo_buf(fs_comm *c, const fs_strip_plan *plan, fs_comm_buf buf, void *stream,
                         int n, size_t row_elems, int top, int bot, fs_error *err)
{
    fs_code code = fs_comm_check_plan(c, plan, "halo exchange", err);
    if (code)
        return code;
    if (n < 1 || top < 0 || bot < 0)
        return fs_fail(err, FS_ERR_INVALID, "halo exchange: batch %d, top %d, bottom %d", n, top,
                       bot);
    if (!buf.ptr)
        return fs_fail(err, FS_ERR_INVALID, "halo exchange: buffer is NULL");
    if (row_elems == 0 || row_elems > (size_t)INT_MAX)
        return fs_fail(err, FS_ERR_RANGE, "halo exchange: %zu elements per row", row_elems);

    const int me = c->rank, P = c->size;
    const int r0 = plan->row0[me], r1 = plan->row0[me + 1], own = r1 - r0;
    /* the rows of every item of the buffer [n][top + own + bot][row_elems],
     * counted from buffer row 0 = global row r0 - top */
    const fs_rowset all = {.buf = buf, .row_bytes = row_elems * sizeof(float),
                           .item_rows = (int64_t)top + own + bot, .items = n};

    /* Rows outside the map are zero padding. */
    fs_rowset pad = all;
    pad.row = 0;
    pad.rows = top > r0 ? top - r0 : 0;  /* top halo rows above row 0 (r0 >= 0) */
    code = fs_rowset_zero(&pad, stream, err);
    int64_t below = (int64_t)r1 + bot - plan->h;  /* bottom halo rows past the map (r1 <= h) */
    if (!code && below > 0) {
        pad.rows = below;
        pad.row = all.item_rows - below;
        code = fs_rowset_zero(&pad, stream, err);
    }
    if (code)
        return code;
    if (P == 1 || (top == 0 && bot == 0)) {
        fs_comm_count(c, FS_TRAFFIC_HALO, 0, 0);
        return FS_OK;
    }

    fs_comm_msg *recv = malloc(sizeof *recv * 2 * (size_t)P), *send = recv + P;
    if (!recv)
        return fs_fail(err, FS_ERR_NOMEM, "halo exchange: out of memory for %d messages", 2 * P);
    int nrecv = 0, nsend = 0;
    uint64_t sent = 0, got = 0;
    int mt0, mt1, mb0, mb1;
    halo_ranges(plan, me, top, bot, &mt0, &mt1, &mb0, &mb1);
    /* From each peer, the part of my halo it owns. */
    for (int q = 0; q < P; q++) {
        if (q == me)
            continue;
        int a, e;
        if (q < me)
            intersect(mt0, mt1, plan->row0[q], plan->row0[q + 1], &a, &e);
        else
            intersect(mb0, mb1, plan->row0[q], plan->row0[q + 1], &a, &e);
        if (e <= a)
            continue;
        fs_comm_msg *m = &recv[nrecv++];
        *m = (fs_comm_msg){q, all};
        m->rows.row = (int64_t)a - (r0 - top);  /* buffer row of global row a */
        m->rows.rows = e - a;
        got += fs_rowset_bytes(&m->rows);
    }
    /* To each peer, the rows of my strip inside its halo ranges. */
    for (int q = 0; q < P; q++) {
        if (q == me)
            continue;
        int t0, t1, b0, b1, a, e;
        halo_ranges(plan, q, top, bot, &t0, &t1, &b0, &b1);
        if (q > me)
            intersect(t0, t1, r0, r1, &a, &e);
        else
            intersect(b0, b1, r0, r1, &a, &e);
        if (e <= a)
            continue;
        fs_comm_msg *m = &send[nsend++];
        *m = (fs_comm_msg){q, all};
        m->rows.row = (int64_t)top + (a - r0);
        m->rows.rows = e - a;
        sent += fs_rowset_bytes(&m->rows);
    }
    code = c->t->ops->exchange(c->t, send, nsend, recv, nrecv, TAG_HALO, stream, err);
    free(recv);
    if (code)
        return code;
    fs_comm_count(c, FS_TRAFFIC_HALO, sent, got);
    return FS_OK;
}

fs_code fs_comm_halo(fs_comm *c, const fs_strip_plan *plan, float *buf, int n,
                     size_t row_elems, int top, int bot, fs_error *err)
{
    return fs_comm_halo_buf(c, plan, fs_comm_host(buf), NULL, n, row_elems, top, bot, err);
}
