/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* Fuzz one ms_reader: the input is one stream, fed in slices whose sizes
 * come from a PRNG seeded by the input itself (deterministic per input, and
 * biased toward 1-byte slices so every resume point is hit).
 *
 * Each input runs twice: with check values verified (what users run) and
 * with them skipped (so mutations get past the chained XXH3 checks and reach
 * the record decoders).
 *
 * Invariants (abort on violation):
 *   - event offsets never decrease and never point past the bytes fed;
 *   - ms_reader_offset never decreases and never exceeds the bytes fed;
 *   - zero-copy data views lie inside the current slice; every data view,
 *     idstr and compat block is readable (ASan: each slice is a separate,
 *     exact-size heap block freed as soon as the reader has consumed it);
 *   - ms_reader_error() reports a code exactly when a call returned an error,
 *     and errors are sticky;
 *   - a clean finish of a migstream stream means its END record was seen. */
#include "fuzz_common.h"

static void note_end(const ms_event *ev, void *ctx)
{
    if (ev->kind == MS_EV_END)
        *(int *)ctx = 1;
}

static void run_reader(const uint8_t *data, size_t size, uint64_t seed,
                       int verify_checks, int record_events)
{
    ms_options opt;
    fuzz_options(&opt, verify_checks, record_events);
    ms_reader *r = ms_reader_create(&opt);
    FUZZ_CHECK(r != NULL);
    fuzz_check_error(ms_reader_error(r), 0);

    fuzz_rng rng = {seed};
    fuzz_slice slice = {NULL, 0};
    size_t pos = 0;
    uint64_t last_offset = 0, last_consumed = 0;
    int failed = 0, saw_end = 0;

    while (pos < size && !failed) {
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
                           note_end, &saw_end);
        fuzz_slice_drop(&slice); /* consumed (or failed): stale from now on */
    }
    fuzz_slice_drop(&slice);

    failed = fuzz_finish_reader(r, failed, size);
    if (!failed && ms_reader_format(r) == MS_FORMAT_MIGSTREAM)
        FUZZ_CHECK(saw_end);
    ms_reader_free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t h = fuzz_hash(data, size);

    /* Format detection on the whole input and on a short prefix. */
    for (size_t cut = 0; cut < 2; cut++) {
        size_t len = cut ? (size < 7 ? size : 7) : size;
        size_t need = 0;
        ms_format f = ms_detect(data, len, &need);
        FUZZ_CHECK(ms_format_name(f) != NULL);
        if (f == MS_FORMAT_AUTO)
            FUZZ_CHECK(need > len);
    }

    run_reader(data, size, h, 1, (int)(h >> 63));
    run_reader(data, size, h ^ 0x5851f42d4c957f2dull, 0, (int)((h >> 62) & 1));
    return 0;
}
