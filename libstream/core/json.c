/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* Strict, bounded JSON parser; see json.h for the rules it enforces.
 *
 * Recursive descent over the whole text held in memory.  Nodes, child
 * arrays and decoded strings live in one arena (a chain of blocks that grow
 * geometrically), so json_free is a walk over a few blocks.  Children of an
 * open array/object are collected on one scratch stack shared by all
 * levels and copied into the arena when the container closes, so every
 * container's children are contiguous (O(1) indexing) without knowing their
 * count in advance. */
#include "json.h"

#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>

#define JSON_DEFAULT_DEPTH 64
#define JSON_DEPTH_CAP 512 /* recursion bound whatever the caller asks */
#define JSON_DEFAULT_STRING ((size_t)1 << 20)
#define ARENA_FIRST_BLOCK 4096
#define ARENA_MAX_BLOCK ((size_t)1 << 20)

struct json_value {
    uint8_t type;     /* json_type */
    uint8_t integral; /* JSON_NUMBER: u.i holds the value */
    size_t offset;    /* first byte in the text */
    size_t n;         /* children, or string bytes */
    const char *key;  /* member of an object: its key (NUL terminated) */
    size_t key_len;
    union {
        int64_t i;
        const char *s;
        const json_value *const *kids;
    } u;
};

typedef struct arena_block {
    struct arena_block *next;
    size_t size, used;
    max_align_t data[]; /* aligned for anything */
} arena_block;

struct json_doc {
    arena_block *blocks;
    size_t next_block;
    const json_value *root;
    size_t nodes;
};

/* A child waiting for its container to close; key_off only for members. */
typedef struct pending {
    const json_value *v;
    size_t key_off;
} pending;

typedef struct parser {
    const ms_allocator *a;
    const unsigned char *s;
    size_t len, pos;
    size_t max_depth, max_nodes, max_string;
    json_doc *doc;
    pending *stack; /* children of every open container, innermost last */
    size_t stack_len, stack_cap;
    pending *sort; /* scratch for the duplicate-key check */
    size_t sort_cap;
    json_error *err;
} parser;

/* ---- arena -------------------------------------------------------------- */

static void *arena_alloc(parser *p, size_t size, size_t align)
{
    json_doc *d = p->doc;
    arena_block *b = d->blocks;
    if (b) {
        size_t at = (b->used + align - 1) & ~(align - 1);
        if (at <= b->size && size <= b->size - at) {
            b->used = at + size;
            return (unsigned char *)b->data + at;
        }
    }
    size_t want = d->next_block;
    if (d->next_block < ARENA_MAX_BLOCK)
        d->next_block *= 2;
    if (want < size)
        want = size; /* an oversize request gets a block of its own */
    if (want > SIZE_MAX - sizeof(arena_block))
        return NULL;
    arena_block *nb = ms_alloc(p->a, sizeof(arena_block) + want);
    if (!nb)
        return NULL;
    nb->size = want;
    nb->used = size;
    /* The new block goes in front; what was left in the old one is
     * wasted, at most one block tail per new block. */
    nb->next = d->blocks;
    d->blocks = nb;
    return nb->data;
}

void json_free(const ms_allocator *a, json_doc *doc)
{
    if (!doc)
        return;
    arena_block *b = doc->blocks;
    while (b) {
        arena_block *next = b->next;
        ms_free(a, b);
        b = next;
    }
    ms_free(a, doc);
}

/* ---- errors ------------------------------------------------------------- */

static int fail(parser *p, json_error_kind kind, size_t off, const char *fmt,
                ...) __attribute__((format(printf, 4, 5)));

static int fail(parser *p, json_error_kind kind, size_t off, const char *fmt,
                ...)
{
    if (p->err->kind != JSON_OK)
        return -1;
    p->err->kind = kind;
    p->err->offset = off;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err->detail, sizeof p->err->detail, fmt, ap);
    va_end(ap);
    return -1;
}

static int fail_eof(parser *p, const char *what)
{
    return fail(p, JSON_ERR_SYNTAX, p->len, "input ends inside %s", what);
}

static int fail_nomem(parser *p)
{
    return fail(p, JSON_ERR_MEMORY, p->pos, "out of memory");
}

/* ---- nodes -------------------------------------------------------------- */

static json_value *new_node(parser *p, json_type t, size_t off)
{
    if (p->doc->nodes >= p->max_nodes) {
        fail(p, JSON_ERR_LIMIT, off, "more than %zu values", p->max_nodes);
        return NULL;
    }
    json_value *v = arena_alloc(p, sizeof *v, alignof(json_value));
    if (!v) {
        fail_nomem(p);
        return NULL;
    }
    memset(v, 0, sizeof *v);
    v->type = (uint8_t)t;
    v->offset = off;
    p->doc->nodes++;
    return v;
}

static int push_pending(parser *p, const json_value *v, size_t key_off)
{
    if (ms_grow(p->a, (void **)&p->stack, sizeof *p->stack, &p->stack_cap,
                p->stack_len + 1) < 0)
        return fail_nomem(p);
    p->stack[p->stack_len].v = v;
    p->stack[p->stack_len].key_off = key_off;
    p->stack_len++;
    return 0;
}

/* Move the children collected since `base` into the container. */
static int close_container(parser *p, json_value *c, size_t base)
{
    size_t n = p->stack_len - base;
    c->n = n;
    if (n) {
        const json_value **kids =
            arena_alloc(p, n * sizeof *kids, alignof(const json_value *));
        if (!kids)
            return fail_nomem(p);
        for (size_t i = 0; i < n; i++)
            kids[i] = p->stack[base + i].v;
        c->u.kids = kids;
    }
    p->stack_len = base;
    return 0;
}

static void skip_ws(parser *p)
{
    while (p->pos < p->len) {
        unsigned char c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        p->pos++;
    }
}

/* ---- strings ------------------------------------------------------------ */

static int hex4(const unsigned char *s, uint32_t *out)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= c - '0';
        else if (c >= 'a' && c <= 'f')
            v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            v |= c - 'A' + 10;
        else
            return -1;
    }
    *out = v;
    return 0;
}

static size_t put_utf8(unsigned char *o, uint32_t cp)
{
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Length of the valid UTF-8 sequence at s[0..avail), or 0 (RFC 3629:
 * no overlong forms, no surrogates, nothing above U+10FFFF). */
static size_t utf8_seq(const unsigned char *s, size_t avail)
{
    unsigned c = s[0];
    size_t n;
    unsigned lo = 0x80, hi = 0xBF; /* range of the second byte */
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        n = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else
        return 0;
    if (avail < n || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    return n;
}

/* A string at p->pos (its '"').  On success *out and *out_len get the
 * decoded, NUL-terminated bytes (in the arena) and p->pos is past the
 * closing '"'. */
static int parse_string(parser *p, const char **out, size_t *out_len)
{
    const unsigned char *s = p->s;
    size_t start = p->pos + 1, end = start;
    /* Pass 1: find the closing quote, so the decoded bytes (never more
     * than the raw ones) can be given one exact-size home. */
    for (;;) {
        if (end >= p->len)
            return fail_eof(p, "a string");
        unsigned char c = s[end];
        if (c == '"')
            break;
        if (c < 0x20)
            return fail(p, JSON_ERR_SYNTAX, end,
                        "control character 0x%02x in a string", c);
        end += c == '\\' ? 2 : 1;
    }
    size_t raw = end - start;
    /* Each decoded byte takes at most 6 raw ones ("\u0001"). */
    if (raw / 6 > p->max_string)
        return fail(p, JSON_ERR_LIMIT, p->pos, "string longer than %zu bytes",
                    p->max_string);
    unsigned char *o = arena_alloc(p, raw + 1, 1);
    if (!o)
        return fail_nomem(p);
    size_t n = 0, i = start;
    while (i < end) {
        unsigned char c = s[i];
        if (c != '\\') {
            size_t k = utf8_seq(s + i, end - i);
            if (!k)
                return fail(p, JSON_ERR_SYNTAX, i, "invalid UTF-8");
            memcpy(o + n, s + i, k);
            n += k;
            i += k;
            continue;
        }
        size_t esc = i;
        c = s[i + 1];
        i += 2;
        switch (c) {
        case '"': o[n++] = '"'; break;
        case '\\': o[n++] = '\\'; break;
        case '/': o[n++] = '/'; break;
        case 'b': o[n++] = '\b'; break;
        case 'f': o[n++] = '\f'; break;
        case 'n': o[n++] = '\n'; break;
        case 'r': o[n++] = '\r'; break;
        case 't': o[n++] = '\t'; break;
        case 'u': {
            uint32_t cp, lo;
            if (end - i < 4 || hex4(s + i, &cp) < 0)
                return fail(p, JSON_ERR_SYNTAX, esc, "bad \\u escape");
            i += 4;
            if (cp >= 0xDC00 && cp <= 0xDFFF)
                return fail(p, JSON_ERR_SYNTAX, esc,
                            "unpaired low surrogate \\u%04x", (unsigned)cp);
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (end - i < 6 || s[i] != '\\' || s[i + 1] != 'u' ||
                    hex4(s + i + 2, &lo) < 0 || lo < 0xDC00 || lo > 0xDFFF)
                    return fail(p, JSON_ERR_SYNTAX, esc,
                                "unpaired high surrogate \\u%04x",
                                (unsigned)cp);
                i += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            n += put_utf8(o + n, cp);
            break;
        }
        default:
            return fail(p, JSON_ERR_SYNTAX, esc, "bad escape \\%c",
                        c >= 0x20 && c < 0x7F ? c : '?');
        }
    }
    if (n > p->max_string)
        return fail(p, JSON_ERR_LIMIT, p->pos, "string longer than %zu bytes",
                    p->max_string);
    o[n] = 0;
    *out = (const char *)o;
    *out_len = n;
    p->pos = end + 1;
    return 0;
}

/* ---- numbers and literals ----------------------------------------------- */

static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

static int parse_number(parser *p, json_value *v)
{
    const unsigned char *s = p->s;
    size_t i = p->pos;
    int neg = 0, integral = 1, overflow = 0;
    uint64_t mag = 0;
    if (s[i] == '-') {
        neg = 1;
        i++;
    }
    if (i >= p->len)
        return fail_eof(p, "a number");
    if (!is_digit(s[i]))
        return fail(p, JSON_ERR_SYNTAX, i, "digit expected");
    if (s[i] == '0') {
        i++; /* no leading zeros: "01" ends the number at "0" */
    } else {
        while (i < p->len && is_digit(s[i])) {
            unsigned d = s[i] - '0';
            if (mag > (UINT64_MAX - d) / 10)
                overflow = 1;
            else
                mag = mag * 10 + d;
            i++;
        }
    }
    if (i < p->len && s[i] == '.') {
        integral = 0;
        i++;
        if (i >= p->len)
            return fail_eof(p, "a number");
        if (!is_digit(s[i]))
            return fail(p, JSON_ERR_SYNTAX, i, "digit expected after '.'");
        while (i < p->len && is_digit(s[i]))
            i++;
    }
    if (i < p->len && (s[i] == 'e' || s[i] == 'E')) {
        integral = 0;
        i++;
        if (i < p->len && (s[i] == '+' || s[i] == '-'))
            i++;
        if (i >= p->len)
            return fail_eof(p, "a number");
        if (!is_digit(s[i]))
            return fail(p, JSON_ERR_SYNTAX, i, "digit expected in exponent");
        while (i < p->len && is_digit(s[i]))
            i++;
    }
    if (integral && !overflow) {
        if (!neg && mag <= (uint64_t)INT64_MAX) {
            v->integral = 1;
            v->u.i = (int64_t)mag;
        } else if (neg && mag <= (uint64_t)INT64_MAX + 1) {
            v->integral = 1;
            /* -(2^63) is not representable as a positive int64 */
            v->u.i = mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN
                                                    : -(int64_t)mag;
        }
    }
    p->pos = i;
    return 0;
}

static int parse_literal(parser *p, const char *word, size_t wlen)
{
    size_t avail = p->len - p->pos;
    size_t k = MS_MIN(avail, wlen);
    if (memcmp(p->s + p->pos, word, k) != 0)
        return fail(p, JSON_ERR_SYNTAX, p->pos, "invalid literal");
    if (avail < wlen)
        return fail_eof(p, "a literal");
    p->pos += wlen;
    return 0;
}

/* ---- values ------------------------------------------------------------- */

static int parse_value(parser *p, size_t depth, json_value **out);

static int cmp_key(const void *x, const void *y)
{
    const json_value *a = ((const pending *)x)->v;
    const json_value *b = ((const pending *)y)->v;
    size_t n = MS_MIN(a->key_len, b->key_len);
    int c = memcmp(a->key, b->key, n);
    if (c)
        return c;
    if (a->key_len != b->key_len)
        return a->key_len < b->key_len ? -1 : 1;
    /* equal keys: text order, so the later one is reported */
    return a->offset < b->offset ? -1 : a->offset > b->offset;
}

/* Members since `base` on the stack: each key at most once.  Sorting a copy
 * keeps this O(n log n) for hostile objects with many members. */
static int check_duplicates(parser *p, size_t base)
{
    size_t n = p->stack_len - base;
    if (n < 2)
        return 0;
    if (ms_grow(p->a, (void **)&p->sort, sizeof *p->sort, &p->sort_cap, n) < 0)
        return fail_nomem(p);
    memcpy(p->sort, p->stack + base, n * sizeof *p->sort);
    qsort(p->sort, n, sizeof *p->sort, cmp_key);
    for (size_t i = 1; i < n; i++) {
        const json_value *a = p->sort[i - 1].v, *b = p->sort[i].v;
        if (a->key_len == b->key_len &&
            memcmp(a->key, b->key, a->key_len) == 0)
            return fail(p, JSON_ERR_SYNTAX, p->sort[i].key_off,
                        "duplicate key \"%.40s\"", b->key);
    }
    return 0;
}

static int parse_array(parser *p, size_t depth, json_value *v)
{
    size_t base = p->stack_len;
    p->pos++; /* '[' */
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == ']') {
        p->pos++;
        return 0;
    }
    for (;;) {
        json_value *e;
        if (parse_value(p, depth + 1, &e) < 0 || push_pending(p, e, 0) < 0)
            return -1;
        skip_ws(p);
        if (p->pos >= p->len)
            return fail_eof(p, "an array");
        unsigned char c = p->s[p->pos];
        if (c == ']') {
            p->pos++;
            return close_container(p, v, base);
        }
        if (c != ',')
            return fail(p, JSON_ERR_SYNTAX, p->pos, "',' or ']' expected");
        p->pos++;
    }
}

static int parse_object(parser *p, size_t depth, json_value *v)
{
    size_t base = p->stack_len;
    p->pos++; /* '{' */
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == '}') {
        p->pos++;
        return 0;
    }
    for (;;) {
        skip_ws(p);
        if (p->pos >= p->len)
            return fail_eof(p, "an object");
        if (p->s[p->pos] != '"')
            return fail(p, JSON_ERR_SYNTAX, p->pos, "string key expected");
        size_t key_off = p->pos;
        const char *key;
        size_t key_len;
        if (parse_string(p, &key, &key_len) < 0)
            return -1;
        skip_ws(p);
        if (p->pos >= p->len)
            return fail_eof(p, "an object");
        if (p->s[p->pos] != ':')
            return fail(p, JSON_ERR_SYNTAX, p->pos, "':' expected");
        p->pos++;
        json_value *m;
        if (parse_value(p, depth + 1, &m) < 0)
            return -1;
        m->key = key;
        m->key_len = key_len;
        if (push_pending(p, m, key_off) < 0)
            return -1;
        skip_ws(p);
        if (p->pos >= p->len)
            return fail_eof(p, "an object");
        unsigned char c = p->s[p->pos];
        if (c == '}') {
            p->pos++;
            if (check_duplicates(p, base) < 0)
                return -1;
            return close_container(p, v, base);
        }
        if (c != ',')
            return fail(p, JSON_ERR_SYNTAX, p->pos, "',' or '}' expected");
        p->pos++;
    }
}

static int parse_value(parser *p, size_t depth, json_value **out)
{
    skip_ws(p);
    if (p->pos >= p->len)
        return fail_eof(p, depth ? "a container" : "the text (no value)");
    unsigned char c = p->s[p->pos];
    json_type t;
    switch (c) {
    case '{': t = JSON_OBJECT; break;
    case '[': t = JSON_ARRAY; break;
    case '"': t = JSON_STRING; break;
    case 't': t = JSON_TRUE; break;
    case 'f': t = JSON_FALSE; break;
    case 'n': t = JSON_NULL; break;
    default:
        if (c == '-' || is_digit(c)) {
            t = JSON_NUMBER;
            break;
        }
        return fail(p, JSON_ERR_SYNTAX, p->pos, "value expected, found %s",
                    c >= 0x20 && c < 0x7F ? "a stray character" : "a byte");
    }
    if ((t == JSON_OBJECT || t == JSON_ARRAY) && depth >= p->max_depth)
        return fail(p, JSON_ERR_LIMIT, p->pos,
                    "nested deeper than %zu arrays/objects", p->max_depth);
    json_value *v = new_node(p, t, p->pos);
    if (!v)
        return -1;
    int rc;
    switch (t) {
    case JSON_OBJECT: rc = parse_object(p, depth, v); break;
    case JSON_ARRAY: rc = parse_array(p, depth, v); break;
    case JSON_STRING: rc = parse_string(p, &v->u.s, &v->n); break;
    case JSON_NUMBER: rc = parse_number(p, v); break;
    case JSON_TRUE: rc = parse_literal(p, "true", 4); break;
    case JSON_FALSE: rc = parse_literal(p, "false", 5); break;
    default: rc = parse_literal(p, "null", 4); break;
    }
    if (rc < 0)
        return -1;
    *out = v;
    return 0;
}

int json_parse(const ms_allocator *a, const char *text, size_t len,
               const json_limits *lim, json_doc **out, json_error *err)
{
    static const json_limits none;
    if (!lim)
        lim = &none;
    memset(err, 0, sizeof *err);
    *out = NULL;
    parser p = {.a = a, .s = (const unsigned char *)text, .len = len,
                .err = err};
    p.max_depth = lim->max_depth ? lim->max_depth : JSON_DEFAULT_DEPTH;
    if (p.max_depth > JSON_DEPTH_CAP)
        p.max_depth = JSON_DEPTH_CAP;
    p.max_nodes = lim->max_nodes ? lim->max_nodes : len / 2 + 1;
    p.max_string = lim->max_string ? lim->max_string : JSON_DEFAULT_STRING;
    if (lim->max_len && len > lim->max_len)
        return fail(&p, JSON_ERR_LIMIT, lim->max_len,
                    "text of %zu bytes is over the limit of %zu", len,
                    lim->max_len);
    if (!text && len)
        return fail(&p, JSON_ERR_SYNTAX, 0, "no text");
    p.doc = ms_calloc(a, 1, sizeof *p.doc);
    if (!p.doc)
        return fail_nomem(&p);
    p.doc->next_block = ARENA_FIRST_BLOCK;
    json_value *root = NULL;
    int rc = parse_value(&p, 0, &root);
    if (rc == 0) {
        skip_ws(&p);
        if (p.pos != len)
            rc = fail(&p, JSON_ERR_SYNTAX, p.pos,
                      "trailing data after the value");
    }
    ms_free(a, p.stack);
    ms_free(a, p.sort);
    if (rc < 0) {
        json_free(a, p.doc);
        return -1;
    }
    p.doc->root = root;
    *out = p.doc;
    return 0;
}

/* ---- accessors ---------------------------------------------------------- */

const json_value *json_root(const json_doc *doc)
{
    return doc ? doc->root : NULL;
}

size_t json_node_count(const json_doc *doc) { return doc ? doc->nodes : 0; }

json_type json_type_of(const json_value *v)
{
    return v ? (json_type)v->type : JSON_NULL;
}

int json_is(const json_value *v, json_type t) { return v && v->type == t; }

size_t json_offset(const json_value *v) { return v ? v->offset : 0; }

size_t json_len(const json_value *v)
{
    if (!v)
        return 0;
    switch (v->type) {
    case JSON_ARRAY:
    case JSON_OBJECT:
    case JSON_STRING:
        return v->n;
    default:
        return 0;
    }
}

const json_value *json_at(const json_value *v, size_t i)
{
    if (!v || (v->type != JSON_ARRAY && v->type != JSON_OBJECT) || i >= v->n)
        return NULL;
    return v->u.kids[i];
}

const char *json_key_at(const json_value *obj, size_t i, size_t *len)
{
    if (!obj || obj->type != JSON_OBJECT || i >= obj->n)
        return NULL;
    const json_value *m = obj->u.kids[i];
    if (len)
        *len = m->key_len;
    return m->key;
}

const json_value *json_get(const json_value *obj, const char *key)
{
    if (!obj || obj->type != JSON_OBJECT || !key)
        return NULL;
    size_t klen = strlen(key);
    /* Objects of the trailer have a handful of members: a scan is the
     * fastest lookup there is. */
    for (size_t i = 0; i < obj->n; i++) {
        const json_value *m = obj->u.kids[i];
        if (m->key_len == klen && memcmp(m->key, key, klen) == 0)
            return m;
    }
    return NULL;
}

const char *json_string(const json_value *v, size_t *len)
{
    if (!v || v->type != JSON_STRING)
        return NULL;
    if (len)
        *len = v->n;
    return v->u.s;
}

int json_int(const json_value *v, int64_t *out)
{
    if (!v || v->type != JSON_NUMBER || !v->integral)
        return -1;
    *out = v->u.i;
    return 0;
}
