/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* Intel Xe GPU VF payload (spec/payloads.md, "Xe").
 *
 * A sequence of packets, each a packed 24-byte little-endian header
 * (u8 version, u8 type, u8 tile_id, u8 gt_id, u32 flags, u64 offset,
 * u64 size) and `size` payload bytes.  The first packet is the DESCRIPTOR
 * (GuC-style KLVs: a dword key << 16 | length in dwords, then the value
 * dwords), the last the TRAILER (size 0); nothing may follow it.  The
 * driver has no PRE_COPY: the whole stream is one final image.
 *
 * Stages (each resumable at any byte; payloads are never buffered: VRAM
 * packets can be gigabytes, their bytes go out as views of the input):
 *
 *   HDR -> HDR_EV -+-> KLV -> KLV_VALUE | KLV_WALK -> KLV ... -> HDR
 *    ^             +-> DATA ------------------------------------> HDR
 *    |             +-> (TRAILER) IMAGE -> END (any byte: trailing data)
 *    +-- a clean end is not allowed before the TRAILER
 *
 * Events per packet: RECORD (tag = type, value = resource offset), FIELD
 * tile_id and gt_id, then FIELD per descriptor KLV or DATA views of the
 * payload; after the TRAILER, IMAGE seq 0 final (the whole stream, FULL,
 * unit_count = packets, hash of every byte).
 */
#include <stdio.h>


#include "payload_impl.h"

#define XE_HDR 24u
#define XE_VERSION 1u
#define XE_KLV_DEVID 0xF001u
#define XE_KLV_REVID 0xF002u
#define XE_KLV_SMALL 64u /* unknown KLV values up to this are handed out */

enum xe_type {
    XE_DESCRIPTOR = 1,
    XE_TRAILER = 2,
    XE_GGTT = 3,
    XE_MMIO = 4,
    XE_GUC = 5,
    XE_VRAM = 6
};

enum x_stage {
    X_HDR = 0x5845, /* not 0: a zeroed state is caught as invalid */
    X_HDR_EV,
    X_KLV,
    X_KLV_VALUE,
    X_KLV_WALK,
    X_DATA,
    X_IMAGE,
    X_END
};

static const char *const type_names[] = {
    "unused", "DESCRIPTOR", "TRAILER", "GGTT", "MMIO", "GUC", "VRAM",
};

typedef struct x_state {
    int stage;
    unsigned next_ev; /* the *_EV stage: index of the event it emits next */
    uint64_t base;       /* absolute offset of the payload's first byte */
    uint64_t packets;    /* packets completed */
    /* the packet being read */
    uint64_t pkt_off;
    uint8_t hdr[XE_HDR];
    uint8_t type;
    uint64_t size, left; /* payload bytes, bytes still to read */
    int ph_asked;        /* the phase of the header's first byte asked */
    /* descriptor KLVs */
    uint64_t klv_off;
    uint16_t key, klen;
    uint64_t walk_left;
    int have_devid, have_revid;
    char klv_name[24];
    ms_hash_state *hash;  /* whole-stream image hash (verify_checks) */
} x_state;

#define XST(r) ((x_state *)(r)->framing)

static void hash_bytes(ms_reader *r, const void *p, size_t n)
{
    x_state *st = XST(r);
    if (st->hash && n)
        ms_hash_update(st->hash, p, n);
}

static int take(ms_reader *r, size_t n, const uint8_t **p)
{
    int t = ms_rd_take(r, n, p);
    if (t > 0)
        hash_bytes(r, *p, n);
    return t;
}

static const char *type_name(unsigned t)
{
    return t < sizeof type_names / sizeof type_names[0] ? type_names[t]
                                                        : "unknown";
}

/* ---- packet header ------------------------------------------------------------ */

static int x_hdr(ms_reader *r)
{
    x_state *st = XST(r);
    const uint8_t *p;
    if (!ms_rd_pending(r))
        return MS_NEXT_INPUT; /* finish tells whether this is an end */
    st->pkt_off = ms_rd_pos(r);
    if (!st->ph_asked) {
        st->ph_asked = 1;
        /* The driver has no PRE_COPY: every byte is read in STOP_COPY.
         * Asked at the packet's first byte, while it is in the input. */
        ms_phase ph = ms_payload_phase_at(r, st->pkt_off);
        if (ph == MS_PHASE_INITIAL || ph == MS_PHASE_MIDDLE)
            return MS_FAIL(r, MS_ERR_PAYLOAD, st->pkt_off,
                           "packet %llu was read in the %s phase, but the "
                           "Xe driver has no PRE_COPY (all its data is "
                           "STOP_COPY data)",
                           (unsigned long long)st->packets,
                           ms_phase_name(ph));
    }
    if (!take(r, XE_HDR, &p))
        return MS_NEXT_INPUT;
    memcpy(st->hdr, p, XE_HDR);
    uint64_t at = st->pkt_off;
    unsigned version = p[0];
    st->type = p[1];
    st->size = ms_le64(p + 16);
    if (version != XE_VERSION)
        return MS_FAIL(r, MS_ERR_VERSION, at,
                       "packet %llu: version %u; the driver reads only "
                       "version %u",
                       (unsigned long long)st->packets, version, XE_VERSION);
    if (st->type == 0 || st->type > XE_VRAM)
        return MS_FAIL(r, MS_ERR_PAYLOAD, at + 1,
                       "packet %llu: %s type %u (known: DESCRIPTOR 1, "
                       "TRAILER 2, GGTT 3, MMIO 4, GUC 5, VRAM 6)",
                       (unsigned long long)st->packets,
                       st->type ? "unknown" : "unused", st->type);
    if (st->packets == 0 && st->type != XE_DESCRIPTOR)
        return MS_FAIL(r, MS_ERR_PAYLOAD, at + 1,
                       "the stream starts with a %s packet; the first "
                       "packet must be the DESCRIPTOR",
                       type_name(st->type));
    if (st->packets > 0 && st->type == XE_DESCRIPTOR)
        return MS_FAIL(r, MS_ERR_PAYLOAD, at + 1,
                       "packet %llu is a second DESCRIPTOR; only the first "
                       "packet is one",
                       (unsigned long long)st->packets);
    if (st->size > UINT64_MAX - XE_HDR - at)
        return MS_FAIL(r, MS_ERR_PAYLOAD, at + 16,
                       "packet %llu: size %llu runs past the largest stream "
                       "offset",
                       (unsigned long long)st->packets,
                       (unsigned long long)st->size);
    if (st->type == XE_DESCRIPTOR && st->size % 4)
        return MS_FAIL(r, MS_ERR_PAYLOAD, at + 16,
                       "DESCRIPTOR of %llu bytes is not a whole number of "
                       "KLV dwords",
                       (unsigned long long)st->size);
    if (st->type == XE_TRAILER && st->size)
        return MS_FAIL(r, MS_ERR_PAYLOAD, at + 16,
                       "TRAILER of %llu bytes; the TRAILER is empty",
                       (unsigned long long)st->size);
    st->left = st->size;
    st->ph_asked = 0;
    st->stage = X_HDR_EV;
    st->next_ev = 0;
    return MS_GO_ON;
}

static void field_event(x_state *st, ms_event *ev, const char *name,
                        uint64_t off, uint64_t len, uint64_t value,
                        const uint8_t *data, size_t size, uint32_t index)
{
    ev->kind = MS_EV_PAYLOAD_FIELD;
    ev->offset = off;
    ev->length = len;
    ev->u.pfield.name = name;
    ev->u.pfield.value = value;
    ev->u.pfield.data = data;
    /* spec/payloads.md: a field that only names a walked unit has no
     * bytes: data NULL and size 0 (its extent is the event's length) */
    ev->u.pfield.size = data ? size : 0;
    ev->u.pfield.index = index;
    (void)st;
}

static int x_hdr_ev(ms_reader *r, ms_event *ev)
{
    x_state *st = XST(r);
    switch (st->next_ev++) {
    case 0: {
        ev->kind = MS_EV_PAYLOAD_RECORD;
        ev->offset = st->pkt_off;
        ev->length = XE_HDR + st->size;
        ms_payload_record *pr = &ev->u.precord;
        pr->payload_kind = MS_PAYLOAD_XE;
        pr->name = type_name(st->type);
        pr->tag = st->type;
        pr->flags = ms_le32(st->hdr + 4);
        pr->size = st->size;
        pr->value = ms_le64(st->hdr + 8); /* offset within the resource */
        pr->phase = MS_PHASE_FINAL;
        return MS_NEXT_EVENT;
    }
    case 1:
        field_event(st, ev, "tile_id", st->pkt_off + 2, 1, st->hdr[2],
                    st->hdr + 2, 1, 0);
        return MS_NEXT_EVENT;
    case 2:
        field_event(st, ev, "gt_id", st->pkt_off + 3, 1, st->hdr[3],
                    st->hdr + 3, 1, 0);
        return MS_NEXT_EVENT;
    }
    switch (st->type) {
    case XE_DESCRIPTOR: st->stage = X_KLV; break;
    case XE_TRAILER:
        st->packets++;
        st->stage = X_IMAGE;
        break;
    default: st->stage = X_DATA; break;
    }
    return MS_GO_ON;
}

/* ---- descriptor KLVs ------------------------------------------------------------ */

static int x_klv(ms_reader *r, ms_event *ev)
{
    x_state *st = XST(r);
    const uint8_t *p;
    if (st->left == 0) {
        const char *missing = !st->have_devid   ? "device id (key 0xf001)"
                              : !st->have_revid ? "revision id (key 0xf002)"
                                                : NULL;
        if (missing)
            return MS_FAIL(r, MS_ERR_PAYLOAD, st->pkt_off,
                           "the DESCRIPTOR has no %s KLV; the target "
                           "checks it against the destination",
                           missing);
        st->packets++;
        st->stage = X_HDR;
        return MS_GO_ON;
    }
    st->klv_off = ms_rd_pos(r);
    if (!take(r, 4, &p))
        return MS_NEXT_INPUT;
    uint32_t h = ms_le32(p);
    st->key = (uint16_t)(h >> 16);
    st->klen = (uint16_t)h;
    st->left -= 4;
    uint64_t vbytes = (uint64_t)st->klen * 4;
    if (vbytes > st->left)
        return MS_FAIL(r, MS_ERR_PAYLOAD, st->klv_off,
                       "KLV 0x%04x of %u dwords crosses the end of the "
                       "DESCRIPTOR (%llu dwords left)",
                       st->key, st->klen,
                       (unsigned long long)(st->left / 4));
    if (st->key == XE_KLV_DEVID || st->key == XE_KLV_REVID) {
        int *seen = st->key == XE_KLV_DEVID ? &st->have_devid
                                            : &st->have_revid;
        if (st->klen != 1)
            return MS_FAIL(r, MS_ERR_PAYLOAD, st->klv_off,
                           "KLV 0x%04x (%s) of %u dwords; it holds one",
                           st->key,
                           st->key == XE_KLV_DEVID ? "device id"
                                                   : "revision id",
                           st->klen);
        if (*seen)
            return MS_FAIL(r, MS_ERR_PAYLOAD, st->klv_off,
                           "a second KLV 0x%04x in the DESCRIPTOR", st->key);
        *seen = 1;
    }
    if (st->key == XE_KLV_DEVID)
        snprintf(st->klv_name, sizeof st->klv_name, "devid");
    else if (st->key == XE_KLV_REVID)
        snprintf(st->klv_name, sizeof st->klv_name, "revid");
    else
        snprintf(st->klv_name, sizeof st->klv_name, "klv_0x%04x", st->key);
    if (vbytes == 0 || vbytes > XE_KLV_SMALL) {
        /* the field without its bytes; a long value is walked */
        field_event(st, ev, st->klv_name, st->klv_off, 4 + vbytes, 0, NULL,
                    (size_t)vbytes, st->key);
        st->walk_left = vbytes;
        st->stage = X_KLV_WALK;
        return MS_NEXT_EVENT;
    }
    st->stage = X_KLV_VALUE;
    return MS_GO_ON;
}

static int x_klv_value(ms_reader *r, ms_event *ev)
{
    x_state *st = XST(r);
    const uint8_t *p;
    size_t n = (size_t)st->klen * 4;
    if (!take(r, n, &p))
        return MS_NEXT_INPUT;
    st->left -= n;
    field_event(st, ev, st->klv_name, st->klv_off, 4 + n, ms_le32(p), p, n,
                st->key);
    st->stage = X_KLV;
    return MS_NEXT_EVENT;
}

static int x_klv_walk(ms_reader *r)
{
    x_state *st = XST(r);
    while (st->walk_left) {
        const uint8_t *p;
        size_t n = ms_rd_peek(r, (size_t)MS_MIN(st->walk_left, SIZE_MAX), &p);
        if (n == 0)
            return MS_NEXT_INPUT;
        hash_bytes(r, p, n);
        ms_rd_skip(r, n);
        st->walk_left -= n;
        st->left -= n;
    }
    st->stage = X_KLV;
    return MS_GO_ON;
}

/* ---- data packets ------------------------------------------------------------------ */

static int x_data(ms_reader *r, ms_event *ev)
{
    x_state *st = XST(r);
    if (st->left == 0) {
        st->packets++;
        st->stage = X_HDR;
        return MS_GO_ON;
    }
    ms_data_info *d;
    size_t n = ms_rd_view(r, ev, st->left, &d);
    if (n == 0)
        return MS_NEXT_INPUT;
    hash_bytes(r, d->data, n);
    d->seq = 0;
    d->phase = MS_PHASE_FINAL;
    /* the image is the whole stream */
    d->image_offset = d->stream_offset - st->base;
    d->in_packet = 1;
    d->packet_idx = (uint32_t)MS_MIN(st->packets, UINT32_MAX);
    st->left -= n;
    return MS_NEXT_EVENT;
}

static int x_image(ms_reader *r, ms_event *ev)
{
    x_state *st = XST(r);
    uint64_t end = ms_rd_pos(r);
    ev->kind = MS_EV_PAYLOAD_IMAGE;
    ev->offset = end; /* after its last byte */
    ev->length = 0;
    ev->u.image.seq = 0;
    ev->u.image.phase = MS_PHASE_FINAL;
    ev->u.image.flags = MS_IMAGE_FULL;
    ev->u.image.length = end - st->base;
    ev->u.image.unit_count = st->packets;
    if (st->hash)
        ev->u.image.hash = ms_hash_digest(st->hash);
    st->stage = X_END;
    return MS_NEXT_EVENT;
}

/* ---- framing ops ---------------------------------------------------------------------- */

/* The diagram at the top of this file, stage by stage. */
#define AT(stage) [(stage) - X_HDR] /* the table starts at X_HDR */
static const ms_stage x_stages[] = {
    AT(X_HDR) = {"HDR", .walk = x_hdr},
    AT(X_HDR_EV) = {"HDR_EV", .emit = x_hdr_ev},
    AT(X_KLV) = {"KLV", .emit = x_klv},
    AT(X_KLV_VALUE) = {"KLV_VALUE", .emit = x_klv_value},
    AT(X_KLV_WALK) = {"KLV_WALK", .walk = x_klv_walk},
    AT(X_DATA) = {"DATA", .emit = x_data},
    AT(X_IMAGE) = {"IMAGE", .emit = x_image},
    AT(X_END) = {"END", .ends_after = "the TRAILER packet"},
};
#undef AT
static const ms_stage_table x_table = MS_STAGE_TABLE(X_HDR, x_stages);

static int x_finish(ms_reader *r)
{
    x_state *st = XST(r);
    if (st->stage == X_END)
        return 0;
    if (st->stage == X_HDR && ms_rd_stashed(r) == 0) {
        if (st->packets == 0)
            return MS_FAIL(r, MS_ERR_TRUNCATED, r->offset,
                           "empty stream: an Xe stream starts with a "
                           "DESCRIPTOR packet");
        return MS_FAIL(r, MS_ERR_MISSING_END, r->offset,
                       "the stream ends after %llu packets without the "
                       "TRAILER packet",
                       (unsigned long long)st->packets);
    }
    if (st->stage == X_HDR)
        return MS_FAIL(r, MS_ERR_TRUNCATED, r->offset,
                       "input ends inside the 24-byte header of packet %llu "
                       "at offset %llu",
                       (unsigned long long)st->packets,
                       (unsigned long long)st->pkt_off);
    return MS_FAIL(r, MS_ERR_TRUNCATED, r->offset,
                   "input ends inside %s packet %llu at offset %llu (%llu of "
                   "its %llu payload bytes missing)",
                   type_name(st->type), (unsigned long long)st->packets,
                   (unsigned long long)st->pkt_off,
                   (unsigned long long)st->left,
                   (unsigned long long)st->size);
}

static void x_destroy(ms_reader *r)
{
    x_state *st = XST(r);
    if (!st)
        return;
    ms_hash_state_free(&r->opt.allocator, st->hash);
    ms_framing_free(r);
}

int ms_xe_init(ms_reader *r)
{
    x_state *st = ms_framing_new(r, sizeof *st);
    if (!st)
        return -1;
    st->base = ms_rd_pos(r);
    if (r->opt.verify_checks) {
        if (!(st->hash = ms_hash_state_new(&r->opt.allocator)))
            return MS_FAIL(r, MS_ERR_NO_MEMORY, 0, "image hash state");
        ms_hash_reset(st->hash, 0);
    }
    return ms_rd_reserve(r, XE_HDR);
}

const ms_framing_ops ms_xe_ops = {
    .format = MS_FORMAT_PAYLOAD,
    .stages = &x_table,
    .stage_at = offsetof(x_state, stage),
    .finish = x_finish,
    .destroy = x_destroy,
};
