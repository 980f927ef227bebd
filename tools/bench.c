/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* migstream-bench: speed and memory of the library, as ratios against
 * baselines measured in the same run (memcpy, raw XXH3, bare zlib inflate).
 * Timing is best-of-N wall clock; nothing here asserts a speed (issue 10:
 * speed is judged by these ratios, never by a timed test).
 *
 *   main -> options -> baseline memcpy -> each case (or --case NAME):
 *     write its stream(s) in memory (untimed) -> time the baseline on the
 *     same bytes -> time the case -> check what it decoded -> report a
 *     table row or a JSON line */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>
#if defined(MS_HAVE_XXH_DISPATCH) && MS_HAVE_XXH_DISPATCH
/* the baseline is the fastest XXH3 the machine has, as the library uses */
#include <xxh_x86dispatch.h>
#endif
#include <zlib.h>

#include "bench.h"
#include "tool_common.h"

static const char *prog = "migstream-bench";

/* ---- measurement ------------------------------------------------------------
 */

typedef struct result {
    double seconds;
    size_t peak; /* bytes; 0: not measured */
} result;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

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

/* What every case shares. */
typedef struct bench {
    const uint8_t *data; /* n bytes of device-state-like content */
    uint8_t *copy;       /* n bytes to copy into (touched) */
    size_t n;
    int reps;
    int json;
    const char *only;  /* --case NAME: the one row reported */
    result memcpy_r;   /* memcpy of n bytes */
    double verify_mbs; /* verify-memory's speed once measured */
} bench;

/* A case's speed against its baseline's: a table row or a JSON line. */
static void report(const bench *b, const char *name, size_t bytes, result r,
                   const char *base, size_t base_bytes, result br)
{
    double mbs = (double)bytes / r.seconds / 1e6;
    double base_mbs = (double)base_bytes / br.seconds / 1e6;
    size_t kib = r.peak / 1024;
    if (b->only && strcmp(b->only, name) != 0)
        return;
    if (b->json) {
        printf("{\"case\": \"%s\", \"mb_per_s\": %.1f, \"baseline\": \"%s\", "
               "\"baseline_mb_per_s\": %.1f, \"ratio\": %.3f, "
               "\"peak_kib\": %zu}\n",
               name, mbs, base, base_mbs, mbs / base_mbs, kib);
    } else {
        printf("%-24s %8.0f MB/s  %6.2fx %-14s %8.0f MB/s", name, mbs,
               mbs / base_mbs, base, base_mbs);
        if (r.peak)
            printf("  peak %zu KiB", kib);
        putchar('\n');
    }
    fflush(stdout);
}

static int failed(const char *what, int64_t got, int64_t want)
{
    fprintf(stderr, "%s: %s: decoded %" PRId64 ", expected %" PRId64 "\n", prog,
            what, got, want);
    return TOOL_INVALID;
}

/* A baseline timed between a case's runs: the machine (a shared VM's
 * memory bandwidth, the clock) drifts within one run, so a case and its
 * baseline measured rep by rep, alternately, see the same conditions;
 * measured one after the other, ratios moved by 10% between runs. */
typedef enum base_kind { BASE_NONE, BASE_XXH3, BASE_MEMCPY } base_kind;
typedef struct baseline {
    base_kind kind;
    const uint8_t *p; /* XXH3: the bytes hashed */
    size_t len;       /* bytes hashed or copied */
    result r;         /* best time */
} baseline;

/* Where hashes go, so the compiler keeps the hashing. */
static volatile uint64_t hash_kept;

static void run_baseline(const bench *b, baseline *bl)
{
    double t0 = now_s();
    if (bl->kind == BASE_XXH3)
        hash_kept ^= XXH3_64bits(bl->p, bl->len);
    else if (bl->kind == BASE_MEMCPY)
        memcpy(b->copy, b->data, bl->len);
    double t = now_s() - t0;
    if (bl->r.seconds == 0 || t < bl->r.seconds)
        bl->r.seconds = t;
}

static result time_xxh3(const bench *b, const uint8_t *p, size_t len)
{
    baseline bl = {BASE_XXH3, p, len, {0, 0}};
    for (int i = 0; i < b->reps; i++)
        run_baseline(b, &bl);
    return bl.r;
}

/* Decode `job` best of reps, `bl` (may be NULL) timed after each run; the
 * tally and the peak of the last run. */
static result time_migration_vs(const bench *b, mig_job *job, mig_tally *t,
                                baseline *bl)
{
    result r = {0};
    count_alloc ca;
    job->ca = &ca;
    BEST_OF(b->reps, r, {
        count_reset(&ca);
        if (run_migration(job, t) < 0)
            t->problems++;
        if (bl) { /* outside the case's time: now_s() is read first */
            double t1_ = now_s();
            run_baseline(b, bl);
            t0_ += now_s() - t1_;
        }
    });
    r.peak = atomic_load(&ca.peak);
    job->ca = NULL;
    return r;
}

static result time_migration(const bench *b, mig_job *job, mig_tally *t)
{
    return time_migration_vs(b, job, t, NULL);
}

/* ---- migstream chunk streams ------------------------------------------------
 */

/* One channel of 1 MiB uncompressed chunks, verified like migstream-verify
 * (one in-memory buffer, no file I/O). */
static int case_verify_memory(bench *b)
{
    sink one = {0};
    if (write_chunks(b->data, b->n, 1 << 20, 0, sink_write, &one, NULL) < 0)
        return failed("writing the chunk stream", -1, 0);
    mig_job job = {.ch = &one, .nch = 1, .verify = 1, .payloads = 1};
    mig_tally t;
    baseline bl = {BASE_XXH3, one.p, one.len, {0, 0}};
    result r = time_migration_vs(b, &job, &t, &bl);
    int status = TOOL_OK;
    if (t.problems || t.data_bytes != (int64_t)b->n)
        status =
            failed("verify-memory image bytes", t.data_bytes, (int64_t)b->n);
    else {
        report(b, "verify-memory", one.len, r, "xxh3", one.len, bl.r);
        b->verify_mbs = (double)one.len / r.seconds / 1e6;
    }
    free(one.p);
    return status;
}

/* The same stream in 64 KiB slices (input not stable: the reader copies
 * what spans slices), and parsed with checks off. */
static int case_chunk_variants(bench *b)
{
    sink one = {0};
    if (write_chunks(b->data, b->n, 1 << 20, 0, sink_write, &one, NULL) < 0)
        return failed("writing the chunk stream", -1, 0);
    mig_job job = {.ch = &one, .nch = 1, .verify = 1, .slice = 64 << 10};
    mig_tally t;
    baseline bl = {BASE_XXH3, one.p, one.len, {0, 0}};
    result r = time_migration_vs(b, &job, &t, &bl);
    int status = TOOL_OK;
    if (t.problems || t.data_bytes != (int64_t)b->n)
        status = failed("verify-64k-slices image bytes", t.data_bytes,
                        (int64_t)b->n);
    else
        report(b, "verify-64k-slices", one.len, r, "xxh3", one.len, bl.r);
    job = (mig_job){.ch = &one, .nch = 1, .verify = 0};
    r = time_migration(b, &job, &t);
    if (status == TOOL_OK && (t.problems || t.data_bytes != (int64_t)b->n))
        status = failed("parse-only image bytes", t.data_bytes, (int64_t)b->n);
    else if (status == TOOL_OK)
        report(b, "parse-only", b->n, r, "memcpy", b->n, b->memcpy_r);
    free(one.p);
    return status;
}

/* The writer into a null sink (image bytes) against memcpy of them. */
static int case_write(bench *b)
{
    result r = {0};
    count_alloc ca;
    ms_allocator a = count_allocator(&ca);
    int rc = 0;
    baseline bl = {BASE_MEMCPY, NULL, b->n, {0, 0}};
    BEST_OF(b->reps, r, {
        count_reset(&ca);
        rc |= write_chunks(b->data, b->n, 1 << 20, 0, null_write, NULL, &a);
        double t1_ = now_s(); /* the baseline between runs, untimed */
        run_baseline(b, &bl);
        t0_ += now_s() - t1_;
    });
    if (rc)
        return failed("write", -1, 0);
    r.peak = atomic_load(&ca.peak);
    report(b, "write", b->n, r, "memcpy", b->n, bl.r);
    return TOOL_OK;
}

/* A stream of minimum-size records (`image` image bytes in it) verified;
 * its speed per stream byte against verify-memory's. */
static int time_hostile(bench *b, const char *name, sink *one, size_t image)
{
    if (b->verify_mbs == 0) { /* --case: measured here, not reported */
        int s = case_verify_memory(b);
        if (s != TOOL_OK)
            return s;
    }
    mig_job job = {.ch = one, .nch = 1, .verify = 1, .payloads = 1};
    mig_tally t;
    result r = time_migration(b, &job, &t);
    int status = TOOL_OK;
    if (t.problems || t.data_bytes != (int64_t)image)
        status = failed(name, t.data_bytes, (int64_t)image);
    else {
        /* the baseline as a time for the same bytes at verify's speed */
        result vr = {(double)one->len / (b->verify_mbs * 1e6), 0};
        report(b, name, one->len, r, "verify-memory", one->len, vr);
    }
    free(one->p);
    return status;
}

/* The smallest records that carry image bytes: 1-byte CHUNKs, about as
 * many stream bytes as verify-memory's stream. */
static int case_hostile(bench *b)
{
    size_t image = b->n / 48 ? b->n / 48 : 1; /* ~48 stream bytes each */
    sink one = {0};
    if (write_chunks(b->data, image, 1, 0, sink_write, &one, NULL) < 0)
        return failed("writing the 1-byte chunk stream", -1, 0);
    return time_hostile(b, "hostile-min-records", &one, image);
}

/* The smallest records of all: empty unknown optional records (32 bytes
 * each, skipped after their checks). */
static int case_hostile_empty(bench *b)
{
    sink one = {0};
    if (write_empty_records(b->n / 32, &one) < 0)
        return failed("writing the empty-record stream", -1, 0);
    return time_hostile(b, "hostile-empty-records", &one, 1);
}

/* ---- packets and compressed chunks ------------------------------------------
 */

/* Packets over 4 channels reassembled by the set: views of stable input,
 * and copies of 1 MiB slices. */
static int case_packets(bench *b)
{
    sink ch[4] = {{0}};
    int status = TOOL_OK;
    if (write_packets(b->data, b->n, 1 << 20, 4, ch) < 0)
        status = failed("writing the packet channels", -1, 0);
    result xr = time_xxh3(b, b->data, b->n);
    static const char *const names[2] = {"reassemble-4ch-stable",
                                         "reassemble-4ch-copying"};
    for (int copying = 0; status == TOOL_OK && copying < 2; copying++) {
        mig_job job = {
            .ch = ch, .nch = 4, .verify = 1, .slice = copying ? 1 << 20 : 0};
        mig_tally t;
        result r = time_migration(b, &job, &t);
        if (t.problems || t.data_bytes != (int64_t)b->n)
            status = failed(names[copying], t.data_bytes, (int64_t)b->n);
        else
            report(b, names[copying], b->n, r, "xxh3", b->n, xr);
    }
    for (int i = 0; i < 4; i++)
        free(ch[i].p);
    return status;
}

/* Where each compressed CHUNK's zlib stream lies, from the reader's own
 * events (found once, outside the timing). */
typedef struct span {
    size_t off, len;
} span;

static span *zlib_spans(const sink *z, size_t *count)
{
    span *spans = NULL;
    size_t n = 0, cap = 0;
    ms_reader *rd = ms_reader_create(NULL);
    ms_event ev;
    if (!rd || ms_reader_input(rd, z->p, z->len) < 0)
        n = (size_t)-1;
    while (n != (size_t)-1 && ms_reader_next(rd, &ev) == MS_NEXT_EVENT) {
        if (ev.kind != MS_EV_CHUNK || !ev.u.chunk.compression)
            continue;
        if (n == cap) {
            span *g = realloc(spans, (cap = cap ? 2 * cap : 64) * sizeof *g);
            if (!g)
                break;
            spans = g;
        }
        /* the record header (24) and the CHUNK header (16) precede it */
        spans[n++] =
            (span){(size_t)ev.offset + 24 + 16, (size_t)ev.u.chunk.stored_len};
    }
    ms_reader_free(rd);
    *count = n == (size_t)-1 ? 0 : n;
    return spans;
}

/* zlib chunks verified, against bare inflate of every chunk's stream. */
static int case_zlib_chunks(bench *b)
{
    sink z = {0};
    if (write_chunks(b->data, b->n, 1 << 20, 1, sink_write, &z, NULL) < 0)
        return failed("writing the zlib chunk stream", -1, 0);
    size_t nspans = 0;
    span *spans = zlib_spans(&z, &nspans);
    uint8_t *out = malloc(1 << 20);
    result ir = {0};
    BEST_OF(b->reps, ir, {
        for (size_t i = 0; out && i < nspans; i++) {
            uLongf outlen = 1 << 20;
            uncompress(out, &outlen, z.p + spans[i].off, spans[i].len);
        }
    });
    free(out);
    free(spans);
    mig_job job = {.ch = &z, .nch = 1, .verify = 1};
    mig_tally t;
    result r = time_migration(b, &job, &t);
    int status = TOOL_OK;
    if (t.problems || t.data_bytes != (int64_t)b->n)
        status = failed("verify-zlib-chunks", t.data_bytes, (int64_t)b->n);
    else
        report(b, "verify-zlib-chunks", b->n, r, "inflate", b->n, ir);
    free(z.p);
    return status;
}

/* ---- QEMU streams ----------------------------------------------------------
 */

/* The timed runs end with the memcpy baseline, which fills the RAM buffer
 * too: clear its first page, decode once more, and look. */
static int placed_first_page(const bench *b, mig_job *job)
{
    mig_tally t;
    memset(b->copy, 0xA5, BENCH_PAGE);
    return run_migration(job, &t) == 0 && !t.problems &&
           memcmp(b->copy, b->data, BENCH_PAGE) == 0;
}

/* A main stream of RAM pages: listed (pages not touched), and decoded
 * with every page placed into RAM (bytes: page bytes, zero pages too). */
static int case_qemu(bench *b)
{
    size_t pages = b->n / BENCH_PAGE, bytes = pages * BENCH_PAGE;
    sink q = {0};
    write_qemu(&q, b->data, bytes);
    static const char *const names[2] = {"qemu-list-ram", "qemu-extract-ram"};
    int status = TOOL_OK;
    for (int place = 0; status == TOOL_OK && place < 2; place++) {
        mig_job job = {.ch = &q,
                       .nch = 1,
                       .qemu_main = 1,
                       .verify = 1,
                       .ram = place ? b->copy : NULL,
                       .ram_len = bytes};
        mig_tally t;
        baseline bl = {BASE_MEMCPY, NULL, bytes, {0, 0}};
        result r = time_migration_vs(b, &job, &t, &bl);
        if (t.problems || t.pages != (int64_t)pages)
            status = failed(names[place], t.pages, (int64_t)pages);
        else if (place && !placed_first_page(b, &job))
            status = failed("qemu-extract-ram: first page differs", 1, 0);
        else
            report(b, names[place], bytes, r, "memcpy", bytes, bl.r);
    }
    free(q.p);
    return status;
}

/* Bare inflate of one channel's zlib stream (all packets' bytes). */
static void bare_inflate(const sink *z, uint8_t *out, size_t n)
{
    z_stream zs = {0};
    if (inflateInit(&zs) != Z_OK)
        return;
    zs.next_in = z->p;
    zs.avail_in = (uInt)z->len;
    zs.next_out = out;
    zs.avail_out = (uInt)n;
    inflate(&zs, Z_SYNC_FLUSH);
    inflateEnd(&zs);
}

/* `channels` multifd zlib channels of n page bytes each (a main channel
 * with the block list first), pages placed; against one thread's bare
 * inflate of one channel's bytes. */
static int case_multifd(bench *b, uint8_t channels, const char *name)
{
    size_t pages = b->n / BENCH_PAGE, per = pages * BENCH_PAGE;
    size_t ram_len = per * channels;
    sink ch[3] = {{0}}, z[2] = {{0}};
    write_qemu_main(&ch[0], ram_len);
    for (uint8_t c = 0; c < channels; c++)
        write_multifd_zlib(&ch[1 + c], &z[c], b->data, per, c * (uint64_t)per,
                           c, channels);
    uint8_t *ram = channels == 1 ? b->copy : malloc(ram_len);
    int status = TOOL_OK;
    if (!ram)
        status = failed("memory for the RAM", -1, 0);
    if (ram && ram != b->copy)
        memset(ram, 1, ram_len);
    result ir = {0};
    BEST_OF(b->reps, ir, bare_inflate(&z[0], b->copy, per));
    mig_job job = {.ch = ch,
                   .nch = 1u + channels,
                   .qemu_main = 1,
                   .threads = channels > 1,
                   .verify = 1,
                   .ram = ram,
                   .ram_len = ram_len};
    mig_tally t = {0};
    result r = {0};
    if (status == TOOL_OK)
        r = time_migration(b, &job, &t);
    if (status == TOOL_OK &&
        (t.problems || t.pages != (int64_t)(pages * channels) ||
         memcmp(ram + ram_len - per, b->data, BENCH_PAGE) != 0))
        status = failed(name, t.pages, (int64_t)(pages * channels));
    else if (status == TOOL_OK)
        report(b, name, ram_len, r, "inflate", per, ir);
    if (ram != b->copy)
        free(ram);
    for (int i = 0; i < 3; i++)
        free(ch[i].p);
    free(z[0].p);
    free(z[1].p);
    return status;
}

static int case_multifd1(bench *b)
{
    return case_multifd(b, 1, "multifd-zlib-1");
}
static int case_multifd2(bench *b)
{
    return case_multifd(b, 2, "multifd-zlib-2");
}

/* ---- options and main
 * ---------------------------------------------------------- */

typedef struct bench_case {
    const char *rows[2]; /* the rows it reports */
    int (*run)(bench *b);
} bench_case;

static const bench_case cases[] = {
    {{"verify-memory"}, case_verify_memory},
    {{"verify-64k-slices", "parse-only"}, case_chunk_variants},
    {{"write"}, case_write},
    {{"reassemble-4ch-stable", "reassemble-4ch-copying"}, case_packets},
    {{"verify-zlib-chunks"}, case_zlib_chunks},
    {{"qemu-list-ram", "qemu-extract-ram"}, case_qemu},
    {{"multifd-zlib-1"}, case_multifd1},
    {{"multifd-zlib-2"}, case_multifd2},
    {{"hostile-min-records"}, case_hostile},
    {{"hostile-empty-records"}, case_hostile_empty},
};
#define N_CASES (sizeof cases / sizeof cases[0])

static int reports(const bench_case *c, const char *row)
{
    return !row || (c->rows[0] && strcmp(c->rows[0], row) == 0) ||
           (c->rows[1] && strcmp(c->rows[1], row) == 0);
}

/* clang-format off */
static void usage(FILE *o)
{
    fprintf(o,
"usage: %s [--json] [--size BYTES] [--reps N] [--case NAME]\n"
"Measure the library's speed and memory against baselines taken in the\n"
"same run on the same bytes (memcpy, raw XXH3, bare zlib inflate).\n"
"Each row: the case's MB/s (10^6 bytes), its baseline's MB/s, and the\n"
"ratio case speed / baseline speed (higher is better; 1.00: as fast).\n"
"Nothing is asserted: compare ratios between builds on one machine.\n"
"  --json         one JSON object per line:\n"
"                 {\"case\": NAME, \"mb_per_s\": X, \"baseline\": NAME,\n"
"                  \"baseline_mb_per_s\": Y, \"ratio\": X/Y, \"peak_kib\": K}\n"
"                 peak_kib: the most memory the library held at once\n"
"                 (KiB, through a counting ms_allocator; for threaded\n"
"                 cases all threads together); 0: not measured\n"
"  --size BYTES   image or page bytes per case (default 256M; K, M, G)\n"
"  --reps N       best of N runs (default 3)\n"
"  --case NAME    run only that case\n"
"  -h, --help     this help\n"
"  -V, --version  version\n"
"cases (baseline), all through ms_migration from memory, no file I/O:\n"
"  verify-memory        one channel of 1 MiB CHUNKs verified as\n"
"                       migstream-verify does (xxh3 of the stream bytes)\n"
"  verify-64k-slices    the same in 64 KiB slices, input not stable (xxh3)\n"
"  parse-only           the same, checks off (memcpy of the image bytes)\n"
"  write                the writer, 1 MiB chunks, to a null sink (memcpy)\n"
"  reassemble-4ch-stable, reassemble-4ch-copying\n"
"                       1 MiB packets over 4 channels reassembled by the\n"
"                       set, whole input / 1 MiB slices copied (xxh3)\n"
"  verify-zlib-chunks   zlib CHUNKs verified (bare inflate of each chunk)\n"
"  qemu-list-ram        a QEMU main stream of RAM pages (1 in 8 a zero\n"
"                       page) decoded, pages not touched (memcpy)\n"
"  qemu-extract-ram     the same, every page placed into a RAM buffer at\n"
"                       its offset: decode + placement in memory, pages\n"
"                       copied with streaming stores as a destination\n"
"                       would (memcpy of the page bytes); the tool against\n"
"                       dd on files is in scripts/bench-tools.sh\n"
"  multifd-zlib-1       one multifd zlib channel decoded, pages placed, one\n"
"                       thread (bare inflate of the same compressed bytes)\n"
"  multifd-zlib-2       two such channels on two threads through one\n"
"                       ms_migration (MS_MIGRATION_CONCURRENT), bytes: both\n"
"                       channels' pages (inflate of one channel, one\n"
"                       thread: 2.00 would be ideal scaling)\n"
"  hostile-min-records  a stream of 1-byte CHUNK records (the smallest that\n"
"                       carry image bytes) verified: stream bytes per second\n"
"                       against verify-memory's\n"
"  hostile-empty-records  the same for empty unknown optional records (the\n"
"                       smallest records of all, 32 bytes) around a 1-byte\n"
"                       image\n",
            prog);
}
/* clang-format on */

/* 0 to go on, 1 when done (help, version), -1 on a usage error. */
static int parse_args(int argc, char **argv, bench *b, uint64_t *size)
{
    static const struct option longs[] = {{"size", required_argument, 0, 's'},
                                          {"reps", required_argument, 0, 'r'},
                                          {"case", required_argument, 0, 'c'},
                                          {"json", no_argument, 0, 'j'},
                                          {"help", no_argument, 0, 'h'},
                                          {"version", no_argument, 0, 'V'},
                                          {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "hV", longs, NULL)) != -1) {
        switch (c) {
        case 's':
            if (tool_parse_size(optarg, size) < 0 || *size < BENCH_PAGE ||
                *size > SIZE_MAX / 4) {
                fprintf(stderr, "%s: bad --size '%s'\n", prog, optarg);
                return -1;
            }
            break;
        case 'r':
            b->reps = atoi(optarg) > 0 ? atoi(optarg) : 1;
            break;
        case 'c':
            b->only = optarg;
            break;
        case 'j':
            b->json = 1;
            break;
        case 'h':
            usage(stdout);
            return 1;
        case 'V':
            printf("%s %s\n", prog, ms_version_string());
            return 1;
        default:
            usage(stderr);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument '%s'\n", prog, argv[optind]);
        return -1;
    }
    for (size_t i = 0; b->only && i < N_CASES; i++)
        if (reports(&cases[i], b->only))
            return 0;
    if (b->only) {
        fprintf(stderr, "%s: unknown case '%s' (see --help)\n", prog, b->only);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    uint64_t size = (uint64_t)256 << 20;
    bench b = {.reps = 3};
    int parsed = parse_args(argc, argv, &b, &size);
    if (parsed)
        return parsed > 0 ? TOOL_OK : TOOL_USAGE;
    size_t n = (size_t)size;
    uint8_t *data = malloc(n), *copy = malloc(n);
    if (!data || !copy) {
        fprintf(stderr, "%s: out of memory for %zu bytes\n", prog, n);
        return TOOL_USAGE;
    }
    /* both touched before any timing */
    fill(data, n, 1);
    memset(copy, 1, n);
    b.data = data;
    b.copy = copy;
    b.n = n;
    if (!b.json)
        printf("migstream-bench %s: %zu MiB per case, best of %d\n"
               "%-24s %13s  %7s %-14s %13s\n",
               ms_version_string(), n >> 20, b.reps, "case", "speed", "ratio",
               "baseline", "its speed");
    BEST_OF(b.reps, b.memcpy_r, memcpy(copy, data, n));
    int status = TOOL_OK;
    for (size_t i = 0; status == TOOL_OK && i < N_CASES; i++)
        if (reports(&cases[i], b.only))
            status = cases[i].run(&b);
    free(data);
    free(copy);
    return status;
}
