/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* Salvage helpers (salvage.h, spec/salvage.md).
 *
 * The slide tests every window that lies whole in the stash or in the
 * slice in place; the few windows that straddle the stash and the slice
 * are tested on a copy; bytes too few for a window wait in the stash (at
 * most 2 * window of them). */
#include "salvage.h"

#include <stdio.h>

int ms_salvage_can(const ms_error_info *e)
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

void ms_salvage_take_error(ms_reader *r, ms_salvage_range *s, uint64_t from,
                           const ms_damage_info *unit, const char *idstr)
{
    memset(&s->lost, 0, sizeof s->lost);
    if (unit)
        s->lost = *unit;
    s->lost.cause = r->err.code;
    s->lost.cause_offset = r->err.offset;
    memcpy(s->detail, r->err.detail, sizeof s->detail);
    snprintf(s->idstr, sizeof s->idstr, "%s", idstr ? idstr : "");
    memset(&r->err, 0, sizeof r->err);
    s->from = from;
    s->to = from;
}

void ms_salvage_event(const ms_salvage_range *s, ms_event *ev)
{
    ev->kind = MS_EV_DAMAGE;
    ev->offset = s->from;
    ev->length = s->to - s->from;
    ev->u.damage = s->lost;
    ev->u.damage.detail = s->detail;
    ev->u.damage.idstr = s->lost.has_image ? s->idstr : NULL;
}

int ms_salvage_finish(ms_reader *r, const ms_salvage_range *s)
{
    return MS_FAIL(r, s->lost.cause, s->from,
                   "damaged to the end of input (%llu bytes): no record "
                   "verifies after it; %s",
                   (unsigned long long)(r->offset - s->from), s->detail);
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

int ms_salvage_slide(ms_reader *r, size_t window, size_t lead,
                     ms_salvage_match_fn match, const void *ctx, uint64_t *seed)
{
    for (;;) {
        const uint8_t *p;
        size_t n = ms_rd_peek(r, SIZE_MAX, &p);
        /* Every window that lies whole in the stash or the slice. */
        if (n >= window) {
            for (size_t i = 0; i + window <= n; i++)
                if (match(ctx, p + i, seed)) {
                    ms_rd_skip(r, i + lead);
                    return 1;
                }
            ms_rd_skip(r, n - window + 1);
            continue;
        }
        size_t avail = ms_rd_avail(r);
        if (n && ms_rd_stashed(r) && avail >= window - 1) {
            /* Windows starting in the stash (n < window bytes) and ending
             * in the slice: test them on a copy, then drop the stash. */
            uint8_t w[2 * MS_SALVAGE_WINDOW_MAX];
            memcpy(w, p, n);
            memcpy(w + n, r->in + r->in_pos, window - 1);
            for (size_t i = 0; i < n; i++)
                if (match(ctx, w + i, seed)) {
                    skip_across(r, i + lead);
                    return 1;
                }
            ms_rd_skip(r, n);
            continue;
        }
        /* Too few bytes for a window: keep them all (under 2 * window). */
        if (ms_rd_reserve(r, 2 * window) < 0)
            return MS_NEXT_ERROR;
        size_t k = ms_rd_stashed(r);
        if (r->stash_pos) {
            memmove(r->stash, r->stash + r->stash_pos, k);
            r->stash_len = k;
            r->stash_pos = 0;
        }
        ms_rd_stash_input(r, avail);
        if (k + avail < window)
            return MS_NEXT_INPUT;
    }
}
