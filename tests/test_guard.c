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
}

typedef struct entry {
    const char *dir; /* under fuzz/corpus/ */
    ms_format format;
    int vmdesc;    /* hand the input's JSON description to the reader first */
    int joined;    /* channel files joined by the set harness's delimiter */
    int seekable;  /* serve MS_NEXT_SEEK (mapped-ram) */
    int page_byte; /* the first byte picks qemu_page_size (preempt) */
    uint32_t page_size; /* set from it */
    int payload_byte;   /* the first byte picks the payload kind and final
                           offset (fuzz/fuzz_payload.c) */
    int payload_kind;
    uint64_t payload_final; /* set from it */
} entry;

/* Drain events: MS_NEXT_INPUT, MS_NEXT_SEEK, or MS_NEXT_ERROR. */
static int drain(ms_reader *r)
{
    for (;;) {
        ms_event ev;
        int k = ms_reader_next(r, &ev);
        if (k == MS_NEXT_EVENT) {
            touch_event(&ev);
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
    ms_reader *r = ms_reader_create(&o);
    assert_non_null(r);
    if (json->map)
        ms_reader_set_vmdesc(
            r, (const char *)json->data,
            (size_t)(json->map + json->map_len - page_size() - json->data));
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
        runs += e->joined ? run_joined(e, in, len) : run_input(e, in, len);
        files++;
        free(in);
    }
    closedir(d);
    print_message("  %s: %zu inputs, %zu guarded runs, %zu events\n", e->dir,
                  files, runs, g_events);
    SOFT(files > 0, "%s: no inputs", e->dir);
    SOFT(g_events >= runs, "%s: runs end before their first event", e->dir);
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
