/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* --qemu-ram SIZE: a QEMU main stream whose RAM is one block, pc.ram of
 * SIZE bytes, every page sent once (precopy with no dirtying): the stream
 * the tools are measured on (scripts/bench-tools.sh, migstream-extract
 * --ram against dd).
 *
 *   header, configuration (pc-q35-10.0)
 *   START ram: MEM_SIZE, the block list, EOS
 *   PART ram: PAGE records of pseudo-random bytes, every 8th page a ZERO
 *             record, RAM_PART_PAGES pages a section (the first page of
 *             each names the block, the rest CONTINUE), EOS
 *   END ram: EOS; EOF (no JSON trailer: RAM needs none) */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "synth.h"

#define RAM_BLOCK "pc.ram"
/* pages per PART section: QEMU sends RAM in iterations bounded by time
 * and rate; 64 MiB sections stand in for them */
#define RAM_PART_PAGES 16384u

/* Page i's bytes: zero every 8th page, else pseudo-random (0: zero). */
static int ram_page(uint64_t *rng, uint64_t i, uint8_t *page)
{
    if (i % 8 == 7)
        return 0;
    rng_bytes(rng, page, SYNTH_PAGE);
    return 1;
}

/* Also write the page to DIR/ram-0.bin (zero pages stay holes). */
static int expect_page(int fd, uint64_t i, const uint8_t *page)
{
    if (fd < 0)
        return 0;
    ssize_t w = pwrite(fd, page, SYNTH_PAGE, (off_t)(i * SYNTH_PAGE));
    return w == (ssize_t)SYNTH_PAGE ? 0 : errno ? errno : EIO;
}

/* The PART sections with every page; *xerr: a failed --expect-dir
 * write. */
static void ram_parts(enc_out *o, uint64_t pages, uint64_t seed, int fd,
                      int *xerr)
{
    uint64_t rng = seed * 0x9E3779B97F4A7C15ull + 0x52414d;
    uint8_t page[SYNTH_PAGE];
    for (uint64_t i = 0; i < pages && !o->err && !*xerr; i++) {
        int first = i % RAM_PART_PAGES == 0;
        const char *block = first ? RAM_BLOCK : NULL; /* NULL: CONTINUE */
        if (first)
            enc_q_section(o, Q_PART, RAM_SECTION_ID, NULL, 0, 0);
        if (ram_page(&rng, i, page)) {
            enc_ram_page(o, i * SYNTH_PAGE, block, page, SYNTH_PAGE);
            *xerr = expect_page(fd, i, page);
        } else {
            enc_ram_zero(o, i * SYNTH_PAGE, block);
        }
        if (i + 1 == pages || (i + 1) % RAM_PART_PAGES == 0)
            enc_ram_end(o, RAM_SECTION_ID);
    }
}

static void ram_stream(enc_out *o, uint64_t ram, uint64_t seed, int fd,
                       int *xerr)
{
    char machine[32];
    snprintf(machine, sizeof machine, SYNTH_MACHINE, 10u, 0u);
    enc_q_header(o);
    enc_q_config(o, machine);
    enc_q_section(o, Q_START, RAM_SECTION_ID, "ram", 0, RAM_SECTION_VERSION);
    enc_ram_mem_size(o, ram);
    enc_ram_block(o, RAM_BLOCK, ram);
    enc_ram_end(o, RAM_SECTION_ID);
    ram_parts(o, ram / SYNTH_PAGE, seed, fd, xerr);
    enc_q_section(o, Q_END, RAM_SECTION_ID, NULL, 0, 0);
    enc_ram_end(o, RAM_SECTION_ID);
    enc_q_eof(o);
}

int qemu_ram_mode(const workload *wl)
{
    int fd = -1;
    if (wl->expect_dir) {
        ram_desc desc = {RAM_BLOCK, wl->qemu_ram};
        if (expect_ram_list(wl->expect_dir, &desc, 1) != TOOL_OK ||
            expect_ram_image(wl->expect_dir, 0, wl->qemu_ram, &fd) != TOOL_OK)
            return TOOL_USAGE;
    }
    const char *name = wl->to_stdout ? "<stdout>" : wl->out_dir;
    FILE *f = wl->to_stdout ? stdout : fopen(wl->out_dir, "wb");
    if (!f) {
        int err = errno;
        if (fd >= 0)
            close(fd);
        return io_error(name, err);
    }
    enc_out o;
    int xerr = 0;
    enc_out_file(&o, f);
    ram_stream(&o, wl->qemu_ram, wl->seed, fd, &xerr);
    int err = close_output(f);
    if (fd >= 0 && close(fd) != 0 && !xerr)
        xerr = errno;
    if (o.err || err)
        return io_error(name, o.err ? o.err : err);
    return xerr ? io_error(wl->expect_dir, xerr) : TOOL_OK;
}
