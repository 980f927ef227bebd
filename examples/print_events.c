/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* print_events: every event of one migration, one line each.
 *
 *   print_events FILE...     one file per channel (a QEMU main stream,
 *                            its multifd channels, migstream channels...)
 *
 * The files go through one ms_migration with nested driver payloads on,
 * so the VFIO device data inside QEMU main streams, multifd device state
 * and migstream images comes out too, labelled with its device.  Lines:
 *
 *   SLOT read KIND @OFFSET+LENGTH [what]      a channel's reader
 *   SLOT set KIND @OFFSET+LENGTH [what]       derived by the set
 *   SLOT payload DEVICE PHASE KIND @OFFSET+LENGTH [what] (carrier @N)
 *                                             a device's payload reader
 *   SLOT problem NAME @OFFSET: DETAIL         (slot "-": the migration)
 *
 * Exit status: 0 when every check passed, 1 when a problem was found, 2
 * when a file cannot be read.  Uses only <migstream.h> and the C library. */
#include <migstream.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What an event is about, when it says more than its kind. */
static void print_what(const ms_event *ev)
{
    switch (ev->kind) {
    case MS_EV_STREAM_HEADER:
        printf(" format=%s", ms_format_name(ev->u.stream.format));
        break;
    case MS_EV_SECTION:
    case MS_EV_SECTION_FOOTER:
        printf(" id=%u %s", ev->u.section.section_id,
               ev->u.section.idstr ? ev->u.section.idstr : "");
        break;
    case MS_EV_DEVICE:
        printf(" handle=%u %s", ev->u.device.handle, ev->u.device.idstr);
        break;
    case MS_EV_IMAGE_BEGIN:
    case MS_EV_IMAGE_END:
    case MS_EV_IMAGE_ASSEMBLED:
        printf(" device=%u seq=%u phase=%s", ev->u.image.device,
               ev->u.image.seq, ms_phase_name(ev->u.image.phase));
        break;
    case MS_EV_PAYLOAD_IMAGE:
        printf(" seq=%u phase=%s bytes=%llu", ev->u.image.seq,
               ms_phase_name(ev->u.image.phase),
               (unsigned long long)ev->u.image.length);
        break;
    case MS_EV_DATA:
        printf(" bytes=%zu", ev->u.data.size);
        break;
    case MS_EV_MULTIFD_PACKET:
        printf(" packet=%llu%s%s", (unsigned long long)ev->u.mfd.packet_num,
               ev->u.mfd.device_state ? " device-state " : "",
               ev->u.mfd.device_state && ev->u.mfd.idstr ? ev->u.mfd.idstr
                                                         : "");
        break;
    case MS_EV_PAYLOAD_RECORD:
        printf(" %s %s size=%llu",
               ms_payload_kind_name(ev->u.precord.payload_kind),
               ev->u.precord.name, (unsigned long long)ev->u.precord.size);
        break;
    case MS_EV_PAYLOAD_FIELD:
        printf(" %s=%llu", ev->u.pfield.name,
               (unsigned long long)ev->u.pfield.value);
        break;
    default:
        break;
    }
}

static void on_event(void *ctx, const ms_event *ev, const ms_event_origin *o)
{
    (void)ctx;
    if (o->device)
        printf("%u payload %s %s %s @%llu+%llu", o->channel, o->device,
               ms_phase_name(o->phase), ms_event_kind_name(ev->kind),
               (unsigned long long)ev->offset, (unsigned long long)ev->length);
    else
        printf("%u %s %s @%llu+%llu", o->channel, o->derived ? "set" : "read",
               ms_event_kind_name(ev->kind), (unsigned long long)ev->offset,
               (unsigned long long)ev->length);
    print_what(ev);
    if (o->device)
        printf(" (carrier @%llu)", (unsigned long long)o->carrier_offset);
    putchar('\n');
}

static void on_problem(void *ctx, const ms_error_info *e)
{
    (void)ctx;
    if (e->has_channel)
        printf("%u", e->channel);
    else
        putchar('-');
    printf(" problem %s @%llu: %s\n", ms_error_name(e->code),
           (unsigned long long)e->offset, e->detail);
}

/* The whole file in memory (malloc'd); NULL on failure. */
static unsigned char *load(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    unsigned char *buf = NULL;
    size_t n = 0, cap = 0, got;
    do {
        if (n == cap) {
            cap = cap ? cap * 2 : 65536;
            unsigned char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        got = fread(buf + n, 1, cap - n, f);
        n += got;
    } while (got);
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

/* A channel's bytes: all at once (they stay valid: input_stable); a seek
 * the reader asks for (QEMU mapped-ram) is served from the same buffer. */
static void feed(ms_migration *m, uint32_t slot, const unsigned char *p,
                 size_t len)
{
    int rc = ms_migration_input(m, slot, p, len);
    while (rc == MS_NEXT_SEEK) {
        unsigned long long at = ms_migration_seek_target(m, slot);
        if (at >= len)
            break; /* the input ends before it: the end says so */
        rc = ms_migration_input_at(m, slot, at, p + at, len - (size_t)at);
    }
    ms_migration_channel_end(m, slot);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE...  (one file per channel)\n", argv[0]);
        return 2;
    }
    size_t n = (size_t)argc - 1;
    unsigned char **bufs = calloc(n, sizeof *bufs);
    size_t *lens = calloc(n, sizeof *lens);
    if (!bufs || !lens)
        return 2;
    for (size_t i = 0; i < n; i++)
        if (!(bufs[i] = load(argv[i + 1], &lens[i]))) {
            fprintf(stderr, "%s: cannot read %s\n", argv[0], argv[i + 1]);
            return 2;
        }
    ms_options opt;
    ms_options_init(&opt);
    opt.input_stable = 1; /* the buffers outlive the migration */
    ms_migration_callbacks cb = {on_event, on_problem, NULL};
    ms_migration *m =
        ms_migration_create(&opt, &cb, MS_MIGRATION_NESTED_PAYLOADS);
    if (!m)
        return 2;
    /* Every channel first (the order they are opened in is the order
     * their first events reach the set), then their bytes: multifd
     * channels given before their main channel wait for its page size. */
    for (size_t i = 0; i < n; i++) {
        ms_channel_input in = {.seekable = 1,
                               .size = lens[i],
                               .whole = bufs[i],
                               .whole_len = lens[i]};
        ms_migration_channel_open(m, (uint32_t)i, &in);
    }
    for (size_t i = 0; i < n; i++)
        feed(m, (uint32_t)i, bufs[i], lens[i]);
    int rc = ms_migration_finish(m) < 0 ? 1 : 0;
    ms_migration_free(m);
    for (size_t i = 0; i < n; i++)
        free(bufs[i]);
    free(bufs);
    free(lens);
    return fflush(stdout) == 0 ? rc : 2;
}
