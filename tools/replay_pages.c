/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* migstream-replay's answers to postcopy page requests.
 *
 * A postcopy destination places each page once (userfaultfd: a second
 * copy of a page fails its load), so a page cannot simply be sent twice:
 * the answer is the capture's own record of that page, moved forward.
 *
 *   scan (before sending)   the main stream through a reader: every RAM
 *                           page record after the PACKAGED command (the
 *                           postcopy part), with its block, page offset,
 *                           file range and whether it names its block
 *   request (rp thread)     REQ_PAGES -> the records of the pages asked
 *                           for, queued
 *   send (main sender)      the main stream record by record:
 *        bytes up to the next page record --> as captured
 *        queued records not yet sent      --> now, naming their block
 *        the record itself                --> unless already sent; a
 *                                              record that continues a
 *                                              block the destination no
 *                                              longer has as its last gets
 *                                              the block's name
 *
 * Only the main channel answers (a preempt channel, when the capture has
 * one, is sent as recorded).  Page records are moved, never changed:
 * only their header may gain the block name (RAM_CONTINUE cleared). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h" /* ms_grow (libstream/core; NULL: malloc) */
#include "encode.h" /* enc_ram_record, RAM_CONTINUE: one home */
#include "replay.h"

/* Bytes of the main stream handed to the scanning reader at once. */
#define SCAN_CHUNK (1u << 20)
/* No block: the destination's last block is the capture's own. */
#define NO_BLOCK UINT32_MAX

/* ---- scan ---- */
static int block_index(replay_pages *pg, const char *name, uint32_t *idx)
{
    for (size_t i = 0; i < pg->nblocks; i++)
        if (strcmp(pg->blocks[i], name) == 0) {
            *idx = (uint32_t)i;
            return 0;
        }
    char **grown = realloc(pg->blocks, (pg->nblocks + 1) * sizeof *grown);
    if (!grown)
        return -1;
    pg->blocks = grown;
    if (!(pg->blocks[pg->nblocks] = strdup(name)))
        return -1;
    *idx = (uint32_t)pg->nblocks++;
    return 0;
}

/* One MS_EV_RAM_PAGE of the postcopy part. */
static int add_page(replay_pages *pg, const replay_source *src,
                    const ms_event *ev)
{
    if (ms_grow(NULL, (void **)&pg->v, sizeof *pg->v, &pg->cap, pg->n + 1))
        return -1;
    replay_page *p = &pg->v[pg->n];
    memset(p, 0, sizeof *p);
    uint8_t hdr[8];
    if (src->read_at(src->ctx, ev->offset, hdr, 8) != 8)
        return -1;
    p->off = ev->offset;
    p->len = ev->length;
    p->page = ev->u.ram.offset;
    p->named = !(hdr[7] & RAM_CONTINUE);
    /* a delta or a compressed page depends on what went before it */
    p->movable =
        ev->u.ram.record == MS_RAM_PAGE || ev->u.ram.record == MS_RAM_ZERO;
    if (block_index(pg, ev->u.ram.block, &p->block) < 0)
        return -1;
    pg->n++;
    return 0;
}

/* Feed the reader one slice; the events that matter noted.  0, 1 at the
 * stream's end of interest, -1 when it cannot be decoded. */
static int scan_events(replay_pages *pg, const replay_source *src, ms_reader *r,
                       uint64_t *pkg_end)
{
    ms_event ev;
    int got;
    while ((got = ms_reader_next(r, &ev)) == MS_NEXT_EVENT) {
        if (ev.kind == MS_EV_COMMAND && ev.u.command.nesting == 0 &&
            ev.u.command.cmd == MS_QCMD_PACKAGED)
            *pkg_end = ev.offset + ev.length + ev.u.command.value;
        else if (ev.kind == MS_EV_RAM_PAGE && *pkg_end &&
                 ev.offset >= *pkg_end && add_page(pg, src, &ev) < 0)
            return -1;
    }
    return got == MS_NEXT_INPUT ? 0 : -1;
}

/* By block, page, then stream order (idx). */
static int cmp_key(const void *a, const void *b)
{
    const replay_page_key *x = a, *y = b;
    if (x->block != y->block)
        return x->block < y->block ? -1 : 1;
    if (x->page != y->page)
        return x->page < y->page ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

int replay_pages_scan(const char *prog, const replay_source *src,
                      replay_pages *pg)
{
    memset(pg, 0, sizeof *pg);
    pthread_mutex_init(&pg->lock, NULL);
    if (src->kind != MS_FORMAT_QEMU_MAIN)
        return 0;
    ms_options opt;
    ms_options_init(&opt);
    ms_reader *r = ms_reader_create(&opt);
    uint8_t *buf = malloc(SCAN_CHUNK);
    uint64_t at = 0, pkg_end = 0;
    int rc = r && buf ? 0 : -1;
    while (rc == 0) {
        ssize_t got = src->read_at(src->ctx, at, buf, SCAN_CHUNK);
        if (got <= 0) {
            rc = got < 0 ? -1 : 0;
            break;
        }
        at += (uint64_t)got;
        rc = ms_reader_input(r, buf, (size_t)got) == 0
                 ? scan_events(pg, src, r, &pkg_end)
                 : -1;
    }
    if (rc < 0) {
        fprintf(stderr,
                "%s: %s: not decoded (%s at %llu): postcopy page requests "
                "will not be answered\n",
                prog, src->label,
                r ? ms_error_name(ms_reader_error(r)->code) : "memory",
                (unsigned long long)(r ? ms_reader_error(r)->offset : 0));
        pg->n = 0;
    }
    ms_reader_free(r);
    free(buf);
    /* the lookup order: by block, then page, then stream order */
    pg->order = pg->n ? malloc(pg->n * sizeof *pg->order) : NULL;
    if (pg->n && !pg->order)
        pg->n = 0;
    for (size_t i = 0; i < pg->n; i++)
        pg->order[i] =
            (replay_page_key){pg->v[i].block, (uint32_t)i, pg->v[i].page};
    if (pg->n)
        qsort(pg->order, pg->n, sizeof *pg->order, cmp_key);
    return 0;
}

void replay_pages_free(replay_pages *pg)
{
    for (size_t i = 0; i < pg->nblocks; i++)
        free(pg->blocks[i]);
    free(pg->blocks);
    free(pg->v);
    free(pg->order);
    free(pg->queue);
    pthread_mutex_destroy(&pg->lock);
    memset(pg, 0, sizeof *pg);
}

/* ---- requests (the return-path thread) ---- */
static int queue_push(replay_pages *pg, uint32_t idx)
{
    if (ms_grow(NULL, (void **)&pg->queue, sizeof *pg->queue, &pg->qcap,
                pg->qlen + 1))
        return -1;
    pg->queue[pg->qlen++] = idx;
    return 0;
}

/* First entry of `order` at or after (block, page). */
static size_t lower_bound(const replay_pages *pg, uint32_t block, uint64_t page)
{
    size_t lo = 0, hi = pg->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const replay_page_key *k = &pg->order[mid];
        if (k->block < block || (k->block == block && k->page < page))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int replay_pages_request(replay_pages *pg, const char *block, uint64_t start,
                         uint64_t len)
{
    uint32_t b;
    size_t found = 0;
    for (b = 0; b < pg->nblocks && strcmp(pg->blocks[b], block) != 0; b++)
        ;
    if (b == pg->nblocks)
        return 0;
    pthread_mutex_lock(&pg->lock);
    for (size_t i = lower_bound(pg, b, start); i < pg->n; i++) {
        const replay_page_key *k = &pg->order[i];
        if (k->block != b || k->page >= start + len)
            break;
        if (pg->v[k->idx].movable && queue_push(pg, k->idx) == 0)
            found++;
    }
    pthread_mutex_unlock(&pg->lock);
    return found > 0;
}

/* ---- sending the main stream with answers ---- */
typedef struct main_out {
    const replay_source *src;
    int fd;
    replay_pace *pace;
    uint64_t *sent;      /* capture offset reached */
    uint32_t wire_block; /* the block the destination takes as last */
    FILE *log;
} main_out;

/* enc_out's writer: straight to the connection, paced. */
static int enc_to_fd(void *opaque, uint64_t at, const void *p, size_t n)
{
    main_out *m = opaque;
    (void)at;
    replay_pace_take(m->pace, n);
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t w = write(m->fd, b, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return errno ? errno : EIO;
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Record `idx`, naming its block when it does not or `force` says. */
static int send_record(main_out *m, replay_pages *pg, uint32_t idx, int force)
{
    replay_page *p = &pg->v[idx];
    uint64_t from = p->off;
    int rename =
        !p->named &&
        (force || (m->wire_block != NO_BLOCK && m->wire_block != p->block));
    if (rename) {
        uint8_t hdr[8];
        if (m->src->read_at(m->src->ctx, p->off, hdr, 8) != 8)
            return -2;
        uint64_t v = 0;
        for (int i = 0; i < 8; i++)
            v = v << 8 | hdr[i];
        enc_out o = {.write = enc_to_fd, .opaque = m};
        enc_ram_record(&o, v & ~(uint64_t)RAM_CONTINUE, pg->blocks[p->block]);
        if (o.err) {
            errno = o.err;
            return -1;
        }
        from += 8; /* the payload follows as captured */
    }
    uint64_t done = 0;
    int rc =
        replay_copy_range(m->src, m->fd, m->pace, from, p->off + p->len, &done);
    p->sent = 1;
    m->wire_block = p->block;
    return rc;
}

/* The queued requests, before record `next` goes. */
static int send_answers(main_out *m, replay_pages *pg, uint32_t next)
{
    for (;;) {
        pthread_mutex_lock(&pg->lock);
        uint32_t idx =
            pg->qhead < pg->qlen ? pg->queue[pg->qhead++] : UINT32_MAX;
        pthread_mutex_unlock(&pg->lock);
        if (idx == UINT32_MAX)
            return 0;
        if (idx < next || pg->v[idx].sent)
            continue; /* on its way already */
        int rc = send_record(m, pg, idx, 1);
        if (rc != 0)
            return rc;
        pg->answered++;
        fprintf(m->log, "answered: %s 0x%llx from %s:%llu\n",
                pg->blocks[pg->v[idx].block],
                (unsigned long long)pg->v[idx].page, m->src->label,
                (unsigned long long)pg->v[idx].off);
        fflush(m->log);
    }
}

int replay_send_main(const replay_source *src, int fd, replay_pace *pace,
                     replay_pages *pg, FILE *log, uint64_t *sent)
{
    main_out m = {src, fd, pace, sent, NO_BLOCK, log};
    uint64_t pos = 0, done = 0;
    int rc = 0;
    *sent = 0;
    for (uint32_t i = 0; i < pg->n && rc == 0; i++) {
        replay_page *p = &pg->v[i];
        rc = replay_copy_range(src, fd, pace, pos, p->off, &done);
        *sent = pos + done;
        if (rc == 0)
            rc = send_answers(&m, pg, i);
        if (rc == 0 && !p->sent)
            rc = send_record(&m, pg, i, 0);
        pos = p->off + p->len;
        if (rc == 0)
            *sent = pos;
    }
    if (rc == 0) {
        rc = replay_copy_range(src, fd, pace, pos, src->size, &done);
        *sent = pos + done;
    }
    return rc;
}
