/* comm/rowset.c: rows of a batch on the host or on a device, written once
 * for the layer above the transport (zeroing halo rows off the map) and for
 * transports that cannot reach device memory (staging exactly the rows they
 * move). One copy per item: the rows of an item are contiguous, items are
 * item_rows apart. Device memory is reached through the memory ops of the
 * backend that owns it (kernels.h's fs_backend, the `stream` of the call),
 * so comm knows no device API. */
#include <string.h>
#include "comm/transport.h"
#include "kernels/kernels.h"

static char *block(const fs_rowset *s, int b)
{
    return (char *)s->buf.ptr + ((uint64_t)b * (uint64_t)s->item_rows + (uint64_t)s->row) *
                                    s->row_bytes;
}

fs_code fs_rowset_zero(const fs_rowset *s, void *stream, fs_error *err)
{
    const size_t bytes = (size_t)s->rows * s->row_bytes;
    if (bytes == 0)
        return FS_OK;
    for (int b = 0; b < s->items; b++) {
        if (s->buf.mem == FS_COMM_HOST) {
            memset(block(s, b), 0, bytes);
        } else {
            const fs_backend *be = stream;
            fs_code code = be->op->zero(be, block(s, b), bytes, err);
            if (code)
                return code;
        }
    }
    return FS_OK;
}

fs_code fs_rowset_pack(const fs_rowset *s, void *host, void *stream, fs_error *err)
{
    const size_t bytes = (size_t)s->rows * s->row_bytes;
    if (bytes == 0)
        return FS_OK;
    for (int b = 0; b < s->items; b++) {
        char *to = (char *)host + (size_t)b * bytes;
        if (s->buf.mem == FS_COMM_HOST) {
            memcpy(to, block(s, b), bytes);
        } else {
            const fs_backend *be = stream;
            fs_code code = be->op->download(be, to, block(s, b), bytes, err);
            if (code)
                return code;
        }
    }
    return FS_OK;
}

fs_code fs_rowset_unpack(const fs_rowset *s, const void *host, void *stream, fs_error *err)
{
    const size_t bytes = (size_t)s->rows * s->row_bytes;
    if (bytes == 0)
        return FS_OK;
    for (int b = 0; b < s->items; b++) {
        const char *from = (const char *)host + (size_t)b * bytes;
        if (s->buf.mem == FS_COMM_HOST) {
            memcpy(block(s, b), from, bytes);
        } else {
            const fs_backend *be = stream;
            fs_code code = be->op->upload(be, block(s, b), from, bytes, err);
            if (code)
                return code;
        }
    }
    return FS_OK;
}
