/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* The writer: its output read back and checked, and every misuse refused
 * with MS_ERR_USAGE, stickily. */
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

#define IDSTR "0000:00:02.0/vfio"

static int to_buf(void *opaque, const void *buf, size_t len)
{
    tb_put((tb_buf *)opaque, buf, len);
    return 0;
}

typedef struct wfix {
    ms_writer *w;
    tb_buf out[4];
    uint32_t n;
} wfix;

/* A writer with n channels opened into memory and devices 1 and 2. */
static void wfix_open(wfix *f, uint32_t n, int compression, size_t chunk)
{
    memset(f, 0, sizeof *f);
    f->n = n;
    ms_writer_options o;
    ms_writer_options_init(&o);
    memcpy(o.uuid, tb_uuid_a, 16);
    o.channel_count = n;
    o.created_ns = 555;
    o.compression_level = compression;
    if (chunk)
        o.chunk_size = chunk;
    f->w = ms_writer_create(&o);
    assert_non_null(f->w);
    for (uint32_t c = 0; c < n; c++) {
        tb_buf_init(&f->out[c]);
        assert_int_equal(ms_writer_open_channel(f->w, c, to_buf, &f->out[c]),
                         0);
    }
    assert_int_equal(ms_writer_add_device(f->w, 1, IDSTR, 0, MS_PAYLOAD_MLX5,
                                          "cc", 2),
                     0);
    assert_int_equal(ms_writer_add_device(f->w, 2, "0000:00:03.0/vfio", 1,
                                          MS_PAYLOAD_VIRTIO, NULL, 0),
                     0);
}

static void wfix_close(wfix *f)
{
    for (uint32_t c = 0; c < f->n; c++)
        assert_int_equal(ms_writer_close_channel(f->w, c, 99), 0);
}

static void wfix_free(wfix *f)
{
    ms_writer_free(f->w);
    for (uint32_t c = 0; c < 4; c++)
        tb_buf_free(&f->out[c]);
}

/* Call `rc` must be -1 with MS_ERR_USAGE, and the writer must stay failed:
 * a call that would be valid now fails with the same error. */
static void expect_usage_(int line, wfix *f, int rc)
{
    const ms_error_info *e = ms_writer_error(f->w);
    if (rc != -1 || !e || e->code != MS_ERR_USAGE) {
        print_message("line %d: expected -1 with usage, got %d, %s: %s\n",
                      line, rc, e ? ms_error_name(e->code) : "(null)",
                      e ? e->detail : "");
        fail();
    }
    ms_error_info first = *e;
    int rc2 = ms_writer_precopy_info(f->w, 0, 1, 0, 1, 2, 3);
    int rc3 = ms_writer_close_channel(f->w, 0, 4);
    e = ms_writer_error(f->w);
    if (rc2 != -1 || rc3 != -1 || e->code != first.code ||
        strcmp(e->detail, first.detail) != 0) {
        print_message("line %d: error not sticky: later calls gave %d, %d; "
                      "error now %s: %s\n",
                      line, rc2, rc3, ms_error_name(e->code), e->detail);
        fail();
    }
}
#define EXPECT_USAGE(f, call) expect_usage_(__LINE__, f, (call))

/* ---- output verified by the reader -------------------------------------- */
static void wr_output_verified(void **state)
{
    (void)state;
    uint8_t a[5000], cfg[9];
    tb_fill_compressible(a, sizeof a, 1);
    tb_fill_random(cfg, sizeof cfg, 2);
    for (uint32_t n = 1; n <= 3; n += 2) {
        wfix f;
        wfix_open(&f, n, 6, 700);
        ms_writer *w = f.w;
        assert_int_equal(ms_writer_precopy_info(w, 0, 1, 1, 5000, 100, 10), 0);
        assert_int_equal(ms_writer_state_change(w, 0, 1, 2, 6, 11), 0);
        assert_int_equal(ms_writer_stop_copy_size(w, 0, 1, 777, 12), 0);
        assert_int_equal(ms_writer_raw_record(w, 0, 0x80000007u,
                                              MIG_FLAG_OPTIONAL, "vend", 4),
                         0);
        assert_int_equal(ms_writer_image_begin(w, 0, 1, MS_PHASE_INITIAL,
                                               MS_TRANSPORT_CHUNKS,
                                               MIG_IMAGE_FLAG_FULL, 13),
                         0);
        /* odd-sized pieces across chunk boundaries */
        for (size_t off = 0; off < 3000; off += 333)
            assert_int_equal(ms_writer_image_data(w, 1, a + off,
                                                  off + 333 > 3000
                                                      ? 3000 - off
                                                      : 333),
                             0);
        assert_int_equal(ms_writer_image_end(w, 1, 14), 0);
        uint32_t home2 = n - 1;
        assert_int_equal(ms_writer_image_begin(w, home2, 2, MS_PHASE_FINAL,
                                               MS_TRANSPORT_PACKETS, 0, 15),
                         0);
        for (uint32_t k = 0; k < 5; k++)
            assert_int_equal(ms_writer_image_packet(w, k % n, 2,
                                                    a + 3000 + 400 * k, 400,
                                                    0),
                             0);
        assert_int_equal(ms_writer_image_packet(w, 0, 2, cfg, sizeof cfg, 1),
                         0);
        assert_int_equal(ms_writer_image_end(w, 2, 16), 0);
        wfix_close(&f);

        /* each channel's header is exactly what the spec says */
        for (uint32_t c = 0; c < n; c++) {
            tb_stream h;
            tb_stream_init(&h);
            tb_header_ex(&h, tb_magic, 2, 0, 0, tb_uuid_a, c, n, 555, 0);
            assert_true(f.out[c].len > 64);
            assert_memory_equal(f.out[c].p, h.b.p, 64);
            tb_stream_free(&h);
        }
        tb_result r;
        int rc = tb_run_set(f.out, n, NULL, 0, 0, &r);
        if (rc)
            tb_print_err("writer output", &r.err);
        assert_int_equal(rc, 0);
        tb_image *im = tb_result_image(&r, 1, 0);
        assert_non_null(im);
        assert_int_equal(im->data.len, 3000);
        assert_memory_equal(im->data.p, a, 3000);
        assert_int_equal(im->end.length, 3000);
        /* 2.0 (spec 5.4): the hash of the units' hashes; each 333-byte
         * image_data call is one chunk (below the 700-byte chunk size) */
        assert_int_equal(im->end.hash, tb_units_hash(a, 3000, 333));
        assert_int_equal(im->end.timestamp_ns, 14);
        im = tb_result_image(&r, 2, 0);
        assert_non_null(im);
        assert_true(im->assembled);
        assert_int_equal(im->data.len, 2000);
        assert_memory_equal(im->data.p, a + 3000, 2000);
        assert_int_equal(im->config.len, sizeof cfg);
        assert_memory_equal(im->config.p, cfg, sizeof cfg);
        assert_int_equal(im->end.unit_count, 5);
        assert_int_equal(im->end.config_length, sizeof cfg);
        assert_int_equal(im->end.hash, tb_units_hash(a + 3000, 2000, 400));
        assert_int_equal(im->end.config_hash, tb_hash(cfg, sizeof cfg));

        /* the records' fields, and the writer's packet numbering */
        const ms_event *e = tb_result_find(&r, MS_EV_PRECOPY_INFO, 0);
        assert_non_null(e);
        assert_int_equal(e->u.precopy.device, 1);
        assert_int_equal(e->u.precopy.flags, 1);
        assert_int_equal(e->u.precopy.initial_bytes, 5000);
        assert_int_equal(e->u.precopy.dirty_bytes, 100);
        e = tb_result_find(&r, MS_EV_STATE_CHANGE, 0);
        assert_non_null(e);
        assert_int_equal(e->u.state.from, 2);
        assert_int_equal(e->u.state.to, 6);
        e = tb_result_find(&r, MS_EV_STOP_COPY_SIZE, 0);
        assert_non_null(e);
        assert_int_equal(e->u.stop_copy.bytes, 777);
        int vendor = 0;
        for (size_t i = 0; i < r.n_events; i++)
            if (r.events[i].kind == MS_EV_RECORD &&
                r.events[i].u.record.tag == 0x80000007u &&
                !r.events[i].u.record.known)
                vendor++;
        assert_int_equal(vendor, 1);
        e = tb_result_find(&r, MS_EV_IMAGE_BEGIN, 0);
        assert_non_null(e);
        assert_int_equal(e->u.image.flags, MIG_IMAGE_FLAG_FULL);
        assert_int_equal(e->u.image.timestamp_ns, 13);
        int seen[6] = {0};
        for (size_t i = 0; i < r.n_events; i++) {
            if (r.events[i].kind != MS_EV_PACKET)
                continue;
            uint32_t idx = r.events[i].u.packet.idx;
            assert_true(idx < 6);
            seen[idx]++;
            assert_int_equal(r.events[i].u.packet.config, idx == 5);
            assert_int_equal(r.events[i].channel,
                             idx < 5 ? idx % n : 0);
        }
        for (int i = 0; i < 6; i++)
            assert_int_equal(seen[i], 1);
        size_t chunks = 0;
        for (size_t i = 0; i < r.n_events; i++)
            if (r.events[i].kind == MS_EV_CHUNK) {
                assert_true(r.events[i].u.chunk.raw_len <= 700);
                chunks++;
            }
        assert_true(chunks >= 5);
        tb_result_free(&r);
        wfix_free(&f);
    }
}

/* chunk_size bounds every CHUNK; compression is used when it shrinks the
 * data and not otherwise; level 0 never compresses. */
static void wr_chunks_and_compression(void **state)
{
    (void)state;
    uint8_t z[1000], rnd[1000];
    tb_fill_compressible(z, sizeof z, 3);
    tb_fill_random(rnd, sizeof rnd, 4);
    for (int level = 0; level <= 9; level += 3) {
        wfix f;
        wfix_open(&f, 1, level, 100);
        assert_int_equal(ms_writer_image_begin(f.w, 0, 1, MS_PHASE_MIDDLE,
                                               MS_TRANSPORT_CHUNKS, 0, 0),
                         0);
        assert_int_equal(ms_writer_image_data(f.w, 1, z, sizeof z), 0);
        assert_int_equal(ms_writer_image_end(f.w, 1, 0), 0);
        assert_int_equal(ms_writer_image_begin(f.w, 0, 1, MS_PHASE_MIDDLE,
                                               MS_TRANSPORT_CHUNKS, 0, 0),
                         0);
        assert_int_equal(ms_writer_image_data(f.w, 1, rnd, sizeof rnd), 0);
        assert_int_equal(ms_writer_image_end(f.w, 1, 0), 0);
        wfix_close(&f);
        tb_result r;
        int rc = tb_read_all(f.out[0].p, f.out[0].len, NULL, &r);
        if (rc)
            tb_print_err("chunks", &r.err);
        assert_int_equal(rc, 0);
        uint64_t sum[2] = {0, 0};
        size_t n[2] = {0, 0}, zn[2] = {0, 0};
        for (size_t i = 0; i < r.n_events; i++) {
            if (r.events[i].kind != MS_EV_CHUNK)
                continue;
            const ms_chunk_info *c = &r.events[i].u.chunk;
            assert_true(c->seq < 2);
            assert_true(c->raw_len >= 1 && c->raw_len <= 100);
            sum[c->seq] += c->raw_len;
            n[c->seq]++;
            if (c->compression == MS_COMPRESSION_ZLIB) {
                zn[c->seq]++;
                assert_true(c->stored_len < c->raw_len);
            } else {
                assert_int_equal(c->stored_len, c->raw_len);
            }
        }
        assert_int_equal(sum[0], 1000);
        assert_int_equal(sum[1], 1000);
        assert_true(n[0] >= 10 && n[1] >= 10);
        if (level == 0)
            assert_int_equal(zn[0], 0);
        else
            assert_true(zn[0] > 0);
        assert_int_equal(zn[1], 0); /* random bytes do not shrink */
        tb_image *im = tb_result_image(&r, 1, 0);
        assert_non_null(im);
        assert_memory_equal(im->data.p, z, 1000);
        im = tb_result_image(&r, 1, 1);
        assert_non_null(im);
        assert_memory_equal(im->data.p, rnd, 1000);
        tb_result_free(&r);
        wfix_free(&f);
    }
}

/* A channel with no records of its own still makes a valid stream. */
static void wr_empty_channels(void **state)
{
    (void)state;
    wfix f;
    wfix_open(&f, 3, 0, 0);
    assert_int_equal(ms_writer_image_begin(f.w, 1, 1, MS_PHASE_FINAL,
                                           MS_TRANSPORT_CHUNKS, 0, 0),
                     0);
    assert_int_equal(ms_writer_image_data(f.w, 1, "abc", 3), 0);
    assert_int_equal(ms_writer_image_end(f.w, 1, 0), 0);
    wfix_close(&f);
    for (uint32_t c = 0; c < 3; c++) {
        ms_error_info e;
        int rc = tb_verify(f.out[c].p, f.out[c].len, NULL, &e);
        if (rc)
            tb_print_err("channel", &e);
        assert_int_equal(rc, 0);
    }
    tb_result r;
    assert_int_equal(tb_run_set(f.out, 3, NULL, 1, 0, &r), 0);
    tb_image *im = tb_result_image(&r, 1, 0);
    assert_non_null(im);
    assert_int_equal(im->data.len, 3);
    tb_result_free(&r);
    wfix_free(&f);
}

/* ---- misuse ------------------------------------------------------------- */
static void wr_misuse_data_without_begin(void **state)
{
    (void)state;
    wfix f;
    wfix_open(&f, 1, 0, 0);
    EXPECT_USAGE(&f, ms_writer_image_data(f.w, 1, "abc", 3));
    wfix_free(&f);
    /* image_end without begin */
    wfix_open(&f, 1, 0, 0);
    EXPECT_USAGE(&f, ms_writer_image_end(f.w, 1, 0));
    wfix_free(&f);
    /* a packet without a packet-mode image */
    wfix_open(&f, 1, 0, 0);
    EXPECT_USAGE(&f, ms_writer_image_packet(f.w, 0, 1, "abc", 3, 0));
    wfix_free(&f);
}

static void wr_misuse_two_open_images(void **state)
{
    (void)state;
    wfix f;
    wfix_open(&f, 1, 0, 0);
    assert_int_equal(ms_writer_image_begin(f.w, 0, 1, MS_PHASE_INITIAL,
                                           MS_TRANSPORT_CHUNKS, 0, 0),
                     0);
    EXPECT_USAGE(&f, ms_writer_image_begin(f.w, 0, 1, MS_PHASE_MIDDLE,
                                           MS_TRANSPORT_CHUNKS, 0, 0));
    wfix_free(&f);
}

static void wr_misuse_phase_order(void **state)
{
    (void)state;
    static const ms_phase bad[][2] = {
        {MS_PHASE_FINAL, MS_PHASE_MIDDLE},
        {MS_PHASE_FINAL, MS_PHASE_FINAL},
        {MS_PHASE_MIDDLE, MS_PHASE_INITIAL},
        {MS_PHASE_INITIAL, MS_PHASE_INITIAL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        wfix f;
        wfix_open(&f, 1, 0, 0);
        assert_int_equal(ms_writer_image_begin(f.w, 0, 1, bad[i][0],
                                               MS_TRANSPORT_CHUNKS, 0, 0),
                         0);
        assert_int_equal(ms_writer_image_data(f.w, 1, "x", 1), 0);
        assert_int_equal(ms_writer_image_end(f.w, 1, 0), 0);
        EXPECT_USAGE(&f, ms_writer_image_begin(f.w, 0, 1, bad[i][1],
                                               MS_TRANSPORT_CHUNKS, 0, 0));
        wfix_free(&f);
    }
    /* out-of-range phase and transport */
    wfix f;
    wfix_open(&f, 1, 0, 0);
    EXPECT_USAGE(&f, ms_writer_image_begin(f.w, 0, 1, (ms_phase)4,
                                           MS_TRANSPORT_CHUNKS, 0, 0));
    wfix_free(&f);
    wfix_open(&f, 1, 0, 0);
    EXPECT_USAGE(&f, ms_writer_image_begin(f.w, 0, 1, MS_PHASE_NONE,
                                           MS_TRANSPORT_CHUNKS, 0, 0));
    wfix_free(&f);
    wfix_open(&f, 1, 0, 0);
    EXPECT_USAGE(&f, ms_writer_image_begin(f.w, 0, 1, MS_PHASE_MIDDLE,
                                           (ms_transport)2, 0, 0));
    wfix_free(&f);
}

static void wr_misuse_device_after_writing(void **state)
{
    (void)state;
    wfix f;
    wfix_open(&f, 1, 0, 0);
    assert_int_equal(ms_writer_image_begin(f.w, 0, 1, MS_PHASE_INITIAL,
                                           MS_TRANSPORT_CHUNKS, 0, 0),
                     0);
    assert_int_equal(ms_writer_image_data(f.w, 1, "x", 1), 0);
    assert_int_equal(ms_writer_image_end(f.w, 1, 0), 0);
    EXPECT_USAGE(&f, ms_writer_add_device(f.w, 3, "late", 0, 0, NULL, 0));
    wfix_free(&f);
    /* after an optional record */
    wfix_open(&f, 1, 0, 0);
    assert_int_equal(ms_writer_state_change(f.w, 0, 1, 1, 2, 0), 0);
    EXPECT_USAGE(&f, ms_writer_add_device(f.w, 3, "late", 0, 0, NULL, 0));
    wfix_free(&f);
}

static void wr_misuse_device_args(void **state)
{
    (void)state;
    wfix f;
    /* the same handle twice */
    wfix_open(&f, 1, 0, 0);
    EXPECT_USAGE(&f, ms_writer_add_device(f.w, 1, "again", 0, 0, NULL, 0));
    wfix_free(&f);
    /* the reserved handle */
    wfix_open(&f, 1, 0, 0);
    EXPECT_USAGE(&f, ms_writer_add_device(f.w, MIG_DEVICE_HANDLE_INVALID,
                                          "x", 0, 0, NULL, 0));
    wfix_free(&f);
    /* empty idstr, kind out of range */
    wfix_open(&f, 1, 0, 0);
    EXPECT_USAGE(&f, ms_writer_add_device(f.w, 5, "", 0, 0, NULL, 0));
    wfix_free(&f);
    wfix_open(&f, 1, 0, 0);
    EXPECT_USAGE(&f, ms_writer_add_device(f.w, 5, "x", 0, 7, NULL, 0));
    wfix_free(&f);
}

static void wr_misuse_unknown_device(void **state)
{
    (void)state;
    wfix f;
    wfix_open(&f, 1, 0, 0);
    EXPECT_USAGE(&f, ms_writer_image_begin(f.w, 0, 9, MS_PHASE_INITIAL,
                                           MS_TRANSPORT_CHUNKS, 0, 0));
    wfix_free(&f);
    wfix_open(&f, 1, 0, 0);
    EXPECT_USAGE(&f, ms_writer_stop_copy_size(f.w, 0, 9, 1, 0));
    wfix_free(&f);
    wfix_open(&f, 1, 0, 0);
    EXPECT_USAGE(&f, ms_writer_image_data(f.w, 9, "x", 1));
    wfix_free(&f);
}

static void wr_misuse_channels(void **state)
{
    (void)state;
    wfix f;
    /* a channel index out of range */
    wfix_open(&f, 2, 0, 0);
    EXPECT_USAGE(&f, ms_writer_state_change(f.w, 2, 1, 1, 2, 0));
    wfix_free(&f);
    /* a device's second image on another channel than its home */
    wfix_open(&f, 2, 0, 0);
    assert_int_equal(ms_writer_image_begin(f.w, 0, 1, MS_PHASE_INITIAL,
                                           MS_TRANSPORT_CHUNKS, 0, 0),
                     0);
    assert_int_equal(ms_writer_image_end(f.w, 1, 0), 0);
    EXPECT_USAGE(&f, ms_writer_image_begin(f.w, 1, 1, MS_PHASE_MIDDLE,
                                           MS_TRANSPORT_CHUNKS, 0, 0));
    wfix_free(&f);
}

static void wr_misuse_close_with_open_image(void **state)
{
    (void)state;
    wfix f;
    wfix_open(&f, 1, 0, 0);
    assert_int_equal(ms_writer_image_begin(f.w, 0, 1, MS_PHASE_INITIAL,
                                           MS_TRANSPORT_CHUNKS, 0, 0),
                     0);
    assert_int_equal(ms_writer_image_data(f.w, 1, "x", 1), 0);
    EXPECT_USAGE(&f, ms_writer_close_channel(f.w, 0, 0));
    wfix_free(&f);
    /* a packet-mode image too */
    wfix_open(&f, 1, 0, 0);
    assert_int_equal(ms_writer_image_begin(f.w, 0, 2, MS_PHASE_INITIAL,
                                           MS_TRANSPORT_PACKETS, 0, 0),
                     0);
    EXPECT_USAGE(&f, ms_writer_close_channel(f.w, 0, 0));
    wfix_free(&f);
}

static void wr_misuse_write_after_close(void **state)
{
    (void)state;
    wfix f;
    wfix_open(&f, 2, 0, 0);
    assert_int_equal(ms_writer_close_channel(f.w, 1, 0), 0);
    EXPECT_USAGE(&f, ms_writer_precopy_info(f.w, 1, 1, 0, 1, 1, 0));
    wfix_free(&f);
    wfix_open(&f, 2, 0, 0);
    assert_int_equal(ms_writer_close_channel(f.w, 1, 0), 0);
    EXPECT_USAGE(&f, ms_writer_close_channel(f.w, 1, 0));
    wfix_free(&f);
    wfix_open(&f, 2, 0, 0);
    assert_int_equal(ms_writer_close_channel(f.w, 1, 0), 0);
    EXPECT_USAGE(&f, ms_writer_image_begin(f.w, 1, 1, MS_PHASE_INITIAL,
                                           MS_TRANSPORT_CHUNKS, 0, 0));
    wfix_free(&f);
    /* a packet sent to a closed channel */
    wfix_open(&f, 2, 0, 0);
    assert_int_equal(ms_writer_close_channel(f.w, 1, 0), 0);
    assert_int_equal(ms_writer_image_begin(f.w, 0, 1, MS_PHASE_INITIAL,
                                           MS_TRANSPORT_PACKETS, 0, 0),
                     0);
    EXPECT_USAGE(&f, ms_writer_image_packet(f.w, 1, 1, "x", 1, 0));
    wfix_free(&f);
}

static void wr_misuse_vendor_tag_mandatory(void **state)
{
    (void)state;
    wfix f;
    wfix_open(&f, 1, 0, 0);
    EXPECT_USAGE(&f, ms_writer_raw_record(f.w, 0, 0x80000001u, 0, "v", 1));
    wfix_free(&f);
    /* reserved record flag bits */
    wfix_open(&f, 1, 0, 0);
    EXPECT_USAGE(&f, ms_writer_raw_record(f.w, 0, 0x80000001u, 0x3, "v", 1));
    wfix_free(&f);
    /* an optional vendor record is fine */
    wfix_open(&f, 1, 0, 0);
    assert_int_equal(ms_writer_raw_record(f.w, 0, 0x80000001u,
                                          MIG_FLAG_OPTIONAL, "v", 1),
                     0);
    wfix_close(&f);
    ms_error_info e;
    assert_int_equal(tb_verify(f.out[0].p, f.out[0].len, NULL, &e), 0);
    wfix_free(&f);
}

static void wr_misuse_packets(void **state)
{
    (void)state;
    wfix f;
    /* a second config packet */
    wfix_open(&f, 2, 0, 0);
    assert_int_equal(ms_writer_image_begin(f.w, 0, 1, MS_PHASE_INITIAL,
                                           MS_TRANSPORT_PACKETS, 0, 0),
                     0);
    assert_int_equal(ms_writer_image_packet(f.w, 1, 1, "d", 1, 0), 0);
    assert_int_equal(ms_writer_image_packet(f.w, 0, 1, "c", 1, 1), 0);
    EXPECT_USAGE(&f, ms_writer_image_packet(f.w, 1, 1, "c", 1, 1));
    wfix_free(&f);
    /* a data packet after the config packet */
    wfix_open(&f, 2, 0, 0);
    assert_int_equal(ms_writer_image_begin(f.w, 0, 1, MS_PHASE_INITIAL,
                                           MS_TRANSPORT_PACKETS, 0, 0),
                     0);
    assert_int_equal(ms_writer_image_packet(f.w, 1, 1, "d", 1, 0), 0);
    assert_int_equal(ms_writer_image_packet(f.w, 0, 1, "c", 1, 1), 0);
    EXPECT_USAGE(&f, ms_writer_image_packet(f.w, 1, 1, "d", 1, 0));
    wfix_free(&f);
    /* image_end before the config packet */
    wfix_open(&f, 2, 0, 0);
    assert_int_equal(ms_writer_image_begin(f.w, 0, 1, MS_PHASE_INITIAL,
                                           MS_TRANSPORT_PACKETS, 0, 0),
                     0);
    assert_int_equal(ms_writer_image_packet(f.w, 1, 1, "d", 1, 0), 0);
    EXPECT_USAGE(&f, ms_writer_image_end(f.w, 1, 0));
    wfix_free(&f);
    /* an empty data packet */
    wfix_open(&f, 2, 0, 0);
    assert_int_equal(ms_writer_image_begin(f.w, 0, 1, MS_PHASE_INITIAL,
                                           MS_TRANSPORT_PACKETS, 0, 0),
                     0);
    EXPECT_USAGE(&f, ms_writer_image_packet(f.w, 1, 1, "", 0, 0));
    wfix_free(&f);
    /* chunk data into a packet-mode image, a packet into a chunk-mode one */
    wfix_open(&f, 1, 0, 0);
    assert_int_equal(ms_writer_image_begin(f.w, 0, 1, MS_PHASE_INITIAL,
                                           MS_TRANSPORT_PACKETS, 0, 0),
                     0);
    EXPECT_USAGE(&f, ms_writer_image_data(f.w, 1, "d", 1));
    wfix_free(&f);
    wfix_open(&f, 1, 0, 0);
    assert_int_equal(ms_writer_image_begin(f.w, 0, 1, MS_PHASE_INITIAL,
                                           MS_TRANSPORT_CHUNKS, 0, 0),
                     0);
    EXPECT_USAGE(&f, ms_writer_image_packet(f.w, 0, 1, "d", 1, 0));
    wfix_free(&f);
}

/* ---- output failure ----------------------------------------------------- */
typedef struct failing {
    tb_buf b;
    size_t budget; /* bytes accepted before failing */
    int calls_after_fail;
} failing;

static int failing_out(void *opaque, const void *buf, size_t len)
{
    failing *f = opaque;
    if (f->b.len + len > f->budget) {
        f->calls_after_fail++;
        return -1;
    }
    tb_put(&f->b, buf, len);
    return 0;
}

static void wr_output_failure(void **state)
{
    (void)state;
    ms_writer_options o;
    ms_writer_options_init(&o);
    o.channel_count = 1;

    /* failing at once: the header write */
    failing fo = {{NULL, 0, 0}, 0, 0};
    ms_writer *w = ms_writer_create(&o);
    assert_non_null(w);
    assert_int_equal(ms_writer_open_channel(w, 0, failing_out, &fo), -1);
    ms_error_info first = *ms_writer_error(w);
    assert_int_not_equal(first.code, MS_ERR_OK);
    assert_int_equal(ms_writer_add_device(w, 1, "x", 0, 0, NULL, 0), -1);
    assert_int_equal(ms_writer_close_channel(w, 0, 0), -1);
    assert_int_equal(ms_writer_error(w)->code, first.code);
    ms_writer_free(w);
    tb_buf_free(&fo.b);

    /* failing in the middle of image data */
    uint8_t a[4000];
    tb_fill_random(a, sizeof a, 5);
    failing f2 = {{NULL, 0, 0}, 1000, 0};
    o.chunk_size = 256;
    w = ms_writer_create(&o);
    assert_non_null(w);
    assert_int_equal(ms_writer_open_channel(w, 0, failing_out, &f2), 0);
    assert_int_equal(ms_writer_add_device(w, 1, "x", 0, 0, NULL, 0), 0);
    assert_int_equal(ms_writer_image_begin(w, 0, 1, MS_PHASE_INITIAL,
                                           MS_TRANSPORT_CHUNKS, 0, 0),
                     0);
    int rc = 0;
    size_t off;
    for (off = 0; off < sizeof a && rc == 0; off += 100)
        rc = ms_writer_image_data(w, 1, a + off, 100);
    if (rc == 0)
        rc = ms_writer_image_end(w, 1, 0);
    if (rc == 0)
        rc = ms_writer_close_channel(w, 0, 0);
    assert_int_equal(rc, -1);
    first = *ms_writer_error(w);
    assert_int_not_equal(first.code, MS_ERR_OK);
    int calls = f2.calls_after_fail;
    assert_int_equal(calls, 1);
    assert_int_equal(ms_writer_image_data(w, 1, a, 10), -1);
    assert_int_equal(ms_writer_image_end(w, 1, 0), -1);
    assert_int_equal(ms_writer_close_channel(w, 0, 0), -1);
    assert_int_equal(ms_writer_error(w)->code, first.code);
    assert_string_equal(ms_writer_error(w)->detail, first.detail);
    ms_writer_free(w);
    /* what was written is a clean prefix: the reader stops at its end */
    ms_error_info e;
    assert_int_equal(tb_verify(f2.b.p, f2.b.len, NULL, &e), -1);
    assert_true(e.code == MS_ERR_TRUNCATED || e.code == MS_ERR_MISSING_END);
    assert_int_equal(e.offset, f2.b.len);
    tb_buf_free(&f2.b);
}

/* ---- API ---------------------------------------------------------------- */
static void wr_api_defaults(void **state)
{
    (void)state;
    ms_writer_free(NULL);
    ms_writer_options o;
    ms_writer_options_init(&o);
    assert_int_equal(o.struct_size, sizeof o);
    o.struct_size = MS_WRITER_OPTIONS_SIZE_V1 - 1;
    assert_null(ms_writer_create(&o));
    o.struct_size = sizeof o;
    o.format_major = 3; /* no such version */
    assert_null(ms_writer_create(&o));
    /* defaults: NULL options */
    ms_writer *w = ms_writer_create(NULL);
    if (w) {
        tb_buf b;
        tb_buf_init(&b);
        assert_int_equal(ms_writer_open_channel(w, 0, to_buf, &b), 0);
        assert_int_equal(ms_writer_close_channel(w, 0, 0), 0);
        ms_error_info e;
        assert_int_equal(tb_verify(b.p, b.len, NULL, &e), 0);
        tb_buf_free(&b);
        ms_writer_free(w);
    }
    /* opening a channel twice */
    wfix f;
    wfix_open(&f, 1, 0, 0);
    tb_buf extra;
    tb_buf_init(&extra);
    EXPECT_USAGE(&f, ms_writer_open_channel(f.w, 0, to_buf, &extra));
    tb_buf_free(&extra);
    wfix_free(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(wr_output_verified),
        cmocka_unit_test(wr_chunks_and_compression),
        cmocka_unit_test(wr_empty_channels),
        cmocka_unit_test(wr_misuse_data_without_begin),
        cmocka_unit_test(wr_misuse_two_open_images),
        cmocka_unit_test(wr_misuse_phase_order),
        cmocka_unit_test(wr_misuse_device_after_writing),
        cmocka_unit_test(wr_misuse_device_args),
        cmocka_unit_test(wr_misuse_unknown_device),
        cmocka_unit_test(wr_misuse_channels),
        cmocka_unit_test(wr_misuse_close_with_open_image),
        cmocka_unit_test(wr_misuse_write_after_close),
        cmocka_unit_test(wr_misuse_vendor_tag_mandatory),
        cmocka_unit_test(wr_misuse_packets),
        cmocka_unit_test(wr_output_failure),
        cmocka_unit_test(wr_api_defaults),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
