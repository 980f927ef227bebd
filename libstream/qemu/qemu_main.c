/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* QEMU main migration stream ("QEVM", version 3) decoder.
 * Facts: spec/qemu-main.md (restating QEMU's migration/savevm.c, ram.c,
 * vmstate.c and hw/vfio/migration.c behaviour).
 *
 * Stages (QS_*, st->stage; each resumable at any byte).  Inside a stage
 * st->step orders the takes; the steps are named by an enum [in brackets]
 * in the file that reads the stage (in parentheses; none: this file), and
 * every stage starts at step 0 (Q_STEP_FIRST):
 *
 *   HEADER -> TOP <---------------------------------------------------+
 *              |-- 0x07 CONFIG [CFG_*] ------------------------------>|
 *              |-- 0x08 COMMAND [CMD_*] (cmd) ----------------------->|
 *              |       (PACKAGED pushes a nesting)                    |
 *              |-- 0x01..0x04 SECTION_HEADER [SH_*] (section)         |
 *              |      |  picks the payload's reader:                  |
 *              |      |-- RAM [RS_*] (ram) ------------------+        |
 *              |      |-- VFIO [VF_*] (vfio) ----------------+        |
 *              |      |     <-> VFIO_DATA (vfio)             |        |
 *              |      |     <-> VFIO_CONFIG [VC_*] (vfio)    |        |
 *              |      |-- DIRTY_BITMAP [DB_*] (dirty_bitmap) +        |
 *              |      |-- VMSTATE [VST_*] (section) ---------+        |
 *              |      |                                      v        |
 *              |      |                        FOOTER (section) ----->|
 *              |      +-- SCAN (section): walks to the footer ------->|
 *              |          (also entered from VFIO_CONFIG, VMSTATE and
 *              |          FOOTER when the bytes cannot be decoded)
 *              +-- 0x00 EOF (inside a PACKAGED stream: back to TOP)
 *                     -> AFTER_EOF [AE_*] -> VMDESC -> DONE
 *   (ms_options.salvage: a failure in TOP .. FOOTER -> RESYNC (salvage)
 *    -> TOP at a section header, or RAM at a RAM record)
 *
 * (cmd) is qemu_cmd.c, (section) qemu_section.c, (ram) qemu_ram.c, (vfio)
 * qemu_vfio.c, (dirty_bitmap) qemu_dirty_bitmap.c, (salvage) qemu_salvage.c.
 *
 * This file holds the framing (header, configuration, the top-level
 * switch, EOF and the trailer); each payload grammar lives in the file
 * named beside it, sharing q_state through qemu_impl.h.  A libvirt save
 * image's wrapper (and decompression) is libvirt.c, feeding this decoder.
 *
 * Section payloads carry no length: RAM and VFIO payloads are parsed by
 * their own grammar; FULL sections by the JSON trailer's description when
 * the caller gave it (ms_reader_set_vmdesc); anything else is walked by
 * looking for its footer (0x7E + section id followed by a record type),
 * and reported as MS_EV_UNDECODED with the reason.
 */
#include <stdio.h>

#include "qemu_impl.h"

/* ---- small helpers ------------------------------------------------------ */

/* The one counted-string reader (u8 length + bytes) of this framing.
 * Uses step values `at` and `at + 1`; returns 1 when st->name holds it. */
int ms_q_take_counted(ms_reader *r, int at, const char *what)
{
    q_state *st = QST(r);
    const uint8_t *p;
    if (st->step == at) {
        int t = ms_rd_take_reserved(r, 1, &p);
        if (t <= 0)
            return t;
        st->counted_len = p[0];
        st->step = at + 1;
    }
    int t = ms_rd_take_reserved(r, st->counted_len, &p);
    if (t <= 0)
        return t;
    if (st->counted_len == 0) {
        MS_FAIL(r, MS_ERR_BAD_FIELD, ms_rd_pos(r) - 1, "empty %s", what);
        return -1;
    }
    memcpy(st->name, p, st->counted_len);
    st->name[st->counted_len] = 0;
    if (memchr(st->name, 0, st->counted_len)) {
        MS_FAIL(r, MS_ERR_BAD_FIELD, ms_rd_pos(r) - st->counted_len,
                "%s contains a NUL byte", what);
        return -1;
    }
    return 1;
}

/* ---- locating the JSON trailer ---------------------------------------- */

int ms_qemu_find_vmdesc(const void *buf, size_t len, size_t max_scan,
                        size_t *json_off, size_t *json_len)
{
    const uint8_t *p = buf;
    if (len < 6 || p[len - 1] != '}')
        return 0;
    size_t lo = len > max_scan ? len - max_scan : 0;
    /* The trailer is 0x06, be32 n, then n bytes of JSON ending the stream;
     * the first candidate from the end whose length fits is it. */
    for (size_t i = len - 6; i + 1 > lo; i--) {
        if (p[i] == Q_VMDESC && p[i + 5] == '{' &&
            (uint64_t)ms_be32(p + i + 1) == len - i - 5) {
            *json_off = i + 5;
            *json_len = len - i - 5;
            return 1;
        }
        if (i == 0)
            break;
    }
    return 0;
}

/* ---- header ---------------------------------------------------------------- */

static int read_header(ms_reader *r, ms_event *ev)
{
    q_state *st = QST(r);
    const uint8_t *p;
    uint64_t off = ms_rd_unit_offset(r);
    int t = ms_rd_take_reserved(r, 8, &p);
    if (t <= 0)
        return t < 0 ? MS_NEXT_ERROR : MS_NEXT_INPUT;
    if (ms_be32(p) != QEVM_MAGIC)
        return MS_FAIL(r, MS_ERR_BAD_MAGIC, off, "expected \"QEVM\"");
    uint32_t v = ms_be32(p + 4);
    if (v != QEVM_VERSION)
        return MS_FAIL(r, MS_ERR_VERSION, off + 4,
                       v == 2 ? "QEMU stream version 2 is obsolete"
                              : "QEMU stream version %u is not 3",
                       v);
    st->stage = QS_TOP;
    /* One channel of its own; multifd channels are separate streams. */
    ev->kind = MS_EV_STREAM_HEADER;
    ev->offset = off;
    ev->length = 8;
    ev->u.stream.format = MS_FORMAT_QEMU_MAIN;
    ev->u.stream.version_major = QEVM_VERSION;
    ev->u.stream.channel_count = 1;
    return MS_NEXT_EVENT;
}

/* ---- configuration -------------------------------------------------------- */

/* Steps of QS_CONFIG (st->step). */
enum config_step {
    CFG_MACHINE_LEN = 0,    /* be32 length of the machine type */
    CFG_MACHINE = 1,        /* the machine type's bytes */
    CFG_SUBSECTION = 2,     /* 0x05 (a subsection) or the end of the record */
    CFG_SUB_NAME = 3,       /* counted subsection name: CFG_SUB_NAME and +1 */
    CFG_SUB_NAME_BYTES = 4, /* its bytes */
    CFG_SUB_VERSION = 5,    /* be32 version_id; the name picks what follows */
    CFG_PAGE_BITS = 6,      /* target-page-bits: be32 page bits */
    CFG_CAP_COUNT = 7,      /* capabilities: be32 count */
    CFG_CAP_NAME = 8,       /* counted capability name: CFG_CAP_NAME and +1 */
    CFG_CAP_NAME_BYTES = 9, /* its bytes */
    CFG_UUID = 10           /* uuid: 16 bytes */
};

/* CFG_MACHINE_LEN, CFG_MACHINE: the machine type (be32 length + bytes).
 * Returns MS_GO_ON when read (the step is CFG_SUBSECTION). */
static int read_config_machine(ms_reader *r)
{
    q_state *st = QST(r);
    const uint8_t *p;
    int t;
    if (st->step == CFG_MACHINE_LEN) {
        if ((t = ms_rd_take_reserved(r, 4, &p)) <= 0)
            return t < 0 ? MS_NEXT_ERROR : MS_NEXT_INPUT;
        st->cfg_rec.machine_len = ms_be32(p);
        if (st->cfg_rec.machine_len == 0 || st->cfg_rec.machine_len > 255)
            return MS_FAIL(r, MS_ERR_CONFIGURATION, ms_rd_pos(r) - 4,
                           "machine type of %u bytes",
                           st->cfg_rec.machine_len);
        st->step = CFG_MACHINE;
    }
    if ((t = ms_rd_take_reserved(r, st->cfg_rec.machine_len, &p)) <= 0)
        return t < 0 ? MS_NEXT_ERROR : MS_NEXT_INPUT;
    memcpy(st->machine, p, st->cfg_rec.machine_len);
    st->machine[st->cfg_rec.machine_len] = 0;
    memset(&st->pending, 0, sizeof st->pending);
    st->pending.kind = MS_EV_CONFIGURATION;
    st->pending.offset = st->rec_off;
    st->step = CFG_SUBSECTION;
    return MS_GO_ON;
}

/* CFG_SUBSECTION .. CFG_SUB_VERSION: 0x05, the counted name and the
 * version of the next subsection; the name picks the step that reads its
 * body.  Without 0x05 the record ends: the MS_EV_CONFIGURATION event. */
static int read_config_subsection(ms_reader *r, ms_event *ev)
{
    q_state *st = QST(r);
    const uint8_t *p;
    int t;
    if (st->step == CFG_SUBSECTION) {
        size_t n = ms_rd_peek(r, 1, &p);
        if (n == 0)
            return MS_NEXT_INPUT;
        if (p[0] != Q_SUBSECTION) {
            st->stage = QS_TOP;
            st->step = Q_STEP_FIRST;
            st->seen_config = 1;
            *ev = st->pending;
            ev->length = ms_rd_pos(r) - st->rec_off;
            ev->u.config.machine = st->machine;
            ev->u.config.machine_len = (uint32_t)strlen(st->machine);
            return MS_NEXT_EVENT;
        }
        ms_rd_skip(r, 1);
        st->step = CFG_SUB_NAME;
    }
    if (st->step == CFG_SUB_NAME || st->step == CFG_SUB_NAME_BYTES) {
        if ((t = ms_q_take_counted(r, CFG_SUB_NAME,
                                   "configuration subsection name")) <= 0)
            return t < 0 ? MS_NEXT_ERROR : MS_NEXT_INPUT;
        st->step = CFG_SUB_VERSION;
    }
    if ((t = ms_rd_take_reserved(r, 4, &p)) <= 0)
        return t < 0 ? MS_NEXT_ERROR : MS_NEXT_INPUT;
    if (strcmp(st->name, "configuration/target-page-bits") == 0)
        st->step = CFG_PAGE_BITS;
    else if (strcmp(st->name, "configuration/capabilities") == 0)
        st->step = CFG_CAP_COUNT;
    else if (strcmp(st->name, "configuration/uuid") == 0)
        st->step = CFG_UUID;
    else
        return MS_FAIL(r, MS_ERR_CONFIGURATION, ms_rd_pos(r) - 4,
                       "unknown configuration subsection \"%s\"",
                       st->name);
    return MS_GO_ON;
}

/* CFG_CAP_COUNT .. CFG_CAP_NAME_BYTES: the capability list (be32 count,
 * counted names); the ones this decoder acts on are noted. */
static int read_config_caps(ms_reader *r, ms_config_info *c)
{
    q_state *st = QST(r);
    const uint8_t *p;
    int t;
    if (st->step == CFG_CAP_COUNT) {
        if ((t = ms_rd_take_reserved(r, 4, &p)) <= 0)
            return t < 0 ? MS_NEXT_ERROR : MS_NEXT_INPUT;
        st->cfg_rec.caps_left = ms_be32(p);
        if (st->cfg_rec.caps_left > 64)
            return MS_FAIL(r, MS_ERR_CONFIGURATION, ms_rd_pos(r) - 4,
                           "%u capabilities listed", st->cfg_rec.caps_left);
        c->capability_count = st->cfg_rec.caps_left;
        st->step = CFG_CAP_NAME;
    }
    while (st->cfg_rec.caps_left) {
        if ((t = ms_q_take_counted(r, CFG_CAP_NAME, "capability name")) <= 0)
            return t < 0 ? MS_NEXT_ERROR : MS_NEXT_INPUT;
        if (strcmp(st->name, "x-ignore-shared") == 0)
            c->cap_x_ignore_shared = st->cap_ignore_shared = 1;
        else if (strcmp(st->name, "mapped-ram") == 0)
            c->cap_mapped_ram = st->cap_mapped_ram = 1;
        else if (strcmp(st->name, "postcopy-preempt") == 0)
            c->cap_postcopy_preempt = 1;
        st->cfg_rec.caps_left--;
        st->step = CFG_CAP_NAME;
    }
    st->step = CFG_SUBSECTION;
    return MS_GO_ON;
}

/* QS_CONFIG: the CONFIGURATION record, step by step (enum config_step);
 * each subsection body goes back to CFG_SUBSECTION. */
static int read_config(ms_reader *r, ms_event *ev)
{
    q_state *st = QST(r);
    ms_config_info *c = &st->pending.u.config;
    const uint8_t *p;
    int t;
    switch (st->step) {
    case CFG_MACHINE_LEN:
    case CFG_MACHINE: return read_config_machine(r);
    case CFG_SUBSECTION:
    case CFG_SUB_NAME:
    case CFG_SUB_NAME_BYTES:
    case CFG_SUB_VERSION: return read_config_subsection(r, ev);
    case CFG_PAGE_BITS:
        if ((t = ms_rd_take_reserved(r, 4, &p)) <= 0)
            return t < 0 ? MS_NEXT_ERROR : MS_NEXT_INPUT;
        c->has_page_bits = 1;
        c->page_bits = ms_be32(p);
        if (c->page_bits < 9 || c->page_bits > 21)
            return MS_FAIL(r, MS_ERR_CONFIGURATION, ms_rd_pos(r) - 4,
                           "target page bits %u", c->page_bits);
        st->page_size = 1u << c->page_bits;
        st->step = CFG_SUBSECTION;
        return MS_GO_ON;
    case CFG_CAP_COUNT:
    case CFG_CAP_NAME:
    case CFG_CAP_NAME_BYTES: return read_config_caps(r, c);
    case CFG_UUID:
        if ((t = ms_rd_take_reserved(r, 16, &p)) <= 0)
            return t < 0 ? MS_NEXT_ERROR : MS_NEXT_INPUT;
        c->has_uuid = 1;
        memcpy(c->uuid, p, 16);
        st->step = CFG_SUBSECTION;
        return MS_GO_ON;
    }
    return MS_FAIL(r, MS_ERR_USAGE, ms_rd_pos(r), "internal: config step");
}

/* ---- top level, EOF and the JSON trailer ---------------------------------- */

static int read_top(ms_reader *r, ms_event *ev)
{
    q_state *st = QST(r);
    const uint8_t *p;
    /* Leaving PACKAGED streams whose bytes are all read. */
    while (st->nest && ms_rd_pos(r) == st->pkg_end[st->nest - 1])
        st->nest--;
    if (st->nest && ms_rd_pos(r) > st->pkg_end[st->nest - 1])
        return MS_FAIL(r, MS_ERR_COMMAND, st->rec_off,
                       "a record crosses the end of its PACKAGED stream at "
                       "%llu",
                       (unsigned long long)st->pkg_end[st->nest - 1]);
    if (ms_rd_pending(r) == 0)
        return MS_NEXT_INPUT;
    st->rec_off = ms_rd_pos(r);
    int t = ms_rd_take_reserved(r, 1, &p);
    if (t <= 0)
        return t < 0 ? MS_NEXT_ERROR : MS_NEXT_INPUT;
    st->type = p[0];
    st->step = Q_STEP_FIRST; /* of whichever stage the type picks */
    st->sec_off = st->rec_off;
    if (!st->seen_config && st->type != Q_CONFIGURATION && !st->records)
        return MS_FAIL(r, MS_ERR_CONFIGURATION, st->rec_off,
                       "the stream does not start with a CONFIGURATION "
                       "record (0x07), found 0x%02x",
                       st->type);
    st->records++;
    switch (st->type) {
    case Q_CONFIGURATION:
        if (st->seen_config || st->records > 1)
            return MS_FAIL(r, MS_ERR_CONFIGURATION, st->rec_off,
                           "CONFIGURATION record after the first record");
        st->stage = QS_CONFIG;
        return MS_GO_ON;
    case Q_COMMAND: st->stage = QS_COMMAND; return MS_GO_ON;
    case Q_START:
    case Q_PART:
    case Q_END:
    case Q_FULL: st->stage = QS_SECTION_HEADER; return MS_GO_ON;
    case Q_EOF:
        ev->kind = MS_EV_QEMU_EOF;
        ev->offset = st->rec_off;
        ev->length = 1;
        if (st->nest) /* the end of a PACKAGED stream's own sections */
            return MS_NEXT_EVENT;
        if (ms_q_check_sections_ended(r) < 0)
            return MS_NEXT_ERROR;
        st->seen_eof = 1;
        st->stage = QS_AFTER_EOF;
        return MS_NEXT_EVENT;
    case Q_VMDESC:
        return MS_FAIL(r, MS_ERR_SECTION, st->rec_off,
                       "JSON trailer (0x06) before the EOF record");
    case Q_FOOTER:
        return MS_FAIL(r, MS_ERR_FOOTER, st->rec_off,
                       "section footer outside a section");
    default:
        return MS_FAIL(r, MS_ERR_SECTION, st->rec_off,
                       "unknown section type 0x%02x", st->type);
    }
}

/* Steps of QS_AFTER_EOF (st->step). */
enum after_eof_step {
    AE_TYPE = 0,  /* the byte after EOF: none (the stream may end) or 0x06 */
    AE_LENGTH = 1 /* be32 length of the JSON trailer */
};

static int read_after_eof(ms_reader *r)
{
    q_state *st = QST(r);
    const uint8_t *p;
    if (st->step == AE_TYPE) {
        if (ms_rd_pending(r) == 0)
            return MS_NEXT_INPUT; /* a stream may end at EOF */
        st->rec_off = ms_rd_unit_offset(r);
        int t = ms_rd_take_reserved(r, 1, &p);
        if (t <= 0)
            return t < 0 ? MS_NEXT_ERROR : MS_NEXT_INPUT;
        if (p[0] != Q_VMDESC)
            return MS_FAIL(r, MS_ERR_TRAILING_DATA, st->rec_off,
                           "byte 0x%02x after EOF; only a JSON trailer "
                           "(0x06) may follow",
                           p[0]);
        st->step = AE_LENGTH;
    }
    if (st->step == AE_LENGTH) {
        int t = ms_rd_take_reserved(r, 4, &p);
        if (t <= 0)
            return t < 0 ? MS_NEXT_ERROR : MS_NEXT_INPUT;
        st->vmdesc_len = ms_be32(p);
        if (st->vmdesc_len > r->opt.max_vmdesc_bytes)
            return MS_FAIL_LIMIT(r, MS_LIMIT_MAX_VMDESC_BYTES, st->rec_off + 1,
                                 "JSON trailer of %llu bytes exceeds "
                                 "max_vmdesc_bytes (%llu)",
                                 (unsigned long long)st->vmdesc_len,
                                 (unsigned long long)r->opt.max_vmdesc_bytes);
        st->vmdesc_off = ms_rd_pos(r);
        st->vmdesc_got = 0;
        st->stage = QS_VMDESC;
    }
    return MS_GO_ON;
}

static int read_vmdesc(ms_reader *r, ms_event *ev)
{
    q_state *st = QST(r);
    const uint8_t *p;
    uint64_t want = st->vmdesc_len - st->vmdesc_got;
    size_t n = ms_rd_peek(r, want, &p);
    if (st->vmdesc_got == 0 && n == st->vmdesc_len) {
        ms_rd_skip(r, n); /* whole in this slice: a view, no copy */
    } else {
        if (n == 0 && want)
            return MS_NEXT_INPUT;
        if (!st->vmdesc_buf &&
            !(st->vmdesc_buf = ms_alloc(ALLOC(r), (size_t)st->vmdesc_len)))
            return MS_FAIL(r, MS_ERR_NO_MEMORY, st->vmdesc_off,
                           "JSON trailer buffer");
        memcpy(st->vmdesc_buf + st->vmdesc_got, p, n);
        ms_rd_skip(r, n);
        st->vmdesc_got += n;
        /* a peek ends at the stash's end: the slice may hold more */
        if (st->vmdesc_got < st->vmdesc_len)
            return ms_rd_pending(r) ? MS_GO_ON : MS_NEXT_INPUT;
        p = st->vmdesc_buf;
    }
    st->vmdesc_got = st->vmdesc_len;
    /* The trailer must at least be well formed: parse it once. */
    if (!r->vmdesc) {
        ms_error_info e = {0};
        struct vms_desc *d = NULL;
        if (vms_desc_parse(ALLOC(r), &r->opt, (const char *)p,
                           (size_t)st->vmdesc_len, &d, &e) < 0)
            return MS_FAIL(r, MS_ERR_VMDESC, st->vmdesc_off + e.offset,
                           "JSON trailer: %s", e.detail);
        vms_desc_free(ALLOC(r), d);
    }
    ev->kind = MS_EV_VMDESC;
    ev->offset = st->rec_off;
    ev->length = 5 + st->vmdesc_len;
    ev->u.vmdesc.json = (const char *)p;
    ev->u.vmdesc.len = (size_t)st->vmdesc_len;
    st->stage = QS_DONE;
    return MS_NEXT_EVENT;
}

/* ---- framing ops -------------------------------------------------------------- */

/* The diagram at the top of this file, stage by stage. */
#define AT(stage) [(stage) - QS_HEADER] /* the table starts at QS_HEADER */
static const ms_stage q_stages[] = {
    AT(QS_HEADER) = {"HEADER", .emit = read_header},
    AT(QS_TOP) = {"TOP", .emit = read_top},
    AT(QS_CONFIG) = {"CONFIG", .emit = read_config},
    AT(QS_COMMAND) = {"COMMAND", .emit = ms_q_read_command},
    AT(QS_SECTION_HEADER) = {"SECTION_HEADER",
                             .emit = ms_q_read_section_header},
    AT(QS_RAM) = {"RAM", .emit = ms_q_read_ram},
    AT(QS_VFIO) = {"VFIO", .emit = ms_q_read_vfio},
    AT(QS_VFIO_DATA) = {"VFIO_DATA", .emit = ms_q_read_vfio_data},
    AT(QS_VMSTATE) = {"VMSTATE", .emit = ms_q_read_vmstate},
    AT(QS_SCAN) = {"SCAN", .emit = ms_q_read_scan},
    AT(QS_FOOTER) = {"FOOTER", .emit = ms_q_read_footer},
    AT(QS_AFTER_EOF) = {"AFTER_EOF", .walk = read_after_eof},
    AT(QS_VMDESC) = {"VMDESC", .emit = read_vmdesc},
    AT(QS_DONE) = {"DONE", .ends_after = "the JSON trailer"},
    AT(QS_DIRTY_BITMAP) = {"DIRTY_BITMAP", .emit = ms_q_read_dirty_bitmap},
    AT(QS_VFIO_CONFIG) = {"VFIO_CONFIG", .emit = ms_q_read_vfio_config},
    AT(QS_RESYNC) = {"RESYNC", .emit = ms_q_read_resync},
};
#undef AT
static const ms_stage_table q_table = MS_STAGE_TABLE(QS_HEADER, q_stages);

static int q_finish(ms_reader *r)
{
    q_state *st = QST(r);
    if (st->stage == QS_RESYNC)
        return ms_salvage_finish(r, &st->salv.range);
    if (st->nest && st->stage == QS_TOP && r->stash_len == 0)
        return MS_FAIL(r, MS_ERR_TRUNCATED, r->offset,
                       "input ends inside the PACKAGED stream of the command "
                       "at %llu, which declares bytes up to %llu",
                       (unsigned long long)st->pkg_cmd[st->nest - 1],
                       (unsigned long long)st->pkg_end[st->nest - 1]);
    if (st->stage == QS_DONE ||
        (st->stage == QS_AFTER_EOF && st->step == AE_TYPE && r->stash_len == 0))
        return 0;
    if (st->stage == QS_TOP && r->stash_len == 0 && !st->seen_eof)
        return MS_FAIL(r, MS_ERR_MISSING_END, r->offset,
                       "input ends after %d records without the EOF record "
                       "(0x00)",
                       st->records);
    const char *where = "a record";
    switch (st->stage) {
    case QS_HEADER: where = "the stream header"; break;
    case QS_CONFIG: where = "the CONFIGURATION record"; break;
    case QS_COMMAND: where = "a COMMAND record"; break;
    case QS_VMDESC:
    case QS_AFTER_EOF: where = "the JSON trailer"; break;
    default:
        if (st->cur) {
            char what[300];
            snprintf(what, sizeof what, "section %u (%s %s)", st->cur->id,
                     ms_qemu_section_type_name(st->cur_type),
                     st->cur->idstr);
            return MS_FAIL(r, MS_ERR_TRUNCATED, r->offset,
                           "input ends inside %s that began at %llu", what,
                           (unsigned long long)st->sec_off);
        }
    }
    return MS_FAIL(r, MS_ERR_TRUNCATED, r->offset, "input ends inside %s",
                   where);
}

static void q_destroy(ms_reader *r) { ms_q_free_state(r); }

void ms_q_free_state(ms_reader *r)
{
    q_state *st = QST(r);
    if (!st)
        return;
    ms_free(ALLOC(r), st->discard_args);
    ms_free(ALLOC(r), st->secs);
    ms_u32map_free(ALLOC(r), &st->secmap);
    ms_free(ALLOC(r), st->blocks);
    ms_free(ALLOC(r), st->page_buf);
    ms_free(ALLOC(r), st->mr.bitmap);
    ms_q_ram_free(r);
    ms_free(ALLOC(r), st->vmdesc_buf);
    ms_q_dirty_bitmap_free(r);
    if (st->zs_ready)
        inflateEnd(&st->zs);
    ms_framing_free(r);
}

static int ms_qemu_main_init(ms_reader *r)
{
    q_state *st = ms_framing_new(r, sizeof *st);
    if (!st)
        return -1;
    st->cur_block = -1;
    uint32_t ps = r->vmdesc ? vms_desc_page_size(r->vmdesc) : 0;
    /* x86 and most targets; the configuration's page bits override it */
    st->page_size = ps >= 512 && !(ps & (ps - 1)) ? ps : 4096;
    return 0;
}

const ms_framing_ops ms_qemu_main_ops = {
    .format = MS_FORMAT_QEMU_MAIN,
    .init = ms_qemu_main_init,
    .stages = &q_table,
    .stage_at = offsetof(q_state, stage),
    .finish = q_finish,
    .destroy = q_destroy,
    .salvage = ms_q_salvage,
};

