/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* A set of channel streams of one migration (spec/migstream.md section 6).
 *
 * The caller runs one reader per channel and hands every event here.  The
 * set checks what spans channels and reassembles device-state packets:
 * per (device, image) it delivers packet bytes in idx order.  A packet that
 * arrives in order passes straight through (its DATA views are re-emitted,
 * no copy); one that arrives early is held — copied, or, when the caller
 * promised stable input, kept as views — until the packets before it came.
 * Held bytes are bounded by max_buffered_bytes.
 *
 * The reassembled image's hash (spec 5.4): migstream 2.x hashes the data
 * packets' unit hashes in idx order, taken from the channel readers' last
 * DATA event of each packet (ms_data_info.unit_hash), so the set never
 * hashes data bytes; 1.x and QEMU device state hash the bytes in idx order.
 */
#include <stdio.h>
#include <string.h>

#include "common.h"
#include "rp_check.h"

typedef struct set_piece {
    const uint8_t *p;
    size_t n;
    uint64_t offset;
} set_piece;

/* A packet held until its turn. */
typedef struct set_packet {
    uint32_t idx;
    int config, complete;
    uint32_t channel;
    uint64_t offset, size, got;
    uint8_t *copy;      /* copy mode: `size` bytes */
    uint64_t unit_hash; /* migstream 2.x: from its last DATA event */
    set_piece *pieces;  /* stable mode: views */
    size_t npieces, piececap, emitted; /* emitted: pieces already out */
} set_packet;

typedef struct set_image {
    uint32_t device, seq;
    int qemu; /* QEMU multifd device state: no IMAGE_END; the config
                 packet's idx closes it and nothing states length or hash */
    int begun;
    ms_phase phase;
    ms_transport transport;
    int ended;
    ms_image_info end;
    uint64_t end_offset;
    uint32_t end_channel;
    /* packets */
    int has_packets;
    uint64_t first_packet_offset;
    uint32_t first_packet_channel;
    uint8_t *seen; /* bitmap of idx seen */
    size_t seen_cap;
    uint32_t max_data_idx_plus1;
    int config_seen;
    uint32_t config_idx;
    uint32_t next_idx;       /* next idx to deliver */
    uint64_t length;         /* data bytes delivered */
    uint64_t config_length;  /* config bytes delivered */
    uint64_t data_hash;      /* digest of the data, once the config starts */
    ms_hash_state *hash;      /* data, then config (bytes, or 2.x unit hashes) */
    int unit_hashes;         /* migstream 2.x: `hash` takes unit hashes */
    uint64_t config_unit_hash; /* 2.x: the config packet's unit hash */
    int config_done, assembled;
    ms_u32map held; /* idx -> slot in `held_pk` */
    set_packet **held_pk;
    size_t held_cap;
} set_image;

typedef struct set_device {
    uint32_t handle, instance_id, flags;
    ms_payload_kind kind;
    char *idstr;
    uint8_t *compat;
    uint32_t idstr_len, compat_len;
    int has_home;
    uint32_t home_index; /* channel_index of the channel its images use */
    set_image **images;
    size_t nimages, imgcap;
    ms_u32map by_seq;
} set_device;

typedef struct set_channel {
    int seen_header, done;
    ms_stream_info hdr;
    int qblock; /* QEMU multifd: the current RAM packet's block, or -1 */
    uint64_t syncs; /* QEMU multifd: SYNC packets on this channel */
    uint64_t end;   /* end of the last element seen: where a tail is lost */
    /* the packet this channel is streaming */
    set_image *pk_img;
    set_packet *pk_held; /* NULL: passing straight through */
    uint64_t pk_left;    /* its bytes still to come */
    uint32_t pk_idx;
    int pk_config;
} set_channel;

#define QUEUE_CAP 4

struct ms_set {
    ms_options opt;
    ms_error_info err;
    set_channel *chans;
    size_t nchans;
    int have_first;
    ms_stream_info first;
    uint32_t *slot_of_index; /* channel_index -> slot + 1 (0: none) */
    set_device *devs;
    size_t ndevs, devcap;
    ms_u32map devmap;
    uint64_t held_bytes;
    ms_event queue[QUEUE_CAP];
    size_t qhead, qlen;
    set_image **drain; /* images whose next packet is held and complete */
    size_t ndrain, draincap;

    /* QEMU: one main channel (QEVM) and multifd channels */
    int is_mig, is_qemu;
    uint32_t mains, main_slot;
    int main_has_uuid, have_mfd_uuid;
    uint8_t main_uuid[16], mfd_uuid[16];
    uint8_t *mfd_ids; /* bitmap of multifd channel ids seen */
    size_t mfd_ids_cap;
    uint32_t mfd_count, mfd_max_id;
    uint8_t *pkt_nums; /* bitmap of multifd packet numbers seen */
    size_t pkt_nums_cap;
    uint64_t pkt_count, pkt_max; /* numbers seen, the highest + 1 */
    uint64_t pkt_stale; /* QEMU < 9.0: page-less copies of a number */
    /* which QEMU wrote the channels, as the packets show it: zero pages
     * or a header-only SYNC (>= 9.0, numbers 0..n-1 with no gap); a SYNC
     * packet with pages or a page-less stale copy (< 9.0, gaps) */
    int mfd_dense, mfd_sparse;
    /* the main channel's sync points: RAM EOS markers until the first
     * MULTIFD_FLUSH, MULTIFD_FLUSH markers from then on */
    uint64_t main_syncs;
    int main_flush_seen;
    const char *comp; /* compression of the first packet with pages */
    int device_state;
    /* postcopy: the main stream advised postcopy-ram (POSTCOPY_ADVISE with
     * arguments); the postcopy-preempt channel, if given */
    int postcopy_ram;
    uint32_t preempts, preempt_slot;
    struct qblock {
        char name[256];
        uint64_t used_length;
    } *qblocks;
    size_t nqblocks, qblockcap;
    /* The block list is complete once the main channel goes on past its
     * RAM_BLOCK entries.  Multifd packets decoded before that (channels
     * fed concurrently, or released before the list was read) naming a
     * block not listed yet are checked then, not failed at once. */
    int qblocks_complete;
    struct qblock_pending {
        char name[256];
        uint32_t slot;
        uint64_t offset; /* the block name's offset in the packet */
    } *qpending;
    size_t nqpending, qpendingcap;
    struct qvfio {
        char idstr[256];
        uint32_t instance_id;
    } *qvfio; /* VFIO devices the main stream has */
    size_t nqvfio, qvfiocap;
    uint32_t next_qhandle;
    uint8_t *drained_last_copy; /* bytes of the last DATA event drained */
    rp_check *rpc; /* QEMU main stream vs its return path (rp_check.c) */
};

#define ALLOC(s) (&(s)->opt.allocator)

/* set_fail: an error of one channel (or NO_CHANNEL); set_fail_limit: an
 * MS_ERR_LIMIT naming the ms_options limit exceeded. */
#define set_fail(s, code, channel, offset, ...)                               \
    ms_fail_channel(&(s)->err, code, MS_LIMIT_NONE, channel, offset,         \
                    __VA_ARGS__)
#define set_fail_limit(s, limit, channel, offset, ...)                        \
    ms_fail_channel(&(s)->err, MS_ERR_LIMIT, limit, channel, offset,         \
                    __VA_ARGS__)
#define NO_CHANNEL UINT32_MAX

ms_set *ms_set_create(const ms_options *opt)
{
    ms_options o;
    if (ms_options_import(&o, opt) < 0)
        return NULL;
    ms_set *s = ms_calloc(&o.allocator, 1, sizeof *s);
    if (s)
        s->opt = o;
    return s;
}

static void free_packet(ms_set *s, set_packet *pk)
{
    if (!pk)
        return;
    ms_free(ALLOC(s), pk->copy);
    ms_free(ALLOC(s), pk->pieces);
    ms_free(ALLOC(s), pk);
}

static void free_image(ms_set *s, set_image *im)
{
    for (size_t i = 0; i < im->held_cap; i++)
        free_packet(s, im->held_pk[i]);
    ms_free(ALLOC(s), im->held_pk);
    ms_u32map_free(ALLOC(s), &im->held);
    ms_free(ALLOC(s), im->seen);
    ms_hash_state_free(ALLOC(s), im->hash);
    ms_free(ALLOC(s), im);
}

void ms_set_free(ms_set *s)
{
    if (!s)
        return;
    rp_check_free(s->rpc);
    for (size_t i = 0; i < s->ndevs; i++) {
        set_device *d = &s->devs[i];
        for (size_t j = 0; j < d->nimages; j++)
            free_image(s, d->images[j]);
        ms_free(ALLOC(s), d->images);
        ms_u32map_free(ALLOC(s), &d->by_seq);
        ms_free(ALLOC(s), d->idstr);
        ms_free(ALLOC(s), d->compat);
    }
    ms_free(ALLOC(s), s->devs);
    ms_u32map_free(ALLOC(s), &s->devmap);
    ms_free(ALLOC(s), s->chans);
    ms_free(ALLOC(s), s->slot_of_index);
    ms_free(ALLOC(s), s->drain);
    ms_free(ALLOC(s), s->drained_last_copy);
    ms_free(ALLOC(s), s->mfd_ids);
    ms_free(ALLOC(s), s->pkt_nums);
    ms_free(ALLOC(s), s->qblocks);
    ms_free(ALLOC(s), s->qpending);
    ms_free(ALLOC(s), s->qvfio);
    ms_free(ALLOC(s), s);
}

const ms_error_info *ms_set_error(const ms_set *s) { return &s->err; }

static int push_event(ms_set *s, const ms_event *ev)
{
    if (s->qlen == QUEUE_CAP)
        return set_fail(s, MS_ERR_USAGE, NO_CHANNEL, 0,
                        "internal: set event queue full");
    s->queue[(s->qhead + s->qlen) % QUEUE_CAP] = *ev;
    s->qlen++;
    return 0;
}

/* ---- lookups ------------------------------------------------------------- */

static set_channel *channel_of(ms_set *s, uint32_t slot)
{
    if (slot >= s->opt.max_channels) {
        set_fail_limit(s, MS_LIMIT_MAX_CHANNELS, slot, 0,
                       "channel slot %u exceeds max_channels (%u)", slot,
                       s->opt.max_channels);
        return NULL;
    }
    if (slot >= s->nchans &&
        ms_grow(ALLOC(s), (void **)&s->chans, sizeof *s->chans, &s->nchans,
                (size_t)slot + 1) < 0) {
        set_fail(s, MS_ERR_NO_MEMORY, slot, 0, "channel table");
        return NULL;
    }
    return &s->chans[slot];
}

static set_device *device_of(ms_set *s, uint32_t handle)
{
    uint32_t i;
    return ms_u32map_get(&s->devmap, handle, &i) ? &s->devs[i] : NULL;
}

/* The image (device, seq), created on first sight: packets of an image
 * can arrive on a channel read before the image's home channel. */
static set_image *image_of(ms_set *s, uint32_t channel, uint64_t off,
                           uint32_t handle, uint32_t seq)
{
    set_device *d = device_of(s, handle);
    if (!d) {
        set_fail(s, MS_ERR_DEVICE_UNKNOWN, channel, off,
                 "device %u was not declared", handle);
        return NULL;
    }
    uint32_t i;
    if (ms_u32map_get(&d->by_seq, seq, &i))
        return d->images[i];
    if (seq >= s->opt.max_images) {
        set_fail_limit(s, MS_LIMIT_MAX_IMAGES, channel, off,
                       "device %s: image %u exceeds max_images (%u)", d->idstr,
                       seq, s->opt.max_images);
        return NULL;
    }
    set_image *im = ms_calloc(ALLOC(s), 1, sizeof *im);
    if (!im ||
        ms_grow(ALLOC(s), (void **)&d->images, sizeof *d->images, &d->imgcap,
                d->nimages + 1) < 0 ||
        ms_u32map_put(ALLOC(s), &d->by_seq, seq, (uint32_t)d->nimages) < 0) {
        ms_free(ALLOC(s), im);
        set_fail(s, MS_ERR_NO_MEMORY, channel, off, "image table");
        return NULL;
    }
    d->images[d->nimages++] = im;
    im->device = handle;
    im->seq = seq;
    return im;
}

static const char *idstr_of(ms_set *s, uint32_t handle)
{
    set_device *d = device_of(s, handle);
    return d ? d->idstr : "?";
}

/* ---- channel headers and devices ----------------------------------------- */

/* A bitmap bit: returns 1 if it was already set, 0 if newly set, -1 on
 * allocation failure.  `limit` bounds the bitmap. */
static int bit_test_set(ms_set *s, uint8_t **map, size_t *cap, uint64_t bit)
{
    size_t byte = (size_t)(bit / 8);
    if (byte >= *cap &&
        ms_grow(ALLOC(s), (void **)map, 1, cap, byte + 1) < 0)
        return -1;
    uint8_t m = (uint8_t)(1u << (bit % 8));
    int was = ((*map)[byte] & m) != 0;
    (*map)[byte] |= m;
    return was;
}

static int observe_qemu_header(ms_set *s, uint32_t slot, set_channel *c,
                               const ms_stream_info *h)
{
    if (s->is_mig)
        return set_fail(s, MS_ERR_CHANNEL_SET, slot, 0,
                        "a QEMU stream file among migstream files");
    s->is_qemu = 1;
    c->qblock = -1;
    if (h->format == MS_FORMAT_QEMU_PREEMPT) {
        if (s->preempts++)
            return set_fail(s, MS_ERR_CHANNEL_SET, slot, 0,
                            "a second postcopy-preempt channel; a migration "
                            "has one");
        s->preempt_slot = slot;
    } else if (h->format != MS_FORMAT_QEMU_MULTIFD) {
        if (s->mains++)
            return set_fail(s, MS_ERR_CHANNEL_SET, slot, 0,
                            "a second QEMU main channel (QEVM); a migration "
                            "has one");
        s->main_slot = slot;
    } else {
        uint32_t id = h->channel_index;
        if (id >= s->opt.max_channels)
            return set_fail_limit(
                s, MS_LIMIT_MAX_CHANNELS, slot, 24,
                "multifd channel id %u exceeds max_channels (%u)", id,
                s->opt.max_channels);
        int was = bit_test_set(s, &s->mfd_ids, &s->mfd_ids_cap, id);
        if (was < 0)
            return set_fail(s, MS_ERR_NO_MEMORY, slot, 0, "channel ids");
        if (was)
            return set_fail(s, MS_ERR_CHANNEL_SET, slot, 24,
                            "multifd channel id %u appears twice", id);
        if (!s->have_mfd_uuid) {
            memcpy(s->mfd_uuid, h->uuid, 16);
            s->have_mfd_uuid = 1;
        } else if (memcmp(s->mfd_uuid, h->uuid, 16) != 0) {
            return set_fail(s, MS_ERR_CHANNEL_UUID, slot, 8,
                            "multifd channel %u has another VM UUID than the "
                            "other channels: it belongs to another migration",
                            id);
        }
        s->mfd_count++;
        if (id + 1 > s->mfd_max_id)
            s->mfd_max_id = id + 1;
    }
    c->seen_header = 1;
    c->hdr = *h;
    return 0;
}

static rp_check *rpc_of(ms_set *s, uint32_t slot)
{
    if (!s->rpc && !(s->rpc = rp_check_new(&s->opt)))
        set_fail(s, MS_ERR_NO_MEMORY, slot, 0, "return-path check");
    return s->rpc;
}

/* A QEMU return path: checked against the main stream (rp_check.c). */
static int observe_rp_header(ms_set *s, uint32_t slot, set_channel *c,
                             const ms_stream_info *h)
{
    if (s->is_mig)
        return set_fail(s, MS_ERR_CHANNEL_SET, slot, 0,
                        "a QEMU return path among migstream files");
    rp_check *rpc = rpc_of(s, slot);
    if (!rpc)
        return -1;
    s->is_qemu = 1;
    c->qblock = -1;
    c->seen_header = 1;
    c->hdr = *h;
    return rp_check_rp_header(rpc, slot, &s->err);
}

static int observe_header(ms_set *s, uint32_t slot, const ms_event *ev)
{
    set_channel *c = channel_of(s, slot);
    if (!c)
        return -1;
    const ms_stream_info *h = &ev->u.stream;
    if (c->seen_header)
        return set_fail(s, MS_ERR_USAGE, slot, 0,
                        "a second stream header for one channel slot");
    /* a raw driver payload, or a CPR state stream (the fds and devices a
     * cpr-transfer destination takes over): each stands alone */
    if (h->format == MS_FORMAT_PAYLOAD || h->format == MS_FORMAT_QEMU_CPR) {
        c->seen_header = 1;
        c->hdr = *h;
        return 0;
    }
    if (h->format == MS_FORMAT_QEMU_RETURN_PATH)
        return observe_rp_header(s, slot, c, h);
    if (h->format != MS_FORMAT_MIGSTREAM)
        return observe_qemu_header(s, slot, c, h);
    if (s->is_qemu)
        return set_fail(s, MS_ERR_CHANNEL_SET, slot, 0,
                        "a migstream file among QEMU stream files");
    s->is_mig = 1;
    if (!s->have_first) {
        if (h->channel_count > s->opt.max_channels)
            return set_fail_limit(s, MS_LIMIT_MAX_CHANNELS, slot, 36,
                                  "channel_count %u exceeds max_channels (%u)",
                                  h->channel_count, s->opt.max_channels);
        s->slot_of_index =
            ms_calloc(ALLOC(s), h->channel_count, sizeof *s->slot_of_index);
        if (!s->slot_of_index)
            return set_fail(s, MS_ERR_NO_MEMORY, slot, 0, "channel index");
        s->first = *h;
        s->have_first = 1;
    } else {
        if (memcmp(h->uuid, s->first.uuid, 16) != 0)
            return set_fail(s, MS_ERR_CHANNEL_UUID, slot, 16,
                            "stream UUID differs from the first channel's: "
                            "this channel belongs to another migration");
        if (h->channel_count != s->first.channel_count)
            return set_fail(s, MS_ERR_CHANNEL_SET, slot, 36,
                            "channel_count %u, the first channel says %u",
                            h->channel_count, s->first.channel_count);
        if (h->version_major != s->first.version_major)
            return set_fail(s, MS_ERR_CHANNEL_SET, slot, 8,
                            "format version differs between channels");
    }
    if (s->slot_of_index[h->channel_index])
        return set_fail(s, MS_ERR_CHANNEL_SET, slot, 32,
                        "channel index %u appears twice", h->channel_index);
    s->slot_of_index[h->channel_index] = slot + 1;
    c->seen_header = 1;
    c->hdr = *h;
    return 0;
}

static int same_device(const set_device *d, const ms_device_info *i)
{
    return d->instance_id == i->instance_id && d->kind == i->payload_kind &&
           d->flags == i->flags && d->idstr_len == i->idstr_len &&
           d->compat_len == i->compat_len &&
           memcmp(d->idstr, i->idstr, i->idstr_len) == 0 &&
           (i->compat_len == 0 ||
            memcmp(d->compat, i->compat, i->compat_len) == 0);
}

static int observe_device(ms_set *s, uint32_t slot, const ms_event *ev)
{
    const ms_device_info *i = &ev->u.device;
    set_device *d = device_of(s, i->handle);
    if (d) {
        if (!same_device(d, i))
            return set_fail(s, MS_ERR_DEVICE_DUPLICATE, slot, ev->offset,
                            "device %u (%s) is declared differently than in "
                            "another channel",
                            i->handle, d->idstr);
        return 0;
    }
    if (s->ndevs >= s->opt.max_devices)
        return set_fail_limit(s, MS_LIMIT_MAX_DEVICES, slot, ev->offset,
                              "more than max_devices (%u) devices",
                              s->opt.max_devices);
    if (ms_grow(ALLOC(s), (void **)&s->devs, sizeof *s->devs, &s->devcap,
                s->ndevs + 1) < 0)
        return set_fail(s, MS_ERR_NO_MEMORY, slot, ev->offset, "devices");
    d = &s->devs[s->ndevs];
    memset(d, 0, sizeof *d);
    d->idstr = ms_alloc(ALLOC(s), i->idstr_len + 1);
    d->compat = ms_alloc(ALLOC(s), i->compat_len);
    if (!d->idstr || !d->compat ||
        ms_u32map_put(ALLOC(s), &s->devmap, i->handle, (uint32_t)s->ndevs) <
            0) {
        ms_free(ALLOC(s), d->idstr);
        ms_free(ALLOC(s), d->compat);
        return set_fail(s, MS_ERR_NO_MEMORY, slot, ev->offset, "device");
    }
    s->ndevs++;
    memcpy(d->idstr, i->idstr, i->idstr_len);
    d->idstr[i->idstr_len] = 0;
    if (i->compat_len)
        memcpy(d->compat, i->compat, i->compat_len);
    d->handle = i->handle;
    d->instance_id = i->instance_id;
    d->kind = i->payload_kind;
    d->flags = i->flags;
    d->idstr_len = i->idstr_len;
    d->compat_len = i->compat_len;
    return 0;
}

/* ---- images -------------------------------------------------------------- */

static int try_assemble(ms_set *s, set_image *im);

static int observe_image_begin(ms_set *s, uint32_t slot, const ms_event *ev)
{
    const ms_image_info *i = &ev->u.image;
    set_device *d = device_of(s, i->device);
    uint32_t index = s->chans[slot].hdr.channel_index;
    if (d && d->has_home && d->home_index != index)
        return set_fail(s, MS_ERR_IMAGE_STATE, slot, ev->offset,
                        "device %s has images on channels %u and %u; all of "
                        "a device's images use one channel",
                        d->idstr, d->home_index, index);
    set_image *im = image_of(s, slot, ev->offset, i->device, i->seq);
    if (!im)
        return -1;
    d = device_of(s, i->device);
    d->has_home = 1;
    d->home_index = index;
    if (im->begun)
        return set_fail(s, MS_ERR_IMAGE_SEQUENCE, slot, ev->offset,
                        "device %s: image %u begins twice", d->idstr, i->seq);
    if (im->has_packets && i->transport != MS_TRANSPORT_PACKETS)
        return set_fail(s, MS_ERR_PACKET_ORPHAN, im->first_packet_channel,
                        im->first_packet_offset,
                        "device %s: packets for image %u, a chunk-mode image",
                        d->idstr, i->seq);
    im->begun = 1;
    im->phase = i->phase;
    im->transport = i->transport;
    return 0;
}

static int observe_image_end(ms_set *s, uint32_t slot, const ms_event *ev)
{
    const ms_image_info *i = &ev->u.image;
    set_image *im = image_of(s, slot, ev->offset, i->device, i->seq);
    if (!im)
        return -1;
    im->ended = 1;
    im->end = *i;
    im->end_offset = ev->offset;
    im->end_channel = slot;
    if (im->transport != MS_TRANSPORT_PACKETS)
        return 0;
    const char *name = idstr_of(s, i->device);
    if (im->config_seen && im->config_idx != i->unit_count)
        return set_fail(s, MS_ERR_PACKET_CONFIG, slot, ev->offset,
                        "device %s image %u: config packet at idx %u, "
                        "IMAGE_END says %llu data packets",
                        name, i->seq, im->config_idx,
                        (unsigned long long)i->unit_count);
    if (im->max_data_idx_plus1 > i->unit_count)
        return set_fail(s, MS_ERR_PACKET_CONFIG, slot, ev->offset,
                        "device %s image %u: data packet idx %u, IMAGE_END "
                        "says %llu data packets",
                        name, i->seq, im->max_data_idx_plus1 - 1,
                        (unsigned long long)i->unit_count);
    return try_assemble(s, im);
}

/* Both the IMAGE_END and the config packet's last byte are in. */
static int try_assemble(ms_set *s, set_image *im)
{
    if (!im->ended || !im->config_done || im->assembled)
        return 0;
    ms_image_info *e = &im->end;
    const char *name = idstr_of(s, im->device);
    uint32_t ch = im->end_channel;
    if (im->qemu) { /* nothing states them: report what arrived */
        e->device = im->device;
        e->length = im->length;
        e->config_length = im->config_length;
        e->hash = im->data_hash;
        e->config_hash = im->hash ? ms_hash_digest(im->hash) : 0;
    }
    if (im->length != e->length)
        return set_fail(s, MS_ERR_IMAGE_LENGTH, ch, im->end_offset,
                        "device %s image %u: reassembled %llu bytes, "
                        "IMAGE_END says %llu",
                        name, im->seq, (unsigned long long)im->length,
                        (unsigned long long)e->length);
    if (im->config_length != e->config_length)
        return set_fail(s, MS_ERR_IMAGE_LENGTH, ch, im->end_offset,
                        "device %s image %u: config packet of %llu bytes, "
                        "IMAGE_END says %llu",
                        name, im->seq, (unsigned long long)im->config_length,
                        (unsigned long long)e->config_length);
    /* salvage (spec/salvage.md 5): a damaged packet's event may come after
     * its image was assembled (channels decode concurrently); each
     * packet's bytes are still verified by its own payload check */
    if (s->opt.verify_checks && !s->opt.salvage) {
        uint64_t ch_hash = im->unit_hashes ? im->config_unit_hash
                                           : ms_hash_digest(im->hash);
        if (im->data_hash != e->hash)
            return set_fail(s, MS_ERR_IMAGE_HASH, ch, im->end_offset,
                            "device %s image %u: reassembled hash %016llx, "
                            "IMAGE_END says %016llx",
                            name, im->seq, (unsigned long long)im->data_hash,
                            (unsigned long long)e->hash);
        if (ch_hash != e->config_hash)
            return set_fail(s, MS_ERR_IMAGE_HASH, ch, im->end_offset,
                            "device %s image %u: config hash %016llx, "
                            "IMAGE_END says %016llx",
                            name, im->seq, (unsigned long long)ch_hash,
                            (unsigned long long)e->config_hash);
    }
    im->assembled = 1;
    ms_hash_state_free(ALLOC(s), im->hash);
    im->hash = NULL;
    ms_event out = {0};
    out.kind = MS_EV_IMAGE_ASSEMBLED;
    out.offset = im->end_offset;
    out.channel = ch;
    out.u.image = *e;
    out.u.image.phase = im->phase;
    out.u.image.transport = MS_TRANSPORT_PACKETS;
    return push_event(s, &out);
}

/* ---- packet delivery (in idx order) --------------------------------------- */

static int deliver_start(ms_set *s, set_image *im, int config)
{
    if (!im->hash) {
        if (!(im->hash = ms_hash_state_new(ALLOC(s))))
            return set_fail(s, MS_ERR_NO_MEMORY, NO_CHANNEL, 0, "hash");
        ms_hash_reset(im->hash, 0);
        im->unit_hashes = !im->qemu && s->first.format == MS_FORMAT_MIGSTREAM &&
                          s->first.version_major >= 2;
    }
    if (config) {
        /* The data is complete: keep its hash, hash the config next. */
        im->data_hash = ms_hash_digest(im->hash);
        ms_hash_reset(im->hash, 0);
        im->config_unit_hash = ms_hash64("", 0, 0); /* until its DATA ends */
    }
    return 0;
}

/* The delivered packet's last bytes went out in *out (2.x: its unit hash
 * is `unit_hash`): say so on the event, and hash the unit hash. */
static void deliver_unit_end(ms_set *s, set_image *im, ms_event *out,
                             uint64_t unit_hash)
{
    ms_data_info *d = &out->u.data;
    d->unit_end = 1;
    d->unit_hash = unit_hash;
    if (!s->opt.verify_checks || !im->unit_hashes)
        return;
    if (d->config) {
        im->config_unit_hash = unit_hash;
    } else {
        ms_hash_update_le64(im->hash, unit_hash);
    }
}

/* Account delivered bytes and make the outgoing DATA event. */
static void deliver_bytes(ms_set *s, set_image *im, ms_event *out,
                          uint32_t channel, uint32_t idx, int config,
                          const uint8_t *p, size_t n, uint64_t offset,
                          int zero_copy)
{
    if (s->opt.verify_checks && !im->unit_hashes)
        ms_hash_update(im->hash, p, n);
    memset(out, 0, sizeof *out);
    ms_data_info *d = ms_ev_data(out, p, n, offset, zero_copy);
    out->channel = channel;
    d->device = im->device;
    d->seq = im->seq;
    d->phase = im->begun ? im->phase : MS_PHASE_NONE;
    d->in_packet = 1;
    d->packet_idx = idx;
    d->config = config;
    d->image_offset = config ? im->config_length : im->length;
    set_device *dev = device_of(s, im->device);
    if (dev) {
        d->idstr = dev->idstr;
        d->instance_id = dev->instance_id;
    }
    if (config)
        im->config_length += n;
    else
        im->length += n;
}

static int add_drain(ms_set *s, set_image *im)
{
    uint32_t slot;
    if (!ms_u32map_get(&im->held, im->next_idx, &slot) ||
        !im->held_pk[slot]->complete)
        return 0;
    for (size_t i = 0; i < s->ndrain; i++)
        if (s->drain[i] == im)
            return 0;
    if (ms_grow(ALLOC(s), (void **)&s->drain, sizeof *s->drain, &s->draincap,
                s->ndrain + 1) < 0)
        return set_fail(s, MS_ERR_NO_MEMORY, NO_CHANNEL, 0, "drain list");
    s->drain[s->ndrain++] = im;
    return 0;
}

/* A packet was fully delivered: move on to the next idx. */
static int deliver_end(ms_set *s, set_image *im, int config)
{
    im->next_idx++;
    if (config) {
        im->config_done = 1;
        if (try_assemble(s, im) < 0)
            return -1;
    }
    return add_drain(s, im);
}

static int mark_seen(ms_set *s, set_image *im, uint32_t slot, uint64_t off,
                     uint32_t idx)
{
    if (idx >= s->opt.max_packets)
        return set_fail_limit(s, MS_LIMIT_MAX_PACKETS, slot, off,
                              "packet idx %u exceeds max_packets (%u)", idx,
                              s->opt.max_packets);
    size_t byte = idx / 8;
    if (byte >= im->seen_cap &&
        ms_grow(ALLOC(s), (void **)&im->seen, 1, &im->seen_cap, byte + 1) < 0)
        return set_fail(s, MS_ERR_NO_MEMORY, slot, off, "packet bitmap");
    if (im->seen[byte] & (1u << (idx % 8)))
        return set_fail(s, MS_ERR_PACKET_DUPLICATE, slot, off,
                        "device %s image %u: packet idx %u seen twice",
                        idstr_of(s, im->device), im->seq, idx);
    im->seen[byte] |= (uint8_t)(1u << (idx % 8));
    return 0;
}

static int check_packet_rules(ms_set *s, set_image *im, uint32_t slot,
                              const ms_event *ev)
{
    const ms_packet_info *p = &ev->u.packet;
    const char *name = idstr_of(s, p->device);
    if (im->begun && im->transport != MS_TRANSPORT_PACKETS)
        return set_fail(s, MS_ERR_PACKET_ORPHAN, slot, ev->offset,
                        "device %s: packet for image %u, a chunk-mode image",
                        name, p->seq);
    if (mark_seen(s, im, slot, ev->offset, p->idx) < 0)
        return -1;
    if (p->config) {
        if (im->config_seen)
            return set_fail(s, MS_ERR_PACKET_CONFIG, slot, ev->offset,
                            "device %s image %u: second config packet (idx "
                            "%u, first at idx %u)",
                            name, p->seq, p->idx, im->config_idx);
        if (im->max_data_idx_plus1 > p->idx)
            return set_fail(s, MS_ERR_PACKET_CONFIG, slot, ev->offset,
                            "device %s image %u: config packet idx %u below "
                            "data packet idx %u",
                            name, p->seq, p->idx, im->max_data_idx_plus1 - 1);
        if (im->ended && p->idx != im->end.unit_count)
            return set_fail(s, MS_ERR_PACKET_CONFIG, slot, ev->offset,
                            "device %s image %u: config packet idx %u, "
                            "IMAGE_END says %llu data packets",
                            name, p->seq, p->idx,
                            (unsigned long long)im->end.unit_count);
        im->config_seen = 1;
        im->config_idx = p->idx;
    } else {
        if (im->config_seen && p->idx > im->config_idx)
            return set_fail(s, MS_ERR_PACKET_CONFIG, slot, ev->offset,
                            "device %s image %u: data packet idx %u above "
                            "the config packet idx %u",
                            name, p->seq, p->idx, im->config_idx);
        if (im->ended && p->idx >= im->end.unit_count)
            return set_fail(s, MS_ERR_PACKET_CONFIG, slot, ev->offset,
                            "device %s image %u: data packet idx %u, "
                            "IMAGE_END says %llu data packets",
                            name, p->seq, p->idx,
                            (unsigned long long)im->end.unit_count);
        if (p->idx + 1 > im->max_data_idx_plus1)
            im->max_data_idx_plus1 = p->idx + 1;
    }
    return 0;
}

static set_packet *hold_packet(ms_set *s, set_image *im, uint32_t slot,
                               const ms_event *ev)
{
    const ms_packet_info *p = &ev->u.packet;
    int copy = !s->opt.input_stable;
    if (copy && s->held_bytes + p->size > s->opt.max_buffered_bytes) {
        set_fail_limit(
            s, MS_LIMIT_MAX_BUFFERED_BYTES, slot, ev->offset,
            "max_buffered_bytes (%llu) reached: device %s image %u is "
            "waiting for packet idx %u while %llu bytes are held",
            (unsigned long long)s->opt.max_buffered_bytes,
            idstr_of(s, im->device), im->seq, im->next_idx,
            (unsigned long long)s->held_bytes);
        return NULL;
    }
    set_packet *pk = ms_calloc(ALLOC(s), 1, sizeof *pk);
    if (pk && copy && !(pk->copy = ms_alloc(ALLOC(s), (size_t)p->size))) {
        ms_free(ALLOC(s), pk);
        pk = NULL;
    }
    size_t free_slot = im->held_cap;
    for (size_t i = 0; pk && i < im->held_cap; i++)
        if (!im->held_pk[i]) {
            free_slot = i;
            break;
        }
    if (!pk ||
        (free_slot == im->held_cap &&
         ms_grow(ALLOC(s), (void **)&im->held_pk, sizeof *im->held_pk,
                 &im->held_cap, free_slot + 1) < 0) ||
        ms_u32map_put(ALLOC(s), &im->held, p->idx, (uint32_t)free_slot) < 0) {
        free_packet(s, pk);
        set_fail(s, MS_ERR_NO_MEMORY, slot, ev->offset, "held packet");
        return NULL;
    }
    im->held_pk[free_slot] = pk;
    pk->unit_hash = ms_hash64("", 0, 0); /* an empty one has no DATA */
    pk->idx = p->idx;
    pk->config = p->config;
    pk->channel = slot;
    pk->offset = ev->offset;
    pk->size = p->size;
    if (copy)
        s->held_bytes += p->size;
    return pk;
}

static int finish_incoming_packet(ms_set *s, set_channel *c)
{
    set_image *im = c->pk_img;
    int rc = 0;
    if (c->pk_held) {
        c->pk_held->complete = 1;
        if (c->pk_held->idx == im->next_idx)
            rc = add_drain(s, im);
    } else {
        rc = deliver_end(s, im, c->pk_config);
    }
    c->pk_img = NULL;
    c->pk_held = NULL;
    return rc;
}

static int observe_packet(ms_set *s, uint32_t slot, const ms_event *ev)
{
    const ms_packet_info *p = &ev->u.packet;
    set_channel *c = &s->chans[slot];
    set_image *im = image_of(s, slot, ev->offset, p->device, p->seq);
    if (!im)
        return -1;
    if (!im->has_packets) {
        im->has_packets = 1;
        im->first_packet_offset = ev->offset;
        im->first_packet_channel = slot;
    }
    if (check_packet_rules(s, im, slot, ev) < 0)
        return -1;
    c->pk_img = im;
    c->pk_idx = p->idx;
    c->pk_config = p->config;
    c->pk_held = NULL;
    c->pk_left = p->size;
    if (p->idx == im->next_idx) {
        if (deliver_start(s, im, p->config) < 0)
            return -1;
    } else if (!(c->pk_held = hold_packet(s, im, slot, ev))) {
        return -1;
    }
    if (p->size == 0)
        return finish_incoming_packet(s, c);
    return 0;
}

static int observe_packet_data(ms_set *s, uint32_t slot, const ms_event *ev)
{
    set_channel *c = &s->chans[slot];
    const ms_data_info *d = &ev->u.data;
    set_image *im = c->pk_img;
    if (!im || d->size > c->pk_left)
        return set_fail(s, MS_ERR_USAGE, slot, ev->offset,
                        "packet data that its packet event did not announce");
    c->pk_left -= d->size;
    set_packet *pk = c->pk_held;
    if (!pk) {
        ms_event out;
        deliver_bytes(s, im, &out, slot, c->pk_idx, c->pk_config, d->data,
                      d->size, d->stream_offset, d->zero_copy);
        if (d->unit_end)
            deliver_unit_end(s, im, &out, d->unit_hash);
        if (push_event(s, &out) < 0)
            return -1;
    } else if (pk->copy || !d->zero_copy) {
        if (!pk->copy) /* stable mode, but these bytes are not the caller's */
            return set_fail(s, MS_ERR_USAGE, slot, ev->offset,
                            "input_stable set but packet data is not a view "
                            "of the input");
        memcpy(pk->copy + pk->got, d->data, d->size);
    } else {
        if (ms_grow(ALLOC(s), (void **)&pk->pieces, sizeof *pk->pieces,
                    &pk->piececap, pk->npieces + 1) < 0)
            return set_fail(s, MS_ERR_NO_MEMORY, slot, ev->offset,
                            "packet pieces");
        pk->pieces[pk->npieces++] =
            (set_piece){d->data, d->size, d->stream_offset};
    }
    if (pk) {
        pk->got += d->size;
        if (d->unit_end)
            pk->unit_hash = d->unit_hash;
    }
    return c->pk_left == 0 ? finish_incoming_packet(s, c) : 0;
}

/* ---- QEMU main + multifd channels ------------------------------------------- */

static int qemu_block(const ms_set *s, const char *name)
{
    for (size_t i = 0; i < s->nqblocks; i++)
        if (strcmp(s->qblocks[i].name, name) == 0)
            return (int)i;
    return -1;
}

/* The (idstr, instance) of multifd device state as a set device with an
 * image 0, created on its first packet. */
static set_image *qemu_device_image(ms_set *s, uint32_t slot,
                                    const ms_event *ev)
{
    const ms_multifd_info *m = &ev->u.mfd;
    set_device *d = NULL;
    for (size_t i = 0; i < s->ndevs && !d; i++)
        if (s->devs[i].instance_id == m->instance_id &&
            strcmp(s->devs[i].idstr, m->idstr) == 0)
            d = &s->devs[i];
    if (!d) {
        ms_event dev = {.kind = MS_EV_DEVICE, .offset = ev->offset};
        dev.u.device.handle = MS_DEVICE_HANDLE_QEMU + s->next_qhandle++;
        dev.u.device.idstr = m->idstr;
        dev.u.device.idstr_len = (uint32_t)strlen(m->idstr);
        dev.u.device.instance_id = m->instance_id;
        if (observe_device(s, slot, &dev) < 0)
            return NULL;
        d = device_of(s, dev.u.device.handle);
    }
    set_image *im = image_of(s, slot, ev->offset, d->handle, 0);
    if (im && !im->qemu) {
        im->qemu = 1;
        im->begun = 1;
        im->phase = MS_PHASE_FINAL;
        im->transport = MS_TRANSPORT_PACKETS;
    }
    return im;
}

/* A page of a multifd or preempt channel lies inside its RAM block. */
static int page_in_block(ms_set *s, uint32_t slot, const ms_event *ev,
                         const struct qblock *b, ms_error code,
                         const char *what)
{
    if (ev->u.ram.offset > b->used_length ||
        b->used_length - ev->u.ram.offset < ev->u.ram.page_size)
        return set_fail(s, code, slot, ev->offset,
                        "%s at 0x%llx outside RAM block \"%s\" (0x%llx "
                        "bytes)",
                        what, (unsigned long long)ev->u.ram.offset, b->name,
                        (unsigned long long)b->used_length);
    return 0;
}

static int unknown_block(ms_set *s, uint32_t slot, uint64_t offset,
                         const char *name)
{
    return set_fail(s, MS_ERR_MULTIFD, slot, offset,
                    "packet for RAM block \"%s\", which the main stream's "
                    "block list does not have",
                    name);
}

/* A packet names a block the main stream has not listed yet, while its
 * list is still being read: check it when the list is complete (its
 * pages' offsets then go unchecked against the block's length). */
static int defer_block_check(ms_set *s, uint32_t slot, uint64_t offset,
                             const char *name)
{
    for (size_t i = 0; i < s->nqpending; i++)
        if (strcmp(s->qpending[i].name, name) == 0)
            return 0;
    if (s->nqpending >= s->opt.max_ram_blocks)
        return set_fail_limit(s, MS_LIMIT_MAX_RAM_BLOCKS, slot, offset,
                              "more than max_ram_blocks (%u) RAM blocks "
                              "named by multifd packets before the main "
                              "stream listed them",
                              s->opt.max_ram_blocks);
    if (ms_grow(ALLOC(s), (void **)&s->qpending, sizeof *s->qpending,
                &s->qpendingcap, s->nqpending + 1) < 0)
        return set_fail(s, MS_ERR_NO_MEMORY, slot, 0, "pending block names");
    struct qblock_pending *p = &s->qpending[s->nqpending++];
    snprintf(p->name, sizeof p->name, "%s", name);
    p->slot = slot;
    p->offset = offset;
    return 0;
}

/* The main stream's block list is complete (or input is over): the
 * deferred block names must be on it. */
static int complete_block_list(ms_set *s)
{
    s->qblocks_complete = 1;
    for (size_t i = 0; i < s->nqpending; i++)
        if (qemu_block(s, s->qpending[i].name) < 0)
            return unknown_block(s, s->qpending[i].slot,
                                 s->qpending[i].offset, s->qpending[i].name);
    s->nqpending = 0;
    return 0;
}

static int observe_multifd_packet(ms_set *s, uint32_t slot,
                                  const ms_event *ev)
{
    const ms_multifd_info *m = &ev->u.mfd;
    set_channel *c = &s->chans[slot];
    if (m->device_state) {
        s->device_state = 1;
        set_image *im = qemu_device_image(s, slot, ev);
        if (!im)
            return -1;
        if (m->config && !im->config_seen) {
            /* the config buffer is last: its idx is the data count */
            im->ended = 1;
            im->end.unit_count = m->idx;
            im->end_offset = ev->offset;
            im->end_channel = slot;
        }
        ms_event pe = {.kind = MS_EV_PACKET, .offset = ev->offset};
        pe.u.packet.device = im->device;
        pe.u.packet.idx = m->idx;
        pe.u.packet.flags = m->buffer_flags;
        pe.u.packet.size = m->payload_size;
        pe.u.packet.config = m->config;
        return observe_packet(s, slot, &pe);
    }
    c->syncs += m->sync != 0;
    if (m->zero_pages || m->pages_alloc == 0)
        s->mfd_dense = 1;
    if ((m->sync && m->normal_pages) ||
        (!m->sync && !m->normal_pages && !m->zero_pages))
        s->mfd_sparse = 1;
    /* Page-less packets without SYNC are stale copies of the previous
     * header in QEMU 7.2 (same packet number): only the others count. */
    s->pkt_stale += !(m->normal_pages || m->zero_pages || m->sync);
    if (m->normal_pages || m->zero_pages || m->sync) {
        if (m->packet_num >= s->opt.max_packets)
            return set_fail_limit(
                s, MS_LIMIT_MAX_PACKETS, slot, ev->offset + 24,
                "packet number %llu exceeds max_packets (%u)",
                (unsigned long long)m->packet_num, s->opt.max_packets);
        int was = bit_test_set(s, &s->pkt_nums, &s->pkt_nums_cap,
                               m->packet_num);
        if (was < 0)
            return set_fail(s, MS_ERR_NO_MEMORY, slot, 0, "packet numbers");
        if (was)
            return set_fail(s, MS_ERR_MULTIFD, slot, ev->offset + 24,
                            "packet number %llu appears twice across the "
                            "channels",
                            (unsigned long long)m->packet_num);
        s->pkt_count++;
        if (m->packet_num >= s->pkt_max)
            s->pkt_max = m->packet_num + 1;
    }
    /* QEMU >= 9.0 flags packets of zero pages only with the method too */
    if (m->normal_pages || m->zero_pages) {
        if (!s->comp)
            s->comp = m->compression;
        else if (strcmp(s->comp, m->compression) != 0)
            return set_fail(s, MS_ERR_MULTIFD, slot, ev->offset + 8,
                            "packet compressed with %s, other channels use "
                            "%s",
                            m->compression, s->comp);
    }
    c->qblock = -1;
    if (m->normal_pages || m->zero_pages) {
        c->qblock = qemu_block(s, m->block);
        if (c->qblock < 0 && !s->qblocks_complete)
            return defer_block_check(s, slot, ev->offset + 64, m->block);
        if (c->qblock < 0)
            return unknown_block(s, slot, ev->offset + 64, m->block);
    }
    return 0;
}

/* A page of the postcopy-preempt channel: its block must be one the main
 * stream listed, and the page inside it. */
static int observe_preempt_page(ms_set *s, uint32_t slot, const ms_event *ev)
{
    if (!s->nqblocks)
        return 0; /* no main stream read yet: finish_qemu says so */
    int i = qemu_block(s, ev->u.ram.block);
    if (i < 0)
        return set_fail(s, MS_ERR_RAM, slot, ev->offset,
                        "preempt-channel page for RAM block \"%s\", which "
                        "the main stream's block list does not have",
                        ev->u.ram.block);
    return page_in_block(s, slot, ev, &s->qblocks[i], MS_ERR_RAM,
                         "preempt-channel page");
}

static int observe_qemu(ms_set *s, uint32_t slot, const ms_event *ev)
{
    set_channel *c = &s->chans[slot];
    if (c->hdr.format == MS_FORMAT_QEMU_RETURN_PATH)
        return rp_check_rp_event(s->rpc, slot, ev, &s->err);
    if ((c->hdr.format == MS_FORMAT_QEMU_MAIN ||
         c->hdr.format == MS_FORMAT_LIBVIRT_SAVE) &&
        (ev->kind == MS_EV_COMMAND || ev->kind == MS_EV_RAM_BLOCK ||
         ev->kind == MS_EV_RAM_PAGE || ev->kind == MS_EV_VFIO_MARKER)) {
        rp_check *rpc = rpc_of(s, slot);
        if (!rpc || rp_check_main_event(rpc, slot, ev, &s->err) < 0)
            return -1;
    }
    if ((c->hdr.format == MS_FORMAT_QEMU_MAIN ||
         c->hdr.format == MS_FORMAT_LIBVIRT_SAVE) &&
        ev->kind != MS_EV_RAM_BLOCK && s->nqblocks && !s->qblocks_complete &&
        complete_block_list(s) < 0)
        return -1;
    switch (ev->kind) {
    case MS_EV_CONFIGURATION:
        if (ev->u.config.has_uuid) {
            s->main_has_uuid = 1;
            memcpy(s->main_uuid, ev->u.config.uuid, 16);
        }
        return 0;
    case MS_EV_RAM_BLOCK:
        if (s->nqblocks >= s->opt.max_ram_blocks)
            return set_fail_limit(s, MS_LIMIT_MAX_RAM_BLOCKS, slot, ev->offset,
                                  "more than max_ram_blocks (%u)",
                                  s->opt.max_ram_blocks);
        if (ms_grow(ALLOC(s), (void **)&s->qblocks, sizeof *s->qblocks,
                    &s->qblockcap, s->nqblocks + 1) < 0)
            return set_fail(s, MS_ERR_NO_MEMORY, slot, 0, "block list");
        snprintf(s->qblocks[s->nqblocks].name, 256, "%s", ev->u.ram.block);
        s->qblocks[s->nqblocks++].used_length = ev->u.ram.used_length;
        return 0;
    case MS_EV_SECTION: {
        const char *id = ev->u.section.idstr;
        size_t n = strlen(id);
        if (n < 5 || strcmp(id + n - 5, "/vfio") != 0)
            return 0;
        for (size_t i = 0; i < s->nqvfio; i++)
            if (s->qvfio[i].instance_id == ev->u.section.instance_id &&
                strcmp(s->qvfio[i].idstr, id) == 0)
                return 0;
        if (ms_grow(ALLOC(s), (void **)&s->qvfio, sizeof *s->qvfio,
                    &s->qvfiocap, s->nqvfio + 1) < 0)
            return set_fail(s, MS_ERR_NO_MEMORY, slot, 0, "VFIO devices");
        snprintf(s->qvfio[s->nqvfio].idstr, 256, "%s", id);
        s->qvfio[s->nqvfio++].instance_id = ev->u.section.instance_id;
        return 0;
    }
    case MS_EV_MULTIFD_PACKET: return observe_multifd_packet(s, slot, ev);
    case MS_EV_RAM_MARKER:
        /* each sync point of the main channel is one SYNC packet on every
         * channel (spec/qemu-multifd.md section 3, the main channel's
         * epoch) */
        if (c->hdr.format == MS_FORMAT_QEMU_MULTIFD)
            return 0;
        if (ev->u.ram.record == MS_RAM_MULTIFD_FLUSH) {
            s->main_flush_seen = 1;
            s->main_syncs++;
        } else if (ev->u.ram.record == MS_RAM_EOS && !s->main_flush_seen) {
            s->main_syncs++;
        }
        return 0;
    case MS_EV_COMMAND:
        if (ev->u.command.cmd == 3 && ev->u.command.len)
            s->postcopy_ram = 1; /* POSTCOPY_ADVISE for RAM */
        return 0;
    case MS_EV_RAM_PAGE:
        if (c->hdr.format == MS_FORMAT_QEMU_PREEMPT)
            return observe_preempt_page(s, slot, ev);
        if (c->hdr.format == MS_FORMAT_QEMU_MULTIFD && c->qblock >= 0)
            return page_in_block(s, slot, ev, &s->qblocks[c->qblock],
                                 MS_ERR_MULTIFD, "page");
        return 0;
    case MS_EV_DATA:
        return ev->u.data.in_packet ? observe_packet_data(s, slot, ev) : 0;
    default: return 0;
    }
}

/* Every sync point of the main channel sends one SYNC packet on every
 * channel, before the marker: channels with another count than the main
 * channel lost packets (or the main channel lost markers). */
static int check_sync_points(ms_set *s, uint64_t most)
{
    if (!s->mains || !s->mfd_count || most == s->main_syncs)
        return 0;
    for (size_t i = 0; i < s->nchans; i++) {
        set_channel *c = &s->chans[i];
        if (c->seen_header && c->hdr.format == MS_FORMAT_QEMU_MULTIFD)
            return set_fail(s, MS_ERR_MULTIFD, (uint32_t)i, c->end,
                            "multifd channel %u carries %llu SYNC packets, "
                            "the main channel has %llu sync points (RAM EOS "
                            "/ MULTIFD_FLUSH)",
                            c->hdr.channel_index, (unsigned long long)c->syncs,
                            (unsigned long long)s->main_syncs);
    }
    return 0;
}

/* QEMU numbers RAM packets from one counter; the numbers of a whole
 * migration account for 0..n-1 exactly, so a lost packet shows even at a
 * channel's end or as a whole missing last channel:
 *  - QEMU >= 9.0 takes the number when it fills the header: 0..n-1, each
 *    once.
 *  - QEMU < 9.0 takes it when pages are queued, and a sync queued before
 *    the channel's thread sent them takes a new one: the old number is
 *    never sent, and the thread sends the new one twice (pages + SYNC,
 *    then a page-less stale copy).  So the packets with their stale
 *    copies still number n (qemu-7.2 captures: 15 + 4 = 19 for 0..18).
 * Only a stream whose packets show the >= 9.0 writer and nothing older
 * can name the first lost number. */
static int check_packet_numbers(ms_set *s)
{
    if (s->pkt_count + s->pkt_stale == s->pkt_max)
        return 0;
    if (!s->mfd_dense || s->mfd_sparse)
        return set_fail(s, MS_ERR_MULTIFD, NO_CHANNEL, 0,
                        "%llu multifd packets (+ %llu stale copies) but QEMU "
                        "numbered them up to %llu: a number QEMU < 9.0 skips "
                        "comes back as a stale copy, so a channel lost "
                        "packets or a channel file is missing",
                        (unsigned long long)s->pkt_count,
                        (unsigned long long)s->pkt_stale,
                        (unsigned long long)(s->pkt_max - 1));
    uint64_t missing = 0;
    while (s->pkt_nums[missing / 8] & (1u << (missing % 8)))
        missing++;
    return set_fail(s, MS_ERR_MULTIFD, NO_CHANNEL, 0,
                    "multifd packet number %llu never arrived (%llu "
                    "packets numbered up to %llu): QEMU >= 9.0 numbers "
                    "them without gaps, so a channel lost packets or a "
                    "channel file is missing",
                    (unsigned long long)missing,
                    (unsigned long long)s->pkt_count,
                    (unsigned long long)(s->pkt_max - 1));
}

static int finish_qemu(ms_set *s)
{
    /* no block list at all (no main channel, or one cut before its RAM
     * section): the names cannot be checked; the lines below say why */
    if (s->nqblocks && !s->qblocks_complete && complete_block_list(s) < 0)
        return -1;
    if (s->preempts && !s->mains)
        return set_fail(s, MS_ERR_CHANNEL_SET, s->preempt_slot, 0,
                        "a postcopy-preempt channel but no main channel "
                        "(QEVM): its pages cannot be checked");
    if (s->preempts && !s->postcopy_ram)
        return set_fail(s, MS_ERR_CHANNEL_SET, s->preempt_slot, 0,
                        "a postcopy-preempt channel, but the main stream "
                        "never advised postcopy-ram (no POSTCOPY_ADVISE with "
                        "arguments)");
    if (s->mfd_count && !s->mains)
        return set_fail(s, MS_ERR_CHANNEL_SET, NO_CHANNEL, 0,
                        "%u multifd channel file%s but no main channel "
                        "(QEVM): the migration cannot be checked whole",
                        s->mfd_count, s->mfd_count == 1 ? "" : "s");
    for (uint32_t id = 0; id < s->mfd_max_id; id++)
        if (!(s->mfd_ids[id / 8] & (1u << (id % 8))))
            return set_fail(s, MS_ERR_CHANNEL_SET, NO_CHANNEL, 0,
                            "multifd channel %u is missing (channels up to "
                            "%u are present)",
                            id, s->mfd_max_id - 1);
    /* QEMU sends each sync point on every channel: a channel with fewer
     * SYNC packets than the others lost its tail (even at a packet
     * boundary, where the channel itself ends cleanly). */
    uint64_t most = 0;
    for (size_t i = 0; i < s->nchans; i++)
        if (s->chans[i].hdr.format == MS_FORMAT_QEMU_MULTIFD &&
            s->chans[i].syncs > most)
            most = s->chans[i].syncs;
    for (size_t i = 0; i < s->nchans; i++) {
        set_channel *c = &s->chans[i];
        if (c->seen_header && c->hdr.format == MS_FORMAT_QEMU_MULTIFD &&
            c->syncs < most)
            return set_fail(s, MS_ERR_MULTIFD, (uint32_t)i, c->end,
                            "multifd channel %u carries %llu SYNC packets, "
                            "another channel %llu: its tail is missing",
                            c->hdr.channel_index,
                            (unsigned long long)c->syncs,
                            (unsigned long long)most);
    }
    if (check_sync_points(s, most) < 0 || check_packet_numbers(s) < 0)
        return -1;
    if (s->main_has_uuid && s->have_mfd_uuid &&
        memcmp(s->main_uuid, s->mfd_uuid, 16) != 0)
        return set_fail(s, MS_ERR_CHANNEL_UUID, NO_CHANNEL, 0,
                        "the multifd channels' VM UUID differs from the main "
                        "stream's configuration");
    if (rp_check_finish(s->rpc, &s->err) < 0)
        return -1;
    if (s->device_state && s->comp && strcmp(s->comp, "none") != 0)
        return set_fail(s, MS_ERR_MULTIFD, NO_CHANNEL, 0,
                        "device state over multifd needs compression none, "
                        "the RAM packets use %s",
                        s->comp);
    for (size_t i = 0; i < s->ndevs; i++) {
        set_device *d = &s->devs[i];
        if (!d->nimages || !d->images[0]->qemu)
            continue;
        set_image *im = d->images[0];
        int known = !s->mains;
        for (size_t k = 0; k < s->nqvfio && !known; k++)
            known = s->qvfio[k].instance_id == d->instance_id &&
                    strcmp(s->qvfio[k].idstr, d->idstr) == 0;
        if (!known)
            return set_fail(s, MS_ERR_MULTIFD, im->first_packet_channel,
                            im->first_packet_offset,
                            "device-state packets for %s instance %u, which "
                            "the main stream has no VFIO section for",
                            d->idstr, d->instance_id);
        if (!im->config_seen)
            return set_fail(s, MS_ERR_PACKET_CONFIG, im->first_packet_channel,
                            im->first_packet_offset,
                            "%s: no config buffer (CONFIG_STATE) arrived",
                            d->idstr);
        if (!im->assembled)
            return set_fail(s, MS_ERR_PACKET_MISSING, im->end_channel,
                            im->end_offset,
                            "%s: buffer idx %u never arrived (%llu data "
                            "buffers + config)",
                            d->idstr, im->next_idx,
                            (unsigned long long)im->end.unit_count);
    }
    return 0;
}

/* ---- public entry points -------------------------------------------------- */

int ms_set_observe(ms_set *s, uint32_t slot, const ms_event *ev)
{
    if (s->err.code)
        return -1;
    if (s->qlen || s->ndrain)
        return set_fail(s, MS_ERR_USAGE, slot, ev->offset,
                        "observe before ms_set_next returned MS_NEXT_INPUT");
    set_channel *c = channel_of(s, slot);
    if (!c)
        return -1;
    if (ev->kind != MS_EV_STREAM_HEADER && !c->seen_header)
        return set_fail(s, MS_ERR_USAGE, slot, ev->offset,
                        "event before the channel's stream header");
    if (ev->offset + ev->length > c->end)
        c->end = ev->offset + ev->length;
    if (ev->kind != MS_EV_STREAM_HEADER &&
        (c->hdr.format == MS_FORMAT_PAYLOAD ||
         c->hdr.format == MS_FORMAT_QEMU_CPR))
        return 0;
    if (ev->kind != MS_EV_STREAM_HEADER && c->hdr.format != MS_FORMAT_MIGSTREAM)
        return observe_qemu(s, slot, ev);
    switch (ev->kind) {
    case MS_EV_STREAM_HEADER: return observe_header(s, slot, ev);
    case MS_EV_DEVICE: return observe_device(s, slot, ev);
    case MS_EV_IMAGE_BEGIN: return observe_image_begin(s, slot, ev);
    case MS_EV_IMAGE_END: return observe_image_end(s, slot, ev);
    case MS_EV_PACKET: return observe_packet(s, slot, ev);
    case MS_EV_DATA:
        return ev->u.data.in_packet ? observe_packet_data(s, slot, ev) : 0;
    default: return 0;
    }
}

int ms_set_channel_done(ms_set *s, uint32_t slot)
{
    if (s->err.code)
        return -1;
    set_channel *c = channel_of(s, slot);
    if (!c)
        return -1;
    if (!c->seen_header)
        return set_fail(s, MS_ERR_USAGE, slot, 0,
                        "channel done before its stream header");
    c->done = 1;
    return 0;
}

/* Emit the next piece of the held packet at im->next_idx. */
static int drain_one(ms_set *s, ms_event *ev)
{
    set_image *im = s->drain[s->ndrain - 1];
    uint32_t slot;
    if (!ms_u32map_get(&im->held, im->next_idx, &slot)) {
        s->ndrain--;
        return 0;
    }
    set_packet *pk = im->held_pk[slot];
    if (pk->emitted == 0 && deliver_start(s, im, pk->config) < 0)
        return -1;
    int last;
    if (pk->copy || pk->npieces == 0) {
        deliver_bytes(s, im, ev, pk->channel, pk->idx, pk->config, pk->copy,
                      (size_t)pk->size, pk->offset, 0);
        last = 1;
    } else {
        set_piece *pc = &pk->pieces[pk->emitted];
        deliver_bytes(s, im, ev, pk->channel, pk->idx, pk->config, pc->p,
                      pc->n, pc->offset, 1);
        last = pk->emitted + 1 == pk->npieces;
    }
    pk->emitted++;
    if (!last)
        return 1;
    deliver_unit_end(s, im, ev, pk->unit_hash);
    /* The event's bytes stay valid until the next call: free the packet's
     * memory then, by parking it as the last drained packet. */
    ms_u32map_del(&im->held, pk->idx);
    im->held_pk[slot] = NULL;
    if (pk->copy)
        s->held_bytes -= pk->size;
    s->ndrain--;
    ms_free(ALLOC(s), s->drained_last_copy);
    s->drained_last_copy = pk->copy;
    pk->copy = NULL;
    free_packet(s, pk);
    if (deliver_end(s, im, ev->u.data.config) < 0)
        return -1;
    return 1;
}

int ms_set_next(ms_set *s, ms_event *ev)
{
    if (s->err.code)
        return MS_NEXT_ERROR;
    for (;;) {
        if (s->qlen) {
            *ev = s->queue[s->qhead];
            s->qhead = (s->qhead + 1) % QUEUE_CAP;
            s->qlen--;
            return MS_NEXT_EVENT;
        }
        if (!s->ndrain) {
            ms_free(ALLOC(s), s->drained_last_copy);
            s->drained_last_copy = NULL;
            return MS_NEXT_INPUT;
        }
        int rc = drain_one(s, ev);
        if (rc < 0)
            return MS_NEXT_ERROR;
        if (rc > 0)
            return MS_NEXT_EVENT;
    }
}

int ms_set_finish(ms_set *s)
{
    if (s->err.code)
        return -1;
    for (size_t slot = 0; slot < s->nchans; slot++) {
        set_channel *c = &s->chans[slot];
        if (c->seen_header && !c->done)
            return set_fail(s, MS_ERR_CHANNEL_SET, (uint32_t)slot, 0,
                            "channel %u did not end cleanly",
                            c->hdr.channel_index);
    }
    if (s->is_qemu)
        return finish_qemu(s);
    if (!s->is_mig && s->nchans)
        return 0; /* only raw driver payloads: nothing spans files */
    if (!s->have_first)
        return set_fail(s, MS_ERR_CHANNEL_SET, NO_CHANNEL, 0,
                        "no channel stream was read");
    uint32_t count = s->first.channel_count, missing = 0, first_missing = 0;
    for (uint32_t i = 0; i < count; i++)
        if (!s->slot_of_index[i] && missing++ == 0)
            first_missing = i;
    if (missing)
        return set_fail(s, MS_ERR_CHANNEL_SET, NO_CHANNEL, 0,
                        "%u of %u channels missing (first missing: channel "
                        "%u); the migration cannot be checked whole",
                        missing, count, first_missing);
    for (size_t i = 0; i < s->ndevs; i++) {
        set_device *d = &s->devs[i];
        for (size_t j = 0; j < d->nimages; j++) {
            set_image *im = d->images[j];
            if (!im->has_packets && im->transport != MS_TRANSPORT_PACKETS)
                continue;
            if (!im->begun)
                return set_fail(s, MS_ERR_PACKET_ORPHAN,
                                im->first_packet_channel,
                                im->first_packet_offset,
                                "device %s: packets for image %u, which never "
                                "began",
                                d->idstr, im->seq);
            if (!im->ended)
                return set_fail(s, MS_ERR_IMAGE_STATE, NO_CHANNEL, 0,
                                "device %s: image %u never ended", d->idstr,
                                im->seq);
            if (im->assembled)
                continue;
            if (im->next_idx >= im->end.unit_count && !im->config_seen)
                return set_fail(s, MS_ERR_PACKET_CONFIG, im->end_channel,
                                im->end_offset,
                                "device %s image %u: all %llu data packets "
                                "arrived but no config packet",
                                d->idstr, im->seq,
                                (unsigned long long)im->end.unit_count);
            return set_fail(s, MS_ERR_PACKET_MISSING, im->end_channel,
                            im->end_offset,
                            "device %s image %u: packet idx %u never arrived "
                            "(IMAGE_END says %llu data packets + config)",
                            d->idstr, im->seq, im->next_idx,
                            (unsigned long long)im->end.unit_count);
        }
    }
    return 0;
}
