/* libFuzzer target for the CLIP tokenizer (text/tokenizer.c, tok_clean.c):
 * any byte string, invalid UTF-8 and NULs included, must tokenize in both
 * styles without an error, give ids inside the vocabulary, windows that
 * start with BOS and hold EOS, and chunks that agree with the plain ids.
 * The shipped merges are loaded once, from $FS_DATA_DIR or else the data/
 * folder next to this file's repository.
 * fuzz-sources: text/tokenizer.c text/tok_clean.c
 * fuzz-libs: -lpcre2-8 -licuuc -lz -ljansson */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "text/tokenizer.h"

static fs_tokenizer *tok;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    if (!getenv("FS_DATA_DIR")) {
        /* __FILE__ is <repo>/tests/fuzz/fuzz_tokenizer.c (run.sh passes it absolute) */
        char dir[4096];
        snprintf(dir, sizeof dir, "%s", __FILE__);
        char *cut = strstr(dir, "/tests/fuzz/");
        if (cut) strcpy(cut, "/data");
        setenv("FS_DATA_DIR", dir, 1);
    }
    fs_error err;
    if (fs_tokenizer_load_default(&tok, &err) != FS_OK) {
        fprintf(stderr, "fuzz_tokenizer: %s\n", err.msg);
        abort();
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1); /* windows and chunks take C strings */
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = 0;
    size_t clen = strlen(text);
    int32_t n_vocab = fs_tokenizer_vocab_size(tok);
    for (int s = 0; s < 2; s++) {
        fs_tok_style style = (fs_tok_style)s;
        fs_error err;
        int32_t *ids = NULL, win[FS_TOK_CONTEXT], *chunks = NULL;
        size_t n = 0;
        int n_chunks = 0;
        if (fs_tokenize(tok, style, (const char *)data, size, &ids, &n, &err) != FS_OK) abort();
        for (size_t i = 0; i < n; i++)
            if (ids[i] < 0 || ids[i] >= n_vocab) abort();
        free(ids);
        /* the C-string entry points see the text up to its first NUL */
        if (fs_tokenize(tok, style, text, clen, &ids, &n, &err) != FS_OK) abort();
        if (fs_tokenize_window(tok, style, text, win, &err) != FS_OK) abort();
        if (win[0] != fs_tokenizer_bos(tok)) abort();
        size_t body = n < FS_TOK_CHUNK ? n : FS_TOK_CHUNK;
        if (win[body + 1] != fs_tokenizer_eos(tok) || (body && memcmp(win + 1, ids, body * sizeof *ids) != 0)) abort();
        if (fs_tokenize_chunks(tok, style, text, &chunks, &n_chunks, &err) != FS_OK) abort();
        if (n_chunks != (n ? (int)((n + FS_TOK_CHUNK - 1) / FS_TOK_CHUNK) : 1)) abort();
        if (memcmp(chunks, win, sizeof win) != 0) abort();
        for (int c = 0; c < n_chunks; c++) {
            size_t first = (size_t)c * FS_TOK_CHUNK, k = n - first < FS_TOK_CHUNK ? n - first : FS_TOK_CHUNK;
            if (n && memcmp(chunks + c * FS_TOK_CONTEXT + 1, ids + first, k * sizeof *ids) != 0) abort();
        }
        free(ids);
        free(chunks);
        /* the cleaners alone: NUL-terminated output for any input */
        char *clean = NULL;
        size_t cl = 0;
        if ((s ? fs_tok_clean_openclip : fs_tok_clean_hf)((const char *)data, size, &clean, &cl, &err) != FS_OK) abort();
        if (clean[cl] != 0) abort();
        free(clean);
    }
    free(text);
    return 0;
}
