/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* record_migration: record a two-channel migration with ms_writer.
 *
 *   record_migration CHANNEL0 CHANNEL1     writes two migstream files
 *
 * What a source VMM would write while migrating two VFIO devices:
 *
 *   device 1 "0000:00:02.0/vfio" (home channel 0)
 *   device 2 "0000:00:03.0/vfio" (home channel 1)
 *   per device, on its home channel:
 *     state RUNNING -> PRE_COPY, precopy info
 *     initial image  (chunks, 8 KiB)       what the device had at the start
 *     middle image   (chunks, 2 KiB)       the state it dirtied since
 *     state PRE_COPY -> STOP_COPY, stop-copy size
 *     final image    (packets, 12 KiB)     three data packets spread over
 *                                          BOTH channels + a config packet
 *   then each channel's end record.
 *
 * The image bytes are a pattern derived from device, phase and offset, so
 * examples/images_by_phase (which reads the files back) finds the lengths
 * printed here.  Exit status: 0 written, 1 the writer refused a call, 2 a
 * file cannot be written.  Uses only <migstream.h> and the C library. */
#include <migstream.h>

#include <stdio.h>
#include <string.h>

#define N_CHANNELS 2
#define N_DEVICES 2
#define INITIAL_BYTES 8192
#define MIDDLE_BYTES 2048
#define PACKET_BYTES 4096
#define FINAL_PACKETS 3
#define CONFIG_BYTES 64

static const char *const idstrs[N_DEVICES] = {"0000:00:02.0/vfio",
                                              "0000:00:03.0/vfio"};

/* ms_write_fn: one channel's bytes go to its FILE. */
static int write_file(void *opaque, const void *buf, size_t len)
{
    return fwrite(buf, 1, len, (FILE *)opaque) == len ? 0 : -1;
}

/* A stand-in for device state: n bytes of a pattern of (device, phase). */
static void fill(unsigned char *buf, size_t n, uint32_t device, ms_phase phase)
{
    for (size_t i = 0; i < n; i++)
        buf[i] = (unsigned char)(device * 31u + (unsigned)phase * 7u + i);
}

/* A made-up clock: every record gets a later timestamp. */
static uint64_t tick(void)
{
    static uint64_t now_ns = 1000000;
    return now_ns += 1000;
}

/* One chunk-mode image (initial or middle) of `n` bytes on the device's
 * home channel. */
static int chunk_image(ms_writer *w, uint32_t home, uint32_t device,
                       ms_phase phase, size_t n)
{
    unsigned char buf[INITIAL_BYTES];
    fill(buf, n, device, phase);
    uint32_t flags = phase == MS_PHASE_INITIAL ? MS_IMAGE_FULL : 0;
    if (ms_writer_image_begin(w, home, device, phase, MS_TRANSPORT_CHUNKS,
                              flags, tick()) < 0 ||
        ms_writer_image_data(w, device, buf, n) < 0)
        return -1;
    return ms_writer_image_end(w, device, tick());
}

/* The final image in packet mode: begun and ended on the home channel,
 * its data packets alternating between the two channels (the reader's set
 * reassembles them by index), then the device's config packet. */
static int packet_image(ms_writer *w, uint32_t home, uint32_t device)
{
    unsigned char buf[PACKET_BYTES];
    if (ms_writer_image_begin(w, home, device, MS_PHASE_FINAL,
                              MS_TRANSPORT_PACKETS, MS_IMAGE_FULL, tick()) < 0)
        return -1;
    for (uint32_t p = 0; p < FINAL_PACKETS; p++) {
        fill(buf, PACKET_BYTES, device + p, MS_PHASE_FINAL);
        if (ms_writer_image_packet(w, (home + p) % N_CHANNELS, device, buf,
                                   PACKET_BYTES, 0) < 0)
            return -1;
    }
    fill(buf, CONFIG_BYTES, device, MS_PHASE_NONE);
    if (ms_writer_image_packet(w, (home + 1) % N_CHANNELS, device, buf,
                               CONFIG_BYTES, 1) < 0)
        return -1;
    return ms_writer_image_end(w, device, tick());
}

/* Stages of one device's migration, in the order a source goes through
 * them (precopy, then stop-copy). */
static int migrate_device(ms_writer *w, uint32_t home, uint32_t device)
{
    const uint64_t final_bytes = (uint64_t)FINAL_PACKETS * PACKET_BYTES;
    /* precopy: the device keeps running while its state is sent */
    if (ms_writer_state_change(w, home, device, MS_VFIO_STATE_RUNNING,
                               MS_VFIO_STATE_PRE_COPY, tick()) < 0 ||
        ms_writer_precopy_info(w, home, device, 0, INITIAL_BYTES, MIDDLE_BYTES,
                               tick()) < 0 ||
        chunk_image(w, home, device, MS_PHASE_INITIAL, INITIAL_BYTES) < 0 ||
        chunk_image(w, home, device, MS_PHASE_MIDDLE, MIDDLE_BYTES) < 0)
        return -1;
    /* stop-copy: the device is stopped and its final state sent */
    if (ms_writer_state_change(w, home, device, MS_VFIO_STATE_PRE_COPY,
                               MS_VFIO_STATE_STOP_COPY, tick()) < 0 ||
        ms_writer_stop_copy_size(w, home, device, final_bytes, tick()) < 0)
        return -1;
    return packet_image(w, home, device);
}

/* The whole migration into the two open files. */
static int record(ms_writer *w, FILE *files[N_CHANNELS])
{
    for (uint32_t c = 0; c < N_CHANNELS; c++)
        if (ms_writer_open_channel(w, c, write_file, files[c]) < 0)
            return -1;
    /* every device is declared before any record that names it */
    for (uint32_t d = 0; d < N_DEVICES; d++)
        if (ms_writer_add_device(w, d + 1, idstrs[d], 0, MS_PAYLOAD_RAW, NULL,
                                 0) < 0)
            return -1;
    for (uint32_t d = 0; d < N_DEVICES; d++)
        if (migrate_device(w, d % N_CHANNELS, d + 1) < 0)
            return -1;
    for (uint32_t c = 0; c < N_CHANNELS; c++)
        if (ms_writer_close_channel(w, c, tick()) < 0)
            return -1;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 1 + N_CHANNELS) {
        fprintf(stderr, "usage: %s CHANNEL0 CHANNEL1\n", argv[0]);
        return 2;
    }
    FILE *files[N_CHANNELS] = {NULL, NULL};
    for (int c = 0; c < N_CHANNELS; c++)
        if (!(files[c] = fopen(argv[c + 1], "wb"))) {
            fprintf(stderr, "%s: cannot create %s\n", argv[0], argv[c + 1]);
            return 2;
        }
    ms_writer_options opt;
    ms_writer_options_init(&opt);
    opt.channel_count = N_CHANNELS;
    memcpy(opt.uuid, "record-migration", sizeof opt.uuid);
    opt.created_ns = tick();
    ms_writer *w = ms_writer_create(&opt);
    int rc = 0;
    if (!w) {
        fprintf(stderr, "%s: cannot create the writer\n", argv[0]);
        rc = 1;
    } else if (record(w, files) < 0) {
        const ms_error_info *e = ms_writer_error(w);
        fprintf(stderr, "%s: %s: %s\n", argv[0], ms_error_name(e->code),
                e->detail);
        rc = 1;
    }
    ms_writer_free(w);
    for (int c = 0; c < N_CHANNELS; c++)
        if (fclose(files[c]) != 0 && rc == 0) {
            fprintf(stderr, "%s: cannot write %s\n", argv[0], argv[c + 1]);
            rc = 2;
        }
    return rc;
}
