/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* migstream-replay's input from a migstream archive (migstream-archive,
 * spec/migstream.md 5.10): the archive is read whole first, every check
 * value and each stream's length and XXH3 verified (a replay must send the
 * bytes the source sent, or nothing); then each source -> destination
 * stream (direction s2d, or none for the bundled connN.bin layout) becomes
 * a byte source reading straight from the mapped archive, in connection
 * order (conn0, the main channel, first; streams with no connection
 * number after them, in archive order).  Return paths (d2s), the manifest
 * and the summary are not sent. */
#include <stdlib.h>
#include <string.h>

#include "archive_input.h"
#include "replay.h"

typedef struct archive_ctx {
    const archive_stream *stream;
} archive_ctx;

static ssize_t archive_read_at(void *ctx, uint64_t offset, void *buf, size_t n)
{
    const archive_ctx *a = ctx;
    size_t done = 0;
    while (done < n) {
        const uint8_t *at;
        size_t got =
            archive_input_view(a->stream, offset + done, n - done, &at);
        if (got == 0)
            break;
        memcpy((uint8_t *)buf + done, at, got);
        done += got;
    }
    return (ssize_t)done;
}

static void archive_close(void *ctx)
{
    free(ctx);
}

/* The first problem archive_input_read reports. */
typedef struct check_ctx {
    int failed;
    ms_error_info first;
} check_ctx;

static void check_event(void *ctx, const ms_event *ev, const ms_event_origin *o)
{
    (void)ctx, (void)ev, (void)o;
}

static void check_problem(void *ctx, const ms_error_info *e)
{
    check_ctx *c = ctx;
    if (!c->failed)
        c->first = *e;
    c->failed = 1;
}

/* A stream to send, with what orders it. */
typedef struct to_send {
    uint32_t connection; /* MS_ARCHIVE_NO_CONNECTION sorts last */
    size_t archive_order;
    const archive_stream *stream;
    const char *label; /* "ARCHIVE[NAME]" */
} to_send;

/* Connection order; streams without a number last, in archive order. */
static int by_connection(const void *a, const void *b)
{
    const to_send *x = a, *y = b;
    if (x->connection != y->connection)
        return x->connection < y->connection ? -1 : 1;
    return x->archive_order < y->archive_order
               ? -1
               : x->archive_order > y->archive_order;
}

static int add_source(const char *prog, replay_input *in, const char *label,
                      const archive_stream *s)
{
    replay_source *grown = realloc(in->src, (in->n + 1) * sizeof *grown);
    archive_ctx *a = malloc(sizeof *a);
    if (!grown || !a) {
        if (grown)
            in->src = grown;
        free(a);
        fprintf(stderr, "%s: out of memory\n", prog);
        return -1;
    }
    in->src = grown;
    a->stream = s;
    replay_source *src = &in->src[in->n++];
    memset(src, 0, sizeof *src);
    snprintf(src->label, sizeof src->label, "%s", label);
    src->kind = archive_input_format(s);
    src->size = archive_input_size(s);
    src->read_at = archive_read_at;
    src->close = archive_close;
    src->ctx = a;
    return 0;
}

int replay_input_archive(const char *prog, const char *path, replay_input *in)
{
    char *const one[] = {(char *)path};
    char *const *files = one;
    size_t n = 1;
    if (archive_input_expand(prog, &files, &n) < 0)
        return -1;
    if (n < 1 || archive_input_lookup(files[0], NULL) != 2)
        return 0; /* not an archive */
    ms_options opt;
    ms_options_init(&opt);
    opt.verify_checks = 1;
    check_ctx check = {0};
    archive_input_read(files[0], 0, &opt, check_event, check_problem, &check);
    if (check.failed) {
        fprintf(stderr,
                "%s: %s:%llu: %s: %s (a damaged archive is not replayed)\n",
                prog, path, (unsigned long long)check.first.offset,
                ms_error_name(check.first.code), check.first.detail);
        return -1;
    }
    to_send *list = calloc(n, sizeof *list);
    size_t count = 0;
    for (size_t i = 1; list && i < n; i++) {
        const archive_stream *st;
        if (archive_input_lookup(files[i], &st) == 1 &&
            archive_input_direction(st) != MS_ARCHIVE_DIR_D2S)
            list[count++] =
                (to_send){archive_input_connection(st), i, st, files[i]};
    }
    int rc = -1;
    if (!list)
        fprintf(stderr, "%s: out of memory\n", prog);
    else if (count == 0)
        fprintf(stderr, "%s: %s: the archive holds no capture stream\n", prog,
                path);
    else {
        qsort(list, count, sizeof *list, by_connection);
        rc = 0;
        for (size_t i = 0; i < count && rc == 0; i++)
            rc = add_source(prog, in, list[i].label, list[i].stream);
    }
    free(list);
    return rc < 0 ? -1 : 1;
}
