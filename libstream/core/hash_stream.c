/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* XXH3-64 streaming (common.h: ms_hash_state).
 *
 * The state is XXH3's own, compiled in from xxhash.h (XXH_INLINE_ALL): its
 * size and layout are those of the header this library was built with, so
 * it can come from the caller's allocator.  Sizing libxxhash's state
 * through XXH_STATIC_LINKING_ONLY while linking the shared libxxhash, whose
 * state may differ in another version, is what xxhash.h says never to do.
 * The one-shot hashes stay with the shared library's runtime-dispatched
 * variants (common.c, hash_short.c): they hold no state.
 *
 * Speed: compiled for the baseline instruction set this code runs the
 * SSE2 variant; long updates go to an AVX2 build of the same code
 * (hash_stream_avx2.c) when the CPU has AVX2, as libxxhash's dispatcher
 * would choose.  Both compute the same values on the same state. */
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "common.h"

#include <string.h>

struct ms_hash_state {
    XXH3_state_t xxh; /* first: hash_stream_avx2.c reads it as XXH3_state_t */
};

/* Below this many bytes an update does not reach the vector loop. */
#define AVX2_MIN 1024

#define STATE_ALIGN 64 /* XXH3_state_t's accumulators; malloc gives 16 */

ms_hash_state *ms_hash_state_new(const ms_allocator *a)
{
    uint8_t *raw = ms_alloc(a, sizeof(ms_hash_state) + STATE_ALIGN);
    if (!raw)
        return NULL;
    /* keep the original pointer's distance in the byte before the state */
    size_t pad = STATE_ALIGN - ((uintptr_t)raw % STATE_ALIGN);
    uint8_t *aligned = raw + pad;
    aligned[-1] = (uint8_t)pad;
    /* Zeroed as XXH3_createState would leave it: a seeded reset compares
     * the stored seed and would otherwise skip deriving its secret. */
    memset(aligned, 0, sizeof(ms_hash_state));
    return (ms_hash_state *)(void *)aligned;
}

void ms_hash_state_free(const ms_allocator *a, ms_hash_state *s)
{
    if (!s)
        return;
    uint8_t *aligned = (uint8_t *)s;
    ms_free(a, aligned - aligned[-1]);
}

void ms_hash_reset(ms_hash_state *s, uint64_t seed)
{
    XXH3_64bits_reset_withSeed(&s->xxh, seed); /* seed 0: the plain reset */
}

void ms_hash_update(ms_hash_state *s, const void *data, size_t len)
{
#if defined(MS_HASH_AVX2) && MS_HASH_AVX2
    if (len >= AVX2_MIN && __builtin_cpu_supports("avx2")) {
        ms_hash_update_avx2(s, data, len);
        return;
    }
#endif
    XXH3_64bits_update(&s->xxh, data, len);
}

void ms_hash_update_le64(ms_hash_state *s, uint64_t v)
{
    uint8_t le[8];
    ms_put_le64(le, v);
    XXH3_64bits_update(&s->xxh, le, sizeof le);
}

uint64_t ms_hash_digest(const ms_hash_state *s)
{
    return XXH3_64bits_digest(&s->xxh);
}
