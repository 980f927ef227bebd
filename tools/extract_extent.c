/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* migstream-extract's extent writer: see extract_extent.h for the
 * picture.  A 256 MiB guest written one pwrite per 4 KiB page costs 65,536
 * system calls; batched in 1 MiB runs, 256. */
/* fallocate(FALLOC_FL_PUNCH_HOLE) */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "extract_extent.h"

int ew_pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
    const uint8_t *p = buf;
    while (len) {
        if (off > (uint64_t)INT64_MAX - len) {
            errno = EFBIG;
            return -1;
        }
        ssize_t n = pwrite(fd, p, len, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = EIO;
            return -1;
        }
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}

int ew_all_zero(const uint8_t *p, size_t n)
{
    /* p[0] is zero and every byte equals the one before it: memcmp runs
     * a word at a time, a byte loop does not. */
    return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

void ew_init(extent_writer *w, size_t cap)
{
    memset(w, 0, sizeof *w);
    w->fd = -1;
    w->cap = cap;
}

/* The batch buffer, allocated at the writer's first use (a channel file
 * without pages needs none).  0, or -1 with errno set. */
static int have_buf(extent_writer *w)
{
    if (!w->buf && !(w->buf = malloc(w->cap))) {
        errno = ENOMEM;
        return -1;
    }
    return 0;
}

void ew_free(extent_writer *w)
{
    free(w->buf);
    w->buf = NULL;
}

/* Zeros written over [off, off + n): for file systems that cannot punch a
 * hole.  The batch buffer is free (the run is being flushed). */
static int write_zeros(extent_writer *w, uint64_t off, uint64_t n)
{
    if (have_buf(w) < 0)
        return -1;
    memset(w->buf, 0, w->cap);
    while (n) {
        size_t k = n < w->cap ? (size_t)n : w->cap;
        if (ew_pwrite_all(w->fd, w->buf, k, off) < 0)
            return -1;
        off += k;
        n -= k;
    }
    return 0;
}

/* [off, off + n) reads as zero: a hole punched, or zeros written. */
static int punch(extent_writer *w, uint64_t off, uint64_t n)
{
    /* KEEP_SIZE: a run at the end of the file leaves its size alone
     * (the block's used_length, set by ftruncate). */
    if (off > (uint64_t)INT64_MAX - n) {
        errno = EFBIG;
        return -1;
    }
    if (fallocate(w->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off,
                  (off_t)n) < 0)
        return write_zeros(w, off, n);
    return 0;
}

int ew_flush(extent_writer *w)
{
    int rc = 0;
    if (w->kind == EW_DATA) {
        rc = ew_pwrite_all(w->fd, w->buf, (size_t)w->len, w->off);
        /* a gap not filled: a hole, punched where data was before */
        if (rc == 0 && w->gap && w->gap_punch)
            rc = punch(w, w->off + w->len, w->gap);
    } else if (w->kind == EW_ZERO) {
        rc = punch(w, w->off, w->len);
    }
    if (rc < 0)
        w->failed_tag = w->tag;
    w->kind = EW_NONE;
    w->len = w->gap = 0;
    w->gap_punch = 0;
    return rc;
}

/* Does a run of `kind` at (fd, off) continue the pending one? */
static int continues(const extent_writer *w, ew_kind kind, int fd, uint64_t off)
{
    return w->kind == kind && w->fd == fd && w->off + w->len + w->gap == off;
}

/* Data continuing a data run after its gap: the gap's zeros go into the
 * batch (written over whatever the file held there), when they fit. */
static int fill_gap(extent_writer *w, size_t n)
{
    if (w->cap - w->len < w->gap || w->cap - w->len - w->gap < n)
        return -1;
    memset(w->buf + w->len, 0, (size_t)w->gap);
    w->len += w->gap;
    w->gap = 0;
    w->gap_punch = 0;
    return 0;
}

/* An empty run of `kind` at (fd, off); the previous one was flushed. */
static void start_run(extent_writer *w, ew_kind kind, int fd, size_t tag,
                      uint64_t off)
{
    w->kind = kind;
    w->fd = fd;
    w->tag = tag;
    w->off = off;
    w->len = 0;
}

int ew_data(extent_writer *w, int fd, size_t tag, uint64_t off, const void *p,
            size_t n)
{
    if (!continues(w, EW_DATA, fd, off) || fill_gap(w, n) < 0) {
        if (ew_flush(w) < 0)
            return -1;
        if (n > w->cap) {
            /* larger than a batch (a huge page): straight to the file */
            if (ew_pwrite_all(fd, p, n, off) < 0) {
                w->failed_tag = tag;
                return -1;
            }
            return 0;
        }
        if (have_buf(w) < 0) {
            w->failed_tag = tag;
            return -1;
        }
        start_run(w, EW_DATA, fd, tag, off);
    }
    memcpy(w->buf + w->len, p, n);
    w->len += n;
    return 0;
}

int ew_zero(extent_writer *w, int fd, size_t tag, uint64_t off, uint64_t n,
            int written)
{
    if (continues(w, EW_DATA, fd, off) && w->gap + n <= EW_GAP_MAX) {
        w->gap += n; /* decided when the next page comes */
        w->gap_punch |= written;
        return 0;
    }
    if (!continues(w, EW_ZERO, fd, off)) {
        if (ew_flush(w) < 0)
            return -1;
        if (!written)
            return 0; /* a hole already: nothing to batch */
        start_run(w, EW_ZERO, fd, tag, off);
    }
    w->len += n;
    return 0;
}

int ew_overlaps(const extent_writer *w, int fd, uint64_t off, uint64_t n)
{
    return w->kind != EW_NONE && w->fd == fd &&
           off < w->off + w->len + w->gap && w->off < off + n;
}
