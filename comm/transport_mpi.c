/* comm/transport_mpi.c: the Open MPI transport (comm/transport.h), the only
 * file that calls MPI.
 *
 * Choices that matter:
 * - We work on a duplicate of MPI_COMM_WORLD with MPI_ERRORS_RETURN, so an
 *   MPI failure comes back as FS_ERR_COMM with MPI_Error_string's text
 *   instead of killing the job, and our messages never match anyone else's.
 * - Counts given to MPI are in rows (a datatype of one row), never in bytes
 *   or elements, so maps of more than 2^31 bytes do not overflow int counts;
 *   the items of a batch are described by a vector datatype so each peer
 *   gets one message per call whatever the batch is, without packing.
 * - Reductions are of integers only (exact sums, maxima): their result does
 *   not depend on the order Open MPI's algorithm picks.
 * - MPI reaches host memory only: a device buffer is staged through a host
 *   copy of exactly the rows that move (download before a send, upload
 *   after a receive), through the memory ops of the backend given as the
 *   stream (kernels.h, fs_backend). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <mpi.h>
#include "comm/transport.h"

typedef struct mpi_transport {
    fs_transport base;
    MPI_Comm comm;
    int started_mpi;  /* fs_transport_mpi_open called MPI_Init_thread, so we finalise */
} mpi_transport;

static mpi_transport *mpi_of(fs_transport *t) { return (mpi_transport *)t; }

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

/* ---------------------------------------------------------------- datatypes */

/* One row of `bytes` bytes: contiguous bytes, or for rows past 2^31 bytes
 * whole GiB plus the rest. */
static int row_type(size_t bytes, MPI_Datatype *out)
{
    const size_t gib = (size_t)1 << 30;
    int rc;
    if (bytes <= (size_t)INT_MAX) {
        rc = MPI_Type_contiguous((int)bytes, MPI_BYTE, out);
    } else {
        MPI_Datatype g, parts[2];
        rc = MPI_Type_contiguous((int)gib, MPI_BYTE, &g);
        if (rc != MPI_SUCCESS)
            return rc;
        int lens[2] = {(int)(bytes / gib), (int)(bytes % gib)};
        MPI_Aint at[2] = {0, (MPI_Aint)(bytes / gib * gib)};
        parts[0] = g;
        parts[1] = MPI_BYTE;
        rc = MPI_Type_create_struct(2, lens, at, parts, out);
        MPI_Type_free(&g);
    }
    if (rc == MPI_SUCCESS)
        rc = MPI_Type_commit(out);
    return rc;
}

/* `rows` consecutive rows in each of `items` items whose starts are
 * item_rows rows apart: one message per peer for the whole batch. */
static int block_type(int items, int rows, int64_t item_rows, size_t row_bytes,
                      MPI_Datatype row, MPI_Datatype *out)
{
    int rc = MPI_Type_create_hvector(items, rows, (MPI_Aint)(item_rows * (int64_t)row_bytes),
                                     row, out);
    if (rc == MPI_SUCCESS)
        rc = MPI_Type_commit(out);
    return rc;
}

/* One row index across `items` items (item_rows rows apart), with the
 * extent of a single row, so that count k at displacement y means rows
 * y..y+k-1 of every item: the shape of a strip inside [items][rows][row].
 * Element order is (row, item) on both sides of a gather, so send and
 * receive signatures match. */
static int row_across_items_type(int items, int64_t item_rows, size_t row_bytes,
                                 MPI_Datatype row, MPI_Datatype *out)
{
    MPI_Datatype vec;
    int rc = MPI_Type_create_hvector(items, 1, (MPI_Aint)(item_rows * (int64_t)row_bytes), row,
                                     &vec);
    if (rc != MPI_SUCCESS)
        return rc;
    rc = MPI_Type_create_resized(vec, 0, (MPI_Aint)row_bytes, out);
    MPI_Type_free(&vec);
    if (rc == MPI_SUCCESS)
        rc = MPI_Type_commit(out);
    return rc;
}

static void free_type(MPI_Datatype *t)
{
    if (*t != MPI_DATATYPE_NULL)
        MPI_Type_free(t);
    *t = MPI_DATATYPE_NULL;
}

/* ---------------------------------------------------------------- staging */

/* The rowset MPI sees: the set itself on the host, or for a device buffer a
 * host copy [items][rows] of its rows (filled from the device when `fill`). */
typedef struct staged {
    fs_rowset host;
    void *copy;  /* malloc'ed, or NULL for a host set */
} staged;

static fs_code stage(const fs_rowset *s, int fill, void *stream, staged *out, fs_error *err)
{
    out->host = *s;
    out->copy = NULL;
    if (s->buf.mem == FS_COMM_HOST)
        return FS_OK;
    uint64_t bytes = fs_rowset_bytes(s);
    out->copy = malloc(bytes ? (size_t)bytes : 1);
    if (!out->copy)
        return fs_fail(err, FS_ERR_NOMEM, "comm: %llu bytes of host staging",
                       (unsigned long long)bytes);
    out->host = (fs_rowset){.buf = fs_comm_host(out->copy), .row_bytes = s->row_bytes,
                            .item_rows = s->rows, .items = s->items, .row = 0, .rows = s->rows};
    return fill ? fs_rowset_pack(s, out->copy, stream, err) : FS_OK;
}

/* The rows of a set on the host: base pointer of row `row` of item 0. */
static char *rows_at(const fs_rowset *s)
{
    return (char *)s->buf.ptr + (uint64_t)s->row * s->row_bytes;
}

/* ---------------------------------------------------------------- operations */

static fs_code mpi_bcast(fs_transport *t, fs_comm_buf buf, size_t bytes, int root, void *stream,
                         fs_error *err)
{
    mpi_transport *m = mpi_of(t);
    fs_rowset all = {.buf = buf, .row_bytes = bytes, .item_rows = 1, .items = 1, .rows = 1};
    staged s;
    fs_code code = stage(&all, t->rank == root, stream, &s, err);
    /* int counts: large buffers go in chunks of 1 GiB */
    const size_t chunk = (size_t)1 << 30;
    for (size_t off = 0; off < bytes && !code; off += chunk) {
        size_t len = bytes - off < chunk ? bytes - off : chunk;
        int rc = MPI_Bcast((char *)s.host.buf.ptr + off, (int)len, MPI_BYTE, root, m->comm);
        if (rc != MPI_SUCCESS)
            code = mpi_fail(err, rc, t->rank, "MPI_Bcast");
    }
    if (!code && s.copy && t->rank != root)
        code = fs_rowset_unpack(&all, s.copy, stream, err);
    free(s.copy);
    return code;
}

static fs_code mpi_allreduce_i64(fs_transport *t, fs_comm_buf data, size_t count,
                                 fs_reduce_op op, void *stream, fs_error *err)
{
    if (count > (size_t)INT_MAX)
        return fs_fail(err, FS_ERR_RANGE, "all-reduce of %zu integers", count);
    fs_rowset all = {.buf = data, .row_bytes = count * sizeof(int64_t), .item_rows = 1,
                     .items = 1, .rows = 1};
    staged s;
    fs_code code = stage(&all, 1, stream, &s, err);
    if (!code) {
        int rc = MPI_Allreduce(MPI_IN_PLACE, s.host.buf.ptr, (int)count, MPI_INT64_T,
                               op == FS_REDUCE_MAX ? MPI_MAX : MPI_SUM, mpi_of(t)->comm);
        if (rc != MPI_SUCCESS)
            code = mpi_fail(err, rc, t->rank, "MPI_Allreduce");
    }
    if (!code && s.copy)
        code = fs_rowset_unpack(&all, s.copy, stream, err);
    free(s.copy);
    return code;
}

/* Posts one message of a grouped exchange (its rows on the host). */
static int post(mpi_transport *m, const fs_rowset *s, int peer, int tag, int sending,
                MPI_Request *req)
{
    if (fs_rowset_bytes(s) == 0)
        return sending ? MPI_Isend(s->buf.ptr, 0, MPI_BYTE, peer, tag, m->comm, req)
                       : MPI_Irecv(s->buf.ptr, 0, MPI_BYTE, peer, tag, m->comm, req);
    if (s->rows > INT_MAX)
        return MPI_ERR_COUNT;
    MPI_Datatype row = MPI_DATATYPE_NULL, blk = MPI_DATATYPE_NULL;
    int rc = row_type(s->row_bytes, &row);
    if (rc == MPI_SUCCESS)
        rc = block_type(s->items, (int)s->rows, s->item_rows, s->row_bytes, row, &blk);
    if (rc == MPI_SUCCESS)
        rc = sending ? MPI_Isend(rows_at(s), 1, blk, peer, tag, m->comm, req)
                     : MPI_Irecv(rows_at(s), 1, blk, peer, tag, m->comm, req);
    /* freed once the pending operation is done */
    free_type(&blk);
    free_type(&row);
    return rc;
}

static fs_code mpi_exchange(fs_transport *t, const fs_comm_msg *sends, int nsend,
                            const fs_comm_msg *recvs, int nrecv, int tag, void *stream,
                            fs_error *err)
{
    mpi_transport *m = mpi_of(t);
    const int total = nsend + nrecv;
    MPI_Request *req = malloc(sizeof *req * (size_t)(total ? total : 1));
    MPI_Status *st = malloc(sizeof *st * (size_t)(total ? total : 1));
    staged *sg = calloc((size_t)(total ? total : 1), sizeof *sg);
    if (!req || !st || !sg) {
        free(req);
        free(st);
        free(sg);
        return fs_fail(err, FS_ERR_NOMEM, "comm exchange: %d messages", total);
    }
    fs_code code = FS_OK;
    int nreq = 0, rc = MPI_SUCCESS;
    const char *failed = NULL;
    /* Receives first (then a send never waits on an unposted receive), in
     * the order given: between two ranks, one tag's messages match in order. */
    for (int i = 0; i < total && !code && rc == MPI_SUCCESS; i++) {
        int sending = i >= nrecv;
        const fs_comm_msg *msg = sending ? &sends[i - nrecv] : &recvs[i];
        code = stage(&msg->rows, sending, stream, &sg[i], err);
        if (code)
            break;
        rc = post(m, &sg[i].host, msg->peer, tag, sending, &req[nreq]);
        if (rc != MPI_SUCCESS)
            failed = sending ? "MPI_Isend" : "MPI_Irecv";
        else
            nreq++;
    }
    /* Even after a failed post, wait for what was posted so no request
     * outlives the buffer; the first error is the one reported. */
    int wrc = MPI_Waitall(nreq, req, st);
    if (rc == MPI_SUCCESS && wrc != MPI_SUCCESS) {
        rc = wrc;
        failed = "MPI_Waitall";
        if (wrc == MPI_ERR_IN_STATUS)
            for (int i = 0; i < nreq; i++)
                if (st[i].MPI_ERROR != MPI_SUCCESS) {
                    rc = st[i].MPI_ERROR;
                    break;
                }
    }
    if (!code && rc != MPI_SUCCESS)
        code = mpi_fail(err, rc, t->rank, failed);
    for (int i = 0; i < nrecv && !code; i++)
        if (sg[i].copy)
            code = fs_rowset_unpack(&recvs[i].rows, sg[i].copy, stream, err);
    for (int i = 0; i < total; i++)
        free(sg[i].copy);
    free(sg);
    free(req);
    free(st);
    return code;
}

static fs_code mpi_allgatherv(fs_transport *t, const fs_rowset *send, const fs_rowset *recv,
                              const int *counts, const int *displs, void *stream, fs_error *err)
{
    mpi_transport *m = mpi_of(t);
    if (send->rows > INT_MAX || send->row_bytes != recv->row_bytes ||
        send->items != recv->items)
        return fs_fail(err, FS_ERR_INVALID, "all-gather: %lld rows of %zu bytes x %d items into "
                       "rows of %zu bytes x %d items", (long long)send->rows, send->row_bytes,
                       send->items, recv->row_bytes, recv->items);
    staged ss, rs = {0};
    fs_code code = stage(send, 1, stream, &ss, err);
    if (!code)
        code = stage(recv, 0, stream, &rs, err);
    MPI_Datatype row = MPI_DATATYPE_NULL, st = MPI_DATATYPE_NULL, rt = MPI_DATATYPE_NULL;
    if (!code) {
        int rc = row_type(send->row_bytes, &row);
        if (rc == MPI_SUCCESS)
            rc = row_across_items_type(send->items, ss.host.item_rows, send->row_bytes, row, &st);
        if (rc == MPI_SUCCESS)
            rc = row_across_items_type(recv->items, rs.host.item_rows, recv->row_bytes, row, &rt);
        if (rc != MPI_SUCCESS)
            code = mpi_fail(err, rc, t->rank, "MPI_Type_create_resized");
        else if ((rc = MPI_Allgatherv(rows_at(&ss.host), (int)send->rows, st, rows_at(&rs.host),
                                      counts, displs, rt, m->comm)) != MPI_SUCCESS)
            code = mpi_fail(err, rc, t->rank, "MPI_Allgatherv");
    }
    free_type(&st);
    free_type(&rt);
    free_type(&row);
    if (!code && rs.copy)
        code = fs_rowset_unpack(recv, rs.copy, stream, err);
    free(ss.copy);
    free(rs.copy);
    return code;
}

/* ---------------------------------------------------------------- lifetime */

static void mpi_close(fs_transport *t)
{
    mpi_transport *m = mpi_of(t);
    int finalised = 0;
    MPI_Finalized(&finalised);
    if (!finalised && m->comm != MPI_COMM_NULL)
        MPI_Comm_free(&m->comm);
    if (m->started_mpi && !finalised)
        MPI_Finalize();
    free(m);
}

static const fs_transport_ops mpi_ops = {
    .name = "mpi",
    .close = mpi_close,
    .bcast = mpi_bcast,
    .allreduce_i64 = mpi_allreduce_i64,
    .exchange = mpi_exchange,
    .allgatherv = mpi_allgatherv,
};

fs_code fs_transport_mpi_open(int *argc, char ***argv, fs_transport **out, fs_error *err)
{
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
    mpi_transport *m = calloc(1, sizeof *m);
    if (!m) {
        if (started)
            MPI_Finalize();
        return fs_fail(err, FS_ERR_NOMEM, "comm init: out of memory");
    }
    m->base.ops = &mpi_ops;
    m->started_mpi = started;
    m->comm = MPI_COMM_NULL;
    rc = MPI_Comm_dup(MPI_COMM_WORLD, &m->comm);
    if (rc == MPI_SUCCESS)
        rc = MPI_Comm_set_errhandler(m->comm, MPI_ERRORS_RETURN);
    if (rc == MPI_SUCCESS)
        rc = MPI_Comm_rank(m->comm, &m->base.rank);
    if (rc == MPI_SUCCESS)
        rc = MPI_Comm_size(m->comm, &m->base.size);
    if (rc != MPI_SUCCESS) {
        fs_code code = mpi_fail(err, rc, -1, "comm init (MPI_Comm_dup of MPI_COMM_WORLD)");
        mpi_close(&m->base);
        return code;
    }
    *out = &m->base;
    return FS_OK;
}
