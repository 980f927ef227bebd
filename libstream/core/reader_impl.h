/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* The reader's state and the framing interface it dispatches to
 * (reader.c: creation, format choice, dispatch).  Decoders do not include
 * this file directly: they include kit.h, which adds input slicing
 * (input.h) and the stage runner. */
#ifndef MS_READER_IMPL_H
#define MS_READER_IMPL_H

#include "common.h"

struct ms_stage_table;

typedef struct ms_framing_ops {
    ms_format format;
    /* Set up r->framing (formats the reader picks itself; payload drivers
     * are set up by payload.c). 0 or -1 (error recorded). */
    int (*init)(ms_reader *r);
    /* Produce the next event: MS_NEXT_EVENT / MS_NEXT_INPUT / MS_NEXT_ERROR.
     * NULL: the stage runner (kit.h) runs `stages`, the current stage
     * being the int at byte `stage_at` of r->framing. */
    int (*next)(ms_reader *r, ms_event *ev);
    const struct ms_stage_table *stages;
    size_t stage_at;
    /* Input is over: 0 when the stream ended where it may end, else -1. */
    int (*finish)(ms_reader *r);
    void (*destroy)(ms_reader *r);
    /* ms_options.salvage: `next` failed; turn the error into damage and go
     * on (the next event), or MS_NEXT_ERROR when it cannot be salvaged.
     * NULL: no salvage for this framing. */
    int (*salvage)(ms_reader *r, ms_event *ev);
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

#define MS_FAIL(r, code, off, ...) ms_fail(&(r)->err, (code), (off), __VA_ARGS__)
/* MS_ERR_LIMIT naming the limit (MS_LIMIT_..., or MS_LIMIT_NONE for a
 * fixed one no option raises), so tools can name its option. */
#define MS_FAIL_LIMIT(r, limit, off, ...)                                     \
    MS_FAIL_LIMIT_E(&(r)->err, (limit), (off), __VA_ARGS__)

/* The framings the reader picks by format (reader.c). */
extern const ms_framing_ops ms_mig_ops;
extern const ms_framing_ops ms_qemu_main_ops, ms_libvirt_ops;
extern const ms_framing_ops ms_qemu_multifd_ops;
extern const ms_framing_ops ms_qemu_preempt_ops;
extern const ms_framing_ops ms_qemu_cpr_ops;
extern const ms_framing_ops ms_qemu_rp_ops;

#endif
