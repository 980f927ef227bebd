/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* migstream-replay: the parts of the tool and what they share.
 *
 *   replay_input.c   the capture: a list of byte sources (a capture
 *                    directory, or files named on the command line)
 *   replay_send.c    the destination: connections in QEMU's order, one
 *                    sender thread per connection, the shared pacing
 *   replay_rp.c      the return path: read on the main connection while
 *                    sending, decoded with the library, printed
 *   replay_pages.c   postcopy page requests answered: the requested
 *                    page's record of the capture sent ahead
 *   replay.c         options, the run, the exit status
 */
#ifndef MS_REPLAY_H
#define MS_REPLAY_H

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "migstream.h"

/* ---- input: byte sources ----
 * One source per connection of the capture, in capture order (the main
 * channel first).  A source is anything that can hand its bytes from an
 * offset: today a file; an archive member later (read_at over the
 * archive's record of that stream). */
typedef struct replay_source {
    char label[512]; /* named in messages: the file's path */
    ms_format kind;  /* qemu-main, qemu-multifd, qemu-preempt, ... */
    uint64_t size;   /* bytes it holds */
    /* Up to n bytes at `offset` into buf: bytes read, 0 at the end, -1 on
     * an error (errno set). */
    ssize_t (*read_at)(void *ctx, uint64_t offset, void *buf, size_t n);
    void (*close)(void *ctx);
    void *ctx;
} replay_source;

typedef struct replay_input {
    replay_source *src; /* src[0] is the main channel */
    size_t n;
} replay_input;

/* A directory (migstream-record's connN.s2d + manifest.json, or the
 * bundled connN.bin / main.mig) or a list of files (the first the main
 * channel).  Returns 0, or -1 after printing why on stderr. */
int replay_input_open(const char *prog, char *const *paths, size_t npaths,
                      replay_input *in);
void replay_input_close(replay_input *in);
/* `path` as a migstream archive (replay_archive.c): 1 with its source ->
 * destination streams added to `in` in connection order, 0 when `path` is
 * no archive, -1 after printing why (a damaged archive is refused). */
int replay_input_archive(const char *prog, const char *path, replay_input *in);

/* ---- pacing: one token bucket for every connection ---- */
typedef struct replay_pace {
    pthread_mutex_t lock;
    uint64_t rate;     /* bytes per second; 0: unpaced */
    uint64_t reserved; /* bytes handed out since start */
    double start;      /* monotonic seconds */
} replay_pace;

void replay_pace_init(replay_pace *p, uint64_t rate);
/* Wait until `n` more bytes may go (the total stays at `rate`). */
void replay_pace_take(replay_pace *p, size_t n);
double replay_now(void);

/* ---- postcopy page answers (replay_pages.c) ----
 * The RAM page records of the main stream's postcopy part (after its
 * PACKAGED command), so a page the destination asks for can be sent
 * ahead of its turn, and not again in it. */
typedef struct replay_page {
    uint64_t off;    /* the record's offset in the main stream file */
    uint64_t len;    /* its bytes */
    uint64_t page;   /* page offset in the block */
    uint32_t block;  /* index in replay_pages.blocks */
    uint8_t named;   /* its header names the block (no RAM_CONTINUE) */
    uint8_t movable; /* a PAGE or ZERO record (no delta, no compression) */
    uint8_t sent;    /* gone out (main sender only) */
} replay_page;

typedef struct replay_page_key {
    uint32_t block, idx;
    uint64_t page;
} replay_page_key;

typedef struct replay_pages {
    replay_page *v; /* in stream order */
    size_t n, cap;
    char **blocks; /* block names */
    size_t nblocks;
    replay_page_key *order; /* v sorted by block and page, for requests */
    pthread_mutex_t lock;   /* guards the queue */
    uint32_t *queue;        /* requested records (indexes into v) */
    size_t qhead, qlen, qcap;
    uint64_t answered; /* records sent ahead (main sender only) */
} replay_pages;

/* Decode the main stream (src) and note its postcopy page records; a
 * stream that does not decode has none (said on stderr).  Returns 0. */
int replay_pages_scan(const char *prog, const replay_source *src,
                      replay_pages *pg);
void replay_pages_free(replay_pages *pg);
/* Queue the records of the pages of `block` in [start, start+len); 1 when
 * the capture has any of them in its postcopy part. */
int replay_pages_request(replay_pages *pg, const char *block, uint64_t start,
                         uint64_t len);
/* Send the main stream with the queued records moved forward (one line on
 * `log` per record sent ahead).  As replay_copy; *sent: the capture
 * offset reached. */
int replay_send_main(const replay_source *src, int fd, replay_pace *pace,
                     replay_pages *pg, FILE *log, uint64_t *sent);

/* ---- the return path ----
 * What the destination said on the main connection, filled by the reader
 * thread (replay_rp_start) and read after it is joined. */
typedef struct replay_rp {
    int fd;    /* the main connection (read side) */
    FILE *out; /* one line per message */
    const char *prog;
    replay_pages *pages; /* answers page requests; NULL: none */
    pthread_t thread;
    /* results */
    int shut_seen; /* a SHUT came */
    uint32_t shut_value;
    int closed;        /* the destination closed the connection (EOF) */
    int reset;         /* ... with a reset (ECONNRESET) */
    int decode_failed; /* bytes that are not a valid return path */
    uint64_t bytes;    /* bytes received */
    uint32_t messages;
    uint32_t page_requests;
} replay_rp;

int replay_rp_start(replay_rp *rp);
void replay_rp_join(replay_rp *rp);

/* ---- sending ---- */
typedef struct replay_send_result {
    int failed;        /* a send failed (below), or a connect did */
    size_t failed_src; /* which source */
    uint64_t sent;     /* bytes of that source that went out */
    int err;           /* errno of the failure */
} replay_send_result;

/* Connect to `to` ("tcp:HOST:PORT" or "unix:PATH") once per source, in
 * order, and send every source on its own thread; the main connection's
 * read side goes to the return-path reader.  `wait_s`: seconds to wait
 * for the destination to close the main connection after the last byte
 * (0: no limit).  Returns the exit status (0, 1, 2). */
int replay_to_socket(const char *prog, const char *to, replay_input *in,
                     replay_pace *pace, double wait_s, FILE *msgs);
/* --to exec: the main stream on standard output.  Returns the exit status. */
int replay_to_stdout(const char *prog, replay_input *in, replay_pace *pace);

/* Send every byte of one source on fd (paced).  0, or -1 with errno and
 * *sent = bytes that went out; a source read error is -2. */
int replay_copy(const replay_source *src, int fd, replay_pace *pace,
                uint64_t *sent);
/* The same for the bytes [from, to) of the source; *done: bytes sent. */
int replay_copy_range(const replay_source *src, int fd, replay_pace *pace,
                      uint64_t from, uint64_t to, uint64_t *done);

#endif
