/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* QEMU's VFIO migration markers (hw/vfio/migration.c): be64 values that
 * frame a VFIO device's state in the main stream's sections and in the
 * config buffer of multifd device-state packets.  Their one home. */
#ifndef MS_VFIO_WIRE_H
#define MS_VFIO_WIRE_H

#define VFIO_MARKER_BASE 0xffffffffef100000ull
#define VFIO_MARKER_SIZE 8 /* bytes of one marker on the wire */
enum vfio_marker {
    VFIO_END_OF_STATE = 1,
    VFIO_CONFIG_STATE = 2,
    VFIO_SETUP_STATE = 3,
    VFIO_DATA_STATE = 4,
    VFIO_INIT_DATA_SENT = 5,
    VFIO_CONFIG_LOAD_READY = 6
};

#endif
