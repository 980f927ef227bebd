/* QEMU main migration stream ("QEVM", version 3) decoder.
 * Facts: spec/qemu-main.md (restating QEMU's migration/savevm.c, ram.c,
 * vmstate.c and hw/vfio/migration.c behaviour).
 *
 * Stages (each resumable at any byte; `step` orders the takes inside one):
 *
 *   LIBVIRT? -> HEADER -> TOP <-----------------------------------------+
 *                          |-- 0x07 CONFIG ----------------------------->|
 *                          |-- 0x08 COMMAND (PACKAGED pushes a nesting) ->|
 *                          |-- 0x01..0x04 SECTION_HEADER                 |
 *                          |      -> RAM | VFIO | VMSTATE | SCAN         |
 *                          |      -> FOOTER ---------------------------->|
 *                          +-- 0x00 EOF -> AFTER_EOF -> VMDESC -> DONE
 *
 * Section payloads carry no length: RAM and VFIO payloads are parsed by
 * their own grammar; FULL sections by the JSON trailer's description when
 * the caller gave it (ms_reader_set_vmdesc); anything else is walked by
 * looking for its footer (0x7E + section id followed by a record type),
 * and reported as MS_EV_UNDECODED with the reason.
 */
#include <stdio.h>
#include <zlib.h>

#include "reader_impl.h"
#include "vmstate.h"

enum q_stage {
    QS_LIBVIRT = 0x5145, /* not 0: a zeroed state is caught as invalid */
    QS_HEADER,
    QS_TOP,
    QS_CONFIG,
    QS_COMMAND,
    QS_SECTION_HEADER,
    QS_RAM,
    QS_VFIO,
    QS_VFIO_DATA,
    QS_VMSTATE,
    QS_SCAN,
    QS_FOOTER,
    QS_AFTER_EOF,
    QS_VMDESC,
    QS_DONE
};

#define QEVM_MAGIC 0x5145564Du
#define QEVM_VERSION 3
#define LIBVIRT_HEADER 92 /* 16 magic + 5 u32 + 14 unused u32 */

enum q_type {
    Q_EOF = 0x00,
    Q_START = 0x01,
    Q_PART = 0x02,
    Q_END = 0x03,
    Q_FULL = 0x04,
    Q_SUBSECTION = 0x05,
    Q_VMDESC = 0x06,
    Q_CONFIGURATION = 0x07,
    Q_COMMAND = 0x08,
    Q_FOOTER = 0x7E
};

/* RAM flag bits (in the low bits of each record's be64). */
#define RAM_CONTINUE 0x20u
#define RAM_KNOWN                                                             \
    (MS_RAM_ZERO | MS_RAM_MEM_SIZE | MS_RAM_PAGE | MS_RAM_EOS | RAM_CONTINUE |  \
     MS_RAM_XBZRLE | MS_RAM_HOOK | MS_RAM_COMPRESS_PAGE | MS_RAM_MULTIFD_FLUSH)
#define RAM_PAGE_KINDS                                                        \
    (MS_RAM_ZERO | MS_RAM_PAGE | MS_RAM_XBZRLE | MS_RAM_COMPRESS_PAGE)

/* VFIO markers (be64). */
#define VFIO_MARKER_BASE 0xffffffffef100000ull
enum vfio_marker {
    VFIO_END_OF_STATE = 1,
    VFIO_CONFIG_STATE = 2,
    VFIO_SETUP_STATE = 3,
    VFIO_DATA_STATE = 4,
    VFIO_INIT_DATA_SENT = 5,
    VFIO_CONFIG_LOAD_READY = 6
};

typedef enum q_kind { QK_OTHER, QK_RAM, QK_VFIO } q_kind;

typedef struct q_section {
    uint32_t id;
    char idstr[256];
    uint32_t instance_id, version_id;
    q_kind kind;
    /* VFIO */
    int init_sent, load_ready, setup_seen;
    uint64_t device_bytes; /* data bytes so far: the next image_offset */
} q_section;

typedef struct q_block {
    char name[256];
    uint64_t used_length;
} q_block;

typedef struct q_state {
    int stage, step;
    uint32_t page_size;
    int seen_config, seen_eof, records;
    int cap_ignore_shared, cap_mapped_ram;

    /* PACKAGED nesting: where each enclosing package ends */
    uint64_t pkg_end[8], pkg_cmd[8]; /* end, and the PACKAGED command */
    int nest;

    /* the record being read */
    uint64_t rec_off;
    uint8_t type;
    uint32_t u32a, u32b; /* scratch: lengths, ids, counts */
    uint64_t u64a;
    char name[256]; /* a counted string being read */
    char machine[256];
    ms_event pending; /* an event built over several steps */

    /* sections */
    q_section *secs;
    size_t nsecs, seccap;
    ms_u32map secmap;
    q_section *cur;
    ms_qemu_section_type cur_type;
    uint64_t sec_off;

    /* RAM */
    q_block *blocks;
    size_t nblocks, blockcap;
    int cur_block; /* -1: none yet */
    uint64_t mem_total, mem_sum;
    /* multifd sync epoch: QEMU 7.2 syncs its channels at every RAM section
     * end (EOS); newer QEMU marks sync points with MULTIFD_FLUSH instead */
    uint32_t epoch;
    int seen_flush;
    uint8_t *page_buf; /* inflated COMPRESS_PAGE */
    z_stream zs;
    int zs_ready;

    /* VFIO */
    uint64_t vfio_left;
    uint64_t last_marker;
    int vfio_part_data; /* this PART section carried its data chunk */

    /* VMState (FULL sections described by the trailer) */
    vms_walk walk;
    const char *vms_level; /* VMSD name of the level being closed */
    size_t field_left;     /* bytes of a large field being skipped */

    /* footer scan */
    uint8_t ring[16];
    uint64_t scanned;
    int scan_vfio; /* the footer must follow an END_OF_STATE marker */
    const char *scan_why; /* to announce as MS_EV_UNDECODED first */

    /* JSON trailer */
    uint8_t *vmdesc_buf;
    uint64_t vmdesc_len, vmdesc_got, vmdesc_off;
} q_state;

#define QST(r) ((q_state *)(r)->framing)
#define ALLOC(r) (&(r)->opt.allocator)

/* ---- small helpers ------------------------------------------------------ */


/* The one counted-string reader (u8 length + bytes) of this framing.
 * Uses step values `at` and `at + 1`; returns 1 when st->name holds it. */
static int take_counted(ms_reader *r, int at, const char *what)
{
    q_state *st = QST(r);
    const uint8_t *p;
    if (st->step == at) {
        int t = ms_rd_take_reserved(r, 1, &p);
        if (t <= 0)
            return t;
        st->u32b = p[0];
        st->step = at + 1;
    }
    int t = ms_rd_take_reserved(r, st->u32b, &p);
    if (t <= 0)
        return t;
    if (st->u32b == 0) {
        MS_FAIL(r, MS_ERR_BAD_FIELD, ms_rd_pos(r) - 1, "empty %s", what);
        return -1;
    }
    memcpy(st->name, p, st->u32b);
    st->name[st->u32b] = 0;
    if (memchr(st->name, 0, st->u32b)) {
        MS_FAIL(r, MS_ERR_BAD_FIELD, ms_rd_pos(r) - st->u32b,
                "%s contains a NUL byte", what);
        return -1;
    }
    return 1;
}

static const char *command_name(uint16_t cmd)
{
    static const char *const names[] = {
        "INVALID",        "OPEN_RETURN_PATH", "PING",
        "POSTCOPY_ADVISE", "POSTCOPY_LISTEN",  "POSTCOPY_RUN",
        "POSTCOPY_RAM_DISCARD", "PACKAGED",    "ENABLE_COLO",
        "POSTCOPY_RESUME", "RECV_BITMAP",      "SWITCHOVER_START"};
    return cmd < sizeof names / sizeof names[0] ? names[cmd] : NULL;
}

static const char *vfio_marker_name(uint64_t m)
{
    switch (m - VFIO_MARKER_BASE) {
    case VFIO_END_OF_STATE: return "END_OF_STATE";
    case VFIO_CONFIG_STATE: return "DEV_CONFIG_STATE";
    case VFIO_SETUP_STATE: return "DEV_SETUP_STATE";
    case VFIO_DATA_STATE: return "DEV_DATA_STATE";
    case VFIO_INIT_DATA_SENT: return "DEV_INIT_DATA_SENT";
    case VFIO_CONFIG_LOAD_READY: return "DEV_CONFIG_LOAD_READY";
    }
    return NULL;
}

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

/* ---- header and wrapper --------------------------------------------------- */

static int read_libvirt(ms_reader *r)
{
    q_state *st = QST(r);
    const uint8_t *p;
    if (st->step == 0) {
        int t = ms_rd_take_reserved(r, LIBVIRT_HEADER, &p);
        if (t <= 0)
            return t < 0 ? MS_NEXT_ERROR : MS_NEXT_INPUT;
        /* libvirt writes its header in host order (little endian on the
         * hosts that run it); fields after the 16-byte magic are u32. */
        uint32_t xml_len = ms_le32(p + 20), compressed = ms_le32(p + 28);
        if (memcmp(p + 12, "Save", 4) != 0 && memcmp(p + 12, "Part", 4) != 0)
            return MS_FAIL(r, MS_ERR_BAD_MAGIC, 0,
                           "libvirt save image magic is neither "
                           "LibvirtQemudSave nor LibvirtQemudPart");
        if (memcmp(p, "LibvirtQemudPart", 16) == 0)
            return MS_FAIL(r, MS_ERR_TRUNCATED, 0,
                           "libvirt save image marked incomplete "
                           "(LibvirtQemudPart)");
        if (compressed != 0)
            return MS_FAIL(r, MS_ERR_FORMAT_UNSUPPORTED, 28,
                           "libvirt save image compressed with method %u; "
                           "decompress it first",
                           compressed);
        st->u64a = xml_len; /* domain XML to skip */
        st->step = 1;
    }
    const uint8_t *x;
    size_t n = ms_rd_peek(r, st->u64a, &x);
    ms_rd_skip(r, n);
    st->u64a -= n;
    if (st->u64a)
        return MS_NEXT_INPUT;
    st->stage = QS_HEADER;
    st->step = 0;
    return MS_GO_ON;
}

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

static int read_config(ms_reader *r, ms_event *ev)
{
    q_state *st = QST(r);
    ms_config_info *c = &st->pending.u.config;
    const uint8_t *p;
    int t;
    switch (st->step) {
    case 0: /* be32 length of the machine type */
        if ((t = ms_rd_take_reserved(r, 4, &p)) <= 0)
            return t < 0 ? MS_NEXT_ERROR : MS_NEXT_INPUT;
        st->u32a = ms_be32(p);
        if (st->u32a == 0 || st->u32a > 255)
            return MS_FAIL(r, MS_ERR_CONFIGURATION, ms_rd_pos(r) - 4,
                           "machine type of %u bytes", st->u32a);
        st->step = 1;
        /* fallthrough */
    case 1:
        if ((t = ms_rd_take_reserved(r, st->u32a, &p)) <= 0)
            return t < 0 ? MS_NEXT_ERROR : MS_NEXT_INPUT;
        memcpy(st->machine, p, st->u32a);
        st->machine[st->u32a] = 0;
        memset(&st->pending, 0, sizeof st->pending);
        st->pending.kind = MS_EV_CONFIGURATION;
        st->pending.offset = st->rec_off;
        st->step = 2;
        /* fallthrough */
    case 2: /* a subsection (0x05) or the end of the record */
    next_sub : {
        size_t n = ms_rd_peek(r, 1, &p);
        if (n == 0)
            return MS_NEXT_INPUT;
        if (p[0] != Q_SUBSECTION) {
            st->stage = QS_TOP;
            st->step = 0;
            st->seen_config = 1;
            *ev = st->pending;
            ev->length = ms_rd_pos(r) - st->rec_off;
            ev->u.config.machine = st->machine;
            ev->u.config.machine_len = (uint32_t)strlen(st->machine);
            return MS_NEXT_EVENT;
        }
        ms_rd_skip(r, 1);
        st->step = 3;
    }
        /* fallthrough */
    case 3:
    case 4:
        if ((t = take_counted(r, 3, "configuration subsection name")) <= 0)
            return t < 0 ? MS_NEXT_ERROR : MS_NEXT_INPUT;
        st->step = 5;
        /* fallthrough */
    case 5: /* be32 version_id, then the named subsection's fields */
        if ((t = ms_rd_take_reserved(r, 4, &p)) <= 0)
            return t < 0 ? MS_NEXT_ERROR : MS_NEXT_INPUT;
        if (strcmp(st->name, "configuration/target-page-bits") == 0)
            st->step = 6;
        else if (strcmp(st->name, "configuration/capabilities") == 0)
            st->step = 7;
        else if (strcmp(st->name, "configuration/uuid") == 0)
            st->step = 10;
        else
            return MS_FAIL(r, MS_ERR_CONFIGURATION, ms_rd_pos(r) - 4,
                           "unknown configuration subsection \"%s\"",
                           st->name);
        return MS_GO_ON;
    case 6:
        if ((t = ms_rd_take_reserved(r, 4, &p)) <= 0)
            return t < 0 ? MS_NEXT_ERROR : MS_NEXT_INPUT;
        c->has_page_bits = 1;
        c->page_bits = ms_be32(p);
        if (c->page_bits < 9 || c->page_bits > 21)
            return MS_FAIL(r, MS_ERR_CONFIGURATION, ms_rd_pos(r) - 4,
                           "target page bits %u", c->page_bits);
        st->page_size = 1u << c->page_bits;
        st->step = 2;
        goto next_sub;
    case 7:
        if ((t = ms_rd_take_reserved(r, 4, &p)) <= 0)
            return t < 0 ? MS_NEXT_ERROR : MS_NEXT_INPUT;
        st->u32a = ms_be32(p);
        if (st->u32a > 64)
            return MS_FAIL(r, MS_ERR_CONFIGURATION, ms_rd_pos(r) - 4,
                           "%u capabilities listed", st->u32a);
        c->capability_count = st->u32a;
        st->step = 8;
        /* fallthrough */
    case 8:
    case 9:
        while (st->u32a) {
            if ((t = take_counted(r, 8, "capability name")) <= 0)
                return t < 0 ? MS_NEXT_ERROR : MS_NEXT_INPUT;
            if (strcmp(st->name, "x-ignore-shared") == 0)
                c->cap_x_ignore_shared = st->cap_ignore_shared = 1;
            else if (strcmp(st->name, "mapped-ram") == 0)
                c->cap_mapped_ram = st->cap_mapped_ram = 1;
            st->u32a--;
            st->step = 8;
        }
        st->step = 2;
        goto next_sub;
    case 10:
        if ((t = ms_rd_take_reserved(r, 16, &p)) <= 0)
            return t < 0 ? MS_NEXT_ERROR : MS_NEXT_INPUT;
        c->has_uuid = 1;
        memcpy(c->uuid, p, 16);
        st->step = 2;
        goto next_sub;
    }
    return MS_FAIL(r, MS_ERR_USAGE, ms_rd_pos(r), "internal: config step");
}

/* ---- commands ------------------------------------------------------------- */

static int read_command(ms_reader *r, ms_event *ev)
{
    q_state *st = QST(r);
    const uint8_t *p;
    int t;
    if (st->step == 0) {
        if ((t = ms_rd_take_reserved(r, 4, &p)) <= 0)
            return t < 0 ? MS_NEXT_ERROR : MS_NEXT_INPUT;
        st->u32a = ms_be16(p);     /* cmd */
        st->u32b = ms_be16(p + 2); /* len */
        const char *name = command_name((uint16_t)st->u32a);
        /* fixed lengths per command; -1: variable */
        static const int fixed[] = {-2, 0, 4, -1, 0, 0, -1, 4, 0, 0, -1, 0};
        if (!name || st->u32a == 0)
            return MS_FAIL(r, MS_ERR_COMMAND, st->rec_off,
                           "unknown command %u", st->u32a);
        int want = fixed[st->u32a];
        if (st->u32a == 3 && st->u32b != 0 && st->u32b != 16)
            want = 16; /* POSTCOPY_ADVISE: 0 or 16 */
        if (want >= 0 && (int)st->u32b != want)
            return MS_FAIL(r, MS_ERR_COMMAND, st->rec_off,
                           "%s with %u argument bytes, must be %d", name,
                           st->u32b, want);
        st->step = 1;
    }
    if ((t = ms_rd_take_reserved(r, st->u32b, &p)) <= 0)
        return t < 0 ? MS_NEXT_ERROR : MS_NEXT_INPUT;
    uint16_t cmd = (uint16_t)st->u32a, len = (uint16_t)st->u32b;
    ev->kind = MS_EV_COMMAND;
    ev->offset = st->rec_off;
    ev->length = 5 + (uint64_t)len;
    ms_command_info *c = &ev->u.command;
    c->cmd = cmd;
    c->len = len;
    c->name = command_name(cmd);
    c->args = p;
    c->nesting = st->nest;
    if (cmd == 2 || cmd == 7)
        c->value = ms_be32(p);
    if (cmd == 10 && (len == 0 || p[0] + 1u != len))
        return MS_FAIL(r, MS_ERR_COMMAND, st->rec_off,
                       "RECV_BITMAP name length %u in %u bytes",
                       len ? p[0] : 0, len);
    if (cmd == 6 && (len < 3 || p[0] != 0 || 2u + p[1] + 1 > len ||
                     (len - 2u - p[1] - 1) % 16 != 0))
        return MS_FAIL(r, MS_ERR_COMMAND, st->rec_off,
                       "malformed POSTCOPY_RAM_DISCARD arguments");
    if (cmd == 7) { /* PACKAGED: the next pkg_len bytes are a nested stream */
        if ((uint32_t)st->nest >= MS_MIN(r->opt.max_nesting, 8u))
            return MS_FAIL(r, MS_ERR_LIMIT, st->rec_off,
                           "PACKAGED nested deeper than max_nesting (%u)",
                           r->opt.max_nesting);
        uint64_t end = ms_rd_pos(r) + c->value;
        if (st->nest && end > st->pkg_end[st->nest - 1])
            return MS_FAIL(r, MS_ERR_COMMAND, st->rec_off,
                           "PACKAGED of %llu bytes overruns its enclosing "
                           "package",
                           (unsigned long long)c->value);
        st->pkg_cmd[st->nest] = st->rec_off;
        st->pkg_end[st->nest++] = end;
    }
    st->stage = QS_TOP;
    st->step = 0;
    return MS_NEXT_EVENT;
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
        MS_FAIL(r, MS_ERR_LIMIT, st->rec_off,
                "more than max_sections (%u) sections", r->opt.max_sections);
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
    s->kind = strcmp(s->idstr, "ram") == 0       ? QK_RAM
              : ends_with(s->idstr, "/vfio") ? QK_VFIO
                                              : QK_OTHER;
    return s;
}

static void start_scan(q_state *st, int vfio)
{
    st->scanned = 0;
    st->scan_vfio = vfio;
    st->stage = QS_SCAN;
    st->step = 0;
}

/* Choose how to read the payload of the section just announced; may
 * produce an MS_EV_UNDECODED event saying why it is walked blind. */
static int enter_payload(ms_reader *r, ms_event *ev)
{
    q_state *st = QST(r);
    q_section *s = st->cur;
    st->step = 0;
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
    if (st->cur_type == MS_QSEC_FULL) {
        const vms_device *d =
            r->vmdesc ? vms_desc_find(r->vmdesc, s->idstr, s->instance_id)
                      : NULL;
        if (d) {
            vms_walk_begin(&st->walk, d);
            st->stage = QS_VMSTATE;
            return MS_GO_ON;
        }
        why = r->vmdesc ? "the JSON trailer does not describe this device"
                        : "no JSON trailer was given before the stream "
                          "(VMState fields need it)";
    } else {
        why = "no decoder for this iterable device's payload";
    }
    start_scan(st, 0);
    section_event(st, ev, MS_EV_UNDECODED);
    ev->u.section.detail = why;
    return MS_NEXT_EVENT;
}

static int read_section_header(ms_reader *r, ms_event *ev)
{
    q_state *st = QST(r);
    const uint8_t *p;
    int t;
    int is_new = st->type == Q_START || st->type == Q_FULL;
    switch (st->step) {
    case 4: /* announced: choose the payload reader */
        return enter_payload(r, ev);
    case 0:
        if ((t = ms_rd_take_reserved(r, 4, &p)) <= 0)
            return t < 0 ? MS_NEXT_ERROR : MS_NEXT_INPUT;
        st->u32a = ms_be32(p);
        st->cur_type = (ms_qemu_section_type)st->type;
        if (!is_new) {
            if (!(st->cur = section_by_id(r, st->u32a)))
                return MS_FAIL(r, MS_ERR_SECTION, st->rec_off,
                               "%s section names unknown section id %u",
                               st->type == Q_PART ? "PART" : "END",
                               st->u32a);
            goto announce;
        }
        st->step = 1;
        /* fallthrough */
    case 1:
    case 2:
        if ((t = take_counted(r, 1, "section idstr")) <= 0)
            return t < 0 ? MS_NEXT_ERROR : MS_NEXT_INPUT;
        st->step = 3;
        /* fallthrough */
    case 3:
        if ((t = ms_rd_take_reserved(r, 8, &p)) <= 0)
            return t < 0 ? MS_NEXT_ERROR : MS_NEXT_INPUT;
        if (!(st->cur = register_section(r, st->u32a, ms_be32(p),
                                         ms_be32(p + 4))))
            return MS_NEXT_ERROR;
        break;
    }
announce:
    if (st->cur_type == MS_QSEC_START && st->cur->kind == QK_VFIO)
        st->cur->setup_seen = 0;
    section_event(st, ev, MS_EV_SECTION);
    ev->length = ms_rd_pos(r) - st->rec_off;
    st->step = 4;
    return MS_NEXT_EVENT;
}

static int read_footer(ms_reader *r, ms_event *ev)
{
    q_state *st = QST(r);
    const uint8_t *p;
    uint64_t off = ms_rd_unit_offset(r);
    int t = ms_rd_take_reserved(r, 5, &p);
    if (t <= 0)
        return t < 0 ? MS_NEXT_ERROR : MS_NEXT_INPUT;
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
    st->step = 0;
    return MS_NEXT_EVENT;
}

/* Walk a payload we cannot decode: find "0x7E + be32 id" followed by a byte
 * that can start the next record (and, for VFIO config state, preceded by
 * END_OF_STATE).  Bytes are only looked at, never kept. */
static int read_scan(ms_reader *r, ms_event *ev)
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
                st->step = 0;
                return MS_NEXT_EVENT;
            }
        }
        g[st->scanned % 16] = p[0];
        st->scanned++;
        ms_rd_skip(r, 1);
    }
}

/* ---- RAM (version 4) -------------------------------------------------------- */

static q_block *block_named(q_state *st, const char *name, int *index)
{
    for (size_t i = 0; i < st->nblocks; i++)
        if (strcmp(st->blocks[i].name, name) == 0) {
            *index = (int)i;
            return &st->blocks[i];
        }
    return NULL;
}

static void ram_event(q_state *st, ms_event *ev, ms_event_kind kind,
                      uint32_t record)
{
    ev->kind = kind;
    ev->offset = st->rec_off;
    ev->u.ram.record = (ms_ram_record)record;
    ev->u.ram.page_size = st->page_size;
    ev->u.ram.epoch = st->epoch;
    if (st->cur_block >= 0) {
        ev->u.ram.block = st->blocks[st->cur_block].name;
        ev->u.ram.block_index = (uint32_t)st->cur_block;
        ev->u.ram.used_length = st->blocks[st->cur_block].used_length;
    }
}

/* One entry of the MEM_SIZE block list (steps 10..14). */
static int read_ram_block(ms_reader *r, ms_event *ev)
{
    q_state *st = QST(r);
    const uint8_t *p;
    int t;
    switch (st->step) {
    case 10:
        st->rec_off = ms_rd_unit_offset(r);
        st->step = 11;
        /* fallthrough */
    case 11:
    case 12:
        if ((t = take_counted(r, 11, "RAM block name")) <= 0)
            return t < 0 ? MS_NEXT_ERROR : MS_NEXT_INPUT;
        st->step = 13;
        /* fallthrough */
    case 13: {
        /* be64 used_length, then what capabilities add per block */
        size_t extra = 8 + (r->opt.qemu_postcopy_ram ? 8 : 0) +
                       (st->cap_ignore_shared ? 8 : 0) +
                       (st->cap_mapped_ram ? 28 : 0);
        if ((t = ms_rd_take_reserved(r, extra, &p)) <= 0)
            return t < 0 ? MS_NEXT_ERROR : MS_NEXT_INPUT;
        uint64_t used = ms_be64(p);
        int dummy;
        if (block_named(st, st->name, &dummy))
            return MS_FAIL(r, MS_ERR_RAM, st->rec_off,
                           "RAM block \"%s\" listed twice", st->name);
        if (st->nblocks >= r->opt.max_ram_blocks)
            return MS_FAIL(r, MS_ERR_LIMIT, st->rec_off,
                           "more than max_ram_blocks (%u) RAM blocks",
                           r->opt.max_ram_blocks);
        if (used > st->mem_total - st->mem_sum)
            return MS_FAIL(r, MS_ERR_RAM, st->rec_off + 1 + strlen(st->name),
                           "RAM block \"%s\" of %llu bytes exceeds the "
                           "total %llu given by MEM_SIZE",
                           st->name, (unsigned long long)used,
                           (unsigned long long)st->mem_total);
        if (ms_grow(ALLOC(r), (void **)&st->blocks, sizeof *st->blocks,
                    &st->blockcap, st->nblocks + 1) < 0)
            return MS_FAIL(r, MS_ERR_NO_MEMORY, st->rec_off, "block list");
        q_block *b = &st->blocks[st->nblocks];
        memcpy(b->name, st->name, sizeof b->name);
        b->used_length = used;
        st->cur_block = (int)st->nblocks++;
        st->mem_sum += used;
        ram_event(st, ev, MS_EV_RAM_BLOCK, MS_RAM_MEM_SIZE);
        ev->length = ms_rd_pos(r) - st->rec_off;
        ev->u.ram.total = st->mem_total;
        st->cur_block = -1;
        st->step = st->mem_sum == st->mem_total ? 0 : 10;
        return MS_NEXT_EVENT;
    }
    }
    return MS_FAIL(r, MS_ERR_USAGE, ms_rd_pos(r), "internal: ram block step");
}

static int inflate_page(ms_reader *r, const uint8_t *src, size_t len)
{
    q_state *st = QST(r);
    if (!st->page_buf && !(st->page_buf = ms_alloc(ALLOC(r), st->page_size)))
        return MS_FAIL(r, MS_ERR_NO_MEMORY, st->rec_off, "page buffer");
    if (!st->zs_ready) {
        memset(&st->zs, 0, sizeof st->zs);
        if (inflateInit(&st->zs) != Z_OK)
            return MS_FAIL(r, MS_ERR_NO_MEMORY, st->rec_off, "inflateInit");
        st->zs_ready = 1;
    } else {
        inflateReset(&st->zs);
    }
    st->zs.next_in = (Bytef *)src;
    st->zs.avail_in = (uInt)len;
    st->zs.next_out = st->page_buf;
    st->zs.avail_out = st->page_size;
    int zrc = inflate(&st->zs, Z_FINISH);
    if (zrc != Z_STREAM_END || st->zs.avail_out != 0 || st->zs.avail_in != 0)
        return MS_FAIL(r, MS_ERR_DECOMPRESS, st->rec_off,
                       "COMPRESS_PAGE does not inflate to exactly one %u-byte "
                       "page",
                       st->page_size);
    return 0;
}

static int read_ram(ms_reader *r, ms_event *ev)
{
    q_state *st = QST(r);
    const uint8_t *p;
    int t;
    if (st->step >= 10)
        return read_ram_block(r, ev);
    switch (st->step) {
    case 0: { /* be64: page offset | flags */
        st->rec_off = ms_rd_unit_offset(r);
        if ((t = ms_rd_take_reserved(r, 8, &p)) <= 0)
            return t < 0 ? MS_NEXT_ERROR : MS_NEXT_INPUT;
        uint64_t v = ms_be64(p), mask = st->page_size - 1;
        uint32_t flags = (uint32_t)(v & mask);
        st->u64a = v & ~mask;
        st->u32a = flags;
        uint32_t kinds = flags & ~RAM_CONTINUE;
        if ((flags & ~RAM_KNOWN) || (kinds & (kinds - 1)) || !kinds ||
            ((flags & RAM_CONTINUE) && !(kinds & RAM_PAGE_KINDS)))
            return MS_FAIL(r, MS_ERR_RAM, st->rec_off,
                           "RAM record flags 0x%x are not a known "
                           "combination",
                           flags);
        if (kinds == MS_RAM_MEM_SIZE) {
            if (st->cur_type != MS_QSEC_START)
                return MS_FAIL(r, MS_ERR_RAM, st->rec_off,
                               "block list (MEM_SIZE) outside a START "
                               "section");
            st->mem_total = st->u64a;
            st->mem_sum = 0;
            st->nblocks = 0;
            st->step = st->mem_total ? 10 : 0;
            return MS_GO_ON;
        }
        if (kinds == MS_RAM_EOS || kinds == MS_RAM_MULTIFD_FLUSH) {
            ram_event(st, ev, MS_EV_RAM_MARKER, kinds);
            ev->length = 8;
            if (kinds == MS_RAM_MULTIFD_FLUSH)
                st->seen_flush = 1;
            if (kinds == MS_RAM_MULTIFD_FLUSH || !st->seen_flush)
                st->epoch++;
            if (kinds == MS_RAM_EOS)
                st->stage = QS_FOOTER;
            return MS_NEXT_EVENT;
        }
        if (kinds == MS_RAM_HOOK)
            return MS_FAIL(r, MS_ERR_RAM, st->rec_off,
                           "RAM_SAVE_FLAG_HOOK: RDMA streams are not "
                           "supported");
        if (flags & RAM_CONTINUE) {
            if (st->cur_block < 0)
                return MS_FAIL(r, MS_ERR_RAM, st->rec_off,
                               "CONTINUE page with no current RAM block");
            st->step = 3;
            return MS_GO_ON;
        }
        st->step = 1;
    }
        /* fallthrough */
    case 1:
    case 2: {
        if ((t = take_counted(r, 1, "RAM block name")) <= 0)
            return t < 0 ? MS_NEXT_ERROR : MS_NEXT_INPUT;
        int idx;
        if (!block_named(st, st->name, &idx))
            return MS_FAIL(r, MS_ERR_RAM, st->rec_off + 8,
                           "page for unknown RAM block \"%s\"", st->name);
        st->cur_block = idx;
        st->step = 3;
    }
        /* fallthrough */
    case 3: {
        q_block *b = &st->blocks[st->cur_block];
        if (st->u64a > b->used_length ||
            b->used_length - st->u64a < st->page_size)
            return MS_FAIL(r, MS_ERR_RAM, st->rec_off,
                           "page at 0x%llx outside RAM block \"%s\" (0x%llx "
                           "bytes)",
                           (unsigned long long)st->u64a, b->name,
                           (unsigned long long)b->used_length);
        st->step = 4;
    }
        /* fallthrough */
    case 4: {
        uint32_t kind = st->u32a & ~RAM_CONTINUE;
        size_t want = kind == MS_RAM_ZERO   ? 1
                      : kind == MS_RAM_PAGE ? st->page_size
                      : kind == MS_RAM_XBZRLE ? 3
                                              : 4; /* COMPRESS_PAGE len */
        if ((t = ms_rd_take_reserved(r, want, &p)) <= 0)
            return t < 0 ? MS_NEXT_ERROR : MS_NEXT_INPUT;
        ram_event(st, ev, MS_EV_RAM_PAGE, kind);
        ev->u.ram.offset = st->u64a;
        if (kind == MS_RAM_ZERO) {
            if (p[0] != 0)
                return MS_FAIL(r, MS_ERR_RAM, ms_rd_pos(r) - 1,
                               "ZERO page fill byte 0x%02x, must be 0", p[0]);
            ev->u.ram.fill = 0;
        } else if (kind == MS_RAM_PAGE) {
            ev->u.ram.data = p;
            ev->u.ram.size = st->page_size;
            ev->u.ram.zero_copy = ms_rd_in_input(r, p);
        } else {
            /* XBZRLE: u8 encoding 1 + be16 length; COMPRESS: be32 length */
            st->u32b = kind == MS_RAM_XBZRLE ? ms_be16(p + 1) : ms_be32(p);
            if (kind == MS_RAM_XBZRLE && p[0] != 1)
                return MS_FAIL(r, MS_ERR_RAM, ms_rd_pos(r) - 3,
                               "XBZRLE encoding byte 0x%02x, must be 0x01",
                               p[0]);
            size_t max = kind == MS_RAM_XBZRLE ? st->page_size
                                               : compressBound(st->page_size);
            if (st->u32b > max || st->u32b == 0)
                return MS_FAIL(r, MS_ERR_RAM, ms_rd_pos(r) - 2,
                               "%s length %u (page size %u)",
                               kind == MS_RAM_XBZRLE ? "XBZRLE"
                                                     : "COMPRESS_PAGE",
                               st->u32b, st->page_size);
            st->step = 5;
            return MS_GO_ON;
        }
        ev->length = ms_rd_pos(r) - st->rec_off;
        st->step = 0;
        return MS_NEXT_EVENT;
    }
    case 5: {
        uint32_t kind = st->u32a & ~RAM_CONTINUE;
        if ((t = ms_rd_take_reserved(r, st->u32b, &p)) <= 0)
            return t < 0 ? MS_NEXT_ERROR : MS_NEXT_INPUT;
        ram_event(st, ev, MS_EV_RAM_PAGE, kind);
        ev->u.ram.offset = st->u64a;
        if (kind == MS_RAM_COMPRESS_PAGE) {
            if (inflate_page(r, p, st->u32b) < 0)
                return MS_NEXT_ERROR;
            ev->u.ram.data = st->page_buf;
            ev->u.ram.size = st->page_size;
        } else {
            ev->u.ram.data = p;
            ev->u.ram.size = st->u32b;
            ev->u.ram.zero_copy = ms_rd_in_input(r, p);
        }
        ev->length = ms_rd_pos(r) - st->rec_off;
        st->step = 0;
        return MS_NEXT_EVENT;
    }
    }
    return MS_FAIL(r, MS_ERR_USAGE, ms_rd_pos(r), "internal: ram step");
}

/* ---- VFIO --------------------------------------------------------------------- */

static ms_phase vfio_phase(q_state *st)
{
    if (st->cur_type == MS_QSEC_END)
        return MS_PHASE_FINAL;
    return st->cur->init_sent ? MS_PHASE_MIDDLE : MS_PHASE_INITIAL;
}

static int read_vfio(ms_reader *r, ms_event *ev)
{
    q_state *st = QST(r);
    q_section *s = st->cur;
    const uint8_t *p;
    int t;
    uint64_t last = st->last_marker - VFIO_MARKER_BASE;
    if (st->step == 0) {
        /* A footer may follow a marker that ends the payload. */
        size_t n = ms_rd_peek(r, 1, &p);
        if (n == 0)
            return MS_NEXT_INPUT;
        /* END_OF_STATE and INIT_DATA_SENT end the payload: the footer
         * must follow (read_footer reports anything else); after
         * CONFIG_LOAD_READY either the footer or END_OF_STATE may. */
        if (st->last_marker && p[0] != 0xFF &&
            (last == VFIO_END_OF_STATE || last == VFIO_INIT_DATA_SENT ||
             (last == VFIO_CONFIG_LOAD_READY && p[0] == Q_FOOTER))) {
            st->stage = QS_FOOTER;
            st->step = 0;
            return MS_GO_ON;
        }
        st->rec_off = ms_rd_unit_offset(r);
        if ((t = ms_rd_take_reserved(r, 8, &p)) <= 0)
            return t < 0 ? MS_NEXT_ERROR : MS_NEXT_INPUT;
        uint64_t m = ms_be64(p);
        const char *name = vfio_marker_name(m);
        if (!name)
            return MS_FAIL(r, MS_ERR_VFIO, st->rec_off,
                           "%s: unknown VFIO marker 0x%016llx", s->idstr,
                           (unsigned long long)m);
        if (last == VFIO_END_OF_STATE || last == VFIO_INIT_DATA_SENT)
            return MS_FAIL(r, MS_ERR_VFIO, st->rec_off,
                           "%s: %s after the payload ended", s->idstr, name);
        uint64_t k = m - VFIO_MARKER_BASE;
        ms_qemu_section_type ty = st->cur_type;
        const char *bad = NULL;
        if (st->last_marker == VFIO_MARKER_BASE + VFIO_SETUP_STATE &&
            k != VFIO_END_OF_STATE)
            bad = "DEV_SETUP_STATE must be followed by END_OF_STATE";
        else if (k == VFIO_SETUP_STATE && ty != MS_QSEC_START)
            bad = "DEV_SETUP_STATE outside a START section";
        else if (ty == MS_QSEC_START && k != VFIO_SETUP_STATE &&
                 k != VFIO_END_OF_STATE)
            bad = "a START section holds only DEV_SETUP_STATE";
        else if (k == VFIO_DATA_STATE && ty != MS_QSEC_PART &&
                 ty != MS_QSEC_END)
            bad = "device data outside PART and END sections";
        else if (k == VFIO_DATA_STATE && ty == MS_QSEC_PART &&
                 st->vfio_part_data)
            bad = "a second DEV_DATA_STATE in one PART section (QEMU sends "
                  "at most one per iteration)";
        else if (k == VFIO_INIT_DATA_SENT && ty != MS_QSEC_PART)
            bad = "DEV_INIT_DATA_SENT outside a PART section";
        else if (k == VFIO_INIT_DATA_SENT && s->init_sent)
            bad = "DEV_INIT_DATA_SENT sent twice";
        else if (k == VFIO_CONFIG_STATE && ty != MS_QSEC_FULL)
            bad = "DEV_CONFIG_STATE outside a FULL section";
        else if (k == VFIO_CONFIG_LOAD_READY && ty != MS_QSEC_FULL)
            bad = "DEV_CONFIG_LOAD_READY outside a FULL section";
        else if (k == VFIO_CONFIG_LOAD_READY && s->load_ready)
            bad = "DEV_CONFIG_LOAD_READY sent twice";
        if (bad)
            return MS_FAIL(r, MS_ERR_VFIO, st->rec_off, "%s: %s", s->idstr,
                           bad);
        st->last_marker = m;
        ev->kind = MS_EV_VFIO_MARKER;
        ev->offset = st->rec_off;
        ev->length = 8;
        ms_vfio_info *v = &ev->u.vfio;
        v->marker = m;
        v->name = name;
        v->section_id = s->id;
        v->idstr = s->idstr;
        v->phase = vfio_phase(st);
        if (k == VFIO_INIT_DATA_SENT)
            s->init_sent = 1;
        if (k == VFIO_CONFIG_LOAD_READY)
            s->load_ready = 1;
        if (k == VFIO_SETUP_STATE)
            s->setup_seen = 1;
        if (k == VFIO_DATA_STATE) {
            st->vfio_part_data = 1;
            st->step = 1; /* its size follows; the event waits for it */
            st->pending = *ev;
            return MS_GO_ON;
        }
        if (k == VFIO_CONFIG_STATE) { /* PCI config VMState, undescribed */
            start_scan(st, 1);
            st->scan_why = "VFIO PCI config state is not described by the "
                           "JSON trailer";
        }
        if (k == VFIO_END_OF_STATE && ty == MS_QSEC_START && !s->setup_seen)
            return MS_FAIL(r, MS_ERR_VFIO, st->rec_off,
                           "%s: START section without DEV_SETUP_STATE",
                           s->idstr);
        return MS_NEXT_EVENT;
    }
    /* step 1: DATA_STATE's be64 size */
    if ((t = ms_rd_take_reserved(r, 8, &p)) <= 0)
        return t < 0 ? MS_NEXT_ERROR : MS_NEXT_INPUT;
    uint64_t n = ms_be64(p);
    if (n > r->opt.max_record_payload)
        return MS_FAIL(r, MS_ERR_LIMIT, ms_rd_pos(r) - 8,
                       "%s: DEV_DATA_STATE of %llu bytes exceeds "
                       "max_record_payload (%llu)",
                       s->idstr, (unsigned long long)n,
                       (unsigned long long)r->opt.max_record_payload);
    *ev = st->pending;
    ev->length = 16;
    ev->u.vfio.data_size = n;
    st->vfio_left = n;
    st->stage = QS_VFIO_DATA;
    st->step = 0;
    return MS_NEXT_EVENT;
}

static int read_vfio_data(ms_reader *r, ms_event *ev)
{
    q_state *st = QST(r);
    const uint8_t *p;
    if (st->vfio_left == 0) {
        st->stage = QS_VFIO;
        return MS_GO_ON;
    }
    size_t n = ms_rd_peek(r, st->vfio_left, &p);
    if (n == 0)
        return MS_NEXT_INPUT;
    ev->kind = MS_EV_DATA;
    ev->offset = ms_rd_pos(r);
    ev->length = n;
    ms_data_info *d = &ev->u.data;
    d->data = p;
    d->size = n;
    d->device = st->cur->id;
    d->phase = vfio_phase(st);
    d->image_offset = st->cur->device_bytes;
    d->stream_offset = ms_rd_pos(r);
    d->zero_copy = 1;
    st->cur->device_bytes += n;
    st->vfio_left -= n;
    ms_rd_skip(r, n);
    return MS_NEXT_EVENT;
}

/* ---- VMState fields (FULL sections described by the trailer) --------------- */

#define FIELD_TAKE_MAX (64 * 1024) /* larger fields are skipped, not kept */

static int read_vmstate(ms_reader *r, ms_event *ev)
{
    q_state *st = QST(r);
    const uint8_t *p;
    int t;
    vms_step step;
    switch (st->step) {
    case 0:
        if (vms_walk_next(&st->walk, &step) < 0)
            return MS_FAIL(r, MS_ERR_VMSTATE, ms_rd_pos(r), "%s: %s",
                           st->cur->idstr, st->walk.detail);
        if (step.kind == VMS_END) {
            st->stage = QS_FOOTER;
            st->step = 0;
            return MS_GO_ON;
        }
        if (step.kind == VMS_SUBSECTION_OR_END) {
            st->vms_level = step.type; /* the level's VMSD name */
            st->step = 2;
            return MS_GO_ON;
        }
        st->u64a = step.size;
        st->rec_off = ms_rd_pos(r);
        memset(&st->pending, 0, sizeof st->pending);
        st->pending.kind = MS_EV_FIELD;
        st->pending.offset = ms_rd_pos(r);
        st->pending.u.field.section_id = st->cur->id;
        st->pending.u.field.path = step.path;
        st->pending.u.field.type = step.type;
        st->step = step.size <= FIELD_TAKE_MAX ? 1 : 6;
        st->field_left = (size_t)step.size;
        return MS_GO_ON;
    case 1: /* a field kept whole */
        if ((t = ms_rd_take_reserved(r, (size_t)st->u64a, &p)) <= 0)
            return t < 0 ? MS_NEXT_ERROR : MS_NEXT_INPUT;
        st->step = 0;
        if (!r->opt.field_events)
            return MS_GO_ON;
        *ev = st->pending;
        ev->length = st->u64a;
        ev->u.field.data = p;
        ev->u.field.size = (size_t)st->u64a;
        return MS_NEXT_EVENT;
    case 6: { /* a large field: skipped, reported without its bytes */
        size_t n = ms_rd_peek(r, st->field_left, &p);
        ms_rd_skip(r, n);
        st->field_left -= n;
        if (st->field_left)
            return MS_NEXT_INPUT;
        st->step = 0;
        if (!r->opt.field_events)
            return MS_GO_ON;
        *ev = st->pending;
        ev->length = st->u64a;
        ev->u.field.size = (size_t)st->u64a;
        return MS_NEXT_EVENT;
    }
    case 2: { /* a subsection of this level, or the level's end */
        /* QEMU reads a subsection only when 0x05 is followed by a name
         * that starts with this level's VMSD name and is longer; otherwise
         * the bytes belong to what comes after the level.  So look at them
         * (take, then give back) before consuming anything. */
        st->rec_off = ms_rd_pos(r);
        if ((t = ms_rd_take_reserved(r, 2, &p)) <= 0)
            return t < 0 ? MS_NEXT_ERROR : MS_NEXT_INPUT;
        int maybe = p[0] == Q_SUBSECTION;
        st->u32b = p[1];
        ms_rd_untake(r);
        if (!maybe)
            goto not_here;
        st->step = 3;
    }
        /* fallthrough */
    case 3: {
        size_t lvl = strlen(st->vms_level);
        if ((t = ms_rd_take_reserved(r, 2 + (size_t)st->u32b, &p)) <= 0)
            return t < 0 ? MS_NEXT_ERROR : MS_NEXT_INPUT;
        if (st->u32b < lvl + 1 || memcmp(p + 2, st->vms_level, lvl) != 0) {
            ms_rd_untake(r);
            goto not_here;
        }
        memcpy(st->name, p + 2, st->u32b);
        st->name[st->u32b] = 0;
        st->step = 5;
    }
        /* fallthrough */
    case 5: {
        if ((t = ms_rd_take_reserved(r, 4, &p)) <= 0)
            return t < 0 ? MS_NEXT_ERROR : MS_NEXT_INPUT;
        uint32_t version = ms_be32(p);
        if (vms_walk_subsection(&st->walk, st->name, version) < 0)
            return MS_FAIL(r, MS_ERR_VMSTATE, st->rec_off, "%s: %s",
                           st->cur->idstr, st->walk.detail);
        st->step = 0;
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
    st->step = 0;
    return MS_GO_ON;
    return MS_FAIL(r, MS_ERR_USAGE, ms_rd_pos(r), "internal: vmstate step");
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
    st->step = 0;
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

static int read_after_eof(ms_reader *r)
{
    q_state *st = QST(r);
    const uint8_t *p;
    if (st->step == 0) {
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
        st->step = 1;
    }
    if (st->step == 1) {
        int t = ms_rd_take_reserved(r, 4, &p);
        if (t <= 0)
            return t < 0 ? MS_NEXT_ERROR : MS_NEXT_INPUT;
        st->vmdesc_len = ms_be32(p);
        if (st->vmdesc_len > r->opt.max_vmdesc_bytes)
            return MS_FAIL(r, MS_ERR_LIMIT, st->rec_off + 1,
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
        if (st->vmdesc_got < st->vmdesc_len)
            return MS_NEXT_INPUT;
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

static int q_next(ms_reader *r, ms_event *ev)
{
    for (;;) {
        int rc;
        switch (QST(r)->stage) {
        case QS_LIBVIRT: rc = read_libvirt(r); break;
        case QS_HEADER: rc = read_header(r, ev); break;
        case QS_TOP: rc = read_top(r, ev); break;
        case QS_CONFIG: rc = read_config(r, ev); break;
        case QS_COMMAND: rc = read_command(r, ev); break;
        case QS_SECTION_HEADER: rc = read_section_header(r, ev); break;
        case QS_RAM: rc = read_ram(r, ev); break;
        case QS_VFIO: rc = read_vfio(r, ev); break;
        case QS_VFIO_DATA: rc = read_vfio_data(r, ev); break;
        case QS_VMSTATE: rc = read_vmstate(r, ev); break;
        case QS_SCAN: rc = read_scan(r, ev); break;
        case QS_FOOTER: rc = read_footer(r, ev); break;
        case QS_AFTER_EOF: rc = read_after_eof(r); break;
        case QS_VMDESC: rc = read_vmdesc(r, ev); break;
        case QS_DONE:
            return ms_rd_expect_end(r, "the JSON trailer");
        default:
            return MS_FAIL(r, MS_ERR_USAGE, ms_rd_pos(r),
                           "internal: invalid decoder stage");
        }
        if (rc != MS_GO_ON)
            return r->err.code ? MS_NEXT_ERROR : rc;
    }
}

static int q_finish(ms_reader *r)
{
    q_state *st = QST(r);
    if (st->nest && st->stage == QS_TOP && r->stash_len == 0)
        return MS_FAIL(r, MS_ERR_TRUNCATED, r->offset,
                       "input ends inside the PACKAGED stream of the command "
                       "at %llu, which declares bytes up to %llu",
                       (unsigned long long)st->pkg_cmd[st->nest - 1],
                       (unsigned long long)st->pkg_end[st->nest - 1]);
    if (st->stage == QS_DONE ||
        (st->stage == QS_AFTER_EOF && st->step == 0 && r->stash_len == 0))
        return 0;
    if (st->stage == QS_TOP && r->stash_len == 0 && !st->seen_eof)
        return MS_FAIL(r, MS_ERR_MISSING_END, r->offset,
                       "input ends after %d records without the EOF record "
                       "(0x00)",
                       st->records);
    const char *where = "a record";
    switch (st->stage) {
    case QS_HEADER: where = "the stream header"; break;
    case QS_LIBVIRT: where = "the libvirt save image header"; break;
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

static void q_destroy(ms_reader *r)
{
    q_state *st = QST(r);
    if (!st)
        return;
    ms_free(ALLOC(r), st->secs);
    ms_u32map_free(ALLOC(r), &st->secmap);
    ms_free(ALLOC(r), st->blocks);
    ms_free(ALLOC(r), st->page_buf);
    ms_free(ALLOC(r), st->vmdesc_buf);
    if (st->zs_ready)
        inflateEnd(&st->zs);
    ms_free(ALLOC(r), st);
    r->framing = NULL;
}

static int q_init(ms_reader *r, int libvirt)
{
    q_state *st = ms_calloc(ALLOC(r), 1, sizeof *st);
    if (!st)
        return MS_FAIL(r, MS_ERR_NO_MEMORY, 0, "decoder state");
    r->framing = st;
    st->stage = libvirt ? QS_LIBVIRT : QS_HEADER;
    st->cur_block = -1;
    uint32_t ps = r->vmdesc ? vms_desc_page_size(r->vmdesc) : 0;
    /* x86 and most targets; the configuration's page bits override it */
    st->page_size = ps >= 512 && !(ps & (ps - 1)) ? ps : 4096;
    return 0;
}

int ms_qemu_main_init(ms_reader *r) { return q_init(r, 0); }
int ms_libvirt_init(ms_reader *r) { return q_init(r, 1); }

const ms_framing_ops ms_qemu_main_ops = {
    .format = MS_FORMAT_QEMU_MAIN,
    .next = q_next,
    .finish = q_finish,
    .destroy = q_destroy,
};

const ms_framing_ops ms_libvirt_ops = {
    .format = MS_FORMAT_LIBVIRT_SAVE,
    .next = q_next,
    .finish = q_finish,
    .destroy = q_destroy,
};
