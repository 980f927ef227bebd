/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* migstream-record's parts: socket addresses (record_net.c), the spool
 * that writes one direction to disk behind the forwarding
 * (record_spool.c); the forwarding and the manifest are in record.c. */
#ifndef MS_RECORD_H
#define MS_RECORD_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* ---- addresses: tcp:HOST:PORT, unix:PATH, or HOST:PORT ------------------ */
typedef struct rec_addr {
    struct sockaddr_storage sa;
    socklen_t salen;
    char text[300]; /* canonical: "tcp:HOST:PORT" or "unix:PATH" */
} rec_addr;

/* Parse `spec`; 0, or -1 with a message in err. */
int rec_addr_parse(const char *spec, rec_addr *out, char *err, size_t errlen);
/* A listening socket on `a`; `a->text` then names the port really bound
 * (port 0: one the kernel chose).  -1 with a message in err. */
int rec_listen(rec_addr *a, char *err, size_t errlen);
/* A connected socket to `a`; -1 with a message in err. */
int rec_connect(const rec_addr *a, char *err, size_t errlen);
/* TCP: no Nagle delay (each block is sent as soon as it arrived, so
 * coalescing would only add latency to small messages like the return
 * path's).  Nothing on a unix socket. */
void rec_nodelay(int fd);
/* The path of a unix address, NULL for tcp. */
const char *rec_addr_unix_path(const rec_addr *a);

/* ---- spool: bytes handed over by a forwarder, written by a thread ------- */
/* The forwarder appends after it forwarded; a writer thread of its own
 * writes them to the file, so a slow disk delays forwarding only once
 * REC_SPOOL_MAX bytes wait (then the forwarder waits for the disk rather
 * than lose bytes of the recording). */
#define REC_SPOOL_MAX ((size_t)64 << 20)
typedef struct rec_chunk rec_chunk;
typedef struct rec_spool {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    rec_chunk *head, *tail;
    size_t queued;    /* bytes appended, not yet written */
    int closed;       /* no more appends */
    int fd;           /* the file */
    const char *path; /* for messages */
    int failed;       /* a write failed: later bytes are dropped */
    char error[200];
    uint64_t waits; /* times the forwarder waited for the disk */
    pthread_t writer;
} rec_spool;

/* Start the writer thread for the open file `fd`.  0 or -1. */
int rec_spool_start(rec_spool *s, int fd, const char *path);
/* Queue bytes (copied); waits while REC_SPOOL_MAX bytes are queued. */
void rec_spool_append(rec_spool *s, const void *buf, size_t len);
/* No more bytes: wait until all are written, stop the writer, close the
 * file.  0, or -1 when a write failed (s->error says why). */
int rec_spool_finish(rec_spool *s);

#endif
