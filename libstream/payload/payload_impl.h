/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* VFIO driver payload decoders: one framing per driver behind the generic
 * reader (format MS_FORMAT_PAYLOAD).  payload.c picks one from
 * ms_options.payload_kind or by detection; each driver file implements
 * its framing ops.  spec/payloads.md describes them. */
#ifndef MS_PAYLOAD_IMPL_H
#define MS_PAYLOAD_IMPL_H

#include "kit.h"

/* payload.c: choose and initialise the driver framing (called by
 * reader.c's format selection).  Returns 1 when chosen, 0 when more bytes
 * are needed to detect, -1 on error (recorded). */
int ms_payload_select(ms_reader *r);

/* The phase of the byte at `offset` of the payload, from what the carrier
 * said (ms_reader_set_phase) or payload_final_offset; NONE if unknown. */
ms_phase ms_payload_phase_at(const ms_reader *r, uint64_t offset);

/* Per driver: framing ops and init (sets r->framing). */
extern const ms_framing_ops ms_swhdr_ops; /* mlx5 and virtio (payload_swhdr.c) */
int ms_swhdr_init(ms_reader *r, ms_payload_kind kind);
extern const ms_framing_ops ms_hisi_ops;  /* payload_hisi.c */
int ms_hisi_init(ms_reader *r);
extern const ms_framing_ops ms_qat_ops;   /* payload_qat.c */
int ms_qat_init(ms_reader *r);
extern const ms_framing_ops ms_xe_ops;    /* payload_xe.c */
int ms_xe_init(ms_reader *r);
extern const ms_framing_ops ms_pds_ops;   /* pds and raw: lengths only (payload.c) */
int ms_pds_init(ms_reader *r, ms_payload_kind kind);

#endif
