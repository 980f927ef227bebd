/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* XBZRLE deltas (QEMU's "XOR based zero run length encoding" of a RAM page
 * against the copy the destination already holds): the one place that
 * knows their rules, used by the RAM decoder (qemu_ram.c checks every
 * XBZRLE record: the length when the record's header comes, with
 * ms_xbzrle_length_rule, the delta with ms_xbzrle_check) and by the tools
 * (ms_xbzrle_apply rebuilds the page after the same checks), so a delta
 * the reader accepts is one apply takes, and the other way round.
 * Facts: spec/qemu-main.md, "XBZRLE deltas".
 *
 *   delta := pair*
 *   pair  := zrun nzrun byte{nzrun}
 *   zrun, nzrun := ULEB128 of one or two bytes (at most 14 bits)
 *
 *   page offset d = 0
 *   for each pair:  d += zrun          (unchanged bytes, skipped)
 *                   page[d .. d+nzrun) = the nzrun bytes;  d += nzrun
 *
 * What QEMU's loader (load_xbzrle, xbzrle_decode_buffer) rejects, each
 * checked here:
 *   - a delta longer than the page;
 *   - fewer than 2 bytes left where a run length is read (even a one-byte
 *     length: QEMU tests the room before decoding it);
 *   - a length whose second byte has bit 7 set (a third byte would follow);
 *   - a zero run of 0 in any pair but the first; a data run of 0;
 *   - a zero run or data run reaching past the page;
 *   - a data run reaching past the delta.
 * Overlong two-byte lengths (e.g. 0x85 0x00 for 5) are accepted, as QEMU
 * accepts them.  An empty delta, which QEMU would load as "no change" but
 * never sends (an unchanged page is not sent), is refused. */
#include "xbzrle.h"

/* One run length at delta[*at]; QEMU needs two bytes of room for it.
 * Returns NULL and advances *at, or why it is malformed. */
static const char *take_length(const uint8_t *delta, size_t n, size_t *at,
                               uint32_t *len, int zero_run)
{
    size_t i = *at;
    if (n - i < 2)
        return zero_run ? "zero-run length cut short (fewer than 2 bytes "
                          "left)"
                        : "data-run length cut short (fewer than 2 bytes "
                          "left)";
    if (!(delta[i] & 0x80)) {
        *len = delta[i];
        *at = i + 1;
        return NULL;
    }
    if (delta[i + 1] & 0x80)
        return "run length of more than 14 bits (a third ULEB128 byte)";
    *len = (uint32_t)(delta[i] & 0x7f) | ((uint32_t)delta[i + 1] << 7);
    *at = i + 2;
    return NULL;
}

/* Walk the whole delta; with `page` non-NULL also copy each data run.
 * Returns NULL when valid, else why, with *bad_offset at the offending
 * run's length field. */
static const char *walk(const uint8_t *delta, size_t n, uint8_t *page,
                        size_t page_size, size_t *bad_offset)
{
    size_t i = 0, d = 0;
    while (i < n) {
        uint32_t zrun, nzrun;
        const char *why;
        /* stage 1: the zero run (unchanged bytes) */
        *bad_offset = i;
        if ((why = take_length(delta, n, &i, &zrun, 1)))
            return why;
        if (zrun == 0 && *bad_offset != 0)
            return "empty zero run after the first pair";
        if (zrun > page_size - d)
            return "zero run past the end of the page";
        d += zrun;
        /* stage 2: the data run (new bytes, copied as they are) */
        *bad_offset = i;
        if ((why = take_length(delta, n, &i, &nzrun, 0)))
            return why;
        if (nzrun == 0)
            return "empty data run";
        if (nzrun > page_size - d)
            return "data run past the end of the page";
        if (nzrun > n - i)
            return "data run past the end of the delta";
        if (page)
            memcpy(page + d, delta + i, nzrun);
        d += nzrun;
        i += nzrun;
    }
    return NULL;
}

const char *ms_xbzrle_length_rule(size_t n, size_t page_size)
{
    if (n == 0)
        return "empty delta (QEMU never sends one)";
    if (n > page_size)
        return "delta longer than the page";
    return NULL;
}

const char *ms_xbzrle_check(const void *delta, size_t n, size_t page_size,
                            size_t *bad_offset)
{
    size_t off = 0;
    const char *why = ms_xbzrle_length_rule(n, page_size);
    if (!why)
        why = walk(delta, n, NULL, page_size, &off);
    if (bad_offset)
        *bad_offset = why ? off : 0;
    return why;
}

int ms_xbzrle_apply(const void *delta, size_t n, uint8_t *page,
                    size_t page_size, size_t *bad_offset)
{
    /* Check first, so a malformed delta leaves the page as it was. */
    if (ms_xbzrle_check(delta, n, page_size, bad_offset))
        return -1;
    size_t off;
    walk(delta, n, page, page_size, &off);
    return 0;
}
