/* The generic reader shared by every framing: input slice bookkeeping and
 * the "parse in place or stash the fragment" pattern (lz4frame's paired
 * stages).  Framing decoders (mig_read.c, later qemu_*.c) build on it. */
#ifndef MS_READER_IMPL_H
#define MS_READER_IMPL_H

#include "common.h"

typedef struct ms_framing_ops {
    ms_format format;
    /* Produce the next event: MS_NEXT_EVENT / MS_NEXT_INPUT / MS_NEXT_ERROR */
    int (*next)(ms_reader *r, ms_event *ev);
    /* Input is over: 0 when the stream ended where it may end, else -1. */
    int (*finish)(ms_reader *r);
    void (*destroy)(ms_reader *r);
} ms_framing_ops;

struct ms_reader {
    ms_options opt;
    ms_error_info err;
    const ms_framing_ops *ops; /* NULL until the format is known */
    void *framing;             /* the framing decoder's own state */

    const uint8_t *in; /* current input slice */
    size_t in_len, in_pos;
    uint64_t offset;   /* absolute offset of in[in_pos] */

    /* Fragment of a unit split across slices; never holds payload data,
     * only headers and small records, so its size is bounded by limits. */
    uint8_t *stash;
    size_t stash_len, stash_cap;
    int finished;
};

/* Bytes of the current slice not yet consumed. */
static inline size_t ms_rd_avail(const ms_reader *r)
{
    return r->in_len - r->in_pos;
}

/* Make `n` contiguous bytes available at *out: in place when the slice
 * holds them all (zero copy), else gathered in the stash.  Returns 1 with
 * the bytes consumed, or 0 after stashing what there was (more input
 * needed).  *out stays valid until the next ms_rd_take.  `n` must not
 * exceed the capacity reserved with ms_rd_reserve. */
int ms_rd_take(ms_reader *r, size_t n, const uint8_t **out);

/* Up to `max` bytes of the slice in place, without consuming them. */
static inline size_t ms_rd_peek(const ms_reader *r, size_t max,
                                const uint8_t **out)
{
    *out = r->in + r->in_pos;
    return MS_MIN(max, ms_rd_avail(r));
}

static inline void ms_rd_skip(ms_reader *r, size_t n)
{
    r->in_pos += n;
    r->offset += n;
}

/* Ensure the stash can hold a unit of `n` bytes (checked against limits by
 * the caller before this is called). Returns 0 or -1 (error recorded). */
int ms_rd_reserve(ms_reader *r, size_t n);

/* Offset of the first byte of the unit being gathered. */
static inline uint64_t ms_rd_unit_offset(const ms_reader *r)
{
    return r->offset - r->stash_len;
}

#define MS_FAIL(r, code, off, ...) ms_fail(&(r)->err, (code), (off), __VA_ARGS__)

extern const ms_framing_ops ms_mig_ops;
int ms_mig_init(ms_reader *r);

#endif
