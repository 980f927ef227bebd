/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* Input slicing and the stash (input.c): how a decoder reads the caller's
 * slices.  The "parse in place or stash the fragment" pattern (lz4frame's
 * paired stages): a unit that lies whole in the slice is read in place
 * (zero copy); one split across slices is gathered in the stash, so every
 * decoder is resumable at any byte split.  The fields live in struct
 * ms_reader (reader_impl.h: in, in_len, in_pos, offset, stash*, untake*,
 * seek_*); only this unit and reader.c's slice hand-over change them. */
#ifndef MS_INPUT_H
#define MS_INPUT_H

#include "reader_impl.h"

/* Bytes of the current slice not yet consumed. */
static inline size_t ms_rd_avail(const ms_reader *r)
{
    return r->in_len - r->in_pos;
}

static inline size_t ms_rd_stashed(const ms_reader *r)
{
    return r->stash_len - r->stash_pos;
}

/* Bytes the decoder can read now without more input. */
static inline size_t ms_rd_pending(const ms_reader *r)
{
    return ms_rd_stashed(r) + ms_rd_avail(r);
}

/* Absolute offset of the next byte the decoder reads. */
static inline uint64_t ms_rd_pos(const ms_reader *r)
{
    return r->offset - ms_rd_stashed(r);
}

/* Make `n` contiguous bytes available at *out: in place when the slice
 * holds them all (zero copy), else gathered in the stash.  Returns 1 with
 * the bytes consumed, or 0 after stashing what there was (more input
 * needed).  *out stays valid until the next ms_rd_take.  `n` must not
 * exceed the capacity reserved with ms_rd_reserve. */
int ms_rd_take(ms_reader *r, size_t n, const uint8_t **out);

/* ms_rd_take after reserving stash room for `n` bytes: 1 taken, 0 more
 * input needed, -1 error (recorded).  `n` must be bounded by the caller's
 * limits. */
int ms_rd_take_reserved(ms_reader *r, size_t n, const uint8_t **out);

/* In a stage function: take `n` bytes into `p` or return what the stage
 * must (MS_NEXT_INPUT, or MS_NEXT_ERROR). */
#define MS_TAKE_OR_RETURN(r, n, p)                                             \
    do {                                                                       \
        int t_ = ms_rd_take_reserved((r), (n), (p));                           \
        if (t_ <= 0)                                                           \
            return t_ < 0 ? MS_NEXT_ERROR : MS_NEXT_INPUT;                     \
    } while (0)

/* Give back the bytes of the last ms_rd_take that returned 1 (a peek that
 * may span slices: take, look, give back).  Nothing else may come between
 * the take and the untake. */
void ms_rd_untake(ms_reader *r);

/* Up to `max` bytes in place (stash first, then the slice), without
 * consuming them. */
static inline size_t ms_rd_peek(const ms_reader *r, size_t max,
                                const uint8_t **out)
{
    if (ms_rd_stashed(r)) {
        *out = r->stash + r->stash_pos;
        return MS_MIN(max, ms_rd_stashed(r));
    }
    if (!r->in) { /* no slice yet: nothing, but a valid pointer */
        *out = (const uint8_t *)"";
        return 0;
    }
    *out = r->in + r->in_pos;
    return MS_MIN(max, ms_rd_avail(r));
}

/* Consume `n` bytes a ms_rd_peek returned. */
static inline void ms_rd_skip(ms_reader *r, size_t n)
{
    if (ms_rd_stashed(r)) {
        r->stash_pos += n;
        if (r->stash_pos == r->stash_len)
            r->stash_len = r->stash_pos = 0;
        return;
    }
    r->in_pos += n;
    r->offset += n;
}

/* 1 when `p` points into the caller's input (not the stash). */
static inline int ms_rd_in_input(const ms_reader *r, const uint8_t *p)
{
    return !(r->stash && p >= r->stash && p < r->stash + r->stash_cap);
}

/* Ensure the stash can hold a unit of `n` bytes (checked against limits by
 * the caller before this is called). Returns 0 or -1 (error recorded). */
int ms_rd_reserve(ms_reader *r, size_t n);

/* Offset of the first byte of the unit being gathered (or read next). */
static inline uint64_t ms_rd_unit_offset(const ms_reader *r)
{
    return ms_rd_pos(r);
}

/* Go on reading at absolute stream offset `target` (random access, e.g. a
 * mapped-ram file's bitmap and pages).  Call only between units: bytes
 * gathered or given back in the stash are dropped.  Inside the current
 * slice the reader just moves (a whole mapped file is one slice);
 * otherwise, with ms_options.input_seekable, the slice is dropped and the
 * caller is asked for input at `target` (MS_NEXT_SEEK).  Returns 1 when
 * the bytes at `target` are the next to read (the decoder goes on: it may
 * still need input), or -1 with MS_ERR_SEEKABLE_INPUT recorded when the
 * input cannot seek; `why` completes that error's detail ("mapped-ram
 * file: pages live at fixed offsets"). */
int ms_rd_seek(ms_reader *r, uint64_t target, const char *why);

/* The stream has ended where it may: more bytes are trailing data (named
 * after `what`, e.g. "the END record").  Returns MS_NEXT_INPUT or error. */
int ms_rd_expect_end(ms_reader *r, const char *what);

/* Move `k` bytes of the slice into the stash (consumed from the slice);
 * the stash must have room (ms_rd_reserve). */
void ms_rd_stash_input(ms_reader *r, size_t k);

#endif
