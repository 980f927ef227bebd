/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* Fuzz the JSON trailer (QEMU's vmdesc) parser and the VMState description
 * it builds (libstream/core/json.c, libstream/qemu/vmstate.c,
 * vmstate_nest.c), without a stream: the input is the JSON text.
 *
 * Each input is handed to ms_reader_set_vmdesc, ms_reader_borrow_vmdesc
 * and ms_nest_create, and wrapped as a trailer (0x06, be32 length, JSON)
 * behind a few stream bytes for ms_qemu_find_vmdesc.
 *
 * Invariants (abort on violation):
 *   - the reader and the nest accept the same descriptions (set and
 *     borrow included: borrowing only relaxes what a stream may lack);
 *   - a refused description leaves a coded error (nest), and the reader
 *     can still be handed a stream (an empty one) and freed;
 *   - ms_qemu_find_vmdesc finds the wrapped trailer where it was put
 *     when the JSON starts with '{', and any answer lies inside the
 *     buffer. */
#include "fuzz_common.h"

#define JSON_MAX (64u << 10)

static void check_find(const uint8_t *data, size_t size)
{
    static const uint8_t before[] = {'Q', 'E', 'V', 'M', 0, 0, 0, 3, 0};
    size_t len = sizeof before + 5 + size;
    uint8_t *buf = fuzz_join(before, sizeof before, data, 0);
    uint8_t *grown = realloc(buf, len);
    FUZZ_CHECK(grown != NULL);
    buf = grown;
    uint8_t *t = buf + sizeof before;
    t[0] = 0x06;
    t[1] = (uint8_t)(size >> 24);
    t[2] = (uint8_t)(size >> 16);
    t[3] = (uint8_t)(size >> 8);
    t[4] = (uint8_t)size;
    if (size)
        memcpy(t + 5, data, size);
    size_t off = 0, jlen = 0;
    int found = ms_qemu_find_vmdesc(buf, len, len, &off, &jlen);
    FUZZ_CHECK(found == 0 || found == 1);
    if (found)
        FUZZ_CHECK(off <= len && jlen <= len - off);
    if (size && data[0] == '{' && found)
        FUZZ_CHECK(off + jlen == len);
    /* a short scan window never reads before it */
    (void)ms_qemu_find_vmdesc(buf, len, size / 2, &off, &jlen);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > JSON_MAX)
        return 0;
    const char *json = (const char *)data;
    ms_options opt;
    fuzz_options(&opt, 1, 0);
    opt.format = MS_FORMAT_QEMU_MAIN;
    opt.max_vmdesc_bytes = JSON_MAX;

    ms_reader *r = ms_reader_create(&opt);
    FUZZ_CHECK(r != NULL);
    int set_ok = ms_reader_set_vmdesc(r, json, size) == 0;
    ms_reader *b = ms_reader_create(&opt);
    FUZZ_CHECK(b != NULL);
    int borrow_ok = ms_reader_borrow_vmdesc(b, json, size) == 0;
    FUZZ_CHECK(set_ok == borrow_ok);
    ms_error_info err;
    memset(&err, 0, sizeof err);
    ms_nest *n = ms_nest_create(&opt, json, size, &err);
    FUZZ_CHECK((n != NULL) == set_ok);
    if (!n) {
        FUZZ_CHECK(err.code != MS_ERR_OK);
        FUZZ_CHECK(memchr(err.detail, '\0', sizeof err.detail) != NULL);
    }
    ms_nest_free(n);

    /* either way the reader still reads a stream (an empty one) */
    static const uint8_t empty[] = {'Q', 'E', 'V', 'M', 0, 0, 0, 3, 0};
    if (ms_reader_input(r, empty, sizeof empty) == 0) {
        ms_event ev;
        int rc;
        while ((rc = ms_reader_next(r, &ev)) == MS_NEXT_EVENT)
            fuzz_touch_event(&ev);
        if (rc != MS_NEXT_ERROR)
            (void)ms_reader_finish(r);
    }
    ms_reader_free(r);
    ms_reader_free(b);

    check_find(data, size);
    return 0;
}
