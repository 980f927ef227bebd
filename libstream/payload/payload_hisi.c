/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* HiSilicon accelerator VF payload (spec/payloads.md, "HiSilicon").
 *
 * The whole stream is one 176-byte little-endian struct acc_vf_data.  Its
 * first 40 bytes ("match data") are all PRE_COPY ever exposes; STOP_COPY
 * makes the rest available, or nothing more when the VF's queue manager
 * was not ready.  A stream is therefore 40 bytes (nothing to load) or 176.
 *
 * Stages (each resumable at any byte; the bytes are gathered into the
 * decoder's own 176-byte copy, so memory is fixed):
 *
 *   MAGIC (8 bytes) -> MATCH (40) -> MATCH_EV -> REGS (176) -> REGS_EV -> END
 *                                               ^ a clean end is allowed here
 *
 * Events (spec/payloads.md section 2: images split the stream as the data
 * fd hands it out; an image event follows its last byte):
 *   RECORD "match data" [0,40), DATA [0,40), FIELD per match field,
 *   IMAGE seq 0 initial (40 bytes)   -- unless the carrier says byte 0 was
 *                                       read in STOP_COPY (no PRE_COPY);
 *   RECORD "registers" [40,176), DATA [40,176), FIELD registers and the 4
 *   DMA addresses, IMAGE seq 1 final (136 bytes; without PRE_COPY seq 0,
 *   176 bytes: the whole struct).  Event offsets never decrease.
 */
#include "payload_impl.h"

#define HISI_MATCH_SIZE 40u
#define HISI_STRUCT_SIZE 176u
#define HISI_MAGIC_V1 0xCDCDCDCDFEEDAACCull
#define HISI_MAGIC_V2 0xAACCFEEDDECADEDEull
#define HISI_MAJOR 1u

enum h_stage {
    H_MAGIC = 0x4853, /* not 0: a zeroed state is caught as invalid */
    H_MATCH,
    H_MATCH_EV,
    H_REGS,
    H_REGS_EV,
    H_END
};

typedef struct h_field {
    const char *name;
    uint8_t off, size;
} h_field;

/* Match data fields; major/minor only in the V2 layout (V1 has reserved
 * words there). */
static const h_field match_fields[] = {
    {"magic", 0, 8},        {"qp_num", 8, 4},       {"dev_id", 12, 4},
    {"que_iso_cfg", 16, 4}, {"qp_base", 20, 4},     {"vf_qm_state", 24, 4},
    {"major_ver", 28, 2},   {"minor_ver", 30, 2},
};
#define MATCH_FIELDS_V1 6u
#define MATCH_FIELDS_V2 8u

static const h_field reg_fields[] = {
    {"registers", 40, 104}, {"eqe_dma", 144, 8}, {"aeqe_dma", 152, 8},
    {"sqc_dma", 160, 8},    {"cqc_dma", 168, 8},
};
#define REG_FIELDS 5u

typedef struct h_state {
    int stage;
    unsigned next_ev; /* the *_EV stage: index of the event it emits next */
    uint64_t base;    /* absolute offset of the payload's first byte */
    size_t have;      /* bytes of d[] filled */
    uint8_t d[HISI_STRUCT_SIZE];
    int version;      /* layout: 1 or 2 */
    int pre_copy;     /* the match data are an initial image of their own
                         (unless the carrier read byte 0 in STOP_COPY) */
    int ph0_known, ph40_known; /* the carrier asked about bytes 0 / 40 */
} h_state;

#define HST(r) ((h_state *)(r)->framing)

/* Copy input into d[] until it holds `want` bytes.  1: done, 0: more
 * input needed (everything available was taken). */
static int gather(ms_reader *r, h_state *st, size_t want)
{
    while (st->have < want) {
        const uint8_t *p;
        size_t n = ms_rd_peek(r, want - st->have, &p);
        if (n == 0)
            return 0;
        memcpy(st->d + st->have, p, n);
        ms_rd_skip(r, n);
        st->have += n;
    }
    return 1;
}

static uint64_t field_value(const uint8_t *p, unsigned size)
{
    switch (size) {
    case 2: return ms_le16(p);
    case 4: return ms_le32(p);
    case 8: return ms_le64(p);
    }
    return 0;
}

static void field_event(const h_state *st, ms_event *ev, const h_field *f)
{
    ev->kind = MS_EV_PAYLOAD_FIELD;
    ev->offset = st->base + f->off;
    ev->length = f->size;
    ev->u.pfield.name = f->name;
    ev->u.pfield.value = field_value(st->d + f->off, f->size);
    ev->u.pfield.data = st->d + f->off;
    ev->u.pfield.size = f->size;
    /* the magic's index is the layout version it names */
    ev->u.pfield.index = f->off == 0 ? (uint32_t)st->version : 0;
}

static void record_event(const h_state *st, ms_event *ev, const char *name,
                         uint32_t off, uint32_t size, ms_phase phase)
{
    ev->kind = MS_EV_PAYLOAD_RECORD;
    ev->offset = st->base + off;
    ev->length = size;
    ev->u.precord.payload_kind = MS_PAYLOAD_HISI_ACC;
    ev->u.precord.name = name;
    ev->u.precord.size = size;
    ev->u.precord.phase = phase;
}

/* Bytes [off, off+size) of the struct as one view; `img` is the offset of
 * the first byte of the image they belong to. */
static void data_event(const h_state *st, ms_event *ev, uint32_t off,
                       uint32_t size, uint32_t img, uint32_t seq,
                       ms_phase phase)
{
    ms_data_info *d = ms_ev_data(ev, st->d + off, size, st->base + off, 0);
    d->seq = seq;
    d->phase = phase;
    d->image_offset = off - img;
}

/* The image [off, off+length) after its last byte (event length 0); it is
 * self-contained (FULL) when it starts the stream. */
static void image_event(const ms_reader *r, const h_state *st, ms_event *ev,
                        uint32_t seq, ms_phase phase, uint32_t off,
                        uint32_t length, uint32_t records)
{
    ev->kind = MS_EV_PAYLOAD_IMAGE;
    ev->offset = st->base + off + length;
    ev->length = 0;
    ev->u.image.seq = seq;
    ev->u.image.phase = phase;
    ev->u.image.flags = off == 0 ? MS_IMAGE_FULL : 0;
    ev->u.image.length = length;
    ev->u.image.unit_count = records;
    if (r->opt.verify_checks)
        ev->u.image.hash = ms_hash64(st->d + off, length, 0);
}

/* The phase the carrier gives the byte about to be read (asked while that
 * byte is in the input, so a later ms_reader_set_phase cannot change it). */
static ms_phase phase_here(const ms_reader *r)
{
    return ms_payload_phase_at(r, ms_rd_pos(r));
}

static int h_magic(ms_reader *r)
{
    h_state *st = HST(r);
    if (!st->ph0_known && ms_rd_pending(r)) {
        st->ph0_known = 1;
        st->pre_copy = phase_here(r) != MS_PHASE_FINAL;
    }
    if (!gather(r, st, 8))
        return MS_NEXT_INPUT;
    uint64_t magic = ms_le64(st->d);
    if (magic == HISI_MAGIC_V1)
        st->version = 1;
    else if (magic == HISI_MAGIC_V2)
        st->version = 2;
    else
        return MS_FAIL(r, MS_ERR_BAD_MAGIC, st->base,
                       "acc_vf_data magic 0x%016llx; expected V2 "
                       "0xAACCFEEDDECADEDE or V1 0xCDCDCDCDFEEDAACC",
                       (unsigned long long)magic);
    st->stage = H_MATCH;
    return MS_GO_ON;
}

static int h_match(ms_reader *r)
{
    h_state *st = HST(r);
    if (!gather(r, st, HISI_MATCH_SIZE))
        return MS_NEXT_INPUT;
    if (st->version == 2 && ms_le16(st->d + 28) != HISI_MAJOR)
        return MS_FAIL(r, MS_ERR_VERSION, st->base + 28,
                       "acc_vf_data major version %u; the driver loads only "
                       "major version %u",
                       ms_le16(st->d + 28), HISI_MAJOR);
    st->stage = H_MATCH_EV;
    st->next_ev = 0;
    return MS_GO_ON;
}

static int h_match_ev(ms_reader *r, ms_event *ev)
{
    h_state *st = HST(r);
    unsigned nf = st->version == 2 ? MATCH_FIELDS_V2 : MATCH_FIELDS_V1;
    unsigned k = st->next_ev++;
    /* a record takes its image's phase */
    ms_phase img_phase = st->pre_copy ? MS_PHASE_INITIAL : MS_PHASE_FINAL;
    if (k == 0)
        record_event(st, ev, "match data", 0, HISI_MATCH_SIZE, img_phase);
    else if (k == 1)
        data_event(st, ev, 0, HISI_MATCH_SIZE, 0, 0, img_phase);
    else if (k <= nf + 1)
        field_event(st, ev, &match_fields[k - 2]);
    else {
        st->stage = H_REGS;
        if (!st->pre_copy)
            return MS_GO_ON; /* the final image goes on */
        image_event(r, st, ev, 0, MS_PHASE_INITIAL, 0, HISI_MATCH_SIZE, 1);
    }
    return MS_NEXT_EVENT;
}

static int h_regs(ms_reader *r)
{
    h_state *st = HST(r);
    if (!st->ph40_known) {
        if (!ms_rd_pending(r))
            return MS_NEXT_INPUT; /* 40 bytes: a complete stream */
        ms_phase ph = phase_here(r);
        st->ph40_known = 1;
        if (ph == MS_PHASE_INITIAL || ph == MS_PHASE_MIDDLE)
            return MS_FAIL(r, MS_ERR_PAYLOAD, st->base + HISI_MATCH_SIZE,
                           "byte 40 of acc_vf_data was read in the %s "
                           "phase, but PRE_COPY exposes only the 40 bytes of "
                           "match data",
                           ms_phase_name(ph));
    }
    if (!gather(r, st, HISI_STRUCT_SIZE))
        return MS_NEXT_INPUT;
    st->stage = H_REGS_EV;
    st->next_ev = 0;
    return MS_GO_ON;
}

static int h_regs_ev(ms_reader *r, ms_event *ev)
{
    h_state *st = HST(r);
    unsigned k = st->next_ev++;
    uint32_t img = st->pre_copy ? HISI_MATCH_SIZE : 0;
    uint32_t seq = st->pre_copy ? 1 : 0;
    if (k == 0)
        record_event(st, ev, "registers", HISI_MATCH_SIZE,
                     HISI_STRUCT_SIZE - HISI_MATCH_SIZE, MS_PHASE_FINAL);
    else if (k == 1)
        data_event(st, ev, HISI_MATCH_SIZE,
                   HISI_STRUCT_SIZE - HISI_MATCH_SIZE, img, seq,
                   MS_PHASE_FINAL);
    else if (k <= REG_FIELDS + 1)
        field_event(st, ev, &reg_fields[k - 2]);
    else {
        st->stage = H_END;
        image_event(r, st, ev, seq, MS_PHASE_FINAL, img,
                    HISI_STRUCT_SIZE - img, st->pre_copy ? 1 : 2);
    }
    return MS_NEXT_EVENT;
}

/* The diagram at the top of this file, stage by stage. */
#define AT(stage) [(stage) - H_MAGIC] /* the table starts at H_MAGIC */
static const ms_stage h_stages[] = {
    AT(H_MAGIC) = {"MAGIC", .walk = h_magic},
    AT(H_MATCH) = {"MATCH", .walk = h_match},
    AT(H_MATCH_EV) = {"MATCH_EV", .emit = h_match_ev},
    AT(H_REGS) = {"REGS", .walk = h_regs},
    AT(H_REGS_EV) = {"REGS_EV", .emit = h_regs_ev},
    AT(H_END) = {"END", .ends_after = "the 176-byte acc_vf_data"},
};
#undef AT
static const ms_stage_table h_table = MS_STAGE_TABLE(H_MAGIC, h_stages);

static int h_finish(ms_reader *r)
{
    h_state *st = HST(r);
    if (st->stage == H_END)
        return 0;
    if (st->stage == H_REGS && st->have == HISI_MATCH_SIZE)
        return 0; /* match data only: the target has nothing to load */
    if (st->have == 0)
        return MS_FAIL(r, MS_ERR_TRUNCATED, r->offset,
                       "empty stream: acc_vf_data needs 40 or 176 bytes");
    return MS_FAIL(r, MS_ERR_TRUNCATED, r->offset,
                   "acc_vf_data ends after %zu bytes; the driver sends 40 "
                   "(match data only, nothing to load) or 176",
                   st->have);
}

int ms_hisi_init(ms_reader *r)
{
    h_state *st = ms_framing_new(r, sizeof *st);
    if (!st)
        return -1;
    st->base = ms_rd_pos(r);
    st->pre_copy = 1;
    return 0;
}

const ms_framing_ops ms_hisi_ops = {
    .format = MS_FORMAT_PAYLOAD,
    .stages = &h_table,
    .stage_at = offsetof(h_state, stage),
    .finish = h_finish,
    .destroy = ms_framing_free,
};
