/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* libvirt save images ("virsh save", "virsh managedsave"): the libvirt
 * header and domain XML around a QEMU main stream, which may be compressed.
 * Facts: spec/libvirt-save.md (restating libvirt's qemu_saveimage.[ch] and
 * the compressors' stream formats).
 *
 *   file bytes (any split)
 *     |
 *     HEADER  92 bytes: magic, version, data_len, was_running, format,
 *     |       cookieOffset, 14 unused (host byte order)
 *     |         -> MS_EV_STREAM_HEADER (format libvirt-save)
 *     DATA    data_len bytes: domain XML, NUL, [cookie, NUL], NUL padding
 *     |         -> MS_EV_LIBVIRT_HEADER (skipped, lengths reported)
 *     BODY    raw, sparse: the caller's bytes go straight to the inner
 *     |         reader, whose offsets start at the body's file offset
 *     |       gzip, bzip2, xz, lzop, zstd: decompress.c -> `out` -> inner
 *     |         reader, whose offsets count decompressed bytes
 *     v
 *   inner ms_reader (format qemu-main: qemu_main.c and the files beside it)
 *     -> its events, minus its own stream event (the image's went first);
 *        decompressed ones flagged MS_EVF_DECOMPRESSED
 *
 * Errors keep file offsets: a decompressor's at the compressed byte where
 * it failed; the QEVM decoder's in a compressed image at the compressed
 * data's first byte, with the decompressed offset named in the detail. */
#include <stddef.h>
#include <stdio.h>

#include "decompress.h"
#include "kit.h"

#define LV_HEADER_LEN 92 /* 16 magic + 5 u32 + 14 unused u32 */
#define LV_MAGIC_LEN 16
static const char lv_magic_done[] = "LibvirtQemudSave";
static const char lv_magic_partial[] = "LibvirtQemudPart"; /* while written */
/* header field offsets */
#define LV_OFF_VERSION 16
#define LV_OFF_DATA_LEN 20
#define LV_OFF_WAS_RUNNING 24
#define LV_OFF_FORMAT 28
#define LV_OFF_COOKIE 32
#define LV_VERSION_MAX 2 /* libvirt byte-swaps a header above this */
#define LV_OUT_CAP ((size_t)64 << 10) /* decompressed bytes per hand-over */

/* the header's format field: libvirt's virQEMUSaveFormat, by value */
static const char *const lv_format_names[] = {"raw",  "gzip", "bzip2", "xz",
                                              "lzop", "zstd", "sparse"};
#define LV_FORMAT_COUNT (sizeof lv_format_names / sizeof lv_format_names[0])

typedef enum lv_stage {
    LV_HEADER = 0x4c56, /* not 0: a zeroed state is caught as invalid */
    LV_DATA,
    LV_BODY
} lv_stage;

typedef struct lv_state {
    int stage; /* enum lv_stage */
    ms_libvirt_info info;
    uint64_t data_pos; /* DATA bytes passed so far */
    int xml_end_seen;  /* the XML's NUL was found */
    int cookie_end_seen;
    ms_reader *inner;      /* the QEVM decoder over the body */
    int inner_fed;         /* it holds a slice it has not consumed yet */
    int fed_from_stash;    /* raw: that slice is our stash, not the input */
    uint64_t body_fed;     /* body bytes handed to the inner reader */
    ms_dec *dec;           /* compressed bodies */
    ms_error_info dec_err; /* its failure, raised once the bytes it made
                              before failing went through the QEVM
                              decoder (so the first fault wins at any
                              split) */
    uint8_t *out;          /* decompressed bytes for the inner reader */
} lv_state;

#define LST(r) ((lv_state *)(r)->framing)
#define LALLOC(r) (&(r)->opt.allocator)

_Static_assert(sizeof(ms_libvirt_info) <= sizeof(ms_multifd_info),
               "the libvirt event must not grow the event union");
/* ms_event.flags took the padding after `channel`: on LP64 the union
 * stays where it was, so callers built before it still agree. */
_Static_assert(sizeof(void *) != 8 || offsetof(ms_event, u) == 32,
               "ms_event.flags moved the event union");

/* ---- HEADER -------------------------------------------------------------- */

/* The header's u32 fields in the byte order its writer used. */
static uint32_t lv_u32(const uint8_t *p, int big_endian)
{
    return big_endian ? ms_be32(p) : ms_le32(p);
}

/* Which decompressor a format needs; 0 for the uncompressed ones. */
static int lv_codec(const ms_libvirt_info *i, ms_codec *c)
{
    if (i->version < 2) /* libvirt decompresses version 2 images only */
        return 0;
    switch (i->format) {
    case MS_LIBVIRT_GZIP:
        *c = MS_CODEC_GZIP;
        return 1;
    case MS_LIBVIRT_BZIP2:
        *c = MS_CODEC_BZIP2;
        return 1;
    case MS_LIBVIRT_XZ:
        *c = MS_CODEC_XZ;
        return 1;
    case MS_LIBVIRT_LZOP:
        *c = MS_CODEC_LZOP;
        return 1;
    case MS_LIBVIRT_ZSTD:
        *c = MS_CODEC_ZSTD;
        return 1;
    default:
        return 0; /* raw, sparse (QEMU mapped-ram, uncompressed) */
    }
}

/* HEADER: the 92 bytes, checked as libvirt's qemuSaveImageReadHeader does
 * (plus version 0 and a cookie beyond the data refused). */
static int read_header(ms_reader *r, ms_event *ev)
{
    lv_state *st = LST(r);
    ms_libvirt_info *i = &st->info;
    const uint8_t *p;
    MS_TAKE_OR_RETURN(r, LV_HEADER_LEN, &p);
    if (memcmp(p, lv_magic_partial, LV_MAGIC_LEN) == 0)
        return MS_FAIL(r, MS_ERR_TRUNCATED, 0,
                       "libvirt save image marked incomplete "
                       "(LibvirtQemudPart): libvirt did not finish writing "
                       "it");
    if (memcmp(p, lv_magic_done, LV_MAGIC_LEN) != 0)
        return MS_FAIL(r, MS_ERR_BAD_MAGIC, 0,
                       "libvirt save image magic is neither "
                       "LibvirtQemudSave nor LibvirtQemudPart");
    /* host byte order: a version too large means the other order */
    i->big_endian = ms_le32(p + LV_OFF_VERSION) > LV_VERSION_MAX;
    i->version = lv_u32(p + LV_OFF_VERSION, i->big_endian);
    if (i->version == 0 || i->version > LV_VERSION_MAX)
        return MS_FAIL(r, MS_ERR_VERSION, LV_OFF_VERSION,
                       "libvirt save image version %u (1 and 2 exist)",
                       ms_le32(p + LV_OFF_VERSION));
    i->data_len = lv_u32(p + LV_OFF_DATA_LEN, i->big_endian);
    i->was_running = lv_u32(p + LV_OFF_WAS_RUNNING, i->big_endian);
    i->format = lv_u32(p + LV_OFF_FORMAT, i->big_endian);
    i->cookie_offset = lv_u32(p + LV_OFF_COOKIE, i->big_endian);
    if (i->data_len == 0)
        return MS_FAIL(r, MS_ERR_HEADER_FIELD, LV_OFF_DATA_LEN,
                       "libvirt save image without domain XML (data_len "
                       "0)");
    if (i->format >= LV_FORMAT_COUNT)
        return MS_FAIL(r, MS_ERR_HEADER_FIELD, LV_OFF_FORMAT,
                       "libvirt save image format %u (libvirt knows 0..%u)",
                       i->format, (unsigned)LV_FORMAT_COUNT - 1);
    if (i->cookie_offset > i->data_len)
        return MS_FAIL(r, MS_ERR_HEADER_FIELD, LV_OFF_COOKIE,
                       "cookie offset %u beyond the %u bytes of XML and "
                       "cookie",
                       i->cookie_offset, i->data_len);
    i->format_name = lv_format_names[i->format];
    i->xml_offset = LV_HEADER_LEN;
    i->body_offset = LV_HEADER_LEN + (uint64_t)i->data_len;
    ms_codec c;
    i->decompressed = lv_codec(i, &c);
    st->stage = LV_DATA;
    ev->kind = MS_EV_STREAM_HEADER;
    ev->offset = 0;
    ev->length = LV_HEADER_LEN;
    ev->u.stream.format = MS_FORMAT_LIBVIRT_SAVE;
    ev->u.stream.version_major = (uint16_t)i->version;
    ev->u.stream.channel_count = 1;
    return MS_NEXT_EVENT;
}

/* ---- DATA ---------------------------------------------------------------- */

/* Length of the text in [from, to) of the data that starts at data
 * position `at` with `n` bytes: found when its NUL passes by. */
static void lv_text_end(const uint8_t *p, size_t n, uint64_t at, uint64_t from,
                        uint64_t to, int *seen, uint32_t *len)
{
    if (*seen || at + n <= from || at >= to)
        return;
    uint64_t lo = MS_MAX(at, from), hi = MS_MIN(at + n, to);
    const uint8_t *nul = memchr(p + (lo - at), 0, (size_t)(hi - lo));
    if (nul) {
        *seen = 1;
        *len = (uint32_t)(at + (uint64_t)(nul - p) - from);
    } else {
        *len = (uint32_t)(hi - from); /* so far */
    }
}

static int start_body(ms_reader *r);

/* DATA: the domain XML and the cookie, skipped as they pass (lengths up to
 * their NULs noted), then the libvirt event and the body's set-up. */
static int skip_data(ms_reader *r, ms_event *ev)
{
    lv_state *st = LST(r);
    ms_libvirt_info *i = &st->info;
    uint64_t xml_end = i->cookie_offset ? i->cookie_offset : i->data_len;
    while (st->data_pos < i->data_len) {
        const uint8_t *p;
        size_t n = ms_rd_peek(r, i->data_len - st->data_pos, &p);
        if (n == 0)
            return MS_NEXT_INPUT;
        lv_text_end(p, n, st->data_pos, 0, xml_end, &st->xml_end_seen,
                    &i->xml_len);
        if (i->cookie_offset)
            lv_text_end(p, n, st->data_pos, i->cookie_offset, i->data_len,
                        &st->cookie_end_seen, &i->cookie_len);
        ms_rd_skip(r, n);
        st->data_pos += n;
    }
    if (start_body(r) < 0)
        return MS_NEXT_ERROR;
    st->stage = LV_BODY;
    ev->kind = MS_EV_LIBVIRT_HEADER;
    ev->offset = 0;
    ev->length = i->body_offset;
    ev->u.libvirt = *i;
    return MS_NEXT_EVENT;
}

/* The inner QEVM reader, and for compressed bodies the decompressor. */
static int start_body(ms_reader *r)
{
    lv_state *st = LST(r);
    ms_options o = r->opt;
    o.format = MS_FORMAT_QEMU_MAIN;
    ms_codec codec;
    int compressed = lv_codec(&st->info, &codec);
    if (compressed) {
        o.input_stable = 0;   /* its input is our buffer, refilled */
        o.input_seekable = 0; /* decompressed bytes cannot be sought */
        o.input_size = 0;
    }
    if (!(st->inner = ms_reader_create(&o)))
        return MS_FAIL(r, MS_ERR_NO_MEMORY, st->info.body_offset,
                       "QEMU stream reader");
    /* The caller's JSON trailer describes the QEVM stream. */
    st->inner->vmdesc = r->vmdesc;
    r->vmdesc = NULL;
    if (!compressed) {
        /* Offsets of the stream are file offsets (mapped-ram's absolute
         * bitmap and page offsets included). */
        st->inner->offset = st->info.body_offset;
        return 0;
    }
    uint64_t limit = r->opt.max_decompress_bytes;
    if (limit < LV_OUT_CAP)
        return MS_FAIL_LIMIT(
            r, MS_LIMIT_MAX_DECOMPRESS_BYTES, st->info.body_offset,
            "max_decompress_bytes (%llu) is below the %zu-byte "
            "output buffer",
            (unsigned long long)limit, LV_OUT_CAP);
    ms_error_info e = {0};
    st->dec = ms_dec_create(LALLOC(r), codec, limit - LV_OUT_CAP,
                            r->opt.max_zstd_window, r->opt.verify_checks, &e);
    if (!st->dec)
        return ms_fail_as(&r->err, e.code, e.limit,
                          st->info.body_offset + e.offset, "%s", e.detail);
    if (!(st->out = ms_alloc(LALLOC(r), LV_OUT_CAP)))
        return MS_FAIL(r, MS_ERR_NO_MEMORY, st->info.body_offset,
                       "decompression buffer");
    return 0;
}

/* ---- BODY ---------------------------------------------------------------- */

/* The inner reader failed: its error, with a file offset.  Inside
 * compressed data no file offset holds the faulty decompressed byte, and
 * how far the decompressor had read depends on how the input was split:
 * the error is placed at the compressed data's first byte, the detail
 * names the decompressed offset. */
static int inner_failed(ms_reader *r)
{
    lv_state *st = LST(r);
    const ms_error_info *e = ms_reader_error(st->inner);
    if (!st->dec)
        return MS_FAIL(r, e->code, e->offset, "%s", e->detail);
    return MS_FAIL(r, e->code, st->info.body_offset,
                   "%s-decompressed offset %llu: %s", st->info.format_name,
                   (unsigned long long)e->offset, e->detail);
}

/* Raw and sparse bodies: the pending input, as it is, to the inner reader
 * (consumed from ours at once; it stays valid until the caller's next
 * slice, which comes only after the inner reader asked for more).
 * 1 fed, 0 nothing pending. */
static int feed_raw(ms_reader *r)
{
    lv_state *st = LST(r);
    const uint8_t *p;
    size_t n = ms_rd_peek(r, SIZE_MAX, &p);
    if (n == 0)
        return 0;
    st->fed_from_stash = ms_rd_stashed(r) > 0;
    /* Stream offsets are file offsets: after a seek of the inner reader
     * (mapped-ram in a sparse image) the bytes come from where it asked. */
    if (ms_reader_input_at(st->inner, ms_rd_pos(r), p, n) < 0)
        return inner_failed(r);
    ms_rd_skip(r, n);
    st->body_fed += n;
    st->inner_fed = 1;
    return 1;
}

/* Compressed bodies: decompress what is pending into `out` and hand that
 * to the inner reader.  1 progress, 0 nothing pending and nothing held,
 * -1 error. */
static int feed_decompressed(ms_reader *r)
{
    lv_state *st = LST(r);
    const uint8_t *p;
    size_t n = ms_rd_peek(r, SIZE_MAX, &p);
    if (st->dec_err.code) /* keeps the limit a refusal names */
        return ms_fail_as(&r->err, st->dec_err.code, st->dec_err.limit,
                          st->dec_err.offset, "%s", st->dec_err.detail);
    ms_dec_io io = {p, n, 0, st->out, LV_OUT_CAP, 0};
    ms_error_info e = {0};
    if (ms_dec_run(st->dec, &io, &e) < 0) {
        st->dec_err = e;
        st->dec_err.offset += st->info.body_offset;
        if (!io.out_made)
            return feed_decompressed(r);
    }
    ms_rd_skip(r, io.in_used);
    if (io.out_made) {
        if (ms_reader_input(st->inner, st->out, io.out_made) < 0)
            return inner_failed(r);
        st->body_fed += io.out_made;
        st->inner_fed = 1;
        return 1;
    }
    if (io.in_used)
        return 1; /* consumed without output yet (headers, tables) */
    if (n)
        return MS_FAIL(r, MS_ERR_USAGE, ms_rd_pos(r),
                       "internal: %s decompressor made no progress",
                       st->info.format_name);
    return 0;
}

/* An event of the inner reader as the image's: its own stream event is
 * dropped (the image's went first), decompressed ones are flagged and no
 * longer views of the caller's input. */
static int pass_event(ms_reader *r, ms_event *ev)
{
    lv_state *st = LST(r);
    if (ev->kind == MS_EV_STREAM_HEADER)
        return 0;
    if (ev->kind == MS_EV_CONFIGURATION &&
        st->info.format == MS_LIBVIRT_SPARSE && !ev->u.config.cap_mapped_ram)
        return MS_FAIL(r, MS_ERR_CONFIGURATION, ev->offset,
                       "libvirt sparse save image (format 6) whose stream "
                       "does not list mapped-ram");
    if (st->dec)
        ev->flags |= MS_EVF_DECOMPRESSED;
    if (st->dec || st->fed_from_stash) {
        if (ev->kind == MS_EV_DATA)
            ev->u.data.zero_copy = 0;
        else if (ev->kind == MS_EV_RAM_PAGE)
            ev->u.ram.zero_copy = 0;
    }
    return 1;
}

static int read_body(ms_reader *r, ms_event *ev)
{
    lv_state *st = LST(r);
    for (;;) {
        if (st->inner_fed) {
            int rc = ms_reader_next(st->inner, ev);
            if (rc == MS_NEXT_EVENT) {
                int pass = pass_event(r, ev);
                if (pass)
                    return pass < 0 ? MS_NEXT_ERROR : MS_NEXT_EVENT;
                continue;
            }
            if (rc == MS_NEXT_ERROR)
                return inner_failed(r);
            st->inner_fed = 0;
            if (rc == MS_NEXT_SEEK &&
                ms_rd_seek(r, ms_reader_seek_target(st->inner),
                           "libvirt sparse save image: mapped-ram pages "
                           "live at fixed offsets") < 0)
                return MS_NEXT_ERROR;
        }
        int f = st->dec ? feed_decompressed(r) : feed_raw(r);
        if (f <= 0)
            return f < 0 ? MS_NEXT_ERROR : MS_NEXT_INPUT;
    }
}

/* ---- framing ops -----------------------------------------------------------
 */

/* The diagram at the top of this file, stage by stage. */
#define AT(stage) [(stage) - LV_HEADER] /* the table starts at LV_HEADER */
static const ms_stage lv_stages[] = {
    AT(LV_HEADER) = {"HEADER", .emit = read_header},
    AT(LV_DATA) = {"DATA", .emit = skip_data},
    AT(LV_BODY) = {"BODY", .emit = read_body},
};
#undef AT
static const ms_stage_table lv_table = MS_STAGE_TABLE(LV_HEADER, lv_stages);

static int lv_finish(ms_reader *r)
{
    lv_state *st = LST(r);
    if (st->stage == LV_HEADER)
        return MS_FAIL(r, MS_ERR_TRUNCATED, r->offset,
                       "input ends inside the libvirt save image header");
    if (st->stage == LV_DATA)
        return MS_FAIL(r, MS_ERR_TRUNCATED, r->offset,
                       "input ends inside the domain XML and cookie (%llu of "
                       "%u bytes)",
                       (unsigned long long)st->data_pos, st->info.data_len);
    ms_error_info e = {0};
    if (st->dec && ms_dec_finish(st->dec, &e) < 0)
        return MS_FAIL(r, e.code, r->offset, "%s", e.detail);
    if (st->body_fed == 0)
        return MS_FAIL(r, MS_ERR_TRUNCATED, r->offset,
                       "the libvirt save image ends after its header and "
                       "XML: no QEMU stream%s",
                       st->dec ? " in its compressed data" : "");
    if (ms_reader_finish(st->inner) < 0) {
        const ms_error_info *ie = ms_reader_error(st->inner);
        if (!st->dec)
            return MS_FAIL(r, ie->code, ie->offset, "%s", ie->detail);
        return MS_FAIL(
            r, ie->code, r->offset, "%s-decompressed stream ends at %llu: %s",
            st->info.format_name, (unsigned long long)ie->offset, ie->detail);
    }
    return 0;
}

static void lv_destroy(ms_reader *r)
{
    lv_state *st = LST(r);
    if (!st)
        return;
    ms_reader_free(st->inner);
    ms_dec_free(st->dec);
    ms_free(LALLOC(r), st->out);
    ms_framing_free(r);
}

static int ms_libvirt_init(ms_reader *r)
{
    return ms_framing_new(r, sizeof(lv_state)) ? 0 : -1;
}

const ms_framing_ops ms_libvirt_ops = {
    .format = MS_FORMAT_LIBVIRT_SAVE,
    .init = ms_libvirt_init,
    .stages = &lv_table,
    .stage_at = offsetof(lv_state, stage),
    .finish = lv_finish,
    .destroy = lv_destroy,
};
