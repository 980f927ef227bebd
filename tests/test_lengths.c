/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* Declared lengths up to 2^64-1 are refused before any allocation.
 *
 * For each framing a minimal valid stream is built and one length field
 * read from the wire is set to 2^64-1 (64-bit fields), 2^32-1, and the
 * limit that bounds it plus one (where an ms_options limit applies).  The
 * stream is read in a forked child (tb_peak_rss_kib): it must fail with
 * an error at the expected offset (the field, or the record it belongs
 * to), and neither its peak RSS nor the peak of what it allocated through
 * the reader's allocator (which sees a large allocation never touched)
 * may rise by RSS_BOUND_KIB: a decoder that allocated or reserved the
 * declared length first (or wrapped it to a small one and read on) fails
 * here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "test_util.h"

static int g_fail;

#define RSS_BOUND_KIB (16 * 1024)

/* ---- one case
 * ---------------------------------------------------------------- */

typedef struct len_case {
    const char *name;
    /* builds the stream into b; returns the offset of the length field and
     * sets *err_at to where the error belongs (the field or its record) */
    size_t (*build)(tb_buf *b, uint64_t *err_at);
    int width;      /* 4 or 8 bytes */
    int big_endian; /* QEMU framings */
    ms_format format;
    /* the ms_options limit bounding the field (0: none), its value */
    ms_limit limit;
    uint64_t (*limit_value)(const ms_options *o);
    void (*setup)(ms_options *o); /* NULL: defaults */
    /* lengths up to this are legal and streamed, never allocated: the
     * error is then the input ending (truncated, at its end) */
    uint64_t streamed_max;
} len_case;

typedef struct child_arg {
    const tb_buf *in;
    const len_case *c;
} child_arg;

static ms_error_info read_case(void *p, uint64_t *peak_alloc)
{
    const child_arg *a = p;
    ms_options o;
    ms_options_init(&o);
    o.format = a->c->format;
    if (a->c->setup)
        a->c->setup(&o);
    return tb_verify_counting(a->in->p, a->in->len, &o, peak_alloc);
}

static void put_len(uint8_t *p, uint64_t v, int width, int be)
{
    for (int i = 0; i < width; i++) {
        int shift = be ? 8 * (width - 1 - i) : 8 * i;
        p[i] = (uint8_t)(v >> shift);
    }
}

static void check_value(const len_case *c, uint64_t v, const char *which)
{
    tb_buf b;
    tb_buf_init(&b);
    uint64_t err_at = 0;
    size_t field = c->build(&b, &err_at);
    put_len(b.p + field, v, c->width, c->big_endian);
    child_arg a = {&b, c};
    ms_error_info e;
    memset(&e, 0, sizeof e);
    uint64_t alloc = 0;
    long kib = tb_peak_rss_kib(read_case, &a, &e, &alloc);
    print_message("  %s = %s (%llu): RSS +%ld KiB, allocated %llu KiB, %s "
                  "at %llu: %s\n",
                  c->name, which, (unsigned long long)v, kib,
                  (unsigned long long)alloc >> 10, ms_error_name(e.code),
                  (unsigned long long)e.offset, e.detail);
    SOFT(kib >= 0 && kib < RSS_BOUND_KIB, "%s = %s: peak RSS rose %ld KiB",
         c->name, which, kib);
    SOFT(alloc >> 10 < RSS_BOUND_KIB, "%s = %s: %llu KiB allocated", c->name,
         which, (unsigned long long)alloc >> 10);
    SOFT(e.code != MS_ERR_OK, "%s = %s: accepted", c->name, which);
    if (v <= c->streamed_max) {
        SOFT(e.code == MS_ERR_TRUNCATED, "%s = %s: %s, expected truncated",
             c->name, which, ms_error_name(e.code));
        err_at = b.len;
    } else if (c->limit_value && e.code == MS_ERR_LIMIT) {
        SOFT(e.limit == c->limit, "%s = %s: limit %s", c->name, which,
             ms_limit_name(e.limit) ? ms_limit_name(e.limit) : "none");
    }
    SOFT(e.offset == err_at, "%s = %s: error at %llu, expected %llu", c->name,
         which, (unsigned long long)e.offset, (unsigned long long)err_at);
    tb_buf_free(&b);
}

static void check_case(const len_case *c)
{
    if (c->width == 8)
        check_value(c, UINT64_MAX, "2^64-1");
    check_value(c, UINT32_MAX, "2^32-1");
    if (c->limit_value) {
        ms_options o;
        ms_options_init(&o);
        if (c->setup)
            c->setup(&o);
        uint64_t lim = c->limit_value(&o);
        if (c->width == 8 || lim < UINT32_MAX)
            check_value(c, lim + 1, "limit+1");
    }
}

/* ---- migstream ------------------------------------------------------------
 */

static void no_checks(ms_options *o)
{
    o->verify_checks = 0; /* the record check would stop it first */
}

static uint64_t record_payload_limit(const ms_options *o)
{
    return o->max_record_payload;
}

/* A device record whose le64 payload size is the field. */
static size_t mig_record(tb_buf *b, uint64_t *err_at)
{
    static const uint8_t uuid[16] = {1};
    tb_stream s;
    tb_stream_init(&s);
    tb_header(&s, uuid, 0, 1);
    size_t rec = tb_device(&s, 1, "dev0", 0);
    tb_buf_init(b);
    tb_buf_copy(b, &s.b);
    tb_stream_free(&s);
    *err_at = rec;
    return rec;
}

/* The device record's payload: le32 handle, instance, kind, flags, then
 * le32 idstr_len (payload + 16) and compat_len (payload + 20). */
static size_t mig_device_field(tb_buf *b, uint64_t *err_at, size_t field)
{
    size_t rec = mig_record(b, err_at); /* the error: at the record, whose
                                           size cannot hold the lengths */
    return rec + 24 + field;
}
static size_t mig_idstr_len(tb_buf *b, uint64_t *err_at)
{
    return mig_device_field(b, err_at, 16);
}
static size_t mig_compat_len(tb_buf *b, uint64_t *err_at)
{
    return mig_device_field(b, err_at, 20);
}
static uint64_t name_limit(const ms_options *o)
{
    return o->max_name_length;
}
static uint64_t compat_limit(const ms_options *o)
{
    return o->max_compat_length;
}

/* ---- QEMU main stream ------------------------------------------------------
 */

static uint64_t vmdesc_limit(const ms_options *o)
{
    return o->max_vmdesc_bytes;
}

/* The JSON trailer after EOF: 0x06, be32 length. */
static size_t qemu_vmdesc(tb_buf *b, uint64_t *err_at)
{
    tb_buf_init(b);
    tq_begin(b);
    tq_eof(b);
    size_t at = tq_vmdesc(b, "{}", 2);
    *err_at = at + 1;
    return at + 1;
}

/* CONFIGURATION: 0x07, be32 machine type length. */
static size_t qemu_machine(tb_buf *b, uint64_t *err_at)
{
    tb_buf_init(b);
    tq_header(b);
    size_t at = tq_config_machine(b, "pc-i440fx-7.2");
    tq_eof(b);
    *err_at = at + 1;
    return at + 1;
}

/* PACKAGED: 0x08, be16 cmd, be16 4, be32 package length (current QEMU
 * allows up to UINT32_MAX; read in place, never buffered). */
static size_t qemu_packaged(tb_buf *b, uint64_t *err_at)
{
    tb_buf inner;
    tb_buf_init(&inner);
    tq_eof(&inner);
    tb_buf_init(b);
    tq_begin(b);
    size_t at = tq_cmd_packaged(b, inner.p, (uint32_t)inner.len);
    tq_eof(b);
    tb_buf_free(&inner);
    *err_at = at + 5;
    return at + 5;
}

/* A RAM block list entry: counted name, be64 used_length. */
static size_t qemu_ram_block(tb_buf *b, uint64_t *err_at)
{
    tb_buf_init(b);
    tq_begin(b);
    tq_section_start(b, TQ_START, 1, "ram", 0, 4);
    tq_ram_mem_size(b, 1u << 20);
    size_t at = tq_ram_block_entry(b, "pc.ram", 1u << 20);
    tq_ram_eos(b);
    tq_footer(b, 1);
    tq_eof(b);
    *err_at = at + 1 + strlen("pc.ram");
    return at + 1 + strlen("pc.ram");
}

/* A VFIO device (idstr ".../vfio"): START with SETUP_STATE and
 * END_OF_STATE, then a PART whose DEV_DATA_STATE (be64 marker, be64 size,
 * the bytes) has the size as the field. */
static size_t qemu_vfio_data(tb_buf *b, uint64_t *err_at)
{
    static const uint8_t data[16] = {1};
    tb_buf_init(b);
    tq_begin(b);
    tq_section_start(b, TQ_START, 3, "0000:00:02.0/vfio", 0, 1);
    tq_vfio_marker(b, TQ_VFIO_SETUP_STATE);
    tq_vfio_marker(b, TQ_VFIO_END_OF_STATE);
    tq_footer(b, 3);
    tq_section_part(b, TQ_PART, 3);
    size_t at = tq_vfio_data(b, data, sizeof data);
    tq_vfio_marker(b, TQ_VFIO_END_OF_STATE);
    tq_footer(b, 3);
    tq_section_part(b, TQ_END, 3);
    tq_vfio_marker(b, TQ_VFIO_END_OF_STATE);
    tq_footer(b, 3);
    tq_eof(b);
    *err_at = at + 8;
    return at + 8;
}

/* A dirty-bitmap section (migration/block-dirty-bitmap.c): START of a
 * bitmap (flags 0x10 | names 0x0c, node, bitmap, be32 granularity, u8
 * flags), then BITS (flags 0x40: be64 first sector, be32 sector count,
 * be64 buffer size, the buffer) whose buffer size is the field.  QEMU
 * takes at most 10 KiB: larger is a bad-field error at the field. */
static size_t qemu_dirty_bitmap_buffer(tb_buf *b, uint64_t *err_at)
{
    static const uint8_t bits[8] = {0xff};
    tb_buf_init(b);
    tq_begin(b);
    tq_section_start(b, TQ_START, 4, "dirty-bitmap", 0, 1);
    tb_put_u8(b, 0x10 | 0x0c);
    tq_counted(b, "drive0");
    tq_counted(b, "bitmap0");
    tb_put_be32(b, 65536);
    tb_put_u8(b, 0);
    tb_put_u8(b, 0x40);
    tb_put_be64(b, 0);
    tb_put_be32(b, 128); /* 64 KiB: one granule */
    size_t at = b->len;
    tb_put_be64(b, sizeof bits);
    tb_put(b, bits, sizeof bits);
    tb_put_u8(b, 0x01); /* EOS */
    tq_footer(b, 4);
    tq_section_part(b, TQ_END, 4);
    tb_put_u8(b, 0x01);
    tq_footer(b, 4);
    tq_eof(b);
    *err_at = at;
    return at;
}

/* ---- multifd channel -------------------------------------------------------
 */

static void multifd_start(tb_buf *b)
{
    tb_buf_init(b);
    tm_init(b, NULL, 0);
    tm_ram_empty(b, TM_SYNC, 0, 0, NULL);
}

/* A zstd packet of one page: pages_alloc (12), normal (16),
 * next_packet_size (20) are be32 at those packet offsets. */
static size_t multifd_field(tb_buf *b, uint64_t *err_at, size_t field)
{
    static const uint64_t off[1] = {0};
    static const uint8_t payload[8] = {0};
    multifd_start(b);
    tm_ram p = {.flags = TM_ZSTD,
                .normal = 1,
                .next_packet_size = sizeof payload,
                .packet_num = 1,
                .block = "pc.ram",
                .offsets = off,
                .payload = payload,
                .payload_len = sizeof payload};
    size_t at = tm_ram_ex(b, &p);
    *err_at = at + field;
    return at + field;
}

static size_t multifd_pages_alloc(tb_buf *b, uint64_t *err_at)
{
    return multifd_field(b, err_at, 12);
}
static size_t multifd_normal(tb_buf *b, uint64_t *err_at)
{
    return multifd_field(b, err_at, 16);
}
static size_t multifd_payload(tb_buf *b, uint64_t *err_at)
{
    return multifd_field(b, err_at, 20);
}

/* Device-state packet: be32 payload size after idstr and instance. */
static size_t multifd_device(tb_buf *b, uint64_t *err_at)
{
    static const uint8_t data[16] = {1};
    multifd_start(b);
    size_t at = tm_device(b, "0000:00:02.0/vfio", 0, 0, 0, data, sizeof data);
    *err_at = at + 272;
    return at + 272;
}

/* ---- libvirt --------------------------------------------------------------
 */

/* Header: magic[16], le32 version, le32 data_len (the XML and cookie
 * are streamed, their lengths counted, never buffered). */
static size_t libvirt_data_len(tb_buf *b, uint64_t *err_at)
{
    static const char xml[] = "<domain/>";
    tb_buf_init(b);
    tq_libvirt_header(b, "LibvirtQemudSave", 2, sizeof xml, 1, 0, 0);
    tb_put(b, xml, sizeof xml);
    tq_begin(b);
    tq_eof(b);
    *err_at = 20;
    return 20;
}

/* ---- CPR state -------------------------------------------------------------
 */

/* "QCPR", be32 version 1, then an fd entry: u8 1, be32 name length (with
 * its NUL), name, be32 id, be32 fd; u8 0 ends the list. */
static size_t cpr_namelen(tb_buf *b, uint64_t *err_at)
{
    tb_buf_init(b);
    tb_put(b, "QCPR", 4);
    tb_put_be32(b, 1);
    tb_put_u8(b, 1);
    size_t at = b->len;
    tb_put_be32(b, 4);
    tb_put(b, "tap", 4);
    tb_put_be32(b, 0);
    tb_put_be32(b, 32);
    tb_put_u8(b, 0);
    *err_at = at;
    return at;
}
static uint64_t cpr_name_limit(const ms_options *o)
{
    return (uint64_t)o->max_name_length + 1; /* the NUL is counted */
}

/* ---- driver payloads --------------------------------------------------------
 */

static void mlx5(ms_options *o)
{
    o->payload_kind = MS_PAYLOAD_MLX5;
}

/* An mlx5 record: le64 size (the kernel allows up to 2^32-1; the bytes
 * are streamed), le32 flags, le32 tag, bytes. */
static size_t mlx5_record(tb_buf *b, uint64_t *err_at)
{
    tb_buf_init(b);
    tb_put_le64(b, 8);
    tb_put_le32(b, 0);
    tb_put_le32(b, 0);
    tb_put_zeros(b, 8);
    *err_at = 0;
    return 0;
}

/* Xe (spec/payloads.md "Xe"): packets of a 24-byte header (u8 version,
 * u8 type, u8 tile, u8 gt, le32 flags, le64 resource offset, le64 size)
 * and `size` bytes: the DESCRIPTOR (type 1, KLVs device id and revision),
 * a GGTT packet (type 3), the TRAILER (type 2, size 0).  Packet payloads
 * are streamed (VRAM packets are gigabytes); a size whose packet would end
 * past 2^64 is refused at the field. */
static void xe(ms_options *o)
{
    o->payload_kind = MS_PAYLOAD_XE;
}

static size_t xe_packet_hdr(tb_buf *b, uint8_t type, uint64_t size)
{
    size_t at = b->len;
    tb_put_u8(b, 1);
    tb_put_u8(b, type);
    tb_put_u8(b, 0);
    tb_put_u8(b, 0);
    tb_put_le32(b, 0);
    tb_put_le64(b, 0);
    tb_put_le64(b, size);
    return at;
}

/* Returns the GGTT packet's offset; `*desc` the DESCRIPTOR's. */
static size_t xe_stream(tb_buf *b, size_t *desc)
{
    tb_buf_init(b);
    *desc = xe_packet_hdr(b, 1, 16);
    tb_put_le32(b, 0xF001u << 16 | 1); /* device id KLV */
    tb_put_le32(b, 0x64a0);
    tb_put_le32(b, 0xF002u << 16 | 1); /* revision id KLV */
    tb_put_le32(b, 4);
    size_t ggtt = xe_packet_hdr(b, 3, 64);
    tb_put_zeros(b, 64);
    xe_packet_hdr(b, 2, 0);
    return ggtt;
}

static size_t xe_data_size(tb_buf *b, uint64_t *err_at)
{
    size_t desc;
    size_t at = xe_stream(b, &desc) + 16;
    *err_at = at;
    return at;
}

/* The DESCRIPTOR's size: a multiple of 4 (both values tried are not), its
 * KLVs walked, never buffered whole. */
static size_t xe_descriptor_size(tb_buf *b, uint64_t *err_at)
{
    size_t desc;
    xe_stream(b, &desc);
    *err_at = desc + 16;
    return desc + 16;
}

/* QAT (spec/payloads.md "QAT"): the kernel's 4096-byte buffer, a setup
 * block then a state block, each a 16-byte preamble (le32 magic, le32
 * version, le16 preh_len 16, le16 n_sects, le32 size) and sections of a
 * 16-byte header (8-byte id, le32 size, le32 sub_sects) and the payload.
 * The buffer is fixed; a size beyond it is refused at the field.  Here the
 * setup block CONFIG{gencap, svcmap, extdc}; the rest of the buffer is
 * zeros (the error comes first). */
static void qat(ms_options *o)
{
    o->payload_kind = MS_PAYLOAD_QAT;
}

static void qat_section(tb_buf *b, const char *id, uint32_t size, uint32_t subs)
{
    uint8_t raw[8] = {0};
    memcpy(raw, id, strlen(id));
    tb_put(b, raw, 8);
    tb_put_le32(b, size);
    tb_put_le32(b, subs);
}

static void qat_setup(tb_buf *b)
{
    tb_buf_init(b);
    tb_put_le32(b, 0xADF5CAEAu);
    tb_put_le32(b, 1);
    tb_put_le16(b, 16);
    tb_put_le16(b, 1);
    tb_put_le32(b, 16 + 3 * (16 + 4));
    qat_section(b, "CONFIG", 3 * (16 + 4), 3);
    static const char *const caps[] = {"gencap", "svcmap", "extdc"};
    for (size_t i = 0; i < 3; i++) {
        qat_section(b, caps[i], 4, 0);
        tb_put_le32(b, 0x10u * (uint32_t)(i + 1));
    }
    tb_put_zeros(b, 4096 - b->len);
}

static size_t qat_block_size(tb_buf *b, uint64_t *err_at)
{
    qat_setup(b);
    *err_at = 12;
    return 12;
}

static size_t qat_section_size(tb_buf *b, uint64_t *err_at)
{
    qat_setup(b);
    *err_at = 16 + 8;
    return 16 + 8;
}

/* virtio (spec/payloads.md "virtio"): mlx5-style records (le64
 * record_size, le32 flags, le32 tag 0 DEVICE_DATA) holding device parts
 * (le16 type, u8 flags, u8 0, le64 selector, le32 length, the value).  A
 * record is streamed up to the kernel's 2^32-1; a part's value may not
 * cross its record's end (error at the part's length field). */
static void virtio(ms_options *o)
{
    o->payload_kind = MS_PAYLOAD_VIRTIO;
}

static size_t virtio_record(tb_buf *b, uint64_t *err_at)
{
    tb_buf_init(b);
    tb_put_le64(b, 16 + 1);
    tb_put_le32(b, 0);
    tb_put_le32(b, 0);
    tb_put_le16(b, 0x103); /* DEVICE_STATUS */
    tb_put_u8(b, 0);
    tb_put_u8(b, 0);
    tb_put_le64(b, 0);
    tb_put_le32(b, 1);
    tb_put_u8(b, 0x0f);
    *err_at = 0;
    return 0;
}

static size_t virtio_part_length(tb_buf *b, uint64_t *err_at)
{
    virtio_record(b, err_at);
    *err_at = 16 + 12;
    return 16 + 12;
}

/* hisi_acc has no length field: its layout (40 or 176 bytes) follows from
 * its magic. */

/* ---- the cases -------------------------------------------------------------
 */

#define RECORD_LIMIT                                                           \
    .limit = MS_LIMIT_MAX_RECORD_PAYLOAD, .limit_value = record_payload_limit
static const len_case g_cases[] = {
    {.name = "migstream record size",
     .build = mig_record,
     .width = 8,
     .big_endian = 0,
     .format = MS_FORMAT_MIGSTREAM,
     RECORD_LIMIT,
     .setup = no_checks},
    {.name = "migstream device idstr_len",
     .build = mig_idstr_len,
     .width = 4,
     .big_endian = 0,
     .format = MS_FORMAT_MIGSTREAM,
     .limit = MS_LIMIT_MAX_NAME_LENGTH,
     .limit_value = name_limit,
     .setup = no_checks},
    {.name = "migstream device compat_len",
     .build = mig_compat_len,
     .width = 4,
     .big_endian = 0,
     .format = MS_FORMAT_MIGSTREAM,
     .limit = MS_LIMIT_MAX_COMPAT_LENGTH,
     .limit_value = compat_limit,
     .setup = no_checks},
    {.name = "cpr name length",
     .build = cpr_namelen,
     .width = 4,
     .big_endian = 1,
     .format = MS_FORMAT_AUTO,
     .limit = MS_LIMIT_MAX_NAME_LENGTH,
     .limit_value = cpr_name_limit},
    {.name = "qemu vmdesc length",
     .build = qemu_vmdesc,
     .width = 4,
     .big_endian = 1,
     .format = MS_FORMAT_QEMU_MAIN,
     .limit = MS_LIMIT_MAX_VMDESC_BYTES,
     .limit_value = vmdesc_limit},
    {.name = "qemu machine type length",
     .build = qemu_machine,
     .width = 4,
     .big_endian = 1,
     .format = MS_FORMAT_QEMU_MAIN},
    {.name = "qemu PACKAGED length",
     .build = qemu_packaged,
     .width = 4,
     .big_endian = 1,
     .format = MS_FORMAT_QEMU_MAIN,
     .streamed_max = UINT32_MAX},
    {.name = "qemu RAM block used_length",
     .build = qemu_ram_block,
     .width = 8,
     .big_endian = 1,
     .format = MS_FORMAT_QEMU_MAIN},
    {.name = "multifd pages_alloc",
     .build = multifd_pages_alloc,
     .width = 4,
     .big_endian = 1,
     .format = MS_FORMAT_QEMU_MULTIFD},
    {.name = "multifd normal_pages",
     .build = multifd_normal,
     .width = 4,
     .big_endian = 1,
     .format = MS_FORMAT_QEMU_MULTIFD},
    {.name = "multifd next_packet_size",
     .build = multifd_payload,
     .width = 4,
     .big_endian = 1,
     .format = MS_FORMAT_QEMU_MULTIFD,
     RECORD_LIMIT},
    {.name = "multifd device-state size",
     .build = multifd_device,
     .width = 4,
     .big_endian = 1,
     .format = MS_FORMAT_QEMU_MULTIFD,
     RECORD_LIMIT},
    {.name = "libvirt data_len",
     .build = libvirt_data_len,
     .width = 4,
     .big_endian = 0,
     .format = MS_FORMAT_AUTO,
     .streamed_max = UINT32_MAX},
    {.name = "mlx5 record size",
     .build = mlx5_record,
     .width = 8,
     .big_endian = 0,
     .format = MS_FORMAT_PAYLOAD,
     .setup = mlx5,
     .streamed_max = UINT32_MAX},
    {.name = "qemu VFIO DEV_DATA_STATE size",
     .build = qemu_vfio_data,
     .width = 8,
     .big_endian = 1,
     .format = MS_FORMAT_QEMU_MAIN,
     RECORD_LIMIT},
    {.name = "qemu dirty-bitmap BITS buffer size",
     .build = qemu_dirty_bitmap_buffer,
     .width = 8,
     .big_endian = 1,
     .format = MS_FORMAT_QEMU_MAIN},
    {.name = "xe data packet size",
     .build = xe_data_size,
     .width = 8,
     .big_endian = 0,
     .format = MS_FORMAT_PAYLOAD,
     .setup = xe,
     .streamed_max = UINT32_MAX},
    {.name = "xe DESCRIPTOR size",
     .build = xe_descriptor_size,
     .width = 8,
     .big_endian = 0,
     .format = MS_FORMAT_PAYLOAD,
     .setup = xe},
    {.name = "qat block size",
     .build = qat_block_size,
     .width = 4,
     .big_endian = 0,
     .format = MS_FORMAT_PAYLOAD,
     .setup = qat},
    {.name = "qat section size",
     .build = qat_section_size,
     .width = 4,
     .big_endian = 0,
     .format = MS_FORMAT_PAYLOAD,
     .setup = qat},
    {.name = "virtio record size",
     .build = virtio_record,
     .width = 8,
     .big_endian = 0,
     .format = MS_FORMAT_PAYLOAD,
     .setup = virtio,
     .streamed_max = UINT32_MAX},
    {.name = "virtio part length",
     .build = virtio_part_length,
     .width = 4,
     .big_endian = 0,
     .format = MS_FORMAT_PAYLOAD,
     .setup = virtio},
};

static void test_declared_lengths(void **state)
{
    (void)state;
    BEGIN();
    for (size_t i = 0; i < sizeof g_cases / sizeof g_cases[0]; i++)
        check_case(&g_cases[i]);
    DONE();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_declared_lengths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
