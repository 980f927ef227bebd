/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* QEMU main stream: section headers (START/FULL register a section id,
 * PART/END name one), footers, VMState fields of FULL sections described
 * by the JSON trailer, and the footer scan for payloads nothing decodes.
 * Facts: spec/qemu-main.md.
 *
 * Stages read here, with their steps (the whole stream: qemu_main.c):
 *
 *   SECTION_HEADER  SH_ID (be32 id) --PART/END: a known id----------+
 *                     | START/FULL                                  |
 *                     v                                             v
 *                   SH_IDSTR -> SH_INSTANCE (registers the id) -> MS_EV_SECTION
 *                   -> SH_PAYLOAD: enter_payload picks the payload's stage:
 *                      RAM (qemu_ram.c), VFIO (qemu_vfio.c), DIRTY_BITMAP
 *                      (qemu_dirty_bitmap.c), VMSTATE, or SCAN (with
 *                      MS_EV_UNDECODED saying why)
 *   VMSTATE         VST_NEXT asks the trailer's walk what comes next:
 *                     a field    -> VST_FIELD | VST_FIELD_SKIP -> VST_NEXT
 *                     a level's end -> VST_SUB_LOOK -> VST_SUB_NAME
 *                        -> VST_SUB_VERSION: MS_EV_SUBSECTION -> VST_NEXT
 *                        (no subsection of this level: VST_NEXT)
 *                     the end    -> FOOTER
 *                   a subsection the borrowed trailer lacks -> SCAN
 *   FOOTER          0x7E, be32 section id -> TOP
 *                   (fields from a borrowed trailer ended early -> SCAN)
 *   SCAN            byte by byte to 0x7E, be32 id and a record type
 *                   (for VFIO config state: after END_OF_STATE) -> TOP
 */
#include <stdio.h>

#include "qemu_impl.h"

const char *ms_qemu_section_type_name(ms_qemu_section_type t)
{
    switch (t) {
    case MS_QSEC_START: return "start";
    case MS_QSEC_PART: return "part";
    case MS_QSEC_END: return "end";
    case MS_QSEC_FULL: return "full";
    }
    return "unknown";
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && memcmp(s + a - b, suffix, b) == 0;
}

static void section_event(q_state *st, ms_event *ev, ms_event_kind kind)
{
    ev->kind = kind;
    ev->offset = st->sec_off;
    ms_section_info *s = &ev->u.section;
    s->type = st->cur_type;
    s->section_id = st->cur->id;
    s->idstr = st->cur->idstr;
    s->instance_id = st->cur->instance_id;
    s->version_id = st->cur->version_id;
    s->section_offset = st->sec_off;
}

/* ---- sections ------------------------------------------------------------- */

static q_section *section_by_id(ms_reader *r, uint32_t id)
{
    q_state *st = QST(r);
    uint32_t i;
    return ms_u32map_get(&st->secmap, id, &i) ? &st->secs[i] : NULL;
}

/* START/FULL header read: register (or re-check) the section id. */
static q_section *register_section(ms_reader *r, uint32_t id,
                                   uint32_t instance, uint32_t version)
{
    q_state *st = QST(r);
    q_section *s = section_by_id(r, id);
    if (s) {
        /* QEMU writes an iterable device's FULL section with the id of its
         * START section; anything else reusing an id is an error. */
        if (strcmp(s->idstr, st->name) != 0 || s->instance_id != instance) {
            MS_FAIL(r, MS_ERR_SECTION, st->rec_off,
                    "section id %u names \"%s\" %u, earlier \"%s\" %u", id,
                    st->name, instance, s->idstr, s->instance_id);
            return NULL;
        }
        return s;
    }
    if (st->nsecs >= r->opt.max_sections) {
        MS_FAIL_LIMIT(r, MS_LIMIT_MAX_SECTIONS, st->rec_off,
                      "more than max_sections (%u) sections",
                      r->opt.max_sections);
        return NULL;
    }
    if (ms_grow(ALLOC(r), (void **)&st->secs, sizeof *st->secs, &st->seccap,
                st->nsecs + 1) < 0 ||
        ms_u32map_put(ALLOC(r), &st->secmap, id, (uint32_t)st->nsecs) < 0) {
        MS_FAIL(r, MS_ERR_NO_MEMORY, st->rec_off, "section table");
        return NULL;
    }
    s = &st->secs[st->nsecs++];
    memset(s, 0, sizeof *s);
    s->id = id;
    memcpy(s->idstr, st->name, sizeof s->idstr);
    s->instance_id = instance;
    s->version_id = version;
    s->kind = strcmp(s->idstr, "ram") == 0            ? QK_RAM
              : ends_with(s->idstr, "/vfio")          ? QK_VFIO
              : strcmp(s->idstr, "dirty-bitmap") == 0 ? QK_DIRTY_BITMAP
                                                      : QK_OTHER;
    return s;
}

void ms_q_start_scan(q_state *st, int vfio)
{
    st->scanned = 0;
    st->scan_vfio = vfio;
    st->stage = QS_SCAN;
    st->step = Q_STEP_FIRST;
}

/* The trailer's description of the FULL section just announced, or NULL
 * with *why saying why it is walked blind.  The stream's own trailer lists
 * every FULL section its source wrote, with the version it wrote: a section
 * it lacks, or lists with another version, is damage (QEMU's loader refuses
 * both).  A trailer borrowed from another stream may lack the device or
 * describe another version of it: walked blind.  -1: failed. */
static int full_section_desc(ms_reader *r, const vms_device **out,
                             const char **why)
{
    q_state *st = QST(r);
    const q_section *s = st->cur;
    *out = NULL;
    if (!r->vmdesc) {
        *why = "no JSON trailer was given before the stream (VMState fields "
               "need it)";
        return 0;
    }
    const vms_device *d = vms_desc_find(r->vmdesc, s->idstr, s->instance_id);
    if (!d) {
        if (!r->vmdesc_borrowed)
            return MS_FAIL(r, MS_ERR_SECTION, st->sec_off,
                           "section %u (%s, instance %u) is not in the "
                           "stream's JSON trailer",
                           s->id, s->idstr, s->instance_id);
        *why = "the JSON trailer taken from another stream does not "
               "describe this device";
        return 0;
    }
    int64_t version = vms_device_version(d);
    if (version >= 0 && version != s->version_id) {
        if (!r->vmdesc_borrowed)
            return MS_FAIL(r, MS_ERR_SECTION, st->sec_off,
                           "section %u (%s) has version %u, its JSON "
                           "trailer says %lld",
                           s->id, s->idstr, s->version_id, (long long)version);
        snprintf(st->why_buf, sizeof st->why_buf,
                 "the JSON trailer taken from another stream describes "
                 "version %lld of this device, the section has version %u",
                 (long long)version, s->version_id);
        *why = st->why_buf;
        return 0;
    }
    *out = d;
    return 0;
}

/* Choose how to read the payload of the section just announced; may
 * produce an MS_EV_UNDECODED event saying why it is walked blind. */
static int enter_payload(ms_reader *r, ms_event *ev)
{
    q_state *st = QST(r);
    q_section *s = st->cur;
    st->step = Q_STEP_FIRST; /* of whichever payload stage follows */
    const char *why = NULL;
    if (s->kind == QK_RAM) {
        if (s->version_id != 4)
            return MS_FAIL(r, MS_ERR_RAM, st->sec_off,
                           "RAM section version %u; only 4 is known",
                           s->version_id);
        if (st->cur_type == MS_QSEC_FULL)
            return MS_FAIL(r, MS_ERR_RAM, st->sec_off,
                           "RAM in a FULL section");
        st->stage = QS_RAM;
        return MS_GO_ON;
    }
    if (s->kind == QK_VFIO) {
        st->last_marker = 0;
        st->vfio_part_data = 0;
        st->stage = QS_VFIO;
        return MS_GO_ON;
    }
    if (s->kind == QK_DIRTY_BITMAP) {
        if (s->version_id != 1)
            return MS_FAIL(r, MS_ERR_BAD_FIELD, st->sec_off,
                           "dirty-bitmap section version %u; only 1 is known",
                           s->version_id);
        if (st->cur_type == MS_QSEC_FULL)
            return MS_FAIL(r, MS_ERR_SECTION, st->sec_off,
                           "dirty-bitmap in a FULL section (it is iterable "
                           "only)");
        st->stage = QS_DIRTY_BITMAP;
        return MS_GO_ON;
    }
    if (st->cur_type == MS_QSEC_FULL) {
        const vms_device *d;
        if (full_section_desc(r, &d, &why) < 0)
            return MS_NEXT_ERROR;
        if (d) {
            vms_walk_begin(&st->walk, d);
            st->stage = QS_VMSTATE;
            return MS_GO_ON;
        }
    } else {
        why = "no decoder for this iterable device's payload";
    }
    ms_q_start_scan(st, 0);
    section_event(st, ev, MS_EV_UNDECODED);
    ev->u.section.detail = why;
    return MS_NEXT_EVENT;
}

/* QEMU's source sends an iterable section's START once (setup), PARTs
 * while iterating and one END at completion; its loader does not enforce
 * the order (PART and END load alike), so a PART/END type flipped by damage
 * would pass unseen without these rules. */
static int check_life_cycle(ms_reader *r)
{
    q_state *st = QST(r);
    q_section *s = st->cur;
    const char *type = ms_qemu_section_type_name(st->cur_type);
    if (st->cur_type == MS_QSEC_FULL)
        return 0;
    if (st->cur_type == MS_QSEC_START) {
        if (s->started)
            return MS_FAIL(r, MS_ERR_SECTION, st->rec_off,
                           "second START for section %u (%s), first at %llu",
                           s->id, s->idstr, (unsigned long long)s->start_off);
        s->started = 1;
        s->start_off = st->rec_off;
        return 0;
    }
    if (!s->started)
        return MS_FAIL(r, MS_ERR_SECTION, st->rec_off,
                       "%s section for section %u (%s), which had no START",
                       type, s->id, s->idstr);
    /* COLO resends the iterable state (PARTs, END) at every checkpoint */
    if (s->ended && !st->colo)
        return MS_FAIL(r, MS_ERR_SECTION, st->rec_off,
                       "%s section for section %u (%s) after its END", type,
                       s->id, s->idstr);
    s->ended = st->cur_type == MS_QSEC_END;
    return 0;
}

int ms_q_check_sections_ended(ms_reader *r)
{
    q_state *st = QST(r);
    if (st->salv.damaged) /* salvage: the END may be among the damage */
        return 0;
    for (size_t i = 0; i < st->nsecs; i++) {
        const q_section *s = &st->secs[i];
        if (s->started && !s->ended)
            return MS_FAIL(r, MS_ERR_SECTION, st->rec_off,
                           "EOF before the END section of section %u (%s), "
                           "STARTed at %llu",
                           s->id, s->idstr, (unsigned long long)s->start_off);
    }
    return 0;
}

/* Steps of QS_SECTION_HEADER (st->step). */
enum section_header_step {
    SH_ID = 0,          /* be32 section id (PART/END: all they carry) */
    SH_IDSTR = 1,       /* START/FULL: counted idstr: SH_IDSTR and +1 */
    SH_IDSTR_BYTES = 2, /* its bytes */
    SH_INSTANCE = 3,    /* be32 instance_id, be32 version_id */
    SH_PAYLOAD = 4      /* announced: choose the payload reader */
};

int ms_q_read_section_header(ms_reader *r, ms_event *ev)
{
    q_state *st = QST(r);
    const uint8_t *p;
    int t;
    int is_new = st->type == Q_START || st->type == Q_FULL;
    switch (st->step) {
    case SH_PAYLOAD:
        return enter_payload(r, ev);
    case SH_ID:
        if ((t = ms_rd_take_reserved(r, 4, &p)) <= 0)
            return t < 0 ? MS_NEXT_ERROR : MS_NEXT_INPUT;
        st->sec_rec.id = ms_be32(p);
        st->cur_type = (ms_qemu_section_type)st->type;
        if (!is_new) {
            if (!(st->cur = section_by_id(r, st->sec_rec.id)))
                return MS_FAIL(r, MS_ERR_SECTION, st->rec_off,
                               "%s section names unknown section id %u",
                               st->type == Q_PART ? "PART" : "END",
                               st->sec_rec.id);
            goto announce;
        }
        st->step = SH_IDSTR;
        /* fallthrough */
    case SH_IDSTR:
    case SH_IDSTR_BYTES:
        if ((t = ms_q_take_counted(r, SH_IDSTR, "section idstr")) <= 0)
            return t < 0 ? MS_NEXT_ERROR : MS_NEXT_INPUT;
        st->step = SH_INSTANCE;
        /* fallthrough */
    case SH_INSTANCE:
        if ((t = ms_rd_take_reserved(r, 8, &p)) <= 0)
            return t < 0 ? MS_NEXT_ERROR : MS_NEXT_INPUT;
        /* salvage: a damaged header must not send the footer scan after
         * a footer that never comes (spec/salvage.md 5b) */
        if (r->opt.salvage &&
            !ms_q_salvage_header_plausible((const uint8_t *)st->name,
                                           st->counted_len, ms_be32(p),
                                           ms_be32(p + 4)))
            return MS_FAIL(r, MS_ERR_SECTION, st->rec_off,
                           "implausible section header (idstr, instance "
                           "%u or version %u)",
                           ms_be32(p), ms_be32(p + 4));
        if (!(st->cur = register_section(r, st->sec_rec.id, ms_be32(p),
                                         ms_be32(p + 4))))
            return MS_NEXT_ERROR;
        break;
    }
announce:
    if (check_life_cycle(r) < 0)
        return MS_NEXT_ERROR;
    if (st->cur_type == MS_QSEC_START && st->cur->kind == QK_VFIO)
        st->cur->setup_seen = 0;
    section_event(st, ev, MS_EV_SECTION);
    ev->length = ms_rd_pos(r) - st->rec_off;
    st->step = SH_PAYLOAD;
    return MS_NEXT_EVENT;
}

int ms_q_read_footer(ms_reader *r, ms_event *ev)
{
    q_state *st = QST(r);
    const uint8_t *p;
    uint64_t off = ms_rd_unit_offset(r);
    int t = ms_rd_take_reserved(r, 5, &p);
    if (t <= 0)
        return t < 0 ? MS_NEXT_ERROR : MS_NEXT_INPUT;
    if ((p[0] != Q_FOOTER || ms_be32(p + 1) != st->cur->id) &&
        r->vmdesc_borrowed && st->cur->kind == QK_OTHER) {
        /* Fields described by another stream's trailer ended before this
         * section's payload does (a device whose state differs in size
         * between the two machines): walk on blind to the footer. */
        ms_rd_untake(r);
        snprintf(st->why_buf, sizeof st->why_buf,
                 "the JSON trailer taken from another stream describes "
                 "fewer bytes than this section holds (no footer at %llu)",
                 (unsigned long long)off);
        ms_q_start_scan(st, 0);
        st->scan_why = st->why_buf;
        return MS_GO_ON;
    }
    if (p[0] != Q_FOOTER)
        return MS_FAIL(r, MS_ERR_FOOTER, off,
                       "section %u (%s): expected footer 0x7e, found 0x%02x",
                       st->cur->id, st->cur->idstr, p[0]);
    if (ms_be32(p + 1) != st->cur->id)
        return MS_FAIL(r, MS_ERR_FOOTER, off,
                       "section %u (%s): footer names section %u",
                       st->cur->id, st->cur->idstr, ms_be32(p + 1));
    section_event(st, ev, MS_EV_SECTION_FOOTER);
    ev->offset = off;
    ev->length = ms_rd_pos(r) - st->sec_off;
    st->stage = QS_TOP;
    st->step = Q_STEP_FIRST;
    return MS_NEXT_EVENT;
}

/* Walk a payload we cannot decode: find "0x7E + be32 id" followed by a byte
 * that can start the next record (and, for VFIO config state, preceded by
 * END_OF_STATE).  Bytes are only looked at, never kept. */
int ms_q_read_scan(ms_reader *r, ms_event *ev)
{
    q_state *st = QST(r);
    const uint8_t *p;
    uint32_t id = st->cur->id;
    if (st->scan_why) {
        section_event(st, ev, MS_EV_UNDECODED);
        ev->offset = ms_rd_pos(r);
        ev->u.section.detail = st->scan_why;
        st->scan_why = NULL;
        return MS_NEXT_EVENT;
    }
    for (;;) {
        size_t n = ms_rd_peek(r, 1, &p);
        if (n == 0)
            return MS_NEXT_INPUT;
        uint8_t *g = st->ring;
        if (st->scanned >= 5 && g[(st->scanned - 5) % 16] == Q_FOOTER &&
            g[(st->scanned - 4) % 16] == (uint8_t)(id >> 24) &&
            g[(st->scanned - 3) % 16] == (uint8_t)(id >> 16) &&
            g[(st->scanned - 2) % 16] == (uint8_t)(id >> 8) &&
            g[(st->scanned - 1) % 16] == (uint8_t)id &&
            (p[0] <= Q_FULL || p[0] == Q_COMMAND)) {
            int ok = 1;
            if (st->scan_vfio) {
                ok = st->scanned >= 13;
                for (int i = 0; ok && i < 8; i++)
                    ok = g[(st->scanned - 13 + (uint64_t)i) % 16] ==
                         (uint8_t)((VFIO_MARKER_BASE + VFIO_END_OF_STATE) >>
                                   (56 - 8 * i));
            }
            if (ok) {
                section_event(st, ev, MS_EV_SECTION_FOOTER);
                ev->offset = ms_rd_pos(r) - 5;
                ev->length = ms_rd_pos(r) - st->sec_off;
                st->stage = QS_TOP;
                st->step = Q_STEP_FIRST;
                return MS_NEXT_EVENT;
            }
        }
        /* salvage: another footer and a plausible header after it: this
         * section's header or footer was damaged (spec/salvage.md 5b) */
        if (r->opt.salvage && st->scanned >= 5 &&
            g[(st->scanned - 5) % 16] == Q_FOOTER &&
            (p[0] <= Q_FULL || p[0] == Q_COMMAND)) {
            /* it takes (and gives back) the bytes after this one: the
             * stash may move, so p is looked at again */
            int rc = ms_q_salvage_scan_footer(r);
            if (rc != MS_GO_ON)
                return rc;
            if (ms_rd_peek(r, 1, &p) == 0)
                return MS_NEXT_INPUT;
        }
        g[st->scanned % 16] = p[0];
        st->scanned++;
        ms_rd_skip(r, 1);
    }
}

/* ---- VMState fields (FULL sections described by the trailer) --------------- */

#define FIELD_TAKE_MAX (64 * 1024) /* larger fields are skipped, not kept */

/* Steps of QS_VMSTATE (st->step). */
enum vmstate_step {
    VST_NEXT = 0,        /* ask the walk what comes next (reads no bytes) */
    VST_FIELD = 1,       /* a field of up to FIELD_TAKE_MAX bytes, kept */
    VST_SUB_LOOK = 2,    /* 0x05 and the name length, looked at only */
    VST_SUB_NAME = 3,    /* 0x05, u8 length, name: one of this level's? */
    VST_SUB_VERSION = 4, /* be32 version_id of the subsection */
    VST_FIELD_SKIP = 5   /* a larger field, skipped */
};

/* VST_NEXT: what the trailer's walk says comes next: a field (its event
 * prepared in st->pending), a level's end (subsection or not), or the end
 * of the section. */
static int vmstate_next(ms_reader *r)
{
    q_state *st = QST(r);
    vms_step step;
    if (vms_walk_next(&st->walk, &step) < 0)
        return MS_FAIL(r, MS_ERR_VMSTATE, ms_rd_pos(r), "%s: %s",
                       st->cur->idstr, st->walk.detail);
    if (step.kind == VMS_END) {
        st->stage = QS_FOOTER;
        st->step = Q_STEP_FIRST;
        return MS_GO_ON;
    }
    if (step.kind == VMS_SUBSECTION_OR_END) {
        st->vms_level = step.type; /* the level's VMSD name */
        st->step = VST_SUB_LOOK;
        return MS_GO_ON;
    }
    st->vms_rec.field_size = step.size;
    st->rec_off = ms_rd_pos(r);
    memset(&st->pending, 0, sizeof st->pending);
    st->pending.kind = MS_EV_FIELD;
    st->pending.offset = ms_rd_pos(r);
    st->pending.u.field.section_id = st->cur->id;
    st->pending.u.field.path = step.path;
    st->pending.u.field.type = step.type;
    st->step = step.size <= FIELD_TAKE_MAX ? VST_FIELD : VST_FIELD_SKIP;
    st->field_left = (size_t)step.size;
    return MS_GO_ON;
}

/* VST_SUB_LOOK .. VST_SUB_VERSION: a subsection of the level just ended,
 * or none (the bytes belong to what follows the level). */
static int read_vmstate_subsection(ms_reader *r, ms_event *ev)
{
    q_state *st = QST(r);
    const uint8_t *p;
    int t;
    switch (st->step) {
    case VST_SUB_LOOK: { /* a subsection of this level, or the level's end */
        /* QEMU reads a subsection only when 0x05 is followed by a name
         * that starts with this level's VMSD name and is longer; otherwise
         * the bytes belong to what comes after the level.  So look at them
         * (take, then give back) before consuming anything. */
        st->rec_off = ms_rd_pos(r);
        if ((t = ms_rd_take_reserved(r, 2, &p)) <= 0)
            return t < 0 ? MS_NEXT_ERROR : MS_NEXT_INPUT;
        int maybe = p[0] == Q_SUBSECTION;
        st->vms_rec.sub_name_len = p[1];
        ms_rd_untake(r);
        if (!maybe)
            goto not_here;
        st->step = VST_SUB_NAME;
    }
        /* fallthrough */
    case VST_SUB_NAME: {
        size_t lvl = strlen(st->vms_level);
        if ((t = ms_rd_take_reserved(r, 2 + (size_t)st->vms_rec.sub_name_len,
                                     &p)) <= 0)
            return t < 0 ? MS_NEXT_ERROR : MS_NEXT_INPUT;
        if (st->vms_rec.sub_name_len < lvl + 1 ||
            memcmp(p + 2, st->vms_level, lvl) != 0) {
            ms_rd_untake(r);
            goto not_here;
        }
        memcpy(st->name, p + 2, st->vms_rec.sub_name_len);
        st->name[st->vms_rec.sub_name_len] = 0;
        st->step = VST_SUB_VERSION;
    }
        /* fallthrough */
    case VST_SUB_VERSION: {
        if ((t = ms_rd_take_reserved(r, 4, &p)) <= 0)
            return t < 0 ? MS_NEXT_ERROR : MS_NEXT_INPUT;
        uint32_t version = ms_be32(p);
        if (vms_walk_subsection(&st->walk, st->name, version) < 0) {
            if (!r->vmdesc_borrowed)
                return MS_FAIL(r, MS_ERR_VMSTATE, st->rec_off, "%s: %s",
                               st->cur->idstr, st->walk.detail);
            /* QEMU's trailer lists only the subsections it sent: another
             * stream's may lack one this stream has.  Walk on blind. */
            snprintf(st->why_buf, sizeof st->why_buf,
                     "the JSON trailer taken from another stream lacks "
                     "subsection \"%.80s\" (version %u)",
                     st->name, version);
            ms_q_start_scan(st, 0);
            st->scan_why = st->why_buf;
            return MS_GO_ON;
        }
        st->step = VST_NEXT;
        ev->kind = MS_EV_SUBSECTION;
        ev->offset = st->rec_off;
        ev->length = ms_rd_pos(r) - st->rec_off;
        ev->u.field.section_id = st->cur->id;
        ev->u.field.path = st->name;
        ev->u.field.type = "subsection";
        ev->u.field.version = version;
        return MS_NEXT_EVENT;
    }
    }
not_here:
    vms_walk_no_subsection(&st->walk);
    st->step = VST_NEXT;
    return MS_GO_ON;
}

/* QS_VMSTATE: the fields of a FULL section as the JSON trailer describes
 * them, step by step (enum vmstate_step). */
int ms_q_read_vmstate(ms_reader *r, ms_event *ev)
{
    q_state *st = QST(r);
    const uint8_t *p;
    int t;
    switch (st->step) {
    case VST_NEXT: return vmstate_next(r);
    case VST_FIELD:
        if ((t = ms_rd_take_reserved(r, (size_t)st->vms_rec.field_size,
                                     &p)) <= 0)
            return t < 0 ? MS_NEXT_ERROR : MS_NEXT_INPUT;
        st->step = VST_NEXT;
        if (!r->opt.field_events)
            return MS_GO_ON;
        *ev = st->pending;
        ev->length = st->vms_rec.field_size;
        ev->u.field.data = p;
        ev->u.field.size = (size_t)st->vms_rec.field_size;
        return MS_NEXT_EVENT;
    case VST_FIELD_SKIP: { /* reported without its bytes */
        size_t n = ms_rd_peek(r, st->field_left, &p);
        ms_rd_skip(r, n);
        st->field_left -= n;
        if (st->field_left) /* a peek ends at the stash's end */
            return ms_rd_pending(r) ? MS_GO_ON : MS_NEXT_INPUT;
        st->step = VST_NEXT;
        if (!r->opt.field_events)
            return MS_GO_ON;
        *ev = st->pending;
        ev->length = st->vms_rec.field_size;
        ev->u.field.size = (size_t)st->vms_rec.field_size;
        return MS_NEXT_EVENT;
    }
    case VST_SUB_LOOK:
    case VST_SUB_NAME:
    case VST_SUB_VERSION: return read_vmstate_subsection(r, ev);
    }
    return MS_FAIL(r, MS_ERR_USAGE, ms_rd_pos(r), "internal: vmstate step");
}
