/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* Fuzz libvirt save images: the header, the domain XML and every
 * decompressor (libstream/qemu/libvirt.c, decompress.c) in front of the QEVM
 * decoder.
 *
 * Input: a whole image (it starts with "LibvirtQemud"), or a control byte
 * and a body the harness wraps in a header: bits 0-2 the format field (7
 * is used as is: an unknown format), bit 3 version 1 instead of 2, bit 4 a
 * big-endian header, bit 5 a cookie.  So mutations of compressed bodies
 * reach the decompressors without first having to get the header right.
 *
 * Each input runs three times: in slices from a PRNG seeded by the input,
 * one byte at a time (images up to BYTEWISE_MAX bytes), and in one slice.
 * Invariants (abort on violation), besides fuzz_pump's:
 *   - the three runs end the same way: both clean, or the same error at
 *     the same offset (errors do not depend on how input was split);
 *   - the same events (kind, offset, length, flags) in the same order;
 *   - no single allocation exceeds what the limits allow (the
 *     decompressors' budget, max_decompress_bytes, is 4 MiB here), and
 *     every allocation is freed. */
#include "fuzz_common.h"

#define FUZZ_DEC_LIMIT ((uint64_t)4 << 20)
/* images read one byte at a time too: up to this size (a byte-wise run
 * costs as much as all others together) */
#define BYTEWISE_MAX 1024

typedef struct fz_alloc {
    size_t largest, live;
} fz_alloc;

static void *fz_malloc(void *o, size_t n)
{
    fz_alloc *a = o;
    if (n > a->largest)
        a->largest = n;
    size_t *p = malloc(n + 16);
    if (!p)
        return NULL;
    p[0] = n;
    a->live += n;
    return (uint8_t *)p + 16;
}

static void fz_free(void *o, void *ptr)
{
    fz_alloc *a = o;
    size_t *p = (size_t *)(void *)((uint8_t *)ptr - 16);
    a->live -= p[0];
    free(p);
}

/* What a run said: its outcome and a hash of its event sequence. */
typedef struct outcome {
    int failed;
    ms_error code;
    uint64_t offset;
    uint64_t events, hash;
} outcome;

static void note_event(const ms_event *ev, void *ctx)
{
    outcome *o = ctx;
    if (ev->kind == MS_EV_DATA)
        return; /* DATA may be split differently by slicing */
    uint64_t rec[4] = {ev->kind, ev->offset, ev->length, ev->flags};
    o->hash = o->hash * 0x100000001b3ull ^
              fuzz_hash((const uint8_t *)rec, sizeof rec);
    o->events++;
    if (ev->kind == MS_EV_LIBVIRT_HEADER) {
        FUZZ_CHECK(ev->u.libvirt.format_name != NULL);
        fuzz_touch_str(ev->u.libvirt.format_name);
        FUZZ_CHECK(ev->u.libvirt.body_offset ==
                   92 + (uint64_t)ev->u.libvirt.data_len);
    }
}

/* slice_mode: 0 PRNG slices, 1 one byte at a time, 2 one slice */
static outcome run_image(const uint8_t *img, size_t size, uint64_t seed,
                         int slice_mode)
{
    fz_alloc fa = {0, 0};
    ms_options opt;
    fuzz_options(&opt, 1, 0);
    opt.max_decompress_bytes = FUZZ_DEC_LIMIT;
    /* the JSON trailer is kept whole, up to its limit: bounded here like
     * the rest, so the check below holds for it too */
    opt.max_vmdesc_bytes = FUZZ_DEC_LIMIT;
    opt.allocator = (ms_allocator){fz_malloc, fz_free, &fa};
    ms_reader *r = ms_reader_create(&opt);
    FUZZ_CHECK(r != NULL);
    outcome o = {0};
    fuzz_rng rng = {seed};
    fuzz_slice slice = {NULL, 0};
    size_t pos = 0;
    uint64_t last_offset = 0, last_consumed = 0;
    while (pos < size && !o.failed) {
        size_t n = slice_mode == 1   ? 1
                   : slice_mode == 2 ? size
                                     : fuzz_slice_size(&rng);
        if (n > size - pos)
            n = size - pos;
        fuzz_slice_set(&slice, img + pos, n);
        pos += n;
        if (ms_reader_input(r, slice.buf, slice.len) != 0)
            o.failed = 1;
        else
            o.failed = fuzz_pump(r, &slice, pos, &last_offset, &last_consumed,
                                 note_event, &o);
        fuzz_slice_drop(&slice);
    }
    fuzz_slice_drop(&slice);
    if (!o.failed)
        o.failed = ms_reader_finish(r) != 0;
    const ms_error_info *e = ms_reader_error(r);
    fuzz_check_error(e, o.failed);
    o.code = e->code;
    o.offset = e->offset;
    if (o.failed)
        FUZZ_CHECK(o.offset <= size);
    ms_reader_free(r);
    FUZZ_CHECK(fa.live == 0);
    /* the largest unit any limit allows here: the decompressors' budget
     * and the JSON trailer's limit, or a 1 MiB record payload
     * (fuzz_options) */
    FUZZ_CHECK(fa.largest <= FUZZ_DEC_LIMIT);
    return o;
}

static const char fz_xml[] = "<domain type='kvm'><name>f</name></domain>\n";
static const char fz_cookie[] = "<qemuDomainSaveCookie/>\n";

static void put32(uint8_t *p, uint32_t v, int be)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (be ? 24 - 8 * i : 8 * i));
}

/* The control byte's header, XML (and cookie), then the body. */
static uint8_t *wrap(const uint8_t *data, size_t size, size_t *out_len)
{
    uint8_t ctl = data[0];
    int be = (ctl >> 4) & 1, cookie = (ctl >> 5) & 1;
    size_t xml = sizeof fz_xml, ck = cookie ? sizeof fz_cookie : 0;
    size_t head = 92 + xml + ck;
    uint8_t *img = malloc(head + size - 1);
    FUZZ_CHECK(img != NULL);
    memset(img, 0, 92);
    memcpy(img, "LibvirtQemudSave", 16);
    put32(img + 16, ctl & 8 ? 1 : 2, be);
    put32(img + 20, (uint32_t)(xml + ck), be);
    put32(img + 24, 1, be);
    put32(img + 28, ctl & 7, be);
    put32(img + 32, cookie ? (uint32_t)xml : 0, be);
    memcpy(img + 92, fz_xml, xml);
    if (cookie)
        memcpy(img + 92 + xml, fz_cookie, ck);
    memcpy(img + head, data + 1, size - 1);
    *out_len = head + size - 1;
    return img;
}

static int same(const outcome *a, const outcome *b)
{
    return a->failed == b->failed && a->code == b->code &&
           a->offset == b->offset && a->events == b->events &&
           a->hash == b->hash;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t len;
    uint8_t *img;
    if (size >= 12 && memcmp(data, "LibvirtQemud", 12) == 0) {
        img = malloc(size);
        FUZZ_CHECK(img != NULL);
        memcpy(img, data, size);
        len = size;
    } else {
        img = wrap(data, size, &len);
    }
    uint64_t h = fuzz_hash(data, size);
    outcome split = run_image(img, len, h, 0);
    outcome whole = run_image(img, len, h, 2);
    FUZZ_CHECK(same(&split, &whole));
    if (len <= BYTEWISE_MAX) {
        outcome bytes = run_image(img, len, h, 1);
        FUZZ_CHECK(same(&bytes, &whole));
    }
    free(img);
    return 0;
}
