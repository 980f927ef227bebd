/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* Salvage (ms_options.salvage, spec/salvage.md): damage becomes
 * MS_EV_DAMAGE events and decoding goes on at the next record whose header
 * check verifies against the 8 bytes before it.  Checked on hand-built
 * streams (1.0 and 2.0): exact ranges and losses for payload and header
 * damage, every byte flipped and every truncation, each fed whole, one byte
 * at a time and in random slices with the same result; and a QEMU multifd
 * capture with a packet header damaged. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "test_util.h"

#define CHUNK 64
#define DEV1_LEN (8 * CHUNK)
#define DEV2_LEN 200
#define MAX_DAMAGE 64

typedef struct damage {
    uint64_t offset, length;
    int has_image, length_known, in_packet;
    uint32_t device, seq;
    uint64_t image_offset, image_length;
    ms_error cause;
} damage;

/* What a salvaging reader made of a stream. */
typedef struct salvaged {
    uint8_t img[3][2 * DEV1_LEN]; /* device handle 1, 2: bytes by offset */
    uint64_t got[3];              /* bytes received per device */
    damage dmg[MAX_DAMAGE];
    size_t ndmg;
    int ends;          /* IMAGE_END events */
    int finish_rc;     /* ms_reader_finish */
    ms_error_info err; /* its error */
    int next_error;    /* ms_reader_next failed */
} salvaged;

typedef struct built {
    tb_stream s;
    uint8_t dev1[DEV1_LEN], dev2[DEV2_LEN];
    size_t chunk_off[8]; /* dev 1's CHUNK records */
    size_t dev1_begin;   /* dev 1's IMAGE_BEGIN */
    size_t dev2_begin;   /* dev 2's IMAGE_BEGIN */
} built;

/* Header, two devices, dev 1: an initial image of 8 chunks, an info
 * record, dev 2: a final image of 4 chunks, END. */
static void build(built *b, uint16_t major)
{
    tb_stream_init(&b->s);
    tb_header_ex(&b->s, tb_magic, major, 0, 0, tb_uuid_a, 0, 1, 0, 0);
    tb_fill_random(b->dev1, sizeof b->dev1, 11);
    tb_fill_random(b->dev2, sizeof b->dev2, 12);
    tb_device(&b->s, 1, "dev-one", MS_PAYLOAD_RAW);
    tb_device(&b->s, 2, "dev-two", MS_PAYLOAD_RAW);
    b->dev1_begin = tb_image_begin(&b->s, 1, 0, MS_PHASE_INITIAL, 0, 0, 1);
    for (int i = 0; i < 8; i++)
        b->chunk_off[i] = tb_chunk(&b->s, 1, 0, 0, b->dev1 + i * CHUNK, CHUNK);
    tb_image_end(&b->s, 1, 0, DEV1_LEN,
                 major >= 2 ? tb_units_hash(b->dev1, DEV1_LEN, CHUNK)
                            : tb_hash(b->dev1, DEV1_LEN),
                 8, 2, 0, 0);
    tb_precopy_info(&b->s, 1, 0, 10, 20, 3);
    b->dev2_begin = b->s.b.len;
    tb_chunk_image(&b->s, 2, 0, MS_PHASE_FINAL, b->dev2, DEV2_LEN, 60, 0);
    tb_end_auto(&b->s, 4);
}

static void on_event(salvaged *out, const ms_event *ev)
{
    if (ev->kind == MS_EV_DATA && ev->u.data.device <= 2) {
        const ms_data_info *d = &ev->u.data;
        assert_true(d->image_offset + d->size <= sizeof out->img[0]);
        memcpy(out->img[d->device] + d->image_offset, d->data, d->size);
        out->got[d->device] += d->size;
    } else if (ev->kind == MS_EV_IMAGE_END) {
        out->ends++;
    } else if (ev->kind == MS_EV_DAMAGE && out->ndmg < MAX_DAMAGE) {
        const ms_damage_info *d = &ev->u.damage;
        assert_non_null(d->detail);
        out->dmg[out->ndmg++] =
            (damage){ev->offset,      ev->length, d->has_image, d->length_known,
                     d->in_packet,    d->device,  d->seq,       d->image_offset,
                     d->image_length, d->cause};
    }
}

/* Feed `p` in slices: `slice` bytes each (0: whole), or random sizes up
 * to 97 from `seed` when slice is SIZE_MAX. */
static void run(const uint8_t *p, size_t len, size_t slice, uint64_t seed,
                salvaged *out)
{
    memset(out, 0, sizeof *out);
    ms_options opt;
    ms_options_init(&opt);
    opt.salvage = 1;
    ms_reader *r = ms_reader_create(&opt);
    assert_non_null(r);
    size_t pos = 0;
    while (pos < len && !out->next_error) {
        size_t n = slice == 0          ? len
                   : slice == SIZE_MAX ? 1 + (size_t)(tb_rand(&seed) % 97)
                                       : slice;
        if (n > len - pos)
            n = len - pos;
        assert_int_equal(ms_reader_input(r, p + pos, n), 0);
        pos += n;
        ms_event ev;
        int rc;
        while ((rc = ms_reader_next(r, &ev)) == MS_NEXT_EVENT)
            on_event(out, &ev);
        if (rc == MS_NEXT_ERROR)
            out->next_error = 1;
    }
    out->finish_rc = out->next_error ? -1 : ms_reader_finish(r);
    out->err = *ms_reader_error(r);
    ms_reader_free(r);
}

static void assert_same(const salvaged *a, const salvaged *b, const char *what)
{
    if (a->ndmg != b->ndmg || a->finish_rc != b->finish_rc ||
        a->ends != b->ends || a->err.code != b->err.code ||
        a->err.offset != b->err.offset ||
        memcmp(a->dmg, b->dmg, a->ndmg * sizeof a->dmg[0]) != 0 ||
        memcmp(a->got, b->got, sizeof a->got) != 0 ||
        memcmp(a->img, b->img, sizeof a->img) != 0)
        fail_msg("%s: slicing changed the result (%zu vs %zu damage events, "
                 "finish %d vs %d, error %s@%llu vs %s@%llu)",
                 what, a->ndmg, b->ndmg, a->finish_rc, b->finish_rc,
                 ms_error_name(a->err.code), (unsigned long long)a->err.offset,
                 ms_error_name(b->err.code), (unsigned long long)b->err.offset);
}

/* Whole, one byte at a time and random slices agree; the whole run's
 * result is left in *whole. */
static void run_all_ways(const uint8_t *p, size_t len, salvaged *whole,
                         const char *what)
{
    static salvaged other;
    run(p, len, 0, 0, whole);
    run(p, len, 1, 0, &other);
    assert_same(whole, &other, what);
    run(p, len, SIZE_MAX, len * 31 + 7, &other);
    assert_same(whole, &other, what);
}

static void flip(uint8_t *p, size_t off)
{
    p[off] ^= 0x5a;
}

/* A byte of a chunk's data: the chunk's header verified, its payload check
 * fails; the damage names exactly its image bytes, every other byte and
 * the other device come out exact, the END totals are not held against
 * the stream, and the next record follows at once. */
static void payload_damage(uint16_t major)
{
    static built b;
    static salvaged res;
    build(&b, major);
    const int k = 3;
    size_t rec = b.chunk_off[k], rec_end = b.chunk_off[k + 1];
    uint8_t *copy = malloc(b.s.b.len);
    memcpy(copy, b.s.b.p, b.s.b.len);
    flip(copy, rec + 24 + 16 + 5); /* header, prefix, 5th data byte */
    run_all_ways(copy, b.s.b.len, &res, "payload damage");
    assert_int_equal(res.finish_rc, 0);
    assert_int_equal(res.ndmg, 1);
    const damage *d = &res.dmg[0];
    assert_int_equal(d->offset, rec);
    assert_int_equal(d->length, rec_end - rec);
    assert_int_equal(d->cause, MS_ERR_PAYLOAD_CHECK);
    assert_true(d->has_image && d->length_known && !d->in_packet);
    assert_int_equal(d->device, 1);
    assert_int_equal(d->image_offset, k * CHUNK);
    assert_int_equal(d->image_length, CHUNK);
    assert_int_equal(res.ends, 2);
    /* every byte outside the damaged range is the original */
    assert_memory_equal(res.img[1], b.dev1, k * CHUNK);
    assert_memory_equal(res.img[1] + (k + 1) * CHUNK, b.dev1 + (k + 1) * CHUNK,
                        DEV1_LEN - (k + 1) * CHUNK);
    assert_memory_equal(res.img[2], b.dev2, DEV2_LEN);
    free(copy);
    tb_stream_free(&b.s);
}

static void payload_damage_v2(void **state)
{
    (void)state;
    payload_damage(2);
}

static void payload_damage_v1(void **state)
{
    (void)state;
    payload_damage(1);
}

/* A byte of a chunk's record header: nothing of it is trusted; the scan
 * finds the next record, the range covers the whole record, and the open
 * image gets a note: bytes of unknown length lost at offset k * CHUNK; the
 * bytes after it come on from there (short by the lost chunk). */
static void header_damage(void **state)
{
    (void)state;
    static built b;
    static salvaged res;
    build(&b, 2);
    const int k = 5;
    size_t rec = b.chunk_off[k], rec_end = b.chunk_off[k + 1];
    uint8_t *copy = malloc(b.s.b.len);
    memcpy(copy, b.s.b.p, b.s.b.len);
    flip(copy, rec + 2); /* the size field */
    run_all_ways(copy, b.s.b.len, &res, "header damage");
    assert_int_equal(res.finish_rc, 0);
    assert_int_equal(res.ndmg, 2);
    assert_int_equal(res.dmg[0].offset, rec);
    assert_int_equal(res.dmg[0].length, rec_end - rec);
    assert_int_equal(res.dmg[0].cause, MS_ERR_RECORD_CHECK);
    assert_false(res.dmg[0].has_image);
    /* the note: same range, the open image, length unknown */
    assert_int_equal(res.dmg[1].offset, rec);
    assert_true(res.dmg[1].has_image && !res.dmg[1].length_known);
    assert_int_equal(res.dmg[1].device, 1);
    assert_int_equal(res.dmg[1].image_offset, k * CHUNK);
    assert_int_equal(res.got[1], DEV1_LEN - CHUNK);
    assert_memory_equal(res.img[1], b.dev1, k * CHUNK);
    assert_memory_equal(res.img[1] + k * CHUNK, b.dev1 + (k + 1) * CHUNK,
                        DEV1_LEN - (k + 1) * CHUNK);
    assert_memory_equal(res.img[2], b.dev2, DEV2_LEN);
    assert_int_equal(res.ends, 2); /* dev 1's IMAGE_END is not an error */
    free(copy);
    tb_stream_free(&b.s);
}

/* A vendor record of verified size inside an open image, its payload
 * damaged: the range is that record alone, no image lost anything (no
 * note), and the image's checks at IMAGE_END still apply and pass. */
static void skipped_record_damage(void **state)
{
    (void)state;
    static salvaged res;
    tb_stream s;
    uint8_t img[3 * CHUNK], vendor[40];
    tb_fill_random(img, sizeof img, 5);
    memset(vendor, 0x77, sizeof vendor);
    tb_stream_init(&s);
    tb_header_ex(&s, tb_magic, 2, 0, 0, tb_uuid_a, 0, 1, 0, 0);
    tb_device(&s, 1, "dev-one", MS_PAYLOAD_RAW);
    tb_image_begin(&s, 1, 0, MS_PHASE_FINAL, 0, 0, 1);
    tb_chunk(&s, 1, 0, 0, img, CHUNK);
    size_t rec =
        tb_record(&s, MS_RECORD_OPTIONAL, 0x80000001u, vendor, sizeof vendor);
    size_t rec_end = s.b.len;
    tb_chunk(&s, 1, 0, 0, img + CHUNK, 2 * CHUNK);
    tb_image_end(&s, 1, 0, sizeof img, tb_units_hash(img, CHUNK, CHUNK), 2, 2,
                 0, 0);
    tb_end_auto(&s, 3);
    s.b.p[rec + 24 + 7] ^= 1;
    run_all_ways(s.b.p, s.b.len, &res, "vendor record damage");
    assert_int_equal(res.ndmg, 2);
    assert_int_equal(res.dmg[0].offset, rec);
    assert_int_equal(res.dmg[0].length, rec_end - rec);
    assert_false(res.dmg[0].has_image);
    /* tb_units_hash over one 64-byte unit is the wrong image hash for two
     * units: the IMAGE_END check still ran (and failed, as damage) */
    assert_int_equal(res.dmg[1].cause, MS_ERR_IMAGE_HASH);
    assert_int_equal(res.ends, 0);
    tb_stream_free(&s);
    /* the same with the right hash: nothing but the vendor record lost */
    tb_stream_init(&s);
    tb_header_ex(&s, tb_magic, 2, 0, 0, tb_uuid_a, 0, 1, 0, 0);
    tb_device(&s, 1, "dev-one", MS_PAYLOAD_RAW);
    tb_image_begin(&s, 1, 0, MS_PHASE_FINAL, 0, 0, 1);
    tb_chunk(&s, 1, 0, 0, img, CHUNK);
    rec = tb_record(&s, MS_RECORD_OPTIONAL, 0x80000001u, vendor, sizeof vendor);
    tb_chunk(&s, 1, 0, 0, img + CHUNK, 2 * CHUNK);
    uint8_t hashes[16];
    tb_set_le64(hashes, tb_hash(img, CHUNK));
    tb_set_le64(hashes + 8, tb_hash(img + CHUNK, 2 * CHUNK));
    tb_image_end(&s, 1, 0, sizeof img, tb_hash(hashes, 16), 2, 2, 0, 0);
    tb_end_auto(&s, 3);
    s.b.p[rec + 24 + 7] ^= 1;
    run_all_ways(s.b.p, s.b.len, &res, "vendor record damage");
    assert_int_equal(res.ndmg, 1);
    assert_int_equal(res.ends, 1);
    assert_int_equal(res.finish_rc, 0);
    assert_memory_equal(res.img[1], img, sizeof img);
    tb_stream_free(&s);
}

/* Without salvage the same damage is an error (salvage is opt-in). */
static void off_by_default(void **state)
{
    (void)state;
    static built b;
    build(&b, 2);
    uint8_t *copy = malloc(b.s.b.len);
    memcpy(copy, b.s.b.p, b.s.b.len);
    flip(copy, b.chunk_off[2] + 50);
    ms_error_info err;
    assert_int_equal(tb_verify(copy, b.s.b.len, NULL, &err), -1);
    assert_int_equal(err.code, MS_ERR_PAYLOAD_CHECK);
    free(copy);
    tb_stream_free(&b.s);
}

/* The range of a damage event or the tail error holds `off`. */
static int covered(const salvaged *res, size_t off)
{
    for (size_t i = 0; i < res->ndmg; i++)
        if (off >= res->dmg[i].offset &&
            off - res->dmg[i].offset < res->dmg[i].length)
            return 1;
    return res->finish_rc < 0 && res->err.offset <= off;
}

/* Every byte flipped in turn: the result is the same at any slicing, the
 * flipped byte lies in a reported range, and a flip outside dev 2's
 * records never changes a byte of dev 2's image. */
static void every_flip(void **state)
{
    (void)state;
    static built b;
    static salvaged res;
    build(&b, 2);
    size_t len = b.s.b.len;
    uint8_t *copy = malloc(len);
    for (size_t off = 0; off < len; off++) {
        char what[64];
        snprintf(what, sizeof what, "byte %zu flipped", off);
        memcpy(copy, b.s.b.p, len);
        flip(copy, off);
        run_all_ways(copy, len, &res, what);
        if (!covered(&res, off))
            fail_msg("%s: no damage reported over it", what);
        /* dev 2's records lie from dev2_begin to END */
        if (off >= b.dev1_begin && off < b.dev2_begin &&
            memcmp(res.img[2], b.dev2, DEV2_LEN) != 0)
            fail_msg("%s: device 2's image changed", what);
    }
    free(copy);
    tb_stream_free(&b.s);
}

/* Cut at every offset: never a crash, every slicing agrees, the end is
 * reported (finish fails) unless the stream is whole. */
static void every_truncation(void **state)
{
    (void)state;
    static built b;
    static salvaged res;
    build(&b, 2);
    for (size_t n = 0; n <= b.s.b.len; n++) {
        char what[64];
        snprintf(what, sizeof what, "cut at %zu", n);
        run_all_ways(b.s.b.p, n, &res, what);
        if (n < b.s.b.len)
            assert_int_equal(res.finish_rc, -1);
        else
            assert_int_equal(res.finish_rc, 0);
        assert_int_equal(res.ndmg, 0); /* a cut is the end, not damage */
    }
    tb_stream_free(&b.s);
}

/* Garbage inserted between two records: the range is exactly the garbage
 * (the scan finds the record after it), nothing of any image is lost. */
static void inserted_garbage(void **state)
{
    (void)state;
    static built b;
    static salvaged res;
    build(&b, 2);
    size_t at = b.chunk_off[2], junk = 777;
    tb_buf s;
    tb_buf_init(&s);
    tb_put(&s, b.s.b.p, at);
    uint8_t *g = malloc(junk);
    tb_fill_random(g, junk, 99);
    tb_put(&s, g, junk);
    tb_put(&s, b.s.b.p + at, b.s.b.len - at);
    run_all_ways(s.p, s.len, &res, "inserted garbage");
    assert_int_equal(res.finish_rc, 0);
    assert_int_equal(res.ndmg, 2); /* the range, a note for dev 1 */
    assert_int_equal(res.dmg[0].offset, at);
    assert_int_equal(res.dmg[0].length, junk);
    assert_int_equal(res.dmg[1].image_offset, 2 * CHUNK);
    assert_memory_equal(res.img[1], b.dev1, DEV1_LEN);
    assert_memory_equal(res.img[2], b.dev2, DEV2_LEN);
    free(g);
    tb_buf_free(&s);
    tb_stream_free(&b.s);
}

/* Damage to the end: no record verifies after it, finish names the
 * range's start. */
static void damaged_tail(void **state)
{
    (void)state;
    static built b;
    static salvaged res;
    build(&b, 2);
    uint8_t *copy = malloc(b.s.b.len);
    memcpy(copy, b.s.b.p, b.s.b.len);
    size_t at = b.dev2_begin + 3;
    memset(copy + at, 0xee, b.s.b.len - at);
    run_all_ways(copy, b.s.b.len, &res, "damaged tail");
    assert_int_equal(res.finish_rc, -1);
    assert_int_equal(res.err.offset, b.dev2_begin);
    assert_memory_equal(res.img[1], b.dev1, DEV1_LEN);
    free(copy);
    tb_stream_free(&b.s);
}

/* A QEMU 7.2 multifd channel (capture, uncompressed): the magic of its
 * packet at 1408 damaged.  The range runs from that packet to the next
 * packet header (10944), the channel then ends cleanly, and every slicing
 * agrees; cut at every offset, the salvaging reader never crashes and
 * agrees with itself too. */
static void multifd_capture(void **state)
{
    (void)state;
    static salvaged res;
    size_t len;
    uint8_t *p = tb_load_source(
        "tests/data/captures/qemu-7.2-pc-multifd4/conn3.bin", &len);
    assert_non_null(p);
    assert_int_equal(len, 19072);
    p[1408 + 1] ^= 0x10;
    run_all_ways(p, len, &res, "multifd packet magic");
    assert_int_equal(res.finish_rc, 0);
    assert_int_equal(res.ndmg, 1);
    assert_int_equal(res.dmg[0].offset, 1408);
    assert_int_equal(res.dmg[0].length, 10944 - 1408);
    assert_int_equal(res.dmg[0].cause, MS_ERR_MULTIFD);
    assert_false(res.dmg[0].has_image);
    for (size_t n = 0; n < len; n += 61) {
        char what[64];
        snprintf(what, sizeof what, "multifd cut at %zu", n);
        run_all_ways(p, n, &res, what);
    }
    free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(payload_damage_v2),
        cmocka_unit_test(payload_damage_v1),
        cmocka_unit_test(header_damage),
        cmocka_unit_test(off_by_default),
        cmocka_unit_test(skipped_record_damage),
        cmocka_unit_test(inserted_garbage),
        cmocka_unit_test(damaged_tail),
        cmocka_unit_test(every_truncation),
        cmocka_unit_test(every_flip),
        cmocka_unit_test(multifd_capture),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
