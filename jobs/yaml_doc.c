/* jobs/yaml_doc.c: libyaml's event stream -> a small tree with positions.
 * The event API rather than yaml_parser_load: it lets us stop at the node
 * and depth caps before anything big is built, see the second document the
 * moment it starts, and resolve aliases ourselves (to shared nodes). */
#include "jobs/yaml_doc.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define TAG_PREFIX "tag:yaml.org,2002:"

typedef struct {
    char *name;
    yd_node *node;
} anchor;

typedef struct {
    yd_doc *doc;
    yd_error *e;
    yd_node *stack[YD_MAX_DEPTH];
    char *stack_anchor[YD_MAX_DEPTH];  /* registered when the collection ends */
    int depth;
    anchor anchors[YD_MAX_ANCHORS];
    int n_anchors;
    size_t n_nodes;                    /* nodes and aliases seen */
} builder;

static fs_code fail(yd_error *e, fs_code code, const yaml_mark_t *m, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static fs_code fail(yd_error *e, fs_code code, const yaml_mark_t *m, const char *fmt, ...) {
    e->code = code;
    e->line = m ? (int)m->line + 1 : 1;
    e->col = m ? (int)m->column + 1 : 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return code;
}

int yd_is_null(const yd_node *n) {
    if (!n || n->kind != YD_SCALAR || !n->plain) return 0;
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};
    for (size_t i = 0; i < sizeof nulls / sizeof *nulls; i++)
        if (n->len == strlen(nulls[i]) && !memcmp(n->text, nulls[i], n->len)) return 1;
    return 0;
}

void yd_free(yd_doc *doc) {
    if (!doc) return;
    for (size_t i = 0; i < doc->n_all; i++) {
        free(doc->all[i]->text);
        free(doc->all[i]->items);
        free(doc->all[i]);
    }
    free(doc->all);
    memset(doc, 0, sizeof *doc);
}

static fs_code nomem(builder *b, const yaml_mark_t *m) {
    return fail(b->e, FS_ERR_NOMEM, m, "out of memory reading YAML");
}

/* A tag we understand, or an error: a job file has no use for custom types. */
static fs_code check_tag(builder *b, const char *tag, yd_kind kind, const yaml_mark_t *m,
                         int *is_str) {
    *is_str = 0;
    if (!tag) return FS_OK;
    if (!strcmp(tag, "!")) { *is_str = kind == YD_SCALAR; return FS_OK; }  /* non-specific */
    if (!strncmp(tag, TAG_PREFIX, strlen(TAG_PREFIX))) {
        const char *t = tag + strlen(TAG_PREFIX);
        if (kind == YD_SCALAR) {
            if (!strcmp(t, "str")) { *is_str = 1; return FS_OK; }
            if (!strcmp(t, "int") || !strcmp(t, "float") || !strcmp(t, "bool") ||
                !strcmp(t, "null"))
                return FS_OK;
        } else if (!strcmp(t, kind == YD_SEQ ? "seq" : "map")) {
            return FS_OK;
        }
    }
    return fail(b->e, FS_ERR_FORMAT, m, "unsupported YAML tag '%.64s' (job files use plain values)",
                tag);
}

static fs_code new_node(builder *b, yd_kind kind, const yaml_mark_t *m, yd_node **out) {
    if (++b->n_nodes > YD_MAX_NODES)
        return fail(b->e, FS_ERR_FORMAT, m, "more than %d YAML nodes (a job needs a few dozen)",
                    YD_MAX_NODES);
    yd_doc *d = b->doc;
    if (d->n_all == d->cap_all) {
        size_t cap = d->cap_all ? 2 * d->cap_all : 64;
        yd_node **all = realloc(d->all, cap * sizeof *all);
        if (!all) return nomem(b, m);
        d->all = all;
        d->cap_all = cap;
    }
    yd_node *n = calloc(1, sizeof *n);
    if (!n) return nomem(b, m);
    n->kind = kind;
    n->line = (int)m->line + 1;
    n->col = (int)m->column + 1;
    d->all[d->n_all++] = n;
    *out = n;
    return FS_OK;
}

/* Hangs n under the open collection (or makes it the root). */
static fs_code attach(builder *b, yd_node *n, const yaml_mark_t *m) {
    if (b->depth == 0) {
        b->doc->root = n;
        return FS_OK;
    }
    yd_node *p = b->stack[b->depth - 1];
    if (p->n_items == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 8;
        yd_node **items = realloc(p->items, cap * sizeof *items);
        if (!items) return nomem(b, m);
        p->items = items;
        p->cap = cap;
    }
    p->items[p->n_items++] = n;
    /* a mapping counts a pair once its value has landed */
    p->count = p->kind == YD_MAP ? p->n_items / 2 : p->n_items;
    return FS_OK;
}

static fs_code add_anchor(builder *b, char *name, yd_node *n, const yaml_mark_t *m) {
    if (!name) return FS_OK;
    if (b->n_anchors == YD_MAX_ANCHORS) {
        free(name);
        return fail(b->e, FS_ERR_FORMAT, m, "more than %d YAML anchors", YD_MAX_ANCHORS);
    }
    b->anchors[b->n_anchors].name = name;
    b->anchors[b->n_anchors].node = n;
    b->n_anchors++;
    return FS_OK;
}

static char *dup_str(const unsigned char *s) {
    return s ? strdup((const char *)s) : NULL;
}

static fs_code on_event(builder *b, const yaml_event_t *ev, int *documents, int *done) {
    const yaml_mark_t *m = &ev->start_mark;
    yd_node *n = NULL;
    fs_code rc;
    int is_str;
    switch (ev->type) {
    case YAML_STREAM_START_EVENT:
    case YAML_DOCUMENT_END_EVENT:
    case YAML_NO_EVENT:
        return FS_OK;
    case YAML_STREAM_END_EVENT:
        *done = 1;
        return FS_OK;
    case YAML_DOCUMENT_START_EVENT:
        if (++*documents > 1)
            return fail(b->e, FS_ERR_FORMAT, m,
                        "a second YAML document starts here (a job file holds one job)");
        return FS_OK;
    case YAML_SCALAR_EVENT:
        if ((rc = check_tag(b, (const char *)ev->data.scalar.tag, YD_SCALAR, m, &is_str)) ||
            (rc = new_node(b, YD_SCALAR, m, &n)))
            return rc;
        n->len = ev->data.scalar.length;
        n->text = malloc(n->len + 1);
        if (!n->text) return nomem(b, m);
        memcpy(n->text, ev->data.scalar.value, n->len);
        n->text[n->len] = 0;
        n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && !is_str;
        if ((rc = attach(b, n, m))) return rc;
        if (ev->data.scalar.anchor) {
            char *name = dup_str(ev->data.scalar.anchor);
            if (!name) return nomem(b, m);
            return add_anchor(b, name, n, m);
        }
        return FS_OK;
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT: {
        int seq = ev->type == YAML_SEQUENCE_START_EVENT;
        const unsigned char *tag = seq ? ev->data.sequence_start.tag : ev->data.mapping_start.tag;
        const unsigned char *anc =
            seq ? ev->data.sequence_start.anchor : ev->data.mapping_start.anchor;
        if (b->depth == YD_MAX_DEPTH)
            return fail(b->e, FS_ERR_FORMAT, m, "YAML nested deeper than %d levels", YD_MAX_DEPTH);
        if ((rc = check_tag(b, (const char *)tag, seq ? YD_SEQ : YD_MAP, m, &is_str)) ||
            (rc = new_node(b, seq ? YD_SEQ : YD_MAP, m, &n)) || (rc = attach(b, n, m)))
            return rc;
        char *name = NULL;
        if (anc && !(name = dup_str(anc))) return nomem(b, m);
        b->stack_anchor[b->depth] = name;
        b->stack[b->depth++] = n;
        return FS_OK;
    }
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT: {
        /* the parser guarantees the pairing; registering the anchor only now
         * means an alias can never point into its own collection (no cycles) */
        if (b->depth == 0) return FS_OK;
        b->depth--;
        char *name = b->stack_anchor[b->depth];
        b->stack_anchor[b->depth] = NULL;
        return add_anchor(b, name, b->stack[b->depth], m);
    }
    case YAML_ALIAS_EVENT: {
        if (++b->n_nodes > YD_MAX_NODES)
            return fail(b->e, FS_ERR_FORMAT, m, "more than %d YAML nodes (a job needs a few dozen)",
                        YD_MAX_NODES);
        const char *name = (const char *)ev->data.alias.anchor;
        for (int i = b->n_anchors - 1; i >= 0; i--)  /* the latest definition wins */
            if (!strcmp(b->anchors[i].name, name)) return attach(b, b->anchors[i].node, m);
        return fail(b->e, FS_ERR_FORMAT, m, "alias '*%.64s' names no earlier anchor '&%.64s'",
                    name, name);
    }
    }
    return FS_OK;
}

/* libyaml's reader errors carry a byte offset, not a mark: count lines. */
static void offset_mark(const char *text, size_t len, size_t off, yaml_mark_t *m) {
    if (off > len) off = len;
    m->line = 0;
    m->column = 0;
    for (size_t i = 0; i < off; i++) {
        if (text[i] == '\n') { m->line++; m->column = 0; }
        else if (((unsigned char)text[i] & 0xC0) != 0x80) m->column++;
    }
}

static fs_code parser_error(const yaml_parser_t *p, const char *text, size_t len, yd_error *e) {
    if (p->error == YAML_MEMORY_ERROR) return fail(e, FS_ERR_NOMEM, NULL, "out of memory reading YAML");
    yaml_mark_t m = p->problem_mark;
    const char *problem = p->problem ? p->problem : "unknown error";
    if (p->error == YAML_READER_ERROR) {
        offset_mark(text, len, p->problem_offset, &m);
        if (p->problem_value != -1)
            return fail(e, FS_ERR_FORMAT, &m, "malformed YAML: %s (byte 0x%02X)", problem,
                        (unsigned)p->problem_value & 0xFFu);
        return fail(e, FS_ERR_FORMAT, &m, "malformed YAML: %s", problem);
    }
    if (p->context)
        return fail(e, FS_ERR_FORMAT, &m, "malformed YAML: %s (%s at line %d, column %d)", problem,
                    p->context, (int)p->context_mark.line + 1, (int)p->context_mark.column + 1);
    return fail(e, FS_ERR_FORMAT, &m, "malformed YAML: %s", problem);
}

fs_code yd_parse(const char *text, size_t len, yd_doc *doc, yd_error *e) {
    memset(doc, 0, sizeof *doc);
    memset(e, 0, sizeof *e);
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) return fail(e, FS_ERR_NOMEM, NULL, "out of memory reading YAML");
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    builder *b = calloc(1, sizeof *b);
    if (!b) {
        yaml_parser_delete(&parser);
        return fail(e, FS_ERR_NOMEM, NULL, "out of memory reading YAML");
    }
    b->doc = doc;
    b->e = e;
    fs_code rc = FS_OK;
    int documents = 0, done = 0;
    while (!rc && !done) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            rc = parser_error(&parser, text, len, e);
            break;
        }
        rc = on_event(b, &ev, &documents, &done);
        yaml_event_delete(&ev);
    }
    for (int i = 0; i < b->n_anchors; i++) free(b->anchors[i].name);
    for (int i = 0; i < b->depth; i++) free(b->stack_anchor[i]);
    free(b);
    yaml_parser_delete(&parser);
    if (rc) yd_free(doc);
    return rc;
}

size_t yd_utf8_decode(const unsigned char *s, size_t len, uint32_t *cp) {
    if (len == 0) return 0;
    unsigned c = s[0];
    if (c < 0x80) { *cp = c; return 1; }
    size_t n;
    uint32_t v, min;
    if ((c & 0xE0) == 0xC0) { n = 2; v = c & 0x1F; min = 0x80; }
    else if ((c & 0xF0) == 0xE0) { n = 3; v = c & 0x0F; min = 0x800; }
    else if ((c & 0xF8) == 0xF0) { n = 4; v = c & 0x07; min = 0x10000; }
    else return 0;
    if (len < n) return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
    *cp = v;
    return n;
}

size_t yd_utf8_check(const char *s, size_t len) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    uint32_t cp;
    while (i < len) {
        size_t n = yd_utf8_decode(u + i, len - i, &cp);
        if (!n) return i;
        i += n;
    }
    return len;
}
