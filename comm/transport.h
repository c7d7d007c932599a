/* comm/transport.h: what comm/ needs from a way of moving bytes between
 * ranks (private to comm/ and its tests).
 *
 * A transport is a table of operations fixed when the comm is made. Every
 * operation is collective over the ranks or, for the grouped exchange,
 * matched by the peers named in it; every one takes host or device buffers
 * (fs_comm_buf) and an opaque stream (for device buffers: the fs_backend
 * of kernels/kernels.h that owns them, whose stream orders the data). The layer
 * above (comm.c, halo.c, gather.c, exact_sum.c) decides what moves where,
 * checks arguments, agrees on failures and counts traffic; a transport only
 * moves what it is told and reports its own errors as FS_ERR_COMM. Adding a
 * transport (NCCL) means one file that fills fs_transport_ops and a
 * constructor, nothing else. */
#ifndef FS_COMM_TRANSPORT_H
#define FS_COMM_TRANSPORT_H

#include "comm/comm.h"

/* Rows [row, row + rows) of each of `items` items laid out one after the
 * other, each item_rows rows of row_bytes bytes: a batch's share of a strip
 * buffer [items][item_rows][row_bytes]. */
typedef struct fs_rowset {
    fs_comm_buf buf;
    size_t row_bytes;
    int64_t item_rows;
    int items;
    int64_t row, rows;
} fs_rowset;

static inline uint64_t fs_rowset_bytes(const fs_rowset *s)
{
    return (uint64_t)s->items * (uint64_t)s->rows * (uint64_t)s->row_bytes;
}

/* One send or receive of a grouped exchange. */
typedef struct fs_comm_msg {
    int peer;
    fs_rowset rows;
} fs_comm_msg;

typedef enum { FS_REDUCE_SUM = 0, FS_REDUCE_MAX } fs_reduce_op;

typedef struct fs_transport fs_transport;
typedef struct fs_transport_ops {
    const char *name;
    void (*close)(fs_transport *t);
    /* bytes from root to every rank, in place */
    fs_code (*bcast)(fs_transport *t, fs_comm_buf buf, size_t bytes, int root, void *stream,
                     fs_error *err);
    /* count int64 replaced in place by their sum or maximum over all ranks */
    fs_code (*allreduce_i64)(fs_transport *t, fs_comm_buf data, size_t count, fs_reduce_op op,
                             void *stream, fs_error *err);
    /* Posts every send and receive together and returns when all are done.
     * Between two ranks, messages of one tag arrive in the order posted; a
     * send's rows and its receive's rows must be the same number of bytes. */
    fs_code (*exchange)(fs_transport *t, const fs_comm_msg *sends, int nsend,
                        const fs_comm_msg *recvs, int nrecv, int tag, void *stream,
                        fs_error *err);
    /* All-gather with counts: rank r's `send` rows (counts[r] of them, the
     * same row_bytes and items everywhere) land in rows displs[r] ..
     * displs[r] + counts[r] - 1 of `recv` (relative to recv->row) on every
     * rank, this rank's own included. */
    fs_code (*allgatherv)(fs_transport *t, const fs_rowset *send, const fs_rowset *recv,
                          const int *counts, const int *displs, void *stream, fs_error *err);
} fs_transport_ops;

/* The part every transport starts with; rank and size are fixed. */
struct fs_transport {
    const fs_transport_ops *ops;
    int rank, size;
};

/* The MPI transport (comm/transport_mpi.c). */
fs_code fs_transport_mpi_open(int *argc, char ***argv, fs_transport **out, fs_error *err);

/* The comm: a transport, and what is written once above it. */
struct fs_comm {
    fs_transport *t;
    int rank, size;
    fs_traffic traffic[FS_TRAFFIC_KINDS];
};

/* A comm over a transport (taken over: fs_comm_free closes it). */
fs_code fs_comm_make(fs_transport *t, fs_comm **out, fs_error *err);
const fs_transport *fs_comm_transport(const fs_comm *comm);
void fs_comm_count(fs_comm *c, fs_traffic_kind kind, uint64_t sent, uint64_t recv);
/* That a plan describes this comm's ranks (FS_ERR_INVALID saying what not). */
fs_code fs_comm_check_plan(const fs_comm *c, const fs_strip_plan *plan, const char *what,
                           fs_error *err);

/* Host or device rows, for the layer above and for transports that stage
 * (comm/rowset.c). stream: the fs_backend owning a device buffer. */
fs_code fs_rowset_zero(const fs_rowset *s, void *stream, fs_error *err);
/* The set's rows to / from a contiguous host buffer [items][rows][row_bytes]. */
fs_code fs_rowset_pack(const fs_rowset *s, void *host, void *stream, fs_error *err);
fs_code fs_rowset_unpack(const fs_rowset *s, const void *host, void *stream, fs_error *err);

#endif
