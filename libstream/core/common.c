/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* Shared internals: allocation, errors, options, hashing, names. */
#include "common.h"

#include <stdio.h>
#include <stdlib.h>
#include "hash.h"

#include "mig_format.h"

const uint8_t mig_magic[MIG_MAGIC_LEN] = {0x8D, 'M', 'I', 'G', 0x0D, 0x0A, 0x1A, 0x0A};

/* ---- version ----------------------------------------------------------- */
unsigned ms_version_number(void) { return MIGSTREAM_VERSION_NUMBER; }
const char *ms_version_string(void) { return MIGSTREAM_VERSION_STRING; }

/* ---- allocation -------------------------------------------------------- */
void *ms_alloc(const ms_allocator *a, size_t size)
{
    if (size == 0)
        size = 1;
    if (a && a->alloc)
        return a->alloc(a->opaque, size);
    return malloc(size);
}

void *ms_calloc(const ms_allocator *a, size_t n, size_t size)
{
    if (size != 0 && n > SIZE_MAX / size)
        return NULL;
    void *p = ms_alloc(a, n * size);
    if (p)
        memset(p, 0, (n * size) != 0 ? n * size : 1);
    return p;
}

void ms_free(const ms_allocator *a, void *p)
{
    if (!p)
        return;
    if (a && a->free)
        a->free(a->opaque, p);
    else
        free(p);
}

int ms_grow(const ms_allocator *a, void **arr, size_t elem, size_t *cap,
            size_t want)
{
    if (want <= *cap)
        return 0;
    size_t ncap = *cap ? *cap : 8;
    while (ncap < want) {
        if (ncap > SIZE_MAX / 2 / elem)
            return -1;
        ncap *= 2;
    }
    void *n = ms_alloc(a, ncap * elem);
    if (!n)
        return -1;
    if (*arr) {
        memcpy(n, *arr, *cap * elem);
        ms_free(a, *arr);
    }
    memset((uint8_t *)n + *cap * elem, 0, (ncap - *cap) * elem);
    *arr = n;
    *cap = ncap;
    return 0;
}

/* ---- errors ------------------------------------------------------------ */
static const char *const error_names[] = {
#define MS_X_NAME(sym, val, name, desc) [val] = name,
    MS_ERROR_LIST(MS_X_NAME)
#undef MS_X_NAME
};
static const char *const error_descs[] = {
#define MS_X_DESC(sym, val, name, desc) [val] = desc,
    MS_ERROR_LIST(MS_X_DESC)
#undef MS_X_DESC
};

const char *ms_error_name(ms_error code)
{
    if ((unsigned)code >= MS_ERR_COUNT_ || !error_names[code])
        return "unknown-error";
    return error_names[code];
}

const char *ms_error_description(ms_error code)
{
    if ((unsigned)code >= MS_ERR_COUNT_ || !error_descs[code])
        return "unknown error";
    return error_descs[code];
}

/* ms_error_info.limit took the padding after `code`: the fields a caller
 * built before it existed reads stay where they were. */
_Static_assert(_Alignof(uint64_t) < 8 ||
                   offsetof(ms_error_info, offset) == 8,
               "ms_error_info.offset moved");

static int fail_v(ms_error_info *e, ms_error code, ms_limit limit,
                  uint64_t offset, const char *fmt, va_list ap)
{
    if (e->code != MS_ERR_OK)
        return -1;
    e->code = code;
    e->limit = code == MS_ERR_LIMIT ? limit : MS_LIMIT_NONE;
    e->offset = offset;
    vsnprintf(e->detail, sizeof e->detail, fmt, ap);
    return -1;
}

int ms_fail(ms_error_info *e, ms_error code, uint64_t offset, const char *fmt,
            ...)
{
    va_list ap;
    va_start(ap, fmt);
    fail_v(e, code, MS_LIMIT_NONE, offset, fmt, ap);
    va_end(ap);
    return -1;
}

int ms_fail_as(ms_error_info *e, ms_error code, ms_limit limit,
               uint64_t offset, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fail_v(e, code, limit, offset, fmt, ap);
    va_end(ap);
    return -1;
}

int ms_fail_channel(ms_error_info *e, ms_error code, ms_limit limit,
                    uint32_t channel, uint64_t offset, const char *fmt, ...)
{
    if (e->code != MS_ERR_OK)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    fail_v(e, code, limit, offset, fmt, ap);
    va_end(ap);
    if (channel != UINT32_MAX) {
        e->channel = channel;
        e->has_channel = 1;
    }
    return -1;
}

/* ---- limits ------------------------------------------------------------ */
static const char *const limit_names[] = {
#define MS_X_NAME(id, val, field, type, def, opt, help) [val] = #field,
    MS_LIMIT_LIST(MS_X_NAME)
#undef MS_X_NAME
};
static const char *const limit_options[] = {
#define MS_X_OPT(id, val, field, type, def, opt, help) [val] = opt,
    MS_LIMIT_LIST(MS_X_OPT)
#undef MS_X_OPT
};

const char *ms_limit_name(ms_limit id)
{
    return (unsigned)id < MS_LIMIT_COUNT_ ? limit_names[id] : NULL;
}

const char *ms_limit_option(ms_limit id)
{
    return (unsigned)id < MS_LIMIT_COUNT_ ? limit_options[id] : NULL;
}

/* ---- options ----------------------------------------------------------- */
static void options_defaults(ms_options *opt)
{
    memset(opt, 0, sizeof *opt);
    opt->struct_size = sizeof *opt;
    opt->format = MS_FORMAT_AUTO;
    /* the limits' defaults (max_decompress_bytes: zstd's own default
     * window cap, 128 MiB, plus its buffers fits) */
#define MS_X_DEFAULT(id, val, field, type, def, opt_name, help)               \
    opt->field = (type)(def);
    MS_LIMIT_LIST(MS_X_DEFAULT)
#undef MS_X_DEFAULT
    opt->verify_checks = 1;
    opt->payload_kind = MS_PAYLOAD_DETECT;
    opt->payload_final_offset = UINT64_MAX;
}

void ms_options_init_size(ms_options *opt, size_t struct_size)
{
    if (struct_size < MS_OPTIONS_SIZE_V1 || struct_size > sizeof *opt) {
        memset(opt, 0, MS_MIN(struct_size, sizeof *opt));
        return;
    }
    ms_options full;
    options_defaults(&full);
    memcpy(opt, &full, struct_size);
    opt->struct_size = (uint32_t)struct_size;
}

/* Binaries built before ms_options_init became a macro call this with a
 * struct ending at max_decompress_bytes: when a field is appended, fill
 * exactly that many bytes here. */
void(ms_options_init)(ms_options *opt)
{
    ms_options_init_size(opt, offsetof(ms_options, max_decompress_bytes) +
                                  sizeof opt->max_decompress_bytes);
}

/* Fields appended after MS_OPTIONS_SIZE_V1, in order.  A caller's struct
 * ending before one of them gets its default; add every new field here. */
#define MS_OPTIONS_APPENDED(X)                                                \
    X(input_seekable)                                                         \
    X(input_size)                                                             \
    X(max_decompress_bytes)                                                   \
    X(data_only)                                                              \
    X(max_zstd_window)                                                        \
    X(salvage)

int ms_options_import(ms_options *dst, const ms_options *src)
{
    ms_options_init_size(dst, sizeof *dst);
    if (!src)
        return 0;
    size_t size = src->struct_size;
    if (size < MS_OPTIONS_SIZE_V1 || size > sizeof *dst)
        return -1;
    /* The caller's bytes, then the default back into every field its
     * struct does not hold whole. */
    ms_options def = *dst;
    memcpy(dst, src, size);
#define MS_X_KEEP(field)                                                      \
    if (offsetof(ms_options, field) + sizeof dst->field > size)               \
        dst->field = def.field;
    MS_OPTIONS_APPENDED(MS_X_KEEP)
#undef MS_X_KEEP
    dst->struct_size = sizeof *dst;
    return 0;
}

/* ---- hashing ----------------------------------------------------------- */
/* ms_hash64 itself: hash_short.c */
uint64_t ms_hash64_long(const void *data, size_t len, uint64_t seed)
{
    return XXH3_64bits_withSeed(data, len, seed);
}

/* ---- names ------------------------------------------------------------- */
const char *ms_format_name(ms_format f)
{
    switch (f) {
    case MS_FORMAT_AUTO: return "auto";
    case MS_FORMAT_MIGSTREAM: return "migstream";
    case MS_FORMAT_QEMU_MAIN: return "qemu-main";
    case MS_FORMAT_QEMU_MULTIFD: return "qemu-multifd";
    case MS_FORMAT_LIBVIRT_SAVE: return "libvirt-save";
    case MS_FORMAT_PAYLOAD: return "payload";
    case MS_FORMAT_QEMU_PREEMPT: return "qemu-preempt";
    case MS_FORMAT_QEMU_CPR: return "qemu-cpr";
    case MS_FORMAT_QEMU_RETURN_PATH: return "qemu-return-path";
    case MS_FORMAT_UNKNOWN: break;
    }
    return "unknown";
}

static const char *const payload_kind_names[MS_PAYLOAD_KIND_COUNT_] = {
    "raw", "mlx5", "virtio", "hisi_acc", "qat", "xe", "pds"};

const char *ms_payload_kind_name(ms_payload_kind kind)
{
    /* unsigned: MS_PAYLOAD_DETECT and other negatives are not names */
    return (unsigned)kind < MS_PAYLOAD_KIND_COUNT_ ? payload_kind_names[kind]
                                                   : "unknown";
}

ms_payload_kind ms_payload_kind_from_name(const char *name)
{
    for (int i = 0; i < MS_PAYLOAD_KIND_COUNT_; i++)
        if (strcmp(name, payload_kind_names[i]) == 0)
            return (ms_payload_kind)i;
    return MS_PAYLOAD_DETECT;
}

const char *ms_phase_name(ms_phase p)
{
    switch (p) {
    case MS_PHASE_INITIAL: return "initial";
    case MS_PHASE_MIDDLE: return "middle";
    case MS_PHASE_FINAL: return "final";
    case MS_PHASE_NONE: break;
    }
    return "none";
}

const char *ms_event_kind_name(ms_event_kind k)
{
    switch (k) {
    case MS_EV_NONE: return "none";
    case MS_EV_STREAM_HEADER: return "stream";
    case MS_EV_RECORD: return "record";
    case MS_EV_DEVICE: return "device";
    case MS_EV_IMAGE_BEGIN: return "image_begin";
    case MS_EV_CHUNK: return "chunk";
    case MS_EV_DATA: return "data";
    case MS_EV_PACKET: return "packet";
    case MS_EV_IMAGE_END: return "image_end";
    case MS_EV_PRECOPY_INFO: return "precopy_info";
    case MS_EV_STATE_CHANGE: return "state_change";
    case MS_EV_STOP_COPY_SIZE: return "stop_copy_size";
    case MS_EV_END: return "end";
    case MS_EV_IMAGE_ASSEMBLED: return "image_assembled";
    case MS_EV_CONFIGURATION: return "configuration";
    case MS_EV_SECTION: return "section";
    case MS_EV_SECTION_FOOTER: return "footer";
    case MS_EV_COMMAND: return "command";
    case MS_EV_RAM_BLOCK: return "ram_block";
    case MS_EV_RAM_PAGE: return "ram_page";
    case MS_EV_RAM_MARKER: return "ram_marker";
    case MS_EV_VFIO_MARKER: return "vfio_marker";
    case MS_EV_SUBSECTION: return "subsection";
    case MS_EV_FIELD: return "field";
    case MS_EV_UNDECODED: return "undecoded";
    case MS_EV_QEMU_EOF: return "eof";
    case MS_EV_VMDESC: return "vmdesc";
    case MS_EV_CHANNEL: return "channel";
    case MS_EV_MULTIFD_PACKET: return "packet";
    case MS_EV_PAYLOAD_RECORD: return "record";
    case MS_EV_PAYLOAD_IMAGE: return "image";
    case MS_EV_PAYLOAD_FIELD: return "payload_field";
    case MS_EV_MAPPED_RAM: return "mapped_ram";
    case MS_EV_RAM_DISCARD: return "ram_discard";
    case MS_EV_DIRTY_BITMAP: return "dirty_bitmap";
    case MS_EV_CPR: return "cpr";
    case MS_EV_RP_MESSAGE: return "rp_message";
    case MS_EV_LIBVIRT_HEADER: return "libvirt_header";
    case MS_EV_DAMAGE: return "damage";
    case MS_EV_ARCHIVE_BEGIN: return "archive_begin";
    case MS_EV_ARCHIVE_DATA: return "archive_data";
    case MS_EV_ARCHIVE_END: return "archive_end";
    }
    return "unknown";
}

/* ---- detection --------------------------------------------------------- */
ms_format ms_detect(const void *buf, size_t len, size_t *need)
{
    static const uint8_t qevm[4] = {'Q', 'E', 'V', 'M'};
    static const uint8_t multifd[4] = {0x11, 0x22, 0x33, 0x44};
    static const char libvirt[] = "LibvirtQemud";
    const uint8_t *p = buf;
    size_t want = 4;

    if (len >= 4 && memcmp(p, qevm, 4) == 0)
        return MS_FORMAT_QEMU_MAIN;
    if (len >= 4 && memcmp(p, multifd, 4) == 0)
        return MS_FORMAT_QEMU_MULTIFD;
    if (len >= 4 && memcmp(p, "QCPR", 4) == 0)
        return MS_FORMAT_QEMU_CPR;
    /* migstream: accept a damaged magic here so the reader can say how it
     * was damaged instead of "unknown format". */
    if (len >= 4 && memcmp(p + 1, "MIG", 3) == 0)
        return MS_FORMAT_MIGSTREAM;
    if (len >= 3 && memcmp(p, "MIG", 3) == 0) /* first byte lost */
        return MS_FORMAT_MIGSTREAM;
    if (len >= 12 && memcmp(p, libvirt, 12) == 0)
        return MS_FORMAT_LIBVIRT_SAVE;
    if (len < 12 && (len == 0 || memcmp(p, libvirt, len) == 0))
        want = 12;
    /* The return path has no magic: its first message must look exactly
     * right (qemu_rp.c; type bytes 00 01..00 07 clash with no magic) */
    size_t rp_want = 0;
    int rp = ms_rp_detect(p, len, &rp_want);
    if (rp > 0)
        return MS_FORMAT_QEMU_RETURN_PATH;
    if (rp == 0 && rp_want > want)
        want = rp_want;
    if (len >= want)
        return MS_FORMAT_UNKNOWN;
    if (need)
        *need = want;
    return MS_FORMAT_AUTO;
}

/* ---- u32 map ----------------------------------------------------------- */
static size_t map_slot(uint32_t key, size_t cap)
{
    /* Fibonacci hashing spreads sequential handles and indexes. */
    return (size_t)((key * 2654435769u) & (uint32_t)(cap - 1));
}

int ms_u32map_get(const ms_u32map *m, uint32_t key, uint32_t *val)
{
    if (!m->cap)
        return 0;
    for (size_t i = map_slot(key, m->cap);; i = (i + 1) & (m->cap - 1)) {
        if (!m->used[i])
            return 0;
        if (m->keys[i] == key) {
            *val = m->vals[i];
            return 1;
        }
    }
}

static int map_rehash(const ms_allocator *a, ms_u32map *m, size_t ncap)
{
    ms_u32map n = {0};
    n.keys = ms_alloc(a, ncap * sizeof *n.keys);
    n.vals = ms_alloc(a, ncap * sizeof *n.vals);
    n.used = ms_calloc(a, ncap, 1);
    n.cap = ncap;
    if (!n.keys || !n.vals || !n.used) {
        ms_u32map_free(a, &n);
        return -1;
    }
    for (size_t i = 0; i < m->cap; i++)
        if (m->used[i]) {
            size_t j = map_slot(m->keys[i], ncap);
            while (n.used[j])
                j = (j + 1) & (ncap - 1);
            n.used[j] = 1;
            n.keys[j] = m->keys[i];
            n.vals[j] = m->vals[i];
            n.count++;
        }
    ms_u32map_free(a, m);
    *m = n;
    return 0;
}

int ms_u32map_put(const ms_allocator *a, ms_u32map *m, uint32_t key,
                  uint32_t val)
{
    if ((m->count + 1) * 2 > m->cap &&
        map_rehash(a, m, m->cap ? m->cap * 2 : 16) < 0)
        return -1;
    size_t i = map_slot(key, m->cap);
    while (m->used[i] && m->keys[i] != key)
        i = (i + 1) & (m->cap - 1);
    if (!m->used[i])
        m->count++;
    m->used[i] = 1;
    m->keys[i] = key;
    m->vals[i] = val;
    return 0;
}

int ms_u32map_del(ms_u32map *m, uint32_t key)
{
    if (!m->cap)
        return 0;
    size_t i = map_slot(key, m->cap);
    while (m->used[i] && m->keys[i] != key)
        i = (i + 1) & (m->cap - 1);
    if (!m->used[i])
        return 0;
    m->used[i] = 0;
    m->count--;
    /* re-insert the rest of the cluster so lookups never stop early */
    for (size_t j = (i + 1) & (m->cap - 1); m->used[j];
         j = (j + 1) & (m->cap - 1)) {
        uint32_t k = m->keys[j], v = m->vals[j];
        m->used[j] = 0;
        size_t s = map_slot(k, m->cap);
        while (m->used[s])
            s = (s + 1) & (m->cap - 1);
        m->used[s] = 1;
        m->keys[s] = k;
        m->vals[s] = v;
    }
    return 1;
}

void ms_u32map_free(const ms_allocator *a, ms_u32map *m)
{
    ms_free(a, m->keys);
    ms_free(a, m->vals);
    ms_free(a, m->used);
    memset(m, 0, sizeof *m);
}
