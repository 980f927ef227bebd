/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* QEMU CPR state streams (libstream/qemu/qemu_cpr.c), checked against streams
 * this test encodes itself from spec/qemu-cpr.md (QEMU's migration/cpr.c
 * and hw/vfio/cpr-iommufd.c as of 10.0 .. 10.2):
 *
 *   - detection: "QCPR" at offset 0 is MS_FORMAT_QEMU_CPR;
 *   - a QEMU 10.0 cpr-transfer state (fd list only, each fd a placeholder
 *     byte), a 10.1 one with the "vfio devices" subsection, a cpr-exec one
 *     (fds as be32 numbers) and an empty one decode to the entries written,
 *     whole, byte by byte and in random slices (same log), and fail at
 *     every cut except right after a list's end;
 *   - every malformed field fails with its code at the field's offset.
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

/* ---- the test's own encoder ------------------------------------------------
 */
#define VFIO_SUB "CprState/vfio devices"

static void put_header(tb_buf *b)
{
    tb_put(b, "QCPR", 4);
    tb_put_be32(b, 1);
}

/* One fd entry; fd < 0: cpr-transfer placeholder byte.  Returns the offset
 * of its marker. */
static size_t put_fd(tb_buf *b, const char *name, int32_t id, int32_t fd)
{
    size_t at = b->len;
    tb_put_u8(b, 1);
    tb_put_be32(b, (uint32_t)strlen(name) + 1);
    tb_put(b, name, strlen(name) + 1);
    tb_put_be32(b, (uint32_t)id);
    if (fd < 0)
        tb_put_u8(b, ' ');
    else
        tb_put_be32(b, (uint32_t)fd);
    return at;
}

static size_t put_vfio(tb_buf *b, const char *name, int32_t devid,
                       uint32_t ioas, uint32_t hwpt)
{
    size_t at = b->len;
    tb_put_u8(b, 1);
    tb_put_be32(b, (uint32_t)strlen(name) + 1);
    tb_put(b, name, strlen(name) + 1);
    tb_put_be32(b, (uint32_t)devid);
    tb_put_be32(b, ioas);
    tb_put_be32(b, hwpt);
    return at;
}

static size_t put_end(tb_buf *b)
{
    size_t at = b->len;
    tb_put_u8(b, 0);
    return at;
}

static size_t put_vfio_sub(tb_buf *b)
{
    size_t at = b->len;
    tb_put_u8(b, 0x05);
    tb_put_u8(b, (uint8_t)strlen(VFIO_SUB));
    tb_put(b, VFIO_SUB, strlen(VFIO_SUB));
    tb_put_be32(b, 1);
    return at;
}

/* ---- a log of the decoded events ------------------------------------------
 */
typedef struct clog {
    char text[8192];
    size_t len;
    int rc;
    ms_error_info err;
    size_t fds, vfio, ends;
} clog;

static void clog_add(clog *l, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(l->text + l->len, sizeof l->text - l->len, fmt, ap);
    va_end(ap);
    assert_true(n > 0 && (size_t)n < sizeof l->text - l->len);
    l->len += (size_t)n;
}

static void clog_event(clog *l, const ms_event *ev)
{
    clog_add(l, "%s@%llu+%llu", ms_event_kind_name(ev->kind),
             (unsigned long long)ev->offset, (unsigned long long)ev->length);
    if (ev->kind == MS_EV_STREAM_HEADER)
        clog_add(l, " %s", ms_format_name(ev->u.stream.format));
    if (ev->kind == MS_EV_SUBSECTION)
        clog_add(l, " %s v%u", ev->u.field.path, ev->u.field.version);
    if (ev->kind == MS_EV_CPR) {
        const ms_cpr_info *c = &ev->u.cpr;
        switch (c->record) {
        case MS_CPR_FD:
            l->fds++;
            assert_int_equal(strlen(c->name) + 1, c->name_len);
            clog_add(l, " fd %s id %d passed %d fd %d", c->name, c->id,
                     c->fd_passed, c->fd);
            break;
        case MS_CPR_VFIO_DEVICE:
            l->vfio++;
            clog_add(l, " vfio %s devid %d ioas %u hwpt %u", c->name, c->devid,
                     c->ioas_id, c->hwpt_id);
            break;
        case MS_CPR_LIST_END:
            l->ends++;
            clog_add(l, " end list %u count %u", c->list, c->count);
            break;
        default:
            fail_msg("unknown CPR record %d", (int)c->record);
        }
    }
    clog_add(l, "\n");
}

/* slice 0: whole; 1: byte by byte; else random slices up to `slice`. */
static void run(const uint8_t *p, size_t len, const ms_options *opt,
                size_t slice, clog *l)
{
    memset(l, 0, sizeof *l);
    ms_reader *r = ms_reader_create(opt);
    assert_non_null(r);
    uint64_t seed = 99 + len;
    size_t pos = 0;
    ms_event ev;
    int rc = 0;
    while (pos < len && rc >= 0) {
        size_t n = slice == 0   ? len
                   : slice == 1 ? 1
                                : 1 + (size_t)(tb_rand(&seed) % slice);
        if (n > len - pos)
            n = len - pos;
        assert_int_equal(ms_reader_input(r, p + pos, n), 0);
        pos += n;
        while ((rc = ms_reader_next(r, &ev)) == MS_NEXT_EVENT)
            clog_event(l, &ev);
    }
    if (rc >= 0)
        rc = ms_reader_finish(r);
    l->rc = rc < 0 ? -1 : 0;
    l->err = *ms_reader_error(r);
    ms_reader_free(r);
}

/* Valid: same log in every slicing; every cut fails except where `ok_cuts`
 * (offsets right after a list's end marker) says the state may end. */
static void check_valid(const tb_buf *b, const size_t *ok_cuts, size_t n_ok,
                        clog *out)
{
    clog *whole = out, bytes, rnd;
    run(b->p, b->len, NULL, 0, whole);
    if (whole->rc)
        print_message("%s at %llu: %s\n%s", ms_error_name(whole->err.code),
                      (unsigned long long)whole->err.offset, whole->err.detail,
                      whole->text);
    assert_int_equal(whole->rc, 0);
    run(b->p, b->len, NULL, 1, &bytes);
    assert_int_equal(bytes.rc, 0);
    assert_string_equal(whole->text, bytes.text);
    for (size_t max = 2; max < 100; max = max * 3 + 1) {
        run(b->p, b->len, NULL, max, &rnd);
        assert_int_equal(rnd.rc, 0);
        assert_string_equal(whole->text, rnd.text);
    }
    for (size_t cut = 0; cut < b->len; cut++) {
        int may_end = 0;
        for (size_t i = 0; i < n_ok; i++)
            may_end |= ok_cuts[i] == cut;
        ms_error_info e;
        int rc = tb_verify(b->p, cut, NULL, &e);
        if (may_end) {
            assert_int_equal(rc, 0);
            continue;
        }
        if (rc != -1 || e.code != MS_ERR_TRUNCATED || e.offset > cut)
            print_message("cut %zu: rc %d %s at %llu\n", cut, rc,
                          ms_error_name(e.code), (unsigned long long)e.offset);
        assert_int_equal(rc, -1);
        assert_int_equal(e.code, MS_ERR_TRUNCATED);
        assert_true(e.offset <= cut);
    }
}

static void test_detect(void **state)
{
    (void)state;
    size_t need = 0;
    assert_int_equal(ms_detect("QCPR\0\0\0\1", 8, &need), MS_FORMAT_QEMU_CPR);
    assert_int_equal(ms_detect("QCPX\0\0\0\1", 8, &need), MS_FORMAT_UNKNOWN);
    assert_int_equal(ms_detect("QC", 2, &need), MS_FORMAT_AUTO);
    assert_string_equal(ms_format_name(MS_FORMAT_QEMU_CPR), "qemu-cpr");
}

/* QEMU 10.0 cpr-transfer: two fds, each a placeholder byte. */
static void test_transfer_10_0(void **state)
{
    (void)state;
    tb_buf b;
    tb_buf_init(&b);
    put_header(&b);
    put_fd(&b, "tap", 0, -1);
    put_fd(&b, "vfio_container_for_group", 7, -1);
    size_t end = put_end(&b) + 1;
    clog l;
    check_valid(&b, &end, 1, &l);
    assert_int_equal(l.fds, 2);
    assert_int_equal(l.ends, 1);
    assert_non_null(strstr(l.text, "stream@0+8 qemu-cpr\n"));
    assert_non_null(strstr(l.text, "cpr@8+14 fd tap id 0 passed 1 fd -1\n"));
    assert_non_null(
        strstr(l.text, "fd vfio_container_for_group id 7 passed 1 fd -1\n"));
    assert_non_null(strstr(l.text, " end list 0 count 2\n"));
    tb_buf_free(&b);
}

/* QEMU 10.1 cpr-transfer: the vfio devices subsection follows. */
static void test_transfer_10_1(void **state)
{
    (void)state;
    tb_buf b;
    tb_buf_init(&b);
    put_header(&b);
    put_fd(&b, "iommufd", 0, -1);
    /* the state may end after each list, and after the subsection's
     * header (a QEMU without iommufd writes no list) */
    size_t ends[3];
    ends[0] = put_end(&b) + 1;
    size_t sub = put_vfio_sub(&b);
    ends[1] = b.len;
    put_vfio(&b, "0000:00:02.0", 1, 2, 3);
    put_vfio(&b, "0000:00:03.0", 4, 2, 5);
    ends[2] = put_end(&b) + 1;
    clog l;
    check_valid(&b, ends, 3, &l);
    assert_int_equal(l.fds, 1);
    assert_int_equal(l.vfio, 2);
    assert_int_equal(l.ends, 2);
    char want[128];
    snprintf(want, sizeof want, "subsection@%zu+%zu %s v1\n", sub,
             2 + strlen(VFIO_SUB) + 4, VFIO_SUB);
    assert_non_null(strstr(l.text, want));
    assert_non_null(
        strstr(l.text, " vfio 0000:00:03.0 devid 4 ioas 2 hwpt 5\n"));
    assert_non_null(strstr(l.text, " end list 1 count 2\n"));
    tb_buf_free(&b);
}

/* cpr-exec: fds as be32 numbers; and an empty state. */
static void test_exec_and_empty(void **state)
{
    (void)state;
    tb_buf b;
    tb_buf_init(&b);
    put_header(&b);
    put_fd(&b, "tap", 0, 27);
    put_fd(&b, "tap", 1, 0);
    size_t ends[3];
    ends[0] = put_end(&b) + 1;
    put_vfio_sub(&b);
    ends[1] = b.len;
    ends[2] = put_end(&b) + 1;
    clog l;
    check_valid(&b, ends, 3, &l);
    assert_non_null(strstr(l.text, "cpr@8+17 fd tap id 0 passed 0 fd 27\n"));
    assert_non_null(strstr(l.text, " fd tap id 1 passed 0 fd 0\n"));
    assert_non_null(strstr(l.text, " end list 1 count 0\n"));
    /* a QEMU built without iommufd: the subsection header, no list */
    tb_buf_reset(&b);
    put_header(&b);
    ends[0] = put_end(&b) + 1;
    ends[1] = put_vfio_sub(&b) + 2 + strlen(VFIO_SUB) + 4;
    check_valid(&b, ends, 2, &l);
    assert_int_equal(l.ends, 1);
    assert_non_null(strstr(l.text, "subsection@9+27 " VFIO_SUB " v1\n"));
    tb_buf_reset(&b);
    put_header(&b);
    ends[0] = put_end(&b) + 1;
    check_valid(&b, ends, 1, &l);
    assert_int_equal(l.fds, 0);
    assert_non_null(strstr(l.text, "cpr@8+1 end list 0 count 0\n"));
    tb_buf_free(&b);
}

/* ---- malformed
 * ----------------------------------------------------------------- */
static int g_fail;

static void expect_(const char *label, const tb_buf *b, const ms_options *o,
                    ms_error code, size_t off, int line)
{
    for (int bytewise = 0; bytewise < 2; bytewise++) {
        clog l;
        run(b->p, b->len, o, (size_t)bytewise, &l);
        if (l.rc != -1 || l.err.code != code || l.err.offset != off) {
            g_fail++;
            print_message("  FAIL line %d: %s%s: got %s at %llu (%s), want "
                          "%s at %zu\n",
                          line, label, bytewise ? " (byte by byte)" : "",
                          l.rc ? ms_error_name(l.err.code) : "success",
                          (unsigned long long)l.err.offset, l.err.detail,
                          ms_error_name(code), off);
        }
    }
}
#define EXPECT(label, b, o, code, off) expect_(label, b, o, code, off, __LINE__)

static void test_malformed(void **state)
{
    (void)state;
    g_fail = 0;
    tb_buf b;
    tb_buf_init(&b);
    size_t at;
    /* header */
    tb_put(&b, "QCPR", 4);
    tb_put_be32(&b, 2);
    put_end(&b);
    EXPECT("version 2", &b, NULL, MS_ERR_VERSION, 4);
    ms_options o;
    ms_options_init(&o);
    o.format = MS_FORMAT_QEMU_CPR;
    tb_buf_reset(&b);
    tb_put(&b, "QEVM", 4);
    tb_put_be32(&b, 1);
    put_end(&b);
    EXPECT("forced format, wrong magic", &b, &o, MS_ERR_BAD_MAGIC, 0);
    /* list markers */
    tb_buf_reset(&b);
    put_header(&b);
    at = b.len;
    tb_put_u8(&b, 2);
    EXPECT("fd list marker 2", &b, NULL, MS_ERR_BAD_FIELD, at);
    tb_buf_reset(&b);
    put_header(&b);
    put_end(&b);
    put_vfio_sub(&b);
    at = b.len;
    tb_put_u8(&b, 0xff);
    EXPECT("vfio list marker 0xff", &b, NULL, MS_ERR_BAD_FIELD, at);
    /* names */
    tb_buf_reset(&b);
    put_header(&b);
    at = b.len;
    tb_put_u8(&b, 1);
    tb_put_be32(&b, 0);
    EXPECT("name of 0 bytes", &b, NULL, MS_ERR_BAD_FIELD, at + 1);
    tb_buf_reset(&b);
    put_header(&b);
    at = b.len;
    tb_put_u8(&b, 1);
    tb_put_be32(&b, 257);
    tb_put_zeros(&b, 300);
    EXPECT("name over max_name_length", &b, NULL, MS_ERR_LIMIT, at + 1);
    tb_buf_reset(&b);
    put_header(&b);
    at = b.len;
    tb_put_u8(&b, 1);
    tb_put_be32(&b, 3);
    tb_put(&b, "tap", 3); /* no NUL */
    tb_put_be32(&b, 0);
    tb_put_u8(&b, ' ');
    put_end(&b);
    EXPECT("name without NUL", &b, NULL, MS_ERR_BAD_FIELD, at + 5);
    tb_buf_reset(&b);
    put_header(&b);
    at = b.len;
    tb_put_u8(&b, 1);
    tb_put_be32(&b, 4);
    tb_put(&b, "t\0p", 4); /* NUL inside, NUL last */
    tb_put_be32(&b, 0);
    tb_put_u8(&b, ' ');
    put_end(&b);
    EXPECT("name with an inner NUL", &b, NULL, MS_ERR_BAD_FIELD, at + 5);
    /* fds */
    tb_buf_reset(&b);
    put_header(&b);
    at = b.len;
    tb_put_u8(&b, 1);
    tb_put_be32(&b, 4);
    tb_put(&b, "tap", 4);
    tb_put_be32(&b, 0);
    tb_put_u8(&b, 'x');
    put_end(&b);
    EXPECT("fd neither placeholder nor number", &b, NULL, MS_ERR_BAD_FIELD,
           at + 13);
    tb_buf_reset(&b);
    put_header(&b);
    put_fd(&b, "a", 0, -1);
    at = put_fd(&b, "b", 0, 5);
    put_end(&b);
    EXPECT("cpr-exec fd after a cpr-transfer one", &b, NULL, MS_ERR_BAD_FIELD,
           at + 11);
    tb_buf_reset(&b);
    put_header(&b);
    put_fd(&b, "a", 0, 5);
    at = put_fd(&b, "b", 0, 0x20202020);
    put_end(&b);
    /* in cpr-exec mode a number is a number: 0x20202020 is read as one */
    clog l;
    run(b.p, b.len, NULL, 0, &l);
    assert_int_equal(l.rc, 0);
    assert_non_null(strstr(l.text, "fd b id 0 passed 0 fd 538976288\n"));
    tb_buf_reset(&b);
    put_header(&b);
    at = b.len;
    tb_put_u8(&b, 1);
    tb_put_be32(&b, 2);
    tb_put(&b, "a", 2);
    tb_put_be32(&b, 0);
    tb_put_be32(&b, 0xfffffffe); /* fd -2 */
    put_end(&b);
    EXPECT("negative cpr-exec fd", &b, NULL, MS_ERR_BAD_FIELD, at + 11);
    /* after the fd list */
    tb_buf_reset(&b);
    put_header(&b);
    at = put_end(&b) + 1;
    tb_put_u8(&b, 0x06);
    EXPECT("a byte after the state", &b, NULL, MS_ERR_TRAILING_DATA, at);
    tb_buf_reset(&b);
    put_header(&b);
    at = put_end(&b) + 1;
    tb_put_u8(&b, 0x05);
    tb_put_u8(&b, 14);
    tb_put(&b, "CprState/other", 14);
    tb_put_be32(&b, 1);
    put_end(&b);
    EXPECT("unknown subsection", &b, NULL, MS_ERR_VMSTATE, at);
    tb_buf_reset(&b);
    put_header(&b);
    put_end(&b);
    at = put_vfio_sub(&b);
    b.p[b.len - 1] = 2; /* version 2 */
    put_end(&b);
    EXPECT("subsection version 2", &b, NULL, MS_ERR_VMSTATE,
           at + 2 + strlen(VFIO_SUB));
    tb_buf_reset(&b);
    put_header(&b);
    put_end(&b);
    put_vfio_sub(&b);
    put_end(&b);
    at = put_vfio_sub(&b);
    put_end(&b);
    EXPECT("subsection twice", &b, NULL, MS_ERR_VMSTATE, at);
    tb_buf_free(&b);
    assert_int_equal(g_fail, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_detect),
        cmocka_unit_test(test_transfer_10_0),
        cmocka_unit_test(test_transfer_10_1),
        cmocka_unit_test(test_exec_and_empty),
        cmocka_unit_test(test_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
