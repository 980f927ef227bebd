/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* Fuzz the QEMU return-path decoder: the input is one return path, read
 * with the format forced (so every input reaches the message decoder, not
 * only those that pass detection) and once more detected, in slices whose
 * sizes come from a PRNG seeded by the input.  The forced reader's events
 * also go through a set, which runs the return-path side of the
 * main-stream cross-check.
 *
 * Invariants (abort on violation), besides fuzz_pump's:
 *   - every RP_MESSAGE has a known type 1..7 and a name, and its length
 *     covers at least its 4-byte header and payload;
 *   - a clean finish means a SHUT was seen, and nothing followed it;
 *   - a detected reader that picked the return path agrees with the forced
 *     one (same verdict, same error offset);
 *   - errors are sticky and lie within the input. */
#include "fuzz_common.h"

typedef struct rp_seen {
    ms_set *set;
    int shut, set_failed;
    uint64_t shut_end, last_end;
    uint64_t messages;
} rp_seen;

static void on_event(const ms_event *ev, void *ctx)
{
    rp_seen *s = ctx;
    if (s->set && !s->set_failed) {
        ms_event sev;
        if (ms_set_observe(s->set, 0, ev) < 0)
            s->set_failed = 1;
        else
            while (ms_set_next(s->set, &sev) == MS_NEXT_EVENT)
                fuzz_touch_event(&sev);
    }
    if (ev->kind != MS_EV_RP_MESSAGE)
        return;
    const ms_rp_info *m = &ev->u.rp;
    FUZZ_CHECK(m->type >= 1 && m->type <= 7);
    FUZZ_CHECK(m->name != NULL);
    FUZZ_CHECK(ev->length >= 4u + m->len);
    FUZZ_CHECK(!s->shut); /* nothing after SHUT */
    s->messages++;
    s->last_end = ev->offset + ev->length;
    if (m->type == MS_RP_SHUT) {
        s->shut = 1;
        s->shut_end = s->last_end;
    }
}

/* Returns 1 when the reader failed; its error goes to code and offset. */
static int run(const uint8_t *data, size_t size, uint64_t seed,
               ms_format format, int with_set, ms_format *picked,
               ms_error *code, uint64_t *offset)
{
    ms_options opt;
    fuzz_options(&opt, 1, 0);
    opt.format = format;
    ms_reader *r = ms_reader_create(&opt);
    FUZZ_CHECK(r != NULL);
    rp_seen seen = {0};
    if (with_set)
        FUZZ_CHECK((seen.set = ms_set_create(&opt)) != NULL);
    fuzz_rng rng = {seed};
    fuzz_slice slice = {NULL, 0};
    size_t pos = 0;
    uint64_t last_offset = 0, last_consumed = 0;
    int failed = 0;
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
                               on_event, &seen);
        fuzz_slice_drop(&slice);
    }
    if (!failed)
        failed = ms_reader_finish(r) != 0;
    const ms_error_info *e = ms_reader_error(r);
    fuzz_check_error(e, failed);
    *picked = ms_reader_format(r);
    if (!failed && *picked == MS_FORMAT_QEMU_RETURN_PATH) {
        FUZZ_CHECK(seen.shut);
        FUZZ_CHECK(seen.shut_end == size); /* trailing bytes fail */
    }
    if (!failed && seen.set && !seen.set_failed &&
        ms_set_channel_done(seen.set, 0) == 0)
        (void)ms_set_finish(seen.set); /* SHUT 1 may fail it: fine */
    *code = e->code;
    *offset = e->offset;
    if (failed) {
        FUZZ_CHECK(e->offset <= size);
        ms_event ev;
        FUZZ_CHECK(ms_reader_next(r, &ev) == MS_NEXT_ERROR);
        FUZZ_CHECK(ms_reader_finish(r) == -1);
        FUZZ_CHECK(ms_reader_error(r)->code == *code);
        FUZZ_CHECK(ms_reader_error(r)->offset == *offset);
    }
    ms_set_free(seen.set);
    ms_reader_free(r);
    return failed;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t h = fuzz_hash(data, size);
    ms_format f1, f2;
    ms_error c1, c2;
    uint64_t o1, o2;
    int failed =
        run(data, size, h, MS_FORMAT_QEMU_RETURN_PATH, 1, &f1, &c1, &o1);
    FUZZ_CHECK(f1 == MS_FORMAT_QEMU_RETURN_PATH);
    int failed2 = run(data, size, h ^ 0x2545f4914f6cdd1dull, MS_FORMAT_AUTO, 0,
                      &f2, &c2, &o2);
    if (f2 == MS_FORMAT_QEMU_RETURN_PATH) {
        FUZZ_CHECK(failed == failed2);
        FUZZ_CHECK(c1 == c2 && o1 == o2);
    }
    return 0;
}
