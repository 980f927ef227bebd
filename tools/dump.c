/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* migstream-dump: show the structure of a migration's streams, one line
 * (or one JSON object) per structural element, then a summary. */
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dump_state.h"
#include "tool_common.h"
#include "tool_held.h"
#include "archive_input.h"

static const char *prog = "migstream-dump";

typedef struct phase_stats {
    uint64_t images, bytes, units;
} phase_stats;

typedef struct dev_stats {
    uint32_t handle;
    ms_payload_kind kind;
    char idstr[256];
    phase_stats phase[4]; /* by ms_phase */
    int has_estimate;
    uint64_t stop_copy_estimate;
    uint64_t t_stop_copy, t_stopped; /* state change timestamps, 0 = none */
    uint64_t packets, assembled;
    uint64_t config_bytes; /* QEMU multifd: the config buffer */
} dev_stats;

typedef struct block_stats {
    char name[256];
    uint64_t used_length, pages, zero, xbzrle, compressed;
    int mapped;                        /* mapped-ram header seen */
    uint64_t mapped_set, mapped_total; /* bitmap: pages in the file */
} block_stats;

typedef struct chan_stats {
    int is_channel;
    int is_rp; /* a QEMU return path */
    uint32_t channel_id;
    uint64_t packets, syncs, normal, zero, payload, device_packets;
} chan_stats;

typedef struct dump_ctx dump_ctx;
struct dump_ctx {
    FILE *out;
    /* problem lines for stderr, printed sorted by file and offset at the
     * end (the JSON "error" lines stay in stream order on stdout) */
    tool_held held;
    int json, summary_only, several;
    char *const *files;
    size_t nfiles;
    size_t last_file_header; /* human mode: which file's header was printed */
    dev_stats *devs;
    size_t ndevs;
    uint64_t records, problems, image_bytes, packets, ends;
    int have_stream;
    ms_stream_info stream;
    /* QEMU main stream */
    int show_pages;
    dump_state *state; /* --state: the document being built */
    block_stats *blocks;
    size_t nblocks;
    uint64_t sections, undecoded, sec_pages, sec_zero, fields;
    int have_config;
    char machine[256];
    chan_stats *chans; /* per file */
    size_t cur_file;
    /* driver payloads (raw files, or nested in carriers) */
    struct pl_stats {
        char device[256], kind[16];
        uint64_t images[4], bytes[4], records[4]; /* by phase */
        uint64_t records_total, stop_copy_size;
        int has_stop_copy_size;
        int raw;            /* a raw payload file: device is its name */
        int have_pending;   /* an image event waiting: a chunked image
                               reports again with the same seq */
        size_t pending_file;
        ms_event pending;
    } *pls;
    size_t npls;
    double bandwidth;   /* bits/s one channel sustains, 0: not given */
    /* QEMU return path: messages by type (index: ms_rp_type, 0: other) */
    uint64_t rp_msgs[8];
    int have_rp;
    unsigned channels;
    /* QEMU CPR state */
    uint64_t cpr_fds, cpr_passed, cpr_vfio;
};

static dev_stats *dev_of(dump_ctx *d, uint32_t handle)
{
    for (size_t i = 0; i < d->ndevs; i++)
        if (d->devs[i].handle == handle)
            return &d->devs[i];
    dev_stats *n = realloc(d->devs, (d->ndevs + 1) * sizeof *n);
    if (!n) {
        fprintf(stderr, "%s: out of memory\n", prog);
        exit(TOOL_USAGE);
    }
    d->devs = n;
    dev_stats *s = &d->devs[d->ndevs++];
    memset(s, 0, sizeof *s);
    s->handle = handle;
    strcpy(s->idstr, "?");
    return s;
}

/* ---- statistics ----------------------------------------------------------- */

/* Migstream devices and their images (and QEMU multifd device state the
 * set reassembles): what each device sent per phase. */
static void account_device(dump_ctx *d, const ms_event *ev)
{
    switch (ev->kind) {
    case MS_EV_DEVICE: {
        dev_stats *s = dev_of(d, ev->u.device.handle);
        s->kind = ev->u.device.payload_kind;
        snprintf(s->idstr, sizeof s->idstr, "%s", ev->u.device.idstr);
        break;
    }
    case MS_EV_IMAGE_END: {
        dev_stats *s = dev_of(d, ev->u.image.device);
        phase_stats *p = &s->phase[ev->u.image.phase & 3];
        p->images++;
        p->bytes += ev->u.image.length;
        p->units += ev->u.image.unit_count;
        break;
    }
    case MS_EV_IMAGE_ASSEMBLED: {
        dev_stats *s = dev_of(d, ev->u.image.device);
        s->assembled++;
        if (s->handle & MS_DEVICE_HANDLE_QEMU) { /* QEMU multifd device state */
            s->phase[MS_PHASE_FINAL].images++;
            s->phase[MS_PHASE_FINAL].bytes += ev->u.image.length;
            s->phase[MS_PHASE_FINAL].units += ev->u.image.unit_count;
            s->config_bytes = ev->u.image.config_length;
        }
        break;
    }
    case MS_EV_PACKET:
        d->packets++;
        dev_of(d, ev->u.packet.device)->packets++;
        break;
    case MS_EV_CHUNK: d->image_bytes += ev->u.chunk.raw_len; break;
    case MS_EV_STOP_COPY_SIZE: {
        dev_stats *s = dev_of(d, ev->u.stop_copy.device);
        s->has_estimate = 1;
        s->stop_copy_estimate = ev->u.stop_copy.bytes;
        break;
    }
    case MS_EV_STATE_CHANGE: {
        dev_stats *s = dev_of(d, ev->u.state.device);
        if (ev->u.state.to == 3 /* STOP_COPY */)
            s->t_stop_copy = ev->u.state.timestamp_ns;
        if (ev->u.state.to == 1 /* STOP */ && s->t_stop_copy)
            s->t_stopped = ev->u.state.timestamp_ns;
        break;
    }
    default: break;
    }
}

/* QEMU RAM: pages per block (main channel, multifd channels by block
 * name, mapped-ram bitmaps) and each multifd channel's packets. */
static void account_ram(dump_ctx *d, size_t file, const ms_event *ev)
{
    switch (ev->kind) {
    case MS_EV_RAM_BLOCK: {
        block_stats *n = realloc(d->blocks, (d->nblocks + 1) * sizeof *n);
        if (!n) {
            fprintf(stderr, "%s: out of memory\n", prog);
            exit(TOOL_USAGE);
        }
        d->blocks = n;
        block_stats *b = &d->blocks[d->nblocks++];
        memset(b, 0, sizeof *b);
        snprintf(b->name, sizeof b->name, "%s", ev->u.ram.block);
        b->used_length = ev->u.ram.used_length;
        break;
    }
    case MS_EV_MAPPED_RAM:
        if (ev->u.mapped.block_index < d->nblocks) {
            block_stats *b = &d->blocks[ev->u.mapped.block_index];
            b->mapped = 1;
            b->mapped_set = ev->u.mapped.pages_set;
            b->mapped_total = ev->u.mapped.pages_total;
        }
        break;
    case MS_EV_CHANNEL:
        d->chans[file].is_channel = 1;
        d->chans[file].channel_id = ev->u.channel.channel_id;
        break;
    case MS_EV_MULTIFD_PACKET: {
        chan_stats *c = &d->chans[file];
        c->packets++;
        c->syncs += ev->u.mfd.sync;
        c->normal += ev->u.mfd.normal_pages;
        c->zero += ev->u.mfd.zero_pages;
        c->payload += ev->u.mfd.payload_size;
        c->device_packets += ev->u.mfd.device_state;
        break;
    }
    case MS_EV_RAM_PAGE: {
        block_stats *b = NULL;
        if (ev->u.ram.block_index < d->nblocks)
            b = &d->blocks[ev->u.ram.block_index];
        for (size_t i = 0; !b && i < d->nblocks; i++) /* multifd: by name */
            if (strcmp(d->blocks[i].name, ev->u.ram.block) == 0)
                b = &d->blocks[i];
        if (!b)
            break;
        switch (ev->u.ram.record) {
        case MS_RAM_ZERO: b->zero++; d->sec_zero++; break;
        case MS_RAM_XBZRLE: b->xbzrle++; break;
        case MS_RAM_COMPRESS_PAGE: b->compressed++; break;
        default: b->pages++; break;
        }
        d->sec_pages++;
        break;
    }
    default: break;
    }
}

/* Device bytes: names of set-made devices, and QEMU VFIO section bytes and
 * chunks by phase. */
static void account_device_data(dump_ctx *d, size_t file, const ms_event *ev,
                                int from_set)
{
    switch (ev->kind) {
    case MS_EV_DATA:
        if (from_set && ev->u.data.idstr) /* names set-made devices */
            snprintf(dev_of(d, ev->u.data.device)->idstr,
                     sizeof d->devs[0].idstr, "%s", ev->u.data.idstr);
        if (ev->u.data.in_packet || ev->u.data.config)
            break;
        if (!from_set && d->have_stream && !d->chans[file].is_rp &&
            (d->stream.format == MS_FORMAT_QEMU_MAIN ||
             d->stream.format == MS_FORMAT_LIBVIRT_SAVE)) {
            /* QEMU VFIO device bytes: attribute them by phase. */
            dev_stats *s = dev_of(d, ev->u.data.device);
            s->phase[ev->u.data.phase & 3].bytes += ev->u.data.size;
        }
        break;
    case MS_EV_VFIO_MARKER: {
        dev_stats *s = dev_of(d, ev->u.vfio.section_id);
        snprintf(s->idstr, sizeof s->idstr, "%s", ev->u.vfio.idstr);
        if (ev->u.vfio.data_size)
            s->phase[ev->u.vfio.phase & 3].units++;
        break;
    }
    default: break;
    }
}

/* Counts for the summary: what concerns the stream as a whole is counted
 * here, the rest by family (account_device, account_ram,
 * account_device_data); each counts only its own kinds, so all of them
 * are called. */
static void account(dump_ctx *d, size_t file, const ms_event *ev,
                    int from_set)
{
    const archive_stream *embedded;
    if (!from_set && archive_input_lookup(d->files[file], &embedded) == 2)
        return; /* an archive's own records: its files are summarised */
    /* Records on the wire: not the stream header, not bytes, not a second
     * look at a record already counted (record_events mode). */
    if (!from_set && ev->kind != MS_EV_STREAM_HEADER &&
        ev->kind != MS_EV_DATA &&
        !(ev->kind == MS_EV_RECORD && ev->u.record.known))
        d->records++;
    switch (ev->kind) {
    case MS_EV_STREAM_HEADER:
        if (!d->have_stream)
            d->stream = ev->u.stream;
        d->have_stream = 1;
        if (!from_set)
            d->chans[file].is_rp =
                ev->u.stream.format == MS_FORMAT_QEMU_RETURN_PATH;
        break;
    case MS_EV_END: d->ends++; break;
    case MS_EV_QEMU_EOF: d->ends++; break;
    case MS_EV_CONFIGURATION:
        d->have_config = 1;
        snprintf(d->machine, sizeof d->machine, "%s", ev->u.config.machine);
        break;
    case MS_EV_SECTION:
        d->sections++;
        d->sec_pages = d->sec_zero = 0;
        break;
    case MS_EV_UNDECODED: d->undecoded++; break;
    case MS_EV_FIELD: d->fields++; break;
    case MS_EV_CPR:
        if (ev->u.cpr.record == MS_CPR_FD) {
            d->cpr_fds++;
            d->cpr_passed += ev->u.cpr.fd_passed != 0;
        }
        d->cpr_vfio += ev->u.cpr.record == MS_CPR_VFIO_DEVICE;
        break;
    case MS_EV_RP_MESSAGE:
        d->have_rp = 1;
        d->rp_msgs[ev->u.rp.type < 8 ? ev->u.rp.type : 0]++;
        break;
    default:
        account_device(d, ev);
        account_ram(d, file, ev);
        account_device_data(d, file, ev, from_set);
        break;
    }
}

/* ---- human output ---------------------------------------------------------- */

/* ---- driver payloads ------------------------------------------------------- */

static void json_begin(dump_ctx *d, const char *kind, size_t file,
                       uint64_t offset);
static void json_begin_summary(dump_ctx *d, const char *kind);
static const char *json_kind(ms_event_kind k);
static void json_u64(FILE *o, const char *key, uint64_t v);

static struct pl_stats *pl_of(dump_ctx *d, const char *device)
{
    for (size_t i = 0; i < d->npls; i++)
        if (strcmp(d->pls[i].device, device) == 0)
            return &d->pls[i];
    struct pl_stats *n = realloc(d->pls, (d->npls + 1) * sizeof *n);
    if (!n) {
        fprintf(stderr, "%s: out of memory\n", prog);
        exit(TOOL_USAGE);
    }
    d->pls = n;
    struct pl_stats *p = &d->pls[d->npls++];
    memset(p, 0, sizeof *p);
    snprintf(p->device, sizeof p->device, "%s", device);
    return p;
}

static void payload_line(dump_ctx *d, size_t file, const struct pl_stats *pl,
                         const ms_event *ev)
{
    FILE *o = d->out;
    const char *device = pl->device;
    if (d->json) {
        json_begin(d, json_kind(ev->kind), file, ev->offset);
        if (!pl->raw) { /* nested: the carrier's device */
            fputs(",\"idstr\":", o);
            tool_json_string(o, device, strlen(device));
        }
        if (ev->kind == MS_EV_PAYLOAD_RECORD) {
            const ms_payload_record *p = &ev->u.precord;
            fprintf(o, ",\"payload\":\"%s\",\"name\":\"%s\",\"tag\":%u,"
                       "\"flags\":%u,\"size\":%" PRIu64 ",\"phase\":\"%s\"",
                    ms_payload_kind_name(p->payload_kind), p->name, p->tag,
                    p->flags, p->size, ms_phase_name(p->phase));
            if (p->value)
                json_u64(o, "value", p->value);
        } else if (ev->kind == MS_EV_PAYLOAD_IMAGE) {
            const ms_image_info *i = &ev->u.image;
            fprintf(o, ",\"seq\":%u,\"phase\":\"%s\",\"size\":%" PRIu64
                       ",\"records\":%" PRIu64 ",\"hash\":\"%016" PRIx64 "\"",
                    i->seq, ms_phase_name(i->phase), i->length,
                    i->unit_count, i->hash);
        } else {
            const ms_payload_field *f = &ev->u.pfield;
            fprintf(o, ",\"name\":\"%s\"", f->name);
            json_u64(o, "value", f->value);
            fprintf(o, ",\"index\":%u,\"size\":%zu", f->index, f->size);
        }
        fputs("}\n", o);
        return;
    }
    fprintf(o, "%9" PRIu64 "+  %-15s %s ", ev->offset,
            ms_event_kind_name(ev->kind), device);
    if (ev->kind == MS_EV_PAYLOAD_RECORD) {
        const ms_payload_record *p = &ev->u.precord;
        fprintf(o, "%s %s%s %" PRIu64 " bytes (%s)",
                ms_payload_kind_name(p->payload_kind), p->name,
                p->optional ? " optional" : "", p->size,
                p->phase ? ms_phase_name(p->phase) : "phase unknown");
        if (p->value)
            fprintf(o, " value %" PRIu64, p->value);
    } else if (ev->kind == MS_EV_PAYLOAD_IMAGE) {
        const ms_image_info *i = &ev->u.image;
        fprintf(o, "image %u %s: %" PRIu64 " bytes in %" PRIu64 " record%s",
                i->seq,
                i->phase ? ms_phase_name(i->phase)
                         : "phase unknown (give --final-offset)",
                i->length, i->unit_count, i->unit_count == 1 ? "" : "s");
    } else {
        const ms_payload_field *f = &ev->u.pfield;
        fprintf(o, "%s", f->name);
        if (f->size && f->size <= 8)
            fprintf(o, " = 0x%" PRIx64, f->value);
        else if (f->size)
            fprintf(o, " (%zu bytes)", f->size);
    }
    fputc('\n', o);
}

/* Images are printed and counted once per seq: a chunked final image
 * reports again with each chunk, so the last report of a seq is kept. */
static void payload_image_flush(dump_ctx *d, struct pl_stats *p)
{
    if (!p->have_pending)
        return;
    const ms_image_info *i = &p->pending.u.image;
    unsigned ph = i->phase & 3;
    p->images[ph]++;
    p->bytes[ph] += i->length;
    p->records[ph] += i->unit_count;
    if (!d->summary_only && !d->state)
        payload_line(d, p->pending_file, p, &p->pending);
    p->have_pending = 0;
}

static void payload_event(dump_ctx *d, size_t file, const char *device,
                          int raw, const ms_event *ev)
{
    struct pl_stats *p = pl_of(d, device);
    p->raw = raw;
    if (ev->kind == MS_EV_PAYLOAD_IMAGE) {
        if (p->have_pending && p->pending.u.image.seq != ev->u.image.seq)
            payload_image_flush(d, p);
        p->pending = *ev;
        p->pending_file = file;
        p->have_pending = 1;
        return;
    }
    if (ev->kind == MS_EV_PAYLOAD_RECORD) {
        p->records_total++;
        snprintf(p->kind, sizeof p->kind, "%s",
                 ms_payload_kind_name(ev->u.precord.payload_kind));
        if (strcmp(ev->u.precord.name, "STOP_COPY_SIZE") == 0) {
            p->has_stop_copy_size = 1;
            p->stop_copy_size = ev->u.precord.value;
        }
    }
    if (ev->kind == MS_EV_DATA)
        return;
    if (!d->summary_only && !d->state)
        payload_line(d, file, p, ev);
}

static void summary_payloads(dump_ctx *d)
{
    FILE *o = d->out;
    for (size_t i = 0; i < d->npls; i++)
        payload_image_flush(d, &d->pls[i]);
    if (!d->npls)
        return;
    if (d->json) {
        json_begin_summary(d, "payload_summary");
        fputs(",\"devices\":[", o);
    }
    for (size_t i = 0; i < d->npls; i++) {
        struct pl_stats *p = &d->pls[i];
        uint64_t before = p->bytes[MS_PHASE_INITIAL] + p->bytes[MS_PHASE_MIDDLE];
        uint64_t after = p->bytes[MS_PHASE_FINAL];
        double secs = d->bandwidth > 0
                          ? (double)after * 8.0 /
                                (d->bandwidth * (d->channels ? d->channels : 1))
                          : 0;
        if (d->json) {
            fprintf(o, "%s{\"%s\":", i ? "," : "", p->raw ? "file" : "idstr");
            tool_json_string(o, p->device, strlen(p->device));
            fprintf(o, ",\"payload\":\"%s\"", p->kind[0] ? p->kind : "?");
            for (int ph = 0; ph <= MS_PHASE_FINAL; ph++)
                fprintf(o, ",\"%s\":{\"images\":%" PRIu64 ",\"bytes\":%" PRIu64
                           ",\"records\":%" PRIu64 "}",
                        ph ? ms_phase_name((ms_phase)ph) : "unknown",
                        p->images[ph], p->bytes[ph], p->records[ph]);
            if (p->has_stop_copy_size)
                json_u64(o, "stop_copy_size", p->stop_copy_size);
            fprintf(o, ",\"bytes_before_stop\":%" PRIu64
                       ",\"bytes_after_stop\":%" PRIu64,
                    before, after);
            if (secs > 0)
                fprintf(o, ",\"stop_copy_seconds\":%.6f", secs);
            fputc('}', o);
            continue;
        }
        fprintf(o, "  payload %s (%s):", p->device, p->kind[0] ? p->kind : "?");
        for (int ph = MS_PHASE_INITIAL; ph <= MS_PHASE_FINAL; ph++)
            fprintf(o, " %s %" PRIu64 " image%s %" PRIu64 " B in %" PRIu64
                       " record%s;",
                    ms_phase_name((ms_phase)ph), p->images[ph],
                    p->images[ph] == 1 ? "" : "s", p->bytes[ph],
                    p->records[ph], p->records[ph] == 1 ? "" : "s");
        if (p->images[MS_PHASE_NONE])
            fprintf(o, " %" PRIu64 " image%s of unknown phase (%" PRIu64
                       " B; give --final-offset);",
                    p->images[0], p->images[0] == 1 ? "" : "s", p->bytes[0]);
        fputc('\n', o);
        fprintf(o, "    sent before the guest stopped %" PRIu64
                   " B, after %" PRIu64 " B",
                before, after);
        if (p->has_stop_copy_size)
            fprintf(o, "; STOP_COPY_SIZE estimate %" PRIu64 " B (final is "
                       "%.1f%% of it)",
                    p->stop_copy_size,
                    p->stop_copy_size
                        ? 100.0 * (double)after / (double)p->stop_copy_size
                        : 0.0);
        if (secs > 0)
            fprintf(o, "; stop-copy transfer %.3f ms at %.4g Gbit/s x %u "
                       "channel%s",
                    secs * 1e3, d->bandwidth / 1e9,
                    d->channels ? d->channels : 1,
                    d->channels > 1 ? "s" : "");
        fputc('\n', o);
    }
    if (d->json)
        fputs("]}\n", o);
}

/* A return-path message: its name and decoded fields. */
static void human_rp(FILE *o, const ms_rp_info *m)
{
    fputs(m->name, o);
    switch (m->type) {
    case MS_RP_SHUT:
    case MS_RP_PONG:
    case MS_RP_RESUME_ACK: fprintf(o, " 0x%x", m->value); break;
    case MS_RP_REQ_PAGES_ID:
    case MS_RP_REQ_PAGES:
        fprintf(o, " %s 0x%" PRIx64 " len 0x%x%s", m->block, m->start,
                m->length, m->block_named ? "" : " (block of the last _ID)");
        break;
    case MS_RP_RECV_BITMAP:
        fprintf(o, " %s bitmap %" PRIu64 " bytes", m->block, m->bitmap_size);
        break;
    default: break;
    }
}

/* The QEMU main stream's own records: configuration, sections, commands,
 * VFIO markers, the end of device state and the JSON trailer. */
static void human_qemu(dump_ctx *d, const ms_event *ev)
{
    FILE *o = d->out;
    char hex[33];
    switch (ev->kind) {
    case MS_EV_CONFIGURATION:
        fprintf(o, "machine %s", ev->u.config.machine);
        if (ev->u.config.has_page_bits)
            fprintf(o, " page-bits %u", ev->u.config.page_bits);
        if (ev->u.config.capability_count)
            fprintf(o, " capabilities %u%s%s%s", ev->u.config.capability_count,
                    ev->u.config.cap_x_ignore_shared ? " x-ignore-shared" : "",
                    ev->u.config.cap_mapped_ram ? " mapped-ram" : "",
                    ev->u.config.cap_postcopy_preempt ? " postcopy-preempt"
                                                      : "");
        if (ev->u.config.has_uuid) {
            tool_hex(hex, ev->u.config.uuid, 16);
            fprintf(o, " uuid %s", hex);
        }
        break;
    case MS_EV_SECTION:
        fprintf(o, "%-5s %u %s instance %u version %u",
                ms_qemu_section_type_name(ev->u.section.type),
                ev->u.section.section_id, ev->u.section.idstr,
                ev->u.section.instance_id, ev->u.section.version_id);
        break;
    case MS_EV_SECTION_FOOTER:
        fprintf(o, "section %u %s: %" PRIu64 " bytes",
                ev->u.section.section_id, ev->u.section.idstr, ev->length);
        if (d->sec_pages)
            fprintf(o, " (%" PRIu64 " page records, %" PRIu64 " zero)",
                    d->sec_pages, d->sec_zero);
        break;
    case MS_EV_UNDECODED:
        fprintf(o, "section %u %s: contents not decoded: %s",
                ev->u.section.section_id, ev->u.section.idstr,
                ev->u.section.detail);
        break;
    case MS_EV_COMMAND:
        fprintf(o, "%s%s", ev->u.command.nesting ? "(packaged) " : "",
                ev->u.command.name);
        if (ev->u.command.cmd == 2)
            fprintf(o, " 0x%" PRIx64, ev->u.command.value);
        if (ev->u.command.cmd == 7)
            fprintf(o, " %" PRIu64 " bytes", ev->u.command.value);
        if (ev->u.command.cmd == 3 && ev->u.command.len)
            fprintf(o, " page-size summary 0x%" PRIx64 " target page 0x%" PRIx64,
                    ev->u.command.page_size_summary,
                    ev->u.command.target_page_size);
        if (ev->u.command.block)
            fprintf(o, " %s", ev->u.command.block);
        if (ev->u.command.cmd == 6)
            fprintf(o, ": %u range%s", ev->u.command.discard_ranges,
                    ev->u.command.discard_ranges == 1 ? "" : "s");
        break;
    case MS_EV_VFIO_MARKER:
        fprintf(o, "%s %s", ev->u.vfio.idstr, ev->u.vfio.name);
        if (ev->u.vfio.marker == 0xffffffffef100004ull)
            fprintf(o, " %" PRIu64 " bytes (%s)", ev->u.vfio.data_size,
                    ms_phase_name(ev->u.vfio.phase));
        break;
    case MS_EV_QEMU_EOF: fputs("end of device state", o); break;
    case MS_EV_VMDESC:
        fprintf(o, "JSON trailer %zu bytes", ev->u.vmdesc.len);
        break;
    default: break;
    }
}

/* QEMU RAM: block lists, discards, mapped-ram headers, page records
 * (--pages) and multifd channels' packets. */
static void human_ram(dump_ctx *d, const ms_event *ev)
{
    FILE *o = d->out;
    char hex[33];
    switch (ev->kind) {
    case MS_EV_RAM_DISCARD:
        fprintf(o, "%s 0x%" PRIx64 " +0x%" PRIx64, ev->u.discard.block,
                ev->u.discard.start, ev->u.discard.length);
        break;
    case MS_EV_RAM_BLOCK:
        fprintf(o, "%s 0x%" PRIx64 " bytes", ev->u.ram.block,
                ev->u.ram.used_length);
        break;
    case MS_EV_MAPPED_RAM: {
        const ms_mapped_ram_info *m = &ev->u.mapped;
        if (m->ignored) {
            fprintf(o, "%s x-ignore-shared: not in the file", m->block);
            break;
        }
        fprintf(o, "%s v%u page %" PRIu64 " bitmap 0x%" PRIx64
                   " (%" PRIu64 " bytes) pages 0x%" PRIx64 ": %" PRIu64
                   " / %" PRIu64 " pages set, stream resumes at 0x%" PRIx64,
                m->block, m->version, m->page_size, m->bitmap_offset,
                m->bitmap_size, m->pages_offset, m->pages_set,
                m->pages_total, m->resume_offset);
        break;
    }
    case MS_EV_RAM_PAGE:
        fprintf(o, "%s %s 0x%" PRIx64,
                ev->u.ram.record == MS_RAM_ZERO     ? "zero"
                : ev->u.ram.record == MS_RAM_XBZRLE ? "xbzrle"
                : ev->u.ram.record == MS_RAM_COMPRESS_PAGE ? "compressed"
                                                    : "page",
                ev->u.ram.block, ev->u.ram.offset);
        break;
    case MS_EV_RAM_MARKER:
        fputs(ev->u.ram.record == MS_RAM_MULTIFD_FLUSH ? "MULTIFD_FLUSH"
                                                       : "HOOK",
              o);
        break;
    case MS_EV_CHANNEL:
        tool_hex(hex, ev->u.channel.uuid, 16);
        fprintf(o, "multifd channel %u uuid %s", ev->u.channel.channel_id,
                hex);
        break;
    case MS_EV_MULTIFD_PACKET: {
        const ms_multifd_info *m = &ev->u.mfd;
        if (m->device_state) {
            fprintf(o, "device state %s instance %u idx %u%s %" PRIu64
                       " bytes",
                    m->idstr, m->instance_id, m->idx,
                    m->config ? " config" : "", m->payload_size);
            break;
        }
        fprintf(o, "RAM #%" PRIu64 "%s %s: %u pages + %u zero, payload %" PRIu64
                   " (%s)",
                m->packet_num, m->sync ? " SYNC" : "",
                m->block[0] ? m->block : "-", m->normal_pages, m->zero_pages,
                m->payload_size, m->compression);
        if (!m->normal_pages && m->next_packet_size)
            fprintf(o, " [stale next_packet_size %u ignored]",
                    m->next_packet_size);
        break;
    }
    default: break;
    }
}

/* Streams beside the main one: CPR state, dirty bitmaps, the return path
 * and a libvirt save image's header. */
static void human_side(dump_ctx *d, const ms_event *ev)
{
    FILE *o = d->out;
    switch (ev->kind) {
    case MS_EV_CPR: {
        const ms_cpr_info *c = &ev->u.cpr;
        if (c->record == MS_CPR_FD && c->fd_passed)
            fprintf(o, "fd \"%s\" id %d (passed as SCM_RIGHTS)", c->name,
                    c->id);
        else if (c->record == MS_CPR_FD)
            fprintf(o, "fd \"%s\" id %d fd %d", c->name, c->id, c->fd);
        else if (c->record == MS_CPR_VFIO_DEVICE)
            fprintf(o, "vfio device \"%s\" devid %d ioas %u hwpt %u",
                    c->name, c->devid, c->ioas_id, c->hwpt_id);
        else
            fprintf(o, "end of the %s list: %u", c->list ? "vfio device" : "fd",
                    c->count);
        break;
    }
    case MS_EV_DIRTY_BITMAP: {
        const ms_dirty_bitmap_info *b = &ev->u.dbm;
        fprintf(o, "%s/%s ", b->node, b->bitmap);
        if (b->record == MS_DBM_START)
            fprintf(o, "start granularity %u%s%s", b->granularity,
                    b->bitmap_flags & 1 ? " enabled" : "",
                    b->bitmap_flags & 2 ? " persistent" : "");
        else if (b->record == MS_DBM_COMPLETE)
            fputs("complete", o);
        else
            fprintf(o, "sectors %" PRIu64 "+%u %s", b->first_sector,
                    b->nr_sectors, b->zeroes ? "zeroes" : "bits");
        break;
    }
    case MS_EV_RP_MESSAGE: human_rp(o, &ev->u.rp); break;
    case MS_EV_ARCHIVE_BEGIN:
    case MS_EV_ARCHIVE_DATA:
    case MS_EV_ARCHIVE_END: archive_input_human(o, ev); break;
    case MS_EV_LIBVIRT_HEADER: {
        const ms_libvirt_info *l = &ev->u.libvirt;
        fprintf(o,
                "version %u %s%s, %s, XML %u bytes at %" PRIu64
                ", cookie %u bytes, QEMU stream at %" PRIu64 "%s",
                l->version, l->format_name,
                l->big_endian ? " (big-endian header)" : "",
                l->was_running ? "was running" : "was paused", l->xml_len,
                l->xml_offset, l->cookie_len, l->body_offset,
                l->decompressed ? " (offsets below: decompressed stream)"
                                : "");
        break;
    }
    default: break;
    }
}

/* Migstream device images and their pieces, QEMU multifd device state
 * reassembled, and a device's precopy, state and stop-copy reports. */
static void human_device(dump_ctx *d, const ms_event *ev)
{
    FILE *o = d->out;
    switch (ev->kind) {
    case MS_EV_IMAGE_BEGIN:
        fprintf(o, "device %u image %u %s via %s%s", ev->u.image.device,
                ev->u.image.seq, ms_phase_name(ev->u.image.phase),
                ev->u.image.transport ? "packets" : "chunks",
                ev->u.image.flags & 1 ? " full" : "");
        break;
    case MS_EV_CHUNK:
        fprintf(o, "device %u image %u at %" PRIu64 ": %u bytes%s",
                ev->u.chunk.device, ev->u.chunk.seq, ev->u.chunk.image_offset,
                ev->u.chunk.raw_len,
                ev->u.chunk.compression ? "" : " stored");
        if (ev->u.chunk.compression)
            fprintf(o, " from %" PRIu64 " zlib", ev->u.chunk.stored_len);
        break;
    case MS_EV_PACKET:
        fprintf(o, "device %u image %u idx %u%s %" PRIu64 " bytes",
                ev->u.packet.device, ev->u.packet.seq, ev->u.packet.idx,
                ev->u.packet.config ? " config" : "", ev->u.packet.size);
        break;
    case MS_EV_IMAGE_ASSEMBLED:
        if (ev->u.image.device & MS_DEVICE_HANDLE_QEMU) {
            fprintf(o, "%s final image %" PRIu64 " bytes from %" PRIu64
                       " buffers + config %" PRIu64 " bytes",
                    dev_of(d, ev->u.image.device)->idstr, ev->u.image.length,
                    ev->u.image.unit_count, ev->u.image.config_length);
            break;
        }
        /* fallthrough */
    case MS_EV_IMAGE_END:
        fprintf(o, "device %u image %u %s %" PRIu64 " bytes in %" PRIu64
                   " %s hash %016" PRIx64,
                ev->u.image.device, ev->u.image.seq,
                ms_phase_name(ev->u.image.phase), ev->u.image.length,
                ev->u.image.unit_count,
                ev->u.image.transport ? "packets" : "chunks",
                ev->u.image.hash);
        if (ev->u.image.transport)
            fprintf(o, " + config %" PRIu64 " bytes",
                    ev->u.image.config_length);
        break;
    case MS_EV_PRECOPY_INFO:
        fprintf(o, "device %u initial %" PRIu64 " dirty %" PRIu64 "%s",
                ev->u.precopy.device, ev->u.precopy.initial_bytes,
                ev->u.precopy.dirty_bytes,
                ev->u.precopy.flags & 1 ? " REINIT" : "");
        break;
    case MS_EV_STATE_CHANGE:
        fprintf(o, "device %u %s -> %s at %" PRIu64 " ns", ev->u.state.device,
                ms_vfio_state_name(ev->u.state.from),
                ms_vfio_state_name(ev->u.state.to),
                ev->u.state.timestamp_ns);
        break;
    case MS_EV_STOP_COPY_SIZE:
        fprintf(o, "device %u estimate %" PRIu64 " bytes",
                ev->u.stop_copy.device, ev->u.stop_copy.bytes);
        break;
    default: break;
    }
}

/* One line per event: its offset and kind, then what it says.  Migstream
 * stream records are printed here, every other kind by its family's
 * function (human_device, human_qemu, human_ram, human_side); each prints
 * only its own kinds, so all of them are called. */
static void human_event(dump_ctx *d, size_t file, const ms_event *ev,
                        int from_set)
{
    FILE *o = d->out;
    char hex[33];
    if (ev->kind == MS_EV_DATA || ev->kind == MS_EV_SUBSECTION ||
        ev->kind == MS_EV_FIELD ||
        (ev->kind == MS_EV_RAM_PAGE && !d->show_pages) ||
        (ev->kind == MS_EV_RAM_MARKER && ev->u.ram.record == MS_RAM_EOS) ||
        (ev->kind == MS_EV_DIRTY_BITMAP &&
         (ev->u.dbm.record == MS_DBM_BUFFER ||
          ev->u.dbm.record == MS_DBM_EOS)))
        return; /* bytes, fields (--state) and pages (--pages) */
    if (d->several && !from_set && file != d->last_file_header) {
        fprintf(o, "%s%s:\n", d->last_file_header == (size_t)-1 ? "" : "\n",
                d->files[file]);
        d->last_file_header = file;
    }
    if (from_set)
        fprintf(o, "%10s  %-15s ", "set", ms_event_kind_name(ev->kind));
    else
        fprintf(o, "%10" PRIu64 "  %-15s ", ev->offset,
                ms_event_kind_name(ev->kind));
    switch (ev->kind) {
    case MS_EV_STREAM_HEADER:
        tool_hex(hex, ev->u.stream.uuid, 16);
        if (ev->u.stream.format != MS_FORMAT_MIGSTREAM) {
            fprintf(o, "%s version %u", ms_format_name(ev->u.stream.format),
                    ev->u.stream.version_major);
            break;
        }
        fprintf(o, "%s %u.%u channel %u of %u uuid %s",
                ms_format_name(ev->u.stream.format),
                ev->u.stream.version_major, ev->u.stream.version_minor,
                ev->u.stream.channel_index, ev->u.stream.channel_count, hex);
        break;
    case MS_EV_RECORD:
        fprintf(o, "tag 0x%x flags 0x%x size %" PRIu64 "%s", ev->u.record.tag,
                ev->u.record.flags, ev->u.record.size,
                ev->u.record.known ? "" : " (unknown optional, skipped)");
        break;
    case MS_EV_DEVICE:
        fprintf(o, "device %u %s instance %u payload %s compat %u bytes",
                ev->u.device.handle, ev->u.device.idstr,
                ev->u.device.instance_id,
                ms_payload_kind_name(ev->u.device.payload_kind),
                ev->u.device.compat_len);
        break;
    case MS_EV_END:
        fprintf(o, "%" PRIu64 " records %" PRIu64 " image bytes %" PRIu64
                   " packets check %016" PRIx64,
                ev->u.end.record_count, ev->u.end.image_bytes,
                ev->u.end.packet_count, ev->u.end.final_check);
        break;
    default:
        human_device(d, ev);
        human_qemu(d, ev);
        human_ram(d, ev);
        human_side(d, ev);
        break;
    }
    fputc('\n', o);
}

/* ---- JSON output ------------------------------------------------------------ */

/* The interface is spec/json.md, checked by spec/migstream-dump.schema.json:
 * one object per line, a json_header first; one shape per kind name; a key
 * means one thing with one type in every kind; a 64-bit value read from
 * the input (not bounded by the input's size) is a decimal string. */
#define DUMP_JSON_SCHEMA "migstream-dump"
#define DUMP_JSON_VERSION "1.1" /* spec/json.md: major.minor */

/* The kind name of an event's line: the library's name, except where one
 * name covers two shapes (a migstream record or packet vs a driver
 * payload's record or a QEMU multifd packet). */
static const char *json_kind(ms_event_kind k)
{
    switch (k) {
    case MS_EV_MULTIFD_PACKET: return "multifd_packet";
    case MS_EV_PAYLOAD_RECORD: return "payload_record";
    case MS_EV_PAYLOAD_IMAGE: return "payload_image";
    default: return ms_event_kind_name(k);
    }
}

/* A 64-bit value that may exceed 2^53: a decimal string (jq and
 * JavaScript read JSON numbers as doubles). */
static void json_u64(FILE *o, const char *key, uint64_t v)
{
    fprintf(o, ",\"%s\":\"%" PRIu64 "\"", key, v);
}

/* The first line: what the lines after it follow. */
static void json_header(dump_ctx *d)
{
    fprintf(d->out,
            "{\"kind\":\"json_header\",\"schema\":\"" DUMP_JSON_SCHEMA
            "\",\"version\":\"" DUMP_JSON_VERSION
            "\",\"tool\":\"%s\",\"tool_version\":\"%s\"}\n",
            prog, ms_version_string());
}

static void json_begin(dump_ctx *d, const char *kind, size_t file,
                       uint64_t offset)
{
    fprintf(d->out, "{\"kind\":\"%s\",\"offset\":%" PRIu64, kind, offset);
    if (d->several && file != (size_t)-1) {
        fputs(",\"file\":", d->out);
        tool_json_string(d->out, d->files[file], strlen(d->files[file]));
    }
}

/* A summary line: about the whole input, so no offset and no file. */
static void json_begin_summary(dump_ctx *d, const char *kind)
{
    fprintf(d->out, "{\"kind\":\"%s\"", kind);
}

static void json_image(FILE *o, const ms_image_info *i, int end)
{
    fprintf(o, ",\"device\":%u,\"seq\":%u,\"phase\":\"%s\",\"transport\":\"%s\"",
            i->device, i->seq, ms_phase_name(i->phase),
            i->transport ? "packets" : "chunks");
    if (!end) {
        fprintf(o, ",\"flags\":%u", i->flags);
        json_u64(o, "timestamp_ns", i->timestamp_ns);
        return;
    }
    fprintf(o, ",\"size\":%" PRIu64 ",\"units\":%" PRIu64
               ",\"hash\":\"%016" PRIx64 "\"",
            i->length, i->unit_count, i->hash);
    json_u64(o, "timestamp_ns", i->timestamp_ns);
    if (i->transport)
        fprintf(o, ",\"config_length\":%" PRIu64, i->config_length);
}

static void json_rp(FILE *o, const ms_rp_info *m)
{
    fprintf(o, ",\"type\":%u,\"name\":\"%s\",\"len\":%u", m->type, m->name,
            m->len);
    switch (m->type) {
    case MS_RP_SHUT:
    case MS_RP_PONG:
    case MS_RP_RESUME_ACK: json_u64(o, "value", m->value); break;
    case MS_RP_REQ_PAGES_ID:
    case MS_RP_REQ_PAGES:
        json_u64(o, "ram_start", m->start);
        fprintf(o, ",\"request_length\":%u,\"block\":", m->length);
        tool_json_string(o, m->block, strlen(m->block));
        fprintf(o, ",\"block_named\":%s", m->block_named ? "true" : "false");
        break;
    case MS_RP_RECV_BITMAP:
        fputs(",\"block\":", o);
        tool_json_string(o, m->block, strlen(m->block));
        json_u64(o, "bitmap_size", m->bitmap_size);
        fprintf(o, ",\"bitmap_offset\":%" PRIu64, m->bitmap_offset);
        break;
    default: break;
    }
}

/* The QEMU main stream's own records: configuration, sections, commands,
 * VFIO markers and the JSON trailer. */
static void json_qemu(dump_ctx *d, const ms_event *ev)
{
    FILE *o = d->out;
    char hex[33];
    switch (ev->kind) {
    case MS_EV_CONFIGURATION:
        fputs(",\"machine\":", o);
        tool_json_string(o, ev->u.config.machine, ev->u.config.machine_len);
        if (ev->u.config.has_page_bits)
            fprintf(o, ",\"page_bits\":%u", ev->u.config.page_bits);
        fprintf(o, ",\"capabilities\":%u", ev->u.config.capability_count);
        if (ev->u.config.has_uuid) {
            tool_hex(hex, ev->u.config.uuid, 16);
            fprintf(o, ",\"uuid\":\"%s\"", hex);
        }
        break;
    case MS_EV_SECTION:
    case MS_EV_SECTION_FOOTER:
    case MS_EV_UNDECODED:
        fprintf(o, ",\"section_type\":\"%s\",\"section_id\":%u,\"idstr\":",
                ms_qemu_section_type_name(ev->u.section.type),
                ev->u.section.section_id);
        tool_json_string(o, ev->u.section.idstr, strlen(ev->u.section.idstr));
        fprintf(o, ",\"instance_id\":%u,\"version_id\":%u",
                ev->u.section.instance_id, ev->u.section.version_id);
        if (ev->kind == MS_EV_SECTION_FOOTER)
            fprintf(o, ",\"section_offset\":%" PRIu64,
                    ev->u.section.section_offset);
        if (ev->kind == MS_EV_UNDECODED) {
            fputs(",\"reason\":", o);
            tool_json_string(o, ev->u.section.detail,
                             strlen(ev->u.section.detail));
        }
        break;
    case MS_EV_COMMAND:
        fprintf(o, ",\"cmd\":%u,\"name\":\"%s\",\"len\":%u,\"nesting\":%d",
                ev->u.command.cmd, ev->u.command.name, ev->u.command.len,
                ev->u.command.nesting);
        if (ev->u.command.cmd == 2 || ev->u.command.cmd == 7)
            json_u64(o, "value", ev->u.command.value);
        if (ev->u.command.cmd == 3 && ev->u.command.len) {
            json_u64(o, "page_size_summary", ev->u.command.page_size_summary);
            json_u64(o, "target_page_size", ev->u.command.target_page_size);
        }
        if (ev->u.command.block) {
            fputs(",\"block\":", o);
            tool_json_string(o, ev->u.command.block,
                             strlen(ev->u.command.block));
        }
        if (ev->u.command.cmd == 6)
            fprintf(o, ",\"ranges\":%u", ev->u.command.discard_ranges);
        if (ev->u.command.postcopy_state)
            fprintf(o, ",\"postcopy_state\":\"%s\"",
                    ev->u.command.postcopy_state);
        break;
    case MS_EV_VFIO_MARKER:
        fprintf(o, ",\"marker\":\"%s\",\"section_id\":%u,\"idstr\":",
                ev->u.vfio.name, ev->u.vfio.section_id);
        tool_json_string(o, ev->u.vfio.idstr, strlen(ev->u.vfio.idstr));
        fprintf(o, ",\"phase\":\"%s\"", ms_phase_name(ev->u.vfio.phase));
        json_u64(o, "data_size", ev->u.vfio.data_size);
        break;
    case MS_EV_VMDESC: fprintf(o, ",\"json_length\":%zu", ev->u.vmdesc.len); break;
    default: break;
    }
}

/* QEMU RAM: block lists, discards, mapped-ram headers, page records
 * (--pages) and multifd channels' packets. */
static void json_ram(dump_ctx *d, const ms_event *ev)
{
    FILE *o = d->out;
    char hex[33];
    switch (ev->kind) {
    case MS_EV_RAM_DISCARD:
        fputs(",\"block\":", o);
        tool_json_string(o, ev->u.discard.block, strlen(ev->u.discard.block));
        json_u64(o, "ram_start", ev->u.discard.start);
        json_u64(o, "ram_length", ev->u.discard.length);
        break;
    case MS_EV_RAM_BLOCK:
        fputs(",\"block\":", o);
        tool_json_string(o, ev->u.ram.block, strlen(ev->u.ram.block));
        json_u64(o, "used_length", ev->u.ram.used_length);
        break;
    case MS_EV_MAPPED_RAM: {
        const ms_mapped_ram_info *m = &ev->u.mapped;
        fputs(",\"block\":", o);
        tool_json_string(o, m->block, strlen(m->block));
        fprintf(o, ",\"header_version\":%u", m->version);
        json_u64(o, "used_length", m->used_length);
        json_u64(o, "page_size", m->page_size);
        fprintf(o, ",\"bitmap_offset\":%" PRIu64, m->bitmap_offset);
        json_u64(o, "bitmap_size", m->bitmap_size);
        fprintf(o, ",\"pages_offset\":%" PRIu64 ",\"pages_set\":%" PRIu64,
                m->pages_offset, m->pages_set);
        json_u64(o, "pages_total", m->pages_total);
        fprintf(o, ",\"resume_offset\":%" PRIu64 ",\"ignored\":%s",
                m->resume_offset, m->ignored ? "true" : "false");
        break;
    }
    case MS_EV_RAM_PAGE:
    case MS_EV_RAM_MARKER:
        fprintf(o, ",\"ram_record\":%u", (unsigned)ev->u.ram.record);
        if (ev->kind == MS_EV_RAM_PAGE) {
            fputs(",\"block\":", o);
            tool_json_string(o, ev->u.ram.block, strlen(ev->u.ram.block));
            json_u64(o, "page_offset", ev->u.ram.offset);
        }
        break;
    case MS_EV_CHANNEL:
        tool_hex(hex, ev->u.channel.uuid, 16);
        fprintf(o, ",\"channel_id\":%u,\"uuid\":\"%s\"",
                ev->u.channel.channel_id, hex);
        break;
    case MS_EV_MULTIFD_PACKET: {
        const ms_multifd_info *m = &ev->u.mfd;
        fprintf(o, ",\"channel_id\":%u,\"flags\":%u,\"sync\":%s,"
                   "\"compression\":\"%s\",\"device_state\":%s",
                d->chans[d->cur_file].channel_id, m->flags,
                m->sync ? "true" : "false", m->compression,
                m->device_state ? "true" : "false");
        if (m->device_state) {
            fputs(",\"idstr\":", o);
            tool_json_string(o, m->idstr, strlen(m->idstr));
            fprintf(o, ",\"instance_id\":%u,\"idx\":%u,\"config\":%s",
                    m->instance_id, m->idx, m->config ? "true" : "false");
        } else {
            json_u64(o, "packet_num", m->packet_num);
            fputs(",\"block\":", o);
            tool_json_string(o, m->block, strlen(m->block));
            fprintf(o, ",\"pages_alloc\":%u,\"normal_pages\":%u,"
                       "\"zero_pages\":%u,\"next_packet_size\":%u",
                    m->pages_alloc, m->normal_pages, m->zero_pages,
                    m->next_packet_size);
        }
        fprintf(o, ",\"payload_size\":%" PRIu64, m->payload_size);
        break;
    }
    default: break;
    }
}

/* Streams beside the main one: the return path, a libvirt save image's
 * header, CPR state and dirty bitmaps. */
static void json_side(dump_ctx *d, const ms_event *ev)
{
    FILE *o = d->out;
    switch (ev->kind) {
    case MS_EV_RP_MESSAGE: json_rp(o, &ev->u.rp); break;
    case MS_EV_ARCHIVE_BEGIN:
    case MS_EV_ARCHIVE_DATA:
    case MS_EV_ARCHIVE_END: archive_input_json(o, ev); break;
    case MS_EV_LIBVIRT_HEADER:
        fprintf(o,
                ",\"header_version\":%u,\"compression\":\"%s\","
                "\"big_endian\":%s,"
                "\"was_running\":%u,\"xml_len\":%u,\"cookie_len\":%u,"
                "\"body_offset\":%" PRIu64 ",\"decompressed\":%s",
                ev->u.libvirt.version, ev->u.libvirt.format_name,
                ev->u.libvirt.big_endian ? "true" : "false",
                ev->u.libvirt.was_running, ev->u.libvirt.xml_len,
                ev->u.libvirt.cookie_len, ev->u.libvirt.body_offset,
                ev->u.libvirt.decompressed ? "true" : "false");
        break;
    case MS_EV_CPR: {
        const ms_cpr_info *c = &ev->u.cpr;
        static const char *const recs[] = {"", "fd", "vfio_device",
                                           "list_end"};
        fprintf(o, ",\"record\":\"%s\"",
                recs[c->record <= MS_CPR_LIST_END ? c->record : 0]);
        if (c->record == MS_CPR_LIST_END) {
            fprintf(o, ",\"list\":\"%s\",\"count\":%u",
                    c->list ? "vfio_devices" : "fds", c->count);
            break;
        }
        fputs(",\"name\":", o);
        tool_json_string(o, c->name, strlen(c->name));
        if (c->record == MS_CPR_FD)
            fprintf(o, ",\"id\":%d,\"fd_passed\":%s,\"fd\":%d", c->id,
                    c->fd_passed ? "true" : "false", c->fd);
        else
            fprintf(o, ",\"devid\":%d,\"ioas_id\":%u,\"hwpt_id\":%u",
                    c->devid, c->ioas_id, c->hwpt_id);
        break;
    }
    case MS_EV_DIRTY_BITMAP: {
        const ms_dirty_bitmap_info *b = &ev->u.dbm;
        static const char *const names[] = {"", "eos", "start", "complete",
                                            "bits", "buffer"};
        fprintf(o, ",\"record\":\"%s\",\"flags\":%u",
                names[b->record <= MS_DBM_BUFFER ? b->record : 0], b->flags);
        if (b->record == MS_DBM_EOS)
            break;
        fputs(",\"node\":", o);
        tool_json_string(o, b->node, strlen(b->node));
        fputs(",\"bitmap\":", o);
        tool_json_string(o, b->bitmap, strlen(b->bitmap));
        if (b->record == MS_DBM_START)
            fprintf(o, ",\"granularity\":%u,\"bitmap_flags\":%u",
                    b->granularity, b->bitmap_flags);
        if (b->record == MS_DBM_BITS) {
            json_u64(o, "first_sector", b->first_sector);
            fprintf(o, ",\"nr_sectors\":%u,\"zeroes\":%s", b->nr_sectors,
                    b->zeroes ? "true" : "false");
            json_u64(o, "buf_size", b->buf_size);
        }
        if (b->record == MS_DBM_BUFFER)
            fprintf(o, ",\"offset_in_buffer\":%" PRIu64 ",\"size\":%zu",
                    b->buf_offset, b->size);
        break;
    }
    default: break;
    }
}

/* Migstream device images and their pieces, QEMU multifd device state
 * reassembled, and a device's precopy, state and stop-copy reports. */
static void json_device(dump_ctx *d, const ms_event *ev)
{
    FILE *o = d->out;
    switch (ev->kind) {
    case MS_EV_IMAGE_BEGIN: json_image(o, &ev->u.image, 0); break;
    case MS_EV_IMAGE_END:
    case MS_EV_IMAGE_ASSEMBLED: json_image(o, &ev->u.image, 1); break;
    case MS_EV_CHUNK:
        fprintf(o, ",\"device\":%u,\"seq\":%u,\"compression\":\"%s\","
                   "\"raw_len\":%u,\"stored_len\":%" PRIu64
                   ",\"image_offset\":%" PRIu64,
                ev->u.chunk.device, ev->u.chunk.seq,
                ev->u.chunk.compression ? "zlib" : "none", ev->u.chunk.raw_len,
                ev->u.chunk.stored_len, ev->u.chunk.image_offset);
        break;
    case MS_EV_PACKET:
        fprintf(o, ",\"device\":%u,\"seq\":%u,\"idx\":%u,\"config\":%s,"
                   "\"size\":%" PRIu64,
                ev->u.packet.device, ev->u.packet.seq, ev->u.packet.idx,
                ev->u.packet.config ? "true" : "false", ev->u.packet.size);
        break;
    case MS_EV_PRECOPY_INFO:
        fprintf(o, ",\"device\":%u,\"flags\":%u", ev->u.precopy.device,
                ev->u.precopy.flags);
        json_u64(o, "initial_bytes", ev->u.precopy.initial_bytes);
        json_u64(o, "dirty_bytes", ev->u.precopy.dirty_bytes);
        json_u64(o, "timestamp_ns", ev->u.precopy.timestamp_ns);
        break;
    case MS_EV_STATE_CHANGE:
        fprintf(o, ",\"device\":%u,\"from\":\"%s\",\"to\":\"%s\"",
                ev->u.state.device, ms_vfio_state_name(ev->u.state.from),
                ms_vfio_state_name(ev->u.state.to));
        json_u64(o, "timestamp_ns", ev->u.state.timestamp_ns);
        break;
    case MS_EV_STOP_COPY_SIZE:
        fprintf(o, ",\"device\":%u", ev->u.stop_copy.device);
        json_u64(o, "stop_copy_bytes", ev->u.stop_copy.bytes);
        json_u64(o, "timestamp_ns", ev->u.stop_copy.timestamp_ns);
        break;
    default: break;
    }
}

/* One JSON object per event: kind, offset and length, then its fields.
 * Migstream stream records are written here, every other kind by its
 * family's function (json_device, json_qemu, json_ram, json_side); each
 * writes only its own kinds, so all of them are called. */
static void json_event(dump_ctx *d, size_t file, const ms_event *ev,
                       int from_set)
{
    FILE *o = d->out;
    char hex[33];
    d->cur_file = file;
    if (ev->kind == MS_EV_DATA || ev->kind == MS_EV_SUBSECTION ||
        ev->kind == MS_EV_FIELD ||
        (ev->kind == MS_EV_RAM_PAGE && !d->show_pages))
        return;
    json_begin(d, json_kind(ev->kind), file, ev->offset);
    if (!from_set)
        fprintf(o, ",\"length\":%" PRIu64, ev->length);
    switch (ev->kind) {
    case MS_EV_STREAM_HEADER:
        tool_hex(hex, ev->u.stream.uuid, 16);
        fprintf(o, ",\"format\":\"%s\",\"format_version\":\"%u.%u\","
                   "\"uuid\":\"%s\",\"channel_index\":%u,\"channel_count\":%u",
                ms_format_name(ev->u.stream.format),
                ev->u.stream.version_major, ev->u.stream.version_minor, hex,
                ev->u.stream.channel_index, ev->u.stream.channel_count);
        json_u64(o, "created_ns", ev->u.stream.created_ns);
        break;
    case MS_EV_RECORD:
        fprintf(o, ",\"tag\":%u,\"flags\":%u,\"size\":%" PRIu64
                   ",\"known\":%s",
                ev->u.record.tag, ev->u.record.flags, ev->u.record.size,
                ev->u.record.known ? "true" : "false");
        break;
    case MS_EV_DEVICE:
        fprintf(o, ",\"device\":%u,\"idstr\":", ev->u.device.handle);
        tool_json_string(o, ev->u.device.idstr, ev->u.device.idstr_len);
        fprintf(o, ",\"instance_id\":%u,\"payload\":\"%s\",\"compat_len\":%u",
                ev->u.device.instance_id,
                ms_payload_kind_name(ev->u.device.payload_kind),
                ev->u.device.compat_len);
        break;
    case MS_EV_END:
        fprintf(o, ",\"records\":%" PRIu64 ",\"stream_bytes\":%" PRIu64
                   ",\"image_bytes\":%" PRIu64 ",\"packets\":%" PRIu64
                   ",\"device_count\":%u,\"images\":%u,\"check\":\"%016" PRIx64
                   "\"",
                ev->u.end.record_count, ev->u.end.stream_bytes,
                ev->u.end.image_bytes, ev->u.end.packet_count,
                ev->u.end.device_count, ev->u.end.image_count,
                ev->u.end.final_check);
        break;
    default:
        json_device(d, ev);
        json_qemu(d, ev);
        json_ram(d, ev);
        json_side(d, ev);
        break;
    }
    fputs("}\n", o);
}

static void on_problem(void *ctx, size_t file, const ms_error_info *e);

static void on_event(void *ctx, const ms_event *ev,
                     const ms_event_origin *origin)
{
    dump_ctx *d = ctx;
    size_t file = origin->channel;
    int from_set = origin->derived;
    if (origin->device) { /* a driver payload nested in a carrier */
        payload_event(d, file, origin->device, 0, ev);
        return;
    }
    if (ev->kind == MS_EV_PAYLOAD_RECORD || ev->kind == MS_EV_PAYLOAD_IMAGE ||
        ev->kind == MS_EV_PAYLOAD_FIELD) { /* a raw driver payload file */
        payload_event(d, file, d->files[file], 1, ev);
        return;
    }
    if (d->state) {
        dump_state_event(d->state, file, ev);
        return;
    }
    account(d, file, ev, from_set);
    if (d->summary_only)
        return;
    if (d->json)
        json_event(d, file, ev, from_set);
    else
        human_event(d, file, ev, from_set);
}

static void on_problem(void *ctx, size_t file, const ms_error_info *e)
{
    dump_ctx *d = ctx;
    const char *name = d->files[file == (size_t)-1 ? 0 : file];
    d->problems++;
    if (d->json && !d->state) { /* --state: stdout holds one document */
        json_begin(d, "error", file == (size_t)-1 ? 0 : file, e->offset);
        fprintf(d->out, ",\"error\":\"%s\",\"detail\":",
                ms_error_name(e->code));
        tool_json_string(d->out, e->detail, strlen(e->detail));
        fputs("}\n", d->out);
    }
    fflush(d->out);
    tool_held_problem(&d->held, file, name, e);
}

/* ---- summary ---------------------------------------------------------------- */

/* Files given that tool_run could not open (said on stderr). */
static size_t unreadable_files(const dump_ctx *d)
{
    size_t n = 0;
    for (size_t i = 0; i < d->nfiles; i++)
        n += (size_t)tool_unreadable(i);
    return n;
}

/* The summary's verdict: never a plain "valid" when a file given could
 * not be read (a channel of the migration may be in it). */
static const char *verdict(const dump_ctx *d)
{
    if (d->problems)
        return "INVALID";
    return unreadable_files(d) ? "valid as far as read (a file given could "
                                 "not be read)"
                               : "valid";
}

/* JSON "valid": true only when every file was read and no problem found. */
static const char *json_valid(const dump_ctx *d)
{
    return d->problems || unreadable_files(d) ? "false" : "true";
}

/* summary_qemu as one JSON object: totals, then blocks, channels and
 * VFIO devices as arrays. */
static void summary_qemu_json(dump_ctx *d, uint64_t pages, uint64_t zero)
{
    FILE *o = d->out;
    json_begin_summary(d, "qemu_summary");
    fputs(",\"format\":\"qemu-main\",\"machine\":", o);
    tool_json_string(o, d->machine, strlen(d->machine));
    fprintf(o, ",\"sections\":%" PRIu64 ",\"undecoded\":%" PRIu64
               ",\"normal_pages\":%" PRIu64 ",\"zero_pages\":%" PRIu64
               ",\"valid\":%s,\"problems\":%" PRIu64 ",\"blocks\":[",
            d->sections, d->undecoded, pages, zero,
            json_valid(d), d->problems);
    for (size_t i = 0; i < d->nblocks; i++) {
        block_stats *b = &d->blocks[i];
        fprintf(o, "%s{\"block\":", i ? "," : "");
        tool_json_string(o, b->name, strlen(b->name));
        json_u64(o, "used_length", b->used_length);
        fprintf(o, ",\"pages\":%" PRIu64 ",\"zero\":%" PRIu64
                   ",\"xbzrle\":%" PRIu64 ",\"compressed\":%" PRIu64,
                b->pages, b->zero, b->xbzrle, b->compressed);
        if (b->mapped) {
            fprintf(o, ",\"mapped_pages_set\":%" PRIu64, b->mapped_set);
            json_u64(o, "mapped_pages_total", b->mapped_total);
        }
        fputc('}', o);
    }
    fputs("],\"channels\":[", o);
    int first = 1;
    for (size_t i = 0; i < d->nfiles; i++) {
        chan_stats *c = &d->chans[i];
        if (!c->is_channel)
            continue;
        fprintf(o, "%s{\"channel_id\":%u,\"file\":", first ? "" : ",",
                c->channel_id);
        first = 0;
        tool_json_string(o, d->files[i], strlen(d->files[i]));
        fprintf(o, ",\"packets\":%" PRIu64 ",\"sync_packets\":%" PRIu64
                   ",\"normal_pages\":%" PRIu64 ",\"zero_pages\":%" PRIu64
                   ",\"payload_bytes\":%" PRIu64
                   ",\"device_state_packets\":%" PRIu64 "}",
                c->packets, c->syncs, c->normal, c->zero, c->payload,
                c->device_packets);
    }
    fputs("],\"vfio\":[", o);
    for (size_t i = 0; i < d->ndevs; i++) {
        dev_stats *s = &d->devs[i];
        fprintf(o, "%s{\"section_id\":%u,\"idstr\":", i ? "," : "",
                s->handle);
        tool_json_string(o, s->idstr, strlen(s->idstr));
        for (int p = MS_PHASE_INITIAL; p <= MS_PHASE_FINAL; p++)
            fprintf(o, ",\"%s\":{\"chunks\":%" PRIu64
                       ",\"bytes\":%" PRIu64 "}",
                    ms_phase_name((ms_phase)p), s->phase[p].units,
                    s->phase[p].bytes);
        fputc('}', o);
    }
    fputs("]}\n", o);
}

/* summary_qemu as text: a total line, then a line per block, multifd
 * channel and VFIO device. */
static void summary_qemu_human(dump_ctx *d, uint64_t pages, uint64_t zero)
{
    FILE *o = d->out;
    fprintf(o, "%ssummary: QEMU stream, machine %s, %" PRIu64
               " section records (%" PRIu64 " not decoded), %" PRIu64
               " pages sent + %" PRIu64 " zero pages: %s\n",
            d->summary_only ? "" : "\n", d->have_config ? d->machine : "?",
            d->sections, d->undecoded, pages, zero,
            verdict(d));
    for (size_t i = 0; i < d->nblocks; i++) {
        block_stats *b = &d->blocks[i];
        fprintf(o, "  ram %s: 0x%" PRIx64 " bytes, %" PRIu64 " pages, %" PRIu64
                   " zero",
                b->name, b->used_length, b->pages, b->zero);
        if (b->xbzrle)
            fprintf(o, ", %" PRIu64 " xbzrle", b->xbzrle);
        if (b->compressed)
            fprintf(o, ", %" PRIu64 " compressed", b->compressed);
        if (b->mapped)
            fprintf(o, ", mapped-ram: %" PRIu64 " / %" PRIu64
                       " pages set",
                    b->mapped_set, b->mapped_total);
        fputc('\n', o);
    }
    for (size_t i = 0; i < d->nfiles; i++) {
        chan_stats *c = &d->chans[i];
        if (c->is_channel)
            fprintf(o, "  multifd channel %u (%s): %" PRIu64 " packets, %" PRIu64
                       " SYNC, %" PRIu64 " pages, %" PRIu64 " zero pages, %" PRIu64
                       " payload bytes, %" PRIu64 " device-state packets\n",
                    c->channel_id, d->files[i], c->packets, c->syncs,
                    c->normal, c->zero, c->payload, c->device_packets);
    }
    for (size_t i = 0; i < d->ndevs; i++) {
        dev_stats *s = &d->devs[i];
        if (s->handle & MS_DEVICE_HANDLE_QEMU) { /* multifd device state */
            fprintf(o, "  %s: final image %" PRIu64 " B reassembled from %"
                       PRIu64 " buffers + %" PRIu64 " B config\n",
                    s->idstr, s->phase[MS_PHASE_FINAL].bytes,
                    s->phase[MS_PHASE_FINAL].units, s->config_bytes);
            continue;
        }
        fprintf(o, "  vfio %s (section %u):", s->idstr, s->handle);
        for (int p = MS_PHASE_INITIAL; p <= MS_PHASE_FINAL; p++)
            fprintf(o, " %s %" PRIu64 " B in %" PRIu64 " chunk%s;",
                    ms_phase_name((ms_phase)p), s->phase[p].bytes,
                    s->phase[p].units, s->phase[p].units == 1 ? "" : "s");
        fputc('\n', o);
    }
}

/* QEMU main stream: sections, RAM per block, VFIO device bytes per phase. */
static void summary_qemu(dump_ctx *d)
{
    uint64_t pages = 0, zero = 0;
    for (size_t i = 0; i < d->nblocks; i++) {
        pages += d->blocks[i].pages + d->blocks[i].xbzrle +
                 d->blocks[i].compressed;
        zero += d->blocks[i].zero;
    }
    if (d->json)
        summary_qemu_json(d, pages, zero);
    else
        summary_qemu_human(d, pages, zero);
}

/* QEMU return path: messages by type. */
static void summary_rp(dump_ctx *d)
{
    static const char *const names[8] = {
        "other",       "SHUT",      "PONG",       "REQ_PAGES_ID",
        "REQ_PAGES",   "RECV_BITMAP", "RESUME_ACK", "SWITCHOVER_ACK"};
    FILE *o = d->out;
    uint64_t total = 0;
    for (int i = 0; i < 8; i++)
        total += d->rp_msgs[i];
    if (d->json) {
        json_begin_summary(d, "rp_summary");
        fprintf(o, ",\"format\":\"qemu-return-path\",\"messages\":%" PRIu64,
                total);
        for (int i = 1; i < 8; i++)
            fprintf(o, ",\"%s\":%" PRIu64, names[i], d->rp_msgs[i]);
        fprintf(o, ",\"valid\":%s,\"problems\":%" PRIu64 "}\n",
                json_valid(d), d->problems);
        return;
    }
    fprintf(o, "%sreturn path: %" PRIu64 " messages:", d->summary_only ? "" : "\n",
            total);
    for (int i = 1; i < 8; i++)
        if (d->rp_msgs[i])
            fprintf(o, " %" PRIu64 " %s", d->rp_msgs[i], names[i]);
    fprintf(o, ": %s\n", verdict(d));
}

/* Raw driver payload files: their count and the verdict (the payload
 * summary follows). */
static void summary_payload_files(dump_ctx *d)
{
    FILE *o = d->out;
    if (d->json) {
        json_begin_summary(d, "payload_files_summary");
        fprintf(o, ",\"format\":\"payload\",\"files\":%zu,"
                   "\"valid\":%s,\"problems\":%" PRIu64 "}\n",
                d->nfiles, json_valid(d), d->problems);
    } else {
        fprintf(o, "%ssummary: %zu driver payload file%s: %s\n",
                d->summary_only ? "" : "\n", d->nfiles,
                d->nfiles == 1 ? "" : "s",
                verdict(d));
    }
}

/* QEMU CPR state: the mode its fds tell, fds and VFIO devices. */
static void summary_cpr(dump_ctx *d)
{
    FILE *o = d->out;
    const char *mode = !d->cpr_fds ? "?"
                       : d->cpr_passed ? "cpr-transfer"
                                       : "cpr-exec";
    if (d->json) {
        json_begin_summary(d, "cpr_summary");
        fprintf(o, ",\"format\":\"qemu-cpr\",\"mode\":\"%s\","
                   "\"fds\":%" PRIu64 ",\"vfio_devices\":%" PRIu64
                   ",\"valid\":%s,\"problems\":%" PRIu64 "}\n",
                mode, d->cpr_fds, d->cpr_vfio,
                json_valid(d), d->problems);
    } else {
        fprintf(o, "%ssummary: QEMU CPR state (%s), %" PRIu64
                   " fds, %" PRIu64 " vfio devices: %s\n",
                d->summary_only ? "" : "\n", mode, d->cpr_fds,
                d->cpr_vfio, verdict(d));
    }
}

/* A migstream migration as one JSON object: totals, then its devices. */
static void summary_migstream_json(dump_ctx *d, const char *hex,
                                   uint32_t count)
{
    FILE *o = d->out;
    json_begin_summary(d, "migstream_summary");
    fprintf(o, ",\"format\":\"migstream\",\"files\":%zu", d->nfiles);
    if (d->have_stream)
        fprintf(o, ",\"uuid\":\"%s\"", hex);
    fprintf(o, ",\"channel_count\":%u,"
               "\"channels_read\":%" PRIu64 ",\"records\":%" PRIu64
               ",\"image_bytes\":%" PRIu64 ",\"packets\":%" PRIu64
               ",\"valid\":%s,\"problems\":%" PRIu64 ",\"devices\":[",
            count, d->ends, d->records, d->image_bytes,
            d->packets, json_valid(d), d->problems);
    for (size_t i = 0; i < d->ndevs; i++) {
        dev_stats *s = &d->devs[i];
        fprintf(o, "%s{\"device\":%u,\"idstr\":", i ? "," : "", s->handle);
        tool_json_string(o, s->idstr, strlen(s->idstr));
        fprintf(o, ",\"payload\":\"%s\"", ms_payload_kind_name(s->kind));
        for (int p = MS_PHASE_INITIAL; p <= MS_PHASE_FINAL; p++)
            fprintf(o, ",\"%s\":{\"images\":%" PRIu64 ",\"bytes\":%" PRIu64
                       "}",
                    ms_phase_name((ms_phase)p), s->phase[p].images,
                    s->phase[p].bytes);
        if (s->has_estimate)
            json_u64(o, "stop_copy_estimate", s->stop_copy_estimate);
        if (s->t_stopped)
            json_u64(o, "stop_copy_ns", s->t_stopped - s->t_stop_copy);
        fprintf(o, ",\"packets\":%" PRIu64 ",\"assembled\":%" PRIu64 "}",
                s->packets, s->assembled);
    }
    fputs("]}\n", o);
}

/* A migstream migration as text: a total line, then a line per device. */
static void summary_migstream_human(dump_ctx *d, const char *hex,
                                    uint32_t count)
{
    FILE *o = d->out;
    fprintf(o, "%ssummary: %zu file%s, migration %s, %" PRIu64
               " of %u channels ended, %" PRIu64 " records, %" PRIu64
               " chunk bytes, %" PRIu64 " packets: %s\n",
            d->summary_only ? "" : "\n", d->nfiles, d->nfiles == 1 ? "" : "s",
            d->have_stream ? hex : "?", d->ends, count, d->records,
            d->image_bytes, d->packets,
            verdict(d));
    for (size_t i = 0; i < d->ndevs; i++) {
        dev_stats *s = &d->devs[i];
        fprintf(o, "  device %u %s (%s):", s->handle, s->idstr,
                ms_payload_kind_name(s->kind));
        for (int p = MS_PHASE_INITIAL; p <= MS_PHASE_FINAL; p++)
            fprintf(o, " %s %" PRIu64 " image%s %" PRIu64 " B;",
                    ms_phase_name((ms_phase)p), s->phase[p].images,
                    s->phase[p].images == 1 ? "" : "s", s->phase[p].bytes);
        if (s->has_estimate) {
            uint64_t fin = s->phase[MS_PHASE_FINAL].bytes;
            fprintf(o, " stop-copy estimate %" PRIu64 " B", s->stop_copy_estimate);
            if (s->stop_copy_estimate)
                fprintf(o, " (final is %.1f%% of it)",
                        100.0 * (double)fin / (double)s->stop_copy_estimate);
            fputc(';', o);
        }
        if (s->t_stopped)
            fprintf(o, " stop-copy took %.3f ms;",
                    (double)(s->t_stopped - s->t_stop_copy) / 1e6);
        if (s->packets)
            fprintf(o, " %" PRIu64 " packets, %" PRIu64 " image%s reassembled",
                    s->packets, s->assembled, s->assembled == 1 ? "" : "s");
        fputc('\n', o);
    }
}

/* The summary that fits the migration's format (a return path's comes
 * first when there is one). */
static void summary(dump_ctx *d)
{
    char hex[33] = "";
    if (d->have_rp)
        summary_rp(d);
    if (d->have_stream && d->stream.format == MS_FORMAT_QEMU_RETURN_PATH)
        return; /* the return path alone */
    if (d->have_stream && d->stream.format == MS_FORMAT_PAYLOAD) {
        summary_payload_files(d);
        return;
    }
    if (d->have_stream && d->stream.format == MS_FORMAT_QEMU_CPR) {
        summary_cpr(d);
        return;
    }
    if (d->have_stream && d->stream.format != MS_FORMAT_MIGSTREAM) {
        summary_qemu(d);
        return;
    }
    if (d->have_stream)
        tool_hex(hex, d->stream.uuid, 16);
    uint32_t count = d->have_stream ? d->stream.channel_count : 0;
    if (d->json)
        summary_migstream_json(d, hex, count);
    else
        summary_migstream_human(d, hex, count);
}

static void usage(FILE *o)
{
    fprintf(o,
            "usage: %s [options] FILE...\n"
            "Show the structure of migration streams (one file per channel;\n"
            "the files of one migration are read together; '-' is stdin).\n"
            "  --json           JSON Lines (spec/json.md, schema version "
            DUMP_JSON_VERSION "): a header,\n"
            "                   one object per element, then the summaries\n"
            "  --summary        only the summary\n"
            "  --records        also show every record header\n"
            "  --pages          QEMU: also show every RAM page record (a page "
            "map)\n"
            "  --state          QEMU: print the decoded VMState as QEMU's\n"
            "                   analyze-migration.py -d state does (diff-able; "
            "with\n"
            "                   --json on one line)\n"
            "  --no-payloads    do not decode device data as driver payloads\n"
            "  --bandwidth=RATE bits/s one channel sustains (e.g. 25G): the "
            "summary\n"
            "                   estimates each device's stop-copy transfer "
            "time\n"
            "  --channels=N     channels carrying the final data in parallel "
            "(default 1)\n" TOOL_QUIET_HELP
            "  -h, --help       this help\n"
            "  -V, --version    version\n"
            "reader options:\n",
            prog);
    tool_reader_help(o);
    fprintf(o, "exit: 0 valid, 1 invalid input, 2 usage or I/O error\n");
}

/* What dump's own options set: the context, the reader options, and two
 * choices main acts on once the files are known. */
typedef struct dump_args {
    dump_ctx *d;
    ms_options *opt;
    int nested, show_state;
} dump_args;

enum { OPT_JSON = 256, OPT_SUMMARY, OPT_RECORDS, OPT_PAGES, OPT_STATE,
       OPT_BANDWIDTH, OPT_CHANNELS, OPT_NO_PAYLOADS };

/* --bandwidth RATE: bits/s with an optional K, M or G (powers of 1000). */
static int parse_bandwidth(const char *arg, double *out)
{
    char *end;
    double v = strtod(arg, &end);
    double mult = *end == 'K' || *end == 'k'   ? 1e3
                  : *end == 'M' || *end == 'm' ? 1e6
                  : *end == 'G' || *end == 'g' ? 1e9
                                               : 1;
    if (end == arg || v <= 0 || (mult > 1 && end[1]) ||
        (mult == 1 && *end)) {
        fprintf(stderr, "%s: bad --bandwidth %s (bits/s, e.g. 25G)\n",
                prog, arg);
        return -1;
    }
    *out = v * mult;
    return 0;
}

/* One of dump's own options (tool_option_fn). */
static int dump_option(void *ctx, int c)
{
    dump_args *a = ctx;
    dump_ctx *d = a->d;
    switch (c) {
    case OPT_JSON: d->json = 1; break;
    case OPT_SUMMARY: d->summary_only = 1; break;
    case OPT_RECORDS: a->opt->record_events = 1; break;
    case OPT_PAGES: d->show_pages = 1; break;
    case OPT_STATE:
        a->show_state = 1;
        a->opt->field_events = 1;
        break;
    case OPT_BANDWIDTH:
        if (parse_bandwidth(optarg, &d->bandwidth) < 0)
            return TOOL_USAGE;
        break;
    case OPT_CHANNELS:
        d->channels = (unsigned)strtoul(optarg, NULL, 10);
        if (d->channels == 0 || d->channels > 1024) {
            fprintf(stderr, "%s: bad --channels %s\n", prog, optarg);
            return TOOL_USAGE;
        }
        break;
    case OPT_NO_PAYLOADS: a->nested = 0; break;
    }
    return TOOL_GO_ON;
}

/* Per-file channel counters, the --state document and the nested payload
 * readers: 0, or -1 when memory ran out (printed). */
static int dump_setup(dump_ctx *d, const ms_options *opt,
                      const dump_args *a)
{
    d->chans = calloc(d->nfiles, sizeof *d->chans);
    if (!d->chans) {
        fprintf(stderr, "%s: out of memory\n", prog);
        return -1;
    }
    d->several = d->nfiles > 1;
    if (a->show_state &&
        !(d->state = dump_state_new(prog, d->files, d->nfiles, opt))) {
        fprintf(stderr, "%s: out of memory\n", prog);
        return -1;
    }
    tool_run_payloads(a->nested && opt->format != MS_FORMAT_PAYLOAD);
    return 0;
}

/* After reading: the --state document, or the summaries (payload images
 * still held are printed first). */
static void dump_report(dump_ctx *d, int rc)
{
    if (d->state)
        dump_state_print(d->state, stdout, d->json);
    else if (rc != TOOL_USAGE) {
        if (!d->json && !d->summary_only)
            for (size_t i = 0; i < d->npls; i++)
                payload_image_flush(d, &d->pls[i]);
        /* JSON: the summary object stays the last line */
        if (d->json)
            summary_payloads(d);
        summary(d);
        if (!d->json)
            summary_payloads(d);
    }
}

int main(int argc, char **argv)
{
    dump_ctx d = {.out = stdout, .last_file_header = (size_t)-1};
    ms_options opt;
    ms_options_init(&opt);
    opt.input_stable = 1;
    dump_args args = {.d = &d, .opt = &opt, .nested = 1};
    static const struct option own[] = {
        {"json", no_argument, 0, OPT_JSON},
        {"summary", no_argument, 0, OPT_SUMMARY},
        {"records", no_argument, 0, OPT_RECORDS},
        {"pages", no_argument, 0, OPT_PAGES},
        {"state", no_argument, 0, OPT_STATE},
        {"bandwidth", required_argument, 0, OPT_BANDWIDTH},
        {"channels", required_argument, 0, OPT_CHANNELS},
        {"no-payloads", no_argument, 0, OPT_NO_PAYLOADS},
        {0, 0, 0, 0}};
    int parsed = tool_parse_options(prog, argc, argv, "hV", own, &opt,
                                    dump_option, usage, &args, &d.files,
                                    &d.nfiles);
    if (parsed != TOOL_GO_ON)
        return parsed;
    if (dump_setup(&d, &opt, &args) < 0)
        return TOOL_USAGE;
    if (d.json && !d.state) /* --state --json: the script's document only */
        json_header(&d);
    /* elements printed as they come to a terminal show the progress
     * themselves: a progress line would cut into them */
    if (!d.summary_only && !args.show_state && isatty(STDOUT_FILENO))
        tool_run_progress(0);
    tool_held_init(&d.held, stderr);
    int rc = tool_run(prog, d.files, d.nfiles, &opt, on_event, on_problem, &d);
    fflush(stdout); /* what was dumped, then the problems, sorted */
    tool_held_free(&d.held);
    if (d.state && dump_state_problems(d.state))
        d.problems++;
    if (rc == TOOL_OK && d.problems) /* nested payload problems too */
        rc = TOOL_INVALID;
    dump_report(&d, rc);
    dump_state_free(d.state);
    free(d.pls);
    free(d.devs);
    free(d.blocks);
    free(d.chans);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "%s: write error on standard output\n", prog);
        return TOOL_USAGE;
    }
    return tool_exit_status(rc);
}
