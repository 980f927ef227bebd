/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* migstream-replay's input: the connections of a capture as byte sources.
 *
 *   DIR/manifest.json          migstream-record's layout (spec/capture.md):
 *     -> connections[i].s2d.file, kind from the manifest, ordered by index
 *   DIR/connN.s2d or connN.bin  no manifest: N = 0, 1, ... while present,
 *                                kind from ms_detect on the first bytes
 *   DIR/main.mig                 a single-stream capture
 *   FILE...                      the first file is the main channel
 *   ARCHIVE                      a migstream archive (replay_archive.c)
 *
 * Every source is a file read with pread (replay_source.read_at), so
 * another kind of source (a stream inside an archive) fits in by giving
 * its own read_at. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "json.h" /* the library's strict parser (libstream/core) */
#include "replay.h"

/* Bytes ms_detect may look at. */
#define DETECT_BYTES 64
/* A manifest is small: a few hundred bytes per connection. */
#define MANIFEST_MAX (1u << 20)

/* ---- a file as a byte source ---- */
typedef struct file_ctx {
    int fd;
} file_ctx;

static ssize_t file_read_at(void *ctx, uint64_t offset, void *buf, size_t n)
{
    file_ctx *f = ctx;
    ssize_t got;
    do
        got = pread(f->fd, buf, n, (off_t)offset);
    while (got < 0 && errno == EINTR);
    return got;
}

static void file_close(void *ctx)
{
    file_ctx *f = ctx;
    close(f->fd);
    free(f);
}

/* Open `path` as source `s` with kind `kind` (MS_FORMAT_AUTO: detect). */
static int source_open_file(const char *prog, const char *path, ms_format kind,
                            replay_source *s)
{
    memset(s, 0, sizeof *s);
    snprintf(s->label, sizeof s->label, "%s", path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        fprintf(stderr, "%s: %s: %s\n", prog, path,
                fd < 0 ? strerror(errno) : "not a regular file");
        if (fd >= 0)
            close(fd);
        return -1;
    }
    file_ctx *f = malloc(sizeof *f);
    if (!f) {
        close(fd);
        fprintf(stderr, "%s: out of memory\n", prog);
        return -1;
    }
    f->fd = fd;
    s->ctx = f;
    s->read_at = file_read_at;
    s->close = file_close;
    s->size = (uint64_t)st.st_size;
    s->kind = kind;
    if (kind == MS_FORMAT_AUTO) {
        uint8_t head[DETECT_BYTES];
        ssize_t got = file_read_at(f, 0, head, sizeof head);
        size_t need = 0;
        s->kind =
            got > 0 ? ms_detect(head, (size_t)got, &need) : MS_FORMAT_UNKNOWN;
        if (s->kind == MS_FORMAT_AUTO)
            s->kind = MS_FORMAT_UNKNOWN;
    }
    return 0;
}

static int input_add(const char *prog, replay_input *in, const char *path,
                     ms_format kind)
{
    replay_source *grown = realloc(in->src, (in->n + 1) * sizeof *grown);
    if (!grown) {
        fprintf(stderr, "%s: out of memory\n", prog);
        return -1;
    }
    in->src = grown;
    if (source_open_file(prog, path, kind, &in->src[in->n]) < 0)
        return -1;
    in->n++;
    return 0;
}

/* ---- manifest.json ---- */

/* The format a manifest's "kind" names (spec/capture.md). */
static ms_format kind_from_name(const char *name)
{
    static const struct {
        const char *name;
        ms_format format;
    } kinds[] = {
        {"qemu-main", MS_FORMAT_QEMU_MAIN},
        {"qemu-multifd", MS_FORMAT_QEMU_MULTIFD},
        {"qemu-preempt", MS_FORMAT_QEMU_PREEMPT},
        {"qemu-return-path", MS_FORMAT_QEMU_RETURN_PATH},
        {"migstream", MS_FORMAT_MIGSTREAM},
    };
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (name && strcmp(name, kinds[i].name) == 0)
            return kinds[i].format;
    return MS_FORMAT_AUTO; /* "unknown": look at the bytes */
}

static char *read_small_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *text = malloc(MANIFEST_MAX);
    size_t got = text ? fread(text, 1, MANIFEST_MAX, f) : 0;
    int too_long = got == MANIFEST_MAX;
    fclose(f);
    if (!text || too_long) {
        free(text);
        errno = too_long ? EFBIG : ENOMEM;
        return NULL;
    }
    *len = got;
    return text;
}

/* The connections of a manifest, in index order. */
static int input_from_manifest(const char *prog, const char *dir,
                               const char *mpath, replay_input *in)
{
    size_t len = 0;
    char *text = read_small_file(mpath, &len);
    if (!text) {
        fprintf(stderr, "%s: %s: %s\n", prog, mpath, strerror(errno));
        return -1;
    }
    json_doc *doc = NULL;
    json_error jerr;
    int rc = -1;
    if (json_parse(NULL, text, len, NULL, &doc, &jerr) < 0) {
        fprintf(stderr, "%s: %s:%zu: not JSON: %s\n", prog, mpath, jerr.offset,
                jerr.detail);
        goto out;
    }
    const json_value *conns = json_get(json_root(doc), "connections");
    if (!json_is(conns, JSON_ARRAY) || json_len(conns) == 0) {
        fprintf(stderr, "%s: %s: no \"connections\" list\n", prog, mpath);
        goto out;
    }
    /* index i must be the i-th connection accepted: find each in turn */
    for (size_t want = 0; want < json_len(conns); want++) {
        const json_value *c = NULL;
        for (size_t i = 0; i < json_len(conns) && !c; i++) {
            int64_t idx;
            if (json_int(json_get(json_at(conns, i), "index"), &idx) == 0 &&
                idx == (int64_t)want)
                c = json_at(conns, i);
        }
        const char *file =
            json_string(json_get(json_get(c, "s2d"), "file"), NULL);
        if (!c || !file || strchr(file, '/')) {
            fprintf(stderr,
                    "%s: %s: connection %zu missing or without a plain "
                    "s2d file name\n",
                    prog, mpath, want);
            goto out;
        }
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, file);
        const char *kind = json_string(json_get(c, "kind"), NULL);
        if (input_add(prog, in, path, kind_from_name(kind)) < 0)
            goto out;
    }
    rc = 0;
out:
    json_free(NULL, doc);
    free(text);
    return rc;
}

/* ---- a directory without manifest ---- */
static int path_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static int input_from_dir(const char *prog, const char *dir, replay_input *in)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/manifest.json", dir);
    if (path_exists(path))
        return input_from_manifest(prog, dir, path, in);
    /* connN.s2d (record without manifest), connN.bin (bundled captures) */
    static const char *const suffixes[] = {"s2d", "bin"};
    for (size_t k = 0; k < 2 && in->n == 0; k++) {
        for (unsigned n = 0;; n++) {
            snprintf(path, sizeof path, "%s/conn%u.%s", dir, n, suffixes[k]);
            if (!path_exists(path))
                break;
            if (input_add(prog, in, path, MS_FORMAT_AUTO) < 0)
                return -1;
        }
    }
    if (in->n == 0) {
        snprintf(path, sizeof path, "%s/main.mig", dir);
        if (path_exists(path))
            return input_add(prog, in, path, MS_FORMAT_AUTO);
        fprintf(stderr,
                "%s: %s: no capture here (manifest.json, conn0.s2d, "
                "conn0.bin or main.mig)\n",
                prog, dir);
        return -1;
    }
    return 0;
}

/* ---- the list ---- */
int replay_input_open(const char *prog, char *const *paths, size_t npaths,
                      replay_input *in)
{
    memset(in, 0, sizeof *in);
    struct stat st;
    int rc = 0;
    int archive = 0;
    int one = npaths == 1 && stat(paths[0], &st) == 0;
    if (one && S_ISDIR(st.st_mode))
        rc = input_from_dir(prog, paths[0], in);
    else if (one && S_ISREG(st.st_mode) &&
             (archive = replay_input_archive(prog, paths[0], in)) != 0)
        rc = archive < 0 ? -1 : 0;
    else
        for (size_t i = 0; i < npaths && rc == 0; i++)
            rc = input_add(prog, in, paths[i], MS_FORMAT_AUTO);
    /* the first connection is the main channel: a multifd channel there
     * means the files are in the wrong order */
    if (rc == 0 && in->src[0].kind != MS_FORMAT_QEMU_MAIN &&
        in->src[0].kind != MS_FORMAT_MIGSTREAM &&
        in->src[0].kind != MS_FORMAT_UNKNOWN) {
        fprintf(stderr,
                "%s: %s: the first connection must be the main channel, "
                "this is a %s stream\n",
                prog, in->src[0].label, ms_format_name(in->src[0].kind));
        rc = -1;
    }
    if (rc < 0)
        replay_input_close(in);
    return rc;
}

void replay_input_close(replay_input *in)
{
    for (size_t i = 0; i < in->n; i++)
        if (in->src[i].close)
            in->src[i].close(in->src[i].ctx);
    free(in->src);
    memset(in, 0, sizeof *in);
}
