/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* migstream salvage: the resynchronising scan and the damage events
 * (spec/salvage.md).
 *
 *   record fails --> mig_salvage_begin (cause kept, error cleared,
 *        |           input back at the failed unit's first byte)
 *        v
 *   RESYNC: slide a 32-byte window [seed 8][header 24] one byte at a time
 *        |  until XXH3-64(header[0..15], seed) == header[16..23]
 *        |  (or with seed = one of two alternative chains)
 *        v
 *   MS_EV_DAMAGE [from, to) --> notes for open images --> RECORD_HEADER
 *                                                        (chain = seed)
 *
 * The window may span slices: positions whose 32 bytes are all in one
 * place (the stash, or the slice) are tested in place; the few that
 * straddle the stash and the slice are tested from a copy.  Nothing
 * beyond the stash (at most WINDOW * 2 bytes while scanning) is held. */
#include "mig_salvage.h"

#include <stdio.h>

#include "mig_format.h"

/* The bytes a candidate is tested on: the 8 before the record, its
 * header. */
#define WINDOW (8 + MIG_REC_HDR_SIZE)

int mig_salvage_can(const ms_error_info *e)
{
    switch (e->code) {
    case MS_ERR_OK:
    case MS_ERR_USAGE:
    case MS_ERR_NO_MEMORY:
    case MS_ERR_LIMIT:
    case MS_ERR_SEEKABLE_INPUT:
        return 0;
    default:
        return 1;
    }
}

void mig_salvage_begin(ms_reader *r, mig_salvage *s, uint64_t from,
                       const ms_damage_info *unit, const char *idstr,
                       const uint64_t *alt, size_t nalt)
{
    s->nalt = MS_MIN(nalt, (size_t)MIG_SALVAGE_ALT);
    if (s->nalt)
        memcpy(s->alt, alt, s->nalt * sizeof *alt);
    memset(&s->lost, 0, sizeof s->lost);
    if (unit)
        s->lost = *unit;
    s->lost.cause = r->err.code;
    s->lost.cause_offset = r->err.offset;
    memcpy(s->detail, r->err.detail, sizeof s->detail);
    snprintf(s->idstr, sizeof s->idstr, "%s", idstr ? idstr : "");
    memset(&r->err, 0, sizeof r->err);
    s->damaged = 1;
    s->found = 0;
    s->note = 0;
    s->from = from;
}

/* The record header at w + 8 verifies against the 8 bytes before it, or
 * against one of the alternative chains: 1, with *seed its chain. */
static int header_verifies(const mig_salvage *s, const uint8_t *w,
                           uint64_t *seed)
{
    const uint8_t *h = w + 8;
    uint64_t want = ms_le64(h + MIG_REC_OFF_CHECK);
    *seed = ms_le64(w);
    if (ms_hash64(h, MIG_REC_OFF_CHECK, *seed) == want)
        return 1;
    for (size_t i = 0; i < s->nalt; i++)
        if (ms_hash64(h, MIG_REC_OFF_CHECK, s->alt[i]) == want) {
            *seed = s->alt[i];
            return 1;
        }
    return 0;
}

/* Consume `n` bytes that may run from the stash into the slice. */
static void skip_across(ms_reader *r, size_t n)
{
    size_t k = ms_rd_stashed(r);
    if (k) {
        size_t m = MS_MIN(n, k);
        ms_rd_skip(r, m);
        n -= m;
    }
    if (n)
        ms_rd_skip(r, n);
}

/* A candidate at window offset `i`: the record starts 8 bytes on. */
static int found_at(ms_reader *r, mig_salvage *s, size_t i, uint64_t seed)
{
    s->seed = seed;
    skip_across(r, i + 8);
    s->to = ms_rd_pos(r);
    s->found = 1;
    return 1;
}

int mig_salvage_scan(ms_reader *r, mig_salvage *s)
{
    uint64_t seed;
    for (;;) {
        const uint8_t *p;
        size_t n = ms_rd_peek(r, SIZE_MAX, &p);
        /* Every window that lies whole in the stash or the slice. */
        if (n >= WINDOW) {
            for (size_t i = 0; i + WINDOW <= n; i++)
                if (header_verifies(s, p + i, &seed))
                    return found_at(r, s, i, seed);
            ms_rd_skip(r, n - WINDOW + 1);
            continue;
        }
        size_t avail = ms_rd_avail(r);
        if (n && ms_rd_stashed(r) && avail >= WINDOW - 1) {
            /* Windows starting in the stash (n < WINDOW bytes) and ending
             * in the slice: test them on a copy, then drop the stash. */
            uint8_t w[2 * WINDOW];
            memcpy(w, p, n);
            memcpy(w + n, r->in + r->in_pos, WINDOW - 1);
            for (size_t i = 0; i < n; i++)
                if (header_verifies(s, w + i, &seed))
                    return found_at(r, s, i, seed);
            ms_rd_skip(r, n);
            continue;
        }
        /* Too few bytes for a window: keep them all (under 2 * WINDOW). */
        if (ms_rd_reserve(r, 2 * WINDOW) < 0)
            return MS_NEXT_ERROR;
        size_t k = ms_rd_stashed(r);
        if (r->stash_pos) {
            memmove(r->stash, r->stash + r->stash_pos, k);
            r->stash_len = k;
            r->stash_pos = 0;
        }
        ms_rd_stash_input(r, avail);
        if (k + avail < WINDOW)
            return MS_NEXT_INPUT;
    }
}
void mig_salvage_event(mig_salvage *s, ms_event *ev)
{
    ev->kind = MS_EV_DAMAGE;
    ev->offset = s->from;
    ev->length = s->to - s->from;
    ev->u.damage = s->lost;
    ev->u.damage.detail = s->detail;
    ev->u.damage.idstr = s->lost.has_image ? s->idstr : NULL;
}

void mig_salvage_note(mig_salvage *s, ms_event *ev, const ms_image_info *img,
                      const char *idstr)
{
    mig_salvage_event(s, ev);
    ms_damage_info *d = &ev->u.damage;
    d->has_image = 1;
    d->device = img->device;
    d->seq = img->seq;
    d->phase = img->phase;
    d->idstr = idstr;
    d->in_packet = img->transport == MS_TRANSPORT_PACKETS;
    d->length_known = 0;
    d->image_offset = img->length;
}

int mig_salvage_finish(ms_reader *r, const mig_salvage *s)
{
    return MS_FAIL(r, s->lost.cause, s->from,
                   "damaged to the end of input (%llu bytes): no record "
                   "verifies after it; %s",
                   (unsigned long long)(r->offset - s->from), s->detail);
}
