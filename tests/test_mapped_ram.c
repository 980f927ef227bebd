/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* QEMU mapped-ram files and the reader's seekable input, checked against
 * the layout in spec/qemu-main.md ("Mapped-ram files"), not against the
 * decoder's code:
 *
 *   - a small encoder of its own (1 KiB target pages, page-aligned
 *     regions) writes files with holes, stale page slots whose bit is
 *     clear (multifd + mapped-ram), full and empty bitmaps and x-ignore-
 *     shared blocks with zero offsets;
 *   - every file decodes to the same events in one slice, byte by byte
 *     with seeks, and in random slices; cut at every offset it fails with
 *     truncated / missing-end, or with the pages-beyond-the-file error at
 *     the header field when the input size is known;
 *   - the seek API's contract: MS_NEXT_SEEK only with input_seekable,
 *     jumps inside one slice never reach the caller, ms_reader_input_at
 *     with another offset and ms_reader_input during a seek are usage
 *     errors, a pipe gets MS_ERR_SEEKABLE_INPUT saying why;
 *   - a libvirt sparse save image (format 6) around such a file;
 *   - the real QEMU 10.0 capture (tests/data/captures/qemu-10.0-pc-
 *     mapped-ram-32m, stored gzipped): its README's block table, pc.ram's
 *     pages equal to blob.bin, the same events in one slice and in random
 *     slices with seeks;
 *   - one damaged file per header rule, with its error code and offset.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <zlib.h>

#include "test_util.h"

static int g_fail;


/* ---- the encoder (spec/qemu-main.md, "Mapped-ram files") ------------------
 */

#define PBITS 10
#define PS (1u << PBITS)
#define HDR 28
#define RAM_ID 2

typedef struct mr_block {
    const char *name;
    uint64_t used;    /* bytes, a multiple of PS */
    const char *bits; /* '1' set, '0' hole, 's' clear with stale
                         data in its slot; shorter: the rest '0' */
    int ignored;      /* x-ignore-shared block: zero offsets */
    uint64_t addr;    /* guest address (x-ignore-shared) */
} mr_block;

typedef struct mr_file {
    const mr_block *blocks;
    size_t n;
    int ignore_shared;
    uint64_t align; /* pages_offset alignment; 0: PS */
    int libvirt;    /* wrap it: a libvirt sparse save image */
    /* where the encoder put things, for the checks */
    uint64_t hdr_off[8], bitmap_off[8], pages_off[8];
    size_t eof_end;
} mr_file;

static uint8_t page_byte(size_t block, uint64_t page, size_t i)
{
    return (uint8_t)(block * 131 + page * 7 + i * 13 + 1);
}

static int bit_of(const mr_block *b, uint64_t i)
{
    return b->bits && i < strlen(b->bits) ? b->bits[i] : '0';
}

static void pad_to(tb_buf *b, uint64_t off)
{
    if (b->len < off)
        tb_put_zeros(b, (size_t)(off - b->len));
}

/* One block's header, bitmap and pages; the stream goes on after them. */
static void put_mapped_block(tb_buf *b, mr_file *f, size_t k)
{
    const mr_block *blk = &f->blocks[k];
    uint64_t npages = blk->used / PS, bsize = (npages + 63) / 64 * 8;
    uint64_t align = f->align ? f->align : PS;
    f->hdr_off[k] = b->len;
    tb_put_be32(b, 1);
    tb_put_be64(b, PS);
    if (blk->ignored) {
        tb_put_be64(b, 0);
        tb_put_be64(b, 0);
        return;
    }
    uint64_t bmp = b->len + 16,
             pages = (bmp + bsize + align - 1) / align * align;
    f->bitmap_off[k] = bmp;
    f->pages_off[k] = pages;
    tb_put_be64(b, bmp);
    tb_put_be64(b, pages);
    uint8_t *bits = calloc(1, (size_t)bsize + 1);
    for (uint64_t i = 0; i < npages; i++)
        if (bit_of(blk, i) == '1')
            bits[i / 8] |= (uint8_t)(1u << (i % 8));
    tb_put(b, bits, (size_t)bsize);
    free(bits);
    pad_to(b, pages);
    uint8_t pg[PS];
    for (uint64_t i = 0; i < npages; i++) {
        int c = bit_of(blk, i);
        for (size_t j = 0; j < PS; j++)
            pg[j] = c == '0' ? 0 : page_byte(k, i, j);
        tb_put(b, pg, PS);
    }
}

static void mr_build(tb_buf *b, mr_file *f)
{
    static const char *const caps1[] = {"mapped-ram"};
    static const char *const caps2[] = {"x-ignore-shared", "mapped-ram"};
    tb_buf_init(b);
    if (f->libvirt) { /* header, 100 bytes of XML; offsets stay absolute */
        tq_libvirt_header(b, "LibvirtQemudSave", 2, 100, 0, 6, 0);
        tb_put(b, "<domain/>", 9);
        tb_put_zeros(b, 91);
    }
    tq_header(b);
    tq_cfg c = {.machine = "pc-i440fx-10.0",
                .has_page_bits = 1,
                .page_bits = PBITS,
                .has_caps = 1,
                .caps = f->ignore_shared ? caps2 : caps1,
                .n_caps = f->ignore_shared ? 2 : 1};
    tq_config(b, &c);
    tq_section_start(b, TQ_START, RAM_ID, "ram", 0, 4);
    uint64_t total = 0;
    for (size_t k = 0; k < f->n; k++)
        total += f->blocks[k].used;
    tq_ram_mem_size(b, total);
    for (size_t k = 0; k < f->n; k++) {
        tq_ram_block_entry(b, f->blocks[k].name, f->blocks[k].used);
        if (f->ignore_shared)
            tb_put_be64(b, f->blocks[k].addr);
        put_mapped_block(b, f, k);
    }
    tq_ram_eos(b);
    tq_footer(b, RAM_ID);
    tq_section_part(b, TQ_PART, RAM_ID);
    tq_ram_eos(b);
    tq_footer(b, RAM_ID);
    tq_section_part(b, TQ_END, RAM_ID);
    tq_ram_eos(b);
    tq_footer(b, RAM_ID);
    tq_eof(b);
    f->eof_end = b->len;
}

/* ---- reading with seeks ----------------------------------------------------
 */

typedef struct ev_rec {
    ms_event_kind kind;
    uint64_t offset, length;
    char block[64];
    uint64_t ram_offset, data_hash;
    size_t size;
    int zero_copy;
    ms_mapped_ram_info mapped;
} ev_rec;

typedef struct run_res {
    int rc; /* 0 clean, -1 error */
    ms_error_info err;
    ev_rec ev[1024];
    size_t nev;
    size_t seeks;
    int pages_zero_copy; /* every page pointed into the input */
} run_res;

typedef struct feeder {
    size_t slice;  /* bytes per slice; 0: the rest of the input */
    uint64_t seed; /* != 0: random slice sizes up to `slice` */
    int seekable;
    int give_size; /* input_size = the input's length */
} feeder;

static void record(run_res *res, const ms_event *ev)
{
    if (res->nev == sizeof res->ev / sizeof res->ev[0])
        return;
    ev_rec *e = &res->ev[res->nev++];
    memset(e, 0, sizeof *e);
    e->kind = ev->kind;
    e->offset = ev->offset;
    e->length = ev->length;
    if (ev->kind == MS_EV_RAM_BLOCK || ev->kind == MS_EV_RAM_PAGE) {
        snprintf(e->block, sizeof e->block, "%s", ev->u.ram.block);
        e->ram_offset = ev->u.ram.offset;
        e->size = ev->u.ram.size;
        if (ev->u.ram.data)
            e->data_hash = tb_hash(ev->u.ram.data, ev->u.ram.size);
        e->zero_copy = ev->u.ram.zero_copy;
        if (ev->kind == MS_EV_RAM_PAGE && !ev->u.ram.zero_copy)
            res->pages_zero_copy = 0;
    }
    if (ev->kind == MS_EV_MAPPED_RAM) {
        e->mapped = ev->u.mapped;
        snprintf(e->block, sizeof e->block, "%s", ev->u.mapped.block);
        e->mapped.block = NULL;
    }
}

static size_t next_slice(const feeder *fd, uint64_t *rng, size_t left)
{
    size_t n = fd->slice ? fd->slice : left;
    if (fd->seed && fd->slice)
        n = 1 + (size_t)(tb_rand(rng) % fd->slice);
    return n < left ? n : left;
}

static void run(const uint8_t *p, size_t len, const feeder *fd, run_res *res)
{
    memset(res, 0, sizeof *res);
    res->pages_zero_copy = 1;
    ms_options o;
    ms_options_init(&o);
    o.input_seekable = fd->seekable;
    o.input_size = fd->give_size ? len : 0;
    ms_reader *r = ms_reader_create(&o);
    uint64_t rng = fd->seed, pos = 0;
    size_t n = next_slice(fd, &rng, len);
    int ok = fd->seekable ? ms_reader_input_at(r, 0, p, n)
                          : ms_reader_input(r, p, n);
    pos = n;
    ms_event ev;
    while (ok == 0) {
        int rc = ms_reader_next(r, &ev);
        if (rc == MS_NEXT_EVENT) {
            record(res, &ev);
            continue;
        }
        if (rc == MS_NEXT_ERROR) {
            ok = -1;
            break;
        }
        if (rc == MS_NEXT_SEEK) {
            res->seeks++;
            pos = ms_reader_seek_target(r);
        }
        if (pos >= len) {
            ok = ms_reader_finish(r) < 0 ? -1 : 1;
            break;
        }
        n = next_slice(fd, &rng, len - (size_t)pos);
        ok = fd->seekable ? ms_reader_input_at(r, pos, p + pos, n)
                          : ms_reader_input(r, p + pos, n);
        pos += n;
    }
    res->rc = ok < 0 ? -1 : 0;
    res->err = *ms_reader_error(r);
    ms_reader_free(r);
}

static int same_events(const run_res *a, const run_res *b, char *why,
                       size_t cap)
{
    if (a->nev != b->nev) {
        snprintf(why, cap, "%zu vs %zu events", a->nev, b->nev);
        return 0;
    }
    for (size_t i = 0; i < a->nev; i++) {
        const ev_rec *x = &a->ev[i], *y = &b->ev[i];
        if (x->kind != y->kind || x->offset != y->offset ||
            x->length != y->length || strcmp(x->block, y->block) != 0 ||
            x->ram_offset != y->ram_offset || x->data_hash != y->data_hash ||
            memcmp(&x->mapped, &y->mapped, sizeof x->mapped) != 0) {
            snprintf(why, cap, "event %zu (%s at %llu) differs", i,
                     ms_event_kind_name(x->kind),
                     (unsigned long long)x->offset);
            return 0;
        }
    }
    return 1;
}

static size_t count_kind(const run_res *r, ms_event_kind k)
{
    size_t n = 0;
    for (size_t i = 0; i < r->nev; i++)
        n += r->ev[i].kind == k;
    return n;
}

static const ev_rec *find_kind(const run_res *r, ms_event_kind k, size_t nth)
{
    for (size_t i = 0; i < r->nev; i++)
        if (r->ev[i].kind == k && nth-- == 0)
            return &r->ev[i];
    return NULL;
}

/* ---- the file the tests share ------------------------------------------ */

/* pc.ram: pages 0, 2, 3 set, 5 stale (bit clear), the rest holes;
 * a block with no page set; a one-page block; a block past 64 pages (a
 * second bitmap word) with its last page set */
static const mr_block g_blocks[] = {
    {"pc.ram", 8 * PS, "10110s00", 0, 0},
    {"pc.rom", 4 * PS, "", 0, 0},
    {"/rom@etc/acpi/rsdp", PS, "1", 0, 0},
    {"big", 70 * PS,
     "s10000000000000000000000000000000000000000000000000000000000000011"
     "0001",
     0, 0}};
#define NBLOCKS (sizeof g_blocks / sizeof g_blocks[0])

static void expect_layout(const char *label, const run_res *r, const mr_file *f)
{
    SOFT(r->rc == 0, "%s: fails: %s at %llu: %s", label,
         ms_error_name(r->err.code), (unsigned long long)r->err.offset,
         r->err.detail);
    SOFT(count_kind(r, MS_EV_RAM_BLOCK) == f->n, "%s: %zu blocks", label,
         count_kind(r, MS_EV_RAM_BLOCK));
    size_t pages = 0;
    for (size_t k = 0; k < f->n; k++) {
        const mr_block *b = &f->blocks[k];
        const ev_rec *m = find_kind(r, MS_EV_MAPPED_RAM, k);
        uint64_t set = 0, npages = b->used / PS;
        for (uint64_t i = 0; i < npages; i++)
            set += bit_of(b, i) == '1';
        pages += b->ignored ? 0 : set;
        if (!m) {
            SOFT(0, "%s: no mapped_ram event for %s", label, b->name);
            continue;
        }
        SOFT(strcmp(m->block, b->name) == 0 && m->offset == f->hdr_off[k] &&
                 m->length == HDR && m->mapped.version == 1 &&
                 m->mapped.page_size == PS && m->mapped.ignored == b->ignored &&
                 m->mapped.pages_set == (b->ignored ? 0 : set) &&
                 m->mapped.pages_total == (b->ignored ? 0 : npages),
             "%s: mapped_ram %zu (%s): at %llu, %llu / %llu set", label, k,
             m->block, (unsigned long long)m->offset,
             (unsigned long long)m->mapped.pages_set,
             (unsigned long long)m->mapped.pages_total);
        if (!b->ignored)
            SOFT(m->mapped.bitmap_offset == f->bitmap_off[k] &&
                     m->mapped.pages_offset == f->pages_off[k] &&
                     m->mapped.bitmap_size == (npages + 63) / 64 * 8 &&
                     m->mapped.resume_offset == f->pages_off[k] + b->used,
                 "%s: %s offsets", label, b->name);
    }
    SOFT(count_kind(r, MS_EV_RAM_PAGE) == pages, "%s: %zu pages, want %zu",
         label, count_kind(r, MS_EV_RAM_PAGE), pages);
    /* every page: its block, offset, file offset and bytes */
    size_t seen = 0;
    for (size_t k = 0; k < f->n; k++) {
        const mr_block *b = &f->blocks[k];
        for (uint64_t i = 0; !b->ignored && i < b->used / PS; i++) {
            if (bit_of(b, i) != '1')
                continue;
            const ev_rec *e = find_kind(r, MS_EV_RAM_PAGE, seen++);
            uint8_t want[PS];
            for (size_t j = 0; j < PS; j++)
                want[j] = page_byte(k, i, j);
            SOFT(e && strcmp(e->block, b->name) == 0 &&
                     e->ram_offset == i * PS &&
                     e->offset == f->pages_off[k] + i * PS && e->length == PS &&
                     e->size == PS && e->data_hash == tb_hash(want, PS),
                 "%s: page %llu of %s: %s at %llu", label,
                 (unsigned long long)i, b->name, e ? e->block : "missing",
                 e ? (unsigned long long)e->offset : 0ull);
        }
    }
    SOFT(count_kind(r, MS_EV_QEMU_EOF) == 1, "%s: no EOF event", label);
}

static void test_decode(void **state)
{
    (void)state;
    BEGIN();
    mr_file f = {.blocks = g_blocks, .n = NBLOCKS};
    tb_buf b;
    mr_build(&b, &f);
    run_res *whole = malloc(sizeof *whole), *other = malloc(sizeof *other);
    char why[256] = "";
    /* one slice: every jump is inside it; no seekable input needed */
    feeder one = {0};
    run(b.p, b.len, &one, whole);
    expect_layout("one slice", whole, &f);
    SOFT(whole->seeks == 0 && whole->pages_zero_copy,
         "one slice: %zu seeks, zero copy %d", whole->seeks,
         whole->pages_zero_copy);
    /* seekable and the size known: the same */
    feeder sized = {.seekable = 1, .give_size = 1};
    run(b.p, b.len, &sized, other);
    SOFT(same_events(whole, other, why, sizeof why) && other->seeks == 0,
         "one slice, seekable: %s", why);
    /* byte by byte: every jump out of the 1-byte slice is a seek */
    feeder bytes = {.slice = 1, .seekable = 1};
    run(b.p, b.len, &bytes, other);
    SOFT(other->rc == 0 && same_events(whole, other, why, sizeof why),
         "byte by byte: %s (%s)", why, other->err.detail);
    SOFT(other->seeks >= 6, "byte by byte: only %zu seeks", other->seeks);
    for (uint64_t seed = 1; seed <= 6; seed++) {
        feeder rnd = {.slice = seed < 4 ? 13 : 3000,
                      .seed = seed * 7919,
                      .seekable = 1,
                      .give_size = (int)(seed & 1)};
        run(b.p, b.len, &rnd, other);
        SOFT(other->rc == 0 && same_events(whole, other, why, sizeof why),
             "random slices (seed %llu): %s", (unsigned long long)seed, why);
    }
    free(whole);
    free(other);
    tb_buf_free(&b);
    DONE();
}

/* Cut at every offset: truncated / missing-end, or (size known) the
 * pages-beyond-the-file error at a header's pages_offset field. */
static void test_cuts(void **state)
{
    (void)state;
    BEGIN();
    mr_file f = {.blocks = g_blocks, .n = NBLOCKS};
    tb_buf b;
    mr_build(&b, &f);
    run_res *res = malloc(sizeof *res);
    size_t bad = 0;
    for (size_t cut = 0; cut < b.len; cut++) {
        for (int sized = 0; sized < 2; sized++) {
            feeder fd = {.seekable = 1,
                         .give_size = sized,
                         .slice = cut % 997 == 0 ? 1 : 0};
            run(b.p, cut, &fd, res);
            int ok =
                cut == f.eof_end
                    ? res->rc == 0
                    : res->rc == -1 && (res->err.code == MS_ERR_TRUNCATED ||
                                        res->err.code == MS_ERR_MISSING_END);
            if (!ok && sized && res->err.code == MS_ERR_RAM &&
                strstr(res->err.detail, "beyond the end of the file")) {
                ok = 0;
                for (size_t k = 0; k < f.n; k++)
                    ok |= res->err.offset == f.hdr_off[k] + 20;
            }
            if (!ok && bad++ < 5)
                SOFT(0, "cut at %zu (size %s): %s at %llu: %s", cut,
                     sized ? "given" : "unknown",
                     res->rc ? ms_error_name(res->err.code) : "success",
                     (unsigned long long)res->err.offset, res->err.detail);
        }
    }
    SOFT(bad == 0, "%zu cuts misbehave", bad);
    free(res);
    tb_buf_free(&b);
    DONE();
}

/* ---- the seek API's contract ------------------------------------------ */

static void test_seek_contract(void **state)
{
    (void)state;
    BEGIN();
    mr_file f = {.blocks = g_blocks, .n = NBLOCKS};
    tb_buf b;
    mr_build(&b, &f);
    run_res *res = malloc(sizeof *res);

    /* a pipe: no MS_NEXT_SEEK, a clear error where the jump is needed */
    feeder pipe = {.slice = 4096};
    run(b.p, b.len, &pipe, res);
    SOFT(res->rc == -1 && res->err.code == MS_ERR_SEEKABLE_INPUT &&
             res->seeks == 0 &&
             strstr(res->err.detail, "mapped-ram file: pages live at fixed "
                                     "offsets") &&
             strstr(res->err.detail, "not a pipe"),
         "pipe: %s at %llu: %s (%zu seeks)", ms_error_name(res->err.code),
         (unsigned long long)res->err.offset, res->err.detail, res->seeks);

    ms_options o;
    ms_options_init(&o);
    o.input_seekable = 1;
    ms_event ev;
    int rc;
    /* a small first slice: the first jump (to the pages) leaves it */
    ms_reader *r = ms_reader_create(&o);
    SOFT(ms_reader_input(r, b.p, (size_t)f.bitmap_off[0] + 8) == 0,
         "first slice");
    while ((rc = ms_reader_next(r, &ev)) == MS_NEXT_EVENT)
        ;
    SOFT(rc == MS_NEXT_SEEK && ms_reader_seek_target(r) == f.pages_off[0],
         "seek: rc %d target %llu, want %llu", rc,
         (unsigned long long)ms_reader_seek_target(r),
         (unsigned long long)f.pages_off[0]);
    /* input_at elsewhere: usage error (sticky) */
    SOFT(ms_reader_input_at(r, f.pages_off[0] + 1, b.p, 1) < 0 &&
             ms_reader_error(r)->code == MS_ERR_USAGE,
         "input_at with the wrong offset accepted");
    ms_reader_free(r);

    r = ms_reader_create(&o);
    ms_reader_input(r, b.p, (size_t)f.bitmap_off[0] + 8);
    while ((rc = ms_reader_next(r, &ev)) == MS_NEXT_EVENT)
        ;
    SOFT(rc == MS_NEXT_SEEK, "second reader: rc %d", rc);
    /* plain input during a seek: usage error */
    SOFT(ms_reader_input(r, b.p, 1) < 0 &&
             ms_reader_error(r)->code == MS_ERR_USAGE &&
             strstr(ms_reader_error(r)->detail, "ms_reader_input_at"),
         "plain input during a seek: %s", ms_reader_error(r)->detail);
    ms_reader_free(r);

    /* the right offset: decoding goes on; finishing during a seek is a
     * truncation at the offset sought */
    r = ms_reader_create(&o);
    ms_reader_input(r, b.p, (size_t)f.bitmap_off[0] + 8);
    while ((rc = ms_reader_next(r, &ev)) == MS_NEXT_EVENT)
        ;
    uint64_t at = ms_reader_seek_target(r);
    SOFT(ms_reader_input_at(r, at, b.p + at, PS) == 0, "input_at");
    rc = ms_reader_next(r, &ev);
    SOFT(rc == MS_NEXT_EVENT && ev.kind == MS_EV_RAM_PAGE && ev.offset == at &&
             ev.u.ram.zero_copy && ev.u.ram.data == b.p + at,
         "page after the seek: rc %d kind %s", rc, ms_event_kind_name(ev.kind));
    while ((rc = ms_reader_next(r, &ev)) == MS_NEXT_EVENT)
        ;
    SOFT(rc == MS_NEXT_SEEK, "next seek: rc %d", rc);
    at = ms_reader_seek_target(r);
    SOFT(ms_reader_finish(r) < 0 &&
             ms_reader_error(r)->code == MS_ERR_TRUNCATED &&
             ms_reader_error(r)->offset == at,
         "finish during a seek: %s at %llu",
         ms_error_name(ms_reader_error(r)->code),
         (unsigned long long)ms_reader_error(r)->offset);
    ms_reader_free(r);

    free(res);
    tb_buf_free(&b);
    DONE();
}

/* ms_reader_input_at without a seek pending, and a whole file in one
 * slice without input_seekable. */
static void test_seek_contract_plain(void **state)
{
    (void)state;
    BEGIN();
    mr_file f = {.blocks = g_blocks, .n = NBLOCKS};
    tb_buf b;
    mr_build(&b, &f);
    ms_options o;
    ms_options_init(&o);
    o.input_seekable = 1;
    ms_event ev;
    int rc;
    ms_reader *r;
    /* input_at at the reader's own offset is plain input; elsewhere not */
    r = ms_reader_create(&o);
    SOFT(ms_reader_input_at(r, 0, b.p, 10) == 0, "input_at 0");
    while ((rc = ms_reader_next(r, &ev)) == MS_NEXT_EVENT)
        ;
    SOFT(rc == MS_NEXT_INPUT && ms_reader_offset(r) == 10 &&
             ms_reader_input_at(r, 10, b.p + 10, 10) == 0,
         "input_at at the reader's offset");
    ms_reader_free(r);
    r = ms_reader_create(&o);
    SOFT(ms_reader_input_at(r, 5, b.p, 10) < 0 &&
             ms_reader_error(r)->code == MS_ERR_USAGE,
         "input_at 5 on a fresh reader accepted");
    ms_reader_free(r);

    /* without input_seekable a whole file in one slice never seeks */
    ms_options_init(&o);
    r = ms_reader_create(&o);
    ms_reader_input(r, b.p, b.len);
    size_t events = 0;
    while ((rc = ms_reader_next(r, &ev)) == MS_NEXT_EVENT)
        events++;
    SOFT(rc == MS_NEXT_INPUT && ms_reader_finish(r) == 0 && events > 10,
         "whole slice, not seekable: rc %d, %s", rc,
         ms_reader_error(r)->detail);
    ms_reader_free(r);
    tb_buf_free(&b);
    DONE();
}

/* ---- x-ignore-shared --------------------------------------------------- */

static void test_ignore_shared(void **state)
{
    (void)state;
    BEGIN();
    static const mr_block blocks[] = {{"pc.ram", 8 * PS, "0101", 0, 0},
                                      {"shm", 16 * PS, "", 1, 0x100000000ull},
                                      {"pc.bios", 2 * PS, "11", 0, 0xfffe0000}};
    mr_file f = {.blocks = blocks, .n = 3, .ignore_shared = 1};
    tb_buf b;
    mr_build(&b, &f);
    run_res *whole = malloc(sizeof *whole), *bytes = malloc(sizeof *bytes);
    feeder one = {.seekable = 1, .give_size = 1};
    run(b.p, b.len, &one, whole);
    expect_layout("x-ignore-shared", whole, &f);
    const ev_rec *m = find_kind(whole, MS_EV_MAPPED_RAM, 1);
    SOFT(m && m->mapped.ignored &&
             m->mapped.resume_offset == f.hdr_off[1] + HDR,
         "ignored block: the stream goes on after its header");
    feeder fb = {.slice = 1, .seekable = 1};
    run(b.p, b.len, &fb, bytes);
    char why[200] = "";
    SOFT(same_events(whole, bytes, why, sizeof why), "byte by byte: %s", why);

    /* zero offsets without x-ignore-shared in the configuration */
    static const mr_block plain[] = {{"pc.ram", 4 * PS, "1", 0, 0},
                                     {"shm", 4 * PS, "", 1, 0}};
    mr_file g = {.blocks = plain, .n = 2};
    tb_buf c;
    mr_build(&c, &g);
    run(c.p, c.len, &one, whole);
    SOFT(whole->rc == -1 && whole->err.code == MS_ERR_RAM &&
             whole->err.offset == g.hdr_off[1] + 12 &&
             strstr(whole->err.detail, "x-ignore-shared"),
         "zero offsets without the capability: %s at %llu", whole->err.detail,
         (unsigned long long)whole->err.offset);
    free(whole);
    free(bytes);
    tb_buf_free(&b);
    tb_buf_free(&c);
    DONE();
}

/* ---- libvirt sparse save images (format 6) ------------------------------- */

static void test_libvirt_sparse(void **state)
{
    (void)state;
    BEGIN();
    mr_file f = {.blocks = g_blocks, .n = NBLOCKS, .libvirt = 1};
    tb_buf b;
    mr_build(&b, &f);
    run_res *res = malloc(sizeof *res), *bytes = malloc(sizeof *bytes);
    feeder one = {.seekable = 1, .give_size = 1};
    run(b.p, b.len, &one, res);
    expect_layout("libvirt sparse", res, &f);
    /* the image's stream event, its libvirt header (covering header and
     * XML), then the QEVM stream's records from its file offset on */
    SOFT(res->nev > 2 && res->ev[0].kind == MS_EV_STREAM_HEADER &&
             res->ev[1].kind == MS_EV_LIBVIRT_HEADER &&
             res->ev[1].length == TQ_LIBVIRT_HEADER + 100 &&
             res->ev[2].offset == TQ_LIBVIRT_HEADER + 100 + 8,
         "libvirt sparse: the QEVM stream after header and XML");
    feeder fb = {.slice = 1, .seekable = 1};
    run(b.p, b.len, &fb, bytes);
    char why[200] = "";
    SOFT(same_events(res, bytes, why, sizeof why), "byte by byte: %s", why);
    tb_buf_free(&b);

    /* format 6 around a stream without mapped-ram */
    tb_buf_init(&b);
    tq_libvirt_header(&b, "LibvirtQemudSave", 2, 8, 0, 6, 0);
    tb_put(&b, "<domain>", 8); /* libvirt never writes an image without XML */
    tq_header(&b);
    size_t cfg = tq_config_machine(&b, "pc-i440fx-10.0");
    tq_eof(&b);
    run(b.p, b.len, &one, res);
    SOFT(res->rc == -1 && res->err.code == MS_ERR_CONFIGURATION &&
             res->err.offset == cfg && strstr(res->err.detail, "mapped-ram"),
         "sparse image without mapped-ram: %s at %llu: %s",
         ms_error_name(res->err.code), (unsigned long long)res->err.offset,
         res->err.detail);
    /* a format libvirt does not define */
    tb_set_le32(b.p + 28, 7);
    run(b.p, b.len, &one, res);
    SOFT(res->rc == -1 && res->err.code == MS_ERR_HEADER_FIELD &&
             res->err.offset == 28,
         "format 7: %s: %s", ms_error_name(res->err.code), res->err.detail);
    free(res);
    free(bytes);
    tb_buf_free(&b);
    DONE();
}

/* ---- damaged headers ------------------------------------------------------
 */

typedef struct damage {
    const char *what;
    size_t block;   /* whose header */
    size_t field;   /* byte offset in the header */
    int width;      /* 1, 4 or 8 */
    uint64_t value; /* or, with width 1 on the bitmap: OR-ed */
    int bitmap;     /* the damage is in the bitmap's last byte */
    ms_error code;
    const char *detail;
} damage;

static void test_damage(void **state)
{
    (void)state;
    BEGIN();
    static const damage cases[] = {
        {"version 2", 0, 0, 4, 2, 0, MS_ERR_RAM, "header version 2"},
        {"version 0", 0, 0, 4, 0, 0, MS_ERR_RAM, "header version 0"},
        {"page size", 0, 4, 8, 4096, 0, MS_ERR_RAM, "page size 4096"},
        {"bitmap before header end", 1, 12, 8, 100, 0, MS_ERR_RAM,
         "lies before the end of its mapped-ram header"},
        {"pages over the bitmap", 0, 20, 8, 0, 0, MS_ERR_RAM,
         "overlaps the bitmap"},
        {"pages not page aligned", 0, 20, 8, 0x10000 + 512, 0, MS_ERR_RAM,
         "not on a page boundary"},
        {"pages beyond the file", 2, 20, 8, 1u << 20, 0, MS_ERR_RAM,
         "beyond the end of the file"},
        {"bit past the last page", 3, 0, 1, 0x80, 1, MS_ERR_RAM,
         "past the block's 70 pages"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const damage *d = &cases[i];
        mr_file f = {.blocks = g_blocks, .n = NBLOCKS};
        tb_buf b;
        mr_build(&b, &f);
        uint64_t at = f.hdr_off[d->block] + d->field;
        if (d->bitmap) { /* 70 pages: bits 70..127 of the second word */
            at = f.bitmap_off[d->block] + 15;
            b.p[at] |= (uint8_t)d->value;
        } else if (d->width == 4) {
            tb_set_be32(b.p + at, (uint32_t)d->value);
        } else {
            tb_set_be64(b.p + at, d->value);
        }
        for (int mode = 0; mode < 2; mode++) {
            feeder fd = {.seekable = 1, .give_size = 1, .slice = mode ? 1 : 0};
            run_res *res = malloc(sizeof *res);
            run(b.p, b.len, &fd, res);
            SOFT(res->rc == -1 && res->err.code == d->code &&
                     res->err.offset == at &&
                     strstr(res->err.detail, d->detail),
                 "%s (%s): %s at %llu (want %llu): %s", d->what,
                 mode ? "byte by byte" : "one slice",
                 ms_error_name(res->err.code),
                 (unsigned long long)res->err.offset, (unsigned long long)at,
                 res->err.detail);
            free(res);
        }
        tb_buf_free(&b);
    }
    /* a page record inside a mapped-ram stream */
    static const mr_block one[] = {{"pc.ram", 4 * PS, "1", 0, 0}};
    mr_file f = {.blocks = one, .n = 1};
    tb_buf b;
    mr_build(&b, &f);
    tb_buf c;
    tb_buf_init(&c);
    size_t resume = (size_t)(f.pages_off[0] + 4 * PS);
    tb_put(&c, b.p, resume);
    uint8_t pg[PS] = {1};
    size_t rec = c.len;
    tq_ram_page(&c, 0, "pc.ram", pg, PS);
    tb_put(&c, b.p + resume, b.len - resume);
    feeder fd = {.seekable = 1};
    run_res *res = malloc(sizeof *res);
    run(c.p, c.len, &fd, res);
    SOFT(res->rc == -1 && res->err.code == MS_ERR_RAM &&
             res->err.offset == rec &&
             strstr(res->err.detail, "mapped-ram stream"),
         "PAGE record in a mapped-ram stream: %s at %llu", res->err.detail,
         (unsigned long long)res->err.offset);
    free(res);
    tb_buf_free(&b);
    tb_buf_free(&c);
    DONE();
}

/* ---- the real QEMU 10.0 capture --------------------------------------- */

#define CAPTURE "tests/data/captures/qemu-10.0-pc-mapped-ram-32m/"

static char *source_path(const char *rel)
{
    const char *dir = getenv("MIGSTREAM_SRC_DIR");
    char base[4096];
    snprintf(base, sizeof base, "%s", dir && *dir ? dir : __FILE__);
    char *t = dir && *dir ? NULL : strstr(base, "/tests/test_mapped_ram.c");
    if (t)
        *t = 0;
    size_t n = strlen(base) + strlen(rel) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", base, rel);
    return p;
}

/* A file of the capture, gunzipped when it is stored so (gzread reads
 * plain files as they are). */
static uint8_t *load(const char *rel, size_t *len)
{
    char *path = source_path(rel);
    gzFile g = gzopen(path, "rb");
    free(path);
    if (!g)
        return NULL;
    tb_buf b;
    tb_buf_init(&b);
    static uint8_t chunk[1 << 16];
    int n;
    while ((n = gzread(g, chunk, sizeof chunk)) > 0)
        tb_put(&b, chunk, (size_t)n);
    gzclose(g);
    *len = b.len;
    return b.p;
}

/* README table: header offset (record + 1 + name + 8), block, bitmap
 * offset, pages offset, bits set, pages */
static const struct {
    uint64_t hdr;
    const char *name;
    uint64_t bitmap, pages, set, total;
} g_capture[] = {
    {0x72, "pc.ram", 0x8e, 0x100000, 256, 8192},
    {0x2100000 + 1 + 20 + 8, "/rom@etc/acpi/tables", 0x2100039, 0x2200000, 2,
     32},
    {0x2220000 + 1 + 7 + 8, "pc.bios", 0x222002c, 0x2300000, 47, 64},
    {0x2340000 + 1 + 6 + 8, "pc.rom", 0x234002b, 0x2400000, 0, 32},
    {0x2420000 + 1 + 21 + 8, "/rom@etc/table-loader", 0x242003a, 0x2500000, 1,
     1},
    {0x2501000 + 1 + 18 + 8, "/rom@etc/acpi/rsdp", 0x2501037, 0x2600000, 1, 1},
};

static void test_capture(void **state)
{
    (void)state;
    BEGIN();
    size_t len = 0, blob_len = 0;
    uint8_t *p = load(CAPTURE "main.mig.gz", &len);
    uint8_t *blob = load(CAPTURE "blob.bin", &blob_len);
    SOFT(p && len == 39962020 && blob && blob_len == 0x100000,
         "capture files: %zu and %zu bytes", len, blob_len);
    if (!p || !blob || blob_len != 0x100000) {
        free(p);
        free(blob);
        DONE();
        return;
    }
    run_res *whole = malloc(sizeof *whole), *rnd = malloc(sizeof *rnd);
    feeder one = {0};
    run(p, len, &one, whole);
    SOFT(whole->rc == 0 && whole->seeks == 0, "one slice: %s",
         whole->err.detail);
    for (size_t k = 0; k < 6; k++) {
        const ev_rec *m = find_kind(whole, MS_EV_MAPPED_RAM, k);
        SOFT(m && m->offset == g_capture[k].hdr &&
                 strcmp(m->block, g_capture[k].name) == 0 &&
                 m->mapped.bitmap_offset == g_capture[k].bitmap &&
                 m->mapped.pages_offset == g_capture[k].pages &&
                 m->mapped.pages_set == g_capture[k].set &&
                 m->mapped.pages_total == g_capture[k].total &&
                 m->mapped.page_size == 4096,
             "README row %zu (%s): %s at %llu", k, g_capture[k].name,
             m ? m->block : "missing",
             m ? (unsigned long long)m->offset : 0ull);
    }
    /* pc.ram's pages: blob.bin at 0x1000000, in order, nothing else */
    size_t blob_pages = 0, pages = count_kind(whole, MS_EV_RAM_PAGE);
    for (size_t i = 0; i < pages; i++) {
        const ev_rec *e = find_kind(whole, MS_EV_RAM_PAGE, i);
        if (strcmp(e->block, "pc.ram") != 0)
            continue;
        uint64_t off = 0x1000000 + blob_pages * 4096;
        SOFT(e->ram_offset == off && e->offset == 0x100000 + off &&
                 e->data_hash == tb_hash(blob + blob_pages * 4096, 4096),
             "pc.ram page %zu at 0x%llx", blob_pages,
             (unsigned long long)e->ram_offset);
        blob_pages++;
    }
    SOFT(pages == 307 && blob_pages == 256, "%zu pages, %zu of pc.ram", pages,
         blob_pages);
    /* random slices up to 1 MiB, each jump out of one a seek */
    char why[200] = "";
    for (uint64_t seed = 1; seed <= 3; seed++) {
        feeder fd = {.slice = 1 << 20,
                     .seed = seed * 104729,
                     .seekable = 1,
                     .give_size = (int)(seed & 1)};
        run(p, len, &fd, rnd);
        SOFT(rnd->rc == 0 && same_events(whole, rnd, why, sizeof why) &&
                 rnd->seeks > 0,
             "random slices (seed %llu): %s %s, %zu seeks",
             (unsigned long long)seed, why, rnd->err.detail, rnd->seeks);
    }
    free(whole);
    free(rnd);
    free(p);
    free(blob);
    DONE();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode),
        cmocka_unit_test(test_cuts),
        cmocka_unit_test(test_seek_contract),
        cmocka_unit_test(test_seek_contract_plain),
        cmocka_unit_test(test_ignore_shared),
        cmocka_unit_test(test_libvirt_sparse),
        cmocka_unit_test(test_capture),
        cmocka_unit_test(test_damage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
