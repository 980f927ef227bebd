/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* Driver payloads inside carriers (ms_migration, MS_MIGRATION_NESTED_PAYLOADS).
 *
 * A VFIO device's data is the driver's own stream (spec/payloads.md),
 * carried in one of three ways.  Each device's bytes go, in order, to a
 * payload reader of their own, with the carrier's phase:
 *
 *   QEMU main stream:  VFIO_MARKER (section id -> idstr)
 *                      DATA (device = section id) ---------------+
 *   QEMU multifd:      set DATA of a reassembled device-state    |
 *                      image (idstr, instance id on the event) --+--> device
 *   migstream:         DEVICE (handle -> idstr, declared kind)   |    reader
 *                      IMAGE_BEGIN (seq -> phase)                |   (key:
 *                      DATA in seq order; a later image's bytes  |  idstr#inst)
 *                      wait (held) until the images before it    |
 *                      ended (IMAGE_END / IMAGE_ASSEMBLED) ------+
 *
 * A device whose bytes no driver rule recognises is left alone (quietly);
 * a migstream device declaring raw is not decoded; any other reader error
 * is a problem of that device only.  Allocations are bounded: devices by
 * max_devices, section ids by max_sections, images by max_images, held
 * copies by max_buffered_bytes. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common.h"
#include "migration_impl.h"

#define NAME_CAP 256

typedef struct nd_held {
    uint32_t seq;
    ms_phase phase;
    uint64_t off;
    uint32_t slot; /* the channel `off` is in */
    const uint8_t *data;
    size_t size;
    int owned; /* a copy (input not stable), freed when fed */
} nd_held;

typedef struct nd_dev {
    char label[NAME_CAP]; /* idstr */
    uint32_t instance_id;
    ms_reader *r;
    ms_payload_kind kind; /* declared kind, -1: detect */
    int off;              /* not recognised, or failed: no more decoding */
    ms_phase phase;
    uint64_t last_off; /* carrier offset of the bytes being fed */
    uint32_t last_slot; /* ...and the channel it is in, so that problems
                           and events name the file the offset is in
                           (until bytes come: where the device was seen) */
    int recognised;    /* a payload event came out */
    /* migstream: images are fed in seq order */
    uint32_t next_seq;
    nd_held *held;
    size_t nheld, heldcap;
    uint64_t *done; /* bitmap of completed images (seq) */
    size_t donecap;
    uint8_t *phases; /* phase of each image seq, from IMAGE_BEGIN */
    size_t phasecap;
} nd_dev;

typedef struct nd_sec { /* QEMU: section id -> idstr (VFIO markers) */
    uint32_t id;
    char idstr[NAME_CAP];
} nd_sec;

typedef struct nd_mdev { /* migstream: handle -> idstr, declared kind */
    uint32_t handle;
    ms_payload_kind kind;
    char idstr[NAME_CAP];
} nd_mdev;

typedef struct nd_chan {
    ms_format format;
    nd_sec *secs;
    size_t nsecs, seccap;
    nd_mdev *mdevs;
    size_t nmdevs, mdevcap;
} nd_chan;

struct ms_nested {
    ms_options opt; /* the payload readers' options */
    ms_nested_sink sink;
    nd_dev **devs;
    size_t ndevs, devcap;
    nd_chan *chans;
    size_t nchans;
    uint64_t held_bytes; /* copies held, all devices */
    int input_stable;    /* the carriers' input stays valid: hold views */
    uint32_t untracked;  /* bit per limit (31: memory) already reported
                            as leaving device bytes undecoded */
};

#define ALLOC(n) (&(n)->opt.allocator)

ms_nested *ms_nested_create(const ms_options *opt, const ms_nested_sink *sink)
{
    ms_nested *n = ms_calloc(&opt->allocator, 1, sizeof *n);
    if (!n)
        return NULL;
    n->opt = *opt;
    n->input_stable = opt->input_stable;
    n->opt.format = MS_FORMAT_PAYLOAD;
    n->opt.payload_kind = -1;
    n->opt.payload_final_offset = UINT64_MAX; /* the carrier says */
    n->opt.input_stable = 0;
    n->opt.input_seekable = 0;
    n->opt.input_size = 0;
    n->sink = *sink;
    return n;
}

static void free_held(ms_nested *n, nd_held *h)
{
    if (h->owned) {
        ms_free(ALLOC(n), (void *)h->data);
        n->held_bytes -= h->size;
    }
}

void ms_nested_free(ms_nested *n)
{
    if (!n)
        return;
    for (size_t i = 0; i < n->ndevs; i++) {
        nd_dev *d = n->devs[i];
        ms_reader_free(d->r);
        for (size_t k = 0; k < d->nheld; k++)
            free_held(n, &d->held[k]);
        ms_free(ALLOC(n), d->held);
        ms_free(ALLOC(n), d->done);
        ms_free(ALLOC(n), d->phases);
        ms_free(ALLOC(n), d);
    }
    for (size_t i = 0; i < n->nchans; i++) {
        ms_free(ALLOC(n), n->chans[i].secs);
        ms_free(ALLOC(n), n->chans[i].mdevs);
    }
    ms_free(ALLOC(n), n->chans);
    ms_free(ALLOC(n), n->devs);
    ms_free(ALLOC(n), n);
}

/* ---- problems ---------------------------------------------------------------
 */

/* A device's problem: it stops that device only. */
static void dev_problem(ms_nested *n, nd_dev *d, ms_error code, ms_limit limit,
                        const char *fmt, ...)
{
    ms_error_info e = {.code = code,
                       .limit = limit,
                       .offset = d->last_off,
                       .channel = d->last_slot,
                       .has_channel = 1};
    char what[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    snprintf(e.detail, sizeof e.detail, "device %.60s: %.120s", d->label, what);
    d->off = 1;
    n->sink.problem(n->sink.ctx, &e);
}

/* A payload reader failed: "not recognised" ends decoding quietly; any
 * other error is the device's payload breaking its driver's rules. */
static void reader_failed(ms_nested *n, nd_dev *d, int knock_on)
{
    const ms_error_info *e = ms_reader_error(d->r);
    d->off = 1;
    /* detecting, nothing recognised yet: not a driver stream we know */
    if (d->kind < 0 && !d->recognised &&
        (e->code == MS_ERR_FORMAT_UNKNOWN || e->code == MS_ERR_TRUNCATED))
        return;
    ms_error_info p = *e;
    p.offset = d->last_off;
    p.channel = d->last_slot;
    p.has_channel = 1;
    if (knock_on)
        snprintf(p.detail, sizeof p.detail,
                 "knock-on: device %.38s payload byte %llu: %.100s",
                 d->label, (unsigned long long)e->offset, e->detail);
    else
        snprintf(p.detail, sizeof p.detail,
                 "device %.60s payload byte %llu: %.100s", d->label,
                 (unsigned long long)e->offset, e->detail);
    n->sink.problem(n->sink.ctx, &p);
}

/* ---- devices and their readers ----------------------------------------------
 */

static nd_chan *chan_of(ms_nested *n, uint32_t slot)
{
    if (slot >= n->nchans) {
        size_t cap = n->nchans;
        if (ms_grow(ALLOC(n), (void **)&n->chans, sizeof *n->chans, &cap,
                    (size_t)slot + 1) < 0)
            return NULL;
        n->nchans = cap;
    }
    return &n->chans[slot];
}

/* A device, section or handle the limits (or memory) keep from being
 * tracked: its bytes are not decoded, so the migration must not pass as
 * checked.  Said once per limit: the next such device is the same story. */
static void untracked(ms_nested *n, uint32_t slot, uint64_t offset,
                      ms_limit limit, uint64_t value, const char *what)
{
    uint32_t bit = limit == MS_LIMIT_NONE || (unsigned)limit >= 31
                       ? 1u << 31
                       : 1u << (unsigned)limit;
    if (n->untracked & bit)
        return;
    n->untracked |= bit;
    ms_error_info e = {.code = limit == MS_LIMIT_NONE ? MS_ERR_NO_MEMORY
                                                      : MS_ERR_LIMIT,
                       .limit = limit,
                       .offset = offset,
                       .channel = slot,
                       .has_channel = 1};
    if (limit == MS_LIMIT_NONE)
        snprintf(e.detail, sizeof e.detail,
                 "no memory to track %s: its payload is not decoded", what);
    else
        snprintf(e.detail, sizeof e.detail,
                 "%s beyond %s (%llu): its payload is not decoded", what,
                 ms_limit_name(limit), (unsigned long long)value);
    n->sink.problem(n->sink.ctx, &e);
}

/* The device (idstr, instance), created on first use; NULL when over
 * max_devices or out of memory (reported once, at `offset`). */
static nd_dev *device_of(ms_nested *n, uint32_t slot, uint64_t offset,
                         const char *label, uint32_t instance_id,
                         ms_payload_kind kind)
{
    for (size_t i = 0; i < n->ndevs; i++)
        if (n->devs[i]->instance_id == instance_id &&
            strncmp(n->devs[i]->label, label, NAME_CAP - 1) == 0)
            return n->devs[i];
    if (n->ndevs >= n->opt.max_devices) {
        untracked(n, slot, offset, MS_LIMIT_MAX_DEVICES, n->opt.max_devices,
                  "a device");
        return NULL;
    }
    nd_dev *d = NULL;
    if (ms_grow(ALLOC(n), (void **)&n->devs, sizeof *n->devs, &n->devcap,
                n->ndevs + 1) < 0 ||
        !(d = ms_calloc(ALLOC(n), 1, sizeof *d))) {
        untracked(n, slot, offset, MS_LIMIT_NONE, 0, "a device");
        return NULL;
    }
    d->last_slot = slot;
    snprintf(d->label, sizeof d->label, "%s", label);
    d->instance_id = instance_id;
    d->kind = kind;
    n->devs[n->ndevs++] = d;
    return d;
}

static void pull(ms_nested *n, nd_dev *d)
{
    ms_event nev;
    int rc;
    while ((rc = ms_reader_next(d->r, &nev)) == MS_NEXT_EVENT) {
        if (nev.kind == MS_EV_STREAM_HEADER)
            continue;
        d->recognised = 1;
        ms_event_origin o = {.channel = d->last_slot,
                             .device = d->label,
                             .instance_id = d->instance_id,
                             .phase = d->phase,
                             .carrier_offset = d->last_off};
        n->sink.event(n->sink.ctx, &nev, &o);
    }
    if (rc == MS_NEXT_ERROR)
        reader_failed(n, d, 0);
}

/* Hand device bytes to its payload reader (created on first use). */
static void give(ms_nested *n, nd_dev *d, ms_phase phase, uint32_t slot,
                 uint64_t at, const uint8_t *data, size_t size)
{
    if (d->off)
        return;
    d->last_off = at;
    d->last_slot = slot;
    if (!d->r) {
        ms_options o = n->opt;
        o.payload_kind = d->kind;
        if (!(d->r = ms_reader_create(&o))) {
            dev_problem(n, d, MS_ERR_NO_MEMORY, MS_LIMIT_NONE,
                        "no memory for its reader");
            return;
        }
    }
    if (phase != MS_PHASE_NONE && phase != d->phase) {
        ms_reader_set_phase(d->r, phase);
        d->phase = phase;
    }
    if (ms_reader_input(d->r, data, size) < 0) {
        reader_failed(n, d, 0);
        return;
    }
    pull(n, d);
}

/* ---- migstream images in seq order ------------------------------------------
 */

/* Bytes of a later image: keep them (a view of stable input, else a copy
 * within max_buffered_bytes) until the images before it are complete. */
static void hold(ms_nested *n, nd_dev *d, uint32_t slot,
                 const ms_data_info *dd)
{
    if (ms_grow(ALLOC(n), (void **)&d->held, sizeof *d->held, &d->heldcap,
                d->nheld + 1) < 0) {
        dev_problem(n, d, MS_ERR_NO_MEMORY, MS_LIMIT_NONE,
                    "no memory to hold image %u", dd->seq);
        return;
    }
    nd_held h = {dd->seq, dd->phase, dd->stream_offset, slot, dd->data,
                 dd->size, 0};
    if (!(n->input_stable && dd->zero_copy)) {
        if (dd->size > n->opt.max_buffered_bytes - n->held_bytes) {
            d->last_off = dd->stream_offset;
            d->last_slot = slot;
            dev_problem(n, d, MS_ERR_LIMIT, MS_LIMIT_MAX_BUFFERED_BYTES,
                        "bytes of image %u arrive before image %u ends: "
                        "holding them exceeds max_buffered_bytes (%llu)",
                        dd->seq, d->next_seq,
                        (unsigned long long)n->opt.max_buffered_bytes);
            return;
        }
        uint8_t *copy = ms_alloc(ALLOC(n), dd->size ? dd->size : 1);
        if (!copy) {
            dev_problem(n, d, MS_ERR_NO_MEMORY, MS_LIMIT_NONE,
                        "no memory to hold image %u", dd->seq);
            return;
        }
        memcpy(copy, dd->data, dd->size);
        h.data = copy;
        h.owned = 1;
        n->held_bytes += dd->size;
    }
    d->held[d->nheld++] = h;
}

/* The phase of image `seq` (the set may hand over a packet image before
 * its IMAGE_BEGIN was read, without a phase). */
static ms_phase phase_of(const nd_dev *d, uint32_t seq, ms_phase given)
{
    if (given != MS_PHASE_NONE || seq >= d->phasecap)
        return given;
    return (ms_phase)d->phases[seq];
}

static int is_done(const nd_dev *d, uint32_t seq)
{
    return (size_t)seq / 64 < d->donecap &&
           (d->done[seq / 64] >> (seq % 64)) & 1;
}

/* Feed what was held for the image due next, once its phase is known (its
 * IMAGE_BEGIN was read); when that image is complete, go on to the next. */
static void flush(ms_nested *n, nd_dev *d)
{
    for (;;) {
        uint32_t seq = d->next_seq;
        ms_phase phase = phase_of(d, seq, MS_PHASE_NONE);
        if (phase == MS_PHASE_NONE && !is_done(d, seq))
            return; /* its IMAGE_BEGIN has not been read yet */
        size_t keep = 0;
        for (size_t k = 0; k < d->nheld; k++) {
            nd_held *h = &d->held[k];
            if (h->seq == seq) {
                give(n, d, phase_of(d, seq, h->phase), h->slot, h->off,
                     h->data, h->size);
                free_held(n, h);
            } else {
                d->held[keep++] = *h;
            }
        }
        d->nheld = keep;
        if (!is_done(d, seq))
            return;
        d->next_seq++;
    }
}

/* Image `seq` of a migstream device is complete: move on, feeding what was
 * held for the next images in order. */
static void image_done(ms_nested *n, nd_dev *d, uint32_t seq)
{
    if (seq >= n->opt.max_images) {
        dev_problem(n, d, MS_ERR_LIMIT, MS_LIMIT_MAX_IMAGES,
                    "image %u exceeds max_images (%u)", seq, n->opt.max_images);
        return;
    }
    if (ms_grow(ALLOC(n), (void **)&d->done, sizeof *d->done, &d->donecap,
                (size_t)seq / 64 + 1) < 0) {
        dev_problem(n, d, MS_ERR_NO_MEMORY, MS_LIMIT_NONE,
                    "no memory for image %u", seq);
        return;
    }
    d->done[seq / 64] |= 1ull << (seq % 64);
    flush(n, d);
}

/* ---- what each carrier event says -------------------------------------------
 */

static const nd_mdev *mdev_of(const nd_chan *c, uint32_t handle)
{
    for (size_t i = 0; i < c->nmdevs; i++)
        if (c->mdevs[i].handle == handle)
            return &c->mdevs[i];
    return NULL;
}

/* QEMU VFIO_MARKER: remember the section's idstr. */
static void note_section(ms_nested *n, uint32_t slot, nd_chan *c,
                         const ms_event *ev)
{
    const ms_vfio_info *v = &ev->u.vfio;
    for (size_t i = 0; i < c->nsecs; i++)
        if (c->secs[i].id == v->section_id)
            return;
    if (c->nsecs >= n->opt.max_sections) {
        untracked(n, slot, ev->offset, MS_LIMIT_MAX_SECTIONS,
                  n->opt.max_sections, "a VFIO section");
        return;
    }
    if (ms_grow(ALLOC(n), (void **)&c->secs, sizeof *c->secs, &c->seccap,
                c->nsecs + 1) < 0) {
        untracked(n, slot, ev->offset, MS_LIMIT_NONE, 0, "a VFIO section");
        return;
    }
    c->secs[c->nsecs].id = v->section_id;
    snprintf(c->secs[c->nsecs++].idstr, NAME_CAP, "%s",
             v->idstr ? v->idstr : "");
}

/* migstream DEVICE: remember handle -> idstr and declared kind. */
static void note_device(ms_nested *n, uint32_t slot, nd_chan *c,
                        const ms_event *ev)
{
    const ms_device_info *i = &ev->u.device;
    if (c->nmdevs >= n->opt.max_devices) {
        untracked(n, slot, ev->offset, MS_LIMIT_MAX_DEVICES, n->opt.max_devices,
                  "a device");
        return;
    }
    if (ms_grow(ALLOC(n), (void **)&c->mdevs, sizeof *c->mdevs, &c->mdevcap,
                c->nmdevs + 1) < 0) {
        untracked(n, slot, ev->offset, MS_LIMIT_NONE, 0, "a device");
        return;
    }
    nd_mdev *md = &c->mdevs[c->nmdevs++];
    md->handle = i->handle;
    md->kind = i->payload_kind;
    snprintf(md->idstr, NAME_CAP, "%s", i->idstr ? i->idstr : "");
}

/* migstream IMAGE_BEGIN: remember the image's phase. */
static void note_image_phase(ms_nested *n, uint32_t slot, const nd_chan *c,
                             const ms_event *ev)
{
    const ms_image_info *im = &ev->u.image;
    const nd_mdev *md = mdev_of(c, im->device);
    if (!md)
        return;
    nd_dev *d = device_of(n, slot, ev->offset, md->idstr, 0, md->kind);
    if (!d || d->off)
        return;
    uint32_t seq = im->seq;
    if (seq >= n->opt.max_images) {
        dev_problem(n, d, MS_ERR_LIMIT, MS_LIMIT_MAX_IMAGES,
                    "image %u exceeds max_images (%u)", seq, n->opt.max_images);
        return;
    }
    if (ms_grow(ALLOC(n), (void **)&d->phases, 1, &d->phasecap,
                (size_t)seq + 1) < 0) {
        dev_problem(n, d, MS_ERR_NO_MEMORY, MS_LIMIT_NONE,
                    "no memory for image %u", seq);
        return;
    }
    d->phases[seq] = (uint8_t)im->phase;
    flush(n, d);
}

/* A migstream image is complete (chunks: its end record; packets:
 * reassembled by the set); the device's handle is looked up in every
 * channel (packets come through the set). */
static void note_image_end(ms_nested *n, uint32_t slot, const ms_event *ev)
{
    const ms_image_info *im = &ev->u.image;
    const nd_mdev *md = NULL;
    for (size_t k = 0; k < n->nchans && !md; k++)
        md = mdev_of(&n->chans[k], im->device);
    if (!md || md->kind == MS_PAYLOAD_RAW)
        return;
    nd_dev *d = device_of(n, slot, ev->offset, md->idstr, 0, md->kind);
    if (d && !d->off)
        image_done(n, d, im->seq);
}

/* Device bytes: find the device, then feed or hold them. */
static void route_data(ms_nested *n, uint32_t slot, const nd_chan *c,
                       const ms_data_info *dd, int derived)
{
    const char *label = NULL;
    ms_payload_kind kind = MS_PAYLOAD_DETECT;
    if (dd->in_packet && !derived)
        return; /* packets count once they are reassembled, in order */
    if (c->format == MS_FORMAT_QEMU_MAIN || c->format == MS_FORMAT_LIBVIRT_SAVE)
        for (size_t i = 0; i < c->nsecs && !label; i++)
            if (c->secs[i].id == dd->device)
                label = c->secs[i].idstr;
    if (derived && dd->idstr)
        label = dd->idstr;
    int migstream = c->format == MS_FORMAT_MIGSTREAM;
    if (migstream) {
        const nd_mdev *md = mdev_of(c, dd->device);
        if (md) {
            label = md->idstr;
            kind = md->kind;
        }
    }
    /* raw: the device declared it has no driver framing to decode */
    if (!label || kind == MS_PAYLOAD_RAW)
        return;
    nd_dev *d = device_of(n, slot, dd->stream_offset, label,
                          migstream ? 0 : dd->instance_id, kind);
    if (!d || d->off)
        return;
    if (migstream && (dd->seq != d->next_seq ||
                      phase_of(d, dd->seq, dd->phase) == MS_PHASE_NONE)) {
        hold(n, d, slot, dd);
        return;
    }
    give(n, d, phase_of(d, dd->seq, dd->phase), slot, dd->stream_offset,
         dd->data, dd->size);
}

void ms_nested_feed(ms_nested *n, uint32_t slot, const ms_event *ev,
                    int derived)
{
    nd_chan *c = chan_of(n, slot);
    if (!c)
        return;
    switch (ev->kind) {
    case MS_EV_STREAM_HEADER:
        if (!derived)
            c->format = ev->u.stream.format;
        return;
    case MS_EV_VFIO_MARKER:
        note_section(n, slot, c, ev);
        return;
    case MS_EV_DEVICE:
        if (!derived)
            note_device(n, slot, c, ev);
        return;
    case MS_EV_IMAGE_BEGIN:
        if (!derived && c->format == MS_FORMAT_MIGSTREAM)
            note_image_phase(n, slot, c, ev);
        return;
    case MS_EV_IMAGE_END:
        if (!derived && ev->u.image.transport == MS_TRANSPORT_CHUNKS &&
            c->format == MS_FORMAT_MIGSTREAM)
            note_image_end(n, slot, ev);
        return;
    case MS_EV_IMAGE_ASSEMBLED:
        if (derived && !(ev->u.image.device & MS_DEVICE_HANDLE_QEMU))
            note_image_end(n, slot, ev);
        return;
    case MS_EV_DATA:
        if (!ev->u.data.config && ev->u.data.size)
            route_data(n, slot, c, &ev->u.data, derived);
        return;
    default:
        return;
    }
}

/* migstream: the image due next began (its IMAGE_BEGIN read, or bytes of
 * it held) but never completed: a channel or packet carrying it is
 * missing, or its stream was cut, and that was reported where it
 * happened.  The payload cannot end cleanly then: its truncation is a
 * knock-on of that problem, and says so ("knock-on: " before the detail). */
static int image_cut(const nd_dev *d)
{
    uint32_t seq = d->next_seq;
    return !is_done(d, seq) &&
           (phase_of(d, seq, MS_PHASE_NONE) != MS_PHASE_NONE || d->nheld);
}

void ms_nested_finish(ms_nested *n)
{
    for (size_t i = 0; i < n->ndevs; i++) {
        nd_dev *d = n->devs[i];
        if (d->off || !d->r)
            continue;
        /* events all came out as input ran out; finish only checks the
         * payload did not stop inside a record */
        if (ms_reader_finish(d->r) < 0)
            reader_failed(n, d,
                          ms_reader_error(d->r)->code == MS_ERR_TRUNCATED &&
                              image_cut(d));
    }
}
