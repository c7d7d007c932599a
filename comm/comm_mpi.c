/* comm/comm_mpi.c: the Open MPI implementation of comm/comm.h.
 *
 * The only file that calls MPI. It moves rows of strips between ranks and
 * keeps per-kind byte counters; it never interprets the data.
 *
 * Choices that matter:
 * - We work on a duplicate of MPI_COMM_WORLD with MPI_ERRORS_RETURN, so an
 *   MPI failure comes back as FS_ERR_COMM with MPI_Error_string's text
 *   instead of killing the job, and our messages never match anyone else's.
 * - Counts given to MPI are in rows (a contiguous datatype of one row), never
 *   in elements, so maps of more than 2^31 floats do not overflow int counts;
 *   a batch of n items is described by a vector datatype so each peer gets
 *   one message per call whatever n is, without packing.
 * - Reductions never use MPI_Reduce/Allreduce (their order depends on P and
 *   on the algorithm Open MPI picks): per-row partials are gathered in global
 *   row order and added sequentially on every rank.
 * - Byte counters are logical: what a direct exchange moves (a broadcast
 *   counts (P-1) copies sent by the root), not what Open MPI's algorithm
 *   routes through intermediate ranks. Halo counts are exact (point to point). */
#include "comm/comm.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <mpi.h>

struct fs_comm {
    MPI_Comm comm;
    int rank, size;
    int started_mpi;  /* fs_comm_init called MPI_Init_thread, so we finalise */
    fs_traffic traffic[FS_TRAFFIC_KINDS];
};

enum { TAG_HALO = 7101 };

/* Turns an MPI return code into FS_ERR_COMM with MPI's own text. */
static fs_code mpi_fail(fs_error *err, int rc, int rank, const char *what)
{
    char text[MPI_MAX_ERROR_STRING + 1];
    int len = 0;
    if (MPI_Error_string(rc, text, &len) != MPI_SUCCESS || len <= 0)
        snprintf(text, sizeof text, "unknown MPI error");
    text[len > 0 && len <= MPI_MAX_ERROR_STRING ? len : MPI_MAX_ERROR_STRING] = '\0';
    return fs_fail(err, FS_ERR_COMM, "%s failed on rank %d: %s (MPI code %d)", what, rank, text,
                   rc);
}

static void count(fs_comm *c, fs_traffic_kind kind, uint64_t sent, uint64_t recv)
{
    c->traffic[kind].bytes_sent += sent;
    c->traffic[kind].bytes_recv += recv;
    c->traffic[kind].calls++;
}

/* ---------------------------------------------------------------- lifetime */

fs_code fs_comm_init(int *argc, char ***argv, fs_comm **out, fs_error *err)
{
    if (!out)
        return fs_fail(err, FS_ERR_INVALID, "comm init: out is NULL");
    *out = NULL;
    int initialised = 0, finalised = 0, rc;
    MPI_Finalized(&finalised);
    if (finalised)
        return fs_fail(err, FS_ERR_COMM, "comm init: MPI was already finalised in this process");
    MPI_Initialized(&initialised);
    int started = 0;
    if (!initialised) {
        int provided = 0;
        rc = MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
        if (rc != MPI_SUCCESS)
            return mpi_fail(err, rc, -1, "MPI_Init_thread");
        started = 1;
        if (provided < MPI_THREAD_FUNNELED)
            fs_log(FS_LOG_WARN, "MPI provides thread level %d < FUNNELED; only the main thread "
                                "calls MPI, OpenMP threads never do", provided);
    }
    fs_comm *c = calloc(1, sizeof *c);
    if (!c) {
        if (started)
            MPI_Finalize();
        return fs_fail(err, FS_ERR_NOMEM, "comm init: out of memory");
    }
    c->started_mpi = started;
    c->comm = MPI_COMM_NULL;
    rc = MPI_Comm_dup(MPI_COMM_WORLD, &c->comm);
    if (rc == MPI_SUCCESS)
        rc = MPI_Comm_set_errhandler(c->comm, MPI_ERRORS_RETURN);
    if (rc == MPI_SUCCESS)
        rc = MPI_Comm_rank(c->comm, &c->rank);
    if (rc == MPI_SUCCESS)
        rc = MPI_Comm_size(c->comm, &c->size);
    if (rc != MPI_SUCCESS) {
        fs_code code = mpi_fail(err, rc, -1, "comm init (MPI_Comm_dup of MPI_COMM_WORLD)");
        fs_comm_free(c);
        return code;
    }
    if (c->size > FS_MAX_RANKS) {
        fs_code code = fs_fail(err, FS_ERR_UNSUPPORTED,
                               "comm init: %d ranks, strip plans hold at most %d", c->size,
                               FS_MAX_RANKS);
        fs_comm_free(c);
        return code;
    }
    *out = c;
    return FS_OK;
}

void fs_comm_free(fs_comm *c)
{
    if (!c)
        return;
    int finalised = 0;
    MPI_Finalized(&finalised);
    if (!finalised && c->comm != MPI_COMM_NULL)
        MPI_Comm_free(&c->comm);
    if (c->started_mpi && !finalised)
        MPI_Finalize();
    free(c);
}

int fs_comm_rank(const fs_comm *c) { return c ? c->rank : 0; }
int fs_comm_size(const fs_comm *c) { return c ? c->size : 1; }

fs_code fs_comm_barrier(fs_comm *c, fs_error *err)
{
    if (!c)
        return fs_fail(err, FS_ERR_INVALID, "comm barrier: comm is NULL");
    int rc = MPI_Barrier(c->comm);
    return rc == MPI_SUCCESS ? FS_OK : mpi_fail(err, rc, c->rank, "MPI_Barrier");
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
    /* int counts: large buffers go in chunks of 1 GiB. */
    const size_t chunk = (size_t)1 << 30;
    for (size_t off = 0; off < bytes; off += chunk) {
        size_t len = bytes - off < chunk ? bytes - off : chunk;
        int rc = MPI_Bcast((char *)buf + off, (int)len, MPI_BYTE, root, c->comm);
        if (rc != MPI_SUCCESS)
            return mpi_fail(err, rc, c->rank, "MPI_Bcast");
    }
    if (c->rank == root)
        count(c, FS_TRAFFIC_BCAST, (uint64_t)bytes * (uint64_t)(c->size - 1), 0);
    else
        count(c, FS_TRAFFIC_BCAST, 0, bytes);
    return FS_OK;
}

fs_code fs_comm_gather_bytes(fs_comm *c, const void *mine, size_t bytes, void *all, int root,
                             fs_error *err)
{
    if (!c)
        return fs_fail(err, FS_ERR_INVALID, "comm gather bytes: comm is NULL");
    if (root < 0 || root >= c->size)
        return fs_fail(err, FS_ERR_INVALID, "comm gather bytes: root %d is not a rank of 0..%d",
                       root, c->size - 1);
    if (bytes > (size_t)1 << 30)
        return fs_fail(err, FS_ERR_RANGE, "comm gather bytes: %zu bytes per rank is over 1 GiB",
                       bytes);
    int rc = MPI_Gather(mine, (int)bytes, MPI_BYTE, all, (int)bytes, MPI_BYTE, root, c->comm);
    if (rc != MPI_SUCCESS)
        return mpi_fail(err, rc, c->rank, "MPI_Gather");
    if (c->rank == root)
        count(c, FS_TRAFFIC_GATHER, 0, (uint64_t)bytes * (uint64_t)(c->size - 1));
    else
        count(c, FS_TRAFFIC_GATHER, bytes, 0);
    return FS_OK;
}

fs_code fs_comm_allreduce_max_int(fs_comm *c, int *value, fs_error *err)
{
    if (!c) return FS_OK;   /* one process */
    int in = *value;
    int rc = MPI_Allreduce(&in, value, 1, MPI_INT, MPI_MAX, c->comm);
    if (rc != MPI_SUCCESS) return mpi_fail(err, rc, c->rank, "MPI_Allreduce");
    count(c, FS_TRAFFIC_REDUCE, sizeof in, sizeof in);
    return FS_OK;
}

fs_code fs_comm_send_bytes(fs_comm *c, const void *buf, size_t bytes, int dest, int tag,
                           fs_error *err)
{
    if (!c || dest < 0 || dest >= c->size)
        return fs_fail(err, FS_ERR_INVALID, "comm send: no rank %d", dest);
    const size_t piece = (size_t)1 << 30;
    for (size_t at = 0; at < bytes || (bytes == 0 && at == 0); at += piece) {
        size_t k = bytes - at < piece ? bytes - at : piece;
        int rc = MPI_Send((const char *)buf + at, (int)k, MPI_BYTE, dest, tag, c->comm);
        if (rc != MPI_SUCCESS) return mpi_fail(err, rc, c->rank, "MPI_Send");
        if (bytes == 0) break;
    }
    count(c, FS_TRAFFIC_GATHER, bytes, 0);
    return FS_OK;
}

fs_code fs_comm_recv_bytes(fs_comm *c, void *buf, size_t bytes, int src, int tag, fs_error *err)
{
    if (!c || src < 0 || src >= c->size)
        return fs_fail(err, FS_ERR_INVALID, "comm recv: no rank %d", src);
    const size_t piece = (size_t)1 << 30;
    for (size_t at = 0; at < bytes || (bytes == 0 && at == 0); at += piece) {
        size_t k = bytes - at < piece ? bytes - at : piece;
        int rc = MPI_Recv((char *)buf + at, (int)k, MPI_BYTE, src, tag, c->comm,
                          MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS) return mpi_fail(err, rc, c->rank, "MPI_Recv");
        if (bytes == 0) break;
    }
    count(c, FS_TRAFFIC_GATHER, 0, bytes);
    return FS_OK;
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

/* ---------------------------------------------------------------- helpers */

/* Checks that a plan describes this communicator's ranks. */
static fs_code check_plan(const fs_comm *c, const fs_strip_plan *plan, const char *what,
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

/* A contiguous datatype of one row; its count is an int, so a single row of
 * more than 2^31 elements is refused (8 GiB of floats in one row). */
static fs_code row_type(const fs_comm *c, size_t row_elems, MPI_Datatype elem,
                        MPI_Datatype *out, const char *what, fs_error *err)
{
    if (row_elems == 0 || row_elems > (size_t)INT_MAX)
        return fs_fail(err, FS_ERR_RANGE, "%s: %zu elements per row is outside 1..%d", what,
                       row_elems, INT_MAX);
    int rc = MPI_Type_contiguous((int)row_elems, elem, out);
    if (rc == MPI_SUCCESS)
        rc = MPI_Type_commit(out);
    return rc == MPI_SUCCESS ? FS_OK : mpi_fail(err, rc, c->rank, "MPI_Type_contiguous");
}

/* `rows` consecutive rows in each of n items whose starts are `item_rows`
 * rows apart: one message per peer for the whole batch. */
static int block_type(int n, int rows, int64_t item_rows, size_t row_bytes, MPI_Datatype row,
                      MPI_Datatype *out)
{
    int rc = MPI_Type_create_hvector(n, rows, (MPI_Aint)(item_rows * (int64_t)row_bytes), row,
                                     out);
    if (rc == MPI_SUCCESS)
        rc = MPI_Type_commit(out);
    return rc;
}

/* One row index across n items (item_rows rows apart), with the extent of a
 * single row, so that count k at displacement y means rows y..y+k-1 of every
 * item: the shape of a strip inside [n][rows][row_elems]. Element order is
 * (row, item) on both sides of a gather, so send and receive signatures match. */
static int row_across_items_type(int n, int64_t item_rows, size_t row_bytes, MPI_Datatype row,
                                 MPI_Datatype *out)
{
    MPI_Datatype vec;
    int rc = MPI_Type_create_hvector(n, 1, (MPI_Aint)(item_rows * (int64_t)row_bytes), row, &vec);
    if (rc != MPI_SUCCESS)
        return rc;
    rc = MPI_Type_create_resized(vec, 0, (MPI_Aint)row_bytes, out);
    MPI_Type_free(&vec);
    if (rc == MPI_SUCCESS)
        rc = MPI_Type_commit(out);
    return rc;
}

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

/* ---------------------------------------------------------------- halos */

fs_code fs_comm_halo(fs_comm *c, const fs_strip_plan *plan, float *buf, int n,
                     size_t row_elems, int top, int bot, fs_error *err)
{
    fs_code code = check_plan(c, plan, "halo exchange", err);
    if (code)
        return code;
    if (n < 1 || top < 0 || bot < 0)
        return fs_fail(err, FS_ERR_INVALID, "halo exchange: batch %d, top %d, bottom %d", n, top,
                       bot);
    if (!buf)
        return fs_fail(err, FS_ERR_INVALID, "halo exchange: buffer is NULL");
    if (row_elems == 0 || row_elems > (size_t)INT_MAX)
        return fs_fail(err, FS_ERR_RANGE, "halo exchange: %zu elements per row", row_elems);

    const int me = c->rank, P = c->size;
    const int r0 = plan->row0[me], r1 = plan->row0[me + 1], own = r1 - r0;
    const int64_t item_rows = (int64_t)top + own + bot;
    const size_t row_bytes = row_elems * sizeof(float);

    /* Rows outside the map are zero padding. */
    for (int b = 0; b < n; b++) {
        float *item = buf + (size_t)b * (size_t)item_rows * row_elems;
        for (int i = 0; i < top; i++)
            if (r0 - top + i < 0)
                memset(item + (size_t)i * row_elems, 0, row_bytes);
        for (int i = 0; i < bot; i++)
            if ((int64_t)r1 + i >= plan->h)
                memset(item + (size_t)(top + own + i) * row_elems, 0, row_bytes);
    }
    if (P == 1 || (top == 0 && bot == 0)) {
        count(c, FS_TRAFFIC_HALO, 0, 0);
        return FS_OK;
    }

    MPI_Datatype row;
    code = row_type(c, row_elems, MPI_FLOAT, &row, "halo exchange", err);
    if (code)
        return code;
    MPI_Request *req = malloc(sizeof *req * 2 * (size_t)P);
    MPI_Status *st = malloc(sizeof *st * 2 * (size_t)P);
    if (!req || !st) {
        free(req);
        free(st);
        MPI_Type_free(&row);
        return fs_fail(err, FS_ERR_NOMEM, "halo exchange: out of memory for %d requests", 2 * P);
    }
    int nreq = 0, rc = MPI_SUCCESS;
    uint64_t sent = 0, recv = 0;
    const char *failed = NULL;
    int mt0, mt1, mb0, mb1;
    halo_ranges(plan, me, top, bot, &mt0, &mt1, &mb0, &mb1);

    /* Receives first: from each peer, the part of my halo it owns. A peer
     * before me can only own top rows and one after me only bottom rows,
     * so that is one contiguous range per peer. */
    for (int q = 0; q < P && rc == MPI_SUCCESS; q++) {
        if (q == me)
            continue;
        int a, e;
        if (q < me)
            intersect(mt0, mt1, plan->row0[q], plan->row0[q + 1], &a, &e);
        else
            intersect(mb0, mb1, plan->row0[q], plan->row0[q + 1], &a, &e);
        if (e <= a)
            continue;
        int64_t at = (int64_t)a - (r0 - top);  /* buffer row of global row a */
        MPI_Datatype blk;
        rc = block_type(n, e - a, item_rows, row_bytes, row, &blk);
        if (rc != MPI_SUCCESS) {
            failed = "MPI_Type_create_hvector (halo receive)";
            break;
        }
        rc = MPI_Irecv(buf + (size_t)at * row_elems, 1, blk, q, TAG_HALO, c->comm, &req[nreq]);
        MPI_Type_free(&blk);  /* freed once the pending receive is done */
        if (rc != MPI_SUCCESS) {
            failed = "MPI_Irecv (halo)";
            break;
        }
        nreq++;
        recv += (uint64_t)n * (uint64_t)(e - a) * row_bytes;
    }
    /* Sends: to each peer, the rows of my strip inside its halo ranges. */
    for (int q = 0; q < P && rc == MPI_SUCCESS; q++) {
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
        int64_t at = (int64_t)top + (a - r0);
        MPI_Datatype blk;
        rc = block_type(n, e - a, item_rows, row_bytes, row, &blk);
        if (rc != MPI_SUCCESS) {
            failed = "MPI_Type_create_hvector (halo send)";
            break;
        }
        rc = MPI_Isend(buf + (size_t)at * row_elems, 1, blk, q, TAG_HALO, c->comm, &req[nreq]);
        MPI_Type_free(&blk);
        if (rc != MPI_SUCCESS) {
            failed = "MPI_Isend (halo)";
            break;
        }
        nreq++;
        sent += (uint64_t)n * (uint64_t)(e - a) * row_bytes;
    }
    /* Even after a failed post, wait for what was posted so no request
     * outlives the buffer; the first error is the one reported. */
    int wrc = MPI_Waitall(nreq, req, st);
    if (rc == MPI_SUCCESS && wrc != MPI_SUCCESS) {
        rc = wrc;
        failed = "MPI_Waitall (halo)";
        if (wrc == MPI_ERR_IN_STATUS)
            for (int i = 0; i < nreq; i++)
                if (st[i].MPI_ERROR != MPI_SUCCESS) {
                    rc = st[i].MPI_ERROR;
                    break;
                }
    }
    free(req);
    free(st);
    MPI_Type_free(&row);
    if (rc != MPI_SUCCESS)
        return mpi_fail(err, rc, me, failed ? failed : "halo exchange");
    count(c, FS_TRAFFIC_HALO, sent, recv);
    return FS_OK;
}

/* ---------------------------------------------------------------- gathers */

/* All-gather (root < 0) or gather to root of row strips [n][own][row_elems]
 * into [n][h][row_elems], elements of `elem` (elem_size bytes). */
static fs_code gather_rows(fs_comm *c, const fs_strip_plan *plan, const void *own, void *full,
                           int n, size_t row_elems, MPI_Datatype elem, size_t elem_size, int root,
                           fs_traffic_kind kind, const char *what, fs_error *err)
{
    fs_code code = check_plan(c, plan, what, err);
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
    const int me = c->rank, P = c->size, h = plan->h;
    const int own_rows = fs_strip_rows(plan, me);
    const size_t row_bytes = row_elems * elem_size;

    MPI_Datatype row, send_t = MPI_DATATYPE_NULL, recv_t = MPI_DATATYPE_NULL;
    code = row_type(c, row_elems, elem, &row, what, err);
    if (code)
        return code;
    int *counts = malloc(sizeof(int) * (size_t)P), *displs = malloc(sizeof(int) * (size_t)P);
    if (!counts || !displs) {
        free(counts);
        free(displs);
        MPI_Type_free(&row);
        return fs_fail(err, FS_ERR_NOMEM, "%s: out of memory", what);
    }
    for (int r = 0; r < P; r++) {
        counts[r] = fs_strip_rows(plan, r);
        displs[r] = plan->row0[r];
    }
    int rc = row_across_items_type(n, own_rows, row_bytes, row, &send_t);
    if (rc == MPI_SUCCESS)
        rc = row_across_items_type(n, h, row_bytes, row, &recv_t);
    if (rc != MPI_SUCCESS) {
        code = mpi_fail(err, rc, me, "MPI_Type_create_resized");
    } else {
        if (root < 0)
            rc = MPI_Allgatherv(own, own_rows, send_t, full, counts, displs, recv_t, c->comm);
        else
            rc = MPI_Gatherv(own, own_rows, send_t, full, counts, displs, recv_t, root, c->comm);
        if (rc != MPI_SUCCESS)
            code = mpi_fail(err, rc, me, root < 0 ? "MPI_Allgatherv" : "MPI_Gatherv");
    }
    if (send_t != MPI_DATATYPE_NULL)
        MPI_Type_free(&send_t);
    if (recv_t != MPI_DATATYPE_NULL)
        MPI_Type_free(&recv_t);
    MPI_Type_free(&row);
    free(counts);
    free(displs);
    if (code)
        return code;

    uint64_t mine = (uint64_t)n * (uint64_t)own_rows * row_bytes;
    uint64_t others = (uint64_t)n * (uint64_t)(h - own_rows) * row_bytes;
    if (root < 0)
        count(c, kind, mine * (uint64_t)(P - 1), others);
    else if (me == root)
        count(c, kind, 0, others);
    else
        count(c, kind, mine, 0);
    return FS_OK;
}

fs_code fs_comm_allgather_rows(fs_comm *c, const fs_strip_plan *plan, const float *own,
                               float *full, int n, size_t row_elems, fs_error *err)
{
    return gather_rows(c, plan, own, full, n, row_elems, MPI_FLOAT, sizeof(float), -1,
                       FS_TRAFFIC_GATHER, "all-gather of rows", err);
}

fs_code fs_comm_gather_rows(fs_comm *c, const fs_strip_plan *plan, const float *own,
                            float *full, int n, size_t row_elems, int root, fs_error *err)
{
    if (root < 0)
        return fs_fail(err, FS_ERR_INVALID, "gather of rows: root %d is negative", root);
    return gather_rows(c, plan, own, full, n, row_elems, MPI_FLOAT, sizeof(float), root,
                       FS_TRAFFIC_GATHER, "gather of rows", err);
}

/* ---------------------------------------------------------------- reductions */

fs_code fs_comm_allgather_row_partials(fs_comm *c, const fs_strip_plan *plan,
                                       const double *own_part, size_t m, double *all_rows,
                                       fs_error *err)
{
    return gather_rows(c, plan, own_part, all_rows, 1, m, MPI_DOUBLE, sizeof(double), -1,
                       FS_TRAFFIC_REDUCE, "all-gather of row partials", err);
}

fs_code fs_comm_sum_rows_exact(fs_comm *c, const fs_strip_plan *plan, const double *own_part,
                               size_t m, double *sum, fs_error *err)
{
    if (!sum || !plan)
        return fs_fail(err, FS_ERR_INVALID, "exact row sum: NULL plan or sum");
    const int parts = plan->parts;
    if (parts > 1) {
        fs_code code = check_plan(c, plan, "exact row sum", err);
        if (code)
            return code;
    }
    const int rank = parts > 1 ? c->rank : 0;
    const int rows = fs_strip_rows(plan, rank);
    if (m > SIZE_MAX / sizeof(int64_t) / FS_EXACT_LIMBS / 2)
        return fs_fail(err, FS_ERR_RANGE, "exact row sum: %zu values", m);
    int64_t *acc = fs_alloc(2 * m * FS_EXACT_LIMBS * sizeof(int64_t) + 8);
    if (!acc)
        return fs_fail(err, FS_ERR_NOMEM, "exact row sum: %zu values", m);
    memset(acc, 0, m * FS_EXACT_LIMBS * sizeof(int64_t));
    fs_code code = FS_OK;
    for (int r = 0; r < rows && !code; r++)
        for (size_t j = 0; j < m; j++)
            if (fs_exact_add(acc + j * FS_EXACT_LIMBS, own_part[(size_t)r * m + j])) {
                code = fs_fail(err, FS_ERR_RANGE,
                               "exact row sum: value %g (row %d, index %zu) is not finite or "
                               "not below 2^110", own_part[(size_t)r * m + j],
                               plan->row0[rank] + r, j);
                break;
            }
    /* every rank reaches the all-reduce, a failed one too (with zeros): the
     * failure is then agreed on below, nobody is left waiting */
    int64_t *total = acc + m * FS_EXACT_LIMBS;
    if (parts > 1) {
        int bad = code != FS_OK;
        if (code) memset(acc, 0, m * FS_EXACT_LIMBS * sizeof(int64_t));
        int rc = MPI_Allreduce(acc, total, (int)(m * FS_EXACT_LIMBS), MPI_INT64_T, MPI_SUM,
                               c->comm);
        if (rc != MPI_SUCCESS) {
            fs_free(acc);
            return mpi_fail(err, rc, c->rank, "MPI_Allreduce (exact row sum)");
        }
        count(c, FS_TRAFFIC_REDUCE, m * FS_EXACT_LIMBS * sizeof(int64_t),
              m * FS_EXACT_LIMBS * sizeof(int64_t));
        fs_error local = {0};
        fs_code agreed = fs_comm_allreduce_max_int(c, &bad, &local);
        if (!code && agreed)
            code = fs_fail(err, agreed, "%s", local.msg);
        else if (!code && bad)
            code = fs_fail(err, FS_ERR_RANGE, "exact row sum: a value on another rank is not "
                                              "finite or not below 2^110");
    } else {
        memcpy(total, acc, m * FS_EXACT_LIMBS * sizeof(int64_t));
    }
    for (size_t j = 0; j < m && !code; j++)
        if (fs_exact_value(total + j * FS_EXACT_LIMBS, &sum[j]))
            code = fs_fail(err, FS_ERR_RANGE, "exact row sum: the sum at index %zu reaches 2^110",
                           j);
    fs_free(acc);
    return code;
}

fs_code fs_comm_sum_rows(fs_comm *c, const fs_strip_plan *plan, const double *own_part,
                         size_t m, double *sum, double *all_rows, fs_error *err)
{
    if (!sum)
        return fs_fail(err, FS_ERR_INVALID, "row sum: sum is NULL");
    fs_code code = check_plan(c, plan, "row sum", err);
    if (code)
        return code;
    if (m == 0)
        return fs_fail(err, FS_ERR_INVALID, "row sum: zero values per row");
    double *rows = all_rows;
    if (!rows) {
        if ((size_t)plan->h > SIZE_MAX / sizeof(double) / m)
            return fs_fail(err, FS_ERR_RANGE, "row sum: %d x %zu partials overflow", plan->h, m);
        rows = fs_alloc((size_t)plan->h * m * sizeof(double));
        if (!rows)
            return fs_fail(err, FS_ERR_NOMEM, "row sum: no memory for %d x %zu partials",
                           plan->h, m);
    }
    code = fs_comm_allgather_row_partials(c, plan, own_part, m, rows, err);
    if (!code) {
        /* Row 0 first, then rows 1..h-1 added in global order: the same
         * additions in the same order whatever the rank count. */
        memcpy(sum, rows, m * sizeof(double));
        for (int y = 1; y < plan->h; y++) {
            const double *r = rows + (size_t)y * m;
            for (size_t j = 0; j < m; j++)
                sum[j] += r[j];
        }
    }
    if (rows != all_rows)
        fs_free(rows);
    return code;
}
