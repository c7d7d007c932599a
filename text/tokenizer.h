/* text/tokenizer.h: the CLIP byte-level BPE tokenizer as SDXL uses it.
 *
 * One vocabulary (49,408 ids: 256 byte symbols, the same with "</w>", 48,894
 * merges, <|startoftext|> = 49406, <|endoftext|> = 49407) serves both SDXL
 * text encoders; what differs between them is the reference each must match:
 *
 *   FS_TOK_CLIP_L    encoder 0 (CLIP-L, diffusers tokenizer/): transformers'
 *                    CLIPTokenizer: the raw text is split at literal
 *                    "<|startoftext|>"/"<|endoftext|>" (those become 49406 /
 *                    49407), each part NFC-normalised, every run of Unicode
 *                    White_Space turned into one space, lower-cased character
 *                    by character. Padding: 49407.
 *   FS_TOK_OPENCLIP  encoder 1 (OpenCLIP-bigG): open_clip.tokenize, as SGM
 *                    calls it: ftfy.fix_text, html.unescape twice, Python's
 *                    whitespace split/join, str.lower(); "<start_of_text>" /
 *                    "<end_of_text>" in the cleaned text are the specials.
 *                    Padding: 0. (diffusers' tokenizer_2 pads with "!" as a
 *                    special token, which turns a literal "!" into 0 too;
 *                    spec/sdxl.md section 6: open_clip is the reference.)
 *
 * Both then split with the CLIP pattern ('s|'t|'re|'ve|'m|'ll|'d|\p{L}+|
 * \p{N}|[^\s\p{L}\p{N}]+, PCRE2 in UTF + UCP mode), map bytes to the byte
 * symbols and apply the merges in rank order with "</w>" on each word's end.
 * Unicode data comes from ICU (NFC, NFKC, case mappings) and PCRE2
 * (letters, digits), not from tables of our own.
 *
 * Known differences from the references (deliberate, see tok_clean.c):
 * ftfy's mojibake repair (fix_encoding: guessing that "cafÃ©" was "café")
 * is not done; invalid UTF-8 in the input becomes U+FFFD (Python never sees
 * such input); characters newer than the Unicode versions of our libraries
 * (PCRE2 10.42: Unicode 14, ICU 72: 15) may be classed differently.
 *
 * A tokenizer is read-only after loading: any number of threads may encode
 * with it at once. */
#ifndef FS_TEXT_TOKENIZER_H
#define FS_TEXT_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>
#include "core/core.h"

#define FS_TOK_CONTEXT 77         /* ids per window: BOS + 75 + EOS */
#define FS_TOK_CHUNK (FS_TOK_CONTEXT - 2)
#define FS_TOK_BOS 49406          /* ids in the CLIP vocabulary (vocab.json may differ: */
#define FS_TOK_EOS 49407          /* use fs_tokenizer_bos/eos for a loaded one) */

typedef enum { FS_TOK_CLIP_L = 0, FS_TOK_OPENCLIP = 1 } fs_tok_style;

typedef struct fs_tokenizer fs_tokenizer;

/* Loads <dir>/vocab.json and <dir>/merges.txt (a diffusers tokenizer/ or
 * tokenizer_2/ folder). */
fs_code fs_tokenizer_load_dir(const char *dir, fs_tokenizer **out, fs_error *err);
/* Builds the vocabulary from a merges file alone, the open_clip way (byte
 * symbols, byte symbols + "</w>", the first 48,894 merges in order, the two
 * specials): open_clip's bpe_simple_vocab_16e6.txt(.gz) or an HF merges.txt. */
fs_code fs_tokenizer_load_merges(const char *path, fs_tokenizer **out, fs_error *err);
/* The copy the project ships: $FS_DATA_DIR/clip/bpe_simple_vocab_16e6.txt.gz,
 * FS_DATA_DIR defaulting to the source tree's data/ folder. */
fs_code fs_tokenizer_load_default(fs_tokenizer **out, fs_error *err);
/* For a model: <model_dir>/<subfolder>/{vocab.json,merges.txt} when model_dir
 * is a diffusers folder that has them, else the shipped copy (single-file
 * checkpoints carry no tokenizer). model_dir may be NULL. */
fs_code fs_tokenizer_load_for_model(const char *model_dir, const char *subfolder,
                                    fs_tokenizer **out, fs_error *err);
void fs_tokenizer_free(fs_tokenizer *tok);

int32_t fs_tokenizer_bos(const fs_tokenizer *tok);
int32_t fs_tokenizer_eos(const fs_tokenizer *tok);
int32_t fs_tokenizer_pad(const fs_tokenizer *tok, fs_tok_style style); /* EOS or 0 */
int32_t fs_tokenizer_vocab_size(const fs_tokenizer *tok);

/* The ids of text[0..len) without BOS/EOS and without truncation. *ids is
 * malloc'ed (free() it; NULL when *n_ids is 0). */
fs_code fs_tokenize(const fs_tokenizer *tok, fs_tok_style style, const char *text, size_t len,
                    int32_t **ids, size_t *n_ids, fs_error *err);
/* One 77-id window: BOS, the first 75 ids, EOS, then padding. */
fs_code fs_tokenize_window(const fs_tokenizer *tok, fs_tok_style style, const char *text,
                           int32_t out[FS_TOK_CONTEXT], fs_error *err);
/* Long prompts as stable-diffusion.cpp and A1111 feed them: the ids cut into
 * 75-id chunks, each one window (BOS + chunk + EOS + padding); at least one
 * chunk (an empty prompt gives BOS, EOS, padding). *out holds n_chunks * 77
 * ids, malloc'ed. A1111's moving of a cut back to the last comma is not done. */
fs_code fs_tokenize_chunks(const fs_tokenizer *tok, fs_tok_style style, const char *text,
                           int32_t **out, int *n_chunks, fs_error *err);

/* The cleaning steps alone (what the pattern then splits), as malloc'ed
 * NUL-terminated UTF-8: for tests and for showing a user what the tokenizer saw.
 * fs_tok_clean_hf is applied to the parts between special tokens. */
fs_code fs_tok_clean_openclip(const char *text, size_t len, char **out, size_t *out_len,
                              fs_error *err);
fs_code fs_tok_clean_hf(const char *text, size_t len, char **out, size_t *out_len,
                        fs_error *err);

#endif
