/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* A QEMU main stream against its return path (spec/qemu-return-path.md,
 * "Cross-checks").  The set hands over the events of both in any order;
 * the checks run when every channel is done. */
#ifndef MS_RP_CHECK_H
#define MS_RP_CHECK_H

#include "common.h"

typedef struct rp_check rp_check;

rp_check *rp_check_new(const ms_options *opt);
void rp_check_free(rp_check *c);

/* Errors go to *err (has_channel set to the slot concerned); each returns
 * 0 or -1. */
/* A channel slot carries a return path (one per migration). */
int rp_check_rp_header(rp_check *c, uint32_t slot, ms_error_info *err);
/* An event of the return path / of the QEMU main stream. */
int rp_check_rp_event(rp_check *c, uint32_t slot, const ms_event *ev,
                      ms_error_info *err);
int rp_check_main_event(rp_check *c, uint32_t slot, const ms_event *ev,
                        ms_error_info *err);
/* All channels ended cleanly: check the pair (nothing when either side
 * is missing). */
int rp_check_finish(rp_check *c, ms_error_info *err);

#endif
