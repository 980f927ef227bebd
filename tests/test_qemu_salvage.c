/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* Salvage of QEMU main streams (spec/salvage.md section 5b) on a real
 * capture, qemu-7.2-pc-precopy/main.mig: one byte damaged at many
 * positions (section headers, footers, RAM page headers, page data,
 * device VMState).  Against the undamaged decode:
 *   - every RAM page record and every section that lies wholly outside
 *     the damaged ranges (and does not hold the damaged byte) comes out
 *     byte-exact at the same stream offset, block and page offset;
 *   - every page or section the salvaging reader gives is one of the
 *     undamaged decode's, or holds the damaged byte (page data damage
 *     leaves the structure valid: nothing can see it);
 *   - a damaged byte in a section header, a footer or a RAM record header
 *     lies inside a reported range;
 *   - the reader ends without error (the trailer is found again);
 *   - whole, one byte at a time and random slices give the same result. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "test_util.h"

#define CAPTURE "tests/data/captures/qemu-7.2-pc-precopy/main.mig"
#define MAX_RANGES 64

/* One decoded unit: a RAM page record or a whole section. */
typedef struct unit {
    uint64_t off, len; /* on the wire */
    uint64_t key;      /* page: block index << 40 | page offset; section:
                          its id */
    uint64_t hash;     /* page: its bytes (0 fill for ZERO); section: its
                          bytes from header to footer */
} unit;

typedef struct decoded {
    unit *u;
    size_t n, cap;
    uint64_t from[MAX_RANGES], to[MAX_RANGES];
    size_t nr;
    uint64_t sec_off; /* the open section's header */
    int failed;
    ms_error_info err;
} decoded;

static void add(decoded *d, uint64_t off, uint64_t len, uint64_t key,
                uint64_t hash)
{
    if (d->n == d->cap) {
        d->cap = d->cap ? 2 * d->cap : 4096;
        d->u = realloc(d->u, d->cap * sizeof *d->u);
        assert_non_null(d->u);
    }
    d->u[d->n++] = (unit){off, len, key, hash};
}

static void on_event(decoded *d, const uint8_t *p, const ms_event *ev)
{
    switch (ev->kind) {
    case MS_EV_RAM_PAGE: {
        const ms_ram_info *ri = &ev->u.ram;
        uint64_t h = ri->data ? tb_hash(ri->data, ri->size) : ri->fill;
        add(d, ev->offset, ev->length,
            (uint64_t)ri->block_index << 40 | ri->offset, h);
        break;
    }
    case MS_EV_SECTION:
        d->sec_off = ev->offset;
        break;
    case MS_EV_SECTION_FOOTER:
        /* the section's bytes, header to footer, from the input */
        if (ev->offset >= d->sec_off)
            add(d, d->sec_off, ev->offset + 5 - d->sec_off,
                (uint64_t)1 << 63 | ev->u.section.section_id,
                tb_hash(p + d->sec_off, ev->offset + 5 - d->sec_off));
        break;
    case MS_EV_DAMAGE:
        assert_non_null(ev->u.damage.detail);
        assert_true(ev->length > 0);
        assert_true(d->nr == 0 || ev->offset >= d->to[d->nr - 1]);
        if (d->nr < MAX_RANGES) {
            d->from[d->nr] = ev->offset;
            d->to[d->nr++] = ev->offset + ev->length;
        }
        break;
    default:
        break;
    }
}

static int by_offset(const void *a, const void *b)
{
    const unit *x = a, *y = b;
    if (x->off != y->off)
        return x->off < y->off ? -1 : 1;
    return x->key < y->key ? -1 : x->key > y->key;
}

/* Decode with salvage on, in slices of `slice` bytes (0: whole;
 * SIZE_MAX: random sizes from `seed`). */
static void decode(const uint8_t *p, size_t len, size_t slice, uint64_t seed,
                   decoded *d)
{
    free(d->u);
    memset(d, 0, sizeof *d);
    ms_options opt;
    ms_options_init(&opt);
    opt.salvage = 1;
    ms_reader *r = ms_reader_create(&opt);
    assert_non_null(r);
    for (size_t pos = 0; pos < len && !d->failed;) {
        size_t n = slice == 0          ? len
                   : slice == SIZE_MAX ? 1 + (size_t)(tb_rand(&seed) % 5000)
                                       : slice;
        n = n > len - pos ? len - pos : n;
        assert_int_equal(ms_reader_input(r, p + pos, n), 0);
        pos += n;
        ms_event ev;
        int rc;
        while ((rc = ms_reader_next(r, &ev)) == MS_NEXT_EVENT)
            on_event(d, p, &ev);
        d->failed = rc == MS_NEXT_ERROR;
    }
    if (!d->failed)
        d->failed = ms_reader_finish(r) != 0;
    d->err = *ms_reader_error(r);
    ms_reader_free(r);
    /* a section's unit comes at its footer, after its pages */
    if (d->n)
        qsort(d->u, d->n, sizeof *d->u, by_offset);
}

static int damaged(const decoded *d, uint64_t off, uint64_t len)
{
    for (size_t i = 0; i < d->nr; i++)
        if (off < d->to[i] && d->from[i] < off + len)
            return 1;
    return 0;
}

static const unit *find(const decoded *d, const unit *u)
{
    size_t lo = 0, hi = d->n; /* sorted by offset */
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (d->u[mid].off < u->off)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (; lo < d->n && d->u[lo].off == u->off; lo++)
        if (d->u[lo].key == u->key && d->u[lo].len == u->len)
            return &d->u[lo];
    return NULL;
}

/* The salvaged decode `s` of the capture with byte `pos` damaged, against
 * the undamaged decode `b`. */
static void check(const decoded *b, const decoded *s, uint64_t pos,
                  int must_cover)
{
    if (s->failed)
        fail_msg("byte %llu damaged: the reader failed: %s at %llu: %s",
                 (unsigned long long)pos, ms_error_name(s->err.code),
                 (unsigned long long)s->err.offset, s->err.detail);
    if (must_cover && !damaged(s, pos, 1))
        fail_msg("byte %llu damaged: not inside a reported range (%zu)",
                 (unsigned long long)pos, s->nr);
    for (size_t i = 0; i < b->n; i++) {
        const unit *u = &b->u[i], *v;
        int holds = pos >= u->off && pos < u->off + u->len;
        if (holds || damaged(s, u->off, u->len))
            continue;
        if (!(v = find(s, u)) || v->hash != u->hash)
            fail_msg("byte %llu damaged: %s at %llu (key 0x%llx) %s",
                     (unsigned long long)pos, u->key >> 63 ? "section" : "page",
                     (unsigned long long)u->off, (unsigned long long)u->key,
                     v ? "differs" : "is missing");
    }
    for (size_t i = 0; i < s->n; i++) {
        const unit *u = &s->u[i], *v;
        if (pos >= u->off && pos < u->off + u->len)
            continue;
        if (!(v = find(b, u)) || v->hash != u->hash)
            fail_msg("byte %llu damaged: %s at %llu (key 0x%llx) is not "
                     "the undamaged decode's",
                     (unsigned long long)pos, u->key >> 63 ? "section" : "page",
                     (unsigned long long)u->off, (unsigned long long)u->key);
    }
}

static uint8_t *capture;
static size_t capture_len;
static decoded base, got;
static uint64_t ram_start; /* the RAM section's START header */
static uint64_t trailer;   /* the EOF record, then the JSON trailer */

static int setup(void **state)
{
    (void)state;
    capture = tb_load_source(CAPTURE, &capture_len);
    decode(capture, capture_len, 0, 0, &base);
    ram_start = trailer = 0;
    for (size_t i = 0; i < base.n; i++)
        if (base.u[i].key >> 63) {
            if (!ram_start && capture[base.u[i].off] == 1)
                ram_start = base.u[i].off;
            trailer = base.u[i].off + base.u[i].len;
        }
    return capture && !base.failed && base.nr == 0 && ram_start ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    free(capture);
    free(base.u);
    free(got.u);
    return 0;
}

static void damage_at(uint64_t pos, int must_cover, size_t slice)
{
    capture[pos] ^= 0x5a;
    decode(capture, capture_len, slice, pos, &got);
    capture[pos] ^= 0x5a;
    check(&base, &got, pos, must_cover);
}

/* Every byte of section headers and footers: the type, id, idstr,
 * instance, version, footer marker and id. */
static void section_framing(void **state)
{
    (void)state;
    int sections = 0;
    for (size_t i = 0; i < base.n; i++) {
        const unit *u = &base.u[i];
        if (!(u->key >> 63) || ++sections > 12)
            continue;
        uint64_t hdr = capture[u->off] == 2 || capture[u->off] == 3
                           ? 5
                           : 6u + capture[u->off + 5] + 8;
        /* not the RAM section's idstr: damaged into another printable
         * name, it is taken for another device, and the RAM payload is
         * walked blind (spec/salvage.md 7) */
        for (uint64_t k = 0; k < hdr; k++)
            if (!(u->off == ram_start && k >= 6 && k < 9))
                damage_at(u->off + k, k == 0, 0);
        for (uint64_t k = 0; k < 5; k++)
            damage_at(u->off + u->len - 5 + k, 1, 0);
    }
    assert_true(sections > 12);
}

/* RAM page record headers (flags, address, block name) and page data. */
static void ram_records(void **state)
{
    (void)state;
    int pages = 0;
    for (size_t i = 0; i < base.n && pages < 40; i++) {
        const unit *u = &base.u[i];
        if (u->key >> 63)
            continue;
        pages++;
        /* the flag bits are in the last byte of the be64 */
        damage_at(u->off + 7, 1, 0);
        damage_at(u->off + 6, 0, 0);
        if (u->len > 9 && capture[u->off + 7] & 0x20) /* CONTINUE: data */
            damage_at(u->off + u->len - 1, 0, 0);
        else if (u->len > 9) /* named: the name's bytes */
            damage_at(u->off + 9, 1, 0);
    }
    assert_int_equal(pages, 40);
}

/* Spread positions over the whole stream (device VMState included). */
static void everywhere(void **state)
{
    (void)state;
    /* not the JSON trailer: it is not salvaged (spec/salvage.md 7) */
    for (uint64_t pos = 13; pos < trailer; pos += 15887)
        damage_at(pos, 0, 0);
    for (uint64_t pos = 1669562; pos < trailer; pos += 2999)
        damage_at(pos, 0, 0);
}

/* Slicing does not matter: one byte at a time and random slices. */
static void slicings(void **state)
{
    (void)state;
    static const uint64_t where[] = {275, 1628497, 1669562, 1669605};
    for (size_t i = 0; i < sizeof where / sizeof where[0]; i++) {
        decoded whole = {0};
        capture[where[i]] ^= 0x5a;
        decode(capture, capture_len, 0, 0, &whole);
        decode(capture, capture_len, SIZE_MAX, where[i], &got);
        assert_int_equal(got.n, whole.n);
        assert_int_equal(got.nr, whole.nr);
        assert_memory_equal(got.u, whole.u, whole.n * sizeof *whole.u);
        assert_memory_equal(got.from, whole.from, sizeof whole.from);
        if (i < 2) { /* 2 MB one byte at a time: two positions */
            decode(capture, capture_len, 1, 0, &got);
            assert_int_equal(got.n, whole.n);
            assert_memory_equal(got.u, whole.u, whole.n * sizeof *whole.u);
            assert_memory_equal(got.to, whole.to, sizeof whole.to);
        }
        capture[where[i]] ^= 0x5a;
        check(&base, &whole, where[i], 1);
        free(whole.u);
    }
}

/* ---- compressed multifd channels (spec/salvage.md 5a) ------------------ */

typedef struct mpage {
    uint64_t pkt; /* its packet's first byte */
    char block[64];
    uint64_t off, hash;
    int data; /* a normal page (bytes), not a zero page */
} mpage;

typedef struct mdecoded {
    mpage pg[1 << 16];
    size_t n;
    struct {
        uint64_t from, to, off, len;
        char block[64];
    } lost[512];
    size_t nlost, nranges;
    uint64_t pkt;
    int failed;
} mdecoded;

static void m_event(mdecoded *d, const ms_event *ev)
{
    if (ev->kind == MS_EV_MULTIFD_PACKET)
        d->pkt = ev->offset;
    if (ev->kind == MS_EV_RAM_PAGE) {
        assert_true(d->n < 1 << 16);
        mpage *m = &d->pg[d->n++];
        m->pkt = d->pkt;
        snprintf(m->block, sizeof m->block, "%s", ev->u.ram.block);
        m->off = ev->u.ram.offset;
        m->data = ev->u.ram.data != NULL;
        m->hash = m->data ? tb_hash(ev->u.ram.data, ev->u.ram.size) : 0;
    }
    if (ev->kind == MS_EV_DAMAGE) {
        const ms_damage_info *dm = &ev->u.damage;
        d->nranges++;
        if (!dm->has_image || d->nlost == 512)
            return;
        d->lost[d->nlost].from = ev->offset;
        d->lost[d->nlost].to = ev->offset + ev->length;
        d->lost[d->nlost].off = dm->image_offset;
        d->lost[d->nlost].len = dm->image_length;
        snprintf(d->lost[d->nlost].block, 64, "%s", dm->idstr);
        d->nlost++;
    }
}

static void m_decode(const uint8_t *p, size_t len, size_t slice, mdecoded *d)
{
    memset(d, 0, sizeof *d);
    ms_options opt;
    ms_options_init(&opt);
    opt.salvage = 1;
    ms_reader *r = ms_reader_create(&opt);
    assert_non_null(r);
    for (size_t pos = 0; pos < len && !d->failed;) {
        size_t n = slice && slice < len - pos ? slice : len - pos;
        assert_int_equal(ms_reader_input(r, p + pos, n), 0);
        pos += n;
        ms_event ev;
        int rc;
        while ((rc = ms_reader_next(r, &ev)) == MS_NEXT_EVENT)
            m_event(d, &ev);
        d->failed = rc == MS_NEXT_ERROR;
    }
    if (!d->failed)
        d->failed = ms_reader_finish(r) != 0;
    ms_reader_free(r);
}

static int m_listed(const mdecoded *d, const mpage *m)
{
    for (size_t i = 0; i < d->nlost; i++)
        if (strcmp(d->lost[i].block, m->block) == 0 &&
            m->off >= d->lost[i].off &&
            m->off < d->lost[i].off + d->lost[i].len)
            return 1;
    return 0;
}

/* The second packet header's magic damaged: that packet is lost with its
 * header (its pages cannot be named); every later normal page is listed
 * lost by block and offset, exactly; every page given is the undamaged
 * decode's.  Then the version of a later packet with pages, fed one byte
 * at a time too.  (A damaged byte of compressed data may decompress
 * without error: nothing checks it; not tested here.) */
static void multifd_compressed(const char *path)
{
    static mdecoded base_m, got_m, one;
    size_t len;
    uint8_t *p = tb_load_source(path, &len);
    assert_non_null(p);
    m_decode(p, len, 0, &base_m);
    assert_false(base_m.failed);
    assert_int_equal(base_m.nranges, 0);
    /* the packets with pages, from the undamaged decode */
    uint64_t pkts[64];
    size_t np = 0;
    for (size_t i = 0; i < base_m.n && np < 64; i++)
        if (base_m.pg[i].data && (!np || pkts[np - 1] != base_m.pg[i].pkt))
            pkts[np++] = base_m.pg[i].pkt;
    assert_true(np >= 3);
    uint64_t where[2] = {pkts[0] + 2, pkts[1] + 5}; /* magic, version */
    for (int w = 0; w < 2; w++) {
        p[where[w]] ^= 0x5a;
        m_decode(p, len, 0, &got_m);
        if (w == 1) {
            m_decode(p, len, 1, &one);
            assert_int_equal(one.n, got_m.n);
            assert_int_equal(one.nlost, got_m.nlost);
            assert_memory_equal(one.pg, got_m.pg, got_m.n * sizeof one.pg[0]);
            assert_memory_equal(one.lost, got_m.lost, sizeof one.lost);
        }
        p[where[w]] ^= 0x5a;
        assert_false(got_m.failed);
        assert_true(got_m.nranges > 0);
        /* nothing given that the undamaged decode does not have */
        for (size_t i = 0; i < got_m.n; i++) {
            size_t k = 0;
            while (k < base_m.n &&
                   !(base_m.pg[k].pkt == got_m.pg[i].pkt &&
                     base_m.pg[k].off == got_m.pg[i].off &&
                     strcmp(base_m.pg[k].block, got_m.pg[i].block) == 0))
                k++;
            assert_true(k < base_m.n);
            assert_true(base_m.pg[k].hash == got_m.pg[i].hash);
        }
        /* every page of a packet after the damaged one: given or listed */
        uint64_t after = w == 0 ? pkts[1] : pkts[2];
        size_t listed = 0;
        for (size_t k = 0; k < base_m.n; k++) {
            if (base_m.pg[k].pkt < after)
                continue;
            int given = 0;
            for (size_t i = 0; i < got_m.n && !given; i++)
                given = got_m.pg[i].pkt == base_m.pg[k].pkt &&
                        got_m.pg[i].off == base_m.pg[k].off;
            int lost = m_listed(&got_m, &base_m.pg[k]);
            assert_true(given || lost);
            assert_false(given && lost && base_m.pg[k].hash);
            listed += lost;
        }
        assert_true(listed > 0);
    }
    free(p);
}

static void multifd_zlib(void **state)
{
    (void)state;
    multifd_compressed(
        "tests/data/captures/qemu-7.2-pc-multifd2-zlib/conn1.bin");
}

static void multifd_zstd(void **state)
{
    (void)state;
    multifd_compressed(
        "tests/data/captures/qemu-10.0-pc-multifd4-zstd/conn2.bin");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(section_framing), cmocka_unit_test(ram_records),
        cmocka_unit_test(everywhere),      cmocka_unit_test(slicings),
        cmocka_unit_test(multifd_zlib),    cmocka_unit_test(multifd_zstd),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
