/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* The limits of ms_options (MS_LIMIT_LIST in migstream.h) and the options
 * struct's compatibility rule:
 *
 *   - every limit id fires: a stream (or set of channels) just over the
 *     limit fails with MS_ERR_LIMIT, ms_error_info.limit naming that id and
 *     the detail naming its field; a table entry per id, and a check that
 *     no id of the list is left without one;
 *   - other errors carry MS_LIMIT_NONE;
 *   - ms_limit_name / ms_limit_option / the defaults ms_options_init fills;
 *   - ms_options from an older caller (struct_size down to
 *     MS_OPTIONS_SIZE_V1) is taken, the fields it lacks getting their
 *     defaults (ms_options_import with a truncated struct, and through
 *     ms_reader_create / ms_set_create / ms_nest_create); a size outside
 *     that range is refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common.h"
#include "test_util.h"

#define DEV 1u
#define RAM_ID 2u

/* ---- one stream per limit, just over it --------------------------------- */

/* A migstream channel: header (channel `index` of `count`), DEVICE. */
static void mig_begin(tb_stream *s, uint32_t index, uint32_t count)
{
    tb_stream_init(s);
    tb_header(s, tb_uuid_a, index, count);
    tb_device(s, DEV, "dev", MS_PAYLOAD_MLX5);
}

/* Read one migstream channel with `o`; its error. */
static ms_error_info read_mig(tb_stream *s, const ms_options *o)
{
    ms_error_info e;
    memset(&e, 0, sizeof e);
    assert_int_equal(tb_verify(s->b.p, s->b.len, o, &e), -1);
    tb_stream_free(s);
    return e;
}

/* Run migstream channels through readers and a set with `o`; its error. */
static ms_error_info run_set(tb_stream *ch, size_t n, const ms_options *o)
{
    tb_result r;
    assert_int_equal(tb_run_set_streams(ch, n, o, 0, 0, &r), -1);
    ms_error_info e = r.err;
    tb_result_free(&r);
    for (size_t i = 0; i < n; i++)
        tb_stream_free(&ch[i]);
    return e;
}

static ms_error_info read_qemu(tb_buf *b, const ms_options *o)
{
    ms_error_info e;
    memset(&e, 0, sizeof e);
    assert_int_equal(tb_verify(b->p, b->len, o, &e), -1);
    tb_buf_free(b);
    return e;
}

static ms_error_info fire_record_payload(ms_options *o)
{
    uint8_t data[200];
    tb_fill_random(data, sizeof data, 1);
    tb_stream s;
    mig_begin(&s, 0, 1);
    tb_chunk_image(&s, DEV, 0, MS_PHASE_FINAL, data, sizeof data, sizeof data,
                   0);
    tb_end_auto(&s, 1);
    o->max_record_payload = 100; /* the CHUNK's 200 bytes */
    return read_mig(&s, o);
}

/* A channel declaring a second device, `idstr`, read with `o`. */
static ms_error_info read_two_devices(const char *idstr, const ms_options *o)
{
    tb_stream s;
    mig_begin(&s, 0, 1);
    tb_device(&s, DEV + 1, idstr, MS_PAYLOAD_MLX5);
    tb_end_auto(&s, 1);
    return read_mig(&s, o);
}

static ms_error_info fire_devices(ms_options *o)
{
    o->max_devices = 1;
    return read_two_devices("dev2", o);
}

static ms_error_info fire_images(ms_options *o)
{
    uint8_t data[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    tb_stream s;
    mig_begin(&s, 0, 1);
    tb_chunk_image(&s, DEV, 0, MS_PHASE_INITIAL, data, 8, 8, 0);
    tb_chunk_image(&s, DEV, 1, MS_PHASE_FINAL, data, 8, 8, 0);
    tb_end_auto(&s, 1);
    o->max_images = 1;
    return read_mig(&s, o);
}

static ms_error_info fire_name_length(ms_options *o)
{
    o->max_name_length = 8;
    return read_two_devices("0000:00:02.0/vfio", o);
}

static ms_error_info fire_compat_length(ms_options *o)
{
    uint8_t compat[40] = {0};
    tb_stream s;
    mig_begin(&s, 0, 1);
    tb_device_ex(&s, DEV + 1, 0, MS_PAYLOAD_MLX5, "dev2", compat,
                 sizeof compat);
    tb_end_auto(&s, 1);
    o->max_compat_length = 16;
    return read_mig(&s, o);
}

static ms_error_info fire_channels(ms_options *o)
{
    tb_stream ch[2];
    for (uint32_t i = 0; i < 2; i++) {
        mig_begin(&ch[i], i, 2);
        tb_end_auto(&ch[i], 1);
    }
    o->max_channels = 1;
    return run_set(ch, 2, o);
}

/* A packet-mode image of `n` 16-byte packets sent in the order `order`. */
static void packet_image(tb_stream *s, const uint32_t *order, uint32_t n)
{
    uint8_t data[16 * 8];
    assert_true(n <= 8);
    tb_fill_random(data, sizeof data, 2);
    tb_image_begin(s, DEV, 0, MS_PHASE_FINAL, MS_TRANSPORT_PACKETS, 0, 0);
    for (uint32_t i = 0; i < n; i++)
        tb_packet(s, DEV, 0, order[i], 0, data + 16 * order[i], 16);
    tb_packet(s, DEV, 0, n, 1, "c", 1);
    tb_image_end(s, DEV, 0, 16 * n, tb_hash(data, 16 * n), n, 0, 1,
                 tb_hash("c", 1));
    tb_end_auto(s, 1);
}

static ms_error_info fire_packets(ms_options *o)
{
    static const uint32_t order[] = {0, 1, 2, 3};
    tb_stream s;
    mig_begin(&s, 0, 1);
    packet_image(&s, order, 4);
    o->max_packets = 2;
    return run_set(&s, 1, o);
}

static ms_error_info fire_buffered_bytes(ms_options *o)
{
    /* idx 1..4 wait for idx 0: 64 bytes held */
    static const uint32_t order[] = {1, 2, 3, 4, 0};
    tb_stream s;
    mig_begin(&s, 0, 1);
    packet_image(&s, order, 5);
    o->max_buffered_bytes = 40;
    return run_set(&s, 1, o);
}

static ms_error_info fire_vmdesc_bytes(ms_options *o)
{
    static const char json[] = "{\"page_size\": 4096, \"devices\": []}";
    tb_buf b;
    tb_buf_init(&b);
    tq_begin(&b);
    tq_eof(&b);
    tq_vmdesc(&b, json, sizeof json - 1);
    o->max_vmdesc_bytes = 10;
    return read_qemu(&b, o);
}

static ms_error_info fire_sections(ms_options *o)
{
    tb_buf b;
    tb_buf_init(&b);
    tq_begin(&b);
    for (uint32_t i = 0; i < 3; i++) {
        tq_section_start(&b, TQ_FULL, 10 + i, "dev", i, 1);
        tb_put_zeros(&b, 4);
        tq_footer(&b, 10 + i);
    }
    tq_eof(&b);
    o->max_sections = 2;
    return read_qemu(&b, o);
}

/* A complete QEMU stream whose RAM has two blocks. */
static void two_ram_blocks(tb_buf *b)
{
    tb_buf_init(b);
    tq_begin(b);
    tq_section_start(b, TQ_START, RAM_ID, "ram", 0, 4);
    tq_ram_mem_size(b, 0x12000);
    tq_ram_block_entry(b, "pc.ram", 0x10000);
    tq_ram_block_entry(b, "pc.bios", 0x2000);
    tq_ram_eos(b);
    tq_footer(b, RAM_ID);
    tq_ram_end(b, RAM_ID);
    tq_eof(b);
}

static ms_error_info fire_ram_blocks(ms_options *o)
{
    tb_buf b;
    two_ram_blocks(&b);
    o->max_ram_blocks = 1;
    return read_qemu(&b, o);
}

static ms_error_info fire_nesting(ms_options *o)
{
    /* one PACKAGED (holding a PING) where none may be */
    tb_buf b;
    tb_buf_init(&b);
    tq_begin(&b);
    tq_command(&b, TQ_CMD_OPEN_RETURN_PATH, NULL, 0);
    size_t pkg = tq_cmd_packaged(&b, NULL, 0);
    tq_cmd_ping(&b, 1);
    tb_set_be32(b.p + pkg + 5, 9);
    tq_eof(&b);
    o->max_nesting = 0;
    return read_qemu(&b, o);
}

static ms_error_info fire_decompress_bytes(ms_options *o)
{
    /* a gzip-compressed libvirt save image (version 2): the limit is
     * checked before the first compressed byte is read */
    static const char xml[] = "<domain/>";
    tb_buf b;
    tb_buf_init(&b);
    tq_libvirt_header(&b, "LibvirtQemudSave", 2, sizeof xml, 1, MS_LIBVIRT_GZIP,
                      0);
    tb_put(&b, xml, sizeof xml);
    tb_put_zeros(&b, 32);
    o->max_decompress_bytes = 1024;
    return read_qemu(&b, o);
}

static ms_error_info fire_zstd_window(ms_options *o)
{
    /* a zstd-compressed libvirt save image whose frame declares a 2 MiB
     * window (window descriptor: exponent 21 - 10) */
    static const char xml[] = "<domain/>";
    static const uint8_t frame[] = {0x28, 0xb5, 0x2f, 0xfd, 0x00, 11 << 3,
                                    0x01, 0x00, 0x00};
    tb_buf b;
    tb_buf_init(&b);
    tq_libvirt_header(&b, "LibvirtQemudSave", 2, sizeof xml, 1, MS_LIBVIRT_ZSTD,
                      0);
    tb_put(&b, xml, sizeof xml);
    tb_put(&b, frame, sizeof frame);
    o->max_zstd_window = 1u << 20;
    return read_qemu(&b, o);
}

typedef struct limit_case {
    ms_limit id;
    ms_error_info (*fire)(ms_options *o);
} limit_case;

static const limit_case g_cases[] = {
    {MS_LIMIT_MAX_RECORD_PAYLOAD, fire_record_payload},
    {MS_LIMIT_MAX_DEVICES, fire_devices},
    {MS_LIMIT_MAX_IMAGES, fire_images},
    {MS_LIMIT_MAX_NAME_LENGTH, fire_name_length},
    {MS_LIMIT_MAX_COMPAT_LENGTH, fire_compat_length},
    {MS_LIMIT_MAX_CHANNELS, fire_channels},
    {MS_LIMIT_MAX_PACKETS, fire_packets},
    {MS_LIMIT_MAX_BUFFERED_BYTES, fire_buffered_bytes},
    {MS_LIMIT_MAX_VMDESC_BYTES, fire_vmdesc_bytes},
    {MS_LIMIT_MAX_SECTIONS, fire_sections},
    {MS_LIMIT_MAX_RAM_BLOCKS, fire_ram_blocks},
    {MS_LIMIT_MAX_NESTING, fire_nesting},
    {MS_LIMIT_MAX_DECOMPRESS_BYTES, fire_decompress_bytes},
    {MS_LIMIT_MAX_ZSTD_WINDOW, fire_zstd_window},
};
#define NCASES (sizeof g_cases / sizeof g_cases[0])

static void test_each_limit_fires(void **state)
{
    (void)state;
    for (size_t k = 0; k < NCASES; k++) {
        const limit_case *c = &g_cases[k];
        ms_options o;
        ms_options_init(&o);
        ms_error_info e = c->fire(&o);
        const char *field = ms_limit_name(c->id);
        if (e.code != MS_ERR_LIMIT || e.limit != c->id ||
            !strstr(e.detail, field))
            print_message("%s: got %s, limit %d (%s): %s\n", field,
                          ms_error_name(e.code), (int)e.limit,
                          ms_limit_name(e.limit) ? ms_limit_name(e.limit)
                                                 : "none",
                          e.detail);
        assert_int_equal(e.code, MS_ERR_LIMIT);
        assert_int_equal(e.limit, c->id);
        assert_non_null(strstr(e.detail, field));
    }
}

/* Every id of MS_LIMIT_LIST has a case above (a new limit needs one). */
static void test_every_id_has_a_case(void **state)
{
    (void)state;
    for (int id = 1; id < MS_LIMIT_COUNT_; id++) {
        size_t k = 0;
        while (k < NCASES && g_cases[k].id != (ms_limit)id)
            k++;
        if (k == NCASES)
            print_message("no case fires %s\n", ms_limit_name((ms_limit)id));
        assert_true(k < NCASES);
    }
}

/* The setting raised by one lets the same input through that limit. */
static void test_raised_limit_passes(void **state)
{
    (void)state;
    ms_options o;
    ms_options_init(&o);
    ms_error_info e = fire_ram_blocks(&o);
    assert_int_equal(e.limit, MS_LIMIT_MAX_RAM_BLOCKS);
    tb_buf b;
    two_ram_blocks(&b);
    o.max_ram_blocks = 2;
    if (tb_verify(b.p, b.len, &o, &e) != 0)
        tb_print_err("max_ram_blocks 2", &e);
    assert_int_equal(tb_verify(b.p, b.len, &o, &e), 0);
    tb_buf_free(&b);
}

/* An error that is not a limit names none. */
static void test_other_errors_name_none(void **state)
{
    (void)state;
    tb_stream s;
    mig_begin(&s, 0, 1);
    tb_end_auto(&s, 1);
    ms_error_info e;
    memset(&e, 0xff, sizeof e);
    e.code = MS_ERR_OK;
    assert_int_equal(tb_verify(s.b.p, s.b.len - 1, NULL, &e), -1);
    assert_int_equal(e.code, MS_ERR_TRUNCATED);
    assert_int_equal(e.limit, MS_LIMIT_NONE);
    tb_stream_free(&s);
    /* ms_fail_as keeps a limit only with MS_ERR_LIMIT */
    memset(&e, 0, sizeof e);
    ms_fail_as(&e, MS_ERR_NO_MEMORY, MS_LIMIT_MAX_DECOMPRESS_BYTES, 5, "x");
    assert_int_equal(e.limit, MS_LIMIT_NONE);
    memset(&e, 0, sizeof e);
    ms_fail_as(&e, MS_ERR_LIMIT, MS_LIMIT_MAX_DECOMPRESS_BYTES, 5, "x");
    assert_int_equal(e.limit, MS_LIMIT_MAX_DECOMPRESS_BYTES);
}

/* ---- names and defaults -------------------------------------------------- */

static void test_names_and_defaults(void **state)
{
    (void)state;
    assert_string_equal(ms_limit_name(MS_LIMIT_MAX_BUFFERED_BYTES),
                        "max_buffered_bytes");
    assert_string_equal(ms_limit_option(MS_LIMIT_MAX_BUFFERED_BYTES),
                        "max-buffered-bytes");
    assert_string_equal(ms_limit_option(MS_LIMIT_MAX_DECOMPRESS_BYTES),
                        "max-decompress-bytes");
    assert_null(ms_limit_name(MS_LIMIT_NONE));
    assert_null(ms_limit_option(MS_LIMIT_NONE));
    assert_null(ms_limit_name(MS_LIMIT_COUNT_));
    assert_null(ms_limit_option((ms_limit)-1));
    /* pinned ids */
    assert_int_equal(MS_LIMIT_MAX_RECORD_PAYLOAD, 1);
    assert_int_equal(MS_LIMIT_MAX_DECOMPRESS_BYTES, 13);
    /* each option is the field's name with dashes */
    for (int id = 1; id < MS_LIMIT_COUNT_; id++) {
        const char *f = ms_limit_name((ms_limit)id);
        const char *opt = ms_limit_option((ms_limit)id);
        assert_non_null(f);
        assert_non_null(opt);
        assert_int_equal(strlen(f), strlen(opt));
        for (size_t i = 0; f[i]; i++)
            assert_int_equal(f[i] == '_' ? '-' : f[i], opt[i]);
    }
    ms_options o;
    ms_options_init(&o);
    assert_int_equal(o.max_vmdesc_bytes, 64ull << 20);
    assert_int_equal(o.max_sections, 65536);
    assert_int_equal(o.max_ram_blocks, 4096);
    assert_int_equal(o.max_nesting, 4);
    assert_int_equal(o.max_decompress_bytes, 256ull << 20);
    assert_int_equal(o.max_zstd_window, 32ull << 20);
}

/* ---- options from an older caller ---------------------------------------- */

/* A caller's struct of `size` bytes in a buffer whose bytes past it are
 * garbage (0xa5), as memory after an older caller's struct would be. */
typedef union old_caller {
    ms_options o;
    uint8_t bytes[sizeof(ms_options) + 16];
} old_caller;

static void old_struct(old_caller *c, size_t size)
{
    memset(c, 0xa5, sizeof *c);
    ms_options_init_size(&c->o, size);
    c->o.max_devices = 7;
    c->o.input_stable = 1;
}

static void test_import_truncated(void **state)
{
    (void)state;
    old_caller c;
    ms_options got;
    /* ms_options_init_size fills exactly the caller's bytes */
    old_struct(&c, MS_OPTIONS_SIZE_V1);
    assert_int_equal(c.o.struct_size, MS_OPTIONS_SIZE_V1);
    assert_int_equal(c.o.max_record_payload, 1ull << 30);
    for (size_t i = MS_OPTIONS_SIZE_V1; i < sizeof c.bytes; i++)
        assert_int_equal(c.bytes[i], 0xa5);
    /* the first layout: the caller's values, defaults for the rest */
    assert_int_equal(ms_options_import(&got, &c.o), 0);
    assert_int_equal(got.struct_size, sizeof got);
    assert_int_equal(got.max_devices, 7);
    assert_int_equal(got.input_stable, 1);
    assert_int_equal(got.input_seekable, 0);
    assert_int_equal(got.input_size, 0);
    assert_int_equal(got.max_decompress_bytes, 256ull << 20);
    /* a struct that ends inside input_size holds input_seekable only */
    size_t mid = offsetof(ms_options, input_size) + 4;
    old_struct(&c, mid);
    c.o.input_seekable = 1;
    assert_int_equal(ms_options_import(&got, &c.o), 0);
    assert_int_equal(got.input_seekable, 1);
    assert_int_equal(got.input_size, 0);
    assert_int_equal(got.max_decompress_bytes, 256ull << 20);
    /* the whole struct: everything is the caller's */
    old_struct(&c, sizeof(ms_options));
    c.o.max_decompress_bytes = 12345;
    assert_int_equal(ms_options_import(&got, &c.o), 0);
    assert_int_equal(got.max_decompress_bytes, 12345);
    /* NULL: defaults */
    assert_int_equal(ms_options_import(&got, NULL), 0);
    assert_int_equal(got.max_devices, 4096);
    /* smaller than the first layout, or larger than known: refused */
    old_struct(&c, sizeof(ms_options));
    c.o.struct_size = (uint32_t)MS_OPTIONS_SIZE_V1 - 1;
    assert_int_equal(ms_options_import(&got, &c.o), -1);
    c.o.struct_size = sizeof(ms_options) + 1;
    assert_int_equal(ms_options_import(&got, &c.o), -1);
    c.o.struct_size = 0;
    assert_int_equal(ms_options_import(&got, &c.o), -1);
    /* a size outside the range given to ms_options_init_size leaves a
     * struct_size every function refuses */
    memset(&c, 0xa5, sizeof c);
    ms_options_init_size(&c.o, 8);
    assert_int_equal(c.o.struct_size, 0);
    assert_int_equal(c.bytes[8], 0xa5);
}

static void test_create_with_old_struct(void **state)
{
    (void)state;
    old_caller c;
    old_struct(&c, MS_OPTIONS_SIZE_V1);
    c.o.max_devices = 1;
    /* a reader with the older struct applies its limits */
    ms_error_info e = read_two_devices("dev2", &c.o);
    assert_int_equal(e.limit, MS_LIMIT_MAX_DEVICES);
    ms_set *set = ms_set_create(&c.o);
    assert_non_null(set);
    ms_set_free(set);
    static const char json[] = "{\"page_size\": 4096, \"devices\": []}";
    ms_nest *n = ms_nest_create(&c.o, json, sizeof json - 1, &e);
    assert_non_null(n);
    ms_nest_free(n);
    /* too small: every creator refuses */
    c.o.struct_size = (uint32_t)MS_OPTIONS_SIZE_V1 - 8;
    assert_null(ms_reader_create(&c.o));
    assert_null(ms_set_create(&c.o));
    assert_null(ms_nest_create(&c.o, json, sizeof json - 1, &e));
    assert_int_equal(e.code, MS_ERR_USAGE);
}

/* ms_writer_options: the first layout and the current one are taken; a
 * size outside them is refused. */
static void test_writer_options_size(void **state)
{
    (void)state;
    ms_writer_options o;
    ms_writer_options_init(&o);
    o.struct_size = (uint32_t)MS_WRITER_OPTIONS_SIZE_V1;
    ms_writer *w = ms_writer_create(&o);
    assert_non_null(w);
    ms_writer_free(w);
    o.struct_size = sizeof o;
    w = ms_writer_create(&o);
    assert_non_null(w);
    ms_writer_free(w);
    o.struct_size = (uint32_t)MS_WRITER_OPTIONS_SIZE_V1 - 1;
    assert_null(ms_writer_create(&o));
    o.struct_size = sizeof o + 8;
    assert_null(ms_writer_create(&o));
}

/* ms_error_info.limit sits in what was padding: older callers' offsets. */
static void test_error_info_layout(void **state)
{
    (void)state;
    assert_int_equal(offsetof(ms_error_info, code), 0);
    assert_true(offsetof(ms_error_info, limit) <
                offsetof(ms_error_info, offset));
    if (_Alignof(uint64_t) == 8) {
        assert_int_equal(offsetof(ms_error_info, offset), 8);
        assert_int_equal(offsetof(ms_error_info, detail), 24);
        assert_int_equal(sizeof(ms_error_info), 216);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_limit_fires),
        cmocka_unit_test(test_every_id_has_a_case),
        cmocka_unit_test(test_raised_limit_passes),
        cmocka_unit_test(test_other_errors_name_none),
        cmocka_unit_test(test_names_and_defaults),
        cmocka_unit_test(test_import_truncated),
        cmocka_unit_test(test_create_with_old_struct),
        cmocka_unit_test(test_writer_options_size),
        cmocka_unit_test(test_error_info_layout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
