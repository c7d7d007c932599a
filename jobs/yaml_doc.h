/* jobs/yaml_doc.h: private to jobs/ (jobs.h is the folder's public header).
 * A small YAML tree built from libyaml's event stream: every node keeps its
 * 1-based line and column so the schema layer can point at it. Aliases are
 * shared pointers to the anchored node (never copies), so a "billion laughs"
 * document stays as small as its text; node count and nesting depth are
 * capped so a hostile file costs bounded memory. */
#ifndef FS_JOBS_YAML_DOC_H
#define FS_JOBS_YAML_DOC_H

#include <stddef.h>
#include <stdint.h>
#include "core/core.h"

enum {
    YD_MAX_NODES = 10000,   /* a job needs about 40 */
    YD_MAX_DEPTH = 32,      /* a job needs 3 (mapping, size mapping, value) */
    YD_MAX_ANCHORS = 256,
};

typedef enum { YD_SCALAR, YD_SEQ, YD_MAP } yd_kind;

typedef struct yd_node {
    yd_kind kind;
    int line, col;            /* 1-based, of the node's first character */
    /* scalars: a NUL-terminated copy; len can exceed strlen(text) when the
     * value holds an escaped NUL ("\0"), which the schema refuses */
    char *text;
    size_t len;
    /* 1: a plain (unquoted) scalar without a !!str tag, i.e. one that may be
     * read as a number, a boolean or null; 0: quoted, block or !!str: a string */
    int plain;
    /* collections: a sequence's items, or a mapping's key0, value0, key1, ... */
    size_t count;             /* items (sequence) or pairs (mapping) */
    struct yd_node **items;
    size_t n_items, cap;      /* items stored (a mapping: 2 per pair), allocated */
} yd_node;

typedef struct yd_doc {
    yd_node *root;            /* NULL: no document or an empty one */
    yd_node **all;            /* every node made, for freeing (aliases share) */
    size_t n_all, cap_all;
} yd_doc;

typedef struct yd_error {
    fs_code code;             /* FS_ERR_FORMAT, FS_ERR_NOMEM */
    int line, col;            /* 1-based */
    char msg[512];            /* "malformed YAML: ...", without the position */
} yd_error;

/* Parses one YAML document (a second one is an error). On failure *doc is
 * empty and e says what and where. */
fs_code yd_parse(const char *text, size_t len, yd_doc *doc, yd_error *e);
void yd_free(yd_doc *doc);

/* A plain scalar that YAML reads as null: "", "~", null, Null, NULL. */
int yd_is_null(const yd_node *n);

/* Decodes one UTF-8 character of s[0..len) (strict: no overlong forms, no
 * surrogates, at most U+10FFFF) into *cp; returns its byte length, or 0 when
 * the bytes there are not valid UTF-8. */
size_t yd_utf8_decode(const unsigned char *s, size_t len, uint32_t *cp);
/* The offset of the first byte that is not valid UTF-8, or len when all is. */
size_t yd_utf8_check(const char *s, size_t len);

#endif
