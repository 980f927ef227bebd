/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* XXH3 for the library: include this instead of <xxhash.h>.
 *
 * Debian's libxxhash exports runtime-dispatched XXH3 variants (SSE2, AVX2
 * or AVX-512, chosen once from the CPU at first use) next to the portable
 * ones.  Where the build found them (CMake: MS_HAVE_XXH_DISPATCH),
 * xxh_x86dispatch.h turns XXH3_64bits / XXH3_64bits_update (and the 128-bit
 * ones) into those variants, so every hash the library computes runs at the
 * machine's best speed without code of ours choosing an instruction set.
 * The values are the same: only the speed differs. */
#ifndef MS_HASH_H
#define MS_HASH_H

#include <xxhash.h>
#if defined(MS_HAVE_XXH_DISPATCH) && MS_HAVE_XXH_DISPATCH
#include <xxh_x86dispatch.h>
#endif

#endif
