/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* The HiSilicon, QAT and Xe payload decoders (MS_FORMAT_PAYLOAD), checked
 * against the driver facts of the vfio-device-streams reference (sections
 * 4, 5 and 6), not against the decoders' code:
 *
 *   - hand-built streams for each driver (V1 and V2 acc_vf_data, 40 and
 *     176 bytes; a QAT buffer with the kernel's section tree; an Xe stream
 *     with every packet type and known, unknown and long KLVs) decode to
 *     exactly the records, fields, data and images the spec lists;
 *   - one slice, one byte at a time and random slices give identical
 *     events (DATA views joined), also with the driver detected;
 *   - every cut of a valid stream fails (truncated / missing end) at the
 *     cut, except hisi's 40-byte "nothing to load" stream;
 *   - every driver rule broken gives its error code at the exact offset,
 *     the same however the input is sliced;
 *   - carrier phases (payload_final_offset) split the images as the
 *     drivers' PRE_COPY / STOP_COPY do, and contradictions are errors;
 *   - Xe payload bytes are never buffered: views of the input, and the
 *     reader's stash stays at its minimum through a large VRAM packet.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "reader_impl.h"
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
    size_t n = strlen(s) + 1;
    char *d = xmalloc(n);
    memcpy(d, s, n);
    return d;
}

/* ---- running a stream: events as text ------------------------------------
 * Each event becomes one line; consecutive DATA views that continue each
 * other (stream offset, image offset, phase and packet) are joined into one
 * "data" line with the hash of their bytes, so any slicing compares equal. */
typedef struct res {
    int rc;                /* 0 clean finish, -1 error */
    ms_error_info err;
    char **ev;
    size_t n, cap;
    size_t data_events;
    int all_zero_copy;     /* every DATA event was a view of the input */
    size_t max_stash;      /* largest stash capacity seen */
    uint64_t last_off;     /* event offsets never decrease */
    /* the DATA run being joined */
    int run_open;
    uint64_t run_off, run_len, run_io;
    uint32_t run_seq;
    ms_phase run_phase;
    uint32_t run_pkt;
    tb_buf run_bytes;
} res;

static void res_init(res *r)
{
    memset(r, 0, sizeof *r);
    r->all_zero_copy = 1;
    tb_buf_init(&r->run_bytes);
}

static void res_free(res *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->ev[i]);
    free(r->ev);
    tb_buf_free(&r->run_bytes);
    memset(r, 0, sizeof *r);
}

static void add_line(res *r, const char *s)
{
    if (r->n == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 64;
        r->ev = realloc(r->ev, r->cap * sizeof *r->ev);
        if (!r->ev)
            abort();
    }
    r->ev[r->n++] = xstrdup(s);
}

static const char *ph(ms_phase p) { return ms_phase_name(p); }

/* Bytes as hex (up to 16) or as their hash. */
static void bytes_text(char *o, size_t cap, const uint8_t *p, size_t n)
{
    if (!p) {
        snprintf(o, cap, "-");
        return;
    }
    if (n > 16) {
        snprintf(o, cap, "h%016llx", (unsigned long long)tb_hash(p, n));
        return;
    }
    size_t at = 0;
    o[0] = 0;
    for (size_t i = 0; i < n && at + 3 < cap; i++)
        at += (size_t)snprintf(o + at, cap - at, "%02x", p[i]);
}

static void data_line(char *o, size_t cap, uint64_t off, uint64_t len,
                      uint32_t seq, uint64_t io, ms_phase phase, uint32_t pkt,
                      uint64_t hash)
{
    snprintf(o, cap, "data off=%llu len=%llu seq=%u io=%llu phase=%s pkt=%u "
             "hash=%016llx",
             (unsigned long long)off, (unsigned long long)len, seq,
             (unsigned long long)io, ph(phase), pkt,
             (unsigned long long)hash);
}

static void flush_run(res *r)
{
    if (!r->run_open)
        return;
    char line[256];
    data_line(line, sizeof line, r->run_off, r->run_len, r->run_seq,
              r->run_io, r->run_phase, r->run_pkt,
              tb_hash(r->run_bytes.p, r->run_bytes.len));
    add_line(r, line);
    r->run_open = 0;
    tb_buf_reset(&r->run_bytes);
}

static void collect(res *r, const ms_event *ev)
{
    if (ev->kind == MS_EV_STREAM_HEADER)
        return; /* every payload stream starts with it */
    char line[512], bt[64];
    SOFT(ev->offset >= r->last_off, "%s event at %llu after one at %llu",
         ms_event_kind_name(ev->kind), (unsigned long long)ev->offset,
         (unsigned long long)r->last_off);
    r->last_off = ev->offset;
    if (ev->kind == MS_EV_DATA) {
        const ms_data_info *d = &ev->u.data;
        r->data_events++;
        if (!d->zero_copy)
            r->all_zero_copy = 0;
        if (!(r->run_open && d->stream_offset == r->run_off + r->run_len &&
              d->image_offset == r->run_io + r->run_len &&
              d->seq == r->run_seq && d->phase == r->run_phase &&
              d->packet_idx == r->run_pkt)) {
            flush_run(r);
            r->run_open = 1;
            r->run_off = d->stream_offset;
            r->run_len = 0;
            r->run_io = d->image_offset;
            r->run_seq = d->seq;
            r->run_phase = d->phase;
            r->run_pkt = d->packet_idx;
        }
        r->run_len += d->size;
        tb_put(&r->run_bytes, d->data, d->size);
        SOFT(ev->offset == d->stream_offset && ev->length == d->size,
             "DATA event offset/length %llu/%llu vs view %llu/%zu",
             (unsigned long long)ev->offset, (unsigned long long)ev->length,
             (unsigned long long)d->stream_offset, d->size);
        return;
    }
    flush_run(r);
    switch (ev->kind) {
    case MS_EV_PAYLOAD_RECORD: {
        const ms_payload_record *p = &ev->u.precord;
        snprintf(line, sizeof line,
                 "record %s off=%llu len=%llu kind=%u tag=%u flags=%u "
                 "size=%llu value=%llu phase=%s",
                 p->name, (unsigned long long)ev->offset,
                 (unsigned long long)ev->length, p->payload_kind, p->tag,
                 p->flags, (unsigned long long)p->size,
                 (unsigned long long)p->value, ph(p->phase));
        break;
    }
    case MS_EV_PAYLOAD_FIELD: {
        const ms_payload_field *f = &ev->u.pfield;
        bytes_text(bt, sizeof bt, f->data, f->size);
        snprintf(line, sizeof line,
                 "field %s off=%llu len=%llu value=%llu size=%zu index=%u "
                 "data=%s",
                 f->name, (unsigned long long)ev->offset,
                 (unsigned long long)ev->length,
                 (unsigned long long)f->value, f->size, f->index, bt);
        break;
    }
    case MS_EV_PAYLOAD_IMAGE: {
        const ms_image_info *im = &ev->u.image;
        snprintf(line, sizeof line,
                 "image seq=%u %s flags=%u off=%llu len=%llu length=%llu "
                 "units=%llu hash=%016llx",
                 im->seq, ph(im->phase), im->flags,
                 (unsigned long long)ev->offset,
                 (unsigned long long)ev->length,
                 (unsigned long long)im->length,
                 (unsigned long long)im->unit_count,
                 (unsigned long long)im->hash);
        break;
    }
    default:
        snprintf(line, sizeof line, "other %s off=%llu len=%llu",
                 ms_event_kind_name(ev->kind),
                 (unsigned long long)ev->offset,
                 (unsigned long long)ev->length);
        break;
    }
    add_line(r, line);
}

enum { WHOLE = 0, BYTEWISE = 1, RANDOM = 2 };

/* Feed p[0..len) in slices (each a fresh heap copy, poisoned and freed once
 * consumed) and collect the events.  Returns res->rc. */
static int run(const uint8_t *p, size_t len, const ms_options *opt, int mode,
               uint64_t seed, res *out)
{
    res_init(out);
    ms_reader *rd = ms_reader_create(opt);
    assert_non_null(rd);
    uint64_t rs = seed ? seed : 1;
    size_t at = 0;
    int failed = 0;
    do {
        size_t n = len - at;
        if (mode == BYTEWISE)
            n = MS_MIN(n, 1);
        else if (mode == RANDOM) {
            size_t k = 1 + (size_t)(tb_rand(&rs) % 97);
            n = MS_MIN(n, k);
        }
        uint8_t *slice = xmalloc(n);
        if (n)
            memcpy(slice, p + at, n);
        if (ms_reader_input(rd, slice, n) < 0)
            failed = 1;
        ms_event ev;
        int rc = MS_NEXT_INPUT;
        while (!failed && (rc = ms_reader_next(rd, &ev)) == MS_NEXT_EVENT)
            collect(out, &ev);
        if (!failed && rc == MS_NEXT_ERROR)
            failed = 1;
        if (rd->stash_cap > out->max_stash)
            out->max_stash = rd->stash_cap;
        memset(slice, 0xA5, n);
        free(slice);
        at += n;
    } while (!failed && at < len);
    flush_run(out);
    if (!failed && ms_reader_finish(rd) < 0)
        failed = 1;
    out->rc = failed ? -1 : 0;
    out->err = *ms_reader_error(rd);
    ms_reader_free(rd);
    return out->rc;
}

static int same_events(const res *a, const res *b, char *why, size_t cap)
{
    if (a->rc != b->rc || a->err.code != b->err.code ||
        a->err.offset != b->err.offset) {
        snprintf(why, cap, "verdict %d %s@%llu vs %d %s@%llu", a->rc,
                 ms_error_name(a->err.code),
                 (unsigned long long)a->err.offset, b->rc,
                 ms_error_name(b->err.code),
                 (unsigned long long)b->err.offset);
        return 0;
    }
    size_t n = MS_MIN(a->n, b->n);
    for (size_t i = 0; i < n; i++)
        if (strcmp(a->ev[i], b->ev[i])) {
            snprintf(why, cap, "event %zu: '%s' vs '%s'", i, a->ev[i],
                     b->ev[i]);
            return 0;
        }
    if (a->n != b->n) {
        snprintf(why, cap, "%zu vs %zu events", a->n, b->n);
        return 0;
    }
    return 1;
}

static void print_events(const res *r)
{
    for (size_t i = 0; i < r->n; i++)
        print_message("    [%zu] %s\n", i, r->ev[i]);
}

static void opts(ms_options *o, int kind)
{
    ms_options_init(o);
    o->format = MS_FORMAT_PAYLOAD;
    o->payload_kind = kind;
}

/* A valid stream: the events are `want` (n lines) in one slice, and the
 * same byte by byte and in random slices (and with the kind detected when
 * detect is set). */
static void check_valid_(const char *label, const uint8_t *p, size_t len,
                         const ms_options *opt, const char *const *want,
                         size_t n, int detect)
{
    res a, b;
    char why[1200];
    run(p, len, opt, WHOLE, 0, &a);
    SOFT(a.rc == 0, "%s: rejected: %s at %llu: %s", label,
         ms_error_name(a.err.code), (unsigned long long)a.err.offset,
         a.err.detail);
    if (want) {
        int ok = a.n == n;
        for (size_t i = 0; ok && i < n; i++)
            if (strcmp(a.ev[i], want[i])) {
                SOFT(0, "%s: event %zu\n      got  %s\n      want %s", label,
                     i, a.ev[i], want[i]);
                ok = 0;
            }
        if (!ok) {
            SOFT(a.n == n, "%s: %zu events, want %zu", label, a.n, n);
            print_events(&a);
        }
    }
    run(p, len, opt, BYTEWISE, 0, &b);
    SOFT(same_events(&a, &b, why, sizeof why), "%s: bytewise: %s", label,
         why);
    res_free(&b);
    for (uint64_t seed = 1; seed <= 6; seed++) {
        run(p, len, opt, RANDOM, seed * 7919, &b);
        SOFT(same_events(&a, &b, why, sizeof why), "%s: random %llu: %s",
             label, (unsigned long long)seed, why);
        res_free(&b);
    }
    if (detect) {
        ms_options o = *opt;
        o.payload_kind = -1;
        for (int mode = WHOLE; mode <= RANDOM; mode++) {
            run(p, len, &o, mode, 99, &b);
            SOFT(same_events(&a, &b, why, sizeof why),
                 "%s: detected, mode %d: %s", label, mode, why);
            res_free(&b);
        }
    }
    res_free(&a);
}
#define check_valid(label, p, len, opt, want, detect)                         \
    check_valid_(label, p, len, opt, want, sizeof(want) / sizeof(want[0]),   \
                 detect)

/* A bad stream: error `code` at `offset`, the same in every slicing. */
static void expect_err_(const char *label, int line, const uint8_t *p,
                        size_t len, const ms_options *opt, ms_error code,
                        uint64_t offset)
{
    for (int mode = WHOLE; mode <= RANDOM; mode++) {
        res a;
        run(p, len, opt, mode, 4242, &a);
        SOFT(a.rc == -1 && a.err.code == code && a.err.offset == offset,
             "line %d %s (mode %d): got %s at %llu (%s), want %s at %llu",
             line, label, mode, a.rc ? ms_error_name(a.err.code) : "success",
             (unsigned long long)a.err.offset, a.err.detail,
             ms_error_name(code), (unsigned long long)offset);
        res_free(&a);
    }
}
#define expect_err(label, p, len, opt, code, offset)                          \
    expect_err_(label, __LINE__, p, len, opt, code, offset)

/* Expected lines, built from the spec's field lists. */
static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...)
{
    char b[512];
    va_list ap;
    va_start(ap, f);
    vsnprintf(b, sizeof b, f, ap);
    va_end(ap);
    return xstrdup(b);
}

typedef struct lines {
    char *l[512];
    size_t n;
} lines;

static void lines_free(lines *ls)
{
    for (size_t i = 0; i < ls->n; i++)
        free(ls->l[i]);
    ls->n = 0;
}

static void l_add(lines *ls, char *s)
{
    assert_true(ls->n < 512);
    ls->l[ls->n++] = s;
}

static void l_record(lines *ls, const char *name, uint64_t off, uint64_t len,
                     unsigned kind, unsigned tag, unsigned flags,
                     uint64_t size, uint64_t value, ms_phase phase)
{
    l_add(ls, fmt("record %s off=%llu len=%llu kind=%u tag=%u flags=%u "
                  "size=%llu value=%llu phase=%s",
                  name, (unsigned long long)off, (unsigned long long)len,
                  kind, tag, flags, (unsigned long long)size,
                  (unsigned long long)value, ph(phase)));
}

static void l_field(lines *ls, const char *name, uint64_t off, uint64_t len,
                    uint64_t value, const uint8_t *data, size_t size,
                    unsigned index)
{
    char bt[64];
    bytes_text(bt, sizeof bt, data, size);
    l_add(ls, fmt("field %s off=%llu len=%llu value=%llu size=%zu index=%u "
                  "data=%s",
                  name, (unsigned long long)off, (unsigned long long)len,
                  (unsigned long long)value, size, index, bt));
}

static void l_data(lines *ls, const uint8_t *stream, uint64_t off,
                   uint64_t len, uint32_t seq, uint64_t io, ms_phase phase,
                   uint32_t pkt)
{
    char b[256];
    data_line(b, sizeof b, off, len, seq, io, phase, pkt,
              tb_hash(stream + off, (size_t)len));
    l_add(ls, xstrdup(b));
}

/* The image [off, off+len): its event comes after its last byte, length 0;
 * FULL when it starts the stream. */
static void l_image(lines *ls, const uint8_t *stream, uint32_t seq,
                    ms_phase phase, uint64_t off, uint64_t len,
                    uint64_t units)
{
    l_add(ls, fmt("image seq=%u %s flags=%u off=%llu len=0 length=%llu "
                  "units=%llu hash=%016llx",
                  seq, ph(phase), off == 0 ? MS_IMAGE_FULL : 0u,
                  (unsigned long long)(off + len), (unsigned long long)len,
                  (unsigned long long)units,
                  (unsigned long long)tb_hash(stream + off, (size_t)len)));
}

static void check_lines(const char *label, const uint8_t *p, size_t len,
                        const ms_options *opt, lines *ls, int detect)
{
    check_valid_(label, p, len, opt, (const char *const *)ls->l, ls->n,
                 detect);
    lines_free(ls);
}

/* Every cut of a valid stream [0, len) fails at the cut with `code` (cuts
 * listed in `ok` are clean ends; `boundary` cuts give `bcode`). */
static void check_cuts(const char *label, const uint8_t *p, size_t len,
                       const ms_options *opt, ms_error code,
                       const size_t *ok, size_t n_ok, const size_t *boundary,
                       size_t n_b, ms_error bcode)
{
    for (size_t cut = 0; cut < len; cut++) {
        int clean = 0, at_b = 0;
        for (size_t i = 0; i < n_ok; i++)
            clean |= ok[i] == cut;
        for (size_t i = 0; i < n_b; i++)
            at_b |= boundary[i] == cut;
        ms_error want = at_b ? bcode : code;
        ms_error_info e;
        int rc = tb_verify(p, cut, opt, &e);
        if (clean)
            SOFT(rc == 0, "%s: cut at %zu: %s (%s), want a clean end",
                 label, cut, ms_error_name(e.code), e.detail);
        else
            SOFT(rc == -1 && e.code == want && e.offset == cut,
                 "%s: cut at %zu: %s at %llu (%s), want %s at the cut",
                 label, cut, rc ? ms_error_name(e.code) : "success",
                 (unsigned long long)e.offset, e.detail,
                 ms_error_name(want));
    }
}

/* ---- HiSilicon acc_vf_data (reference section 4) --------------------------- */
#define HISI_V1 0xCDCDCDCDFEEDAACCull
#define HISI_V2 0xAACCFEEDDECADEDEull

static void hisi_build(uint8_t d[176], int v2)
{
    memset(d, 0, 176);
    tb_set_le64(d, v2 ? HISI_V2 : HISI_V1);
    tb_set_le32(d + 8, 4);        /* qp_num */
    tb_set_le32(d + 12, 0xa255);  /* dev_id */
    tb_set_le32(d + 16, 1);       /* que_iso_cfg */
    tb_set_le32(d + 20, 64);      /* qp_base */
    tb_set_le32(d + 24, 1);       /* vf_qm_state: ready */
    if (v2) {
        tb_set_le16(d + 28, 1);   /* major */
        tb_set_le16(d + 30, 3);   /* minor */
    } else {
        tb_set_le32(d + 28, 0x11111111); /* V1: reserved words */
    }
    for (int i = 40; i < 144; i++)
        d[i] = (uint8_t)(i * 7 + 3);
    tb_set_le64(d + 144, 0x1000000ull);
    tb_set_le64(d + 152, 0x1001000ull);
    tb_set_le64(d + 160, 0x1002000ull);
    tb_set_le64(d + 168, 0x1003000ull);
}

/* Expected events: pre_copy (the match data are an initial image) or not;
 * full: 176 bytes (else 40). */
static void hisi_lines(lines *ls, const uint8_t *d, int v2, int pre_copy,
                       int full)
{
    unsigned kind = MS_PAYLOAD_HISI_ACC;
    ms_phase ip = pre_copy ? MS_PHASE_INITIAL : MS_PHASE_FINAL;
    l_record(ls, "match data", 0, 40, kind, 0, 0, 40, 0, ip);
    l_data(ls, d, 0, 40, 0, 0, ip, 0);
    l_field(ls, "magic", 0, 8, tb_le64(d), d, 8, v2 ? 2 : 1);
    l_field(ls, "qp_num", 8, 4, 4, d + 8, 4, 0);
    l_field(ls, "dev_id", 12, 4, 0xa255, d + 12, 4, 0);
    l_field(ls, "que_iso_cfg", 16, 4, 1, d + 16, 4, 0);
    l_field(ls, "qp_base", 20, 4, 64, d + 20, 4, 0);
    l_field(ls, "vf_qm_state", 24, 4, 1, d + 24, 4, 0);
    if (v2) {
        l_field(ls, "major_ver", 28, 2, 1, d + 28, 2, 0);
        l_field(ls, "minor_ver", 30, 2, 3, d + 30, 2, 0);
    }
    if (pre_copy)
        l_image(ls, d, 0, MS_PHASE_INITIAL, 0, 40, 1);
    if (!full)
        return;
    l_record(ls, "registers", 40, 136, kind, 0, 0, 136, 0, MS_PHASE_FINAL);
    l_data(ls, d, 40, 136, pre_copy ? 1 : 0, pre_copy ? 0 : 40,
           MS_PHASE_FINAL, 0);
    l_field(ls, "registers", 40, 104, 0, d + 40, 104, 0);
    l_field(ls, "eqe_dma", 144, 8, 0x1000000, d + 144, 8, 0);
    l_field(ls, "aeqe_dma", 152, 8, 0x1001000, d + 152, 8, 0);
    l_field(ls, "sqc_dma", 160, 8, 0x1002000, d + 160, 8, 0);
    l_field(ls, "cqc_dma", 168, 8, 0x1003000, d + 168, 8, 0);
    if (pre_copy)
        l_image(ls, d, 1, MS_PHASE_FINAL, 40, 136, 1);
    else
        l_image(ls, d, 0, MS_PHASE_FINAL, 0, 176, 2);
}

static void test_hisi_valid(void **state)
{
    (void)state;
    BEGIN();
    uint8_t d[177];
    ms_options o;
    lines ls = {0};
    opts(&o, MS_PAYLOAD_HISI_ACC);
    for (int v2 = 0; v2 <= 1; v2++) {
        hisi_build(d, v2);
        hisi_lines(&ls, d, v2, 1, 1);
        check_lines(v2 ? "hisi V2 176" : "hisi V1 176", d, 176, &o, &ls, 1);
        hisi_lines(&ls, d, v2, 1, 0);
        check_lines(v2 ? "hisi V2 40" : "hisi V1 40", d, 40, &o, &ls, 1);
    }
    /* the V1 layout has no version words: anything there is accepted */
    hisi_build(d, 0);
    tb_set_le16(d + 28, 7);
    ms_error_info e;
    SOFT(tb_verify(d, 176, &o, &e) == 0, "V1 with bytes 28..39 set: %s",
         e.detail);
    /* a capture read with PRE_COPY: the same events */
    hisi_build(d, 1);
    o.payload_final_offset = 40;
    hisi_lines(&ls, d, 1, 1, 1);
    check_lines("hisi V2, final offset 40", d, 176, &o, &ls, 0);
    /* all in STOP_COPY (no PRE_COPY): one final image of 176 bytes; 40
     * bytes is "nothing to load" and no image */
    o.payload_final_offset = 0;
    hisi_lines(&ls, d, 1, 0, 1);
    check_lines("hisi V2, all STOP_COPY", d, 176, &o, &ls, 0);
    hisi_lines(&ls, d, 1, 0, 0);
    check_lines("hisi V2 40, all STOP_COPY", d, 40, &o, &ls, 0);
    /* PRE_COPY may stop reading early (QEMU switched over): fine */
    o.payload_final_offset = 20;
    hisi_lines(&ls, d, 1, 1, 1);
    check_lines("hisi V2, final offset 20", d, 176, &o, &ls, 0);
    DONE();
}

static void test_hisi_reject(void **state)
{
    (void)state;
    BEGIN();
    uint8_t d[200], g[200];
    ms_options o;
    opts(&o, MS_PAYLOAD_HISI_ACC);
    hisi_build(d, 1);
    memset(d + 176, 0x5c, sizeof d - 176);

    memcpy(g, d, 176);
    g[3] ^= 0x01;
    expect_err("bad magic", g, 176, &o, MS_ERR_BAD_MAGIC, 0);
    expect_err("bad magic, 8 bytes", g, 8, &o, MS_ERR_BAD_MAGIC, 0);
    memcpy(g, d, 176);
    tb_set_le16(g + 28, 2);
    expect_err("V2 major 2", g, 176, &o, MS_ERR_VERSION, 28);
    expect_err("V2 major 2, 40 bytes", g, 40, &o, MS_ERR_VERSION, 28);
    tb_set_le16(g + 28, 0);
    expect_err("V2 major 0", g, 176, &o, MS_ERR_VERSION, 28);
    /* lengths: 40 and 176 only */
    expect_err("177 bytes", d, 177, &o, MS_ERR_TRAILING_DATA, 176);
    expect_err("200 bytes", d, 200, &o, MS_ERR_TRAILING_DATA, 176);
    expect_err("41 bytes", d, 41, &o, MS_ERR_TRUNCATED, 41);
    expect_err("175 bytes", d, 175, &o, MS_ERR_TRUNCATED, 175);
    expect_err("empty", d, 0, &o, MS_ERR_TRUNCATED, 0);
    static const size_t ok40[] = {40};
    check_cuts("hisi V2", d, 176, &o, MS_ERR_TRUNCATED, ok40, 1, NULL, 0,
               MS_ERR_OK);
    hisi_build(g, 0);
    check_cuts("hisi V1", g, 176, &o, MS_ERR_TRUNCATED, ok40, 1, NULL, 0,
               MS_ERR_OK);
    /* a carrier that read byte 40 before STOP_COPY contradicts the driver */
    o.payload_final_offset = 41;
    expect_err("byte 40 initial", d, 176, &o, MS_ERR_PAYLOAD, 40);
    o.payload_final_offset = 176;
    expect_err("all initial", d, 176, &o, MS_ERR_PAYLOAD, 40);
    o.payload_final_offset = UINT64_MAX;
    DONE();
}

/* ---- QAT mstate buffer (reference section 5) ----------------------------- */
#define QAT_MAGIC 0xADF5CAEAu
#define QBUF 4096u

typedef struct qs {
    const char *id;
    size_t len;            /* own data bytes (after the children) */
    uint8_t fill;          /* own data: fill + i */
    const struct qs *kids;
    size_t nkids;
    uint32_t sub_override; /* != 0: sub_sects written as this - 1 */
} qs;

static size_t qs_size(const qs *s)
{
    size_t n = s->len;
    for (size_t i = 0; i < s->nkids; i++)
        n += 16 + qs_size(&s->kids[i]);
    return n;
}

static void put_id(tb_buf *b, const char *id)
{
    uint8_t raw[8] = {0};
    memcpy(raw, id, MS_MIN(strlen(id), 8));
    tb_put(b, raw, 8);
}

static void put_qs(tb_buf *b, const qs *s)
{
    put_id(b, s->id);
    tb_put_le32(b, (uint32_t)qs_size(s));
    tb_put_le32(b, s->sub_override ? s->sub_override - 1
                                   : (uint32_t)s->nkids);
    for (size_t i = 0; i < s->nkids; i++)
        put_qs(b, &s->kids[i]);
    for (size_t i = 0; i < s->len; i++)
        tb_put_u8(b, (uint8_t)(s->fill + i));
}

static void put_block(tb_buf *b, const qs *secs, size_t n)
{
    size_t size = 0;
    for (size_t i = 0; i < n; i++)
        size += 16 + qs_size(&secs[i]);
    tb_put_le32(b, QAT_MAGIC);
    tb_put_le32(b, 1);
    tb_put_le16(b, 16);
    tb_put_le16(b, (uint16_t)n);
    tb_put_le32(b, (uint32_t)size);
    for (size_t i = 0; i < n; i++)
        put_qs(b, &secs[i]);
}

/* The kernel's tree (adf_gen4_vf_mig.c): CONFIG{gencap, svcmap, extdc};
 * GENER{iovinit, compver, sla}; MISCBAR{visrc, vimsk, vispv, vimpv, pf2vm,
 * vm2pf}; ETRBAR{bnk0..bnk3{mregs}}. */
static const qs q_config_kids[] = {
    {"gencap", 4, 0x10, NULL, 0, 0},
    {"svcmap", 4, 0x20, NULL, 0, 0},
    {"extdc", 4, 0x30, NULL, 0, 0},
};
static const qs q_setup[] = {{"CONFIG", 0, 0, q_config_kids, 3, 0}};
static const qs q_gener_kids[] = {
    {"iovinit", 1, 0x01, NULL, 0, 0},
    {"compver", 1, 0x05, NULL, 0, 0},
    {"sla", 0, 0, NULL, 0, 0},
};
static const qs q_misc_kids[] = {
    {"visrc", 4, 0x40, NULL, 0, 0}, {"vimsk", 4, 0x44, NULL, 0, 0},
    {"vispv", 4, 0x48, NULL, 0, 0}, {"vimpv", 4, 0x4c, NULL, 0, 0},
    {"pf2vm", 4, 0x50, NULL, 0, 0}, {"vm2pf", 4, 0x54, NULL, 0, 0},
};
static const qs q_mregs[] = {{"mregs", 120, 0x60, NULL, 0, 0}};
static const qs q_banks[] = {
    {"bnk0", 0, 0, q_mregs, 1, 0},
    {"bnk1", 0, 0, q_mregs, 1, 0},
    {"bnk2", 0, 0, q_mregs, 1, 0},
    {"bnk3", 0, 0, q_mregs, 1, 0},
};
static const qs q_state[] = {
    {"GENER", 0, 0, q_gener_kids, 3, 0},
    {"MISCBAR", 0, 0, q_misc_kids, 6, 0},
    {"ETRBAR", 0, 0, q_banks, 4, 0},
};

/* Setup block, state block, tail filler (the kernel's buffer is kmalloc'd:
 * the tail is whatever was there). */
static void qat_build(tb_buf *b, const qs *setup, size_t ns, const qs *st,
                      size_t nst, size_t *state_at, size_t *tail_at)
{
    tb_buf_reset(b);
    put_block(b, setup, ns);
    *state_at = b->len;
    put_block(b, st, nst);
    *tail_at = b->len;
    while (b->len < QBUF)
        tb_put_u8(b, (uint8_t)(b->len * 13));
}

static void qat_field_lines(lines *ls, const uint8_t *buf, size_t *at,
                            const qs *s, const char *parent, unsigned depth)
{
    char path[128];
    size_t pl = strlen(parent), il = strlen(s->id);
    assert_true(pl + 1 + il < sizeof path);
    memcpy(path, parent, pl);
    if (pl)
        path[pl++] = '.';
    memcpy(path + pl, s->id, il + 1);
    size_t size = qs_size(s);
    size_t h = *at;
    uint64_t value = 0;
    if (!s->nkids && (size == 1 || size == 2 || size == 4 || size == 8))
        for (size_t i = 0; i < size; i++)
            value |= (uint64_t)buf[h + 16 + i] << (8 * i);
    l_field(ls, path, h, 16 + size, value, buf + h + 16, size, depth);
    *at = h + 16;
    for (size_t i = 0; i < s->nkids; i++)
        qat_field_lines(ls, buf, at, &s->kids[i], path, depth + 1);
    *at = h + 16 + size;
}

static void qat_lines(lines *ls, const uint8_t *buf, const qs *setup,
                      size_t ns, const qs *st, size_t nst, size_t state_at,
                      size_t tail_at, int pre_copy)
{
    unsigned kind = MS_PAYLOAD_QAT;
    size_t at = 16;
    ms_phase sp = pre_copy ? MS_PHASE_INITIAL : MS_PHASE_FINAL;
    uint32_t fseq = pre_copy ? 1 : 0;
    l_record(ls, "setup block", 0, state_at, kind, 0, 0, state_at - 16, 0,
             sp);
    l_data(ls, buf, 0, state_at, 0, 0, sp, 0);
    for (size_t i = 0; i < ns; i++)
        qat_field_lines(ls, buf, &at, &setup[i], "", 0);
    if (pre_copy)
        l_image(ls, buf, 0, MS_PHASE_INITIAL, 0, state_at, 1);
    size_t img = pre_copy ? state_at : 0;
    l_record(ls, "state block", state_at, tail_at - state_at, kind, 0, 0,
             tail_at - state_at - 16, 0, MS_PHASE_FINAL);
    l_data(ls, buf, state_at, tail_at - state_at, fseq, state_at - img,
           MS_PHASE_FINAL, 0);
    at = state_at + 16;
    for (size_t i = 0; i < nst; i++)
        qat_field_lines(ls, buf, &at, &st[i], "", 0);
    if (tail_at < QBUF) {
        l_record(ls, "unused tail", tail_at, QBUF - tail_at, kind, 0, 0,
                 QBUF - tail_at, 0, MS_PHASE_FINAL);
        l_data(ls, buf, tail_at, QBUF - tail_at, fseq, tail_at - img,
               MS_PHASE_FINAL, 0);
    }
    l_image(ls, buf, fseq, MS_PHASE_FINAL, img, QBUF - img,
            (pre_copy ? 1 : 2) + (tail_at < QBUF));
}

static void test_qat_valid(void **state)
{
    (void)state;
    BEGIN();
    tb_buf b;
    tb_buf_init(&b);
    size_t sa, ta;
    ms_options o;
    lines ls = {0};
    opts(&o, MS_PAYLOAD_QAT);
    qat_build(&b, q_setup, 1, q_state, 3, &sa, &ta);
    SOFT(sa == 16 + 16 + 3 * 20, "setup block size %zu", sa);
    qat_lines(&ls, b.p, q_setup, 1, q_state, 3, sa, ta, 1);
    SOFT(ls.n == 1 + 4 + 2 + 1 + 4 + 7 + 1 + 8 + 1 + 3, "%zu lines", ls.n);
    check_lines("qat", b.p, b.len, &o, &ls, 1);
    /* a spot check of the names and depths the spec promises */
    res a;
    run(b.p, b.len, &o, WHOLE, 0, &a);
    int found = 0;
    for (size_t i = 0; i < a.n; i++)
        found += !strncmp(a.ev[i], "field ETRBAR.bnk2.mregs off=", 28) &&
                 strstr(a.ev[i], " size=120 index=2 ");
    SOFT(found == 1, "ETRBAR.bnk2.mregs at depth 2: %d", found);
    res_free(&a);

    o.payload_final_offset = sa; /* read with PRE_COPY */
    qat_lines(&ls, b.p, q_setup, 1, q_state, 3, sa, ta, 1);
    check_lines("qat, final offset = state block", b.p, b.len, &o, &ls, 0);
    o.payload_final_offset = 0; /* STOP -> STOP_COPY */
    qat_lines(&ls, b.p, q_setup, 1, q_state, 3, sa, ta, 0);
    check_lines("qat, all STOP_COPY", b.p, b.len, &o, &ls, 0);
    o.payload_final_offset = UINT64_MAX;

    /* blocks that fill the buffer exactly: no tail record */
    static const qs big_mregs[] = {{"mregs", 0, 0x60, NULL, 0, 0}};
    qs banks[4];
    memcpy(banks, q_banks, sizeof banks);
    qs st2[3];
    memcpy(st2, q_state, sizeof st2);
    st2[2].kids = banks;
    tb_buf tmp;
    tb_buf_init(&tmp);
    qat_build(&tmp, q_setup, 1, q_state, 3, &sa, &ta);
    qs mr = {"mregs", 120 + (QBUF - ta), 0x60, NULL, 0, 0};
    banks[3].kids = &mr;
    (void)big_mregs;
    qat_build(&b, q_setup, 1, st2, 3, &sa, &ta);
    SOFT(ta == QBUF, "filled buffer: tail at %zu", ta);
    qat_lines(&ls, b.p, q_setup, 1, st2, 3, sa, ta, 1);
    check_lines("qat, no tail", b.p, b.len, &o, &ls, 0);
    tb_buf_free(&tmp);

    /* version 0 is accepted; a section id of 8 characters needs no NUL */
    qat_build(&b, q_setup, 1, q_state, 3, &sa, &ta);
    tb_set_le32(b.p + 4, 0);
    qs gk[4];
    memcpy(gk, q_gener_kids, sizeof q_gener_kids);
    gk[3] = (qs){"ABCDEFGH", 2, 0x77, NULL, 0, 0};
    qs st3[3];
    memcpy(st3, q_state, sizeof st3);
    st3[0].kids = gk;
    st3[0].nkids = 4;
    tb_buf c;
    tb_buf_init(&c);
    qat_build(&c, q_setup, 1, st3, 3, &sa, &ta);
    ms_error_info e;
    SOFT(tb_verify(b.p, b.len, &o, &e) == 0, "version 0: %s", e.detail);
    SOFT(tb_verify(c.p, c.len, &o, &e) == 0, "8-character id: %s", e.detail);
    tb_buf_free(&c);
    tb_buf_free(&b);
    DONE();
}

static void test_qat_reject(void **state)
{
    (void)state;
    BEGIN();
    tb_buf b, g;
    tb_buf_init(&b);
    tb_buf_init(&g);
    size_t sa, ta;
    ms_options o;
    opts(&o, MS_PAYLOAD_QAT);
    qat_build(&b, q_setup, 1, q_state, 3, &sa, &ta);
#define MUT() tb_buf_copy(&g, &b)
    /* preambles */
    MUT();
    g.p[0] ^= 1;
    expect_err("setup magic", g.p, g.len, &o, MS_ERR_BAD_MAGIC, 0);
    MUT();
    g.p[sa + 2] ^= 1;
    expect_err("state magic", g.p, g.len, &o, MS_ERR_BAD_MAGIC, sa);
    MUT();
    tb_set_le32(g.p + 4, 2);
    expect_err("setup version 2", g.p, g.len, &o, MS_ERR_VERSION, 4);
    MUT();
    tb_set_le32(g.p + sa + 4, 0x100);
    expect_err("state version", g.p, g.len, &o, MS_ERR_VERSION, sa + 4);
    MUT();
    tb_set_le16(g.p + 8, 24);
    expect_err("setup preh_len 24", g.p, g.len, &o, MS_ERR_PAYLOAD, 8);
    MUT();
    tb_set_le16(g.p + sa + 8, 4096);
    expect_err("state preh_len 4096", g.p, g.len, &o, MS_ERR_PAYLOAD,
               sa + 8);
    MUT();
    tb_set_le32(g.p + 12, QBUF - 15);
    expect_err("setup overruns", g.p, g.len, &o, MS_ERR_PAYLOAD, 12);
    MUT();
    tb_set_le32(g.p + 12, QBUF - 16);
    expect_err("setup fills the buffer", g.p, g.len, &o, MS_ERR_PAYLOAD, 12);
    MUT();
    tb_set_le32(g.p + 12, QBUF - 17);
    expect_err("setup leaves 15 bytes", g.p, g.len, &o, MS_ERR_PAYLOAD, 12);
    MUT();
    tb_set_le32(g.p + sa + 12, (uint32_t)(QBUF - sa - 15));
    expect_err("state overruns", g.p, g.len, &o, MS_ERR_PAYLOAD, sa + 12);
    MUT();
    tb_set_le32(g.p + sa + 12, 0xffffffffu);
    expect_err("state size 2^32-1", g.p, g.len, &o, MS_ERR_PAYLOAD,
               sa + 12);

    /* section headers checked inside their parent before being read:
     * the kernel bug's case, one section declared in an empty block */
    MUT();
    tb_set_le32(g.p + 12, 0);
    tb_set_le16(g.p + 10, 1);
    memmove(g.p + 16, g.p + sa, QBUF - sa); /* the state block moves up */
    expect_err("header past an empty setup block", g.p, g.len, &o,
               MS_ERR_PAYLOAD, 16);
    MUT();
    tb_set_le16(g.p + 10, 2); /* n_sects 2: the 2nd header at the end */
    expect_err("n_sects too high", g.p, g.len, &o, MS_ERR_PAYLOAD, sa);
    MUT();
    tb_set_le32(g.p + 16 + 12, 4); /* CONFIG: 4 sub-sections, 3 there */
    expect_err("sub_sects too high", g.p, g.len, &o, MS_ERR_PAYLOAD, sa);
    /* a nested header that only partly fits: CONFIG's own data of 8 bytes
     * after its three children, and sub_sects 4 */
    {
        qs ck[3];
        memcpy(ck, q_config_kids, sizeof ck);
        qs cfg = {"CONFIG", 8, 0, ck, 3, 5};
        tb_buf c;
        tb_buf_init(&c);
        size_t s2, t2;
        qat_build(&c, &cfg, 1, q_state, 3, &s2, &t2);
        expect_err("header partly in parent", c.p, c.len, &o, MS_ERR_PAYLOAD,
                   s2 - 8);
        tb_buf_free(&c);
    }
    /* a section larger than its parent */
    MUT();
    tb_set_le32(g.p + 32 + 8, 5); /* gencap: 5 bytes, parent has 60 */
    expect_err("gencap size 5 shifts svcmap", g.p, g.len, &o, MS_ERR_PAYLOAD,
               32 + 16 + 5); /* svcmap's header: id becomes garbage */
    MUT();
    tb_set_le32(g.p + 32 + 8, 45);
    expect_err("gencap overruns CONFIG", g.p, g.len, &o, MS_ERR_PAYLOAD,
               32 + 8);
    MUT();
    tb_set_le32(g.p + 16 + 8, 61);
    expect_err("CONFIG overruns the block", g.p, g.len, &o, MS_ERR_PAYLOAD,
               16 + 8);
    MUT();
    tb_set_le32(g.p + sa + 16 + 8, 0xfffffff0u);
    expect_err("GENER size huge", g.p, g.len, &o, MS_ERR_PAYLOAD,
               sa + 16 + 8);
    /* sections that do not fill the block's size */
    MUT();
    tb_set_le32(g.p + 12, (uint32_t)(sa - 16 + 4));
    memmove(g.p + sa + 4, g.p + sa, QBUF - sa - 4);
    memset(g.p + sa, 0, 4);
    expect_err("slack after the sections", g.p, g.len, &o, MS_ERR_PAYLOAD,
               sa);
    /* ids */
    MUT();
    memset(g.p + 16, 0, 8);
    expect_err("empty id", g.p, g.len, &o, MS_ERR_PAYLOAD, 16);
    MUT();
    memcpy(g.p + 16, "CON\0FIG", 8);
    expect_err("id not NUL padded", g.p, g.len, &o, MS_ERR_PAYLOAD, 16);
    MUT();
    memcpy(g.p + 16, "CON IG\0", 8);
    expect_err("id with a space", g.p, g.len, &o, MS_ERR_PAYLOAD, 16);
    MUT();
    memcpy(g.p + 32 + 20, "gencap\0", 8); /* svcmap renamed gencap */
    expect_err("duplicate id", g.p, g.len, &o, MS_ERR_PAYLOAD, 32 + 20);
    /* sections the target looks up */
    MUT();
    memcpy(g.p + 16, "CONFIX\0", 8);
    expect_err("no CONFIG", g.p, g.len, &o, MS_ERR_PAYLOAD, 0);
    MUT();
    memcpy(g.p + 32 + 20, "svcmaq\0", 8);
    expect_err("no svcmap", g.p, g.len, &o, MS_ERR_PAYLOAD, 16);
    MUT();
    memcpy(g.p + sa + 16, "GENERX\0", 8);
    expect_err("no GENER", g.p, g.len, &o, MS_ERR_PAYLOAD, sa);
    {
        size_t misc = sa + 16 + 16 + (16 + 1) * 2 + 16; /* MISCBAR header */
        size_t vimpv = misc + 16 + 3 * 20;
        MUT();
        SOFT(!memcmp(g.p + misc, "MISCBAR", 8), "MISCBAR at %zu", misc);
        SOFT(!memcmp(g.p + vimpv, "vimpv", 6), "vimpv at %zu", vimpv);
        memcpy(g.p + vimpv, "vimpw", 6);
        expect_err("no vimpv", g.p, g.len, &o, MS_ERR_PAYLOAD, misc);
        size_t etr = misc + 16 + 6 * 20;
        size_t bnk2 = etr + 16 + 2 * (16 + 16 + 120);
        MUT();
        SOFT(!memcmp(g.p + etr, "ETRBAR", 7), "ETRBAR at %zu", etr);
        SOFT(!memcmp(g.p + bnk2 + 16, "mregs", 6), "mregs at %zu", bnk2 + 16);
        memcpy(g.p + bnk2 + 16, "mregx", 6);
        expect_err("bnk2 without mregs", g.p, g.len, &o, MS_ERR_PAYLOAD,
                   bnk2);
        MUT();
        memcpy(g.p + etr + 16, "bnk9", 4);
        expect_err("no bnk0", g.p, g.len, &o, MS_ERR_PAYLOAD, etr);
    }
    /* CONFIG without sub-sections */
    {
        qs cfg = {"CONFIG", 4, 0, NULL, 0, 0};
        tb_buf c;
        tb_buf_init(&c);
        size_t s2, t2;
        qat_build(&c, &cfg, 1, q_state, 3, &s2, &t2);
        expect_err("CONFIG without children", c.p, c.len, &o,
                   MS_ERR_PAYLOAD, 16);
        /* a capability mask wider than 8 bytes */
        qs ck[3];
        memcpy(ck, q_config_kids, sizeof ck);
        ck[1].len = 12;
        qs cfg2 = {"CONFIG", 0, 0, ck, 3, 0};
        qat_build(&c, &cfg2, 1, q_state, 3, &s2, &t2);
        expect_err("svcmap of 12 bytes", c.p, c.len, &o, MS_ERR_PAYLOAD,
                   32 + 20 + 8);
        tb_buf_free(&c);
    }
    /* length: exactly 4096 */
    tb_buf_copy(&g, &b);
    tb_put_u8(&g, 0);
    expect_err("4097 bytes", g.p, g.len, &o, MS_ERR_TRAILING_DATA, QBUF);
    expect_err("setup block only", b.p, sa, &o, MS_ERR_TRUNCATED, sa);
    expect_err("blocks without tail", b.p, ta, &o, MS_ERR_TRUNCATED, ta);
    check_cuts("qat", b.p, b.len, &o, MS_ERR_TRUNCATED, NULL, 0, NULL, 0,
               MS_ERR_OK);
    /* phases: the state block is never read in PRE_COPY */
    o.payload_final_offset = sa + 1;
    expect_err("state block initial", b.p, b.len, &o, MS_ERR_PAYLOAD, sa);
    o.payload_final_offset = UINT64_MAX;
#undef MUT
    tb_buf_free(&g);
    tb_buf_free(&b);
    DONE();
}

/* ---- Xe packets (reference section 6) ------------------------------------ */
enum { XD = 1, XT = 2, XGGTT = 3, XMMIO = 4, XGUC = 5, XVRAM = 6 };

static size_t xe_hdr(tb_buf *b, uint8_t version, uint8_t type, uint8_t tile,
                     uint8_t gt, uint32_t flags, uint64_t offset,
                     uint64_t size)
{
    size_t at = b->len;
    tb_put_u8(b, version);
    tb_put_u8(b, type);
    tb_put_u8(b, tile);
    tb_put_u8(b, gt);
    tb_put_le32(b, flags);
    tb_put_le64(b, offset);
    tb_put_le64(b, size);
    return at;
}

static size_t xe_packet(tb_buf *b, uint8_t type, uint8_t tile, uint8_t gt,
                        uint64_t offset, const uint8_t *data, size_t len)
{
    size_t at = xe_hdr(b, 1, type, tile, gt, 0, offset, len);
    tb_put(b, data, len);
    return at;
}

static void klv(tb_buf *b, uint16_t key, uint16_t len, const uint32_t *v)
{
    tb_put_le32(b, (uint32_t)key << 16 | len);
    for (uint16_t i = 0; i < len; i++)
        tb_put_le32(b, v ? v[i] : 0x1000u + i);
}

/* Descriptor payload: devid 0x64a0, revid 4, then optional extras. */
static void xe_desc(tb_buf *d, int extras)
{
    uint32_t devid = 0x64a0, revid = 4;
    tb_buf_reset(d);
    klv(d, 0xF001, 1, &devid);
    klv(d, 0xF002, 1, &revid);
    if (extras) {
        uint32_t two[2] = {0xdeadbeef, 7};
        klv(d, 0x1234, 2, two);
        klv(d, 0x0042, 0, NULL);
        klv(d, 0x7777, 20, NULL); /* 80 bytes: walked, not handed out */
    }
}

typedef struct xe_stream {
    tb_buf b;
    size_t off[16];
    size_t n;
    uint8_t *vram;
    size_t vram_len;
} xe_stream;

static void xe_build(xe_stream *x, size_t vram_len)
{
    tb_buf d;
    tb_buf_init(&d);
    tb_buf_init(&x->b);
    x->n = 0;
    xe_desc(&d, 1);
    x->off[x->n++] = xe_packet(&x->b, XD, 0, 0, 0, d.p, d.len);
    uint8_t small[100];
    tb_fill_random(small, sizeof small, 11);
    x->off[x->n++] = xe_packet(&x->b, XGGTT, 0, 0, 0, small, 64);
    x->off[x->n++] = xe_packet(&x->b, XMMIO, 0, 1, 0, small + 1, 36);
    x->off[x->n++] = xe_packet(&x->b, XGUC, 0, 1, 0, small + 2, 97);
    x->vram_len = vram_len;
    x->vram = xmalloc(vram_len);
    tb_fill_random(x->vram, vram_len, 12);
    size_t half = vram_len / 2;
    x->off[x->n++] = xe_packet(&x->b, XVRAM, 1, 0, 0, x->vram, half);
    x->off[x->n++] = xe_packet(&x->b, XVRAM, 1, 0, half, x->vram + half,
                               vram_len - half);
    x->off[x->n++] = xe_packet(&x->b, XGGTT, 1, 2, 0, NULL, 0); /* empty */
    x->off[x->n++] = xe_hdr(&x->b, 1, XT, 0, 0, 0, 0, 0);
    x->off[x->n] = x->b.len;
    tb_buf_free(&d);
}

static void xe_free(xe_stream *x)
{
    tb_buf_free(&x->b);
    free(x->vram);
}

static const char *const xe_names[] = {"", "DESCRIPTOR", "TRAILER", "GGTT",
                                       "MMIO", "GUC", "VRAM"};

static void xe_lines(lines *ls, const xe_stream *x)
{
    const uint8_t *s = x->b.p;
    for (size_t i = 0; i < x->n; i++) {
        size_t o = x->off[i];
        const uint8_t *h = s + o;
        uint64_t size = tb_le64(h + 16);
        l_record(ls, xe_names[h[1]], o, 24 + size, MS_PAYLOAD_XE, h[1],
                 tb_le32(h + 4), size, tb_le64(h + 8), MS_PHASE_FINAL);
        l_field(ls, "tile_id", o + 2, 1, h[2], h + 2, 1, 0);
        l_field(ls, "gt_id", o + 3, 1, h[3], h + 3, 1, 0);
        if (h[1] == XD) {
            size_t k = o + 24, end = k + size;
            while (k < end) {
                uint32_t hd = tb_le32(s + k);
                unsigned key = hd >> 16, len = hd & 0xffff;
                char name[24];
                if (key == 0xF001)
                    snprintf(name, sizeof name, "devid");
                else if (key == 0xF002)
                    snprintf(name, sizeof name, "revid");
                else
                    snprintf(name, sizeof name, "klv_0x%04x", key);
                int shown = len && len * 4 <= 64;
                /* a walked value has no bytes: size 0 (spec/payloads.md) */
                l_field(ls, name, k, 4 + 4 * len,
                        shown ? tb_le32(s + k + 4) : 0,
                        shown ? s + k + 4 : NULL, shown ? 4 * len : 0, key);
                k += 4 + 4 * len;
            }
        } else if (h[1] != XT && size) {
            l_data(ls, s, o + 24, size, 0, o + 24, MS_PHASE_FINAL,
                   (uint32_t)i);
        }
    }
    l_image(ls, s, 0, MS_PHASE_FINAL, 0, x->b.len, x->n);
}

static void test_xe_valid(void **state)
{
    (void)state;
    BEGIN();
    xe_stream x;
    ms_options o;
    lines ls = {0};
    opts(&o, MS_PAYLOAD_XE);
    xe_build(&x, 3000);
    xe_lines(&ls, &x);
    SOFT(ls.n == 8 * 3 + 5 + 5 + 1, "%zu lines", ls.n);
    check_lines("xe", x.b.p, x.b.len, &o, &ls, 1);
    /* the minimal stream: descriptor, trailer */
    {
        tb_buf d;
        tb_buf_init(&d);
        xe_stream m = {0};
        tb_buf_init(&m.b);
        xe_desc(&d, 0);
        m.off[m.n++] = xe_packet(&m.b, XD, 0, 0, 0, d.p, d.len);
        m.off[m.n++] = xe_hdr(&m.b, 1, XT, 0, 0, 0, 0, 0);
        xe_lines(&ls, &m);
        check_lines("xe minimal", m.b.p, m.b.len, &o, &ls, 1);
        /* all STOP_COPY per the carrier: the same */
        o.payload_final_offset = 0;
        xe_lines(&ls, &m);
        check_lines("xe minimal, final offset 0", m.b.p, m.b.len, &o, &ls,
                    0);
        o.payload_final_offset = UINT64_MAX;
        tb_buf_free(&d);
        tb_buf_free(&m.b);
    }
    /* payload bytes are views of the input */
    res a;
    run(x.b.p, x.b.len, &o, WHOLE, 0, &a);
    SOFT(a.data_events == 5 && a.all_zero_copy,
         "%zu DATA events, zero copy %d", a.data_events, a.all_zero_copy);
    res_free(&a);
    xe_free(&x);
    DONE();
}

/* A VRAM packet of 48 MiB read in 1 MiB slices: every DATA event is a view
 * of the input, and the reader's stash never grows past its minimum. */
static void test_xe_large_vram(void **state)
{
    (void)state;
    BEGIN();
    xe_stream x;
    ms_options o;
    opts(&o, MS_PAYLOAD_XE);
    xe_build(&x, (size_t)48 << 20);
    ms_reader *rd = ms_reader_create(&o);
    assert_non_null(rd);
    size_t at = 0, events = 0, zc = 0, stash_max = 0;
    uint64_t data_bytes = 0;
    while (at < x.b.len) {
        size_t n = MS_MIN(x.b.len - at, (size_t)1 << 20);
        assert_int_equal(ms_reader_input(rd, x.b.p + at, n), 0);
        ms_event ev;
        int rc;
        while ((rc = ms_reader_next(rd, &ev)) == MS_NEXT_EVENT) {
            events++;
            if (ev.kind == MS_EV_DATA) {
                data_bytes += ev.u.data.size;
                zc += ev.u.data.zero_copy;
                SOFT(ev.u.data.data >= x.b.p + at &&
                         ev.u.data.data + ev.u.data.size <= x.b.p + at + n,
                     "DATA view outside the slice");
            }
        }
        SOFT(rc == MS_NEXT_INPUT, "error: %s", ms_reader_error(rd)->detail);
        stash_max = MS_MAX(stash_max, rd->stash_cap);
        at += n;
    }
    SOFT(ms_reader_finish(rd) == 0, "finish: %s", ms_reader_error(rd)->detail);
    SOFT(data_bytes == x.vram_len + 64 + 36 + 97, "%llu data bytes",
         (unsigned long long)data_bytes);
    SOFT(stash_max <= 256, "stash grew to %zu", stash_max);
    SOFT(events < 200, "%zu events", events);
    (void)zc;
    ms_reader_free(rd);
    xe_free(&x);
    DONE();
}

static void test_xe_reject(void **state)
{
    (void)state;
    BEGIN();
    xe_stream x;
    tb_buf g, d;
    tb_buf_init(&g);
    tb_buf_init(&d);
    ms_options o;
    opts(&o, MS_PAYLOAD_XE);
    xe_build(&x, 500);
    const size_t *po = x.off;
#define MUT() tb_buf_copy(&g, &x.b)
    /* headers */
    MUT();
    g.p[0] = 2;
    expect_err("version 2", g.p, g.len, &o, MS_ERR_VERSION, 0);
    MUT();
    g.p[po[3]] = 0;
    expect_err("GUC version 0", g.p, g.len, &o, MS_ERR_VERSION, po[3]);
    MUT();
    g.p[po[2] + 1] = 0;
    expect_err("type 0", g.p, g.len, &o, MS_ERR_PAYLOAD, po[2] + 1);
    MUT();
    g.p[po[2] + 1] = 7;
    expect_err("type 7", g.p, g.len, &o, MS_ERR_PAYLOAD, po[2] + 1);
    MUT();
    tb_set_le64(g.p + po[1] + 16, UINT64_MAX - 10);
    expect_err("size past 2^64", g.p, g.len, &o, MS_ERR_PAYLOAD, po[1] + 16);
    MUT();
    g.p[1] = XGGTT;
    expect_err("first packet GGTT", g.p, g.len, &o, MS_ERR_PAYLOAD, 1);
    MUT();
    g.p[1] = XT;
    expect_err("first packet TRAILER", g.p, g.len, &o, MS_ERR_PAYLOAD, 1);
    MUT();
    g.p[po[1] + 1] = XD;
    expect_err("second DESCRIPTOR", g.p, g.len, &o, MS_ERR_PAYLOAD,
               po[1] + 1);
    /* descriptor KLVs */
    {
        tb_buf s;
        tb_buf_init(&s);
        xe_desc(&d, 0);
        tb_put_u8(&d, 0);
        tb_put_u8(&d, 0);
        xe_packet(&s, XD, 0, 0, 0, d.p, d.len);
        xe_hdr(&s, 1, XT, 0, 0, 0, 0, 0);
        expect_err("descriptor of 18 bytes", s.p, s.len, &o, MS_ERR_PAYLOAD,
                   16);
        /* a KLV longer than what is left of the descriptor */
        tb_buf_reset(&s);
        xe_desc(&d, 0);
        klv(&d, 0x1234, 3, NULL);
        d.len -= 4; /* the descriptor ends one dword early */
        xe_packet(&s, XD, 0, 0, 0, d.p, d.len);
        xe_hdr(&s, 1, XT, 0, 0, 0, 0, 0);
        expect_err("KLV crosses the descriptor", s.p, s.len, &o,
                   MS_ERR_PAYLOAD, 24 + 16);
        /* device id of two dwords */
        tb_buf_reset(&s);
        tb_buf_reset(&d);
        uint32_t v[2] = {0x64a0, 0};
        klv(&d, 0xF001, 2, v);
        klv(&d, 0xF002, 1, v);
        xe_packet(&s, XD, 0, 0, 0, d.p, d.len);
        xe_hdr(&s, 1, XT, 0, 0, 0, 0, 0);
        expect_err("devid length 2", s.p, s.len, &o, MS_ERR_PAYLOAD, 24);
        /* revision id of no dword */
        tb_buf_reset(&s);
        tb_buf_reset(&d);
        klv(&d, 0xF001, 1, v);
        klv(&d, 0xF002, 0, NULL);
        xe_packet(&s, XD, 0, 0, 0, d.p, d.len);
        xe_hdr(&s, 1, XT, 0, 0, 0, 0, 0);
        expect_err("revid length 0", s.p, s.len, &o, MS_ERR_PAYLOAD, 32);
        /* twice the device id */
        tb_buf_reset(&s);
        xe_desc(&d, 0);
        klv(&d, 0xF001, 1, v);
        xe_packet(&s, XD, 0, 0, 0, d.p, d.len);
        xe_hdr(&s, 1, XT, 0, 0, 0, 0, 0);
        expect_err("devid twice", s.p, s.len, &o, MS_ERR_PAYLOAD, 24 + 16);
        /* no revision id */
        tb_buf_reset(&s);
        tb_buf_reset(&d);
        klv(&d, 0xF001, 1, v);
        klv(&d, 0x1234, 1, v);
        xe_packet(&s, XD, 0, 0, 0, d.p, d.len);
        xe_hdr(&s, 1, XT, 0, 0, 0, 0, 0);
        expect_err("no revid", s.p, s.len, &o, MS_ERR_PAYLOAD, 0);
        /* an empty descriptor */
        tb_buf_reset(&s);
        xe_packet(&s, XD, 0, 0, 0, NULL, 0);
        xe_hdr(&s, 1, XT, 0, 0, 0, 0, 0);
        expect_err("empty descriptor", s.p, s.len, &o, MS_ERR_PAYLOAD, 0);
        tb_buf_free(&s);
    }
    /* trailer */
    size_t tr = po[x.n - 1];
    MUT();
    tb_set_le64(g.p + tr + 16, 8);
    tb_put_zeros(&g, 8);
    expect_err("trailer of 8 bytes", g.p, g.len, &o, MS_ERR_PAYLOAD,
               tr + 16);
    MUT();
    tb_put(&g, x.b.p + po[1], po[2] - po[1]); /* a GGTT packet after it */
    expect_err("packet after the trailer", g.p, g.len, &o,
               MS_ERR_TRAILING_DATA, x.b.len);
    MUT();
    tb_put_u8(&g, 0);
    expect_err("a byte after the trailer", g.p, g.len, &o,
               MS_ERR_TRAILING_DATA, x.b.len);
    expect_err("no trailer", x.b.p, tr, &o, MS_ERR_MISSING_END, tr);
    expect_err("empty", x.b.p, 0, &o, MS_ERR_TRUNCATED, 0);
    /* every cut: inside a packet truncated, at a boundary no trailer */
    check_cuts("xe", x.b.p, x.b.len, &o, MS_ERR_TRUNCATED, NULL, 0, po + 1,
               x.n - 1, MS_ERR_MISSING_END);
    /* the driver has no PRE_COPY: bytes the carrier read before STOP_COPY
     * are an error at the first packet they touch */
    o.payload_final_offset = 1;
    expect_err("descriptor initial", x.b.p, x.b.len, &o, MS_ERR_PAYLOAD, 0);
    o.payload_final_offset = po[4] + 10;
    expect_err("VRAM initial", x.b.p, x.b.len, &o, MS_ERR_PAYLOAD, 0);
    o.payload_final_offset = UINT64_MAX;
#undef MUT
    tb_buf_free(&d);
    tb_buf_free(&g);
    xe_free(&x);
    DONE();
}

/* The carrier's phase given with ms_reader_set_phase before each slice:
 * hisi match data in PRE_COPY, the rest in STOP_COPY. */
static void test_carrier_phase(void **state)
{
    (void)state;
    BEGIN();
    uint8_t d[176];
    hisi_build(d, 1);
    ms_options o;
    opts(&o, MS_PAYLOAD_HISI_ACC);
    for (size_t split = 1; split <= 40; split += 13) {
        ms_reader *rd = ms_reader_create(&o);
        assert_non_null(rd);
        res r;
        res_init(&r);
        /* bytes [0, 40) initial in slices of `split`, then final */
        size_t at = 0;
        while (at < 176) {
            size_t n = at < 40 ? MS_MIN(split, 40 - at) : 176 - at;
            ms_reader_set_phase(rd, at < 40 ? MS_PHASE_INITIAL
                                            : MS_PHASE_FINAL);
            assert_int_equal(ms_reader_input(rd, d + at, n), 0);
            ms_event ev;
            int rc;
            while ((rc = ms_reader_next(rd, &ev)) == MS_NEXT_EVENT)
                collect(&r, &ev);
            SOFT(rc == MS_NEXT_INPUT, "split %zu: %s", split,
                 ms_reader_error(rd)->detail);
            at += n;
        }
        flush_run(&r);
        SOFT(ms_reader_finish(rd) == 0, "finish");
        lines ls = {0};
        hisi_lines(&ls, d, 1, 1, 1);
        SOFT(r.n == ls.n, "split %zu: %zu events", split, r.n);
        for (size_t i = 0; i < MS_MIN(r.n, ls.n); i++)
            SOFT(!strcmp(r.ev[i], ls.l[i]), "split %zu event %zu: %s vs %s",
                 split, i, r.ev[i], ls.l[i]);
        lines_free(&ls);
        res_free(&r);
        ms_reader_free(rd);
    }
    DONE();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hisi_valid),
        cmocka_unit_test(test_hisi_reject),
        cmocka_unit_test(test_qat_valid),
        cmocka_unit_test(test_qat_reject),
        cmocka_unit_test(test_xe_valid),
        cmocka_unit_test(test_xe_large_vram),
        cmocka_unit_test(test_xe_reject),
        cmocka_unit_test(test_carrier_phase),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
