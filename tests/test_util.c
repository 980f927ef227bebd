/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* Shared test helpers: an independent hand builder of migstream v1 streams
 * (from spec/migstream.md only) and drivers for reader, set and writer. */
#include "test_util.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>
#include <zlib.h>

/* ---- small utilities ---------------------------------------------------- */
static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) {
        fprintf(stderr, "test_util: out of memory\n");
        abort();
    }
    return q;
}

uint8_t *tb_load_source(const char *rel, size_t *len)
{
    const char *dir = getenv("MIGSTREAM_SRC_DIR");
    char path[4096];
    if (dir && *dir) {
        snprintf(path, sizeof path, "%s/%s", dir, rel);
    } else {
        char base[2048];
        snprintf(base, sizeof base, "%s", __FILE__);
        char *s = strstr(base, "/tests/test_util.c");
        if (s)
            *s = 0;
        else
            snprintf(base, sizeof base, ".");
        snprintf(path, sizeof path, "%s/%s", base, rel);
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        return NULL;
    }
    tb_buf b;
    tb_buf_init(&b);
    uint8_t chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        tb_put(&b, chunk, n);
    fclose(f);
    *len = b.len;
    /* a NUL after the bytes, so text files can be read as strings (the
     * JSON scanners of test_qemu ran past the end: valgrind) */
    tb_put(&b, "", 1);
    return b.p;
}

void tb_buf_init(tb_buf *b) { memset(b, 0, sizeof *b); }

void tb_buf_free(tb_buf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

void tb_buf_reset(tb_buf *b) { b->len = 0; }

static void buf_reserve(tb_buf *b, size_t extra)
{
    if (b->len + extra <= b->cap)
        return;
    size_t ncap = b->cap ? b->cap : 64;
    while (ncap < b->len + extra)
        ncap *= 2;
    b->p = xrealloc(b->p, ncap);
    b->cap = ncap;
}

void tb_put(tb_buf *b, const void *data, size_t len)
{
    buf_reserve(b, len);
    if (len)
        memcpy(b->p + b->len, data, len);
    b->len += len;
}

void tb_put_u8(tb_buf *b, uint8_t v) { tb_put(b, &v, 1); }

void tb_put_le16(tb_buf *b, uint16_t v)
{
    uint8_t t[2];
    tb_set_le16(t, v);
    tb_put(b, t, 2);
}

void tb_put_le32(tb_buf *b, uint32_t v)
{
    uint8_t t[4];
    tb_set_le32(t, v);
    tb_put(b, t, 4);
}

void tb_put_le64(tb_buf *b, uint64_t v)
{
    uint8_t t[8];
    tb_set_le64(t, v);
    tb_put(b, t, 8);
}

void tb_put_zeros(tb_buf *b, size_t n)
{
    buf_reserve(b, n);
    memset(b->p + b->len, 0, n);
    b->len += n;
}

void tb_buf_copy(tb_buf *dst, const tb_buf *src)
{
    dst->len = 0;
    tb_put(dst, src->p, src->len);
}

uint32_t tb_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

uint64_t tb_le64(const uint8_t *p)
{
    return (uint64_t)tb_le32(p) | ((uint64_t)tb_le32(p + 4) << 32);
}

void tb_set_le16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

void tb_set_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

void tb_set_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

uint64_t tb_hash(const void *data, size_t len)
{
    return XXH3_64bits_withSeed(data, len, 0);
}

uint64_t tb_hash_seed(const void *data, size_t len, uint64_t seed)
{
    return XXH3_64bits_withSeed(data, len, seed);
}

uint64_t tb_rand(uint64_t *state)
{
    uint64_t x = *state ? *state : 0x9E3779B97F4A7C15ull;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

void tb_fill_random(uint8_t *p, size_t n, uint64_t seed)
{
    uint64_t st = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(tb_rand(&st) >> 56);
}

void tb_fill_compressible(uint8_t *p, size_t n, uint64_t seed)
{
    uint64_t st = seed * 0x9E3779B97F4A7C15ull + 7;
    size_t i = 0;
    while (i < n) {
        uint8_t v = (uint8_t)(tb_rand(&st) >> 60); /* 16 values */
        size_t run = 4 + (size_t)(tb_rand(&st) % 29);
        for (size_t k = 0; k < run && i < n; k++)
            p[i++] = v;
    }
}

/* ---- builder ------------------------------------------------------------ */
const uint8_t tb_magic[8] = {0x8D, 'M', 'I', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
const uint8_t tb_uuid_a[16] = {0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88,
                               0x99, 0xAA, 0xBB, 0xCC, 0xDD, 0xEE, 0xF0, 0x01};
const uint8_t tb_uuid_b[16] = {0xA1, 0xB2, 0xC3, 0xD4, 0xE5, 0xF6, 0x07, 0x18,
                               0x29, 0x3A, 0x4B, 0x5C, 0x6D, 0x7E, 0x8F, 0x90};

void tb_stream_init(tb_stream *s) { memset(s, 0, sizeof *s); }

void tb_stream_free(tb_stream *s)
{
    tb_buf_free(&s->b);
    memset(s, 0, sizeof *s);
}

void tb_header_ex(tb_stream *s, const uint8_t magic[8], uint16_t major,
                  uint16_t minor, uint32_t header_flags,
                  const uint8_t uuid[16], uint32_t index, uint32_t count,
                  uint64_t created_ns, uint64_t reserved)
{
    uint8_t h[64];
    memcpy(h, magic, 8);
    tb_set_le16(h + 8, major);
    tb_set_le16(h + 10, minor);
    tb_set_le32(h + 12, header_flags);
    memcpy(h + 16, uuid, 16);
    tb_set_le32(h + 32, index);
    tb_set_le32(h + 36, count);
    tb_set_le64(h + 40, created_ns);
    tb_set_le64(h + 48, reserved);
    uint64_t check = XXH3_64bits_withSeed(h, 56, 0);
    tb_set_le64(h + 56, check);
    tb_put(&s->b, h, 64);
    s->chain = check;
    s->major = major;
}

void tb_header(tb_stream *s, const uint8_t uuid[16], uint32_t index,
               uint32_t count)
{
    tb_header_ex(s, tb_magic, 1, 0, 0, uuid, index, count, 0, 0);
}

void tb_header_refresh(tb_stream *s)
{
    uint64_t check = XXH3_64bits_withSeed(s->b.p, 56, 0);
    tb_set_le64(s->b.p + 56, check);
    s->chain = check;
    s->major = (uint16_t)(s->b.p[8] | s->b.p[9] << 8);
}

uint64_t tb_payload_check(uint16_t major, uint32_t tag, const void *payload,
                          size_t len, uint64_t header_check)
{
    size_t prefix = tag == 0x0003 ? 16 : tag == 0x0005 ? 24 : 0;
    if (major < 2 || !prefix || len < prefix)
        return XXH3_64bits_withSeed(payload, len, header_check);
    uint8_t b[24 + 8];
    memcpy(b, payload, prefix);
    tb_set_le64(b + prefix,
                XXH3_64bits((const uint8_t *)payload + prefix, len - prefix));
    return XXH3_64bits_withSeed(b, prefix + 8, header_check);
}

uint64_t tb_units_hash(const void *data, size_t len, size_t unit_size)
{
    XXH3_state_t *st = XXH3_createState();
    XXH3_64bits_reset(st);
    const uint8_t *d = data;
    for (size_t off = 0; off < len; off += unit_size) {
        size_t n = len - off < unit_size ? len - off : unit_size;
        uint8_t le[8];
        tb_set_le64(le, XXH3_64bits(d + off, n));
        XXH3_64bits_update(st, le, 8);
    }
    uint64_t h = XXH3_64bits_digest(st);
    XXH3_freeState(st);
    return h;
}

size_t tb_record(tb_stream *s, uint32_t flags, uint32_t tag,
                 const void *payload, size_t len)
{
    uint8_t h[24];
    size_t off = s->b.len;
    tb_set_le64(h, (uint64_t)len);
    tb_set_le32(h + 8, flags);
    tb_set_le32(h + 12, tag);
    uint64_t hcheck = XXH3_64bits_withSeed(h, 16, s->chain);
    tb_set_le64(h + 16, hcheck);
    uint64_t pcheck = tb_payload_check(s->major, tag, payload, len, hcheck);
    tb_put(&s->b, h, 24);
    tb_put(&s->b, payload, len);
    tb_put_le64(&s->b, pcheck);
    s->chain = pcheck;
    s->last_off = off;
    s->last_len = s->b.len - off;

    s->record_count++;
    const uint8_t *pl = payload;
    switch (tag) {
    case 0x0001: s->device_count++; break;
    case 0x0003:
        if (len >= 16)
            s->image_bytes += tb_le32(pl + 12);
        break;
    case 0x0004: s->image_count++; break;
    case 0x0005: s->packet_count++; break;
    default: break;
    }
    return off;
}

void tbp_device(tb_buf *p, uint32_t handle, uint32_t instance_id,
                uint32_t kind, uint32_t flags, const void *idstr,
                uint32_t idstr_len, const void *compat, uint32_t compat_len)
{
    tb_put_le32(p, handle);
    tb_put_le32(p, instance_id);
    tb_put_le32(p, kind);
    tb_put_le32(p, flags);
    tb_put_le32(p, idstr_len);
    tb_put_le32(p, compat_len);
    tb_put(p, idstr, idstr_len);
    tb_put(p, compat, compat_len);
}

void tbp_image_begin(tb_buf *p, uint32_t device, uint32_t seq, uint8_t phase,
                     uint8_t transport, uint32_t flags, uint64_t ts)
{
    tb_put_le32(p, device);
    tb_put_le32(p, seq);
    tb_put_u8(p, phase);
    tb_put_u8(p, transport);
    tb_put_le16(p, 0);
    tb_put_le32(p, flags);
    tb_put_le64(p, ts);
    tb_put_le64(p, 0);
}

void tbp_chunk(tb_buf *p, uint32_t device, uint32_t seq, uint8_t compression,
               uint32_t raw_len, const void *stored, size_t stored_len)
{
    tb_put_le32(p, device);
    tb_put_le32(p, seq);
    tb_put_u8(p, compression);
    tb_put_zeros(p, 3);
    tb_put_le32(p, raw_len);
    tb_put(p, stored, stored_len);
}

void tbp_image_end(tb_buf *p, uint32_t device, uint32_t seq, uint64_t length,
                   uint64_t hash, uint64_t unit_count, uint64_t ts,
                   uint64_t config_length, uint64_t config_hash)
{
    tb_put_le32(p, device);
    tb_put_le32(p, seq);
    tb_put_le64(p, length);
    tb_put_le64(p, hash);
    tb_put_le64(p, unit_count);
    tb_put_le64(p, ts);
    tb_put_le64(p, config_length);
    tb_put_le64(p, config_hash);
}

void tbp_packet(tb_buf *p, uint32_t device, uint32_t seq, uint32_t idx,
                uint32_t flags, const void *data, size_t len)
{
    tb_put_le32(p, device);
    tb_put_le32(p, seq);
    tb_put_le32(p, idx);
    tb_put_le32(p, flags);
    tb_put_le64(p, 0);
    tb_put(p, data, len);
}

void tbp_precopy_info(tb_buf *p, uint32_t device, uint32_t flags,
                      uint64_t initial, uint64_t dirty, uint64_t ts)
{
    tb_put_le32(p, device);
    tb_put_le32(p, flags);
    tb_put_le64(p, initial);
    tb_put_le64(p, dirty);
    tb_put_le64(p, ts);
}

void tbp_state_change(tb_buf *p, uint32_t device, uint32_t from, uint32_t to,
                      uint64_t ts)
{
    tb_put_le32(p, device);
    tb_put_le32(p, from);
    tb_put_le32(p, to);
    tb_put_le32(p, 0);
    tb_put_le64(p, ts);
}

void tbp_stop_copy_size(tb_buf *p, uint32_t device, uint64_t bytes,
                        uint64_t ts)
{
    tb_put_le32(p, device);
    tb_put_le32(p, 0);
    tb_put_le64(p, bytes);
    tb_put_le64(p, ts);
}

void tbp_end(tb_buf *p, uint64_t record_count, uint64_t stream_bytes,
             uint64_t image_bytes, uint64_t packet_count,
             uint32_t device_count, uint32_t image_count, uint64_t ts)
{
    tb_put_le64(p, record_count);
    tb_put_le64(p, stream_bytes);
    tb_put_le64(p, image_bytes);
    tb_put_le64(p, packet_count);
    tb_put_le32(p, device_count);
    tb_put_le32(p, image_count);
    tb_put_le64(p, ts);
}

/* Append a record whose payload sits in a temporary buffer. */
static size_t rec_from(tb_stream *s, uint32_t flags, uint32_t tag, tb_buf *p)
{
    size_t off = tb_record(s, flags, tag, p->p, p->len);
    tb_buf_free(p);
    return off;
}

size_t tb_device_ex(tb_stream *s, uint32_t handle, uint32_t instance_id,
                    uint32_t kind, const char *idstr, const void *compat,
                    uint32_t compat_len)
{
    tb_buf p;
    tb_buf_init(&p);
    tbp_device(&p, handle, instance_id, kind, 0, idstr,
               (uint32_t)strlen(idstr), compat, compat_len);
    return rec_from(s, 0, 0x0001, &p);
}

size_t tb_device(tb_stream *s, uint32_t handle, const char *idstr,
                 uint32_t kind)
{
    return tb_device_ex(s, handle, 0, kind, idstr, NULL, 0);
}

size_t tb_image_begin(tb_stream *s, uint32_t device, uint32_t seq,
                      uint8_t phase, uint8_t transport, uint32_t flags,
                      uint64_t ts)
{
    tb_buf p;
    tb_buf_init(&p);
    tbp_image_begin(&p, device, seq, phase, transport, flags, ts);
    return rec_from(s, 0, 0x0002, &p);
}

static void zlib_compress(const void *data, size_t len, tb_buf *out)
{
    uLongf bound = compressBound((uLong)len);
    tb_buf_reset(out);
    buf_reserve(out, bound);
    if (compress2(out->p, &bound, data, (uLong)len, 6) != Z_OK) {
        fprintf(stderr, "test_util: compress2 failed\n");
        abort();
    }
    out->len = bound;
}

size_t tb_chunk(tb_stream *s, uint32_t device, uint32_t seq,
                uint8_t compression, const void *data, size_t len)
{
    tb_buf p, z;
    tb_buf_init(&p);
    tb_buf_init(&z);
    if (compression == 1) {
        zlib_compress(data, len, &z);
        tbp_chunk(&p, device, seq, 1, (uint32_t)len, z.p, z.len);
    } else {
        tbp_chunk(&p, device, seq, compression, (uint32_t)len, data, len);
    }
    tb_buf_free(&z);
    return rec_from(s, 0, 0x0003, &p);
}

size_t tb_chunk_zlib_rawlen(tb_stream *s, uint32_t device, uint32_t seq,
                            const void *data, size_t len, uint32_t raw_len)
{
    tb_buf p, z;
    tb_buf_init(&p);
    tb_buf_init(&z);
    zlib_compress(data, len, &z);
    tbp_chunk(&p, device, seq, 1, raw_len, z.p, z.len);
    tb_buf_free(&z);
    return rec_from(s, 0, 0x0003, &p);
}

size_t tb_image_end(tb_stream *s, uint32_t device, uint32_t seq,
                    uint64_t length, uint64_t hash, uint64_t unit_count,
                    uint64_t ts, uint64_t config_length,
                    uint64_t config_hash)
{
    tb_buf p;
    tb_buf_init(&p);
    tbp_image_end(&p, device, seq, length, hash, unit_count, ts,
                  config_length, config_hash);
    return rec_from(s, 0, 0x0004, &p);
}

size_t tb_packet(tb_stream *s, uint32_t device, uint32_t seq, uint32_t idx,
                 uint32_t flags, const void *data, size_t len)
{
    tb_buf p;
    tb_buf_init(&p);
    tbp_packet(&p, device, seq, idx, flags, data, len);
    return rec_from(s, 0, 0x0005, &p);
}

size_t tb_precopy_info(tb_stream *s, uint32_t device, uint32_t flags,
                       uint64_t initial, uint64_t dirty, uint64_t ts)
{
    tb_buf p;
    tb_buf_init(&p);
    tbp_precopy_info(&p, device, flags, initial, dirty, ts);
    return rec_from(s, 1, 0x0010, &p);
}

size_t tb_state_change(tb_stream *s, uint32_t device, uint32_t from,
                       uint32_t to, uint64_t ts)
{
    tb_buf p;
    tb_buf_init(&p);
    tbp_state_change(&p, device, from, to, ts);
    return rec_from(s, 1, 0x0011, &p);
}

size_t tb_stop_copy_size(tb_stream *s, uint32_t device, uint64_t bytes,
                         uint64_t ts)
{
    tb_buf p;
    tb_buf_init(&p);
    tbp_stop_copy_size(&p, device, bytes, ts);
    return rec_from(s, 1, 0x0012, &p);
}

size_t tb_end(tb_stream *s, uint64_t record_count, uint64_t stream_bytes,
              uint64_t image_bytes, uint64_t packet_count,
              uint32_t device_count, uint32_t image_count, uint64_t ts)
{
    tb_buf p;
    tb_buf_init(&p);
    tbp_end(&p, record_count, stream_bytes, image_bytes, packet_count,
            device_count, image_count, ts);
    return rec_from(s, 0, 0x00FF, &p);
}

size_t tb_end_auto(tb_stream *s, uint64_t ts)
{
    return tb_end(s, s->record_count, s->b.len, s->image_bytes,
                  s->packet_count, s->device_count, s->image_count, ts);
}

void tb_chunk_image(tb_stream *s, uint32_t device, uint32_t seq,
                    uint8_t phase, const void *data, size_t len,
                    size_t chunk_size, uint8_t compression)
{
    const uint8_t *d = data;
    uint64_t units = 0;
    tb_image_begin(s, device, seq, phase, 0, 0, 1000 + seq);
    for (size_t off = 0; off < len; off += chunk_size) {
        size_t n = len - off < chunk_size ? len - off : chunk_size;
        tb_chunk(s, device, seq, compression, d + off, n);
        units++;
    }
    tb_image_end(s, device, seq, len,
                 s->major >= 2 ? tb_units_hash(data, len, chunk_size)
                               : tb_hash(data, len),
                 units, 2000 + seq, 0, 0);
}

/* ---- results ------------------------------------------------------------ */
void tb_result_free(tb_result *r)
{
    for (size_t i = 0; i < r->n_events; i++) {
        if (r->events[i].kind == MS_EV_DEVICE) {
            free((void *)r->events[i].u.device.idstr);
            free((void *)r->events[i].u.device.compat);
        }
    }
    free(r->events);
    for (size_t i = 0; i < r->n_images; i++) {
        tb_buf_free(&r->images[i].data);
        tb_buf_free(&r->images[i].pkt);
        tb_buf_free(&r->images[i].config);
    }
    free(r->images);
    memset(r, 0, sizeof *r);
}

tb_image *tb_result_image(tb_result *r, uint32_t device, uint32_t seq)
{
    for (size_t i = 0; i < r->n_images; i++)
        if (r->images[i].device == device && r->images[i].seq == seq)
            return &r->images[i];
    return NULL;
}

static tb_image *image_get(tb_result *r, uint32_t device, uint32_t seq)
{
    tb_image *im = tb_result_image(r, device, seq);
    if (im)
        return im;
    if (r->n_images == r->cap_images) {
        r->cap_images = r->cap_images ? 2 * r->cap_images : 8;
        r->images = xrealloc(r->images, r->cap_images * sizeof *r->images);
    }
    im = &r->images[r->n_images++];
    memset(im, 0, sizeof *im);
    im->device = device;
    im->seq = seq;
    return im;
}

size_t tb_result_count(const tb_result *r, ms_event_kind kind)
{
    size_t n = 0;
    if (kind == MS_EV_DATA)
        return r->n_data_events;
    for (size_t i = 0; i < r->n_events; i++)
        if (r->events[i].kind == kind)
            n++;
    return n;
}

const ms_event *tb_result_find(const tb_result *r, ms_event_kind kind,
                               size_t nth)
{
    for (size_t i = 0; i < r->n_events; i++)
        if (r->events[i].kind == kind && nth-- == 0)
            return &r->events[i];
    return NULL;
}

static void *dup_bytes(const void *p, size_t n, int nul)
{
    uint8_t *q = xrealloc(NULL, n + 1);
    if (n && p)
        memcpy(q, p, n);
    if (nul)
        q[n] = 0;
    return q;
}

/* from_set: the event came from ms_set_next. */
static void collect(tb_result *r, const ms_event *ev, int from_set,
                    uint32_t slot)
{
    if (ev->kind == MS_EV_DATA) {
        const ms_data_info *d = &ev->u.data;
        tb_image *im = image_get(r, d->device, d->seq);
        r->n_data_events++;
        if (from_set) {
            if (!d->config && d->image_offset != im->data.len)
                r->data_offset_errors++;
            tb_put(d->config ? &im->config : &im->data, d->data, d->size);
        } else {
            if (!d->zero_copy)
                r->all_data_zero_copy = 0;
            if (!d->in_packet && d->image_offset != im->data.len)
                r->data_offset_errors++;
            tb_put(d->in_packet ? &im->pkt : &im->data, d->data, d->size);
        }
        return;
    }
    if (r->n_events == r->cap_events) {
        r->cap_events = r->cap_events ? 2 * r->cap_events : 32;
        r->events = xrealloc(r->events, r->cap_events * sizeof *r->events);
    }
    ms_event *e = &r->events[r->n_events++];
    *e = *ev;
    if (!from_set)
        e->channel = slot;
    if (ev->kind == MS_EV_DEVICE) {
        e->u.device.idstr = dup_bytes(ev->u.device.idstr,
                                      ev->u.device.idstr_len, 1);
        e->u.device.compat = dup_bytes(ev->u.device.compat,
                                       ev->u.device.compat_len, 0);
    }
    if (ev->kind == MS_EV_IMAGE_END) {
        tb_image *im = image_get(r, ev->u.image.device, ev->u.image.seq);
        im->ended = 1;
        im->end = ev->u.image;
    }
    if (ev->kind == MS_EV_IMAGE_ASSEMBLED) {
        tb_image *im = image_get(r, ev->u.image.device, ev->u.image.seq);
        im->assembled = 1;
        im->asm_info = ev->u.image;
    }
}

/* ---- reader driver ------------------------------------------------------ */
static int read_impl(const uint8_t *p, size_t len, const ms_options *opt,
                     size_t slice, uint64_t seed, size_t max_slice,
                     tb_result *res)
{
    memset(res, 0, sizeof *res);
    res->all_data_zero_copy = 1;
    ms_reader *r = ms_reader_create(opt);
    if (!r) {
        res->rc = -1;
        res->err.code = MS_ERR_NO_MEMORY;
        snprintf(res->err.detail, sizeof res->err.detail,
                 "ms_reader_create returned NULL");
        return -1;
    }
    int stable = opt && opt->input_stable;
    uint64_t st = seed;
    size_t pos = 0;
    int failed = 0;
    while (pos < len && !failed) {
        size_t n;
        if (seed)
            n = 1 + (size_t)(tb_rand(&st) % max_slice);
        else
            n = slice ? slice : len;
        if (n > len - pos)
            n = len - pos;
        uint8_t *copy = NULL;
        const uint8_t *sl = p + pos;
        if (!stable) {
            copy = xrealloc(NULL, n);
            memcpy(copy, p + pos, n);
            sl = copy;
        }
        if (ms_reader_input(r, sl, n) != 0) {
            failed = 1;
        } else {
            for (;;) {
                ms_event ev;
                int k = ms_reader_next(r, &ev);
                if (k == MS_NEXT_EVENT) {
                    collect(res, &ev, 0, 0);
                    continue;
                }
                if (k != MS_NEXT_INPUT)
                    failed = 1;
                break;
            }
        }
        if (copy) {
            memset(copy, 0xA5, n); /* the reader must not keep it */
            free(copy);
        }
        pos += n;
        res->bytes_fed = pos;
    }
    if (!failed && ms_reader_finish(r) != 0) {
        failed = 1;
        res->failed_in_finish = 1;
    }
    if (failed) {
        const ms_error_info *e = ms_reader_error(r);
        if (e)
            res->err = *e;
        if (res->err.code == MS_ERR_OK) {
            res->err.code = MS_ERR_USAGE;
            snprintf(res->err.detail, sizeof res->err.detail,
                     "(test) reader failed but reports no error");
        }
    }
    ms_reader_free(r);
    res->rc = failed ? -1 : 0;
    return res->rc;
}

int tb_read(const uint8_t *p, size_t len, const ms_options *opt, size_t slice,
            tb_result *res)
{
    return read_impl(p, len, opt, slice, 0, 0, res);
}

int tb_read_all(const uint8_t *p, size_t len, const ms_options *opt,
                tb_result *res)
{
    return read_impl(p, len, opt, 0, 0, 0, res);
}

int tb_read_bytewise(const uint8_t *p, size_t len, const ms_options *opt,
                     tb_result *res)
{
    return read_impl(p, len, opt, 1, 0, 0, res);
}

int tb_read_random(const uint8_t *p, size_t len, const ms_options *opt,
                   uint64_t seed, size_t max_slice, tb_result *res)
{
    return read_impl(p, len, opt, 0, seed ? seed : 1,
                     max_slice ? max_slice : 1, res);
}

int tb_verify(const uint8_t *p, size_t len, const ms_options *opt,
              ms_error_info *err)
{
    tb_result res;
    int rc = tb_read_all(p, len, opt, &res);
    if (err)
        *err = res.err;
    tb_result_free(&res);
    return rc;
}

#define WHY(...)                                                              \
    do {                                                                      \
        if (why)                                                              \
            snprintf(why, why_len, __VA_ARGS__);                              \
        return 0;                                                             \
    } while (0)

static int event_equal(const ms_event *a, const ms_event *b, char *why,
                       size_t why_len, size_t i)
{
    if (a->kind != b->kind)
        WHY("event %zu: kind %s vs %s", i, ms_event_kind_name(a->kind),
            ms_event_kind_name(b->kind));
    if (a->offset != b->offset || a->length != b->length)
        WHY("event %zu (%s): offset/length %llu/%llu vs %llu/%llu", i,
            ms_event_kind_name(a->kind), (unsigned long long)a->offset,
            (unsigned long long)a->length, (unsigned long long)b->offset,
            (unsigned long long)b->length);
    int same = 1;
    switch (a->kind) {
    case MS_EV_STREAM_HEADER: {
        const ms_stream_info *x = &a->u.stream, *y = &b->u.stream;
        same = x->format == y->format && x->version_major == y->version_major &&
               x->version_minor == y->version_minor &&
               memcmp(x->uuid, y->uuid, 16) == 0 &&
               x->channel_index == y->channel_index &&
               x->channel_count == y->channel_count &&
               x->created_ns == y->created_ns &&
               x->header_check == y->header_check;
        break;
    }
    case MS_EV_RECORD: {
        const ms_record_info *x = &a->u.record, *y = &b->u.record;
        same = x->tag == y->tag && x->flags == y->flags &&
               x->size == y->size && x->known == y->known;
        break;
    }
    case MS_EV_DEVICE: {
        const ms_device_info *x = &a->u.device, *y = &b->u.device;
        same = x->handle == y->handle && x->instance_id == y->instance_id &&
               x->payload_kind == y->payload_kind && x->flags == y->flags &&
               x->idstr_len == y->idstr_len &&
               x->compat_len == y->compat_len &&
               memcmp(x->idstr, y->idstr, x->idstr_len) == 0 &&
               (x->compat_len == 0 ||
                memcmp(x->compat, y->compat, x->compat_len) == 0);
        break;
    }
    case MS_EV_IMAGE_BEGIN:
    case MS_EV_IMAGE_END:
    case MS_EV_IMAGE_ASSEMBLED: {
        const ms_image_info *x = &a->u.image, *y = &b->u.image;
        same = x->device == y->device && x->seq == y->seq &&
               x->phase == y->phase && x->transport == y->transport &&
               x->flags == y->flags && x->timestamp_ns == y->timestamp_ns &&
               x->length == y->length && x->hash == y->hash &&
               x->unit_count == y->unit_count &&
               x->config_length == y->config_length &&
               x->config_hash == y->config_hash;
        break;
    }
    case MS_EV_CHUNK: {
        const ms_chunk_info *x = &a->u.chunk, *y = &b->u.chunk;
        same = x->device == y->device && x->seq == y->seq &&
               x->compression == y->compression && x->raw_len == y->raw_len &&
               x->stored_len == y->stored_len &&
               x->image_offset == y->image_offset;
        break;
    }
    case MS_EV_PACKET: {
        const ms_packet_info *x = &a->u.packet, *y = &b->u.packet;
        same = x->device == y->device && x->seq == y->seq &&
               x->idx == y->idx && x->flags == y->flags &&
               x->size == y->size && x->config == y->config;
        break;
    }
    case MS_EV_PRECOPY_INFO: {
        const ms_precopy_info *x = &a->u.precopy, *y = &b->u.precopy;
        same = x->device == y->device && x->flags == y->flags &&
               x->initial_bytes == y->initial_bytes &&
               x->dirty_bytes == y->dirty_bytes &&
               x->timestamp_ns == y->timestamp_ns;
        break;
    }
    case MS_EV_STATE_CHANGE: {
        const ms_state_info *x = &a->u.state, *y = &b->u.state;
        same = x->device == y->device && x->from == y->from &&
               x->to == y->to && x->timestamp_ns == y->timestamp_ns;
        break;
    }
    case MS_EV_STOP_COPY_SIZE: {
        const ms_stop_copy_info *x = &a->u.stop_copy, *y = &b->u.stop_copy;
        same = x->device == y->device && x->bytes == y->bytes &&
               x->timestamp_ns == y->timestamp_ns;
        break;
    }
    case MS_EV_END: {
        const ms_end_info *x = &a->u.end, *y = &b->u.end;
        same = x->record_count == y->record_count &&
               x->stream_bytes == y->stream_bytes &&
               x->image_bytes == y->image_bytes &&
               x->packet_count == y->packet_count &&
               x->device_count == y->device_count &&
               x->image_count == y->image_count &&
               x->timestamp_ns == y->timestamp_ns &&
               x->final_check == y->final_check;
        break;
    }
    default: break;
    }
    if (!same)
        WHY("event %zu (%s at %llu): fields differ", i,
            ms_event_kind_name(a->kind), (unsigned long long)a->offset);
    return 1;
}

int tb_events_equal(const tb_result *a, const tb_result *b, char *why,
                    size_t why_len)
{
    if (why && why_len)
        why[0] = 0;
    if (a->rc != b->rc)
        WHY("rc %d vs %d", a->rc, b->rc);
    if (a->rc != 0 && (a->err.code != b->err.code ||
                       a->err.offset != b->err.offset))
        WHY("error %s@%llu vs %s@%llu", ms_error_name(a->err.code),
            (unsigned long long)a->err.offset, ms_error_name(b->err.code),
            (unsigned long long)b->err.offset);
    size_t n = a->n_events < b->n_events ? a->n_events : b->n_events;
    for (size_t i = 0; i < n; i++)
        if (!event_equal(&a->events[i], &b->events[i], why, why_len, i))
            return 0;
    if (a->n_events != b->n_events)
        WHY("event count %zu vs %zu", a->n_events, b->n_events);
    if (a->data_offset_errors || b->data_offset_errors)
        WHY("DATA image_offset not contiguous (%zu / %zu events)",
            a->data_offset_errors, b->data_offset_errors);
    if (a->n_images != b->n_images)
        WHY("image count %zu vs %zu", a->n_images, b->n_images);
    for (size_t i = 0; i < a->n_images; i++) {
        const tb_image *x = &a->images[i];
        tb_image *y = tb_result_image((tb_result *)b, x->device, x->seq);
        if (!y)
            WHY("image %u/%u missing", x->device, x->seq);
        if (x->data.len != y->data.len ||
            (x->data.len && memcmp(x->data.p, y->data.p, x->data.len)))
            WHY("image %u/%u data differs", x->device, x->seq);
        if (x->pkt.len != y->pkt.len ||
            (x->pkt.len && memcmp(x->pkt.p, y->pkt.p, x->pkt.len)))
            WHY("image %u/%u packet data differs", x->device, x->seq);
    }
    return 1;
}

/* ---- set driver --------------------------------------------------------- */
static void set_fail(tb_result *res, const ms_set *s)
{
    const ms_error_info *e = ms_set_error(s);
    if (e)
        res->err = *e;
    res->err_from_set = 1;
    if (res->err.code == MS_ERR_OK) {
        res->err.code = MS_ERR_USAGE;
        snprintf(res->err.detail, sizeof res->err.detail,
                 "(test) set failed but reports no error");
    }
}

/* Drain ms_set_next; 0 or -1. */
static int drain_set(ms_set *s, tb_result *res)
{
    for (;;) {
        ms_event ev;
        int k = ms_set_next(s, &ev);
        if (k == MS_NEXT_EVENT) {
            collect(res, &ev, 1, ev.channel);
            continue;
        }
        if (k == MS_NEXT_INPUT)
            return 0;
        set_fail(res, s);
        return -1;
    }
}

int tb_run_set(const tb_buf *chans, size_t n, const ms_options *opt,
               size_t slice, uint64_t seed, tb_result *res)
{
    memset(res, 0, sizeof *res);
    res->all_data_zero_copy = 1;
    int stable = opt && opt->input_stable;
    ms_set *s = ms_set_create(opt);
    ms_reader **rd = calloc(n ? n : 1, sizeof *rd);
    size_t *pos = calloc(n ? n : 1, sizeof *pos);
    int *fin = calloc(n ? n : 1, sizeof *fin);
    int failed = 0;
    uint64_t st = seed;
    if (!s || !rd || !pos || !fin) {
        failed = 1;
        res->err.code = MS_ERR_NO_MEMORY;
        snprintf(res->err.detail, sizeof res->err.detail,
                 "(test) ms_set_create returned NULL");
        goto out;
    }
    for (size_t c = 0; c < n; c++) {
        rd[c] = ms_reader_create(opt);
        if (!rd[c]) {
            failed = 1;
            res->err.code = MS_ERR_NO_MEMORY;
            snprintf(res->err.detail, sizeof res->err.detail,
                     "(test) ms_reader_create returned NULL");
            goto out;
        }
    }
    size_t left = n, rr = 0;
    while (left && !failed) {
        /* pick a channel that is not finished */
        size_t c;
        if (seed) {
            size_t k = (size_t)(tb_rand(&st) % left);
            for (c = 0; c < n; c++)
                if (!fin[c] && k-- == 0)
                    break;
        } else {
            while (fin[rr % n])
                rr++;
            c = rr % n;
            rr++;
        }
        size_t len = chans[c].len;
        if (pos[c] < len) {
            size_t m;
            if (seed)
                m = 1 + (size_t)(tb_rand(&st) % (slice ? slice : 64));
            else
                m = slice ? slice : len;
            if (m > len - pos[c])
                m = len - pos[c];
            uint8_t *copy = NULL;
            const uint8_t *sl = chans[c].p + pos[c];
            if (!stable) {
                copy = xrealloc(NULL, m);
                memcpy(copy, sl, m);
                sl = copy;
            }
            int rfail = ms_reader_input(rd[c], sl, m) != 0;
            while (!rfail && !failed) {
                ms_event ev;
                int k = ms_reader_next(rd[c], &ev);
                if (k == MS_NEXT_INPUT)
                    break;
                if (k != MS_NEXT_EVENT) {
                    rfail = 1;
                    break;
                }
                collect(res, &ev, 0, (uint32_t)c);
                if (ms_set_observe(s, (uint32_t)c, &ev) != 0) {
                    set_fail(res, s);
                    failed = 1;
                    break;
                }
                if (drain_set(s, res) != 0)
                    failed = 1;
            }
            if (copy) {
                memset(copy, 0xA5, m);
                free(copy);
            }
            pos[c] += m;
            if (rfail && !failed) {
                failed = 1;
                res->err = *ms_reader_error(rd[c]);
                res->err.channel = (uint32_t)c;
                res->err.has_channel = 1;
            }
        } else {
            fin[c] = 1;
            left--;
            if (ms_reader_finish(rd[c]) != 0) {
                failed = 1;
                res->failed_in_finish = 1;
                res->err = *ms_reader_error(rd[c]);
                res->err.channel = (uint32_t)c;
                res->err.has_channel = 1;
            } else if (ms_set_channel_done(s, (uint32_t)c) != 0) {
                set_fail(res, s);
                failed = 1;
            } else if (drain_set(s, res) != 0) {
                failed = 1;
            }
        }
    }
    if (!failed) {
        if (ms_set_finish(s) != 0) {
            set_fail(res, s);
            failed = 1;
        } else if (drain_set(s, res) != 0) {
            failed = 1;
        }
    }
out:
    if (failed && res->err.code == MS_ERR_OK) {
        res->err.code = MS_ERR_USAGE;
        snprintf(res->err.detail, sizeof res->err.detail,
                 "(test) failure without an error code");
    }
    if (rd)
        for (size_t c = 0; c < n; c++)
            ms_reader_free(rd[c]);
    ms_set_free(s);
    free(rd);
    free(pos);
    free(fin);
    res->rc = failed ? -1 : 0;
    return res->rc;
}

int tb_run_set_streams(const tb_stream *chans, size_t n,
                       const ms_options *opt, size_t slice, uint64_t seed,
                       tb_result *res)
{
    tb_buf *b = calloc(n ? n : 1, sizeof *b);
    for (size_t i = 0; i < n; i++)
        b[i] = chans[i].b;
    int rc = tb_run_set(b, n, opt, slice, seed, res);
    free(b);
    return rc;
}

/* ---- writer driver ------------------------------------------------------ */
static int write_cb(void *opaque, const void *buf, size_t len)
{
    tb_put((tb_buf *)opaque, buf, len);
    return 0;
}

#define WCALL(expr)                                                           \
    do {                                                                      \
        if ((expr) != 0)                                                      \
            goto fail;                                                        \
    } while (0)

uint64_t tb_wimage_hash(const tb_workload *wl, const tb_wimage *im)
{
    if (wl->format_major == 1)
        return tb_hash(im->data, im->len);
    size_t piece = im->piece ? im->piece : (im->len ? im->len : 1);
    size_t unit = piece;
    size_t chunk = wl->chunk_size ? wl->chunk_size : (size_t)1 << 20;
    if (im->transport == MS_TRANSPORT_CHUNKS && chunk < piece) {
        /* pieces cut by the chunk size: hash piece by piece */
        XXH3_state_t *st = XXH3_createState();
        XXH3_64bits_reset(st);
        for (size_t off = 0; off < im->len; off += piece) {
            size_t n = im->len - off < piece ? im->len - off : piece;
            for (size_t k = 0; k < n; k += chunk) {
                uint8_t le[8];
                tb_set_le64(le, tb_hash(im->data + off + k,
                                        n - k < chunk ? n - k : chunk));
                XXH3_64bits_update(st, le, 8);
            }
        }
        uint64_t h = XXH3_64bits_digest(st);
        XXH3_freeState(st);
        return h;
    }
    return tb_units_hash(im->data, im->len, unit);
}

int tb_write_workload(const tb_workload *wl, tb_buf *out, ms_error_info *err)
{
    ms_writer_options wo;
    ms_writer_options_init(&wo);
    memcpy(wo.uuid, wl->uuid ? wl->uuid : tb_uuid_a, 16);
    wo.channel_count = wl->channels;
    wo.created_ns = wl->created_ns;
    if (wl->chunk_size)
        wo.chunk_size = wl->chunk_size;
    wo.compression_level = wl->compression;
    wo.format_major = wl->format_major;
    if (err)
        memset(err, 0, sizeof *err);
    ms_writer *w = ms_writer_create(&wo);
    if (!w) {
        if (err) {
            err->code = MS_ERR_NO_MEMORY;
            snprintf(err->detail, sizeof err->detail,
                     "(test) ms_writer_create returned NULL");
        }
        return -1;
    }
    uint64_t ts = 1000;
    for (uint32_t c = 0; c < wl->channels; c++)
        WCALL(ms_writer_open_channel(w, c, write_cb, &out[c]));
    for (size_t i = 0; i < wl->n_devs; i++) {
        const tb_wdevice *d = &wl->devs[i];
        WCALL(ms_writer_add_device(w, d->handle, d->idstr, d->instance_id,
                                   d->kind, d->compat, d->compat_len));
    }
    for (size_t i = 0; i < wl->n_imgs; i++) {
        const tb_wimage *im = &wl->imgs[i];
        uint32_t home = 0;
        for (size_t k = 0; k < wl->n_devs; k++)
            if (wl->devs[k].handle == im->device)
                home = wl->devs[k].home;
        if (im->extras) {
            WCALL(ms_writer_precopy_info(w, home, im->device, 0, im->len,
                                         im->len / 2, ts++));
            WCALL(ms_writer_state_change(w, home, im->device, 3, 7, ts++));
            WCALL(ms_writer_stop_copy_size(w, home, im->device, im->len,
                                           ts++));
        }
        WCALL(ms_writer_image_begin(w, home, im->device, im->phase,
                                    im->transport, 0, ts++));
        size_t piece = im->piece ? im->piece : (im->len ? im->len : 1);
        if (im->transport == MS_TRANSPORT_CHUNKS) {
            for (size_t off = 0; off < im->len; off += piece) {
                size_t n = im->len - off < piece ? im->len - off : piece;
                WCALL(ms_writer_image_data(w, im->device, im->data + off, n));
            }
        } else {
            uint32_t k = 0;
            for (size_t off = 0; off < im->len; off += piece, k++) {
                size_t n = im->len - off < piece ? im->len - off : piece;
                WCALL(ms_writer_image_packet(w, (home + k) % wl->channels,
                                             im->device, im->data + off, n,
                                             0));
            }
            WCALL(ms_writer_image_packet(w, (home + k) % wl->channels,
                                         im->device, im->config,
                                         im->config_len, 1));
        }
        WCALL(ms_writer_image_end(w, im->device, ts++));
    }
    for (uint32_t c = 0; c < wl->channels; c++)
        WCALL(ms_writer_close_channel(w, c, ts++));
    ms_writer_free(w);
    return 0;
fail:
    if (err) {
        const ms_error_info *e = ms_writer_error(w);
        if (e)
            *err = *e;
        if (err->code == MS_ERR_OK) {
            err->code = MS_ERR_USAGE;
            snprintf(err->detail, sizeof err->detail,
                     "(test) writer failed without an error code");
        }
    }
    ms_writer_free(w);
    return -1;
}

/* ---- assertion helpers -------------------------------------------------- */
void tb_print_err(const char *label, const ms_error_info *e)
{
    char ch[32] = "";
    if (e->has_channel)
        snprintf(ch, sizeof ch, " (channel %u)", e->channel);
    fprintf(stderr, "  [%s] error %s (%d) at offset %llu%s: %s\n",
            label ? label : "", ms_error_name(e->code), (int)e->code,
            (unsigned long long)e->offset, ch, e->detail);
}

int tb_detail_has_number(const char *detail, uint64_t v)
{
    char num[32];
    snprintf(num, sizeof num, "%llu", (unsigned long long)v);
    size_t n = strlen(num);
    for (const char *p = detail; (p = strstr(p, num)) != NULL; p++) {
        int before = p > detail && p[-1] >= '0' && p[-1] <= '9';
        int after = p[n] >= '0' && p[n] <= '9';
        if (!before && !after)
            return 1;
    }
    return 0;
}

/* ---- QEMU main stream ("QEVM") hand builder ------------------------------ */
void tb_set_be32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (24 - 8 * i));
}

void tb_set_be64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (56 - 8 * i));
}

void tb_put_be16(tb_buf *b, uint16_t v)
{
    uint8_t t[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    tb_put(b, t, 2);
}

void tb_put_be32(tb_buf *b, uint32_t v)
{
    uint8_t t[4];
    tb_set_be32(t, v);
    tb_put(b, t, 4);
}

void tb_put_be64(tb_buf *b, uint64_t v)
{
    uint8_t t[8];
    tb_set_be64(t, v);
    tb_put(b, t, 8);
}

size_t tq_counted(tb_buf *b, const char *s)
{
    size_t at = b->len, n = strlen(s);
    if (n > 255) {
        fprintf(stderr, "tq_counted: \"%s\" is longer than 255 bytes\n", s);
        abort();
    }
    tb_put_u8(b, (uint8_t)n);
    tb_put(b, s, n);
    return at;
}

size_t tq_header_ex(tb_buf *b, uint32_t magic, uint32_t version)
{
    size_t at = b->len;
    tb_put_be32(b, magic);
    tb_put_be32(b, version);
    return at;
}

size_t tq_header(tb_buf *b) { return tq_header_ex(b, TQ_MAGIC, TQ_VERSION); }

size_t tq_subsection(tb_buf *b, const char *name, uint32_t version)
{
    size_t at = b->len;
    tb_put_u8(b, TQ_SUBSECTION);
    tq_counted(b, name);
    tb_put_be32(b, version);
    return at;
}

size_t tq_config(tb_buf *b, const tq_cfg *c)
{
    size_t at = b->len;
    const char *machine = c && c->machine ? c->machine : "pc-i440fx-7.2";
    tb_put_u8(b, TQ_CONFIGURATION);
    tb_put_be32(b, (uint32_t)strlen(machine));
    tb_put(b, machine, strlen(machine));
    if (!c)
        return at;
    if (c->has_page_bits) {
        tq_subsection(b, "configuration/target-page-bits", 1);
        tb_put_be32(b, c->page_bits);
    }
    if (c->has_caps) {
        tq_subsection(b, "configuration/capabilities", 1);
        tb_put_be32(b, c->n_caps);
        for (uint32_t i = 0; i < c->n_caps; i++)
            tq_counted(b, c->caps[i]);
    }
    if (c->uuid) {
        tq_subsection(b, "configuration/uuid", 1);
        tb_put(b, c->uuid, 16);
    }
    return at;
}

size_t tq_config_machine(tb_buf *b, const char *machine)
{
    tq_cfg c = {.machine = machine};
    return tq_config(b, &c);
}

size_t tq_begin(tb_buf *b)
{
    size_t at = tq_header(b);
    tq_config(b, NULL);
    return at;
}

size_t tq_section_start(tb_buf *b, uint8_t type, uint32_t section_id,
                        const char *idstr, uint32_t instance_id,
                        uint32_t version_id)
{
    size_t at = b->len;
    tb_put_u8(b, type);
    tb_put_be32(b, section_id);
    tq_counted(b, idstr);
    tb_put_be32(b, instance_id);
    tb_put_be32(b, version_id);
    return at;
}

size_t tq_section_part(tb_buf *b, uint8_t type, uint32_t section_id)
{
    size_t at = b->len;
    tb_put_u8(b, type);
    tb_put_be32(b, section_id);
    return at;
}

size_t tq_footer(tb_buf *b, uint32_t section_id)
{
    size_t at = b->len;
    tb_put_u8(b, TQ_FOOTER);
    tb_put_be32(b, section_id);
    return at;
}

size_t tq_ram_end(tb_buf *b, uint32_t section_id)
{
    size_t at = tq_section_part(b, TQ_END, section_id);
    tq_ram_eos(b);
    tq_footer(b, section_id);
    return at;
}

size_t tq_eof(tb_buf *b)
{
    size_t at = b->len;
    tb_put_u8(b, TQ_EOF);
    return at;
}

size_t tq_vmdesc(tb_buf *b, const char *json, size_t len)
{
    size_t at = b->len;
    tb_put_u8(b, TQ_VMDESC);
    tb_put_be32(b, (uint32_t)len);
    tb_put(b, json, len);
    return at;
}

size_t tq_command(tb_buf *b, uint16_t cmd, const void *args, uint16_t len)
{
    size_t at = b->len;
    tb_put_u8(b, TQ_COMMAND);
    tb_put_be16(b, cmd);
    tb_put_be16(b, len);
    if (len && args)
        tb_put(b, args, len);
    else
        tb_put_zeros(b, len);
    return at;
}

size_t tq_cmd_ping(tb_buf *b, uint32_t value)
{
    uint8_t a[4];
    tb_set_be32(a, value);
    return tq_command(b, TQ_CMD_PING, a, 4);
}

size_t tq_cmd_packaged(tb_buf *b, const void *pkg, uint32_t pkg_len)
{
    uint8_t a[4];
    tb_set_be32(a, pkg_len);
    size_t at = tq_command(b, TQ_CMD_PACKAGED, a, 4);
    tb_put(b, pkg, pkg_len);
    return at;
}

size_t tq_cmd_postcopy_advise(tb_buf *b, uint64_t page_summary,
                              uint64_t target_page_size)
{
    uint8_t a[16];
    tb_set_be64(a, page_summary);
    tb_set_be64(a + 8, target_page_size);
    return tq_command(b, TQ_CMD_POSTCOPY_ADVISE, a, 16);
}

size_t tq_cmd_ram_discard(tb_buf *b, const char *block,
                          const uint64_t *ranges, size_t n)
{
    tb_buf a;
    tb_buf_init(&a);
    tb_put_u8(&a, 0); /* version */
    tq_counted(&a, block);
    tb_put_u8(&a, 0);
    for (size_t i = 0; i < 2 * n; i++)
        tb_put_be64(&a, ranges[i]);
    size_t at = tq_command(b, TQ_CMD_POSTCOPY_RAM_DISCARD, a.p,
                           (uint16_t)a.len);
    tb_buf_free(&a);
    return at;
}

size_t tq_cmd_recv_bitmap(tb_buf *b, const char *block)
{
    tb_buf a;
    tb_buf_init(&a);
    tq_counted(&a, block);
    size_t at = tq_command(b, TQ_CMD_RECV_BITMAP, a.p, (uint16_t)a.len);
    tb_buf_free(&a);
    return at;
}

size_t tq_ram_raw(tb_buf *b, uint64_t v)
{
    size_t at = b->len;
    tb_put_be64(b, v);
    return at;
}

size_t tq_ram_mem_size(tb_buf *b, uint64_t total)
{
    return tq_ram_raw(b, total | TQ_RAM_MEM_SIZE);
}

size_t tq_ram_block_entry(tb_buf *b, const char *name, uint64_t used_length)
{
    size_t at = tq_counted(b, name);
    tb_put_be64(b, used_length);
    return at;
}

size_t tq_ram_block_list(tb_buf *b, const char *const *names,
                         const uint64_t *lengths, size_t n)
{
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += lengths[i];
    size_t at = tq_ram_mem_size(b, total);
    for (size_t i = 0; i < n; i++)
        tq_ram_block_entry(b, names[i], lengths[i]);
    return at;
}

/* be64 offset|flags, then the block name unless CONTINUE. */
static size_t ram_head(tb_buf *b, uint64_t offset, uint32_t flags,
                       const char *block)
{
    size_t at = tq_ram_raw(b, offset | flags | (block ? 0 : TQ_RAM_CONTINUE));
    if (block)
        tq_counted(b, block);
    return at;
}

size_t tq_ram_zero(tb_buf *b, uint64_t offset, const char *block,
                   uint8_t fill)
{
    size_t at = ram_head(b, offset, TQ_RAM_ZERO, block);
    tb_put_u8(b, fill);
    return at;
}

size_t tq_ram_page(tb_buf *b, uint64_t offset, const char *block,
                   const uint8_t *page, size_t page_size)
{
    size_t at = ram_head(b, offset, TQ_RAM_PAGE, block);
    tb_put(b, page, page_size);
    return at;
}

size_t tq_ram_xbzrle(tb_buf *b, uint64_t offset, const char *block,
                     uint8_t encoding, const uint8_t *data, uint16_t len)
{
    size_t at = ram_head(b, offset, TQ_RAM_XBZRLE, block);
    tb_put_u8(b, encoding);
    tb_put_be16(b, len);
    tb_put(b, data, len);
    return at;
}

size_t tq_ram_compress_raw(tb_buf *b, uint64_t offset, const char *block,
                           const void *zdata, uint32_t zlen)
{
    size_t at = ram_head(b, offset, TQ_RAM_COMPRESS_PAGE, block);
    tb_put_be32(b, zlen);
    tb_put(b, zdata, zlen);
    return at;
}

size_t tq_ram_compress(tb_buf *b, uint64_t offset, const char *block,
                       const uint8_t *page, size_t page_size)
{
    uLongf zlen = compressBound((uLong)page_size);
    uint8_t *z = xrealloc(NULL, zlen);
    if (compress2(z, &zlen, page, (uLong)page_size, 6) != Z_OK) {
        fprintf(stderr, "tq_ram_compress: compress2 failed\n");
        abort();
    }
    size_t at = tq_ram_compress_raw(b, offset, block, z, (uint32_t)zlen);
    free(z);
    return at;
}

size_t tq_ram_eos(tb_buf *b) { return tq_ram_raw(b, TQ_RAM_EOS); }
size_t tq_ram_flush(tb_buf *b) { return tq_ram_raw(b, TQ_RAM_MULTIFD_FLUSH); }

size_t tq_vfio_marker(tb_buf *b, unsigned n)
{
    return tq_ram_raw(b, TQ_VFIO_BASE + n);
}

size_t tq_vfio_data(tb_buf *b, const void *data, uint64_t len)
{
    size_t at = tq_vfio_marker(b, TQ_VFIO_DATA_STATE);
    tb_put_be64(b, len);
    tb_put(b, data, (size_t)len);
    return at;
}

size_t tq_libvirt_header(tb_buf *b, const char magic[16], uint32_t version,
                         uint32_t xml_len, uint32_t was_running,
                         uint32_t compressed, uint32_t cookie_off)
{
    size_t at = b->len;
    tb_put(b, magic, 16);
    tb_put_le32(b, version);
    tb_put_le32(b, xml_len);
    tb_put_le32(b, was_running);
    tb_put_le32(b, compressed);
    tb_put_le32(b, cookie_off);
    tb_put_zeros(b, 14 * 4);
    return at;
}

/* ---- QEMU multifd channel hand builder ---------------------------------- */
#include <zstd.h>

size_t tm_init_ex(tb_buf *b, uint32_t magic, uint32_t version,
                  const uint8_t *uuid, uint8_t id)
{
    size_t at = b->len;
    static const uint8_t zero_uuid[16];
    tb_put_be32(b, magic);
    tb_put_be32(b, version);
    tb_put(b, uuid ? uuid : zero_uuid, 16);
    tb_put_u8(b, id);
    tb_put_zeros(b, 7 + 32);
    return at;
}

size_t tm_init(tb_buf *b, const uint8_t *uuid, uint8_t id)
{
    return tm_init_ex(b, TM_MAGIC, TM_VERSION, uuid, id);
}

size_t tm_ram_ex(tb_buf *b, const tm_ram *p)
{
    size_t at = b->len;
    uint32_t alloc = p->pages_alloc ? p->pages_alloc : TM_PACKET_DATA / 4096;
    uint32_t slots = p->slots ? p->slots : alloc;
    tb_put_be32(b, p->magic ? p->magic : TM_MAGIC);
    tb_put_be32(b, p->version ? p->version : TM_VERSION);
    tb_put_be32(b, p->flags);
    tb_put_be32(b, alloc);
    tb_put_be32(b, p->normal);
    tb_put_be32(b, p->next_packet_size);
    tb_put_be64(b, p->packet_num);
    tb_put_be32(b, p->zero);
    tb_put_zeros(b, 28);
    uint8_t name[256] = {0};
    if (p->block) {
        size_t n = strlen(p->block);
        memcpy(name, p->block, n < 255 ? n : 255);
    }
    tb_put(b, name, sizeof name);
    for (uint32_t i = 0; i < slots; i++)
        tb_put_be64(b, p->offsets && i < p->normal + p->zero ? p->offsets[i]
                                                              : 0);
    if (p->payload_len)
        tb_put(b, p->payload, p->payload_len);
    return at;
}

size_t tm_ram_raw(tb_buf *b, uint32_t flags, uint64_t packet_num,
                  const char *block, const uint64_t *offsets, uint32_t normal,
                  uint32_t zero, const uint8_t *pages)
{
    tm_ram p = {.flags = flags,
                .normal = normal,
                .zero = zero,
                .next_packet_size = normal * 4096u,
                .packet_num = packet_num,
                .block = block,
                .offsets = offsets,
                .payload = pages,
                .payload_len = (size_t)normal * 4096};
    return tm_ram_ex(b, &p);
}

size_t tm_ram_empty(tb_buf *b, uint32_t flags, uint64_t packet_num,
                    uint32_t next_packet_size, const char *block)
{
    tm_ram p = {.flags = flags,
                .next_packet_size = next_packet_size,
                .packet_num = packet_num,
                .block = block};
    return tm_ram_ex(b, &p);
}

struct tm_comp {
    uint32_t method;
    z_stream zs;
    ZSTD_CStream *zc;
};

tm_comp *tm_comp_new(uint32_t method, int level)
{
    tm_comp *c = xrealloc(NULL, sizeof *c);
    memset(c, 0, sizeof *c);
    c->method = method;
    if (method == TM_ZLIB) {
        if (deflateInit(&c->zs, level) != Z_OK)
            abort();
    } else {
        c->zc = ZSTD_createCStream();
        if (!c->zc || ZSTD_isError(ZSTD_CCtx_setParameter(
                          c->zc, ZSTD_c_compressionLevel, level)))
            abort();
    }
    return c;
}

void tm_comp_free(tm_comp *c)
{
    if (!c)
        return;
    if (c->method == TM_ZLIB)
        deflateEnd(&c->zs);
    else
        ZSTD_freeCStream(c->zc);
    free(c);
}

void tm_comp_pages(tm_comp *c, const uint8_t *pages, size_t n,
                   size_t page_size, tb_buf *out)
{
    tb_buf_reset(out);
    uint8_t tmp[16384];
    for (size_t i = 0; i < n; i++) {
        int last = i + 1 == n;
        const uint8_t *pg = pages + i * page_size;
        if (c->method == TM_ZLIB) {
            c->zs.next_in = (Bytef *)(uintptr_t)pg;
            c->zs.avail_in = (uInt)page_size;
            int flush = last ? Z_SYNC_FLUSH : Z_NO_FLUSH;
            do {
                c->zs.next_out = tmp;
                c->zs.avail_out = sizeof tmp;
                int rc = deflate(&c->zs, flush);
                if (rc != Z_OK && rc != Z_BUF_ERROR)
                    abort();
                tb_put(out, tmp, sizeof tmp - c->zs.avail_out);
            } while (c->zs.avail_in || c->zs.avail_out == 0);
        } else {
            ZSTD_inBuffer in = {pg, page_size, 0};
            ZSTD_EndDirective mode = last ? ZSTD_e_flush : ZSTD_e_continue;
            size_t left;
            do {
                ZSTD_outBuffer o = {tmp, sizeof tmp, 0};
                left = ZSTD_compressStream2(c->zc, &o, &in, mode);
                if (ZSTD_isError(left))
                    abort();
                tb_put(out, tmp, o.pos);
            } while (in.pos < in.size || (last && left));
        }
    }
}

size_t tm_ram_comp(tb_buf *b, tm_comp *c, uint32_t flags,
                   uint64_t packet_num, const char *block,
                   const uint64_t *offsets, uint32_t normal, uint32_t zero,
                   const uint8_t *pages)
{
    tb_buf z;
    tb_buf_init(&z);
    if (normal)
        tm_comp_pages(c, pages, normal, 4096, &z);
    tm_ram p = {.flags = flags | (normal ? c->method : 0),
                .normal = normal,
                .zero = zero,
                .next_packet_size = (uint32_t)z.len,
                .packet_num = packet_num,
                .block = block,
                .offsets = offsets,
                .payload = z.p,
                .payload_len = z.len};
    size_t at = tm_ram_ex(b, &p);
    tb_buf_free(&z);
    return at;
}

size_t tm_device(tb_buf *b, const char *idstr, uint32_t instance_id,
                 uint32_t idx, uint32_t buf_flags, const void *data,
                 size_t len)
{
    size_t at = b->len;
    tb_put_be32(b, TM_MAGIC);
    tb_put_be32(b, TM_VERSION);
    tb_put_be32(b, TM_DEVICE_STATE);
    uint8_t name[256] = {0};
    size_t n = strlen(idstr);
    memcpy(name, idstr, n < 255 ? n : 255);
    tb_put(b, name, sizeof name);
    tb_put_be32(b, instance_id);
    tb_put_be32(b, (uint32_t)(TM_VFIO_HDR + len));
    tb_put_be32(b, 0); /* VFIO buffer version */
    tb_put_be32(b, idx);
    tb_put_be32(b, buf_flags);
    if (len)
        tb_put(b, data, len);
    return at;
}

void tm_config_bytes(tb_buf *out, size_t n, uint64_t seed)
{
    tb_buf_reset(out);
    tb_put_be64(out, 0xffffffffef100002ull); /* DEV_CONFIG_STATE */
    size_t at = out->len;
    tb_put_zeros(out, n);
    tb_fill_random(out->p + at, n, seed);
    tb_put_be64(out, 0xffffffffef100001ull); /* END_OF_STATE */
}

/* ---- peak memory of a run ------------------------------------------------ */
#include <sys/wait.h>
#include <unistd.h>

/* A "Vm...:  N kB" line of /proc/self/status, in KiB; -1 if absent. */
static long proc_status_kib(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    size_t klen = strlen(key);
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, key, klen) && line[klen] == ':')
            v = strtol(line + klen + 1, NULL, 10);
    if (f)
        fclose(f);
    return v;
}

long tb_peak_rss_kib(tb_rss_fn fn, void *arg, ms_error_info *err,
                     uint64_t *extra)
{
    struct {
        long kib;
        uint64_t extra;
        ms_error_info err;
    } out;
    memset(&out, 0, sizeof out);
    int fd[2];
    if (pipe(fd) < 0)
        return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        close(fd[0]);
        FILE *c = fopen("/proc/self/clear_refs", "w");
        int reset = c && fputs("5", c) >= 0;
        if (c && fclose(c) != 0)
            reset = 0;
        long base = proc_status_kib("VmRSS");
        if (!reset) /* the mark could not be reset: measure from it */
            base = proc_status_kib("VmHWM");
        out.err = fn(arg, &out.extra);
        out.kib = proc_status_kib("VmHWM") - base;
        if (base < 0)
            out.kib = -1;
        ssize_t w = write(fd[1], &out, sizeof out);
        _exit(w == (ssize_t)sizeof out ? 0 : 1);
    }
    close(fd[1]);
    ssize_t got = read(fd[0], &out, sizeof out);
    close(fd[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    if (got != (ssize_t)sizeof out || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0)
        return -1;
    if (err)
        *err = out.err;
    if (extra)
        *extra = out.extra;
    return out.kib;
}

/* Each block carries its size in front (16 bytes keep malloc's alignment). */
static void *count_alloc(void *o, size_t size)
{
    tb_count_alloc *c = o;
    if (size > SIZE_MAX - 16)
        return NULL;
    uint8_t *p = malloc(size + 16);
    if (!p)
        return NULL;
    memcpy(p, &size, sizeof size);
    c->live += size;
    if (c->live > c->peak)
        c->peak = c->live;
    return p + 16;
}

static void count_free(void *o, void *ptr)
{
    tb_count_alloc *c = o;
    if (!ptr)
        return;
    uint8_t *p = (uint8_t *)ptr - 16;
    size_t size;
    memcpy(&size, p, sizeof size);
    c->live -= size;
    free(p);
}

ms_allocator tb_count_allocator(tb_count_alloc *c)
{
    c->live = c->peak = 0;
    return (ms_allocator){count_alloc, count_free, c};
}

ms_error_info tb_verify_counting(const uint8_t *p, size_t len, ms_options *opt,
                                 uint64_t *peak_alloc)
{
    tb_count_alloc count;
    opt->allocator = tb_count_allocator(&count);
    ms_error_info e;
    memset(&e, 0, sizeof e);
    tb_verify(p, len, opt, &e);
    *peak_alloc = count.peak;
    return e;
}
