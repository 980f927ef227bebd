/* migstream-synth: write valid synthetic migstream v1 streams, or (with
 * --qemu) a real QEMU main stream with VFIO devices inserted, or (with
 * --multifd) a QEMU multifd channel set: main channel, RAM pages and VFIO
 * device-state packets on N multifd channels, or (with --return-path) the
 * return path answering a QEMU main stream.
 *
 * The workload imitates a VFIO live migration: every device goes through
 * RUNNING -> PRE_COPY, sends an initial image and some dirty (middle)
 * images with PRECOPY_INFO readings around them, then PRE_COPY_P2P ->
 * STOP_COPY, its final image (CHUNK records on its home channel, or
 * device-state packets spread over all channels) and STOP.
 *
 * Everything (UUID, created_ns, timestamps, image bytes, packet placement)
 * comes from one PRNG seeded by --seed, so the same options give
 * byte-identical files.  Uses only the public API (migstream.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <zlib.h>
#include <zstd.h>

#include "migstream.h"
#include "tool_common.h"

#define PROG "migstream-synth"

/* Wire values the public API takes as plain integers (spec sections). */
#define VENDOR_TAG 0x80000001u  /* 4.2: vendor range, optional */
/* enum vfio_device_mig_state (5.7) */
enum {
    VFIO_STOP = 1,
    VFIO_RUNNING = 2,
    VFIO_STOP_COPY = 3,
    VFIO_PRE_COPY = 6,
    VFIO_PRE_COPY_P2P = 7
};

#define MAX_DEVICES 4096  /* the reference reader's max_devices */
#define MAX_CHANNELS 1024 /* the reference reader's max_channels */
/* chunk/packet data: their records stay under a 1 GiB payload */
#define MAX_UNIT (((uint64_t)1 << 30) - 64)
#define CREATED_BASE_NS 1795305600000000000ull /* 2026-11-22T00:00:00Z */
#define LINK_BITS_PER_NS 10                    /* simulated 10 Gbit/s link */

typedef struct workload {
    uint32_t devices;
    int kind;
    int kind_given;  /* --kind given: migstream images carry valid payloads */
    int no_precopy;  /* --multifd: all device state in the final phase */
    const char *raw_file; /* --raw: the device's data-fd bytes alone */
    uint64_t initial_size, middle_count, middle_size, final_size;
    uint64_t chunk_size, packet_size;
    uint32_t channels;
    int final_transport; /* -1: by channel count */
    int compress;
    uint64_t seed;
    int vendor_record;
    int example; /* --example: spec/example.md on stdout */
    const char *out_dir; /* --qemu: the output file */
    int to_stdout;
    /* --qemu mode */
    const char *qemu_base;  /* BASE.mig */
    const char *expect_dir; /* where the inserted device bytes also go */
    int switchover_ack;
    int packet_size_set; /* --packet-size given (else 1 MiB chunks) */
    const char *v1_only; /* first option given that --qemu ignores */
    /* --multifd mode */
    uint32_t multifd;         /* multifd channels; 0: not this mode */
    int multifd_comp;         /* 0 none, 0x02 zlib, 0x04 zstd */
    uint32_t qemu_version;    /* --qemu-version: major * 100 + minor */
    int has_uuid;
    uint8_t uuid[16];
    uint64_t ram_size, ram_passes;
    int devices_set;          /* --devices given */
    const char *ram_option;   /* --ram-size or --ram-passes, if given */
    const char *multifd_only; /* first option only --multifd takes */
    const char *not_multifd;  /* first option --multifd refuses */
    int mapped_ram;           /* --mapped-ram: a mapped-ram file */
    /* --qemu BASE --postcopy: BASE rewritten as a postcopy migration */
    int postcopy;
    const char *preempt_file; /* --preempt FILE: its preempt channel */
} workload;

/* One channel's output file. */
typedef struct sink {
    FILE *f;
    char *path;
    int err; /* errno of the first failed write, 0 while all went well */
} sink;

typedef struct dev_gen dev_gen;
typedef struct gen_seg gen_seg;
static size_t gens_next(dev_gen *gens, size_t i, uint8_t *out, size_t cap);

typedef struct synth {
    const workload *wl;
    dev_gen *gens;        /* 4 per device (by ms_phase); NULL: random bytes */
    uint64_t middle_first; /* the first middle image's size (mlx5) */
    ms_writer *w;
    uint64_t rng;
    uint64_t now_ns; /* the simulated monotonic clock */
    uint8_t *buf;    /* one chunk or packet of image bytes */
    uint32_t *order; /* channels in shuffled order, for packet placement */
    uint32_t order_left;
} synth;

/* ---- PRNG (splitmix64) ------------------------------------------------- */
static uint64_t rng_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform enough in [0, n) for a workload generator; n > 0. */
static uint64_t rng_below(uint64_t *state, uint64_t n)
{
    return rng_next(state) % n;
}

static void rng_bytes(uint64_t *state, uint8_t *out, size_t len)
{
    while (len > 0) {
        uint64_t v = rng_next(state);
        /* byte by byte, so the output is the same on any host byte order */
        for (size_t n = len < 8 ? len : 8; n > 0; n--, len--, v >>= 8)
            *out++ = (uint8_t)v;
    }
}

/* Device state look-alike: random runs mixed with zero runs and repeated
 * patterns, so zlib finds something to squeeze, as in real device state. */
static void fill_state(uint64_t *rng, uint8_t *buf, size_t len)
{
    size_t pos = 0;
    while (pos < len) {
        size_t run = 64 + (size_t)rng_below(rng, 4033);
        if (run > len - pos)
            run = len - pos;
        uint64_t kind = rng_below(rng, 10);
        if (kind < 3) {
            memset(buf + pos, 0, run);
        } else if (kind < 6) {
            uint8_t pattern[16];
            size_t plen = 4 + (size_t)rng_below(rng, 13);
            rng_bytes(rng, pattern, plen);
            for (size_t i = 0; i < run; i++)
                buf[pos + i] = pattern[i % plen];
        } else {
            rng_bytes(rng, buf + pos, run);
        }
        pos += run;
    }
}

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
    int failed = ferror(k->f);
    errno = 0;
    if (k->f == stdout)
        failed |= fflush(stdout) != 0;
    else
        failed |= fclose(k->f) != 0;
    k->f = NULL;
    if (failed && !k->err)
        k->err = errno ? errno : EIO;
    return failed ? -1 : 0;
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
        gens_next(s->gens, (size_t)dev * 4 + phase, buf, n);
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

/* Packets go to the channels in rounds, each round a fresh shuffle of all
 * channels: balanced like QEMU's multifd, but not plain round-robin. */
static uint32_t next_packet_channel(synth *s)
{
    uint32_t n = s->wl->channels;
    if (s->order_left == 0) {
        for (uint32_t i = 0; i < n; i++)
            s->order[i] = i;
        for (uint32_t i = n - 1; i > 0; i--) {
            uint32_t j = (uint32_t)rng_below(&s->rng, (uint64_t)i + 1);
            uint32_t t = s->order[i];
            s->order[i] = s->order[j];
            s->order[j] = t;
        }
        s->order_left = n;
    }
    return s->order[n - s->order_left--];
}

static int packet_image(synth *s, uint32_t dev, ms_phase phase, uint32_t flags,
                        uint64_t size)
{
    if (ms_writer_image_begin(s->w, home_of(s, dev), dev, phase,
                              MS_TRANSPORT_PACKETS, flags, tick(s)) < 0)
        return -1;
    for (uint64_t left = size; left > 0;) {
        size_t n =
            (size_t)(left < s->wl->packet_size ? left : s->wl->packet_size);
        image_bytes(s, dev, phase, s->buf, n);
        if (ms_writer_image_packet(s->w, next_packet_channel(s), dev, s->buf, n,
                                   0) < 0)
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
    if (state_change(s, dev, VFIO_RUNNING, VFIO_PRE_COPY) < 0 ||
        ms_writer_stop_copy_size(s->w, home_of(s, dev), dev, estimate,
                                 tick(s)) < 0)
        return -1;
    if (wl->initial_size == 0)
        return 0;
    uint64_t dirtied =
        wl->middle_size / 4 + rng_below(&s->rng, wl->middle_size / 8 + 1);
    if (precopy(s, dev, wl->initial_size, 0) < 0 ||
        chunk_image(s, dev, MS_PHASE_INITIAL, MS_IMAGE_FULL,
                    wl->initial_size) < 0 ||
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
    uint64_t size =
        round == 0 && s->gens ? s->middle_first : wl->middle_size;
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
        if (state_change(s, d, VFIO_PRE_COPY, VFIO_PRE_COPY_P2P) < 0)
            return -1;
    for (uint32_t d = 0; d < n; d++)
        if (state_change(s, d, VFIO_PRE_COPY_P2P, VFIO_STOP_COPY) < 0)
            return -1;
    for (uint32_t d = 0; d < n; d++)
        if (final_image(s, d) < 0)
            return -1;
    for (uint32_t d = 0; d < n; d++)
        if (state_change(s, d, VFIO_STOP_COPY, VFIO_STOP) < 0)
            return -1;
    for (uint32_t c = 0; c < wl->channels; c++)
        if (ms_writer_close_channel(s->w, c, tick(s)) < 0)
            return -1;
    return 0;
}

/* ---- setup ------------------------------------------------------------- */
/* clang-format off */
static void usage(FILE *out)
{
    fputs(
"usage: " PROG " [options] -o DIR    one file per channel: DIR/channel-N.mig\n"
"       " PROG " [options] --stdout  (--channels 1 only) the stream on stdout\n"
"       " PROG " --example           the byte-level example of spec section 9\n"
"       " PROG " --raw FILE [options] one device's payload alone, as read\n"
"                      from its migration data fd, every phase in order\n"
"                      (for migstream-dump --payload KIND); --kind, the\n"
"                      sizes and --seed apply, and --expect-dir DIR writes\n"
"                      DIR/final-offset: where the stop-copy bytes begin\n"
"                      (for --final-offset)\n"
"       " PROG " --return-path MAIN.mig -o OUT | --stdout\n"
"                      the return path a destination sends for the QEMU\n"
"                      main stream MAIN: a PONG per PING, SWITCHOVER_ACK\n"
"                      when its VFIO devices use switchover-ack, SHUT 0\n"
"       " PROG " --qemu BASE.mig [options] -o OUT.mig | --stdout\n"
"                      BASE (a real QEMU main stream) with --devices VFIO\n"
"                      devices inserted: START/PART/END sections carrying\n"
"                      the device bytes, a FULL config section each\n"
"options (sizes take K, M, G suffixes, powers of 1024):\n"
"  --devices N           devices (default 2)\n"
"  --kind KIND           payload kind of all devices: raw, mlx5, virtio,\n"
"                        hisi_acc, qat, xe, pds.  Every image carries the\n"
"                        driver's valid payload (spec/payloads.md).\n"
"                        Default: raw (random state bytes) for migstream\n"
"                        sets, mlx5 for --qemu, --multifd and --raw.\n"
"                        Per kind:\n"
"                        mlx5: STOP_COPY_SIZE record, one FW_DATA record\n"
"                          per image (sizes: the FW_DATA payloads)\n"
"                        virtio: one DEVICE_DATA snapshot per image, padded\n"
"                          by a device-specific part to about the size\n"
"                        hisi_acc: 40-byte match data (initial), 136 bytes\n"
"                          more (final); qat: the 4096-byte buffer, setup\n"
"                          block initial, the rest final; both fixed:\n"
"                          --initial-size, --middle, --middle-size and\n"
"                          --final-size are ignored\n"
"                        xe: final only (no precopy): DESCRIPTOR, GGTT,\n"
"                          MMIO, GUC, VRAM packets of --final-size bytes in\n"
"                          all, TRAILER\n"
"                        pds: final only, one blob of --final-size bytes,\n"
"                          at most 64K\n"
"  --initial-size BYTES  initial image per device (default 256K; 0: none)\n"
"  --middle N            middle images per device (default 2)\n"
"  --middle-size BYTES   size of each middle image (default 64K)\n"
"  --final-size BYTES    final image per device (default 1M)\n"
"  --chunk-size BYTES    CHUNK data size (default 64K)\n"
"  --packet-size BYTES   device-state packet data size (default 128K)\n"
"  --channels N          channels (default 4)\n"
"  --final-transport chunks|packets\n"
"                        (default: packets with more than one channel)\n"
"  --compress LEVEL      zlib level 0..9 for chunks (default 0)\n"
"  --seed N              PRNG seed (default 1)\n"
"  --vendor-record       also write an optional vendor record on channel 0\n"
"--qemu mode (--devices, --kind, --initial-size, --middle,\n"
"--middle-size, --final-size and --seed apply; --packet-size caps each\n"
"DEV_DATA_STATE chunk, default 1M):\n"
"  --switchover-ack      end the initial data with DEV_INIT_DATA_SENT\n"
"                        (QEMU >= 8.1), so later precopy data is middle data\n"
"  --expect-dir DIR      also write the inserted bytes: DIR/devices (one\n"
"                        line per device: N IDSTR SECTION_ID) and\n"
"                        DIR/N.initial, DIR/N.middle, DIR/N.final\n"
"       " PROG " --multifd N [--qemu BASE.mig] [options] -o DIR\n"
"                      a QEMU multifd channel set: DIR/main.mig (the main\n"
"                      channel: BASE with its pages moved to the channels,\n"
"                      or a minimal QEMU 10 stream) and DIR/channel-K.mig,\n"
"                      K = 0..N-1 (N <= 255): RAM pages and, with --devices,\n"
"                      VFIO device-state packets (the stop-copy state of\n"
"                      --final-size bytes in --packet-size buffers, default\n"
"                      1M, then a config buffer); --devices (default 2, 0\n"
"                      with compression), --kind (all device state in\n"
"                      the final phase: hisi_acc and qat whole), --seed\n"
"                      and --expect-dir apply, and:\n"
"  --compress-multifd none|zlib|zstd\n"
"                        RAM page compression (device state needs none)\n"
"  --qemu-version V      the QEMU whose channels to write (default 10.0):\n"
"                        9.0 and 9.1 send SYNC packets with pages_alloc\n"
"                        128, 9.2 and later header-only SYNC packets\n"
"                        (pages_alloc 0); device state and the main\n"
"                        channel's SWITCHOVER_START need 10.0 or later;\n"
"                        all write zero pages as offsets and number the\n"
"                        packets 0..n-1 across the channels\n"
"  --uuid UUID           the VM UUID in every init packet (and, without\n"
"                        BASE, the main channel's configuration)\n"
"  --ram-size BYTES      without BASE: pc.ram size (default 4M; pc.bios\n"
"                        and a ROM take 1/16 and 1/32 of it, at most\n"
"                        256K and 128K)\n"
"  --ram-passes N        without BASE: RAM passes, the last one after the\n"
"                        switchover (default 3)\n"
"  --expect-dir DIR      also DIR/N.config and the RAM the destination\n"
"                        ends with: DIR/ram (K USED_LENGTH NAME per block)\n"
"                        and DIR/ram-K.bin\n"
"       " PROG " --mapped-ram -o OUT.mig [options]\n"
"                      a QEMU >= 9.0 mapped-ram file (file: migration,\n"
"                      capability mapped-ram): pages at fixed offsets,\n"
"                      holes for zero pages, bitmaps written last; later\n"
"                      passes leave stale slots whose bit is clear, as\n"
"                      multifd + mapped-ram does.  --ram-size,\n"
"                      --ram-passes, --seed and --expect-dir (DIR/ram and\n"
"                      DIR/ram-K.bin, as above) apply\n"
"       " PROG " --qemu BASE.mig --postcopy [--preempt FILE] -o OUT.mig\n"
"                      BASE (a precopy QEMU main stream) as a postcopy\n"
"                      migration: OPEN_RETURN_PATH, PING, POSTCOPY_ADVISE,\n"
"                      BASE's block list, precopy pages, a DISCARD per\n"
"                      block, PACKAGED{LISTEN, BASE's device sections,\n"
"                      PING, RUN}, the postcopy pages (every discarded page\n"
"                      that had been sent, and more), EOF, no JSON trailer.\n"
"                      No VFIO devices (QEMU refuses postcopy with VFIO).\n"
"                      --seed applies, and:\n"
"  --preempt FILE        also a postcopy-preempt channel: a third of the\n"
"                        postcopy pages go there, then EOS\n"
"  --expect-dir DIR      the RAM the destination ends with: DIR/ram\n"
"                        (K USED_LENGTH NAME per block) and DIR/ram-K.bin\n"
"  -h, --help            this help\n"
"  -V, --version         the version\n", out);
}
/* clang-format on */

static int usage_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, PROG ": ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nTry '" PROG " --help'.\n");
    va_end(ap);
    return -1;
}

static void workload_defaults(workload *wl)
{
    memset(wl, 0, sizeof *wl);
    wl->devices = 2;
    wl->kind = MS_PAYLOAD_MLX5;
    wl->initial_size = 256 << 10;
    wl->middle_count = 2;
    wl->middle_size = 64 << 10;
    wl->final_size = 1 << 20;
    wl->chunk_size = 64 << 10;
    wl->packet_size = 128 << 10;
    wl->channels = 4;
    wl->final_transport = -1;
    wl->seed = 1;
    wl->ram_size = 4 << 20;
    wl->ram_passes = 3;
    wl->qemu_version = 1000;
}

/* Numeric options: where each lands in a workload, and its bounds. */
typedef enum { FIELD_U64, FIELD_U32, FIELD_INT } field_type;
typedef struct numeric_option {
    const char *name;
    uint64_t lo, hi;
    size_t offset;
    field_type type;
} numeric_option;

#define NUM(name, lo, hi, field, type)                                         \
    {                                                                          \
        name, lo, hi, offsetof(workload, field), type                          \
    }
static const numeric_option numeric_options[] = {
    NUM("--devices", 0, MAX_DEVICES, devices, FIELD_U32),
    NUM("--initial-size", 0, UINT64_MAX, initial_size, FIELD_U64),
    NUM("--middle", 0, UINT32_MAX, middle_count, FIELD_U64),
    NUM("--middle-size", 0, UINT64_MAX, middle_size, FIELD_U64),
    NUM("--final-size", 0, UINT64_MAX, final_size, FIELD_U64),
    NUM("--chunk-size", 1, MAX_UNIT, chunk_size, FIELD_U64),
    NUM("--packet-size", 1, MAX_UNIT, packet_size, FIELD_U64),
    NUM("--channels", 1, MAX_CHANNELS, channels, FIELD_U32),
    NUM("--compress", 0, 9, compress, FIELD_INT),
    NUM("--seed", 0, UINT64_MAX, seed, FIELD_U64),
    NUM("--multifd", 1, 255, multifd, FIELD_U32),
    NUM("--ram-size", 4096, (uint64_t)1 << 40, ram_size, FIELD_U64),
    NUM("--ram-passes", 1, 1000, ram_passes, FIELD_U64),
};
#undef NUM

static const numeric_option *find_numeric(const char *name)
{
    for (size_t k = 0; k < sizeof numeric_options / sizeof numeric_options[0];
         k++)
        if (strcmp(name, numeric_options[k].name) == 0)
            return &numeric_options[k];
    return NULL;
}

static int set_numeric(workload *wl, const numeric_option *o, const char *value)
{
    uint64_t v;
    if (tool_parse_size(value, &v) < 0 || v < o->lo || v > o->hi)
        return usage_error("bad value '%s' for %s (%llu..%llu)", value, o->name,
                           (unsigned long long)o->lo,
                           (unsigned long long)o->hi);
    char *field = (char *)wl + o->offset;
    if (o->type == FIELD_U64)
        *(uint64_t *)(void *)field = v;
    else if (o->type == FIELD_U32)
        *(uint32_t *)(void *)field = (uint32_t)v;
    else
        *(int *)(void *)field = (int)v;
    return 0;
}

static int is_text_option(const char *name)
{
    return strcmp(name, "-o") == 0 || strcmp(name, "--kind") == 0 ||
           strcmp(name, "--final-transport") == 0 ||
           strcmp(name, "--qemu") == 0 || strcmp(name, "--expect-dir") == 0 ||
           strcmp(name, "--compress-multifd") == 0 ||
           strcmp(name, "--qemu-version") == 0 || strcmp(name, "--uuid") == 0 ||
           strcmp(name, "--raw") == 0 || strcmp(name, "--preempt") == 0;
}

/* Options only the --multifd mode takes (besides --multifd itself): the
 * option's name as a literal (`name` may be a temporary copy), or NULL. */
static const char *multifd_only(const char *name)
{
    static const char *const names[] = {"--compress-multifd", "--qemu-version",
                                        "--uuid", "--ram-size", "--ram-passes"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(name, names[i]) == 0)
            return names[i];
    return NULL;
}

/* --qemu-version: 9.0 .. 10.x ("9" and "10" are 9.0 and 10.0), as
 * major * 100 + minor; -1 when not one of them. */
static int parse_qemu_version(const char *s)
{
    char *end;
    unsigned long major = strtoul(s, &end, 10), minor = 0;
    if (end == s || (major != 9 && major != 10))
        return -1;
    if (*end == '.') {
        const char *m = end + 1;
        minor = strtoul(m, &end, 10);
        if (end == m || minor > 99)
            return -1;
    }
    return *end ? -1 : (int)(major * 100 + minor);
}

/* Options --multifd refuses: it has no precopy images and its own
 * channel count. */
static int is_not_multifd(const char *name)
{
    static const char *const names[] = {
        "--channels",        "--chunk-size",    "--compress",
        "--final-transport", "--vendor-record", "--example",
        "--initial-size",    "--middle",        "--middle-size",
        "--switchover-ack",  "--stdout"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(name, names[i]) == 0)
            return 1;
    return 0;
}

/* 32 hex digits, dashes anywhere (8-4-4-4-12 or none). */
static int parse_uuid(const char *s, uint8_t out[16])
{
    unsigned n = 0;
    for (; *s; s++) {
        if (*s == '-')
            continue;
        int v = *s >= '0' && *s <= '9'   ? *s - '0'
                : *s >= 'a' && *s <= 'f' ? *s - 'a' + 10
                : *s >= 'A' && *s <= 'F' ? *s - 'A' + 10
                                         : -1;
        if (v < 0 || n >= 32)
            return -1;
        if (n % 2 == 0)
            out[n / 2] = (uint8_t)(v << 4);
        else
            out[n / 2] |= (uint8_t)v;
        n++;
    }
    return n == 32 ? 0 : -1;
}

/* Options that only shape migstream v1 output; --qemu refuses them. */
static int is_v1_only(const char *name)
{
    static const char *const names[] = {"--channels",      "--chunk-size",
                                        "--compress",      "--final-transport",
                                        "--vendor-record", "--example"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(name, names[i]) == 0)
            return 1;
    return 0;
}

/* -o, --kind, --final-transport, --qemu, --expect-dir (is_text_option). */
static int set_text(workload *wl, const char *name, const char *value)
{
    if (strcmp(name, "-o") == 0) {
        wl->out_dir = value;
    } else if (strcmp(name, "--qemu") == 0) {
        wl->qemu_base = value;
    } else if (strcmp(name, "--expect-dir") == 0) {
        wl->expect_dir = value;
    } else if (strcmp(name, "--raw") == 0) {
        wl->raw_file = value;
    } else if (strcmp(name, "--preempt") == 0) {
        wl->preempt_file = value;
    } else if (strcmp(name, "--compress-multifd") == 0) {
        if (strcmp(value, "none") == 0)
            wl->multifd_comp = 0;
        else if (strcmp(value, "zlib") == 0)
            wl->multifd_comp = 0x02;
        else if (strcmp(value, "zstd") == 0)
            wl->multifd_comp = 0x04;
        else
            return usage_error("unknown multifd compression '%s' (none, "
                               "zlib, zstd)",
                               value);
    } else if (strcmp(name, "--qemu-version") == 0) {
        int v = parse_qemu_version(value);
        if (v < 0)
            return usage_error("--qemu-version '%s': 9.0, 9.1, 9.2 or 10.x "
                               "(the channel layouts written)",
                               value);
        wl->qemu_version = (uint32_t)v;
    } else if (strcmp(name, "--uuid") == 0) {
        if (parse_uuid(value, wl->uuid) < 0)
            return usage_error("bad UUID '%s' (32 hex digits)", value);
        wl->has_uuid = 1;
    } else if (strcmp(name, "--kind") == 0) {
        wl->kind = ms_payload_kind_from_name(value);
        wl->kind_given = 1;
        if (wl->kind < 0)
            return usage_error("unknown payload kind '%s'", value);
    } else {
        if (strcmp(value, "chunks") == 0)
            wl->final_transport = MS_TRANSPORT_CHUNKS;
        else if (strcmp(value, "packets") == 0)
            wl->final_transport = MS_TRANSPORT_PACKETS;
        else
            return usage_error("unknown transport '%s'", value);
    }
    return 0;
}

/* An option that takes a value (NULL: the command line ended). */
static int set_option(workload *wl, const char *name, const char *value)
{
    const numeric_option *o = find_numeric(name);
    if (!o && !is_text_option(name))
        return usage_error("unknown option '%s'", name);
    if (!value)
        return usage_error("option '%s' needs a value", name);
    if (strcmp(name, "--packet-size") == 0)
        wl->packet_size_set = 1;
    if (strcmp(name, "--devices") == 0)
        wl->devices_set = 1;
    if (o && (strcmp(name, "--ram-size") == 0 ||
              strcmp(name, "--ram-passes") == 0))
        wl->ram_option = o->name;
    if (!wl->multifd_only)
        wl->multifd_only = multifd_only(name);
    if (!wl->not_multifd && is_not_multifd(name))
        wl->not_multifd = o ? o->name : "--final-transport";
    if (!wl->v1_only && is_v1_only(name))
        wl->v1_only = o ? o->name : "--final-transport";
    return o ? set_numeric(wl, o, value) : set_text(wl, name, value);
}

/* --multifd: the options it takes and its defaults. */
static int check_multifd_args(workload *wl)
{
    if (wl->not_multifd)
        return usage_error("%s does not apply to --multifd", wl->not_multifd);
    if (!wl->out_dir)
        return usage_error("--multifd needs -o DIR");
    if (wl->qemu_base && wl->ram_option)
        return usage_error("%s does not apply with --qemu BASE (its RAM "
                           "comes from BASE)",
                           wl->ram_option);
    if (wl->ram_size % 4096)
        return usage_error("--ram-size must be a multiple of 4096");
    /* device state over multifd: QEMU >= 10.0, compression none */
    if (wl->qemu_version < 1000) {
        if (wl->devices_set && wl->devices)
            return usage_error("device-state packets need --qemu-version "
                               "10.0 or later (give --devices 0)");
        wl->devices = 0;
    }
    if (wl->multifd_comp) {
        if (wl->devices_set && wl->devices)
            return usage_error("device-state packets need "
                               "--compress-multifd none (give --devices 0)");
        wl->devices = 0;
    }
    return 0;
}

/* --mapped-ram: -o OUT.mig; --ram-size, --ram-passes, --seed and
 * --expect-dir apply. */
static int check_mapped_ram_args(workload *wl)
{
    const char *bad = wl->multifd        ? "--multifd"
                      : wl->qemu_base    ? "--qemu"
                      : wl->raw_file     ? "--raw"
                      : wl->to_stdout    ? "--stdout (the file is written "
                                           "at fixed offsets)"
                      : wl->not_multifd  ? wl->not_multifd
                      : wl->has_uuid     ? "--uuid"
                      : wl->multifd_comp ? "--compress-multifd"
                      : wl->devices_set  ? "--devices"
                                         : NULL;
    if (bad)
        return usage_error("%s does not apply to --mapped-ram", bad);
    if (!wl->out_dir)
        return usage_error("--mapped-ram needs -o OUT.mig");
    if (wl->ram_size % 4096)
        return usage_error("--ram-size must be a multiple of 4096");
    return 0;
}

/* Returns 0 to go on, 1 when done (help, version), -1 on a usage error. */
static int parse_args(int argc, char **argv, workload *wl)
{
    workload_defaults(wl);
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            usage(stdout);
            return 1;
        }
        if (strcmp(arg, "-V") == 0 || strcmp(arg, "--version") == 0) {
            printf(PROG " " MIGSTREAM_VERSION_STRING "\n");
            return 1;
        }
        if (strcmp(arg, "--stdout") == 0) {
            wl->to_stdout = 1;
            if (!wl->not_multifd)
                wl->not_multifd = arg;
            continue;
        }
        if (strcmp(arg, "--vendor-record") == 0) {
            wl->vendor_record = 1;
            if (!wl->not_multifd)
                wl->not_multifd = arg;
            if (!wl->v1_only)
                wl->v1_only = arg;
            continue;
        }
        if (strcmp(arg, "--example") == 0) {
            wl->example = 1;
            if (!wl->not_multifd)
                wl->not_multifd = arg;
            if (!wl->v1_only)
                wl->v1_only = arg;
            continue;
        }
        if (strcmp(arg, "--mapped-ram") == 0) {
            wl->mapped_ram = 1;
            continue;
        }
        if (strcmp(arg, "--postcopy") == 0) {
            wl->postcopy = 1;
            continue;
        }
        if (strcmp(arg, "--switchover-ack") == 0) {
            wl->switchover_ack = 1;
            if (!wl->not_multifd)
                wl->not_multifd = arg;
            continue;
        }
        if (arg[0] != '-')
            return usage_error("unexpected argument '%s'", arg);
        /* --name=value or --name value */
        char name[32];
        const char *value = NULL;
        const char *eq = strncmp(arg, "--", 2) == 0 ? strchr(arg, '=') : NULL;
        size_t name_len = eq ? (size_t)(eq - arg) : strlen(arg);
        if (name_len >= sizeof name)
            return usage_error("unknown option '%s'", arg);
        memcpy(name, arg, name_len);
        name[name_len] = '\0';
        if (eq)
            value = eq + 1;
        else if (i + 1 < argc)
            value = argv[++i];
        if (set_option(wl, name, value) < 0)
            return -1;
    }
    if (wl->raw_file) {
        const char *bad = wl->multifd        ? "--multifd"
                          : wl->qemu_base    ? "--qemu"
                          : wl->out_dir      ? "-o"
                          : wl->to_stdout    ? "--stdout"
                          : wl->v1_only      ? wl->v1_only
                          : wl->multifd_only ? wl->multifd_only
                          : wl->switchover_ack ? "--switchover-ack"
                                               : NULL;
        if (bad)
            return usage_error("%s does not apply to --raw", bad);
        if (wl->devices_set && wl->devices != 1)
            return usage_error("--raw writes one device's bytes (--devices "
                               "1)");
        return 0;
    }
    if (wl->mapped_ram)
        return check_mapped_ram_args(wl);
    if ((wl->postcopy || wl->preempt_file) &&
        (!wl->qemu_base || wl->multifd || !wl->out_dir || wl->to_stdout ||
         !wl->postcopy || wl->switchover_ack))
        return usage_error("--postcopy needs --qemu BASE.mig -o OUT.mig "
                           "(no --multifd, --stdout, --switchover-ack); "
                           "--preempt needs --postcopy");
    if (wl->multifd)
        return check_multifd_args(wl);
    if (wl->multifd_only)
        return usage_error("%s needs --multifd N", wl->multifd_only);
    if (wl->qemu_base) {
        if (wl->v1_only)
            return usage_error("%s does not apply to --qemu", wl->v1_only);
        if (!wl->out_dir == !wl->to_stdout)
            return usage_error("give exactly one of -o OUT.mig and --stdout");
        return 0;
    }
    if (wl->switchover_ack || wl->expect_dir)
        return usage_error(wl->switchover_ack
                               ? "--switchover-ack needs --qemu BASE.mig"
                               : "--expect-dir needs --qemu BASE.mig, "
                                 "--multifd N or --raw FILE");
    if (wl->example)
        return 0;
    if (!wl->out_dir == !wl->to_stdout)
        return usage_error("give exactly one of -o DIR and --stdout");
    if (wl->to_stdout && wl->channels != 1)
        return usage_error("--stdout needs --channels 1");
    if (wl->final_transport < 0)
        wl->final_transport =
            wl->channels > 1 ? MS_TRANSPORT_PACKETS : MS_TRANSPORT_CHUNKS;
    return 0;
}

static int io_error(const char *path, int err)
{
    fprintf(stderr, PROG ": %s: %s\n", path, strerror(err));
    return TOOL_USAGE;
}

/* Create the output files (or take stdout).  Returns 0 or an exit code. */
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

/* ---- --example: the byte-level example of spec section 9 --------------- */
typedef struct membuf {
    uint8_t *bytes;
    size_t len, cap;
} membuf;

static int membuf_write(void *opaque, const void *buf, size_t len)
{
    membuf *m = opaque;
    if (len > m->cap - m->len) {
        size_t cap = m->cap ? m->cap * 2 : 1024;
        while (cap - m->len < len)
            cap *= 2;
        uint8_t *grown = realloc(m->bytes, cap);
        if (!grown)
            return -1;
        m->bytes = grown;
        m->cap = cap;
    }
    memcpy(m->bytes + m->len, buf, len);
    m->len += len;
    return 0;
}

/* One channel, one device, one 4-byte initial image, fixed values. */
static int example_stream(membuf *m)
{
    static const uint8_t image[4] = {0xDE, 0xAD, 0xBE, 0xEF};
    ms_writer_options opt;
    ms_writer_options_init(&opt);
    for (unsigned i = 0; i < sizeof opt.uuid; i++)
        opt.uuid[i] = (uint8_t)(0x10 + i);
    opt.channel_count = 1;
    opt.created_ns = CREATED_BASE_NS;
    ms_writer *w = ms_writer_create(&opt);
    if (!w) {
        fprintf(stderr, PROG ": no-memory: creating the writer\n");
        return TOOL_INVALID;
    }
    int failed =
        ms_writer_open_channel(w, 0, membuf_write, m) < 0 ||
        ms_writer_add_device(w, 0, "0000:00:02.0/vfio", 0, MS_PAYLOAD_RAW,
                             NULL, 0) < 0 ||
        ms_writer_image_begin(w, 0, 0, MS_PHASE_INITIAL, MS_TRANSPORT_CHUNKS,
                              MS_IMAGE_FULL, 1000) < 0 ||
        ms_writer_image_data(w, 0, image, sizeof image) < 0 ||
        ms_writer_image_end(w, 0, 2000) < 0 ||
        ms_writer_close_channel(w, 0, 3000) < 0;
    int status = TOOL_OK;
    if (failed) {
        const ms_error_info *e = ms_writer_error(w);
        fprintf(stderr, PROG ": %s: %s\n", ms_error_name(e->code), e->detail);
        status = TOOL_INVALID;
    }
    ms_writer_free(w);
    return status;
}

static uint64_t load_le(const uint8_t *p, unsigned bytes)
{
    uint64_t v = 0;
    while (bytes-- > 0)
        v = (v << 8) | p[bytes];
    return v;
}

static const char *example_tag_name(uint64_t tag)
{
    switch (tag) {
    case 0x0001:
        return "DEVICE";
    case 0x0002:
        return "IMAGE_BEGIN";
    case 0x0003:
        return "CHUNK";
    case 0x0004:
        return "IMAGE_END";
    case 0x00FF:
        return "END";
    }
    return "?";
}

/* Hex lines "offset: bytes", 16 bytes a line, offsets from stream start. */
static void hex_lines(const char *label, const uint8_t *base, size_t off,
                      size_t len)
{
    printf("%s\n", label);
    for (size_t line = 0; line < len; line += 16) {
        printf("  %06zx:", off + line);
        for (size_t i = line; i < len && i < line + 16; i++)
            printf(" %02x", base[off + i]);
        printf("\n");
    }
}

static int print_example(void)
{
    membuf m = {0};
    int status = example_stream(&m);
    if (status != TOOL_OK) {
        free(m.bytes);
        return status;
    }
    printf("# migstream byte-level example\n\n"
           "Generated by `migstream-synth --example` (" PROG
           " " MIGSTREAM_VERSION_STRING ").  One channel stream of %zu bytes:\n"
           "one device (`0000:00:02.0/vfio`, raw payload) and one 4-byte initial "
           "image (`de ad be ef`)\nin one CHUNK.  Offsets are from the start "
           "of the stream (hex).\n\n",
           m.len);
    printf("## Stream header\n\n```\n");
    hex_lines("stream header (64 bytes)", m.bytes, 0, 64);
    printf("```\n");
    /* the stream was just written by this tool, so its framing is sound */
    size_t off = 64;
    for (unsigned n = 1; off + 24 <= m.len; n++) {
        size_t size = (size_t)load_le(m.bytes + off, 8);
        uint64_t tag = load_le(m.bytes + off + 12, 4);
        printf("\n## Record %u: %s (tag 0x%04llx, payload %zu bytes)\n\n```\n",
               n, example_tag_name(tag), (unsigned long long)tag, size);
        hex_lines("record header: size, flags, tag, header_check", m.bytes, off,
                  24);
        hex_lines("payload", m.bytes, off + 24, size);
        hex_lines("payload_check", m.bytes, off + 24 + size, 8);
        printf("```\n");
        off += 24 + size + 8;
    }
    free(m.bytes);
    if (fflush(stdout) != 0 || ferror(stdout))
        return io_error("<stdout>", errno ? errno : EIO);
    return TOOL_OK;
}

/* ---- --qemu: VFIO devices inserted into a real QEMU main stream ----------
 * BASE's bytes are copied unchanged; the devices' sections go where QEMU
 * puts them (spec/qemu-main.md section 8, protocol v2):
 *   after the RAM START footer  START per device: SETUP_STATE, END_OF_STATE
 *   after each RAM PART footer  PARTs: at most one DATA_STATE chunk each,
 *                               then END_OF_STATE (or INIT_DATA_SENT)
 *   after the RAM END footer    END per device: DATA_STATE chunks of the
 *                               final data, END_OF_STATE
 *   before the EOF byte         FULL per device (the START's section id):
 *                               CONFIG_STATE, config bytes, END_OF_STATE
 * The JSON trailer stays as it is: QEMU does not describe VFIO sections in
 * it.  Where those places are comes from the library's reader run over
 * BASE, so the tool trusts no hand-written offsets. */

enum {
    QSEC_START = 0x01,
    QSEC_PART = 0x02,
    QSEC_END = 0x03,
    QSEC_FULL = 0x04,
    QSEC_FOOTER = 0x7E
};
#define VFIO_MARKER(n) (0xffffffffef100000ull + (n))
enum {
    VFIO_END_OF_STATE = 1,
    VFIO_CONFIG_STATE = 2,
    VFIO_SETUP_STATE = 3,
    VFIO_DATA_STATE = 4,
    VFIO_INIT_DATA_SENT = 5
};
#define QEMU_CHUNK_DEFAULT (1u << 20) /* QEMU reads the data fd 1 MiB a go */
#define VFIO_CONFIG_BYTES 64
#define VFIO_VERSION 1
#define QCMD_PACKAGED 7
/* mlx5 SW-header records (vfio-device-streams.md section 2) */
#define MLX5_HEADER 16
#define MLX5_OPTIONAL 1u
#define MLX5_TAG_FW_DATA 0u
#define MLX5_TAG_STOP_COPY_SIZE 1u

/* Stream stores.  The library has its own in libstream/core/common.h, but the
 * tools only see the public header, so the few needed live here once. */
static void put_be32(uint8_t *p, uint32_t v)
{
    for (int i = 3; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static void put_le(uint8_t *p, uint64_t v, unsigned bytes)
{
    for (unsigned i = 0; i < bytes; i++, v >>= 8)
        p[i] = (uint8_t)v;
}

/* Where BASE gets the device sections (byte offsets in BASE). */
typedef struct qemu_base {
    const char *path;
    const uint8_t *bytes;
    size_t len;
    uint64_t ram_start_end, ram_end_end, eof_off;
    int have_start, have_end, have_eof;
    uint64_t *part_ends; /* after each RAM PART footer */
    size_t nparts, partcap;
    uint32_t max_section_id;
} qemu_base;

/* A reader over the mapped BASE capture, given its JSON trailer first so
 * FULL sections are walked by their description rather than by looking
 * for their footer.  NULL (after saying so) when memory is short. */
static ms_reader *base_reader(const qemu_base *b)
{
    ms_options opt;
    ms_options_init(&opt);
    opt.input_stable = 1;
    ms_reader *r = ms_reader_create(&opt);
    if (!r) {
        fprintf(stderr, PROG ": out of memory\n");
        return NULL;
    }
    size_t joff, jlen;
    if (ms_qemu_find_vmdesc(b->bytes, b->len, (size_t)64 << 20, &joff, &jlen))
        ms_reader_set_vmdesc(r, (const char *)b->bytes + joff, jlen);
    return r;
}


typedef struct gen_seg {
    size_t off, len; /* fixed bytes: own[off, off + len) */
    uint64_t fill;   /* then this many fill_state bytes */
} gen_seg;

/* One device's bytes of one phase, made as they are written: raw bytes,
 * or mlx5 records (STOP_COPY_SIZE first, then one FW_DATA per image). */
typedef struct dev_gen {
    uint64_t rng;
    int mlx5;
    uint8_t hdr[MLX5_HEADER + 8]; /* header bytes still to give */
    size_t hdr_len, hdr_pos;
    uint64_t payload_left; /* image bytes of the current record */
    int stop_copy_pending;
    uint64_t stop_copy_size;
    uint64_t records_left, record_size;
    uint64_t total; /* all bytes of the phase */
    /* the other kinds (virtio, hisi_acc, qat, xe, pds): a template of
     * segments (fixed bytes from own[], then fill_state bytes), given
     * reps times; image_size is one image's bytes (virtio's snapshots) */
    uint8_t *own;
    gen_seg *segs;
    size_t nsegs, segcap, owncap, ownlen;
    uint64_t reps, seg_pos;
    size_t seg_i;
    uint64_t image_size;
} dev_gen;

typedef struct qemu_dev {
    char idstr[32];
    uint32_t section_id;
    dev_gen gen[4]; /* by ms_phase; [0] gives the config bytes */
} qemu_dev;

/* Output (file or stdout) with a sticky error. */
typedef struct qemu_out {
    FILE *f;
    const char *name;
    int err;
} qemu_out;

typedef struct qemu_synth {
    const workload *wl;
    qemu_base base;
    qemu_dev *devs;
    qemu_out out;
    uint8_t *buf;
    size_t chunk_max;
    uint64_t n_init, n_mid; /* DATA_STATE chunks per device */
    int init_only;          /* an INIT_DATA_SENT PART without data */
    int expect_err;
} qemu_synth;

static size_t gen_next(dev_gen *g, uint8_t *out, size_t cap)
{
    size_t n = 0;
    while (g->segs && n < cap && g->reps) {
        const gen_seg *sg = &g->segs[g->seg_i];
        if (g->seg_pos < sg->len) {
            size_t k = sg->len - (size_t)g->seg_pos;
            if (k > cap - n)
                k = cap - n;
            memcpy(out + n, g->own + sg->off + g->seg_pos, k);
            g->seg_pos += k;
            n += k;
        } else if (g->seg_pos - sg->len < sg->fill) {
            uint64_t left = sg->fill - (g->seg_pos - sg->len);
            size_t k = (size_t)(left < cap - n ? left : cap - n);
            fill_state(&g->rng, out + n, k);
            g->seg_pos += k;
            n += k;
        } else {
            g->seg_pos = 0;
            if (++g->seg_i == g->nsegs) {
                g->seg_i = 0;
                g->reps--;
            }
        }
    }
    while (!g->segs && n < cap) {
        if (g->hdr_pos < g->hdr_len) {
            size_t k = g->hdr_len - g->hdr_pos;
            if (k > cap - n)
                k = cap - n;
            memcpy(out + n, g->hdr + g->hdr_pos, k);
            g->hdr_pos += k;
            n += k;
        } else if (g->payload_left) {
            size_t k =
                (size_t)(g->payload_left < cap - n ? g->payload_left : cap - n);
            fill_state(&g->rng, out + n, k);
            g->payload_left -= k;
            n += k;
        } else if (g->stop_copy_pending) {
            g->stop_copy_pending = 0;
            put_le(g->hdr, 8, 8);
            put_le(g->hdr + 8, MLX5_OPTIONAL, 4);
            put_le(g->hdr + 12, MLX5_TAG_STOP_COPY_SIZE, 4);
            put_le(g->hdr + 16, g->stop_copy_size, 8);
            g->hdr_len = MLX5_HEADER + 8;
            g->hdr_pos = 0;
        } else if (g->records_left) {
            g->records_left--;
            g->payload_left = g->record_size;
            if (g->mlx5) {
                put_le(g->hdr, g->record_size, 8);
                put_le(g->hdr + 8, 0, 4); /* FW_DATA is always mandatory */
                put_le(g->hdr + 12, MLX5_TAG_FW_DATA, 4);
                g->hdr_len = MLX5_HEADER;
                g->hdr_pos = 0;
            }
        } else {
            break;
        }
    }
    return n;
}

static size_t gens_next(dev_gen *gens, size_t i, uint8_t *out, size_t cap)
{
    return gen_next(&gens[i], out, cap);
}

/* a + b and a * b without wrapping; -1 when they would. */
static int add_u64(uint64_t *a, uint64_t b)
{
    if (b > UINT64_MAX - *a)
        return -1;
    *a += b;
    return 0;
}

/* ---- the other kinds' payloads (spec/payloads.md) ---- */

static int gen_grow(void **p, size_t *cap, size_t need, size_t unit)
{
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap * 2 : 16;
    while (c < need)
        c *= 2;
    void *q = realloc(*p, c * unit);
    if (!q)
        return -1;
    *p = q;
    *cap = c;
    return 0;
}

/* Append fixed bytes (then fill bytes) to a generator's template. */
static int gen_bytes(dev_gen *g, const void *p, size_t n)
{
    if (gen_grow((void **)&g->own, &g->owncap, g->ownlen + n, 1) < 0)
        return -1;
    if (n) /* a zero-length append only opens a segment (gen_fill) */
        memcpy(g->own + g->ownlen, p, n);
    if (g->nsegs && g->segs[g->nsegs - 1].fill == 0 &&
        g->segs[g->nsegs - 1].off + g->segs[g->nsegs - 1].len == g->ownlen) {
        g->segs[g->nsegs - 1].len += n;
    } else {
        if (gen_grow((void **)&g->segs, &g->segcap, g->nsegs + 1,
                     sizeof *g->segs) < 0)
            return -1;
        g->segs[g->nsegs++] = (gen_seg){.off = g->ownlen, .len = n};
    }
    g->ownlen += n;
    g->total += n;
    g->reps = 1;
    return 0;
}

static int gen_fill(dev_gen *g, uint64_t n)
{
    if (n == 0)
        return 0;
    if (!g->nsegs && gen_bytes(g, "", 0) < 0)
        return -1;
    g->segs[g->nsegs - 1].fill += n;
    if (add_u64(&g->total, n) < 0)
        return -1;
    g->reps = 1;
    return 0;
}

static void gen_free(dev_gen *g)
{
    free(g->own);
    free(g->segs);
    g->own = NULL;
    g->segs = NULL;
}

static void gens_free(dev_gen *gen)
{
    for (int p = 0; p < 4; p++)
        gen_free(&gen[p]);
}

/* virtio device parts (spec/payloads.md section 6) */
#define VIRTIO_QUEUES 3 /* virtio-net: receive, transmit, control */
static size_t virtio_part(uint8_t *p, uint16_t type, uint64_t selector,
                          const uint8_t *value, uint32_t len)
{
    memset(p, 0, 16);
    put_le(p, type, 2);
    put_le(p + 4, selector, 8);
    put_le(p + 12, len, 4);
    memcpy(p + 16, value, len);
    return 16 + (size_t)len;
}

/* One DEVICE_DATA record: a complete snapshot of the device, padded with
 * a device-type specific part (virtio-net state) to about `want` bytes. */
static int virtio_snapshot(dev_gen *g, uint32_t d, uint64_t want)
{
    uint8_t rec[1024], v[32];
    size_t n = 16;
    /* features: VERSION_1 (32), ACCESS_PLATFORM (33), net CSUM, MAC,
     * STATUS, CTRL_VQ, MRG_RXBUF */
    uint64_t dev_f = (1ull << 32) | (1ull << 33) | (1u << 0) | (1u << 5) |
                     (1u << 15) | (1u << 16) | (1u << 17);
    put_le(v, dev_f, 8);
    n += virtio_part(rec + n, 0x100, 0, v, 8);
    put_le(v, dev_f & ~(1ull << 33), 8);
    n += virtio_part(rec + n, 0x101, 0, v, 8);
    static const struct {
        uint32_t off, len;
    } cfg[] = {{0x00, 4}, {0x08, 4}, {0x10, 2}, {0x12, 2}, {0x16, 2}};
    for (size_t i = 0; i < sizeof cfg / sizeof cfg[0]; i++) {
        uint64_t val = cfg[i].off == 0x12   ? VIRTIO_QUEUES
                       : cfg[i].off == 0x10 ? VIRTIO_QUEUES
                       : cfg[i].off == 0x16 ? VIRTIO_QUEUES - 1
                                            : 1;
        put_le(v, val, cfg[i].len);
        n += virtio_part(rec + n, 0x102, cfg[i].off, v, cfg[i].len);
    }
    v[0] = 0x0F; /* ACKNOWLEDGE | DRIVER | DRIVER_OK | FEATURES_OK */
    n += virtio_part(rec + n, 0x103, 0, v, 1);
    for (uint16_t q = 0; q < VIRTIO_QUEUES; q++) {
        uint64_t base = 0x100000000ull + ((uint64_t)d << 24) +
                        ((uint64_t)q << 16);
        memset(v, 0, 32);
        put_le(v, q + 1 < VIRTIO_QUEUES ? 256 : 64, 2); /* queue_size */
        put_le(v + 2, q, 2);                             /* vector */
        put_le(v + 4, 1, 2);                             /* enabled */
        put_le(v + 8, base, 8);
        put_le(v + 16, base + 0x1000, 8);
        put_le(v + 24, base + 0x2000, 8);
        n += virtio_part(rec + n, 0x104, q, v, 32);
    }
    for (uint16_t q = 0; q < VIRTIO_QUEUES; q++) {
        memset(v, 0, 8);
        put_le(v, q, 2);
        put_le(v + 2, q, 2);
        n += virtio_part(rec + n, 0x105, q, v, 8);
    }
    uint64_t pad = want > n ? want - n : 0;
    if (pad && pad < 16)
        pad = 16;
    if (pad > UINT32_MAX - n)
        return -1; /* record_size and part lengths are 32-bit */
    put_le(rec, n - 16 + pad, 8);
    put_le(rec + 8, 0, 4);  /* DEVICE_DATA is mandatory */
    put_le(rec + 12, 0, 4); /* tag DEVICE_DATA */
    if (pad) {
        memset(v, 0, 16);
        put_le(v, 0x200, 2); /* device-type specific */
        put_le(v + 12, pad - 16, 4);
        memcpy(rec + n, v, 16);
        n += 16;
    }
    if (gen_bytes(g, rec, n) < 0 || gen_fill(g, pad ? pad - 16 : 0) < 0)
        return -1;
    g->image_size = n + (pad ? pad - 16 : 0);
    return 0;
}

/* struct acc_vf_data, V2 (176 bytes) */
static void hisi_struct(uint8_t *b, uint32_t d, uint64_t *rng)
{
    memset(b, 0, 176);
    put_le(b, 0xAACCFEEDDECADEDEull, 8);
    put_le(b + 8, 64, 4);             /* qp_num */
    put_le(b + 12, 0xa251, 4);        /* dev_id: HiSilicon ZIP VF */
    put_le(b + 16, 0, 4);             /* que_iso_cfg */
    put_le(b + 20, 64 * (d + 1), 4);  /* qp_base */
    put_le(b + 24, 1, 4);             /* vf_qm_state: ready */
    put_le(b + 28, 1, 2);             /* major version */
    put_le(b + 30, 0, 2);             /* minor version */
    rng_bytes(rng, b + 40, 104);      /* queue-manager registers */
    for (int i = 0; i < 4; i++)       /* eqe, aeqe, sqc, cqc DMA */
        put_le(b + 144 + 8 * i,
               0x8000000000ull + ((uint64_t)d << 20) + (uint64_t)i * 0x10000,
               8);
}

/* QAT: a section header and its payload */
static size_t qat_sect(uint8_t *p, const char *id, uint32_t size,
                       uint32_t subs)
{
    memset(p, 0, 16);
    memcpy(p, id, strlen(id));
    put_le(p + 8, size, 4);
    put_le(p + 12, subs, 4);
    return 16;
}

static size_t qat_leaf(uint8_t *p, const char *id, uint64_t value,
                       uint32_t len)
{
    size_t n = qat_sect(p, id, len, 0);
    put_le(p + n, value, len < 8 ? len : 8);
    return n + len;
}

static size_t qat_preamble(uint8_t *p, uint16_t n_sects, uint32_t size)
{
    put_le(p, 0xADF5CAEAu, 4);
    put_le(p + 4, 1, 4);
    put_le(p + 8, 16, 2);
    put_le(p + 10, n_sects, 2);
    put_le(p + 12, size, 4);
    return 16;
}

/* The 4096-byte buffer; returns S, the setup block's length. */
static size_t qat_buffer(uint8_t *b, uint64_t *rng)
{
    memset(b, 0, 4096);
    /* setup block: CONFIG{gencap, svcmap, extdc} */
    size_t o = 16;
    size_t cfg = o;
    o += 16;
    o += qat_leaf(b + o, "gencap", 0x00000000ffffffffull, 8);
    o += qat_leaf(b + o, "svcmap", 0x0000000000000321ull, 8);
    o += qat_leaf(b + o, "extdc", 0x1, 4);
    qat_sect(b + cfg, "CONFIG", (uint32_t)(o - cfg - 16), 3);
    qat_preamble(b, 1, (uint32_t)(o - 16));
    size_t setup = o;
    /* state block: GENER{iovinit, compver, sla}, MISCBAR{...}, ETRBAR */
    o += 16;
    size_t top = o;
    o += 16;
    o += qat_leaf(b + o, "iovinit", 1, 4);
    o += qat_leaf(b + o, "compver", 0x0104, 4);
    size_t sla = o;
    o += qat_sect(b + o, "sla", 32, 0);
    rng_bytes(rng, b + o, 32);
    o += 32;
    (void)sla;
    qat_sect(b + top, "GENER", (uint32_t)(o - top - 16), 3);
    top = o;
    o += 16;
    static const char *const misc[] = {"visrc", "vimsk", "vispv",
                                       "vimpv", "pf2vm", "vm2pf"};
    for (int i = 0; i < 6; i++)
        o += qat_leaf(b + o, misc[i], rng_next(rng) & 0xffffffffu, 8);
    qat_sect(b + top, "MISCBAR", (uint32_t)(o - top - 16), 6);
    top = o;
    o += 16;
    for (int k = 0; k < 4; k++) {
        char id[8];
        snprintf(id, sizeof id, "bnk%d", k);
        size_t bank = o;
        o += 16;
        o += qat_sect(b + o, "mregs", 128, 0);
        rng_bytes(rng, b + o, 128);
        o += 128;
        qat_sect(b + bank, id, (uint32_t)(o - bank - 16), 1);
    }
    qat_sect(b + top, "ETRBAR", (uint32_t)(o - top - 16), 4);
    qat_preamble(b + setup, 3, (uint32_t)(o - setup - 16));
    return setup;
}

/* Xe: a packet header */
static void xe_header(uint8_t *h, uint8_t type, uint64_t offset,
                      uint64_t size)
{
    memset(h, 0, 24);
    h[0] = 1; /* version */
    h[1] = type;
    put_le(h + 8, offset, 8);
    put_le(h + 16, size, 8);
}

#define XE_VRAM_PACKET ((uint64_t)64 << 20)
static int xe_stream(dev_gen *g, uint64_t size)
{
    uint8_t h[24 + 28];
    /* DESCRIPTOR: devid, revid and one more KLV (walked) */
    xe_header(h, 1, 0, 28);
    put_le(h + 24, 0xF0010001u, 4);
    put_le(h + 28, 0xE20B, 4); /* Battlemage */
    put_le(h + 32, 0xF0020001u, 4);
    put_le(h + 36, 0x01, 4);
    put_le(h + 40, 0xF0030002u, 4); /* vendor KLV, 2 dwords */
    put_le(h + 44, 0x1, 4);
    put_le(h + 48, 0x0, 4);
    if (gen_bytes(g, h, sizeof h) < 0)
        return -1;
    uint64_t ggtt = size / 16 / 8 * 8, mmio = size / 64 / 4 * 4,
             guc = size / 8 / 4 * 4;
    uint64_t vram = size - ggtt - mmio - guc;
    const struct {
        uint8_t type;
        uint64_t len;
    } res[] = {{3, ggtt}, {4, mmio}, {5, guc}};
    for (int i = 0; i < 3; i++) {
        if (!res[i].len)
            continue;
        xe_header(h, res[i].type, 0, res[i].len);
        if (gen_bytes(g, h, 24) < 0 || gen_fill(g, res[i].len) < 0)
            return -1;
    }
    for (uint64_t off = 0; off < vram; off += XE_VRAM_PACKET) {
        uint64_t n = vram - off < XE_VRAM_PACKET ? vram - off : XE_VRAM_PACKET;
        xe_header(h, 6, off, n);
        if (gen_bytes(g, h, 24) < 0 || gen_fill(g, n) < 0)
            return -1;
    }
    xe_header(h, 2, 0, 0); /* TRAILER */
    return gen_bytes(g, h, 24);
}

#define PDS_MAX 65536

/* The other kinds' generators.  Returns -1 when the sizes do not fit. */
static int kind_gens_init(const workload *wl, uint32_t d, dev_gen *gen)
{
    dev_gen *gi = &gen[MS_PHASE_INITIAL], *gm = &gen[MS_PHASE_MIDDLE],
            *gf = &gen[MS_PHASE_FINAL];
    uint8_t b[4096];
    switch (wl->kind) {
    case MS_PAYLOAD_VIRTIO:
        if (wl->initial_size && virtio_snapshot(gi, d, wl->initial_size) < 0)
            return -1;
        if (wl->middle_count) {
            if (virtio_snapshot(gm, d, wl->middle_size) < 0)
                return -1;
            gm->reps = wl->middle_count;
            if (gm->total > UINT64_MAX / wl->middle_count)
                return -1;
            gm->total *= wl->middle_count;
        }
        return virtio_snapshot(gf, d, wl->final_size);
    case MS_PAYLOAD_HISI_ACC:
        hisi_struct(b, d, &gen[0].rng);
        if (wl->no_precopy)
            return gen_bytes(gf, b, 176);
        if (gen_bytes(gi, b, 40) < 0)
            return -1;
        return gen_bytes(gf, b + 40, 136);
    case MS_PAYLOAD_QAT: {
        size_t setup = qat_buffer(b, &gen[0].rng);
        if (wl->no_precopy)
            return gen_bytes(gf, b, 4096);
        if (gen_bytes(gi, b, setup) < 0)
            return -1;
        return gen_bytes(gf, b + setup, 4096 - setup);
    }
    case MS_PAYLOAD_XE:
        return xe_stream(gf, wl->final_size);
    case MS_PAYLOAD_PDS:
        return gen_fill(gf, wl->final_size < PDS_MAX ? wl->final_size
                                                     : PDS_MAX);
    }
    return -1;
}

/* Set up device d's generators (gen[0]'s rng also gives the config
 * bytes); returns -1 when the sizes overflow.  stop_copy_in_middle: with
 * precopy but no initial image, mlx5's STOP_COPY_SIZE goes in front of
 * the first middle image (migstream images) rather than in the initial
 * data (QEMU, where the first PART carries it). */
static int gens_init(const workload *wl, uint32_t d, dev_gen *gen,
                     int stop_copy_in_middle)
{
    int mlx5 = wl->kind == MS_PAYLOAD_MLX5;
    uint64_t hdr = mlx5 ? MLX5_HEADER : 0;
    for (int p = 0; p < 4; p++) {
        dev_gen *g = &gen[p];
        memset(g, 0, sizeof *g);
        g->mlx5 = mlx5;
        /* one independent stream per device and phase, whatever order the
         * chunks are written in */
        g->rng = wl->seed * 0x9E3779B97F4A7C15ull +
                 ((uint64_t)d * 4 + (uint64_t)p + 1) * 0xD1B54A32D192ED03ull;
        rng_next(&g->rng);
    }
    if (wl->kind != MS_PAYLOAD_MLX5 && wl->kind != MS_PAYLOAD_RAW)
        return kind_gens_init(wl, d, gen);
    /* mlx5 puts STOP_COPY_SIZE first: on entering PRE_COPY, or on
     * STOP -> STOP_COPY when there is no precopy at all. */
    int precopy = wl->initial_size || wl->middle_count;
    dev_gen *gi = &gen[MS_PHASE_INITIAL], *gm = &gen[MS_PHASE_MIDDLE],
            *gf = &gen[MS_PHASE_FINAL];
    dev_gen *first = !precopy                                   ? gf
                     : stop_copy_in_middle && !wl->initial_size ? gm
                                                                : gi;
    if (mlx5) {
        first->stop_copy_pending = 1;
        first->stop_copy_size =
            wl->final_size - wl->final_size / 10 +
            rng_below(&gen[0].rng, wl->final_size / 5 + 1);
        first->total = MLX5_HEADER + 8;
    }
    if (wl->initial_size) {
        gi->records_left = 1;
        gi->record_size = wl->initial_size;
        if (add_u64(&gi->total, hdr) < 0 ||
            add_u64(&gi->total, wl->initial_size) < 0)
            return -1;
    }
    if (wl->middle_size && wl->middle_count) {
        gm->records_left = wl->middle_count;
        gm->record_size = wl->middle_size;
        uint64_t one = wl->middle_size;
        if (add_u64(&one, hdr) < 0 || wl->middle_count > UINT64_MAX / one)
            return -1;
        gm->image_size = one;
        uint64_t all = wl->middle_count * one;
        if (add_u64(&gm->total, all) < 0)
            return -1;
    }
    /* mlx5 always ends with a final FW_DATA record, even an empty one */
    if (wl->final_size || mlx5) {
        gf->records_left = 1;
        gf->record_size = wl->final_size;
        if (add_u64(&gf->total, hdr) < 0 ||
            add_u64(&gf->total, wl->final_size) < 0)
            return -1;
    }
    return 0;
}

/* Set up device d's name and generators. */
static int qemu_dev_init(qemu_synth *q, uint32_t d)
{
    qemu_dev *dev = &q->devs[d];
    uint32_t slot = 0x10 + d; /* 0000:00:10.0 on: clear of BASE's NICs */
    snprintf(dev->idstr, sizeof dev->idstr, "0000:%02x:%02x.0/vfio", slot / 32,
             slot % 32);
    dev->section_id = q->base.max_section_id + 1 + d;
    return gens_init(q->wl, d, dev->gen, 0);
}

/* ---- reading BASE ---------------------------------------------------- */

static int base_problem(const qemu_base *b, uint64_t off, ms_error code,
                        const char *detail)
{
    ms_error_info e = {.code = code, .offset = off};
    snprintf(e.detail, sizeof e.detail, "%s", detail);
    tool_print_problem(stderr, b->path, &e);
    return TOOL_INVALID;
}

static int base_event(qemu_synth *q, const ms_event *ev)
{
    qemu_base *b = &q->base;
    switch (ev->kind) {
    case MS_EV_STREAM_HEADER:
        if (ev->u.stream.format != MS_FORMAT_QEMU_MAIN)
            return base_problem(b, 0, MS_ERR_FORMAT_UNSUPPORTED,
                                "not a QEMU main stream");
        break;
    case MS_EV_COMMAND:
        /* Sections inside a PACKAGED stream are counted in its length,
         * so nothing may be inserted there; postcopy bases are out. */
        if (ev->u.command.cmd == QCMD_PACKAGED)
            return base_problem(b, ev->offset, MS_ERR_FORMAT_UNSUPPORTED,
                                "PACKAGED command (postcopy): --qemu needs "
                                "a precopy base stream");
        break;
    case MS_EV_SECTION:
        if (ev->u.section.section_id > b->max_section_id)
            b->max_section_id = ev->u.section.section_id;
        for (uint32_t d = 0; d < q->wl->devices; d++) {
            char idstr[32];
            uint32_t slot = 0x10 + d;
            snprintf(idstr, sizeof idstr, "0000:%02x:%02x.0/vfio", slot / 32,
                     slot % 32);
            if (strcmp(ev->u.section.idstr, idstr) == 0) {
                char why[128];
                snprintf(why, sizeof why,
                         "BASE already has a section \"%s\", the name of "
                         "inserted device %u",
                         idstr, d);
                return base_problem(b, ev->offset, MS_ERR_SECTION, why);
            }
        }
        break;
    case MS_EV_SECTION_FOOTER: {
        if (strcmp(ev->u.section.idstr, "ram") != 0)
            break;
        uint64_t end = ev->offset + 5; /* 0x7E + be32 section id */
        if (ev->u.section.type == MS_QSEC_START && !b->have_start) {
            b->ram_start_end = end;
            b->have_start = 1;
        } else if (ev->u.section.type == MS_QSEC_PART && b->have_start &&
                   !b->have_end) {
            if (b->nparts == b->partcap) {
                size_t cap = b->partcap ? b->partcap * 2 : 16;
                uint64_t *p = realloc(b->part_ends, cap * sizeof *p);
                if (!p) {
                    fprintf(stderr, PROG ": out of memory\n");
                    return TOOL_USAGE;
                }
                b->part_ends = p;
                b->partcap = cap;
            }
            b->part_ends[b->nparts++] = end;
        } else if (ev->u.section.type == MS_QSEC_END && b->have_start &&
                   !b->have_end) {
            b->ram_end_end = end;
            b->have_end = 1;
        }
        break;
    }
    case MS_EV_QEMU_EOF:
        if (!b->have_eof) {
            b->eof_off = ev->offset;
            b->have_eof = 1;
        }
        break;
    default:
        break;
    }
    return TOOL_OK;
}

/* Map BASE and find the insertion points with the library's reader. */
static int read_base(qemu_synth *q)
{
    qemu_base *b = &q->base;
    int fd = open(b->path, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        int err = errno;
        if (fd >= 0)
            close(fd);
        return io_error(b->path, err);
    }
    if (!S_ISREG(st.st_mode) || st.st_size == 0) {
        close(fd);
        fprintf(stderr, PROG ": %s: not a regular, non-empty file\n", b->path);
        return TOOL_USAGE;
    }
    void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int err = errno;
    close(fd);
    if (m == MAP_FAILED)
        return io_error(b->path, err);
    b->bytes = m;
    b->len = (size_t)st.st_size;

    ms_reader *r = base_reader(b);
    if (!r)
        return TOOL_USAGE;
    int status = TOOL_OK;
    ms_event ev;
    int rc = ms_reader_input(r, b->bytes, b->len) < 0 ? MS_NEXT_ERROR
                                                      : MS_NEXT_EVENT;
    while (rc == MS_NEXT_EVENT && status == TOOL_OK)
        if ((rc = ms_reader_next(r, &ev)) == MS_NEXT_EVENT)
            status = base_event(q, &ev);
    if (status == TOOL_OK && (rc == MS_NEXT_ERROR || ms_reader_finish(r) < 0)) {
        tool_print_problem(stderr, b->path, ms_reader_error(r));
        status = TOOL_INVALID;
    }
    ms_reader_free(r);
    if (status != TOOL_OK)
        return status;
    if (!b->have_start || !b->have_end || !b->have_eof)
        return base_problem(b, b->len, MS_ERR_SECTION,
                            !b->have_start ? "no RAM START section"
                            : !b->have_end ? "no RAM END section"
                                           : "no EOF record");
    if (b->ram_end_end > b->eof_off)
        return base_problem(b, b->eof_off, MS_ERR_SECTION,
                            "EOF record before the RAM END section");
    return TOOL_OK;
}

/* ---- writing ------------------------------------------------------------- */

static void qput(qemu_synth *q, const void *p, size_t n)
{
    if (q->out.err || n == 0)
        return;
    errno = 0;
    if (fwrite(p, 1, n, q->out.f) != n)
        q->out.err = errno ? errno : EIO;
}

static void qput_u8(qemu_synth *q, uint8_t v)
{
    qput(q, &v, 1);
}

static void qput_be32(qemu_synth *q, uint32_t v)
{
    uint8_t b[4];
    put_be32(b, v);
    qput(q, b, 4);
}

static void qput_marker(qemu_synth *q, unsigned marker)
{
    uint8_t b[8];
    put_be64(b, VFIO_MARKER(marker));
    qput(q, b, 8);
}

static void qput_header(qemu_synth *q, uint8_t type, const qemu_dev *dev)
{
    qput_u8(q, type);
    qput_be32(q, dev->section_id);
    if (type == QSEC_START || type == QSEC_FULL) {
        size_t n = strlen(dev->idstr);
        qput_u8(q, (uint8_t)n);
        qput(q, dev->idstr, n);
        qput_be32(q, 0); /* instance_id */
        qput_be32(q, VFIO_VERSION);
    }
}

static void qput_footer(qemu_synth *q, const qemu_dev *dev)
{
    qput_u8(q, QSEC_FOOTER);
    qput_be32(q, dev->section_id);
}

static void qcopy(qemu_synth *q, uint64_t *pos, uint64_t to)
{
    qput(q, q->base.bytes + *pos, (size_t)(to - *pos));
    *pos = to;
}

static const char *const phase_file[4] = {"config", "initial", "middle",
                                          "final"};

/* Also append the bytes to DIR/N.PHASE (--expect-dir). */
static void expect_append(qemu_synth *q, uint32_t d, int phase,
                          const uint8_t *p, size_t n, int truncate)
{
    if (!q->wl->expect_dir || q->expect_err)
        return;
    char path[4096];
    snprintf(path, sizeof path, "%s/%u.%s", q->wl->expect_dir, d,
             phase_file[phase]);
    int fd =
        open(path, O_WRONLY | O_CREAT | (truncate ? O_TRUNC : O_APPEND), 0666);
    int failed = fd < 0;
    while (!failed && n) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        failed = k <= 0;
        if (!failed) {
            p += k;
            n -= (size_t)k;
        }
    }
    if (fd >= 0 && close(fd) < 0)
        failed = 1;
    if (failed) {
        q->expect_err = errno ? errno : EIO;
        io_error(path, q->expect_err);
    }
}

/* One DATA_STATE chunk of device d's phase, written and recorded. */
static void qput_chunk(qemu_synth *q, uint32_t d, int phase)
{
    size_t n = gen_next(&q->devs[d].gen[phase], q->buf, q->chunk_max);
    uint8_t b[8];
    qput_marker(q, VFIO_DATA_STATE);
    put_be64(b, n);
    qput(q, b, 8);
    qput(q, q->buf, n);
    expect_append(q, d, phase, q->buf, n, 0);
}

/* Precopy PART number k of device d (every device has the same plan). */
static void qput_part(qemu_synth *q, uint32_t d, uint64_t k)
{
    const qemu_dev *dev = &q->devs[d];
    unsigned end = VFIO_END_OF_STATE;
    qput_header(q, QSEC_PART, dev);
    if (k < q->n_init) {
        qput_chunk(q, d, MS_PHASE_INITIAL);
        if (q->wl->switchover_ack && k + 1 == q->n_init)
            end = VFIO_INIT_DATA_SENT;
    } else if (q->init_only && k == q->n_init) {
        end = VFIO_INIT_DATA_SENT; /* nothing initial to send */
    } else {
        qput_chunk(q, d, MS_PHASE_MIDDLE);
    }
    qput_marker(q, end);
    qput_footer(q, dev);
}

static uint64_t chunks_for(uint64_t bytes, uint64_t max)
{
    return bytes / max + (bytes % max != 0);
}

static int write_expect_files(qemu_synth *q)
{
    const workload *wl = q->wl;
    if (!wl->expect_dir)
        return TOOL_OK;
    if (mkdir(wl->expect_dir, 0777) != 0 && errno != EEXIST)
        return io_error(wl->expect_dir, errno);
    char path[4096];
    snprintf(path, sizeof path, "%s/devices", wl->expect_dir);
    FILE *f = fopen(path, "w");
    if (!f)
        return io_error(path, errno);
    for (uint32_t d = 0; d < wl->devices; d++)
        fprintf(f, "%u %s %u\n", d, q->devs[d].idstr, q->devs[d].section_id);
    if (ferror(f) | (fclose(f) != 0))
        return io_error(path, errno ? errno : EIO);
    for (uint32_t d = 0; d < wl->devices; d++)
        for (int p = MS_PHASE_INITIAL; p <= MS_PHASE_FINAL; p++)
            expect_append(q, d, p, NULL, 0, 1);
    return q->expect_err ? TOOL_USAGE : TOOL_OK;
}

static void write_qemu_stream(qemu_synth *q)
{
    const workload *wl = q->wl;
    const qemu_base *b = &q->base;
    uint32_t nd = wl->devices;
    uint64_t pos = 0;
    qcopy(q, &pos, b->ram_start_end);
    for (uint32_t d = 0; d < nd; d++) {
        qput_header(q, QSEC_START, &q->devs[d]);
        qput_marker(q, VFIO_SETUP_STATE);
        qput_marker(q, VFIO_END_OF_STATE);
        qput_footer(q, &q->devs[d]);
    }
    /* Precopy PARTs in rounds (one PART per device per round, as QEMU's
     * iteration loop visits every device once), spread evenly after the
     * RAM PARTs; a base without RAM PARTs gets them after the STARTs. */
    uint64_t rounds = q->n_init + (uint64_t)q->init_only + q->n_mid;
    uint64_t slots = b->nparts ? b->nparts : 1, done = 0;
    for (uint64_t i = 0; i < slots; i++) {
        if (b->nparts)
            qcopy(q, &pos, b->part_ends[i]);
        uint64_t until =
            rounds / slots * (i + 1) + rounds % slots * (i + 1) / slots;
        for (; done < until; done++)
            for (uint32_t d = 0; d < nd; d++)
                qput_part(q, d, done);
    }
    qcopy(q, &pos, b->ram_end_end);
    uint64_t n_final =
        chunks_for(q->devs[0].gen[MS_PHASE_FINAL].total, q->chunk_max);
    for (uint32_t d = 0; d < nd; d++) {
        qput_header(q, QSEC_END, &q->devs[d]);
        for (uint64_t k = 0; k < n_final; k++)
            qput_chunk(q, d, MS_PHASE_FINAL);
        qput_marker(q, VFIO_END_OF_STATE);
        qput_footer(q, &q->devs[d]);
    }
    qcopy(q, &pos, b->eof_off);
    for (uint32_t d = 0; d < nd; d++) {
        /* Stand-in for the PCI config VMState.  The reader finds its end
         * by looking for END_OF_STATE + footer, so no 0x7E byte here. */
        uint8_t cfg[VFIO_CONFIG_BYTES];
        rng_bytes(&q->devs[d].gen[0].rng, cfg, sizeof cfg);
        for (size_t i = 0; i < sizeof cfg; i++)
            if (cfg[i] == QSEC_FOOTER)
                cfg[i]++;
        qput_header(q, QSEC_FULL, &q->devs[d]);
        qput_marker(q, VFIO_CONFIG_STATE);
        qput(q, cfg, sizeof cfg);
        qput_marker(q, VFIO_END_OF_STATE);
        qput_footer(q, &q->devs[d]);
    }
    qcopy(q, &pos, b->len); /* EOF and the JSON trailer */
}

static int qemu_mode(const workload *wl)
{
    qemu_synth q = {.wl = wl};
    q.base.path = wl->qemu_base;
    q.chunk_max =
        wl->packet_size_set ? (size_t)wl->packet_size : QEMU_CHUNK_DEFAULT;
    int status = read_base(&q);
    if (status == TOOL_OK &&
        wl->devices > UINT32_MAX - 1 - q.base.max_section_id) {
        fprintf(stderr, PROG ": too many devices for BASE's section ids\n");
        status = TOOL_USAGE;
    }
    if (status == TOOL_OK) {
        q.devs = calloc(wl->devices ? wl->devices : 1, sizeof *q.devs);
        q.buf = malloc(q.chunk_max);
        if (!q.devs || !q.buf) {
            fprintf(stderr, PROG ": out of memory\n");
            status = TOOL_USAGE;
        }
    }
    for (uint32_t d = 0; status == TOOL_OK && d < wl->devices; d++)
        if (qemu_dev_init(&q, d) < 0) {
            usage_error("device sizes too large");
            status = TOOL_USAGE;
        }
    if (status == TOOL_OK && wl->devices) {
        q.n_init =
            chunks_for(q.devs[0].gen[MS_PHASE_INITIAL].total, q.chunk_max);
        q.n_mid = chunks_for(q.devs[0].gen[MS_PHASE_MIDDLE].total, q.chunk_max);
        q.init_only = wl->switchover_ack && q.n_init == 0;
    }
    if (status == TOOL_OK)
        status = write_expect_files(&q);
    struct stat os, bs;
    if (status == TOOL_OK && !wl->to_stdout && stat(wl->out_dir, &os) == 0 &&
        stat(wl->qemu_base, &bs) == 0 && os.st_dev == bs.st_dev &&
        os.st_ino == bs.st_ino) {
        /* truncating it would pull BASE's pages from under the mapping */
        fprintf(stderr, PROG ": %s: the output is BASE itself\n", wl->out_dir);
        status = TOOL_USAGE;
    }
    if (status == TOOL_OK) {
        q.out.name = wl->to_stdout ? "<stdout>" : wl->out_dir;
        q.out.f = wl->to_stdout ? stdout : fopen(wl->out_dir, "wb");
        if (!q.out.f)
            status = io_error(wl->out_dir, errno);
    }
    if (status == TOOL_OK) {
        write_qemu_stream(&q);
        errno = 0;
        int failed = ferror(q.out.f);
        if (q.out.f == stdout)
            failed |= fflush(stdout) != 0;
        else
            failed |= fclose(q.out.f) != 0;
        if ((failed || q.out.err) && !q.out.err)
            q.out.err = errno ? errno : EIO;
        if (q.out.err)
            status = io_error(q.out.name, q.out.err);
        else if (q.expect_err)
            status = TOOL_USAGE;
        /* the plan and the generators must agree on every byte */
        for (uint32_t d = 0; status == TOOL_OK && d < wl->devices; d++)
            for (int p = MS_PHASE_INITIAL; p <= MS_PHASE_FINAL; p++)
                if (gen_next(&q.devs[d].gen[p], q.buf, 1) != 0) {
                    fprintf(stderr,
                            PROG ": internal: device %u phase %s "
                                 "not fully written\n",
                            d, phase_file[p]);
                    status = TOOL_INVALID;
                }
    }
    if (q.base.bytes)
        munmap((void *)q.base.bytes, q.base.len);
    free(q.base.part_ends);
    for (uint32_t d = 0; q.devs && d < wl->devices; d++)
        gens_free(q.devs[d].gen);
    free(q.devs);
    free(q.buf);
    return status;
}

/* ---- --multifd: a QEMU multifd channel set -------------------------------
 * DIR/main.mig is the main channel and DIR/channel-K.mig multifd channel K
 * (qemu-multifd.md).  Each channel: the init packet (magic, version 1, VM
 * UUID, id K), a SYNC packet without pages, then RAM packets (up to 128
 * pages of one block: normal pages, then zero pages, QEMU >= 9) and, after
 * the switchover, VFIO device-state packets interleaved with the last RAM
 * pass (QEMU >= 10), and a SYNC packet on every channel at every sync
 * point: header only (pages_alloc 0) as QEMU >= 9.2 sends it, or with
 * pages_alloc 128 and no pages as 9.0 and 9.1 do (--qemu-version).  Packet numbers are global; packets go to the channels in rounds
 * of a fresh shuffle.  Compressed channels keep one zlib/zstd stream each,
 * flushed at every packet end, as QEMU does.
 *
 * The main channel, without BASE (QEMU 10 layout): header, configuration
 * (machine pc-q35-<--qemu-version>, uuid subsection with --uuid), RAM
 * START (block list, MULTIFD_FLUSH, EOS), a VFIO START per device
 * (SETUP_STATE, END_OF_STATE), a RAM PART per pass (MULTIFD_FLUSH, EOS),
 * SWITCHOVER_START (>= 10.0), RAM END (MULTIFD_FLUSH,
 * EOS), a VFIO END per device (END_OF_STATE only: the data went over
 * multifd), a VFIO FULL per device (END_OF_STATE), EOF.  With --qemu BASE:
 * BASE with its PAGE records moved to the channels (ZERO records stay on
 * the main channel, renamed where CONTINUE no longer holds), the VFIO
 * sections inserted as --qemu does, and a sync point at each RAM EOS (or
 * MULTIFD_FLUSH, when BASE has them).
 *
 * Each device's stop-copy image (--final-size, an mlx5 or raw vendor
 * stream) goes out in --packet-size buffers, idx 0..n-1, then the config
 * buffer (idx n, CONFIG_STATE: DEV_CONFIG_STATE, config bytes,
 * END_OF_STATE); devices take turns at random.  All is written as it is
 * made: memory is one RAM packet and one device buffer. */

#define MFD_MAGIC 0x11223344u
#define MFD_PAGE 4096u
#define MFD_SLOTS (512u * 1024 / MFD_PAGE) /* pages a packet holds */
#define MFD_HDR (320u + 8u * MFD_SLOTS)
#define MFD_DEV_HDR 276u
#define MFD_VFIO_HDR 12u
#define MFD_SYNC 0x01u
#define MFD_DEVICE_STATE 0x40u
#define MFD_CONFIG_STATE 0x1u
/* RAM record flags (qemu-main-stream.md section 7) */
#define RAMF_ZERO 0x02u
#define RAMF_MEM_SIZE 0x04u
#define RAMF_EOS 0x10u
#define RAMF_CONTINUE 0x20u
#define RAMF_FLUSH 0x200u
#define QCMD_SWITCHOVER_START 11
#define RAM_SECTION_ID 2u
#define RAM_VERSION 4u
#define MFD_MACHINE "pc-q35-%u.%u" /* the --qemu-version */

typedef struct mfd_chan {
    FILE *f;
    char *path;
    int err;
    z_stream zs;
    int zs_ready;
    ZSTD_CStream *zc;
} mfd_chan;

typedef struct mfd_block {
    char name[256];
    uint64_t len;
    int fd; /* --expect-dir: DIR/ram-K.bin */
} mfd_block;

typedef struct mfd_synth {
    qemu_synth q; /* main channel output, devices, expect files */
    workload wl;  /* the options, precopy sizes cleared */
    mfd_chan *ch;
    uint32_t nch;
    uint32_t *order, order_left;
    uint64_t rng;       /* placement and interleaving */
    uint64_t page_rng;  /* synthetic page contents */
    uint64_t packet_num;
    mfd_block *blocks;
    size_t nblocks, blockcap;
    /* the RAM packet being filled */
    size_t cur;
    uint32_t nnorm, nzero;
    uint64_t norm_off[MFD_SLOTS], zero_off[MFD_SLOTS];
    uint8_t *pages;
    uint8_t *zbuf;
    size_t zcap;
    /* device state */
    uint64_t *dev_idx, *dev_ndata; /* next idx, data buffers */
    uint64_t dev_total, dev_sent;
    uint8_t *dbuf;
    int final;                     /* in the pass devices share */
    uint64_t final_packets, final_sent;
    /* --qemu BASE */
    int base_flush;   /* BASE marks sync points with MULTIFD_FLUSH */
    int in_ram;       /* inside a RAM section of BASE */
    int ram_type;     /* its type */
    int main_block;   /* the main channel's current RAM block, -1: none */
    uint64_t pos;     /* BASE bytes copied so far */
    int failed;       /* a problem was reported */
    uint64_t end_packets; /* RAM packets BASE's END section makes */
    int end_block;
    uint32_t end_fill;
} mfd_synth;

static void chan_put(mfd_chan *c, const void *p, size_t n)
{
    if (c->err || n == 0)
        return;
    errno = 0;
    if (fwrite(p, 1, n, c->f) != n)
        c->err = errno ? errno : EIO;
}

static uint32_t mfd_next_channel(mfd_synth *m)
{
    uint32_t n = m->nch;
    if (m->order_left == 0) {
        for (uint32_t i = 0; i < n; i++)
            m->order[i] = i;
        for (uint32_t i = n - 1; i > 0; i--) {
            uint32_t j = (uint32_t)rng_below(&m->rng, (uint64_t)i + 1);
            uint32_t t = m->order[i];
            m->order[i] = m->order[j];
            m->order[j] = t;
        }
        m->order_left = n;
    }
    return m->order[n - m->order_left--];
}

static void mfd_expect_page(mfd_synth *m, size_t block, uint64_t off,
                            const uint8_t *data)
{
    static const uint8_t zero[MFD_PAGE];
    mfd_block *b = &m->blocks[block];
    if (b->fd < 0 || m->q.expect_err)
        return;
    const uint8_t *p = data ? data : zero;
    size_t n = MFD_PAGE;
    while (n) {
        ssize_t k = pwrite(b->fd, p, n, (off_t)(off + MFD_PAGE - n));
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            m->q.expect_err = errno ? errno : EIO;
            io_error(m->wl.expect_dir, m->q.expect_err);
            return;
        }
        p += k;
        n -= (size_t)k;
    }
}

/* Compress n pages with the channel's stream; the packet's payload ends
 * with a sync flush.  Returns its length, or 0 after an error. */
static size_t mfd_compress(mfd_synth *m, mfd_chan *c, const uint8_t *pages,
                           uint32_t n)
{
    size_t len = 0;
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *pg = pages + (size_t)i * MFD_PAGE;
        int last = i + 1 == n;
        if (m->wl.multifd_comp == 0x02) {
            c->zs.next_in = (Bytef *)(uintptr_t)pg;
            c->zs.avail_in = MFD_PAGE;
            do {
                c->zs.next_out = m->zbuf + len;
                c->zs.avail_out = (uInt)(m->zcap - len);
                int rc = deflate(&c->zs, last ? Z_SYNC_FLUSH : Z_NO_FLUSH);
                if (rc != Z_OK && rc != Z_BUF_ERROR)
                    return 0;
                len = m->zcap - c->zs.avail_out;
            } while (c->zs.avail_in || (last && c->zs.avail_out == 0));
        } else {
            ZSTD_inBuffer in = {pg, MFD_PAGE, 0};
            size_t left;
            do {
                ZSTD_outBuffer out = {m->zbuf, m->zcap, len};
                left = ZSTD_compressStream2(
                    c->zc, &out, &in, last ? ZSTD_e_flush : ZSTD_e_continue);
                if (ZSTD_isError(left))
                    return 0;
                len = out.pos;
            } while (in.pos < in.size || (last && left));
        }
    }
    return len;
}

/* One RAM packet header: 320 bytes, then the offset slots. */
static void mfd_ram_header(uint8_t *h, uint32_t flags, uint32_t normal,
                           uint32_t zero, uint32_t nps, uint64_t num,
                           const char *block, const uint64_t *norm_off,
                           const uint64_t *zero_off)
{
    memset(h, 0, MFD_HDR);
    tool_put_be32(h, MFD_MAGIC);
    tool_put_be32(h + 4, 1);
    tool_put_be32(h + 8, flags);
    tool_put_be32(h + 12, MFD_SLOTS);
    tool_put_be32(h + 16, normal);
    tool_put_be32(h + 20, nps);
    tool_put_be64(h + 24, num);
    tool_put_be32(h + 32, zero);
    if (block)
        memcpy(h + 64, block, strlen(block)); /* < 256, NUL padded */
    for (uint32_t i = 0; i < normal; i++)
        tool_put_be64(h + 320 + 8 * (size_t)i, norm_off[i]);
    for (uint32_t i = 0; i < zero; i++)
        tool_put_be64(h + 320 + 8 * ((size_t)normal + i), zero_off[i]);
}

static void mfd_device_buffer(mfd_synth *m);

/* Device buffers due after final-pass RAM packet k of final_packets:
 * spread evenly over the pass, the rest after it. */
static void mfd_devices_due(mfd_synth *m)
{
    uint64_t due = m->final_packets
                       ? m->dev_total / (m->final_packets + 1) * m->final_sent +
                             m->dev_total % (m->final_packets + 1) *
                                 m->final_sent / (m->final_packets + 1)
                       : 0;
    while (m->dev_sent < due && m->dev_sent < m->dev_total && !m->failed)
        mfd_device_buffer(m);
}

/* Send the RAM packet being filled, if it has pages. */
static void mfd_flush(mfd_synth *m)
{
    if (m->nnorm + m->nzero == 0)
        return;
    mfd_chan *c = &m->ch[mfd_next_channel(m)];
    size_t plen = (size_t)m->nnorm * MFD_PAGE;
    const uint8_t *payload = m->pages;
    /* QEMU >= 9 flags every packet with pages (zero pages only, too)
     * with the method; the receiver checks it */
    uint32_t flags = (uint32_t)m->wl.multifd_comp;
    if (m->wl.multifd_comp && m->nnorm) {
        plen = mfd_compress(m, c, m->pages, m->nnorm);
        if (plen == 0) {
            fprintf(stderr, PROG ": internal: %s failed\n",
                    m->wl.multifd_comp == 0x02 ? "deflate" : "zstd");
            m->failed = 1;
        }
        payload = m->zbuf;
    }
    uint8_t *h = m->dbuf; /* free between device buffers */
    mfd_ram_header(h, flags, m->nnorm, m->nzero, (uint32_t)plen,
                   m->packet_num++, m->blocks[m->cur].name, m->norm_off,
                   m->zero_off);
    chan_put(c, h, MFD_HDR);
    chan_put(c, payload, plen);
    m->nnorm = m->nzero = 0;
    if (m->final) {
        m->final_sent++;
        mfd_devices_due(m);
    }
}

/* A page (data NULL: a zero page) into the packet being filled. */
static void mfd_page(mfd_synth *m, size_t block, uint64_t off,
                     const uint8_t *data)
{
    if (m->cur != block || m->nnorm + m->nzero == MFD_SLOTS)
        mfd_flush(m);
    m->cur = block;
    if (data) {
        memcpy(m->pages + (size_t)m->nnorm * MFD_PAGE, data, MFD_PAGE);
        m->norm_off[m->nnorm++] = off;
    } else {
        m->zero_off[m->nzero++] = off;
    }
    mfd_expect_page(m, block, off, data);
}

/* A sync point: pending pages, then a SYNC packet on every channel.
 * QEMU 9.0 and 9.1 fill its RAM part (pages_alloc, no pages); from 9.2
 * on it is header only: pages_alloc 0 too. */
static void mfd_sync(mfd_synth *m)
{
    mfd_flush(m);
    uint8_t *h = m->dbuf;
    for (uint32_t k = 0; k < m->nch; k++) {
        mfd_ram_header(h, MFD_SYNC, 0, 0, 0, m->packet_num++, NULL, NULL,
                       NULL);
        if (m->wl.qemu_version >= 902)
            tool_put_be32(h + 12, 0); /* pages_alloc */
        chan_put(&m->ch[k], h, MFD_HDR);
    }
}

/* The next buffer of a device picked at random among those not done. */
static void mfd_device_buffer(mfd_synth *m)
{
    uint32_t nd = m->wl.devices, left = 0, pick;
    for (uint32_t d = 0; d < nd; d++)
        left += m->dev_idx[d] <= m->dev_ndata[d];
    if (left == 0)
        return;
    pick = (uint32_t)rng_below(&m->rng, left);
    uint32_t d = 0;
    for (;; d++)
        if (m->dev_idx[d] <= m->dev_ndata[d] && pick-- == 0)
            break;
    qemu_dev *dev = &m->q.devs[d];
    uint8_t *p = m->dbuf + MFD_DEV_HDR + MFD_VFIO_HDR;
    uint64_t idx = m->dev_idx[d]++;
    int config = idx == m->dev_ndata[d];
    size_t n;
    if (!config) {
        n = gen_next(&dev->gen[MS_PHASE_FINAL], p, m->q.chunk_max);
        expect_append(&m->q, d, MS_PHASE_FINAL, p, n, 0);
    } else {
        /* serialized as in the main stream: DEV_CONFIG_STATE, the config
         * (a stand-in for the PCI config VMState), END_OF_STATE */
        put_be64(p, VFIO_MARKER(VFIO_CONFIG_STATE));
        rng_bytes(&dev->gen[0].rng, p + 8, VFIO_CONFIG_BYTES);
        put_be64(p + 8 + VFIO_CONFIG_BYTES, VFIO_MARKER(VFIO_END_OF_STATE));
        n = 16 + VFIO_CONFIG_BYTES;
        expect_append(&m->q, d, 0, p, n, 0);
    }
    uint8_t *h = m->dbuf;
    memset(h, 0, MFD_DEV_HDR);
    tool_put_be32(h, MFD_MAGIC);
    tool_put_be32(h + 4, 1);
    tool_put_be32(h + 8, MFD_DEVICE_STATE);
    memcpy(h + 12, dev->idstr, strlen(dev->idstr));
    tool_put_be32(h + 268, 0); /* instance_id */
    tool_put_be32(h + 272, (uint32_t)(MFD_VFIO_HDR + n));
    tool_put_be32(h + MFD_DEV_HDR, 0); /* VFIO buffer version */
    tool_put_be32(h + MFD_DEV_HDR + 4, (uint32_t)idx);
    tool_put_be32(h + MFD_DEV_HDR + 8, config ? MFD_CONFIG_STATE : 0);
    chan_put(&m->ch[mfd_next_channel(m)], h, MFD_DEV_HDR + MFD_VFIO_HDR + n);
    m->dev_sent++;
}

static int mfd_add_block(mfd_synth *m, const char *name, uint64_t len)
{
    if (m->nblocks == m->blockcap) {
        size_t cap = m->blockcap ? 2 * m->blockcap : 8;
        mfd_block *b = realloc(m->blocks, cap * sizeof *b);
        if (!b) {
            fprintf(stderr, PROG ": out of memory\n");
            return -1;
        }
        m->blocks = b;
        m->blockcap = cap;
    }
    mfd_block *b = &m->blocks[m->nblocks++];
    snprintf(b->name, sizeof b->name, "%s", name);
    b->len = len;
    b->fd = -1;
    return 0;
}

/* --expect-dir: DIR/ram (one line per block: K USED_LENGTH NAME) and the
 * sparse files DIR/ram-K.bin the pages are written into. */
static int mfd_expect_ram(mfd_synth *m)
{
    const char *dir = m->wl.expect_dir;
    if (!dir)
        return TOOL_OK;
    char path[4096];
    snprintf(path, sizeof path, "%s/ram", dir);
    FILE *f = fopen(path, "w");
    if (!f)
        return io_error(path, errno);
    for (size_t k = 0; k < m->nblocks; k++)
        fprintf(f, "%zu %llu %s\n", k, (unsigned long long)m->blocks[k].len,
                m->blocks[k].name);
    if (ferror(f) | (fclose(f) != 0))
        return io_error(path, errno ? errno : EIO);
    for (size_t k = 0; k < m->nblocks; k++) {
        snprintf(path, sizeof path, "%s/ram-%zu.bin", dir, k);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0666);
        if (fd < 0 || ftruncate(fd, (off_t)m->blocks[k].len) != 0) {
            int err = errno;
            if (fd >= 0)
                close(fd);
            return io_error(path, err);
        }
        m->blocks[k].fd = fd;
    }
    /* the config buffers' files (write_expect_files makes the others) */
    for (uint32_t d = 0; d < m->wl.devices; d++)
        expect_append(&m->q, d, 0, NULL, 0, 1);
    return m->q.expect_err ? TOOL_USAGE : TOOL_OK;
}

/* ---- the main channel, without BASE ---- */

static void qput_be64(qemu_synth *q, uint64_t v)
{
    uint8_t b[8];
    put_be64(b, v);
    qput(q, b, 8);
}

static void qput_counted(qemu_synth *q, const char *s)
{
    size_t n = strlen(s);
    qput_u8(q, (uint8_t)n);
    qput(q, s, n);
}

static void qput_ram_section(qemu_synth *q, uint8_t type)
{
    qput_u8(q, type);
    qput_be32(q, RAM_SECTION_ID);
    if (type == QSEC_START) {
        qput_counted(q, "ram");
        qput_be32(q, 0);
        qput_be32(q, RAM_VERSION);
    }
}

static void qput_ram_end(qemu_synth *q)
{
    qput_be64(q, RAMF_FLUSH);
    qput_be64(q, RAMF_EOS);
    qput_u8(q, QSEC_FOOTER);
    qput_be32(q, RAM_SECTION_ID);
}

/* Which pages pass p sends: all in the first, about one in eight after
 * (a stream of its own, so the last pass can be counted beforehand). */
static uint64_t pass_rng(const mfd_synth *m, uint64_t pass)
{
    uint64_t r = m->wl.seed * 0xD1B54A32D192ED03ull +
                 (pass + 1) * 0x9E3779B97F4A7C15ull + 0x5A17;
    rng_next(&r);
    return r;
}

static int pass_sends(uint64_t pass, uint64_t *rng)
{
    return pass == 0 || rng_below(rng, 8) == 0;
}

static uint64_t pass_packets(const mfd_synth *m, uint64_t pass)
{
    uint64_t r = pass_rng(m, pass), packets = 0;
    for (size_t k = 0; k < m->nblocks; k++) {
        uint64_t n = 0, pages = m->blocks[k].len / MFD_PAGE;
        for (uint64_t i = 0; i < pages; i++)
            n += (uint64_t)pass_sends(pass, &r);
        packets += n / MFD_SLOTS + (n % MFD_SLOTS != 0);
    }
    return packets;
}

static void ram_pass(mfd_synth *m, uint64_t pass)
{
    uint64_t r = pass_rng(m, pass);
    uint8_t page[MFD_PAGE];
    for (size_t k = 0; k < m->nblocks && !m->failed; k++) {
        uint64_t pages = m->blocks[k].len / MFD_PAGE;
        for (uint64_t i = 0; i < pages; i++) {
            if (!pass_sends(pass, &r))
                continue;
            /* zero pages: many at first, fewer once the guest ran */
            int zero = rng_below(&m->page_rng, 100) < (pass == 0 ? 45u : 15u);
            if (!zero)
                fill_state(&m->page_rng, page, MFD_PAGE);
            mfd_page(m, k, i * MFD_PAGE, zero ? NULL : page);
        }
    }
}

static void vfio_sections(mfd_synth *m, uint8_t type)
{
    for (uint32_t d = 0; d < m->wl.devices; d++) {
        qput_header(&m->q, type, &m->q.devs[d]);
        if (type == QSEC_START)
            qput_marker(&m->q, VFIO_SETUP_STATE);
        qput_marker(&m->q, VFIO_END_OF_STATE);
        qput_footer(&m->q, &m->q.devs[d]);
    }
}

static void mfd_final_pass_begin(mfd_synth *m, uint64_t packets)
{
    m->final = 1;
    m->final_packets = packets;
    m->final_sent = 0;
}

static void mfd_final_pass_end(mfd_synth *m)
{
    mfd_flush(m);
    while (m->dev_sent < m->dev_total && !m->failed)
        mfd_device_buffer(m);
    m->final = 0;
}

static void write_synthetic_main(mfd_synth *m)
{
    qemu_synth *q = &m->q;
    qput_be32(q, 0x5145564Du); /* QEVM */
    qput_be32(q, 3);
    char machine[32];
    snprintf(machine, sizeof machine, MFD_MACHINE, m->wl.qemu_version / 100,
             m->wl.qemu_version % 100);
    qput_u8(q, 0x07); /* configuration */
    qput_be32(q, (uint32_t)strlen(machine));
    qput(q, machine, strlen(machine));
    if (m->wl.has_uuid) {
        qput_u8(q, 0x05);
        qput_counted(q, "configuration/uuid");
        qput_be32(q, 1);
        qput(q, m->wl.uuid, 16);
    }
    uint64_t total = 0;
    for (size_t k = 0; k < m->nblocks; k++)
        total += m->blocks[k].len;
    qput_ram_section(q, QSEC_START);
    qput_be64(q, total | RAMF_MEM_SIZE);
    for (size_t k = 0; k < m->nblocks; k++) {
        qput_counted(q, m->blocks[k].name);
        qput_be64(q, m->blocks[k].len);
    }
    qput_ram_end(q);
    mfd_sync(m); /* ram_save_setup's */
    vfio_sections(m, QSEC_START);
    uint64_t passes = m->wl.ram_passes;
    for (uint64_t p = 0; p + 1 < passes && !m->failed; p++) {
        ram_pass(m, p);
        mfd_sync(m);
        qput_ram_section(q, QSEC_PART);
        qput_ram_end(q);
    }
    /* the guest stops: the last pass and the devices' stop-copy state
     * (SWITCHOVER_START exists from QEMU 10.0 on) */
    if (m->wl.qemu_version >= 1000) {
        qput_u8(q, 0x08);
        qput_be32(q, (uint32_t)QCMD_SWITCHOVER_START << 16); /* cmd, len 0 */
    }
    mfd_final_pass_begin(m, pass_packets(m, passes - 1));
    ram_pass(m, passes - 1);
    mfd_final_pass_end(m);
    mfd_sync(m);
    qput_ram_section(q, QSEC_END);
    qput_ram_end(q);
    vfio_sections(m, QSEC_END);
    vfio_sections(m, QSEC_FULL);
    qput_u8(q, 0x00); /* EOF */
}

/* ---- the main channel from BASE ---- */

/* Feed BASE through a reader; fn sees every event. */
static int base_pass(mfd_synth *m, int (*fn)(mfd_synth *, const ms_event *))
{
    qemu_base *b = &m->q.base;
    ms_reader *r = base_reader(b);
    if (!r)
        return TOOL_USAGE;
    int status = TOOL_OK;
    ms_event ev;
    int rc = ms_reader_input(r, b->bytes, b->len) < 0 ? MS_NEXT_ERROR
                                                      : MS_NEXT_EVENT;
    while (rc == MS_NEXT_EVENT && status == TOOL_OK && !m->failed)
        if ((rc = ms_reader_next(r, &ev)) == MS_NEXT_EVENT)
            status = fn(m, &ev);
    if (status == TOOL_OK && !m->failed &&
        (rc == MS_NEXT_ERROR || ms_reader_finish(r) < 0)) {
        tool_print_problem(stderr, b->path, ms_reader_error(r));
        status = TOOL_INVALID;
    }
    ms_reader_free(r);
    return m->failed && status == TOOL_OK ? TOOL_USAGE : status;
}

static int block_index(const mfd_synth *m, const char *name)
{
    for (size_t k = 0; k < m->nblocks; k++)
        if (strcmp(m->blocks[k].name, name) == 0)
            return (int)k;
    return -1;
}

/* First pass: the block list, the pages of the END section (to spread the
 * device buffers over them), and records the mode cannot move. */
static int base_scan(mfd_synth *m, const ms_event *ev)
{
    switch (ev->kind) {
    case MS_EV_SECTION:
        m->in_ram = strcmp(ev->u.section.idstr, "ram") == 0;
        m->ram_type = ev->u.section.type;
        break;
    case MS_EV_SECTION_FOOTER: m->in_ram = 0; break;
    case MS_EV_RAM_BLOCK:
        if (block_index(m, ev->u.ram.block) < 0 &&
            mfd_add_block(m, ev->u.ram.block, ev->u.ram.used_length) < 0)
            return TOOL_USAGE;
        break;
    case MS_EV_RAM_MARKER:
        if (ev->u.ram.record == MS_RAM_MULTIFD_FLUSH)
            m->base_flush = 1;
        break;
    case MS_EV_RAM_PAGE:
        if (ev->u.ram.record != MS_RAM_PAGE &&
            ev->u.ram.record != MS_RAM_ZERO)
            return base_problem(&m->q.base, ev->offset, MS_ERR_FORMAT_UNSUPPORTED,
                                "--multifd moves PAGE records to the "
                                "channels; BASE has XBZRLE or compressed "
                                "pages");
        if (ev->u.ram.page_size != MFD_PAGE)
            return base_problem(&m->q.base, ev->offset, MS_ERR_FORMAT_UNSUPPORTED,
                                "--multifd writes 4 KiB pages; BASE's page "
                                "size differs");
        if (m->in_ram && m->ram_type == MS_QSEC_END &&
            ev->u.ram.record == MS_RAM_PAGE) {
            int k = block_index(m, ev->u.ram.block);
            if (k != m->end_block || m->end_fill == MFD_SLOTS) {
                m->end_packets++;
                m->end_fill = 0;
            }
            m->end_block = k;
            m->end_fill++;
        }
        break;
    default: break;
    }
    return TOOL_OK;
}

static void base_copy(mfd_synth *m, uint64_t to)
{
    qcopy(&m->q, &m->pos, to);
}

/* Second pass: copy BASE, pages to the channels, ZERO records renamed,
 * sync points, the VFIO sections inserted. */
static int base_rewrite(mfd_synth *m, const ms_event *ev)
{
    qemu_synth *q = &m->q;
    switch (ev->kind) {
    case MS_EV_SECTION:
        m->in_ram = strcmp(ev->u.section.idstr, "ram") == 0;
        m->ram_type = ev->u.section.type;
        if (m->in_ram && m->ram_type == MS_QSEC_END)
            mfd_final_pass_begin(m, m->end_packets);
        break;
    case MS_EV_RAM_PAGE: {
        int k = block_index(m, ev->u.ram.block);
        if (k < 0)
            return base_problem(&q->base, ev->offset, MS_ERR_RAM,
                                "page for a block not in the block list");
        base_copy(m, ev->offset);
        m->pos = ev->offset + ev->length; /* the record is rewritten */
        if (ev->u.ram.record == MS_RAM_PAGE) {
            mfd_page(m, (size_t)k, ev->u.ram.offset, ev->u.ram.data);
            break;
        }
        /* ZERO stays here; CONTINUE only where it still holds */
        int cont = m->main_block == k;
        qput_be64(q, ev->u.ram.offset | RAMF_ZERO | (cont ? RAMF_CONTINUE : 0));
        if (!cont)
            qput_counted(q, m->blocks[k].name);
        qput_u8(q, 0);
        m->main_block = k;
        mfd_expect_page(m, (size_t)k, ev->u.ram.offset, NULL);
        break;
    }
    case MS_EV_RAM_MARKER:
        /* a sync point; the END section's EOS is one in any case (the
         * device buffers must all be out before it) */
        if (ev->u.ram.record ==
                (m->base_flush ? MS_RAM_MULTIFD_FLUSH : MS_RAM_EOS) ||
            (m->final && ev->u.ram.record == MS_RAM_EOS)) {
            if (m->final)
                mfd_final_pass_end(m);
            mfd_sync(m);
        }
        break;
    case MS_EV_SECTION_FOOTER:
        if (m->in_ram && (m->ram_type == MS_QSEC_START ||
                          m->ram_type == MS_QSEC_END)) {
            base_copy(m, ev->offset + 5);
            vfio_sections(m, m->ram_type == MS_QSEC_START ? QSEC_START
                                                          : QSEC_END);
        }
        m->in_ram = 0;
        break;
    case MS_EV_QEMU_EOF:
        base_copy(m, ev->offset);
        vfio_sections(m, QSEC_FULL);
        break;
    default: break;
    }
    return TOOL_OK;
}

/* ---- setup and the run ---- */

static int mfd_open_channels(mfd_synth *m)
{
    const workload *wl = &m->wl;
    if (mkdir(wl->out_dir, 0777) != 0 && errno != EEXIST)
        return io_error(wl->out_dir, errno);
    size_t len = strlen(wl->out_dir) + 32;
    for (uint32_t k = 0; k < m->nch; k++) {
        mfd_chan *c = &m->ch[k];
        if (!(c->path = malloc(len)))
            return io_error(wl->out_dir, ENOMEM);
        snprintf(c->path, len, "%s/channel-%u.mig", wl->out_dir, k);
        if (!(c->f = fopen(c->path, "wb")))
            return io_error(c->path, errno);
        if (wl->multifd_comp == 0x02) {
            /* QEMU's default multifd-zlib-level / multifd-zstd-level: 1 */
            if (deflateInit(&c->zs, 1) != Z_OK)
                return io_error(c->path, ENOMEM);
            c->zs_ready = 1;
        } else if (wl->multifd_comp == 0x04) {
            if (!(c->zc = ZSTD_createCStream()) ||
                ZSTD_isError(
                    ZSTD_CCtx_setParameter(c->zc, ZSTD_c_compressionLevel, 1)))
                return io_error(c->path, ENOMEM);
        }
        /* the init packet */
        uint8_t init[64] = {0};
        tool_put_be32(init, MFD_MAGIC);
        tool_put_be32(init + 4, 1);
        if (wl->has_uuid)
            memcpy(init + 8, wl->uuid, 16);
        init[24] = (uint8_t)k;
        chan_put(c, init, sizeof init);
    }
    char *mp = malloc(len);
    if (!mp)
        return io_error(wl->out_dir, ENOMEM);
    snprintf(mp, len, "%s/main.mig", wl->out_dir);
    m->q.out.name = mp;
    if (!(m->q.out.f = fopen(mp, "wb")))
        return io_error(mp, errno);
    return TOOL_OK;
}

static int mfd_close(mfd_synth *m, int status)
{
    for (uint32_t k = 0; m->ch && k < m->nch; k++) {
        mfd_chan *c = &m->ch[k];
        if (c->f) {
            errno = 0;
            int failed = ferror(c->f) | (fclose(c->f) != 0);
            if (failed && !c->err)
                c->err = errno ? errno : EIO;
        }
        if (c->err && status == TOOL_OK)
            status = io_error(c->path, c->err);
        if (c->zs_ready)
            deflateEnd(&c->zs);
        ZSTD_freeCStream(c->zc);
        free(c->path);
    }
    if (m->q.out.f) {
        errno = 0;
        int failed = ferror(m->q.out.f) | (fclose(m->q.out.f) != 0);
        if (failed && !m->q.out.err)
            m->q.out.err = errno ? errno : EIO;
    }
    if (m->q.out.err && status == TOOL_OK)
        status = io_error(m->q.out.name, m->q.out.err);
    free((char *)m->q.out.name);
    for (size_t k = 0; k < m->nblocks; k++)
        if (m->blocks[k].fd >= 0 && close(m->blocks[k].fd) != 0 &&
            status == TOOL_OK)
            status = io_error(m->wl.expect_dir, errno);
    if (m->q.expect_err && status == TOOL_OK)
        status = TOOL_USAGE;
    if (m->q.base.bytes)
        munmap((void *)m->q.base.bytes, m->q.base.len);
    free(m->q.base.part_ends);
    for (uint32_t d = 0; m->q.devs && d < m->wl.devices; d++)
        gens_free(m->q.devs[d].gen);
    free(m->q.devs);
    free(m->ch);
    free(m->order);
    free(m->blocks);
    free(m->pages);
    free(m->zbuf);
    free(m->dbuf);
    free(m->dev_idx);
    free(m->dev_ndata);
    return status;
}

static int multifd_mode(const workload *opts)
{
    mfd_synth *m = calloc(1, sizeof *m);
    if (!m) {
        fprintf(stderr, PROG ": out of memory\n");
        return TOOL_USAGE;
    }
    m->wl = *opts;
    m->wl.initial_size = 0; /* no precopy images: stop-copy only */
    m->wl.middle_count = 0;
    m->wl.no_precopy = 1;
    m->q.wl = &m->wl;
    m->q.chunk_max = opts->packet_size_set ? (size_t)opts->packet_size
                                           : QEMU_CHUNK_DEFAULT;
    m->nch = opts->multifd;
    m->rng = opts->seed * 0x2545F4914F6CDD1Dull + 0x6D66;
    rng_next(&m->rng);
    m->page_rng = opts->seed * 0x9E3779B97F4A7C15ull + 0x7061;
    rng_next(&m->page_rng);
    m->main_block = -1;
    m->end_block = -1;
    int status = TOOL_OK;
    uint32_t nd = m->wl.devices;
    m->ch = calloc(m->nch, sizeof *m->ch);
    m->order = calloc(m->nch, sizeof *m->order);
    m->pages = malloc((size_t)MFD_SLOTS * MFD_PAGE);
    m->zcap = m->wl.multifd_comp == 0x04
                  ? ZSTD_compressBound((size_t)MFD_SLOTS * MFD_PAGE) + 4096
                  : compressBound((uLong)MFD_SLOTS * MFD_PAGE) + 4096;
    m->zbuf = malloc(m->zcap);
    size_t dbuf = m->q.chunk_max + MFD_DEV_HDR + MFD_VFIO_HDR;
    m->dbuf = malloc(dbuf > MFD_HDR ? dbuf : MFD_HDR);
    m->q.devs = calloc(nd ? nd : 1, sizeof *m->q.devs);
    m->dev_idx = calloc(nd ? nd : 1, sizeof *m->dev_idx);
    m->dev_ndata = calloc(nd ? nd : 1, sizeof *m->dev_ndata);
    if (!m->ch || !m->order || !m->pages || !m->zbuf || !m->dbuf ||
        !m->q.devs || !m->dev_idx || !m->dev_ndata) {
        fprintf(stderr, PROG ": out of memory\n");
        status = TOOL_USAGE;
    }
    if (status == TOOL_OK && m->wl.qemu_base) {
        m->q.base.path = m->wl.qemu_base;
        status = read_base(&m->q);
        if (status == TOOL_OK)
            status = base_pass(m, base_scan);
        if (status == TOOL_OK &&
            nd > UINT32_MAX - 1 - m->q.base.max_section_id) {
            fprintf(stderr, PROG ": too many devices for BASE's section "
                            "ids\n");
            status = TOOL_USAGE;
        }
    } else if (status == TOOL_OK) {
        /* guest RAM, a BIOS, and a ROM whose name has slashes (256 KiB
         * and 128 KiB, smaller for a small --ram-size) */
        uint64_t bios = m->wl.ram_size / 16 / MFD_PAGE * MFD_PAGE;
        uint64_t rom = m->wl.ram_size / 32 / MFD_PAGE * MFD_PAGE;
        bios = bios < MFD_PAGE ? MFD_PAGE : bios > 256 << 10 ? 256 << 10 : bios;
        rom = rom < MFD_PAGE ? MFD_PAGE : rom > 128 << 10 ? 128 << 10 : rom;
        m->q.base.max_section_id = RAM_SECTION_ID;
        if (mfd_add_block(m, "pc.ram", m->wl.ram_size) < 0 ||
            mfd_add_block(m, "pc.bios", bios) < 0 ||
            mfd_add_block(m, "/rom@etc/acpi/tables", rom) < 0)
            status = TOOL_USAGE;
    }
    for (uint32_t d = 0; status == TOOL_OK && d < nd; d++) {
        if (qemu_dev_init(&m->q, d) < 0) {
            usage_error("device sizes too large");
            status = TOOL_USAGE;
            break;
        }
        m->dev_ndata[d] =
            chunks_for(m->q.devs[d].gen[MS_PHASE_FINAL].total, m->q.chunk_max);
        if (m->dev_ndata[d] >= 0xffffffffull) {
            usage_error("too many device-state buffers: raise --packet-size");
            status = TOOL_USAGE;
            break;
        }
        m->dev_total += m->dev_ndata[d] + 1;
    }
    if (status == TOOL_OK)
        status = write_expect_files(&m->q);
    if (status == TOOL_OK)
        status = mfd_expect_ram(m);
    if (status == TOOL_OK)
        status = mfd_open_channels(m);
    if (status == TOOL_OK) {
        if (m->wl.qemu_base) {
            status = base_pass(m, base_rewrite);
            base_copy(m, m->q.base.len); /* EOF and the JSON trailer */
        } else {
            write_synthetic_main(m);
        }
        if (m->failed && status == TOOL_OK)
            status = TOOL_USAGE;
    }
    /* every byte of every device went out */
    for (uint32_t d = 0; status == TOOL_OK && d < nd; d++)
        if (m->dev_idx[d] != m->dev_ndata[d] + 1 ||
            gen_next(&m->q.devs[d].gen[MS_PHASE_FINAL], m->dbuf, 1) != 0) {
            fprintf(stderr, PROG ": internal: device %u not fully written\n",
                    d);
            status = TOOL_INVALID;
        }
    status = mfd_close(m, status);
    free(m);
    return status;
}

/* --raw FILE: one device's payload as read from its data fd, every phase
 * in order; with --expect-dir, DIR/final-offset says where STOP_COPY
 * began (for migstream-dump --final-offset). */
static int raw_mode(const workload *wl)
{
    dev_gen gen[4];
    if (gens_init(wl, 0, gen, 0) < 0) {
        gens_free(gen);
        usage_error("device sizes too large for --kind %s",
                    ms_payload_kind_name((uint32_t)wl->kind));
        return TOOL_USAGE;
    }
    int status = TOOL_OK;
    uint64_t final_offset =
        gen[MS_PHASE_INITIAL].total + gen[MS_PHASE_MIDDLE].total;
    if (wl->expect_dir) {
        char path[4096];
        if (mkdir(wl->expect_dir, 0777) != 0 && errno != EEXIST)
            status = io_error(wl->expect_dir, errno);
        snprintf(path, sizeof path, "%s/final-offset", wl->expect_dir);
        FILE *f = status == TOOL_OK ? fopen(path, "w") : NULL;
        if (status == TOOL_OK && !f)
            status = io_error(path, errno);
        if (f) {
            fprintf(f, "%llu\n", (unsigned long long)final_offset);
            if (ferror(f) | (fclose(f) != 0))
                status = io_error(path, errno ? errno : EIO);
        }
    }
    FILE *out = NULL;
    if (status == TOOL_OK && !(out = fopen(wl->raw_file, "wb")))
        status = io_error(wl->raw_file, errno);
    uint8_t *buf = status == TOOL_OK ? malloc(QEMU_CHUNK_DEFAULT) : NULL;
    if (status == TOOL_OK && !buf) {
        fprintf(stderr, PROG ": out of memory\n");
        status = TOOL_USAGE;
    }
    for (int p = MS_PHASE_INITIAL; status == TOOL_OK && p <= MS_PHASE_FINAL;
         p++) {
        size_t n;
        while ((n = gen_next(&gen[p], buf, QEMU_CHUNK_DEFAULT)) > 0)
            if (fwrite(buf, 1, n, out) != n) {
                status = io_error(wl->raw_file, errno ? errno : EIO);
                break;
            }
    }
    if (out) {
        errno = 0;
        int failed = ferror(out) | (fclose(out) != 0);
        if (failed && status == TOOL_OK)
            status = io_error(wl->raw_file, errno ? errno : EIO);
    }
    free(buf);
    gens_free(gen);
    return status;
}

/* ---- --mapped-ram: a QEMU >= 9.0 mapped-ram file ----------------------------
 * The layout of spec/qemu-main.md "Mapped-ram files", written the way QEMU
 * does: per block the entry and its MappedRamHeader, then the stream goes
 * on at pages_offset + used_length (the pages region stays a hole until
 * pages land in it with pwrite); the bitmaps are written at the end. */
#define MR_PAGE 4096u
#define MR_ALIGN 0x100000u /* MAPPED_RAM_FILE_OFFSET_ALIGNMENT */
#define MR_HDR_VERSION 1u
#define MR_HDR_BYTES 28u

typedef struct mr_block {
    const char *name;
    uint64_t len, bitmap_off, pages_off;
    uint8_t *bitmap; /* bit i = page i (little-endian host longs) */
    int expect_fd;
} mr_block;

typedef struct mr_synth {
    int fd;
    const char *path;
    uint64_t pos; /* where the stream's next byte goes */
    int err;
    mr_block blocks[3];
    size_t nblocks;
    uint64_t rng;
} mr_synth;

static void mr_pwrite(mr_synth *m, const void *p, size_t n, uint64_t at)
{
    const uint8_t *b = p;
    while (n && !m->err) {
        ssize_t w = pwrite(m->fd, b, n, (off_t)at);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            m->err = w < 0 ? errno : EIO;
            return;
        }
        b += w;
        n -= (size_t)w;
        at += (uint64_t)w;
    }
}

static void mr_put(mr_synth *m, const void *p, size_t n)
{
    mr_pwrite(m, p, n, m->pos);
    m->pos += n;
}

static void mr_u8(mr_synth *m, uint8_t v) { mr_put(m, &v, 1); }
static void mr_be32(mr_synth *m, uint32_t v)
{
    uint8_t b[4];
    put_be32(b, v);
    mr_put(m, b, 4);
}
static void mr_be64(mr_synth *m, uint64_t v)
{
    uint8_t b[8];
    put_be64(b, v);
    mr_put(m, b, 8);
}
static void mr_counted(mr_synth *m, const char *s)
{
    mr_u8(m, (uint8_t)strlen(s));
    mr_put(m, s, strlen(s));
}

static void mr_section(mr_synth *m, uint8_t type)
{
    mr_u8(m, type);
    mr_be32(m, RAM_SECTION_ID);
    if (type == QSEC_START) {
        mr_counted(m, "ram");
        mr_be32(m, 0);
        mr_be32(m, RAM_VERSION);
    }
}

/* EOS and the footer: the RAM section carries nothing else. */
static void mr_section_end(mr_synth *m)
{
    mr_be64(m, RAMF_EOS);
    mr_u8(m, QSEC_FOOTER);
    mr_be32(m, RAM_SECTION_ID);
}

/* Header, configuration listing mapped-ram, the START section with the
 * block list: each entry's header reserves its bitmap and pages. */
static void mr_start(mr_synth *m)
{
    mr_be32(m, 0x5145564Du); /* "QEVM" */
    mr_be32(m, 3);
    mr_u8(m, 0x07); /* CONFIGURATION */
    mr_be32(m, (uint32_t)strlen(MFD_MACHINE));
    mr_put(m, MFD_MACHINE, strlen(MFD_MACHINE));
    mr_u8(m, 0x05); /* subsection */
    mr_counted(m, "configuration/capabilities");
    mr_be32(m, 1);
    mr_be32(m, 1);
    mr_counted(m, "mapped-ram");
    mr_section(m, QSEC_START);
    uint64_t total = 0;
    for (size_t k = 0; k < m->nblocks; k++)
        total += m->blocks[k].len;
    mr_be64(m, total | RAMF_MEM_SIZE);
    for (size_t k = 0; k < m->nblocks; k++) {
        mr_block *b = &m->blocks[k];
        uint64_t bsize = (b->len / MR_PAGE + 63) / 64 * 8;
        mr_counted(m, b->name);
        mr_be64(m, b->len);
        b->bitmap_off = m->pos + MR_HDR_BYTES;
        b->pages_off = (b->bitmap_off + bsize + MR_ALIGN - 1) / MR_ALIGN *
                       MR_ALIGN;
        mr_be32(m, MR_HDR_VERSION);
        mr_be64(m, MR_PAGE);
        mr_be64(m, b->bitmap_off);
        mr_be64(m, b->pages_off);
        m->pos = b->pages_off + b->len; /* the stream skips the pages */
    }
    mr_section_end(m);
}

/* One pass over RAM: the first sends every page, later ones about one in
 * eight.  A zero page clears its bit and is not written (its slot keeps
 * what an earlier pass put there); another is written at its slot. */
static void mr_pass(mr_synth *m, uint64_t pass)
{
    uint8_t page[MR_PAGE];
    for (size_t k = 0; k < m->nblocks && !m->err; k++) {
        mr_block *b = &m->blocks[k];
        for (uint64_t i = 0; i < b->len / MR_PAGE; i++) {
            if (pass && rng_below(&m->rng, 8))
                continue;
            int zero = rng_below(&m->rng, 100) < (pass ? 15u : 45u);
            uint8_t bit = (uint8_t)(1u << (i % 8));
            if (zero) {
                b->bitmap[i / 8] &= (uint8_t)~bit;
                memset(page, 0, sizeof page);
            } else {
                fill_state(&m->rng, page, sizeof page);
                b->bitmap[i / 8] |= bit;
                mr_pwrite(m, page, sizeof page, b->pages_off + i * MR_PAGE);
            }
            if (b->expect_fd >= 0 &&
                pwrite(b->expect_fd, page, sizeof page,
                       (off_t)(i * MR_PAGE)) != (ssize_t)sizeof page)
                m->err = errno ? errno : EIO;
        }
    }
}

static int mr_expect(mr_synth *m, const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/ram", dir);
    FILE *f = fopen(path, "w");
    if (!f)
        return io_error(path, errno);
    for (size_t k = 0; k < m->nblocks; k++)
        fprintf(f, "%zu %llu %s\n", k, (unsigned long long)m->blocks[k].len,
                m->blocks[k].name);
    if (ferror(f) | (fclose(f) != 0))
        return io_error(path, errno ? errno : EIO);
    for (size_t k = 0; k < m->nblocks; k++) {
        snprintf(path, sizeof path, "%s/ram-%zu.bin", dir, k);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0666);
        m->blocks[k].expect_fd = fd;
        if (fd < 0 || ftruncate(fd, (off_t)m->blocks[k].len) != 0)
            return io_error(path, errno);
    }
    return TOOL_OK;
}

static int mapped_ram_run(mr_synth *m, const workload *wl)
{
    if (wl->expect_dir && mr_expect(m, wl->expect_dir) != TOOL_OK)
        return TOOL_USAGE;
    mr_start(m);
    for (uint64_t pass = 0; pass < wl->ram_passes && !m->err; pass++) {
        mr_pass(m, pass);
        if (pass + 1 < wl->ram_passes) {
            mr_section(m, QSEC_PART);
            mr_section_end(m);
        }
    }
    uint8_t cmd[5] = {0x08, 0, QCMD_SWITCHOVER_START, 0, 0};
    mr_put(m, cmd, sizeof cmd);
    mr_section(m, QSEC_END);
    mr_section_end(m);
    mr_u8(m, 0x00); /* QEMU_VM_EOF */
    for (size_t k = 0; k < m->nblocks; k++) {
        const mr_block *b = &m->blocks[k];
        mr_pwrite(m, b->bitmap, (size_t)((b->len / MR_PAGE + 63) / 64 * 8),
                  b->bitmap_off);
    }
    if (!m->err && ftruncate(m->fd, (off_t)m->pos) != 0)
        m->err = errno;
    return m->err ? io_error(m->path, m->err) : TOOL_OK;
}

static int mapped_ram_mode(const workload *wl)
{
    uint64_t ram = wl->ram_size;
    uint64_t bios = ram / 16 / MR_PAGE * MR_PAGE, rom = ram / 32 / MR_PAGE *
                                                        MR_PAGE;
    bios = bios > (256u << 10) ? 256u << 10 : bios ? bios : MR_PAGE;
    rom = rom > (128u << 10) ? 128u << 10 : rom ? rom : MR_PAGE;
    mr_synth m = {.path = wl->out_dir,
                  .nblocks = 3,
                  .rng = wl->seed * 0x9E3779B97F4A7C15ull + 0x4d52};
    m.blocks[0] = (mr_block){.name = "pc.ram", .len = ram, .expect_fd = -1};
    m.blocks[1] = (mr_block){.name = "pc.bios", .len = bios, .expect_fd = -1};
    m.blocks[2] = (mr_block){.name = "/rom@etc/acpi/tables", .len = rom,
                             .expect_fd = -1};
    int status = TOOL_USAGE;
    for (size_t k = 0; k < m.nblocks; k++)
        if (!(m.blocks[k].bitmap =
                  calloc((size_t)((m.blocks[k].len / MR_PAGE + 63) / 64 * 8),
                         1))) {
            fprintf(stderr, PROG ": out of memory\n");
            goto out;
        }
    m.fd = open(m.path, O_RDWR | O_CREAT | O_TRUNC, 0666);
    if (m.fd < 0) {
        status = io_error(m.path, errno);
        goto out;
    }
    status = mapped_ram_run(&m, wl);
    if (close(m.fd) != 0 && status == TOOL_OK)
        status = io_error(m.path, errno);
out:
    for (size_t k = 0; k < m.nblocks; k++) {
        free(m.blocks[k].bitmap);
        if (m.blocks[k].expect_fd >= 0)
            close(m.blocks[k].expect_fd);
    }
    return status;
}

/* ---- --postcopy: BASE as a postcopy migration ------------------------------
 *
 *   BASE header + CONFIGURATION
 *   OPEN_RETURN_PATH, PING 1, POSTCOPY_ADVISE (page size, page size)
 *   BASE's ram START (block list)
 *   ram PART: precopy pages (random pages of every block, some zero)
 *   [SWITCHOVER_START when BASE has one: a QEMU >= 10.0 destination]
 *   POSTCOPY_RAM_DISCARD per block (<= 12 ranges each), PING 2
 *   PACKAGED { POSTCOPY_LISTEN, BASE's device sections, PING 3, RUN }
 *   PING 4, ram PART: postcopy pages, ram END: more, EOS; EOF; no trailer
 *   [--preempt FILE: every third postcopy page instead, then EOS]
 *
 * In postcopy each page goes once (QEMU clears its dirty bit when it sends
 * it); every discarded page that had been sent is sent again, as QEMU
 * does (it discards exactly the dirty pages it already sent). */

#define PC_MAX_DISCARDS 12 /* ranges per POSTCOPY_RAM_DISCARD (QEMU's) */

typedef struct pc_block {
    char name[256];
    uint64_t len;
    int last_pre, last_post; /* CONTINUE bookkeeping per channel */
} pc_block;

/* A page the migration wrote or discarded, and what it holds at the end:
 * zero, or rng_bytes from `seed`. */
typedef struct pc_page {
    uint32_t block;
    uint64_t index;
    uint64_t seed; /* 0: zero */
    int sent_pre, discarded, sent_post;
} pc_page;

typedef struct pc_synth {
    const workload *wl;
    const uint8_t *base;
    size_t base_len;
    uint64_t config_end, start_off, start_end, dev_off, dev_end;
    uint32_t ram_id, page_size;
    int switchover; /* BASE has SWITCHOVER_START */
    pc_block *blocks;
    size_t nblocks;
    pc_page *pages;
    size_t npages, pagecap;
    uint64_t rng;
    FILE *out, *pre;
    int err;
    int cur_main, cur_pre; /* block of the previous record per channel */
    uint8_t *buf;
} pc_synth;

static void pc_put(pc_synth *p, FILE *f, const void *b, size_t n)
{
    if (!p->err && n && fwrite(b, 1, n, f) != n)
        p->err = errno ? errno : EIO;
}

static void pc_be(pc_synth *p, FILE *f, uint64_t v, unsigned bytes)
{
    uint8_t b[8];
    for (unsigned i = 0; i < bytes; i++)
        b[i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
    pc_put(p, f, b, bytes);
}

static void pc_cmd(pc_synth *p, uint16_t cmd, const void *args, uint16_t len)
{
    pc_be(p, p->out, 0x08, 1);
    pc_be(p, p->out, cmd, 2);
    pc_be(p, p->out, len, 2);
    pc_put(p, p->out, args, len);
}

static void pc_ping(pc_synth *p, uint32_t v)
{
    uint8_t a[4];
    put_be32(a, v);
    pc_cmd(p, 2, a, 4);
}

static int pc_base_event(pc_synth *p, const ms_event *ev)
{
    switch (ev->kind) {
    case MS_EV_CONFIGURATION:
        p->config_end = ev->offset + ev->length;
        if (ev->u.config.has_page_bits)
            p->page_size = 1u << ev->u.config.page_bits;
        break;
    case MS_EV_COMMAND:
        if (ev->u.command.cmd == QCMD_PACKAGED || ev->u.command.cmd == 3)
            return 1; /* already postcopy */
        if (ev->u.command.cmd == QCMD_SWITCHOVER_START)
            p->switchover = 1;
        break;
    case MS_EV_SECTION:
        if (strcmp(ev->u.section.idstr, "ram") == 0 &&
            ev->u.section.type == MS_QSEC_START) {
            p->start_off = ev->offset;
            p->ram_id = ev->u.section.section_id;
        }
        break;
    case MS_EV_RAM_BLOCK: {
        pc_block *n = realloc(p->blocks, (p->nblocks + 1) * sizeof *n);
        if (!n)
            return -1;
        p->blocks = n;
        memset(&n[p->nblocks], 0, sizeof *n);
        snprintf(n[p->nblocks].name, 256, "%s", ev->u.ram.block);
        n[p->nblocks++].len = ev->u.ram.used_length;
        break;
    }
    case MS_EV_SECTION_FOOTER:
        if (strcmp(ev->u.section.idstr, "ram") != 0)
            break;
        if (ev->u.section.type == MS_QSEC_START)
            p->start_end = ev->offset + 5;
        if (ev->u.section.type == MS_QSEC_END)
            p->dev_off = ev->offset + 5;
        break;
    case MS_EV_QEMU_EOF: p->dev_end = ev->offset; break;
    default: break;
    }
    return 0;
}

/* Read BASE: its configuration, block list, ram START, the device
 * sections between the ram END and EOF. */
static int pc_read_base(pc_synth *p)
{
    qemu_base b = {.path = p->wl->qemu_base};
    int fd = open(b.path, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0 || st.st_size == 0) {
        int err = fd < 0 ? errno : st.st_size ? errno : EINVAL;
        if (fd >= 0)
            close(fd);
        return io_error(b.path, err);
    }
    void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED)
        return io_error(b.path, errno);
    p->base = b.bytes = m;
    p->base_len = b.len = (size_t)st.st_size;
    p->page_size = 4096;
    ms_reader *r = base_reader(&b);
    if (!r)
        return TOOL_USAGE;
    ms_event ev;
    int rc = ms_reader_input(r, m, b.len) < 0 ? MS_NEXT_ERROR : MS_NEXT_EVENT;
    int bad = 0;
    while (rc == MS_NEXT_EVENT && !bad)
        if ((rc = ms_reader_next(r, &ev)) == MS_NEXT_EVENT)
            bad = pc_base_event(p, &ev);
    int status = TOOL_OK;
    if (bad < 0) {
        fprintf(stderr, PROG ": out of memory\n");
        status = TOOL_USAGE;
    } else if (bad) {
        status = base_problem(&b, ev.offset, MS_ERR_FORMAT_UNSUPPORTED,
                              "BASE is already postcopy: --postcopy needs a "
                              "precopy base stream");
    } else if (rc == MS_NEXT_ERROR || ms_reader_finish(r) < 0) {
        tool_print_problem(stderr, b.path, ms_reader_error(r));
        status = TOOL_INVALID;
    } else if (!p->start_end || !p->dev_off || !p->dev_end ||
               p->dev_off > p->dev_end || !p->nblocks) {
        status = base_problem(&b, b.len, MS_ERR_SECTION,
                              "BASE needs a ram START with blocks, a ram "
                              "END and the EOF record after it");
    }
    ms_reader_free(r);
    return status;
}

/* The page record of `index` in the page table, created as needed. */
static pc_page *pc_page_of(pc_synth *p, uint32_t block, uint64_t index)
{
    for (size_t i = 0; i < p->npages; i++)
        if (p->pages[i].block == block && p->pages[i].index == index)
            return &p->pages[i];
    if (p->npages == p->pagecap) {
        size_t cap = p->pagecap ? p->pagecap * 2 : 256;
        pc_page *n = realloc(p->pages, cap * sizeof *n);
        if (!n)
            return NULL;
        p->pages = n;
        p->pagecap = cap;
    }
    pc_page *g = &p->pages[p->npages++];
    memset(g, 0, sizeof *g);
    g->block = block;
    g->index = index;
    return g;
}

/* One page record on the main channel or the preempt file: ZERO when the
 * page's seed is 0, else PAGE with its bytes. */
static void pc_record(pc_synth *p, FILE *f, int *cur, const pc_page *g)
{
    const pc_block *b = &p->blocks[g->block];
    uint64_t v = g->index * p->page_size | (g->seed ? 0x08 : 0x02);
    int cont = *cur == (int)g->block;
    pc_be(p, f, v | (cont ? 0x20 : 0), 8);
    if (!cont) {
        size_t n = strlen(b->name);
        pc_be(p, f, n, 1);
        pc_put(p, f, b->name, n);
    }
    *cur = (int)g->block;
    if (!g->seed) {
        pc_be(p, f, 0, 1);
        return;
    }
    uint64_t st = g->seed;
    rng_bytes(&st, p->buf, p->page_size);
    pc_put(p, f, p->buf, p->page_size);
}

static void pc_section(pc_synth *p, uint8_t type)
{
    pc_be(p, p->out, type, 1);
    pc_be(p, p->out, p->ram_id, 4);
}

static void pc_footer(pc_synth *p)
{
    pc_be(p, p->out, 0x10, 8); /* EOS */
    pc_be(p, p->out, 0x7e, 1);
    pc_be(p, p->out, p->ram_id, 4);
}

/* Precopy: up to 16 random pages of every block, a quarter zero. */
static int pc_precopy(pc_synth *p)
{
    pc_section(p, 0x02);
    for (uint32_t k = 0; k < p->nblocks; k++) {
        uint64_t n = p->blocks[k].len / p->page_size;
        for (int i = 0; i < 16 && n; i++) {
            pc_page *g = pc_page_of(p, k, rng_below(&p->rng, n));
            if (!g)
                return -1;
            if (g->sent_pre)
                continue;
            g->sent_pre = 1;
            g->seed = rng_below(&p->rng, 4) ? rng_next(&p->rng) | 1 : 0;
            pc_record(p, p->out, &p->cur_main, g);
        }
    }
    pc_footer(p);
    return 0;
}

/* One DISCARD command per block (more when over 12 ranges): every page
 * sent in precopy that the "guest dirtied" (half of them), as single-page
 * ranges, plus a run of never-sent pages. */
static int pc_discards(pc_synth *p)
{
    uint8_t args[3 + 255 + 16 * PC_MAX_DISCARDS];
    for (uint32_t k = 0; k < p->nblocks; k++) {
        const pc_block *b = &p->blocks[k];
        size_t nl = strlen(b->name), nr = 0;
        uint64_t npg = b->len / p->page_size;
        args[0] = 0;
        args[1] = (uint8_t)nl;
        memcpy(args + 2, b->name, nl);
        args[2 + nl] = 0;
        size_t end = p->npages; /* the run below may add pages */
        for (size_t i = 0; i <= end; i++) {
            uint64_t start = 0, count = 0;
            if (i < end) {
                pc_page *g = &p->pages[i];
                if (g->block != k || !g->sent_pre || rng_below(&p->rng, 2))
                    continue;
                start = g->index;
                count = 1;
                g->discarded = 1;
            } else if (npg > 4) { /* a run the source never sent */
                start = rng_below(&p->rng, npg - 4);
                count = 1 + rng_below(&p->rng, 4);
                for (uint64_t j = start; j < start + count; j++) {
                    pc_page *g = pc_page_of(p, k, j);
                    if (!g)
                        return -1;
                    g->discarded = 1;
                }
            }
            if (count) {
                put_be64(args + 3 + nl + 16 * nr, start * p->page_size);
                put_be64(args + 3 + nl + 16 * nr + 8, count * p->page_size);
                nr++;
            }
            if (nr == PC_MAX_DISCARDS || (i == end && nr)) {
                pc_cmd(p, 6, args, (uint16_t)(3 + nl + 16 * nr));
                nr = 0;
            }
        }
    }
    return 0;
}

/* The package: LISTEN, BASE's device sections, PING 3, RUN. */
static void pc_package(pc_synth *p)
{
    uint64_t dev = p->dev_end - p->dev_off;
    uint8_t len[4];
    put_be32(len, (uint32_t)(5 + dev + 9 + 5));
    pc_cmd(p, QCMD_PACKAGED, len, 4);
    pc_cmd(p, 4, NULL, 0);
    pc_put(p, p->out, p->base + p->dev_off, (size_t)dev);
    pc_ping(p, 3);
    pc_cmd(p, 5, NULL, 0);
}

/* Postcopy pages: every discarded page again (new bytes or zero), and
 * some pages never sent; each once, a third on the preempt channel. */
static int pc_postcopy(pc_synth *p)
{
    for (uint32_t k = 0; k < p->nblocks; k++) {
        uint64_t n = p->blocks[k].len / p->page_size;
        for (int i = 0; i < 4 && n; i++) {
            pc_page *g = pc_page_of(p, k, rng_below(&p->rng, n));
            if (!g)
                return -1;
            if (!g->sent_pre)
                g->discarded = 1; /* never sent: the fault fetches it */
        }
    }
    size_t half = p->npages / 2, sent = 0;
    pc_section(p, 0x02);
    for (size_t i = 0; i < p->npages; i++) {
        pc_page *g = &p->pages[i];
        if (!g->discarded)
            continue;
        if (sent++ == half) { /* the rest in the ram END section */
            pc_footer(p);
            pc_section(p, 0x03);
        }
        g->sent_post = 1;
        g->seed = rng_below(&p->rng, 4) ? rng_next(&p->rng) | 1 : 0;
        if (p->pre && sent % 3 == 0)
            pc_record(p, p->pre, &p->cur_pre, g);
        else
            pc_record(p, p->out, &p->cur_main, g);
    }
    if (sent <= half) { /* fewer than half: END still comes */
        pc_footer(p);
        pc_section(p, 0x03);
    }
    pc_footer(p);
    return 0;
}

static int pc_expect(pc_synth *p)
{
    const char *dir = p->wl->expect_dir;
    char path[4096];
    if (!dir)
        return TOOL_OK;
    if (mkdir(dir, 0777) < 0 && errno != EEXIST)
        return io_error(dir, errno);
    snprintf(path, sizeof path, "%s/ram", dir);
    FILE *f = fopen(path, "w");
    if (!f)
        return io_error(path, errno);
    for (size_t k = 0; k < p->nblocks; k++)
        fprintf(f, "%zu %llu %s\n", k, (unsigned long long)p->blocks[k].len,
                p->blocks[k].name);
    if (ferror(f) | (fclose(f) != 0))
        return io_error(path, errno ? errno : EIO);
    for (size_t k = 0; k < p->nblocks; k++) {
        snprintf(path, sizeof path, "%s/ram-%zu.bin", dir, k);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0666);
        int err = fd < 0 || ftruncate(fd, (off_t)p->blocks[k].len) != 0;
        for (size_t i = 0; !err && i < p->npages; i++) {
            const pc_page *g = &p->pages[i];
            /* what stays: a discard clears a precopy page; the postcopy
             * copy is the last word */
            if (g->block != k || !g->seed || (g->discarded && !g->sent_post))
                continue;
            uint64_t st = g->seed;
            rng_bytes(&st, p->buf, p->page_size);
            err = pwrite(fd, p->buf, p->page_size,
                         (off_t)(g->index * p->page_size)) !=
                  (ssize_t)p->page_size;
        }
        if (err | (fd >= 0 && close(fd) != 0))
            return io_error(path, errno ? errno : EIO);
    }
    return TOOL_OK;
}

static int pc_write(pc_synth *p)
{
    uint8_t adv[16];
    pc_put(p, p->out, p->base, (size_t)p->config_end);
    pc_cmd(p, 1, NULL, 0);
    pc_ping(p, 1);
    put_be64(adv, p->page_size);
    put_be64(adv + 8, p->page_size);
    pc_cmd(p, 3, adv, 16);
    pc_put(p, p->out, p->base + p->start_off,
           (size_t)(p->start_end - p->start_off));
    p->cur_main = p->cur_pre = -1;
    if (pc_precopy(p) < 0)
        return -1;
    if (p->switchover)
        pc_cmd(p, QCMD_SWITCHOVER_START, NULL, 0);
    if (pc_discards(p) < 0)
        return -1;
    pc_ping(p, 2);
    pc_package(p);
    pc_ping(p, 4);
    if (pc_postcopy(p) < 0)
        return -1;
    pc_be(p, p->out, 0x00, 1); /* EOF, and no JSON trailer */
    if (p->pre)
        pc_be(p, p->pre, 0x10, 8); /* the preempt channel's EOS */
    return 0;
}

static int postcopy_mode(const workload *wl)
{
    pc_synth p = {.wl = wl, .rng = wl->seed ^ 0x706f7374636f7079ull};
    int status = pc_read_base(&p);
    if (status == TOOL_OK && p.dev_end - p.dev_off > UINT32_MAX - 32)
        status = base_problem(&(qemu_base){.path = wl->qemu_base}, p.dev_off,
                              MS_ERR_SECTION, "device sections too large "
                                              "for one package");
    if (status == TOOL_OK && !(p.buf = malloc(p.page_size))) {
        fprintf(stderr, PROG ": out of memory\n");
        status = TOOL_USAGE;
    }
    if (status == TOOL_OK && !(p.out = fopen(wl->out_dir, "wb")))
        status = io_error(wl->out_dir, errno);
    if (status == TOOL_OK && wl->preempt_file &&
        !(p.pre = fopen(wl->preempt_file, "wb")))
        status = io_error(wl->preempt_file, errno);
    if (status == TOOL_OK && pc_write(&p) < 0) {
        fprintf(stderr, PROG ": out of memory\n");
        status = TOOL_USAGE;
    }
    if (status == TOOL_OK && p.err)
        status = io_error(wl->out_dir, p.err);
    if (p.out && fclose(p.out) != 0 && status == TOOL_OK)
        status = io_error(wl->out_dir, errno);
    if (p.pre && fclose(p.pre) != 0 && status == TOOL_OK)
        status = io_error(wl->preempt_file, errno);
    if (status == TOOL_OK)
        status = pc_expect(&p);
    if (p.base)
        munmap((void *)p.base, p.base_len);
    free(p.blocks);
    free(p.pages);
    free(p.buf);
    return status;
}

/* ---- --return-path: the destination's answers to a main stream ----------
 * spec/qemu-return-path.md: reads a QEMU main stream and writes the return
 * path a destination would send for it: a PONG for every PING, in stream
 * order; SWITCHOVER_ACK once every VFIO device (a START section named
 * .../vfio) sent DEV_INIT_DATA_SENT; SHUT 0 at the end.  No page requests:
 * whether the guest faults is not in the stream. */
typedef struct rp_synth {
    FILE *out;
    int write_failed;
    uint32_t vfio_devices, init_data_sent;
    int acked;
    uint64_t messages;
} rp_synth;

static void rp_put(rp_synth *o, uint16_t type, uint32_t value, int has_value)
{
    uint8_t m[8];
    tool_put_be16(m, type);
    tool_put_be16(m + 2, has_value ? 4 : 0);
    tool_put_be32(m + 4, value);
    size_t n = has_value ? 8 : 4;
    if (fwrite(m, 1, n, o->out) != n)
        o->write_failed = 1;
    o->messages++;
}

static void rp_answer(rp_synth *o, const ms_event *ev)
{
    switch (ev->kind) {
    case MS_EV_SECTION: {
        size_t n = strlen(ev->u.section.idstr);
        if (ev->u.section.type == MS_QSEC_START && n >= 5 &&
            strcmp(ev->u.section.idstr + n - 5, "/vfio") == 0)
            o->vfio_devices++;
        break;
    }
    case MS_EV_VFIO_MARKER:
        if (strcmp(ev->u.vfio.name, "DEV_INIT_DATA_SENT") == 0 &&
            ++o->init_data_sent >= o->vfio_devices && !o->acked) {
            rp_put(o, MS_RP_SWITCHOVER_ACK, 0, 0);
            o->acked = 1;
        }
        break;
    case MS_EV_COMMAND:
        if (strcmp(ev->u.command.name, "PING") == 0)
            rp_put(o, MS_RP_PONG, (uint32_t)ev->u.command.value, 1);
        break;
    default: break;
    }
}

static int return_path_mode(int argc, char **argv)
{
    const char *in = NULL, *out = NULL;
    int to_stdout = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--return-path") == 0 && i + 1 < argc)
            in = argv[++i];
        else if (strcmp(argv[i], "-o") == 0 && i + 1 < argc)
            out = argv[++i];
        else if (strcmp(argv[i], "--stdout") == 0)
            to_stdout = 1;
        else {
            usage_error("--return-path takes MAIN.mig and one of -o OUT / "
                        "--stdout, not '%s'",
                        argv[i]);
            return TOOL_USAGE;
        }
    }
    if (!in || !out == !to_stdout) {
        usage_error("usage: --return-path MAIN.mig -o OUT | --stdout");
        return TOOL_USAGE;
    }
    FILE *f = fopen(in, "rb");
    if (!f) {
        fprintf(stderr, PROG ": %s: %s\n", in, strerror(errno));
        return TOOL_USAGE;
    }
    rp_synth o = {.out = to_stdout ? stdout : fopen(out, "wb")};
    if (!o.out) {
        fprintf(stderr, PROG ": %s: %s\n", out, strerror(errno));
        fclose(f);
        return TOOL_USAGE;
    }
    ms_reader *r = ms_reader_create(NULL);
    static uint8_t buf[1 << 16];
    size_t n;
    int rc = r ? 0 : -1;
    ms_event ev;
    while (rc == 0 && (n = fread(buf, 1, sizeof buf, f)) > 0) {
        rc = ms_reader_input(r, buf, n);
        int k = MS_NEXT_INPUT;
        while (rc == 0 && (k = ms_reader_next(r, &ev)) == MS_NEXT_EVENT) {
            if (ev.kind == MS_EV_STREAM_HEADER &&
                ev.u.stream.format != MS_FORMAT_QEMU_MAIN &&
                ev.u.stream.format != MS_FORMAT_LIBVIRT_SAVE) {
                fprintf(stderr, PROG ": %s: not a QEMU main stream (%s)\n",
                        in, ms_format_name(ev.u.stream.format));
                rc = -2;
            }
            rp_answer(&o, &ev);
        }
        if (rc == 0 && k == MS_NEXT_ERROR)
            rc = -1;
    }
    if (rc == 0)
        rc = ms_reader_finish(r);
    if (rc == -1 && r)
        tool_print_problem(stderr, in, ms_reader_error(r));
    if (rc == 0)
        rp_put(&o, MS_RP_SHUT, 0, 1);
    ms_reader_free(r);
    fclose(f);
    if ((!to_stdout && fclose(o.out) != 0) || fflush(stdout) != 0 ||
        o.write_failed) {
        fprintf(stderr, PROG ": write error\n");
        rc = -2;
    }
    if (rc && !to_stdout)
        unlink(out); /* no half answer left behind */
    return rc == 0 ? TOOL_OK : rc == -1 ? TOOL_INVALID : TOOL_USAGE;
}

int main(int argc, char **argv)
{
    workload wl;
    if (argc > 1 && strcmp(argv[1], "--return-path") == 0)
        return return_path_mode(argc, argv);
    int parsed = parse_args(argc, argv, &wl);
    if (parsed != 0)
        return parsed > 0 ? TOOL_OK : TOOL_USAGE;
    if (wl.example)
        return print_example();
    if (wl.mapped_ram)
        return mapped_ram_mode(&wl);
    if (wl.multifd)
        return multifd_mode(&wl);
    if (wl.qemu_base && wl.postcopy)
        return postcopy_mode(&wl);
    if (wl.qemu_base)
        return qemu_mode(&wl);
    if (wl.raw_file)
        return raw_mode(&wl);

    /* Without --kind the images are the random state bytes they always
     * were: the devices say raw, the one kind those bytes are valid as. */
    if (!wl.kind_given)
        wl.kind = MS_PAYLOAD_RAW;
    synth s = {.wl = &wl, .rng = wl.seed};
    if (wl.kind_given && wl.kind != MS_PAYLOAD_RAW) {
        workload orig = wl;
        s.gens = calloc((size_t)(wl.devices ? wl.devices : 1) * 4,
                        sizeof *s.gens);
        if (!s.gens) {
            fprintf(stderr, PROG ": out of memory\n");
            return TOOL_USAGE;
        }
        for (uint32_t d = 0; d < wl.devices; d++)
            if (gens_init(&orig, d, &s.gens[(size_t)d * 4], 1) < 0) {
                for (uint32_t k = 0; k <= d; k++)
                    gens_free(&s.gens[(size_t)k * 4]);
                free(s.gens);
                usage_error("device sizes too large for --kind %s",
                            ms_payload_kind_name((uint32_t)wl.kind));
                return TOOL_USAGE;
            }
        if (wl.devices) {
            const dev_gen *g = &s.gens[0];
            wl.initial_size = g[MS_PHASE_INITIAL].total;
            if (g[MS_PHASE_MIDDLE].total == 0 || wl.middle_count == 0) {
                wl.middle_count = 0;
            } else {
                wl.middle_size = g[MS_PHASE_MIDDLE].image_size;
                s.middle_first = g[MS_PHASE_MIDDLE].total -
                                 (wl.middle_count - 1) * wl.middle_size;
            }
            wl.final_size = g[MS_PHASE_FINAL].total;
        }
    }
    size_t buf_size = (size_t)(wl.chunk_size > wl.packet_size ? wl.chunk_size
                                                              : wl.packet_size);
    s.buf = malloc(buf_size < 512 ? 512 : buf_size); /* config packets too */
    s.order = calloc(wl.channels, sizeof *s.order);
    sink *sinks = calloc(wl.channels, sizeof *sinks);
    int status = TOOL_USAGE;
    if (!s.buf || !s.order || !sinks) {
        fprintf(stderr, PROG ": out of memory\n");
    } else {
        status = open_sinks(&wl, sinks);
        if (status == TOOL_OK)
            status = synthesize(&s, sinks);
        status = close_sinks(&wl, sinks, status);
    }
    free(sinks);
    free(s.order);
    free(s.buf);
    for (uint32_t d = 0; s.gens && d < wl.devices; d++)
        gens_free(&s.gens[(size_t)d * 4]);
    free(s.gens);
    return status;
}
