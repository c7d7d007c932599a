/* comm: the only module that talks to other ranks. It moves bytes; it does
 * not know what they mean.
 *
 * Everything here (halo plans, gathers, exact sums, failure agreement,
 * traffic counters) is written once over a small transport (comm/transport.h:
 * broadcast, all-reduce of int64, grouped row send/receive, all-gather with
 * counts), fixed when the comm is made. Open MPI is the transport today
 * (comm/transport_mpi.c, the only file that calls MPI); NCCL is to be another.
 *
 * Data layout of a strip buffer: [n][rows][row_elems] floats, i.e. NHWC with
 * row_elems = w * c. Rank r owns global rows [plan->row0[r], plan->row0[r+1]). */
#ifndef FS_COMM_H
#define FS_COMM_H

#include <stddef.h>
#include <stdint.h>
#include "core/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fs_comm fs_comm;

/* Where a buffer lives. A device buffer belongs to the backend (kernels.h,
 * fs_backend: its memory ops and, for CUDA, its stream) given as the
 * `stream` of the call that moves it: its work is ordered on that backend's
 * stream. A transport that cannot reach device memory (MPI) stages exactly
 * the bytes it moves through host copies, with that backend's memory ops. */
typedef enum { FS_COMM_HOST = 0, FS_COMM_DEVICE = 1 } fs_comm_mem;
typedef struct fs_comm_buf {
    void *ptr;
    fs_comm_mem mem;
} fs_comm_buf;
static inline fs_comm_buf fs_comm_host(void *ptr) { return (fs_comm_buf){ptr, FS_COMM_HOST}; }
static inline fs_comm_buf fs_comm_device(void *ptr) { return (fs_comm_buf){ptr, FS_COMM_DEVICE}; }

/* The MPI transport: initialises MPI if nobody has (MPI_Init_thread,
 * FUNNELED) and wraps MPI_COMM_WORLD. fs_comm_free finalises MPI only if
 * fs_comm_init started it. */
fs_code fs_comm_init(int *argc, char ***argv, fs_comm **out, fs_error *err);
void fs_comm_free(fs_comm *comm);
int fs_comm_rank(const fs_comm *comm);
int fs_comm_size(const fs_comm *comm);
fs_code fs_comm_barrier(fs_comm *comm, fs_error *err);
fs_code fs_comm_bcast(fs_comm *comm, void *buf, size_t bytes, int root, fs_error *err);
/* The same number of bytes from every rank, concatenated in rank order on
 * root (all: size * bytes there; ignored elsewhere). For reports and logs. */
fs_code fs_comm_gather_bytes(fs_comm *comm, const void *mine, size_t bytes, void *all, int root,
                             fs_error *err);

/* Every rank's *value replaced by the largest over all ranks (error and stop
 * agreement between phases: a rank that failed still takes part, so nobody
 * waits forever in the next collective). */
fs_code fs_comm_allreduce_max_int(fs_comm *comm, int *value, fs_error *err);

/* Point to point (rank 0 collecting image strips to write them in order):
 * any size (sent in pieces of at most 1 GiB), matched by tag. Counted as
 * gather traffic. */
fs_code fs_comm_send_bytes(fs_comm *comm, const void *buf, size_t bytes, int dest, int tag,
                           fs_error *err);
fs_code fs_comm_recv_bytes(fs_comm *comm, void *buf, size_t bytes, int src, int tag,
                           fs_error *err);

/* ---------------------------------------------------------------- strip plan
 * A map of h rows cut into `parts` strips, boundaries on multiples of `align`
 * (the last boundary is h), sizes as even as the alignment allows (the first
 * strips get the extra units). Every strip gets at least one unit; too few
 * rows for the parts is an error saying how many parts would fit. */
#define FS_MAX_RANKS 4096
typedef struct fs_strip_plan {
    int h, parts, align;
    int row0[FS_MAX_RANKS + 1];  /* row0[parts] == h */
} fs_strip_plan;

fs_code fs_strip_plan_make(int h, int parts, int align, fs_strip_plan *plan, fs_error *err);
/* The same cut at a level `factor` times coarser (row0 / factor); factor must
 * divide every boundary except possibly the last (h is rounded up, as a
 * stride-2 convolution does: ceil(h / factor)). */
fs_code fs_strip_plan_coarsen(const fs_strip_plan *fine, int factor, fs_strip_plan *coarse,
                              fs_error *err);
/* Owner of global row y (binary search). */
int fs_strip_plan_owner(const fs_strip_plan *plan, int y);
static inline int fs_strip_rows(const fs_strip_plan *p, int r) { return p->row0[r + 1] - p->row0[r]; }

/* ---------------------------------------------------------------- traffic */
typedef enum {
    FS_TRAFFIC_HALO = 0,   /* halo rows */
    FS_TRAFFIC_REDUCE,     /* fixed-order reductions (GroupNorm statistics, ...) */
    FS_TRAFFIC_GATHER,     /* all-gather / gather of strips (attention K/V, images) */
    FS_TRAFFIC_BCAST,      /* broadcasts (job, plan) */
    FS_TRAFFIC_KINDS
} fs_traffic_kind;
typedef struct fs_traffic {
    uint64_t bytes_sent, bytes_recv, calls;
} fs_traffic;
const char *fs_traffic_name(fs_traffic_kind kind);
void fs_comm_traffic(const fs_comm *comm, fs_traffic out[FS_TRAFFIC_KINDS]);
void fs_comm_traffic_reset(fs_comm *comm);

/* ---------------------------------------------------------------- halos
 * buf is [n][top + own + bot][row_elems] where own = this rank's rows of the
 * plan. Fills the top rows with global rows [row0 - top, row0) and the bottom
 * rows with [row1, row1 + bot) from whichever ranks own them (not only the
 * neighbours: a thin strip may not cover a wide halo). Rows outside [0, h)
 * are set to zero. Collective: every rank calls it with the same top/bot. */
fs_code fs_comm_halo(fs_comm *comm, const fs_strip_plan *plan, float *buf, int n,
                     size_t row_elems, int top, int bot, fs_error *err);
/* The same on a host or device buffer (stream: the fs_backend owning a
 * device buffer, NULL for host). Only the edge rows move: what other ranks
 * need of this strip and what this rank needs of theirs. */
fs_code fs_comm_halo_buf(fs_comm *comm, const fs_strip_plan *plan, fs_comm_buf buf, void *stream,
                         int n, size_t row_elems, int top, int bot, fs_error *err);

/* ---------------------------------------------------------------- gathers
 * own: [n][own rows][row_elems]; full: [n][h][row_elems] on every rank
 * (allgather) or on root only (gather; full may be NULL elsewhere). */
fs_code fs_comm_allgather_rows(fs_comm *comm, const fs_strip_plan *plan, const float *own,
                               float *full, int n, size_t row_elems, fs_error *err);
fs_code fs_comm_gather_rows(fs_comm *comm, const fs_strip_plan *plan, const float *own,
                            float *full, int n, size_t row_elems, int root, fs_error *err);
/* The all-gather on host or device buffers (both of one kind; stream as for
 * fs_comm_halo_buf). */
fs_code fs_comm_allgather_rows_buf(fs_comm *comm, const fs_strip_plan *plan, fs_comm_buf own,
                                   fs_comm_buf full, void *stream, int n, size_t row_elems,
                                   fs_error *err);

/* ---------------------------------------------------------------- reductions
 * Exact sums (comm/exact_sum.c): every value becomes a fixed-point integer
 * of FS_EXACT_LIMBS 32-bit limbs (bit 0 weighs 2^-FS_EXACT_BIAS; bits below
 * are dropped toward zero) and integers add associatively, so a sum has the
 * same bits whatever the order and grouping of its terms: across ranks it is
 * one all-reduce of m * FS_EXACT_LIMBS int64 instead of a gather of h * m
 * partials. |values| and |sums| must stay below FS_EXACT_MAX (2^110).
 * fs_exact_add: acc += v (acc zeroed by the caller); -1 if v is not finite
 * or too large. fs_exact_value: the double nearest (within 2 ulp, always the
 * same) to acc; -1 if the sum is out of range. */
#define FS_EXACT_LIMBS 7
#define FS_EXACT_BIAS 112
#define FS_EXACT_MAX 0x1p110
int fs_exact_add(int64_t acc[FS_EXACT_LIMBS], double v);
int fs_exact_value(const int64_t acc[FS_EXACT_LIMBS], double *out);
/* sum[j] = the exact sum over all h rows of own_part[r][j] ([own rows][m],
 * this rank's rows of plan), on every rank: bit-identical for any rank count
 * (the one-part plan, or comm NULL, sums locally by the same integers).
 * FS_ERR_RANGE names the value that does not fit. */
fs_code fs_comm_sum_rows_exact(fs_comm *comm, const fs_strip_plan *plan, const double *own_part,
                               size_t m, double *sum, fs_error *err);

#ifdef __cplusplus
}
#endif
#endif
