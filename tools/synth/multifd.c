/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* --multifd: the channels (multifd.h has the layout): init packets, RAM
 * packets filled page by page, SYNC packets, VFIO device-state buffers,
 * and the mode's setup. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "multifd.h"

static uint32_t mfd_next_channel(mfd_synth *m)
{
    return shuffled_next(&m->rng, m->order, &m->order_left, m->nch);
}

void mfd_expect_page(mfd_synth *m, size_t block, uint64_t off,
                     const uint8_t *data)
{
    static const uint8_t zero[SYNTH_PAGE];
    mfd_block *b = &m->blocks[block];
    if (b->fd < 0 || m->q.expect_err)
        return;
    const uint8_t *p = data ? data : zero;
    size_t n = SYNTH_PAGE;
    while (n) {
        ssize_t k = pwrite(b->fd, p, n, (off_t)(off + SYNTH_PAGE - n));
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            m->q.expect_err = errno ? errno : EIO;
            io_error(m->wl.expect_dir, m->q.expect_err);
            return;
        }
        p += k;
        n -= (size_t)k;
    }
}

/* Compress n pages with the channel's stream; the packet's payload ends
 * with a sync flush.  Returns its length, or 0 after an error. */
static size_t mfd_compress(mfd_synth *m, mfd_chan *c, const uint8_t *pages,
                           uint32_t n)
{
    size_t len = 0;
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *pg = pages + (size_t)i * SYNTH_PAGE;
        int last = i + 1 == n;
        if (m->wl.multifd_comp == MULTIFD_COMP_ZLIB) {
            c->zs.next_in = (Bytef *)(uintptr_t)pg;
            c->zs.avail_in = SYNTH_PAGE;
            do {
                c->zs.next_out = m->zbuf + len;
                c->zs.avail_out = (uInt)(m->zcap - len);
                int rc = deflate(&c->zs, last ? Z_SYNC_FLUSH : Z_NO_FLUSH);
                if (rc != Z_OK && rc != Z_BUF_ERROR)
                    return 0;
                len = m->zcap - c->zs.avail_out;
            } while (c->zs.avail_in || (last && c->zs.avail_out == 0));
        } else {
            ZSTD_inBuffer in = {pg, SYNTH_PAGE, 0};
            size_t left;
            do {
                ZSTD_outBuffer out = {m->zbuf, m->zcap, len};
                left = ZSTD_compressStream2(
                    c->zc, &out, &in, last ? ZSTD_e_flush : ZSTD_e_continue);
                if (ZSTD_isError(left))
                    return 0;
                len = out.pos;
            } while (in.pos < in.size || (last && left));
        }
    }
    return len;
}

static void mfd_device_buffer(mfd_synth *m);

/* Device buffers due after final-pass RAM packet k of final_packets:
 * spread evenly over the pass, the rest after it. */
static void mfd_devices_due(mfd_synth *m)
{
    uint64_t due = m->final_packets
                       ? m->dev_total / (m->final_packets + 1) * m->final_sent +
                             m->dev_total % (m->final_packets + 1) *
                                 m->final_sent / (m->final_packets + 1)
                       : 0;
    while (m->dev_sent < due && m->dev_sent < m->dev_total && !m->failed)
        mfd_device_buffer(m);
}

/* Send the RAM packet being filled, if it has pages. */
static void mfd_flush(mfd_synth *m)
{
    if (m->nnorm + m->nzero == 0)
        return;
    mfd_chan *c = &m->ch[mfd_next_channel(m)];
    size_t plen = (size_t)m->nnorm * SYNTH_PAGE;
    const uint8_t *payload = m->pages;
    /* QEMU >= 9 flags every packet with pages (zero pages only, too)
     * with the method; the receiver checks it */
    uint32_t flags = (uint32_t)m->wl.multifd_comp;
    if (m->wl.multifd_comp && m->nnorm) {
        plen = mfd_compress(m, c, m->pages, m->nnorm);
        if (plen == 0) {
            fprintf(stderr, PROG ": internal: %s failed\n",
                    m->wl.multifd_comp == MULTIFD_COMP_ZLIB ? "deflate"
                                                            : "zstd");
            m->failed = 1;
        }
        payload = m->zbuf;
    }
    uint8_t *h = m->dbuf; /* free between device buffers */
    enc_mfd_ram r = {.flags = flags,
                     .pages_alloc = MFD_SLOTS,
                     .normal = m->nnorm,
                     .zero = m->nzero,
                     .payload_len = (uint32_t)plen,
                     .packet_num = m->packet_num++,
                     .block = m->blocks[m->cur].name,
                     .normal_off = m->norm_off,
                     .zero_off = m->zero_off};
    enc_bytes(&c->out, h, enc_mfd_ram_header(h, MFD_SLOTS, &r));
    enc_bytes(&c->out, payload, plen);
    m->nnorm = m->nzero = 0;
    if (m->final) {
        m->final_sent++;
        mfd_devices_due(m);
    }
}

/* A page (data NULL: a zero page) into the packet being filled. */
void mfd_page(mfd_synth *m, size_t block, uint64_t off, const uint8_t *data)
{
    if (m->cur != block || m->nnorm + m->nzero == MFD_SLOTS)
        mfd_flush(m);
    m->cur = block;
    if (data) {
        memcpy(m->pages + (size_t)m->nnorm * SYNTH_PAGE, data, SYNTH_PAGE);
        m->norm_off[m->nnorm++] = off;
    } else {
        m->zero_off[m->nzero++] = off;
    }
    mfd_expect_page(m, block, off, data);
}

/* A sync point: pending pages, then a SYNC packet on every channel.
 * QEMU 9.0 and 9.1 fill its RAM part (pages_alloc, no pages); from 9.2
 * on it is header only: pages_alloc 0 too. */
void mfd_sync(mfd_synth *m)
{
    mfd_flush(m);
    uint8_t *h = m->dbuf;
    for (uint32_t k = 0; k < m->nch; k++) {
        enc_mfd_ram r = {.flags = MULTIFD_FLAG_SYNC,
                         .pages_alloc =
                             m->wl.qemu_version >= 902 ? 0 : MFD_SLOTS,
                         .packet_num = m->packet_num++};
        enc_bytes(&m->ch[k].out, h, enc_mfd_ram_header(h, MFD_SLOTS, &r));
    }
}

/* The next buffer of a device picked at random among those not done. */
static void mfd_device_buffer(mfd_synth *m)
{
    uint32_t nd = m->wl.devices, left = 0, pick;
    for (uint32_t d = 0; d < nd; d++)
        left += m->dev_idx[d] <= m->dev_ndata[d];
    if (left == 0)
        return;
    pick = (uint32_t)rng_below(&m->rng, left);
    uint32_t d = 0;
    for (;; d++)
        if (m->dev_idx[d] <= m->dev_ndata[d] && pick-- == 0)
            break;
    qemu_dev *dev = &m->q.devs[d];
    uint8_t *p = m->dbuf + MULTIFD_DEV_HDR + VFIO_BUFFER_HDR;
    uint64_t idx = m->dev_idx[d]++;
    int config = idx == m->dev_ndata[d];
    size_t n;
    if (!config) {
        n = gen_next(&dev->gen[MS_PHASE_FINAL], p, m->q.chunk_max);
        expect_append(&m->q, d, MS_PHASE_FINAL, p, n, 0);
    } else {
        /* serialized as in the main stream: DEV_CONFIG_STATE, the config
         * (a stand-in for the PCI config VMState), END_OF_STATE */
        enc_vfio_store_marker(p, VFIO_CONFIG_STATE);
        rng_bytes(&dev->gen[0].rng, p + VFIO_MARKER_SIZE, VFIO_CONFIG_BYTES);
        enc_vfio_store_marker(p + VFIO_MARKER_SIZE + VFIO_CONFIG_BYTES,
                              VFIO_END_OF_STATE);
        n = 2 * VFIO_MARKER_SIZE + VFIO_CONFIG_BYTES;
        expect_append(&m->q, d, 0, p, n, 0);
    }
    uint8_t *h = m->dbuf;
    size_t hlen =
        enc_mfd_device_header(h, dev->idstr, 0, (uint32_t)idx, config, n);
    enc_bytes(&m->ch[mfd_next_channel(m)].out, h, hlen + n);
    m->dev_sent++;
}

int mfd_add_block(mfd_synth *m, const char *name, uint64_t len)
{
    if (grow_array((void **)&m->blocks, &m->blockcap, m->nblocks + 1,
                   sizeof *m->blocks) < 0) {
        fprintf(stderr, PROG ": out of memory\n");
        return -1;
    }
    mfd_block *b = &m->blocks[m->nblocks++];
    snprintf(b->name, sizeof b->name, "%s", name);
    b->len = len;
    b->fd = -1;
    return 0;
}

/* --expect-dir: DIR/ram (one line per block: K USED_LENGTH NAME) and the
 * sparse files DIR/ram-K.bin the pages are written into. */
static int mfd_expect_ram(mfd_synth *m)
{
    const char *dir = m->wl.expect_dir;
    if (!dir)
        return TOOL_OK;
    ram_desc *desc = calloc(m->nblocks ? m->nblocks : 1, sizeof *desc);
    if (!desc) {
        fprintf(stderr, PROG ": out of memory\n");
        return TOOL_USAGE;
    }
    for (size_t k = 0; k < m->nblocks; k++)
        desc[k] = (ram_desc){m->blocks[k].name, m->blocks[k].len};
    int status = expect_ram_list(dir, desc, m->nblocks);
    free(desc);
    for (size_t k = 0; status == TOOL_OK && k < m->nblocks; k++)
        status = expect_ram_image(dir, k, m->blocks[k].len, &m->blocks[k].fd);
    if (status != TOOL_OK)
        return status;
    /* the config buffers' files (write_expect_files makes the others) */
    for (uint32_t d = 0; d < m->wl.devices; d++)
        expect_append(&m->q, d, 0, NULL, 0, 1);
    return m->q.expect_err ? TOOL_USAGE : TOOL_OK;
}

void mfd_final_pass_begin(mfd_synth *m, uint64_t packets)
{
    m->final = 1;
    m->final_packets = packets;
    m->final_sent = 0;
}

void mfd_final_pass_end(mfd_synth *m)
{
    mfd_flush(m);
    while (m->dev_sent < m->dev_total && !m->failed)
        mfd_device_buffer(m);
    m->final = 0;
}

static int mfd_open_channels(mfd_synth *m)
{
    const workload *wl = &m->wl;
    if (mkdir(wl->out_dir, 0777) != 0 && errno != EEXIST)
        return io_error(wl->out_dir, errno);
    size_t len = strlen(wl->out_dir) + 32;
    for (uint32_t k = 0; k < m->nch; k++) {
        mfd_chan *c = &m->ch[k];
        if (!(c->path = malloc(len)))
            return io_error(wl->out_dir, ENOMEM);
        snprintf(c->path, len, "%s/channel-%u.mig", wl->out_dir, k);
        if (!(c->f = fopen(c->path, "wb")))
            return io_error(c->path, errno);
        enc_out_file(&c->out, c->f);
        if (wl->multifd_comp == MULTIFD_COMP_ZLIB) {
            /* QEMU's default multifd-zlib-level / multifd-zstd-level: 1 */
            if (deflateInit(&c->zs, 1) != Z_OK)
                return io_error(c->path, ENOMEM);
            c->zs_ready = 1;
        } else if (wl->multifd_comp == MULTIFD_COMP_ZSTD) {
            if (!(c->zc = ZSTD_createCStream()) ||
                ZSTD_isError(
                    ZSTD_CCtx_setParameter(c->zc, ZSTD_c_compressionLevel, 1)))
                return io_error(c->path, ENOMEM);
        }
        /* the init packet */
        uint8_t init[MULTIFD_INIT_SIZE];
        enc_mfd_init(init, wl->has_uuid ? wl->uuid : NULL, (uint8_t)k);
        enc_bytes(&c->out, init, sizeof init);
    }
    char *mp = malloc(len);
    if (!mp)
        return io_error(wl->out_dir, ENOMEM);
    snprintf(mp, len, "%s/main.mig", wl->out_dir);
    m->q.out_name = mp;
    if (!(m->main = fopen(mp, "wb")))
        return io_error(mp, errno);
    enc_out_file(&m->q.out, m->main);
    return TOOL_OK;
}

static int mfd_close(mfd_synth *m, int status)
{
    for (uint32_t k = 0; m->ch && k < m->nch; k++) {
        mfd_chan *c = &m->ch[k];
        int close_err = c->f ? close_output(c->f) : 0;
        int err = c->out.err ? c->out.err : close_err;
        if (err && status == TOOL_OK)
            status = io_error(c->path, err);
        if (c->zs_ready)
            deflateEnd(&c->zs);
        ZSTD_freeCStream(c->zc);
        free(c->path);
    }
    int close_err = m->main ? close_output(m->main) : 0;
    int err = m->q.out.err ? m->q.out.err : close_err;
    if (err && status == TOOL_OK)
        status = io_error(m->q.out_name, err);
    free((char *)m->q.out_name);
    for (size_t k = 0; k < m->nblocks; k++)
        if (m->blocks[k].fd >= 0 && close(m->blocks[k].fd) != 0 &&
            status == TOOL_OK)
            status = io_error(m->wl.expect_dir, errno);
    if (m->q.expect_err && status == TOOL_OK)
        status = TOOL_USAGE;
    free_base(&m->q.base);
    qemu_devs_free(&m->q);
    free(m->ch);
    free(m->order);
    free(m->blocks);
    free(m->pages);
    free(m->zbuf);
    free(m->dbuf);
    free(m->dev_idx);
    free(m->dev_ndata);
    return status;
}

/* The options, the PRNGs and the buffers; 0 or an exit code. */
static int mfd_setup(mfd_synth *m, const workload *opts)
{
    m->wl = *opts;
    m->wl.initial_size = 0; /* no precopy images: stop-copy only */
    m->wl.middle_count = 0;
    m->wl.no_precopy = 1;
    m->q.wl = &m->wl;
    m->q.chunk_max =
        opts->packet_size_set ? (size_t)opts->packet_size : QEMU_CHUNK_DEFAULT;
    m->nch = opts->multifd;
    m->rng = opts->seed * 0x2545F4914F6CDD1Dull + 0x6D66;
    rng_next(&m->rng);
    m->page_rng = opts->seed * 0x9E3779B97F4A7C15ull + 0x7061;
    rng_next(&m->page_rng);
    m->main_block = -1;
    m->end_block = -1;
    uint32_t nd = m->wl.devices;
    m->ch = calloc(m->nch, sizeof *m->ch);
    m->order = calloc(m->nch, sizeof *m->order);
    m->pages = malloc((size_t)MFD_SLOTS * SYNTH_PAGE);
    m->zcap = m->wl.multifd_comp == MULTIFD_COMP_ZSTD
                  ? ZSTD_compressBound((size_t)MFD_SLOTS * SYNTH_PAGE) + 4096
                  : compressBound((uLong)MFD_SLOTS * SYNTH_PAGE) + 4096;
    m->zbuf = malloc(m->zcap);
    size_t dbuf = m->q.chunk_max + MULTIFD_DEV_HDR + VFIO_BUFFER_HDR;
    m->dbuf = malloc(dbuf > MFD_HDR ? dbuf : MFD_HDR);
    m->q.devs = calloc(nd ? nd : 1, sizeof *m->q.devs);
    m->dev_idx = calloc(nd ? nd : 1, sizeof *m->dev_idx);
    m->dev_ndata = calloc(nd ? nd : 1, sizeof *m->dev_ndata);
    if (!m->ch || !m->order || !m->pages || !m->zbuf || !m->dbuf ||
        !m->q.devs || !m->dev_idx || !m->dev_ndata) {
        fprintf(stderr, PROG ": out of memory\n");
        return TOOL_USAGE;
    }
    return TOOL_OK;
}

/* The RAM blocks: BASE's, or the synthetic ones; 0 or an exit code. */
static int mfd_blocks(mfd_synth *m)
{
    if (m->wl.qemu_base) {
        m->q.base.path = m->wl.qemu_base;
        int status = read_base(&m->q);
        if (status == TOOL_OK)
            status = base_pass(m, base_scan);
        if (status == TOOL_OK &&
            m->wl.devices > UINT32_MAX - 1 - m->q.base.max_section_id) {
            fprintf(stderr, PROG ": too many devices for BASE's section "
                                 "ids\n");
            status = TOOL_USAGE;
        }
        return status;
    }
    ram_desc b[3];
    synthetic_blocks(m->wl.ram_size, b);
    m->q.base.max_section_id = RAM_SECTION_ID;
    for (size_t k = 0; k < 3; k++)
        if (mfd_add_block(m, b[k].name, b[k].len) < 0)
            return TOOL_USAGE;
    return TOOL_OK;
}

/* Each device's generators and its count of data buffers. */
static int mfd_devices(mfd_synth *m)
{
    for (uint32_t d = 0; d < m->wl.devices; d++) {
        if (qemu_dev_init(&m->q, d) < 0) {
            usage_error("device sizes too large");
            return TOOL_USAGE;
        }
        m->dev_ndata[d] =
            chunks_for(m->q.devs[d].gen[MS_PHASE_FINAL].total, m->q.chunk_max);
        if (m->dev_ndata[d] >= 0xffffffffull) {
            usage_error("too many device-state buffers: raise --packet-size");
            return TOOL_USAGE;
        }
        m->dev_total += m->dev_ndata[d] + 1;
    }
    return TOOL_OK;
}

/* Every channel written; then every byte of every device went out. */
static int mfd_write(mfd_synth *m)
{
    int status = TOOL_OK;
    if (m->wl.qemu_base) {
        status = base_pass(m, base_rewrite);
        base_copy(m, m->q.base.len); /* EOF and the JSON trailer */
    } else {
        write_synthetic_main(m);
    }
    if (m->failed && status == TOOL_OK)
        status = TOOL_USAGE;
    for (uint32_t d = 0; status == TOOL_OK && d < m->wl.devices; d++)
        if (m->dev_idx[d] != m->dev_ndata[d] + 1 ||
            gen_next(&m->q.devs[d].gen[MS_PHASE_FINAL], m->dbuf, 1) != 0) {
            fprintf(stderr, PROG ": internal: device %u not fully written\n",
                    d);
            status = TOOL_INVALID;
        }
    return status;
}

int multifd_mode(const workload *opts)
{
    mfd_synth *m = calloc(1, sizeof *m);
    if (!m) {
        fprintf(stderr, PROG ": out of memory\n");
        return TOOL_USAGE;
    }
    int status = mfd_setup(m, opts);
    if (status == TOOL_OK)
        status = mfd_blocks(m);
    if (status == TOOL_OK)
        status = mfd_devices(m);
    if (status == TOOL_OK)
        status = write_expect_files(&m->q);
    if (status == TOOL_OK)
        status = mfd_expect_ram(m);
    if (status == TOOL_OK)
        status = mfd_open_channels(m);
    if (status == TOOL_OK)
        status = mfd_write(m);
    status = mfd_close(m, status);
    free(m);
    return status;
}
