/* Tests for the CLIP tokenizer (text/tokenizer.h):
 *  - every prompt of tests/data/tokenizer/golden.json (tools/gen_tokenizer_golden.py:
 *    transformers' CLIPTokenizer for CLIP-L, open_clip.tokenize for bigG) gives
 *    exactly the references' ids, 77-id windows and 75-token chunks;
 *  - well-known ids of the HF hub's CLIP vocabulary (the shipped merges give the same ids);
 *  - a diffusers-style folder (vocab.json + merges.txt, written here with ids
 *    unlike CLIP's) is used as written, and FS_DATA_DIR / load_for_model find files;
 *  - bad files are refused with FS_ERR_* and a message, bad text (invalid
 *    UTF-8, NULs, a long run) is tokenized without failing;
 *  - encoding from several threads at once gives the serial result. */
#include <jansson.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "check.h"
#include "text/tokenizer.h"

static int ids_equal_json(const int32_t *ids, size_t n, const json_t *arr) {
    if (!json_is_array(arr) || json_array_size(arr) != n) return 0;
    for (size_t i = 0; i < n; i++)
        if (json_integer_value(json_array_get(arr, i)) != ids[i]) return 0;
    return 1;
}

static void print_ids(const char *what, const int32_t *ids, size_t n) {
    fprintf(stderr, "  %s:", what);
    for (size_t i = 0; i < n && i < 40; i++) fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, "%s\n", n > 40 ? " ..." : "");
}

/* One golden prompt, one style: the ids, the window, the chunks. */
static void check_prompt(const fs_tokenizer *tok, fs_tok_style style, const json_t *e, int index) {
    const char *name = style == FS_TOK_CLIP_L ? "clip_l" : "bigg";
    char key[32];
    const char *text = json_string_value(json_object_get(e, "text"));
    size_t len = json_string_length(json_object_get(e, "text"));
    fs_error err = {0};
    int32_t *ids = NULL, win[FS_TOK_CONTEXT], *chunks = NULL;
    size_t n = 0;
    int n_chunks = 0;
    CHECK(fs_tokenize(tok, style, text, len, &ids, &n, &err) == FS_OK, "prompt %d %s: %s", index, name, err.msg);
    snprintf(key, sizeof key, "%s_ids", name);
    int ok = ids_equal_json(ids, n, json_object_get(e, key));
    CHECK(ok, "prompt %d (%.60s) %s ids differ from the reference", index, text, name);
    if (!ok) print_ids("C", ids, n);
    CHECK(fs_tokenize_window(tok, style, text, win, &err) == FS_OK, "%s", err.msg);
    CHECK(ids_equal_json(win, FS_TOK_CONTEXT, json_object_get(e, name)), "prompt %d %s window differs", index, name);
    CHECK(fs_tokenize_chunks(tok, style, text, &chunks, &n_chunks, &err) == FS_OK, "%s", err.msg);
    snprintf(key, sizeof key, "%s_chunks", name);
    const json_t *want = json_object_get(e, key);
    if (want) {
        CHECK((size_t)n_chunks == json_array_size(want), "prompt %d %s: %d chunks, want %zu", index, name, n_chunks,
              json_array_size(want));
        for (int c = 0; c < n_chunks && (size_t)c < json_array_size(want); c++)
            CHECK(ids_equal_json(chunks + c * FS_TOK_CONTEXT, FS_TOK_CONTEXT, json_array_get(want, (size_t)c)),
                  "prompt %d %s chunk %d differs", index, name, c);
    } else {
        CHECK(n_chunks == 1 && memcmp(chunks, win, sizeof win) == 0, "prompt %d %s: a short prompt is one window",
              index, name);
    }
    free(ids);
    free(chunks);
}

static json_t *load_golden(void) {
    const char *dir = getenv("FS_TEST_DATA");
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer/golden.json", dir ? dir : "tests/data");
    json_error_t jerr;
    json_t *doc = json_load_file(path, 0, &jerr);
    CHECK(doc != NULL, "%s: %s", path, jerr.text);
    return doc;
}

/* ---------------------------------------------------------------- a tiny diffusers folder */
static void byte_symbol(int b, char out[3]) {
    int cp = b, printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    if (!printable) {
        cp = 256;
        for (int x = 0; x < b; x++)
            cp += !((x >= '!' && x <= '~') || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE && x <= 0xFF));
    }
    if (cp < 0x80) { out[0] = (char)cp; out[1] = 0; }
    else { out[0] = (char)(0xC0 | cp >> 6); out[1] = (char)(0x80 | (cp & 0x3F)); out[2] = 0; }
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    CHECK(f != NULL, "cannot write %s", path);
    if (f) { fputs(text, f); fclose(f); }
}

/* vocab.json: byte symbols at 1000 + b, with </w> at 2000 + b, merged tokens
 * from 10, specials 7 and 8: nothing like CLIP's ids, so a pass proves the
 * folder's ids are the ones used. */
static void write_tiny_folder(const char *dir, int with_merges, const char *merges) {
    mkdir(dir, 0700);
    json_t *v = json_object();
    for (int b = 0; b < 256; b++) {
        char sym[3], eow[8];
        byte_symbol(b, sym);
        snprintf(eow, sizeof eow, "%s</w>", sym);
        json_object_set_new(v, sym, json_integer(1000 + b));
        json_object_set_new(v, eow, json_integer(2000 + b));
    }
    const char *merged[] = {"ca", "cat</w>", "do", "dog</w>"};
    for (int i = 0; i < 4; i++) json_object_set_new(v, merged[i], json_integer(10 + i));
    json_object_set_new(v, "<|startoftext|>", json_integer(7));
    json_object_set_new(v, "<|endoftext|>", json_integer(8));
    char path[1024];
    snprintf(path, sizeof path, "%s/vocab.json", dir);
    CHECK(json_dump_file(v, path, 0) == 0, "writing %s", path);
    json_decref(v);
    snprintf(path, sizeof path, "%s/merges.txt", dir);
    if (with_merges) write_text(path, merges);
    else unlink(path);
}

static void test_folder(const char *tmp) {
    char dir[700], model[512];
    fs_error err = {0};
    fs_tokenizer *t = NULL;
    snprintf(model, sizeof model, "%s/model", tmp);
    mkdir(model, 0700);
    snprintf(dir, sizeof dir, "%s/tokenizer", model);
    write_tiny_folder(dir, 1, "#version: 0.2\nc a\nca t</w>\nd o\ndo g</w>\n");
    CHECK(fs_tokenizer_load_dir(dir, &t, &err) == FS_OK, "%s", err.msg);
    if (t) {
        int32_t *ids;
        size_t n;
        /* "cats": c a t s</w> -> ca t s</w> (no "ca t" merge without </w>) */
        CHECK(fs_tokenize(t, FS_TOK_CLIP_L, "Cat DOG cats", 12, &ids, &n, &err) == FS_OK, "%s", err.msg);
        int32_t expect[] = {11, 13, 10, 1000 + 't', 2000 + 's'};
        CHECK(n == 5 && memcmp(ids, expect, sizeof expect) == 0, "tiny folder ids (n=%zu)", n);
        free(ids);
        int32_t win[FS_TOK_CONTEXT];
        CHECK(fs_tokenize_window(t, FS_TOK_CLIP_L, "cat <|endoftext|>", win, &err) == FS_OK, "%s", err.msg);
        CHECK(win[0] == 7 && win[1] == 11 && win[2] == 8 && win[3] == 8 && win[76] == 8,
              "tiny folder window: BOS/EOS/padding from vocab.json (%d %d %d %d)", win[0], win[1], win[2], win[3]);
        CHECK(fs_tokenize_window(t, FS_TOK_OPENCLIP, "dog", win, &err) == FS_OK, "%s", err.msg);
        CHECK(win[0] == 7 && win[1] == 13 && win[2] == 8 && win[3] == 0 && win[76] == 0, "tiny folder bigG window");
        CHECK(fs_tokenizer_bos(t) == 7 && fs_tokenizer_eos(t) == 8 && fs_tokenizer_vocab_size(t) == 2256,
              "tiny folder specials / size %d", fs_tokenizer_vocab_size(t));
        fs_tokenizer_free(t);
    }
    /* load_for_model: the folder when present, else the shipped merges */
    t = NULL;
    CHECK(fs_tokenizer_load_for_model(model, "tokenizer", &t, &err) == FS_OK && t && fs_tokenizer_eos(t) == 8,
          "load_for_model picks <model>/tokenizer: %s", err.msg);
    fs_tokenizer_free(t);
    t = NULL;
    CHECK(fs_tokenizer_load_for_model(model, "tokenizer_2", &t, &err) == FS_OK && t &&
              fs_tokenizer_vocab_size(t) == 49408, "load_for_model without tokenizer_2/ falls back: %s", err.msg);
    fs_tokenizer_free(t);

    /* bad folders: refused with a message naming the file */
    struct { const char *merges; int has_merges; fs_code want; const char *what; } bad[] = {
        {"", 0, FS_ERR_IO, "no merges.txt"},
        {"#version: 0.2\nc a\nq z\n", 1, FS_ERR_FORMAT, "a merge whose result is not in the vocabulary"},
        {"#version: 0.2\nc a b\n", 1, FS_ERR_FORMAT, "a merge line of three tokens"},
        {"#version: 0.2\n", 1, FS_ERR_FORMAT, "no merges at all"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_tiny_folder(dir, bad[i].has_merges, bad[i].merges);
        t = NULL;
        err.msg[0] = 0;
        fs_code rc = fs_tokenizer_load_dir(dir, &t, &err);
        CHECK(rc == bad[i].want && t == NULL && strstr(err.msg, dir), "%s: got %s \"%s\"", bad[i].what,
              fs_code_name(rc), err.msg);
    }
    char path[1024];
    snprintf(path, sizeof path, "%s/vocab.json", dir);
    write_text(path, "[1, 2, 3]");
    CHECK(fs_tokenizer_load_dir(dir, &t, &err) == FS_ERR_FORMAT, "a vocab.json that is no object: %s", err.msg);
    write_text(path, "{\"a\": 0, \"<|startoftext|>\": 1, \"<|endoftext|>\": 2}");
    write_text(strcat(strcpy(path, dir), "/merges.txt"), "#version: 0.2\na a\n");
    CHECK(fs_tokenizer_load_dir(dir, &t, &err) == FS_ERR_FORMAT && strstr(err.msg, "byte"),
          "a vocabulary without the byte symbols: %s", err.msg);

    /* FS_DATA_DIR: a plain-text merges file under the gzip name reads too */
    char data[512], clip[600], gz[700];
    snprintf(data, sizeof data, "%s/data", tmp);
    snprintf(clip, sizeof clip, "%s/clip", data);
    snprintf(gz, sizeof gz, "%s/bpe_simple_vocab_16e6.txt.gz", clip);
    mkdir(data, 0700);
    mkdir(clip, 0700);
    write_text(gz, "bpe_simple_vocab_16e6.txt#version: 0.2\nc a\nca t</w>\n");
    const char *old = getenv("FS_DATA_DIR");
    setenv("FS_DATA_DIR", data, 1);
    t = NULL;
    CHECK(fs_tokenizer_load_default(&t, &err) == FS_OK && t && fs_tokenizer_vocab_size(t) == 516 &&
              fs_tokenizer_bos(t) == 514, "FS_DATA_DIR override: %s", err.msg);
    if (t) {
        int32_t *ids;
        size_t n;
        CHECK(fs_tokenize(t, FS_TOK_OPENCLIP, "cat", 3, &ids, &n, &err) == FS_OK && n == 1 && ids[0] == 513,
              "open_clip construction: merge 1 has id 512 + 1");
        free(ids);
    }
    fs_tokenizer_free(t);
    setenv("FS_DATA_DIR", tmp, 1); /* no clip/ folder there */
    t = NULL;
    CHECK(fs_tokenizer_load_default(&t, &err) == FS_ERR_IO && t == NULL && strstr(err.msg, "FS_DATA_DIR"),
          "a data folder without the merges: %s", err.msg);
    if (old) setenv("FS_DATA_DIR", old, 1);
    else unsetenv("FS_DATA_DIR");
}

/* ---------------------------------------------------------------- hostile text */
static void test_bad_text(const fs_tokenizer *tok) {
    static const char *samples[] = {"\xff\xfe\xfd", "a\xc3", "\xed\xa0\x80 surrogate", "\xf4\x90\x80\x80 over",
                                    "\xc0\xaf overlong", "&#", "&", "&#x;", "\x1b[", "&#99999999999999999999;"};
    fs_error err = {0};
    for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++)
        for (int s = 0; s < 2; s++) {
            int32_t *ids = NULL;
            size_t n = 0;
            CHECK(fs_tokenize(tok, (fs_tok_style)s, samples[i], strlen(samples[i]), &ids, &n, &err) == FS_OK,
                  "sample %zu: %s", i, err.msg);
            free(ids);
        }
    /* invalid UTF-8 reads as U+FFFD (bytes ef bf bd), embedded NULs are kept by CLIP-L */
    int32_t *a, *b;
    size_t na, nb;
    fs_tokenize(tok, FS_TOK_CLIP_L, "x\xffy", 3, &a, &na, &err);
    fs_tokenize(tok, FS_TOK_CLIP_L, "x\xef\xbf\xbdy", 5, &b, &nb, &err);
    CHECK(na == nb && memcmp(a, b, na * sizeof *a) == 0, "invalid byte = U+FFFD");
    free(a); free(b);
    CHECK(fs_tokenize(tok, FS_TOK_CLIP_L, "a\0b", 3, &a, &na, &err) == FS_OK && na == 3, "NUL kept in CLIP-L");
    free(a);
    CHECK(fs_tokenize(tok, FS_TOK_OPENCLIP, "a\0b", 3, &a, &na, &err) == FS_OK && na == 1, "ftfy drops NUL");
    free(a);
    /* a 1 MiB word: the merges run in O(n log n) */
    size_t big = 1 << 20;
    char *s = malloc(big + 1);
    for (size_t i = 0; i < big; i++) s[i] = (char)('a' + (i * 7919 % 26));
    s[big] = 0;
    double t0 = fs_now();
    CHECK(fs_tokenize(tok, FS_TOK_OPENCLIP, s, big, &a, &na, &err) == FS_OK && na > 1000, "1 MiB word: %s", err.msg);
    printf("tokenizer: a 1 MiB one-word prompt: %zu ids in %.2f s\n", na, fs_now() - t0);
    free(a);
    free(s);
}

int main(void) {
    fs_error err = {0};
    fs_tokenizer *tok = NULL;
    double t0 = fs_now();
    if (fs_tokenizer_load_default(&tok, &err) != FS_OK) {
        fprintf(stderr, "test_tokenizer: %s\n", err.msg);
        return 1;
    }
    printf("tokenizer: shipped merges loaded in %.3f s\n", fs_now() - t0);
    CHECK(fs_tokenizer_vocab_size(tok) == 49408 && fs_tokenizer_bos(tok) == FS_TOK_BOS &&
              fs_tokenizer_eos(tok) == FS_TOK_EOS, "CLIP vocabulary: %d ids", fs_tokenizer_vocab_size(tok));
    CHECK(fs_tokenizer_pad(tok, FS_TOK_CLIP_L) == 49407 && fs_tokenizer_pad(tok, FS_TOK_OPENCLIP) == 0, "padding");

    /* ids published for the HF hub's openai/clip-vit-* vocab.json */
    struct { const char *text; int32_t ids[8]; size_t n; } known[] = {
        {"a photo of a cat", {320, 1125, 539, 320, 2368}, 5},
        {"Hello, world!", {3306, 267, 1002, 256}, 4},
        {"dog car beach sunset", {1929, 1615, 2117, 3424}, 4},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        for (int s = 0; s < 2; s++) {
            int32_t *ids;
            size_t n;
            fs_tokenize(tok, (fs_tok_style)s, known[i].text, strlen(known[i].text), &ids, &n, &err);
            CHECK(n == known[i].n && memcmp(ids, known[i].ids, n * sizeof *ids) == 0, "\"%s\" style %d", known[i].text, s);
            free(ids);
        }

    json_t *doc = load_golden();
    const json_t *prompts = doc ? json_object_get(doc, "prompts") : NULL;
    size_t np = json_array_size(prompts);
    CHECK(np >= 30, "golden prompts: %zu", np);
    for (size_t i = 0; i < np; i++) {
        check_prompt(tok, FS_TOK_CLIP_L, json_array_get(prompts, i), (int)i);
        check_prompt(tok, FS_TOK_OPENCLIP, json_array_get(prompts, i), (int)i);
    }

    /* threads: the tokenizer is read-only once loaded */
    int mismatches = 0;
#pragma omp parallel for num_threads(4) reduction(+ : mismatches) schedule(dynamic, 1)
    for (int k = 0; k < (int)np * 4; k++) {
        const json_t *e = json_array_get(prompts, (size_t)k % np);
        int32_t win[FS_TOK_CONTEXT];
        fs_error e2;
        fs_tok_style st = (fs_tok_style)(k / (int)np % 2);
        if (fs_tokenize_window(tok, st, json_string_value(json_object_get(e, "text")), win, &e2) != FS_OK ||
            !ids_equal_json(win, FS_TOK_CONTEXT, json_object_get(e, st == FS_TOK_CLIP_L ? "clip_l" : "bigg")))
            mismatches++;
    }
    CHECK(mismatches == 0, "%d windows differ when encoded from 4 threads", mismatches);

    /* speed, for the record: the longest golden prompt */
    const char *longest = NULL;
    for (size_t i = 0; i < np; i++) {
        const char *t = json_string_value(json_object_get(json_array_get(prompts, i), "text"));
        if (!longest || strlen(t) > strlen(longest)) longest = t;
    }
    if (longest) {
        int reps = 200;
        t0 = fs_now();
        for (int r = 0; r < reps; r++) {
            int32_t *ids;
            size_t n;
            fs_tokenize(tok, (fs_tok_style)(r & 1), longest, strlen(longest), &ids, &n, &err);
            free(ids);
        }
        printf("tokenizer: %zu-byte prompt in %.3f ms\n", strlen(longest), (fs_now() - t0) / reps * 1e3);
    }

    char tmp[] = "/tmp/fs_test_tokenizer_XXXXXX";
    if (mkdtemp(tmp)) {
        test_folder(tmp);
        char cmd[200];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp);
    } else CHECK(0, "mkdtemp failed");
    test_bad_text(tok);

    json_decref(doc);
    fs_tokenizer_free(tok);
    return check_report("test_tokenizer");
}
