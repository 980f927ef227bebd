/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* libvirt save images (libstream/qemu/libvirt.c, decompress.c) against
 * spec/libvirt-save.md:
 *   1. the test's own image encoder (header in either byte order, versions
 *      1 and 2, XML, cookie, NUL padding) around a QEVM stream stored raw
 *      or compressed with zlib (gzip), libbz2, liblzma, libzstd, and an lzop
 *      container written here from the lzop file format around liblzo2;
 *   2. each format read whole, one byte at a time, in random slices, and cut
 *      at every offset (a small QEVM stream keeps that fast); the events are
 *      the bare stream's, with file or decompressed offsets;
 *   3. the real QEMU 7.2 capture inside every format, 64 KiB XML padding;
 *   4. header rules, the LibvirtQemudPart magic, corrupt compressed bytes
 *      (file offset, compressor named), concatenated streams, trailing
 *      data, the lzop container's own checks;
 *   5. the decompressor memory limit: hostile xz and zstd headers asking for
 *      huge windows are refused before anything that large is allocated.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <bzlib.h>
#include <lzma.h>
#include <lzo/lzo1x.h>
#include <zlib.h>
#define ZSTD_STATIC_LINKING_ONLY
#include <zstd.h>

#include "test_util.h"

/* ---- soft checks: report every failed expectation of a test ------------- */
static int g_fail;


/* ---- the test's own encoders ------------------------------------------------
 */
#define LV_HDR 92
enum { F_RAW, F_GZIP, F_BZIP2, F_XZ, F_LZOP, F_ZSTD, F_SPARSE, F_COUNT };
static const char *const f_names[] = {"raw",  "gzip", "bzip2", "xz",
                                      "lzop", "zstd", "sparse"};

static void put32(tb_buf *b, uint32_t v, int be)
{
    if (be)
        tb_put_be32(b, v);
    else
        tb_put_le32(b, v);
}

typedef struct lv_spec {
    uint32_t version, format, was_running;
    const char *xml, *cookie; /* cookie NULL: none */
    uint32_t pad;             /* NUL bytes after XML (and cookie) */
    int big_endian;
    const char *magic; /* NULL: LibvirtQemudSave */
} lv_spec;

/* Header, XML + NUL, [cookie + NUL], padding, then `body`.  Returns the
 * body's file offset. */
static size_t lv_image(tb_buf *out, const lv_spec *s, const tb_buf *body)
{
    size_t xml_len = strlen(s->xml) + 1;
    size_t cookie_len = s->cookie ? strlen(s->cookie) + 1 : 0;
    uint32_t data_len = (uint32_t)(xml_len + cookie_len + s->pad);
    tb_put(out, s->magic ? s->magic : "LibvirtQemudSave", 16);
    put32(out, s->version, s->big_endian);
    put32(out, data_len, s->big_endian);
    put32(out, s->was_running, s->big_endian);
    put32(out, s->format, s->big_endian);
    put32(out, s->cookie ? (uint32_t)xml_len : 0, s->big_endian);
    tb_put_zeros(out, 14 * 4);
    tb_put(out, s->xml, xml_len);
    if (s->cookie)
        tb_put(out, s->cookie, cookie_len);
    tb_put_zeros(out, s->pad);
    size_t body_off = out->len;
    tb_put(out, body->p, body->len);
    return body_off;
}

/* lzop container (spec/libvirt-save.md 4.4), blocks of `block` bytes. */
typedef struct lzop_opts {
    uint32_t flags; /* checksum flags; F_STDIN and OS unix are added */
    uint8_t method; /* 1: LZO1X-1 (the only one compressed here) */
    size_t block;
    uint32_t version; /* 0: 0x1040 */
} lzop_opts;

#define LZ_ADLER_D 0x1u
#define LZ_ADLER_C 0x2u
#define LZ_CRC_D 0x100u
#define LZ_CRC_C 0x200u
#define LZ_H_CRC32 0x1000u

static uint32_t lz_sum(int crc, const uint8_t *p, size_t n)
{
    return crc ? (uint32_t)crc32(0, p, (uInt)n)
               : (uint32_t)adler32(1, p, (uInt)n);
}

static void lzop_encode(tb_buf *out, const uint8_t *src, size_t len,
                        const lzop_opts *o)
{
    static const uint8_t magic[9] = {0x89, 'L',  'Z',  'O', 0,
                                     0x0d, 0x0a, 0x1a, 0x0a};
    uint32_t flags = o->flags | 0x4u /* F_STDIN */ | 0x03000000u /* unix */;
    uint32_t version = o->version ? o->version : 0x1040;
    tb_put(out, magic, 9);
    size_t h0 = out->len;
    tb_put_be16(out, (uint16_t)version);
    tb_put_be16(out, 0x20a0); /* LZO library 2.10 */
    if (version >= 0x0940)
        tb_put_be16(out, 0x0940);
    tb_put_u8(out, o->method ? o->method : 1);
    if (version >= 0x0940)
        tb_put_u8(out, 5);
    tb_put_be32(out, flags);
    tb_put_be32(out, 0);          /* mode */
    tb_put_be32(out, 0x5f000000); /* mtime low */
    if (version >= 0x0940)
        tb_put_be32(out, 0);
    tb_put_u8(out, 0); /* no name */
    tb_put_be32(out, lz_sum(flags & LZ_H_CRC32, out->p + h0, out->len - h0));
    uint8_t *wrk = malloc(LZO1X_1_MEM_COMPRESS);
    uint8_t *dst = malloc(o->block + o->block / 16 + 64 + 3);
    for (size_t at = 0; at < len; at += o->block) {
        size_t n = len - at < o->block ? len - at : o->block;
        lzo_uint clen = 0;
        lzo1x_1_compress(src + at, n, dst, &clen, wrk);
        int packed = clen < n;
        tb_put_be32(out, (uint32_t)n);
        tb_put_be32(out, (uint32_t)(packed ? clen : n));
        if (flags & LZ_ADLER_D)
            tb_put_be32(out, lz_sum(0, src + at, n));
        if (flags & LZ_CRC_D)
            tb_put_be32(out, lz_sum(1, src + at, n));
        if (packed && (flags & LZ_ADLER_C))
            tb_put_be32(out, lz_sum(0, dst, clen));
        if (packed && (flags & LZ_CRC_C))
            tb_put_be32(out, lz_sum(1, dst, clen));
        tb_put(out, packed ? dst : src + at, packed ? clen : n);
    }
    tb_put_be32(out, 0);
    free(wrk);
    free(dst);
}

/* `src` compressed as `format` (raw/sparse: copied). */
static void compress_as(int format, const uint8_t *src, size_t len, tb_buf *out)
{
    size_t cap = len + len / 2 + 1024;
    uint8_t *dst = malloc(cap);
    size_t n = 0;
    switch (format) {
    case F_GZIP: {
        z_stream z = {0};
        deflateInit2(&z, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
        z.next_in = (Bytef *)(uintptr_t)src;
        z.avail_in = (uInt)len;
        z.next_out = dst;
        z.avail_out = (uInt)cap;
        assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
        n = z.total_out;
        deflateEnd(&z);
        break;
    }
    case F_BZIP2: {
        unsigned int dl = (unsigned int)cap;
        assert_int_equal(BZ2_bzBuffToBuffCompress((char *)dst, &dl,
                                                  (char *)(uintptr_t)src,
                                                  (unsigned)len, 9, 0, 0),
                         BZ_OK);
        n = dl;
        break;
    }
    case F_XZ:
        assert_int_equal(lzma_easy_buffer_encode(3, LZMA_CHECK_CRC64, NULL, src,
                                                 len, dst, &n, cap),
                         LZMA_OK);
        break;
    case F_ZSTD: { /* with the content checksum, as the zstd program */
        ZSTD_CCtx *c = ZSTD_createCCtx();
        ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1);
        n = ZSTD_compress2(c, dst, cap, src, len);
        assert_false(ZSTD_isError(n));
        ZSTD_freeCCtx(c);
        break;
    }
    case F_LZOP: {
        lzop_opts o = {LZ_ADLER_D, 1, 4096, 0};
        lzop_encode(out, src, len, &o);
        free(dst);
        return;
    }
    default:
        memcpy(dst, src, len);
        n = len;
    }
    tb_put(out, dst, n);
    free(dst);
}

/* A small QEVM stream: RAM block list, pages (compressible and random),
 * EOS, a second section, EOF. */
static void small_stream(tb_buf *q)
{
    static const char *const names[] = {"pc.ram"};
    static const uint64_t lens[] = {0x100000};
    uint8_t page[4096];
    tq_begin(q);
    tq_section_start(q, TQ_START, 2, "ram", 0, 4);
    tq_ram_block_list(q, names, lens, 1);
    tq_ram_eos(q);
    tq_footer(q, 2);
    tq_section_part(q, TQ_PART, 2);
    tb_fill_compressible(page, sizeof page, 7);
    tq_ram_page(q, 0x3000, "pc.ram", page, sizeof page);
    tb_fill_random(page, sizeof page, 8);
    tq_ram_page(q, 0x5000, NULL, page, sizeof page);
    tq_ram_zero(q, 0x6000, NULL, 0);
    tq_ram_eos(q);
    tq_footer(q, 2);
    tq_section_part(q, TQ_END, 2);
    tq_ram_eos(q);
    tq_footer(q, 2);
    tq_eof(q);
}

static const char g_xml[] =
    "<domain type='kvm'>\n  <name>guest</name>\n  <memory unit='KiB'>"
    "65536</memory>\n</domain>\n";
static const char g_cookie[] = "<qemuDomainSaveCookie>\n  <cpu mode='custom'/>"
                               "\n</qemuDomainSaveCookie>\n";

static size_t small_image(tb_buf *img, int format, const tb_buf *q)
{
    tb_buf body;
    tb_buf_init(&body);
    compress_as(format, q->p, q->len, &body);
    lv_spec s = {2, (uint32_t)format, 1, g_xml, g_cookie, 200, 0, NULL};
    size_t off = lv_image(img, &s, &body);
    tb_buf_free(&body);
    return off;
}

/* ---- reading: a digest of what a reader says -------------------------------
 * Events are hashed as (kind, offset - shift, length) from the
 * `skip`-th on; RAM page and DATA bytes into their own hash. */
typedef struct digest {
    int rc;
    ms_error_info err;
    size_t n; /* events hashed */
    uint64_t ev_hash, data_hash;
    size_t flag_mismatch; /* hashed events whose flags differ from `flags` */
    size_t view_mismatch; /* zero-copy views that were not in the slice */
    ms_event first[2];    /* the first two events (pointers kept only
                             for the libvirt event's format name) */
    size_t nfirst;
    size_t fields; /* MS_EV_FIELD events */
} digest;

typedef struct run_cfg {
    size_t slice;   /* 0 whole, else fixed size */
    uint64_t seed;  /* != 0: random slices 1..slice */
    size_t skip;    /* events not hashed (first ones) */
    uint64_t shift; /* subtracted from hashed offsets */
    uint32_t flags; /* expected flags of hashed events */
    const char *vmdesc;
    size_t vmdesc_len;
    const ms_options *opt;
} run_cfg;

static void take_event(digest *d, const run_cfg *c, const ms_event *ev,
                       const uint8_t *slice, size_t slen, size_t *seen)
{
    if (d->nfirst < 2)
        d->first[d->nfirst++] = *ev;
    if (ev->kind == MS_EV_FIELD)
        d->fields++;
    const uint8_t *view = NULL;
    size_t vlen = 0;
    int zc = 0;
    if (ev->kind == MS_EV_RAM_PAGE) {
        view = ev->u.ram.data, vlen = ev->u.ram.size, zc = ev->u.ram.zero_copy;
    } else if (ev->kind == MS_EV_DATA) {
        view = ev->u.data.data, vlen = ev->u.data.size,
        zc = ev->u.data.zero_copy;
    }
    if (zc && vlen && !(view >= slice && view + vlen <= slice + slen))
        d->view_mismatch++;
    if (vlen)
        d->data_hash = tb_hash_seed(view, vlen, d->data_hash);
    if ((*seen)++ < c->skip)
        return;
    uint64_t rec[3] = {ev->kind, ev->offset - c->shift, ev->length};
    if (ev->kind == MS_EV_DATA) /* DATA may split differently */
        rec[1] = rec[2] = 0;
    d->ev_hash = tb_hash_seed(rec, sizeof rec, d->ev_hash);
    if (ev->kind != MS_EV_DATA)
        d->n++;
    if (ev->flags != c->flags)
        d->flag_mismatch++;
}

static int run(const uint8_t *p, size_t len, const run_cfg *c, digest *d)
{
    memset(d, 0, sizeof *d);
    ms_reader *r = ms_reader_create(c->opt);
    assert_non_null(r);
    if (c->vmdesc)
        assert_int_equal(ms_reader_set_vmdesc(r, c->vmdesc, c->vmdesc_len), 0);
    uint64_t rng = c->seed;
    size_t pos = 0, seen = 0;
    int failed = 0;
    while (pos < len && !failed) {
        size_t n = c->slice ? c->slice : len;
        if (c->seed)
            n = 1 + (size_t)(tb_rand(&rng) % c->slice);
        if (n > len - pos)
            n = len - pos;
        uint8_t *copy = malloc(n);
        memcpy(copy, p + pos, n);
        if (ms_reader_input(r, copy, n) != 0)
            failed = 1;
        ms_event ev;
        int k;
        while (!failed && (k = ms_reader_next(r, &ev)) != MS_NEXT_INPUT) {
            if (k != MS_NEXT_EVENT) {
                failed = 1;
                break;
            }
            take_event(d, c, &ev, copy, n, &seen);
        }
        memset(copy, 0xA5, n); /* the reader must not keep it */
        free(copy);
        pos += n;
    }
    if (!failed && ms_reader_finish(r) != 0)
        failed = 1;
    if (failed)
        d->err = *ms_reader_error(r);
    ms_reader_free(r);
    return d->rc = failed ? -1 : 0;
}

static int run_whole(const uint8_t *p, size_t len, digest *d)
{
    run_cfg c = {0};
    return run(p, len, &c, d);
}

static int same_error(const digest *a, const digest *b)
{
    return a->rc == b->rc && a->err.code == b->err.code &&
           a->err.offset == b->err.offset;
}

/* The image's events are the bare stream's (without its stream event)
 * after the image's stream and libvirt events, with file offsets (raw)
 * or decompressed offsets and the flag. */
static void check_against_bare(const char *what, const uint8_t *img,
                               size_t ilen, size_t body_off, int format,
                               const tb_buf *bare, const run_cfg *extra)
{
    int compressed = format != F_RAW && format != F_SPARSE;
    run_cfg ci = extra ? *extra : (run_cfg){0};
    ci.skip = 2;
    ci.shift = compressed ? 0 : body_off;
    ci.flags = compressed ? MS_EVF_DECOMPRESSED : 0;
    run_cfg cb = {0};
    cb.skip = 1;
    cb.vmdesc = ci.vmdesc;
    cb.vmdesc_len = ci.vmdesc_len;
    cb.opt = ci.opt;
    digest di, db;
    run(img, ilen, &ci, &di);
    run(bare->p, bare->len, &cb, &db);
    SOFT(di.rc == 0, "%s: %s at %llu: %s", what, ms_error_name(di.err.code),
         (unsigned long long)di.err.offset, di.err.detail);
    SOFT(db.rc == 0, "%s: bare stream fails", what);
    SOFT(di.n == db.n && di.ev_hash == db.ev_hash,
         "%s: %zu events differ from the bare stream's %zu", what, di.n, db.n);
    SOFT(di.data_hash == db.data_hash, "%s: page bytes differ", what);
    SOFT(di.flag_mismatch == 0, "%s: %zu events with wrong flags", what,
         di.flag_mismatch);
    SOFT(di.view_mismatch == 0, "%s: %zu zero-copy views outside the slice",
         what, di.view_mismatch);
    SOFT(di.fields == db.fields, "%s: %zu fields, bare %zu", what, di.fields,
         db.fields);
    SOFT(di.nfirst == 2 && di.first[0].kind == MS_EV_STREAM_HEADER &&
             di.first[0].u.stream.format == MS_FORMAT_LIBVIRT_SAVE &&
             di.first[1].kind == MS_EV_LIBVIRT_HEADER &&
             di.first[1].u.libvirt.body_offset == body_off &&
             di.first[1].u.libvirt.decompressed == compressed &&
             di.first[1].offset == 0 && di.first[1].length == body_off,
         "%s: first events are not the image's stream and libvirt events",
         what);
}

/* ---- 1. every format, every split, every cut (small stream)
 * ------------------ */

static void test_formats_splits_cuts(void **state)
{
    (void)state;
    BEGIN();
    tb_buf q;
    tb_buf_init(&q);
    small_stream(&q);
    /* sparse images hold mapped-ram streams: test_mapped_ram.c reads them
     * at every split; here the stream has no mapped-ram */
    for (int f = 0; f < F_SPARSE; f++) {
        tb_buf img;
        tb_buf_init(&img);
        size_t off = small_image(&img, f, &q);
        char what[64];
        snprintf(what, sizeof what, "%s image", f_names[f]);
        check_against_bare(what, img.p, img.len, off, f, &q, NULL);
        digest whole, bytes, rnd;
        run_whole(img.p, img.len, &whole);
        run_cfg c1 = {.slice = 1}, cr = {.slice = 97, .seed = 5 + (uint64_t)f};
        run(img.p, img.len, &c1, &bytes);
        run(img.p, img.len, &cr, &rnd);
        SOFT(whole.nfirst == 2 &&
                 whole.first[1].u.libvirt.format == (uint32_t)f &&
                 strcmp(whole.first[1].u.libvirt.format_name, f_names[f]) == 0,
             "%s: format not reported", what);
        SOFT(whole.rc == 0 && bytes.rc == 0 && rnd.rc == 0 &&
                 whole.ev_hash == bytes.ev_hash && whole.n == bytes.n &&
                 whole.data_hash == bytes.data_hash &&
                 whole.ev_hash == rnd.ev_hash,
             "%s: one byte at a time or random slices differ from one slice",
             what);
        /* cut at every offset: never clean, always at the cut */
        size_t bad = 0, first_bad = 0;
        /* (uncompressed bodies: the QEVM decoder's own cut tests cover
         * every offset; here every 13th) */
        size_t step = f == F_RAW || f == F_SPARSE ? 13 : 1;
        for (size_t cut = 0; cut < img.len; cut += step) {
            digest d;
            run_whole(img.p, cut, &d);
            int ok = d.rc == -1 && d.err.offset == cut &&
                     (d.err.code == MS_ERR_TRUNCATED ||
                      d.err.code == MS_ERR_MISSING_END ||
                      (cut == 0 && d.err.code == MS_ERR_TRUNCATED));
            if (!ok && !bad++)
                first_bad = cut;
        }
        if (bad) {
            digest d;
            run_whole(img.p, first_bad, &d);
            SOFT(0,
                 "%s: %zu cuts misreported; cut at %zu: rc %d %s at %llu: %s",
                 what, bad, first_bad, d.rc, ms_error_name(d.err.code),
                 (unsigned long long)d.err.offset, d.err.detail);
        }
        tb_buf_free(&img);
    }
    tb_buf_free(&q);
    DONE();
}

/* ---- 2. the real capture in every format
 * -------------------------------------- */

static int load_capture(tb_buf *b)
{
    const char *src = getenv("MIGSTREAM_SRC_DIR");
    char path[4096];
    snprintf(path, sizeof path,
             "%s/tests/data/captures/qemu-7.2-pc-precopy/main.mig",
             src ? src : ".");
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    uint8_t buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        tb_put(b, buf, n);
    fclose(f);
    return 0;
}

static void test_capture_every_format(void **state)
{
    (void)state;
    BEGIN();
    tb_buf cap;
    tb_buf_init(&cap);
    assert_int_equal(load_capture(&cap), 0);
    size_t joff, jlen;
    assert_true(ms_qemu_find_vmdesc(cap.p, cap.len, cap.len, &joff, &jlen));
    for (int f = 0; f < F_SPARSE; f++) {
        for (uint32_t version = 1; version <= 2; version++) {
            if (version == 1 && f != F_RAW && f != F_GZIP)
                continue; /* version 1: one raw, one with a format field */
            tb_buf body, img;
            tb_buf_init(&body);
            tb_buf_init(&img);
            compress_as(version == 1 ? F_RAW : f, cap.p, cap.len, &body);
            /* libvirt's own layout: XML, cookie, 64 KiB of NULs */
            lv_spec s = {version,
                         (uint32_t)f,
                         1,
                         g_xml,
                         version == 2 ? g_cookie : NULL,
                         65536,
                         0,
                         NULL};
            size_t off = lv_image(&img, &s, &body);
            char what[80];
            snprintf(what, sizeof what, "capture, version %u, %s", version,
                     f_names[f]);
            /* version 1 images are never decompressed (libvirt) */
            int as = version == 1 ? F_RAW : f;
            run_cfg c = {.slice = 4096};
            ms_options fo;
            ms_options_init(&fo);
            fo.field_events = 1;
            if (f == F_GZIP) { /* with the trailer: FULL sections decoded */
                c.vmdesc = (const char *)cap.p + joff;
                c.vmdesc_len = jlen;
                c.opt = &fo;
            }
            tb_buf bare = cap;
            digest d;
            run(img.p, img.len, &c, &d);
            if (as != f) { /* the event says what was written */
                SOFT(d.nfirst == 2 &&
                         d.first[1].u.libvirt.format == (uint32_t)f &&
                         !d.first[1].u.libvirt.decompressed,
                     "%s: format field not reported as written", what);
                /* compare as raw */
            }
            check_against_bare(what, img.p, img.len, off, as, &bare, &c);
            SOFT(d.nfirst == 2 && d.first[1].u.libvirt.version == version &&
                     d.first[1].u.libvirt.xml_len == strlen(g_xml) &&
                     d.first[1].u.libvirt.cookie_len ==
                         (version == 2 ? strlen(g_cookie) : 0) &&
                     d.first[1].u.libvirt.was_running == 1 &&
                     d.first[1].u.libvirt.xml_offset == LV_HDR,
                 "%s: libvirt event fields", what);
            if (f == F_GZIP && version == 2)
                SOFT(d.fields > 100,
                     "%s: the trailer given first decodes "
                     "FULL sections (%zu fields)",
                     what, d.fields);
            tb_buf_free(&body);
            tb_buf_free(&img);
        }
    }
    tb_buf_free(&cap);
    DONE();
}

/* ---- 3. header rules
 * --------------------------------------------------------- */

static void expect_error(const char *what, const tb_buf *img, ms_error code,
                         uint64_t offset)
{
    digest d, b;
    run_whole(img->p, img->len, &d);
    run_cfg c1 = {.slice = 1};
    run(img->p, img->len, &c1, &b);
    SOFT(d.rc == -1 && d.err.code == code && d.err.offset == offset,
         "%s: expected %s at %llu, got rc %d %s at %llu: %s", what,
         ms_error_name(code), (unsigned long long)offset, d.rc,
         ms_error_name(d.err.code), (unsigned long long)d.err.offset,
         d.err.detail);
    SOFT(same_error(&d, &b), "%s: one byte at a time: %s at %llu", what,
         ms_error_name(b.err.code), (unsigned long long)b.err.offset);
}

static void test_header_rules(void **state)
{
    (void)state;
    BEGIN();
    tb_buf q, img;
    tb_buf_init(&q);
    tb_buf_init(&img);
    small_stream(&q);
    /* a big-endian host's header, version 2 with a cookie */
    lv_spec be = {2, F_RAW, 0, g_xml, g_cookie, 3, 1, NULL};
    size_t off = lv_image(&img, &be, &q);
    digest d;
    run_whole(img.p, img.len, &d);
    const ms_libvirt_info *li = &d.first[1].u.libvirt;
    SOFT(d.rc == 0 && d.nfirst == 2 && li->big_endian && li->version == 2 &&
             li->was_running == 0 && li->body_offset == off &&
             li->cookie_offset == strlen(g_xml) + 1 &&
             li->cookie_len == strlen(g_cookie) &&
             li->xml_len == strlen(g_xml) && li->data_len == off - LV_HDR,
         "big-endian header: rc %d %s", d.rc, d.err.detail);
    /* an XML without its NUL: the text runs to the end of its part */
    tb_buf_reset(&img);
    lv_spec v1 = {1, F_RAW, 1, g_xml, NULL, 0, 0, NULL};
    off = lv_image(&img, &v1, &q);
    img.p[off - 1] = 'x'; /* the NUL */
    run_whole(img.p, img.len, &d);
    SOFT(d.rc == 0 && d.first[1].u.libvirt.xml_len == off - LV_HDR &&
             d.first[1].u.libvirt.cookie_len == 0,
         "XML without NUL: xml_len %u", d.first[1].u.libvirt.xml_len);

    /* field by field */
    tb_buf_reset(&img);
    lv_spec ok = {2, F_RAW, 1, g_xml, g_cookie, 16, 0, NULL};
    off = lv_image(&img, &ok, &q);
    tb_buf bad;
    tb_buf_init(&bad);
    tb_buf_copy(&bad, &img);
    memcpy(bad.p, "LibvirtQemudPart", 16);
    expect_error("LibvirtQemudPart (incomplete)", &bad, MS_ERR_TRUNCATED, 0);
    memcpy(bad.p, "LibvirtQemudSavf", 16);
    expect_error("wrong magic", &bad, MS_ERR_BAD_MAGIC, 0);
    tb_buf_copy(&bad, &img);
    tb_set_le32(bad.p + 16, 3);
    expect_error("version 3", &bad, MS_ERR_VERSION, 16);
    tb_set_le32(bad.p + 16, 0);
    expect_error("version 0", &bad, MS_ERR_VERSION, 16);
    tb_buf_copy(&bad, &img);
    tb_set_le32(bad.p + 20, 0);
    expect_error("data_len 0", &bad, MS_ERR_HEADER_FIELD, 20);
    tb_buf_copy(&bad, &img);
    tb_set_le32(bad.p + 28, 7);
    expect_error("format 7", &bad, MS_ERR_HEADER_FIELD, 28);
    tb_buf_copy(&bad, &img);
    tb_set_le32(bad.p + 32, (uint32_t)(off - LV_HDR + 1));
    expect_error("cookie beyond the data", &bad, MS_ERR_HEADER_FIELD, 32);
    /* the body must be a QEVM stream, at its file offset */
    tb_buf_copy(&bad, &img);
    bad.p[off + 7] = 2;
    expect_error("QEVM version 2 inside", &bad, MS_ERR_VERSION, off + 4);
    /* no stream at all after the XML */
    tb_buf_copy(&bad, &img);
    bad.len = off;
    expect_error("no QEMU stream", &bad, MS_ERR_TRUNCATED, off);
    /* a raw image whose header says sparse: libvirt writes format 6 only
     * around a mapped-ram stream, so a stream whose CONFIGURATION does not
     * list mapped-ram fails there */
    tb_buf_copy(&bad, &img);
    tb_set_le32(bad.p + 28, F_SPARSE);
    expect_error("sparse format field, plain stream", &bad,
                 MS_ERR_CONFIGURATION, off + 8);
    tb_buf_free(&bad);
    tb_buf_free(&img);
    tb_buf_free(&q);
    DONE();
}

/* ---- 4. corrupt compressed data, concatenation, trailing bytes -------------
 */

static void test_corruption(void **state)
{
    (void)state;
    BEGIN();
    tb_buf q;
    tb_buf_init(&q);
    small_stream(&q);
    for (int f = F_GZIP; f <= F_ZSTD; f++) {
        tb_buf img, bad;
        tb_buf_init(&img);
        tb_buf_init(&bad);
        size_t off = small_image(&img, f, &q);
        char what[80];
        /* the first byte of the compressed data */
        tb_buf_copy(&bad, &img);
        bad.p[off] ^= 0x40;
        snprintf(what, sizeof what, "%s: magic", f_names[f]);
        expect_error(what, &bad, MS_ERR_DECOMPRESS, off);
        /* a byte after the compressed data */
        tb_buf_copy(&bad, &img);
        tb_put_u8(&bad, 0);
        snprintf(what, sizeof what, "%s: trailing byte", f_names[f]);
        expect_error(what, &bad, MS_ERR_TRAILING_DATA, img.len);
        /* every 7th byte flipped in turn: an error at a file offset inside
         * the compressed data, naming the compressor, the same at any split;
         * or nothing decoded changed */
        size_t undetected = 0, misplaced = 0, unnamed = 0, split = 0;
        digest clean;
        run_whole(img.p, img.len, &clean);
        for (size_t at = off; at < img.len; at += 7) {
            tb_buf_copy(&bad, &img);
            bad.p[at] ^= 0x10;
            digest d, b;
            run_whole(bad.p, bad.len, &d);
            run_cfg c1 = {.slice = 1};
            run(bad.p, bad.len, &c1, &b);
            if (d.rc == 0 && d.ev_hash == clean.ev_hash &&
                d.data_hash == clean.data_hash)
                continue; /* a flip that changes nothing decoded (gzip
                             MTIME, an LZO1X match of equal bytes...) */
            if (d.rc == 0) {
                if (getenv("LV_DEBUG"))
                    print_message("  undetected %s flip at +%zu of %zu\n",
                                  f_names[f], at - off, img.len - off);
                undetected++;
                continue;
            }
            if (d.err.offset < off || d.err.offset > bad.len)
                misplaced++;
            if (!strstr(d.err.detail, f_names[f]))
                unnamed++;
            if (d.err.code != b.err.code || d.err.offset != b.err.offset) {
                if (getenv("LV_DEBUG"))
                    print_message(
                        "  split %s +%zu: %s@%llu %s | %s@%llu %s\n",
                        f_names[f], at - off, ms_error_name(d.err.code),
                        (unsigned long long)d.err.offset, d.err.detail,
                        ms_error_name(b.err.code),
                        (unsigned long long)b.err.offset, b.err.detail);
                split++;
            }
        }
        SOFT(undetected == 0 && misplaced == 0 && unnamed == 0 && split == 0,
             "%s: of the flipped bytes %zu undetected, %zu misplaced, %zu "
             "without the compressor's name, %zu split-dependent",
             f_names[f], undetected, misplaced, unnamed, split);
        /* two streams back to back (the stream split in two): one QEVM
         * stream, as gzip -dc, xz -dc, ... give it */
        tb_buf body;
        tb_buf_init(&body);
        size_t half = q.len / 2;
        compress_as(f, q.p, half, &body);
        compress_as(f, q.p + half, q.len - half, &body);
        tb_buf_reset(&img);
        lv_spec s = {2, (uint32_t)f, 1, g_xml, NULL, 0, 0, NULL};
        off = lv_image(&img, &s, &body);
        snprintf(what, sizeof what, "%s: two streams", f_names[f]);
        check_against_bare(what, img.p, img.len, off, f, &q, NULL);
        run_cfg one = {.slice = 1};
        check_against_bare(what, img.p, img.len, off, f, &q, &one);
        tb_buf_free(&body);
        tb_buf_free(&img);
        tb_buf_free(&bad);
    }
    tb_buf_free(&q);
    DONE();
}

/* The lzop container's own rules, at the offending field. */
static void test_lzop_container(void **state)
{
    (void)state;
    BEGIN();
    tb_buf q;
    tb_buf_init(&q);
    small_stream(&q);
    static const lzop_opts variants[] = {
        {LZ_ADLER_D, 1, 4096, 0},
        {LZ_ADLER_D | LZ_ADLER_C, 1, 1000, 0},
        {LZ_CRC_D | LZ_CRC_C | LZ_H_CRC32, 1, 65536, 0},
        {0, 1, 333, 0},
        {LZ_ADLER_D, 1, 4096, 0x0930}, /* before lzop 0.94's fields */
    };
    for (size_t v = 0; v < sizeof variants / sizeof variants[0]; v++) {
        tb_buf body, img;
        tb_buf_init(&body);
        tb_buf_init(&img);
        lzop_encode(&body, q.p, q.len, &variants[v]);
        lv_spec s = {2, F_LZOP, 1, g_xml, NULL, 0, 0, NULL};
        size_t off = lv_image(&img, &s, &body);
        char what[64];
        snprintf(what, sizeof what, "lzop variant %zu", v);
        check_against_bare(what, img.p, img.len, off, F_LZOP, &q, NULL);
        run_cfg c1 = {.slice = 1, .skip = 2};
        digest d;
        run(img.p, img.len, &c1, &d);
        SOFT(d.rc == 0, "%s one byte at a time: %s", what, d.err.detail);
        tb_buf_free(&body);
        tb_buf_free(&img);
    }
    /* field offsets of variant 1 (adler32 of both) */
    tb_buf body, img, bad;
    tb_buf_init(&body);
    tb_buf_init(&img);
    tb_buf_init(&bad);
    lzop_encode(&body, q.p, q.len, &variants[1]);
    lv_spec s = {2, F_LZOP, 1, g_xml, NULL, 0, 0, NULL};
    size_t off = lv_image(&img, &s, &body);
    size_t method = off + 9 + 6, flags = method + 2, hsum = flags + 4 + 12 + 1;
    size_t blk = hsum + 4; /* first block: dst, src, adler D, adler C */
    tb_buf_copy(&bad, &img);
    bad.p[method] = 128; /* zlib: lzop knows it, LZO1X it is not */
    expect_error("lzop method 128", &bad, MS_ERR_FORMAT_UNSUPPORTED, method);
    tb_buf_copy(&bad, &img);
    bad.p[hsum + 3] ^= 1;
    expect_error("lzop header checksum", &bad, MS_ERR_DECOMPRESS, hsum);
    tb_buf_copy(&bad, &img);
    tb_set_be32(bad.p + blk, 0x05000000); /* 80 MiB block */
    expect_error("lzop block over 64 MiB", &bad, MS_ERR_DECOMPRESS, blk);
    tb_buf_copy(&bad, &img);
    tb_set_be32(bad.p + blk + 4, 0);
    expect_error("lzop empty compressed block", &bad, MS_ERR_DECOMPRESS,
                 blk + 4);
    tb_buf_copy(&bad, &img);
    bad.p[blk + 16 + 5] ^= 0x55; /* compressed data: its checksum fails */
    expect_error("lzop compressed checksum", &bad, MS_ERR_DECOMPRESS, blk + 12);
    tb_buf_copy(&bad, &img);
    bad.p[blk + 8] ^= 1; /* the decompressed data's checksum */
    expect_error("lzop data checksum", &bad, MS_ERR_DECOMPRESS, blk + 8);
    tb_buf_copy(&bad, &img);
    bad.p[flags + 2] |= 0x08; /* F_H_FILTER */
    expect_error("lzop filter", &bad, MS_ERR_FORMAT_UNSUPPORTED, flags);
    /* without verify_checks the checksums are not compared */
    tb_buf_copy(&bad, &img);
    bad.p[blk + 8] ^= 1;
    ms_options o;
    ms_options_init(&o);
    o.verify_checks = 0;
    run_cfg nc = {.opt = &o};
    digest d;
    run(bad.p, bad.len, &nc, &d);
    SOFT(d.rc == 0, "verify_checks 0: %s", d.err.detail);
    tb_buf_free(&body);
    tb_buf_free(&img);
    tb_buf_free(&bad);
    tb_buf_free(&q);
    DONE();
}

/* ---- 5. the decompressor memory limit
 * ------------------------------------------ */

/* An allocator that remembers the largest block asked for. */
typedef struct count_alloc {
    size_t largest, live;
} count_alloc;

static void *ca_alloc(void *o, size_t n)
{
    count_alloc *c = o;
    if (n > c->largest)
        c->largest = n;
    size_t *p = malloc(n + 16);
    if (!p)
        return NULL;
    p[0] = n;
    c->live += n;
    return (uint8_t *)p + 16;
}

static void ca_free(void *o, void *ptr)
{
    count_alloc *c = o;
    size_t *p = (size_t *)(void *)((uint8_t *)ptr - 16);
    c->live -= p[0];
    free(p);
}

static void expect_limit(const char *what, const tb_buf *img, uint64_t limit,
                         size_t *largest)
{
    count_alloc ca = {0, 0};
    ms_options o;
    ms_options_init(&o);
    o.allocator = (ms_allocator){ca_alloc, ca_free, &ca};
    if (limit)
        o.max_decompress_bytes = limit;
    run_cfg c = {.opt = &o};
    digest d;
    run(img->p, img->len, &c, &d);
    SOFT(d.rc == -1 && d.err.code == MS_ERR_LIMIT,
         "%s: expected limit, got rc %d %s: %s", what, d.rc,
         ms_error_name(d.err.code), d.err.detail);
    SOFT(ca.live == 0, "%s: %zu bytes not freed", what, ca.live);
    *largest = ca.largest;
}

static void test_memory_limit(void **state)
{
    (void)state;
    BEGIN();
    tb_buf q, body, img;
    tb_buf_init(&q);
    tb_buf_init(&body);
    tb_buf_init(&img);
    small_stream(&q);
    /* xz: the LZMA2 dictionary size in the block header set to 4 GiB - 1
     * (property 40), the header's CRC32 fixed: refused when the block
     * header is read, before any dictionary exists */
    compress_as(F_XZ, q.p, q.len, &body);
    uint8_t *bh = body.p + 12;
    size_t bh_len = ((size_t)bh[0] + 1) * 4, at = 2;
    if (bh[1] & 0x40) /* compressed size */
        while (bh[at++] & 0x80)
            ;
    if (bh[1] & 0x80) /* uncompressed size */
        while (bh[at++] & 0x80)
            ;
    assert_int_equal(bh[at], 0x21); /* LZMA2 */
    assert_int_equal(bh[at + 1], 1);
    bh[at + 2] = 40;
    uint32_t crc = (uint32_t)crc32(0, bh, (uInt)(bh_len - 4));
    for (int i = 0; i < 4; i++)
        bh[bh_len - 4 + i] = (uint8_t)(crc >> (8 * i));
    lv_spec s = {2, F_XZ, 1, g_xml, NULL, 0, 0, NULL};
    lv_image(&img, &s, &body);
    size_t largest;
    expect_limit("xz with a 4 GiB dictionary", &img, 0, &largest);
    SOFT(largest < (8u << 20), "xz: a block of %zu bytes was allocated",
         largest);

    /* zstd: a frame header whose window descriptor asks for 2 GiB
     * (exponent 21: 2^31), then a raw block */
    tb_buf_reset(&body);
    tb_buf_reset(&img);
    static const uint8_t zhead[] = {0x28, 0xb5, 0x2f, 0xfd, 0x00, 21 << 3};
    tb_put(&body, zhead, sizeof zhead);
    uint32_t blk = (uint32_t)(q.len << 3) | 1; /* raw, last */
    tb_put_u8(&body, (uint8_t)blk);
    tb_put_u8(&body, (uint8_t)(blk >> 8));
    tb_put_u8(&body, (uint8_t)(blk >> 16));
    tb_put(&body, q.p, q.len);
    s.format = F_ZSTD;
    lv_image(&img, &s, &body);
    expect_limit("zstd with a 2 GiB window", &img, 0, &largest);
    SOFT(largest < (8u << 20), "zstd: a block of %zu bytes was allocated",
         largest);
    /* the same frame with a 64 KiB window decodes */
    body.p[5] = 6 << 3;
    tb_buf_reset(&img);
    size_t off = lv_image(&img, &s, &body);
    check_against_bare("zstd with a 64 KiB window", img.p, img.len, off, F_ZSTD,
                       &q, NULL);

    /* a small limit: each compressor's real needs exceed it */
    for (int f = F_GZIP; f <= F_ZSTD; f++) {
        tb_buf_reset(&img);
        small_image(&img, f, &q);
        char what[64];
        snprintf(what, sizeof what, "%s under a 64 KiB + 1 KiB limit",
                 f_names[f]);
        expect_limit(what, &img, (64u << 10) + 1024, &largest);
    }
    tb_buf_free(&body);
    tb_buf_free(&img);
    tb_buf_free(&q);
    DONE();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_formats_splits_cuts),
        cmocka_unit_test(test_capture_every_format),
        cmocka_unit_test(test_header_rules),
        cmocka_unit_test(test_corruption),
        cmocka_unit_test(test_lzop_container),
        cmocka_unit_test(test_memory_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
