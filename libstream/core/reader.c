/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* Public reader entry points: creation, input slices handed in, format
 * detection, dispatch to the framing.  How decoders read the slices is
 * input.c. */
#include "payload_impl.h"
#include "kit.h"
#include "vmstate.h"

ms_reader *ms_reader_create(const ms_options *opt)
{
    ms_options o;
    if (ms_options_import(&o, opt) < 0)
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
    vms_desc_free(a, r->vmdesc);
    ms_free(a, r->stash);
    ms_free(a, r);
}

const ms_error_info *ms_reader_error(const ms_reader *r) { return &r->err; }
uint64_t ms_reader_offset(const ms_reader *r) { return r->offset; }
ms_format ms_reader_format(const ms_reader *r)
{
    return r->ops ? r->ops->format : r->opt.format;
}

int ms_reader_set_vmdesc(ms_reader *r, const char *json, size_t len)
{
    if (r->err.code)
        return -1;
    if (r->ops || r->offset)
        return MS_FAIL(r, MS_ERR_USAGE, r->offset,
                       "the JSON trailer must be given before any input");
    if (len > r->opt.max_vmdesc_bytes)
        return MS_FAIL_LIMIT(
            r, MS_LIMIT_MAX_VMDESC_BYTES, 0,
            "JSON trailer of %zu bytes exceeds max_vmdesc_bytes "
            "(%llu)",
            len, (unsigned long long)r->opt.max_vmdesc_bytes);
    struct vms_desc *d = NULL;
    ms_error_info e = {0};
    if (vms_desc_parse(&r->opt.allocator, &r->opt, json, len, &d, &e) < 0)
        return MS_FAIL(r, MS_ERR_VMDESC, e.offset, "given JSON trailer: %s",
                       e.detail);
    vms_desc_free(&r->opt.allocator, r->vmdesc);
    r->vmdesc = d;
    return 0;
}

int ms_reader_borrow_vmdesc(ms_reader *r, const char *json, size_t len)
{
    if (ms_reader_set_vmdesc(r, json, len) < 0)
        return -1;
    r->vmdesc_borrowed = 1;
    return 0;
}

int ms_reader_input(ms_reader *r, const void *buf, size_t len)
{
    if (r->err.code)
        return -1;
    if (r->seek_pending)
        return MS_FAIL(r, MS_ERR_USAGE, r->offset,
                       "the reader asked for input at offset %llu "
                       "(MS_NEXT_SEEK): give it with ms_reader_input_at",
                       (unsigned long long)r->seek_target);
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

int ms_reader_input_at(ms_reader *r, uint64_t offset, const void *buf,
                       size_t len)
{
    if (r->err.code)
        return -1;
    uint64_t want = r->seek_pending ? r->seek_target : r->offset;
    if (offset != want)
        return MS_FAIL(r, MS_ERR_USAGE, r->offset,
                       "input given at offset %llu, the reader wants offset "
                       "%llu",
                       (unsigned long long)offset, (unsigned long long)want);
    r->seek_pending = 0;
    return ms_reader_input(r, buf, len);
}

uint64_t ms_reader_seek_target(const ms_reader *r)
{
    return r->seek_pending ? r->seek_target : r->offset;
}

static const ms_framing_ops *const framings[] = {
    &ms_mig_ops,          &ms_qemu_main_ops, &ms_libvirt_ops,
    &ms_qemu_multifd_ops, &ms_qemu_preempt_ops, &ms_qemu_cpr_ops,
    &ms_qemu_rp_ops,
};

/* Pick the framing from the first bytes (or the forced format). */
static int select_framing(ms_reader *r)
{
    ms_format f = r->opt.format;
    if (f == MS_FORMAT_AUTO) {
        size_t need = 0;
        if (!r->in && !r->stash_len)
            return 0; /* no input yet */
        const uint8_t *p = r->in ? r->in + r->in_pos : r->stash;
        size_t len = ms_rd_avail(r);
        /* Detection looks at a few bytes; gather them if split: the bytes
         * looked at are the stash's followed by up to 16 of the slice. */
        if (ms_rd_reserve(r, 16) < 0)
            return -1;
        if (r->stash_len) {
            len = MS_MIN(16 - r->stash_len, len);
            memcpy(r->stash + r->stash_len, p, len);
            p = r->stash;
        }
        f = ms_detect(p, r->stash_len + len, &need);
        if (f == MS_FORMAT_AUTO) {
            ms_rd_stash_input(r, len);
            return 0;
        }
    }
    if (f == MS_FORMAT_PAYLOAD)
        return ms_payload_select(r);
    for (size_t i = 0; i < sizeof framings / sizeof framings[0]; i++)
        if (framings[i]->format == f) {
            r->ops = framings[i];
            return r->ops->init(r) < 0 ? -1 : 1;
        }
    return MS_FAIL(r, MS_ERR_FORMAT_UNKNOWN, 0,
                   "no known magic in the first bytes");
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
    /* Cleared by copying a zero event: a few vector stores, where memset
     * of its size compiles to `rep stos`, whose start-up cost showed at a
     * fifth of the time per event with minimum-size records. */
    static const ms_event zero_event;
    *ev = zero_event;
    if (r->ops->format == MS_FORMAT_PAYLOAD && !r->header_sent) {
        /* Driver payloads have no header of their own; like every stream
         * they start with one event saying what they are. */
        r->header_sent = 1;
        ev->kind = MS_EV_STREAM_HEADER;
        ev->u.stream.format = MS_FORMAT_PAYLOAD;
        ev->u.stream.channel_count = 1;
        return MS_NEXT_EVENT;
    }
    int rc = r->ops->next ? r->ops->next(r, ev)
                          : ms_run_stages(r, ev, r->ops->stages,
                                          ms_framing_stage(r));
    if (rc == MS_NEXT_ERROR && r->opt.salvage && r->ops->salvage)
        rc = r->ops->salvage(r, ev); /* spec/salvage.md */
    if (rc == MS_NEXT_ERROR && !r->err.code)
        MS_FAIL(r, MS_ERR_USAGE, r->offset, "internal: error without code");
    if (rc == MS_NEXT_INPUT && r->seek_pending)
        return MS_NEXT_SEEK;
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
    if (r->seek_pending)
        return MS_FAIL(r, MS_ERR_TRUNCATED, r->seek_target,
                       "input ends before offset %llu, where the stream "
                       "goes on",
                       (unsigned long long)r->seek_target);
    if (!r->ops)
        return MS_FAIL(r, MS_ERR_TRUNCATED, r->offset,
                       "input ended after %zu bytes, before the format could "
                       "be recognised",
                       r->stash_len);
    return r->ops->finish(r);
}
