/* Shared by the command-line tools; see tool_common.h. */
#include "tool_common.h"

#include <getopt.h>

#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define READ_SLICE (1u << 20)

typedef struct tool_file {
    const char *name;
    int fd;
    uint8_t *map; /* whole regular file, mapped */
    size_t map_len;
    int seekable;  /* a regular file (mapped or read with pread): the
                      reader gets seekable input (mapped-ram files) */
    uint64_t size; /* its size when seekable */
    ms_reader *reader;
    int failed, done, vmdesc_bad;
    size_t turn;   /* threaded reading: its place in the header order */
    int took_turn; /* its first event went to the set, or it ended */
    ms_options opt; /* the reader's options (the format may be this file's) */
} tool_file;

/* ---- problems ------------------------------------------------------------- */

void tool_print_problem(FILE *out, const char *file, const ms_error_info *e)
{
    fprintf(out, "%s:%llu: %s: %s", file, (unsigned long long)e->offset,
            ms_error_name(e->code), e->detail);
    /* Name the option that raises the limit, e.g. max_buffered_bytes ->
     * --max-buffered-bytes. */
    const char *lim = e->code == MS_ERR_LIMIT ? strstr(e->detail, "max_") : NULL;
    if (lim) {
        fputs(" (raise it with --", out);
        for (; *lim == '_' || (*lim >= 'a' && *lim <= 'z'); lim++)
            fputc(*lim == '_' ? '-' : *lim, out);
        fputc(')', out);
    }
    fputc('\n', out);
}

/* ---- reading -------------------------------------------------------------- */

static int open_file(const char *prog, tool_file *f)
{
    struct stat st;
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
    ms_reader_free(f->reader);
}

/* Channel files may be decoded on several threads (tool_run_parallel):
 * decoding runs unlocked; the set and the tool's callbacks, which keep
 * shared state, run under `lock`. */
static int run_parallel;
void tool_run_parallel(int on) { run_parallel = on; }

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

typedef struct run_ctx {
    pthread_mutex_t lock;
    int threaded;
    /* Threaded reading: files hand their first event (the stream header)
     * to the set in the order given, so "the first channel" that the
     * others are compared with does not depend on thread timing. */
    pthread_cond_t turn_cv;
    size_t header_turn;
    ms_set *set;
    uint32_t page_bits; /* from a QEMU main stream's configuration */
    /* a QEMU main stream advised postcopy-ram (or listed postcopy-preempt):
     * a channel file without a magic is its postcopy-preempt channel */
    int postcopy;
    int set_failed;
    tool_event_fn on_event;
    tool_problem_fn on_problem;
    void *ctx;
    int problems;
} run_ctx;

static void lock(run_ctx *rc)
{
    if (rc->threaded)
        pthread_mutex_lock(&rc->lock);
}

static void unlock(run_ctx *rc)
{
    if (rc->threaded)
        pthread_mutex_unlock(&rc->lock);
}

/* A reader's problem (called unlocked). */
static void file_problem(run_ctx *rc, tool_file *f, size_t idx)
{
    lock(rc);
    f->failed = 1;
    rc->problems++;
    rc->on_problem(rc->ctx, idx, ms_reader_error(f->reader));
    unlock(rc);
}

static void set_problem(run_ctx *rc)
{
    const ms_error_info *e = ms_set_error(rc->set);
    rc->set_failed = 1;
    rc->problems++;
    rc->on_problem(rc->ctx, e->has_channel ? e->channel : (size_t)-1, e);
}

/* Pull the reader's events for the current slice; hand each to the set
 * and to the tool.  Returns 0 when the slice is consumed, 1 when the
 * reader wants input at another offset (MS_NEXT_SEEK), -1 on error. */
/* Under the lock: wait until the files before this one (in the order
 * given) have handed their first event to the set. */
static void wait_turn(run_ctx *rc, tool_file *f)
{
    while (rc->threaded && !f->took_turn && rc->header_turn != f->turn)
        pthread_cond_wait(&rc->turn_cv, &rc->lock);
}

/* Under the lock: this file's first event went in (or it ended without
 * one): the next file may go. */
static void end_turn(run_ctx *rc, tool_file *f)
{
    if (!rc->threaded || f->took_turn)
        return;
    f->took_turn = 1;
    rc->header_turn++;
    pthread_cond_broadcast(&rc->turn_cv);
}

static int pump(run_ctx *rc, tool_file *f, size_t idx)
{
    ms_event ev, sev;
    for (;;) {
        int r = ms_reader_next(f->reader, &ev); /* the decoding: unlocked */
        if (r == MS_NEXT_INPUT)
            return 0;
        if (r == MS_NEXT_SEEK)
            return 1;
        if (r == MS_NEXT_ERROR) {
            file_problem(rc, f, idx);
            return -1;
        }
        lock(rc);
        wait_turn(rc, f);
        rc->on_event(rc->ctx, idx, &ev, 0);
        if (ev.kind == MS_EV_CONFIGURATION && ev.u.config.has_page_bits)
            rc->page_bits = ev.u.config.page_bits;
        if ((ev.kind == MS_EV_COMMAND && ev.u.command.cmd == 3 &&
             ev.u.command.len) ||
            (ev.kind == MS_EV_CONFIGURATION && ev.u.config.cap_postcopy_preempt))
            rc->postcopy = 1;
        if (!rc->set_failed) {
            if (ms_set_observe(rc->set, (uint32_t)idx, &ev) < 0) {
                set_problem(rc);
            } else {
                int s;
                while ((s = ms_set_next(rc->set, &sev)) == MS_NEXT_EVENT)
                    rc->on_event(rc->ctx, sev.channel, &sev, 1);
                if (s == MS_NEXT_ERROR)
                    set_problem(rc);
            }
        }
        end_turn(rc, f);
        unlock(rc);
    }
}

static int is_qemu_main(const tool_file *f)
{
    size_t need;
    ms_format fmt = f->map ? ms_detect(f->map, f->map_len, &need)
                           : MS_FORMAT_UNKNOWN;
    return fmt == MS_FORMAT_QEMU_MAIN || fmt == MS_FORMAT_LIBVIRT_SAVE;
}

/* A mapped QEMU stream: give the reader its JSON trailer first, so FULL
 * sections decode as they come (a pipe gets no such help). */
static void give_vmdesc(tool_file *f)
{
    size_t off, len, need;
    ms_format fmt = f->map ? ms_detect(f->map, f->map_len, &need)
                           : MS_FORMAT_UNKNOWN;
    if ((fmt == MS_FORMAT_QEMU_MAIN || fmt == MS_FORMAT_LIBVIRT_SAVE) &&
        ms_qemu_find_vmdesc(f->map, f->map_len, (size_t)64 << 20, &off,
                            &len)) {
        /* A malformed trailer is reported when the reader reaches it. */
        if (ms_reader_set_vmdesc(f->reader, (const char *)f->map + off, len) <
            0)
            f->vmdesc_bad = 1;
    } else if (given_vmdesc &&
               (!f->map || fmt == MS_FORMAT_QEMU_MAIN ||
                fmt == MS_FORMAT_LIBVIRT_SAVE)) {
        /* no trailer of its own (a postcopy stream, a pipe): --vmdesc */
        if (ms_reader_borrow_vmdesc(f->reader, given_vmdesc,
                                    given_vmdesc_len) < 0)
            f->vmdesc_bad = 1;
    }
}

/* Could this mapped file be a postcopy-preempt channel?  It has no magic,
 * but its first be64 is a page record without CONTINUE (ZERO 0x02 or PAGE
 * 0x08 in the low bits, below the smallest page of 512 bytes), or the EOS
 * of an empty channel.  A return path (be16 type, be16 length) is not. */
static int looks_like_preempt(const tool_file *f)
{
    if (!f->map || f->map_len < 8)
        return 0;
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | f->map[i];
    uint64_t flags = v & 0x1ff;
    return flags == 0x02 || flags == 0x08 || v == 0x10;
}

/* A mapped file: one slice; the reader jumps inside it by itself, so a
 * seek it asks for lies past the end (finish then says so). */
static void read_mapped(run_ctx *rc, tool_file *f, size_t idx)
{
    if (ms_reader_input(f->reader, f->map, f->map_len) < 0)
        return;
    while (pump(rc, f, idx) == 1) {
        uint64_t at = ms_reader_seek_target(f->reader);
        if (at >= f->map_len ||
            ms_reader_input_at(f->reader, at, f->map + at,
                               f->map_len - (size_t)at) < 0)
            return;
    }
}

/* Read loop: read() for a pipe, pread() at the reader's offset for a
 * regular file (seeks go where the reader asks).  -1 on an I/O error
 * (printed). */
static int read_loop(const char *prog, run_ctx *rc, tool_file *f, size_t idx,
                     uint8_t *buf)
{
    uint64_t pos = 0;
    for (;;) {
        ssize_t n = f->seekable ? pread(f->fd, buf, READ_SLICE, (off_t)pos)
                                : read(f->fd, buf, READ_SLICE);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            fprintf(stderr, "%s: %s: %s\n", prog, f->name, strerror(errno));
            return -1;
        }
        if (n == 0)
            return 0;
        int in = f->seekable
                     ? ms_reader_input_at(f->reader, pos, buf, (size_t)n)
                     : ms_reader_input(f->reader, buf, (size_t)n);
        pos += (uint64_t)n;
        if (in < 0)
            return 0;
        int s = pump(rc, f, idx);
        if (s < 0)
            return 0;
        if (s == 1)
            pos = ms_reader_seek_target(f->reader);
    }
}

static int read_file(const char *prog, run_ctx *rc, tool_file *f, size_t idx,
                     uint8_t *buf, const ms_options *all)
{
    /* This file's format: --format qemu-preempt names the channel files,
     * not the main stream; without --format, a channel file with no magic
     * that starts like one, read after a postcopy main stream, is its
     * preempt channel. */
    size_t need;
    ms_format magic = f->map ? ms_detect(f->map, f->map_len, &need)
                             : MS_FORMAT_AUTO;
    f->opt = *all;
    ms_options *opt = &f->opt;
    if (opt->format == MS_FORMAT_QEMU_PREEMPT &&
        (magic == MS_FORMAT_QEMU_MAIN || magic == MS_FORMAT_LIBVIRT_SAVE))
        opt->format = MS_FORMAT_AUTO;
    else if (opt->format == MS_FORMAT_AUTO && rc->postcopy &&
             magic == MS_FORMAT_UNKNOWN && looks_like_preempt(f))
        opt->format = MS_FORMAT_QEMU_PREEMPT;
    /* Created now, not up front: a multifd channel reader needs the page
     * size the main channel (read first) declared. */
    ms_options o = *opt;
    o.input_seekable = f->seekable;
    o.input_size = f->seekable ? f->size : 0;
    if (!(f->reader = ms_reader_create(&o))) {
        fprintf(stderr, "%s: cannot create a reader (out of memory)\n", prog);
        return -1;
    }
    give_vmdesc(f);
    if (f->vmdesc_bad) {
        file_problem(rc, f, idx);
        return 0;
    }
    if (f->map)
        read_mapped(rc, f, idx);
    else if (read_loop(prog, rc, f, idx, buf) < 0)
        return -1;
    if (f->failed)
        return 0;
    if (ms_reader_finish(f->reader) < 0) {
        file_problem(rc, f, idx);
        return 0;
    }
    f->done = 1;
    lock(rc);
    if (!rc->set_failed && ms_set_channel_done(rc->set, (uint32_t)idx) < 0)
        set_problem(rc);
    unlock(rc);
    return 0;
}

typedef struct worker {
    pthread_t thread;
    const char *prog;
    run_ctx *rc;
    tool_file *f;
    size_t idx;
    ms_options *opt;
    int status;
} worker;

static void *worker_main(void *arg)
{
    worker *w = arg;
    w->status = read_file(w->prog, w->rc, w->f, w->idx, NULL, w->opt);
    lock(w->rc); /* a file that failed before its first event */
    wait_turn(w->rc, w->f);
    end_turn(w->rc, w->f);
    unlock(w->rc);
    return NULL;
}

/* Decode mapped channel files on one thread each; -1 on an I/O error. */
static int read_parallel(const char *prog, run_ctx *rc, tool_file *fs,
                         const size_t *idx, size_t n, ms_options *opt)
{
    worker *ws = calloc(n, sizeof *ws);
    if (!ws)
        return -1;
    rc->threaded = pthread_mutex_init(&rc->lock, NULL) == 0;
    if (rc->threaded && pthread_cond_init(&rc->turn_cv, NULL) != 0) {
        pthread_mutex_destroy(&rc->lock);
        rc->threaded = 0;
    }
    rc->header_turn = 0;
    for (size_t i = 0; i < n; i++) {
        fs[idx[i]].turn = i;
        fs[idx[i]].took_turn = 0;
    }
    size_t started = 0;
    for (; rc->threaded && started < n; started++) {
        worker *w = &ws[started];
        *w = (worker){.prog = prog, .rc = rc, .f = &fs[idx[started]],
                      .idx = idx[started], .opt = opt};
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0)
            break;
    }
    int status = 0;
    for (size_t i = 0; i < started; i++) {
        pthread_join(ws[i].thread, NULL);
        status |= ws[i].status;
    }
    /* what could not get a thread is read here, still under the lock rule
     * (its turn comes: every started file has taken its own) */
    for (size_t i = started; i < n; i++) {
        status |= read_file(prog, rc, &fs[idx[i]], idx[i], NULL, opt);
        lock(rc);
        end_turn(rc, &fs[idx[i]]);
        unlock(rc);
    }
    if (rc->threaded) {
        pthread_cond_destroy(&rc->turn_cv);
        pthread_mutex_destroy(&rc->lock);
    }
    rc->threaded = 0;
    free(ws);
    return status < 0 ? -1 : 0;
}

int tool_run(const char *prog, char *const *files, size_t nfiles,
             ms_options *opt, tool_event_fn on_event,
             tool_problem_fn on_problem, void *ctx)
{
    tool_file *fs = calloc(nfiles, sizeof *fs);
    uint8_t *buf = malloc(READ_SLICE);
    run_ctx rc = {.on_event = on_event, .on_problem = on_problem, .ctx = ctx};
    int status = TOOL_OK, stdin_used = 0;
    if (!fs || !buf) {
        fprintf(stderr, "%s: out of memory\n", prog);
        status = TOOL_USAGE;
        goto out;
    }
    for (size_t i = 0; i < nfiles; i++) {
        fs[i].name = files[i];
        if (strcmp(files[i], "-") == 0 && stdin_used++) {
            fprintf(stderr, "%s: standard input given twice\n", prog);
            status = TOOL_USAGE;
            goto out;
        }
        if (open_file(prog, &fs[i]) < 0) {
            status = TOOL_USAGE;
            goto out;
        }
        /* Mapped files stay valid until the end: the set keeps views of
         * early packets instead of copying them. */
        if (!fs[i].map)
            opt->input_stable = 0;
    }
    rc.set = ms_set_create(opt);
    if (!rc.set) {
        fprintf(stderr, "%s: cannot create readers (out of memory)\n", prog);
        status = TOOL_USAGE;
        goto out;
    }
    /* A QEMU main channel is read before the multifd channels (it holds
     * the page size and the RAM block list they are checked against);
     * otherwise files are read in the order given. */
    size_t *later = calloc(nfiles, sizeof *later), nlater = 0;
    int all_mapped = 1;
    if (!later) {
        fprintf(stderr, "%s: out of memory\n", prog);
        status = TOOL_USAGE;
        goto out;
    }
    for (size_t i = 0; i < nfiles; i++) {
        if (!is_qemu_main(&fs[i])) {
            later[nlater++] = i;
            all_mapped &= fs[i].map != NULL;
        } else if (read_file(prog, &rc, &fs[i], i, buf, opt) < 0) {
            free(later);
            status = TOOL_USAGE;
            goto out;
        }
    }
    if (rc.page_bits)
        opt->qemu_page_size = 1u << rc.page_bits;
    int io_error = 0;
    if (run_parallel && all_mapped && nlater > 1)
        io_error = read_parallel(prog, &rc, fs, later, nlater, opt) < 0;
    else
        for (size_t k = 0; k < nlater && !io_error; k++)
            io_error = read_file(prog, &rc, &fs[later[k]], later[k], buf,
                                 opt) < 0;
    free(later);
    if (io_error) {
        status = TOOL_USAGE;
        goto out;
    }
    int all_done = 1;
    for (size_t i = 0; i < nfiles; i++)
        all_done &= fs[i].done;
    /* Whole-migration checks are only meaningful when every file was read
     * to its end; otherwise the per-file problem already says why not. */
    if (all_done && !rc.set_failed && ms_set_finish(rc.set) < 0)
        set_problem(&rc);
    status = rc.problems ? TOOL_INVALID : TOOL_OK;
out:
    for (size_t i = 0; fs && i < nfiles; i++)
        close_file(&fs[i]);
    ms_set_free(rc.set);
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

static const struct {
    const char *name, *help;
    size_t off;
    int is64;
} limit_opts[] = {
#define LIM(n, h, f, w) {n, h, offsetof(ms_options, f), w}
    LIM("max-record-payload", "largest record payload", max_record_payload, 1),
    LIM("max-buffered-bytes", "out-of-order packet bytes held",
        max_buffered_bytes, 1),
    LIM("max-devices", "devices", max_devices, 0),
    LIM("max-images", "images per device", max_images, 0),
    LIM("max-name-length", "device idstr bytes", max_name_length, 0),
    LIM("max-compat-length", "device compat bytes", max_compat_length, 0),
    LIM("max-channels", "channels", max_channels, 0),
    LIM("max-packets", "packets per image", max_packets, 0),
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
        all[n++] = (struct option){limit_opts[i].name, required_argument, 0,
                                   TOOL_OPT_READER};
    all[n] = (struct option){0, 0, 0, 0};
}

static int set_limit(ms_options *opt, size_t i, const char *value)
{
    uint64_t v;
    if (!value || tool_parse_size(value, &v) < 0 ||
        (!limit_opts[i].is64 && v > UINT32_MAX))
        return -1;
    char *field = (char *)opt + limit_opts[i].off;
    if (limit_opts[i].is64) {
        memcpy(field, &v, sizeof v);
    } else {
        uint32_t v32 = (uint32_t)v;
        memcpy(field, &v32, sizeof v32);
    }
    return 0;
}

int tool_reader_option(const char *prog, ms_options *opt, const char *name,
                       const char *value)
{
    if (strcmp(name, "payload") == 0) { /* the file is one driver's data */
        int kind = strcmp(value, "auto") == 0 ? -1
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
        if (strcmp(name, limit_opts[i].name) == 0) {
            if (set_limit(opt, i, value) == 0)
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
    for (size_t i = 0; i < n_limits; i++)
        fprintf(out, "  --%s=N%*slimit: %s\n", limit_opts[i].name,
                (int)(26 - strlen(limit_opts[i].name)), "",
                limit_opts[i].help);
}

const char *tool_vfio_state_name(uint32_t state)
{
    static const char *const names[] = {
        "ERROR",   "STOP",        "RUNNING",  "STOP_COPY",
        "RESUMING", "RUNNING_P2P", "PRE_COPY", "PRE_COPY_P2P"};
    return state < sizeof names / sizeof names[0] ? names[state] : "?";
}

/* ---- driver payloads inside carriers -------------------------------------- */

typedef struct pl_dev {
    size_t file;        /* where its bytes come from (for problems) */
    char label[256];    /* idstr */
    char key[300];      /* what identifies the device across events */
    ms_reader *r;
    int kind;           /* forced or declared kind, -1: detect */
    int off;            /* not recognised, or failed: no more decoding */
    ms_phase phase;
    uint64_t fed;       /* payload bytes handed in */
    uint64_t last_off;  /* file offset of the chunk being fed */
    int recognised;     /* a payload event came out */
    /* migstream: images are fed in seq order; bytes of a later image that
     * arrive first (its packets through the set, before the home channel
     * is read) wait here */
    uint32_t next_seq;  /* the image being fed */
    struct pl_held {
        uint32_t seq;
        ms_phase phase;
        uint64_t off;
        const uint8_t *data;
        size_t size;
        int owned;      /* a copy (input not mapped), freed when fed */
    } *held;
    size_t nheld, heldcap;
    uint64_t *done;     /* bitmap of completed images (seq) */
    size_t donecap;
    uint8_t *phases;    /* phase of each image seq, from IMAGE_BEGIN */
    size_t phasecap;
} pl_dev;

struct tool_payloads {
    ms_options opt;
    int kind;
    pl_dev *devs;
    size_t n, cap;
    /* per file: format, and QEMU section id -> idstr via VFIO markers */
    struct pl_file {
        ms_format format;
        struct pl_sec {
            uint32_t id;
            char idstr[256];
        } *secs;
        size_t nsecs;
        /* migstream: device handle -> idstr and declared kind */
        struct pl_mdev {
            uint32_t handle, kind;
            char idstr[256];
        } *mdevs;
        size_t nmdevs;
    } *files;
    size_t nfiles;
};

tool_payloads *tool_payloads_new(const ms_options *opt, int kind)
{
    tool_payloads *tp = calloc(1, sizeof *tp);
    if (!tp)
        return NULL;
    tp->opt = *opt;
    tp->opt.format = MS_FORMAT_PAYLOAD;
    tp->opt.payload_final_offset = UINT64_MAX; /* the carrier says */
    tp->opt.input_stable = 0;
    tp->kind = kind;
    return tp;
}

void tool_payloads_free(tool_payloads *tp)
{
    if (!tp)
        return;
    for (size_t i = 0; i < tp->n; i++) {
        pl_dev *d = &tp->devs[i];
        ms_reader_free(d->r);
        for (size_t k = 0; k < d->nheld; k++)
            if (d->held[k].owned)
                free((void *)d->held[k].data);
        free(d->held);
        free(d->done);
        free(d->phases);
    }
    for (size_t i = 0; i < tp->nfiles; i++) {
        free(tp->files[i].secs);
        free(tp->files[i].mdevs);
    }
    free(tp->files);
    free(tp->devs);
    free(tp);
}

static struct pl_file *pl_file(tool_payloads *tp, size_t file)
{
    if (file >= tp->nfiles) {
        struct pl_file *n = realloc(tp->files, (file + 1) * sizeof *n);
        if (!n)
            return NULL;
        memset(n + tp->nfiles, 0, (file + 1 - tp->nfiles) * sizeof *n);
        tp->files = n;
        tp->nfiles = file + 1;
    }
    return &tp->files[file];
}

static pl_dev *pl_device(tool_payloads *tp, size_t file, const char *key,
                         const char *label, int kind)
{
    for (size_t i = 0; i < tp->n; i++)
        if (strcmp(tp->devs[i].key, key) == 0)
            return &tp->devs[i];
    if (tp->n == tp->cap) {
        size_t cap = tp->cap ? tp->cap * 2 : 8;
        pl_dev *n = realloc(tp->devs, cap * sizeof *n);
        if (!n)
            return NULL;
        tp->devs = n;
        tp->cap = cap;
    }
    pl_dev *d = &tp->devs[tp->n++];
    memset(d, 0, sizeof *d);
    d->file = file;
    snprintf(d->key, sizeof d->key, "%s", key);
    snprintf(d->label, sizeof d->label, "%s", label);
    d->kind = tp->kind >= 0 ? tp->kind : kind;
    return d;
}

/* A nested reader failed: "not recognised" ends decoding quietly; any other
 * error is the device's payload breaking its driver's rules. */
static void pl_failed(pl_dev *d, tool_problem_fn on_problem, void *ctx)
{
    const ms_error_info *e = ms_reader_error(d->r);
    d->off = 1;
    /* detecting, nothing recognised yet: not a driver stream we know */
    if (d->kind < 0 && !d->recognised &&
        (e->code == MS_ERR_FORMAT_UNKNOWN || e->code == MS_ERR_TRUNCATED))
        return;
    ms_error_info p = *e;
    p.offset = d->last_off;
    p.has_channel = 0;
    snprintf(p.detail, sizeof p.detail,
             "device %.60s payload byte %llu: %.100s", d->label,
             (unsigned long long)e->offset, e->detail);
    on_problem(ctx, d->file, &p);
}

static void pl_pull(pl_dev *d, tool_nested_fn on_nested,
                    tool_problem_fn on_problem, void *ctx)
{
    ms_event nev;
    int rc;
    while ((rc = ms_reader_next(d->r, &nev)) == MS_NEXT_EVENT) {
        if (nev.kind == MS_EV_STREAM_HEADER)
            continue;
        d->recognised = 1;
        on_nested(ctx, d->file, d->last_off, d->label, &nev);
    }
    if (rc == MS_NEXT_ERROR)
        pl_failed(d, on_problem, ctx);
}

/* Hand device bytes to its payload reader (created on first use). */
static void pl_give(tool_payloads *tp, pl_dev *d, ms_phase phase, uint64_t at,
                    const uint8_t *data, size_t size, tool_nested_fn on_nested,
                    tool_problem_fn on_problem, void *ctx)
{
    if (d->off)
        return;
    if (!d->r) {
        ms_options o = tp->opt;
        o.payload_kind = d->kind;
        if (!(d->r = ms_reader_create(&o))) {
            d->off = 1;
            return;
        }
    }
    if (phase != MS_PHASE_NONE && phase != d->phase) {
        ms_reader_set_phase(d->r, phase);
        d->phase = phase;
    }
    d->last_off = at;
    d->fed += size;
    if (ms_reader_input(d->r, data, size) < 0) {
        pl_failed(d, on_problem, ctx);
        return;
    }
    pl_pull(d, on_nested, on_problem, ctx);
}

/* Bytes of a later image: keep them (a view of mapped input, else a
 * copy) until the images before it are complete. */
static void pl_hold(tool_payloads *tp, pl_dev *d, const ms_data_info *dd)
{
    if (d->nheld == d->heldcap) {
        size_t cap = d->heldcap ? d->heldcap * 2 : 16;
        struct pl_held *n = realloc(d->held, cap * sizeof *n);
        if (!n) {
            d->off = 1;
            return;
        }
        d->held = n;
        d->heldcap = cap;
    }
    struct pl_held *h = &d->held[d->nheld];
    *h = (struct pl_held){dd->seq, dd->phase, dd->stream_offset, dd->data,
                          dd->size, 0};
    if (!(tp->opt.input_stable && dd->zero_copy)) {
        uint8_t *copy = malloc(dd->size);
        if (!copy) {
            d->off = 1;
            return;
        }
        memcpy(copy, dd->data, dd->size);
        h->data = copy;
        h->owned = 1;
    }
    d->nheld++;
}

/* The phase of image `seq` (the set may hand over a packet image before
 * its IMAGE_BEGIN was read, without a phase). */
static ms_phase pl_phase(const pl_dev *d, uint32_t seq, ms_phase given)
{
    if (given != MS_PHASE_NONE || seq >= d->phasecap)
        return given;
    return (ms_phase)d->phases[seq];
}

static int pl_is_done(const pl_dev *d, uint32_t seq)
{
    return (size_t)seq / 64 < d->donecap && (d->done[seq / 64] >> (seq % 64)) & 1;
}

/* Feed what was held for the image due next, once its phase is known (its
 * IMAGE_BEGIN was read); when that image is complete, go on to the next. */
static void pl_flush(tool_payloads *tp, pl_dev *d, tool_nested_fn on_nested,
                     tool_problem_fn on_problem, void *ctx)
{
    for (;;) {
        uint32_t seq = d->next_seq;
        ms_phase phase = pl_phase(d, seq, MS_PHASE_NONE);
        if (phase == MS_PHASE_NONE && !pl_is_done(d, seq))
            return; /* its IMAGE_BEGIN has not been read yet */
        size_t keep = 0;
        for (size_t k = 0; k < d->nheld; k++) {
            struct pl_held *h = &d->held[k];
            if (h->seq == seq) {
                pl_give(tp, d, pl_phase(d, seq, h->phase), h->off, h->data,
                        h->size, on_nested, on_problem, ctx);
                if (h->owned)
                    free((void *)h->data);
            } else {
                d->held[keep++] = *h;
            }
        }
        d->nheld = keep;
        if (!pl_is_done(d, seq))
            return;
        d->next_seq++;
    }
}

/* Image `seq` of a migstream device is complete: move on, feeding what was
 * held for the next images in order. */
static void pl_image_done(tool_payloads *tp, pl_dev *d, uint32_t seq,
                          tool_nested_fn on_nested, tool_problem_fn on_problem,
                          void *ctx)
{
    size_t word = seq / 64;
    if (word >= d->donecap) {
        size_t cap = word + 8;
        uint64_t *n = realloc(d->done, cap * sizeof *n);
        if (!n) {
            d->off = 1;
            return;
        }
        memset(n + d->donecap, 0, (cap - d->donecap) * sizeof *n);
        d->done = n;
        d->donecap = cap;
    }
    d->done[word] |= 1ull << (seq % 64);
    pl_flush(tp, d, on_nested, on_problem, ctx);
}

void tool_payloads_feed(tool_payloads *tp, size_t file, const ms_event *ev,
                        int from_set, tool_nested_fn on_nested,
                        tool_problem_fn on_problem, void *ctx)
{
    struct pl_file *f = pl_file(tp, file);
    if (!f)
        return;
    if (ev->kind == MS_EV_STREAM_HEADER && !from_set) {
        f->format = ev->u.stream.format;
        return;
    }
    if (ev->kind == MS_EV_VFIO_MARKER) { /* QEMU: section id -> idstr */
        for (size_t i = 0; i < f->nsecs; i++)
            if (f->secs[i].id == ev->u.vfio.section_id)
                return;
        struct pl_sec *n = realloc(f->secs, (f->nsecs + 1) * sizeof *n);
        if (!n)
            return;
        f->secs = n;
        n[f->nsecs].id = ev->u.vfio.section_id;
        snprintf(n[f->nsecs++].idstr, 256, "%s", ev->u.vfio.idstr);
        return;
    }
    if (ev->kind == MS_EV_DEVICE && !from_set) { /* migstream */
        struct pl_mdev *n = realloc(f->mdevs, (f->nmdevs + 1) * sizeof *n);
        if (!n)
            return;
        f->mdevs = n;
        n[f->nmdevs].handle = ev->u.device.handle;
        n[f->nmdevs].kind = ev->u.device.payload_kind;
        snprintf(n[f->nmdevs++].idstr, 256, "%s", ev->u.device.idstr);
        return;
    }
    if (ev->kind == MS_EV_IMAGE_BEGIN && !from_set &&
        f->format == MS_FORMAT_MIGSTREAM) { /* remember the image's phase */
        for (size_t i = 0; i < f->nmdevs; i++) {
            if (f->mdevs[i].handle != ev->u.image.device)
                continue;
            char key[300];
            snprintf(key, sizeof key, "%s#%u", f->mdevs[i].idstr, 0u);
            pl_dev *d = pl_device(tp, file, key, f->mdevs[i].idstr,
                                  (int)f->mdevs[i].kind);
            uint32_t seq = ev->u.image.seq;
            if (d && seq >= d->phasecap) {
                size_t cap = (size_t)seq + 16;
                uint8_t *n = realloc(d->phases, cap);
                if (!n)
                    return;
                memset(n + d->phasecap, 0, cap - d->phasecap);
                d->phases = n;
                d->phasecap = cap;
            }
            if (d) {
                d->phases[seq] = (uint8_t)ev->u.image.phase;
                pl_flush(tp, d, on_nested, on_problem, ctx);
            }
        }
        return;
    }
    if ((ev->kind == MS_EV_IMAGE_END && !from_set &&
         ev->u.image.transport == MS_TRANSPORT_CHUNKS &&
         f->format == MS_FORMAT_MIGSTREAM) ||
        (ev->kind == MS_EV_IMAGE_ASSEMBLED && from_set &&
         !(ev->u.image.device & 0x80000000u))) {
        /* a migstream image is complete (chunks: its end record; packets:
         * reassembled); images of a device are fed in seq order */
        const char *label = NULL;
        int kind = -1;
        for (size_t k = 0; k < tp->nfiles && !label; k++)
            for (size_t i = 0; i < tp->files[k].nmdevs; i++)
                if (tp->files[k].mdevs[i].handle == ev->u.image.device) {
                    label = tp->files[k].mdevs[i].idstr;
                    kind = (int)tp->files[k].mdevs[i].kind;
                    break;
                }
        if (!label || (kind == MS_PAYLOAD_RAW && tp->kind < 0))
            return;
        char key[300];
        snprintf(key, sizeof key, "%s#%u", label, 0u);
        pl_dev *d = pl_device(tp, file, key, label, kind);
        if (d)
            pl_image_done(tp, d, ev->u.image.seq, on_nested, on_problem, ctx);
        return;
    }
    if (ev->kind != MS_EV_DATA || ev->u.data.config || !ev->u.data.size)
        return;
    const ms_data_info *dd = &ev->u.data;
    char key[300];
    const char *label = NULL;
    int kind = -1;
    if (dd->in_packet && !from_set)
        return; /* packets count once they are reassembled, in order */
    if (f->format == MS_FORMAT_QEMU_MAIN || f->format == MS_FORMAT_LIBVIRT_SAVE)
        for (size_t i = 0; i < f->nsecs && !label; i++)
            if (f->secs[i].id == dd->device)
                label = f->secs[i].idstr;
    if (from_set && dd->idstr)
        label = dd->idstr;
    if (f->format == MS_FORMAT_MIGSTREAM)
        for (size_t i = 0; i < f->nmdevs; i++)
            if (f->mdevs[i].handle == dd->device) {
                label = f->mdevs[i].idstr;
                kind = (int)f->mdevs[i].kind;
            }
    /* raw: the device declared it has no driver framing to decode */
    if (!label || (kind == MS_PAYLOAD_RAW && tp->kind < 0))
        return;
    snprintf(key, sizeof key, "%s#%u", label,
             f->format == MS_FORMAT_MIGSTREAM ? 0u : dd->instance_id);
    pl_dev *d = pl_device(tp, file, key, label, kind);
    if (!d || d->off)
        return;
    if (f->format == MS_FORMAT_MIGSTREAM &&
        (dd->seq != d->next_seq ||
         pl_phase(d, dd->seq, dd->phase) == MS_PHASE_NONE)) {
        pl_hold(tp, d, dd);
        return;
    }
    pl_give(tp, d, pl_phase(d, dd->seq, dd->phase), dd->stream_offset,
            dd->data, dd->size, on_nested, on_problem, ctx);
}

void tool_payloads_finish(tool_payloads *tp, tool_nested_fn on_nested,
                          tool_problem_fn on_problem, void *ctx)
{
    for (size_t i = 0; i < tp->n; i++) {
        pl_dev *d = &tp->devs[i];
        if (d->off || !d->r)
            continue;
        /* events all came out as input ran out; finish only checks the
         * payload did not stop inside a record */
        if (ms_reader_finish(d->r) < 0)
            pl_failed(d, on_problem, ctx);
    }
    (void)on_nested;
}

/* ---- the command line every reading tool shares -------------------------- */

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
    if (n + 3 > TOOL_LONG_OPTIONS_MAX)
        abort(); /* a tool declares too many options: raise the max */
    memcpy(mine, own, n * sizeof *mine);
    mine[n++] = (struct option){"help", no_argument, 0, 'h'};
    mine[n++] = (struct option){"version", no_argument, 0, 'V'};
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
    }
    return TOOL_GO_ON;
}
