/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* migstream salvage: the record test of the resynchronising scan and the
 * notes of open images (spec/salvage.md).
 *
 *   record fails --> mig_salvage_begin (cause kept, error cleared,
 *        |           input back at the failed unit's first byte)
 *        v
 *   RESYNC: slide a 32-byte window [seed 8][header 24] one byte at a time
 *        |  until XXH3-64(header[0..15], seed) == header[16..23]
 *        |  (or with seed = one of two alternative chains)
 *        v
 *   MS_EV_DAMAGE [from, to) --> notes for open images --> RECORD_HEADER
 *                                                        (chain = seed)
 */
#include "mig_salvage.h"

#include "mig_format.h"

/* The bytes a candidate is tested on: the 8 before the record, its
 * header. */
#define WINDOW (8 + MIG_REC_HDR_SIZE)

void mig_salvage_begin(ms_reader *r, mig_salvage *s, uint64_t from,
                       const ms_damage_info *unit, const char *idstr,
                       const uint64_t *alt, size_t nalt)
{
    s->nalt = MS_MIN(nalt, (size_t)MIG_SALVAGE_ALT);
    if (s->nalt)
        memcpy(s->alt, alt, s->nalt * sizeof *alt);
    ms_salvage_take_error(r, &s->range, from, unit, idstr);
    s->damaged = 1;
    s->found = 0;
    s->note = 0;
}

/* The record header at w + 8 verifies against the 8 bytes before it, or
 * against one of the alternative chains: 1, with *seed its chain. */
static int header_verifies(const void *ctx, const uint8_t *w, uint64_t *seed)
{
    const mig_salvage *s = ctx;
    const uint8_t *h = w + 8;
    uint64_t want = ms_le64(h + MIG_REC_OFF_CHECK);
    *seed = ms_le64(w);
    if (ms_hash64(h, MIG_REC_OFF_CHECK, *seed) == want)
        return 1;
    for (size_t i = 0; i < s->nalt; i++)
        if (ms_hash64(h, MIG_REC_OFF_CHECK, s->alt[i]) == want) {
            *seed = s->alt[i];
            return 1;
        }
    return 0;
}

int mig_salvage_scan(ms_reader *r, mig_salvage *s)
{
    int rc = ms_salvage_slide(r, WINDOW, 8, header_verifies, s, &s->seed);
    if (rc == 1) {
        s->range.to = ms_rd_pos(r);
        s->found = 1;
    }
    return rc;
}

void mig_salvage_note(const mig_salvage *s, ms_event *ev,
                      const ms_image_info *img, const char *idstr)
{
    ms_salvage_event(&s->range, ev);
    ms_damage_info *d = &ev->u.damage;
    d->has_image = 1;
    d->device = img->device;
    d->seq = img->seq;
    d->phase = img->phase;
    d->idstr = idstr;
    d->in_packet = img->transport == MS_TRANSPORT_PACKETS;
    d->length_known = 0;
    d->image_offset = img->length;
}
