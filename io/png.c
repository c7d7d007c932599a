/* io/png.c: PNG files with libpng 1.6. A streaming writer (rows go straight
 * to libpng, the file is a temporary renamed into place at the end), readers
 * from a file or a buffer that turn any PNG into 8-bit RGB or grey, the text
 * chunks, and diffusers' float <-> u8 image conversions.
 *
 * libpng reports errors by longjmp. Every entry point here that calls libpng
 * sets its own setjmp first and turns the jump into an fs_error (the custom
 * error function copies libpng's message); no jump ever leaves this file.
 * Locals changed between setjmp and a possible longjmp are volatile. */
#include <errno.h>
#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/io.h"

/* zlib level: 6 is zlib's and PIL's default; level 9 costs ~3x the time for a
 * few percent on photographic content, and images here can be gigapixels. */
#define PNG_ZLIB_LEVEL 6
/* Ancillary chunks (text, ICC profiles) may not make libpng allocate more
 * than this, decompressed: a zTXt bomb is refused, not inflated. */
#define PNG_CHUNK_MAX (8u << 20)
#define PNG_DIM_MAX 0x7fffffffu   /* the PNG format's own limit (writer) */
/* Readers refuse a side over 2^24 whatever max_pixels says: libpng allocates
 * and clears its row buffers from IHDR alone, and one row of a 2^31-wide
 * RGBA16 image is 16 GB, claimed by a 60-byte file. */
#define PNG_READ_SIDE_MAX (1u << 24)

typedef struct png_err_ctx {
    char msg[512];
    char warning[256];   /* the last warning: libpng often says why in one
                          * ("Image width is zero in IHDR") before failing
                          * with a general error ("Invalid IHDR data") */
} png_err_ctx;

static void on_png_error(png_structp png, png_const_charp msg) {
    png_err_ctx *c = png_get_error_ptr(png);
    if (c) {
        const char *m = msg && *msg ? msg : "unknown libpng error";
        if (c->warning[0]) snprintf(c->msg, sizeof c->msg, "%s; libpng warned: %s", m, c->warning);
        else snprintf(c->msg, sizeof c->msg, "%s", m);
    }
    png_longjmp(png, 1);
}

static void on_png_warning(png_structp png, png_const_charp msg) {
    png_err_ctx *c = png_get_error_ptr(png);
    if (c) snprintf(c->warning, sizeof c->warning, "%s", msg ? msg : "");
    fs_log(FS_LOG_DEBUG, "libpng: %s", msg ? msg : "");
}

/* ---------------------------------------------------------------- text encodings
 * tEXt/zTXt hold Latin-1, iTXt UTF-8; the API speaks UTF-8. */

/* UTF-8 -> Latin-1 into out (strlen(s) + 1 bytes). Returns 1 when every
 * code point is <= U+00FF, 0 when some is above, -1 for malformed UTF-8. */
static int utf8_to_latin1(const char *s, char *out) {
    const unsigned char *p = (const unsigned char *)s;
    int latin1 = 1;
    size_t o = 0;
    while (*p) {
        uint32_t cp;
        int extra;
        if (p[0] < 0x80) { cp = p[0]; extra = 0; }
        else if ((p[0] & 0xE0) == 0xC0) { cp = p[0] & 0x1F; extra = 1; }
        else if ((p[0] & 0xF0) == 0xE0) { cp = p[0] & 0x0F; extra = 2; }
        else if ((p[0] & 0xF8) == 0xF0) { cp = p[0] & 0x07; extra = 3; }
        else return -1;
        for (int k = 1; k <= extra; k++) {
            if ((p[k] & 0xC0) != 0x80) return -1;
            cp = cp << 6 | (p[k] & 0x3F);
        }
        /* overlong forms, surrogates, past U+10FFFF */
        static const uint32_t min_cp[4] = {0, 0x80, 0x800, 0x10000};
        if (cp < min_cp[extra] || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) return -1;
        if (cp > 0xFF) latin1 = 0;
        else out[o++] = (char)cp;
        p += extra + 1;
    }
    out[o] = 0;
    return latin1;
}

/* Latin-1 -> UTF-8, malloc'ed (NULL when out of memory). */
static char *latin1_to_utf8(const char *s) {
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) n += *p < 0x80 ? 1 : 2;
    char *out = malloc(n + 1), *o = out;
    if (!out) return NULL;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x80) *o++ = (char)*p;
        else { *o++ = (char)(0xC0 | *p >> 6); *o++ = (char)(0x80 | (*p & 0x3F)); }
    }
    *o = 0;
    return out;
}

/* ---------------------------------------------------------------- writer */
struct fs_png_writer {
    png_structp png;
    png_infop info;
    FILE *fp;
    char *path, *tmp;
    int width, height, channels, rows_done;
    int failed;          /* a call failed: the temporary is already gone */
    png_err_ctx ctx;
};

/* Closes and removes the temporary file and drops libpng's state; the
 * struct itself stays for fs_png_abort. */
static void writer_drop(fs_png_writer *w) {
    if (w->png) png_destroy_write_struct(&w->png, &w->info);
    w->png = NULL;
    w->info = NULL;
    if (w->fp) fclose(w->fp);
    w->fp = NULL;
    if (w->tmp) unlink(w->tmp);
    w->failed = 1;
}

void fs_png_abort(fs_png_writer *w) {
    if (!w) return;
    if (!w->failed) writer_drop(w);
    free(w->path);
    free(w->tmp);
    free(w);
}

/* PNG keywords: 1..79 Latin-1 characters, printable (32..126, 161..255), no
 * leading, trailing or doubled spaces (PNG spec 11.3.4.2). */
static int keyword_ok(const char *k) {
    size_t n = strlen(k);
    if (n < 1 || n > 79 || k[0] == ' ' || k[n - 1] == ' ') return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)k[i];
        if (!((c >= 32 && c <= 126) || c >= 161)) return 0;
        if (c == ' ' && k[i + 1] == ' ') return 0;
    }
    return 1;
}

/* Builds libpng's text array from key, value, ..., NULL. Keys and values
 * arrive as UTF-8: a value whose code points all fit Latin-1 goes in a tEXt
 * chunk (as PIL writes "parameters"), any other in an uncompressed iTXt.
 * *store holds the converted strings; free it and *texts after use. */
static fs_code build_texts(const char *path, const char *const *kv, png_text **texts, int *count,
                           char **store, fs_error *err) {
    *texts = NULL;
    *count = 0;
    *store = NULL;
    if (!kv) return FS_OK;
    size_t n = 0, bytes = 0;
    for (; kv[2 * n]; n++) {
        if (!kv[2 * n + 1])
            return fs_fail(err, FS_ERR_INVALID, "%s: text key '%.80s' has no value", path, kv[2 * n]);
        bytes += strlen(kv[2 * n]) + strlen(kv[2 * n + 1]) + 2;
    }
    if (n == 0) return FS_OK;
    if (n > 4096) return fs_fail(err, FS_ERR_INVALID, "%s: %zu text chunks (at most 4096)", path, n);
    png_text *t = calloc(n, sizeof *t);
    char *buf = malloc(bytes), *p = buf;
    if (!t || !buf) {
        free(t);
        free(buf);
        return fs_fail(err, FS_ERR_NOMEM, "%s: out of memory for text chunks", path);
    }
    for (size_t i = 0; i < n; i++) {
        const char *key = kv[2 * i], *val = kv[2 * i + 1];
        char *k = p;
        p += strlen(key) + 1;
        if (utf8_to_latin1(key, k) != 1 || !keyword_ok(k)) {
            free(t);
            free(buf);
            return fs_fail(err, FS_ERR_INVALID,
                           "%s: text key '%.80s' is not a PNG keyword (1-79 Latin-1 printable "
                           "characters, no leading, trailing or double spaces)", path, key);
        }
        char *v = p;
        p += strlen(val) + 1;
        int latin1 = utf8_to_latin1(val, v);
        if (latin1 < 0) {
            free(t);
            free(buf);
            return fs_fail(err, FS_ERR_INVALID, "%s: text value of '%.80s' is not valid UTF-8", path, key);
        }
        t[i].key = k;
        if (latin1) {
            t[i].compression = PNG_TEXT_COMPRESSION_NONE;
            t[i].text = v;
            t[i].text_length = strlen(v);
        } else {
            t[i].compression = PNG_ITXT_COMPRESSION_NONE;
            t[i].text = (char *)val;  /* libpng copies it */
            t[i].itxt_length = strlen(val);
        }
    }
    *texts = t;
    *count = (int)n;
    *store = buf;
    return FS_OK;
}

fs_code fs_png_create(const char *path, int width, int height, int channels,
                      const char *const *text_kv, fs_png_writer **out, fs_error *err) {
    if (out) *out = NULL;
    if (!path || !out) return fs_fail(err, FS_ERR_INVALID, "png: no path or no output");
    if (width <= 0 || height <= 0)
        return fs_fail(err, FS_ERR_INVALID, "%s: image size %d x %d", path, width, height);
    if (channels != 1 && channels != 3)
        return fs_fail(err, FS_ERR_INVALID, "%s: %d channels (1 = grey or 3 = RGB)", path, channels);
    png_text *texts;
    int ntext;
    char *store;
    fs_code rc = build_texts(path, text_kv, &texts, &ntext, &store, err);
    if (rc != FS_OK) return rc;

    fs_png_writer *w = calloc(1, sizeof *w);
    size_t plen = strlen(path);
    if (w) w->path = strdup(path);
    if (w) w->tmp = malloc(plen + 32);
    if (!w || !w->path || !w->tmp) {
        fs_png_abort(w);
        free(texts);
        free(store);
        return fs_fail(err, FS_ERR_NOMEM, "%s: out of memory", path);
    }
    /* .tmp.<pid>: two processes writing the same path never share a temporary */
    snprintf(w->tmp, plen + 32, "%s.tmp.%ld", path, (long)getpid());
    w->width = width;
    w->height = height;
    w->channels = channels;
    w->fp = fopen(w->tmp, "wb");
    if (!w->fp) {
        int e = errno;
        free(w->tmp);
        w->tmp = NULL;  /* nothing of ours to remove */
        fs_png_abort(w);
        free(texts);
        free(store);
        return fs_fail(err, FS_ERR_IO, "%s: cannot create the image: %s", path, strerror(e));
    }
    w->png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &w->ctx, on_png_error, on_png_warning);
    if (w->png) w->info = png_create_info_struct(w->png);
    if (!w->png || !w->info) {
        fs_png_abort(w);
        free(texts);
        free(store);
        return fs_fail(err, FS_ERR_NOMEM, "%s: cannot create libpng's writer", path);
    }
    if (setjmp(png_jmpbuf(w->png))) {
        free(texts);
        free(store);
        rc = fs_fail(err, FS_ERR_IO, "%s: %s", path, w->ctx.msg);
        fs_png_abort(w);
        return rc;
    }
    png_init_io(w->png, w->fp);
    /* the defaults cap width and height at 1e6; a farm's image may be wider */
    png_set_user_limits(w->png, PNG_DIM_MAX, PNG_DIM_MAX);
    png_set_IHDR(w->png, w->info, (png_uint_32)width, (png_uint_32)height, 8,
                 channels == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_set_compression_level(w->png, PNG_ZLIB_LEVEL);
    if (ntext > 0) png_set_text(w->png, w->info, texts, ntext);
    png_write_info(w->png, w->info);   /* the text chunks go before IDAT */
    free(texts);
    free(store);
    *out = w;
    return FS_OK;
}

fs_code fs_png_write_rows(fs_png_writer *w, const uint8_t *rows, int count, fs_error *err) {
    if (!w) return fs_fail(err, FS_ERR_INVALID, "png: no writer");
    if (w->failed) return fs_fail(err, FS_ERR_INVALID, "%s: the writer failed earlier", w->path);
    if (count < 0 || count > w->height - w->rows_done)
        return fs_fail(err, FS_ERR_RANGE, "%s: %d more rows after %d of %d", w->path, count, w->rows_done,
                       w->height);
    if (count > 0 && !rows) return fs_fail(err, FS_ERR_INVALID, "%s: no row data", w->path);
    if (setjmp(png_jmpbuf(w->png))) {
        fs_code rc = fs_fail(err, FS_ERR_IO, "%s: writing row %d: %s", w->path, w->rows_done, w->ctx.msg);
        writer_drop(w);
        return rc;
    }
    const size_t stride = (size_t)w->width * (size_t)w->channels;
    for (int i = 0; i < count; i++) {
        png_write_row(w->png, rows + (size_t)i * stride);
        w->rows_done++;
    }
    return FS_OK;
}

fs_code fs_png_finish(fs_png_writer *w, fs_error *err) {
    if (!w) return fs_fail(err, FS_ERR_INVALID, "png: no writer");
    if (w->failed) return fs_fail(err, FS_ERR_INVALID, "%s: the writer failed earlier", w->path);
    fs_code rc;
    if (w->rows_done != w->height) {
        rc = fs_fail(err, FS_ERR_INVALID, "%s: finished after %d of %d rows", w->path, w->rows_done, w->height);
        writer_drop(w);
        return rc;
    }
    if (setjmp(png_jmpbuf(w->png))) {
        rc = fs_fail(err, FS_ERR_IO, "%s: %s", w->path, w->ctx.msg);
        writer_drop(w);
        return rc;
    }
    png_write_end(w->png, NULL);
    png_destroy_write_struct(&w->png, &w->info);
    w->png = NULL;
    /* flush and fsync before the rename: a crash never leaves a renamed but
     * incomplete image in place of a good one */
    FILE *fp = w->fp;
    w->fp = NULL;
    int bad = fflush(fp) != 0 || fsync(fileno(fp)) != 0;
    int e = errno;
    if (fclose(fp) != 0 && !bad) { bad = 1; e = errno; }
    if (bad) {
        rc = fs_fail(err, FS_ERR_IO, "%s: writing %s failed: %s", w->path, w->tmp, strerror(e));
        writer_drop(w);
        return rc;
    }
    if (rename(w->tmp, w->path) != 0) {
        e = errno;
        rc = fs_fail(err, FS_ERR_IO, "%s: cannot rename %s into place: %s", w->path, w->tmp, strerror(e));
        writer_drop(w);
        return rc;
    }
    free(w->tmp);
    w->tmp = NULL;
    w->failed = 1;   /* nothing left to drop */
    fs_png_abort(w);
    return FS_OK;
}

/* ---------------------------------------------------------------- float <-> u8 */
void fs_image_to_u8(const float *x, size_t n, uint8_t *out) {
    /* diffusers: (x * 0.5 + 0.5).clamp(0, 1) in torch float32, then numpy
     * (images * 255).round().astype("uint8"): float32 ops, round half to
     * even (rintf in the default rounding mode). x * 0.5f is x / 2 exactly.
     * NaN becomes 0 (numpy's cast of NaN is undefined; 0 on x86-64). */
    for (size_t i = 0; i < n; i++) {
        float v = x[i] * 0.5f + 0.5f;
        if (!(v > 0.0f)) v = 0.0f;   /* also NaN */
        if (v > 1.0f) v = 1.0f;
        out[i] = (uint8_t)rintf(v * 255.0f);
    }
}

void fs_image_from_u8(const uint8_t *u8, size_t n, float *out) {
    /* diffusers: np.array(image).astype(np.float32) / 255.0, then
     * 2.0 * images - 1.0, each a float32 op */
    for (size_t i = 0; i < n; i++) out[i] = 2.0f * ((float)u8[i] / 255.0f) - 1.0f;
}

/* ---------------------------------------------------------------- readers */
typedef struct png_src {
    FILE *fp;                 /* a file, or */
    const uint8_t *buf;       /* a buffer */
    size_t len, pos;
} png_src;

/* Replaces libpng's fread-based reader so a short file says "truncated"
 * rather than "Read Error". */
static void src_read(png_structp png, png_bytep out, size_t n) {
    png_src *s = png_get_io_ptr(png);
    if (s->fp) {
        size_t got = fread(out, 1, n, s->fp);
        if (got != n) {
            if (ferror(s->fp)) png_error(png, "read error");
            png_error(png, "unexpected end of file (truncated)");
        }
        return;
    }
    if (n > s->len - s->pos) png_error(png, "unexpected end of data (truncated)");
    memcpy(out, s->buf + s->pos, n);
    s->pos += n;
}

/* Reads the 8 signature bytes; 0 when they are PNG's, -1 when not, -2 when
 * the file cannot be read (errno set). */
static int src_signature(png_src *s) {
    uint8_t sig[8];
    if (s->fp) {
        if (fread(sig, 1, 8, s->fp) != 8) return ferror(s->fp) ? -2 : -1;
    } else {
        if (s->len < 8) return -1;
        memcpy(sig, s->buf, 8);
        s->pos = 8;
    }
    return png_sig_cmp(sig, 0, 8) != 0 ? -1 : 0;
}

/* Walks the chunk headers (from byte 8 up to IEND) before libpng sees them:
 * every chunk must fit in what is left of the input. libpng 1.6.39 treats an
 * oversized length as a benign error (a warning on read) and still mallocs
 * the claimed length for text chunks: 51 bytes that claim a 1.7 GB iTXt would
 * cost 1.7 GB (found by fuzz_png). With this check no chunk buffer exceeds
 * the input's own size. */
static fs_code src_prescan(png_src *s, const char *label, fs_error *err) {
    uint64_t total;
    if (s->fp) {
        struct stat stt;
        if (fstat(fileno(s->fp), &stt) != 0)
            return fs_fail(err, FS_ERR_IO, "%s: cannot stat: %s", label, strerror(errno));
        total = (uint64_t)stt.st_size;
    } else {
        total = s->len;
    }
    uint64_t pos = 8;
    fs_code rc = FS_OK;
    while (pos + 8 <= total) {
        uint8_t h[8];
        if (s->fp) {
            if (fseeko(s->fp, (off_t)pos, SEEK_SET) != 0 || fread(h, 1, 8, s->fp) != 8) {
                rc = fs_fail(err, FS_ERR_IO, "%s: cannot read the chunk at byte %llu", label,
                             (unsigned long long)pos);
                break;
            }
        } else {
            memcpy(h, s->buf + pos, 8);
        }
        uint64_t n = (uint64_t)h[0] << 24 | (uint64_t)h[1] << 16 | (uint64_t)h[2] << 8 | h[3];
        if (n > total - pos - 8 || total - pos - 8 - n < 4) {
            char type[5];
            for (int k = 0; k < 4; k++) type[k] = (h[4 + k] >= 32 && h[4 + k] < 127) ? (char)h[4 + k] : '?';
            type[4] = 0;
            rc = fs_fail(err, FS_ERR_FORMAT,
                         "%s: chunk '%s' at byte %llu claims %llu bytes, past the end of the data "
                         "(truncated or corrupt)", label, type, (unsigned long long)pos, (unsigned long long)n);
            break;
        }
        pos += 12 + n;
        if (memcmp(h + 4, "IEND", 4) == 0) break;
    }
    if (s->fp && fseeko(s->fp, 8, SEEK_SET) != 0 && rc == FS_OK)
        rc = fs_fail(err, FS_ERR_IO, "%s: cannot seek: %s", label, strerror(errno));
    return rc;
}

static png_structp reader_new(png_err_ctx *ctx, png_infop *info, png_infop *end_info) {
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, ctx, on_png_error, on_png_warning);
    if (!png) return NULL;
    *info = png_create_info_struct(png);
    if (end_info) *end_info = *info ? png_create_info_struct(png) : NULL;
    if (!*info || (end_info && !*end_info)) {
        png_destroy_read_struct(&png, info, end_info);
        return NULL;
    }
    png_set_chunk_malloc_max(png, PNG_CHUNK_MAX);
    png_set_chunk_cache_max(png, 1000);
    return png;
}

/* The decoding proper: png is fresh, the signature consumed. */
static fs_code decode(png_structp png, png_infop info, png_err_ctx *ctx, const char *label, int channels,
                      uint64_t max_pixels, uint8_t **pixels, int *width, int *height, fs_error *err) {
    uint8_t *volatile buf = NULL;
    png_bytep *volatile rows = NULL;
    const volatile uint64_t limit = max_pixels ? max_pixels : (uint64_t)1 << 31;
    if (setjmp(png_jmpbuf(png))) {
        free(buf);
        free(rows);
        /* libpng's own width/height limits are the pixel limit too */
        fs_code code = strstr(ctx->msg, "user limit") ? FS_ERR_RANGE : FS_ERR_FORMAT;
        return fs_fail(err, code, "%s: %s", label, ctx->msg);
    }
    png_set_sig_bytes(png, 8);
    png_uint_32 lim = limit < PNG_READ_SIDE_MAX ? (png_uint_32)limit : PNG_READ_SIDE_MAX;
    png_set_user_limits(png, lim, lim);
    png_read_info(png, info);
    png_uint_32 w, h;
    int depth, color, interlace;
    png_get_IHDR(png, info, &w, &h, &depth, &color, &interlace, NULL, NULL);
    /* before any allocation: the IHDR alone says how big the result is */
    if ((uint64_t)w * h > limit)
        return fs_fail(err, FS_ERR_RANGE, "%s: %u x %u = %llu pixels, over the limit of %llu", label, w, h,
                       (unsigned long long)((uint64_t)w * h), (unsigned long long)limit);

    if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    /* 16 -> 8 bits by dropping the low byte, as PIL does for RGB;16B */
    if (depth == 16) png_set_strip_16(png);
    png_set_strip_alpha(png);   /* dropped, not composited (tRNS too) */
    const int is_grey = color == PNG_COLOR_TYPE_GRAY || color == PNG_COLOR_TYPE_GRAY_ALPHA;
    if (channels == 3 && is_grey) png_set_gray_to_rgb(png);
    if (channels == 1 && !is_grey)   /* libpng's default (sRGB) coefficients or the file's cHRM */
        png_set_rgb_to_gray_fixed(png, PNG_ERROR_ACTION_NONE, -1, -1);
    (void)png_set_interlace_handling(png);
    png_read_update_info(png, info);
    const size_t stride = (size_t)w * (size_t)channels;
    if (png_get_bit_depth(png, info) != 8 || png_get_channels(png, info) != channels ||
        png_get_rowbytes(png, info) != stride)
        return fs_fail(err, FS_ERR_UNSUPPORTED, "%s: cannot convert this PNG (colour type %d, depth %d) to "
                       "%d 8-bit channels", label, color, depth, channels);
    buf = malloc(stride * h);
    rows = malloc((size_t)h * sizeof *rows);
    if (!buf || !rows) {
        free(buf);
        free(rows);
        return fs_fail(err, FS_ERR_NOMEM, "%s: out of memory for %u x %u x %d pixels", label, w, h, channels);
    }
    for (png_uint_32 y = 0; y < h; y++) rows[y] = buf + (size_t)y * stride;
    png_read_image(png, rows);
    png_read_end(png, NULL);   /* the trailing chunks' CRCs, IEND */
    free(rows);
    *pixels = buf;
    *width = (int)w;
    *height = (int)h;
    return FS_OK;
}

static fs_code read_src(png_src *src, const char *label, int channels, uint64_t max_pixels, uint8_t **pixels,
                        int *width, int *height, fs_error *err) {
    if (channels != 1 && channels != 3)
        return fs_fail(err, FS_ERR_INVALID, "%s: %d channels asked (1 = grey or 3 = RGB)", label, channels);
    int sig = src_signature(src);
    if (sig == -2) return fs_fail(err, FS_ERR_IO, "%s: cannot read: %s", label, strerror(errno));
    if (sig != 0) return fs_fail(err, FS_ERR_FORMAT, "%s: not a PNG file (bad signature)", label);
    fs_code rc = src_prescan(src, label, err);
    if (rc != FS_OK) return rc;
    png_err_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    png_infop info = NULL;
    png_structp png = reader_new(&ctx, &info, NULL);
    if (!png) return fs_fail(err, FS_ERR_NOMEM, "%s: cannot create libpng's reader", label);
    png_set_read_fn(png, src, src_read);
    rc = decode(png, info, &ctx, label, channels, max_pixels, pixels, width, height, err);
    png_destroy_read_struct(&png, &info, NULL);
    return rc;
}

fs_code fs_png_read(const char *path, int channels, uint64_t max_pixels, uint8_t **pixels, int *width,
                    int *height, fs_error *err) {
    if (!path || !pixels || !width || !height) return fs_fail(err, FS_ERR_INVALID, "png: missing argument");
    *pixels = NULL;
    *width = *height = 0;
    png_src src = {0};
    src.fp = fopen(path, "rb");
    if (!src.fp) return fs_fail(err, FS_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    fs_code rc = read_src(&src, path, channels, max_pixels, pixels, width, height, err);
    fclose(src.fp);
    return rc;
}

fs_code fs_png_read_mem(const void *buf, size_t len, const char *label, int channels, uint64_t max_pixels,
                        uint8_t **pixels, int *width, int *height, fs_error *err) {
    if (!label) label = "<memory>";
    if (!pixels || !width || !height || (!buf && len))
        return fs_fail(err, FS_ERR_INVALID, "%s: missing argument", label);
    *pixels = NULL;
    *width = *height = 0;
    png_src src = {0};
    src.buf = buf;
    src.len = len;
    return read_src(&src, label, channels, max_pixels, pixels, width, height, err);
}

/* ---------------------------------------------------------------- text */
void fs_png_text_free(char **kv) {
    if (!kv) return;
    for (size_t i = 0; kv[i]; i++) free(kv[i]);
    free(kv);
}

/* Appends the text chunks of one info struct to kv (UTF-8 strings). */
static int append_texts(png_structp png, png_infop info, char **kv, size_t *n) {
    png_textp t = NULL;
    int count = png_get_text(png, info, &t, NULL);
    for (int i = 0; i < count; i++) {
        char *k = latin1_to_utf8(t[i].key);
        char *v = t[i].compression >= PNG_ITXT_COMPRESSION_NONE ? strdup(t[i].text ? t[i].text : "")
                                                                 : latin1_to_utf8(t[i].text ? t[i].text : "");
        if (!k || !v) {
            free(k);
            free(v);
            return -1;
        }
        kv[(*n)++] = k;
        kv[(*n)++] = v;
    }
    return 0;
}

fs_code fs_png_read_text(const char *path, char ***kv_out, fs_error *err) {
    if (!path || !kv_out) return fs_fail(err, FS_ERR_INVALID, "png: missing argument");
    *kv_out = NULL;
    png_src src = {0};
    src.fp = fopen(path, "rb");
    if (!src.fp) return fs_fail(err, FS_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    int sig = src_signature(&src);
    if (sig != 0) {
        int e = errno;
        fclose(src.fp);
        if (sig == -2) return fs_fail(err, FS_ERR_IO, "%s: cannot read: %s", path, strerror(e));
        return fs_fail(err, FS_ERR_FORMAT, "%s: not a PNG file (bad signature)", path);
    }
    fs_code scan = src_prescan(&src, path, err);
    if (scan != FS_OK) {
        fclose(src.fp);
        return scan;
    }
    png_err_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    png_infop info = NULL, end_info = NULL;
    png_structp png = reader_new(&ctx, &info, &end_info);
    if (!png) {
        fclose(src.fp);
        return fs_fail(err, FS_ERR_NOMEM, "%s: cannot create libpng's reader", path);
    }
    png_set_read_fn(png, &src, src_read);
    uint8_t *volatile row = NULL;
    char **volatile kv = NULL;
    volatile size_t n = 0;
    fs_code rc = FS_OK;
    if (setjmp(png_jmpbuf(png))) {
        rc = fs_fail(err, FS_ERR_FORMAT, "%s: %s", path, ctx.msg);
        goto done;
    }
    png_set_sig_bytes(png, 8);
    png_set_user_limits(png, PNG_READ_SIDE_MAX, PNG_READ_SIDE_MAX);
    png_read_info(png, info);
    /* Text may follow the image data: decode the rows one at a time into a
     * single row buffer to reach png_read_end. */
    int passes = png_set_interlace_handling(png);
    png_read_update_info(png, info);
    png_uint_32 h = png_get_image_height(png, info);
    row = malloc(png_get_rowbytes(png, info));
    if (!row) {
        rc = fs_fail(err, FS_ERR_NOMEM, "%s: out of memory for one row", path);
        goto done;
    }
    for (int p = 0; p < passes; p++)
        for (png_uint_32 y = 0; y < h; y++) png_read_row(png, row, NULL);
    png_read_end(png, end_info);
    {
        png_textp t;
        size_t total = (size_t)png_get_text(png, info, &t, NULL);
        total += (size_t)png_get_text(png, end_info, &t, NULL);
        kv = calloc(2 * total + 1, sizeof *kv);
        size_t m = 0;
        if (!kv || append_texts(png, info, kv, &m) != 0 || append_texts(png, end_info, kv, &m) != 0) {
            rc = fs_fail(err, FS_ERR_NOMEM, "%s: out of memory for text chunks", path);
            n = m;
            goto done;
        }
        n = m;
    }
done:
    free(row);
    if (rc != FS_OK) {
        if (kv) {
            for (size_t i = 0; i < n; i++) free(kv[i]);
            free(kv);
        }
    } else {
        *kv_out = kv;
    }
    png_destroy_read_struct(&png, &info, &end_info);
    fclose(src.fp);
    return rc;
}
