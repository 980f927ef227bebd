/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* --mapped-ram: a QEMU >= 9.0 mapped-ram file.
 * The layout of spec/qemu-main.md "Mapped-ram files", written the way QEMU
 * does: per block the entry and its MappedRamHeader, then the stream goes
 * on at pages_offset + used_length (the pages region stays a hole until
 * pages land in it with pwrite); the bitmaps are written at the end. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "synth.h"

typedef struct mr_block {
    const char *name;
    uint64_t len, bitmap_off, pages_off;
    uint8_t *bitmap; /* bit i = page i (little-endian host longs) */
    int expect_fd;
} mr_block;

typedef struct mr_synth {
    int fd;
    const char *path;
    enc_out out; /* pos: where the stream's next byte goes */
    mr_block blocks[3];
    size_t nblocks;
    uint64_t rng;
} mr_synth;

/* The file is written at fixed offsets. */
static int mr_pwrite(void *opaque, uint64_t at, const void *p, size_t n)
{
    const uint8_t *b = p;
    int fd = *(const int *)opaque;
    while (n) {
        ssize_t w = pwrite(fd, b, n, (off_t)at);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return w < 0 ? errno : EIO;
        b += w;
        n -= (size_t)w;
        at += (uint64_t)w;
    }
    return 0;
}

static uint64_t bitmap_bytes(const mr_block *b)
{
    return (b->len / SYNTH_PAGE + 63) / 64 * 8;
}

/* Header, configuration listing mapped-ram, the START section with the
 * block list: each entry's header reserves its bitmap and pages. */
static void mr_start(mr_synth *m)
{
    enc_out *o = &m->out;
    enc_q_header(o);
    enc_q_config(o, SYNTH_MACHINE);
    enc_q_subsection(o, "configuration/capabilities", 1);
    enc_be32(o, 1); /* one capability */
    enc_counted(o, "mapped-ram");
    enc_q_section(o, Q_START, RAM_SECTION_ID, "ram", 0, RAM_SECTION_VERSION);
    uint64_t total = 0;
    for (size_t k = 0; k < m->nblocks; k++)
        total += m->blocks[k].len;
    enc_ram_mem_size(o, total);
    for (size_t k = 0; k < m->nblocks; k++) {
        mr_block *b = &m->blocks[k];
        enc_ram_block(o, b->name, b->len);
        b->bitmap_off = o->pos + MAPPED_RAM_HDR_BYTES;
        b->pages_off =
            (b->bitmap_off + bitmap_bytes(b) + MAPPED_RAM_ALIGN - 1) /
            MAPPED_RAM_ALIGN * MAPPED_RAM_ALIGN;
        enc_mapped_ram_header(o, SYNTH_PAGE, b->bitmap_off, b->pages_off);
        o->pos = b->pages_off + b->len; /* the stream skips the pages */
    }
    enc_ram_end(o, RAM_SECTION_ID);
}

/* One pass over RAM: the first sends every page, later ones about one in
 * eight.  A zero page clears its bit and is not written (its slot keeps
 * what an earlier pass put there); another is written at its slot. */
static void mr_pass(mr_synth *m, uint64_t pass)
{
    uint8_t page[SYNTH_PAGE];
    for (size_t k = 0; k < m->nblocks && !m->out.err; k++) {
        mr_block *b = &m->blocks[k];
        for (uint64_t i = 0; i < b->len / SYNTH_PAGE; i++) {
            if (pass && rng_below(&m->rng, 8))
                continue;
            int zero = rng_below(&m->rng, 100) < (pass ? 15u : 45u);
            uint8_t bit = (uint8_t)(1u << (i % 8));
            if (zero) {
                b->bitmap[i / 8] &= (uint8_t)~bit;
                memset(page, 0, sizeof page);
            } else {
                fill_state(&m->rng, page, sizeof page);
                b->bitmap[i / 8] |= bit;
                enc_bytes_at(&m->out, page, sizeof page,
                             b->pages_off + i * SYNTH_PAGE);
            }
            if (b->expect_fd >= 0 &&
                pwrite(b->expect_fd, page, sizeof page,
                       (off_t)(i * SYNTH_PAGE)) != (ssize_t)sizeof page)
                m->out.err = errno ? errno : EIO;
        }
    }
}

static int mr_expect(mr_synth *m, const char *dir)
{
    ram_desc desc[3];
    for (size_t k = 0; k < m->nblocks; k++)
        desc[k] = (ram_desc){m->blocks[k].name, m->blocks[k].len};
    int status = expect_ram_list(dir, desc, m->nblocks);
    for (size_t k = 0; status == TOOL_OK && k < m->nblocks; k++)
        status =
            expect_ram_image(dir, k, m->blocks[k].len, &m->blocks[k].expect_fd);
    return status;
}

static int mapped_ram_run(mr_synth *m, const workload *wl)
{
    if (wl->expect_dir && mr_expect(m, wl->expect_dir) != TOOL_OK)
        return TOOL_USAGE;
    enc_out *o = &m->out;
    mr_start(m);
    for (uint64_t pass = 0; pass < wl->ram_passes && !o->err; pass++) {
        mr_pass(m, pass);
        if (pass + 1 < wl->ram_passes) {
            enc_q_section(o, Q_PART, RAM_SECTION_ID, NULL, 0, 0);
            enc_ram_end(o, RAM_SECTION_ID);
        }
    }
    enc_q_command(o, QCMD_SWITCHOVER_START, NULL, 0);
    enc_q_section(o, Q_END, RAM_SECTION_ID, NULL, 0, 0);
    enc_ram_end(o, RAM_SECTION_ID);
    enc_q_eof(o);
    for (size_t k = 0; k < m->nblocks; k++) {
        const mr_block *b = &m->blocks[k];
        enc_bytes_at(o, b->bitmap, (size_t)bitmap_bytes(b), b->bitmap_off);
    }
    if (!o->err && ftruncate(m->fd, (off_t)o->pos) != 0)
        o->err = errno;
    return o->err ? io_error(m->path, o->err) : TOOL_OK;
}

int mapped_ram_mode(const workload *wl)
{
    ram_desc desc[3];
    synthetic_blocks(wl->ram_size, desc);
    mr_synth m = {.path = wl->out_dir,
                  .nblocks = 3,
                  .rng = wl->seed * 0x9E3779B97F4A7C15ull + 0x4d52};
    m.out = (enc_out){.write = mr_pwrite, .opaque = &m.fd};
    for (size_t k = 0; k < m.nblocks; k++)
        m.blocks[k] = (mr_block){
            .name = desc[k].name, .len = desc[k].len, .expect_fd = -1};
    int status = TOOL_USAGE;
    for (size_t k = 0; k < m.nblocks; k++)
        if (!(m.blocks[k].bitmap =
                  calloc((size_t)bitmap_bytes(&m.blocks[k]), 1))) {
            fprintf(stderr, PROG ": out of memory\n");
            goto out;
        }
    m.fd = open(m.path, O_RDWR | O_CREAT | O_TRUNC, 0666);
    if (m.fd < 0) {
        status = io_error(m.path, errno);
        goto out;
    }
    status = mapped_ram_run(&m, wl);
    if (close(m.fd) != 0 && status == TOOL_OK)
        status = io_error(m.path, errno);
out:
    for (size_t k = 0; k < m.nblocks; k++) {
        free(m.blocks[k].bitmap);
        if (m.blocks[k].expect_fd >= 0)
            close(m.blocks[k].expect_fd);
    }
    return status;
}
