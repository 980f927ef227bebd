/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* VFIO driver payloads (spec/payloads.md): choosing the driver framing,
 * carrier phases, detection from the first bytes, and the unframed kinds
 * (pds and raw), whose bytes are one image checked for its length only.
 *
 * Phases.  No driver labels initial / middle / final data in its bytes
 * (the reference, section 1): the phase of a byte comes from outside,
 * either from the carrier (ms_reader_set_phase: QEMU PART/END sections,
 * multifd, migstream images) or from ms_options.payload_final_offset (a
 * raw data-fd capture: bytes from that offset on were read in STOP_COPY).
 * ms_payload_phase_at answers for an offset:
 *   - the carrier's phase when it gave one (not NONE) that covers it;
 *   - else, with payload_final_offset: FINAL at or after it, INITIAL
 *     before it ("read before STOP_COPY": the driver's grammar refines
 *     INITIAL into initial / middle images);
 *   - else NONE.
 * Drivers ask at the first byte of a unit (record header, struct, packet)
 * as soon as that byte is pending, so the answer is the phase in force
 * when the byte was handed in.
 */
#include <stdio.h>


#include "payload_impl.h"

/* ---- carrier phases ------------------------------------------------------ */

/* The reader keeps the carrier's latest phase (r->phase for bytes from
 * r->phase_from on).  r->phase_set is 0 until the first call; after it,
 * 1 + the phase that was in force before r->phase_from, so that a unit
 * gathered across one phase change (a record header split between a PART
 * and an END section, a hisi struct whose first 40 bytes came in
 * PRE_COPY) still gets the phase of its first byte. */
void ms_reader_set_phase(ms_reader *r, ms_phase phase)
{
    if (r->err.code)
        return;
    if (r->opt.format != MS_FORMAT_PAYLOAD) {
        MS_FAIL(r, MS_ERR_USAGE, r->offset,
                "ms_reader_set_phase needs format MS_FORMAT_PAYLOAD");
        return;
    }
    if ((unsigned)phase > MS_PHASE_FINAL) {
        MS_FAIL(r, MS_ERR_USAGE, r->offset, "phase %d is not a phase",
                (int)phase);
        return;
    }
    if (r->phase_set && phase == r->phase)
        return; /* no change: keep the history */
    /* Bytes handed in so far: consumed (r->offset counts stashed bytes
     * too) plus what is left of the current slice. */
    uint64_t from = r->offset + ms_rd_avail(r);
    ms_phase before = r->phase_set ? r->phase : MS_PHASE_NONE;
    if (r->phase_set && from == r->phase_from) /* two calls, no bytes */
        before = (ms_phase)(r->phase_set - 1);
    r->phase_set = 1 + (int)before;
    r->phase = phase;
    r->phase_from = from;
}

ms_phase ms_payload_phase_at(const ms_reader *r, uint64_t offset)
{
    if (r->phase_set) {
        ms_phase p = offset >= r->phase_from ? r->phase
                                             : (ms_phase)(r->phase_set - 1);
        if (p != MS_PHASE_NONE)
            return p;
    }
    if (r->opt.payload_final_offset != UINT64_MAX)
        return offset >= r->opt.payload_final_offset ? MS_PHASE_FINAL
                                                     : MS_PHASE_INITIAL;
    return MS_PHASE_NONE;
}

/* ---- detection ------------------------------------------------------------- */

#define DETECT_MAX 28 /* every rule decides with this many bytes */

#define HISI_MAGIC_V1 0xCDCDCDCDFEEDAACCull
#define HISI_MAGIC_V2 0xAACCFEEDDECADEDEull
#define QAT_MAGIC 0xADF5CAEAu
#define XE_KLV_DEVID 0xF0010001u

enum { NO = 0, YES = 1, MORE = -1 };

/* Compare the bytes of [off, off+size) that are present with the little-
 * endian encoding of `value`: NO on a difference, YES when all are present
 * and equal, MORE when the present ones are equal but some are missing. */
static int le_is(const uint8_t *p, size_t len, size_t off, size_t size,
                 uint64_t value)
{
    for (size_t i = 0; i < size; i++) {
        if (off + i >= len)
            return MORE;
        if (p[off + i] != (uint8_t)(value >> (8 * i)))
            return NO;
    }
    return YES;
}

/* Several conditions that must all hold. */
static int all_of(const int *c, size_t n)
{
    int more = 0;
    for (size_t i = 0; i < n; i++) {
        if (c[i] == NO)
            return NO;
        if (c[i] == MORE)
            more = 1;
    }
    return more ? MORE : YES;
}

static int looks_qat(const uint8_t *p, size_t len)
{
    int c[] = {le_is(p, len, 0, 4, QAT_MAGIC), le_is(p, len, 8, 2, 16)};
    return all_of(c, 2);
}

static int looks_hisi(const uint8_t *p, size_t len)
{
    /* The magic decides; the length (40 or 176) is the decoder's check. */
    int v1 = le_is(p, len, 0, 8, HISI_MAGIC_V1);
    int v2 = le_is(p, len, 0, 8, HISI_MAGIC_V2);
    if (v1 == YES || v2 == YES)
        return YES;
    return v1 == MORE || v2 == MORE ? MORE : NO;
}

static int looks_xe(const uint8_t *p, size_t len)
{
    int c[] = {le_is(p, len, 0, 1, 1), le_is(p, len, 1, 1, 1),
               le_is(p, len, 24, 4, XE_KLV_DEVID)};
    return all_of(c, 3);
}

static int looks_mlx5(const uint8_t *p, size_t len)
{
    int c[] = {le_is(p, len, 0, 8, 8), le_is(p, len, 12, 4, 1)};
    return all_of(c, 2);
}

static int looks_virtio(const uint8_t *p, size_t len)
{
    /* record_size 16 .. 2^32-1, tag DEVICE_DATA, a common part type */
    int size_lo = len < 4 ? MORE : ms_le32(p) >= 16 ? YES : NO;
    int type = len < 18 ? MORE
               : ms_le16(p + 16) >= 0x100 && ms_le16(p + 16) <= 0x105 ? YES
                                                                       : NO;
    int c[] = {size_lo, le_is(p, len, 4, 4, 0), le_is(p, len, 12, 4, 0),
               type};
    return all_of(c, 4);
}

/* Which kinds the bytes fit: bit k for kind k; *more set when some rule
 * needs more bytes to decide. */
static unsigned detect_mask(const uint8_t *p, size_t len, int *more)
{
    static int (*const rules[MS_PAYLOAD_KIND_COUNT_])(const uint8_t *,
                                                       size_t) = {
        [MS_PAYLOAD_MLX5] = looks_mlx5,   [MS_PAYLOAD_VIRTIO] = looks_virtio,
        [MS_PAYLOAD_HISI_ACC] = looks_hisi, [MS_PAYLOAD_QAT] = looks_qat,
        [MS_PAYLOAD_XE] = looks_xe,
    };
    unsigned mask = 0;
    *more = 0;
    for (int k = 0; k < MS_PAYLOAD_KIND_COUNT_; k++) {
        if (!rules[k]) /* raw and pds: only by context */
            continue;
        int v = rules[k](p, len);
        if (v == YES)
            mask |= 1u << k;
        else if (v == MORE)
            *more = 1;
    }
    return mask;
}

static int single_kind(unsigned mask)
{
    if (!mask || (mask & (mask - 1)))
        return -1;
    int k = 0;
    while (!(mask & 1u)) {
        mask >>= 1;
        k++;
    }
    return k;
}

int ms_payload_detect(const void *buf, size_t len)
{
    int more;
    if (!buf)
        len = 0;
    unsigned mask = detect_mask(buf, len, &more);
    if (more && len < DETECT_MAX)
        return -2; /* a rule still open may match too: wait */
    return single_kind(mask);
}

/* Detection inside the reader: gather the first bytes (the stash keeps
 * them across slices) and look without consuming.  Returns the kind, -2
 * when more bytes are needed, or -3 on error (recorded). */
static int detect_in_reader(ms_reader *r)
{
    size_t n = MS_MIN(ms_rd_pending(r), (size_t)DETECT_MAX);
    if (n == 0)
        return -2;
    if (ms_rd_reserve(r, DETECT_MAX) < 0)
        return -3;
    const uint8_t *p;
    if (!ms_rd_take(r, n, &p)) { /* n <= pending: cannot happen */
        MS_FAIL(r, MS_ERR_USAGE, 0, "internal: detection take");
        return -3;
    }
    int more;
    unsigned mask = detect_mask(p, n, &more);
    ms_rd_untake(r);
    if (more && n < DETECT_MAX) {
        /* Keep what there is (the slice must be consumed) and wait. */
        (void)ms_rd_take(r, DETECT_MAX, &p);
        return -2;
    }
    int kind = single_kind(mask);
    if (kind >= 0)
        return kind;
    if (!mask) {
        MS_FAIL(r, MS_ERR_FORMAT_UNKNOWN, 0,
                "cannot tell the driver from the bytes; name it "
                "(--payload KIND)");
        return -3;
    }
    char kinds[96] = "";
    size_t at = 0;
    for (int k = 0; k < MS_PAYLOAD_KIND_COUNT_ && at < sizeof kinds; k++)
        if (mask & (1u << k))
            at += (size_t)snprintf(kinds + at, sizeof kinds - at, "%s%s",
                                   at ? " and " : "", ms_payload_kind_name(k));
    MS_FAIL(r, MS_ERR_FORMAT_UNKNOWN, 0,
            "cannot tell the driver from the bytes (they fit %s); name it "
            "(--payload KIND)",
            kinds);
    return -3;
}

/* ---- choosing the framing --------------------------------------------------- */

int ms_payload_select(ms_reader *r)
{
    ms_payload_kind kind = r->opt.payload_kind;
    if (kind == MS_PAYLOAD_DETECT) {
        kind = detect_in_reader(r);
        if (kind == -2)
            return 0;
        if (kind < 0)
            return -1;
    } else if (kind < 0 || kind >= MS_PAYLOAD_KIND_COUNT_) {
        return MS_FAIL(r, MS_ERR_USAGE, 0,
                       "payload_kind %d is not a payload kind (-1 detects)",
                       kind);
    }
    int rc;
    switch (kind) {
    case MS_PAYLOAD_MLX5:
    case MS_PAYLOAD_VIRTIO:
        r->ops = &ms_swhdr_ops;
        rc = ms_swhdr_init(r, kind);
        break;
    case MS_PAYLOAD_HISI_ACC:
        r->ops = &ms_hisi_ops;
        rc = ms_hisi_init(r);
        break;
    case MS_PAYLOAD_QAT:
        r->ops = &ms_qat_ops;
        rc = ms_qat_init(r);
        break;
    case MS_PAYLOAD_XE:
        r->ops = &ms_xe_ops;
        rc = ms_xe_init(r);
        break;
    default: /* MS_PAYLOAD_PDS, MS_PAYLOAD_RAW */
        r->ops = &ms_pds_ops;
        rc = ms_pds_init(r, kind);
        break;
    }
    return rc < 0 ? -1 : 1;
}

/* ---- pds and raw: one unframed image ----------------------------------------- *
 *
 * The whole stream is one image (seq 0).  Its bytes go out as MS_EV_DATA
 * views of the input; each time the reader runs out of input after new
 * bytes, an MS_EV_PAYLOAD_IMAGE reports the image so far (the last one is
 * the image: an unframed stream ends only when its input does).  pds: at
 * most 65536 bytes (the driver's fixed MIG_DATA_SIZE). */

#define PDS_MAX 65536u
#define DATA_VIEW_MAX (64 * 1024)

typedef struct pds_state {
    ms_payload_kind kind;
    ms_phase phase;     /* the image's: that of its first byte */
    uint64_t total;     /* bytes so far */
    uint64_t reported;  /* total at the last image event */
    ms_hash_state *hash;
} pds_state;

#define PST(r) ((pds_state *)(r)->framing)

static int pds_next(ms_reader *r, ms_event *ev)
{
    pds_state *st = PST(r);
    const uint8_t *p;
    size_t n = ms_rd_peek(r, DATA_VIEW_MAX, &p);
    if (n == 0) {
        if (st->reported == st->total)
            return MS_NEXT_INPUT;
        st->reported = st->total;
        ev->kind = MS_EV_PAYLOAD_IMAGE;
        ev->offset = ms_rd_pos(r); /* where the image ends (so far) */
        ev->length = 0;
        ms_image_info *im = &ev->u.image;
        im->phase = st->phase;
        im->length = st->total;
        im->unit_count = 0; /* unframed: no records */
        if (r->opt.verify_checks)
            im->hash = ms_hash_digest(st->hash);
        return MS_NEXT_EVENT;
    }
    uint64_t at = ms_rd_pos(r);
    /* A view holds bytes of one phase: end it where the phase changes. */
    uint64_t fin = r->opt.payload_final_offset;
    if (fin > at && fin - at < n)
        n = (size_t)(fin - at);
    if (r->phase_set && r->phase_from > at && r->phase_from - at < n)
        n = (size_t)(r->phase_from - at);
    if (st->kind == MS_PAYLOAD_PDS && st->total + n > PDS_MAX)
        return MS_FAIL(r, MS_ERR_PAYLOAD, PDS_MAX,
                       "pds data is at most %u bytes (its MIG_DATA_SIZE); "
                       "the stream goes on past that",
                       PDS_MAX);
    if (st->total == 0)
        st->phase = ms_payload_phase_at(r, at);
    if (r->opt.verify_checks)
        ms_hash_update(st->hash, p, n);
    ms_data_info *d = ms_ev_data(ev, p, n, at, ms_rd_in_input(r, p));
    d->phase = ms_payload_phase_at(r, at); /* each view: its bytes' phase */
    d->image_offset = st->total;
    st->total += n;
    ms_rd_skip(r, n);
    return MS_NEXT_EVENT;
}

static int pds_finish(ms_reader *r)
{
    (void)r; /* unframed: any length (within the limit) is a whole stream */
    return 0;
}

static void pds_destroy(ms_reader *r)
{
    pds_state *st = PST(r);
    if (!st)
        return;
    ms_hash_state_free(&r->opt.allocator, st->hash);
    ms_framing_free(r);
}

int ms_pds_init(ms_reader *r, ms_payload_kind kind)
{
    pds_state *st = ms_calloc(&r->opt.allocator, 1, sizeof *st);
    if (!st)
        return MS_FAIL(r, MS_ERR_NO_MEMORY, 0, "decoder state");
    r->framing = st;
    st->kind = kind;
    if (!(st->hash = ms_hash_state_new(&r->opt.allocator)))
        return MS_FAIL(r, MS_ERR_NO_MEMORY, 0, "image hash state");
    ms_hash_reset(st->hash, 0);
    return 0;
}

const ms_framing_ops ms_pds_ops = {
    .format = MS_FORMAT_PAYLOAD,
    .next = pds_next,
    .finish = pds_finish,
    .destroy = pds_destroy,
};
