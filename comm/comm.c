/* comm/comm.c: the comm over its transport: lifetime, broadcast, failure
 * agreement, byte gathers, point to point, traffic counters and plan checks.
 *
 * Byte counters are logical: what a direct exchange moves (a broadcast
 * counts (P-1) copies sent by the root), not what a transport's algorithm
 * routes through intermediate ranks, so they are the same for every
 * transport. Halo counts are exact (point to point). */
#include <stdlib.h>
#include <string.h>
#include "comm/transport.h"

enum { TAG_GATHER_BYTES = 7102 };

/* The largest piece of a point-to-point message: transports count in int. */
static const size_t piece_bytes = (size_t)1 << 30;

/* ---------------------------------------------------------------- lifetime */

fs_code fs_comm_make(fs_transport *t, fs_comm **out, fs_error *err)
{
    *out = NULL;
    if (t->size > FS_MAX_RANKS) {
        fs_code code = fs_fail(err, FS_ERR_UNSUPPORTED,
                               "comm init: %d ranks, strip plans hold at most %d", t->size,
                               FS_MAX_RANKS);
        t->ops->close(t);
        return code;
    }
    fs_comm *c = calloc(1, sizeof *c);
    if (!c) {
        t->ops->close(t);
        return fs_fail(err, FS_ERR_NOMEM, "comm init: out of memory");
    }
    c->t = t;
    c->rank = t->rank;
    c->size = t->size;
    *out = c;
    return FS_OK;
}

fs_code fs_comm_init(int *argc, char ***argv, fs_comm **out, fs_error *err)
{
    if (!out)
        return fs_fail(err, FS_ERR_INVALID, "comm init: out is NULL");
    *out = NULL;
    fs_transport *t = NULL;
    fs_code code = fs_transport_mpi_open(argc, argv, &t, err);
    return code ? code : fs_comm_make(t, out, err);
}

void fs_comm_free(fs_comm *c)
{
    if (!c)
        return;
    if (c->t)
        c->t->ops->close(c->t);
    free(c);
}

const fs_transport *fs_comm_transport(const fs_comm *c) { return c ? c->t : NULL; }
int fs_comm_rank(const fs_comm *c) { return c ? c->rank : 0; }
int fs_comm_size(const fs_comm *c) { return c ? c->size : 1; }

void fs_comm_count(fs_comm *c, fs_traffic_kind kind, uint64_t sent, uint64_t recv)
{
    c->traffic[kind].bytes_sent += sent;
    c->traffic[kind].bytes_recv += recv;
    c->traffic[kind].calls++;
}

fs_code fs_comm_check_plan(const fs_comm *c, const fs_strip_plan *plan, const char *what,
                           fs_error *err)
{
    if (!c)
        return fs_fail(err, FS_ERR_INVALID, "%s: comm is NULL", what);
    if (!plan)
        return fs_fail(err, FS_ERR_INVALID, "%s: plan is NULL", what);
    if (plan->parts != c->size)
        return fs_fail(err, FS_ERR_INVALID, "%s: plan has %d parts but the job has %d ranks",
                       what, plan->parts, c->size);
    if (plan->row0[0] != 0 || plan->row0[plan->parts] != plan->h)
        return fs_fail(err, FS_ERR_INVALID, "%s: malformed plan (rows %d..%d for h %d)", what,
                       plan->row0[0], plan->row0[plan->parts], plan->h);
    for (int r = 0; r < plan->parts; r++)
        if (plan->row0[r + 1] <= plan->row0[r])
            return fs_fail(err, FS_ERR_INVALID, "%s: strip %d of the plan is empty", what, r);
    return FS_OK;
}

/* ---------------------------------------------------------------- collectives */

fs_code fs_comm_barrier(fs_comm *c, fs_error *err)
{
    if (!c)
        return fs_fail(err, FS_ERR_INVALID, "comm barrier: comm is NULL");
    /* an all-reduce returns nowhere before every rank has entered it, and
     * every transport has one */
    int64_t token = 0;
    return c->t->ops->allreduce_i64(c->t, fs_comm_host(&token), 1, FS_REDUCE_MAX, NULL, err);
}

fs_code fs_comm_bcast(fs_comm *c, void *buf, size_t bytes, int root, fs_error *err)
{
    if (!c)
        return fs_fail(err, FS_ERR_INVALID, "comm bcast: comm is NULL");
    if (root < 0 || root >= c->size)
        return fs_fail(err, FS_ERR_INVALID, "comm bcast: root %d is not a rank of 0..%d", root,
                       c->size - 1);
    if (bytes > 0 && !buf)
        return fs_fail(err, FS_ERR_INVALID, "comm bcast: buffer is NULL for %zu bytes", bytes);
    fs_code code = c->t->ops->bcast(c->t, fs_comm_host(buf), bytes, root, NULL, err);
    if (code)
        return code;
    if (c->rank == root)
        fs_comm_count(c, FS_TRAFFIC_BCAST, (uint64_t)bytes * (uint64_t)(c->size - 1), 0);
    else
        fs_comm_count(c, FS_TRAFFIC_BCAST, 0, bytes);
    return FS_OK;
}

fs_code fs_comm_allreduce_max_int(fs_comm *c, int *value, fs_error *err)
{
    if (!c) return FS_OK;   /* one process */
    int64_t v = *value;
    fs_code code = c->t->ops->allreduce_i64(c->t, fs_comm_host(&v), 1, FS_REDUCE_MAX, NULL, err);
    if (code) return code;
    *value = (int)v;
    /* counted as the int it agrees on, whatever width the transport uses */
    fs_comm_count(c, FS_TRAFFIC_REDUCE, sizeof *value, sizeof *value);
    return FS_OK;
}

/* One byte range as a rowset of one row. */
static fs_rowset bytes_at(const void *p, size_t bytes)
{
    return (fs_rowset){.buf = fs_comm_host((void *)p), .row_bytes = bytes, .item_rows = 1,
                       .items = 1, .row = 0, .rows = 1};
}

fs_code fs_comm_gather_bytes(fs_comm *c, const void *mine, size_t bytes, void *all, int root,
                             fs_error *err)
{
    if (!c)
        return fs_fail(err, FS_ERR_INVALID, "comm gather bytes: comm is NULL");
    if (root < 0 || root >= c->size)
        return fs_fail(err, FS_ERR_INVALID, "comm gather bytes: root %d is not a rank of 0..%d",
                       root, c->size - 1);
    if (bytes > piece_bytes)
        return fs_fail(err, FS_ERR_RANGE, "comm gather bytes: %zu bytes per rank is over 1 GiB",
                       bytes);
    if (bytes > 0 && (!mine || (c->rank == root && !all)))
        return fs_fail(err, FS_ERR_INVALID, "comm gather bytes: NULL buffer on rank %d",
                       c->rank);
    const int P = c->size;
    fs_code code;
    if (c->rank == root) {
        fs_comm_msg *recv = malloc(sizeof *recv * (size_t)P);
        if (!recv)
            return fs_fail(err, FS_ERR_NOMEM, "comm gather bytes: %d ranks", P);
        int k = 0;
        for (int q = 0; q < P; q++)
            if (q != root)
                recv[k++] = (fs_comm_msg){q, bytes_at((char *)all + (size_t)q * bytes, bytes)};
        if (bytes > 0)
            memmove((char *)all + (size_t)root * bytes, mine, bytes);
        code = c->t->ops->exchange(c->t, NULL, 0, recv, k, TAG_GATHER_BYTES, NULL, err);
        free(recv);
        if (!code)
            fs_comm_count(c, FS_TRAFFIC_GATHER, 0, (uint64_t)bytes * (uint64_t)(P - 1));
    } else {
        fs_comm_msg send = {root, bytes_at(mine, bytes)};
        code = c->t->ops->exchange(c->t, &send, 1, NULL, 0, TAG_GATHER_BYTES, NULL, err);
        if (!code)
            fs_comm_count(c, FS_TRAFFIC_GATHER, bytes, 0);
    }
    return code;
}

/* ---------------------------------------------------------------- point to point */

/* bytes to or from one peer, in pieces of at most piece_bytes posted
 * together (arriving in order); an empty message is still one message. */
static fs_code p2p(fs_comm *c, void *buf, size_t bytes, int peer, int tag, int sending,
                   fs_error *err)
{
    size_t n = bytes == 0 ? 1 : (bytes + piece_bytes - 1) / piece_bytes;
    fs_comm_msg *msg = malloc(sizeof *msg * n);
    if (!msg)
        return fs_fail(err, FS_ERR_NOMEM, "comm %s: %zu pieces", sending ? "send" : "recv", n);
    for (size_t i = 0; i < n; i++) {
        size_t at = i * piece_bytes, k = bytes - at < piece_bytes ? bytes - at : piece_bytes;
        msg[i] = (fs_comm_msg){peer, bytes_at((char *)buf + at, k)};
    }
    fs_code code = sending ? c->t->ops->exchange(c->t, msg, (int)n, NULL, 0, tag, NULL, err)
                           : c->t->ops->exchange(c->t, NULL, 0, msg, (int)n, tag, NULL, err);
    free(msg);
    if (!code)
        fs_comm_count(c, FS_TRAFFIC_GATHER, sending ? bytes : 0, sending ? 0 : bytes);
    return code;
}

fs_code fs_comm_send_bytes(fs_comm *c, const void *buf, size_t bytes, int dest, int tag,
                           fs_error *err)
{
    if (!c || dest < 0 || dest >= c->size)
        return fs_fail(err, FS_ERR_INVALID, "comm send: no rank %d", dest);
    return p2p(c, (void *)buf, bytes, dest, tag, 1, err);
}

fs_code fs_comm_recv_bytes(fs_comm *c, void *buf, size_t bytes, int src, int tag, fs_error *err)
{
    if (!c || src < 0 || src >= c->size)
        return fs_fail(err, FS_ERR_INVALID, "comm recv: no rank %d", src);
    return p2p(c, buf, bytes, src, tag, 0, err);
}

/* ---------------------------------------------------------------- traffic */

const char *fs_traffic_name(fs_traffic_kind kind)
{
    switch (kind) {
    case FS_TRAFFIC_HALO: return "halo";
    case FS_TRAFFIC_REDUCE: return "reduce";
    case FS_TRAFFIC_GATHER: return "gather";
    case FS_TRAFFIC_BCAST: return "bcast";
    default: return "unknown";
    }
}

void fs_comm_traffic(const fs_comm *c, fs_traffic out[FS_TRAFFIC_KINDS])
{
    if (!out)
        return;
    for (int k = 0; k < FS_TRAFFIC_KINDS; k++)
        out[k] = c ? c->traffic[k] : (fs_traffic){0, 0, 0};
}

void fs_comm_traffic_reset(fs_comm *c)
{
    if (c)
        memset(c->traffic, 0, sizeof c->traffic);
}
