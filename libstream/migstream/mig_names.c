/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* Names of VFIO device migration states (Linux's enum
 * vfio_device_mig_state), as STATE_CHANGE records and tools show them. */
#include "migstream.h"

const char *ms_vfio_state_name(uint32_t state)
{
    static const char *const names[] = {
        [MS_VFIO_STATE_ERROR] = "ERROR",
        [MS_VFIO_STATE_STOP] = "STOP",
        [MS_VFIO_STATE_RUNNING] = "RUNNING",
        [MS_VFIO_STATE_STOP_COPY] = "STOP_COPY",
        [MS_VFIO_STATE_RESUMING] = "RESUMING",
        [MS_VFIO_STATE_RUNNING_P2P] = "RUNNING_P2P",
        [MS_VFIO_STATE_PRE_COPY] = "PRE_COPY",
        [MS_VFIO_STATE_PRE_COPY_P2P] = "PRE_COPY_P2P"};
    return state < sizeof names / sizeof names[0] ? names[state] : "?";
}
