/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* migstream-replay: the parts of the tool and what they share.
 *
 *   replay_input.c   the capture: a list of byte sources (a capture
 *                    directory, or files named on the command line)
 *   replay_send.c    the destination: connections in QEMU's order, one
 *                    sender thread per connection, the shared pacing
 *   replay_rp.c      the return path: read on the main connection while
 *                    sending, decoded with the library, printed
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

/* ---- the return path ----
 * What the destination said on the main connection, filled by the reader
 * thread (replay_rp_start) and read after it is joined. */
typedef struct replay_rp {
    int fd;    /* the main connection (read side) */
    FILE *out; /* one line per message */
    const char *prog;
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

#endif
