/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* QEMU salvage (spec/salvage.md): what a resynchronising scan takes for
 * the start of a unit in a QEMU stream.  The slide itself is
 * core/salvage.c's. */
#ifndef MS_QEMU_SALVAGE_H
#define MS_QEMU_SALVAGE_H

#include "salvage.h"

/* Multifd: the window of QEMU_MULTIFD_RESYNC_WINDOW bytes at w is a
 * plausible packet header: magic, version 1, only known flags, at most
 * one compression method, no SYNC or compression on a device-state
 * packet.  (An ms_salvage_match_fn; ctx and seed unused.) */
#define QEMU_MULTIFD_RESYNC_WINDOW 12
int qemu_multifd_header_plausible(const void *ctx, const uint8_t *w,
                                  uint64_t *seed);

#endif
