/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* Fuzz the reader with seekable input (QEMU mapped-ram files: the block
 * list jumps to each block's bitmap and pages and back to the stream at
 * fixed offsets).
 *
 * Each input is read twice, with input_seekable and input_size set:
 *   1. the whole buffer as one slice (what the tools do with a mapped
 *      file): every jump stays inside it, so MS_NEXT_SEEK comes only for
 *      an offset past the end, which then finishes the input;
 *   2. slices of PRNG sizes (biased to 1 byte), each a separate exact-size
 *      heap block freed once consumed; MS_NEXT_SEEK is answered with a
 *      slice at ms_reader_seek_target().
 *
 * Invariants (abort on violation):
 *   - events and ms_reader_offset never go back; the offset sought is
 *     never before the reader's offset (mapped-ram regions come in file
 *     order) and MS_NEXT_SEEK never comes for an offset inside the slice;
 *   - every view is readable, zero-copy views lie in the current slice;
 *   - errors are recorded, sticky, and the two readings agree: the same
 *     events (kind, offset, length; data events, which split where the
 *     slices do, by their byte count when both readings succeed) and the
 *     same error code and offset. */
#include "fuzz_common.h"

#define MAX_EVENTS 4096

typedef struct reading {
    size_t nev;
    ms_event_kind kind[MAX_EVENTS];
    uint64_t off[MAX_EVENTS], len[MAX_EVENTS];
    uint64_t data_bytes; /* MS_EV_DATA: split where the slices split */
    int failed;
    ms_error code;
    uint64_t err_off;
} reading;

/* Pull events for the current slice [base, base + len).  Returns
 * MS_NEXT_INPUT, MS_NEXT_SEEK or MS_NEXT_ERROR. */
static int pull(ms_reader *r, const fuzz_slice *s, uint64_t base,
                uint64_t *last_off, reading *out)
{
    for (;;) {
        ms_event ev;
        memset(&ev, 0xA5, sizeof ev);
        uint64_t before = ms_reader_offset(r);
        int rc = ms_reader_next(r, &ev);
        uint64_t now = ms_reader_offset(r);
        if (rc == MS_NEXT_ERROR)
            return rc;
        fuzz_check_error(ms_reader_error(r), 0);
        if (rc == MS_NEXT_SEEK) {
            uint64_t t = ms_reader_seek_target(r);
            FUZZ_CHECK(t >= before);
            FUZZ_CHECK(t < base || t > base + s->len);
            return rc;
        }
        FUZZ_CHECK(now >= before);
        FUZZ_CHECK(now <= base + s->len);
        if (rc == MS_NEXT_INPUT)
            return rc;
        FUZZ_CHECK(rc == MS_NEXT_EVENT);
        FUZZ_CHECK(ev.offset >= *last_off);
        *last_off = ev.offset;
        fuzz_touch_event(&ev);
        if (ev.kind == MS_EV_RAM_PAGE && ev.u.ram.zero_copy && ev.u.ram.size)
            FUZZ_CHECK(fuzz_slice_contains(s, ev.u.ram.data, ev.u.ram.size));
        if (ev.kind == MS_EV_DATA) {
            out->data_bytes += ev.u.data.size;
            continue;
        }
        if (out->nev < MAX_EVENTS) {
            out->kind[out->nev] = ev.kind;
            out->off[out->nev] = ev.offset;
            out->len[out->nev] = ev.length;
        }
        out->nev++;
    }
}

static void read_input(const uint8_t *data, size_t size, uint64_t seed,
                       int whole, reading *out)
{
    ms_options opt;
    fuzz_options(&opt, 1, 0);
    opt.input_seekable = 1;
    opt.input_size = size;
    ms_reader *r = ms_reader_create(&opt);
    FUZZ_CHECK(r != NULL);
    fuzz_rng rng = {seed};
    fuzz_slice slice = {NULL, 0};
    uint64_t pos = 0, last_off = 0;
    int rc = MS_NEXT_INPUT;
    memset(out, 0, sizeof *out);
    while (pos < size) {
        size_t n = whole ? size - (size_t)pos : fuzz_slice_size(&rng);
        if (n > size - pos)
            n = size - (size_t)pos;
        fuzz_slice_set(&slice, data + pos, n);
        if (ms_reader_input_at(r, pos, slice.buf, slice.len) != 0) {
            rc = MS_NEXT_ERROR;
            break;
        }
        rc = pull(r, &slice, pos, &last_off, out);
        fuzz_slice_drop(&slice);
        if (rc == MS_NEXT_ERROR)
            break;
        pos = rc == MS_NEXT_SEEK ? ms_reader_seek_target(r) : pos + n;
    }
    fuzz_slice_drop(&slice);
    if (rc != MS_NEXT_ERROR)
        rc = ms_reader_finish(r) == 0 ? MS_NEXT_INPUT : MS_NEXT_ERROR;
    out->failed = rc == MS_NEXT_ERROR;
    const ms_error_info *e = ms_reader_error(r);
    fuzz_check_error(e, out->failed);
    out->code = e->code;
    out->err_off = e->offset;
    if (out->failed) { /* sticky */
        ms_event ev;
        FUZZ_CHECK(ms_reader_next(r, &ev) == MS_NEXT_ERROR);
        FUZZ_CHECK(ms_reader_error(r)->code == out->code);
    }
    ms_reader_free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static reading a, b;
    uint64_t h = fuzz_hash(data, size);
    read_input(data, size, h, 1, &a);
    read_input(data, size, h ^ 0x2545f4914f6cdd1dull, 0, &b);
    FUZZ_CHECK(a.nev == b.nev);
    for (size_t i = 0; i < a.nev && i < MAX_EVENTS; i++)
        FUZZ_CHECK(a.kind[i] == b.kind[i] && a.off[i] == b.off[i] &&
                   a.len[i] == b.len[i]);
    /* before a failing check, streamed data may have gone out in part */
    FUZZ_CHECK(a.failed || b.failed || a.data_bytes == b.data_bytes);
    FUZZ_CHECK(a.failed == b.failed && a.code == b.code &&
               a.err_off == b.err_off);
    return 0;
}
