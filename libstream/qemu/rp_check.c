/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* A QEMU main stream checked against its return path (rp_check.h).
 *
 *   main stream events --> PINGs (value, offset, after the switchover?)
 *                      --> RAM block list; pages sent after POSTCOPY_LISTEN
 *                          (one bit per target page, per block)
 *                      --> VFIO DEV_INIT_DATA_SENT: switchover-ack in use
 *   return path events --> PONGs, page requests, SWITCHOVER_ACK, SHUT
 *                                   |
 *   finish: every PING has a PONG and every PONG a PING; every requested
 *   page was sent after LISTEN; SWITCHOVER_ACK present when needed and
 *   ahead of the PONGs of PINGs sent after the switchover.
 *
 * Everything is kept until the finish, so the two files may be read in
 * either order.  Memory: PINGs, PONGs and requests are bounded by
 * max_packets; the page bitmaps (1 bit per target page of a block that
 * got pages in postcopy) by max_buffered_bytes.
 */
#include <stdio.h>

#include "rp_check.h"

#define NAME_CAP 256
#define NO_SLOT UINT32_MAX

typedef struct rp_ping {
    uint32_t value;
    uint64_t offset;
    int after_switchover; /* sent after SWITCHOVER_START */
    int answered;
} rp_ping;

typedef struct rp_pong {
    uint32_t value;
    uint64_t offset;
} rp_pong;

typedef struct rp_req {
    uint32_t name; /* index in names */
    uint64_t start, offset;
    uint32_t length;
} rp_req;

typedef struct rp_block {
    char name[NAME_CAP];
    uint64_t used_length;
    uint32_t page_size; /* of the pages that set `sent` */
    uint8_t *sent;      /* bit per page sent after LISTEN; NULL: none */
} rp_block;

struct rp_check {
    ms_options opt;
    uint32_t main_slot, rp_slot; /* NO_SLOT: not seen */
    /* main stream */
    rp_ping *pings;
    size_t npings, pingcap;
    rp_block *blocks;
    size_t nblocks, blockcap;
    uint64_t bitmap_bytes;
    int listening, switched;
    uint64_t listen_offset, switch_offset;
    int init_data_sent;
    uint64_t init_data_offset;
    /* return path */
    rp_pong *pongs;
    size_t npongs, pongcap;
    rp_req *reqs;
    size_t nreqs, reqcap;
    char (*names)[NAME_CAP]; /* block names the requests use */
    size_t nnames, namecap;
    int have_ack, have_shut;
    uint64_t ack_offset, shut_offset;
};

#define ALLOC(c) (&(c)->opt.allocator)

/* fail: an error of one channel slot (or NO_SLOT); fail_limit: an
 * MS_ERR_LIMIT naming the ms_options limit exceeded. */
#define fail(err, code, slot, offset, ...)                                    \
    ms_fail_channel(err, code, MS_LIMIT_NONE, slot, offset, __VA_ARGS__)
#define fail_limit(err, limit, slot, offset, ...)                             \
    ms_fail_channel(err, MS_ERR_LIMIT, limit, slot, offset, __VA_ARGS__)

rp_check *rp_check_new(const ms_options *opt)
{
    rp_check *c = ms_calloc(&opt->allocator, 1, sizeof *c);
    if (!c)
        return NULL;
    c->opt = *opt;
    c->main_slot = c->rp_slot = NO_SLOT;
    return c;
}

void rp_check_free(rp_check *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->nblocks; i++)
        ms_free(ALLOC(c), c->blocks[i].sent);
    ms_free(ALLOC(c), c->blocks);
    ms_free(ALLOC(c), c->pings);
    ms_free(ALLOC(c), c->pongs);
    ms_free(ALLOC(c), c->reqs);
    ms_free(ALLOC(c), c->names);
    ms_free(ALLOC(c), c);
}

/* Room for one more element in a list bounded by max_packets. */
static int grow(rp_check *c, void **arr, size_t elem, size_t *cap, size_t n,
                const char *what, uint32_t slot, uint64_t offset,
                ms_error_info *err)
{
    if (n >= c->opt.max_packets)
        return fail_limit(err, MS_LIMIT_MAX_PACKETS, slot, offset,
                          "more than max_packets (%u) %s", c->opt.max_packets,
                          what);
    if (ms_grow(ALLOC(c), arr, elem, cap, n + 1) < 0)
        return fail(err, MS_ERR_NO_MEMORY, slot, offset, "%s", what);
    return 0;
}

int rp_check_rp_header(rp_check *c, uint32_t slot, ms_error_info *err)
{
    if (c->rp_slot != NO_SLOT)
        return fail(err, MS_ERR_CHANNEL_SET, slot, 0,
                    "a second return path; a migration has one");
    c->rp_slot = slot;
    return 0;
}

/* ---- the main stream ------------------------------------------------------
 */

static rp_block *block_named(rp_check *c, const char *name, uint32_t hint)
{
    if (hint < c->nblocks && strcmp(c->blocks[hint].name, name) == 0)
        return &c->blocks[hint];
    for (size_t i = 0; i < c->nblocks; i++)
        if (strcmp(c->blocks[i].name, name) == 0)
            return &c->blocks[i];
    return NULL;
}

/* A page record after POSTCOPY_LISTEN: set its bit (the block's bitmap is
 * made on its first such page, within max_buffered_bytes). */
static int page_sent(rp_check *c, uint32_t slot, const ms_event *ev,
                     ms_error_info *err)
{
    const ms_ram_info *ri = &ev->u.ram;
    rp_block *b = ri->block ? block_named(c, ri->block, ri->block_index) : NULL;
    if (!b || !ri->page_size || ri->offset >= b->used_length)
        return 0; /* the main stream's own decoder judges such pages */
    uint64_t pages = (b->used_length + ri->page_size - 1) / ri->page_size;
    if (!b->sent) {
        uint64_t bytes = (pages + 7) / 8;
        if (bytes > c->opt.max_buffered_bytes - c->bitmap_bytes)
            return fail_limit(err, MS_LIMIT_MAX_BUFFERED_BYTES, slot,
                              ev->offset,
                              "the record of pages sent in postcopy needs %llu "
                              "more bytes for block \"%s\": over "
                              "max_buffered_bytes",
                              (unsigned long long)bytes, b->name);
        if (!(b->sent = ms_calloc(ALLOC(c), (size_t)bytes, 1)))
            return fail(err, MS_ERR_NO_MEMORY, slot, ev->offset, "page bitmap");
        c->bitmap_bytes += bytes;
        b->page_size = ri->page_size;
    }
    if (ri->page_size != b->page_size)
        return 0; /* one page size per stream; never seen otherwise */
    uint64_t page = ri->offset / b->page_size;
    b->sent[page / 8] |= (uint8_t)(1u << (page % 8));
    return 0;
}

static int main_command(rp_check *c, uint32_t slot, const ms_event *ev,
                        ms_error_info *err)
{
    const char *name = ev->u.command.name;
    if (strcmp(name, "PING") == 0) {
        if (grow(c, (void **)&c->pings, sizeof *c->pings, &c->pingcap,
                 c->npings, "PINGs", slot, ev->offset, err) < 0)
            return -1;
        c->pings[c->npings++] = (rp_ping){(uint32_t)ev->u.command.value,
                                          ev->offset, c->switched, 0};
    } else if (strcmp(name, "POSTCOPY_LISTEN") == 0 && !c->listening) {
        c->listening = 1;
        c->listen_offset = ev->offset;
    } else if (strcmp(name, "SWITCHOVER_START") == 0 && !c->switched) {
        c->switched = 1;
        c->switch_offset = ev->offset;
    }
    return 0;
}

int rp_check_main_event(rp_check *c, uint32_t slot, const ms_event *ev,
                        ms_error_info *err)
{
    c->main_slot = slot;
    switch (ev->kind) {
    case MS_EV_COMMAND:
        return main_command(c, slot, ev, err);
    case MS_EV_RAM_BLOCK:
        if (c->nblocks >= c->opt.max_ram_blocks)
            return 0; /* the set reports the limit */
        if (ms_grow(ALLOC(c), (void **)&c->blocks, sizeof *c->blocks,
                    &c->blockcap, c->nblocks + 1) < 0)
            return fail(err, MS_ERR_NO_MEMORY, slot, ev->offset, "blocks");
        snprintf(c->blocks[c->nblocks].name, NAME_CAP, "%s", ev->u.ram.block);
        c->blocks[c->nblocks++].used_length = ev->u.ram.used_length;
        return 0;
    case MS_EV_RAM_PAGE:
        return c->listening ? page_sent(c, slot, ev, err) : 0;
    case MS_EV_VFIO_MARKER:
        if (!c->init_data_sent &&
            strcmp(ev->u.vfio.name, "DEV_INIT_DATA_SENT") == 0) {
            c->init_data_sent = 1;
            c->init_data_offset = ev->offset;
        }
        return 0;
    default:
        return 0;
    }
}

/* ---- the return path ------------------------------------------------------
 */

static int name_index(rp_check *c, const char *name, uint32_t *out,
                      uint64_t offset, ms_error_info *err)
{
    for (size_t i = 0; i < c->nnames; i++)
        if (strcmp(c->names[i], name) == 0) {
            *out = (uint32_t)i;
            return 0;
        }
    if (grow(c, (void **)&c->names, sizeof *c->names, &c->namecap, c->nnames,
             "block names", c->rp_slot, offset, err) < 0)
        return -1;
    snprintf(c->names[c->nnames], NAME_CAP, "%s", name);
    *out = (uint32_t)c->nnames++;
    return 0;
}

int rp_check_rp_event(rp_check *c, uint32_t slot, const ms_event *ev,
                      ms_error_info *err)
{
    if (ev->kind != MS_EV_RP_MESSAGE)
        return 0;
    const ms_rp_info *m = &ev->u.rp;
    switch (m->type) {
    case MS_RP_SHUT:
        c->have_shut = 1;
        c->shut_offset = ev->offset;
        if (m->value)
            return fail(err, MS_ERR_RETURN_PATH, slot, ev->offset,
                        "SHUT %u: the destination reports that the "
                        "migration failed",
                        m->value);
        return 0;
    case MS_RP_PONG:
        if (grow(c, (void **)&c->pongs, sizeof *c->pongs, &c->pongcap,
                 c->npongs, "PONGs", slot, ev->offset, err) < 0)
            return -1;
        c->pongs[c->npongs++] = (rp_pong){m->value, ev->offset};
        return 0;
    case MS_RP_REQ_PAGES_ID:
    case MS_RP_REQ_PAGES: {
        rp_req q = {0, m->start, ev->offset, m->length};
        if (grow(c, (void **)&c->reqs, sizeof *c->reqs, &c->reqcap, c->nreqs,
                 "page requests", slot, ev->offset, err) < 0 ||
            name_index(c, m->block, &q.name, ev->offset, err) < 0)
            return -1;
        c->reqs[c->nreqs++] = q;
        return 0;
    }
    case MS_RP_SWITCHOVER_ACK:
        c->have_ack = 1;
        c->ack_offset = ev->offset;
        return 0;
    default:
        return 0;
    }
}

/* ---- the checks ---------------------------------------------------------- */

/* PING <-> PONG, by value (the destination's listen thread may answer a
 * later PING before the main thread answers one inside a package, so the
 * order may differ). */
static int check_pongs(rp_check *c, ms_error_info *err)
{
    for (size_t k = 0; k < c->npongs; k++) {
        const rp_pong *po = &c->pongs[k];
        rp_ping *pi = NULL;
        for (size_t i = 0; i < c->npings && !pi; i++)
            if (!c->pings[i].answered && c->pings[i].value == po->value)
                pi = &c->pings[i];
        if (!pi)
            return fail(err, MS_ERR_RETURN_PATH, c->rp_slot, po->offset,
                        "PONG 0x%x answers no PING of the main stream",
                        po->value);
        pi->answered = 1;
        /* The source switches over only after the ack arrived, so the
         * destination wrote the ack before it read any later PING. */
        if (pi->after_switchover && c->have_ack && po->offset < c->ack_offset)
            return fail(err, MS_ERR_RETURN_PATH, c->rp_slot, po->offset,
                        "PONG 0x%x comes before SWITCHOVER_ACK (at %llu), "
                        "but its PING (main stream offset %llu) follows "
                        "the switchover",
                        po->value, (unsigned long long)c->ack_offset,
                        (unsigned long long)pi->offset);
    }
    for (size_t i = 0; i < c->npings; i++)
        if (!c->pings[i].answered)
            return fail(err, MS_ERR_RETURN_PATH, c->rp_slot, c->shut_offset,
                        "PING 0x%x (main stream offset %llu) has no PONG "
                        "before SHUT: the destination answers every PING",
                        c->pings[i].value,
                        (unsigned long long)c->pings[i].offset);
    return 0;
}

/* Every target page of every requested host page was sent after the main
 * stream's POSTCOPY_LISTEN. */
static int check_requests(rp_check *c, ms_error_info *err)
{
    for (size_t k = 0; k < c->nreqs; k++) {
        const rp_req *q = &c->reqs[k];
        const char *name = c->names[q->name];
        rp_block *b = block_named(c, name, UINT32_MAX);
        if (!c->listening)
            return fail(err, MS_ERR_RETURN_PATH, c->rp_slot, q->offset,
                        "a page request, but the main stream never enters "
                        "postcopy (no POSTCOPY_LISTEN)");
        if (!b)
            return fail(err, MS_ERR_RETURN_PATH, c->rp_slot, q->offset,
                        "request for RAM block \"%s\", which the main "
                        "stream's block list does not have",
                        name);
        if (q->start >= b->used_length || b->used_length - q->start < q->length)
            return fail(err, MS_ERR_RETURN_PATH, c->rp_slot, q->offset,
                        "request 0x%llx len 0x%x outside RAM block \"%s\" "
                        "(0x%llx bytes)",
                        (unsigned long long)q->start, q->length, name,
                        (unsigned long long)b->used_length);
        uint64_t first = b->page_size ? q->start / b->page_size : 0;
        uint64_t end =
            b->page_size
                ? (q->start + q->length + b->page_size - 1) / b->page_size
                : 1;
        for (uint64_t pg = first; pg < end; pg++)
            if (!b->sent || !(b->sent[pg / 8] & (1u << (pg % 8))))
                return fail(err, MS_ERR_RETURN_PATH, c->rp_slot, q->offset,
                            "requested page \"%s\" 0x%llx was not sent on "
                            "the main stream after POSTCOPY_LISTEN (at "
                            "%llu)",
                            name,
                            (unsigned long long)(b->page_size
                                                     ? pg * b->page_size
                                                     : q->start),
                            (unsigned long long)c->listen_offset);
    }
    return 0;
}

int rp_check_finish(rp_check *c, ms_error_info *err)
{
    if (!c || c->rp_slot == NO_SLOT || c->main_slot == NO_SLOT)
        return 0; /* one side alone: nothing spans the pair */
    if (check_pongs(c, err) < 0 || check_requests(c, err) < 0)
        return -1;
    if (c->init_data_sent && !c->have_ack)
        return fail(err, MS_ERR_RETURN_PATH, c->rp_slot, c->shut_offset,
                    "the main stream uses switchover-ack (VFIO "
                    "DEV_INIT_DATA_SENT at %llu) but the return path has "
                    "no SWITCHOVER_ACK",
                    (unsigned long long)c->init_data_offset);
    return 0;
}
