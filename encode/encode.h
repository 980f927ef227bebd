/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* migstream_encode: the project's one writer of QEMU's wire formats, for
 * the tools (synth, bench); internal, neither installed nor public.
 * Records are written over the library's wire headers (qemu_wire.h,
 * vfio_wire.h), so the bytes a tool writes and the facts the decoders
 * check share one definition.  Tests keep independent encoders of their
 * own (tests/test_util.c) on purpose: they check the decoders against a
 * second reading of the spec.
 *
 *   enc_out        where bytes go (a callback; the position it tracks is
 *                  passed along, for files written at fixed offsets), with
 *                  a sticky errno: after the first failure nothing is
 *                  written and the caller checks `err` once at the end
 *   enc_store_*    big-endian stores into a buffer (their one home for
 *                  the tools)
 *   enc_q_*        main stream: header, configuration, sections, footers,
 *                  commands, EOF
 *   enc_ram_*      the "ram" section's records
 *   enc_vfio_*     VFIO markers and device data
 *   enc_mfd_*      multifd packets (built in a buffer: callers add the
 *                  payload and decide which channel they go to)
 *   enc_mapped_ram_header, enc_rp_message */
#ifndef MS_ENCODE_H
#define MS_ENCODE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "qemu_wire.h"
#include "vfio_wire.h"

/* ---- output ----------------------------------------------------------- */
/* Write n bytes at stream position `at`; returns 0 or an errno value. */
typedef int (*enc_write_fn)(void *opaque, uint64_t at, const void *p, size_t n);

typedef struct enc_out {
    enc_write_fn write;
    void *opaque;
    uint64_t pos; /* where the next byte goes */
    int err;      /* errno of the first failed write; 0 while all went well */
} enc_out;

/* An output appending to a stdio stream (positions are not used). */
void enc_out_file(enc_out *o, FILE *f);

void enc_bytes(enc_out *o, const void *p, size_t n);
/* n bytes at position `at`, the stream position unchanged (files whose
 * pages and bitmaps live at fixed offsets). */
void enc_bytes_at(enc_out *o, const void *p, size_t n, uint64_t at);
void enc_u8(enc_out *o, uint8_t v);
void enc_be16(enc_out *o, uint16_t v);
void enc_be32(enc_out *o, uint32_t v);
void enc_be64(enc_out *o, uint64_t v);
/* A counted string: u8 length, then the bytes (at most 255). */
void enc_counted(enc_out *o, const char *s);

void enc_store_be16(uint8_t *p, uint16_t v);
void enc_store_be32(uint8_t *p, uint32_t v);
void enc_store_be64(uint8_t *p, uint64_t v);
/* Little-endian, `bytes` (1..8) of them: the VFIO drivers' own records. */
void enc_store_le(uint8_t *p, uint64_t v, unsigned bytes);

/* ---- main stream ------------------------------------------------------ */
/* "QEVM", version 3. */
void enc_q_header(enc_out *o);
/* The CONFIGURATION record's start: type, be32 length, machine name.
 * Subsections (enc_q_subsection) may follow. */
void enc_q_config(enc_out *o, const char *machine);
/* A subsection's start: 0x05, counted name, be32 version; its fields
 * follow. */
void enc_q_subsection(enc_out *o, const char *name, uint32_t version);
/* A section header: type and be32 id; START and FULL (Q_START, Q_FULL)
 * add the counted idstr, be32 instance and version. */
void enc_q_section(enc_out *o, uint8_t type, uint32_t id, const char *idstr,
                   uint32_t instance_id, uint32_t version_id);
void enc_q_footer(enc_out *o, uint32_t id);
/* QEMU_VM_COMMAND: be16 cmd (enum q_cmd), be16 len, the arguments. */
void enc_q_command(enc_out *o, uint16_t cmd, const void *args, uint16_t len);
void enc_q_ping(enc_out *o, uint32_t value);
void enc_q_eof(enc_out *o);

/* ---- the "ram" section ------------------------------------------------ */
/* A record's be64 (offset | flags), with the counted block name after it
 * when `block` is given, else with RAM_CONTINUE set. */
void enc_ram_record(enc_out *o, uint64_t offset_flags, const char *block);
/* A ZERO page record (fill byte 0) and a PAGE record with its bytes. */
void enc_ram_zero(enc_out *o, uint64_t offset, const char *block);
void enc_ram_page(enc_out *o, uint64_t offset, const char *block,
                  const void *data, size_t page_size);
/* START's block list: MEM_SIZE with the total, then enc_ram_block each. */
void enc_ram_mem_size(enc_out *o, uint64_t total);
void enc_ram_block(enc_out *o, const char *name, uint64_t used_length);
/* EOS and the footer, as every ram section ends. */
void enc_ram_end(enc_out *o, uint32_t section_id);

/* ---- VFIO ------------------------------------------------------------- */
void enc_vfio_marker(enc_out *o, enum vfio_marker m);
void enc_vfio_store_marker(uint8_t *p, enum vfio_marker m);
/* DEV_DATA_STATE, be64 size, the bytes. */
void enc_vfio_data(enc_out *o, const void *data, size_t n);

/* ---- multifd ---------------------------------------------------------- */
/* The init packet (MULTIFD_INIT_SIZE bytes); uuid may be NULL (zeros). */
void enc_mfd_init(uint8_t *p, const uint8_t *uuid, uint8_t channel_id);

typedef struct enc_mfd_ram {
    uint32_t flags;       /* MULTIFD_FLAG_SYNC, compression method bits */
    uint32_t pages_alloc; /* as announced */
    uint32_t normal, zero;
    uint32_t payload_len; /* next_packet_size */
    uint64_t packet_num;
    const char *block; /* NULL: none (SYNC packets) */
    const uint64_t *normal_off, *zero_off;
} enc_mfd_ram;
/* Bytes of a RAM packet header with `slots` offset slots. */
size_t enc_mfd_ram_size(uint32_t slots);
/* A RAM packet header with `slots` offset slots (zeroed past the pages
 * given); returns its size. */
size_t enc_mfd_ram_header(uint8_t *p, uint32_t slots, const enc_mfd_ram *r);

/* A device-state packet's header and VFIO buffer header
 * (MULTIFD_DEV_HDR + VFIO_BUFFER_HDR bytes) for `data_len` bytes of
 * device data; returns the headers' size. */
size_t enc_mfd_device_header(uint8_t *p, const char *idstr,
                             uint32_t instance_id, uint32_t idx, int config,
                             size_t data_len);

/* ---- mapped-ram, return path ------------------------------------------ */
/* A block's MappedRamHeader (MAPPED_RAM_HDR_BYTES). */
void enc_mapped_ram_header(enc_out *o, uint64_t page_size,
                           uint64_t bitmap_offset, uint64_t pages_offset);
/* A return-path message: be16 type, be16 len, then be32 value (len 4)
 * when has_value. */
void enc_rp_message(enc_out *o, uint16_t type, uint32_t value, int has_value);

#endif
