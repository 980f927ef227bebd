/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* Shared by the command-line tools; see tool_common.h. */
#define _DEFAULT_SOURCE /* madvise(MADV_DONTNEED): posix_madvise ignores it */
#include "tool_common.h"

#include "archive_input.h"

#include <getopt.h>

#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define READ_SLICE (1u << 20)

/* A mapped file is handed to the library one window at a time, and each
 * window's pages leave the process once the library returns (see
 * read_loop): peak RSS stays near a window per channel read at once,
 * whatever the file's size.  MIGSTREAM_MAP_WINDOW (bytes, K/M/G, at least
 * a page) in the environment sets another size: tests make records, seeks
 * and trailers cross window edges with small ones. */
#define MAP_WINDOW ((size_t)8 << 20)

static size_t map_window(void)
{
    const char *env = getenv("MIGSTREAM_MAP_WINDOW");
    uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE), v;
    if (!env || tool_parse_size(env, &v) < 0 || v == 0 || v > SIZE_MAX / 2)
        return MAP_WINDOW;
    return v < page ? (size_t)page : (size_t)v;
}

typedef struct tool_file {
    const char *name;
    int fd;
    uint8_t *map; /* whole regular file, mapped (address space only: the
                     pages of a window are dropped once it is read) */
    size_t map_len;
    size_t window; /* bytes handed to the library at once when mapped */
    int seekable;  /* a regular file (mapped or read with pread): the
                      reader gets seekable input (mapped-ram files) */
    uint64_t size; /* its size when seekable */
    int unreadable; /* could not be opened (said so): not a channel */
    /* archives (archive_input.h): an embedded stream read from the
     * archive's map, or the archive itself (read apart, not a channel) */
    const archive_stream *embedded;
    int archive_self;
    /* the window being read now (from < to), else 0, 0: other threads
     * leave its pages alone (drop_read_pages) */
    _Atomic uint64_t window_from, window_to;
} tool_file;

/* ---- problems ------------------------------------------------------------- */

void tool_print_problem(FILE *out, const char *file, const ms_error_info *e)
{
    fprintf(out, "%s:%llu: %s: %s", file, (unsigned long long)e->offset,
            ms_error_name(e->code), e->detail);
    /* Name the option that raises the limit (none for a fixed one). */
    const char *lim =
        e->code == MS_ERR_LIMIT ? ms_limit_option(e->limit) : NULL;
    if (lim)
        fprintf(out, " (raise it with --%s)", lim);
    fputc('\n', out);
}

/* ---- reading -------------------------------------------------------------- */

static int open_file(const char *prog, tool_file *f)
{
    struct stat st;
    f->fd = -1;
    switch (archive_input_lookup(f->name, &f->embedded)) {
    case 1: /* bytes come as views of the archive (next_bytes) */
        f->seekable = 1;
        f->size = archive_input_size(f->embedded);
        return 0;
    case 2: f->archive_self = 1; return 0;
    default: break;
    }
    if (strcmp(f->name, "-") == 0) {
        /* A file redirected to standard input can be read at any offset
         * (pread); a pipe cannot. */
        f->fd = STDIN_FILENO;
        if (fstat(f->fd, &st) == 0 && S_ISREG(st.st_mode) &&
            lseek(f->fd, 0, SEEK_CUR) == 0) {
            f->seekable = 1;
            f->size = (uint64_t)st.st_size;
        }
        return 0;
    }
    f->fd = open(f->name, O_RDONLY);
    if (f->fd < 0) {
        fprintf(stderr, "%s: %s: %s\n", prog, f->name, strerror(errno));
        return -1;
    }
    if (fstat(f->fd, &st) == 0 && S_ISREG(st.st_mode)) {
        f->seekable = 1;
        f->size = (uint64_t)st.st_size;
    }
    if (f->seekable && st.st_size > 0) {
        void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE,
                       f->fd, 0);
        if (m != MAP_FAILED) {
            f->map = m;
            f->map_len = (size_t)st.st_size;
            f->window = map_window();
            posix_madvise(m, f->map_len, POSIX_MADV_SEQUENTIAL);
        }
    }
    return 0;
}

static void close_file(tool_file *f)
{
    if (f->map)
        munmap(f->map, f->map_len);
    if (f->fd > STDIN_FILENO)
        close(f->fd);
}

/* Channel files may be decoded on several threads (tool_run_parallel):
 * the migration decodes unlocked and serialises the set and the tool's
 * callbacks, which keep shared state. */
static int run_parallel;
void tool_run_parallel(int on) { run_parallel = on; }

/* Files the last tool_run could not open: how many (tool_exit_status)
 * and which (tool_unreadable; one flag per file, kept until the next run
 * or the process ends). */
static size_t run_unreadable, run_nflags;
static uint8_t *run_unreadable_flags;
int tool_exit_status(int rc)
{
    return run_unreadable ? TOOL_USAGE : rc;
}

int tool_unreadable(size_t file)
{
    return file < run_nflags && run_unreadable_flags[file];
}

/* Driver payloads inside carriers decoded (tool_run_payloads). */
static int run_payloads;
void tool_run_payloads(int on) { run_payloads = on; }

/* --vmdesc FILE: the JSON trailer for QEMU streams that carry none */
static char *given_vmdesc;
static size_t given_vmdesc_len;

/* Read all of `path` (malloc'd into *out); 0, or -1 with errno set. */
static int slurp(const char *path, char **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 1 << 16;
            char *nb = realloc(buf, ncap);
            if (!nb) {
                free(buf);
                fclose(f);
                errno = ENOMEM;
                return -1;
            }
            buf = nb;
            cap = ncap;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        errno = EIO;
        return -1;
    }
    *out = buf;
    *len = n;
    return 0;
}

/* A raw JSON file, or a complete QEMU stream whose trailer is taken. */
static int load_vmdesc(const char *prog, const char *path)
{
    char *buf;
    size_t len, need, off, jlen;
    if (slurp(path, &buf, &len) < 0) {
        fprintf(stderr, "%s: --vmdesc %s: %s\n", prog, path, strerror(errno));
        return -1;
    }
    ms_format fmt = ms_detect(buf, len, &need);
    if (fmt == MS_FORMAT_QEMU_MAIN || fmt == MS_FORMAT_LIBVIRT_SAVE) {
        if (!ms_qemu_find_vmdesc(buf, len, len, &off, &jlen)) {
            fprintf(stderr,
                    "%s: --vmdesc %s: a QEMU stream without a JSON "
                    "trailer\n",
                    prog, path);
            free(buf);
            return -1;
        }
        memmove(buf, buf + off, jlen);
        len = jlen;
    } else if (len == 0 || buf[0] != '{') {
        fprintf(stderr,
                "%s: --vmdesc %s: neither JSON nor a QEMU stream with a "
                "JSON trailer\n",
                prog, path);
        free(buf);
        return -1;
    }
    free(given_vmdesc);
    given_vmdesc = buf;
    given_vmdesc_len = len;
    return 0;
}

/* ---- progress on a terminal ----------------------------------------------
 * While the files are read, one line on stderr (rewritten with \r) says how
 * many bytes the library was handed, of how many, at what rate and how long
 * the rest should take.  Only when stderr is a terminal and the tool did
 * not turn it off (--quiet); the clock is read once per window or read()
 * slice (1 MiB or more), never per event, so the fast path does not pay for
 * it.  MIGSTREAM_PROGRESS_INTERVAL_MS sets the time between updates
 * (default 250; 0 redraws at every slice, for tests). */

#define PROGRESS_INTERVAL_MS 250

static int progress_wanted = 1;
void tool_run_progress(int on)
{
    progress_wanted = on;
}

typedef struct progress {
    int on; /* a terminal, and wanted */
    const char *prog;
    uint64_t total;       /* bytes of every file; 0: some size unknown */
    uint64_t interval_ns; /* between two updates */
    uint64_t start_ns;
    _Atomic uint64_t done; /* bytes handed to the library (all threads) */
    pthread_mutex_t lock;  /* the terminal line and what follows: */
    uint64_t last_ns;      /* when it was last drawn */
    int shown;             /* a line is on the terminal now */
} progress;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void progress_start(progress *p, const char *prog, const tool_file *fs,
                           size_t nfiles)
{
    p->on = progress_wanted && isatty(STDERR_FILENO);
    p->prog = prog;
    p->total = 0;
    for (size_t i = 0; i < nfiles; i++) {
        if (!fs[i].seekable) {
            p->total = 0;
            break;
        }
        p->total += fs[i].size;
    }
    const char *env = getenv("MIGSTREAM_PROGRESS_INTERVAL_MS");
    char *end;
    unsigned long long ms = env ? strtoull(env, &end, 10) : 0;
    if (!env || !*env || *end || ms > 3600000)
        ms = PROGRESS_INTERVAL_MS;
    p->interval_ns = ms * 1000000u;
    p->start_ns = p->last_ns = now_ns();
    atomic_init(&p->done, 0);
    p->shown = 0;
}

/* "812.3 MiB" into buf (16 bytes). */
static void human_bytes(char *buf, double v)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    unsigned u = 0;
    while (v >= 1024 && u + 1 < sizeof units / sizeof units[0]) {
        v /= 1024;
        u++;
    }
    snprintf(buf, 16, u ? "%.1f %s" : "%.0f %s", v, units[u]);
}

/* The line, under the lock: bytes done [of total (percent)], rate[, time
 * left]. */
static void progress_draw(progress *p, uint64_t now)
{
    uint64_t done = atomic_load_explicit(&p->done, memory_order_relaxed);
    double secs = (double)(now - p->start_ns) / 1e9;
    double rate = secs > 0 ? (double)done / secs : 0;
    char d[16], t[16], r[16], line[160];
    human_bytes(d, (double)done);
    human_bytes(r, rate);
    int n;
    if (p->total) {
        /* seeks may read bytes twice: never past the whole */
        uint64_t shown = done < p->total ? done : p->total;
        human_bytes(t, (double)p->total);
        unsigned long left =
            rate > 0 ? (unsigned long)((double)(p->total - shown) / rate) : 0;
        char eta[32];
        if (left >= 3600)
            snprintf(eta, sizeof eta, "%lu:%02lu:%02lu", left / 3600,
                     left / 60 % 60, left % 60);
        else
            snprintf(eta, sizeof eta, "%lu:%02lu", left / 60, left % 60);
        n = snprintf(line, sizeof line,
                     "\r%s: %s of %s (%u%%), %s/s, %s left\033[K", p->prog, d,
                     t, (unsigned)(shown * 100 / p->total), r, eta);
    } else {
        n = snprintf(line, sizeof line, "\r%s: %s, %s/s\033[K", p->prog, d, r);
    }
    if (n > 0 &&
        write(STDERR_FILENO, line,
              (size_t)n < sizeof line ? (size_t)n : sizeof line - 1) > 0)
        p->shown = 1;
}

/* `n` more bytes were handed in: redraw when the interval has passed
 * (unless another thread is drawing). */
static void progress_add(progress *p, uint64_t n)
{
    if (!p->on)
        return;
    atomic_fetch_add_explicit(&p->done, n, memory_order_relaxed);
    if (pthread_mutex_trylock(&p->lock) != 0)
        return;
    uint64_t now = now_ns();
    if (now - p->last_ns >= p->interval_ns) {
        progress_draw(p, now);
        p->last_ns = now;
    }
    pthread_mutex_unlock(&p->lock);
}

/* Take the terminal line away (under the lock, which the caller then
 * holds while it prints, so no update lands inside its output). */
static void progress_hide(progress *p)
{
    pthread_mutex_lock(&p->lock);
    if (p->shown) {
        static const char clear[] = "\r\033[K";
        if (write(STDERR_FILENO, clear, sizeof clear - 1) < 0) {
            /* nothing to do about a terminal that went away */
        }
        p->shown = 0;
    }
}

static void progress_show(progress *p)
{
    pthread_mutex_unlock(&p->lock);
}

/* Every event and problem of the migration goes to the tool. */
typedef struct run_ctx {
    ms_migration *m;
    tool_event_fn on_event;
    tool_problem_fn on_problem;
    void *ctx;
    progress progress;
    tool_file *fs; /* the files, for drop_read_pages */
    size_t nfiles;
    const ms_options *opt; /* archive_input_read's reader */
} run_ctx;

static void run_event(void *ctx, const ms_event *ev, const ms_event_origin *o)
{
    run_ctx *rc = ctx;
    rc->on_event(rc->ctx, ev, o);
}

/* A problem line never lands behind the progress line. */
static void run_problem(void *ctx, const ms_error_info *e)
{
    run_ctx *rc = ctx;
    progress_hide(&rc->progress);
    rc->on_problem(rc->ctx, e->has_channel ? e->channel : (size_t)-1, e);
    progress_show(&rc->progress);
}

static int is_qemu_main(const tool_file *f)
{
    size_t need;
    if (f->embedded) { /* the archiver's ms_detect */
        ms_format e = archive_input_format(f->embedded);
        return e == MS_FORMAT_QEMU_MAIN || e == MS_FORMAT_LIBVIRT_SAVE;
    }
    ms_format fmt = f->map ? ms_detect(f->map, f->map_len, &need)
                           : MS_FORMAT_UNKNOWN;
    return fmt == MS_FORMAT_QEMU_MAIN || fmt == MS_FORMAT_LIBVIRT_SAVE;
}

/* Pages of mapped files the library is done with leave the process (they
 * stay in the page cache).  The mappings stay, so a view the library keeps
 * (input_stable: a packet the set holds until the packets before it came,
 * maybe from another channel) or the whole input it was given reads the
 * same bytes again, faulted back in from the file -- and those pages leave
 * again after the next window.  So after each window every file is
 * dropped but the windows other threads are reading now: its own window,
 * views read again (by this thread or another: a thread that lags does
 * not keep the pages others read of its file), a JSON trailer. */
static void drop_range(tool_file *f, uint64_t from, uint64_t to)
{
    uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
    from = from / page * page;
    to = to < f->map_len ? (to + page - 1) / page * page : f->map_len;
    if (from < to)
        madvise(f->map + from, (size_t)(to - from), MADV_DONTNEED);
}

static void drop_read_pages(run_ctx *rc, tool_file *self)
{
    for (size_t i = 0; i < rc->nfiles; i++) {
        tool_file *f = &rc->fs[i];
        if (!f->map)
            continue;
        uint64_t busy_from = 0, busy_to = 0; /* another thread's window */
        if (f != self) {
            busy_from = atomic_load_explicit(&f->window_from,
                                             memory_order_relaxed);
            busy_to = atomic_load_explicit(&f->window_to,
                                           memory_order_relaxed);
        }
        if (busy_from < busy_to) {
            drop_range(f, 0, busy_from);
            drop_range(f, busy_to, f->map_len);
        } else {
            drop_range(f, 0, f->map_len);
        }
    }
}

/* The next bytes of `f` at `pos`: a window of the mapping (a view, nothing
 * copied), else read() for a pipe or pread() at `pos` for a regular file,
 * into `buf`.  Their length (0 at the end), or -1 on an I/O error. */
static ssize_t next_bytes(tool_file *f, uint64_t pos, uint8_t *buf,
                          const uint8_t **at)
{
    if (f->embedded)
        return (ssize_t)archive_input_view(f->embedded, pos, READ_SLICE, at);
    if (f->map) {
        if (pos >= f->map_len)
            return 0;
        *at = f->map + pos;
        return (ssize_t)(f->map_len - pos < f->window ? f->map_len - pos
                                                      : f->window);
    }
    *at = buf;
    ssize_t n;
    do
        n = f->seekable ? pread(f->fd, buf, READ_SLICE, (off_t)pos)
                        : read(f->fd, buf, READ_SLICE);
    while (n < 0 && errno == EINTR);
    return n;
}

/* Read loop: the file's bytes in order; a seek the reader asks for moves
 * `pos` (a seek past the end ends the input: the channel's end then says
 * so).  -1 on an I/O error (printed). */
static int read_loop(const char *prog, run_ctx *rc, tool_file *f,
                     uint32_t slot, uint8_t *buf)
{
    uint64_t pos = 0;
    for (;;) {
        const uint8_t *at;
        ssize_t n = next_bytes(f, pos, buf, &at);
        if (n < 0) {
            fprintf(stderr, "%s: %s: %s\n", prog, f->name, strerror(errno));
            return -1;
        }
        if (n == 0)
            return 0;
        if (f->map) {
            atomic_store_explicit(&f->window_from, pos, memory_order_relaxed);
            atomic_store_explicit(&f->window_to, pos + (uint64_t)n,
                                  memory_order_relaxed);
        }
        int s = f->seekable
                    ? ms_migration_input_at(rc->m, slot, pos, at, (size_t)n)
                    : ms_migration_input(rc->m, slot, at, (size_t)n);
        if (f->map) {
            atomic_store_explicit(&f->window_to, 0, memory_order_relaxed);
            drop_read_pages(rc, f);
        }
        progress_add(&rc->progress, (uint64_t)n);
        pos += (uint64_t)n;
        if (s < 0)
            return 0;
        if (s == MS_NEXT_SEEK)
            pos = ms_migration_seek_target(rc->m, slot);
    }
}

/* One file, one channel: its bytes, then its end. */
static int read_file(const char *prog, run_ctx *rc, tool_file *f,
                     size_t idx, uint8_t *buf)
{
    uint32_t slot = (uint32_t)idx;
    if (read_loop(prog, rc, f, slot, buf) < 0)
        return -1;
    ms_migration_channel_end(rc->m, slot);
    if (f->map) /* what the channel's end read again */
        drop_read_pages(rc, f);
    return 0;
}

typedef struct worker {
    pthread_t thread;
    const char *prog;
    run_ctx *rc;
    tool_file *f;
    size_t idx;
} worker;

static void *worker_main(void *arg)
{
    worker *w = arg;
    read_file(w->prog, w->rc, w->f, w->idx, NULL); /* mapped: no I/O error */
    return NULL;
}

/* Decode mapped channel files on one thread each (the migration was made
 * MS_MIGRATION_CONCURRENT); -1 when out of memory. */
static int read_parallel(const char *prog, run_ctx *rc, tool_file *fs,
                         const size_t *idx, size_t n)
{
    worker *ws = calloc(n, sizeof *ws);
    if (!ws)
        return -1;
    size_t started = 0;
    for (; started < n; started++) {
        worker *w = &ws[started];
        *w = (worker){.prog = prog, .rc = rc, .f = &fs[idx[started]],
                      .idx = idx[started]};
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0)
            break;
    }
    /* what could not get a thread is read here: the files before it have
     * their threads, so its turn comes */
    for (size_t i = started; i < n; i++)
        read_file(prog, rc, &fs[idx[i]], idx[i], NULL);
    for (size_t i = 0; i < started; i++)
        pthread_join(ws[i].thread, NULL);
    free(ws);
    return 0;
}

/* Open the files and the migration's channels (slot = place in the list). */
static int open_all(const char *prog, tool_file *fs, char *const *files,
                    size_t nfiles, ms_options *opt)
{
    int stdin_used = 0;
    for (size_t i = 0; i < nfiles; i++) {
        fs[i].name = files[i];
        if (strcmp(files[i], "-") == 0 && stdin_used++) {
            fprintf(stderr, "%s: standard input given twice\n", prog);
            return -1;
        }
        if (open_file(prog, &fs[i]) < 0) {
            /* the others are still checked (the migration then lacks a
             * channel); the exit status is the worst */
            fs[i].unreadable = 1;
            continue;
        }
        /* Mapped files stay valid until the end: the set keeps views of
         * early packets instead of copying them. */
        if (!fs[i].map)
            opt->input_stable = 0;
    }
    return 0;
}

/* Note which files could not be opened (tool_unreadable); their count. */
static size_t note_unreadable(const tool_file *fs, size_t nfiles)
{
    size_t n = 0;
    free(run_unreadable_flags);
    run_unreadable_flags = calloc(nfiles ? nfiles : 1, 1);
    run_nflags = run_unreadable_flags ? nfiles : 0;
    for (size_t i = 0; i < nfiles; i++) {
        n += fs[i].unreadable != 0;
        if (i < run_nflags)
            run_unreadable_flags[i] = fs[i].unreadable != 0;
    }
    return n;
}

static int open_channels(run_ctx *rc, tool_file *fs, size_t nfiles)
{
    for (size_t i = 0; i < nfiles; i++) {
        if (fs[i].unreadable || fs[i].archive_self)
            continue;
        ms_channel_input in = {.seekable = fs[i].seekable,
                               .size = fs[i].seekable ? fs[i].size : 0,
                               .whole = fs[i].map,
                               .whole_len = fs[i].map_len};
        if (ms_migration_channel_open(rc->m, (uint32_t)i, &in) < 0)
            return -1;
    }
    return 0;
}

/* A QEMU main channel is read before the multifd channels (it holds the
 * page size and the RAM block list they are checked against); otherwise
 * files are read in the order given, on threads when asked for. */
static int read_all(const char *prog, run_ctx *rc, tool_file *fs,
                    size_t nfiles, uint8_t *buf, int parallel)
{
    size_t *later = calloc(nfiles ? nfiles : 1, sizeof *later), nlater = 0;
    if (!later)
        return -1;
    int io_error = 0;
    for (size_t i = 0; i < nfiles && !io_error; i++) {
        if (fs[i].unreadable)
            continue;
        if (fs[i].archive_self) /* its records and checks, not a channel */
            archive_input_read(fs[i].name, (uint32_t)i, rc->opt, run_event,
                               run_problem, rc);
        else if (!is_qemu_main(&fs[i]))
            later[nlater++] = i;
        else
            io_error = read_file(prog, rc, &fs[i], i, buf) < 0;
    }
    /* main channels read: the others go on with what they said */
    ms_migration_no_main(rc->m);
    if (!io_error && parallel)
        io_error = read_parallel(prog, rc, fs, later, nlater) < 0;
    else
        for (size_t k = 0; k < nlater && !io_error; k++)
            io_error = read_file(prog, rc, &fs[later[k]], later[k], buf) < 0;
    free(later);
    return io_error ? -1 : 0;
}

/* An archive's embedded main stream is not in memory whole, so its JSON
 * trailer is found here and given to the migration (as --vmdesc would). */
static int give_embedded_vmdesc(ms_migration *m, const tool_file *fs,
                                 size_t nfiles, const ms_options *opt)
{
    for (size_t i = 0; i < nfiles; i++) {
        char *json;
        size_t len;
        if (!fs[i].embedded || !is_qemu_main(&fs[i]))
            continue;
        int found = archive_input_vmdesc(fs[i].embedded, opt->max_vmdesc_bytes,
                                         &json, &len);
        if (found <= 0)
            return found;
        int rc = ms_migration_give_vmdesc(m, json, len);
        free(json);
        return rc;
    }
    return 0;
}

int tool_run(const char *prog, char *const *files, size_t nfiles,
             ms_options *opt, tool_event_fn on_event,
             tool_problem_fn on_problem, void *ctx)
{
    tool_file *fs = calloc(nfiles ? nfiles : 1, sizeof *fs);
    uint8_t *buf = malloc(READ_SLICE);
    run_ctx rc = {.on_event = on_event,
                  .on_problem = on_problem,
                  .ctx = ctx,
                  .fs = fs,
                  .nfiles = fs ? nfiles : 0,
                  .opt = opt,
                  .progress.lock = PTHREAD_MUTEX_INITIALIZER};
    int status = TOOL_USAGE;
    if (!fs || !buf) {
        fprintf(stderr, "%s: out of memory\n", prog);
        goto out;
    }
    if (open_all(prog, fs, files, nfiles, opt) < 0)
        goto out;
    size_t unreadable = note_unreadable(fs, nfiles);
    if (unreadable == nfiles)
        goto out; /* nothing to check */
    progress_start(&rc.progress, prog, fs, nfiles);
    int all_mapped = 1;
    size_t channels = 0;
    for (size_t i = 0; i < nfiles; i++)
        if (!is_qemu_main(&fs[i])) {
            all_mapped &= fs[i].map != NULL;
            channels++;
        }
    int parallel = run_parallel && all_mapped && channels > 1;
    ms_migration_callbacks cb = {run_event, run_problem, &rc};
    rc.m = ms_migration_create(
        opt, &cb,
        (run_payloads ? MS_MIGRATION_NESTED_PAYLOADS : 0) |
            (parallel ? MS_MIGRATION_CONCURRENT : 0));
    if (!rc.m) {
        fprintf(stderr, "%s: cannot create readers (out of memory)\n", prog);
        goto out;
    }
    if (given_vmdesc &&
        ms_migration_give_vmdesc(rc.m, given_vmdesc, given_vmdesc_len) < 0) {
        fprintf(stderr,
                "%s: --vmdesc: %zu bytes of JSON exceed max_vmdesc_bytes "
                "(%llu), or out of memory\n",
                prog, given_vmdesc_len,
                (unsigned long long)opt->max_vmdesc_bytes);
        goto out;
    }
    if (!given_vmdesc && give_embedded_vmdesc(rc.m, fs, nfiles, opt) < 0) {
        fprintf(stderr, "%s: out of memory\n", prog);
        goto out;
    }
    if (open_channels(&rc, fs, nfiles) < 0 ||
        read_all(prog, &rc, fs, nfiles, buf, parallel) < 0)
        goto out;
    status = ms_migration_finish(rc.m) < 0 ? TOOL_INVALID : TOOL_OK;
    run_unreadable = unreadable; /* the tool reports, then exits 2 */
out:
    /* the tool's output comes after: no progress line left above it */
    progress_hide(&rc.progress);
    progress_show(&rc.progress);
    for (size_t i = 0; fs && i < nfiles; i++)
        close_file(&fs[i]);
    ms_migration_free(rc.m);
    free(fs);
    free(buf);
    return status;
}

/* ---- output helpers ------------------------------------------------------- */

void tool_json_string(FILE *out, const char *s, size_t len)
{
    fputc('"', out);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            fprintf(out, "\\%c", c);
        else if (c < 0x20 || c >= 0x7f)
            fprintf(out, "\\u%04x", c);
        else
            fputc(c, out);
    }
    fputc('"', out);
}

void tool_hex(char *dst, const uint8_t *src, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        dst[2 * i] = digits[src[i] >> 4];
        dst[2 * i + 1] = digits[src[i] & 15];
    }
    dst[2 * n] = 0;
}

int tool_parse_size(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    if (!*s || *s == '-')
        return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s)
        return -1;
    unsigned shift = 0;
    switch (*end) {
    case 'K': case 'k': shift = 10; end++; break;
    case 'M': case 'm': shift = 20; end++; break;
    case 'G': case 'g': shift = 30; end++; break;
    }
    if (*end || (shift && v > (UINT64_MAX >> shift)))
        return -1;
    *out = (uint64_t)v << shift;
    return 0;
}

/* The limits' options (--max-record-payload=N, ...), one per entry of
 * MS_LIMIT_LIST, in its order. */
static const struct {
    ms_limit id;
    const char *help;
} limit_opts[] = {
#define LIM(id, val, field, type, def, option, help) {MS_LIMIT_##id, help},
    MS_LIMIT_LIST(LIM)
#undef LIM
};

static const size_t n_limits = sizeof limit_opts / sizeof limit_opts[0];

void tool_long_options(const struct option *own, struct option *all)
{
    size_t n = 0;
    while (own[n].name)
        n++;
    if (n + n_limits + 5 > TOOL_LONG_OPTIONS_MAX)
        abort(); /* a tool declares too many options: raise the max */
    memcpy(all, own, n * sizeof *all);
    all[n++] = (struct option){"format", required_argument, 0, TOOL_OPT_READER};
    all[n++] = (struct option){"payload", required_argument, 0,
                               TOOL_OPT_READER};
    all[n++] = (struct option){"final-offset", required_argument, 0,
                               TOOL_OPT_READER};
    all[n++] = (struct option){"vmdesc", required_argument, 0,
                               TOOL_OPT_READER};
    for (size_t i = 0; i < n_limits; i++)
        all[n++] = (struct option){ms_limit_option(limit_opts[i].id),
                                   required_argument, 0, TOOL_OPT_READER};
    all[n] = (struct option){0, 0, 0, 0};
}

/* Store `value` (K/M/G suffixes) in the limit's field: 0, or -1 when it
 * does not parse or does not fit the field. */
static int set_limit(ms_options *opt, ms_limit id, const char *value)
{
    uint64_t v;
    if (!value || tool_parse_size(value, &v) < 0)
        return -1;
    switch (id) {
#define LIM(id_, val, field, type, def, option, help)                         \
    case MS_LIMIT_##id_:                                                      \
        if (v >> (sizeof(type) * 8 - 1) >> 1) /* bits above the field's */   \
            return -1;                                                        \
        opt->field = (type)v;                                                 \
        return 0;
        MS_LIMIT_LIST(LIM)
#undef LIM
    default:
        return -1;
    }
}

int tool_reader_option(const char *prog, ms_options *opt, const char *name,
                       const char *value)
{
    if (strcmp(name, "payload") == 0) { /* the file is one driver's data */
        ms_payload_kind kind = strcmp(value, "auto") == 0
                                   ? MS_PAYLOAD_DETECT
                                   : ms_payload_kind_from_name(value);
        if (kind < 0 && strcmp(value, "auto") != 0) {
            fprintf(stderr, "%s: unknown --payload %s (auto, raw, mlx5, "
                            "virtio, hisi_acc, qat, xe, pds)\n",
                    prog, value);
            return -1;
        }
        opt->format = MS_FORMAT_PAYLOAD;
        opt->payload_kind = kind;
        return 0;
    }
    if (strcmp(name, "vmdesc") == 0)
        return load_vmdesc(prog, value);
    if (strcmp(name, "final-offset") == 0) {
        uint64_t v;
        if (tool_parse_size(value, &v) < 0) {
            fprintf(stderr, "%s: bad --final-offset %s\n", prog, value);
            return -1;
        }
        opt->payload_final_offset = v;
        return 0;
    }
    if (strcmp(name, "format") == 0) {
        static const ms_format forms[] = {
            MS_FORMAT_AUTO, MS_FORMAT_MIGSTREAM, MS_FORMAT_QEMU_MAIN,
            MS_FORMAT_QEMU_MULTIFD, MS_FORMAT_LIBVIRT_SAVE,
            MS_FORMAT_QEMU_PREEMPT, MS_FORMAT_QEMU_RETURN_PATH,
            MS_FORMAT_QEMU_CPR};
        for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++)
            if (strcmp(value, ms_format_name(forms[i])) == 0) {
                opt->format = forms[i];
                return 0;
            }
        fprintf(stderr, "%s: unknown --format %s (auto, migstream, qemu-main, "
                        "qemu-multifd, libvirt-save, qemu-preempt, "
                        "qemu-return-path, qemu-cpr)\n",
                prog, value);
        return -1;
    }
    for (size_t i = 0; i < n_limits; i++)
        if (strcmp(name, ms_limit_option(limit_opts[i].id)) == 0) {
            if (set_limit(opt, limit_opts[i].id, value) == 0)
                return 0;
            break;
        }
    fprintf(stderr, "%s: bad value for --%s: %s\n", prog, name,
            value ? value : "");
    return -1;
}

void tool_reader_help(FILE *out)
{
    fprintf(out, "  --payload=KIND%*sthe files are one VFIO driver's data: "
                 "auto, mlx5, virtio,\n%*shisi_acc, qat, xe, pds, raw\n",
            16, "", 32, "");
    fprintf(out, "  --final-offset=N%*swith --payload: bytes from N on were "
                 "read in STOP_COPY\n",
            14, "");
    fprintf(out, "  --format=NAME%*sauto (default: detect from the magic), "
                 "migstream, qemu-main, ...\n",
            17, "");
    fprintf(out, "  --vmdesc=FILE%*sQEMU: the JSON trailer for streams without "
                 "one (postcopy):\n%*sa JSON file, or a QEMU stream of the "
                 "same machine\n",
            17, "", 32, "");
    for (size_t i = 0; i < n_limits; i++) {
        const char *name = ms_limit_option(limit_opts[i].id);
        fprintf(out, "  --%s=N%*slimit: %s\n", name,
                (int)(26 - strlen(name)), "", limit_opts[i].help);
    }
}

/* ---- the command line every reading tool shares -------------------------- */

int tool_expand_inputs(const char *prog, char *const **files, size_t *nfiles)
{
    return archive_input_expand(prog, files, nfiles);
}

int tool_parse_options(const char *prog, int argc, char **argv,
                       const char *shorts, const struct option *own,
                       ms_options *opt, tool_option_fn own_option,
                       void (*usage)(FILE *), void *ctx, char *const **files,
                       size_t *nfiles)
{
    /* --help and --version follow the tool's own options (getopt names
     * the candidates of an ambiguous abbreviation in table order). */
    struct option mine[TOOL_LONG_OPTIONS_MAX], longs[TOOL_LONG_OPTIONS_MAX];
    size_t n = 0;
    while (own[n].name)
        n++;
    if (n + 4 > TOOL_LONG_OPTIONS_MAX)
        abort(); /* a tool declares too many options: raise the max */
    memcpy(mine, own, n * sizeof *mine);
    mine[n++] = (struct option){"help", no_argument, 0, 'h'};
    mine[n++] = (struct option){"version", no_argument, 0, 'V'};
    mine[n++] = (struct option){"quiet", no_argument, 0, TOOL_OPT_QUIET};
    mine[n] = (struct option){0, 0, 0, 0};
    tool_long_options(mine, longs);
    int c, li, rc;
    while ((c = getopt_long(argc, argv, shorts, longs, &li)) != -1) {
        switch (c) {
        case TOOL_OPT_READER:
            if (tool_reader_option(prog, opt, longs[li].name, optarg) < 0)
                return TOOL_USAGE;
            break;
        case 'h': usage(stdout); return TOOL_OK;
        case 'V': printf("%s %s\n", prog, ms_version_string()); return TOOL_OK;
        case '?': usage(stderr); return TOOL_USAGE;
        case TOOL_OPT_QUIET:
            tool_run_progress(0);
            if ((rc = own_option(ctx, c)) != TOOL_GO_ON)
                return rc;
            break;
        default:
            if ((rc = own_option(ctx, c)) != TOOL_GO_ON)
                return rc;
            break;
        }
    }
    if (files && optind >= argc) {
        usage(stderr);
        return TOOL_USAGE;
    }
    if (files) {
        *files = argv + optind;
        *nfiles = (size_t)(argc - optind);
        /* an archive is read as itself and its embedded files */
        if (tool_expand_inputs(prog, files, nfiles) < 0)
            return TOOL_USAGE;
    }
    return TOOL_GO_ON;
}
