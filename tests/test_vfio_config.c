/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* The PCI config state of a VFIO FULL section (after DEV_CONFIG_STATE),
 * decoded by libstream/qemu/qemu_vfio.c, checked against bytes QEMU itself
 * wrote: vfio_pci_save_config writes the same two VMState structs
 * ("PCIDevice" v2 and "msix") as every emulated PCI device, so the
 * config state of a real device is taken from the real captures:
 *
 *   - e1000e on q35 (QEMU 10.0.2): 4096-byte config, 5 MSI-X vectors;
 *   - e1000 on pc (QEMU 7.2.22): 256-byte config, no MSI-X;
 *
 * each framed as a VFIO device's FULL section (DEV_CONFIG_STATE, the
 * bytes, END_OF_STATE) must decode into the same fields byte for byte,
 * whole and byte by byte, fail at every cut, and never be reported as
 * undecoded.  Altered copies check the rules: an irq state other than 0/1
 * is a `vfio` error at its offset; a wrong MSI-X vector count, a
 * VFIODisplay subsection or bytes that are no config state are walked to
 * the footer and reported as undecoded, as before this decoder existed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "test_util.h"

#define VFIO_ID 3u
#define VFIO_IDSTR "0000:00:05.0/vfio"

static uint8_t *load(const char *rel, size_t *len)
{
    const char *dir = getenv("MIGSTREAM_SRC_DIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir && *dir ? dir : ".", rel);
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s", path);
    tb_buf b;
    tb_buf_init(&b);
    uint8_t chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        tb_put(&b, chunk, n);
    fclose(f);
    *len = b.len;
    return b.p;
}

/* ---- QEMU's bytes of PCIDevice (+ msix) from a capture ------------------- */
typedef struct capcfg {
    tb_buf bytes;    /* version_id, config, irq_state[, msix] as written */
    size_t sizes[4]; /* of each of those fields */
    int nfields;
} capcfg;

static void capture_config(const char *rel, const char *idstr, capcfg *c)
{
    static const char *const types[] = {"int32 le", "pci config",
                                        "pci irq state", "msix state"};
    size_t len, joff, jlen;
    uint8_t *buf = load(rel, &len);
    assert_true(ms_qemu_find_vmdesc(buf, len, len, &joff, &jlen));
    ms_options o;
    ms_options_init(&o);
    o.field_events = 1;
    ms_reader *r = ms_reader_create(&o);
    assert_int_equal(ms_reader_set_vmdesc(r, (const char *)buf + joff, jlen),
                     0);
    assert_int_equal(ms_reader_input(r, buf, len), 0);
    tb_buf_init(&c->bytes);
    c->nfields = 0;
    uint32_t sid = UINT32_MAX;
    int done = 0;
    ms_event ev;
    while (ms_reader_next(r, &ev) == MS_NEXT_EVENT && !done) {
        if (ev.kind == MS_EV_SECTION && ev.u.section.type == MS_QSEC_FULL &&
            strcmp(ev.u.section.idstr, idstr) == 0)
            sid = ev.u.section.section_id;
        if (ev.kind != MS_EV_FIELD || ev.u.field.section_id != sid)
            continue;
        /* the device's first fields: PCIDevice's three, then msix */
        if (c->nfields < 4 && strcmp(ev.u.field.type, types[c->nfields]) == 0) {
            tb_put(&c->bytes, buf + ev.offset, (size_t)ev.length);
            c->sizes[c->nfields++] = (size_t)ev.length;
        } else {
            done = 1;
        }
    }
    ms_reader_free(r);
    free(buf);
}

/* ---- a stream with one VFIO device whose FULL section holds `cfg` ---------
 */
static size_t g_tail; /* bytes of an undescribed FULL section after it */

static size_t build(tb_buf *b, const uint8_t *cfg, size_t n, size_t *cfg_at)
{
    tb_buf_reset(b);
    tq_begin(b);
    tq_section_start(b, TQ_START, VFIO_ID, VFIO_IDSTR, 0, 1);
    tq_vfio_marker(b, TQ_VFIO_SETUP_STATE);
    tq_vfio_marker(b, TQ_VFIO_END_OF_STATE);
    tq_footer(b, VFIO_ID);
    tq_section_part(b, TQ_END, VFIO_ID);
    tq_vfio_marker(b, TQ_VFIO_END_OF_STATE);
    tq_footer(b, VFIO_ID);
    tq_section_start(b, TQ_FULL, VFIO_ID, VFIO_IDSTR, 0, 1);
    tq_vfio_marker(b, TQ_VFIO_CONFIG_STATE);
    *cfg_at = b->len;
    tb_put(b, cfg, n);
    tq_vfio_marker(b, TQ_VFIO_END_OF_STATE);
    tq_footer(b, VFIO_ID);
    if (g_tail) { /* as other devices and the JSON trailer follow */
        tq_section_start(b, TQ_FULL, VFIO_ID + 1, "filler", 0, 1);
        tb_put_zeros(b, g_tail);
        tq_footer(b, VFIO_ID + 1);
    }
    return tq_eof(b) + 1;
}

/* The decoded view of a stream: its fields' bytes and a text log. */
typedef struct flog {
    int rc;
    ms_error_info err;
    tb_buf fields; /* the config fields' bytes, concatenated */
    size_t sizes[8];
    int nfields, undecoded, end_of_state_after_config;
    char why[256];
} flog;

static const char *g_vmdesc; /* a JSON trailer given first, or NULL */

static void run(const uint8_t *p, size_t len, size_t slice, flog *l)
{
    memset(l, 0, sizeof *l);
    tb_buf_init(&l->fields);
    ms_options o;
    ms_options_init(&o);
    o.field_events = 1;
    ms_reader *r = ms_reader_create(&o);
    if (g_vmdesc)
        assert_int_equal(ms_reader_set_vmdesc(r, g_vmdesc, strlen(g_vmdesc)),
                         0);
    size_t pos = 0;
    int rc = 0, after_config = 0;
    ms_event ev;
    while (pos < len && rc >= 0) {
        size_t n = slice ? slice : len;
        if (n > len - pos)
            n = len - pos;
        assert_int_equal(ms_reader_input(r, p + pos, n), 0);
        pos += n;
        while ((rc = ms_reader_next(r, &ev)) == MS_NEXT_EVENT) {
            if (ev.kind == MS_EV_FIELD && ev.u.field.section_id == VFIO_ID) {
                assert_int_equal(ev.length, ev.u.field.size);
                tb_put(&l->fields, ev.u.field.data, ev.u.field.size);
                if (l->nfields < 8)
                    l->sizes[l->nfields] = ev.u.field.size;
                l->nfields++;
            }
            if (ev.kind == MS_EV_UNDECODED &&
                ev.u.section.section_id == VFIO_ID) {
                l->undecoded++;
                snprintf(l->why, sizeof l->why, "%s", ev.u.section.detail);
            }
            if (ev.kind == MS_EV_VFIO_MARKER &&
                ev.u.vfio.marker == TQ_VFIO_BASE + TQ_VFIO_CONFIG_STATE)
                after_config = 1;
            else if (ev.kind == MS_EV_VFIO_MARKER && after_config) {
                l->end_of_state_after_config =
                    ev.u.vfio.marker == TQ_VFIO_BASE + TQ_VFIO_END_OF_STATE;
                after_config = 0;
            }
        }
    }
    if (rc >= 0)
        rc = ms_reader_finish(r);
    l->rc = rc < 0 ? -1 : 0;
    l->err = *ms_reader_error(r);
    ms_reader_free(r);
}

static void check_decodes(const capcfg *c)
{
    tb_buf b;
    tb_buf_init(&b);
    size_t at;
    size_t eof_end = build(&b, c->bytes.p, c->bytes.len, &at);
    flog whole, bytes;
    run(b.p, b.len, 0, &whole);
    if (whole.rc || whole.undecoded)
        print_message(
            "%s at %llu: %s; undecoded: %s\n", ms_error_name(whole.err.code),
            (unsigned long long)whole.err.offset, whole.err.detail, whole.why);
    assert_int_equal(whole.rc, 0);
    assert_int_equal(whole.undecoded, 0);
    assert_true(whole.end_of_state_after_config);
    assert_int_equal(whole.nfields, c->nfields);
    for (int i = 0; i < c->nfields; i++)
        assert_int_equal(whole.sizes[i], c->sizes[i]);
    assert_int_equal(whole.fields.len, c->bytes.len);
    assert_memory_equal(whole.fields.p, c->bytes.p, c->bytes.len);
    run(b.p, b.len, 1, &bytes);
    assert_int_equal(bytes.rc, 0);
    assert_int_equal(bytes.nfields, c->nfields);
    assert_memory_equal(bytes.fields.p, c->bytes.p, c->bytes.len);
    for (size_t cut = at; cut < b.len; cut += 7) {
        ms_error_info e;
        int rc = tb_verify(b.p, cut, NULL, &e);
        if (cut == eof_end)
            continue;
        assert_int_equal(rc, -1);
        assert_int_equal(e.code, MS_ERR_TRUNCATED);
        assert_true(e.offset <= cut);
    }
    tb_buf_free(&whole.fields);
    tb_buf_free(&bytes.fields);
    tb_buf_free(&b);
}

static void test_pcie_msix_from_qemu_10(void **state)
{
    (void)state;
    capcfg c;
    capture_config("tests/data/captures/qemu-10.0-q35-precopy/main.mig",
                   "0000:00:02.0/e1000e", &c);
    assert_int_equal(c.nfields, 4);
    assert_int_equal(c.sizes[1], 4096);
    assert_int_equal(c.sizes[3], 5 * 16 + 1); /* 5 vectors: table + PBA */
    check_decodes(&c);
    tb_buf_free(&c.bytes);
}

static void test_pci_from_qemu_7_2(void **state)
{
    (void)state;
    capcfg c;
    capture_config("tests/data/captures/qemu-7.2-pc-precopy/main.mig",
                   "0000:00:03.0/e1000", &c);
    assert_int_equal(c.nfields, 3);
    assert_int_equal(c.sizes[1], 256);
    check_decodes(&c);
    tb_buf_free(&c.bytes);
}

/* ---- altered copies
 * ----------------------------------------------------------- */
static void test_rules(void **state)
{
    (void)state;
    capcfg c;
    capture_config("tests/data/captures/qemu-10.0-q35-precopy/main.mig",
                   "0000:00:02.0/e1000e", &c);
    assert_int_equal(c.nfields, 4);
    tb_buf cfg, b;
    tb_buf_init(&cfg);
    tb_buf_init(&b);
    size_t at;
    flog l;
    /* irq state of pin C = 2: QEMU rejects it */
    tb_buf_copy(&cfg, &c.bytes);
    size_t irq = 4 + 4096;
    tb_set_be32(cfg.p + irq + 8, 2);
    build(&b, cfg.p, cfg.len, &at);
    run(b.p, b.len, 0, &l);
    assert_int_equal(l.rc, -1);
    assert_int_equal(l.err.code, MS_ERR_VFIO);
    assert_int_equal(l.err.offset, at + irq + 8);
    tb_buf_free(&l.fields);
    /* one MSI-X vector more in the capability: END_OF_STATE is not where
     * either layout puts it, so the state is walked, not decoded.  Telling
     * needs the bytes of the 4096-byte layout to be there: in a stream
     * that ends sooner, this is reported as truncated (spec/qemu-main.md,
     * section 10). */
    g_tail = 8192;
    tb_buf_copy(&cfg, &c.bytes);
    const uint8_t *conf = cfg.p + 4;
    uint8_t cap = conf[0x34] & 0xfc;
    while (cap && conf[cap] != 0x11)
        cap = conf[cap + 1] & 0xfc;
    assert_true(cap != 0);
    cfg.p[4 + cap + 2]++; /* table size field: vectors - 1 */
    build(&b, cfg.p, cfg.len, &at);
    run(b.p, b.len, 0, &l);
    assert_int_equal(l.rc, 0);
    assert_int_equal(l.nfields, 0);
    assert_int_equal(l.undecoded, 1);
    assert_non_null(strstr(l.why, "neither"));
    tb_buf_free(&l.fields);
    g_tail = 0;
    build(&b, cfg.p, cfg.len, &at);
    run(b.p, b.len, 0, &l);
    assert_int_equal(l.rc, -1);
    assert_int_equal(l.err.code, MS_ERR_TRUNCATED);
    tb_buf_free(&l.fields);
    /* a VFIODisplay subsection after the MSI-X state */
    tb_buf_copy(&cfg, &c.bytes);
    tq_subsection(&cfg, "VFIOPCIDevice/VFIODisplay", 1);
    tb_put_zeros(&cfg, 24);
    build(&b, cfg.p, cfg.len, &at);
    run(b.p, b.len, 0, &l);
    assert_int_equal(l.rc, 0);
    assert_int_equal(l.undecoded, 1);
    assert_non_null(strstr(l.why, "subsection"));
    tb_buf_free(&l.fields);
    /* bytes that are no config state (PCIDevice version 7) */
    tb_buf_copy(&cfg, &c.bytes);
    tb_set_be32(cfg.p, 7);
    build(&b, cfg.p, cfg.len, &at);
    run(b.p, b.len, 1, &l);
    assert_int_equal(l.rc, 0);
    assert_int_equal(l.undecoded, 1);
    assert_non_null(strstr(l.why, "version_id"));
    tb_buf_free(&l.fields);
    /* a short stand-in near the end of the stream (10 bytes): walked, and
     * the stream may still end right after EOF */
    static const uint8_t tiny[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    size_t eof_end = build(&b, tiny, sizeof tiny, &at);
    assert_int_equal(tb_verify(b.p, eof_end, NULL, NULL), 0);
    tb_buf_free(&cfg);
    tb_buf_free(&b);
    tb_buf_free(&c.bytes);
}

/* QEMU's JSON trailer describes a VFIO FULL section as one opaque "data"
 * buffer: with it given, the config is still checked, but its fields are
 * not reported in another shape than the description's. */
static void test_described_by_trailer(void **state)
{
    (void)state;
    capcfg c;
    capture_config("tests/data/captures/qemu-10.0-q35-precopy/main.mig",
                   "0000:00:02.0/e1000e", &c);
    char json[512];
    snprintf(json, sizeof json,
             "{\"page_size\":4096,\"devices\":[{\"name\":\"%s\","
             "\"instance_id\":0,\"size\":%zu,\"fields\":[{\"name\":"
             "\"data\",\"type\":\"buffer\",\"size\":%zu}]}]}",
             VFIO_IDSTR, c.bytes.len + 16, c.bytes.len + 16);
    g_vmdesc = json;
    tb_buf b, cfg;
    tb_buf_init(&b);
    tb_buf_init(&cfg);
    size_t at;
    build(&b, c.bytes.p, c.bytes.len, &at);
    flog l;
    run(b.p, b.len, 0, &l);
    assert_int_equal(l.rc, 0);
    assert_int_equal(l.nfields, 0);
    assert_int_equal(l.undecoded, 0);
    assert_true(l.end_of_state_after_config);
    tb_buf_free(&l.fields);
    tb_buf_copy(&cfg, &c.bytes);
    tb_set_be32(cfg.p + 4 + 4096, 2); /* irq state of pin A */
    build(&b, cfg.p, cfg.len, &at);
    run(b.p, b.len, 1, &l);
    assert_int_equal(l.rc, -1);
    assert_int_equal(l.err.code, MS_ERR_VFIO);
    assert_int_equal(l.err.offset, at + 4 + 4096);
    tb_buf_free(&l.fields);
    g_vmdesc = NULL;
    tb_buf_free(&cfg);
    tb_buf_free(&b);
    tb_buf_free(&c.bytes);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pcie_msix_from_qemu_10),
        cmocka_unit_test(test_pci_from_qemu_7_2),
        cmocka_unit_test(test_rules),
        cmocka_unit_test(test_described_by_trailer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
