/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* QEMU multifd channel decoder (spec/qemu-multifd.md).
 *
 * A channel is an init packet, then packets until a clean end of input at
 * a packet boundary.  Stages (MS_*, st->stage; each resumable at any
 * byte), steps inside a stage [in brackets] (st->step):
 *
 *   INIT -> HEADER -+-> RAM_HEADER -> RAM_OFFSETS -+-> PAGES (raw | zlib |
 *            ^      |   (block name, offsets:      |   zstd) ------------+
 *            |      |    the packet event)         +-> WALK (qpl | uadk ||
 *            |      |                              |   qatzip) [WALK_*] -+
 *            |      |                              +---------------------+
 *            |      |                                 (no normal pages)  v
 *            |      |                                          ZERO_PAGES -+
 *            |      +-> DEVICE_HEADER [DEV_*] -> DEVICE_DATA -------------+
 *            +------------------------------------------------------------+
 *   salvage: a failure -> RESYNC (next plausible header) [-> LOST: the
 *   failed compressed packet's pages] -> HEADER; after damage, PAGES of a
 *   compressed packet skip its payload -> LOST -> ZERO_PAGES
 *
 * RAM page bytes go out as MS_EV_RAM_PAGE views of the input when stored
 * raw; compressed channels keep one inflate/zstd stream per channel across
 * packets (QEMU flushes it at each packet's end), as the receiver does.
 * The payload is read only when a packet has normal pages: QEMU 7.2 leaves
 * a stale next_packet_size in page-less packets and sends no payload.
 *
 * Which QEMU wrote a channel is read from the packets, never from an
 * option: the framing (init packet, 320 + 8 x 512 KiB/page-size header
 * bytes, packet version 1) is the same in 7.2 and 10.x.  What differs is
 * what the fields hold: before 9.0 SYNC packets may carry pages and
 * page-less packets stale fields; 9.0+ adds zero_pages (zero pages as
 * offsets only); 9.2+ SYNC packets are header-only (pages_alloc 0, no
 * block, no offsets, next_packet_size 0), checked as such; 10.0 adds
 * device-state packets.
 */
#include <zlib.h>
#include <zstd.h>

#include "decompress.h"
#include "kit.h"
#include "qemu_salvage.h"
#include "qemu_wire.h"
#include "vfio_wire.h"

enum m_stage {
    MS_INIT = 0x4D46, /* not 0: a zeroed state is caught as invalid */
    MS_HEADER,
    MS_RAM_HEADER,
    MS_RAM_OFFSETS,
    MS_PAGES,
    MS_ZERO_PAGES,
    MS_DEVICE_HEADER,
    MS_DEVICE_DATA,
    MS_WALK,
    MS_RESYNC, /* salvage: the next plausible packet header */
    MS_LOST    /* salvage: the pages of a packet that cannot be decoded */
};

/* Steps of MS_WALK (st->step). */
enum walk_step {
    WALK_LENGTHS = 0, /* qpl / uadk: be32 compressed length per page */
    WALK_BLOBS = 1    /* the compressed bytes, skipped */
};

/* Steps of MS_DEVICE_HEADER (st->step). */
enum device_step {
    DEV_PACKET_HEADER = 0, /* idstr, instance, payload size */
    DEV_BUFFER_HEADER = 1, /* the VFIO buffer header */
    DEV_CONFIG_MARKER = 2  /* a config buffer's leading marker, looked at */
};

/* Every stage starts at step 0. */
enum { M_STEP_FIRST = 0 };

/* The config buffer holds the device config as the main stream carries it:
 * DEV_CONFIG_STATE, the config VMState, END_OF_STATE (VFIO migration
 * markers; the main-stream decoder names the same values).  Packet
 * layout constants: qemu_wire.h. */

#define FLAG_SYNC MULTIFD_FLAG_SYNC
#define FLAG_COMPRESSION MULTIFD_FLAG_COMPRESSION
#define FLAG_DEVICE_STATE MULTIFD_FLAG_DEVICE_STATE
#define FLAGS_KNOWN MULTIFD_FLAGS_KNOWN

enum comp { C_NONE = 0, C_ZLIB = MULTIFD_COMP_ZLIB, C_ZSTD = MULTIFD_COMP_ZSTD,
            C_QPL = 0x08, C_UADK = 0x10, C_QATZIP = 0x20 };

typedef struct m_state {
    int stage, step;
    uint32_t page_size;
    uint32_t channel_id;
    uint32_t syncs;      /* SYNC packets seen: the current epoch */
    int comp_seen;       /* the channel's compression is known */
    uint32_t comp;       /* its method bit */
    int announced;       /* the MS_EV_CHANNEL event went out */
    /* a decompression error found in the call that completed a page: the
     * page goes out first, so events do not depend on input slicing */
    const char *deferred_bad;
    ms_limit deferred_limit; /* the limit the deferred failure exceeded */

    /* packet being read */
    uint64_t pkt_off;
    uint32_t flags;
    ms_event pending;
    char block[256];
    char idstr[256];
    uint32_t pages_alloc, normal, zero, nps, page_i;
    uint64_t packet_num;
    uint64_t *offsets;   /* pages_alloc entries */
    uint64_t payload_left;
    uint64_t payload_off; /* where the packet's payload starts */
    uint8_t *page_buf;   /* one decompressed page */
    size_t page_got;
    /* device state */
    uint32_t idx, dev_flags, instance;
    uint64_t dev_off;    /* offset of the device bytes within the buffer */
    uint8_t cfg_tail[VFIO_MARKER_SIZE]; /* config buffer: its last bytes */

    ms_dec_mem zmem; /* what zs / zd hold: max_decompress_bytes */
    z_stream zs;
    int zs_ready;
    ZSTD_DStream *zd;
    uint64_t zd_frame_off; /* where the current zstd frame began */
    int zd_frame_next;     /* the next byte zstd takes begins a frame */
    size_t zd_hint; /* zstd's next input size: fed no more, so it works a
                       block at a time whatever the slicing; 0: no limit */
    int zd_full;    /* the last call filled its output: zstd may hold more,
                       so the next call only flushes (no new input) */
    ms_salvage_range salv; /* ms_options.salvage: the damaged range */
    /* salvage: damage broke the channel's compressed stream (QEMU keeps
     * one across the channel's packets), so no later compressed page can
     * be decoded; their offsets are still known from the headers */
    int comp_lost;
    uint64_t lost_from, lost_to; /* MS_LOST: the range its events name */
    uint32_t lost_end;           /* ... pages page_i .. lost_end - 1 */
    int lost_next;               /* ... then this stage */
} m_state;

#define MST(r) ((m_state *)(r)->framing)
#define ALLOC(r) (&(r)->opt.allocator)


static const char *comp_name(uint32_t c)
{
    switch (c) {
    case C_NONE: return "none";
    case C_ZLIB: return "zlib";
    case C_ZSTD: return "zstd";
    case C_QPL: return "qpl";
    case C_UADK: return "uadk";
    case C_QATZIP: return "qatzip";
    }
    return "mixed";
}

/* ---- init packet ------------------------------------------------------------ */

static int read_init(ms_reader *r, ms_event *ev)
{
    m_state *st = MST(r);
    const uint8_t *p;
    MS_TAKE_OR_RETURN(r, MULTIFD_INIT_SIZE, &p);
    if (ms_be32(p) != MULTIFD_MAGIC)
        return MS_FAIL(r, MS_ERR_BAD_MAGIC, 0, "expected 11 22 33 44");
    if (ms_be32(p + 4) != MULTIFD_VERSION)
        return MS_FAIL(r, MS_ERR_VERSION, 4,
                       "multifd channel version %u; only 1 is known",
                       ms_be32(p + 4));
    for (int i = 25; i < MULTIFD_INIT_SIZE; i++)
        if (p[i])
            return MS_FAIL(r, MS_ERR_MULTIFD, (uint64_t)i,
                           "init packet: reserved byte %d is not zero", i);
    st->channel_id = p[24];
    ev->kind = MS_EV_STREAM_HEADER;
    ev->offset = 0;
    ev->length = MULTIFD_INIT_SIZE;
    ev->u.stream.format = MS_FORMAT_QEMU_MULTIFD;
    ev->u.stream.version_major = MULTIFD_VERSION;
    memcpy(ev->u.stream.uuid, p + 8, 16);
    ev->u.stream.channel_index = st->channel_id;
    ev->u.stream.channel_count = 0; /* only the migration knows */
    memcpy(st->pending.u.channel.uuid, p + 8, 16);
    st->stage = MS_HEADER;
    return MS_NEXT_EVENT;
}

/* ---- packet header ------------------------------------------------------- */

static int read_header(ms_reader *r, ms_event *ev)
{
    m_state *st = MST(r);
    const uint8_t *p;
    if (!st->announced) { /* the init packet as its own event */
        st->announced = 1;
        ev->kind = MS_EV_CHANNEL;
        ev->offset = 0;
        ev->length = MULTIFD_INIT_SIZE;
        ev->u.channel.channel_id = st->channel_id;
        ev->u.channel.version = MULTIFD_VERSION;
        memcpy(ev->u.channel.uuid, st->pending.u.channel.uuid, 16);
        return MS_NEXT_EVENT;
    }
    if (ms_rd_pending(r) == 0)
        return MS_NEXT_INPUT; /* a clean end is at a packet boundary */
    st->step = M_STEP_FIRST;
    st->pkt_off = ms_rd_pos(r);
    MS_TAKE_OR_RETURN(r, MULTIFD_HDR_SIZE, &p);
    if (ms_be32(p) != MULTIFD_MAGIC)
        return MS_FAIL(r, MS_ERR_MULTIFD, st->pkt_off,
                       "packet magic 0x%08x, expected 0x11223344",
                       ms_be32(p));
    if (ms_be32(p + 4) != MULTIFD_VERSION)
        return MS_FAIL(r, MS_ERR_MULTIFD, st->pkt_off + 4,
                       "packet version %u, expected 1", ms_be32(p + 4));
    st->flags = ms_be32(p + 8);
    uint32_t comp = st->flags & FLAG_COMPRESSION;
    if (st->flags & ~FLAGS_KNOWN)
        return MS_FAIL(r, MS_ERR_MULTIFD, st->pkt_off + 8,
                       "unknown packet flags 0x%x", st->flags & ~FLAGS_KNOWN);
    if (comp & (comp - 1))
        return MS_FAIL(r, MS_ERR_MULTIFD, st->pkt_off + 8,
                       "packet flags name two compression methods (0x%x)",
                       comp);
    memset(&st->pending, 0, sizeof st->pending);
    ms_multifd_info *m = &st->pending.u.mfd;
    m->flags = st->flags;
    m->sync = (st->flags & FLAG_SYNC) != 0;
    m->device_state = (st->flags & FLAG_DEVICE_STATE) != 0;
    m->compression = comp_name(comp);
    if (m->device_state) {
        if (m->sync || comp)
            return MS_FAIL(r, MS_ERR_MULTIFD, st->pkt_off + 8,
                           "device-state packet with %s flag",
                           m->sync ? "the SYNC" : "a compression");
        st->stage = MS_DEVICE_HEADER;
        st->step = DEV_PACKET_HEADER;
        return MS_GO_ON;
    }
    st->stage = MS_RAM_HEADER;
    return MS_GO_ON;
}

/* ---- RAM packets ------------------------------------------------------------ */

/* A packet with pages_alloc 0 is what QEMU >= 9.2 sends at a sync point:
 * the packet is zeroed and only flags (SYNC alone, no compression bit),
 * packet_num and next_packet_size (0) are set; the offset slots (checked
 * with the offsets) stay zero.  `rest` holds the packet's bytes from 12
 * (after the 12-byte header) to the end of the block name. */
static int check_header_only_sync(ms_reader *r, const uint8_t *rest)
{
    m_state *st = MST(r);
    uint64_t base = st->pkt_off;
    if (st->flags != FLAG_SYNC)
        return MS_FAIL(r, MS_ERR_MULTIFD, base + 8,
                       "pages_alloc 0 with flags 0x%x: only a SYNC packet "
                       "(flags 0x1) is sent without page slots",
                       st->flags);
    if (st->nps)
        return MS_FAIL(r, MS_ERR_MULTIFD, base + 20,
                       "SYNC packet without page slots has next_packet_size "
                       "%u",
                       st->nps);
    for (int i = 64; i < MULTIFD_RAM_FIXED; i++)
        if (rest[i - MULTIFD_HDR_SIZE])
            return MS_FAIL(r, MS_ERR_MULTIFD, base + (uint64_t)i,
                           "SYNC packet without page slots names a RAM "
                           "block");
    return MS_GO_ON;
}

static int read_ram_header(ms_reader *r)
{
    m_state *st = MST(r);
    const uint8_t *p;
    /* the rest of the fixed part, through the block name; F(x) is the
     * field at packet offset x (the 12-byte header came in its own take) */
    MS_TAKE_OR_RETURN(r, MULTIFD_RAM_FIXED - MULTIFD_HDR_SIZE, &p);
#define F(x) (p + (x) - MULTIFD_HDR_SIZE)
    uint64_t base = st->pkt_off;
    uint32_t page_count = MULTIFD_PACKET_DATA / st->page_size;
    st->pages_alloc = ms_be32(F(12));
    st->normal = ms_be32(F(16));
    st->nps = ms_be32(F(20));
    st->packet_num = ms_be64(F(24));
    st->zero = ms_be32(F(32));
    /* pages_alloc 0: a QEMU >= 9.2 SYNC packet, header only (below) */
    if (st->pages_alloc > page_count)
        return MS_FAIL(r, MS_ERR_MULTIFD, base + 12,
                       "pages_alloc %u (a packet holds at most %u pages of "
                       "%u bytes)",
                       st->pages_alloc, page_count, st->page_size);
    if (st->normal > st->pages_alloc)
        return MS_FAIL(r, MS_ERR_MULTIFD, base + 16,
                       "normal_pages %u above pages_alloc %u", st->normal,
                       st->pages_alloc);
    if (st->zero > st->pages_alloc - st->normal)
        return MS_FAIL(r, MS_ERR_MULTIFD, base + 32,
                       "zero_pages %u: only %u slots left", st->zero,
                       st->pages_alloc - st->normal);
    for (int i = 36; i < 64; i++)
        if (*F(i))
            return MS_FAIL(r, MS_ERR_MULTIFD, base + (uint64_t)i,
                           "reserved packet byte %d is not zero", i);
    const uint8_t *name = F(64);
    if (!memchr(name, 0, 256))
        return MS_FAIL(r, MS_ERR_MULTIFD, base + 64,
                       "RAM block name is not NUL terminated");
    memcpy(st->block, name, strlen((const char *)name) + 1);
    if ((st->normal || st->zero) && !st->block[0])
        return MS_FAIL(r, MS_ERR_MULTIFD, base + 64,
                       "packet with pages but no RAM block name");
    /* QEMU >= 9.0 writes next_packet_size 0 when no page has data (the
     * zlib/zstd receivers assert it); 7.2's stale sizes come only in
     * packets without any page, zero pages included */
    /* without compression the payload is the pages, and every QEMU writes
     * its size (the receiver reads normal_pages pages whatever it says) */
    if (st->normal && !(st->flags & FLAG_COMPRESSION) &&
        st->nps != st->normal * st->page_size)
        return MS_FAIL(r, MS_ERR_MULTIFD, base + 20,
                       "next_packet_size %u, but %u uncompressed pages are "
                       "%u bytes",
                       st->nps, st->normal, st->normal * st->page_size);
    if (st->zero && !st->normal && st->nps)
        return MS_FAIL(r, MS_ERR_MULTIFD, base + 20,
                       "next_packet_size %u in a packet of zero pages only",
                       st->nps);
    if (st->pages_alloc == 0) {
        int rc = check_header_only_sync(r, p);
        if (rc != MS_GO_ON)
            return rc;
    }
    uint32_t comp = st->flags & FLAG_COMPRESSION;
    /* packets with pages tell the method (QEMU >= 9.0 also flags packets
     * of zero pages only, and the receiver checks it) */
    if (st->normal || st->zero) {
        if (st->comp_seen && comp != st->comp)
            return MS_FAIL(r, MS_ERR_MULTIFD, base + 8,
                           "packet compressed with %s, the channel uses %s",
                           comp_name(comp), comp_name(st->comp));
        st->comp_seen = 1;
        st->comp = comp;
    }
    st->stage = MS_RAM_OFFSETS;
    return MS_GO_ON;
#undef F
}

/* The channel's zlib or zstd state, made once for all its packets; every
 * byte the library allocates comes out of max_decompress_bytes, and a
 * zstd frame's window is capped by max_zstd_window. */
static int start_decompressor(ms_reader *r, uint32_t comp)
{
    m_state *st = MST(r);
    if (st->zs_ready || st->zd)
        return 0;
    ms_dec_mem_init(&st->zmem, ALLOC(r), r->opt.max_decompress_bytes);
    if (comp == C_ZLIB) {
        st->zs_ready = ms_dec_inflate_init(&st->zs, &st->zmem, MAX_WBITS) == 0;
        if (st->zs_ready)
            return 0;
    } else {
        st->zd = ms_dec_zstd_create(&st->zmem, r->opt.max_zstd_window, 0);
        if (st->zd) {
            st->zd_hint = ZSTD_initDStream(st->zd);
            st->zd_frame_next = 1;
            return 0;
        }
    }
    if (st->zmem.refused)
        return MS_FAIL_LIMIT(r, MS_LIMIT_MAX_DECOMPRESS_BYTES, st->pkt_off,
                             "channel %u: %s state does not fit in "
                             "max_decompress_bytes (%llu)",
                             st->channel_id, comp_name(comp),
                             (unsigned long long)st->zmem.limit);
    return MS_FAIL(r, MS_ERR_NO_MEMORY, st->pkt_off, "%s", comp_name(comp));
}

static int read_ram_offsets(ms_reader *r, ms_event *ev)
{
    m_state *st = MST(r);
    const uint8_t *p;
    /* The receiver reads offset slots for a full packet (512 KiB / page
     * size) whatever pages_alloc says, so the framing follows that. */
    size_t n = (size_t)(MULTIFD_PACKET_DATA / st->page_size) * 8;
    MS_TAKE_OR_RETURN(r, n, &p);
    uint64_t base = st->pkt_off + MULTIFD_RAM_FIXED;
    if (st->pages_alloc == 0) /* a header-only SYNC: all slots zero */
        for (size_t i = 0; i < n; i++)
            if (p[i])
                return MS_FAIL(r, MS_ERR_MULTIFD, base + (i & ~(size_t)7),
                               "SYNC packet without page slots has a page "
                               "offset");
    for (uint32_t i = 0; i < st->normal + st->zero; i++) {
        uint64_t off = ms_be64(p + 8 * (size_t)i);
        if (off % st->page_size)
            return MS_FAIL(r, MS_ERR_MULTIFD, base + 8 * (uint64_t)i,
                           "page offset 0x%llx is not page aligned",
                           (unsigned long long)off);
        st->offsets[i] = off;
    }
    /* The receiver reads a payload only when there are pages: 7.2 leaves a
     * stale next_packet_size in page-less packets (see file comment). */
    uint32_t comp = st->flags & FLAG_COMPRESSION;
    uint64_t payload = 0;
    if (st->normal)
        payload = comp == C_NONE ? (uint64_t)st->normal * st->page_size
                                 : st->nps;
    if (payload > r->opt.max_record_payload)
        return MS_FAIL_LIMIT(r, MS_LIMIT_MAX_RECORD_PAYLOAD, st->pkt_off + 20,
                             "packet payload of %llu bytes exceeds "
                             "max_record_payload",
                             (unsigned long long)payload);
    st->payload_left = payload;
    st->payload_off = ms_rd_pos(r);
    st->page_i = 0;
    st->page_got = 0;
    ev->kind = MS_EV_MULTIFD_PACKET;
    ev->offset = st->pkt_off;
    ev->length = MULTIFD_RAM_FIXED + n + payload;
    ms_multifd_info *m = &ev->u.mfd;
    *m = st->pending.u.mfd;
    m->pages_alloc = st->pages_alloc;
    m->normal_pages = st->normal;
    m->zero_pages = st->zero;
    m->next_packet_size = st->nps;
    m->packet_num = st->packet_num;
    m->block = st->block;
    m->payload_size = payload;
    if (st->normal && (comp == C_ZLIB || comp == C_ZSTD) &&
        start_decompressor(r, comp) < 0)
        return -1;
    st->stage = st->normal ? (comp == C_NONE || comp == C_ZLIB ||
                                      comp == C_ZSTD
                                  ? MS_PAGES
                                  : MS_WALK)
                           : MS_ZERO_PAGES;
    return MS_NEXT_EVENT;
}

static void page_event(m_state *st, ms_event *ev, uint32_t i,
                       ms_ram_record rec, const uint8_t *data, int zero_copy,
                       uint64_t at)
{
    memset(ev, 0, sizeof *ev);
    ev->kind = MS_EV_RAM_PAGE;
    /* Offsets do not depend on how the input was sliced: a raw page is
     * its bytes; a decompressed page points at its packet's payload; a
     * zero page (no bytes) at where the payload ended. */
    ev->offset = at;
    ev->length = rec == MS_RAM_PAGE && !(st->flags & FLAG_COMPRESSION)
                     ? st->page_size
                     : 0;
    ms_ram_info *ri = &ev->u.ram;
    ri->record = rec;
    ri->block = st->block;
    ri->block_index = UINT32_MAX; /* the main stream's list says which */
    ri->offset = st->offsets[i];
    ri->page_size = st->page_size;
    ri->data = data;
    ri->size = data ? st->page_size : 0;
    ri->zero_copy = zero_copy;
    ri->epoch = st->syncs;
    ri->packet_num = st->packet_num;
}

/* The channel's decompressor failed: at the payload (where the failure
 * shows depends on slicing), or a limit refused it: max_zstd_window at the
 * frame that declared the window, max_decompress_bytes at the payload. */
static int decompress_failed(ms_reader *r, const char *why, ms_limit over)
{
    m_state *st = MST(r);
    const char *comp = comp_name(st->flags & FLAG_COMPRESSION);
    if (over == MS_LIMIT_MAX_ZSTD_WINDOW)
        return MS_FAIL_LIMIT(r, over, st->zd_frame_off,
                             "channel %u packet %llu (zstd): the frame's "
                             "window is larger than max_zstd_window (%llu "
                             "bytes)",
                             st->channel_id,
                             (unsigned long long)st->packet_num,
                             (unsigned long long)r->opt.max_zstd_window);
    if (over == MS_LIMIT_MAX_DECOMPRESS_BYTES)
        return MS_FAIL_LIMIT(r, over, st->payload_off,
                             "channel %u packet %llu (%s): the stream needs "
                             "more memory than max_decompress_bytes (%llu)",
                             st->channel_id,
                             (unsigned long long)st->packet_num, comp,
                             (unsigned long long)st->zmem.limit);
    return MS_FAIL(r, MS_ERR_DECOMPRESS, st->payload_off,
                   "channel %u packet %llu (%s): %s", st->channel_id,
                   (unsigned long long)st->packet_num, comp, why);
}

/* Salvage: a compressed packet after damage: its payload is skipped, its
 * normal pages are reported lost (MS_LOST), its zero pages go out. */
static int skip_lost_payload(ms_reader *r)
{
    m_state *st = MST(r);
    const uint8_t *p;
    size_t n = ms_rd_peek(r, st->payload_left, &p);
    ms_rd_skip(r, n);
    st->payload_left -= n;
    if (st->payload_left)
        return ms_rd_pending(r) ? MS_GO_ON : MS_NEXT_INPUT;
    st->lost_from = st->pkt_off;
    st->lost_to = ms_rd_pos(r);
    st->lost_end = st->normal;
    st->lost_next = MS_ZERO_PAGES;
    st->stage = MS_LOST;
    return MS_GO_ON;
}

/* Normal pages: stored raw (views), or the channel's compressed stream
 * decompressed one page at a time. */
static int read_pages(ms_reader *r, ms_event *ev)
{
    m_state *st = MST(r);
    const uint8_t *p;
    uint32_t comp = st->flags & FLAG_COMPRESSION;
    if (st->deferred_bad)
        return decompress_failed(r, st->deferred_bad, st->deferred_limit);
    if (comp != C_NONE && st->comp_lost)
        return skip_lost_payload(r);
    if (st->page_i == st->normal && comp == C_NONE) {
        st->stage = MS_ZERO_PAGES;
        return MS_GO_ON;
    }
    /* After the last page, what is left of a compressed payload (maybe
     * nothing) must decompress to nothing: run the decompressor with one
     * byte of room, also to find output it buffered past the pages. */
    int draining = st->page_i == st->normal;
    if (comp == C_NONE) {
        uint64_t at = ms_rd_pos(r);
        MS_TAKE_OR_RETURN(r, st->page_size, &p);
        st->payload_left -= st->page_size;
        page_event(st, ev, st->page_i++, MS_RAM_PAGE, p, ms_rd_in_input(r, p),
                   at);
        return MS_NEXT_EVENT;
    }
    if (!st->page_buf && !(st->page_buf = ms_alloc(ALLOC(r), st->page_size)))
        return MS_FAIL(r, MS_ERR_NO_MEMORY, st->pkt_off, "page buffer");
    if (draining)
        st->page_got = st->page_size - 1; /* room for one byte: must stay */
    size_t n = ms_rd_peek(r, st->payload_left, &p);
    if (n == 0 && st->payload_left)
        return MS_NEXT_INPUT;
    if (n == 0)
        p = st->page_buf; /* no input: any valid pointer */
    size_t used, made;
    int flushing = 0; /* a zstd call that only empties what it holds */
    const char *bad = NULL;
    ms_limit over = MS_LIMIT_NONE; /* bad: a limit refused the stream */
    if (comp == C_ZLIB) {
        st->zs.next_in = (Bytef *)p;
        st->zs.avail_in = (uInt)MS_MIN(n, (size_t)UINT32_MAX);
        st->zs.next_out = st->page_buf + st->page_got;
        st->zs.avail_out = (uInt)(st->page_size - st->page_got);
        int zrc = inflate(&st->zs, Z_SYNC_FLUSH);
        used = (size_t)(st->zs.next_in - p);
        made = (size_t)(st->zs.next_out - (st->page_buf + st->page_got));
        if (zrc == Z_STREAM_END)
            bad = "the channel's zlib stream ended; it must last all packets";
        else if (zrc != Z_OK && zrc != Z_BUF_ERROR)
            bad = st->zs.msg ? st->zs.msg : "inflate failed";
        if (zrc == Z_MEM_ERROR && st->zmem.refused)
            over = MS_LIMIT_MAX_DECOMPRESS_BYTES;
    } else {
        size_t feed = st->zd_full ? 0 : st->zd_hint ? MS_MIN(n, st->zd_hint) : n;
        flushing = st->zd_full;
        ZSTD_inBuffer in = {p, feed, 0};
        ZSTD_outBuffer out = {st->page_buf + st->page_got,
                              st->page_size - st->page_got, 0};
        if (st->zd_frame_next && feed) { /* slicing-independent offset */
            st->zd_frame_off = ms_rd_pos(r);
            st->zd_frame_next = 0;
        }
        size_t zrc = ZSTD_decompressStream(st->zd, &out, &in);
        used = in.pos;
        made = out.pos;
        if (ZSTD_isError(zrc))
            bad = ZSTD_getErrorName(zrc);
        else
            st->zd_hint = zrc; /* 0: a frame ended; the next may begin */
        if (!ZSTD_isError(zrc) && zrc == 0)
            st->zd_frame_next = 1;
        if (ms_dec_zstd_window_refused(zrc))
            over = MS_LIMIT_MAX_ZSTD_WINDOW;
        else if (ZSTD_isError(zrc) && st->zmem.refused)
            over = MS_LIMIT_MAX_DECOMPRESS_BYTES;
        st->zd_full = out.pos == out.size;
    }
    ms_rd_skip(r, used);
    st->payload_left -= used;
    st->page_got += made;
    if (!bad && draining && made)
        bad = "the payload holds more than the packet's pages";
    else if (!bad && !used && !made && !flushing && st->payload_left)
        bad = draining ? "bytes after the packet's pages do not decompress"
                       : "the packet's payload ends before its pages";
    else if (!bad && !used && !made && !flushing && !draining)
        bad = "the packet's payload ends before its pages";
    if (draining && !bad) {
        st->page_got = 0;
        if (!st->payload_left)
            st->stage = MS_ZERO_PAGES;
        return MS_GO_ON;
    }
    if (bad && !draining && st->page_got == st->page_size) {
        st->deferred_bad = bad; /* reported on the next call */
        st->deferred_limit = over;
        bad = NULL;
    }
    if (bad)
        return decompress_failed(r, bad, over);
    if (st->page_got < st->page_size)
        return MS_GO_ON; /* more input, or more output from what we gave */
    st->page_got = 0;
    page_event(st, ev, st->page_i++, MS_RAM_PAGE, st->page_buf, 0,
               st->payload_off);
    return MS_NEXT_EVENT;
}

/* qpl / uadk: be32 length per page, then per-page blobs (a length equal to
 * the page size is a raw page); qatzip: one blob.  Walked, not decoded. */
static int read_walk(ms_reader *r)
{
    m_state *st = MST(r);
    const uint8_t *p;
    uint32_t comp = st->flags & FLAG_COMPRESSION;
    if ((comp == C_QPL || comp == C_UADK) && st->step == WALK_LENGTHS) {
        size_t n = (size_t)st->normal * 4;
        if (st->payload_left < n)
            return MS_FAIL(r, MS_ERR_MULTIFD, st->pkt_off + 20,
                           "%s payload of %llu bytes cannot hold %u page "
                           "lengths",
                           comp_name(comp),
                           (unsigned long long)st->payload_left, st->normal);
        MS_TAKE_OR_RETURN(r, n, &p);
        uint64_t sum = 0;
        for (uint32_t i = 0; i < st->normal; i++) {
            uint32_t len = ms_be32(p + 4 * (size_t)i);
            if (len == 0 || len > st->page_size)
                return MS_FAIL(r, MS_ERR_MULTIFD, ms_rd_pos(r) - n + 4 * i,
                               "%s page length %u (page size %u)",
                               comp_name(comp), len, st->page_size);
            sum += len;
        }
        if (sum != st->payload_left - n)
            return MS_FAIL(r, MS_ERR_MULTIFD, st->pkt_off + 20,
                           "%s page lengths add up to %llu, the payload "
                           "holds %llu",
                           comp_name(comp), (unsigned long long)sum,
                           (unsigned long long)(st->payload_left - n));
        st->payload_left -= n;
        st->step = WALK_BLOBS;
    }
    size_t n = ms_rd_peek(r, st->payload_left, &p);
    ms_rd_skip(r, n);
    st->payload_left -= n;
    if (st->payload_left)
        return MS_NEXT_INPUT;
    st->step = M_STEP_FIRST;
    st->page_i = st->normal; /* pages not delivered: not decompressed */
    st->stage = MS_ZERO_PAGES;
    return MS_GO_ON;
}

static int read_zero_pages(ms_reader *r, ms_event *ev)
{
    m_state *st = MST(r);
    if (st->page_i < st->normal + st->zero) {
        page_event(st, ev, st->page_i++, MS_RAM_ZERO, NULL, 0, ms_rd_pos(r));
        return MS_NEXT_EVENT;
    }
    /* pages of a SYNC packet still belong to the epoch it closes */
    if (st->flags & FLAG_SYNC)
        st->syncs++;
    st->stage = MS_HEADER;
    return MS_GO_ON;
}

/* ---- device-state packets ----------------------------------------------------- */

/* The 276-byte device-state header: idstr, instance, payload size. */
static int read_device_packet_header(ms_reader *r)
{
    m_state *st = MST(r);
    const uint8_t *p;
    uint64_t base = st->pkt_off;
    MS_TAKE_OR_RETURN(r, MULTIFD_DEV_HDR - MULTIFD_HDR_SIZE, &p);
    /* idstr at packet offset 12 is where this take starts */
    if (!memchr(p, 0, 256))
        return MS_FAIL(r, MS_ERR_MULTIFD, base + 12,
                       "device-state idstr is not NUL terminated");
    memcpy(st->idstr, p, strlen((const char *)p) + 1);
    st->instance = ms_be32(p + 256);
    st->payload_left = ms_be32(p + 260);
    if (st->payload_left == 0)
        return MS_FAIL(r, MS_ERR_MULTIFD, base + 272,
                       "device-state packet with an empty payload");
    if (st->payload_left < VFIO_BUFFER_HDR)
        return MS_FAIL(r, MS_ERR_MULTIFD, base + 272,
                       "device-state payload of %llu bytes is shorter "
                       "than the 12-byte VFIO buffer header",
                       (unsigned long long)st->payload_left);
    if (st->payload_left > r->opt.max_record_payload)
        return MS_FAIL_LIMIT(r, MS_LIMIT_MAX_RECORD_PAYLOAD, base + 272,
                             "device-state payload of %llu bytes exceeds "
                             "max_record_payload",
                             (unsigned long long)st->payload_left);
    st->step = DEV_BUFFER_HEADER;
    return MS_GO_ON;
}

/* The VFIO buffer header {version, idx, flags} (big-endian since before
 * QEMU 10.0 was released). */
static int read_vfio_buffer_header(ms_reader *r)
{
    m_state *st = MST(r);
    const uint8_t *p;
    MS_TAKE_OR_RETURN(r, VFIO_BUFFER_HDR, &p);
    uint64_t at = ms_rd_pos(r) - VFIO_BUFFER_HDR;
    uint32_t version = ms_be32(p);
    st->idx = ms_be32(p + 4);
    st->dev_flags = ms_be32(p + 8);
    if (version != 0)
        return MS_FAIL(r, MS_ERR_MULTIFD, at,
                       "VFIO buffer version %u, must be 0", version);
    if (st->idx == VFIO_IDX_INVALID)
        return MS_FAIL(r, MS_ERR_MULTIFD, at + 4,
                       "VFIO buffer idx 0xffffffff is invalid");
    if (st->dev_flags & ~VFIO_BUFFER_CONFIG)
        return MS_FAIL(r, MS_ERR_MULTIFD, at + 8,
                       "unknown VFIO buffer flags 0x%x", st->dev_flags);
    st->payload_left -= VFIO_BUFFER_HDR;
    /* the config buffer is the main stream's config record: the
     * DEV_CONFIG_STATE marker, the config VMState, END_OF_STATE */
    if ((st->dev_flags & VFIO_BUFFER_CONFIG) &&
        st->payload_left < 2 * VFIO_MARKER_SIZE)
        return MS_FAIL(r, MS_ERR_MULTIFD, at,
                       "VFIO config buffer of %llu bytes cannot hold "
                       "DEV_CONFIG_STATE and END_OF_STATE",
                       (unsigned long long)st->payload_left);
    st->step = DEV_CONFIG_MARKER;
    return MS_GO_ON;
}

/* Device-state packet: header, VFIO buffer header, the config buffer's
 * leading marker looked at (taken and given back: the bytes go out as
 * data), then the packet event. */
static int read_device_header(ms_reader *r, ms_event *ev)
{
    m_state *st = MST(r);
    const uint8_t *p;
    int rc;
    if (st->step == DEV_PACKET_HEADER &&
        (rc = read_device_packet_header(r)) != MS_GO_ON)
        return rc;
    if (st->step == DEV_BUFFER_HEADER &&
        (rc = read_vfio_buffer_header(r)) != MS_GO_ON)
        return rc;
    int config = (st->dev_flags & VFIO_BUFFER_CONFIG) != 0;
    if (config) {
        uint64_t at = ms_rd_pos(r);
        MS_TAKE_OR_RETURN(r, VFIO_MARKER_SIZE, &p);
        uint64_t marker = ms_be64(p);
        ms_rd_untake(r);
        if (marker != VFIO_MARKER_BASE + VFIO_CONFIG_STATE)
            return MS_FAIL(r, MS_ERR_MULTIFD, at,
                           "VFIO config buffer starts with 0x%016llx, not "
                           "DEV_CONFIG_STATE (0xffffffffef100002)",
                           (unsigned long long)marker);
    }
    st->dev_off = 0;
    ev->kind = MS_EV_MULTIFD_PACKET;
    ev->offset = st->pkt_off;
    ev->length = MULTIFD_DEV_HDR + VFIO_BUFFER_HDR + st->payload_left;
    ms_multifd_info *m = &ev->u.mfd;
    *m = st->pending.u.mfd;
    m->idstr = st->idstr;
    m->instance_id = st->instance;
    m->buffer_version = 0;
    m->idx = st->idx;
    m->buffer_flags = st->dev_flags;
    m->config = config;
    m->payload_size = st->payload_left;
    st->stage = MS_DEVICE_DATA;
    return MS_NEXT_EVENT;
}

/* The config buffer's last 8 bytes, kept as they pass. */
static void keep_config_tail(m_state *st, const uint8_t *p, size_t n)
{
    size_t keep = VFIO_MARKER_SIZE;
    if (n >= keep) {
        memcpy(st->cfg_tail, p + n - keep, keep);
        return;
    }
    memmove(st->cfg_tail, st->cfg_tail + n, keep - n);
    memcpy(st->cfg_tail + keep - n, p, n);
}

static int read_device_data(ms_reader *r, ms_event *ev)
{
    m_state *st = MST(r);
    int config = (st->dev_flags & VFIO_BUFFER_CONFIG) != 0;
    if (st->payload_left == 0) {
        /* the config VMState ends with END_OF_STATE, which the receiver
         * checks after loading it */
        if (config && ms_be64(st->cfg_tail) != VFIO_MARKER_BASE + VFIO_END_OF_STATE)
            return MS_FAIL(r, MS_ERR_MULTIFD,
                           ms_rd_pos(r) - VFIO_MARKER_SIZE,
                           "VFIO config buffer ends with 0x%016llx, not "
                           "END_OF_STATE (0xffffffffef100001)",
                           (unsigned long long)ms_be64(st->cfg_tail));
        st->stage = MS_HEADER;
        return MS_GO_ON;
    }
    memset(ev, 0, sizeof *ev);
    ms_data_info *d;
    size_t n = ms_rd_view(r, ev, st->payload_left, &d);
    if (n == 0)
        return MS_NEXT_INPUT;
    if (config)
        keep_config_tail(st, d->data, n);
    d->phase = MS_PHASE_FINAL; /* device state over multifd is stop-copy */
    d->in_packet = 1;
    d->idstr = st->idstr;
    d->instance_id = st->instance;
    d->packet_idx = st->idx;
    d->config = config;
    d->image_offset = st->dev_off; /* within the buffer; the set places it */
    st->dev_off += n;
    st->payload_left -= n;
    return MS_NEXT_EVENT;
}

/* ---- salvage (spec/salvage.md) --------------------------------------------------- */

/* RESYNC: slide to the next plausible packet header, report the range. */
static int read_resync(ms_reader *r, ms_event *ev)
{
    m_state *st = MST(r);
    uint64_t unused;
    int rc = ms_salvage_slide(r, QEMU_MULTIFD_RESYNC_WINDOW, 0,
                              qemu_multifd_header_plausible, NULL, &unused);
    if (rc != 1)
        return rc;
    st->salv.to = ms_rd_pos(r);
    ms_salvage_event(&st->salv, ev);
    st->stage = MS_HEADER;
    if (st->page_i < st->lost_end) { /* the failed packet's pages */
        st->lost_from = st->salv.from;
        st->lost_to = st->salv.to;
        st->lost_next = MS_HEADER;
        st->stage = MS_LOST;
    }
    return MS_NEXT_EVENT;
}

/* MS_LOST: one damage event per run of consecutive page offsets of the
 * packet that cannot be decoded (pages page_i .. lost_end - 1), each
 * naming the range [lost_from, lost_to) (spec/salvage.md 5a). */
static int read_lost(ms_reader *r, ms_event *ev)
{
    m_state *st = MST(r);
    if (st->page_i >= st->lost_end) {
        st->stage = st->lost_next;
        return MS_GO_ON;
    }
    uint32_t i = st->page_i, k = i + 1;
    while (k < st->lost_end &&
           st->offsets[k] == st->offsets[k - 1] + st->page_size)
        k++;
    st->page_i = k;
    ev->kind = MS_EV_DAMAGE;
    ev->offset = st->lost_from;
    ev->length = st->lost_to - st->lost_from;
    ms_damage_info *d = &ev->u.damage;
    d->cause = MS_ERR_DECOMPRESS;
    d->cause_offset = st->lost_from;
    d->detail = "RAM pages lost: their packet's compressed bytes cannot be "
                "decoded after damage in the channel";
    d->has_image = 1;
    d->idstr = st->block; /* the RAM block; image offsets are its offsets */
    d->length_known = 1;
    d->image_offset = st->offsets[i];
    d->image_length = (uint64_t)(k - i) * st->page_size;
    return MS_NEXT_EVENT;
}

/* A packet failed: the range starts at it (not before the init packet
 * was read).  A compressed channel's stream runs across its packets: after
 * damage no compressed page can be decoded and trusted, so later packets'
 * normal pages are listed lost (skip_lost_payload), and so are the pages
 * of a compressed packet that failed while its pages were read. */
static int m_salvage(ms_reader *r, ms_event *ev)
{
    m_state *st = MST(r);
    if (st->stage == MS_INIT || st->stage == MS_RESYNC ||
        st->stage == MS_LOST || !ms_salvage_can(&r->err))
        return MS_NEXT_ERROR;
    /* a compressed packet that failed: its pages not yet out are lost */
    int listed = st->stage == MS_PAGES && (st->flags & FLAG_COMPRESSION);
    st->lost_end = listed ? st->normal + st->zero : 0;
    if (!listed)
        st->page_i = 0;
    ms_salvage_take_error(r, &st->salv, st->pkt_off, NULL, NULL);
    st->comp_lost = 1;
    st->deferred_bad = NULL;
    st->stage = MS_RESYNC;
    return ms_run_stages(r, ev, r->ops->stages, &st->stage);
}

/* ---- framing ops ---------------------------------------------------------------- */

/* The diagram at the top of this file, stage by stage. */
#define AT(stage) [(stage) - MS_INIT] /* the table starts at MS_INIT */
static const ms_stage m_stages[] = {
    AT(MS_INIT) = {"INIT", .emit = read_init},
    AT(MS_HEADER) = {"HEADER", .emit = read_header},
    AT(MS_RAM_HEADER) = {"RAM_HEADER", .walk = read_ram_header},
    AT(MS_RAM_OFFSETS) = {"RAM_OFFSETS", .emit = read_ram_offsets},
    AT(MS_PAGES) = {"PAGES", .emit = read_pages},
    AT(MS_ZERO_PAGES) = {"ZERO_PAGES", .emit = read_zero_pages},
    AT(MS_DEVICE_HEADER) = {"DEVICE_HEADER", .emit = read_device_header},
    AT(MS_DEVICE_DATA) = {"DEVICE_DATA", .emit = read_device_data},
    AT(MS_WALK) = {"WALK", .walk = read_walk},
    AT(MS_RESYNC) = {"RESYNC", .emit = read_resync},
    AT(MS_LOST) = {"LOST", .emit = read_lost},
};
#undef AT
static const ms_stage_table m_table = MS_STAGE_TABLE(MS_INIT, m_stages);

static int m_finish(ms_reader *r)
{
    m_state *st = MST(r);
    if (st->stage == MS_HEADER && r->stash_len == 0)
        return 0; /* a packet boundary */
    if (st->stage == MS_INIT)
        return MS_FAIL(r, MS_ERR_TRUNCATED, r->offset,
                       "input ends inside the 64-byte init packet");
    if (st->stage == MS_RESYNC)
        return ms_salvage_finish(r, &st->salv);
    return MS_FAIL(r, MS_ERR_TRUNCATED, r->offset,
                   "channel %u: input ends inside the packet at %llu",
                   st->channel_id, (unsigned long long)st->pkt_off);
}

static void m_destroy(ms_reader *r)
{
    m_state *st = MST(r);
    if (!st)
        return;
    ms_free(ALLOC(r), st->offsets);
    ms_free(ALLOC(r), st->page_buf);
    if (st->zs_ready)
        inflateEnd(&st->zs);
    ZSTD_freeDStream(st->zd);
    ms_framing_free(r);
}

static int ms_qemu_multifd_init(ms_reader *r)
{
    m_state *st = ms_framing_new(r, sizeof *st);
    if (!st)
        return -1;
    uint32_t ps = r->opt.qemu_page_size ? r->opt.qemu_page_size : 4096;
    if (ps < 512 || ps > MULTIFD_PACKET_DATA || (ps & (ps - 1)))
        return MS_FAIL(r, MS_ERR_USAGE, 0, "qemu_page_size %u", ps);
    st->page_size = ps;
    /* offsets of one packet: bounded by the packet size / page size */
    st->offsets = ms_alloc(ALLOC(r), sizeof *st->offsets *
                                         (MULTIFD_PACKET_DATA / ps));
    if (!st->offsets)
        return MS_FAIL(r, MS_ERR_NO_MEMORY, 0, "page offsets");
    return ms_rd_reserve(r, MULTIFD_RAM_FIXED + 8 * (MULTIFD_PACKET_DATA / ps));
}

const ms_framing_ops ms_qemu_multifd_ops = {
    .format = MS_FORMAT_QEMU_MULTIFD,
    .init = ms_qemu_multifd_init,
    .stages = &m_table,
    .stage_at = offsetof(m_state, stage),
    .finish = m_finish,
    .destroy = m_destroy,
    .salvage = m_salvage,
};
