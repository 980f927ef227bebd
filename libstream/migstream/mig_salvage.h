/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* migstream salvage (ms_options.salvage, spec/salvage.md): after damage,
 * find the next record whose header check verifies against the 8 bytes
 * before it, and say what was lost.  mig_read.c calls in at its failure
 * points (mig_salvage_op) and runs the scan as its RESYNC stage; the slide
 * and the damage event are core/salvage.c's. */
#ifndef MS_MIG_SALVAGE_H
#define MS_MIG_SALVAGE_H

#include "salvage.h"

#define MIG_SALVAGE_ALT 2

typedef struct mig_salvage {
    int damaged; /* damage was seen: END totals, images still open at
                    END, image sequence gaps and the checks of damaged
                    images are no longer errors */
    int found;   /* the scan found the record decoding goes on at */
    size_t note; /* next device whose open image gets a damage note */
    ms_salvage_range range;
    uint64_t known_end; /* the failed record's end (its header verified),
                           else 0 */
    uint64_t seed;      /* the record found's chain */
    /* Chains a record may also verify against (see mig_salvage_begin). */
    uint64_t alt[MIG_SALVAGE_ALT];
    size_t nalt;
} mig_salvage;

/* The reader failed in the record starting at `from`: keep its error as
 * the cause (and clear it), with `unit` (may be NULL) the unit whose bytes
 * are known lost and `idstr` its device; the scan starts at the input's
 * current position.  Besides the 8 bytes before it, a record is also
 * taken when its header verifies against one of `alt` (nalt <=
 * MIG_SALVAGE_ALT): the chain before the failed record (bytes inserted
 * before a record), and the payload check computed over the failed
 * record's payload (its stored check damaged). */
void mig_salvage_begin(ms_reader *r, mig_salvage *s, uint64_t from,
                       const ms_damage_info *unit, const char *idstr,
                       const uint64_t *alt, size_t nalt);

/* The RESYNC stage's scan: 1 when the next verified record was found (the
 * input is at its first byte, s->seed its chain), MS_NEXT_INPUT, or
 * MS_NEXT_ERROR. */
int mig_salvage_scan(ms_reader *r, mig_salvage *s);

/* One more MS_EV_DAMAGE for an image open across the range: an unknown
 * number of its bytes may have been lost after those received. */
void mig_salvage_note(const mig_salvage *s, ms_event *ev,
                      const ms_image_info *img, const char *idstr);

#endif
