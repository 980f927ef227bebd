/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* migstream-extract --ram: an extent writer that turns page writes into
 * few system calls (extract_extent.c).
 *
 *   page records ──► ew_data(fd, off, bytes) ─┐  one pending run: pages
 *                    ew_zero(fd, off, len)  ──┤  contiguous in one file,
 *                                             │  all data (short zero
 *                                             │  runs inside filled) or
 *                                             │  all zero
 *            anything else on the file ──► ew_flush
 *                                             │
 *             data run: one pwrite of the batch buffer (bytes copied in:
 *               an event's page bytes live only until the next call into
 *               the library, and the tool's input mapping may be a window)
 *             zero run: one fallocate(PUNCH_HOLE), zeros written where
 *               the file system cannot punch
 *
 * Runs are flushed in the order they were made, so a later write of a
 * page (data or zero) always lands after an earlier one: later pages win.
 * The caller flushes before it reads, resizes or closes a file the run
 * may belong to.  Channel files decoded at once interleave their pages,
 * so the caller keeps one writer per file (each channel's pages are
 * contiguous in its own stream) and flushes another file's run before a
 * page in it is written again (ew_overlaps). */
#ifndef MS_EXTRACT_EXTENT_H
#define MS_EXTRACT_EXTENT_H

#include <stddef.h>
#include <stdint.h>

typedef enum { EW_NONE, EW_DATA, EW_ZERO } ew_kind;

typedef struct extent_writer {
    uint8_t *buf;      /* batch buffer of a data run */
    size_t cap;        /* its size */
    ew_kind kind;      /* what the pending run is */
    int fd;            /* file of the pending run */
    size_t tag;        /* the caller's name for that file (error messages) */
    uint64_t off;      /* file offset of the run */
    uint64_t len;      /* bytes of the run (data: in buf) */
    uint64_t gap;      /* zero bytes right after a data run, not yet
                          in buf: written as zeros if data continues
                          after them, else left as a hole (EW_GAP_MAX) */
    int gap_punch;     /* some of the gap was written before: a hole
                          must be punched if it is not filled */
    size_t failed_tag; /* tag of the run whose flush failed */
} extent_writer;

/* A writer batching up to `cap` bytes of data (allocated at its first
 * data run). */
void ew_init(extent_writer *w, size_t cap);
void ew_free(extent_writer *w);

/* n bytes at `off` of file fd (the caller's `tag`): appended to the
 * pending run when they continue it, else the run is flushed first.
 * 0, or -1 with errno set and w->failed_tag naming the file. */
int ew_data(extent_writer *w, int fd, size_t tag, uint64_t off, const void *p,
            size_t n);

/* Zero runs shorter than this between data pages of a run are written
 * as zeros inside it: a 4 KiB hole between pages saves 4 KiB of disk and
 * costs a write, and an extent, each (every 8th page zero made extraction
 * 1.8x dd's time; 1.2x with them filled).  Longer runs stay holes. */
#define EW_GAP_MAX ((uint64_t)64 * 1024)

/* Make n bytes at `off` read as zero, batched like ew_data: a hole, or
 * zeros within a data run (EW_GAP_MAX).  `written` says the bytes may
 * hold data now (a hole must be punched); otherwise they are a hole of
 * the sparse file already. */
int ew_zero(extent_writer *w, int fd, size_t tag, uint64_t off, uint64_t n,
            int written);

/* Write out the pending run.  0, or -1 as above. */
int ew_flush(extent_writer *w);

/* 1 when the pending run covers some of the n bytes at `off` of fd: with
 * several writers, the one whose run is older must be flushed before
 * another writes those bytes again. */
int ew_overlaps(const extent_writer *w, int fd, uint64_t off, uint64_t n);

/* pwrite all of buf, retrying short writes; 0 or -1 with errno set. */
int ew_pwrite_all(int fd, const void *buf, size_t len, uint64_t off);

/* 1 when the n bytes at p are all zero. */
int ew_all_zero(const uint8_t *p, size_t n);

#endif
