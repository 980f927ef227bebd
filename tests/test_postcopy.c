/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* QEMU postcopy: the command sequence, discards and the postcopy-preempt
 * channel, checked against the facts (spec/qemu-main.md, QEMU's
 * migration/savevm.c loader rules) and the real capture, not against the
 * decoder's code:
 *
 *   - every command written by test_util's own encoder (tq_*), in a small
 *     postcopy stream read whole, one byte at a time and cut at every
 *     offset (a cut fails as truncated or missing-end, at the cut);
 *   - each loader-order violation and each bad argument failing with its
 *     error code at the offending record's or field's offset;
 *   - the real QEMU 10.0 capture (tests/data/captures/qemu-10.0-pc-postcopy):
 *     its commands, offsets, packaged commands and discard ranges equal to
 *     the list in its README; its device sections undecoded without a JSON
 *     trailer, decoded with one borrowed from another stream;
 *   - a page the destination holds (received before POSTCOPY_LISTEN and
 *     not discarded, or placed after it) sent again after LISTEN is refused
 *     at its record, in a small stream (byte by byte, every cut) and in the
 *     capture with one record copied; a precopy page sent twice is not;
 *   - the preempt channel: page records and EOS, byte by byte and cut,
 *     rejections, and joined to its main stream in a set.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "migstream.h"
#include "test_util.h"

static int g_fail;


#define PS 4096u

/* ---- reading and what came out ------------------------------------------- */

/* One event, flattened (pointers copied out). */
typedef struct pev {
    ms_event_kind kind;
    uint64_t offset, length;
    uint16_t cmd, len;
    int nesting;
    uint64_t value, a, b; /* command value; discard start/length; page off */
    char name[64];        /* command name */
    char block[64];       /* command/discard/page block */
    char state[16];       /* postcopy state after a command */
    uint64_t hash;        /* page data */
    ms_format format;     /* stream header */
} pev;

typedef struct pres {
    pev *ev;
    size_t n, cap;
    int rc;
    ms_error_info err;
} pres;

static void pres_free(pres *r)
{
    free(r->ev);
    memset(r, 0, sizeof *r);
}

static void copy_str(char *dst, size_t cap, const char *s)
{
    snprintf(dst, cap, "%s", s ? s : "");
}

static void collect(pres *r, const ms_event *ev)
{
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 64;
        r->ev = realloc(r->ev, r->cap * sizeof *r->ev);
        if (!r->ev)
            abort();
    }
    pev *e = &r->ev[r->n++];
    memset(e, 0, sizeof *e);
    e->kind = ev->kind;
    e->offset = ev->offset;
    e->length = ev->length;
    switch (ev->kind) {
    case MS_EV_STREAM_HEADER:
        e->format = ev->u.stream.format;
        break;
    case MS_EV_COMMAND:
        e->cmd = ev->u.command.cmd;
        e->len = ev->u.command.len;
        e->nesting = ev->u.command.nesting;
        e->value = ev->u.command.value;
        e->a = ev->u.command.page_size_summary;
        e->b = ev->u.command.target_page_size;
        copy_str(e->name, sizeof e->name, ev->u.command.name);
        copy_str(e->block, sizeof e->block, ev->u.command.block);
        copy_str(e->state, sizeof e->state, ev->u.command.postcopy_state);
        e->value = ev->u.command.cmd == 6 ? ev->u.command.discard_ranges
                                          : ev->u.command.value;
        break;
    case MS_EV_RAM_DISCARD:
        e->a = ev->u.discard.start;
        e->b = ev->u.discard.length;
        e->value = ev->u.discard.index;
        copy_str(e->block, sizeof e->block, ev->u.discard.block);
        break;
    case MS_EV_RAM_PAGE:
        e->a = ev->u.ram.offset;
        e->value = ev->u.ram.record;
        copy_str(e->block, sizeof e->block, ev->u.ram.block);
        if (ev->u.ram.data)
            e->hash = tb_hash(ev->u.ram.data, ev->u.ram.size);
        break;
    default:
        break;
    }
}

/* Read `len` bytes in slices of `slice` (0: one slice); events of a
 * reader that fails are kept up to the failure. */
static int pread_slices(const uint8_t *p, size_t len, const ms_options *opt,
                        size_t slice, pres *res)
{
    memset(res, 0, sizeof *res);
    ms_reader *r = ms_reader_create(opt);
    if (!r)
        abort();
    int failed = 0;
    size_t pos = 0;
    do {
        size_t n = slice ? slice : len;
        if (n > len - pos)
            n = len - pos;
        if (ms_reader_input(r, p + pos, n) != 0) {
            failed = 1;
            break;
        }
        ms_event ev;
        int k;
        while ((k = ms_reader_next(r, &ev)) == MS_NEXT_EVENT)
            collect(res, &ev);
        if (k != MS_NEXT_INPUT)
            failed = 1;
        pos += n;
    } while (pos < len && !failed);
    if (!failed && ms_reader_finish(r) != 0)
        failed = 1;
    if (failed)
        res->err = *ms_reader_error(r);
    ms_reader_free(r);
    res->rc = failed ? -1 : 0;
    return res->rc;
}

static int pev_same(const pev *a, const pev *b)
{
    return a->kind == b->kind && a->offset == b->offset &&
           a->length == b->length && a->cmd == b->cmd && a->len == b->len &&
           a->nesting == b->nesting && a->value == b->value && a->a == b->a &&
           a->b == b->b && strcmp(a->block, b->block) == 0 &&
           strcmp(a->state, b->state) == 0 && a->hash == b->hash;
}

/* Valid whole and byte by byte with the same events; every cut fails as
 * truncated or missing-end at the cut, after a prefix of the events. */
static void check_valid(const char *label, const tb_buf *b,
                        const ms_options *opt, pres *out)
{
    pres whole, bytes;
    if (pread_slices(b->p, b->len, opt, 0, &whole) != 0) {
        SOFT(0, "%s: valid stream fails: %s at %llu: %s", label,
             ms_error_name(whole.err.code),
             (unsigned long long)whole.err.offset, whole.err.detail);
        *out = whole;
        return;
    }
    pread_slices(b->p, b->len, opt, 1, &bytes);
    int same = bytes.rc == 0 && bytes.n == whole.n;
    for (size_t i = 0; same && i < whole.n; i++)
        same = pev_same(&whole.ev[i], &bytes.ev[i]);
    SOFT(same, "%s: byte by byte differs (%zu events vs %zu, rc %d)", label,
         bytes.n, whole.n, bytes.rc);
    pres_free(&bytes);
    size_t bad = 0;
    for (size_t cut = 0; cut < b->len; cut++) {
        pres c;
        pread_slices(b->p, cut, opt, cut % 7 + 1, &c);
        int ok = c.rc != 0 &&
                 (c.err.code == MS_ERR_TRUNCATED ||
                  c.err.code == MS_ERR_MISSING_END) &&
                 c.err.offset == cut && c.n <= whole.n;
        for (size_t i = 0; ok && i < c.n; i++)
            ok = pev_same(&c.ev[i], &whole.ev[i]) ||
                 c.ev[i].kind == MS_EV_RAM_PAGE; /* a cut page is shorter */
        if (!ok && bad++ < 3)
            SOFT(0, "%s: cut at %zu: %s at %llu: %s", label, cut,
                 ms_error_name(c.err.code), (unsigned long long)c.err.offset,
                 c.err.detail);
        pres_free(&c);
    }
    SOFT(bad == 0, "%s: %zu cuts misbehave", label, bad);
    *out = whole;
}

/* Fails whole and byte by byte with `code` at `off`. */
static void expect_err(const char *label, const tb_buf *b,
                       const ms_options *opt, ms_error code, uint64_t off)
{
    for (size_t slice = 0; slice <= 1; slice++) {
        pres r;
        pread_slices(b->p, b->len, opt, slice, &r);
        SOFT(r.rc != 0 && r.err.code == code && r.err.offset == off,
             "%s (%s): want %s at %llu, got %s at %llu: %s", label,
             slice ? "byte by byte" : "whole", ms_error_name(code),
             (unsigned long long)off, ms_error_name(r.err.code),
             (unsigned long long)r.err.offset, r.err.detail);
        pres_free(&r);
    }
}

static size_t count_kind(const pres *r, ms_event_kind k)
{
    size_t n = 0;
    for (size_t i = 0; i < r->n; i++)
        n += r->ev[i].kind == k;
    return n;
}

static const pev *nth_kind(const pres *r, ms_event_kind k, size_t n)
{
    for (size_t i = 0; i < r->n; i++)
        if (r->ev[i].kind == k && n-- == 0)
            return &r->ev[i];
    return NULL;
}

/* ---- a small postcopy stream, built from the facts ------------------------
 */

#define RAM_ID 2u
static const char *const g_blocks[] = {"pc.ram", "pc.bios"};
static const uint64_t g_len[] = {0x10000, 0x2000};

/* Offsets of what a test checks. */
typedef struct pc_stream {
    tb_buf b;
    size_t rp, ping1, advise, part1, page_pre, switchover, disc_ram, disc_bios,
        ping2, pkg, listen, ping3, run, ping4, page_post, eof;
} pc_stream;

static void ram_start(tb_buf *b)
{
    tq_section_start(b, TQ_START, RAM_ID, "ram", 0, 4);
    tq_ram_block_list(b, g_blocks, g_len, 2);
    tq_ram_eos(b);
    tq_footer(b, RAM_ID);
}

/* QEMU 10.0's order (the capture's README): OPEN_RETURN_PATH, PING 1,
 * ADVISE, ram START/PART, SWITCHOVER_START, a DISCARD per block, PING 2,
 * PACKAGED{LISTEN, a device, PING 3, RUN}, PING 4, postcopy pages, END,
 * EOF and no trailer. */
static void build_postcopy(pc_stream *s)
{
    tb_buf *b = &s->b;
    uint8_t page[PS];
    tb_buf_init(b);
    tq_begin(b);
    s->rp = tq_command(b, TQ_CMD_OPEN_RETURN_PATH, NULL, 0);
    s->ping1 = tq_cmd_ping(b, 1);
    s->advise = tq_cmd_postcopy_advise(b, PS, PS);
    ram_start(b);
    s->part1 = tq_section_part(b, TQ_PART, RAM_ID);
    tb_fill_random(page, PS, 1);
    s->page_pre = tq_ram_page(b, 0x3000, "pc.ram", page, PS);
    tq_ram_zero(b, 0x4000, NULL, 0);
    tq_ram_eos(b);
    tq_footer(b, RAM_ID);
    s->switchover = tq_command(b, TQ_CMD_SWITCHOVER_START, NULL, 0);
    static const uint64_t ram_ranges[] = {0x3000, 0x1000, 0x8000, 0x8000};
    s->disc_ram = tq_cmd_ram_discard(b, "pc.ram", ram_ranges, 2);
    static const uint64_t bios_ranges[] = {0, 0x2000};
    s->disc_bios = tq_cmd_ram_discard(b, "pc.bios", bios_ranges, 1);
    s->ping2 = tq_cmd_ping(b, 2);
    tb_buf pkg;
    tb_buf_init(&pkg);
    tq_command(&pkg, TQ_CMD_POSTCOPY_LISTEN, NULL, 0);
    tq_section_start(&pkg, TQ_FULL, 0, "timer", 0, 2);
    tb_put_zeros(&pkg, 24);
    tq_footer(&pkg, 0);
    size_t p3 = tq_cmd_ping(&pkg, 3);
    size_t prun = tq_command(&pkg, TQ_CMD_POSTCOPY_RUN, NULL, 0);
    s->pkg = tq_cmd_packaged(b, pkg.p, (uint32_t)pkg.len);
    s->listen = s->pkg + 9;
    s->ping3 = s->listen + p3;
    s->run = s->listen + prun;
    tb_buf_free(&pkg);
    s->ping4 = tq_cmd_ping(b, 4);
    tq_section_part(b, TQ_PART, RAM_ID);
    tb_fill_random(page, PS, 2);
    s->page_post = tq_ram_page(b, 0x3000, "pc.ram", page, PS);
    tq_ram_zero(b, 0x8000, NULL, 0);
    tq_ram_eos(b);
    tq_footer(b, RAM_ID);
    tq_section_part(b, TQ_END, RAM_ID);
    tq_ram_page(b, 0x1000, "pc.bios", page, PS);
    tq_ram_eos(b);
    tq_footer(b, RAM_ID);
    s->eof = tq_eof(b);
}

static void test_every_command(void **state)
{
    (void)state;
    BEGIN();
    pc_stream s;
    build_postcopy(&s);
    pres r;
    check_valid("postcopy stream", &s.b, NULL, &r);
    static const struct {
        uint16_t cmd;
        const char *name, *state;
        int nesting;
        uint64_t value;
    } want[] = {
        {1, "OPEN_RETURN_PATH", "none", 0, 0},
        {2, "PING", "none", 0, 1},
        {3, "POSTCOPY_ADVISE", "advised", 0, 0},
        {11, "SWITCHOVER_START", "advised", 0, 0},
        {6, "POSTCOPY_RAM_DISCARD", "discarding", 0, 2},
        {6, "POSTCOPY_RAM_DISCARD", "discarding", 0, 1},
        {2, "PING", "discarding", 0, 2},
        {7, "PACKAGED", "discarding", 0, 0},
        {4, "POSTCOPY_LISTEN", "listening", 1, 0},
        {2, "PING", "listening", 1, 3},
        {5, "POSTCOPY_RUN", "running", 1, 0},
        {2, "PING", "running", 0, 4},
    };
    const size_t at[] = {s.rp,       s.ping1,     s.advise, s.switchover,
                         s.disc_ram, s.disc_bios, s.ping2,  s.pkg,
                         s.listen,   s.ping3,     s.run,    s.ping4};
    SOFT(count_kind(&r, MS_EV_COMMAND) == 12, "%zu commands",
         count_kind(&r, MS_EV_COMMAND));
    for (size_t i = 0; i < 12; i++) {
        const pev *e = nth_kind(&r, MS_EV_COMMAND, i);
        SOFT(e && e->cmd == want[i].cmd && strcmp(e->name, want[i].name) == 0 &&
                 strcmp(e->state, want[i].state) == 0 &&
                 e->nesting == want[i].nesting && e->offset == at[i] &&
                 (want[i].cmd == 7 || e->value == want[i].value),
             "command %zu: %s at %llu state %s", i, e ? e->name : "missing",
             e ? (unsigned long long)e->offset : 0ull, e ? e->state : "");
    }
    const pev *adv = nth_kind(&r, MS_EV_COMMAND, 2);
    SOFT(adv && adv->a == PS && adv->b == PS, "ADVISE summary/target");
    const pev *d0 = nth_kind(&r, MS_EV_COMMAND, 4);
    SOFT(d0 && strcmp(d0->block, "pc.ram") == 0, "DISCARD names pc.ram");
    /* the discard ranges, each at its 16 bytes after the block name */
    static const struct {
        const char *block;
        uint64_t start, length;
    } ranges[] = {{"pc.ram", 0x3000, 0x1000},
                  {"pc.ram", 0x8000, 0x8000},
                  {"pc.bios", 0, 0x2000}};
    const size_t roff[] = {s.disc_ram + 5 + 3 + 6, s.disc_ram + 5 + 3 + 6 + 16,
                           s.disc_bios + 5 + 3 + 7};
    SOFT(count_kind(&r, MS_EV_RAM_DISCARD) == 3, "%zu discards",
         count_kind(&r, MS_EV_RAM_DISCARD));
    for (size_t i = 0; i < 3; i++) {
        const pev *e = nth_kind(&r, MS_EV_RAM_DISCARD, i);
        SOFT(e && strcmp(e->block, ranges[i].block) == 0 &&
                 e->a == ranges[i].start && e->b == ranges[i].length &&
                 e->offset == roff[i] && e->length == 16,
             "discard %zu: %s 0x%llx+0x%llx at %llu", i, e ? e->block : "-",
             e ? (unsigned long long)e->a : 0ull,
             e ? (unsigned long long)e->b : 0ull,
             e ? (unsigned long long)e->offset : 0ull);
    }
    /* no trailer: the packaged device is walked and said to be undecoded */
    SOFT(count_kind(&r, MS_EV_UNDECODED) == 1, "%zu undecoded",
         count_kind(&r, MS_EV_UNDECODED));
    pres_free(&r);
    tb_buf_free(&s.b);
    DONE();
}

/* ADVISE without arguments (postcopy of something else than RAM), then
 * recovery commands after RUN: RECV_BITMAP (needs the return path and a
 * listed block), POSTCOPY_RESUME, ENABLE_COLO. */
static void test_advise_empty_and_recovery(void **state)
{
    (void)state;
    BEGIN();
    tb_buf b;
    tb_buf_init(&b);
    tq_begin(&b);
    ram_start(&b);
    tq_command(&b, TQ_CMD_OPEN_RETURN_PATH, NULL, 0);
    size_t adv = tq_command(&b, TQ_CMD_POSTCOPY_ADVISE, NULL, 0);
    tq_command(&b, TQ_CMD_POSTCOPY_LISTEN, NULL, 0);
    tq_command(&b, TQ_CMD_POSTCOPY_RUN, NULL, 0);
    size_t bm = tq_cmd_recv_bitmap(&b, "pc.bios");
    size_t res = tq_command(&b, TQ_CMD_POSTCOPY_RESUME, NULL, 0);
    size_t colo = tq_command(&b, TQ_CMD_ENABLE_COLO, NULL, 0);
    tq_ram_end(&b, RAM_ID);
    tq_eof(&b);
    pres r;
    check_valid("ADVISE without arguments, recovery", &b, NULL, &r);
    const pev *a = nth_kind(&r, MS_EV_COMMAND, 1);
    SOFT(a && a->offset == adv && a->len == 0 && a->a == 0 &&
             strcmp(a->state, "advised") == 0,
         "empty ADVISE");
    const pev *e = nth_kind(&r, MS_EV_COMMAND, 4);
    SOFT(e && e->offset == bm && e->cmd == 10 &&
             strcmp(e->block, "pc.bios") == 0,
         "RECV_BITMAP pc.bios");
    e = nth_kind(&r, MS_EV_COMMAND, 5);
    SOFT(e && e->offset == res && e->cmd == 9, "POSTCOPY_RESUME");
    e = nth_kind(&r, MS_EV_COMMAND, 6);
    SOFT(e && e->offset == colo && e->cmd == 8, "ENABLE_COLO");
    pres_free(&r);
    tb_buf_free(&b);
    DONE();
}

/* ---- what QEMU's loader refuses -------------------------------------------
 */

/* header, configuration, ram START, OPEN_RETURN_PATH */
static void prefix(tb_buf *b)
{
    tb_buf_reset(b);
    tq_begin(b);
    ram_start(b);
    tq_command(b, TQ_CMD_OPEN_RETURN_PATH, NULL, 0);
}

static void test_order_violations(void **state)
{
    (void)state;
    BEGIN();
    tb_buf b;
    tb_buf_init(&b);
    static const uint64_t rng[] = {0x1000, 0x1000};
    size_t at;

    prefix(&b);
    at = tq_command(&b, TQ_CMD_POSTCOPY_LISTEN, NULL, 0);
    tq_eof(&b);
    expect_err("LISTEN without ADVISE", &b, NULL, MS_ERR_COMMAND, at);

    prefix(&b);
    tq_cmd_postcopy_advise(&b, PS, PS);
    at = tq_command(&b, TQ_CMD_POSTCOPY_RUN, NULL, 0);
    tq_eof(&b);
    expect_err("RUN before LISTEN", &b, NULL, MS_ERR_COMMAND, at);

    prefix(&b);
    at = tq_cmd_ram_discard(&b, "pc.ram", rng, 1);
    tq_eof(&b);
    expect_err("DISCARD before ADVISE", &b, NULL, MS_ERR_COMMAND, at);

    prefix(&b);
    tq_cmd_postcopy_advise(&b, PS, PS);
    tq_command(&b, TQ_CMD_POSTCOPY_LISTEN, NULL, 0);
    at = tq_cmd_ram_discard(&b, "pc.ram", rng, 1);
    tq_eof(&b);
    expect_err("DISCARD after LISTEN", &b, NULL, MS_ERR_COMMAND, at);

    prefix(&b);
    tq_cmd_postcopy_advise(&b, PS, PS);
    at = tq_cmd_postcopy_advise(&b, PS, PS);
    tq_eof(&b);
    expect_err("ADVISE twice", &b, NULL, MS_ERR_COMMAND, at);

    prefix(&b);
    tq_cmd_postcopy_advise(&b, PS, PS);
    tq_command(&b, TQ_CMD_POSTCOPY_LISTEN, NULL, 0);
    at = tq_command(&b, TQ_CMD_POSTCOPY_LISTEN, NULL, 0);
    tq_eof(&b);
    expect_err("LISTEN twice", &b, NULL, MS_ERR_COMMAND, at);

    prefix(&b);
    tq_cmd_postcopy_advise(&b, PS, PS);
    tq_command(&b, TQ_CMD_POSTCOPY_LISTEN, NULL, 0);
    tq_command(&b, TQ_CMD_POSTCOPY_RUN, NULL, 0);
    at = tq_command(&b, TQ_CMD_POSTCOPY_RUN, NULL, 0);
    tq_eof(&b);
    expect_err("RUN twice", &b, NULL, MS_ERR_COMMAND, at);

    tb_buf_reset(&b);
    tq_begin(&b);
    at = tq_cmd_ping(&b, 1);
    tq_eof(&b);
    expect_err("PING without a return path", &b, NULL, MS_ERR_COMMAND, at);

    tb_buf_reset(&b);
    tq_begin(&b);
    ram_start(&b);
    at = tq_cmd_recv_bitmap(&b, "pc.ram");
    tq_eof(&b);
    expect_err("RECV_BITMAP without a return path", &b, NULL, MS_ERR_COMMAND,
               at);

    /* XBZRLE while postcopy runs: the postcopy loader takes no XBZRLE */
    prefix(&b);
    tq_cmd_postcopy_advise(&b, PS, PS);
    tq_command(&b, TQ_CMD_POSTCOPY_LISTEN, NULL, 0);
    tq_section_part(&b, TQ_PART, RAM_ID);
    static const uint8_t delta[] = {0, 1, 7};
    at = tq_ram_xbzrle(&b, 0x1000, "pc.ram", 1, delta, 3);
    tq_ram_eos(&b);
    tq_footer(&b, RAM_ID);
    tq_eof(&b);
    expect_err("XBZRLE after LISTEN", &b, NULL, MS_ERR_RAM, at);
    tb_buf_free(&b);
    DONE();
}

/* A DISCARD command with its arguments as given (after a valid prefix and
 * ADVISE); returns the command's offset. */
static size_t raw_discard(tb_buf *b, const uint8_t *args, uint16_t len)
{
    prefix(b);
    tq_cmd_postcopy_advise(b, PS, PS);
    size_t at = tq_command(b, TQ_CMD_POSTCOPY_RAM_DISCARD, args, len);
    tq_ram_end(b, RAM_ID);
    tq_eof(b);
    return at;
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static void test_bad_arguments(void **state)
{
    (void)state;
    BEGIN();
    tb_buf b;
    tb_buf_init(&b);
    size_t at;
    /* discard: "pc.ram" and one range: 3 + 6 + 16 = 25 bytes */
    uint8_t d[64] = {0, 6, 'p', 'c', '.', 'r', 'a', 'm', 0};
    put64(d + 9, 0x1000);
    put64(d + 17, 0x1000);
    raw_discard(&b, d, 25);
    pres r;
    SOFT(pread_slices(b.p, b.len, NULL, 0, &r) == 0, "valid discard: %s",
         r.err.detail);
    pres_free(&r);

    at = raw_discard(&b, d, 19);
    expect_err("DISCARD under 20 bytes", &b, NULL, MS_ERR_COMMAND, at);
    d[0] = 1;
    at = raw_discard(&b, d, 25);
    expect_err("DISCARD version 1", &b, NULL, MS_ERR_COMMAND, at + 5);
    d[0] = 0;
    d[8] = 'x';
    at = raw_discard(&b, d, 25);
    expect_err("DISCARD without the NUL", &b, NULL, MS_ERR_COMMAND, at + 5 + 8);
    d[8] = 0;
    at = raw_discard(&b, d, 25 + 8);
    expect_err("DISCARD with half a range", &b, NULL, MS_ERR_COMMAND, at);
    d[1] = 40;
    at = raw_discard(&b, d, 25);
    expect_err("DISCARD name past its arguments", &b, NULL, MS_ERR_COMMAND,
               at + 6);
    d[1] = 6;
    d[7] = 'X';
    at = raw_discard(&b, d, 25);
    expect_err("DISCARD of an unlisted block", &b, NULL, MS_ERR_COMMAND,
               at + 6);
    d[7] = 'm';
    put64(d + 9, 0x1800);
    at = raw_discard(&b, d, 25);
    expect_err("DISCARD range not page aligned", &b, NULL, MS_ERR_COMMAND,
               at + 5 + 9);
    put64(d + 9, 0xf000);
    put64(d + 17, 0x2000);
    at = raw_discard(&b, d, 25);
    expect_err("DISCARD range past the block", &b, NULL, MS_ERR_COMMAND,
               at + 5 + 9);

    /* ADVISE: a target page size other than the stream's; no page size */
    prefix(&b);
    at = tq_cmd_postcopy_advise(&b, PS, 2 * PS);
    tq_eof(&b);
    expect_err("ADVISE target page 8192", &b, NULL, MS_ERR_COMMAND, at + 5 + 8);
    prefix(&b);
    at = tq_cmd_postcopy_advise(&b, 0, PS);
    tq_eof(&b);
    expect_err("ADVISE summary 0", &b, NULL, MS_ERR_COMMAND, at + 5);
    prefix(&b);
    at = tq_command(&b, TQ_CMD_POSTCOPY_ADVISE, d, 8);
    tq_eof(&b);
    expect_err("ADVISE of 8 bytes", &b, NULL, MS_ERR_COMMAND, at);
    /* RECV_BITMAP of a block the list does not have */
    prefix(&b);
    at = tq_cmd_recv_bitmap(&b, "pc.rom");
    tq_eof(&b);
    expect_err("RECV_BITMAP unlisted block", &b, NULL, MS_ERR_COMMAND, at + 6);
    tb_buf_free(&b);
    DONE();
}

/* ---- the real capture ------------------------------------------------------
 */

static char *source_path(const char *rel)
{
    const char *dir = getenv("MIGSTREAM_SRC_DIR");
    char base[4096];
    if (dir && *dir) {
        snprintf(base, sizeof base, "%s", dir);
    } else {
        snprintf(base, sizeof base, "%s", __FILE__);
        char *s = strstr(base, "/tests/test_postcopy.c");
        if (s)
            *s = 0;
        else
            snprintf(base, sizeof base, ".");
    }
    size_t n = strlen(base) + strlen(rel) + 2;
    char *p = malloc(n);
    if (!p)
        abort();
    snprintf(p, n, "%s/%s", base, rel);
    return p;
}

static int load(const char *rel, tb_buf *out)
{
    char *path = source_path(rel);
    FILE *f = fopen(path, "rb");
    free(path);
    tb_buf_init(out);
    if (!f)
        return -1;
    uint8_t chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        tb_put(out, chunk, n);
    fclose(f);
    return 0;
}

#define CAPTURE "tests/data/captures/qemu-10.0-pc-postcopy/conn0.s2d"
#define MFD4_MAIN "tests/data/captures/qemu-10.0-pc-multifd4-zstd/conn0.bin"

/* The README's "Observed" list: offset, command, len, value, nesting. */
static const struct {
    uint64_t off;
    const char *name;
    uint16_t len;
    uint64_t value;
    int nesting;
} readme_cmds[] = {
    {0x1b, "OPEN_RETURN_PATH", 0, 0, 0},
    {0x20, "PING", 4, 1, 0},
    {0x29, "POSTCOPY_ADVISE", 16, 0, 0},
    {0x62e14b, "SWITCHOVER_START", 0, 0, 0},
    {0x62e150, "POSTCOPY_RAM_DISCARD", 41, 2, 0},
    {0x62e17e, "POSTCOPY_RAM_DISCARD", 39, 1, 0},
    {0x62e1aa, "POSTCOPY_RAM_DISCARD", 26, 1, 0},
    {0x62e1c9, "POSTCOPY_RAM_DISCARD", 25, 1, 0},
    {0x62e1e7, "POSTCOPY_RAM_DISCARD", 40, 1, 0},
    {0x62e214, "POSTCOPY_RAM_DISCARD", 37, 1, 0},
    {0x62e23e, "PING", 4, 2, 0},
    {0x62e247, "PACKAGED", 4, 13419, 0},
    {0x62e250, "POSTCOPY_LISTEN", 0, 0, 1},
    {0x6316ad, "PING", 4, 3, 1},
    {0x6316b6, "POSTCOPY_RUN", 0, 0, 1},
    {0x6316bb, "PING", 4, 4, 0},
};

/* The README's discard ranges, in stream order. */
static const struct {
    const char *block;
    uint64_t start, length;
} readme_discards[] = {
    {"pc.ram", 0x9000, 0x1000},
    {"pc.ram", 0x1600000, 0x1ea00000},
    {"/rom@etc/acpi/tables", 0, 0x20000},
    {"pc.bios", 0, 0x40000},
    {"pc.rom", 0, 0x20000},
    {"/rom@etc/table-loader", 0, 0x1000},
    {"/rom@etc/acpi/rsdp", 0, 0x1000},
};

static void test_capture(void **state)
{
    (void)state;
    BEGIN();
    tb_buf cap;
    if (load(CAPTURE, &cap) != 0) {
        SOFT(0, "cannot read %s", CAPTURE);
        DONE();
        return;
    }
    SOFT(cap.len == 18451753, "capture of %zu bytes", cap.len);
    pres r;
    SOFT(pread_slices(cap.p, cap.len, NULL, 1 << 16, &r) == 0,
         "capture fails: %s at %llu: %s", ms_error_name(r.err.code),
         (unsigned long long)r.err.offset, r.err.detail);
    size_t nc = sizeof readme_cmds / sizeof readme_cmds[0];
    SOFT(count_kind(&r, MS_EV_COMMAND) == nc, "%zu commands",
         count_kind(&r, MS_EV_COMMAND));
    for (size_t i = 0; i < nc; i++) {
        const pev *e = nth_kind(&r, MS_EV_COMMAND, i);
        SOFT(e && e->offset == readme_cmds[i].off &&
                 strcmp(e->name, readme_cmds[i].name) == 0 &&
                 e->len == readme_cmds[i].len &&
                 e->value == readme_cmds[i].value &&
                 e->nesting == readme_cmds[i].nesting,
             "command %zu: %s len %u value %llu at 0x%llx", i,
             e ? e->name : "missing", e ? e->len : 0,
             e ? (unsigned long long)e->value : 0ull,
             e ? (unsigned long long)e->offset : 0ull);
    }
    const pev *adv = nth_kind(&r, MS_EV_COMMAND, 2);
    SOFT(adv && adv->a == 0x1000 && adv->b == 0x1000,
         "ADVISE: host page size 0x1000, target page size 0x1000");
    size_t nd = sizeof readme_discards / sizeof readme_discards[0];
    SOFT(count_kind(&r, MS_EV_RAM_DISCARD) == nd, "%zu discards",
         count_kind(&r, MS_EV_RAM_DISCARD));
    for (size_t i = 0; i < nd; i++) {
        const pev *e = nth_kind(&r, MS_EV_RAM_DISCARD, i);
        SOFT(e && strcmp(e->block, readme_discards[i].block) == 0 &&
                 e->a == readme_discards[i].start &&
                 e->b == readme_discards[i].length,
             "discard %zu: %s 0x%llx+0x%llx", i, e ? e->block : "missing",
             e ? (unsigned long long)e->a : 0ull,
             e ? (unsigned long long)e->b : 0ull);
    }
    /* no JSON trailer: the 30 packaged device sections are walked blind */
    SOFT(count_kind(&r, MS_EV_UNDECODED) == 30, "%zu undecoded",
         count_kind(&r, MS_EV_UNDECODED));
    SOFT(count_kind(&r, MS_EV_VMDESC) == 0, "a trailer?");
    pres_free(&r);
    tb_buf_free(&cap);
    DONE();
}

/* The capture's postcopy part, whole records cut out of it: header to the
 * ram START, then SWITCHOVER_START .. PING 4 (the discards and the package
 * with the 30 real device sections), then an empty ram END and EOF. Read
 * one byte at a time and cut at every offset. */
static void test_capture_excerpt(void **state)
{
    (void)state;
    BEGIN();
    tb_buf cap, ex;
    if (load(CAPTURE, &cap) != 0) {
        SOFT(0, "cannot read %s", CAPTURE);
        DONE();
        return;
    }
    tb_buf_init(&ex);
    tb_put(&ex, cap.p, 232); /* header .. the ram START's footer */
    size_t shift = 0x62e14b - ex.len;
    tb_put(&ex, cap.p + 0x62e14b, 0x6316c4 - 0x62e14b);
    tq_section_part(&ex, TQ_END, 1);
    tq_ram_eos(&ex);
    tq_footer(&ex, 1);
    tq_eof(&ex);
    pres r;
    check_valid("capture excerpt", &ex, NULL, &r);
    size_t nc = sizeof readme_cmds / sizeof readme_cmds[0], k = 0;
    for (size_t i = 0; i < nc; i++) {
        if (readme_cmds[i].off < 232)
            continue; /* the setup commands are in the excerpt unmoved */
        const pev *e = nth_kind(&r, MS_EV_COMMAND, 3 + k++);
        SOFT(e && e->offset + shift == readme_cmds[i].off &&
                 strcmp(e->name, readme_cmds[i].name) == 0,
             "excerpt command %zu: %s", i, e ? e->name : "missing");
    }
    SOFT(count_kind(&r, MS_EV_RAM_DISCARD) == 7 &&
             count_kind(&r, MS_EV_UNDECODED) == 30,
         "%zu discards, %zu undecoded", count_kind(&r, MS_EV_RAM_DISCARD),
         count_kind(&r, MS_EV_UNDECODED));
    pres_free(&r);
    tb_buf_free(&ex);
    tb_buf_free(&cap);
    DONE();
}

/* With the trailer of the multifd4-zstd capture (same machine type and
 * device list, guest never started): the device sections decode, except
 * where the running guest sent more (a cpu subsection, the IDE drive). */
static void test_capture_borrowed_vmdesc(void **state)
{
    (void)state;
    BEGIN();
    tb_buf cap, other;
    if (load(CAPTURE, &cap) != 0 || load(MFD4_MAIN, &other) != 0) {
        SOFT(0, "cannot read the captures");
        DONE();
        return;
    }
    size_t off, len;
    SOFT(ms_qemu_find_vmdesc(other.p, other.len, other.len, &off, &len) == 1,
         "multifd4 trailer");
    ms_reader *rd = ms_reader_create(NULL);
    SOFT(ms_reader_borrow_vmdesc(rd, (const char *)other.p + off, len) == 0,
         "borrow");
    size_t undecoded = 0, fields = 0, subsection_why = 0;
    int rc = ms_reader_input(rd, cap.p, cap.len);
    ms_event ev;
    int k;
    while (rc == 0 && (k = ms_reader_next(rd, &ev)) == MS_NEXT_EVENT) {
        if (ev.kind == MS_EV_UNDECODED) {
            undecoded++;
            subsection_why += strstr(ev.u.section.detail, "subsection") != 0;
        }
        fields += ev.kind == MS_EV_SUBSECTION;
    }
    SOFT(ms_reader_finish(rd) == 0, "borrowed: %s",
         ms_reader_error(rd)->detail);
    SOFT(undecoded == 2 && subsection_why == 1,
         "%zu sections undecoded (%zu for a subsection)", undecoded,
         subsection_why);
    SOFT(fields > 0, "no subsection decoded");
    ms_reader_free(rd);
    /* the stream's own trailer (not borrowed) may not lack anything */
    rd = ms_reader_create(NULL);
    ms_reader_set_vmdesc(rd, (const char *)other.p + off, len);
    ms_reader_input(rd, cap.p, cap.len);
    while ((k = ms_reader_next(rd, &ev)) == MS_NEXT_EVENT)
        ;
    SOFT(k == MS_NEXT_ERROR && ms_reader_error(rd)->code == MS_ERR_VMSTATE,
         "own trailer lacking a subsection: %s",
         ms_error_name(ms_reader_error(rd)->code));
    ms_reader_free(rd);
    tb_buf_free(&cap);
    tb_buf_free(&other);
    DONE();
}

/* ---- pages placed twice ----------------------------------------------------
 * QEMU's destination holds a page once a page record before
 * POSTCOPY_LISTEN wrote (or, ZERO, read) it, drops it for a discard range,
 * and places each page after LISTEN atomically: a page it holds already
 * fails with EEXIST (spec/qemu-postcopy.md "Pages placed twice"). */

enum placed_case {
    PLACED_VALID,      /* precopy twice, discarded then postcopy once */
    PLACED_POST_TWICE, /* a postcopy page sent again */
    PLACED_ZERO_TWICE, /* a postcopy zero page sent again */
    PLACED_PRE_HELD    /* a precopy page not discarded, sent in postcopy */
};

/* pc.ram (16 pages): precopy 0x3000 twice, ZERO 0x4000 twice, 0xc000;
 * discards 0x3000 (one bit) and 0x8000..0x10000 (a whole bitmap byte);
 * postcopy 0x3000, ZERO 0x8000, 0xc000, then the case's record. Returns
 * the offset of the record QEMU fails on (0: none). */
static size_t build_placed(tb_buf *b, enum placed_case c)
{
    uint8_t page[PS];
    tb_fill_random(page, PS, 7);
    tb_buf_init(b);
    tq_begin(b);
    tq_command(b, TQ_CMD_OPEN_RETURN_PATH, NULL, 0);
    tq_cmd_ping(b, 1);
    tq_cmd_postcopy_advise(b, PS, PS);
    ram_start(b);
    tq_section_part(b, TQ_PART, RAM_ID);
    tq_ram_page(b, 0x3000, "pc.ram", page, PS);
    tq_ram_page(b, 0x3000, NULL, page, PS); /* dirty again: resent */
    tq_ram_zero(b, 0x4000, NULL, 0);
    tq_ram_zero(b, 0x4000, NULL, 0);
    tq_ram_page(b, 0xc000, NULL, page, PS);
    tq_ram_eos(b);
    tq_footer(b, RAM_ID);
    tq_command(b, TQ_CMD_SWITCHOVER_START, NULL, 0);
    static const uint64_t ranges[] = {0x3000, 0x1000, 0x8000, 0x8000};
    tq_cmd_ram_discard(b, "pc.ram", ranges, 2);
    tq_cmd_ping(b, 2);
    tb_buf pkg;
    tb_buf_init(&pkg);
    tq_command(&pkg, TQ_CMD_POSTCOPY_LISTEN, NULL, 0);
    tq_cmd_ping(&pkg, 3);
    tq_command(&pkg, TQ_CMD_POSTCOPY_RUN, NULL, 0);
    tq_cmd_packaged(b, pkg.p, (uint32_t)pkg.len);
    tb_buf_free(&pkg);
    tq_cmd_ping(b, 4);
    tq_section_part(b, TQ_PART, RAM_ID);
    tq_ram_page(b, 0x3000, "pc.ram", page, PS);
    tq_ram_zero(b, 0x8000, NULL, 0);
    tq_ram_page(b, 0xc000, NULL, page, PS);
    size_t bad = 0;
    switch (c) {
    case PLACED_VALID: break;
    case PLACED_POST_TWICE: bad = tq_ram_page(b, 0x3000, NULL, page, PS); break;
    case PLACED_ZERO_TWICE: bad = tq_ram_zero(b, 0x8000, NULL, 0); break;
    case PLACED_PRE_HELD: bad = tq_ram_zero(b, 0x4000, NULL, 0); break;
    }
    tq_ram_eos(b);
    tq_footer(b, RAM_ID);
    tq_section_part(b, TQ_END, RAM_ID);
    tq_ram_page(b, 0x1000, "pc.bios", page, PS);
    tq_ram_eos(b);
    tq_footer(b, RAM_ID);
    tq_eof(b);
    return bad;
}

static void test_placed_twice(void **state)
{
    (void)state;
    BEGIN();
    tb_buf b;
    pres r;
    build_placed(&b, PLACED_VALID);
    check_valid("pages placed once", &b, NULL, &r);
    SOFT(count_kind(&r, MS_EV_RAM_PAGE) == 9, "%zu pages",
         count_kind(&r, MS_EV_RAM_PAGE));
    pres_free(&r);
    tb_buf_free(&b);
    static const struct {
        enum placed_case c;
        const char *what;
    } bad[] = {
        {PLACED_POST_TWICE, "postcopy page sent twice"},
        {PLACED_ZERO_TWICE, "postcopy zero page sent twice"},
        {PLACED_PRE_HELD, "precopy page, not discarded, sent in postcopy"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t at = build_placed(&b, bad[i].c);
        expect_err(bad[i].what, &b, NULL, MS_ERR_RAM, at);
        tb_buf_free(&b);
    }
    /* the bitmaps are bounded together: pc.ram's 16 pages need 3 bytes,
     * pc.bios's 2 pages 1 byte */
    ms_options o;
    ms_options_init(&o);
    o.max_record_payload = 2;
    build_placed(&b, PLACED_VALID);
    pread_slices(b.p, b.len, &o, 0, &r);
    SOFT(r.rc != 0 && r.err.code == MS_ERR_LIMIT &&
             r.err.limit == MS_LIMIT_MAX_RECORD_PAYLOAD,
         "bitmap over max_record_payload: %s: %s",
         ms_error_name(r.err.code), r.err.detail);
    pres_free(&r);
    o.max_record_payload = 4;
    SOFT(pread_slices(b.p, b.len, &o, 0, &r) == 0,
         "bitmap of max_record_payload bytes: %s", r.err.detail);
    pres_free(&r);
    tb_buf_free(&b);
    DONE();
}

/* The capture with one record copied in after itself (or elsewhere). */
static void splice_record(const tb_buf *cap, size_t rec, size_t rec_len,
                          size_t at, tb_buf *out)
{
    tb_buf_init(out);
    tb_put(out, cap->p, at);
    tb_put(out, cap->p + rec, rec_len);
    tb_put(out, cap->p + at, cap->len - at);
}

/* Page records of the capture (migstream-dump --pages; sizes from the
 * record kinds: CONTINUE page 8 + 4096, CONTINUE zero 8 + 1). */
#define CAP_PRE_ZERO_8000 12601u /* precopy ZERO pc.ram 0x8000 */
#define CAP_PRE_PAGE_9000 12610u /* precopy PAGE pc.ram 0x9000 */
#define CAP_POST_PAGE 6498008u   /* postcopy PAGE pc.ram 0x1600000 */
#define CAP_POST_ZERO 7750007u   /* postcopy ZERO pc.ram 0x19625000 */

static void test_capture_placed_twice(void **state)
{
    (void)state;
    BEGIN();
    tb_buf cap, m;
    if (load(CAPTURE, &cap) != 0) {
        SOFT(0, "cannot read %s", CAPTURE);
        DONE();
        return;
    }
    static const struct {
        size_t rec, len, at;
        int refused;
        const char *what;
    } cases[] = {
        {CAP_POST_PAGE, 4104, CAP_POST_PAGE + 4104, 1,
         "postcopy page duplicated"},
        {CAP_POST_ZERO, 9, CAP_POST_ZERO + 9, 1,
         "postcopy zero page duplicated"},
        {CAP_PRE_ZERO_8000, 9, CAP_POST_PAGE, 1,
         "precopy page (never discarded) again in postcopy"},
        {CAP_PRE_PAGE_9000, 4104, CAP_PRE_PAGE_9000 + 4104, 0,
         "precopy page duplicated (dirty pages are resent)"},
        {CAP_PRE_ZERO_8000, 9, CAP_PRE_ZERO_8000 + 9, 0,
         "precopy zero page duplicated"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        splice_record(&cap, cases[i].rec, cases[i].len, cases[i].at, &m);
        /* in 64 KiB slices, and a refused one in 4099-byte ones too
         * (records split; an accepted one would read 18 MiB again) */
        for (size_t slice = 1 << 16; slice;
             slice = slice == 4099 || !cases[i].refused ? 0 : 4099) {
            pres r;
            pread_slices(m.p, m.len, NULL, slice, &r);
            if (cases[i].refused)
                SOFT(r.rc != 0 && r.err.code == MS_ERR_RAM &&
                         r.err.offset == cases[i].at &&
                         strstr(r.err.detail, "POSTCOPY_LISTEN"),
                     "%s (slices of %zu): want ram at %zu, got %s at %llu: "
                     "%s",
                     cases[i].what, slice, cases[i].at,
                     ms_error_name(r.err.code),
                     (unsigned long long)r.err.offset, r.err.detail);
            else
                SOFT(r.rc == 0, "%s (slices of %zu): %s at %llu: %s",
                     cases[i].what, slice, ms_error_name(r.err.code),
                     (unsigned long long)r.err.offset, r.err.detail);
            pres_free(&r);
        }
        tb_buf_free(&m);
    }
    tb_buf_free(&cap);
    DONE();
}

/* ---- the postcopy-preempt channel ------------------------------------------
 */

static void build_preempt(tb_buf *b, size_t *at)
{
    uint8_t page[PS];
    tb_buf_init(b);
    tb_fill_random(page, PS, 7);
    at[0] = tq_ram_page(b, 0x5000, "pc.ram", page, PS);
    at[1] = tq_ram_zero(b, 0x6000, NULL, 0);
    at[2] = tq_ram_page(b, 0x1000, "pc.bios", page, PS);
    at[3] = tq_ram_page(b, 0x2000, "pc.ram", page, PS);
    at[4] = tq_ram_eos(b);
}

static void test_preempt_channel(void **state)
{
    (void)state;
    BEGIN();
    ms_options o;
    ms_options_init(&o);
    o.format = MS_FORMAT_QEMU_PREEMPT;
    tb_buf b;
    size_t at[5];
    build_preempt(&b, at);
    pres r;
    check_valid("preempt channel", &b, &o, &r);
    SOFT(r.n == 6 && r.ev[0].kind == MS_EV_STREAM_HEADER &&
             r.ev[0].format == MS_FORMAT_QEMU_PREEMPT &&
             r.ev[5].kind == MS_EV_RAM_MARKER && r.ev[5].offset == at[4],
         "%zu events, header first, EOS last", r.n);
    static const char *const blk[] = {"pc.ram", "pc.ram", "pc.bios", "pc.ram"};
    static const uint64_t off[] = {0x5000, 0x6000, 0x1000, 0x2000};
    for (size_t i = 0; i < 4; i++) {
        const pev *e = nth_kind(&r, MS_EV_RAM_PAGE, i);
        SOFT(e && e->offset == at[i] && strcmp(e->block, blk[i]) == 0 &&
                 e->a == off[i],
             "page %zu: %s 0x%llx at %llu", i, e ? e->block : "missing",
             e ? (unsigned long long)e->a : 0ull,
             e ? (unsigned long long)e->offset : 0ull);
    }
    pres_free(&r);
    /* the page size handed over from the main stream */
    o.qemu_page_size = 2 * PS;
    tb_buf_reset(&b);
    uint8_t big[2 * PS];
    tb_fill_random(big, sizeof big, 3);
    tq_ram_page(&b, 0x4000, "pc.ram", big, sizeof big);
    tq_ram_eos(&b);
    check_valid("preempt channel, 8 KiB pages", &b, &o, &r);
    SOFT(r.n == 3 && r.ev[1].hash == tb_hash(big, sizeof big), "8 KiB page");
    pres_free(&r);
    o.qemu_page_size = 0;
    /* rejections */
    tb_buf_reset(&b);
    size_t bad = tq_ram_zero(&b, 0x1000, NULL, 0);
    tq_ram_eos(&b);
    expect_err("CONTINUE first", &b, &o, MS_ERR_RAM, bad);
    tb_buf_reset(&b);
    bad = tq_ram_mem_size(&b, 0x1000);
    expect_err("block list on the preempt channel", &b, &o, MS_ERR_RAM, bad);
    tb_buf_reset(&b);
    static const uint8_t delta[] = {0, 1, 7};
    bad = tq_ram_xbzrle(&b, 0, "pc.ram", 1, delta, 3);
    expect_err("XBZRLE on the preempt channel", &b, &o, MS_ERR_RAM, bad);
    tb_buf_reset(&b);
    tq_ram_eos(&b);
    tb_put_u8(&b, 0);
    expect_err("a byte after EOS", &b, &o, MS_ERR_TRAILING_DATA, 8);
    tb_buf_reset(&b);
    tq_ram_zero(&b, 0x1000, "pc.ram", 0);
    expect_err("no EOS", &b, &o, MS_ERR_MISSING_END, b.len);
    tb_buf_free(&b);
    DONE();
}

/* Hand one reader's events to a set slot; -1 when the reader or the set
 * failed (its error in *e). */
static int feed_set(ms_set *set, uint32_t slot, const tb_buf *b,
                    const ms_options *o, ms_error_info *e)
{
    ms_reader *r = ms_reader_create(o);
    ms_event ev, sev;
    int k, rc = 0;
    ms_reader_input(r, b->p, b->len);
    while ((k = ms_reader_next(r, &ev)) == MS_NEXT_EVENT) {
        if (ms_set_observe(set, slot, &ev) < 0) {
            *e = *ms_set_error(set);
            rc = -1;
            break;
        }
        while (ms_set_next(set, &sev) == MS_NEXT_EVENT)
            ;
    }
    if (!rc && (k == MS_NEXT_ERROR || ms_reader_finish(r) < 0)) {
        *e = *ms_reader_error(r);
        rc = -1;
    }
    if (!rc && ms_set_channel_done(set, slot) < 0) {
        *e = *ms_set_error(set);
        rc = -1;
    }
    ms_reader_free(r);
    return rc;
}

static int run_set(const tb_buf *main, const tb_buf *pre, ms_error_info *e)
{
    ms_options o;
    ms_options_init(&o);
    ms_set *set = ms_set_create(&o);
    memset(e, 0, sizeof *e);
    int rc = feed_set(set, 0, main, &o, e);
    o.format = MS_FORMAT_QEMU_PREEMPT;
    if (!rc)
        rc = feed_set(set, 1, pre, &o, e);
    if (!rc && ms_set_finish(set) < 0) {
        *e = *ms_set_error(set);
        rc = -1;
    }
    ms_set_free(set);
    return rc;
}

static void test_preempt_in_set(void **state)
{
    (void)state;
    BEGIN();
    pc_stream s;
    build_postcopy(&s);
    tb_buf pre;
    size_t at[5];
    build_preempt(&pre, at);
    ms_error_info e;
    SOFT(run_set(&s.b, &pre, &e) == 0, "main + preempt: %s", e.detail);
    /* a block the main stream did not list */
    tb_buf bad;
    tb_buf_init(&bad);
    uint8_t page[PS] = {1};
    size_t p0 = tq_ram_page(&bad, 0, "pc.rom", page, PS);
    tq_ram_eos(&bad);
    SOFT(run_set(&s.b, &bad, &e) != 0 && e.code == MS_ERR_RAM &&
             e.offset == p0 && e.channel == 1,
         "unlisted block: %s at %llu", ms_error_name(e.code),
         (unsigned long long)e.offset);
    /* a page past its block (pc.bios is 0x2000 bytes) */
    tb_buf_reset(&bad);
    p0 = tq_ram_page(&bad, 0x2000, "pc.bios", page, PS);
    tq_ram_eos(&bad);
    SOFT(run_set(&s.b, &bad, &e) != 0 && e.code == MS_ERR_RAM && e.offset == p0,
         "page past its block: %s at %llu", ms_error_name(e.code),
         (unsigned long long)e.offset);
    /* a main stream that never advised postcopy-ram */
    tb_buf plain;
    tb_buf_init(&plain);
    tq_begin(&plain);
    ram_start(&plain);
    tq_ram_end(&plain, RAM_ID);
    tq_eof(&plain);
    SOFT(run_set(&plain, &pre, &e) != 0 && e.code == MS_ERR_CHANNEL_SET,
         "preempt without postcopy: %s", ms_error_name(e.code));
    tb_buf_free(&plain);
    tb_buf_free(&bad);
    tb_buf_free(&pre);
    tb_buf_free(&s.b);
    DONE();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_command),
        cmocka_unit_test(test_advise_empty_and_recovery),
        cmocka_unit_test(test_order_violations),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_capture),
        cmocka_unit_test(test_capture_excerpt),
        cmocka_unit_test(test_capture_borrowed_vmdesc),
        cmocka_unit_test(test_placed_twice),
        cmocka_unit_test(test_capture_placed_twice),
        cmocka_unit_test(test_preempt_channel),
        cmocka_unit_test(test_preempt_in_set),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
