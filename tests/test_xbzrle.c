/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* XBZRLE deltas (libstream/qemu/xbzrle.c), checked against deltas this test
 * encodes itself from the rules in spec/qemu-main.md ("XBZRLE deltas"):
 *
 *   - pages changed in many patterns (single bytes, long runs that need
 *     two-byte lengths, the first or last byte, everything) encode to a
 *     delta that ms_xbzrle_check accepts and ms_xbzrle_apply turns the old
 *     page into the new one;
 *   - every malformed case QEMU's loader rejects, with the offset of the
 *     offending run's length, and the page left unchanged;
 *   - the QEMU reader: a stream with XBZRLE records decodes byte by byte
 *     and fails at every cut; a malformed delta is a `ram` error at the
 *     bad run's offset in the stream;
 *   - migstream-extract --ram rebuilds the pages from such a stream, and
 *     reports a malformed delta as FILE:OFFSET: ram: XBZRLE delta.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "test_util.h"

#define PAGE 4096u

/* ---- the test's own encoder, from the spec ------------------------------ */

static size_t put_uleb(uint8_t *out, uint32_t v)
{
    if (v < 0x80) {
        out[0] = (uint8_t)v;
        return 1;
    }
    out[0] = (uint8_t)(0x80 | (v & 0x7f));
    out[1] = (uint8_t)(v >> 7);
    return 2;
}

/* Pairs of (unchanged run, changed run + its new bytes); a trailing
 * unchanged run is not written.  Returns the delta's length. */
static size_t encode(const uint8_t *old, const uint8_t *cur, size_t n,
                     uint8_t *out)
{
    size_t i = 0, o = 0;
    while (i < n) {
        size_t z = i;
        while (i < n && old[i] == cur[i])
            i++;
        if (i == n)
            break;
        size_t start = i;
        while (i < n && old[i] != cur[i])
            i++;
        o += put_uleb(out + o, (uint32_t)(start - z));
        o += put_uleb(out + o, (uint32_t)(i - start));
        memcpy(out + o, cur + start, i - start);
        o += i - start;
    }
    return o;
}

/* New page from old: pattern p changes some bytes. */
static void mutate(const uint8_t *old, uint8_t *cur, int pattern, uint64_t seed)
{
    memcpy(cur, old, PAGE);
    uint64_t s = seed;
    switch (pattern) {
    case 0: /* one byte in the middle */
        cur[1000] ^= 0xff;
        break;
    case 1: /* the first and the last byte */
        cur[0] ^= 1;
        cur[PAGE - 1] ^= 1;
        break;
    case 2: /* a long run: two-byte data-run length */
        for (size_t i = 300; i < 2300; i++)
            cur[i] ^= 0xa5;
        break;
    case 3: /* everything */
        for (size_t i = 0; i < PAGE; i++)
            cur[i] ^= 0x3c;
        break;
    case 4: /* scattered single bytes: many pairs */
        for (size_t i = 7; i < PAGE; i += 97)
            cur[i] ^= 0x11;
        break;
    default: /* random short runs */
        for (int k = 0; k < 40; k++) {
            size_t at = (size_t)(tb_rand(&s) % PAGE);
            size_t len = 1 + (size_t)(tb_rand(&s) % 200);
            for (size_t i = at; i < PAGE && i < at + len; i++)
                cur[i] ^= (uint8_t)(1 + tb_rand(&s) % 255);
        }
    }
}

static void test_roundtrip(void **state)
{
    (void)state;
    static uint8_t old[PAGE], cur[PAGE], page[PAGE];
    static uint8_t delta[PAGE * 2];
    for (int pattern = 0; pattern < 12; pattern++) {
        tb_fill_random(old, PAGE, 100 + (uint64_t)pattern);
        mutate(old, cur, pattern, 7 + (uint64_t)pattern);
        size_t n = encode(old, cur, PAGE, delta);
        assert_true(n > 0);
        size_t bad = 99;
        if (n > PAGE) {
            /* QEMU's encoder sends such a page whole; its loader refuses
             * a delta longer than the page, and so do check and apply */
            memcpy(page, old, PAGE);
            const char *why = ms_xbzrle_check(delta, n, PAGE, &bad);
            assert_non_null(why);
            assert_non_null(strstr(why, "longer than the page"));
            assert_int_equal(ms_xbzrle_apply(delta, n, page, PAGE, &bad), -1);
            assert_memory_equal(page, old, PAGE);
            continue;
        }
        const char *why = ms_xbzrle_check(delta, n, PAGE, &bad);
        if (why)
            print_message("pattern %d: %s at %zu\n", pattern, why, bad);
        assert_null(why);
        assert_int_equal(bad, 0);
        memcpy(page, old, PAGE);
        assert_int_equal(ms_xbzrle_apply(delta, n, page, PAGE, &bad), 0);
        assert_memory_equal(page, cur, PAGE);
    }
    /* an unchanged page has an empty delta, which QEMU never sends: the
     * reader refuses it, so apply does too */
    memcpy(page, old, PAGE);
    assert_int_equal(encode(old, old, PAGE, delta), 0);
    assert_non_null(ms_xbzrle_check(delta, 0, PAGE, NULL));
    assert_int_equal(ms_xbzrle_apply(delta, 0, page, PAGE, NULL), -1);
    assert_memory_equal(page, old, PAGE);
}

/* Lengths QEMU's decoder accepts though its encoder never writes them. */
static void test_accepted_edges(void **state)
{
    (void)state;
    uint8_t page[16384];
    memset(page, 0, sizeof page);
    /* overlong two-byte lengths: 5 and 1 */
    static const uint8_t overlong[] = {0x85, 0x00, 0x81, 0x00, 0xAB};
    assert_null(ms_xbzrle_check(overlong, sizeof overlong, 16, NULL));
    assert_int_equal(ms_xbzrle_apply(overlong, sizeof overlong, page, 16, NULL),
                     0);
    assert_int_equal(page[5], 0xAB);
    assert_int_equal(page[4], 0);
    /* the largest length, 0x3fff: a zero run up to the last byte */
    static const uint8_t largest[] = {0xff, 0x7f, 0x01, 0xCD};
    assert_null(ms_xbzrle_check(largest, sizeof largest, 16384, NULL));
    assert_int_equal(
        ms_xbzrle_apply(largest, sizeof largest, page, 16384, NULL), 0);
    assert_int_equal(page[16383], 0xCD);
    /* a data run ending exactly at the end of the page */
    static const uint8_t to_end[] = {14, 2, 1, 2};
    assert_null(ms_xbzrle_check(to_end, sizeof to_end, 16, NULL));
}

typedef struct bad_case {
    const char *label;
    uint8_t delta[24];
    size_t n, page_size, bad_offset;
    const char *why_has; /* a word of the reason */
} bad_case;

static const bad_case g_bad[] = {
    {"one byte: no room for a length", {5}, 1, 16, 0, "zero-run"},
    {"zero run, then one byte left", {5, 3}, 2, 16, 1, "data-run"},
    {"third ULEB128 byte in a zero run", {0x80, 0x80, 1}, 3, 16, 0, "14 bits"},
    {"third ULEB128 byte in a data run",
     {1, 0xff, 0x80, 1},
     4,
     16,
     1,
     "14 bits"},
    {"empty zero run in the second pair",
     {0, 1, 9, 0, 1, 9},
     6,
     16,
     3,
     "empty zero run"},
    {"empty data run", {1, 0, 0}, 3, 16, 1, "empty data run"},
    {"overlong empty data run", {1, 0x80, 0x00, 7}, 4, 16, 1, "empty data run"},
    {"zero run past the page", {17, 1, 9}, 3, 16, 0, "zero run past"},
    {"zero run past the page (second pair)",
     {0, 1, 9, 16, 1, 9},
     6,
     16,
     3,
     "zero run past"},
    {"data run past the page",
     {10, 7, 1, 2, 3, 4, 5, 6, 7},
     9,
     16,
     1,
     "past the end of the page"},
    {"zero run filling the page, then data",
     {16, 1, 9},
     3,
     16,
     1,
     "past the end of the page"},
    {"data run past the delta",
     {0, 5, 1, 2, 3},
     5,
     16,
     1,
     "past the end of the delta"},
    {"valid pair, then a lone byte", {0, 1, 9, 4}, 4, 16, 3, "zero-run"},
    /* the length rule (the reader checks it at the record's length) */
    {"empty delta", {0}, 0, 16, 0, "empty delta"},
    {"delta longer than the page",
     {0, 15, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
     17,
     16,
     0,
     "longer than the page"},
};

static void test_malformed(void **state)
{
    (void)state;
    for (size_t k = 0; k < sizeof g_bad / sizeof g_bad[0]; k++) {
        const bad_case *c = &g_bad[k];
        size_t bad = 999;
        const char *why = ms_xbzrle_check(c->delta, c->n, c->page_size, &bad);
        if (!why || bad != c->bad_offset || !strstr(why, c->why_has))
            print_message("%s: got \"%s\" at %zu, want \"%s\" at %zu\n",
                          c->label, why ? why : "(valid)", bad, c->why_has,
                          c->bad_offset);
        assert_non_null(why);
        assert_int_equal(bad, c->bad_offset);
        assert_non_null(strstr(why, c->why_has));
        /* apply fails the same way and leaves the page alone */
        uint8_t page[32];
        memset(page, 0x5a, sizeof page);
        bad = 999;
        assert_int_equal(
            ms_xbzrle_apply(c->delta, c->n, page, c->page_size, &bad), -1);
        assert_int_equal(bad, c->bad_offset);
        for (size_t i = 0; i < sizeof page; i++)
            assert_int_equal(page[i], 0x5a);
    }
}

/* ---- through the QEMU reader -------------------------------------------- */

#define RAM_ID 2u
static const char *const g_names[] = {"pc.ram"};
static const uint64_t g_lens[] = {4 * PAGE};

/* A stream: the block list, a PART with two PAGEs, then XBZRLE records
 * (deltas given), EOF.  *delta_at gets the offset of the last delta's
 * first byte. */
static void xbz_stream(tb_buf *b, uint8_t pages[2][PAGE],
                       const uint8_t *const *deltas, const uint16_t *lens,
                       size_t nd, size_t *delta_at)
{
    tq_begin(b);
    tq_section_start(b, TQ_START, RAM_ID, "ram", 0, 4);
    tq_ram_block_list(b, g_names, g_lens, 1);
    tq_ram_eos(b);
    tq_footer(b, RAM_ID);
    tq_section_part(b, TQ_PART, RAM_ID);
    tq_ram_page(b, 0, "pc.ram", pages[0], PAGE);
    tq_ram_page(b, PAGE, NULL, pages[1], PAGE);
    tq_ram_eos(b);
    tq_footer(b, RAM_ID);
    tq_section_part(b, TQ_END, RAM_ID);
    for (size_t i = 0; i < nd; i++) {
        size_t at = tq_ram_xbzrle(b, (i % 2) * PAGE, i ? NULL : "pc.ram", 1,
                                  deltas[i], lens[i]);
        *delta_at = at + 8 + (i ? 0 : 7) + 3;
    }
    tq_ram_eos(b);
    tq_footer(b, RAM_ID);
    tq_eof(b);
}

typedef struct fixture {
    uint8_t pages[2][PAGE]; /* as sent by PAGE records */
    uint8_t final[2][PAGE]; /* after the XBZRLE records */
    uint8_t d0[PAGE * 2], d1[PAGE * 2];
    uint16_t l0, l1;
} fixture;

static void make_fixture(fixture *f)
{
    tb_fill_random(f->pages[0], PAGE, 1);
    tb_fill_random(f->pages[1], PAGE, 2);
    mutate(f->pages[0], f->final[0], 2, 3);
    mutate(f->pages[1], f->final[1], 5, 4);
    f->l0 = (uint16_t)encode(f->pages[0], f->final[0], PAGE, f->d0);
    f->l1 = (uint16_t)encode(f->pages[1], f->final[1], PAGE, f->d1);
    assert_true(f->l0 > 0 && f->l0 <= PAGE && f->l1 > 0 && f->l1 <= PAGE);
}

static void test_reader(void **state)
{
    (void)state;
    static fixture f;
    make_fixture(&f);
    const uint8_t *ds[] = {f.d0, f.d1};
    const uint16_t ls[] = {f.l0, f.l1};
    tb_buf b;
    tb_buf_init(&b);
    size_t at;
    xbz_stream(&b, f.pages, ds, ls, 2, &at);
    tb_result whole, bytes;
    memset(&whole, 0, sizeof whole);
    memset(&bytes, 0, sizeof bytes);
    assert_int_equal(tb_read_all(b.p, b.len, NULL, &whole), 0);
    assert_int_equal(tb_read_bytewise(b.p, b.len, NULL, &bytes), 0);
    char why[256];
    assert_true(tb_events_equal(&whole, &bytes, why, sizeof why));
    size_t xb = 0;
    for (size_t i = 0; i < whole.n_events; i++)
        if (whole.events[i].kind == MS_EV_RAM_PAGE &&
            whole.events[i].u.ram.record == MS_RAM_XBZRLE)
            xb++;
    assert_int_equal(xb, 2);
    tb_result_free(&whole);
    tb_result_free(&bytes);
    /* every cut fails, inside the input */
    for (size_t cut = 0; cut < b.len; cut++) {
        ms_error_info e;
        assert_int_equal(tb_verify(b.p, cut, NULL, &e), -1);
        assert_true(e.code == MS_ERR_TRUNCATED || e.code == MS_ERR_MISSING_END);
        assert_true(e.offset <= cut);
    }
    /* a malformed second delta: the error is at its bad run */
    for (size_t k = 0; k < sizeof g_bad / sizeof g_bad[0]; k++) {
        const bad_case *c = &g_bad[k];
        /* page overruns need a 16-byte page, and the length rule is
         * checked at the record's length: both below instead */
        if ((strstr(c->why_has, "past") && !strstr(c->why_has, "delta")) ||
            c->n == 0 || c->n > c->page_size)
            continue;
        uint8_t d[24];
        size_t n = c->n;
        memcpy(d, c->delta, n);
        const uint8_t *bd[] = {f.d0, d};
        const uint16_t bl[] = {f.l0, (uint16_t)n};
        tb_buf_reset(&b);
        xbz_stream(&b, f.pages, bd, bl, 2, &at);
        ms_error_info e;
        assert_int_equal(tb_verify(b.p, b.len, NULL, &e), -1);
        if (e.code != MS_ERR_RAM || e.offset != at + c->bad_offset ||
            !strstr(e.detail, "XBZRLE delta"))
            print_message("%s: %s at %llu (%s), want ram at %zu\n", c->label,
                          ms_error_name(e.code), (unsigned long long)e.offset,
                          e.detail, at + c->bad_offset);
        assert_int_equal(e.code, MS_ERR_RAM);
        assert_int_equal(e.offset, at + c->bad_offset);
    }
    /* page overruns on a real page: a zero run of the page, then data */
    uint8_t over[] = {0x80, 0x20, 1, 9}; /* 0x1000 = PAGE */
    const uint8_t *od[] = {f.d0, over};
    const uint16_t ol[] = {f.l0, sizeof over};
    tb_buf_reset(&b);
    xbz_stream(&b, f.pages, od, ol, 2, &at);
    ms_error_info e;
    assert_int_equal(tb_verify(b.p, b.len, NULL, &e), -1);
    assert_int_equal(e.code, MS_ERR_RAM);
    assert_int_equal(e.offset, at + 2);
    assert_non_null(strstr(e.detail, "past the end of the page"));
    /* the length rule, at the record's be16 length (2 bytes before the
     * delta): an empty delta, and one longer than the page (QEMU refuses
     * both; ms_xbzrle_apply too, so extract never sees one) */
    static uint8_t long_delta[PAGE + 1];
    const uint16_t lens[] = {0, PAGE + 1};
    for (size_t k = 0; k < 2; k++) {
        const uint8_t *ld[] = {f.d0, long_delta};
        const uint16_t ll[] = {f.l0, lens[k]};
        tb_buf_reset(&b);
        xbz_stream(&b, f.pages, ld, ll, 2, &at);
        assert_int_equal(tb_verify(b.p, b.len, NULL, &e), -1);
        assert_int_equal(e.code, MS_ERR_RAM);
        assert_int_equal(e.offset, at - 2);
        assert_non_null(strstr(e.detail, k ? "longer than the page"
                                            : "empty delta"));
    }
    tb_buf_free(&b);
}

/* ---- migstream-extract --ram -------------------------------------------- */

static int run(const char *cmd)
{
    int rc = system(cmd);
    return rc == -1 || !WIFEXITED(rc) ? -1 : WEXITSTATUS(rc);
}

static void write_file(const char *path, const tb_buf *b)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(b->p, 1, b->len, fp), b->len);
    assert_int_equal(fclose(fp), 0);
}

static void test_extract(void **state)
{
    (void)state;
    const char *bin = getenv("MIGSTREAM_BIN_DIR");
    if (!bin)
        bin = ".";
    char dir[] = "/tmp/ms-xbzrle-XXXXXX";
    assert_non_null(mkdtemp(dir));
    static fixture f;
    make_fixture(&f);
    const uint8_t *ds[] = {f.d0, f.d1};
    const uint16_t ls[] = {f.l0, f.l1};
    tb_buf b;
    tb_buf_init(&b);
    size_t at;
    xbz_stream(&b, f.pages, ds, ls, 2, &at);
    char path[512], cmd[2048];
    snprintf(path, sizeof path, "%s/good.mig", dir);
    write_file(path, &b);
    snprintf(cmd, sizeof cmd,
             "'%s/migstream-extract' --ram '%s/ram' '%s' >'%s/out' 2>&1", bin,
             dir, path, dir);
    assert_int_equal(run(cmd), 0);
    snprintf(path, sizeof path, "%s/ram/pc.ram", dir);
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    static uint8_t got[4 * PAGE];
    assert_int_equal(fread(got, 1, sizeof got, fp), sizeof got);
    fclose(fp);
    assert_memory_equal(got, f.final[0], PAGE);
    assert_memory_equal(got + PAGE, f.final[1], PAGE);
    for (size_t i = 2 * PAGE; i < sizeof got; i++)
        assert_int_equal(got[i], 0);

    /* a delta whose data run overruns it: exit 1, the offset named */
    uint8_t bad[] = {0, 5, 1, 2, 3};
    const uint8_t *bd[] = {f.d0, bad};
    const uint16_t bl[] = {f.l0, sizeof bad};
    tb_buf_reset(&b);
    xbz_stream(&b, f.pages, bd, bl, 2, &at);
    snprintf(path, sizeof path, "%s/bad.mig", dir);
    write_file(path, &b);
    snprintf(cmd, sizeof cmd,
             "'%s/migstream-extract' --ram '%s/ram2' '%s' >'%s/out' 2>&1", bin,
             dir, path, dir);
    assert_int_equal(run(cmd), 1);
    char want[600];
    snprintf(want, sizeof want,
             "grep -q 'bad.mig:%zu: ram: XBZRLE delta: data run past the "
             "end of the delta' '%s/out'",
             at + 1, dir);
    if (run(want) != 0) {
        snprintf(cmd, sizeof cmd, "cat '%s/out'", dir);
        (void)run(cmd);
    }
    assert_int_equal(run(want), 0);
    /* migstream-verify: the same problem at the same offset */
    snprintf(cmd, sizeof cmd, "'%s/migstream-verify' '%s' >'%s/out' 2>&1",
             bin, path, dir);
    assert_int_equal(run(cmd), 1);
    assert_int_equal(run(want), 0);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(run(cmd), 0);
    tb_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip), cmocka_unit_test(test_accepted_edges),
        cmocka_unit_test(test_malformed), cmocka_unit_test(test_reader),
        cmocka_unit_test(test_extract),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
