/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* The QEMU multifd channel decoder, checked against the format facts in the
 * qemu-multifd reference (sections 1-5), not against the decoder's code:
 *
 *   - the real QEMU 7.2 captures (tests/data/captures/qemu-7.2-pc-multifd4
 *     and qemu-7.2-pc-multifd2-zlib): every channel decodes, with the
 *     packet, SYNC and page counts of the captures' README; zlib pages
 *     inflate to exactly one page each and rebuild the README's RAM ground
 *     truth (together with the main channel's ZERO records); one slice,
 *     byte by byte and random slices give identical events; ~1000 cuts
 *     fail as truncated except at packet boundaries;
 *   - hand-built channels (test_util's tm_* builder): raw, zlib and zstd
 *     pages (libzstd / zlib in the test, one stream per channel flushed at
 *     each packet end), zero pages, device-state packets, the 7.2 stale
 *     next_packet_size quirk, qpl/uadk/qatzip payloads walked, other page
 *     sizes; cut at every offset;
 *   - one crafted channel per rejection, each with its error code and an
 *     offset inside the offending packet, the same in one slice and byte
 *     by byte.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "test_util.h"

/* ---- soft checks: report every failed expectation of a test ------------- */
static int g_fail;


#define PS 4096u

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        abort();
    return p;
}

static char *xstrdup(const char *s)
{
    size_t n = strlen(s);
    char *d = xmalloc(n + 1);
    memcpy(d, s, n + 1);
    return d;
}

#define S(x) ((x) ? (x) : "(null)")

/* ---- decoding a channel, with every event recorded ---------------------- */

/* Called for every event (before it is recorded). */
typedef void (*mev_fn)(void *ctx, const ms_event *ev);

typedef struct mres {
    int rc;
    int failed_in_finish;
    ms_error_info err;
    char **desc; /* one line per event; DATA runs of a packet merged */
    size_t n, cap;
    tb_buf run;  /* bytes of the DATA run being merged */
    int in_run;
    uint64_t run_off, run_len, run_img;
    uint32_t run_idx;
    int run_config;
    char run_id[260];
    uint32_t run_inst;
    /* counts */
    size_t headers, channels, packets, syncs, dev_packets;
    size_t pages, zero_pages, bad_page_size, data_events, data_bytes;
    size_t page_zero_copy;         /* RAM_PAGE events with zero_copy */
    size_t offset_regress;
    uint64_t last_offset;
    uint64_t normal_total;         /* sum of the packets' normal_pages */
    uint32_t channel_id;
    uint8_t uuid[16];
    uint64_t *boundaries;          /* MULTIFD_PACKET event offsets */
    size_t nb, capb;
    /* RAM_PAGE offset and length, kept apart from the descriptions: where
     * a page sits on the wire is compared only by the strict checks */
    uint64_t *pos;                 /* 2 per page */
    size_t npos, cappos;
} mres;

typedef struct mrun {
    const ms_options *opt; /* NULL: defaults */
    size_t slice;          /* 0: one slice; n: slices of n bytes */
    uint64_t seed;         /* != 0: random slices of 1..max_slice bytes */
    size_t max_slice;
    int no_copy;           /* hand the caller's buffer itself */
    int light;             /* count only (truncation sweeps) */
    mev_fn fn;
    void *ctx;
} mrun;

static void mres_free(mres *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->desc[i]);
    free(r->desc);
    tb_buf_free(&r->run);
    free(r->boundaries);
    free(r->pos);
    memset(r, 0, sizeof *r);
}

static void add_desc(mres *r, const char *d)
{
    if (r->n == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 64;
        r->desc = realloc(r->desc, r->cap * sizeof *r->desc);
        if (!r->desc)
            abort();
    }
    r->desc[r->n++] = xstrdup(d);
}

static void end_run(mres *r)
{
    if (!r->in_run)
        return;
    char d[512];
    snprintf(d, sizeof d,
             "data @%llu+%llu id=%s inst=%u idx=%u config=%d img=%llu "
             "hash=%016llx",
             (unsigned long long)r->run_off, (unsigned long long)r->run_len,
             r->run_id, r->run_inst, r->run_idx, r->run_config,
             (unsigned long long)r->run_img,
             (unsigned long long)tb_hash(r->run.p, r->run.len));
    add_desc(r, d);
    tb_buf_reset(&r->run);
    r->in_run = 0;
}

static void uuid_hex(char *o, const uint8_t *u)
{
    for (int i = 0; i < 16; i++)
        snprintf(o + 2 * i, 3, "%02x", u[i]);
}

static void collect(mres *r, const ms_event *ev, int light)
{
    /* event offsets never decrease (the fuzz harness's invariant too) */
    if (ev->offset < r->last_offset)
        r->offset_regress++;
    r->last_offset = ev->offset;
    char d[768], u[40];
    d[0] = 0;
    switch (ev->kind) {
    case MS_EV_STREAM_HEADER:
        r->headers++;
        r->channel_id = ev->u.stream.channel_index;
        memcpy(r->uuid, ev->u.stream.uuid, 16);
        uuid_hex(u, ev->u.stream.uuid);
        snprintf(d, sizeof d,
                 "header @%llu+%llu format=%d version=%u uuid=%s index=%u "
                 "count=%u",
                 (unsigned long long)ev->offset,
                 (unsigned long long)ev->length, (int)ev->u.stream.format,
                 ev->u.stream.version_major, u, ev->u.stream.channel_index,
                 ev->u.stream.channel_count);
        break;
    case MS_EV_CHANNEL:
        r->channels++;
        uuid_hex(u, ev->u.channel.uuid);
        snprintf(d, sizeof d, "channel @%llu+%llu id=%u version=%u uuid=%s",
                 (unsigned long long)ev->offset,
                 (unsigned long long)ev->length, ev->u.channel.channel_id,
                 ev->u.channel.version, u);
        break;
    case MS_EV_MULTIFD_PACKET: {
        const ms_multifd_info *m = &ev->u.mfd;
        r->packets++;
        r->syncs += m->sync != 0;
        r->dev_packets += m->device_state != 0;
        r->normal_total += m->normal_pages;
        if (r->nb == r->capb) {
            r->capb = r->capb ? 2 * r->capb : 64;
            r->boundaries =
                realloc(r->boundaries, r->capb * sizeof *r->boundaries);
            if (!r->boundaries)
                abort();
        }
        r->boundaries[r->nb++] = ev->offset;
        snprintf(d, sizeof d,
                 "packet @%llu+%llu flags=0x%x comp=%s sync=%d dev=%d "
                 "alloc=%u normal=%u zero=%u nps=%u num=%llu block=%s "
                 "payload=%llu id=%s inst=%u ver=%u idx=%u bflags=%u "
                 "config=%d",
                 (unsigned long long)ev->offset,
                 (unsigned long long)ev->length, m->flags, S(m->compression),
                 m->sync, m->device_state, m->pages_alloc, m->normal_pages,
                 m->zero_pages, m->next_packet_size,
                 (unsigned long long)m->packet_num,
                 m->device_state ? "-" : S(m->block),
                 (unsigned long long)m->payload_size,
                 m->device_state ? S(m->idstr) : "-", m->instance_id,
                 m->buffer_version, m->idx, m->buffer_flags, m->config);
        break;
    }
    case MS_EV_RAM_PAGE: {
        const ms_ram_info *m = &ev->u.ram;
        if (m->record == MS_RAM_ZERO)
            r->zero_pages++;
        else
            r->pages++;
        if (m->record == MS_RAM_PAGE &&
            (m->size != m->page_size || !m->data))
            r->bad_page_size++;
        r->page_zero_copy += m->zero_copy != 0;
        if (!light) {
            if (r->npos + 2 > r->cappos) {
                r->cappos = r->cappos ? 2 * r->cappos : 256;
                r->pos = realloc(r->pos, r->cappos * sizeof *r->pos);
                if (!r->pos)
                    abort();
            }
            r->pos[r->npos++] = ev->offset;
            r->pos[r->npos++] = ev->length;
        }
        snprintf(d, sizeof d,
                 "page record=0x%x block=%s off=0x%llx ps=%u "
                 "size=%zu epoch=%u num=%llu hash=%016llx",
                 (unsigned)m->record,
                 S(m->block), (unsigned long long)m->offset, m->page_size,
                 m->size, m->epoch, (unsigned long long)m->packet_num,
                 (unsigned long long)(m->data && !light
                                          ? tb_hash(m->data, m->size)
                                          : 0));
        break;
    }
    case MS_EV_DATA: {
        const ms_data_info *m = &ev->u.data;
        r->data_events++;
        r->data_bytes += m->size;
        if (light)
            return;
        if (r->in_run && m->in_packet && m->packet_idx == r->run_idx &&
            m->config == r->run_config &&
            strcmp(S(m->idstr), r->run_id) == 0 &&
            m->instance_id == r->run_inst &&
            r->run_off + r->run_len == ev->offset &&
            r->run_img + r->run.len == m->image_offset) {
            tb_put(&r->run, m->data, m->size);
            r->run_len += ev->length;
            return;
        }
        end_run(r);
        r->in_run = 1;
        r->run_off = ev->offset;
        r->run_len = ev->length;
        r->run_img = m->image_offset;
        r->run_idx = m->packet_idx;
        r->run_config = m->config;
        r->run_inst = m->instance_id;
        snprintf(r->run_id, sizeof r->run_id, "%s", S(m->idstr));
        tb_put(&r->run, m->data, m->size);
        return;
    }
    default:
        snprintf(d, sizeof d, "%s @%llu+%llu", ms_event_kind_name(ev->kind),
                 (unsigned long long)ev->offset,
                 (unsigned long long)ev->length);
        break;
    }
    if (light)
        return;
    end_run(r);
    add_desc(r, d);
}

static int mread(const uint8_t *p, size_t len, const mrun *run, mres *res)
{
    memset(res, 0, sizeof *res);
    tb_buf_init(&res->run);
    ms_reader *r = ms_reader_create(run->opt);
    if (!r)
        abort();
    int failed = 0;
    uint64_t st = run->seed;
    size_t pos = 0;
    while (pos < len && !failed) {
        size_t n = run->seed ? 1 + (size_t)(tb_rand(&st) % run->max_slice)
                   : run->slice ? run->slice
                                : len;
        if (n > len - pos)
            n = len - pos;
        uint8_t *copy = NULL;
        const uint8_t *sl = p + pos;
        if (!run->no_copy) {
            copy = xmalloc(n);
            memcpy(copy, sl, n);
            sl = copy;
        }
        if (ms_reader_input(r, sl, n) != 0) {
            failed = 1;
        } else {
            for (;;) {
                ms_event ev;
                int k = ms_reader_next(r, &ev);
                if (k == MS_NEXT_EVENT) {
                    if (run->fn)
                        run->fn(run->ctx, &ev);
                    collect(res, &ev, run->light);
                    continue;
                }
                if (k != MS_NEXT_INPUT)
                    failed = 1;
                break;
            }
        }
        if (copy) {
            memset(copy, 0xA5, n); /* the reader must not keep it */
            free(copy);
        }
        pos += n;
    }
    end_run(res);
    if (!failed && ms_reader_finish(r) != 0) {
        failed = 1;
        res->failed_in_finish = 1;
    }
    if (failed) {
        res->err = *ms_reader_error(r);
        if (res->err.code == MS_ERR_OK) {
            res->err.code = MS_ERR_USAGE;
            snprintf(res->err.detail, sizeof res->err.detail,
                     "(test) the reader failed without an error code");
        }
    }
    ms_reader_free(r);
    res->rc = failed ? -1 : 0;
    return res->rc;
}

static int mread_all(const uint8_t *p, size_t len, const ms_options *opt,
                     mres *res)
{
    mrun run = {.opt = opt};
    return mread(p, len, &run, res);
}

static void print_events(const mres *r, size_t max)
{
    for (size_t i = 0; i < r->n && i < max; i++)
        print_message("    %s\n", r->desc[i]);
}

/* 1 when both runs gave the same events and verdict.  Not strict: where a
 * RAM page sits on the wire (event offset and length) and the offset of a
 * decompress error are left out; strict: they count too. */
static int mres_same_(const mres *a, const mres *b, int strict, char *why,
                      size_t cap)
{
    why[0] = 0;
    int off_counts = strict || a->err.code != MS_ERR_DECOMPRESS;
    if (a->rc != b->rc ||
        (a->rc && (a->err.code != b->err.code ||
                   (off_counts && a->err.offset != b->err.offset)))) {
        snprintf(why, cap, "rc %d vs %d (%s@%llu / %s@%llu)", a->rc, b->rc,
                 ms_error_name(a->err.code),
                 (unsigned long long)a->err.offset,
                 ms_error_name(b->err.code),
                 (unsigned long long)b->err.offset);
        return 0;
    }
    size_t n = a->n < b->n ? a->n : b->n;
    for (size_t i = 0; i < n; i++)
        if (strcmp(a->desc[i], b->desc[i]) != 0) {
            snprintf(why, cap, "event %zu: {%s} vs {%s}", i, a->desc[i],
                     b->desc[i]);
            return 0;
        }
    /* not strict: a decompress error may come before or after the page
     * the failing call also completed, depending on the slicing */
    if (a->n != b->n && (strict || off_counts)) {
        snprintf(why, cap, "%zu vs %zu events", a->n, b->n);
        return 0;
    }
    if (strict)
        for (size_t i = 0; i < a->npos && i < b->npos; i += 2)
            if (a->pos[i] != b->pos[i] || a->pos[i + 1] != b->pos[i + 1]) {
                snprintf(why, cap,
                         "page %zu: event offset/length %llu/%llu vs "
                         "%llu/%llu",
                         i / 2, (unsigned long long)a->pos[i],
                         (unsigned long long)a->pos[i + 1],
                         (unsigned long long)b->pos[i],
                         (unsigned long long)b->pos[i + 1]);
                return 0;
            }
    return 1;
}

static int mres_same(const mres *a, const mres *b, char *why, size_t cap)
{
    return mres_same_(a, b, 0, why, cap);
}

/* ---- expectations --------------------------------------------------------- */

/* The channel must fail with `code` at an offset in [lo, hi), the same way
 * in one slice and byte by byte, and not only at its end. */
static void expect_err_(const char *label, const uint8_t *p, size_t len,
                        const ms_options *opt, ms_error code, uint64_t lo,
                        uint64_t hi, const char *file, int line)
{
    mres a, b;
    mrun whole = {.opt = opt};
    mrun bytes = {.opt = opt, .slice = 1};
    mread(p, len, &whole, &a);
    mread(p, len, &bytes, &b);
    int ok = a.rc == -1 && a.err.code == code && a.err.offset >= lo &&
             a.err.offset < hi && !a.failed_in_finish;
    if (!ok) {
        g_fail++;
        print_message("  FAIL %s:%d: %s: expected %s in [%llu, %llu), got ",
                      file, line, label, ms_error_name(code),
                      (unsigned long long)lo, (unsigned long long)hi);
        if (a.rc == 0)
            print_message("a clean decode\n");
        else
            print_message("%s at %llu%s: %s\n", ms_error_name(a.err.code),
                          (unsigned long long)a.err.offset,
                          a.failed_in_finish ? " (in finish)" : "",
                          a.err.detail);
    }
    char why[1024];
    if (!mres_same(&a, &b, why, sizeof why)) {
        g_fail++;
        print_message("  FAIL %s:%d: %s: byte by byte differs: %s\n", file,
                      line, label, why);
    }
    mres_free(&a);
    mres_free(&b);
}

#define EXPECT_IN(label, buf, opt, code, lo, hi)                              \
    expect_err_(label, (buf)->p, (buf)->len, opt, code, lo, hi, __FILE__,     \
                __LINE__)

/* Cut at `cut`: clean when `cut` is in bounds[] (sorted), else truncated at
 * exactly `cut`.  Returns 1 when as expected. */
static int check_cut(const uint8_t *p, size_t cut, const ms_options *opt,
                     const uint64_t *bounds, size_t nb, const char *label)
{
    int boundary = 0;
    size_t lo = 0, hi = nb;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (bounds[mid] < cut)
            lo = mid + 1;
        else
            hi = mid;
    }
    boundary = lo < nb && bounds[lo] == cut;
    mres r;
    mrun run = {.opt = opt, .no_copy = 1, .light = 1};
    mread(p, cut, &run, &r);
    int ok = boundary ? r.rc == 0
                      : r.rc == -1 && r.err.code == MS_ERR_TRUNCATED &&
                            r.err.offset == cut && r.failed_in_finish;
    if (!ok) {
        g_fail++;
        print_message("  FAIL %s: cut at %zu (%s): ", label, cut,
                      boundary ? "a packet boundary" : "inside a packet");
        if (r.rc == 0)
            print_message("clean\n");
        else
            print_message("%s at %llu%s: %s\n", ms_error_name(r.err.code),
                          (unsigned long long)r.err.offset,
                          r.failed_in_finish ? " (in finish)" : "",
                          r.err.detail);
    }
    mres_free(&r);
    return ok;
}

/* A valid channel: decodes cleanly; byte by byte and in random slices it
 * gives the same events; cut at every offset it fails as truncated except
 * at the packet boundaries given (sorted; the end of the init packet and
 * the channel's end included).  The one-slice result stays in *out. */
static void check_valid_(const char *label, const uint8_t *p, size_t len,
                         const ms_options *opt, const uint64_t *bounds,
                         size_t nb, mres *out, const char *file, int line)
{
    mres a;
    mread_all(p, len, opt, &a);
    if (a.rc != 0) {
        g_fail++;
        print_message("  FAIL %s:%d: %s: valid channel fails: %s at %llu: "
                      "%s\n",
                      file, line, label, ms_error_name(a.err.code),
                      (unsigned long long)a.err.offset, a.err.detail);
        print_events(&a, 60);
    }
    if (a.offset_regress) {
        g_fail++;
        print_message("  FAIL %s:%d: %s: %zu event offsets go backwards\n",
                      file, line, label, a.offset_regress);
    }
    char why[1024];
    mrun runs[] = {{.opt = opt, .slice = 1},
                   {.opt = opt, .slice = 7},
                   {.opt = opt, .seed = 11, .max_slice = 300},
                   {.opt = opt, .seed = 12, .max_slice = 5000}};
    for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++) {
        mres b;
        mread(p, len, &runs[i], &b);
        if (!mres_same(&a, &b, why, sizeof why)) {
            g_fail++;
            print_message("  FAIL %s:%d: %s: slicing %zu differs: %s\n", file,
                          line, label, i, why);
        }
        mres_free(&b);
    }
    size_t bad = 0;
    for (size_t cut = 0; cut < len && bad < 5; cut++)
        if (!check_cut(p, cut, opt, bounds, nb, label))
            bad++;
    if (bad)
        print_message("    (%s:%d: %s)\n", file, line, label);
    if (out)
        *out = a;
    else
        mres_free(&a);
}

#define CHECK_VALID(label, buf, opt, bounds, nb, out)                         \
    check_valid_(label, (buf)->p, (buf)->len, opt, bounds, nb, out, __FILE__, \
                 __LINE__)

/* Packet boundaries of a hand-built channel. */
typedef struct bounds {
    uint64_t v[256];
    size_t n;
} bounds;

static void mark(bounds *b, const tb_buf *buf)
{
    if (b->n < 256)
        b->v[b->n++] = buf->len;
}

/* ---- synthetic data ------------------------------------------------------- */

/* n pages: page i is compressible, seeded by seed + i */
static uint8_t *make_pages(size_t n, uint64_t seed)
{
    uint8_t *p = xmalloc(n * PS);
    for (size_t i = 0; i < n; i++)
        tb_fill_compressible(p + i * PS, PS, seed + i);
    return p;
}

static void seq_offsets(uint64_t *o, size_t n, uint64_t first, uint64_t step)
{
    for (size_t i = 0; i < n; i++)
        o[i] = first + i * step;
}

static const uint8_t uuid_x[16] = {0x5a, 0x1e, 0x77, 0x00, 0x12, 0x34,
                                   0x45, 0x56, 0x87, 0x98, 0xa9, 0xba,
                                   0xcb, 0xdc, 0xed, 0xfe};

/* ---- hand-built channels: valid ------------------------------------------ */

/* Raw pages, zero pages, SYNC epochs, device-state packets interleaved,
 * the 7.2 stale next_packet_size. */
static void test_raw_channel(void **state)
{
    (void)state;
    BEGIN();
    tb_buf b;
    tb_buf_init(&b);
    bounds bd = {.n = 0};
    uint8_t *pages = make_pages(6, 100);
    uint64_t off[8];
    tm_init(&b, uuid_x, 3);
    mark(&bd, &b);
    tm_ram_empty(&b, TM_SYNC, 7, 0, NULL); /* the first SYNC, no pages */
    mark(&bd, &b);
    /* 3 normal + 2 zero pages of pc.ram */
    off[0] = 0x0;
    off[1] = 0x5000;
    off[2] = 0x7f000;
    off[3] = 0x1000;
    off[4] = 0x2000;
    size_t p1 = tm_ram_raw(&b, 0, 11, "pc.ram", off, 3, 2, pages);
    mark(&bd, &b);
    /* a device-state data buffer and, later, the config buffer */
    uint8_t dev0[5000];
    tb_fill_random(dev0, sizeof dev0, 7);
    tm_device(&b, "0000:00:10.0/vfio", 0, 0, 0, dev0, sizeof dev0);
    mark(&bd, &b);
    /* 7.2: a page-less packet with a stale next_packet_size, no payload */
    size_t quirk = tm_ram_empty(&b, 0, 11, 3 * PS, "pc.ram");
    mark(&bd, &b);
    /* SYNC packet carrying pages: they belong to the epoch it closes */
    off[0] = 0x3000;
    size_t p2 = tm_ram_raw(&b, TM_SYNC, 19, "pc.bios", off, 1, 0, pages + 3 * PS);
    mark(&bd, &b);
    tb_buf cfg;
    tb_buf_init(&cfg);
    tm_config_bytes(&cfg, 40, 9);
    tm_device(&b, "0000:00:10.0/vfio", 0, 1, TM_VFIO_CONFIG, cfg.p, cfg.len);
    mark(&bd, &b);
    /* epoch 1: two pages, then a page-less SYNC with a stale size */
    off[0] = 0x0;
    off[1] = 0x9000;
    tm_ram_raw(&b, 0, 23, "pc.ram", off, 2, 0, pages + 4 * PS);
    mark(&bd, &b);
    tm_device(&b, "0000:00:11.0/vfio", 4, 0, 0, "x", 1);
    mark(&bd, &b);
    tm_ram_empty(&b, TM_SYNC, 30, 2 * PS, "pc.ram");
    mark(&bd, &b);

    mres r;
    CHECK_VALID("raw channel", &b, NULL, bd.v, bd.n, &r);
    SOFT(r.rc == 0, "decode");
    SOFT(r.headers == 1 && r.channels == 1, "one header (%zu), one channel event (%zu)", r.headers, r.channels);
    SOFT(r.channel_id == 3, "channel id %u", r.channel_id);
    SOFT(memcmp(r.uuid, uuid_x, 16) == 0, "uuid");
    SOFT(r.packets == 9, "packets %zu", r.packets);
    SOFT(r.syncs == 3, "syncs %zu", r.syncs);
    SOFT(r.dev_packets == 3, "device-state packets %zu", r.dev_packets);
    SOFT(r.pages == 6, "pages %zu", r.pages);
    SOFT(r.zero_pages == 2, "zero pages %zu", r.zero_pages);
    SOFT(r.bad_page_size == 0, "page sizes");
    SOFT(r.page_zero_copy == 6, "raw pages are views of the input: %zu",
         r.page_zero_copy);
    SOFT(r.data_bytes == sizeof dev0 + cfg.len + 1, "device bytes %zu",
         r.data_bytes);
    mres_free(&r);

    /* the events, by content */
    ms_reader *rd = ms_reader_create(NULL);
    assert_non_null(rd);
    assert_int_equal(ms_reader_input(rd, b.p, b.len), 0);
    ms_event ev;
    size_t npage = 0, npkt = 0;
    tb_buf dev_bytes, cfg_bytes;
    tb_buf_init(&dev_bytes);
    tb_buf_init(&cfg_bytes);
    static const uint32_t want_epoch[6] = {1, 1, 1, 1, 2, 2};
    static const uint64_t want_num[6] = {11, 11, 11, 19, 23, 23};
    static const char *const want_block[6] = {"pc.ram", "pc.ram", "pc.ram",
                                              "pc.bios", "pc.ram", "pc.ram"};
    static const uint64_t want_off[6] = {0x0, 0x5000, 0x7f000,
                                         0x3000, 0x0, 0x9000};
    int k;
    while ((k = ms_reader_next(rd, &ev)) == MS_NEXT_EVENT) {
        if (ev.kind == MS_EV_STREAM_HEADER) {
            SOFT(ev.u.stream.format == MS_FORMAT_QEMU_MULTIFD, "format");
            SOFT(ev.u.stream.channel_index == 3, "channel_index");
        } else if (ev.kind == MS_EV_MULTIFD_PACKET) {
            const ms_multifd_info *m = &ev.u.mfd;
            if (ev.offset == quirk) {
                SOFT(m->next_packet_size == 3 * PS && m->payload_size == 0,
                     "stale next_packet_size %u reported, payload %llu",
                     m->next_packet_size,
                     (unsigned long long)m->payload_size);
                SOFT(ev.length == TM_RAM_FIXED + 8 * 128,
                     "quirk packet length %llu",
                     (unsigned long long)ev.length);
            }
            if (ev.offset == p1)
                SOFT(m->normal_pages == 3 && m->zero_pages == 2 &&
                         m->packet_num == 11 && m->pages_alloc == 128 &&
                         strcmp(S(m->block), "pc.ram") == 0 &&
                         m->payload_size == 3 * PS &&
                         strcmp(S(m->compression), "none") == 0,
                     "first page packet fields");
            if (ev.offset == p2)
                SOFT(m->sync && m->normal_pages == 1, "SYNC with a page");
            if (m->device_state)
                SOFT(strcmp(S(m->compression), "none") == 0 &&
                         m->buffer_version == 0,
                     "device-state packet fields");
            npkt++;
        } else if (ev.kind == MS_EV_RAM_PAGE) {
            const ms_ram_info *m = &ev.u.ram;
            if (m->record == MS_RAM_ZERO) {
                SOFT(m->offset == 0x1000 || m->offset == 0x2000,
                     "zero page offset 0x%llx", (unsigned long long)m->offset);
                SOFT(m->epoch == 1 && m->packet_num == 11 && !m->data,
                     "zero page epoch/num/data");
                continue;
            }
            if (npage < 6) {
                SOFT(m->offset == want_off[npage], "page %zu offset 0x%llx",
                     npage, (unsigned long long)m->offset);
                SOFT(m->epoch == want_epoch[npage], "page %zu epoch %u", npage,
                     m->epoch);
                SOFT(m->packet_num == want_num[npage], "page %zu num %llu",
                     npage, (unsigned long long)m->packet_num);
                SOFT(strcmp(S(m->block), want_block[npage]) == 0,
                     "page %zu block %s", npage, S(m->block));
                SOFT(m->page_size == PS && m->size == PS && m->data &&
                         memcmp(m->data, pages + npage * PS, PS) == 0,
                     "page %zu bytes", npage);
            }
            npage++;
        } else if (ev.kind == MS_EV_DATA) {
            const ms_data_info *m = &ev.u.data;
            SOFT(m->in_packet, "DATA in_packet");
            if (strcmp(S(m->idstr), "0000:00:10.0/vfio") == 0 &&
                m->packet_idx == 0 && !m->config)
                tb_put(&dev_bytes, m->data, m->size);
            else if (m->config)
                tb_put(&cfg_bytes, m->data, m->size);
            else
                SOFT(strcmp(S(m->idstr), "0000:00:11.0/vfio") == 0 &&
                         m->instance_id == 4 && m->size == 1 &&
                         m->data[0] == 'x',
                     "second device's byte");
        }
    }
    SOFT(k == MS_NEXT_INPUT, "reader stops for input");
    SOFT(ms_reader_finish(rd) == 0, "clean finish");
    ms_reader_free(rd);
    SOFT(npkt == 9 && npage == 6, "packets %zu pages %zu", npkt, npage);
    SOFT(dev_bytes.len == sizeof dev0 &&
             memcmp(dev_bytes.p, dev0, sizeof dev0) == 0,
         "device buffer bytes");
    SOFT(cfg_bytes.len == cfg.len && memcmp(cfg_bytes.p, cfg.p, cfg.len) == 0,
         "config buffer bytes");
    tb_buf_free(&dev_bytes);
    tb_buf_free(&cfg_bytes);
    tb_buf_free(&cfg);
    tb_buf_free(&b);
    free(pages);
    DONE();
}

/* A channel of `npk` packets compressed with one persistent stream. */
static void build_comp_channel(tb_buf *b, bounds *bd, uint32_t method,
                               int level, const uint8_t *pages,
                               const size_t *per_packet, size_t npk)
{
    tm_comp *c = tm_comp_new(method, level);
    uint64_t off[128];
    tm_init(b, NULL, 1);
    mark(bd, b);
    tm_ram_empty(b, TM_SYNC, 1, 0, NULL);
    mark(bd, b);
    size_t at = 0;
    uint32_t last_nps = 0;
    for (size_t k = 0; k < npk; k++) {
        size_t n = per_packet[k];
        seq_offsets(off, n, (uint64_t)at * PS, PS);
        size_t o = tm_ram_comp(b, c, k + 1 == npk ? TM_SYNC : 0, 2 + k,
                               "pc.ram", off, (uint32_t)n, 0, pages + at * PS);
        last_nps = (uint32_t)(b->len - o - TM_RAM_FIXED - 8 * 128);
        mark(bd, b);
        at += n;
        if (k == 1) { /* 7.2: a page-less packet with a stale size */
            tm_ram_empty(b, 0, 2 + k, last_nps, "pc.ram");
            mark(bd, b);
        }
    }
    tm_ram_empty(b, TM_SYNC, 99, last_nps, "pc.ram");
    mark(bd, b);
    tm_comp_free(c);
}

static void check_comp_channel(uint32_t method, const char *label)
{
    static const size_t per[] = {3, 128, 1, 5};
    size_t total = 3 + 128 + 1 + 5;
    uint8_t *pages = make_pages(total, method * 1000);
    /* a few incompressible and all-zero pages */
    tb_fill_random(pages + 2 * PS, PS, 5);
    memset(pages + 40 * PS, 0, PS);
    tb_buf b;
    tb_buf_init(&b);
    bounds bd = {.n = 0};
    build_comp_channel(&b, &bd, method, 1, pages, per, 4);

    /* the full cut sweep is costly for the 128-page packet: the valid
     * checks on a smaller channel, the page check on this one */
    mres r;
    mread_all(b.p, b.len, NULL, &r);
    SOFT(r.rc == 0, "%s: decode: %s at %llu: %s", label,
         ms_error_name(r.err.code), (unsigned long long)r.err.offset,
         r.err.detail);
    SOFT(r.pages == total && r.bad_page_size == 0, "%s: pages %zu", label,
         r.pages);
    SOFT(r.packets == 7 && r.syncs == 3, "%s: packets %zu syncs %zu", label,
         r.packets, r.syncs);
    mres_free(&r);

    ms_reader *rd = ms_reader_create(NULL);
    assert_non_null(rd);
    assert_int_equal(ms_reader_input(rd, b.p, b.len), 0);
    ms_event ev;
    size_t i = 0;
    int k;
    while ((k = ms_reader_next(rd, &ev)) == MS_NEXT_EVENT) {
        if (ev.kind == MS_EV_MULTIFD_PACKET && ev.u.mfd.normal_pages)
            SOFT(strcmp(S(ev.u.mfd.compression),
                        method == TM_ZLIB ? "zlib" : "zstd") == 0 &&
                     ev.u.mfd.payload_size == ev.u.mfd.next_packet_size,
                 "%s: packet compression %s payload %llu", label,
                 S(ev.u.mfd.compression),
                 (unsigned long long)ev.u.mfd.payload_size);
        if (ev.kind != MS_EV_RAM_PAGE)
            continue;
        SOFT(ev.u.ram.offset == (uint64_t)i * PS, "%s: page %zu offset",
             label, i);
        SOFT(i < total && ev.u.ram.size == PS &&
                 memcmp(ev.u.ram.data, pages + i * PS, PS) == 0,
             "%s: page %zu bytes", label, i);
        i++;
    }
    SOFT(k == MS_NEXT_INPUT && ms_reader_finish(rd) == 0, "%s: finish",
         label);
    SOFT(i == total, "%s: %zu pages", label, i);
    ms_reader_free(rd);

    /* slicing and every cut, on a channel with small packets */
    static const size_t small[] = {2, 1, 3};
    tb_buf s;
    tb_buf_init(&s);
    bounds sb = {.n = 0};
    build_comp_channel(&s, &sb, method, 3, pages, small, 3);
    CHECK_VALID(label, &s, NULL, sb.v, sb.n, NULL);
    /* slicing on the big one too */
    mres a, c;
    mread_all(b.p, b.len, NULL, &a);
    mrun bytes = {.slice = 1};
    mread(b.p, b.len, &bytes, &c);
    char why[1024];
    SOFT(mres_same(&a, &c, why, sizeof why), "%s: byte by byte: %s", label,
         why);
    mres_free(&a);
    mres_free(&c);
    tb_buf_free(&s);
    tb_buf_free(&b);
    free(pages);
}

static void test_zlib_channel(void **state)
{
    (void)state;
    BEGIN();
    check_comp_channel(TM_ZLIB, "zlib");
    DONE();
}

static void test_zstd_channel(void **state)
{
    (void)state;
    BEGIN();
    check_comp_channel(TM_ZSTD, "zstd");
    DONE();
}

/* qpl / uadk: be32 length per page then the blobs; qatzip: one blob.  The
 * decoder walks these payloads (it cannot inflate them). */
static void test_walked_payloads(void **state)
{
    (void)state;
    BEGIN();
    static const uint32_t methods[] = {TM_QPL, TM_UADK};
    for (size_t m = 0; m < 2; m++) {
        tb_buf pay, b;
        tb_buf_init(&pay);
        tb_buf_init(&b);
        bounds bd = {.n = 0};
        /* three pages: 100-byte blob, a raw page, 7-byte blob */
        static const uint32_t lens[3] = {100, PS, 7};
        for (int i = 0; i < 3; i++)
            tb_put_be32(&pay, lens[i]);
        for (int i = 0; i < 3; i++) {
            size_t at = pay.len;
            tb_put_zeros(&pay, lens[i]);
            tb_fill_random(pay.p + at, lens[i], (uint64_t)i);
        }
        uint64_t off[3] = {0, PS, 2 * PS};
        tm_init(&b, NULL, 0);
        mark(&bd, &b);
        tm_ram_empty(&b, TM_SYNC, 0, 0, NULL);
        mark(&bd, &b);
        tm_ram p = {.flags = methods[m],
                    .normal = 3,
                    .next_packet_size = (uint32_t)pay.len,
                    .packet_num = 1,
                    .block = "pc.ram",
                    .offsets = off,
                    .payload = pay.p,
                    .payload_len = pay.len};
        size_t pk = tm_ram_ex(&b, &p);
        mark(&bd, &b);
        tm_ram_empty(&b, TM_SYNC, 2, (uint32_t)pay.len, "pc.ram");
        mark(&bd, &b);
        mres r;
        CHECK_VALID(methods[m] == TM_QPL ? "qpl" : "uadk", &b, NULL, bd.v,
                    bd.n, &r);
        SOFT(r.packets == 3 && r.syncs == 2, "walked: packets %zu",
             r.packets);
        mres_free(&r);

        /* lengths that do not add up to next_packet_size */
        tb_buf x;
        tb_buf_init(&x);
        tb_buf_copy(&x, &b);
        tb_set_be32(x.p + pk + TM_RAM_FIXED + 8 * 128 + 4, PS - 1);
        EXPECT_IN("qpl/uadk lengths sum mismatch", &x, NULL, MS_ERR_MULTIFD,
                  pk, pk + TM_RAM_FIXED + 8 * 128 + pay.len);
        /* a length above the page size */
        tb_buf_copy(&x, &b);
        tb_set_be32(x.p + pk + TM_RAM_FIXED + 8 * 128 + 8, PS + 1);
        EXPECT_IN("qpl/uadk length above the page size", &x, NULL,
                  MS_ERR_MULTIFD, pk, pk + TM_RAM_FIXED + 8 * 128 + pay.len);
        /* next_packet_size too small for the lengths */
        tb_buf_copy(&x, &b);
        tb_set_be32(x.p + pk + 20, 8);
        EXPECT_IN("qpl/uadk payload shorter than its lengths", &x, NULL,
                  MS_ERR_MULTIFD, pk, pk + TM_RAM_FIXED + 8 * 128);
        tb_buf_free(&x);
        tb_buf_free(&pay);
        tb_buf_free(&b);
    }
    /* qatzip: one blob of next_packet_size bytes */
    tb_buf b;
    tb_buf_init(&b);
    bounds bd = {.n = 0};
    uint8_t blob[333];
    tb_fill_random(blob, sizeof blob, 3);
    uint64_t off[2] = {0, PS};
    tm_init(&b, NULL, 0);
    mark(&bd, &b);
    tm_ram p = {.flags = TM_QATZIP,
                .normal = 2,
                .next_packet_size = sizeof blob,
                .packet_num = 1,
                .block = "pc.ram",
                .offsets = off,
                .payload = blob,
                .payload_len = sizeof blob};
    tm_ram_ex(&b, &p);
    mark(&bd, &b);
    tm_ram_empty(&b, TM_SYNC, 2, 0, NULL);
    mark(&bd, &b);
    CHECK_VALID("qatzip", &b, NULL, bd.v, bd.n, NULL);
    tb_buf_free(&b);
    DONE();
}

/* The page size comes from the main stream (ms_options.qemu_page_size):
 * it sets the packet capacity (512 KiB of pages) and the raw page size. */
static void test_page_size(void **state)
{
    (void)state;
    BEGIN();
    const uint32_t ps = 16384;
    ms_options o;
    ms_options_init(&o);
    o.qemu_page_size = ps;
    uint8_t *pg = xmalloc(2 * ps);
    tb_fill_compressible(pg, 2 * ps, 4);
    uint64_t off[2] = {0, 3 * (uint64_t)ps};
    tb_buf b;
    tb_buf_init(&b);
    bounds bd = {.n = 0};
    tm_init(&b, NULL, 0);
    mark(&bd, &b);
    tm_ram p = {.flags = TM_SYNC,
                .pages_alloc = TM_PACKET_DATA / ps,
                .normal = 2,
                .next_packet_size = 2 * ps,
                .packet_num = 5,
                .block = "mach-virt.ram",
                .offsets = off,
                .payload = pg,
                .payload_len = 2 * (size_t)ps};
    size_t pk = tm_ram_ex(&b, &p);
    mark(&bd, &b);
    mres r;
    CHECK_VALID("16 KiB pages", &b, &o, bd.v, bd.n, &r);
    SOFT(r.pages == 2 && r.bad_page_size == 0, "16 KiB pages: %zu",
         r.pages);
    mres_free(&r);
    /* 4 KiB offsets are not aligned to 16 KiB pages */
    tb_buf x;
    tb_buf_init(&x);
    tb_buf_copy(&x, &b);
    tb_set_be64(x.p + pk + TM_RAM_FIXED + 8, 0x1000);
    EXPECT_IN("offset not aligned to the 16 KiB page", &x, &o,
              MS_ERR_MULTIFD, pk, pk + TM_RAM_FIXED + 8 * 32);
    /* 33 slots: above the capacity of 32 pages */
    tb_buf_copy(&x, &b);
    tb_set_be32(x.p + pk + 12, 33);
    EXPECT_IN("pages_alloc 33 with 16 KiB pages", &x, &o, MS_ERR_MULTIFD, pk,
              pk + TM_RAM_FIXED);
    tb_buf_free(&x);
    tb_buf_free(&b);
    free(pg);
    DONE();
}

/* ---- rejections ------------------------------------------------------------- */

/* init + first SYNC + the packet built by `add`; returns the packet's
 * offset through *at. */
static void start_channel(tb_buf *b)
{
    tb_buf_reset(b);
    tm_init(b, NULL, 0);
    tm_ram_empty(b, TM_SYNC, 0, 0, NULL);
}

#define RAM_HDR (TM_RAM_FIXED + 8 * 128)

static void test_reject_init(void **state)
{
    (void)state;
    BEGIN();
    ms_options forced;
    ms_options_init(&forced);
    forced.format = MS_FORMAT_QEMU_MULTIFD;
    tb_buf b;
    tb_buf_init(&b);
    tm_init_ex(&b, 0x11223345u, TM_VERSION, NULL, 0);
    tm_ram_empty(&b, TM_SYNC, 0, 0, NULL);
    EXPECT_IN("init packet with a bad magic (format forced)", &b, &forced,
              MS_ERR_BAD_MAGIC, 0, 4);
    mres r;
    mread_all(b.p, b.len, NULL, &r);
    SOFT(r.rc == -1 && r.err.code == MS_ERR_FORMAT_UNKNOWN,
         "bad magic, auto-detected: %s", ms_error_name(r.err.code));
    mres_free(&r);
    tb_buf_reset(&b);
    tm_init_ex(&b, TM_MAGIC, 2, NULL, 0);
    tm_ram_empty(&b, TM_SYNC, 0, 0, NULL);
    EXPECT_IN("init packet version 2", &b, NULL, MS_ERR_VERSION, 4, 8);
    tb_buf_reset(&b);
    tm_init_ex(&b, TM_MAGIC, 0, NULL, 0);
    EXPECT_IN("init packet version 0", &b, NULL, MS_ERR_VERSION, 4, 8);
    /* reserved bytes after the id must be zero */
    tb_buf_reset(&b);
    tm_init(&b, NULL, 0);
    b.p[40] = 1;
    EXPECT_IN("init packet reserved byte", &b, NULL, MS_ERR_MULTIFD, 25, 64);
    tb_buf_free(&b);
    DONE();
}

static void test_reject_header(void **state)
{
    (void)state;
    BEGIN();
    tb_buf b;
    tb_buf_init(&b);
    uint8_t *pg = make_pages(2, 1);
    uint64_t off[2] = {0, PS};
    size_t at;

#define RAW_PACKET()                                                          \
    (start_channel(&b), at = tm_ram_raw(&b, 0, 1, "pc.ram", off, 2, 0, pg))

    RAW_PACKET();
    tb_set_be32(b.p + at, 0x11223343u);
    EXPECT_IN("packet magic", &b, NULL, MS_ERR_MULTIFD, at, at + 12);
    RAW_PACKET();
    tb_set_be32(b.p + at + 4, 2);
    EXPECT_IN("packet version 2", &b, NULL, MS_ERR_MULTIFD, at, at + 12);
    RAW_PACKET();
    tb_set_be32(b.p + at + 8, 0x80);
    EXPECT_IN("unknown flag 0x80", &b, NULL, MS_ERR_MULTIFD, at, at + 12);
    RAW_PACKET();
    tb_set_be32(b.p + at + 8, 0x100);
    EXPECT_IN("unknown flag 0x100", &b, NULL, MS_ERR_MULTIFD, at, at + 12);
    RAW_PACKET();
    tb_set_be32(b.p + at + 8, TM_ZLIB | TM_ZSTD);
    EXPECT_IN("two compression bits", &b, NULL, MS_ERR_MULTIFD, at, at + 12);
    RAW_PACKET();
    tb_set_be32(b.p + at + 8, TM_SYNC | TM_QPL | TM_QATZIP);
    EXPECT_IN("two compression bits with SYNC", &b, NULL, MS_ERR_MULTIFD, at,
              at + 12);

    /* RAM packet fields */
    RAW_PACKET();
    tb_set_be32(b.p + at + 12, 0);
    EXPECT_IN("pages_alloc 0", &b, NULL, MS_ERR_MULTIFD, at, at + RAM_HDR);
    RAW_PACKET();
    tb_set_be32(b.p + at + 12, 129);
    EXPECT_IN("pages_alloc 129 (capacity 128)", &b, NULL, MS_ERR_MULTIFD, at,
              at + RAM_HDR);
    RAW_PACKET();
    tb_set_be32(b.p + at + 12, 0xffffffffu);
    EXPECT_IN("pages_alloc 0xffffffff", &b, NULL, MS_ERR_MULTIFD, at,
              at + RAM_HDR);
    {
        tm_ram p = {.pages_alloc = 128, .normal = 129, .block = "pc.ram"};
        start_channel(&b);
        at = tm_ram_ex(&b, &p);
        tb_put_zeros(&b, 129 * PS);
        EXPECT_IN("normal_pages 129 > pages_alloc 128", &b, NULL,
                  MS_ERR_MULTIFD, at, at + RAM_HDR);
    }
    {
        tm_ram p = {.normal = 100, .zero = 29, .block = "pc.ram"};
        start_channel(&b);
        at = tm_ram_ex(&b, &p);
        tb_put_zeros(&b, 100 * PS);
        EXPECT_IN("zero_pages 29 after 100 normal (129 > 128)", &b, NULL,
                  MS_ERR_MULTIFD, at, at + RAM_HDR);
        tb_set_be32(b.p + at + 16, 0);
        tb_set_be32(b.p + at + 32, 0xffffffffu);
        EXPECT_IN("zero_pages 0xffffffff", &b, NULL, MS_ERR_MULTIFD, at,
                  at + RAM_HDR);
    }
    RAW_PACKET();
    tb_set_be64(b.p + at + TM_RAM_FIXED + 8, PS + 0x800);
    EXPECT_IN("unaligned page offset", &b, NULL, MS_ERR_MULTIFD, at,
              at + RAM_HDR);
    RAW_PACKET();
    tb_set_be64(b.p + at + TM_RAM_FIXED, 1);
    EXPECT_IN("page offset 1", &b, NULL, MS_ERR_MULTIFD, at, at + RAM_HDR);
    {
        /* a zero page's offset is checked too */
        uint64_t z[3] = {0, PS, 2 * PS + 8};
        start_channel(&b);
        at = tm_ram_raw(&b, 0, 1, "pc.ram", z, 2, 1, pg);
        EXPECT_IN("unaligned zero-page offset", &b, NULL, MS_ERR_MULTIFD, at,
                  at + RAM_HDR);
    }
    RAW_PACKET();
    memset(b.p + at + 64, 'x', 256);
    EXPECT_IN("unterminated block name", &b, NULL, MS_ERR_MULTIFD, at,
              at + RAM_HDR);
    RAW_PACKET();
    memset(b.p + at + 64, 0, 256);
    EXPECT_IN("pages without a block name", &b, NULL, MS_ERR_MULTIFD, at,
              at + RAM_HDR);
    free(pg);
    tb_buf_free(&b);
    DONE();
#undef RAW_PACKET
}

static void test_reject_device_state(void **state)
{
    (void)state;
    BEGIN();
    tb_buf b;
    tb_buf_init(&b);
    uint8_t data[100];
    tb_fill_random(data, sizeof data, 2);
    const char *id = "0000:00:10.0/vfio";
    size_t at;
    const size_t end = TM_DEV_HDR + TM_VFIO_HDR + sizeof data;

#define DEV_PACKET()                                                          \
    (start_channel(&b),                                                       \
     at = tm_device(&b, id, 0, 0, 0, data, sizeof data))

    DEV_PACKET();
    tb_set_be32(b.p + at + 8, TM_DEVICE_STATE | TM_SYNC);
    EXPECT_IN("device state with SYNC", &b, NULL, MS_ERR_MULTIFD, at,
              at + end);
    DEV_PACKET();
    tb_set_be32(b.p + at + 8, TM_DEVICE_STATE | TM_ZLIB);
    EXPECT_IN("device state with zlib", &b, NULL, MS_ERR_MULTIFD, at,
              at + end);
    DEV_PACKET();
    tb_set_be32(b.p + at + 8, TM_DEVICE_STATE | TM_ZSTD);
    EXPECT_IN("device state with zstd", &b, NULL, MS_ERR_MULTIFD, at,
              at + end);
    DEV_PACKET();
    memset(b.p + at + 12, 'v', 256);
    EXPECT_IN("unterminated idstr", &b, NULL, MS_ERR_MULTIFD, at, at + end);
    DEV_PACKET();
    tb_set_be32(b.p + at + 272, 0);
    EXPECT_IN("empty device-state payload", &b, NULL, MS_ERR_MULTIFD, at,
              at + TM_DEV_HDR);
    DEV_PACKET();
    tb_set_be32(b.p + at + 272, 11);
    EXPECT_IN("device-state payload of 11 bytes", &b, NULL, MS_ERR_MULTIFD,
              at, at + TM_DEV_HDR);
    DEV_PACKET();
    tb_set_be32(b.p + at + TM_DEV_HDR, 1);
    EXPECT_IN("VFIO buffer version 1", &b, NULL, MS_ERR_MULTIFD, at,
              at + end);
    DEV_PACKET();
    tb_set_be32(b.p + at + TM_DEV_HDR, 0x01000000u);
    EXPECT_IN("VFIO buffer version host-endian 1", &b, NULL, MS_ERR_MULTIFD,
              at, at + end);
    DEV_PACKET();
    tb_set_be32(b.p + at + TM_DEV_HDR + 4, 0xffffffffu);
    EXPECT_IN("VFIO buffer idx 0xffffffff", &b, NULL, MS_ERR_MULTIFD, at,
              at + end);
    DEV_PACKET();
    tb_set_be32(b.p + at + TM_DEV_HDR + 8, 2);
    EXPECT_IN("VFIO buffer flags 0x2", &b, NULL, MS_ERR_MULTIFD, at,
              at + end);
    DEV_PACKET();
    tb_set_be32(b.p + at + TM_DEV_HDR + 8, 0x80000001u);
    EXPECT_IN("VFIO buffer flags 0x80000001", &b, NULL, MS_ERR_MULTIFD, at,
              at + end);
    /* a payload of exactly 12 bytes (header, no data) is not empty */
    start_channel(&b);
    tm_device(&b, id, 0, 0, 0, NULL, 0);
    mres r;
    mread_all(b.p, b.len, NULL, &r);
    SOFT(r.rc == 0 && r.dev_packets == 1,
         "12-byte device payload decodes: %s",
         ms_error_name(r.err.code));
    mres_free(&r);
    /* payload longer than the input: truncated */
    DEV_PACKET();
    tb_set_be32(b.p + at + 272, (uint32_t)(TM_VFIO_HDR + sizeof data + 1));
    mread_all(b.p, b.len, NULL, &r);
    SOFT(r.rc == -1 && r.err.code == MS_ERR_TRUNCATED &&
             r.err.offset == b.len,
         "payload overrunning the channel: %s at %llu",
         ms_error_name(r.err.code), (unsigned long long)r.err.offset);
    mres_free(&r);
    tb_buf_free(&b);
    DONE();
#undef DEV_PACKET
}

static void test_reject_compression(void **state)
{
    (void)state;
    BEGIN();
    uint8_t *pg = make_pages(4, 77);
    uint64_t off[4] = {0, PS, 2 * PS, 3 * PS};
    tb_buf b, x;
    tb_buf_init(&b);
    tb_buf_init(&x);
    static const uint32_t methods[2] = {TM_ZLIB, TM_ZSTD};
    for (int m = 0; m < 2; m++) {
        const char *name = methods[m] == TM_ZLIB ? "zlib" : "zstd";
        char label[128];
        /* compression changing within a channel */
        tm_comp *c = tm_comp_new(methods[m], 1);
        start_channel(&b);
        tm_ram_comp(&b, c, 0, 1, "pc.ram", off, 2, 0, pg);
        size_t at = tm_ram_raw(&b, 0, 2, "pc.ram", off + 2, 2, 0, pg + 2 * PS);
        snprintf(label, sizeof label, "%s then none", name);
        EXPECT_IN(label, &b, NULL, MS_ERR_MULTIFD, at, at + RAM_HDR);
        tm_comp_free(c);
        /* the other method */
        c = tm_comp_new(methods[m], 1);
        tm_comp *o = tm_comp_new(methods[1 - m], 1);
        start_channel(&b);
        tm_ram_comp(&b, c, 0, 1, "pc.ram", off, 2, 0, pg);
        at = tm_ram_comp(&b, o, 0, 2, "pc.ram", off + 2, 2, 0, pg + 2 * PS);
        snprintf(label, sizeof label, "%s then the other", name);
        EXPECT_IN(label, &b, NULL, MS_ERR_MULTIFD, at, at + RAM_HDR);
        tm_comp_free(c);
        tm_comp_free(o);
        /* none then compressed */
        c = tm_comp_new(methods[m], 1);
        start_channel(&b);
        tm_ram_raw(&b, 0, 1, "pc.ram", off, 2, 0, pg);
        at = tm_ram_comp(&b, c, 0, 2, "pc.ram", off + 2, 2, 0, pg + 2 * PS);
        snprintf(label, sizeof label, "none then %s", name);
        EXPECT_IN(label, &b, NULL, MS_ERR_MULTIFD, at, at + RAM_HDR);
        tm_comp_free(c);

        /* corrupt payloads: the stream header of the first packet */
        c = tm_comp_new(methods[m], 1);
        start_channel(&b);
        size_t p1 = tm_ram_comp(&b, c, 0, 1, "pc.ram", off, 2, 0, pg);
        size_t p2 = tm_ram_comp(&b, c, 0, 2, "pc.ram", off + 2, 2, 0,
                                pg + 2 * PS);
        size_t p2_end = b.len;
        tm_comp_free(c);
        tb_buf_copy(&x, &b);
        x.p[p1 + RAM_HDR] ^= 0xff;
        x.p[p1 + RAM_HDR + 1] ^= 0xff;
        snprintf(label, sizeof label, "%s: corrupt stream header", name);
        EXPECT_IN(label, &x, NULL, MS_ERR_DECOMPRESS, p1 + RAM_HDR, p2);
        /* the whole payload of the second packet replaced by 0xff */
        tb_buf_copy(&x, &b);
        memset(x.p + p2 + RAM_HDR, 0xff, p2_end - p2 - RAM_HDR);
        snprintf(label, sizeof label, "%s: corrupt second packet", name);
        EXPECT_IN(label, &x, NULL, MS_ERR_DECOMPRESS, p2 + RAM_HDR, p2_end);
        /* the second packet inflated without the first (stream state) */
        tb_buf_reset(&x);
        tm_init(&x, NULL, 0);
        size_t q = x.len;
        tb_put(&x, b.p + p2, p2_end - p2);
        snprintf(label, sizeof label, "%s: packet without its stream start",
                 name);
        EXPECT_IN(label, &x, NULL, MS_ERR_DECOMPRESS, q + RAM_HDR, x.len);

        /* the payload holds more than its pages: 3 pages compressed, 2
         * declared */
        c = tm_comp_new(methods[m], 1);
        tb_buf z;
        tb_buf_init(&z);
        tm_comp_pages(c, pg, 3, PS, &z);
        start_channel(&b);
        tm_ram p = {.flags = methods[m],
                    .normal = 2,
                    .next_packet_size = (uint32_t)z.len,
                    .packet_num = 1,
                    .block = "pc.ram",
                    .offsets = off,
                    .payload = z.p,
                    .payload_len = z.len};
        at = tm_ram_ex(&b, &p);
        snprintf(label, sizeof label, "%s: payload holds more than its pages",
                 name);
        EXPECT_IN(label, &b, NULL, MS_ERR_DECOMPRESS, at + RAM_HDR, b.len);
        /* ... or fewer: 3 declared */
        tm_comp_free(c);
        c = tm_comp_new(methods[m], 1);
        tm_comp_pages(c, pg, 2, PS, &z);
        start_channel(&b);
        p.normal = 3;
        p.next_packet_size = (uint32_t)z.len;
        p.payload = z.p;
        p.payload_len = z.len;
        at = tm_ram_ex(&b, &p);
        tm_ram_empty(&b, TM_SYNC, 5, 0, NULL); /* bytes after it */
        snprintf(label, sizeof label, "%s: payload holds fewer pages", name);
        EXPECT_IN(label, &b, NULL, MS_ERR_DECOMPRESS, at + RAM_HDR,
                  at + RAM_HDR + z.len + 1);
        /* next_packet_size cuts the flush marker off the end: the packet's
         * payload ends early and the next packet's header is not
         * compressed data */
        tm_comp_free(c);
        c = tm_comp_new(methods[m], 1);
        tm_comp_pages(c, pg, 2, PS, &z);
        start_channel(&b);
        p.normal = 2;
        p.next_packet_size = (uint32_t)z.len + 40;
        at = tm_ram_ex(&b, &p);
        tm_ram_empty(&b, TM_SYNC, 5, 0, NULL);
        snprintf(label, sizeof label,
                 "%s: next_packet_size beyond the payload", name);
        EXPECT_IN(label, &b, NULL, MS_ERR_DECOMPRESS, at + RAM_HDR, b.len);
        tm_comp_free(c);
        tb_buf_free(&z);
    }
    tb_buf_free(&x);
    tb_buf_free(&b);
    free(pg);
    DONE();
}

/* A limit: a payload above max_record_payload is refused, not buffered. */
static void test_limits(void **state)
{
    (void)state;
    BEGIN();
    ms_options o;
    ms_options_init(&o);
    o.max_record_payload = 1000;
    tb_buf b;
    tb_buf_init(&b);
    uint8_t data[2000] = {0};
    start_channel(&b);
    size_t at = tm_device(&b, "0000:00:10.0/vfio", 0, 0, 0, data, sizeof data);
    EXPECT_IN("device payload above max_record_payload", &b, &o,
              MS_ERR_LIMIT, at, at + TM_DEV_HDR);
    uint8_t *pg = make_pages(1, 3);
    uint64_t off = 0;
    start_channel(&b);
    at = tm_ram_raw(&b, 0, 1, "pc.ram", &off, 1, 0, pg);
    EXPECT_IN("RAM payload above max_record_payload", &b, &o, MS_ERR_LIMIT,
              at, at + RAM_HDR);
    free(pg);
    tb_buf_free(&b);
    DONE();
}

/* ---- the real captures -------------------------------------------------------- */


#define MFD4 "tests/data/captures/qemu-7.2-pc-multifd4/"
#define ZLIB2 "tests/data/captures/qemu-7.2-pc-multifd2-zlib/"

static const char *const capture_channels[] = {
    MFD4 "conn1.bin",  MFD4 "conn2.bin",  MFD4 "conn3.bin", MFD4 "conn4.bin",
    ZLIB2 "conn1.bin", ZLIB2 "conn2.bin",
};
#define N_CAPTURE_CHANNELS 6

/* The captures README: channel id -> packets, SYNC packets, pages. */
static void test_capture_multifd4(void **state)
{
    (void)state;
    BEGIN();
    static const size_t want[4][3] = {
        {5, 3, 189}, {5, 3, 45}, {5, 3, 3}, {4, 3, 46}};
    int seen[4] = {0};
    size_t total = 0;
    for (int i = 0; i < 4; i++) {
        size_t len;
        uint8_t *p = tb_load_source(capture_channels[i], &len);
        assert_non_null(p);
        mres r;
        mrun run = {.no_copy = 1};
        mread(p, len, &run, &r);
        SOFT(r.rc == 0, "%s: %s at %llu: %s", capture_channels[i],
             ms_error_name(r.err.code), (unsigned long long)r.err.offset,
             r.err.detail);
        uint32_t id = r.channel_id;
        SOFT(id < 4, "%s: channel id %u", capture_channels[i], id);
        if (id < 4) {
            seen[id]++;
            SOFT(r.packets == want[id][0], "channel %u: %zu packets, want %zu",
                 id, r.packets, want[id][0]);
            SOFT(r.syncs == want[id][1], "channel %u: %zu SYNC, want %zu", id,
                 r.syncs, want[id][1]);
            SOFT(r.pages == want[id][2], "channel %u: %zu pages, want %zu", id,
                 r.pages, want[id][2]);
        }
        static const uint8_t zero[16];
        SOFT(memcmp(r.uuid, zero, 16) == 0, "channel %u: uuid not zero", id);
        SOFT(r.zero_pages == 0, "channel %u: zero pages in 7.2", id);
        SOFT(r.bad_page_size == 0 && r.page_zero_copy == r.pages,
             "channel %u: pages are 4 KiB views", id);
        SOFT(r.normal_total == r.pages, "channel %u: normal_pages sum", id);
        SOFT(r.dev_packets == 0, "channel %u: device-state packets", id);
        SOFT(r.offset_regress == 0, "channel %u: %zu event offsets go back",
             id, r.offset_regress);
        total += r.pages;
        mres_free(&r);
        free(p);
    }
    SOFT(seen[0] == 1 && seen[1] == 1 && seen[2] == 1 && seen[3] == 1,
         "channel ids 0..3 once each");
    SOFT(total == 283, "%zu normal pages; QEMU reported 283", total);
    DONE();
}

/* RAM ground truth (captures README): pc.ram at 0x1000000 holds the bytes
 * of multifd4/conn1.bin.  Pages come from the multifd channels (normal)
 * and the main channel (ZERO records); per page, the later sync epoch
 * wins, and in one epoch the higher packet number. */
typedef struct truth {
    uint64_t lo, hi;   /* the region in pc.ram */
    size_t npages;
    uint8_t *img;      /* npages * PS */
    int *have;         /* per page: 0 none, 1 set */
    uint32_t *epoch;
    uint64_t *num;
    int conflict;      /* same page twice with the same (epoch, num) */
    size_t zero_records, normal_pages, page_events;
} truth;

static void truth_event(void *ctx, const ms_event *ev)
{
    truth *t = ctx;
    if (ev->kind != MS_EV_RAM_PAGE)
        return;
    t->page_events++;
    const ms_ram_info *m = &ev->u.ram;
    if (!m->block || strcmp(m->block, "pc.ram") != 0 ||
        m->offset + PS <= t->lo || m->offset >= t->hi)
        return;
    size_t i = (size_t)((m->offset - t->lo) / PS);
    uint32_t epoch = m->epoch;
    uint64_t num = m->packet_num;
    if (t->have[i]) {
        if (epoch < t->epoch[i] ||
            (epoch == t->epoch[i] && num < t->num[i]))
            return;
        if (epoch == t->epoch[i] && num == t->num[i])
            t->conflict++;
    }
    t->have[i] = 1;
    t->epoch[i] = epoch;
    t->num[i] = num;
    if (m->record == MS_RAM_ZERO) {
        t->zero_records++;
        memset(t->img + i * PS, 0, PS);
    } else {
        t->normal_pages++;
        if (m->data && m->size == PS)
            memcpy(t->img + i * PS, m->data, PS);
    }
}

static void test_capture_zlib(void **state)
{
    (void)state;
    BEGIN();
    size_t tlen;
    uint8_t *want = tb_load_source(MFD4 "conn1.bin", &tlen);
    assert_non_null(want);
    truth t = {.lo = 0x1000000};
    t.hi = t.lo + tlen;
    t.npages = (tlen + PS - 1) / PS;
    t.img = calloc(t.npages, PS);
    t.have = calloc(t.npages, sizeof *t.have);
    t.epoch = calloc(t.npages, sizeof *t.epoch);
    t.num = calloc(t.npages, sizeof *t.num);
    assert_true(t.img && t.have && t.epoch && t.num);
    uint8_t ids = 0;
    for (int i = 4; i < 6; i++) {
        size_t len;
        uint8_t *p = tb_load_source(capture_channels[i], &len);
        assert_non_null(p);
        mres r;
        mrun run = {.fn = truth_event, .ctx = &t};
        mread(p, len, &run, &r);
        SOFT(r.rc == 0, "%s: %s at %llu: %s", capture_channels[i],
             ms_error_name(r.err.code), (unsigned long long)r.err.offset,
             r.err.detail);
        SOFT(r.bad_page_size == 0, "%s: %zu pages not of 4096 bytes",
             capture_channels[i], r.bad_page_size);
        SOFT(r.pages > 0 && r.pages == r.normal_total,
             "%s: %zu pages for %llu normal_pages", capture_channels[i],
             r.pages, (unsigned long long)r.normal_total);
        SOFT(r.syncs >= 2, "%s: SYNC packets %zu", capture_channels[i],
             r.syncs);
        SOFT(r.offset_regress == 0, "%s: %zu event offsets go back",
             capture_channels[i], r.offset_regress);
        SOFT(r.channel_id < 2, "%s: channel id %u", capture_channels[i],
             r.channel_id);
        ids |= (uint8_t)(1u << (r.channel_id & 7));
        mres_free(&r);
        free(p);
    }
    SOFT(ids == 3, "channel ids 0 and 1");
    /* the main channel's ZERO records */
    size_t mlen;
    uint8_t *mp = tb_load_source(ZLIB2 "conn0.bin", &mlen);
    assert_non_null(mp);
    ms_reader *rd = ms_reader_create(NULL);
    assert_non_null(rd);
    assert_int_equal(ms_reader_input(rd, mp, mlen), 0);
    ms_event ev;
    int k;
    while ((k = ms_reader_next(rd, &ev)) == MS_NEXT_EVENT)
        truth_event(&t, &ev);
    SOFT(k == MS_NEXT_INPUT && ms_reader_finish(rd) == 0,
         "main channel: %s", ms_reader_error(rd)->detail);
    ms_reader_free(rd);
    free(mp);
    size_t missing = 0, wrong = 0, first_wrong = SIZE_MAX;
    for (size_t i = 0; i < t.npages; i++) {
        if (!t.have[i]) {
            missing++;
            continue;
        }
        size_t n = i + 1 < t.npages ? PS : tlen - i * PS;
        int bad = memcmp(t.img + i * PS, want + i * PS, n) != 0;
        for (size_t j = n; j < PS && !bad; j++)
            bad = t.img[i * PS + j] != 0;
        if (bad) {
            wrong++;
            if (first_wrong == SIZE_MAX)
                first_wrong = i;
        }
    }
    SOFT(missing == 0, "%zu of %zu region pages never sent", missing,
         t.npages);
    SOFT(wrong == 0, "%zu region pages differ (first at 0x%llx)", wrong,
         (unsigned long long)(t.lo + (uint64_t)first_wrong * PS));
    SOFT(t.conflict == 0, "%d pages sent twice with one (epoch, num)",
         t.conflict);
    SOFT(t.normal_pages > 0 && t.zero_records > 0,
         "region: %zu multifd pages, %zu main-channel ZERO records",
         t.normal_pages, t.zero_records);
    free(t.img);
    free(t.have);
    free(t.epoch);
    free(t.num);
    free(want);
    DONE();
}

/* One slice, byte by byte and random slices: identical events. */
static void test_capture_slicing(void **state)
{
    (void)state;
    BEGIN();
    for (int i = 0; i < N_CAPTURE_CHANNELS; i++) {
        size_t len;
        uint8_t *p = tb_load_source(capture_channels[i], &len);
        assert_non_null(p);
        mres a;
        mread_all(p, len, NULL, &a);
        SOFT(a.rc == 0, "%s decodes", capture_channels[i]);
        mrun runs[] = {{.slice = 1},
                       {.seed = 3, .max_slice = 97},
                       {.seed = 4, .max_slice = 70000},
                       {.slice = 4096}};
        char why[1024];
        for (size_t k = 0; k < sizeof runs / sizeof runs[0]; k++) {
            mres b;
            mread(p, len, &runs[k], &b);
            SOFT(mres_same(&a, &b, why, sizeof why), "%s: slicing %zu: %s",
                 capture_channels[i], k, why);
            mres_free(&b);
        }
        mres_free(&a);
        free(p);
    }
    DONE();
}

/* ~1000 cuts over the capture channels, plus every packet boundary and
 * the bytes either side: clean exactly at boundaries, else truncated. */
static void test_capture_truncation(void **state)
{
    (void)state;
    BEGIN();
    size_t cuts = 0;
    for (int i = 0; i < N_CAPTURE_CHANNELS; i++) {
        size_t len;
        uint8_t *p = tb_load_source(capture_channels[i], &len);
        assert_non_null(p);
        mres a;
        mrun run = {.no_copy = 1, .light = 1};
        mread(p, len, &run, &a);
        SOFT(a.rc == 0, "%s decodes", capture_channels[i]);
        /* boundaries: end of the init packet, each packet start, the end */
        size_t nb = a.nb + 2;
        uint64_t *b = xmalloc(nb * sizeof *b);
        b[0] = TM_INIT_SIZE;
        for (size_t k = 0; k < a.nb; k++)
            b[k + 1] = a.boundaries[k];
        b[nb - 1] = len;
        SOFT(a.nb && a.boundaries[0] == TM_INIT_SIZE,
             "%s: first packet at 64", capture_channels[i]);
        size_t bad = 0;
        for (size_t k = 0; k < nb && bad < 5; k++)
            for (int d = -1; d <= 1; d++) {
                uint64_t c = b[k] + (uint64_t)(int64_t)d;
                if (c <= len && !check_cut(p, (size_t)c, NULL, b + 1, nb - 1,
                                           capture_channels[i]))
                    bad++;
                cuts++;
            }
        /* 170 spread cuts per channel (odd stride, so not page aligned) */
        size_t step = len / 170 | 1;
        for (size_t c = 0; c < len && bad < 5; c += step) {
            if (!check_cut(p, c, NULL, b + 1, nb - 1, capture_channels[i]))
                bad++;
            cuts++;
        }
        for (size_t c = 0; c < 70 && bad < 5; c++) { /* the init packet */
            if (!check_cut(p, c, NULL, b + 1, nb - 1, capture_channels[i]))
                bad++;
            cuts++;
        }
        free(b);
        mres_free(&a);
        free(p);
    }
    SOFT(cuts >= 1000, "only %zu cuts", cuts);
    DONE();
}

/* A channel may end at any packet boundary, even right after its init
 * packet: the reader calls that a clean end (the set checks tails). */
static void test_clean_ends(void **state)
{
    (void)state;
    BEGIN();
    tb_buf b;
    tb_buf_init(&b);
    tm_init(&b, uuid_x, 9);
    mres r;
    mread_all(b.p, b.len, NULL, &r);
    SOFT(r.rc == 0 && r.headers == 1 && r.channels == 1 && r.packets == 0,
         "init packet alone: %s", ms_error_name(r.err.code));
    SOFT(r.channel_id == 9, "channel id 9");
    mres_free(&r);
    /* a second init packet is not a packet */
    tm_init(&b, uuid_x, 9);
    mread_all(b.p, b.len, NULL, &r);
    SOFT(r.rc == -1 && r.err.code == MS_ERR_MULTIFD && r.err.offset >= 64 &&
             r.err.offset < 128,
         "init packet twice: %s at %llu", ms_error_name(r.err.code),
         (unsigned long long)r.err.offset);
    mres_free(&r);
    tb_buf_free(&b);
    DONE();
}

/* Where pages and decompress errors are placed must not depend on how the
 * input was sliced: an event's offset and length describe the wire, so one
 * slice and byte by byte must agree on them too (strict comparison). */
static void test_slicing_positions(void **state)
{
    (void)state;
    BEGIN();
    char why[1024];
    /* raw pages of a capture channel; zlib pages of the zlib capture */
    static const char *const files[2] = {MFD4 "conn3.bin", ZLIB2 "conn2.bin"};
    for (int i = 0; i < 2; i++) {
        size_t len;
        uint8_t *p = tb_load_source(files[i], &len);
        assert_non_null(p);
        mres a, b;
        mread_all(p, len, NULL, &a);
        mrun bytes = {.slice = 1};
        mread(p, len, &bytes, &b);
        SOFT(mres_same_(&a, &b, 1, why, sizeof why),
             "%s: one slice vs byte by byte: %s", files[i], why);
        mres_free(&a);
        mres_free(&b);
        free(p);
    }
    /* zstd pages; a decompress error in a later packet */
    static const uint32_t methods[2] = {TM_ZLIB, TM_ZSTD};
    uint8_t *pg = make_pages(4, 9);
    uint64_t off[4] = {0, PS, 2 * PS, 3 * PS};
    for (int m = 0; m < 2; m++) {
        tb_buf b;
        tb_buf_init(&b);
        tm_comp *c = tm_comp_new(methods[m], 1);
        start_channel(&b);
        tm_ram_comp(&b, c, 0, 1, "pc.ram", off, 2, 0, pg);
        size_t p2 = tm_ram_comp(&b, c, 0, 2, "pc.ram", off + 2, 2, 0,
                                pg + 2 * PS);
        tm_comp_free(c);
        mres x, y;
        mread_all(b.p, b.len, NULL, &x);
        mrun bytes = {.slice = 1};
        mread(b.p, b.len, &bytes, &y);
        SOFT(mres_same_(&x, &y, 1, why, sizeof why),
             "%s pages: one slice vs byte by byte: %s",
             m ? "zstd" : "zlib", why);
        mres_free(&x);
        mres_free(&y);
        memset(b.p + p2 + RAM_HDR, 0xff, b.len - p2 - RAM_HDR);
        mread_all(b.p, b.len, NULL, &x);
        mread(b.p, b.len, &bytes, &y);
        SOFT(x.rc == -1 && x.err.code == MS_ERR_DECOMPRESS,
             "corrupt %s packet fails", m ? "zstd" : "zlib");
        SOFT(mres_same_(&x, &y, 1, why, sizeof why),
             "corrupt %s packet: one slice vs byte by byte: %s",
             m ? "zstd" : "zlib", why);
        mres_free(&x);
        mres_free(&y);
        /* next_packet_size 40 bytes beyond the payload: the next packet's
         * header is read as compressed data after the last page */
        c = tm_comp_new(methods[m], 1);
        tb_buf z;
        tb_buf_init(&z);
        tm_comp_pages(c, pg, 2, PS, &z);
        tm_ram p = {.flags = methods[m],
                    .normal = 2,
                    .next_packet_size = (uint32_t)z.len + 40,
                    .packet_num = 1,
                    .block = "pc.ram",
                    .offsets = off,
                    .payload = z.p,
                    .payload_len = z.len};
        start_channel(&b);
        tm_ram_ex(&b, &p);
        tm_ram_empty(&b, TM_SYNC, 5, 0, NULL);
        mread_all(b.p, b.len, NULL, &x);
        mread(b.p, b.len, &bytes, &y);
        SOFT(x.rc == -1 && x.err.code == MS_ERR_DECOMPRESS,
             "%s: next_packet_size beyond the payload fails",
             m ? "zstd" : "zlib");
        SOFT(mres_same_(&x, &y, 1, why, sizeof why),
             "%s: next_packet_size beyond the payload: one slice vs byte by "
             "byte: %s",
             m ? "zstd" : "zlib", why);
        mres_free(&x);
        mres_free(&y);
        tm_comp_free(c);
        tb_buf_free(&z);
        tb_buf_free(&b);
    }
    free(pg);
    DONE();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_raw_channel),
        cmocka_unit_test(test_zlib_channel),
        cmocka_unit_test(test_zstd_channel),
        cmocka_unit_test(test_walked_payloads),
        cmocka_unit_test(test_page_size),
        cmocka_unit_test(test_clean_ends),
        cmocka_unit_test(test_reject_init),
        cmocka_unit_test(test_reject_header),
        cmocka_unit_test(test_reject_device_state),
        cmocka_unit_test(test_reject_compression),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_capture_multifd4),
        cmocka_unit_test(test_capture_zlib),
        cmocka_unit_test(test_capture_slicing),
        cmocka_unit_test(test_capture_truncation),
        cmocka_unit_test(test_slicing_positions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
