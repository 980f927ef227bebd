/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* QEMU's migration wire constants, their one home: the main stream
 * (spec/qemu-main.md), multifd channels (spec/qemu-multifd.md), mapped-ram
 * files (spec/qemu-mapped-ram.md) and the return path
 * (spec/qemu-return-path.md).  The decoders in this directory and the
 * internal encoder (encode/) both include it; numbers the public header
 * already names (section types, commands, RAM record kinds, return-path
 * types) are defined from those.  VFIO markers: vfio_wire.h. */
#ifndef MS_QEMU_WIRE_H
#define MS_QEMU_WIRE_H

#include "migstream.h"

/* ---- main stream ------------------------------------------------------ */
#define QEVM_MAGIC 0x5145564Du /* "QEVM" */
#define QEVM_VERSION 3

/* Top-level record types (QEMU_VM_*). */
enum q_type {
    Q_EOF = 0x00,
    Q_START = MS_QSEC_START,
    Q_PART = MS_QSEC_PART,
    Q_END = MS_QSEC_END,
    Q_FULL = MS_QSEC_FULL,
    Q_SUBSECTION = 0x05,
    Q_VMDESC = 0x06,
    Q_CONFIGURATION = 0x07,
    Q_COMMAND = 0x08,
    Q_FOOTER = 0x7E
};
#define Q_FOOTER_SIZE 5 /* 0x7E, be32 section id */

/* QEMU_VM_COMMAND: be16 command (ms_qemu_command), be16 argument bytes. */
enum q_cmd {
    QCMD_INVALID = MS_QCMD_INVALID,
    QCMD_OPEN_RETURN_PATH = MS_QCMD_OPEN_RETURN_PATH,
    QCMD_PING = MS_QCMD_PING,
    QCMD_POSTCOPY_ADVISE = MS_QCMD_POSTCOPY_ADVISE,
    QCMD_POSTCOPY_LISTEN = MS_QCMD_POSTCOPY_LISTEN,
    QCMD_POSTCOPY_RUN = MS_QCMD_POSTCOPY_RUN,
    QCMD_POSTCOPY_RAM_DISCARD = MS_QCMD_POSTCOPY_RAM_DISCARD,
    QCMD_PACKAGED = MS_QCMD_PACKAGED,
    QCMD_ENABLE_COLO = MS_QCMD_ENABLE_COLO,
    QCMD_POSTCOPY_RESUME = MS_QCMD_POSTCOPY_RESUME,
    QCMD_RECV_BITMAP = MS_QCMD_RECV_BITMAP,
    QCMD_SWITCHOVER_START = MS_QCMD_SWITCHOVER_START,
    QCMD_COUNT
};
#define QCMD_ADVISE_ARGS 16  /* be64 page-size summary, be64 target page */
#define QCMD_DISCARD_VERSION 0
#define QCMD_DISCARD_RANGE 16 /* be64 start, be64 length */
#define QCMD_DISCARD_MAX_RANGES 12 /* ranges QEMU puts in one DISCARD */

/* The "ram" section (version 4): the record kinds are ms_ram_record; the
 * low bits of each record's be64 hold them. */
#define RAM_SECTION_VERSION 4
#define RAM_CONTINUE 0x20u /* same block as the record before: no name */
#define RAM_KNOWN                                                             \
    (MS_RAM_ZERO | MS_RAM_MEM_SIZE | MS_RAM_PAGE | MS_RAM_EOS | RAM_CONTINUE |  \
     MS_RAM_XBZRLE | MS_RAM_HOOK | MS_RAM_COMPRESS_PAGE | MS_RAM_MULTIFD_FLUSH)
#define RAM_PAGE_KINDS                                                        \
    (MS_RAM_ZERO | MS_RAM_PAGE | MS_RAM_XBZRLE | MS_RAM_COMPRESS_PAGE)

/* ---- mapped-ram files ------------------------------------------------- */
#define MAPPED_RAM_HDR_BYTES 28 /* be32 version, be64 page size, bitmap
                                   offset, pages offset */
#define MAPPED_RAM_HDR_VERSION 1
#define MAPPED_RAM_ALIGN 0x100000u /* MAPPED_RAM_FILE_OFFSET_ALIGNMENT */

/* ---- multifd channels ------------------------------------------------- */
#define MULTIFD_MAGIC 0x11223344u
#define MULTIFD_VERSION 1
#define MULTIFD_INIT_SIZE 64
#define MULTIFD_INIT_OFF_UUID 8 /* 16 bytes */
#define MULTIFD_INIT_OFF_ID 24  /* u8 channel id */
#define MULTIFD_HDR_SIZE 12     /* be32 magic, version, flags */
#define MULTIFD_RAM_FIXED 320   /* header through the block name */
#define MULTIFD_RAM_OFF_NAME 64 /* 256 bytes, NUL padded */
#define MULTIFD_DEV_HDR 276     /* header, idstr[256], instance, size */
#define MULTIFD_PACKET_DATA (512 * 1024) /* page data one packet carries */
#define MULTIFD_FLAG_SYNC 0x01u
#define MULTIFD_FLAG_COMPRESSION 0x3eu
#define MULTIFD_FLAG_DEVICE_STATE 0x40u
#define MULTIFD_FLAGS_KNOWN                                                   \
    (MULTIFD_FLAG_SYNC | MULTIFD_FLAG_COMPRESSION | MULTIFD_FLAG_DEVICE_STATE)
/* compression methods (their flag bits) */
#define MULTIFD_COMP_ZLIB 0x02u
#define MULTIFD_COMP_ZSTD 0x04u
/* the VFIO buffer header opening a device-state packet's data */
#define VFIO_BUFFER_HDR 12 /* be32 version, idx, flags */
#define VFIO_IDX_INVALID 0xffffffffu
#define VFIO_BUFFER_CONFIG 0x1u /* VFIO buffer flags: CONFIG_STATE */

/* ---- return path ------------------------------------------------------ */
#define RP_HDR 4         /* be16 type (ms_rp_type), be16 payload bytes */
#define RP_TYPE_MAX MS_RP_SWITCHOVER_ACK
#define RP_REQ_FIXED 12  /* be64 start, be32 len */
#define RP_NAME_MAX 255  /* a length byte, then the name */
#define RP_BITMAP_END 0x0123456789abcdefull
#define RP_RESUME_ACK_VALUE 1

#endif
