/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* QEMU main stream: VFIO device sections (markers, device data and the
 * phase each byte belongs to).  Facts: spec/qemu-main.md.
 *
 * Stages read here, with their steps (the whole stream: qemu_main.c):
 *
 *   VFIO         VF_MARKER: be64 marker, checked against the section type
 *                  |-- DEV_DATA_STATE -> VF_DATA_SIZE (be64) -> VFIO_DATA
 *                  |-- DEV_CONFIG_STATE: MS_EV_VFIO_MARKER -> VFIO_CONFIG
 *                  |-- any other: MS_EV_VFIO_MARKER -> VF_MARKER
 *                  +-- after END_OF_STATE or DEV_INIT_DATA_SENT (after
 *                      DEV_CONFIG_LOAD_READY: if 0x7E follows)
 *                      -> FOOTER (qemu_section.c)
 *   VFIO_DATA    the device data, as views (MS_EV_DATA) -> VFIO, VF_MARKER
 *   VFIO_CONFIG  the PCI config state, steps VC_* (described below)
 *                  -> VFIO, VF_MARKER (END_OF_STATE follows), or SCAN
 *                  (qemu_section.c) when it cannot be decoded
 */
#include "qemu_impl.h"

/* Public (migstream.h): the markers' names live here, with their reader. */
const char *ms_vfio_marker_name(uint64_t m)
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

/* ---- VFIO --------------------------------------------------------------------- */

static ms_phase vfio_phase(q_state *st)
{
    if (st->cur_type == MS_QSEC_END)
        return MS_PHASE_FINAL;
    return st->cur->init_sent ? MS_PHASE_MIDDLE : MS_PHASE_INITIAL;
}

/* Marker `k` (without VFIO_MARKER_BASE) where it stands: NULL when QEMU
 * could have sent it there, else why not. */
static const char *marker_order_error(const q_state *st, uint64_t k)
{
    const q_section *s = st->cur;
    uint64_t last = st->last_marker - VFIO_MARKER_BASE;
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
    else if (last == VFIO_CONFIG_STATE && k != VFIO_END_OF_STATE)
        bad = "the PCI config state must be followed by END_OF_STATE";
    return bad;
}

/* Steps of QS_VFIO (st->step). */
enum vfio_step {
    VF_MARKER = 0,   /* be64 marker, or the footer after an ending one */
    VF_DATA_SIZE = 1 /* DEV_DATA_STATE's be64 size (then QS_VFIO_DATA) */
};

/* QS_VFIO: the markers of a VFIO section (VF_MARKER), and the size of
 * device data (VF_DATA_SIZE) before its bytes (QS_VFIO_DATA). */
int ms_q_read_vfio(ms_reader *r, ms_event *ev)
{
    q_state *st = QST(r);
    q_section *s = st->cur;
    const uint8_t *p;
    int t;
    uint64_t last = st->last_marker - VFIO_MARKER_BASE;
    if (st->step == VF_MARKER) {
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
            st->step = Q_STEP_FIRST;
            return MS_GO_ON;
        }
        st->rec_off = ms_rd_unit_offset(r);
        if ((t = ms_rd_take_reserved(r, 8, &p)) <= 0)
            return t < 0 ? MS_NEXT_ERROR : MS_NEXT_INPUT;
        uint64_t m = ms_be64(p);
        const char *name = ms_vfio_marker_name(m);
        if (!name)
            return MS_FAIL(r, MS_ERR_VFIO, st->rec_off,
                           "%s: unknown VFIO marker 0x%016llx", s->idstr,
                           (unsigned long long)m);
        if (last == VFIO_END_OF_STATE || last == VFIO_INIT_DATA_SENT)
            return MS_FAIL(r, MS_ERR_VFIO, st->rec_off,
                           "%s: %s after the payload ended", s->idstr, name);
        uint64_t k = m - VFIO_MARKER_BASE;
        ms_qemu_section_type ty = st->cur_type;
        const char *bad = marker_order_error(st, k);
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
            st->step = VF_DATA_SIZE; /* the event waits for the size */
            st->pending = *ev;
            return MS_GO_ON;
        }
        if (k == VFIO_CONFIG_STATE) { /* the PCI config VMState follows */
            st->stage = QS_VFIO_CONFIG;
            st->step = Q_STEP_FIRST; /* VC_PROBE */
        }
        if (k == VFIO_END_OF_STATE && ty == MS_QSEC_START && !s->setup_seen)
            return MS_FAIL(r, MS_ERR_VFIO, st->rec_off,
                           "%s: START section without DEV_SETUP_STATE",
                           s->idstr);
        return MS_NEXT_EVENT;
    }
    /* VF_DATA_SIZE */
    if ((t = ms_rd_take_reserved(r, 8, &p)) <= 0)
        return t < 0 ? MS_NEXT_ERROR : MS_NEXT_INPUT;
    uint64_t n = ms_be64(p);
    if (n > r->opt.max_record_payload)
        return MS_FAIL_LIMIT(r, MS_LIMIT_MAX_RECORD_PAYLOAD, ms_rd_pos(r) - 8,
                             "%s: DEV_DATA_STATE of %llu bytes exceeds "
                             "max_record_payload (%llu)",
                             s->idstr, (unsigned long long)n,
                             (unsigned long long)r->opt.max_record_payload);
    *ev = st->pending;
    ev->length = 16;
    ev->u.vfio.data_size = n;
    st->vfio_left = n;
    st->stage = QS_VFIO_DATA;
    st->step = VF_MARKER; /* where QS_VFIO resumes after the data */
    return MS_NEXT_EVENT;
}

int ms_q_read_vfio_data(ms_reader *r, ms_event *ev)
{
    q_state *st = QST(r);
    if (st->vfio_left == 0) {
        st->stage = QS_VFIO;
        return MS_GO_ON;
    }
    ms_data_info *d;
    size_t n = ms_rd_view(r, ev, st->vfio_left, &d);
    if (n == 0)
        return MS_NEXT_INPUT;
    d->device = st->cur->id;
    d->phase = vfio_phase(st);
    d->image_offset = st->cur->device_bytes;
    st->cur->device_bytes += n;
    st->vfio_left -= n;
    return MS_NEXT_EVENT;
}

/* ---- PCI config state (after DEV_CONFIG_STATE) ------------------------------
 * vfio_pci_save_config writes the VMState "VFIOPCIDevice" v1 (QEMU 5.2 ..
 * 10.x), then END_OF_STATE follows:
 *
 *   VMSTATE_PCI_DEVICE  "PCIDevice" v2: be32 version_id (2),
 *                       config: 256 bytes (conventional) | 4096 (express),
 *                       irq_state: 4 x be32, each 0 or 1
 *   VMSTATE_MSIX_TEST   with MSI-X only: the vector table (16 bytes per
 *                       vector), then the PBA (1 bit per vector, whole bytes)
 *   [QEMU >= 8.2] subsection "VFIOPCIDevice/VFIODisplay" (ramfb migration)
 *
 * Neither the config size nor the vector count is written.  The vector
 * count is in the MSI-X capability of the config bytes.  The size follows
 * pci_is_express(), which the bytes do not say reliably (on q35, a device
 * behind a PCI bridge hides its PCIe capability yet keeps 4096 bytes), so
 * the decoder looks where END_OF_STATE falls:
 *
 *   VC_PROBE      (looked at and given back) version_id and the config
 *                 header, then the 256 config bytes: plausible?  MSI-X
 *                 vectors
 *   VC_FITS_PCI   END_OF_STATE right after the 256-byte layout?  (looked at)
 *   VC_FITS_PCIE  END_OF_STATE right after the 4096-byte layout? (looked at)
 *   VC_VERSION -> VC_CONFIG -> VC_IRQ -> VC_MSIX   the fields, consumed one
 *                 by one (MS_EV_FIELD each with field_events, unless the
 *                 JSON trailer describes the section)
 *   VC_FIELDS_END back to the markers (QS_VFIO): END_OF_STATE
 *
 * A payload that is implausible, fits neither layout or carries the
 * subsection is walked to its footer (MS_EV_UNDECODED says why). */

#define PCI_CONFIG_SPACE 256u
#define PCIE_CONFIG_SPACE 4096u
#define PCI_IRQ_STATE 16u /* 4 pins x be32 */
#define PCI_DEVICE_VMSTATE_VERSION 2u
#define PCI_CAP_ID_MSIX 0x11
#define MSIX_ENTRY_SIZE 16u

#define PCI_CONFIG_HEADER 16u /* through the header type byte */

/* Steps of QS_VFIO_CONFIG (st->step); the fields' steps are consecutive,
 * in the order of the fields[] table of ms_q_read_vfio_config. */
enum vfio_config_step {
    VC_PROBE = 0,     /* version_id, header, 256 config bytes: looked at */
    VC_FITS_PCI = 1,  /* END_OF_STATE after the 256-byte layout? (looked at) */
    VC_FITS_PCIE = 2, /* END_OF_STATE after the 4096-byte layout? (looked at) */
    VC_VERSION = 3,   /* be32 PCIDevice version_id */
    VC_CONFIG = 4,    /* the config space, 256 or 4096 bytes */
    VC_IRQ = 5,       /* irq_state: 4 x be32 */
    VC_MSIX = 6,      /* MSI-X vector table and PBA, when there are vectors */
    VC_FIELDS_END = 7 /* all read: END_OF_STATE follows (QS_VFIO) */
};

/* VC_PROBE's first look, at version_id and the config header's first 16
 * bytes: NULL when they can start a PCI endpoint's config state. */
static const char *probe_header(const uint8_t *p)
{
    const uint8_t *cfg = p + 4;
    uint32_t version = ms_be32(p);
    if (version < 1 || version > PCI_DEVICE_VMSTATE_VERSION)
        return "VFIO PCI config state: PCIDevice version_id is not 1 or 2";
    if ((cfg[0x0e] & 0x7f) != 0)
        return "VFIO PCI config state: header type is not 0 (an endpoint)";
    if (ms_le16(cfg) == 0xffff || ms_le16(cfg) == 0)
        return "VFIO PCI config state: no vendor id";
    return NULL;
}

/* VC_PROBE's second look, at the 256 config bytes: NULL when their
 * capability list is sound (st->msix_bytes set from MSI-X), else why not. */
static const char *probe_config(q_state *st, const uint8_t *p)
{
    const uint8_t *cfg = p + 4;
    st->msix_bytes = 0;
    if (!(cfg[0x06] & 0x10)) /* status: no capability list */
        return NULL;
    uint8_t at = cfg[0x34] & 0xfc;
    for (int n = 0; at; n++) {
        if (at < 0x40 || n >= 48)
            return "VFIO PCI config state: malformed capability list";
        if (cfg[at] == PCI_CAP_ID_MSIX) {
            uint32_t vectors = (ms_le16(cfg + at + 2) & 0x7ffu) + 1;
            st->msix_bytes = vectors * MSIX_ENTRY_SIZE + (vectors + 7) / 8;
            return NULL;
        }
        at = cfg[at + 1] & 0xfc;
    }
    return NULL;
}

/* VC_FITS_PCI, VC_FITS_PCIE: does the layout with `space` config bytes end
 * where `p` (the layout and 8 more bytes) has END_OF_STATE?  1 yes, 0 no, 2 a
 * subsection starts there, -1 error (an irq state QEMU rejects). */
static int layout_fits(ms_reader *r, const uint8_t *p, uint32_t space)
{
    q_state *st = QST(r);
    size_t end = 4 + space + PCI_IRQ_STATE + st->msix_bytes;
    static const char sub[] = "VFIOPCIDevice/";
    if (p[end] == Q_SUBSECTION && p[end + 1] > sizeof sub - 1 &&
        memcmp(p + end + 2, sub, 6) == 0)
        return 2;
    if (ms_be64(p + end) != VFIO_MARKER_BASE + VFIO_END_OF_STATE)
        return 0;
    for (uint32_t pin = 0; pin < 4; pin++) {
        uint32_t v = ms_be32(p + 4 + space + 4 * pin);
        if (v > 1) {
            MS_FAIL(r, MS_ERR_VFIO, st->rec_off + 4 + space + 4 * pin,
                    "%s: PCI irq state of pin %c is %u; QEMU loads only 0 "
                    "or 1",
                    st->cur->idstr, 'A' + pin, v);
            return -1;
        }
    }
    return 1;
}

static int config_walk_blind(q_state *st, const char *why)
{
    ms_q_start_scan(st, 1);
    st->scan_why = why;
    return MS_GO_ON;
}

/* VC_PROBE .. VC_FITS_PCIE: choose the layout, consuming nothing. */
static int choose_layout(ms_reader *r)
{
    q_state *st = QST(r);
    const uint8_t *p;
    if (st->step == VC_PROBE) {
        /* QEMU's JSON trailer describes this FULL section as one opaque
         * "data" buffer (VFIO saves it without a VMSD); field events of
         * another shape would contradict the description a consumer
         * follows, so with such a description the fields are checked but
         * not reported. */
        st->cfg_fields =
            r->opt.field_events &&
            !(r->vmdesc &&
              vms_desc_find(r->vmdesc, st->cur->idstr, st->cur->instance_id));
        /* a short first look, so that bytes which cannot be a config
         * state are walked without waiting for 260 bytes */
        st->rec_off = ms_rd_unit_offset(r);
        MS_TAKE_OR_RETURN(r, 4 + PCI_CONFIG_HEADER, &p);
        const char *why = probe_header(p);
        ms_rd_untake(r);
        if (why)
            return config_walk_blind(st, why);
        MS_TAKE_OR_RETURN(r, 4 + PCI_CONFIG_SPACE, &p);
        why = probe_config(st, p);
        ms_rd_untake(r);
        if (why)
            return config_walk_blind(st, why);
        st->step = VC_FITS_PCI;
    }
    uint32_t space =
        st->step == VC_FITS_PCI ? PCI_CONFIG_SPACE : PCIE_CONFIG_SPACE;
    size_t len = 4 + space + PCI_IRQ_STATE + st->msix_bytes + 8;
    MS_TAKE_OR_RETURN(r, len, &p);
    int fits = layout_fits(r, p, space);
    ms_rd_untake(r);
    if (fits < 0)
        return MS_NEXT_ERROR;
    if (fits == 2)
        return config_walk_blind(st, "VFIO PCI config state with a "
                                     "VFIOPCIDevice subsection (ramfb "
                                     "display), which is not decoded");
    if (fits == 1) {
        st->cfg_space = space;
        st->step = VC_VERSION;
        return MS_GO_ON;
    }
    if (st->step == VC_FITS_PCI) {
        st->step = VC_FITS_PCIE;
        return MS_GO_ON;
    }
    return config_walk_blind(st, "VFIO PCI config state: END_OF_STATE "
                                 "follows neither the 256- nor the "
                                 "4096-byte config layout");
}

int ms_q_read_vfio_config(ms_reader *r, ms_event *ev)
{
    static const struct {
        const char *path, *type;
    } fields[] = {{"pdev.version_id", "int32 le"},
                  {"pdev.config", "pci config"},
                  {"pdev.irq_state", "pci irq state"},
                  {"pdev.msix", "msix state"}};
    q_state *st = QST(r);
    const uint8_t *p;
    if (st->step < VC_VERSION)
        return choose_layout(r);
    /* VC_VERSION .. VC_MSIX: version_id, config, irq_state, MSI-X */
    uint32_t i = (uint32_t)st->step - VC_VERSION;
    uint32_t sizes[] = {4, st->cfg_space, PCI_IRQ_STATE, st->msix_bytes};
    if (i >= VC_FIELDS_END - VC_VERSION || sizes[i] == 0) {
        st->stage = QS_VFIO; /* END_OF_STATE is next */
        st->step = VF_MARKER;
        return MS_GO_ON;
    }
    uint64_t off = ms_rd_unit_offset(r);
    MS_TAKE_OR_RETURN(r, sizes[i], &p);
    st->step++; /* the next field, or VC_FIELDS_END */
    if (!st->cfg_fields)
        return MS_GO_ON;
    ev->kind = MS_EV_FIELD;
    ev->offset = off;
    ev->length = sizes[i];
    ev->u.field.section_id = st->cur->id;
    ev->u.field.path = fields[i].path;
    ev->u.field.type = fields[i].type;
    ev->u.field.data = p;
    ev->u.field.size = sizes[i];
    return MS_NEXT_EVENT;
}
