/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* QEMU main stream: "dirty-bitmap" sections (block dirty bitmaps migrated
 * with the dirty-bitmaps capability; migration/block-dirty-bitmap.c,
 * version 1, unchanged from QEMU 7.2 to 10.x).  Facts: spec/qemu-main.md,
 * "Block dirty bitmaps".
 *
 * A section payload is a list of records, the last one EOS:
 *
 *   record := flags [u8 len, node alias] [u8 len, bitmap alias] body
 *   flags  := u8 f            (f & 0x80: one more byte follows)
 *           | u8 f, u8 g      (g & 0x80: two more bytes follow)
 *           | u8 f, u8 g, be16 h
 *   body   := EOS                       -> section footer
 *           | START:    be32 granularity, u8 bitmap flags
 *           | COMPLETE: (nothing)
 *           | BITS:     be64 first sector, be32 sector count,
 *                       [be64 n, n bytes of bits]   unless ZEROES
 *
 *   step 0..2  flags (1, 2 or 4 bytes)      -> check the combination
 *   step 4..5  node alias    (DEVICE_NAME)
 *   step 6..7  bitmap alias  (BITMAP_NAME)
 *   step 8     resolve the bitmap, dispatch on the record kind
 *   step 9     START body  -> event
 *   step 10    BITS body   -> event (BITS), then
 *   step 11    the buffer, streamed as views (BUFFER events)
 *
 * QEMU's loader keeps its flags in one byte, so of a 2- or 4-byte flags
 * field only the last byte counts; QEMU itself only writes one byte. */
#include "qemu_impl.h"

#define DBM_EOS 0x01u
#define DBM_ZEROES 0x02u
#define DBM_BITMAP_NAME 0x04u
#define DBM_DEVICE_NAME 0x08u
#define DBM_START 0x10u
#define DBM_COMPLETE 0x20u
#define DBM_BITS 0x40u
#define DBM_EXTRA_FLAGS 0x80u
#define DBM_NAMES (DBM_DEVICE_NAME | DBM_BITMAP_NAME)

#define DBM_START_ENABLED 0x01u
#define DBM_START_PERSISTENT 0x02u
#define DBM_START_RESERVED 0xf8u /* 0x04, once "autoload", is ignored */

#define DBM_SECTOR_BITS 9
#define DBM_MAX_BUFFER (10u * 1024) /* QEMU's loader refuses larger buffers */
#define DBM_MIN_GRANULARITY 512u

void ms_q_dirty_bitmap_free(ms_reader *r)
{
    q_state *st = QST(r);
    ms_free(ALLOC(r), st->dbm.bitmaps);
    st->dbm.bitmaps = NULL;
}

static void dbm_event(q_state *st, ms_event *ev, ms_dbm_record record,
                      uint64_t pos)
{
    q_dbm *d = &st->dbm;
    memset(&ev->u.dbm, 0, sizeof ev->u.dbm);
    ev->kind = MS_EV_DIRTY_BITMAP;
    ev->offset = st->rec_off;
    ev->length = pos - st->rec_off;
    ev->u.dbm.record = record;
    ev->u.dbm.flags = d->flags;
    ev->u.dbm.flags_size = d->flags_size;
    if (record != MS_DBM_EOS) {
        ev->u.dbm.node = d->node;
        ev->u.dbm.bitmap = d->bitmap;
    }
}

/* The record kinds QEMU writes: EOS alone; START, COMPLETE, BITS or
 * BITS|ZEROES, each with or without the names.  NULL when `f` is one. */
static const char *bad_combination(uint32_t f)
{
    uint32_t kind = f & ~DBM_NAMES;
    if (f & DBM_EXTRA_FLAGS)
        return "the flags byte QEMU applies has bit 0x80 set";
    if (f == DBM_EOS)
        return NULL;
    if (f & DBM_EOS)
        return "EOS combined with other flags";
    if (kind == DBM_START || kind == DBM_COMPLETE || kind == DBM_BITS ||
        kind == (DBM_BITS | DBM_ZEROES))
        return NULL;
    if (kind == 0)
        return "no record kind (START, COMPLETE, BITS or EOS)";
    return "not a combination QEMU writes";
}

static q_dbm_bitmap *find_bitmap(q_dbm *d)
{
    for (size_t i = 0; i < d->nbitmaps; i++)
        if (strcmp(d->bitmaps[i].node, d->node) == 0 &&
            strcmp(d->bitmaps[i].bitmap, d->bitmap) == 0) {
            d->cur = i + 1;
            return &d->bitmaps[i];
        }
    d->cur = 0;
    return NULL;
}

/* Steps 0..3: the flags field; returns MS_GO_ON once checked. */
static int read_flags(ms_reader *r)
{
    q_state *st = QST(r);
    q_dbm *d = &st->dbm;
    const uint8_t *p;
    switch (st->step) {
    case 0:
        st->rec_off = ms_rd_unit_offset(r);
        MS_TAKE_OR_RETURN(r, 1, &p);
        d->flags = p[0];
        d->flags_size = 1;
        st->step = p[0] & DBM_EXTRA_FLAGS ? 1 : 3;
        return MS_GO_ON;
    case 1:
        MS_TAKE_OR_RETURN(r, 1, &p);
        d->flags = p[0];
        d->flags_size = 2;
        st->step = p[0] & DBM_EXTRA_FLAGS ? 2 : 3;
        return MS_GO_ON;
    case 2:
        MS_TAKE_OR_RETURN(r, 2, &p);
        d->flags = p[1]; /* QEMU's 8-bit variable keeps the last byte */
        d->flags_size = 4;
        st->step = 3;
        return MS_GO_ON;
    }
    const char *why = bad_combination(d->flags);
    if (why)
        return MS_FAIL(r, MS_ERR_BAD_FIELD, st->rec_off,
                       "dirty-bitmap record flags 0x%02x: %s", d->flags, why);
    st->step = d->flags & DBM_DEVICE_NAME ? 4 : 6;
    return MS_GO_ON;
}

/* Steps 4..7: the names the record carries. */
static int read_names(ms_reader *r)
{
    q_state *st = QST(r);
    q_dbm *d = &st->dbm;
    int t;
    if (st->step == 4 || st->step == 5) {
        if ((t = ms_q_take_counted(r, 4, "dirty-bitmap node alias")) <= 0)
            return t < 0 ? MS_NEXT_ERROR : MS_NEXT_INPUT;
        memcpy(d->node, st->name, sizeof d->node);
        d->cur = 0;
        if (!(d->flags & DBM_BITMAP_NAME))
            /* QEMU's writer names the bitmap whenever the node changes; its
             * loader would keep the previous node's bitmap. */
            return MS_FAIL(r, MS_ERR_BAD_FIELD, st->rec_off,
                           "dirty-bitmap record names node \"%s\" but no "
                           "bitmap",
                           d->node);
        st->step = 6;
    }
    if (d->flags & DBM_BITMAP_NAME) {
        if ((t = ms_q_take_counted(r, 6, "dirty-bitmap bitmap alias")) <= 0)
            return t < 0 ? MS_NEXT_ERROR : MS_NEXT_INPUT;
        memcpy(d->bitmap, st->name, sizeof d->bitmap);
        d->cur = 0;
    }
    st->step = 8;
    return MS_GO_ON;
}

/* Step 8: which bitmap the record is for, and what its kind requires. */
static int dispatch(ms_reader *r, ms_event *ev)
{
    q_state *st = QST(r);
    q_dbm *d = &st->dbm;
    uint32_t kind = d->flags & ~DBM_NAMES;
    if (d->flags == DBM_EOS) {
        dbm_event(st, ev, MS_DBM_EOS, ms_rd_pos(r));
        st->stage = QS_FOOTER;
        st->step = 0;
        return MS_NEXT_EVENT;
    }
    if (!d->node[0] || !d->bitmap[0])
        return MS_FAIL(r, MS_ERR_BAD_FIELD, st->rec_off,
                       "dirty-bitmap record before any node and bitmap "
                       "name");
    q_dbm_bitmap *b = d->cur ? &d->bitmaps[d->cur - 1] : find_bitmap(d);
    if (kind == DBM_START) {
        if (b)
            return MS_FAIL(r, MS_ERR_BAD_FIELD, st->rec_off,
                           "dirty bitmap \"%s\" of node \"%s\" started twice",
                           d->bitmap, d->node);
        st->step = 9;
        return MS_GO_ON;
    }
    if (!b)
        return MS_FAIL(r, MS_ERR_BAD_FIELD, st->rec_off,
                       "dirty bitmap \"%s\" of node \"%s\" was not started",
                       d->bitmap, d->node);
    if (b->completed)
        return MS_FAIL(r, MS_ERR_BAD_FIELD, st->rec_off,
                       "dirty bitmap \"%s\" of node \"%s\": record after "
                       "its COMPLETE",
                       d->bitmap, d->node);
    if (kind == DBM_COMPLETE) {
        b->completed = 1;
        dbm_event(st, ev, MS_DBM_COMPLETE, ms_rd_pos(r));
        st->step = 0;
        return MS_NEXT_EVENT;
    }
    st->step = 10;
    return MS_GO_ON;
}

/* Step 9: START's granularity and bitmap flags; the bitmap is recorded. */
static int read_start(ms_reader *r, ms_event *ev)
{
    q_state *st = QST(r);
    q_dbm *d = &st->dbm;
    const uint8_t *p;
    MS_TAKE_OR_RETURN(r, 5, &p);
    uint64_t at = ms_rd_pos(r) - 5;
    uint32_t gran = ms_be32(p);
    /* QEMU asserts a power of two of at least one sector when it creates
     * the bitmap: a stream with anything else would abort it. */
    if (gran < DBM_MIN_GRANULARITY || (gran & (gran - 1)))
        return MS_FAIL(r, MS_ERR_BAD_FIELD, at,
                       "dirty bitmap \"%s\": granularity %u is not a power "
                       "of two of at least 512",
                       d->bitmap, gran);
    if (p[4] & DBM_START_RESERVED)
        return MS_FAIL(r, MS_ERR_BAD_FIELD, at + 4,
                       "dirty bitmap \"%s\": reserved bitmap flags 0x%02x",
                       d->bitmap, p[4]);
    if (d->nbitmaps >= r->opt.max_devices)
        return MS_FAIL_LIMIT(r, MS_LIMIT_MAX_DEVICES, st->rec_off,
                             "more than max_devices (%u) dirty bitmaps",
                             r->opt.max_devices);
    if (ms_grow(ALLOC(r), (void **)&d->bitmaps, sizeof *d->bitmaps, &d->cap,
                d->nbitmaps + 1) < 0)
        return MS_FAIL(r, MS_ERR_NO_MEMORY, st->rec_off, "dirty bitmap table");
    q_dbm_bitmap *b = &d->bitmaps[d->nbitmaps++];
    memset(b, 0, sizeof *b);
    memcpy(b->node, d->node, sizeof b->node);
    memcpy(b->bitmap, d->bitmap, sizeof b->bitmap);
    b->granularity = gran;
    d->cur = d->nbitmaps;
    dbm_event(st, ev, MS_DBM_START, ms_rd_pos(r));
    ev->u.dbm.granularity = gran;
    ev->u.dbm.bitmap_flags = p[4];
    st->step = 0;
    return MS_NEXT_EVENT;
}

/* Step 10: BITS's range, and its buffer size unless ZEROES. */
static int read_bits(ms_reader *r, ms_event *ev)
{
    q_state *st = QST(r);
    q_dbm *d = &st->dbm;
    const uint8_t *p;
    int zeroes = (d->flags & DBM_ZEROES) != 0;
    size_t want = zeroes ? 12 : 20;
    MS_TAKE_OR_RETURN(r, want, &p);
    uint64_t at = ms_rd_pos(r) - want;
    uint64_t first = ms_be64(p);
    uint32_t count = ms_be32(p + 8);
    const q_dbm_bitmap *b = &d->bitmaps[d->cur - 1];
    /* QEMU shifts both by 9 bits into byte offsets */
    if (first >> (64 - DBM_SECTOR_BITS) ||
        count > (UINT64_MAX >> DBM_SECTOR_BITS) - first)
        return MS_FAIL(r, MS_ERR_BAD_FIELD, at,
                       "dirty bitmap \"%s\": sectors %llu + %u overflow a "
                       "64-bit byte offset",
                       d->bitmap, (unsigned long long)first, count);
    dbm_event(st, ev, MS_DBM_BITS, ms_rd_pos(r));
    ev->u.dbm.first_sector = first;
    ev->u.dbm.nr_sectors = count;
    ev->u.dbm.zeroes = zeroes;
    st->step = 0;
    if (zeroes)
        return MS_NEXT_EVENT;
    uint64_t n = ms_be64(p + 12);
    /* at least one bit per granule of the range (QEMU's own bound rounds
     * this up to whole host longs, which a stream cannot tell) */
    uint64_t granules =
        (((uint64_t)count << DBM_SECTOR_BITS) + b->granularity - 1) /
        b->granularity;
    if (n > DBM_MAX_BUFFER)
        return MS_FAIL(r, MS_ERR_BAD_FIELD, at + 12,
                       "dirty bitmap \"%s\": buffer of %llu bytes (QEMU "
                       "accepts at most %u)",
                       d->bitmap, (unsigned long long)n, DBM_MAX_BUFFER);
    if (n < (granules + 7) / 8)
        return MS_FAIL(r, MS_ERR_BAD_FIELD, at + 12,
                       "dirty bitmap \"%s\": buffer of %llu bytes for %llu "
                       "bits",
                       d->bitmap, (unsigned long long)n,
                       (unsigned long long)granules);
    ev->u.dbm.buf_size = n;
    d->buf_size = n;
    d->buf_done = 0;
    st->step = n ? 11 : 0;
    return MS_NEXT_EVENT;
}

/* Step 11: the buffer, handed out as views of the input. */
static int read_buffer(ms_reader *r, ms_event *ev)
{
    q_state *st = QST(r);
    q_dbm *d = &st->dbm;
    const uint8_t *p;
    size_t n = ms_rd_peek(r, d->buf_size - d->buf_done, &p);
    if (n == 0)
        return MS_NEXT_INPUT;
    dbm_event(st, ev, MS_DBM_BUFFER, ms_rd_pos(r));
    ev->offset = ms_rd_pos(r);
    ev->length = n;
    ev->u.dbm.data = p;
    ev->u.dbm.size = n;
    ev->u.dbm.buf_offset = d->buf_done;
    ev->u.dbm.buf_size = d->buf_size;
    ms_rd_skip(r, n);
    d->buf_done += n;
    if (d->buf_done == d->buf_size)
        st->step = 0;
    return MS_NEXT_EVENT;
}

int ms_q_read_dirty_bitmap(ms_reader *r, ms_event *ev)
{
    q_state *st = QST(r);
    switch (st->step) {
    case 0:
    case 1:
    case 2:
    case 3:
        return read_flags(r);
    case 4:
    case 5:
    case 6:
    case 7:
        return read_names(r);
    case 8:
        return dispatch(r, ev);
    case 9:
        return read_start(r, ev);
    case 10:
        return read_bits(r, ev);
    case 11:
        return read_buffer(r, ev);
    }
    return MS_FAIL(r, MS_ERR_USAGE, ms_rd_pos(r),
                   "internal: dirty-bitmap step");
}
