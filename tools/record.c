/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* migstream-record: a recording proxy between a migration source and its
 * destination.  Every connection the source opens is accepted, connected
 * to the destination (in accept order, so the destination sees the
 * source's order), forwarded both ways unchanged, and each direction is
 * saved: DIR/connN.s2d, DIR/connN.d2s, then DIR/manifest.json
 * (spec/capture.md).
 *
 *   source --accept--> [conn thread: s2d forwarder] --connect--> destination
 *                      [d2s forwarder thread       ]
 *   each forwarder: recv -> send to the other side -> spool (record_spool.c)
 *                   -> its writer thread -> connN.s2d / connN.d2s
 *
 * A thread per direction (not one poll loop): each direction blocks only
 * on its own sockets, a half-close is one shutdown(SHUT_WR) where the
 * read ends, and the disk is written by other threads again, so nothing
 * but the copy stands between a recv and its send. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "record.h"
#include "tool_common.h"

static const char *prog = "migstream-record";

/* recv size: what one read may take before it is forwarded */
#define FORWARD_BUF ((size_t)256 << 10)
/* bytes of each direction kept to classify the connection (ms_detect
 * looks at up to 16) */
#define HEAD_KEEP 64

typedef struct recorder recorder;
typedef struct connection connection;

/* One direction of one connection. */
typedef struct direction {
    const char *name;                /* "s2d", "d2s" */
    const char *from_side, *to_side; /* "source", "destination" */
    connection *conn;
    int from, to; /* sockets */
    char path[4096];
    rec_spool spool;
    int spooling; /* the writer thread runs */
    uint64_t bytes;
    int64_t first_ms, last_ms, end_ms; /* -1: not seen */
    unsigned char head[HEAD_KEEP];
    size_t headlen;
} direction;

struct connection {
    size_t index;
    recorder *rec;
    int src, dst; /* sockets; -1 once closed */
    direction s2d, d2s;
    int64_t accepted_ms, close_ms;
    pthread_t thread;
    int running;        /* the thread was started */
    int closing;        /* under recorder.lock: its sockets are being closed */
    atomic_int aborted; /* set once: a side failed, both sockets shut */
    pthread_mutex_t lock; /* error */
    char error[600];      /* "" or why the connection failed */
};

struct recorder {
    rec_addr listen, to;
    const char *dir;
    long count;    /* --count N; 0: stop on idle */
    double idle_s; /* --idle SECONDS */
    int quiet;
    struct timespec t0; /* monotonic time of the first accept */
    char started[40];   /* RFC 3339 UTC of t0 */
    int have_t0;
    connection **conns;
    size_t nconns, cap;
    pthread_mutex_t lock; /* active, last_close_ms */
    size_t active;
    int64_t last_close_ms;
    const char *stopped; /* "count", "idle", "signal" */
};

static volatile sig_atomic_t got_signal;

static void on_signal(int sig)
{
    got_signal = sig;
}

/* ---- messages and clock ---------------------------------------------------
 */

static void note(const recorder *r, const char *fmt, ...)
{
    if (r->quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", prog);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* Milliseconds since the first accept. */
static int64_t now_ms(const recorder *r)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)(t.tv_sec - r->t0.tv_sec) * 1000 +
           (t.tv_nsec - r->t0.tv_nsec) / 1000000;
}

static void start_clock(recorder *r)
{
    struct timespec wall;
    struct tm tm;
    clock_gettime(CLOCK_MONOTONIC, &r->t0);
    clock_gettime(CLOCK_REALTIME, &wall);
    gmtime_r(&wall.tv_sec, &tm);
    size_t n =
        strftime(r->started, sizeof r->started, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(r->started + n, sizeof r->started - n, ".%03ldZ",
             wall.tv_nsec / 1000000);
    r->have_t0 = 1;
}

/* ---- forwarding -----------------------------------------------------------
 */

/* The first failure of a connection: say it, keep it for the manifest,
 * and shut both sockets so each side sees the connection end (the other
 * forwarder's recv returns). */
static void abort_conn(connection *c, const char *fmt, ...)
{
    pthread_mutex_lock(&c->lock);
    int first = !c->error[0];
    if (first) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->error, sizeof c->error, fmt, ap);
        va_end(ap);
        fprintf(stderr, "%s: conn%zu: %s\n", prog, c->index, c->error);
    }
    pthread_mutex_unlock(&c->lock);
    atomic_store(&c->aborted, 1);
    shutdown(c->src, SHUT_RDWR);
    shutdown(c->dst, SHUT_RDWR);
}

/* send all of it; 0, or the errno of the failure. */
static int send_all(int fd, const unsigned char *p, size_t len)
{
    while (len) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Account for bytes received: times, count, the head kept for ms_detect. */
static void took(direction *d, const unsigned char *buf, size_t n)
{
    int64_t t = now_ms(d->conn->rec);
    if (d->first_ms < 0)
        d->first_ms = t;
    d->last_ms = t;
    if (d->headlen < HEAD_KEEP) {
        size_t k = HEAD_KEEP - d->headlen < n ? HEAD_KEEP - d->headlen : n;
        memcpy(d->head + d->headlen, buf, k);
        d->headlen += k;
    }
    d->bytes += n;
}

/* Copy one direction until its sender ends it (its end passed on with
 * shutdown(SHUT_WR): QEMU's half-close), or the connection fails. */
static void forward(direction *d)
{
    connection *c = d->conn;
    unsigned char *buf = malloc(FORWARD_BUF);
    if (!buf) {
        abort_conn(c, "%s: out of memory", d->name);
        return;
    }
    for (;;) {
        ssize_t n = recv(d->from, buf, FORWARD_BUF, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (atomic_load(&c->aborted))
            break; /* our own shutdown woke the recv */
        if (n < 0) {
            abort_conn(c, "the %s closed early: reading %s: %s", d->from_side,
                       d->name, strerror(errno));
            break;
        }
        if (n == 0) {
            d->end_ms = now_ms(c->rec);
            shutdown(d->to, SHUT_WR);
            break;
        }
        took(d, buf, (size_t)n);
        int e = send_all(d->to, buf, (size_t)n); /* forward first */
        rec_spool_append(&d->spool, buf, (size_t)n);
        if (e) {
            abort_conn(c,
                       "the %s closed early: sending %s: %s (not forwarded "
                       "from %s offset %" PRIu64 " on)",
                       d->to_side, d->name, strerror(e), d->name,
                       d->bytes - (uint64_t)n);
            break;
        }
    }
    free(buf);
}

static void *d2s_main(void *arg)
{
    forward(arg);
    return NULL;
}

/* The connection's thread: d2s on a thread of its own, s2d here; then
 * the files are finished and the sockets closed. */
static void *conn_main(void *arg)
{
    connection *c = arg;
    recorder *r = c->rec;
    pthread_t d2s;
    int d2s_running = pthread_create(&d2s, NULL, d2s_main, &c->d2s) == 0;
    if (!d2s_running)
        abort_conn(c, "cannot start a thread for d2s");
    forward(&c->s2d);
    if (d2s_running)
        pthread_join(d2s, NULL);
    direction *dirs[2] = {&c->s2d, &c->d2s};
    for (int i = 0; i < 2; i++) {
        direction *d = dirs[i];
        if (d->spool.waits)
            fprintf(stderr,
                    "%s: conn%zu: %s: forwarding waited for the disk "
                    "%" PRIu64 " times\n",
                    prog, c->index, d->name, d->spool.waits);
        if (d->spooling && rec_spool_finish(&d->spool) != 0)
            abort_conn(c, "recording %s: %s", d->name, d->spool.error);
        d->spooling = 0;
    }
    pthread_mutex_lock(&r->lock);
    c->closing = 1; /* abort_all no longer touches the sockets */
    pthread_mutex_unlock(&r->lock);
    close(c->src);
    close(c->dst);
    pthread_mutex_lock(&r->lock);
    c->close_ms = now_ms(r);
    r->last_close_ms = c->close_ms;
    r->active--;
    pthread_mutex_unlock(&r->lock);
    return NULL;
}

/* ---- accepting ------------------------------------------------------------
 */

static void init_direction(direction *d, connection *c, const char *name)
{
    int s2d = strcmp(name, "s2d") == 0;
    d->name = name;
    d->from_side = s2d ? "source" : "destination";
    d->to_side = s2d ? "destination" : "source";
    d->conn = c;
    d->from = s2d ? c->src : c->dst;
    d->to = s2d ? c->dst : c->src;
    d->first_ms = d->last_ms = d->end_ms = -1;
    snprintf(d->path, sizeof d->path, "%s/conn%zu.%s", c->rec->dir, c->index,
             name);
}

/* Create the direction's file and its writer; 0 or -1 (said). */
static int open_direction(direction *d)
{
    int fd = open(d->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        fprintf(stderr, "%s: %s: %s\n", prog, d->path, strerror(errno));
        return -1;
    }
    if (rec_spool_start(&d->spool, fd, d->path) != 0) {
        fprintf(stderr, "%s: %s: cannot start its writer\n", prog, d->path);
        close(fd);
        return -1;
    }
    d->spooling = 1;
    return 0;
}

static connection *new_connection(recorder *r, int src)
{
    if (r->nconns == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 8;
        connection **grown = realloc(r->conns, cap * sizeof *grown);
        if (!grown)
            return NULL;
        r->conns = grown;
        r->cap = cap;
    }
    connection *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->index = r->nconns;
    c->rec = r;
    c->src = src;
    c->dst = -1;
    c->close_ms = -1;
    pthread_mutex_init(&c->lock, NULL);
    r->conns[r->nconns++] = c;
    return c;
}

/* A connection the destination never got: close the source's side so the
 * source sees the failure. */
static void refuse(recorder *r, connection *c, const char *why)
{
    snprintf(c->error, sizeof c->error, "%s", why);
    fprintf(stderr, "%s: conn%zu: %s; closing the source's connection\n", prog,
            c->index, why);
    close(c->src);
    c->src = -1;
    c->close_ms = now_ms(r);
    pthread_mutex_lock(&r->lock);
    r->last_close_ms = c->close_ms;
    pthread_mutex_unlock(&r->lock);
}

/* One accepted connection: connect it to the destination (here, so the
 * destination sees the source's order), open its files, start its
 * thread.  -1 only when out of memory. */
static int take_connection(recorder *r, int src)
{
    if (!r->have_t0)
        start_clock(r);
    connection *c = new_connection(r, src);
    if (!c) {
        close(src);
        return -1;
    }
    c->accepted_ms = now_ms(r);
    char err[256], why[600];
    c->dst = rec_connect(&r->to, err, sizeof err);
    if (c->dst < 0) {
        snprintf(why, sizeof why, "cannot connect to %s: %s", r->to.text, err);
        refuse(r, c, why);
        return 0;
    }
    init_direction(&c->s2d, c, "s2d");
    init_direction(&c->d2s, c, "d2s");
    if (open_direction(&c->s2d) != 0 || open_direction(&c->d2s) != 0) {
        if (c->s2d.spooling)
            rec_spool_finish(&c->s2d.spool);
        c->s2d.spooling = 0;
        close(c->dst);
        c->dst = -1;
        refuse(r, c, "cannot record the connection");
        return 0;
    }
    pthread_mutex_lock(&r->lock);
    r->active++;
    pthread_mutex_unlock(&r->lock);
    c->running = pthread_create(&c->thread, NULL, conn_main, c) == 0;
    if (!c->running) {
        pthread_mutex_lock(&r->lock);
        r->active--;
        pthread_mutex_unlock(&r->lock);
        rec_spool_finish(&c->s2d.spool);
        rec_spool_finish(&c->d2s.spool);
        c->s2d.spooling = c->d2s.spooling = 0;
        close(c->dst);
        c->dst = -1;
        refuse(r, c, "cannot start the connection's thread");
        return 0;
    }
    note(r, "conn%zu: accepted, connected to %s", c->index, r->to.text);
    return 0;
}

/* ---- when to stop ---------------------------------------------------------
 */

/* 1 when recording is over: --count N connections accepted and all
 * closed; else (no --count) at least one accepted, all closed, and none
 * new for --idle seconds since the last closed. */
static int done(recorder *r, int accepting)
{
    pthread_mutex_lock(&r->lock);
    size_t active = r->active;
    int64_t quiet_ms = r->have_t0 ? now_ms(r) - r->last_close_ms : 0;
    pthread_mutex_unlock(&r->lock);
    if (r->nconns == 0 || active > 0)
        return 0;
    if (r->count > 0)
        return !accepting;
    return quiet_ms >= (int64_t)(r->idle_s * 1000.0);
}

/* Accept until done (or a signal); the listening socket is closed when
 * --count connections were accepted. */
static int accept_loop(recorder *r, int lfd)
{
    int accepting = 1;
    for (;;) {
        if (got_signal) {
            r->stopped = "signal";
            break;
        }
        if (done(r, accepting)) {
            r->stopped = r->count > 0 ? "count" : "idle";
            break;
        }
        struct pollfd p = {.fd = lfd, .events = POLLIN};
        int n = poll(&p, accepting ? 1 : 0, 100);
        if (n <= 0 || !(p.revents & POLLIN))
            continue;
        int src = accept(lfd, NULL, NULL);
        if (src < 0)
            continue; /* the source gave up on it, or EINTR */
        rec_nodelay(src);
        if (take_connection(r, src) != 0) {
            fprintf(stderr, "%s: out of memory\n", prog);
            return -1;
        }
        if (r->count > 0 && (long)r->nconns >= r->count) {
            accepting = 0;
            close(lfd); /* more connections are refused, not queued */
            lfd = -1;
        }
    }
    if (lfd >= 0)
        close(lfd);
    return 0;
}

/* After a signal: end every connection still open (both sides see it). */
static void abort_all(recorder *r)
{
    pthread_mutex_lock(&r->lock); /* against conn_main's closing */
    for (size_t i = 0; i < r->nconns; i++)
        if (r->conns[i]->running && !r->conns[i]->closing)
            abort_conn(r->conns[i], "interrupted by signal %d",
                       (int)got_signal);
    pthread_mutex_unlock(&r->lock);
}

static void join_all(recorder *r)
{
    int aborted = 0;
    for (;;) {
        pthread_mutex_lock(&r->lock);
        size_t active = r->active;
        pthread_mutex_unlock(&r->lock);
        if (!active)
            break;
        if (got_signal && !aborted) {
            abort_all(r);
            aborted = 1;
        }
        poll(NULL, 0, 50);
    }
    for (size_t i = 0; i < r->nconns; i++)
        if (r->conns[i]->running)
            pthread_join(r->conns[i]->thread, NULL);
}

/* ---- the manifest (spec/capture.md) ---------------------------------------
 */

/* A postcopy-preempt channel has no magic: its first be64 is a RAM page
 * record without CONTINUE (ZERO 0x02 or PAGE 0x08 in the flag bits below
 * 512) or the EOS 0x10 of an empty channel (spec/qemu-postcopy.md 5). */
static int looks_like_preempt(const direction *d)
{
    if (d->headlen < 8)
        return 0;
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | d->head[i];
    uint64_t flags = v & 0x1ff;
    return flags == 0x02 || flags == 0x08 || v == 0x10;
}

static ms_format detect(const direction *d)
{
    size_t need = 0;
    ms_format f = ms_detect(d->head, d->headlen, &need);
    return f == MS_FORMAT_AUTO ? MS_FORMAT_UNKNOWN : f;
}

/* What a connection turned out to be, from the first bytes of s2d (of d2s
 * when the source sent nothing); a magic-less s2d that starts like a page
 * record is the preempt channel when the capture has a main channel. */
static const char *conn_kind(const connection *c, int have_main)
{
    if (!c->running)
        return "unknown"; /* never forwarded: no bytes */
    if (c->s2d.bytes == 0) {
        ms_format f = detect(&c->d2s);
        return f == MS_FORMAT_QEMU_RETURN_PATH ? ms_format_name(f) : "unknown";
    }
    ms_format f = detect(&c->s2d);
    if ((f == MS_FORMAT_UNKNOWN || f == MS_FORMAT_QEMU_RETURN_PATH) &&
        have_main && looks_like_preempt(&c->s2d))
        return ms_format_name(MS_FORMAT_QEMU_PREEMPT);
    if (f == MS_FORMAT_LIBVIRT_SAVE)
        f = MS_FORMAT_QEMU_MAIN; /* a QEVM stream behind libvirt's header */
    return ms_format_name(f);
}

static void json_key_string(FILE *o, const char *key, const char *val)
{
    fprintf(o, "\"%s\":", key);
    tool_json_string(o, val, strlen(val));
}

/* Numbers as strings (like the dump JSON's 64-bit values). */
static void json_key_num(FILE *o, const char *key, int64_t v)
{
    fprintf(o, "\"%s\":\"%" PRId64 "\"", key, v);
}

static void write_direction(FILE *o, const direction *d)
{
    const char *base = strrchr(d->path, '/');
    fprintf(o, "\"%s\":{", d->name);
    json_key_string(o, "file", base ? base + 1 : d->path);
    fputc(',', o);
    json_key_num(o, "bytes", (int64_t)d->bytes);
    if (d->first_ms >= 0) {
        fputc(',', o);
        json_key_num(o, "first_byte_ms", d->first_ms);
        fputc(',', o);
        json_key_num(o, "last_byte_ms", d->last_ms);
    }
    if (d->end_ms >= 0) {
        fputc(',', o);
        json_key_num(o, "end_ms", d->end_ms);
    }
    fputc('}', o);
}

/* Who closed: the side whose end (FIN) came first; "both" in the same
 * millisecond; "error: WHY" when the connection failed. */
static void write_closed_by(FILE *o, const connection *c)
{
    char buf[620];
    const char *by = "both";
    int64_t s = c->s2d.end_ms, d = c->d2s.end_ms;
    if (c->error[0]) {
        snprintf(buf, sizeof buf, "error: %s", c->error);
        by = buf;
    } else if (s >= 0 && (d < 0 || s < d)) {
        by = "source";
    } else if (d >= 0 && (s < 0 || d < s)) {
        by = "destination";
    }
    json_key_string(o, "closed_by", by);
}

static void write_connection(FILE *o, const connection *c, int have_main)
{
    fprintf(o, "{\"index\":%zu,", c->index);
    json_key_string(o, "kind", conn_kind(c, have_main));
    if (c->running) { /* else the destination never got it */
        fputc(',', o);
        write_direction(o, &c->s2d);
        fputc(',', o);
        write_direction(o, &c->d2s);
    }
    fputc(',', o);
    json_key_num(o, "accepted_ms", c->accepted_ms);
    fputc(',', o);
    write_closed_by(o, c);
    fputc(',', o);
    json_key_num(o, "close_ms", c->close_ms);
    fputc('}', o);
}

/* DIR/manifest.json, written beside and renamed over, so a reader never
 * sees half of it.  0 or -1 (said). */
static int write_manifest(recorder *r)
{
    char tmp[4200], path[4200];
    snprintf(tmp, sizeof tmp, "%s/.manifest.json.tmp", r->dir);
    snprintf(path, sizeof path, "%s/manifest.json", r->dir);
    FILE *o = fopen(tmp, "w");
    if (!o) {
        fprintf(stderr, "%s: %s: %s\n", prog, tmp, strerror(errno));
        return -1;
    }
    if (!r->have_t0)
        start_clock(r); /* nothing accepted: the time recording stopped */
    int have_main = 0;
    for (size_t i = 0; i < r->nconns; i++)
        if (r->conns[i]->s2d.bytes &&
            strcmp(conn_kind(r->conns[i], 0), "qemu-main") == 0)
            have_main = 1;
    fprintf(o, "{");
    json_key_string(o, "migstream_capture", "1.0");
    fputc(',', o);
    json_key_string(o, "listen", r->listen.text);
    fputc(',', o);
    json_key_string(o, "to", r->to.text);
    fputc(',', o);
    json_key_string(o, "started", r->started);
    fputc(',', o);
    json_key_string(o, "stopped", r->stopped ? r->stopped : "error");
    fprintf(o, ",\"connections\":[");
    for (size_t i = 0; i < r->nconns; i++) {
        fputs(i ? ",\n" : "\n", o);
        write_connection(o, r->conns[i], have_main);
    }
    fprintf(o, "]}\n");
    int bad = ferror(o);
    if (fclose(o) != 0 || bad || rename(tmp, path) != 0) {
        fprintf(stderr, "%s: %s: %s\n", prog, path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* ---- command line ---------------------------------------------------------
 */

static void usage(FILE *o)
{
    fprintf(o,
            "usage: %s --listen ADDR --to ADDR -o DIR [--count N] [--idle "
            "SECONDS]\n"
            "       [--quiet]\n"
            "Record a migration: accept the source's connections on --listen, "
            "connect\n"
            "each to the destination --to (in accept order), forward both "
            "directions\n"
            "unchanged and save them as DIR/connN.s2d and DIR/connN.d2s, then\n"
            "DIR/manifest.json (spec/capture.md).\n"
            "ADDR: tcp:HOST:PORT, HOST:PORT or unix:PATH (--listen port 0: any "
            "free\n"
            "port, printed on stderr).\n"
            "  --listen ADDR     where the source connects\n"
            "  --to ADDR         the destination\n"
            "  -o, --out DIR     the capture directory (created; must hold no "
            "capture)\n"
            "  --count N         stop once N connections were accepted and all "
            "closed\n"
            "                    (later ones are refused)\n"
            "  --idle SECONDS    without --count: stop once every connection "
            "closed and\n"
            "                    none came for SECONDS (default 2)\n"
            "  --quiet           only problems on stderr\n"
            "  -h, --help        this help\n"
            "  -V, --version     version\n"
            "Exit status: 0 every connection was forwarded to its end; 1 a "
            "side closed\n"
            "early, a connect to the destination failed, the recording is "
            "incomplete\n"
            "or a signal stopped it; 2 usage.\n",
            prog);
}

/* DIR: created when missing; one holding a capture is refused. */
static int prepare_dir(const char *dir)
{
    char path[4200];
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "%s: %s: %s\n", prog, dir, strerror(errno));
        return -1;
    }
    const char *taken[] = {"manifest.json", "conn0.s2d"};
    for (size_t i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, taken[i]);
        if (access(path, F_OK) == 0) {
            fprintf(stderr, "%s: %s already holds a capture (%s)\n", prog, dir,
                    taken[i]);
            return -1;
        }
    }
    return 0;
}

/* Options into r; TOOL_GO_ON, or the exit status. */
static int parse_args(recorder *r, int argc, char **argv)
{
    static const struct option opts[] = {{"listen", required_argument, 0, 'l'},
                                         {"to", required_argument, 0, 't'},
                                         {"out", required_argument, 0, 'o'},
                                         {"count", required_argument, 0, 'c'},
                                         {"idle", required_argument, 0, 'i'},
                                         {"quiet", no_argument, 0, 'q'},
                                         {"help", no_argument, 0, 'h'},
                                         {"version", no_argument, 0, 'V'},
                                         {0, 0, 0, 0}};
    const char *listen = NULL, *to = NULL;
    char err[300], *end;
    int c;
    while ((c = getopt_long(argc, argv, "o:hV", opts, NULL)) != -1) {
        switch (c) {
        case 'l':
            listen = optarg;
            break;
        case 't':
            to = optarg;
            break;
        case 'o':
            r->dir = optarg;
            break;
        case 'q':
            r->quiet = 1;
            break;
        case 'c':
            r->count = strtol(optarg, &end, 10);
            if (*end || end == optarg || r->count < 1) {
                fprintf(stderr, "%s: --count: '%s' is not a number >= 1\n",
                        prog, optarg);
                return TOOL_USAGE;
            }
            break;
        case 'i':
            r->idle_s = strtod(optarg, &end);
            if (*end || end == optarg || !(r->idle_s >= 0 && r->idle_s < 1e6)) {
                fprintf(stderr,
                        "%s: --idle: '%s' is not a number of "
                        "seconds\n",
                        prog, optarg);
                return TOOL_USAGE;
            }
            break;
        case 'h':
            usage(stdout);
            return TOOL_OK;
        case 'V':
            printf("%s %s\n", prog, ms_version_string());
            return TOOL_OK;
        default:
            usage(stderr);
            return TOOL_USAGE;
        }
    }
    if (!listen || !to || !r->dir || optind < argc) {
        usage(stderr);
        return TOOL_USAGE;
    }
    if (rec_addr_parse(listen, &r->listen, err, sizeof err) != 0 ||
        rec_addr_parse(to, &r->to, err, sizeof err) != 0) {
        fprintf(stderr, "%s: %s\n", prog, err);
        return TOOL_USAGE;
    }
    return TOOL_GO_ON;
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART; /* poll still returns EINTR */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN); /* a closed peer is an error from send */
}

/* 1 when any connection failed (said on stderr as it happened). */
static int any_failed(const recorder *r)
{
    for (size_t i = 0; i < r->nconns; i++)
        if (r->conns[i]->error[0])
            return 1;
    return 0;
}

static void summarise(const recorder *r)
{
    for (size_t i = 0; i < r->nconns; i++) {
        const connection *c = r->conns[i];
        note(r, "conn%zu: s2d %" PRIu64 " bytes, d2s %" PRIu64 " bytes%s%s",
             c->index, c->s2d.bytes, c->d2s.bytes, c->error[0] ? ": " : "",
             c->error);
    }
}

int main(int argc, char **argv)
{
    recorder r;
    memset(&r, 0, sizeof r);
    r.idle_s = 2.0;
    pthread_mutex_init(&r.lock, NULL);
    int rc = parse_args(&r, argc, argv);
    if (rc != TOOL_GO_ON)
        return rc;
    if (prepare_dir(r.dir) != 0)
        return TOOL_INVALID;
    char err[300];
    int lfd = rec_listen(&r.listen, err, sizeof err);
    if (lfd < 0) {
        fprintf(stderr, "%s: listen on %s\n", prog, err);
        return TOOL_INVALID;
    }
    install_signals();
    note(&r, "listening on %s", r.listen.text);
    rc = accept_loop(&r, lfd) == 0 ? TOOL_OK : TOOL_INVALID;
    const char *upath = rec_addr_unix_path(&r.listen);
    if (upath)
        unlink(upath);
    join_all(&r);
    summarise(&r);
    if (write_manifest(&r) != 0 || any_failed(&r) || got_signal)
        rc = TOOL_INVALID;
    for (size_t i = 0; i < r.nconns; i++) {
        pthread_mutex_destroy(&r.conns[i]->lock);
        free(r.conns[i]);
    }
    free(r.conns);
    pthread_mutex_destroy(&r.lock);
    return rc;
}
