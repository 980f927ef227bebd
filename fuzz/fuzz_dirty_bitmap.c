/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* Fuzz the "dirty-bitmap" section decoder (libstream/qemu/qemu_dirty_bitmap.c;
 * spec/qemu-main.md, "Block dirty bitmaps").
 *
 * The harness writes the stream's start: a QEVM header (version 3), a
 * configuration record (machine "pc-7.2") and the START section header of
 * section 3, "dirty-bitmap" instance 0 version 1; the input follows as the
 * section's records, so every mutation lands in the records (flags, node
 * and bitmap aliases, START, BITS with and without buffer, COMPLETE, EOS),
 * then the footer and later PART/END sections of the same bitmaps.  Fed in
 * PRNG-sized slices (fuzz_common.h), the main-stream format forced.
 *
 * Invariants (abort on violation): those of fuzz_read_all (offsets never
 * go back nor past the bytes fed, views readable and zero-copy views
 * inside their slice, errors reported exactly when a call fails, sticky
 * and inside the input), and for every dirty-bitmap event but EOS: a node
 * and a bitmap name; a BITS buffer piece no larger than QEMU's 10 KiB
 * buffer limit. */
#include "fuzz_common.h"

#define DBM_MAX_BUFFER (10u * 1024)

static const uint8_t stream_start[] = {
    'Q',  'E', 'V', 'M', 0,   0,   0,   3,                  /* header */
    0x07, 0,   0,   0,   6,   'p', 'c', '-', '7', '.', '2', /* configuration */
    0x01, 0,   0,   0,   3,   12,  'd', 'i', 'r', 't', 'y', '-', /* START, id 3
                                                                  */
    'b',  'i', 't', 'm', 'a', 'p', 0,   0,   0,   0,   0,   0,   0,
    1 /* inst 0, ver 1 */
};

static void check_event(const ms_event *ev, void *ctx)
{
    (void)ctx;
    if (ev->kind != MS_EV_DIRTY_BITMAP)
        return;
    if (ev->u.dbm.record != MS_DBM_EOS)
        FUZZ_CHECK(ev->u.dbm.node != NULL && ev->u.dbm.bitmap != NULL);
    FUZZ_CHECK(ev->u.dbm.size <= DBM_MAX_BUFFER);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *stream = fuzz_join(stream_start, sizeof stream_start, data, size);
    ms_options opt;
    fuzz_options(&opt, 1, 0);
    opt.format = MS_FORMAT_QEMU_MAIN;
    opt.max_sections = 64;
    (void)fuzz_read_all(&opt, stream, sizeof stream_start + size,
                        fuzz_hash(data, size), NULL, 0, check_event, NULL);
    free(stream);
    return 0;
}
