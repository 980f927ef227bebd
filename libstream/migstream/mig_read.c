/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* migstream decoder (spec/migstream.md): versions 1.x and 2.x.
 *
 * Stages (each waits for input; errors are sticky in r->err):
 *
 *   HEADER --> RECORD_HEADER --+--> SMALL_BODY ---------------------+
 *                 ^  ^ |       +--> PREFIX --+--> DATA ----+        |
 *                 |  | |       |             +--> INFLATE -+        |
 *                 |  | |       +--> SKIP <---+ (pending    |        |
 *                 |  | |            |           error)     v        |
 *                 |  | |            +------> TRAILER <-----+        |
 *                 |  | +-(fast path)-> DATA -+    |                 |
 *                 |  +-----(verified record)-+    |                 |
 *                 +--(run of small records: one DATA event or none) |
 *                 +<------------------------------+-----------------+
 *   END record --> DONE (any further byte is trailing data)
 *
 *   2.1 embedded streams (mig_archive.c): STREAM_BEGIN and STREAM_END are
 *   small records; a STREAM_DATA record goes
 *   RECORD_HEADER --> STREAM_PREFIX --> STREAM_DATA --> TRAILER
 *                          +--(field error held)--> SKIP --> TRAILER
 *   its bytes handed out as ARCHIVE_DATA views, hashed into the record's
 *   payload check (a plain one: 2.0 readers skip the record) and into the
 *   stream's XXH3-64 that STREAM_END states.
 *
 * Small records (DEVICE, IMAGE_BEGIN/END, info records, END) are gathered
 * whole with their payload check and verified before their fields are
 * trusted.  CHUNK and PACKET payloads are streamed: their bytes are handed
 * out as views into the caller's input and hashed on the way, so payload
 * bytes are never copied.  A field error found in a CHUNK/PACKET prefix is
 * held back until the payload check is known, so that corruption is
 * reported as corruption and not as a bogus field.
 *
 * Hashing (spec 4.3, 5.4): a 1.x unit record's bytes are hashed twice, into
 * its payload check and into the image hash; a 2.x one's data once, into
 * its data_hash (`unit_state`), which then goes into the payload check and,
 * as the unit hash, into the image hash.
 *
 * Contiguous fast path (read_whole_unit): when RECORD_HEADER finds a whole
 * small uncompressed CHUNK or PACKET (header, payload, check) at the start
 * of the slice, it verifies both checks at once with one-shot hashes (no
 * streaming state to seed), consumes header and prefix and emits the
 * record's event itself; the record is `verified`: DATA emits its one view
 * without hashing and consumes the check (no TRAILER stage).  A record
 * whose checks do not match takes the general path, which reports the
 * damage exactly as for split input.  start_payload_hash verifies a whole
 * uncompressed unit record of any size the same way before its first
 * DATA view when the record lies in the slice (one larger than the fast
 * path takes, or whose header came split): one pass of the fastest XXH3 over
 * the data, and the views then go out already checked.
 *
 * Runs (ms_options.data_only, read_run): at a record boundary, back-to-back
 * whole small uncompressed CHUNKs of one image and unknown optional records
 * are checked in one loop and the chunks' bytes copied into one DATA event;
 * the stage stays RECORD_HEADER.
 */
#include <zlib.h>

#include "decompress.h"
#include "mig_archive.h"
#include "mig_salvage.h"
#include "kit.h"
#include "mig_format.h"

enum mig_stage {
    ST_HEADER = 0x4D16, /* not 0: a zeroed state is caught as invalid */
    ST_RECORD_HEADER,
    ST_SMALL_BODY,
    ST_PREFIX,
    ST_DATA,
    ST_INFLATE,
    ST_SKIP,
    ST_TRAILER,
    ST_DONE,
    ST_RESYNC, /* salvage: mig_salvage.c */
    ST_STREAM_PREFIX,
    ST_STREAM_DATA
};


#define INFLATE_WINDOW (64 * 1024) /* decompressed bytes per DATA event */
/* Largest zero-copy DATA view.  Each payload byte is hashed (1.x: twice,
 * record check and image hash) and read by the caller; views this size keep
 * the passes in cache.  migstream-bench measures the difference.  Also the
 * largest record the fast path verifies before its events (one view). */
#define DATA_VIEW_MAX (64 * 1024)

#define UNIT_BATCH 32

/* ms_options.data_only: the largest record payload a run takes (read_run).
 * Copying 1 KiB of a chunk costs less than the two events the record would
 * otherwise cost; larger chunks stay zero-copy views. */
#define RUN_RECORD_MAX 1024

typedef struct mig_device {
    uint32_t handle, instance_id, kind, flags;
    char *idstr;
    uint32_t idstr_len;
    uint8_t *compat;
    uint32_t compat_len;
    /* images */
    uint32_t next_seq;
    int seen_final;
    int open;
    ms_image_info img; /* the open image (length/hash accumulate here) */
    ms_hash_state *img_hash;
    /* 2.x: unit hashes (le64) not yet hashed into img_hash: handed over
     * UNIT_BATCH at a time, not one call per (possibly 1-byte) chunk */
    uint8_t unit_batch[UNIT_BATCH * 8];
    uint32_t unit_batched;
    int salvage_damaged; /* the open image lost bytes (spec/salvage.md) */
} mig_device;

typedef struct mig_state {
    int stage;
    uint16_t major, minor;
    uint64_t chain;

    /* record being read */
    uint64_t rec_off;
    uint64_t rec_size;
    uint32_t rec_tag, rec_flags;
    uint64_t rec_check;
    uint64_t remaining; /* streamed payload bytes still to come */
    ms_hash_state *payload_hash;
    /* 2.x unit record (CHUNK, PACKET): its prefix and data are hashed apart
     * (spec 4.3); `unit_state` hashes the data (stored bytes), `inflate_state`
     * a zlib chunk's output (its unit hash) */
    int unit_v2;
    uint8_t unit_prefix[MIG_PACKET_PREFIX];
    ms_hash_state *unit_state, *inflate_state;
    /* the fast path verified the whole record: no hashing, its unit hash */
    int verified;
    uint64_t verified_unit_hash;

    /* CHUNK / PACKET being streamed */
    mig_device *cur;
    int cur_packet, cur_config;
    uint32_t cur_seq, cur_idx, cur_raw_len;
    uint64_t cur_data_off, cur_produced, cur_image_off;

    /* a field error held until the payload check is known */
    ms_error pend_code;
    uint64_t pend_off;
    char pend_detail[sizeof(((ms_error_info *)0)->detail)];

    z_stream zs;
    ms_dec_mem zmem; /* zlib's memory: the reader's allocator, bounded */
    int zs_ready, zs_ended;
    uint8_t *zout;

    mig_device *devs;
    size_t ndevs, devcap;
    mig_device *last_dev; /* find_device's last answer (NULL: none) */
    ms_u32map devmap;

    /* totals checked against END */
    uint64_t n_records, image_bytes, n_packets;
    uint32_t n_devices, n_images;

    mig_salvage salv; /* ms_options.salvage */
    mig_streams streams; /* 2.1 embedded streams */
} mig_state;

#define ST(r) ((mig_state *)(r)->framing)
#define ALLOC(r) (&(r)->opt.allocator)

/* ---- small helpers ------------------------------------------------------ */

/* A reserved field: zero, unless the stream is a newer minor version that
 * may have given it a meaning we can ignore (spec section 1). */
static int reserved_lax(const mig_state *st)
{
    /* the newest minor this reader knows of the stream's major version:
     * 1.0, or MS_FORMAT_VERSION_MINOR of 2.x */
    uint16_t known = st->major < 2 ? 0 : MS_FORMAT_VERSION_MINOR;
    return st->minor > known;
}

static int reserved_ok(const mig_state *st, uint64_t v)
{
    return v == 0 || reserved_lax(st);
}

static const char *tag_name(uint32_t tag)
{
    switch (tag) {
    case MIG_TAG_DEVICE: return "DEVICE";
    case MIG_TAG_IMAGE_BEGIN: return "IMAGE_BEGIN";
    case MIG_TAG_CHUNK: return "CHUNK";
    case MIG_TAG_IMAGE_END: return "IMAGE_END";
    case MIG_TAG_PACKET: return "PACKET";
    case MIG_TAG_PRECOPY_INFO: return "PRECOPY_INFO";
    case MIG_TAG_STATE_CHANGE: return "STATE_CHANGE";
    case MIG_TAG_STOP_COPY_SIZE: return "STOP_COPY_SIZE";
    case MIG_TAG_STREAM_BEGIN: return "STREAM_BEGIN";
    case MIG_TAG_STREAM_DATA: return "STREAM_DATA";
    case MIG_TAG_STREAM_END: return "STREAM_END";
    case MIG_TAG_END: return "END";
    }
    return NULL;
}

static int tag_is_optional_kind(uint32_t tag)
{
    return tag == MIG_TAG_PRECOPY_INFO || tag == MIG_TAG_STATE_CHANGE ||
           tag == MIG_TAG_STOP_COPY_SIZE || tag == MIG_TAG_STREAM_BEGIN ||
           tag == MIG_TAG_STREAM_DATA || tag == MIG_TAG_STREAM_END;
}

/* Fixed payload size of a small known record, 0 for variable ones. */
static uint64_t fixed_size(uint32_t tag)
{
    switch (tag) {
    case MIG_TAG_IMAGE_BEGIN: return MIG_IMAGE_BEGIN_SIZE;
    case MIG_TAG_IMAGE_END: return MIG_IMAGE_END_SIZE;
    case MIG_TAG_PRECOPY_INFO: return MIG_PRECOPY_INFO_SIZE;
    case MIG_TAG_STATE_CHANGE: return MIG_STATE_CHANGE_SIZE;
    case MIG_TAG_STOP_COPY_SIZE: return MIG_STOP_COPY_SIZE_SIZE;
    case MIG_TAG_STREAM_END: return MIG_STREAM_END_SIZE;
    case MIG_TAG_END: return MIG_END_SIZE;
    }
    return 0;
}

/* The declared device `handle`, or NULL. */
static mig_device *lookup_device(mig_state *st, uint32_t handle)
{
    uint32_t i;
    /* records of one device come in runs: try the last one found first */
    if (st->last_dev && st->last_dev->handle == handle)
        return st->last_dev;
    if (ms_u32map_get(&st->devmap, handle, &i))
        return st->last_dev = &st->devs[i];
    return NULL;
}

static mig_device *find_device(ms_reader *r, uint32_t handle, uint64_t off)
{
    mig_device *d = lookup_device(ST(r), handle);
    if (!d)
        MS_FAIL(r, MS_ERR_DEVICE_UNKNOWN, off,
                "device %u is not declared in this channel", handle);
    return d;
}

/* The device a record's payload names in its first field. */
static mig_device *record_device(ms_reader *r, const uint8_t *payload)
{
    return find_device(r, ms_le32(payload),
                       ST(r)->rec_off + MIG_REC_HDR_SIZE);
}

/* Hold a field error found in a streamed prefix (see file comment). */
static void hold_error(mig_state *st, ms_error_info *e)
{
    if (st->pend_code)
        return;
    st->pend_code = e->code;
    st->pend_off = e->offset;
    memcpy(st->pend_detail, e->detail, sizeof st->pend_detail);
    memset(e, 0, sizeof *e);
}

/* ---- stream header ------------------------------------------------------ */

static int magic_error(ms_reader *r, const uint8_t *p)
{
    const char *what = NULL;
    if (p[0] == 0x0D && memcmp(p + 1, mig_magic + 1, 7) == 0)
        what = "first byte 0x8D became 0x0D: the high bit was stripped "
               "(7-bit transfer)";
    else if (memcmp(p, mig_magic, 4) == 0 && p[4] == 0x0A && p[5] == 0x1A)
        what = "CR LF became LF: text-mode newline conversion";
    else if (memcmp(p, mig_magic, 4) == 0 && p[4] == 0x0D && p[5] == 0x0D &&
             p[6] == 0x0A)
        what = "LF became CR LF: text-mode newline conversion";
    else if (memcmp(p, "MIG\r\n", 5) == 0)
        what = "the first byte is missing";
    if (what)
        return MS_FAIL(r, MS_ERR_MAGIC_DAMAGED, 0, "%s", what);
    return MS_FAIL(r, MS_ERR_BAD_MAGIC, 0,
                   "expected 8D 4D 49 47 0D 0A 1A 0A, got %02X %02X %02X "
                   "%02X %02X %02X %02X %02X",
                   p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7]);
}

static int read_header(ms_reader *r, ms_event *ev)
{
    mig_state *st = ST(r);
    const uint8_t *p;
    if (!ms_rd_take(r, MIG_HDR_SIZE, &p))
        return MS_NEXT_INPUT;
    if (memcmp(p, mig_magic, MIG_MAGIC_LEN) != 0)
        return magic_error(r, p);
    uint16_t major = ms_le16(p + MIG_HDR_OFF_MAJOR);
    uint16_t minor = ms_le16(p + MIG_HDR_OFF_MINOR);
    if (major < MS_FORMAT_VERSION_MAJOR_OLDEST ||
        major > MS_FORMAT_VERSION_MAJOR)
        return MS_FAIL(r, MS_ERR_VERSION, MIG_HDR_OFF_MAJOR,
                       "format version %u.%u; this reader implements "
                       "%u.x to %u.x",
                       major, minor, MS_FORMAT_VERSION_MAJOR_OLDEST,
                       MS_FORMAT_VERSION_MAJOR);
    uint64_t check = ms_le64(p + MIG_HDR_OFF_CHECK);
    if (r->opt.verify_checks && ms_hash64(p, MIG_HDR_OFF_CHECK, 0) != check)
        return MS_FAIL(r, MS_ERR_HEADER_CHECK, MIG_HDR_OFF_CHECK,
                       "stream header check %016llx does not match its bytes",
                       (unsigned long long)check);
    st->major = major;
    st->minor = minor;
    uint32_t index = ms_le32(p + MIG_HDR_OFF_CHANNEL);
    uint32_t count = ms_le32(p + MIG_HDR_OFF_CHANNELS);
    uint32_t known_flags =
        major >= 2 && minor >= MIG_ARCHIVE_MINOR ? MIG_HDR_FLAG_ARCHIVE : 0;
    if (!reserved_ok(st, ms_le32(p + MIG_HDR_OFF_FLAGS) & ~known_flags))
        return MS_FAIL(r, MS_ERR_HEADER_FIELD, MIG_HDR_OFF_FLAGS,
                       "reserved header_flags are not zero");
    if (!reserved_ok(st, ms_le64(p + MIG_HDR_OFF_RESERVED)))
        return MS_FAIL(r, MS_ERR_HEADER_FIELD, MIG_HDR_OFF_RESERVED,
                       "reserved header field is not zero");
    if (count == 0)
        return MS_FAIL(r, MS_ERR_HEADER_FIELD, MIG_HDR_OFF_CHANNELS,
                       "channel_count is 0");
    if (index >= count)
        return MS_FAIL(r, MS_ERR_HEADER_FIELD, MIG_HDR_OFF_CHANNEL,
                       "channel_index %u is not below channel_count %u",
                       index, count);
    st->chain = check;
    ev->kind = MS_EV_STREAM_HEADER;
    ev->offset = 0;
    ev->length = MIG_HDR_SIZE;
    ms_stream_info *s = &ev->u.stream;
    s->format = MS_FORMAT_MIGSTREAM;
    s->version_major = major;
    s->version_minor = minor;
    memcpy(s->uuid, p + MIG_HDR_OFF_UUID, 16);
    s->channel_index = index;
    s->channel_count = count;
    s->created_ns = ms_le64(p + MIG_HDR_OFF_CREATED);
    s->header_check = check;
    s->header_flags = ms_le32(p + MIG_HDR_OFF_FLAGS);
    st->stage = ST_RECORD_HEADER;
    return MS_NEXT_EVENT;
}

/* ---- record header ------------------------------------------------------ */

/* 2.x unit record (spec 4.3): the payload check of prefix || le64
 * data_hash, seeded with the record's header check. */
static uint64_t unit_payload_check(const mig_state *st, const uint8_t *prefix,
                                   uint64_t data_hash)
{
    size_t n = st->rec_tag == MIG_TAG_PACKET ? MIG_PACKET_PREFIX
                                             : MIG_CHUNK_PREFIX;
    return mig_unit_payload_check(prefix, n, data_hash, st->rec_check);
}

/* The fast path (file comment): the whole uncompressed unit record `p`
 * (payload, then its check) lies in the slice; verify it one-shot.  On a
 * match the record is `verified`; otherwise the general path reads it. */
static void verify_contiguous(ms_reader *r, const uint8_t *p)
{
    mig_state *st = ST(r);
    size_t size = (size_t)st->rec_size;
    size_t n = st->rec_tag == MIG_TAG_PACKET ? MIG_PACKET_PREFIX
                                             : MIG_CHUNK_PREFIX;
    uint64_t check = ms_le64(p + size), unit_hash = 0, got;
    if (st->major >= 2) {
        unit_hash = ms_hash64(p + n, size - n, 0);
        got = unit_payload_check(st, p, unit_hash);
    } else {
        got = ms_hash64(p, size, st->rec_check);
    }
    st->verified = got == check;
    st->verified_unit_hash = unit_hash;
}

/* Set up the hashing of a streamed payload (unknown record, CHUNK, PACKET):
 * `unit_v2` for a 2.x unit record.  Takes the fast path when it can. */
static void start_payload_hash(ms_reader *r, int unit_v2)
{
    mig_state *st = ST(r);
    st->unit_v2 = unit_v2;
    st->verified = 0;
    if (!r->opt.verify_checks)
        return;
    size_t whole = (size_t)st->rec_size + MIG_REC_TRAILER_SIZE;
    const uint8_t *p;
    if (st->rec_tag != MIG_TAG_PACKET && st->rec_tag != MIG_TAG_CHUNK) {
        /* unknown: skipped, hashed as it goes */
    } else if (!ms_rd_stashed(r) && st->rec_size <= SIZE_MAX - 8 &&
               ms_rd_peek(r, whole, &p) == whole &&
               (st->rec_tag == MIG_TAG_PACKET ||
                p[8] == MS_COMPRESSION_NONE)) { /* CHUNK compression */
        verify_contiguous(r, p);
        if (st->verified)
            return;
    }
    if (unit_v2)
        ms_hash_reset(st->unit_state, 0); /* seed 0: no secret to derive */
    else
        ms_hash_reset(st->payload_hash, st->rec_check);
}

static int check_record_size(ms_reader *r)
{
    mig_state *st = ST(r);
    uint64_t size = st->rec_size, want = fixed_size(st->rec_tag);
    const char *name = tag_name(st->rec_tag);
    uint64_t min = 0;
    switch (st->rec_tag) {
    case MIG_TAG_DEVICE: {
        uint64_t max = MIG_DEVICE_FIXED + (uint64_t)r->opt.max_name_length +
                       r->opt.max_compat_length;
        if (size > max)
            return MS_FAIL_LIMIT(r, MS_LIMIT_MAX_COMPAT_LENGTH, st->rec_off,
                                 "DEVICE record of %llu bytes exceeds "
                                 "max_name_length + max_compat_length (%llu)",
                                 (unsigned long long)size,
                                 (unsigned long long)max);
        min = MIG_DEVICE_FIXED; /* an empty idstr is a bad field */
        break;
    }
    case MIG_TAG_CHUNK: min = MIG_CHUNK_PREFIX; break; /* raw_len 0: bad field */
    case MIG_TAG_STREAM_BEGIN: {
        uint64_t max = MIG_STREAM_BEGIN_FIXED + (uint64_t)r->opt.max_name_length;
        if (size > max)
            return MS_FAIL_LIMIT(r, MS_LIMIT_MAX_NAME_LENGTH, st->rec_off,
                                 "STREAM_BEGIN record of %llu bytes exceeds "
                                 "its fields + max_name_length (%llu)",
                                 (unsigned long long)size,
                                 (unsigned long long)max);
        min = MIG_STREAM_BEGIN_FIXED + 1; /* a name of 1 byte at least */
        break;
    }
    case MIG_TAG_STREAM_DATA: min = MIG_STREAM_DATA_PREFIX + 1; break;
    case MIG_TAG_PACKET: min = MIG_PACKET_PREFIX; break;
    default:
        if (size != want)
            return MS_FAIL(r, MS_ERR_RECORD_SIZE, st->rec_off,
                           "%s record has %llu payload bytes, must be %llu",
                           name, (unsigned long long)size,
                           (unsigned long long)want);
        return 0;
    }
    if (size < min)
        return MS_FAIL(r, MS_ERR_RECORD_SIZE, st->rec_off,
                       "%s record has %llu payload bytes, at least %llu "
                       "needed",
                       name, (unsigned long long)size,
                       (unsigned long long)min);
    return 0;
}

static int prefix_event(ms_reader *r, ms_event *ev, const uint8_t *p);
static int read_run(ms_reader *r, ms_event *ev);

/* The fast path (file comment): a whole small uncompressed CHUNK or PACKET
 * at the start of the slice, whose checks all match, is taken at once: its
 * header and prefix are consumed and its event emitted; DATA follows.
 * Returns MS_NEXT_EVENT, or 0 (nothing consumed) for anything else, which
 * the general path reads (and reports). */
static int read_whole_unit(ms_reader *r, ms_event *ev)
{
    mig_state *st = ST(r);
    const uint8_t *p = r->in + r->in_pos;
    size_t avail = ms_rd_avail(r);
    if (!r->opt.verify_checks || r->opt.record_events || ms_rd_stashed(r) ||
        avail < MIG_REC_OVERHEAD + MIG_CHUNK_PREFIX)
        return 0;
    if (r->opt.data_only) {
        int run = read_run(r, ev);
        if (run)
            return run;
    }
    uint64_t size = ms_le64(p + MIG_REC_OFF_SIZE);
    uint32_t tag = ms_le32(p + MIG_REC_OFF_TAG);
    size_t n = tag == MIG_TAG_PACKET  ? MIG_PACKET_PREFIX
               : tag == MIG_TAG_CHUNK ? MIG_CHUNK_PREFIX
                                      : 0;
    /* flags 0: both tags are mandatory, no other bit is defined */
    if (!n || ms_le32(p + MIG_REC_OFF_FLAGS) != 0 || size < n ||
        size > DATA_VIEW_MAX || size > r->opt.max_record_payload ||
        avail - MIG_REC_OVERHEAD < size)
        return 0;
    const uint8_t *payload = p + MIG_REC_HDR_SIZE;
    uint64_t hcheck = ms_le64(p + MIG_REC_OFF_CHECK);
    if ((tag == MIG_TAG_CHUNK && payload[8] != MS_COMPRESSION_NONE) ||
        ms_hash64(p, MIG_REC_OFF_CHECK, st->chain) != hcheck)
        return 0;
    st->rec_size = size;
    st->rec_tag = tag;
    st->rec_check = hcheck;
    verify_contiguous(r, payload);
    if (!st->verified)
        return 0;
    st->rec_off = r->offset;
    st->rec_flags = 0;
    st->unit_v2 = st->major >= 2;
    ms_rd_skip(r, MIG_REC_HDR_SIZE + n);
    return prefix_event(r, ev, payload); /* never MS_NEXT_INPUT (0) */
}

static int read_record_header(ms_reader *r, ms_event *ev)
{
    mig_state *st = ST(r);
    const uint8_t *p;
    int fast = read_whole_unit(r, ev);
    if (fast) /* taken: its event, or MS_GO_ON (mig_next says when) */
        return fast;
    if (ms_rd_pending(r) == 0)
        return MS_NEXT_INPUT; /* clean record boundary */
    st->rec_off = ms_rd_unit_offset(r);
    if (!ms_rd_take(r, MIG_REC_HDR_SIZE, &p))
        return MS_NEXT_INPUT;
    st->rec_size = ms_le64(p + MIG_REC_OFF_SIZE);
    st->rec_flags = ms_le32(p + MIG_REC_OFF_FLAGS);
    st->rec_tag = ms_le32(p + MIG_REC_OFF_TAG);
    st->rec_check = ms_le64(p + MIG_REC_OFF_CHECK);
    /* The check first: nothing in the header is trusted before it. */
    if (r->opt.verify_checks &&
        ms_hash64(p, MIG_REC_OFF_CHECK, st->chain) != st->rec_check)
        return MS_FAIL(r, MS_ERR_RECORD_CHECK, st->rec_off,
                       "record header check does not match (header "
                       "damaged, or a record before it was lost or moved)");
    if (st->rec_flags & ~MIG_FLAGS_KNOWN)
        return MS_FAIL(r, MS_ERR_RECORD_FLAGS, st->rec_off,
                       "reserved record flag bits 0x%x are set",
                       st->rec_flags & ~MIG_FLAGS_KNOWN);
    int optional = (st->rec_flags & MIG_FLAG_OPTIONAL) != 0;
    const char *name = tag_name(st->rec_tag);
    if (name && optional != tag_is_optional_kind(st->rec_tag))
        return MS_FAIL(r, MS_ERR_RECORD_FLAGS, st->rec_off,
                       "%s record must be %s", name,
                       optional ? "mandatory" : "optional");
    if (!name && !optional)
        return MS_FAIL(r, MS_ERR_UNKNOWN_MANDATORY, st->rec_off,
                       "record tag 0x%x is unknown and mandatory",
                       st->rec_tag);
    if (st->rec_size > r->opt.max_record_payload)
        return MS_FAIL_LIMIT(r, MS_LIMIT_MAX_RECORD_PAYLOAD, st->rec_off,
                             "record payload of %llu bytes exceeds "
                             "max_record_payload (%llu)",
                             (unsigned long long)st->rec_size,
                             (unsigned long long)r->opt.max_record_payload);
    if (name && check_record_size(r) < 0)
        return MS_NEXT_ERROR;
    /* unknown records have their event, unless data_only */
    int emit_record = r->opt.record_events || (!name && !r->opt.data_only);
    if (!name) {
        start_payload_hash(r, 0);
        st->stage = ST_SKIP;
        st->remaining = st->rec_size;
    } else if (st->rec_tag == MIG_TAG_CHUNK || st->rec_tag == MIG_TAG_PACKET) {
        start_payload_hash(r, st->major >= 2);
        st->stage = ST_PREFIX;
    } else if (st->rec_tag == MIG_TAG_STREAM_DATA) {
        start_payload_hash(r, 0); /* not a unit record: a plain check */
        st->stage = ST_STREAM_PREFIX;
    } else { /* gathered whole, checked one-shot */
        st->unit_v2 = st->verified = 0;
        if (ms_rd_reserve(r, st->rec_size + MIG_REC_TRAILER_SIZE) < 0)
            return MS_NEXT_ERROR;
        st->stage = ST_SMALL_BODY;
    }
    if (!emit_record)
        return MS_GO_ON; /* go on without an event */
    ev->kind = MS_EV_RECORD;
    ev->offset = st->rec_off;
    ev->length = MIG_REC_OVERHEAD + st->rec_size;
    ev->u.record.tag = st->rec_tag;
    ev->u.record.flags = st->rec_flags;
    ev->u.record.size = st->rec_size;
    ev->u.record.known = name != NULL;
    return MS_NEXT_EVENT;
}

/* ---- small records ------------------------------------------------------ */

static void event_base(mig_state *st, ms_event *ev, ms_event_kind kind)
{
    ev->kind = kind;
    ev->offset = st->rec_off;
    ev->length = MIG_REC_OVERHEAD + st->rec_size;
}

static int parse_device(ms_reader *r, const uint8_t *p, ms_event *ev)
{
    mig_state *st = ST(r);
    uint64_t base = st->rec_off + MIG_REC_HDR_SIZE;
    uint32_t handle = ms_le32(p), kind = ms_le32(p + 8);
    uint32_t flags = ms_le32(p + 12);
    uint32_t idlen = ms_le32(p + 16), clen = ms_le32(p + 20);
    if ((uint64_t)MIG_DEVICE_FIXED + idlen + clen != st->rec_size)
        return MS_FAIL(r, MS_ERR_RECORD_SIZE, st->rec_off,
                       "DEVICE record of %llu bytes holds %u + %u name and "
                       "compat bytes",
                       (unsigned long long)st->rec_size, idlen, clen);
    if (handle == MIG_DEVICE_HANDLE_INVALID)
        return MS_FAIL(r, MS_ERR_BAD_FIELD, base,
                       "device handle 0xffffffff is reserved");
    if (kind >= MS_PAYLOAD_KIND_COUNT_)
        return MS_FAIL(r, MS_ERR_BAD_FIELD, base + 8,
                       "payload_kind %u is unknown", kind);
    if (!reserved_ok(st, flags))
        return MS_FAIL(r, MS_ERR_BAD_FIELD, base + 12,
                       "reserved device flags 0x%x", flags);
    if (idlen == 0)
        return MS_FAIL(r, MS_ERR_BAD_FIELD, base + 16, "empty idstr");
    if (idlen > r->opt.max_name_length)
        return MS_FAIL_LIMIT(r, MS_LIMIT_MAX_NAME_LENGTH, base + 16,
                             "idstr of %u bytes exceeds max_name_length (%u)",
                             idlen, r->opt.max_name_length);
    if (clen > r->opt.max_compat_length)
        return MS_FAIL_LIMIT(
            r, MS_LIMIT_MAX_COMPAT_LENGTH, base + 20,
            "compat data of %u bytes exceeds max_compat_length "
            "(%u)",
            clen, r->opt.max_compat_length);
    if (idlen > MIG_IDSTR_MAX) /* reachable only with a raised limit */
        return MS_FAIL(r, MS_ERR_BAD_FIELD, base + 16,
                       "idstr of %u bytes; the format allows %u", idlen,
                       MIG_IDSTR_MAX);
    const uint8_t *id = p + MIG_DEVICE_FIXED;
    if (memchr(id, 0, idlen))
        return MS_FAIL(r, MS_ERR_BAD_FIELD, base + MIG_DEVICE_FIXED,
                       "idstr contains a NUL byte");
    uint32_t dummy;
    if (ms_u32map_get(&st->devmap, handle, &dummy))
        return MS_FAIL(r, MS_ERR_DEVICE_DUPLICATE, st->rec_off,
                       "device %u is declared twice", handle);
    if (st->ndevs >= r->opt.max_devices)
        return MS_FAIL_LIMIT(r, MS_LIMIT_MAX_DEVICES, st->rec_off,
                             "more than max_devices (%u) devices",
                             r->opt.max_devices);
    if (ms_grow(ALLOC(r), (void **)&st->devs, sizeof *st->devs, &st->devcap,
                st->ndevs + 1) < 0)
        return MS_FAIL(r, MS_ERR_NO_MEMORY, st->rec_off, "device table");
    st->last_dev = NULL; /* the table may have moved */
    mig_device *d = &st->devs[st->ndevs];
    memset(d, 0, sizeof *d);
    d->idstr = ms_alloc(ALLOC(r), idlen + 1);
    d->compat = ms_alloc(ALLOC(r), clen);
    if (!d->idstr || !d->compat ||
        ms_u32map_put(ALLOC(r), &st->devmap, handle, (uint32_t)st->ndevs) < 0) {
        ms_free(ALLOC(r), d->idstr);
        ms_free(ALLOC(r), d->compat);
        return MS_FAIL(r, MS_ERR_NO_MEMORY, st->rec_off, "device entry");
    }
    st->ndevs++;
    memcpy(d->idstr, id, idlen);
    d->idstr[idlen] = 0;
    memcpy(d->compat, id + idlen, clen);
    d->handle = handle;
    d->instance_id = ms_le32(p + 4);
    d->kind = kind;
    d->flags = flags;
    d->idstr_len = idlen;
    d->compat_len = clen;
    st->n_devices++;

    event_base(st, ev, MS_EV_DEVICE);
    ms_device_info *di = &ev->u.device;
    di->handle = handle;
    di->instance_id = d->instance_id;
    di->payload_kind = (ms_payload_kind)kind; /* < COUNT: checked above */
    di->flags = flags;
    di->idstr = d->idstr;
    di->idstr_len = idlen;
    di->compat = d->compat;
    di->compat_len = clen;
    return MS_NEXT_EVENT;
}

static int parse_image_begin(ms_reader *r, const uint8_t *p, ms_event *ev)
{
    mig_state *st = ST(r);
    uint64_t base = st->rec_off + MIG_REC_HDR_SIZE;
    mig_device *d = record_device(r, p);
    if (!d)
        return MS_NEXT_ERROR;
    uint32_t seq = ms_le32(p + 4), flags = ms_le32(p + 12);
    uint8_t phase = p[8], transport = p[9];
    if (phase < MS_PHASE_INITIAL || phase > MS_PHASE_FINAL)
        return MS_FAIL(r, MS_ERR_BAD_FIELD, base + 8, "image phase %u", phase);
    if (transport > MS_TRANSPORT_PACKETS)
        return MS_FAIL(r, MS_ERR_BAD_FIELD, base + 9, "image transport %u",
                       transport);
    if (!reserved_ok(st, ms_le16(p + 10)))
        return MS_FAIL(r, MS_ERR_BAD_FIELD, base + 10, "reserved field set");
    if (!reserved_ok(st, flags & ~MIG_IMAGE_FLAG_FULL))
        return MS_FAIL(r, MS_ERR_BAD_FIELD, base + 12,
                       "reserved image flags 0x%x", flags);
    if (!reserved_ok(st, ms_le64(p + 24)))
        return MS_FAIL(r, MS_ERR_BAD_FIELD, base + 24, "reserved field set");
    if (d->open && !st->salv.damaged) /* salvage: its end was lost */
        return MS_FAIL(r, MS_ERR_IMAGE_STATE, st->rec_off,
                       "device %s: image %u begins while image %u is open",
                       d->idstr, seq, d->img.seq);
    if (seq != d->next_seq && !(st->salv.damaged && seq > d->next_seq))
        return MS_FAIL(r, MS_ERR_IMAGE_SEQUENCE, base + 4,
                       "device %s: image %u where %u was due", d->idstr, seq,
                       d->next_seq);
    if (d->seen_final)
        return MS_FAIL(r, MS_ERR_PHASE_ORDER, base + 8,
                       "device %s: %s image after the final image", d->idstr,
                       ms_phase_name(phase));
    if (phase == MS_PHASE_INITIAL && seq != 0)
        return MS_FAIL(r, MS_ERR_PHASE_ORDER, base + 8,
                       "device %s: initial image after another image",
                       d->idstr);
    if (seq >= r->opt.max_images)
        return MS_FAIL_LIMIT(r, MS_LIMIT_MAX_IMAGES, st->rec_off,
                             "device %s: more than max_images (%u) images",
                             d->idstr, r->opt.max_images);
    if (r->opt.verify_checks) {
        if (!d->img_hash && !(d->img_hash = ms_hash_state_new(ALLOC(r))))
            return MS_FAIL(r, MS_ERR_NO_MEMORY, st->rec_off, "image hash");
        ms_hash_reset(d->img_hash, 0);
        d->unit_batched = 0;
    }
    memset(&d->img, 0, sizeof d->img);
    d->img.device = d->handle;
    d->img.seq = seq;
    d->img.phase = phase;
    d->img.transport = transport;
    d->img.flags = flags;
    d->img.timestamp_ns = ms_le64(p + 16);
    d->open = 1;
    d->salvage_damaged = 0;
    d->next_seq = seq + 1;
    event_base(st, ev, MS_EV_IMAGE_BEGIN);
    ev->u.image = d->img;
    return MS_NEXT_EVENT;
}

static int parse_image_end(ms_reader *r, const uint8_t *p, ms_event *ev)
{
    mig_state *st = ST(r);
    uint64_t base = st->rec_off + MIG_REC_HDR_SIZE;
    mig_device *d = record_device(r, p);
    if (!d)
        return MS_NEXT_ERROR;
    uint32_t seq = ms_le32(p + 4);
    if (!d->open)
        return MS_FAIL(r, MS_ERR_IMAGE_STATE, st->rec_off,
                       "device %s: IMAGE_END for image %u, none is open",
                       d->idstr, seq);
    if (seq != d->img.seq)
        return MS_FAIL(r, MS_ERR_IMAGE_SEQUENCE, base + 4,
                       "device %s: IMAGE_END for image %u, image %u is open",
                       d->idstr, seq, d->img.seq);
    ms_image_info end = d->img;
    end.length = ms_le64(p + 8);
    end.hash = ms_le64(p + 16);
    end.unit_count = ms_le64(p + 24);
    end.timestamp_ns = ms_le64(p + 32);
    end.config_length = ms_le64(p + 40);
    end.config_hash = ms_le64(p + 48);
    if (d->img.transport == MS_TRANSPORT_CHUNKS && !d->salvage_damaged) {
        if (r->opt.verify_checks && d->unit_batched) {
            ms_hash_update(d->img_hash, d->unit_batch,
                               d->unit_batched * 8u);
            d->unit_batched = 0;
        }
        if (end.length != d->img.length)
            return MS_FAIL(r, MS_ERR_IMAGE_LENGTH, st->rec_off,
                           "device %s image %u: %llu bytes, end record says "
                           "%llu",
                           d->idstr, seq, (unsigned long long)d->img.length,
                           (unsigned long long)end.length);
        if (end.unit_count != d->img.unit_count)
            return MS_FAIL(r, MS_ERR_IMAGE_LENGTH, st->rec_off,
                           "device %s image %u: %llu chunks, end record "
                           "says %llu",
                           d->idstr, seq,
                           (unsigned long long)d->img.unit_count,
                           (unsigned long long)end.unit_count);
        if (r->opt.verify_checks &&
            ms_hash_digest(d->img_hash) != end.hash)
            return MS_FAIL(r, MS_ERR_IMAGE_HASH, st->rec_off,
                           "device %s image %u: hash %016llx, end record "
                           "says %016llx",
                           d->idstr, seq,
                           (unsigned long long)ms_hash_digest(d->img_hash),
                           (unsigned long long)end.hash);
        if (end.config_length || end.config_hash)
            return MS_FAIL(r, MS_ERR_BAD_FIELD, base + 40,
                           "config fields set on a chunk-mode image");
    }
    d->open = 0;
    if (d->img.phase == MS_PHASE_FINAL)
        d->seen_final = 1;
    st->n_images++;
    event_base(st, ev, MS_EV_IMAGE_END);
    ev->u.image = end;
    return MS_NEXT_EVENT;
}

static int parse_info(ms_reader *r, const uint8_t *p, ms_event *ev)
{
    mig_state *st = ST(r);
    uint64_t base = st->rec_off + MIG_REC_HDR_SIZE;
    mig_device *d = record_device(r, p);
    if (!d)
        return MS_NEXT_ERROR;
    switch (st->rec_tag) {
    case MIG_TAG_PRECOPY_INFO: {
        uint32_t flags = ms_le32(p + 4);
        if (!reserved_ok(st, flags & ~MIG_PRECOPY_FLAG_REINIT))
            return MS_FAIL(r, MS_ERR_BAD_FIELD, base + 4,
                           "reserved precopy flags 0x%x", flags);
        event_base(st, ev, MS_EV_PRECOPY_INFO);
        ev->u.precopy.device = d->handle;
        ev->u.precopy.flags = flags;
        ev->u.precopy.initial_bytes = ms_le64(p + 8);
        ev->u.precopy.dirty_bytes = ms_le64(p + 16);
        ev->u.precopy.timestamp_ns = ms_le64(p + 24);
        break;
    }
    case MIG_TAG_STATE_CHANGE: {
        uint32_t from = ms_le32(p + 4), to = ms_le32(p + 8);
        if (from > MIG_VFIO_STATE_MAX || to > MIG_VFIO_STATE_MAX)
            return MS_FAIL(r, MS_ERR_BAD_FIELD,
                           base + (from > MIG_VFIO_STATE_MAX ? 4 : 8),
                           "device state %u is not a VFIO migration state",
                           from > MIG_VFIO_STATE_MAX ? from : to);
        if (!reserved_ok(st, ms_le32(p + 12)))
            return MS_FAIL(r, MS_ERR_BAD_FIELD, base + 12,
                           "reserved field set");
        event_base(st, ev, MS_EV_STATE_CHANGE);
        ev->u.state.device = d->handle;
        ev->u.state.from = from;
        ev->u.state.to = to;
        ev->u.state.timestamp_ns = ms_le64(p + 16);
        break;
    }
    default: /* STOP_COPY_SIZE */
        if (!reserved_ok(st, ms_le32(p + 4)))
            return MS_FAIL(r, MS_ERR_BAD_FIELD, base + 4,
                           "reserved field set");
        event_base(st, ev, MS_EV_STOP_COPY_SIZE);
        ev->u.stop_copy.device = d->handle;
        ev->u.stop_copy.bytes = ms_le64(p + 8);
        ev->u.stop_copy.timestamp_ns = ms_le64(p + 16);
        break;
    }
    return MS_NEXT_EVENT;
}

static int parse_end(ms_reader *r, const uint8_t *p, uint64_t final_check,
                     ms_event *ev)
{
    mig_state *st = ST(r);
    for (size_t i = 0; i < st->ndevs; i++)
        if (st->devs[i].open && !st->salv.damaged)
            return MS_FAIL(r, MS_ERR_IMAGE_STATE, st->rec_off,
                           "device %s: image %u is still open at END",
                           st->devs[i].idstr, st->devs[i].img.seq);
    if (!st->salv.damaged &&
        mig_streams_closed(r, &st->streams, st->rec_off) < 0)
        return MS_NEXT_ERROR;
    ms_end_info *e = &ev->u.end;
    e->record_count = ms_le64(p);
    e->stream_bytes = ms_le64(p + 8);
    e->image_bytes = ms_le64(p + 16);
    e->packet_count = ms_le64(p + 24);
    e->device_count = ms_le32(p + 32);
    e->image_count = ms_le32(p + 36);
    e->timestamp_ns = ms_le64(p + 40);
    e->final_check = final_check;
    struct {
        const char *name;
        uint64_t said, seen;
    } totals[] = {
        {"record_count", e->record_count, st->n_records},
        {"stream_bytes", e->stream_bytes, st->rec_off},
        {"image_bytes", e->image_bytes, st->image_bytes},
        {"packet_count", e->packet_count, st->n_packets},
        {"device_count", e->device_count, st->n_devices},
        {"image_count", e->image_count, st->n_images},
    };
    for (size_t i = 0; i < sizeof totals / sizeof totals[0]; i++)
        if (totals[i].said != totals[i].seen && !st->salv.damaged)
            return MS_FAIL(r, MS_ERR_END_TOTALS, st->rec_off,
                           "END says %s %llu, the channel holds %llu",
                           totals[i].name, (unsigned long long)totals[i].said,
                           (unsigned long long)totals[i].seen);
    event_base(st, ev, MS_EV_END);
    st->stage = ST_DONE;
    return MS_NEXT_EVENT;
}

static int read_small_body(ms_reader *r, ms_event *ev)
{
    mig_state *st = ST(r);
    const uint8_t *p;
    size_t size = (size_t)st->rec_size;
    if (!ms_rd_take(r, size + MIG_REC_TRAILER_SIZE, &p))
        return MS_NEXT_INPUT;
    uint64_t check = ms_le64(p + size);
    if (r->opt.verify_checks && ms_hash64(p, size, st->rec_check) != check)
        return MS_FAIL(r, MS_ERR_PAYLOAD_CHECK,
                       st->rec_off + MIG_REC_HDR_SIZE + size,
                       "%s record payload check does not match",
                       tag_name(st->rec_tag));
    st->chain = check;
    st->stage = ST_RECORD_HEADER;
    switch (st->rec_tag) {
    case MIG_TAG_DEVICE: st->n_records++; return parse_device(r, p, ev);
    case MIG_TAG_IMAGE_BEGIN:
        st->n_records++;
        return parse_image_begin(r, p, ev);
    case MIG_TAG_IMAGE_END: st->n_records++; return parse_image_end(r, p, ev);
    case MIG_TAG_END: return parse_end(r, p, check, ev);
    case MIG_TAG_STREAM_BEGIN:
        st->n_records++;
        event_base(st, ev, MS_EV_ARCHIVE_BEGIN);
        return mig_stream_begin(r, &st->streams, p, st->rec_size, st->rec_off,
                                reserved_lax(st), ev);
    case MIG_TAG_STREAM_END:
        st->n_records++;
        event_base(st, ev, MS_EV_ARCHIVE_END);
        return mig_stream_end(r, &st->streams, p, st->rec_off, reserved_lax(st), ev);
    default: st->n_records++; return parse_info(r, p, ev);
    }
}

/* ---- streamed records: CHUNK and PACKET --------------------------------- */

/* Payload bytes after a unit record's prefix (all of an unknown record's):
 * into the payload check (1.x), or the data_hash (2.x unit record). */
static void hash_payload(ms_reader *r, const uint8_t *p, size_t n)
{
    mig_state *st = ST(r);
    if (!r->opt.verify_checks || st->verified)
        return;
    ms_hash_update(st->unit_v2 ? st->unit_state : st->payload_hash, p, n);
}

/* Validate a CHUNK prefix; on a field error the caller holds it back. */
static int check_chunk_prefix(ms_reader *r, const uint8_t *p)
{
    mig_state *st = ST(r);
    uint64_t base = st->rec_off + MIG_REC_HDR_SIZE;
    mig_device *d = record_device(r, p);
    if (!d)
        return -1;
    uint32_t seq = ms_le32(p + 4), raw_len = ms_le32(p + 12);
    uint8_t comp = p[8];
    uint64_t stored = st->rec_size - MIG_CHUNK_PREFIX;
    if (!d->open || d->img.transport != MS_TRANSPORT_CHUNKS)
        return MS_FAIL(r, MS_ERR_IMAGE_STATE, st->rec_off,
                       "device %s: CHUNK without an open chunk-mode image",
                       d->idstr);
    if (seq != d->img.seq)
        return MS_FAIL(r, MS_ERR_IMAGE_SEQUENCE, base + 4,
                       "device %s: CHUNK for image %u, image %u is open",
                       d->idstr, seq, d->img.seq);
    if (comp > MS_COMPRESSION_ZLIB)
        return MS_FAIL(r, MS_ERR_BAD_FIELD, base + 8, "compression %u", comp);
    if (!reserved_ok(st, (uint64_t)p[9] | p[10] | p[11]))
        return MS_FAIL(r, MS_ERR_BAD_FIELD, base + 9, "reserved field set");
    if (raw_len == 0)
        return MS_FAIL(r, MS_ERR_BAD_FIELD, base + 12, "raw_len is 0");
    if (comp == MS_COMPRESSION_NONE && stored != raw_len)
        return MS_FAIL(r, MS_ERR_RECORD_SIZE, st->rec_off,
                       "uncompressed CHUNK holds %llu bytes, raw_len says %u",
                       (unsigned long long)stored, raw_len);
    st->cur = d;
    st->cur_seq = seq;
    st->cur_raw_len = raw_len;
    return comp;
}

static int check_packet_prefix(ms_reader *r, const uint8_t *p)
{
    mig_state *st = ST(r);
    uint64_t base = st->rec_off + MIG_REC_HDR_SIZE;
    mig_device *d = record_device(r, p);
    if (!d)
        return -1;
    uint32_t flags = ms_le32(p + 12);
    if (!reserved_ok(st, flags & ~MIG_PACKET_FLAG_CONFIG))
        return MS_FAIL(r, MS_ERR_BAD_FIELD, base + 12,
                       "reserved packet flags 0x%x", flags);
    if (!reserved_ok(st, ms_le64(p + 16)))
        return MS_FAIL(r, MS_ERR_BAD_FIELD, base + 16, "reserved field set");
    st->cur_config = (flags & MIG_PACKET_FLAG_CONFIG) != 0;
    if (!st->cur_config && st->rec_size == MIG_PACKET_PREFIX)
        return MS_FAIL(r, MS_ERR_RECORD_SIZE, st->rec_off,
                       "device %s: empty data packet", d->idstr);
    st->cur = d;
    st->cur_seq = ms_le32(p + 4);
    st->cur_idx = ms_le32(p + 8);
    return 0;
}

static int inflate_begin(ms_reader *r)
{
    mig_state *st = ST(r);
    if (!st->zout && !(st->zout = ms_alloc(ALLOC(r), INFLATE_WINDOW)))
        return MS_FAIL(r, MS_ERR_NO_MEMORY, st->rec_off, "inflate window");
    if (!st->zs_ready) {
        memset(&st->zs, 0, sizeof st->zs);
        ms_dec_mem_init(&st->zmem, ALLOC(r), r->opt.max_decompress_bytes);
        if (ms_dec_inflate_init(&st->zs, &st->zmem, MAX_WBITS) < 0) {
            if (st->zmem.refused)
                return MS_FAIL_LIMIT(
                    r, MS_LIMIT_MAX_DECOMPRESS_BYTES, st->rec_off,
                    "zlib's state exceeds max_decompress_bytes (%llu)",
                    (unsigned long long)r->opt.max_decompress_bytes);
            return MS_FAIL(r, MS_ERR_NO_MEMORY, st->rec_off, "inflateInit");
        }
        st->zs_ready = 1;
    } else if (inflateReset(&st->zs) != Z_OK) {
        return MS_FAIL(r, MS_ERR_NO_MEMORY, st->rec_off, "inflateReset");
    }
    st->zs_ended = 0;
    return 0;
}

static int read_prefix(ms_reader *r, ms_event *ev)
{
    mig_state *st = ST(r);
    int is_packet = st->rec_tag == MIG_TAG_PACKET;
    size_t n = is_packet ? MIG_PACKET_PREFIX : MIG_CHUNK_PREFIX;
    const uint8_t *p;
    if (ms_rd_reserve(r, n) < 0)
        return MS_NEXT_ERROR;
    if (!ms_rd_take(r, n, &p))
        return MS_NEXT_INPUT;
    if (st->unit_v2) /* hashed with the data's hash at the trailer */
        memcpy(st->unit_prefix, p, n);
    else
        hash_payload(r, p, n);
    return prefix_event(r, ev, p);
}

/* The prefix `p` of the CHUNK or PACKET record being read was taken: check
 * it (a field error is held, see the file comment) and emit its event. */
static int prefix_event(ms_reader *r, ms_event *ev, const uint8_t *p)
{
    mig_state *st = ST(r);
    int is_packet = st->rec_tag == MIG_TAG_PACKET;
    size_t n = is_packet ? MIG_PACKET_PREFIX : MIG_CHUNK_PREFIX;
    st->cur_packet = is_packet;
    st->cur_data_off = st->rec_off + MIG_REC_HDR_SIZE + n;
    st->cur_produced = 0;
    st->remaining = st->rec_size - n;
    int comp = is_packet ? check_packet_prefix(r, p) : check_chunk_prefix(r, p);
    if (comp < 0) {
        if (r->err.code == MS_ERR_NO_MEMORY)
            return MS_NEXT_ERROR;
        hold_error(st, &r->err);
        st->stage = ST_SKIP;
        return MS_GO_ON;
    }
    if (is_packet) {
        event_base(st, ev, MS_EV_PACKET);
        st->n_packets++;
        ev->u.packet.device = st->cur->handle;
        ev->u.packet.seq = st->cur_seq;
        ev->u.packet.idx = st->cur_idx;
        ev->u.packet.flags = ms_le32(p + 12);
        ev->u.packet.size = st->remaining;
        ev->u.packet.config = st->cur_config;
        st->stage = ST_DATA;
        return MS_NEXT_EVENT;
    }
    st->cur_image_off = st->cur->img.length;
    if (comp == MS_COMPRESSION_ZLIB) {
        if (inflate_begin(r) < 0)
            return MS_NEXT_ERROR;
        if (st->unit_v2 && r->opt.verify_checks)
            ms_hash_reset(st->inflate_state, 0);
        st->stage = ST_INFLATE;
    } else {
        st->stage = ST_DATA;
    }
    if (r->opt.data_only)
        return MS_GO_ON; /* no CHUNK events */
    event_base(st, ev, MS_EV_CHUNK);
    ev->u.chunk.device = st->cur->handle;
    ev->u.chunk.seq = st->cur_seq;
    ev->u.chunk.compression = (ms_compression)comp;
    ev->u.chunk.raw_len = st->cur_raw_len;
    ev->u.chunk.stored_len = st->remaining;
    ev->u.chunk.image_offset = st->cur_image_off;
    return MS_NEXT_EVENT;
}

/* Fill a DATA event for bytes of the current chunk or packet. */
static void data_event(mig_state *st, ms_event *ev, const uint8_t *p,
                       size_t n, uint64_t stream_off, int zero_copy)
{
    ms_data_info *d = ms_ev_data(ev, p, n, stream_off, zero_copy);
    ev->length = zero_copy ? n : 0; /* inflated bytes are not stream bytes */
    d->device = st->cur->handle;
    d->seq = st->cur_seq;
    d->compressed = !zero_copy;
    d->image_offset = st->cur_image_off + st->cur_produced;
    if (st->cur_packet) {
        d->in_packet = 1;
        d->packet_idx = st->cur_idx;
        d->config = st->cur_config;
        d->image_offset = 0; /* only the set knows where a packet lands */
    } else {
        d->phase = st->cur->img.phase;
    }
}

/* A streamed record was read whole and its check matched. */
static void record_done(mig_state *st)
{
    if (st->rec_tag == MIG_TAG_CHUNK) {
        st->cur->img.unit_count++;
        st->image_bytes += st->cur_raw_len;
    }
    st->n_records++;
}

/* Image bytes of a chunk: count them, and (1.x) hash them into the open
 * image. */
static void account_image_bytes(ms_reader *r, const uint8_t *p, size_t n)
{
    mig_state *st = ST(r);
    mig_device *d = st->cur;
    if (r->opt.verify_checks && st->major < 2)
        ms_hash_update(d->img_hash, p, n);
    d->img.length += n;
}

/* 2.x: a chunk's unit hash into its image's hash (spec 5.4), batched. */
static void add_unit_hash(mig_device *dev, uint64_t unit_hash)
{
    ms_put_le64(dev->unit_batch + 8 * dev->unit_batched++, unit_hash);
    if (dev->unit_batched == UNIT_BATCH) {
        ms_hash_update(dev->img_hash, dev->unit_batch,
                           sizeof dev->unit_batch);
        dev->unit_batched = 0;
    }
}

/* The unit's data is complete (2.x: its unit hash is known): mark the last
 * DATA event, and hash a chunk's unit hash into the image (spec 5.4). */
static void unit_end(ms_reader *r, ms_data_info *d, uint64_t unit_hash)
{
    mig_state *st = ST(r);
    d->unit_end = 1;
    if (!r->opt.verify_checks || st->major < 2)
        return;
    d->unit_hash = unit_hash;
    if (!st->cur_packet)
        add_unit_hash(st->cur, unit_hash);
}

/* A verified record's check (the fast path): the record is done. */
static void take_verified_trailer(ms_reader *r)
{
    mig_state *st = ST(r);
    const uint8_t *p;
    ms_rd_peek(r, MIG_REC_TRAILER_SIZE, &p); /* in the slice: verified */
    st->chain = ms_le64(p);
    ms_rd_skip(r, MIG_REC_TRAILER_SIZE);
    record_done(st);
    st->stage = ST_RECORD_HEADER;
}

/* ---- runs of small records (ms_options.data_only) ------------------------
 * At a record boundary, the whole small records back to back in the slice
 * that carry no event of their own under data_only (uncompressed CHUNKs of
 * one image, unknown optional records) are checked one after the other in
 * one tight loop (header check, fields, payload check: what the general
 * path checks), the chunks' data bytes copied together into `zout`: one
 * DATA event for the run.  A stream of 1-byte chunks (or of empty vendor
 * records) then costs two or three short hashes per record instead of two
 * events per record through every layer above the reader.  The first
 * record that is none of these (or fails any check) ends the run and is
 * read by the general path, which reports what is wrong with it. */

/* What run_record found. */
typedef enum run_step {
    RUN_ENDS,   /* not a run record: the run ends before it */
    RUN_CHUNK,  /* a chunk of the run's image: *len data bytes */
    RUN_SKIPPED /* an unknown optional record, checked: no bytes */
} run_step;

/* A whole unknown optional record at `p` (its `size` payload bytes in the
 * slice) whose checks match: its payload check in *check. */
static int skippable(ms_reader *r, const uint8_t *p, uint64_t size,
                     uint64_t *check)
{
    uint64_t hcheck = ms_le64(p + MIG_REC_OFF_CHECK);
    if (ms_le32(p + MIG_REC_OFF_FLAGS) != MIG_FLAG_OPTIONAL ||
        tag_name(ms_le32(p + MIG_REC_OFF_TAG)) || size > RUN_RECORD_MAX ||
        ms_hash64(p, MIG_REC_OFF_CHECK, ST(r)->chain) != hcheck)
        return 0;
    *check = ms_hash64(p + MIG_REC_HDR_SIZE, (size_t)size, hcheck);
    return *check == ms_le64(p + MIG_REC_HDR_SIZE + size);
}

/* The record at `p` (`avail` bytes of the slice from it).  A chunk is one
 * of the run if it is whole, uncompressed, holds at most `room` data bytes
 * (and RUN_RECORD_MAX), belongs to the open chunk-mode image of device *dev
 * (*dev NULL: of any device, then set) and its checks and fields are all
 * right; *check gets the record's payload check. */
static run_step run_record(ms_reader *r, const uint8_t *p, size_t avail,
                           mig_device **dev, size_t room, size_t *len,
                           uint64_t *check)
{
    mig_state *st = ST(r);
    if (avail < MIG_REC_OVERHEAD)
        return RUN_ENDS;
    uint64_t size = ms_le64(p + MIG_REC_OFF_SIZE);
    if (size > r->opt.max_record_payload || avail - MIG_REC_OVERHEAD < size)
        return RUN_ENDS;
    if (ms_le32(p + MIG_REC_OFF_TAG) != MIG_TAG_CHUNK)
        return skippable(r, p, size, check) ? RUN_SKIPPED : RUN_ENDS;
    const uint8_t *pre = p + MIG_REC_HDR_SIZE, *data = pre + MIG_CHUNK_PREFIX;
    size_t n = (size_t)(size - MIG_CHUNK_PREFIX); /* checked just below */
    /* flags 0 (CHUNK is mandatory); compression none, reserved 0 */
    if (ms_le32(p + MIG_REC_OFF_FLAGS) != 0 || size <= MIG_CHUNK_PREFIX ||
        size - MIG_CHUNK_PREFIX > MS_MIN(room, RUN_RECORD_MAX) ||
        pre[8] != MS_COMPRESSION_NONE || (pre[9] | pre[10] | pre[11]) != 0 ||
        ms_le32(pre + 12) != n)
        return RUN_ENDS;
    mig_device *d = *dev;
    if (d && d->handle != ms_le32(pre))
        return RUN_ENDS; /* a run is one image's */
    if (!d)
        d = lookup_device(st, ms_le32(pre));
    if (!d || !d->open || d->img.transport != MS_TRANSPORT_CHUNKS ||
        ms_le32(pre + 4) != d->img.seq)
        return RUN_ENDS;
    uint64_t hcheck = ms_le64(p + MIG_REC_OFF_CHECK), unit_hash = 0;
    if (ms_hash64(p, MIG_REC_OFF_CHECK, st->chain) != hcheck)
        return RUN_ENDS;
    if (st->major >= 2) {
        unit_hash = ms_hash64(data, n, 0);
        *check = mig_unit_payload_check(pre, MIG_CHUNK_PREFIX, unit_hash,
                                        hcheck);
    } else {
        *check = ms_hash64(pre, (size_t)size, hcheck);
    }
    if (*check != ms_le64(pre + size))
        return RUN_ENDS;
    if (st->major >= 2)
        add_unit_hash(d, unit_hash); /* taken: the caller consumes it */
    *dev = d;
    *len = n;
    return RUN_CHUNK;
}

/* Hand out the run's `got` bytes of device `d`'s image, copied to zout
 * from the stream bytes first..last, as one DATA event. */
static void run_event(ms_reader *r, ms_event *ev, mig_device *d, size_t got,
                      uint64_t first, uint64_t last)
{
    mig_state *st = ST(r);
    st->cur = d;
    st->cur_packet = 0;
    st->cur_seq = d->img.seq;
    st->cur_image_off = d->img.length;
    st->cur_produced = 0;
    account_image_bytes(r, st->zout, got);
    st->image_bytes += got;
    data_event(st, ev, st->zout, got, first, 0);
    ev->length = last - first; /* the stream bytes the run spans */
    ev->u.data.compressed = 0;
    ev->u.data.unit_end = 1; /* several units: no one unit hash */
}

/* At a record boundary: a run (see above).  MS_NEXT_EVENT with its chunks'
 * bytes, MS_GO_ON after records without bytes, or 0 when the first record
 * is not a run record (nothing read). */
static int read_run(ms_reader *r, ms_event *ev)
{
    mig_state *st = ST(r);
    if (!st->zout && !(st->zout = ms_alloc(ALLOC(r), INFLATE_WINDOW)))
        return MS_FAIL(r, MS_ERR_NO_MEMORY, r->offset, "run buffer");
    const uint8_t *p = r->in + r->in_pos;
    size_t avail = ms_rd_avail(r), len = 0, got = 0, used = 0;
    uint64_t check, first = 0, last = 0;
    mig_device *d = NULL;
    run_step step;
    while ((step = run_record(r, p + used, avail - used, &d,
                              INFLATE_WINDOW - got, &len, &check)) !=
           RUN_ENDS) {
        size_t whole = MIG_REC_OVERHEAD + (size_t)ms_le64(p + used);
        if (step == RUN_CHUNK) {
            memcpy(st->zout + got, p + used + whole - MIG_REC_TRAILER_SIZE - len,
                   len);
            if (got == 0)
                first = r->offset + used + whole - MIG_REC_TRAILER_SIZE - len;
            got += len;
            last = r->offset + used + whole - MIG_REC_TRAILER_SIZE;
            d->img.unit_count++;
        }
        st->chain = check;
        st->n_records++;
        used += whole;
    }
    if (used == 0)
        return 0;
    ms_rd_skip(r, used);
    if (got == 0)
        return MS_GO_ON; /* records without bytes: no event */
    run_event(r, ev, d, got, first, last);
    return MS_NEXT_EVENT;
}

/* The next view of a streamed payload (CHUNK, PACKET, STREAM_DATA):
 * MS_NEXT_EVENT with *p, *n; MS_GO_ON at its end (on to TRAILER);
 * MS_NEXT_INPUT when the slice is used up. */
static int payload_view(ms_reader *r, const uint8_t **p, size_t *n)
{
    mig_state *st = ST(r);
    if (st->remaining == 0) {
        st->stage = ST_TRAILER;
        return MS_GO_ON;
    }
    *n = ms_rd_peek(r, MS_MIN(st->remaining, DATA_VIEW_MAX), p);
    return *n ? MS_NEXT_EVENT : MS_NEXT_INPUT;
}

static int read_data(ms_reader *r, ms_event *ev)
{
    mig_state *st = ST(r);
    const uint8_t *p;
    size_t n;
    int rc = payload_view(r, &p, &n);
    if (rc != MS_NEXT_EVENT)
        return rc;
    uint64_t off = ms_rd_pos(r);
    hash_payload(r, p, n);
    if (!st->cur_packet)
        account_image_bytes(r, p, n);
    data_event(st, ev, p, n, off, 1);
    /* after salvage the stash may hold payload bytes (spec/salvage.md) */
    ev->u.data.zero_copy = ms_rd_in_input(r, p);
    st->cur_produced += n;
    st->remaining -= n;
    ms_rd_skip(r, n);
    if (st->remaining == 0) {
        uint64_t unit_hash = st->verified ? st->verified_unit_hash : 0;
        if (!st->verified && st->unit_v2 && r->opt.verify_checks)
            unit_hash = ms_hash_digest(st->unit_state);
        unit_end(r, &ev->u.data, unit_hash);
        if (st->verified)
            take_verified_trailer(r);
    }
    return MS_NEXT_EVENT;
}

static int read_inflate(ms_reader *r, ms_event *ev)
{
    mig_state *st = ST(r);
    const uint8_t *p;
    size_t n = ms_rd_peek(r, st->remaining, &p);
    if (n == 0 && st->remaining > 0)
        return MS_NEXT_INPUT;
    uint64_t data_off = st->cur_data_off;
    const char *bad = NULL;
    size_t made = 0;
    if (st->zs_ended) {
        if (!st->remaining) {
            st->stage = ST_TRAILER;
            return MS_GO_ON;
        }
        bad = "bytes after the end of the zlib stream";
    } else {
        /* Room for one byte more than raw_len, so an overlong stream shows. */
        uint64_t room = (uint64_t)st->cur_raw_len - st->cur_produced + 1;
        st->zs.next_in = (Bytef *)p;
        st->zs.avail_in = (uInt)MS_MIN(n, (size_t)UINT32_MAX);
        st->zs.next_out = st->zout;
        st->zs.avail_out = (uInt)MS_MIN(room, (uint64_t)INFLATE_WINDOW);
        int zrc = inflate(&st->zs, Z_NO_FLUSH);
        size_t used = (size_t)(st->zs.next_in - p);
        made = (size_t)(st->zs.next_out - st->zout);
        hash_payload(r, p, used);
        ms_rd_skip(r, used);
        st->remaining -= used;
        if (zrc == Z_STREAM_END)
            st->zs_ended = 1;
        if (zrc != Z_OK && zrc != Z_STREAM_END && zrc != Z_BUF_ERROR)
            bad = st->zs.msg ? st->zs.msg : "inflate failed";
        else if (st->cur_produced + made > st->cur_raw_len)
            bad = "inflates to more than raw_len";
        else if (st->zs_ended && st->cur_produced + made != st->cur_raw_len)
            bad = "inflates to fewer than raw_len bytes";
        else if (!st->zs_ended && !st->remaining && !made && !used)
            bad = "the zlib stream is incomplete";
    }
    if (bad) {
        MS_FAIL(r, MS_ERR_DECOMPRESS, data_off,
                "device %s image %u chunk: %s", st->cur->idstr, st->cur_seq,
                bad);
        hold_error(st, &r->err);
        st->stage = ST_SKIP;
        return MS_GO_ON;
    }
    if (made == 0)
        return MS_GO_ON; /* consumed input without output; go on */
    account_image_bytes(r, st->zout, made);
    if (st->unit_v2 && r->opt.verify_checks)
        ms_hash_update(st->inflate_state, st->zout, made);
    data_event(st, ev, st->zout, made, data_off, 0);
    st->cur_produced += made;
    if (st->cur_produced == st->cur_raw_len)
        unit_end(r, &ev->u.data,
                 st->unit_v2 && r->opt.verify_checks
                     ? ms_hash_digest(st->inflate_state)
                     : 0);
    return MS_NEXT_EVENT;
}

static int read_skip(ms_reader *r)
{
    mig_state *st = ST(r);
    const uint8_t *p;
    if (st->remaining == 0) {
        st->stage = ST_TRAILER;
        return MS_GO_ON;
    }
    size_t n = ms_rd_peek(r, st->remaining, &p);
    if (n == 0)
        return MS_NEXT_INPUT;
    hash_payload(r, p, n);
    ms_rd_skip(r, n);
    st->remaining -= n;
    return MS_GO_ON;
}

/* The payload check of the streamed record just read. */
static uint64_t streamed_check(mig_state *st)
{
    if (!st->unit_v2)
        return ms_hash_digest(st->payload_hash);
    return unit_payload_check(st, st->unit_prefix,
                              ms_hash_digest(st->unit_state));
}

static int read_resync(ms_reader *r, ms_event *ev);

/* STREAM_PREFIX: a STREAM_DATA record's stream id and offset; a field
 * error is held until the payload check is known (file comment). */
static int read_stream_prefix(ms_reader *r, ms_event *ev)
{
    mig_state *st = ST(r);
    const uint8_t *p;
    (void)ev;
    if (ms_rd_reserve(r, MIG_STREAM_DATA_PREFIX) < 0)
        return MS_NEXT_ERROR;
    if (!ms_rd_take(r, MIG_STREAM_DATA_PREFIX, &p))
        return MS_NEXT_INPUT;
    hash_payload(r, p, MIG_STREAM_DATA_PREFIX);
    st->remaining = st->rec_size - MIG_STREAM_DATA_PREFIX;
    int lax = reserved_lax(st);
    if (mig_stream_data_prefix(r, &st->streams, p, st->rec_off, lax) < 0) {
        if (r->err.code == MS_ERR_NO_MEMORY)
            return MS_NEXT_ERROR;
        hold_error(st, &r->err);
        st->stage = ST_SKIP;
        return MS_GO_ON;
    }
    st->stage = ST_STREAM_DATA;
    return MS_GO_ON;
}

/* STREAM_DATA: the embedded stream's bytes, as views of the input. */
static int read_stream_data(ms_reader *r, ms_event *ev)
{
    mig_state *st = ST(r);
    const uint8_t *p;
    size_t n;
    int rc = payload_view(r, &p, &n);
    if (rc != MS_NEXT_EVENT)
        return rc;
    hash_payload(r, p, n);
    mig_stream_data(r, &st->streams, p, n, ms_rd_pos(r), ev);
    st->remaining -= n;
    ms_rd_skip(r, n);
    return MS_NEXT_EVENT;
}

static int read_trailer(ms_reader *r)
{
    mig_state *st = ST(r);
    const uint8_t *p;
    uint64_t off = ms_rd_unit_offset(r);
    if (!ms_rd_take(r, MIG_REC_TRAILER_SIZE, &p))
        return MS_NEXT_INPUT;
    uint64_t check = ms_le64(p);
    if (r->opt.verify_checks && !st->verified && streamed_check(st) != check) {
        const char *name = tag_name(st->rec_tag);
        return MS_FAIL(r, MS_ERR_PAYLOAD_CHECK, off,
                       "%s record payload check does not match%s%s",
                       name ? name : "unknown",
                       st->pend_code ? "; its fields also look wrong: " : "",
                       st->pend_code ? st->pend_detail : "");
    }
    if (st->pend_code) {
        ms_fail(&r->err, st->pend_code, st->pend_off, "%s", st->pend_detail);
        return MS_NEXT_ERROR;
    }
    st->chain = check;
    record_done(st);
    st->stage = ST_RECORD_HEADER;
    return MS_GO_ON;
}

/* ---- framing ops ---------------------------------------------------------- */

/* The diagram at the top of this file, stage by stage. */
#define AT(stage) [(stage) - ST_HEADER] /* the table starts at ST_HEADER */
static const ms_stage mig_stages[] = {
    AT(ST_HEADER) = {"HEADER", .emit = read_header},
    AT(ST_RECORD_HEADER) = {"RECORD_HEADER", .emit = read_record_header},
    AT(ST_SMALL_BODY) = {"SMALL_BODY", .emit = read_small_body},
    AT(ST_PREFIX) = {"PREFIX", .emit = read_prefix},
    AT(ST_DATA) = {"DATA", .emit = read_data},
    AT(ST_INFLATE) = {"INFLATE", .emit = read_inflate},
    AT(ST_SKIP) = {"SKIP", .walk = read_skip},
    AT(ST_TRAILER) = {"TRAILER", .walk = read_trailer},
    AT(ST_DONE) = {"DONE", .ends_after = "the END record"},
    AT(ST_RESYNC) = {"RESYNC", .emit = read_resync},
    AT(ST_STREAM_PREFIX) = {"STREAM_PREFIX", .emit = read_stream_prefix},
    AT(ST_STREAM_DATA) = {"STREAM_DATA", .emit = read_stream_data},
};
#undef AT
static const ms_stage_table mig_table = MS_STAGE_TABLE(ST_HEADER, mig_stages);

/* The reader's `next`: the stage runner, except that the fast path's two
 * steps (read_whole_unit at a record boundary, then the DATA step of the
 * record it took) are called straight away (per-record cost counts for
 * streams of minimum-size records). */
static int mig_next(ms_reader *r, ms_event *ev)
{
    mig_state *st = ST(r);
    if (st->stage == ST_DATA && st->verified && st->remaining > 0)
        return read_data(r, ev); /* its views, already checked */
    if (st->stage == ST_RECORD_HEADER && !r->err.code) {
        int rc = read_whole_unit(r, ev);
        if (rc == MS_NEXT_EVENT || rc == MS_NEXT_ERROR)
            return rc;
        /* 0: not taken; MS_GO_ON: taken, a field error held (SKIP), a
         * CHUNK without its event under data_only (DATA), or a run of
         * records without bytes (RECORD_HEADER) */
    }
    return ms_run_stages(r, ev, &mig_table, &st->stage);
}

static int mig_finish(ms_reader *r)
{
    mig_state *st = ST(r);
    switch (st->stage) {
    case ST_DONE: return 0;
    case ST_RESYNC: return ms_salvage_finish(r, &st->salv.range);
    case ST_RECORD_HEADER:
        if (r->stash_len == 0)
            return MS_FAIL(r, MS_ERR_MISSING_END, r->offset,
                           "input ends after %llu records without an END "
                           "record",
                           (unsigned long long)st->n_records);
        return MS_FAIL(r, MS_ERR_TRUNCATED, r->offset,
                       "input ends inside the record header at %llu",
                       (unsigned long long)ms_rd_unit_offset(r));
    case ST_HEADER:
        return MS_FAIL(r, MS_ERR_TRUNCATED, r->offset,
                       "input ends inside the %d-byte stream header",
                       MIG_HDR_SIZE);
    default: {
        const char *name = tag_name(st->rec_tag);
        return MS_FAIL(r, MS_ERR_TRUNCATED, r->offset,
                       "input ends inside the %s record at %llu (%llu "
                       "payload bytes)",
                       name ? name : "unknown",
                       (unsigned long long)st->rec_off,
                       (unsigned long long)st->rec_size);
    }
    }
}

static void mig_destroy(ms_reader *r)
{
    mig_state *st = ST(r);
    if (!st)
        return;
    for (size_t i = 0; i < st->ndevs; i++) {
        ms_free(ALLOC(r), st->devs[i].idstr);
        ms_free(ALLOC(r), st->devs[i].compat);
        ms_hash_state_free(ALLOC(r), st->devs[i].img_hash);
    }
    ms_free(ALLOC(r), st->devs);
    mig_streams_free(r, &st->streams);
    ms_u32map_free(ALLOC(r), &st->devmap);
    ms_hash_state_free(ALLOC(r), st->payload_hash);
    ms_hash_state_free(ALLOC(r), st->unit_state);
    ms_hash_state_free(ALLOC(r), st->inflate_state);
    if (st->zs_ready)
        inflateEnd(&st->zs);
    ms_free(ALLOC(r), st->zout);
    ms_framing_free(r);
}

/* ---- salvage (spec/salvage.md; the scan is mig_salvage.c) ---------------- */

/* A record failed (ms_options.salvage): the unit it lost, when its header
 * verified and its prefix was accepted (the bytes it already gave out as
 * DATA are not to be trusted), then the scan from the failed unit's
 * first byte: every stage that fails took that unit last. */
static int mig_salvage_op(ms_reader *r, ms_event *ev)
{
    mig_state *st = ST(r);
    int unit_known = st->stage == ST_TRAILER && st->cur &&
                     (st->rec_tag == MIG_TAG_CHUNK ||
                      st->rec_tag == MIG_TAG_PACKET) &&
                     (!st->pend_code || st->pend_code == MS_ERR_DECOMPRESS);
    if (!r->opt.verify_checks || !ms_salvage_can(&r->err) ||
        (st->stage != ST_HEADER && st->stage != ST_RECORD_HEADER &&
         st->stage != ST_SMALL_BODY && st->stage != ST_TRAILER))
        return MS_NEXT_ERROR;
    /* the chains the next record may verify against besides the bytes
     * before it: the last verified one, and the failed record's own
     * check computed from its payload (its stored check damaged) */
    uint64_t alt[MIG_SALVAGE_ALT] = {st->chain, st->chain};
    const uint8_t *p;
    if (st->stage == ST_TRAILER && !st->verified)
        alt[1] = streamed_check(st);
    ms_rd_untake(r);
    /* a record the fast path verified: its check is the one stored (the
     * same whatever the slicing, which decides whether it was taken) */
    if (st->stage == ST_TRAILER && st->verified &&
        ms_rd_peek(r, MIG_REC_TRAILER_SIZE, &p) == MIG_REC_TRAILER_SIZE)
        alt[1] = ms_le64(p);
    if (st->stage == ST_SMALL_BODY &&
        ms_rd_peek(r, (size_t)st->rec_size, &p) == st->rec_size)
        alt[1] = ms_hash64(p, (size_t)st->rec_size, st->rec_check);
    ms_damage_info unit = {.has_image = 1, .length_known = 1};
    mig_device *d = st->cur;
    if (unit_known) {
        unit.device = d->handle;
        unit.seq = st->cur_seq;
        unit.phase = d->img.phase;
        unit.in_packet = st->cur_packet;
        unit.packet_idx = st->cur_idx;
        unit.image_offset = st->cur_packet ? 0 : st->cur_image_off;
        unit.image_length = st->cur_packet ? st->rec_size - MIG_PACKET_PREFIX
                                           : st->cur_raw_len;
        if (!st->cur_packet) { /* later chunks keep their offsets */
            d->img.length = st->cur_image_off + st->cur_raw_len;
            d->salvage_damaged = 1;
        }
    }
    /* where the failed record ends, when its header verified: a scan that
     * stops there lost nothing else */
    uint64_t known_end = 0;
    if (st->stage == ST_HEADER)
        known_end = MIG_HDR_SIZE;
    else if (r->err.code != MS_ERR_RECORD_CHECK &&
             st->rec_size <= UINT64_MAX - MIG_REC_OVERHEAD - st->rec_off)
        known_end = st->rec_off + MIG_REC_OVERHEAD + st->rec_size;
    mig_salvage_begin(r, &st->salv, st->stage == ST_HEADER ? 0 : st->rec_off,
                      unit_known ? &unit : NULL, unit_known ? d->idstr : NULL,
                      alt, st->stage == ST_HEADER ? 0 : MIG_SALVAGE_ALT);
    st->salv.known_end = known_end;
    /* header damaged: 1.x if it says so, else 2.x */
    if (st->stage == ST_HEADER)
        st->major = ms_rd_peek(r, MIG_HDR_SIZE, &p) == MIG_HDR_SIZE &&
                            ms_le16(p + MIG_HDR_OFF_MAJOR) == 1
                        ? 1
                        : 2;
    st->pend_code = 0;
    st->verified = 0;
    st->stage = ST_RESYNC;
    return mig_next(r, ev);
}

/* RESYNC: the scan, the damage event, and when more than the failed
 * record was skipped a note per image open across it. */
static int read_resync(ms_reader *r, ms_event *ev)
{
    mig_state *st = ST(r);
    mig_salvage *s = &st->salv;
    if (!s->found) {
        int rc = mig_salvage_scan(r, s);
        if (rc != 1)
            return rc;
        ms_salvage_event(&s->range, ev);
        return MS_NEXT_EVENT;
    }
    while (s->range.to != s->known_end && s->note < st->ndevs) {
        mig_device *d = &st->devs[s->note++];
        if (d->open) { /* records of unknown kind lost: its bytes too? */
            d->salvage_damaged = 1;
            mig_salvage_note(s, ev, &d->img, d->idstr);
            return MS_NEXT_EVENT;
        }
    }
    st->chain = s->seed;
    st->stage = ST_RECORD_HEADER;
    return MS_GO_ON;
}

static int ms_mig_init(ms_reader *r)
{
    mig_state *st = ms_framing_new(r, sizeof *st);
    if (!st)
        return -1;
    if (!(st->payload_hash = ms_hash_state_new(ALLOC(r))) ||
        !(st->unit_state = ms_hash_state_new(ALLOC(r))) ||
        !(st->inflate_state = ms_hash_state_new(ALLOC(r))))
        return MS_FAIL(r, MS_ERR_NO_MEMORY, 0, "payload hash state");
    return ms_rd_reserve(r, MIG_HDR_SIZE);
}

const ms_framing_ops ms_mig_ops = {
    .format = MS_FORMAT_MIGSTREAM,
    .init = ms_mig_init,
    .next = mig_next,
    .stages = &mig_table,
    .stage_at = offsetof(mig_state, stage),
    .finish = mig_finish,
    .destroy = mig_destroy,
    .salvage = mig_salvage_op,
};
