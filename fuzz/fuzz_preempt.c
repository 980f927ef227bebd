/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* Fuzz the QEMU postcopy-preempt channel decoder (MS_FORMAT_QEMU_PREEMPT:
 * RAM page records and an EOS, no magic; libstream/qemu/qemu_preempt.c over the
 * RAM record reader of qemu_ram.c).
 *
 * Input: byte 0 picks the page size the main stream would hand over (512,
 * 1024, 4096 or 8192 bytes: small pages keep seeds small), the rest is the
 * channel, fed in PRNG-sized slices (biased toward 1 byte).
 *
 * Invariants (abort on violation): those of fuzz_pump (offsets never
 * decrease nor pass the bytes fed, views readable and inside their slice,
 * errors reported exactly when a call fails and sticky), and:
 *   - the first event is the synthetic stream header naming the format;
 *   - every page event names a block, lies on a page boundary and carries
 *     one page of data (PAGE) or none (ZERO);
 *   - a clean finish means the EOS came, and nothing after it. */
#include "fuzz_common.h"

typedef struct preempt_seen {
    uint32_t page_size;
    uint64_t events, eos;
} preempt_seen;

static void check_event(const ms_event *ev, void *ctx)
{
    preempt_seen *s = ctx;
    if (s->events++ == 0)
        FUZZ_CHECK(ev->kind == MS_EV_STREAM_HEADER &&
                   ev->u.stream.format == MS_FORMAT_QEMU_PREEMPT);
    if (ev->kind == MS_EV_RAM_PAGE) {
        FUZZ_CHECK(ev->u.ram.block != NULL && ev->u.ram.block[0] != 0);
        FUZZ_CHECK(ev->u.ram.page_size == s->page_size);
        FUZZ_CHECK(ev->u.ram.offset % s->page_size == 0);
        if (ev->u.ram.record == MS_RAM_PAGE)
            FUZZ_CHECK(ev->u.ram.size == s->page_size);
        FUZZ_CHECK(ev->u.ram.record == MS_RAM_PAGE ||
                   ev->u.ram.record == MS_RAM_ZERO ||
                   ev->u.ram.record == MS_RAM_COMPRESS_PAGE);
    }
    if (ev->kind == MS_EV_RAM_MARKER && ev->u.ram.record == MS_RAM_EOS)
        s->eos++;
}

static void run_preempt(const uint8_t *data, size_t size, uint32_t page_size,
                        uint64_t seed)
{
    ms_options opt;
    fuzz_options(&opt, 1, 0);
    opt.format = MS_FORMAT_QEMU_PREEMPT;
    opt.qemu_page_size = page_size;
    opt.max_ram_blocks = 64;
    ms_reader *r = ms_reader_create(&opt);
    FUZZ_CHECK(r != NULL);
    preempt_seen seen = {page_size, 0, 0};
    fuzz_rng rng = {seed};
    fuzz_slice slice = {NULL, 0};
    size_t pos = 0;
    uint64_t last_offset = 0, last_consumed = 0;
    int failed = 0;
    do { /* an empty channel still gets its header event */
        size_t n = fuzz_slice_size(&rng);
        if (n > size - pos)
            n = size - pos;
        fuzz_slice_set(&slice, data + pos, n);
        pos += n;
        if (ms_reader_input(r, slice.buf, slice.len) != 0) {
            failed = 1;
            break;
        }
        failed = fuzz_pump(r, &slice, pos, &last_offset, &last_consumed,
                           check_event, &seen);
        fuzz_slice_drop(&slice);
    } while (pos < size && !failed);
    fuzz_slice_drop(&slice);
    if (!failed) {
        failed = ms_reader_finish(r) != 0;
        if (!failed)
            FUZZ_CHECK(seen.eos == 1 && ms_reader_offset(r) == size);
    }
    fuzz_check_error(ms_reader_error(r), failed);
    if (failed) {
        ms_event ev;
        FUZZ_CHECK(ms_reader_next(r, &ev) == MS_NEXT_ERROR);
        FUZZ_CHECK(ms_reader_error(r)->offset <= size);
    }
    ms_reader_free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint32_t sizes[4] = {512, 1024, 4096, 8192};
    if (size == 0)
        return 0;
    uint64_t h = fuzz_hash(data, size);
    run_preempt(data + 1, size - 1, sizes[data[0] & 3], h);
    return 0;
}
