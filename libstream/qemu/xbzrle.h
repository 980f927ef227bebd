/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* XBZRLE deltas inside the library (xbzrle.c; the public ms_xbzrle_check
 * and ms_xbzrle_apply are in migstream.h). */
#ifndef MS_XBZRLE_H
#define MS_XBZRLE_H

#include "common.h"

/* The rule on a delta's length alone, which the RAM decoder checks at the
 * record's be16 length before gathering the delta (so it never holds more
 * than a page): NULL, or why `n` bytes cannot be a delta for a page of
 * `page_size` bytes.  ms_xbzrle_check applies it first. */
const char *ms_xbzrle_length_rule(size_t n, size_t page_size);

#endif
