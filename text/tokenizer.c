/* text/tokenizer.c: the CLIP BPE tokenizer (tokenizer.h): loading the
 * vocabulary and merges, the pattern split (PCRE2), byte symbols, the merges,
 * and the 77-id windows. The text cleaning before the split is tok_clean.c.
 *
 * The merges are applied with a heap ordered by (rank, position), as
 * huggingface/tokenizers does: O(n log n) per word, where open_clip's loop
 * (merge every occurrence of the lowest-ranked pair, then look again) is
 * O(n^2); both give the same result because a merge never creates a pair of
 * its own rank or lower in a real merge list. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <errno.h>
#include <jansson.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>
#include "text/tokenizer.h"

#define CLIP_MERGES 48894 /* 49152 - 256 - 2: open_clip's cut of the 262k-line file */
#define MAX_VOCAB (1 << 24)

/* The CLIP pattern. transformers keeps "<|startoftext|>"/"<|endoftext|>"
 * pieces whole (its ByteLevel step then splits them into "<|", name, "|>");
 * open_clip's specials are "<start_of_text>"/"<end_of_text>", and it matches
 * case-insensitively. The cleaners leave no whitespace but ' ', so \s is
 * written as ' ': PCRE2 also counts U+180E as \s, the references do not.
 * Python's regex module, case-insensitive, matches U+0345 (a combining mark
 * whose case partner is the letter iota) with no alternative: open_clip
 * drops it, and so do we. Measured on every code point: the classes then
 * equal the references' except for characters unassigned in Unicode 14
 * (PCRE2 10.42's tables) that later versions made letters or digits. */
static const char PATTERN_HF[] =
    "<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^ \\p{L}\\p{N}]+";
static const char PATTERN_OPENCLIP[] =
    "<start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^ \\p{L}\\p{N}\\x{345}]+";

struct fs_tokenizer {
    int32_t byte_id[256], byte_eow_id[256]; /* byte symbol, and with "</w>" */
    int32_t bos, eos, n_vocab;
    /* merges: open addressing on (left id << 32 | right id) */
    uint64_t *pair_key;
    int32_t *pair_rank, *pair_result;
    size_t pair_mask;
    pcre2_code *re[2]; /* by fs_tok_style */
};

/* ---------------------------------------------------------------- vocabulary strings -> ids
 * Only needed while loading: to turn the merges' strings into ids. */
typedef struct { char **key; int32_t *id; size_t mask, count; } strmap;

static uint64_t hash_bytes(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}
static uint64_t hash_pair(uint64_t k) {
    k ^= k >> 33; k *= 0xff51afd7ed558ccdull; k ^= k >> 33;
    return k;
}
static int strmap_init(strmap *m, size_t expected) {
    size_t cap = 1024;
    while (cap < expected * 2) cap *= 2;
    m->key = calloc(cap, sizeof *m->key);
    m->id = calloc(cap, sizeof *m->id);
    m->mask = cap - 1;
    m->count = 0;
    return m->key && m->id ? 0 : -1;
}
static void strmap_free(strmap *m) {
    if (m->key) for (size_t i = 0; i <= m->mask; i++) free(m->key[i]);
    free(m->key); free(m->id);
    memset(m, 0, sizeof *m);
}
static size_t strmap_slot(const strmap *m, const char *s) {
    size_t i = hash_bytes(s) & m->mask;
    while (m->key[i] && strcmp(m->key[i], s) != 0) i = (i + 1) & m->mask;
    return i;
}
static int32_t strmap_get(const strmap *m, const char *s) {
    size_t i = strmap_slot(m, s);
    return m->key[i] ? m->id[i] : -1;
}
/* Inserts or overwrites; -1 when out of memory or over the planned size. */
static int strmap_put(strmap *m, const char *s, int32_t id) {
    size_t i = strmap_slot(m, s);
    if (!m->key[i]) {
        if ((m->count + 1) * 2 > m->mask + 1) return -1;
        if (!(m->key[i] = strdup(s))) return -1;
        m->count++;
    }
    m->id[i] = id;
    return 0;
}

/* GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves,
 * the other 68 take U+0100 onwards in byte order. */
static void byte_symbol(int b, char out[3]) {
    int cp = b;
    if (!((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF))) {
        int n = 0;
        for (int x = 0; x < b; x++)
            if (!((x >= '!' && x <= '~') || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE && x <= 0xFF))) n++;
        cp = 256 + n;
    }
    if (cp < 0x80) { out[0] = (char)cp; out[1] = 0; }
    else { out[0] = (char)(0xC0 | cp >> 6); out[1] = (char)(0x80 | (cp & 0x3F)); out[2] = 0; }
}
/* The 256 byte symbols in open_clip's vocabulary order (bytes_to_unicode's
 * insertion order: the printable ranges first, then the rest). */
static void byte_order(int order[256]) {
    int k = 0;
    for (int b = 0; b < 256; b++)
        if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)) order[k++] = b;
    for (int b = 0; b < 256; b++)
        if (!((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF))) order[k++] = b;
}

/* ---------------------------------------------------------------- building a tokenizer */
static fs_code compile_patterns(fs_tokenizer *t, fs_error *err) {
    const char *pat[2] = {PATTERN_HF, PATTERN_OPENCLIP};
    uint32_t opts[2] = {PCRE2_UTF | PCRE2_UCP, PCRE2_UTF | PCRE2_UCP | PCRE2_CASELESS};
    for (int s = 0; s < 2; s++) {
        int code;
        PCRE2_SIZE at;
        t->re[s] = pcre2_compile((PCRE2_SPTR)pat[s], PCRE2_ZERO_TERMINATED, opts[s], &code, &at, NULL);
        if (!t->re[s]) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(code, msg, sizeof msg);
            return fs_fail(err, FS_ERR_UNSUPPORTED, "tokenizer: PCRE2 refused the CLIP pattern at %zu: %s",
                           (size_t)at, (const char *)msg);
        }
    }
    return FS_OK;
}

/* Looks up the byte symbols and specials, sizes the pair table, compiles the
 * patterns. */
static fs_code tokenizer_start(fs_tokenizer *t, const strmap *vocab, size_t n_merges, const char *where,
                               fs_error *err) {
    for (int b = 0; b < 256; b++) {
        char sym[3], eow[8];
        byte_symbol(b, sym);
        snprintf(eow, sizeof eow, "%s</w>", sym);
        t->byte_id[b] = strmap_get(vocab, sym);
        t->byte_eow_id[b] = strmap_get(vocab, eow);
        if (t->byte_id[b] < 0 || t->byte_eow_id[b] < 0)
            return fs_fail(err, FS_ERR_FORMAT, "%s: the vocabulary lacks the symbol for byte 0x%02x (\"%s\" or \"%s\")",
                           where, b, sym, eow);
    }
    t->bos = strmap_get(vocab, "<|startoftext|>");
    t->eos = strmap_get(vocab, "<|endoftext|>");
    if (t->bos < 0 || t->eos < 0)
        return fs_fail(err, FS_ERR_FORMAT, "%s: the vocabulary lacks <|startoftext|> or <|endoftext|>", where);
    size_t cap = 1024;
    while (cap < n_merges * 2 + 2) cap *= 2;
    t->pair_key = malloc(cap * sizeof *t->pair_key);
    t->pair_rank = malloc(cap * sizeof *t->pair_rank);
    t->pair_result = malloc(cap * sizeof *t->pair_result);
    if (!t->pair_key || !t->pair_rank || !t->pair_result)
        return fs_fail(err, FS_ERR_NOMEM, "%s: out of memory for %zu merges", where, n_merges);
    memset(t->pair_key, 0xFF, cap * sizeof *t->pair_key);
    t->pair_mask = cap - 1;
    return compile_patterns(t, err);
}

/* Adds merge number `rank` "left right" (a later duplicate wins, as in both
 * references). The merged string must be in the vocabulary. */
static fs_code add_merge(fs_tokenizer *t, const strmap *vocab, const char *left, const char *right,
                         int32_t rank, const char *where, size_t line, fs_error *err) {
    char joined[2048];
    int32_t a = strmap_get(vocab, left), b = strmap_get(vocab, right);
    if (snprintf(joined, sizeof joined, "%s%s", left, right) >= (int)sizeof joined)
        return fs_fail(err, FS_ERR_FORMAT, "%s:%zu: merge too long", where, line);
    int32_t r = strmap_get(vocab, joined);
    if (a < 0 || b < 0 || r < 0)
        return fs_fail(err, FS_ERR_FORMAT, "%s:%zu: merge \"%s %s\" uses a token not in the vocabulary",
                       where, line, left, right);
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    size_t i = hash_pair(key) & t->pair_mask;
    while (t->pair_key[i] != UINT64_MAX && t->pair_key[i] != key) i = (i + 1) & t->pair_mask;
    t->pair_key[i] = key;
    t->pair_rank[i] = rank;
    t->pair_result[i] = r;
    return FS_OK;
}

/* A merges text: one "left right" per line; a first line holding "#version"
 * (HF's "#version: 0.2", open_clip's .gz names its file before it) is
 * skipped; at most max_merges are read. Reads plain or gzip files. */
typedef struct { char **left, **right; size_t *line; size_t n, cap; } merge_list;

static int merge_list_grow(merge_list *ml) {
    size_t cap = ml->cap ? ml->cap * 2 : 4096;
    char **l = realloc(ml->left, cap * sizeof *l);
    if (l) ml->left = l;
    char **r = realloc(ml->right, cap * sizeof *r);
    if (r) ml->right = r;
    size_t *ln = realloc(ml->line, cap * sizeof *ln);
    if (ln) ml->line = ln;
    if (!l || !r || !ln) return -1;
    ml->cap = cap;
    return 0;
}

static void merge_list_free(merge_list *ml) {
    for (size_t i = 0; i < ml->n; i++) { free(ml->left[i]); free(ml->right[i]); }
    free(ml->left); free(ml->right); free(ml->line);
    memset(ml, 0, sizeof *ml);
}

static fs_code read_merges(const char *path, size_t max_merges, merge_list *ml, fs_error *err) {
    memset(ml, 0, sizeof *ml);
    errno = 0;
    gzFile f = gzopen(path, "rb"); /* reads uncompressed files as they are */
    if (!f) return fs_fail(err, FS_ERR_IO, "%s: cannot open: %s", path, strerror(errno ? errno : ENOENT));
    fs_code rc = FS_OK;
    char buf[2048];
    size_t line = 0;
    while (rc == FS_OK && ml->n < max_merges && gzgets(f, buf, sizeof buf)) {
        line++;
        size_t len = strlen(buf);
        if (len == sizeof buf - 1 && buf[len - 1] != '\n') {
            rc = fs_fail(err, FS_ERR_FORMAT, "%s:%zu: line too long for a merge", path, line);
            break;
        }
        while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r')) buf[--len] = 0;
        if (line == 1 && strstr(buf, "#version")) continue;
        if (len == 0) continue;
        char *sp = strchr(buf, ' ');
        if (!sp || sp == buf || !sp[1] || strchr(sp + 1, ' ')) {
            rc = fs_fail(err, FS_ERR_FORMAT, "%s:%zu: a merge line must be two tokens split by one space", path, line);
            break;
        }
        *sp = 0;
        if (ml->n == ml->cap && merge_list_grow(ml) != 0) {
            rc = fs_fail(err, FS_ERR_NOMEM, "%s: out of memory", path);
            break;
        }
        ml->left[ml->n] = strdup(buf);
        ml->right[ml->n] = strdup(sp + 1);
        ml->line[ml->n] = line;
        ml->n++;
        if (!ml->left[ml->n - 1] || !ml->right[ml->n - 1]) rc = fs_fail(err, FS_ERR_NOMEM, "%s: out of memory", path);
    }
    int gzerr = 0;
    const char *gzmsg = gzerror(f, &gzerr);
    if (rc == FS_OK && gzerr != Z_OK && gzerr != Z_STREAM_END)
        rc = fs_fail(err, FS_ERR_IO, "%s: read failed after line %zu: %s", path, line, gzmsg);
    gzclose(f);
    if (rc == FS_OK && ml->n == 0) rc = fs_fail(err, FS_ERR_FORMAT, "%s: no merges in the file", path);
    if (rc != FS_OK) merge_list_free(ml);
    return rc;
}

static fs_code add_all_merges(fs_tokenizer *t, const strmap *vocab, const merge_list *ml, const char *where,
                              fs_error *err) {
    for (size_t i = 0; i < ml->n; i++) {
        fs_code rc = add_merge(t, vocab, ml->left[i], ml->right[i], (int32_t)i, where, ml->line[i], err);
        if (rc != FS_OK) return rc;
    }
    return FS_OK;
}

fs_code fs_tokenizer_load_merges(const char *path, fs_tokenizer **out, fs_error *err) {
    *out = NULL;
    merge_list ml;
    fs_code rc = read_merges(path, CLIP_MERGES, &ml, err);
    if (rc != FS_OK) return rc;
    fs_tokenizer *t = calloc(1, sizeof *t);
    strmap vocab = {0};
    if (!t || strmap_init(&vocab, 512 + ml.n + 2) != 0) {
        rc = fs_fail(err, FS_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    /* the open_clip construction: byte symbols, the same with </w>, merges, specials */
    int order[256], id = 0;
    byte_order(order);
    for (int pass = 0; pass < 2; pass++)
        for (int k = 0; k < 256; k++) {
            char sym[8];
            byte_symbol(order[k], sym);
            if (pass) strcat(sym, "</w>");
            if (strmap_put(&vocab, sym, id++) != 0) { rc = fs_fail(err, FS_ERR_NOMEM, "%s: out of memory", path); goto done; }
        }
    for (size_t i = 0; i < ml.n; i++) {
        char joined[2048];
        snprintf(joined, sizeof joined, "%s%s", ml.left[i], ml.right[i]);
        if (strmap_put(&vocab, joined, id++) != 0) { rc = fs_fail(err, FS_ERR_NOMEM, "%s: out of memory", path); goto done; }
    }
    if (strmap_put(&vocab, "<|startoftext|>", id++) != 0 || strmap_put(&vocab, "<|endoftext|>", id++) != 0) {
        rc = fs_fail(err, FS_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    t->n_vocab = id;
    rc = tokenizer_start(t, &vocab, ml.n, path, err);
    if (rc == FS_OK) rc = add_all_merges(t, &vocab, &ml, path, err);
done:
    strmap_free(&vocab);
    merge_list_free(&ml);
    if (rc != FS_OK) fs_tokenizer_free(t);
    else *out = t;
    return rc;
}

fs_code fs_tokenizer_load_dir(const char *dir, fs_tokenizer **out, fs_error *err) {
    *out = NULL;
    char vpath[4096], mpath[4096];
    if (snprintf(vpath, sizeof vpath, "%s/vocab.json", dir) >= (int)sizeof vpath ||
        snprintf(mpath, sizeof mpath, "%s/merges.txt", dir) >= (int)sizeof mpath)
        return fs_fail(err, FS_ERR_INVALID, "tokenizer folder path too long: %s", dir);
    json_error_t jerr;
    json_t *root = json_load_file(vpath, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return fs_fail(err, FS_ERR_FORMAT, "%s:%d:%d: %s", vpath, jerr.line, jerr.column, jerr.text);
    fs_code rc = FS_OK;
    merge_list ml = {0};
    strmap vocab = {0};
    fs_tokenizer *t = NULL;
    if (!json_is_object(root) || json_object_size(root) == 0 || json_object_size(root) > MAX_VOCAB) {
        rc = fs_fail(err, FS_ERR_FORMAT, "%s: expected an object of token -> id (at most %d)", vpath, MAX_VOCAB);
        goto done;
    }
    if (strmap_init(&vocab, json_object_size(root)) != 0 || !(t = calloc(1, sizeof *t))) {
        rc = fs_fail(err, FS_ERR_NOMEM, "%s: out of memory", vpath);
        goto done;
    }
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        json_int_t id = json_is_integer(val) ? json_integer_value(val) : -1;
        if (id < 0 || id >= MAX_VOCAB) {
            rc = fs_fail(err, FS_ERR_FORMAT, "%s: token \"%.80s\" has no id in [0, %d)", vpath, key, MAX_VOCAB);
            goto done;
        }
        if (strmap_put(&vocab, key, (int32_t)id) != 0) { rc = fs_fail(err, FS_ERR_NOMEM, "%s: out of memory", vpath); goto done; }
        if ((int32_t)id >= t->n_vocab) t->n_vocab = (int32_t)id + 1;
    }
    if ((rc = read_merges(mpath, SIZE_MAX, &ml, err)) != FS_OK) goto done;
    if ((rc = tokenizer_start(t, &vocab, ml.n, vpath, err)) != FS_OK) goto done;
    rc = add_all_merges(t, &vocab, &ml, mpath, err);
done:
    json_decref(root);
    strmap_free(&vocab);
    merge_list_free(&ml);
    if (rc != FS_OK) fs_tokenizer_free(t);
    else *out = t;
    return rc;
}

fs_code fs_tokenizer_load_default(fs_tokenizer **out, fs_error *err) {
    const char *dir = getenv("FS_DATA_DIR");
#ifdef FS_DATA_DIR_DEFAULT
    if (!dir || !*dir) dir = FS_DATA_DIR_DEFAULT;
#endif
    *out = NULL;
    if (!dir || !*dir)
        return fs_fail(err, FS_ERR_INVALID, "tokenizer: no data folder: set FS_DATA_DIR to freescale's data/");
    char path[4096];
    if (snprintf(path, sizeof path, "%s/clip/bpe_simple_vocab_16e6.txt.gz", dir) >= (int)sizeof path)
        return fs_fail(err, FS_ERR_INVALID, "tokenizer: data folder path too long: %s", dir);
    fs_code rc = fs_tokenizer_load_merges(path, out, err);
    if (rc != FS_OK) fs_error_prefix(err, "the CLIP merges shipped with freescale (FS_DATA_DIR=%s): ", dir);
    return rc;
}

fs_code fs_tokenizer_load_for_model(const char *model_dir, const char *subfolder, fs_tokenizer **out,
                                    fs_error *err) {
    struct stat st;
    if (model_dir && subfolder) {
        char dir[4096], probe[4200];
        if (snprintf(dir, sizeof dir, "%s/%s", model_dir, subfolder) < (int)sizeof dir) {
            snprintf(probe, sizeof probe, "%s/vocab.json", dir);
            int has_vocab = stat(probe, &st) == 0;
            snprintf(probe, sizeof probe, "%s/merges.txt", dir);
            if (has_vocab && stat(probe, &st) == 0) return fs_tokenizer_load_dir(dir, out, err);
        }
    }
    return fs_tokenizer_load_default(out, err);
}

void fs_tokenizer_free(fs_tokenizer *t) {
    if (!t) return;
    for (int s = 0; s < 2; s++) pcre2_code_free(t->re[s]);
    free(t->pair_key); free(t->pair_rank); free(t->pair_result);
    free(t);
}

int32_t fs_tokenizer_bos(const fs_tokenizer *t) { return t->bos; }
int32_t fs_tokenizer_eos(const fs_tokenizer *t) { return t->eos; }
int32_t fs_tokenizer_pad(const fs_tokenizer *t, fs_tok_style style) { return style == FS_TOK_OPENCLIP ? 0 : t->eos; }
int32_t fs_tokenizer_vocab_size(const fs_tokenizer *t) { return t->n_vocab; }

/* ---------------------------------------------------------------- encoding */
typedef struct { int32_t *v; size_t n, cap; int oom; } idbuf;

static void ids_push(idbuf *b, int32_t id) {
    if (b->oom) return;
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        int32_t *v = realloc(b->v, cap * sizeof *v);
        if (!v) { b->oom = 1; return; }
        b->v = v;
        b->cap = cap;
    }
    b->v[b->n++] = id;
}

/* Per-word scratch for the merges: a linked list of symbols and a heap of
 * candidate pairs (rank, left position, the two ids it was made for). */
typedef struct { int32_t rank, pos, left, right; } cand;
typedef struct {
    int32_t *id, *next, *prev;
    cand *heap;
    size_t cap, heap_cap, heap_n;
} bpe_scratch;

static int cand_less(const cand *a, const cand *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}
static int heap_push(bpe_scratch *s, cand c) {
    if (s->heap_n == s->heap_cap) {
        size_t cap = s->heap_cap ? s->heap_cap * 2 : 64;
        cand *h = realloc(s->heap, cap * sizeof *h);
        if (!h) return -1;
        s->heap = h;
        s->heap_cap = cap;
    }
    size_t i = s->heap_n++;
    while (i > 0 && cand_less(&c, &s->heap[(i - 1) / 2])) { s->heap[i] = s->heap[(i - 1) / 2]; i = (i - 1) / 2; }
    s->heap[i] = c;
    return 0;
}
static cand heap_pop(bpe_scratch *s) {
    cand top = s->heap[0], last = s->heap[--s->heap_n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= s->heap_n) break;
        if (c + 1 < s->heap_n && cand_less(&s->heap[c + 1], &s->heap[c])) c++;
        if (!cand_less(&s->heap[c], &last)) break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (s->heap_n) s->heap[i] = last;
    return top;
}

static int pair_lookup(const fs_tokenizer *t, int32_t a, int32_t b, int32_t *rank, int32_t *result) {
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    size_t i = hash_pair(key) & t->pair_mask;
    while (t->pair_key[i] != UINT64_MAX) {
        if (t->pair_key[i] == key) { *rank = t->pair_rank[i]; *result = t->pair_result[i]; return 1; }
        i = (i + 1) & t->pair_mask;
    }
    return 0;
}
static int push_pair(const fs_tokenizer *t, bpe_scratch *s, int32_t pos) {
    int32_t nx = s->next[pos], rank, result;
    if (nx < 0 || !pair_lookup(t, s->id[pos], s->id[nx], &rank, &result)) return 0;
    return heap_push(s, (cand){rank, pos, s->id[pos], s->id[nx]});
}

/* One word (a piece of the pattern split) to ids: its bytes as byte
 * symbols, the last one with "</w>", then the merges. */
static int bpe_word(const fs_tokenizer *t, const unsigned char *w, size_t n, bpe_scratch *s, idbuf *out) {
    if (n > (size_t)INT32_MAX / 2) return -1;
    if (n > s->cap) {
        size_t cap = n * 2;
        free(s->id); free(s->next); free(s->prev);
        s->id = malloc(cap * sizeof *s->id);
        s->next = malloc(cap * sizeof *s->next);
        s->prev = malloc(cap * sizeof *s->prev);
        s->cap = s->id && s->next && s->prev ? cap : 0;
        if (!s->cap) return -1;
    }
    for (size_t i = 0; i < n; i++) {
        s->id[i] = i + 1 == n ? t->byte_eow_id[w[i]] : t->byte_id[w[i]];
        s->next[i] = i + 1 < n ? (int32_t)i + 1 : -1;
        s->prev[i] = (int32_t)i - 1;
    }
    s->heap_n = 0;
    for (size_t i = 0; i + 1 < n; i++)
        if (push_pair(t, s, (int32_t)i) != 0) return -1;
    while (s->heap_n) {
        cand c = heap_pop(s);
        int32_t nx = s->next[c.pos], rank, result;
        /* stale when either side has changed since the pair was pushed: ids
         * only grow into longer strings, so equal ids mean the same pair */
        if (s->id[c.pos] != c.left || nx < 0 || s->id[nx] != c.right) continue;
        if (!pair_lookup(t, c.left, c.right, &rank, &result)) continue;
        s->id[c.pos] = result;
        s->next[c.pos] = s->next[nx];
        if (s->next[nx] >= 0) s->prev[s->next[nx]] = c.pos;
        s->id[nx] = -1; /* removed */
        if (s->prev[c.pos] >= 0 && push_pair(t, s, s->prev[c.pos]) != 0) return -1;
        if (push_pair(t, s, c.pos) != 0) return -1;
    }
    for (int32_t i = 0; i >= 0; i = s->next[i]) ids_push(out, s->id[i]);
    return out->oom ? -1 : 0;
}

/* Splits cleaned text with the style's pattern and appends the words' ids. */
static fs_code encode_clean(const fs_tokenizer *t, fs_tok_style style, const char *text, size_t len,
                            bpe_scratch *s, idbuf *out, fs_error *err) {
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    if (!md) return fs_fail(err, FS_ERR_NOMEM, "tokenizer: out of memory");
    fs_code rc = FS_OK;
    PCRE2_SIZE at = 0;
    /* the cleaners always give valid UTF-8: checked on the first call only */
    uint32_t flags = 0;
    while (at < len) {
        int m = pcre2_match(t->re[style], (PCRE2_SPTR)text, len, at, flags, md, NULL);
        flags = PCRE2_NO_UTF_CHECK;
        if (m == PCRE2_ERROR_NOMATCH) break;
        if (m < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(m, msg, sizeof msg);
            rc = fs_fail(err, FS_ERR_INVALID, "tokenizer: matching the CLIP pattern at byte %zu: %s", (size_t)at,
                         (const char *)msg);
            break;
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        const char *w = text + ov[0];
        size_t n = ov[1] - ov[0];
        at = ov[1] > ov[0] ? ov[1] : ov[0] + 1;
        int bad = 0;
        if (style == FS_TOK_OPENCLIP && n == 15 && memcmp(w, "<start_of_text>", 15) == 0) ids_push(out, t->bos);
        else if (style == FS_TOK_OPENCLIP && n == 13 && memcmp(w, "<end_of_text>", 13) == 0) ids_push(out, t->eos);
        else if (style == FS_TOK_CLIP_L && ((n == 15 && memcmp(w, "<|startoftext|>", 15) == 0) ||
                                            (n == 13 && memcmp(w, "<|endoftext|>", 13) == 0))) {
            /* a lower-cased "<|ENDOFTEXT|>": transformers' ByteLevel step splits it */
            bad = bpe_word(t, (const unsigned char *)w, 2, s, out) ||
                  bpe_word(t, (const unsigned char *)w + 2, n - 4, s, out) ||
                  bpe_word(t, (const unsigned char *)w + n - 2, 2, s, out);
        } else bad = bpe_word(t, (const unsigned char *)w, n, s, out);
        if (bad || out->oom) { rc = fs_fail(err, FS_ERR_NOMEM, "tokenizer: out of memory"); break; }
    }
    pcre2_match_data_free(md);
    return rc;
}

/* transformers takes literal "<|startoftext|>"/"<|endoftext|>" out of the raw
 * text before cleaning; returns the special's length at p, or 0. */
static size_t special_at(const char *p, size_t left) {
    if (left >= 15 && memcmp(p, "<|startoftext|>", 15) == 0) return 15;
    if (left >= 13 && memcmp(p, "<|endoftext|>", 13) == 0) return 13;
    return 0;
}

fs_code fs_tokenize(const fs_tokenizer *t, fs_tok_style style, const char *text, size_t len, int32_t **ids,
                    size_t *n_ids, fs_error *err) {
    *ids = NULL;
    *n_ids = 0;
    if (!t || (style != FS_TOK_CLIP_L && style != FS_TOK_OPENCLIP) || (!text && len))
        return fs_fail(err, FS_ERR_INVALID, "fs_tokenize: no tokenizer, an unknown style (%d) or no text", (int)style);
    idbuf out = {0};
    bpe_scratch s = {0};
    fs_code rc = FS_OK;
    size_t pos = 0;
    while (rc == FS_OK && pos <= len) {
        /* CLIP-L: the text up to the next special; open_clip: all of it */
        size_t end = pos, sp = 0;
        if (style == FS_TOK_CLIP_L)
            while (end < len && !(sp = special_at(text + end, len - end))) end++;
        else end = len;
        char *clean = NULL;
        size_t clen = 0;
        if (end > pos) {
            rc = style == FS_TOK_CLIP_L ? fs_tok_clean_hf(text + pos, end - pos, &clean, &clen, err)
                                        : fs_tok_clean_openclip(text + pos, end - pos, &clean, &clen, err);
            if (rc == FS_OK) rc = encode_clean(t, style, clean, clen, &s, &out, err);
            free(clean);
        }
        if (sp) ids_push(&out, sp == 15 ? t->bos : t->eos);
        pos = end + (sp ? sp : 1);
        if (!sp && end >= len) break;
    }
    if (rc == FS_OK && out.oom) rc = fs_fail(err, FS_ERR_NOMEM, "fs_tokenize: out of memory");
    free(s.id); free(s.next); free(s.prev); free(s.heap);
    if (rc != FS_OK) { free(out.v); return rc; }
    *ids = out.n ? out.v : (free(out.v), NULL);
    *n_ids = out.n;
    return FS_OK;
}

static void fill_window(const fs_tokenizer *t, fs_tok_style style, const int32_t *ids, size_t n, int32_t *w) {
    size_t k = 0;
    w[k++] = t->bos;
    for (size_t i = 0; i < n && i < FS_TOK_CHUNK; i++) w[k++] = ids[i];
    w[k++] = t->eos;
    while (k < FS_TOK_CONTEXT) w[k++] = fs_tokenizer_pad(t, style);
}

fs_code fs_tokenize_window(const fs_tokenizer *t, fs_tok_style style, const char *text,
                           int32_t out[FS_TOK_CONTEXT], fs_error *err) {
    int32_t *ids;
    size_t n;
    fs_code rc = fs_tokenize(t, style, text, text ? strlen(text) : 0, &ids, &n, err);
    if (rc != FS_OK) return rc;
    fill_window(t, style, ids, n, out);
    free(ids);
    return FS_OK;
}

fs_code fs_tokenize_chunks(const fs_tokenizer *t, fs_tok_style style, const char *text, int32_t **out,
                           int *n_chunks, fs_error *err) {
    *out = NULL;
    *n_chunks = 0;
    int32_t *ids;
    size_t n;
    fs_code rc = fs_tokenize(t, style, text, text ? strlen(text) : 0, &ids, &n, err);
    if (rc != FS_OK) return rc;
    size_t chunks = n ? (n + FS_TOK_CHUNK - 1) / FS_TOK_CHUNK : 1;
    if (chunks > INT32_MAX / FS_TOK_CONTEXT) {
        free(ids);
        return fs_fail(err, FS_ERR_RANGE, "fs_tokenize_chunks: %zu tokens is too many chunks", n);
    }
    int32_t *w = malloc(chunks * FS_TOK_CONTEXT * sizeof *w);
    if (!w) { free(ids); return fs_fail(err, FS_ERR_NOMEM, "fs_tokenize_chunks: out of memory"); }
    for (size_t c = 0; c < chunks; c++) {
        size_t first = c * FS_TOK_CHUNK;
        fill_window(t, style, ids ? ids + first : NULL, n > first ? n - first : 0, w + c * FS_TOK_CONTEXT);
    }
    free(ids);
    *out = w;
    *n_chunks = (int)chunks;
    return FS_OK;
}
