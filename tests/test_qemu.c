/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* The QEMU main stream ("QEVM") decoder, checked against the format facts
 * in the qemu-main-stream reference (not against the decoder's own code):
 *
 *   - hand-built streams (test_util's tq_* builder) with every record kind:
 *     configuration subsections, START/PART/END/FULL sections, every
 *     command, every RAM record, every VFIO marker, PACKAGED nesting, the
 *     JSON trailer and the libvirt save-image wrapper;
 *   - the real QEMU 7.2 capture (tests/data/captures/qemu-7.2-pc-precopy):
 *     decoded whole, byte by byte and in random slices with identical
 *     events, its section list, block list and page counts compared with
 *     reference-state.json and the capture's README, and cut at ~2600
 *     offsets;
 *   - one crafted stream per rejection in reference section 10 (and the
 *     project spec's check table), each with its exact error code and an
 *     offset inside the offending record;
 *   - every valid crafted stream fed one byte at a time and in random
 *     slices (same events) and cut at every offset (must fail, except right
 *     after the EOF byte, where a stream may end without its trailer).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <zlib.h>

#include "test_util.h"

/* ---- soft checks: report every failed expectation of a test ------------- */
static int g_fail;


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

/* ---- decoding a buffer, with every event recorded ----------------------- */

/* One event.  DATA events of one contiguous run (same device and phase,
 * adjacent image and stream offsets) are merged, so results of different
 * slicings compare equal.  Pointer members of `ev` are cleared; `name` keeps
 * the event's main string and `desc` every field as text. */
typedef struct qev {
    ms_event ev;
    char *name;
    char *desc;
    uint64_t data_hash; /* XXH3 of the data the event points at */
} qev;

#define MAX_DEV 16
typedef struct qres {
    int rc;
    int failed_in_finish;
    ms_error_info err;
    qev *ev;
    size_t n, cap;
    size_t kind_count[64];      /* per event kind (DATA: every event) */
    size_t page_count[0x400];   /* RAM_PAGE events per record type */
    struct {
        uint32_t device;
        tb_buf bytes;
    } dev[MAX_DEV];
    size_t ndev;
    size_t offset_regress;      /* events whose offset went backwards */
    size_t data_offset_errors;  /* DATA image_offset not contiguous */
    uint64_t last_offset;
    uint64_t bytes_fed;
} qres;

typedef struct qrun {
    const ms_options *opt; /* NULL: defaults */
    const char *vmdesc;    /* given with ms_reader_set_vmdesc first */
    size_t vmdesc_len;
    size_t slice;          /* 0: one slice; n: slices of n bytes */
    uint64_t seed;         /* != 0: random slices of 1..max_slice bytes */
    size_t max_slice;
    int no_copy;           /* hand the caller's buffer itself */
    int light;             /* count events only (truncation sweeps) */
} qrun;

static void qres_free(qres *r)
{
    for (size_t i = 0; i < r->n; i++) {
        free(r->ev[i].name);
        free(r->ev[i].desc);
    }
    free(r->ev);
    for (size_t i = 0; i < r->ndev; i++)
        tb_buf_free(&r->dev[i].bytes);
    memset(r, 0, sizeof *r);
}

static tb_buf *qres_device(qres *r, uint32_t device)
{
    for (size_t i = 0; i < r->ndev; i++)
        if (r->dev[i].device == device)
            return &r->dev[i].bytes;
    if (r->ndev == MAX_DEV)
        return NULL;
    r->dev[r->ndev].device = device;
    tb_buf_init(&r->dev[r->ndev].bytes);
    return &r->dev[r->ndev++].bytes;
}

#define S(x) ((x) ? (x) : "(null)")

static uint64_t hash_of(const void *p, size_t n)
{
    return p ? tb_hash(p, n) : 0;
}

/* Text of every field of an event (DATA: see qres_desc_data). */
static void describe(const ms_event *e, char *o, size_t cap)
{
    switch (e->kind) {
    case MS_EV_STREAM_HEADER:
        snprintf(o, cap, "format=%d version=%u.%u channels=%u",
                 (int)e->u.stream.format, e->u.stream.version_major,
                 e->u.stream.version_minor, e->u.stream.channel_count);
        break;
    case MS_EV_CONFIGURATION: {
        const ms_config_info *c = &e->u.config;
        char uuid[40] = "";
        for (int i = 0; c->has_uuid && i < 16; i++)
            snprintf(uuid + 2 * i, 3, "%02x", c->uuid[i]);
        snprintf(o, cap,
                 "machine=%.*s pagebits=%d/%u caps=%u ignore_shared=%d "
                 "mapped_ram=%d uuid=%d/%s",
                 (int)c->machine_len, S(c->machine), c->has_page_bits,
                 c->page_bits, c->capability_count, c->cap_x_ignore_shared,
                 c->cap_mapped_ram, c->has_uuid, uuid);
        break;
    }
    case MS_EV_SECTION:
    case MS_EV_SECTION_FOOTER:
    case MS_EV_UNDECODED: {
        const ms_section_info *s = &e->u.section;
        snprintf(o, cap,
                 "type=%d id=%u idstr=%s instance=%u version=%u "
                 "section_offset=%llu detail=%s",
                 (int)s->type, s->section_id, S(s->idstr), s->instance_id,
                 s->version_id, (unsigned long long)s->section_offset,
                 e->kind == MS_EV_UNDECODED ? S(s->detail) : "-");
        break;
    }
    case MS_EV_COMMAND: {
        const ms_command_info *c = &e->u.command;
        snprintf(o, cap,
                 "cmd=%u len=%u name=%s value=%llu nesting=%d args=%016llx",
                 c->cmd, c->len, S(c->name), (unsigned long long)c->value,
                 c->nesting, (unsigned long long)hash_of(c->args, c->len));
        break;
    }
    case MS_EV_RAM_BLOCK:
    case MS_EV_RAM_PAGE:
    case MS_EV_RAM_MARKER: {
        const ms_ram_info *m = &e->u.ram;
        snprintf(o, cap,
                 "record=0x%x block=%s index=%u offset=0x%llx used=0x%llx "
                 "total=0x%llx size=%zu data=%016llx fill=%u",
                 (unsigned)m->record, S(m->block), m->block_index,
                 (unsigned long long)m->offset,
                 (unsigned long long)m->used_length,
                 (unsigned long long)m->total, m->size,
                 (unsigned long long)hash_of(m->data, m->size), m->fill);
        break;
    }
    case MS_EV_VFIO_MARKER: {
        const ms_vfio_info *v = &e->u.vfio;
        snprintf(o, cap,
                 "marker=0x%016llx name=%s section=%u idstr=%s size=%llu "
                 "phase=%d",
                 (unsigned long long)v->marker, S(v->name), v->section_id,
                 S(v->idstr), (unsigned long long)v->data_size, (int)v->phase);
        break;
    }
    case MS_EV_SUBSECTION:
    case MS_EV_FIELD: {
        const ms_field_info *f = &e->u.field;
        snprintf(o, cap,
                 "section=%u path=%s type=%s size=%zu data=%016llx "
                 "version=%u",
                 f->section_id, S(f->path), S(f->type), f->size,
                 (unsigned long long)hash_of(f->data, f->size), f->version);
        break;
    }
    case MS_EV_VMDESC:
        snprintf(o, cap, "len=%zu json=%016llx", e->u.vmdesc.len,
                 (unsigned long long)hash_of(e->u.vmdesc.json,
                                             e->u.vmdesc.len));
        break;
    default: o[0] = 0; break;
    }
}

/* The main string of an event, and its pointers cleared. */
static const char *sanitize(ms_event *e, uint64_t *hash)
{
    const char *name = NULL;
    *hash = 0;
    switch (e->kind) {
    case MS_EV_CONFIGURATION:
        name = e->u.config.machine;
        e->u.config.machine = NULL;
        break;
    case MS_EV_SECTION:
    case MS_EV_SECTION_FOOTER:
    case MS_EV_UNDECODED:
        name = e->u.section.idstr;
        e->u.section.idstr = NULL;
        e->u.section.detail = NULL;
        break;
    case MS_EV_COMMAND:
        name = e->u.command.name;
        *hash = hash_of(e->u.command.args, e->u.command.len);
        e->u.command.name = NULL;
        e->u.command.args = NULL;
        break;
    case MS_EV_RAM_BLOCK:
    case MS_EV_RAM_PAGE:
    case MS_EV_RAM_MARKER:
        name = e->u.ram.block;
        *hash = hash_of(e->u.ram.data, e->u.ram.size);
        e->u.ram.block = NULL;
        e->u.ram.data = NULL;
        break;
    case MS_EV_VFIO_MARKER:
        name = e->u.vfio.name;
        e->u.vfio.name = NULL;
        e->u.vfio.idstr = NULL;
        break;
    case MS_EV_SUBSECTION:
    case MS_EV_FIELD:
        name = e->u.field.path;
        *hash = hash_of(e->u.field.data, e->u.field.size);
        e->u.field.path = NULL;
        e->u.field.type = NULL;
        e->u.field.data = NULL;
        break;
    case MS_EV_VMDESC:
        *hash = hash_of(e->u.vmdesc.json, e->u.vmdesc.len);
        e->u.vmdesc.json = NULL;
        break;
    case MS_EV_DATA: e->u.data.data = NULL; break;
    default: break;
    }
    return name;
}

static void collect(qres *r, const ms_event *ev, int light)
{
    if ((size_t)ev->kind < 64)
        r->kind_count[ev->kind]++;
    if (ev->offset < r->last_offset)
        r->offset_regress++;
    r->last_offset = ev->offset;
    if (ev->kind == MS_EV_RAM_PAGE && ev->u.ram.record < 0x400)
        r->page_count[ev->u.ram.record]++;
    if (ev->kind == MS_EV_DATA) {
        tb_buf *b = qres_device(r, ev->u.data.device);
        if (b) {
            if (ev->u.data.image_offset != b->len)
                r->data_offset_errors++;
            if (!light)
                tb_put(b, ev->u.data.data, ev->u.data.size);
            else
                b->len += ev->u.data.size; /* count only; never read */
        }
        if (light)
            return;
        qev *last = r->n ? &r->ev[r->n - 1] : NULL;
        if (last && last->ev.kind == MS_EV_DATA &&
            last->ev.u.data.device == ev->u.data.device &&
            last->ev.u.data.phase == ev->u.data.phase &&
            last->ev.u.data.image_offset + last->ev.u.data.size ==
                ev->u.data.image_offset &&
            last->ev.offset + last->ev.length == ev->offset) {
            last->ev.u.data.size += ev->u.data.size;
            last->ev.length += ev->length;
            return;
        }
    }
    if (light)
        return;
    if (r->n == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 64;
        r->ev = realloc(r->ev, r->cap * sizeof *r->ev);
        if (!r->ev)
            abort();
    }
    qev *q = &r->ev[r->n++];
    char d[768];
    describe(ev, d, sizeof d);
    q->desc = xstrdup(d);
    q->ev = *ev;
    const char *name = sanitize(&q->ev, &q->data_hash);
    q->name = xstrdup(name ? name : "");
}

static int qread(const uint8_t *p, size_t len, const qrun *run, qres *res)
{
    memset(res, 0, sizeof *res);
    ms_reader *r = ms_reader_create(run->opt);
    if (!r) {
        res->rc = -1;
        res->err.code = MS_ERR_NO_MEMORY;
        return -1;
    }
    int failed = 0;
    if (run->vmdesc &&
        ms_reader_set_vmdesc(r, run->vmdesc, run->vmdesc_len) != 0)
        failed = 1;
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
    res->bytes_fed = pos;
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

static int qread_all(const uint8_t *p, size_t len, const ms_options *opt,
                     qres *res)
{
    qrun run = {.opt = opt};
    return qread(p, len, &run, res);
}

/* 1 when both runs gave the same events, data and verdict. */
static int qres_same(const qres *a, const qres *b, char *why, size_t cap)
{
    why[0] = 0;
    if (a->rc != b->rc) {
        snprintf(why, cap, "rc %d vs %d (%s@%llu / %s@%llu)", a->rc, b->rc,
                 ms_error_name(a->err.code),
                 (unsigned long long)a->err.offset,
                 ms_error_name(b->err.code),
                 (unsigned long long)b->err.offset);
        return 0;
    }
    if (a->rc && (a->err.code != b->err.code ||
                  a->err.offset != b->err.offset)) {
        snprintf(why, cap, "error %s@%llu vs %s@%llu",
                 ms_error_name(a->err.code),
                 (unsigned long long)a->err.offset,
                 ms_error_name(b->err.code),
                 (unsigned long long)b->err.offset);
        return 0;
    }
    size_t n = a->n < b->n ? a->n : b->n;
    for (size_t i = 0; i < n; i++) {
        const qev *x = &a->ev[i], *y = &b->ev[i];
        if (x->ev.kind != y->ev.kind || x->ev.offset != y->ev.offset ||
            x->ev.length != y->ev.length || strcmp(x->desc, y->desc) != 0 ||
            strcmp(x->name, y->name) != 0 || x->data_hash != y->data_hash ||
            (x->ev.kind == MS_EV_DATA &&
             (x->ev.u.data.device != y->ev.u.data.device ||
              x->ev.u.data.phase != y->ev.u.data.phase ||
              x->ev.u.data.image_offset != y->ev.u.data.image_offset ||
              x->ev.u.data.size != y->ev.u.data.size))) {
            snprintf(why, cap,
                     "event %zu: %s@%llu+%llu {%s} vs %s@%llu+%llu {%s}", i,
                     ms_event_kind_name(x->ev.kind),
                     (unsigned long long)x->ev.offset,
                     (unsigned long long)x->ev.length, x->desc,
                     ms_event_kind_name(y->ev.kind),
                     (unsigned long long)y->ev.offset,
                     (unsigned long long)y->ev.length, y->desc);
            return 0;
        }
    }
    if (a->n != b->n) {
        snprintf(why, cap, "%zu vs %zu events", a->n, b->n);
        return 0;
    }
    if (a->ndev != b->ndev) {
        snprintf(why, cap, "data for %zu vs %zu devices", a->ndev, b->ndev);
        return 0;
    }
    for (size_t i = 0; i < a->ndev; i++) {
        const tb_buf *x = &a->dev[i].bytes, *y = &b->dev[i].bytes;
        if (a->dev[i].device != b->dev[i].device || x->len != y->len ||
            (x->len && memcmp(x->p, y->p, x->len) != 0)) {
            snprintf(why, cap, "device %u data differs", a->dev[i].device);
            return 0;
        }
    }
    return 1;
}

static size_t qcount(const qres *r, ms_event_kind k)
{
    return (size_t)k < 64 ? r->kind_count[k] : 0;
}

/* The nth event of a kind (recorded runs only). */
static const qev *qfind(const qres *r, ms_event_kind k, size_t nth)
{
    for (size_t i = 0; i < r->n; i++)
        if (r->ev[i].ev.kind == k && nth-- == 0)
            return &r->ev[i];
    return NULL;
}

static const tb_buf *qdata(const qres *r, uint32_t device)
{
    for (size_t i = 0; i < r->ndev; i++)
        if (r->dev[i].device == device)
            return &r->dev[i].bytes;
    return NULL;
}

static void print_events(const qres *r, size_t max)
{
    for (size_t i = 0; i < r->n && i < max; i++)
        print_message("    %6llu +%-6llu %-10s %s\n",
                      (unsigned long long)r->ev[i].ev.offset,
                      (unsigned long long)r->ev[i].ev.length,
                      ms_event_kind_name(r->ev[i].ev.kind), r->ev[i].desc);
}

/* ---- expectations --------------------------------------------------------- */

/* The stream must fail with `code` at an offset in [lo, hi), the same way
 * in one slice and byte by byte. */
static void expect_err_(const char *label, const uint8_t *p, size_t len,
                        const ms_options *opt, ms_error code, uint64_t lo,
                        uint64_t hi, const char *file, int line)
{
    qres a, b;
    qrun whole = {.opt = opt};
    qrun bytes = {.opt = opt, .slice = 1};
    qread(p, len, &whole, &a);
    qread(p, len, &bytes, &b);
    int ok = a.rc == -1 && a.err.code == code && a.err.offset >= lo &&
             a.err.offset < hi;
    if (!ok) {
        g_fail++;
        if (hi == lo + 1)
            print_message("  FAIL %s:%d: %s: expected %s at %llu, got ", file,
                          line, label, ms_error_name(code),
                          (unsigned long long)lo);
        else
            print_message("  FAIL %s:%d: %s: expected %s in [%llu, %llu), "
                          "got ",
                          file, line, label, ms_error_name(code),
                          (unsigned long long)lo, (unsigned long long)hi);
        if (a.rc == 0)
            print_message("success (%zu events)\n", a.n);
        else
            print_message("%s at %llu: %s\n", ms_error_name(a.err.code),
                          (unsigned long long)a.err.offset, a.err.detail);
    }
    char why[512];
    if (!qres_same(&a, &b, why, sizeof why)) {
        g_fail++;
        print_message("  FAIL %s:%d: %s: byte-by-byte feeding differs: %s\n",
                      file, line, label, why);
    }
    qres_free(&a);
    qres_free(&b);
}

#define EXPECT_IN(label, buf, opt, code, lo, hi)                              \
    expect_err_(label, (buf)->p, (buf)->len, opt, code, lo, hi, __FILE__,     \
                __LINE__)
#define EXPECT_AT(label, buf, opt, code, off)                                 \
    expect_err_(label, (buf)->p, (buf)->len, opt, code, off, (off) + 1,       \
                __FILE__, __LINE__)

/* A valid stream: decodes cleanly in one slice (the result stays in *out
 * when out != NULL); byte by byte and in random slices it gives the same
 * events; cut at every offset it fails with truncated or missing-end,
 * except right after the top-level EOF byte (eof_end, 0: not checked)
 * where a stream may end without its JSON trailer. */
static void check_valid_(const char *label, const uint8_t *p, size_t len,
                         const ms_options *opt, const char *vmdesc,
                         size_t vmdesc_len, size_t eof_end, qres *out,
                         const char *file, int line)
{
    qres a;
    qrun whole = {.opt = opt, .vmdesc = vmdesc, .vmdesc_len = vmdesc_len};
    qread(p, len, &whole, &a);
    if (a.rc != 0) {
        g_fail++;
        print_message("  FAIL %s:%d: %s: valid stream fails: %s at %llu: "
                      "%s\n",
                      file, line, label, ms_error_name(a.err.code),
                      (unsigned long long)a.err.offset, a.err.detail);
        print_events(&a, 400);
    }
    if (a.offset_regress) {
        g_fail++;
        print_message("  FAIL %s:%d: %s: %zu event offsets go backwards\n",
                      file, line, label, a.offset_regress);
    }
    if (a.data_offset_errors) {
        g_fail++;
        print_message("  FAIL %s:%d: %s: %zu DATA events with a "
                      "non-contiguous image_offset\n",
                      file, line, label, a.data_offset_errors);
    }
    char why[1024];
    qres b;
    qrun bytes = whole;
    bytes.slice = 1;
    qread(p, len, &bytes, &b);
    if (!qres_same(&a, &b, why, sizeof why)) {
        g_fail++;
        print_message("  FAIL %s:%d: %s: one slice vs byte by byte: %s\n",
                      file, line, label, why);
    }
    qres_free(&b);
    for (uint64_t seed = 1; seed <= 4; seed++) {
        qrun rnd = whole;
        rnd.seed = seed * 7919;
        rnd.max_slice = seed == 4 ? 300 : 17;
        qread(p, len, &rnd, &b);
        if (!qres_same(&a, &b, why, sizeof why)) {
            g_fail++;
            print_message("  FAIL %s:%d: %s: one slice vs random slices "
                          "(seed %llu): %s\n",
                          file, line, label, (unsigned long long)rnd.seed,
                          why);
        }
        qres_free(&b);
    }
    size_t bad = 0;
    for (size_t cut = 0; cut < len; cut++) {
        qrun tr = whole;
        tr.light = 1;
        qread(p, cut, &tr, &b);
        int ok;
        const char *want;
        if (eof_end && cut == eof_end) {
            ok = b.rc == 0;
            want = "success (the stream may end right after EOF)";
        } else {
            ok = b.rc == -1 && (b.err.code == MS_ERR_TRUNCATED ||
                                b.err.code == MS_ERR_MISSING_END);
            want = "truncated or missing-end";
            if (ok && b.err.offset > cut) {
                ok = 0;
                want = "an error offset inside the input";
            }
        }
        if (!ok && bad++ < 5) {
            g_fail++;
            print_message("  FAIL %s:%d: %s: cut at %zu of %zu: expected "
                          "%s, got %s at %llu: %s\n",
                          file, line, label, cut, len, want,
                          b.rc ? ms_error_name(b.err.code) : "success",
                          (unsigned long long)b.err.offset, b.err.detail);
        }
        qres_free(&b);
    }
    if (bad > 5) {
        g_fail++;
        print_message("  FAIL %s:%d: %s: %zu cut offsets misbehave in all\n",
                      file, line, label, bad);
    }
    if (out)
        *out = a;
    else
        qres_free(&a);
}

#define CHECK_VALID(label, buf, opt, eof_end, out)                            \
    check_valid_(label, (buf)->p, (buf)->len, opt, NULL, 0, eof_end, out,     \
                 __FILE__, __LINE__)

/* ---- small stream pieces --------------------------------------------------- */
#define RAM_ID 2u
#define VFIO_ID 3u
#define VFIO_IDSTR "0000:00:02.0/vfio"
#define PAGE 4096u

static const char *const g_blocks[] = {"pc.ram", "pc.bios"};
static const uint64_t g_block_len[] = {0x10000, 0x2000};

static const char g_json[] =
    "{\"page_size\": 4096, \"devices\": [{\"name\": \"timer\", "
    "\"instance_id\": 0, \"vmsd_name\": \"timer\", \"version\": 2, "
    "\"fields\": [{\"name\": \"cpu_ticks_offset\", \"type\": \"int64\", "
    "\"size\": 8}, {\"name\": \"unused\", \"type\": \"unused_buffer\", "
    "\"size\": 8}, {\"name\": \"cpu_clock_offset\", \"type\": \"int64\", "
    "\"size\": 8}]}]}";

/* header, configuration, RAM START (two blocks, EOS, footer) */
static void base_ram(tb_buf *b)
{
    tq_begin(b);
    tq_section_start(b, TQ_START, RAM_ID, "ram", 0, 4);
    tq_ram_block_list(b, g_blocks, g_block_len, 2);
    tq_ram_eos(b);
    tq_footer(b, RAM_ID);
}

/* header, configuration, VFIO START (SETUP, END_OF_STATE, footer) */
static void base_vfio(tb_buf *b)
{
    tq_begin(b);
    tq_section_start(b, TQ_START, VFIO_ID, VFIO_IDSTR, 0, 1);
    tq_vfio_marker(b, TQ_VFIO_SETUP_STATE);
    tq_vfio_marker(b, TQ_VFIO_END_OF_STATE);
    tq_footer(b, VFIO_ID);
}

/* EOF and the trailer; returns the offset right after the EOF byte. */
static size_t finish_stream(tb_buf *b)
{
    size_t e = tq_eof(b) + 1;
    tq_vmdesc(b, g_json, strlen(g_json));
    return e;
}

static void fill_page(uint8_t *p, size_t n, uint64_t seed)
{
    tb_fill_compressible(p, n, seed);
}

/* Runs with the real trailer parser?  (A stub accepts anything.) */
static int have_vmdesc_parser(void)
{
    ms_reader *r = ms_reader_create(NULL);
    int rc = ms_reader_set_vmdesc(r, "{\"page_size\": [", 15);
    ms_reader_free(r);
    return rc != 0;
}

/* ---- 1. builder: minimal and configuration ---------------------------------- */

static void test_minimal(void **state)
{
    (void)state;
    BEGIN();
    tb_buf b;
    tb_buf_init(&b);
    tq_begin(&b);
    size_t eof = tq_eof(&b);
    qres r;
    CHECK_VALID("header+config+EOF", &b, NULL, eof + 1, &r);
    SOFT(r.n == 3, "%zu events", r.n);
    const qev *h = qfind(&r, MS_EV_STREAM_HEADER, 0);
    SOFT(h && h->ev.offset == 0 && h->ev.length == 8 &&
             h->ev.u.stream.format == MS_FORMAT_QEMU_MAIN &&
             h->ev.u.stream.version_major == 3,
         "stream header event");
    const qev *c = qfind(&r, MS_EV_CONFIGURATION, 0);
    SOFT(c && c->ev.offset == 8 && c->ev.length == 1 + 4 + 13 &&
             strcmp(c->name, "pc-i440fx-7.2") == 0 &&
             c->ev.u.config.machine_len == 13 &&
             !c->ev.u.config.has_page_bits && !c->ev.u.config.has_uuid &&
             c->ev.u.config.capability_count == 0,
         "configuration event: %s", c ? c->desc : "missing");
    const qev *e = qfind(&r, MS_EV_QEMU_EOF, 0);
    SOFT(e && e->ev.offset == eof && e->ev.length == 1, "eof event");
    qres_free(&r);

    /* the same with the trailer */
    tq_vmdesc(&b, g_json, strlen(g_json));
    CHECK_VALID("header+config+EOF+trailer", &b, NULL, eof + 1, &r);
    const qev *v = qfind(&r, MS_EV_VMDESC, 0);
    SOFT(v && v->ev.offset == eof + 1 &&
             v->ev.length == 5 + strlen(g_json) &&
             v->ev.u.vmdesc.len == strlen(g_json) &&
             v->data_hash == tb_hash(g_json, strlen(g_json)),
         "vmdesc event");
    qres_free(&r);

    /* auto-detected and forced formats agree */
    ms_options o;
    ms_options_init(&o);
    o.format = MS_FORMAT_QEMU_MAIN;
    qres f;
    SOFT(qread_all(b.p, b.len, &o, &f) == 0, "forced qemu-main fails");
    qres_free(&f);
    tb_buf_free(&b);
    DONE();
}

static void test_config_subsections(void **state)
{
    (void)state;
    BEGIN();
    static const uint8_t uuid[16] = {0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4,
                                     5,    6,    7,    8,    9, 10, 11, 12};
    static const char *const caps[] = {"x-ignore-shared"};
    tb_buf b;
    tb_buf_init(&b);
    /* page bits 13 (8 KiB pages), capabilities with x-ignore-shared (each
     * block entry then carries a be64 guest address), uuid */
    tq_header(&b);
    tq_cfg c = {.machine = "pc-q35-7.2",
                   .has_page_bits = 1,
                   .page_bits = 13,
                   .has_caps = 1,
                   .caps = caps,
                   .n_caps = 1,
                   .uuid = uuid};
    tq_config(&b, &c);
    size_t start = tq_section_start(&b, TQ_START, RAM_ID, "ram", 0, 4);
    tq_ram_mem_size(&b, 0x6000);
    tq_ram_block_entry(&b, "pc.ram", 0x4000);
    tb_put_be64(&b, 0x100000); /* guest address (x-ignore-shared) */
    tq_ram_block_entry(&b, "pc.bios", 0x2000);
    tb_put_be64(&b, 0xfffe0000ull);
    tq_ram_eos(&b);
    tq_footer(&b, RAM_ID);
    tq_section_part(&b, TQ_PART, RAM_ID);
    uint8_t page[8192];
    fill_page(page, sizeof page, 5);
    tq_ram_page(&b, 0x2000, "pc.ram", page, sizeof page);
    tq_ram_zero(&b, 0, NULL, 0);
    tq_ram_compress(&b, 0, "pc.bios", page, sizeof page);
    tq_ram_eos(&b);
    tq_footer(&b, RAM_ID);
    tq_ram_end(&b, RAM_ID);
    size_t eof = finish_stream(&b);
    qres r;
    CHECK_VALID("configuration subsections", &b, NULL, eof, &r);
    const qev *e = qfind(&r, MS_EV_CONFIGURATION, 0);
    SOFT(e != NULL, "no configuration event");
    if (e) {
        const ms_config_info *ci = &e->ev.u.config;
        SOFT(strcmp(e->name, "pc-q35-7.2") == 0 && ci->machine_len == 10,
             "machine %s", e->name);
        SOFT(ci->has_page_bits && ci->page_bits == 13, "page bits: %s",
             e->desc);
        SOFT(ci->capability_count == 1 && ci->cap_x_ignore_shared &&
                 !ci->cap_mapped_ram,
             "capabilities: %s", e->desc);
        SOFT(ci->has_uuid && memcmp(ci->uuid, uuid, 16) == 0, "uuid: %s",
             e->desc);
        SOFT(e->ev.offset == 8 && e->ev.length == start - 8,
             "configuration spans %llu+%llu, expected 8+%zu",
             (unsigned long long)e->ev.offset,
             (unsigned long long)e->ev.length, start - 8);
    }
    SOFT(qcount(&r, MS_EV_RAM_BLOCK) == 2, "%zu blocks",
         qcount(&r, MS_EV_RAM_BLOCK));
    const qev *blk = qfind(&r, MS_EV_RAM_BLOCK, 1);
    SOFT(blk && strcmp(blk->name, "pc.bios") == 0 &&
             blk->ev.u.ram.used_length == 0x2000 &&
             blk->ev.u.ram.total == 0x6000,
         "second block: %s", blk ? blk->desc : "missing");
    const qev *pg = qfind(&r, MS_EV_RAM_PAGE, 0);
    SOFT(pg && pg->ev.u.ram.size == 8192 &&
             pg->data_hash == tb_hash(page, sizeof page) &&
             pg->ev.u.ram.offset == 0x2000,
         "8 KiB page: %s", pg ? pg->desc : "missing");
    const qev *cp = qfind(&r, MS_EV_RAM_PAGE, 2);
    SOFT(cp && cp->ev.u.ram.record == MS_RAM_COMPRESS_PAGE &&
             cp->ev.u.ram.size == 8192 &&
             cp->data_hash == tb_hash(page, sizeof page),
         "8 KiB compressed page: %s", cp ? cp->desc : "missing");
    qres_free(&r);

    /* each subsection alone, and the capabilities subsection with none */
    for (int which = 0; which < 4; which++) {
        tb_buf_reset(&b);
        tq_header(&b);
        tq_cfg c1 = {.machine = "pc"};
        if (which == 0) {
            c1.has_page_bits = 1;
            c1.page_bits = 12;
        } else if (which == 1) {
            c1.has_caps = 1;
        } else if (which == 2) {
            c1.uuid = uuid;
        } else {
            static const char *const mr[] = {"mapped-ram"};
            c1.has_caps = 1;
            c1.caps = mr;
            c1.n_caps = 1;
        }
        tq_config(&b, &c1);
        eof = finish_stream(&b);
        CHECK_VALID("one configuration subsection", &b, NULL, eof, &r);
        e = qfind(&r, MS_EV_CONFIGURATION, 0);
        SOFT(e && e->ev.u.config.has_page_bits == (which == 0) &&
                 e->ev.u.config.has_uuid == (which == 2) &&
                 e->ev.u.config.cap_mapped_ram == (which == 3),
             "subsection %d: %s", which, e ? e->desc : "missing");
        qres_free(&r);
    }
    tb_buf_free(&b);
    DONE();
}

/* Block-list entries grow with capabilities (reference 7): be64 page size
 * with postcopy-ram (only for a block whose page size differs from the
 * source's host page size: decided from the stream, whose POSTCOPY_ADVISE
 * says postcopy-ram was on), be64 guest address with x-ignore-shared.
 * Mapped-ram entries (a 28-byte header, pages elsewhere in the file) need
 * random access: tests/test_mapped_ram.c. */
static void test_block_list_layouts(void **state)
{
    (void)state;
    BEGIN();
    uint8_t page[PAGE];
    fill_page(page, PAGE, 8);
    /* mode: 0 plain; 1 x-ignore-shared; 2 ADVISE, both blocks carry a
     * page size (and the ignored qemu_postcopy_ram option is set); 3
     * ADVISE + x-ignore-shared, only the first block carries one and the
     * last one's guest address looks like a page size; 4 ADVISE, no block
     * carries one; 5 qemu_postcopy_ram set without an ADVISE (ignored) */
    for (int mode = 0; mode < 6; mode++) {
        static const char *const shared[] = {"x-ignore-shared"};
        ms_options o;
        ms_options_init(&o);
        tb_buf b;
        tb_buf_init(&b);
        tq_header(&b);
        tq_cfg c = {0};
        int ignore = mode == 1 || mode == 3;
        if (ignore) {
            c.has_caps = 1;
            c.caps = shared;
            c.n_caps = 1;
        }
        if (mode == 2 || mode == 5)
            o.qemu_postcopy_ram = 1;
        tq_config(&b, &c);
        if (mode >= 2 && mode <= 4)
            tq_cmd_postcopy_advise(&b, 0x200000 | PAGE, PAGE);
        tq_section_start(&b, TQ_START, RAM_ID, "ram", 0, 4);
        tq_ram_mem_size(&b, 0x10000 + 0x2000);
        for (int k = 0; k < 2; k++) {
            tq_ram_block_entry(&b, g_blocks[k], g_block_len[k]);
            if (mode == 2 || (mode == 3 && k == 0))
                tb_put_be64(&b, 0x200000); /* the block's page size */
            if (ignore) /* guest address; 0x200000 is a page size too */
                tb_put_be64(&b, k ? 0x200000 : 0);
        }
        tq_ram_flush(&b);
        tq_ram_eos(&b);
        tq_footer(&b, RAM_ID);
        tq_section_part(&b, TQ_END, RAM_ID);
        tq_ram_page(&b, 0x1000, "pc.bios", page, PAGE);
        tq_ram_eos(&b);
        tq_footer(&b, RAM_ID);
        size_t eof = finish_stream(&b);
        qres r;
        char label[64];
        snprintf(label, sizeof label, "block list layout %d", mode);
        check_valid_(label, b.p, b.len, &o, NULL, 0, eof, &r, __FILE__,
                     __LINE__);
        const qev *b1 = qfind(&r, MS_EV_RAM_BLOCK, 1);
        const qev *pg = qfind(&r, MS_EV_RAM_PAGE, 0);
        SOFT(qcount(&r, MS_EV_RAM_BLOCK) == 2 && b1 &&
                 strcmp(b1->name, "pc.bios") == 0 &&
                 b1->ev.u.ram.used_length == 0x2000,
             "%s: second block %s", label, b1 ? b1->desc : "missing");
        SOFT(pg && pg->ev.u.ram.offset == 0x1000, "%s: page %s", label,
             pg ? pg->desc : "missing");
        /* MULTIFD_FLUSH and two EOS: no record was taken for a field */
        SOFT(qcount(&r, MS_EV_RAM_MARKER) == 3, "%s: %zu RAM markers", label,
             qcount(&r, MS_EV_RAM_MARKER));
        qres_free(&r);
        tb_buf_free(&b);
    }
    DONE();
}

/* ---- 2. a stream with every record kind ------------------------------------- */

typedef struct rich {
    tb_buf b;
    size_t eof_end;
    uint8_t pages[4][PAGE];
    uint8_t xbz[40];
    uint8_t v1[100], v2[333], v3[1], v4[2000], v5[77], cfg[64], blob[50];
} rich;

static void build_rich(rich *x)
{
    tb_buf *b = &x->b;
    tb_buf_init(b);
    for (int i = 0; i < 4; i++)
        fill_page(x->pages[i], PAGE, 10 + (uint64_t)i);
    tb_fill_random(x->xbz, sizeof x->xbz, 20);
    /* a valid delta: 16 unchanged bytes, then 38 new ones */
    x->xbz[0] = 16;
    x->xbz[1] = sizeof x->xbz - 2;
    tb_fill_random(x->v1, sizeof x->v1, 21);
    tb_fill_random(x->v2, sizeof x->v2, 22);
    tb_fill_random(x->v3, sizeof x->v3, 23);
    tb_fill_random(x->v4, sizeof x->v4, 24);
    tb_fill_random(x->v5, sizeof x->v5, 25);
    tb_fill_random(x->cfg, sizeof x->cfg, 26);
    tb_fill_random(x->blob, sizeof x->blob, 27);
    /* the blobs must not contain a footer pattern for their sections */
    for (size_t i = 0; i < sizeof x->cfg; i++)
        if (x->cfg[i] == TQ_FOOTER)
            x->cfg[i] = 0x11;
    for (size_t i = 0; i < sizeof x->blob; i++)
        if (x->blob[i] == TQ_FOOTER)
            x->blob[i] = 0x11;

    static const uint8_t uuid[16] = {1, 2, 3, 4, 5, 6, 7, 8,
                                     9, 10, 11, 12, 13, 14, 15, 16};
    tq_header(b);
    tq_cfg c = {.has_page_bits = 1, .page_bits = 12, .uuid = uuid};
    tq_config(b, &c);
    tq_command(b, TQ_CMD_OPEN_RETURN_PATH, NULL, 0);
    tq_cmd_ping(b, 1);
    tq_cmd_postcopy_advise(b, 0x1000, 0x1000);
    /* RAM START: block list, MULTIFD_FLUSH, EOS */
    tq_section_start(b, TQ_START, RAM_ID, "ram", 0, 4);
    tq_ram_block_list(b, g_blocks, g_block_len, 2);
    tq_ram_flush(b);
    tq_ram_eos(b);
    tq_footer(b, RAM_ID);
    /* VFIO START */
    tq_section_start(b, TQ_START, VFIO_ID, VFIO_IDSTR, 0, 1);
    tq_vfio_marker(b, TQ_VFIO_SETUP_STATE);
    tq_vfio_marker(b, TQ_VFIO_END_OF_STATE);
    tq_footer(b, VFIO_ID);
    /* another iterable device: walked to its footer */
    tq_section_start(b, TQ_START, 5, "block", 0, 1);
    tb_put(b, x->blob, sizeof x->blob);
    tq_footer(b, 5);
    /* RAM PART: every page record kind */
    tq_section_part(b, TQ_PART, RAM_ID);
    tq_ram_page(b, 0, "pc.ram", x->pages[0], PAGE);
    tq_ram_zero(b, 0x1000, NULL, 0);
    tq_ram_xbzrle(b, 0x2000, NULL, 1, x->xbz, sizeof x->xbz);
    tq_ram_compress(b, 0x1000, "pc.bios", x->pages[1], PAGE);
    tq_ram_page(b, 0xf000, "pc.ram", x->pages[2], PAGE);
    tq_ram_flush(b);
    tq_ram_eos(b);
    tq_footer(b, RAM_ID);
    /* VFIO PART: initial data (two chunks, one of them empty) */
    tq_section_part(b, TQ_PART, VFIO_ID);
    tq_vfio_data(b, x->v1, sizeof x->v1);
    tq_vfio_marker(b, TQ_VFIO_END_OF_STATE);
    tq_footer(b, VFIO_ID);
    tq_section_part(b, TQ_PART, VFIO_ID);
    tq_vfio_data(b, NULL, 0);
    tq_vfio_marker(b, TQ_VFIO_END_OF_STATE);
    tq_footer(b, VFIO_ID);
    tq_section_part(b, TQ_PART, VFIO_ID);
    tq_vfio_data(b, x->v2, sizeof x->v2);
    tq_vfio_marker(b, TQ_VFIO_INIT_DATA_SENT);
    tq_footer(b, VFIO_ID);
    /* RAM PART starting with CONTINUE: the current block (pc.ram) carries
     * over from the previous RAM section */
    tq_section_part(b, TQ_PART, RAM_ID);
    tq_ram_zero(b, 0xe000, NULL, 0);
    tq_ram_eos(b);
    tq_footer(b, RAM_ID);
    /* VFIO PART: middle data */
    tq_section_part(b, TQ_PART, VFIO_ID);
    tq_vfio_data(b, x->v3, sizeof x->v3);
    tq_vfio_marker(b, TQ_VFIO_END_OF_STATE);
    tq_footer(b, VFIO_ID);
    tq_section_part(b, TQ_PART, 5);
    tb_put(b, x->blob, 10);
    tq_footer(b, 5);
    /* guest stopped */
    tq_command(b, TQ_CMD_SWITCHOVER_START, NULL, 0);
    tq_section_part(b, TQ_END, RAM_ID);
    tq_ram_page(b, 0x1000, "pc.bios", x->pages[3], PAGE);
    tq_ram_zero(b, 0, NULL, 0);
    tq_ram_eos(b);
    tq_footer(b, RAM_ID);
    tq_section_part(b, TQ_END, VFIO_ID);
    tq_vfio_data(b, x->v4, sizeof x->v4);
    tq_vfio_data(b, x->v5, sizeof x->v5);
    tq_vfio_marker(b, TQ_VFIO_END_OF_STATE);
    tq_footer(b, VFIO_ID);
    tq_section_part(b, TQ_END, 5);
    tq_footer(b, 5);
    /* FULL: a VMState device (undescribed: walked), the VFIO config */
    tq_section_start(b, TQ_FULL, 0, "timer", 0, 2);
    tb_put_be64(b, 0x1d36891f2ull);
    tb_put_zeros(b, 8);
    tb_put_be64(b, 0xb40a33f2ull);
    tq_footer(b, 0);
    tq_section_start(b, TQ_FULL, VFIO_ID, VFIO_IDSTR, 0, 1);
    tq_vfio_marker(b, TQ_VFIO_CONFIG_STATE);
    tb_put(b, x->cfg, sizeof x->cfg);
    tq_vfio_marker(b, TQ_VFIO_END_OF_STATE);
    tq_footer(b, VFIO_ID);
    x->eof_end = finish_stream(b);
}

static void test_rich_stream(void **state)
{
    (void)state;
    BEGIN();
    rich *x = calloc(1, sizeof *x);
    build_rich(x);
    qres r;
    CHECK_VALID("every record kind", &x->b, NULL, x->eof_end, &r);

    SOFT(qcount(&r, MS_EV_SECTION) == 15, "%zu sections",
         qcount(&r, MS_EV_SECTION));
    SOFT(qcount(&r, MS_EV_SECTION_FOOTER) == 15, "%zu footers",
         qcount(&r, MS_EV_SECTION_FOOTER));
    /* block START/PART/END, timer FULL, and the VFIO FULL whose PCI config
     * state is walked to its footer (project spec section 5: "each such
     * section is reported as undecoded") */
    SOFT(qcount(&r, MS_EV_UNDECODED) == 5, "%zu undecoded sections, want 5",
         qcount(&r, MS_EV_UNDECODED));
    SOFT(qcount(&r, MS_EV_COMMAND) == 4, "%zu commands",
         qcount(&r, MS_EV_COMMAND));
    SOFT(qcount(&r, MS_EV_RAM_BLOCK) == 2, "%zu blocks",
         qcount(&r, MS_EV_RAM_BLOCK));
    SOFT(r.page_count[MS_RAM_PAGE] == 3 && r.page_count[MS_RAM_ZERO] == 3 &&
             r.page_count[MS_RAM_XBZRLE] == 1 &&
             r.page_count[MS_RAM_COMPRESS_PAGE] == 1,
         "page records %zu/%zu/%zu/%zu", r.page_count[MS_RAM_PAGE],
         r.page_count[MS_RAM_ZERO], r.page_count[MS_RAM_XBZRLE],
         r.page_count[MS_RAM_COMPRESS_PAGE]);
    SOFT(qcount(&r, MS_EV_RAM_MARKER) == 6, "%zu ram markers",
         qcount(&r, MS_EV_RAM_MARKER));
    SOFT(qcount(&r, MS_EV_VFIO_MARKER) == 14, "%zu vfio markers",
         qcount(&r, MS_EV_VFIO_MARKER));
    SOFT(qcount(&r, MS_EV_QEMU_EOF) == 1 && qcount(&r, MS_EV_VMDESC) == 1,
         "eof/vmdesc");

    /* every section footer closes the section opened before it */
    uint32_t open_id = 0xffffffffu;
    uint64_t open_off = 0;
    for (size_t i = 0; i < r.n; i++) {
        const qev *e = &r.ev[i];
        if (e->ev.kind == MS_EV_SECTION) {
            SOFT(open_id == 0xffffffffu, "section at %llu inside another",
                 (unsigned long long)e->ev.offset);
            open_id = e->ev.u.section.section_id;
            open_off = e->ev.offset;
        } else if (e->ev.kind == MS_EV_SECTION_FOOTER) {
            SOFT(e->ev.u.section.section_id == open_id &&
                     e->ev.u.section.section_offset == open_off &&
                     e->ev.offset + 5 - open_off == e->ev.length,
                 "footer at %llu: %s (section opened at %llu)",
                 (unsigned long long)e->ev.offset, e->desc,
                 (unsigned long long)open_off);
            SOFT(x->b.p[e->ev.offset] == TQ_FOOTER,
                 "footer event at %llu is not on a 0x7e byte",
                 (unsigned long long)e->ev.offset);
            open_id = 0xffffffffu;
        }
    }

    /* RAM pages */
    const qev *p0 = qfind(&r, MS_EV_RAM_PAGE, 0);
    SOFT(p0 && p0->ev.u.ram.record == MS_RAM_PAGE &&
             strcmp(p0->name, "pc.ram") == 0 && p0->ev.u.ram.offset == 0 &&
             p0->ev.u.ram.size == PAGE &&
             p0->data_hash == tb_hash(x->pages[0], PAGE) &&
             p0->ev.u.ram.used_length == 0x10000 &&
             p0->ev.u.ram.block_index == 0,
         "page 0: %s", p0 ? p0->desc : "missing");
    const qev *p1 = qfind(&r, MS_EV_RAM_PAGE, 1);
    SOFT(p1 && p1->ev.u.ram.record == MS_RAM_ZERO &&
             strcmp(p1->name, "pc.ram") == 0 &&
             p1->ev.u.ram.offset == 0x1000 && p1->ev.u.ram.fill == 0,
         "zero page (CONTINUE): %s", p1 ? p1->desc : "missing");
    const qev *p2 = qfind(&r, MS_EV_RAM_PAGE, 2);
    SOFT(p2 && p2->ev.u.ram.record == MS_RAM_XBZRLE &&
             strcmp(p2->name, "pc.ram") == 0 &&
             p2->ev.u.ram.offset == 0x2000 &&
             p2->ev.u.ram.size == sizeof x->xbz &&
             p2->data_hash == tb_hash(x->xbz, sizeof x->xbz) &&
             p2->ev.length == 8 + 3 + sizeof x->xbz,
         "xbzrle: %s", p2 ? p2->desc : "missing");
    const qev *p3 = qfind(&r, MS_EV_RAM_PAGE, 3);
    SOFT(p3 && p3->ev.u.ram.record == MS_RAM_COMPRESS_PAGE &&
             strcmp(p3->name, "pc.bios") == 0 &&
             p3->ev.u.ram.block_index == 1 &&
             p3->ev.u.ram.offset == 0x1000 && p3->ev.u.ram.size == PAGE &&
             p3->data_hash == tb_hash(x->pages[1], PAGE),
         "compress page (inflated): %s", p3 ? p3->desc : "missing");
    const qev *p5 = qfind(&r, MS_EV_RAM_PAGE, 5);
    SOFT(p5 && p5->ev.u.ram.record == MS_RAM_ZERO &&
             strcmp(p5->name, "pc.ram") == 0 &&
             p5->ev.u.ram.offset == 0xe000,
         "CONTINUE across sections: %s", p5 ? p5->desc : "missing");
    const qev *p7 = qfind(&r, MS_EV_RAM_PAGE, 7);
    SOFT(p7 && p7->ev.u.ram.record == MS_RAM_ZERO &&
             strcmp(p7->name, "pc.bios") == 0 && p7->ev.u.ram.offset == 0,
         "END CONTINUE: %s", p7 ? p7->desc : "missing");
    const qev *m0 = qfind(&r, MS_EV_RAM_MARKER, 0);
    SOFT(m0 && m0->ev.u.ram.record == MS_RAM_MULTIFD_FLUSH &&
             m0->ev.length == 8,
         "first ram marker: %s", m0 ? m0->desc : "missing");
    const qev *m1 = qfind(&r, MS_EV_RAM_MARKER, 1);
    SOFT(m1 && m1->ev.u.ram.record == MS_RAM_EOS, "EOS: %s",
         m1 ? m1->desc : "missing");

    /* VFIO data: phases and the device's byte stream */
    tb_buf want;
    tb_buf_init(&want);
    tb_put(&want, x->v1, sizeof x->v1);
    tb_put(&want, x->v2, sizeof x->v2);
    tb_put(&want, x->v3, sizeof x->v3);
    tb_put(&want, x->v4, sizeof x->v4);
    tb_put(&want, x->v5, sizeof x->v5);
    const tb_buf *got = qdata(&r, VFIO_ID);
    SOFT(got && got->len == want.len && memcmp(got->p, want.p, want.len) == 0,
         "VFIO device bytes differ (%zu vs %zu bytes)", got ? got->len : 0,
         want.len);
    tb_buf_free(&want);
    SOFT(r.ndev == 1, "data for %zu devices", r.ndev);

    /* the undecoded sections say why */
    const qev *u = qfind(&r, MS_EV_UNDECODED, 0);
    SOFT(u && strcmp(u->name, "block") == 0, "first undecoded: %s",
         u ? u->desc : "missing");
    qres_free(&r);
    tb_buf_free(&x->b);
    free(x);
    DONE();
}

/* ---- commands ---------------------------------------------------------------- */

static void test_commands_valid(void **state)
{
    (void)state;
    BEGIN();
    tb_buf b;
    tb_buf_init(&b);
    base_ram(&b); /* discards and RECV_BITMAP name a listed block */
    size_t off[16];
    int n = 0;
    /* in an order QEMU's loader takes (a second ADVISE it refuses) */
    off[n++] = tq_command(&b, TQ_CMD_OPEN_RETURN_PATH, NULL, 0);
    off[n++] = tq_cmd_ping(&b, 0x42);
    off[n++] = tq_cmd_postcopy_advise(&b, 0x1000, 0x1000);
    static const uint64_t ranges[] = {0x1000, 0x2000, 0x8000, 0x1000};
    off[n++] = tq_cmd_ram_discard(&b, "pc.ram", ranges, 2);
    off[n++] = tq_command(&b, TQ_CMD_POSTCOPY_LISTEN, NULL, 0);
    off[n++] = tq_command(&b, TQ_CMD_POSTCOPY_RUN, NULL, 0);
    off[n++] = tq_command(&b, TQ_CMD_ENABLE_COLO, NULL, 0);
    off[n++] = tq_command(&b, TQ_CMD_POSTCOPY_RESUME, NULL, 0);
    off[n++] = tq_cmd_recv_bitmap(&b, "pc.ram");
    off[n++] = tq_command(&b, TQ_CMD_SWITCHOVER_START, NULL, 0);
    off[n++] = tq_cmd_packaged(&b, NULL, 0); /* an empty package */
    off[n] = b.len;
    tq_ram_end(&b, RAM_ID); /* RAM STARTed in base_ram ends before EOF */
    size_t eof = finish_stream(&b);
    static const struct {
        uint16_t cmd, len;
        const char *name;
        uint64_t value;
    } want[] = {
        {1, 0, "OPEN_RETURN_PATH", 0},
        {2, 4, "PING", 0x42},
        {3, 16, "POSTCOPY_ADVISE", 0},
        {6, 3 + 6 + 32, "POSTCOPY_RAM_DISCARD", 0},
        {4, 0, "POSTCOPY_LISTEN", 0},
        {5, 0, "POSTCOPY_RUN", 0},
        {8, 0, "ENABLE_COLO", 0},
        {9, 0, "POSTCOPY_RESUME", 0},
        {10, 7, "RECV_BITMAP", 0},
        {11, 0, "SWITCHOVER_START", 0},
        {7, 4, "PACKAGED", 0},
    };
    qres r;
    CHECK_VALID("every command", &b, NULL, eof, &r);
    SOFT(qcount(&r, MS_EV_COMMAND) == (size_t)n, "%zu commands",
         qcount(&r, MS_EV_COMMAND));
    for (int i = 0; i < n; i++) {
        const qev *e = qfind(&r, MS_EV_COMMAND, (size_t)i);
        if (!e)
            break;
        const ms_command_info *c = &e->ev.u.command;
        SOFT(c->cmd == want[i].cmd && c->len == want[i].len &&
                 strcmp(e->name, want[i].name) == 0 &&
                 c->value == want[i].value && c->nesting == 0 &&
                 e->ev.offset == off[i] &&
                 e->ev.length == off[i + 1] - off[i] &&
                 e->data_hash ==
                     tb_hash(b.p + off[i] + 5, off[i + 1] - off[i] - 5),
             "command %d: %s@%llu+%llu", i, e->desc,
             (unsigned long long)e->ev.offset,
             (unsigned long long)e->ev.length);
    }
    qres_free(&r);
    tb_buf_free(&b);
    DONE();
}

/* ---- 4. VFIO phases ------------------------------------------------------------ */

static void test_vfio_phases(void **state)
{
    (void)state;
    BEGIN();
    uint8_t a[300], m1[50], m2[70], f1[1000], f2[5];
    tb_fill_random(a, sizeof a, 1);
    tb_fill_random(m1, sizeof m1, 2);
    tb_fill_random(m2, sizeof m2, 3);
    tb_fill_random(f1, sizeof f1, 4);
    tb_fill_random(f2, sizeof f2, 5);
    tb_buf b;
    tb_buf_init(&b);
    base_vfio(&b);
    /* a second VFIO device interleaved, with its own image offsets */
    tq_section_start(&b, TQ_START, 7, "0000:00:04.0/vfio", 0, 1);
    tq_vfio_marker(&b, TQ_VFIO_SETUP_STATE);
    tq_vfio_marker(&b, TQ_VFIO_END_OF_STATE);
    tq_footer(&b, 7);
    size_t dA[8];
    int k = 0;
    tq_section_part(&b, TQ_PART, VFIO_ID);
    dA[k++] = tq_vfio_data(&b, a, sizeof a); /* initial */
    tq_vfio_marker(&b, TQ_VFIO_INIT_DATA_SENT);
    tq_footer(&b, VFIO_ID);
    tq_section_part(&b, TQ_PART, 7);
    tq_vfio_data(&b, f2, sizeof f2); /* device 7: initial */
    tq_vfio_marker(&b, TQ_VFIO_END_OF_STATE);
    tq_footer(&b, 7);
    tq_section_part(&b, TQ_PART, VFIO_ID);
    dA[k++] = tq_vfio_data(&b, m1, sizeof m1); /* middle */
    tq_vfio_marker(&b, TQ_VFIO_END_OF_STATE);
    tq_footer(&b, VFIO_ID);
    tq_section_part(&b, TQ_PART, VFIO_ID);
    dA[k++] = tq_vfio_data(&b, m2, sizeof m2); /* middle */
    tq_vfio_marker(&b, TQ_VFIO_END_OF_STATE);
    tq_footer(&b, VFIO_ID);
    tq_section_part(&b, TQ_END, VFIO_ID);
    dA[k++] = tq_vfio_data(&b, f1, sizeof f1); /* final */
    dA[k++] = tq_vfio_data(&b, f2, sizeof f2); /* final */
    tq_vfio_marker(&b, TQ_VFIO_END_OF_STATE);
    tq_footer(&b, VFIO_ID);
    tq_section_part(&b, TQ_END, 7);
    tq_vfio_marker(&b, TQ_VFIO_END_OF_STATE);
    tq_footer(&b, 7);
    /* FULL in multifd mode: CONFIG_LOAD_READY */
    tq_section_start(&b, TQ_FULL, VFIO_ID, VFIO_IDSTR, 0, 1);
    tq_vfio_marker(&b, TQ_VFIO_CONFIG_LOAD_READY);
    tq_footer(&b, VFIO_ID);
    tq_section_start(&b, TQ_FULL, 7, "0000:00:04.0/vfio", 0, 1);
    tq_vfio_marker(&b, TQ_VFIO_END_OF_STATE);
    tq_footer(&b, 7);
    size_t eof = finish_stream(&b);

    static const ms_phase phase[] = {MS_PHASE_INITIAL, MS_PHASE_MIDDLE,
                                     MS_PHASE_MIDDLE, MS_PHASE_FINAL,
                                     MS_PHASE_FINAL};
    static const size_t sizes[] = {300, 50, 70, 1000, 5};
    qres r;
    CHECK_VALID("vfio phases", &b, NULL, eof, &r);
    /* DATA runs of device 3 (merged runs = one per chunk here) */
    size_t i = 0;
    uint64_t img = 0;
    for (size_t e = 0; e < r.n; e++) {
        const qev *q = &r.ev[e];
        if (q->ev.kind == MS_EV_VFIO_MARKER &&
            q->ev.u.vfio.marker == TQ_VFIO_BASE + TQ_VFIO_DATA_STATE &&
            q->ev.u.vfio.section_id == VFIO_ID) {
            SOFT(i < 5 && q->ev.offset == dA[i] && q->ev.length == 16 &&
                     q->ev.u.vfio.data_size == sizes[i] &&
                     q->ev.u.vfio.phase == phase[i] &&
                     strcmp(q->name, "DEV_DATA_STATE") == 0,
                 "DATA_STATE marker %zu: %s@%llu", i, q->desc,
                 (unsigned long long)q->ev.offset);
        }
        if (q->ev.kind != MS_EV_DATA || q->ev.u.data.device != VFIO_ID)
            continue;
        SOFT(i < 5, "too many data runs");
        if (i >= 5)
            break;
        SOFT(q->ev.u.data.phase == phase[i] &&
                 q->ev.u.data.image_offset == img &&
                 q->ev.u.data.size == sizes[i] &&
                 q->ev.u.data.stream_offset == dA[i] + 16 &&
                 q->ev.offset == dA[i] + 16,
             "data run %zu: phase %s image_offset %llu size %zu stream "
             "offset %llu; want %s %llu %zu %zu",
             i, ms_phase_name(q->ev.u.data.phase),
             (unsigned long long)q->ev.u.data.image_offset,
             q->ev.u.data.size,
             (unsigned long long)q->ev.u.data.stream_offset,
             ms_phase_name(phase[i]), (unsigned long long)img, sizes[i],
             dA[i] + 16);
        img += sizes[i];
        i++;
    }
    SOFT(i == 5, "%zu data runs for device %u", i, VFIO_ID);
    tb_buf want;
    tb_buf_init(&want);
    tb_put(&want, a, sizeof a);
    tb_put(&want, m1, sizeof m1);
    tb_put(&want, m2, sizeof m2);
    tb_put(&want, f1, sizeof f1);
    tb_put(&want, f2, sizeof f2);
    const tb_buf *got = qdata(&r, VFIO_ID);
    SOFT(got && got->len == want.len &&
             memcmp(got->p, want.p, want.len) == 0,
         "device %u bytes differ", VFIO_ID);
    const tb_buf *got7 = qdata(&r, 7);
    SOFT(got7 && got7->len == sizeof f2 && memcmp(got7->p, f2, 5) == 0,
         "device 7 bytes differ");
    tb_buf_free(&want);
    /* INIT_DATA_SENT's own phase and the load-ready marker */
    int seen_init = 0, seen_ready = 0;
    for (size_t e = 0; e < r.n; e++) {
        const qev *q = &r.ev[e];
        if (q->ev.kind != MS_EV_VFIO_MARKER)
            continue;
        if (q->ev.u.vfio.marker == TQ_VFIO_BASE + TQ_VFIO_INIT_DATA_SENT) {
            seen_init++;
            SOFT(q->ev.u.vfio.section_id == VFIO_ID, "init marker: %s",
                 q->desc);
        }
        if (q->ev.u.vfio.marker == TQ_VFIO_BASE + TQ_VFIO_CONFIG_LOAD_READY)
            seen_ready++;
    }
    SOFT(seen_init == 1 && seen_ready == 1, "init %d ready %d", seen_init,
         seen_ready);
    qres_free(&r);

    /* without switchover-ack (no INIT_DATA_SENT) every PART chunk is
     * initial (project spec section 3) */
    tb_buf_reset(&b);
    base_vfio(&b);
    for (int j = 0; j < 3; j++) {
        tq_section_part(&b, TQ_PART, VFIO_ID);
        tq_vfio_data(&b, m1, sizeof m1);
        tq_vfio_marker(&b, TQ_VFIO_END_OF_STATE);
        tq_footer(&b, VFIO_ID);
    }
    tq_section_part(&b, TQ_END, VFIO_ID);
    tq_vfio_data(&b, m2, sizeof m2);
    tq_vfio_marker(&b, TQ_VFIO_END_OF_STATE);
    tq_footer(&b, VFIO_ID);
    eof = finish_stream(&b);
    CHECK_VALID("vfio without INIT_DATA_SENT", &b, NULL, eof, &r);
    size_t n_init = 0, n_final = 0, n_other = 0;
    for (size_t e = 0; e < r.n; e++) {
        const qev *q = &r.ev[e];
        if (q->ev.kind != MS_EV_DATA)
            continue;
        if (q->ev.u.data.phase == MS_PHASE_INITIAL)
            n_init += q->ev.u.data.size;
        else if (q->ev.u.data.phase == MS_PHASE_FINAL)
            n_final += q->ev.u.data.size;
        else
            n_other += q->ev.u.data.size;
    }
    SOFT(n_init == 150 && n_final == 70 && n_other == 0,
         "initial %zu final %zu other %zu bytes", n_init, n_final, n_other);
    qres_free(&r);
    tb_buf_free(&b);
    DONE();
}

/* ---- 5. PACKAGED ------------------------------------------------------------------ */

static void test_packaged(void **state)
{
    (void)state;
    BEGIN();
    /* nested stream: LISTEN, a FULL section, PING 3, RUN */
    tb_buf pkg;
    tb_buf_init(&pkg);
    tq_command(&pkg, TQ_CMD_POSTCOPY_LISTEN, NULL, 0);
    tq_section_start(&pkg, TQ_FULL, 0, "timer", 0, 2);
    tb_put_be64(&pkg, 0x1234);
    tb_put_zeros(&pkg, 16);
    tq_footer(&pkg, 0);
    tq_section_part(&pkg, TQ_END, RAM_ID);
    tq_ram_zero(&pkg, 0x3000, "pc.ram", 0);
    tq_ram_eos(&pkg);
    tq_footer(&pkg, RAM_ID);
    tq_cmd_ping(&pkg, 3);
    tq_command(&pkg, TQ_CMD_POSTCOPY_RUN, NULL, 0);

    tb_buf b;
    tb_buf_init(&b);
    base_ram(&b);
    tq_command(&b, TQ_CMD_OPEN_RETURN_PATH, NULL, 0);
    tq_cmd_postcopy_advise(&b, 0x1000, 0x1000); /* LISTEN needs ADVISE */
    size_t pk = tq_cmd_packaged(&b, pkg.p, (uint32_t)pkg.len);
    size_t after = tq_cmd_ping(&b, 0x42);
    size_t eof = finish_stream(&b);
    qres r;
    CHECK_VALID("packaged", &b, NULL, eof, &r);
    static const struct {
        uint16_t cmd;
        int nesting;
    } want[] = {{1, 0}, {3, 0}, {7, 0}, {4, 1}, {2, 1}, {5, 1}, {2, 0}};
    SOFT(qcount(&r, MS_EV_COMMAND) == 7, "%zu commands",
         qcount(&r, MS_EV_COMMAND));
    for (size_t i = 0; i < 7; i++) {
        const qev *e = qfind(&r, MS_EV_COMMAND, i);
        SOFT(e && e->ev.u.command.cmd == want[i].cmd &&
                 e->ev.u.command.nesting == want[i].nesting,
             "command %zu: %s", i, e ? e->desc : "missing");
    }
    const qev *p = qfind(&r, MS_EV_COMMAND, 2);
    SOFT(p && p->ev.offset == pk && p->ev.u.command.value == pkg.len,
         "PACKAGED event: %s", p ? p->desc : "missing");
    const qev *last = qfind(&r, MS_EV_COMMAND, 6);
    SOFT(last && last->ev.offset == after && last->ev.u.command.value == 0x42,
         "ping after the package: %s", last ? last->desc : "missing");
    SOFT(qcount(&r, MS_EV_SECTION) == 3 && qcount(&r, MS_EV_RAM_PAGE) == 1,
         "%zu sections, %zu pages", qcount(&r, MS_EV_SECTION),
         qcount(&r, MS_EV_RAM_PAGE));
    qres_free(&r);

    /* a package in a package: the inner commands have nesting 2; a package
     * may hold its own EOF record */
    tb_buf inner, mid;
    tb_buf_init(&inner);
    tb_buf_init(&mid);
    tq_cmd_ping(&inner, 9);
    tq_eof(&inner);
    tq_command(&mid, TQ_CMD_POSTCOPY_LISTEN, NULL, 0);
    tq_cmd_packaged(&mid, inner.p, (uint32_t)inner.len);
    tq_command(&mid, TQ_CMD_POSTCOPY_RUN, NULL, 0);
    tb_buf_reset(&b);
    tq_begin(&b);
    tq_command(&b, TQ_CMD_OPEN_RETURN_PATH, NULL, 0);
    tq_cmd_postcopy_advise(&b, 0x1000, 0x1000);
    tq_cmd_packaged(&b, mid.p, (uint32_t)mid.len);
    tq_cmd_ping(&b, 1);
    eof = finish_stream(&b);
    CHECK_VALID("packaged in packaged", &b, NULL, eof, &r);
    const qev *deep = qfind(&r, MS_EV_COMMAND, 5);
    SOFT(deep && deep->ev.u.command.cmd == 2 &&
             deep->ev.u.command.value == 9 &&
             deep->ev.u.command.nesting == 2,
         "innermost ping: %s", deep ? deep->desc : "missing");
    const qev *run = qfind(&r, MS_EV_COMMAND, 6);
    SOFT(run && run->ev.u.command.cmd == 5 && run->ev.u.command.nesting == 1,
         "RUN after the inner package: %s", run ? run->desc : "missing");
    const qev *top = qfind(&r, MS_EV_COMMAND, 7);
    SOFT(top && top->ev.u.command.nesting == 0, "last ping: %s",
         top ? top->desc : "missing");
    SOFT(qcount(&r, MS_EV_QEMU_EOF) == 2, "%zu EOF events",
         qcount(&r, MS_EV_QEMU_EOF));
    qres_free(&r);

    /* a record crossing the end of its package */
    tb_buf_reset(&b);
    tq_begin(&b);
    tq_command(&b, TQ_CMD_OPEN_RETURN_PATH, NULL, 0);
    size_t pk2 = tq_cmd_packaged(&b, NULL, 0);
    size_t body = b.len;
    tq_cmd_ping(&b, 1);
    size_t crossing = tq_cmd_ping(&b, 2);
    tb_set_be32(b.p + pk2 + 5, (uint32_t)(crossing + 3 - body));
    tq_eof(&b);
    EXPECT_IN("record crossing the package end", &b, NULL, MS_ERR_COMMAND,
              crossing, crossing + 9);

    /* a section crossing the end of its package */
    tb_buf_reset(&b);
    base_ram(&b);
    pk2 = tq_cmd_packaged(&b, NULL, 0);
    body = b.len;
    size_t sec = tq_section_part(&b, TQ_PART, RAM_ID);
    tq_ram_zero(&b, 0, "pc.ram", 0);
    tq_ram_eos(&b);
    size_t sec_end = tq_footer(&b, RAM_ID) + 5;
    tb_set_be32(b.p + pk2 + 5, (uint32_t)(sec + 10 - body));
    tq_eof(&b);
    EXPECT_IN("section crossing the package end", &b, NULL, MS_ERR_COMMAND,
              sec, sec_end);

    /* a nested package overrunning its parent */
    tb_buf_reset(&b);
    tq_begin(&b);
    tq_command(&b, TQ_CMD_OPEN_RETURN_PATH, NULL, 0);
    size_t outer = tq_cmd_packaged(&b, NULL, 0);
    body = b.len;
    size_t in2 = tq_cmd_packaged(&b, NULL, 0);
    tb_set_be32(b.p + in2 + 5, 9);  /* 9 bytes: one PING ... */
    tq_cmd_ping(&b, 5);
    tb_set_be32(b.p + outer + 5, (uint32_t)(b.len - body - 4));
    tq_eof(&b); /* ... but the parent ends 4 bytes earlier */
    EXPECT_AT("nested package overrunning its parent", &b, NULL,
              MS_ERR_COMMAND, in2);

    /* PACKAGED longer than the data: the input ends inside the package
     * (project spec 6: `truncated`, the detail names the package) */
    tb_buf_reset(&b);
    tq_begin(&b);
    tq_command(&b, TQ_CMD_OPEN_RETURN_PATH, NULL, 0);
    size_t big = tq_cmd_packaged(&b, NULL, 0);
    tq_cmd_ping(&b, 1);
    tq_eof(&b);
    tb_set_be32(b.p + big + 5, (uint32_t)(b.len - big - 9 + 100));
    EXPECT_AT("PACKAGED longer than the data", &b, NULL, MS_ERR_TRUNCATED,
              b.len);

    /* max_nesting */
    ms_options o;
    ms_options_init(&o);
    o.max_nesting = 1;
    tb_buf_reset(&b);
    tq_begin(&b);
    tq_command(&b, TQ_CMD_OPEN_RETURN_PATH, NULL, 0);
    size_t lvl1 = tq_cmd_packaged(&b, NULL, 0);
    size_t lvl2 = tq_cmd_packaged(&b, NULL, 0);
    tq_cmd_ping(&b, 1);
    tb_set_be32(b.p + lvl2 + 5, 9);
    tb_set_be32(b.p + lvl1 + 5, 9 + 9);
    tq_eof(&b);
    EXPECT_AT("PACKAGED deeper than max_nesting 1", &b, &o, MS_ERR_LIMIT,
              lvl2);
    o.max_nesting = 2;
    qres ok;
    SOFT(qread_all(b.p, b.len, &o, &ok) == 0,
         "two levels with max_nesting 2: %s at %llu: %s",
         ms_error_name(ok.err.code), (unsigned long long)ok.err.offset,
         ok.err.detail);
    qres_free(&ok);
    /* the default (4): five levels fail at the fifth */
    tb_buf_reset(&b);
    tq_begin(&b);
    tq_command(&b, TQ_CMD_OPEN_RETURN_PATH, NULL, 0);
    size_t lv[5];
    for (int i = 0; i < 5; i++)
        lv[i] = tq_cmd_packaged(&b, NULL, 0);
    tq_command(&b, TQ_CMD_POSTCOPY_RUN, NULL, 0);
    for (int i = 0; i < 5; i++)
        tb_set_be32(b.p + lv[i] + 5, (uint32_t)(9 * (4 - i) + 5));
    tq_eof(&b);
    EXPECT_AT("five nested packages (default max_nesting 4)", &b, NULL,
              MS_ERR_LIMIT, lv[4]);

    tb_buf_free(&inner);
    tb_buf_free(&mid);
    tb_buf_free(&pkg);
    tb_buf_free(&b);
    DONE();
}

/* ---- 7. libvirt save image ----------------------------------------------------- */

static void test_libvirt(void **state)
{
    (void)state;
    BEGIN();
    static const char xml[] = "<domain type='kvm'><name>t</name></domain>\n";
    const uint32_t xml_len = 128; /* libvirt pads the XML with NULs */
    tb_buf q;
    tb_buf_init(&q);
    base_ram(&q);
    uint8_t page[PAGE];
    fill_page(page, PAGE, 3);
    tq_section_part(&q, TQ_END, RAM_ID);
    tq_ram_page(&q, 0x4000, "pc.ram", page, PAGE);
    tq_ram_eos(&q);
    tq_footer(&q, RAM_ID);
    size_t q_eof = finish_stream(&q);

    tb_buf b;
    tb_buf_init(&b);
    tq_libvirt_header(&b, "LibvirtQemudSave", 2, xml_len, 1, 0, 0);
    tb_put(&b, xml, strlen(xml));
    tb_put_zeros(&b, xml_len - strlen(xml));
    size_t base = b.len;
    SOFT(base == TQ_LIBVIRT_HEADER + xml_len, "header size");
    tb_put(&b, q.p, q.len);

    size_t need = 0;
    SOFT(ms_detect(b.p, b.len, &need) == MS_FORMAT_LIBVIRT_SAVE,
         "ms_detect does not see a libvirt image");
    qres bare, r;
    qread_all(q.p, q.len, NULL, &bare);
    CHECK_VALID("libvirt save image", &b, NULL, base + q_eof, &r);
    /* the image's stream event and the libvirt event, then the bare
     * stream's events without its own stream event (tests/test_libvirt.c
     * checks the libvirt events themselves) */
    SOFT(r.n == bare.n + 1, "%zu events wrapped, %zu bare", r.n, bare.n);
    SOFT(r.n > 1 && r.ev[0].ev.kind == MS_EV_STREAM_HEADER &&
             r.ev[1].ev.kind == MS_EV_LIBVIRT_HEADER,
         "libvirt image does not start with its stream and libvirt events");
    for (size_t i = 1; i + 1 < r.n && i < bare.n; i++) {
        const qev *x = &r.ev[i + 1], *y = &bare.ev[i];
        int same = x->ev.kind == y->ev.kind &&
                   x->ev.offset == y->ev.offset + base &&
                   x->ev.length == y->ev.length &&
                   strcmp(x->name, y->name) == 0 &&
                   x->data_hash == y->data_hash;
        SOFT(same, "event %zu: %s@%llu vs bare %s@%llu (+%zu)", i,
             ms_event_kind_name(x->ev.kind),
             (unsigned long long)x->ev.offset,
             ms_event_kind_name(y->ev.kind),
             (unsigned long long)y->ev.offset, base);
        if (!same)
            break;
    }
    ms_reader *rd = ms_reader_create(NULL);
    ms_reader_input(rd, b.p, b.len);
    ms_event ev;
    while (ms_reader_next(rd, &ev) == MS_NEXT_EVENT)
        ;
    SOFT(ms_reader_format(rd) == MS_FORMAT_LIBVIRT_SAVE, "format %s",
         ms_format_name(ms_reader_format(rd)));
    ms_reader_free(rd);
    qres_free(&r);
    qres_free(&bare);

    /* compressed images: tests/test_libvirt.c; a format libvirt does not
     * know is refused at the field */
    tb_set_le32(b.p + 28, 7);
    EXPECT_AT("libvirt image format 7", &b, NULL, MS_ERR_HEADER_FIELD, 28);
    tb_set_le32(b.p + 28, 0);
    /* an image libvirt did not finish writing */
    memcpy(b.p, "LibvirtQemudPart", 16);
    qres part;
    qread_all(b.p, b.len, NULL, &part);
    SOFT(part.rc == -1 && part.err.code != MS_ERR_OK &&
             part.err.offset < TQ_LIBVIRT_HEADER,
         "LibvirtQemudPart: rc %d %s at %llu", part.rc,
         ms_error_name(part.err.code), (unsigned long long)part.err.offset);
    print_message("  note: LibvirtQemudPart gives %s: %s\n",
                  ms_error_name(part.err.code), part.err.detail);
    qres_free(&part);
    /* another magic after "LibvirtQemud" (reference 9: Save or Part) */
    memcpy(b.p, "LibvirtQemudJunk", 16);
    EXPECT_AT("libvirt magic neither Save nor Part", &b, NULL,
              MS_ERR_BAD_MAGIC, 0);
    /* a bad QEVM stream inside: offsets are absolute */
    memcpy(b.p, "LibvirtQemudSave", 16);
    b.p[base + 7] = 2;
    EXPECT_AT("version 2 inside a libvirt image", &b, NULL, MS_ERR_VERSION,
              base + 4);
    tb_buf_free(&b);
    tb_buf_free(&q);
    DONE();
}

/* ---- ms_qemu_find_vmdesc ---------------------------------------------------------- */

static void test_find_vmdesc(void **state)
{
    (void)state;
    BEGIN();
    tb_buf b;
    tb_buf_init(&b);
    base_ram(&b);
    size_t eof = tq_eof(&b);
    size_t off = 0, len = 0;
    SOFT(ms_qemu_find_vmdesc(b.p, b.len, 1 << 20, &off, &len) == 0,
         "found a trailer in a stream without one");
    tq_vmdesc(&b, g_json, strlen(g_json));
    SOFT(ms_qemu_find_vmdesc(b.p, b.len, 1 << 20, &off, &len) == 1 &&
             off == eof + 6 && len == strlen(g_json),
         "trailer at %zu+%zu, want %zu+%zu", off, len, eof + 6,
         strlen(g_json));
    SOFT(ms_qemu_find_vmdesc(b.p, b.len, strlen(g_json) + 5, &off, &len) == 1,
         "max_scan covering exactly the trailer");
    SOFT(ms_qemu_find_vmdesc(b.p, b.len, 10, &off, &len) == 0,
         "found with max_scan 10");
    SOFT(ms_qemu_find_vmdesc(b.p, b.len - 1, 1 << 20, &off, &len) == 0,
         "found in a cut stream");
    tb_buf_free(&b);
    DONE();
}

/* ---- 3. rejections ------------------------------------------------------------------ */

static void test_reject_header(void **state)
{
    (void)state;
    BEGIN();
    tb_buf b;
    tb_buf_init(&b);
    ms_options forced;
    ms_options_init(&forced);
    forced.format = MS_FORMAT_QEMU_MAIN;

    tq_header_ex(&b, 0x5145564Eu, 3);
    tq_config(&b, NULL);
    tq_eof(&b);
    EXPECT_AT("bad magic (format forced)", &b, &forced, MS_ERR_BAD_MAGIC, 0);
    EXPECT_AT("bad magic (auto)", &b, NULL, MS_ERR_FORMAT_UNKNOWN, 0);

    static const uint32_t versions[] = {2, 4, 0, 1, 0xffffffffu};
    for (size_t i = 0; i < sizeof versions / sizeof versions[0]; i++) {
        tb_buf_reset(&b);
        tq_header_ex(&b, TQ_MAGIC, versions[i]);
        tq_config(&b, NULL);
        tq_eof(&b);
        char label[64];
        snprintf(label, sizeof label, "version %u", versions[i]);
        EXPECT_AT(label, &b, NULL, MS_ERR_VERSION, 4);
    }

    /* configuration missing: the first record is something else */
    static const uint8_t firsts[] = {TQ_EOF, TQ_START, TQ_FULL, TQ_COMMAND};
    for (size_t i = 0; i < sizeof firsts; i++) {
        tb_buf_reset(&b);
        tq_header(&b);
        if (firsts[i] == TQ_EOF)
            tq_eof(&b);
        else if (firsts[i] == TQ_COMMAND)
            tq_command(&b, TQ_CMD_OPEN_RETURN_PATH, NULL, 0);
        else {
            tq_section_start(&b, firsts[i], 0, "timer", 0, 2);
            tb_put_zeros(&b, 24);
            tq_footer(&b, 0);
        }
        tq_eof(&b);
        char label[64];
        snprintf(label, sizeof label, "configuration missing (0x%02x first)",
                 firsts[i]);
        EXPECT_AT(label, &b, NULL, MS_ERR_CONFIGURATION, 8);
    }
    /* configuration twice / later */
    tb_buf_reset(&b);
    tq_begin(&b);
    size_t second = tq_config(&b, NULL);
    tq_eof(&b);
    EXPECT_AT("second configuration record", &b, NULL, MS_ERR_CONFIGURATION,
              second);
    tb_buf_reset(&b);
    tq_begin(&b);
    tq_command(&b, TQ_CMD_OPEN_RETURN_PATH, NULL, 0);
    second = tq_config(&b, NULL);
    tq_eof(&b);
    EXPECT_AT("configuration after a command", &b, NULL,
              MS_ERR_CONFIGURATION, second);
    /* malformed configuration records */
    tb_buf_reset(&b);
    tq_header(&b);
    tb_put_u8(&b, TQ_CONFIGURATION);
    tb_put_be32(&b, 0);
    tq_eof(&b);
    EXPECT_IN("machine type of 0 bytes", &b, NULL, MS_ERR_CONFIGURATION, 8,
              13);
    tb_buf_reset(&b);
    tq_header(&b);
    tb_put_u8(&b, TQ_CONFIGURATION);
    tb_put_be32(&b, 4);
    tb_put(&b, "pc-x", 4);
    size_t sub = tq_subsection(&b, "configuration/bogus", 1);
    tb_put_be32(&b, 0);
    tq_eof(&b);
    EXPECT_IN("unknown configuration subsection", &b, NULL,
              MS_ERR_CONFIGURATION, sub, sub + 1 + 1 + 19 + 4);
    tb_buf_reset(&b);
    tq_header(&b);
    tq_cfg c = {.has_page_bits = 1, .page_bits = 40};
    tq_config(&b, &c);
    tq_eof(&b);
    EXPECT_IN("target page bits 40", &b, NULL, MS_ERR_CONFIGURATION, 8,
              b.len - 1);
    tb_buf_free(&b);
    DONE();
}

static void test_reject_sections(void **state)
{
    (void)state;
    BEGIN();
    tb_buf b;
    tb_buf_init(&b);
    static const uint8_t bad_types[] = {0x05, 0x09, 0x10, 0x7f, 0x80, 0xff};
    for (size_t i = 0; i < sizeof bad_types; i++) {
        tb_buf_reset(&b);
        base_ram(&b);
        size_t at = b.len;
        tb_put_u8(&b, bad_types[i]);
        tb_put_zeros(&b, 16);
        tq_eof(&b);
        char label[64];
        snprintf(label, sizeof label, "section type 0x%02x", bad_types[i]);
        EXPECT_AT(label, &b, NULL, MS_ERR_SECTION, at);
    }
    /* PART / END naming an unknown section id */
    for (uint8_t t = TQ_PART; t <= TQ_END; t++) {
        tb_buf_reset(&b);
        base_ram(&b);
        size_t at = tq_section_part(&b, t, 9);
        tq_ram_eos(&b);
        tq_footer(&b, 9);
        tq_eof(&b);
        EXPECT_AT(t == TQ_PART ? "PART with unknown id" : "END with unknown id",
                  &b, NULL, MS_ERR_SECTION, at);
    }
    /* a section id reused for another device */
    tb_buf_reset(&b);
    base_ram(&b);
    size_t at = tq_section_start(&b, TQ_FULL, RAM_ID, "timer", 0, 2);
    tb_put_zeros(&b, 24);
    tq_footer(&b, RAM_ID);
    tq_eof(&b);
    EXPECT_AT("section id reused for another device", &b, NULL,
              MS_ERR_SECTION, at);

    /* footer byte missing: RAM, VFIO, and a footer-less FULL at the end */
    tb_buf_reset(&b);
    tq_begin(&b);
    tq_section_start(&b, TQ_START, RAM_ID, "ram", 0, 4);
    tq_ram_block_list(&b, g_blocks, g_block_len, 2);
    tq_ram_eos(&b);
    at = tq_section_part(&b, TQ_PART, RAM_ID); /* instead of the footer */
    tq_ram_eos(&b);
    tq_footer(&b, RAM_ID);
    tq_eof(&b);
    EXPECT_AT("RAM footer missing", &b, NULL, MS_ERR_FOOTER, at);
    tb_buf_reset(&b);
    base_ram(&b);
    tq_section_part(&b, TQ_PART, RAM_ID);
    tq_ram_eos(&b);
    at = tq_eof(&b);
    tq_vmdesc(&b, g_json, strlen(g_json));
    EXPECT_AT("RAM footer missing before EOF", &b, NULL, MS_ERR_FOOTER, at);
    tb_buf_reset(&b);
    base_vfio(&b);
    tq_section_part(&b, TQ_PART, VFIO_ID);
    tq_vfio_marker(&b, TQ_VFIO_END_OF_STATE);
    at = tq_section_part(&b, TQ_PART, VFIO_ID); /* instead of the footer */
    tq_vfio_marker(&b, TQ_VFIO_END_OF_STATE);
    tq_footer(&b, VFIO_ID);
    tq_eof(&b);
    EXPECT_AT("VFIO footer missing after END_OF_STATE", &b, NULL,
              MS_ERR_FOOTER, at);
    tb_buf_reset(&b);
    base_vfio(&b);
    tq_section_part(&b, TQ_PART, VFIO_ID);
    tq_vfio_marker(&b, TQ_VFIO_INIT_DATA_SENT);
    at = tq_eof(&b);
    tq_vmdesc(&b, g_json, strlen(g_json));
    EXPECT_AT("VFIO footer missing after INIT_DATA_SENT", &b, NULL,
              MS_ERR_FOOTER, at);

    /* footer naming another section */
    tb_buf_reset(&b);
    tq_begin(&b);
    tq_section_start(&b, TQ_START, RAM_ID, "ram", 0, 4);
    tq_ram_block_list(&b, g_blocks, g_block_len, 2);
    tq_ram_eos(&b);
    at = tq_footer(&b, RAM_ID + 1);
    tq_eof(&b);
    EXPECT_AT("RAM footer id mismatch", &b, NULL, MS_ERR_FOOTER, at);
    tb_buf_reset(&b);
    base_vfio(&b);
    tq_section_part(&b, TQ_PART, VFIO_ID);
    tq_vfio_marker(&b, TQ_VFIO_END_OF_STATE);
    at = tq_footer(&b, RAM_ID);
    tq_eof(&b);
    EXPECT_AT("VFIO footer id mismatch", &b, NULL, MS_ERR_FOOTER, at);
    /* a footer outside a section */
    tb_buf_reset(&b);
    base_ram(&b);
    at = tq_footer(&b, RAM_ID);
    tq_eof(&b);
    EXPECT_AT("footer outside a section", &b, NULL, MS_ERR_FOOTER, at);
    /* the JSON trailer before EOF */
    tb_buf_reset(&b);
    base_ram(&b);
    at = tq_vmdesc(&b, g_json, strlen(g_json));
    tq_eof(&b);
    EXPECT_AT("JSON trailer before EOF", &b, NULL, MS_ERR_SECTION, at);
    tb_buf_free(&b);
    DONE();
}

static void test_reject_commands(void **state)
{
    (void)state;
    BEGIN();
    tb_buf b;
    tb_buf_init(&b);
    char label[96];
    static const uint16_t unknown[] = {0, 12, 13, 0x100, 0xffff};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        tb_buf_reset(&b);
        tq_begin(&b);
        size_t at = tq_command(&b, unknown[i], NULL, 0);
        tq_eof(&b);
        snprintf(label, sizeof label, "unknown command %u", unknown[i]);
        EXPECT_AT(label, &b, NULL, MS_ERR_COMMAND, at);
    }
    /* every fixed-length command with a wrong length */
    static const struct {
        uint16_t cmd;
        uint16_t bad[4];
    } fixed[] = {
        {TQ_CMD_OPEN_RETURN_PATH, {1, 4, 0, 0}},
        {TQ_CMD_PING, {0, 3, 5, 8}},
        {TQ_CMD_POSTCOPY_ADVISE, {8, 15, 17, 1}},
        {TQ_CMD_POSTCOPY_LISTEN, {1, 2, 0, 0}},
        {TQ_CMD_POSTCOPY_RUN, {1, 4, 0, 0}},
        {TQ_CMD_PACKAGED, {0, 3, 5, 8}},
        {TQ_CMD_ENABLE_COLO, {1, 0, 0, 0}},
        {TQ_CMD_POSTCOPY_RESUME, {1, 0, 0, 0}},
        {TQ_CMD_SWITCHOVER_START, {1, 4, 0, 0}},
    };
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        for (int k = 0; k < 4; k++) {
            uint16_t len = fixed[i].bad[k];
            if (k && len == 0)
                break;
            tb_buf_reset(&b);
            tq_begin(&b);
            size_t at = tq_command(&b, fixed[i].cmd, NULL, len);
            tq_eof(&b);
            snprintf(label, sizeof label, "command %u with length %u",
                     fixed[i].cmd, len);
            EXPECT_AT(label, &b, NULL, MS_ERR_COMMAND, at);
        }
    }
    /* malformed variable-length arguments */
    static const uint8_t bm_bad_len[] = {9, 'p', 'c'};
    tb_buf_reset(&b);
    tq_begin(&b);
    size_t at = tq_command(&b, TQ_CMD_RECV_BITMAP, bm_bad_len, 3);
    tq_eof(&b);
    EXPECT_AT("RECV_BITMAP name longer than its arguments", &b, NULL,
              MS_ERR_COMMAND, at);
    tb_buf_reset(&b);
    tq_begin(&b);
    at = tq_command(&b, TQ_CMD_RECV_BITMAP, NULL, 0);
    tq_eof(&b);
    EXPECT_AT("RECV_BITMAP without arguments", &b, NULL, MS_ERR_COMMAND, at);
    static const uint8_t disc_v1[] = {1, 2, 'p', 'c', 0};
    tb_buf_reset(&b);
    tq_begin(&b);
    at = tq_command(&b, TQ_CMD_POSTCOPY_RAM_DISCARD, disc_v1, 5);
    tq_eof(&b);
    EXPECT_AT("POSTCOPY_RAM_DISCARD version 1", &b, NULL, MS_ERR_COMMAND, at);
    uint8_t disc_odd[5 + 12] = {0, 2, 'p', 'c', 0};
    tb_buf_reset(&b);
    tq_begin(&b);
    at = tq_command(&b, TQ_CMD_POSTCOPY_RAM_DISCARD, disc_odd,
                    sizeof disc_odd);
    tq_eof(&b);
    EXPECT_AT("POSTCOPY_RAM_DISCARD with a partial range", &b, NULL,
              MS_ERR_COMMAND, at);
    tb_buf_free(&b);
    DONE();
}

static void test_reject_ram(void **state)
{
    (void)state;
    BEGIN();
    tb_buf b;
    tb_buf_init(&b);
    char label[96];
    uint8_t page[PAGE];
    fill_page(page, PAGE, 1);

    /* unknown flag combinations */
    static const uint64_t bad_flags[] = {
        TQ_RAM_ZERO | TQ_RAM_PAGE,     0x400, 0x800, 0x001,
        TQ_RAM_CONTINUE,               TQ_RAM_EOS | TQ_RAM_CONTINUE,
        0,                             TQ_RAM_MEM_SIZE | TQ_RAM_EOS,
        TQ_RAM_XBZRLE | TQ_RAM_COMPRESS_PAGE,
        TQ_RAM_MULTIFD_FLUSH | TQ_RAM_CONTINUE,
        TQ_RAM_PAGE | TQ_RAM_EOS};
    for (size_t i = 0; i < sizeof bad_flags / sizeof bad_flags[0]; i++) {
        tb_buf_reset(&b);
        base_ram(&b);
        tq_section_part(&b, TQ_PART, RAM_ID);
        size_t at = tq_ram_raw(&b, 0x1000 | bad_flags[i]);
        tq_counted(&b, "pc.ram");
        tb_put(&b, page, PAGE);
        tq_ram_eos(&b);
        tq_footer(&b, RAM_ID);
        tq_eof(&b);
        snprintf(label, sizeof label, "RAM flags 0x%llx",
                 (unsigned long long)bad_flags[i]);
        EXPECT_AT(label, &b, NULL, MS_ERR_RAM, at);
    }
    /* RDMA hook */
    tb_buf_reset(&b);
    base_ram(&b);
    tq_section_part(&b, TQ_PART, RAM_ID);
    size_t at = tq_ram_raw(&b, TQ_RAM_HOOK);
    tq_ram_eos(&b);
    tq_footer(&b, RAM_ID);
    tq_eof(&b);
    EXPECT_AT("RAM_SAVE_FLAG_HOOK", &b, NULL, MS_ERR_RAM, at);

    /* ZERO fill not 0 */
    tb_buf_reset(&b);
    base_ram(&b);
    tq_section_part(&b, TQ_PART, RAM_ID);
    at = tq_ram_zero(&b, 0x1000, "pc.ram", 0x01);
    size_t end = b.len;
    tq_ram_eos(&b);
    tq_footer(&b, RAM_ID);
    tq_eof(&b);
    EXPECT_IN("ZERO fill 0x01", &b, NULL, MS_ERR_RAM, at, end);

    /* page outside its block */
    static const struct {
        uint64_t offset;
        const char *block;
        int kind; /* 0 page, 1 zero */
    } outside[] = {{0x10000, "pc.ram", 0},
                   {0x20000, "pc.ram", 1},
                   {0x2000, "pc.bios", 0},
                   {0xfffffffffffff000ull, "pc.ram", 1}};
    for (size_t i = 0; i < sizeof outside / sizeof outside[0]; i++) {
        tb_buf_reset(&b);
        base_ram(&b);
        tq_section_part(&b, TQ_PART, RAM_ID);
        if (outside[i].kind == 0)
            at = tq_ram_page(&b, outside[i].offset, outside[i].block, page,
                             PAGE);
        else
            at = tq_ram_zero(&b, outside[i].offset, outside[i].block, 0);
        end = b.len;
        tq_ram_eos(&b);
        tq_footer(&b, RAM_ID);
        tq_eof(&b);
        snprintf(label, sizeof label, "page at 0x%llx of %s",
                 (unsigned long long)outside[i].offset, outside[i].block);
        EXPECT_IN(label, &b, NULL, MS_ERR_RAM, at, end);
    }
    /* CONTINUE after a block: offset outside it */
    tb_buf_reset(&b);
    base_ram(&b);
    tq_section_part(&b, TQ_PART, RAM_ID);
    tq_ram_zero(&b, 0x1000, "pc.bios", 0);
    at = tq_ram_zero(&b, 0x8000, NULL, 0);
    end = b.len;
    tq_ram_eos(&b);
    tq_footer(&b, RAM_ID);
    tq_eof(&b);
    EXPECT_IN("CONTINUE page outside the current block", &b, NULL,
              MS_ERR_RAM, at, end);

    /* unknown block */
    tb_buf_reset(&b);
    base_ram(&b);
    tq_section_part(&b, TQ_PART, RAM_ID);
    at = tq_ram_page(&b, 0, "pc.nope", page, PAGE);
    end = b.len;
    tq_ram_eos(&b);
    tq_footer(&b, RAM_ID);
    tq_eof(&b);
    EXPECT_IN("unknown block", &b, NULL, MS_ERR_RAM, at, end);

    /* CONTINUE with no current block */
    tb_buf_reset(&b);
    base_ram(&b);
    tq_section_part(&b, TQ_PART, RAM_ID);
    at = tq_ram_zero(&b, 0, NULL, 0);
    end = b.len;
    tq_ram_eos(&b);
    tq_footer(&b, RAM_ID);
    tq_eof(&b);
    EXPECT_IN("CONTINUE with no current block", &b, NULL, MS_ERR_RAM, at,
              end);

    /* XBZRLE: encoding byte not 1, length over a page */
    static const uint8_t encs[] = {0, 2, 0xff};
    for (size_t i = 0; i < sizeof encs; i++) {
        tb_buf_reset(&b);
        base_ram(&b);
        tq_section_part(&b, TQ_PART, RAM_ID);
        at = tq_ram_xbzrle(&b, 0, "pc.ram", encs[i], page, 16);
        end = b.len;
        tq_ram_eos(&b);
        tq_footer(&b, RAM_ID);
        tq_eof(&b);
        snprintf(label, sizeof label, "XBZRLE encoding 0x%02x", encs[i]);
        EXPECT_IN(label, &b, NULL, MS_ERR_RAM, at, end);
    }
    tb_buf_reset(&b);
    base_ram(&b);
    tq_section_part(&b, TQ_PART, RAM_ID);
    at = tq_ram_raw(&b, TQ_RAM_XBZRLE);
    tq_counted(&b, "pc.ram");
    tb_put_u8(&b, 1);
    tb_put_be16(&b, PAGE + 1);
    end = b.len;
    tb_put_zeros(&b, PAGE + 1);
    tq_ram_eos(&b);
    tq_footer(&b, RAM_ID);
    tq_eof(&b);
    EXPECT_IN("XBZRLE length page + 1", &b, NULL, MS_ERR_RAM, at, end);
    EXPECT_AT("XBZRLE length page + 1: at its be16", &b, NULL, MS_ERR_RAM,
              end - 2);
    /* COMPRESS_PAGE of length 0: the error names its be32 length field */
    tb_buf_reset(&b);
    base_ram(&b);
    tq_section_part(&b, TQ_PART, RAM_ID);
    tq_ram_raw(&b, TQ_RAM_COMPRESS_PAGE);
    tq_counted(&b, "pc.ram");
    at = b.len;
    tb_put_be32(&b, 0);
    tq_ram_eos(&b);
    tq_footer(&b, RAM_ID);
    tq_eof(&b);
    EXPECT_AT("COMPRESS_PAGE length 0", &b, NULL, MS_ERR_RAM, at);

    /* block list lengths exceeding the MEM_SIZE total */
    tb_buf_reset(&b);
    tq_begin(&b);
    tq_section_start(&b, TQ_START, RAM_ID, "ram", 0, 4);
    tq_ram_mem_size(&b, 0x10000);
    at = tq_ram_block_entry(&b, "pc.ram", 0x20000);
    end = b.len;
    tq_ram_eos(&b);
    tq_footer(&b, RAM_ID);
    tq_eof(&b);
    EXPECT_IN("one block longer than MEM_SIZE", &b, NULL, MS_ERR_RAM, at,
              end);
    tb_buf_reset(&b);
    tq_begin(&b);
    tq_section_start(&b, TQ_START, RAM_ID, "ram", 0, 4);
    tq_ram_mem_size(&b, 0x10000);
    tq_ram_block_entry(&b, "pc.ram", 0x8000);
    at = tq_ram_block_entry(&b, "pc.bios", 0x10000);
    end = b.len;
    tq_ram_eos(&b);
    tq_footer(&b, RAM_ID);
    tq_eof(&b);
    EXPECT_IN("block lengths summing past MEM_SIZE", &b, NULL, MS_ERR_RAM,
              at, end);
    /* lengths summing short of the total: the list runs into EOS */
    tb_buf_reset(&b);
    tq_begin(&b);
    tq_section_start(&b, TQ_START, RAM_ID, "ram", 0, 4);
    tq_ram_mem_size(&b, 0x10000);
    tq_ram_block_entry(&b, "pc.ram", 0x8000);
    tq_ram_eos(&b);
    tq_footer(&b, RAM_ID);
    tq_eof(&b);
    qres r;
    qread_all(b.p, b.len, NULL, &r);
    SOFT(r.rc == -1, "block list summing short of MEM_SIZE accepted");
    qres_free(&r);
    /* the same block listed twice */
    tb_buf_reset(&b);
    tq_begin(&b);
    tq_section_start(&b, TQ_START, RAM_ID, "ram", 0, 4);
    tq_ram_mem_size(&b, 0x20000);
    tq_ram_block_entry(&b, "pc.ram", 0x10000);
    at = tq_ram_block_entry(&b, "pc.ram", 0x10000);
    end = b.len;
    tq_ram_eos(&b);
    tq_footer(&b, RAM_ID);
    tq_eof(&b);
    EXPECT_IN("block listed twice", &b, NULL, MS_ERR_RAM, at, end);
    /* block list outside START */
    tb_buf_reset(&b);
    base_ram(&b);
    tq_section_part(&b, TQ_PART, RAM_ID);
    at = tq_ram_block_list(&b, g_blocks, g_block_len, 2);
    tq_ram_eos(&b);
    tq_footer(&b, RAM_ID);
    tq_eof(&b);
    EXPECT_AT("MEM_SIZE in a PART section", &b, NULL, MS_ERR_RAM, at);
    /* RAM version other than 4, RAM in a FULL section */
    tb_buf_reset(&b);
    tq_begin(&b);
    at = tq_section_start(&b, TQ_START, RAM_ID, "ram", 0, 3);
    tq_ram_block_list(&b, g_blocks, g_block_len, 2);
    tq_ram_eos(&b);
    tq_footer(&b, RAM_ID);
    tq_eof(&b);
    EXPECT_IN("RAM version 3", &b, NULL, MS_ERR_RAM, at, at + 17);
    tb_buf_reset(&b);
    tq_begin(&b);
    at = tq_section_start(&b, TQ_FULL, RAM_ID, "ram", 0, 4);
    tq_ram_eos(&b);
    tq_footer(&b, RAM_ID);
    tq_eof(&b);
    EXPECT_IN("RAM in a FULL section", &b, NULL, MS_ERR_RAM, at, at + 17);

    /* COMPRESS_PAGE not inflating to exactly one page */
    uint8_t z[PAGE * 2 + 64];
    uLongf zl = sizeof z;
    compress2(z, &zl, page, PAGE / 2, 6);
    tb_buf_reset(&b);
    base_ram(&b);
    tq_section_part(&b, TQ_PART, RAM_ID);
    at = tq_ram_compress_raw(&b, 0, "pc.ram", z, (uint32_t)zl);
    end = b.len;
    tq_ram_eos(&b);
    tq_footer(&b, RAM_ID);
    tq_eof(&b);
    EXPECT_IN("COMPRESS_PAGE of half a page", &b, NULL, MS_ERR_DECOMPRESS,
              at, end);
    uint8_t two[PAGE + 1];
    memcpy(two, page, PAGE);
    two[PAGE] = 7;
    zl = sizeof z;
    compress2(z, &zl, two, PAGE + 1, 6);
    tb_buf_reset(&b);
    base_ram(&b);
    tq_section_part(&b, TQ_PART, RAM_ID);
    at = tq_ram_compress_raw(&b, 0, "pc.ram", z, (uint32_t)zl);
    end = b.len;
    tq_ram_eos(&b);
    tq_footer(&b, RAM_ID);
    tq_eof(&b);
    EXPECT_IN("COMPRESS_PAGE of a page + 1 byte", &b, NULL,
              MS_ERR_DECOMPRESS, at, end);
    tb_buf_reset(&b);
    base_ram(&b);
    tq_section_part(&b, TQ_PART, RAM_ID);
    at = tq_ram_compress_raw(&b, 0, "pc.ram", page, 100);
    end = b.len;
    tq_ram_eos(&b);
    tq_footer(&b, RAM_ID);
    tq_eof(&b);
    EXPECT_IN("COMPRESS_PAGE of bytes that are not zlib", &b, NULL,
              MS_ERR_DECOMPRESS, at, end);
    /* a complete page followed by junk inside the stored length */
    zl = sizeof z;
    compress2(z, &zl, page, PAGE, 6);
    z[zl] = 0;
    tb_buf_reset(&b);
    base_ram(&b);
    tq_section_part(&b, TQ_PART, RAM_ID);
    at = tq_ram_compress_raw(&b, 0, "pc.ram", z, (uint32_t)zl + 1);
    end = b.len;
    tq_ram_eos(&b);
    tq_footer(&b, RAM_ID);
    tq_eof(&b);
    EXPECT_IN("COMPRESS_PAGE with a byte after the zlib stream", &b, NULL,
              MS_ERR_DECOMPRESS, at, end);
    tb_buf_free(&b);
    DONE();
}

static void test_reject_vfio(void **state)
{
    (void)state;
    BEGIN();
    tb_buf b;
    tb_buf_init(&b);
    uint8_t d[32];
    tb_fill_random(d, sizeof d, 9);
    char label[96];

    /* unknown markers */
    static const uint64_t unknown[] = {TQ_VFIO_BASE + 7, TQ_VFIO_BASE,
                                       TQ_VFIO_BASE + 0x10, 1,
                                       0xffffffffffffffffull};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        tb_buf_reset(&b);
        base_vfio(&b);
        tq_section_part(&b, TQ_PART, VFIO_ID);
        size_t at = tq_ram_raw(&b, unknown[i]);
        tq_vfio_marker(&b, TQ_VFIO_END_OF_STATE);
        tq_footer(&b, VFIO_ID);
        tq_eof(&b);
        snprintf(label, sizeof label, "VFIO marker 0x%016llx",
                 (unsigned long long)unknown[i]);
        EXPECT_AT(label, &b, NULL, MS_ERR_VFIO, at);
    }
    /* SETUP not followed by END_OF_STATE */
    static const unsigned after_setup[] = {TQ_VFIO_DATA_STATE,
                                           TQ_VFIO_SETUP_STATE,
                                           TQ_VFIO_INIT_DATA_SENT};
    for (size_t i = 0; i < 3; i++) {
        tb_buf_reset(&b);
        tq_begin(&b);
        tq_section_start(&b, TQ_START, VFIO_ID, VFIO_IDSTR, 0, 1);
        tq_vfio_marker(&b, TQ_VFIO_SETUP_STATE);
        size_t at = after_setup[i] == TQ_VFIO_DATA_STATE
                        ? tq_vfio_data(&b, d, sizeof d)
                        : tq_vfio_marker(&b, after_setup[i]);
        tq_vfio_marker(&b, TQ_VFIO_END_OF_STATE);
        tq_footer(&b, VFIO_ID);
        tq_eof(&b);
        snprintf(label, sizeof label, "SETUP followed by marker %u",
                 after_setup[i]);
        EXPECT_AT(label, &b, NULL, MS_ERR_VFIO, at);
    }
    tb_buf_reset(&b);
    tq_begin(&b);
    tq_section_start(&b, TQ_START, VFIO_ID, VFIO_IDSTR, 0, 1);
    tq_vfio_marker(&b, TQ_VFIO_SETUP_STATE);
    size_t at = tq_footer(&b, VFIO_ID);
    finish_stream(&b); /* enough bytes follow to read a marker */
    EXPECT_IN("SETUP followed by the footer", &b, NULL, MS_ERR_VFIO, at,
              at + 8);
    /* START without SETUP */
    tb_buf_reset(&b);
    tq_begin(&b);
    tq_section_start(&b, TQ_START, VFIO_ID, VFIO_IDSTR, 0, 1);
    at = tq_vfio_marker(&b, TQ_VFIO_END_OF_STATE);
    tq_footer(&b, VFIO_ID);
    tq_eof(&b);
    EXPECT_AT("START without SETUP", &b, NULL, MS_ERR_VFIO, at);
    /* INIT_DATA_SENT twice, and outside PART */
    tb_buf_reset(&b);
    base_vfio(&b);
    tq_section_part(&b, TQ_PART, VFIO_ID);
    tq_vfio_marker(&b, TQ_VFIO_INIT_DATA_SENT);
    tq_footer(&b, VFIO_ID);
    tq_section_part(&b, TQ_PART, VFIO_ID);
    tq_vfio_data(&b, d, sizeof d);
    at = tq_vfio_marker(&b, TQ_VFIO_INIT_DATA_SENT);
    tq_footer(&b, VFIO_ID);
    tq_eof(&b);
    EXPECT_AT("INIT_DATA_SENT twice", &b, NULL, MS_ERR_VFIO, at);
    tb_buf_reset(&b);
    base_vfio(&b);
    tq_section_part(&b, TQ_END, VFIO_ID);
    at = tq_vfio_marker(&b, TQ_VFIO_INIT_DATA_SENT);
    tq_footer(&b, VFIO_ID);
    tq_eof(&b);
    EXPECT_AT("INIT_DATA_SENT in END", &b, NULL, MS_ERR_VFIO, at);
    /* CONFIG_LOAD_READY outside FULL, or twice */
    static const uint8_t not_full[] = {TQ_PART, TQ_END};
    for (size_t i = 0; i < 2; i++) {
        tb_buf_reset(&b);
        base_vfio(&b);
        tq_section_part(&b, not_full[i], VFIO_ID);
        at = tq_vfio_marker(&b, TQ_VFIO_CONFIG_LOAD_READY);
        tq_footer(&b, VFIO_ID);
        tq_eof(&b);
        EXPECT_AT(i ? "CONFIG_LOAD_READY in END" : "CONFIG_LOAD_READY in PART",
                  &b, NULL, MS_ERR_VFIO, at);
    }
    tb_buf_reset(&b);
    base_vfio(&b);
    tq_section_start(&b, TQ_FULL, VFIO_ID, VFIO_IDSTR, 0, 1);
    tq_vfio_marker(&b, TQ_VFIO_CONFIG_LOAD_READY);
    tq_footer(&b, VFIO_ID);
    tq_section_start(&b, TQ_FULL, VFIO_ID, VFIO_IDSTR, 0, 1);
    at = tq_vfio_marker(&b, TQ_VFIO_CONFIG_LOAD_READY);
    tq_footer(&b, VFIO_ID);
    tq_eof(&b);
    EXPECT_AT("CONFIG_LOAD_READY twice (two FULL sections)", &b, NULL,
              MS_ERR_VFIO, at);
    tb_buf_reset(&b);
    base_vfio(&b);
    tq_section_start(&b, TQ_FULL, VFIO_ID, VFIO_IDSTR, 0, 1);
    tq_vfio_marker(&b, TQ_VFIO_CONFIG_LOAD_READY);
    at = tq_vfio_marker(&b, TQ_VFIO_CONFIG_LOAD_READY);
    tq_footer(&b, VFIO_ID);
    tq_eof(&b);
    EXPECT_AT("CONFIG_LOAD_READY twice (one FULL section)", &b, NULL,
              MS_ERR_VFIO, at);
    /* device data in START or FULL */
    tb_buf_reset(&b);
    tq_begin(&b);
    tq_section_start(&b, TQ_START, VFIO_ID, VFIO_IDSTR, 0, 1);
    at = tq_vfio_data(&b, d, sizeof d);
    tq_vfio_marker(&b, TQ_VFIO_END_OF_STATE);
    tq_footer(&b, VFIO_ID);
    tq_eof(&b);
    EXPECT_AT("device data in START", &b, NULL, MS_ERR_VFIO, at);
    tb_buf_reset(&b);
    base_vfio(&b);
    tq_section_start(&b, TQ_FULL, VFIO_ID, VFIO_IDSTR, 0, 1);
    at = tq_vfio_data(&b, d, sizeof d);
    tq_vfio_marker(&b, TQ_VFIO_END_OF_STATE);
    tq_footer(&b, VFIO_ID);
    tq_eof(&b);
    EXPECT_AT("device data in FULL", &b, NULL, MS_ERR_VFIO, at);
    /* SETUP / CONFIG_STATE in the wrong section */
    tb_buf_reset(&b);
    base_vfio(&b);
    tq_section_part(&b, TQ_PART, VFIO_ID);
    at = tq_vfio_marker(&b, TQ_VFIO_SETUP_STATE);
    tq_vfio_marker(&b, TQ_VFIO_END_OF_STATE);
    tq_footer(&b, VFIO_ID);
    tq_eof(&b);
    EXPECT_AT("SETUP in PART", &b, NULL, MS_ERR_VFIO, at);
    tb_buf_reset(&b);
    base_vfio(&b);
    tq_section_part(&b, TQ_END, VFIO_ID);
    at = tq_vfio_marker(&b, TQ_VFIO_CONFIG_STATE);
    tq_vfio_marker(&b, TQ_VFIO_END_OF_STATE);
    tq_footer(&b, VFIO_ID);
    tq_eof(&b);
    EXPECT_AT("CONFIG_STATE in END", &b, NULL, MS_ERR_VFIO, at);
    /* a marker after the payload ended (project spec 6: vfio) */
    tb_buf_reset(&b);
    base_vfio(&b);
    tq_section_part(&b, TQ_PART, VFIO_ID);
    tq_vfio_marker(&b, TQ_VFIO_END_OF_STATE);
    at = tq_vfio_data(&b, d, sizeof d);
    tq_vfio_marker(&b, TQ_VFIO_END_OF_STATE);
    tq_footer(&b, VFIO_ID);
    tq_eof(&b);
    EXPECT_AT("DATA after END_OF_STATE", &b, NULL, MS_ERR_VFIO, at);
    /* DATA_STATE size larger than the remaining input */
    tb_buf_reset(&b);
    base_vfio(&b);
    tq_section_part(&b, TQ_PART, VFIO_ID);
    tq_vfio_marker(&b, TQ_VFIO_DATA_STATE);
    tb_put_be64(&b, 1000);
    tb_put(&b, d, sizeof d);
    tq_vfio_marker(&b, TQ_VFIO_END_OF_STATE);
    tq_footer(&b, VFIO_ID);
    tq_eof(&b);
    EXPECT_AT("DATA_STATE larger than the remaining input", &b, NULL,
              MS_ERR_TRUNCATED, b.len);
    ms_options o;
    ms_options_init(&o);
    o.max_record_payload = 16;
    tb_buf_reset(&b);
    base_vfio(&b);
    tq_section_part(&b, TQ_PART, VFIO_ID);
    at = tq_vfio_data(&b, d, sizeof d);
    tq_vfio_marker(&b, TQ_VFIO_END_OF_STATE);
    tq_footer(&b, VFIO_ID);
    tq_eof(&b);
    EXPECT_IN("DATA_STATE over max_record_payload", &b, &o, MS_ERR_LIMIT, at,
              at + 16);
    tb_buf_free(&b);
    DONE();
}

/* QEMU's source sends an iterable section's START once, PARTs, then one
 * END before EOF; damage that flips a section type breaks that order. */
static void test_reject_life_cycle(void **state)
{
    (void)state;
    BEGIN();
    tb_buf b;
    tb_buf_init(&b);
    /* PART (and END) of a section that never STARTed: the id is known from
     * a FULL section (a START turned into FULL) */
    for (uint8_t t = TQ_PART; t <= TQ_END; t++) {
        tb_buf_reset(&b);
        tq_begin(&b);
        tq_section_start(&b, TQ_FULL, 5, "timer", 0, 2);
        tb_put_zeros(&b, 24);
        tq_footer(&b, 5);
        size_t at = tq_section_part(&b, t, 5);
        tb_put_zeros(&b, 24);
        tq_footer(&b, 5);
        tq_eof(&b);
        EXPECT_AT(t == TQ_PART ? "PART without START" : "END without START", &b,
                  NULL, MS_ERR_SECTION, at);
    }
    /* a second START of RAM */
    tb_buf_reset(&b);
    base_ram(&b);
    size_t at = tq_section_start(&b, TQ_START, RAM_ID, "ram", 0, 4);
    tq_ram_block_list(&b, g_blocks, g_block_len, 2);
    tq_ram_eos(&b);
    tq_footer(&b, RAM_ID);
    tq_ram_end(&b, RAM_ID);
    tq_eof(&b);
    EXPECT_AT("second START", &b, NULL, MS_ERR_SECTION, at);
    /* a PART after the END */
    tb_buf_reset(&b);
    base_ram(&b);
    tq_ram_end(&b, RAM_ID);
    at = tq_section_part(&b, TQ_PART, RAM_ID);
    tq_ram_eos(&b);
    tq_footer(&b, RAM_ID);
    tq_eof(&b);
    EXPECT_AT("PART after END", &b, NULL, MS_ERR_SECTION, at);
    /* EOF while RAM (then a VFIO device) has STARTed and not ENDed: the
     * EOF record is the offending one */
    tb_buf_reset(&b);
    base_ram(&b);
    tq_section_part(&b, TQ_PART, RAM_ID);
    tq_ram_eos(&b);
    tq_footer(&b, RAM_ID);
    at = tq_eof(&b);
    tq_vmdesc(&b, g_json, strlen(g_json));
    EXPECT_AT("EOF before END", &b, NULL, MS_ERR_SECTION, at);
    tb_buf_reset(&b);
    base_vfio(&b);
    at = tq_eof(&b);
    EXPECT_AT("EOF before the VFIO END", &b, NULL, MS_ERR_SECTION, at);
    tb_buf_free(&b);
    DONE();
}

/* COLO (after ENABLE_COLO) sends the iterable state again at every
 * checkpoint: a second END of RAM is valid there and nowhere else. */
static void test_colo_checkpoints(void **state)
{
    (void)state;
    BEGIN();
    tb_buf b;
    tb_buf_init(&b);
    for (int colo = 0; colo < 2; colo++) {
        tb_buf_reset(&b);
        tq_begin(&b);
        if (colo) /* QEMU's source sends it before the setup */
            tq_command(&b, TQ_CMD_ENABLE_COLO, NULL, 0);
        tq_section_start(&b, TQ_START, RAM_ID, "ram", 0, 4);
        tq_ram_block_list(&b, g_blocks, g_block_len, 2);
        tq_ram_eos(&b);
        tq_footer(&b, RAM_ID);
        tq_ram_end(&b, RAM_ID);
        /* a checkpoint: a page, then the END again */
        size_t part = tq_section_part(&b, TQ_PART, RAM_ID);
        uint8_t page[PAGE];
        fill_page(page, sizeof page, 3);
        tq_ram_page(&b, 0x1000, "pc.ram", page, PAGE);
        tq_ram_eos(&b);
        tq_footer(&b, RAM_ID);
        size_t end2 = tq_ram_end(&b, RAM_ID);
        size_t eof = finish_stream(&b);
        if (colo) {
            qres r;
            CHECK_VALID("COLO: PART and END after the END", &b, NULL, eof, &r);
            SOFT(qcount(&r, MS_EV_RAM_PAGE) == 1, "%zu pages",
                 qcount(&r, MS_EV_RAM_PAGE));
            qres_free(&r);
        } else {
            EXPECT_AT("PART after END without ENABLE_COLO", &b, NULL,
                      MS_ERR_SECTION, part);
        }
        /* without the checkpoint's PART: END, END */
        memmove(b.p + part, b.p + end2, b.len - end2);
        b.len -= end2 - part;
        if (colo)
            CHECK_VALID("COLO: a second END", &b, NULL, eof - (end2 - part),
                        NULL);
        else
            EXPECT_AT("second END without ENABLE_COLO", &b, NULL,
                      MS_ERR_SECTION, part);
    }
    /* COLO does not send START again */
    tb_buf_reset(&b);
    tq_begin(&b);
    tq_command(&b, TQ_CMD_ENABLE_COLO, NULL, 0);
    tq_section_start(&b, TQ_START, RAM_ID, "ram", 0, 4);
    tq_ram_block_list(&b, g_blocks, g_block_len, 2);
    tq_ram_eos(&b);
    tq_footer(&b, RAM_ID);
    tq_ram_end(&b, RAM_ID);
    size_t at = tq_section_start(&b, TQ_START, RAM_ID, "ram", 0, 4);
    tq_ram_block_list(&b, g_blocks, g_block_len, 2);
    tq_ram_eos(&b);
    tq_footer(&b, RAM_ID);
    tq_eof(&b);
    EXPECT_AT("COLO: a second START", &b, NULL, MS_ERR_SECTION, at);
    tb_buf_free(&b);
    DONE();
}

static void test_reject_after_eof(void **state)
{
    (void)state;
    BEGIN();
    tb_buf b;
    tb_buf_init(&b);
    /* bytes after EOF that are not a trailer */
    base_ram(&b);
    tq_ram_end(&b, RAM_ID);
    size_t eof = tq_eof(&b);
    tb_put(&b, "ABCDEFGH", 8);
    EXPECT_AT("8 bytes after EOF", &b, NULL, MS_ERR_TRAILING_DATA, eof + 1);
    b.len = eof + 1;
    tq_eof(&b);
    tq_eof(&b);
    EXPECT_AT("EOF three times", &b, NULL, MS_ERR_TRAILING_DATA, eof + 1);
    b.len = eof + 1;
    tb_put_u8(&b, 0x01);
    EXPECT_AT("one byte (0x01) after EOF", &b, NULL, MS_ERR_TRAILING_DATA,
              eof + 1);
    /* bytes after the trailer */
    b.len = eof + 1;
    tq_vmdesc(&b, g_json, strlen(g_json));
    size_t extra = b.len;
    tb_put_u8(&b, 0);
    EXPECT_AT("a byte after the trailer", &b, NULL, MS_ERR_TRAILING_DATA,
              extra);
    b.len = extra;
    tq_vmdesc(&b, g_json, strlen(g_json));
    EXPECT_AT("two trailers", &b, NULL, MS_ERR_TRAILING_DATA, extra);
    /* trailer over max_vmdesc_bytes */
    ms_options o;
    ms_options_init(&o);
    o.max_vmdesc_bytes = 16;
    b.len = extra;
    EXPECT_IN("trailer over max_vmdesc_bytes", &b, &o, MS_ERR_LIMIT, eof + 1,
              extra);
    ms_reader *r = ms_reader_create(&o);
    SOFT(ms_reader_set_vmdesc(r, g_json, strlen(g_json)) == -1 &&
             ms_reader_error(r)->code == MS_ERR_LIMIT,
         "ms_reader_set_vmdesc over max_vmdesc_bytes: %s",
         ms_error_name(ms_reader_error(r)->code));
    ms_reader_free(r);
    /* malformed JSON (needs the real trailer parser) */
    if (!have_vmdesc_parser()) {
        print_message("  note: JSON trailer parser is a stub; malformed-JSON "
                      "checks skipped\n");
    } else {
        static const char *const bad[] = {
            "{\"page_size\": 4096, \"devices\": [",
            "{\"page_size\": 4096, \"devices\": []}}",
            "{\"page_size\": 4096,, \"devices\": []}",
            "[1, 2, 3]",
            "{\"page_size\": 4096, \"devices\": [] \x01}",
        };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            b.len = eof + 1;
            size_t t = tq_vmdesc(&b, bad[i], strlen(bad[i]));
            char label[96];
            snprintf(label, sizeof label, "malformed trailer %zu", i);
            /* the offending byte, or the end when the text ends early */
            EXPECT_IN(label, &b, NULL, MS_ERR_VMDESC, t, b.len + 1);
            r = ms_reader_create(NULL);
            SOFT(ms_reader_set_vmdesc(r, bad[i], strlen(bad[i])) == -1 &&
                     ms_reader_error(r)->code == MS_ERR_VMDESC,
                 "ms_reader_set_vmdesc(malformed %zu): %s", i,
                 ms_error_name(ms_reader_error(r)->code));
            ms_reader_free(r);
        }
    }
    tb_buf_free(&b);
    DONE();
}

static void test_limits(void **state)
{
    (void)state;
    BEGIN();
    ms_options o;
    ms_options_init(&o);
    o.max_sections = 2;
    tb_buf b;
    tb_buf_init(&b);
    tq_begin(&b);
    size_t at = 0;
    for (uint32_t i = 0; i < 3; i++) {
        at = tq_section_start(&b, TQ_FULL, 10 + i, "dev", i, 1);
        tb_put_zeros(&b, 4);
        tq_footer(&b, 10 + i);
    }
    tq_eof(&b);
    EXPECT_IN("more than max_sections", &b, &o, MS_ERR_LIMIT, at, b.len);
    o.max_sections = 3;
    qres r;
    SOFT(qread_all(b.p, b.len, &o, &r) == 0, "3 sections, max 3: %s",
         r.err.detail);
    qres_free(&r);

    ms_options_init(&o);
    o.max_ram_blocks = 1;
    tb_buf_reset(&b);
    tq_begin(&b);
    tq_section_start(&b, TQ_START, RAM_ID, "ram", 0, 4);
    tq_ram_mem_size(&b, 0x12000);
    tq_ram_block_entry(&b, "pc.ram", 0x10000);
    at = tq_ram_block_entry(&b, "pc.bios", 0x2000);
    size_t end = b.len;
    tq_ram_eos(&b);
    tq_footer(&b, RAM_ID);
    tq_eof(&b);
    EXPECT_IN("more than max_ram_blocks", &b, &o, MS_ERR_LIMIT, at, end);
    tb_buf_free(&b);
    DONE();
}

/* Errors are sticky; the reader reports the same error afterwards. */
static void test_sticky(void **state)
{
    (void)state;
    BEGIN();
    tb_buf b;
    tb_buf_init(&b);
    base_ram(&b);
    tb_put_u8(&b, 0x09);
    tq_eof(&b);
    ms_reader *r = ms_reader_create(NULL);
    ms_reader_input(r, b.p, b.len);
    ms_event ev;
    int k;
    while ((k = ms_reader_next(r, &ev)) == MS_NEXT_EVENT)
        ;
    SOFT(k == MS_NEXT_ERROR, "no error");
    ms_error_info e = *ms_reader_error(r);
    SOFT(ms_reader_next(r, &ev) == MS_NEXT_ERROR, "next after error");
    SOFT(ms_reader_finish(r) == -1, "finish after error");
    SOFT(ms_reader_error(r)->code == e.code &&
             ms_reader_error(r)->offset == e.offset,
         "error changed");
    ms_reader_free(r);
    tb_buf_free(&b);
    DONE();
}

/* Single-bit damage anywhere in the rich stream: never a crash, errors
 * inside the input, and the same verdict and events in one slice and in
 * random slices (every error path is resumable). */
static void test_bit_flips(void **state)
{
    (void)state;
    BEGIN();
    rich *x = calloc(1, sizeof *x);
    build_rich(x);
    tb_buf *b = &x->b;
    /* raw page bytes only change page data: sample them sparsely */
    uint8_t *in_page = calloc(1, b->len);
    qres base;
    qread_all(b->p, b->len, NULL, &base);
    for (size_t i = 0; i < base.n; i++) {
        const ms_event *e = &base.ev[i].ev;
        if (e->kind == MS_EV_RAM_PAGE && e->u.ram.record == MS_RAM_PAGE)
            memset(in_page + e->offset + e->length - PAGE, 1, PAGE);
    }
    qres_free(&base);
    size_t bad = 0, failed = 0, n = 0;
    char why[1024];
    for (size_t off = 0; off < b->len; off++) {
        if (in_page[off] ? off % 101 != 0 : off % 3 != 0)
            continue;
        uint8_t bit = (uint8_t)(1u << (off % 8));
        b->p[off] ^= bit;
        qres one, rnd;
        qrun whole = {0};
        qrun sl = {.seed = off + 1, .max_slice = 40};
        qread(b->p, b->len, &whole, &one);
        qread(b->p, b->len, &sl, &rnd);
        n++;
        failed += one.rc != 0;
        int ok = qres_same(&one, &rnd, why, sizeof why) &&
                 (one.rc == 0 || one.err.offset <= b->len) &&
                 one.offset_regress == 0;
        if (!ok && bad++ < 5)
            SOFT(0, "bit 0x%02x at %zu: %s (error %s at %llu)", bit, off,
                 why, ms_error_name(one.err.code),
                 (unsigned long long)one.err.offset);
        qres_free(&one);
        qres_free(&rnd);
        b->p[off] ^= bit;
    }
    SOFT(bad == 0, "%zu of %zu damaged streams misbehave", bad, n);
    print_message("  note: %zu of %zu single-bit flips detected\n", failed,
                  n);
    free(in_page);
    tb_buf_free(b);
    free(x);
    DONE();
}

/* ---- the real capture ------------------------------------------------------------- */


#define CAPTURE "tests/data/captures/qemu-7.2-pc-precopy/main.mig"
#define REFSTATE "tests/data/captures/qemu-7.2-pc-precopy/reference-state.json"
#define CAPTURE_EOF 1927788u
#define CAPTURE_LEN 2032344u

/* A minimal JSON walk: every object member as (depth, path, value), where
 * path joins the keys from the root with '/', and value is the member's
 * string or scalar text (NULL for arrays and objects).  Enough for
 * reference-state.json and the trailer; not a validating parser. */
typedef struct jent {
    int depth;
    char *path;
    char *key;
    char *value;
} jent;

typedef struct jlist {
    jent *e;
    size_t n, cap;
} jlist;

static void jlist_free(jlist *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->e[i].path);
        free(l->e[i].key);
        free(l->e[i].value);
    }
    free(l->e);
    memset(l, 0, sizeof *l);
}

static char *jstring(const char *s, size_t *i)
{
    /* s[*i] is the opening quote */
    tb_buf o;
    tb_buf_init(&o);
    size_t k = *i + 1;
    while (s[k] && s[k] != '"') {
        if (s[k] == '\\' && s[k + 1]) {
            k++;
            char c = s[k] == 'n' ? '\n' : s[k] == 't' ? '\t' : s[k];
            tb_put_u8(&o, (uint8_t)c);
        } else {
            tb_put_u8(&o, (uint8_t)s[k]);
        }
        k++;
    }
    tb_put_u8(&o, 0);
    *i = s[k] ? k + 1 : k;
    return (char *)o.p;
}

static void jscan(const char *s, jlist *out)
{
    memset(out, 0, sizeof *out);
    char *stack[64] = {0}; /* key per depth */
    int depth = 0;
    char *pending = NULL; /* key waiting for its value */
    size_t i = 0;
    while (s[i]) {
        char c = s[i];
        if (c == '{' || c == '[') {
            if (pending && depth < 64) {
                free(stack[depth]);
                stack[depth] = pending;
                pending = NULL;
            }
            depth++;
            i++;
            continue;
        }
        if (c == '}' || c == ']') {
            depth--;
            if (depth >= 0 && depth < 64) {
                free(stack[depth]);
                stack[depth] = NULL;
            }
            i++;
            continue;
        }
        if (c == '"' || c == '-' || (c >= '0' && c <= '9') || c == 't' ||
            c == 'f' || c == 'n') {
            char *str;
            int is_string = c == '"';
            if (is_string) {
                str = jstring(s, &i);
            } else {
                size_t k = i;
                while (s[k] && s[k] != ',' && s[k] != '}' && s[k] != ']' &&
                       s[k] != ' ' && s[k] != '\n')
                    k++;
                str = xmalloc(k - i + 1);
                memcpy(str, s + i, k - i);
                str[k - i] = 0;
                i = k;
            }
            size_t k = i;
            while (s[k] == ' ' || s[k] == '\n' || s[k] == '\r' || s[k] == '\t')
                k++;
            if (is_string && s[k] == ':') {
                free(pending);
                pending = str;
                i = k + 1;
                /* record the member now; the value fills in if scalar */
                if (out->n == out->cap) {
                    out->cap = out->cap ? 2 * out->cap : 256;
                    out->e = realloc(out->e, out->cap * sizeof *out->e);
                }
                tb_buf path;
                tb_buf_init(&path);
                for (int d = 1; d < depth && d < 64; d++) {
                    if (stack[d]) {
                        tb_put(&path, stack[d], strlen(stack[d]));
                        tb_put_u8(&path, '/');
                    }
                }
                tb_put(&path, str, strlen(str));
                tb_put_u8(&path, 0);
                jent *e = &out->e[out->n++];
                e->depth = depth;
                e->path = (char *)path.p;
                e->key = xstrdup(str);
                e->value = NULL;
                continue;
            }
            if (pending) { /* a scalar member value */
                out->e[out->n - 1].value = str;
                free(pending);
                pending = NULL;
            } else {
                free(str);
            }
            continue;
        }
        i++;
    }
    free(pending);
    for (int d = 0; d < 64; d++)
        free(stack[d]);
}

static const char *jget(const jlist *l, const char *path)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->e[i].path, path) == 0)
            return l->e[i].value;
    return NULL;
}

static void test_capture_decode(void **state)
{
    (void)state;
    BEGIN();
    size_t len = 0, jlen = 0;
    uint8_t *p = tb_load_source(CAPTURE, &len);
    char *ref = (char *)tb_load_source(REFSTATE, &jlen);
    assert_non_null(p);
    assert_non_null(ref);
    SOFT(len == CAPTURE_LEN, "capture is %zu bytes", len);
    qres r;
    qrun run = {0};
    qread(p, len, &run, &r);
    SOFT(r.rc == 0, "the capture fails: %s at %llu: %s",
         ms_error_name(r.err.code), (unsigned long long)r.err.offset,
         r.err.detail);
    SOFT(r.offset_regress == 0, "%zu event offsets go backwards",
         r.offset_regress);

    /* header, configuration, EOF, trailer */
    const qev *c = qfind(&r, MS_EV_CONFIGURATION, 0);
    SOFT(c && strcmp(c->name, "pc-i440fx-7.2") == 0 && c->ev.offset == 8 &&
             c->ev.length == 18,
         "configuration: %s", c ? c->desc : "missing");
    const qev *eof = qfind(&r, MS_EV_QEMU_EOF, 0);
    SOFT(eof && eof->ev.offset == CAPTURE_EOF && qcount(&r, MS_EV_QEMU_EOF) == 1,
         "EOF at %llu", eof ? (unsigned long long)eof->ev.offset : 0ull);
    size_t joff = 0, jl = 0;
    SOFT(ms_qemu_find_vmdesc(p, len, 1 << 20, &joff, &jl) == 1 &&
             joff == CAPTURE_EOF + 6 && jl == len - joff,
         "ms_qemu_find_vmdesc: %zu+%zu", joff, jl);
    const qev *vd = qfind(&r, MS_EV_VMDESC, 0);
    SOFT(vd && vd->ev.offset == CAPTURE_EOF + 1 &&
             vd->ev.u.vmdesc.len == len - CAPTURE_EOF - 6 &&
             vd->data_hash == tb_hash(p + CAPTURE_EOF + 6,
                                      len - CAPTURE_EOF - 6),
         "vmdesc: %s", vd ? vd->desc : "missing");

    /* the section list equals reference-state.json's keys, in order */
    jlist ref_keys;
    jscan(ref, &ref_keys);
    size_t nkeys = 0, k = 0;
    for (size_t i = 0; i < ref_keys.n; i++)
        nkeys += ref_keys.e[i].depth == 1;
    SOFT(nkeys == 35, "reference-state.json has %zu sections", nkeys);
    size_t nsec = 0;
    for (size_t i = 0; i < r.n; i++) {
        const qev *e = &r.ev[i];
        if (e->ev.kind != MS_EV_SECTION ||
            (e->ev.u.section.type != MS_QSEC_START &&
             e->ev.u.section.type != MS_QSEC_FULL))
            continue;
        char key[300];
        snprintf(key, sizeof key, "%s (%u)", e->name,
                 e->ev.u.section.section_id);
        while (k < ref_keys.n && ref_keys.e[k].depth != 1)
            k++;
        const char *want = k < ref_keys.n ? ref_keys.e[k].key : "(none)";
        SOFT(strcmp(key, want) == 0, "section %zu: \"%s\", reference \"%s\"",
             nsec, key, want);
        k++;
        nsec++;
    }
    SOFT(nsec == nkeys, "%zu START/FULL sections, %zu reference keys", nsec,
         nkeys);
    /* FULL sections' (idstr, instance_id) equal the trailer's devices */
    jlist dev;
    char *trailer = xmalloc(len - CAPTURE_EOF - 6 + 1);
    memcpy(trailer, p + CAPTURE_EOF + 6, len - CAPTURE_EOF - 6);
    trailer[len - CAPTURE_EOF - 6] = 0;
    jscan(trailer, &dev);
    size_t di = 0, nfull = 0;
    for (size_t i = 0; i < r.n; i++) {
        const qev *e = &r.ev[i];
        if (e->ev.kind != MS_EV_SECTION ||
            e->ev.u.section.type != MS_QSEC_FULL)
            continue;
        nfull++;
        while (di < dev.n &&
               !(dev.e[di].depth == 3 && strcmp(dev.e[di].key, "name") == 0))
            di++;
        const char *name = di < dev.n ? dev.e[di].value : NULL;
        const char *inst = NULL;
        for (size_t j = di + 1; j < dev.n && dev.e[j].depth >= 3; j++)
            if (dev.e[j].depth == 3 &&
                strcmp(dev.e[j].key, "instance_id") == 0) {
                inst = dev.e[j].value;
                break;
            }
        SOFT(name && inst && strcmp(name, e->name) == 0 &&
                 strtoul(inst, NULL, 10) == e->ev.u.section.instance_id,
             "FULL %s instance %u: trailer has %s instance %s", e->name,
             e->ev.u.section.instance_id, name ? name : "-",
             inst ? inst : "-");
        di++;
    }
    SOFT(nfull == 34, "%zu FULL sections", nfull);
    jlist_free(&dev);
    free(trailer);

    /* page counts from the capture's README: 371 normal, 16,281 zero */
    SOFT(r.page_count[MS_RAM_PAGE] == 371, "%zu normal pages",
         r.page_count[MS_RAM_PAGE]);
    SOFT(r.page_count[MS_RAM_ZERO] == 16281, "%zu zero pages",
         r.page_count[MS_RAM_ZERO]);
    SOFT(qcount(&r, MS_EV_RAM_PAGE) == 371 + 16281, "%zu page records",
         qcount(&r, MS_EV_RAM_PAGE));
    /* RAM block list: names and lengths from "ram (2)"/"section sizes" */
    size_t nb = 0;
    uint64_t total = 0;
    for (size_t i = 0; i < ref_keys.n; i++) {
        const jent *j = &ref_keys.e[i];
        if (strncmp(j->path, "ram (2)/section sizes/", 22) != 0 || !j->value)
            continue;
        const qev *b = qfind(&r, MS_EV_RAM_BLOCK, nb);
        uint64_t want = strtoull(j->value, NULL, 16);
        total += want;
        SOFT(b && strcmp(b->name, j->key) == 0 &&
                 b->ev.u.ram.used_length == want &&
                 b->ev.u.ram.block_index == nb,
             "block %zu: %s, reference %s %s", nb, b ? b->desc : "missing",
             j->key, j->value);
        nb++;
    }
    SOFT(nb == 8 && qcount(&r, MS_EV_RAM_BLOCK) == 8, "%zu/%zu blocks", nb,
         qcount(&r, MS_EV_RAM_BLOCK));
    const qev *b0 = qfind(&r, MS_EV_RAM_BLOCK, 0);
    SOFT(b0 && b0->ev.u.ram.total == total && total == 0x4102000ull,
         "MEM_SIZE total 0x%llx (sum 0x%llx)",
         b0 ? (unsigned long long)b0->ev.u.ram.total : 0ull,
         (unsigned long long)total);
    /* pages lie inside their blocks, page records are page sized */
    size_t bad = 0;
    for (size_t i = 0; i < r.n; i++) {
        const qev *e = &r.ev[i];
        if (e->ev.kind != MS_EV_RAM_PAGE)
            continue;
        if (e->ev.u.ram.offset + PAGE > e->ev.u.ram.used_length ||
            (e->ev.u.ram.record == MS_RAM_PAGE && e->ev.u.ram.size != PAGE))
            bad++;
    }
    SOFT(bad == 0, "%zu page records outside their blocks", bad);
    /* every section has its footer */
    SOFT(qcount(&r, MS_EV_SECTION) == qcount(&r, MS_EV_SECTION_FOOTER) &&
             qcount(&r, MS_EV_SECTION) == 37,
         "%zu sections, %zu footers", qcount(&r, MS_EV_SECTION),
         qcount(&r, MS_EV_SECTION_FOOTER));
    jlist_free(&ref_keys);
    qres_free(&r);
    free(p);
    free(ref);
    DONE();
}

static void test_capture_slicing(void **state)
{
    (void)state;
    BEGIN();
    size_t len = 0;
    uint8_t *p = tb_load_source(CAPTURE, &len);
    assert_non_null(p);
    qres a, b;
    qrun whole = {0};
    qread(p, len, &whole, &a);
    SOFT(a.rc == 0, "one slice fails: %s", a.err.detail);
    char why[1024];
    qrun bytes = {.slice = 1};
    qread(p, len, &bytes, &b);
    SOFT(qres_same(&a, &b, why, sizeof why), "byte by byte: %s", why);
    qres_free(&b);
    static const size_t max_slices[] = {17, 4099, 70000};
    for (size_t i = 0; i < 3; i++) {
        qrun rnd = {.seed = 1000 + i, .max_slice = max_slices[i]};
        qread(p, len, &rnd, &b);
        SOFT(qres_same(&a, &b, why, sizeof why), "random slices 1..%zu: %s",
             max_slices[i], why);
        qres_free(&b);
    }
    /* the caller's buffer itself, one slice (pages are views of it) */
    qrun stable = {.no_copy = 1};
    qread(p, len, &stable, &b);
    SOFT(qres_same(&a, &b, why, sizeof why), "no copy: %s", why);
    qres_free(&b);
    qres_free(&a);
    free(p);
    DONE();
}

static void test_capture_truncation(void **state)
{
    (void)state;
    BEGIN();
    size_t len = 0;
    uint8_t *p = tb_load_source(CAPTURE, &len);
    assert_non_null(p);
    size_t bad = 0, n = 0;
    for (size_t i = 0; i < 2000 + 600; i++) {
        size_t cut;
        if (i < 300)
            cut = i;
        else if (i < 600)
            cut = len - 600 + i; /* the last 300 offsets */
        else
            cut = (size_t)((uint64_t)len * (i - 600) / 2000);
        qrun run = {.no_copy = 1, .light = 1};
        qres r;
        qread(p, cut, &run, &r);
        n++;
        int ok;
        if (cut == CAPTURE_EOF + 1)
            ok = r.rc == 0;
        else
            ok = r.rc == -1 && (r.err.code == MS_ERR_TRUNCATED ||
                                r.err.code == MS_ERR_MISSING_END) &&
                 r.err.offset <= cut;
        if (!ok && bad++ < 8)
            SOFT(0, "capture cut at %zu: %s at %llu: %s", cut,
                 r.rc ? ms_error_name(r.err.code) : "success",
                 (unsigned long long)r.err.offset, r.err.detail);
        qres_free(&r);
    }
    /* right after EOF: a complete stream without its trailer */
    qrun run = {.no_copy = 1, .light = 1};
    qres r;
    qread(p, CAPTURE_EOF + 1, &run, &r);
    SOFT(r.rc == 0, "capture without its trailer: %s", r.err.detail);
    qres_free(&r);
    SOFT(bad == 0, "%zu of %zu cuts misbehave", bad, n);
    free(p);
    DONE();
}

static void test_capture_vmdesc(void **state)
{
    (void)state;
    BEGIN();
    size_t len = 0, jlen = 0;
    uint8_t *p = tb_load_source(CAPTURE, &len);
    char *ref = (char *)tb_load_source(REFSTATE, &jlen);
    assert_non_null(p);
    assert_non_null(ref);
    size_t joff = 0, jl = 0;
    assert_int_equal(ms_qemu_find_vmdesc(p, len, len, &joff, &jl), 1);
    ms_options o;
    ms_options_init(&o);
    o.field_events = 1;
    qres a;
    qrun run = {.opt = &o, .vmdesc = (const char *)p + joff, .vmdesc_len = jl};
    qread(p, len, &run, &a);
    SOFT(a.rc == 0, "with the trailer given first: %s at %llu: %s",
         ms_error_name(a.err.code), (unsigned long long)a.err.offset,
         a.err.detail);
    if (!have_vmdesc_parser()) {
        print_message("  note: JSON trailer parser is a stub; VMState "
                      "decoding checks skipped\n");
        qres_free(&a);
        free(p);
        free(ref);
        DONE();
        return;
    }
    SOFT(qcount(&a, MS_EV_UNDECODED) == 0, "%zu sections undecoded",
         qcount(&a, MS_EV_UNDECODED));
    for (size_t i = 0, shown = 0; i < a.n && shown < 5; i++)
        if (a.ev[i].ev.kind == MS_EV_UNDECODED) {
            print_message("    undecoded: %s\n", a.ev[i].desc);
            shown++;
        }
    SOFT(qcount(&a, MS_EV_FIELD) > 100, "%zu field events",
         qcount(&a, MS_EV_FIELD));
    SOFT(qcount(&a, MS_EV_SECTION) == qcount(&a, MS_EV_SECTION_FOOTER),
         "sections %zu footers %zu", qcount(&a, MS_EV_SECTION),
         qcount(&a, MS_EV_SECTION_FOOTER));
    /* the same events byte by byte */
    qres b;
    char why[1024];
    qrun bytes = run;
    bytes.slice = 1;
    qread(p, len, &bytes, &b);
    SOFT(qres_same(&a, &b, why, sizeof why), "byte by byte: %s", why);
    qres_free(&b);
    /* top-level scalar fields match analyze-migration.py's values */
    jlist refl;
    jscan(ref, &refl);
    size_t matched = 0, mismatched = 0;
    ms_reader *rd = ms_reader_create(&o);
    ms_reader_set_vmdesc(rd, (const char *)p + joff, jl);
    ms_reader_input(rd, p, len);
    ms_event ev;
    char cur[300] = "";
    while (ms_reader_next(rd, &ev) == MS_NEXT_EVENT) {
        if (ev.kind == MS_EV_SECTION)
            snprintf(cur, sizeof cur, "%s (%u)", ev.u.section.idstr,
                     ev.u.section.section_id);
        if (ev.kind != MS_EV_FIELD || !ev.u.field.path || !ev.u.field.data)
            continue;
        char path[700];
        snprintf(path, sizeof path, "%s/%s", cur, ev.u.field.path);
        const char *want = jget(&refl, path);
        if (!want)
            continue;
        char small[256];
        char *got = small;
        size_t need = ms_field_format(&ev.u.field, small, sizeof small);
        if (need >= sizeof small) {
            got = xmalloc(need + 1);
            ms_field_format(&ev.u.field, got, need + 1);
        }
        if (strcmp(got, want) == 0) {
            matched++;
        } else if (mismatched++ < 5) {
            print_message("    %s: \"%.60s\", reference \"%.60s\"\n", path,
                          got, want);
        }
        if (got != small)
            free(got);
    }
    ms_reader_free(rd);
    SOFT(mismatched == 0 && matched >= 3,
         "%zu scalar fields match reference-state.json, %zu differ", matched,
         mismatched);
    jlist_free(&refl);
    qres_free(&a);
    free(p);
    free(ref);
    DONE();
}

/* A hand-built FULL section decoded through a trailer given first. */
static void test_vmstate_handbuilt(void **state)
{
    (void)state;
    BEGIN();
    if (!have_vmdesc_parser()) {
        print_message("  note: JSON trailer parser is a stub; skipped\n");
        return;
    }
    static const char json[] =
        "{\"page_size\": 4096, \"devices\": [{\"name\": \"timer\", "
        "\"instance_id\": 0, \"vmsd_name\": \"timer\", \"version\": 2, "
        "\"fields\": [{\"name\": \"cpu_ticks_offset\", \"type\": \"int64\", "
        "\"size\": 8}, {\"name\": \"unused\", \"type\": \"unused_buffer\", "
        "\"size\": 8}, {\"name\": \"cpu_clock_offset\", \"type\": \"int64\", "
        "\"size\": 8}], \"subsections\": [{\"vmsd_name\": \"timer/extra\", "
        "\"version\": 1, \"fields\": [{\"name\": \"x\", \"type\": "
        "\"uint32\", \"size\": 4}]}]}]}";
    tb_buf b;
    tb_buf_init(&b);
    tq_begin(&b);
    tq_section_start(&b, TQ_FULL, 0, "timer", 0, 2);
    tb_put_be64(&b, 0x1d36891f2ull);
    tb_put_zeros(&b, 8);
    tb_put_be64(&b, 0xb40a33f2ull);
    size_t sub = tq_subsection(&b, "timer/extra", 1);
    tb_put_be32(&b, 42);
    tq_footer(&b, 0);
    size_t eof = tq_eof(&b) + 1;
    tq_vmdesc(&b, json, strlen(json));
    ms_options o;
    ms_options_init(&o);
    o.field_events = 1;
    qres r;
    check_valid_("FULL decoded through the trailer", b.p, b.len, &o, json,
                 strlen(json), eof, &r, __FILE__, __LINE__);
    SOFT(qcount(&r, MS_EV_UNDECODED) == 0, "undecoded");
    SOFT(qcount(&r, MS_EV_FIELD) == 4, "%zu fields",
         qcount(&r, MS_EV_FIELD));
    const qev *f0 = qfind(&r, MS_EV_FIELD, 0);
    SOFT(f0 && strcmp(f0->name, "cpu_ticks_offset") == 0 &&
             f0->ev.u.field.size == 8,
         "first field: %s", f0 ? f0->desc : "missing");
    const qev *s = qfind(&r, MS_EV_SUBSECTION, 0);
    SOFT(s && s->ev.offset == sub && strcmp(s->name, "timer/extra") == 0 &&
             s->ev.u.field.version == 1,
         "subsection: %s", s ? s->desc : "missing");
    qres_free(&r);
    /* a subsection the description does not have */
    b.p[sub + 2 + 6] = 'X'; /* "timer/eXtra" */
    qrun run = {.opt = &o, .vmdesc = json, .vmdesc_len = strlen(json)};
    qread(b.p, b.len, &run, &r);
    SOFT(r.rc == -1 && r.err.code == MS_ERR_VMSTATE && r.err.offset >= sub &&
             r.err.offset < sub + 17,
         "unknown subsection: %s at %llu",
         r.rc ? ms_error_name(r.err.code) : "success",
         (unsigned long long)r.err.offset);
    qres_free(&r);
    tb_buf_free(&b);
    DONE();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_minimal),
        cmocka_unit_test(test_config_subsections),
        cmocka_unit_test(test_block_list_layouts),
        cmocka_unit_test(test_rich_stream),
        cmocka_unit_test(test_commands_valid),
        cmocka_unit_test(test_vfio_phases),
        cmocka_unit_test(test_packaged),
        cmocka_unit_test(test_libvirt),
        cmocka_unit_test(test_find_vmdesc),
        cmocka_unit_test(test_reject_header),
        cmocka_unit_test(test_reject_sections),
        cmocka_unit_test(test_reject_commands),
        cmocka_unit_test(test_reject_ram),
        cmocka_unit_test(test_reject_vfio),
        cmocka_unit_test(test_reject_after_eof),
        cmocka_unit_test(test_reject_life_cycle),
        cmocka_unit_test(test_colo_checkpoints),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_sticky),
        cmocka_unit_test(test_bit_flips),
        cmocka_unit_test(test_capture_decode),
        cmocka_unit_test(test_capture_slicing),
        cmocka_unit_test(test_capture_truncation),
        cmocka_unit_test(test_capture_vmdesc),
        cmocka_unit_test(test_vmstate_handbuilt),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
