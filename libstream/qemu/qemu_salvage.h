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

/* ---- QEMU main stream (qemu_salvage.c; spec/salvage.md section 5b) ---- */

/* RAM records a RAM candidate must chain (itself included) unless EOS and
 * the RAM section's footer end the chain first. */
#define QEMU_SALVAGE_RAM_RECORDS 3

/* What the main-stream decoder keeps for salvage (q_state.salv). */
typedef struct q_salvage {
    int damaged; /* damage was seen: a START whose END was lost is no
                    longer an error at EOF */
    ms_salvage_range range;
    size_t lookahead; /* bytes a candidate may need to be verified */
    /* RAM records may resume the stream: 1 + the RAM section's index in
     * the section table (0: they may not), and the block CONTINUE
     * records belong to (the current block before the damage, -1) */
    uint32_t ram_sec;
    int ram_block;
    /* a damaged footer: a section header (or EOF) is also taken at this
     * offset without a footer before it; UINT64_MAX: nowhere */
    uint64_t bare_at;
    /* a RAM record's flags failed: a known block name at this offset
     * makes its block the one CONTINUE records belong to; UINT64_MAX */
    uint64_t name_at;
    /* the candidate found */
    int found_ram;     /* 1: a RAM record; 0: a section header or EOF */
    int found_block;   /* RAM: the block of its first page record, -1 */
    size_t found_skip; /* bytes before the record decoding goes on at */
} q_salvage;

#endif
