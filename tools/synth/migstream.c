/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* The default mode: valid synthetic migstream v1 sets, written through
 * the library's public writer (ms_writer).
 *
 * The workload imitates a VFIO live migration: every device goes through
 * RUNNING -> PRE_COPY, sends an initial image and some dirty (middle)
 * images with PRECOPY_INFO readings around them, then PRE_COPY_P2P ->
 * STOP_COPY, its final image (CHUNK records on its home channel, or
 * device-state packets spread over all channels) and STOP.
 *
 * Everything (UUID, created_ns, timestamps, image bytes, packet placement)
 * comes from one PRNG seeded by --seed, so the same options give
 * byte-identical files. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "synth.h"

#define VENDOR_TAG 0x80000001u /* spec 4.2: vendor range, optional */
#define LINK_BITS_PER_NS 10    /* simulated 10 Gbit/s link */

/* One channel's output file. */
typedef struct sink {
    FILE *f;
    char *path;
    int err; /* errno of the first failed write, 0 while all went well */
} sink;

typedef struct synth {
    const workload *wl;
    dev_gen *gens;         /* 4 per device (by ms_phase); NULL: random bytes */
    uint64_t middle_first; /* the first middle image's size (mlx5) */
    ms_writer *w;
    uint64_t rng;
    uint64_t now_ns; /* the simulated monotonic clock */
    uint8_t *buf;    /* one chunk or packet of image bytes */
    uint32_t *order; /* channels in shuffled order, for packet placement */
    uint32_t order_left;
} synth;

/* ---- simulated time ---------------------------------------------------- */
static uint64_t tick(synth *s)
{
    s->now_ns += 5000 + rng_below(&s->rng, 50000); /* 5..55 us between steps */
    return s->now_ns;
}

static void transfer(synth *s, uint64_t bytes)
{
    s->now_ns += bytes * 8 / LINK_BITS_PER_NS;
}

/* ---- output ------------------------------------------------------------ */
static int sink_write(void *opaque, const void *buf, size_t len)
{
    sink *k = opaque;
    errno = 0;
    if (fwrite(buf, 1, len, k->f) != len) {
        k->err = errno ? errno : EIO;
        return -1;
    }
    return 0;
}

static int sink_close(sink *k)
{
    if (!k->f)
        return 0;
    int err = close_output(k->f);
    k->f = NULL;
    if (err && !k->err)
        k->err = err;
    return err ? -1 : 0;
}

/* ---- the workload ------------------------------------------------------ */
static uint32_t home_of(const synth *s, uint32_t device)
{
    return device % s->wl->channels;
}

/* The next n bytes of device dev's image of a phase: the device's
 * payload, or (without --kind, for --kind raw) random state bytes. */
static void image_bytes(synth *s, uint32_t dev, ms_phase phase, uint8_t *buf,
                        size_t n)
{
    if (s->gens)
        gen_next(&s->gens[(size_t)dev * 4 + phase], buf, n);
    else
        fill_state(&s->rng, buf, n);
}

static int chunk_image(synth *s, uint32_t dev, ms_phase phase, uint32_t flags,
                       uint64_t size)
{
    if (ms_writer_image_begin(s->w, home_of(s, dev), dev, phase,
                              MS_TRANSPORT_CHUNKS, flags, tick(s)) < 0)
        return -1;
    for (uint64_t left = size; left > 0;) {
        size_t n =
            (size_t)(left < s->wl->chunk_size ? left : s->wl->chunk_size);
        image_bytes(s, dev, phase, s->buf, n);
        if (ms_writer_image_data(s->w, dev, s->buf, n) < 0)
            return -1;
        transfer(s, n);
        left -= n;
    }
    return ms_writer_image_end(s->w, dev, tick(s));
}

static int packet_image(synth *s, uint32_t dev, ms_phase phase, uint32_t flags,
                        uint64_t size)
{
    if (ms_writer_image_begin(s->w, home_of(s, dev), dev, phase,
                              MS_TRANSPORT_PACKETS, flags, tick(s)) < 0)
        return -1;
    /* packets go to the channels in rounds of a fresh shuffle each */
    for (uint64_t left = size; left > 0;) {
        size_t n =
            (size_t)(left < s->wl->packet_size ? left : s->wl->packet_size);
        image_bytes(s, dev, phase, s->buf, n);
        if (ms_writer_image_packet(s->w,
                                   shuffled_next(&s->rng, s->order,
                                                 &s->order_left,
                                                 s->wl->channels),
                                   dev, s->buf, n, 0) < 0)
            return -1;
        transfer(s, n);
        left -= n;
    }
    size_t config_len = 100 + (size_t)rng_below(&s->rng, 201);
    rng_bytes(&s->rng, s->buf, config_len);
    uint32_t ch = (uint32_t)rng_below(&s->rng, s->wl->channels);
    if (ms_writer_image_packet(s->w, ch, dev, s->buf, config_len, 1) < 0)
        return -1;
    transfer(s, config_len);
    return ms_writer_image_end(s->w, dev, tick(s));
}

static int state_change(synth *s, uint32_t dev, uint32_t from, uint32_t to)
{
    return ms_writer_state_change(s->w, home_of(s, dev), dev, from, to,
                                  tick(s));
}

static int precopy(synth *s, uint32_t dev, uint64_t initial, uint64_t dirty)
{
    return ms_writer_precopy_info(s->w, home_of(s, dev), dev, 0, initial, dirty,
                                  tick(s));
}

/* RUNNING -> PRE_COPY, the driver's size estimate, the initial image. */
static int start_precopy(synth *s, uint32_t dev)
{
    const workload *wl = s->wl;
    /* an estimate a little off the real final size, as drivers give */
    uint64_t estimate = wl->final_size - wl->final_size / 10 +
                        rng_below(&s->rng, wl->final_size / 5 + 1); /* +-10% */
    if (state_change(s, dev, MS_VFIO_STATE_RUNNING, MS_VFIO_STATE_PRE_COPY) <
            0 ||
        ms_writer_stop_copy_size(s->w, home_of(s, dev), dev, estimate,
                                 tick(s)) < 0)
        return -1;
    if (wl->initial_size == 0)
        return 0;
    uint64_t dirtied =
        wl->middle_size / 4 + rng_below(&s->rng, wl->middle_size / 8 + 1);
    if (precopy(s, dev, wl->initial_size, 0) < 0 ||
        chunk_image(s, dev, MS_PHASE_INITIAL, MS_IMAGE_FULL, wl->initial_size) <
            0 ||
        precopy(s, dev, 0, dirtied) < 0)
        return -1;
    return 0;
}

/* One dirty-page round: dirty bytes pending before, rising again after. */
static int middle_round(synth *s, uint32_t dev, uint64_t round)
{
    const workload *wl = s->wl;
    uint64_t dirtied = wl->middle_size / (wl->middle_count + 1) * (round + 1) +
                       rng_below(&s->rng, wl->middle_size / 8 + 1);
    uint64_t size = round == 0 && s->gens ? s->middle_first : wl->middle_size;
    if (precopy(s, dev, 0, size) < 0 ||
        chunk_image(s, dev, MS_PHASE_MIDDLE,
                    wl->kind == MS_PAYLOAD_VIRTIO && s->gens ? MS_IMAGE_FULL
                                                             : 0,
                    size) < 0 ||
        precopy(s, dev, 0, dirtied) < 0)
        return -1;
    return 0;
}

static int final_image(synth *s, uint32_t dev)
{
    const workload *wl = s->wl;
    /* with no precopy image the final image is the whole state */
    uint32_t flags = (wl->initial_size == 0 && wl->middle_count == 0) ||
                             (s->gens && wl->kind == MS_PAYLOAD_VIRTIO)
                         ? MS_IMAGE_FULL
                         : 0;
    if (wl->final_transport == MS_TRANSPORT_PACKETS)
        return packet_image(s, dev, MS_PHASE_FINAL, flags, wl->final_size);
    return chunk_image(s, dev, MS_PHASE_FINAL, flags, wl->final_size);
}

static int vendor_record(synth *s)
{
    static const char note[] = "migstream-synth vendor note";
    uint8_t payload[sizeof note - 1 + 8];
    memcpy(payload, note, sizeof note - 1);
    rng_bytes(&s->rng, payload + sizeof note - 1, 8);
    return ms_writer_raw_record(s->w, 0, VENDOR_TAG, MS_RECORD_OPTIONAL,
                                payload, sizeof payload);
}

static int add_devices(synth *s)
{
    for (uint32_t i = 0; i < s->wl->devices; i++) {
        char idstr[32];
        uint32_t slot = i + 2; /* QEMU's first free PCI slot on pc/q35 */
        snprintf(idstr, sizeof idstr, "0000:%02x:%02x.0/vfio", slot / 32,
                 slot % 32);
        if (ms_writer_add_device(s->w, i, idstr, 0, (uint32_t)s->wl->kind, NULL,
                                 0) < 0)
            return -1;
    }
    return 0;
}

/* The migration, after the channels were opened. */
static int run_workload(synth *s)
{
    const workload *wl = s->wl;
    uint32_t n = wl->devices;
    for (uint32_t d = 0; d < n; d++)
        if (start_precopy(s, d) < 0)
            return -1;
    for (uint64_t round = 0; round < wl->middle_count; round++)
        for (uint32_t d = 0; d < n; d++)
            if (middle_round(s, d, round) < 0)
                return -1;
    if (wl->vendor_record && vendor_record(s) < 0)
        return -1;
    /* switchover: every device to P2P first, then all to STOP_COPY */
    for (uint32_t d = 0; d < n; d++)
        if (state_change(s, d, MS_VFIO_STATE_PRE_COPY,
                         MS_VFIO_STATE_PRE_COPY_P2P) < 0)
            return -1;
    for (uint32_t d = 0; d < n; d++)
        if (state_change(s, d, MS_VFIO_STATE_PRE_COPY_P2P,
                         MS_VFIO_STATE_STOP_COPY) < 0)
            return -1;
    for (uint32_t d = 0; d < n; d++)
        if (final_image(s, d) < 0)
            return -1;
    for (uint32_t d = 0; d < n; d++)
        if (state_change(s, d, MS_VFIO_STATE_STOP_COPY, MS_VFIO_STATE_STOP) < 0)
            return -1;
    for (uint32_t c = 0; c < wl->channels; c++)
        if (ms_writer_close_channel(s->w, c, tick(s)) < 0)
            return -1;
    return 0;
}

static int open_sinks(const workload *wl, sink *sinks)
{
    if (wl->to_stdout) {
        sinks[0].f = stdout;
        sinks[0].path = NULL;
        return 0;
    }
    if (mkdir(wl->out_dir, 0777) != 0 && errno != EEXIST)
        return io_error(wl->out_dir, errno);
    for (uint32_t c = 0; c < wl->channels; c++) {
        size_t len = strlen(wl->out_dir) + 32;
        sinks[c].path = malloc(len);
        if (!sinks[c].path)
            return io_error(wl->out_dir, ENOMEM);
        snprintf(sinks[c].path, len, "%s/channel-%u.mig", wl->out_dir, c);
        sinks[c].f = fopen(sinks[c].path, "wb");
        if (!sinks[c].f)
            return io_error(sinks[c].path, errno);
    }
    return 0;
}

static const char *sink_name(const sink *k)
{
    return k->path ? k->path : "<stdout>";
}

/* Close every sink; the first failure (in a write or a close) decides. */
static int close_sinks(const workload *wl, sink *sinks, int status)
{
    for (uint32_t c = 0; c < wl->channels; c++) {
        sink_close(&sinks[c]);
        if (sinks[c].err && status != TOOL_USAGE)
            status = io_error(sink_name(&sinks[c]), sinks[c].err);
        free(sinks[c].path);
    }
    return status;
}

static ms_writer *create_writer(synth *s)
{
    const workload *wl = s->wl;
    ms_writer_options opt;
    ms_writer_options_init(&opt);
    rng_bytes(&s->rng, opt.uuid, sizeof opt.uuid);
    opt.uuid[6] = (uint8_t)((opt.uuid[6] & 0x0F) | 0x40); /* UUID v4 */
    opt.uuid[8] = (uint8_t)((opt.uuid[8] & 0x3F) | 0x80);
    opt.channel_count = wl->channels;
    opt.created_ns = CREATED_BASE_NS + rng_below(&s->rng, 86400000000000ull);
    opt.chunk_size = (size_t)wl->chunk_size;
    opt.compression_level = wl->compress;
    return ms_writer_create(&opt);
}

/* A failed output callback is an I/O error: name the file, not the API. */
static int library_error(const ms_writer *w, const sink *sinks)
{
    const ms_error_info *e = ms_writer_error(w);
    if (e->has_channel && sinks[e->channel].err)
        return io_error(sink_name(&sinks[e->channel]), sinks[e->channel].err);
    fprintf(stderr, PROG ": %s: %s\n", ms_error_name(e->code), e->detail);
    return TOOL_INVALID;
}

/* Write the whole set; returns an exit code.  The sinks are open. */
static int synthesize(synth *s, sink *sinks)
{
    const workload *wl = s->wl;
    s->w = create_writer(s);
    if (!s->w) {
        fprintf(stderr, PROG ": no-memory: creating the writer\n");
        return TOOL_INVALID;
    }
    /* a monotonic clock an hour or two after boot */
    s->now_ns = (3600 + rng_below(&s->rng, 3600)) * 1000000000ull;
    int failed = add_devices(s) < 0;
    for (uint32_t c = 0; c < wl->channels && !failed; c++)
        failed = ms_writer_open_channel(s->w, c, sink_write, &sinks[c]) < 0;
    if (!failed)
        failed = run_workload(s) < 0;
    int status = TOOL_OK;
    if (failed)
        status = library_error(s->w, sinks);
    ms_writer_free(s->w);
    return status;
}

/* --kind (other than raw): every image carries the driver's payload, and
 * the sizes become the generators' (returns 0, or an exit code). */
static int payload_gens(synth *s, workload *wl)
{
    workload orig = *wl;
    s->gens =
        calloc((size_t)(wl->devices ? wl->devices : 1) * 4, sizeof *s->gens);
    if (!s->gens) {
        fprintf(stderr, PROG ": out of memory\n");
        return TOOL_USAGE;
    }
    for (uint32_t d = 0; d < wl->devices; d++)
        if (gens_init(&orig, d, &s->gens[(size_t)d * 4], 1) < 0) {
            for (uint32_t k = 0; k <= d; k++)
                gens_free(&s->gens[(size_t)k * 4]);
            free(s->gens);
            s->gens = NULL;
            usage_error("device sizes too large for --kind %s",
                        ms_payload_kind_name((uint32_t)wl->kind));
            return TOOL_USAGE;
        }
    if (wl->devices) {
        const dev_gen *g = &s->gens[0];
        wl->initial_size = g[MS_PHASE_INITIAL].total;
        if (g[MS_PHASE_MIDDLE].total == 0 || wl->middle_count == 0) {
            wl->middle_count = 0;
        } else {
            wl->middle_size = g[MS_PHASE_MIDDLE].image_size;
            s->middle_first = g[MS_PHASE_MIDDLE].total -
                              (wl->middle_count - 1) * wl->middle_size;
        }
        wl->final_size = g[MS_PHASE_FINAL].total;
    }
    return TOOL_OK;
}

int migstream_mode(workload *wl)
{
    /* Without --kind the images are the random state bytes they always
     * were: the devices say raw, the one kind those bytes are valid as. */
    if (!wl->kind_given)
        wl->kind = MS_PAYLOAD_RAW;
    synth s = {.wl = wl, .rng = wl->seed};
    if (wl->kind_given && wl->kind != MS_PAYLOAD_RAW &&
        payload_gens(&s, wl) != TOOL_OK)
        return TOOL_USAGE;
    size_t buf_size =
        (size_t)(wl->chunk_size > wl->packet_size ? wl->chunk_size
                                                  : wl->packet_size);
    s.buf = malloc(buf_size < 512 ? 512 : buf_size); /* config packets too */
    s.order = calloc(wl->channels, sizeof *s.order);
    sink *sinks = calloc(wl->channels, sizeof *sinks);
    int status = TOOL_USAGE;
    if (!s.buf || !s.order || !sinks) {
        fprintf(stderr, PROG ": out of memory\n");
    } else {
        status = open_sinks(wl, sinks);
        if (status == TOOL_OK)
            status = synthesize(&s, sinks);
        status = close_sinks(wl, sinks, status);
    }
    free(sinks);
    free(s.order);
    free(s.buf);
    for (uint32_t d = 0; s.gens && d < wl->devices; d++)
        gens_free(&s.gens[(size_t)d * 4]);
    free(s.gens);
    return status;
}
