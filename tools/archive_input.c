/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* Archives as inputs of the reading tools (archive_input.h).
 *
 *   expand:  archive file --mmap--> reader --ARCHIVE_DATA events--> extents
 *            (stream offset, archive offset, length) per capture stream
 *   tool_run: stream "A[NAME]" at pos --binary search--> view of the map
 *
 * The tools' state lives here (a tool is one process): the archives
 * mapped, their streams and the expanded file list. */
#include "archive_input.h"

#include "tool_common.h" /* tool_json_string */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct extent {
    uint64_t stream_off, archive_off, len;
} extent;

struct archive_stream {
    char *entry; /* "ARCHIVE[NAME]" */
    const uint8_t *map;
    ms_format format;
    ms_archive_direction direction;
    uint32_t connection; /* N of connN, or MS_ARCHIVE_NO_CONNECTION */
    uint64_t length;
    extent *ext;
    size_t next, cap;
};

typedef struct archive {
    char *path;
    uint8_t *map;
    size_t len;
} archive;

static archive *g_archives;
static size_t g_narchives;
static archive_stream **g_streams;
static size_t g_nstreams;
static char **g_files;

/* A migstream 2.1 header with the ARCHIVE flag? */
static int is_archive(const uint8_t *p, size_t len)
{
    static const uint8_t magic[8] = {0x8D, 'M',  'I',  'G',
                                     '\r', '\n', 0x1A, '\n'};
    return len >= 64 && memcmp(p, magic, 8) == 0 && p[8] == 2 && p[9] == 0 &&
           (p[10] | p[11] << 8) >= 1 && (p[12] & MS_HEADER_ARCHIVE);
}

static int add_extent(archive_stream *s, const ms_event *ev)
{
    const ms_archive_info *a = &ev->u.archive;
    extent *last = s->next ? &s->ext[s->next - 1] : NULL;
    if (last && last->archive_off + last->len == ev->offset &&
        last->stream_off + last->len == a->offset) {
        last->len += a->size;
    } else {
        if (s->next == s->cap) {
            size_t cap = s->cap ? 2 * s->cap : 64;
            extent *grown = realloc(s->ext, cap * sizeof *grown);
            if (!grown)
                return -1;
            s->ext = grown;
            s->cap = cap;
        }
        s->ext[s->next++] = (extent){a->offset, ev->offset, a->size};
    }
    s->length = a->offset + a->size;
    return 0;
}

static archive_stream *new_stream(const archive *ar, const ms_archive_info *a)
{
    archive_stream **grown =
        realloc(g_streams, (g_nstreams + 1) * sizeof *grown);
    archive_stream *s = calloc(1, sizeof *s);
    size_t n = strlen(ar->path) + a->name_len + 3;
    char *entry = malloc(n);
    if (!grown || !s || !entry) {
        if (grown)
            g_streams = grown;
        free(s);
        free(entry);
        return NULL;
    }
    snprintf(entry, n, "%s[%s]", ar->path, a->name);
    g_streams = grown;
    s->entry = entry;
    s->map = ar->map;
    s->format = a->format;
    s->direction = a->direction;
    s->connection = a->connection;
    g_streams[g_nstreams++] = s;
    return s;
}

/* Index the archive's capture streams (what verifies of them: a damaged
 * archive still gives the bytes before the damage, and the archive entry
 * reports the damage). */
static int index_archive(const archive *ar, archive_stream ***mine,
                         size_t *nmine)
{
    ms_options opt;
    ms_options_init(&opt);
    opt.format = MS_FORMAT_MIGSTREAM;
    ms_reader *r = ms_reader_create(&opt);
    archive_stream **by_id = NULL;
    size_t nids = 0;
    int rc = r ? 0 : -1;
    ms_event ev;
    if (r)
        ms_reader_input(r, ar->map, ar->len);
    while (rc == 0 && ms_reader_next(r, &ev) == MS_NEXT_EVENT) {
        const ms_archive_info *a = &ev.u.archive;
        if (ev.kind == MS_EV_ARCHIVE_BEGIN && a->role == MS_ARCHIVE_CAPTURE) {
            archive_stream **g = realloc(by_id, (a->stream + 1) * sizeof *g);
            if (!g) {
                rc = -1;
                break;
            }
            by_id = g;
            while (nids <= a->stream)
                by_id[nids++] = NULL;
            if (!(by_id[a->stream] = new_stream(ar, a)))
                rc = -1;
        } else if (ev.kind == MS_EV_ARCHIVE_DATA && a->stream < nids &&
                   by_id[a->stream]) {
            rc = add_extent(by_id[a->stream], &ev);
        }
    }
    ms_reader_free(r);
    *nmine = 0;
    for (size_t i = 0; i < nids; i++)
        if (by_id[i])
            by_id[(*nmine)++] = by_id[i];
    *mine = by_id;
    return rc;
}

/* Map `path` if it is an archive: 1 (added to g_archives), 0 if not. */
static int map_archive(const char *prog, const char *path)
{
    int fd = strcmp(path, "-") == 0 ? -1 : open(path, O_RDONLY);
    struct stat st;
    uint8_t head[64];
    int rc = 0;
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
        pread(fd, head, sizeof head, 0) != (ssize_t)sizeof head ||
        !is_archive(head, sizeof head))
        goto out; /* not an archive: tool_run opens (or reports) it */
    archive *grown = realloc(g_archives, (g_narchives + 1) * sizeof *grown);
    void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (!grown || m == MAP_FAILED) {
        fprintf(stderr, "%s: %s: %s\n", prog, path,
                grown ? strerror(errno) : "out of memory");
        if (grown)
            g_archives = grown;
        if (m != MAP_FAILED)
            munmap(m, (size_t)st.st_size);
        rc = -1;
        goto out;
    }
    g_archives = grown;
    g_archives[g_narchives++] = (archive){strdup(path), m, (size_t)st.st_size};
    rc = 1;
out:
    if (fd >= 0)
        close(fd);
    return rc;
}

int archive_input_expand(const char *prog, char *const **files, size_t *n)
{
    size_t count = 0, cap = *n + 1;
    char **out = malloc(cap * sizeof *out);
    if (!out)
        return -1;
    for (size_t i = 0; i < *n; i++) {
        const char *f = (*files)[i];
        int is = map_archive(prog, f);
        archive_stream **mine = NULL;
        size_t nmine = 0;
        if (is < 0 || (is && index_archive(&g_archives[g_narchives - 1], &mine,
                                           &nmine) < 0)) {
            free(mine);
            free(out);
            fprintf(stderr, "%s: %s: out of memory\n", prog, f);
            return -1;
        }
        char **grown = realloc(out, (cap += nmine) * sizeof *out);
        if (!grown) {
            free(mine);
            free(out);
            return -1;
        }
        out = grown;
        out[count++] = is ? g_archives[g_narchives - 1].path : (char *)f;
        for (size_t k = 0; k < nmine; k++)
            out[count++] = mine[k]->entry;
        free(mine);
    }
    if (g_narchives == 0) {
        free(out);
        return 0; /* no archive: the list stays the caller's */
    }
    g_files = out;
    *files = out;
    *n = count;
    return 0;
}

int archive_input_lookup(const char *name, const archive_stream **stream)
{
    for (size_t i = 0; i < g_nstreams; i++)
        if (name == g_streams[i]->entry) {
            *stream = g_streams[i];
            return 1;
        }
    for (size_t i = 0; i < g_narchives; i++)
        if (name == g_archives[i].path)
            return 2;
    return 0;
}

uint64_t archive_input_size(const archive_stream *s)
{
    return s->length;
}
ms_format archive_input_format(const archive_stream *s)
{
    return s->format;
}
ms_archive_direction archive_input_direction(const archive_stream *s)
{
    return s->direction;
}
uint32_t archive_input_connection(const archive_stream *s)
{
    return s->connection;
}

size_t archive_input_view(const archive_stream *s, uint64_t pos, size_t max,
                          const uint8_t **at)
{
    size_t lo = 0, hi = s->next;
    while (lo < hi) { /* the extent holding pos */
        size_t mid = lo + (hi - lo) / 2;
        if (s->ext[mid].stream_off + s->ext[mid].len <= pos)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == s->next || s->ext[lo].stream_off > pos)
        return 0;
    const extent *e = &s->ext[lo];
    uint64_t left = e->len - (pos - e->stream_off);
    *at = s->map + e->archive_off + (pos - e->stream_off);
    return left < max ? (size_t)left : max;
}

void archive_input_read(const char *name, uint32_t slot, const ms_options *opt,
                        archive_event_fn on_event,
                        archive_problem_fn on_problem, void *ctx)
{
    const archive *ar = NULL;
    for (size_t i = 0; i < g_narchives; i++)
        if (name == g_archives[i].path)
            ar = &g_archives[i];
    ms_options o = *opt;
    o.format = MS_FORMAT_MIGSTREAM;
    o.input_seekable = 0;
    ms_reader *r = ar ? ms_reader_create(&o) : NULL;
    if (!r)
        return;
    ms_event_origin origin = {.channel = slot};
    ms_event ev;
    int rc;
    ms_reader_input(r, ar->map, ar->len);
    while ((rc = ms_reader_next(r, &ev)) == MS_NEXT_EVENT) {
        ev.channel = slot;
        on_event(ctx, &ev, &origin);
    }
    if (rc == MS_NEXT_INPUT && ms_reader_finish(r) == 0) {
        ms_reader_free(r);
        return;
    }
    ms_error_info e = *ms_reader_error(r);
    e.channel = slot;
    e.has_channel = 1;
    on_problem(ctx, &e);
    ms_reader_free(r);
}

/* The JSON trailer at the end of an embedded QEMU main stream, copied out
 * of the tail (the stream is not contiguous in the archive, so the library
 * cannot be given it whole to find the trailer itself). */
int archive_input_vmdesc(const archive_stream *s, uint64_t max_json,
                         char **json, size_t *len)
{
    uint64_t want = max_json + 16; /* trailer header and end marks */
    uint64_t from = s->length > want ? s->length - want : 0;
    size_t n = (size_t)(s->length - from), got = 0;
    uint8_t *tail = malloc(n ? n : 1);
    if (!tail)
        return -1;
    while (got < n) {
        const uint8_t *at;
        size_t k = archive_input_view(s, from + got, n - got, &at);
        if (k == 0)
            break;
        memcpy(tail + got, at, k);
        got += k;
    }
    size_t off, jlen;
    if (got != n || !ms_qemu_find_vmdesc(tail, n, n, &off, &jlen)) {
        free(tail);
        return 0;
    }
    memmove(tail, tail + off, jlen);
    *json = (char *)tail;
    *len = jlen;
    return 1;
}

/* ---- dump's lines for the archive's own events ------------------------------
 */

const char *archive_role_name(ms_archive_role r)
{
    static const char *const names[] = {"capture", "manifest", "summary"};
    return (unsigned)r < 3 ? names[r] : "unknown";
}

const char *archive_direction_name(ms_archive_direction d)
{
    static const char *const names[] = {"none", "s2d", "d2s"};
    return (unsigned)d < 3 ? names[d] : "unknown";
}

void archive_input_human(FILE *o, const ms_event *ev)
{
    const ms_archive_info *a = &ev->u.archive;
    switch (ev->kind) {
    case MS_EV_ARCHIVE_BEGIN:
        fprintf(o, "stream %u %s \"%s\" %s", a->stream,
                archive_role_name(a->role), a->name,
                archive_direction_name(a->direction));
        if (a->connection != MS_ARCHIVE_NO_CONNECTION)
            fprintf(o, " connection %u", a->connection);
        fprintf(o, " %s", ms_format_name(a->format));
        if (a->declared_length != MS_ARCHIVE_LENGTH_UNKNOWN)
            fprintf(o, " %llu bytes", (unsigned long long)a->declared_length);
        break;
    case MS_EV_ARCHIVE_DATA:
        fprintf(o, "stream %u \"%s\" bytes %llu+%zu", a->stream, a->name,
                (unsigned long long)a->offset, a->size);
        break;
    case MS_EV_ARCHIVE_END:
        fprintf(o, "stream %u \"%s\" %llu bytes xxh3 %016llx", a->stream,
                a->name, (unsigned long long)a->length,
                (unsigned long long)a->hash);
        break;
    default:
        break;
    }
}

void archive_input_json(FILE *o, const ms_event *ev)
{
    const ms_archive_info *a = &ev->u.archive;
    if (ev->kind != MS_EV_ARCHIVE_BEGIN && ev->kind != MS_EV_ARCHIVE_DATA &&
        ev->kind != MS_EV_ARCHIVE_END)
        return;
    fprintf(o, ",\"stream\":%u,\"name\":", a->stream);
    tool_json_string(o, a->name, strlen(a->name));
    if (ev->kind == MS_EV_ARCHIVE_BEGIN) {
        fprintf(o, ",\"role\":\"%s\",\"direction\":\"%s\"",
                archive_role_name(a->role),
                archive_direction_name(a->direction));
        if (a->connection != MS_ARCHIVE_NO_CONNECTION)
            fprintf(o, ",\"connection\":%u", a->connection);
        fprintf(o, ",\"stream_format\":\"%s\"", ms_format_name(a->format));
        if (a->declared_length != MS_ARCHIVE_LENGTH_UNKNOWN)
            fprintf(o, ",\"declared_length\":\"%llu\"",
                    (unsigned long long)a->declared_length);
    } else if (ev->kind == MS_EV_ARCHIVE_DATA) {
        fprintf(o, ",\"stream_offset\":\"%llu\",\"size\":%zu",
                (unsigned long long)a->offset, a->size);
    } else {
        fprintf(o, ",\"stream_length\":\"%llu\",\"hash\":\"%016llx\"",
                (unsigned long long)a->length, (unsigned long long)a->hash);
    }
}
