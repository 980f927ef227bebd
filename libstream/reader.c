/* Public reader entry points: input slices, format detection, dispatch. */
#include "reader_impl.h"

#define STASH_MIN 256

ms_reader *ms_reader_create(const ms_options *opt)
{
    ms_options o;
    if (ms_options_copy(&o, opt) < 0)
        return NULL;
    ms_reader *r = ms_calloc(&o.allocator, 1, sizeof *r);
    if (!r)
        return NULL;
    r->opt = o;
    return r;
}

void ms_reader_free(ms_reader *r)
{
    if (!r)
        return;
    const ms_allocator *a = &r->opt.allocator;
    if (r->ops)
        r->ops->destroy(r);
    ms_free(a, r->stash);
    ms_free(a, r);
}

const ms_error_info *ms_reader_error(const ms_reader *r) { return &r->err; }
uint64_t ms_reader_offset(const ms_reader *r) { return r->offset; }
ms_format ms_reader_format(const ms_reader *r)
{
    return r->ops ? r->ops->format : r->opt.format;
}

int ms_reader_input(ms_reader *r, const void *buf, size_t len)
{
    if (r->err.code)
        return -1;
    if (r->finished)
        return MS_FAIL(r, MS_ERR_USAGE, r->offset, "input after finish");
    if (ms_rd_avail(r))
        return MS_FAIL(r, MS_ERR_USAGE, r->offset,
                       "input given before the previous slice was consumed");
    if (!buf && len)
        return MS_FAIL(r, MS_ERR_USAGE, r->offset, "NULL input");
    r->in = buf;
    r->in_len = len;
    r->in_pos = 0;
    return 0;
}

int ms_rd_reserve(ms_reader *r, size_t n)
{
    if (n <= r->stash_cap)
        return 0;
    size_t cap = MS_MAX(n, STASH_MIN);
    uint8_t *s = ms_alloc(&r->opt.allocator, cap);
    if (!s)
        return MS_FAIL(r, MS_ERR_NO_MEMORY, r->offset,
                       "stash of %zu bytes", cap);
    if (r->stash_len)
        memcpy(s, r->stash, r->stash_len);
    ms_free(&r->opt.allocator, r->stash);
    r->stash = s;
    r->stash_cap = cap;
    return 0;
}

int ms_rd_take(ms_reader *r, size_t n, const uint8_t **out)
{
    if (r->stash_len == 0 && ms_rd_avail(r) >= n) {
        *out = r->in + r->in_pos;
        ms_rd_skip(r, n);
        return 1;
    }
    size_t k = MS_MIN(n - r->stash_len, ms_rd_avail(r));
    memcpy(r->stash + r->stash_len, r->in + r->in_pos, k);
    r->stash_len += k;
    ms_rd_skip(r, k);
    if (r->stash_len < n)
        return 0;
    *out = r->stash;
    r->stash_len = 0;
    return 1;
}

/* Pick the framing from the first bytes (or the forced format). */
static int select_framing(ms_reader *r)
{
    ms_format f = r->opt.format;
    if (f == MS_FORMAT_AUTO) {
        size_t need = 0;
        const uint8_t *p = r->in + r->in_pos;
        size_t len = ms_rd_avail(r);
        /* Detection looks at a few bytes; gather them if split. */
        if (ms_rd_reserve(r, 16) < 0)
            return -1;
        if (r->stash_len) {
            size_t k = MS_MIN(16 - r->stash_len, len);
            memcpy(r->stash + r->stash_len, p, k);
            f = ms_detect(r->stash, r->stash_len + k, &need);
            if (f == MS_FORMAT_AUTO) {
                r->stash_len += k;
                ms_rd_skip(r, k);
                return 0;
            }
        } else {
            f = ms_detect(p, len, &need);
            if (f == MS_FORMAT_AUTO) {
                memcpy(r->stash, p, len);
                r->stash_len = len;
                ms_rd_skip(r, len);
                return 0;
            }
        }
    }
    switch (f) {
    case MS_FORMAT_MIGSTREAM:
        r->ops = &ms_mig_ops;
        return ms_mig_init(r) < 0 ? -1 : 1;
    case MS_FORMAT_QEMU_MAIN:
    case MS_FORMAT_QEMU_MULTIFD:
    case MS_FORMAT_LIBVIRT_SAVE:
        return MS_FAIL(r, MS_ERR_FORMAT_UNSUPPORTED, 0,
                       "%s streams are recognised but not decoded by this "
                       "version",
                       ms_format_name(f));
    default:
        return MS_FAIL(r, MS_ERR_FORMAT_UNKNOWN, 0,
                       "no known magic in the first bytes");
    }
}

int ms_reader_next(ms_reader *r, ms_event *ev)
{
    if (r->err.code)
        return MS_NEXT_ERROR;
    if (r->finished)
        return MS_FAIL(r, MS_ERR_USAGE, r->offset, "next after finish");
    if (!r->ops) {
        int s = select_framing(r);
        if (s < 0)
            return MS_NEXT_ERROR;
        if (s == 0)
            return MS_NEXT_INPUT;
    }
    memset(ev, 0, sizeof *ev);
    int rc = r->ops->next(r, ev);
    if (rc == MS_NEXT_ERROR && !r->err.code)
        MS_FAIL(r, MS_ERR_USAGE, r->offset, "internal: error without code");
    return rc;
}

int ms_reader_finish(ms_reader *r)
{
    if (r->err.code)
        return -1;
    if (ms_rd_avail(r))
        return MS_FAIL(r, MS_ERR_USAGE, r->offset,
                       "finish before the input slice was consumed");
    r->finished = 1;
    if (!r->ops)
        return MS_FAIL(r, MS_ERR_TRUNCATED, r->offset,
                       "input ended after %zu bytes, before the format could "
                       "be recognised",
                       r->stash_len);
    return r->ops->finish(r);
}
