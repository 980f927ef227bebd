/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* QEMU return path decoder (spec/qemu-return-path.md).
 *
 * The destination's messages to the source: be16 type, be16 len, then
 * `len` payload bytes.  SHUT ends the stream.  RECV_BITMAP (postcopy
 * recovery) is followed, outside its length, by a be64 bitmap size, the
 * bitmap, and a be64 end mark.  Stages (each resumable at any byte):
 *
 *   START -> HEADER -> PAYLOAD -+-> HEADER ...            (most types)
 *              ^                +-> DONE                  (SHUT; more
 *              |                |                          bytes: trailing)
 *              |                +-> BITMAP_SIZE -> BITMAP -> END_MARK -+
 *              +-------------------------------------------------------+
 *
 * Messages are small (QEMU's reader takes at most 512 payload bytes; the
 * longest valid one is 268), so a header and its payload are gathered
 * whole; the bitmap, which can be large, goes out as MS_EV_DATA views and
 * is never held.
 */
#include "kit.h"
#include "qemu_wire.h"

enum rp_stage {
    RP_START = 0x5250, /* not 0: a zeroed state is caught as invalid */
    RP_HEADER,
    RP_PAYLOAD,
    RP_BITMAP_SIZE,
    RP_BITMAP,
    RP_END_MARK,
    RP_DONE
};

#define RP_VARIABLE (-1)
#define RP_PAYLOAD_MAX (RP_REQ_FIXED + 1 + RP_NAME_MAX)
#define RP_DETECT_MAX 16 /* what the reader gathers for detection */

/* One row per message type: its name and payload length (RP_VARIABLE:
 * checked by the type's own rule).  The one home of these facts. */
static const struct rp_type {
    const char *name;
    int len;
} rp_types[RP_TYPE_MAX + 1] = {
    [0] = {"INVALID", RP_VARIABLE},
    [MS_RP_SHUT] = {"SHUT", 4},
    [MS_RP_PONG] = {"PONG", 4},
    [MS_RP_REQ_PAGES_ID] = {"REQ_PAGES_ID", RP_VARIABLE},
    [MS_RP_REQ_PAGES] = {"REQ_PAGES", RP_REQ_FIXED},
    [MS_RP_RECV_BITMAP] = {"RECV_BITMAP", RP_VARIABLE},
    [MS_RP_RESUME_ACK] = {"RESUME_ACK", 4},
    [MS_RP_SWITCHOVER_ACK] = {"SWITCHOVER_ACK", 0},
};

typedef struct rp_state {
    int stage;
    uint64_t msg_off; /* first byte of the message being read */
    uint16_t type, len;
    uint64_t messages;              /* complete messages so far */
    int have_block;                 /* a REQ_PAGES_ID named a block */
    char block[RP_NAME_MAX + 1];    /* the last REQ_PAGES_ID's block */
    char bm_block[RP_NAME_MAX + 1]; /* RECV_BITMAP's block */
    int switchover_acked;
    uint64_t bitmap_left, bitmap_done;
} rp_state;

#define RST(r) ((rp_state *)(r)->framing)
#define ALLOC(r) (&(r)->opt.allocator)

static const char *type_name(uint16_t type)
{
    return type <= RP_TYPE_MAX ? rp_types[type].name : "unknown";
}

/* ---- length rules ---------------------------------------------------------
 * Returns NULL when `len` is right for `type` (1..RP_TYPE_MAX), else why
 * not.  Variable lengths get their bound here and their exact rule once the
 * payload is read (payload_rule). */
static const char *length_rule(uint16_t type, uint16_t len)
{
    int want = rp_types[type].len;
    if (want != RP_VARIABLE)
        return len == want ? NULL : "wrong length for its type";
    if (type == MS_RP_REQ_PAGES_ID)
        return len >= RP_REQ_FIXED + 1 + 1 && len <= RP_PAYLOAD_MAX
                   ? NULL
                   : "REQ_PAGES_ID holds 12 bytes, a length byte and a "
                     "1..255-byte block name";
    return len >= 1 + 1 && len <= 1 + RP_NAME_MAX
               ? NULL
               : "RECV_BITMAP holds a length byte and a 1..255-byte block "
                 "name";
}

/* A length-prefixed block name at p[0] (the length byte) filling `avail`
 * bytes exactly.  Returns NULL or why not. */
static const char *name_rule(const uint8_t *p, size_t avail)
{
    if ((size_t)p[0] + 1 != avail)
        return "the name's length byte disagrees with the message length";
    if (memchr(p + 1, 0, p[0]))
        return "the block name holds a NUL byte";
    return NULL;
}

/* REQ_PAGES(_ID): a request is one host page: a power of two, and the
 * start is a multiple of it. */
static const char *request_rule(uint64_t start, uint32_t length)
{
    if (length == 0 || (length & (length - 1)))
        return "the requested length is not a power of two";
    if (start % length)
        return "the request's start is not aligned to its length";
    return NULL;
}

/* ---- detection ------------------------------------------------------------
 * No magic: the first message must be right as far as the bytes (at most
 * 16: what the reader gathers for detection) show it. */
int ms_rp_detect(const uint8_t *p, size_t len, size_t *want)
{
    /* Never more than 16 bytes, however much is there: the verdict must
     * not depend on how the input was sliced. */
    len = MS_MIN(len, RP_DETECT_MAX);
    if (len < 2 || p[0] != 0) {
        *want = RP_HDR;
        return len >= 1 && p[0] != 0 ? -1 : 0;
    }
    uint16_t type = ms_be16(p);
    if (type == 0 || type > RP_TYPE_MAX)
        return -1;
    if (len < RP_HDR) {
        *want = RP_HDR;
        return 0;
    }
    uint16_t plen = ms_be16(p + 2);
    if (length_rule(type, plen))
        return -1;
    size_t whole = RP_HDR + (size_t)plen;
    *want = MS_MIN(whole, RP_DETECT_MAX);
    if (len < *want)
        return 0;
    const uint8_t *pl = p + RP_HDR;
    switch (type) {
    case MS_RP_SHUT:
        return ms_be32(pl) <= 1 ? 1 : -1; /* QEMU: 0 or 1 */
    case MS_RP_RESUME_ACK:
        return ms_be32(pl) == RP_RESUME_ACK_VALUE ? 1 : -1;
    case MS_RP_REQ_PAGES_ID:
    case MS_RP_REQ_PAGES:
        if (request_rule(ms_be64(pl), ms_be32(pl + 8)))
            return -1;
        return 1; /* REQ_PAGES_ID's name lies past the 16 bytes */
    case MS_RP_RECV_BITMAP:
        return pl[0] + 1 == plen ? 1 : -1;
    default:
        return 1; /* PONG: any value; SWITCHOVER_ACK: no payload */
    }
}

/* ---- stages
 * ------------------------------------------------------------------ */

static int read_start(ms_reader *r, ms_event *ev)
{
    ev->kind = MS_EV_STREAM_HEADER;
    ev->offset = 0;
    ev->length = 0; /* no header on the wire */
    ev->u.stream.format = MS_FORMAT_QEMU_RETURN_PATH;
    ev->u.stream.channel_count = 1;
    RST(r)->stage = RP_HEADER;
    return MS_NEXT_EVENT;
}

static int read_header(ms_reader *r)
{
    rp_state *st = RST(r);
    const uint8_t *p;
    if (ms_rd_pending(r) == 0)
        return MS_NEXT_INPUT; /* between messages: finish decides */
    st->msg_off = ms_rd_pos(r);
    MS_TAKE_OR_RETURN(r, RP_HDR, &p);
    st->type = ms_be16(p);
    st->len = ms_be16(p + 2);
    if (st->type == 0 || st->type > RP_TYPE_MAX)
        return MS_FAIL(r, MS_ERR_RETURN_PATH, st->msg_off,
                       "message type 0x%04x is unknown (1..%d are known)",
                       st->type, RP_TYPE_MAX);
    const char *bad = length_rule(st->type, st->len);
    if (bad)
        return MS_FAIL(r, MS_ERR_RETURN_PATH, st->msg_off + 2,
                       "%s with length %u: %s", type_name(st->type), st->len,
                       bad);
    if (st->type == MS_RP_SWITCHOVER_ACK && st->switchover_acked)
        return MS_FAIL(r, MS_ERR_RETURN_PATH, st->msg_off,
                       "a second SWITCHOVER_ACK: the destination acks once");
    st->stage = RP_PAYLOAD;
    return MS_GO_ON;
}

static void message_event(rp_state *st, ms_event *ev)
{
    ev->kind = MS_EV_RP_MESSAGE;
    ev->offset = st->msg_off;
    ev->length = RP_HDR + (uint64_t)st->len;
    ev->u.rp.type = st->type;
    ev->u.rp.len = st->len;
    ev->u.rp.name = type_name(st->type);
}

/* REQ_PAGES_ID / REQ_PAGES: the request's fields (and block name). */
static int decode_request(ms_reader *r, const uint8_t *p, ms_rp_info *m)
{
    rp_state *st = RST(r);
    uint64_t at = st->msg_off + RP_HDR;
    m->start = ms_be64(p);
    m->length = ms_be32(p + 8);
    const char *bad = request_rule(m->start, m->length);
    if (bad)
        return MS_FAIL(r, MS_ERR_RETURN_PATH,
                       at + (request_rule(0, m->length) ? 8 : 0),
                       "%s start 0x%llx length 0x%x: %s", type_name(st->type),
                       (unsigned long long)m->start, m->length, bad);
    if (st->type == MS_RP_REQ_PAGES_ID) {
        const uint8_t *name = p + RP_REQ_FIXED;
        if ((bad = name_rule(name, st->len - RP_REQ_FIXED)))
            return MS_FAIL(r, MS_ERR_RETURN_PATH, at + RP_REQ_FIXED,
                           "REQ_PAGES_ID: %s", bad);
        memcpy(st->block, name + 1, name[0]);
        st->block[name[0]] = 0;
        st->have_block = 1;
        m->block_named = 1;
    } else if (!st->have_block) {
        return MS_FAIL(r, MS_ERR_RETURN_PATH, st->msg_off,
                       "REQ_PAGES before any REQ_PAGES_ID: no RAM block "
                       "was named");
    }
    m->block = st->block;
    return 0;
}

static int read_payload(ms_reader *r, ms_event *ev)
{
    rp_state *st = RST(r);
    const uint8_t *p;
    MS_TAKE_OR_RETURN(r, st->len, &p);
    uint64_t at = st->msg_off + RP_HDR;
    message_event(st, ev);
    ms_rp_info *m = &ev->u.rp;
    st->stage = RP_HEADER;
    switch (st->type) {
    case MS_RP_SHUT:
    case MS_RP_PONG:
    case MS_RP_RESUME_ACK:
        m->value = ms_be32(p);
        if (st->type == MS_RP_RESUME_ACK && m->value != RP_RESUME_ACK_VALUE)
            return MS_FAIL(r, MS_ERR_RETURN_PATH, at,
                           "RESUME_ACK value %u; the source accepts only %d",
                           m->value, RP_RESUME_ACK_VALUE);
        if (st->type == MS_RP_SHUT)
            st->stage = RP_DONE;
        break;
    case MS_RP_REQ_PAGES_ID:
    case MS_RP_REQ_PAGES:
        if (decode_request(r, p, m) < 0)
            return MS_NEXT_ERROR;
        break;
    case MS_RP_RECV_BITMAP: {
        const char *bad = name_rule(p, st->len);
        if (bad)
            return MS_FAIL(r, MS_ERR_RETURN_PATH, at, "RECV_BITMAP: %s", bad);
        memcpy(st->bm_block, p + 1, p[0]);
        st->bm_block[p[0]] = 0;
        st->stage = RP_BITMAP_SIZE; /* the event waits for the size */
        return MS_GO_ON;
    }
    case MS_RP_SWITCHOVER_ACK:
        st->switchover_acked = 1;
        break;
    }
    st->messages++;
    return MS_NEXT_EVENT;
}

/* RECV_BITMAP: the be64 size after the message; the event goes out now. */
static int read_bitmap_size(ms_reader *r, ms_event *ev)
{
    rp_state *st = RST(r);
    const uint8_t *p;
    uint64_t at = ms_rd_pos(r);
    MS_TAKE_OR_RETURN(r, 8, &p);
    uint64_t size = ms_be64(p);
    if (size % 8)
        return MS_FAIL(r, MS_ERR_RETURN_PATH, at,
                       "RECV_BITMAP bitmap size %llu is not a multiple of 8",
                       (unsigned long long)size);
    if (size > r->opt.max_record_payload)
        return MS_FAIL_LIMIT(r, MS_LIMIT_MAX_RECORD_PAYLOAD, at,
                             "RECV_BITMAP bitmap of %llu bytes exceeds "
                             "max_record_payload (%llu)",
                             (unsigned long long)size,
                             (unsigned long long)r->opt.max_record_payload);
    message_event(st, ev);
    ev->length += 8 + size + 8;
    ev->u.rp.block = st->bm_block;
    ev->u.rp.block_named = 1;
    ev->u.rp.bitmap_size = size;
    ev->u.rp.bitmap_offset = at + 8;
    st->bitmap_left = size;
    st->bitmap_done = 0;
    st->stage = RP_BITMAP;
    return MS_NEXT_EVENT;
}

/* The bitmap: views of the input, as much as each slice holds. */
static int read_bitmap(ms_reader *r, ms_event *ev)
{
    rp_state *st = RST(r);
    if (st->bitmap_left == 0) {
        st->stage = RP_END_MARK;
        return MS_GO_ON;
    }
    memset(ev, 0, sizeof *ev);
    ms_data_info *d;
    size_t n = ms_rd_view(r, ev, st->bitmap_left, &d);
    if (n == 0)
        return MS_NEXT_INPUT;
    d->image_offset = st->bitmap_done; /* within the bitmap */
    st->bitmap_done += n;
    st->bitmap_left -= n;
    return MS_NEXT_EVENT;
}

static int read_end_mark(ms_reader *r)
{
    rp_state *st = RST(r);
    const uint8_t *p;
    uint64_t at = ms_rd_pos(r);
    MS_TAKE_OR_RETURN(r, 8, &p);
    if (ms_be64(p) != RP_BITMAP_END)
        return MS_FAIL(r, MS_ERR_RETURN_PATH, at,
                       "RECV_BITMAP end mark 0x%016llx, expected "
                       "0x%016llx",
                       (unsigned long long)ms_be64(p),
                       (unsigned long long)RP_BITMAP_END);
    st->messages++;
    st->stage = RP_HEADER;
    return MS_GO_ON;
}

/* ---- framing ops
 * ------------------------------------------------------------- */

/* The diagram at the top of this file, stage by stage. */
#define AT(stage) [(stage) - RP_START] /* the table starts at RP_START */
static const ms_stage rp_stages[] = {
    AT(RP_START) = {"START", .emit = read_start},
    AT(RP_HEADER) = {"HEADER", .walk = read_header},
    AT(RP_PAYLOAD) = {"PAYLOAD", .emit = read_payload},
    AT(RP_BITMAP_SIZE) = {"BITMAP_SIZE", .emit = read_bitmap_size},
    AT(RP_BITMAP) = {"BITMAP", .emit = read_bitmap},
    AT(RP_END_MARK) = {"END_MARK", .walk = read_end_mark},
    AT(RP_DONE) = {"DONE", .ends_after = "SHUT"},
};
#undef AT
static const ms_stage_table rp_table = MS_STAGE_TABLE(RP_START, rp_stages);

/* QEMU's destination always ends a return path with SHUT (also when it
 * failed: SHUT 1); the source waits for it on a normal completion.  Input
 * that stops between messages before SHUT lost its tail. */
static int rp_finish(ms_reader *r)
{
    rp_state *st = RST(r);
    if (st->stage == RP_DONE)
        return 0;
    if (st->stage == RP_HEADER && r->stash_len == 0)
        return MS_FAIL(r, MS_ERR_MISSING_END, r->offset,
                       "input ends after %llu messages without SHUT",
                       (unsigned long long)st->messages);
    if (st->stage == RP_START)
        return MS_FAIL(r, MS_ERR_MISSING_END, r->offset,
                       "no message: a return path ends with SHUT");
    if (st->stage == RP_HEADER)
        return MS_FAIL(r, MS_ERR_TRUNCATED, r->offset,
                       "input ends inside the message header at %llu",
                       (unsigned long long)st->msg_off);
    return MS_FAIL(r, MS_ERR_TRUNCATED, r->offset,
                   "input ends inside the %s message at %llu",
                   type_name(st->type), (unsigned long long)st->msg_off);
}

static int ms_qemu_rp_init(ms_reader *r)
{
    if (!ms_framing_new(r, sizeof(rp_state)))
        return -1;
    return ms_rd_reserve(r, RP_PAYLOAD_MAX);
}

const ms_framing_ops ms_qemu_rp_ops = {
    .format = MS_FORMAT_QEMU_RETURN_PATH,
    .init = ms_qemu_rp_init,
    .stages = &rp_table,
    .stage_at = offsetof(rp_state, stage),
    .finish = rp_finish,
    .destroy = ms_framing_free,
};
