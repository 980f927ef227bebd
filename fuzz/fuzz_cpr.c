/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* Fuzz the QEMU CPR state decoder (libstream/qemu/qemu_cpr.c, spec/qemu-cpr.md).
 *
 * Each input is read twice, in slices whose sizes come from a PRNG seeded
 * by the input (fuzz_common.h):
 *   - as it is, with format detection (a "QCPR" magic picks the decoder);
 *   - behind a valid header ("QCPR", version 1) with the format forced, so
 *     mutations spend their bytes on the fd list, names, fds and the
 *     vfio devices subsection instead of on the magic.
 *
 * Invariants (abort on violation), those of fuzz_reader.c (offsets never
 * go back or past the input, views readable, errors sticky and inside the
 * input), and for CPR:
 *   - every fd / vfio device name is a C string whose length + 1 is the
 *     name_len on the wire;
 *   - a passed fd (cpr-transfer) has fd -1, a numbered one (cpr-exec) is
 *     >= 0, and one stream never mixes the two;
 *   - a list's end reports as many entries as were reported before it;
 *   - a clean finish comes right after the end of a list, or right after
 *     the vfio devices subsection header.
 */
#include "fuzz_common.h"

typedef struct cpr_seen {
    int mode;         /* 0 none yet, 1 passed, 2 numbered */
    uint32_t entries; /* in the list being read */
    int last_was_end; /* the last CPR event closed a list */
    int is_cpr;       /* the stream header said qemu-cpr */
} cpr_seen;

static void check_event(const ms_event *ev, void *ctx)
{
    cpr_seen *s = ctx;
    if (ev->kind == MS_EV_STREAM_HEADER)
        s->is_cpr = ev->u.stream.format == MS_FORMAT_QEMU_CPR;
    if (ev->kind != MS_EV_CPR) {
        /* the vfio devices subsection header may end the state (QEMU
         * without iommufd writes no list after it) */
        if (ev->kind != MS_EV_STREAM_HEADER)
            s->last_was_end = ev->kind == MS_EV_SUBSECTION;
        return;
    }
    FUZZ_CHECK(s->is_cpr);
    const ms_cpr_info *c = &ev->u.cpr;
    switch (c->record) {
    case MS_CPR_FD: {
        int mode = c->fd_passed ? 1 : 2;
        FUZZ_CHECK(c->fd_passed ? c->fd == -1 : c->fd >= 0);
        FUZZ_CHECK(s->mode == 0 || s->mode == mode);
        s->mode = mode;
    }
        /* fallthrough */
    case MS_CPR_VFIO_DEVICE:
        FUZZ_CHECK(c->name != NULL && c->name_len >= 1);
        FUZZ_CHECK(strlen(c->name) + 1 == c->name_len);
        s->entries++;
        s->last_was_end = 0;
        break;
    case MS_CPR_LIST_END:
        FUZZ_CHECK(c->count == s->entries);
        FUZZ_CHECK(c->list <= 1);
        s->entries = 0;
        s->last_was_end = 1;
        break;
    default:
        FUZZ_CHECK(0 && "unknown CPR record");
    }
}

static void run(const uint8_t *data, size_t size, uint64_t seed,
                ms_format format)
{
    ms_options opt;
    fuzz_options(&opt, 1, 0);
    opt.format = format;
    ms_reader *r = ms_reader_create(&opt);
    FUZZ_CHECK(r != NULL);
    fuzz_rng rng = {seed};
    fuzz_slice slice = {NULL, 0};
    size_t pos = 0;
    uint64_t last_offset = 0, last_consumed = 0;
    int failed = 0;
    cpr_seen seen = {0, 0, 0, 0};
    while (pos < size && !failed) {
        size_t n = fuzz_slice_size(&rng);
        if (n > size - pos)
            n = size - pos;
        fuzz_slice_set(&slice, data + pos, n);
        pos += n;
        if (ms_reader_input(r, slice.buf, slice.len) != 0)
            failed = 1;
        else
            failed = fuzz_pump(r, &slice, pos, &last_offset, &last_consumed,
                               check_event, &seen);
        fuzz_slice_drop(&slice);
    }
    if (!failed) {
        int rc = ms_reader_finish(r);
        FUZZ_CHECK(rc == 0 || rc == -1);
        failed = rc != 0;
        if (!failed && ms_reader_format(r) == MS_FORMAT_QEMU_CPR)
            FUZZ_CHECK(seen.last_was_end);
    }
    const ms_error_info *e = ms_reader_error(r);
    fuzz_check_error(e, failed);
    if (failed) {
        ms_error code = e->code;
        uint64_t offset = e->offset;
        FUZZ_CHECK(offset <= size);
        ms_event ev;
        FUZZ_CHECK(ms_reader_next(r, &ev) == MS_NEXT_ERROR);
        FUZZ_CHECK(ms_reader_error(r)->code == code);
    }
    ms_reader_free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t h = fuzz_hash(data, size);
    run(data, size, h, MS_FORMAT_AUTO);
    if (size > (1u << 20))
        return 0;
    uint8_t *framed = malloc(size + 8);
    FUZZ_CHECK(framed != NULL);
    static const uint8_t header[8] = {'Q', 'C', 'P', 'R', 0, 0, 0, 1};
    memcpy(framed, header, 8);
    if (size)
        memcpy(framed + 8, data, size);
    run(framed, size + 8, h ^ 0x9e3779b97f4a7c15ull, MS_FORMAT_QEMU_CPR);
    free(framed);
    return 0;
}
