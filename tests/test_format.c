/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* Conformance of the reader to spec/migstream.md: every error of section 8
 * driven by the smallest crafted stream (built by hand with test_util's
 * builder, never by ms_writer), with the error code and the offset the
 * comment above ms_error_info promises.  Each case is read in one slice,
 * one byte at a time and in random slices, and must fail the same way. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mig_format.h"
#include "test_util.h"

#define DEV 1u
#define IDSTR "0000:00:02.0/vfio"

/* ---- expectations ------------------------------------------------------- */
static const char *mode_name[3] = {"one slice", "byte by byte",
                                   "random slices"};

static void run3(const uint8_t *p, size_t len, const ms_options *opt,
                 tb_result r[3])
{
    tb_read_all(p, len, opt, &r[0]);
    tb_read_bytewise(p, len, opt, &r[1]);
    tb_read_random(p, len, opt, 0x5EED, 13, &r[2]);
}

/* The stream must fail with `code` at an offset in [lo, hi], whichever
 * way it is sliced. */
static void expect_err_(int line, const uint8_t *p, size_t len,
                        const ms_options *opt, ms_error code, uint64_t lo,
                        uint64_t hi)
{
    tb_result r[3];
    int bad = 0;
    run3(p, len, opt, r);
    for (int i = 0; i < 3; i++) {
        if (r[i].rc == 0) {
            print_message("line %d (%s): expected %s at [%llu,%llu], but the "
                          "%zu-byte stream verified\n",
                          line, mode_name[i], ms_error_name(code),
                          (unsigned long long)lo, (unsigned long long)hi, len);
            bad = 1;
        } else if (r[i].err.code != code || r[i].err.offset < lo ||
                   r[i].err.offset > hi) {
            print_message("line %d (%s): expected %s at [%llu,%llu], got %s "
                          "at %llu: %s\n",
                          line, mode_name[i], ms_error_name(code),
                          (unsigned long long)lo, (unsigned long long)hi,
                          ms_error_name(r[i].err.code),
                          (unsigned long long)r[i].err.offset,
                          r[i].err.detail);
            bad = 1;
        }
    }
    for (int i = 0; i < 3; i++)
        tb_result_free(&r[i]);
    if (bad)
        fail();
}

static void expect_ok_(int line, const uint8_t *p, size_t len,
                       const ms_options *opt)
{
    tb_result r[3];
    int bad = 0;
    run3(p, len, opt, r);
    for (int i = 0; i < 3; i++) {
        if (r[i].rc != 0) {
            print_message("line %d (%s): expected the %zu-byte stream to "
                          "verify, got %s at %llu: %s\n",
                          line, mode_name[i], len,
                          ms_error_name(r[i].err.code),
                          (unsigned long long)r[i].err.offset,
                          r[i].err.detail);
            bad = 1;
        }
    }
    for (int i = 0; i < 3; i++)
        tb_result_free(&r[i]);
    if (bad)
        fail();
}

#define EXPECT_ERR_AT(s, code, off)                                           \
    expect_err_(__LINE__, (s)->b.p, (s)->b.len, NULL, code, off, off)
#define EXPECT_ERR_IN(s, code, lo, hi)                                        \
    expect_err_(__LINE__, (s)->b.p, (s)->b.len, NULL, code, lo, hi)
#define EXPECT_OK(s) expect_ok_(__LINE__, (s)->b.p, (s)->b.len, NULL)

/* ---- stream scaffolding ------------------------------------------------- */
static void base(tb_stream *s)
{
    tb_stream_init(s);
    tb_header(s, tb_uuid_a, 0, 1);
    tb_device(s, DEV, IDSTR, MS_PAYLOAD_MLX5);
}

static const uint8_t img4[4] = {0xDE, 0xAD, 0xBE, 0xEF};

/* A record whose payload was built in p (and maybe edited). */
static size_t rec(tb_stream *s, uint32_t flags, uint32_t tag, tb_buf *p)
{
    size_t off = tb_record(s, flags, tag, p->p, p->len);
    tb_buf_free(p);
    return off;
}

/* Write a record header by hand claiming `size` payload bytes (header
 * check correct), with nothing after it. */
static size_t raw_header(tb_stream *s, uint64_t size, uint32_t flags,
                         uint32_t tag)
{
    uint8_t h[24];
    size_t off = s->b.len;
    tb_set_le64(h, size);
    tb_set_le32(h + 8, flags);
    tb_set_le32(h + 12, tag);
    tb_set_le64(h + 16, tb_hash_seed(h, 16, s->chain));
    tb_put(&s->b, h, 24);
    return off;
}

/* ---- valid streams ------------------------------------------------------ */
static void fmt_valid_minimal(void **state)
{
    (void)state;
    tb_stream s;
    tb_stream_init(&s);
    tb_header_ex(&s, tb_magic, 1, 0, 0, tb_uuid_a, 0, 1, 123456789ull, 0);
    uint64_t hdr_check = s.chain;
    size_t end_off = tb_end_auto(&s, 77);
    EXPECT_OK(&s);

    tb_result r;
    assert_int_equal(tb_read_all(s.b.p, s.b.len, NULL, &r), 0);
    assert_int_equal(r.n_events, 2);
    const ms_event *h = &r.events[0];
    assert_int_equal(h->kind, MS_EV_STREAM_HEADER);
    assert_int_equal(h->offset, 0);
    assert_int_equal(h->length, 64);
    assert_int_equal(h->u.stream.format, MS_FORMAT_MIGSTREAM);
    assert_int_equal(h->u.stream.version_major, 1);
    assert_int_equal(h->u.stream.version_minor, 0);
    assert_memory_equal(h->u.stream.uuid, tb_uuid_a, 16);
    assert_int_equal(h->u.stream.channel_index, 0);
    assert_int_equal(h->u.stream.channel_count, 1);
    assert_int_equal(h->u.stream.created_ns, 123456789ull);
    assert_int_equal(h->u.stream.header_check, hdr_check);
    const ms_event *e = &r.events[1];
    assert_int_equal(e->kind, MS_EV_END);
    assert_int_equal(e->offset, end_off);
    assert_int_equal(e->length, 24 + 48 + 8);
    assert_int_equal(e->u.end.record_count, 0);
    assert_int_equal(e->u.end.stream_bytes, 64);
    assert_int_equal(e->u.end.timestamp_ns, 77);
    assert_int_equal(e->u.end.final_check, s.chain);
    tb_result_free(&r);
    tb_stream_free(&s);
}

/* Every record kind, with its event fields. */
static void fmt_valid_all_records(void **state)
{
    (void)state;
    tb_stream s;
    uint8_t compat[5] = {1, 2, 3, 4, 5};
    uint8_t data[300], cfg[7] = {9, 8, 7, 6, 5, 4, 3};
    tb_fill_compressible(data, sizeof data, 3);
    tb_stream_init(&s);
    tb_header(&s, tb_uuid_a, 0, 1);
    size_t dev_off = tb_device_ex(&s, 7, 42, MS_PAYLOAD_VIRTIO, IDSTR, compat,
                                  sizeof compat);
    tb_device(&s, 8, "0000:00:03.0/vfio", MS_PAYLOAD_PDS);
    tb_precopy_info(&s, 7, 1, 1000, 200, 11);
    tb_state_change(&s, 7, 2, 3, 12);
    tb_stop_copy_size(&s, 7, 4096, 13);
    size_t ib_off = tb_image_begin(&s, 7, 0, 1, 0, 1, 14);
    size_t ch_off = tb_chunk(&s, 7, 0, 0, data, 100);
    tb_chunk(&s, 7, 0, 1, data + 100, 200);
    size_t ie_off =
        tb_image_end(&s, 7, 0, 300, tb_hash(data, 300), 2, 15, 0, 0);
    tb_image_begin(&s, 8, 0, 3, 1, 0, 16);
    tb_packet(&s, 8, 0, 0, 0, data, 50);
    tb_packet(&s, 8, 0, 1, 0, data + 50, 60);
    tb_packet(&s, 8, 0, 2, 1, cfg, sizeof cfg);
    tb_image_end(&s, 8, 0, 110, tb_hash(data, 110), 2, 17, sizeof cfg,
                 tb_hash(cfg, sizeof cfg));
    tb_end_auto(&s, 18);
    EXPECT_OK(&s);

    tb_result r;
    assert_int_equal(tb_read_all(s.b.p, s.b.len, NULL, &r), 0);
    const ms_event *e = tb_result_find(&r, MS_EV_DEVICE, 0);
    assert_non_null(e);
    assert_int_equal(e->offset, dev_off);
    assert_int_equal(e->length, 24 + 24 + strlen(IDSTR) + 5 + 8);
    assert_int_equal(e->u.device.handle, 7);
    assert_int_equal(e->u.device.instance_id, 42);
    assert_int_equal(e->u.device.payload_kind, MS_PAYLOAD_VIRTIO);
    assert_int_equal(e->u.device.idstr_len, strlen(IDSTR));
    assert_string_equal(e->u.device.idstr, IDSTR);
    assert_int_equal(e->u.device.compat_len, 5);
    assert_memory_equal(e->u.device.compat, compat, 5);
    e = tb_result_find(&r, MS_EV_PRECOPY_INFO, 0);
    assert_non_null(e);
    assert_int_equal(e->u.precopy.device, 7);
    assert_int_equal(e->u.precopy.flags, 1);
    assert_int_equal(e->u.precopy.initial_bytes, 1000);
    assert_int_equal(e->u.precopy.dirty_bytes, 200);
    assert_int_equal(e->u.precopy.timestamp_ns, 11);
    e = tb_result_find(&r, MS_EV_STATE_CHANGE, 0);
    assert_non_null(e);
    assert_int_equal(e->u.state.from, 2);
    assert_int_equal(e->u.state.to, 3);
    assert_int_equal(e->u.state.timestamp_ns, 12);
    e = tb_result_find(&r, MS_EV_STOP_COPY_SIZE, 0);
    assert_non_null(e);
    assert_int_equal(e->u.stop_copy.bytes, 4096);
    assert_int_equal(e->u.stop_copy.timestamp_ns, 13);
    e = tb_result_find(&r, MS_EV_IMAGE_BEGIN, 0);
    assert_non_null(e);
    assert_int_equal(e->offset, ib_off);
    assert_int_equal(e->length, 24 + 32 + 8);
    assert_int_equal(e->u.image.device, 7);
    assert_int_equal(e->u.image.phase, MS_PHASE_INITIAL);
    assert_int_equal(e->u.image.transport, MS_TRANSPORT_CHUNKS);
    assert_int_equal(e->u.image.flags, 1);
    assert_int_equal(e->u.image.timestamp_ns, 14);
    e = tb_result_find(&r, MS_EV_CHUNK, 0);
    assert_non_null(e);
    assert_int_equal(e->offset, ch_off);
    assert_int_equal(e->u.chunk.compression, MS_COMPRESSION_NONE);
    assert_int_equal(e->u.chunk.raw_len, 100);
    assert_int_equal(e->u.chunk.stored_len, 100);
    assert_int_equal(e->u.chunk.image_offset, 0);
    e = tb_result_find(&r, MS_EV_CHUNK, 1);
    assert_non_null(e);
    assert_int_equal(e->u.chunk.compression, MS_COMPRESSION_ZLIB);
    assert_int_equal(e->u.chunk.raw_len, 200);
    assert_true(e->u.chunk.stored_len < 200);
    assert_int_equal(e->u.chunk.image_offset, 100);
    e = tb_result_find(&r, MS_EV_IMAGE_END, 0);
    assert_non_null(e);
    assert_int_equal(e->offset, ie_off);
    assert_int_equal(e->u.image.length, 300);
    assert_int_equal(e->u.image.hash, tb_hash(data, 300));
    assert_int_equal(e->u.image.unit_count, 2);
    assert_int_equal(e->u.image.timestamp_ns, 15);
    assert_int_equal(tb_result_count(&r, MS_EV_PACKET), 3);
    e = tb_result_find(&r, MS_EV_PACKET, 2);
    assert_int_equal(e->u.packet.idx, 2);
    assert_int_equal(e->u.packet.config, 1);
    assert_int_equal(e->u.packet.size, sizeof cfg);
    e = tb_result_find(&r, MS_EV_IMAGE_END, 1);
    assert_int_equal(e->u.image.config_length, sizeof cfg);
    assert_int_equal(e->u.image.config_hash, tb_hash(cfg, sizeof cfg));
    e = tb_result_find(&r, MS_EV_END, 0);
    assert_non_null(e);
    assert_int_equal(e->u.end.record_count, s.record_count - 1);
    assert_int_equal(e->u.end.image_bytes, 300);
    assert_int_equal(e->u.end.packet_count, 3);
    assert_int_equal(e->u.end.device_count, 2);
    assert_int_equal(e->u.end.image_count, 2);
    tb_image *im = tb_result_image(&r, 7, 0);
    assert_non_null(im);
    assert_int_equal(im->data.len, 300);
    assert_memory_equal(im->data.p, data, 300);
    im = tb_result_image(&r, 8, 0);
    assert_non_null(im);
    /* the reader hands out packet bytes as DATA with in_packet (data
     * packets and the config packet, in stream order) */
    assert_int_equal(im->pkt.len, 110 + sizeof cfg);
    assert_memory_equal(im->pkt.p, data, 110);
    tb_result_free(&r);
    tb_stream_free(&s);
}

/* initial? middle* final? with every allowed shape. */
static void fmt_valid_phase_sequences(void **state)
{
    (void)state;
    static const uint8_t seqs[][4] = {
        {1, 2, 2, 3}, {2, 2, 3, 0}, {3, 0, 0, 0}, {1, 0, 0, 0}, {1, 3, 0, 0},
        {2, 0, 0, 0}};
    for (size_t k = 0; k < sizeof seqs / sizeof seqs[0]; k++) {
        tb_stream s;
        base(&s);
        for (uint32_t i = 0; i < 4 && seqs[k][i]; i++)
            tb_chunk_image(&s, DEV, i, seqs[k][i], img4, 4, 4, 0);
        tb_end_auto(&s, 0);
        EXPECT_OK(&s);
        tb_stream_free(&s);
    }
}

/* ---- truncated / missing-end / trailing-data ---------------------------- */
static void small_valid(tb_stream *s)
{
    base(s);
    tb_chunk_image(s, DEV, 0, 1, img4, 4, 4, 0);
    tb_end_auto(s, 0);
}

static void fmt_truncated(void **state)
{
    (void)state;
    tb_stream s;
    base(&s);
    size_t dev_end = s.b.len; /* a record boundary */
    size_t ib = tb_image_begin(&s, DEV, 0, 1, 0, 0, 0);
    tb_chunk(&s, DEV, 0, 0, img4, 4);
    tb_image_end(&s, DEV, 0, 4, tb_hash(img4, 4), 1, 0, 0, 0);
    tb_end_auto(&s, 0);
    /* inside the stream header, a record header, a payload and a payload
     * check: the offset is where the input ended */
    size_t cuts[] = {1, 8, 10, 63, dev_end + 1, dev_end + 23,
                     ib + 24 + 1, ib + 24 + 31, ib + 24 + 32 + 1,
                     ib + 24 + 32 + 7, s.b.len - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++)
        expect_err_(__LINE__, s.b.p, cuts[i], NULL, MS_ERR_TRUNCATED, cuts[i],
                    cuts[i]);
    tb_stream_free(&s);
}

static void fmt_missing_end(void **state)
{
    (void)state;
    tb_stream s;
    tb_stream_init(&s);
    tb_header(&s, tb_uuid_a, 0, 1);
    size_t cut_hdr = s.b.len;
    tb_device(&s, DEV, IDSTR, 0);
    size_t cut_dev = s.b.len;
    tb_chunk_image(&s, DEV, 0, 1, img4, 4, 4, 0);
    size_t cut_img = s.b.len;
    tb_end_auto(&s, 0);
    expect_err_(__LINE__, s.b.p, cut_hdr, NULL, MS_ERR_MISSING_END, cut_hdr,
                cut_hdr);
    expect_err_(__LINE__, s.b.p, cut_dev, NULL, MS_ERR_MISSING_END, cut_dev,
                cut_dev);
    expect_err_(__LINE__, s.b.p, cut_img, NULL, MS_ERR_MISSING_END, cut_img,
                cut_img);
    tb_stream_free(&s);
}

static void fmt_empty_input_fails(void **state)
{
    (void)state;
    ms_error_info e;
    /* zero bytes is not a stream (the spec does not name the error) */
    assert_int_equal(tb_verify((const uint8_t *)"", 0, NULL, &e), -1);
    ms_options o;
    ms_options_init(&o);
    o.format = MS_FORMAT_MIGSTREAM;
    assert_int_equal(tb_verify((const uint8_t *)"", 0, &o, &e), -1);
}

static void fmt_trailing_data(void **state)
{
    (void)state;
    tb_stream s;
    small_valid(&s);
    size_t n = s.b.len;
    tb_put_u8(&s.b, 0);
    EXPECT_ERR_AT(&s, MS_ERR_TRAILING_DATA, n);
    /* a whole second stream after END */
    s.b.len = n;
    tb_stream t;
    small_valid(&t);
    tb_put(&s.b, t.b.p, t.b.len);
    EXPECT_ERR_AT(&s, MS_ERR_TRAILING_DATA, n);
    tb_stream_free(&t);
    tb_stream_free(&s);
}

/* ---- magic -------------------------------------------------------------- */
static void fmt_bad_magic(void **state)
{
    (void)state;
    tb_stream s;
    tb_stream_init(&s);
    tb_header_ex(&s, (const uint8_t *)"ABCDEFGH", 1, 0, 0, tb_uuid_a, 0, 1, 0,
                 0);
    tb_end_auto(&s, 0);
    ms_options o;
    ms_options_init(&o);
    o.format = MS_FORMAT_MIGSTREAM;
    expect_err_(__LINE__, s.b.p, s.b.len, &o, MS_ERR_BAD_MAGIC, 0, 0);
    tb_stream_free(&s);

    /* the right first four bytes, then nothing like CR LF 1A LF */
    static const uint8_t m2[8] = {0x8D, 'M', 'I', 'G', 'x', 'y', 'z', 'w'};
    tb_stream_init(&s);
    tb_header_ex(&s, m2, 1, 0, 0, tb_uuid_a, 0, 1, 0, 0);
    tb_end_auto(&s, 0);
    expect_err_(__LINE__, s.b.p, s.b.len, &o, MS_ERR_BAD_MAGIC, 0, 0);
    tb_stream_free(&s);
}

/* Apply a byte transformation to a whole valid stream. */
static void crlf_to_lf(const tb_buf *in, tb_buf *out)
{
    for (size_t i = 0; i < in->len; i++) {
        if (in->p[i] == '\r' && i + 1 < in->len && in->p[i + 1] == '\n')
            continue;
        tb_put_u8(out, in->p[i]);
    }
}

static void lf_to_crlf(const tb_buf *in, tb_buf *out)
{
    for (size_t i = 0; i < in->len; i++) {
        if (in->p[i] == '\n')
            tb_put_u8(out, '\r');
        tb_put_u8(out, in->p[i]);
    }
}

static void fmt_magic_damaged(void **state)
{
    (void)state;
    tb_stream s;
    small_valid(&s);
    tb_buf d;
    tb_buf_init(&d);

    crlf_to_lf(&s.b, &d);
    assert_memory_equal(d.p, "\x8DMIG\n\x1A\n", 7);
    expect_err_(__LINE__, d.p, d.len, NULL, MS_ERR_MAGIC_DAMAGED, 0, 0);

    tb_buf_reset(&d);
    lf_to_crlf(&s.b, &d);
    assert_memory_equal(d.p, "\x8DMIG\r\r\n\x1A", 8);
    expect_err_(__LINE__, d.p, d.len, NULL, MS_ERR_MAGIC_DAMAGED, 0, 0);

    /* 7-bit transfer: the first byte loses its high bit */
    tb_buf_copy(&d, &s.b);
    d.p[0] = 0x0D;
    expect_err_(__LINE__, d.p, d.len, NULL, MS_ERR_MAGIC_DAMAGED, 0, 0);
    /* ... and so does every byte */
    for (size_t i = 0; i < d.len; i++)
        d.p[i] &= 0x7F;
    expect_err_(__LINE__, d.p, d.len, NULL, MS_ERR_MAGIC_DAMAGED, 0, 0);

    /* forcing the format changes nothing */
    ms_options o;
    ms_options_init(&o);
    o.format = MS_FORMAT_MIGSTREAM;
    tb_buf_reset(&d);
    crlf_to_lf(&s.b, &d);
    expect_err_(__LINE__, d.p, d.len, &o, MS_ERR_MAGIC_DAMAGED, 0, 0);
    tb_buf_free(&d);
    tb_stream_free(&s);
}

/* ---- stream header fields ----------------------------------------------- */
static void header_case(int line, uint16_t major, uint16_t minor,
                        uint32_t flags, uint32_t index, uint32_t count,
                        uint64_t reserved, ms_error code, uint64_t off)
{
    tb_stream s;
    tb_stream_init(&s);
    tb_header_ex(&s, tb_magic, major, minor, flags, tb_uuid_a, index, count,
                 0, reserved);
    tb_end_auto(&s, 0);
    if (code == MS_ERR_OK)
        expect_ok_(line, s.b.p, s.b.len, NULL);
    else
        expect_err_(line, s.b.p, s.b.len, NULL, code, off, off);
    tb_stream_free(&s);
}

static void fmt_version(void **state)
{
    (void)state;
    header_case(__LINE__, 3, 0, 0, 0, 1, 0, MS_ERR_VERSION, 8);
    header_case(__LINE__, 0, 0, 0, 0, 1, 0, MS_ERR_VERSION, 8);
    header_case(__LINE__, 0xFFFF, 0, 0, 0, 1, 0, MS_ERR_VERSION, 8);
}

static void fmt_header_check(void **state)
{
    (void)state;
    tb_stream s;
    small_valid(&s);
    s.b.p[56] ^= 0x01;
    EXPECT_ERR_AT(&s, MS_ERR_HEADER_CHECK, 56);
    s.b.p[56] ^= 0x01;
    s.b.p[63] ^= 0x80;
    EXPECT_ERR_AT(&s, MS_ERR_HEADER_CHECK, 56);
    s.b.p[63] ^= 0x80;
    /* a covered byte that has no rule of its own (created_ns) */
    s.b.p[41] ^= 0x10;
    EXPECT_ERR_AT(&s, MS_ERR_HEADER_CHECK, 56);
    s.b.p[41] ^= 0x10;
    /* the uuid */
    s.b.p[20] ^= 0x04;
    EXPECT_ERR_AT(&s, MS_ERR_HEADER_CHECK, 56);
    s.b.p[20] ^= 0x04;
    EXPECT_OK(&s);
    tb_stream_free(&s);
}

static void fmt_header_fields(void **state)
{
    (void)state;
    /* header_flags reserved */
    header_case(__LINE__, 1, 0, 1, 0, 1, 0, MS_ERR_HEADER_FIELD, 12);
    header_case(__LINE__, 1, 0, 0x80000000u, 0, 1, 0, MS_ERR_HEADER_FIELD,
                12);
    /* reserved at 48 */
    header_case(__LINE__, 1, 0, 0, 0, 1, 1, MS_ERR_HEADER_FIELD, 48);
    header_case(__LINE__, 1, 0, 0, 0, 1, 1ull << 63, MS_ERR_HEADER_FIELD, 48);
    /* channel_count 0 */
    header_case(__LINE__, 1, 0, 0, 0, 0, 0, MS_ERR_HEADER_FIELD, 36);
    /* channel_index >= channel_count: the channel_index field's rule */
    header_case(__LINE__, 1, 0, 0, 1, 1, 0, MS_ERR_HEADER_FIELD, 32);
    header_case(__LINE__, 1, 0, 0, 7, 3, 0, MS_ERR_HEADER_FIELD, 32);
    /* and the valid edges */
    header_case(__LINE__, 1, 0, 0, 2, 3, 0, MS_ERR_OK, 0);
}

/* Section 1 / 3: any minor version is accepted, and a reserved field that
 * is non-zero in a stream whose minor version is above the reader's is
 * ignored. */
static void fmt_minor_version_reserved_ignored(void **state)
{
    (void)state;
    header_case(__LINE__, 1, 1, 0, 0, 1, 0, MS_ERR_OK, 0);
    header_case(__LINE__, 1, 0xFFFF, 0, 0, 1, 0, MS_ERR_OK, 0);
    header_case(__LINE__, 1, 1, 0x4, 0, 1, 0, MS_ERR_OK, 0);
    header_case(__LINE__, 1, 1, 0, 0, 1, 0x55, MS_ERR_OK, 0);

    /* reserved payload fields too */
    tb_stream s;
    tb_stream_init(&s);
    tb_header_ex(&s, tb_magic, 1, 1, 0x8, tb_uuid_a, 0, 1, 0, 9);
    tb_buf p;
    tb_buf_init(&p);
    tbp_device(&p, DEV, 0, 0, 0x40 /* flags (reserved) */, IDSTR,
               strlen(IDSTR), NULL, 0);
    rec(&s, 0, MIG_TAG_DEVICE, &p);
    tb_buf_init(&p);
    tbp_image_begin(&p, DEV, 0, 1, 0, 0, 0);
    p.p[10] = 0x12;         /* reserved le16 */
    tb_set_le64(p.p + 24, 3); /* reserved le64 */
    rec(&s, 0, MIG_TAG_IMAGE_BEGIN, &p);
    tb_buf_init(&p);
    tbp_chunk(&p, DEV, 0, 0, 4, img4, 4);
    p.p[9] = 1; /* reserved 3 bytes */
    p.p[11] = 2;
    rec(&s, 0, MIG_TAG_CHUNK, &p);
    tb_image_end(&s, DEV, 0, 4, tb_hash(img4, 4), 1, 0, 0, 0);
    tb_buf_init(&p);
    tbp_state_change(&p, DEV, 1, 2, 0);
    tb_set_le32(p.p + 12, 5); /* reserved */
    rec(&s, 1, MIG_TAG_STATE_CHANGE, &p);
    tb_buf_init(&p);
    tbp_stop_copy_size(&p, DEV, 10, 0);
    tb_set_le32(p.p + 4, 6); /* reserved */
    rec(&s, 1, MIG_TAG_STOP_COPY_SIZE, &p);
    tb_image_begin(&s, DEV, 1, 2, 1, 0, 0);
    tb_buf_init(&p);
    tbp_packet(&p, DEV, 1, 0, 0, img4, 4);
    tb_set_le64(p.p + 16, 7); /* reserved */
    rec(&s, 0, MIG_TAG_PACKET, &p);
    tb_packet(&s, DEV, 1, 1, 1, NULL, 0);
    tb_image_end(&s, DEV, 1, 4, tb_hash(img4, 4), 1, 0, 0, tb_hash("", 0));
    tb_end_auto(&s, 0);
    EXPECT_OK(&s);

    tb_result r;
    assert_int_equal(tb_read_all(s.b.p, s.b.len, NULL, &r), 0);
    assert_int_equal(r.events[0].u.stream.version_minor, 1);
    tb_result_free(&r);

    /* the same stream as minor 0 is rejected (reserved field non-zero):
     * header_flags at 12 is the first offender */
    tb_buf_copy(&p, &s.b);
    tb_set_le16(p.p + 10, 0);
    tb_stream t;
    tb_stream_init(&t);
    tb_buf_copy(&t.b, &p);
    tb_header_refresh(&t); /* chain of later records now broken too, but
                              the header is looked at first */
    EXPECT_ERR_AT(&t, MS_ERR_HEADER_FIELD, 12);
    tb_stream_free(&t);
    tb_buf_free(&p);
    tb_stream_free(&s);
}

/* ---- record framing ----------------------------------------------------- */
static void fmt_record_check(void **state)
{
    (void)state;
    tb_stream s;
    base(&s);
    size_t ib = tb_image_begin(&s, DEV, 0, 1, 0, 0, 0);
    tb_chunk(&s, DEV, 0, 0, img4, 4);
    tb_image_end(&s, DEV, 0, 4, tb_hash(img4, 4), 1, 0, 0, 0);
    tb_end_auto(&s, 0);
    /* flip each of the 24 header bytes' low bit: the size is not trusted
     * before the check; the error names the record's first byte */
    for (size_t k = 0; k < 24; k++) {
        s.b.p[ib + k] ^= 0x01;
        EXPECT_ERR_AT(&s, MS_ERR_RECORD_CHECK, ib);
        s.b.p[ib + k] ^= 0x01;
    }
    /* a huge size in a header that fails its check is not believed */
    tb_set_le64(s.b.p + ib, 1ull << 62);
    EXPECT_ERR_AT(&s, MS_ERR_RECORD_CHECK, ib);
    tb_stream_free(&s);
}

/* The chain catches a dropped, repeated or moved record at the next
 * header. */
static void fmt_record_chain(void **state)
{
    (void)state;
    tb_stream s;
    base(&s);
    size_t a = tb_precopy_info(&s, DEV, 0, 1, 1, 1);
    size_t b = tb_precopy_info(&s, DEV, 0, 2, 2, 2);
    size_t c = tb_precopy_info(&s, DEV, 0, 3, 3, 3);
    size_t d = tb_end_auto(&s, 0);
    size_t rl = b - a; /* all three have the same length */
    tb_buf t;
    tb_buf_init(&t);

    /* drop B: C now follows A, its header check is chained from B */
    tb_put(&t, s.b.p, b);
    tb_put(&t, s.b.p + c, s.b.len - c);
    expect_err_(__LINE__, t.p, t.len, NULL, MS_ERR_RECORD_CHECK, b, b);

    /* repeat B */
    tb_buf_reset(&t);
    tb_put(&t, s.b.p, c);
    tb_put(&t, s.b.p + b, rl);
    tb_put(&t, s.b.p + c, s.b.len - c);
    expect_err_(__LINE__, t.p, t.len, NULL, MS_ERR_RECORD_CHECK, c, c);

    /* swap B and C */
    tb_buf_reset(&t);
    tb_put(&t, s.b.p, b);
    tb_put(&t, s.b.p + c, rl);
    tb_put(&t, s.b.p + b, rl);
    tb_put(&t, s.b.p + d, s.b.len - d);
    expect_err_(__LINE__, t.p, t.len, NULL, MS_ERR_RECORD_CHECK, b, b);

    /* drop the last record before END */
    tb_buf_reset(&t);
    tb_put(&t, s.b.p, c);
    tb_put(&t, s.b.p + d, s.b.len - d);
    expect_err_(__LINE__, t.p, t.len, NULL, MS_ERR_RECORD_CHECK, c, c);
    tb_buf_free(&t);
    tb_stream_free(&s);
}

static void fmt_payload_check(void **state)
{
    (void)state;
    tb_stream s;
    base(&s);
    size_t ib = tb_image_begin(&s, DEV, 0, 1, 0, 0, 0);
    size_t ch = tb_chunk(&s, DEV, 0, 0, img4, 4);
    tb_image_end(&s, DEV, 0, 4, tb_hash(img4, 4), 1, 0, 0, 0);
    tb_end_auto(&s, 0);
    /* a payload byte: the error names the payload check's offset */
    s.b.p[ib + 24 + 20] ^= 0x01; /* timestamp of IMAGE_BEGIN */
    EXPECT_ERR_AT(&s, MS_ERR_PAYLOAD_CHECK, ib + 24 + 32);
    s.b.p[ib + 24 + 20] ^= 0x01;
    /* the check itself */
    s.b.p[ib + 24 + 32 + 3] ^= 0x20;
    EXPECT_ERR_AT(&s, MS_ERR_PAYLOAD_CHECK, ib + 24 + 32);
    s.b.p[ib + 24 + 32 + 3] ^= 0x20;
    /* image data inside a chunk */
    s.b.p[ch + 24 + 16 + 2] ^= 0x40;
    EXPECT_ERR_AT(&s, MS_ERR_PAYLOAD_CHECK, ch + 24 + 16 + 4);
    s.b.p[ch + 24 + 16 + 2] ^= 0x40;
    EXPECT_OK(&s);
    tb_stream_free(&s);
}

static void fmt_record_flags(void **state)
{
    (void)state;
    tb_stream s;
    tb_buf p;

    /* known mandatory tag written optional */
    base(&s);
    tb_buf_init(&p);
    tbp_image_begin(&p, DEV, 0, 1, 0, 0, 0);
    size_t off = rec(&s, MIG_FLAG_OPTIONAL, MIG_TAG_IMAGE_BEGIN, &p);
    EXPECT_ERR_AT(&s, MS_ERR_RECORD_FLAGS, off);
    tb_stream_free(&s);

    tb_stream_init(&s);
    tb_header(&s, tb_uuid_a, 0, 1);
    tb_buf_init(&p);
    tbp_device(&p, DEV, 0, 0, 0, IDSTR, strlen(IDSTR), NULL, 0);
    off = rec(&s, MIG_FLAG_OPTIONAL, MIG_TAG_DEVICE, &p);
    EXPECT_ERR_AT(&s, MS_ERR_RECORD_FLAGS, off);
    tb_stream_free(&s);

    /* END written optional */
    tb_stream_init(&s);
    tb_header(&s, tb_uuid_a, 0, 1);
    tb_buf_init(&p);
    tbp_end(&p, 0, 64, 0, 0, 0, 0, 0);
    off = rec(&s, MIG_FLAG_OPTIONAL, MIG_TAG_END, &p);
    EXPECT_ERR_AT(&s, MS_ERR_RECORD_FLAGS, off);
    tb_stream_free(&s);

    /* known optional tags written mandatory */
    base(&s);
    tb_buf_init(&p);
    tbp_precopy_info(&p, DEV, 0, 1, 2, 3);
    off = rec(&s, 0, MIG_TAG_PRECOPY_INFO, &p);
    EXPECT_ERR_AT(&s, MS_ERR_RECORD_FLAGS, off);
    tb_stream_free(&s);

    base(&s);
    tb_buf_init(&p);
    tbp_state_change(&p, DEV, 1, 2, 3);
    off = rec(&s, 0, MIG_TAG_STATE_CHANGE, &p);
    EXPECT_ERR_AT(&s, MS_ERR_RECORD_FLAGS, off);
    tb_stream_free(&s);

    base(&s);
    tb_buf_init(&p);
    tbp_stop_copy_size(&p, DEV, 1, 3);
    off = rec(&s, 0, MIG_TAG_STOP_COPY_SIZE, &p);
    EXPECT_ERR_AT(&s, MS_ERR_RECORD_FLAGS, off);
    tb_stream_free(&s);

    /* reserved flag bits on a known tag */
    base(&s);
    tb_buf_init(&p);
    tbp_image_begin(&p, DEV, 0, 1, 0, 0, 0);
    off = rec(&s, 0x2, MIG_TAG_IMAGE_BEGIN, &p);
    EXPECT_ERR_AT(&s, MS_ERR_RECORD_FLAGS, off);
    tb_stream_free(&s);

    base(&s);
    tb_buf_init(&p);
    tbp_precopy_info(&p, DEV, 0, 1, 2, 3);
    off = rec(&s, 0x80000001u, MIG_TAG_PRECOPY_INFO, &p);
    EXPECT_ERR_AT(&s, MS_ERR_RECORD_FLAGS, off);
    tb_stream_free(&s);
}

static void fmt_unknown_mandatory(void **state)
{
    (void)state;
    static const uint32_t tags[] = {0x0000, 0x0006, 0x0013, 0x0100,
                                    0x7FFFFFFFu, 0x80000000u, 0x80000001u,
                                    0xFFFFFFFFu};
    uint8_t pl[10] = {0};
    for (size_t i = 0; i < sizeof tags / sizeof tags[0]; i++) {
        tb_stream s;
        base(&s);
        size_t off = tb_record(&s, 0, tags[i], pl, sizeof pl);
        tb_end_auto(&s, 0);
        EXPECT_ERR_AT(&s, MS_ERR_UNKNOWN_MANDATORY, off);
        tb_stream_free(&s);
    }
}

static void fmt_unknown_optional_skipped(void **state)
{
    (void)state;
    tb_stream s;
    uint8_t pl[33];
    tb_fill_random(pl, sizeof pl, 1);
    base(&s);
    tb_record(&s, MIG_FLAG_OPTIONAL, 0x80000001u, pl, sizeof pl);
    tb_record(&s, MIG_FLAG_OPTIONAL, 0x0100, pl, 10);
    tb_chunk_image(&s, DEV, 0, 1, img4, 4, 4, 0);
    tb_record(&s, MIG_FLAG_OPTIONAL, 0xFFFFFFFFu, NULL, 0);
    tb_record(&s, MIG_FLAG_OPTIONAL, 0x0006, pl, 1);
    tb_end_auto(&s, 0);
    EXPECT_OK(&s);

    tb_result r;
    assert_int_equal(tb_read_all(s.b.p, s.b.len, NULL, &r), 0);
    size_t unknown = 0;
    for (size_t i = 0; i < r.n_events; i++)
        if (r.events[i].kind == MS_EV_RECORD && !r.events[i].u.record.known)
            unknown++;
    assert_int_equal(unknown, 4);
    const ms_event *e = tb_result_find(&r, MS_EV_RECORD, 0);
    assert_non_null(e);
    assert_int_equal(e->u.record.tag, 0x80000001u);
    assert_int_equal(e->u.record.size, 33);
    assert_int_equal(e->u.record.flags, MIG_FLAG_OPTIONAL);
    tb_image *im = tb_result_image(&r, DEV, 0);
    assert_non_null(im);
    assert_int_equal(im->data.len, 4);
    tb_result_free(&r);

    /* an unknown record's checks are still verified */
    tb_stream t;
    base(&t);
    size_t u = tb_record(&t, MIG_FLAG_OPTIONAL, 0x80000001u, pl, sizeof pl);
    tb_end_auto(&t, 0);
    t.b.p[u + 24 + 5] ^= 1;
    EXPECT_ERR_AT(&t, MS_ERR_PAYLOAD_CHECK, u + 24 + sizeof pl);
    t.b.p[u + 24 + 5] ^= 1;
    t.b.p[u + 3] ^= 1;
    EXPECT_ERR_AT(&t, MS_ERR_RECORD_CHECK, u);
    tb_stream_free(&t);
    tb_stream_free(&s);
}

/* ---- record-size -------------------------------------------------------- */
/* A fixed-size record with its payload cut or padded by one byte. */
static void size_case(int line, uint32_t tag, uint32_t flags, int delta,
                      int with_open_image)
{
    tb_stream s;
    tb_buf p;
    base(&s);
    if (with_open_image)
        tb_image_begin(&s, DEV, 0, 1, 0, 0, 0);
    tb_buf_init(&p);
    switch (tag) {
    case MIG_TAG_IMAGE_BEGIN: tbp_image_begin(&p, DEV, 0, 1, 0, 0, 0); break;
    case MIG_TAG_IMAGE_END:
        tbp_image_end(&p, DEV, 0, 0, tb_hash("", 0), 0, 0, 0, 0);
        break;
    case MIG_TAG_PRECOPY_INFO: tbp_precopy_info(&p, DEV, 0, 1, 1, 1); break;
    case MIG_TAG_STATE_CHANGE: tbp_state_change(&p, DEV, 1, 2, 3); break;
    case MIG_TAG_STOP_COPY_SIZE: tbp_stop_copy_size(&p, DEV, 1, 2); break;
    case MIG_TAG_END: tbp_end(&p, s.record_count, s.b.len, 0, 0, 1, 0, 0);
        break;
    default: fail();
    }
    if (delta < 0)
        p.len -= (size_t)(-delta);
    else
        tb_put_zeros(&p, (size_t)delta);
    size_t off = rec(&s, flags, tag, &p);
    tb_end_auto(&s, 0);
    expect_err_(line, s.b.p, s.b.len, NULL, MS_ERR_RECORD_SIZE, off, off);
    tb_stream_free(&s);
}

static void fmt_record_size_fixed(void **state)
{
    (void)state;
    size_case(__LINE__, MIG_TAG_IMAGE_BEGIN, 0, -1, 0);
    size_case(__LINE__, MIG_TAG_IMAGE_BEGIN, 0, +1, 0);
    size_case(__LINE__, MIG_TAG_IMAGE_END, 0, -1, 1);
    size_case(__LINE__, MIG_TAG_IMAGE_END, 0, +8, 1);
    size_case(__LINE__, MIG_TAG_PRECOPY_INFO, 1, -1, 0);
    size_case(__LINE__, MIG_TAG_PRECOPY_INFO, 1, +1, 0);
    size_case(__LINE__, MIG_TAG_STATE_CHANGE, 1, +1, 0);
    size_case(__LINE__, MIG_TAG_STOP_COPY_SIZE, 1, -1, 0);
    size_case(__LINE__, MIG_TAG_END, 0, -1, 0);
    size_case(__LINE__, MIG_TAG_END, 0, +1, 0);
    /* an empty END */
    tb_stream s;
    tb_stream_init(&s);
    tb_header(&s, tb_uuid_a, 0, 1);
    size_t off = tb_record(&s, 0, MIG_TAG_END, NULL, 0);
    EXPECT_ERR_AT(&s, MS_ERR_RECORD_SIZE, off);
    tb_stream_free(&s);
}

static void fmt_record_size_device(void **state)
{
    (void)state;
    tb_stream s;
    tb_buf p;
    /* shorter than the fixed part */
    tb_stream_init(&s);
    tb_header(&s, tb_uuid_a, 0, 1);
    tb_buf_init(&p);
    tbp_device(&p, DEV, 0, 0, 0, NULL, 0, NULL, 0);
    p.len = 23;
    size_t off = rec(&s, 0, MIG_TAG_DEVICE, &p);
    tb_end_auto(&s, 0);
    EXPECT_ERR_AT(&s, MS_ERR_RECORD_SIZE, off);
    tb_stream_free(&s);
    /* one byte more than 24 + idstr_len + compat_len */
    tb_stream_init(&s);
    tb_header(&s, tb_uuid_a, 0, 1);
    tb_buf_init(&p);
    tbp_device(&p, DEV, 0, 0, 0, IDSTR, strlen(IDSTR), "ab", 2);
    tb_put_u8(&p, 'c');
    off = rec(&s, 0, MIG_TAG_DEVICE, &p);
    tb_end_auto(&s, 0);
    EXPECT_ERR_AT(&s, MS_ERR_RECORD_SIZE, off);
    tb_stream_free(&s);
    /* one byte less */
    tb_stream_init(&s);
    tb_header(&s, tb_uuid_a, 0, 1);
    tb_buf_init(&p);
    tbp_device(&p, DEV, 0, 0, 0, IDSTR, strlen(IDSTR), "ab", 2);
    p.len--;
    off = rec(&s, 0, MIG_TAG_DEVICE, &p);
    tb_end_auto(&s, 0);
    EXPECT_ERR_AT(&s, MS_ERR_RECORD_SIZE, off);
    tb_stream_free(&s);
}

static void fmt_record_size_chunk(void **state)
{
    (void)state;
    tb_stream s;
    tb_buf p;
    /* shorter than the chunk prefix */
    base(&s);
    tb_image_begin(&s, DEV, 0, 1, 0, 0, 0);
    tb_buf_init(&p);
    tbp_chunk(&p, DEV, 0, 0, 0, NULL, 0);
    p.len = 15;
    size_t off = rec(&s, 0, MIG_TAG_CHUNK, &p);
    tb_end_auto(&s, 0);
    EXPECT_ERR_AT(&s, MS_ERR_RECORD_SIZE, off);
    tb_stream_free(&s);
    /* uncompressed: size - 16 != raw_len, both ways */
    for (int d = -1; d <= 1; d += 2) {
        base(&s);
        tb_image_begin(&s, DEV, 0, 1, 0, 0, 0);
        tb_buf_init(&p);
        tbp_chunk(&p, DEV, 0, 0, (uint32_t)(4 + d), img4, 4);
        off = rec(&s, 0, MIG_TAG_CHUNK, &p);
        tb_image_end(&s, DEV, 0, 4, tb_hash(img4, 4), 1, 0, 0, 0);
        tb_end_auto(&s, 0);
        EXPECT_ERR_AT(&s, MS_ERR_RECORD_SIZE, off);
        tb_stream_free(&s);
    }
}

static void fmt_record_size_packet(void **state)
{
    (void)state;
    tb_stream s;
    tb_buf p;
    /* shorter than the packet prefix */
    base(&s);
    tb_image_begin(&s, DEV, 0, 1, 1, 0, 0);
    tb_buf_init(&p);
    tbp_packet(&p, DEV, 0, 0, 0, NULL, 0);
    p.len = 23;
    size_t off = rec(&s, 0, MIG_TAG_PACKET, &p);
    tb_end_auto(&s, 0);
    EXPECT_ERR_AT(&s, MS_ERR_RECORD_SIZE, off);
    tb_stream_free(&s);
    /* an empty data packet */
    base(&s);
    tb_image_begin(&s, DEV, 0, 1, 1, 0, 0);
    off = tb_packet(&s, DEV, 0, 0, 0, NULL, 0);
    tb_packet(&s, DEV, 0, 1, 1, NULL, 0);
    tb_image_end(&s, DEV, 0, 0, tb_hash("", 0), 1, 0, 0, tb_hash("", 0));
    tb_end_auto(&s, 0);
    EXPECT_ERR_AT(&s, MS_ERR_RECORD_SIZE, off);
    tb_stream_free(&s);
    /* while an empty config packet is fine */
    base(&s);
    tb_image_begin(&s, DEV, 0, 1, 1, 0, 0);
    tb_packet(&s, DEV, 0, 0, 0, img4, 4);
    tb_packet(&s, DEV, 0, 1, 1, NULL, 0);
    tb_image_end(&s, DEV, 0, 4, tb_hash(img4, 4), 1, 0, 0, tb_hash("", 0));
    tb_end_auto(&s, 0);
    EXPECT_OK(&s);
    tb_stream_free(&s);
}

/* ---- bad-field ---------------------------------------------------------- */
/* A DEVICE record must give `code` at off_in_payload (or anywhere in the
 * record when off_in_payload < 0); MS_ERR_OK: must verify. */

static void device_case(int line, uint32_t handle, uint32_t kind,
                        uint32_t flags, const void *idstr, uint32_t idlen,
                        ms_error code, long off_in_payload)
{
    tb_stream s;
    tb_buf p;
    tb_stream_init(&s);
    tb_header(&s, tb_uuid_a, 0, 1);
    tb_buf_init(&p);
    tbp_device(&p, handle, 0, kind, flags, idstr, idlen, NULL, 0);
    size_t off = rec(&s, 0, MIG_TAG_DEVICE, &p);
    size_t len = s.last_len;
    tb_end_auto(&s, 0);
    if (code == MS_ERR_OK)
        expect_ok_(line, s.b.p, s.b.len, NULL);
    else if (off_in_payload >= 0)
        expect_err_(line, s.b.p, s.b.len, NULL, code,
                    off + 24 + (size_t)off_in_payload,
                    off + 24 + (size_t)off_in_payload);
    else
        expect_err_(line, s.b.p, s.b.len, NULL, code, off, off + len - 1);
    tb_stream_free(&s);
}

static void fmt_bad_field_device(void **state)
{
    (void)state;
    /* flags (reserved) */
    device_case(__LINE__, DEV, 0, 1, IDSTR, strlen(IDSTR), MS_ERR_BAD_FIELD,
                12);
    /* payload_kind above 6 */
    device_case(__LINE__, DEV, 7, 0, IDSTR, strlen(IDSTR), MS_ERR_BAD_FIELD,
                8);
    device_case(__LINE__, DEV, 0xFFFFFFFFu, 0, IDSTR, strlen(IDSTR),
                MS_ERR_BAD_FIELD, 8);
    /* idstr containing a NUL byte */
    device_case(__LINE__, DEV, 0, 0, "ab\0cd", 5, MS_ERR_BAD_FIELD, -1);
    device_case(__LINE__, DEV, 0, 0, "abcd\0", 5, MS_ERR_BAD_FIELD, -1);
    /* every kind 0..6 is valid */
    for (uint32_t k = 0; k <= 6; k++)
        device_case(__LINE__, DEV, k, 0, IDSTR, strlen(IDSTR), MS_ERR_OK, 0);
}

/* Section 8, bad-field: "empty or NUL-containing idstr".  A DEVICE payload
 * of 24 bytes with idstr_len 0 and compat_len 0 has the size 5.1 gives
 * (24 + idstr_len + compat_len), so the error is bad-field, not
 * record-size. */
static void fmt_bad_field_device_empty_idstr(void **state)
{
    (void)state;
    device_case(__LINE__, DEV, 0, 0, "", 0, MS_ERR_BAD_FIELD, -1);
}

/* Device handle 0xFFFFFFFF is not allowed (5): bad-field at the handle. */
static void fmt_device_handle_invalid(void **state)
{
    (void)state;
    tb_stream s;
    tb_stream_init(&s);
    tb_header(&s, tb_uuid_a, 0, 1);
    tb_device(&s, MIG_DEVICE_HANDLE_INVALID, IDSTR, 0);
    tb_end_auto(&s, 0);
    expect_err_(__LINE__, s.b.p, s.b.len, NULL, MS_ERR_BAD_FIELD,
                MIG_HDR_SIZE + MIG_REC_HDR_SIZE,
                MIG_HDR_SIZE + MIG_REC_HDR_SIZE);
    tb_stream_free(&s);
}

/* An IMAGE_BEGIN with one byte changed. */
static void begin_case(int line, size_t at, uint8_t v, size_t field)
{
    tb_stream s;
    tb_buf p;
    base(&s);
    tb_buf_init(&p);
    tbp_image_begin(&p, DEV, 0, 1, 0, 0, 0);
    p.p[at] = v;
    size_t off = rec(&s, 0, MIG_TAG_IMAGE_BEGIN, &p);
    tb_end_auto(&s, 0);
    expect_err_(line, s.b.p, s.b.len, NULL, MS_ERR_BAD_FIELD,
                off + 24 + field, off + 24 + field);
    tb_stream_free(&s);
}

static void fmt_bad_field_image_begin(void **state)
{
    (void)state;
    begin_case(__LINE__, 8, 0, 8);     /* phase 0 */
    begin_case(__LINE__, 8, 4, 8);     /* phase 4 */
    begin_case(__LINE__, 8, 0xFF, 8);  /* phase 255 */
    begin_case(__LINE__, 9, 2, 9);     /* transport 2 */
    begin_case(__LINE__, 10, 1, 10);   /* reserved le16 */
    begin_case(__LINE__, 11, 0x80, 10); /* its high byte */
    begin_case(__LINE__, 12, 2, 12);   /* flags bit 1 (reserved) */
    begin_case(__LINE__, 15, 0x80, 12); /* flags bit 31 */
    begin_case(__LINE__, 24, 1, 24);   /* reserved le64 */
    begin_case(__LINE__, 31, 0x80, 24);
}

static void fmt_bad_field_chunk(void **state)
{
    (void)state;
    for (int k = 0; k < 3; k++) {
        tb_stream s;
        tb_buf p;
        base(&s);
        tb_image_begin(&s, DEV, 0, 1, 0, 0, 0);
        tb_buf_init(&p);
        tbp_chunk(&p, DEV, 0, 0, 4, img4, 4);
        size_t field;
        if (k == 0) {
            p.p[8] = 2; /* compression 2 */
            field = 8;
        } else if (k == 1) {
            p.p[9] = 1; /* reserved */
            field = 9;
        } else {
            p.p[8] = 0xFF;
            field = 8;
        }
        size_t off = rec(&s, 0, MIG_TAG_CHUNK, &p);
        tb_image_end(&s, DEV, 0, 4, tb_hash(img4, 4), 1, 0, 0, 0);
        tb_end_auto(&s, 0);
        EXPECT_ERR_AT(&s, MS_ERR_BAD_FIELD, off + 24 + field);
        tb_stream_free(&s);
    }
    /* raw_len 0 (must be > 0): bad-field (section 8) */
    tb_stream s;
    base(&s);
    tb_image_begin(&s, DEV, 0, 1, 0, 0, 0);
    tb_buf p;
    tb_buf_init(&p);
    tbp_chunk(&p, DEV, 0, 0, 0, NULL, 0);
    rec(&s, 0, MIG_TAG_CHUNK, &p);
    tb_image_end(&s, DEV, 0, 0, tb_hash("", 0), 1, 0, 0, 0);
    tb_end_auto(&s, 0);
    expect_err_(__LINE__, s.b.p, s.b.len, NULL, MS_ERR_BAD_FIELD, 0, s.b.len);
    tb_stream_free(&s);
}

static void fmt_bad_field_packet(void **state)
{
    (void)state;
    for (int k = 0; k < 2; k++) {
        tb_stream s;
        tb_buf p;
        base(&s);
        tb_image_begin(&s, DEV, 0, 1, 1, 0, 0);
        tb_buf_init(&p);
        tbp_packet(&p, DEV, 0, 0, 0, img4, 4);
        size_t field = k == 0 ? 12 : 16;
        if (k == 0)
            tb_set_le32(p.p + 12, 2); /* flags bit 1 reserved */
        else
            tb_set_le64(p.p + 16, 1); /* reserved */
        size_t off = rec(&s, 0, MIG_TAG_PACKET, &p);
        tb_end_auto(&s, 0);
        EXPECT_ERR_AT(&s, MS_ERR_BAD_FIELD, off + 24 + field);
        tb_stream_free(&s);
    }
}

static void fmt_bad_field_optional_records(void **state)
{
    (void)state;
    struct {
        uint32_t tag;
        size_t at, field;
        uint32_t v;
    } cases[] = {
        {MIG_TAG_STATE_CHANGE, 4, 4, 8},          /* from_state 8 */
        {MIG_TAG_STATE_CHANGE, 8, 8, 8},          /* to_state 8 */
        {MIG_TAG_STATE_CHANGE, 8, 8, 0xFFFFFFFFu}, /* to_state */
        {MIG_TAG_STATE_CHANGE, 12, 12, 1},        /* reserved */
        {MIG_TAG_STOP_COPY_SIZE, 4, 4, 1},        /* reserved */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tb_stream s;
        tb_buf p;
        base(&s);
        tb_buf_init(&p);
        if (cases[i].tag == MIG_TAG_STATE_CHANGE)
            tbp_state_change(&p, DEV, 1, 2, 0);
        else
            tbp_stop_copy_size(&p, DEV, 1, 0);
        tb_set_le32(p.p + cases[i].at, cases[i].v);
        size_t off = rec(&s, MIG_FLAG_OPTIONAL, cases[i].tag, &p);
        tb_end_auto(&s, 0);
        EXPECT_ERR_AT(&s, MS_ERR_BAD_FIELD, off + 24 + cases[i].field);
        tb_stream_free(&s);
    }
    /* every state 0..7 is valid */
    tb_stream s;
    base(&s);
    for (uint32_t st = 0; st <= 7; st++)
        tb_state_change(&s, DEV, st, 7 - st, st);
    tb_end_auto(&s, 0);
    EXPECT_OK(&s);
    tb_stream_free(&s);
}

/* ---- devices ------------------------------------------------------------ */
static void fmt_device_duplicate(void **state)
{
    (void)state;
    tb_stream s;
    /* declared twice, identically */
    base(&s);
    size_t off = tb_device(&s, DEV, IDSTR, MS_PAYLOAD_MLX5);
    size_t len = s.last_len;
    tb_end_auto(&s, 0);
    EXPECT_ERR_IN(&s, MS_ERR_DEVICE_DUPLICATE, off, off + len - 1);
    tb_stream_free(&s);
    /* declared twice, differently */
    base(&s);
    off = tb_device(&s, DEV, "other", MS_PAYLOAD_RAW);
    len = s.last_len;
    tb_end_auto(&s, 0);
    EXPECT_ERR_IN(&s, MS_ERR_DEVICE_DUPLICATE, off, off + len - 1);
    tb_stream_free(&s);
}

static void fmt_device_unknown(void **state)
{
    (void)state;
    tb_stream s;
    size_t off, len;
    /* IMAGE_BEGIN of an undeclared device */
    base(&s);
    off = tb_image_begin(&s, 9, 0, 1, 0, 0, 0);
    len = s.last_len;
    tb_end_auto(&s, 0);
    EXPECT_ERR_IN(&s, MS_ERR_DEVICE_UNKNOWN, off, off + len - 1);
    tb_stream_free(&s);
    /* optional records name devices too */
    base(&s);
    off = tb_precopy_info(&s, 2, 0, 1, 1, 1);
    len = s.last_len;
    tb_end_auto(&s, 0);
    EXPECT_ERR_IN(&s, MS_ERR_DEVICE_UNKNOWN, off, off + len - 1);
    tb_stream_free(&s);
    base(&s);
    off = tb_state_change(&s, 2, 0, 1, 1);
    len = s.last_len;
    tb_end_auto(&s, 0);
    EXPECT_ERR_IN(&s, MS_ERR_DEVICE_UNKNOWN, off, off + len - 1);
    tb_stream_free(&s);
    base(&s);
    off = tb_stop_copy_size(&s, 2, 0, 1);
    len = s.last_len;
    tb_end_auto(&s, 0);
    EXPECT_ERR_IN(&s, MS_ERR_DEVICE_UNKNOWN, off, off + len - 1);
    tb_stream_free(&s);
    /* a CHUNK / PACKET / IMAGE_END naming an undeclared device */
    base(&s);
    off = tb_chunk(&s, 3, 0, 0, img4, 4);
    len = s.last_len;
    tb_end_auto(&s, 0);
    EXPECT_ERR_IN(&s, MS_ERR_DEVICE_UNKNOWN, off, off + len - 1);
    tb_stream_free(&s);
    base(&s);
    off = tb_packet(&s, 3, 0, 0, 0, img4, 4);
    len = s.last_len;
    tb_end_auto(&s, 0);
    EXPECT_ERR_IN(&s, MS_ERR_DEVICE_UNKNOWN, off, off + len - 1);
    tb_stream_free(&s);
    base(&s);
    off = tb_image_end(&s, 3, 0, 0, 0, 0, 0, 0, 0);
    len = s.last_len;
    tb_end_auto(&s, 0);
    EXPECT_ERR_IN(&s, MS_ERR_DEVICE_UNKNOWN, off, off + len - 1);
    tb_stream_free(&s);
    /* used before it is declared (declared later) */
    base(&s);
    off = tb_state_change(&s, 2, 0, 1, 1);
    len = s.last_len;
    tb_device(&s, 2, "late", 0);
    tb_end_auto(&s, 0);
    EXPECT_ERR_IN(&s, MS_ERR_DEVICE_UNKNOWN, off, off + len - 1);
    tb_stream_free(&s);
}

/* ---- images ------------------------------------------------------------- */
static void fmt_image_sequence(void **state)
{
    (void)state;
    tb_stream s;
    size_t off, len;
    /* first image with seq 1 */
    base(&s);
    off = tb_image_begin(&s, DEV, 1, 1, 0, 0, 0);
    len = s.last_len;
    tb_end_auto(&s, 0);
    EXPECT_ERR_IN(&s, MS_ERR_IMAGE_SEQUENCE, off, off + len - 1);
    tb_stream_free(&s);
    /* a gap: 0 then 2 */
    base(&s);
    tb_chunk_image(&s, DEV, 0, 2, img4, 4, 4, 0);
    off = tb_image_begin(&s, DEV, 2, 2, 0, 0, 0);
    len = s.last_len;
    tb_end_auto(&s, 0);
    EXPECT_ERR_IN(&s, MS_ERR_IMAGE_SEQUENCE, off, off + len - 1);
    tb_stream_free(&s);
    /* a repeat: 0 then 0 */
    base(&s);
    tb_chunk_image(&s, DEV, 0, 2, img4, 4, 4, 0);
    off = tb_image_begin(&s, DEV, 0, 2, 0, 0, 0);
    len = s.last_len;
    tb_end_auto(&s, 0);
    EXPECT_ERR_IN(&s, MS_ERR_IMAGE_SEQUENCE, off, off + len - 1);
    tb_stream_free(&s);
    /* CHUNK for another seq than the open image */
    base(&s);
    tb_image_begin(&s, DEV, 0, 1, 0, 0, 0);
    off = tb_chunk(&s, DEV, 1, 0, img4, 4);
    len = s.last_len;
    tb_end_auto(&s, 0);
    EXPECT_ERR_IN(&s, MS_ERR_IMAGE_SEQUENCE, off, off + len - 1);
    tb_stream_free(&s);
    /* IMAGE_END for another seq */
    base(&s);
    tb_image_begin(&s, DEV, 0, 1, 0, 0, 0);
    tb_chunk(&s, DEV, 0, 0, img4, 4);
    off = tb_image_end(&s, DEV, 1, 4, tb_hash(img4, 4), 1, 0, 0, 0);
    len = s.last_len;
    tb_end_auto(&s, 0);
    EXPECT_ERR_IN(&s, MS_ERR_IMAGE_SEQUENCE, off, off + len - 1);
    tb_stream_free(&s);
}

static void fmt_image_state(void **state)
{
    (void)state;
    tb_stream s;
    size_t off, len;
    /* CHUNK with no image ever begun */
    base(&s);
    off = tb_chunk(&s, DEV, 0, 0, img4, 4);
    len = s.last_len;
    tb_end_auto(&s, 0);
    EXPECT_ERR_IN(&s, MS_ERR_IMAGE_STATE, off, off + len - 1);
    tb_stream_free(&s);
    /* IMAGE_END with no image begun */
    base(&s);
    off = tb_image_end(&s, DEV, 0, 0, tb_hash("", 0), 0, 0, 0, 0);
    len = s.last_len;
    tb_end_auto(&s, 0);
    EXPECT_ERR_IN(&s, MS_ERR_IMAGE_STATE, off, off + len - 1);
    tb_stream_free(&s);
    /* IMAGE_BEGIN while one is open */
    base(&s);
    tb_image_begin(&s, DEV, 0, 1, 0, 0, 0);
    tb_chunk(&s, DEV, 0, 0, img4, 4);
    off = tb_image_begin(&s, DEV, 1, 2, 0, 0, 0);
    len = s.last_len;
    tb_end_auto(&s, 0);
    EXPECT_ERR_IN(&s, MS_ERR_IMAGE_STATE, off, off + len - 1);
    tb_stream_free(&s);
    /* CHUNK for a packet-mode image (wrong transport) */
    base(&s);
    tb_image_begin(&s, DEV, 0, 1, 1, 0, 0);
    off = tb_chunk(&s, DEV, 0, 0, img4, 4);
    len = s.last_len;
    tb_end_auto(&s, 0);
    EXPECT_ERR_IN(&s, MS_ERR_IMAGE_STATE, off, off + len - 1);
    tb_stream_free(&s);
    /* CHUNK after the image ended */
    base(&s);
    tb_chunk_image(&s, DEV, 0, 1, img4, 4, 4, 0);
    off = tb_chunk(&s, DEV, 0, 0, img4, 4);
    len = s.last_len;
    tb_end_auto(&s, 0);
    EXPECT_ERR_IN(&s, MS_ERR_IMAGE_STATE, off, off + len - 1);
    tb_stream_free(&s);
    /* an image still open at END */
    base(&s);
    tb_image_begin(&s, DEV, 0, 1, 0, 0, 0);
    tb_chunk(&s, DEV, 0, 0, img4, 4);
    off = tb_end_auto(&s, 0);
    len = s.last_len;
    EXPECT_ERR_IN(&s, MS_ERR_IMAGE_STATE, off, off + len - 1);
    tb_stream_free(&s);
    /* a packet-mode image still open at END */
    base(&s);
    tb_image_begin(&s, DEV, 0, 1, 1, 0, 0);
    tb_packet(&s, DEV, 0, 0, 0, img4, 4);
    off = tb_end_auto(&s, 0);
    len = s.last_len;
    EXPECT_ERR_IN(&s, MS_ERR_IMAGE_STATE, off, off + len - 1);
    tb_stream_free(&s);
}

static void phase_case(int line, uint8_t p0, uint8_t p1)
{
    tb_stream s;
    base(&s);
    tb_chunk_image(&s, DEV, 0, p0, img4, 4, 4, 0);
    size_t off = tb_image_begin(&s, DEV, 1, p1, 0, 0, 0);
    size_t len = s.last_len;
    tb_chunk(&s, DEV, 1, 0, img4, 4);
    tb_image_end(&s, DEV, 1, 4, tb_hash(img4, 4), 1, 0, 0, 0);
    tb_end_auto(&s, 0);
    expect_err_(line, s.b.p, s.b.len, NULL, MS_ERR_PHASE_ORDER, off,
                off + len - 1);
    tb_stream_free(&s);
}

static void fmt_phase_order(void **state)
{
    (void)state;
    phase_case(__LINE__, 2, 1); /* initial after middle */
    phase_case(__LINE__, 1, 1); /* initial after initial */
    phase_case(__LINE__, 3, 1); /* initial after final */
    phase_case(__LINE__, 3, 2); /* middle after final */
    phase_case(__LINE__, 3, 3); /* final after final */
    /* initial after two images */
    tb_stream s;
    base(&s);
    tb_chunk_image(&s, DEV, 0, 1, img4, 4, 4, 0);
    tb_chunk_image(&s, DEV, 1, 2, img4, 4, 4, 0);
    size_t off = tb_image_begin(&s, DEV, 2, 1, 0, 0, 0);
    size_t len = s.last_len;
    tb_end_auto(&s, 0);
    EXPECT_ERR_IN(&s, MS_ERR_PHASE_ORDER, off, off + len - 1);
    tb_stream_free(&s);
    /* phases are per device: another device may start with initial */
    base(&s);
    tb_device(&s, 2, "0000:00:03.0/vfio", 0);
    tb_chunk_image(&s, DEV, 0, 3, img4, 4, 4, 0);
    tb_chunk_image(&s, 2, 0, 1, img4, 4, 4, 0);
    tb_end_auto(&s, 0);
    EXPECT_OK(&s);
    tb_stream_free(&s);
}

static void fmt_image_length_and_hash(void **state)
{
    (void)state;
    uint8_t data[64];
    tb_fill_random(data, sizeof data, 5);
    uint64_t h = tb_hash(data, 64);
    struct {
        uint64_t length, hash, units;
        ms_error code;
    } cases[] = {
        {64, h, 2, MS_ERR_OK},
        {65, h, 2, MS_ERR_IMAGE_LENGTH},
        {63, h, 2, MS_ERR_IMAGE_LENGTH},
        {64, h, 3, MS_ERR_IMAGE_LENGTH},
        {64, h, 1, MS_ERR_IMAGE_LENGTH},
        {64, h ^ 1, 2, MS_ERR_IMAGE_HASH},
        {64, tb_hash(data, 32), 2, MS_ERR_IMAGE_HASH},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tb_stream s;
        base(&s);
        tb_image_begin(&s, DEV, 0, 1, 0, 0, 0);
        tb_chunk(&s, DEV, 0, 0, data, 32);
        tb_chunk(&s, DEV, 0, 1, data + 32, 32);
        size_t off = tb_image_end(&s, DEV, 0, cases[i].length, cases[i].hash,
                                  cases[i].units, 0, 0, 0);
        size_t len = s.last_len;
        tb_end_auto(&s, 0);
        if (cases[i].code == MS_ERR_OK)
            EXPECT_OK(&s);
        else
            EXPECT_ERR_IN(&s, cases[i].code, off, off + len - 1);
        tb_stream_free(&s);
    }
}

/* ---- version 2.0: unit records (4.3) and the image hash (5.4) ---------- */
static void base2(tb_stream *s)
{
    tb_stream_init(s);
    tb_header_ex(s, tb_magic, 2, 0, 0, tb_uuid_a, 0, 1, 0, 0);
    tb_device(s, DEV, IDSTR, MS_PAYLOAD_MLX5);
}

/* A chunk image of a raw and a zlib chunk of 32 bytes each, then a packet
 * image of two data packets and an empty config packet.  Offsets of the
 * unit records in `at` (raw chunk, zlib chunk, packet 0), of the IMAGE_END
 * of the chunk image in `end_at`. */
static void v2_stream(tb_stream *s, const uint8_t data[64], uint64_t hash,
                      size_t at[3], size_t len[3], size_t *end_at)
{
    base2(s);
    tb_image_begin(s, DEV, 0, 1, 0, 0, 0);
    at[0] = tb_chunk(s, DEV, 0, 0, data, 32);
    len[0] = s->last_len;
    at[1] = tb_chunk(s, DEV, 0, 1, data + 32, 32);
    len[1] = s->last_len;
    *end_at = tb_image_end(s, DEV, 0, 64, hash, 2, 0, 0, 0);
    tb_image_begin(s, DEV, 1, 2, 1, 0, 0);
    at[2] = tb_packet(s, DEV, 1, 0, 0, data, 40);
    len[2] = s->last_len;
    tb_packet(s, DEV, 1, 1, 0, data + 40, 24);
    tb_packet(s, DEV, 1, 2, MIG_PACKET_FLAG_CONFIG, NULL, 0);
    uint8_t le[16];
    tb_set_le64(le, tb_hash(data, 40));
    tb_set_le64(le + 8, tb_hash(data + 40, 24));
    tb_image_end(s, DEV, 1, 64, tb_hash(le, 16), 2, 0, 0, tb_hash("", 0));
    tb_end_auto(s, 0);
}

static void fmt_v2_unit_records(void **state)
{
    (void)state;
    uint8_t data[64];
    tb_fill_compressible(data, sizeof data, 12);
    uint64_t h = tb_units_hash(data, 64, 32);
    size_t at[3], len[3], end_at;
    tb_stream s;
    v2_stream(&s, data, h, at, len, &end_at);
    EXPECT_OK(&s);
    /* damage in a unit's data, in its prefix, in a zlib chunk's stored
     * bytes: the payload check (at the record's last 8 bytes) */
    static const size_t where[][2] = {
        {0, 24 + 16 + 5}, /* raw chunk data */
        {0, 24 + 12},     /* raw chunk prefix: raw_len */
        {0, 24 + 9},      /* raw chunk prefix: reserved */
        {1, 24 + 16 + 3}, /* zlib stream */
        {2, 24 + 24 + 39}, /* packet data, its last byte */
        {2, 24 + 8},      /* packet prefix: idx */
    };
    for (size_t i = 0; i < sizeof where / sizeof where[0]; i++) {
        size_t k = where[i][0];
        s.b.p[at[k] + where[i][1]] ^= 0x10;
        EXPECT_ERR_AT(&s, MS_ERR_PAYLOAD_CHECK, at[k] + len[k] - 8);
        s.b.p[at[k] + where[i][1]] ^= 0x10;
    }
    EXPECT_OK(&s);
    tb_stream_free(&s);
    /* image_hash: another value, or the 1.x hash of the bytes */
    uint64_t wrong[] = {h ^ 1, tb_hash(data, 64), tb_units_hash(data, 64, 64)};
    for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++) {
        v2_stream(&s, data, wrong[i], at, len, &end_at);
        EXPECT_ERR_AT(&s, MS_ERR_IMAGE_HASH, end_at);
        tb_stream_free(&s);
    }
}

/* A unit record checked by the other version's rule is damage. */
static void fmt_v2_version_rules(void **state)
{
    (void)state;
    uint8_t data[32];
    tb_fill_random(data, sizeof data, 13);
    for (uint16_t major = 1; major <= 2; major++) {
        tb_stream s;
        tb_stream_init(&s);
        tb_header_ex(&s, tb_magic, major, 0, 0, tb_uuid_a, 0, 1, 0, 0);
        tb_device(&s, DEV, IDSTR, MS_PAYLOAD_MLX5);
        tb_image_begin(&s, DEV, 0, 1, 0, 0, 0);
        s.major = (uint16_t)(3 - major); /* the other rule */
        size_t off = tb_chunk(&s, DEV, 0, 0, data, 32);
        size_t len = s.last_len;
        s.major = major;
        tb_image_end(&s, DEV, 0, 32, tb_units_hash(data, 32, 32), 1, 0, 0,
                     0);
        tb_end_auto(&s, 0);
        EXPECT_ERR_AT(&s, MS_ERR_PAYLOAD_CHECK, off + len - 8);
        tb_stream_free(&s);
    }
    /* an image without units: the hash of empty input */
    tb_stream s;
    base2(&s);
    tb_image_begin(&s, DEV, 0, 1, 0, 0, 0);
    tb_image_end(&s, DEV, 0, 0, tb_hash("", 0), 0, 0, 0, 0);
    tb_end_auto(&s, 0);
    EXPECT_OK(&s);
    tb_stream_free(&s);
}

static void fmt_decompress(void **state)
{
    (void)state;
    uint8_t data[200];
    tb_fill_compressible(data, sizeof data, 9);
    tb_stream s;
    size_t off, len;

    /* not a zlib stream at all */
    base(&s);
    tb_image_begin(&s, DEV, 0, 1, 0, 0, 0);
    {
        tb_buf p;
        tb_buf_init(&p);
        uint8_t junk[40];
        tb_fill_random(junk, sizeof junk, 2);
        tbp_chunk(&p, DEV, 0, 1, 200, junk, sizeof junk);
        off = rec(&s, 0, MIG_TAG_CHUNK, &p);
        len = s.last_len;
    }
    tb_image_end(&s, DEV, 0, 200, tb_hash(data, 200), 1, 0, 0, 0);
    tb_end_auto(&s, 0);
    EXPECT_ERR_IN(&s, MS_ERR_DECOMPRESS, off, off + len - 1);
    tb_stream_free(&s);

    /* a valid zlib stream with its Adler-32 broken */
    base(&s);
    tb_image_begin(&s, DEV, 0, 1, 0, 0, 0);
    {
        tb_stream z;
        tb_stream_init(&z);
        tb_header(&z, tb_uuid_a, 0, 1);
        size_t zo = tb_chunk(&z, DEV, 0, 1, data, 200);
        tb_buf p;
        tb_buf_init(&p);
        tb_put(&p, z.b.p + zo + 24, z.last_len - 32);
        p.p[p.len - 1] ^= 0xFF;
        off = rec(&s, 0, MIG_TAG_CHUNK, &p);
        len = s.last_len;
        tb_stream_free(&z);
    }
    tb_image_end(&s, DEV, 0, 200, tb_hash(data, 200), 1, 0, 0, 0);
    tb_end_auto(&s, 0);
    EXPECT_ERR_IN(&s, MS_ERR_DECOMPRESS, off, off + len - 1);
    tb_stream_free(&s);

    /* a zlib stream cut short */
    base(&s);
    tb_image_begin(&s, DEV, 0, 1, 0, 0, 0);
    {
        tb_stream z;
        tb_stream_init(&z);
        tb_header(&z, tb_uuid_a, 0, 1);
        size_t zo = tb_chunk(&z, DEV, 0, 1, data, 200);
        tb_buf p;
        tb_buf_init(&p);
        tb_put(&p, z.b.p + zo + 24, z.last_len - 32 - 6);
        off = rec(&s, 0, MIG_TAG_CHUNK, &p);
        len = s.last_len;
        tb_stream_free(&z);
    }
    tb_image_end(&s, DEV, 0, 200, tb_hash(data, 200), 1, 0, 0, 0);
    tb_end_auto(&s, 0);
    EXPECT_ERR_IN(&s, MS_ERR_DECOMPRESS, off, off + len - 1);
    tb_stream_free(&s);

    /* inflating to other than raw_len bytes, both ways */
    uint32_t raws[] = {199, 201, 1, 100000};
    for (size_t i = 0; i < sizeof raws / sizeof raws[0]; i++) {
        base(&s);
        tb_image_begin(&s, DEV, 0, 1, 0, 0, 0);
        off = tb_chunk_zlib_rawlen(&s, DEV, 0, data, 200, raws[i]);
        len = s.last_len;
        tb_image_end(&s, DEV, 0, raws[i], tb_hash(data, 200), 1, 0, 0, 0);
        tb_end_auto(&s, 0);
        EXPECT_ERR_IN(&s, MS_ERR_DECOMPRESS, off, off + len - 1);
        tb_stream_free(&s);
    }

    /* and the right raw_len works */
    base(&s);
    tb_image_begin(&s, DEV, 0, 1, 0, 0, 0);
    tb_chunk_zlib_rawlen(&s, DEV, 0, data, 200, 200);
    tb_image_end(&s, DEV, 0, 200, tb_hash(data, 200), 1, 0, 0, 0);
    tb_end_auto(&s, 0);
    EXPECT_OK(&s);
    tb_stream_free(&s);
}

/* Bytes after the zlib stream's end inside the chunk: "one complete RFC
 * 1950 stream" is violated; the spec does not say which error. */
static void fmt_decompress_trailing_garbage(void **state)
{
    (void)state;
    uint8_t data[200];
    tb_fill_compressible(data, sizeof data, 9);
    tb_stream s, z;
    base(&s);
    tb_image_begin(&s, DEV, 0, 1, 0, 0, 0);
    tb_stream_init(&z);
    tb_header(&z, tb_uuid_a, 0, 1);
    size_t zo = tb_chunk(&z, DEV, 0, 1, data, 200);
    tb_buf p;
    tb_buf_init(&p);
    tb_put(&p, z.b.p + zo + 24, z.last_len - 32);
    tb_put(&p, "XYZ", 3);
    rec(&s, 0, MIG_TAG_CHUNK, &p);
    tb_image_end(&s, DEV, 0, 200, tb_hash(data, 200), 1, 0, 0, 0);
    tb_end_auto(&s, 0);
    expect_err_(__LINE__, s.b.p, s.b.len, NULL, MS_ERR_DECOMPRESS, 0, s.b.len);
    tb_stream_free(&z);
    tb_stream_free(&s);
}

/* 5.4: config_length and config_hash are 0 in chunk mode: bad-field. */
static void fmt_image_end_chunk_mode_config(void **state)
{
    (void)state;
    for (int k = 0; k < 2; k++) {
        tb_stream s;
        base(&s);
        tb_image_begin(&s, DEV, 0, 1, 0, 0, 0);
        tb_chunk(&s, DEV, 0, 0, img4, 4);
        tb_image_end(&s, DEV, 0, 4, tb_hash(img4, 4), 1, 0, k == 0 ? 4 : 0,
                     k == 1 ? tb_hash(img4, 4) : 0);
        tb_end_auto(&s, 0);
        expect_err_(__LINE__, s.b.p, s.b.len, NULL, MS_ERR_BAD_FIELD, 0,
                    s.b.len);
        tb_stream_free(&s);
    }
}

/* ---- END totals --------------------------------------------------------- */
static void end_base(tb_stream *s, uint8_t *cfg, size_t cfg_len)
{
    base(s);
    tb_chunk_image(s, DEV, 0, 1, img4, 4, 2, 0);
    tb_image_begin(s, DEV, 1, 2, 1, 0, 0);
    tb_packet(s, DEV, 1, 0, 0, img4, 4);
    tb_packet(s, DEV, 1, 1, 1, cfg, cfg_len);
    tb_image_end(s, DEV, 1, 4, tb_hash(img4, 4), 1, 0, cfg_len,
                 tb_hash(cfg, cfg_len));
    tb_precopy_info(s, DEV, 0, 1, 2, 3);
}

static void fmt_end_totals(void **state)
{
    (void)state;
    uint8_t cfg[3] = {1, 2, 3};
    for (int field = -1; field < 6; field++) {
        for (int d = -1; d <= 1; d += 2) {
            tb_stream s;
            end_base(&s, cfg, sizeof cfg);
            uint64_t v[6] = {s.record_count, s.b.len,        s.image_bytes,
                             s.packet_count, s.device_count, s.image_count};
            assert_int_equal(v[0], 10);
            assert_int_equal(v[2], 4);
            assert_int_equal(v[3], 2);
            assert_int_equal(v[4], 1);
            assert_int_equal(v[5], 2);
            if (field >= 0)
                v[field] += (uint64_t)(int64_t)d;
            size_t off = tb_end(&s, v[0], v[1], v[2], v[3], (uint32_t)v[4],
                                (uint32_t)v[5], 99);
            size_t len = s.last_len;
            if (field < 0)
                EXPECT_OK(&s);
            else
                EXPECT_ERR_IN(&s, MS_ERR_END_TOTALS, off, off + len - 1);
            tb_stream_free(&s);
        }
    }
    /* unknown optional records count as records */
    tb_stream s;
    base(&s);
    tb_record(&s, MIG_FLAG_OPTIONAL, 0x80000001u, "x", 1);
    size_t off = tb_end(&s, 1, s.b.len, 0, 0, 1, 0, 0);
    size_t len = s.last_len;
    EXPECT_ERR_IN(&s, MS_ERR_END_TOTALS, off, off + len - 1);
    tb_stream_free(&s);
}

/* ---- limits ------------------------------------------------------------- */
static void expect_limit_(int line, const tb_stream *s, const ms_options *o,
                          const char *name, uint64_t lo, uint64_t hi)
{
    tb_result r[3];
    int bad = 0;
    run3(s->b.p, s->b.len, o, r);
    for (int i = 0; i < 3; i++) {
        if (r[i].rc == 0 || r[i].err.code != MS_ERR_LIMIT ||
            !strstr(r[i].err.detail, name) || r[i].err.offset < lo ||
            r[i].err.offset > hi) {
            print_message("line %d (%s): expected limit naming %s at "
                          "[%llu,%llu]; got rc %d, %s at %llu: %s\n",
                          line, mode_name[i], name, (unsigned long long)lo,
                          (unsigned long long)hi, r[i].rc,
                          ms_error_name(r[i].err.code),
                          (unsigned long long)r[i].err.offset,
                          r[i].err.detail);
            bad = 1;
        }
    }
    for (int i = 0; i < 3; i++)
        tb_result_free(&r[i]);
    if (bad)
        fail();
}

static void fmt_limit_record_payload(void **state)
{
    (void)state;
    ms_options o;
    ms_options_init(&o);
    o.max_record_payload = 64;
    uint8_t pl[65] = {0};
    tb_stream s;
    base(&s);
    tb_record(&s, MIG_FLAG_OPTIONAL, 0x80000001u, pl, 64); /* at the limit */
    size_t off = tb_record(&s, MIG_FLAG_OPTIONAL, 0x80000001u, pl, 65);
    tb_end_auto(&s, 0);
    expect_limit_(__LINE__, &s, &o, "max_record_payload", off,
                  off + 24 + 65 + 8 - 1);
    tb_stream_free(&s);

    /* a verified header claiming 1 TiB with the default limit: refused as
     * soon as the header is read, with nothing after it */
    base(&s);
    off = raw_header(&s, 1ull << 40, MIG_FLAG_OPTIONAL, 0x80000001u);
    expect_limit_(__LINE__, &s, NULL, "max_record_payload", off, off + 23);
    tb_stream_free(&s);
}

static void fmt_limit_devices(void **state)
{
    (void)state;
    ms_options o;
    ms_options_init(&o);
    o.max_devices = 2;
    tb_stream s;
    tb_stream_init(&s);
    tb_header(&s, tb_uuid_a, 0, 1);
    tb_device(&s, 1, "a", 0);
    tb_device(&s, 2, "b", 0);
    tb_end_auto(&s, 0);
    expect_ok_(__LINE__, s.b.p, s.b.len, &o);
    tb_stream_free(&s);

    tb_stream_init(&s);
    tb_header(&s, tb_uuid_a, 0, 1);
    tb_device(&s, 1, "a", 0);
    tb_device(&s, 2, "b", 0);
    size_t off = tb_device(&s, 3, "c", 0);
    size_t len = s.last_len;
    tb_end_auto(&s, 0);
    expect_limit_(__LINE__, &s, &o, "max_devices", off, off + len - 1);
    tb_stream_free(&s);
}

static void fmt_limit_name_length(void **state)
{
    (void)state;
    ms_options o;
    ms_options_init(&o);
    o.max_name_length = 8;
    tb_stream s;
    tb_stream_init(&s);
    tb_header(&s, tb_uuid_a, 0, 1);
    tb_device(&s, 1, "12345678", 0);
    tb_end_auto(&s, 0);
    expect_ok_(__LINE__, s.b.p, s.b.len, &o);
    tb_stream_free(&s);

    tb_stream_init(&s);
    tb_header(&s, tb_uuid_a, 0, 1);
    size_t off = tb_device(&s, 1, "123456789", 0);
    size_t len = s.last_len;
    tb_end_auto(&s, 0);
    expect_limit_(__LINE__, &s, &o, "max_name_length", off, off + len - 1);
    tb_stream_free(&s);
}

static void fmt_limit_compat_and_images(void **state)
{
    (void)state;
    ms_options o;
    ms_options_init(&o);
    o.max_compat_length = 4;
    tb_stream s;
    tb_stream_init(&s);
    tb_header(&s, tb_uuid_a, 0, 1);
    size_t off = tb_device_ex(&s, 1, 0, 0, "a", "12345", 5);
    size_t len = s.last_len;
    tb_end_auto(&s, 0);
    expect_limit_(__LINE__, &s, &o, "max_compat_length", off, off + len - 1);
    tb_stream_free(&s);

    ms_options_init(&o);
    o.max_images = 2;
    base(&s);
    tb_chunk_image(&s, DEV, 0, 2, img4, 4, 4, 0);
    tb_chunk_image(&s, DEV, 1, 2, img4, 4, 4, 0);
    off = tb_image_begin(&s, DEV, 2, 2, 0, 0, 0);
    len = s.last_len;
    tb_chunk(&s, DEV, 2, 0, img4, 4);
    tb_image_end(&s, DEV, 2, 4, tb_hash(img4, 4), 1, 0, 0, 0);
    tb_end_auto(&s, 0);
    expect_limit_(__LINE__, &s, &o, "max_images", off, off + len - 1);
    tb_stream_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fmt_valid_minimal),
        cmocka_unit_test(fmt_v2_unit_records),
        cmocka_unit_test(fmt_v2_version_rules),
        cmocka_unit_test(fmt_valid_all_records),
        cmocka_unit_test(fmt_valid_phase_sequences),
        cmocka_unit_test(fmt_truncated),
        cmocka_unit_test(fmt_missing_end),
        cmocka_unit_test(fmt_empty_input_fails),
        cmocka_unit_test(fmt_trailing_data),
        cmocka_unit_test(fmt_bad_magic),
        cmocka_unit_test(fmt_magic_damaged),
        cmocka_unit_test(fmt_version),
        cmocka_unit_test(fmt_header_check),
        cmocka_unit_test(fmt_header_fields),
        cmocka_unit_test(fmt_minor_version_reserved_ignored),
        cmocka_unit_test(fmt_record_check),
        cmocka_unit_test(fmt_record_chain),
        cmocka_unit_test(fmt_payload_check),
        cmocka_unit_test(fmt_record_flags),
        cmocka_unit_test(fmt_unknown_mandatory),
        cmocka_unit_test(fmt_unknown_optional_skipped),
        cmocka_unit_test(fmt_record_size_fixed),
        cmocka_unit_test(fmt_record_size_device),
        cmocka_unit_test(fmt_record_size_chunk),
        cmocka_unit_test(fmt_record_size_packet),
        cmocka_unit_test(fmt_bad_field_device),
        cmocka_unit_test(fmt_bad_field_device_empty_idstr),
        cmocka_unit_test(fmt_device_handle_invalid),
        cmocka_unit_test(fmt_bad_field_image_begin),
        cmocka_unit_test(fmt_bad_field_chunk),
        cmocka_unit_test(fmt_bad_field_packet),
        cmocka_unit_test(fmt_bad_field_optional_records),
        cmocka_unit_test(fmt_device_duplicate),
        cmocka_unit_test(fmt_device_unknown),
        cmocka_unit_test(fmt_image_sequence),
        cmocka_unit_test(fmt_image_state),
        cmocka_unit_test(fmt_phase_order),
        cmocka_unit_test(fmt_image_length_and_hash),
        cmocka_unit_test(fmt_decompress),
        cmocka_unit_test(fmt_decompress_trailing_garbage),
        cmocka_unit_test(fmt_image_end_chunk_mode_config),
        cmocka_unit_test(fmt_end_totals),
        cmocka_unit_test(fmt_limit_record_payload),
        cmocka_unit_test(fmt_limit_devices),
        cmocka_unit_test(fmt_limit_name_length),
        cmocka_unit_test(fmt_limit_compat_and_images),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
