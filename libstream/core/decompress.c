/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* Streaming decompressors for libvirt save images (see decompress.h).
 * Facts: spec/libvirt-save.md section 4 (the gzip, bzip2, xz and zstd
 * stream formats are the libraries' business; the lzop container is the
 * lzop program's own and is parsed here, its LZO1X blocks by liblzo2).
 *
 *   compressed bytes
 *     -> MEMBER START: first byte must start a stream of the kind the
 *        header named (else: not that format, or trailing data after a
 *        complete stream)
 *     -> gzip: zlib inflate | bzip2: libbz2 | xz: liblzma | zstd: libzstd
 *        | lzop: the stages below
 *     -> MEMBER END (stream complete) -> MEMBER START again, or input ends
 *
 *   lzop member:
 *     HEAD (magic, versions, method, level, flags, [filter], mode, mtime,
 *           name, header checksum)
 *       -> [EXTRA_LEN -> EXTRA -> EXTRA_SUM]
 *       -> BLOCK_HEAD (be32 uncompressed size: 0 ends the member; be32
 *          compressed size; checksums) -> BLOCK_DATA -> BLOCK_OUT
 *       -> BLOCK_HEAD ...
 */
#include "decompress.h"

#include <bzlib.h>
#include <limits.h>
#include <lzma.h>
#include <lzo/lzo1x.h>
#define ZLIB_CONST
#include <zlib.h>
#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_createDCtx_advanced: our allocator */
#include <zstd.h>
#include <zstd_errors.h>
/* XXH64 (zstd frame checksums) compiled in from the header: its state is
 * then this build's, held inside ms_dec, without XXH_STATIC_LINKING_ONLY
 * against the shared libxxhash (which xxhash.h forbids). */
#define XXH_INLINE_ALL
#include <xxhash.h>

const char *ms_codec_name(ms_codec c)
{
    switch (c) {
    case MS_CODEC_GZIP:
        return "gzip";
    case MS_CODEC_BZIP2:
        return "bzip2";
    case MS_CODEC_XZ:
        return "xz";
    case MS_CODEC_LZOP:
        return "lzop";
    case MS_CODEC_ZSTD:
        return "zstd";
    }
    return "?";
}

/* ---- the memory budget --------------------------------------------------
 * Every block carries its size in front of it: the libraries free without
 * a size, and the budget must get the bytes back. */
#define MEM_HDR 16 /* keeps the 16-byte alignment malloc gives */

void ms_dec_mem_init(ms_dec_mem *m, const ms_allocator *a, uint64_t limit)
{
    m->a = a;
    m->used = 0;
    m->limit = limit;
    m->refused = 0;
}

static void *mem_alloc(ms_dec_mem *m, size_t size)
{
    if (size > SIZE_MAX - MEM_HDR || size + MEM_HDR > m->limit - m->used) {
        m->refused = 1;
        return NULL;
    }
    uint8_t *p = ms_alloc(m->a, size + MEM_HDR);
    if (!p)
        return NULL;
    memcpy(p, &size, sizeof size);
    m->used += size + MEM_HDR;
    return p + MEM_HDR;
}

static void mem_free(ms_dec_mem *m, void *ptr)
{
    if (!ptr)
        return;
    uint8_t *p = (uint8_t *)ptr - MEM_HDR;
    size_t size;
    memcpy(&size, p, sizeof size);
    m->used -= size + MEM_HDR;
    ms_free(m->a, p);
}

static void *mem_alloc_n(ms_dec_mem *m, size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size) {
        m->refused = 1;
        return NULL;
    }
    return mem_alloc(m, n * size);
}

/* the libraries' allocator hooks */
static void *z_alloc(void *o, unsigned n, unsigned size)
{
    return mem_alloc_n(o, n, size);
}
static void hook_free(void *o, void *p)
{
    mem_free(o, p);
}
static void *bz_alloc(void *o, int n, int size)
{
    return n < 0 || size < 0 ? NULL : mem_alloc_n(o, (size_t)n, (size_t)size);
}
static void *xz_alloc(void *o, size_t n, size_t size)
{
    return mem_alloc_n(o, n, size);
}
static void *zs_alloc(void *o, size_t size)
{
    return mem_alloc(o, size);
}

/* ---- lzop container facts ------------------------------------------------ */
#define LZOP_MAGIC_LEN 9
static const uint8_t lzop_magic[LZOP_MAGIC_LEN] = {0x89, 'L',  'Z',  'O', 0x00,
                                                   0x0d, 0x0a, 0x1a, 0x0a};
#define LZOP_F_ADLER32_D 0x00000001u
#define LZOP_F_ADLER32_C 0x00000002u
#define LZOP_F_H_EXTRA_FIELD 0x00000040u
#define LZOP_F_CRC32_D 0x00000100u
#define LZOP_F_CRC32_C 0x00000200u
#define LZOP_F_H_FILTER 0x00000800u
#define LZOP_F_H_CRC32 0x00001000u
#define LZOP_F_KNOWN 0x00003FFFu   /* flag bits lzop defines */
#define LZOP_F_OS_CS 0xfff00000u   /* OS and charset fields */
#define LZOP_VERSION_FIRST 0x0900u /* first public lzop */
#define LZOP_VERSION_FIELDS                                                    \
    0x0940u                          /* adds version_needed, level, mtime_high \
                                      */
#define LZOP_VERSION_KNOWN 0x1040u   /* newest version_needed decoded here */
#define LZOP_MAX_BLOCK (64u << 20)   /* lzop refuses larger blocks */
#define LZOP_SPLIT_BLOCK 0xffffffffu /* a split file (never implemented) */
#define LZOP_HEAD_MAX                                                          \
    (LZOP_MAGIC_LEN + 2 + 2 + 2 + 1 + 1 + 4 + 4 + 4 + 4 + 4 + 1 + 255 + 4)

enum lz_stage {
    LZ_HEAD = 0x4c5a, /* not 0: a zeroed state is caught as invalid */
    LZ_EXTRA_LEN,
    LZ_EXTRA,
    LZ_EXTRA_SUM,
    LZ_BLOCK_HEAD,
    LZ_BLOCK_DATA,
    LZ_BLOCK_OUT
};

typedef struct lzop_state {
    enum lz_stage stage;
    uint8_t head[LZOP_HEAD_MAX]; /* the member header being gathered */
    size_t head_len, head_need;
    int head_step;       /* which part of the header comes next */
    uint64_t member_off; /* compressed offset of the magic */
    uint32_t version, flags;
    uint32_t extra_left, extra_sum;
    uint8_t bh[24]; /* block header: sizes and checksums */
    size_t bh_len, bh_need;
    uint64_t block_off; /* compressed offset of the block's first byte */
    uint32_t block_no, dst_len, src_len;
    uint8_t *cbuf, *dbuf; /* compressed / decompressed block */
    size_t ccap, dcap, got;
    const uint8_t *res; /* the decompressed block being handed out */
    size_t res_pos;
} lzop_state;

struct ms_dec {
    ms_codec codec;
    ms_dec_mem mem;
    uint64_t max_window; /* zstd: max_zstd_window */
    int verify;
    uint64_t in_total, out_total;
    uint32_t members;
    int in_member;        /* inside a stream (0: before the first, between) */
    uint64_t member_off;  /* compressed offset of the stream's first byte */
    uint8_t member_first; /* and that byte (zstd: which magic follows) */
    int lib_ready;        /* the library's stream state exists */
    z_stream z;
    bz_stream bz;
    lzma_stream xz;
    lzma_allocator xz_alloc;
    ZSTD_DCtx *zs;
    /* zstd frames' content checksums are checked here, at the end of the
     * frame after its bytes went out, so the outcome does not depend on
     * whether the last block and the checksum arrived in one call */
    XXH64_state_t zs_sum;
    uint8_t zs_fhd;     /* the frame header descriptor (bit 2: checksum) */
    uint8_t zs_tail[4]; /* the last 4 compressed bytes consumed */
    size_t zs_hint;     /* libzstd's next input size: no more is given, so
                           one call decodes at most one block and a block
                           that fails costs no output of the ones before */
    lzop_state lz;
};

/* Compressed offset of the next input byte during a run. */
static uint64_t cur_off(const ms_dec *d, const ms_dec_io *io)
{
    return d->in_total + io->in_used;
}

/* A library failed: where (the last compressed byte it read, the same at
 * any split for zlib, libbz2 and liblzma; libzstd does not say how far it
 * read when it fails, so its errors are placed at the frame's first
 * byte), and why. */
static int lib_fail(ms_dec *d, const ms_dec_io *io, ms_error_info *err, int mem,
                    int unsupported, const char *why)
{
    uint64_t at = cur_off(d, io);
    if (d->codec == MS_CODEC_ZSTD)
        at = d->member_off;
    else if (at)
        at--;
    if (mem && d->mem.refused)
        return MS_FAIL_LIMIT_E(
            err, MS_LIMIT_MAX_DECOMPRESS_BYTES, at,
            "%s: the stream needs more decompressor memory than "
            "max_decompress_bytes (%llu)",
            ms_codec_name(d->codec), (unsigned long long)d->mem.limit);
    if (mem)
        return ms_fail(err, MS_ERR_NO_MEMORY, at, "%s: decompressor memory",
                       ms_codec_name(d->codec));
    return ms_fail(
        err, unsupported ? MS_ERR_FORMAT_UNSUPPORTED : MS_ERR_DECOMPRESS, at,
        "%s: %s (stream %u)", ms_codec_name(d->codec), why, d->members + 1);
}

static void member_end(ms_dec *d)
{
    d->in_member = 0;
    d->members++;
}

static unsigned clamp_uint(size_t n)
{
    return n > UINT_MAX ? UINT_MAX : (unsigned)n;
}

/* ---- gzip (zlib) ----------------------------------------------------------
 */
static int gzip_run(ms_dec *d, ms_dec_io *io, ms_error_info *err)
{
    z_stream *z = &d->z;
    unsigned in = clamp_uint(io->in_len), cap = clamp_uint(io->out_cap);
    z->next_in = io->in;
    z->avail_in = in;
    z->next_out = io->out;
    z->avail_out = cap;
    int zr = inflate(z, Z_NO_FLUSH);
    io->in_used = in - z->avail_in;
    io->out_made = cap - z->avail_out;
    if (zr == Z_STREAM_END)
        member_end(d);
    else if (zr != Z_OK && zr != Z_BUF_ERROR) /* BUF: no progress yet */
        return lib_fail(d, io, err, zr == Z_MEM_ERROR, 0,
                        z->msg ? z->msg : "inflate failed");
    return 0;
}

/* ---- bzip2 ------------------------------------------------------------------
 */
static int bzip2_run(ms_dec *d, ms_dec_io *io, ms_error_info *err)
{
    bz_stream *b = &d->bz;
    unsigned in = clamp_uint(io->in_len), cap = clamp_uint(io->out_cap);
    b->next_in = (char *)(uintptr_t)io->in; /* libbz2 never writes it */
    b->avail_in = in;
    b->next_out = (char *)io->out;
    b->avail_out = cap;
    int br = BZ2_bzDecompress(b);
    io->in_used = in - b->avail_in;
    io->out_made = cap - b->avail_out;
    switch (br) {
    case BZ_OK:
        return 0;
    case BZ_STREAM_END:
        member_end(d);
        return 0;
    case BZ_MEM_ERROR:
        return lib_fail(d, io, err, 1, 0, "");
    case BZ_DATA_ERROR_MAGIC:
        return lib_fail(d, io, err, 0, 0, "not a bzip2 stream (bad magic)");
    case BZ_DATA_ERROR:
        return lib_fail(d, io, err, 0, 0,
                        "corrupt data (block CRC or structure)");
    default:
        return lib_fail(d, io, err, 0, 0, "libbz2 failed");
    }
}

/* ---- xz (liblzma) ---------------------------------------------------------
 */
static int xz_run(ms_dec *d, ms_dec_io *io, ms_error_info *err)
{
    lzma_stream *x = &d->xz;
    x->next_in = io->in;
    x->avail_in = io->in_len;
    x->next_out = io->out;
    x->avail_out = io->out_cap;
    lzma_ret xr = lzma_code(x, LZMA_RUN);
    io->in_used = io->in_len - x->avail_in;
    io->out_made = io->out_cap - x->avail_out;
    switch (xr) {
    case LZMA_OK:
    case LZMA_BUF_ERROR:
        return 0; /* no progress possible yet */
    case LZMA_STREAM_END:
        member_end(d);
        return 0;
    case LZMA_MEMLIMIT_ERROR: { /* checked before the dictionary exists */
        uint64_t at = cur_off(d, io);
        return MS_FAIL_LIMIT_E(
            err, MS_LIMIT_MAX_DECOMPRESS_BYTES, at ? at - 1 : 0,
            "xz: the stream needs %llu bytes of decompressor "
            "memory; max_decompress_bytes (%llu) leaves %llu",
            (unsigned long long)lzma_memusage(x),
            (unsigned long long)d->mem.limit,
            (unsigned long long)lzma_memlimit_get(x));
    }
    case LZMA_MEM_ERROR:
        return lib_fail(d, io, err, 1, 0, "");
    case LZMA_FORMAT_ERROR:
        return lib_fail(d, io, err, 0, 0, "not an xz stream (bad magic)");
    case LZMA_OPTIONS_ERROR:
        return lib_fail(d, io, err, 0, 1,
                        "options this liblzma does not support");
    case LZMA_DATA_ERROR:
        return lib_fail(d, io, err, 0, 0, "corrupt data");
    default:
        return lib_fail(d, io, err, 0, 0, "liblzma failed");
    }
}

/* ---- zstd ---------------------------------------------------------------- */
#define ZSTD_FHD_OFF 4          /* the frame header descriptor's offset */
#define ZSTD_FHD_CHECKSUM 0x04u /* Content_Checksum_flag */
#define ZSTD_BLOCK_HEADER 3     /* Block_Header bytes (RFC 8878 3.1.1.2) */

/* What the checksum check needs from the bytes a call consumed and made. */
static void zstd_track(ms_dec *d, const ms_dec_io *io)
{
    uint64_t pos = d->in_total - d->member_off; /* frame bytes before */
    if (pos <= ZSTD_FHD_OFF && ZSTD_FHD_OFF < pos + io->in_used)
        d->zs_fhd = io->in[ZSTD_FHD_OFF - pos];
    size_t n = io->in_used;
    if (n >= 4) {
        memcpy(d->zs_tail, io->in + n - 4, 4);
    } else if (n) {
        memmove(d->zs_tail, d->zs_tail + n, 4 - n);
        memcpy(d->zs_tail + 4 - n, io->in, n);
    }
    if (io->out_made)
        XXH64_update(&d->zs_sum, io->out, io->out_made);
}

/* A frame ended: its content checksum (low 32 bits of XXH64, the frame's
 * last 4 bytes) when it has one. */
static int zstd_frame_end(ms_dec *d, const ms_dec_io *io, ms_error_info *err)
{
    int frame = d->member_first == 0x28; /* not a skippable frame */
    uint32_t got = (uint32_t)XXH64_digest(&d->zs_sum);
    uint32_t want = ms_le32(d->zs_tail);
    member_end(d);
    if (!frame || !(d->zs_fhd & ZSTD_FHD_CHECKSUM) || !d->verify || got == want)
        return 0;
    return ms_fail(err, MS_ERR_DECOMPRESS, cur_off(d, io) - 4,
                   "zstd: frame %u: content checksum %08x, the frame says "
                   "%08x",
                   d->members, got, want);
}

static int zstd_run(ms_dec *d, ms_dec_io *io, ms_error_info *err)
{
    /* libzstd's hint after a block's header is the block's content plus
     * the next block's header, which it preloads: given both in one call,
     * a damaged next header fails the call and the block's output is lost,
     * while input arriving in smaller pieces gives that output first.  So
     * no more than hint - 3 goes in (a short input is only buffered, and
     * the next hint asks for the rest): what comes out before a failure
     * does not depend on how the input was sliced. */
    size_t give = d->zs_hint > ZSTD_BLOCK_HEADER
                      ? d->zs_hint - ZSTD_BLOCK_HEADER
                      : d->zs_hint;
    ZSTD_inBuffer in = {io->in, MS_MIN(io->in_len, give), 0};
    ZSTD_outBuffer out = {io->out, io->out_cap, 0};
    size_t zr = ZSTD_decompressStream(d->zs, &out, &in);
    if (!ZSTD_isError(zr) && zr)
        d->zs_hint = zr;
    io->in_used = in.pos;
    io->out_made = out.pos;
    if (!ZSTD_isError(zr)) {
        zstd_track(d, io);
        if (zr == 0) /* a frame decoded and flushed completely */
            return zstd_frame_end(d, io, err);
        return 0;
    }
    ZSTD_ErrorCode code = ZSTD_getErrorCode(zr);
    if (code == ZSTD_error_frameParameter_windowTooLarge) {
        ms_dec_mem unbounded = {NULL, 0, UINT64_MAX, 0};
        uint64_t w = ms_dec_zstd_window(&d->mem, d->max_window);
        if (w < ms_dec_zstd_window(&unbounded, d->max_window))
            /* the budget left, not the window cap, set the bound */
            return MS_FAIL_LIMIT_E(
                err, MS_LIMIT_MAX_DECOMPRESS_BYTES, d->member_off,
                "zstd: the frame's window is larger than "
                "the %llu bytes max_decompress_bytes "
                "(%llu) leaves",
                (unsigned long long)w, (unsigned long long)d->mem.limit);
        return MS_FAIL_LIMIT_E(err, MS_LIMIT_MAX_ZSTD_WINDOW, d->member_off,
                               "zstd: the frame's window is larger than "
                               "max_zstd_window (%llu bytes)",
                               (unsigned long long)d->max_window);
    }
    return lib_fail(d, io, err, code == ZSTD_error_memory_allocation, 0,
                    ZSTD_getErrorName(zr));
}

/* The largest window log whose window is within max_window and fits in
 * what the budget has left (libzstd takes a log, so the cap is a power of
 * two). */
static int zstd_window_log(const ms_dec_mem *m, uint64_t max_window)
{
    uint64_t left = MS_MIN(m->limit - m->used, max_window);
    int wl = ZSTD_WINDOWLOG_MIN;
    while (wl < ZSTD_WINDOWLOG_MAX && ((uint64_t)1 << (wl + 1)) <= left)
        wl++;
    return wl;
}

uint64_t ms_dec_zstd_window(const ms_dec_mem *m, uint64_t max_window)
{
    return (uint64_t)1 << zstd_window_log(m, max_window);
}

int ms_dec_zstd_window_refused(size_t zstd_result)
{
    return ZSTD_isError(zstd_result) &&
           ZSTD_getErrorCode(zstd_result) ==
               ZSTD_error_frameParameter_windowTooLarge;
}

/* ZSTD_createDCtx_advanced and ZSTD_customMem are in the static-linking-
 * only part of zstd.h, but the shared libzstd.so.1 exports them (checked
 * with nm -D on Debian 12's 1.5.4: ZSTD_createDCtx_advanced is a T
 * symbol); ZSTD_DCtx_setParameter with ZSTD_d_windowLogMax is stable API. */
ZSTD_DCtx *ms_dec_zstd_create(ms_dec_mem *m, uint64_t max_window,
                              int ignore_checksum)
{
    ZSTD_DCtx *z =
        ZSTD_createDCtx_advanced((ZSTD_customMem){zs_alloc, hook_free, m});
    if (!z)
        return NULL;
    if (ZSTD_isError(ZSTD_DCtx_setParameter(z, ZSTD_d_windowLogMax,
                                            zstd_window_log(m, max_window))) ||
        (ignore_checksum &&
         ZSTD_isError(ZSTD_DCtx_setParameter(z, ZSTD_d_forceIgnoreChecksum,
                                             ZSTD_d_ignoreChecksum)))) {
        ZSTD_freeDCtx(z);
        return NULL;
    }
    return z;
}

int ms_dec_inflate_init(z_stream *z, ms_dec_mem *m, int window_bits)
{
    memset(z, 0, sizeof *z);
    z->zalloc = z_alloc;
    z->zfree = hook_free;
    z->opaque = m;
    return inflateInit2(z, window_bits) == Z_OK ? 0 : -1;
}

/* ---- lzop -------------------------------------------------------------------
 * Gather bytes of a unit whose length is known into buf; 1 when complete. */
static int lz_gather(ms_dec_io *io, uint8_t *buf, size_t *len, size_t need)
{
    size_t k = MS_MIN(need - *len, io->in_len - io->in_used);
    memcpy(buf + *len, io->in + io->in_used, k);
    *len += k;
    io->in_used += k;
    return *len == need;
}

/* lzop's checksum of header bytes: adler32, or crc32 with F_H_CRC32. */
static uint32_t lz_sum(uint32_t flags, uint32_t sum, const uint8_t *p, size_t n)
{
    return flags & LZOP_F_H_CRC32 ? (uint32_t)crc32(sum, p, (uInt)n)
                                  : (uint32_t)adler32(sum, p, (uInt)n);
}
static uint32_t lz_sum_init(uint32_t flags)
{
    return flags & LZOP_F_H_CRC32 ? 0u : 1u;
}

static int lz_bad(ms_dec *d, ms_error_info *err, ms_error code, uint64_t at,
                  const char *what)
{
    (void)d;
    return ms_fail(err, code, at, "lzop: %s", what);
}

/* The fixed header fields up to the flags are in: check them. */
static int lz_head_fields(ms_dec *d, ms_error_info *err)
{
    lzop_state *l = &d->lz;
    const uint8_t *h = l->head;
    size_t at = LZOP_MAGIC_LEN + 2 + 2; /* version, lib_version */
    int fields = l->version >= LZOP_VERSION_FIELDS;
    if (fields) {
        uint32_t needed = ms_be16(h + at);
        if (needed < LZOP_VERSION_FIRST || needed > LZOP_VERSION_KNOWN)
            return ms_fail(err, MS_ERR_FORMAT_UNSUPPORTED, l->member_off + at,
                           "lzop: the stream needs lzop version %x.%03x to "
                           "extract",
                           needed >> 12, needed & 0xfff);
        at += 2;
    }
    uint8_t method = h[at++];
    if (method < 1 || method > 3) /* LZO1X-1, LZO1X-1(15), LZO1X-999 */
        return ms_fail(err, MS_ERR_FORMAT_UNSUPPORTED, l->member_off + at - 1,
                       "lzop: method %u is not an LZO1X method (1, 2, 3)",
                       method);
    if (fields && h[at++] > 9) /* level 0 means the method's default */
        return lz_bad(d, err, MS_ERR_DECOMPRESS, l->member_off + at - 1,
                      "compression level above 9");
    l->flags = ms_be32(h + at);
    uint64_t foff = l->member_off + at;
    if (l->flags & ~(LZOP_F_KNOWN | LZOP_F_OS_CS))
        return lz_bad(d, err, MS_ERR_DECOMPRESS, foff,
                      "reserved flag bits set");
    if (l->flags & LZOP_F_H_FILTER)
        return lz_bad(d, err, MS_ERR_FORMAT_UNSUPPORTED, foff,
                      "a filter (lzop --filter) is not decoded");
    if (((l->flags & LZOP_F_ADLER32_C) && !(l->flags & LZOP_F_ADLER32_D)) ||
        ((l->flags & LZOP_F_CRC32_C) && !(l->flags & LZOP_F_CRC32_D)))
        return lz_bad(d, err, MS_ERR_DECOMPRESS, foff,
                      "compressed-data checksum without the data checksum");
    return 0;
}

/* HEAD: gather the member header in four steps (its length depends on its
 * version, flags and name), then check it.  1: complete, 0: more input. */
static int lz_head(ms_dec *d, ms_dec_io *io, ms_error_info *err)
{
    lzop_state *l = &d->lz;
    while (lz_gather(io, l->head, &l->head_len, l->head_need)) {
        int fields = l->version >= LZOP_VERSION_FIELDS;
        switch (l->head_step++) {
        case 0: /* magic, version */
            for (size_t i = 0; i < LZOP_MAGIC_LEN; i++)
                if (l->head[i] != lzop_magic[i])
                    return lz_bad(d, err, MS_ERR_DECOMPRESS, l->member_off + i,
                                  "not an lzop stream (bad magic)");
            l->version = ms_be16(l->head + LZOP_MAGIC_LEN);
            if (l->version < LZOP_VERSION_FIRST)
                return lz_bad(d, err, MS_ERR_DECOMPRESS,
                              l->member_off + LZOP_MAGIC_LEN,
                              "version before lzop 0.90");
            fields = l->version >= LZOP_VERSION_FIELDS;
            l->head_need += 2 + (fields ? 2 : 0) + 1 + (fields ? 1 : 0) + 4;
            break;
        case 1: /* lib_version .. flags */
            if (lz_head_fields(d, err) < 0)
                return -1;
            l->head_need += (l->flags & LZOP_F_H_FILTER ? 4 : 0) + 4 + 4 +
                            (fields ? 4 : 0) + 1;
            break;
        case 2: /* mode, mtime, name length */
            l->head_need += l->head[l->head_len - 1] + 4u;
            break;
        default: { /* name, header checksum */
            size_t n = l->head_len - 4 - LZOP_MAGIC_LEN;
            uint32_t want = ms_be32(l->head + l->head_len - 4);
            if (d->verify && lz_sum(l->flags, lz_sum_init(l->flags),
                                    l->head + LZOP_MAGIC_LEN, n) != want)
                return lz_bad(d, err, MS_ERR_DECOMPRESS,
                              l->member_off + l->head_len - 4,
                              "header checksum mismatch");
            l->stage =
                l->flags & LZOP_F_H_EXTRA_FIELD ? LZ_EXTRA_LEN : LZ_BLOCK_HEAD;
            l->bh_len = 0;
            l->bh_need = 4;
            return 1;
        }
        }
    }
    return 0;
}

/* The optional extra field: be32 length, bytes, be32 checksum (of both). */
static int lz_extra(ms_dec *d, ms_dec_io *io, ms_error_info *err)
{
    lzop_state *l = &d->lz;
    if (l->stage == LZ_EXTRA_LEN) {
        if (!lz_gather(io, l->bh, &l->bh_len, 4))
            return 0;
        l->extra_left = ms_be32(l->bh);
        l->extra_sum = lz_sum(l->flags, lz_sum_init(l->flags), l->bh, 4);
        l->stage = LZ_EXTRA;
    }
    if (l->stage == LZ_EXTRA) { /* skipped: lzop defines no content */
        size_t k = MS_MIN(l->extra_left, io->in_len - io->in_used);
        l->extra_sum = lz_sum(l->flags, l->extra_sum, io->in + io->in_used, k);
        io->in_used += k;
        l->extra_left -= (uint32_t)k;
        if (l->extra_left)
            return 0;
        l->stage = LZ_EXTRA_SUM;
        l->bh_len = 0;
    }
    if (!lz_gather(io, l->bh, &l->bh_len, 4))
        return 0;
    if (d->verify && ms_be32(l->bh) != l->extra_sum)
        return lz_bad(d, err, MS_ERR_DECOMPRESS, cur_off(d, io) - 4,
                      "extra field checksum mismatch");
    l->stage = LZ_BLOCK_HEAD;
    l->bh_len = 0;
    l->bh_need = 4;
    return 1;
}

/* Room for a block in the budget (checked before allocating). */
static int lz_reserve(ms_dec *d, uint8_t **buf, size_t *cap, size_t n,
                      ms_error_info *err)
{
    if (n <= *cap)
        return 0;
    mem_free(&d->mem, *buf);
    *cap = 0;
    if (!(*buf = mem_alloc(&d->mem, n)))
        return ms_fail_as(err, d->mem.refused ? MS_ERR_LIMIT : MS_ERR_NO_MEMORY,
                          MS_LIMIT_MAX_DECOMPRESS_BYTES, d->lz.block_off,
                          "lzop: block %u of %u bytes (%u compressed) does not "
                          "fit in max_decompress_bytes (%llu)",
                          d->lz.block_no + 1, d->lz.dst_len, d->lz.src_len,
                          (unsigned long long)d->mem.limit);
    *cap = n;
    return 0;
}

/* BLOCK_HEAD: be32 uncompressed size (0 ends the member), be32 compressed
 * size, then the checksums the flags ask for.  1 done, 0 more input. */
static int lz_block_head(ms_dec *d, ms_dec_io *io, ms_error_info *err)
{
    lzop_state *l = &d->lz;
    if (l->bh_len == 0)
        l->block_off = cur_off(d, io);
    while (lz_gather(io, l->bh, &l->bh_len, l->bh_need)) {
        if (l->bh_need == 4) {
            l->dst_len = ms_be32(l->bh);
            if (l->dst_len == 0) { /* end of the member */
                member_end(d);
                return 1;
            }
            if (l->dst_len == LZOP_SPLIT_BLOCK)
                return lz_bad(d, err, MS_ERR_FORMAT_UNSUPPORTED, l->block_off,
                              "a split lzop file");
            if (l->dst_len > LZOP_MAX_BLOCK)
                return lz_bad(d, err, MS_ERR_DECOMPRESS, l->block_off,
                              "block larger than 64 MiB");
            l->bh_need = 8;
        } else if (l->bh_need == 8) {
            l->src_len = ms_be32(l->bh + 4);
            if (l->src_len == 0 || l->src_len > l->dst_len)
                return lz_bad(d, err, MS_ERR_DECOMPRESS, l->block_off + 4,
                              "compressed block size is 0 or larger than "
                              "the uncompressed size");
            int packed = l->src_len < l->dst_len;
            uint32_t f = l->flags;
            l->bh_need = 8 + (f & LZOP_F_ADLER32_D ? 4 : 0) +
                         (f & LZOP_F_CRC32_D ? 4 : 0) +
                         (packed && (f & LZOP_F_ADLER32_C) ? 4 : 0) +
                         (packed && (f & LZOP_F_CRC32_C) ? 4 : 0);
            if (l->bh_need == 8)
                break;
        } else {
            break;
        }
    }
    if (l->bh_len < l->bh_need)
        return 0;
    if (lz_reserve(d, &l->cbuf, &l->ccap, l->src_len, err) < 0 ||
        (l->src_len < l->dst_len &&
         lz_reserve(d, &l->dbuf, &l->dcap, l->dst_len, err) < 0))
        return -1;
    l->got = 0;
    l->stage = LZ_BLOCK_DATA;
    return 1;
}

/* One checksum field of the block header against the bytes it covers. */
static int lz_check(ms_dec *d, ms_error_info *err, size_t *field, int crc,
                    const uint8_t *p, size_t n, const char *what)
{
    lzop_state *l = &d->lz;
    uint32_t want = ms_be32(l->bh + *field);
    uint32_t got =
        crc ? (uint32_t)crc32(0, p, (uInt)n) : (uint32_t)adler32(1, p, (uInt)n);
    uint64_t at = l->block_off + *field;
    *field += 4;
    if (!d->verify || got == want)
        return 0;
    return ms_fail(err, MS_ERR_DECOMPRESS, at,
                   "lzop: block %u: %s of the %s data is %08x, the block "
                   "says %08x",
                   l->block_no + 1, crc ? "crc32" : "adler32", what, got, want);
}

/* BLOCK_DATA: the compressed bytes; check, decompress, check. */
static int lz_block_data(ms_dec *d, ms_dec_io *io, ms_error_info *err)
{
    lzop_state *l = &d->lz;
    if (!lz_gather(io, l->cbuf, &l->got, l->src_len))
        return 0;
    uint32_t f = l->flags;
    int packed = l->src_len < l->dst_len;
    size_t dsum = 8, csum = 8 + (f & LZOP_F_ADLER32_D ? 4 : 0) +
                            (f & LZOP_F_CRC32_D ? 4 : 0);
    if (packed &&
        (((f & LZOP_F_ADLER32_C) &&
          lz_check(d, err, &csum, 0, l->cbuf, l->src_len, "compressed") < 0) ||
         ((f & LZOP_F_CRC32_C) &&
          lz_check(d, err, &csum, 1, l->cbuf, l->src_len, "compressed") < 0)))
        return -1;
    l->res = l->cbuf; /* a block lzop could not shrink is stored */
    if (packed) {
        lzo_uint out = l->dst_len;
        int r = lzo1x_decompress_safe(l->cbuf, l->src_len, l->dbuf, &out, NULL);
        if (r != LZO_E_OK || out != l->dst_len)
            return ms_fail(err, MS_ERR_DECOMPRESS, l->block_off + l->bh_need,
                           "lzop: block %u: corrupt LZO1X data (liblzo2 "
                           "error %d, %lu of %u bytes)",
                           l->block_no + 1, r, (unsigned long)out, l->dst_len);
        l->res = l->dbuf;
    }
    if (((f & LZOP_F_ADLER32_D) &&
         lz_check(d, err, &dsum, 0, l->res, l->dst_len, "decompressed") < 0) ||
        ((f & LZOP_F_CRC32_D) &&
         lz_check(d, err, &dsum, 1, l->res, l->dst_len, "decompressed") < 0))
        return -1;
    l->res_pos = 0;
    l->stage = LZ_BLOCK_OUT;
    return 1;
}

static int lzop_run(ms_dec *d, ms_dec_io *io, ms_error_info *err)
{
    lzop_state *l = &d->lz;
    for (;;) {
        int rc;
        switch (l->stage) {
        case LZ_HEAD:
            rc = lz_head(d, io, err);
            break;
        case LZ_EXTRA_LEN:
        case LZ_EXTRA:
        case LZ_EXTRA_SUM:
            rc = lz_extra(d, io, err);
            break;
        case LZ_BLOCK_HEAD:
            rc = lz_block_head(d, io, err);
            if (rc > 0 && !d->in_member)
                return 0; /* the member ended: the caller looks further */
            break;
        case LZ_BLOCK_DATA:
            rc = lz_block_data(d, io, err);
            break;
        case LZ_BLOCK_OUT: {
            size_t k =
                MS_MIN(l->dst_len - l->res_pos, io->out_cap - io->out_made);
            memcpy(io->out + io->out_made, l->res + l->res_pos, k);
            io->out_made += k;
            l->res_pos += k;
            rc = l->res_pos == l->dst_len;
            if (rc) {
                l->block_no++;
                l->stage = LZ_BLOCK_HEAD;
                l->bh_len = 0;
                l->bh_need = 4;
            }
            break;
        }
        default:
            return ms_fail(err, MS_ERR_USAGE, cur_off(d, io),
                           "internal: lzop stage");
        }
        if (rc <= 0)
            return rc; /* 0: more input or more output room needed */
    }
}

/* ---- members
 * ----------------------------------------------------------------- */
/* The magic a stream of each kind starts with, checked byte by byte as it
 * passes (so the offending byte is named at any split) before the library
 * sees it.  zstd: a frame (28 b5 2f fd) or a skippable frame (5X 2a 4d 18). */
static size_t member_magic(ms_codec c, uint8_t first, const uint8_t **m)
{
    static const uint8_t gzip[] = {0x1f, 0x8b};
    static const uint8_t bzip2[] = {'B', 'Z', 'h'};
    static const uint8_t xz[] = {0xfd, '7', 'z', 'X', 'Z', 0x00};
    static const uint8_t zstd[] = {0x28, 0xb5, 0x2f, 0xfd};
    static const uint8_t zskip[] = {0x50, 0x2a, 0x4d, 0x18};
    switch (c) {
    case MS_CODEC_GZIP:
        *m = gzip;
        return sizeof gzip;
    case MS_CODEC_BZIP2:
        *m = bzip2;
        return sizeof bzip2;
    case MS_CODEC_XZ:
        *m = xz;
        return sizeof xz;
    case MS_CODEC_LZOP:
        *m = lzop_magic;
        return sizeof lzop_magic;
    case MS_CODEC_ZSTD:
        *m = (first & 0xf0) == 0x50 ? zskip : zstd;
        return sizeof zstd;
    }
    return 0;
}

/* The input's bytes that fall in the member's magic are right: 0, or -1
 * (a first byte after a complete stream is trailing data; any other a
 * stream of another kind, or a corrupt one). */
static int check_magic(ms_dec *d, const ms_dec_io *io, ms_error_info *err)
{
    uint64_t pos = d->in_total - d->member_off; /* magic bytes passed */
    const uint8_t *m;
    size_t mlen = member_magic(d->codec, pos ? d->member_first : io->in[0], &m);
    for (size_t k = 0; pos + k < mlen && k < io->in_len; k++) {
        uint8_t b = io->in[k], want = m[pos + k];
        if (b == want || (pos + k == 0 && d->codec == MS_CODEC_ZSTD &&
                          (b & 0xf0) == 0x50)) /* any skippable frame */
            continue;
        if (pos + k == 0 && d->members)
            return ms_fail(err, MS_ERR_TRAILING_DATA, d->in_total,
                           "byte 0x%02x after the end of the %s stream (%u "
                           "complete)",
                           b, ms_codec_name(d->codec), d->members);
        return ms_fail(err, MS_ERR_DECOMPRESS, d->in_total + k,
                       "%s: not a %s stream (magic byte %zu is 0x%02x, not "
                       "0x%02x)",
                       ms_codec_name(d->codec), ms_codec_name(d->codec),
                       (size_t)(pos + k), b, want);
    }
    return 0;
}

static int init_failed(ms_dec *d, ms_error_info *err, uint64_t at)
{
    return ms_fail_as(err, d->mem.refused ? MS_ERR_LIMIT : MS_ERR_NO_MEMORY,
                      MS_LIMIT_MAX_DECOMPRESS_BYTES, at,
                      "%s: decompressor state (max_decompress_bytes %llu)",
                      ms_codec_name(d->codec),
                      (unsigned long long)d->mem.limit);
}

/* Fresh library state for the stream starting at compressed offset `at`. */
static int begin_member(ms_dec *d, uint64_t at, ms_error_info *err)
{
    switch (d->codec) {
    case MS_CODEC_GZIP:
        if (d->lib_ready) {
            if (inflateReset(&d->z) != Z_OK)
                return init_failed(d, err, at);
            break;
        }
        if (ms_dec_inflate_init(&d->z, &d->mem, 16 + MAX_WBITS) < 0)
            return init_failed(d, err, at); /* gzip only */
        break;
    case MS_CODEC_BZIP2:
        if (d->lib_ready)
            BZ2_bzDecompressEnd(&d->bz);
        d->lib_ready = 0;
        memset(&d->bz, 0, sizeof d->bz);
        d->bz.bzalloc = bz_alloc;
        d->bz.bzfree = hook_free;
        d->bz.opaque = &d->mem;
        if (BZ2_bzDecompressInit(&d->bz, 0, 0) != BZ_OK)
            return init_failed(d, err, at);
        break;
    case MS_CODEC_XZ: {
        if (d->lib_ready)
            lzma_end(&d->xz);
        d->lib_ready = 0;
        lzma_stream fresh = LZMA_STREAM_INIT;
        d->xz = fresh;
        d->xz_alloc = (lzma_allocator){xz_alloc, hook_free, &d->mem};
        d->xz.allocator = &d->xz_alloc;
        /* liblzma compares the dictionary with this before allocating */
        if (lzma_stream_decoder(&d->xz, d->mem.limit - d->mem.used, 0) !=
            LZMA_OK)
            return init_failed(d, err, at);
        break;
    }
    case MS_CODEC_ZSTD:
        XXH64_reset(&d->zs_sum, 0);
        d->zs_fhd = 0;
        d->zs_hint = ZSTD_FRAMEHEADERSIZE_PREFIX(ZSTD_f_zstd1);
        if (d->lib_ready) /* frames follow each other in one context */
            break;
        /* content checksums: checked by zstd_frame_end instead */
        d->zs = ms_dec_zstd_create(&d->mem, d->max_window, 1);
        if (!d->zs)
            return init_failed(d, err, at);
        break;
    case MS_CODEC_LZOP:
        d->lz.stage = LZ_HEAD;
        d->lz.head_len = 0;
        d->lz.head_need = LZOP_MAGIC_LEN + 2;
        d->lz.head_step = 0;
        d->lz.version = 0;
        d->lz.member_off = at;
        d->lz.block_no = 0;
        break;
    }
    d->lib_ready = 1;
    d->in_member = 1;
    return 0;
}

/* ---- public
 * ------------------------------------------------------------------ */
ms_dec *ms_dec_create(const ms_allocator *a, ms_codec codec, uint64_t mem_limit,
                      uint64_t max_window, int verify_checks,
                      ms_error_info *err)
{
    if (sizeof(ms_dec) > mem_limit) {
        MS_FAIL_LIMIT_E(
            err, MS_LIMIT_MAX_DECOMPRESS_BYTES, 0,
            "%s: max_decompress_bytes (%llu) is below the decompressor's "
            "own state",
            ms_codec_name(codec), (unsigned long long)mem_limit);
        return NULL;
    }
    ms_dec *d = ms_calloc(a, 1, sizeof *d);
    if (!d) {
        ms_fail(err, MS_ERR_NO_MEMORY, 0, "%s: decompressor state",
                ms_codec_name(codec));
        return NULL;
    }
    d->codec = codec;
    ms_dec_mem_init(&d->mem, a, mem_limit);
    d->mem.used = sizeof *d;
    d->max_window = max_window;
    d->verify = verify_checks;
    if (codec == MS_CODEC_LZOP && lzo_init() != LZO_E_OK) {
        ms_fail(err, MS_ERR_USAGE, 0, "lzop: liblzo2 does not initialise");
        ms_dec_free(d);
        return NULL;
    }
    return d;
}

int ms_dec_run(ms_dec *d, ms_dec_io *io, ms_error_info *err)
{
    io->in_used = io->out_made = 0;
    if (!d->in_member) {
        if (io->in_len == 0)
            return 0; /* nothing held between streams */
        d->member_off = d->in_total;
        if (check_magic(d, io, err) < 0)
            return -1;
        d->member_first = io->in[0];
        if (begin_member(d, d->in_total, err) < 0)
            return -1;
    } else if (io->in_len && check_magic(d, io, err) < 0) {
        return -1;
    }
    int rc;
    switch (d->codec) {
    case MS_CODEC_GZIP:
        rc = gzip_run(d, io, err);
        break;
    case MS_CODEC_BZIP2:
        rc = bzip2_run(d, io, err);
        break;
    case MS_CODEC_XZ:
        rc = xz_run(d, io, err);
        break;
    case MS_CODEC_LZOP:
        rc = lzop_run(d, io, err);
        break;
    case MS_CODEC_ZSTD:
        rc = zstd_run(d, io, err);
        break;
    default:
        rc = ms_fail(err, MS_ERR_USAGE, 0, "internal: codec");
        break;
    }
    d->in_total += io->in_used;
    d->out_total += io->out_made;
    return rc;
}

int ms_dec_finish(ms_dec *d, ms_error_info *err)
{
    if (d->members && !d->in_member)
        return 0;
    if (d->in_total == 0)
        return ms_fail(err, MS_ERR_TRUNCATED, 0,
                       "input ends where the %s stream should begin",
                       ms_codec_name(d->codec));
    return ms_fail(err, MS_ERR_TRUNCATED, d->in_total,
                   "input ends inside %s stream %u after %llu compressed "
                   "bytes (%llu decompressed)",
                   ms_codec_name(d->codec), d->members + 1,
                   (unsigned long long)d->in_total,
                   (unsigned long long)d->out_total);
}

uint64_t ms_dec_in_total(const ms_dec *d)
{
    return d->in_total;
}
uint64_t ms_dec_out_total(const ms_dec *d)
{
    return d->out_total;
}
uint32_t ms_dec_members(const ms_dec *d)
{
    return d->members;
}

void ms_dec_free(ms_dec *d)
{
    if (!d)
        return;
    if (d->lib_ready) {
        switch (d->codec) {
        case MS_CODEC_GZIP:
            inflateEnd(&d->z);
            break;
        case MS_CODEC_BZIP2:
            BZ2_bzDecompressEnd(&d->bz);
            break;
        case MS_CODEC_XZ:
            lzma_end(&d->xz);
            break;
        case MS_CODEC_ZSTD:
            ZSTD_freeDCtx(d->zs);
            break;
        case MS_CODEC_LZOP:
            break;
        }
    }
    mem_free(&d->mem, d->lz.cbuf);
    mem_free(&d->mem, d->lz.dbuf);
    ms_free(d->mem.a, d);
}
