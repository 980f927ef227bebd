/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* QEMU's VFIO migration markers (hw/vfio/migration.c): be64 values that
 * frame a VFIO device's state in the main stream's sections and in the
 * config buffer of multifd device-state packets.  Their one home: the
 * numbers are the public ms_vfio_marker values (migstream.h). */
#ifndef MS_VFIO_WIRE_H
#define MS_VFIO_WIRE_H

#include "migstream.h"

#define VFIO_MARKER_BASE MS_VFIO_MARKER_BASE
#define VFIO_MARKER_SIZE 8 /* bytes of one marker on the wire */
enum vfio_marker {
    VFIO_END_OF_STATE = MS_VFIO_END_OF_STATE,
    VFIO_CONFIG_STATE = MS_VFIO_DEV_CONFIG_STATE,
    VFIO_SETUP_STATE = MS_VFIO_DEV_SETUP_STATE,
    VFIO_DATA_STATE = MS_VFIO_DEV_DATA_STATE,
    VFIO_INIT_DATA_SENT = MS_VFIO_DEV_INIT_DATA_SENT,
    VFIO_CONFIG_LOAD_READY = MS_VFIO_DEV_CONFIG_LOAD_READY
};

#endif
