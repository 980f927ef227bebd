/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* QEMU "dirty-bitmap" sections (libstream/qemu/qemu_dirty_bitmap.c), checked
 * against streams this test encodes itself from the format facts of
 * QEMU's migration/block-dirty-bitmap.c as spec/qemu-main.md restates
 * them (flags byte, counted names, START be32 granularity + u8 flags,
 * COMPLETE, BITS be64 first sector + be32 count [+ be64 size + bytes]):
 *
 *   - a START / PART / END sequence with several nodes and bitmaps, ZEROES
 *     and buffer chunks (one over 1 KiB), names carried over from earlier
 *     records, decodes to the records written, buffers rebuilt byte for
 *     byte from their pieces, in one slice, byte by byte and in random
 *     slices (same log), and cut at every offset fails inside the input;
 *   - 2- and 4-byte flags are read as QEMU reads them (the last byte);
 *   - every malformed flags value, name, length and sequence fails with
 *     its code at the offending field's offset, also byte by byte.
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

/* ---- the test's own encoder -----------------------------------------------
 */
enum {
    F_EOS = 0x01,
    F_ZEROES = 0x02,
    F_BITMAP_NAME = 0x04,
    F_DEVICE_NAME = 0x08,
    F_START = 0x10,
    F_COMPLETE = 0x20,
    F_BITS = 0x40
};
#define DBM_ID 3u
#define RAM_ID 2u

/* Flags, then the names the flags announce; returns the record offset. */
static size_t rec_head(tb_buf *b, uint8_t flags, const char *node,
                       const char *bitmap)
{
    size_t at = b->len;
    tb_put_u8(b, flags);
    if (flags & F_DEVICE_NAME)
        tq_counted(b, node);
    if (flags & F_BITMAP_NAME)
        tq_counted(b, bitmap);
    return at;
}

static size_t rec_start(tb_buf *b, uint8_t names, const char *node,
                        const char *bitmap, uint32_t gran, uint8_t bflags)
{
    size_t at = rec_head(b, F_START | names, node, bitmap);
    tb_put_be32(b, gran);
    tb_put_u8(b, bflags);
    return at;
}

static size_t rec_bits(tb_buf *b, uint8_t names, const char *node,
                       const char *bitmap, uint64_t first, uint32_t count,
                       const uint8_t *buf, uint64_t n)
{
    size_t at =
        rec_head(b, F_BITS | (buf ? 0 : F_ZEROES) | names, node, bitmap);
    tb_put_be64(b, first);
    tb_put_be32(b, count);
    if (buf) {
        tb_put_be64(b, n);
        tb_put(b, buf, (size_t)n);
    }
    return at;
}

static size_t rec_eos(tb_buf *b)
{
    size_t at = b->len;
    tb_put_u8(b, F_EOS);
    return at;
}

/* Stream head: header, configuration, a RAM START (so the bitmap sections
 * sit among others), then the dirty-bitmap START section header. */
static const char *const g_blocks[] = {"pc.ram"};
static const uint64_t g_lens[] = {0x10000};

/* Returns the dirty-bitmap section's offset. */
static size_t head(tb_buf *b, uint32_t version)
{
    tq_begin(b);
    tq_section_start(b, TQ_START, RAM_ID, "ram", 0, 4);
    tq_ram_block_list(b, g_blocks, g_lens, 1);
    tq_ram_eos(b);
    tq_footer(b, RAM_ID);
    return tq_section_start(b, TQ_START, DBM_ID, "dirty-bitmap", 0, version);
}

/* Ends the dirty-bitmap START section, then completes as QEMU's source
 * does: every iterable section STARTed gets its END before EOF (RAM's,
 * then dirty-bitmap's, which for no bitmap in flight is EOS alone). */
static void tail(tb_buf *b)
{
    tq_footer(b, DBM_ID);
    tq_ram_end(b, RAM_ID);
    tq_section_part(b, TQ_END, DBM_ID);
    tb_put_u8(b, F_EOS);
    tq_footer(b, DBM_ID);
    tq_eof(b);
}

/* ---- a log of the decoded events, independent of slicing ---------------- */
typedef struct dlog {
    char *text;
    size_t len, cap;
    tb_buf buf; /* the current BITS buffer being rebuilt */
    uint64_t buf_size;
    int rc;
    ms_error_info err;
    size_t starts, completes, bits, zeroes, buffers_ok, eos;
} dlog;

static void dlog_add(dlog *l, const char *fmt, ...)
{
    char line[600];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    assert_true(n > 0 && (size_t)n < sizeof line);
    if (l->len + (size_t)n + 1 > l->cap) {
        l->cap = (l->cap + (size_t)n + 1) * 2;
        l->text = realloc(l->text, l->cap);
        assert_non_null(l->text);
    }
    memcpy(l->text + l->len, line, (size_t)n + 1);
    l->len += (size_t)n;
}

static void dlog_event(dlog *l, const ms_event *ev)
{
    if (ev->kind != MS_EV_DIRTY_BITMAP) {
        dlog_add(l, "%s@%llu+%llu\n", ms_event_kind_name(ev->kind),
                 (unsigned long long)ev->offset,
                 (unsigned long long)ev->length);
        return;
    }
    const ms_dirty_bitmap_info *d = &ev->u.dbm;
    if (d->record == MS_DBM_BUFFER) {
        /* pieces arrive in order and cover the buffer exactly */
        assert_int_equal(d->buf_offset, l->buf.len);
        assert_int_equal(d->buf_size, l->buf_size);
        tb_put(&l->buf, d->data, d->size);
        if (l->buf.len == l->buf_size) {
            dlog_add(l, "buffer %llu hash %016llx\n",
                     (unsigned long long)l->buf.len,
                     (unsigned long long)tb_hash(l->buf.p, l->buf.len));
            l->buffers_ok++;
        }
        return;
    }
    dlog_add(l, "dbm %d@%llu+%llu flags 0x%x/%u", (int)d->record,
             (unsigned long long)ev->offset, (unsigned long long)ev->length,
             d->flags, d->flags_size);
    if (d->record != MS_DBM_EOS)
        dlog_add(l, " %s/%s", d->node, d->bitmap);
    switch (d->record) {
    case MS_DBM_EOS:
        l->eos++;
        break;
    case MS_DBM_START:
        l->starts++;
        dlog_add(l, " gran %u bflags %u", d->granularity, d->bitmap_flags);
        break;
    case MS_DBM_COMPLETE:
        l->completes++;
        break;
    case MS_DBM_BITS:
        l->bits++;
        l->zeroes += d->zeroes != 0;
        dlog_add(l, " %llu+%u z%d size %llu",
                 (unsigned long long)d->first_sector, d->nr_sectors, d->zeroes,
                 (unsigned long long)d->buf_size);
        tb_buf_reset(&l->buf);
        l->buf_size = d->buf_size;
        break;
    default:
        fail_msg("unknown dirty-bitmap record %d", (int)d->record);
    }
    dlog_add(l, "\n");
}

/* slice 0: one slice; 1: byte by byte; else random slices up to `slice`. */
static void run(const uint8_t *p, size_t len, const ms_options *opt,
                size_t slice, dlog *l)
{
    memset(l, 0, sizeof *l);
    tb_buf_init(&l->buf);
    ms_reader *r = ms_reader_create(opt);
    assert_non_null(r);
    uint64_t seed = 12345 + len;
    size_t pos = 0;
    ms_event ev;
    int rc = 0;
    while (pos < len && rc >= 0) {
        size_t n = slice == 0   ? len
                   : slice == 1 ? 1
                                : 1 + (size_t)(tb_rand(&seed) % slice);
        if (n > len - pos)
            n = len - pos;
        assert_int_equal(ms_reader_input(r, p + pos, n), 0);
        pos += n;
        while ((rc = ms_reader_next(r, &ev)) == MS_NEXT_EVENT)
            dlog_event(l, &ev);
    }
    if (rc >= 0)
        rc = ms_reader_finish(r);
    l->rc = rc < 0 ? -1 : 0;
    l->err = *ms_reader_error(r);
    ms_reader_free(r);
    if (!l->text)
        dlog_add(l, "");
}

static void dlog_free(dlog *l)
{
    free(l->text);
    tb_buf_free(&l->buf);
}

/* ---- the valid stream ------------------------------------------------------
 */
typedef struct valid {
    tb_buf b;
    uint8_t big[2048], small[32];
    size_t eof_at;
} valid;

static void build_valid(valid *v)
{
    tb_buf *b = &v->b;
    tb_buf_init(b);
    tb_fill_random(v->big, sizeof v->big, 7);
    tb_fill_random(v->small, sizeof v->small, 8);
    head(b, 1);
    /* setup: three bitmaps on two nodes; the node name only when it
     * changes, as QEMU's writer does */
    rec_start(b, F_DEVICE_NAME | F_BITMAP_NAME, "drive0", "bm0", 65536, 1);
    rec_start(b, F_BITMAP_NAME, NULL, "bm1", 512, 3);
    rec_start(b, F_DEVICE_NAME | F_BITMAP_NAME, "drive1", "bm0", 1u << 20, 0);
    rec_eos(b);
    tq_footer(b, DBM_ID);
    /* an iteration: EOS only (precopy) */
    tq_section_part(b, TQ_PART, DBM_ID);
    rec_eos(b);
    tq_footer(b, DBM_ID);
    /* completion: RAM's END, then dirty-bitmap's: chunks, then COMPLETE
     * for each bitmap */
    tq_ram_end(b, RAM_ID);
    tq_section_part(b, TQ_END, DBM_ID);
    /* drive1/bm0 is current: a chunk without names */
    rec_bits(b, 0, NULL, NULL, 0, 8192, NULL, 0);
    rec_bits(b, F_DEVICE_NAME | F_BITMAP_NAME, "drive0", "bm0", 0, 32768,
             v->small, sizeof v->small);
    rec_bits(b, F_BITMAP_NAME, NULL, "bm1", 0, 16384, v->big, sizeof v->big);
    rec_bits(b, 0, NULL, NULL, 16384, 100, v->small, 16);
    rec_head(b, F_COMPLETE | F_DEVICE_NAME | F_BITMAP_NAME, "drive0", "bm0");
    rec_head(b, F_COMPLETE | F_BITMAP_NAME, NULL, "bm1");
    rec_head(b, F_COMPLETE | F_DEVICE_NAME | F_BITMAP_NAME, "drive1", "bm0");
    rec_eos(b);
    tq_footer(b, DBM_ID);
    v->eof_at = tq_eof(b) + 1;
}

static void test_valid(void **state)
{
    (void)state;
    static valid v;
    build_valid(&v);
    dlog whole, bytes, rnd;
    run(v.b.p, v.b.len, NULL, 0, &whole);
    if (whole.rc)
        print_message("%s at %llu: %s\n%s", ms_error_name(whole.err.code),
                      (unsigned long long)whole.err.offset, whole.err.detail,
                      whole.text);
    assert_int_equal(whole.rc, 0);
    assert_int_equal(whole.starts, 3);
    assert_int_equal(whole.completes, 3);
    assert_int_equal(whole.bits, 4);
    assert_int_equal(whole.zeroes, 1);
    assert_int_equal(whole.buffers_ok, 3);
    assert_int_equal(whole.eos, 3);
    /* the buffers rebuilt are the bytes written */
    char want[80];
    snprintf(want, sizeof want, "buffer 2048 hash %016llx\n",
             (unsigned long long)tb_hash(v.big, sizeof v.big));
    assert_non_null(strstr(whole.text, want));
    snprintf(want, sizeof want, "buffer 16 hash %016llx\n",
             (unsigned long long)tb_hash(v.small, 16));
    assert_non_null(strstr(whole.text, want));
    /* names carried over from earlier records */
    assert_non_null(strstr(whole.text, "drive1/bm0 0+8192 z1 size 0"));
    assert_non_null(strstr(whole.text, "drive0/bm1 16384+100 z0 size 16"));
    assert_non_null(strstr(whole.text, "drive0/bm1 gran 512 bflags 3"));
    run(v.b.p, v.b.len, NULL, 1, &bytes);
    assert_int_equal(bytes.rc, 0);
    assert_string_equal(whole.text, bytes.text);
    for (size_t max = 3; max < 400; max = max * 3 + 1) {
        run(v.b.p, v.b.len, NULL, max, &rnd);
        assert_int_equal(rnd.rc, 0);
        assert_string_equal(whole.text, rnd.text);
        dlog_free(&rnd);
    }
    /* cut at every offset: truncated or missing-end, inside the input;
     * only right after EOF may a stream end */
    for (size_t cut = 0; cut < v.b.len; cut++) {
        ms_error_info e;
        int rc = tb_verify(v.b.p, cut, NULL, &e);
        if (cut == v.eof_at) {
            assert_int_equal(rc, 0);
            continue;
        }
        if (rc != -1 ||
            (e.code != MS_ERR_TRUNCATED && e.code != MS_ERR_MISSING_END) ||
            e.offset > cut)
            print_message("cut %zu: rc %d %s at %llu\n", cut, rc,
                          ms_error_name(e.code), (unsigned long long)e.offset);
        assert_int_equal(rc, -1);
        assert_true(e.code == MS_ERR_TRUNCATED || e.code == MS_ERR_MISSING_END);
        assert_true(e.offset <= cut);
    }
    dlog_free(&whole);
    dlog_free(&bytes);
    tb_buf_free(&v.b);
}

/* 2- and 4-byte flags: QEMU keeps the last byte. */
static void test_wide_flags(void **state)
{
    (void)state;
    tb_buf b;
    tb_buf_init(&b);
    head(&b, 1);
    size_t at = b.len;
    tb_put_u8(&b, 0x80);
    tb_put_u8(&b, F_START | F_DEVICE_NAME | F_BITMAP_NAME);
    tq_counted(&b, "d");
    tq_counted(&b, "b");
    tb_put_be32(&b, 4096);
    tb_put_u8(&b, 0);
    size_t at4 = b.len;
    tb_put_u8(&b, 0x80);
    tb_put_u8(&b, 0x80);
    tb_put_be16(&b, F_EOS); /* 0x00 0x01 */
    tail(&b);
    dlog l;
    run(b.p, b.len, NULL, 1, &l);
    if (l.rc)
        print_message("%s at %llu: %s\n", ms_error_name(l.err.code),
                      (unsigned long long)l.err.offset, l.err.detail);
    assert_int_equal(l.rc, 0);
    char want[120];
    snprintf(want, sizeof want, "dbm 2@%zu+%zu flags 0x1c/2 d/b gran 4096", at,
             (size_t)(2 + 2 + 2 + 5));
    assert_non_null(strstr(l.text, want));
    snprintf(want, sizeof want, "dbm 1@%zu+4 flags 0x1/4\n", at4);
    assert_non_null(strstr(l.text, want));
    dlog_free(&l);
    tb_buf_free(&b);
}

/* ---- malformed streams ------------------------------------------------------
 */
static int g_fail;

/* The stream fails with `code` at `off`, whole and byte by byte. */
static void expect_(const char *label, const tb_buf *b, const ms_options *o,
                    ms_error code, size_t off, int line)
{
    for (int bytewise = 0; bytewise < 2; bytewise++) {
        dlog l;
        run(b->p, b->len, o, (size_t)bytewise, &l);
        if (l.rc != -1 || l.err.code != code || l.err.offset != off) {
            g_fail++;
            print_message("  FAIL line %d: %s%s: got %s at %llu (%s), want "
                          "%s at %zu\n",
                          line, label, bytewise ? " (byte by byte)" : "",
                          l.rc ? ms_error_name(l.err.code) : "success",
                          (unsigned long long)l.err.offset, l.err.detail,
                          ms_error_name(code), off);
        }
        dlog_free(&l);
    }
}
#define EXPECT(label, b, o, code, off) expect_(label, b, o, code, off, __LINE__)

/* A stream whose dirty-bitmap START section holds one good START of
 * "d"/"b" (granularity 4096) when `started`, then what the case writes. */
static void begin(tb_buf *b, int started)
{
    tb_buf_reset(b);
    head(b, 1);
    if (started)
        rec_start(b, F_DEVICE_NAME | F_BITMAP_NAME, "d", "b", 4096, 1);
}

static void end(tb_buf *b)
{
    rec_eos(b);
    tail(b);
}

static void test_malformed_flags(void **state)
{
    (void)state;
    g_fail = 0;
    tb_buf b;
    tb_buf_init(&b);
    static const struct {
        uint8_t flags;
        const char *label;
    } bad[] = {
        {0x00, "no record kind"},
        {F_DEVICE_NAME | F_BITMAP_NAME, "names only"},
        {F_ZEROES, "ZEROES without BITS"},
        {F_EOS | F_START, "EOS with START"},
        {F_EOS | F_BITMAP_NAME, "EOS with a name"},
        {F_START | F_COMPLETE, "START with COMPLETE"},
        {F_START | F_BITS, "START with BITS"},
        {F_COMPLETE | F_ZEROES, "COMPLETE with ZEROES"},
        {F_START | F_ZEROES, "START with ZEROES"},
        {0x7e, "a footer byte where a record starts"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        begin(&b, 1);
        size_t at = b.len;
        tb_put_u8(&b, bad[i].flags);
        tb_put_zeros(&b, 16);
        end(&b);
        EXPECT(bad[i].label, &b, NULL, MS_ERR_BAD_FIELD, at);
    }
    /* a 4-byte flags field whose last byte has 0x80 */
    begin(&b, 1);
    size_t at = b.len;
    tb_put_u8(&b, 0x80);
    tb_put_u8(&b, 0x80);
    tb_put_be16(&b, 0x0080);
    end(&b);
    EXPECT("4-byte flags ending in 0x80", &b, NULL, MS_ERR_BAD_FIELD, at);
    /* the section ends without EOS: the footer is read as flags */
    begin(&b, 1);
    at = b.len;
    tail(&b);
    EXPECT("no EOS before the footer", &b, NULL, MS_ERR_BAD_FIELD, at);
    tb_buf_free(&b);
    assert_int_equal(g_fail, 0);
}

static void test_malformed_names(void **state)
{
    (void)state;
    g_fail = 0;
    tb_buf b;
    tb_buf_init(&b);
    /* a record before any name */
    begin(&b, 0);
    size_t at = rec_bits(&b, 0, NULL, NULL, 0, 8, NULL, 0);
    end(&b);
    EXPECT("BITS before any name", &b, NULL, MS_ERR_BAD_FIELD, at);
    begin(&b, 0);
    at = rec_start(&b, 0, NULL, NULL, 4096, 0);
    end(&b);
    EXPECT("START before any name", &b, NULL, MS_ERR_BAD_FIELD, at);
    /* a node without a bitmap name */
    begin(&b, 1);
    at = rec_head(&b, F_COMPLETE | F_DEVICE_NAME, "d", NULL);
    end(&b);
    EXPECT("node name without bitmap name", &b, NULL, MS_ERR_BAD_FIELD, at);
    /* an empty name: the length byte */
    begin(&b, 0);
    at = b.len;
    tb_put_u8(&b, F_START | F_DEVICE_NAME | F_BITMAP_NAME);
    tb_put_u8(&b, 0);
    tq_counted(&b, "b");
    tb_put_be32(&b, 4096);
    tb_put_u8(&b, 0);
    end(&b);
    EXPECT("empty node name", &b, NULL, MS_ERR_BAD_FIELD, at + 1);
    begin(&b, 0);
    at = b.len;
    tb_put_u8(&b, F_START | F_DEVICE_NAME | F_BITMAP_NAME);
    tq_counted(&b, "d");
    tb_put_u8(&b, 0);
    tb_put_be32(&b, 4096);
    tb_put_u8(&b, 0);
    end(&b);
    EXPECT("empty bitmap name", &b, NULL, MS_ERR_BAD_FIELD, at + 3);
    tb_buf_free(&b);
    assert_int_equal(g_fail, 0);
}

static void test_malformed_sequence(void **state)
{
    (void)state;
    g_fail = 0;
    tb_buf b;
    tb_buf_init(&b);
    size_t at;
    begin(&b, 1);
    at = rec_start(&b, F_BITMAP_NAME, NULL, "b", 4096, 0);
    end(&b);
    EXPECT("START twice", &b, NULL, MS_ERR_BAD_FIELD, at);
    begin(&b, 1);
    at = rec_bits(&b, F_BITMAP_NAME, NULL, "other", 0, 8, NULL, 0);
    end(&b);
    EXPECT("BITS of a bitmap not started", &b, NULL, MS_ERR_BAD_FIELD, at);
    begin(&b, 1);
    at = rec_head(&b, F_COMPLETE | F_DEVICE_NAME | F_BITMAP_NAME, "e", "b");
    end(&b);
    EXPECT("COMPLETE of a bitmap not started", &b, NULL, MS_ERR_BAD_FIELD, at);
    begin(&b, 1);
    rec_head(&b, F_COMPLETE, NULL, NULL);
    at = rec_head(&b, F_COMPLETE, NULL, NULL);
    end(&b);
    EXPECT("COMPLETE twice", &b, NULL, MS_ERR_BAD_FIELD, at);
    begin(&b, 1);
    rec_head(&b, F_COMPLETE, NULL, NULL);
    at = rec_bits(&b, 0, NULL, NULL, 0, 8, NULL, 0);
    end(&b);
    EXPECT("BITS after COMPLETE", &b, NULL, MS_ERR_BAD_FIELD, at);
    /* the bitmap table is bounded by max_devices */
    ms_options o;
    ms_options_init(&o);
    o.max_devices = 2;
    begin(&b, 1);
    rec_start(&b, F_BITMAP_NAME, NULL, "b2", 4096, 0);
    at = rec_start(&b, F_BITMAP_NAME, NULL, "b3", 4096, 0);
    end(&b);
    EXPECT("third bitmap over max_devices 2", &b, &o, MS_ERR_LIMIT, at);
    /* section version and type */
    tb_buf_reset(&b);
    size_t sec = head(&b, 2);
    end(&b);
    EXPECT("dirty-bitmap version 2", &b, NULL, MS_ERR_BAD_FIELD, sec);
    tb_buf_reset(&b);
    tq_begin(&b);
    sec = tq_section_start(&b, TQ_FULL, DBM_ID, "dirty-bitmap", 0, 1);
    end(&b);
    EXPECT("dirty-bitmap in a FULL section", &b, NULL, MS_ERR_SECTION, sec);
    tb_buf_free(&b);
    assert_int_equal(g_fail, 0);
}

static void test_malformed_fields(void **state)
{
    (void)state;
    g_fail = 0;
    tb_buf b;
    tb_buf_init(&b);
    size_t at;
    static const uint32_t grans[] = {0, 256, 1000, 4097, 0x80000001u};
    for (size_t i = 0; i < sizeof grans / sizeof grans[0]; i++) {
        begin(&b, 0);
        at =
            rec_start(&b, F_DEVICE_NAME | F_BITMAP_NAME, "d", "b", grans[i], 0);
        end(&b);
        char label[64];
        snprintf(label, sizeof label, "granularity %u", grans[i]);
        EXPECT(label, &b, NULL, MS_ERR_BAD_FIELD, at + 1 + 2 + 2);
    }
    for (unsigned f = 0x08; f <= 0x80; f <<= 1) {
        begin(&b, 0);
        at = rec_start(&b, F_DEVICE_NAME | F_BITMAP_NAME, "d", "b", 4096,
                       (uint8_t)(f | 1));
        end(&b);
        EXPECT("reserved bitmap flag", &b, NULL, MS_ERR_BAD_FIELD,
               at + 1 + 2 + 2 + 4);
    }
    /* 0x04 (once "autoload") is ignored, not rejected */
    begin(&b, 0);
    rec_start(&b, F_DEVICE_NAME | F_BITMAP_NAME, "d", "b", 4096, 0x07);
    end(&b);
    dlog l;
    run(b.p, b.len, NULL, 0, &l);
    assert_int_equal(l.rc, 0);
    dlog_free(&l);
    /* buffers: over QEMU's 10 KiB, and too small for the range */
    static uint8_t buf[10241];
    begin(&b, 1);
    at = rec_bits(&b, 0, NULL, NULL, 0, 8, buf, sizeof buf);
    end(&b);
    EXPECT("buffer of 10241 bytes", &b, NULL, MS_ERR_BAD_FIELD, at + 1 + 12);
    begin(&b, 1);
    rec_bits(&b, 0, NULL, NULL, 0, 8, buf, 10240); /* the largest */
    end(&b);
    run(b.p, b.len, NULL, 0, &l);
    assert_int_equal(l.rc, 0);
    dlog_free(&l);
    /* 4096-byte granules: 8 * 2048 sectors = 8 MiB = 2048 bits = 256 B */
    begin(&b, 1);
    at = rec_bits(&b, 0, NULL, NULL, 0, 8 * 2048, buf, 255);
    end(&b);
    EXPECT("buffer one byte short", &b, NULL, MS_ERR_BAD_FIELD, at + 1 + 12);
    begin(&b, 1);
    rec_bits(&b, 0, NULL, NULL, 0, 8 * 2048, buf, 256);
    end(&b);
    run(b.p, b.len, NULL, 0, &l);
    assert_int_equal(l.rc, 0);
    dlog_free(&l);
    /* sector numbers whose byte offsets overflow 64 bits */
    begin(&b, 1);
    at = rec_bits(&b, 0, NULL, NULL, (uint64_t)1 << 55, 1, NULL, 0);
    end(&b);
    EXPECT("first sector 2^55", &b, NULL, MS_ERR_BAD_FIELD, at + 1);
    begin(&b, 1);
    at = rec_bits(&b, 0, NULL, NULL, ((uint64_t)1 << 55) - 5, 5, NULL, 0);
    end(&b);
    EXPECT("range reaching 2^55 sectors", &b, NULL, MS_ERR_BAD_FIELD, at + 1);
    begin(&b, 1);
    rec_bits(&b, 0, NULL, NULL, ((uint64_t)1 << 55) - 5, 4, NULL, 0);
    end(&b);
    run(b.p, b.len, NULL, 0, &l);
    assert_int_equal(l.rc, 0);
    dlog_free(&l);
    tb_buf_free(&b);
    assert_int_equal(g_fail, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_wide_flags),
        cmocka_unit_test(test_malformed_flags),
        cmocka_unit_test(test_malformed_names),
        cmocka_unit_test(test_malformed_sequence),
        cmocka_unit_test(test_malformed_fields),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
