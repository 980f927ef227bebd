/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* Fuzz the QEMU multifd channel decoder fed directly (MS_FORMAT_QEMU_MULTIFD
 * forced: libstream/qemu/qemu_multifd.c; spec/qemu-multifd.md).  The 7.2
 * and 10.x layouts share the framing and differ in what the fields hold
 * (stale fields in page-less packets, zero pages, header-only SYNC
 * packets, device-state packets): the seeds hold both, and the decoder
 * tells them apart from the packets themselves.
 *
 * Input byte 0 chooses the target page size the main stream would hand
 * over (qemu_page_size): 4096, 8192, 16384 or 65536 (bits 0-1; larger
 * pages mean fewer offset slots in each packet header).  The rest is the
 * channel, fed in PRNG-sized slices (fuzz_common.h).
 *
 * Invariants (abort on violation): those of fuzz_read_all (offsets never
 * go back nor past the bytes fed, views readable and zero-copy views
 * inside their slice, errors reported exactly when a call fails, sticky
 * and inside the input), and:
 *   - the reader stays in the multifd format;
 *   - a packet's counts agree (normal + zero pages <= pages_alloc);
 *   - every page event lies on a page boundary of the page size given and
 *     carries one page (PAGE) or none (ZERO). */
#include "fuzz_common.h"

static void check_event(const ms_event *ev, void *ctx)
{
    const uint32_t *page_size = ctx;
    if (ev->kind == MS_EV_STREAM_HEADER)
        FUZZ_CHECK(ev->u.stream.format == MS_FORMAT_QEMU_MULTIFD);
    if (ev->kind == MS_EV_MULTIFD_PACKET && !ev->u.mfd.device_state)
        FUZZ_CHECK(ev->u.mfd.normal_pages <= ev->u.mfd.pages_alloc &&
                   ev->u.mfd.zero_pages <=
                       ev->u.mfd.pages_alloc - ev->u.mfd.normal_pages);
    if (ev->kind == MS_EV_RAM_PAGE) {
        FUZZ_CHECK(ev->u.ram.page_size == *page_size);
        FUZZ_CHECK(ev->u.ram.offset % *page_size == 0);
        if (ev->u.ram.record == MS_RAM_PAGE)
            FUZZ_CHECK(ev->u.ram.size == *page_size);
        if (ev->u.ram.record == MS_RAM_ZERO)
            FUZZ_CHECK(ev->u.ram.size == 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint32_t sizes[4] = {4096, 8192, 16384, 65536};
    if (size == 0)
        return 0;
    uint32_t page_size = sizes[data[0] & 3];
    ms_options opt;
    fuzz_options(&opt, 1, 0);
    opt.format = MS_FORMAT_QEMU_MULTIFD;
    opt.qemu_page_size = page_size;
    (void)fuzz_read_all(&opt, data + 1, size - 1, fuzz_hash(data, size), NULL,
                        0, check_event, &page_size);
    return 0;
}
