/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* migstream-bench: a migration held in memory decoded through
 * ms_migration the way tool_run (tool_common.c) decodes files, minus the
 * file I/O: a QEMU main channel first, then the other channels, on one
 * thread each when asked (MS_MIGRATION_CONCURRENT); RAM pages placed into
 * a buffer at their offsets (what a destination or extraction does). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "bench.h"
#include "tool_common.h"

/* ---- the counting allocator ------------------------------------------------
 */

static void *ca_alloc(void *opaque, size_t n)
{
    count_alloc *c = opaque;
    size_t *p = malloc(n + sizeof(max_align_t));
    if (!p)
        return NULL;
    *p = n;
    size_t now = atomic_fetch_add(&c->now, n) + n;
    size_t peak = atomic_load(&c->peak);
    while (now > peak && !atomic_compare_exchange_weak(&c->peak, &peak, now))
        ;
    return (char *)p + sizeof(max_align_t);
}

static void ca_free(void *opaque, void *ptr)
{
    count_alloc *c = opaque;
    size_t *p = (size_t *)(void *)((char *)ptr - sizeof(max_align_t));
    atomic_fetch_sub(&c->now, *p);
    free(p);
}

ms_allocator count_allocator(count_alloc *c)
{
    return (ms_allocator){ca_alloc, ca_free, c};
}

void count_reset(count_alloc *c)
{
    atomic_store(&c->now, 0);
    atomic_store(&c->peak, 0);
}

/* ---- page placement
 * ---------------------------------------------------------- */

/* A destination placing guest RAM writes each page once and does not read
 * it back soon.  Cached stores pay a read-for-ownership of every line
 * first: copying 4 KiB pages one by one with memcpy ran at 0.63x of one
 * bulk memcpy of the same bytes here (glibc's bulk memcpy streams), this
 * SSE2 streaming-store loop at 0.86x.  Whole pages at 16-byte-aligned
 * destinations only (the source may be unaligned); memcpy otherwise.  The
 * stores are fenced once, when the migration is done (run_migration). */
static void place_page(uint8_t *dst, const uint8_t *src, size_t n)
{
#if defined(__SSE2__)
    if (n % 64 == 0 && (uintptr_t)dst % 16 == 0) {
        __m128i *d = (__m128i *)(void *)dst;
        const __m128i *s = (const __m128i *)(const void *)src;
        for (size_t i = 0; i < n / 16; i += 4) {
            __m128i a = _mm_loadu_si128(s + i), b = _mm_loadu_si128(s + i + 1),
                    c = _mm_loadu_si128(s + i + 2),
                    e = _mm_loadu_si128(s + i + 3);
            _mm_stream_si128(d + i, a);
            _mm_stream_si128(d + i + 1, b);
            _mm_stream_si128(d + i + 2, c);
            _mm_stream_si128(d + i + 3, e);
        }
        return;
    }
#endif
    memcpy(dst, src, n);
}

/* A ZERO record: the page filled with its byte (streamed like a copy). */
static void place_fill(uint8_t *dst, uint8_t byte, size_t n)
{
#if defined(__SSE2__)
    if (n % 16 == 0 && (uintptr_t)dst % 16 == 0) {
        __m128i v = _mm_set1_epi8((char)byte);
        __m128i *d = (__m128i *)(void *)dst;
        for (size_t i = 0; i < n / 16; i++)
            _mm_stream_si128(d + i, v);
        return;
    }
#endif
    memset(dst, byte, n);
}

static void place_done(void)
{
#if defined(__SSE2__)
    _mm_sfence();
#endif
}

/* ---- the migration
 * ------------------------------------------------------------ */

typedef struct run_ctx {
    const mig_job *job;
    mig_tally *t;
} run_ctx;

/* Callbacks are serialised by the migration: the tally needs no lock. */
static void on_event(void *ctx, const ms_event *ev, const ms_event_origin *o)
{
    run_ctx *rc = ctx;
    if (ev->kind == MS_EV_DATA) {
        /* a reader's chunk bytes, or the set's reassembled packet bytes */
        int image = o->derived ? !ev->u.data.config : !ev->u.data.in_packet;
        if (image && !o->device)
            rc->t->data_bytes += (int64_t)ev->u.data.size;
        return;
    }
    if (ev->kind != MS_EV_RAM_PAGE)
        return;
    const ms_ram_info *ram = &ev->u.ram;
    int zero = ram->record == MS_RAM_ZERO;
    if (!zero && !(ram->record == MS_RAM_PAGE && ram->data))
        return;
    rc->t->pages++;
    uint8_t *ram_buf = rc->job->ram;
    size_t size = zero ? ram->page_size : ram->size;
    if (!ram_buf || ram->offset > rc->job->ram_len ||
        size > rc->job->ram_len - ram->offset)
        return;
    if (zero)
        place_fill(ram_buf + ram->offset, ram->fill, size);
    else
        place_page(ram_buf + ram->offset, ram->data, size);
}

/* A problem fails the case: the first one of a run is said. */
static void on_problem(void *ctx, const ms_error_info *e)
{
    run_ctx *rc = ctx;
    if (rc->t->problems++ == 0)
        tool_print_problem(stderr, "migstream-bench", e);
}

typedef struct channel_feed {
    pthread_t thread;
    ms_migration *m;
    const mig_job *job;
    uint32_t slot;
} channel_feed;

/* One channel's bytes, in slices when asked, then its end. */
static void feed(ms_migration *m, const mig_job *job, uint32_t slot)
{
    const sink *s = &job->ch[slot];
    size_t slice = job->slice ? job->slice : s->len;
    for (size_t off = 0; off < s->len; off += slice) {
        size_t len = s->len - off < slice ? s->len - off : slice;
        if (ms_migration_input(m, slot, s->p + off, len) < 0)
            break;
    }
    ms_migration_channel_end(m, slot);
}

static void *feed_thread(void *arg)
{
    channel_feed *f = arg;
    feed(f->m, f->job, f->slot);
    return NULL;
}

/* The channels after the main one: on threads, or in order here. */
static int feed_rest(ms_migration *m, const mig_job *job, uint32_t first)
{
    uint32_t n = job->nch - first;
    channel_feed *fs = job->threads ? calloc(n, sizeof *fs) : NULL;
    uint32_t started = 0;
    for (; fs && started < n; started++) {
        fs[started] =
            (channel_feed){.m = m, .job = job, .slot = first + started};
        if (pthread_create(&fs[started].thread, NULL, feed_thread,
                           &fs[started]) != 0)
            break;
    }
    for (uint32_t i = started; i < n; i++)
        feed(m, job, first + i);
    for (uint32_t i = 0; i < started; i++)
        pthread_join(fs[i].thread, NULL);
    free(fs);
    return 0;
}

static ms_migration *create(const mig_job *job, run_ctx *rc)
{
    ms_options o;
    ms_options_init(&o);
    o.verify_checks = job->verify;
    o.input_stable = job->slice == 0;
    o.data_only = 1; /* as migstream-verify and -extract read */
    o.max_buffered_bytes = (uint64_t)4 << 30;
    if (job->ca)
        o.allocator = count_allocator(job->ca);
    ms_migration_callbacks cb = {on_event, on_problem, rc};
    unsigned flags = (job->payloads ? MS_MIGRATION_NESTED_PAYLOADS : 0) |
                     (job->threads ? MS_MIGRATION_CONCURRENT : 0);
    return ms_migration_create(&o, &cb, flags);
}

int run_migration(const mig_job *job, mig_tally *t)
{
    *t = (mig_tally){0};
    run_ctx rc = {job, t};
    ms_migration *m = create(job, &rc);
    if (!m)
        return -1;
    for (uint32_t c = 0; c < job->nch; c++) {
        ms_channel_input in = {.size = job->ch[c].len};
        if (job->slice == 0) {
            in.whole = job->ch[c].p;
            in.whole_len = job->ch[c].len;
        }
        if (ms_migration_channel_open(m, c, &in) < 0) {
            ms_migration_free(m);
            return -1;
        }
    }
    uint32_t first = 0;
    if (job->qemu_main) {
        feed(m, job, 0);
        first = 1;
    }
    ms_migration_no_main(m); /* main channels read (as tool_run) */
    feed_rest(m, job, first);
    ms_migration_finish(m);
    place_done();
    ms_migration_free(m);
    return 0;
}
