/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* Outputs, stores, and QEMU's main stream, ram and VFIO records
 * (encode.h; facts: spec/qemu-main.md, spec/qemu-return-path.md,
 * spec/qemu-mapped-ram.md). */
#include "encode.h"

#include <errno.h>
#include <string.h>

/* ---- output ----------------------------------------------------------- */

static int file_write(void *opaque, uint64_t at, const void *p, size_t n)
{
    (void)at; /* a stdio stream appends */
    errno = 0;
    if (fwrite(p, 1, n, (FILE *)opaque) != n)
        return errno ? errno : EIO;
    return 0;
}

void enc_out_file(enc_out *o, FILE *f)
{
    *o = (enc_out){.write = file_write, .opaque = f};
}

void enc_bytes_at(enc_out *o, const void *p, size_t n, uint64_t at)
{
    if (o->err || n == 0)
        return;
    o->err = o->write(o->opaque, at, p, n);
}

void enc_bytes(enc_out *o, const void *p, size_t n)
{
    enc_bytes_at(o, p, n, o->pos);
    o->pos += n;
}

void enc_u8(enc_out *o, uint8_t v)
{
    enc_bytes(o, &v, 1);
}

void enc_be16(enc_out *o, uint16_t v)
{
    uint8_t b[2];
    enc_store_be16(b, v);
    enc_bytes(o, b, sizeof b);
}

void enc_be32(enc_out *o, uint32_t v)
{
    uint8_t b[4];
    enc_store_be32(b, v);
    enc_bytes(o, b, sizeof b);
}

void enc_be64(enc_out *o, uint64_t v)
{
    uint8_t b[8];
    enc_store_be64(b, v);
    enc_bytes(o, b, sizeof b);
}

void enc_counted(enc_out *o, const char *s)
{
    size_t n = strlen(s);
    enc_u8(o, (uint8_t)n);
    enc_bytes(o, s, n);
}

/* ---- stores ----------------------------------------------------------- */

void enc_store_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

void enc_store_be32(uint8_t *p, uint32_t v)
{
    enc_store_be16(p, (uint16_t)(v >> 16));
    enc_store_be16(p + 2, (uint16_t)v);
}

void enc_store_be64(uint8_t *p, uint64_t v)
{
    enc_store_be32(p, (uint32_t)(v >> 32));
    enc_store_be32(p + 4, (uint32_t)v);
}

void enc_store_le(uint8_t *p, uint64_t v, unsigned bytes)
{
    for (unsigned i = 0; i < bytes; i++, v >>= 8)
        p[i] = (uint8_t)v;
}

/* ---- main stream ------------------------------------------------------ */

void enc_q_header(enc_out *o)
{
    enc_be32(o, QEVM_MAGIC);
    enc_be32(o, QEVM_VERSION);
}

void enc_q_config(enc_out *o, const char *machine)
{
    size_t n = strlen(machine);
    enc_u8(o, Q_CONFIGURATION);
    enc_be32(o, (uint32_t)n);
    enc_bytes(o, machine, n);
}

void enc_q_subsection(enc_out *o, const char *name, uint32_t version)
{
    enc_u8(o, Q_SUBSECTION);
    enc_counted(o, name);
    enc_be32(o, version);
}

void enc_q_section(enc_out *o, uint8_t type, uint32_t id, const char *idstr,
                   uint32_t instance_id, uint32_t version_id)
{
    enc_u8(o, type);
    enc_be32(o, id);
    if (type == Q_START || type == Q_FULL) {
        enc_counted(o, idstr);
        enc_be32(o, instance_id);
        enc_be32(o, version_id);
    }
}

void enc_q_footer(enc_out *o, uint32_t id)
{
    enc_u8(o, Q_FOOTER);
    enc_be32(o, id);
}

void enc_q_command(enc_out *o, uint16_t cmd, const void *args, uint16_t len)
{
    enc_u8(o, Q_COMMAND);
    enc_be16(o, cmd);
    enc_be16(o, len);
    enc_bytes(o, args, len);
}

void enc_q_ping(enc_out *o, uint32_t value)
{
    uint8_t b[4];
    enc_store_be32(b, value);
    enc_q_command(o, QCMD_PING, b, sizeof b);
}

void enc_q_eof(enc_out *o)
{
    enc_u8(o, Q_EOF);
}

/* ---- the "ram" section ------------------------------------------------ */

void enc_ram_record(enc_out *o, uint64_t offset_flags, const char *block)
{
    enc_be64(o, offset_flags | (block ? 0 : RAM_CONTINUE));
    if (block)
        enc_counted(o, block);
}

void enc_ram_zero(enc_out *o, uint64_t offset, const char *block)
{
    enc_ram_record(o, offset | MS_RAM_ZERO, block);
    enc_u8(o, 0); /* the fill byte */
}

void enc_ram_page(enc_out *o, uint64_t offset, const char *block,
                  const void *data, size_t page_size)
{
    enc_ram_record(o, offset | MS_RAM_PAGE, block);
    enc_bytes(o, data, page_size);
}

void enc_ram_mem_size(enc_out *o, uint64_t total)
{
    enc_be64(o, total | MS_RAM_MEM_SIZE);
}

void enc_ram_block(enc_out *o, const char *name, uint64_t used_length)
{
    enc_counted(o, name);
    enc_be64(o, used_length);
}

void enc_ram_end(enc_out *o, uint32_t section_id)
{
    enc_be64(o, MS_RAM_EOS);
    enc_q_footer(o, section_id);
}

/* ---- VFIO ------------------------------------------------------------- */

void enc_vfio_store_marker(uint8_t *p, enum vfio_marker m)
{
    enc_store_be64(p, VFIO_MARKER_BASE + (uint64_t)m);
}

void enc_vfio_marker(enc_out *o, enum vfio_marker m)
{
    uint8_t b[VFIO_MARKER_SIZE];
    enc_vfio_store_marker(b, m);
    enc_bytes(o, b, sizeof b);
}

void enc_vfio_data(enc_out *o, const void *data, size_t n)
{
    enc_vfio_marker(o, VFIO_DATA_STATE);
    enc_be64(o, n);
    enc_bytes(o, data, n);
}

/* ---- mapped-ram, return path ------------------------------------------ */

void enc_mapped_ram_header(enc_out *o, uint64_t page_size,
                           uint64_t bitmap_offset, uint64_t pages_offset)
{
    enc_be32(o, MAPPED_RAM_HDR_VERSION);
    enc_be64(o, page_size);
    enc_be64(o, bitmap_offset);
    enc_be64(o, pages_offset);
}

void enc_rp_message(enc_out *o, uint16_t type, uint32_t value, int has_value)
{
    enc_be16(o, type);
    enc_be16(o, has_value ? 4 : 0);
    if (has_value)
        enc_be32(o, value);
}
