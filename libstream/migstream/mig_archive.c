/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* migstream 2.1 embedded streams: field and state checks of STREAM_BEGIN,
 * STREAM_DATA and STREAM_END (spec/migstream.md 5.10-5.12).
 *
 *   STREAM_BEGIN(id = streams so far) --> open --STREAM_DATA(offset = bytes
 *   so far)*--> STREAM_END(length, XXH3-64 of the bytes) --> ended
 *
 * Streams may interleave.  Memory: one entry (label, name, hash state) per
 * stream, at most max_channels of them (each becomes a channel when the
 * archive is read as its original files); nothing is allocated from a
 * declared length or a STREAM_DATA size. */
#include "mig_archive.h"
#include "mig_format.h"

#define SALLOC(r) (&(r)->opt.allocator)

/* lax: the stream is a newer minor version (spec section 1) */
static int reserved_zero(int lax, uint64_t v)
{
    return v == 0 || lax;
}

/* A file name unpack may create inside its directory: no '/', no NUL,
 * not "." or "..". */
static int plain_name(const uint8_t *name, uint32_t len)
{
    if (memchr(name, '/', len) || memchr(name, 0, len))
        return 0;
    return !(len == 1 && name[0] == '.') &&
           !(len == 2 && name[0] == '.' && name[1] == '.');
}

static int check_begin_fields(ms_reader *r, const uint8_t *p, uint64_t size,
                              uint64_t base, int lax)
{
    uint32_t name_len = ms_le32(p + MIG_SB_OFF_NAME_LEN);
    if ((uint64_t)MIG_STREAM_BEGIN_FIXED + name_len != size)
        return MS_FAIL(r, MS_ERR_RECORD_SIZE, base - MIG_REC_HDR_SIZE,
                       "STREAM_BEGIN of %llu bytes holds a %u-byte name",
                       (unsigned long long)size, name_len);
    if (p[MIG_SB_OFF_ROLE] > MIG_STREAM_ROLE_MAX)
        return MS_FAIL(r, MS_ERR_BAD_FIELD, base + MIG_SB_OFF_ROLE,
                       "stream role %u", p[MIG_SB_OFF_ROLE]);
    if (p[MIG_SB_OFF_DIRECTION] > MIG_STREAM_DIR_MAX)
        return MS_FAIL(r, MS_ERR_BAD_FIELD, base + MIG_SB_OFF_DIRECTION,
                       "stream direction %u", p[MIG_SB_OFF_DIRECTION]);
    if (!reserved_zero(lax, ms_le16(p + MIG_SB_OFF_RESERVED16)))
        return MS_FAIL(r, MS_ERR_BAD_FIELD, base + MIG_SB_OFF_RESERVED16,
                       "reserved field set");
    if (!reserved_zero(lax, ms_le64(p + MIG_SB_OFF_RESERVED64)))
        return MS_FAIL(r, MS_ERR_BAD_FIELD, base + MIG_SB_OFF_RESERVED64,
                       "reserved field set");
    if (!reserved_zero(lax, ms_le32(p + MIG_SB_OFF_RESERVED32)))
        return MS_FAIL(r, MS_ERR_BAD_FIELD, base + MIG_SB_OFF_RESERVED32,
                       "reserved field set");
    if (name_len == 0 || name_len > MIG_STREAM_NAME_MAX ||
        !plain_name(p + MIG_STREAM_BEGIN_FIXED, name_len))
        return MS_FAIL(r, MS_ERR_BAD_FIELD, base + MIG_SB_OFF_NAME_LEN,
                       "stream name must be 1..%d bytes, a file name "
                       "without '/' or NUL, not . or ..",
                       MIG_STREAM_NAME_MAX);
    return 0;
}

/* The new stream's table entry (bounded by max_channels). */
static mig_stream *new_stream(ms_reader *r, mig_streams *ss, uint32_t name_len,
                              uint64_t rec_off)
{
    if (ss->n >= r->opt.max_channels) {
        MS_FAIL_LIMIT(r, MS_LIMIT_MAX_CHANNELS, rec_off,
                      "more than max_channels (%u) embedded streams",
                      r->opt.max_channels);
        return NULL;
    }
    if (ms_grow(SALLOC(r), (void **)&ss->s, sizeof *ss->s, &ss->cap,
                ss->n + 1) < 0) {
        MS_FAIL(r, MS_ERR_NO_MEMORY, rec_off, "stream table");
        return NULL;
    }
    mig_stream *s = &ss->s[ss->n];
    memset(s, 0, sizeof *s);
    s->name = ms_alloc(SALLOC(r), (size_t)name_len + 1);
    s->hash = ms_hash_state_new(SALLOC(r));
    if (!s->name || !s->hash) {
        ms_free(SALLOC(r), s->name);
        ms_hash_state_free(SALLOC(r), s->hash);
        MS_FAIL(r, MS_ERR_NO_MEMORY, rec_off, "stream entry");
        return NULL;
    }
    ss->cur = NULL; /* the table may have moved */
    ss->n++;
    return s;
}

int mig_stream_begin(ms_reader *r, mig_streams *ss, const uint8_t *p,
                     uint64_t size, uint64_t rec_off, int lax, ms_event *ev)
{
    uint64_t base = rec_off + MIG_REC_HDR_SIZE;
    if (check_begin_fields(r, p, size, base, lax) < 0)
        return MS_NEXT_ERROR;
    uint32_t id = ms_le32(p + MIG_SB_OFF_ID);
    if (id != ss->n)
        return MS_FAIL(r, MS_ERR_STREAM_STATE, base + MIG_SB_OFF_ID,
                       "STREAM_BEGIN for stream %u where %zu was due", id,
                       ss->n);
    uint32_t name_len = ms_le32(p + MIG_SB_OFF_NAME_LEN);
    if (name_len > r->opt.max_name_length)
        return MS_FAIL_LIMIT(r, MS_LIMIT_MAX_NAME_LENGTH,
                             base + MIG_SB_OFF_NAME_LEN,
                             "stream name of %u bytes exceeds "
                             "max_name_length (%u)",
                             name_len, r->opt.max_name_length);
    mig_stream *s = new_stream(r, ss, name_len, rec_off);
    if (!s)
        return MS_NEXT_ERROR;
    memcpy(s->name, p + MIG_STREAM_BEGIN_FIXED, name_len);
    s->name[name_len] = 0;
    ms_archive_info *l = &s->label;
    l->stream = id;
    l->role = (ms_archive_role)p[MIG_SB_OFF_ROLE];
    l->direction = (ms_archive_direction)p[MIG_SB_OFF_DIRECTION];
    l->connection = ms_le32(p + MIG_SB_OFF_CONNECTION);
    l->format = (ms_format)ms_le32(p + MIG_SB_OFF_FORMAT);
    l->name = s->name;
    l->name_len = name_len;
    l->declared_length = ms_le64(p + MIG_SB_OFF_LENGTH);
    ms_hash_reset(s->hash, 0);
    s->open = 1;
    ss->open++;
    ev->kind = MS_EV_ARCHIVE_BEGIN;
    ev->u.archive = *l;
    return MS_NEXT_EVENT;
}

/* The open stream `id` named by the field at `off`, or NULL (r->err). */
static mig_stream *open_stream(ms_reader *r, mig_streams *ss, uint32_t id,
                               uint64_t off, const char *what)
{
    if (id >= ss->n || !ss->s[id].open) {
        MS_FAIL(r, MS_ERR_STREAM_STATE, off, "%s for stream %u, which is %s",
                what, id, id >= ss->n ? "not begun" : "ended");
        return NULL;
    }
    return &ss->s[id];
}

int mig_stream_data_prefix(ms_reader *r, mig_streams *ss, const uint8_t *p,
                           uint64_t rec_off, int lax)
{
    uint64_t base = rec_off + MIG_REC_HDR_SIZE;
    mig_stream *s = open_stream(r, ss, ms_le32(p), base, "STREAM_DATA");
    if (!s)
        return -1;
    if (!reserved_zero(lax, ms_le32(p + 4)))
        return MS_FAIL(r, MS_ERR_BAD_FIELD, base + 4, "reserved field set");
    uint64_t offset = ms_le64(p + 8);
    if (offset != s->read)
        return MS_FAIL(r, MS_ERR_STREAM_STATE, base + 8,
                       "stream %s: data at offset %llu, %llu bytes were "
                       "read",
                       s->name, (unsigned long long)offset,
                       (unsigned long long)s->read);
    ss->cur = s;
    ss->cur_off = offset;
    return 0;
}

void mig_stream_data(ms_reader *r, mig_streams *ss, const uint8_t *p, size_t n,
                     uint64_t off, ms_event *ev)
{
    mig_stream *s = ss->cur;
    if (r->opt.verify_checks)
        ms_hash_update(s->hash, p, n);
    ev->kind = MS_EV_ARCHIVE_DATA;
    ev->offset = off;
    ev->length = n;
    ev->u.archive = s->label;
    ev->u.archive.data = p;
    ev->u.archive.size = n;
    ev->u.archive.offset = ss->cur_off;
    ss->cur_off += n;
    s->read += n;
}

int mig_stream_end(ms_reader *r, mig_streams *ss, const uint8_t *p,
                   uint64_t rec_off, int lax, ms_event *ev)
{
    uint64_t base = rec_off + MIG_REC_HDR_SIZE;
    mig_stream *s = open_stream(r, ss, ms_le32(p), base, "STREAM_END");
    if (!s)
        return MS_NEXT_ERROR;
    if (!reserved_zero(lax, ms_le32(p + 4)))
        return MS_FAIL(r, MS_ERR_BAD_FIELD, base + 4, "reserved field set");
    uint64_t length = ms_le64(p + 8), hash = ms_le64(p + 16);
    uint64_t declared = s->label.declared_length;
    if (length != s->read)
        return MS_FAIL(r, MS_ERR_STREAM_HASH, base + 8,
                       "stream %s: %llu bytes, STREAM_END says %llu", s->name,
                       (unsigned long long)s->read, (unsigned long long)length);
    if (declared != MS_ARCHIVE_LENGTH_UNKNOWN && declared != length)
        return MS_FAIL(r, MS_ERR_STREAM_HASH, base + 8,
                       "stream %s: %llu bytes, STREAM_BEGIN declared %llu",
                       s->name, (unsigned long long)length,
                       (unsigned long long)declared);
    uint64_t got = ms_hash_digest(s->hash);
    if (r->opt.verify_checks && got != hash)
        return MS_FAIL(r, MS_ERR_STREAM_HASH, base + 16,
                       "stream %s: XXH3-64 %016llx, STREAM_END says %016llx",
                       s->name, (unsigned long long)got,
                       (unsigned long long)hash);
    s->open = 0;
    ss->open--;
    ms_hash_state_free(SALLOC(r), s->hash);
    s->hash = NULL;
    ev->kind = MS_EV_ARCHIVE_END;
    ev->u.archive = s->label;
    ev->u.archive.length = length;
    ev->u.archive.hash = hash;
    return MS_NEXT_EVENT;
}

int mig_streams_closed(ms_reader *r, const mig_streams *ss, uint64_t rec_off)
{
    for (size_t i = 0; i < ss->n; i++)
        if (ss->s[i].open)
            return MS_FAIL(r, MS_ERR_STREAM_STATE, rec_off,
                           "stream %s is still open at END", ss->s[i].name);
    return 0;
}

void mig_streams_free(ms_reader *r, mig_streams *ss)
{
    for (size_t i = 0; i < ss->n; i++) {
        ms_free(SALLOC(r), ss->s[i].name);
        ms_hash_state_free(SALLOC(r), ss->s[i].hash);
    }
    ms_free(SALLOC(r), ss->s);
    memset(ss, 0, sizeof *ss);
}

_Static_assert(sizeof(ms_archive_info) <= sizeof(ms_data_info),
               "the archive event must not grow the event union");
