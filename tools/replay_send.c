/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* migstream-replay's sending side.
 *
 *   connect conn0 (main) --> connect conn1 --> ... connN   in capture order:
 *     each connect() returns once the destination's kernel queued it, and
 *     QEMU accepts from that queue in order, so the first accepted is the
 *     main channel (QEMU 7.2 takes the first connection as main)
 *   one sender thread per connection, all at once: QEMU's main thread
 *     waits for every multifd channel before it reads on, so sending one
 *     connection after another would deadlock
 *   the return-path thread reads the main connection meanwhile
 *   after the last byte: shut down the write sides, wait for the
 *     destination to close the main connection (or say SHUT)
 */
#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "replay.h"

/* Bytes read from a source and written at once. */
#define COPY_CHUNK (64 * 1024)

/* ---- pacing ---- */
double replay_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void replay_pace_init(replay_pace *p, uint64_t rate)
{
    pthread_mutex_init(&p->lock, NULL);
    p->rate = rate;
    p->reserved = 0;
    p->start = replay_now();
}

/* Each caller reserves its bytes on the one shared budget and waits until
 * the time the total reaches them at `rate`: the connections together
 * never go faster than the rate, whichever of them sends. */
void replay_pace_take(replay_pace *p, size_t n)
{
    if (!p || p->rate == 0)
        return;
    pthread_mutex_lock(&p->lock);
    p->reserved += n;
    double due = p->start + (double)p->reserved / (double)p->rate;
    pthread_mutex_unlock(&p->lock);
    double wait = due - replay_now();
    if (wait > 0) {
        struct timespec ts = {(time_t)wait,
                              (long)((wait - (double)(time_t)wait) * 1e9)};
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
            ;
    }
}

/* ---- copying one source ---- */
static int write_all(int fd, const uint8_t *p, size_t n, uint64_t *sent)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
        *sent += (uint64_t)w;
    }
    return 0;
}

int replay_copy_range(const replay_source *src, int fd, replay_pace *pace,
                      uint64_t from, uint64_t to, uint64_t *done)
{
    *done = 0;
    if (from >= to)
        return 0;
    uint8_t *buf = malloc(COPY_CHUNK);
    if (!buf) {
        errno = ENOMEM;
        return -2;
    }
    int rc = 0;
    while (from + *done < to) {
        /* a small rate takes small steps, so pacing stays smooth */
        size_t want = COPY_CHUNK;
        if (pace && pace->rate && pace->rate / 16 < want)
            want = pace->rate / 16 ? (size_t)(pace->rate / 16) : 1;
        if (want > to - from - *done)
            want = (size_t)(to - from - *done);
        ssize_t got = src->read_at(src->ctx, from + *done, buf, want);
        if (got <= 0) {
            if (got == 0)
                errno = EIO; /* the file shrank under us */
            rc = -2;
            break;
        }
        replay_pace_take(pace, (size_t)got);
        if (write_all(fd, buf, (size_t)got, done) < 0) {
            rc = -1;
            break;
        }
    }
    int saved = errno;
    free(buf);
    errno = saved;
    return rc;
}

int replay_copy(const replay_source *src, int fd, replay_pace *pace,
                uint64_t *sent)
{
    return replay_copy_range(src, fd, pace, 0, src->size, sent);
}

/* ---- connecting ---- */
/* "tcp:HOST:PORT" (HOST may be [v6]) or "unix:PATH": a connected socket, or
 * -1 with a message on stderr. */
static int dial(const char *prog, const char *to)
{
    if (strncmp(to, "unix:", 5) == 0) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        if (strlen(to + 5) >= sizeof sa.sun_path) {
            fprintf(stderr, "%s: %s: socket path too long\n", prog, to);
            return -1;
        }
        strcpy(sa.sun_path, to + 5);
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0)
            return fd;
        fprintf(stderr, "%s: connect %s: %s\n", prog, to, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    char host[256];
    const char *hp = to + 4, *colon = strrchr(hp, ':');
    if (!colon || (size_t)(colon - hp) >= sizeof host || colon == hp) {
        fprintf(stderr, "%s: %s: expected tcp:HOST:PORT\n", prog, to);
        return -1;
    }
    memcpy(host, hp, (size_t)(colon - hp));
    host[colon - hp] = 0;
    if (host[0] == '[' && host[strlen(host) - 1] == ']') { /* [::1] */
        memmove(host, host + 1, strlen(host));
        host[strlen(host) - 1] = 0;
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res, *ai;
    int gai = getaddrinfo(host, colon + 1, &hints, &res);
    if (gai) {
        fprintf(stderr, "%s: %s: %s\n", prog, to, gai_strerror(gai));
        return -1;
    }
    int fd = -1, err = 0;
    for (ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
                    ai->ai_protocol);
        if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
            err = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0)
        fprintf(stderr, "%s: connect %s: %s\n", prog, to, strerror(err));
    return fd;
}

/* ---- one thread per connection ---- */
typedef struct sender {
    pthread_t thread;
    const replay_source *src;
    int fd;
    replay_pace *pace;
    double wait_s;       /* --wait */
    const int *reset;    /* main connection: the reader saw a reset */
    replay_pages *pages; /* main connection: postcopy answers, or NULL */
    FILE *log;           /* where answers are said */
    int rc;              /* replay_copy's, or -1 when the drain failed */
    int err;             /* its errno */
    int undrained;       /* bytes still queued after --wait seconds */
    uint64_t sent;       /* bytes the destination took (as far as known) */
} sender;

/* After the last byte: wait until the destination took every byte (the
 * socket's send queue is empty: SIOCOUTQ counts bytes not acknowledged on
 * TCP, not read on a unix socket) or reset the connection.  A reset drops
 * the queue, so the bytes queued at the last look were not taken: `sent`
 * goes back by them, to the offset the destination stopped at (TCP: at
 * most what it acknowledged). */
static void sender_drain(sender *s)
{
    double until = replay_now() + s->wait_s;
    int last_queued = 0;
    for (;;) {
        int queued = 0, err = 0;
        socklen_t len = sizeof err;
        if (ioctl(s->fd, SIOCOUTQ, &queued) < 0)
            return; /* cannot tell: the kernel took the bytes */
        getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (!err && s->reset && __atomic_load_n(s->reset, __ATOMIC_ACQUIRE))
            err = ECONNRESET;
        if (err) {
            s->rc = -1;
            s->err = err;
            s->sent -= (uint64_t)last_queued < s->sent ? (uint64_t)last_queued
                                                       : s->sent;
            return;
        }
        if (queued == 0)
            return;
        last_queued = queued;
        if (s->wait_s > 0 && replay_now() >= until) {
            s->undrained = 1;
            return;
        }
        struct timespec tick = {0, 5 * 1000 * 1000};
        nanosleep(&tick, NULL);
    }
}

static void *sender_main(void *arg)
{
    sender *s = arg;
    s->rc = s->pages ? replay_send_main(s->src, s->fd, s->pace, s->pages,
                                        s->log, &s->sent)
                     : replay_copy(s->src, s->fd, s->pace, &s->sent);
    s->err = errno;
    /* the destination sees the end of this connection's stream; the read
     * side stays open for the return path */
    if (s->rc == 0) {
        shutdown(s->fd, SHUT_WR);
        sender_drain(s);
    }
    return NULL;
}

/* Wait for the destination to close the main connection (the reader sees
 * EOF or a reset) or to say SHUT, for up to wait_s seconds (0: no limit);
 * 1 when it did. */
static int wait_for_close(replay_rp *rp, double wait_s)
{
    double until = replay_now() + wait_s;
    for (;;) {
        if (__atomic_load_n(&rp->closed, __ATOMIC_ACQUIRE) ||
            __atomic_load_n(&rp->reset, __ATOMIC_ACQUIRE) ||
            __atomic_load_n(&rp->shut_seen, __ATOMIC_ACQUIRE))
            return 1;
        if (wait_s > 0 && replay_now() >= until)
            return 0;
        struct timespec tick = {0, 20 * 1000 * 1000};
        nanosleep(&tick, NULL);
    }
}

/* The verdict: see the EXIT STATUS of man/migstream-replay.1. */
static int verdict(const char *prog, replay_input *in, sender *snd,
                   replay_rp *rp, int waited)
{
    for (size_t i = 0; i < in->n; i++) {
        if (snd[i].rc == -2) {
            fprintf(stderr, "%s: %s:%llu: read failed: %s\n", prog,
                    in->src[i].label, (unsigned long long)snd[i].sent,
                    strerror(snd[i].err));
            return 2;
        }
    }
    int status = 0;
    for (size_t i = 0; i < in->n; i++) {
        if (snd[i].rc == -1) {
            fprintf(stderr,
                    "%s: %s:%llu: send failed: %s (the destination took "
                    "%llu of %llu bytes)\n",
                    prog, in->src[i].label, (unsigned long long)snd[i].sent,
                    strerror(snd[i].err), (unsigned long long)snd[i].sent,
                    (unsigned long long)in->src[i].size);
            status = 1;
        }
    }
    for (size_t i = 0; i < in->n && !status; i++) {
        if (snd[i].undrained) {
            fprintf(stderr,
                    "%s: %s:%llu: the destination did not take the rest "
                    "within --wait\n",
                    prog, in->src[i].label, (unsigned long long)snd[i].sent);
            status = 1;
        }
    }
    if (rp->shut_seen) {
        fprintf(stderr, "%s: destination said SHUT %u (%s)\n", prog,
                rp->shut_value, rp->shut_value ? "failed" : "success");
        return rp->shut_value ? 1 : status;
    }
    if (status)
        return status;
    if (rp->decode_failed)
        return 1;
    if (!waited) {
        fprintf(stderr,
                "%s: all bytes sent, but the destination did not close the "
                "main connection in time\n",
                prog);
        return 1;
    }
    if (rp->reset) {
        fprintf(stderr,
                "%s: all bytes sent, but the destination reset the main "
                "connection (it did not read everything)\n",
                prog);
        return 1;
    }
    return 0;
}

int replay_to_socket(const char *prog, const char *to, replay_input *in,
                     replay_pace *pace, double wait_s, FILE *msgs)
{
    sender *snd = calloc(in->n, sizeof *snd);
    if (!snd)
        return 2;
    int status = 2;
    size_t connected = 0, started = 0;
    /* stage 0: the main stream's postcopy page records, for answers */
    replay_pages pages;
    replay_pages_scan(prog, &in->src[0], &pages);
    /* stage 1: connections in capture order */
    for (; connected < in->n; connected++) {
        snd[connected].fd = dial(prog, to);
        if (snd[connected].fd < 0)
            goto out;
    }
    /* stage 2: the return path on the main connection */
    replay_rp rp = {.fd = snd[0].fd,
                    .out = msgs,
                    .prog = prog,
                    .pages = pages.n ? &pages : NULL};
    if (replay_rp_start(&rp) != 0)
        goto out;
    /* stage 3: every connection at once */
    for (; started < in->n; started++) {
        snd[started].src = &in->src[started];
        snd[started].pace = pace;
        snd[started].wait_s = wait_s;
        snd[started].reset = started == 0 ? &rp.reset : NULL;
        snd[started].pages = started == 0 ? rp.pages : NULL;
        snd[started].log = msgs;
        if (pthread_create(&snd[started].thread, NULL, sender_main,
                           &snd[started]) != 0)
            break;
    }
    for (size_t i = 0; i < started; i++)
        pthread_join(snd[i].thread, NULL);
    /* stage 4: the destination's answer, then the verdict */
    int failed_send = 0;
    for (size_t i = 0; i < started; i++)
        failed_send |= snd[i].rc != 0 || snd[i].undrained;
    int waited = failed_send ? 1 : wait_for_close(&rp, wait_s);
    /* the reader stops once the connection is gone */
    shutdown(snd[0].fd, SHUT_RDWR);
    replay_rp_join(&rp);
    status = started < in->n ? 2 : verdict(prog, in, snd, &rp, waited);
out:
    for (size_t i = 0; i < connected; i++)
        close(snd[i].fd);
    free(snd);
    replay_pages_free(&pages);
    return status;
}

int replay_to_stdout(const char *prog, replay_input *in, replay_pace *pace)
{
    if (in->n > 1) {
        fprintf(stderr,
                "%s: --to exec carries one stream, this capture has %zu "
                "connections (multifd or preempt channels need --to tcp: or "
                "unix:)\n",
                prog, in->n);
        return 2;
    }
    uint64_t sent = 0;
    int rc = replay_copy(&in->src[0], STDOUT_FILENO, pace, &sent);
    if (rc == 0)
        return 0;
    fprintf(stderr, "%s: %s:%llu: %s failed: %s\n", prog, in->src[0].label,
            (unsigned long long)sent, rc == -2 ? "read" : "write",
            strerror(errno));
    return rc == -2 ? 2 : 1;
}
