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
