/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* Guard-page tests: every decoder entry point reads nothing past the end
 * of its input, nor of any slice it is given, nor a slice after it asked
 * for the next one.
 *
 * Inputs: the committed fuzz seeds (fuzz/corpus/NAME/: real captures cut
 * down and synthetic streams of every framing, each a few KiB), read with
 * the options of their harness.  Each input is fed at split k (the first
 * k bytes, then the rest) for every k up to SPLIT_ALL bytes, a strided
 * subset beyond, and every k near both ends, in two placements:
 *
 *   whole:  the input ends exactly at a PROT_NONE page and the reader
 *           keeps views of it (input_stable): both slices are views of
 *           that one buffer;
 *   slices: each slice is copied to the end of its own guarded mapping;
 *           once the reader asks for more input the slice it finished is
 *           made PROT_NONE whole (a decoder keeping a pointer into it
 *           would fault).
 *
 * The same placements drive the entry points above the reader: ms_nest
 * (the VMState walk replayed from the guarded JSON description, fed the
 * reader's field events), ms_set (the channels of a set seed, each split
 * at k, fed to their readers in turn and every event observed) and
 * ms_migration with nested driver payload decoding (the same channels,
 * handed in as guarded slices revoked after each call, main channel first
 * or last so that channels are held).
 *
 * A read past an end is a SIGSEGV: the test process dies and the test
 * fails.  Decoding errors are fine (cut seeds end in the middle of
 * things); every event's data bytes are read, so a view reaching past
 * the input faults too. */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "test_util.h"

static int g_fail;

#define SPLIT_ALL 256    /* every split up to here */
#define SPLIT_POINTS 128 /* then about this many more, strided */
#define SPLIT_ENDS 32    /* and every split this close to the end */

/* ---- guarded buffers ----------------------------------------------------- */

typedef struct guarded {
    uint8_t *map;
    size_t map_len; /* the data pages plus one PROT_NONE page */
    uint8_t *data;  /* ends exactly at the guard page */
} guarded;

static size_t page_size(void)
{
    return (size_t)sysconf(_SC_PAGESIZE);
}

/* len bytes of src at the end of fresh pages followed by a guard page. */
static void guard_copy(guarded *g, const uint8_t *src, size_t len)
{
    size_t ps = page_size(), pages = (len + ps - 1) / ps;
    g->map_len = (pages + 1) * ps;
    g->map = mmap(NULL, g->map_len, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(g->map != MAP_FAILED);
    assert_int_equal(mprotect(g->map + pages * ps, ps, PROT_NONE), 0);
    g->data = g->map + pages * ps - len;
    if (len)
        memcpy(g->data, src, len);
}

/* No access at all from now on (the reader finished with it). */
static void guard_revoke(guarded *g)
{
    if (g->map)
        assert_int_equal(mprotect(g->map, g->map_len, PROT_NONE), 0);
}

static void guard_free(guarded *g)
{
    if (g->map)
        munmap(g->map, g->map_len);
    memset(g, 0, sizeof *g);
}

/* ---- one run ----------------------------------------------------------------
 */

static volatile uint8_t g_sink; /* where event bytes are read to */
static size_t g_events;         /* events seen (the runs do decode) */

static void touch(const uint8_t *p, size_t n)
{
    uint8_t x = 0;
    for (size_t i = 0; p && i < n; i++)
        x ^= p[i];
    g_sink ^= x;
}

/* Reads every byte an event points at (the kinds that carry input). */
static void touch_event(const ms_event *ev)
{
    g_events++;
    if (ev->kind == MS_EV_DATA)
        touch(ev->u.data.data, ev->u.data.size);
    else if (ev->kind == MS_EV_RAM_PAGE)
        touch(ev->u.ram.data, ev->u.ram.size);
    else if (ev->kind == MS_EV_FIELD)
        touch(ev->u.field.data, ev->u.field.size);
    else if (ev->kind == MS_EV_PAYLOAD_FIELD)
        touch(ev->u.pfield.data, ev->u.pfield.size);
    else if (ev->kind == MS_EV_COMMAND)
        touch(ev->u.command.args, ev->u.command.len);
}

static void touch_str(const char *s)
{
    if (s)
        touch((const uint8_t *)s, strlen(s) + 1);
}

/* The VMState nest replaying the reader's walk (entry.nest), fed every
 * event drain() sees; g_nest_failed counts nests that refused one (the
 * reader's own events always follow its description). */
static ms_nest *g_nest;
static size_t g_nest_failed, g_nest_steps;

static void nest_feed(const ms_event *ev)
{
    if (!g_nest)
        return;
    ms_nest_step step;
    int k = ms_nest_feed(g_nest, ev);
    while (k == 0 && (k = ms_nest_next(g_nest, &step)) == 1) {
        touch_str(step.key);
        g_nest_steps++;
        k = 0;
    }
    if (k != 0) {
        g_nest_failed++;
        ms_nest_free(g_nest);
        g_nest = NULL;
    }
}

typedef struct entry {
    const char *dir; /* under fuzz/corpus/ */
    ms_format format;
    int vmdesc;    /* hand the input's JSON description to the reader first */
    int joined;    /* channel files joined by the set harness's delimiter */
    int channels;  /* a set seed through ms_set and ms_migration */
    int seekable;  /* serve MS_NEXT_SEEK (mapped-ram) */
    int page_byte; /* the first byte picks qemu_page_size (preempt) */
    uint32_t page_size; /* set from it */
    int payload_byte;   /* the first byte picks the payload kind and final
                           offset (fuzz/fuzz_payload.c) */
    int payload_kind;
    uint64_t payload_final; /* set from it */
    int nest; /* field events, replayed by an ms_nest (needs vmdesc) */
} entry;

/* Drain events: MS_NEXT_INPUT, MS_NEXT_SEEK, or MS_NEXT_ERROR. */
static int drain(ms_reader *r)
{
    for (;;) {
        ms_event ev;
        int k = ms_reader_next(r, &ev);
        if (k == MS_NEXT_EVENT) {
            touch_event(&ev);
            nest_feed(&ev);
            continue;
        }
        return k;
    }
}

#define MAX_SEEKS 16 /* seeks served per run (mapped-ram: a few per block) */

/* Seekable input: hands the bytes from each seek target to the end (a
 * view of the whole guarded input, or a fresh guarded copy revoked once
 * consumed).  Returns the last drain result. */
static int serve_seeks(ms_reader *r, const uint8_t *in, size_t len,
                       const guarded *whole, guarded *copies)
{
    int k = MS_NEXT_SEEK;
    for (int i = 0; i < MAX_SEEKS && k == MS_NEXT_SEEK; i++) {
        uint64_t t = ms_reader_seek_target(r);
        if (t >= len)
            return MS_NEXT_INPUT; /* the input ends before it: finish */
        const uint8_t *p = whole->map ? whole->data + t : NULL;
        if (!p) {
            guard_copy(&copies[i], in + t, len - (size_t)t);
            p = copies[i].data;
        }
        if (ms_reader_input_at(r, t, p, len - (size_t)t) != 0)
            return MS_NEXT_ERROR;
        k = drain(r);
        if (!whole->map && k != MS_NEXT_ERROR)
            guard_revoke(&copies[i]);
    }
    return k == MS_NEXT_SEEK ? MS_NEXT_ERROR : k;
}

/* Feeds `in` split at k: placement "whole" when whole, else "slices". */
static void run_split(const entry *e, const guarded *json, const uint8_t *in,
                      size_t len, size_t k, int whole)
{
    ms_options o;
    ms_options_init(&o);
    o.format = e->format;
    o.input_stable = whole;
    o.max_vmdesc_bytes = 1u << 20;
    o.input_seekable = e->seekable;
    o.input_size = e->seekable ? len : 0;
    if (e->page_size)
        o.qemu_page_size = e->page_size;
    if (e->payload_byte) {
        o.payload_kind = (ms_payload_kind)e->payload_kind;
        o.payload_final_offset = e->payload_final;
    }
    o.field_events = e->nest;
    ms_reader *r = ms_reader_create(&o);
    assert_non_null(r);
    if (json->map) {
        const char *text = (const char *)json->data;
        size_t text_len =
            (size_t)(json->map + json->map_len - page_size() - json->data);
        ms_reader_set_vmdesc(r, text, text_len);
        if (e->nest) /* from the guarded text, ending at the guard page */
            g_nest = ms_nest_create(&o, text, text_len, NULL);
    }
    guarded g[2] = {{0}}, seeks[MAX_SEEKS] = {{0}};
    const uint8_t *part[2];
    if (whole) {
        guard_copy(&g[0], in, len);
        part[0] = g[0].data;
        part[1] = g[0].data + k;
    }
    size_t n[2] = {k, len - k};
    int next = MS_NEXT_INPUT;
    for (int i = 0; i < 2 && next == MS_NEXT_INPUT; i++) {
        if (!whole) {
            guard_copy(&g[i], in + (i ? k : 0), n[i]);
            part[i] = g[i].data;
        }
        if (n[i])
            next = ms_reader_input(r, part[i], n[i]) != 0 ? MS_NEXT_ERROR
                                                          : drain(r);
        if (!whole && next != MS_NEXT_ERROR)
            guard_revoke(&g[i]); /* consumed: the reader may not keep it */
    }
    if (next == MS_NEXT_SEEK)
        next = serve_seeks(r, in, len, whole ? &g[0] : &(guarded){0}, seeks);
    if (next == MS_NEXT_INPUT)
        ms_reader_finish(r);
    ms_reader_free(r);
    ms_nest_free(g_nest);
    g_nest = NULL;
    guard_free(&g[0]);
    guard_free(&g[1]);
    for (int i = 0; i < MAX_SEEKS; i++)
        guard_free(&seeks[i]);
}

/* The splits of a len-byte input: all up to SPLIT_ALL and near the end,
 * strided between. */
static size_t next_split(size_t k, size_t len)
{
    size_t stride = len > SPLIT_ALL ? (len - SPLIT_ALL) / SPLIT_POINTS : 1;
    if (k < SPLIT_ALL || k + SPLIT_ENDS >= len || stride < 2)
        return k + 1;
    size_t next = k + stride;
    return next + SPLIT_ENDS >= len ? len - SPLIT_ENDS : next;
}

static size_t run_input(const entry *e, const uint8_t *in, size_t len)
{
    guarded json = {0};
    if (e->vmdesc && len >= 4 && memcmp(in, "QEVM", 4) == 0) {
        size_t off, jlen; /* the trailer of the stream itself */
        if (ms_qemu_find_vmdesc(in, len, len, &off, &jlen))
            guard_copy(&json, in + off, jlen);
    } else if (e->vmdesc && len >= 4) { /* be32 n, n bytes of JSON, stream */
        size_t jlen = (size_t)in[0] << 24 | (size_t)in[1] << 16 |
                      (size_t)in[2] << 8 | in[3];
        if (jlen <= len - 4) {
            guard_copy(&json, in + 4, jlen);
            in += 4 + jlen;
            len -= 4 + jlen;
        }
    }
    static const uint32_t page_sizes[4] = {512, 1024, 4096, 8192};
    entry with_page = *e;
    if (e->page_byte && len) { /* fuzz/fuzz_preempt.c's first byte */
        with_page.page_size = page_sizes[in[0] & 3];
        e = &with_page;
        in++;
        len--;
    } else if (e->payload_byte && len) { /* fuzz/fuzz_payload.c's */
        unsigned f = in[0] / 8;
        with_page.payload_kind = in[0] % 8 - 1;
        in++;
        len--;
        with_page.payload_final =
            f == 0 ? UINT64_MAX : (uint64_t)len * (f - 1) / 30;
        e = &with_page;
    }
    size_t runs = 0;
    for (size_t k = 0; k <= len; k = next_split(k, len)) {
        run_split(e, &json, in, len, k, 1);
        run_split(e, &json, in, len, k, 0);
        runs += 2;
    }
    guard_free(&json);
    return runs;
}

/* A set seed: channel files joined by FF 'MSFUZZ' FF (fuzz/fuzz_set.c),
 * each read on its own. */
static size_t run_joined(const entry *e, const uint8_t *in, size_t len)
{
    static const uint8_t delim[] = {0xff, 'M', 'S', 'F', 'U', 'Z', 'Z', 0xff};
    size_t runs = 0, start = 0;
    for (size_t i = 0; i <= len; i++) {
        int at_delim =
            i + sizeof delim <= len && memcmp(in + i, delim, sizeof delim) == 0;
        if (!at_delim && i < len)
            continue;
        runs += run_input(e, in + start, i - start);
        if (i == len)
            break;
        start = i + sizeof delim;
        i = start - 1;
    }
    return runs;
}

/* ---- several channels: ms_set and ms_migration ----------------------------
 */

#define MAX_CHANNELS 8

/* The channels of a set seed, as fuzz/fuzz_set.c cuts them: at each
 * FF 'MSFUZZ' FF delimiter if there is one, else at each migstream magic;
 * the last channel keeps the rest. */
typedef struct channels {
    const uint8_t *p[MAX_CHANNELS];
    size_t len[MAX_CHANNELS];
    size_t n;
} channels;

static void split_channels(const uint8_t *in, size_t len, channels *c)
{
    static const uint8_t delim[8] = {0xff, 'M', 'S', 'F', 'U', 'Z', 'Z', 0xff};
    static const uint8_t magic[8] = {0x8d, 'M',  'I',  'G',
                                     0x0d, 0x0a, 0x1a, 0x0a};
    int delimited = 0;
    for (size_t i = 0; !delimited && i + 8 <= len; i++)
        delimited = memcmp(in + i, delim, 8) == 0;
    const uint8_t *cut = delimited ? delim : magic;
    size_t start = 0, skip = delimited ? 8 : 0;
    c->n = 0;
    for (size_t i = delimited ? 0 : 1; i + 8 <= len && c->n + 1 < MAX_CHANNELS;
         i++) {
        if (memcmp(in + i, cut, 8) != 0)
            continue;
        c->p[c->n] = in + start;
        c->len[c->n++] = i - start;
        start = i + skip;
        i = start - (delimited ? 1 : 0);
    }
    c->p[c->n] = in + start;
    c->len[c->n++] = len - start;
}

/* Channel i's part `part` of split k: [0, min(k, len)) or the rest. */
static void channel_part(const channels *c, size_t i, size_t k, int part,
                         size_t *off, size_t *n)
{
    size_t cut = k < c->len[i] ? k : c->len[i];
    *off = part ? cut : 0;
    *n = part ? c->len[i] - cut : cut;
}

static void set_drain(ms_set *s)
{
    ms_event ev;
    while (ms_set_next(s, &ev) == MS_NEXT_EVENT)
        touch_event(&ev);
}

/* One slice to channel i's reader; every event observed by the set and
 * what it derives pulled.  -1: the reader stopped (error, or a seek). */
static int set_feed(ms_reader *r, ms_set *s, uint32_t i, const uint8_t *p,
                    size_t n)
{
    if (ms_reader_input(r, p, n) != 0)
        return -1;
    for (;;) {
        ms_event ev;
        int k = ms_reader_next(r, &ev);
        if (k != MS_NEXT_EVENT)
            return k == MS_NEXT_INPUT ? 0 : -1;
        touch_event(&ev);
        ms_set_observe(s, i, &ev); /* a set error is sticky: reading goes on */
        set_drain(s);
    }
}

static void set_split(const channels *c, size_t k, int whole)
{
    ms_options o;
    ms_options_init(&o);
    o.input_stable = whole;
    o.max_vmdesc_bytes = 1u << 20;
    ms_set *s = ms_set_create(&o);
    assert_non_null(s);
    ms_reader *r[MAX_CHANNELS];
    guarded g[MAX_CHANNELS][2];
    int live[MAX_CHANNELS];
    memset(g, 0, sizeof g);
    for (size_t i = 0; i < c->n; i++) {
        assert_non_null(r[i] = ms_reader_create(&o));
        live[i] = 1;
        if (whole)
            guard_copy(&g[i][0], c->p[i], c->len[i]);
    }
    for (int part = 0; part < 2; part++)
        for (size_t j = 0; j < c->n; j++) {
            size_t i = part ? c->n - 1 - j : j, off, n; /* turns vary */
            channel_part(c, i, k, part, &off, &n);
            if (!live[i] || !n)
                continue;
            if (!whole)
                guard_copy(&g[i][part], c->p[i] + off, n);
            const uint8_t *p = whole ? g[i][0].data + off : g[i][part].data;
            if (set_feed(r[i], s, (uint32_t)i, p, n) < 0)
                live[i] = 0;
            if (!whole)
                guard_revoke(&g[i][part]); /* consumed */
        }
    for (size_t i = 0; i < c->n; i++)
        if (live[i] && ms_reader_finish(r[i]) == 0 &&
            ms_set_channel_done(s, (uint32_t)i) == 0)
            set_drain(s);
    if (ms_set_finish(s) == 0)
        set_drain(s);
    ms_set_free(s);
    for (size_t i = 0; i < c->n; i++) {
        ms_reader_free(r[i]);
        guard_free(&g[i][0]);
        guard_free(&g[i][1]);
    }
}

static size_t g_nested; /* events of nested driver payload decoders */

static void mig_event(void *ctx, const ms_event *ev, const ms_event_origin *o)
{
    (void)ctx;
    touch_event(ev);
    touch_str(o->device);
    g_nested += o->device != NULL;
}

static void mig_problem(void *ctx, const ms_error_info *e)
{
    (void)ctx;
    touch((const uint8_t *)e->detail, strlen(e->detail));
}

/* ms_migration with nested payloads.  whole: each channel one guarded
 * buffer (input_stable, and the channel's `whole` for trailer and preempt
 * detection); slices: a guarded copy per call, revoked when the call
 * returns (held bytes must have been copied).  Odd k: the channels of the
 * first parts in reverse order (multifd channels before their main one
 * are held). */
static void migration_split(const channels *c, size_t k, int whole)
{
    ms_options o;
    ms_options_init(&o);
    o.input_stable = whole;
    o.max_vmdesc_bytes = 1u << 20;
    ms_migration_callbacks cb = {mig_event, mig_problem, NULL};
    ms_migration *m =
        ms_migration_create(&o, &cb, MS_MIGRATION_NESTED_PAYLOADS);
    assert_non_null(m);
    guarded g[MAX_CHANNELS][2];
    int live[MAX_CHANNELS];
    memset(g, 0, sizeof g);
    for (size_t i = 0; i < c->n; i++) {
        ms_channel_input in = {0};
        if (whole) {
            guard_copy(&g[i][0], c->p[i], c->len[i]);
            in.whole = g[i][0].data;
            in.whole_len = c->len[i];
        }
        live[i] = ms_migration_channel_open(m, (uint32_t)i, &in) == 0;
    }
    for (int part = 0; part < 2; part++)
        for (size_t j = 0; j < c->n; j++) {
            size_t i = part == 0 && k % 2 ? c->n - 1 - j : j, off, n;
            channel_part(c, i, k, part, &off, &n);
            if (!live[i] || !n)
                continue;
            if (!whole)
                guard_copy(&g[i][part], c->p[i] + off, n);
            const uint8_t *p = whole ? g[i][0].data + off : g[i][part].data;
            if (ms_migration_input(m, (uint32_t)i, p, n) != 0)
                live[i] = 0; /* failed, or a seek (not served here) */
            if (!whole)
                guard_revoke(&g[i][part]);
        }
    for (size_t i = 0; i < c->n; i++)
        ms_migration_channel_end(m, (uint32_t)i);
    ms_migration_finish(m);
    ms_migration_free(m);
    for (size_t i = 0; i < c->n; i++) {
        guard_free(&g[i][0]);
        guard_free(&g[i][1]);
    }
}

/* Every split k of the longest channel, both placements, through the set
 * and the migration. */
static size_t run_channels(const entry *e, const uint8_t *in, size_t len)
{
    (void)e;
    channels c;
    split_channels(in, len, &c);
    size_t longest = 0, runs = 0;
    for (size_t i = 0; i < c.n; i++)
        longest = c.len[i] > longest ? c.len[i] : longest;
    for (size_t k = 0; k <= longest; k = next_split(k, longest)) {
        for (int whole = 0; whole < 2; whole++) {
            set_split(&c, k, whole);
            migration_split(&c, k, whole);
        }
        runs += 4;
    }
    return runs;
}

/* Every file of <dir> (relative to the source tree) but its README. */
static void run_dir(const entry *e)
{
    char rel[512];
    const char *src = getenv("MIGSTREAM_SRC_DIR");
    char path[4096];
    char base[2048];
    snprintf(base, sizeof base, "%s", __FILE__); /* .../tests/test_guard.c */
    char *cut = strstr(base, "/tests/test_guard.c");
    if (cut)
        *cut = 0;
    const char *root = src && *src ? src : cut ? base : ".";
    snprintf(path, sizeof path, "%s/%s", root, e->dir);
    DIR *d = opendir(path);
    SOFT(d != NULL, "cannot list %s", path);
    if (!d)
        return;
    size_t files = 0, runs = 0;
    g_events = 0;
    g_nest_failed = g_nest_steps = g_nested = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.' || strstr(de->d_name, ".md"))
            continue;
        snprintf(rel, sizeof rel, "%s/%s", e->dir, de->d_name);
        size_t len;
        uint8_t *in = tb_load_source(rel, &len);
        SOFT(in != NULL, "cannot read %s", rel);
        if (!in)
            continue;
        runs += e->channels ? run_channels(e, in, len)
                : e->joined ? run_joined(e, in, len)
                            : run_input(e, in, len);
        files++;
        free(in);
    }
    closedir(d);
    print_message("  %s: %zu inputs, %zu guarded runs, %zu events\n", e->dir,
                  files, runs, g_events);
    SOFT(files > 0, "%s: no inputs", e->dir);
    SOFT(g_events >= runs, "%s: runs end before their first event", e->dir);
    if (e->channels) {
        print_message("  %s: %zu nested payload events\n", e->dir, g_nested);
        SOFT(g_nested > 0, "%s: no nested payload decoded", e->dir);
    }
    if (e->nest) {
        print_message("  %s: %zu nest steps\n", e->dir, g_nest_steps);
        SOFT(g_nest_failed == 0, "%s: the nest refused %zu readers' events",
             e->dir, g_nest_failed);
        SOFT(g_nest_steps > 0, "%s: the nest took no step", e->dir);
    }
}

/* ---- the guard itself ---------------------------------------------------- */

/* Reading one byte past a guarded copy, or a revoked one, kills a child
 * with SIGSEGV: the runs above would fail the same way. */
static int faults(int revoke)
{
    static const uint8_t bytes[3] = {1, 2, 3};
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGSEGV, SIG_DFL); /* not cmocka's handler */
        guarded g;
        guard_copy(&g, bytes, sizeof bytes);
        if (revoke)
            guard_revoke(&g);
        touch(g.data, sizeof bytes + (revoke ? 0 : 1));
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV;
}

static void test_guard_faults(void **state)
{
    (void)state;
    assert_true(faults(0));
    assert_true(faults(1));
}

/* ---- the entry points ------------------------------------------------------
 */

/* migstream v1/v2, QEMU main streams and multifd channels (detected) */
static void test_reader(void **state)
{
    (void)state;
    BEGIN();
    run_dir(&(entry){.dir = "fuzz/corpus/reader", .format = MS_FORMAT_AUTO});
    DONE();
}

/* QEMU main stream (a real capture's main channel cut down) and channels
 * of the set seeds, each on its own */
static void test_set_channels(void **state)
{
    (void)state;
    BEGIN();
    run_dir(&(entry){
        .dir = "fuzz/corpus/set", .format = MS_FORMAT_AUTO, .joined = 1});
    DONE();
}

/* JSON description + VMState walker */
static void test_vmstate_walk(void **state)
{
    (void)state;
    BEGIN();
    run_dir(&(entry){
        .dir = "fuzz/corpus/nest", .format = MS_FORMAT_AUTO, .vmdesc = 1});
    DONE();
}

static void test_libvirt(void **state)
{
    (void)state;
    BEGIN();
    run_dir(&(entry){.dir = "fuzz/corpus/libvirt", .format = MS_FORMAT_AUTO});
    DONE();
}

/* mapped-ram: without seekable input the reader stops at its first seek
 * (what comes before is read under the guard); with it, each seek is
 * served with the bytes from its target to the end */
static void test_mapped_ram(void **state)
{
    (void)state;
    BEGIN();
    run_dir(&(entry){.dir = "fuzz/corpus/mapped_ram",
                     .format = MS_FORMAT_AUTO,
                     .vmdesc = 0,
                     .joined = 0});
    run_dir(&(entry){.dir = "fuzz/corpus/mapped_ram",
                     .format = MS_FORMAT_AUTO,
                     .seekable = 1});
    DONE();
}

static void test_return_path(void **state)
{
    (void)state;
    BEGIN();
    run_dir(&(entry){.dir = "fuzz/corpus/rp",
                     .format = MS_FORMAT_QEMU_RETURN_PATH,
                     .vmdesc = 0,
                     .joined = 0});
    DONE();
}

static void test_preempt(void **state)
{
    (void)state;
    BEGIN();
    run_dir(&(entry){.dir = "fuzz/corpus/preempt",
                     .format = MS_FORMAT_QEMU_PREEMPT,
                     .page_byte = 1});
    DONE();
}

static void test_cpr(void **state)
{
    (void)state;
    BEGIN();
    run_dir(&(entry){.dir = "fuzz/corpus/cpr", .format = MS_FORMAT_AUTO});
    DONE();
}

/* VFIO driver payload decoders (tests/data/payload/README.md) */
static void test_payload(void **state)
{
    (void)state;
    BEGIN();
    run_dir(&(entry){.dir = "tests/data/payload",
                     .format = MS_FORMAT_PAYLOAD,
                     .payload_byte = 1});
    DONE();
}

/* The VMState nest: its description from the guarded JSON, fed the
 * field events of the guarded stream */
static void test_nest(void **state)
{
    (void)state;
    BEGIN();
    run_dir(&(entry){.dir = "fuzz/corpus/nest",
                     .format = MS_FORMAT_AUTO,
                     .vmdesc = 1,
                     .nest = 1});
    DONE();
}

/* ms_set over the channels of each set seed, and ms_migration with
 * nested driver payloads over the same channels */
static void test_set_and_migration(void **state)
{
    (void)state;
    BEGIN();
    run_dir(&(entry){
        .dir = "fuzz/corpus/set", .format = MS_FORMAT_AUTO, .channels = 1});
    DONE();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_guard_faults),
        cmocka_unit_test(test_reader),
        cmocka_unit_test(test_set_channels),
        cmocka_unit_test(test_vmstate_walk),
        cmocka_unit_test(test_libvirt),
        cmocka_unit_test(test_mapped_ram),
        cmocka_unit_test(test_return_path),
        cmocka_unit_test(test_preempt),
        cmocka_unit_test(test_cpr),
        cmocka_unit_test(test_payload),
        cmocka_unit_test(test_nest),
        cmocka_unit_test(test_set_and_migration),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
