/* tests/mpi_transport.c: the transport under comm/ (comm/transport.h), op
 * by op, at 1..4 ranks (run by ctest under mpirun), on host buffers and on
 * "device" buffers (staged by the MPI transport through their backend's
 * memory ops): the CPU backend posing as a device everywhere, CUDA's too
 * when a GPU is there:
 * - broadcast from every root, of 0, 1, 1000 and 3 MiB + 1 bytes;
 * - all-reduce of int64, sum and max, against the values every rank can
 *   compute, beyond 2^53 and negative;
 * - grouped exchange: strided rows of a batch to and from every peer, and
 *   empty messages, in one call; rows outside the ranges stay untouched;
 * - all-gather with counts: uneven counts into a window of a larger buffer;
 * - on a device: fs_comm_halo_buf and fs_comm_allgather_rows_buf give the
 *   bytes and traffic counts of the host calls.
 * Without a GPU the CUDA cases say so and are skipped. The exit status is
 * non-zero on every rank when any rank failed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <mpi.h>

#include "comm/transport.h"
#include "kernels/kernels.h"
#include "check.h"

static fs_comm *comm;
static const fs_transport *tr;
static int rank, size;
/* The backend that owns the "device" buffers: the CPU backend posing as a
 * device (host memory reached only through its memory ops: every staging
 * path runs without a GPU), then CUDA's when there is one. */
static const fs_backend *dev_be;

/* ---------------------------------------------------------------- buffers */

static fs_comm_buf buf_make(fs_comm_mem mem, size_t bytes)
{
    fs_comm_buf b = {NULL, mem};
    if (mem == FS_COMM_HOST) {
        b.ptr = malloc(bytes ? bytes : 1);
    } else {
        fs_error err = {0};
        CHECK(dev_be->op->alloc(dev_be, &b.ptr, bytes ? bytes : 1, &err) == FS_OK, "%s", err.msg);
    }
    return b;
}

static void buf_free(fs_comm_buf b)
{
    if (b.mem == FS_COMM_HOST)
        free(b.ptr);
    else
        dev_be->op->free(dev_be, b.ptr);
}

static void buf_put(fs_comm_buf b, const void *host, size_t bytes)
{
    fs_error err = {0};
    if (b.mem == FS_COMM_HOST)
        memcpy(b.ptr, host, bytes);
    else
        CHECK(dev_be->op->upload(dev_be, b.ptr, host, bytes, &err) == FS_OK, "%s", err.msg);
}

static void buf_get(void *host, fs_comm_buf b, size_t bytes)
{
    fs_error err = {0};
    if (b.mem == FS_COMM_HOST)
        memcpy(host, b.ptr, bytes);
    else
        CHECK(dev_be->op->download(dev_be, host, b.ptr, bytes, &err) == FS_OK, "%s", err.msg);
}

static const char *mem_name(fs_comm_mem mem) { return mem == FS_COMM_HOST ? "host" : "device"; }

/* A byte that says where it came from. */
static unsigned char pattern(int from, int to, int item, int64_t row, size_t byte)
{
    return (unsigned char)(from * 131 + to * 31 + item * 17 + (int)row * 7 + (int)byte * 3 + 1);
}

/* ---------------------------------------------------------------- broadcast */

static void test_bcast(fs_comm_mem mem)
{
    const size_t sizes[] = {0, 1, 1000, (3u << 20) + 1};
    for (int root = 0; root < size; root++)
        for (int s = 0; s < 4; s++) {
            size_t bytes = sizes[s];
            unsigned char *h = malloc(bytes + 1);
            for (size_t i = 0; i < bytes; i++)
                h[i] = rank == root ? pattern(root, 0, s, 0, i) : 0xEE;
            fs_comm_buf b = buf_make(mem, bytes);
            buf_put(b, h, bytes);
            fs_error err = {0};
            CHECK(tr->ops->bcast((fs_transport *)tr, b, bytes, root, (void *)dev_be, &err) == FS_OK, "%s",
                  err.msg);
            memset(h, 0, bytes);
            buf_get(h, b, bytes);
            size_t bad = 0;
            for (size_t i = 0; i < bytes; i++)
                bad += h[i] != pattern(root, 0, s, 0, i);
            CHECK(bad == 0, "%s bcast of %zu bytes from %d: %zu wrong on rank %d", mem_name(mem),
                  bytes, root, bad, rank);
            buf_free(b);
            free(h);
        }
}

/* ---------------------------------------------------------------- all-reduce */

static int64_t reduce_value(int r, size_t i)
{
    int64_t big = ((int64_t)1 << 55) + 3;  /* past 2^53: a double sum would round */
    return (i % 2 ? -big : big) / (r + 1) + (int64_t)(r * 1000003) * (int64_t)(i + 1) -
           (int64_t)(i % 3 == 0 ? r * r : 0);
}

static void test_allreduce(fs_comm_mem mem)
{
    const size_t counts[] = {1, 7, 1000};
    for (int c = 0; c < 3; c++)
        for (int op = 0; op < 2; op++) {
            size_t n = counts[c];
            int64_t *v = malloc(n * sizeof *v), *want = malloc(n * sizeof *want);
            for (size_t i = 0; i < n; i++) {
                v[i] = reduce_value(rank, i);
                want[i] = reduce_value(0, i);
                for (int r = 1; r < size; r++) {
                    int64_t x = reduce_value(r, i);
                    want[i] = op == FS_REDUCE_SUM ? want[i] + x : want[i] > x ? want[i] : x;
                }
            }
            fs_comm_buf b = buf_make(mem, n * sizeof *v);
            buf_put(b, v, n * sizeof *v);
            fs_error err = {0};
            CHECK(tr->ops->allreduce_i64((fs_transport *)tr, b, n, (fs_reduce_op)op, (void *)dev_be, &err) ==
                      FS_OK, "%s", err.msg);
            buf_get(v, b, n * sizeof *v);
            CHECK(memcmp(v, want, n * sizeof *v) == 0, "%s all-reduce %s of %zu int64",
                  mem_name(mem), op == FS_REDUCE_SUM ? "sum" : "max", n);
            buf_free(b);
            free(v);
            free(want);
        }
}

/* ---------------------------------------------------------------- exchange */

enum { EX_ITEMS = 3, EX_ITEM_ROWS = 6, EX_ROW = 12, EX_TAG = 55 };

/* Rows rank `from` sends to rank `to`: how many, and where they sit in the
 * sender's and the receiver's buffers. */
static int ex_rows(int from, int to) { return 1 + (from + 2 * to) % 3; }
static int ex_send_row(int from, int to) { return (from + to) % (EX_ITEM_ROWS - 3); }
static int ex_recv_row(int from, int to) { return (2 * from + to) % (EX_ITEM_ROWS - 3); }

static void test_exchange(fs_comm_mem mem)
{
    const size_t item_bytes = (size_t)EX_ITEM_ROWS * EX_ROW;
    const size_t bytes = EX_ITEMS * item_bytes;
    /* one send and one receive buffer per peer, plus an empty message each way */
    fs_comm_msg *sends = calloc(2 * (size_t)size, sizeof *sends);
    fs_comm_msg *recvs = calloc(2 * (size_t)size, sizeof *recvs);
    fs_comm_buf *bufs = calloc(2 * (size_t)size, sizeof *bufs);
    unsigned char *h = malloc(bytes);
    int ns = 0, nr = 0;
    for (int q = 0; q < size; q++) {
        if (q == rank)
            continue;
        fs_rowset out = {.buf = buf_make(mem, bytes), .row_bytes = EX_ROW,
                         .item_rows = EX_ITEM_ROWS, .items = EX_ITEMS,
                         .row = ex_send_row(rank, q), .rows = ex_rows(rank, q)};
        for (int b = 0; b < EX_ITEMS; b++)
            for (int y = 0; y < EX_ITEM_ROWS; y++)
                for (size_t e = 0; e < EX_ROW; e++)
                    h[(b * EX_ITEM_ROWS + y) * EX_ROW + e] =
                        pattern(rank, q, b, y - out.row, e);
        buf_put(out.buf, h, bytes);
        fs_rowset in = {.buf = buf_make(mem, bytes), .row_bytes = EX_ROW,
                        .item_rows = EX_ITEM_ROWS, .items = EX_ITEMS,
                        .row = ex_recv_row(q, rank), .rows = ex_rows(q, rank)};
        memset(h, 0xEE, bytes);
        buf_put(in.buf, h, bytes);
        bufs[2 * q] = out.buf;
        bufs[2 * q + 1] = in.buf;
        fs_rowset none = {.buf = out.buf, .row_bytes = 0, .item_rows = 1, .items = 1, .rows = 1};
        sends[ns++] = (fs_comm_msg){q, out};
        sends[ns++] = (fs_comm_msg){q, none};
        recvs[nr++] = (fs_comm_msg){q, in};
        none.buf = in.buf;
        recvs[nr++] = (fs_comm_msg){q, none};
    }
    fs_error err = {0};
    CHECK(tr->ops->exchange((fs_transport *)tr, sends, ns, recvs, nr, EX_TAG, (void *)dev_be, &err) == FS_OK,
          "%s", err.msg);
    for (int q = 0; q < size; q++) {
        if (q == rank)
            continue;
        buf_get(h, bufs[2 * q + 1], bytes);
        const int at = ex_recv_row(q, rank), k = ex_rows(q, rank);
        size_t bad = 0;
        for (int b = 0; b < EX_ITEMS; b++)
            for (int y = 0; y < EX_ITEM_ROWS; y++)
                for (size_t e = 0; e < EX_ROW; e++) {
                    unsigned char want = y >= at && y < at + k ? pattern(q, rank, b, y - at, e)
                                                               : 0xEE;
                    bad += h[(b * EX_ITEM_ROWS + y) * EX_ROW + e] != want;
                }
        CHECK(bad == 0, "%s exchange %d -> %d: %zu wrong bytes", mem_name(mem), q, rank, bad);
        buf_free(bufs[2 * q]);
        buf_free(bufs[2 * q + 1]);
    }
    free(sends);
    free(recvs);
    free(bufs);
    free(h);
}

/* ---------------------------------------------------------------- all-gather */

static void test_allgatherv(fs_comm_mem mem, int items)
{
    const size_t row = 20;
    int *counts = malloc(sizeof(int) * (size_t)size), *displs = malloc(sizeof(int) * (size_t)size);
    int total = 0;
    for (int r = 0; r < size; r++) {
        counts[r] = 1 + (r * 2 + 1) % 3;
        displs[r] = total;
        total += counts[r];
    }
    /* mine: rows 1.. of items of counts + 2 rows; all: rows 2.. of items of
     * total + 3 rows, so both windows have rows around them that must stay */
    const int my_item = counts[rank] + 2, all_item = total + 3;
    const size_t my_bytes = (size_t)items * my_item * row;
    const size_t all_bytes = (size_t)items * all_item * row;
    unsigned char *h = malloc(all_bytes > my_bytes ? all_bytes : my_bytes);
    for (int b = 0; b < items; b++)
        for (int y = 0; y < my_item; y++)
            for (size_t e = 0; e < row; e++)
                h[((size_t)b * my_item + y) * row + e] = pattern(rank, 0, b, y - 1, e);
    fs_rowset mine = {.buf = buf_make(mem, my_bytes), .row_bytes = row, .item_rows = my_item,
                      .items = items, .row = 1, .rows = counts[rank]};
    buf_put(mine.buf, h, my_bytes);
    fs_rowset all = {.buf = buf_make(mem, all_bytes), .row_bytes = row, .item_rows = all_item,
                     .items = items, .row = 2, .rows = total};
    memset(h, 0xEE, all_bytes);
    buf_put(all.buf, h, all_bytes);
    fs_error err = {0};
    CHECK(tr->ops->allgatherv((fs_transport *)tr, &mine, &all, counts, displs, (void *)dev_be, &err) == FS_OK,
          "%s", err.msg);
    buf_get(h, all.buf, all_bytes);
    size_t bad = 0;
    for (int b = 0; b < items; b++)
        for (int y = 0; y < all_item; y++) {
            int g = y - 2, from = -1;
            for (int r = 0; r < size; r++)
                if (g >= displs[r] && g < displs[r] + counts[r])
                    from = r;
            for (size_t e = 0; e < row; e++) {
                unsigned char want = from < 0 ? 0xEE : pattern(from, 0, b, g - displs[from], e);
                bad += h[((size_t)b * all_item + y) * row + e] != want;
            }
        }
    CHECK(bad == 0, "%s all-gather with counts, %d items: %zu wrong bytes on rank %d",
          mem_name(mem), items, bad, rank);
    buf_free(mine.buf);
    buf_free(all.buf);
    free(h);
    free(counts);
    free(displs);
}

/* ---------------------------------------------------------------- device halo, gather */

/* fs_comm_halo_buf and fs_comm_allgather_rows_buf on a device buffer: the
 * bytes and the traffic counts of the host calls. */
static void test_device_strips(int h, int n, size_t re, int top, int bot)
{
    fs_strip_plan p;
    fs_error err = {0};
    if (fs_strip_plan_make(h, size, 1, &p, &err) != FS_OK)
        return;
    const int own = fs_strip_rows(&p, rank), item = top + own + bot;
    const size_t halo_n = (size_t)n * item * re, full_n = (size_t)n * h * re;
    float *host = malloc(halo_n * sizeof(float)), *back = malloc(halo_n * sizeof(float));
    for (size_t i = 0; i < halo_n; i++)
        host[i] = (float)(rank * 100000 + (int)i);
    fs_comm_buf dev = buf_make(FS_COMM_DEVICE, halo_n * sizeof(float));
    buf_put(dev, host, halo_n * sizeof(float));
    fs_traffic th[FS_TRAFFIC_KINDS], td[FS_TRAFFIC_KINDS];
    fs_comm_traffic_reset(comm);
    CHECK(fs_comm_halo(comm, &p, host, n, re, top, bot, &err) == FS_OK, "%s", err.msg);
    fs_comm_traffic(comm, th);
    fs_comm_traffic_reset(comm);
    CHECK(fs_comm_halo_buf(comm, &p, dev, (void *)dev_be, n, re, top, bot, &err) == FS_OK, "%s", err.msg);
    fs_comm_traffic(comm, td);
    buf_get(back, dev, halo_n * sizeof(float));
    CHECK(memcmp(host, back, halo_n * sizeof(float)) == 0 &&
              memcmp(&th[FS_TRAFFIC_HALO], &td[FS_TRAFFIC_HALO], sizeof th[0]) == 0,
          "device halo h %d top %d bot %d differs from the host one", h, top, bot);
    buf_free(dev);

    float *own_rows = malloc((size_t)n * own * re * sizeof(float));
    float *full = malloc(full_n * sizeof(float)), *full_back = malloc(full_n * sizeof(float));
    for (size_t i = 0; i < (size_t)n * own * re; i++)
        own_rows[i] = (float)(rank * 7777 + (int)i);
    fs_comm_buf down = buf_make(FS_COMM_DEVICE, (size_t)n * own * re * sizeof(float));
    fs_comm_buf dfull = buf_make(FS_COMM_DEVICE, full_n * sizeof(float));
    buf_put(down, own_rows, (size_t)n * own * re * sizeof(float));
    CHECK(fs_comm_allgather_rows(comm, &p, own_rows, full, n, re, &err) == FS_OK, "%s", err.msg);
    CHECK(fs_comm_allgather_rows_buf(comm, &p, down, dfull, (void *)dev_be, n, re, &err) == FS_OK, "%s",
          err.msg);
    buf_get(full_back, dfull, full_n * sizeof(float));
    CHECK(memcmp(full, full_back, full_n * sizeof(float)) == 0,
          "device all-gather h %d differs from the host one", h);
    buf_free(down);
    buf_free(dfull);
    free(own_rows);
    free(full);
    free(full_back);
    free(host);
    free(back);
}

static void run_ops(fs_comm_mem mem)
{
    test_bcast(mem);
    test_allreduce(mem);
    test_exchange(mem);
    test_allgatherv(mem, 1);
    test_allgatherv(mem, 3);
}

static void run_device(void)
{
    run_ops(FS_COMM_DEVICE);
    test_device_strips(13, 2, 7, 1, 1);
    test_device_strips(size, 2, 3, 8, 8);  /* 1-row strips, halo 8 */
    test_device_strips(2 * size + 1, 1, 5, 3, 0);
}

int main(int argc, char **argv)
{
    fs_error err = {0};
    if (fs_comm_init(&argc, &argv, &comm, &err) != FS_OK) {
        fprintf(stderr, "mpi_transport: %s\n", err.msg);
        return 1;
    }
    rank = fs_comm_rank(comm);
    size = fs_comm_size(comm);
    tr = fs_comm_transport(comm);
    CHECK(tr && tr->rank == rank && tr->size == size && strcmp(tr->ops->name, "mpi") == 0,
          "the comm's transport");

    run_ops(FS_COMM_HOST);

    fs_backend posing = *fs_backend_cpu();
    posing.name = "cpu posing as a device";
    posing.host_memory = 0;
    dev_be = &posing;
    run_device();
    if (rank == 0) printf("mpi_transport: device buffers on %s: done\n", posing.name);

    char why[256] = "";
    fs_cuda *cu = NULL;
    if (fs_cuda_available(why, sizeof why) > 0 && fs_cuda_open(&cu, 0, 0, &err) == FS_OK) {
        fs_backend cuda = fs_backend_cuda(cu);
        dev_be = &cuda;
        run_device();
        fs_cuda_close(cu);
    } else if (rank == 0) {
        printf("mpi_transport: CUDA device buffers skipped (%s)\n", why[0] ? why : err.msg);
    }

    int counts[2] = {check_count, check_failures}, totals[2];
    MPI_Allreduce(counts, totals, 2, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (rank == 0)
        printf("mpi_transport: %d ranks, %d checks, %d failed (all ranks)\n", size, totals[0],
               totals[1]);
    fs_comm_free(comm);
    return totals[1] ? 1 : 0;
}
