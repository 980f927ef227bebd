/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* migstream-archive: a capture set (QEMU main stream, multifd channels,
 * return paths, raw captures, a manifest) in one migstream 2.1 file that
 * keeps every original byte stream, labelled and checked
 * (spec/migstream.md 5.10-5.13), and back.
 *
 *   -o OUT FILES...|DIR   files -> STREAM_BEGIN / STREAM_DATA* / STREAM_END
 *                         each, then the decoded summary (summary.jsonl)
 *   --unpack DIR ARCHIVE  verify the whole archive first, then restore each
 *                         capture file and the manifest byte for byte
 *   --list ARCHIVE        verify, one line per embedded stream */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "archive_input.h"
#include "tool_common.h"

#define PROG "migstream-archive"
#define SLICE ((size_t)1 << 20)
#define SUMMARY_NAME "summary.jsonl"
#define MANIFEST_NAME "manifest.json"

/* ---- inputs and their labels ----------------------------------------------
 */

typedef struct input {
    char *path;
    const char *name; /* base name: the stream's name */
    ms_archive_role role;
    ms_archive_direction direction;
    uint32_t connection;
    ms_format format;
    uint64_t size;
} input;

/* Labels from the name: connN.s2d / connN.bin (source to destination),
 * connN.d2s (destination to source), manifest.json; others: none. */
static void label_from_name(input *in)
{
    const char *n = in->name;
    in->role = strcmp(n, MANIFEST_NAME) == 0 ? MS_ARCHIVE_MANIFEST
                                             : MS_ARCHIVE_CAPTURE;
    in->direction = MS_ARCHIVE_DIR_NONE;
    in->connection = MS_ARCHIVE_NO_CONNECTION;
    char *end;
    if (strncmp(n, "conn", 4) != 0 || n[4] < '0' || n[4] > '9')
        return;
    unsigned long c = strtoul(n + 4, &end, 10);
    if (c >= MS_ARCHIVE_NO_CONNECTION)
        return;
    if (strcmp(end, ".s2d") == 0 || strcmp(end, ".bin") == 0)
        in->direction = MS_ARCHIVE_DIR_S2D;
    else if (strcmp(end, ".d2s") == 0)
        in->direction = MS_ARCHIVE_DIR_D2S;
    else
        return;
    in->connection = (uint32_t)c;
}

/* The format ms_detect sees in the first bytes; the size. */
static int probe(input *in)
{
    int fd = open(in->path, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        fprintf(stderr, "%s: %s: %s\n", PROG, in->path,
                fd < 0 || errno ? strerror(errno) : "not a regular file");
        if (fd >= 0)
            close(fd);
        return -1;
    }
    uint8_t head[4096];
    ssize_t n = pread(fd, head, sizeof head, 0);
    close(fd);
    size_t need;
    in->size = (uint64_t)st.st_size;
    in->format = in->role == MS_ARCHIVE_MANIFEST || n <= 0
                     ? MS_FORMAT_UNKNOWN
                     : ms_detect(head, (size_t)n, &need);
    if (in->format == MS_FORMAT_AUTO)
        in->format = MS_FORMAT_UNKNOWN;
    return 0;
}

/* A capture directory holds these: connN.{s2d,d2s,bin}, *.mig, and the
 * manifest; READMEs, logs and ground truth beside them are not captured
 * bytes. */
static int capture_file(const char *n)
{
    size_t len = strlen(n);
    input probe_in = {.name = n};
    label_from_name(&probe_in);
    return probe_in.connection != MS_ARCHIVE_NO_CONNECTION ||
           strcmp(n, MANIFEST_NAME) == 0 ||
           (len > 4 && strcmp(n + len - 4, ".mig") == 0);
}

/* Order: connections by number (s2d before d2s), then other captures by
 * name, the manifest last. */
static int input_order(const void *a, const void *b)
{
    const input *x = a, *y = b;
    if (x->role != y->role)
        return x->role < y->role ? -1 : 1;
    if (x->connection != y->connection)
        return x->connection < y->connection ? -1 : 1;
    if (x->direction != y->direction) /* s2d before d2s */
        return x->direction < y->direction ? -1 : 1;
    return strcmp(x->name, y->name);
}

static char *join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static int add_input(input **ins, size_t *n, char *path)
{
    input *grown = realloc(*ins, (*n + 1) * sizeof **ins);
    if (!grown || !path) {
        free(path);
        fprintf(stderr, "%s: out of memory\n", PROG);
        return -1;
    }
    *ins = grown;
    input *in = &grown[(*n)++];
    memset(in, 0, sizeof *in);
    in->path = path;
    const char *slash = strrchr(path, '/');
    in->name = slash ? slash + 1 : path;
    label_from_name(in);
    return probe(in);
}

static int gather(char *const *args, size_t nargs, input **ins, size_t *n)
{
    struct stat st;
    if (nargs == 1 && stat(args[0], &st) == 0 && S_ISDIR(st.st_mode)) {
        DIR *d = opendir(args[0]);
        if (!d) {
            fprintf(stderr, "%s: %s: %s\n", PROG, args[0], strerror(errno));
            return -1;
        }
        struct dirent *e;
        int rc = 0;
        while (rc == 0 && (e = readdir(d)) != NULL)
            if (capture_file(e->d_name))
                rc = add_input(ins, n, join(args[0], e->d_name));
        closedir(d);
        if (rc < 0)
            return -1;
    } else {
        for (size_t i = 0; i < nargs; i++)
            if (add_input(ins, n, strdup(args[i])) < 0)
                return -1;
    }
    if (*n == 0) {
        fprintf(stderr, "%s: no capture files in %s\n", PROG, args[0]);
        return -1;
    }
    qsort(*ins, *n, sizeof **ins, input_order);
    for (size_t i = 1; i < *n; i++)
        if (strcmp((*ins)[i].name, (*ins)[i - 1].name) == 0) {
            fprintf(stderr, "%s: two files named %s\n", PROG, (*ins)[i].name);
            return -1;
        }
    return 0;
}

/* ---- the summary (spec 5.13) ------------------------------------------------
 */

typedef struct sdevice {
    char *idstr;
    uint32_t instance;
    uint64_t phases[4]; /* initial, middle, final, full */
    uint64_t bytes;
} sdevice;

typedef struct summary {
    sdevice *devs;
    size_t n;
    uint64_t problems;
    uint32_t qemu_instance[65536]; /* section id -> device index + 1 */
    int oom;
} summary;

static sdevice *summary_device(summary *s, const char *idstr, uint32_t instance)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->devs[i].instance == instance &&
            strcmp(s->devs[i].idstr, idstr) == 0)
            return &s->devs[i];
    sdevice *grown = realloc(s->devs, (s->n + 1) * sizeof *grown);
    char *copy = strdup(idstr);
    if (!grown || !copy) {
        s->oom = 1;
        free(copy);
        if (grown)
            s->devs = grown;
        return NULL;
    }
    s->devs = grown;
    sdevice *d = &grown[s->n++];
    memset(d, 0, sizeof *d);
    d->idstr = copy;
    d->instance = instance;
    return d;
}

/* QEMU sections: START / PART / END / FULL count as initial, middle, final
 * and full images, their bytes by the section's length (footer events);
 * migstream images by phase, bytes by IMAGE_END. */
static void summary_event(void *ctx, const ms_event *ev,
                          const ms_event_origin *o)
{
    summary *s = ctx;
    (void)o;
    if (ev->kind == MS_EV_SECTION && ev->u.section.idstr) {
        const ms_section_info *si = &ev->u.section;
        sdevice *d = summary_device(s, si->idstr, si->instance_id);
        if (!d)
            return;
        if (si->section_id < 65536)
            s->qemu_instance[si->section_id] = (uint32_t)(d - s->devs) + 1;
        if (si->type >= MS_QSEC_START && si->type <= MS_QSEC_FULL)
            d->phases[si->type - MS_QSEC_START]++;
    } else if (ev->kind == MS_EV_SECTION_FOOTER &&
               ev->u.section.section_id < 65536 &&
               s->qemu_instance[ev->u.section.section_id]) {
        s->devs[s->qemu_instance[ev->u.section.section_id] - 1].bytes +=
            ev->length;
    } else if (ev->kind == MS_EV_DEVICE) {
        summary_device(s, ev->u.device.idstr, ev->u.device.handle);
    } else if (ev->kind == MS_EV_IMAGE_END && ev->u.image.phase >= 1 &&
               ev->u.image.phase <= 3) {
        for (size_t i = 0; i < s->n; i++)
            if (s->devs[i].instance == ev->u.image.device) {
                s->devs[i].phases[ev->u.image.phase - 1]++;
                s->devs[i].bytes += ev->u.image.length;
            }
    }
}

static void summary_problem(void *ctx, size_t file, const ms_error_info *e)
{
    (void)file;
    (void)e;
    ((summary *)ctx)->problems++;
}

/* Decode the capture files as the tools would and write the summary's
 * JSON lines into a memory stream. */
static int make_summary(const input *ins, size_t n, char **text, size_t *len)
{
    summary *s = calloc(1, sizeof *s);
    char **files = calloc(n, sizeof *files);
    size_t nfiles = 0;
    FILE *out = s && files ? open_memstream(text, len) : NULL;
    if (!out) {
        free(s);
        free(files);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        if (ins[i].role == MS_ARCHIVE_CAPTURE)
            files[nfiles++] = ins[i].path;
    ms_options opt;
    ms_options_init(&opt);
    tool_run_progress(0);
    int rc = nfiles ? tool_run(PROG, files, nfiles, &opt, summary_event,
                               summary_problem, s)
                    : TOOL_OK;
    static const char *const phase[4] = {"initial", "middle", "final", "full"};
    fprintf(out,
            "{\"summary\":\"1\",\"verdict\":\"%s\",\"problems\":\"%llu\","
            "\"files\":[",
            rc == TOOL_OK && !s->problems ? "valid" : "invalid",
            (unsigned long long)s->problems);
    for (size_t i = 0; i < nfiles; i++) {
        fputs(i ? "," : "", out);
        const char *slash = strrchr(files[i], '/');
        const char *base = slash ? slash + 1 : files[i];
        tool_json_string(out, base, strlen(base));
    }
    fputs("]}\n", out);
    for (size_t i = 0; i < s->n; i++) {
        sdevice *d = &s->devs[i];
        fputs("{\"device\":", out);
        tool_json_string(out, d->idstr, strlen(d->idstr));
        fprintf(out, ",\"instance\":\"%u\"", d->instance);
        for (int k = 0; k < 4; k++)
            fprintf(out, ",\"%s\":\"%llu\"", phase[k],
                    (unsigned long long)d->phases[k]);
        fprintf(out, ",\"bytes\":\"%llu\"}\n", (unsigned long long)d->bytes);
        free(d->idstr);
    }
    int bad = s->oom;
    free(s->devs);
    free(s);
    free(files);
    return fclose(out) != 0 || bad ? -1 : 0;
}

/* ---- writing ----------------------------------------------------------------
 */

static int to_file(void *opaque, const void *buf, size_t len)
{
    return fwrite(buf, 1, len, opaque) == len ? 0 : -1;
}

static int writer_failed(ms_writer *w)
{
    fprintf(stderr, "%s: %s\n", PROG, ms_writer_error(w)->detail);
    return -1;
}

/* One file as one embedded stream. */
static int put_file(ms_writer *w, const input *in, uint8_t *buf)
{
    int fd = open(in->path, O_RDONLY);
    if (fd < 0) {
        fprintf(stderr, "%s: %s: %s\n", PROG, in->path, strerror(errno));
        return -1;
    }
    uint32_t id;
    int rc =
        ms_writer_stream_begin(w, 0, in->role, in->direction, in->connection,
                               in->format, in->name, in->size, &id);
    ssize_t n = 0;
    while (rc == 0 && (n = read(fd, buf, SLICE)) > 0)
        rc = ms_writer_stream_data(w, 0, id, buf, (size_t)n);
    if (n < 0)
        fprintf(stderr, "%s: %s: %s\n", PROG, in->path, strerror(errno));
    close(fd);
    if (rc < 0)
        return writer_failed(w);
    if (n < 0 || ms_writer_stream_end(w, 0, id) < 0)
        return n < 0 ? -1 : writer_failed(w);
    return 0;
}

static int put_summary(ms_writer *w, const input *ins, size_t n)
{
    char *text = NULL;
    size_t len = 0;
    if (make_summary(ins, n, &text, &len) < 0) {
        free(text);
        fprintf(stderr, "%s: summary: out of memory\n", PROG);
        return -1;
    }
    uint32_t id;
    int rc = ms_writer_stream_begin(
        w, 0, MS_ARCHIVE_SUMMARY, MS_ARCHIVE_DIR_NONE, MS_ARCHIVE_NO_CONNECTION,
        MS_FORMAT_UNKNOWN, SUMMARY_NAME, len, &id);
    if (rc == 0)
        rc = ms_writer_stream_data(w, 0, id, text, len);
    if (rc == 0)
        rc = ms_writer_stream_end(w, 0, id);
    free(text);
    return rc < 0 ? writer_failed(w) : 0;
}

/* A random UUID for the archive (spec 3: identifies it). */
static void new_uuid(uint8_t uuid[16])
{
    int fd = open("/dev/urandom", O_RDONLY);
    if (fd < 0 || read(fd, uuid, 16) != 16) { /* unlikely: time and pid */
        uint64_t t = (uint64_t)time(NULL), p = (uint64_t)getpid();
        memcpy(uuid, &t, 8);
        memcpy(uuid + 8, &p, 8);
    }
    if (fd >= 0)
        close(fd);
}

static int pack(const char *out_path, char *const *args, size_t nargs)
{
    input *ins = NULL;
    size_t n = 0;
    int status = TOOL_USAGE;
    FILE *out = NULL;
    ms_writer *w = NULL;
    uint8_t *buf = malloc(SLICE);
    if (!buf || gather(args, nargs, &ins, &n) < 0)
        goto done;
    for (size_t i = 0; i < n; i++)
        if (strcmp(ins[i].name, SUMMARY_NAME) == 0) {
            fprintf(stderr, "%s: %s is the name of the summary\n", PROG,
                    SUMMARY_NAME);
            goto done;
        }
    if (!(out = fopen(out_path, "wb"))) {
        fprintf(stderr, "%s: %s: %s\n", PROG, out_path, strerror(errno));
        goto done;
    }
    ms_writer_options wo;
    ms_writer_options_init(&wo);
    wo.archive = 1;
    new_uuid(wo.uuid);
    wo.created_ns = (uint64_t)time(NULL) * 1000000000u;
    if (!(w = ms_writer_create(&wo)) ||
        ms_writer_open_channel(w, 0, to_file, out) < 0) {
        writer_failed(w);
        goto done;
    }
    for (size_t i = 0; i < n; i++)
        if (put_file(w, &ins[i], buf) < 0)
            goto done;
    if (put_summary(w, ins, n) < 0 || ms_writer_close_channel(w, 0, 0) < 0)
        goto done;
    status = TOOL_OK;
done:
    if (out && (fclose(out) != 0 || status != TOOL_OK)) {
        status = TOOL_USAGE;
        unlink(out_path); /* no half archive left behind */
    }
    ms_writer_free(w);
    for (size_t i = 0; i < n; i++)
        free(ins[i].path);
    free(ins);
    free(buf);
    return status;
}

/* ---- reading: --list and --unpack -----------------------------------------
 */

typedef struct unpacker {
    const char *dir; /* NULL: only check (and list) */
    int list;
    int *fds; /* per stream id: the file being restored, or -1 */
    size_t nfds;
    int failed;
} unpacker;

/* --list: "ID ROLE NAME conn=N|- dir=s2d|d2s|- format=F bytes=N xxh3=H" */
static void list_line(const ms_archive_info *a)
{
    char conn[16] = "-";
    if (a->connection != MS_ARCHIVE_NO_CONNECTION)
        snprintf(conn, sizeof conn, "%u", a->connection);
    printf("%u %s %s conn=%s dir=%s format=%s bytes=%llu xxh3=%016llx\n",
           a->stream, archive_role_name(a->role), a->name, conn,
           archive_direction_name(a->direction), ms_format_name(a->format),
           (unsigned long long)a->length, (unsigned long long)a->hash);
}

static int restore_begin(unpacker *u, const ms_archive_info *a)
{
    if (a->stream >= u->nfds) {
        int *grown = realloc(u->fds, (a->stream + 1) * sizeof *grown);
        if (!grown)
            return -1;
        for (size_t i = u->nfds; i <= a->stream; i++)
            grown[i] = -1;
        u->fds = grown;
        u->nfds = a->stream + 1;
    }
    if (a->role == MS_ARCHIVE_SUMMARY) /* not a file of the capture */
        return 0;
    char *path = join(u->dir, a->name);
    int fd = path ? open(path, O_WRONLY | O_CREAT | O_EXCL, 0644) : -1;
    if (fd < 0)
        fprintf(stderr, "%s: %s: %s\n", PROG, path ? path : a->name,
                strerror(errno));
    free(path);
    u->fds[a->stream] = fd;
    return fd < 0 ? -1 : 0;
}

static int restore_event(unpacker *u, const ms_event *ev)
{
    const ms_archive_info *a = &ev->u.archive;
    int fd = a->stream < u->nfds ? u->fds[a->stream] : -1;
    switch (ev->kind) {
    case MS_EV_ARCHIVE_BEGIN:
        return u->dir ? restore_begin(u, a) : 0;
    case MS_EV_ARCHIVE_DATA:
        if (fd >= 0 && write(fd, a->data, a->size) != (ssize_t)a->size) {
            fprintf(stderr, "%s: %s: %s\n", PROG, a->name, strerror(errno));
            return -1;
        }
        return 0;
    case MS_EV_ARCHIVE_END:
        if (u->list)
            list_line(a);
        if (fd >= 0 && close(fd) != 0)
            return -1;
        if (fd >= 0)
            u->fds[a->stream] = -1;
        return 0;
    default:
        return 0;
    }
}

/* Read the archive through a reader: every check; `u` restores or lists.
 * 0, or -1 after printing the problem. */
static int read_archive(const char *path, unpacker *u)
{
    int fd = open(path, O_RDONLY);
    uint8_t *buf = malloc(SLICE);
    ms_reader *r = NULL;
    int rc = -1;
    if (fd < 0 || !buf) {
        fprintf(stderr, "%s: %s: %s\n", PROG, path, strerror(errno));
        goto out;
    }
    ms_options opt;
    ms_options_init(&opt);
    opt.format = MS_FORMAT_MIGSTREAM;
    if (!(r = ms_reader_create(&opt)))
        goto out;
    int started = 0, next = MS_NEXT_INPUT;
    ssize_t n;
    ms_event ev;
    while (next == MS_NEXT_INPUT && (n = read(fd, buf, SLICE)) > 0) {
        ms_reader_input(r, buf, (size_t)n);
        while ((next = ms_reader_next(r, &ev)) == MS_NEXT_EVENT) {
            if (ev.kind == MS_EV_STREAM_HEADER)
                started = (ev.u.stream.header_flags & MS_HEADER_ARCHIVE) != 0;
            if (!started) {
                fprintf(stderr, "%s: %s: not a migstream archive\n", PROG,
                        path);
                goto out;
            }
            if (restore_event(u, &ev) < 0)
                goto out;
        }
    }
    if (next == MS_NEXT_INPUT && ms_reader_finish(r) == 0) {
        rc = 0;
        goto out;
    }
    tool_print_problem(stderr, path, ms_reader_error(r));
out:
    ms_reader_free(r);
    free(buf);
    if (fd >= 0)
        close(fd);
    return rc;
}

/* Check everything first, then restore: nothing is written from an
 * archive that fails a check. */
static int unpack(const char *dir, const char *archive)
{
    unpacker check = {0};
    if (read_archive(archive, &check) < 0) {
        fprintf(stderr, "%s: %s: refusing to unpack a damaged archive\n", PROG,
                archive);
        return TOOL_INVALID;
    }
    if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
        fprintf(stderr, "%s: %s: %s\n", PROG, dir, strerror(errno));
        return TOOL_USAGE;
    }
    unpacker u = {.dir = dir};
    int rc = read_archive(archive, &u);
    for (size_t i = 0; i < u.nfds; i++)
        if (u.fds[i] >= 0)
            close(u.fds[i]);
    free(u.fds);
    return rc < 0 ? TOOL_INVALID : TOOL_OK;
}

/* ---- command line
 * ------------------------------------------------------------ */

static void usage(FILE *f)
{
    fputs("usage: " PROG " -o OUT.mig FILES...|DIR\n"
          "       " PROG " --unpack DIR ARCHIVE\n"
          "       " PROG " --list ARCHIVE\n"
          "Keeps a capture's files (connN.s2d, connN.d2s, connN.bin, *.mig,\n"
          "manifest.json) byte for byte in one migstream 2.1 archive, with a\n"
          "decoded summary; dump, verify and extract read the archive as the\n"
          "original files.\n"
          "  -o, --output FILE  write the archive to FILE\n"
          "  --unpack DIR       restore the files into DIR (checked first;\n"
          "                     existing files are not overwritten)\n"
          "  --list             check the archive and list its streams\n"
          "  -h, --help         this help\n"
          "  -V, --version      the version\n",
          f);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"output", required_argument, NULL, 'o'},
        {"unpack", required_argument, NULL, 'u'},
        {"list", no_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0}};
    const char *out = NULL, *dir = NULL;
    int list = 0, c;
    while ((c = getopt_long(argc, argv, "o:hV", opts, NULL)) != -1) {
        switch (c) {
        case 'o':
            out = optarg;
            break;
        case 'u':
            dir = optarg;
            break;
        case 'l':
            list = 1;
            break;
        case 'h':
            usage(stdout);
            return TOOL_OK;
        case 'V':
            printf("%s %s\n", PROG, ms_version_string());
            return TOOL_OK;
        default:
            usage(stderr);
            return TOOL_USAGE;
        }
    }
    int modes = (out != NULL) + (dir != NULL) + list;
    size_t nargs = (size_t)(argc - optind);
    if (modes != 1 || nargs == 0 || ((dir || list) && nargs != 1)) {
        usage(stderr);
        return TOOL_USAGE;
    }
    if (out)
        return pack(out, argv + optind, nargs);
    if (dir)
        return unpack(dir, argv[optind]);
    unpacker u = {.list = 1};
    return read_archive(argv[optind], &u) < 0 ? TOOL_INVALID : TOOL_OK;
}
