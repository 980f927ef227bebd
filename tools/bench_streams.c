/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* migstream-bench: the streams it measures, written in memory (migstream
 * streams by the library's writer, QEMU's by the encoder library). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "bench.h"
#include "encode.h"
#include "tool_common.h"

#define RAM_ID 1u  /* the ram section's id */
#define SLOTS 128u /* pages a multifd packet holds (QEMU's) */
#define MACHINE "pc-i440fx-7.2"

int sink_write(void *opaque, const void *buf, size_t len)
{
    sink *s = opaque;
    if (s->len + len > s->cap) {
        size_t cap = s->cap ? s->cap : 1 << 20;
        while (cap < s->len + len)
            cap *= 2;
        uint8_t *n = realloc(s->p, cap);
        if (!n)
            return -1;
        s->p = n;
        s->cap = cap;
    }
    memcpy(s->p + s->len, buf, len);
    s->len += len;
    return 0;
}

int null_write(void *opaque, const void *buf, size_t len)
{
    (void)opaque;
    (void)buf;
    (void)len;
    return 0;
}

void fill(uint8_t *p, size_t n, uint64_t seed)
{
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < n;) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        size_t run = 64 + (size_t)(x % 4096);
        if (run > n - i)
            run = n - i;
        switch (x >> 62) {
        case 0:
            memset(p + i, 0, run);
            break;
        case 1:
            memset(p + i, (int)(x >> 8) & 0xff, run);
            break;
        default:
            for (size_t k = 0; k < run; k++) {
                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                p[i + k] = (uint8_t)x;
            }
        }
        i += run;
    }
}

/* ---- migstream streams ----------------------------------------------------
 */

/* Channel 0 of `w` opened, device 1 declared, its final chunk image
 * begun: nonzero on failure. */
static int begin_one_image(ms_writer *w, ms_write_fn fn, void *opaque)
{
    return !w || ms_writer_open_channel(w, 0, fn, opaque) ||
           ms_writer_add_device(w, 1, "0000:00:02.0/vfio", 0, MS_PAYLOAD_RAW,
                                NULL, 0) ||
           ms_writer_image_begin(w, 0, 1, MS_PHASE_FINAL, MS_TRANSPORT_CHUNKS,
                                 0, 0);
}

int write_chunks(const uint8_t *data, size_t n, size_t chunk, int level,
                 ms_write_fn fn, void *opaque, const ms_allocator *alloc)
{
    ms_writer_options wo;
    ms_writer_options_init(&wo);
    wo.chunk_size = chunk;
    wo.compression_level = level;
    if (alloc)
        wo.allocator = *alloc;
    ms_writer *w = ms_writer_create(&wo);
    int rc = begin_one_image(w, fn, opaque) ||
             ms_writer_image_data(w, 1, data, n) ||
             ms_writer_image_end(w, 1, 0) || ms_writer_close_channel(w, 0, 0);
    ms_writer_free(w);
    return rc ? -1 : 0;
}

int write_empty_records(size_t count, sink *out)
{
    ms_writer_options wo;
    ms_writer_options_init(&wo);
    ms_writer *w = ms_writer_create(&wo);
    int rc = begin_one_image(w, sink_write, out) ||
             ms_writer_image_data(w, 1, "x", 1);
    for (size_t i = 0; !rc && i < count; i++) /* a vendor tag, optional */
        rc = ms_writer_raw_record(w, 0, 0x80000001u, MS_RECORD_OPTIONAL, NULL,
                                  0);
    rc = rc || ms_writer_image_end(w, 1, 0) || ms_writer_close_channel(w, 0, 0);
    ms_writer_free(w);
    return rc ? -1 : 0;
}

int write_packets(const uint8_t *data, size_t n, size_t packet,
                  uint32_t channels, sink *out)
{
    ms_writer_options wo;
    ms_writer_options_init(&wo);
    wo.channel_count = channels;
    ms_writer *w = ms_writer_create(&wo);
    int rc = !w;
    for (uint32_t c = 0; !rc && c < channels; c++)
        rc = ms_writer_open_channel(w, c, sink_write, &out[c]);
    rc = rc ||
         ms_writer_add_device(w, 1, "0000:00:02.0/vfio", 0, MS_PAYLOAD_RAW,
                              NULL, 0) ||
         ms_writer_image_begin(w, 0, 1, MS_PHASE_FINAL, MS_TRANSPORT_PACKETS, 0,
                               0);
    uint32_t c = 0;
    for (size_t off = 0; !rc && off < n; off += packet, c = (c + 1) % channels)
        rc = ms_writer_image_packet(w, c, 1, data + off,
                                    n - off < packet ? n - off : packet, 0);
    rc = rc || ms_writer_image_packet(w, c, 1, "config", 6, 1) ||
         ms_writer_image_end(w, 1, 0);
    for (uint32_t k = 0; !rc && k < channels; k++)
        rc = ms_writer_close_channel(w, k, 0);
    ms_writer_free(w);
    return rc ? -1 : 0;
}

/* ---- QEMU streams ---------------------------------------------------------
 */

static int enc_sink_write(void *opaque, uint64_t at, const void *p, size_t n)
{
    (void)at; /* a memory sink appends */
    return sink_write(opaque, p, n) < 0 ? ENOMEM : 0;
}

/* Nothing but memory can fail a sink. */
static void out_of_memory(void)
{
    fprintf(stderr, "migstream-bench: out of memory\n");
    exit(TOOL_USAGE);
}

static void put(sink *s, const void *p, size_t n)
{
    if (sink_write(s, p, n) < 0)
        out_of_memory();
}

/* Header, configuration, START with the block list. */
static void qemu_start(enc_out *o, uint64_t ram_bytes)
{
    enc_q_header(o);
    enc_q_config(o, MACHINE);
    enc_q_section(o, Q_START, RAM_ID, "ram", 0, RAM_SECTION_VERSION);
    enc_ram_mem_size(o, ram_bytes);
    enc_ram_block(o, "pc.ram", ram_bytes);
    enc_ram_end(o, RAM_ID);
}

/* END and EOF. */
static void qemu_end(enc_out *o)
{
    enc_q_section(o, Q_END, RAM_ID, NULL, 0, 0);
    enc_ram_end(o, RAM_ID);
    enc_q_eof(o);
    if (o->err)
        out_of_memory();
}

void write_qemu(sink *s, const uint8_t *data, size_t n)
{
    enc_out o = {.write = enc_sink_write, .opaque = s};
    size_t pages = n / BENCH_PAGE;
    qemu_start(&o, (uint64_t)pages * BENCH_PAGE);
    enc_q_section(&o, Q_PART, RAM_ID, NULL, 0, 0);
    for (size_t i = 0; i < pages; i++) {
        const char *block = i ? NULL /* CONTINUE */ : "pc.ram";
        uint64_t at = (uint64_t)i * BENCH_PAGE;
        if (i % 8 == 7)
            enc_ram_zero(&o, at, block);
        else
            enc_ram_page(&o, at, block, data + at, BENCH_PAGE);
    }
    enc_ram_end(&o, RAM_ID);
    qemu_end(&o);
}

void write_qemu_main(sink *s, uint64_t ram_bytes)
{
    enc_out o = {.write = enc_sink_write, .opaque = s};
    qemu_start(&o, ram_bytes);
    qemu_end(&o);
}

/* A SYNC packet (header only, pages_alloc as QEMU before 9.2 sends). */
static void put_sync(sink *s, uint8_t *hdr, uint64_t packet_num)
{
    enc_mfd_ram r = {.flags = MULTIFD_FLAG_SYNC,
                     .pages_alloc = SLOTS,
                     .packet_num = packet_num};
    put(s, hdr, enc_mfd_ram_header(hdr, SLOTS, &r));
}

/* One zlib stream across the packets, flushed at each packet's end (as
 * QEMU writes it); a SYNC packet for each of the main stream's two sync
 * points (the START and END sections' EOS) before and after the pages. */
void write_multifd_zlib(sink *s, sink *zonly, const uint8_t *data, size_t n,
                        uint64_t first_byte, uint8_t channel, uint8_t channels)
{
    uint8_t hdr[MULTIFD_RAM_FIXED + 8 * SLOTS];
    uint64_t offsets[SLOTS];
    z_stream zs = {0};
    uLong cap = compressBound(SLOTS * BENCH_PAGE) + 64;
    uint8_t *out = malloc(cap);
    if (!out || deflateInit(&zs, 1) != Z_OK)
        out_of_memory();
    enc_mfd_init(hdr, NULL, channel);
    put(s, hdr, MULTIFD_INIT_SIZE);
    put_sync(s, hdr, channel);
    size_t pages = n / BENCH_PAGE, k = 1;
    for (size_t first = 0; first < pages; first += SLOTS, k++) {
        size_t cnt = pages - first < SLOTS ? pages - first : SLOTS;
        zs.next_in = (Bytef *)(uintptr_t)(data + first * BENCH_PAGE);
        zs.avail_in = (uInt)(cnt * BENCH_PAGE);
        zs.next_out = out;
        zs.avail_out = (uInt)cap;
        deflate(&zs, Z_SYNC_FLUSH);
        size_t clen = (size_t)(zs.next_out - out);
        for (size_t i = 0; i < cnt; i++)
            offsets[i] = first_byte + (uint64_t)(first + i) * BENCH_PAGE;
        enc_mfd_ram r = {.flags = MULTIFD_COMP_ZLIB,
                         .pages_alloc = SLOTS,
                         .normal = (uint32_t)cnt,
                         .payload_len = (uint32_t)clen,
                         .packet_num = channel + (uint64_t)k * channels,
                         .block = "pc.ram",
                         .normal_off = offsets};
        put(s, hdr, enc_mfd_ram_header(hdr, SLOTS, &r));
        put(s, out, clen);
        put(zonly, out, clen);
    }
    put_sync(s, hdr, channel + (uint64_t)k * channels);
    deflateEnd(&zs);
    free(out);
}
