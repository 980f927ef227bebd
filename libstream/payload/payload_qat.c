/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* Intel QAT VF payload (spec/payloads.md, "QAT").
 *
 * The driver's migration state is one 4096-byte buffer: a setup block at
 * offset 0 (all PRE_COPY exposes), the state block right after it (added
 * in STOP_COPY), then an unused tail.  STOP_COPY hands out the buffer up to
 * its end, so a complete stream is exactly 4096 bytes.  Each block is a
 * 16-byte preamble and n_sects sections; a section is a 16-byte header and
 * `size` payload bytes whose first `sub_sects` sections are nested in it.
 *
 * Stages (each resumable at any byte; bytes are gathered into the
 * decoder's own 4096-byte copy, so memory is fixed):
 *
 *   PRE -> PRE_EV -> BODY (DATA) -> WALK -> BLOCK_EV --(setup)--> PRE ...
 *                                       |(state)
 *                                       v
 *                               TAIL_EV -> TAIL -> TAIL_DATA -> END
 *
 * The walk checks every section header inside its parent before reading
 * any field of it (the kernel read a size first, then checked), and emits
 * one FIELD per section, depth first, named by its dotted path.
 *
 * Events (spec/payloads.md section 2; images split the stream as the data
 * fd hands it out, an image event follows its last byte):
 *   RECORD "setup block", DATA [0,S), FIELD per section,
 *   IMAGE seq 0 initial [0,S)         -- unless the carrier says byte 0 was
 *                                        read in STOP_COPY (no PRE_COPY);
 *   RECORD "state block", DATA [S,T), FIELD per section,
 *   RECORD "unused tail", DATA [T,4096)  (when T < 4096),
 *   IMAGE seq 1 final [S,4096) (without PRE_COPY seq 0, [0,4096)).
 * Event offsets never decrease.
 */
#include <stdio.h>

#include "payload_impl.h"

#define QAT_BUF 4096u
#define QAT_MAGIC 0xADF5CAEAu
#define QAT_VERSION 1u
#define QAT_PREH 16u
#define QAT_SECT_HDR 16u
#define QAT_ID_LEN 8u
/* Each nesting level needs a 16-byte header inside its parent. */
#define QAT_MAX_DEPTH (QAT_BUF / QAT_SECT_HDR)
#define QAT_PATH_MAX (QAT_MAX_DEPTH * (QAT_ID_LEN + 1) + 1)

enum q_stage {
    Q_PRE = 0x5141, /* not 0: a zeroed state is caught as invalid */
    Q_PRE_EV,
    Q_BODY,
    Q_WALK,
    Q_BLOCK_EV,
    Q_TAIL_EV,
    Q_TAIL,
    Q_TAIL_DATA,
    Q_END
};

/* Sections the target looks up (and fails without): the children a
 * section (or, path "", a block) must have. */
typedef struct q_req {
    int block;            /* 0 setup, 1 state */
    const char *path;     /* the parent; "ETRBAR.bnk" matches every bank */
    const char *const *children;
} q_req;

static const char *const req_setup[] = {"CONFIG", NULL};
static const char *const req_state[] = {"GENER", "MISCBAR", "ETRBAR", NULL};
static const char *const req_config[] = {"gencap", "svcmap", "extdc", NULL};
static const char *const req_gener[] = {"iovinit", "compver", "sla", NULL};
static const char *const req_misc[] = {"vimsk", "vimpv", "pf2vm", "vm2pf",
                                       NULL};
static const char *const req_etr[] = {"bnk0", NULL};
static const char *const req_bank[] = {"mregs", NULL};

static const q_req q_reqs[] = {
    {0, "", req_setup},         {1, "", req_state},
    {0, "CONFIG", req_config},  {1, "GENER", req_gener},
    {1, "MISCBAR", req_misc},   {1, "ETRBAR", req_etr},
    {1, "ETRBAR.bnk", req_bank},
};

typedef struct q_frame {
    uint32_t start, end; /* the parent's payload: [start, end) of buf */
    uint32_t pos;        /* next child's header */
    uint32_t n, i;       /* children declared, children walked */
    uint32_t owner;      /* the parent's header offset (blocks: preamble) */
    uint32_t plen;       /* length of the parent's path */
    const char *const *req;
} q_frame;

typedef struct q_state {
    int stage;
    unsigned next_ev; /* the *_EV stage: index of the event it emits next */
    uint64_t base;       /* absolute offset of the payload's first byte */
    uint32_t have;       /* bytes of buf filled */
    int block;           /* 0 setup, 1 state */
    uint32_t blk;        /* the block's preamble offset */
    uint32_t blk_size;   /* its preamble's size field */
    uint16_t n_sects;
    uint32_t state_at;   /* the state block's offset (setup block's end) */
    uint32_t tail_at;    /* the unused tail's offset */
    int pre_copy;        /* the setup block is an initial image (unless the
                            carrier read byte 0 in STOP_COPY) */
    int ph_known;        /* the current block's first-byte phase asked */
    uint32_t depth;
    q_frame stack[QAT_MAX_DEPTH];
    char path[QAT_PATH_MAX];
    uint8_t buf[QAT_BUF];
} q_state;

#define QST(r) ((q_state *)(r)->framing)

static const char *block_name(int block)
{
    return block ? "state block" : "setup block";
}

/* Copy input into buf until it holds `want` bytes (<= QAT_BUF). */
static int gather(ms_reader *r, q_state *st, uint32_t want)
{
    while (st->have < want) {
        const uint8_t *p;
        size_t n = ms_rd_peek(r, want - st->have, &p);
        if (n == 0)
            return 0;
        memcpy(st->buf + st->have, p, n);
        ms_rd_skip(r, n);
        st->have += (uint32_t)n;
    }
    return 1;
}

static ms_phase image_phase(const q_state *st, int block)
{
    return block == 0 && st->pre_copy ? MS_PHASE_INITIAL : MS_PHASE_FINAL;
}

/* First byte of the image bytes at `off` belong to. */
static uint32_t image_start(const q_state *st, uint32_t off)
{
    return st->pre_copy && off >= st->state_at ? st->state_at : 0;
}

static void data_event(const q_state *st, ms_event *ev, uint32_t off,
                       uint32_t len)
{
    ms_data_info *d = ms_ev_data(ev, st->buf + off, len, st->base + off, 0);
    d->seq = st->pre_copy && off >= st->state_at ? 1 : 0;
    d->phase = off < st->state_at ? image_phase(st, 0) : MS_PHASE_FINAL;
    d->image_offset = off - image_start(st, off);
}

/* The image [off, end) after its last byte (event length 0); it is
 * self-contained (FULL) when it starts the stream. */
static void image_event(const ms_reader *r, const q_state *st, ms_event *ev,
                        uint32_t seq, ms_phase phase, uint32_t off,
                        uint32_t end, uint32_t records)
{
    ev->kind = MS_EV_PAYLOAD_IMAGE;
    ev->offset = st->base + end;
    ev->length = 0;
    ev->u.image.seq = seq;
    ev->u.image.phase = phase;
    ev->u.image.flags = off == 0 ? MS_IMAGE_FULL : 0;
    ev->u.image.length = end - off;
    ev->u.image.unit_count = records;
    if (r->opt.verify_checks)
        ev->u.image.hash = ms_hash64(st->buf + off, end - off, 0);
}

/* ---- block preamble --------------------------------------------------------- */

static int q_pre(ms_reader *r)
{
    q_state *st = QST(r);
    uint32_t b = st->blk;
    if (!st->ph_known && ms_rd_pending(r)) {
        ms_phase ph = ms_payload_phase_at(r, ms_rd_pos(r));
        st->ph_known = 1;
        if (st->block == 0) {
            st->pre_copy = ph != MS_PHASE_FINAL;
        } else if (ph == MS_PHASE_INITIAL || ph == MS_PHASE_MIDDLE) {
            return MS_FAIL(r, MS_ERR_PAYLOAD, st->base + b,
                           "the state block was read in the %s phase, but "
                           "PRE_COPY exposes only the setup block",
                           ms_phase_name(ph));
        }
    }
    if (!gather(r, st, b + QAT_PREH))
        return MS_NEXT_INPUT;
    const uint8_t *p = st->buf + b;
    uint64_t at = st->base + b;
    const char *what = block_name(st->block);
    if (ms_le32(p) != QAT_MAGIC)
        return MS_FAIL(r, MS_ERR_BAD_MAGIC, at,
                       "%s magic 0x%08x; expected 0xADF5CAEA (bytes ea ca "
                       "f5 ad)",
                       what, ms_le32(p));
    if (ms_le32(p + 4) > QAT_VERSION)
        return MS_FAIL(r, MS_ERR_VERSION, at + 4,
                       "%s version %u; the driver reads versions up to %u",
                       what, ms_le32(p + 4), QAT_VERSION);
    if (ms_le16(p + 8) != QAT_PREH)
        return MS_FAIL(r, MS_ERR_PAYLOAD, at + 8,
                       "%s preamble length %u; the preamble is %u bytes",
                       what, ms_le16(p + 8), QAT_PREH);
    st->n_sects = ms_le16(p + 10);
    st->blk_size = ms_le32(p + 12);
    if (st->blk_size > QAT_BUF - b - QAT_PREH)
        return MS_FAIL(r, MS_ERR_PAYLOAD, at + 12,
                       "%s of %u bytes after its preamble at offset %u "
                       "overruns the %u-byte state buffer (%u bytes left)",
                       what, st->blk_size, b, QAT_BUF,
                       QAT_BUF - b - QAT_PREH);
    if (st->block == 0 && st->blk_size > QAT_BUF - 2 * QAT_PREH)
        return MS_FAIL(r, MS_ERR_PAYLOAD, at + 12,
                       "setup block of %u bytes after its preamble leaves no "
                       "room in the %u-byte state buffer for the state "
                       "block's %u-byte preamble",
                       st->blk_size, QAT_BUF, QAT_PREH);
    st->stage = Q_PRE_EV;
    return MS_GO_ON;
}

static int q_pre_ev(ms_reader *r, ms_event *ev)
{
    q_state *st = QST(r);
    ev->kind = MS_EV_PAYLOAD_RECORD;
    ev->offset = st->base + st->blk;
    ev->length = QAT_PREH + st->blk_size;
    ms_payload_record *pr = &ev->u.precord;
    pr->payload_kind = MS_PAYLOAD_QAT;
    pr->name = block_name(st->block);
    pr->size = st->blk_size;
    pr->phase = image_phase(st, st->block); /* a record takes its image's */
    st->stage = Q_BODY;
    return MS_NEXT_EVENT;
}

static const char *const *required(int block, const char *path)
{
    for (size_t i = 0; i < sizeof q_reqs / sizeof q_reqs[0]; i++) {
        const q_req *q = &q_reqs[i];
        if (q->block != block)
            continue;
        if (!strcmp(q->path, path))
            return q->children;
        if (!strcmp(q->path, "ETRBAR.bnk") &&
            !strncmp(path, "ETRBAR.bnk", 10) && path[10] &&
            !strchr(path + 10, '.'))
            return q->children;
    }
    return NULL;
}

static void push(q_state *st, uint32_t start, uint32_t end, uint32_t n,
                 uint32_t owner, uint32_t plen, const char *const *req)
{
    q_frame *f = &st->stack[st->depth++];
    f->start = f->pos = start;
    f->end = end;
    f->n = n;
    f->i = 0;
    f->owner = owner;
    f->plen = plen;
    f->req = req;
}

/* The block's bytes, then its sections are walked. */
static int q_body(ms_reader *r, ms_event *ev)
{
    q_state *st = QST(r);
    uint32_t start = st->blk + QAT_PREH;
    if (!gather(r, st, start + st->blk_size))
        return MS_NEXT_INPUT;
    st->depth = 0;
    push(st, start, start + st->blk_size, st->n_sects, st->blk, 0,
         required(st->block, ""));
    st->stage = Q_WALK;
    data_event(st, ev, st->blk, QAT_PREH + st->blk_size);
    return MS_NEXT_EVENT;
}

/* ---- the section walk --------------------------------------------------------- */

/* "the setup block" or "section ETRBAR.bnk0" for the frame's parent. */
static const char *parent_name(q_state *st, const q_frame *f, char *out,
                               size_t cap)
{
    if (f->plen == 0)
        snprintf(out, cap, "the %s", block_name(st->block));
    else
        snprintf(out, cap, "section %.*s", (int)f->plen, st->path);
    return out;
}

/* Bytes 0..7 of a section id: 1 to 8 printable characters, NUL padded. */
static int id_ok(const uint8_t *id)
{
    unsigned k = 0;
    while (k < QAT_ID_LEN && id[k])
        if (id[k] < 0x21 || id[k] > 0x7e)
            return 0;
        else
            k++;
    if (k == 0)
        return 0;
    for (unsigned i = k; i < QAT_ID_LEN; i++)
        if (id[i])
            return 0;
    return 1;
}

static int id_is(const uint8_t *id, const char *name)
{
    size_t n = strlen(name);
    return n <= QAT_ID_LEN && !memcmp(id, name, n) &&
           (n == QAT_ID_LEN || id[n] == 0);
}

/* A frame whose children are all walked: the block's sections must fill
 * it; the children the target looks up must be there. */
static int frame_done(ms_reader *r, q_state *st)
{
    q_frame *f = &st->stack[st->depth - 1];
    char pn[QAT_PATH_MAX + 32];
    if (st->depth == 1 && f->pos != f->end)
        return MS_FAIL(r, MS_ERR_PAYLOAD, st->base + f->pos,
                       "the %s's %u sections end at offset %u, but its "
                       "preamble's size says it ends at %u",
                       block_name(st->block), f->n, f->pos, f->end);
    for (const char *const *c = f->req; c && *c; c++) {
        uint32_t at = f->start, i;
        for (i = 0; i < f->n; i++) {
            if (id_is(st->buf + at, *c))
                break;
            at += QAT_SECT_HDR + ms_le32(st->buf + at + 8);
        }
        if (i == f->n)
            return MS_FAIL(r, MS_ERR_PAYLOAD, st->base + f->owner,
                           "%s has no \"%s\" section; the target looks it "
                           "up and fails without it",
                           parent_name(st, f, pn, sizeof pn), *c);
    }
    st->depth--;
    return MS_GO_ON;
}

static int q_walk(ms_reader *r, ms_event *ev)
{
    q_state *st = QST(r);
    if (st->depth == 0) {
        st->stage = Q_BLOCK_EV;
        st->next_ev = 0;
        return MS_GO_ON;
    }
    q_frame *f = &st->stack[st->depth - 1];
    if (f->i == f->n)
        return frame_done(r, st);
    char pn[QAT_PATH_MAX + 32];
    uint32_t h = f->pos;
    uint64_t at = st->base + h;
    /* The header must lie inside the parent before any of it is read. */
    if (f->end - h < QAT_SECT_HDR)
        return MS_FAIL(r, MS_ERR_PAYLOAD, at,
                       "section %u of %u in %s: its 16-byte header at "
                       "offset %u does not fit (%s ends at %u)",
                       f->i + 1, f->n, parent_name(st, f, pn, sizeof pn), h,
                       f->plen ? "the parent" : "the block", f->end);
    const uint8_t *p = st->buf + h;
    if (!id_ok(p))
        return MS_FAIL(r, MS_ERR_PAYLOAD, at,
                       "section %u of %u in %s: its id is not 1 to 8 "
                       "printable characters padded with NULs",
                       f->i + 1, f->n, parent_name(st, f, pn, sizeof pn));
    for (uint32_t i = 0, s = f->start; i < f->i; i++) {
        if (!memcmp(st->buf + s, p, QAT_ID_LEN))
            return MS_FAIL(r, MS_ERR_PAYLOAD, at,
                           "section %u of %u in %s: a second \"%.8s\" "
                           "section (the target uses the first)",
                           f->i + 1, f->n, parent_name(st, f, pn, sizeof pn),
                           (const char *)p);
        s += QAT_SECT_HDR + ms_le32(st->buf + s + 8);
    }
    uint32_t size = ms_le32(p + 8), sub = ms_le32(p + 12);
    uint32_t room = f->end - h - QAT_SECT_HDR;
    /* the path: the parent's, a dot, this id */
    size_t plen = f->plen;
    if (plen)
        st->path[plen++] = '.';
    size_t idlen = strnlen((const char *)p, QAT_ID_LEN);
    memcpy(st->path + plen, p, idlen);
    plen += idlen;
    st->path[plen] = 0;
    if (size > room)
        return MS_FAIL(r, MS_ERR_PAYLOAD, at + 8,
                       "section %s of %u bytes at offset %u overruns %s "
                       "(%u bytes left)",
                       st->path, size, h, parent_name(st, f, pn, sizeof pn),
                       room);
    const char *const *req = required(st->block, st->path);
    if (st->block == 0 && size > 8 &&
        (!strcmp(st->path, "CONFIG.gencap") ||
         !strcmp(st->path, "CONFIG.svcmap") ||
         !strcmp(st->path, "CONFIG.extdc")))
        return MS_FAIL(r, MS_ERR_PAYLOAD, at + 8,
                       "capability section %s of %u bytes; the target "
                       "compares masks of at most 8 bytes",
                       st->path, size);
    ev->kind = MS_EV_PAYLOAD_FIELD;
    ev->offset = at;
    ev->length = QAT_SECT_HDR + (uint64_t)size;
    ms_payload_field *pf = &ev->u.pfield;
    pf->name = st->path;
    pf->data = p + QAT_SECT_HDR;
    pf->size = size;
    pf->index = st->depth - 1;
    if (!sub) {
        switch (size) {
        case 1: pf->value = p[QAT_SECT_HDR]; break;
        case 2: pf->value = ms_le16(p + QAT_SECT_HDR); break;
        case 4: pf->value = ms_le32(p + QAT_SECT_HDR); break;
        case 8: pf->value = ms_le64(p + QAT_SECT_HDR); break;
        }
    }
    f->pos = h + QAT_SECT_HDR + size;
    f->i++;
    if (sub || req) {
        if (st->depth == QAT_MAX_DEPTH) /* cannot happen: 16 bytes a level */
            return MS_FAIL(r, MS_ERR_PAYLOAD, at,
                           "sections nested deeper than %u levels",
                           QAT_MAX_DEPTH);
        push(st, h + QAT_SECT_HDR, h + QAT_SECT_HDR + size, sub, h,
             (uint32_t)plen, req);
    }
    return MS_NEXT_EVENT;
}

/* ---- after a block: the initial image ------------------------------------------ */

static int q_block_ev(ms_reader *r, ms_event *ev)
{
    q_state *st = QST(r);
    uint32_t end = st->blk + QAT_PREH + st->blk_size;
    if (st->block == 0) {
        st->block = 1;
        st->blk = st->state_at = end;
        st->ph_known = 0;
        st->stage = Q_PRE;
        if (st->pre_copy) {
            image_event(r, st, ev, 0, MS_PHASE_INITIAL, 0, end, 1);
            return MS_NEXT_EVENT;
        }
    } else {
        st->tail_at = end;
        st->stage = Q_TAIL_EV;
    }
    return MS_GO_ON;
}

/* ---- the unused tail -------------------------------------------------------------- */

static int q_tail_ev(ms_reader *r, ms_event *ev)
{
    q_state *st = QST(r);
    st->stage = Q_TAIL;
    if (st->tail_at == QAT_BUF)
        return MS_GO_ON;
    ev->kind = MS_EV_PAYLOAD_RECORD;
    ev->offset = st->base + st->tail_at;
    ev->length = QAT_BUF - st->tail_at;
    ev->u.precord.payload_kind = MS_PAYLOAD_QAT;
    ev->u.precord.name = "unused tail";
    ev->u.precord.size = QAT_BUF - st->tail_at;
    ev->u.precord.phase = MS_PHASE_FINAL;
    return MS_NEXT_EVENT;
}

static int q_tail(ms_reader *r)
{
    q_state *st = QST(r);
    if (!gather(r, st, QAT_BUF))
        return MS_NEXT_INPUT;
    st->stage = Q_TAIL_DATA;
    st->next_ev = 0;
    return MS_GO_ON;
}

static int q_tail_data(ms_reader *r, ms_event *ev)
{
    q_state *st = QST(r);
    if (st->next_ev++ == 0 && st->tail_at < QAT_BUF) {
        data_event(st, ev, st->tail_at, QAT_BUF - st->tail_at);
        return MS_NEXT_EVENT;
    }
    st->stage = Q_END;
    /* records: the state block, the tail, and without PRE_COPY the setup
     * block */
    uint32_t records = (st->pre_copy ? 1u : 2u) + (st->tail_at < QAT_BUF);
    image_event(r, st, ev, st->pre_copy ? 1 : 0, MS_PHASE_FINAL,
                image_start(st, st->state_at), QAT_BUF, records);
    return MS_NEXT_EVENT;
}

/* ---- framing ops ---------------------------------------------------------------------- */

/* The diagram at the top of this file, stage by stage. */
#define AT(stage) [(stage) - Q_PRE] /* the table starts at Q_PRE */
static const ms_stage q_stages[] = {
    AT(Q_PRE) = {"PRE", .walk = q_pre},
    AT(Q_PRE_EV) = {"PRE_EV", .emit = q_pre_ev},
    AT(Q_BODY) = {"BODY", .emit = q_body},
    AT(Q_WALK) = {"WALK", .emit = q_walk},
    AT(Q_BLOCK_EV) = {"BLOCK_EV", .emit = q_block_ev},
    AT(Q_TAIL_EV) = {"TAIL_EV", .emit = q_tail_ev},
    AT(Q_TAIL) = {"TAIL", .walk = q_tail},
    AT(Q_TAIL_DATA) = {"TAIL_DATA", .emit = q_tail_data},
    AT(Q_END) = {"END", .ends_after = "the 4096-byte QAT state buffer"},
};
#undef AT
static const ms_stage_table q_table = MS_STAGE_TABLE(Q_PRE, q_stages);

static int q_finish(ms_reader *r)
{
    q_state *st = QST(r);
    if (st->stage == Q_END)
        return 0;
    if (st->have == 0)
        return MS_FAIL(r, MS_ERR_TRUNCATED, r->offset,
                       "empty stream: a QAT stream is the whole %u-byte "
                       "state buffer",
                       QAT_BUF);
    if (st->block == 1 && st->have == st->state_at)
        return MS_FAIL(r, MS_ERR_TRUNCATED, r->offset,
                       "the stream ends after the setup block (what "
                       "PRE_COPY sends); the state block and the rest of the "
                       "%u-byte buffer, sent in STOP_COPY, are missing",
                       QAT_BUF);
    return MS_FAIL(r, MS_ERR_TRUNCATED, r->offset,
                   "QAT stream ends after %u bytes, inside the %s; a "
                   "complete stream is the whole %u-byte state buffer "
                   "(setup block, state block, unused tail)",
                   st->have,
                   st->stage == Q_TAIL ? "unused tail"
                                       : block_name(st->block),
                   QAT_BUF);
}

int ms_qat_init(ms_reader *r)
{
    q_state *st = ms_framing_new(r, sizeof *st);
    if (!st)
        return -1;
    st->base = ms_rd_pos(r);
    st->pre_copy = 1;
    st->state_at = QAT_BUF; /* not known yet */
    return 0;
}

const ms_framing_ops ms_qat_ops = {
    .format = MS_FORMAT_PAYLOAD,
    .stages = &q_table,
    .stage_at = offsetof(q_state, stage),
    .finish = q_finish,
    .destroy = ms_framing_free,
};
