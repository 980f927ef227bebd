/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* QEMU main stream: the "ram" section, version 4 (block list, page
 * records, markers) and mapped-ram files.  Facts: spec/qemu-main.md.
 *
 * Steps (st->step; each resumable at any byte split):
 *
 *   RS_RECORD --MEM_SIZE--> RS_BLOCK -> RS_BLOCK_NAME -> RS_BLOCK_LENGTH
 *     ^  |                     ^        -> RS_BLOCK_PAGE_SIZE (postcopy-ram,
 *     |  |                     |           decided from the bytes)
 *     |  |                     |        -> RS_BLOCK_ADDR (x-ignore-shared)
 *     |  |                     |        -> RS_BLOCK_DONE: MS_EV_RAM_BLOCK
 *     |  |                     |              |            |  mapped-ram
 *     |  |                     +-- next entry +            v
 *     |  |                     |          RS_MAPPED_HEADER (28 bytes)
 *     |  |                     |           -> seek bitmap_offset
 *     |  |                     |          RS_MAPPED_BITMAP: MS_EV_MAPPED_RAM
 *     |  |                     |           -> RS_MAPPED_PAGE (seek to each
 *     |  |                     |              set page): MS_EV_RAM_PAGE
 *     |  |                     +-- seek pages_offset + used_length
 *     +--+-- list complete (either path) ------------------------------+
 *        |
 *        +-- page record -> RS_NAME (unless CONTINUE) -> RS_PAGE_CHECK
 *            -> RS_PAGE_BODY [-> RS_PAGE_DATA] -> RS_RECORD
 *        EOS: the section's footer follows (QS_FOOTER).
 */
#include "qemu_impl.h"
#include "xbzrle.h"

enum ram_step {
    /* page records; 0 is where every RAM section payload starts */
    RS_RECORD = 0,     /* be64 page offset | flags */
    RS_NAME = 1,       /* counted block name: RS_NAME and RS_NAME_BYTES */
    RS_NAME_BYTES = 2,
    RS_PAGE_CHECK = 3, /* the page lies inside its block */
    RS_PAGE_BODY = 4,  /* fill byte, the page, or the XBZRLE/COMPRESS prefix */
    RS_PAGE_DATA = 5,  /* XBZRLE delta / COMPRESS_PAGE zlib bytes */
    /* the block list after MEM_SIZE */
    RS_BLOCK = 10,            /* an entry begins */
    RS_BLOCK_NAME = 11,       /* counted idstr: RS_BLOCK_NAME and +1 */
    RS_BLOCK_NAME_BYTES = 12,
    RS_BLOCK_LENGTH = 13,     /* be64 used_length */
    RS_BLOCK_PAGE_SIZE = 14,  /* be64 block page size, where present */
    RS_BLOCK_ADDR = 15,       /* be64 guest address (x-ignore-shared) */
    RS_BLOCK_DONE = 16,       /* the entry is complete: MS_EV_RAM_BLOCK */
    RS_MAPPED_HEADER = 17,    /* MappedRamHeader (mapped-ram) */
    RS_MAPPED_BITMAP = 18,    /* the block's bitmap at bitmap_offset */
    RS_MAPPED_PAGE = 19       /* the pages whose bit is set */
};

/* mapped-ram wire facts (QEMU >= 9.0, migration/ram.c) */
/* MappedRamHeader: be32 version, be64 page size, be64 bitmap_offset, be64
 * pages_offset (packed) */
#define MAPPED_RAM_WHY "mapped-ram file: pages live at fixed offsets"

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

/* After a block entry (and its mapped-ram pages): the next entry, or the
 * records after the list. */
static int block_list_next(q_state *st)
{
    st->cur_block = -1;
    st->step = st->mem_sum == st->mem_total ? RS_RECORD : RS_BLOCK;
    return MS_GO_ON;
}

/* ---- block list entries ---------------------------------------------------- */

/* RS_BLOCK_LENGTH: used_length; the block joins the list. */
static int read_block_length(ms_reader *r)
{
    q_state *st = QST(r);
    const uint8_t *p;
    MS_TAKE_OR_RETURN(r, 8, &p);
    uint64_t used = ms_be64(p), field = ms_rd_pos(r) - 8;
    int dummy;
    if (block_named(st, st->name, &dummy))
        return MS_FAIL(r, MS_ERR_RAM, st->rec_off,
                       "RAM block \"%s\" listed twice", st->name);
    if (st->nblocks >= r->opt.max_ram_blocks)
        return MS_FAIL_LIMIT(r, MS_LIMIT_MAX_RAM_BLOCKS, st->rec_off,
                             "more than max_ram_blocks (%u) RAM blocks",
                             r->opt.max_ram_blocks);
    if (used > st->mem_total - st->mem_sum)
        return MS_FAIL(r, MS_ERR_RAM, field,
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
    st->step = RS_BLOCK_PAGE_SIZE;
    return MS_GO_ON;
}

/* Could `v` be a block page size the POSTCOPY_ADVISE announced?  A power
 * of two, at least the target page, one of the sizes in the summary. */
static int page_size_candidate(const q_state *st, uint64_t v)
{
    return v && !(v & (v - 1)) && v >= st->page_size &&
           (v & st->advise_page_summary) != 0;
}

/* Would `p` be a valid start of what follows the entry's fields: the next
 * entry (u8 name length, never 0) or, after the last entry, the next RAM
 * record (be64 whose low bits are one known record kind)? */
static int next_element_valid(const q_state *st, const uint8_t *p, int last)
{
    if (!last)
        return p[0] != 0;
    uint32_t flags = (uint32_t)(ms_be64(p) & (st->page_size - 1));
    uint32_t kinds = flags & ~RAM_CONTINUE;
    return kinds && !(flags & ~RAM_KNOWN) && !(kinds & (kinds - 1));
}

/* RS_BLOCK_PAGE_SIZE.  QEMU writes a block's page size only with
 * postcopy-ram (the stream then has POSTCOPY_ADVISE with arguments) and
 * only for a block whose page size differs from the source's host page
 * size, which the stream does not state.  So the bytes decide: the field
 * is there when the next be64 is a page size the ADVISE announced AND the
 * other reading (the field absent: those bytes start the guest address,
 * the next entry or the next record) would be invalid.  mapped-ram
 * excludes postcopy-ram. */
static int read_block_page_size(ms_reader *r)
{
    q_state *st = QST(r);
    const uint8_t *p;
    st->step = RS_BLOCK_ADDR;
    if (!st->postcopy_advised || st->cap_mapped_ram)
        return MS_GO_ON;
    size_t look = st->cap_ignore_shared ? 16 : 8;
    int t = ms_rd_take_reserved(r, look, &p);
    if (t <= 0) {
        st->step = RS_BLOCK_PAGE_SIZE;
        return t < 0 ? MS_NEXT_ERROR : MS_NEXT_INPUT;
    }
    int last = st->mem_sum == st->mem_total;
    /* absent: with x-ignore-shared the address comes first */
    const uint8_t *other = st->cap_ignore_shared ? p + 8 : p;
    int present = page_size_candidate(st, ms_be64(p)) &&
                  !next_element_valid(st, other, last);
    ms_rd_untake(r);
    if (present) {
        int ok = ms_rd_take(r, 8, &p); /* given back above: always there */
        (void)ok;
    }
    return MS_GO_ON;
}

/* RS_BLOCK_ADDR: the guest address of the block (x-ignore-shared). */
static int read_block_addr(ms_reader *r)
{
    q_state *st = QST(r);
    const uint8_t *p;
    if (st->cap_ignore_shared)
        MS_TAKE_OR_RETURN(r, 8, &p);
    st->step = RS_BLOCK_DONE;
    return MS_GO_ON;
}

static int read_mapped(ms_reader *r, ms_event *ev);

/* One entry of the MEM_SIZE block list (RS_BLOCK .. RS_MAPPED_PAGE). */
static int read_ram_block(ms_reader *r, ms_event *ev)
{
    q_state *st = QST(r);
    int t;
    switch (st->step) {
    case RS_BLOCK:
        st->rec_off = ms_rd_unit_offset(r);
        st->step = RS_BLOCK_NAME;
        /* fallthrough */
    case RS_BLOCK_NAME:
    case RS_BLOCK_NAME_BYTES:
        if ((t = ms_q_take_counted(r, RS_BLOCK_NAME, "RAM block name")) <= 0)
            return t < 0 ? MS_NEXT_ERROR : MS_NEXT_INPUT;
        st->step = RS_BLOCK_LENGTH;
        return MS_GO_ON;
    case RS_BLOCK_LENGTH: return read_block_length(r);
    case RS_BLOCK_PAGE_SIZE: return read_block_page_size(r);
    case RS_BLOCK_ADDR: return read_block_addr(r);
    case RS_BLOCK_DONE:
        ram_event(st, ev, MS_EV_RAM_BLOCK, MS_RAM_MEM_SIZE);
        ev->length = ms_rd_pos(r) - st->rec_off;
        ev->u.ram.total = st->mem_total;
        if (st->cap_mapped_ram) {
            st->step = RS_MAPPED_HEADER;
            return MS_NEXT_EVENT;
        }
        block_list_next(st);
        return MS_NEXT_EVENT;
    case RS_MAPPED_HEADER:
    case RS_MAPPED_BITMAP:
    case RS_MAPPED_PAGE: return read_mapped(r, ev);
    }
    return MS_FAIL(r, MS_ERR_USAGE, ms_rd_pos(r), "internal: ram block step");
}

/* ---- mapped-ram ---------------------------------------------------------- */

static void mapped_event(q_state *st, ms_event *ev)
{
    const q_mapped *m = &st->mr;
    q_block *b = &st->blocks[m->block];
    ev->kind = MS_EV_MAPPED_RAM;
    ev->offset = m->hdr_off;
    ev->length = MAPPED_RAM_HDR_BYTES;
    ms_mapped_ram_info *i = &ev->u.mapped;
    i->block = b->name;
    i->block_index = m->block;
    i->version = m->version;
    i->used_length = b->used_length;
    i->page_size = m->page_size;
    i->bitmap_offset = m->bitmap_offset;
    i->bitmap_size = m->bitmap_size;
    i->pages_offset = m->pages_offset;
    i->pages_total = m->npages;
    i->pages_set = m->pages_set;
    i->resume_offset = m->ignored ? m->hdr_off + MAPPED_RAM_HDR_BYTES
                                  : m->pages_offset + b->used_length;
    i->ignored = m->ignored;
}

/* The header's offsets: the regions lie in order after the header
 * (header < bitmap <= pages), pages_offset page aligned, inside the
 * file when its size is known.  Errors name the offending field. */
static int check_mapped_regions(ms_reader *r, const q_block *b)
{
    q_mapped *m = &QST(r)->mr;
    uint64_t hdr_end = m->hdr_off + MAPPED_RAM_HDR_BYTES;
    uint64_t f_bitmap = m->hdr_off + 12, f_pages = m->hdr_off + 20;
    if (m->bitmap_offset < hdr_end)
        return MS_FAIL(r, MS_ERR_RAM, f_bitmap,
                       "RAM block \"%s\": bitmap_offset 0x%llx lies before "
                       "the end of its mapped-ram header (0x%llx)",
                       b->name, (unsigned long long)m->bitmap_offset,
                       (unsigned long long)hdr_end);
    if (m->bitmap_size > r->opt.max_record_payload)
        return MS_FAIL_LIMIT(r, MS_LIMIT_MAX_RECORD_PAYLOAD, f_bitmap,
                             "RAM block \"%s\": bitmap of %llu bytes exceeds "
                             "max_record_payload (%llu)",
                             b->name, (unsigned long long)m->bitmap_size,
                             (unsigned long long)r->opt.max_record_payload);
    if (m->pages_offset < m->bitmap_offset ||
        m->pages_offset - m->bitmap_offset < m->bitmap_size)
        return MS_FAIL(r, MS_ERR_RAM, f_pages,
                       "RAM block \"%s\": pages_offset 0x%llx overlaps the "
                       "bitmap at 0x%llx (%llu bytes)",
                       b->name, (unsigned long long)m->pages_offset,
                       (unsigned long long)m->bitmap_offset,
                       (unsigned long long)m->bitmap_size);
    /* QEMU writes pages_offset on MAPPED_RAM_FILE_OFFSET_ALIGNMENT (1 MiB)
     * but its loader checks only page alignment, so that the writers'
     * alignment may change: so does this decoder. */
    if (m->pages_offset % m->page_size)
        return MS_FAIL(r, MS_ERR_RAM, f_pages,
                       "RAM block \"%s\": pages_offset 0x%llx is not on a "
                       "page boundary (QEMU's loader rejects it)",
                       b->name, (unsigned long long)m->pages_offset);
    uint64_t end = m->pages_offset + b->used_length;
    uint64_t size = r->opt.input_size;
    if (end < m->pages_offset || (size && end > size))
        return MS_FAIL(r, MS_ERR_RAM, f_pages,
                       "RAM block \"%s\": pages 0x%llx..0x%llx go beyond "
                       "the end of the file (%llu bytes)",
                       b->name, (unsigned long long)m->pages_offset,
                       (unsigned long long)end, (unsigned long long)size);
    return 0;
}

/* RS_MAPPED_HEADER: MappedRamHeader {be32 version, be64 page_size, be64
 * bitmap_offset, be64 pages_offset}. */
static int read_mapped_header(ms_reader *r, ms_event *ev)
{
    q_state *st = QST(r);
    q_mapped *m = &st->mr;
    const uint8_t *p;
    m->hdr_off = ms_rd_unit_offset(r);
    MS_TAKE_OR_RETURN(r, MAPPED_RAM_HDR_BYTES, &p);
    const q_block *b = &st->blocks[st->cur_block];
    m->block = (uint32_t)st->cur_block;
    m->version = ms_be32(p);
    m->page_size = ms_be64(p + 4);
    m->bitmap_offset = ms_be64(p + 12);
    m->pages_offset = ms_be64(p + 20);
    m->npages = b->used_length / st->page_size;
    m->bitmap_size = (m->npages + 63) / 64 * 8; /* host longs (64 bits) */
    m->pages_set = m->next_page = m->bitmap_got = 0;
    m->ignored = 0;
    if (m->version != MAPPED_RAM_HDR_VERSION)
        return MS_FAIL(r, MS_ERR_RAM, m->hdr_off,
                       "RAM block \"%s\": mapped-ram header version %u, "
                       "only %u is known",
                       b->name, m->version, MAPPED_RAM_HDR_VERSION);
    if (m->page_size != st->page_size)
        return MS_FAIL(r, MS_ERR_RAM, m->hdr_off + 4,
                       "RAM block \"%s\": mapped-ram page size %llu, the "
                       "stream's target page size is %u",
                       b->name, (unsigned long long)m->page_size,
                       st->page_size);
    if (!m->bitmap_offset && !m->pages_offset) {
        /* QEMU >= 11.0: an x-ignore-shared block has nothing in the file */
        if (!st->cap_ignore_shared)
            return MS_FAIL(r, MS_ERR_RAM, m->hdr_off + 12,
                           "RAM block \"%s\": zero offsets mark an "
                           "x-ignore-shared block, but the configuration "
                           "does not list x-ignore-shared",
                           b->name);
        m->ignored = 1;
        m->npages = 0;
        m->bitmap_size = 0;
        mapped_event(st, ev);
        block_list_next(st);
        return MS_NEXT_EVENT;
    }
    if (check_mapped_regions(r, b) < 0)
        return MS_NEXT_ERROR;
    if (m->bitmap_cap < m->bitmap_size) {
        ms_free(ALLOC(r), m->bitmap);
        m->bitmap_cap = 0;
        if (!(m->bitmap = ms_alloc(ALLOC(r), (size_t)m->bitmap_size)))
            return MS_FAIL(r, MS_ERR_NO_MEMORY, m->hdr_off + 12,
                           "bitmap of %llu bytes",
                           (unsigned long long)m->bitmap_size);
        m->bitmap_cap = m->bitmap_size;
    }
    if (ms_rd_seek(r, m->bitmap_offset, MAPPED_RAM_WHY) < 0)
        return MS_NEXT_ERROR;
    st->step = RS_MAPPED_BITMAP;
    return MS_GO_ON;
}

static unsigned bits_in(uint8_t v)
{
    unsigned n = 0;
    for (; v; v &= (uint8_t)(v - 1))
        n++;
    return n;
}

/* RS_MAPPED_BITMAP: gather the bitmap (bit i = page i: byte i / 8, bit
 * i % 8 -- little-endian host longs), count it, refuse bits past the
 * block's last page. */
static int read_mapped_bitmap(ms_reader *r, ms_event *ev)
{
    q_state *st = QST(r);
    q_mapped *m = &st->mr;
    while (m->bitmap_got < m->bitmap_size) {
        const uint8_t *p;
        size_t n = ms_rd_peek(r, m->bitmap_size - m->bitmap_got, &p);
        if (n == 0)
            return MS_NEXT_INPUT;
        memcpy(m->bitmap + m->bitmap_got, p, n);
        ms_rd_skip(r, n);
        m->bitmap_got += n;
    }
    for (uint64_t i = 0; i < m->bitmap_size; i++) {
        uint8_t v = m->bitmap[i];
        uint64_t first = i * 8; /* page of bit 0 of this byte */
        if (first + 8 > m->npages) {
            uint8_t past = first >= m->npages
                               ? v
                               : (uint8_t)(v >> (m->npages - first));
            if (past)
                return MS_FAIL(r, MS_ERR_RAM, m->bitmap_offset + i,
                               "RAM block \"%s\": bitmap bit set for a "
                               "page past the block's %llu pages",
                               st->blocks[m->block].name,
                               (unsigned long long)m->npages);
        }
        m->pages_set += bits_in(v);
    }
    mapped_event(st, ev);
    st->step = RS_MAPPED_PAGE;
    return MS_NEXT_EVENT;
}

static int page_bit(const q_mapped *m, uint64_t i)
{
    return m->bitmap[i / 8] >> (i % 8) & 1;
}

/* RS_MAPPED_PAGE: the next page whose bit is set, at pages_offset +
 * index * page size; after the last, the stream goes on at pages_offset +
 * used_length. */
static int read_mapped_page(ms_reader *r, ms_event *ev)
{
    q_state *st = QST(r);
    q_mapped *m = &st->mr;
    const uint8_t *p;
    while (m->next_page < m->npages && !page_bit(m, m->next_page))
        m->next_page++;
    if (m->next_page == m->npages) {
        uint64_t resume = m->pages_offset + st->blocks[m->block].used_length;
        if (ms_rd_seek(r, resume, MAPPED_RAM_WHY) < 0)
            return MS_NEXT_ERROR;
        return block_list_next(st);
    }
    uint64_t at = m->pages_offset + m->next_page * m->page_size;
    if (ms_rd_seek(r, at, MAPPED_RAM_WHY) < 0)
        return MS_NEXT_ERROR;
    MS_TAKE_OR_RETURN(r, st->page_size, &p);
    st->rec_off = at;
    st->cur_block = (int)m->block;
    ram_event(st, ev, MS_EV_RAM_PAGE, MS_RAM_PAGE);
    ev->length = st->page_size;
    ev->u.ram.offset = m->next_page * m->page_size;
    ev->u.ram.data = p;
    ev->u.ram.size = st->page_size;
    ev->u.ram.zero_copy = ms_rd_in_input(r, p);
    m->next_page++;
    return MS_NEXT_EVENT;
}

static int read_mapped(ms_reader *r, ms_event *ev)
{
    switch (QST(r)->step) {
    case RS_MAPPED_HEADER: return read_mapped_header(r, ev);
    case RS_MAPPED_BITMAP: return read_mapped_bitmap(r, ev);
    default: return read_mapped_page(r, ev);
    }
}

/* ---- postcopy placement ------------------------------------------------- */

/* What a QEMU destination with postcopy-ram holds (migration/ram.c,
 * postcopy-ram.c; spec/qemu-postcopy.md "Pages placed twice"):
 *   POSTCOPY_ADVISE    all of RAM is discarded: no page is held;
 *   page record before POSTCOPY_LISTEN (precopy): written into place, or
 *                      read (a ZERO page compares the page with zeros),
 *                      either way now held;
 *   POSTCOPY_RAM_DISCARD range: its pages are dropped again;
 *   page record after LISTEN (postcopy): placed atomically with
 *                      UFFDIO_COPY / UFFDIO_ZEROPAGE, which the kernel
 *                      refuses with EEXIST for a page already held: the
 *                      load fails.
 * One bit per target page and block index.  A huge-page block is placed
 * a host page at a time, so a held target page means a held host page:
 * every page refused here QEMU refuses too. */

/* The bitmap of block `index`, made on its first page; NULL with the error
 * recorded.  Bounded as a mapped-ram block's bitmap is: all of them
 * together within max_record_payload. */
static uint8_t *placed_map(ms_reader *r, int index)
{
    q_state *st = QST(r);
    if ((size_t)index >= st->placed_n) {
        size_t cap = st->placed_n;
        if (ms_grow(ALLOC(r), (void **)&st->placed, sizeof *st->placed, &cap,
                    (size_t)index + 1) < 0) {
            MS_FAIL(r, MS_ERR_NO_MEMORY, st->rec_off, "placed-page bitmaps");
            return NULL;
        }
        memset(st->placed + st->placed_n, 0,
               (cap - st->placed_n) * sizeof *st->placed);
        st->placed_n = cap;
    }
    if (st->placed[index])
        return st->placed[index];
    const q_block *b = &st->blocks[index];
    uint64_t bytes = b->used_length / st->page_size / 8 + 1;
    uint64_t room = r->opt.max_record_payload - st->placed_bytes;
    if (bytes > room || bytes > SIZE_MAX) {
        MS_FAIL_LIMIT(r, MS_LIMIT_MAX_RECORD_PAYLOAD, st->rec_off,
                      "postcopy: bitmap of the pages held for RAM block "
                      "\"%s\" (%llu bytes) exceeds max_record_payload (%llu)",
                      b->name, (unsigned long long)bytes,
                      (unsigned long long)r->opt.max_record_payload);
        return NULL;
    }
    if (!(st->placed[index] = ms_calloc(ALLOC(r), 1, (size_t)bytes))) {
        MS_FAIL(r, MS_ERR_NO_MEMORY, st->rec_off,
                "bitmap of %llu bytes for RAM block \"%s\"",
                (unsigned long long)bytes, b->name);
        return NULL;
    }
    st->placed_bytes += bytes;
    return st->placed[index];
}

/* RS_PAGE_CHECK, postcopy-ram: the page is held from now on; after LISTEN
 * one held already is refused.  The preempt channel's reader does not
 * know its blocks' sizes: the set would have to compare channels (not
 * done).  Returns 0, or -1 with the error recorded. */
static int place_page(ms_reader *r)
{
    q_state *st = QST(r);
    if (!st->postcopy_advised || st->preempt)
        return 0;
    uint8_t *map = placed_map(r, st->cur_block);
    if (!map)
        return -1;
    uint64_t page = st->ram_rec.addr / st->page_size;
    uint8_t bit = (uint8_t)(1u << (page % 8));
    if ((map[page / 8] & bit) && st->postcopy_state >= QP_LISTENING)
        return MS_FAIL(r, MS_ERR_RAM, st->rec_off,
                       "page 0x%llx of RAM block \"%s\" sent again after "
                       "POSTCOPY_LISTEN: the destination holds it (received "
                       "and not discarded); QEMU fails to place it (EEXIST)",
                       (unsigned long long)st->ram_rec.addr,
                       st->blocks[st->cur_block].name);
    map[page / 8] |= bit;
    return 0;
}

void ms_q_ram_discarded(q_state *st, int block, uint64_t start, uint64_t length)
{
    if (block < 0 || (size_t)block >= st->placed_n || !st->placed[block])
        return;
    uint8_t *map = st->placed[block];
    uint64_t page = start / st->page_size;
    uint64_t end = page + length / st->page_size;
    /* bit by bit up to a byte boundary, whole bytes, bit by bit */
    for (; page < end && page % 8; page++)
        map[page / 8] &= (uint8_t) ~(1u << (page % 8));
    if (end - page >= 8) {
        memset(map + page / 8, 0, (size_t)((end - page) / 8));
        page += (end - page) / 8 * 8;
    }
    for (; page < end; page++)
        map[page / 8] &= (uint8_t) ~(1u << (page % 8));
}

void ms_q_ram_free(ms_reader *r)
{
    q_state *st = QST(r);
    for (size_t i = 0; i < st->placed_n; i++)
        ms_free(ALLOC(r), st->placed[i]);
    ms_free(ALLOC(r), st->placed);
    st->placed = NULL;
    st->placed_n = 0;
    st->placed_bytes = 0;
}

/* ---- page records ------------------------------------------------------- */

static int inflate_page(ms_reader *r, const uint8_t *src, size_t len)
{
    q_state *st = QST(r);
    if (!st->page_buf && !(st->page_buf = ms_alloc(ALLOC(r), st->page_size)))
        return MS_FAIL(r, MS_ERR_NO_MEMORY, st->rec_off, "page buffer");
    if (!st->zs_ready) {
        ms_dec_mem_init(&st->zmem, ALLOC(r), r->opt.max_decompress_bytes);
        if (ms_dec_inflate_init(&st->zs, &st->zmem, MAX_WBITS) < 0)
            return ms_fail_as(&r->err,
                              st->zmem.refused ? MS_ERR_LIMIT
                                               : MS_ERR_NO_MEMORY,
                              MS_LIMIT_MAX_DECOMPRESS_BYTES, st->rec_off,
                              "COMPRESS_PAGE: inflate state "
                              "(max_decompress_bytes %llu)",
                              (unsigned long long)st->zmem.limit);
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

/* A record kind that is not a page: MEM_SIZE opens the block list, EOS
 * and MULTIFD_FLUSH are markers.  Returns MS_GO_ON / MS_NEXT_EVENT /
 * MS_NEXT_ERROR, or RECORD_IS_PAGE for a page record to read on. */
#define RECORD_IS_PAGE 0x100
static int read_record_kind(ms_reader *r, ms_event *ev, uint32_t kinds)
{
    q_state *st = QST(r);
    if (st->cap_mapped_ram && kinds != MS_RAM_MEM_SIZE && kinds != MS_RAM_EOS)
        return MS_FAIL(r, MS_ERR_RAM, st->rec_off,
                       "RAM record flags 0x%x in a mapped-ram stream, whose "
                       "pages are in the file: only the block list and EOS "
                       "may be in the stream",
                       st->ram_rec.flags);
    if (kinds == MS_RAM_MEM_SIZE) {
        if (st->cur_type != MS_QSEC_START)
            return MS_FAIL(r, MS_ERR_RAM, st->rec_off,
                           "block list (MEM_SIZE) outside a START section");
        st->mem_total = st->ram_rec.addr;
        st->mem_sum = 0;
        st->nblocks = 0;
        ms_q_ram_free(r); /* the bitmaps of the previous list's blocks */
        st->step = st->mem_total ? RS_BLOCK : RS_RECORD;
        return MS_GO_ON;
    }
    if (kinds == MS_RAM_EOS || kinds == MS_RAM_MULTIFD_FLUSH) {
        ram_event(st, ev, MS_EV_RAM_MARKER, kinds);
        ev->length = 8;
        if (kinds == MS_RAM_MULTIFD_FLUSH)
            st->seen_flush = 1;
        if (kinds == MS_RAM_MULTIFD_FLUSH || !st->seen_flush)
            st->epoch++;
        /* QEMU writes markers as the bare flag: address bits set are
         * damage its loader would not notice */
        if (st->ram_rec.addr)
            return MS_FAIL(r, MS_ERR_RAM, st->rec_off,
                           "%s marker with address bits 0x%llx (QEMU writes "
                           "0)",
                           kinds == MS_RAM_EOS ? "EOS" : "MULTIFD_FLUSH",
                           (unsigned long long)st->ram_rec.addr);
        if (kinds == MS_RAM_EOS)
            st->stage = st->preempt ? QS_DONE : QS_FOOTER;
        return MS_NEXT_EVENT;
    }
    if (kinds == MS_RAM_HOOK)
        return MS_FAIL(r, MS_ERR_RAM, st->rec_off,
                       "RAM_SAVE_FLAG_HOOK: RDMA streams are not supported");
    if (kinds == MS_RAM_XBZRLE &&
        (st->postcopy_state >= QP_LISTENING || st->preempt))
        return MS_FAIL(r, MS_ERR_RAM, st->rec_off,
                       "XBZRLE page while postcopy runs: QEMU's postcopy "
                       "loader does not take XBZRLE");
    return RECORD_IS_PAGE;
}

/* RS_RECORD: be64 page offset | flags. */
static int read_record(ms_reader *r, ms_event *ev)
{
    q_state *st = QST(r);
    const uint8_t *p;
    st->rec_off = ms_rd_unit_offset(r);
    MS_TAKE_OR_RETURN(r, 8, &p);
    uint64_t v = ms_be64(p), mask = st->page_size - 1;
    uint32_t flags = (uint32_t)(v & mask);
    st->ram_rec.addr = v & ~mask;
    st->ram_rec.flags = flags;
    uint32_t kinds = flags & ~RAM_CONTINUE;
    if ((flags & ~RAM_KNOWN) || (kinds & (kinds - 1)) || !kinds ||
        ((flags & RAM_CONTINUE) && !(kinds & RAM_PAGE_KINDS)))
        return MS_FAIL(r, MS_ERR_RAM, st->rec_off,
                       "RAM record flags 0x%x are not a known combination",
                       flags);
    int k = read_record_kind(r, ev, kinds);
    if (k != RECORD_IS_PAGE)
        return k;
    if (flags & RAM_CONTINUE) {
        if (st->cur_block < 0)
            return MS_FAIL(r, MS_ERR_RAM, st->rec_off,
                           "CONTINUE page with no current RAM block");
        st->step = RS_PAGE_CHECK;
    } else {
        st->step = RS_NAME;
    }
    return MS_GO_ON;
}

/* RS_PAGE_BODY: what follows the header of a page record. */
static int read_page_body(ms_reader *r, ms_event *ev)
{
    q_state *st = QST(r);
    const uint8_t *p;
    uint32_t kind = st->ram_rec.flags & ~RAM_CONTINUE;
    size_t want = kind == MS_RAM_ZERO     ? 1
                  : kind == MS_RAM_PAGE   ? st->page_size
                  : kind == MS_RAM_XBZRLE ? 3
                                          : 4; /* COMPRESS_PAGE len */
    MS_TAKE_OR_RETURN(r, want, &p);
    ram_event(st, ev, MS_EV_RAM_PAGE, kind);
    ev->u.ram.offset = st->ram_rec.addr;
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
        int xbzrle = kind == MS_RAM_XBZRLE;
        uint64_t len_at = ms_rd_pos(r) - (xbzrle ? 2 : 4);
        uint32_t len = xbzrle ? ms_be16(p + 1) : ms_be32(p);
        st->ram_rec.data_len = len;
        if (xbzrle && p[0] != 1)
            return MS_FAIL(r, MS_ERR_RAM, ms_rd_pos(r) - 3,
                           "XBZRLE encoding byte 0x%02x, must be 0x01", p[0]);
        /* a delta's length by xbzrle.c's rule: never more than a page */
        const char *why =
            xbzrle ? ms_xbzrle_length_rule(len, st->page_size) : NULL;
        if (why)
            return MS_FAIL(r, MS_ERR_RAM, len_at,
                           "XBZRLE delta of %u bytes: %s (page size %u)", len,
                           why, st->page_size);
        if (!xbzrle && (len == 0 || len > compressBound(st->page_size)))
            return MS_FAIL(r, MS_ERR_RAM, len_at,
                           "COMPRESS_PAGE length %u (page size %u)", len,
                           st->page_size);
        st->step = RS_PAGE_DATA;
        return MS_GO_ON;
    }
    ev->length = ms_rd_pos(r) - st->rec_off;
    st->step = RS_RECORD;
    return MS_NEXT_EVENT;
}

/* RS_PAGE_DATA: the XBZRLE delta or the COMPRESS_PAGE zlib bytes. */
static int read_page_data(ms_reader *r, ms_event *ev)
{
    q_state *st = QST(r);
    const uint8_t *p;
    uint32_t kind = st->ram_rec.flags & ~RAM_CONTINUE;
    MS_TAKE_OR_RETURN(r, st->ram_rec.data_len, &p);
    ram_event(st, ev, MS_EV_RAM_PAGE, kind);
    ev->u.ram.offset = st->ram_rec.addr;
    if (kind == MS_RAM_COMPRESS_PAGE) {
        if (inflate_page(r, p, st->ram_rec.data_len) < 0)
            return MS_NEXT_ERROR;
        ev->u.ram.data = st->page_buf;
        ev->u.ram.size = st->page_size;
    } else {
        /* QEMU's loader decodes the delta into the page; a delta it would
         * reject is an error here (xbzrle.c holds the rules). */
        size_t bad, len = st->ram_rec.data_len;
        const char *why = ms_xbzrle_check(p, len, st->page_size, &bad);
        if (why)
            return MS_FAIL(r, MS_ERR_RAM, ms_rd_pos(r) - len + bad,
                           "XBZRLE delta: %s (page size %u)", why,
                           st->page_size);
        ev->u.ram.data = p;
        ev->u.ram.size = st->ram_rec.data_len;
        ev->u.ram.zero_copy = ms_rd_in_input(r, p);
    }
    ev->length = ms_rd_pos(r) - st->rec_off;
    st->step = RS_RECORD;
    return MS_NEXT_EVENT;
}

int ms_q_read_ram(ms_reader *r, ms_event *ev)
{
    q_state *st = QST(r);
    int t;
    if (st->step >= RS_BLOCK)
        return read_ram_block(r, ev);
    switch (st->step) {
    case RS_RECORD: return read_record(r, ev);
    case RS_NAME:
    case RS_NAME_BYTES: {
        if ((t = ms_q_take_counted(r, RS_NAME, "RAM block name")) <= 0)
            return t < 0 ? MS_NEXT_ERROR : MS_NEXT_INPUT;
        int idx;
        if (!block_named(st, st->name, &idx) &&
            (!st->preempt || (idx = ms_q_preempt_block(r)) < 0))
            return st->preempt ? MS_NEXT_ERROR
                               : MS_FAIL(r, MS_ERR_RAM, st->rec_off + 8,
                                         "page for unknown RAM block \"%s\"",
                                         st->name);
        st->cur_block = idx;
        st->step = RS_PAGE_CHECK;
    }
        /* fallthrough */
    case RS_PAGE_CHECK: {
        q_block *b = &st->blocks[st->cur_block];
        if (st->ram_rec.addr > b->used_length ||
            b->used_length - st->ram_rec.addr < st->page_size)
            return MS_FAIL(r, MS_ERR_RAM, st->rec_off,
                           "page at 0x%llx outside RAM block \"%s\" (0x%llx "
                           "bytes)",
                           (unsigned long long)st->ram_rec.addr, b->name,
                           (unsigned long long)b->used_length);
        if (place_page(r) < 0)
            return MS_NEXT_ERROR;
        st->step = RS_PAGE_BODY;
    }
        /* fallthrough */
    case RS_PAGE_BODY: return read_page_body(r, ev);
    case RS_PAGE_DATA: return read_page_data(r, ev);
    }
    return MS_FAIL(r, MS_ERR_USAGE, ms_rd_pos(r), "internal: ram step");
}
