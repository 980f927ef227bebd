/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* Fuzz the salvage path (ms_options.salvage, spec/salvage.md; migstream,
 * QEMU multifd channels, raw and zlib/zstd, and QEMU main streams): one
 * stream, read with salvage on, once as a
 * single slice and once in slices whose sizes come from a PRNG seeded by the
 * input (biased toward 1 byte). Mutations of a valid migstream seed are damage:
 * the reader reports it and resynchronises, so the records after it are decoded
 * too.
 *
 * Invariants (abort on violation):
 *   - both slicings give the same events (kinds, offsets, lengths, damage
 *     details; DATA compared by its bytes at their offsets, as views split
 *     differently, and not for a unit a damage event names: how much of it
 *     went out first depends on the slicing) and the same verdict and error;
 *   - damage ranges lie inside the bytes fed and never go backwards (a
 *     range either repeats the previous one -- an image's note -- or
 *     starts at or after its end); every event after a range starts at or
 *     after its end (the record found);
 *   - every damage event has a detail (and its idstr, if any, is
 *     readable);
 *   - ms_reader_offset never decreases nor passes the bytes fed; views
 *     are readable (ASan, each slice its own heap block).
 *
 * Seeds (fuzz/corpus/salvage/): migstream-2.0-small.mig (`migstream-synth
 * --channels 1 --devices 1 --initial-size 1K --middle 1 --middle-size 512
 * --final-size 1K --chunk-size 256 --seed 3 --stdout`), migstream-2.0-zlib.mig
 * (`--devices 2 --initial-size 512 --middle 0 --final-size 512 --chunk-size
 * 128 --compress 6 --seed 4`), and migstream-2.0-chunk-header-flipped.mig:
 * the first with a CHUNK's size field flipped, a byte of another CHUNK's
 * data flipped and 40 bytes inserted before a third;
 * qemu-multifd-synth.mig (channel-0.mig of `migstream-synth --multifd 1
 * --ram-size 4K --ram-passes 1 --devices 1 --kind raw --final-size 1K
 * --packet-size 512 --seed 7`) and qemu-multifd-synth-damaged.mig, the
 * same with the magic of its fourth packet (offset 2752) damaged;
 * regression-fast-path-trailer.mig (found by this harness): a CHUNK whose
 * prefix breaks a rule, taken whole by the fast path, then 40 inserted
 * bytes: the record after them must be found whatever the slicing;
 * regression-zlib-chunk-damaged.mig (found by this harness): a damaged
 * zlib CHUNK, of which slicings give out different amounts of bytes;
 * regression-data-in-stash.mig (found by this harness): the record found
 * after damage starts in the stash, its data views too (not zero-copy);
 * qemu-main-small.mig: the 7.2 precopy capture's header, CONFIGURATION and
 * RAM START section, a RAM PART of 21 ZERO records and EOS, a RAM END, its
 * timer, slirp and cpu_common FULL sections and EOF (895 bytes), and
 * qemu-main-small-{ram,footer,header}-damaged.mig: one byte of a ZERO
 * record's flags, of the timer's footer, of the timer's section id
 * damaged; main-*.mig: QEVM streams of fuzz/corpus/qemu_main/ (mode byte
 * applied) that reach RAM pages and FULL sections; multifd-{zlib,zstd}-*.mig:
 * compressed multifd channels of fuzz/corpus/multifd/ (4 KiB pages).
 * max_len 4096 (fuzz/salvage.options says why). */
#include "fuzz_common.h"

typedef struct summary {
    uint64_t events_hash; /* every non-DATA event, in order */
    uint64_t data_bytes;  /* DATA bytes, all devices */
    uint64_t data_hash;   /* their contents, summed per event (order-free
                             across view splits: bytes at their offsets) */
    /* DATA since the last other event: counted once the next event shows
     * its unit was not damaged */
    uint64_t pend_bytes, pend_hash, pend_from;
    uint64_t dmg_from, dmg_to; /* the last damage range */
    int has_dmg;
    int failed;
    ms_error code;
    uint64_t err_offset;
} summary;

static uint64_t mix(uint64_t h, uint64_t v)
{
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    return h * 0x100000001b3ull;
}

static void check_damage(summary *s, const ms_event *ev, size_t fed)
{
    const ms_damage_info *d = &ev->u.damage;
    FUZZ_CHECK(d->detail != NULL);
    fuzz_touch_str(d->detail);
    if (d->idstr)
        fuzz_touch_str(d->idstr);
    FUZZ_CHECK(ev->offset + ev->length <= fed);
    FUZZ_CHECK(ev->length > 0);
    if (s->has_dmg)
        FUZZ_CHECK((ev->offset == s->dmg_from &&
                    ev->offset + ev->length == s->dmg_to) ||
                   ev->offset >= s->dmg_to);
    s->has_dmg = 1;
    s->dmg_from = ev->offset;
    s->dmg_to = ev->offset + ev->length;
    uint64_t h = s->events_hash;
    h = mix(h, d->cause);
    h = mix(h, d->cause_offset);
    h = mix(h, (uint64_t)d->has_image << 1 | (uint64_t)d->length_known);
    h = mix(h, (uint64_t)d->device << 32 | d->seq);
    h = mix(h, d->image_offset);
    s->events_hash = mix(h, d->image_length);
}

static void note(summary *s, const ms_event *ev, size_t fed)
{
    if (ev->kind != MS_EV_DAMAGE && s->has_dmg)
        FUZZ_CHECK(ev->offset >= s->dmg_to);
    if (ev->kind == MS_EV_DATA) {
        const ms_data_info *d = &ev->u.data;
        if (!s->pend_bytes || d->stream_offset < s->pend_from)
            s->pend_from = d->stream_offset;
        s->pend_bytes += d->size;
        /* position-bound, so the same whatever the views' split: a raw
         * view's stream_offset is its first byte's; an inflated one's is
         * its chunk's, and its image_offset advances */
        uint64_t at = d->compressed ? (d->stream_offset << 24) + d->image_offset
                                    : d->stream_offset;
        for (size_t i = 0; i < d->size; i++)
            s->pend_hash +=
                (d->data[i] + 1u) * (at + i) * (d->device + 0x9e37ull);
        return;
    }
    /* How much of a unit went out before its check failed depends on the
     * slicing (an inflated chunk stops where zlib noticed): the bytes of a
     * unit a damage event then names are not compared. */
    if (!(ev->kind == MS_EV_DAMAGE && ev->offset <= s->pend_from)) {
        s->data_bytes += s->pend_bytes;
        s->data_hash += s->pend_hash;
    }
    s->pend_bytes = s->pend_hash = 0;
    if (ev->kind == MS_EV_DAMAGE)
        check_damage(s, ev, fed);
    s->events_hash =
        mix(mix(mix(s->events_hash, ev->kind), ev->offset), ev->length);
}

static void run(const uint8_t *data, size_t size, uint64_t seed, int whole,
                summary *s)
{
    ms_options opt;
    fuzz_options(&opt, 1, 0);
    opt.salvage = 1;
    ms_reader *r = ms_reader_create(&opt);
    FUZZ_CHECK(r != NULL);
    memset(s, 0, sizeof *s);
    fuzz_rng rng = {seed};
    fuzz_slice slice = {NULL, 0};
    size_t pos = 0;
    uint64_t consumed = 0;
    while (pos < size && !s->failed) {
        size_t n = whole ? size : fuzz_slice_size(&rng);
        if (n > size - pos)
            n = size - pos;
        fuzz_slice_set(&slice, data + pos, n);
        pos += n;
        FUZZ_CHECK(ms_reader_input(r, slice.buf, slice.len) == 0);
        for (;;) {
            ms_event ev;
            memset(&ev, 0xA5, sizeof ev);
            int rc = ms_reader_next(r, &ev);
            FUZZ_CHECK(ms_reader_offset(r) >= consumed);
            FUZZ_CHECK(ms_reader_offset(r) <= pos);
            consumed = ms_reader_offset(r);
            if (rc == MS_NEXT_ERROR) {
                s->failed = 1;
                break;
            }
            FUZZ_CHECK(rc == MS_NEXT_EVENT || rc == MS_NEXT_INPUT);
            if (rc == MS_NEXT_INPUT)
                break;
            fuzz_touch_event(&ev);
            if (ev.kind == MS_EV_DATA && ev.u.data.zero_copy && ev.u.data.size)
                FUZZ_CHECK(fuzz_slice_contains(&slice, ev.u.data.data,
                                               ev.u.data.size));
            note(s, &ev, pos);
        }
        fuzz_slice_drop(&slice);
    }
    fuzz_slice_drop(&slice);
    if (!s->failed)
        s->failed = ms_reader_finish(r) != 0;
    s->code = ms_reader_error(r)->code;
    s->err_offset = ms_reader_error(r)->offset;
    FUZZ_CHECK(!s->failed == !s->code);
    ms_reader_free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    summary whole, sliced;
    run(data, size, 0, 1, &whole);
    run(data, size, fuzz_hash(data, size), 0, &sliced);
    FUZZ_CHECK(whole.events_hash == sliced.events_hash);
    FUZZ_CHECK(whole.data_bytes == sliced.data_bytes);
    FUZZ_CHECK(whole.data_hash == sliced.data_hash);
    FUZZ_CHECK(whole.failed == sliced.failed);
    FUZZ_CHECK(whole.code == sliced.code);
    FUZZ_CHECK(whole.err_offset == sliced.err_offset);
    return 0;
}
