/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* The JSON parser (json.c), the VMState descriptions and walk (vmstate.c)
 * and ms_field_format, checked against QEMU's own output: the QEMU 7.2
 * capture tests/data/captures/qemu-7.2-pc-precopy/main.mig and the
 * reference-state.json that scripts/analyze-migration.py -d state printed
 * for it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common.h"
#include "json.h"
#include "test_util.h"
#include "vmstate.h"

#define CAPTURE "tests/data/captures/qemu-7.2-pc-precopy/"
#define E1000 "0000:00:03.0/e1000"

/* ---- files ------------------------------------------------------------- */

/* The source tree: MIGSTREAM_SRC_DIR (set by CTest), else where this file
 * was compiled from (so the binary also runs by hand). */
static void src_path(char *out, size_t cap, const char *rel)
{
    const char *dir = getenv("MIGSTREAM_SRC_DIR");
    if (dir && *dir) {
        snprintf(out, cap, "%s/%s", dir, rel);
        return;
    }
    const char *self = __FILE__;
    const char *cut = strstr(self, "tests/test_vmstate.c");
    snprintf(out, cap, "%.*s%s", cut ? (int)(cut - self) : 0, self, rel);
}

static uint8_t *read_file(const char *rel, size_t *len)
{
    char path[4096];
    src_path(path, sizeof path, rel);
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *p = malloc((size_t)n + 1);
    assert_non_null(p);
    assert_int_equal(fread(p, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    p[n] = 0;
    *len = (size_t)n;
    return p;
}

/* The JSON trailer ending a QEVM stream: 0x06, be32 length, the text. */
static void find_trailer(const uint8_t *p, size_t len, size_t *off,
                         size_t *jlen)
{
    for (size_t k = len >= 5 ? len - 5 : 0; k-- > 0;) {
        if (p[k] == 0x06 && ms_be32(p + k + 1) == len - k - 5) {
            *off = k + 5;
            *jlen = len - k - 5;
            return;
        }
    }
    fail_msg("no JSON trailer");
}

/* First offset of needle in hay, or hay_len (memmem is not POSIX). */
static size_t find_bytes(const uint8_t *hay, size_t hay_len,
                         const uint8_t *needle, size_t n)
{
    for (size_t i = 0; n <= hay_len && i <= hay_len - n; i++)
        if (hay[i] == needle[0] && memcmp(hay + i, needle, n) == 0)
            return i;
    return hay_len;
}

/* ---- an allocator that counts, and fails on request --------------------- */

typedef struct counting {
    long live;       /* blocks not freed */
    long calls;      /* allocations attempted */
    long fail_at;    /* this allocation (0-based) fails; -1: none */
} counting;

static void *c_alloc(void *op, size_t n)
{
    counting *c = op;
    if (c->calls++ == c->fail_at)
        return NULL;
    void *p = malloc(n);
    if (p)
        c->live++;
    return p;
}

static void c_free(void *op, void *p)
{
    counting *c = op;
    if (p)
        c->live--;
    free(p);
}

static ms_allocator counting_allocator(counting *c, long fail_at)
{
    memset(c, 0, sizeof *c);
    c->fail_at = fail_at;
    ms_allocator a = {c_alloc, c_free, c};
    return a;
}

/* ---- JSON: accepted ----------------------------------------------------- */

static json_doc *parse_ok(const char *text, size_t len, const json_limits *lim)
{
    json_doc *d = NULL;
    json_error e;
    if (json_parse(NULL, text, len, lim, &d, &e) < 0)
        fail_msg("rejected at %zu (%s): %.80s", e.offset, e.detail, text);
    return d;
}

static void json_accepts(void **state)
{
    (void)state;
    static const char *const ok[] = {
        "0", "-0", "1", "-1", "0.5", "-0.5e-3", "1E+9", "1e9", "true",
        "false", "null", "\"\"", "[]", "{}", " \t\r\n[ ] \n", "[1,2,3]",
        "{\"a\":1,\"b\":[true,false,null],\"c\":{\"d\":\"e\"}}",
        "[[[[[]]]]]", "\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u0041\"",
        "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"", "{\"\":0}",
        "[\"a\",{\"a\":\"a\"}]", "{\"a\":1,\"A\":2}",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        json_free(NULL, parse_ok(ok[i], strlen(ok[i]), NULL));

    const char *t = "{\"page_size\": 4096, \"list\": [1, \"two\", [3]],"
                    " \"obj\": {\"k\": false}}";
    json_doc *d = parse_ok(t, strlen(t), NULL);
    const json_value *r = json_root(d);
    assert_int_equal(json_type_of(r), JSON_OBJECT);
    assert_int_equal(json_len(r), 3);
    assert_int_equal(json_node_count(d), 9);
    size_t kl;
    assert_string_equal(json_key_at(r, 1, &kl), "list");
    assert_int_equal(kl, 4);
    int64_t v;
    assert_int_equal(json_int(json_get(r, "page_size"), &v), 0);
    assert_int_equal(v, 4096);
    assert_int_equal(json_offset(json_get(r, "page_size")), 14);
    const json_value *l = json_get(r, "list");
    assert_int_equal(json_len(l), 3);
    assert_string_equal(json_string(json_at(l, 1), NULL), "two");
    assert_int_equal(json_len(json_at(l, 1)), 3);
    assert_true(json_is(json_at(l, 2), JSON_ARRAY));
    assert_null(json_at(l, 3));
    assert_null(json_get(r, "missing"));
    assert_null(json_get(l, "list")); /* not an object */
    assert_true(json_is(json_get(json_get(r, "obj"), "k"), JSON_FALSE));
    assert_int_equal(json_int(json_at(l, 1), &v), -1);
    /* NULL-safe accessors */
    assert_int_equal(json_type_of(NULL), JSON_NULL);
    assert_int_equal(json_len(NULL), 0);
    assert_null(json_at(NULL, 0));
    assert_null(json_string(NULL, NULL));
    json_free(NULL, d);
    json_free(NULL, NULL);
}

static void json_numbers(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int integral;
        int64_t v;
    } cases[] = {
        {"0", 1, 0},
        {"-0", 1, 0},
        {"42", 1, 42},
        {"9223372036854775807", 1, INT64_MAX},
        {"-9223372036854775808", 1, INT64_MIN},
        {"9223372036854775808", 0, 0},
        {"-9223372036854775809", 0, 0},
        {"18446744073709551616", 0, 0},
        {"1.0", 0, 0},
        {"1e2", 0, 0},
        {"-5", 1, -5},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_doc *d = parse_ok(cases[i].text, strlen(cases[i].text), NULL);
        const json_value *r = json_root(d);
        int64_t v = 12345;
        assert_int_equal(json_type_of(r), JSON_NUMBER);
        if (cases[i].integral) {
            assert_int_equal(json_int(r, &v), 0);
            assert_true(v == cases[i].v);
        } else {
            assert_int_equal(json_int(r, &v), -1);
        }
        json_free(NULL, d);
    }
    /* A 5000-digit number is JSON; it just has no int64 value. */
    char big[5001];
    memset(big, '9', 5000);
    big[5000] = 0;
    json_doc *d = parse_ok(big, 5000, NULL);
    int64_t v;
    assert_int_equal(json_int(json_root(d), &v), -1);
    json_free(NULL, d);
}

static void json_strings(void **state)
{
    (void)state;
    const char *t = "[\"\\ud83d\\ude00\", \"a\\u0000b\", \"\\u00e9\\u20AC\"]";
    json_doc *d = parse_ok(t, strlen(t), NULL);
    const json_value *r = json_root(d);
    size_t n;
    const char *s = json_string(json_at(r, 0), &n);
    assert_int_equal(n, 4);
    assert_memory_equal(s, "\xf0\x9f\x98\x80", 4);
    s = json_string(json_at(r, 1), &n);
    assert_int_equal(n, 3);
    assert_memory_equal(s, "a\0b", 4); /* also NUL terminated */
    s = json_string(json_at(r, 2), &n);
    assert_string_equal(s, "\xc3\xa9\xe2\x82\xac");
    json_free(NULL, d);

    /* max_string counts decoded bytes */
    json_limits lim = {.max_string = 3};
    json_error e;
    assert_int_equal(json_parse(NULL, "\"abc\"", 5, &lim, &d, &e), 0);
    json_free(NULL, d);
    assert_int_equal(json_parse(NULL, "[\"abcd\"]", 8, &lim, &d, &e), -1);
    assert_int_equal(e.kind, JSON_ERR_LIMIT);
    assert_int_equal(e.offset, 1);
    assert_int_equal(json_parse(NULL, "\"\\u0041\\u0041\\u0041\"", 20, &lim,
                                &d, &e), 0);
    json_free(NULL, d);
}

/* ---- JSON: rejected, with the offset ------------------------------------ */

static void json_rejects(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        size_t len; /* 0: strlen */
        size_t offset;
        json_error_kind kind;
    } cases[] = {
        {"", 0, 0, JSON_ERR_SYNTAX},
        {"   ", 0, 3, JSON_ERR_SYNTAX},
        {"[1] x", 0, 4, JSON_ERR_SYNTAX},
        {"[1,]", 0, 3, JSON_ERR_SYNTAX},
        {"{\"a\":1,}", 0, 7, JSON_ERR_SYNTAX},
        {"{\"a\" 1}", 0, 5, JSON_ERR_SYNTAX},
        {"{1:2}", 0, 1, JSON_ERR_SYNTAX},
        {"{'a':2}", 0, 1, JSON_ERR_SYNTAX},
        {"[1 2]", 0, 3, JSON_ERR_SYNTAX},
        {"01", 0, 1, JSON_ERR_SYNTAX},
        {"[01]", 0, 2, JSON_ERR_SYNTAX},
        {"1.", 0, 2, JSON_ERR_SYNTAX},
        {"1.x", 0, 2, JSON_ERR_SYNTAX},
        {".5", 0, 0, JSON_ERR_SYNTAX},
        {"+1", 0, 0, JSON_ERR_SYNTAX},
        {"-", 0, 1, JSON_ERR_SYNTAX},
        {"-a", 0, 1, JSON_ERR_SYNTAX},
        {"1e", 0, 2, JSON_ERR_SYNTAX},
        {"1e+", 0, 3, JSON_ERR_SYNTAX},
        {"1ex", 0, 2, JSON_ERR_SYNTAX},
        {"NaN", 0, 0, JSON_ERR_SYNTAX},
        {"Infinity", 0, 0, JSON_ERR_SYNTAX},
        {"tru", 0, 3, JSON_ERR_SYNTAX},
        {"trux", 0, 0, JSON_ERR_SYNTAX},
        {"nul", 0, 3, JSON_ERR_SYNTAX},
        {"True", 0, 0, JSON_ERR_SYNTAX},
        {"\"abc", 0, 4, JSON_ERR_SYNTAX},
        {"\"a\\x\"", 0, 2, JSON_ERR_SYNTAX},
        {"\"a\\u12\"", 0, 2, JSON_ERR_SYNTAX},
        {"\"a\\u12G4\"", 0, 2, JSON_ERR_SYNTAX},
        {"\"\\ud800\"", 0, 1, JSON_ERR_SYNTAX},       /* lone high */
        {"\"\\ud800\\u0041\"", 0, 1, JSON_ERR_SYNTAX}, /* not a low one */
        {"\"\\udc00\"", 0, 1, JSON_ERR_SYNTAX},       /* lone low */
        {"\"a\tb\"", 0, 2, JSON_ERR_SYNTAX},          /* raw control */
        {"\"a\nb\"", 0, 2, JSON_ERR_SYNTAX},
        {"\"\xc3\x28\"", 0, 1, JSON_ERR_SYNTAX},      /* bad continuation */
        {"\"\xc0\x80\"", 0, 1, JSON_ERR_SYNTAX},      /* overlong NUL */
        {"\"\xe0\x80\xaf\"", 0, 1, JSON_ERR_SYNTAX},  /* overlong '/' */
        {"\"\xed\xa0\x80\"", 0, 1, JSON_ERR_SYNTAX},  /* encoded surrogate */
        {"\"\xf4\x90\x80\x80\"", 0, 1, JSON_ERR_SYNTAX}, /* > U+10FFFF */
        {"\"\xff\"", 0, 1, JSON_ERR_SYNTAX},
        {"\"ab\xc3\"", 0, 3, JSON_ERR_SYNTAX},        /* cut sequence */
        {"\xef\xbb\xbf{}", 0, 0, JSON_ERR_SYNTAX},    /* BOM */
        {"[1]\0", 4, 3, JSON_ERR_SYNTAX},             /* NUL after */
        {"{\"a\":1,\"b\":2,\"a\":3}", 0, 13, JSON_ERR_SYNTAX}, /* dup key */
        {"{\"x\":{},\"x\":{}}", 0, 8, JSON_ERR_SYNTAX},
        {"[}", 0, 1, JSON_ERR_SYNTAX},
        {"{]", 0, 1, JSON_ERR_SYNTAX},
        {"{\"a\":}", 0, 5, JSON_ERR_SYNTAX},
        {"/* c */ 1", 0, 0, JSON_ERR_SYNTAX},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len = cases[i].len ? cases[i].len : strlen(cases[i].text);
        json_doc *d = (json_doc *)1;
        json_error e;
        int rc = json_parse(NULL, cases[i].text, len, NULL, &d, &e);
        if (rc == 0 || e.kind != cases[i].kind ||
            e.offset != cases[i].offset)
            fail_msg("case %zu \"%s\": rc %d kind %d offset %zu (%s), "
                     "expected offset %zu",
                     i, cases[i].text, rc, e.kind, e.offset, e.detail,
                     cases[i].offset);
        assert_null(d);
        assert_true(e.detail[0] != 0);
    }
}

/* Every proper prefix of a document fails, at the offset where it ends. */
static void json_truncations(void **state)
{
    (void)state;
    const char *t = "{\"a\": [1, -2.5e+3, true, false, null, \"x\\u00e9\\n\","
                    " \"\xc3\xa9\"], \"b\": {\"c\": {}, \"d\": []}}";
    size_t len = strlen(t);
    json_free(NULL, parse_ok(t, len, NULL));
    for (size_t n = 0; n < len; n++) {
        json_doc *d;
        json_error e;
        /* a copy of exactly n bytes, so an overread would be seen */
        char *cut = malloc(n ? n : 1);
        memcpy(cut, t, n);
        int rc = json_parse(NULL, cut, n, NULL, &d, &e);
        free(cut);
        if (rc == 0 || e.kind != JSON_ERR_SYNTAX || e.offset != n)
            fail_msg("prefix of %zu bytes: rc %d offset %zu (%s)", n, rc,
                     e.offset, e.detail);
    }
}

static void json_depth_and_limits(void **state)
{
    (void)state;
    enum { DEEP = 100000 };
    char *t = malloc(2 * DEEP);
    json_doc *d;
    json_error e;
    for (size_t depth = 63; depth <= 65; depth++) {
        memset(t, '[', depth);
        memset(t + depth, ']', depth);
        int rc = json_parse(NULL, t, 2 * depth, NULL, &d, &e);
        if (depth <= 64) {
            assert_int_equal(rc, 0);
            json_free(NULL, d);
        } else {
            assert_int_equal(rc, -1);
            assert_int_equal(e.kind, JSON_ERR_LIMIT);
            assert_int_equal(e.offset, 64);
        }
    }
    /* far deeper than any stack would take by recursion */
    memset(t, '[', DEEP);
    memset(t + DEEP, ']', DEEP);
    assert_int_equal(json_parse(NULL, t, 2 * DEEP, NULL, &d, &e), -1);
    assert_int_equal(e.kind, JSON_ERR_LIMIT);
    assert_int_equal(e.offset, 64);
    json_limits deeper = {.max_depth = 1000000}; /* clamped to 512 */
    assert_int_equal(json_parse(NULL, t, 2 * DEEP, &deeper, &d, &e), -1);
    assert_int_equal(e.offset, 512);
    free(t);

    json_limits lim = {.max_nodes = 3};
    assert_int_equal(json_parse(NULL, "[1,2]", 5, &lim, &d, &e), 0);
    json_free(NULL, d);
    assert_int_equal(json_parse(NULL, "[1,2,3]", 7, &lim, &d, &e), -1);
    assert_int_equal(e.kind, JSON_ERR_LIMIT);
    assert_int_equal(e.offset, 5);

    json_limits small = {.max_len = 4};
    assert_int_equal(json_parse(NULL, "[1,2]", 5, &small, &d, &e), -1);
    assert_int_equal(e.kind, JSON_ERR_LIMIT);
    assert_int_equal(json_parse(NULL, "[12]", 4, &small, &d, &e), 0);
    json_free(NULL, d);
}

static void json_alloc_failures(void **state)
{
    (void)state;
    /* big enough for several arena blocks and scratch growth */
    enum { CAP = 65536 };
    char *t = malloc(CAP);
    size_t n = 0;
    n += (size_t)snprintf(t + n, CAP - n, "{\"k\": [");
    for (int i = 0; i < 1500; i++)
        n += (size_t)snprintf(t + n, CAP - n, "%s{\"n%d\": \"v\"}",
                              i ? "," : "", i);
    n += (size_t)snprintf(t + n, CAP - n, "]}");
    assert_true(n < CAP);
    for (long at = 0;; at++) {
        counting c;
        ms_allocator a = counting_allocator(&c, at);
        json_doc *d;
        json_error e;
        int rc = json_parse(&a, t, n, NULL, &d, &e);
        if (rc == 0) {
            assert_true(at > 2);
            json_free(&a, d);
            assert_int_equal(c.live, 0);
            break;
        }
        assert_int_equal(e.kind, JSON_ERR_MEMORY);
        assert_int_equal(c.live, 0);
    }
    free(t);
}

/* ---- the real trailer --------------------------------------------------- */

typedef struct capture {
    uint8_t *mig;
    size_t mig_len;
    size_t json_off, json_len;
    vms_desc *desc;
} capture;

static void capture_load(capture *c)
{
    memset(c, 0, sizeof *c);
    c->mig = read_file(CAPTURE "main.mig", &c->mig_len);
    find_trailer(c->mig, c->mig_len, &c->json_off, &c->json_len);
    ms_error_info err = {0};
    if (vms_desc_parse(NULL, NULL, (const char *)c->mig + c->json_off,
                       c->json_len, &c->desc, &err) < 0)
        fail_msg("trailer rejected at %llu: %s",
                 (unsigned long long)err.offset, err.detail);
}

static void capture_free(capture *c)
{
    vms_desc_free(NULL, c->desc);
    free(c->mig);
}

static void trailer_real(void **state)
{
    (void)state;
    capture c;
    capture_load(&c);
    assert_int_equal(c.json_off, 1927794);
    assert_int_equal(c.json_len, 104550);
    assert_int_equal(vms_desc_device_count(c.desc), 34);
    assert_int_equal(vms_desc_page_size(c.desc), 4096);
    assert_non_null(vms_desc_find(c.desc, E1000, 0));
    assert_null(vms_desc_find(c.desc, E1000, 1));
    assert_non_null(vms_desc_find(c.desc, "dma", 0));
    assert_non_null(vms_desc_find(c.desc, "dma", 1));
    assert_true(vms_desc_find(c.desc, "dma", 0) !=
                vms_desc_find(c.desc, "dma", 1));
    assert_non_null(vms_desc_find(c.desc, "slirp", 0));
    assert_null(vms_desc_find(c.desc, "dma", 2));
    assert_null(vms_desc_find(c.desc, "nonexistent", 0));
    assert_null(vms_desc_find(c.desc, "", 0));
    assert_null(vms_desc_find(NULL, "dma", 0));

    /* the allocator sees everything back */
    counting cnt;
    ms_allocator a = counting_allocator(&cnt, -1);
    vms_desc *d;
    ms_error_info err = {0};
    assert_int_equal(vms_desc_parse(&a, NULL, (const char *)c.mig + c.json_off,
                                    c.json_len, &d, &err), 0);
    assert_true(cnt.live > 0);
    vms_desc_free(&a, d);
    assert_int_equal(cnt.live, 0);
    capture_free(&c);
}

/* ---- reference-state.json flattened as the walk names fields ------------ */

typedef struct flat {
    char **path;
    const json_value **val;
    size_t n, cap;
} flat;

static void flat_add(flat *f, const char *path, const json_value *v)
{
    if (f->n == f->cap) {
        f->cap = f->cap ? 2 * f->cap : 256;
        f->path = realloc(f->path, f->cap * sizeof *f->path);
        f->val = realloc(f->val, f->cap * sizeof *f->val);
    }
    f->path[f->n] = strdup(path);
    f->val[f->n++] = v;
}

/* Objects add ".key", lists "[i]", the leaves are the fields. */
static void flatten(flat *f, const json_value *v, char *path, size_t plen)
{
    if (json_is(v, JSON_OBJECT)) {
        for (size_t i = 0; i < json_len(v); i++) {
            const char *k = json_key_at(v, i, NULL);
            int n = snprintf(path + plen, 1024 - plen, "%s%s",
                             plen ? "." : "", k);
            flatten(f, json_at(v, i), path, plen + (size_t)n);
        }
    } else if (json_is(v, JSON_ARRAY)) {
        for (size_t i = 0; i < json_len(v); i++) {
            int n = snprintf(path + plen, 1024 - plen, "[%zu]", i);
            flatten(f, json_at(v, i), path, plen + (size_t)n);
        }
    } else {
        path[plen] = 0;
        flat_add(f, path, v);
    }
}

static void flat_free(flat *f)
{
    for (size_t i = 0; i < f->n; i++)
        free(f->path[i]);
    free(f->path);
    free(f->val);
    memset(f, 0, sizeof *f);
}

typedef struct reference {
    uint8_t *text;
    json_doc *doc;
} reference;

static const json_value *reference_load(reference *r)
{
    size_t len;
    r->text = read_file(CAPTURE "reference-state.json", &len);
    json_error e;
    if (json_parse(NULL, (const char *)r->text, len, NULL, &r->doc, &e) < 0)
        fail_msg("reference-state.json: %zu: %s", e.offset, e.detail);
    return json_root(r->doc);
}

static void reference_free(reference *r)
{
    json_free(NULL, r->doc);
    free(r->text);
}

static void flatten_section(flat *f, const json_value *sec)
{
    char path[1024];
    memset(f, 0, sizeof *f);
    flatten(f, sec, path, 0);
}

/* The text analyze-migration.py printed for a leaf. */
static const char *leaf_text(const json_value *v)
{
    if (json_is(v, JSON_TRUE))
        return "true";
    if (json_is(v, JSON_FALSE))
        return "false";
    const char *s = json_string(v, NULL);
    return s ? s : "(not a string)";
}

/* The walk over e1000's description alone, entering the subsections the
 * trailer lists (QEMU lists exactly the ones it sent), must name the
 * fields as analyze-migration.py did. */
static void e1000_paths_parity(void **state)
{
    (void)state;
    capture c;
    reference ref;
    capture_load(&c);
    const json_value *root = reference_load(&ref);
    flat f;
    flatten_section(&f, json_get(root, E1000 " (42)"));
    assert_int_equal(f.n, 33232);

    static const char *const subs[] = {"e1000/mit_state",
                                       "e1000/full_mac_state",
                                       "e1000/tx_tso_state"};
    const vms_device *dev = vms_desc_find(c.desc, E1000, 0);
    assert_non_null(dev);
    vms_walk w;
    vms_walk_begin(&w, dev);
    size_t i = 0, nsub = 0, root_points = 0;
    uint64_t bytes = 0;
    for (;;) {
        vms_step st;
        assert_int_equal(vms_walk_next(&w, &st), 0);
        if (st.kind == VMS_END)
            break;
        if (st.kind == VMS_FIELD) {
            assert_true(i < f.n);
            if (strcmp(st.path, f.path[i]) != 0)
                fail_msg("field %zu: walk \"%s\", reference \"%s\"", i,
                         st.path, f.path[i]);
            bytes += st.size;
            i++;
            continue;
        }
        if (st.path[0] == 0) { /* the device's own subsection point */
            assert_string_equal(st.type, "e1000");
            root_points++;
            if (nsub < 3) {
                assert_int_equal(vms_walk_subsection(&w, subs[nsub], 1), 0);
                nsub++;
                continue;
            }
        }
        vms_walk_no_subsection(&w);
    }
    assert_int_equal(i, f.n);
    assert_int_equal(root_points, 4);
    /* the section's payload is 198785 bytes; 71 of them frame the three
     * subsections (1 + 1 + name + 4 each) */
    assert_int_equal(bytes, 198714);
    flat_free(&f);
    reference_free(&ref);
    capture_free(&c);
}

/* ---- parity over every FULL section, found by their headers ------------- */

/* Walk one FULL section's payload at buf[pos], handling subsections the
 * way QEMU's vmstate_subsection_load does (0x05, then a name that must be
 * longer than and start with the level's VMSD name); compare each field's
 * path and rendering with the reference.  Returns the end offset. */
static size_t walk_payload(const vms_device *dev, const uint8_t *buf,
                           size_t len, size_t pos, const flat *ref,
                           size_t *matched, size_t *fields)
{
    vms_walk w;
    vms_walk_begin(&w, dev);
    size_t i = 0;
    for (;;) {
        vms_step st;
        if (vms_walk_next(&w, &st) < 0)
            fail_msg("walk: %s", w.detail);
        if (st.kind == VMS_END)
            break;
        if (st.kind == VMS_FIELD) {
            assert_true(st.size <= len - pos);
            ms_field_info fi = {.path = st.path, .type = st.type,
                                .data = buf + pos, .size = st.size};
            size_t need = ms_field_format(&fi, NULL, 0);
            char *txt = malloc(need + 1);
            assert_int_equal(ms_field_format(&fi, txt, need + 1), need);
            assert_int_equal(strlen(txt), need);
            if (i < ref->n && strcmp(ref->path[i], st.path) == 0 &&
                strcmp(leaf_text(ref->val[i]), txt) == 0)
                (*matched)++;
            else if (i < ref->n)
                print_message("mismatch %s: \"%.60s\" vs reference %s "
                              "\"%.60s\"\n", st.path, txt, ref->path[i],
                              leaf_text(ref->val[i]));
            free(txt);
            (*fields)++;
            i++;
            pos += st.size;
            continue;
        }
        size_t pl = strlen(st.type);
        if (pos + 2 <= len && buf[pos] == 0x05 && buf[pos + 1] > pl &&
            pos + 2 + buf[pos + 1] + 4 <= len &&
            memcmp(buf + pos + 2, st.type, pl) == 0) {
            char name[256];
            size_t nl = buf[pos + 1];
            memcpy(name, buf + pos + 2, nl);
            name[nl] = 0;
            uint32_t ver = ms_be32(buf + pos + 2 + nl);
            if (vms_walk_subsection(&w, name, ver) < 0)
                fail_msg("subsection: %s", w.detail);
            pos += 2 + nl + 4;
            continue;
        }
        vms_walk_no_subsection(&w);
    }
    assert_int_equal(i, ref->n);
    return pos;
}

static void parity_all_sections(void **state)
{
    (void)state;
    capture c;
    reference ref;
    capture_load(&c);
    const json_value *root = reference_load(&ref);
    size_t matched = 0, fields = 0, sections = 0;
    for (size_t k = 0; k < json_len(root); k++) {
        const char *key = json_key_at(root, k, NULL);
        char name[256];
        unsigned id;
        const char *sp = strrchr(key, ' ');
        assert_non_null(sp);
        assert_int_equal(sscanf(sp, " (%u)", &id), 1);
        snprintf(name, sizeof name, "%.*s", (int)(sp - key), key);
        if (strcmp(name, "ram") == 0)
            continue; /* iterable, not VMState */
        /* FULL section header: 0x04, be32 id, counted idstr, be32
         * instance, be32 version */
        uint8_t hdr[300];
        size_t nl = strlen(name), hl = 0;
        hdr[hl++] = 0x04;
        hdr[hl++] = (uint8_t)(id >> 24);
        hdr[hl++] = (uint8_t)(id >> 16);
        hdr[hl++] = (uint8_t)(id >> 8);
        hdr[hl++] = (uint8_t)id;
        hdr[hl++] = (uint8_t)nl;
        memcpy(hdr + hl, name, nl);
        hl += nl;
        size_t pos = find_bytes(c.mig, c.json_off, hdr, hl);
        assert_true(pos < c.json_off);
        pos += hl;
        uint32_t inst = ms_be32(c.mig + pos);
        pos += 8;
        const vms_device *dev = vms_desc_find(c.desc, name, inst);
        assert_non_null(dev);
        flat f;
        flatten_section(&f, json_at(root, k));
        pos = walk_payload(dev, c.mig, c.json_off, pos, &f, &matched,
                           &fields);
        /* the walk consumed exactly the payload: the footer follows */
        assert_int_equal(c.mig[pos], 0x7e);
        assert_int_equal(ms_be32(c.mig + pos + 1), id);
        flat_free(&f);
        sections++;
    }
    print_message("parity by scan: %zu sections, %zu/%zu fields match "
                  "analyze-migration.py exactly\n", sections, matched,
                  fields);
    assert_int_equal(sections, 34);
    assert_int_equal(fields, 36098);
    assert_int_equal(matched, fields);
    reference_free(&ref);
    capture_free(&c);
}

/* ---- parity through the reader (libstream/qemu/qemu_main.c) ------------------ */

static void parity_reader(void **state)
{
    (void)state;
    capture c;
    reference ref;
    capture_load(&c);
    const json_value *root = reference_load(&ref);
    ms_options opt;
    ms_options_init(&opt);
    opt.field_events = 1;
    ms_reader *r = ms_reader_create(&opt);
    assert_non_null(r);
    assert_int_equal(ms_reader_set_vmdesc(r, (const char *)c.mig + c.json_off,
                                          c.json_len), 0);
    assert_int_equal(ms_reader_input(r, c.mig, c.mig_len), 0);
    flat f = {0};
    size_t fi = 0, matched = 0, fields = 0, sections = 0, subsections = 0;
    int in_full = 0;
    static char txt[256 * 1024];
    ms_event ev;
    int rc;
    while ((rc = ms_reader_next(r, &ev)) == MS_NEXT_EVENT) {
        if (ev.kind == MS_EV_SECTION) {
            in_full = ev.u.section.type == MS_QSEC_FULL;
            if (!in_full)
                continue;
            char key[300];
            snprintf(key, sizeof key, "%s (%u)", ev.u.section.idstr,
                     ev.u.section.section_id);
            flat_free(&f);
            const json_value *sec = json_get(root, key);
            assert_non_null(sec);
            flatten_section(&f, sec);
            fi = 0;
            sections++;
        } else if (ev.kind == MS_EV_SUBSECTION) {
            subsections++;
        } else if (ev.kind == MS_EV_FIELD) {
            fields++;
            ms_field_format(&ev.u.field, txt, sizeof txt);
            if (fi < f.n && strcmp(f.path[fi], ev.u.field.path) == 0 &&
                ev.u.field.data &&
                strcmp(leaf_text(f.val[fi]), txt) == 0)
                matched++;
            fi++;
        } else if (ev.kind == MS_EV_SECTION_FOOTER && in_full) {
            assert_int_equal(fi, f.n);
            in_full = 0;
        }
    }
    if (rc == MS_NEXT_ERROR)
        fail_msg("reader: %s at %llu: %s",
                 ms_error_name(ms_reader_error(r)->code),
                 (unsigned long long)ms_reader_error(r)->offset,
                 ms_reader_error(r)->detail);
    assert_int_equal(ms_reader_finish(r), 0);
    print_message("parity through the reader: %zu FULL sections, %zu "
                  "subsections, %zu/%zu fields match analyze-migration.py "
                  "exactly\n", sections, subsections, matched, fields);
    assert_int_equal(sections, 34);
    assert_int_equal(fields, 36098);
    assert_int_equal(matched, fields);
    flat_free(&f);
    ms_reader_free(r);
    reference_free(&ref);
    capture_free(&c);
}

/* ---- synthetic descriptions: the walk ----------------------------------- */

static vms_desc *desc_ok(const char *json)
{
    vms_desc *d = NULL;
    ms_error_info err = {0};
    if (vms_desc_parse(NULL, NULL, json, strlen(json), &d, &err) < 0)
        fail_msg("description rejected: %s at %llu: %s",
                 ms_error_name(err.code), (unsigned long long)err.offset,
                 err.detail);
    return d;
}

/* What the walk must do, step by step, and what the "decoder" answers. */
typedef struct expect {
    char op; /* F field, S subsection point then enter `sub`, N subsection
              * point then none, E end */
    const char *path; /* F: field path; S/N: the level's path */
    const char *type; /* F: type; S/N: the level's VMSD name */
    size_t size;
    const char *sub;
    uint32_t ver;
} expect;

static void run_walk(const vms_device *dev, const expect *x, size_t n)
{
    vms_walk w;
    vms_walk_begin(&w, dev);
    for (size_t i = 0; i < n; i++) {
        vms_step st;
        if (vms_walk_next(&w, &st) < 0)
            fail_msg("step %zu: %s", i, w.detail);
        const char *kind = st.kind == VMS_FIELD ? "F"
                           : st.kind == VMS_END ? "E" : "S/N";
        int ok;
        switch (x[i].op) {
        case 'F':
            ok = st.kind == VMS_FIELD && strcmp(st.path, x[i].path) == 0 &&
                 strcmp(st.type, x[i].type) == 0 && st.size == x[i].size;
            break;
        case 'E':
            ok = st.kind == VMS_END;
            break;
        default:
            ok = st.kind == VMS_SUBSECTION_OR_END &&
                 strcmp(st.path, x[i].path) == 0 &&
                 strcmp(st.type, x[i].type) == 0;
        }
        if (!ok)
            fail_msg("step %zu: expected %c \"%s\" %s, got %s \"%s\" \"%s\" "
                     "%zu", i, x[i].op, x[i].path ? x[i].path : "",
                     x[i].type ? x[i].type : "", kind, st.path, st.type,
                     st.size);
        if (x[i].op == 'S' && vms_walk_subsection(&w, x[i].sub, x[i].ver) < 0)
            fail_msg("step %zu: subsection %s: %s", i, x[i].sub, w.detail);
        if (x[i].op == 'N')
            vms_walk_no_subsection(&w);
    }
    /* VMS_END stays */
    vms_step st;
    assert_int_equal(vms_walk_next(&w, &st), 0);
    assert_int_equal(st.kind, VMS_END);
}

static const char SYN[] =
    "{\"page_size\": 65536, \"devices\": ["
    "{\"name\": \"dev\", \"instance_id\": 3, \"vmsd_name\": \"dev\","
    " \"version\": 1, \"fields\": ["
    "  {\"name\": \"a\", \"type\": \"uint32\", \"size\": 4},"
    "  {\"name\": \"arr\", \"type\": \"uint16\", \"size\": 2,"
    "   \"array_len\": 3},"
    "  {\"name\": \"one\", \"type\": \"uint8\", \"size\": 1,"
    "   \"array_len\": 1},"
    "  {\"name\": \"none\", \"type\": \"uint8\", \"size\": 1,"
    "   \"array_len\": 0},"
    "  {\"name\": \"s\", \"type\": \"struct\", \"size\": 9, \"struct\":"
    "   {\"vmsd_name\": \"st\", \"version\": 1, \"fields\": ["
    "     {\"name\": \"x\", \"type\": \"int8\", \"size\": 1},"
    "     {\"name\": \"y\", \"type\": \"buffer\", \"size\": 3}],"
    "    \"subsections\": [{\"vmsd_name\": \"st/sub\", \"version\": 2,"
    "     \"fields\": [{\"name\": \"z\", \"type\": \"bool\", \"size\": 1}]}]"
    "  }},"
    "  {\"name\": \"el\", \"index\": 0, \"type\": \"struct\", \"size\": 1,"
    "   \"struct\": {\"vmsd_name\": \"e\", \"version\": 1, \"fields\":"
    "    [{\"name\": \"v\", \"type\": \"uint8\", \"size\": 1}]}},"
    "  {\"name\": \"el\", \"index\": 1, \"type\": \"struct\", \"size\": 1,"
    "   \"struct\": {\"vmsd_name\": \"e\", \"version\": 1, \"fields\":"
    "    [{\"name\": \"v\", \"type\": \"uint8\", \"size\": 1}]}},"
    "  {\"name\": \"sa\", \"type\": \"struct\", \"size\": 2, \"array_len\": 2,"
    "   \"struct\": {\"vmsd_name\": \"e2\", \"version\": 1, \"fields\":"
    "    [{\"name\": \"w\", \"type\": \"uint16\", \"size\": 2}]}},"
    "  {\"name\": \"v.q\", \"type\": \"tmp\", \"size\": 10, \"vmsd_name\":"
    "   \"t\", \"version\": 0, \"fields\": [{\"name\": \"i\", \"type\":"
    "   \"uint64\", \"size\": 8}]},"
    "  {\"name\": \"vs\", \"type\": \"vstruct\", \"size\": 3, \"struct\":"
    "   {\"vmsd_name\": \"vv\", \"version\": 1, \"fields\": []}},"
    "  {\"name\": \"cfg[0]\", \"type\": \"pci config\", \"size\": 256}"
    " ],"
    " \"subsections\": ["
    "  {\"vmsd_name\": \"dev/a\", \"version\": 1, \"fields\":"
    "   [{\"name\": \"p\", \"type\": \"uint64\", \"size\": 8}],"
    "   \"subsections\": [{\"vmsd_name\": \"dev/a/b\", \"version\": 1,"
    "    \"fields\": [{\"name\": \"q\", \"type\": \"uint8\", \"size\": 1}]}]},"
    "  {\"vmsd_name\": \"dev/c\", \"version\": 4, \"fields\":"
    "   [{\"name\": \"r\", \"type\": \"uint8\", \"size\": 1,"
    "     \"array_len\": 2}]}"
    " ]},"
    "{\"name\": \"old\", \"instance_id\": 0, \"size\": 5, \"fields\":"
    " [{\"name\": \"data\", \"size\": 5, \"type\": \"buffer\"}]}"
    "]}";

static void walk_synthetic(void **state)
{
    (void)state;
    vms_desc *d = desc_ok(SYN);
    assert_int_equal(vms_desc_device_count(d), 2);
    assert_int_equal(vms_desc_page_size(d), 65536);
    assert_null(vms_desc_find(d, "dev", 0));
    static const expect x[] = {
        {'F', "a", "uint32", 4, NULL, 0},
        {'F', "arr[0]", "uint16", 2, NULL, 0},
        {'F', "arr[1]", "uint16", 2, NULL, 0},
        {'F', "arr[2]", "uint16", 2, NULL, 0},
        {'F', "one", "uint8", 1, NULL, 0}, /* a single element: bare */
        {'F', "s.x", "int8", 1, NULL, 0},
        {'F', "s.y", "buffer", 3, NULL, 0},
        {'S', "s", "st", 0, "st/sub", 2}, /* subsection inside a struct */
        {'F', "s.st/sub.z", "bool", 1, NULL, 0},
        {'N', "s.st/sub", "st/sub", 0, NULL, 0},
        {'N', "s", "st", 0, NULL, 0},
        {'F', "el[0].v", "uint8", 1, NULL, 0}, /* per-element "index" */
        {'N', "el[0]", "e", 0, NULL, 0},
        {'F', "el[1].v", "uint8", 1, NULL, 0},
        {'N', "el[1]", "e", 0, NULL, 0},
        {'F', "sa[0].w", "uint16", 2, NULL, 0}, /* array of structs */
        {'N', "sa[0]", "e2", 0, NULL, 0},
        {'F', "sa[1].w", "uint16", 2, NULL, 0},
        {'N', "sa[1]", "e2", 0, NULL, 0},
        {'F', "v.q", "tmp", 10, NULL, 0}, /* tmp: its bytes, not its fields */
        {'F', "vs", "vstruct", 3, NULL, 0},
        {'F', "cfg[0]", "pci config", 256, NULL, 0},
        {'S', "", "dev", 0, "dev/c", 4}, /* any order */
        {'F', "dev/c.r[0]", "uint8", 1, NULL, 0},
        {'F', "dev/c.r[1]", "uint8", 1, NULL, 0},
        {'N', "dev/c", "dev/c", 0, NULL, 0},
        {'S', "", "dev", 0, "dev/a", 1},
        {'F', "dev/a.p", "uint64", 8, NULL, 0},
        {'S', "dev/a", "dev/a", 0, "dev/a/b", 1}, /* nested subsection */
        {'F', "dev/a.dev/a/b.q", "uint8", 1, NULL, 0},
        {'N', "dev/a.dev/a/b", "dev/a/b", 0, NULL, 0},
        {'N', "dev/a", "dev/a", 0, NULL, 0},
        {'N', "", "dev", 0, NULL, 0},
        {'E', NULL, NULL, 0, NULL, 0},
    };
    run_walk(vms_desc_find(d, "dev", 3), x, sizeof x / sizeof x[0]);

    /* no subsection at all is fine too */
    static const expect y[] = {
        {'F', "a", "uint32", 4, NULL, 0},
        {'F', "arr[0]", "uint16", 2, NULL, 0},
        {'F', "arr[1]", "uint16", 2, NULL, 0},
        {'F', "arr[2]", "uint16", 2, NULL, 0},
        {'F', "one", "uint8", 1, NULL, 0},
        {'F', "s.x", "int8", 1, NULL, 0},
        {'F', "s.y", "buffer", 3, NULL, 0},
        {'N', "s", "st", 0, NULL, 0},
        {'F', "el[0].v", "uint8", 1, NULL, 0},
        {'N', "el[0]", "e", 0, NULL, 0},
        {'F', "el[1].v", "uint8", 1, NULL, 0},
        {'N', "el[1]", "e", 0, NULL, 0},
        {'F', "sa[0].w", "uint16", 2, NULL, 0},
        {'N', "sa[0]", "e2", 0, NULL, 0},
        {'F', "sa[1].w", "uint16", 2, NULL, 0},
        {'N', "sa[1]", "e2", 0, NULL, 0},
        {'F', "v.q", "tmp", 10, NULL, 0},
        {'F', "vs", "vstruct", 3, NULL, 0},
        {'F', "cfg[0]", "pci config", 256, NULL, 0},
        {'N', "", "dev", 0, NULL, 0},
        {'E', NULL, NULL, 0, NULL, 0},
    };
    run_walk(vms_desc_find(d, "dev", 3), y, sizeof y / sizeof y[0]);

    /* old-style device: its bytes, then done (QEMU reads no subsection) */
    static const expect z[] = {
        {'F', "data", "buffer", 5, NULL, 0},
        {'E', NULL, NULL, 0, NULL, 0},
    };
    run_walk(vms_desc_find(d, "old", 0), z, sizeof z / sizeof z[0]);

    /* no description: the walk is over at once */
    vms_walk w;
    vms_step st;
    vms_walk_begin(&w, NULL);
    assert_int_equal(vms_walk_next(&w, &st), 0);
    assert_int_equal(st.kind, VMS_END);
    vms_desc_free(NULL, d);
}

/* A subsection header read at a struct's subsection point may belong to
 * an enclosing level (QEMU's name prefix rule). */
static void walk_subsection_levels(void **state)
{
    (void)state;
    vms_desc *d = desc_ok(
        "{\"devices\": [{\"name\": \"p\", \"instance_id\": 0, "
        "\"vmsd_name\": \"p\", \"fields\": ["
        " {\"name\": \"u\", \"type\": \"uint8\", \"size\": 1},"
        " {\"name\": \"k\", \"type\": \"struct\", \"size\": 1, "
        "  \"array_len\": 2, \"struct\": {\"vmsd_name\": \"k\", "
        "  \"fields\": [{\"name\": \"b\", \"type\": \"uint8\", "
        "  \"size\": 1}], \"subsections\": [{\"vmsd_name\": \"k/x\", "
        "  \"fields\": []}]}}],"
        " \"subsections\": [{\"vmsd_name\": \"p/s\", \"version\": 1, "
        "  \"fields\": [{\"name\": \"t\", \"type\": \"uint8\", "
        "  \"size\": 1}]}]}]}");
    const vms_device *dev = vms_desc_find(d, "p", 0);
    /* after the last struct element: the device's subsection */
    static const expect x[] = {
        {'F', "u", "uint8", 1, NULL, 0},
        {'F', "k[0].b", "uint8", 1, NULL, 0},
        {'S', "k[0]", "k", 0, "k/x", 0}, /* the struct's own */
        {'N', "k[0].k/x", "k/x", 0, NULL, 0},
        {'N', "k[0]", "k", 0, NULL, 0},
        {'F', "k[1].b", "uint8", 1, NULL, 0},
        {'S', "k[1]", "k", 0, "p/s", 1}, /* ends k[1], then p's */
        {'F', "p/s.t", "uint8", 1, NULL, 0},
        {'N', "p/s", "p/s", 0, NULL, 0},
        {'N', "", "p", 0, NULL, 0},
        {'E', NULL, NULL, 0, NULL, 0},
    };
    run_walk(dev, x, sizeof x / sizeof x[0]);

    /* after k[0] a field follows: QEMU would read the bytes as k[1].b */
    vms_walk w;
    vms_step st;
    vms_walk_begin(&w, dev);
    for (int i = 0; i < 3; i++)
        assert_int_equal(vms_walk_next(&w, &st), 0);
    assert_int_equal(st.kind, VMS_SUBSECTION_OR_END);
    assert_int_equal(vms_walk_subsection(&w, "p/s", 1), -1);
    assert_non_null(strstr(w.detail, "k[1].b"));
    vms_desc_free(NULL, d);
}

/* Walk `dev` of SYN up to the device's own subsection point. */
static void to_root_point(vms_walk *w, const vms_device *dev)
{
    vms_walk_begin(w, dev);
    for (;;) {
        vms_step st;
        assert_int_equal(vms_walk_next(w, &st), 0);
        assert_int_not_equal(st.kind, VMS_END);
        if (st.kind != VMS_SUBSECTION_OR_END)
            continue;
        if (st.path[0] == 0)
            return;
        vms_walk_no_subsection(w);
    }
}

static void walk_errors(void **state)
{
    (void)state;
    vms_desc *d = desc_ok(SYN);
    const vms_device *dev = vms_desc_find(d, "dev", 3);
    vms_walk w;
    vms_step st;

    /* a subsection the trailer does not list: -1, and it sticks */
    to_root_point(&w, dev);
    assert_int_equal(vms_walk_subsection(&w, "dev/zzz", 1), -1);
    assert_non_null(strstr(w.detail, "dev/zzz"));
    assert_int_equal(vms_walk_next(&w, &st), -1);
    assert_int_equal(vms_walk_subsection(&w, "dev/c", 4), -1);

    /* one listed for another level */
    to_root_point(&w, dev);
    assert_int_equal(vms_walk_subsection(&w, "st/sub", 2), -1);

    /* the same subsection twice */
    to_root_point(&w, dev);
    assert_int_equal(vms_walk_subsection(&w, "dev/c", 4), 0);
    for (;;) {
        assert_int_equal(vms_walk_next(&w, &st), 0);
        if (st.kind == VMS_SUBSECTION_OR_END)
            break;
    }
    vms_walk_no_subsection(&w); /* dev/c has no subsections of its own */
    assert_int_equal(vms_walk_next(&w, &st), 0);
    assert_int_equal(st.kind, VMS_SUBSECTION_OR_END);
    assert_string_equal(st.path, "");
    assert_int_equal(vms_walk_subsection(&w, "dev/c", 4), -1);
    assert_non_null(strstr(w.detail, "twice"));

    /* a version other than the trailer's */
    to_root_point(&w, dev);
    assert_int_equal(vms_walk_subsection(&w, "dev/c", 3), -1);
    assert_non_null(strstr(w.detail, "version"));

    /* a subsection where fields are expected */
    vms_walk_begin(&w, dev);
    assert_int_equal(vms_walk_subsection(&w, "dev/c", 4), -1);
    assert_int_equal(vms_walk_next(&w, &st), -1);

    /* the old-style device has no subsection point */
    vms_walk_begin(&w, vms_desc_find(d, "old", 0));
    assert_int_equal(vms_walk_next(&w, &st), 0);
    assert_int_equal(vms_walk_subsection(&w, "old/x", 1), -1);
    vms_desc_free(NULL, d);

    /* subsections nested deeper than VMS_MAX_DEPTH */
    char json[8192], name[256];
    size_t n = 0;
    n += (size_t)snprintf(json + n, sizeof json - n,
                          "{\"devices\": [{\"name\": \"d\", \"instance_id\":"
                          " 0, \"vmsd_name\": \"d\", \"fields\": []");
    strcpy(name, "d");
    for (int k = 0; k < VMS_MAX_DEPTH + 2; k++) {
        snprintf(name + strlen(name), sizeof name - strlen(name), "/%c",
                 'a' + k);
        n += (size_t)snprintf(json + n, sizeof json - n,
                              ", \"subsections\": [{\"vmsd_name\": \"%s\", "
                              "\"fields\": []", name);
    }
    for (int k = 0; k < VMS_MAX_DEPTH + 2; k++)
        n += (size_t)snprintf(json + n, sizeof json - n, "}]");
    n += (size_t)snprintf(json + n, sizeof json - n, "}]}");
    d = desc_ok(json);
    vms_walk_begin(&w, vms_desc_find(d, "d", 0));
    strcpy(name, "d");
    int depth_failed = 0;
    for (int k = 0; k < VMS_MAX_DEPTH + 2; k++) {
        assert_int_equal(vms_walk_next(&w, &st), 0);
        assert_int_equal(st.kind, VMS_SUBSECTION_OR_END);
        snprintf(name + strlen(name), sizeof name - strlen(name), "/%c",
                 'a' + k);
        if (vms_walk_subsection(&w, name, 0) < 0) {
            if (k != VMS_MAX_DEPTH - 1 || !strstr(w.detail, "deeper"))
                fail_msg("level %d: %s", k, w.detail);
            depth_failed = 1;
            break;
        }
    }
    assert_true(depth_failed);
    vms_desc_free(NULL, d);

    /* a path longer than VMS_PATH_MAX */
    char longname[VMS_PATH_MAX + 10];
    memset(longname, 'n', sizeof longname - 1);
    longname[sizeof longname - 1] = 0;
    snprintf(json, sizeof json,
             "{\"devices\": [{\"name\": \"d\", \"instance_id\": 0, "
             "\"vmsd_name\": \"d\", \"fields\": [{\"name\": \"ok\", "
             "\"type\": \"uint8\", \"size\": 1}, {\"name\": \"%s\", "
             "\"type\": \"uint8\", \"size\": 1}]}]}", longname);
    d = desc_ok(json);
    vms_walk_begin(&w, vms_desc_find(d, "d", 0));
    assert_int_equal(vms_walk_next(&w, &st), 0);
    assert_string_equal(st.path, "ok");
    assert_int_equal(vms_walk_next(&w, &st), -1);
    assert_non_null(strstr(w.detail, "longer"));
    vms_desc_free(NULL, d);
}

/* ---- malformed descriptions --------------------------------------------- */

static void desc_malformed(void **state)
{
    (void)state;
#define DEV_HEAD "{\"devices\": [{\"name\": \"d\", \"instance_id\": 0, "
    static const struct {
        const char *json;
        const char *at;     /* the bad node starts at its first occurrence */
        const char *detail; /* a part of the detail */
    } cases[] = {
        {"[]", "[]", "not a JSON object"},
        {"{}", "{}", "devices"},
        {"{\"devices\": 5}", "5", "devices"},
        {"{\"page_size\": \"x\", \"devices\": []}", "\"x\"", "page_size"},
        {"{\"page_size\": -1, \"devices\": []}", "-1", "page_size"},
        {"{\"page_size\": 4294967296, \"devices\": []}", "4294967296",
         "page_size"},
        {"{\"devices\": [7]}", "7", "not an object"},
        {"{\"devices\": [{\"instance_id\": 0, \"fields\": []}]}",
         "{\"instance_id\"", "\"name\""},
        {"{\"devices\": [{\"name\": 1, \"instance_id\": 0, \"fields\": []}]}",
         "1,", "not a string"},
        {DEV_HEAD "\"fields\": 3}]}", "3}", "fields"},
        {"{\"devices\": [{\"name\": \"d\", \"instance_id\": 4294967296, "
         "\"fields\": []}]}", "4294967296", "instance_id"},
        {"{\"devices\": [{\"name\": \"d\", \"fields\": []}]}",
         "{\"name\"", "instance_id"},
        {"{\"devices\": [{\"name\": \"d\", \"instance_id\": 0}]}",
         "{\"name\"", "fields"},
        {DEV_HEAD "\"fields\": [{\"name\": \"f\", \"type\": \"uint8\"}]}]}",
         "{\"name\": \"f\"", "\"size\""},
        {DEV_HEAD "\"fields\": [{\"name\": \"f\", \"size\": 1}]}]}",
         "{\"name\": \"f\"", "\"type\""},
        {DEV_HEAD "\"fields\": [{\"type\": \"uint8\", \"size\": 1}]}]}",
         "{\"type\"", "\"name\""},
        {DEV_HEAD "\"fields\": [{\"name\": \"f\", \"type\": \"uint8\", "
         "\"size\": -4}]}]}", "-4", "size"},
        {DEV_HEAD "\"fields\": [{\"name\": \"f\", \"type\": \"uint8\", "
         "\"size\": 1.5}]}]}", "1.5", "size"},
        {DEV_HEAD "\"fields\": [{\"name\": \"f\", \"type\": \"uint8\", "
         "\"size\": 1, \"array_len\": \"2\"}]}]}", "\"2\"", "array_len"},
        {DEV_HEAD "\"fields\": [{\"name\": \"f\", \"type\": \"uint8\", "
         "\"size\": 1, \"array_len\": 4294967296}]}]}", "4294967296",
         "array_len"},
        {DEV_HEAD "\"fields\": [{\"name\": \"f\", \"type\": \"struct\", "
         "\"size\": 1}]}]}", "{\"name\": \"f\"", "struct"},
        {DEV_HEAD "\"fields\": [{\"name\": \"f\", \"type\": \"struct\", "
         "\"size\": 1, \"struct\": []}]}]}", "[]}", "struct"},
        {DEV_HEAD "\"fields\": [{\"name\": \"f\", \"type\": \"struct\", "
         "\"size\": 1, \"struct\": {\"vmsd_name\": \"s\"}}]}]}",
         "{\"vmsd_name\": \"s\"}", "fields"},
        {DEV_HEAD "\"fields\": [{\"name\": \"f\", \"type\": \"struct\", "
         "\"size\": 1, \"struct\": {\"fields\": []}}]}]}",
         "{\"fields\": []}", "vmsd_name"},
        {DEV_HEAD "\"fields\": [7]}]}", "7]", "not an object"},
        {DEV_HEAD "\"vmsd_name\": \"d\", \"fields\": [], \"subsections\": "
         "[{\"fields\": []}]}]}", "{\"fields\": []}", "vmsd_name"},
        {DEV_HEAD "\"vmsd_name\": \"d\", \"fields\": [], \"subsections\": "
         "[{\"vmsd_name\": \"d/s\"}]}]}", "{\"vmsd_name\": \"d/s\"}",
         "fields"},
        {DEV_HEAD "\"vmsd_name\": \"d\", \"fields\": [], \"subsections\": "
         "[1]}]}", "1]", "not an object"},
        {DEV_HEAD "\"vmsd_name\": \"d\", \"fields\": [], \"subsections\": "
         "{}}]}", "{}}", "subsections"},
        {DEV_HEAD "\"fields\": [], \"subsections\": [{\"vmsd_name\": \"x\", "
         "\"fields\": []}]}]}", "[{\"vmsd_name\": \"x\"", "old-style"},
        {DEV_HEAD "\"vmsd_name\": \"d\", \"version\": -1, \"fields\": []}]}",
         "-1", "version"},
        {DEV_HEAD "\"fields\": [{\"name\": \"a\\u0000b\", \"type\": \"uint8\","
         " \"size\": 1}]}]}", "\"a\\u0000b\"", "NUL"},
        {DEV_HEAD "\"vmsd_name\": 5, \"fields\": []}]}", "5,", "vmsd_name"},
        /* JSON errors: the offset of the JSON problem */
        {"{\"devices\": [}", "}", "JSON"},
        {"{\"devices\": [], \"devices\": []}", "\"devices\": []}",
         "duplicate"},
        {"{\"devices\": []} x", "x", "trailing"},
        /* zero-size elements that would make the walk spin */
        {DEV_HEAD "\"vmsd_name\": \"d\", \"fields\": [{\"name\": \"z\", "
         "\"type\": \"uint8\", \"size\": 0, \"array_len\": 100000}]}]}",
         "{\"name\": \"d\"", "walk steps"},
        {DEV_HEAD "\"vmsd_name\": \"d\", \"fields\": [{\"name\": \"z\", "
         "\"type\": \"struct\", \"size\": 0, \"array_len\": 100000, "
         "\"struct\": {\"vmsd_name\": \"e\", \"fields\": []}}]}]}",
         "{\"name\": \"d\"", "walk steps"},
        /* ... whatever "size" the struct claims */
        {DEV_HEAD "\"vmsd_name\": \"d\", \"fields\": [{\"name\": \"z\", "
         "\"type\": \"struct\", \"size\": 1000000, \"array_len\": "
         "100000, \"struct\": {\"vmsd_name\": \"e\", \"fields\": []}}]}]}",
         "{\"name\": \"d\"", "walk steps"},
        {DEV_HEAD "\"vmsd_name\": \"d\", \"fields\": [], \"subsections\": "
         "[{\"vmsd_name\": \"d/s\", \"fields\": [{\"name\": \"z\", "
         "\"type\": \"x\", \"size\": 0, \"array_len\": 9999}]}]}]}",
         "{\"vmsd_name\": \"d/s\"", "walk steps"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *j = cases[i].json;
        const char *at = strstr(j, cases[i].at);
        assert_non_null(at);
        vms_desc *d = (vms_desc *)1;
        ms_error_info err = {0};
        int rc = vms_desc_parse(NULL, NULL, j, strlen(j), &d, &err);
        if (rc == 0 || err.code != MS_ERR_VMDESC ||
            err.offset != (uint64_t)(at - j) ||
            !strstr(err.detail, cases[i].detail))
            fail_msg("case %zu %s: rc %d %s at %llu (%s), expected offset "
                     "%td with \"%s\"", i, j, rc, ms_error_name(err.code),
                     (unsigned long long)err.offset, err.detail, at - j,
                     cases[i].detail);
        assert_null(d);
    }
#undef DEV_HEAD
}

static void desc_limits(void **state)
{
    (void)state;
    ms_options opt;
    ms_options_init(&opt);
    opt.max_vmdesc_bytes = 10;
    const char *j = "{\"devices\": []}";
    vms_desc *d;
    ms_error_info err = {0};
    assert_int_equal(vms_desc_parse(NULL, &opt, j, strlen(j), &d, &err), -1);
    assert_int_equal(err.code, MS_ERR_LIMIT);
    assert_non_null(strstr(err.detail, "max_vmdesc_bytes"));
    opt.max_vmdesc_bytes = strlen(j);
    memset(&err, 0, sizeof err);
    assert_int_equal(vms_desc_parse(NULL, &opt, j, strlen(j), &d, &err), 0);
    assert_int_equal(vms_desc_device_count(d), 0);
    assert_int_equal(vms_desc_page_size(d), 0);
    vms_desc_free(NULL, d);

    /* wrong struct_size */
    opt.struct_size = 3;
    memset(&err, 0, sizeof err);
    assert_int_equal(vms_desc_parse(NULL, &opt, j, strlen(j), &d, &err), -1);
    assert_int_equal(err.code, MS_ERR_USAGE);

    /* a big array of real bytes is fine (e1000 has 32768 uint32) */
    const char *big = "{\"devices\": [{\"name\": \"d\", \"instance_id\": 0, "
                      "\"vmsd_name\": \"d\", \"fields\": [{\"name\": \"m\", "
                      "\"type\": \"uint8\", \"size\": 1, \"array_len\": "
                      "4000000}]}]}";
    d = desc_ok(big);
    vms_desc_free(NULL, d);

    /* structs nested inside each other: 19 fit in the JSON depth limit
     * (3 JSON levels each) but not in the walk's VMS_MAX_DEPTH; 25 do not
     * even parse */
    for (int levels = 19; levels <= 25; levels += 6) {
        char json[4096];
        size_t n = (size_t)snprintf(json, sizeof json,
                                    "{\"devices\": [{\"name\": \"d\", "
                                    "\"instance_id\": 0, \"fields\": [");
        for (int k = 0; k < levels; k++)
            n += (size_t)snprintf(json + n, sizeof json - n,
                                  "{\"name\": \"s\", \"type\": \"struct\", "
                                  "\"size\": 0, \"struct\": {\"vmsd_name\": "
                                  "\"s\", \"fields\": [");
        n += (size_t)snprintf(json + n, sizeof json - n,
                              "{\"name\": \"x\", \"type\": \"uint8\", "
                              "\"size\": 1}");
        for (int k = 0; k < levels; k++)
            n += (size_t)snprintf(json + n, sizeof json - n, "]}}");
        n += (size_t)snprintf(json + n, sizeof json - n, "]}]}");
        assert_true(n < sizeof json);
        memset(&err, 0, sizeof err);
        int rc = vms_desc_parse(NULL, NULL, json, n, &d, &err);
        if (levels == 25) {
            assert_int_equal(rc, -1);
            assert_int_equal(err.code, MS_ERR_VMDESC);
            assert_non_null(strstr(err.detail, "nested"));
            continue;
        }
        assert_int_equal(rc, 0);
        vms_walk w;
        vms_step st;
        vms_walk_begin(&w, vms_desc_find(d, "d", 0));
        assert_int_equal(vms_walk_next(&w, &st), -1);
        assert_non_null(strstr(w.detail, "deeper"));
        vms_desc_free(NULL, d);
    }
}

static void desc_alloc_failures(void **state)
{
    (void)state;
    for (long at = 0;; at++) {
        counting c;
        ms_allocator a = counting_allocator(&c, at);
        vms_desc *d;
        ms_error_info err = {0};
        int rc = vms_desc_parse(&a, NULL, SYN, strlen(SYN), &d, &err);
        if (rc == 0) {
            assert_true(at > 3);
            vms_desc_free(&a, d);
            assert_int_equal(c.live, 0);
            break;
        }
        assert_int_equal(err.code, MS_ERR_NO_MEMORY);
        assert_int_equal(c.live, 0);
    }
}

/* Damaged trailers: whatever the parser accepts, the walk must survive. */
static void desc_mutations(void **state)
{
    (void)state;
    capture c;
    capture_load(&c);
    size_t len = c.json_len;
    /* the devices the intact trailer names, to look up in damaged ones */
    json_doc *orig = parse_ok((const char *)c.mig + c.json_off, len, NULL);
    const json_value *devs = json_get(json_root(orig), "devices");
    char *t = malloc(len);
    size_t walked = 0;
    uint64_t rng = 0x1234567;
    size_t accepted = 0;
    for (int round = 0; round < 300; round++) {
        memcpy(t, c.mig + c.json_off, len);
        int edits = 1 + (int)(tb_rand(&rng) % 4);
        for (int e = 0; e < edits; e++) {
            size_t at = (size_t)(tb_rand(&rng) % len);
            static const char pool[] = "{}[]\",:0129-e.\\ ntfa";
            t[at] = (tb_rand(&rng) & 1)
                        ? pool[tb_rand(&rng) % (sizeof pool - 1)]
                        : (char)tb_rand(&rng);
        }
        size_t cut = (tb_rand(&rng) % 8) ? len : (size_t)(tb_rand(&rng) % len);
        vms_desc *d;
        ms_error_info err = {0};
        if (vms_desc_parse(NULL, NULL, t, cut, &d, &err) < 0) {
            assert_true(err.code == MS_ERR_VMDESC);
            assert_true(err.offset <= cut);
            continue;
        }
        accepted++;
        /* walk every device found, entering the first subsection the
         * intact trailer lists wherever a level allows one */
        for (size_t i = 0; i < json_len(devs); i++) {
            const json_value *o = json_at(devs, i);
            int64_t inst;
            assert_int_equal(json_int(json_get(o, "instance_id"), &inst), 0);
            const vms_device *dev = vms_desc_find(
                d, json_string(json_get(o, "name"), NULL), (uint32_t)inst);
            if (!dev)
                continue;
            const char *sub = json_string(
                json_get(json_at(json_get(o, "subsections"), 0),
                         "vmsd_name"), NULL);
            vms_walk w;
            vms_walk_begin(&w, dev);
            int entered = 0;
            for (long steps = 0; steps < 2000000; steps++) {
                vms_step st;
                if (vms_walk_next(&w, &st) < 0 || st.kind == VMS_END)
                    break;
                if (st.kind != VMS_SUBSECTION_OR_END)
                    continue;
                if (sub && !entered && st.path[0] == 0) {
                    entered = 1;
                    if (vms_walk_subsection(&w, sub, 1) < 0)
                        break;
                    continue;
                }
                vms_walk_no_subsection(&w);
            }
            walked++;
        }
        vms_desc_free(NULL, d);
    }
    print_message("mutations: %zu of 300 damaged trailers still parse; "
                  "%zu device walks\n", accepted, walked);
    free(t);
    json_free(NULL, orig);
    capture_free(&c);
}

/* ---- ms_field_format ---------------------------------------------------- */

static void format_is(const char *type, const void *data, size_t size,
                      const char *want)
{
    ms_field_info f = {.type = type, .data = data, .size = size};
    char out[2048];
    size_t n = ms_field_format(&f, out, sizeof out);
    if (strcmp(out, want) != 0 || n != strlen(want))
        fail_msg("%s of %zu bytes: \"%s\" (%zu), expected \"%s\"", type,
                 size, out, n, want);
}

static void field_format(void **state)
{
    (void)state;
    /* values as reference-state.json shows them */
    format_is("uint32", "\x00\x00\x00\x2a", 4, "0x0000002a");
    format_is("uint16", "\x03\x7f", 2, "0x037f");   /* env.fpuc */
    format_is("uint8", "\x40", 1, "0x40");          /* fdc state.sra */
    format_is("uint64", "\x00\x00\x00\x00\xfa\xcc\x00\x00", 8,
              "0x00000000facc0000");                /* env.regs[1] */
    format_is("int32", "\xff\xff\xff\xff", 4, "0xffffffff (-1)");
    format_is("int32 le", "\x00\x00\x00\x02", 4, "0x00000002"); /* BE */
    format_is("bool", "\x00", 1, "false");
    format_is("bool", "\x01", 1, "true");
    format_is("buffer", "\x86\x80\x0e\x10", 4, "86 80 0e 10");
    format_is("unused_buffer", "\x00\x00\x00\x00", 4, "00 00 00 00");
    format_is("pci config", "\x86\x80", 2, "86 80");
    format_is("timer", "\x00\x00\x00\x00\x00\x00\x00\x01", 8,
              "00 00 00 00 00 00 00 01");
    format_is("tmp", "\x01\x02", 2, "01 02");
    /* signed classes of the script, including its "uint8/16 equal" */
    format_is("int8", "\x80", 1, "0x80 (-128)");
    format_is("int8", "\x7f", 1, "0x7f");
    format_is("int16", "\xff\xfe", 2, "0xfffe (-2)");
    format_is("int64", "\x80\x00\x00\x00\x00\x00\x00\x00", 8,
              "0x8000000000000000 (-9223372036854775808)");
    format_is("int64 equal", "\xff\xff\xff\xff\xff\xff\xff\xff", 8,
              "0xffffffffffffffff (-1)");
    format_is("int32 equal", "\x80\x00\x00\x01", 4,
              "0x80000001 (-2147483647)");
    format_is("uint8 equal", "\xff", 1, "0xff (-1)");
    format_is("uint16 equal", "\x80\x00", 2, "0x8000 (-32768)");
    format_is("uint32 equal", "\xff\xff\xff\xff", 4, "0xffffffff");
    format_is("uint64", "\xff\xff\xff\xff\xff\xff\xff\xff", 8,
              "0xffffffffffffffff");
    /* other sizes than the type's name says: the trailer's size rules */
    format_is("uint32", "", 0, "0x0");
    format_is("int32", "\xff\xff\xff", 3, "0xffffff (-1)");
    format_is("int64",
              "\x80\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
              "\x00", 16,
              "0x80000000000000000000000000000000 "
              "(-170141183460469231731687303715884105728)");
    format_is("uint64", "\x01\x00\x00\x00\x00\x00\x00\x00\x00", 9,
              "0x010000000000000000");
    /* the rest */
    format_is("nullptr", "0", 1, "nullptr");
    format_is("capability", "\x04x-ab", 5, "x-ab");
    format_is("buffer", "", 0, "");
    format_is("float64", "\x3f\xf0\x00\x00\x00\x00\x00\x00", 8,
              "3f f0 00 00 00 00 00 00");
    format_is("virtio", "\xff", 1, "ff");
    format_is("some future type", "\x0a\x0b", 2, "0a 0b");
    format_is(NULL, "\x0a", 1, "0a");

    /* snprintf rules */
    ms_field_info f = {.type = "uint32", .data = (const uint8_t *)"\0\0\0*",
                       .size = 4};
    char small[5];
    memset(small, 'X', sizeof small);
    assert_int_equal(ms_field_format(&f, small, sizeof small), 10);
    assert_string_equal(small, "0x00");
    assert_int_equal(ms_field_format(&f, NULL, 0), 10);
    char one = 'X';
    assert_int_equal(ms_field_format(&f, &one, 1), 10);
    assert_int_equal(one, 0);
    assert_int_equal(ms_field_format(NULL, small, sizeof small), 0);
    assert_string_equal(small, "");
    /* a large buffer: 3 bytes per byte, less the last space */
    static uint8_t buf[65536];
    ms_field_info g = {.type = "buffer", .data = buf, .size = sizeof buf};
    assert_int_equal(ms_field_format(&g, NULL, 0), 3 * sizeof buf - 1);
}

/* ---- ms_nest: the nesting analyze-migration.py prints --------------------- */

/* A growing text: one line per nesting step. */
typedef struct transcript {
    char *p;
    size_t len, cap;
} transcript;

static void tr_printf(transcript *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void tr_printf(transcript *t, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    assert_true(n >= 0 && (size_t)n < sizeof line);
    if (t->len + (size_t)n + 1 > t->cap) {
        t->cap = (t->len + (size_t)n + 1) * 2;
        t->p = realloc(t->p, t->cap);
        assert_non_null(t->p);
    }
    memcpy(t->p + t->len, line, (size_t)n + 1);
    t->len += (size_t)n;
}

/* "O<depth> key[i] sub", "F<depth> key", "C<depth>" lines. */
static void tr_step(transcript *t, const ms_nest_step *st)
{
    if (st->kind == MS_NEST_CLOSE) {
        tr_printf(t, "C%u\n", st->depth);
        return;
    }
    char key[300];
    if (st->in_list)
        snprintf(key, sizeof key, "%s[%llu]", st->key,
                 (unsigned long long)st->index);
    else
        snprintf(key, sizeof key, "%s", st->key);
    tr_printf(t, "%c%u %s%s\n", st->kind == MS_NEST_OPEN ? 'O' : 'F',
              st->depth, key, st->subsection ? " sub" : "");
}

/* Hand one reader event to the nest and write down the steps it gives;
 * fields also get their value, sections their start and footer. */
static void nest_one(ms_nest *n, const ms_event *ev, transcript *t)
{
    if (ev->kind == MS_EV_SECTION && ev->u.section.type == MS_QSEC_FULL)
        tr_printf(t, "section %s\n", ev->u.section.idstr);
    assert_int_equal(ms_nest_feed(n, ev), 0);
    ms_nest_step st;
    int rc;
    while ((rc = ms_nest_next(n, &st)) == 1) {
        tr_step(t, &st);
        if (st.kind == MS_NEST_FIELD) {
            char v[64];
            ms_field_format(&ev->u.field, v, sizeof v);
            t->len--; /* the value goes on the field's line */
            tr_printf(t, " = %s\n", v);
        }
    }
    if (rc < 0)
        fail_msg("nest: %s at %llu: %s", ms_error_name(ms_nest_error(n)->code),
                 (unsigned long long)ms_nest_error(n)->offset,
                 ms_nest_error(n)->detail);
    if (ev->kind == MS_EV_SECTION_FOOTER)
        tr_printf(t, "footer\n");
}

/* Read `len` bytes in slices of `slice` (0: at once) with the trailer
 * given first, and return the transcript of every nesting step. */
static char *nest_transcript(const uint8_t *p, size_t len, const char *json,
                             size_t slice, int complete)
{
    ms_options opt;
    ms_options_init(&opt);
    opt.field_events = 1;
    ms_reader *r = ms_reader_create(&opt);
    assert_non_null(r);
    /* borrowed, so that "nobody" is walked blind (the stream's own
     * trailer lacking it would make it an error) */
    assert_int_equal(ms_reader_borrow_vmdesc(r, json, strlen(json)), 0);
    ms_error_info err;
    ms_nest *n = ms_nest_create(&opt, json, strlen(json), &err);
    if (!n)
        fail_msg("ms_nest_create: %s", err.detail);
    transcript t = {0};
    tr_printf(&t, "%s", "");
    size_t step = slice ? slice : len;
    for (size_t at = 0; at < len; at += step) {
        assert_int_equal(ms_reader_input(r, p + at, MS_MIN(step, len - at)),
                         0);
        ms_event ev;
        int rc;
        while ((rc = ms_reader_next(r, &ev)) == MS_NEXT_EVENT)
            nest_one(n, &ev, &t);
        if (rc == MS_NEXT_ERROR)
            fail_msg("reader: %s", ms_reader_error(r)->detail);
    }
    assert_int_equal(ms_reader_finish(r), complete ? 0 : -1);
    ms_nest_free(n);
    ms_reader_free(r);
    return t.p;
}

/* Structs in structs, arrays of structs, an empty struct, a name used
 * twice apart, subsections of a struct and of the device (nested), and
 * a device subsection straight after a struct that ends the device. */
static const char NEST_DESC[] =
    "{\"page_size\": 4096, \"devices\": ["
    "{\"name\": \"dev\", \"instance_id\": 0, \"vmsd_name\": \"dev\","
    " \"version\": 1, \"fields\": ["
    "  {\"name\": \"a\", \"type\": \"uint32\", \"size\": 4},"
    "  {\"name\": \"arr\", \"type\": \"uint16\", \"size\": 2,"
    "   \"array_len\": 3},"
    "  {\"name\": \"s\", \"type\": \"struct\", \"size\": 4, \"struct\":"
    "   {\"vmsd_name\": \"st\", \"version\": 1, \"fields\": ["
    "     {\"name\": \"x\", \"type\": \"int8\", \"size\": 1},"
    "     {\"name\": \"y\", \"type\": \"buffer\", \"size\": 3}],"
    "    \"subsections\": [{\"vmsd_name\": \"st/sub\", \"version\": 2,"
    "     \"fields\": [{\"name\": \"z\", \"type\": \"bool\", \"size\": 1}]}]"
    "  }},"
    "  {\"name\": \"sa\", \"type\": \"struct\", \"size\": 2, \"array_len\": 2,"
    "   \"struct\": {\"vmsd_name\": \"e2\", \"version\": 1, \"fields\":"
    "    [{\"name\": \"w\", \"type\": \"uint16\", \"size\": 2}]}},"
    "  {\"name\": \"e0\", \"type\": \"struct\", \"size\": 0, \"struct\":"
    "   {\"vmsd_name\": \"empty\", \"version\": 1, \"fields\": []}},"
    "  {\"name\": \"rep\", \"type\": \"uint8\", \"size\": 1},"
    "  {\"name\": \"b\", \"type\": \"uint8\", \"size\": 1},"
    "  {\"name\": \"rep\", \"type\": \"uint8\", \"size\": 1},"
    "  {\"name\": \"outer\", \"type\": \"struct\", \"size\": 1, \"struct\":"
    "   {\"vmsd_name\": \"o\", \"version\": 1, \"fields\": ["
    "    {\"name\": \"inner\", \"type\": \"struct\", \"size\": 1, \"struct\":"
    "     {\"vmsd_name\": \"i\", \"version\": 1, \"fields\": ["
    "      {\"name\": \"v\", \"type\": \"uint8\", \"size\": 1}]}}]}}"
    " ],"
    " \"subsections\": ["
    "  {\"vmsd_name\": \"dev/a\", \"version\": 1, \"fields\":"
    "   [{\"name\": \"p\", \"type\": \"uint64\", \"size\": 8}],"
    "   \"subsections\": [{\"vmsd_name\": \"dev/a/b\", \"version\": 1,"
    "    \"fields\": [{\"name\": \"q\", \"type\": \"uint8\", \"size\": 1}]}]}"
    " ]},"
    "{\"name\": \"dev2\", \"instance_id\": 0, \"vmsd_name\": \"dev2\","
    " \"version\": 1, \"fields\": ["
    "  {\"name\": \"t\", \"type\": \"struct\", \"size\": 1, \"struct\":"
    "   {\"vmsd_name\": \"tt\", \"version\": 1, \"fields\": ["
    "    {\"name\": \"u\", \"type\": \"uint8\", \"size\": 1}]}}],"
    " \"subsections\": [{\"vmsd_name\": \"dev2/x\", \"version\": 3,"
    "  \"fields\": [{\"name\": \"k\", \"type\": \"uint8\", \"size\": 1}]}]},"
    "{\"name\": \"old\", \"instance_id\": 0, \"fields\":"
    " [{\"name\": \"data\", \"size\": 2, \"type\": \"buffer\"}]}"
    "]}";

static const char NEST_WANT[] =
    "section dev\n"
    "F0 a = 0x0000002a\n"
    "F0 arr[0] = 0x0001\nF0 arr[1] = 0x0002\nF0 arr[2] = 0x0003\n"
    "O1 s\nF1 x = 0xff (-1)\nF1 y = 61 62 63\n"
    "O2 st/sub sub\nF2 z = true\nC2\nC1\n"
    "O1 sa[0]\nF1 w = 0x0010\nC1\nO1 sa[1]\nF1 w = 0x0011\nC1\n"
    "O1 e0\nC1\n"
    "F0 rep[0] = 0x07\nF0 b = 0x08\nF0 rep[1] = 0x09\n"
    "O1 outer\nO2 inner\nF2 v = 0x0a\nC2\nC1\n"
    "O1 dev/a sub\nF1 p = 0x000000000000000b\n"
    "O2 dev/a/b sub\nF2 q = 0x0c\nC2\nC1\n"
    "footer\n"
    "section dev2\n"
    "O1 t\nF1 u = 0x0d\nC1\nO1 dev2/x sub\nF1 k = 0x0e\nC1\n"
    "footer\n"
    "section old\n"
    "F0 data = 01 02\n"
    "footer\n"
    "section nobody\n"
    "footer\n";

static void nest_stream(tb_buf *b)
{
    tb_buf_init(b);
    tq_begin(b);
    tq_section_start(b, TQ_FULL, 1, "dev", 0, 1);
    static const uint8_t dev_fields[] = {
        0, 0, 0, 0x2a, 0, 1, 0, 2, 0, 3, /* a, arr */
        0xff, 'a', 'b', 'c'};            /* s.x, s.y */
    tb_put(b, dev_fields, sizeof dev_fields);
    tq_subsection(b, "st/sub", 2);
    static const uint8_t rest[] = {1,          /* z */
                                   0, 0x10, 0, 0x11, /* sa */
                                   7, 8, 9,          /* rep, b, rep */
                                   0x0a};            /* outer.inner.v */
    tb_put(b, rest, sizeof rest);
    tq_subsection(b, "dev/a", 1);
    tb_put_be64(b, 0x0b);
    tq_subsection(b, "dev/a/b", 1);
    tb_put_u8(b, 0x0c);
    tq_footer(b, 1);
    tq_section_start(b, TQ_FULL, 2, "dev2", 0, 1);
    tb_put_u8(b, 0x0d);
    tq_subsection(b, "dev2/x", 3); /* at tt's point: ends t, then dev2's */
    tb_put_u8(b, 0x0e);
    tq_footer(b, 2);
    tq_section_start(b, TQ_FULL, 3, "old", 0, 1);
    tb_put_u8(b, 1);
    tb_put_u8(b, 2);
    tq_footer(b, 3);
    /* not described: walked blind (no steps), the nest stays in step */
    tq_section_start(b, TQ_FULL, 4, "nobody", 0, 1);
    tb_put_u8(b, 0x55);
    tq_footer(b, 4);
    tq_eof(b);
    tq_vmdesc(b, NEST_DESC, strlen(NEST_DESC));
}

static void nest_synthetic(void **state)
{
    (void)state;
    tb_buf b;
    nest_stream(&b);
    char *whole = nest_transcript(b.p, b.len, NEST_DESC, 0, 1);
    assert_string_equal(whole, NEST_WANT);
    /* one byte at a time, and odd slices: the same steps */
    static const size_t slices[] = {1, 2, 3, 7};
    for (size_t i = 0; i < sizeof slices / sizeof slices[0]; i++) {
        char *t = nest_transcript(b.p, b.len, NEST_DESC, slices[i], 1);
        assert_string_equal(t, NEST_WANT);
        free(t);
    }
    /* cut anywhere before the trailer: the steps so far are the start of
     * the full list, and the nest never disagrees with the reader */
    size_t trailer = b.len - 5 - strlen(NEST_DESC);
    for (size_t cut = 0; cut < trailer; cut++) {
        char *t = nest_transcript(b.p, cut, NEST_DESC, 0, 0);
        if (strncmp(t, NEST_WANT, strlen(t)) != 0)
            fail_msg("cut at %zu: steps\n%s", cut, t);
        free(t);
    }
    free(whole);
    tb_buf_free(&b);
}

/* Events that do not follow the description, and misuse. */
static void nest_errors(void **state)
{
    (void)state;
    ms_error_info err;
    const size_t dlen = strlen(NEST_DESC);
    assert_null(ms_nest_create(NULL, "{\"devices\": 1}", 14, &err));
    assert_int_equal(err.code, MS_ERR_VMDESC);
    assert_null(ms_nest_create(NULL, NULL, 0, &err));
    assert_int_equal(err.code, MS_ERR_USAGE);
    ms_options bad_opt;
    ms_options_init(&bad_opt);
    bad_opt.struct_size++; /* larger than this library knows */
    assert_null(ms_nest_create(&bad_opt, NEST_DESC, dlen, &err));
    assert_int_equal(err.code, MS_ERR_USAGE);
    ms_options small;
    ms_options_init(&small);
    small.max_vmdesc_bytes = 100;
    assert_null(ms_nest_create(&small, NEST_DESC, dlen, NULL));
    ms_nest_free(NULL);

    ms_event sec = {.kind = MS_EV_SECTION, .offset = 100};
    sec.u.section.type = MS_QSEC_FULL;
    sec.u.section.section_id = 9;
    sec.u.section.idstr = "dev";
    ms_event fld = {.kind = MS_EV_FIELD, .offset = 120};
    fld.u.field.section_id = 9;
    fld.u.field.type = "uint32";
    ms_nest_step st;

    /* a field the description does not have there */
    ms_nest *n = ms_nest_create(NULL, NEST_DESC, dlen, NULL);
    assert_non_null(n);
    assert_int_equal(ms_nest_feed(n, &sec), 0);
    assert_int_equal(ms_nest_next(n, &st), 0);
    fld.u.field.path = "arr[0]";
    assert_int_equal(ms_nest_feed(n, &fld), 0);
    assert_int_equal(ms_nest_next(n, &st), -1);
    assert_int_equal(ms_nest_error(n)->code, MS_ERR_VMSTATE);
    assert_int_equal(ms_nest_error(n)->offset, 120);
    assert_non_null(strstr(ms_nest_error(n)->detail, "\"a\""));
    assert_int_equal(ms_nest_feed(n, &sec), -1); /* sticky */
    ms_nest_free(n);

    /* feeding again before the steps were pulled */
    n = ms_nest_create(NULL, NEST_DESC, dlen, NULL);
    assert_int_equal(ms_nest_feed(n, &sec), 0);
    fld.u.field.path = "a";
    assert_int_equal(ms_nest_feed(n, &fld), 0);
    assert_int_equal(ms_nest_feed(n, &fld), -1);
    assert_int_equal(ms_nest_error(n)->code, MS_ERR_USAGE);
    ms_nest_free(n);

    /* a field outside a described FULL section; a footer too early; a
     * subsection the level does not have; a field after the last one */
    n = ms_nest_create(NULL, NEST_DESC, dlen, NULL);
    assert_int_equal(ms_nest_feed(n, &fld), -1);
    assert_int_equal(ms_nest_error(n)->code, MS_ERR_VMSTATE);
    ms_nest_free(n);
    n = ms_nest_create(NULL, NEST_DESC, dlen, NULL);
    assert_int_equal(ms_nest_feed(n, &sec), 0);
    ms_event foot = {.kind = MS_EV_SECTION_FOOTER, .offset = 130};
    foot.u.section.section_id = 9;
    assert_int_equal(ms_nest_feed(n, &foot), 0);
    assert_int_equal(ms_nest_next(n, &st), -1);
    assert_non_null(strstr(ms_nest_error(n)->detail, "section footer"));
    ms_nest_free(n);
    n = ms_nest_create(NULL, NEST_DESC, dlen, NULL);
    sec.u.section.idstr = "old";
    assert_int_equal(ms_nest_feed(n, &sec), 0);
    fld.u.field.path = "data";
    assert_int_equal(ms_nest_feed(n, &fld), 0);
    assert_int_equal(ms_nest_next(n, &st), 1);
    assert_int_equal(st.kind, MS_NEST_FIELD);
    assert_string_equal(st.key, "data");
    assert_int_equal(ms_nest_next(n, &st), 0);
    assert_int_equal(ms_nest_feed(n, &fld), 0);
    assert_int_equal(ms_nest_next(n, &st), -1);
    assert_non_null(strstr(ms_nest_error(n)->detail, "last field"));
    ms_nest_free(n);
    n = ms_nest_create(NULL, NEST_DESC, dlen, NULL);
    sec.u.section.idstr = "dev2";
    assert_int_equal(ms_nest_feed(n, &sec), 0);
    fld.u.field.path = "t.u";
    assert_int_equal(ms_nest_feed(n, &fld), 0);
    while (ms_nest_next(n, &st) == 1)
        ;
    ms_event sub = {.kind = MS_EV_SUBSECTION, .offset = 140};
    sub.u.field.section_id = 9;
    sub.u.field.path = "dev2/nope";
    sub.u.field.version = 3;
    assert_int_equal(ms_nest_feed(n, &sub), 0);
    assert_int_equal(ms_nest_next(n, &st), -1);
    assert_int_equal(ms_nest_error(n)->code, MS_ERR_VMSTATE);
    assert_int_equal(ms_nest_error(n)->offset, 140);
    assert_non_null(strstr(ms_nest_error(n)->detail, "dev2/nope"));
    ms_nest_free(n);
}

static void nest_alloc_failures(void **state)
{
    (void)state;
    const size_t dlen = strlen(NEST_DESC);
    long needed = -1;
    for (long k = 0; k < 1000; k++) {
        counting c;
        ms_options opt;
        ms_options_init(&opt);
        opt.allocator = counting_allocator(&c, k);
        ms_error_info err;
        ms_nest *n = ms_nest_create(&opt, NEST_DESC, dlen, &err);
        if (n) {
            ms_nest_free(n);
            assert_int_equal(c.live, 0);
            needed = k;
            break;
        }
        assert_int_equal(err.code, MS_ERR_NO_MEMORY);
        assert_int_equal(c.live, 0);
    }
    assert_true(needed > 0);
}

/* The real capture: keys joined back into a path ("key[i]" in lists) give
 * the reader's own path for every field, objects close at each footer. */
static void nest_real(void **state)
{
    (void)state;
    capture c;
    capture_load(&c);
    ms_options opt;
    ms_options_init(&opt);
    opt.field_events = 1;
    ms_reader *r = ms_reader_create(&opt);
    const char *json = (const char *)c.mig + c.json_off;
    assert_int_equal(ms_reader_set_vmdesc(r, json, c.json_len), 0);
    ms_nest *n = ms_nest_create(&opt, json, c.json_len, NULL);
    assert_non_null(n);
    assert_int_equal(ms_reader_input(r, c.mig, c.mig_len), 0);
    size_t len[VMS_MAX_DEPTH + 1] = {0}; /* path length per depth */
    char path[1024];
    size_t fields = 0, opens = 0, subs = 0;
    uint32_t depth = 0;
    ms_event ev;
    while (ms_reader_next(r, &ev) == MS_NEXT_EVENT) {
        assert_int_equal(ms_nest_feed(n, &ev), 0);
        ms_nest_step st;
        int rc;
        while ((rc = ms_nest_next(n, &st)) == 1) {
            if (st.kind == MS_NEST_CLOSE) {
                assert_int_equal(st.depth, depth);
                depth--;
                continue;
            }
            size_t at = len[st.kind == MS_NEST_OPEN ? st.depth - 1 : st.depth];
            int w = st.in_list
                        ? snprintf(path + at, sizeof path - at, "%s%s[%llu]",
                                   at ? "." : "", st.key,
                                   (unsigned long long)st.index)
                        : snprintf(path + at, sizeof path - at, "%s%s",
                                   at ? "." : "", st.key);
            assert_true(w > 0 && (size_t)w < sizeof path - at);
            if (st.kind == MS_NEST_OPEN) {
                assert_int_equal(st.depth, depth + 1);
                depth = st.depth;
                len[depth] = at + (size_t)w;
                opens++;
                subs += (size_t)st.subsection;
            } else {
                assert_int_equal(st.depth, depth);
                assert_string_equal(path, ev.u.field.path);
                fields++;
            }
        }
        assert_int_equal(rc, 0);
        if (ev.kind == MS_EV_SECTION_FOOTER)
            assert_int_equal(depth, 0);
    }
    assert_int_equal(ms_reader_finish(r), 0);
    assert_int_equal(fields, 36098); /* as parity_reader counts */
    assert_true(opens > subs && subs > 0);
    ms_nest_free(n);
    ms_reader_free(r);
    capture_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(json_accepts),
        cmocka_unit_test(json_numbers),
        cmocka_unit_test(json_strings),
        cmocka_unit_test(json_rejects),
        cmocka_unit_test(json_truncations),
        cmocka_unit_test(json_depth_and_limits),
        cmocka_unit_test(json_alloc_failures),
        cmocka_unit_test(trailer_real),
        cmocka_unit_test(e1000_paths_parity),
        cmocka_unit_test(parity_all_sections),
        cmocka_unit_test(parity_reader),
        cmocka_unit_test(walk_synthetic),
        cmocka_unit_test(walk_subsection_levels),
        cmocka_unit_test(walk_errors),
        cmocka_unit_test(desc_malformed),
        cmocka_unit_test(desc_limits),
        cmocka_unit_test(desc_alloc_failures),
        cmocka_unit_test(desc_mutations),
        cmocka_unit_test(field_format),
        cmocka_unit_test(nest_synthetic),
        cmocka_unit_test(nest_errors),
        cmocka_unit_test(nest_alloc_failures),
        cmocka_unit_test(nest_real),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
