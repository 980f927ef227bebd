/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* Fuzz the VMState decoding of a QEMU main stream with its JSON
 * description given first, and ms_nest replaying the reader's walk.
 *
 * Input: a QEVM stream ending with its JSON trailer (the description is
 * that trailer), or be32 n + n bytes of JSON + a stream (so description
 * and stream mutate independently).  The stream is fed in slices whose
 * sizes come from the input.
 *
 * Invariants (abort on violation):
 *   - the nest accepts the description exactly when the reader does;
 *   - every event the reader gives is accepted by the nest, and its steps
 *     drain without error (the nest takes the reader's own decisions);
 *   - OPEN goes one level deeper, CLOSE one back, FIELD stays, keys are
 *     C strings, and a FULL section's footer leaves depth 0. */
#include "fuzz_common.h"

#define NEST_MAX_JSON (256u << 10)

/* The description and the stream inside the input, or 0. */
static int split_input(const uint8_t *data, size_t size, const char **json,
                       size_t *json_len, const uint8_t **stream,
                       size_t *stream_len)
{
    size_t off, len;
    if (size >= 4 && memcmp(data, "QEVM", 4) == 0) {
        if (!ms_qemu_find_vmdesc(data, size, size, &off, &len))
            return 0;
        *json = (const char *)data + off;
        *json_len = len;
        *stream = data;
        *stream_len = size;
        return 1;
    }
    if (size < 4)
        return 0;
    len = ((size_t)data[0] << 24) | ((size_t)data[1] << 16) |
          ((size_t)data[2] << 8) | data[3];
    if (len > size - 4 || len > NEST_MAX_JSON)
        return 0;
    *json = (const char *)data + 4;
    *json_len = len;
    *stream = data + 4 + len;
    *stream_len = size - 4 - len;
    return 1;
}

/* Feed one event, drain its steps, check the depth bookkeeping. */
static void nest_event(ms_nest *n, const ms_event *ev, uint32_t *depth)
{
    FUZZ_CHECK(ms_nest_feed(n, ev) == 0);
    ms_nest_step st;
    int rc;
    while ((rc = ms_nest_next(n, &st)) == 1) {
        switch (st.kind) {
        case MS_NEST_OPEN:
            fuzz_touch_str(st.key);
            FUZZ_CHECK(st.depth == *depth + 1);
            *depth = st.depth;
            break;
        case MS_NEST_CLOSE:
            FUZZ_CHECK(st.depth == *depth && *depth > 0);
            (*depth)--;
            break;
        case MS_NEST_FIELD:
            fuzz_touch_str(st.key);
            FUZZ_CHECK(st.depth == *depth && ev->kind == MS_EV_FIELD);
            break;
        default:
            FUZZ_CHECK(0);
        }
    }
    FUZZ_CHECK(rc == 0);
    FUZZ_CHECK(ms_nest_error(n)->code == MS_ERR_OK);
    if (ev->kind == MS_EV_SECTION_FOOTER || ev->kind == MS_EV_SECTION)
        FUZZ_CHECK(*depth == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *json;
    const uint8_t *stream;
    size_t json_len, stream_len;
    if (!split_input(data, size, &json, &json_len, &stream, &stream_len))
        return 0;
    ms_options opt;
    fuzz_options(&opt, 1, 0);
    opt.field_events = 1;
    opt.max_vmdesc_bytes = NEST_MAX_JSON;
    ms_reader *r = ms_reader_create(&opt);
    FUZZ_CHECK(r != NULL);
    ms_error_info err;
    ms_nest *n = ms_nest_create(&opt, json, json_len, &err);
    int reader_ok = ms_reader_set_vmdesc(r, json, json_len) == 0;
    FUZZ_CHECK((n != NULL) == reader_ok);
    if (!n) {
        FUZZ_CHECK(err.code != MS_ERR_OK);
        ms_reader_free(r);
        return 0;
    }

    fuzz_rng rng = {fuzz_hash(data, size)};
    fuzz_slice slice = {NULL, 0};
    uint32_t depth = 0;
    int failed = 0;
    for (size_t pos = 0; pos < stream_len && !failed;) {
        size_t len = fuzz_slice_size(&rng);
        if (len > stream_len - pos)
            len = stream_len - pos;
        fuzz_slice_set(&slice, stream + pos, len);
        pos += len;
        failed = ms_reader_input(r, slice.buf, slice.len) != 0;
        ms_event ev;
        int rc = MS_NEXT_INPUT;
        while (!failed && (rc = ms_reader_next(r, &ev)) == MS_NEXT_EVENT) {
            fuzz_touch_event(&ev);
            nest_event(n, &ev, &depth);
        }
        failed |= rc == MS_NEXT_ERROR;
        fuzz_slice_drop(&slice);
    }
    fuzz_slice_drop(&slice);
    if (!failed)
        (void)ms_reader_finish(r);
    ms_nest_free(n);
    ms_reader_free(r);
    return 0;
}
