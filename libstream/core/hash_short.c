/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* ms_hash64 (common.h): XXH3-64 with a seed, the short inputs compiled in.
 *
 * The runtime-dispatched XXH3 (hash.h) speeds up long inputs only: up to
 * 240 bytes every variant runs the same scalar code, reached through the
 * shared library's PLT and the dispatcher.  Record headers, a unit
 * record's prefix and data hash, and small records are that short and
 * hashed once or more per record, so here that code is inlined from
 * xxhash.h (XXH_INLINE_ALL, its own copy in this file only) and longer
 * inputs go to the dispatched variant (common.c).  Same values either way. */
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "common.h"

/* XXH3's short-input limit (XXH3_MIDSIZE_MAX in xxhash.h) */
#define SHORT_MAX 240

uint64_t ms_hash64(const void *data, size_t len, uint64_t seed)
{
    if (len <= SHORT_MAX)
        return XXH3_64bits_withSeed(data, len, seed);
    return ms_hash64_long(data, len, seed);
}
