/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* Fuzz the QEMU main-stream decoder fed directly (MS_FORMAT_QEMU_MAIN
 * forced: libstream/qemu/qemu_main.c, qemu_section.c, qemu_cmd.c,
 * qemu_ram.c, qemu_vfio.c, qemu_dirty_bitmap.c, vmstate.c).
 *
 * Input byte 0 chooses how the rest is read:
 *   bit 0  put a valid header ("QEVM", version 3) in front, so mutations
 *          spend their bytes on sections instead of on the magic
 *   bit 1  field_events (MS_EV_FIELD per VMState field)
 *   bit 2  record_events
 *   bit 3  give the reader the stream's own JSON trailer first (found with
 *          ms_qemu_find_vmdesc), so FULL sections are decoded field by field
 * The stream is fed in PRNG-sized slices (fuzz_common.h).
 *
 * Invariants (abort on violation): those of fuzz_read_all (offsets never
 * go back nor past the bytes fed, views readable and zero-copy views
 * inside their slice, errors reported exactly when a call fails, sticky
 * and inside the input), and:
 *   - the reader stays in the QEMU main-stream format;
 *   - a clean finish means the EOF record was seen. */
#include "fuzz_common.h"

#define QEVM_HEADER_SIZE 8

typedef struct main_seen {
    int eof;
} main_seen;

static void check_event(const ms_event *ev, void *ctx)
{
    main_seen *s = ctx;
    if (ev->kind == MS_EV_STREAM_HEADER)
        FUZZ_CHECK(ev->u.stream.format == MS_FORMAT_QEMU_MAIN);
    if (ev->kind == MS_EV_QEMU_EOF)
        s->eof = 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint8_t qevm[QEVM_HEADER_SIZE] = {'Q', 'E', 'V', 'M',
                                                   0,   0,   0,   3};
    if (size == 0)
        return 0;
    uint8_t mode = data[0];
    size_t prefix = (mode & 1) ? sizeof qevm : 0;
    uint8_t *stream = fuzz_join(qevm, prefix, data + 1, size - 1);
    size_t len = prefix + size - 1;

    ms_options opt;
    fuzz_options(&opt, 1, (mode >> 2) & 1);
    opt.format = MS_FORMAT_QEMU_MAIN;
    opt.field_events = (mode >> 1) & 1;
    opt.max_vmdesc_bytes = 1u << 20;
    opt.max_sections = 256;
    opt.max_ram_blocks = 64;
    opt.max_nesting = 4;

    size_t json_off = 0, json_len = 0;
    const char *json = NULL;
    if ((mode & 8) &&
        ms_qemu_find_vmdesc(stream, len, len, &json_off, &json_len)) {
        FUZZ_CHECK(json_off <= len && json_len <= len - json_off);
        json = (const char *)stream + json_off;
    }
    main_seen seen = {0};
    int failed = fuzz_read_all(&opt, stream, len, fuzz_hash(data, size), json,
                               json_len, check_event, &seen);
    if (failed == 0)
        FUZZ_CHECK(seen.eof);
    free(stream);
    return 0;
}
