/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* migstream writer (spec/migstream.md): version 2.0, or 1.0 on request.
 *
 * One writer produces every channel of a migration.  Each channel keeps its
 * own chain value, END totals, payload hash state and compressor, so calls
 * for different channels touch disjoint state (see the concurrency note in
 * migstream.h).  Each device keeps its image state and image hash, touched
 * only by calls naming that device.
 *
 * Payload bytes handed in by the caller are never copied: a record is sent
 * as header+prefix, the caller's data, then the payload check.  In 2.0 a
 * unit's data (CHUNK, PACKET) is hashed once: its data_hash seeds both the
 * record's payload check and, as the unit hash, the image hash (spec 4.3);
 * 1.0 hashes the data into both. */
#include <stdint.h>
#include <string.h>

#include <zlib.h>

#include "common.h"
#include "mig_format.h"

#define IDSTR_MAX 255 /* spec 5.1: idstr_len 1..255 */
/* Largest fixed part of any record payload the writer builds: DEVICE's
 * fixed fields plus its idstr (compat data goes out as the data piece). */
#define PREFIX_MAX (MIG_DEVICE_FIXED + IDSTR_MAX)
#define DEFAULT_CHUNK_SIZE ((size_t)1 << 20)
enum channel_state { CH_UNOPENED = 0, CH_OPEN, CH_CLOSED };

typedef struct wchannel {
    enum channel_state state;
    ms_write_fn out;
    void *opaque;
    uint64_t chain;  /* seed of the next record header check (spec 4.1) */
    uint64_t offset; /* bytes written so far = END's stream_bytes */
    /* END totals (spec 5.9) */
    uint64_t record_count, image_bytes, packet_count;
    uint32_t device_count, image_count;
    /* images homed here and still open: counted on the channel rather than
     * found by scanning devices, whose state other threads may be changing */
    uint64_t open_images;
    uint8_t *declared;       /* per device index: DEVICE record written */
    ms_hash_state *payload_hash; /* payload_check of the record being written */
    /* zlib, set up at the channel's first compressed chunk */
    z_stream z;
    int z_ready;
    uint8_t *zbuf;
    size_t zbuf_size;
    /* 2.1 embedded streams begun on this channel (id = index) */
    struct wstream *streams;
    size_t nstreams, streams_cap, open_streams;
} wchannel;

typedef struct wstream {
    int open;
    uint64_t written;     /* = the next STREAM_DATA offset */
    uint64_t declared;    /* STREAM_BEGIN's length (or unknown) */
    ms_hash_state *hash;  /* XXH3-64 of the bytes, for STREAM_END */
} wstream;

typedef struct wdevice {
    uint32_t handle, instance_id;
    ms_payload_kind payload_kind;
    uint32_t idstr_len, compat_len;
    char idstr[IDSTR_MAX];
    uint8_t *compat;
    /* images of the device */
    int has_home;
    uint32_t home;         /* channel of every image (spec 5.2) */
    uint64_t images_begun; /* = next image_seq */
    ms_phase last_phase;   /* phase of the latest image; NONE before one */
    int open;
    /* the open image */
    uint32_t seq;
    ms_transport transport;
    uint64_t length, units; /* data bytes; chunks or data packets */
    int config_written;
    uint64_t config_length, config_hash;
    ms_hash_state *image_hash; /* allocated at the first image, then reused */
} wdevice;

struct ms_writer {
    ms_allocator alloc;
    ms_error_info err;
    uint8_t uuid[16];
    uint32_t channel_count;
    uint64_t created_ns;
    size_t chunk_size;
    int level; /* zlib level, 0 = no compression */
    int major; /* format version written: 1 or 2 */
    int archive; /* 2.1 with the header's ARCHIVE flag (embedded streams) */
    wchannel *channels;
    wdevice *devices; /* sorted by handle; fixed once a record is written */
    size_t device_count, device_cap;
};

/* ---- small helpers --------------------------------------------------- */
static voidpf zlib_alloc(voidpf opaque, uInt items, uInt size)
{
    return ms_calloc(opaque, items, size);
}

static void zlib_free(voidpf opaque, voidpf ptr)
{
    ms_free(opaque, ptr);
}

static int no_memory(ms_writer *w, const char *what)
{
    return ms_fail(&w->err, MS_ERR_NO_MEMORY, 0, "allocating %s", what);
}

/* An error about one channel: offset is where that channel's stream is. */
static int channel_fail(ms_writer *w, uint32_t channel, ms_error code,
                        const char *what)
{
    if (w->err.code == MS_ERR_OK) {
        w->err.channel = channel;
        w->err.has_channel = 1;
    }
    return ms_fail(&w->err, code, w->channels[channel].offset, "channel %u: %s",
                   channel, what);
}

static int usable(const ms_writer *w)
{
    return w && w->err.code == MS_ERR_OK;
}

static int records_started(const ms_writer *w)
{
    for (uint32_t i = 0; i < w->channel_count; i++)
        if (w->channels[i].record_count > 0 ||
            w->channels[i].state == CH_CLOSED)
            return 1;
    return 0;
}

/* Index of the first device whose handle is >= handle. */
static size_t device_slot(const ms_writer *w, uint32_t handle)
{
    size_t lo = 0, hi = w->device_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (w->devices[mid].handle < handle)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static wdevice *known_device(ms_writer *w, uint32_t handle)
{
    size_t i = device_slot(w, handle);
    if (i < w->device_count && w->devices[i].handle == handle)
        return &w->devices[i];
    ms_fail(&w->err, MS_ERR_USAGE, 0, "device %u: not added", handle);
    return NULL;
}

/* The channel, when it may take a record now. */
static wchannel *record_channel(ms_writer *w, uint32_t channel)
{
    if (channel >= w->channel_count) {
        ms_fail(&w->err, MS_ERR_USAGE, 0,
                "channel %u: no such channel (channel_count %u)", channel,
                w->channel_count);
        return NULL;
    }
    wchannel *c = &w->channels[channel];
    if (c->state != CH_OPEN) {
        channel_fail(w, channel, MS_ERR_USAGE,
                     c->state == CH_CLOSED ? "closed" : "not opened");
        return NULL;
    }
    /* Devices are fixed once any record exists, so the table's size is. */
    if (!c->declared) {
        c->declared = ms_calloc(&w->alloc, w->device_count, 1);
        if (!c->declared) {
            no_memory(w, "device table");
            return NULL;
        }
    }
    return c;
}

/* ---- record emission ---------------------------------------------------- */
static int put(ms_writer *w, uint32_t channel, const void *buf, size_t len)
{
    wchannel *c = &w->channels[channel];
    if (len > 0 && c->out(c->opaque, buf, len) != 0)
        return channel_fail(w, channel, MS_ERR_USAGE, "output failed");
    return 0;
}

/* The payload check of a record whose header check is `header_check`
 * (spec 4.1), its prefix already at `frame + MIG_REC_HDR_SIZE`; a 2.0 unit
 * record (data_hash given) by spec 4.3's rule. */
static uint64_t payload_check_of(wchannel *c, uint8_t *frame,
                                 uint64_t header_check, size_t prefix_len,
                                 const void *data, size_t data_len,
                                 const uint64_t *data_hash)
{
    uint8_t *prefix = frame + MIG_REC_HDR_SIZE;
    if (data_hash)
        return mig_unit_payload_check(prefix, prefix_len, *data_hash,
                                      header_check);
    if (data_len == 0) /* one-shot: no streaming state to seed */
        return ms_hash64(prefix, prefix_len, header_check);
    ms_hash_state *st = c->payload_hash;
    ms_hash_reset(st, header_check);
    ms_hash_update(st, prefix, prefix_len);
    ms_hash_update(st, data, data_len);
    return ms_hash_digest(st);
}

/* Write one record (spec 4.1): payload = prefix (built by the caller, at
 * most PREFIX_MAX bytes) followed by data (the caller's bytes, sent as
 * they are).  `data_hash`: a 2.0 unit record's XXH3-64 of its data, NULL
 * for any other record.  Advances the chain and the channel's totals. */
static int emit_unit(ms_writer *w, uint32_t channel, uint32_t tag,
                     uint32_t flags, const uint8_t *prefix, size_t prefix_len,
                     const void *data, size_t data_len,
                     const uint64_t *data_hash)
{
    wchannel *c = &w->channels[channel];
    /* header, prefix, then the trailer (or a unit's le64 data_hash) */
    uint8_t frame[MIG_REC_HDR_SIZE + PREFIX_MAX + MIG_REC_TRAILER_SIZE];

    if (data_len > SIZE_MAX - PREFIX_MAX - MIG_REC_OVERHEAD)
        return channel_fail(w, channel, MS_ERR_LIMIT, "record too large");
    uint64_t size = (uint64_t)prefix_len + data_len;
    ms_put_le64(frame + MIG_REC_OFF_SIZE, size);
    ms_put_le32(frame + MIG_REC_OFF_FLAGS, flags);
    ms_put_le32(frame + MIG_REC_OFF_TAG, tag);
    uint64_t header_check = ms_hash64(frame, MIG_REC_OFF_CHECK, c->chain);
    ms_put_le64(frame + MIG_REC_OFF_CHECK, header_check);
    if (prefix_len > 0) /* raw records have no prefix (prefix NULL) */
        memcpy(frame + MIG_REC_HDR_SIZE, prefix, prefix_len);
    uint64_t payload_check = payload_check_of(
        c, frame, header_check, prefix_len, data, data_len, data_hash);

    size_t head_len = MIG_REC_HDR_SIZE + prefix_len;
    if (data_len == 0) {
        /* a fixed record goes out in one call */
        ms_put_le64(frame + head_len, payload_check);
        if (put(w, channel, frame, head_len + MIG_REC_TRAILER_SIZE) < 0)
            return -1;
    } else {
        uint8_t trailer[MIG_REC_TRAILER_SIZE];
        ms_put_le64(trailer, payload_check);
        if (put(w, channel, frame, head_len) < 0 ||
            put(w, channel, data, data_len) < 0 ||
            put(w, channel, trailer, sizeof trailer) < 0)
            return -1;
    }
    c->chain = payload_check;
    c->offset += MIG_REC_OVERHEAD + size;
    c->record_count++;
    return 0;
}

/* Any record but a 2.0 unit record. */
static int emit(ms_writer *w, uint32_t channel, uint32_t tag, uint32_t flags,
                const uint8_t *prefix, size_t prefix_len, const void *data,
                size_t data_len)
{
    return emit_unit(w, channel, tag, flags, prefix, prefix_len, data,
                     data_len, NULL);
}

/* Spec 5.1: a channel declares a device before its first record naming
 * it, so the DEVICE record is written right before that record. */
static int declare(ms_writer *w, uint32_t channel, const wdevice *d)
{
    wchannel *c = &w->channels[channel];
    size_t index = (size_t)(d - w->devices);
    if (c->declared[index])
        return 0;
    uint8_t p[PREFIX_MAX];
    ms_put_le32(p + 0, d->handle);
    ms_put_le32(p + 4, d->instance_id);
    ms_put_le32(p + 8, (uint32_t)d->payload_kind);
    ms_put_le32(p + 12, 0); /* flags, reserved */
    ms_put_le32(p + 16, d->idstr_len);
    ms_put_le32(p + 20, d->compat_len);
    memcpy(p + MIG_DEVICE_FIXED, d->idstr, d->idstr_len);
    if (emit(w, channel, MIG_TAG_DEVICE, 0, p, MIG_DEVICE_FIXED + d->idstr_len,
             d->compat, d->compat_len) < 0)
        return -1;
    c->declared[index] = 1;
    c->device_count++;
    return 0;
}

/* A record naming a device: validate the channel, declare, emit. */
static int emit_for_device(ms_writer *w, uint32_t channel, const wdevice *d,
                           uint32_t tag, uint32_t flags, const uint8_t *prefix,
                           size_t prefix_len, const void *data, size_t data_len,
                           const uint64_t *data_hash)
{
    if (!record_channel(w, channel) || declare(w, channel, d) < 0)
        return -1;
    return emit_unit(w, channel, tag, flags, prefix, prefix_len, data,
                     data_len, data_hash);
}

/* ---- create / free ----------------------------------------------------- */
void ms_writer_options_init(ms_writer_options *opt)
{
    memset(opt, 0, sizeof *opt);
    opt->struct_size = sizeof *opt;
    opt->channel_count = 1;
    opt->chunk_size = DEFAULT_CHUNK_SIZE;
}

/* The caller's options over the defaults: NULL gives the defaults; a
 * struct_size from MS_WRITER_OPTIONS_SIZE_V1 to sizeof (an older caller's
 * struct) is taken.  Fields appended later must get their defaults back
 * when the caller's struct does not hold them whole (as
 * ms_options_import does).  0, or -1 for any other struct_size. */
static int options_import(ms_writer_options *dst,
                          const ms_writer_options *src)
{
    ms_writer_options_init(dst);
    if (!src)
        return 0;
    size_t size = src->struct_size;
    if (size < MS_WRITER_OPTIONS_SIZE_V1 || size > sizeof *dst)
        return -1;
    memcpy(dst, src, size);
    /* appended fields the caller's struct does not hold whole: defaults */
    if (size < offsetof(ms_writer_options, format_major) +
                   sizeof dst->format_major)
        dst->format_major = 0;
    if (size < offsetof(ms_writer_options, archive) + sizeof dst->archive)
        dst->archive = 0;
    dst->struct_size = sizeof *dst;
    return 0;
}

static int options_valid(const ms_writer_options *opt)
{
    /* chunk_size bound: CHUNK's raw_len is a le32 */
    return opt->channel_count >= 1 && opt->chunk_size >= 1 &&
           opt->chunk_size <= UINT32_MAX && opt->compression_level >= 0 &&
           opt->compression_level <= 9 && opt->format_major >= 0 &&
           opt->format_major <= MS_FORMAT_VERSION_MAJOR &&
           (!opt->archive || opt->format_major != 1); /* 2.1 records */
}

ms_writer *ms_writer_create(const ms_writer_options *caller)
{
    ms_writer_options own;
    const ms_writer_options *opt = &own;
    if (options_import(&own, caller) < 0 || !options_valid(opt))
        return NULL;
    ms_writer *w = ms_calloc(&opt->allocator, 1, sizeof *w);
    if (!w)
        return NULL;
    w->alloc = opt->allocator;
    memcpy(w->uuid, opt->uuid, sizeof w->uuid);
    w->channel_count = opt->channel_count;
    w->created_ns = opt->created_ns;
    w->chunk_size = opt->chunk_size;
    w->level = opt->compression_level;
    w->major = opt->format_major ? opt->format_major : MS_FORMAT_VERSION_MAJOR;
    w->archive = opt->archive != 0;
    w->channels = ms_calloc(&w->alloc, w->channel_count, sizeof *w->channels);
    if (!w->channels) {
        ms_free(&w->alloc, w);
        return NULL;
    }
    return w;
}

static void channel_free(const ms_allocator *a, wchannel *c)
{
    ms_free(a, c->declared);
    ms_hash_state_free(a, c->payload_hash);
    if (c->z_ready)
        deflateEnd(&c->z);
    ms_free(a, c->zbuf);
    for (size_t i = 0; i < c->nstreams; i++)
        ms_hash_state_free(a, c->streams[i].hash);
    ms_free(a, c->streams);
}

void ms_writer_free(ms_writer *w)
{
    if (!w)
        return;
    ms_allocator a = w->alloc; /* w itself is freed last */
    for (uint32_t i = 0; i < w->channel_count; i++)
        channel_free(&a, &w->channels[i]);
    for (size_t i = 0; i < w->device_count; i++) {
        ms_free(&a, w->devices[i].compat);
        ms_hash_state_free(&a, w->devices[i].image_hash);
    }
    ms_free(&a, w->channels);
    ms_free(&a, w->devices);
    ms_free(&a, w);
}

const ms_error_info *ms_writer_error(const ms_writer *w)
{
    static const ms_error_info no_writer = {.code = MS_ERR_USAGE,
                                            .detail = "no writer"};
    return w ? &w->err : &no_writer;
}

/* ---- channels and devices ---------------------------------------------- */
int ms_writer_open_channel(ms_writer *w, uint32_t channel, ms_write_fn fn,
                           void *opaque)
{
    if (!usable(w))
        return -1;
    if (channel >= w->channel_count || !fn)
        return ms_fail(&w->err, MS_ERR_USAGE, 0,
                       "channel %u: bad channel or no output function",
                       channel);
    wchannel *c = &w->channels[channel];
    if (c->state != CH_UNOPENED)
        return channel_fail(w, channel, MS_ERR_USAGE, "opened twice");
    if (!(c->payload_hash = ms_hash_state_new(&w->alloc)))
        return no_memory(w, "hash state");
    c->out = fn;
    c->opaque = opaque;
    c->state = CH_OPEN;

    uint8_t h[MIG_HDR_SIZE] = {0}; /* reserved fields stay zero */
    memcpy(h, mig_magic, MIG_MAGIC_LEN);
    ms_put_le16(h + MIG_HDR_OFF_MAJOR, (uint16_t)w->major);
    /* the lowest minor whose features are used (spec section 3) */
    ms_put_le16(h + MIG_HDR_OFF_MINOR, w->archive ? MIG_ARCHIVE_MINOR : 0);
    ms_put_le32(h + MIG_HDR_OFF_FLAGS, w->archive ? MIG_HDR_FLAG_ARCHIVE : 0);
    memcpy(h + MIG_HDR_OFF_UUID, w->uuid, sizeof w->uuid);
    ms_put_le32(h + MIG_HDR_OFF_CHANNEL, channel);
    ms_put_le32(h + MIG_HDR_OFF_CHANNELS, w->channel_count);
    ms_put_le64(h + MIG_HDR_OFF_CREATED, w->created_ns);
    c->chain = ms_hash64(h, MIG_HDR_OFF_CHECK, 0);
    ms_put_le64(h + MIG_HDR_OFF_CHECK, c->chain);
    if (put(w, channel, h, sizeof h) < 0)
        return -1;
    c->offset = MIG_HDR_SIZE;
    return 0;
}

static int device_args_valid(ms_writer *w, uint32_t handle, const char *idstr,
                             ms_payload_kind payload_kind,
                             const void *compat, uint32_t compat_len)
{
    if (handle == MIG_DEVICE_HANDLE_INVALID)
        return ms_fail(&w->err, MS_ERR_USAGE, 0,
                       "device handle 0x%x is reserved", handle);
    if (!idstr || idstr[0] == '\0' || strnlen(idstr, IDSTR_MAX + 1) > IDSTR_MAX)
        return ms_fail(&w->err, MS_ERR_USAGE, 0,
                       "device %u: idstr must be 1..%d bytes", handle,
                       IDSTR_MAX);
    if ((unsigned)payload_kind >= MS_PAYLOAD_KIND_COUNT_)
        return ms_fail(&w->err, MS_ERR_USAGE, 0,
                       "device %u: payload kind %d unknown", handle,
                       (int)payload_kind);
    if (!compat && compat_len > 0)
        return ms_fail(&w->err, MS_ERR_USAGE, 0,
                       "device %u: compat data missing", handle);
    if (records_started(w))
        return ms_fail(&w->err, MS_ERR_USAGE, 0,
                       "device %u: devices must be added before any record",
                       handle);
    size_t i = device_slot(w, handle);
    if (i < w->device_count && w->devices[i].handle == handle)
        return ms_fail(&w->err, MS_ERR_USAGE, 0, "device %u: added twice",
                       handle);
    return 0;
}

int ms_writer_add_device(ms_writer *w, uint32_t handle, const char *idstr,
                         uint32_t instance_id, ms_payload_kind payload_kind,
                         const void *compat, uint32_t compat_len)
{
    if (!usable(w) || device_args_valid(w, handle, idstr, payload_kind, compat,
                                        compat_len) < 0)
        return -1;
    uint8_t *compat_copy = NULL;
    if (compat_len > 0) {
        compat_copy = ms_alloc(&w->alloc, compat_len);
        if (!compat_copy)
            return no_memory(w, "compat data");
        memcpy(compat_copy, compat, compat_len);
    }
    if (ms_grow(&w->alloc, (void **)&w->devices, sizeof *w->devices,
                &w->device_cap, w->device_count + 1) < 0) {
        ms_free(&w->alloc, compat_copy);
        return no_memory(w, "device list");
    }
    size_t i = device_slot(w, handle);
    memmove(&w->devices[i + 1], &w->devices[i],
            (w->device_count - i) * sizeof *w->devices);
    w->device_count++;

    wdevice *d = &w->devices[i];
    memset(d, 0, sizeof *d);
    d->handle = handle;
    d->instance_id = instance_id;
    d->payload_kind = payload_kind;
    d->idstr_len = (uint32_t)strlen(idstr);
    memcpy(d->idstr, idstr, d->idstr_len);
    d->compat = compat_copy;
    d->compat_len = compat_len;
    return 0;
}

/* ---- images ------------------------------------------------------------ */
static int image_begin_valid(ms_writer *w, uint32_t channel, const wdevice *d,
                             ms_phase phase, ms_transport transport,
                             uint32_t flags)
{
    uint32_t h = d->handle;
    if (phase < MS_PHASE_INITIAL || phase > MS_PHASE_FINAL ||
        (transport != MS_TRANSPORT_CHUNKS &&
         transport != MS_TRANSPORT_PACKETS) ||
        (flags & ~MIG_IMAGE_FLAG_FULL) != 0)
        return ms_fail(&w->err, MS_ERR_USAGE, 0,
                       "device %u: bad phase, transport or image flags", h);
    if (d->open)
        return ms_fail(&w->err, MS_ERR_USAGE, 0,
                       "device %u: an image is already open", h);
    if (d->has_home && d->home != channel)
        return ms_fail(&w->err, MS_ERR_USAGE, 0,
                       "device %u: images belong on channel %u, not %u", h,
                       d->home, channel);
    if (d->last_phase == MS_PHASE_FINAL ||
        (phase == MS_PHASE_INITIAL && d->images_begun > 0))
        return ms_fail(&w->err, MS_ERR_USAGE, 0,
                       "device %u: phase order: %s image after %s", h,
                       ms_phase_name(phase), ms_phase_name(d->last_phase));
    if (d->images_begun > UINT32_MAX)
        return ms_fail(&w->err, MS_ERR_LIMIT, 0,
                       "device %u: image_seq exhausted", h);
    return 0;
}

int ms_writer_image_begin(ms_writer *w, uint32_t channel, uint32_t device,
                          ms_phase phase, ms_transport transport,
                          uint32_t flags, uint64_t timestamp_ns)
{
    if (!usable(w))
        return -1;
    wdevice *d = known_device(w, device);
    if (!d || image_begin_valid(w, channel, d, phase, transport, flags) < 0)
        return -1;
    if (!d->image_hash && !(d->image_hash = ms_hash_state_new(&w->alloc)))
        return no_memory(w, "hash state");

    uint32_t seq = (uint32_t)d->images_begun;
    uint8_t p[MIG_IMAGE_BEGIN_SIZE] = {0};
    ms_put_le32(p + 0, device);
    ms_put_le32(p + 4, seq);
    p[8] = (uint8_t)phase;
    p[9] = (uint8_t)transport;
    ms_put_le32(p + 12, flags);
    ms_put_le64(p + 16, timestamp_ns);
    if (emit_for_device(w, channel, d, MIG_TAG_IMAGE_BEGIN, 0, p, sizeof p,
                        NULL, 0, NULL) < 0)
        return -1;

    d->has_home = 1;
    d->home = channel;
    d->images_begun++;
    d->last_phase = phase;
    d->open = 1;
    w->channels[channel].open_images++;
    d->seq = seq;
    d->transport = transport;
    d->length = d->units = 0;
    d->config_written = 0;
    d->config_length = d->config_hash = 0;
    ms_hash_reset(d->image_hash, 0);
    return 0;
}

/* 2.0: the image hash runs over the le64 unit hashes (spec 5.4). */
static void add_unit_hash(wdevice *d, uint64_t unit_hash)
{
    ms_hash_update_le64(d->image_hash, unit_hash);
}

/* The device's open image, when it uses `transport`. */
static wdevice *open_image(ms_writer *w, uint32_t device,
                           ms_transport transport)
{
    wdevice *d = known_device(w, device);
    if (!d)
        return NULL;
    if (!d->open || d->transport != transport) {
        ms_fail(&w->err, MS_ERR_USAGE, 0, "device %u: no open %s-mode image",
                device, transport == MS_TRANSPORT_CHUNKS ? "chunk" : "packet");
        return NULL;
    }
    return d;
}

static int compressor_ready(ms_writer *w, wchannel *c)
{
    if (c->zbuf)
        return 0;
    if (!c->z_ready) {
        c->z.zalloc = zlib_alloc;
        c->z.zfree = zlib_free;
        c->z.opaque = &w->alloc;
        if (deflateInit(&c->z, w->level) != Z_OK)
            return no_memory(w, "zlib stream");
        c->z_ready = 1;
    }
    /* Only output smaller than the chunk is kept, so the chunk size minus
     * one byte is all the room a compressed chunk ever needs. */
    c->zbuf_size = w->chunk_size > 1 ? w->chunk_size - 1 : 1;
    c->zbuf = ms_alloc(&w->alloc, c->zbuf_size);
    if (!c->zbuf)
        return no_memory(w, "compression buffer");
    return 0;
}

/* Compress one chunk as a complete zlib stream into c->zbuf.  Returns the
 * compressed size, 0 when it would not be smaller than len, or -1. */
static int64_t compress_chunk(ms_writer *w, wchannel *c, const uint8_t *data,
                              size_t len)
{
    if (compressor_ready(w, c) < 0)
        return -1;
    if (deflateReset(&c->z) != Z_OK)
        return no_memory(w, "zlib reset");
    c->z.next_in = (Bytef *)(uintptr_t)data; /* zlib does not write it */
    c->z.avail_in = (uInt)len;
    c->z.next_out = c->zbuf;
    c->z.avail_out = (uInt)MS_MIN(len - 1, c->zbuf_size);
    /* Z_STREAM_END only when the whole stream fit, i.e. it is smaller */
    if (deflate(&c->z, Z_FINISH) != Z_STREAM_END)
        return 0;
    return (int64_t)c->z.total_out;
}

static int write_chunk(ms_writer *w, wdevice *d, const uint8_t *data,
                       size_t len)
{
    wchannel *c = &w->channels[d->home];
    const void *body = data;
    size_t body_len = len;
    uint8_t compression = MS_COMPRESSION_NONE;
    if (w->level > 0 && len > 1) {
        int64_t packed = compress_chunk(w, c, data, len);
        if (packed < 0)
            return -1;
        if (packed > 0) {
            body = c->zbuf;
            body_len = (size_t)packed;
            compression = MS_COMPRESSION_ZLIB;
        }
    }
    uint8_t p[MIG_CHUNK_PREFIX] = {0};
    ms_put_le32(p + 0, d->handle);
    ms_put_le32(p + 4, d->seq);
    p[8] = compression;
    ms_put_le32(p + 12, (uint32_t)len); /* raw_len; len <= chunk_size */
    if (w->major == 1) {
        if (emit(w, d->home, MIG_TAG_CHUNK, 0, p, sizeof p, body, body_len) <
            0)
            return -1;
        ms_hash_update(d->image_hash, data, len);
    } else {
        /* the one pass over the data; a zlib chunk's stored bytes too */
        uint64_t unit_hash = ms_hash64(data, len, 0);
        uint64_t data_hash =
            body == data ? unit_hash : ms_hash64(body, body_len, 0);
        if (emit_unit(w, d->home, MIG_TAG_CHUNK, 0, p, sizeof p, body,
                      body_len, &data_hash) < 0)
            return -1;
        add_unit_hash(d, unit_hash);
    }
    d->length += len;
    d->units++;
    c->image_bytes += len;
    return 0;
}

int ms_writer_image_data(ms_writer *w, uint32_t device, const void *data,
                         size_t len)
{
    if (!usable(w))
        return -1;
    wdevice *d = open_image(w, device, MS_TRANSPORT_CHUNKS);
    if (!d)
        return -1;
    if (!data && len > 0)
        return ms_fail(&w->err, MS_ERR_USAGE, 0, "device %u: no data", device);
    /* the home channel was checked at begin, and cannot close while the
     * image is open; the DEVICE record was written with IMAGE_BEGIN */
    const uint8_t *p = data;
    while (len > 0) {
        size_t piece = MS_MIN(len, w->chunk_size);
        if (write_chunk(w, d, p, piece) < 0)
            return -1;
        p += piece;
        len -= piece;
    }
    return 0;
}

int ms_writer_image_packet(ms_writer *w, uint32_t channel, uint32_t device,
                           const void *data, size_t len, int config)
{
    if (!usable(w))
        return -1;
    wdevice *d = open_image(w, device, MS_TRANSPORT_PACKETS);
    if (!d)
        return -1;
    if (d->config_written)
        return ms_fail(&w->err, MS_ERR_USAGE, 0,
                       "device %u: packet after the config packet", device);
    if ((!config && len == 0) || (!data && len > 0))
        return ms_fail(&w->err, MS_ERR_USAGE, 0,
                       "device %u: a data packet needs bytes", device);
    if (d->units >= UINT32_MAX) /* the config packet's idx must fit too */
        return ms_fail(&w->err, MS_ERR_LIMIT, 0,
                       "device %u: packet index exhausted", device);

    uint8_t p[MIG_PACKET_PREFIX] = {0};
    ms_put_le32(p + 0, device);
    ms_put_le32(p + 4, d->seq);
    ms_put_le32(p + 8, (uint32_t)d->units); /* idx: data packets so far */
    ms_put_le32(p + 12, config ? MIG_PACKET_FLAG_CONFIG : 0);
    /* 2.0: the one pass over the data (payload check, unit hash, config
     * hash); 1.0 hashes a data packet's bytes into both checks instead */
    uint64_t data_hash =
        w->major == 1 && !config ? 0 : ms_hash64(data, len, 0);
    if (emit_for_device(w, channel, d, MIG_TAG_PACKET, 0, p, sizeof p, data,
                        len, w->major == 1 ? NULL : &data_hash) < 0)
        return -1;
    w->channels[channel].packet_count++;
    if (config) {
        d->config_written = 1;
        d->config_length = len;
        d->config_hash = data_hash;
    } else {
        if (w->major == 1)
            ms_hash_update(d->image_hash, data, len);
        else
            add_unit_hash(d, data_hash);
        d->length += len;
        d->units++;
    }
    return 0;
}

int ms_writer_image_end(ms_writer *w, uint32_t device, uint64_t timestamp_ns)
{
    if (!usable(w))
        return -1;
    wdevice *d = known_device(w, device);
    if (!d)
        return -1;
    if (!d->open)
        return ms_fail(&w->err, MS_ERR_USAGE, 0, "device %u: no open image",
                       device);
    if (d->transport == MS_TRANSPORT_PACKETS && !d->config_written)
        return ms_fail(&w->err, MS_ERR_USAGE, 0,
                       "device %u: packet-mode image without config packet",
                       device);
    wchannel *c = &w->channels[d->home];
    if (c->image_count == UINT32_MAX)
        return channel_fail(w, d->home, MS_ERR_LIMIT, "image count exhausted");

    uint8_t p[MIG_IMAGE_END_SIZE];
    ms_put_le32(p + 0, device);
    ms_put_le32(p + 4, d->seq);
    ms_put_le64(p + 8, d->length);
    ms_put_le64(p + 16, ms_hash_digest(d->image_hash));
    ms_put_le64(p + 24, d->units);
    ms_put_le64(p + 32, timestamp_ns);
    ms_put_le64(p + 40, d->config_length);
    ms_put_le64(p + 48, d->config_hash);
    if (emit(w, d->home, MIG_TAG_IMAGE_END, 0, p, sizeof p, NULL, 0) < 0)
        return -1;
    c->image_count++;
    c->open_images--;
    d->open = 0;
    return 0;
}

/* ---- optional device records (spec 5.6-5.8) ---------------------------- */
int ms_writer_precopy_info(ms_writer *w, uint32_t channel, uint32_t device,
                           uint32_t flags, uint64_t initial_bytes,
                           uint64_t dirty_bytes, uint64_t timestamp_ns)
{
    if (!usable(w))
        return -1;
    wdevice *d = known_device(w, device);
    if (!d)
        return -1;
    if (flags & ~MIG_PRECOPY_FLAG_REINIT)
        return ms_fail(&w->err, MS_ERR_USAGE, 0,
                       "device %u: precopy flags 0x%x", device, flags);
    uint8_t p[MIG_PRECOPY_INFO_SIZE];
    ms_put_le32(p + 0, device);
    ms_put_le32(p + 4, flags);
    ms_put_le64(p + 8, initial_bytes);
    ms_put_le64(p + 16, dirty_bytes);
    ms_put_le64(p + 24, timestamp_ns);
    return emit_for_device(w, channel, d, MIG_TAG_PRECOPY_INFO,
                           MIG_FLAG_OPTIONAL, p, sizeof p, NULL, 0, NULL);
}

int ms_writer_state_change(ms_writer *w, uint32_t channel, uint32_t device,
                           uint32_t from, uint32_t to, uint64_t timestamp_ns)
{
    if (!usable(w))
        return -1;
    wdevice *d = known_device(w, device);
    if (!d)
        return -1;
    if (from > MIG_VFIO_STATE_MAX || to > MIG_VFIO_STATE_MAX)
        return ms_fail(&w->err, MS_ERR_USAGE, 0,
                       "device %u: state %u -> %u out of range", device, from,
                       to);
    uint8_t p[MIG_STATE_CHANGE_SIZE] = {0};
    ms_put_le32(p + 0, device);
    ms_put_le32(p + 4, from);
    ms_put_le32(p + 8, to);
    ms_put_le64(p + 16, timestamp_ns);
    return emit_for_device(w, channel, d, MIG_TAG_STATE_CHANGE,
                           MIG_FLAG_OPTIONAL, p, sizeof p, NULL, 0, NULL);
}

int ms_writer_stop_copy_size(ms_writer *w, uint32_t channel, uint32_t device,
                             uint64_t bytes, uint64_t timestamp_ns)
{
    if (!usable(w))
        return -1;
    wdevice *d = known_device(w, device);
    if (!d)
        return -1;
    uint8_t p[MIG_STOP_COPY_SIZE_SIZE] = {0};
    ms_put_le32(p + 0, device);
    ms_put_le64(p + 8, bytes);
    ms_put_le64(p + 16, timestamp_ns);
    return emit_for_device(w, channel, d, MIG_TAG_STOP_COPY_SIZE,
                           MIG_FLAG_OPTIONAL, p, sizeof p, NULL, 0, NULL);
}

static int known_tag(uint32_t tag)
{
    switch (tag) {
    case MIG_TAG_DEVICE:
    case MIG_TAG_IMAGE_BEGIN:
    case MIG_TAG_CHUNK:
    case MIG_TAG_IMAGE_END:
    case MIG_TAG_PACKET:
    case MIG_TAG_PRECOPY_INFO:
    case MIG_TAG_STATE_CHANGE:
    case MIG_TAG_STOP_COPY_SIZE:
    case MIG_TAG_STREAM_BEGIN:
    case MIG_TAG_STREAM_DATA:
    case MIG_TAG_STREAM_END:
    case MIG_TAG_END:
        return 1;
    }
    return 0;
}

int ms_writer_raw_record(ms_writer *w, uint32_t channel, uint32_t tag,
                         uint32_t flags, const void *payload, size_t len)
{
    if (!usable(w))
        return -1;
    if (known_tag(tag))
        return ms_fail(&w->err, MS_ERR_USAGE, 0,
                       "tag 0x%x has its own writer function", tag);
    if ((flags & ~MIG_FLAGS_KNOWN) != 0 ||
        (tag >= MIG_TAG_VENDOR_FIRST && !(flags & MIG_FLAG_OPTIONAL)))
        return ms_fail(&w->err, MS_ERR_USAGE, 0,
                       "tag 0x%x: flags 0x%x not allowed", tag, flags);
    if (!payload && len > 0)
        return ms_fail(&w->err, MS_ERR_USAGE, 0, "tag 0x%x: no payload", tag);
    if (!record_channel(w, channel))
        return -1;
    return emit(w, channel, tag, flags, NULL, 0, payload, len);
}

int ms_writer_close_channel(ms_writer *w, uint32_t channel,
                            uint64_t timestamp_ns)
{
    if (!usable(w))
        return -1;
    wchannel *c = record_channel(w, channel);
    if (!c)
        return -1;
    if (c->open_images > 0)
        return channel_fail(w, channel, MS_ERR_USAGE,
                            "an image homed here is still open");
    if (c->open_streams > 0)
        return channel_fail(w, channel, MS_ERR_USAGE,
                            "an embedded stream is still open");
    uint8_t p[MIG_END_SIZE];
    ms_put_le64(p + 0, c->record_count);
    ms_put_le64(p + 8, c->offset);
    ms_put_le64(p + 16, c->image_bytes);
    ms_put_le64(p + 24, c->packet_count);
    ms_put_le32(p + 32, c->device_count);
    ms_put_le32(p + 36, c->image_count);
    ms_put_le64(p + 40, timestamp_ns);
    if (emit(w, channel, MIG_TAG_END, 0, p, sizeof p, NULL, 0) < 0)
        return -1;
    c->state = CH_CLOSED;
    return 0;
}

/* ---- 2.1 embedded streams (spec 5.10-5.12) ------------------------------- */

/* The channel, when it may take stream records (an archive writer's). */
static wchannel *stream_channel(ms_writer *w, uint32_t channel)
{
    if (!usable(w))
        return NULL;
    if (!w->archive) {
        ms_fail(&w->err, MS_ERR_USAGE, 0,
                "embedded streams need ms_writer_options.archive");
        return NULL;
    }
    return record_channel(w, channel);
}

static wstream *open_wstream(ms_writer *w, uint32_t channel, uint32_t id)
{
    wchannel *c = stream_channel(w, channel);
    if (!c)
        return NULL;
    if (id >= c->nstreams || !c->streams[id].open) {
        channel_fail(w, channel, MS_ERR_USAGE, "no such open stream");
        return NULL;
    }
    return &c->streams[id];
}

int ms_writer_stream_begin(ms_writer *w, uint32_t channel,
                           ms_archive_role role,
                           ms_archive_direction direction,
                           uint32_t connection, ms_format format,
                           const char *name, uint64_t declared_length,
                           uint32_t *stream_id)
{
    wchannel *c = stream_channel(w, channel);
    if (!c)
        return -1;
    size_t name_len = name ? strlen(name) : 0;
    if (name_len == 0 || name_len > MIG_STREAM_NAME_MAX || strchr(name, '/') ||
        strcmp(name, ".") == 0 || strcmp(name, "..") == 0 ||
        (unsigned)role > MIG_STREAM_ROLE_MAX ||
        (unsigned)direction > MIG_STREAM_DIR_MAX || c->nstreams >= UINT32_MAX)
        return ms_fail(&w->err, MS_ERR_USAGE, 0,
                       "stream: bad name, role or direction");
    if (ms_grow(&w->alloc, (void **)&c->streams, sizeof *c->streams,
                &c->streams_cap, c->nstreams + 1) < 0)
        return no_memory(w, "stream table");
    wstream *s = &c->streams[c->nstreams];
    memset(s, 0, sizeof *s);
    if (!(s->hash = ms_hash_state_new(&w->alloc)))
        return no_memory(w, "stream hash");
    ms_hash_reset(s->hash, 0);
    uint32_t id = (uint32_t)c->nstreams;
    uint8_t p[MIG_STREAM_BEGIN_FIXED + MIG_STREAM_NAME_MAX] = {0};
    ms_put_le32(p + MIG_SB_OFF_ID, id);
    p[MIG_SB_OFF_ROLE] = (uint8_t)role;
    p[MIG_SB_OFF_DIRECTION] = (uint8_t)direction;
    ms_put_le32(p + MIG_SB_OFF_CONNECTION, connection);
    ms_put_le32(p + MIG_SB_OFF_FORMAT, (uint32_t)format);
    ms_put_le64(p + MIG_SB_OFF_LENGTH, declared_length);
    ms_put_le32(p + MIG_SB_OFF_NAME_LEN, (uint32_t)name_len);
    memcpy(p + MIG_STREAM_BEGIN_FIXED, name, name_len);
    c->nstreams++; /* its hash state is freed with the channel */
    if (emit(w, channel, MIG_TAG_STREAM_BEGIN, MIG_FLAG_OPTIONAL, p,
             MIG_STREAM_BEGIN_FIXED + name_len, NULL, 0) < 0)
        return -1;
    s->open = 1;
    s->declared = declared_length;
    c->open_streams++;
    if (stream_id)
        *stream_id = id;
    return 0;
}

/* STREAM_DATA records of at most chunk_size bytes each. */
int ms_writer_stream_data(ms_writer *w, uint32_t channel, uint32_t stream,
                          const void *data, size_t len)
{
    wstream *s = open_wstream(w, channel, stream);
    if (!s)
        return -1;
    if (!data && len > 0)
        return ms_fail(&w->err, MS_ERR_USAGE, 0, "stream data: no bytes");
    if (s->declared != MS_ARCHIVE_LENGTH_UNKNOWN &&
        len > s->declared - s->written)
        return channel_fail(w, channel, MS_ERR_USAGE,
                            "stream data beyond its declared length");
    const uint8_t *b = data;
    while (len > 0) {
        size_t n = len < w->chunk_size ? len : w->chunk_size;
        uint8_t p[MIG_STREAM_DATA_PREFIX] = {0};
        ms_put_le32(p, stream);
        ms_put_le64(p + 8, s->written);
        if (emit(w, channel, MIG_TAG_STREAM_DATA, MIG_FLAG_OPTIONAL, p,
                 sizeof p, b, n) < 0)
            return -1;
        ms_hash_update(s->hash, b, n);
        s->written += n;
        b += n;
        len -= n;
    }
    return 0;
}

int ms_writer_stream_end(ms_writer *w, uint32_t channel, uint32_t stream)
{
    wstream *s = open_wstream(w, channel, stream);
    if (!s)
        return -1;
    if (s->declared != MS_ARCHIVE_LENGTH_UNKNOWN && s->written != s->declared)
        return channel_fail(w, channel, MS_ERR_USAGE,
                            "stream shorter than its declared length");
    uint8_t p[MIG_STREAM_END_SIZE] = {0};
    ms_put_le32(p, stream);
    ms_put_le64(p + 8, s->written);
    ms_put_le64(p + 16, ms_hash_digest(s->hash));
    if (emit(w, channel, MIG_TAG_STREAM_END, MIG_FLAG_OPTIONAL, p, sizeof p,
             NULL, 0) < 0)
        return -1;
    s->open = 0;
    w->channels[channel].open_streams--;
    return 0;
}
