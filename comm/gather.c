/* comm/gather.c: gathers of row strips, written once over the transport:
 * the all-gather over its all-gather with counts (each rank's count is its
 * strip's rows), the gather to one root over its grouped send/receive (one
 * message per rank, the root copies its own rows). Layout: own strips
 * [n][own rows][row_elems], the full map [n][h][row_elems]. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include "comm/transport.h"

enum { TAG_GATHER_ROWS = 7103 };

/* The checks every gather makes before any traffic (root < 0: all-gather). */
static fs_code check_gather(const fs_comm *c, const fs_strip_plan *plan, const void *own,
                            const void *full, int n, size_t row_elems, int root,
                            const char *what, fs_error *err)
{
    fs_code code = fs_comm_check_plan(c, plan, what, err);
    if (code)
        return code;
    if (n < 1)
        return fs_fail(err, FS_ERR_INVALID, "%s: batch %d must be >= 1", what, n);
    if (root >= c->size)
        return fs_fail(err, FS_ERR_INVALID, "%s: root %d is not a rank of 0..%d", what, root,
                       c->size - 1);
    if (!own)
        return fs_fail(err, FS_ERR_INVALID, "%s: own strip is NULL", what);
    if (!full && (root < 0 || root == c->rank))
        return fs_fail(err, FS_ERR_INVALID, "%s: full map buffer is NULL on rank %d", what,
                       c->rank);
    if (row_elems == 0 || row_elems > (size_t)INT_MAX)
        return fs_fail(err, FS_ERR_RANGE, "%s: %zu elements per row is outside 1..%d", what,
                       row_elems, INT_MAX);
    return FS_OK;
}

/* This rank's strip and the full map as rowsets. */
static void strip_sets(const fs_comm *c, const fs_strip_plan *plan, fs_comm_buf own,
                       fs_comm_buf full, int n, size_t row_elems, fs_rowset *mine,
                       fs_rowset *map)
{
    const int own_rows = fs_strip_rows(plan, c->rank);
    const size_t row_bytes = row_elems * sizeof(float);
    *mine = (fs_rowset){.buf = own, .row_bytes = row_bytes, .item_rows = own_rows, .items = n,
                        .row = 0, .rows = own_rows};
    *map = (fs_rowset){.buf = full, .row_bytes = row_bytes, .item_rows = plan->h, .items = n,
                       .row = 0, .rows = plan->h};
}

fs_code fs_comm_allgather_rows_buf(fs_comm *c, const fs_strip_plan *plan, fs_comm_buf own,
                                   fs_comm_buf full, void *stream, int n, size_t row_elems,
                                   fs_error *err)
{
    const char *what = "all-gather of rows";
    fs_code code = check_gather(c, plan, own.ptr, full.ptr, n, row_elems, -1, what, err);
    if (code)
        return code;
    if (own.mem != full.mem)
        return fs_fail(err, FS_ERR_INVALID, "%s: own strip and full map in different memories",
                       what);
    const int P = c->size;
    int *counts = malloc(sizeof(int) * 2 * (size_t)P), *displs = counts + P;
    if (!counts)
        return fs_fail(err, FS_ERR_NOMEM, "%s: out of memory", what);
    for (int r = 0; r < P; r++) {
        counts[r] = fs_strip_rows(plan, r);
        displs[r] = plan->row0[r];
    }
    fs_rowset mine, map;
    strip_sets(c, plan, own, full, n, row_elems, &mine, &map);
    code = c->t->ops->allgatherv(c->t, &mine, &map, counts, displs, stream, err);
    free(counts);
    if (code)
        return code;
    uint64_t mine_bytes = fs_rowset_bytes(&mine), all_bytes = fs_rowset_bytes(&map);
    fs_comm_count(c, FS_TRAFFIC_GATHER, mine_bytes * (uint64_t)(P - 1), all_bytes - mine_bytes);
    return FS_OK;
}

fs_code fs_comm_allgather_rows(fs_comm *c, const fs_strip_plan *plan, const float *own,
                               float *full, int n, size_t row_elems, fs_error *err)
{
    return fs_comm_allgather_rows_buf(c, plan, fs_comm_host((void *)own), fs_comm_host(full),
                                      NULL, n, row_elems, err);
}

fs_code fs_comm_gather_rows(fs_comm *c, const fs_strip_plan *plan, const float *own,
                            float *full, int n, size_t row_elems, int root, fs_error *err)
{
    const char *what = "gather of rows";
    if (root < 0)
        return fs_fail(err, FS_ERR_INVALID, "%s: root %d is negative", what, root);
    fs_code code = check_gather(c, plan, own, full, n, row_elems, root, what, err);
    if (code)
        return code;
    const int me = c->rank, P = c->size;
    fs_rowset mine, map;
    strip_sets(c, plan, fs_comm_host((void *)own), fs_comm_host(full), n, row_elems, &mine,
               &map);
    const uint64_t mine_bytes = fs_rowset_bytes(&mine);
    if (me != root) {
        fs_comm_msg send = {root, mine};
        code = c->t->ops->exchange(c->t, &send, 1, NULL, 0, TAG_GATHER_ROWS, NULL, err);
        if (!code)
            fs_comm_count(c, FS_TRAFFIC_GATHER, mine_bytes, 0);
        return code;
    }
    fs_comm_msg *recv = malloc(sizeof *recv * (size_t)P);
    if (!recv)
        return fs_fail(err, FS_ERR_NOMEM, "%s: out of memory", what);
    int k = 0;
    for (int q = 0; q < P; q++) {
        fs_rowset at = map;  /* q's rows of every item */
        at.row = plan->row0[q];
        at.rows = fs_strip_rows(plan, q);
        if (q == me) {
            code = fs_rowset_unpack(&at, own, NULL, err);
            if (code) break;
        } else {
            recv[k++] = (fs_comm_msg){q, at};
        }
    }
    if (!code)
        code = c->t->ops->exchange(c->t, NULL, 0, recv, k, TAG_GATHER_ROWS, NULL, err);
    free(recv);
    if (!code)
        fs_comm_count(c, FS_TRAFFIC_GATHER, 0, fs_rowset_bytes(&map) - mine_bytes);
    return code;
}
