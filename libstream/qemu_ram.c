/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* QEMU main stream: the "ram" section, version 4 (block list, page
 * records, markers).  Facts: spec/qemu-main.md. */
#include "qemu_impl.h"

/* ---- RAM (version 4) -------------------------------------------------------- */

static q_block *block_named(q_state *st, const char *name, int *index)
{
    for (size_t i = 0; i < st->nblocks; i++)
        if (strcmp(st->blocks[i].name, name) == 0) {
            *index = (int)i;
            return &st->blocks[i];
        }
    return NULL;
}

static void ram_event(q_state *st, ms_event *ev, ms_event_kind kind,
                      uint32_t record)
{
    ev->kind = kind;
    ev->offset = st->rec_off;
    ev->u.ram.record = (ms_ram_record)record;
    ev->u.ram.page_size = st->page_size;
    ev->u.ram.epoch = st->epoch;
    if (st->cur_block >= 0) {
        ev->u.ram.block = st->blocks[st->cur_block].name;
        ev->u.ram.block_index = (uint32_t)st->cur_block;
        ev->u.ram.used_length = st->blocks[st->cur_block].used_length;
    }
}

/* One entry of the MEM_SIZE block list (steps 10..14). */
static int read_ram_block(ms_reader *r, ms_event *ev)
{
    q_state *st = QST(r);
    const uint8_t *p;
    int t;
    switch (st->step) {
    case 10:
        st->rec_off = ms_rd_unit_offset(r);
        st->step = 11;
        /* fallthrough */
    case 11:
    case 12:
        if ((t = ms_q_take_counted(r, 11, "RAM block name")) <= 0)
            return t < 0 ? MS_NEXT_ERROR : MS_NEXT_INPUT;
        st->step = 13;
        /* fallthrough */
    case 13: {
        /* be64 used_length, then what capabilities add per block */
        size_t extra = 8 + (r->opt.qemu_postcopy_ram ? 8 : 0) +
                       (st->cap_ignore_shared ? 8 : 0) +
                       (st->cap_mapped_ram ? 28 : 0);
        if ((t = ms_rd_take_reserved(r, extra, &p)) <= 0)
            return t < 0 ? MS_NEXT_ERROR : MS_NEXT_INPUT;
        uint64_t used = ms_be64(p);
        int dummy;
        if (block_named(st, st->name, &dummy))
            return MS_FAIL(r, MS_ERR_RAM, st->rec_off,
                           "RAM block \"%s\" listed twice", st->name);
        if (st->nblocks >= r->opt.max_ram_blocks)
            return MS_FAIL(r, MS_ERR_LIMIT, st->rec_off,
                           "more than max_ram_blocks (%u) RAM blocks",
                           r->opt.max_ram_blocks);
        if (used > st->mem_total - st->mem_sum)
            return MS_FAIL(r, MS_ERR_RAM, st->rec_off + 1 + strlen(st->name),
                           "RAM block \"%s\" of %llu bytes exceeds the "
                           "total %llu given by MEM_SIZE",
                           st->name, (unsigned long long)used,
                           (unsigned long long)st->mem_total);
        if (ms_grow(ALLOC(r), (void **)&st->blocks, sizeof *st->blocks,
                    &st->blockcap, st->nblocks + 1) < 0)
            return MS_FAIL(r, MS_ERR_NO_MEMORY, st->rec_off, "block list");
        q_block *b = &st->blocks[st->nblocks];
        memcpy(b->name, st->name, sizeof b->name);
        b->used_length = used;
        st->cur_block = (int)st->nblocks++;
        st->mem_sum += used;
        ram_event(st, ev, MS_EV_RAM_BLOCK, MS_RAM_MEM_SIZE);
        ev->length = ms_rd_pos(r) - st->rec_off;
        ev->u.ram.total = st->mem_total;
        st->cur_block = -1;
        st->step = st->mem_sum == st->mem_total ? 0 : 10;
        return MS_NEXT_EVENT;
    }
    }
    return MS_FAIL(r, MS_ERR_USAGE, ms_rd_pos(r), "internal: ram block step");
}

static int inflate_page(ms_reader *r, const uint8_t *src, size_t len)
{
    q_state *st = QST(r);
    if (!st->page_buf && !(st->page_buf = ms_alloc(ALLOC(r), st->page_size)))
        return MS_FAIL(r, MS_ERR_NO_MEMORY, st->rec_off, "page buffer");
    if (!st->zs_ready) {
        memset(&st->zs, 0, sizeof st->zs);
        if (inflateInit(&st->zs) != Z_OK)
            return MS_FAIL(r, MS_ERR_NO_MEMORY, st->rec_off, "inflateInit");
        st->zs_ready = 1;
    } else {
        inflateReset(&st->zs);
    }
    st->zs.next_in = (Bytef *)src;
    st->zs.avail_in = (uInt)len;
    st->zs.next_out = st->page_buf;
    st->zs.avail_out = st->page_size;
    int zrc = inflate(&st->zs, Z_FINISH);
    if (zrc != Z_STREAM_END || st->zs.avail_out != 0 || st->zs.avail_in != 0)
        return MS_FAIL(r, MS_ERR_DECOMPRESS, st->rec_off,
                       "COMPRESS_PAGE does not inflate to exactly one %u-byte "
                       "page",
                       st->page_size);
    return 0;
}

int ms_q_read_ram(ms_reader *r, ms_event *ev)
{
    q_state *st = QST(r);
    const uint8_t *p;
    int t;
    if (st->step >= 10)
        return read_ram_block(r, ev);
    switch (st->step) {
    case 0: { /* be64: page offset | flags */
        st->rec_off = ms_rd_unit_offset(r);
        if ((t = ms_rd_take_reserved(r, 8, &p)) <= 0)
            return t < 0 ? MS_NEXT_ERROR : MS_NEXT_INPUT;
        uint64_t v = ms_be64(p), mask = st->page_size - 1;
        uint32_t flags = (uint32_t)(v & mask);
        st->u64a = v & ~mask;
        st->u32a = flags;
        uint32_t kinds = flags & ~RAM_CONTINUE;
        if ((flags & ~RAM_KNOWN) || (kinds & (kinds - 1)) || !kinds ||
            ((flags & RAM_CONTINUE) && !(kinds & RAM_PAGE_KINDS)))
            return MS_FAIL(r, MS_ERR_RAM, st->rec_off,
                           "RAM record flags 0x%x are not a known "
                           "combination",
                           flags);
        if (kinds == MS_RAM_MEM_SIZE) {
            if (st->cur_type != MS_QSEC_START)
                return MS_FAIL(r, MS_ERR_RAM, st->rec_off,
                               "block list (MEM_SIZE) outside a START "
                               "section");
            st->mem_total = st->u64a;
            st->mem_sum = 0;
            st->nblocks = 0;
            st->step = st->mem_total ? 10 : 0;
            return MS_GO_ON;
        }
        if (kinds == MS_RAM_EOS || kinds == MS_RAM_MULTIFD_FLUSH) {
            ram_event(st, ev, MS_EV_RAM_MARKER, kinds);
            ev->length = 8;
            if (kinds == MS_RAM_MULTIFD_FLUSH)
                st->seen_flush = 1;
            if (kinds == MS_RAM_MULTIFD_FLUSH || !st->seen_flush)
                st->epoch++;
            if (kinds == MS_RAM_EOS)
                st->stage = QS_FOOTER;
            return MS_NEXT_EVENT;
        }
        if (kinds == MS_RAM_HOOK)
            return MS_FAIL(r, MS_ERR_RAM, st->rec_off,
                           "RAM_SAVE_FLAG_HOOK: RDMA streams are not "
                           "supported");
        if (flags & RAM_CONTINUE) {
            if (st->cur_block < 0)
                return MS_FAIL(r, MS_ERR_RAM, st->rec_off,
                               "CONTINUE page with no current RAM block");
            st->step = 3;
            return MS_GO_ON;
        }
        st->step = 1;
    }
        /* fallthrough */
    case 1:
    case 2: {
        if ((t = ms_q_take_counted(r, 1, "RAM block name")) <= 0)
            return t < 0 ? MS_NEXT_ERROR : MS_NEXT_INPUT;
        int idx;
        if (!block_named(st, st->name, &idx))
            return MS_FAIL(r, MS_ERR_RAM, st->rec_off + 8,
                           "page for unknown RAM block \"%s\"", st->name);
        st->cur_block = idx;
        st->step = 3;
    }
        /* fallthrough */
    case 3: {
        q_block *b = &st->blocks[st->cur_block];
        if (st->u64a > b->used_length ||
            b->used_length - st->u64a < st->page_size)
            return MS_FAIL(r, MS_ERR_RAM, st->rec_off,
                           "page at 0x%llx outside RAM block \"%s\" (0x%llx "
                           "bytes)",
                           (unsigned long long)st->u64a, b->name,
                           (unsigned long long)b->used_length);
        st->step = 4;
    }
        /* fallthrough */
    case 4: {
        uint32_t kind = st->u32a & ~RAM_CONTINUE;
        size_t want = kind == MS_RAM_ZERO   ? 1
                      : kind == MS_RAM_PAGE ? st->page_size
                      : kind == MS_RAM_XBZRLE ? 3
                                              : 4; /* COMPRESS_PAGE len */
        if ((t = ms_rd_take_reserved(r, want, &p)) <= 0)
            return t < 0 ? MS_NEXT_ERROR : MS_NEXT_INPUT;
        ram_event(st, ev, MS_EV_RAM_PAGE, kind);
        ev->u.ram.offset = st->u64a;
        if (kind == MS_RAM_ZERO) {
            if (p[0] != 0)
                return MS_FAIL(r, MS_ERR_RAM, ms_rd_pos(r) - 1,
                               "ZERO page fill byte 0x%02x, must be 0", p[0]);
            ev->u.ram.fill = 0;
        } else if (kind == MS_RAM_PAGE) {
            ev->u.ram.data = p;
            ev->u.ram.size = st->page_size;
            ev->u.ram.zero_copy = ms_rd_in_input(r, p);
        } else {
            /* XBZRLE: u8 encoding 1 + be16 length; COMPRESS: be32 length */
            st->u32b = kind == MS_RAM_XBZRLE ? ms_be16(p + 1) : ms_be32(p);
            if (kind == MS_RAM_XBZRLE && p[0] != 1)
                return MS_FAIL(r, MS_ERR_RAM, ms_rd_pos(r) - 3,
                               "XBZRLE encoding byte 0x%02x, must be 0x01",
                               p[0]);
            size_t max = kind == MS_RAM_XBZRLE ? st->page_size
                                               : compressBound(st->page_size);
            if (st->u32b > max || st->u32b == 0)
                return MS_FAIL(r, MS_ERR_RAM, ms_rd_pos(r) - 2,
                               "%s length %u (page size %u)",
                               kind == MS_RAM_XBZRLE ? "XBZRLE"
                                                     : "COMPRESS_PAGE",
                               st->u32b, st->page_size);
            st->step = 5;
            return MS_GO_ON;
        }
        ev->length = ms_rd_pos(r) - st->rec_off;
        st->step = 0;
        return MS_NEXT_EVENT;
    }
    case 5: {
        uint32_t kind = st->u32a & ~RAM_CONTINUE;
        if ((t = ms_rd_take_reserved(r, st->u32b, &p)) <= 0)
            return t < 0 ? MS_NEXT_ERROR : MS_NEXT_INPUT;
        ram_event(st, ev, MS_EV_RAM_PAGE, kind);
        ev->u.ram.offset = st->u64a;
        if (kind == MS_RAM_COMPRESS_PAGE) {
            if (inflate_page(r, p, st->u32b) < 0)
                return MS_NEXT_ERROR;
            ev->u.ram.data = st->page_buf;
            ev->u.ram.size = st->page_size;
        } else {
            /* QEMU's loader decodes the delta into the page; a delta it
             * would reject is an error here (xbzrle.c holds the rules). */
            size_t bad;
            const char *why = ms_xbzrle_check(p, st->u32b, st->page_size,
                                              &bad);
            if (why)
                return MS_FAIL(r, MS_ERR_RAM,
                               ms_rd_pos(r) - st->u32b + bad,
                               "XBZRLE delta: %s (page size %u)", why,
                               st->page_size);
            ev->u.ram.data = p;
            ev->u.ram.size = st->u32b;
            ev->u.ram.zero_copy = ms_rd_in_input(r, p);
        }
        ev->length = ms_rd_pos(r) - st->rec_off;
        st->step = 0;
        return MS_NEXT_EVENT;
    }
    }
    return MS_FAIL(r, MS_ERR_USAGE, ms_rd_pos(r), "internal: ram step");
}
