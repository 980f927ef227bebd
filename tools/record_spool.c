/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* migstream-record: one direction's bytes, written to its file by a
 * thread of their own so the forwarding never waits on the disk (until
 * REC_SPOOL_MAX bytes are queued).
 *
 *   forwarder: recv -> send to the peer -> rec_spool_append (copy, queue)
 *   writer:    take the oldest chunk -> write(2) -> free
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "record.h"

/* Appends go into the newest chunk while it has room; 1 MiB makes few
 * writes and few allocations however small the reads are. */
#define CHUNK_CAP ((size_t)1 << 20)

struct rec_chunk {
    rec_chunk *next;
    size_t len;
    unsigned char data[CHUNK_CAP];
};

/* write(2) all of it; 0, or -1 with the message in s->error. */
static int write_all(rec_spool *s, const unsigned char *p, size_t len)
{
    while (len) {
        ssize_t n = write(s->fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            snprintf(s->error, sizeof s->error, "%s: %s", s->path,
                     n < 0 ? strerror(errno) : "nothing written");
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static void *writer_main(void *arg)
{
    rec_spool *s = arg;
    pthread_mutex_lock(&s->lock);
    for (;;) {
        while (!s->head && !s->closed)
            pthread_cond_wait(&s->changed, &s->lock);
        rec_chunk *c = s->head;
        if (!c)
            break; /* closed and drained */
        /* Take the chunk out of the queue, so appends go to a new one. */
        s->head = c->next;
        if (!s->head)
            s->tail = NULL;
        int failed = s->failed;
        pthread_mutex_unlock(&s->lock);
        int rc = failed ? 0 : write_all(s, c->data, c->len);
        pthread_mutex_lock(&s->lock);
        if (rc != 0)
            s->failed = 1; /* keep draining: the forwarding goes on */
        s->queued -= c->len;
        free(c);
        pthread_cond_broadcast(&s->changed);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

int rec_spool_start(rec_spool *s, int fd, const char *path)
{
    memset(s, 0, sizeof *s);
    s->fd = fd;
    s->path = path;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->changed, NULL);
    if (pthread_create(&s->writer, NULL, writer_main, s) != 0) {
        pthread_cond_destroy(&s->changed);
        pthread_mutex_destroy(&s->lock);
        return -1;
    }
    return 0;
}

void rec_spool_append(rec_spool *s, const void *buf, size_t len)
{
    const unsigned char *p = buf;
    pthread_mutex_lock(&s->lock);
    if (s->queued >= REC_SPOOL_MAX) {
        s->waits++;
        while (s->queued >= REC_SPOOL_MAX)
            pthread_cond_wait(&s->changed, &s->lock);
    }
    while (len) {
        rec_chunk *t = s->tail;
        if (!t || t->len == CHUNK_CAP) {
            t = malloc(sizeof *t);
            if (!t) {
                /* Out of memory: the recording loses these bytes, the
                 * migration does not (they were forwarded already). */
                if (!s->failed)
                    snprintf(s->error, sizeof s->error, "%s: out of memory",
                             s->path);
                s->failed = 1;
                break;
            }
            t->next = NULL;
            t->len = 0;
            if (s->tail)
                s->tail->next = t;
            else
                s->head = t;
            s->tail = t;
        }
        size_t n = CHUNK_CAP - t->len < len ? CHUNK_CAP - t->len : len;
        memcpy(t->data + t->len, p, n);
        t->len += n;
        s->queued += n;
        p += n;
        len -= n;
    }
    pthread_cond_broadcast(&s->changed);
    pthread_mutex_unlock(&s->lock);
}

int rec_spool_finish(rec_spool *s)
{
    pthread_mutex_lock(&s->lock);
    s->closed = 1;
    pthread_cond_broadcast(&s->changed);
    pthread_mutex_unlock(&s->lock);
    pthread_join(s->writer, NULL);
    if (close(s->fd) != 0 && !s->failed) {
        snprintf(s->error, sizeof s->error, "%s: %s", s->path, strerror(errno));
        s->failed = 1;
    }
    pthread_cond_destroy(&s->changed);
    pthread_mutex_destroy(&s->lock);
    return s->failed ? -1 : 0;
}
