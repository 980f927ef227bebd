/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* images_by_phase: each device's images of one migration, by phase.
 *
 *   images_by_phase FILE...      one file per channel
 *
 * The files go through one ms_migration (as examples/print_events does,
 * but read side by side in 64 KiB pieces rather than whole, so a file
 * that needs random access, a QEMU mapped-ram file, is refused); the
 * events tell which images there were:
 *
 *   MS_EV_DEVICE           a device's handle and name
 *   MS_EV_IMAGE_BEGIN      an image opens (device, seq, phase, transport)
 *   MS_EV_IMAGE_END        chunk mode: the reader checked its length and
 *                          hash against the end record -> verified;
 *                          packet mode: the length it declares
 *   MS_EV_IMAGE_ASSEMBLED  packet mode: the set reassembled its packets
 *                          from every channel and they matched -> verified
 *
 * Output, devices in the order they were declared, then phases in order
 * (initial, middle, final) and images by sequence number:
 *
 *   device 1 0000:00:02.0/vfio
 *     initial seq 0: 8192 bytes, chunks, verified
 *     middle  seq 1: 2048 bytes, chunks, verified
 *     final   seq 2: 12288 bytes, packets, verified
 *
 * An image whose checks did not pass (or were not reached) says "NOT
 * verified"; problems go to stderr.  Exit status: 0 when every check
 * passed, 1 when a problem was found, 2 when a file cannot be read.  Uses
 * only <migstream.h> and the C library. */
#include <migstream.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct image {
    uint32_t device, seq;
    ms_phase phase;
    ms_transport transport;
    uint64_t length; /* from IMAGE_END / IMAGE_ASSEMBLED; 0 before */
    int ended, verified;
} image;

typedef struct device {
    uint32_t handle;
    char name[256];
} device;

/* What the callbacks collect (grown with realloc). */
typedef struct collected {
    device *devices;
    size_t n_devices, cap_devices;
    image *images;
    size_t n_images, cap_images;
    int out_of_memory;
} collected;

/* `arr` (n elements of `size` bytes, room for *cap) with room for one
 * more: the same or a larger block, or NULL (then `arr` is unchanged). */
static void *grow(void *arr, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return arr;
    size_t ncap = *cap ? *cap * 2 : 16;
    void *na = realloc(arr, ncap * size);
    if (na)
        *cap = ncap;
    return na;
}

static image *find_image(collected *c, uint32_t dev, uint32_t seq)
{
    for (size_t i = c->n_images; i-- > 0;)
        if (c->images[i].device == dev && c->images[i].seq == seq)
            return &c->images[i];
    return NULL;
}

static void add_device(collected *c, const ms_device_info *d)
{
    device *more =
        grow(c->devices, &c->cap_devices, c->n_devices, sizeof *c->devices);
    if (!more) {
        c->out_of_memory = 1;
        return;
    }
    c->devices = more;
    device *nd = &c->devices[c->n_devices++];
    nd->handle = d->handle;
    snprintf(nd->name, sizeof nd->name, "%s", d->idstr);
}

static void add_image(collected *c, const ms_image_info *im)
{
    image *more =
        grow(c->images, &c->cap_images, c->n_images, sizeof *c->images);
    if (!more) {
        c->out_of_memory = 1;
        return;
    }
    c->images = more;
    c->images[c->n_images++] = (image){.device = im->device,
                                       .seq = im->seq,
                                       .phase = im->phase,
                                       .transport = im->transport};
}

static void on_event(void *ctx, const ms_event *ev, const ms_event_origin *o)
{
    collected *c = ctx;
    (void)o;
    image *im;
    switch (ev->kind) {
    case MS_EV_DEVICE:
        /* every channel declares every device: keep the first */
        for (size_t i = 0; i < c->n_devices; i++)
            if (c->devices[i].handle == ev->u.device.handle)
                return;
        add_device(c, &ev->u.device);
        break;
    case MS_EV_IMAGE_BEGIN:
        add_image(c, &ev->u.image);
        break;
    case MS_EV_IMAGE_END:
        if ((im = find_image(c, ev->u.image.device, ev->u.image.seq))) {
            im->ended = 1;
            im->length = ev->u.image.length;
            /* a chunk image's end event comes only after its checks */
            im->verified = im->transport == MS_TRANSPORT_CHUNKS;
        }
        break;
    case MS_EV_IMAGE_ASSEMBLED:
        if ((im = find_image(c, ev->u.image.device, ev->u.image.seq))) {
            im->length = ev->u.image.length;
            im->verified = 1;
        }
        break;
    default:
        break;
    }
}

static void on_problem(void *ctx, const ms_error_info *e)
{
    (void)ctx;
    if (e->has_channel)
        fprintf(stderr, "channel %u: ", e->channel);
    fprintf(stderr, "%s @%llu: %s\n", ms_error_name(e->code),
            (unsigned long long)e->offset, e->detail);
}

/* Phase, then sequence number (devices are printed one at a time). */
static int by_phase(const void *a, const void *b)
{
    const image *x = a, *y = b;
    if (x->phase != y->phase)
        return x->phase < y->phase ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void print_images(collected *c)
{
    qsort(c->images, c->n_images, sizeof *c->images, by_phase);
    for (size_t d = 0; d < c->n_devices; d++) {
        printf("device %u %s\n", c->devices[d].handle, c->devices[d].name);
        for (size_t i = 0; i < c->n_images; i++) {
            const image *im = &c->images[i];
            if (im->device != c->devices[d].handle)
                continue;
            printf("  %-7s seq %u: ", ms_phase_name(im->phase), im->seq);
            if (im->ended || im->verified)
                printf("%llu bytes", (unsigned long long)im->length);
            else
                printf("unfinished");
            printf(", %s, %s\n",
                   im->transport == MS_TRANSPORT_PACKETS ? "packets" : "chunks",
                   im->verified ? "verified" : "NOT verified");
        }
    }
}

/* Every channel through one migration, read in turns of 64 KiB per file
 * (as channels arrive side by side); closes the files.  0 clean, 1
 * problems, 2 failure. */
static int run(collected *c, FILE **files, size_t n)
{
    ms_options opt;
    ms_options_init(&opt); /* input not stable: bytes held are copied */
    ms_migration_callbacks cb = {on_event, on_problem, c};
    ms_migration *m = ms_migration_create(&opt, &cb, 0);
    if (!m)
        return 2;
    /* all channels opened first: their order is the set's order */
    for (size_t i = 0; i < n; i++)
        ms_migration_channel_open(m, (uint32_t)i, NULL);
    static unsigned char buf[65536];
    int io_error = 0;
    for (size_t open_files = n; open_files > 0;) {
        for (size_t i = 0; i < n; i++) {
            if (!files[i])
                continue;
            size_t got = fread(buf, 1, sizeof buf, files[i]);
            if (got)
                ms_migration_input(m, (uint32_t)i, buf, got);
            if (got < sizeof buf) { /* the end of this channel */
                io_error |= ferror(files[i]);
                ms_migration_channel_end(m, (uint32_t)i);
                fclose(files[i]);
                files[i] = NULL;
                open_files--;
            }
        }
    }
    int rc = ms_migration_finish(m) < 0 ? 1 : 0;
    ms_migration_free(m);
    return c->out_of_memory || io_error ? 2 : rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE...  (one file per channel)\n", argv[0]);
        return 2;
    }
    size_t n = (size_t)argc - 1;
    FILE **files = calloc(n, sizeof *files);
    if (!files)
        return 2;
    for (size_t i = 0; i < n; i++)
        if (!(files[i] = fopen(argv[i + 1], "rb"))) {
            fprintf(stderr, "%s: cannot read %s\n", argv[0], argv[i + 1]);
            while (i-- > 0)
                fclose(files[i]);
            free(files);
            return 2;
        }
    collected c = {0};
    int rc = run(&c, files, n);
    print_images(&c);
    free(files);
    free(c.devices);
    free(c.images);
    if (fflush(stdout) != 0)
        rc = 2;
    return rc;
}
