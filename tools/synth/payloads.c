/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* VFIO driver payloads (spec/payloads.md) made as they are written: one
 * generator per device and phase (--kind), and --raw, one device's bytes
 * alone as read from its migration data fd. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "synth.h"

/* mlx5 SW-header records (vfio-device-streams.md section 2) */
#define MLX5_HEADER 16
#define MLX5_OPTIONAL 1u
#define MLX5_TAG_FW_DATA 0u
#define MLX5_TAG_STOP_COPY_SIZE 1u

size_t gen_next(dev_gen *g, uint8_t *out, size_t cap)
{
    size_t n = 0;
    while (g->segs && n < cap && g->reps) {
        const gen_seg *sg = &g->segs[g->seg_i];
        if (g->seg_pos < sg->len) {
            size_t k = sg->len - (size_t)g->seg_pos;
            if (k > cap - n)
                k = cap - n;
            memcpy(out + n, g->own + sg->off + g->seg_pos, k);
            g->seg_pos += k;
            n += k;
        } else if (g->seg_pos - sg->len < sg->fill) {
            uint64_t left = sg->fill - (g->seg_pos - sg->len);
            size_t k = (size_t)(left < cap - n ? left : cap - n);
            fill_state(&g->rng, out + n, k);
            g->seg_pos += k;
            n += k;
        } else {
            g->seg_pos = 0;
            if (++g->seg_i == g->nsegs) {
                g->seg_i = 0;
                g->reps--;
            }
        }
    }
    while (!g->segs && n < cap) {
        if (g->hdr_pos < g->hdr_len) {
            size_t k = g->hdr_len - g->hdr_pos;
            if (k > cap - n)
                k = cap - n;
            memcpy(out + n, g->hdr + g->hdr_pos, k);
            g->hdr_pos += k;
            n += k;
        } else if (g->payload_left) {
            size_t k =
                (size_t)(g->payload_left < cap - n ? g->payload_left : cap - n);
            fill_state(&g->rng, out + n, k);
            g->payload_left -= k;
            n += k;
        } else if (g->stop_copy_pending) {
            g->stop_copy_pending = 0;
            enc_store_le(g->hdr, 8, 8);
            enc_store_le(g->hdr + 8, MLX5_OPTIONAL, 4);
            enc_store_le(g->hdr + 12, MLX5_TAG_STOP_COPY_SIZE, 4);
            enc_store_le(g->hdr + 16, g->stop_copy_size, 8);
            g->hdr_len = MLX5_HEADER + 8;
            g->hdr_pos = 0;
        } else if (g->records_left) {
            g->records_left--;
            g->payload_left = g->record_size;
            if (g->mlx5) {
                enc_store_le(g->hdr, g->record_size, 8);
                enc_store_le(g->hdr + 8, 0,
                             4); /* FW_DATA is always mandatory */
                enc_store_le(g->hdr + 12, MLX5_TAG_FW_DATA, 4);
                g->hdr_len = MLX5_HEADER;
                g->hdr_pos = 0;
            }
        } else {
            break;
        }
    }
    return n;
}

/* a + b and a * b without wrapping; -1 when they would. */
static int add_u64(uint64_t *a, uint64_t b)
{
    if (b > UINT64_MAX - *a)
        return -1;
    *a += b;
    return 0;
}

/* ---- the other kinds' payloads (spec/payloads.md) ---- */

/* Append fixed bytes (then fill bytes) to a generator's template. */
static int gen_bytes(dev_gen *g, const void *p, size_t n)
{
    if (grow_array((void **)&g->own, &g->owncap, g->ownlen + n, 1) < 0)
        return -1;
    if (n) /* a zero-length append only opens a segment (gen_fill) */
        memcpy(g->own + g->ownlen, p, n);
    if (g->nsegs && g->segs[g->nsegs - 1].fill == 0 &&
        g->segs[g->nsegs - 1].off + g->segs[g->nsegs - 1].len == g->ownlen) {
        g->segs[g->nsegs - 1].len += n;
    } else {
        if (grow_array((void **)&g->segs, &g->segcap, g->nsegs + 1,
                       sizeof *g->segs) < 0)
            return -1;
        g->segs[g->nsegs++] = (gen_seg){.off = g->ownlen, .len = n};
    }
    g->ownlen += n;
    g->total += n;
    g->reps = 1;
    return 0;
}

static int gen_fill(dev_gen *g, uint64_t n)
{
    if (n == 0)
        return 0;
    if (!g->nsegs && gen_bytes(g, "", 0) < 0)
        return -1;
    g->segs[g->nsegs - 1].fill += n;
    if (add_u64(&g->total, n) < 0)
        return -1;
    g->reps = 1;
    return 0;
}

static void gen_free(dev_gen *g)
{
    free(g->own);
    free(g->segs);
    g->own = NULL;
    g->segs = NULL;
}

void gens_free(dev_gen *gen)
{
    for (int p = 0; p < 4; p++)
        gen_free(&gen[p]);
}

/* virtio device parts (spec/payloads.md section 6) */
#define VIRTIO_QUEUES 3 /* virtio-net: receive, transmit, control */
static size_t virtio_part(uint8_t *p, uint16_t type, uint64_t selector,
                          const uint8_t *value, uint32_t len)
{
    memset(p, 0, 16);
    enc_store_le(p, type, 2);
    enc_store_le(p + 4, selector, 8);
    enc_store_le(p + 12, len, 4);
    memcpy(p + 16, value, len);
    return 16 + (size_t)len;
}

/* One DEVICE_DATA record: a complete snapshot of the device, padded with
 * a device-type specific part (virtio-net state) to about `want` bytes. */
static int virtio_snapshot(dev_gen *g, uint32_t d, uint64_t want)
{
    uint8_t rec[1024], v[32];
    size_t n = 16;
    /* features: VERSION_1 (32), ACCESS_PLATFORM (33), net CSUM, MAC,
     * STATUS, CTRL_VQ, MRG_RXBUF */
    uint64_t dev_f = (1ull << 32) | (1ull << 33) | (1u << 0) | (1u << 5) |
                     (1u << 15) | (1u << 16) | (1u << 17);
    enc_store_le(v, dev_f, 8);
    n += virtio_part(rec + n, 0x100, 0, v, 8);
    enc_store_le(v, dev_f & ~(1ull << 33), 8);
    n += virtio_part(rec + n, 0x101, 0, v, 8);
    static const struct {
        uint32_t off, len;
    } cfg[] = {{0x00, 4}, {0x08, 4}, {0x10, 2}, {0x12, 2}, {0x16, 2}};
    for (size_t i = 0; i < sizeof cfg / sizeof cfg[0]; i++) {
        uint64_t val = cfg[i].off == 0x12   ? VIRTIO_QUEUES
                       : cfg[i].off == 0x10 ? VIRTIO_QUEUES
                       : cfg[i].off == 0x16 ? VIRTIO_QUEUES - 1
                                            : 1;
        enc_store_le(v, val, cfg[i].len);
        n += virtio_part(rec + n, 0x102, cfg[i].off, v, cfg[i].len);
    }
    v[0] = 0x0F; /* ACKNOWLEDGE | DRIVER | DRIVER_OK | FEATURES_OK */
    n += virtio_part(rec + n, 0x103, 0, v, 1);
    for (uint16_t q = 0; q < VIRTIO_QUEUES; q++) {
        uint64_t base =
            0x100000000ull + ((uint64_t)d << 24) + ((uint64_t)q << 16);
        memset(v, 0, 32);
        enc_store_le(v, q + 1 < VIRTIO_QUEUES ? 256 : 64, 2); /* queue_size */
        enc_store_le(v + 2, q, 2);                            /* vector */
        enc_store_le(v + 4, 1, 2);                            /* enabled */
        enc_store_le(v + 8, base, 8);
        enc_store_le(v + 16, base + 0x1000, 8);
        enc_store_le(v + 24, base + 0x2000, 8);
        n += virtio_part(rec + n, 0x104, q, v, 32);
    }
    for (uint16_t q = 0; q < VIRTIO_QUEUES; q++) {
        memset(v, 0, 8);
        enc_store_le(v, q, 2);
        enc_store_le(v + 2, q, 2);
        n += virtio_part(rec + n, 0x105, q, v, 8);
    }
    uint64_t pad = want > n ? want - n : 0;
    if (pad && pad < 16)
        pad = 16;
    if (pad > UINT32_MAX - n)
        return -1; /* record_size and part lengths are 32-bit */
    enc_store_le(rec, n - 16 + pad, 8);
    enc_store_le(rec + 8, 0, 4);  /* DEVICE_DATA is mandatory */
    enc_store_le(rec + 12, 0, 4); /* tag DEVICE_DATA */
    if (pad) {
        memset(v, 0, 16);
        enc_store_le(v, 0x200, 2); /* device-type specific */
        enc_store_le(v + 12, pad - 16, 4);
        memcpy(rec + n, v, 16);
        n += 16;
    }
    if (gen_bytes(g, rec, n) < 0 || gen_fill(g, pad ? pad - 16 : 0) < 0)
        return -1;
    g->image_size = n + (pad ? pad - 16 : 0);
    return 0;
}

/* struct acc_vf_data, V2 (176 bytes) */
static void hisi_struct(uint8_t *b, uint32_t d, uint64_t *rng)
{
    memset(b, 0, 176);
    enc_store_le(b, 0xAACCFEEDDECADEDEull, 8);
    enc_store_le(b + 8, 64, 4);            /* qp_num */
    enc_store_le(b + 12, 0xa251, 4);       /* dev_id: HiSilicon ZIP VF */
    enc_store_le(b + 16, 0, 4);            /* que_iso_cfg */
    enc_store_le(b + 20, 64 * (d + 1), 4); /* qp_base */
    enc_store_le(b + 24, 1, 4);            /* vf_qm_state: ready */
    enc_store_le(b + 28, 1, 2);            /* major version */
    enc_store_le(b + 30, 0, 2);            /* minor version */
    rng_bytes(rng, b + 40, 104);           /* queue-manager registers */
    for (int i = 0; i < 4; i++)            /* eqe, aeqe, sqc, cqc DMA */
        enc_store_le(
            b + 144 + 8 * i,
            0x8000000000ull + ((uint64_t)d << 20) + (uint64_t)i * 0x10000, 8);
}

/* QAT: a section header and its payload */
static size_t qat_sect(uint8_t *p, const char *id, uint32_t size, uint32_t subs)
{
    memset(p, 0, 16);
    memcpy(p, id, strlen(id));
    enc_store_le(p + 8, size, 4);
    enc_store_le(p + 12, subs, 4);
    return 16;
}

static size_t qat_leaf(uint8_t *p, const char *id, uint64_t value, uint32_t len)
{
    size_t n = qat_sect(p, id, len, 0);
    enc_store_le(p + n, value, len < 8 ? len : 8);
    return n + len;
}

static size_t qat_preamble(uint8_t *p, uint16_t n_sects, uint32_t size)
{
    enc_store_le(p, 0xADF5CAEAu, 4);
    enc_store_le(p + 4, 1, 4);
    enc_store_le(p + 8, 16, 2);
    enc_store_le(p + 10, n_sects, 2);
    enc_store_le(p + 12, size, 4);
    return 16;
}

/* The 4096-byte buffer; returns S, the setup block's length. */
static size_t qat_buffer(uint8_t *b, uint64_t *rng)
{
    memset(b, 0, 4096);
    /* setup block: CONFIG{gencap, svcmap, extdc} */
    size_t o = 16;
    size_t cfg = o;
    o += 16;
    o += qat_leaf(b + o, "gencap", 0x00000000ffffffffull, 8);
    o += qat_leaf(b + o, "svcmap", 0x0000000000000321ull, 8);
    o += qat_leaf(b + o, "extdc", 0x1, 4);
    qat_sect(b + cfg, "CONFIG", (uint32_t)(o - cfg - 16), 3);
    qat_preamble(b, 1, (uint32_t)(o - 16));
    size_t setup = o;
    /* state block: GENER{iovinit, compver, sla}, MISCBAR{...}, ETRBAR */
    o += 16;
    size_t top = o;
    o += 16;
    o += qat_leaf(b + o, "iovinit", 1, 4);
    o += qat_leaf(b + o, "compver", 0x0104, 4);
    size_t sla = o;
    o += qat_sect(b + o, "sla", 32, 0);
    rng_bytes(rng, b + o, 32);
    o += 32;
    (void)sla;
    qat_sect(b + top, "GENER", (uint32_t)(o - top - 16), 3);
    top = o;
    o += 16;
    static const char *const misc[] = {"visrc", "vimsk", "vispv",
                                       "vimpv", "pf2vm", "vm2pf"};
    for (int i = 0; i < 6; i++)
        o += qat_leaf(b + o, misc[i], rng_next(rng) & 0xffffffffu, 8);
    qat_sect(b + top, "MISCBAR", (uint32_t)(o - top - 16), 6);
    top = o;
    o += 16;
    for (int k = 0; k < 4; k++) {
        char id[8];
        snprintf(id, sizeof id, "bnk%d", k);
        size_t bank = o;
        o += 16;
        o += qat_sect(b + o, "mregs", 128, 0);
        rng_bytes(rng, b + o, 128);
        o += 128;
        qat_sect(b + bank, id, (uint32_t)(o - bank - 16), 1);
    }
    qat_sect(b + top, "ETRBAR", (uint32_t)(o - top - 16), 4);
    qat_preamble(b + setup, 3, (uint32_t)(o - setup - 16));
    return setup;
}

/* Xe: a packet header */
static void xe_header(uint8_t *h, uint8_t type, uint64_t offset, uint64_t size)
{
    memset(h, 0, 24);
    h[0] = 1; /* version */
    h[1] = type;
    enc_store_le(h + 8, offset, 8);
    enc_store_le(h + 16, size, 8);
}

#define XE_VRAM_PACKET ((uint64_t)64 << 20)
static int xe_stream(dev_gen *g, uint64_t size)
{
    uint8_t h[24 + 28];
    /* DESCRIPTOR: devid, revid and one more KLV (walked) */
    xe_header(h, 1, 0, 28);
    enc_store_le(h + 24, 0xF0010001u, 4);
    enc_store_le(h + 28, 0xE20B, 4); /* Battlemage */
    enc_store_le(h + 32, 0xF0020001u, 4);
    enc_store_le(h + 36, 0x01, 4);
    enc_store_le(h + 40, 0xF0030002u, 4); /* vendor KLV, 2 dwords */
    enc_store_le(h + 44, 0x1, 4);
    enc_store_le(h + 48, 0x0, 4);
    if (gen_bytes(g, h, sizeof h) < 0)
        return -1;
    uint64_t ggtt = size / 16 / 8 * 8, mmio = size / 64 / 4 * 4,
             guc = size / 8 / 4 * 4;
    uint64_t vram = size - ggtt - mmio - guc;
    const struct {
        uint8_t type;
        uint64_t len;
    } res[] = {{3, ggtt}, {4, mmio}, {5, guc}};
    for (int i = 0; i < 3; i++) {
        if (!res[i].len)
            continue;
        xe_header(h, res[i].type, 0, res[i].len);
        if (gen_bytes(g, h, 24) < 0 || gen_fill(g, res[i].len) < 0)
            return -1;
    }
    for (uint64_t off = 0; off < vram; off += XE_VRAM_PACKET) {
        uint64_t n = vram - off < XE_VRAM_PACKET ? vram - off : XE_VRAM_PACKET;
        xe_header(h, 6, off, n);
        if (gen_bytes(g, h, 24) < 0 || gen_fill(g, n) < 0)
            return -1;
    }
    xe_header(h, 2, 0, 0); /* TRAILER */
    return gen_bytes(g, h, 24);
}

#define PDS_MAX 65536

/* The other kinds' generators.  Returns -1 when the sizes do not fit. */
static int kind_gens_init(const workload *wl, uint32_t d, dev_gen *gen)
{
    dev_gen *gi = &gen[MS_PHASE_INITIAL], *gm = &gen[MS_PHASE_MIDDLE],
            *gf = &gen[MS_PHASE_FINAL];
    uint8_t b[4096];
    switch (wl->kind) {
    case MS_PAYLOAD_VIRTIO:
        if (wl->initial_size && virtio_snapshot(gi, d, wl->initial_size) < 0)
            return -1;
        if (wl->middle_count) {
            if (virtio_snapshot(gm, d, wl->middle_size) < 0)
                return -1;
            gm->reps = wl->middle_count;
            if (gm->total > UINT64_MAX / wl->middle_count)
                return -1;
            gm->total *= wl->middle_count;
        }
        return virtio_snapshot(gf, d, wl->final_size);
    case MS_PAYLOAD_HISI_ACC:
        hisi_struct(b, d, &gen[0].rng);
        if (wl->no_precopy)
            return gen_bytes(gf, b, 176);
        if (gen_bytes(gi, b, 40) < 0)
            return -1;
        return gen_bytes(gf, b + 40, 136);
    case MS_PAYLOAD_QAT: {
        size_t setup = qat_buffer(b, &gen[0].rng);
        if (wl->no_precopy)
            return gen_bytes(gf, b, 4096);
        if (gen_bytes(gi, b, setup) < 0)
            return -1;
        return gen_bytes(gf, b + setup, 4096 - setup);
    }
    case MS_PAYLOAD_XE:
        return xe_stream(gf, wl->final_size);
    case MS_PAYLOAD_PDS:
        return gen_fill(gf,
                        wl->final_size < PDS_MAX ? wl->final_size : PDS_MAX);
    default: /* raw and mlx5 have generators of their own */
        return -1;
    }
}

/* Set up device d's generators (gen[0]'s rng also gives the config
 * bytes); returns -1 when the sizes overflow.  stop_copy_in_middle: with
 * precopy but no initial image, mlx5's STOP_COPY_SIZE goes in front of
 * the first middle image (migstream images) rather than in the initial
 * data (QEMU, where the first PART carries it). */
int gens_init(const workload *wl, uint32_t d, dev_gen *gen,
              int stop_copy_in_middle)
{
    int mlx5 = wl->kind == MS_PAYLOAD_MLX5;
    uint64_t hdr = mlx5 ? MLX5_HEADER : 0;
    for (int p = 0; p < 4; p++) {
        dev_gen *g = &gen[p];
        memset(g, 0, sizeof *g);
        g->mlx5 = mlx5;
        /* one independent stream per device and phase, whatever order the
         * chunks are written in */
        g->rng = wl->seed * 0x9E3779B97F4A7C15ull +
                 ((uint64_t)d * 4 + (uint64_t)p + 1) * 0xD1B54A32D192ED03ull;
        rng_next(&g->rng);
    }
    if (wl->kind != MS_PAYLOAD_MLX5 && wl->kind != MS_PAYLOAD_RAW)
        return kind_gens_init(wl, d, gen);
    /* mlx5 puts STOP_COPY_SIZE first: on entering PRE_COPY, or on
     * STOP -> STOP_COPY when there is no precopy at all. */
    int precopy = wl->initial_size || wl->middle_count;
    dev_gen *gi = &gen[MS_PHASE_INITIAL], *gm = &gen[MS_PHASE_MIDDLE],
            *gf = &gen[MS_PHASE_FINAL];
    dev_gen *first = !precopy                                   ? gf
                     : stop_copy_in_middle && !wl->initial_size ? gm
                                                                : gi;
    if (mlx5) {
        first->stop_copy_pending = 1;
        first->stop_copy_size = wl->final_size - wl->final_size / 10 +
                                rng_below(&gen[0].rng, wl->final_size / 5 + 1);
        first->total = MLX5_HEADER + 8;
    }
    if (wl->initial_size) {
        gi->records_left = 1;
        gi->record_size = wl->initial_size;
        if (add_u64(&gi->total, hdr) < 0 ||
            add_u64(&gi->total, wl->initial_size) < 0)
            return -1;
    }
    if (wl->middle_size && wl->middle_count) {
        gm->records_left = wl->middle_count;
        gm->record_size = wl->middle_size;
        uint64_t one = wl->middle_size;
        if (add_u64(&one, hdr) < 0 || wl->middle_count > UINT64_MAX / one)
            return -1;
        gm->image_size = one;
        uint64_t all = wl->middle_count * one;
        if (add_u64(&gm->total, all) < 0)
            return -1;
    }
    /* mlx5 always ends with a final FW_DATA record, even an empty one */
    if (wl->final_size || mlx5) {
        gf->records_left = 1;
        gf->record_size = wl->final_size;
        if (add_u64(&gf->total, hdr) < 0 ||
            add_u64(&gf->total, wl->final_size) < 0)
            return -1;
    }
    return 0;
}

/* --raw FILE: one device's payload as read from its data fd, every phase
 * in order; with --expect-dir, DIR/final-offset says where STOP_COPY
 * began (for migstream-dump --final-offset). */
int raw_mode(const workload *wl)
{
    dev_gen gen[4];
    if (gens_init(wl, 0, gen, 0) < 0) {
        gens_free(gen);
        usage_error("device sizes too large for --kind %s",
                    ms_payload_kind_name((uint32_t)wl->kind));
        return TOOL_USAGE;
    }
    int status = TOOL_OK;
    uint64_t final_offset =
        gen[MS_PHASE_INITIAL].total + gen[MS_PHASE_MIDDLE].total;
    if (wl->expect_dir) {
        char path[4096];
        if (mkdir(wl->expect_dir, 0777) != 0 && errno != EEXIST)
            status = io_error(wl->expect_dir, errno);
        snprintf(path, sizeof path, "%s/final-offset", wl->expect_dir);
        FILE *f = status == TOOL_OK ? fopen(path, "w") : NULL;
        if (status == TOOL_OK && !f)
            status = io_error(path, errno);
        if (f) {
            fprintf(f, "%llu\n", (unsigned long long)final_offset);
            if (ferror(f) | (fclose(f) != 0))
                status = io_error(path, errno ? errno : EIO);
        }
    }
    FILE *out = NULL;
    if (status == TOOL_OK && !(out = fopen(wl->raw_file, "wb")))
        status = io_error(wl->raw_file, errno);
    uint8_t *buf = status == TOOL_OK ? malloc(QEMU_CHUNK_DEFAULT) : NULL;
    if (status == TOOL_OK && !buf) {
        fprintf(stderr, PROG ": out of memory\n");
        status = TOOL_USAGE;
    }
    for (int p = MS_PHASE_INITIAL; status == TOOL_OK && p <= MS_PHASE_FINAL;
         p++) {
        size_t n;
        while ((n = gen_next(&gen[p], buf, QEMU_CHUNK_DEFAULT)) > 0)
            if (fwrite(buf, 1, n, out) != n) {
                status = io_error(wl->raw_file, errno ? errno : EIO);
                break;
            }
    }
    if (out) {
        errno = 0;
        int failed = ferror(out) | (fclose(out) != 0);
        if (failed && status == TOOL_OK)
            status = io_error(wl->raw_file, errno ? errno : EIO);
    }
    free(buf);
    gens_free(gen);
    return status;
}
