/* migstream-bench: speed and memory of the library, as ratios against
 * baselines measured in the same run (memcpy, raw XXH3, bare zlib inflate).
 * Timing is best-of-N wall clock; nothing here asserts a speed. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>
#if defined(MS_HAVE_XXH_DISPATCH) && MS_HAVE_XXH_DISPATCH
/* the baseline is the fastest XXH3 the machine has, as the library uses */
#include <xxh_x86dispatch.h>
#endif
#include <zlib.h>

#include "encode.h"
#include "tool_common.h"

static const char *prog = "migstream-bench";

/* ---- a counting allocator: peak bytes the library holds ------------------- */
typedef struct count_alloc {
    size_t now, peak;
} count_alloc;

static void *ca_alloc(void *opaque, size_t n)
{
    count_alloc *c = opaque;
    size_t *p = malloc(n + sizeof(max_align_t));
    if (!p)
        return NULL;
    *p = n;
    c->now += n;
    if (c->now > c->peak)
        c->peak = c->now;
    return (char *)p + sizeof(max_align_t);
}

static void ca_free(void *opaque, void *ptr)
{
    count_alloc *c = opaque;
    size_t *p = (size_t *)((char *)ptr - sizeof(max_align_t));
    c->now -= *p;
    free(p);
}

/* ---- memory sinks for the writer ------------------------------------------ */
typedef struct sink {
    uint8_t *p;
    size_t len, cap;
} sink;

static int sink_write(void *opaque, const void *buf, size_t len)
{
    sink *s = opaque;
    if (s->len + len > s->cap) {
        size_t cap = s->cap ? s->cap : 1 << 20;
        while (cap < s->len + len)
            cap *= 2;
        uint8_t *n = realloc(s->p, cap);
        if (!n)
            return -1;
        s->p = n;
        s->cap = cap;
    }
    memcpy(s->p + s->len, buf, len);
    s->len += len;
    return 0;
}

static int null_write(void *opaque, const void *buf, size_t len)
{
    (void)opaque;
    (void)buf;
    (void)len;
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Device-state-like content: random runs, zero runs, repeats. */
static void fill(uint8_t *p, size_t n, uint64_t seed)
{
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < n;) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        size_t run = 64 + (size_t)(x % 4096);
        if (run > n - i)
            run = n - i;
        switch (x >> 62) {
        case 0: memset(p + i, 0, run); break;
        case 1: memset(p + i, (int)(x >> 8) & 0xff, run); break;
        default:
            for (size_t k = 0; k < run; k++) {
                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                p[i + k] = (uint8_t)x;
            }
        }
        i += run;
    }
}

/* ---- workloads --------------------------------------------------------------- */

/* One channel, one device, one final image of `data` in chunks. */
static int write_chunks(const uint8_t *data, size_t n, size_t chunk, int level,
                        ms_write_fn fn, void *opaque)
{
    ms_writer_options wo;
    ms_writer_options_init(&wo);
    wo.chunk_size = chunk;
    wo.compression_level = level;
    ms_writer *w = ms_writer_create(&wo);
    int rc = !w || ms_writer_open_channel(w, 0, fn, opaque) ||
             ms_writer_add_device(w, 1, "0000:00:02.0/vfio", 0, 1, NULL, 0) ||
             ms_writer_image_begin(w, 0, 1, MS_PHASE_FINAL,
                                   MS_TRANSPORT_CHUNKS, 0, 0) ||
             ms_writer_image_data(w, 1, data, n) ||
             ms_writer_image_end(w, 1, 0) || ms_writer_close_channel(w, 0, 0);
    ms_writer_free(w);
    return rc ? -1 : 0;
}

/* `channels` channels; the final image as packets dealt round robin. */
static int write_packets(const uint8_t *data, size_t n, size_t packet,
                         uint32_t channels, sink *out)
{
    ms_writer_options wo;
    ms_writer_options_init(&wo);
    wo.channel_count = channels;
    ms_writer *w = ms_writer_create(&wo);
    int rc = !w;
    for (uint32_t c = 0; !rc && c < channels; c++)
        rc = ms_writer_open_channel(w, c, sink_write, &out[c]);
    rc = rc || ms_writer_add_device(w, 1, "0000:00:02.0/vfio", 0, 1, NULL, 0) ||
         ms_writer_image_begin(w, 0, 1, MS_PHASE_FINAL, MS_TRANSPORT_PACKETS,
                               0, 0);
    uint32_t c = 0;
    for (size_t off = 0; !rc && off < n; off += packet, c = (c + 1) % channels)
        rc = ms_writer_image_packet(w, c, 1, data + off,
                                    n - off < packet ? n - off : packet, 0);
    rc = rc || ms_writer_image_packet(w, c, 1, "config", 6, 1) ||
         ms_writer_image_end(w, 1, 0);
    for (uint32_t k = 0; !rc && k < channels; k++)
        rc = ms_writer_close_channel(w, k, 0);
    ms_writer_free(w);
    return rc ? -1 : 0;
}

/* Read channels through readers and a set, touching nothing but what the
 * library touches.  Returns image bytes seen or -1. */
static int64_t read_set(sink *ch, uint32_t n, size_t slice, int verify,
                        int stable, count_alloc *ca)
{
    ms_options o;
    ms_options_init(&o);
    o.verify_checks = verify;
    o.input_stable = stable;
    o.max_buffered_bytes = (uint64_t)4 << 30;
    o.allocator = (ms_allocator){ca_alloc, ca_free, ca};
    ms_set *set = ms_set_create(&o);
    int64_t bytes = 0;
    ms_event ev, sev;
    for (uint32_t c = 0; set && c < n; c++) {
        ms_reader *r = ms_reader_create(&o);
        if (!r)
            return -1;
        for (size_t off = 0; off < ch[c].len; off += slice) {
            size_t len = ch[c].len - off < slice ? ch[c].len - off : slice;
            int s;
            ms_reader_input(r, ch[c].p + off, len);
            while ((s = ms_reader_next(r, &ev)) == MS_NEXT_EVENT) {
                if (ev.kind == MS_EV_DATA && !ev.u.data.in_packet)
                    bytes += (int64_t)ev.u.data.size;
                if (ms_set_observe(set, c, &ev) < 0)
                    return -1;
                while ((s = ms_set_next(set, &sev)) == MS_NEXT_EVENT)
                    if (sev.kind == MS_EV_DATA && !sev.u.data.config)
                        bytes += (int64_t)sev.u.data.size;
                if (s == MS_NEXT_ERROR)
                    return -1;
            }
            if (s == MS_NEXT_ERROR)
                return -1;
        }
        if (ms_reader_finish(r) < 0 || ms_set_channel_done(set, c) < 0)
            return -1;
        ms_reader_free(r);
    }
    if (!set || ms_set_finish(set) < 0)
        return -1;
    ms_set_free(set);
    return bytes;
}

/* ---- QEMU main stream: one RAM block sent as pages ---------------------- */

#define PAGE 4096u
#define RAM_ID 1u   /* the ram section's id */
#define SLOTS 128u  /* pages a multifd packet holds */

static int enc_sink_write(void *opaque, uint64_t at, const void *p, size_t n)
{
    (void)at; /* a memory sink appends */
    return sink_write(opaque, p, n) < 0 ? ENOMEM : 0;
}

/* Nothing but memory can fail a sink. */
static void check_out(const enc_out *o)
{
    if (o->err) {
        fprintf(stderr, "%s: out of memory\n", prog);
        exit(TOOL_USAGE);
    }
}

static void put(sink *s, const void *p, size_t n)
{
    if (sink_write(s, p, n) < 0) {
        fprintf(stderr, "%s: out of memory\n", prog);
        exit(TOOL_USAGE);
    }
}

/* Every 8th page is a ZERO record, the rest PAGE records of `data`. */
static void write_qemu(sink *s, const uint8_t *data, size_t n)
{
    enc_out o = {.write = enc_sink_write, .opaque = s};
    size_t pages = n / PAGE;
    enc_q_header(&o);
    enc_q_config(&o, "pc-i440fx-7.2");
    enc_q_section(&o, Q_START, RAM_ID, "ram", 0, RAM_SECTION_VERSION);
    enc_ram_mem_size(&o, (uint64_t)pages * PAGE);
    enc_ram_block(&o, "pc.ram", (uint64_t)pages * PAGE);
    enc_ram_end(&o, RAM_ID);
    enc_q_section(&o, Q_PART, RAM_ID, NULL, 0, 0);
    for (size_t i = 0; i < pages; i++) {
        const char *block = i ? NULL /* CONTINUE */ : "pc.ram";
        if (i % 8 == 7)
            enc_ram_zero(&o, (uint64_t)i * PAGE, block);
        else
            enc_ram_page(&o, (uint64_t)i * PAGE, block, data + i * PAGE, PAGE);
    }
    enc_ram_end(&o, RAM_ID);
    enc_q_section(&o, Q_END, RAM_ID, NULL, 0, 0);
    enc_ram_end(&o, RAM_ID);
    enc_q_eof(&o);
    check_out(&o);
}

/* Read the QEMU stream; with `ram` set, copy every page into it at its
 * offset (what extraction does).  Returns page records seen or -1. */
static int64_t read_qemu(const sink *s, uint8_t *ram)
{
    ms_reader *r = ms_reader_create(NULL);
    ms_event ev;
    int64_t pages = 0;
    int rc;
    if (!r || ms_reader_input(r, s->p, s->len) < 0)
        return -1;
    while ((rc = ms_reader_next(r, &ev)) == MS_NEXT_EVENT)
        if (ev.kind == MS_EV_RAM_PAGE) {
            pages++;
            if (ram && ev.u.ram.data)
                memcpy(ram + ev.u.ram.offset, ev.u.ram.data, ev.u.ram.size);
            else if (ram)
                memset(ram + ev.u.ram.offset, 0, 4096);
        }
    if (rc == MS_NEXT_ERROR || ms_reader_finish(r) < 0)
        pages = -1;
    ms_reader_free(r);
    return pages;
}

/* ---- QEMU multifd channel: RAM packets of 128 pages, zlib per channel ---- */

/* One channel: init packet, then packets whose payload is one zlib stream
 * across packets, flushed at each packet's end (as QEMU writes it).  The
 * same compressed bytes, concatenated, are kept in `zonly` for the bare
 * inflate baseline. */
static void write_multifd_zlib(sink *s, sink *zonly, const uint8_t *data,
                               size_t n)
{
    uint8_t hdr[MULTIFD_RAM_FIXED + 8 * SLOTS];
    uint64_t offsets[SLOTS];
    z_stream zs = {0};
    deflateInit(&zs, 1);
    enc_mfd_init(hdr, NULL, 0);
    put(s, hdr, MULTIFD_INIT_SIZE);
    uLong cap = compressBound(SLOTS * PAGE) + 64;
    uint8_t *out = malloc(cap);
    size_t pages = n / PAGE;
    for (size_t first = 0, num = 0; first < pages; first += SLOTS, num++) {
        size_t cnt = pages - first < SLOTS ? pages - first : SLOTS;
        zs.next_in = (Bytef *)(data + first * PAGE);
        zs.avail_in = (uInt)(cnt * PAGE);
        zs.next_out = out;
        zs.avail_out = (uInt)cap;
        deflate(&zs, Z_SYNC_FLUSH);
        size_t clen = (size_t)(zs.next_out - out);
        for (size_t i = 0; i < cnt; i++)
            offsets[i] = (uint64_t)(first + i) * PAGE;
        enc_mfd_ram r = {.flags = MULTIFD_COMP_ZLIB,
                         .pages_alloc = SLOTS,
                         .normal = (uint32_t)cnt,
                         .payload_len = (uint32_t)clen,
                         .packet_num = num,
                         .block = "pc.ram",
                         .normal_off = offsets};
        put(s, hdr, enc_mfd_ram_header(hdr, SLOTS, &r));
        put(s, out, clen);
        put(zonly, out, clen);
    }
    deflateEnd(&zs);
    free(out);
}

/* Read a channel; with `ram`, copy each page to its offset. */
static int64_t read_multifd(const sink *s, uint8_t *ram)
{
    ms_reader *r = ms_reader_create(NULL);
    ms_event ev;
    int64_t pages = 0;
    int rc;
    if (!r || ms_reader_input(r, s->p, s->len) < 0)
        return -1;
    while ((rc = ms_reader_next(r, &ev)) == MS_NEXT_EVENT)
        if (ev.kind == MS_EV_RAM_PAGE && ev.u.ram.data) {
            pages++;
            if (ram)
                memcpy(ram + ev.u.ram.offset, ev.u.ram.data, ev.u.ram.size);
        }
    if (rc == MS_NEXT_ERROR || ms_reader_finish(r) < 0)
        pages = -1;
    ms_reader_free(r);
    return pages;
}

/* Bare inflate of the same stream (one inflate over all packets' bytes). */
static void bare_inflate(const sink *z, uint8_t *out, size_t n)
{
    z_stream zs = {0};
    inflateInit(&zs);
    zs.next_in = z->p;
    zs.avail_in = (uInt)z->len;
    zs.next_out = out;
    zs.avail_out = (uInt)n;
    inflate(&zs, Z_SYNC_FLUSH);
    inflateEnd(&zs);
}

/* ---- measurement -------------------------------------------------------------- */

typedef struct result {
    double seconds;
    size_t peak;
} result;

#define BEST_OF(reps, res, body)                                               \
    do {                                                                       \
        (res).seconds = 1e30;                                                  \
        for (int rep_ = 0; rep_ < (reps); rep_++) {                            \
            double t0_ = now_s();                                              \
            body;                                                              \
            double t_ = now_s() - t0_;                                         \
            if (t_ < (res).seconds)                                            \
                (res).seconds = t_;                                            \
        }                                                                      \
    } while (0)

static void report(const char *name, size_t bytes, result r, const char *base,
                   result b)
{
    double mbs = (double)bytes / r.seconds / 1e6;
    printf("%-34s %9.0f MB/s  %6.2fx %-13s", name, mbs, b.seconds / r.seconds,
           base);
    if (r.peak)
        printf("  peak %zu KiB", r.peak / 1024);
    putchar('\n');
}

static void usage(FILE *o)
{
    fprintf(o,
            "usage: %s [--size BYTES] [--reps N]\n"
            "Measure reader, set and writer speed and memory against memcpy,\n"
            "raw XXH3 and bare zlib inflate baselines taken in the same run.\n"
            "A ratio of 1.00x means as fast as the baseline; below 1, slower.\n"
            "  --size BYTES   image bytes per case (default 256M)\n"
            "  --reps N       best of N runs (default 3)\n",
            prog);
}

/* What every case measures against. */
typedef struct bench {
    const uint8_t *data;
    uint8_t *copy; /* n bytes to copy into */
    size_t n;
    int reps;
    result memcpy_r, xxh_r;
} bench;

/* Uncompressed chunk stream: read and verify; the writer. */
static int bench_chunks(const bench *b)
{
    size_t n = b->n;
    int reps = b->reps;
    sink one = {0};
    if (write_chunks(b->data, n, 1 << 20, 0, sink_write, &one) < 0) {
        fprintf(stderr, "%s: writing the chunk stream failed\n", prog);
        return TOOL_INVALID;
    }
    result r = {0};
    count_alloc ca = {0};
    int64_t got = 0;
    BEST_OF(reps, r, got = read_set(&one, 1, one.len, 1, 1, &ca));
    r.peak = ca.peak;
    if (got != (int64_t)n) {
        fprintf(stderr, "%s: read back %" PRId64 " bytes, wrote %zu\n", prog,
                got, n);
        free(one.p);
        return TOOL_INVALID;
    }
    report("read+verify chunks, one slice", n, r, "vs XXH3", b->xxh_r);
    ca = (count_alloc){0};
    BEST_OF(reps, r, got = read_set(&one, 1, 64 << 10, 1, 0, &ca));
    r.peak = ca.peak;
    report("read+verify chunks, 64K slices", n, r, "vs XXH3", b->xxh_r);
    ca = (count_alloc){0};
    BEST_OF(reps, r, got = read_set(&one, 1, one.len, 0, 1, &ca));
    r.peak = ca.peak;
    report("parse only, checks off (0-copy)", n, r, "vs memcpy", b->memcpy_r);
    BEST_OF(reps, r, write_chunks(b->data, n, 1 << 20, 0, null_write, NULL));
    r.peak = 0;
    report("write chunks (null sink)", n, r, "vs XXH3", b->xxh_r);
    free(one.p);
    return TOOL_OK;
}

/* Packets over 4 channels, reassembled. */
static int bench_packets(const bench *b)
{
    sink ch[4] = {{0}};
    int status = TOOL_OK;
    if (write_packets(b->data, b->n, 1 << 20, 4, ch) < 0) {
        fprintf(stderr, "%s: writing the packet channels failed\n", prog);
        status = TOOL_INVALID;
    } else {
        result r = {0};
        count_alloc ca = {0};
        BEST_OF(b->reps, r, read_set(ch, 4, 1 << 20, 1, 1, &ca));
        r.peak = ca.peak;
        report("reassemble 4 ch, stable input", b->n, r, "vs XXH3", b->xxh_r);
        ca = (count_alloc){0};
        BEST_OF(b->reps, r, read_set(ch, 4, 1 << 20, 1, 0, &ca));
        r.peak = ca.peak;
        report("reassemble 4 ch, copying", b->n, r, "vs XXH3", b->xxh_r);
    }
    for (int i = 0; i < 4; i++)
        free(ch[i].p);
    return status;
}

/* Compressed chunks against bare inflate of the same zlib streams. */
static int bench_zlib_chunks(const bench *b)
{
    const uint8_t *data = b->data;
    size_t n = b->n;
    int reps = b->reps;
    result r = {0};
    count_alloc ca = {0};
    int64_t got = 0;
    sink z = {0};
    write_chunks(data, n, 1 << 20, 1, sink_write, &z);
    result inf_r = {0};
    {
        /* Bare baseline: inflate every CHUNK's zlib stream found by the
         * reader's own CHUNK events (located once, outside the timing). */
        typedef struct span {
            size_t off, len;
        } span;
        span *spans = NULL;
        size_t nspans = 0, cap = 0;
        ms_reader *rd = ms_reader_create(NULL);
        ms_event ev;
        ms_reader_input(rd, z.p, z.len);
        while (ms_reader_next(rd, &ev) == MS_NEXT_EVENT)
            if (ev.kind == MS_EV_CHUNK && ev.u.chunk.compression) {
                if (nspans == cap) {
                    cap = cap ? 2 * cap : 64;
                    spans = realloc(spans, cap * sizeof *spans);
                }
                spans[nspans++] = (span){(size_t)ev.offset + 24 + 16,
                                         (size_t)ev.u.chunk.stored_len};
            }
        ms_reader_free(rd);
        uint8_t *out = malloc(1 << 20);
        BEST_OF(reps, inf_r, {
            for (size_t i = 0; i < nspans; i++) {
                uLongf outlen = 1 << 20;
                uncompress(out, &outlen, z.p + spans[i].off, spans[i].len);
            }
        });
        free(out);
        free(spans);
        printf("%-34s %9.0f MB/s  (%zu of %zu chunks compressed, %.1f%% size)\n",
               "baseline zlib inflate", (double)n / inf_r.seconds / 1e6,
               nspans, (n + (1 << 20) - 1) >> 20, 100.0 * (double)z.len / (double)n);
    }
    ca = (count_alloc){0};
    BEST_OF(reps, r, got = read_set(&z, 1, z.len, 1, 1, &ca));
    r.peak = ca.peak;
    if (got != (int64_t)n) {
        fprintf(stderr, "%s: compressed read back %" PRId64 " bytes\n", prog,
                got);
        free(z.p);
        return TOOL_INVALID;
    }
    report("read+verify zlib chunks", n, r, "vs inflate", inf_r);
    free(z.p);
    return TOOL_OK;
}


/* QEMU main stream: list (pages skipped) and extract (copied once). */
static int bench_qemu(const bench *b)
{
    size_t n = b->n;
    int reps = b->reps;
    result r = {0};
    sink q = {0};
    write_qemu(&q, b->data, n);
    int64_t qpages = 0;
    BEST_OF(reps, r, qpages = read_qemu(&q, NULL));
    r.peak = 0;
    if (qpages != (int64_t)(n / 4096)) {
        fprintf(stderr, "%s: QEMU stream read back %" PRId64 " pages\n", prog,
                qpages);
        free(q.p);
        return TOOL_INVALID;
    }
    report("qemu list RAM pages (0-copy)", q.len, r, "vs memcpy", b->memcpy_r);
    BEST_OF(reps, r, qpages = read_qemu(&q, b->copy));
    report("qemu extract RAM (copy once)", q.len, r, "vs memcpy", b->memcpy_r);
    free(q.p);
    return TOOL_OK;
}

/* QEMU multifd zlib channel against bare inflate of the same stream. */
static int bench_multifd(const bench *b)
{
    size_t n = b->n;
    int reps = b->reps;
    result r = {0};
    int64_t qpages = 0;
    sink mf = {0}, mz = {0};
    write_multifd_zlib(&mf, &mz, b->data, n);
    result binf = {0};
    BEST_OF(reps, binf, bare_inflate(&mz, b->copy, n));
    BEST_OF(reps, r, qpages = read_multifd(&mf, b->copy));
    if (qpages != (int64_t)(n / 4096)) {
        fprintf(stderr, "%s: multifd channel read back %" PRId64 " pages\n",
                prog, qpages);
        free(mf.p);
        free(mz.p);
        return TOOL_INVALID;
    }
    report("baseline bare inflate (multifd)", n, binf, "", binf);
    report("multifd zlib channel -> RAM", n, r, "vs inflate", binf);
    free(mf.p);
    free(mz.p);
    return TOOL_OK;
}

int main(int argc, char **argv)
{
    uint64_t size = (uint64_t)256 << 20;
    int reps = 3;
    static const struct option longs[] = {{"size", required_argument, 0, 's'},
                                          {"reps", required_argument, 0, 'r'},
                                          {"help", no_argument, 0, 'h'},
                                          {"version", no_argument, 0, 'V'},
                                          {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "hV", longs, NULL)) != -1) {
        switch (c) {
        case 's':
            if (tool_parse_size(optarg, &size) < 0 || size < 4096) {
                fprintf(stderr, "%s: bad --size\n", prog);
                return TOOL_USAGE;
            }
            break;
        case 'r': reps = atoi(optarg) > 0 ? atoi(optarg) : 1; break;
        case 'h': usage(stdout); return TOOL_OK;
        case 'V': printf("%s %s\n", prog, ms_version_string()); return TOOL_OK;
        default: usage(stderr); return TOOL_USAGE;
        }
    }
    size_t n = (size_t)size;
    uint8_t *data = malloc(n), *copy = malloc(n);
    if (!data || !copy) {
        fprintf(stderr, "%s: out of memory for %zu bytes\n", prog, n);
        return TOOL_USAGE;
    }
    fill(data, n, 1);
    memset(copy, 1, n);
    printf("migstream-bench %s: %zu MiB per case, best of %d\n",
           ms_version_string(), n >> 20, reps);

    /* Baselines. */
    result memcpy_r = {0}, xxh_r = {0};
    volatile uint64_t sink_hash = 0;
    BEST_OF(reps, memcpy_r, memcpy(copy, data, n));
    BEST_OF(reps, xxh_r, sink_hash ^= XXH3_64bits(data, n));
    report("baseline memcpy", n, memcpy_r, "memcpy", memcpy_r);
    report("baseline XXH3-64", n, xxh_r, "memcpy", memcpy_r);

    bench b = {.data = data, .copy = copy, .n = n, .reps = reps,
               .memcpy_r = memcpy_r, .xxh_r = xxh_r};
    int (*const cases[])(const bench *) = {bench_chunks, bench_packets,
                                           bench_zlib_chunks, bench_qemu,
                                           bench_multifd};
    int status = TOOL_OK;
    for (size_t i = 0; status == TOOL_OK && i < sizeof cases / sizeof *cases;
         i++)
        status = cases[i](&b);
    (void)sink_hash;
    free(data);
    free(copy);
    return status;
}
