/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* QEMU salvage: the unit tests of the resynchronising scans
 * (spec/salvage.md, section 3).  A multifd packet header carries no check
 * value: a window passes on its fixed fields (8 bytes) and its flags, so a
 * page whose bytes happen to hold them is taken for a header (section 3
 * gives the odds). */
#include "qemu_salvage.h"

#include <stdio.h>

#include "qemu_impl.h"
#include "xbzrle.h"

int qemu_multifd_header_plausible(const void *ctx, const uint8_t *w,
                                  uint64_t *seed)
{
    (void)ctx;
    *seed = 0;
    if (ms_be32(w) != MULTIFD_MAGIC || ms_be32(w + 4) != MULTIFD_VERSION)
        return 0;
    uint32_t flags = ms_be32(w + 8);
    uint32_t comp = flags & MULTIFD_FLAG_COMPRESSION;
    if ((flags & ~MULTIFD_FLAGS_KNOWN) || (comp & (comp - 1)))
        return 0;
    return !(flags & MULTIFD_FLAG_DEVICE_STATE) ||
           !(flags & (MULTIFD_FLAG_SYNC | MULTIFD_FLAG_COMPRESSION));
}

/* ---- QEMU main stream (spec/salvage.md section 5b) ------------------------
 *
 *   a record fails --> ms_q_salvage: range from the failed unit's first
 *        |            byte, cause kept, error cleared; which RAM section and
 *        v            block RAM records may resume in
 *   RESYNC: keep up to 2 x lookahead bytes in the stash; test each position:
 *        |   footer(known id) + section header / EOF + trailer start
 *        |   | section header / EOF at bare_at (after a damaged footer)
 *        |   | QEMU_SALVAGE_RAM_RECORDS chained RAM records (or up to EOS
 *        |   |   + the RAM section's footer)
 *        v   a position needing more bytes than the lookahead is refused
 *   MS_EV_DAMAGE [from, candidate) --> TOP (at the section header) or RAM
 *                                       (at the record)
 */

/* A candidate's verdict. */
enum { CAND_NO = 0, CAND_FOUND = 1, CAND_MORE = 2 };

/* Bytes from p on that a candidate may look at: `n`; a test that needs
 * byte `at` and does not have it asks for more. */
#define NEED(n, at)                                                            \
    do {                                                                       \
        if ((size_t)(at) > (n))                                                \
            return CAND_MORE;                                                  \
    } while (0)

int ms_q_salvage_header_plausible(const uint8_t *idstr, size_t len,
                                  uint32_t instance, uint32_t version)
{
    /* QEMU's idstrs are printable ASCII ("0000:00:03.0/virtio-net");
     * instance ids and versions are small numbers */
    if (len == 0 || instance > 0xffff || version > 0xffff)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (idstr[i] < 0x20 || idstr[i] > 0x7e)
            return 0;
    return 1;
}

static const q_section *known_section(const q_state *st, uint32_t id)
{
    uint32_t i;
    return ms_u32map_get(&st->secmap, id, &i) ? &st->secs[i] : NULL;
}

static int is_record_type(uint8_t t)
{
    return t <= Q_FULL || t == Q_COMMAND;
}

/* A section header or EOF at h (n bytes): PART/END of a STARTed
 * section; START/FULL with a plausible idstr, instance and version (and
 * the registered ones if the id is known); EOF followed by the JSON
 * trailer's start. */
static int header_candidate(ms_reader *r, const uint8_t *h, size_t n)
{
    const q_state *st = QST(r);
    NEED(n, 1);
    if (h[0] == Q_EOF) {
        NEED(n, 7);
        uint32_t len = ms_be32(h + 2);
        return h[1] == Q_VMDESC && len >= 2 && len <= r->opt.max_vmdesc_bytes &&
               h[6] == '{';
    }
    if (h[0] < Q_START || h[0] > Q_FULL)
        return CAND_NO;
    NEED(n, 5);
    const q_section *s = known_section(st, ms_be32(h + 1));
    if (h[0] == Q_PART || h[0] == Q_END)
        return s && s->started && !s->ended;
    NEED(n, 6);
    size_t len = h[5];
    NEED(n, 6 + len + 8);
    uint32_t instance = ms_be32(h + 6 + len), version = ms_be32(h + 10 + len);
    if (!ms_q_salvage_header_plausible(h + 6, len, instance, version))
        return CAND_NO;
    if (s && (strlen(s->idstr) != len || memcmp(s->idstr, h + 6, len) ||
              s->instance_id != instance))
        return CAND_NO;
    return h[0] == Q_FULL || !s || !s->started;
}

/* A section boundary at p: a footer, then a header
 * (or, at bare_at, a header alone). */
static int section_candidate(ms_reader *r, const uint8_t *p, size_t n, int bare)
{
    if (bare)
        return header_candidate(r, p, n);
    NEED(n, Q_FOOTER_SIZE);
    /* any id: the section it ends may be the one whose header was lost */
    if (p[0] != Q_FOOTER)
        return CAND_NO;
    return header_candidate(r, p + Q_FOOTER_SIZE, n - Q_FOOTER_SIZE);
}

int ms_q_salvage_scan_footer(ms_reader *r)
{
    q_state *st = QST(r);
    uint32_t other = 0;
    for (uint64_t k = 4; k >= 1; k--)
        other = other << 8 | st->ring[(st->scanned - k) % 16];
    if (other == st->cur->id)
        return MS_GO_ON;
    /* look at the header after it: taken, tested, given back */
    size_t want = 7, most = 6 + 255 + 8;
    for (;;) {
        const uint8_t *p;
        int t = ms_rd_take_reserved(r, want, &p);
        if (t <= 0)
            return t < 0 ? MS_NEXT_ERROR : MS_NEXT_INPUT;
        int rc = header_candidate(r, p, want);
        ms_rd_untake(r);
        if (rc == CAND_NO)
            return MS_GO_ON;
        if (rc == CAND_FOUND)
            return MS_FAIL(r, MS_ERR_FOOTER, ms_rd_pos(r) - Q_FOOTER_SIZE,
                           "section %u (%.48s): the footer of section %u "
                           "and a section header come before its own footer",
                           st->cur->id, st->cur->idstr, other);
        if (want == most)
            return MS_GO_ON;
        want = MS_MIN(want + 8, most);
    }
}

/* The block named by the counted string at p (u8 length, name), -1. */
static int block_by_name(const q_state *st, const uint8_t *p)
{
    for (size_t i = 0; i < st->nblocks; i++)
        if (strlen(st->blocks[i].name) == p[0] &&
            memcmp(st->blocks[i].name, p + 1, p[0]) == 0)
            return (int)i;
    return -1;
}

/* The bytes after a page record's header: its size in *size, or 0 when
 * they break a rule. */
static int page_body(const q_state *st, uint32_t kind, const uint8_t *b,
                     size_t n, size_t *size)
{
    *size = 0;
    switch (kind) {
    case MS_RAM_ZERO:
        NEED(n, 1);
        *size = b[0] == 0;
        return b[0] == 0;
    case MS_RAM_PAGE:
        *size = st->page_size;
        return CAND_FOUND;
    case MS_RAM_XBZRLE: {
        NEED(n, 3);
        uint32_t len = ms_be16(b + 1);
        if (b[0] != 1 || ms_xbzrle_length_rule(len, st->page_size))
            return CAND_NO;
        *size = 3 + (size_t)len;
        return CAND_FOUND;
    }
    default: { /* COMPRESS_PAGE */
        NEED(n, 4);
        uint32_t len = ms_be32(b);
        if (len == 0 || len > compressBound(st->page_size))
            return CAND_NO;
        *size = 4 + (size_t)len;
        return CAND_FOUND;
    }
    }
}

/* One RAM record at p: CAND_FOUND with its size in *size (0: EOS and the
 * RAM section's footer end the chain there), *block the block it leaves
 * current. */
static int ram_record(ms_reader *r, const uint8_t *p, size_t n, int *block,
                      size_t *size)
{
    const q_state *st = QST(r);
    NEED(n, 8);
    uint64_t v = ms_be64(p), mask = st->page_size - 1;
    uint32_t flags = (uint32_t)(v & mask), kind = flags & ~RAM_CONTINUE;
    uint64_t addr = v & ~mask;
    if ((flags & ~RAM_KNOWN) || !kind || (kind & (kind - 1)) ||
        kind == MS_RAM_MEM_SIZE || kind == MS_RAM_HOOK ||
        ((flags & RAM_CONTINUE) && !(kind & RAM_PAGE_KINDS)))
        return CAND_NO;
    if (kind == MS_RAM_EOS || kind == MS_RAM_MULTIFD_FLUSH) {
        if (addr)
            return CAND_NO;
        *size = 8;
        if (kind == MS_RAM_MULTIFD_FLUSH)
            return CAND_FOUND;
        /* EOS: the RAM section's footer, then a record */
        NEED(n, 8 + Q_FOOTER_SIZE + 1);
        *size = 0;
        return p[8] == Q_FOOTER &&
               ms_be32(p + 9) == st->secs[st->salv.ram_sec - 1].id &&
               is_record_type(p[13]);
    }
    size_t at = 8;
    if (!(flags & RAM_CONTINUE)) {
        NEED(n, 9);
        NEED(n, 9 + (size_t)p[8]);
        if ((*block = block_by_name(st, p + 8)) < 0)
            return CAND_NO;
        at = 9 + (size_t)p[8];
    }
    if (*block < 0 || addr > st->blocks[*block].used_length ||
        st->blocks[*block].used_length - addr < st->page_size)
        return CAND_NO;
    size_t body;
    int rc = page_body(st, kind, p + at, n - at, &body);
    if (rc != CAND_FOUND)
        return rc;
    *size = at + body;
    return CAND_FOUND;
}

/* QEMU_SALVAGE_RAM_RECORDS RAM records chained from p (fewer when EOS and
 * the footer end the RAM section first). */
static int ram_candidate(ms_reader *r, const uint8_t *p, size_t n)
{
    q_salvage *s = &QST(r)->salv;
    int block = s->ram_block;
    size_t at = 0;
    for (int i = 0; i < QEMU_SALVAGE_RAM_RECORDS; i++) {
        size_t size;
        int rc = ram_record(r, p + at, n - at, &block, &size);
        if (rc != CAND_FOUND)
            return rc;
        if (i == 0)
            s->found_block = block;
        if (size == 0)
            break;
        at += size;
        if (i + 1 < QEMU_SALVAGE_RAM_RECORDS)
            NEED(n, at + 1); /* the next record must be there to test */
    }
    return CAND_FOUND;
}

/* Every kind of candidate at p (absolute offset `at`). */
static int candidate(ms_reader *r, const uint8_t *p, size_t n, uint64_t at)
{
    q_salvage *s = &QST(r)->salv;
    int more = 0;
    if (at == s->name_at) {
        /* a RAM record whose flags failed: if its block name survived,
         * the CONTINUE records after it belong to that block */
        NEED(n, 1);
        NEED(n, 1 + (size_t)p[0]);
        int block = block_by_name(QST(r), p);
        if (block >= 0)
            s->ram_block = block;
        s->name_at = UINT64_MAX;
    }
    int rc = section_candidate(r, p, n, 0);
    if (rc == CAND_FOUND) {
        s->found_ram = 0;
        s->found_skip = Q_FOOTER_SIZE; /* the footer is the damaged one's */
        return rc;
    }
    more |= rc == CAND_MORE;
    if (at == s->bare_at) {
        rc = section_candidate(r, p, n, 1);
        if (rc == CAND_FOUND) {
            s->found_ram = 0;
            s->found_skip = 0;
            s->bare_at = UINT64_MAX;
            return rc;
        }
        more |= rc == CAND_MORE;
    }
    if (s->ram_sec) {
        rc = ram_candidate(r, p, n);
        if (rc == CAND_FOUND) {
            s->found_ram = 1;
            s->found_skip = 0;
            return rc;
        }
        more |= rc == CAND_MORE;
    }
    return more ? CAND_MORE : CAND_NO;
}

/* The lookahead: QEMU_SALVAGE_RAM_RECORDS of the largest RAM records (a
 * named COMPRESS_PAGE) and what follows EOS; a section header and EOF
 * need less.  Checked against max_record_payload before the stash grows
 * to twice it. */
static int set_lookahead(ms_reader *r)
{
    q_state *st = QST(r);
    uint64_t rec = 8 + 256 + 4 + (uint64_t)compressBound(st->page_size);
    uint64_t need = QEMU_SALVAGE_RAM_RECORDS * rec + Q_FOOTER_SIZE + 1;
    if (2 * need > r->opt.max_record_payload)
        return MS_FAIL_LIMIT(r, MS_LIMIT_MAX_RECORD_PAYLOAD,
                             st->salv.range.from,
                             "salvage needs %llu bytes of lookahead; "
                             "max_record_payload is %llu",
                             (unsigned long long)(2 * need),
                             (unsigned long long)r->opt.max_record_payload);
    st->salv.lookahead = (size_t)need;
    return 0;
}

/* Where the failed unit began: the record (or RAM record, VMState field)
 * being read; a footer's first byte. */
static uint64_t failed_unit(const q_state *st, uint64_t now)
{
    if (st->stage == QS_FOOTER)
        return now >= Q_FOOTER_SIZE ? now - Q_FOOTER_SIZE : 0;
    if (st->stage == QS_SCAN) /* the payload walked so far */
        return now - st->scanned;
    if (st->stage == QS_SECTION_HEADER || st->stage == QS_TOP ||
        st->stage == QS_COMMAND || st->stage == QS_CONFIG)
        return st->rec_off;
    return st->rec_off > st->sec_off ? st->rec_off : st->sec_off;
}

/* The RAM section RAM records may resume in after damage at this point:
 * the current section if it is RAM, else the RAM section STARTed and not
 * ENDed (a RAM PART header may be among the damaged bytes); 0: none. */
static uint32_t ram_resume(const q_state *st)
{
    int in_section = st->stage != QS_TOP && st->stage != QS_COMMAND &&
                     st->stage != QS_SECTION_HEADER;
    if (in_section && st->cur && st->cur->kind != QK_RAM)
        return 0;
    for (size_t i = 0; i < st->nsecs; i++)
        if (st->secs[i].kind == QK_RAM && st->secs[i].started &&
            (!st->secs[i].ended || (in_section && st->cur == &st->secs[i])))
            return (uint32_t)i + 1;
    return 0;
}

int ms_q_salvage(ms_reader *r, ms_event *ev)
{
    q_state *st = QST(r);
    q_salvage *s = &st->salv;
    if (st->stage == QS_HEADER || st->stage == QS_CONFIG ||
        st->stage == QS_RESYNC || st->stage >= QS_AFTER_EOF || st->nest ||
        st->cap_mapped_ram || !ms_salvage_can(&r->err))
        return MS_NEXT_ERROR;
    if (st->stage == QS_VFIO_DATA || st->stage == QS_VFIO_CONFIG)
        return MS_NEXT_ERROR; /* VFIO device state: not salvaged */
    uint64_t now = ms_rd_pos(r), from = failed_unit(st, now);
    char what[sizeof s->range.detail];
    snprintf(what, sizeof what, "%s", r->err.detail);
    ms_salvage_take_error(r, &s->range, from, NULL, NULL);
    if (st->cur && st->stage != QS_TOP && st->stage != QS_SECTION_HEADER &&
        strncmp(what, "section ", 8) != 0)
        snprintf(s->range.detail, sizeof s->range.detail,
                 "section %u (%.48s): %.120s", st->cur->id, st->cur->idstr,
                 what);
    s->damaged = 1;
    s->ram_sec = ram_resume(st);
    s->ram_block = st->cur_block;
    s->bare_at =
        st->stage == QS_FOOTER || st->stage == QS_SCAN ? now : UINT64_MAX;
    s->name_at = s->ram_sec && st->stage == QS_RAM && st->step == 0
                     ? now /* RS_RECORD: after the record's be64 */
                     : UINT64_MAX;
    if (set_lookahead(r) < 0)
        return MS_NEXT_ERROR;
    st->stage = QS_RESYNC;
    st->step = Q_STEP_FIRST;
    return ms_run_stages(r, ev, r->ops->stages, &st->stage);
}

/* Keep up to 2 x lookahead bytes in the stash (compacted only when the
 * bytes to add do not fit behind it). */
static int top_up(ms_reader *r, size_t want)
{
    if (ms_rd_reserve(r, want) < 0)
        return -1;
    size_t k = ms_rd_stashed(r),
           add = MS_MIN(want - MS_MIN(k, want), ms_rd_avail(r));
    if (!add)
        return 0;
    if (r->stash_len + add > r->stash_cap) {
        memmove(r->stash, r->stash + r->stash_pos, k);
        r->stash_len = k;
        r->stash_pos = 0;
    }
    ms_rd_stash_input(r, add);
    return 0;
}

/* The candidate found: the range's event; decoding goes on there. */
static int resume(ms_reader *r, ms_event *ev)
{
    q_state *st = QST(r);
    q_salvage *s = &st->salv;
    s->range.to = ms_rd_pos(r);
    ms_salvage_event(&s->range, ev);
    st->step = Q_STEP_FIRST;
    if (!s->found_ram) {
        st->stage = QS_TOP;
        st->cur = NULL;
        return MS_NEXT_EVENT;
    }
    q_section *ram = &st->secs[s->ram_sec - 1];
    if (st->cur != ram) {
        st->cur = ram;
        st->cur_type = MS_QSEC_PART;
        st->sec_off = s->range.to;
    }
    st->cur_block = s->ram_block;
    st->stage = QS_RAM;
    return MS_NEXT_EVENT;
}

int ms_q_read_resync(ms_reader *r, ms_event *ev)
{
    q_salvage *s = &QST(r)->salv;
    for (;;) {
        if (top_up(r, 2 * s->lookahead) < 0)
            return MS_NEXT_ERROR;
        const uint8_t *p;
        size_t n = ms_rd_peek(r, SIZE_MAX, &p), i = 0;
        int rc = CAND_NO;
        for (; i < n; i++)
            if ((rc = candidate(r, p + i, n - i, ms_rd_pos(r) + i)) != CAND_NO)
                break;
        if (rc == CAND_FOUND)
            i += s->found_skip; /* within the n bytes: the test saw them */
        if (i)
            ms_rd_skip(r, i);
        if (rc == CAND_FOUND)
            return resume(r, ev);
        if (rc == CAND_MORE && n - i >= s->lookahead) {
            ms_rd_skip(r, 1); /* it would need more than the lookahead */
            continue;
        }
        if (ms_rd_avail(r) == 0)
            return MS_NEXT_INPUT;
    }
}
