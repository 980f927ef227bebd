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
    struct vms_desc *vmdesc;   /* QEMU JSON trailer given by the caller */
    int vmdesc_borrowed;       /* ... taken from another stream: what it
                                  lacks is walked blind, not an error */
    void *framing;             /* the framing decoder's own state */

    const uint8_t *in; /* current input slice */
    size_t in_len, in_pos;
    uint64_t offset;   /* absolute offset of in[in_pos] */

    /* Bytes taken from the input but not yet consumed by the decoder:
     * [stash_pos, stash_len).  A unit split across slices is gathered here
     * (never payload data, only headers and small records, so its size is
     * bounded by limits), and bytes given back with ms_rd_untake wait here
     * to be read again. */
    uint8_t *stash;
    size_t stash_len, stash_pos, stash_cap;
    /* what ms_rd_untake must restore */
    size_t untake_n, untake_len, untake_pos;
    int untake_in_place;
    int finished;
    /* MS_FORMAT_PAYLOAD: the carrier's phase for bytes from
     * phase_from on (ms_reader_set_phase) */
    ms_phase phase;
    uint64_t phase_from;
    int phase_set;
    int header_sent; /* MS_FORMAT_PAYLOAD: the synthetic header went out */
    /* Seekable input: the decoder wants bytes from seek_target on, which
     * the current slice does not hold (ms_rd_seek); the public next turns
     * its MS_NEXT_INPUT into MS_NEXT_SEEK until ms_reader_input_at. */
    int seek_pending;
    uint64_t seek_target;
};

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
#define MS_TAKE_OR_RETURN(r, n, p)                                           \
    do {                                                                     \
        int t_ = ms_rd_take_reserved((r), (n), (p));                         \
        if (t_ <= 0)                                                         \
            return t_ < 0 ? MS_NEXT_ERROR : MS_NEXT_INPUT;                   \
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

#define MS_FAIL(r, code, off, ...) ms_fail(&(r)->err, (code), (off), __VA_ARGS__)
/* MS_ERR_LIMIT naming the limit (MS_LIMIT_..., or MS_LIMIT_NONE for a
 * fixed one no option raises), so tools can name its option. */
#define MS_FAIL_LIMIT(r, limit, off, ...)                                     \
    MS_FAIL_LIMIT_E(&(r)->err, (limit), (off), __VA_ARGS__)

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

/* Stage functions of a framing return MS_NEXT_* or MS_GO_ON: the stage
 * changed or made progress without an event; run the loop again. */
#define MS_GO_ON (-2)

/* The stream has ended where it may: more bytes are trailing data (named
 * after `what`, e.g. "the END record").  Returns MS_NEXT_INPUT or error. */
int ms_rd_expect_end(ms_reader *r, const char *what);

extern const ms_framing_ops ms_mig_ops;
int ms_mig_init(ms_reader *r);
extern const ms_framing_ops ms_qemu_main_ops, ms_libvirt_ops;
int ms_qemu_main_init(ms_reader *r);
int ms_libvirt_init(ms_reader *r);
extern const ms_framing_ops ms_qemu_multifd_ops;
int ms_qemu_multifd_init(ms_reader *r);
extern const ms_framing_ops ms_qemu_preempt_ops;
int ms_qemu_preempt_init(ms_reader *r);
extern const ms_framing_ops ms_qemu_cpr_ops;
int ms_qemu_cpr_init(ms_reader *r);
extern const ms_framing_ops ms_qemu_rp_ops;
int ms_qemu_rp_init(ms_reader *r);

#endif
