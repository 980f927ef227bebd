/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* Input slicing and the stash: how decoders take, peek, skip, give back
 * and seek in the caller's slices (input.h). */
#include "input.h"

/* The stash's smallest size: most units gathered are headers. */
#define STASH_MIN 256

int ms_rd_seek(ms_reader *r, uint64_t target, const char *why)
{
    if (r->err.code)
        return -1;
    if (target == ms_rd_pos(r))
        return 1;
    /* Stashed bytes belong to the old position. */
    r->stash_len = r->stash_pos = 0;
    uint64_t base = r->offset - r->in_pos; /* stream offset of in[0] */
    if (r->in && target >= base && target - base <= r->in_len) {
        r->in_pos = (size_t)(target - base);
        r->offset = target;
        return 1;
    }
    if (!r->opt.input_seekable)
        return MS_FAIL(r, MS_ERR_SEEKABLE_INPUT, ms_rd_pos(r),
                       "%s: the stream goes on at offset %llu; give the "
                       "file itself, not a pipe (seekable input)",
                       why, (unsigned long long)target);
    /* The caller hands input at `target` next (MS_NEXT_SEEK). */
    r->in = NULL;
    r->in_len = r->in_pos = 0;
    r->offset = target;
    r->seek_pending = 1;
    r->seek_target = target;
    return 1;
}

int ms_rd_reserve(ms_reader *r, size_t n)
{
    if (n <= r->stash_cap)
        return 0;
    size_t cap = MS_MAX(n, STASH_MIN);
    uint8_t *s = ms_alloc(&r->opt.allocator, cap);
    if (!s)
        return MS_FAIL(r, MS_ERR_NO_MEMORY, r->offset, "stash of %zu bytes",
                       cap);
    if (r->stash_len) /* keeps stash_pos meaningful */
        memcpy(s, r->stash, r->stash_len);
    ms_free(&r->opt.allocator, r->stash);
    r->stash = s;
    r->stash_cap = cap;
    return 0;
}

void ms_rd_stash_input(ms_reader *r, size_t k)
{
    if (k == 0)
        return; /* also: no slice may have been given yet */
    memcpy(r->stash + r->stash_len, r->in + r->in_pos, k);
    r->stash_len += k;
    r->in_pos += k;
    r->offset += k;
}

int ms_rd_take(ms_reader *r, size_t n, const uint8_t **out)
{
    size_t have = ms_rd_stashed(r);
    r->untake_n = n;
    if (n == 0) { /* nothing to take; may come before any input slice */
        *out = (const uint8_t *)"";
        r->untake_in_place = 1;
        return 1;
    }
    if (have == 0 && ms_rd_avail(r) >= n) {
        *out = r->in + r->in_pos;
        r->in_pos += n;
        r->offset += n;
        r->untake_in_place = 1;
        return 1;
    }
    r->untake_in_place = 0;
    if (have >= n) { /* given-back bytes cover it */
        *out = r->stash + r->stash_pos;
        r->untake_len = r->stash_len;
        r->untake_pos = r->stash_pos;
        r->stash_pos += n;
        if (r->stash_pos == r->stash_len)
            r->stash_len = r->stash_pos = 0;
        return 1;
    }
    if (r->stash_pos) {
        memmove(r->stash, r->stash + r->stash_pos, have);
        r->stash_len = have;
        r->stash_pos = 0;
    }
    ms_rd_stash_input(r, MS_MIN(n - have, ms_rd_avail(r)));
    if (r->stash_len < n)
        return 0;
    *out = r->stash;
    r->untake_len = n;
    r->untake_pos = 0;
    r->stash_len = r->stash_pos = 0;
    return 1;
}

int ms_rd_expect_end(ms_reader *r, const char *what)
{
    if (ms_rd_pending(r))
        return MS_FAIL(r, MS_ERR_TRAILING_DATA, ms_rd_pos(r),
                       "%zu bytes after %s", ms_rd_pending(r), what);
    return MS_NEXT_INPUT;
}

int ms_rd_take_reserved(ms_reader *r, size_t n, const uint8_t **out)
{
    if (ms_rd_reserve(r, n) < 0)
        return -1;
    return ms_rd_take(r, n, out);
}

void ms_rd_untake(ms_reader *r)
{
    if (r->untake_in_place) {
        r->in_pos -= r->untake_n;
        r->offset -= r->untake_n;
    } else {
        /* The bytes are still in the stash memory: restore the window. */
        r->stash_len = r->untake_len;
        r->stash_pos = r->untake_pos;
    }
}
