/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* QEMU 9.x/10.x multifd channels, checked against the format facts of the
 * qemu-multifd reference and spec/qemu-multifd.md, not against the
 * decoder's code:
 *
 *   - the real QEMU 10.0.2 capture (tests/data/captures/
 *     qemu-10.0-pc-multifd4-zstd): every channel decodes with the packet,
 *     SYNC, normal and zero page counts of its README table; packet
 *     numbers are 0..272 across the channels; every header is 1,344 bytes;
 *     SYNC packets are header only; the blob's pages come out of packets
 *     36 and 37 (zstd) equal to blob.bin; one slice, byte by byte and
 *     random slices give the same events;
 *   - a small channel in the QEMU 10 layout built by this file's own
 *     encoder (below, from the spec): header-only SYNC packets, normal and
 *     zero pages, a packet of zero pages only, device-state packets with a
 *     config buffer; byte at a time and cut at every offset;
 *   - damage: one header field changed at a time, each failing with
 *     `multifd` at the offset of that field, the same byte by byte.
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

#define PS 4096u
#define SLOTS (512u * 1024 / PS) /* offset slots of a RAM packet */
#define HDR (320u + 8u * SLOTS)  /* RAM packet header on the wire */
#define DEV_HDR 276u             /* device-state packet header */
#define VFIO_HDR 12u             /* VFIO buffer header */
#define F_SYNC 0x01u
#define F_ZSTD 0x04u
#define F_DEVICE_STATE 0x40u
#define DEV_CONFIG_STATE 0xffffffffef100002ull
#define END_OF_STATE 0xffffffffef100001ull

static int g_fail;

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        abort();
    return p;
}

/* ---- the QEMU 10 layout, written from the spec --------------------------- */

static void q10_init(tb_buf *b, uint8_t id)
{
    tb_put_be32(b, 0x11223344u);
    tb_put_be32(b, 1);
    tb_put_zeros(b, 16); /* UUID */
    tb_put_u8(b, id);
    tb_put_zeros(b, 39);
}

/* A RAM packet: normal pages (raw, no compression) then zero pages. */
static size_t q10_ram(tb_buf *b, uint32_t flags, uint64_t num,
                      const char *block, const uint64_t *norm, uint32_t nn,
                      const uint64_t *zero, uint32_t nz, const uint8_t *pages)
{
    size_t at = b->len;
    tb_put_be32(b, 0x11223344u);
    tb_put_be32(b, 1);
    tb_put_be32(b, flags);
    tb_put_be32(b, SLOTS);   /* pages_alloc */
    tb_put_be32(b, nn);      /* normal_pages */
    tb_put_be32(b, nn * PS); /* next_packet_size */
    tb_put_be64(b, num);
    tb_put_be32(b, nz);  /* zero_pages */
    tb_put_zeros(b, 28); /* reserved */
    uint8_t name[256] = {0};
    memcpy(name, block, strlen(block));
    tb_put(b, name, sizeof name);
    for (uint32_t i = 0; i < SLOTS; i++)
        tb_put_be64(b, i < nn ? norm[i] : i < nn + nz ? zero[i - nn] : 0);
    tb_put(b, pages, (size_t)nn * PS);
    return at;
}

/* A SYNC packet as QEMU >= 9.2 writes it: zeroed, flags SYNC, number. */
static size_t q10_sync(tb_buf *b, uint64_t num)
{
    size_t at = b->len;
    tb_put_be32(b, 0x11223344u);
    tb_put_be32(b, 1);
    tb_put_be32(b, F_SYNC);
    tb_put_zeros(b, 12); /* pages_alloc, normal_pages, next_packet_size */
    tb_put_be64(b, num);
    tb_put_zeros(b, HDR - 32);
    return at;
}

/* A device-state packet carrying one VFIO buffer. */
static size_t q10_device(tb_buf *b, const char *idstr, uint32_t idx,
                         uint32_t vflags, const uint8_t *data, size_t n)
{
    size_t at = b->len;
    tb_put_be32(b, 0x11223344u);
    tb_put_be32(b, 1);
    tb_put_be32(b, F_DEVICE_STATE);
    uint8_t id[256] = {0};
    memcpy(id, idstr, strlen(idstr));
    tb_put(b, id, sizeof id);
    tb_put_be32(b, 0); /* instance_id */
    tb_put_be32(b, (uint32_t)(VFIO_HDR + n));
    tb_put_be32(b, 0); /* buffer version */
    tb_put_be32(b, idx);
    tb_put_be32(b, vflags);
    tb_put(b, data, n);
    return at;
}

/* ---- decoding, summarised -------------------------------------------------
 */

typedef struct res {
    int rc, in_finish;
    ms_error_info err;
    size_t packets, syncs, dev_packets, pages, zero_pages;
    size_t header_only_syncs, data_bytes, config_bytes;
    size_t zstd_packets; /* flags exactly ZSTD */
    uint64_t digest;     /* over every event's kind, offsets and fields */
    tb_buf dev;          /* the device bytes, in order */
    uint64_t *nums;      /* RAM packet numbers */
    size_t nnums;
    uint8_t *ram; /* optional: pc.ram pages written here */
    size_t ram_len;
    uint64_t ram_pages; /* normal pages written into `ram` */
} res;

static void mix(uint64_t *h, uint64_t v)
{
    *h = tb_hash_seed(&v, sizeof v, *h);
}

static void note(res *r, const ms_event *ev)
{
    if (ev->kind == MS_EV_DATA) { /* split as the input was: bytes only */
        tb_put(&r->dev, ev->u.data.data, ev->u.data.size);
        if (ev->u.data.config)
            r->config_bytes += ev->u.data.size;
        else
            r->data_bytes += ev->u.data.size;
        return;
    }
    mix(&r->digest, (uint64_t)ev->kind);
    mix(&r->digest, ev->offset);
    if (ev->kind == MS_EV_MULTIFD_PACKET) {
        const ms_multifd_info *m = &ev->u.mfd;
        mix(&r->digest, ev->length);
        mix(&r->digest, m->flags);
        mix(&r->digest, m->packet_num);
        mix(&r->digest, m->payload_size);
        r->packets++;
        if (m->device_state) {
            r->dev_packets++;
            return;
        }
        r->syncs += m->sync != 0;
        r->zstd_packets += m->flags == F_ZSTD;
        r->header_only_syncs +=
            m->sync && m->pages_alloc == 0 && ev->length == HDR && !m->block[0];
        r->nums = realloc(r->nums, (r->nnums + 1) * sizeof *r->nums);
        if (!r->nums)
            abort();
        r->nums[r->nnums++] = m->packet_num;
    } else if (ev->kind == MS_EV_RAM_PAGE) {
        const ms_ram_info *m = &ev->u.ram;
        mix(&r->digest, m->offset);
        mix(&r->digest, m->epoch);
        mix(&r->digest, m->record);
        if (m->record == MS_RAM_ZERO) {
            r->zero_pages++;
            return;
        }
        r->pages++;
        mix(&r->digest, tb_hash(m->data, m->size));
        if (r->ram && strcmp(m->block, "pc.ram") == 0 &&
            m->offset + PS <= r->ram_len) {
            memcpy(r->ram + m->offset, m->data, PS);
            r->ram_pages++;
        }
    }
}

/* Decode p[0..len) in slices of `slice` bytes (0: one; with seed: random
 * sizes up to `slice`), each slice a fresh copy the reader may not keep. */
static void decode(const uint8_t *p, size_t len, size_t slice, uint64_t seed,
                   res *r)
{
    uint8_t *ram = r->ram;
    size_t ram_len = r->ram_len;
    memset(r, 0, sizeof *r);
    r->ram = ram;
    r->ram_len = ram_len;
    ms_reader *rd = ms_reader_create(NULL);
    if (!rd)
        abort();
    int failed = 0;
    for (size_t pos = 0; pos < len && !failed;) {
        size_t n = seed    ? 1 + (size_t)(tb_rand(&seed) % slice)
                   : slice ? slice
                           : len;
        if (n > len - pos)
            n = len - pos;
        uint8_t *copy = xmalloc(n);
        memcpy(copy, p + pos, n);
        if (ms_reader_input(rd, copy, n) != 0)
            failed = 1;
        ms_event ev;
        int k = MS_NEXT_EVENT;
        while (!failed && (k = ms_reader_next(rd, &ev)) == MS_NEXT_EVENT)
            note(r, &ev);
        if (!failed && k != MS_NEXT_INPUT)
            failed = 1;
        memset(copy, 0xA5, n);
        free(copy);
        pos += n;
    }
    if (!failed && ms_reader_finish(rd) != 0) {
        failed = 1;
        r->in_finish = 1;
    }
    if (failed)
        r->err = *ms_reader_error(rd);
    r->rc = failed ? -1 : 0;
    ms_reader_free(rd);
}

static void res_free(res *r)
{
    free(r->nums);
    r->nums = NULL;
    tb_buf_free(&r->dev);
}

static int same(const res *a, const res *b)
{
    return a->rc == b->rc && a->digest == b->digest &&
           a->dev.len == b->dev.len &&
           (!a->dev.len || memcmp(a->dev.p, b->dev.p, a->dev.len) == 0) &&
           a->packets == b->packets && a->pages == b->pages &&
           a->zero_pages == b->zero_pages && a->err.code == b->err.code &&
           a->err.offset == b->err.offset;
}

/* ---- the capture ------------------------------------------------------------
 */


#define CAP "tests/data/captures/qemu-10.0-pc-multifd4-zstd/"

/* The README's per-channel table. */
static const struct {
    const char *file;
    uint32_t id;
    size_t packets, syncs, normal, zero;
} table[4] = {
    {CAP "conn1.bin", 0, 67, 3, 1, 8064},
    {CAP "conn2.bin", 1, 69, 3, 131, 8094},
    {CAP "conn3.bin", 2, 66, 3, 175, 7825},
    {CAP "conn4.bin", 3, 71, 3, 0, 8608},
};

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void test_capture_counts(void **state)
{
    (void)state;
    g_fail = 0;
    size_t blob_len;
    uint8_t *blob = tb_load_source(CAP "blob.bin", &blob_len);
    assert_non_null(blob);
    assert_int_equal(blob_len, 1u << 20);
    uint64_t all[300];
    size_t nall = 0, normal = 0, zero = 0;
    uint8_t *ram = calloc(1, 0x1100000); /* pc.ram through the blob */
    assert_non_null(ram);
    uint64_t blob_pages = 0;
    for (size_t c = 0; c < 4; c++) {
        size_t len;
        uint8_t *p = tb_load_source(table[c].file, &len);
        assert_non_null(p);
        SOFT(p[24] == table[c].id, "%s: channel id %u", table[c].file, p[24]);
        res r = {.ram = ram, .ram_len = 0x1100000};
        decode(p, len, 0, 0, &r);
        SOFT(r.rc == 0, "%s: %s at %llu: %s", table[c].file,
             ms_error_name(r.err.code), (unsigned long long)r.err.offset,
             r.err.detail);
        SOFT(r.packets == table[c].packets && r.syncs == table[c].syncs &&
                 r.pages == table[c].normal && r.zero_pages == table[c].zero,
             "%s: %zu packets, %zu SYNC, %zu normal, %zu zero pages",
             table[c].file, r.packets, r.syncs, r.pages, r.zero_pages);
        SOFT(r.header_only_syncs == table[c].syncs,
             "%s: %zu SYNC packets header only (1344 bytes, pages_alloc 0)",
             table[c].file, r.header_only_syncs);
        SOFT(r.dev_packets == 0, "%s: device state", table[c].file);
        SOFT(r.zstd_packets == table[c].packets - table[c].syncs,
             "%s: %zu data packets with flags 0x4 (ZSTD)", table[c].file,
             r.zstd_packets);
        for (size_t i = 0; i < r.nnums && nall < 300; i++)
            all[nall++] = r.nums[i];
        normal += r.pages;
        zero += r.zero_pages;
        blob_pages += r.ram_pages;
        res_free(&r);
        free(p);
    }
    /* one counter across the channels: 0..272, no gap, no repeat */
    qsort(all, nall, sizeof *all, cmp_u64);
    int dense = nall == 273;
    for (size_t i = 0; i < nall && dense; i++)
        dense = all[i] == i;
    SOFT(dense, "packet numbers are not 0..272 (%zu numbers)", nall);
    /* QEMU's counters: 307 normal, 32,591 duplicate (zero) pages */
    SOFT(normal == 307 && zero == 32591, "totals %zu / %zu", normal, zero);
    SOFT(memcmp(ram + 0x1000000, blob, blob_len) == 0,
         "pc.ram at 0x1000000 differs from blob.bin");
    SOFT(blob_pages == 256, "%llu pc.ram pages",
         (unsigned long long)blob_pages);
    free(ram);
    free(blob);
    assert_int_equal(g_fail, 0);
}

/* The packets carrying the blob: number, offset, next_packet_size. */
static void test_capture_blob_packets(void **state)
{
    (void)state;
    g_fail = 0;
    static const struct {
        const char *file;
        uint64_t num, first_page;
    } want[2] = {{CAP "conn2.bin", 36, 0x1000000},
                 {CAP "conn3.bin", 37, 0x1080000}};
    for (size_t c = 0; c < 2; c++) {
        size_t len;
        uint8_t *p = tb_load_source(want[c].file, &len);
        assert_non_null(p);
        ms_reader *rd = ms_reader_create(NULL);
        assert_non_null(rd);
        assert_int_equal(ms_reader_input(rd, p, len), 0);
        ms_event ev;
        int found = 0, in_packet = 0;
        uint64_t next_page = want[c].first_page;
        while (ms_reader_next(rd, &ev) == MS_NEXT_EVENT) {
            if (ev.kind == MS_EV_MULTIFD_PACKET) {
                in_packet = ev.u.mfd.packet_num == want[c].num;
                if (!in_packet)
                    continue;
                found = 1;
                SOFT(ev.offset == 0x2f80 && ev.u.mfd.next_packet_size == 524306,
                     "%s: packet %llu at 0x%llx, next_packet_size %u",
                     want[c].file, (unsigned long long)want[c].num,
                     (unsigned long long)ev.offset, ev.u.mfd.next_packet_size);
                SOFT(ev.u.mfd.flags == F_ZSTD &&
                         ev.u.mfd.pages_alloc == SLOTS &&
                         ev.u.mfd.normal_pages == 128 &&
                         ev.u.mfd.payload_size == 524306 &&
                         ev.length == HDR + 524306,
                     "%s: packet fields", want[c].file);
            } else if (ev.kind == MS_EV_RAM_PAGE && in_packet) {
                SOFT(ev.u.ram.offset == next_page &&
                         ev.u.ram.record == MS_RAM_PAGE,
                     "%s: page 0x%llx", want[c].file,
                     (unsigned long long)ev.u.ram.offset);
                next_page += PS;
            }
        }
        SOFT(found && next_page == want[c].first_page + 128 * PS,
             "%s: the blob's packet", want[c].file);
        SOFT(ms_reader_finish(rd) == 0, "%s: finish", want[c].file);
        ms_reader_free(rd);
        free(p);
    }
    assert_int_equal(g_fail, 0);
}

static void test_capture_slicing(void **state)
{
    (void)state;
    g_fail = 0;
    for (size_t c = 0; c < 4; c++) {
        size_t len;
        uint8_t *p = tb_load_source(table[c].file, &len);
        assert_non_null(p);
        res a = {0}, b = {0}, d = {0};
        decode(p, len, 0, 0, &a);
        /* byte by byte on the small channels, random slices on all */
        if (len < 100000) {
            decode(p, len, 1, 0, &b);
            SOFT(same(&a, &b), "%s: byte by byte differs", table[c].file);
        }
        decode(p, len, 3000, 7 + c, &d);
        SOFT(same(&a, &d), "%s: random slices differ", table[c].file);
        /* cut inside the first data packet and inside the last SYNC */
        res t = {0};
        decode(p, 64 + HDR + 100, 0, 0, &t);
        SOFT(t.rc == -1 && t.err.code == MS_ERR_TRUNCATED && t.in_finish &&
                 t.err.offset == 64 + HDR + 100,
             "%s: cut in a packet: %s at %llu", table[c].file,
             ms_error_name(t.err.code), (unsigned long long)t.err.offset);
        res_free(&t);
        decode(p, len - 1, 0, 0, &t);
        SOFT(t.rc == -1 && t.err.code == MS_ERR_TRUNCATED &&
                 t.err.offset == len - 1,
             "%s: cut before the end", table[c].file);
        res_free(&t);
        res_free(&a);
        res_free(&b);
        res_free(&d);
        free(p);
    }
    assert_int_equal(g_fail, 0);
}

/* ---- a small channel in the QEMU 10 layout ----------------------------------
 */

typedef struct small {
    tb_buf b;
    size_t bounds[16], nb;
    size_t sync0, data, zonly, dev, cfg, sync1;
    uint8_t pages[2 * PS];
    tb_buf config;
} small;

static void mark(small *s)
{
    s->bounds[s->nb++] = s->b.len;
}

static void build_small(small *s)
{
    memset(s, 0, sizeof *s);
    tb_buf_init(&s->b);
    tb_buf_init(&s->config);
    tb_fill_random(s->pages, sizeof s->pages, 41);
    q10_init(&s->b, 2);
    mark(s);
    s->sync0 = q10_sync(&s->b, 2);
    mark(s);
    static const uint64_t norm[2] = {0x5000, 0x1000};
    static const uint64_t zero[3] = {0x0, 0x2000, 0x9000};
    s->data = q10_ram(&s->b, 0, 7, "pc.ram", norm, 2, zero, 3, s->pages);
    mark(s);
    static const uint64_t zonly[2] = {0x3000, 0x4000};
    s->zonly = q10_ram(&s->b, 0, 9, "pc.ram", NULL, 0, zonly, 2, NULL);
    mark(s);
    uint8_t dev[300];
    tb_fill_random(dev, sizeof dev, 42);
    s->dev = q10_device(&s->b, "0000:00:02.0/vfio", 0, 0, dev, sizeof dev);
    mark(s);
    tb_put_be64(&s->config, DEV_CONFIG_STATE);
    tb_put_zeros(&s->config, 20);
    tb_put_be64(&s->config, END_OF_STATE);
    s->cfg = q10_device(&s->b, "0000:00:02.0/vfio", 1, 1, s->config.p,
                        s->config.len);
    mark(s);
    s->sync1 = q10_sync(&s->b, 12);
    mark(s);
}

static void free_small(small *s)
{
    tb_buf_free(&s->b);
    tb_buf_free(&s->config);
}

static void test_small_channel(void **state)
{
    (void)state;
    g_fail = 0;
    small s;
    build_small(&s);
    res a = {0};
    decode(s.b.p, s.b.len, 0, 0, &a);
    SOFT(a.rc == 0, "decode: %s at %llu: %s", ms_error_name(a.err.code),
         (unsigned long long)a.err.offset, a.err.detail);
    SOFT(a.packets == 6 && a.syncs == 2 && a.header_only_syncs == 2 &&
             a.dev_packets == 2 && a.pages == 2 && a.zero_pages == 5,
         "counts: %zu packets %zu syncs %zu dev %zu pages %zu zero", a.packets,
         a.syncs, a.dev_packets, a.pages, a.zero_pages);
    SOFT(a.data_bytes == 300 && a.config_bytes == s.config.len,
         "device bytes %zu, config bytes %zu", a.data_bytes, a.config_bytes);
    res b = {0};
    decode(s.b.p, s.b.len, 1, 0, &b);
    SOFT(same(&a, &b), "byte by byte differs");
    res_free(&b);
    decode(s.b.p, s.b.len, 17, 5, &b);
    SOFT(same(&a, &b), "random slices differ");
    res_free(&b);
    /* cut at every offset: clean at packet boundaries, else truncated
     * exactly at the cut */
    size_t bad = 0;
    for (size_t cut = 0; cut < s.b.len && bad < 5; cut++) {
        int boundary = 0;
        for (size_t i = 0; i < s.nb; i++)
            boundary |= s.bounds[i] == cut;
        res t = {0};
        decode(s.b.p, cut, 0, 0, &t);
        int ok = boundary ? t.rc == 0
                          : t.rc == -1 && t.err.code == MS_ERR_TRUNCATED &&
                                t.err.offset == cut && t.in_finish;
        if (!ok) {
            bad++;
            SOFT(0, "cut at %zu: rc %d %s at %llu", cut, t.rc,
                 ms_error_name(t.err.code), (unsigned long long)t.err.offset);
        }
        res_free(&t);
    }
    res_free(&a);
    free_small(&s);
    assert_int_equal(g_fail, 0);
}

/* The epochs of the small channel: pages between the SYNCs are epoch 1. */
static void test_small_epochs(void **state)
{
    (void)state;
    g_fail = 0;
    small s;
    build_small(&s);
    ms_reader *rd = ms_reader_create(NULL);
    assert_non_null(rd);
    assert_int_equal(ms_reader_input(rd, s.b.p, s.b.len), 0);
    ms_event ev;
    size_t zeros = 0;
    static const uint64_t zero_at[5] = {0x0, 0x2000, 0x9000, 0x3000, 0x4000};
    while (ms_reader_next(rd, &ev) == MS_NEXT_EVENT) {
        if (ev.kind != MS_EV_RAM_PAGE)
            continue;
        SOFT(ev.u.ram.epoch == 1, "page 0x%llx epoch %u",
             (unsigned long long)ev.u.ram.offset, ev.u.ram.epoch);
        if (ev.u.ram.record == MS_RAM_ZERO) {
            SOFT(zeros < 5 && ev.u.ram.offset == zero_at[zeros] &&
                     !ev.u.ram.data && ev.u.ram.page_size == PS,
                 "zero page %zu at 0x%llx", zeros,
                 (unsigned long long)ev.u.ram.offset);
            zeros++;
        } else {
            size_t i = ev.u.ram.offset == 0x5000 ? 0 : 1;
            SOFT(ev.u.ram.size == PS &&
                     memcmp(ev.u.ram.data, s.pages + i * PS, PS) == 0,
                 "page 0x%llx bytes", (unsigned long long)ev.u.ram.offset);
        }
    }
    SOFT(zeros == 5, "%zu zero pages", zeros);
    SOFT(ms_reader_finish(rd) == 0, "finish");
    ms_reader_free(rd);
    free_small(&s);
    assert_int_equal(g_fail, 0);
}

/* ---- damage: one field at a time
 * ---------------------------------------------- */

/* The small channel with `n` bytes at `at` replaced must fail with
 * MS_ERR_MULTIFD at exactly `want`, in one slice and byte by byte. */
static void expect_damage(const char *what, size_t at, const void *bytes,
                          size_t n, uint64_t want)
{
    small s;
    build_small(&s);
    memcpy(s.b.p + at, bytes, n);
    res a = {0}, b = {0};
    decode(s.b.p, s.b.len, 0, 0, &a);
    decode(s.b.p, s.b.len, 1, 0, &b);
    SOFT(a.rc == -1 && a.err.code == MS_ERR_MULTIFD && a.err.offset == want &&
             !a.in_finish,
         "%s: expected multifd at %llu, got rc %d %s at %llu (%s)", what,
         (unsigned long long)want, a.rc, ms_error_name(a.err.code),
         (unsigned long long)a.err.offset, a.err.detail);
    SOFT(b.rc == a.rc && b.err.code == a.err.code &&
             b.err.offset == a.err.offset,
         "%s: byte by byte: %s at %llu", what, ms_error_name(b.err.code),
         (unsigned long long)b.err.offset);
    res_free(&a);
    res_free(&b);
    free_small(&s);
}

static void be32_at(uint8_t *o, uint32_t v)
{
    o[0] = (uint8_t)(v >> 24);
    o[1] = (uint8_t)(v >> 16);
    o[2] = (uint8_t)(v >> 8);
    o[3] = (uint8_t)v;
}

static void test_damage(void **state)
{
    (void)state;
    g_fail = 0;
    small s;
    build_small(&s); /* for the offsets */
    uint8_t v[8];
    uint8_t one = 1;
    /* header-only SYNC: only SYNC, no size, no block, no offsets */
    be32_at(v, F_SYNC | F_ZSTD);
    expect_damage("SYNC with a compression bit", s.sync0 + 8, v, 4,
                  s.sync0 + 8);
    be32_at(v, 4096);
    expect_damage("SYNC with a next_packet_size", s.sync1 + 20, v, 4,
                  s.sync1 + 20);
    expect_damage("SYNC naming a block", s.sync0 + 64 + 3, "x", 1,
                  s.sync0 + 64 + 3);
    expect_damage("SYNC with an offset", s.sync0 + 320 + 8 * 5 + 6, &one, 1,
                  s.sync0 + 320 + 8 * 5);
    be32_at(v, 0);
    expect_damage("pages_alloc 0 without SYNC", s.sync0 + 8, v, 4, s.sync0 + 8);
    /* RAM packet fields */
    be32_at(v, 0x11223355u);
    expect_damage("packet magic", s.data, v, 4, s.data);
    be32_at(v, 2);
    expect_damage("packet version", s.data + 4, v, 4, s.data + 4);
    be32_at(v, 0x80);
    expect_damage("unknown flag", s.data + 8, v, 4, s.data + 8);
    be32_at(v, SLOTS + 1);
    expect_damage("pages_alloc above 512 KiB", s.data + 12, v, 4, s.data + 12);
    be32_at(v, 1);
    expect_damage("pages_alloc below the pages", s.data + 12, v, 4,
                  s.data + 16);
    be32_at(v, SLOTS);
    expect_damage("zero_pages beyond the slots", s.data + 32, v, 4,
                  s.data + 32);
    expect_damage("reserved byte", s.data + 50, &one, 1, s.data + 50);
    expect_damage("unaligned offset", s.data + 320 + 8 * 3 + 7, &one, 1,
                  s.data + 320 + 8 * 3);
    be32_at(v, 2 * PS + 1);
    expect_damage("next_packet_size not the raw pages' size", s.data + 20, v, 4,
                  s.data + 20);
    be32_at(v, 100);
    expect_damage("zero pages only with a next_packet_size", s.zonly + 20, v, 4,
                  s.zonly + 20);
    be32_at(v, F_ZSTD);
    expect_damage("method changes on a zero-page packet", s.zonly + 8, v, 4,
                  s.zonly + 8);
    /* device state */
    be32_at(v, F_DEVICE_STATE | F_SYNC);
    expect_damage("device state with SYNC", s.dev + 8, v, 4, s.dev + 8);
    be32_at(v, 1);
    expect_damage("VFIO buffer version", s.dev + DEV_HDR, v, 4,
                  s.dev + DEV_HDR);
    be32_at(v, 0xffffffffu);
    expect_damage("VFIO idx invalid", s.dev + DEV_HDR + 4, v, 4,
                  s.dev + DEV_HDR + 4);
    be32_at(v, 2);
    expect_damage("VFIO unknown flag", s.dev + DEV_HDR + 8, v, 4,
                  s.dev + DEV_HDR + 8);
    size_t cdata = s.cfg + DEV_HDR + VFIO_HDR;
    expect_damage("config without DEV_CONFIG_STATE", cdata + 7, "\x03", 1,
                  cdata);
    expect_damage("config without END_OF_STATE", cdata + s.config.len - 1,
                  "\x02", 1, cdata + s.config.len - 8);
    /* a data buffer flagged CONFIG: its bytes are not a config record */
    be32_at(v, 1);
    expect_damage("data buffer flagged CONFIG_STATE", s.dev + DEV_HDR + 8, v, 4,
                  s.dev + DEV_HDR + VFIO_HDR);
    free_small(&s);
    assert_int_equal(g_fail, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_capture_counts),
        cmocka_unit_test(test_capture_blob_packets),
        cmocka_unit_test(test_capture_slicing),
        cmocka_unit_test(test_small_channel),
        cmocka_unit_test(test_small_epochs),
        cmocka_unit_test(test_damage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
