/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* migstream-extract: write what a migration carried into plain files.
 *
 *   --ram DIR         QEMU guest RAM: one sparse file per RAM block under
 *                     DIR, every page at its offset, as the destination
 *                     would hold it after loading the stream -- the main
 *                     channel alone, or with its multifd channels (raw,
 *                     zlib or zstd), files in any order.
 *   --device IDSTR    one device's state bytes, concatenated in image
 *   --out FILE        order (QEMU VFIO sections, QEMU multifd device-state
 *                     buffers put in idx order by the set, or migstream
 *                     v1 chunk and reassembled packet images), optionally
 *                     one phase; --config FILE: the multifd config buffer.
 *
 * Multifd RAM: the receiver applies all writes of sync epoch n (main
 * channel: RAM EOS / MULTIFD_FLUSH markers; channels: SYNC packets) before
 * any of epoch n + 1, so a page keeps its newest version by (epoch, packet
 * number), whatever order the files are read in (see page_rank).  Memory:
 * 8 bytes per guest page of every block a page was sent for -- 2 MiB per
 * GiB of guest RAM with 4 KiB pages -- plus 1 bit per page (32 KiB per
 * GiB) for a block that had XBZRLE pages.
 *
 * Writes: pages contiguous in a block file are gathered into runs, one
 * per input file (channel files decode at once and interleave), written
 * with one pwrite per run of up to 1 MiB (extract_extent.c).  Zero pages
 * are never written as bytes: the block file is sized with ftruncate and
 * stays a hole there; a zero page (or an all-zero page record) over a
 * page written before punches a hole, so later pages win and the output
 * stays sparse.
 *
 * Postcopy: a POSTCOPY_RAM_DISCARD range drops pages the destination
 * already had (they read as zero again -- holes punched into the block
 * file, which stays sparse) until a later page record rewrites them; a
 * discard ranks like a main-channel write of its epoch, so it clears what
 * came before it and nothing after.  Pages of a postcopy-preempt channel
 * are sent once, after every discard, and always apply.
 *
 * Extraction runs on the same reader/set pass as migstream-verify
 * (tool_run), so an invalid stream still yields everything decoded before
 * the problem, the problem line, and exit status 1. */
#include <getopt.h>
#include <inttypes.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "extract_extent.h"
#include "tool_common.h"
#include "tool_held.h"

static const char *prog = "migstream-extract";

#define DEFAULT_PAGE_SIZE 4096u  /* the decoder's default (x86 and most) */
#define MAX_PAGE_SIZE (1u << 21) /* largest target page QEMU configures */
#define MAX_OPEN_BLOCKS 128      /* block files kept open at once */
#define COPY_BUF (1u << 20)
/* Page bytes gathered per write: 1 MiB per file, or less when there are
 * many files (each has its own run), at most 16 MiB in all. */
#define BATCH_MAX (1u << 20)
#define BATCH_MIN (1u << 16)
#define BATCH_TOTAL (1u << 24)

/* ---- output helpers -------------------------------------------------------
 */

/* pread exactly len bytes; bytes past the end of the file read as zero
 * (a block file is sized up front, so that only happens after a truncate
 * race).  0 or -1 with errno set. */
static int pread_full(int fd, void *buf, size_t len, uint64_t off)
{
    uint8_t *p = buf;
    while (len) {
        ssize_t n = pread(fd, p, len, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0) {
            memset(p, 0, len);
            return 0;
        }
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}

/* ---- block file names -------------------------------------------------------
 * A RAM block idstr becomes a path under DIR the way analyze-migration.py
 * -x names its files ("./" + idstr: '/' separates directories, so
 * "0000:00:02.0/virtio-net-pci.rom" lands in a directory "0000:00:02.0",
 * and "/rom@etc/acpi/tables" is relative to DIR).  The idstr comes from
 * the stream, so it must not reach outside DIR:
 *   - empty components (leading, doubled or trailing '/') are dropped,
 *     so no name is absolute;
 *   - a component "." or ".." is written "%2E" or "%2E%2E";
 *   - a name with no component left is written "%2F";
 *   - every component is opened with O_NOFOLLOW below a descriptor of
 *     DIR, so a symlink already in DIR is never followed;
 *   - two blocks whose names map to the same path, or one to a directory
 *     of the other's path, are an error, not a silent overwrite. */

#define REL_MAX (3 * 256 + 8)

static void block_relpath(const char *idstr, char *out)
{
    size_t o = 0;
    const char *s = idstr;
    while (*s) {
        while (*s == '/')
            s++;
        if (!*s)
            break;
        const char *e = strchr(s, '/');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        if (o)
            out[o++] = '/';
        if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.')) {
            for (size_t k = 0; k < n; k++) {
                memcpy(out + o, "%2E", 3);
                o += 3;
            }
        } else {
            memcpy(out + o, s, n);
            o += n;
        }
        s += n;
    }
    if (o == 0) {
        memcpy(out, "%2F", 3);
        o = 3;
    }
    out[o] = 0;
}

/* Two block paths that cannot both be files: equal, or one a directory
 * on the way to the other.  Returns why, or NULL. */
static const char *path_clash(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la == lb && memcmp(a, b, la) == 0)
        return "map to the same file";
    if ((la < lb && memcmp(a, b, la) == 0 && b[la] == '/') ||
        (lb < la && memcmp(a, b, lb) == 0 && a[lb] == '/'))
        return "map to a file and a directory of the same name";
    return NULL;
}

/* Open DIR-relative `rel` (made by block_relpath) without following any
 * symlink; with `create`, make the directories and create/truncate the
 * file.  Returns a descriptor or -1 with errno set. */
static int open_below(int dirfd, const char *rel, int create)
{
    char comp[REL_MAX];
    int cur = dirfd;
    const char *s = rel;
    for (;;) {
        const char *e = strchr(s, '/');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        memcpy(comp, s, n);
        comp[n] = 0;
        int fd;
        if (!e) {
            int flags = O_RDWR | O_NOFOLLOW | (create ? O_CREAT | O_TRUNC : 0);
            fd = openat(cur, comp, flags, 0666);
        } else {
            if (create && mkdirat(cur, comp, 0777) < 0 && errno != EEXIST)
                fd = -1;
            else
                fd = openat(cur, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
        }
        int saved = errno;
        if (cur != dirfd)
            close(cur);
        errno = saved;
        if (fd < 0 || !e)
            return fd;
        cur = fd;
        s = e + 1;
    }
}

/* ---- state
 * ------------------------------------------------------------------- */

/* Which write of a page the block file holds, for rebuilding RAM from a
 * main channel and multifd channels read one after another: the rank of
 * a write is (epoch + 1) << 32 | source, source 0 for the main channel
 * and packet_num + 1 for a multifd packet (both saturating), 0 for a page
 * never written.  A write applies when its rank is >= the held one: a
 * later sync epoch always wins; in one epoch the higher multifd packet
 * number wins, a multifd page wins over a main-channel page (QEMU sends a
 * page at most once per epoch, so that tie never happens in a real
 * migration; the rule only makes the output independent of file order),
 * and main-channel pages of one epoch apply in stream order. */
typedef uint64_t page_rank;

typedef struct ram_block {
    char name[256];
    char rel[REL_MAX];
    uint64_t used_length;
    int fd; /* -1 while closed (see MAX_OPEN_BLOCKS) */
    uint64_t last_use;
    /* per page, allocated at the block's first page (calloc: untouched
     * parts of a large block cost address space, not memory) */
    uint32_t psize;   /* page size the arrays are indexed by; 0: none yet */
    uint64_t npages;  /* used_length / psize, rounded up */
    page_rank *rank;  /* npages: the held write's rank */
    uint8_t *xbz;     /* npages bits, once an XBZRLE page came: the held
                         write was decoded against the page as it was */
    uint8_t *disc;    /* npages bits, once a discard came: the held rank
                         is a discard's, not a write's */
    uint64_t pages, zero_pages, xbzrle_pages;
    uint64_t superseded; /* writes a newer version replaced or skipped */
    uint64_t discarded;  /* pages a postcopy discard cleared */
} ram_block;

/* One migstream v1 image of the selected device (chunks or packets). */
typedef struct v1_image {
    uint32_t seq;
    ms_phase phase; /* NONE until IMAGE_BEGIN/END names it */
    int ended;      /* IMAGE_END seen: `length` is final */
    uint64_t length, received, extent;
    /* --salvage: bytes of an unknown length were lost at image offset
     * gap_at (the reader counted on from the bytes received) */
    int gap;
    uint64_t gap_at;
    int placed;    /* its output offset is known: */
    uint64_t base; /* the output offset of its byte 0 */
} v1_image;

/* --salvage: image bytes that are zero in the output (damaged or lost). */
typedef struct zero_range {
    uint32_t seq;
    uint64_t image_offset, length;
} zero_range;

/* Bytes of a v1 image that arrived before the output offset of their
 * image was known, parked in the spool file. */
typedef struct v1_extent {
    uint32_t seq;
    uint64_t image_offset, spool_offset, size;
} v1_extent;

typedef struct extract_ctx {
    char *const *files;
    size_t nfiles;
    int verbose;
    int failed_io;     /* an output write failed: exit 2 */
    int problems;      /* invalid input found here (XBZRLE deltas) */
    ms_format *format; /* per file, from its stream header */

    /* --ram */
    const char *ram_dir;
    int dirfd;
    ram_block *blocks;
    size_t nblocks, blockcap, nopen;
    uint64_t tick;
    uint8_t *page;      /* MAX_PAGE_SIZE scratch */
    extent_writer *ew;  /* per file: its page writes batched into runs */
    ram_block *last;    /* block of the previous page (CONTINUE runs) */
    int *said;          /* per file: a problem line was printed for it */

    /* --device */
    const char *dev_idstr, *out_path;
    ms_phase phase; /* MS_PHASE_NONE: all */
    int phase_given;
    int out_fd;
    int dev_found;
    uint32_t *qemu_sec; /* per file: the device's section id */
    int *qemu_has_sec;
    uint64_t qemu_pos; /* QEMU: next output offset (stream order) */
    int v1_has_handle;
    uint32_t v1_handle;
    v1_image *images;
    size_t nimages, imagecap;
    uint32_t cur_seq;  /* v1: image being placed */
    uint64_t cur_base; /* v1: its output offset */
    FILE *spool;
    uint64_t spool_len;
    v1_extent *ext;
    size_t next, extcap;
    uint64_t dev_bytes;
    /* --config: QEMU multifd device state's config buffer */
    const char *config_path;
    int config_fd;
    uint64_t config_bytes;
    /* --out - or --config -: that output is built in an unlinked
     * temporary file (images are placed with pwrite, and --salvage moves
     * bytes back and forth: a pipe takes neither) and copied to standard
     * output once complete.  -1: none. */
    int stdout_fd;
    /* problem lines, printed on stderr sorted by file and offset (channel
     * files decode on threads) */
    tool_held held;
    /* --salvage */
    int salvage;
    zero_range *zr;
    size_t nzr, zrcap;
    zero_range *zpk; /* damaged packets: seq, idx (image_offset) */
    size_t nzpk, zpkcap;
    /* --salvage: where the set put each packet's bytes, two rows per
     * packet: {seq, idx, 0} then {seq, image_offset, length} */
    zero_range *pkt_at;
    size_t npkt_at, pkt_atcap;
} extract_ctx;

static void io_fail(extract_ctx *x, const char *what, int err)
{
    if (!x->failed_io)
        fprintf(stderr, "%s: %s: %s\n", prog, what, strerror(err));
    x->failed_io = 1;
}

static void *grow(void *arr, size_t elem, size_t *cap, size_t want)
{
    if (want <= *cap)
        return arr;
    size_t n = *cap ? *cap * 2 : 16;
    while (n < want)
        n *= 2;
    void *p = realloc(arr, n * elem);
    if (p)
        *cap = n;
    return p;
}

/* An invalid-input problem found by the tool itself (not the library). */
static void own_problem(extract_ctx *x, size_t file, ms_error code,
                        uint64_t offset, const char *detail)
{
    ms_error_info e = {.code = code, .offset = offset};
    /* the precision states the cut: details longer than the field end */
    snprintf(e.detail, sizeof e.detail, "%.*s", (int)sizeof e.detail - 1,
             detail);
    x->problems++;
    x->said[file] = 1;
    tool_held_problem(&x->held, file, x->files[file], &e);
}

/* ---- --ram ------------------------------------------------------------------
 */

static void block_path(const extract_ctx *x, const ram_block *b, char *buf,
                       size_t cap)
{
    snprintf(buf, cap, "%s/%s", x->ram_dir, b->rel);
}

/* A failed page write of writer w (rc -1, errno set): report the block's
 * file. */
static void ram_check(extract_ctx *x, const extent_writer *w, int rc)
{
    if (rc < 0) {
        int err = errno;
        char path[4096];
        block_path(x, &x->blocks[w->failed_tag], path, sizeof path);
        io_fail(x, path, err);
    }
}

/* Write out every pending run of page writes: before a block file is
 * read, resized or closed, the runs have to be in it. */
static void ram_flush(extract_ctx *x)
{
    for (size_t i = 0; x->ew && i < x->nfiles; i++)
        ram_check(x, &x->ew[i], ew_flush(&x->ew[i]));
}

/* The block's descriptor, reopening it when it was closed to stay under
 * MAX_OPEN_BLOCKS.  Returns -1 after reporting an I/O error. */
static void make_room(extract_ctx *x)
{
    if (x->nopen < MAX_OPEN_BLOCKS)
        return;
    ram_block *lru = NULL;
    for (size_t i = 0; i < x->nblocks; i++)
        if (x->blocks[i].fd >= 0 &&
            (!lru || x->blocks[i].last_use < lru->last_use))
            lru = &x->blocks[i];
    if (lru) {
        ram_flush(x); /* the pending run may be lru's */
        close(lru->fd);
        lru->fd = -1;
        x->nopen--;
    }
}

static int block_fd(extract_ctx *x, ram_block *b)
{
    b->last_use = ++x->tick;
    if (b->fd >= 0)
        return b->fd;
    make_room(x);
    if ((b->fd = open_below(x->dirfd, b->rel, 0)) < 0) {
        char path[4096];
        block_path(x, b, path, sizeof path);
        io_fail(x, path, errno);
        return -1;
    }
    x->nopen++;
    return b->fd;
}

static ram_block *find_block(extract_ctx *x, const char *name)
{
    if (x->last && strcmp(x->last->name, name) == 0)
        return x->last;
    for (size_t i = 0; i < x->nblocks; i++)
        if (strcmp(x->blocks[i].name, name) == 0)
            return x->last = &x->blocks[i];
    return NULL;
}

/* A per-page bitmap (when it exists) from `old` to `n` pages. */
static int resize_bits(uint8_t **bits, uint64_t old_n, uint64_t n)
{
    if (!*bits)
        return 0;
    size_t old = (size_t)((old_n + 7) / 8), want = (size_t)((n + 7) / 8);
    uint8_t *m = realloc(*bits, want ? want : 1);
    if (!m)
        return -1;
    if (want > old)
        memset(m + old, 0, want - old);
    if (n % 8) /* bits past the last page stay clear */
        m[want - 1] &= (uint8_t)((1u << (n % 8)) - 1);
    *bits = m;
    return 0;
}

/* (Re)size the per-page tables of a block to n pages; new pages are
 * unwritten.  0, or -1 when memory is short (the old tables stay). */
static int resize_ranks(ram_block *b, uint64_t n)
{
    if (n > SIZE_MAX / sizeof *b->rank)
        return -1;
    page_rank *r;
    if (!b->rank) {
        r = calloc(n ? (size_t)n : 1, sizeof *r);
    } else {
        r = realloc(b->rank, (n ? (size_t)n : 1) * sizeof *r);
        if (r && n > b->npages)
            memset(r + b->npages, 0, (size_t)(n - b->npages) * sizeof *r);
    }
    if (!r)
        return -1;
    b->rank = r;
    if (resize_bits(&b->xbz, b->npages, n) < 0 ||
        resize_bits(&b->disc, b->npages, n) < 0)
        return -1;
    b->npages = n;
    return 0;
}

/* A RAM block list entry: create (or resize) its file. */
static ram_block *add_block(extract_ctx *x, const char *name, uint64_t used)
{
    char path[4096];
    ram_block *b = find_block(x, name);
    if (!b) {
        ram_block *arr =
            grow(x->blocks, sizeof *arr, &x->blockcap, x->nblocks + 1);
        if (!arr) {
            io_fail(x, "block table", ENOMEM);
            return NULL;
        }
        x->blocks = arr;
        x->last = NULL; /* the array may have moved */
        b = &x->blocks[x->nblocks];
        memset(b, 0, sizeof *b);
        snprintf(b->name, sizeof b->name, "%s", name);
        block_relpath(name, b->rel);
        b->fd = -1;
        for (size_t i = 0; i < x->nblocks; i++) {
            const char *how = path_clash(x->blocks[i].rel, b->rel);
            if (how) {
                block_path(x, b, path, sizeof path);
                fprintf(stderr, "%s: %s: RAM blocks \"%s\" and \"%s\" %s\n",
                        prog, path, x->blocks[i].name, name, how);
                x->failed_io = 1;
                return NULL;
            }
        }
        make_room(x);
        if ((b->fd = open_below(x->dirfd, b->rel, 1)) < 0) {
            block_path(x, b, path, sizeof path);
            io_fail(x, path, errno);
            return NULL;
        }
        x->nopen++;
        x->nblocks++;
    }
    int fd = block_fd(x, b);
    if (fd < 0)
        return NULL;
    ram_flush(x); /* a shorter block drops what was written past its end */
    if (used > (uint64_t)INT64_MAX || ftruncate(fd, (off_t)used) < 0) {
        block_path(x, b, path, sizeof path);
        io_fail(x, path, used > (uint64_t)INT64_MAX ? EFBIG : errno);
        return NULL;
    }
    if (b->psize && used != b->used_length) {
        /* Listed again with another length: keep the ranks of the pages
         * that are still there. */
        uint64_t n = used / b->psize + (used % b->psize != 0);
        if (resize_ranks(b, n) < 0) {
            io_fail(x, "page table", ENOMEM);
            return NULL;
        }
    }
    b->used_length = used;
    return x->last = b;
}

/* The writer of `file`, about to write n bytes at `off` of fd; `again`:
 * they were written before, maybe in another file's pending run, which
 * then goes first (later pages win). */
static extent_writer *writer(extract_ctx *x, size_t file, int fd, uint64_t off,
                             uint64_t n, int again)
{
    for (size_t i = 0; again && i < x->nfiles; i++)
        if (i != file && ew_overlaps(&x->ew[i], fd, off, n))
            ram_check(x, &x->ew[i], ew_flush(&x->ew[i]));
    return &x->ew[file];
}

/* Page bytes at `off` of the block, batched with the pages of the same
 * file around them. */
static void ram_write(extract_ctx *x, size_t file, ram_block *b,
                      const uint8_t *p, size_t n, uint64_t off, int again)
{
    int fd = block_fd(x, b);
    if (fd < 0)
        return;
    extent_writer *w = writer(x, file, fd, off, n, again);
    ram_check(x, w, ew_data(w, fd, (size_t)(b - x->blocks), off, p, n));
}

/* n bytes at `off` of the block read as zero: a hole, or zeros between
 * data pages of a batch (EW_GAP_MAX); `written`: the file may hold data
 * there now. */
static void ram_zero(extract_ctx *x, size_t file, ram_block *b, uint64_t off,
                     uint64_t n, int written)
{
    int fd = block_fd(x, b);
    if (fd < 0)
        return;
    extent_writer *w = writer(x, file, fd, off, n, written);
    ram_check(x, w, ew_zero(w, fd, (size_t)(b - x->blocks), off, n, written));
}

/* Read the page as the destination has it now (holes read as zero). */
static int ram_read(extract_ctx *x, ram_block *b, uint8_t *p, size_t n,
                    uint64_t off)
{
    int fd = block_fd(x, b);
    if (fd < 0)
        return -1;
    ram_flush(x);
    if (pread_full(fd, p, n, off) < 0) {
        char path[4096];
        block_path(x, b, path, sizeof path);
        io_fail(x, path, errno);
        return -1;
    }
    return 0;
}

static page_rank make_rank(uint32_t epoch, int multifd, uint64_t packet_num)
{
    uint64_t e = epoch < UINT32_MAX ? (uint64_t)epoch + 1 : UINT32_MAX;
    uint64_t src = !multifd ? 0
                   : packet_num < UINT32_MAX - 1 ? packet_num + 1
                                                 : UINT32_MAX;
    return e << 32 | src;
}

/* Pages of a postcopy-preempt channel: each is sent once, once postcopy
 * runs (after every discard and every precopy page), so it always wins. */
#define PREEMPT_RANK UINT64_MAX

static int xbz_test(const ram_block *b, uint64_t i)
{
    return b->xbz && (b->xbz[i / 8] >> (i % 8) & 1);
}

/* A page for a block the main stream did not list: one line per file
 * (the set reports the packet too; a second line would say the same). */
static void unknown_block(extract_ctx *x, size_t file, const ms_event *ev)
{
    char why[320];
    if (x->said[file]) {
        x->problems++;
        return;
    }
    snprintf(why, sizeof why,
             "page for RAM block \"%.256s\", which no main channel's block "
             "list has",
             ev->u.ram.block);
    own_problem(x, file, x->format[file] == MS_FORMAT_QEMU_MULTIFD
                             ? MS_ERR_MULTIFD
                             : MS_ERR_RAM,
                ev->offset, why);
}

/* The block's page tables, sized for pages of `psize` bytes at its first
 * page or discard.  0, or -1 (reported). */
static int block_pages(extract_ctx *x, size_t file, ram_block *b,
                       uint32_t psize, uint64_t at)
{
    if (psize > MAX_PAGE_SIZE || (psize & (psize - 1))) {
        own_problem(x, file, MS_ERR_RAM, at, "page size unusable");
        return -1;
    }
    if (!b->psize) {
        b->psize = psize;
        if (resize_ranks(b, b->used_length / psize +
                                (b->used_length % psize != 0)) < 0) {
            b->psize = 0;
            io_fail(x, "page table", ENOMEM);
            return -1;
        }
    } else if (psize != b->psize) {
        char why[160];
        snprintf(why, sizeof why,
                 "page of %u bytes in RAM block \"%.64s\", whose pages "
                 "were %u bytes so far",
                 psize, b->name, b->psize);
        own_problem(x, file, MS_ERR_RAM, at, why);
        return -1;
    }
    return 0;
}

/* Make pages [first, first + n) of the block read as zero: a hole punched
 * into the file, or zeros written where the file system cannot punch. */
static void clear_pages(extract_ctx *x, size_t file, ram_block *b,
                        uint64_t first, uint64_t n)
{
    uint64_t off = first * b->psize, len = n * b->psize;
    if (off + len > b->used_length)
        len = b->used_length - off;
    ram_zero(x, file, b, off, len, 1);
}

/* One POSTCOPY_RAM_DISCARD range: pages whose held write ranks at or below
 * the discard are cleared, and every page of the range then holds the
 * discard's rank, so only writes after it apply. */
static void ram_discard(extract_ctx *x, size_t file, const ms_event *ev)
{
    const ms_discard_info *d = &ev->u.discard;
    ram_block *b = find_block(x, d->block);
    if (!b) {
        char why[320];
        snprintf(why, sizeof why,
                 "discard for RAM block \"%.256s\", which no block list has",
                 d->block);
        own_problem(x, file, MS_ERR_RAM, ev->offset, why);
        return;
    }
    if (block_pages(x, file, b, d->page_size, ev->offset) < 0)
        return;
    uint64_t first = d->start / b->psize, n = d->length / b->psize;
    if (d->start % b->psize || d->length % b->psize || first > b->npages ||
        n > b->npages - first) {
        own_problem(x, file, MS_ERR_RAM, ev->offset,
                    "discard range outside its RAM block's file");
        return;
    }
    page_rank rank = make_rank(d->epoch, 0, 0);
    if (!b->disc && !(b->disc = calloc((size_t)((b->npages + 7) / 8), 1))) {
        io_fail(x, "page table", ENOMEM);
        return;
    }
    uint64_t run = 0, run_len = 0;
    for (uint64_t i = first; i < first + n; i++) {
        int clear = b->rank[i] && b->rank[i] <= rank;
        if (clear) {
            if (!run_len)
                run = i;
            run_len++;
            b->discarded++;
            if (b->xbz)
                b->xbz[i / 8] &= (uint8_t)~(1u << (i % 8));
        } else if (run_len) {
            clear_pages(x, file, b, run, run_len);
            run_len = 0;
        }
        if (b->rank[i] <= rank) {
            b->rank[i] = rank;
            b->disc[i / 8] |= (uint8_t)(1u << (i % 8));
        }
    }
    if (run_len)
        clear_pages(x, file, b, run, run_len);
}

/* Where a page record lands: its block, whose page tables now hold pages
 * of the record's page size (*psize), with the whole page inside it.
 * NULL: reported. */
static ram_block *page_block(extract_ctx *x, size_t file, const ms_event *ev,
                             uint32_t *psize_out)
{
    const ms_ram_info *r = &ev->u.ram;
    ram_block *b = find_block(x, r->block);
    if (!b) {
        unknown_block(x, file, ev);
        return NULL;
    }
    uint32_t psize = r->page_size ? r->page_size : DEFAULT_PAGE_SIZE;
    if (block_pages(x, file, b, psize, ev->offset) < 0)
        return NULL;
    /* The decoder checked the offset against the block, but a block
     * listed again (another file) may be shorter now. */
    uint64_t span =
        r->record == MS_RAM_PAGE || r->record == MS_RAM_COMPRESS_PAGE ? r->size
                                                                      : psize;
    if (span != psize || r->offset % psize || r->offset > b->used_length ||
        b->used_length - r->offset < span) {
        own_problem(x, file, MS_ERR_RAM, ev->offset,
                    "page outside its RAM block's file");
        return NULL;
    }
    *psize_out = psize;
    return b;
}

/* The block's count of the record's kind; -1: not a page record. */
static int count_page(ram_block *b, ms_ram_record record)
{
    switch (record) {
    case MS_RAM_PAGE:
    case MS_RAM_COMPRESS_PAGE: /* arrives inflated */
        b->pages++;
        break;
    case MS_RAM_ZERO:
        b->zero_pages++;
        break;
    case MS_RAM_XBZRLE:
        b->xbzrle_pages++;
        break;
    default:
        return -1;
    }
    return 0;
}

/* An XBZRLE page (page i of the block, psize bytes) applied to the page
 * the output holds; it then holds `rank`. */
static void ram_xbzrle(extract_ctx *x, size_t file, const ms_event *ev,
                       ram_block *b, uint64_t i, uint32_t psize,
                       page_rank rank)
{
    const ms_ram_info *r = &ev->u.ram;
    /* The delta applies to the page as the destination holds it
     * (the reader has checked it with the same rules). */
    size_t bad;
    if (ram_read(x, b, x->page, psize, r->offset) < 0)
        return;
    if (ms_xbzrle_apply(r->data, r->size, x->page, psize, &bad) < 0) {
        char why[160];
        snprintf(why, sizeof why, "XBZRLE delta: %s",
                 ms_xbzrle_check(r->data, r->size, psize, NULL));
        own_problem(x, file, MS_ERR_RAM,
                    ev->offset + (ev->length - r->size) + bad, why);
        return;
    }
    if (ew_all_zero(x->page, psize))
        ram_zero(x, file, b, r->offset, psize, 1); /* zero pages: holes */
    else
        ram_write(x, file, b, x->page, psize, r->offset, 1);
    if (!b->xbz && !(b->xbz = calloc((size_t)((b->npages + 7) / 8), 1))) {
        io_fail(x, "page table", ENOMEM);
        return;
    }
    b->xbz[i / 8] |= (uint8_t)(1u << (i % 8));
    b->rank[i] = rank;
}

/* One page record: counted, then written unless the output already holds
 * a newer version of the page (by rank). */
static void ram_page(extract_ctx *x, size_t file, const ms_event *ev)
{
    const ms_ram_info *r = &ev->u.ram;
    uint32_t psize;
    ram_block *b = page_block(x, file, ev, &psize);
    if (!b)
        return;
    int multifd = x->format[file] == MS_FORMAT_QEMU_MULTIFD;
    uint64_t i = r->offset / psize;
    page_rank rank = x->format[file] == MS_FORMAT_QEMU_PREEMPT
                         ? PREEMPT_RANK
                         : make_rank(r->epoch, multifd, r->packet_num);
    page_rank held = b->rank[i];
    if (count_page(b, r->record) < 0)
        return;
    if (rank < held) {
        /* An older version than the one the file holds: the receiver
         * would have written it first. */
        b->superseded++;
        if (xbz_test(b, i) && multifd) {
            own_problem(x, file, MS_ERR_RAM, ev->offset,
                        "multifd page older than an XBZRLE page of the main "
                        "channel, which was decoded without it (XBZRLE "
                        "with multifd is not rebuilt)");
        }
        return;
    }
    int after_discard = b->disc && (b->disc[i / 8] >> (i % 8) & 1);
    if (held && !after_discard)
        b->superseded++; /* the held write is replaced */
    if (after_discard)
        b->disc[i / 8] &= (uint8_t)~(1u << (i % 8));
    switch (r->record) {
    case MS_RAM_PAGE:
    case MS_RAM_COMPRESS_PAGE:
        if (!ew_all_zero(r->data, r->size)) {
            ram_write(x, file, b, r->data, r->size, r->offset, held != 0);
            break;
        }
        /* An all-zero page is a zero page: no bytes in the output. */
        /* fall through */
    case MS_RAM_ZERO:
        /* A page never written, or cleared by a discard, reads as zero
         * already (a hole of the sparse file); one written before is
         * punched out (QEMU's loader memsets it too).  Between data pages
         * either may be written as zeros instead (EW_GAP_MAX). */
        ram_zero(x, file, b, r->offset, psize, held && !after_discard);
        break;
    case MS_RAM_XBZRLE:
        ram_xbzrle(x, file, ev, b, i, psize, rank);
        return;
    default:
        return;
    }
    if (b->xbz)
        b->xbz[i / 8] &= (uint8_t)~(1u << (i % 8));
    b->rank[i] = rank;
}

/* --ram: the RAM events of one file (block lists, discards, pages). */
static void ram_event(extract_ctx *x, size_t file, const ms_event *ev)
{
    const ms_ram_info *r = &ev->u.ram;
    if (ev->kind == MS_EV_RAM_BLOCK) {
        add_block(x, r->block, r->used_length);
        return;
    }
    if (ev->kind == MS_EV_RAM_DISCARD) {
        ram_discard(x, file, ev);
        return;
    }
    if (ev->kind != MS_EV_RAM_PAGE || !r->block)
        return;
    ram_page(x, file, ev);
}

/* ---- --device
 * ----------------------------------------------------------------- */

static int phase_selected(const extract_ctx *x, ms_phase p)
{
    return x->phase == MS_PHASE_NONE || x->phase == p;
}

static void out_write(extract_ctx *x, const uint8_t *p, size_t n, uint64_t off)
{
    if (ew_pwrite_all(x->out_fd, p, n, off) < 0)
        io_fail(x, x->out_path, errno);
    else
        x->dev_bytes += n;
}

static v1_image *v1_find(extract_ctx *x, uint32_t seq, int create)
{
    for (size_t i = 0; i < x->nimages; i++)
        if (x->images[i].seq == seq)
            return &x->images[i];
    if (!create)
        return NULL;
    v1_image *arr = grow(x->images, sizeof *arr, &x->imagecap, x->nimages + 1);
    if (!arr) {
        io_fail(x, "image table", ENOMEM);
        return NULL;
    }
    x->images = arr;
    v1_image *im = &x->images[x->nimages++];
    memset(im, 0, sizeof *im);
    im->seq = seq;
    return im;
}

/* Copy the parked bytes of image `seq` to the output at `base`. */
static void v1_flush(extract_ctx *x, uint32_t seq, uint64_t base, int write)
{
    static uint8_t buf[COPY_BUF];
    size_t keep = 0;
    for (size_t i = 0; i < x->next; i++) {
        v1_extent e = x->ext[i];
        if (e.seq != seq) {
            x->ext[keep++] = e;
            continue;
        }
        for (uint64_t done = 0; write && !x->failed_io && done < e.size;) {
            size_t n =
                (size_t)(e.size - done < COPY_BUF ? e.size - done : COPY_BUF);
            if (pread_full(fileno(x->spool), buf, n, e.spool_offset + done) <
                0) {
                io_fail(x, "spool file", errno);
                break;
            }
            out_write(x, buf, n, base + e.image_offset + done);
            done += n;
        }
    }
    x->next = keep;
}

/* ---- --salvage (spec/salvage.md)
 * ----------------------------------------------------------------- */

static void v1_advance(extract_ctx *x);

static uint64_t min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

/* Append `z` to a table of ranges. */
static void zr_add(extract_ctx *x, zero_range **tab, size_t *n, size_t *cap,
                   zero_range z)
{
    zero_range *arr = grow(*tab, sizeof *arr, cap, *n + 1);
    if (!arr) {
        io_fail(x, "damage table", ENOMEM);
        return;
    }
    *tab = arr;
    arr[(*n)++] = z;
}

/* Image bytes to be zero in the output (written once all is placed). */
static void salvage_zero(extract_ctx *x, uint32_t seq, uint64_t off,
                         uint64_t len)
{
    if (len)
        zr_add(x, &x->zr, &x->nzr, &x->zrcap, (zero_range){seq, off, len});
}

/* An image that lost bytes of unknown length at gap_at ended: IMAGE_END
 * gives the length, so the bytes received after the gap (written from
 * gap_at on) belong at the image's end: move them there and zero the
 * gap.  With more than one gap in an image only the last one's tail is
 * placed this way; the bytes between gaps end up zeroed. */
static void salvage_close_gap(extract_ctx *x, v1_image *im, int sel)
{
    static uint8_t buf[COPY_BUF];
    if (im->received >= im->length)
        return;
    uint64_t delta = im->length - im->received;
    for (uint64_t end = im->received; sel && end > im->gap_at;) {
        size_t n = (size_t)min_u64(COPY_BUF, end - im->gap_at);
        end -= n;
        if (pread_full(x->out_fd, buf, n, im->base + end) < 0 ||
            ew_pwrite_all(x->out_fd, buf, n, im->base + end + delta) < 0) {
            io_fail(x, x->out_path, errno);
            return;
        }
    }
    for (size_t i = 0; i < x->nzr; i++)
        if (x->zr[i].seq == im->seq && x->zr[i].image_offset >= im->gap_at)
            x->zr[i].image_offset += delta;
    salvage_zero(x, im->seq, im->gap_at, delta);
    im->received = im->extent = im->length;
}

/* A damage event of the selected device's chunk-mode image. */
static void salvage_damage(extract_ctx *x, size_t file, const ms_event *ev)
{
    const ms_damage_info *d = &ev->u.damage;
    if (!d->has_image || !x->v1_has_handle || d->device != x->v1_handle)
        return;
    if (d->in_packet) { /* the set gives its image offset with its bytes */
        zr_add(x, &x->zpk, &x->nzpk, &x->zpkcap,
               (zero_range){d->seq, d->packet_idx, 0});
        fprintf(stderr,
                "%s:%" PRIu64 ": damaged: device %s image %u: packet %u "
                "(%" PRIu64 " bytes) damaged\n",
                x->files[file], ev->offset, x->dev_idstr, d->seq,
                d->packet_idx, d->image_length);
        return;
    }
    v1_image *im = v1_find(x, d->seq, 1);
    if (!im)
        return;
    if (d->length_known) {
        salvage_zero(x, d->seq, d->image_offset, d->image_length);
    } else if (!im->gap || d->image_offset < im->gap_at) {
        im->gap = 1;
        im->gap_at = d->image_offset;
    }
    fprintf(stderr,
            "%s:%" PRIu64 ": damaged: device %s image %u: %s at image "
            "offset 0x%" PRIx64 "\n",
            x->files[file], ev->offset, x->dev_idstr, d->seq,
            d->length_known ? "bytes lost" : "bytes of unknown length lost",
            d->image_offset);
    v1_advance(x);
}

/* Where the set put a packet's bytes (a damage event for it may come
 * before or after them: channels decode concurrently). */
static void salvage_packet_bytes(extract_ctx *x, const ms_data_info *d)
{
    size_t n = x->npkt_at;
    if (n >= 2 && x->pkt_at[n - 2].seq == d->seq &&
        x->pkt_at[n - 2].image_offset == d->packet_idx &&
        x->pkt_at[n - 1].image_offset + x->pkt_at[n - 1].length ==
            d->image_offset) {
        x->pkt_at[n - 1].length += d->size; /* the same packet goes on */
        return;
    }
    zr_add(x, &x->pkt_at, &x->npkt_at, &x->pkt_atcap,
           (zero_range){d->seq, d->packet_idx, 0});
    zr_add(x, &x->pkt_at, &x->npkt_at, &x->pkt_atcap,
           (zero_range){d->seq, d->image_offset, d->size});
}

/* After everything is placed: zero the damaged bytes, and list them. */
static void salvage_finish(extract_ctx *x)
{
    for (size_t i = 0; i < x->nzpk; i++) /* damaged packets: their bytes */
        for (size_t j = 0; j + 1 < x->npkt_at; j += 2)
            if (x->pkt_at[j].seq == x->zpk[i].seq &&
                x->pkt_at[j].image_offset == x->zpk[i].image_offset)
                salvage_zero(x, x->pkt_at[j].seq,
                             x->pkt_at[j + 1].image_offset,
                             x->pkt_at[j + 1].length);
    static const uint8_t zeros[COPY_BUF];
    for (size_t i = 0; i < x->nzr && !x->failed_io; i++) {
        const zero_range *z = &x->zr[i];
        v1_image *im = v1_find(x, z->seq, 0);
        if (!im || !im->placed || !phase_selected(x, im->phase))
            continue;
        uint64_t size = im->ended ? im->length : im->extent;
        uint64_t off = min_u64(z->image_offset, size);
        uint64_t len = min_u64(z->length, size - off);
        for (uint64_t done = 0; done < len;) {
            size_t n = (size_t)min_u64(COPY_BUF, len - done);
            if (ew_pwrite_all(x->out_fd, zeros, n, im->base + off + done) < 0)
                io_fail(x, x->out_path, errno);
            done += n;
        }
        if (len)
            fprintf(stderr,
                    "%s: %s: bytes 0x%" PRIx64 "-0x%" PRIx64
                    " zero-filled: image %u bytes 0x%" PRIx64 "-0x%" PRIx64
                    " damaged\n",
                    prog, x->out_path, im->base + off, im->base + off + len - 1,
                    z->seq, off, off + len - 1);
    }
}

/* Place images in seq order: an image's output offset is known once every
 * earlier image is complete (its length from IMAGE_END reached). */
static void v1_advance(extract_ctx *x)
{
    v1_image *im;
    while ((im = v1_find(x, x->cur_seq, 0)) && im->phase != MS_PHASE_NONE) {
        int sel = phase_selected(x, im->phase);
        im->placed = 1;
        im->base = x->cur_base;
        v1_flush(x, im->seq, x->cur_base, sel);
        if (!im->ended || (im->received < im->length && !im->gap))
            break;
        if (im->gap)
            salvage_close_gap(x, im, sel);
        if (sel)
            x->cur_base += im->length;
        x->cur_seq++;
    }
}

static void v1_data(extract_ctx *x, const ms_data_info *d)
{
    v1_image *im = v1_find(x, d->seq, 1);
    if (!im)
        return;
    if (im->phase == MS_PHASE_NONE)
        im->phase = d->phase;
    im->received += d->size;
    if (d->image_offset + d->size > im->extent)
        im->extent = d->image_offset + d->size;
    if (d->seq < x->cur_seq)
        return; /* an image already placed cannot grow (the reader or the
                   set reports the problem) */
    if (d->seq == x->cur_seq && im->phase != MS_PHASE_NONE) {
        if (phase_selected(x, im->phase))
            out_write(x, d->data, d->size, x->cur_base + d->image_offset);
    } else {
        /* Not its turn yet: park the bytes. */
        if (!x->spool && !(x->spool = tmpfile())) {
            io_fail(x, "spool file", errno);
            return;
        }
        v1_extent *arr = grow(x->ext, sizeof *arr, &x->extcap, x->next + 1);
        if (!arr) {
            io_fail(x, "spool table", ENOMEM);
            return;
        }
        x->ext = arr;
        if (ew_pwrite_all(fileno(x->spool), d->data, d->size, x->spool_len) <
            0) {
            io_fail(x, "spool file", errno);
            return;
        }
        x->ext[x->next++] =
            (v1_extent){d->seq, d->image_offset, x->spool_len, d->size};
        x->spool_len += d->size;
    }
    v1_advance(x);
}

/* After the last file: place what is left (an incomplete or invalid
 * migration still gives every byte decoded, in seq order). */
static void v1_finish(extract_ctx *x)
{
    v1_advance(x);
    for (;;) {
        v1_image *next = NULL;
        for (size_t i = 0; i < x->nimages; i++)
            if (x->images[i].seq >= x->cur_seq &&
                (!next || x->images[i].seq < next->seq))
                next = &x->images[i];
        if (!next)
            break;
        int sel = next->phase == MS_PHASE_NONE ? x->phase == MS_PHASE_NONE
                                               : phase_selected(x, next->phase);
        next->placed = 1;
        next->base = x->cur_base;
        v1_flush(x, next->seq, x->cur_base, sel);
        if (next->gap) /* no IMAGE_END: where the later bytes go is lost */
            salvage_zero(x, next->seq, next->gap_at,
                         next->extent - min_u64(next->gap_at, next->extent));
        if (sel)
            x->cur_base += next->extent;
        if (next->seq == UINT32_MAX)
            break;
        x->cur_seq = next->seq + 1;
    }
}

static void device_event(extract_ctx *x, size_t file, const ms_event *ev,
                         int from_set)
{
    int qemu = x->format[file] != MS_FORMAT_MIGSTREAM;
    switch (ev->kind) {
    case MS_EV_SECTION:
        /* QEMU: section ids are per stream, so remember one per file. */
        if (qemu && !from_set &&
            strcmp(ev->u.section.idstr, x->dev_idstr) == 0) {
            x->qemu_sec[file] = ev->u.section.section_id;
            x->qemu_has_sec[file] = 1;
            x->dev_found = 1;
        }
        break;
    case MS_EV_DEVICE:
        if (!qemu && !from_set &&
            strcmp(ev->u.device.idstr, x->dev_idstr) == 0) {
            x->v1_handle = ev->u.device.handle;
            x->v1_has_handle = 1;
            x->dev_found = 1;
        }
        break;
    case MS_EV_IMAGE_BEGIN:
    case MS_EV_IMAGE_END:
        if (!qemu && !from_set && x->v1_has_handle &&
            ev->u.image.device == x->v1_handle) {
            v1_image *im = v1_find(x, ev->u.image.seq, 1);
            if (!im)
                break;
            im->phase = ev->u.image.phase;
            if (ev->kind == MS_EV_IMAGE_END) {
                im->ended = 1;
                im->length = ev->u.image.length;
            }
            v1_advance(x);
        }
        break;
    case MS_EV_MULTIFD_PACKET:
        if (!from_set && ev->u.mfd.device_state &&
            strcmp(ev->u.mfd.idstr, x->dev_idstr) == 0)
            x->dev_found = 1;
        break;
    case MS_EV_DATA: {
        const ms_data_info *d = &ev->u.data;
        if (qemu && from_set) {
            /* QEMU multifd device state, put in idx order by the set (the
             * reader's per-packet bytes arrive in channel order: never
             * used).  The buffers before the config buffer are the final
             * image, the config buffer its own file.  The main channel is
             * read before the channels, so its precopy bytes come first. */
            if (!d->in_packet || !d->idstr ||
                strcmp(d->idstr, x->dev_idstr) != 0)
                break;
            x->dev_found = 1;
            if (d->config) {
                if (x->config_fd >= 0) {
                    if (ew_pwrite_all(x->config_fd, d->data, d->size,
                                      x->config_bytes) < 0)
                        io_fail(x, x->config_path, errno);
                    else
                        x->config_bytes += d->size;
                }
                break;
            }
            if (!phase_selected(x, d->phase))
                break;
            out_write(x, d->data, d->size, x->qemu_pos);
            x->qemu_pos += d->size;
            break;
        }
        if (d->config)
            break;
        if (qemu) {
            if (from_set || !x->qemu_has_sec[file] ||
                d->device != x->qemu_sec[file] || !phase_selected(x, d->phase))
                break;
            /* QEMU's device bytes arrive in stream order on one channel. */
            out_write(x, d->data, d->size, x->qemu_pos);
            x->qemu_pos += d->size;
            break;
        }
        /* v1: chunk bytes from the reader, packet bytes only once the set
         * put them in index order. */
        if (!x->v1_has_handle || d->device != x->v1_handle ||
            d->in_packet != from_set)
            break;
        if (from_set && x->salvage)
            salvage_packet_bytes(x, d);
        v1_data(x, d);
        break;
    }
    default:
        break;
    }
}

/* ---- driving
 * ------------------------------------------------------------------- */

static void on_event(void *ctx, const ms_event *ev,
                     const ms_event_origin *origin)
{
    extract_ctx *x = ctx;
    size_t file = origin->channel;
    int from_set = origin->derived;
    if (x->failed_io)
        return; /* nothing more can be written correctly */
    if (ev->kind == MS_EV_STREAM_HEADER && !from_set)
        x->format[file] = ev->u.stream.format;
    if (x->ram_dir && !from_set)
        ram_event(x, file, ev);
    if (x->dev_idstr && ev->kind == MS_EV_DAMAGE && !from_set) {
        x->problems++; /* exit 1: not everything was recovered */
        x->said[file] = 1;
        salvage_damage(x, file, ev);
    } else if (x->dev_idstr) {
        device_event(x, file, ev, from_set);
    }
    if (x->ram_dir && ev->kind == MS_EV_DAMAGE && !from_set)
        x->problems++;
}

static void on_problem(void *ctx, size_t file, const ms_error_info *e)
{
    extract_ctx *x = ctx;
    if (file != (size_t)-1)
        x->said[file] = 1;
    tool_held_problem(&x->held, file, x->files[file == (size_t)-1 ? 0 : file],
                      e);
}

static void usage(FILE *o)
{
    fprintf(
        o,
        "usage: %s --ram DIR FILE...\n"
        "       %s --device IDSTR --out FILE [--config FILE] [--phase PHASE]\n"
        "              FILE...\n"
        "Write what a migration carried into plain files.\n"
        "  --ram DIR        QEMU guest RAM: one sparse file per RAM block\n"
        "                   under DIR, named after the block ('/' makes\n"
        "                   subdirectories, as analyze-migration.py -x;\n"
        "                   '.' and '..' components are written %%2E and\n"
        "                   %%2E%%2E, leading '/' is dropped), sized to the\n"
        "                   block's used_length, every page at its offset;\n"
        "                   give the main channel and all multifd channels\n"
        "                   (any order): per page the newest write wins\n"
        "                   (later sync epoch, then higher packet number)\n"
        "  --device IDSTR   the state bytes of one device: a QEMU VFIO\n"
        "                   section (e.g. 0000:00:02.0/vfio) and its multifd\n"
        "                   device-state buffers (the final image, in idx\n"
        "                   order), or a migstream device, all its images\n"
        "                   in order\n"
        "  -o, --out FILE   where --device writes (a regular file; - for\n"
        "                   standard output, built in $TMPDIR first)\n"
        "  --config FILE    QEMU multifd device state: also write the\n"
        "                   device's config buffer (CONFIG_STATE; not part\n"
        "                   of the image in --out; - for standard output)\n"
        "  --phase PHASE    only initial, middle or final bytes\n"
        "  -v, --verbose    list what was written\n"
        "  --salvage        write what is recoverable from damaged files\n"
        "                   (migstream: spec/salvage.md): intact images\n"
        "                   byte-exact, damaged ranges zero-filled and\n"
        "                   listed on stderr; exit 1 when any was damaged\n"
        TOOL_QUIET_HELP
        "  -h, --help       this help\n"
        "  -V, --version    version\n"
        "Problems are printed as FILE:OFFSET: error-name: detail; what was\n"
        "decoded before one is still written.\n"
        "reader options:\n",
        prog, prog);
    tool_reader_help(o);
    fprintf(o, "exit: 0 ok, 1 invalid input, 2 usage or I/O error (also: no\n"
               "such device, no RAM in the input)\n");
}

static int parse_phase(const char *s, ms_phase *p)
{
    for (int i = MS_PHASE_INITIAL; i <= MS_PHASE_FINAL; i++)
        if (strcmp(s, ms_phase_name((ms_phase)i)) == 0) {
            *p = (ms_phase)i;
            return 0;
        }
    return -1;
}

static int is_stdout_path(const char *path)
{
    return path && strcmp(path, "-") == 0;
}

/* The unlinked temporary file behind --out - / --config - (under $TMPDIR,
 * else /tmp).  Returns its descriptor or -1 (reported). */
static int open_stdout_spool(extract_ctx *x)
{
    const char *dir = getenv("TMPDIR");
    char path[4096];
    if (!dir || !*dir)
        dir = "/tmp";
    if (snprintf(path, sizeof path, "%s/migstream-extract.XXXXXX", dir) >=
        (int)sizeof path) {
        io_fail(x, dir, ENAMETOOLONG);
        return -1;
    }
    int fd = mkstemp(path);
    if (fd < 0) {
        io_fail(x, path, errno);
        return -1;
    }
    unlink(path);
    x->stdout_fd = fd;
    return fd;
}

/* Copy the finished temporary output to standard output. */
static void copy_to_stdout(extract_ctx *x, int fd)
{
    uint8_t buf[1 << 16];
    uint64_t off = 0;
    for (;;) {
        ssize_t n = pread(fd, buf, sizeof buf, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            io_fail(x, "temporary output", errno);
            return;
        }
        if (n == 0)
            return;
        if (fwrite(buf, 1, (size_t)n, stdout) != (size_t)n) {
            io_fail(x, "standard output", errno);
            return;
        }
        off += (uint64_t)n;
    }
}

/* A --device output: a regular file that is none of the inputs, or "-".
 * Returns its descriptor or -1 (reported). */
static int open_out(extract_ctx *x, const char *path, const char *opt)
{
    if (is_stdout_path(path))
        return open_stdout_spool(x);
    /* Truncating an input would pull its pages from under tool_run's
     * mapping. */
    struct stat os, is;
    for (size_t i = 0; i < x->nfiles && stat(path, &os) == 0; i++)
        if (stat(x->files[i], &is) == 0 && is.st_dev == os.st_dev &&
            is.st_ino == os.st_ino) {
            fprintf(stderr, "%s: %s: %s names an input file\n", prog, path,
                    opt);
            x->failed_io = 1;
            return -1;
        }
    /* read too: --salvage moves bytes that came after a lost stretch */
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0666);
    if (fd < 0) {
        io_fail(x, path, errno);
        return -1;
    }
    /* Images are placed with pwrite: a pipe cannot take that. */
    struct stat st;
    if (fstat(fd, &st) == 0 && !S_ISREG(st.st_mode)) {
        fprintf(stderr,
                "%s: %s: %s must be a regular file (or - for standard "
                "output)\n",
                prog, path, opt);
        close(fd);
        x->failed_io = 1;
        return -1;
    }
    return fd;
}

static int open_outputs(extract_ctx *x)
{
    if (x->ram_dir) {
        if (mkdir(x->ram_dir, 0777) < 0 && errno != EEXIST) {
            io_fail(x, x->ram_dir, errno);
            return -1;
        }
        x->dirfd = open(x->ram_dir, O_RDONLY | O_DIRECTORY);
        if (x->dirfd < 0) {
            io_fail(x, x->ram_dir, errno);
            return -1;
        }
        if (!(x->page = malloc(MAX_PAGE_SIZE)) ||
            !(x->ew = calloc(x->nfiles, sizeof *x->ew))) {
            io_fail(x, "page buffer", ENOMEM);
            return -1;
        }
        size_t batch = BATCH_TOTAL / x->nfiles;
        if (batch > BATCH_MAX)
            batch = BATCH_MAX;
        if (batch < BATCH_MIN)
            batch = BATCH_MIN;
        for (size_t i = 0; i < x->nfiles; i++)
            ew_init(&x->ew[i], batch);
    }
    if (x->dev_idstr) {
        if ((x->out_fd = open_out(x, x->out_path, "--out")) < 0)
            return -1;
        if (x->config_path &&
            (x->config_fd = open_out(x, x->config_path, "--config")) < 0)
            return -1;
    }
    return 0;
}

/* The -v lines: on standard output, unless an output goes there. */
static void report(extract_ctx *x)
{
    FILE *o = x->stdout_fd >= 0 ? stderr : stdout;
    char path[4096];
    for (size_t i = 0; i < x->nblocks; i++) {
        ram_block *b = &x->blocks[i];
        block_path(x, b, path, sizeof path);
        fprintf(o, "%s: block %s, %" PRIu64 " bytes, %" PRIu64 " pages, %" PRIu64
               " zero pages, %" PRIu64 " xbzrle pages, %" PRIu64
               " superseded%s",
               path, b->name, b->used_length, b->pages, b->zero_pages,
               b->xbzrle_pages, b->superseded, b->discarded ? ", " : "\n");
        if (b->discarded)
            fprintf(o, "%" PRIu64 " discarded\n", b->discarded);
    }
    if (x->dev_idstr)
        fprintf(o, "%s: device %s, %" PRIu64 " bytes%s%s\n", x->out_path,
               x->dev_idstr, x->dev_bytes, x->phase ? ", phase " : "",
               x->phase ? ms_phase_name(x->phase) : "");
    if (x->config_path)
        fprintf(o, "%s: device %s config, %" PRIu64 " bytes\n",
                x->config_path,
               x->dev_idstr, x->config_bytes);
}

static int close_outputs(extract_ctx *x)
{
    ram_flush(x);
    for (size_t i = 0; i < x->nblocks; i++)
        if (x->blocks[i].fd >= 0 && close(x->blocks[i].fd) < 0)
            io_fail(x, x->blocks[i].rel, errno);
    if (x->dirfd >= 0)
        close(x->dirfd);
    if (x->stdout_fd >= 0 && !x->failed_io)
        copy_to_stdout(x, x->stdout_fd);
    if (x->out_fd >= 0 && close(x->out_fd) < 0)
        io_fail(x, x->out_path, errno);
    if (x->config_fd >= 0 && close(x->config_fd) < 0)
        io_fail(x, x->config_path, errno);
    if (x->spool)
        fclose(x->spool);
    return x->failed_io ? -1 : 0;
}

/* One of extract's own options (tool_option_fn). */
static int extract_option(void *ctx, int c)
{
    extract_ctx *x = ctx;
    switch (c) {
    case 'r':
        x->ram_dir = optarg;
        break;
    case 'd':
        x->dev_idstr = optarg;
        break;
    case 'o':
        x->out_path = optarg;
        break;
    case 'c':
        x->config_path = optarg;
        break;
    case 'p':
        x->phase_given = 1;
        if (parse_phase(optarg, &x->phase) < 0) {
            fprintf(stderr,
                    "%s: unknown --phase %s (initial, middle, "
                    "final)\n",
                    prog, optarg);
            return TOOL_USAGE;
        }
        break;
    case 'v':
        x->verbose = 1;
        break;
    case 'S':
        x->salvage = 1;
        break;
    }
    return TOOL_GO_ON;
}

/* What is wrong with the options given together, or NULL. */
static const char *misused(const extract_ctx *x, int nfiles)
{
    const char *bad = NULL;
    if (!x->ram_dir && !x->dev_idstr)
        bad = "give --ram DIR and/or --device IDSTR";
    else if (x->dev_idstr && !x->out_path)
        bad = "--device needs --out FILE";
    else if (!x->dev_idstr &&
             (x->out_path || x->config_path || x->phase_given))
        bad = "--out, --config and --phase go with --device";
    else if (is_stdout_path(x->out_path) && is_stdout_path(x->config_path))
        bad = "--out and --config cannot both be - (standard output)";
    else if (nfiles <= 0)
        bad = "no input files";
    return bad;
}

/* Nothing to extract in a valid migration: the option named something
 * that is not there (the --device outputs are removed again). */
static int nothing_found(extract_ctx *x)
{
    if (x->ram_dir && x->nblocks == 0) {
        fprintf(stderr, "%s: no QEMU RAM blocks in the input\n", prog);
        return 1;
    }
    if (x->dev_idstr && !x->dev_found) {
        fprintf(stderr, "%s: no device \"%s\" in the input\n", prog,
                x->dev_idstr);
        if (!is_stdout_path(x->out_path))
            unlink(x->out_path);
        if (x->config_path && !is_stdout_path(x->config_path))
            unlink(x->config_path);
        return 1;
    }
    return 0;
}

/* Everything the context allocated (outputs are closed already). */
static void free_ctx(extract_ctx *x)
{
    for (size_t i = 0; i < x->nblocks; i++) {
        free(x->blocks[i].rank);
        free(x->blocks[i].xbz);
        free(x->blocks[i].disc);
    }
    free(x->blocks);
    free(x->images);
    free(x->zr);
    free(x->zpk);
    free(x->pkt_at);
    free(x->ext);
    free(x->page);
    for (size_t i = 0; x->ew && i < x->nfiles; i++)
        ew_free(&x->ew[i]);
    free(x->ew);
    free(x->format);
    free(x->qemu_sec);
    free(x->qemu_has_sec);
    free(x->said);
}

int main(int argc, char **argv)
{
    static const struct option own[] = {{"ram", required_argument, 0, 'r'},
                                        {"device", required_argument, 0, 'd'},
                                        {"out", required_argument, 0, 'o'},
                                        {"config", required_argument, 0, 'c'},
                                        {"phase", required_argument, 0, 'p'},
                                        {"verbose", no_argument, 0, 'v'},
                                        {"salvage", no_argument, 0, 'S'},
                                        {0, 0, 0, 0}};
    extract_ctx x = {
        .dirfd = -1, .out_fd = -1, .config_fd = -1, .stdout_fd = -1};
    ms_options opt;
    ms_options_init(&opt);
    opt.input_stable = 1;
    opt.verify_checks = 1; /* extract only what verifies */
    opt.data_only = 1;  /* image bytes, not records: no CHUNK events */
    int parsed = tool_parse_options(prog, argc, argv, "o:vhV", own, &opt,
                                    extract_option, usage, &x, NULL, NULL);
    if (parsed != TOOL_GO_ON)
        return parsed;
    opt.salvage = x.salvage;
    const char *bad = misused(&x, argc - optind);
    if (bad) {
        fprintf(stderr, "%s: %s\nTry '%s --help'.\n", prog, bad, prog);
        return TOOL_USAGE;
    }
    x.files = argv + optind;
    x.nfiles = (size_t)(argc - optind);
    if (tool_expand_inputs(prog, &x.files, &x.nfiles) < 0) /* archives */
        return TOOL_USAGE;
    x.format = calloc(x.nfiles, sizeof *x.format);
    x.qemu_sec = calloc(x.nfiles, sizeof *x.qemu_sec);
    x.qemu_has_sec = calloc(x.nfiles, sizeof *x.qemu_has_sec);
    x.said = calloc(x.nfiles, sizeof *x.said);
    tool_held_init(&x.held, stderr);
    int rc = TOOL_USAGE;
    if (!x.format || !x.qemu_sec || !x.qemu_has_sec || !x.said)
        fprintf(stderr, "%s: out of memory\n", prog);
    else if (open_outputs(&x) == 0) {
        /* Channel files decode on one thread each: which version of a
         * page wins is decided by its (epoch, packet) rank, not by the
         * order events arrive in, so interleaving does not matter. */
        tool_run_parallel(1);
        rc = tool_run(prog, x.files, x.nfiles, &opt, on_event, on_problem, &x);
    }
    tool_held_flush(&x.held); /* problems found while reading */
    if (x.dev_idstr && !x.failed_io && rc != TOOL_USAGE) {
        v1_finish(&x);
        tool_held_flush(&x.held); /* before the zero-filled ranges */
        salvage_finish(&x);
    }
    if (close_outputs(&x) < 0)
        rc = TOOL_USAGE;
    if (rc == TOOL_OK && x.problems)
        rc = TOOL_INVALID;
    if (rc == TOOL_OK && nothing_found(&x))
        rc = TOOL_USAGE;
    if (rc != TOOL_USAGE && x.verbose)
        report(&x);
    if (fflush(stdout) != 0) {
        fprintf(stderr, "%s: write error on standard output\n", prog);
        rc = TOOL_USAGE;
    }
    tool_held_free(&x.held);
    free_ctx(&x);
    return tool_exit_status(rc);
}
