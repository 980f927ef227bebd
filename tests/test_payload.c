/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* VFIO driver payloads (MS_FORMAT_PAYLOAD), checked against the format
 * facts of the VFIO device-streams reference (sections 1, 2, 3, 7, 8), not
 * against the decoder's code.  Every stream is built by hand here.
 *
 *   - mlx5 and virtio SW-header record streams decode to the expected
 *     records, images, fields and phases; one slice, byte by byte and
 *     random slices give identical events (DATA runs merged), DATA views
 *     hold the stream's bytes and lie in the slice handed in, image hashes
 *     and lengths match the DATA bytes, event offsets never decrease;
 *   - phases: none without information, from payload_final_offset, from
 *     the carrier (ms_reader_set_phase) which overrides the offset, a
 *     carrier change inside a record header (the record keeps the phase of
 *     its first byte), several final FW_DATA records forming one final
 *     image, phase order;
 *   - truncation at every offset: a clean end exactly at record boundaries
 *     (the kernel accepts a data-fd stream ending at any record boundary),
 *     `truncated` with the cut's offset everywhere else;
 *   - every rule of sections 2 and 3, each violation reported with its code
 *     and the offset of the record header or of the offending field;
 *   - pds (at most 65536 bytes) and raw: one image, lengths only;
 *   - detection: mlx5, virtio, hisi, qat, xe picked from the first bytes,
 *     pds never, ambiguous or unknown bytes refused with "name it".
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "payload_impl.h" /* white box: ms_payload_phase_at */
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

/* ---- builders (the reference, sections 2 and 3) -------------------------- */

#define OPT 1u /* SW header / part flags: OPTIONAL */
enum { FW_DATA = 0, STOP_COPY_SIZE = 1, DEVICE_DATA = 0 };
enum {
    DEV_FEATURES = 0x100,
    DRV_FEATURES = 0x101,
    PCI_COMMON_CFG = 0x102,
    DEVICE_STATUS = 0x103,
    VQ_CFG = 0x104,
    VQ_NOTIFY_CFG = 0x105
};

/* A record: le64 record_size (as given), le32 flags, le32 tag, then the
 * n payload bytes given (which may differ from record_size).  Returns the
 * record's offset. */
static size_t sw(tb_buf *b, uint64_t size, uint32_t flags, uint32_t tag,
                 const void *payload, size_t n)
{
    size_t at = b->len;
    tb_put_le64(b, size);
    tb_put_le32(b, flags);
    tb_put_le32(b, tag);
    if (n)
        tb_put(b, payload, n);
    return at;
}

/* FW_DATA (mandatory) with n deterministic bytes. */
static size_t fw(tb_buf *b, size_t n, uint64_t seed)
{
    uint8_t *d = xmalloc(n);
    tb_fill_random(d, n, seed);
    size_t at = sw(b, n, 0, FW_DATA, d, n);
    free(d);
    return at;
}

/* STOP_COPY_SIZE (optional, le64 value). */
static size_t scs(tb_buf *b, uint64_t v)
{
    uint8_t p[8];
    tb_set_le64(p, v);
    return sw(b, 8, OPT, STOP_COPY_SIZE, p, 8);
}

/* A virtio device part: le16 type, u8 flags, u8 reserved 0, 8-byte
 * selector (le64), le32 length, value.  Returns its offset in `b`. */
static size_t part(tb_buf *b, uint16_t type, uint8_t flags, uint64_t sel,
                   const void *v, uint32_t n)
{
    size_t at = b->len;
    tb_put_le16(b, type);
    tb_put_u8(b, flags);
    tb_put_u8(b, 0);
    tb_put_le64(b, sel);
    tb_put_le32(b, n);
    if (n)
        tb_put(b, v, n);
    return at;
}

static size_t p_features(tb_buf *b, uint16_t type, const uint64_t *w,
                         size_t n)
{
    uint8_t v[64];
    for (size_t i = 0; i < n; i++)
        tb_set_le64(v + 8 * i, w[i]);
    return part(b, type, type == DEV_FEATURES ? OPT : 0, 0, v,
                (uint32_t)(8 * n));
}

static size_t p_cfg(tb_buf *b, uint32_t off, uint64_t value, uint32_t n)
{
    uint8_t v[8];
    tb_set_le64(v, value);
    return part(b, PCI_COMMON_CFG, 0, off, v, n);
}

static size_t p_status(tb_buf *b, uint8_t s)
{
    return part(b, DEVICE_STATUS, 0, 0, &s, 1);
}

static void vq_cfg_value(uint8_t v[32], uint16_t q)
{
    memset(v, 0, 32);
    tb_set_le16(v, 256);                /* queue_size */
    tb_set_le16(v + 2, (uint16_t)(q + 1)); /* vector */
    tb_set_le16(v + 4, 1);              /* enabled */
    tb_set_le64(v + 8, 0x10000ull * (q + 1));  /* desc */
    tb_set_le64(v + 16, 0x20000ull * (q + 1)); /* driver */
    tb_set_le64(v + 24, 0x30000ull * (q + 1)); /* device */
}

static size_t p_vq(tb_buf *b, uint16_t q)
{
    uint8_t v[32];
    vq_cfg_value(v, q);
    return part(b, VQ_CFG, 0, q, v, 32);
}

static size_t p_notify(tb_buf *b, uint16_t q)
{
    uint8_t v[8] = {0};
    tb_set_le16(v, q);                   /* notify_off */
    tb_set_le16(v + 2, (uint16_t)(0x10 + q)); /* notif_config_data */
    return part(b, VQ_NOTIFY_CFG, 0, q, v, 8);
}

/* A DEVICE_DATA record around `parts`; returns its offset. */
static size_t vrec(tb_buf *b, const tb_buf *parts)
{
    return sw(b, parts->len, 0, DEVICE_DATA, parts->p, parts->len);
}

/* ---- decoding, with every event described ---------------------------------- */

typedef struct sched {
    uint64_t off; /* before the byte at this offset is handed in */
    ms_phase phase;
} sched;

#define MAX_SEQ 64

typedef struct pres {
    int rc;        /* 0: clean finish; -1: failed */
    int in_finish; /* the failure came from ms_reader_finish */
    ms_error_info err;
    char **line;
    size_t n, cap;
    /* the DATA run being merged */
    int in_run;
    uint64_t run_off, run_len, run_img;
    uint32_t run_seq;
    ms_phase run_phase;
    /* image bytes per seq, from DATA events */
    tb_buf img[MAX_SEQ];
    /* counts of broken invariants */
    size_t regress, bad_view, bad_bytes, bad_image, bad_field;
    size_t data_events, zero_copy, images;
    uint64_t last;
} pres;

typedef struct prun {
    int kind;            /* ms_options.payload_kind */
    uint64_t final;      /* payload_final_offset (0: use UINT64_MAX) */
    int has_final;
    size_t slice;        /* 0: one slice; n: slices of n bytes */
    uint64_t seed;       /* != 0: random slices */
    const sched *ph;     /* carrier phases */
    size_t nph;
    int verify;          /* verify_checks (default 1) */
} prun;

static void pres_free(pres *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->line[i]);
    free(r->line);
    for (int i = 0; i < MAX_SEQ; i++)
        tb_buf_free(&r->img[i]);
    memset(r, 0, sizeof *r);
}

static void add_line(pres *r, const char *d)
{
    if (r->n == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 64;
        r->line = realloc(r->line, r->cap * sizeof *r->line);
        if (!r->line)
            abort();
    }
    size_t n = strlen(d);
    r->line[r->n] = xmalloc(n + 1);
    memcpy(r->line[r->n++], d, n + 1);
}

static void end_run(pres *r)
{
    if (!r->in_run)
        return;
    char d[256];
    snprintf(d, sizeof d, "data @%llu+%llu seq=%u phase=%s img=%llu",
             (unsigned long long)r->run_off, (unsigned long long)r->run_len,
             r->run_seq, ms_phase_name(r->run_phase),
             (unsigned long long)r->run_img);
    add_line(r, d);
    r->in_run = 0;
}

static void collect(pres *r, const ms_event *ev, const uint8_t *src,
                    size_t src_len, const uint8_t *slice, size_t slice_len)
{
    if (ev->kind == MS_EV_STREAM_HEADER)
        return; /* every payload stream starts with it */
    if (ev->offset < r->last)
        r->regress++;
    r->last = ev->offset;
    char d[512];
    if (ev->kind == MS_EV_DATA) {
        const ms_data_info *x = &ev->u.data;
        r->data_events++;
        if (x->zero_copy) {
            r->zero_copy++;
            if (!(x->data >= slice && x->size <= slice_len &&
                  (size_t)(x->data - slice) <= slice_len - x->size))
                r->bad_view++;
        }
        if (x->stream_offset != ev->offset || ev->length != x->size ||
            x->stream_offset + x->size > src_len ||
            memcmp(x->data, src + x->stream_offset, x->size) != 0)
            r->bad_bytes++;
        if (x->seq < MAX_SEQ) {
            if (x->image_offset != r->img[x->seq].len)
                r->bad_bytes++;
            tb_put(&r->img[x->seq], x->data, x->size);
        }
        if (r->in_run && r->run_seq == x->seq && r->run_phase == x->phase &&
            r->run_off + r->run_len == ev->offset) {
            r->run_len += x->size;
            return;
        }
        end_run(r);
        r->in_run = 1;
        r->run_off = ev->offset;
        r->run_len = x->size;
        r->run_seq = x->seq;
        r->run_phase = x->phase;
        r->run_img = x->image_offset;
        return;
    }
    end_run(r);
    switch (ev->kind) {
    case MS_EV_PAYLOAD_RECORD: {
        const ms_payload_record *p = &ev->u.precord;
        snprintf(d, sizeof d,
                 "record @%llu+%llu kind=%u name=%s tag=%u flags=%u opt=%d "
                 "size=%llu value=%llu phase=%s",
                 (unsigned long long)ev->offset,
                 (unsigned long long)ev->length, p->payload_kind,
                 p->name ? p->name : "(null)", p->tag, p->flags, p->optional,
                 (unsigned long long)p->size, (unsigned long long)p->value,
                 ms_phase_name(p->phase));
        break;
    }
    case MS_EV_PAYLOAD_IMAGE: {
        const ms_image_info *im = &ev->u.image;
        r->images++;
        if (im->seq < MAX_SEQ &&
            (im->length != r->img[im->seq].len ||
             im->hash != tb_hash(r->img[im->seq].p, r->img[im->seq].len)))
            r->bad_image++;
        snprintf(d, sizeof d,
                 "image @%llu+%llu seq=%u phase=%s flags=%u length=%llu "
                 "units=%llu",
                 (unsigned long long)ev->offset,
                 (unsigned long long)ev->length, im->seq,
                 ms_phase_name(im->phase), im->flags,
                 (unsigned long long)im->length,
                 (unsigned long long)im->unit_count);
        break;
    }
    case MS_EV_PAYLOAD_FIELD: {
        const ms_payload_field *f = &ev->u.pfield;
        if (f->data && (ev->offset + f->size > src_len ||
                        memcmp(f->data, src + ev->offset, f->size) != 0))
            r->bad_field++;
        snprintf(d, sizeof d,
                 "field @%llu+%llu name=%s index=%u value=%llu size=%zu",
                 (unsigned long long)ev->offset,
                 (unsigned long long)ev->length, f->name ? f->name : "(null)",
                 f->index, (unsigned long long)f->value, f->size);
        break;
    }
    default:
        snprintf(d, sizeof d, "%s @%llu+%llu", ms_event_kind_name(ev->kind),
                 (unsigned long long)ev->offset,
                 (unsigned long long)ev->length);
        break;
    }
    add_line(r, d);
}

static void popt(ms_options *o, const prun *c)
{
    ms_options_init(o);
    o->format = MS_FORMAT_PAYLOAD;
    o->payload_kind = c->kind;
    o->payload_final_offset = c->has_final ? c->final : UINT64_MAX;
    o->verify_checks = 1;
}

/* Decode `len` bytes as described by `c`.  Returns res->rc. */
static int run(const uint8_t *src, size_t len, const prun *c, pres *res)
{
    memset(res, 0, sizeof *res);
    ms_options o;
    popt(&o, c);
    ms_reader *r = ms_reader_create(&o);
    assert_non_null(r);
    uint64_t rng = c->seed ? c->seed : 1;
    size_t pos = 0, k = 0;
    int failed = 0, first = 1;
    while (!failed) {
        while (k < c->nph && c->ph[k].off <= pos)
            ms_reader_set_phase(r, c->ph[k++].phase);
        if (pos == len && !first)
            break;
        first = 0;
        size_t n = len - pos;
        if (c->seed) {
            uint64_t x = tb_rand(&rng);
            n = x % 4 == 0 ? 1 + (size_t)(x >> 8) % 5000
                           : 1 + (size_t)(x >> 8) % 7;
        } else if (c->slice) {
            n = c->slice;
        }
        if (k < c->nph && c->ph[k].off - pos < n)
            n = (size_t)(c->ph[k].off - pos);
        if (n > len - pos)
            n = len - pos;
        /* an exact-size copy: views must lie inside it */
        uint8_t *s = xmalloc(n);
        if (n)
            memcpy(s, src + pos, n);
        if (ms_reader_input(r, n ? s : NULL, n) != 0) {
            failed = 1;
        } else {
            for (;;) {
                ms_event ev;
                memset(&ev, 0xA5, sizeof ev);
                int rc = ms_reader_next(r, &ev);
                if (rc == MS_NEXT_ERROR) {
                    failed = 1;
                    break;
                }
                if (rc == MS_NEXT_INPUT)
                    break;
                collect(res, &ev, src, len, s, n);
            }
        }
        free(s);
        pos += n;
    }
    end_run(res);
    if (!failed && ms_reader_finish(r) != 0) {
        failed = 1;
        res->in_finish = 1;
    }
    res->err = *ms_reader_error(r);
    res->rc = failed ? -1 : 0;
    if (failed) { /* sticky */
        ms_event ev;
        SOFT(ms_reader_next(r, &ev) == MS_NEXT_ERROR, "error not sticky");
        SOFT(ms_reader_error(r)->code == res->err.code, "code changed");
    }
    ms_reader_free(r);
    return res->rc;
}

static void print_lines(const pres *r)
{
    for (size_t i = 0; i < r->n; i++)
        print_message("    %s\n", r->line[i]);
}

static void check_invariants(const pres *r, const char *what)
{
    SOFT(r->regress == 0, "%s: %zu event offsets went back", what, r->regress);
    SOFT(r->bad_view == 0, "%s: %zu zero-copy views outside the slice", what,
         r->bad_view);
    SOFT(r->bad_bytes == 0, "%s: %zu DATA events with wrong bytes/offsets",
         what, r->bad_bytes);
    SOFT(r->bad_image == 0, "%s: %zu image events disagree with the DATA",
         what, r->bad_image);
    SOFT(r->bad_field == 0, "%s: %zu field views with wrong bytes", what,
         r->bad_field);
}

static int same_lines(const pres *a, const pres *b, const char *what)
{
    int ok = a->n == b->n;
    for (size_t i = 0; ok && i < a->n; i++)
        ok = strcmp(a->line[i], b->line[i]) == 0;
    ok = ok && a->rc == b->rc && a->err.code == b->err.code &&
         a->err.offset == b->err.offset;
    if (!ok) {
        SOFT(0, "%s: events differ", what);
        size_t i = 0;
        while (i < a->n && i < b->n && !strcmp(a->line[i], b->line[i]))
            i++;
        print_message("    first difference at line %zu:\n    A %s\n    B %s\n",
                      i, i < a->n ? a->line[i] : "(end)",
                      i < b->n ? b->line[i] : "(end)");
        print_message("    A rc=%d %s@%llu  B rc=%d %s@%llu\n", a->rc,
                      ms_error_name(a->err.code),
                      (unsigned long long)a->err.offset, b->rc,
                      ms_error_name(b->err.code),
                      (unsigned long long)b->err.offset);
    }
    return ok;
}

/* Decode in one slice, byte by byte and with a few random slicings: the
 * events must be identical.  The one-slice result is left in *out. */
static void run_all_ways(const uint8_t *src, size_t len, const prun *c,
                         pres *out, const char *what)
{
    prun w = *c;
    w.slice = 0;
    w.seed = 0;
    run(src, len, &w, out);
    check_invariants(out, what);
    pres b;
    w.slice = 1;
    run(src, len, &w, &b);
    check_invariants(&b, what);
    same_lines(out, &b, what);
    pres_free(&b);
    for (uint64_t seed = 1; seed <= 4; seed++) {
        w.slice = 0;
        w.seed = seed * 0x9E3779B97F4A7C15ull;
        run(src, len, &w, &b);
        check_invariants(&b, what);
        same_lines(out, &b, what);
        pres_free(&b);
    }
}

static void expect_lines(const pres *r, const char *const *want, size_t n,
                         const char *what)
{
    int ok = r->n == n;
    for (size_t i = 0; ok && i < n; i++)
        ok = strcmp(r->line[i], want[i]) == 0;
    if (!ok) {
        SOFT(0, "%s: unexpected events", what);
        for (size_t i = 0; i < n || i < r->n; i++) {
            const char *g = i < r->n ? r->line[i] : "(none)";
            const char *e = i < n ? want[i] : "(none)";
            print_message("    %s %s\n", strcmp(g, e) ? "got " : "    ", g);
            if (strcmp(g, e))
                print_message("    want %s\n", e);
        }
    }
}

/* snprintf into a static ring of lines (for expected-line tables) */
static const char *L(const char *fmt, ...)
{
    static char ring[1024][256];
    static int at;
    char *o = ring[at++ % 1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(o, 256, fmt, ap);
    va_end(ap);
    return o;
}

static int has_line(const pres *r, const char *want)
{
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->line[i], want) == 0)
            return 1;
    return 0;
}

/* Expect a failure with `code` at `offset`, the same in every slicing. */
static void expect_error(const uint8_t *src, size_t len, const prun *c,
                         ms_error code, uint64_t offset, const char *what)
{
    pres r;
    run_all_ways(src, len, c, &r, what);
    SOFT(r.rc == -1 && r.err.code == code && r.err.offset == offset,
         "%s: want %s at %llu, got rc=%d %s at %llu (%s)", what,
         ms_error_name(code), (unsigned long long)offset, r.rc,
         ms_error_name(r.err.code), (unsigned long long)r.err.offset,
         r.err.detail);
    pres_free(&r);
}

static void expect_clean(const uint8_t *src, size_t len, const prun *c,
                         const char *what)
{
    pres r;
    run_all_ways(src, len, c, &r, what);
    SOFT(r.rc == 0, "%s: want a clean end, got %s at %llu (%s)", what,
         ms_error_name(r.err.code), (unsigned long long)r.err.offset,
         r.err.detail);
    pres_free(&r);
}

/* ---- mlx5 ----------------------------------------------------------------------- */

/* The typical stream of the reference's grammar: STOP_COPY_SIZE, an
 * initial image, a middle image, then the final image in chunk mode (two
 * FW_DATA records; the first is over 64 KiB, so it goes out in several
 * views), with an unknown optional record between the chunks. */
typedef struct mlx5_stream {
    tb_buf b;
    size_t scs_at, init_at, mid_at, fin1_at, unk_at, fin2_at;
} mlx5_stream;

static void mlx5_typical(mlx5_stream *m)
{
    tb_buf_init(&m->b);
    m->scs_at = scs(&m->b, 0x12345678);
    m->init_at = fw(&m->b, 1000, 1);
    m->mid_at = fw(&m->b, 300, 2);
    m->fin1_at = fw(&m->b, 70000, 3);
    m->unk_at = sw(&m->b, 5, OPT, 9, "\1\2\3\4\5", 5);
    m->fin2_at = fw(&m->b, 2000, 4);
}

#define REC(at, size, name, tag, flags, value, phase)                         \
    L("record @%zu+%llu kind=1 name=%s tag=%u flags=%u opt=%d size=%llu "    \
      "value=%llu phase=%s",                                                  \
      (size_t)(at), (unsigned long long)(16 + (size)), name, (unsigned)(tag), \
      (unsigned)(flags), (int)((flags) & 1), (unsigned long long)(size),     \
      (unsigned long long)(value), phase)
#define DATA(at, len, seq, phase, img)                                        \
    L("data @%zu+%llu seq=%u phase=%s img=%llu", (size_t)(at),               \
      (unsigned long long)(len), (unsigned)(seq), phase,                      \
      (unsigned long long)(img))
#define IMAGE(at, seq, phase, flags, length, units)                           \
    L("image @%zu+0 seq=%u phase=%s flags=%u length=%llu units=%llu",        \
      (size_t)(at), (unsigned)(seq), phase, (unsigned)(flags),                \
      (unsigned long long)(length), (unsigned long long)(units))

/* The events of the typical stream with phases known (payload_final_offset
 * at the first final record, or the carrier saying so). */
static size_t mlx5_typical_expected(const mlx5_stream *m, const char **w)
{
    size_t n = 0, end = m->b.len;
    w[n++] = REC(m->scs_at, 8, "STOP_COPY_SIZE", 1, 1, 0x12345678, "initial");
    w[n++] = REC(m->init_at, 1000, "FW_DATA", 0, 0, 0, "initial");
    w[n++] = DATA(m->init_at + 16, 1000, 0, "initial", 0);
    w[n++] = IMAGE(m->mid_at, 0, "initial", 1, 1000, 1);
    w[n++] = REC(m->mid_at, 300, "FW_DATA", 0, 0, 0, "middle");
    w[n++] = DATA(m->mid_at + 16, 300, 1, "middle", 0);
    w[n++] = IMAGE(m->fin1_at, 1, "middle", 0, 300, 1);
    w[n++] = REC(m->fin1_at, 70000, "FW_DATA", 0, 0, 0, "final");
    w[n++] = DATA(m->fin1_at + 16, 70000, 2, "final", 0);
    w[n++] = IMAGE(m->unk_at, 2, "final", 0, 70000, 1);
    w[n++] = REC(m->unk_at, 5, "unknown", 9, 1, 0, "final");
    w[n++] = REC(m->fin2_at, 2000, "FW_DATA", 0, 0, 0, "final");
    w[n++] = DATA(m->fin2_at + 16, 2000, 2, "final", 70000);
    w[n++] = IMAGE(end, 2, "final", 0, 72000, 2);
    return n;
}

static void test_mlx5_final_offset(void **state)
{
    (void)state;
    BEGIN();
    mlx5_stream m;
    mlx5_typical(&m);
    const char *want[32];
    size_t n = mlx5_typical_expected(&m, want);
    prun c = {.kind = MS_PAYLOAD_MLX5, .has_final = 1, .final = m.fin1_at};
    pres r;
    run_all_ways(m.b.p, m.b.len, &c, &r, "mlx5 final offset");
    SOFT(r.rc == 0, "clean end: %s", r.err.detail);
    expect_lines(&r, want, n, "mlx5 final offset");
    SOFT(r.zero_copy == r.data_events, "FW_DATA bytes are views of the input");
    SOFT(r.data_events >= 4, "the 70000-byte record goes out in views");
    pres_free(&r);

    /* detection gives the same events */
    c.kind = -1;
    run_all_ways(m.b.p, m.b.len, &c, &r, "mlx5 detected");
    expect_lines(&r, want, n, "mlx5 detected");
    pres_free(&r);
    tb_buf_free(&m.b);
    DONE();
}

static void test_mlx5_no_phase(void **state)
{
    (void)state;
    BEGIN();
    mlx5_stream m;
    mlx5_typical(&m);
    prun c = {.kind = MS_PAYLOAD_MLX5};
    pres r;
    run_all_ways(m.b.p, m.b.len, &c, &r, "mlx5 no phase");
    const char *want[] = {
        REC(m.scs_at, 8, "STOP_COPY_SIZE", 1, 1, 0x12345678, "none"),
        REC(m.init_at, 1000, "FW_DATA", 0, 0, 0, "none"),
        DATA(m.init_at + 16, 1000, 0, "none", 0),
        IMAGE(m.mid_at, 0, "none", 0, 1000, 1),
        REC(m.mid_at, 300, "FW_DATA", 0, 0, 0, "none"),
        DATA(m.mid_at + 16, 300, 1, "none", 0),
        IMAGE(m.fin1_at, 1, "none", 0, 300, 1),
        REC(m.fin1_at, 70000, "FW_DATA", 0, 0, 0, "none"),
        DATA(m.fin1_at + 16, 70000, 2, "none", 0),
        IMAGE(m.unk_at, 2, "none", 0, 70000, 1),
        REC(m.unk_at, 5, "unknown", 9, 1, 0, "none"),
        REC(m.fin2_at, 2000, "FW_DATA", 0, 0, 0, "none"),
        DATA(m.fin2_at + 16, 2000, 3, "none", 0),
        IMAGE(m.b.len, 3, "none", 0, 2000, 1),
    };
    SOFT(r.rc == 0, "clean end");
    expect_lines(&r, want, sizeof want / sizeof *want, "mlx5 no phase");
    pres_free(&r);

    /* final offset 0 (STOP -> STOP_COPY directly): one final image */
    c.has_final = 1;
    c.final = 0;
    run_all_ways(m.b.p, m.b.len, &c, &r, "mlx5 all final");
    SOFT(has_line(&r, IMAGE(m.b.len, 0, "final", 0, 1000 + 300 + 70000 + 2000,
                            4)),
         "all FW_DATA records in the final phase form one image");
    SOFT(r.images == 4, "one image event per FW_DATA record (%zu)", r.images);
    pres_free(&r);
    tb_buf_free(&m.b);
    DONE();
}

static void test_mlx5_carrier_phases(void **state)
{
    (void)state;
    BEGIN();
    mlx5_stream m;
    mlx5_typical(&m);
    const char *want[32];
    size_t n = mlx5_typical_expected(&m, want);
    pres r;

    /* QEMU without switchover-ack: every PART byte is "initial"; the
     * grammar makes the second image a middle one.  The carrier overrides
     * a (wrong) final offset. */
    sched s1[] = {{0, MS_PHASE_INITIAL},
                  {m.mid_at, MS_PHASE_INITIAL},
                  {m.fin1_at, MS_PHASE_FINAL}};
    prun c = {.kind = MS_PAYLOAD_MLX5, .has_final = 1, .final = 10,
              .ph = s1, .nph = 3};
    run_all_ways(m.b.p, m.b.len, &c, &r, "carrier");
    expect_lines(&r, want, n, "carrier");
    pres_free(&r);

    /* The carrier knows nothing (NONE): the final offset decides. */
    sched s2[] = {{0, MS_PHASE_NONE}};
    prun c2 = {.kind = MS_PAYLOAD_MLX5, .has_final = 1, .final = m.fin1_at,
               .ph = s2, .nph = 1};
    run_all_ways(m.b.p, m.b.len, &c2, &r, "carrier none");
    expect_lines(&r, want, n, "carrier none");
    pres_free(&r);

    /* The carrier says "middle" at the second record (switchover-ack),
     * "final" 5 bytes into the first final record's header: that record
     * was begun in the middle phase and stays a middle image; the next
     * FW_DATA starts the final image. */
    sched s3[] = {{0, MS_PHASE_INITIAL},
                  {m.mid_at, MS_PHASE_MIDDLE},
                  {m.fin1_at + 5, MS_PHASE_FINAL}};
    prun c3 = {.kind = MS_PAYLOAD_MLX5, .ph = s3, .nph = 3};
    run_all_ways(m.b.p, m.b.len, &c3, &r, "carrier inside a header");
    const char *want3[] = {
        REC(m.scs_at, 8, "STOP_COPY_SIZE", 1, 1, 0x12345678, "initial"),
        REC(m.init_at, 1000, "FW_DATA", 0, 0, 0, "initial"),
        DATA(m.init_at + 16, 1000, 0, "initial", 0),
        IMAGE(m.mid_at, 0, "initial", 1, 1000, 1),
        REC(m.mid_at, 300, "FW_DATA", 0, 0, 0, "middle"),
        DATA(m.mid_at + 16, 300, 1, "middle", 0),
        IMAGE(m.fin1_at, 1, "middle", 0, 300, 1),
        REC(m.fin1_at, 70000, "FW_DATA", 0, 0, 0, "middle"),
        DATA(m.fin1_at + 16, 70000, 2, "middle", 0),
        IMAGE(m.unk_at, 2, "middle", 0, 70000, 1),
        REC(m.unk_at, 5, "unknown", 9, 1, 0, "final"),
        REC(m.fin2_at, 2000, "FW_DATA", 0, 0, 0, "final"),
        DATA(m.fin2_at + 16, 2000, 3, "final", 0),
        IMAGE(m.b.len, 3, "final", 0, 2000, 1),
    };
    expect_lines(&r, want3, sizeof want3 / sizeof *want3,
                 "carrier inside a header");
    pres_free(&r);

    /* Phase order: final, then an initial record. */
    sched s4[] = {{0, MS_PHASE_FINAL}, {m.mid_at, MS_PHASE_INITIAL}};
    prun c4 = {.kind = MS_PAYLOAD_MLX5, .ph = s4, .nph = 2};
    expect_error(m.b.p, m.b.len, &c4, MS_ERR_PHASE_ORDER, m.mid_at,
                 "phase order");
    tb_buf_free(&m.b);
    DONE();
}

/* Truncation at every offset of a small stream: a clean end exactly at
 * record boundaries (events then a prefix of the full stream's), else
 * `truncated` at the cut. */
static void truncation_sweep(const tb_buf *b, const size_t *bounds,
                             size_t nb, int kind, const char *what)
{
    prun c = {.kind = kind};
    pres full;
    run(b->p, b->len, &c, &full);
    SOFT(full.rc == 0, "%s: full stream: %s", what, full.err.detail);
    for (size_t cut = 0; cut <= b->len; cut++) {
        int boundary = 0;
        for (size_t i = 0; i < nb; i++)
            boundary |= bounds[i] == cut;
        for (int way = 0; way < 2; way++) {
            if (way && cut % 7) /* byte by byte: every 7th cut */
                continue;
            prun w = c;
            w.slice = way;
            pres r;
            run(b->p, cut, &w, &r);
            if (boundary) {
                int prefix = r.n <= full.n;
                for (size_t i = 0; prefix && i < r.n; i++)
                    prefix = !strcmp(r.line[i], full.line[i]);
                SOFT(r.rc == 0 && prefix,
                     "%s: cut at boundary %zu: rc=%d %s (%s), prefix=%d",
                     what, cut, r.rc, ms_error_name(r.err.code),
                     r.err.detail, prefix);
            } else {
                SOFT(r.rc == -1 && r.err.code == MS_ERR_TRUNCATED &&
                         r.err.offset == cut && r.in_finish,
                     "%s: cut at %zu: rc=%d %s at %llu (%s)", what, cut, r.rc,
                     ms_error_name(r.err.code),
                     (unsigned long long)r.err.offset, r.err.detail);
            }
            pres_free(&r);
        }
    }
    pres_free(&full);
}

static void test_mlx5_truncation(void **state)
{
    (void)state;
    BEGIN();
    tb_buf b;
    tb_buf_init(&b);
    size_t bounds[8], nb = 0;
    bounds[nb++] = 0;
    scs(&b, 99);
    bounds[nb++] = b.len;
    fw(&b, 100, 1);
    bounds[nb++] = b.len;
    sw(&b, 3, OPT, 77, "abc", 3);
    bounds[nb++] = b.len;
    fw(&b, 0, 2); /* an empty image */
    bounds[nb++] = b.len;
    fw(&b, 333, 3);
    bounds[nb++] = b.len;
    truncation_sweep(&b, bounds, nb, MS_PAYLOAD_MLX5, "mlx5");
    tb_buf_free(&b);
    DONE();
}

static void test_mlx5_rules(void **state)
{
    (void)state;
    BEGIN();
    prun c = {.kind = MS_PAYLOAD_MLX5};
    tb_buf b;
    tb_buf_init(&b);
    size_t at;

    /* unknown tag, mandatory: the target rejects it (EOPNOTSUPP) */
    scs(&b, 1);
    at = sw(&b, 4, 0, 7, "abcd", 4);
    fw(&b, 10, 1);
    expect_error(b.p, b.len, &c, MS_ERR_UNKNOWN_MANDATORY, at,
                 "unknown mandatory tag");
    /* the same tag optional: read and discarded */
    tb_buf_reset(&b);
    scs(&b, 1);
    at = sw(&b, 4, OPT | 0x100, 7, "abcd", 4);
    fw(&b, 10, 1);
    {
        pres r;
        run_all_ways(b.p, b.len, &c, &r, "unknown optional");
        SOFT(r.rc == 0, "unknown optional: %s", r.err.detail);
        SOFT(has_line(&r, L("record @%zu+20 kind=1 name=unknown tag=7 "
                            "flags=257 opt=1 size=4 value=0 phase=none",
                            at)),
             "unknown optional record reported");
        SOFT(r.images == 1, "one image");
        pres_free(&r);
    }
    /* STOP_COPY_SIZE: record_size must be 8 (the kernel misses it) */
    uint8_t v16[16] = {1};
    tb_buf_reset(&b);
    at = sw(&b, 16, OPT, STOP_COPY_SIZE, v16, 16);
    fw(&b, 10, 1);
    expect_error(b.p, b.len, &c, MS_ERR_PAYLOAD, at, "STOP_COPY_SIZE 16");
    tb_buf_reset(&b);
    fw(&b, 10, 1);
    at = sw(&b, 4, OPT, STOP_COPY_SIZE, v16, 4);
    expect_error(b.p, b.len, &c, MS_ERR_PAYLOAD, at, "STOP_COPY_SIZE 4");
    /* STOP_COPY_SIZE is emitted optional, FW_DATA mandatory */
    tb_buf_reset(&b);
    at = sw(&b, 8, 0, STOP_COPY_SIZE, v16, 8);
    expect_error(b.p, b.len, &c, MS_ERR_PAYLOAD, at, "mandatory SCS");
    tb_buf_reset(&b);
    scs(&b, 5);
    at = sw(&b, 3, OPT, FW_DATA, "xyz", 3);
    expect_error(b.p, b.len, &c, MS_ERR_PAYLOAD, at, "optional FW_DATA");
    /* record_size above 2^32-1: the kernel's limit (checked first) */
    tb_buf_reset(&b);
    scs(&b, 5);
    at = sw(&b, 1ull << 32, 0, FW_DATA, "xyz", 3);
    expect_error(b.p, b.len, &c, MS_ERR_PAYLOAD, at, "record_size 2^32");
    tb_buf_reset(&b);
    at = sw(&b, UINT64_MAX, 0, 7, NULL, 0);
    expect_error(b.p, b.len, &c, MS_ERR_PAYLOAD, at, "record_size 2^64-1");
    /* 2^32-1 is allowed: streamed, so cut short here */
    tb_buf_reset(&b);
    sw(&b, 0xFFFFFFFFull, 0, FW_DATA, "xyz", 3);
    expect_error(b.p, b.len, &c, MS_ERR_TRUNCATED, b.len,
                 "record_size 2^32-1");
    tb_buf_reset(&b);
    sw(&b, 0xFFFFFFFFull, OPT, 42, "xyz", 3); /* skipped, never buffered */
    expect_error(b.p, b.len, &c, MS_ERR_TRUNCATED, b.len,
                 "unknown optional 2^32-1");
    /* partial trailing record / header */
    tb_buf_reset(&b);
    scs(&b, 5);
    fw(&b, 50, 1);
    b.len -= 10;
    expect_error(b.p, b.len, &c, MS_ERR_TRUNCATED, b.len, "partial record");
    tb_buf_reset(&b);
    scs(&b, 5);
    fw(&b, 50, 1);
    b.len -= 60;
    expect_error(b.p, b.len, &c, MS_ERR_TRUNCATED, b.len, "partial header");
    /* other flag bits are not checked (the kernel does not) */
    tb_buf_reset(&b);
    sw(&b, 8, OPT | 0xF0, STOP_COPY_SIZE, v16, 8);
    sw(&b, 3, 0x80000000u, FW_DATA, "abc", 3);
    expect_clean(b.p, b.len, &c, "other flag bits");
    /* an empty stream ends at a record boundary */
    expect_clean(b.p, 0, &c, "empty");
    tb_buf_free(&b);
    DONE();
}

/* ---- virtio ----------------------------------------------------------------------- */

static const uint64_t dev_feat[2] = {0x0000000130000067ull, 0x1ull};
static const uint64_t drv_feat[1] = {0x0000000130000023ull};

/* One snapshot with every part type; offsets (within the payload) of the
 * parts in o[]. */
static void vsnap(tb_buf *p, size_t o[12])
{
    size_t k = 0;
    o[k++] = p_features(p, DEV_FEATURES, dev_feat, 2);
    o[k++] = p_features(p, DRV_FEATURES, drv_feat, 1);
    o[k++] = p_cfg(p, 18, 2, 2);      /* num_queues */
    o[k++] = p_cfg(p, 16, 0xffff, 2); /* config_msix_vector: any order */
    o[k++] = p_status(p, 0x0f);
    static const char devspec[] = "device-specific state of forty bytes...";
    o[k++] = part(p, 0x0201, 0, 0x55, devspec, 40); /* walked, mandatory */
    o[k++] = p_vq(p, 0);
    o[k++] = p_vq(p, 1);
    o[k++] = p_notify(p, 0);
    o[k++] = p_notify(p, 1);
    o[k++] = part(p, 0x0700, OPT, 0, "hello", 5); /* reserved, optional */
}

#define FIELD(at, len, name, index, value, size)                              \
    L("field @%zu+%llu name=%s index=%u value=%llu size=%zu", (size_t)(at),  \
      (unsigned long long)(len), name, (unsigned)(index),                     \
      (unsigned long long)(value), (size_t)(size))
#define VREC(at, size, phase)                                                 \
    L("record @%zu+%llu kind=2 name=DEVICE_DATA tag=0 flags=0 opt=0 "        \
      "size=%llu value=0 phase=%s",                                           \
      (size_t)(at), (unsigned long long)(16 + (size)),                        \
      (unsigned long long)(size), phase)

static size_t vsnap_expected(size_t rec, const size_t *o, size_t size,
                             uint32_t seq, const char *phase, const char **w)
{
    size_t n = 0, b = rec + 16;
#define D(i, len) (w[n++] = DATA(b + o[i], len, seq, phase, o[i]))
    w[n++] = VREC(rec, size, phase);
    D(0, 32);
    w[n++] = FIELD(b + o[0] + 16, 8, "DEV_FEATURES", 0, dev_feat[0], 8);
    w[n++] = FIELD(b + o[0] + 24, 8, "DEV_FEATURES", 1, dev_feat[1], 8);
    D(1, 24);
    w[n++] = FIELD(b + o[1] + 16, 8, "DRV_FEATURES", 0, drv_feat[0], 8);
    D(2, 18);
    w[n++] = FIELD(b + o[2] + 16, 2, "PCI_COMMON_CFG.num_queues", 18, 2, 2);
    D(3, 18);
    w[n++] = FIELD(b + o[3] + 16, 2, "PCI_COMMON_CFG.config_msix_vector", 16,
                   0xffff, 2);
    D(4, 17);
    w[n++] = FIELD(b + o[4] + 16, 1, "DEVICE_STATUS", 0, 0x0f, 1);
    D(5, 16);
    w[n++] = FIELD(b + o[5], 56, "device-specific part", 0, 0x201, 0);
    /* its value and the next part's bytes: one run (no event between) */
    w[n++] = DATA(b + o[5] + 16, 40 + 48, seq, phase, o[5] + 16);
    for (uint16_t q = 0; q < 2; q++) {
        size_t v = b + o[6 + q] + 16;
        if (q)
            D(6 + q, 48);
        w[n++] = FIELD(v, 2, "VQ_CFG.queue_size", q, 256, 2);
        w[n++] = FIELD(v + 2, 2, "VQ_CFG.vector", q, q + 1, 2);
        w[n++] = FIELD(v + 4, 2, "VQ_CFG.enabled", q, 1, 2);
        w[n++] = FIELD(v + 8, 8, "VQ_CFG.desc", q, 0x10000ull * (q + 1), 8);
        w[n++] = FIELD(v + 16, 8, "VQ_CFG.driver", q, 0x20000ull * (q + 1), 8);
        w[n++] = FIELD(v + 24, 8, "VQ_CFG.device", q, 0x30000ull * (q + 1), 8);
    }
    for (uint16_t q = 0; q < 2; q++) {
        size_t v = b + o[8 + q] + 16;
        D(8 + q, 24);
        w[n++] = FIELD(v, 2, "VQ_NOTIFY_CFG.notify_off", q, q, 2);
        w[n++] = FIELD(v + 2, 2, "VQ_NOTIFY_CFG.notif_config_data", q,
                       0x10 + q, 2);
    }
    D(10, 16);
    w[n++] = FIELD(b + o[10], 21, "unknown optional part", 1, 0x700, 0);
    w[n++] = DATA(b + o[10] + 16, 5, seq, phase, o[10] + 16);
    w[n++] = IMAGE(b + size, seq, phase, 1, size, 1);
#undef D
    return n;
}

static void test_virtio_stream(void **state)
{
    (void)state;
    BEGIN();
    tb_buf p, b;
    tb_buf_init(&p);
    tb_buf_init(&b);
    size_t o[12];
    vsnap(&p, o);
    size_t r0 = vrec(&b, &p);
    size_t r1 = vrec(&b, &p);
    size_t r2 = vrec(&b, &p);
    const char *want[160];
    size_t n = 0;

    prun c = {.kind = MS_PAYLOAD_VIRTIO};
    pres r;
    run_all_ways(b.p, b.len, &c, &r, "virtio");
    n = vsnap_expected(r0, o, p.len, 0, "none", want);
    n += vsnap_expected(r1, o, p.len, 1, "none", want + n);
    n += vsnap_expected(r2, o, p.len, 2, "none", want + n);
    SOFT(r.rc == 0, "virtio: %s", r.err.detail);
    expect_lines(&r, want, n, "virtio");
    pres_free(&r);

    /* phases: precopy snapshots (initial, then middle), the final one */
    c.has_final = 1;
    c.final = r2;
    run_all_ways(b.p, b.len, &c, &r, "virtio phases");
    n = vsnap_expected(r0, o, p.len, 0, "initial", want);
    n += vsnap_expected(r1, o, p.len, 1, "middle", want + n);
    n += vsnap_expected(r2, o, p.len, 2, "final", want + n);
    expect_lines(&r, want, n, "virtio phases");
    pres_free(&r);

    /* detection */
    c.kind = -1;
    run_all_ways(b.p, b.len, &c, &r, "virtio detected");
    expect_lines(&r, want, n, "virtio detected");
    pres_free(&r);

    /* truncation at every offset of two records */
    size_t bounds[] = {0, r1, r2, b.len};
    truncation_sweep(&b, bounds, 4, MS_PAYLOAD_VIRTIO, "virtio");
    tb_buf_free(&p);
    tb_buf_free(&b);
    DONE();
}

/* One rule violation per case: the parts of a DEVICE_DATA record (after
 * another, valid record, so offsets are not trivially small) and the
 * expected code and offset (of the part, or of its offending field). */
static void virtio_case(int id, tb_buf *p, ms_error *code, size_t *off,
                        const char **what)
{
    size_t at;
    uint8_t v[64] = {0};
    const uint64_t w1[1] = {1}, w2[2] = {1, 2};
    *code = MS_ERR_PAYLOAD;
#define BASE() (p_features(p, DEV_FEATURES, w1, 1),                          \
                p_features(p, DRV_FEATURES, w1, 1))
    switch (id) {
    case 0:
        *what = "DRV_FEATURES before DEV_FEATURES";
        p_features(p, DRV_FEATURES, w1, 1);
        *off = p_features(p, DEV_FEATURES, w1, 1);
        p_status(p, 1);
        break;
    case 1:
        *what = "VQ_CFG before DEVICE_STATUS";
        BASE();
        p_vq(p, 0);
        *off = p_status(p, 1);
        break;
    case 2:
        *what = "VQ_NOTIFY_CFG before VQ_CFG";
        BASE();
        p_status(p, 1);
        p_notify(p, 0);
        *off = p_vq(p, 0);
        break;
    case 3:
        *what = "PCI_COMMON_CFG after DEVICE_STATUS";
        BASE();
        p_status(p, 1);
        *off = p_cfg(p, 18, 1, 2);
        break;
    case 4:
        *what = "two DEV_FEATURES";
        p_features(p, DEV_FEATURES, w1, 1);
        *off = p_features(p, DEV_FEATURES, w2, 2);
        p_status(p, 1);
        break;
    case 5:
        *what = "two DRV_FEATURES";
        BASE();
        *off = p_features(p, DRV_FEATURES, w1, 1);
        p_status(p, 1);
        break;
    case 6:
        *what = "no DEVICE_STATUS";
        BASE();
        p_vq(p, 0);
        *off = SIZE_MAX; /* the record */
        break;
    case 7:
        *what = "two DEVICE_STATUS";
        BASE();
        p_status(p, 1);
        *off = p_status(p, 3);
        break;
    case 8:
        *what = "PCI_COMMON_CFG offset twice";
        BASE();
        p_cfg(p, 18, 1, 2);
        p_cfg(p, 16, 1, 2);
        *off = p_cfg(p, 18, 1, 2);
        p_status(p, 1);
        break;
    case 9:
        *what = "VQ_CFG queue twice";
        BASE();
        p_status(p, 1);
        p_vq(p, 1);
        p_vq(p, 0);
        *off = p_vq(p, 1);
        break;
    case 10:
        *what = "VQ_NOTIFY_CFG queue twice";
        BASE();
        p_status(p, 1);
        p_notify(p, 0);
        *off = p_notify(p, 0);
        break;
    case 11:
        *what = "VQ_CFG of 31 bytes";
        BASE();
        p_status(p, 1);
        *off = part(p, VQ_CFG, 0, 0, v, 31) + 12;
        break;
    case 12:
        *what = "VQ_NOTIFY_CFG of 12 bytes";
        BASE();
        p_status(p, 1);
        *off = part(p, VQ_NOTIFY_CFG, 0, 0, v, 12) + 12;
        break;
    case 13:
        *what = "DEVICE_STATUS of 2 bytes";
        BASE();
        *off = part(p, DEVICE_STATUS, 0, 0, v, 2) + 12;
        break;
    case 14:
        *what = "features of 12 bytes";
        *off = part(p, DEV_FEATURES, OPT, 0, v, 12) + 12;
        p_status(p, 1);
        break;
    case 15:
        *what = "part reserved byte";
        BASE();
        at = p_status(p, 1);
        p->p[at + 3] = 1;
        *off = at + 3;
        break;
    case 16:
        *what = "PCI_COMMON_CFG selector reserved";
        BASE();
        *off = part(p, PCI_COMMON_CFG, 0, 18 | (1ull << 48), v, 2) + 4 + 6;
        p_status(p, 1);
        break;
    case 17:
        *what = "VQ_CFG selector reserved";
        BASE();
        p_status(p, 1);
        vq_cfg_value(v, 0);
        *off = part(p, VQ_CFG, 0, 1ull << 16, v, 32) + 4 + 2;
        break;
    case 18:
        *what = "DEVICE_STATUS selector not 0";
        BASE();
        *off = part(p, DEVICE_STATUS, 0, 1, v, 1) + 4;
        break;
    case 19:
        *what = "DRV_FEATURES selector not 0";
        p_features(p, DEV_FEATURES, w1, 1);
        *off = part(p, DRV_FEATURES, 0, 1ull << 56, v, 8) + 4 + 7;
        p_status(p, 1);
        break;
    case 20:
        *what = "VQ_CFG reserved le16";
        BASE();
        p_status(p, 1);
        vq_cfg_value(v, 0);
        v[7] = 0x80;
        *off = part(p, VQ_CFG, 0, 0, v, 32) + 16 + 6;
        break;
    case 21:
        *what = "VQ_NOTIFY_CFG reserved";
        BASE();
        p_status(p, 1);
        memset(v, 0, 8);
        v[6] = 1;
        *off = part(p, VQ_NOTIFY_CFG, 0, 3, v, 8) + 16 + 4;
        break;
    case 22:
        *what = "unknown common type, mandatory";
        BASE();
        p_status(p, 1);
        *off = part(p, 0x0150, 0, 0, v, 4);
        *code = MS_ERR_UNKNOWN_MANDATORY;
        break;
    case 23:
        *what = "reserved type 0x0600, mandatory";
        BASE();
        p_status(p, 1);
        *off = part(p, 0x0600, 0, 0, v, 4);
        *code = MS_ERR_UNKNOWN_MANDATORY;
        break;
    case 24:
        *what = "reserved type 0xFFFF, mandatory";
        BASE();
        *off = part(p, 0xFFFF, 0, 0, NULL, 0);
        p_status(p, 1);
        *code = MS_ERR_UNKNOWN_MANDATORY;
        break;
    case 25:
        *what = "part crossing its record";
        BASE();
        p_status(p, 1);
        at = part(p, 0x0300, 0, 0, v, 10);
        tb_set_le32(p->p + at + 12, 11);
        *off = at + 12;
        break;
    case 26:
        *what = "bytes left after the last part";
        BASE();
        p_status(p, 1);
        *off = p->len;
        tb_put(p, "12345", 5);
        break;
    case 27: {
        *what = "features above the 64 KiB part limit";
        size_t n = 65536 + 8;
        uint8_t *big = calloc(1, n);
        *off = part(p, DEV_FEATURES, OPT, 0, big, (uint32_t)n) + 12;
        free(big);
        p_status(p, 1);
        *code = MS_ERR_LIMIT;
        break;
    }
    default:
        *what = NULL;
        break;
    }
#undef BASE
}

static void test_virtio_rules(void **state)
{
    (void)state;
    BEGIN();
    prun c = {.kind = MS_PAYLOAD_VIRTIO};
    tb_buf good, p, b;
    tb_buf_init(&good);
    tb_buf_init(&p);
    tb_buf_init(&b);
    size_t o[12];
    vsnap(&good, o);
    for (int id = 0;; id++) {
        tb_buf_reset(&p);
        tb_buf_reset(&b);
        ms_error code;
        size_t off;
        const char *what;
        virtio_case(id, &p, &code, &off, &what);
        if (!what)
            break;
        vrec(&b, &good);
        size_t rec = vrec(&b, &p);
        vrec(&b, &good);
        uint64_t want = off == SIZE_MAX ? rec : rec + 16 + off;
        expect_error(b.p, b.len, &c, code, want, what);
    }

    /* optional parts of unknown or reserved types are skipped; device-type
     * specific ones are walked whatever their flag */
    tb_buf_reset(&p);
    tb_buf_reset(&b);
    const uint64_t w1[1] = {5};
    part(&p, 0x0000, OPT, 0, "a", 1);
    p_features(&p, DEV_FEATURES, w1, 1);
    part(&p, 0x01FF, OPT, 0, "b", 1);
    part(&p, 0x0600, OPT, 7, "c", 1);
    part(&p, 0x05FF, 0, 9, "dddd", 4);
    part(&p, 0x0200, OPT, 0, NULL, 0);
    p_status(&p, 0);
    part(&p, DEV_FEATURES - 1, OPT, 0, NULL, 0);
    part(&p, 0xFFFF, OPT, 0, NULL, 0);
    vrec(&b, &p);
    expect_clean(b.p, b.len, &c, "optional and device-specific parts");
    /* the minimum: a DEVICE_STATUS alone; features of zero words */
    tb_buf_reset(&p);
    tb_buf_reset(&b);
    part(&p, DRV_FEATURES, 0, 0, NULL, 0);
    p_status(&p, 0);
    vrec(&b, &p);
    expect_clean(b.p, b.len, &c, "DEVICE_STATUS alone");

    /* record level: DEVICE_DATA mandatory; unknown tags; size limit */
    tb_buf_reset(&b);
    vrec(&b, &good);
    size_t at = sw(&b, good.len, OPT, DEVICE_DATA, good.p, good.len);
    expect_error(b.p, b.len, &c, MS_ERR_PAYLOAD, at, "optional DEVICE_DATA");
    tb_buf_reset(&b);
    vrec(&b, &good);
    at = sw(&b, 3, 0, 1, "abc", 3); /* mlx5's STOP_COPY_SIZE tag: unknown */
    expect_error(b.p, b.len, &c, MS_ERR_UNKNOWN_MANDATORY, at,
                 "unknown virtio tag");
    tb_buf_reset(&b);
    vrec(&b, &good);
    sw(&b, 3, OPT, 1, "abc", 3);
    vrec(&b, &good);
    expect_clean(b.p, b.len, &c, "unknown optional virtio tag");
    tb_buf_reset(&b);
    at = sw(&b, 1ull << 32, 0, DEVICE_DATA, good.p, good.len);
    expect_error(b.p, b.len, &c, MS_ERR_PAYLOAD, at, "virtio record_size");
    /* an empty DEVICE_DATA record has no DEVICE_STATUS */
    tb_buf_reset(&b);
    at = sw(&b, 0, 0, DEVICE_DATA, NULL, 0);
    expect_error(b.p, b.len, &c, MS_ERR_PAYLOAD, at, "empty DEVICE_DATA");

    tb_buf_free(&good);
    tb_buf_free(&p);
    tb_buf_free(&b);
    DONE();
}

/* ---- pds and raw --------------------------------------------------------------- */

static void test_pds_raw(void **state)
{
    (void)state;
    BEGIN();
    size_t n = 65536 + 1;
    uint8_t *d = xmalloc(n);
    tb_fill_random(d, n, 7);
    pres r;
    prun c = {.kind = MS_PAYLOAD_PDS};
    run(d, 65536, &c, &r);
    check_invariants(&r, "pds");
    SOFT(r.rc == 0 && r.n == 2, "pds of 65536 bytes: %s", r.err.detail);
    SOFT(r.n == 2 && !strcmp(r.line[1], IMAGE(65536, 0, "none", 0, 65536, 0)),
         "one image of 65536 bytes");
    pres_free(&r);
    c.slice = 1000; /* several slices: the last image event has it all */
    run(d, 65536, &c, &r);
    check_invariants(&r, "pds slices");
    SOFT(r.rc == 0 && r.n >= 2 &&
             !strcmp(r.line[r.n - 1], IMAGE(65536, 0, "none", 0, 65536, 0)),
         "pds in slices");
    pres_free(&r);
    /* one byte too many; image events come once per slice, so only the
     * error is compared across slicings */
    for (int way = 0; way < 4; way++) {
        c.slice = way == 1 ? 1 : 0;
        c.seed = way > 1 ? (uint64_t)way * 77 : 0;
        run(d, n, &c, &r);
        check_invariants(&r, "pds over");
        SOFT(r.rc == -1 && r.err.code == MS_ERR_PAYLOAD &&
                 r.err.offset == 65536,
             "pds of 65537 bytes (way %d): %s at %llu", way,
             ms_error_name(r.err.code), (unsigned long long)r.err.offset);
        pres_free(&r);
    }
    c.slice = 0;
    c.seed = 0;
    expect_clean(d, 0, &c, "empty pds");

    /* raw: any length; each DATA view carries its bytes' phase, the image
     * that of its first byte */
    prun raw = {.kind = MS_PAYLOAD_RAW, .has_final = 1, .final = 40000};
    run(d, n, &raw, &r);
    check_invariants(&r, "raw");
    SOFT(r.rc == 0 && r.n == 3, "raw: %zu events", r.n);
    SOFT(r.n == 3 && !strcmp(r.line[0], DATA(0, 40000, 0, "initial", 0)) &&
             !strcmp(r.line[1], DATA(40000, n - 40000, 0, "final", 40000)) &&
             !strcmp(r.line[2], IMAGE(n, 0, "initial", 0, n, 0)),
         "raw phases");
    if (r.n != 3)
        print_lines(&r);
    pres_free(&r);
    free(d);
    DONE();
}

/* ---- detection ------------------------------------------------------------------ */

static void test_detect(void **state)
{
    (void)state;
    BEGIN();
    tb_buf b, p;
    tb_buf_init(&b);
    tb_buf_init(&p);
    size_t o[12];

    scs(&b, 1);
    fw(&b, 10, 1);
    SOFT(ms_payload_detect(b.p, b.len) == MS_PAYLOAD_MLX5, "mlx5");
    SOFT(ms_payload_detect(b.p, 16) == MS_PAYLOAD_MLX5, "mlx5 in 16 bytes");
    SOFT(ms_payload_detect(b.p, 15) == -2, "mlx5 in 15 bytes: more needed");

    tb_buf_reset(&b);
    vsnap(&p, o);
    vrec(&b, &p);
    SOFT(ms_payload_detect(b.p, b.len) == MS_PAYLOAD_VIRTIO, "virtio");
    SOFT(ms_payload_detect(b.p, 17) == -2, "virtio in 17 bytes");
    /* an old (6.2) mlx5 stream: a mandatory FW_DATA first, like virtio's
     * DEVICE_DATA, but its payload is not device parts */
    tb_buf_reset(&b);
    fw(&b, 100, 3);
    b.p[16] = 0x00;
    b.p[17] = 0x07;
    SOFT(ms_payload_detect(b.p, b.len) == -1, "old mlx5: cannot tell");

    uint8_t h[176] = {0};
    tb_set_le64(h, 0xAACCFEEDDECADEDEull);
    SOFT(ms_payload_detect(h, 40) == MS_PAYLOAD_HISI_ACC, "hisi V2");
    tb_set_le64(h, 0xCDCDCDCDFEEDAACCull);
    SOFT(ms_payload_detect(h, 176) == MS_PAYLOAD_HISI_ACC, "hisi V1");
    SOFT(ms_payload_detect(h, 7) == -2, "hisi magic cut");

    uint8_t q[4096] = {0};
    tb_set_le32(q, 0xADF5CAEAu);
    tb_set_le32(q + 4, 1);
    tb_set_le16(q + 8, 16);
    SOFT(ms_payload_detect(q, sizeof q) == MS_PAYLOAD_QAT, "qat");
    tb_set_le16(q + 8, 20);
    SOFT(ms_payload_detect(q, sizeof q) == -1, "qat magic, preh_len 20");

    uint8_t x[64] = {0};
    x[0] = 1; /* version */
    x[1] = 1; /* DESCRIPTOR */
    tb_set_le64(x + 16, 8);
    tb_set_le32(x + 24, 0xF0010001u);
    SOFT(ms_payload_detect(x, sizeof x) == MS_PAYLOAD_XE, "xe");
    SOFT(ms_payload_detect(x, 27) == -2, "xe in 27 bytes");
    /* an xe descriptor of 0x104 bytes also reads as a virtio record whose
     * payload starts with a VQ_CFG part: ambiguous */
    tb_set_le64(x + 16, 0x104);
    SOFT(ms_payload_detect(x, sizeof x) == -1, "xe / virtio: ambiguous");
    {
        prun c = {.kind = -1};
        pres r;
        run(x, sizeof x, &c, &r);
        SOFT(r.rc == -1 && r.err.code == MS_ERR_FORMAT_UNKNOWN &&
                 strstr(r.err.detail, "name it") &&
                 strstr(r.err.detail, "virtio") && strstr(r.err.detail, "xe"),
             "ambiguous refused: %s", r.err.detail);
        pres_free(&r);
    }

    /* nothing fits; pds is never detected */
    uint8_t z[100];
    tb_fill_random(z, sizeof z, 11);
    z[0] = 0x77;
    SOFT(ms_payload_detect(z, sizeof z) == -1, "random bytes");
    SOFT(ms_payload_detect(z, 0) == -2, "nothing yet");
    {
        prun c = {.kind = -1};
        pres r;
        run(z, sizeof z, &c, &r);
        SOFT(r.rc == -1 && r.err.code == MS_ERR_FORMAT_UNKNOWN &&
                 r.err.offset == 0 &&
                 strstr(r.err.detail, "cannot tell the driver") &&
                 strstr(r.err.detail, "--payload KIND"),
             "unknown refused: %s", r.err.detail);
        pres_free(&r);
        /* too short to tell */
        run(b.p, 10, &c, &r);
        SOFT(r.rc == -1 && r.err.code == MS_ERR_TRUNCATED &&
                 r.err.offset == 10,
             "short input: %s", r.err.detail);
        pres_free(&r);
    }
    /* a bad explicit kind */
    {
        prun c = {.kind = 7};
        pres r;
        run(z, sizeof z, &c, &r);
        SOFT(r.rc == -1 && r.err.code == MS_ERR_USAGE, "kind 7: %s",
             r.err.detail);
        pres_free(&r);
    }
    tb_buf_free(&b);
    tb_buf_free(&p);
    DONE();
}

/* ---- phase bookkeeping ---------------------------------------------------------- */

static void feed_raw(ms_reader *r, const uint8_t *d, size_t n)
{
    ms_event ev;
    assert_int_equal(ms_reader_input(r, d, n), 0);
    while (ms_reader_next(r, &ev) == MS_NEXT_EVENT)
        ;
}

static void test_phase_at(void **state)
{
    (void)state;
    BEGIN();
    uint8_t d[100] = {0};
    ms_options o;
    ms_options_init(&o);
    o.format = MS_FORMAT_PAYLOAD;
    o.payload_kind = MS_PAYLOAD_RAW;
    ms_reader *r = ms_reader_create(&o);
    SOFT(ms_payload_phase_at(r, 0) == MS_PHASE_NONE, "nothing known");
    ms_reader_set_phase(r, MS_PHASE_INITIAL);
    feed_raw(r, d, 10);
    SOFT(ms_payload_phase_at(r, 5) == MS_PHASE_INITIAL, "initial");
    ms_reader_set_phase(r, MS_PHASE_FINAL);
    SOFT(ms_payload_phase_at(r, 5) == MS_PHASE_INITIAL, "before the change");
    SOFT(ms_payload_phase_at(r, 10) == MS_PHASE_FINAL, "from the change");
    ms_reader_set_phase(r, MS_PHASE_FINAL); /* no change */
    SOFT(ms_payload_phase_at(r, 5) == MS_PHASE_INITIAL, "history kept");
    ms_reader_set_phase(r, MS_PHASE_MIDDLE); /* replaces FINAL: no bytes */
    SOFT(ms_payload_phase_at(r, 5) == MS_PHASE_INITIAL, "history kept (2)");
    SOFT(ms_payload_phase_at(r, 10) == MS_PHASE_MIDDLE, "middle");
    feed_raw(r, d, 10);
    ms_reader_set_phase(r, MS_PHASE_FINAL);
    SOFT(ms_payload_phase_at(r, 15) == MS_PHASE_MIDDLE, "middle before 20");
    SOFT(ms_payload_phase_at(r, 25) == MS_PHASE_FINAL, "final from 20");
    /* mid-slice: the change applies from the end of the slice handed in */
    assert_int_equal(ms_reader_input(r, d, 10), 0);
    ms_reader_set_phase(r, MS_PHASE_INITIAL);
    SOFT(r->phase_from == 30, "from = bytes handed in (%llu)",
         (unsigned long long)r->phase_from);
    ms_reader_free(r);

    /* the carrier's NONE falls back to payload_final_offset */
    o.payload_final_offset = 50;
    r = ms_reader_create(&o);
    SOFT(ms_payload_phase_at(r, 49) == MS_PHASE_INITIAL, "before final");
    SOFT(ms_payload_phase_at(r, 50) == MS_PHASE_FINAL, "final offset");
    ms_reader_set_phase(r, MS_PHASE_NONE);
    SOFT(ms_payload_phase_at(r, 60) == MS_PHASE_FINAL, "NONE: offset rule");
    ms_reader_set_phase(r, MS_PHASE_MIDDLE);
    SOFT(ms_payload_phase_at(r, 60) == MS_PHASE_MIDDLE, "carrier overrides");
    ms_reader_set_phase(r, (ms_phase)9);
    SOFT(ms_reader_error(r)->code == MS_ERR_USAGE, "phase 9");
    ms_reader_free(r);

    /* only payload readers take phases */
    ms_options_init(&o);
    r = ms_reader_create(&o);
    ms_reader_set_phase(r, MS_PHASE_FINAL);
    SOFT(ms_reader_error(r)->code == MS_ERR_USAGE, "not a payload reader");
    ms_reader_free(r);
    DONE();
}

/* ---- random valid streams ------------------------------------------------------- */

/* Random mlx5 and virtio streams (random record sizes, optional records,
 * walked parts) decode the same in every slicing. */
static void test_random_streams(void **state)
{
    (void)state;
    BEGIN();
    uint64_t rng = 12345;
    for (int iter = 0; iter < 40; iter++) {
        tb_buf b, p;
        tb_buf_init(&b);
        tb_buf_init(&p);
        int virtio = iter & 1;
        int nrec = 1 + (int)(tb_rand(&rng) % 6);
        if (!virtio)
            scs(&b, tb_rand(&rng));
        for (int i = 0; i < nrec; i++) {
            uint64_t x = tb_rand(&rng);
            if (x % 5 == 0) {
                uint8_t junk[50];
                tb_fill_random(junk, sizeof junk, x);
                sw(&b, x % 50, OPT, 2 + (uint32_t)(x % 1000), junk,
                   (size_t)(x % 50));
            } else if (!virtio) {
                fw(&b, (size_t)(x >> 12) % (x % 3 ? 3000 : 150000), x);
            } else {
                size_t o[12];
                tb_buf_reset(&p);
                vsnap(&p, o);
                for (int k = 0; k < (int)(x % 4); k++) {
                    uint8_t big[9000];
                    size_t n = (size_t)(tb_rand(&rng) % sizeof big);
                    tb_fill_random(big, n, x + (uint64_t)k);
                    part(&p, (uint16_t)(0x200 + k), 0, 0, big, (uint32_t)n);
                }
                vrec(&b, &p);
            }
        }
        prun c = {.kind = virtio ? MS_PAYLOAD_VIRTIO : MS_PAYLOAD_MLX5,
                  .has_final = (iter % 3) != 0,
                  .final = b.len / 2};
        expect_clean(b.p, b.len, &c, virtio ? "random virtio" : "random mlx5");
        tb_buf_free(&b);
        tb_buf_free(&p);
    }
    DONE();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mlx5_final_offset),
        cmocka_unit_test(test_mlx5_no_phase),
        cmocka_unit_test(test_mlx5_carrier_phases),
        cmocka_unit_test(test_mlx5_truncation),
        cmocka_unit_test(test_mlx5_rules),
        cmocka_unit_test(test_virtio_stream),
        cmocka_unit_test(test_virtio_rules),
        cmocka_unit_test(test_pds_raw),
        cmocka_unit_test(test_detect),
        cmocka_unit_test(test_phase_at),
        cmocka_unit_test(test_random_streams),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
