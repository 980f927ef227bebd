/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* The QEMU return-path decoder (libstream/qemu/qemu_rp.c) and the set's
 * main-stream/return-path cross-check (libstream/qemu/rp_check.c), checked
 * against the facts of spec/qemu-return-path.md, not the decoder's code:
 *
 *   - the real QEMU 10.0 postcopy capture (conn0.d2s): all 15 messages
 *     with the values its README lists, in one slice, byte by byte and in
 *     random slices; cut at every offset (a cut between messages is
 *     missing-end, inside one truncated);
 *   - every message type built by this file's own encoder (rp_msg),
 *     including RECV_BITMAP with its bitmap and end mark;
 *   - one crafted stream per rejection, with its error code and offset,
 *     the same in one slice and byte by byte;
 *   - detection: the capture is recognised from its first bytes; the
 *     other formats' openings (QEVM, multifd, migstream, libvirt) and
 *     near misses are not taken for a return path;
 *   - the set: a hand-built postcopy main stream with its return path
 *     passes, and each broken pairing fails at the return-path offset; the
 *     real pair (conn0.s2d, when present) passes and fails with a PONG
 *     removed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "test_util.h"

static int g_fail;


/* ---- the test's own encoder (spec/qemu-return-path.md section 2) -------- */
enum { T_SHUT = 1, T_PONG, T_REQ_ID, T_REQ, T_BITMAP, T_RESUME, T_ACK };

/* be16 type, be16 len, payload.  Returns the message's offset. */
static size_t rp_msg(tb_buf *b, uint16_t type, const void *payload,
                     uint16_t len)
{
    size_t at = b->len;
    tb_put_be16(b, type);
    tb_put_be16(b, len);
    tb_put(b, payload, len);
    return at;
}

static size_t rp_u32(tb_buf *b, uint16_t type, uint32_t v)
{
    uint8_t p[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8),
                    (uint8_t)v};
    return rp_msg(b, type, p, 4);
}

/* REQ_PAGES (block NULL) or REQ_PAGES_ID. */
static size_t rp_req(tb_buf *b, const char *block, uint64_t start, uint32_t len)
{
    tb_buf p;
    tb_buf_init(&p);
    tb_put_be64(&p, start);
    tb_put_be32(&p, len);
    if (block) {
        tb_put_u8(&p, (uint8_t)strlen(block));
        tb_put(&p, block, strlen(block));
    }
    size_t at = rp_msg(b, block ? T_REQ_ID : T_REQ, p.p, (uint16_t)p.len);
    tb_buf_free(&p);
    return at;
}

/* RECV_BITMAP: the message, then be64 size, the bitmap, be64 end mark. */
static size_t rp_bitmap(tb_buf *b, const char *block, const uint8_t *bm,
                        uint64_t size, uint64_t end_mark)
{
    uint8_t p[256];
    p[0] = (uint8_t)strlen(block);
    memcpy(p + 1, block, p[0]);
    size_t at = rp_msg(b, T_BITMAP, p, (uint16_t)(1 + p[0]));
    tb_put_be64(b, size);
    tb_put(b, bm, (size_t)size);
    tb_put_be64(b, end_mark);
    return at;
}

#define BITMAP_END 0x0123456789abcdefull

/* ---- reading, with every message's fields kept ------------------------- */
typedef struct msg {
    uint16_t type, len;
    uint64_t offset, length;
    char name[32], block[256];
    uint32_t value, req_len;
    uint64_t start, bitmap_size, bitmap_offset;
    int block_named;
} msg;

typedef struct run {
    int rc;
    ms_error_info err;
    ms_format format;
    msg msgs[64];
    size_t n;
    tb_buf bitmap; /* DATA bytes, in order */
    int data_gap;  /* a DATA image_offset was not the bytes before it */
} run;

static void keep(run *o, const ms_event *ev)
{
    if (ev->kind == MS_EV_DATA) {
        if (ev->u.data.image_offset != o->bitmap.len)
            o->data_gap = 1;
        tb_put(&o->bitmap, ev->u.data.data, ev->u.data.size);
        return;
    }
    if (ev->kind != MS_EV_RP_MESSAGE || o->n == 64)
        return;
    msg *m = &o->msgs[o->n++];
    const ms_rp_info *i = &ev->u.rp;
    memset(m, 0, sizeof *m);
    m->type = i->type;
    m->len = i->len;
    m->offset = ev->offset;
    m->length = ev->length;
    snprintf(m->name, sizeof m->name, "%s", i->name);
    if (i->block)
        snprintf(m->block, sizeof m->block, "%s", i->block);
    m->value = i->value;
    m->start = i->start;
    m->req_len = i->length;
    m->block_named = i->block_named;
    m->bitmap_size = i->bitmap_size;
    m->bitmap_offset = i->bitmap_offset;
}

/* slice 0: whole; 1: bytewise; >1: random 1..slice.  `cut`: bytes given
 * (len for all).  Each slice is its own heap copy, freed once consumed. */
static void read_rp(const uint8_t *p, size_t len, ms_format format,
                    size_t slice, run *o)
{
    memset(o, 0, sizeof *o);
    tb_buf_init(&o->bitmap);
    ms_options opt;
    ms_options_init(&opt);
    opt.format = format;
    ms_reader *r = ms_reader_create(&opt);
    assert_non_null(r);
    uint64_t seed = 0x9e3779b97f4a7c15ull ^ len;
    size_t pos = 0;
    int failed = 0;
    while (pos < len && !failed) {
        size_t n = slice == 0   ? len - pos
                   : slice == 1 ? 1
                                : 1 + (size_t)(tb_rand(&seed) % slice);
        if (n > len - pos)
            n = len - pos;
        uint8_t *copy = malloc(n);
        assert_non_null(copy);
        memcpy(copy, p + pos, n);
        pos += n;
        failed = ms_reader_input(r, copy, n) < 0;
        ms_event ev;
        int rc;
        while (!failed && (rc = ms_reader_next(r, &ev)) == MS_NEXT_EVENT)
            keep(o, &ev);
        if (!failed && rc == MS_NEXT_ERROR)
            failed = 1;
        memset(copy, 0xEE, n);
        free(copy);
    }
    if (!failed)
        failed = ms_reader_finish(r) < 0;
    o->rc = failed ? -1 : 0;
    o->err = *ms_reader_error(r);
    o->format = ms_reader_format(r);
    ms_reader_free(r);
}

static void run_free(run *o)
{
    tb_buf_free(&o->bitmap);
}

static int same_msgs(const run *a, const run *b)
{
    if (a->rc != b->rc || a->n != b->n || a->err.code != b->err.code ||
        a->err.offset != b->err.offset || a->bitmap.len != b->bitmap.len)
        return 0;
    if (a->bitmap.len && memcmp(a->bitmap.p, b->bitmap.p, a->bitmap.len))
        return 0;
    return memcmp(a->msgs, b->msgs, a->n * sizeof a->msgs[0]) == 0;
}

/* ---- the real capture ---------------------------------------------------- */
static const char *src_dir(void)
{
    const char *d = getenv("MIGSTREAM_SRC_DIR");
    return d ? d : ".";
}

static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *p = malloc(n > 0 ? (size_t)n : 1);
    if (p && fread(p, 1, (size_t)n, f) != (size_t)n) {
        free(p);
        p = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return p;
}

static uint8_t *load_capture(const char *name, size_t *len)
{
    char path[1024];
    snprintf(path, sizeof path,
             "%s/tests/data/captures/qemu-10.0-pc-postcopy/%s", src_dir(),
             name);
    return slurp(path, len);
}

/* The README's table of conn0.d2s. */
static const struct want {
    uint64_t offset;
    uint16_t type, len;
    uint64_t value_or_start;
    const char *block; /* requests */
} capture_msgs[] = {
    {0, T_PONG, 4, 1, NULL},
    {8, T_PONG, 4, 2, NULL},
    {16, T_PONG, 4, 4, NULL},
    {24, T_PONG, 4, 3, NULL},
    {32, T_REQ_ID, 19, 0x51c0000, "pc.ram"},
    {55, T_REQ, 12, 0x5fc0000, "pc.ram"},
    {71, T_REQ, 12, 0x2000000, "pc.ram"},
    {87, T_REQ, 12, 0x2040000, "pc.ram"},
    {103, T_REQ, 12, 0x2f40000, "pc.ram"},
    {119, T_REQ, 12, 0x2f80000, "pc.ram"},
    {135, T_REQ, 12, 0x3c40000, "pc.ram"},
    {151, T_REQ, 12, 0x3c80000, "pc.ram"},
    {167, T_REQ, 12, 0x3cc0000, "pc.ram"},
    {183, T_REQ, 12, 0x4940000, "pc.ram"},
    {199, T_SHUT, 4, 0, NULL},
};
#define N_CAPTURE (sizeof capture_msgs / sizeof capture_msgs[0])

static void check_capture_msgs(const run *o)
{
    SOFT(o->rc == 0, "capture: %s@%llu %s", ms_error_name(o->err.code),
         (unsigned long long)o->err.offset, o->err.detail);
    SOFT(o->format == MS_FORMAT_QEMU_RETURN_PATH, "format %s",
         ms_format_name(o->format));
    SOFT(o->n == N_CAPTURE, "%zu messages", o->n);
    for (size_t i = 0; i < N_CAPTURE && i < o->n; i++) {
        const struct want *w = &capture_msgs[i];
        const msg *m = &o->msgs[i];
        SOFT(m->offset == w->offset && m->type == w->type && m->len == w->len &&
                 m->length == 4u + w->len,
             "message %zu: @%llu type %u len %u", i,
             (unsigned long long)m->offset, m->type, m->len);
        if (w->block) {
            SOFT(m->start == w->value_or_start && m->req_len == 0x1000 &&
                     strcmp(m->block, w->block) == 0 &&
                     m->block_named == (w->type == T_REQ_ID),
                 "message %zu: start 0x%llx len 0x%x block %s named %d", i,
                 (unsigned long long)m->start, m->req_len, m->block,
                 m->block_named);
        } else {
            SOFT(m->value == w->value_or_start, "message %zu: value %u", i,
                 m->value);
        }
    }
    static const char *const names[] = {"", "SHUT", "PONG", "REQ_PAGES_ID",
                                        "REQ_PAGES"};
    for (size_t i = 0; i < o->n; i++)
        SOFT(o->msgs[i].type <= 4 &&
                 strcmp(o->msgs[i].name, names[o->msgs[i].type]) == 0,
             "message %zu named %s", i, o->msgs[i].name);
}

static void test_capture(void **state)
{
    (void)state;
    BEGIN();
    size_t len;
    uint8_t *p = load_capture("conn0.d2s", &len);
    assert_non_null(p);
    assert_int_equal(len, 207);
    run whole, bytes, rnd;
    read_rp(p, len, MS_FORMAT_AUTO, 0, &whole);
    check_capture_msgs(&whole);
    read_rp(p, len, MS_FORMAT_AUTO, 1, &bytes);
    SOFT(same_msgs(&whole, &bytes), "byte by byte differs");
    for (uint64_t k = 2; k < 40; k += 7) {
        read_rp(p, len, MS_FORMAT_AUTO, (size_t)k, &rnd);
        SOFT(same_msgs(&whole, &rnd), "random slices (max %llu) differ",
             (unsigned long long)k);
        run_free(&rnd);
    }
    read_rp(p, len, MS_FORMAT_QEMU_RETURN_PATH, 0, &rnd);
    SOFT(same_msgs(&whole, &rnd), "forced format differs");
    run_free(&rnd);
    run_free(&whole);
    run_free(&bytes);
    free(p);
    DONE();
}

/* The end of a message (at 0 the reader has nothing: truncated). */
static int is_boundary(uint64_t cut)
{
    for (size_t i = 0; i < N_CAPTURE; i++)
        if (capture_msgs[i].offset + 4 + capture_msgs[i].len == cut)
            return 1;
    return 0;
}

static void test_capture_cuts(void **state)
{
    (void)state;
    BEGIN();
    size_t len;
    uint8_t *p = load_capture("conn0.d2s", &len);
    assert_non_null(p);
    for (size_t cut = 0; cut < len; cut++) {
        for (int bytewise = 0; bytewise < 2; bytewise++) {
            run o;
            read_rp(p, cut, MS_FORMAT_QEMU_RETURN_PATH, (size_t)bytewise, &o);
            ms_error want =
                is_boundary(cut) ? MS_ERR_MISSING_END : MS_ERR_TRUNCATED;
            SOFT(o.rc == -1 && o.err.code == want && o.err.offset == cut,
                 "cut %zu (%s): %s@%llu, expected %s", cut,
                 bytewise ? "bytewise" : "whole", ms_error_name(o.err.code),
                 (unsigned long long)o.err.offset, ms_error_name(want));
            /* messages before the cut all came out */
            size_t before = 0;
            for (size_t i = 0; i < N_CAPTURE; i++)
                before +=
                    capture_msgs[i].offset + 4 + capture_msgs[i].len <= cut;
            SOFT(o.n == before, "cut %zu: %zu messages, expected %zu", cut, o.n,
                 before);
            run_free(&o);
        }
        /* detected, not forced: a cut may also stop detection */
        run o;
        read_rp(p, cut, MS_FORMAT_AUTO, 1, &o);
        SOFT(o.rc == -1 && (o.err.code == MS_ERR_TRUNCATED ||
                            o.err.code == MS_ERR_MISSING_END),
             "auto cut %zu: %s", cut, ms_error_name(o.err.code));
        run_free(&o);
    }
    free(p);
    DONE();
}

/* ---- every type, built here ---------------------------------------------- */
static void test_all_types(void **state)
{
    (void)state;
    BEGIN();
    uint8_t bm[64];
    for (size_t i = 0; i < sizeof bm; i++)
        bm[i] = (uint8_t)(i * 37 + 1);
    tb_buf b;
    tb_buf_init(&b);
    size_t o_ack = rp_msg(&b, T_ACK, NULL, 0);
    size_t o_pong = rp_u32(&b, T_PONG, 0xfeedbeef);
    size_t o_id = rp_req(&b, "/rom@etc/acpi/tables", 0x200000, 0x200000);
    size_t o_req = rp_req(&b, NULL, 0x400000, 0x200000);
    size_t o_bm = rp_bitmap(&b, "pc.ram", bm, sizeof bm, BITMAP_END);
    size_t o_res = rp_u32(&b, T_RESUME, 1);
    size_t o_shut = rp_u32(&b, T_SHUT, 0);
    run whole, bytes;
    read_rp(b.p, b.len, MS_FORMAT_AUTO, 0, &whole);
    SOFT(whole.rc == 0, "%s@%llu %s", ms_error_name(whole.err.code),
         (unsigned long long)whole.err.offset, whole.err.detail);
    SOFT(whole.n == 7, "%zu messages", whole.n);
    if (whole.n == 7) {
        const msg *m = whole.msgs;
        SOFT(m[0].type == T_ACK && m[0].offset == o_ack && m[0].length == 4 &&
                 strcmp(m[0].name, "SWITCHOVER_ACK") == 0,
             "SWITCHOVER_ACK");
        SOFT(m[1].type == T_PONG && m[1].offset == o_pong &&
                 m[1].value == 0xfeedbeef,
             "PONG");
        SOFT(m[2].type == T_REQ_ID && m[2].offset == o_id &&
                 m[2].start == 0x200000 && m[2].req_len == 0x200000 &&
                 m[2].block_named &&
                 strcmp(m[2].block, "/rom@etc/acpi/tables") == 0,
             "REQ_PAGES_ID");
        SOFT(m[3].type == T_REQ && m[3].offset == o_req &&
                 m[3].start == 0x400000 && !m[3].block_named &&
                 strcmp(m[3].block, "/rom@etc/acpi/tables") == 0,
             "REQ_PAGES keeps the block");
        SOFT(m[4].type == T_BITMAP && m[4].offset == o_bm &&
                 strcmp(m[4].block, "pc.ram") == 0 &&
                 m[4].bitmap_size == sizeof bm &&
                 m[4].bitmap_offset == o_bm + 4 + 7 + 8 &&
                 m[4].length == 4 + 7 + 8 + sizeof bm + 8,
             "RECV_BITMAP size %llu offset %llu length %llu",
             (unsigned long long)m[4].bitmap_size,
             (unsigned long long)m[4].bitmap_offset,
             (unsigned long long)m[4].length);
        SOFT(m[5].type == T_RESUME && m[5].offset == o_res && m[5].value == 1,
             "RESUME_ACK");
        SOFT(m[6].type == T_SHUT && m[6].offset == o_shut && m[6].value == 0,
             "SHUT");
    }
    SOFT(whole.bitmap.len == sizeof bm &&
             memcmp(whole.bitmap.p, bm, sizeof bm) == 0 && !whole.data_gap,
         "bitmap bytes differ");
    read_rp(b.p, b.len, MS_FORMAT_AUTO, 1, &bytes);
    SOFT(same_msgs(&whole, &bytes), "byte by byte differs");
    run_free(&bytes);
    /* cut everywhere: never clean, never a crash, right code */
    for (size_t cut = 0; cut < b.len; cut++) {
        read_rp(b.p, cut, MS_FORMAT_QEMU_RETURN_PATH, cut % 2, &bytes);
        SOFT(bytes.rc == -1 && bytes.err.offset == cut &&
                 (bytes.err.code == MS_ERR_TRUNCATED ||
                  bytes.err.code == MS_ERR_MISSING_END),
             "cut %zu: %s@%llu", cut, ms_error_name(bytes.err.code),
             (unsigned long long)bytes.err.offset);
        run_free(&bytes);
    }
    run_free(&whole);
    tb_buf_free(&b);
    DONE();
}

/* ---- rejections ---------------------------------------------------------- */
typedef void (*build_fn)(tb_buf *b, uint64_t *at);

static void bad_type0(tb_buf *b, uint64_t *at)
{
    rp_u32(b, T_PONG, 1);
    *at = rp_msg(b, 0, NULL, 0);
}
static void bad_type8(tb_buf *b, uint64_t *at)
{
    rp_u32(b, T_PONG, 1);
    *at = rp_msg(b, 8, NULL, 0);
}
static void bad_pong_len(tb_buf *b, uint64_t *at)
{
    rp_u32(b, T_PONG, 1);
    *at = rp_msg(b, T_PONG, "12345", 5) + 2;
}
static void bad_ack_len(tb_buf *b, uint64_t *at)
{
    *at = rp_msg(b, T_ACK, "x", 1) + 2;
}
static void bad_req_id_short(tb_buf *b, uint64_t *at)
{
    uint8_t p[12] = {0};
    p[10] = 0x10; /* len 0x1000 */
    *at = rp_msg(b, T_REQ_ID, p, 12) + 2;
}
static void bad_req_id_empty(tb_buf *b, uint64_t *at)
{
    uint8_t p[13] = {0}; /* a name of 0 bytes */
    p[10] = 0x10;
    *at = rp_msg(b, T_REQ_ID, p, 13) + 2;
}
static void bad_req_id_namelen(tb_buf *b, uint64_t *at)
{
    uint8_t p[12 + 1 + 6] = {0};
    p[10] = 0x10;
    p[12] = 7; /* the name has 6 bytes */
    memcpy(p + 13, "pc.ram", 6);
    *at = rp_msg(b, T_REQ_ID, p, sizeof p) + 4 + 12;
}
static void bad_req_first(tb_buf *b, uint64_t *at)
{
    rp_u32(b, T_PONG, 1);
    *at = rp_req(b, NULL, 0x1000, 0x1000);
}
static void bad_req_len(tb_buf *b, uint64_t *at)
{
    rp_req(b, "pc.ram", 0x1000, 0x1000);
    *at = rp_req(b, NULL, 0x3000, 0x3000) + 4 + 8;
}
static void bad_req_align(tb_buf *b, uint64_t *at)
{
    *at = rp_req(b, "pc.ram", 0x1800, 0x1000) + 4;
}
static void bad_resume(tb_buf *b, uint64_t *at)
{
    *at = rp_u32(b, T_RESUME, 2) + 4;
}
static void bad_two_acks(tb_buf *b, uint64_t *at)
{
    rp_msg(b, T_ACK, NULL, 0);
    rp_u32(b, T_PONG, 1);
    *at = rp_msg(b, T_ACK, NULL, 0);
}
static void bad_end_mark(tb_buf *b, uint64_t *at)
{
    uint8_t bm[16] = {1, 2, 3};
    size_t m = rp_bitmap(b, "pc.ram", bm, sizeof bm, BITMAP_END + 1);
    *at = m + 4 + 7 + 8 + sizeof bm;
}
static void bad_bitmap_size(tb_buf *b, uint64_t *at)
{
    uint8_t bm[12] = {0};
    *at = rp_bitmap(b, "pc.ram", bm, sizeof bm, BITMAP_END) + 4 + 7;
}
static void bad_bitmap_name(tb_buf *b, uint64_t *at)
{
    uint8_t p[4] = {5, 'a', 'b', 'c'};
    *at = rp_msg(b, T_BITMAP, p, 4) + 4;
}
static void bad_trailing(tb_buf *b, uint64_t *at)
{
    rp_u32(b, T_PONG, 1);
    rp_u32(b, T_SHUT, 0);
    *at = b->len;
    rp_u32(b, T_PONG, 2);
}

static const struct bad {
    const char *what;
    build_fn build;
    ms_error code;
} bads[] = {
    {"type 0", bad_type0, MS_ERR_RETURN_PATH},
    {"type 8", bad_type8, MS_ERR_RETURN_PATH},
    {"PONG of 5 bytes", bad_pong_len, MS_ERR_RETURN_PATH},
    {"SWITCHOVER_ACK with a byte", bad_ack_len, MS_ERR_RETURN_PATH},
    {"REQ_PAGES_ID without a name", bad_req_id_short, MS_ERR_RETURN_PATH},
    {"REQ_PAGES_ID with an empty name", bad_req_id_empty, MS_ERR_RETURN_PATH},
    {"REQ_PAGES_ID name length", bad_req_id_namelen, MS_ERR_RETURN_PATH},
    {"REQ_PAGES before REQ_PAGES_ID", bad_req_first, MS_ERR_RETURN_PATH},
    {"request length not a power of 2", bad_req_len, MS_ERR_RETURN_PATH},
    {"request start unaligned", bad_req_align, MS_ERR_RETURN_PATH},
    {"RESUME_ACK 2", bad_resume, MS_ERR_RETURN_PATH},
    {"two SWITCHOVER_ACKs", bad_two_acks, MS_ERR_RETURN_PATH},
    {"bitmap end mark", bad_end_mark, MS_ERR_RETURN_PATH},
    {"bitmap size 12", bad_bitmap_size, MS_ERR_RETURN_PATH},
    {"RECV_BITMAP name length", bad_bitmap_name, MS_ERR_RETURN_PATH},
    {"bytes after SHUT", bad_trailing, MS_ERR_TRAILING_DATA},
};

static void test_rejections(void **state)
{
    (void)state;
    BEGIN();
    for (size_t i = 0; i < sizeof bads / sizeof bads[0]; i++) {
        tb_buf b;
        tb_buf_init(&b);
        uint64_t at = 0;
        bads[i].build(&b, &at);
        rp_u32(&b, T_SHUT, 0); /* a well-formed end, if it got there */
        for (int bytewise = 0; bytewise < 2; bytewise++) {
            run o;
            read_rp(b.p, b.len, MS_FORMAT_QEMU_RETURN_PATH, (size_t)bytewise,
                    &o);
            SOFT(o.rc == -1 && o.err.code == bads[i].code && o.err.offset == at,
                 "%s (%s): %s@%llu, expected %s@%llu (%s)", bads[i].what,
                 bytewise ? "bytewise" : "whole", ms_error_name(o.err.code),
                 (unsigned long long)o.err.offset, ms_error_name(bads[i].code),
                 (unsigned long long)at, o.err.detail);
            run_free(&o);
        }
        /* detected: the verdict does not depend on the slicing */
        run w, y;
        read_rp(b.p, b.len, MS_FORMAT_AUTO, 0, &w);
        read_rp(b.p, b.len, MS_FORMAT_AUTO, 1, &y);
        SOFT(w.rc == -1 && same_msgs(&w, &y),
             "%s detected: %s@%llu whole, %s@%llu byte by byte", bads[i].what,
             ms_error_name(w.err.code), (unsigned long long)w.err.offset,
             ms_error_name(y.err.code), (unsigned long long)y.err.offset);
        run_free(&w);
        run_free(&y);
        tb_buf_free(&b);
    }
    /* the bitmap is bounded by max_record_payload before anything else */
    tb_buf b;
    tb_buf_init(&b);
    uint8_t p[7] = {6, 'p', 'c', '.', 'r', 'a', 'm'};
    rp_msg(&b, T_BITMAP, p, 7);
    tb_put_be64(&b, (uint64_t)1 << 40);
    ms_error_info e;
    SOFT(tb_verify(b.p, b.len, NULL, &e) < 0 && e.code == MS_ERR_LIMIT &&
             e.offset == 11,
         "huge bitmap: %s@%llu", ms_error_name(e.code),
         (unsigned long long)e.offset);
    tb_buf_free(&b);
    DONE();
}

/* ---- detection ----------------------------------------------------------- */
static void test_detection(void **state)
{
    (void)state;
    BEGIN();
    size_t len, need;
    uint8_t *p = load_capture("conn0.d2s", &len);
    assert_non_null(p);
    /* the capture: undecided until its first PONG is whole (8 bytes) */
    for (size_t n = 0; n <= 16; n++) {
        need = 0;
        ms_format f = ms_detect(p, n, &need);
        if (n < 8)
            SOFT(f == MS_FORMAT_AUTO && need > n, "prefix %zu: %s need %zu", n,
                 ms_format_name(f), need);
        else
            SOFT(f == MS_FORMAT_QEMU_RETURN_PATH, "prefix %zu: %s", n,
                 ms_format_name(f));
    }
    free(p);
    /* other formats keep theirs */
    tb_buf b;
    tb_buf_init(&b);
    tq_begin(&b);
    SOFT(ms_detect(b.p, b.len, &need) == MS_FORMAT_QEMU_MAIN, "QEVM");
    tb_buf_reset(&b);
    tm_init(&b, NULL, 0);
    SOFT(ms_detect(b.p, b.len, &need) == MS_FORMAT_QEMU_MULTIFD, "multifd");
    tb_stream s;
    tb_stream_init(&s);
    tb_header(&s, tb_uuid_a, 0, 1);
    SOFT(ms_detect(s.b.p, s.b.len, &need) == MS_FORMAT_MIGSTREAM, "migstream");
    tb_stream_free(&s);
    tb_buf_reset(&b);
    tq_libvirt_header(&b, "LibvirtQemudSave", 2, 0, 1, 0, 0);
    SOFT(ms_detect(b.p, b.len, &need) == MS_FORMAT_LIBVIRT_SAVE, "libvirt");
    /* the real 7.2 captures' files */
    static const char *const files[] = {"qemu-7.2-pc-multifd4/conn0.bin",
                                        "qemu-7.2-pc-multifd4/conn1.bin",
                                        "qemu-7.2-pc-multifd2-zlib/conn0.bin",
                                        "qemu-7.2-pc-multifd2-zlib/conn2.bin"};
    static const ms_format fmts[] = {
        MS_FORMAT_QEMU_MAIN, MS_FORMAT_QEMU_MULTIFD, MS_FORMAT_QEMU_MAIN,
        MS_FORMAT_QEMU_MULTIFD};
    for (size_t i = 0; i < 4; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/tests/data/captures/%s", src_dir(),
                 files[i]);
        size_t n;
        uint8_t *q = slurp(path, &n);
        SOFT(q && ms_detect(q, n, &need) == fmts[i], "%s", files[i]);
        free(q);
    }
    /* near misses: never a return path */
    static const struct {
        const char *bytes;
        size_t len;
    } misses[] = {
        {"\0\0\0\0", 4},   /* type 0 */
        {"\0\x08\0\0", 4}, /* type 8 */
        {"\0\x02\0\x05"
         "abcde",
         9}, /* PONG of 5 */
        {"\0\x07\0\x01"
         "x",
         5},                           /* SWITCHOVER_ACK with a byte */
        {"\0\x01\0\x04\0\0\0\x07", 8}, /* SHUT 7 (QEMU writes 0/1) */
        {"\0\x06\0\x04\0\0\0\x02", 8}, /* RESUME_ACK 2 */
        {"\0\x04\0\x0c\0\0\0\0\0\0\x18\0\0\0\x10\0", 16}, /* unaligned */
        {"\0\x05\0\x03\x05"
         "ab",
         7}, /* RECV_BITMAP name length */
        {"\x01\x02\x03\x04", 4},
    };
    for (size_t i = 0; i < sizeof misses / sizeof misses[0]; i++) {
        ms_format f = ms_detect(misses[i].bytes, misses[i].len, &need);
        SOFT(f == MS_FORMAT_UNKNOWN, "near miss %zu: %s", i, ms_format_name(f));
    }
    tb_buf_free(&b);
    DONE();
}

/* ---- the set: a main stream and its return path ---------------------------
 */

/* A postcopy main stream: OPEN_RETURN_PATH, PING 1, RAM block list, PING
 * 2, POSTCOPY_LISTEN, the pages `sent`, PING 3, RAM's END, EOF.  Pages
 * before LISTEN: `pre` (not servable).  `init_data_sent`: a VFIO device
 * STARTs, sends INIT_DATA_SENT in a PART and ENDs at the switchover. */
static void main_stream(tb_buf *b, const uint64_t *sent, size_t nsent,
                        uint64_t pre, int init_data_sent)
{
    static const char *const names[] = {"pc.ram"};
    static const uint64_t lengths[] = {0x100000};
    uint8_t page[4096];
    memset(page, 0x5a, sizeof page);
    tq_begin(b);
    tq_command(b, TQ_CMD_OPEN_RETURN_PATH, NULL, 0);
    tq_cmd_ping(b, 1);
    tq_cmd_postcopy_advise(b, 0x1000, 0x1000); /* LISTEN needs it */
    tq_section_start(b, TQ_START, 1, "ram", 0, 4);
    tq_ram_block_list(b, names, lengths, 1);
    tq_ram_eos(b);
    tq_footer(b, 1);
    tq_section_part(b, TQ_PART, 1);
    tq_ram_page(b, pre, "pc.ram", page, sizeof page);
    tq_ram_eos(b);
    tq_footer(b, 1);
    if (init_data_sent) {
        tq_section_start(b, TQ_START, 2, "0000:00:02.0/vfio", 0, 1);
        tq_vfio_marker(b, TQ_VFIO_SETUP_STATE);
        tq_vfio_marker(b, TQ_VFIO_END_OF_STATE);
        tq_footer(b, 2);
        tq_section_part(b, TQ_PART, 2);
        tq_vfio_marker(b, TQ_VFIO_INIT_DATA_SENT); /* ends the PART */
        tq_footer(b, 2);
    }
    tq_command(b, TQ_CMD_SWITCHOVER_START, NULL, 0);
    if (init_data_sent) {
        /* VFIO cannot run in postcopy: its END (no data left: the
         * END_OF_STATE marker alone) goes before the switch */
        tq_section_part(b, TQ_END, 2);
        tq_vfio_marker(b, TQ_VFIO_END_OF_STATE);
        tq_footer(b, 2);
    }
    tq_cmd_ping(b, 2);
    tq_command(b, TQ_CMD_POSTCOPY_LISTEN, NULL, 0);
    tq_section_part(b, TQ_PART, 1);
    for (size_t i = 0; i < nsent; i++)
        tq_ram_zero(b, sent[i], i ? NULL : "pc.ram", 0);
    tq_ram_eos(b);
    tq_footer(b, 1);
    tq_cmd_ping(b, 3);
    tq_section_part(b, TQ_END, 1);
    tq_ram_eos(b);
    tq_footer(b, 1);
    tq_eof(b);
}

/* Main + return path through readers and a set: 0, or the error.  slice
 * as tb_run_set's; a nonzero slice also interleaves the two at random. */
static int pair(const tb_buf *mainb, const tb_buf *rpb, ms_error_info *e,
                size_t slice)
{
    tb_buf chans[2] = {*mainb, *rpb};
    tb_result res;
    int rc = tb_run_set(chans, 2, NULL, slice, slice ? 7 : 0, &res);
    *e = res.err;
    tb_result_free(&res);
    return rc;
}

/* Checked whole and with the slices given (`slice2`: 1 byte by byte). */
static void check_pair_sliced(const char *what, const tb_buf *m,
                              const tb_buf *r, ms_error code, uint64_t at,
                              size_t slice2)
{
    const size_t slices[2] = {0, slice2};
    for (size_t k = 0; k < 2; k++) {
        ms_error_info e;
        memset(&e, 0, sizeof e);
        int rc = pair(m, r, &e, slices[k]);
        if (code == MS_ERR_OK)
            SOFT(rc == 0, "%s: %s@%llu %s", what, ms_error_name(e.code),
                 (unsigned long long)e.offset, e.detail);
        else
            SOFT(rc < 0 && e.code == code && e.offset == at && e.has_channel &&
                     e.channel == 1,
                 "%s: %s@%llu (channel %u), expected %s@%llu: %s", what,
                 ms_error_name(e.code), (unsigned long long)e.offset, e.channel,
                 ms_error_name(code), (unsigned long long)at, e.detail);
    }
}

static void check_pair(const char *what, const tb_buf *m, const tb_buf *r,
                       ms_error code, uint64_t at)
{
    check_pair_sliced(what, m, r, code, at, 1);
}

static void test_set_built(void **state)
{
    (void)state;
    BEGIN();
    const uint64_t sent[] = {0x20000, 0x21000, 0x80000};
    tb_buf m, r;
    tb_buf_init(&m);
    tb_buf_init(&r);
    main_stream(&m, sent, 3, 0x1000, 0);

    /* answers in another order, requests of sent pages */
    rp_u32(&r, T_PONG, 1);
    rp_u32(&r, T_PONG, 3);
    rp_u32(&r, T_PONG, 2);
    rp_req(&r, "pc.ram", 0x20000, 0x1000);
    rp_req(&r, NULL, 0x80000, 0x1000);
    uint64_t shut = rp_u32(&r, T_SHUT, 0);
    check_pair("good pair", &m, &r, MS_ERR_OK, 0);
    /* the return path alone is fine too */
    ms_error_info e;
    SOFT(tb_verify(r.p, r.len, NULL, &e) == 0, "return path alone");

    /* a PONG missing: reported at the SHUT */
    tb_buf_reset(&r);
    rp_u32(&r, T_PONG, 1);
    rp_u32(&r, T_PONG, 3);
    shut = rp_u32(&r, T_SHUT, 0);
    check_pair("PONG 2 missing", &m, &r, MS_ERR_RETURN_PATH, shut);

    /* a PONG nobody asked for */
    tb_buf_reset(&r);
    rp_u32(&r, T_PONG, 1);
    rp_u32(&r, T_PONG, 2);
    rp_u32(&r, T_PONG, 3);
    uint64_t extra = rp_u32(&r, T_PONG, 3);
    rp_u32(&r, T_SHUT, 0);
    check_pair("PONG 3 twice", &m, &r, MS_ERR_RETURN_PATH, extra);

    /* a request for a page sent only before LISTEN, one for a page never
     * sent, one for a block the main stream lacks, one past the block */
    static const struct {
        const char *block;
        uint64_t start;
    } reqs[] = {{"pc.ram", 0x1000},
                {"pc.ram", 0x22000},
                {"pc.rom", 0x20000},
                {"pc.ram", 0x100000}};
    for (size_t i = 0; i < 4; i++) {
        tb_buf_reset(&r);
        rp_u32(&r, T_PONG, 1);
        rp_u32(&r, T_PONG, 2);
        rp_u32(&r, T_PONG, 3);
        uint64_t at = rp_req(&r, reqs[i].block, reqs[i].start, 0x1000);
        rp_u32(&r, T_SHUT, 0);
        char what[64];
        snprintf(what, sizeof what, "request %s 0x%llx", reqs[i].block,
                 (unsigned long long)reqs[i].start);
        check_pair(what, &m, &r, MS_ERR_RETURN_PATH, at);
    }

    /* SHUT 1: the destination failed */
    tb_buf_reset(&r);
    rp_u32(&r, T_PONG, 1);
    shut = rp_u32(&r, T_SHUT, 1);
    tb_buf chans1[1] = {r};
    tb_result res;
    SOFT(tb_run_set(chans1, 1, NULL, 0, 0, &res) < 0 &&
             res.err.code == MS_ERR_RETURN_PATH && res.err.offset == shut,
         "SHUT 1: %s@%llu", ms_error_name(res.err.code),
         (unsigned long long)res.err.offset);
    tb_result_free(&res);

    /* switchover-ack: the main stream has DEV_INIT_DATA_SENT */
    tb_buf_reset(&m);
    main_stream(&m, sent, 3, 0x1000, 1);
    tb_buf_reset(&r);
    rp_u32(&r, T_PONG, 1);
    rp_u32(&r, T_PONG, 2);
    rp_u32(&r, T_PONG, 3);
    shut = rp_u32(&r, T_SHUT, 0);
    check_pair("no SWITCHOVER_ACK", &m, &r, MS_ERR_RETURN_PATH, shut);
    tb_buf_reset(&r);
    rp_u32(&r, T_PONG, 1);
    rp_msg(&r, T_ACK, NULL, 0);
    rp_u32(&r, T_PONG, 2);
    rp_u32(&r, T_PONG, 3);
    rp_u32(&r, T_SHUT, 0);
    check_pair("SWITCHOVER_ACK in place", &m, &r, MS_ERR_OK, 0);
    tb_buf_reset(&r);
    rp_u32(&r, T_PONG, 1);
    uint64_t early = rp_u32(&r, T_PONG, 2);
    rp_msg(&r, T_ACK, NULL, 0);
    rp_u32(&r, T_PONG, 3);
    rp_u32(&r, T_SHUT, 0);
    check_pair("PONG 2 before SWITCHOVER_ACK", &m, &r, MS_ERR_RETURN_PATH,
               early);

    tb_buf_free(&m);
    tb_buf_free(&r);
    DONE();
}

/* The real pair (tests/data/captures/qemu-10.0-pc-postcopy). */
static void test_set_capture(void **state)
{
    (void)state;
    BEGIN();
    size_t mlen, rlen;
    uint8_t *mp = load_capture("conn0.s2d", &mlen);
    assert_non_null(mp);
    uint8_t *rp = load_capture("conn0.d2s", &rlen);
    assert_non_null(rp);
    tb_buf m = {mp, mlen, mlen}, r = {rp, rlen, rlen};
    /* 18 MB: whole, and in random slices of up to 64 KiB */
    check_pair_sliced("conn0.s2d + conn0.d2s", &m, &r, MS_ERR_OK, 0, 65536);
    /* PONG 3 (at 24) removed: PING 3 unanswered, reported at the SHUT */
    tb_buf cut;
    tb_buf_init(&cut);
    tb_put(&cut, rp, 24);
    tb_put(&cut, rp + 32, rlen - 32);
    check_pair_sliced("PONG 3 removed", &m, &cut, MS_ERR_RETURN_PATH, 199 - 8,
                      65536);
    tb_buf_free(&cut);
    free(mp);
    free(rp);
    DONE();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_capture),     cmocka_unit_test(test_capture_cuts),
        cmocka_unit_test(test_all_types),   cmocka_unit_test(test_rejections),
        cmocka_unit_test(test_detection),   cmocka_unit_test(test_set_built),
        cmocka_unit_test(test_set_capture),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
