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
 * Steps of QS_DIRTY_BITMAP (st->step, enum dbm_step):
 *
 *   FLAGS [-> FLAGS_2 [-> FLAGS_4]] -> FLAGS_CHECK (the combination)
 *     -> [NODE, NODE_BYTES] (DEVICE_NAME) -> [BITMAP, BITMAP_BYTES]
 *        (BITMAP_NAME) -> DISPATCH (resolve the bitmap, by record kind):
 *          EOS      -> event, the section's FOOTER stage
 *          COMPLETE -> event -> FLAGS
 *          START    -> START (its body) -> event -> FLAGS
 *          BITS     -> BITS (its body) -> event -> FLAGS (ZEROES or an
 *                      empty buffer) or BUFFER (views, BUFFER events)
 *                      -> FLAGS
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

/* Steps of QS_DIRTY_BITMAP (st->step); see the diagram above. */
enum dbm_step {
    DB_FLAGS = Q_STEP_FIRST, /* the first flags byte (a record starts) */
    DB_FLAGS_2,              /* the second one, after bit 0x80 */
    DB_FLAGS_4,              /* two more, after a second 0x80 */
    DB_FLAGS_CHECK,          /* the combination (reads no bytes) */
    DB_NODE,                 /* counted node alias: DB_NODE and +1 */
    DB_NODE_BYTES,           /* its bytes */
    DB_BITMAP,               /* counted bitmap alias: DB_BITMAP and +1 */
    DB_BITMAP_BYTES,         /* its bytes */
    DB_DISPATCH,             /* resolve the bitmap (reads no bytes) */
    DB_START,                /* START: be32 granularity, u8 flags */
    DB_BITS,                 /* BITS: be64 first, be32 count[, be64 n] */
    DB_BUFFER                /* BITS: the n buffer bytes, as views */
};

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

/* DB_FLAGS .. DB_FLAGS_CHECK: the flags field; MS_GO_ON once checked. */
static int read_flags(ms_reader *r)
{
    q_state *st = QST(r);
    q_dbm *d = &st->dbm;
    const uint8_t *p;
    switch (st->step) {
    case DB_FLAGS:
        st->rec_off = ms_rd_unit_offset(r);
        MS_TAKE_OR_RETURN(r, 1, &p);
        d->flags = p[0];
        d->flags_size = 1;
        st->step = p[0] & DBM_EXTRA_FLAGS ? DB_FLAGS_2 : DB_FLAGS_CHECK;
        return MS_GO_ON;
    case DB_FLAGS_2:
        MS_TAKE_OR_RETURN(r, 1, &p);
        d->flags = p[0];
        d->flags_size = 2;
        st->step = p[0] & DBM_EXTRA_FLAGS ? DB_FLAGS_4 : DB_FLAGS_CHECK;
        return MS_GO_ON;
    case DB_FLAGS_4:
        MS_TAKE_OR_RETURN(r, 2, &p);
        d->flags = p[1]; /* QEMU's 8-bit variable keeps the last byte */
        d->flags_size = 4;
        st->step = DB_FLAGS_CHECK;
        return MS_GO_ON;
    }
    const char *why = bad_combination(d->flags);
    if (why)
        return MS_FAIL(r, MS_ERR_BAD_FIELD, st->rec_off,
                       "dirty-bitmap record flags 0x%02x: %s", d->flags, why);
    st->step = d->flags & DBM_DEVICE_NAME ? DB_NODE : DB_BITMAP;
    return MS_GO_ON;
}

/* DB_NODE .. DB_BITMAP_BYTES: the names the record carries. */
static int read_names(ms_reader *r)
{
    q_state *st = QST(r);
    q_dbm *d = &st->dbm;
    int t;
    if (st->step == DB_NODE || st->step == DB_NODE_BYTES) {
        if ((t = ms_q_take_counted(r, DB_NODE, "dirty-bitmap node alias")) <= 0)
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
        st->step = DB_BITMAP;
    }
    if (d->flags & DBM_BITMAP_NAME) {
        if ((t = ms_q_take_counted(r, DB_BITMAP, "dirty-bitmap bitmap alias")) <= 0)
            return t < 0 ? MS_NEXT_ERROR : MS_NEXT_INPUT;
        memcpy(d->bitmap, st->name, sizeof d->bitmap);
        d->cur = 0;
    }
    st->step = DB_DISPATCH;
    return MS_GO_ON;
}

/* DB_DISPATCH: which bitmap the record is for, and what its kind requires. */
static int dispatch(ms_reader *r, ms_event *ev)
{
    q_state *st = QST(r);
    q_dbm *d = &st->dbm;
    uint32_t kind = d->flags & ~DBM_NAMES;
    if (d->flags == DBM_EOS) {
        dbm_event(st, ev, MS_DBM_EOS, ms_rd_pos(r));
        st->stage = QS_FOOTER;
        st->step = Q_STEP_FIRST;
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
        st->step = DB_START;
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
        st->step = DB_FLAGS;
        return MS_NEXT_EVENT;
    }
    st->step = DB_BITS;
    return MS_GO_ON;
}

/* DB_START: START's granularity and bitmap flags; the bitmap is recorded. */
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
    st->step = DB_FLAGS;
    return MS_NEXT_EVENT;
}

/* DB_BITS: BITS's range, and its buffer size unless ZEROES. */
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
    st->step = DB_FLAGS;
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
    st->step = n ? DB_BUFFER : DB_FLAGS;
    return MS_NEXT_EVENT;
}

/* DB_BUFFER: the buffer, handed out as views of the input. */
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
        st->step = DB_FLAGS;
    return MS_NEXT_EVENT;
}

/* QS_DIRTY_BITMAP: one record after the other, step by step. */
int ms_q_read_dirty_bitmap(ms_reader *r, ms_event *ev)
{
    q_state *st = QST(r);
    switch (st->step) {
    case DB_FLAGS:
    case DB_FLAGS_2:
    case DB_FLAGS_4:
    case DB_FLAGS_CHECK: return read_flags(r);
    case DB_NODE:
    case DB_NODE_BYTES:
    case DB_BITMAP:
    case DB_BITMAP_BYTES: return read_names(r);
    case DB_DISPATCH: return dispatch(r, ev);
    case DB_START: return read_start(r, ev);
    case DB_BITS: return read_bits(r, ev);
    case DB_BUFFER: return read_buffer(r, ev);
    }
    return MS_FAIL(r, MS_ERR_USAGE, ms_rd_pos(r),
                   "internal: dirty-bitmap step");
}
