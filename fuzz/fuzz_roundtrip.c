/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* Round trip: derive a small migration from the input, write it with
 * ms_writer into memory (one growable buffer per channel), read every
 * channel back with ms_reader + ms_set, and abort if anything fails or if
 * the bytes read differ from the bytes written.
 *
 * The workload: 1..3 channels, 1..3 devices (each with a home channel),
 * 0..4 images per device in a legal phase order (initial? middle* final?),
 * chunk or packet transport, 0..2 KiB per image (0..256 bytes with chunks
 * of at most 64 bytes) with content from the input
 * (copied, constant or pseudo-random, so zlib both wins and loses), chunk
 * size 1..4096, zlib level 0..9, data handed to the writer in pieces of
 * input-chosen sizes, packets spread over all channels, optional records
 * (precopy info, state change, stop-copy size, vendor) in between, and
 * devices' work interleaved.
 *
 * Checked: every writer, reader and set call succeeds; per (device, seq)
 * the chunk-mode bytes (the readers' MS_EV_DATA events, in_packet=0) and
 * the packet-mode bytes (the set's reassembled MS_EV_DATA events) equal
 * what was written, in order, with matching image offsets; image headers,
 * ends and device declarations match; every optional record comes back;
 * every channel ends with its END record. */
#include "fuzz_common.h"

#define MAX_DEV 3
#define MAX_CH 3
#define MAX_IMG 4
#define MAX_IMAGE_BYTES 2048       /* small: exec/s (fuzz/corpus/README.md) */
#define TINY_CHUNK 64              /* chunk sizes up to this ... */
#define TINY_CHUNK_IMAGE_BYTES 256 /* ... carry images up to this */
#define MAX_CONFIG 64
#define MAX_OUTPUT ((size_t)64 << 20)

/* ---- input as a source of choices --------------------------------------- */
typedef struct src {
    const uint8_t *data;
    size_t size, pos;
} src;

static int src_left(const src *s)
{
    return s->pos < s->size;
}

static unsigned u8(src *s)
{
    return s->pos < s->size ? s->data[s->pos++] : 0;
}

static unsigned u16(src *s)
{
    unsigned v = u8(s);
    return v | (u8(s) << 8);
}

static uint32_t u32(src *s)
{
    uint32_t v = u16(s);
    return v | ((uint32_t)u16(s) << 16);
}

static uint64_t u64(src *s)
{
    uint64_t v = u32(s);
    return v | ((uint64_t)u32(s) << 32);
}

/* ---- growable output buffers -------------------------------------------- */
typedef struct buf {
    uint8_t *p;
    size_t len, cap;
} buf;

static void buf_append(buf *b, const void *data, size_t len)
{
    if (len == 0)
        return;
    FUZZ_CHECK(len <= MAX_OUTPUT && b->len <= MAX_OUTPUT - len);
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + len)
            cap *= 2;
        uint8_t *p = (uint8_t *)realloc(b->p, cap);
        FUZZ_CHECK(p != NULL);
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, len);
    b->len += len;
}

static int write_fn(void *opaque, const void *data, size_t len)
{
    buf_append((buf *)opaque, data, len);
    return 0;
}

/* ---- the workload ------------------------------------------------------- */
typedef struct image {
    ms_phase phase;
    ms_transport transport;
    uint32_t flags;
    uint8_t *content; /* what is written */
    size_t len;
    uint8_t config[MAX_CONFIG];
    size_t config_len;
    /* read back */
    buf got, got_config;
    int begun, ended, assembled, config_events;
} image;

typedef struct device {
    uint32_t handle, instance_id, home;
    ms_payload_kind payload_kind;
    char idstr[48];
    uint8_t compat[32];
    uint32_t compat_len;
    uint32_t n_images;
    image img[MAX_IMG];
    /* writing progress */
    uint32_t next_image;
    int open;
    size_t written;
    /* reading: devices declared per channel */
    int declared[MAX_CH];
} device;

typedef struct workload {
    uint32_t nch, ndev;
    device dev[MAX_DEV];
    ms_writer_options wopt;
    buf out[MAX_CH];
    uint64_t ts;
    /* optional records written / read */
    unsigned opt_written[4], opt_read[4];
    unsigned ends;
} workload;

static void fail_writer(const ms_writer *w, int line)
{
    const ms_error_info *e = ms_writer_error(w);
    fprintf(stderr, "fuzz_roundtrip.c:%d: writer failed: %s: %s\n", line,
            ms_error_name(e->code), e->detail);
    abort();
}
#define W(call)                                                                \
    do {                                                                       \
        if ((call) != 0)                                                       \
            fail_writer(w, __LINE__);                                          \
    } while (0)

static void fail_read(const char *what, const ms_error_info *e, uint32_t ch)
{
    fprintf(stderr,
            "fuzz_roundtrip.c: %s failed on channel %u: %s at %llu: "
            "%s\n",
            what, ch, ms_error_name(e->code), (unsigned long long)e->offset,
            e->detail);
    abort();
}

static size_t min_size(size_t a, size_t b)
{
    return a < b ? a : b;
}

/* A piece, a run or 8 pseudo-random bytes at a time: a loop per byte is
 * traced by libFuzzer's comparison hooks (calls per byte: fuzz/corpus/
 * README.md). */
static void fill_content(src *s, uint8_t *p, size_t len)
{
    unsigned mode = u8(s) % 3;
    if (mode == 0 && s->size > 0) { /* the input itself, cyclically */
        size_t at = u16(s) % s->size;
        for (size_t i = 0, n; i < len; i += n, at = 0) {
            n = min_size(len - i, s->size - at);
            memcpy(p + i, s->data + at, n);
        }
    } else if (mode == 1) { /* runs of 97 bytes: compresses well */
        uint8_t v = (uint8_t)u8(s);
        for (size_t i = 0; i < len; i += 97, v++)
            memset(p + i, v, min_size(len - i, 97));
    } else { /* pseudo-random: does not compress */
        fuzz_rng r = {u64(s)};
        for (size_t i = 0; i < len; i += 8) {
            uint64_t x = fuzz_rng_next(&r);
            memcpy(p + i, &x, min_size(len - i, sizeof x));
        }
    }
}

static void plan(workload *wl, src *s)
{
    wl->nch = 1 + u8(s) % MAX_CH;
    wl->ndev = 1 + u8(s) % MAX_DEV;

    ms_writer_options_init(&wl->wopt);
    for (int i = 0; i < 16; i++)
        wl->wopt.uuid[i] = (uint8_t)u8(s);
    wl->wopt.channel_count = wl->nch;
    wl->wopt.created_ns = u64(s);
    unsigned b = u8(s);
    wl->wopt.chunk_size = (b & 3) == 0 ? 1 + u8(s) % 64 : 1 + u16(s) % 4096;
    b = u8(s);
    wl->wopt.compression_level = (b & 1) ? (int)(1 + (b >> 1) % 9) : 0;

    for (uint32_t i = 0; i < wl->ndev; i++) {
        device *d = &wl->dev[i];
        d->handle = (u32(s) & ~3u) | i; /* distinct, never 0xFFFFFFFF */
        d->instance_id = u32(s);
        d->payload_kind = (ms_payload_kind)(u8(s) % MS_PAYLOAD_KIND_COUNT_);
        d->home = u8(s) % wl->nch;
        size_t idlen = 1 + u8(s) % (sizeof d->idstr - 1);
        for (size_t k = 0; k < idlen; k++)
            d->idstr[k] = (char)(0x21 + u8(s) % 0x5E); /* printable */
        d->idstr[idlen] = '\0';
        d->compat_len = u8(s) % (sizeof d->compat + 1);
        for (uint32_t k = 0; k < d->compat_len; k++)
            d->compat[k] = (uint8_t)u8(s);
        d->n_images = u8(s) % (MAX_IMG + 1);
        b = u8(s);
        for (uint32_t k = 0; k < d->n_images; k++) {
            image *im = &d->img[k];
            if (k == 0 && (b & 1))
                im->phase = MS_PHASE_INITIAL;
            else if (k == d->n_images - 1 && (b & 2))
                im->phase = MS_PHASE_FINAL;
            else
                im->phase = MS_PHASE_MIDDLE;
            unsigned c = u8(s);
            im->transport =
                (c & 1) ? MS_TRANSPORT_PACKETS : MS_TRANSPORT_CHUNKS;
            im->flags = (c >> 1) & 1;
            /* tiny chunks: a record per byte or few, so a short image
             * (the exec/s budget, fuzz/corpus/README.md) */
            im->len = u16(s) % ((wl->wopt.chunk_size <= TINY_CHUNK
                                     ? TINY_CHUNK_IMAGE_BYTES
                                     : MAX_IMAGE_BYTES) +
                                1);
            im->content = (uint8_t *)malloc(im->len ? im->len : 1);
            FUZZ_CHECK(im->content != NULL);
            fill_content(s, im->content, im->len);
            if (im->transport == MS_TRANSPORT_PACKETS) {
                im->config_len = u8(s) % (MAX_CONFIG + 1);
                fill_content(s, im->config, im->config_len);
            }
        }
    }
}

/* One optional record on some channel. */
static void write_optional(workload *wl, ms_writer *w, src *s)
{
    uint32_t ch = u8(s) % wl->nch;
    device *d = &wl->dev[u8(s) % wl->ndev];
    unsigned kind = u8(s) % 4;
    switch (kind) {
    case 0:
        W(ms_writer_precopy_info(w, ch, d->handle, u8(s) & 1, u32(s), u32(s),
                                 ++wl->ts));
        break;
    case 1:
        W(ms_writer_state_change(w, ch, d->handle, u8(s) % 8, u8(s) % 8,
                                 ++wl->ts));
        break;
    case 2:
        W(ms_writer_stop_copy_size(w, ch, d->handle, u64(s), ++wl->ts));
        break;
    default: {
        uint8_t payload[40];
        size_t len = u8(s) % (sizeof payload + 1);
        for (size_t i = 0; i < len; i++)
            payload[i] = (uint8_t)u8(s);
        uint32_t tag = 0x80000000u | u16(s);
        W(ms_writer_raw_record(w, ch, tag, 1 /* OPTIONAL */, payload, len));
        break;
    }
    }
    wl->opt_written[kind]++;
}

/* Advance one device by one writer call.  Returns 0 when it has no more. */
static int write_step(workload *wl, ms_writer *w, device *d, src *s)
{
    if (!d->open) {
        if (d->next_image >= d->n_images)
            return 0;
        image *im = &d->img[d->next_image];
        W(ms_writer_image_begin(w, d->home, d->handle, im->phase, im->transport,
                                im->flags, ++wl->ts));
        d->open = 1;
        d->written = 0;
        return 1;
    }
    image *im = &d->img[d->next_image];
    size_t remaining = im->len - d->written;
    if (remaining > 0) {
        size_t max = im->transport == MS_TRANSPORT_PACKETS && remaining > 2048
                         ? 2048
                         : remaining;
        /* Out of input: big pieces, so the loop ends quickly. */
        size_t piece = src_left(s) ? 1 + u16(s) % max : max;
        if (im->transport == MS_TRANSPORT_CHUNKS) {
            W(ms_writer_image_data(w, d->handle, im->content + d->written,
                                   piece));
        } else {
            W(ms_writer_image_packet(w, u8(s) % wl->nch, d->handle,
                                     im->content + d->written, piece, 0));
        }
        d->written += piece;
        return 1;
    }
    if (im->transport == MS_TRANSPORT_PACKETS)
        W(ms_writer_image_packet(w, u8(s) % wl->nch, d->handle, im->config,
                                 im->config_len, 1));
    W(ms_writer_image_end(w, d->handle, ++wl->ts));
    d->open = 0;
    d->next_image++;
    return 1;
}

static void write_all(workload *wl, src *s)
{
    ms_writer *w = ms_writer_create(&wl->wopt);
    FUZZ_CHECK(w != NULL);
    for (uint32_t i = 0; i < wl->ndev; i++) {
        device *d = &wl->dev[i];
        W(ms_writer_add_device(w, d->handle, d->idstr, d->instance_id,
                               d->payload_kind, d->compat, d->compat_len));
    }
    for (uint32_t c = 0; c < wl->nch; c++)
        W(ms_writer_open_channel(w, c, write_fn, &wl->out[c]));

    for (;;) {
        unsigned b = u8(s);
        if ((b & 7) == 7 && src_left(s))
            write_optional(wl, w, s);
        /* Pick a device with work left, starting from an input choice. */
        uint32_t first = u8(s) % wl->ndev;
        int any = 0;
        for (uint32_t k = 0; k < wl->ndev && !any; k++)
            any = write_step(wl, w, &wl->dev[(first + k) % wl->ndev], s);
        if (!any)
            break;
    }
    for (uint32_t c = 0; c < wl->nch; c++)
        W(ms_writer_close_channel(w, c, ++wl->ts));
    fuzz_check_error(ms_writer_error(w), 0);
    ms_writer_free(w);
}

/* ---- reading back -------------------------------------------------------- */
static device *find_device(workload *wl, uint32_t handle)
{
    for (uint32_t i = 0; i < wl->ndev; i++)
        if (wl->dev[i].handle == handle)
            return &wl->dev[i];
    FUZZ_CHECK(!"event names a device that was not written");
    return NULL;
}

static image *find_image(workload *wl, uint32_t handle, uint32_t seq)
{
    device *d = find_device(wl, handle);
    FUZZ_CHECK(seq < d->n_images);
    return &d->img[seq];
}

/* Data of image `im` (the copy reads every byte, so ASan checks the view:
 * no fuzz_touch_event, whose loop per byte cost 5% of the time). */
static void append_data(image *im, const ms_data_info *di)
{
    buf *b = di->config ? &im->got_config : &im->got;
    FUZZ_CHECK(di->image_offset == b->len || di->config);
    buf_append(b, di->data, di->size);
}

/* An event from channel `ch`'s reader. */
static void on_reader_event(workload *wl, uint32_t ch, const ms_event *ev)
{
    if (ev->kind != MS_EV_DATA || ev->u.data.in_packet)
        fuzz_touch_event(ev); /* else append_data */
    switch (ev->kind) {
    case MS_EV_STREAM_HEADER:
        FUZZ_CHECK(ev->u.stream.format == MS_FORMAT_MIGSTREAM);
        FUZZ_CHECK(ev->u.stream.channel_index == ch);
        FUZZ_CHECK(ev->u.stream.channel_count == wl->nch);
        FUZZ_CHECK(memcmp(ev->u.stream.uuid, wl->wopt.uuid, 16) == 0);
        FUZZ_CHECK(ev->u.stream.created_ns == wl->wopt.created_ns);
        break;
    case MS_EV_DEVICE: {
        device *d = find_device(wl, ev->u.device.handle);
        FUZZ_CHECK(!d->declared[ch]);
        d->declared[ch] = 1;
        FUZZ_CHECK(ev->u.device.instance_id == d->instance_id);
        FUZZ_CHECK(ev->u.device.payload_kind == d->payload_kind);
        FUZZ_CHECK(ev->u.device.idstr_len == strlen(d->idstr));
        FUZZ_CHECK(memcmp(ev->u.device.idstr, d->idstr, strlen(d->idstr)) == 0);
        FUZZ_CHECK(ev->u.device.compat_len == d->compat_len);
        if (d->compat_len)
            FUZZ_CHECK(memcmp(ev->u.device.compat, d->compat, d->compat_len) ==
                       0);
        break;
    }
    case MS_EV_IMAGE_BEGIN: {
        device *d = find_device(wl, ev->u.image.device);
        image *im = find_image(wl, ev->u.image.device, ev->u.image.seq);
        FUZZ_CHECK(ch == d->home);
        FUZZ_CHECK(!im->begun);
        im->begun = 1;
        FUZZ_CHECK(ev->u.image.phase == im->phase);
        FUZZ_CHECK(ev->u.image.transport == im->transport);
        FUZZ_CHECK(ev->u.image.flags == im->flags);
        break;
    }
    case MS_EV_DATA: {
        image *im = find_image(wl, ev->u.data.device, ev->u.data.seq);
        if (!ev->u.data.in_packet) {
            FUZZ_CHECK(im->transport == MS_TRANSPORT_CHUNKS);
            FUZZ_CHECK(!ev->u.data.config);
            append_data(im, &ev->u.data);
        } else {
            /* Raw packet bytes of one channel; the set reassembles them. */
            FUZZ_CHECK(im->transport == MS_TRANSPORT_PACKETS);
        }
        break;
    }
    case MS_EV_PACKET: {
        image *im = find_image(wl, ev->u.packet.device, ev->u.packet.seq);
        FUZZ_CHECK(im->transport == MS_TRANSPORT_PACKETS);
        break;
    }
    case MS_EV_IMAGE_END: {
        device *d = find_device(wl, ev->u.image.device);
        image *im = find_image(wl, ev->u.image.device, ev->u.image.seq);
        FUZZ_CHECK(ch == d->home);
        FUZZ_CHECK(im->begun && !im->ended);
        im->ended = 1;
        FUZZ_CHECK(ev->u.image.length == im->len);
        if (im->transport == MS_TRANSPORT_CHUNKS)
            FUZZ_CHECK(im->got.len == im->len);
        else
            FUZZ_CHECK(ev->u.image.config_length == im->config_len);
        break;
    }
    case MS_EV_PRECOPY_INFO:
        wl->opt_read[0]++;
        break;
    case MS_EV_STATE_CHANGE:
        wl->opt_read[1]++;
        break;
    case MS_EV_STOP_COPY_SIZE:
        wl->opt_read[2]++;
        break;
    case MS_EV_RECORD:
        if (!ev->u.record.known) {
            FUZZ_CHECK(ev->u.record.tag >= 0x80000000u);
            wl->opt_read[3]++;
        }
        break;
    case MS_EV_END:
        wl->ends++;
        break;
    default:
        break;
    }
}

/* An event the set derived. */
static void on_set_event(workload *wl, const ms_event *ev)
{
    if (ev->kind != MS_EV_DATA)
        fuzz_touch_event(ev); /* else append_data */
    switch (ev->kind) {
    case MS_EV_DATA: {
        image *im = find_image(wl, ev->u.data.device, ev->u.data.seq);
        FUZZ_CHECK(im->transport == MS_TRANSPORT_PACKETS);
        FUZZ_CHECK(ev->u.data.in_packet);
        if (ev->u.data.config)
            im->config_events++;
        append_data(im, &ev->u.data);
        break;
    }
    case MS_EV_IMAGE_ASSEMBLED: {
        image *im = find_image(wl, ev->u.image.device, ev->u.image.seq);
        FUZZ_CHECK(im->transport == MS_TRANSPORT_PACKETS);
        FUZZ_CHECK(!im->assembled);
        im->assembled = 1;
        FUZZ_CHECK(ev->u.image.length == im->len);
        FUZZ_CHECK(ev->u.image.config_length == im->config_len);
        FUZZ_CHECK(im->got.len == im->len);
        break;
    }
    default:
        break;
    }
}

static void drain_set(workload *wl, ms_set *set)
{
    for (;;) {
        ms_event ev;
        int rc = ms_set_next(set, &ev);
        if (rc == MS_NEXT_ERROR)
            fail_read("ms_set_next", ms_set_error(set),
                      ms_set_error(set)->channel);
        if (rc == MS_NEXT_INPUT)
            return;
        FUZZ_CHECK(rc == MS_NEXT_EVENT);
        on_set_event(wl, &ev);
    }
}

static void read_all(workload *wl, uint64_t seed, int record_events)
{
    ms_options opt;
    fuzz_options(&opt, 1, record_events);
    ms_set *set = ms_set_create(&opt);
    FUZZ_CHECK(set != NULL);
    ms_reader *r[MAX_CH];
    size_t pos[MAX_CH] = {0};
    int done[MAX_CH] = {0};
    fuzz_slice slice[MAX_CH];
    memset(slice, 0, sizeof slice);
    for (uint32_t c = 0; c < wl->nch; c++) {
        r[c] = ms_reader_create(&opt);
        FUZZ_CHECK(r[c] != NULL);
    }

    fuzz_rng rng = {seed};
    uint32_t left = wl->nch;
    while (left) {
        for (uint32_t c = 0; c < wl->nch; c++) {
            if (done[c])
                continue;
            const buf *b = &wl->out[c];
            if (pos[c] == b->len) {
                if (ms_reader_finish(r[c]) != 0)
                    fail_read("ms_reader_finish", ms_reader_error(r[c]), c);
                if (ms_set_channel_done(set, c) != 0)
                    fail_read("ms_set_channel_done", ms_set_error(set), c);
                drain_set(wl, set);
                done[c] = 1;
                left--;
                continue;
            }
            size_t n = fuzz_slice_size(&rng) * 4;
            if (n > b->len - pos[c])
                n = b->len - pos[c];
            fuzz_slice_set(&slice[c], b->p + pos[c], n);
            pos[c] += n;
            if (ms_reader_input(r[c], slice[c].buf, n) != 0)
                fail_read("ms_reader_input", ms_reader_error(r[c]), c);
            for (;;) {
                ms_event ev;
                int rc = ms_reader_next(r[c], &ev);
                if (rc == MS_NEXT_ERROR)
                    fail_read("ms_reader_next", ms_reader_error(r[c]), c);
                if (rc == MS_NEXT_INPUT)
                    break;
                FUZZ_CHECK(rc == MS_NEXT_EVENT);
                on_reader_event(wl, c, &ev);
                if (ms_set_observe(set, c, &ev) != 0)
                    fail_read("ms_set_observe", ms_set_error(set), c);
                drain_set(wl, set);
            }
            fuzz_slice_drop(&slice[c]);
        }
    }
    if (ms_set_finish(set) != 0)
        fail_read("ms_set_finish", ms_set_error(set),
                  ms_set_error(set)->channel);
    drain_set(wl, set);
    for (uint32_t c = 0; c < wl->nch; c++)
        ms_reader_free(r[c]);
    ms_set_free(set);
}

static void compare(const workload *wl)
{
    FUZZ_CHECK(wl->ends == wl->nch);
    for (int k = 0; k < 4; k++)
        FUZZ_CHECK(wl->opt_read[k] == wl->opt_written[k]);
    for (uint32_t i = 0; i < wl->ndev; i++) {
        const device *d = &wl->dev[i];
        for (uint32_t k = 0; k < d->n_images; k++) {
            const image *im = &d->img[k];
            FUZZ_CHECK(im->begun && im->ended);
            FUZZ_CHECK(im->got.len == im->len);
            if (im->len)
                FUZZ_CHECK(memcmp(im->got.p, im->content, im->len) == 0);
            if (im->transport == MS_TRANSPORT_PACKETS) {
                FUZZ_CHECK(im->assembled);
                /* The set may or may not hand out the config bytes; when it
                 * does, they must be exact. */
                if (im->config_events || im->got_config.len) {
                    FUZZ_CHECK(im->got_config.len == im->config_len);
                    if (im->config_len)
                        FUZZ_CHECK(memcmp(im->got_config.p, im->config,
                                          im->config_len) == 0);
                }
            } else {
                FUZZ_CHECK(!im->assembled && im->got_config.len == 0);
            }
        }
    }
}

static void free_workload(workload *wl)
{
    for (uint32_t c = 0; c < MAX_CH; c++)
        free(wl->out[c].p);
    for (uint32_t i = 0; i < MAX_DEV; i++) {
        for (uint32_t k = 0; k < MAX_IMG; k++) {
            free(wl->dev[i].img[k].content);
            free(wl->dev[i].img[k].got.p);
            free(wl->dev[i].img[k].got_config.p);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static workload wl; /* large: keep it off the stack */
    memset(&wl, 0, sizeof wl);
    src s = {data, size, 0};
    plan(&wl, &s);
    write_all(&wl, &s);
    uint64_t h = fuzz_hash(data, size);
    read_all(&wl, h, (int)(h & 1));
    compare(&wl);
    free_workload(&wl);
    return 0;
}
