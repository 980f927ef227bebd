/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* --multifd: a QEMU multifd channel set, shared by multifd.c (the channels)
 * and multifd_main.c (the main channel).
 *
 * DIR/main.mig is the main channel and DIR/channel-K.mig multifd channel K
 * (qemu-multifd.md).  Each channel: the init packet (magic, version 1, VM
 * UUID, id K), a SYNC packet without pages, then RAM packets (up to 128
 * pages of one block: normal pages, then zero pages, QEMU >= 9) and, after
 * the switchover, VFIO device-state packets interleaved with the last RAM
 * pass (QEMU >= 10), and a SYNC packet on every channel at every sync
 * point: header only (pages_alloc 0) as QEMU >= 9.2 sends it, or with
 * pages_alloc 128 and no pages as 9.0 and 9.1 do (--qemu-version).  Packet
 * numbers are global; packets go to the channels in rounds of a fresh shuffle.
 * Compressed channels keep one zlib/zstd stream each, flushed at every packet
 * end, as QEMU does.
 *
 * The main channel, without BASE (QEMU 10 layout): header, configuration
 * (machine pc-q35-<--qemu-version>, uuid subsection with --uuid), RAM
 * START (block list, MULTIFD_FLUSH, EOS), a VFIO START per device
 * (SETUP_STATE, END_OF_STATE), a RAM PART per pass (MULTIFD_FLUSH, EOS),
 * SWITCHOVER_START (>= 10.0), RAM END (MULTIFD_FLUSH,
 * EOS), a VFIO END per device (END_OF_STATE only: the data went over
 * multifd), a VFIO FULL per device (END_OF_STATE), EOF.  With --qemu BASE:
 * BASE with its PAGE records moved to the channels (ZERO records stay on
 * the main channel, renamed where CONTINUE no longer holds), the VFIO
 * sections inserted as --qemu does, and a sync point at each RAM EOS (or
 * MULTIFD_FLUSH, when BASE has them).
 *
 * Each device's stop-copy image (--final-size, an mlx5 or raw vendor
 * stream) goes out in --packet-size buffers, idx 0..n-1, then the config
 * buffer (idx n, CONFIG_STATE: DEV_CONFIG_STATE, config bytes,
 * END_OF_STATE); devices take turns at random.  All is written as it is
 * made: memory is one RAM packet and one device buffer. */

#ifndef MS_SYNTH_MULTIFD_H
#define MS_SYNTH_MULTIFD_H

#include <zlib.h>
#include <zstd.h>

#include "synth.h"

/* pages a RAM packet holds, and its header with their offsets */
#define MFD_SLOTS (MULTIFD_PACKET_DATA / SYNTH_PAGE)
#define MFD_HDR (MULTIFD_RAM_FIXED + 8u * MFD_SLOTS)

typedef struct mfd_chan {
    FILE *f;
    char *path;
    enc_out out;
    z_stream zs;
    int zs_ready;
    ZSTD_CStream *zc;
} mfd_chan;

typedef struct mfd_block {
    char name[256];
    uint64_t len;
    int fd; /* --expect-dir: DIR/ram-K.bin */
} mfd_block;

typedef struct mfd_synth {
    qemu_synth q; /* main channel output, devices, expect files */
    workload wl;  /* the options, precopy sizes cleared */
    FILE *main;   /* DIR/main.mig (the encoder writes q.out) */
    mfd_chan *ch;
    uint32_t nch;
    uint32_t *order, order_left;
    uint64_t rng;      /* placement and interleaving */
    uint64_t page_rng; /* synthetic page contents */
    uint64_t packet_num;
    mfd_block *blocks;
    size_t nblocks, blockcap;
    /* the RAM packet being filled */
    size_t cur;
    uint32_t nnorm, nzero;
    uint64_t norm_off[MFD_SLOTS], zero_off[MFD_SLOTS];
    uint8_t *pages;
    uint8_t *zbuf;
    size_t zcap;
    /* device state */
    uint64_t *dev_idx, *dev_ndata; /* next idx, data buffers */
    uint64_t dev_total, dev_sent;
    uint8_t *dbuf;
    int final; /* in the pass devices share */
    uint64_t final_packets, final_sent;
    /* --qemu BASE */
    int base_flush;       /* BASE marks sync points with MULTIFD_FLUSH */
    int in_ram;           /* inside a RAM section of BASE */
    int ram_type;         /* its type */
    int main_block;       /* the main channel's current RAM block, -1: none */
    uint64_t pos;         /* BASE bytes copied so far */
    int failed;           /* a problem was reported */
    uint64_t end_packets; /* RAM packets BASE's END section makes */
    int end_block;
    uint32_t end_fill;
} mfd_synth;

/* multifd.c: pages, sync points and device buffers on the channels */
void mfd_page(mfd_synth *m, size_t block, uint64_t off, const uint8_t *data);
void mfd_sync(mfd_synth *m);
void mfd_expect_page(mfd_synth *m, size_t block, uint64_t off,
                     const uint8_t *data);
/* The pass in which the devices send their stop-copy state alongside
 * `packets` RAM packets. */
void mfd_final_pass_begin(mfd_synth *m, uint64_t packets);
void mfd_final_pass_end(mfd_synth *m);
int mfd_add_block(mfd_synth *m, const char *name, uint64_t len);

/* multifd_main.c: the main channel */
void write_synthetic_main(mfd_synth *m);
int base_pass(mfd_synth *m, int (*fn)(mfd_synth *, const ms_event *));
int base_scan(mfd_synth *m, const ms_event *ev);
int base_rewrite(mfd_synth *m, const ms_event *ev);
void base_copy(mfd_synth *m, uint64_t to);

#endif
