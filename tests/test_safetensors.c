/* Tests for io/safetensors.c: round trips through the writer and reader
 * (F32/F16/BF16 values, metadata, unaligned data, sparse holes), and one
 * test per malformed-file case: each must fail with FS_ERR_FORMAT and a
 * message naming the file and, where there is one, the tensor. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "io/io.h"

static char tmpdir[256];

static void path_in_tmp(char *out, size_t cap, const char *name) {
    snprintf(out, cap, "%s/%s", tmpdir, name);
}

static int write_file(const char *path, const void *buf, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(buf, 1, len, f);
    return (fclose(f) == 0 && w == len) ? 0 : -1;
}

/* Writes [u64 header length][header][data_len bytes of data] to tmpdir/name.
 * header_len_override != 0 replaces the stored length (truncation cases). */
static void write_raw(const char *name, const char *header, const void *data, size_t data_len,
                      uint64_t header_len_override, char *path, size_t cap) {
    size_t hl = strlen(header);
    uint64_t stored = header_len_override ? header_len_override : hl;
    size_t len = 8 + hl + data_len;
    unsigned char *buf = calloc(1, len);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)(stored >> (8 * i));
    memcpy(buf + 8, header, hl);
    if (data) memcpy(buf + 8 + hl, data, data_len);
    path_in_tmp(path, cap, name);
    CHECK(write_file(path, buf, len) == 0, "writing %s", path);
    free(buf);
}

/* Opens tmpdir/name built from header + zeroed data; expects a FORMAT error
 * whose message names the file, the tensor (if given) and `what` (if given). */
static void expect_bad(const char *name, const char *header, size_t data_len, const char *tensor,
                       const char *what) {
    char path[512];
    unsigned char *zeros = calloc(1, data_len ? data_len : 1);
    write_raw(name, header, zeros, data_len, 0, path, sizeof path);
    free(zeros);
    fs_safetensors *st = (fs_safetensors *)1;
    fs_error err = {0};
    fs_code rc = fs_safetensors_open(path, &st, &err);
    CHECK(rc == FS_ERR_FORMAT, "%s: code %s, msg '%s'", name, fs_code_name(rc), err.msg);
    CHECK(st == NULL, "%s: out not cleared", name);
    CHECK(strstr(err.msg, path) != NULL, "%s: message lacks the path: '%s'", name, err.msg);
    if (tensor) {
        char quoted[300];
        snprintf(quoted, sizeof quoted, "'%s'", tensor);
        CHECK(strstr(err.msg, quoted) != NULL, "%s: message lacks %s: '%s'", name, quoted, err.msg);
    }
    if (getenv("FS_TEST_VERBOSE")) printf("%s\n", err.msg);
    if (what) CHECK(strstr(err.msg, what) != NULL, "%s: message lacks '%s': '%s'", name, what, err.msg);
    if (rc == FS_OK) fs_safetensors_close(st);
}

/* ---------------------------------------------------------------- round trips */

static void test_round_trip(void) {
    float a[6] = {1.0f, -2.5f, 3.25f, 0.0f, 65504.0f, -0.125f};
    uint16_t h[5], b[5];
    float hv[5] = {1.0f, -0.5f, 0.099975586f, 6.1035156e-05f, -1024.0f}; /* exact in f16 */
    float bv[5] = {1.0f, -3.0f, 1.5e30f, -2.0f, 0.0078125f};
    for (int i = 0; i < 5; i++) {
        h[i] = fs_f32_to_f16(hv[i]);
        b[i] = fs_f32_to_bf16(bv[i]);
        bv[i] = fs_bf16_to_f32(b[i]); /* 1.5e30 rounds in bf16: compare with the rounded value */
    }
    fs_st_entry e[3] = {
        {.name = "w.f32", .dtype = FS_DTYPE_F32, .ndim = 2, .shape = {2, 3}, .data = a},
        {.name = "b.f16", .dtype = FS_DTYPE_F16, .ndim = 1, .shape = {5}, .data = h},
        {.name = "a.bf16", .dtype = FS_DTYPE_BF16, .ndim = 3, .shape = {1, 5, 1}, .data = b},
    };
    const char *meta[] = {"format", "pt", "note", "round trip \"quoted\"", NULL};
    char path[512], tmp[520];
    path_in_tmp(path, sizeof path, "round.safetensors");
    fs_error err = {0};
    CHECK(fs_safetensors_write(path, e, 3, meta, &err) == FS_OK, "write: %s", err.msg);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    CHECK(access(tmp, F_OK) != 0, "temp file left behind");

    fs_safetensors *st = NULL;
    CHECK(fs_safetensors_open(path, &st, &err) == FS_OK, "open: %s", err.msg);
    if (!st) return;
    CHECK(strcmp(fs_safetensors_path(st), path) == 0, "path");
    CHECK(fs_safetensors_count(st) == 3, "count %zu", fs_safetensors_count(st));
    CHECK(strcmp(fs_safetensors_at(st, 0)->name, "a.bf16") == 0, "sorted 0");
    CHECK(strcmp(fs_safetensors_at(st, 1)->name, "b.f16") == 0, "sorted 1");
    CHECK(strcmp(fs_safetensors_at(st, 2)->name, "w.f32") == 0, "sorted 2");
    CHECK(fs_safetensors_at(st, 3) == NULL, "at past the end");
    CHECK(fs_safetensors_find(st, "nope") == NULL, "find missing");
    CHECK(strcmp(fs_safetensors_meta(st, "format"), "pt") == 0, "meta format");
    CHECK(strcmp(fs_safetensors_meta(st, "note"), "round trip \"quoted\"") == 0, "meta note");
    CHECK(fs_safetensors_meta(st, "absent") == NULL, "meta absent");

    const fs_st_tensor *t = fs_safetensors_find(st, "w.f32");
    float out[6];
    CHECK(t && t->dtype == FS_DTYPE_F32 && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 3 &&
          t->numel == 6 && t->end - t->begin == 24, "w.f32 header");
    CHECK(t && fs_safetensors_read_f32(st, t, out, &err) == FS_OK, "read f32: %s", err.msg);
    CHECK(t && memcmp(out, a, sizeof a) == 0, "f32 values");

    t = fs_safetensors_find(st, "b.f16");
    CHECK(t && t->dtype == FS_DTYPE_F16 && t->numel == 5, "b.f16 header");
    CHECK(t && fs_safetensors_read_f32(st, t, out, &err) == FS_OK, "read f16: %s", err.msg);
    for (int i = 0; t && i < 5; i++) CHECK(out[i] == hv[i], "f16[%d] %g != %g", i, out[i], hv[i]);

    t = fs_safetensors_find(st, "a.bf16");
    CHECK(t && t->dtype == FS_DTYPE_BF16 && t->ndim == 3 && t->numel == 5, "a.bf16 header");
    CHECK(t && fs_safetensors_read_f32(st, t, out, &err) == FS_OK, "read bf16: %s", err.msg);
    for (int i = 0; t && i < 5; i++) CHECK(out[i] == bv[i], "bf16[%d] %g != %g", i, out[i], bv[i]);
    fs_safetensors_close(st);

    /* The same bytes through fs_safetensors_parse. */
    FILE *f = fopen(path, "rb");
    unsigned char buf[4096];
    size_t n = f ? fread(buf, 1, sizeof buf, f) : 0;
    if (f) fclose(f);
    CHECK(fs_safetensors_parse(buf, n, "membuf", &st, &err) == FS_OK, "parse: %s", err.msg);
    if (st) {
        CHECK(strcmp(fs_safetensors_path(st), "membuf") == 0, "label");
        CHECK(fs_safetensors_count(st) == 3, "parse count");
        fs_safetensors_close(st);
    }
}

/* No metadata, a scalar, a zero-element tensor, and a non-float dtype. */
static void test_edge_tensors(void) {
    float s = 7.5f;
    int64_t ids[2] = {5, -6};
    fs_st_entry e[3] = {
        {.name = "scalar", .dtype = FS_DTYPE_F32, .ndim = 0, .data = &s},
        {.name = "empty", .dtype = FS_DTYPE_F16, .ndim = 2, .shape = {0, 4}, .data = NULL},
        {.name = "ids", .dtype = FS_DTYPE_I64, .ndim = 1, .shape = {2}, .data = ids},
    };
    char path[512];
    path_in_tmp(path, sizeof path, "edge.safetensors");
    fs_error err = {0};
    CHECK(fs_safetensors_write(path, e, 3, NULL, &err) == FS_OK, "write: %s", err.msg);
    fs_safetensors *st = NULL;
    CHECK(fs_safetensors_open(path, &st, &err) == FS_OK, "open: %s", err.msg);
    if (!st) return;
    CHECK(fs_safetensors_meta(st, "format") == NULL, "no metadata");
    const fs_st_tensor *t = fs_safetensors_find(st, "scalar");
    float out[4] = {0};
    CHECK(t && t->ndim == 0 && t->numel == 1, "scalar header");
    CHECK(t && fs_safetensors_read_f32(st, t, out, &err) == FS_OK && out[0] == 7.5f, "scalar value");
    t = fs_safetensors_find(st, "empty");
    CHECK(t && t->numel == 0 && t->begin == t->end, "empty header");
    CHECK(t && fs_safetensors_read_f32(st, t, NULL, &err) == FS_OK, "empty read: %s", err.msg);
    t = fs_safetensors_find(st, "ids");
    int64_t back[2];
    CHECK(t && t->dtype == FS_DTYPE_I64, "ids dtype");
    if (t) memcpy(back, t->data, sizeof back);
    CHECK(t && back[0] == 5 && back[1] == -6, "ids raw bytes");
    fs_code rc = t ? fs_safetensors_read_f32(st, t, out, &err) : FS_OK;
    CHECK(rc == FS_ERR_UNSUPPORTED, "I64 to f32: %s", fs_code_name(rc));
    CHECK(strstr(err.msg, path) && strstr(err.msg, "'ids'"), "I64 message: %s", err.msg);
    fs_safetensors_close(st);
}

/* A tensor at an odd offset, in a header of odd length: the data pointer is
 * unaligned and must still read correctly (memcpy, never a cast). */
static void test_unaligned(void) {
    float v[3] = {1.5f, -2.0f, 1e-3f};
    uint16_t hv[2] = {fs_f32_to_f16(0.5f), fs_f32_to_f16(-4.0f)};
    unsigned char data[1 + 12 + 4];
    data[0] = 0xAB; /* one-byte U8 tensor puts the next at offset 1 */
    memcpy(data + 1, v, 12);
    memcpy(data + 13, hv, 4);
    char header[256];
    snprintf(header, sizeof header, "%s",
             "{\"u\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
             "\"f\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[1,13]},"
             "\"h\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[13,17]}}");
    /* Trailing spaces (allowed in the header) until "f" starts off a 4-byte boundary. */
    while ((8 + strlen(header) + 1) % 4 == 0) strcat(header, " ");
    char path[512];
    write_raw("unaligned.safetensors", header, data, sizeof data, 0, path, sizeof path);
    fs_safetensors *st = NULL;
    fs_error err = {0};
    CHECK(fs_safetensors_open(path, &st, &err) == FS_OK, "open: %s", err.msg);
    if (!st) return;
    const fs_st_tensor *f = fs_safetensors_find(st, "f"), *h = fs_safetensors_find(st, "h");
    CHECK(f && ((uintptr_t)f->data & 3) != 0, "f is expected unaligned");
    float out[3] = {0};
    CHECK(f && fs_safetensors_read_f32(st, f, out, &err) == FS_OK, "read: %s", err.msg);
    CHECK(memcmp(out, v, 12) == 0, "unaligned f32 values");
    CHECK(h && fs_safetensors_read_f32(st, h, out, &err) == FS_OK, "read: %s", err.msg);
    CHECK(out[0] == 0.5f && out[1] == -4.0f, "unaligned f16 values %g %g", out[0], out[1]);
    fs_safetensors_close(st);
}

/* NULL data leaves holes: a 64 MiB tensor must cost (almost) no blocks and
 * read back as zeros; a tensor written after the hole keeps its values. */
static void test_sparse(void) {
    float tail[4] = {1, 2, 3, 4};
    fs_st_entry e[3] = {
        {.name = "hole", .dtype = FS_DTYPE_F32, .ndim = 2, .shape = {4096, 4096}, .data = NULL},
        {.name = "tail", .dtype = FS_DTYPE_F32, .ndim = 1, .shape = {4}, .data = tail},
        {.name = "hole2", .dtype = FS_DTYPE_BF16, .ndim = 1, .shape = {1 << 20}, .data = NULL},
    };
    char path[512];
    path_in_tmp(path, sizeof path, "sparse.safetensors");
    fs_error err = {0};
    CHECK(fs_safetensors_write(path, e, 3, NULL, &err) == FS_OK, "write: %s", err.msg);
    struct stat sb;
    CHECK(stat(path, &sb) == 0, "stat");
    long long expect_min = 4096LL * 4096 * 4 + 16 + (2 << 20);
    CHECK(sb.st_size >= expect_min, "size %lld", (long long)sb.st_size);
    CHECK((long long)sb.st_blocks * 512 < (1 << 20), "not sparse: %lld bytes allocated",
          (long long)sb.st_blocks * 512);
    fs_safetensors *st = NULL;
    CHECK(fs_safetensors_open(path, &st, &err) == FS_OK, "open: %s", err.msg);
    if (!st) return;
    float out[4];
    const fs_st_tensor *t = fs_safetensors_find(st, "tail");
    CHECK(t && fs_safetensors_read_f32(st, t, out, &err) == FS_OK && memcmp(out, tail, 16) == 0,
          "tail values");
    t = fs_safetensors_find(st, "hole2");
    float *big = malloc((1 << 20) * sizeof *big);
    CHECK(t && fs_safetensors_read_f32(st, t, big, &err) == FS_OK, "hole2 read");
    int zeros = 1;
    for (int i = 0; i < (1 << 20); i++) zeros &= big[i] == 0.0f;
    CHECK(zeros, "hole reads as zeros");
    free(big);
    fs_safetensors_close(st);
}

/* The writer refuses bad input and leaves an existing file alone. */
static void test_writer_errors(void) {
    float x = 1;
    char path[512];
    path_in_tmp(path, sizeof path, "keep.safetensors");
    fs_st_entry good = {.name = "x", .dtype = FS_DTYPE_F32, .ndim = 1, .shape = {1}, .data = &x};
    fs_error err = {0};
    CHECK(fs_safetensors_write(path, &good, 1, NULL, &err) == FS_OK, "write: %s", err.msg);
    fs_st_entry dup[2] = {good, good};
    CHECK(fs_safetensors_write(path, dup, 2, NULL, &err) == FS_ERR_INVALID, "duplicate accepted");
    CHECK(strstr(err.msg, "'x'") != NULL, "duplicate message: %s", err.msg);
    fs_st_entry neg = {.name = "n", .dtype = FS_DTYPE_F32, .ndim = 1, .shape = {-1}};
    CHECK(fs_safetensors_write(path, &neg, 1, NULL, &err) == FS_ERR_INVALID, "negative accepted");
    fs_safetensors *st = NULL;
    CHECK(fs_safetensors_open(path, &st, &err) == FS_OK && fs_safetensors_count(st) == 1,
          "good file replaced: %s", err.msg);
    fs_safetensors_close(st);
    CHECK(fs_safetensors_write("/nonexistent-dir/x.safetensors", &good, 1, NULL, &err) == FS_ERR_IO,
          "write into a missing folder");
    CHECK(fs_safetensors_open("/nonexistent-dir/x.safetensors", &st, &err) == FS_ERR_IO,
          "open a missing file");
    CHECK(fs_safetensors_open(tmpdir, &st, &err) == FS_ERR_IO, "open a folder");
}

/* ---------------------------------------------------------------- malformed files */

#define T1_BODY "\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}"
#define T1 "{" T1_BODY

static void test_bad_short_file(void) {
    char path[512];
    path_in_tmp(path, sizeof path, "short.safetensors");
    CHECK(write_file(path, "\x05\0\0", 3) == 0, "write");
    fs_safetensors *st = NULL;
    fs_error err = {0};
    CHECK(fs_safetensors_open(path, &st, &err) == FS_ERR_FORMAT, "short file accepted");
    CHECK(strstr(err.msg, path) && strstr(err.msg, "truncated"), "msg: %s", err.msg);
    /* An empty file cannot be mapped: still a format error, not a crash. */
    path_in_tmp(path, sizeof path, "empty.safetensors");
    CHECK(write_file(path, "", 0) == 0, "write");
    CHECK(fs_safetensors_open(path, &st, &err) == FS_ERR_FORMAT, "empty file accepted");
    CHECK(strstr(err.msg, path) && strstr(err.msg, "truncated"), "msg: %s", err.msg);
}

static void test_bad_header_past_end(void) {
    char path[512];
    write_raw("past_end.safetensors", T1, NULL, 8, strlen(T1) + 9, path, sizeof path);
    fs_safetensors *st = NULL;
    fs_error err = {0};
    CHECK(fs_safetensors_open(path, &st, &err) == FS_ERR_FORMAT, "header past end accepted");
    CHECK(strstr(err.msg, path) && strstr(err.msg, "truncated"), "msg: %s", err.msg);
}

static void test_bad_header_too_big(void) {
    char path[512];
    write_raw("huge.safetensors", T1, NULL, 8, (uint64_t)1 << 63, path, sizeof path);
    fs_safetensors *st = NULL;
    fs_error err = {0};
    CHECK(fs_safetensors_open(path, &st, &err) == FS_ERR_FORMAT, "2^63 header accepted");
    CHECK(strstr(err.msg, path) && strstr(err.msg, "limit"), "msg: %s", err.msg);
    write_raw("huge2.safetensors", T1, NULL, 8, FS_ST_MAX_HEADER + 1ull, path, sizeof path);
    CHECK(fs_safetensors_open(path, &st, &err) == FS_ERR_FORMAT, "100MB+1 header accepted");
    CHECK(strstr(err.msg, path) && strstr(err.msg, "limit"), "msg: %s", err.msg);
}

static void test_bad_not_json(void) {
    expect_bad("not_json.safetensors", "{\"t\": {\"dtype\": \"F32\", ", 0, NULL, "not valid JSON");
    expect_bad("not_json2.safetensors", "hello", 0, NULL, "not valid JSON");
}

static void test_bad_not_object(void) {
    expect_bad("not_object.safetensors", "[1, 2, 3]", 0, NULL, "not a JSON object");
}

static void test_bad_entry_not_object(void) {
    expect_bad("entry.safetensors", "{\"w\": [1, 2]}", 0, "w", "not a JSON object");
}

static void test_bad_unknown_dtype(void) {
    expect_bad("dtype.safetensors", "{\"w\":{\"dtype\":\"F17\",\"shape\":[1],\"data_offsets\":[0,4]}}",
               4, "w", "unknown dtype 'F17'");
    expect_bad("dtype2.safetensors", "{\"w\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}",
               4, "w", "dtype");
}

static void test_bad_missing_dtype(void) {
    expect_bad("no_dtype.safetensors", "{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "w",
               "missing field \"dtype\"");
}

static void test_bad_missing_shape(void) {
    expect_bad("no_shape.safetensors", "{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, "w",
               "missing field \"shape\"");
}

static void test_bad_missing_offsets(void) {
    expect_bad("no_offsets.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "w",
               "missing field \"data_offsets\"");
    expect_bad("offsets_len.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}",
               4, "w", "data_offsets");
    expect_bad("offsets_neg.safetensors",
               "{\"w\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[-4,-4]}}", 4, "w", "negative");
    expect_bad("offsets_big.safetensors",
               "{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,18446744073709551615]}}",
               4, NULL, "not valid JSON");
}

static void test_bad_negative_shape(void) {
    expect_bad("neg_shape.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,-1],\"data_offsets\":[0,4]}}",
               4, "w", "shape[1] is negative");
}

static void test_bad_noninteger_shape(void) {
    expect_bad("float_shape.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}",
               4, "w", "shape[0] is not an integer");
    expect_bad("str_shape.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[\"1\"],\"data_offsets\":[0,4]}}",
               4, "w", "shape[0] is not an integer");
    expect_bad("obj_shape.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":{},\"data_offsets\":[0,4]}}",
               4, "w", "not an array");
}

static void test_bad_shape_overflow(void) {
    /* (2^32)^2 = 2^64 overflows the element count. */
    expect_bad("overflow.safetensors",
               "{\"w\":{\"dtype\":\"U8\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,0]}}",
               0, "w", "overflows");
    /* 2^62 elements fit, but 2^62 * 4 bytes do not. */
    expect_bad("overflow2.safetensors",
               "{\"w\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904],\"data_offsets\":[0,0]}}",
               0, "w", "overflows");
}

static void test_bad_size_mismatch(void) {
    expect_bad("mismatch.safetensors", "{\"w\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[0,8]}}",
               8, "w", "need 6 bytes");
}

static void test_bad_begin_after_end(void) {
    expect_bad("begin_end.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}",
               8, "w", "begin 8 > end 4");
}

static void test_bad_range_past_end(void) {
    expect_bad("range.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
               8, "w", "past the end of the data section");
}

static void test_bad_overlap(void) {
    expect_bad("overlap.safetensors",
               "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
               "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
               12, "a", "overlap");
    /* b lies entirely inside a (sorting by begin alone must still catch it). */
    expect_bad("overlap2.safetensors",
               "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
               "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]},"
               "\"c\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
               16, "b", "overlap");
}

static void test_bad_duplicate(void) {
    const char *longname = "model.diffusion_model.input_blocks.1.0.in_layers.0.weight";
    char header[512];
    snprintf(header, sizeof header,
             "{\"%s\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
             "\"%s\" :{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
             longname, longname);
    expect_bad("dup.safetensors", header, 8, longname, "duplicate tensor name");
    expect_bad("dup_esc.safetensors",
               "{\"a\\\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
               "\"a\\u0022b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
               8, "a\"b", "duplicate tensor name");
    expect_bad("dup_field.safetensors",
               "{\"w\":{\"dtype\":\"F32\",\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[0,4]}}",
               4, "w", "duplicate key 'dtype'");
}

static void test_bad_too_many_dims(void) {
    expect_bad("dims.safetensors",
               "{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}",
               4, "w", "too many dimensions");
}

static void test_bad_metadata(void) {
    expect_bad("meta.safetensors", "{\"__metadata__\": [\"a\"], " T1_BODY, 8, NULL,
               "__metadata__ is not a JSON object");
    expect_bad("meta2.safetensors", "{\"__metadata__\": {\"k\": 3}, " T1_BODY, 8, "k",
               "not a string");
}

int main(void) {
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/fs_test_st_XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_round_trip();
    test_edge_tensors();
    test_unaligned();
    test_sparse();
    test_writer_errors();
    test_bad_short_file();
    test_bad_header_past_end();
    test_bad_header_too_big();
    test_bad_not_json();
    test_bad_not_object();
    test_bad_entry_not_object();
    test_bad_unknown_dtype();
    test_bad_missing_dtype();
    test_bad_missing_shape();
    test_bad_missing_offsets();
    test_bad_negative_shape();
    test_bad_noninteger_shape();
    test_bad_shape_overflow();
    test_bad_size_mismatch();
    test_bad_begin_after_end();
    test_bad_range_past_end();
    test_bad_overlap();
    test_bad_duplicate();
    test_bad_too_many_dims();
    test_bad_metadata();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return check_report("test_safetensors");
}
