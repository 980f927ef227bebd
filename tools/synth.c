/* migstream-synth: write valid synthetic migstream v1 streams.
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
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

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
    uint64_t initial_size, middle_count, middle_size, final_size;
    uint64_t chunk_size, packet_size;
    uint32_t channels;
    int final_transport; /* -1: by channel count */
    int compress;
    uint64_t seed;
    int vendor_record;
    int example; /* --example: spec/example.md on stdout */
    const char *out_dir;
    int to_stdout;
} workload;

/* One channel's output file. */
typedef struct sink {
    FILE *f;
    char *path;
    int err; /* errno of the first failed write, 0 while all went well */
} sink;

typedef struct synth {
    const workload *wl;
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

static int chunk_image(synth *s, uint32_t dev, ms_phase phase, uint32_t flags,
                       uint64_t size)
{
    if (ms_writer_image_begin(s->w, home_of(s, dev), dev, phase,
                              MS_TRANSPORT_CHUNKS, flags, tick(s)) < 0)
        return -1;
    for (uint64_t left = size; left > 0;) {
        size_t n =
            (size_t)(left < s->wl->chunk_size ? left : s->wl->chunk_size);
        fill_state(&s->rng, s->buf, n);
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
        fill_state(&s->rng, s->buf, n);
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
    if (precopy(s, dev, 0, wl->middle_size) < 0 ||
        chunk_image(s, dev, MS_PHASE_MIDDLE, 0, wl->middle_size) < 0 ||
        precopy(s, dev, 0, dirtied) < 0)
        return -1;
    return 0;
}

static int final_image(synth *s, uint32_t dev)
{
    const workload *wl = s->wl;
    /* with no precopy image the final image is the whole state */
    uint32_t flags =
        wl->initial_size == 0 && wl->middle_count == 0 ? MS_IMAGE_FULL : 0;
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
"options (sizes take K, M, G suffixes, powers of 1024):\n"
"  --devices N           devices (default 2)\n"
"  --kind KIND           payload kind of all devices (default mlx5)\n"
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
           strcmp(name, "--final-transport") == 0;
}

/* -o, --kind, --final-transport (is_text_option). */
static int set_text(workload *wl, const char *name, const char *value)
{
    if (strcmp(name, "-o") == 0) {
        wl->out_dir = value;
    } else if (strcmp(name, "--kind") == 0) {
        wl->kind = ms_payload_kind_from_name(value);
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
    return o ? set_numeric(wl, o, value) : set_text(wl, name, value);
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
            continue;
        }
        if (strcmp(arg, "--vendor-record") == 0) {
            wl->vendor_record = 1;
            continue;
        }
        if (strcmp(arg, "--example") == 0) {
            wl->example = 1;
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
        ms_writer_add_device(w, 0, "0000:00:02.0/vfio", 0, MS_PAYLOAD_MLX5,
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
           "one device (`0000:00:02.0/vfio`, mlx5) and one 4-byte initial "
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

int main(int argc, char **argv)
{
    workload wl;
    int parsed = parse_args(argc, argv, &wl);
    if (parsed != 0)
        return parsed > 0 ? TOOL_OK : TOOL_USAGE;
    if (wl.example)
        return print_example();

    synth s = {.wl = &wl, .rng = wl.seed};
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
    return status;
}
