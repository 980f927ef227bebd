/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* QEMU CPR state ("QCPR"): what QEMU >= 10.0 sends ahead of the main
 * stream in cpr-transfer mode (over the cpr channel) and, from 10.2, keeps
 * in a memfd across exec() in cpr-exec mode (migration/cpr.c).  Facts:
 * spec/qemu-cpr.md.
 *
 *   be32 0x51435052 "QCPR", be32 version 1
 *   VMState "CprState" v1:
 *     fds: QLIST of "cpr fd" v1      { u8 1, be32 namelen, name (namelen
 *                                      bytes, NUL last), be32 id, fd } ...
 *                                      u8 0
 *       fd (VMSTATE_FD): cpr-transfer: one placeholder byte ' ' (the fd
 *                        itself is SCM_RIGHTS ancillary data, not in the
 *                        bytes); cpr-exec: be32 fd number
 *     [QEMU >= 10.1] subsection u8 0x05, u8 21 "CprState/vfio devices",
 *                    be32 1, then a QLIST of "cpr vfio device" v1
 *                    { u8 1, be32 namelen, name, be32 devid, be32 ioas_id,
 *                      be32 hwpt_id } ... u8 0
 *                    (a QEMU built without iommufd: no list at all)
 *   end of input
 *
 * Stages (CS_*, cs->stage; each resumable at any byte):
 *
 *   HEADER -> MARKER --1--> NAMELEN -> NAME -+-> FD_ID -> FD ---------+
 *               ^  |                         |  (fd list)             |
 *               |  |                         +-> VFIO_FIELDS ---------+
 *               |  |                            (vfio device list)    |
 *               +--|------------------------------------------------- +
 *               |  +--0--> SUBSECTION -- 0x05 --> SUB_LEN -> SUB_NAME
 *               |             |                     -> SUB_VERSION --+
 *               |             +-- end of input: the stream ends      |
 *               +----------------------------------------------------+
 *   (the vfio subsection's header may also end the stream: a QEMU built
 *   without iommufd writes no list after it)
 *
 * The stream does not say its mode: the first fd's first byte does (' '
 * for a passed fd; a be32 fd number starts with 0x00, or 0xff if negative,
 * since fd numbers stay far below 2^29). */
#include "kit.h"

#define CPR_MAGIC 0x51435052u /* "QCPR" */
#define CPR_VERSION 1u
#define CPR_FD_PLACEHOLDER 0x20 /* ' ' */
#define CPR_SUBSECTION 0x05
#define CPR_VFIO_SUBSECTION "CprState/vfio devices"
#define CPR_VFIO_VERSION 1u

enum cpr_stage {
    CS_HEADER = 0x4350, /* not 0: a zeroed state is caught as invalid */
    CS_MARKER,          /* u8 1: an entry follows; u8 0: the list ends */
    CS_NAMELEN,
    CS_NAME,
    CS_FD_ID,       /* be32 id */
    CS_FD,          /* the fd: placeholder byte or be32 */
    CS_VFIO_FIELDS, /* be32 devid, ioas_id, hwpt_id */
    CS_SUBSECTION,  /* after a list: a subsection, or the end */
    CS_SUB_LEN,
    CS_SUB_NAME,
    CS_SUB_VERSION
};

enum cpr_mode { MODE_UNKNOWN, MODE_TRANSFER, MODE_EXEC };

typedef struct cpr_state {
    int stage;
    int list;      /* 0: fds, 1: vfio devices */
    int mode;      /* enum cpr_mode, fixed by the first fd */
    int vfio_seen; /* the vfio devices subsection was read */
    int sub_bare;  /* its header was the last thing read: a QEMU built
                      without iommufd writes no list after it */
    uint64_t rec_off;
    uint32_t namelen, count;
    int32_t id;
    char name[256 + 1];
    uint8_t sub_len;
} cpr_state;

#define CST(r) ((cpr_state *)(r)->framing)

static int take_or_return(ms_reader *r, size_t n, const uint8_t **p)
{
    int t = ms_rd_take_reserved(r, n, p);
    return t < 0 ? MS_NEXT_ERROR : t == 0 ? MS_NEXT_INPUT : MS_GO_ON;
}
#define TAKE(r, n, p)                                                          \
    do {                                                                       \
        int t_ = take_or_return((r), (n), (p));                                \
        if (t_ != MS_GO_ON)                                                    \
            return t_;                                                         \
    } while (0)

static void cpr_event(cpr_state *cs, ms_event *ev, ms_cpr_record record,
                      uint64_t end)
{
    memset(&ev->u.cpr, 0, sizeof ev->u.cpr);
    ev->kind = MS_EV_CPR;
    ev->offset = cs->rec_off;
    ev->length = end - cs->rec_off;
    ev->u.cpr.record = record;
    if (record != MS_CPR_LIST_END) {
        ev->u.cpr.name = cs->name;
        ev->u.cpr.name_len = cs->namelen;
    }
}

/* HEADER: magic and version. */
static int read_header(ms_reader *r, ms_event *ev)
{
    cpr_state *cs = CST(r);
    const uint8_t *p;
    TAKE(r, 8, &p);
    if (ms_be32(p) != CPR_MAGIC)
        return MS_FAIL(r, MS_ERR_BAD_MAGIC, 0, "expected \"QCPR\"");
    if (ms_be32(p + 4) != CPR_VERSION)
        return MS_FAIL(r, MS_ERR_VERSION, 4, "CPR state version %u is not 1",
                       ms_be32(p + 4));
    ev->kind = MS_EV_STREAM_HEADER;
    ev->offset = 0;
    ev->length = 8;
    ev->u.stream.format = MS_FORMAT_QEMU_CPR;
    ev->u.stream.version_major = CPR_VERSION;
    ev->u.stream.channel_count = 1;
    cs->stage = CS_MARKER;
    return MS_NEXT_EVENT;
}

/* MARKER: QEMU writes 1 before each entry and 0 after the last. */
static int read_marker(ms_reader *r, ms_event *ev)
{
    cpr_state *cs = CST(r);
    const uint8_t *p;
    cs->rec_off = ms_rd_unit_offset(r);
    TAKE(r, 1, &p);
    cs->sub_bare = 0;
    if (p[0] > 1)
        return MS_FAIL(r, MS_ERR_BAD_FIELD, cs->rec_off,
                       "CPR %s list: entry marker 0x%02x (QEMU writes 1 "
                       "before an entry, 0 after the last)",
                       cs->list ? "vfio device" : "fd", p[0]);
    if (p[0] == 1) {
        cs->stage = CS_NAMELEN;
        return MS_GO_ON;
    }
    cpr_event(cs, ev, MS_CPR_LIST_END, ms_rd_pos(r));
    ev->u.cpr.list = (uint32_t)cs->list;
    ev->u.cpr.count = cs->count;
    cs->count = 0;
    cs->stage = CS_SUBSECTION;
    return MS_NEXT_EVENT;
}

/* NAMELEN, NAME: be32 length (with the NUL), then the name. */
static int read_name(ms_reader *r)
{
    cpr_state *cs = CST(r);
    const uint8_t *p;
    if (cs->stage == CS_NAMELEN) {
        TAKE(r, 4, &p);
        cs->namelen = ms_be32(p);
        if (cs->namelen == 0)
            return MS_FAIL(r, MS_ERR_BAD_FIELD, ms_rd_pos(r) - 4,
                           "CPR name of 0 bytes (QEMU writes the NUL too)");
        if (cs->namelen > r->opt.max_name_length + 1)
            return MS_FAIL_LIMIT(r, MS_LIMIT_MAX_NAME_LENGTH, ms_rd_pos(r) - 4,
                                 "CPR name of %u bytes exceeds max_name_length "
                                 "(%u)",
                                 cs->namelen, r->opt.max_name_length);
        if (cs->namelen > sizeof cs->name) /* a fixed bound: no option */
            return MS_FAIL_LIMIT(r, MS_LIMIT_NONE, ms_rd_pos(r) - 4,
                                 "CPR name of %u bytes is longer than the %zu "
                                 "bytes migstream keeps",
                                 cs->namelen, sizeof cs->name);
        cs->stage = CS_NAME;
    }
    TAKE(r, cs->namelen, &p);
    uint64_t at = ms_rd_pos(r) - cs->namelen;
    const uint8_t *nul = memchr(p, 0, cs->namelen);
    if (!nul || (size_t)(nul - p) != cs->namelen - 1)
        return MS_FAIL(r, MS_ERR_BAD_FIELD, at,
                       nul ? "CPR name has a NUL before its end"
                           : "CPR name does not end with a NUL (QEMU uses "
                             "it as a C string)");
    memcpy(cs->name, p, cs->namelen);
    cs->stage = cs->list ? CS_VFIO_FIELDS : CS_FD_ID;
    return MS_GO_ON;
}

/* FD_ID, FD: the id, then the fd in the stream's mode. */
static int read_fd(ms_reader *r, ms_event *ev)
{
    cpr_state *cs = CST(r);
    const uint8_t *p;
    if (cs->stage == CS_FD_ID) {
        TAKE(r, 4, &p);
        cs->id = (int32_t)ms_be32(p);
        cs->stage = CS_FD;
    }
    if (cs->mode == MODE_UNKNOWN) {
        if (ms_rd_peek(r, 1, &p) == 0)
            return MS_NEXT_INPUT;
        if (p[0] == CPR_FD_PLACEHOLDER)
            cs->mode = MODE_TRANSFER;
        else if (p[0] == 0x00 || p[0] == 0xff)
            cs->mode = MODE_EXEC;
        else
            return MS_FAIL(r, MS_ERR_BAD_FIELD, ms_rd_pos(r),
                           "CPR fd \"%s\": byte 0x%02x is neither the "
                           "cpr-transfer placeholder ' ' nor the start of a "
                           "cpr-exec fd number",
                           cs->name, p[0]);
    }
    int passed = cs->mode == MODE_TRANSFER;
    TAKE(r, passed ? 1 : 4, &p);
    uint64_t at = ms_rd_pos(r) - (passed ? 1 : 4);
    int32_t fd = passed ? -1 : (int32_t)ms_be32(p);
    if (passed && p[0] != CPR_FD_PLACEHOLDER)
        return MS_FAIL(r, MS_ERR_BAD_FIELD, at,
                       "CPR fd \"%s\": byte 0x%02x where a cpr-transfer "
                       "stream has the placeholder ' '",
                       cs->name, p[0]);
    if (!passed && fd < 0)
        return MS_FAIL(r, MS_ERR_BAD_FIELD, at,
                       "CPR fd \"%s\": fd number %d (QEMU saves open fds "
                       "only)",
                       cs->name, fd);
    cpr_event(cs, ev, MS_CPR_FD, ms_rd_pos(r));
    ev->u.cpr.id = cs->id;
    ev->u.cpr.fd_passed = passed;
    ev->u.cpr.fd = fd;
    cs->count++;
    cs->stage = CS_MARKER;
    return MS_NEXT_EVENT;
}

/* VFIO_FIELDS: devid, ioas_id, hwpt_id. */
static int read_vfio(ms_reader *r, ms_event *ev)
{
    cpr_state *cs = CST(r);
    const uint8_t *p;
    TAKE(r, 12, &p);
    cpr_event(cs, ev, MS_CPR_VFIO_DEVICE, ms_rd_pos(r));
    ev->u.cpr.devid = (int32_t)ms_be32(p);
    ev->u.cpr.ioas_id = ms_be32(p + 4);
    ev->u.cpr.hwpt_id = ms_be32(p + 8);
    cs->count++;
    cs->stage = CS_MARKER;
    return MS_NEXT_EVENT;
}

/* SUBSECTION, SUB_NAME, SUB_VERSION: after the fields of CprState, its
 * subsections (QEMU >= 10.1 writes "vfio devices"), then the end. */
static int read_subsection(ms_reader *r, ms_event *ev)
{
    cpr_state *cs = CST(r);
    const uint8_t *p;
    switch (cs->stage) {
    case CS_SUBSECTION:
        if (ms_rd_pending(r) == 0)
            return MS_NEXT_INPUT; /* the state may end here */
        cs->rec_off = ms_rd_unit_offset(r);
        TAKE(r, 1, &p);
        if (p[0] != CPR_SUBSECTION)
            return MS_FAIL(r, MS_ERR_TRAILING_DATA, cs->rec_off,
                           "byte 0x%02x after the CPR state (only a "
                           "subsection, 0x05, may follow its fd list)",
                           p[0]);
        cs->stage = CS_SUB_LEN;
        /* fallthrough */
    case CS_SUB_LEN:
        TAKE(r, 1, &p);
        cs->sub_len = p[0];
        cs->stage = CS_SUB_NAME;
        /* fallthrough */
    case CS_SUB_NAME:
        TAKE(r, cs->sub_len, &p);
        if (cs->sub_len != strlen(CPR_VFIO_SUBSECTION) ||
            memcmp(p, CPR_VFIO_SUBSECTION, cs->sub_len) != 0)
            return MS_FAIL(r, MS_ERR_VMSTATE, cs->rec_off,
                           "unknown CPR state subsection \"%.*s\"",
                           (int)cs->sub_len, (const char *)p);
        if (cs->vfio_seen)
            return MS_FAIL(r, MS_ERR_VMSTATE, cs->rec_off,
                           "CPR state subsection \"%s\" twice",
                           CPR_VFIO_SUBSECTION);
        cs->stage = CS_SUB_VERSION;
        /* fallthrough */
    default:
        TAKE(r, 4, &p);
        if (ms_be32(p) != CPR_VFIO_VERSION)
            return MS_FAIL(r, MS_ERR_VMSTATE, ms_rd_pos(r) - 4,
                           "CPR state subsection \"%s\" version %u (QEMU "
                           "loads version 1)",
                           CPR_VFIO_SUBSECTION, ms_be32(p));
        cs->vfio_seen = 1;
        cs->sub_bare = 1;
        cs->list = 1;
        cs->stage = CS_MARKER;
        ev->kind = MS_EV_SUBSECTION;
        ev->offset = cs->rec_off;
        ev->length = ms_rd_pos(r) - cs->rec_off;
        ev->u.field.path = CPR_VFIO_SUBSECTION;
        ev->u.field.type = "subsection";
        ev->u.field.version = CPR_VFIO_VERSION;
        return MS_NEXT_EVENT;
    }
}

/* The diagram at the top of this file, stage by stage. */
#define AT(stage) [(stage) - CS_HEADER] /* the table starts at CS_HEADER */
static const ms_stage cpr_stages[] = {
    AT(CS_HEADER) = {"HEADER", .emit = read_header},
    AT(CS_MARKER) = {"MARKER", .emit = read_marker},
    AT(CS_NAMELEN) = {"NAMELEN", .walk = read_name},
    AT(CS_NAME) = {"NAME", .walk = read_name},
    AT(CS_FD_ID) = {"FD_ID", .emit = read_fd},
    AT(CS_FD) = {"FD", .emit = read_fd},
    AT(CS_VFIO_FIELDS) = {"VFIO_FIELDS", .emit = read_vfio},
    AT(CS_SUBSECTION) = {"SUBSECTION", .emit = read_subsection},
    AT(CS_SUB_LEN) = {"SUB_LEN", .emit = read_subsection},
    AT(CS_SUB_NAME) = {"SUB_NAME", .emit = read_subsection},
    AT(CS_SUB_VERSION) = {"SUB_VERSION", .emit = read_subsection},
};
#undef AT
static const ms_stage_table cpr_table = MS_STAGE_TABLE(CS_HEADER, cpr_stages);

static int cpr_finish(ms_reader *r)
{
    cpr_state *cs = CST(r);
    if ((cs->stage == CS_SUBSECTION ||
         (cs->stage == CS_MARKER && cs->sub_bare)) &&
        ms_rd_pending(r) == 0)
        return 0;
    const char *where = cs->stage == CS_HEADER ? "the CPR state header"
                        : cs->list             ? "the CPR vfio device list"
                                               : "the CPR fd list";
    if (cs->stage == CS_SUB_LEN || cs->stage == CS_SUB_NAME ||
        cs->stage == CS_SUB_VERSION)
        where = "a CPR state subsection header";
    return MS_FAIL(r, MS_ERR_TRUNCATED, r->offset, "input ends inside %s",
                   where);
}

static int ms_qemu_cpr_init(ms_reader *r)
{
    return ms_framing_new(r, sizeof(cpr_state)) ? 0 : -1;
}

const ms_framing_ops ms_qemu_cpr_ops = {
    .format = MS_FORMAT_QEMU_CPR,
    .init = ms_qemu_cpr_init,
    .stages = &cpr_table,
    .stage_at = offsetof(cpr_state, stage),
    .finish = cpr_finish,
    .destroy = ms_framing_free,
};
