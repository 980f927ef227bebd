/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* ms_migration: every channel of one migration through readers, a set and
 * nested driver payload readers.
 *
 * - the QEMU 10.0 multifd4-zstd capture: channels fed forward, in reverse
 *   (multifd channels held until the main channel's page size), and one
 *   byte at a time round-robin give the same events per channel and the
 *   same verdict;
 * - VFIO device payloads (mlx5 records, written here from spec/payloads.md)
 *   inside a QEMU main stream, inside multifd device-state packets and
 *   inside migstream packet/chunk images come out as nested payload events
 *   labelled with the device, its phase and carrier offset;
 * - a stream cut at every offset gives a problem, never a crash;
 * - a held channel over max_buffered_bytes is a limit problem;
 * - MS_MIGRATION_CONCURRENT: the capture's five channels fed on five
 *   threads give the same events per channel as one thread. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "migstream.h"
#include "test_util.h"

static int g_fail;

#define MAX_SLOTS 8

/* ---- what came out
 * ------------------------------------------------------------ */

typedef struct rec {
    char line[160];
} rec;

typedef struct seen {
    rec *ev[MAX_SLOTS]; /* per slot: reader events (no DATA) */
    size_t nev[MAX_SLOTS], capev[MAX_SLOTS];
    uint64_t data_bytes[MAX_SLOTS];
    rec *derived; /* set events (no DATA), in order */
    size_t nder, capder;
    uint64_t derived_bytes;
    rec *nested; /* nested payload events */
    size_t nnest, capnest;
    uint64_t nested_bytes; /* payload DATA */
    ms_error_info problems[16];
    size_t nprob;
} seen;

static void push(rec **arr, size_t *n, size_t *cap, const char *fmt, ...)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 256;
        *arr = realloc(*arr, *cap * sizeof **arr);
        assert_non_null(*arr);
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf((*arr)[*n].line, sizeof(*arr)[*n].line, fmt, ap);
    va_end(ap);
    (*n)++;
}

static void seen_free(seen *s)
{
    for (int i = 0; i < MAX_SLOTS; i++)
        free(s->ev[i]);
    free(s->derived);
    free(s->nested);
    memset(s, 0, sizeof *s);
}

static void on_event(void *ctx, const ms_event *ev, const ms_event_origin *o)
{
    seen *s = ctx;
    const char *kind = ms_event_kind_name(ev->kind);
    if (o->device) {
        if (ev->kind == MS_EV_DATA) { /* split where the carrier split */
            s->nested_bytes += ev->u.data.size;
            return;
        }
        const char *name = ev->kind == MS_EV_PAYLOAD_RECORD ? ev->u.precord.name
                           : ev->kind == MS_EV_PAYLOAD_FIELD ? ev->u.pfield.name
                                                             : "";
        push(&s->nested, &s->nnest, &s->capnest,
             "%s#%u slot=%u %s %s @%llu+%llu phase=%s carrier=%llu", o->device,
             o->instance_id, o->channel, kind, name,
             (unsigned long long)ev->offset, (unsigned long long)ev->length,
             ms_phase_name(o->phase), (unsigned long long)o->carrier_offset);
        return;
    }
    if (o->derived) {
        if (ev->kind == MS_EV_DATA) {
            s->derived_bytes += ev->u.data.size;
            return;
        }
        push(&s->derived, &s->nder, &s->capder, "ch%u %s @%llu+%llu",
             o->channel, kind, (unsigned long long)ev->offset,
             (unsigned long long)ev->length);
        return;
    }
    assert_true(o->channel < MAX_SLOTS);
    if (ev->kind == MS_EV_DATA) {
        s->data_bytes[o->channel] += ev->u.data.size;
        return;
    }
    push(&s->ev[o->channel], &s->nev[o->channel], &s->capev[o->channel],
         "%s @%llu+%llu", kind, (unsigned long long)ev->offset,
         (unsigned long long)ev->length);
}

static void on_problem(void *ctx, const ms_error_info *e)
{
    seen *s = ctx;
    if (s->nprob < 16)
        s->problems[s->nprob] = *e;
    s->nprob++;
}

static void print_problems(const seen *s)
{
    for (size_t i = 0; i < s->nprob && i < 16; i++)
        tb_print_err("problem", &s->problems[i]);
}

/* ---- feeding
 * ------------------------------------------------------------------ */

typedef struct chan {
    const uint8_t *p;
    size_t len;
} chan;

/* open slot 0 with format QEMU_MAIN (known to be a main channel before
 * its bytes come) */
static int g_force_main;

enum feed_way { FORWARD, REVERSE, BYTEWISE_ROUND_ROBIN };

/* Feed n channels (slot = index) one way; returns ms_migration_finish's
 * verdict. */
static int run(const chan *ch, size_t n, const ms_options *opt, unsigned flags,
               enum feed_way way, seen *s)
{
    ms_migration_callbacks cb = {on_event, on_problem, s};
    ms_migration *m = ms_migration_create(opt, &cb, flags);
    assert_non_null(m);
    for (size_t i = 0; i < n; i++) {
        ms_channel_input in = {.format = i == 0 && g_force_main
                                             ? MS_FORMAT_QEMU_MAIN
                                             : MS_FORMAT_AUTO};
        assert_int_equal(ms_migration_channel_open(m, (uint32_t)i, &in), 0);
    }
    if (way == BYTEWISE_ROUND_ROBIN) {
        size_t most = 0;
        for (size_t i = 0; i < n; i++)
            most = ch[i].len > most ? ch[i].len : most;
        for (size_t at = 0; at < most; at++)
            for (size_t i = 0; i < n; i++)
                if (at < ch[i].len)
                    ms_migration_input(m, (uint32_t)i, ch[i].p + at, 1);
        for (size_t i = 0; i < n; i++)
            ms_migration_channel_end(m, (uint32_t)i);
    } else {
        for (size_t k = 0; k < n; k++) {
            size_t i = way == FORWARD ? k : n - 1 - k;
            ms_migration_input(m, (uint32_t)i, ch[i].p, ch[i].len);
            ms_migration_channel_end(m, (uint32_t)i);
        }
    }
    int rc = ms_migration_finish(m);
    SOFT(rc == (s->nprob ? -1 : 0), "finish %d with %zu problems", rc,
         s->nprob);
    SOFT(ms_migration_problems(m) == s->nprob, "problem count");
    ms_migration_free(m);
    return rc;
}

/* Lines equal; with g_no_carrier, up to " carrier=" (bytes fed in other
 * pieces come from other carrier offsets). */
static int g_no_carrier;

static int same_line(const char *a, const char *b)
{
    const char *ca = g_no_carrier ? strstr(a, " carrier=") : NULL;
    const char *cb = g_no_carrier ? strstr(b, " carrier=") : NULL;
    if (!ca || !cb)
        return strcmp(a, b) == 0;
    return ca - a == cb - b && strncmp(a, b, (size_t)(ca - a)) == 0;
}

/* Forward, reverse and bytewise round-robin with nested payloads, each a
 * valid migration. */
static void run_three_ways(const chan *ch, size_t n, seen *fwd, seen *rev,
                           seen *byte)
{
    ms_options opt;
    ms_options_init(&opt);
    static const enum feed_way ways[3] = {FORWARD, REVERSE,
                                          BYTEWISE_ROUND_ROBIN};
    seen *out[3] = {fwd, rev, byte};
    for (int w = 0; w < 3; w++) {
        SOFT(run(ch, n, &opt, MS_MIGRATION_NESTED_PAYLOADS, ways[w], out[w]) ==
                 0,
             "way %d: valid", w);
        print_problems(out[w]);
    }
}

static int same_recs(const rec *a, size_t na, const rec *b, size_t nb,
                     const char *what)
{
    size_t n = na < nb ? na : nb;
    for (size_t i = 0; i < n; i++)
        if (!same_line(a[i].line, b[i].line)) {
            print_message("  %s: event %zu differs: %s | %s\n", what, i,
                          a[i].line, b[i].line);
            return 0;
        }
    if (na != nb)
        print_message("  %s: %zu events vs %zu\n", what, na, nb);
    return na == nb;
}

/* Same events per channel, same set events (in order), same bytes. */
static void expect_same(const seen *a, const seen *b, const char *what)
{
    for (int i = 0; i < MAX_SLOTS; i++) {
        SOFT(same_recs(a->ev[i], a->nev[i], b->ev[i], b->nev[i], what),
             "%s: slot %d events", what, i);
        SOFT(a->data_bytes[i] == b->data_bytes[i], "%s: slot %d bytes", what,
             i);
    }
    SOFT(same_recs(a->derived, a->nder, b->derived, b->nder, what),
         "%s: set events", what);
    SOFT(a->derived_bytes == b->derived_bytes, "%s: set bytes", what);
    SOFT(same_recs(a->nested, a->nnest, b->nested, b->nnest, what),
         "%s: nested events", what);
    SOFT(a->nprob == b->nprob, "%s: %zu problems vs %zu", what, a->nprob,
         b->nprob);
}

/* The nested events of one device, in order, are the same. */
static int same_device(const seen *a, const seen *b, const char *device)
{
    size_t i = 0, k = 0;
    for (;;) {
        while (i < a->nnest && !strstr(a->nested[i].line, device))
            i++;
        while (k < b->nnest && !strstr(b->nested[k].line, device))
            k++;
        if (i == a->nnest || k == b->nnest)
            return i == a->nnest && k == b->nnest;
        if (!same_line(a->nested[i].line, b->nested[k].line)) {
            print_message("  %s: %s | %s\n", device, a->nested[i].line,
                          b->nested[k].line);
            return 0;
        }
        i++;
        k++;
    }
}

static size_t count_nested2(const seen *s, const char *needle, const char *also)
{
    size_t n = 0;
    for (size_t i = 0; i < s->nnest; i++)
        n += strstr(s->nested[i].line, needle) != NULL &&
             (!also || strstr(s->nested[i].line, also) != NULL);
    return n;
}

static size_t count_nested(const seen *s, const char *needle)
{
    return count_nested2(s, needle, NULL);
}

/* ---- the QEMU 10.0 capture
 * ----------------------------------------------------- */

#define CAPTURE "tests/data/captures/qemu-10.0-pc-multifd4-zstd/"

/* The capture's main channel (conn0) and its four multifd channels. */
static void load_capture(uint8_t *bufs[5], chan ch[5])
{
    for (int i = 0; i < 5; i++) {
        char rel[128];
        snprintf(rel, sizeof rel, CAPTURE "conn%d.bin", i);
        bufs[i] = tb_load_source(rel, &ch[i].len);
        assert_non_null(bufs[i]);
        ch[i].p = bufs[i];
    }
}

static void test_capture_orders(void **state)
{
    (void)state;
    BEGIN();
    uint8_t *bufs[5];
    chan ch[5];
    load_capture(bufs, ch);
    seen fwd = {0}, rev = {0}, byte = {0};
    run_three_ways(ch, 5, &fwd, &rev, &byte);
    expect_same(&fwd, &rev, "reverse");
    g_no_carrier = 1;
    expect_same(&fwd, &byte, "bytewise");
    g_no_carrier = 0;
    /* the capture's facts (README): a main channel and 4 multifd channels */
    SOFT(fwd.nev[0] > 0 && strncmp(fwd.ev[0][0].line, "stream @0", 9) == 0,
         "main channel header");
    for (int i = 1; i < 5; i++)
        SOFT(fwd.nev[i] > 1 && strncmp(fwd.ev[i][1].line, "channel", 7) == 0,
             "slot %d: multifd init packet", i);
    /* a wrong page size would break every page count: the main channel's
     * configuration reached the held channels */
    seen wrong = {0};
    ms_options opt;
    ms_options_init(&opt);
    opt.qemu_page_size = 512;
    run(ch, 5, &opt, 0, REVERSE, &wrong);
    SOFT(wrong.nprob > 0, "multifd channels decoded with a 512-byte page "
                          "size must fail");
    seen_free(&wrong);
    seen_free(&fwd);
    seen_free(&rev);
    seen_free(&byte);
    for (int i = 0; i < 5; i++)
        free(bufs[i]);
    DONE();
}

/* ---- several threads
 * ----------------------------------------------------------- */

typedef struct feeder {
    pthread_t thread;
    ms_migration *m;
    uint32_t slot;
    chan ch;
    int rc; /* the worst ms_migration_input / channel_end result */
} feeder;

/* One channel in 64 KiB slices, then its end: what a tool's thread per
 * file does.  In concurrent mode a call blocks where a single-threaded
 * caller's bytes would be held. */
static void *feed_channel(void *arg)
{
    feeder *f = arg;
    for (size_t at = 0; at < f->ch.len && f->rc >= 0; at += 65536) {
        size_t n = f->ch.len - at < 65536 ? f->ch.len - at : 65536;
        int rc = ms_migration_input(f->m, f->slot, f->ch.p + at, n);
        f->rc = rc < f->rc ? rc : f->rc;
    }
    int rc = ms_migration_channel_end(f->m, f->slot);
    f->rc = rc < f->rc ? rc : f->rc;
    return NULL;
}

/* Returns 0 when every feeding call and ms_migration_finish succeeded. */
static int run_threads(const chan *ch, size_t n, seen *s)
{
    ms_options opt;
    ms_options_init(&opt);
    ms_migration_callbacks cb = {on_event, on_problem, s};
    ms_migration *m = ms_migration_create(
        &opt, &cb, MS_MIGRATION_NESTED_PAYLOADS | MS_MIGRATION_CONCURRENT);
    assert_non_null(m);
    feeder f[MAX_SLOTS];
    assert_true(n <= MAX_SLOTS);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(ms_migration_channel_open(m, (uint32_t)i, NULL), 0);
    /* the multifd channels start first: they must wait for the main
     * channel's page size and for their turn, not decode without them */
    for (size_t k = 0; k < n; k++) {
        size_t i = n - 1 - k;
        f[i] = (feeder){.m = m, .slot = (uint32_t)i, .ch = ch[i]};
        assert_int_equal(
            pthread_create(&f[i].thread, NULL, feed_channel, &f[i]), 0);
    }
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        pthread_join(f[i].thread, NULL);
        rc = f[i].rc < rc ? f[i].rc : rc;
    }
    int fin = ms_migration_finish(m);
    ms_migration_free(m);
    return rc < 0 ? rc : fin;
}

static void test_concurrent(void **state)
{
    (void)state;
    BEGIN();
    uint8_t *bufs[5];
    chan ch[5];
    load_capture(bufs, ch);
    ms_options opt;
    ms_options_init(&opt);
    for (int rep = 0; rep < 3; rep++) { /* thread timing differs per run */
        seen one = {0}, many = {0};
        SOFT(run(ch, 5, &opt, MS_MIGRATION_NESTED_PAYLOADS, FORWARD, &one) == 0,
             "one thread: valid");
        SOFT(run_threads(ch, 5, &many) == 0, "rep %d: threads: valid", rep);
        print_problems(&many);
        /* set events may interleave differently; each channel's own
         * events, the bytes and the verdict may not */
        for (int i = 0; i < 5; i++) {
            SOFT(same_recs(one.ev[i], one.nev[i], many.ev[i], many.nev[i],
                           "threads"),
                 "rep %d slot %d: events", rep, i);
            SOFT(one.data_bytes[i] == many.data_bytes[i],
                 "rep %d slot %d: bytes", rep, i);
        }
        SOFT(one.nder == many.nder && one.derived_bytes == many.derived_bytes,
             "rep %d: set events %zu vs %zu", rep, one.nder, many.nder);
        SOFT(many.nprob == 0, "rep %d: %zu problems", rep, many.nprob);
        seen_free(&one);
        seen_free(&many);
    }
    for (int i = 0; i < 5; i++)
        free(bufs[i]);
    DONE();
}

/* A multifd packet naming a block the main stream does not list is a
 * problem whether the main channel's block list was read before the packet
 * (one thread, main first) or is still being read (threads: the check
 * waits for the list to be complete). */
static void test_unknown_block(void **state)
{
    (void)state;
    BEGIN();
    uint8_t *bufs[5];
    chan ch[5];
    load_capture(bufs, ch);
    /* conn1's first packet with pages names "pc.ram": make it "pc.raX" */
    uint8_t *name = NULL;
    for (size_t i = 0; i + 7 <= ch[1].len && !name; i++)
        if (memcmp(bufs[1] + i, "pc.ram", 7) == 0)
            name = bufs[1] + i;
    assert_non_null(name);
    name[5] = 'X';
    ms_options opt;
    ms_options_init(&opt);
    for (int way = 0; way < 2; way++) {
        seen s = {0};
        if (way == 0)
            run(ch, 5, &opt, 0, FORWARD, &s);
        else
            run_threads(ch, 5, &s);
        int found = 0;
        for (size_t i = 0; i < s.nprob && i < 16; i++)
            found |= s.problems[i].channel == 1 &&
                     strstr(s.problems[i].detail, "\"pc.raX\", which the "
                                                  "main stream's block list "
                                                  "does not have") != NULL;
        SOFT(found, "%s: the unknown block is reported on slot 1",
             way ? "threads" : "one thread");
        seen_free(&s);
    }
    for (int i = 0; i < 5; i++)
        free(bufs[i]);
    DONE();
}

/* ---- mlx5 payloads
 * ------------------------------------------------------------- */

/* mlx5 SW-header records (spec/payloads.md section 5): le64 size, le32
 * flags, le32 tag.  STOP_COPY_SIZE (tag 1, optional) then FW_DATA (tag 0)
 * records of the sizes given. */
static void mlx5_record(tb_buf *b, uint32_t flags, uint32_t tag, const void *p,
                        size_t n)
{
    tb_put_le64(b, n);
    tb_put_le32(b, flags);
    tb_put_le32(b, tag);
    tb_put(b, p, n);
}

static void mlx5_stream(tb_buf *b, int with_size, const size_t *fw, size_t n,
                        uint64_t seed)
{
    uint8_t v[8];
    tb_set_le64(v, 0x4000);
    if (with_size)
        mlx5_record(b, 1, 1, v, 8);
    for (size_t i = 0; i < n; i++) {
        uint8_t *d = malloc(fw[i]);
        assert_non_null(d);
        tb_fill_random(d, fw[i], seed + i);
        mlx5_record(b, 0, 0, d, fw[i]);
        free(d);
    }
}

#define DEV_A "0000:00:02.0/vfio"
#define DEV_B "0000:00:03.0/vfio"

/* A QEMU main stream: device A's mlx5 payload in VFIO PART (initial) and
 * END (final) sections; device B has a section (its data goes over
 * multifd).  And a multifd channel carrying device B's state: two data
 * buffers and the config buffer. */
typedef struct qemu_pair {
    tb_buf main, mfd;
    size_t a_records, b_records;
} qemu_pair;

static void qemu_pair_build(qemu_pair *q)
{
    tb_buf_init(&q->main);
    tb_buf_init(&q->mfd);
    tb_buf pa1, pa2, pb;
    tb_buf_init(&pa1);
    tb_buf_init(&pa2);
    tb_buf_init(&pb);
    static const size_t a1[] = {300}, a2[] = {200, 100}, b1[] = {500, 40};
    mlx5_stream(&pa1, 1, a1, 1, 1);
    mlx5_stream(&pa2, 0, a2, 2, 2);
    mlx5_stream(&pb, 1, b1, 2, 3);
    q->a_records = 1 + 1 + 2;
    q->b_records = 1 + 2;

    tb_buf *b = &q->main;
    tq_header(b);
    tq_cfg c = {.has_page_bits = 1, .page_bits = 12};
    tq_config(b, &c);
    tq_section_start(b, TQ_START, 2, DEV_A, 0, 1);
    tq_vfio_marker(b, TQ_VFIO_SETUP_STATE);
    tq_vfio_marker(b, TQ_VFIO_END_OF_STATE);
    tq_footer(b, 2);
    tq_section_start(b, TQ_START, 3, DEV_B, 0, 1);
    tq_vfio_marker(b, TQ_VFIO_SETUP_STATE);
    tq_vfio_marker(b, TQ_VFIO_END_OF_STATE);
    tq_footer(b, 3);
    tq_section_part(b, TQ_PART, 2);
    tq_vfio_data(b, pa1.p, pa1.len);
    tq_vfio_marker(b, TQ_VFIO_END_OF_STATE);
    tq_footer(b, 2);
    tq_section_part(b, TQ_END, 2);
    tq_vfio_data(b, pa2.p, 150); /* split across two DATA_STATE chunks */
    tq_vfio_data(b, pa2.p + 150, pa2.len - 150);
    tq_vfio_marker(b, TQ_VFIO_END_OF_STATE);
    tq_footer(b, 2);
    tq_section_part(b, TQ_END, 3);
    tq_vfio_marker(b, TQ_VFIO_END_OF_STATE);
    tq_footer(b, 3);
    tq_eof(b);

    tb_buf cfg;
    tb_buf_init(&cfg);
    tm_config_bytes(&cfg, 24, 5);
    tm_init(&q->mfd, NULL, 0);
    tm_device(&q->mfd, DEV_B, 0, 0, 0, pb.p, 300);
    tm_device(&q->mfd, DEV_B, 0, 1, 0, pb.p + 300, pb.len - 300);
    tm_device(&q->mfd, DEV_B, 0, 2, TM_VFIO_CONFIG, cfg.p, cfg.len);
    tb_buf_free(&cfg);
    tb_buf_free(&pa1);
    tb_buf_free(&pa2);
    tb_buf_free(&pb);
}

/* The pair as channels (main in slot 0), default options. */
static void qemu_pair_setup(qemu_pair *q, chan ch[2], ms_options *opt)
{
    qemu_pair_build(q);
    ch[0] = (chan){q->main.p, q->main.len};
    ch[1] = (chan){q->mfd.p, q->mfd.len};
    ms_options_init(opt);
}

static void qemu_pair_free(qemu_pair *q)
{
    tb_buf_free(&q->main);
    tb_buf_free(&q->mfd);
}

static void test_nested_qemu(void **state)
{
    (void)state;
    BEGIN();
    qemu_pair q;
    chan ch[2];
    ms_options opt;
    qemu_pair_setup(&q, ch, &opt);
    seen fwd = {0}, rev = {0}, byte = {0};
    run_three_ways(ch, 2, &fwd, &rev, &byte);
    expect_same(&fwd, &rev, "reverse");
    /* bytewise, round-robin: the two devices' events interleave otherwise,
     * each device's are the same */
    g_no_carrier = 1;
    SOFT(same_device(&fwd, &byte, DEV_A), "bytewise: device A");
    SOFT(same_device(&fwd, &byte, DEV_B), "bytewise: device B");
    g_no_carrier = 0;

    /* device A: records in the main stream, initial then final; device B:
     * records in the reassembled multifd image, final */
    SOFT(count_nested(&fwd, DEV_A "#0 slot=0 record") == q.a_records,
         "device A records: %zu", count_nested(&fwd, DEV_A "#0 slot=0 record"));
    SOFT(count_nested(&fwd, DEV_B "#0 slot=1 record") == q.b_records,
         "device B records: %zu", count_nested(&fwd, DEV_B "#0 slot=1 record"));
    SOFT(count_nested(&fwd, DEV_A "#0 slot=0 record FW_DATA @16+316 "
                                  "phase=initial") == 0 &&
             count_nested(&fwd, DEV_A "#0 slot=0 record FW_DATA @24+316 "
                                      "phase=initial") == 1,
         "device A's initial FW_DATA follows its STOP_COPY_SIZE");
    SOFT(count_nested(&fwd, "phase=final") >= 2 + q.b_records,
         "final records: %zu", count_nested(&fwd, "phase=final"));
    SOFT(count_nested2(&fwd, " record ", "phase=initial") == 2,
         "initial: STOP_COPY_SIZE and FW_DATA of device A only");
    SOFT(fwd.nested_bytes == byte.nested_bytes && fwd.nested_bytes > 0,
         "payload data bytes");
    for (size_t i = 0; i < fwd.nnest; i++)
        print_message("    %s\n", fwd.nested[i].line);

    /* without the flag: no nested events */
    seen off = {0};
    run(ch, 2, &opt, 0, FORWARD, &off);
    SOFT(off.nnest == 0, "no nested events without the flag");
    seen_free(&off);
    seen_free(&fwd);
    seen_free(&rev);
    seen_free(&byte);
    qemu_pair_free(&q);
    DONE();
}

/* migstream: device 7 (mlx5, home channel 0) with an initial image in
 * chunks and a final image in packets spread over both channels. */
static void test_nested_migstream(void **state)
{
    (void)state;
    BEGIN();
    tb_buf init, fin;
    tb_buf_init(&init);
    tb_buf_init(&fin);
    static const size_t i1[] = {700}, f1[] = {900, 300};
    mlx5_stream(&init, 1, i1, 1, 11);
    mlx5_stream(&fin, 0, f1, 2, 12);
    tb_wdevice dev = {.handle = 7, .idstr = DEV_A, .kind = MS_PAYLOAD_MLX5};
    uint8_t cfg[16] = {1, 2, 3};
    tb_wimage imgs[2] = {{.device = 7,
                          .phase = MS_PHASE_INITIAL,
                          .transport = MS_TRANSPORT_CHUNKS,
                          .data = init.p,
                          .len = init.len,
                          .piece = 100},
                         {.device = 7,
                          .phase = MS_PHASE_FINAL,
                          .transport = MS_TRANSPORT_PACKETS,
                          .data = fin.p,
                          .len = fin.len,
                          .piece = 256,
                          .config = cfg,
                          .config_len = sizeof cfg}};
    tb_workload w = {.channels = 2,
                     .devs = &dev,
                     .n_devs = 1,
                     .imgs = imgs,
                     .n_imgs = 2,
                     .chunk_size = 128};
    tb_buf out[2];
    tb_buf_init(&out[0]); /* was left uninitialised: the TSan build's */
    tb_buf_init(&out[1]); /* stack held garbage there and it crashed */
    ms_error_info err;
    assert_int_equal(tb_write_workload(&w, out, &err), 0);
    chan ch[2] = {{out[0].p, out[0].len}, {out[1].p, out[1].len}};
    seen fwd = {0}, rev = {0}, byte = {0};
    run_three_ways(ch, 2, &fwd, &rev, &byte);
    SOFT(count_nested(&fwd, DEV_A "#0 slot=0 record STOP_COPY_SIZE") == 1,
         "STOP_COPY_SIZE");
    SOFT(count_nested(&fwd, "record FW_DATA @24+716 phase=initial") == 1,
         "initial FW_DATA");
    SOFT(count_nested(&fwd, "record FW_DATA") == 3, "FW_DATA: %zu",
         count_nested(&fwd, "record FW_DATA"));
    SOFT(count_nested(&fwd, "phase=final") >= 2, "final records");
    /* the nested events do not depend on the channels' order */
    SOFT(same_recs(fwd.nested, fwd.nnest, rev.nested, rev.nnest, "reverse"),
         "reverse nested");
    g_no_carrier = 1;
    SOFT(same_recs(fwd.nested, fwd.nnest, byte.nested, byte.nnest, "bytewise"),
         "bytewise nested");
    g_no_carrier = 0;
    for (size_t i = 0; i < fwd.nnest; i++)
        print_message("    %s\n", fwd.nested[i].line);
    seen_free(&fwd);
    seen_free(&rev);
    seen_free(&byte);
    tb_buf_free(&out[0]);
    tb_buf_free(&out[1]);
    tb_buf_free(&init);
    tb_buf_free(&fin);
    DONE();
}

/* ---- truncation and limits
 * ------------------------------------------------------ */

static void test_truncation(void **state)
{
    (void)state;
    BEGIN();
    qemu_pair q;
    qemu_pair_build(&q);
    ms_options opt;
    ms_options_init(&opt);
    for (size_t cut = 0; cut < q.main.len; cut++) {
        chan ch[2] = {{q.main.p, cut}, {q.mfd.p, q.mfd.len}};
        seen s = {0};
        int rc = run(ch, 2, &opt, MS_MIGRATION_NESTED_PAYLOADS, FORWARD, &s);
        SOFT(rc < 0 && s.nprob > 0, "main cut at %zu: no problem", cut);
        seen_free(&s);
    }
    for (size_t cut = 0; cut < q.mfd.len; cut++) {
        chan ch[2] = {{q.main.p, q.main.len}, {q.mfd.p, cut}};
        seen s = {0};
        int rc = run(ch, 2, &opt, MS_MIGRATION_NESTED_PAYLOADS, REVERSE, &s);
        /* just the init packet: a channel that carried nothing, valid */
        if (cut != 64)
            SOFT(rc < 0 && s.nprob > 0, "multifd cut at %zu: no problem", cut);
        seen_free(&s);
    }
    qemu_pair_free(&q);
    DONE();
}

static void test_hold_limit(void **state)
{
    (void)state;
    BEGIN();
    qemu_pair q;
    chan ch[2];
    ms_options opt;
    qemu_pair_setup(&q, ch, &opt);
    opt.max_buffered_bytes = 256; /* the multifd channel is over 900 */
    seen s = {0};
    SOFT(run(ch, 2, &opt, 0, REVERSE, &s) < 0, "held over the limit");
    SOFT(s.nprob >= 1 && s.problems[0].code == MS_ERR_LIMIT &&
             s.problems[0].has_channel && s.problems[0].channel == 1 &&
             strstr(s.problems[0].detail, "max_buffered_bytes"),
         "a limit problem for slot 1 naming max_buffered_bytes");
    print_problems(&s);
    seen_free(&s);
    /* forward: nothing held */
    SOFT(run(ch, 2, &opt, 0, FORWARD, &s) == 0, "forward: within the limit");
    seen_free(&s);
    /* the page size given, slot 0 known to be the main channel: no hold
     * (without the forced format, slot 0 could be a channel whose first
     * event must go first) */
    opt.qemu_page_size = 4096;
    g_force_main = 1;
    SOFT(run(ch, 2, &opt, 0, REVERSE, &s) == 0, "page size given: no hold");
    print_problems(&s);
    seen_free(&s);
    g_force_main = 0;
    /* stable input: views, no copies */
    opt.qemu_page_size = 0;
    opt.input_stable = 1;
    SOFT(run(ch, 2, &opt, 0, REVERSE, &s) == 0, "stable input: views");
    seen_free(&s);
    qemu_pair_free(&q);
    DONE();
}

/* A VFIO device beyond max_devices is not payload-decoded, and says so:
 * the migration must not pass as checked (was silent). */
static void test_nested_untracked(void **state)
{
    (void)state;
    BEGIN();
    qemu_pair q;
    chan ch[2];
    ms_options opt;
    qemu_pair_setup(&q, ch, &opt);
    seen s = {0};
    SOFT(run(ch, 2, &opt, MS_MIGRATION_NESTED_PAYLOADS, FORWARD, &s) == 0 &&
             s.nprob == 0,
         "both devices within the default limit");
    seen_free(&s);
    opt.max_devices = 1;
    run(ch, 2, &opt, MS_MIGRATION_NESTED_PAYLOADS, FORWARD, &s);
    size_t found = 0;
    for (size_t i = 0; i < s.nprob && i < 16; i++)
        found += s.problems[i].code == MS_ERR_LIMIT &&
                 s.problems[i].limit == MS_LIMIT_MAX_DEVICES &&
                 strstr(s.problems[i].detail, "not decoded") != NULL;
    SOFT(found == 1, "one max_devices problem naming the undecoded payload "
                     "(%zu)", found);
    SOFT(count_nested(&s, DEV_A "#0 slot=0 record") == q.a_records,
         "the first device is still decoded");
    print_problems(&s);
    seen_free(&s);
    qemu_pair_free(&q);
    DONE();
}

/* Misuse is a problem, not a crash. */
static void test_usage(void **state)
{
    (void)state;
    BEGIN();
    seen s = {0};
    ms_migration_callbacks cb = {on_event, on_problem, &s};
    ms_migration_callbacks none = {0};
    SOFT(ms_migration_create(NULL, &none, 0) == NULL, "callbacks required");
    ms_migration *m = ms_migration_create(NULL, &cb, 0);
    assert_non_null(m);
    SOFT(ms_migration_input(m, 3, "x", 1) == -1, "input before open");
    SOFT(ms_migration_channel_open(m, 0, NULL) == 0, "open");
    SOFT(ms_migration_channel_open(m, 0, NULL) == -1, "open twice");
    SOFT(ms_migration_channel_open(m, 1u << 30, NULL) == -1, "max_channels");
    SOFT(ms_migration_channel_end(m, 0) == -1, "an empty channel fails");
    SOFT(ms_migration_input(m, 0, "x", 1) == -1, "input after its end");
    SOFT(ms_migration_finish(m) == -1, "problems");
    SOFT(s.nprob >= 4, "%zu problems", s.nprob);
    ms_migration_free(m);
    seen_free(&s);
    DONE();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_capture_orders),
        cmocka_unit_test(test_nested_qemu),
        cmocka_unit_test(test_nested_migstream),
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_hold_limit),
        cmocka_unit_test(test_nested_untracked),
        cmocka_unit_test(test_usage),
        cmocka_unit_test(test_concurrent),
        cmocka_unit_test(test_unknown_block),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
