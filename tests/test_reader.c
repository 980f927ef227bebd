/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* The reader: round trips through the writer, slicing independence,
 * truncation at every offset, single-bit flips, zero copy, API rules
 * (usage errors, sticky errors, defaults). */
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

static void print_err(const char *what, const ms_error_info *e)
{
    print_message("%s: %s at %llu%s: %s\n", what, ms_error_name(e->code),
                  (unsigned long long)e->offset,
                  e->has_channel ? " (channel)" : "", e->detail);
}

/* ---- a hand-built stream with every record kind, and its boundaries ---- */
typedef struct rich {
    tb_stream s;
    size_t bounds[64]; /* offsets where a record (or the header) ends */
    size_t nb;
    size_t rec_start[64]; /* first byte of every record */
    size_t nr;
    uint8_t img0[300], img1[300], img2[120], cfg[10];
} rich;

static void mark(rich *r)
{
    r->rec_start[r->nr++] = r->s.last_off;
    r->bounds[r->nb++] = r->s.b.len;
}

/* The format version build_rich writes: 1, or 2 for the tests run with
 * the v2 setup (the same checks on a 2.0 stream, spec 4.3). */
static uint16_t rich_major = 1;

static int v2_setup(void **state)
{
    (void)state;
    rich_major = 2;
    return 0;
}

static int v2_teardown(void **state)
{
    (void)state;
    rich_major = 1;
    return 0;
}

/* IMAGE_END's image_hash of `data` in units of `unit` bytes. */
static uint64_t rich_hash(const void *data, size_t len, size_t unit)
{
    return rich_major >= 2 ? tb_units_hash(data, len, unit)
                           : tb_hash(data, len);
}

static void build_rich(rich *r)
{
    memset(r, 0, sizeof *r);
    tb_stream *s = &r->s;
    tb_fill_random(r->img0, sizeof r->img0, 1);
    tb_fill_compressible(r->img1, sizeof r->img1, 2);
    tb_fill_random(r->img2, sizeof r->img2, 3);
    tb_fill_random(r->cfg, sizeof r->cfg, 4);
    tb_stream_init(s);
    tb_header_ex(s, tb_magic, rich_major, 0, 0, tb_uuid_a, 0, 1, 1234, 0);
    r->bounds[r->nb++] = s->b.len;
    tb_device_ex(s, 1, 0, MS_PAYLOAD_MLX5, "0000:00:02.0/vfio", "abc", 3);
    mark(r);
    tb_device(s, 2, "0000:00:03.0/vfio", MS_PAYLOAD_VIRTIO);
    mark(r);
    tb_precopy_info(s, 1, 0, 300, 300, 10);
    mark(r);
    tb_state_change(s, 1, 2, 6, 11);
    mark(r);
    tb_stop_copy_size(s, 1, 600, 12);
    mark(r);
    tb_image_begin(s, 1, 0, 1, 0, 1, 13);
    mark(r);
    for (int i = 0; i < 3; i++) {
        tb_chunk(s, 1, 0, 0, r->img0 + 100 * i, 100);
        mark(r);
    }
    tb_image_end(s, 1, 0, 300, rich_hash(r->img0, 300, 100), 3, 14, 0, 0);
    mark(r);
    tb_record(s, MIG_FLAG_OPTIONAL, 0x80000001u, "vendor", 6);
    mark(r);
    tb_image_begin(s, 1, 1, 2, 0, 0, 15);
    mark(r);
    for (int i = 0; i < 2; i++) {
        tb_chunk(s, 1, 1, 1, r->img1 + 150 * i, 150);
        mark(r);
    }
    tb_image_end(s, 1, 1, 300, rich_hash(r->img1, 300, 150), 2, 16, 0, 0);
    mark(r);
    tb_image_begin(s, 2, 0, 3, 1, 0, 17);
    mark(r);
    for (uint32_t i = 0; i < 3; i++) {
        tb_packet(s, 2, 0, i, 0, r->img2 + 40 * i, 40);
        mark(r);
    }
    tb_packet(s, 2, 0, 3, 1, r->cfg, sizeof r->cfg);
    mark(r);
    tb_image_end(s, 2, 0, 120, rich_hash(r->img2, 120, 40), 3, 18,
                 sizeof r->cfg,
                 tb_hash(r->cfg, sizeof r->cfg));
    mark(r);
    tb_end_auto(s, 19);
    mark(r);
}

static int is_boundary(const rich *r, size_t off)
{
    for (size_t i = 0; i < r->nb; i++)
        if (r->bounds[i] == off)
            return 1;
    return 0;
}

static void rd_rich_stream_reads(void **state)
{
    (void)state;
    rich r;
    build_rich(&r);
    tb_result res;
    int rc = tb_read_all(r.s.b.p, r.s.b.len, NULL, &res);
    if (rc)
        print_err("rich stream", &res.err);
    assert_int_equal(rc, 0);
    /* exactly one event per record, in stream order, at the record */
    static const ms_event_kind kinds[] = {
        MS_EV_STREAM_HEADER, MS_EV_DEVICE,       MS_EV_DEVICE,
        MS_EV_PRECOPY_INFO,  MS_EV_STATE_CHANGE, MS_EV_STOP_COPY_SIZE,
        MS_EV_IMAGE_BEGIN,   MS_EV_CHUNK,        MS_EV_CHUNK,
        MS_EV_CHUNK,         MS_EV_IMAGE_END,    MS_EV_RECORD,
        MS_EV_IMAGE_BEGIN,   MS_EV_CHUNK,        MS_EV_CHUNK,
        MS_EV_IMAGE_END,     MS_EV_IMAGE_BEGIN,  MS_EV_PACKET,
        MS_EV_PACKET,        MS_EV_PACKET,       MS_EV_PACKET,
        MS_EV_IMAGE_END,     MS_EV_END};
    assert_int_equal(res.n_events, sizeof kinds / sizeof kinds[0]);
    assert_int_equal(res.n_events, r.nr + 1);
    for (size_t i = 0; i < res.n_events; i++) {
        const ms_event *e = &res.events[i];
        if (e->kind != kinds[i])
            print_message("event %zu: %s, expected %s\n", i,
                          ms_event_kind_name(e->kind),
                          ms_event_kind_name(kinds[i]));
        assert_int_equal(e->kind, kinds[i]);
        if (i == 0) {
            assert_int_equal(e->offset, 0);
            assert_int_equal(e->length, 64);
            continue;
        }
        assert_int_equal(e->offset, r.rec_start[i - 1]);
        size_t rec_len = r.bounds[i] - r.rec_start[i - 1];
        if (e->kind != MS_EV_CHUNK && e->kind != MS_EV_PACKET)
            assert_int_equal(e->length, rec_len);
    }
    assert_int_equal(res.data_offset_errors, 0);
    tb_image *im = tb_result_image(&res, 1, 0);
    assert_non_null(im);
    assert_int_equal(im->data.len, 300);
    assert_memory_equal(im->data.p, r.img0, 300);
    im = tb_result_image(&res, 1, 1);
    assert_non_null(im);
    assert_int_equal(im->data.len, 300);
    assert_memory_equal(im->data.p, r.img1, 300);
    im = tb_result_image(&res, 2, 0);
    assert_non_null(im);
    assert_int_equal(im->pkt.len, 130);
    assert_memory_equal(im->pkt.p, r.img2, 120);
    assert_memory_equal(im->pkt.p + 120, r.cfg, 10);
    /* the stream is a few hundred bytes to a few KB */
    assert_true(r.s.b.len > 500 && r.s.b.len < 4096);
    tb_result_free(&res);
    tb_stream_free(&r.s);
}

/* ---- slicing independence ----------------------------------------------- */
static void check_slicing(const uint8_t *p, size_t len, const ms_options *o)
{
    tb_result a, b, c;
    char why[200];
    tb_read_all(p, len, o, &a);
    if (a.rc)
        print_err("one slice", &a.err);
    assert_int_equal(a.rc, 0);
    tb_read_bytewise(p, len, o, &b);
    if (!tb_events_equal(&a, &b, why, sizeof why)) {
        print_message("byte by byte differs from one slice: %s\n", why);
        if (b.rc)
            print_err("byte by byte", &b.err);
        fail();
    }
    for (uint64_t seed = 1; seed <= 8; seed++) {
        tb_read_random(p, len, o, seed, 1 + 37 * seed, &c);
        if (!tb_events_equal(&a, &c, why, sizeof why)) {
            print_message("random slices (seed %llu) differ from one slice: "
                          "%s\n",
                          (unsigned long long)seed, why);
            if (c.rc)
                print_err("random", &c.err);
            fail();
        }
        tb_result_free(&c);
    }
    tb_result_free(&a);
    tb_result_free(&b);
}

static void rd_bytewise_equals_one_slice(void **state)
{
    (void)state;
    rich r;
    build_rich(&r);
    check_slicing(r.s.b.p, r.s.b.len, NULL);
    ms_options o;
    ms_options_init(&o);
    o.record_events = 1;
    check_slicing(r.s.b.p, r.s.b.len, &o);
    ms_options_init(&o);
    o.input_stable = 1;
    check_slicing(r.s.b.p, r.s.b.len, &o);
    tb_stream_free(&r.s);
}

/* ---- truncation at every offset ----------------------------------------- */
static void rd_truncation_every_offset(void **state)
{
    (void)state;
    rich r;
    build_rich(&r);
    size_t bad = 0;
    for (size_t cut = 0; cut < r.s.b.len; cut++) {
        tb_result res;
        int rc;
        if (cut % 7 == 3)
            rc = tb_read_bytewise(r.s.b.p, cut, NULL, &res);
        else
            rc = tb_read_all(r.s.b.p, cut, NULL, &res);
        ms_error want = is_boundary(&r, cut) ? MS_ERR_MISSING_END
                                             : MS_ERR_TRUNCATED;
        if (rc == 0) {
            print_message("cut at %zu of %zu: accepted\n", cut, r.s.b.len);
            bad++;
        } else if (cut > 0 &&
                   (res.err.code != want || res.err.offset != cut)) {
            if (bad < 10)
                print_message("cut at %zu: expected %s at %zu, got %s at "
                              "%llu: %s\n",
                              cut, ms_error_name(want), cut,
                              ms_error_name(res.err.code),
                              (unsigned long long)res.err.offset,
                              res.err.detail);
            bad++;
        }
        tb_result_free(&res);
    }
    if (bad)
        print_message("%zu of %zu cuts wrong\n", bad, r.s.b.len);
    assert_int_equal(bad, 0);
    tb_stream_free(&r.s);
}

/* The same for a stream the writer made (boundaries unknown here: either
 * truncated or missing-end, at the cut). */
static void rd_truncation_writer_stream(void **state)
{
    (void)state;
    uint8_t data[700];
    tb_fill_compressible(data, sizeof data, 11);
    tb_wdevice devs[] = {{1, "0000:00:02.0/vfio", 0, 1, 0, NULL, 0}};
    tb_wimage imgs[] = {
        {1, MS_PHASE_INITIAL, MS_TRANSPORT_CHUNKS, data, 500, 130, NULL, 0, 1},
        {1, MS_PHASE_FINAL, MS_TRANSPORT_PACKETS, data + 500, 200, 64,
         data, 5, 0},
    };
    tb_workload wl = {1, 6, 256, NULL, 0, devs, 1, imgs, 2, 0};
    tb_buf out;
    tb_buf_init(&out);
    ms_error_info err;
    int rc = tb_write_workload(&wl, &out, &err);
    if (rc)
        print_err("writer", &err);
    assert_int_equal(rc, 0);
    assert_int_equal(tb_verify(out.p, out.len, NULL, &err), 0);
    size_t bad = 0;
    for (size_t cut = 0; cut < out.len; cut++) {
        tb_result res;
        rc = tb_read_all(out.p, cut, NULL, &res);
        if (rc == 0 ||
            (cut > 0 && ((res.err.code != MS_ERR_TRUNCATED &&
                          res.err.code != MS_ERR_MISSING_END) ||
                         res.err.offset != cut))) {
            if (bad < 10)
                print_message("cut at %zu: rc %d, %s at %llu: %s\n", cut, rc,
                              ms_error_name(res.err.code),
                              (unsigned long long)res.err.offset,
                              res.err.detail);
            bad++;
        }
        tb_result_free(&res);
    }
    assert_int_equal(bad, 0);
    tb_buf_free(&out);
}

/* ---- single-bit flips --------------------------------------------------- */
static size_t flip_range(const uint8_t *p, size_t len, size_t from, size_t to,
                         const char *what)
{
    uint8_t *q = malloc(len);
    size_t missed = 0;
    memcpy(q, p, len);
    for (size_t i = from; i < to; i++) {
        for (int b = 0; b < 8; b++) {
            q[i] ^= (uint8_t)(1u << b);
            ms_error_info e;
            if (tb_verify(q, len, NULL, &e) == 0) {
                if (missed < 10)
                    print_message("%s: flip of bit %d at offset %zu not "
                                  "caught\n",
                                  what, b, i);
                missed++;
            }
            q[i] ^= (uint8_t)(1u << b);
        }
    }
    free(q);
    return missed;
}

static void rd_bitflip_headers(void **state)
{
    (void)state;
    rich r;
    build_rich(&r);
    size_t missed = flip_range(r.s.b.p, r.s.b.len, 0, 64, "stream header");
    for (size_t i = 0; i < r.nr; i++)
        missed += flip_range(r.s.b.p, r.s.b.len, r.rec_start[i],
                             r.rec_start[i] + 24, "record header");
    assert_int_equal(missed, 0);
    tb_stream_free(&r.s);
}

static void rd_bitflip_everywhere(void **state)
{
    (void)state;
    rich r;
    build_rich(&r);
    /* payloads and payload checks (every byte, every bit) */
    size_t missed = flip_range(r.s.b.p, r.s.b.len, 0, r.s.b.len, "stream");
    assert_int_equal(missed, 0);
    tb_stream_free(&r.s);
}

/* ---- verify_checks = 0 -------------------------------------------------- */
static void rd_verify_checks_off(void **state)
{
    (void)state;
    rich r;
    build_rich(&r);
    ms_options o;
    ms_options_init(&o);
    o.verify_checks = 0;
    tb_result a, b;
    char why[200];
    assert_int_equal(tb_read_all(r.s.b.p, r.s.b.len, NULL, &a), 0);
    int rc = tb_read_all(r.s.b.p, r.s.b.len, &o, &b);
    if (rc)
        print_err("verify_checks=0", &b.err);
    assert_int_equal(rc, 0);
    if (!tb_events_equal(&a, &b, why, sizeof why)) {
        print_message("verify_checks=0 events differ: %s\n", why);
        fail();
    }
    tb_result_free(&b);
    assert_int_equal(tb_read_bytewise(r.s.b.p, r.s.b.len, &o, &b), 0);
    tb_result_free(&b);
    /* a wrong payload check is not looked at */
    tb_stream t;
    tb_stream_init(&t);
    tb_header(&t, tb_uuid_a, 0, 1);
    size_t off = tb_device(&t, 1, "dev", 0);
    size_t dlen = t.last_len;
    tb_end_auto(&t, 0);
    t.b.p[off + dlen - 1] ^= 0x01; /* DEVICE payload check */
    ms_error_info e;
    assert_int_equal(tb_verify(t.b.p, t.b.len, NULL, &e), -1);
    assert_int_equal(e.code, MS_ERR_PAYLOAD_CHECK);
    rc = tb_verify(t.b.p, t.b.len, &o, &e);
    if (rc)
        print_err("verify_checks=0 with a bad payload check", &e);
    assert_int_equal(rc, 0);
    tb_stream_free(&t);
    tb_result_free(&a);
    tb_stream_free(&r.s);
}

/* ---- zero copy ---------------------------------------------------------- */
static void rd_zero_copy(void **state)
{
    (void)state;
    uint8_t data[256], zd[256];
    tb_fill_random(data, sizeof data, 21);
    tb_fill_compressible(zd, sizeof zd, 22);
    uint8_t all[512];
    memcpy(all, data, 256);
    memcpy(all + 256, zd, 256);
    tb_stream s;
    tb_stream_init(&s);
    tb_header(&s, tb_uuid_a, 0, 1);
    tb_device(&s, 1, "d", 0);
    tb_image_begin(&s, 1, 0, 1, 0, 0, 0);
    size_t ch = tb_chunk(&s, 1, 0, 0, data, sizeof data);
    size_t zch = tb_chunk(&s, 1, 0, 1, zd, sizeof zd);
    tb_image_end(&s, 1, 0, 512, tb_hash(all, 512), 2, 0, 0, 0);
    tb_end_auto(&s, 0);

    ms_reader *r = ms_reader_create(NULL);
    assert_non_null(r);
    assert_int_equal(ms_reader_input(r, s.b.p, s.b.len), 0);
    ms_event ev;
    int k, raw_seen = 0, z_seen = 0;
    uint64_t raw_total = 0, z_total = 0;
    while ((k = ms_reader_next(r, &ev)) == MS_NEXT_EVENT) {
        if (ev.kind != MS_EV_DATA)
            continue;
        if (ev.u.data.image_offset < 256) {
            /* the raw chunk: points into our buffer, at the data bytes */
            assert_int_equal(ev.u.data.zero_copy, 1);
            assert_int_equal(ev.u.data.compressed, 0);
            assert_int_equal(ev.u.data.in_packet, 0);
            assert_true(ev.u.data.data >= s.b.p &&
                        ev.u.data.data + ev.u.data.size <= s.b.p + s.b.len);
            assert_int_equal(ev.u.data.data - s.b.p,
                             ch + 24 + 16 + ev.u.data.image_offset);
            assert_int_equal(ev.u.data.stream_offset,
                             ch + 24 + 16 + ev.u.data.image_offset);
            assert_memory_equal(ev.u.data.data,
                                data + ev.u.data.image_offset,
                                ev.u.data.size);
            raw_seen++;
            raw_total += ev.u.data.size;
        } else {
            assert_int_equal(ev.u.data.compressed, 1);
            assert_int_equal(ev.u.data.zero_copy, 0);
            /* decompressed bytes: the offset of the chunk's data */
            assert_int_equal(ev.u.data.stream_offset, zch + 24 + 16);
            assert_memory_equal(ev.u.data.data,
                                zd + ev.u.data.image_offset - 256,
                                ev.u.data.size);
            z_seen++;
            z_total += ev.u.data.size;
        }
        assert_int_equal(ev.u.data.device, 1);
        assert_int_equal(ev.u.data.seq, 0);
        assert_int_equal(ev.u.data.phase, MS_PHASE_INITIAL);
    }
    if (k != MS_NEXT_INPUT)
        print_err("zero copy stream", ms_reader_error(r));
    assert_int_equal(k, MS_NEXT_INPUT);
    assert_int_equal(ms_reader_finish(r), 0);
    assert_true(raw_seen >= 1 && z_seen >= 1);
    assert_int_equal(raw_total, 256);
    assert_int_equal(z_total, 256);
    assert_int_equal(ms_reader_offset(r), s.b.len);
    assert_int_equal(ms_reader_format(r), MS_FORMAT_MIGSTREAM);
    ms_reader_free(r);
    tb_stream_free(&s);
}

/* ---- API rules ---------------------------------------------------------- */
static void rd_input_while_unconsumed(void **state)
{
    (void)state;
    rich rs;
    build_rich(&rs);
    ms_reader *r = ms_reader_create(NULL);
    assert_non_null(r);
    assert_int_equal(ms_reader_input(r, rs.s.b.p, rs.s.b.len), 0);
    ms_event ev;
    assert_int_equal(ms_reader_next(r, &ev), MS_NEXT_EVENT);
    assert_int_equal(ev.kind, MS_EV_STREAM_HEADER);
    /* the slice is not consumed yet */
    assert_int_not_equal(ms_reader_input(r, rs.s.b.p, rs.s.b.len), 0);
    const ms_error_info *e = ms_reader_error(r);
    assert_non_null(e);
    assert_int_equal(e->code, MS_ERR_USAGE);
    /* and that is sticky */
    assert_int_equal(ms_reader_next(r, &ev), MS_NEXT_ERROR);
    assert_int_equal(ms_reader_error(r)->code, MS_ERR_USAGE);
    assert_int_not_equal(ms_reader_finish(r), 0);
    ms_reader_free(r);
    tb_stream_free(&rs.s);
}

static void rd_errors_sticky(void **state)
{
    (void)state;
    rich rs;
    build_rich(&rs);
    size_t victim = rs.rec_start[3];
    rs.s.b.p[victim + 2] ^= 0x08; /* record-check at victim */
    ms_reader *r = ms_reader_create(NULL);
    assert_non_null(r);
    assert_int_equal(ms_reader_input(r, rs.s.b.p, rs.s.b.len), 0);
    ms_event ev;
    int k;
    while ((k = ms_reader_next(r, &ev)) == MS_NEXT_EVENT)
        ;
    assert_int_equal(k, MS_NEXT_ERROR);
    ms_error_info first = *ms_reader_error(r);
    assert_int_equal(first.code, MS_ERR_RECORD_CHECK);
    assert_int_equal(first.offset, victim);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(ms_reader_next(r, &ev), MS_NEXT_ERROR);
        const ms_error_info *e = ms_reader_error(r);
        assert_int_equal(e->code, first.code);
        assert_int_equal(e->offset, first.offset);
        assert_string_equal(e->detail, first.detail);
    }
    assert_int_not_equal(ms_reader_input(r, rs.s.b.p, 10), 0);
    assert_int_equal(ms_reader_error(r)->code, first.code);
    assert_int_equal(ms_reader_next(r, &ev), MS_NEXT_ERROR);
    assert_int_not_equal(ms_reader_finish(r), 0);
    assert_int_equal(ms_reader_error(r)->code, first.code);
    assert_int_equal(ms_reader_error(r)->offset, first.offset);
    ms_reader_free(r);

    /* an error found by finish is sticky too */
    r = ms_reader_create(NULL);
    assert_non_null(r);
    assert_int_equal(ms_reader_input(r, rs.s.b.p, 30), 0);
    while ((k = ms_reader_next(r, &ev)) == MS_NEXT_EVENT)
        ;
    assert_int_equal(k, MS_NEXT_INPUT);
    assert_int_not_equal(ms_reader_finish(r), 0);
    assert_int_equal(ms_reader_error(r)->code, MS_ERR_TRUNCATED);
    assert_int_equal(ms_reader_error(r)->offset, 30);
    assert_int_equal(ms_reader_next(r, &ev), MS_NEXT_ERROR);
    assert_int_not_equal(ms_reader_finish(r), 0);
    assert_int_equal(ms_reader_error(r)->code, MS_ERR_TRUNCATED);
    ms_reader_free(r);
    tb_stream_free(&rs.s);
}

static void rd_create_defaults(void **state)
{
    (void)state;
    rich rs;
    build_rich(&rs);
    ms_reader *r = ms_reader_create(NULL);
    assert_non_null(r);
    const ms_error_info *e = ms_reader_error(r);
    assert_non_null(e);
    assert_int_equal(e->code, MS_ERR_OK);
    assert_int_equal(ms_reader_offset(r), 0);
    ms_reader_free(r);
    ms_reader_free(NULL);

    ms_options o;
    ms_options_init(&o);
    assert_int_equal(o.struct_size, sizeof o);
    assert_int_equal(o.max_record_payload, 1ull << 30);
    assert_int_equal(o.max_devices, 4096);
    assert_int_equal(o.max_images, 1u << 20);
    assert_int_equal(o.max_name_length, 255);
    assert_int_equal(o.max_compat_length, 65536);
    assert_int_equal(o.max_channels, 1024);
    assert_int_equal(o.max_packets, 1u << 24);
    assert_int_equal(o.max_buffered_bytes, 256ull << 20);
    assert_int_equal(o.verify_checks, 1);
    o.struct_size = (uint32_t)MS_OPTIONS_SIZE_V1 - 4; /* older than v1 */
    assert_null(ms_reader_create(&o));
    o.struct_size = 0;
    assert_null(ms_reader_create(&o));
    o.struct_size = sizeof o + 8;
    assert_null(ms_reader_create(&o));
    tb_stream_free(&rs.s);
}

/* record_events: one MS_EV_RECORD per record, END included. */
static void rd_record_events(void **state)
{
    (void)state;
    rich rs;
    build_rich(&rs);
    ms_options o;
    ms_options_init(&o);
    o.record_events = 1;
    tb_result res;
    assert_int_equal(tb_read_all(rs.s.b.p, rs.s.b.len, &o, &res), 0);
    assert_int_equal(tb_result_count(&res, MS_EV_RECORD),
                     rs.s.record_count);
    for (size_t i = 0, n = 0; i < res.n_events; i++) {
        if (res.events[i].kind != MS_EV_RECORD)
            continue;
        assert_int_equal(res.events[i].offset, rs.rec_start[n]);
        n++;
    }
    tb_result_free(&res);
    /* without the option, only the skipped unknown record */
    assert_int_equal(tb_read_all(rs.s.b.p, rs.s.b.len, NULL, &res), 0);
    assert_int_equal(tb_result_count(&res, MS_EV_RECORD), 1);
    tb_result_free(&res);
    tb_stream_free(&rs.s);
}

/* A caller's allocator is used, and everything is given back. */
typedef struct counting {
    long allocs, frees;
} counting;

static void *c_alloc(void *opaque, size_t n)
{
    ((counting *)opaque)->allocs++;
    return malloc(n);
}

static void c_free(void *opaque, void *p)
{
    if (p)
        ((counting *)opaque)->frees++;
    free(p);
}

/* Options whose allocator counts into *c. */
static void counting_options(ms_options *o, counting *c)
{
    ms_options_init(o);
    o->allocator.alloc = c_alloc;
    o->allocator.free = c_free;
    o->allocator.opaque = c;
}

static void rd_allocator(void **state)
{
    (void)state;
    rich rs;
    build_rich(&rs);
    counting c = {0, 0};
    ms_options o;
    counting_options(&o, &c);
    tb_result res;
    assert_int_equal(tb_read_bytewise(rs.s.b.p, rs.s.b.len, &o, &res), 0);
    tb_result_free(&res);
    assert_true(c.allocs > 0);
    assert_int_equal(c.allocs, c.frees);
    tb_stream_free(&rs.s);
}

/* ---- round trips through the writer ------------------------------------- */
typedef struct wl_case {
    const char *name;
    uint32_t channels;
    int compression;
    int packets; /* also packet-mode images */
    int format_major; /* 0: the writer's default (2.0) */
} wl_case;

static void roundtrip(const wl_case *c)
{
    enum { NIMG = 7 };
    static uint8_t data[NIMG][3000];
    static uint8_t cfg[NIMG][40];
    size_t lens[NIMG] = {3000, 1234, 0, 2048, 777, 2999, 1};
    for (int i = 0; i < NIMG; i++) {
        if (i % 2)
            tb_fill_compressible(data[i], sizeof data[i], 100 + i);
        else
            tb_fill_random(data[i], sizeof data[i], 100 + i);
        tb_fill_random(cfg[i], sizeof cfg[i], 200 + i);
    }
    uint32_t nch = c->channels;
    tb_wdevice devs[3] = {
        {10, "0000:00:02.0/vfio", 0, MS_PAYLOAD_MLX5, 0, "compat", 6},
        {11, "0000:00:03.0/vfio", 1, MS_PAYLOAD_VIRTIO, 1 % nch, NULL, 0},
        {12, "0000:00:04.0/vfio", 2, MS_PAYLOAD_QAT, 3 % nch, NULL, 0},
    };
    ms_transport pk = c->packets ? MS_TRANSPORT_PACKETS : MS_TRANSPORT_CHUNKS;
    tb_wimage imgs[NIMG] = {
        {10, MS_PHASE_INITIAL, MS_TRANSPORT_CHUNKS, data[0], lens[0], 700,
         NULL, 0, 1},
        {11, MS_PHASE_INITIAL, pk, data[1], lens[1], 300, cfg[1], 17, 1},
        {10, MS_PHASE_MIDDLE, MS_TRANSPORT_CHUNKS, data[2], lens[2], 100,
         NULL, 0, 0},
        {12, MS_PHASE_MIDDLE, pk, data[3], lens[3], 512, cfg[3], 0, 0},
        {11, MS_PHASE_MIDDLE, pk, data[4], lens[4], 1000, cfg[4], 40, 0},
        {10, MS_PHASE_FINAL, MS_TRANSPORT_CHUNKS, data[5], lens[5], 999, NULL,
         0, 1},
        {12, MS_PHASE_FINAL, MS_TRANSPORT_CHUNKS, data[6], lens[6], 1, NULL,
         0, 0},
    };
    tb_workload wl = {nch, c->compression, 1024, NULL, 42, devs, 3, imgs,
                      NIMG, c->format_major};
    tb_buf out[4];
    for (int i = 0; i < 4; i++)
        tb_buf_init(&out[i]);
    ms_error_info err;
    int rc = tb_write_workload(&wl, out, &err);
    if (rc)
        print_message("[%s] writer: %s at %llu: %s\n", c->name,
                      ms_error_name(err.code),
                      (unsigned long long)err.offset, err.detail);
    assert_int_equal(rc, 0);

    /* each channel alone verifies, whatever the slicing */
    for (uint32_t ch = 0; ch < nch; ch++) {
        tb_result res;
        rc = tb_read_all(out[ch].p, out[ch].len, NULL, &res);
        if (rc)
            print_message("[%s] channel %u: %s at %llu: %s\n", c->name, ch,
                          ms_error_name(res.err.code),
                          (unsigned long long)res.err.offset,
                          res.err.detail);
        assert_int_equal(rc, 0);
        const ms_event *h = tb_result_find(&res, MS_EV_STREAM_HEADER, 0);
        assert_non_null(h);
        assert_int_equal(h->u.stream.channel_index, ch);
        assert_int_equal(h->u.stream.channel_count, nch);
        assert_int_equal(h->u.stream.version_major,
                         c->format_major ? c->format_major : 2);
        assert_int_equal(h->u.stream.version_minor, 0);
        assert_int_equal(h->u.stream.created_ns, 42);
        assert_memory_equal(h->u.stream.uuid, tb_uuid_a, 16);
        const ms_event *e = tb_result_find(&res, MS_EV_END, 0);
        assert_non_null(e);
        assert_int_equal(e->u.end.stream_bytes, e->offset);
        if (c->compression == 0) {
            for (size_t i = 0; i < res.n_events; i++)
                if (res.events[i].kind == MS_EV_CHUNK)
                    assert_int_equal(res.events[i].u.chunk.compression, 0);
        }
        tb_result_free(&res);
        if (out[ch].len < 20000)
            check_slicing(out[ch].p, out[ch].len, NULL);
    }

    /* the set reassembles every image, whatever the interleaving */
    struct {
        size_t slice;
        uint64_t seed;
    } modes[] = {{0, 0}, {1, 0}, {29, 0}, {64, 7}, {200, 99}};
    for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
        tb_result res;
        rc = tb_run_set(out, nch, NULL, modes[m].slice, modes[m].seed, &res);
        if (rc)
            print_message("[%s] set (slice %zu seed %llu): %s at %llu: %s\n",
                          c->name, modes[m].slice,
                          (unsigned long long)modes[m].seed,
                          ms_error_name(res.err.code),
                          (unsigned long long)res.err.offset, res.err.detail);
        assert_int_equal(rc, 0);
        assert_int_equal(res.data_offset_errors, 0);
        uint32_t seqs[13] = {0};
        size_t compressed = 0;
        for (size_t i = 0; i < res.n_events; i++)
            if (res.events[i].kind == MS_EV_CHUNK &&
                res.events[i].u.chunk.compression == MS_COMPRESSION_ZLIB)
                compressed++;
        for (int i = 0; i < NIMG; i++) {
            uint32_t dev = imgs[i].device;
            uint32_t seq = seqs[dev]++;
            tb_image *im = tb_result_image(&res, dev, seq);
            if (imgs[i].len == 0 && !im)
                continue; /* empty chunk image: no DATA, maybe no entry */
            if (!im) {
                print_message("[%s] image %u/%u missing\n", c->name, dev,
                              seq);
                fail();
            }
            assert_true(im->ended);
            assert_int_equal(im->end.length, imgs[i].len);
            assert_int_equal(im->end.hash, tb_wimage_hash(&wl, &imgs[i]));
            if (imgs[i].transport == MS_TRANSPORT_PACKETS)
                assert_int_equal(im->asm_info.hash, im->end.hash);
            if (im->data.len != imgs[i].len ||
                (imgs[i].len &&
                 memcmp(im->data.p, imgs[i].data, imgs[i].len) != 0)) {
                print_message("[%s] image %u/%u: %zu bytes read, %zu "
                              "written, contents %s\n",
                              c->name, dev, seq, im->data.len, imgs[i].len,
                              im->data.len == imgs[i].len ? "differ" : "-");
                fail();
            }
            if (imgs[i].transport == MS_TRANSPORT_PACKETS) {
                assert_true(im->assembled);
                assert_int_equal(im->asm_info.length, imgs[i].len);
                assert_int_equal(im->config.len, imgs[i].config_len);
                if (imgs[i].config_len)
                    assert_memory_equal(im->config.p, imgs[i].config,
                                        imgs[i].config_len);
                assert_int_equal(im->end.config_length, imgs[i].config_len);
                assert_int_equal(
                    im->end.config_hash,
                    tb_hash(imgs[i].config, imgs[i].config_len));
            } else {
                assert_false(im->assembled);
            }
        }
        if (c->compression)
            assert_true(compressed > 0);
        else
            assert_int_equal(compressed, 0);
        tb_result_free(&res);
    }
    for (int i = 0; i < 4; i++)
        tb_buf_free(&out[i]);
}

static void rd_roundtrip_1ch_chunks_raw(void **state)
{
    (void)state;
    wl_case c = {"1ch chunks raw", 1, 0, 0, 0};
    roundtrip(&c);
}

static void rd_roundtrip_1ch_chunks_zlib(void **state)
{
    (void)state;
    wl_case c = {"1ch chunks zlib6", 1, 6, 0, 0};
    roundtrip(&c);
}

static void rd_roundtrip_1ch_packets_raw(void **state)
{
    (void)state;
    wl_case c = {"1ch packets raw", 1, 0, 1, 0};
    roundtrip(&c);
}

static void rd_roundtrip_4ch_packets_raw(void **state)
{
    (void)state;
    wl_case c = {"4ch packets raw", 4, 0, 1, 0};
    roundtrip(&c);
}

static void rd_roundtrip_4ch_packets_zlib(void **state)
{
    (void)state;
    wl_case c = {"4ch packets zlib6", 4, 6, 1, 0};
    roundtrip(&c);
}

static void rd_roundtrip_4ch_chunks_zlib(void **state)
{
    (void)state;
    wl_case c = {"4ch chunks zlib6", 4, 6, 0, 0};
    roundtrip(&c);
}

/* The writer's 1.0 on request, read back by the same rules as 1.0 files. */
static void rd_roundtrip_v1_1ch_chunks_zlib(void **state)
{
    (void)state;
    wl_case c = {"1.0 1ch chunks zlib6", 1, 6, 1, 1};
    roundtrip(&c);
}

static void rd_roundtrip_v1_4ch_packets_raw(void **state)
{
    (void)state;
    wl_case c = {"1.0 4ch packets raw", 4, 0, 1, 1};
    roundtrip(&c);
}

/* 2.0: the last DATA event of every unit carries its unit hash (spec 4.3):
 * raw chunks, zlib chunks (of the inflated bytes), packets. */
static void rd_unit_hashes(void **state)
{
    (void)state;
    rich r;
    build_rich(&r);
    const uint8_t *unit_data[] = {r.img0, r.img0 + 100, r.img0 + 200,
                                  r.img1, r.img1 + 150, r.img2,
                                  r.img2 + 40, r.img2 + 80, r.cfg};
    size_t unit_len[] = {100, 100, 100, 150, 150, 40, 40, 40, sizeof r.cfg};
    size_t n_units = sizeof unit_len / sizeof unit_len[0];
    for (size_t slice = 1; slice <= 4096; slice *= 64) {
        ms_reader *rd = ms_reader_create(NULL);
        assert_non_null(rd);
        size_t unit = 0, off = 0, in_unit = 0;
        ms_event ev;
        while (off < r.s.b.len) {
            size_t n = r.s.b.len - off < slice ? r.s.b.len - off : slice;
            assert_int_equal(ms_reader_input(rd, r.s.b.p + off, n), 0);
            off += n;
            int k;
            while ((k = ms_reader_next(rd, &ev)) == MS_NEXT_EVENT) {
                if (ev.kind != MS_EV_DATA)
                    continue;
                in_unit += ev.u.data.size;
                if (!ev.u.data.unit_end)
                    continue;
                assert_true(unit < n_units);
                assert_int_equal(in_unit, unit_len[unit]);
                assert_int_equal(ev.u.data.unit_hash,
                                 tb_hash(unit_data[unit], unit_len[unit]));
                unit++;
                in_unit = 0;
            }
            assert_int_equal(k, MS_NEXT_INPUT);
        }
        assert_int_equal(ms_reader_finish(rd), 0);
        assert_int_equal(unit, n_units);
        ms_reader_free(rd);
    }
    tb_stream_free(&r.s);
}


/* zlib chunks: zlib's state comes from the reader's allocator, within
 * max_decompress_bytes (the rich stream has two zlib chunks). */
static void rd_zlib_allocator(void **state)
{
    (void)state;
    rich rs;
    build_rich(&rs);
    counting c = {0, 0};
    ms_options o;
    counting_options(&o, &c);
    long without_zlib;
    {
        /* allocations before the first zlib chunk */
        tb_result res;
        size_t cut = rs.rec_start[12];
        tb_read_all(rs.s.b.p, cut, &o, &res);
        tb_result_free(&res);
        without_zlib = c.allocs;
    }
    c.allocs = c.frees = 0;
    tb_result res;
    assert_int_equal(tb_read_all(rs.s.b.p, rs.s.b.len, &o, &res), 0);
    tb_result_free(&res);
    /* inflateInit's state and window went through c_alloc */
    assert_true(c.allocs >= without_zlib + 2);
    assert_int_equal(c.allocs, c.frees);
    /* a budget too small for zlib's state: a limit error at the chunk */
    o.max_decompress_bytes = 1024;
    ms_error_info e;
    assert_int_equal(tb_verify(rs.s.b.p, rs.s.b.len, &o, &e), -1);
    assert_int_equal(e.code, MS_ERR_LIMIT);
    assert_int_equal(e.limit, MS_LIMIT_MAX_DECOMPRESS_BYTES);
    assert_int_equal(e.offset, rs.rec_start[12]);
    tb_stream_free(&rs.s);
}

/* ---- data_only: runs of small records, one DATA event ------------------ */

/* Two devices' chunk images interleaved in runs of small chunks (1 byte up
 * to one past the largest merged chunk), a zlib chunk and a packet image
 * between them: every way a run ends. */
typedef struct small_chunks {
    tb_stream s;
    uint8_t img[2][8000];
    size_t len[2];
    uint8_t units[2][8 * 64]; /* 2.x: le64 unit hashes, in order */
    size_t nunits[2];
} small_chunks;

static void small_chunk(small_chunks *c, uint32_t dev, size_t n, int zlib)
{
    uint8_t *data = c->img[dev - 1] + c->len[dev - 1];
    tb_chunk(&c->s, dev, 0, zlib ? 1 : 0, data, n);
    tb_set_le64(c->units[dev - 1] + 8 * c->nunits[dev - 1]++, tb_hash(data, n));
    c->len[dev - 1] += n;
}

static void build_small_chunks(small_chunks *c)
{
    static const size_t sizes[] = {1, 2, 3, 1, 17, 200, 1024, 1025, 5, 1};
    memset(c, 0, sizeof *c);
    tb_fill_random(c->img[0], sizeof c->img[0], 7);
    tb_fill_compressible(c->img[1], sizeof c->img[1], 8);
    tb_stream_init(&c->s);
    tb_header_ex(&c->s, tb_magic, rich_major, 0, 0, tb_uuid_a, 0, 1, 1, 0);
    tb_device(&c->s, 1, "0000:00:02.0/vfio", MS_PAYLOAD_RAW);
    tb_device(&c->s, 2, "0000:00:03.0/vfio", MS_PAYLOAD_RAW);
    tb_device(&c->s, 3, "0000:00:04.0/vfio", MS_PAYLOAD_RAW);
    tb_image_begin(&c->s, 1, 0, 1, 0, 0, 2);
    tb_image_begin(&c->s, 2, 0, 1, 0, 0, 3);
    for (size_t round = 0; round < 3; round++) {
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
            small_chunk(c, 1, sizes[i], 0);
        /* unknown optional records: inside a run, and between runs */
        tb_record(&c->s, MIG_FLAG_OPTIONAL, 0x80000001u, "", 0);
        small_chunk(c, 1, 4, 0);
        tb_record(&c->s, MIG_FLAG_OPTIONAL, 0x80000002u, "vendor", 6);
        small_chunk(c, 2, 3, 0);
        small_chunk(c, 2, 100, round == 1); /* zlib in round 1 */
        small_chunk(c, 2, 1, 0);
        tb_image_begin(&c->s, 3, round, (uint8_t)(round + 1), 1, 0, 4);
        tb_packet(&c->s, 3, round, 0, 0, c->img[0], 3);
        tb_image_end(&c->s, 3, round, 3,
                     rich_major >= 2 ? tb_units_hash(c->img[0], 3, 3)
                                     : tb_hash(c->img[0], 3),
                     1, 5, 0, 0);
    }
    for (uint32_t d = 0; d < 2; d++)
        tb_image_end(&c->s, d + 1, 0, c->len[d],
                     rich_major >= 2 ? tb_hash(c->units[d], 8 * c->nunits[d])
                                     : tb_hash(c->img[d], c->len[d]),
                     c->nunits[d], 6, 0, 0);
    tb_end_auto(&c->s, 7);
}

/* data_only: the same image bytes and every other event as without it, no
 * CHUNK or (unknown) RECORD event, and fewer DATA events when the runs lie
 * in one slice. */
static void check_merged(const small_chunks *c, size_t slice)
{
    ms_options o;
    ms_options_init(&o);
    tb_result plain, merged;
    if (tb_read(c->s.b.p, c->s.b.len, &o, slice, &plain))
        print_err("plain", &plain.err);
    assert_int_equal(plain.rc, 0);
    o.data_only = 1;
    int rc = tb_read(c->s.b.p, c->s.b.len, &o, slice, &merged);
    if (rc)
        print_err("merged", &merged.err);
    assert_int_equal(rc, 0);
    assert_int_equal(merged.data_offset_errors, 0);
    assert_int_equal(tb_result_count(&merged, MS_EV_CHUNK), 0);
    assert_int_equal(tb_result_count(&merged, MS_EV_RECORD), 0);
    assert_int_equal(tb_result_count(&plain, MS_EV_CHUNK), 3 * 14);
    assert_int_equal(tb_result_count(&plain, MS_EV_RECORD), 3 * 2);
    size_t j = 0;
    for (size_t i = 0; i < plain.n_events; i++) {
        if (plain.events[i].kind == MS_EV_CHUNK ||
            plain.events[i].kind == MS_EV_RECORD)
            continue;
        assert_true(j < merged.n_events);
        assert_int_equal(merged.events[j].kind, plain.events[i].kind);
        assert_int_equal(merged.events[j].offset, plain.events[i].offset);
        j++;
    }
    assert_int_equal(j, merged.n_events);
    for (uint32_t d = 1; d <= 2; d++) {
        tb_image *im = tb_result_image(&merged, d, 0);
        assert_non_null(im);
        assert_int_equal(im->data.len, c->len[d - 1]);
        assert_memory_equal(im->data.p, c->img[d - 1], c->len[d - 1]);
    }
    if (slice == 0) /* runs: 1-1024 (dev 1), 1025, 5-1; 3; 100 (2 if zlib); 1 */
        assert_true(merged.n_data_events < plain.n_data_events / 2);
    tb_result_free(&plain);
    tb_result_free(&merged);
}

static void rd_data_only(void **state)
{
    (void)state;
    small_chunks c;
    build_small_chunks(&c);
    check_merged(&c, 0);
    check_merged(&c, 1);    /* byte by byte: no run, no CHUNK events */
    check_merged(&c, 1000); /* runs cut by slice ends */
    tb_stream_free(&c.s);
}

/* Damage and truncation anywhere: merged or not, the same error at the
 * same offset (a run ends before a record that fails any check, and the
 * general path reports it). */
static void rd_data_only_damage(void **state)
{
    (void)state;
    small_chunks c;
    build_small_chunks(&c);
    ms_options o;
    ms_options_init(&o);
    o.data_only = 1;
    assert_int_equal(tb_verify(c.s.b.p, c.s.b.len, &o, NULL), 0);
    uint8_t *q = malloc(c.s.b.len);
    memcpy(q, c.s.b.p, c.s.b.len);
    size_t bad = 0, cut_bad = 0;
    for (size_t i = 0; i < c.s.b.len; i++) {
        ms_error_info e_plain, e_merged;
        q[i] ^= (uint8_t)(1u << (i % 8));
        o.data_only = 0;
        int rc_plain = tb_verify(q, c.s.b.len, &o, &e_plain);
        o.data_only = 1;
        int rc_merged = tb_verify(q, c.s.b.len, &o, &e_merged);
        q[i] ^= (uint8_t)(1u << (i % 8));
        if (rc_plain == 0 || rc_merged == 0 ||
            e_plain.code != e_merged.code ||
            e_plain.offset != e_merged.offset) {
            if (bad++ < 5)
                print_message("flip at %zu: plain %s at %llu, merged %s at "
                              "%llu\n",
                              i, rc_plain ? ms_error_name(e_plain.code) : "ok",
                              (unsigned long long)e_plain.offset,
                              rc_merged ? ms_error_name(e_merged.code) : "ok",
                              (unsigned long long)e_merged.offset);
        }
        o.data_only = 0;
        rc_plain = tb_verify(q, i, &o, &e_plain);
        o.data_only = 1;
        rc_merged = tb_verify(q, i, &o, &e_merged);
        if (rc_plain == 0 || rc_merged == 0 ||
            e_plain.code != e_merged.code || e_plain.offset != e_merged.offset)
            cut_bad++;
    }
    free(q);
    assert_int_equal(bad, 0);
    assert_int_equal(cut_bad, 0);
    tb_stream_free(&c.s);
}

#define V2(f) cmocka_unit_test_setup_teardown(f, v2_setup, v2_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rd_rich_stream_reads),
        cmocka_unit_test(rd_bytewise_equals_one_slice),
        cmocka_unit_test(rd_truncation_every_offset),
        cmocka_unit_test(rd_truncation_writer_stream),
        cmocka_unit_test(rd_bitflip_headers),
        cmocka_unit_test(rd_bitflip_everywhere),
        cmocka_unit_test(rd_verify_checks_off),
        cmocka_unit_test(rd_zero_copy),
        cmocka_unit_test(rd_input_while_unconsumed),
        cmocka_unit_test(rd_errors_sticky),
        cmocka_unit_test(rd_create_defaults),
        cmocka_unit_test(rd_record_events),
        cmocka_unit_test(rd_allocator),
        cmocka_unit_test(rd_zlib_allocator),
        cmocka_unit_test(rd_roundtrip_1ch_chunks_raw),
        cmocka_unit_test(rd_roundtrip_1ch_chunks_zlib),
        cmocka_unit_test(rd_roundtrip_1ch_packets_raw),
        cmocka_unit_test(rd_roundtrip_4ch_packets_raw),
        cmocka_unit_test(rd_roundtrip_4ch_packets_zlib),
        cmocka_unit_test(rd_roundtrip_4ch_chunks_zlib),
        cmocka_unit_test(rd_roundtrip_v1_1ch_chunks_zlib),
        cmocka_unit_test(rd_roundtrip_v1_4ch_packets_raw),
        cmocka_unit_test(rd_data_only),
        cmocka_unit_test(rd_data_only_damage),
        /* the hand-built stream again, as 2.0 */
        V2(rd_rich_stream_reads),
        V2(rd_bytewise_equals_one_slice),
        V2(rd_truncation_every_offset),
        V2(rd_bitflip_headers),
        V2(rd_bitflip_everywhere),
        V2(rd_verify_checks_off),
        V2(rd_unit_hashes),
        V2(rd_data_only),
        V2(rd_data_only_damage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
