/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* SW-header record streams: mlx5 and virtio (spec/payloads.md, sections 2
 * and 3).
 *
 * Both drivers frame their data as records: a 16-byte little-endian header
 * (le64 record_size, le32 flags with bit 0 OPTIONAL, le32 tag), then
 * record_size bytes.  mlx5 knows FW_DATA (a firmware image, opaque) and
 * STOP_COPY_SIZE (le64); virtio knows DEVICE_DATA (a complete snapshot made
 * of "device parts", which are decoded here).  Stages, each resumable at
 * any byte:
 *
 *   HEADER -+-> VALUE (STOP_COPY_SIZE) -----------------------------> HEADER
 *     ^     +-> SKIP (unknown optional record) ---------------------> HEADER
 *     |     +-> DATA (FW_DATA bytes) -----------------> IMAGE ------> HEADER
 *     |     +-> PART_HEADER -+-> PART_VALUE -> PART_FIELDS -+
 *     |           ^   |      +-> PART_WALK -----------------+
 *     |           +---|-----------------------------------------+
 *     |               +-> RECORD_END -> IMAGE ---------------------> HEADER
 *
 * Record payloads are never buffered (an FW_DATA record can hold hundreds
 * of MB): image bytes go out as MS_EV_DATA views of the caller's input.
 * Only headers and the virtio parts that are decoded (at most PART_MAX
 * bytes each) are gathered when split across slices.
 *
 * Images: every FW_DATA / DEVICE_DATA record starts an image, except that
 * the mlx5 FW_DATA records of the final phase (chunk mode) continue one
 * final image.  After each such record an MS_EV_PAYLOAD_IMAGE reports the
 * image so far (its seq, phase, length, records); the last one with a
 * given seq is the image.
 */

#include "payload_impl.h"

#define SW_HDR 16
#define SW_SIZE_MAX 0xFFFFFFFFull /* the kernels' record_size limit */
#define SW_FLAG_OPTIONAL 0x1u
#define TAG_FW_DATA 0u        /* mlx5 */
#define TAG_STOP_COPY_SIZE 1u /* mlx5 */
#define TAG_DEVICE_DATA 0u    /* virtio */

#define PART_HDR 16
#define PART_MAX (64 * 1024) /* largest decoded part gathered whole */
#define CFG_PARTS_MAX 4096   /* PCI_COMMON_CFG parts tracked per record */
#define VQ_BITMAP (65536 / 8)
#define DATA_VIEW_MAX (64 * 1024)

enum part_type {
    PT_DEV_FEATURES = 0x100,
    PT_DRV_FEATURES = 0x101,
    PT_PCI_COMMON_CFG = 0x102,
    PT_DEVICE_STATUS = 0x103,
    PT_VQ_CFG = 0x104,
    PT_VQ_NOTIFY_CFG = 0x105,
    PT_DEVICE_FIRST = 0x200, /* 0x200..0x5FF: device-type specific */
    PT_RESERVED_FIRST = 0x600
};

enum sw_stage {
    SW_HEADER = 0x5357, /* not 0: a zeroed state is caught as invalid */
    SW_VALUE,
    SW_SKIP,
    SW_DATA,
    SW_IMAGE,
    SW_PART_HEADER,
    SW_PART_VALUE,
    SW_PART_FIELDS,
    SW_PART_WALK,
    SW_RECORD_END
};

typedef struct sw_state {
    int stage;
    ms_payload_kind kind; /* MS_PAYLOAD_MLX5 or MS_PAYLOAD_VIRTIO */

    /* record being read */
    int hdr_started;    /* its first byte was pending: hdr_phase is set */
    ms_phase hdr_phase; /* ms_payload_phase_at its first byte */
    uint64_t rec_off, rec_size;
    uint64_t left;      /* payload bytes of the record not yet read */
    uint32_t tag, flags;

    /* images */
    uint32_t n_images;
    int seen_initial, seen_final;
    int final_open;     /* mlx5: the final image is open (seq) */
    uint32_t seq;
    ms_phase phase;
    uint32_t img_flags;
    uint64_t img_len, img_records;
    ms_hash_state *hash;

    /* virtio: the part being read */
    uint64_t part_off;
    uint16_t ptype;
    uint8_t pflags;
    uint32_t psel;      /* PCI_COMMON_CFG offset / VQ index */
    uint32_t plen;
    uint64_t pleft;     /* walked part: value bytes still to come */
    const uint8_t *pval; /* decoded part: its value (gathered) */
    uint32_t field_i;

    /* virtio: parts of the current record so far */
    uint16_t last_known;
    uint32_t n_dev, n_drv, n_status;
    uint8_t *vq_seen;   /* VQ_CFG bitmap, then VQ_NOTIFY_CFG bitmap */
    ms_u32map cfg_seen; /* PCI_COMMON_CFG offsets */
} sw_state;

#define ST(r) ((sw_state *)(r)->framing)
#define ALLOC(r) (&(r)->opt.allocator)


static const char *tag_name(ms_payload_kind kind, uint32_t tag)
{
    if (kind == MS_PAYLOAD_MLX5) {
        if (tag == TAG_FW_DATA)
            return "FW_DATA";
        if (tag == TAG_STOP_COPY_SIZE)
            return "STOP_COPY_SIZE";
    } else if (tag == TAG_DEVICE_DATA) {
        return "DEVICE_DATA";
    }
    return NULL;
}

static const char *part_name(uint16_t type)
{
    switch (type) {
    case PT_DEV_FEATURES: return "DEV_FEATURES";
    case PT_DRV_FEATURES: return "DRV_FEATURES";
    case PT_PCI_COMMON_CFG: return "PCI_COMMON_CFG";
    case PT_DEVICE_STATUS: return "DEVICE_STATUS";
    case PT_VQ_CFG: return "VQ_CFG";
    case PT_VQ_NOTIFY_CFG: return "VQ_NOTIFY_CFG";
    }
    return NULL;
}

/* Little-endian integer of 1..8 bytes. */
static uint64_t le_n(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = n; i-- > 0;)
        v = (v << 8) | p[i];
    return v;
}

/* ---- images -------------------------------------------------------------- */

/* The phase of the image an FW_DATA / DEVICE_DATA record carries, from the
 * phase of its first byte: FINAL stays final; INITIAL (the carrier's, or
 * "before payload_final_offset") is the initial image the first time and a
 * middle image after it (one initial image per stream); MIDDLE stays
 * middle; NONE means nothing is known. */
static int begin_image(ms_reader *r, const char *name)
{
    sw_state *st = ST(r);
    ms_phase ph = MS_PHASE_NONE;
    switch (st->hdr_phase) {
    case MS_PHASE_FINAL: ph = MS_PHASE_FINAL; break;
    case MS_PHASE_INITIAL:
        ph = st->seen_initial ? MS_PHASE_MIDDLE : MS_PHASE_INITIAL;
        break;
    case MS_PHASE_MIDDLE: ph = MS_PHASE_MIDDLE; break;
    default: break;
    }
    if (st->seen_final && ph != MS_PHASE_FINAL && ph != MS_PHASE_NONE)
        return MS_FAIL(r, MS_ERR_PHASE_ORDER, st->rec_off,
                       "%s record of the %s phase after the final image",
                       name, ms_phase_name(ph));
    if (ph == MS_PHASE_INITIAL)
        st->seen_initial = 1;
    if (ph == MS_PHASE_FINAL)
        st->seen_final = 1;
    int cont = st->kind == MS_PAYLOAD_MLX5 && ph == MS_PHASE_FINAL &&
               st->final_open;
    if (!cont) {
        if (st->n_images == UINT32_MAX)
            return MS_FAIL_LIMIT(r, MS_LIMIT_NONE, st->rec_off,
                                 "more than %u images in one stream",
                                 UINT32_MAX);
        st->seq = st->n_images++;
        st->phase = ph;
        st->img_len = 0;
        st->img_records = 0;
        /* virtio records are complete snapshots; an mlx5 initial image is
         * a full image (the reference, section 2) */
        st->img_flags = st->kind == MS_PAYLOAD_VIRTIO || ph == MS_PHASE_INITIAL
                            ? MS_IMAGE_FULL
                            : 0;
        st->final_open = st->kind == MS_PAYLOAD_MLX5 && ph == MS_PHASE_FINAL;
        ms_hash_reset(st->hash, 0);
    }
    st->img_records++;
    return 0;
}

/* Image bytes at `at`: a DATA event (a view of the input or of the
 * gathered part), counted and hashed into the image. */
static void data_event(ms_reader *r, ms_event *ev, const uint8_t *p,
                       size_t n, uint64_t at)
{
    sw_state *st = ST(r);
    ms_data_info *d = ms_ev_data(ev, p, n, at, ms_rd_in_input(r, p));
    d->seq = st->seq;
    d->phase = st->phase;
    d->image_offset = st->img_len;
    if (r->opt.verify_checks)
        ms_hash_update(st->hash, p, n);
    st->img_len += n;
}

/* The image so far, after one of its records: at the record's end. */
static int emit_image(ms_reader *r, ms_event *ev)
{
    sw_state *st = ST(r);
    ev->kind = MS_EV_PAYLOAD_IMAGE;
    ev->offset = ms_rd_pos(r);
    ev->length = 0;
    ms_image_info *im = &ev->u.image;
    im->seq = st->seq;
    im->phase = st->phase;
    im->transport = MS_TRANSPORT_CHUNKS;
    im->flags = st->img_flags;
    im->length = st->img_len;
    im->unit_count = st->img_records;
    if (r->opt.verify_checks)
        im->hash = ms_hash_digest(st->hash);
    st->stage = SW_HEADER;
    return MS_NEXT_EVENT;
}

/* ---- record header --------------------------------------------------------- */

static void record_event(ms_reader *r, ms_event *ev, const char *name,
                         uint64_t value, ms_phase phase)
{
    sw_state *st = ST(r);
    ev->kind = MS_EV_PAYLOAD_RECORD;
    ev->offset = st->rec_off;
    ev->length = SW_HDR + st->rec_size;
    ms_payload_record *pr = &ev->u.precord;
    pr->payload_kind = (uint32_t)st->kind;
    pr->name = name;
    pr->tag = st->tag;
    pr->flags = st->flags;
    pr->optional = (st->flags & SW_FLAG_OPTIONAL) != 0;
    pr->size = st->rec_size;
    pr->value = value;
    pr->phase = phase;
}

static void reset_parts(sw_state *st, const ms_allocator *a)
{
    st->last_known = 0;
    st->n_dev = st->n_drv = st->n_status = 0;
    memset(st->vq_seen, 0, 2 * VQ_BITMAP);
    ms_u32map_free(a, &st->cfg_seen);
}

static int read_header(ms_reader *r, ms_event *ev)
{
    sw_state *st = ST(r);
    const uint8_t *p;
    if (!st->hdr_started) {
        if (ms_rd_pending(r) == 0)
            return MS_NEXT_INPUT; /* a clean end is at a record boundary */
        /* The phase of the first byte, now that it is here: a carrier
         * phase change may come before the rest of the header. */
        st->rec_off = ms_rd_pos(r);
        st->hdr_phase = ms_payload_phase_at(r, st->rec_off);
        st->hdr_started = 1;
    }
    if (!ms_rd_take(r, SW_HDR, &p))
        return MS_NEXT_INPUT;
    st->hdr_started = 0;
    st->rec_size = ms_le64(p);
    st->flags = ms_le32(p + 8);
    st->tag = ms_le32(p + 12);
    int optional = (st->flags & SW_FLAG_OPTIONAL) != 0;
    const char *name = tag_name(st->kind, st->tag);
    const char *drv = ms_payload_kind_name((uint32_t)st->kind);
    if (st->rec_size > SW_SIZE_MAX)
        return MS_FAIL(r, MS_ERR_PAYLOAD, st->rec_off,
                       "%s record_size %llu exceeds 2^32-1, the kernel's "
                       "limit",
                       name ? name : "record",
                       (unsigned long long)st->rec_size);
    if (!name && !optional)
        return MS_FAIL(r, MS_ERR_UNKNOWN_MANDATORY, st->rec_off,
                       "%s record tag %u is unknown and mandatory (flags "
                       "0x%x): the target rejects it",
                       drv, st->tag, st->flags);
    if (!name) { /* unknown optional: the target reads and discards it */
        st->left = st->rec_size;
        st->stage = SW_SKIP;
        record_event(r, ev, "unknown", 0, st->hdr_phase);
        return MS_NEXT_EVENT;
    }
    if (st->kind == MS_PAYLOAD_MLX5 && st->tag == TAG_STOP_COPY_SIZE) {
        if (!optional)
            return MS_FAIL(r, MS_ERR_PAYLOAD, st->rec_off,
                           "STOP_COPY_SIZE record must be optional (flags "
                           "0x%x): targets that do not know it would reject "
                           "it",
                           st->flags);
        if (st->rec_size != 8)
            return MS_FAIL(r, MS_ERR_PAYLOAD, st->rec_off,
                           "STOP_COPY_SIZE record has %llu payload bytes, "
                           "must be 8 (le64 stop_copy_size; the kernel does "
                           "not check)",
                           (unsigned long long)st->rec_size);
        st->stage = SW_VALUE;
        return MS_GO_ON;
    }
    /* FW_DATA or DEVICE_DATA: an image */
    if (optional)
        return MS_FAIL(r, MS_ERR_PAYLOAD, st->rec_off,
                       "%s record must be mandatory (flags 0x%x)", name,
                       st->flags);
    if (begin_image(r, name) < 0)
        return MS_NEXT_ERROR;
    st->left = st->rec_size;
    if (st->kind == MS_PAYLOAD_VIRTIO) {
        reset_parts(st, ALLOC(r));
        st->stage = SW_PART_HEADER;
    } else {
        st->stage = SW_DATA;
    }
    record_event(r, ev, name, 0, st->phase);
    return MS_NEXT_EVENT;
}

/* ---- mlx5 records --------------------------------------------------------------- */

static int read_value(ms_reader *r, ms_event *ev)
{
    sw_state *st = ST(r);
    const uint8_t *p;
    MS_TAKE_OR_RETURN(r, 8, &p);
    record_event(r, ev, "STOP_COPY_SIZE", ms_le64(p), st->hdr_phase);
    st->stage = SW_HEADER;
    return MS_NEXT_EVENT;
}

static int read_skip(ms_reader *r)
{
    sw_state *st = ST(r);
    const uint8_t *p;
    if (st->left == 0) {
        st->stage = SW_HEADER;
        return MS_GO_ON;
    }
    size_t n = ms_rd_peek(r, MS_MIN(st->left, (uint64_t)SIZE_MAX), &p);
    if (n == 0)
        return MS_NEXT_INPUT;
    ms_rd_skip(r, n);
    st->left -= n;
    return MS_GO_ON;
}

static int read_data(ms_reader *r, ms_event *ev)
{
    sw_state *st = ST(r);
    const uint8_t *p;
    if (st->left == 0) {
        st->stage = SW_IMAGE;
        return MS_GO_ON;
    }
    size_t n = ms_rd_peek(r, MS_MIN(st->left, (uint64_t)DATA_VIEW_MAX), &p);
    if (n == 0)
        return MS_NEXT_INPUT;
    data_event(r, ev, p, n, ms_rd_pos(r));
    st->left -= n;
    ms_rd_skip(r, n);
    return MS_NEXT_EVENT;
}

/* ---- virtio device parts --------------------------------------------------------- */

static int bit_test_set(uint8_t *map, uint32_t i)
{
    int was = (map[i / 8] >> (i % 8)) & 1;
    map[i / 8] |= (uint8_t)(1u << (i % 8));
    return was;
}

/* The selector bytes that must be zero for a known part type: from `from`
 * to the end of the 8-byte selector. */
static unsigned selector_used(uint16_t type)
{
    switch (type) {
    case PT_PCI_COMMON_CFG: return 4; /* le32 offset */
    case PT_VQ_CFG:
    case PT_VQ_NOTIFY_CFG: return 2;  /* le16 queue index */
    }
    return 0;
}

/* Checks of a known part's header against the parts before it in the
 * record (order, cardinality, length); registers it. */
static int check_known_part(ms_reader *r, const uint8_t *h)
{
    sw_state *st = ST(r);
    uint64_t at = st->part_off;
    uint16_t type = st->ptype;
    const char *name = part_name(type);
    for (unsigned i = selector_used(type); i < 8; i++)
        if (h[4 + i])
            return MS_FAIL(r, MS_ERR_PAYLOAD, at + 4 + i,
                           "%s part: selector byte %u is 0x%02x, must be 0",
                           name, i, h[4 + i]);
    if (type < st->last_known)
        return MS_FAIL(r, MS_ERR_PAYLOAD, at,
                       "%s part after %s: the order is DEV_FEATURES, "
                       "DRV_FEATURES, PCI_COMMON_CFG, DEVICE_STATUS, VQ_CFG, "
                       "VQ_NOTIFY_CFG",
                       name, part_name(st->last_known));
    st->last_known = type;
    uint32_t len = st->plen;
    switch (type) {
    case PT_DEV_FEATURES:
    case PT_DRV_FEATURES: {
        uint32_t *n = type == PT_DEV_FEATURES ? &st->n_dev : &st->n_drv;
        if (++*n > 1)
            return MS_FAIL(r, MS_ERR_PAYLOAD, at,
                           "a second %s part (at most one per record)", name);
        if (len % 8)
            return MS_FAIL(r, MS_ERR_PAYLOAD, at + 12,
                           "%s part of %u bytes: le64 words, so a multiple "
                           "of 8",
                           name, len);
        break;
    }
    case PT_PCI_COMMON_CFG: {
        uint32_t dummy;
        if (ms_u32map_get(&st->cfg_seen, st->psel, &dummy))
            return MS_FAIL(r, MS_ERR_PAYLOAD, at,
                           "a second PCI_COMMON_CFG part for offset %u (one "
                           "per offset)",
                           st->psel);
        if (st->cfg_seen.count >= CFG_PARTS_MAX)
            return MS_FAIL_LIMIT(
                r, MS_LIMIT_NONE, at,
                "more than %u PCI_COMMON_CFG parts in one record "
                "(migstream tracks at most %u offsets)",
                CFG_PARTS_MAX, CFG_PARTS_MAX);
        if (ms_u32map_put(ALLOC(r), &st->cfg_seen, st->psel, 1) < 0)
            return MS_FAIL(r, MS_ERR_NO_MEMORY, at, "PCI_COMMON_CFG offsets");
        break;
    }
    case PT_DEVICE_STATUS:
        if (++st->n_status > 1)
            return MS_FAIL(r, MS_ERR_PAYLOAD, at,
                           "a second DEVICE_STATUS part (exactly one per "
                           "record)");
        if (len != 1)
            return MS_FAIL(r, MS_ERR_PAYLOAD, at + 12,
                           "DEVICE_STATUS part of %u bytes, must be 1", len);
        break;
    case PT_VQ_CFG:
    case PT_VQ_NOTIFY_CFG: {
        uint8_t *map = st->vq_seen + (type == PT_VQ_CFG ? 0 : VQ_BITMAP);
        if (bit_test_set(map, st->psel))
            return MS_FAIL(r, MS_ERR_PAYLOAD, at,
                           "a second %s part for queue %u (one per queue)",
                           name, st->psel);
        uint32_t want = type == PT_VQ_CFG ? 32 : 8;
        if (len != want)
            return MS_FAIL(r, MS_ERR_PAYLOAD, at + 12,
                           "%s part of %u bytes, must be %u", name, len,
                           want);
        break;
    }
    }
    if (len > PART_MAX) /* features, PCI_COMMON_CFG: no fixed size */
        return MS_FAIL_LIMIT(
            r, MS_LIMIT_NONE, at + 12,
            "%s part of %u bytes exceeds the %u bytes migstream "
            "gathers for a decoded part",
            name, len, PART_MAX);
    return 0;
}

static int read_part_header(ms_reader *r, ms_event *ev)
{
    sw_state *st = ST(r);
    const uint8_t *p;
    if (st->left == 0) {
        st->stage = SW_RECORD_END;
        return MS_GO_ON;
    }
    st->part_off = ms_rd_unit_offset(r);
    if (st->left < PART_HDR)
        return MS_FAIL(r, MS_ERR_PAYLOAD, st->part_off,
                       "%llu bytes left in the DEVICE_DATA record at %llu: "
                       "too few for a %d-byte part header",
                       (unsigned long long)st->left,
                       (unsigned long long)st->rec_off, PART_HDR);
    MS_TAKE_OR_RETURN(r, PART_HDR, &p);
    st->ptype = ms_le16(p);
    st->pflags = p[2];
    st->plen = ms_le32(p + 12);
    st->field_i = 0;
    uint16_t type = st->ptype;
    if (p[3])
        return MS_FAIL(r, MS_ERR_PAYLOAD, st->part_off + 3,
                       "part type 0x%04x: reserved byte is 0x%02x, must be 0",
                       type, p[3]);
    if (st->plen > st->left - PART_HDR)
        return MS_FAIL(r, MS_ERR_PAYLOAD, st->part_off + 12,
                       "part type 0x%04x of %u value bytes crosses the end of "
                       "its DEVICE_DATA record (%llu bytes left)",
                       type, st->plen,
                       (unsigned long long)(st->left - PART_HDR));
    if (part_name(type)) {
        st->psel = type == PT_PCI_COMMON_CFG ? ms_le32(p + 4)
                   : type == PT_VQ_CFG || type == PT_VQ_NOTIFY_CFG
                       ? ms_le16(p + 4)
                       : 0;
        if (check_known_part(r, p) < 0)
            return MS_NEXT_ERROR;
        /* Read it again whole (header and value in one view). */
        ms_rd_untake(r);
        if (ms_rd_reserve(r, PART_HDR + st->plen) < 0)
            return MS_NEXT_ERROR;
        st->stage = SW_PART_VALUE;
        return MS_GO_ON;
    }
    int device = type >= PT_DEVICE_FIRST && type < PT_RESERVED_FIRST;
    if (!device && !(st->pflags & 1))
        return MS_FAIL(r, MS_ERR_UNKNOWN_MANDATORY, st->part_off,
                       "device part type 0x%04x is %s and mandatory: the "
                       "target rejects it",
                       type,
                       type < PT_DEVICE_FIRST ? "unknown" : "reserved");
    /* Walked: device-type specific, or unknown and optional. */
    st->left -= PART_HDR;
    st->pleft = st->plen;
    st->stage = SW_PART_WALK;
    data_event(r, ev, p, PART_HDR, st->part_off);
    return MS_NEXT_EVENT;
}

static int read_part_value(ms_reader *r, ms_event *ev)
{
    sw_state *st = ST(r);
    const uint8_t *p;
    size_t n = PART_HDR + (size_t)st->plen;
    MS_TAKE_OR_RETURN(r, n, &p);
    const uint8_t *v = p + PART_HDR;
    uint64_t base = st->part_off + PART_HDR;
    if (st->ptype == PT_VQ_CFG && ms_le16(v + 6))
        return MS_FAIL(r, MS_ERR_PAYLOAD, base + 6,
                       "VQ_CFG part for queue %u: reserved le16 is 0x%04x, "
                       "must be 0",
                       st->psel, ms_le16(v + 6));
    if (st->ptype == PT_VQ_NOTIFY_CFG && ms_le32(v + 4))
        return MS_FAIL(r, MS_ERR_PAYLOAD, base + 4,
                       "VQ_NOTIFY_CFG part for queue %u: reserved bytes "
                       "are not 0",
                       st->psel);
    st->pval = v;
    st->left -= n;
    st->stage = SW_PART_FIELDS;
    data_event(r, ev, p, n, st->part_off);
    return MS_NEXT_EVENT;
}

typedef struct field_desc {
    const char *name;
    uint8_t off, size;
} field_desc;

static const field_desc vq_cfg_fields[] = {
    {"VQ_CFG.queue_size", 0, 2}, {"VQ_CFG.vector", 2, 2},
    {"VQ_CFG.enabled", 4, 2},    {"VQ_CFG.desc", 8, 8},
    {"VQ_CFG.driver", 16, 8},    {"VQ_CFG.device", 24, 8},
};
static const field_desc vq_notify_fields[] = {
    {"VQ_NOTIFY_CFG.notify_off", 0, 2},
    {"VQ_NOTIFY_CFG.notif_config_data", 2, 2},
};

/* Names of the virtio PCI common configuration fields by offset. */
static const char *common_cfg_name(uint32_t off)
{
    switch (off) {
    case 0: return "PCI_COMMON_CFG.device_feature_select";
    case 4: return "PCI_COMMON_CFG.device_feature";
    case 8: return "PCI_COMMON_CFG.driver_feature_select";
    case 12: return "PCI_COMMON_CFG.driver_feature";
    case 16: return "PCI_COMMON_CFG.config_msix_vector";
    case 18: return "PCI_COMMON_CFG.num_queues";
    case 20: return "PCI_COMMON_CFG.device_status";
    case 21: return "PCI_COMMON_CFG.config_generation";
    case 22: return "PCI_COMMON_CFG.queue_select";
    case 24: return "PCI_COMMON_CFG.queue_size";
    case 26: return "PCI_COMMON_CFG.queue_msix_vector";
    case 28: return "PCI_COMMON_CFG.queue_enable";
    case 30: return "PCI_COMMON_CFG.queue_notify_off";
    case 32: return "PCI_COMMON_CFG.queue_desc";
    case 36: return "PCI_COMMON_CFG.queue_desc_hi";
    case 40: return "PCI_COMMON_CFG.queue_driver";
    case 44: return "PCI_COMMON_CFG.queue_driver_hi";
    case 48: return "PCI_COMMON_CFG.queue_device";
    case 52: return "PCI_COMMON_CFG.queue_device_hi";
    case 56: return "PCI_COMMON_CFG.queue_notify_data";
    case 58: return "PCI_COMMON_CFG.queue_reset";
    case 60: return "PCI_COMMON_CFG.admin_queue_index";
    case 62: return "PCI_COMMON_CFG.admin_queue_num";
    }
    return "PCI_COMMON_CFG";
}

/* The decoded part's field number st->field_i, or 0 when none is left. */
static int part_field(ms_reader *r, ms_event *ev)
{
    sw_state *st = ST(r);
    uint32_t i = st->field_i;
    const char *name;
    size_t off = 0, size;
    uint32_t index = 0;
    switch (st->ptype) {
    case PT_DEV_FEATURES:
    case PT_DRV_FEATURES:
        if (i >= st->plen / 8)
            return 0;
        name = part_name(st->ptype);
        off = 8 * (size_t)i;
        size = 8;
        index = i; /* feature word: bits 64*i .. 64*i+63 */
        break;
    case PT_PCI_COMMON_CFG:
        if (i)
            return 0;
        name = common_cfg_name(st->psel);
        size = st->plen;
        index = st->psel;
        break;
    case PT_DEVICE_STATUS:
        if (i)
            return 0;
        name = "DEVICE_STATUS";
        size = 1;
        break;
    case PT_VQ_CFG:
    case PT_VQ_NOTIFY_CFG: {
        const field_desc *f = st->ptype == PT_VQ_CFG ? vq_cfg_fields
                                                     : vq_notify_fields;
        size_t n = st->ptype == PT_VQ_CFG
                       ? sizeof vq_cfg_fields / sizeof *vq_cfg_fields
                       : sizeof vq_notify_fields / sizeof *vq_notify_fields;
        if (i >= n)
            return 0;
        name = f[i].name;
        off = f[i].off;
        size = f[i].size;
        index = st->psel; /* the queue */
        break;
    }
    default:
        return 0;
    }
    ev->kind = MS_EV_PAYLOAD_FIELD;
    ev->offset = st->part_off + PART_HDR + off;
    ev->length = size;
    ms_payload_field *pf = &ev->u.pfield;
    pf->name = name;
    pf->value = size <= 8 ? le_n(st->pval + off, size) : 0;
    pf->data = st->pval + off;
    pf->size = size;
    pf->index = index;
    st->field_i++;
    return 1;
}

static int read_part_fields(ms_reader *r, ms_event *ev)
{
    sw_state *st = ST(r);
    if (part_field(r, ev))
        return MS_NEXT_EVENT;
    st->stage = SW_PART_HEADER;
    return MS_GO_ON;
}

/* A part that is not decoded: one field event names it, then its value
 * bytes go out as views. */
static int read_part_walk(ms_reader *r, ms_event *ev)
{
    sw_state *st = ST(r);
    const uint8_t *p;
    if (st->field_i == 0) {
        st->field_i = 1;
        int device = st->ptype >= PT_DEVICE_FIRST &&
                     st->ptype < PT_RESERVED_FIRST;
        ev->kind = MS_EV_PAYLOAD_FIELD;
        ev->offset = st->part_off;
        ev->length = PART_HDR + (uint64_t)st->plen;
        ms_payload_field *pf = &ev->u.pfield;
        pf->name = device ? "device-specific part" : "unknown optional part";
        pf->value = st->ptype;
        pf->index = st->pflags;
        return MS_NEXT_EVENT;
    }
    if (st->pleft == 0) {
        st->stage = SW_PART_HEADER;
        return MS_GO_ON;
    }
    size_t n = ms_rd_peek(r, MS_MIN(st->pleft, (uint64_t)DATA_VIEW_MAX), &p);
    if (n == 0)
        return MS_NEXT_INPUT;
    data_event(r, ev, p, n, ms_rd_pos(r));
    st->pleft -= n;
    st->left -= n;
    ms_rd_skip(r, n);
    return MS_NEXT_EVENT;
}

static int read_record_end(ms_reader *r)
{
    sw_state *st = ST(r);
    if (st->n_status != 1)
        return MS_FAIL(r, MS_ERR_PAYLOAD, st->rec_off,
                       "DEVICE_DATA record without a DEVICE_STATUS part "
                       "(exactly one is required)");
    st->stage = SW_IMAGE;
    return MS_GO_ON;
}

/* ---- framing ops ------------------------------------------------------------------- */

/* The diagram at the top of this file, stage by stage. */
#define AT(stage) [(stage) - SW_HEADER] /* the table starts at SW_HEADER */
static const ms_stage sw_stages[] = {
    AT(SW_HEADER) = {"HEADER", .emit = read_header},
    AT(SW_VALUE) = {"VALUE", .emit = read_value},
    AT(SW_SKIP) = {"SKIP", .walk = read_skip},
    AT(SW_DATA) = {"DATA", .emit = read_data},
    AT(SW_IMAGE) = {"IMAGE", .emit = emit_image},
    AT(SW_PART_HEADER) = {"PART_HEADER", .emit = read_part_header},
    AT(SW_PART_VALUE) = {"PART_VALUE", .emit = read_part_value},
    AT(SW_PART_FIELDS) = {"PART_FIELDS", .emit = read_part_fields},
    AT(SW_PART_WALK) = {"PART_WALK", .emit = read_part_walk},
    AT(SW_RECORD_END) = {"RECORD_END", .walk = read_record_end},
};
#undef AT
static const ms_stage_table sw_table = MS_STAGE_TABLE(SW_HEADER, sw_stages);

static int sw_finish(ms_reader *r)
{
    sw_state *st = ST(r);
    const char *drv = ms_payload_kind_name((uint32_t)st->kind);
    if (st->stage == SW_HEADER) {
        if (!st->hdr_started)
            return 0; /* the target accepts an end at a record boundary */
        return MS_FAIL(r, MS_ERR_TRUNCATED, r->offset,
                       "%s: input ends inside the record header at %llu "
                       "(%llu of %d bytes)",
                       drv, (unsigned long long)st->rec_off,
                       (unsigned long long)(r->offset - st->rec_off), SW_HDR);
    }
    const char *name = tag_name(st->kind, st->tag);
    uint64_t got = r->offset - st->rec_off - SW_HDR;
    if (st->stage == SW_PART_HEADER || st->stage == SW_PART_VALUE ||
        st->stage == SW_PART_WALK)
        return MS_FAIL(r, MS_ERR_TRUNCATED, r->offset,
                       "%s: input ends inside the %s record at %llu (%llu of "
                       "%llu payload bytes), in its part at %llu",
                       drv, name ? name : "unknown",
                       (unsigned long long)st->rec_off,
                       (unsigned long long)got,
                       (unsigned long long)st->rec_size,
                       (unsigned long long)st->part_off);
    return MS_FAIL(r, MS_ERR_TRUNCATED, r->offset,
                   "%s: input ends inside the %s record at %llu (%llu of %llu "
                   "payload bytes)",
                   drv, name ? name : "unknown",
                   (unsigned long long)st->rec_off, (unsigned long long)got,
                   (unsigned long long)st->rec_size);
}

static void sw_destroy(ms_reader *r)
{
    sw_state *st = ST(r);
    if (!st)
        return;
    ms_hash_state_free(ALLOC(r), st->hash);
    ms_free(ALLOC(r), st->vq_seen);
    ms_u32map_free(ALLOC(r), &st->cfg_seen);
    ms_framing_free(r);
}

int ms_swhdr_init(ms_reader *r, ms_payload_kind kind)
{
    sw_state *st = ms_framing_new(r, sizeof *st);
    if (!st)
        return -1;
    st->kind = kind;
    if (kind != MS_PAYLOAD_MLX5 && kind != MS_PAYLOAD_VIRTIO)
        return MS_FAIL(r, MS_ERR_USAGE, 0, "internal: swhdr kind %d", kind);
    if (!(st->hash = ms_hash_state_new(ALLOC(r))))
        return MS_FAIL(r, MS_ERR_NO_MEMORY, 0, "image hash state");
    if (kind == MS_PAYLOAD_VIRTIO &&
        !(st->vq_seen = ms_calloc(ALLOC(r), 2, VQ_BITMAP)))
        return MS_FAIL(r, MS_ERR_NO_MEMORY, 0, "virtqueue bitmaps");
    return ms_rd_reserve(r, SW_HDR);
}

const ms_framing_ops ms_swhdr_ops = {
    .format = MS_FORMAT_PAYLOAD,
    .stages = &sw_table,
    .stage_at = offsetof(sw_state, stage),
    .finish = sw_finish,
    .destroy = sw_destroy,
};
