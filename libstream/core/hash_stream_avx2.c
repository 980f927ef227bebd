/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* ms_hash_update's AVX2 build (hash_stream.c): xxhash.h compiled in again
 * with -mavx2 (CMake sets it for this file on x86-64 only), so XXH3 picks
 * its AVX2 accumulate loop.  Called only when the CPU has AVX2. */
#include "common.h"

#if defined(MS_HASH_AVX2) && MS_HASH_AVX2
#define XXH_INLINE_ALL
#include <xxhash.h>

void ms_hash_update_avx2(ms_hash_state *s, const void *data, size_t len)
{
    /* an ms_hash_state starts with its XXH3_state_t (hash_stream.c) */
    XXH3_64bits_update((XXH3_state_t *)(void *)s, data, len);
}
#else
typedef int ms_hash_stream_avx2_unused; /* C11: no empty translation unit */
#endif
