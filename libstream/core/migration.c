/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* One migration: every channel's reader, one set, nested driver payloads
 * (include/migstream.h, "one migration").
 *
 *   ms_migration_input(slot, bytes)
 *        |
 *        v
 *   [hold?] -- no reader yet and its first bytes cannot tell the format,
 *        |     a multifd channel before the page size is known, a
 *        |     postcopy-preempt candidate before the main channel ended,
 *        |     or an earlier-opened channel has not handed its first
 *        |     event yet: keep the bytes (views or bounded copies), or
 *        |     wait (MS_MIGRATION_CONCURRENT)
 *        v
 *   create_reader (format, page size, JSON trailer) -> decode (unlocked)
 *        |  each event, under the lock:
 *        v
 *   deliver: turn taken -> page size / postcopy noted -> nested payloads
 *        -> on_event -> ms_set_observe -> derived events (nested, on_event)
 *        |
 *        v
 *   release: after each call, held channels that may go now are decoded
 *            (single-threaded), in the order they were opened
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "common.h"
#include "migration_impl.h"

#define HEAD_CAP 64 /* first bytes kept to tell a channel's format */

typedef struct mg_piece {
    int has_off;
    uint64_t off;
    const uint8_t *data;
    size_t len;
    int owned; /* a copy, counted in held_bytes */
} mg_piece;

typedef struct mg_chan {
    int opened, ended, finished, failed, busy;
    ms_channel_input in;
    size_t order;  /* open order: header turns */
    int took_turn; /* its first event reached the set, or it ended */
    uint8_t head[HEAD_CAP];
    size_t headlen;
    ms_format magic; /* ms_detect of head once known */
    ms_reader *r;
    mg_piece *held;
    size_t nheld, heldcap;
    int seek_pending;
    uint64_t seek_target;
    uint64_t next_off; /* channel offset of the next byte given */
} mg_chan;

struct ms_migration {
    ms_options opt;
    ms_migration_callbacks cb;
    unsigned flags;
    pthread_mutex_t lock;
    pthread_cond_t changed; /* a turn was taken, page size learned, ... */
    ms_set *set;
    int set_failed;
    ms_nested *nested;
    mg_chan *chans;
    size_t nchans; /* slots allocated */
    size_t opened;
    uint32_t *by_order; /* slots in the order they were opened */
    size_t order_cap;
    uint32_t page_size; /* from a main channel's CONFIGURATION; 0: none */
    int config_seen;    /* a CONFIGURATION was decoded */
    int postcopy;       /* a main channel advised postcopy */
    int no_main;
    uint64_t held_bytes; /* copies held, all channels */
    uint64_t problems;
    char *vmdesc;
    size_t vmdesc_len;
    int releasing;
};

#define ALLOC(m) (&(m)->opt.allocator)

/* ---- problems -------------------------------------------------------------
 */

static void report(ms_migration *m, const ms_error_info *e)
{
    m->problems++;
    m->cb.on_problem(m->cb.ctx, e);
}

static void channel_failed(ms_migration *m, mg_chan *c, uint32_t slot,
                           const ms_error_info *e)
{
    ms_error_info p = *e;
    p.channel = slot;
    p.has_channel = 1;
    c->failed = 1;
    c->took_turn = 1;
    pthread_cond_broadcast(&m->changed);
    report(m, &p);
}

static void set_problem(ms_migration *m)
{
    m->set_failed = 1;
    report(m, ms_set_error(m->set));
}

/* ---- the nested router's sink (called under the lock) ------------------- */

static void nested_event(void *ctx, const ms_event *ev,
                         const ms_event_origin *o)
{
    ms_migration *m = ctx;
    m->cb.on_event(m->cb.ctx, ev, o);
}

static void nested_problem(void *ctx, const ms_error_info *e)
{
    report(ctx, e);
}

/* ---- create / free ----------------------------------------------------------
 */

ms_migration *ms_migration_create(const ms_options *opt,
                                  const ms_migration_callbacks *cb,
                                  unsigned flags)
{
    ms_options o;
    if (!cb || !cb->on_event || !cb->on_problem ||
        ms_options_import(&o, opt) < 0)
        return NULL;
    ms_migration *m = ms_calloc(&o.allocator, 1, sizeof *m);
    if (!m)
        return NULL;
    m->opt = o;
    m->cb = *cb;
    m->flags = flags;
    if (pthread_mutex_init(&m->lock, NULL) != 0) {
        ms_free(&o.allocator, m);
        return NULL;
    }
    if (pthread_cond_init(&m->changed, NULL) != 0) {
        pthread_mutex_destroy(&m->lock);
        ms_free(&o.allocator, m);
        return NULL;
    }
    m->set = ms_set_create(&m->opt);
    ms_nested_sink sink = {nested_event, nested_problem, m};
    if (flags & MS_MIGRATION_NESTED_PAYLOADS)
        m->nested = ms_nested_create(&m->opt, &sink);
    if (!m->set || ((flags & MS_MIGRATION_NESTED_PAYLOADS) && !m->nested)) {
        ms_migration_free(m);
        return NULL;
    }
    return m;
}

static void drop_held(ms_migration *m, mg_chan *c)
{
    for (size_t k = 0; k < c->nheld; k++)
        if (c->held[k].owned) {
            ms_free(ALLOC(m), (void *)c->held[k].data);
            m->held_bytes -= c->held[k].len;
        }
    c->nheld = 0;
}

void ms_migration_free(ms_migration *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->nchans; i++) {
        drop_held(m, &m->chans[i]);
        ms_free(ALLOC(m), m->chans[i].held);
        ms_reader_free(m->chans[i].r);
    }
    ms_free(ALLOC(m), m->chans);
    ms_free(ALLOC(m), m->by_order);
    ms_free(ALLOC(m), m->vmdesc);
    ms_set_free(m->set);
    ms_nested_free(m->nested);
    pthread_cond_destroy(&m->changed);
    pthread_mutex_destroy(&m->lock);
    ms_free(ALLOC(m), m);
}

int ms_migration_give_vmdesc(ms_migration *m, const char *json, size_t len)
{
    if (len > m->opt.max_vmdesc_bytes)
        return -1;
    char *copy = ms_alloc(ALLOC(m), len ? len : 1);
    if (!copy)
        return -1;
    memcpy(copy, json, len);
    pthread_mutex_lock(&m->lock);
    ms_free(ALLOC(m), m->vmdesc);
    m->vmdesc = copy;
    m->vmdesc_len = len;
    pthread_mutex_unlock(&m->lock);
    return 0;
}

uint64_t ms_migration_problems(const ms_migration *m)
{
    return m->problems;
}

/* ---- may a channel decode now? --------------------------------------------
 */

static int is_main_magic(ms_format f)
{
    return f == MS_FORMAT_QEMU_MAIN || f == MS_FORMAT_LIBVIRT_SAVE;
}

/* Could this channel be a postcopy-preempt channel?  It has no magic, but
 * its first be64 is a page record without CONTINUE (ZERO 0x02 or PAGE 0x08
 * in the low bits, below the smallest page of 512 bytes), or the EOS of an
 * empty channel.  A return path (be16 type, be16 length) is detected by
 * ms_detect and never gets here. */
static int looks_like_preempt(const mg_chan *c)
{
    if (c->headlen < 8)
        return 0;
    uint64_t v = ms_be64(c->head);
    uint64_t flags = v & 0x1ff;
    return flags == 0x02 || flags == 0x08 || v == 0x10;
}

/* 1 when the first bytes tell the format (or no more will come). */
static int head_known(mg_chan *c)
{
    if (c->magic != MS_FORMAT_AUTO)
        return 1;
    size_t need = 0;
    ms_format f = ms_detect(c->head, c->headlen, &need);
    if (f == MS_FORMAT_AUTO && !c->ended && c->headlen < HEAD_CAP)
        return 0;
    c->magic = f == MS_FORMAT_AUTO ? MS_FORMAT_UNKNOWN : f;
    return 1;
}

static int mains_pending(const ms_migration *m)
{
    int any = 0;
    for (size_t i = 0; i < m->nchans; i++) {
        const mg_chan *c = &m->chans[i];
        if (!c->opened || !is_main_magic(c->magic))
            continue;
        any = 1;
        if (!c->finished && !c->failed)
            return 1;
    }
    return !any;
}

/* Channels opened before `c` that are not QEMU main channels have handed
 * their first event to the set (or ended). */
static int turn_came(const ms_migration *m, const mg_chan *c)
{
    for (size_t k = 0; k < c->order; k++) {
        const mg_chan *o = &m->chans[m->by_order[k]];
        if (!o->took_turn && !is_main_magic(o->magic))
            return 0;
    }
    return 1;
}

static int may_decode(ms_migration *m, mg_chan *c)
{
    if (c->r)
        return 1;
    if (!head_known(c))
        return 0;
    if (is_main_magic(c->magic))
        return 1;
    if (!turn_came(m, c))
        return 0;
    ms_format forced =
        c->in.format != MS_FORMAT_AUTO ? c->in.format : m->opt.format;
    int free_to_go = m->no_main || m->opt.qemu_page_size;
    if (c->magic == MS_FORMAT_QEMU_MULTIFD && !m->config_seen && !free_to_go &&
        mains_pending(m))
        return 0;
    if (forced == MS_FORMAT_AUTO && c->magic == MS_FORMAT_UNKNOWN &&
        looks_like_preempt(c) && !m->no_main && mains_pending(m))
        return 0;
    return 1;
}

/* ---- the reader -------------------------------------------------------------
 */

/* The channel's JSON trailer: its own when the whole input is given, else
 * the one given to the migration.  -1: malformed (reported). */
static int give_vmdesc(ms_migration *m, mg_chan *c)
{
    size_t off, len;
    const void *whole = c->in.whole;
    size_t scan = m->opt.max_vmdesc_bytes + 5;
    if (scan < ((size_t)64 << 20))
        scan = (size_t)64 << 20;
    if (whole && is_main_magic(c->magic) &&
        ms_qemu_find_vmdesc(whole, c->in.whole_len, scan, &off, &len))
        return ms_reader_set_vmdesc(c->r, (const char *)whole + off, len);
    if (m->vmdesc && (!whole || is_main_magic(c->magic)))
        return ms_reader_borrow_vmdesc(c->r, m->vmdesc, m->vmdesc_len);
    return 0;
}

static int create_reader(ms_migration *m, mg_chan *c, uint32_t slot)
{
    ms_options o = m->opt;
    if (c->in.format != MS_FORMAT_AUTO)
        o.format = c->in.format;
    /* a forced preempt format names the channel files, not the main
     * stream; without one, a magic-less channel after a postcopy main
     * stream that starts like a page record is its preempt channel */
    if (o.format == MS_FORMAT_QEMU_PREEMPT && is_main_magic(c->magic))
        o.format = MS_FORMAT_AUTO;
    else if (o.format == MS_FORMAT_AUTO && m->postcopy &&
             c->magic == MS_FORMAT_UNKNOWN && looks_like_preempt(c))
        o.format = MS_FORMAT_QEMU_PREEMPT;
    if (!o.qemu_page_size)
        o.qemu_page_size = m->page_size;
    o.input_seekable = c->in.seekable;
    o.input_size = c->in.seekable ? c->in.size : 0;
    if (!(c->r = ms_reader_create(&o))) {
        ms_error_info e = {.code = MS_ERR_NO_MEMORY};
        snprintf(e.detail, sizeof e.detail, "no memory for a reader");
        channel_failed(m, c, slot, &e);
        return -1;
    }
    if (give_vmdesc(m, c) < 0) {
        channel_failed(m, c, slot, ms_reader_error(c->r));
        return -1;
    }
    return 0;
}

/* ---- delivering events (under the lock) -----------------------------------
 */

static void note_qemu(ms_migration *m, const ms_event *ev)
{
    if (ev->kind == MS_EV_CONFIGURATION) {
        if (ev->u.config.has_page_bits && ev->u.config.page_bits < 32)
            m->page_size = 1u << ev->u.config.page_bits;
        m->config_seen = 1;
        if (ev->u.config.cap_postcopy_preempt)
            m->postcopy = 1;
    }
    if (ev->kind == MS_EV_COMMAND && ev->u.command.cmd == 3 &&
        ev->u.command.len)
        m->postcopy = 1; /* POSTCOPY_ADVISE with arguments */
}

static void deliver(ms_migration *m, mg_chan *c, uint32_t slot,
                    const ms_event *ev)
{
    if (!c->took_turn) {
        c->took_turn = 1;
        pthread_cond_broadcast(&m->changed);
    }
    int was_config = m->config_seen;
    note_qemu(m, ev);
    if (m->config_seen != was_config)
        pthread_cond_broadcast(&m->changed);
    if (m->nested)
        ms_nested_feed(m->nested, slot, ev, 0);
    ms_event_origin o = {.channel = slot};
    m->cb.on_event(m->cb.ctx, ev, &o);
    if (m->set_failed)
        return;
    if (ms_set_observe(m->set, slot, ev) < 0) {
        set_problem(m);
        return;
    }
    ms_event sev;
    int s;
    while ((s = ms_set_next(m->set, &sev)) == MS_NEXT_EVENT) {
        if (m->nested)
            ms_nested_feed(m->nested, sev.channel, &sev, 1);
        ms_event_origin so = {.channel = sev.channel, .derived = 1};
        m->cb.on_event(m->cb.ctx, &sev, &so);
    }
    if (s == MS_NEXT_ERROR)
        set_problem(m);
}

/* Hand bytes to the reader and pull its events.  Concurrent: decoding
 * unlocked, each event delivered under the lock, so other slots' threads
 * decode meanwhile.  Otherwise one thread makes every call (header,
 * Threads), nobody waits for the lock, and it stays held: a lock and an
 * unlock per event cost as much as a small record's checks.  Called and
 * returns with the lock held.  0, MS_NEXT_SEEK or -1. */
static int decode(ms_migration *m, mg_chan *c, uint32_t slot, int has_off,
                  uint64_t off, const void *buf, size_t len)
{
    int concurrent = (m->flags & MS_MIGRATION_CONCURRENT) != 0;
    c->busy = 1;
    if (concurrent)
        pthread_mutex_unlock(&m->lock);
    int in = has_off ? ms_reader_input_at(c->r, off, buf, len)
                     : ms_reader_input(c->r, buf, len);
    int rc = in < 0 ? MS_NEXT_ERROR : MS_NEXT_INPUT;
    ms_event ev;
    while (in >= 0 && (rc = ms_reader_next(c->r, &ev)) == MS_NEXT_EVENT) {
        if (concurrent)
            pthread_mutex_lock(&m->lock);
        deliver(m, c, slot, &ev);
        if (concurrent)
            pthread_mutex_unlock(&m->lock);
    }
    if (concurrent)
        pthread_mutex_lock(&m->lock);
    c->busy = 0;
    if (rc == MS_NEXT_ERROR) {
        channel_failed(m, c, slot, ms_reader_error(c->r));
        return -1;
    }
    if (rc == MS_NEXT_SEEK) {
        c->seek_pending = 1;
        c->seek_target = ms_reader_seek_target(c->r);
        return MS_NEXT_SEEK;
    }
    return 0;
}

/* The reader is done with its input: finish it and tell the set. */
static void finish_channel(ms_migration *m, mg_chan *c, uint32_t slot)
{
    c->finished = 1;
    c->took_turn = 1;
    pthread_cond_broadcast(&m->changed);
    if (ms_reader_finish(c->r) < 0) {
        channel_failed(m, c, slot, ms_reader_error(c->r));
        return;
    }
    if (!m->set_failed && ms_set_channel_done(m->set, slot) < 0)
        set_problem(m);
}

/* ---- holding
 * ------------------------------------------------------------------ */

static void keep_head(mg_chan *c, const void *buf, size_t len)
{
    size_t n = HEAD_CAP - c->headlen;
    if (c->headlen == HEAD_CAP || c->seek_pending)
        return;
    memcpy(c->head + c->headlen, buf, n < len ? n : len);
    c->headlen += n < len ? n : len;
}

/* What a held channel waits for (for the limit problem). */
static const char *hold_reason(ms_migration *m, mg_chan *c)
{
    if (!head_known(c))
        return "more bytes to tell its format";
    if (!turn_came(m, c))
        return "the channels opened before it";
    if (c->magic == MS_FORMAT_QEMU_MULTIFD)
        return "the main channel's page size";
    return "the main channel's end (postcopy-preempt detection)";
}

static int hold(ms_migration *m, mg_chan *c, uint32_t slot, int has_off,
                uint64_t off, const void *buf, size_t len)
{
    mg_piece p = {has_off, off, buf, len, 0};
    if (!m->opt.input_stable) {
        if (len > m->opt.max_buffered_bytes - m->held_bytes) {
            ms_error_info e = {.code = MS_ERR_LIMIT,
                               .limit = MS_LIMIT_MAX_BUFFERED_BYTES,
                               .offset = off};
            snprintf(e.detail, sizeof e.detail,
                     "the channel's bytes wait for %s: holding %zu more "
                     "exceeds max_buffered_bytes (%llu)",
                     hold_reason(m, c), len,
                     (unsigned long long)m->opt.max_buffered_bytes);
            channel_failed(m, c, slot, &e);
            return -1;
        }
        uint8_t *copy = ms_alloc(ALLOC(m), len ? len : 1);
        if (!copy)
            goto nomem;
        memcpy(copy, buf, len);
        p.data = copy;
        p.owned = 1;
    }
    if (ms_grow(ALLOC(m), (void **)&c->held, sizeof *c->held, &c->heldcap,
                c->nheld + 1) < 0) {
        if (p.owned)
            ms_free(ALLOC(m), (void *)p.data);
        goto nomem;
    }
    if (p.owned)
        m->held_bytes += len;
    c->held[c->nheld++] = p;
    return 0;
nomem:;
    ms_error_info e = {.code = MS_ERR_NO_MEMORY, .offset = off};
    snprintf(e.detail, sizeof e.detail, "no memory to hold %zu bytes", len);
    channel_failed(m, c, slot, &e);
    return -1;
}

/* Decode what was held, in order.  A seek the reader asks for skips to
 * the held piece that holds its target, if any. */
static int replay(ms_migration *m, mg_chan *c, uint32_t slot)
{
    int rc = 0;
    size_t k = 0;
    for (; k < c->nheld && rc >= 0 && !c->failed; k++) {
        mg_piece *p = &c->held[k];
        if (!c->seek_pending) {
            rc = decode(m, c, slot, p->has_off, p->off, p->data, p->len);
            continue;
        }
        uint64_t t = c->seek_target;
        if (p->has_off && t >= p->off && t - p->off < p->len) {
            c->seek_pending = 0;
            rc = decode(m, c, slot, 1, t, p->data + (t - p->off),
                        p->len - (size_t)(t - p->off));
        }
    }
    drop_held(m, c);
    return c->failed ? -1 : rc;
}

/* Start a channel that may go now: its reader, then its held bytes, then
 * its end when the caller already ended it. */
static int start(ms_migration *m, mg_chan *c, uint32_t slot)
{
    if (!c->r && create_reader(m, c, slot) < 0)
        return -1;
    int rc = replay(m, c, slot);
    if (rc >= 0 && c->ended && !c->finished && !c->failed)
        finish_channel(m, c, slot);
    return c->failed ? -1 : rc;
}

/* Single-threaded: decode held channels that may go now, in open order,
 * until nothing changes. */
static void release(ms_migration *m)
{
    if (m->releasing || (m->flags & MS_MIGRATION_CONCURRENT))
        return;
    m->releasing = 1;
    for (int again = 1; again;) {
        again = 0;
        for (size_t k = 0; k < m->opened; k++) {
            uint32_t slot = m->by_order[k];
            mg_chan *c = &m->chans[slot];
            if (c->failed || c->busy || c->finished)
                continue;
            if ((c->nheld || c->ended) && may_decode(m, c)) {
                start(m, c, slot);
                again = 1;
            }
        }
    }
    m->releasing = 0;
}

/* ---- the caller's calls
 * ------------------------------------------------------ */

static void usage_problem(ms_migration *m, uint32_t slot, const char *what)
{
    ms_error_info e = {.code = MS_ERR_USAGE, .channel = slot, .has_channel = 1};
    snprintf(e.detail, sizeof e.detail, "slot %u: %s", slot, what);
    report(m, &e);
}

int ms_migration_channel_open(ms_migration *m, uint32_t slot,
                              const ms_channel_input *in)
{
    pthread_mutex_lock(&m->lock);
    int rc = -1;
    if (slot >= m->opt.max_channels) {
        ms_error_info e = {.code = MS_ERR_LIMIT,
                           .limit = MS_LIMIT_MAX_CHANNELS,
                           .channel = slot,
                           .has_channel = 1};
        snprintf(e.detail, sizeof e.detail, "slot %u exceeds max_channels (%u)",
                 slot, m->opt.max_channels);
        report(m, &e);
    } else if (slot < m->nchans && m->chans[slot].opened) {
        usage_problem(m, slot, "opened twice");
    } else if (ms_grow(ALLOC(m), (void **)&m->chans, sizeof *m->chans,
                       &m->nchans, (size_t)slot + 1) < 0 ||
               ms_grow(ALLOC(m), (void **)&m->by_order, sizeof *m->by_order,
                       &m->order_cap, m->opened + 1) < 0) {
        ms_error_info e = {
            .code = MS_ERR_NO_MEMORY, .channel = slot, .has_channel = 1};
        snprintf(e.detail, sizeof e.detail, "no memory for slot %u", slot);
        report(m, &e);
    } else {
        mg_chan *c = &m->chans[slot];
        c->opened = 1;
        c->order = m->opened;
        m->by_order[m->opened++] = slot;
        if (in)
            c->in = *in;
        if (is_main_magic(c->in.format)) /* a main channel, said so */
            c->magic = c->in.format;
        if (c->in.whole) /* the format is known from the whole input */
            keep_head(c, c->in.whole,
                      c->in.whole_len < HEAD_CAP ? c->in.whole_len : HEAD_CAP);
        rc = 0;
    }
    pthread_mutex_unlock(&m->lock);
    return rc;
}

/* The bytes given now, after what was held: a pending seek takes only
 * bytes that hold its target. */
static int feed_now(ms_migration *m, mg_chan *c, uint32_t slot, int has_off,
                    uint64_t off, const uint8_t *buf, size_t len)
{
    if (c->failed)
        return -1;
    if (!c->seek_pending)
        return decode(m, c, slot, has_off, off, buf, len);
    uint64_t t = c->seek_target;
    if (!has_off || t < off || t - off >= len)
        return MS_NEXT_SEEK;
    c->seek_pending = 0;
    return decode(m, c, slot, 1, t, buf + (t - off), len - (size_t)(t - off));
}

/* Concurrent callers wait where a single-threaded one is held; a channel
 * whose first bytes cannot tell its format yet is held either way. */
static int wait_or_hold(ms_migration *m, mg_chan *c, uint32_t slot, int has_off,
                        uint64_t off, const uint8_t *buf, size_t len)
{
    int concurrent = (m->flags & MS_MIGRATION_CONCURRENT) != 0;
    while (!c->failed && !may_decode(m, c)) {
        if (!concurrent || !head_known(c))
            return hold(m, c, slot, has_off, off, buf, len);
        pthread_cond_wait(&m->changed, &m->lock);
    }
    int rc = start(m, c, slot);
    if (rc < 0)
        return -1;
    return feed_now(m, c, slot, has_off, off, buf, len);
}

static int input(ms_migration *m, uint32_t slot, int has_off, uint64_t off,
                 const void *buf, size_t len)
{
    pthread_mutex_lock(&m->lock);
    mg_chan *c = slot < m->nchans ? &m->chans[slot] : NULL;
    int rc;
    if (!c || !c->opened || c->ended) {
        usage_problem(m, slot,
                      c && c->opened ? "input after its end"
                                     : "input before it was opened");
        rc = -1;
    } else if (c->failed) {
        rc = -1;
    } else if (c->seek_pending && !(has_off && c->seek_target >= off &&
                                    c->seek_target - off < len)) {
        rc = MS_NEXT_SEEK; /* bytes from elsewhere: not used */
    } else {
        if (!has_off) /* where these bytes start */
            off = c->next_off;
        c->next_off = off + len;
        if (!c->r)
            keep_head(c, buf, len);
        if (c->r && !c->nheld)
            rc = feed_now(m, c, slot, has_off, off, buf, len);
        else
            rc = wait_or_hold(m, c, slot, has_off, off, buf, len);
        release(m);
        if (c->failed)
            rc = -1;
    }
    pthread_mutex_unlock(&m->lock);
    return rc;
}

int ms_migration_input(ms_migration *m, uint32_t slot, const void *buf,
                       size_t len)
{
    return input(m, slot, 0, 0, buf, len);
}

int ms_migration_input_at(ms_migration *m, uint32_t slot, uint64_t offset,
                          const void *buf, size_t len)
{
    return input(m, slot, 1, offset, buf, len);
}

uint64_t ms_migration_seek_target(const ms_migration *m, uint32_t slot)
{
    return slot < m->nchans ? m->chans[slot].seek_target : 0;
}

int ms_migration_channel_end(ms_migration *m, uint32_t slot)
{
    pthread_mutex_lock(&m->lock);
    mg_chan *c = slot < m->nchans ? &m->chans[slot] : NULL;
    if (!c || !c->opened) {
        usage_problem(m, slot, "ended before it was opened");
        pthread_mutex_unlock(&m->lock);
        return -1;
    }
    if (!c->ended && !c->failed) {
        c->ended = 1;
        if (c->r && !c->nheld) {
            finish_channel(m, c, slot);
        } else if (m->flags & MS_MIGRATION_CONCURRENT) {
            while (!c->failed && !may_decode(m, c))
                pthread_cond_wait(&m->changed, &m->lock);
            if (!c->failed)
                start(m, c, slot);
        }
        release(m);
    }
    int rc = c->failed ? -1 : 0;
    pthread_mutex_unlock(&m->lock);
    return rc;
}

void ms_migration_no_main(ms_migration *m)
{
    pthread_mutex_lock(&m->lock);
    m->no_main = 1;
    pthread_cond_broadcast(&m->changed);
    release(m);
    pthread_mutex_unlock(&m->lock);
}

int ms_migration_finish(ms_migration *m)
{
    pthread_mutex_lock(&m->lock);
    m->no_main = 1;
    m->flags &= ~MS_MIGRATION_CONCURRENT; /* finish runs alone */
    int all_done = 1;
    for (size_t i = 0; i < m->nchans; i++)
        if (m->chans[i].opened)
            m->chans[i].ended = 1;
    release(m);
    for (size_t i = 0; i < m->nchans; i++) {
        mg_chan *c = &m->chans[i];
        if (c->opened && c->r && !c->nheld && !c->finished && !c->failed)
            finish_channel(m, c, (uint32_t)i);
        if (c->opened)
            all_done &= c->finished && !c->failed;
    }
    /* Whole-migration checks mean something only when every channel was
     * read to its end; otherwise its own problem already says why not. */
    if (all_done && !m->set_failed && ms_set_finish(m->set) < 0)
        set_problem(m);
    if (m->nested)
        ms_nested_finish(m->nested);
    int rc = m->problems ? -1 : 0;
    pthread_mutex_unlock(&m->lock);
    return rc;
}
