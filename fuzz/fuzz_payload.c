/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* Fuzz the VFIO driver payload decoders (MS_FORMAT_PAYLOAD), which format
 * auto-detection never picks.  Input byte 0 chooses how the rest is read:
 *
 *   payload_kind = (b0 % 8) - 1      -1 (detect), raw, mlx5, virtio, hisi,
 *                                    qat, xe, pds
 *   f = b0 / 8 (0..31)               0: no payload_final_offset; else the
 *                                    final offset is (f - 1) / 30 of the way
 *                                    through the payload
 *
 * The payload (bytes 1..) is fed in slices whose sizes come from a PRNG
 * seeded by the input (fuzz_common.h).  Each input runs twice: with the
 * final offset only and check values verified, and with carrier phases
 * (ms_reader_set_phase before slices: mostly moving forward through
 * initial, middle, final, now and then back) and checks skipped.
 *
 * Invariants (abort on violation), those of fuzz_reader.c:
 *   - event offsets never decrease and never point past the bytes fed;
 *   - ms_reader_offset never decreases and never exceeds the bytes fed;
 *   - zero-copy data views lie inside the current slice; every data view,
 *     field view and name is readable (ASan: each slice is an exact-size
 *     heap block freed once consumed);
 *   - ms_reader_error() reports a code exactly when a call returned an
 *     error, errors are sticky, and their offsets lie within the input;
 * and for payloads:
 *   - the reader's format is MS_FORMAT_PAYLOAD;
 *   - every record names its driver: the kind given, or with detection the
 *     kind ms_payload_detect() picks from the same bytes;
 *   - phases in events are valid; ms_payload_detect answers -2 only for
 *     fewer than 28 bytes.
 */
#include "fuzz_common.h"

#define DETECT_MAX 28

typedef struct kind_check {
    int kind, detected;
} kind_check;

/* A record names the kind the reader was told, or the one it detected. */
static void check_kind(const ms_event *ev, void *ctx)
{
    const kind_check *k = ctx;
    if (ev->kind == MS_EV_PAYLOAD_RECORD)
        FUZZ_CHECK((int)ev->u.precord.payload_kind ==
                   (k->kind >= 0 ? k->kind : k->detected));
}

static void run_payload(const uint8_t *data, size_t size, int kind,
                        uint64_t final, uint64_t seed, int verify_checks,
                        int carrier)
{
    ms_options opt;
    fuzz_options(&opt, verify_checks, 0);
    opt.format = MS_FORMAT_PAYLOAD;
    opt.payload_kind = kind;
    opt.payload_final_offset = final;
    ms_reader *r = ms_reader_create(&opt);
    FUZZ_CHECK(r != NULL);
    fuzz_check_error(ms_reader_error(r), 0);

    int detected = ms_payload_detect(data, size);
    FUZZ_CHECK(detected >= -2 && detected < MS_PAYLOAD_KIND_COUNT_);
    FUZZ_CHECK(detected != -2 || size < DETECT_MAX);

    fuzz_rng rng = {seed};
    fuzz_slice slice = {NULL, 0};
    size_t pos = 0;
    uint64_t last_offset = 0, last_consumed = 0;
    int failed = 0, first = 1;
    ms_phase phase = MS_PHASE_NONE;

    while ((pos < size || first) && !failed) {
        first = 0;
        if (carrier) {
            uint64_t x = fuzz_rng_next(&rng);
            if ((x & 7) == 0 && phase < MS_PHASE_FINAL)
                phase = (ms_phase)(phase + 1);
            else if ((x & 63) == 1)
                phase = MS_PHASE_INITIAL; /* backwards: phase order */
            ms_reader_set_phase(r, phase);
            fuzz_check_error(ms_reader_error(r), 0);
        }
        size_t n = fuzz_slice_size(&rng);
        if (n > size - pos)
            n = size - pos;
        fuzz_slice_set(&slice, data + pos, n);
        pos += n;
        if (ms_reader_input(r, slice.buf, slice.len) != 0) {
            failed = 1;
            break;
        }
        kind_check kc = {kind, detected};
        failed = fuzz_pump(r, &slice, pos, &last_offset, &last_consumed,
                           check_kind, &kc);
        fuzz_slice_drop(&slice); /* consumed (or failed): stale from now on */
    }
    fuzz_slice_drop(&slice);

    (void)fuzz_finish_reader(r, failed, size);
    FUZZ_CHECK(ms_reader_format(r) == MS_FORMAT_PAYLOAD);
    ms_reader_free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    uint64_t h = fuzz_hash(data, size);
    int kind = (data[0] % 8) - 1;
    unsigned f = data[0] / 8;
    const uint8_t *payload = data + 1;
    size_t len = size - 1;
    uint64_t final = f == 0 ? UINT64_MAX : (uint64_t)len * (f - 1) / 30;

    /* Detection on every prefix up to the point where it must decide. */
    for (size_t cut = 0; cut <= len && cut <= DETECT_MAX; cut++) {
        int k = ms_payload_detect(payload, cut);
        FUZZ_CHECK(k >= -2 && k < MS_PAYLOAD_KIND_COUNT_);
        FUZZ_CHECK(k != MS_PAYLOAD_PDS && k != MS_PAYLOAD_RAW);
        if (cut == DETECT_MAX)
            FUZZ_CHECK(k != -2);
    }

    run_payload(payload, len, kind, final, h, 1, 0);
    run_payload(payload, len, kind, final, h ^ 0x5851f42d4c957f2dull, 0, 1);
    return 0;
}
