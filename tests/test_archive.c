/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* migstream 2.1 embedded streams (spec/migstream.md 5.10-5.12): writer ->
 * reader round trip, one byte at a time, truncation at every offset, every
 * damaged byte detected, the record rules, and the 2.0 compatibility of
 * the records (optional, plain payload checks). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "test_util.h"

/* ---- an archive written by the writer ------------------------------------ */

#define NSTREAMS 3
static uint8_t g_orig[NSTREAMS][900];
static const size_t g_len[NSTREAMS] = {900, 1, 333};
static const char *const g_name[NSTREAMS] = {"conn0.s2d", "conn0.d2s",
                                             "manifest.json"};

static int to_buf(void *opaque, const void *buf, size_t len)
{
    tb_put(opaque, buf, len);
    return 0;
}

/* Streams 0 and 1 interleaved, in records of at most 128 bytes, then a
 * device image (ordinary records beside the streams), then stream 2. */
static void write_archive(tb_buf *out)
{
    for (int i = 0; i < NSTREAMS; i++)
        tb_fill_random(g_orig[i], sizeof g_orig[i], 100 + (uint64_t)i);
    ms_writer_options o;
    ms_writer_options_init(&o);
    o.chunk_size = 128;
    o.archive = 1;
    ms_writer *w = ms_writer_create(&o);
    assert_non_null(w);
    tb_buf_init(out);
    assert_int_equal(ms_writer_open_channel(w, 0, to_buf, out), 0);
    assert_int_equal(
        ms_writer_add_device(w, 7, "dev0", 0, MS_PAYLOAD_RAW, NULL, 0), 0);
    uint32_t id[NSTREAMS];
    assert_int_equal(ms_writer_stream_begin(
                         w, 0, MS_ARCHIVE_CAPTURE, MS_ARCHIVE_DIR_S2D, 0,
                         MS_FORMAT_QEMU_MAIN, g_name[0], g_len[0], &id[0]),
                     0);
    assert_int_equal(
        ms_writer_stream_begin(w, 0, MS_ARCHIVE_CAPTURE, MS_ARCHIVE_DIR_D2S, 0,
                               MS_FORMAT_QEMU_RETURN_PATH, g_name[1],
                               MS_ARCHIVE_LENGTH_UNKNOWN, &id[1]),
        0);
    assert_int_equal(id[0], 0);
    assert_int_equal(id[1], 1);
    assert_int_equal(ms_writer_stream_data(w, 0, 0, g_orig[0], 500), 0);
    assert_int_equal(ms_writer_stream_data(w, 0, 1, g_orig[1], 1), 0);
    assert_int_equal(ms_writer_stream_data(w, 0, 0, g_orig[0] + 500, 400), 0);
    assert_int_equal(ms_writer_stream_end(w, 0, 1), 0);
    assert_int_equal(ms_writer_stream_end(w, 0, 0), 0);
    assert_int_equal(ms_writer_image_begin(w, 0, 7, MS_PHASE_FINAL,
                                           MS_TRANSPORT_CHUNKS, 0, 0),
                     0);
    assert_int_equal(ms_writer_image_data(w, 7, g_orig[2], 40), 0);
    assert_int_equal(ms_writer_image_end(w, 7, 0), 0);
    assert_int_equal(
        ms_writer_stream_begin(w, 0, MS_ARCHIVE_MANIFEST, MS_ARCHIVE_DIR_NONE,
                               MS_ARCHIVE_NO_CONNECTION, MS_FORMAT_UNKNOWN,
                               g_name[2], g_len[2], &id[2]),
        0);
    assert_int_equal(ms_writer_stream_data(w, 0, 2, g_orig[2], g_len[2]), 0);
    assert_int_equal(ms_writer_stream_end(w, 0, 2), 0);
    assert_int_equal(ms_writer_close_channel(w, 0, 0), 0);
    ms_writer_free(w);
}

/* ---- reading: the streams' bytes and labels ------------------------------ */

typedef struct got {
    int rc;
    ms_error_info err;
    tb_buf bytes[NSTREAMS];
    int begun[NSTREAMS], ended[NSTREAMS];
    ms_archive_info begin[NSTREAMS], end[NSTREAMS];
    char name[NSTREAMS][32];
    size_t offset_errors;  /* DATA not at the stream's next offset */
    size_t archive_errors; /* DATA whose archive offset does not hold it */
    uint32_t header_flags;
    uint16_t minor;
} got;

static void got_free(got *g)
{
    for (int i = 0; i < NSTREAMS; i++)
        tb_buf_free(&g->bytes[i]);
}

static void on_event(got *g, const ms_event *ev, const uint8_t *whole,
                     size_t whole_len)
{
    const ms_archive_info *a = &ev->u.archive;
    if (ev->kind == MS_EV_STREAM_HEADER) {
        g->header_flags = ev->u.stream.header_flags;
        g->minor = ev->u.stream.version_minor;
    }
    if (ev->kind != MS_EV_ARCHIVE_BEGIN && ev->kind != MS_EV_ARCHIVE_DATA &&
        ev->kind != MS_EV_ARCHIVE_END)
        return;
    assert_true(a->stream < NSTREAMS);
    if (ev->kind == MS_EV_ARCHIVE_BEGIN) {
        g->begun[a->stream]++;
        g->begin[a->stream] = *a;
        snprintf(g->name[a->stream], sizeof g->name[0], "%s", a->name);
    } else if (ev->kind == MS_EV_ARCHIVE_END) {
        g->ended[a->stream]++;
        g->end[a->stream] = *a;
    } else {
        tb_buf *b = &g->bytes[a->stream];
        g->offset_errors += a->offset != b->len;
        g->archive_errors += ev->offset + a->size > whole_len ||
                             memcmp(whole + ev->offset, a->data, a->size) != 0;
        tb_put(b, a->data, a->size);
    }
}

/* Read `len` bytes of `p` in slices of `slice` bytes (0: one slice). */
static int read_archive(const uint8_t *p, size_t len, size_t slice, got *g)
{
    memset(g, 0, sizeof *g);
    for (int i = 0; i < NSTREAMS; i++)
        tb_buf_init(&g->bytes[i]);
    ms_reader *r = ms_reader_create(NULL);
    assert_non_null(r);
    size_t pos = 0;
    int rc = 0;
    ms_event ev;
    do {
        size_t n = slice && len - pos > slice ? slice : len - pos;
        ms_reader_input(r, p + pos, n);
        pos += n;
        while ((rc = ms_reader_next(r, &ev)) == MS_NEXT_EVENT)
            on_event(g, &ev, p, len);
    } while (rc == MS_NEXT_INPUT && pos < len);
    if (rc == MS_NEXT_INPUT)
        rc = ms_reader_finish(r) < 0 ? -1 : 0;
    else
        rc = -1;
    g->rc = rc;
    if (rc)
        g->err = *ms_reader_error(r);
    ms_reader_free(r);
    return rc;
}

static void expect_streams(const got *g)
{
    assert_int_equal(g->rc, 0);
    assert_int_equal(g->minor, 1);
    assert_int_equal(g->header_flags, MS_HEADER_ARCHIVE);
    assert_int_equal(g->offset_errors, 0);
    assert_int_equal(g->archive_errors, 0);
    for (int i = 0; i < NSTREAMS; i++) {
        assert_int_equal(g->begun[i], 1);
        assert_int_equal(g->ended[i], 1);
        assert_string_equal(g->name[i], g_name[i]);
        assert_int_equal(g->bytes[i].len, g_len[i]);
        assert_memory_equal(g->bytes[i].p, g_orig[i], g_len[i]);
        assert_int_equal(g->end[i].length, g_len[i]);
        assert_true(g->end[i].hash == tb_hash(g_orig[i], g_len[i]));
    }
    assert_int_equal(g->begin[0].direction, MS_ARCHIVE_DIR_S2D);
    assert_int_equal(g->begin[0].format, MS_FORMAT_QEMU_MAIN);
    assert_int_equal(g->begin[0].connection, 0);
    assert_true(g->begin[0].declared_length == g_len[0]);
    assert_int_equal(g->begin[1].direction, MS_ARCHIVE_DIR_D2S);
    assert_true(g->begin[1].declared_length == MS_ARCHIVE_LENGTH_UNKNOWN);
    assert_int_equal(g->begin[2].role, MS_ARCHIVE_MANIFEST);
    assert_int_equal(g->begin[2].connection, MS_ARCHIVE_NO_CONNECTION);
}

static void ar_round_trip(void **state)
{
    (void)state;
    tb_buf a;
    write_archive(&a);
    size_t slices[] = {0, 1, 7, 4096};
    for (size_t i = 0; i < sizeof slices / sizeof slices[0]; i++) {
        got g;
        read_archive(a.p, a.len, slices[i], &g);
        if (g.rc)
            print_message("slice %zu: %s at %llu: %s\n", slices[i],
                          ms_error_name(g.err.code),
                          (unsigned long long)g.err.offset, g.err.detail);
        expect_streams(&g);
        got_free(&g);
    }
    tb_buf_free(&a);
}

/* Every cut is refused, at the cut (truncated or missing-end). */
static void ar_truncation_every_offset(void **state)
{
    (void)state;
    tb_buf a;
    write_archive(&a);
    size_t bad = 0;
    for (size_t cut = 0; cut < a.len; cut++) {
        got g;
        read_archive(a.p, cut, cut % 5 == 2 ? 1 : 0, &g);
        if (g.rc == 0 || (cut > 0 && ((g.err.code != MS_ERR_TRUNCATED &&
                                       g.err.code != MS_ERR_MISSING_END) ||
                                      g.err.offset != cut))) {
            if (bad++ < 5)
                print_message("cut %zu: rc %d %s at %llu\n", cut, g.rc,
                              ms_error_name(g.err.code),
                              (unsigned long long)g.err.offset);
        }
        got_free(&g);
    }
    assert_int_equal(bad, 0);
    tb_buf_free(&a);
}

/* Every byte changed anywhere is refused (no error: accepted = missed). */
static void ar_every_damaged_byte(void **state)
{
    (void)state;
    tb_buf a;
    write_archive(&a);
    uint8_t *copy = malloc(a.len);
    assert_non_null(copy);
    size_t missed = 0;
    for (size_t i = 0; i < a.len; i++) {
        memcpy(copy, a.p, a.len);
        copy[i] ^= (uint8_t)(1u << (i % 8));
        got g;
        if (read_archive(copy, a.len, i % 11 == 0 ? 1 : 0, &g) == 0 &&
            missed++ < 5)
            print_message("byte %zu changed: accepted\n", i);
        got_free(&g);
    }
    free(copy);
    assert_int_equal(missed, 0);
    tb_buf_free(&a);
}

/* A 2.0 reader must be able to skip the records: they are optional and
 * their payload check is the plain one of spec 4.1 (not 4.3's). */
static void ar_records_are_2_0_skippable(void **state)
{
    (void)state;
    tb_buf a;
    write_archive(&a);
    size_t pos = 64, seen = 0;
    while (pos + 32 <= a.len) {
        uint64_t size = tb_le64(a.p + pos);
        uint32_t flags = tb_le32(a.p + pos + 8), tag = tb_le32(a.p + pos + 12);
        uint64_t hcheck = tb_le64(a.p + pos + 16);
        if (tag >= 0x20 && tag <= 0x22) {
            seen++;
            assert_int_equal(flags, MS_RECORD_OPTIONAL);
            assert_true(tb_le64(a.p + pos + 24 + size) ==
                        tb_hash_seed(a.p + pos + 24, (size_t)size, hcheck));
        }
        pos += 32 + (size_t)size;
    }
    assert_int_equal(pos, a.len);
    assert_true(seen >= 6 + 900 / 128);
    tb_buf_free(&a);
}

/* ---- record rules, on hand-built streams --------------------------------- */

static void begin_payload(tb_buf *p, uint32_t id, const char *name,
                          uint64_t length)
{
    tb_put_le32(p, id);
    tb_put_u8(p, MS_ARCHIVE_CAPTURE);
    tb_put_u8(p, MS_ARCHIVE_DIR_S2D);
    tb_put_le16(p, 0);
    tb_put_le32(p, 0);
    tb_put_le32(p, MS_FORMAT_UNKNOWN);
    tb_put_le64(p, length);
    tb_put_le64(p, 0);
    tb_put_le32(p, (uint32_t)strlen(name));
    tb_put_le32(p, 0);
    tb_put(p, name, strlen(name));
}

static void data_payload(tb_buf *p, uint32_t id, uint64_t off, const void *d,
                         size_t n)
{
    tb_put_le32(p, id);
    tb_put_le32(p, 0);
    tb_put_le64(p, off);
    tb_put(p, d, n);
}

static void end_payload(tb_buf *p, uint32_t id, uint64_t len, uint64_t hash)
{
    tb_put_le32(p, id);
    tb_put_le32(p, 0);
    tb_put_le64(p, len);
    tb_put_le64(p, hash);
}

typedef enum {
    BAD_NONE,
    BAD_NAME,
    BAD_ID,
    BAD_OFFSET,
    BAD_HASH,
    BAD_LENGTH,
    BAD_OPEN_AT_END,
    BAD_DATA_UNKNOWN
} bad_kind;

/* One stream "abc" (or what `bad` breaks), then END. */
static void build(tb_stream *s, bad_kind bad, size_t *bad_off)
{
    tb_stream_init(s);
    tb_header_ex(s, tb_magic, 2, 1, MS_HEADER_ARCHIVE, tb_uuid_a, 0, 1, 0, 0);
    tb_buf p;
    tb_buf_init(&p);
    begin_payload(&p, bad == BAD_ID ? 1 : 0, bad == BAD_NAME ? "a/b" : "x",
                  bad == BAD_LENGTH ? 4 : 3);
    *bad_off = tb_record(s, 1, 0x20, p.p, p.len) + 24;
    if (bad == BAD_NAME)
        *bad_off += 32;
    tb_buf_reset(&p);
    data_payload(&p, bad == BAD_DATA_UNKNOWN ? 5 : 0, bad == BAD_OFFSET ? 1 : 0,
                 "abc", 3);
    size_t d = tb_record(s, 1, 0x21, p.p, p.len) + 24;
    if (bad == BAD_OFFSET)
        *bad_off = d + 8;
    if (bad == BAD_DATA_UNKNOWN)
        *bad_off = d;
    if (bad != BAD_OPEN_AT_END) {
        tb_buf_reset(&p);
        end_payload(&p, 0, 3, tb_hash("abc", bad == BAD_HASH ? 2 : 3));
        size_t e = tb_record(s, 1, 0x22, p.p, p.len) + 24;
        if (bad == BAD_HASH)
            *bad_off = e + 16;
        if (bad == BAD_LENGTH)
            *bad_off = e + 8;
    }
    size_t end = tb_end_auto(s, 0);
    if (bad == BAD_OPEN_AT_END)
        *bad_off = end;
    tb_buf_free(&p);
}

static void ar_rules(void **state)
{
    (void)state;
    static const struct {
        bad_kind bad;
        ms_error want;
    } cases[] = {
        {BAD_NONE, MS_ERR_OK},
        {BAD_NAME, MS_ERR_BAD_FIELD},
        {BAD_ID, MS_ERR_STREAM_STATE},
        {BAD_OFFSET, MS_ERR_STREAM_STATE},
        {BAD_DATA_UNKNOWN, MS_ERR_STREAM_STATE},
        {BAD_HASH, MS_ERR_STREAM_HASH},
        {BAD_LENGTH, MS_ERR_STREAM_HASH},
        {BAD_OPEN_AT_END, MS_ERR_STREAM_STATE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tb_stream s;
        size_t off = 0;
        build(&s, cases[i].bad, &off);
        for (size_t slice = 0; slice <= 1; slice++) {
            tb_result res;
            int rc = tb_read(s.b.p, s.b.len, NULL, slice, &res);
            if (cases[i].want == MS_ERR_OK) {
                assert_int_equal(rc, 0);
            } else {
                if (res.err.code != cases[i].want || res.err.offset != off)
                    print_message("case %zu: %s at %llu: %s (want %s at "
                                  "%zu)\n",
                                  i, ms_error_name(res.err.code),
                                  (unsigned long long)res.err.offset,
                                  res.err.detail, ms_error_name(cases[i].want),
                                  off);
                assert_int_equal(res.err.code, cases[i].want);
                assert_int_equal(res.err.offset, off);
            }
            tb_result_free(&res);
        }
        tb_stream_free(&s);
    }
}

/* More streams than max_channels: the limit, before allocating. */
static void ar_stream_limit(void **state)
{
    (void)state;
    tb_stream s;
    tb_stream_init(&s);
    tb_header_ex(&s, tb_magic, 2, 1, MS_HEADER_ARCHIVE, tb_uuid_a, 0, 1, 0, 0);
    tb_buf p;
    tb_buf_init(&p);
    size_t third = 0;
    for (uint32_t id = 0; id < 3; id++) {
        tb_buf_reset(&p);
        begin_payload(&p, id, "s", MS_ARCHIVE_LENGTH_UNKNOWN);
        third = tb_record(&s, 1, 0x20, p.p, p.len);
    }
    tb_buf_free(&p);
    ms_options o;
    ms_options_init(&o);
    o.max_channels = 2;
    tb_result res;
    assert_int_not_equal(tb_read(s.b.p, s.b.len, &o, 0, &res), 0);
    assert_int_equal(res.err.code, MS_ERR_LIMIT);
    assert_int_equal(res.err.limit, MS_LIMIT_MAX_CHANNELS);
    assert_int_equal(res.err.offset, third);
    tb_result_free(&res);
    tb_stream_free(&s);
}

/* The writer refuses streams without the archive option, bad names, and
 * bytes beyond the declared length. */
static void ar_writer_rules(void **state)
{
    (void)state;
    tb_buf out;
    tb_buf_init(&out);
    ms_writer *w = ms_writer_create(NULL);
    assert_int_equal(ms_writer_open_channel(w, 0, to_buf, &out), 0);
    assert_int_not_equal(
        ms_writer_stream_begin(w, 0, MS_ARCHIVE_CAPTURE, MS_ARCHIVE_DIR_NONE, 0,
                               MS_FORMAT_UNKNOWN, "x", 1, NULL),
        0);
    ms_writer_free(w);
    ms_writer_options o;
    ms_writer_options_init(&o);
    o.archive = 1;
    w = ms_writer_create(&o);
    assert_int_equal(ms_writer_open_channel(w, 0, to_buf, &out), 0);
    assert_int_not_equal(
        ms_writer_stream_begin(w, 0, MS_ARCHIVE_CAPTURE, MS_ARCHIVE_DIR_NONE, 0,
                               MS_FORMAT_UNKNOWN, "..", 1, NULL),
        0);
    ms_writer_free(w);
    w = ms_writer_create(&o);
    uint32_t id;
    assert_int_equal(ms_writer_open_channel(w, 0, to_buf, &out), 0);
    assert_int_equal(ms_writer_stream_begin(w, 0, MS_ARCHIVE_CAPTURE,
                                            MS_ARCHIVE_DIR_NONE, 0,
                                            MS_FORMAT_UNKNOWN, "x", 1, &id),
                     0);
    assert_int_not_equal(ms_writer_stream_data(w, 0, id, "ab", 2), 0);
    ms_writer_free(w);
    o.format_major = 1;
    assert_null(ms_writer_create(&o));
    tb_buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ar_round_trip),
        cmocka_unit_test(ar_truncation_every_offset),
        cmocka_unit_test(ar_every_damaged_byte),
        cmocka_unit_test(ar_records_are_2_0_skippable),
        cmocka_unit_test(ar_rules),
        cmocka_unit_test(ar_stream_limit),
        cmocka_unit_test(ar_writer_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
