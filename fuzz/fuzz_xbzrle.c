/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* Fuzz the XBZRLE delta rules (ms_xbzrle_check, ms_xbzrle_apply;
 * libstream/qemu/xbzrle.c; spec/qemu-main.md, "XBZRLE deltas") against a
 * model written here from the spec, and round-trip deltas this harness
 * encodes.
 *
 * Input byte 0 chooses the page size: 64 << (b0 & 7) (64 .. 8192 bytes),
 * and with bit 3 the encoder below writes every length in two bytes.
 *   1. The rest is a delta: ms_xbzrle_check and the model must agree on
 *      whether it is valid; ms_xbzrle_apply must agree with check, leave
 *      the page unchanged when it refuses (and say where, inside the
 *      delta), and otherwise produce the page the model produces.
 *   2. The rest, split in two halves, is an old and a new page (padded
 *      with a pattern): the harness encodes the change as QEMU's encoder
 *      does; when the delta fits in the page the library must accept it
 *      and applying it to the old page must give the new one. */
#include "fuzz_common.h"

#define MAX_PAGE 8192u

/* ---- the model: the rules of spec/qemu-main.md, byte by byte ------------- */
/* A run length: one byte (bit 7 clear) or two (the second with bit 7
 * clear), with at least two bytes left in the delta either way. */
static int model_length(const uint8_t *d, size_t n, size_t *i, size_t *len)
{
    if (n - *i < 2)
        return 0;
    size_t v = d[*i] & 0x7f;
    if (d[*i] & 0x80) {
        if (d[*i + 1] & 0x80)
            return 0;
        v |= (size_t)d[*i + 1] << 7;
        (*i)++;
    }
    (*i)++;
    *len = v;
    return 1;
}

/* 1 and `page` updated when the delta is valid, else 0 (`page` then holds
 * the runs before the bad one: model_apply works on a copy). */
static int model_walk(const uint8_t *d, size_t n, uint8_t *page, size_t ps)
{
    if (n == 0 || n > ps)
        return 0;
    size_t i = 0, at = 0;
    for (int first = 1; i < n; first = 0) {
        size_t zrun, nzrun;
        if (!model_length(d, n, &i, &zrun) || (zrun == 0 && !first) ||
            at + zrun > ps)
            return 0;
        at += zrun;
        if (!model_length(d, n, &i, &nzrun) || nzrun == 0 || at + nzrun > ps ||
            i + nzrun > n)
            return 0;
        for (size_t k = 0; k < nzrun; k++)
            page[at + k] = d[i + k];
        at += nzrun;
        i += nzrun;
    }
    return 1;
}

/* 1 and `page` updated when the delta is valid, else 0 (page untouched). */
static int model_apply(const uint8_t *d, size_t n, uint8_t *page, size_t ps)
{
    static uint8_t scratch[MAX_PAGE];
    memcpy(scratch, page, ps);
    if (!model_walk(d, n, scratch, ps))
        return 0;
    memcpy(page, scratch, ps);
    return 1;
}

/* ---- an encoder: zero runs over equal bytes, data runs over changed ------
 * With `overlong`, every length takes two bytes (0x85 0x00 for 5), which
 * QEMU's loader accepts too. */
static size_t put_length(uint8_t *out, size_t v, int overlong)
{
    if (v >= 0x80 || overlong) {
        out[1] = (uint8_t)(v >> 7);
        out[0] = (uint8_t)(0x80 | (v & 0x7f));
        return 2;
    }
    out[0] = (uint8_t)v;
    return 1;
}

/* Bytes written to `out` (room for 3 * ps), 0 when nothing changed; a
 * trailing unchanged run is not sent. */
static size_t encode(const uint8_t *old, const uint8_t *cur, size_t ps,
                     int overlong, uint8_t *out)
{
    size_t n = 0, prev_end = 0, k = 0;
    while (k < ps) {
        if (old[k] == cur[k]) {
            k++;
            continue;
        }
        size_t first = k;
        do
            k++;
        while (k < ps && old[k] != cur[k]);
        n += put_length(out + n, first - prev_end, overlong);
        n += put_length(out + n, k - first, overlong);
        memcpy(out + n, cur + first, k - first);
        n += k - first;
        prev_end = k;
    }
    return n;
}

static void check_delta(const uint8_t *d, size_t n, size_t ps)
{
    static uint8_t want[MAX_PAGE], got[MAX_PAGE];
    for (size_t k = 0; k < ps; k++)
        want[k] = got[k] = (uint8_t)(k * 7 + 3);
    size_t bad = SIZE_MAX, bad_apply = SIZE_MAX;
    const char *why = ms_xbzrle_check(d, n, ps, &bad);
    int valid = model_apply(d, n, want, ps);
    FUZZ_CHECK((why == NULL) == valid);
    if (why) {
        fuzz_touch_str(why);
        FUZZ_CHECK(bad <= n); /* a cut-short length: where it would be */
    } else {
        FUZZ_CHECK(bad == 0);
    }
    int rc = ms_xbzrle_apply(d, n, got, ps, &bad_apply);
    FUZZ_CHECK(rc == (valid ? 0 : -1));
    if (rc != 0)
        FUZZ_CHECK(bad_apply == bad);
    /* refused: untouched (want still holds the pattern); else the model's */
    FUZZ_CHECK(memcmp(want, got, ps) == 0);
}

static void check_round_trip(const uint8_t *d, size_t n, size_t ps,
                             int overlong)
{
    static uint8_t old[MAX_PAGE], cur[MAX_PAGE], delta[3 * MAX_PAGE];
    size_t half = n / 2;
    for (size_t k = 0; k < ps; k++) {
        old[k] = k < half ? d[k] : (uint8_t)(k >> 3);
        cur[k] = k < n - half ? d[half + k] : (uint8_t)(k >> 3);
    }
    size_t len = encode(old, cur, ps, overlong, delta);
    if (len == 0 || len > ps)
        return; /* unchanged, or QEMU would send the page whole */
    FUZZ_CHECK(ms_xbzrle_check(delta, len, ps, NULL) == NULL);
    FUZZ_CHECK(ms_xbzrle_apply(delta, len, old, ps, NULL) == 0);
    FUZZ_CHECK(memcmp(old, cur, ps) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t ps = (size_t)64 << (data[0] & 7);
    check_delta(data + 1, size - 1, ps);
    check_round_trip(data + 1, size - 1, ps, (data[0] >> 3) & 1);
    return 0;
}
