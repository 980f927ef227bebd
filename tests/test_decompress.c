/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* Bounded decompressors: hostile zstd frames and zlib/gzip bombs through
 * the multifd channel decoder, the libvirt image decoder and the bare
 * decompressor (decompress.h).  Each run happens in a forked child whose
 * peak RSS is measured (tb_peak_rss_kib): the refused runs must stay under
 * RSS_BOUND_KIB, and a control run with max_zstd_window raised must show
 * the 128 MiB window being filled, so the measurement is known to see
 * what the cap prevents. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <zlib.h>

#include "decompress.h"
#include "test_util.h"

static int g_fail;

#define RSS_BOUND_KIB (16 * 1024) /* a refused run: under 16 MiB */
#define HOSTILE_WINDOW_LOG 27     /* 128 MiB: libzstd's default maximum */
#define RLE_BLOCK (128u * 1024)   /* zstd's largest block */
#define PAGES_PER_PACKET 128u     /* 512 KiB of 4 KiB pages */
#define PAGE 4096u
#define BOMB_BYTES ((size_t)32 << 20) /* what the zlib/gzip bombs expand to */

/* ---- hostile inputs ------------------------------------------------------ */

/* A zstd frame header declaring a 2^HOSTILE_WINDOW_LOG window (no content
 * size, no checksum): magic, descriptor 0, window descriptor (exponent
 * wl - 10, mantissa 0). */
static void zstd_hostile_header(tb_buf *b)
{
    static const uint8_t magic[] = {0x28, 0xb5, 0x2f, 0xfd};
    tb_put(b, magic, sizeof magic);
    tb_put_u8(b, 0x00);
    tb_put_u8(b, (uint8_t)((HOSTILE_WINDOW_LOG - 10) << 3));
}

/* n RLE blocks of RLE_BLOCK bytes each (block header: le24 of last bit,
 * type 1 (RLE), size; then the byte), never the last block: the frame
 * goes on filling its window. */
static void zstd_rle_blocks(tb_buf *b, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        uint32_t h = (1u << 1) | (RLE_BLOCK << 3);
        tb_put_u8(b, (uint8_t)h);
        tb_put_u8(b, (uint8_t)(h >> 8));
        tb_put_u8(b, (uint8_t)(h >> 16));
        tb_put_u8(b, (uint8_t)(k + 1));
    }
}

/* `bytes` zero bytes as one zlib (wbits 15) or gzip (wbits 31) stream. */
static void zlib_bomb(tb_buf *out, size_t bytes, int wbits)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    assert_int_equal(
        deflateInit2(&z, 9, Z_DEFLATED, wbits, 9, Z_DEFAULT_STRATEGY), Z_OK);
    static uint8_t zeros[1 << 16];
    uint8_t buf[1 << 14];
    size_t left = bytes;
    int rc;
    do {
        size_t k = left < sizeof zeros ? left : sizeof zeros;
        z.next_in = zeros;
        z.avail_in = (uInt)k;
        left -= k;
        do {
            z.next_out = buf;
            z.avail_out = sizeof buf;
            rc = deflate(&z, left ? Z_NO_FLUSH : Z_FINISH);
            tb_put(out, buf, sizeof buf - z.avail_out);
        } while (z.avail_out == 0);
    } while (left);
    assert_int_equal(rc, Z_STREAM_END);
    deflateEnd(&z);
}

/* A multifd channel: init, first SYNC, then `packets` RAM packets of
 * PAGES_PER_PACKET pages whose payloads are the consecutive pieces of
 * `stream`: `head` bytes (a frame header) plus an equal share of the rest
 * in the first, an equal share in each other.  *first_payload: the file
 * offset of the first packet's payload. */
static void multifd_channel(tb_buf *b, uint32_t method, const tb_buf *stream,
                            size_t head, size_t packets,
                            uint64_t *first_payload)
{
    static uint64_t off[PAGES_PER_PACKET];
    tb_buf_init(b);
    tm_init(b, NULL, 1);
    tm_ram_empty(b, TM_SYNC, 1, 0, NULL);
    size_t piece = (stream->len - head) / packets, at = 0;
    for (size_t k = 0; k < packets; k++) {
        size_t n = k + 1 == packets ? stream->len - at : piece + (k ? 0 : head);
        for (uint32_t i = 0; i < PAGES_PER_PACKET; i++)
            off[i] = ((uint64_t)k * PAGES_PER_PACKET + i) * PAGE;
        tm_ram p = {.flags = method,
                    .normal = PAGES_PER_PACKET,
                    .next_packet_size = (uint32_t)n,
                    .packet_num = 2 + k,
                    .block = "pc.ram",
                    .offsets = off,
                    .payload = stream->p + at,
                    .payload_len = n};
        size_t o = tm_ram_ex(b, &p);
        if (k == 0)
            *first_payload = o + TM_RAM_FIXED + 8 * 128;
        at += n;
    }
}

/* A version-2 libvirt save image header of `format` and a small domain
 * XML; *body: where the (compressed) QEMU stream starts. */
static void libvirt_image(tb_buf *img, uint32_t format, uint64_t *body)
{
    static const char xml[] = "<domain/>";
    tb_buf_init(img);
    tq_libvirt_header(img, "LibvirtQemudSave", 2, sizeof xml, 1, format, 0);
    tb_put(img, xml, sizeof xml);
    *body = img->len;
}

/* ---- runs (in the measured child) ---------------------------------------- */

typedef struct run_arg {
    const tb_buf *in;
    ms_format format;
    uint64_t max_zstd_window; /* 0: the default */
} run_arg;

static ms_error_info run_reader(void *p, uint64_t *peak_alloc)
{
    const run_arg *a = p;
    ms_options o;
    ms_options_init(&o);
    o.format = a->format;
    if (a->max_zstd_window)
        o.max_zstd_window = a->max_zstd_window;
    return tb_verify_counting(a->in->p, a->in->len, &o, peak_alloc);
}

/* The bare decompressor: everything it makes goes nowhere. */
static ms_error_info run_bare_zstd(void *p, uint64_t *peak_alloc)
{
    const run_arg *a = p;
    ms_error_info e;
    memset(&e, 0, sizeof e);
    ms_options o;
    ms_options_init(&o);
    tb_count_alloc count;
    o.allocator = tb_count_allocator(&count);
    uint64_t window =
        a->max_zstd_window ? a->max_zstd_window : o.max_zstd_window;
    ms_dec *d = ms_dec_create(&o.allocator, MS_CODEC_ZSTD,
                              o.max_decompress_bytes, window, 1, &e);
    static uint8_t sink[1 << 16];
    size_t at = 0;
    while (d) {
        ms_dec_io io = {a->in->p + at, a->in->len - at, 0,
                        sink,          sizeof sink,     0};
        if (ms_dec_run(d, &io, &e) < 0)
            break;
        at += io.in_used;
        if (!io.in_used && !io.out_made) {
            ms_dec_finish(d, &e);
            break;
        }
    }
    ms_dec_free(d);
    *peak_alloc = count.peak;
    return e;
}

/* Runs fn in a measured child: its error in *e, the peak of what it
 * allocated through the reader's allocator in *alloc (bytes), the rise of
 * its peak RSS returned (KiB). */
static long measure(const char *what, tb_rss_fn fn, run_arg *a,
                    ms_error_info *e, uint64_t *alloc)
{
    memset(e, 0, sizeof *e);
    *alloc = 0;
    long kib = tb_peak_rss_kib(fn, a, e, alloc);
    print_message("  %s: peak RSS +%ld KiB, allocated %llu KiB, %s at %llu: "
                  "%s\n",
                  what, kib, (unsigned long long)*alloc >> 10,
                  ms_error_name(e->code), (unsigned long long)e->offset,
                  e->detail);
    return kib;
}

/* The error must be `code` (and `limit`) at `offset`, the peak RSS rise
 * and the peak of the bytes allocated under RSS_BOUND_KIB. */
static void expect_bounded(const char *what, tb_rss_fn fn, run_arg *a,
                           ms_error code, ms_limit limit, uint64_t offset)
{
    ms_error_info e;
    uint64_t alloc;
    long kib = measure(what, fn, a, &e, &alloc);
    SOFT(kib >= 0 && kib < RSS_BOUND_KIB, "%s: peak RSS rose %ld KiB", what,
         kib);
    SOFT(alloc >> 10 < RSS_BOUND_KIB, "%s: %llu KiB allocated", what,
         (unsigned long long)alloc >> 10);
    SOFT(e.code == code, "%s: %s, expected %s", what, ms_error_name(e.code),
         ms_error_name(code));
    SOFT(e.limit == limit, "%s: limit %d", what, (int)e.limit);
    SOFT(e.offset == offset, "%s: offset %llu, expected %llu", what,
         (unsigned long long)e.offset, (unsigned long long)offset);
    if (limit)
        SOFT(strstr(e.detail, ms_limit_name(limit)) != NULL,
             "%s: the detail does not name %s", what, ms_limit_name(limit));
}

/* The same input with the window cap raised past the frame's: the window
 * fills, and both measurements see it (over 64 MiB). */
static void expect_unbounded_grows(const char *what, tb_rss_fn fn, run_arg *a)
{
    a->max_zstd_window = (uint64_t)1 << HOSTILE_WINDOW_LOG;
    ms_error_info e;
    uint64_t alloc;
    long kib = measure(what, fn, a, &e, &alloc);
    SOFT(kib > 64 * 1024, "%s: control run rose only %ld KiB", what, kib);
    SOFT(alloc >> 10 > 64 * 1024, "%s: control run allocated only %llu KiB",
         what, (unsigned long long)alloc >> 10);
    a->max_zstd_window = 0;
}

/* ---- tests -----------------------------------------------------------------
 */

static void test_hostile_zstd_multifd(void **state)
{
    (void)state;
    BEGIN();
    /* 256 packets x 512 KiB of pages: 128 MiB, the whole window */
    size_t packets =
        ((size_t)1 << HOSTILE_WINDOW_LOG) / (PAGES_PER_PACKET * PAGE);
    tb_buf z, ch;
    tb_buf_init(&z);
    zstd_hostile_header(&z);
    zstd_rle_blocks(&z, packets * PAGES_PER_PACKET * PAGE / RLE_BLOCK);
    uint64_t payload = 0;
    multifd_channel(&ch, TM_ZSTD, &z, 6, packets, &payload);
    run_arg a = {&ch, MS_FORMAT_QEMU_MULTIFD, 0};
    expect_bounded("multifd zstd, 128 MiB window", run_reader, &a, MS_ERR_LIMIT,
                   MS_LIMIT_MAX_ZSTD_WINDOW, payload);
    expect_unbounded_grows("multifd zstd, window cap raised", run_reader, &a);
    /* the refusal's offset is the frame's first byte at any slicing */
    ms_options o;
    ms_options_init(&o);
    o.format = MS_FORMAT_QEMU_MULTIFD;
    tb_result res;
    tb_read_bytewise(ch.p, ch.len, &o, &res);
    SOFT(res.err.code == MS_ERR_LIMIT && res.err.offset == payload,
         "one byte at a time: %s at %llu", ms_error_name(res.err.code),
         (unsigned long long)res.err.offset);
    tb_result_free(&res);
    tb_buf_free(&z);
    tb_buf_free(&ch);
    DONE();
}

static void test_hostile_zstd_libvirt(void **state)
{
    (void)state;
    BEGIN();
    tb_buf img;
    uint64_t body;
    libvirt_image(&img, MS_LIBVIRT_ZSTD, &body);
    zstd_hostile_header(&img);
    zstd_rle_blocks(&img, 1024);
    run_arg a = {&img, MS_FORMAT_AUTO, 0};
    expect_bounded("libvirt zstd, 128 MiB window", run_reader, &a, MS_ERR_LIMIT,
                   MS_LIMIT_MAX_ZSTD_WINDOW, body);
    /* the bare decompressor, whose output nothing stops: the control run
     * fills the window */
    tb_buf frame;
    tb_buf_init(&frame);
    zstd_hostile_header(&frame);
    zstd_rle_blocks(&frame, 1024);
    run_arg b = {&frame, MS_FORMAT_AUTO, 0};
    expect_bounded("bare zstd, 128 MiB window", run_bare_zstd, &b, MS_ERR_LIMIT,
                   MS_LIMIT_MAX_ZSTD_WINDOW, 0);
    expect_unbounded_grows("bare zstd, window cap raised", run_bare_zstd, &b);
    tb_buf_free(&frame);
    tb_buf_free(&img);
    DONE();
}

/* A window the cap allows passes: QEMU's multifd-zstd-level 20 writes a
 * 32 MiB window, the default max_zstd_window. */
static void test_window_at_cap(void **state)
{
    (void)state;
    BEGIN();
    ms_options o;
    ms_options_init(&o);
    assert_int_equal(o.max_zstd_window, (uint64_t)32 << 20);
    ms_dec_mem m;
    ms_dec_mem_init(&m, &o.allocator, o.max_decompress_bytes);
    SOFT(ms_dec_zstd_window(&m, o.max_zstd_window) == o.max_zstd_window,
         "default window %llu",
         (unsigned long long)ms_dec_zstd_window(&m, o.max_zstd_window));
    /* not a power of two: rounded down; below 1 KiB: 1 KiB */
    SOFT(ms_dec_zstd_window(&m, (3u << 20)) == (2u << 20), "3 MiB cap");
    SOFT(ms_dec_zstd_window(&m, 0) == 1024, "0 cap");
    /* the budget left bounds it too */
    ms_dec_mem small;
    ms_dec_mem_init(&small, &o.allocator, 1u << 20);
    SOFT(ms_dec_zstd_window(&small, o.max_zstd_window) == (1u << 20),
         "budget-bound window");
    DONE();
}

static void test_zlib_bombs(void **state)
{
    (void)state;
    BEGIN();
    /* multifd: a zlib stream of 32 MiB zeros in one packet of 128 pages */
    tb_buf z, ch;
    tb_buf_init(&z);
    zlib_bomb(&z, BOMB_BYTES, MAX_WBITS);
    uint64_t payload = 0;
    multifd_channel(&ch, TM_ZLIB, &z, 0, 1, &payload);
    run_arg a = {&ch, MS_FORMAT_QEMU_MULTIFD, 0};
    expect_bounded("multifd zlib bomb", run_reader, &a, MS_ERR_DECOMPRESS,
                   MS_LIMIT_NONE, payload);
    /* libvirt: a gzip body of 32 MiB zeros (the QEMU stream inside is
     * refused at its first bytes; the bomb must not be expanded whole) */
    tb_buf img;
    uint64_t body;
    libvirt_image(&img, MS_LIBVIRT_GZIP, &body);
    zlib_bomb(&img, BOMB_BYTES, 16 + MAX_WBITS);
    run_arg b = {&img, MS_FORMAT_AUTO, 0};
    expect_bounded("libvirt gzip bomb", run_reader, &b, MS_ERR_BAD_MAGIC,
                   MS_LIMIT_NONE, body);
    tb_buf_free(&z);
    tb_buf_free(&ch);
    tb_buf_free(&img);
    DONE();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hostile_zstd_multifd),
        cmocka_unit_test(test_hostile_zstd_libvirt),
        cmocka_unit_test(test_window_at_cap),
        cmocka_unit_test(test_zlib_bombs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
