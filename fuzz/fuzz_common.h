/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* Helpers shared by the fuzz harnesses (header only, public API only).
 *
 * Every harness defines LLVMFuzzerTestOneInput.  It is linked either with
 * libFuzzer (fuzz-<name>) or with regression_driver.c (replay-<name>), which
 * runs it over the seed corpus.  A broken invariant calls FUZZ_CHECK, which
 * prints where and aborts, so both drivers report it as a crash. */
#ifndef MIGSTREAM_FUZZ_COMMON_H
#define MIGSTREAM_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "migstream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__,         \
                    __LINE__, #cond);                                          \
            abort();                                                           \
        }                                                                      \
    } while (0)

/* The harness's own per-byte loops (hashing the input, touching every
 * byte of an event) are not what is being fuzzed: without coverage
 * instrumentation libFuzzer does not trace a comparison per byte there.
 * ASan still checks their reads. */
#if defined(__clang__)
#define FUZZ_NO_COVERAGE __attribute__((no_sanitize("coverage")))
#else
#define FUZZ_NO_COVERAGE
#endif

/* ---- deterministic randomness derived from the input ------------------- */
FUZZ_NO_COVERAGE static inline uint64_t fuzz_hash(const uint8_t *data, size_t size)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a 64 */
    for (size_t i = 0; i < size; i++) {
        h ^= data[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

typedef struct fuzz_rng {
    uint64_t s;
} fuzz_rng;

static inline uint64_t fuzz_rng_next(fuzz_rng *r) /* splitmix64 */
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* 1..max (max >= 1). */
static inline size_t fuzz_rng_range(fuzz_rng *r, size_t max)
{
    return (size_t)(fuzz_rng_next(r) % max) + 1;
}

/* Size of the next input slice, 1..4096, biased toward tiny slices so that
 * every resume point of the reader gets exercised. */
static inline size_t fuzz_slice_size(fuzz_rng *r)
{
    switch (fuzz_rng_next(r) & 7) {
    case 0:
    case 1:
    case 2:
        return 1;
    case 3:
        return fuzz_rng_range(r, 8);
    case 4:
        return fuzz_rng_range(r, 64);
    case 5:
        return fuzz_rng_range(r, 512);
    default:
        return fuzz_rng_range(r, 4096);
    }
}

/* ---- options with limits small enough that the fuzzer cannot OOM ------- */
static inline void fuzz_options(ms_options *opt, int verify_checks,
                                int record_events)
{
    ms_options_init(opt);
    opt->max_record_payload = 1u << 20; /* 1 MiB */
    opt->max_buffered_bytes = 4u << 20; /* 4 MiB */
    opt->max_devices = 64;
    opt->max_images = 256;
    opt->max_channels = 16;
    opt->max_packets = 4096;
    opt->max_compat_length = 4096;
    opt->max_decompress_bytes = 8u << 20; /* compressed libvirt images */
    opt->verify_checks = verify_checks;
    opt->record_events = record_events;
    opt->input_stable = 0;
}

/* ---- a slice copied into its own exact-size heap block -----------------
 * The reader may only look at a slice until it asks for more input, and
 * only inside it: the copy is freed as soon as it is consumed, so ASan
 * reports any stale view or overread. */
typedef struct fuzz_slice {
    uint8_t *buf;
    size_t len;
} fuzz_slice;

static inline void fuzz_slice_set(fuzz_slice *s, const uint8_t *src, size_t len)
{
    free(s->buf);
    s->buf = (uint8_t *)malloc(len ? len : 1);
    FUZZ_CHECK(s->buf != NULL);
    if (len)
        memcpy(s->buf, src, len);
    s->len = len;
}

static inline void fuzz_slice_drop(fuzz_slice *s)
{
    free(s->buf);
    s->buf = NULL;
    s->len = 0;
}

/* 1 when [p, p+n) lies inside the slice. */
static inline int fuzz_slice_contains(const fuzz_slice *s, const uint8_t *p,
                                      size_t n)
{
    uintptr_t b = (uintptr_t)s->buf, q = (uintptr_t)p;
    return s->buf && q >= b && n <= s->len && q - b <= s->len - n;
}

/* ---- touching event contents so ASan sees every view -------------------- */
FUZZ_NO_COVERAGE static inline void fuzz_touch(const void *p, size_t n)
{
    static volatile uint64_t sink;
    const uint8_t *b = (const uint8_t *)p;
    uint64_t sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += b[i];
    sink = sink + sum;
    (void)sink;
}

static inline void fuzz_touch_str(const char *s)
{
    FUZZ_CHECK(s != NULL);
    fuzz_touch(s, strlen(s) + 1);
}

/* A view of `size` bytes, or none (NULL is allowed only with no bytes,
 * unless `may_omit`: a unit that is only named, not kept). */
static inline void fuzz_touch_view(const void *p, size_t size, int may_omit)
{
    if (!p) {
        FUZZ_CHECK(size == 0 || may_omit);
        return;
    }
    if (size)
        fuzz_touch(p, size);
}

/* Check and touch the parts of an event that point into memory, so ASan
 * catches a view that is stale or too short, for every framing. */
static inline void fuzz_touch_event(const ms_event *ev)
{
    FUZZ_CHECK(ms_event_kind_name(ev->kind) != NULL);
    switch (ev->kind) {
    case MS_EV_DATA:
        fuzz_touch_view(ev->u.data.data, ev->u.data.size, 0);
        FUZZ_CHECK((unsigned)ev->u.data.phase <= MS_PHASE_FINAL);
        if (ev->u.data.idstr)
            fuzz_touch_str(ev->u.data.idstr);
        break;
    case MS_EV_DEVICE:
        FUZZ_CHECK(ev->u.device.idstr != NULL);
        fuzz_touch(ev->u.device.idstr, ev->u.device.idstr_len);
        FUZZ_CHECK(ev->u.device.idstr[ev->u.device.idstr_len] == '\0');
        fuzz_touch_view(ev->u.device.compat, ev->u.device.compat_len, 0);
        break;
    case MS_EV_CONFIGURATION:
        fuzz_touch_str(ev->u.config.machine);
        break;
    case MS_EV_SECTION:
    case MS_EV_SECTION_FOOTER:
    case MS_EV_UNDECODED:
        fuzz_touch_str(ev->u.section.idstr);
        if (ev->kind == MS_EV_UNDECODED)
            fuzz_touch_str(ev->u.section.detail);
        break;
    case MS_EV_COMMAND:
        fuzz_touch_str(ev->u.command.name);
        fuzz_touch_view(ev->u.command.args, ev->u.command.len, 0);
        if (ev->u.command.block)
            fuzz_touch_str(ev->u.command.block);
        if (ev->u.command.postcopy_state)
            fuzz_touch_str(ev->u.command.postcopy_state);
        break;
    case MS_EV_RAM_DISCARD:
        fuzz_touch_str(ev->u.discard.block);
        FUZZ_CHECK(ev->u.discard.index < ev->u.discard.count);
        FUZZ_CHECK(ev->u.discard.start % ev->u.discard.page_size == 0 &&
                   ev->u.discard.length % ev->u.discard.page_size == 0);
        break;
    case MS_EV_RAM_BLOCK:
    case MS_EV_RAM_PAGE:
    case MS_EV_RAM_MARKER:
        if (ev->u.ram.block)
            fuzz_touch_str(ev->u.ram.block);
        fuzz_touch_view(ev->u.ram.data, ev->u.ram.size, 0);
        break;
    case MS_EV_CPR:
        if (ev->u.cpr.record != MS_CPR_LIST_END) {
            fuzz_touch_str(ev->u.cpr.name);
            FUZZ_CHECK(strlen(ev->u.cpr.name) + 1 == ev->u.cpr.name_len);
        }
        break;
    case MS_EV_DIRTY_BITMAP:
        if (ev->u.dbm.record != MS_DBM_EOS) {
            fuzz_touch_str(ev->u.dbm.node);
            fuzz_touch_str(ev->u.dbm.bitmap);
        }
        fuzz_touch_view(ev->u.dbm.data, ev->u.dbm.size, 0);
        break;
    case MS_EV_VFIO_MARKER:
        fuzz_touch_str(ev->u.vfio.name);
        fuzz_touch_str(ev->u.vfio.idstr);
        break;
    case MS_EV_SUBSECTION:
    case MS_EV_FIELD:
        fuzz_touch_str(ev->u.field.path);
        fuzz_touch_str(ev->u.field.type);
        /* a field too large to keep is reported without its bytes */
        fuzz_touch_view(ev->u.field.data, ev->u.field.size, 1);
        break;
    case MS_EV_VMDESC:
        fuzz_touch_view(ev->u.vmdesc.json, ev->u.vmdesc.len, 0);
        break;
    case MS_EV_MULTIFD_PACKET:
        fuzz_touch_str(ev->u.mfd.compression);
        if (ev->u.mfd.block)
            fuzz_touch_str(ev->u.mfd.block);
        if (ev->u.mfd.idstr)
            fuzz_touch_str(ev->u.mfd.idstr);
        break;
    case MS_EV_PAYLOAD_RECORD:
        fuzz_touch_str(ev->u.precord.name);
        FUZZ_CHECK((unsigned)ev->u.precord.phase <= MS_PHASE_FINAL);
        FUZZ_CHECK(ev->u.precord.payload_kind < MS_PAYLOAD_KIND_COUNT_);
        break;
    case MS_EV_PAYLOAD_IMAGE:
        FUZZ_CHECK((unsigned)ev->u.image.phase <= MS_PHASE_FINAL);
        break;
    case MS_EV_PAYLOAD_FIELD:
        fuzz_touch_str(ev->u.pfield.name);
        fuzz_touch_view(ev->u.pfield.data, ev->u.pfield.size, 0);
        break;
    case MS_EV_MAPPED_RAM:
        fuzz_touch_str(ev->u.mapped.block);
        FUZZ_CHECK(ev->u.mapped.pages_set <= ev->u.mapped.pages_total);
        break;
    case MS_EV_RP_MESSAGE:
        fuzz_touch_str(ev->u.rp.name);
        if (ev->u.rp.block)
            fuzz_touch_str(ev->u.rp.block);
        break;
    default:
        break;
    }
}

/* An error record must name a code, and its detail must be a C string. */
static inline void fuzz_check_error(const ms_error_info *e, int failed)
{
    FUZZ_CHECK(e != NULL);
    if (failed) {
        FUZZ_CHECK(e->code != MS_ERR_OK);
        FUZZ_CHECK((unsigned)e->code < (unsigned)MS_ERR_COUNT_);
        FUZZ_CHECK(ms_error_name(e->code) != NULL);
        FUZZ_CHECK(ms_error_description(e->code) != NULL);
        FUZZ_CHECK(memchr(e->detail, '\0', sizeof e->detail) != NULL);
    } else {
        FUZZ_CHECK(e->code == MS_ERR_OK);
    }
}


/* Pull a reader's events for the slice just given (ending at input byte
 * `pos`), checking what holds for every reader: offsets never go back nor
 * past the input, errors are recorded, every view is readable, zero-copy
 * views lie in the slice.  `each` (may be NULL) sees every event.
 * Returns 1 when the reader failed, 0 when the slice is consumed. */
typedef void (*fuzz_event_fn)(const ms_event *ev, void *ctx);

static inline int fuzz_pump(ms_reader *r, const fuzz_slice *slice, size_t pos,
                            uint64_t *last_offset, uint64_t *last_consumed,
                            fuzz_event_fn each, void *ctx)
{
    for (;;) {
        ms_event ev;
        memset(&ev, 0xA5, sizeof ev); /* the reader must fill it */
        int rc = ms_reader_next(r, &ev);
        uint64_t consumed = ms_reader_offset(r);
        FUZZ_CHECK(consumed >= *last_consumed);
        FUZZ_CHECK(consumed <= pos);
        *last_consumed = consumed;
        if (rc == MS_NEXT_ERROR)
            return 1;
        FUZZ_CHECK(rc == MS_NEXT_EVENT || rc == MS_NEXT_INPUT);
        fuzz_check_error(ms_reader_error(r), 0);
        if (rc == MS_NEXT_INPUT)
            return 0;
        FUZZ_CHECK(ev.offset >= *last_offset);
        /* a compressed libvirt image's QEVM events count decompressed
         * bytes, which may outnumber the bytes fed */
        if (!(ev.flags & MS_EVF_DECOMPRESSED))
            FUZZ_CHECK(ev.offset <= pos);
        *last_offset = ev.offset;
        fuzz_touch_event(&ev);
        if (ev.kind == MS_EV_DATA && ev.u.data.zero_copy && ev.u.data.size)
            FUZZ_CHECK(fuzz_slice_contains(slice, ev.u.data.data,
                                           ev.u.data.size));
        if (each)
            each(&ev, ctx);
    }
}

/* End a reading: ms_reader_finish unless a call already failed, then check
 * that the error record says so, and that a failure is sticky (later calls
 * fail the same way, at an offset within the `size` input bytes).  Returns
 * 1 when the reader failed, 0 when the stream ended cleanly. */
static inline int fuzz_finish_reader(ms_reader *r, int failed, uint64_t size)
{
    if (!failed) {
        int rc = ms_reader_finish(r);
        FUZZ_CHECK(rc == 0 || rc == -1);
        failed = rc != 0;
    }
    const ms_error_info *e = ms_reader_error(r);
    fuzz_check_error(e, failed);
    FUZZ_CHECK(ms_format_name(ms_reader_format(r)) != NULL);
    if (!failed)
        return 0;
    ms_error code = e->code;
    uint64_t offset = e->offset;
    FUZZ_CHECK(offset <= size);
    ms_event ev;
    FUZZ_CHECK(ms_reader_next(r, &ev) == MS_NEXT_ERROR);
    FUZZ_CHECK(ms_reader_finish(r) == -1);
    FUZZ_CHECK(ms_reader_error(r)->code == code);
    FUZZ_CHECK(ms_reader_error(r)->offset == offset);
    return 1;
}

/* Read `data` whole with a reader made from `opt`, in slices whose sizes
 * come from a PRNG seeded by `seed`, checking fuzz_pump's invariants on
 * every event (`each` may be NULL) and, when the reader fails, that the
 * error is sticky and lies within the input.  An empty input still gets
 * one (empty) slice.  `vmdesc` (may be NULL) is a QEMU JSON trailer given
 * to the reader first.  Returns 1 when the reader failed (at any point,
 * ms_reader_finish included), 0 when the stream ended cleanly, -1 when
 * the reader refused `vmdesc` (nothing read). */
static inline int fuzz_read_all(const ms_options *opt, const uint8_t *data,
                                size_t size, uint64_t seed, const char *vmdesc,
                                size_t vmdesc_len, fuzz_event_fn each,
                                void *ctx)
{
    ms_reader *r = ms_reader_create(opt);
    FUZZ_CHECK(r != NULL);
    fuzz_check_error(ms_reader_error(r), 0);
    if (vmdesc && ms_reader_set_vmdesc(r, vmdesc, vmdesc_len) != 0) {
        ms_reader_free(r);
        return -1;
    }
    fuzz_rng rng = {seed};
    fuzz_slice slice = {NULL, 0};
    size_t pos = 0;
    uint64_t last_offset = 0, last_consumed = 0;
    int failed = 0;
    do {
        size_t n = fuzz_slice_size(&rng);
        if (n > size - pos)
            n = size - pos;
        fuzz_slice_set(&slice, data + pos, n);
        pos += n;
        failed =
            ms_reader_input(r, slice.buf, slice.len) != 0 ||
            fuzz_pump(r, &slice, pos, &last_offset, &last_consumed, each, ctx);
        fuzz_slice_drop(&slice); /* consumed (or failed): stale from now on */
    } while (pos < size && !failed);
    failed = fuzz_finish_reader(r, failed, size);
    ms_reader_free(r);
    return failed;
}

/* `prefix` then `data` in one exact-size heap block (free it), so a
 * harness can put a valid header in front of the bytes it fuzzes. */
static inline uint8_t *fuzz_join(const void *prefix, size_t prefix_len,
                                 const uint8_t *data, size_t size)
{
    uint8_t *buf = (uint8_t *)malloc(prefix_len + size + 1);
    FUZZ_CHECK(buf != NULL);
    memcpy(buf, prefix, prefix_len);
    if (size)
        memcpy(buf + prefix_len, data, size);
    return buf;
}

#endif
