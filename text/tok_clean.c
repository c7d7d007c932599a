/* text/tok_clean.c: the text cleaning the two CLIP tokenizer references do
 * before their pattern split (see tokenizer.h):
 *
 *   open_clip (bigG):  ftfy.fix_text -> html.unescape twice -> strip, split on
 *                      Python whitespace, join with " " -> str.lower()
 *   transformers (CLIP-L): NFC -> runs of White_Space to " " -> per-character
 *                      lower-casing (no final-sigma rule)
 *
 * Text is worked on as arrays of code points. Unicode properties and mappings
 * (NFC, NFKC, full case mappings with Python's final-sigma context, decimal
 * digits, White_Space) come from ICU; the reference libraries' own tables
 * (HTML5 entities, ftfy's ligatures and control characters, Python's
 * whitespace) are generated from them into tok_tables.h.
 *
 * Of ftfy.fix_text everything its defaults do is here except fix_encoding,
 * the mojibake repair: that is a heuristic over whole-text "badness" scores
 * (ftfy/badness.py) which no prompt written by a person needs; text it would
 * have repaired ("cafÃ©") is tokenized as written. */
#include <stdlib.h>
#include <string.h>
#include <unicode/uchar.h>
#include <unicode/unorm2.h>
#include <unicode/ustring.h>
#include "text/tokenizer.h"
#include "text/tok_tables.h"

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))
#define FTFY_MAX_ROUNDS 64 /* ftfy repeats its fixes until nothing changes */

/* ---------------------------------------------------------------- code point buffers */
typedef struct { uint32_t *v; size_t n, cap; int oom; } cpbuf;

static void cb_reserve(cpbuf *b, size_t extra) {
    if (b->oom || b->n + extra <= b->cap) return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->n + extra) cap *= 2;
    uint32_t *v = realloc(b->v, cap * sizeof *v);
    if (!v) { b->oom = 1; return; }
    b->v = v;
    b->cap = cap;
}
static void cb_push(cpbuf *b, uint32_t c) {
    cb_reserve(b, 1);
    if (!b->oom) b->v[b->n++] = c;
}
static void cb_append(cpbuf *b, const uint32_t *v, size_t n) {
    cb_reserve(b, n);
    if (!b->oom && n) { memcpy(b->v + b->n, v, n * sizeof *v); b->n += n; }
}
static void cb_free(cpbuf *b) { free(b->v); b->v = NULL; b->n = b->cap = 0; }
static void cb_swap(cpbuf *a, cpbuf *b) { cpbuf t = *a; *a = *b; *b = t; }
static int cb_equal(const cpbuf *a, const cpbuf *b) {
    return a->n == b->n && (a->n == 0 || memcmp(a->v, b->v, a->n * sizeof *a->v) == 0);
}

/* UTF-8 to code points. Invalid input becomes U+FFFD, one per maximal
 * ill-formed subpart (the Unicode "best practice"), never a surrogate. */
static void utf8_decode(const unsigned char *s, size_t len, cpbuf *out) {
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        if (c < 0x80) { cb_push(out, c); i++; continue; }
        int need; uint32_t cp; unsigned lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) { need = 1; cp = c & 0x1F; }
        else if (c >= 0xE0 && c <= 0xEF) {
            need = 2; cp = c & 0x0F;
            if (c == 0xE0) lo = 0xA0;
            if (c == 0xED) hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3; cp = c & 0x07;
            if (c == 0xF0) lo = 0x90;
            if (c == 0xF4) hi = 0x8F;
        } else { cb_push(out, 0xFFFD); i++; continue; }
        size_t j = i + 1;
        int got = 0;
        while (got < need && j < len) {
            unsigned d = s[j];
            if (d < lo || d > hi) break;
            cp = (cp << 6) | (d & 0x3F);
            lo = 0x80; hi = 0xBF;
            j++; got++;
        }
        cb_push(out, got == need ? cp : 0xFFFD);
        i = j;
    }
}

/* Appends the UTF-8 literal s (from our tables: always valid). */
static void cb_push_utf8(cpbuf *b, const char *s) {
    utf8_decode((const unsigned char *)s, strlen(s), b);
}

static char *utf8_encode(const cpbuf *b, size_t *out_len) {
    char *out = malloc(b->n * 4 + 1);
    if (!out) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < b->n; i++) {
        uint32_t c = b->v[i];
        if (c < 0x80) out[k++] = (char)c;
        else if (c < 0x800) { out[k++] = (char)(0xC0 | c >> 6); out[k++] = (char)(0x80 | (c & 0x3F)); }
        else if (c < 0x10000) {
            out[k++] = (char)(0xE0 | c >> 12); out[k++] = (char)(0x80 | ((c >> 6) & 0x3F));
            out[k++] = (char)(0x80 | (c & 0x3F));
        } else {
            out[k++] = (char)(0xF0 | c >> 18); out[k++] = (char)(0x80 | ((c >> 12) & 0x3F));
            out[k++] = (char)(0x80 | ((c >> 6) & 0x3F)); out[k++] = (char)(0x80 | (c & 0x3F));
        }
    }
    out[k] = 0;
    *out_len = k;
    return out;
}

/* ---------------------------------------------------------------- ICU */
typedef enum { ICU_NFC, ICU_NFKC, ICU_LOWER, ICU_UPPER } icu_op;

/* Applies op to the whole of b, in place. The root locale ("") gives the
 * language-independent mappings Python's str.lower()/upper() use, including
 * the final-sigma context rule. Returns 0, or -1 (out of memory or an ICU
 * error; b->oom is set). */
static int icu_apply(cpbuf *b, icu_op op) {
    if (b->oom) return -1;
    if (b->n == 0) return 0;
    size_t n16 = 0;
    for (size_t i = 0; i < b->n; i++) n16 += b->v[i] >= 0x10000 ? 2 : 1;
    if (n16 > (size_t)INT32_MAX / 4) { b->oom = 1; return -1; }
    UChar *src = malloc(n16 * sizeof *src);
    if (!src) { b->oom = 1; return -1; }
    size_t k = 0;
    for (size_t i = 0; i < b->n; i++) {
        uint32_t c = b->v[i];
        if (c >= 0x10000) { src[k++] = (UChar)(0xD7C0 + (c >> 10)); src[k++] = (UChar)(0xDC00 | (c & 0x3FF)); }
        else src[k++] = (UChar)c;
    }
    int32_t cap = (int32_t)(n16 * 3 + 16), len = 0;
    UChar *dst = NULL;
    for (int attempt = 0; attempt < 2; attempt++) {
        UErrorCode st = U_ZERO_ERROR;
        free(dst);
        dst = malloc((size_t)cap * sizeof *dst);
        if (!dst) break;
        if (op == ICU_LOWER) len = u_strToLower(dst, cap, src, (int32_t)n16, "", &st);
        else if (op == ICU_UPPER) len = u_strToUpper(dst, cap, src, (int32_t)n16, "", &st);
        else {
            const UNormalizer2 *nz = op == ICU_NFC ? unorm2_getNFCInstance(&st) : unorm2_getNFKCInstance(&st);
            if (U_SUCCESS(st)) len = unorm2_normalize(nz, src, (int32_t)n16, dst, cap, &st);
        }
        if (st == U_BUFFER_OVERFLOW_ERROR && attempt == 0) { cap = len + 16; continue; }
        if (U_FAILURE(st)) { free(dst); dst = NULL; }
        break;
    }
    free(src);
    if (!dst) { b->oom = 1; return -1; }
    b->n = 0;
    cb_reserve(b, (size_t)len);
    for (int32_t i = 0; i < len && !b->oom; i++) {
        uint32_t c = dst[i];
        if (c >= 0xD800 && c <= 0xDBFF && i + 1 < len && dst[i + 1] >= 0xDC00 && dst[i + 1] <= 0xDFFF)
            c = 0x10000 + ((c - 0xD800) << 10) + (dst[++i] - 0xDC00);
        b->v[b->n++] = c;
    }
    free(dst);
    return b->oom ? -1 : 0;
}

/* ---------------------------------------------------------------- tables */
static int in_ranges(const fs_tok_range *r, size_t n, uint32_t c) {
    for (size_t i = 0; i < n; i++)
        if (c >= r[i].first && c <= r[i].last) return 1;
    return 0;
}
static const char *cpmap_find(const fs_tok_cpmap *m, size_t n, uint32_t c) {
    for (size_t i = 0; i < n; i++)
        if (m[i].cp == c) return m[i].value;
    return NULL;
}
static int cmp_entity(const void *key, const void *elem) {
    return strcmp((const char *)key, ((const fs_tok_entity *)elem)->name);
}
static const char *html5_find(const char *name) {
    const fs_tok_entity *e = bsearch(name, FS_TOK_HTML5, N_OF(FS_TOK_HTML5), sizeof FS_TOK_HTML5[0],
                                     cmp_entity);
    return e ? e->value : NULL;
}
static int py_isspace(uint32_t c) {
    for (size_t i = 0; i < N_OF(FS_TOK_PY_SPACES); i++)
        if (FS_TOK_PY_SPACES[i] == c) return 1;
    return 0;
}
static int is_ascii_digit(uint32_t c) { return c >= '0' && c <= '9'; }
static int is_ascii_alpha(uint32_t c) { return (c | 0x20) >= 'a' && (c | 0x20) <= 'z'; }
static int hex_value(uint32_t c) {
    if (is_ascii_digit(c)) return (int)(c - '0');
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') return (int)((c | 0x20) - 'a' + 10);
    return -1;
}

/* ---------------------------------------------------------------- html.unescape */
/* What Python's html.unescape gives for &#num; (num saturated above 0x10FFFF). */
static void push_charref(cpbuf *out, uint32_t num) {
    const char *v = cpmap_find(FS_TOK_INVALID_CHARREFS, N_OF(FS_TOK_INVALID_CHARREFS), num);
    if (v) { cb_push_utf8(out, v); return; }
    if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF) { cb_push(out, 0xFFFD); return; }
    if (in_ranges(FS_TOK_INVALID_CODEPOINTS, N_OF(FS_TOK_INVALID_CODEPOINTS), num)) return;
    cb_push(out, num);
}

/* Python's html.unescape: the pattern &(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|
 * [^\t\n\f <&#;]{1,32};?), a name replaced when it is an HTML5 entity, else by
 * its longest legacy prefix (e.g. "&ampx" -> "&x"), else left alone. */
static void html_unescape(const cpbuf *in, cpbuf *out) {
    const uint32_t *s = in->v;
    size_t n = in->n, i = 0;
    while (i < n) {
        if (s[i] != '&') { cb_push(out, s[i++]); continue; }
        size_t j = i + 1;
        if (j < n && s[j] == '#') {
            size_t k = j + 1;
            int base = 0;
            if (k < n && is_ascii_digit(s[k])) base = 10;
            else if (k + 1 < n && (s[k] == 'x' || s[k] == 'X') && hex_value(s[k + 1]) >= 0) { base = 16; k++; }
            if (!base) { cb_push(out, '&'); i++; continue; }
            uint32_t num = 0;
            while (k < n && (base == 10 ? is_ascii_digit(s[k]) : hex_value(s[k]) >= 0)) {
                num = num * (uint32_t)base + (uint32_t)hex_value(s[k]);
                if (num > 0x10FFFF) num = 0x110000; /* every larger value acts the same */
                k++;
            }
            if (k < n && s[k] == ';') k++;
            push_charref(out, num);
            i = k;
            continue;
        }
        size_t m = j;
        while (m < n && m - j < 32 && s[m] != '\t' && s[m] != '\n' && s[m] != '\f' && s[m] != ' ' &&
               s[m] != '<' && s[m] != '&' && s[m] != '#' && s[m] != ';')
            m++;
        if (m == j) { cb_push(out, '&'); i++; continue; }
        size_t end = m < n && s[m] == ';' ? m + 1 : m; /* the name runs j..end */
        size_t len = end - j, ascii = 0;
        while (ascii < len && s[j + ascii] < 0x80) ascii++;
        char name[40];
        for (size_t a = 0; a < ascii; a++) name[a] = (char)s[j + a];
        const char *value = NULL;
        size_t used = 0;
        if (ascii == len) { name[len] = 0; value = html5_find(name); used = len; }
        for (size_t x = (len - 1 < ascii ? len - 1 : ascii); !value && x >= 2; x--) {
            name[x] = 0;
            value = html5_find(name);
            used = x;
        }
        if (value) {
            cb_push_utf8(out, value);
            cb_append(out, s + j + used, len - used);
        } else {
            cb_append(out, s + i, end - i);
        }
        i = end;
    }
}

/* ---------------------------------------------------------------- ftfy.fix_text */
/* ftfy's unescape_html: &#?[0-9A-Za-z]{1,24}; replaced when it is an HTML5
 * entity (with ';'), an all-caps spelling of a lower-case one that
 * html.unescape leaves alone (&EACUTE; -> É, upper-cased), or a numeric
 * reference html.unescape fully decodes. */
static void ftfy_unescape(const cpbuf *in, cpbuf *out) {
    const uint32_t *s = in->v;
    size_t n = in->n, i = 0;
    while (i < n) {
        if (s[i] != '&') { cb_push(out, s[i++]); continue; }
        int hash = i + 1 < n && s[i + 1] == '#';
        size_t k = i + 1 + (size_t)hash, m = k;
        while (m < n && (is_ascii_digit(s[m]) || is_ascii_alpha(s[m]))) m++;
        if (m == k || m - k > 24 || m >= n || s[m] != ';') { cb_push(out, '&'); i++; continue; }
        size_t end = m + 1;
        cpbuf whole = { .v = (uint32_t *)(s + i), .n = end - i };
        cpbuf tmp = {0};
        if (hash) {
            html_unescape(&whole, &tmp);
            int has_semicolon = 0;
            for (size_t a = 0; a < tmp.n; a++) has_semicolon |= tmp.v[a] == ';';
            if (tmp.oom) out->oom = 1;
            if (has_semicolon) cb_append(out, s + i, end - i);
            else cb_append(out, tmp.v, tmp.n);
            cb_free(&tmp);
            i = end;
            continue;
        }
        char name[32];
        int has_lower = 0;
        for (size_t a = k; a < end; a++) {
            name[a - k] = (char)s[a];
            has_lower |= s[a] >= 'a' && s[a] <= 'z';
        }
        name[end - k] = 0;
        const char *value = html5_find(name);
        if (value) cb_push_utf8(out, value);
        else if (!has_lower) {
            for (size_t a = 0; name[a]; a++)
                if (name[a] >= 'A' && name[a] <= 'Z') name[a] = (char)(name[a] + 32);
            value = html5_find(name);
            if (value) {
                html_unescape(&whole, &tmp);
                if (!cb_equal(&tmp, &whole)) value = NULL;
                cb_free(&tmp);
            }
            if (value) {
                cb_push_utf8(&tmp, value);
                icu_apply(&tmp, ICU_UPPER);
                if (tmp.oom) out->oom = 1;
                cb_append(out, tmp.v, tmp.n);
                cb_free(&tmp);
            } else cb_append(out, s + i, end - i);
        } else cb_append(out, s + i, end - i);
        i = end;
    }
}

/* uncurl_quotes and fix_line_breaks for one character ('\r' before '\n' is
 * dropped by the caller, as ftfy replaces "\r\n" first). */
static void push_uncurled(cpbuf *out, uint32_t c) {
    if (c == 0x2BC || (c >= 0x2018 && c <= 0x201B)) c = '\'';
    else if (c >= 0x201C && c <= 0x201F) c = '"';
    else if (c == '\r' || c == 0x2028 || c == 0x2029 || c == 0x85) c = '\n';
    cb_push(out, c);
}

/* The per-character fixes in ftfy's order, each seeing what the previous one
 * made: fix_c1_controls (U+0080..U+009F read as sloppy-windows-1252),
 * fix_latin_ligatures, fix_character_width (U+3000 and the NFKC forms of
 * U+FF01..U+FFEF), uncurl_quotes, fix_line_breaks. */
static void ftfy_char_fixes(const cpbuf *in, cpbuf *out) {
    cpbuf one = {0}, t = {0};
    for (size_t i = 0; i < in->n; i++) {
        uint32_t c = in->v[i];
        if (c == '\r' && i + 1 < in->n && in->v[i + 1] == '\n') continue;
        t.n = 0;
        if (c >= 0x80 && c <= 0x9F)
            cb_push_utf8(&t, cpmap_find(FS_TOK_INVALID_CHARREFS, N_OF(FS_TOK_INVALID_CHARREFS), c));
        else cb_push(&t, c);
        if (t.n == 1) {
            const char *lig = cpmap_find(FS_TOK_LIGATURES, N_OF(FS_TOK_LIGATURES), t.v[0]);
            if (lig) { t.n = 0; cb_push_utf8(&t, lig); }
        }
        for (size_t a = 0; a < t.n; a++) {
            uint32_t d = t.v[a];
            if (d == 0x3000) { push_uncurled(out, ' '); continue; }
            if (d >= 0xFF01 && d <= 0xFFEF) {
                one.n = 0;
                cb_push(&one, d);
                if (icu_apply(&one, ICU_NFKC) != 0) { out->oom = 1; continue; }
                for (size_t e = 0; e < one.n; e++) push_uncurled(out, one.v[e]);
                continue;
            }
            push_uncurled(out, d);
        }
    }
    if (t.oom) out->oom = 1;
    cb_free(&one); cb_free(&t);
}

/* remove_terminal_escapes (\033\[(\d|;)*[a-zA-Z], \d any decimal digit) and
 * remove_control_chars. */
static void ftfy_strip_controls(const cpbuf *in, cpbuf *out) {
    for (size_t i = 0; i < in->n; i++) {
        uint32_t c = in->v[i];
        if (c == 0x1B && i + 1 < in->n && in->v[i + 1] == '[') {
            size_t k = i + 2;
            while (k < in->n && (in->v[k] == ';' || u_charType((UChar32)in->v[k]) == U_DECIMAL_DIGIT_NUMBER)) k++;
            if (k < in->n && is_ascii_alpha(in->v[k])) { i = k; continue; }
        }
        if (in_ranges(FS_TOK_CONTROL_CHARS, N_OF(FS_TOK_CONTROL_CHARS), c)) continue;
        cb_push(out, c);
    }
}

/* One ftfy segment (a line with its '\n'): the fixes, then NFC, repeated
 * until the text stops changing, as ftfy.fix_and_explain does. */
static void ftfy_fix_segment(cpbuf *seg, int unescape) {
    cpbuf a = {0}, b = {0}, orig = {0};
    for (int round = 0; round < FTFY_MAX_ROUNDS && !seg->oom; round++) {
        orig.n = 0;
        cb_append(&orig, seg->v, seg->n);
        if (unescape) { a.n = 0; ftfy_unescape(seg, &a); cb_swap(seg, &a); }
        a.n = 0; ftfy_char_fixes(seg, &a);
        b.n = 0; ftfy_strip_controls(&a, &b);
        cb_swap(seg, &b);
        icu_apply(seg, ICU_NFC);
        if (a.oom || b.oom || orig.oom) seg->oom = 1;
        if (cb_equal(seg, &orig)) break;
    }
    cb_free(&a); cb_free(&b); cb_free(&orig);
}

/* ftfy.fix_text: lines are fixed one by one; HTML unescaping is skipped from
 * the first line holding a '<' on (ftfy's "auto" mode switches it off for
 * good once it sees one). */
static void ftfy_fix_text(const cpbuf *in, cpbuf *out) {
    int unescape = 1;
    cpbuf seg = {0};
    size_t pos = 0;
    while (pos < in->n) {
        size_t end = pos;
        while (end < in->n && in->v[end] != '\n') end++;
        if (end < in->n) end++;
        seg.n = 0;
        cb_append(&seg, in->v + pos, end - pos);
        for (size_t i = 0; i < seg.n; i++) if (seg.v[i] == '<') unescape = 0;
        ftfy_fix_segment(&seg, unescape);
        if (seg.oom) out->oom = 1;
        cb_append(out, seg.v, seg.n);
        pos = end;
    }
    cb_free(&seg);
}

/* ---------------------------------------------------------------- the two cleaners */
static fs_code finish(cpbuf *b, char **out, size_t *out_len, const char *who, fs_error *err) {
    if (!b->oom) *out = utf8_encode(b, out_len);
    int failed = b->oom || !*out;
    cb_free(b);
    if (failed) return fs_fail(err, FS_ERR_NOMEM, "%s: out of memory (or an ICU failure) cleaning the prompt", who);
    return FS_OK;
}

fs_code fs_tok_clean_openclip(const char *text, size_t len, char **out, size_t *out_len, fs_error *err) {
    *out = NULL; *out_len = 0;
    cpbuf a = {0}, b = {0};
    utf8_decode((const unsigned char *)text, len, &a);
    ftfy_fix_text(&a, &b);
    a.n = 0; html_unescape(&b, &a);
    b.n = 0; html_unescape(&a, &b);
    /* " ".join(text.split()): strip() and the final strip() are implied */
    a.n = 0;
    for (size_t i = 0; i < b.n;) {
        while (i < b.n && py_isspace(b.v[i])) i++;
        size_t w = i;
        while (i < b.n && !py_isspace(b.v[i])) i++;
        if (i > w) {
            if (a.n) cb_push(&a, ' ');
            cb_append(&a, b.v + w, i - w);
        }
    }
    if (b.oom) a.oom = 1;
    cb_free(&b);
    icu_apply(&a, ICU_LOWER);
    return finish(&a, out, out_len, "fs_tok_clean_openclip", err);
}

fs_code fs_tok_clean_hf(const char *text, size_t len, char **out, size_t *out_len, fs_error *err) {
    *out = NULL; *out_len = 0;
    cpbuf a = {0}, b = {0}, one = {0};
    utf8_decode((const unsigned char *)text, len, &a);
    icu_apply(&a, ICU_NFC);
    int prev_space = 0;
    for (size_t i = 0; i < a.n; i++) {
        uint32_t c = a.v[i];
        if (u_hasBinaryProperty((UChar32)c, UCHAR_WHITE_SPACE)) {
            if (!prev_space) cb_push(&b, ' ');
            prev_space = 1;
            continue;
        }
        prev_space = 0;
        if (c < 0x80) { cb_push(&b, c >= 'A' && c <= 'Z' ? c + 32 : c); continue; }
        /* one character at a time, as Rust's char::to_lowercase: a lone
         * capital sigma is never final */
        one.n = 0;
        cb_push(&one, c);
        icu_apply(&one, ICU_LOWER);
        if (one.oom) b.oom = 1;
        cb_append(&b, one.v, one.n);
    }
    if (a.oom) b.oom = 1;
    cb_free(&a); cb_free(&one);
    return finish(&b, out, out_len, "fs_tok_clean_hf", err);
}
