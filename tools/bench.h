/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* migstream-bench's parts:
 *   bench.c          options, the cases, their output (table or JSON)
 *   bench_streams.c  the streams measured, written in memory
 *   bench_run.c      one migration decoded from memory through
 *                    ms_migration (pages placed in a RAM buffer), and the
 *                    counting allocator */
#ifndef MS_BENCH_H
#define MS_BENCH_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "migstream.h"

#define BENCH_PAGE 4096u

/* A growing memory buffer (a channel's bytes). */
typedef struct sink {
    uint8_t *p;
    size_t len, cap;
} sink;

/* Append; 0, or -1 when memory is short. */
int sink_write(void *opaque, const void *buf, size_t len);
/* The writer's output thrown away. */
int null_write(void *opaque, const void *buf, size_t len);

/* Device-state-like content: random runs, zero runs, repeats. */
void fill(uint8_t *p, size_t n, uint64_t seed);

/* ---- bench_streams.c ---------------------------------------------------- */
/* One channel, one device, one final image of `data` in `chunk`-byte
 * chunks (zlib `level`, 0: stored). */
int write_chunks(const uint8_t *data, size_t n, size_t chunk, int level,
                 ms_write_fn fn, void *opaque, const ms_allocator *alloc);
/* `channels` channels; the final image as packets dealt round robin. */
/* One channel of `count` empty unknown optional records (the smallest
 * record there is: 32 bytes) around one 1-byte image, into `out`. */
int write_empty_records(size_t count, sink *out);
int write_packets(const uint8_t *data, size_t n, size_t packet,
                  uint32_t channels, sink *out);
/* A QEMU main stream: block pc.ram of n bytes sent as pages of `data`,
 * every 8th a ZERO record. */
void write_qemu(sink *s, const uint8_t *data, size_t n);
/* A QEMU main stream announcing block pc.ram of `ram_bytes` for multifd
 * channels to fill (configuration, block list, flush, EOF). */
void write_qemu_main(sink *s, uint64_t ram_bytes);
/* Multifd channel `channel` of `channels`: `data` (n bytes) as the pages
 * at block offset `first_byte` on, in zlib packets of 128 pages numbered
 * channel, channel + channels, ...; the compressed bytes alone (one zlib
 * stream) also go to `zonly`. */
void write_multifd_zlib(sink *s, sink *zonly, const uint8_t *data, size_t n,
                        uint64_t first_byte, uint8_t channel, uint8_t channels);

/* ---- bench_run.c -------------------------------------------------------- */
/* Peak bytes the library holds (atomic: threaded decoding allocates
 * concurrently). */
typedef struct count_alloc {
    atomic_size_t now, peak;
} count_alloc;
ms_allocator count_allocator(count_alloc *c);
void count_reset(count_alloc *c);

/* One migration in memory: channels decoded through ms_migration as the
 * tools do (a QEMU main channel first, then the others, on one thread
 * each when `threads`). */
typedef struct mig_job {
    const sink *ch;
    uint32_t nch;
    int qemu_main; /* ch[0] is a QEMU main channel */
    int threads;   /* ch[1..] on threads (MS_MIGRATION_CONCURRENT) */
    size_t slice;  /* input handed in slices of this size (0: whole) */
    int verify;    /* ms_options.verify_checks */
    int payloads;  /* MS_MIGRATION_NESTED_PAYLOADS (as migstream-verify) */
    uint8_t *ram;  /* pages placed here (NULL: not placed) */
    size_t ram_len;
    count_alloc *ca;
} mig_job;

typedef struct mig_tally {
    int64_t data_bytes; /* device image bytes (not config) */
    int64_t pages;      /* RAM page records (PAGE, ZERO) */
    uint64_t problems;
} mig_tally;

/* 0, or -1 when the migration could not be set up; problems are counted
 * in the tally. */
int run_migration(const mig_job *job, mig_tally *t);

#endif
