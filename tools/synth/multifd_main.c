/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* --multifd: the main channel (multifd.h has the layout), a minimal
 * QEMU 10 stream of its own or BASE with its pages moved to the
 * channels. */
#include <string.h>

#include "multifd.h"

/* ---- the main channel, without BASE ---- */

/* A ram section's header ("ram", version 4, on START). */
static void ram_section(qemu_synth *q, uint8_t type)
{
    enc_q_section(&q->out, type, RAM_SECTION_ID, "ram", 0, RAM_SECTION_VERSION);
}

/* MULTIFD_FLUSH, EOS and the footer. */
static void ram_section_end(qemu_synth *q)
{
    enc_be64(&q->out, MS_RAM_MULTIFD_FLUSH);
    enc_ram_end(&q->out, RAM_SECTION_ID);
}

/* Which pages pass p sends: all in the first, about one in eight after
 * (a stream of its own, so the last pass can be counted beforehand). */
static uint64_t pass_rng(const mfd_synth *m, uint64_t pass)
{
    uint64_t r = m->wl.seed * 0xD1B54A32D192ED03ull +
                 (pass + 1) * 0x9E3779B97F4A7C15ull + 0x5A17;
    rng_next(&r);
    return r;
}

static int pass_sends(uint64_t pass, uint64_t *rng)
{
    return pass == 0 || rng_below(rng, 8) == 0;
}

static uint64_t pass_packets(const mfd_synth *m, uint64_t pass)
{
    uint64_t r = pass_rng(m, pass), packets = 0;
    for (size_t k = 0; k < m->nblocks; k++) {
        uint64_t n = 0, pages = m->blocks[k].len / SYNTH_PAGE;
        for (uint64_t i = 0; i < pages; i++)
            n += (uint64_t)pass_sends(pass, &r);
        packets += n / MFD_SLOTS + (n % MFD_SLOTS != 0);
    }
    return packets;
}

static void ram_pass(mfd_synth *m, uint64_t pass)
{
    uint64_t r = pass_rng(m, pass);
    uint8_t page[SYNTH_PAGE];
    for (size_t k = 0; k < m->nblocks && !m->failed; k++) {
        uint64_t pages = m->blocks[k].len / SYNTH_PAGE;
        for (uint64_t i = 0; i < pages; i++) {
            if (!pass_sends(pass, &r))
                continue;
            /* zero pages: many at first, fewer once the guest ran */
            int zero = rng_below(&m->page_rng, 100) < (pass == 0 ? 45u : 15u);
            if (!zero)
                fill_state(&m->page_rng, page, SYNTH_PAGE);
            mfd_page(m, k, i * SYNTH_PAGE, zero ? NULL : page);
        }
    }
}

static void vfio_sections(mfd_synth *m, uint8_t type)
{
    for (uint32_t d = 0; d < m->wl.devices; d++)
        vfio_section(&m->q, type, d, 0);
}

void write_synthetic_main(mfd_synth *m)
{
    qemu_synth *q = &m->q;
    enc_q_header(&q->out);
    char machine[32];
    snprintf(machine, sizeof machine, SYNTH_MACHINE, m->wl.qemu_version / 100,
             m->wl.qemu_version % 100);
    enc_q_config(&q->out, machine);
    if (m->wl.has_uuid) {
        enc_q_subsection(&q->out, "configuration/uuid", 1);
        enc_bytes(&q->out, m->wl.uuid, 16);
    }
    uint64_t total = 0;
    for (size_t k = 0; k < m->nblocks; k++)
        total += m->blocks[k].len;
    ram_section(q, Q_START);
    enc_ram_mem_size(&q->out, total);
    for (size_t k = 0; k < m->nblocks; k++)
        enc_ram_block(&q->out, m->blocks[k].name, m->blocks[k].len);
    ram_section_end(q);
    mfd_sync(m); /* ram_save_setup's */
    vfio_sections(m, Q_START);
    uint64_t passes = m->wl.ram_passes;
    for (uint64_t p = 0; p + 1 < passes && !m->failed; p++) {
        ram_pass(m, p);
        mfd_sync(m);
        ram_section(q, Q_PART);
        ram_section_end(q);
    }
    /* the guest stops: the last pass and the devices' stop-copy state
     * (SWITCHOVER_START exists from QEMU 10.0 on) */
    if (m->wl.qemu_version >= 1000) {
        enc_q_command(&q->out, QCMD_SWITCHOVER_START, NULL, 0);
    }
    mfd_final_pass_begin(m, pass_packets(m, passes - 1));
    ram_pass(m, passes - 1);
    mfd_final_pass_end(m);
    mfd_sync(m);
    ram_section(q, Q_END);
    ram_section_end(q);
    vfio_sections(m, Q_END);
    vfio_sections(m, Q_FULL);
    enc_q_eof(&q->out);
}

/* ---- the main channel from BASE ---- */

/* Feed BASE through a reader; fn sees every event. */
int base_pass(mfd_synth *m, int (*fn)(mfd_synth *, const ms_event *))
{
    qemu_base *b = &m->q.base;
    ms_reader *r = base_reader(b);
    if (!r)
        return TOOL_USAGE;
    int status = TOOL_OK;
    ms_event ev;
    int rc = ms_reader_input(r, b->bytes, b->len) < 0 ? MS_NEXT_ERROR
                                                      : MS_NEXT_EVENT;
    while (rc == MS_NEXT_EVENT && status == TOOL_OK && !m->failed)
        if ((rc = ms_reader_next(r, &ev)) == MS_NEXT_EVENT)
            status = fn(m, &ev);
    if (status == TOOL_OK && !m->failed &&
        (rc == MS_NEXT_ERROR || ms_reader_finish(r) < 0)) {
        tool_print_problem(stderr, b->path, ms_reader_error(r));
        status = TOOL_INVALID;
    }
    ms_reader_free(r);
    return m->failed && status == TOOL_OK ? TOOL_USAGE : status;
}

static int block_index(const mfd_synth *m, const char *name)
{
    for (size_t k = 0; k < m->nblocks; k++)
        if (strcmp(m->blocks[k].name, name) == 0)
            return (int)k;
    return -1;
}

/* First pass: the block list, the pages of the END section (to spread the
 * device buffers over them), and records the mode cannot move. */
int base_scan(mfd_synth *m, const ms_event *ev)
{
    switch (ev->kind) {
    case MS_EV_SECTION:
        m->in_ram = strcmp(ev->u.section.idstr, "ram") == 0;
        m->ram_type = ev->u.section.type;
        break;
    case MS_EV_SECTION_FOOTER:
        m->in_ram = 0;
        break;
    case MS_EV_RAM_BLOCK:
        if (block_index(m, ev->u.ram.block) < 0 &&
            mfd_add_block(m, ev->u.ram.block, ev->u.ram.used_length) < 0)
            return TOOL_USAGE;
        break;
    case MS_EV_RAM_MARKER:
        if (ev->u.ram.record == MS_RAM_MULTIFD_FLUSH)
            m->base_flush = 1;
        break;
    case MS_EV_RAM_PAGE:
        if (ev->u.ram.record != MS_RAM_PAGE && ev->u.ram.record != MS_RAM_ZERO)
            return base_problem(&m->q.base, ev->offset,
                                MS_ERR_FORMAT_UNSUPPORTED,
                                "--multifd moves PAGE records to the "
                                "channels; BASE has XBZRLE or compressed "
                                "pages");
        if (ev->u.ram.page_size != SYNTH_PAGE)
            return base_problem(&m->q.base, ev->offset,
                                MS_ERR_FORMAT_UNSUPPORTED,
                                "--multifd writes 4 KiB pages; BASE's page "
                                "size differs");
        if (m->in_ram && m->ram_type == MS_QSEC_END &&
            ev->u.ram.record == MS_RAM_PAGE) {
            int k = block_index(m, ev->u.ram.block);
            if (k != m->end_block || m->end_fill == MFD_SLOTS) {
                m->end_packets++;
                m->end_fill = 0;
            }
            m->end_block = k;
            m->end_fill++;
        }
        break;
    default:
        break;
    }
    return TOOL_OK;
}

void base_copy(mfd_synth *m, uint64_t to)
{
    qcopy(&m->q, &m->pos, to);
}

/* Second pass: copy BASE, pages to the channels, ZERO records renamed,
 * sync points, the VFIO sections inserted. */
int base_rewrite(mfd_synth *m, const ms_event *ev)
{
    qemu_synth *q = &m->q;
    switch (ev->kind) {
    case MS_EV_SECTION:
        m->in_ram = strcmp(ev->u.section.idstr, "ram") == 0;
        m->ram_type = ev->u.section.type;
        if (m->in_ram && m->ram_type == MS_QSEC_END)
            mfd_final_pass_begin(m, m->end_packets);
        break;
    case MS_EV_RAM_PAGE: {
        int k = block_index(m, ev->u.ram.block);
        if (k < 0)
            return base_problem(&q->base, ev->offset, MS_ERR_RAM,
                                "page for a block not in the block list");
        base_copy(m, ev->offset);
        m->pos = ev->offset + ev->length; /* the record is rewritten */
        if (ev->u.ram.record == MS_RAM_PAGE) {
            mfd_page(m, (size_t)k, ev->u.ram.offset, ev->u.ram.data);
            break;
        }
        /* ZERO stays here; CONTINUE only where it still holds */
        int cont = m->main_block == k;
        enc_ram_zero(&q->out, ev->u.ram.offset,
                     cont ? NULL : m->blocks[k].name);
        m->main_block = k;
        mfd_expect_page(m, (size_t)k, ev->u.ram.offset, NULL);
        break;
    }
    case MS_EV_RAM_MARKER:
        /* a sync point; the END section's EOS is one in any case (the
         * device buffers must all be out before it) */
        if (ev->u.ram.record ==
                (m->base_flush ? MS_RAM_MULTIFD_FLUSH : MS_RAM_EOS) ||
            (m->final && ev->u.ram.record == MS_RAM_EOS)) {
            if (m->final)
                mfd_final_pass_end(m);
            mfd_sync(m);
        }
        break;
    case MS_EV_SECTION_FOOTER:
        if (m->in_ram &&
            (m->ram_type == MS_QSEC_START || m->ram_type == MS_QSEC_END)) {
            base_copy(m, ev->offset + Q_FOOTER_SIZE);
            vfio_sections(m, m->ram_type == MS_QSEC_START ? Q_START : Q_END);
        }
        m->in_ram = 0;
        break;
    case MS_EV_QEMU_EOF:
        base_copy(m, ev->offset);
        vfio_sections(m, Q_FULL);
        break;
    default:
        break;
    }
    return TOOL_OK;
}

/* ---- setup and the run ---- */
