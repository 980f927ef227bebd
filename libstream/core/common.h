/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* Shared internals: endian loads/stores, bounded allocation, error setting,
 * hashing.  Each of these lives here and only here. */
#ifndef MS_COMMON_H
#define MS_COMMON_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "migstream.h"

#define MS_MIN(a, b) ((a) < (b) ? (a) : (b))
#define MS_MAX(a, b) ((a) > (b) ? (a) : (b))

/* ---- endian loads and stores (unaligned safe) ------------------------- */
static inline uint16_t ms_le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}
static inline uint32_t ms_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}
static inline uint64_t ms_le64(const uint8_t *p)
{
    return (uint64_t)ms_le32(p) | ((uint64_t)ms_le32(p + 4) << 32);
}
static inline uint16_t ms_be16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}
static inline uint32_t ms_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
           ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}
static inline uint64_t ms_be64(const uint8_t *p)
{
    return ((uint64_t)ms_be32(p) << 32) | (uint64_t)ms_be32(p + 4);
}
static inline void ms_put_le16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static inline void ms_put_le32(uint8_t *p, uint32_t v)
{
    ms_put_le16(p, (uint16_t)v);
    ms_put_le16(p + 2, (uint16_t)(v >> 16));
}
static inline void ms_put_le64(uint8_t *p, uint64_t v)
{
    ms_put_le32(p, (uint32_t)v);
    ms_put_le32(p + 4, (uint32_t)(v >> 32));
}

/* ---- bounds ------------------------------------------------------------
 * A cursor over a complete, bounded buffer (a record payload already
 * gathered).  Every read goes through ms_cur_need, so no caller does its
 * own arithmetic on lengths. */
typedef struct ms_cursor {
    const uint8_t *p;
    size_t len, pos;
} ms_cursor;

static inline int ms_cur_need(const ms_cursor *c, size_t n)
{
    return n <= c->len - c->pos;
}
static inline uint32_t ms_cur_le32(ms_cursor *c)
{
    uint32_t v = ms_le32(c->p + c->pos);
    c->pos += 4;
    return v;
}
static inline uint64_t ms_cur_le64(ms_cursor *c)
{
    uint64_t v = ms_le64(c->p + c->pos);
    c->pos += 8;
    return v;
}
static inline const uint8_t *ms_cur_bytes(ms_cursor *c, size_t n)
{
    const uint8_t *v = c->p + c->pos;
    c->pos += n;
    return v;
}

/* ---- allocation through the caller's allocator ------------------------ */
void *ms_alloc(const ms_allocator *a, size_t size);
void *ms_calloc(const ms_allocator *a, size_t n, size_t size);
void ms_free(const ms_allocator *a, void *p);
/* Grow *arr (element size `elem`) to hold at least `want` elements,
 * doubling; `*cap` is updated.  Returns 0 or -1. */
int ms_grow(const ms_allocator *a, void **arr, size_t elem, size_t *cap,
            size_t want);

/* ---- errors ------------------------------------------------------------ */
/* Record an error unless one is already recorded (errors are sticky).
 * Always returns -1 so callers can `return ms_fail(...)`. */
int ms_fail(ms_error_info *e, ms_error code, uint64_t offset, const char *fmt,
            ...) __attribute__((format(printf, 4, 5)));
/* The same, naming the limit that was exceeded (MS_LIMIT_NONE: a fixed
 * one no option raises).  The limit is kept only with MS_ERR_LIMIT, so a
 * refused allocation may pass either code.  ms_fail records
 * MS_LIMIT_NONE. */
int ms_fail_as(ms_error_info *e, ms_error code, ms_limit limit,
               uint64_t offset, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* ms_fail_as for an error of one channel slot (UINT32_MAX: none), which
 * error_info.channel then names. */
int ms_fail_channel(ms_error_info *e, ms_error code, ms_limit limit,
                    uint32_t channel, uint64_t offset, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
/* MS_ERR_LIMIT for one of ms_options' limits (MS_LIMIT_...). */
#define MS_FAIL_LIMIT_E(e, limit, off, ...)                                   \
    ms_fail_as((e), MS_ERR_LIMIT, (limit), (off), __VA_ARGS__)

/* Copy a caller's options in: NULL gives the defaults; a struct_size from
 * MS_OPTIONS_SIZE_V1 to sizeof(ms_options) (an older caller's struct) is
 * taken, the fields it lacks getting their defaults.  Returns 0, or -1
 * for any other struct_size. */
int ms_options_import(ms_options *dst, const ms_options *src);

/* QEMU return path detection (qemu_rp.c): 1 when the bytes start like a
 * return path, -1 when they cannot, 0 when more bytes are needed (*want:
 * how many). */
int ms_rp_detect(const uint8_t *p, size_t len, size_t *want);

/* ---- hashing ----------------------------------------------------------- */
/* XXH3-64(data, seed): hash_short.c (short inputs inlined), which hands
 * longer ones to ms_hash64_long (the runtime-dispatched variant). */
uint64_t ms_hash64(const void *data, size_t len, uint64_t seed);
uint64_t ms_hash64_long(const void *data, size_t len, uint64_t seed);

/* XXH3-64 streaming (hash_stream.c): reset with a seed (0: unseeded),
 * update, digest.  The state comes from the caller's allocator. */
typedef struct ms_hash_state ms_hash_state;
ms_hash_state *ms_hash_state_new(const ms_allocator *a);
void ms_hash_state_free(const ms_allocator *a, ms_hash_state *s);
void ms_hash_reset(ms_hash_state *s, uint64_t seed);
void ms_hash_update(ms_hash_state *s, const void *data, size_t len);
/* `v` as 8 little-endian bytes: a unit hash into a 2.x image hash (spec
 * 5.4; the reader batches its own) */
void ms_hash_update_le64(ms_hash_state *s, uint64_t v);
uint64_t ms_hash_digest(const ms_hash_state *s);
/* hash_stream_avx2.c: ms_hash_update's AVX2 build (x86-64) */
void ms_hash_update_avx2(ms_hash_state *s, const void *data, size_t len);

/* ---- u32 -> u32 map (open addressing) -----------------------------------
 * Device handles and packet indexes are arbitrary 32-bit numbers chosen by
 * the writer; this maps them to slots in the owner's arrays. */
typedef struct ms_u32map {
    uint32_t *keys, *vals;
    uint8_t *used;
    size_t cap, count;
} ms_u32map;

int ms_u32map_get(const ms_u32map *m, uint32_t key, uint32_t *val);
int ms_u32map_put(const ms_allocator *a, ms_u32map *m, uint32_t key,
                  uint32_t val);
int ms_u32map_del(ms_u32map *m, uint32_t key);
void ms_u32map_free(const ms_allocator *a, ms_u32map *m);

/* ---- data views ---------------------------------------------------------
 * Fill *ev as an MS_EV_DATA event for the `n` bytes at `p`, which sit at
 * stream offset `at`: kind, offset, length, data, size, stream_offset and
 * zero_copy.  Returns the data part for the caller to place the bytes
 * (device, seq, phase, image_offset, packet fields). */
static inline ms_data_info *ms_ev_data(ms_event *ev, const uint8_t *p,
                                       size_t n, uint64_t at, int zero_copy)
{
    ev->kind = MS_EV_DATA;
    ev->offset = at;
    ev->length = n;
    ms_data_info *d = &ev->u.data;
    d->data = p;
    d->size = n;
    d->stream_offset = at;
    d->zero_copy = zero_copy;
    return d;
}

#endif
