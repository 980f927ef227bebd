/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* QEMU main stream: VFIO device sections (markers, device data and the
 * phase each byte belongs to).  Facts: spec/qemu-main.md. */
#include "qemu_impl.h"

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

/* ---- VFIO --------------------------------------------------------------------- */

static ms_phase vfio_phase(q_state *st)
{
    if (st->cur_type == MS_QSEC_END)
        return MS_PHASE_FINAL;
    return st->cur->init_sent ? MS_PHASE_MIDDLE : MS_PHASE_INITIAL;
}

int ms_q_read_vfio(ms_reader *r, ms_event *ev)
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
            ms_q_start_scan(st, 1);
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

int ms_q_read_vfio_data(ms_reader *r, ms_event *ev)
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
