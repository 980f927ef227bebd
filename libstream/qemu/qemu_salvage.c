/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* QEMU salvage: the unit tests of the resynchronising scans
 * (spec/salvage.md, section 3).  A multifd packet header carries no check
 * value: a window passes on its fixed fields (8 bytes) and its flags, so a
 * page whose bytes happen to hold them is taken for a header (section 3
 * gives the odds). */
#include "qemu_salvage.h"

#include "qemu_wire.h"

int qemu_multifd_header_plausible(const void *ctx, const uint8_t *w,
                                  uint64_t *seed)
{
    (void)ctx;
    *seed = 0;
    if (ms_be32(w) != MULTIFD_MAGIC || ms_be32(w + 4) != MULTIFD_VERSION)
        return 0;
    uint32_t flags = ms_be32(w + 8);
    uint32_t comp = flags & MULTIFD_FLAG_COMPRESSION;
    if ((flags & ~MULTIFD_FLAGS_KNOWN) || (comp & (comp - 1)))
        return 0;
    return !(flags & MULTIFD_FLAG_DEVICE_STATE) ||
           !(flags & (MULTIFD_FLAG_SYNC | MULTIFD_FLAG_COMPRESSION));
}
