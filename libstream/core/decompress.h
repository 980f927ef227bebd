/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* Streaming decompressors for the compressed bodies of libvirt save images
 * (gzip, bzip2, xz, lzop, zstd), fed compressed bytes as they come, split
 * anywhere.  Facts: spec/libvirt-save.md section 4.  Also the bounded
 * library states the QEMU decoders use (multifd zlib/zstd channels,
 * COMPRESS_PAGE): ms_dec_mem and the two constructors below.
 *
 * Every allocation (the libraries' own through their allocator hooks, and
 * lzop's block buffers) is counted against one budget, checked before the
 * allocation is made; a stream whose window or tables do not fit is
 * refused with MS_ERR_LIMIT.  A zstd frame's window is also capped
 * (max_zstd_window) before libzstd allocates it.  Error offsets count
 * compressed bytes from the first byte of the compressed data. */
#ifndef MS_DECOMPRESS_H
#define MS_DECOMPRESS_H

#include "common.h"

typedef enum ms_codec {
    MS_CODEC_GZIP,
    MS_CODEC_BZIP2,
    MS_CODEC_XZ,
    MS_CODEC_LZOP,
    MS_CODEC_ZSTD
} ms_codec;

const char *ms_codec_name(ms_codec c); /* "gzip", ... */

/* ---- the memory budget ---------------------------------------------------
 * Bytes a decompressor's library state may hold; every block it allocates
 * goes through `a` and is counted (with a small header) before it is
 * allocated. */
typedef struct ms_dec_mem {
    const ms_allocator *a;
    uint64_t used, limit; /* used <= limit always */
    int refused;          /* an allocation was refused for the budget */
} ms_dec_mem;

void ms_dec_mem_init(ms_dec_mem *m, const ms_allocator *a, uint64_t limit);

/* zlib's inflate state allocating from `m` (inflateInit2 with
 * `window_bits`); end it with inflateEnd as usual.  0, or -1: m->refused
 * says whether the budget or memory was short. */
struct z_stream_s;
int ms_dec_inflate_init(struct z_stream_s *z, ms_dec_mem *m, int window_bits);

/* A libzstd decompression context allocating from `m`, its window log
 * capped to the largest 2^n <= max_window that also fits what the budget
 * has left (at least ZSTD_WINDOWLOG_MIN, 1 KiB): a frame declaring a
 * larger window fails with ZSTD_error_frameParameter_windowTooLarge
 * before its buffers exist (see ms_dec_zstd_window_refused).  Content
 * checksums are not checked by libzstd when `ignore_checksum`.  NULL:
 * m->refused says why.  Free it with ZSTD_freeDCtx. */
struct ZSTD_DCtx_s;
struct ZSTD_DCtx_s *ms_dec_zstd_create(ms_dec_mem *m, uint64_t max_window,
                                       int ignore_checksum);
/* The window (bytes, a power of two) ms_dec_zstd_create allowed. */
uint64_t ms_dec_zstd_window(const ms_dec_mem *m, uint64_t max_window);
/* 1 when a ZSTD_decompressStream result is the window refusal. */
int ms_dec_zstd_window_refused(size_t zstd_result);

typedef struct ms_dec ms_dec;

/* One step: compressed bytes in, decompressed bytes out. */
typedef struct ms_dec_io {
    const uint8_t *in;
    size_t in_len;  /* may be 0: only drain what the decoder holds */
    size_t in_used; /* set by ms_dec_run */
    uint8_t *out;
    size_t out_cap;  /* > 0 */
    size_t out_made; /* set by ms_dec_run */
} ms_dec_io;

/* A decompressor holding at most `mem_limit` bytes (its own state
 * included); zstd frames get at most a `max_window` window.  NULL when
 * the budget or memory is short (err says which). */
ms_dec *ms_dec_create(const ms_allocator *a, ms_codec codec, uint64_t mem_limit,
                      uint64_t max_window, int verify_checks,
                      ms_error_info *err);

/* Consume what it can of io->in, produce what it can into io->out.  After
 * a complete stream only another stream of the same kind may follow (a
 * concatenated member).  Returns 0, or -1 with err filled (offset: the
 * compressed byte at which decoding failed, counted from the start). */
int ms_dec_run(ms_dec *d, ms_dec_io *io, ms_error_info *err);

/* Input is over: 0 when it ended right after a complete stream, else -1
 * (truncated). */
int ms_dec_finish(ms_dec *d, ms_error_info *err);

uint64_t ms_dec_in_total(const ms_dec *d);  /* compressed bytes consumed */
uint64_t ms_dec_out_total(const ms_dec *d); /* bytes produced */
uint32_t ms_dec_members(const ms_dec *d);   /* complete streams so far */
void ms_dec_free(ms_dec *d);

#endif
