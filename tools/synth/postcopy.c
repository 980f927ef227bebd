/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* --qemu BASE --postcopy: BASE as a postcopy migration.
 *
 *   BASE header + CONFIGURATION
 *   OPEN_RETURN_PATH, PING 1, POSTCOPY_ADVISE (page size, page size)
 *   BASE's ram START (block list)
 *   ram PART: precopy pages (random pages of every block, some zero)
 *   [SWITCHOVER_START when BASE has one: a QEMU >= 10.0 destination]
 *   POSTCOPY_RAM_DISCARD per block (<= 12 ranges each), PING 2
 *   PACKAGED { POSTCOPY_LISTEN, BASE's device sections, PING 3, RUN }
 *   PING 4, ram PART: postcopy pages, ram END: more, EOS; EOF; no trailer
 *   [--preempt FILE: every third postcopy page instead, then EOS]
 *
 * In postcopy each page goes once (QEMU clears its dirty bit when it sends
 * it); every discarded page that had been sent is sent again, as QEMU
 * does (it discards exactly the dirty pages it already sent). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "synth.h"

typedef struct pc_block {
    char name[256];
    uint64_t len;
    int last_pre, last_post; /* CONTINUE bookkeeping per channel */
} pc_block;

/* A page the migration wrote or discarded, and what it holds at the end:
 * zero, or rng_bytes from `seed`. */
typedef struct pc_page {
    uint32_t block;
    uint64_t index;
    uint64_t seed; /* 0: zero */
    int sent_pre, discarded, sent_post;
} pc_page;

typedef struct pc_synth {
    const workload *wl;
    qemu_base base; /* mapped */
    uint64_t config_end, start_off, start_end, dev_off, dev_end;
    uint32_t ram_id, page_size;
    int switchover; /* BASE has SWITCHOVER_START */
    pc_block *blocks;
    size_t nblocks;
    pc_page *pages;
    size_t npages, pagecap;
    uint64_t rng;
    FILE *out_file, *pre_file;
    enc_out out, pre;      /* the main stream, the preempt channel */
    int cur_main, cur_pre; /* block of the previous record per channel */
    uint8_t *buf;
} pc_synth;

static int pc_base_event(pc_synth *p, const ms_event *ev)
{
    switch (ev->kind) {
    case MS_EV_CONFIGURATION:
        p->config_end = ev->offset + ev->length;
        if (ev->u.config.has_page_bits)
            p->page_size = 1u << ev->u.config.page_bits;
        break;
    case MS_EV_COMMAND:
        if (ev->u.command.cmd == QCMD_PACKAGED ||
            ev->u.command.cmd == QCMD_POSTCOPY_ADVISE)
            return 1; /* already postcopy */
        if (ev->u.command.cmd == QCMD_SWITCHOVER_START)
            p->switchover = 1;
        break;
    case MS_EV_SECTION:
        if (strcmp(ev->u.section.idstr, "ram") == 0 &&
            ev->u.section.type == MS_QSEC_START) {
            p->start_off = ev->offset;
            p->ram_id = ev->u.section.section_id;
        }
        break;
    case MS_EV_RAM_BLOCK: {
        pc_block *n = realloc(p->blocks, (p->nblocks + 1) * sizeof *n);
        if (!n)
            return -1;
        p->blocks = n;
        memset(&n[p->nblocks], 0, sizeof *n);
        snprintf(n[p->nblocks].name, 256, "%s", ev->u.ram.block);
        n[p->nblocks++].len = ev->u.ram.used_length;
        break;
    }
    case MS_EV_SECTION_FOOTER:
        if (strcmp(ev->u.section.idstr, "ram") != 0)
            break;
        if (ev->u.section.type == MS_QSEC_START)
            p->start_end = ev->offset + Q_FOOTER_SIZE;
        if (ev->u.section.type == MS_QSEC_END)
            p->dev_off = ev->offset + Q_FOOTER_SIZE;
        break;
    case MS_EV_QEMU_EOF:
        p->dev_end = ev->offset;
        break;
    default:
        break;
    }
    return 0;
}

/* Read BASE: its configuration, block list, ram START, the device
 * sections between the ram END and EOF. */
static int pc_read_base(pc_synth *p)
{
    qemu_base *bp = &p->base;
    bp->path = p->wl->qemu_base;
    int status = map_base(bp);
    if (status != TOOL_OK)
        return status;
    const qemu_base b = *bp;
    p->page_size = 4096;
    ms_reader *r = base_reader(&b);
    if (!r)
        return TOOL_USAGE;
    ms_event ev;
    int rc =
        ms_reader_input(r, b.bytes, b.len) < 0 ? MS_NEXT_ERROR : MS_NEXT_EVENT;
    int bad = 0;
    while (rc == MS_NEXT_EVENT && !bad)
        if ((rc = ms_reader_next(r, &ev)) == MS_NEXT_EVENT)
            bad = pc_base_event(p, &ev);
    if (bad < 0) {
        fprintf(stderr, PROG ": out of memory\n");
        status = TOOL_USAGE;
    } else if (bad) {
        status = base_problem(&b, ev.offset, MS_ERR_FORMAT_UNSUPPORTED,
                              "BASE is already postcopy: --postcopy needs a "
                              "precopy base stream");
    } else if (rc == MS_NEXT_ERROR || ms_reader_finish(r) < 0) {
        tool_print_problem(stderr, b.path, ms_reader_error(r));
        status = TOOL_INVALID;
    } else if (!p->start_end || !p->dev_off || !p->dev_end ||
               p->dev_off > p->dev_end || !p->nblocks) {
        status = base_problem(&b, b.len, MS_ERR_SECTION,
                              "BASE needs a ram START with blocks, a ram "
                              "END and the EOF record after it");
    }
    ms_reader_free(r);
    return status;
}

/* The page record of `index` in the page table, created as needed. */
static pc_page *pc_page_of(pc_synth *p, uint32_t block, uint64_t index)
{
    for (size_t i = 0; i < p->npages; i++)
        if (p->pages[i].block == block && p->pages[i].index == index)
            return &p->pages[i];
    if (grow_array((void **)&p->pages, &p->pagecap, p->npages + 1,
                   sizeof *p->pages) < 0)
        return NULL;
    pc_page *g = &p->pages[p->npages++];
    memset(g, 0, sizeof *g);
    g->block = block;
    g->index = index;
    return g;
}

/* One page record on the main channel or the preempt file: ZERO when the
 * page's seed is 0, else PAGE with its bytes. */
static void pc_record(pc_synth *p, enc_out *o, int *cur, const pc_page *g)
{
    const char *block = *cur == (int)g->block ? NULL /* CONTINUE */
                                              : p->blocks[g->block].name;
    uint64_t off = g->index * p->page_size;
    *cur = (int)g->block;
    if (!g->seed) {
        enc_ram_zero(o, off, block);
        return;
    }
    uint64_t st = g->seed;
    rng_bytes(&st, p->buf, p->page_size);
    enc_ram_page(o, off, block, p->buf, p->page_size);
}

static void pc_section(pc_synth *p, uint8_t type)
{
    enc_q_section(&p->out, type, p->ram_id, NULL, 0, 0);
}

/* Precopy: up to 16 random pages of every block, a quarter zero. */
static int pc_precopy(pc_synth *p)
{
    pc_section(p, Q_PART);
    for (uint32_t k = 0; k < p->nblocks; k++) {
        uint64_t n = p->blocks[k].len / p->page_size;
        for (int i = 0; i < 16 && n; i++) {
            pc_page *g = pc_page_of(p, k, rng_below(&p->rng, n));
            if (!g)
                return -1;
            if (g->sent_pre)
                continue;
            g->sent_pre = 1;
            g->seed = rng_below(&p->rng, 4) ? rng_next(&p->rng) | 1 : 0;
            pc_record(p, &p->out, &p->cur_main, g);
        }
    }
    enc_ram_end(&p->out, p->ram_id);
    return 0;
}

/* One DISCARD command per block (more when over 12 ranges): every page
 * sent in precopy that the "guest dirtied" (half of them), as single-page
 * ranges, plus a run of never-sent pages. */
static int pc_discards(pc_synth *p)
{
    uint8_t args[3 + 255 + QCMD_DISCARD_RANGE * QCMD_DISCARD_MAX_RANGES];
    for (uint32_t k = 0; k < p->nblocks; k++) {
        const pc_block *b = &p->blocks[k];
        size_t nl = strlen(b->name), nr = 0;
        uint64_t npg = b->len / p->page_size;
        args[0] = QCMD_DISCARD_VERSION;
        args[1] = (uint8_t)nl;
        memcpy(args + 2, b->name, nl);
        args[2 + nl] = 0;
        size_t end = p->npages; /* the run below may add pages */
        for (size_t i = 0; i <= end; i++) {
            uint64_t start = 0, count = 0;
            if (i < end) {
                pc_page *g = &p->pages[i];
                if (g->block != k || !g->sent_pre || rng_below(&p->rng, 2))
                    continue;
                start = g->index;
                count = 1;
                g->discarded = 1;
            } else if (npg > 4) { /* a run the source never sent */
                start = rng_below(&p->rng, npg - 4);
                count = 1 + rng_below(&p->rng, 4);
                for (uint64_t j = start; j < start + count; j++) {
                    pc_page *g = pc_page_of(p, k, j);
                    if (!g)
                        return -1;
                    g->discarded = 1;
                }
            }
            if (count) {
                uint8_t *range = args + 3 + nl + QCMD_DISCARD_RANGE * nr;
                enc_store_be64(range, start * p->page_size);
                enc_store_be64(range + 8, count * p->page_size);
                nr++;
            }
            if (nr == QCMD_DISCARD_MAX_RANGES || (i == end && nr)) {
                enc_q_command(&p->out, QCMD_POSTCOPY_RAM_DISCARD, args,
                              (uint16_t)(3 + nl + QCMD_DISCARD_RANGE * nr));
                nr = 0;
            }
        }
    }
    return 0;
}

/* The package: LISTEN, BASE's device sections, PING 3, RUN. */
static void pc_package(pc_synth *p)
{
    enum { CMD = 5, PING = CMD + 4 }; /* a command's bytes without arguments */
    uint64_t dev = p->dev_end - p->dev_off;
    uint8_t len[4];
    enc_store_be32(len, (uint32_t)(CMD + dev + PING + CMD));
    enc_q_command(&p->out, QCMD_PACKAGED, len, 4);
    enc_q_command(&p->out, QCMD_POSTCOPY_LISTEN, NULL, 0);
    enc_bytes(&p->out, p->base.bytes + p->dev_off, (size_t)dev);
    enc_q_ping(&p->out, 3);
    enc_q_command(&p->out, QCMD_POSTCOPY_RUN, NULL, 0);
}

/* Postcopy pages: every discarded page again (new bytes or zero), and
 * some pages never sent; each once, a third on the preempt channel. */
static int pc_postcopy(pc_synth *p)
{
    for (uint32_t k = 0; k < p->nblocks; k++) {
        uint64_t n = p->blocks[k].len / p->page_size;
        for (int i = 0; i < 4 && n; i++) {
            pc_page *g = pc_page_of(p, k, rng_below(&p->rng, n));
            if (!g)
                return -1;
            if (!g->sent_pre)
                g->discarded = 1; /* never sent: the fault fetches it */
        }
    }
    size_t half = p->npages / 2, sent = 0;
    pc_section(p, Q_PART);
    for (size_t i = 0; i < p->npages; i++) {
        pc_page *g = &p->pages[i];
        if (!g->discarded)
            continue;
        if (sent++ == half) { /* the rest in the ram END section */
            enc_ram_end(&p->out, p->ram_id);
            pc_section(p, Q_END);
        }
        g->sent_post = 1;
        g->seed = rng_below(&p->rng, 4) ? rng_next(&p->rng) | 1 : 0;
        if (p->pre_file && sent % 3 == 0)
            pc_record(p, &p->pre, &p->cur_pre, g);
        else
            pc_record(p, &p->out, &p->cur_main, g);
    }
    if (sent <= half) { /* fewer than half: END still comes */
        enc_ram_end(&p->out, p->ram_id);
        pc_section(p, Q_END);
    }
    enc_ram_end(&p->out, p->ram_id);
    return 0;
}

/* Block k's pages as the destination ends with them, into fd. */
static int pc_expect_block(pc_synth *p, uint32_t k, int fd)
{
    for (size_t i = 0; i < p->npages; i++) {
        const pc_page *g = &p->pages[i];
        /* what stays: a discard clears a precopy page; the postcopy copy
         * is the last word */
        if (g->block != k || !g->seed || (g->discarded && !g->sent_post))
            continue;
        uint64_t st = g->seed;
        rng_bytes(&st, p->buf, p->page_size);
        if (pwrite(fd, p->buf, p->page_size,
                   (off_t)(g->index * p->page_size)) != (ssize_t)p->page_size)
            return -1;
    }
    return 0;
}

static int pc_expect(pc_synth *p)
{
    const char *dir = p->wl->expect_dir;
    if (!dir)
        return TOOL_OK;
    if (mkdir(dir, 0777) < 0 && errno != EEXIST)
        return io_error(dir, errno);
    ram_desc *desc = calloc(p->nblocks, sizeof *desc);
    if (!desc) {
        fprintf(stderr, PROG ": out of memory\n");
        return TOOL_USAGE;
    }
    for (size_t k = 0; k < p->nblocks; k++)
        desc[k] = (ram_desc){p->blocks[k].name, p->blocks[k].len};
    int status = expect_ram_list(dir, desc, p->nblocks);
    free(desc);
    for (uint32_t k = 0; status == TOOL_OK && k < p->nblocks; k++) {
        int fd;
        status = expect_ram_image(dir, k, p->blocks[k].len, &fd);
        if (status != TOOL_OK)
            break;
        int failed = pc_expect_block(p, k, fd) < 0;
        failed |= close(fd) != 0; /* closed in any case */
        if (failed) {
            char path[4096];
            snprintf(path, sizeof path, "%s/ram-%u.bin", dir, k);
            status = io_error(path, errno ? errno : EIO);
        }
    }
    return status;
}

static int pc_write(pc_synth *p)
{
    uint8_t adv[QCMD_ADVISE_ARGS];
    enc_bytes(&p->out, p->base.bytes, (size_t)p->config_end);
    enc_q_command(&p->out, QCMD_OPEN_RETURN_PATH, NULL, 0);
    enc_q_ping(&p->out, 1);
    enc_store_be64(adv, p->page_size); /* the page-size summary */
    enc_store_be64(adv + 8, p->page_size);
    enc_q_command(&p->out, QCMD_POSTCOPY_ADVISE, adv, sizeof adv);
    enc_bytes(&p->out, p->base.bytes + p->start_off,
              (size_t)(p->start_end - p->start_off));
    p->cur_main = p->cur_pre = -1;
    if (pc_precopy(p) < 0)
        return -1;
    if (p->switchover)
        enc_q_command(&p->out, QCMD_SWITCHOVER_START, NULL, 0);
    if (pc_discards(p) < 0)
        return -1;
    enc_q_ping(&p->out, 2);
    pc_package(p);
    enc_q_ping(&p->out, 4);
    if (pc_postcopy(p) < 0)
        return -1;
    enc_q_eof(&p->out); /* and no JSON trailer */
    if (p->pre_file)
        enc_be64(&p->pre, MS_RAM_EOS); /* the preempt channel's end */
    return 0;
}

/* Close an output file; the first failure (write or close) decides. */
static int pc_close(FILE *f, const enc_out *o, const char *path, int status)
{
    if (!f)
        return status;
    int close_err = close_output(f);
    int err = o->err ? o->err : close_err;
    return err && status == TOOL_OK ? io_error(path, err) : status;
}

int postcopy_mode(const workload *wl)
{
    pc_synth p = {.wl = wl, .rng = wl->seed ^ 0x706f7374636f7079ull};
    int status = pc_read_base(&p);
    if (status == TOOL_OK && p.dev_end - p.dev_off > UINT32_MAX - 32)
        status = base_problem(&p.base, p.dev_off, MS_ERR_SECTION,
                              "device sections too large for one package");
    if (status == TOOL_OK && !(p.buf = malloc(p.page_size))) {
        fprintf(stderr, PROG ": out of memory\n");
        status = TOOL_USAGE;
    }
    if (status == TOOL_OK && !(p.out_file = fopen(wl->out_dir, "wb")))
        status = io_error(wl->out_dir, errno);
    if (status == TOOL_OK && wl->preempt_file &&
        !(p.pre_file = fopen(wl->preempt_file, "wb")))
        status = io_error(wl->preempt_file, errno);
    if (p.out_file)
        enc_out_file(&p.out, p.out_file);
    if (p.pre_file)
        enc_out_file(&p.pre, p.pre_file);
    if (status == TOOL_OK && pc_write(&p) < 0) {
        fprintf(stderr, PROG ": out of memory\n");
        status = TOOL_USAGE;
    }
    status = pc_close(p.out_file, &p.out, wl->out_dir, status);
    status = pc_close(p.pre_file, &p.pre, wl->preempt_file, status);
    if (status == TOOL_OK)
        status = pc_expect(&p);
    free_base(&p.base);
    free(p.blocks);
    free(p.pages);
    free(p.buf);
    return status;
}
