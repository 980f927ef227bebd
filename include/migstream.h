/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/*
 * migstream — read, check and write the byte streams that carry a virtual
 * machine's device state during live migration.
 *
 * Model: push bytes in, pull events out.  A reader (ms_reader) decodes one
 * byte stream (one file or one channel); the caller hands it any slice of
 * input, split at any byte, and pulls events until the reader asks for more.
 * A set (ms_set) takes the events of every channel of one migration and
 * checks what spans channels (UUIDs, channel indexes, device-state packets
 * reassembled by index).  An ms_migration drives both for every channel of
 * one migration.  A writer (ms_writer) produces migstream streams (format
 * 2.0, or 1.0 on request), one or many channels at once.
 *
 * The library keeps no global state, never prints and never exits; every
 * allocation is bounded by a limit in ms_options.  Formats: spec/.
 *
 * Threads: objects share nothing with each other, so different objects
 * (readers, sets, nests, writers, migrations) may be used on different
 * threads at once.  One object is used by one thread at a time: readers,
 * sets and nests take no lock, and the caller serialises the calls on each.
 * Exceptions: an ms_migration locks itself and, with
 * MS_MIGRATION_CONCURRENT, takes each channel's input on its own thread
 * (see ms_migration); an ms_writer's channels may be written from
 * different threads as long as the calls on one channel and on one device
 * are serialised (see ms_writer_create).  Event data (ms_event views) is
 * valid until the next call on the object that produced it.
 */
#ifndef MIGSTREAM_H
#define MIGSTREAM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(MIGSTREAM_BUILDING) && defined(__GNUC__)
#define MS_API __attribute__((visibility("default")))
#else
#define MS_API
#endif

/* ---- version --------------------------------------------------------- */
#define MIGSTREAM_VERSION_MAJOR 0
#define MIGSTREAM_VERSION_MINOR 1
#define MIGSTREAM_VERSION_PATCH 0
#define MIGSTREAM_VERSION_NUMBER                                              \
    (MIGSTREAM_VERSION_MAJOR * 10000 + MIGSTREAM_VERSION_MINOR * 100 +        \
     MIGSTREAM_VERSION_PATCH)
#define MS_STR2_(x) #x
#define MS_STR_(x) MS_STR2_(x)
#define MIGSTREAM_VERSION_STRING                                              \
    MS_STR_(MIGSTREAM_VERSION_MAJOR)                                          \
    "." MS_STR_(MIGSTREAM_VERSION_MINOR) "." MS_STR_(MIGSTREAM_VERSION_PATCH)

/* The migstream container format version this library writes by default.
 * It reads versions MS_FORMAT_VERSION_MAJOR_OLDEST..MS_FORMAT_VERSION_MAJOR
 * (any minor), and writes 1.0 on request (ms_writer_options.format_major). */
#define MS_FORMAT_VERSION_MAJOR 2
#define MS_FORMAT_VERSION_MINOR 1 /* 2.1: embedded streams (STREAM_*) */
#define MS_FORMAT_VERSION_MAJOR_OLDEST 1

MS_API unsigned ms_version_number(void); /* MIGSTREAM_VERSION_NUMBER */
MS_API const char *ms_version_string(void);

/* ---- errors ----------------------------------------------------------
 * One list; it generates the enum, the names and the descriptions.
 * X(ENUM_SUFFIX, value, "name", "what it means").  Values are pinned. */
#define MS_ERROR_LIST(X)                                                      \
    X(OK, 0, "ok", "no error")                                                \
    X(USAGE, 1, "usage", "the API was called wrongly")                        \
    X(NO_MEMORY, 2, "no-memory", "an allocation failed")                      \
    X(LIMIT, 3, "limit", "a configured limit was exceeded")                   \
    X(TRUNCATED, 4, "truncated", "input ends inside a header or record")      \
    X(MISSING_END, 5, "missing-end", "input ends without an end record")      \
    X(TRAILING_DATA, 6, "trailing-data", "bytes follow the end record")       \
    X(FORMAT_UNKNOWN, 7, "format-unknown", "the format was not recognised")   \
    X(FORMAT_UNSUPPORTED, 8, "format-unsupported",                            \
      "the format was recognised but is not decoded by this version")         \
    X(BAD_MAGIC, 9, "bad-magic", "the stream magic is wrong")                 \
    X(MAGIC_DAMAGED, 10, "magic-damaged",                                     \
      "the magic shows text-mode or 7-bit transfer damage")                   \
    X(VERSION, 11, "version", "the format version is not supported")          \
    X(HEADER_CHECK, 12, "header-check", "stream header check value mismatch") \
    X(HEADER_FIELD, 13, "header-field", "a stream header field is invalid")   \
    X(RECORD_CHECK, 14, "record-check",                                       \
      "record header check value mismatch")                                   \
    X(PAYLOAD_CHECK, 15, "payload-check",                                     \
      "record payload check value mismatch")                                  \
    X(RECORD_FLAGS, 16, "record-flags", "record flags are invalid")           \
    X(UNKNOWN_MANDATORY, 17, "unknown-mandatory",                             \
      "a mandatory record has an unknown tag")                                \
    X(RECORD_SIZE, 18, "record-size", "a record's size is wrong for its tag") \
    X(BAD_FIELD, 19, "bad-field", "a record field has an invalid value")      \
    X(DEVICE_DUPLICATE, 20, "device-duplicate",                               \
      "a device is declared twice or differently")                            \
    X(DEVICE_UNKNOWN, 21, "device-unknown",                                   \
      "a record names an undeclared device")                                  \
    X(IMAGE_SEQUENCE, 22, "image-sequence",                                   \
      "an image sequence number is out of order")                             \
    X(IMAGE_STATE, 23, "image-state",                                         \
      "a record does not fit the device's open image")                        \
    X(PHASE_ORDER, 24, "phase-order",                                         \
      "image phases are out of order (initial, middle*, final)")              \
    X(IMAGE_LENGTH, 25, "image-length",                                       \
      "an image's length differs from its end record")                        \
    X(IMAGE_HASH, 26, "image-hash",                                           \
      "an image's hash differs from its end record")                          \
    X(DECOMPRESS, 27, "decompress", "compressed data is corrupt")             \
    X(END_TOTALS, 28, "end-totals",                                           \
      "the end record's totals differ from the stream")                       \
    X(PACKET_DUPLICATE, 29, "packet-duplicate",                               \
      "a device-state packet index was seen twice")                           \
    X(PACKET_MISSING, 30, "packet-missing",                                   \
      "a device-state packet index is missing")                               \
    X(PACKET_CONFIG, 31, "packet-config",                                     \
      "the config packet is missing, doubled or not last")                    \
    X(PACKET_ORPHAN, 32, "packet-orphan",                                     \
      "a packet belongs to no packet-mode image")                             \
    X(CHANNEL_UUID, 33, "channel-uuid",                                       \
      "a channel belongs to another migration")                               \
    X(CHANNEL_SET, 34, "channel-set",                                         \
      "channels are missing, doubled or disagree")                            \
    X(SECTION, 35, "section",                                                 \
      "a QEMU section type is unknown or names an unknown section id")        \
    X(FOOTER, 36, "footer",                                                   \
      "a QEMU section footer is missing or names another section")            \
    X(COMMAND, 37, "command",                                                 \
      "a QEMU command is unknown, has a wrong length or overruns its package")\
    X(RAM, 38, "ram", "a QEMU RAM record is invalid")                         \
    X(VFIO, 39, "vfio", "a QEMU VFIO device record is invalid")               \
    X(CONFIGURATION, 40, "configuration",                                     \
      "the QEMU configuration record is missing or invalid")                  \
    X(VMSTATE, 41, "vmstate",                                                 \
      "VMState fields do not match the JSON trailer's description")           \
    X(VMDESC, 42, "vmdesc", "the QEMU JSON trailer is malformed")            \
    X(MULTIFD, 43, "multifd",                                                 \
      "a QEMU multifd packet is invalid or disagrees with the migration")     \
    X(PAYLOAD, 44, "payload",                                                 \
      "a VFIO driver payload breaks its driver's rules")                      \
    X(PAYLOAD_COMPAT, 45, "payload-compat",                                   \
      "a VFIO driver payload does not fit the expected destination")         \
    X(SEEKABLE_INPUT, 46, "seekable-input",                                   \
      "the stream needs random access: give the file, not a pipe")           \
    X(RETURN_PATH, 47, "return-path",                                         \
      "a QEMU return-path message is invalid or disagrees with the main "     \
      "stream")                                                               \
    X(STREAM_STATE, 48, "stream-state",                                       \
      "an embedded-stream record does not fit the archive's open streams")   \
    X(STREAM_HASH, 49, "stream-hash",                                         \
      "an embedded stream's length or hash differs from its end record")

typedef enum ms_error {
#define MS_X_ENUM(sym, val, name, desc) MS_ERR_##sym = val,
    MS_ERROR_LIST(MS_X_ENUM)
#undef MS_X_ENUM
        MS_ERR_COUNT_
} ms_error;

MS_API const char *ms_error_name(ms_error code);        /* "record-check" */
MS_API const char *ms_error_description(ms_error code); /* one sentence */

/* ---- limits -----------------------------------------------------------
 * One list of every limit in ms_options; it generates the ms_limit ids, the
 * defaults ms_options_init fills in, ms_limit_name / ms_limit_option, and
 * the tools' --max-... options and their --help lines.
 * X(ID, value, field, type, default, "option", "what it bounds").
 * Values are pinned and the list is append-only. */
#define MS_LIMIT_LIST(X)                                                      \
    X(MAX_RECORD_PAYLOAD, 1, max_record_payload, uint64_t,                    \
      (uint64_t)1 << 30, "max-record-payload", "largest record payload")      \
    X(MAX_DEVICES, 2, max_devices, uint32_t, 4096, "max-devices",             \
      "devices (and QEMU dirty bitmaps)")                                     \
    X(MAX_IMAGES, 3, max_images, uint32_t, 1u << 20, "max-images",            \
      "images per device")                                                    \
    X(MAX_NAME_LENGTH, 4, max_name_length, uint32_t, 255, "max-name-length",  \
      "device idstr bytes")                                                   \
    X(MAX_COMPAT_LENGTH, 5, max_compat_length, uint32_t, 65536,               \
      "max-compat-length", "device compat bytes")                             \
    X(MAX_CHANNELS, 6, max_channels, uint32_t, 1024, "max-channels",          \
      "channels")                                                             \
    X(MAX_PACKETS, 7, max_packets, uint32_t, 1u << 24, "max-packets",         \
      "packets per image")                                                    \
    X(MAX_BUFFERED_BYTES, 8, max_buffered_bytes, uint64_t,                    \
      (uint64_t)256 << 20, "max-buffered-bytes",                              \
      "out-of-order packet bytes held")                                       \
    X(MAX_VMDESC_BYTES, 9, max_vmdesc_bytes, uint64_t, (uint64_t)64 << 20,    \
      "max-vmdesc-bytes", "QEMU JSON trailer bytes")                          \
    X(MAX_SECTIONS, 10, max_sections, uint32_t, 65536, "max-sections",        \
      "QEMU section ids tracked")                                             \
    X(MAX_RAM_BLOCKS, 11, max_ram_blocks, uint32_t, 4096, "max-ram-blocks",   \
      "QEMU RAM blocks")                                                      \
    X(MAX_NESTING, 12, max_nesting, uint32_t, 4, "max-nesting",               \
      "QEMU PACKAGED nesting depth (at most 8)")                              \
    X(MAX_DECOMPRESS_BYTES, 13, max_decompress_bytes, uint64_t,               \
      (uint64_t)256 << 20, "max-decompress-bytes",                            \
      "decompressor memory (multifd channels, libvirt images)")              \
    X(MAX_ZSTD_WINDOW, 14, max_zstd_window, uint64_t, (uint64_t)32 << 20,     \
      "max-zstd-window", "zstd frame window (multifd, libvirt images)")

typedef enum ms_limit {
    MS_LIMIT_NONE = 0, /* no limit, or a fixed one no option raises */
#define MS_X_LIMIT_ENUM(id, val, field, type, def, opt, help)                 \
    MS_LIMIT_##id = val,
    MS_LIMIT_LIST(MS_X_LIMIT_ENUM)
#undef MS_X_LIMIT_ENUM
        MS_LIMIT_COUNT_
} ms_limit;

/* The ms_options field ("max_buffered_bytes") and the tools' option
 * ("max-buffered-bytes") of a limit; NULL for MS_LIMIT_NONE or an
 * unknown id. */
MS_API const char *ms_limit_name(ms_limit id);
MS_API const char *ms_limit_option(ms_limit id);

/* Where and why decoding stopped.  Offsets: stream-header problems give the
 * offending field's offset; record-check, record-flags, unknown-mandatory
 * and record-size give the record's first byte; payload-check gives the
 * payload check's offset; bad-field gives the field's offset; other record
 * rules give the offending record's first byte; truncated and missing-end
 * give the offset where input ended; trailing-data the first extra byte.  Errors are sticky: once a reader, set or
 * writer has failed, every later call returns the same error. */
typedef struct ms_error_info {
    ms_error code;
    ms_limit limit;    /* MS_ERR_LIMIT: the option that was exceeded, or
                          MS_LIMIT_NONE for a fixed limit no option raises
                          (a format's own bound); otherwise MS_LIMIT_NONE.
                          Sits in what was padding: every other field
                          keeps its offset, and the size is unchanged on
                          LP64 targets. */
    uint64_t offset;   /* absolute byte offset in the stream it concerns */
    uint32_t channel;  /* set: caller's channel slot the error concerns */
    int has_channel;   /* 1 when `channel` is meaningful */
    char detail[192];  /* short detail, NUL terminated */
} ms_error_info;

/* ---- formats ---------------------------------------------------------- */
typedef enum ms_format {
    MS_FORMAT_AUTO = 0,       /* detect from the first bytes */
    MS_FORMAT_MIGSTREAM = 1,  /* migstream v1 container (spec/migstream.md) */
    MS_FORMAT_QEMU_MAIN = 2,  /* QEMU "QEVM" main stream */
    MS_FORMAT_QEMU_MULTIFD = 3, /* QEMU multifd channel */
    MS_FORMAT_LIBVIRT_SAVE = 4, /* libvirt save image around a QEVM stream */
    MS_FORMAT_UNKNOWN = 5,
    MS_FORMAT_PAYLOAD = 6, /* a VFIO driver's own data (ms_options.payload_kind);
                             never detected from a stream's magic */
    MS_FORMAT_QEMU_RETURN_PATH = 7, /* QEMU return path (destination ->
                                       source messages); no magic: detected
                                       by its first message, see
                                       spec/qemu-return-path.md */
    MS_FORMAT_QEMU_PREEMPT = 8, /* QEMU postcopy-preempt channel: RAM page
                                  records only, no magic (never detected;
                                  spec/qemu-main.md) */
    MS_FORMAT_QEMU_CPR = 9 /* QEMU >= 10.0 CPR state ("QCPR"; spec/qemu-cpr.md) */
} ms_format;

MS_API const char *ms_format_name(ms_format f);

/* Identify a format from the first bytes of a stream.  Returns the format,
 * MS_FORMAT_UNKNOWN, or MS_FORMAT_AUTO when `len` is too short to tell
 * (*need is then set to the number of bytes wanted).  A QEMU return path,
 * which has no magic, is recognised by its first message (up to 16 bytes
 * are looked at; spec/qemu-return-path.md section 5). */
MS_API ms_format ms_detect(const void *buf, size_t len, size_t *need);

/* ---- VFIO driver payload kinds ----------------------------------------- */
typedef enum ms_payload_kind {
    MS_PAYLOAD_RAW = 0,
    MS_PAYLOAD_MLX5 = 1,
    MS_PAYLOAD_VIRTIO = 2,
    MS_PAYLOAD_HISI_ACC = 3,
    MS_PAYLOAD_QAT = 4,
    MS_PAYLOAD_XE = 5,
    MS_PAYLOAD_PDS = 6,
    MS_PAYLOAD_KIND_COUNT_,
    /* ms_options.payload_kind only: detect the kind from the first bytes */
    MS_PAYLOAD_DETECT = -1
} ms_payload_kind;
/* A payload kind has one type everywhere: ms_payload_kind (an int-sized
 * enum) in ms_options, ms_device_info, ms_payload_record and the writer.
 * MS_PAYLOAD_DETECT stands only in ms_options.payload_kind; decoded kinds
 * are always 0 .. MS_PAYLOAD_KIND_COUNT_-1 (the migstream decoder refuses
 * others). */
MS_API const char *ms_payload_kind_name(ms_payload_kind kind); /* "mlx5" */
/* The kind a name ("mlx5", ...) stands for, or MS_PAYLOAD_DETECT when it
 * names none. */
MS_API ms_payload_kind ms_payload_kind_from_name(const char *name);

/* ---- options and limits ---------------------------------------------- */
typedef struct ms_allocator {
    void *(*alloc)(void *opaque, size_t size);
    void (*free)(void *opaque, void *ptr);
    void *opaque;
} ms_allocator;

/* Binary compatibility: a caller built against an older header passes its
 * own sizeof(ms_options) in struct_size; every function that takes options
 * accepts any size from MS_OPTIONS_SIZE_V1 (the fields up to `allocator`)
 * to sizeof(ms_options) and gives the fields the caller's struct lacks
 * their defaults.  New fields are therefore only ever appended.  Defaults
 * of the limits: MS_LIMIT_LIST. */
typedef struct ms_options {
    uint32_t struct_size;        /* sizeof(ms_options); set by ms_options_init */
    ms_format format;            /* MS_FORMAT_AUTO, or force one */
    uint64_t max_record_payload; /* largest record payload accepted */
    uint32_t max_devices;        /* devices per stream / set */
    uint32_t max_images;         /* images per device */
    uint32_t max_name_length;    /* device idstr bytes */
    uint32_t max_compat_length;  /* device compatibility data bytes */
    uint32_t max_channels;       /* channels in a set */
    uint32_t max_packets;        /* device-state packets per image */
    uint64_t max_buffered_bytes; /* set: out-of-order packet bytes held */
    int verify_checks;   /* 1: verify every check value (default) */
    int record_events;   /* 1: also emit MS_EV_RECORD for every record */
    uint64_t max_vmdesc_bytes;  /* QEMU JSON trailer bytes (default 64 MiB) */
    uint32_t max_sections;       /* QEMU section ids tracked */
    uint32_t max_ram_blocks;     /* QEMU RAM blocks */
    uint32_t max_nesting;        /* QEMU PACKAGED streams inside each other */
    int qemu_postcopy_ram;       /* deprecated, ignored: whether a block
                                    list entry carries a page size is
                                    decided from the stream itself (its
                                    POSTCOPY_ADVISE; spec/qemu-main.md) */
    int field_events;            /* 1: emit MS_EV_FIELD per VMState field */
    uint32_t qemu_page_size;     /* multifd channels: the target page size
                                    (from the main stream); 0: 4096 */
    ms_payload_kind payload_kind; /* MS_FORMAT_PAYLOAD: the kind, or
                                    MS_PAYLOAD_DETECT (-1) to detect it
                                    from the first bytes */
    uint64_t payload_final_offset; /* raw data-fd captures: bytes from this
                                      offset on were read in STOP_COPY;
                                      UINT64_MAX: not known */
    int input_stable;    /* 1: input slices stay valid and unchanged until
                            the reader/set is freed (e.g. mmap), so a set
                            keeps views instead of copying packets */
    ms_allocator allocator; /* all NULL: malloc/free */
    /* Random access (QEMU mapped-ram files keep pages at fixed offsets).
     * 1: the caller can hand input from any offset; ms_reader_next may
     * then return MS_NEXT_SEEK (see ms_reader_input_at).  0 (default): a
     * stream that needs to jump outside the current slice fails with
     * MS_ERR_SEEKABLE_INPUT. */
    int input_seekable;
    uint64_t input_size; /* bytes of the whole input when known (a file's
                            size; lets offsets be checked against the end
                            early); 0: unknown */
    uint64_t max_decompress_bytes; /* libvirt save images compressed with
                                      gzip/bzip2/xz/lzop/zstd, and each
                                      zlib/zstd multifd channel or
                                      COMPRESS_PAGE stream: memory the
                                      decompressor may hold (window,
                                      tables, buffers); default 256 MiB.
                                      A stream asking for more is refused
                                      (limit) before it is allocated. */
    /* 1: for callers that want the images' bytes, not the records that
     * carry them (migstream-verify and -extract set it).  migstream
     * streams: no MS_EV_CHUNK events, no MS_EV_RECORD events for unknown
     * optional records (skipped, still checked), and a run of small
     * uncompressed CHUNK records (up to 1 KiB of data each) of one image,
     * back to back in the slice, comes as one DATA event whose bytes are
     * copied together (zero_copy 0, compressed 0; offset and length span
     * the run's stream bytes; unit_end 1, unit_hash 0).  Every record is
     * still checked.  This bounds what a stream of minimum-size records
     * costs per byte (an event or two per record through every layer
     * would cost 30x what a stream of large chunks costs).  0 (default):
     * an event per record. */
    int data_only;
    uint64_t max_zstd_window; /* largest window a zstd frame may declare
                                 (multifd channels, libvirt images),
                                 applied as the largest power of two
                                 <= it (at least 1 KiB); default 32 MiB,
                                 what QEMU's highest multifd-zstd-level
                                 (20) writes.  A frame declaring more is
                                 refused (limit) before libzstd
                                 allocates its window. */
    /* Salvage (spec/salvage.md; migstream streams): 1: damage does not
     * stop the reader.  It reports each damaged byte range as an
     * MS_EV_DAMAGE event (what was lost in it) and goes on at the next
     * record whose header check verifies against the 8 bytes before it.
     * Needs verify_checks.  0 (default): the first damage is an error. */
    int salvage;
} ms_options;

/* The smallest struct_size accepted (the first layout kept compatible). */
#define MS_OPTIONS_SIZE_V1 offsetof(ms_options, input_seekable)

/* Fill *opt with safe defaults: the first `struct_size` bytes (the
 * caller's sizeof(ms_options), which struct_size then holds).  A size
 * outside MS_OPTIONS_SIZE_V1 .. sizeof(ms_options) of this library zeroes
 * what it can, and functions taking the options then refuse them. */
MS_API void ms_options_init_size(ms_options *opt, size_t struct_size);
/* Fill *opt with safe defaults (its size as the caller's header has it). */
MS_API void(ms_options_init)(ms_options *opt);
#define ms_options_init(opt) ms_options_init_size((opt), sizeof *(opt))

/* ---- events ----------------------------------------------------------- */
typedef enum ms_event_kind {
    MS_EV_NONE = 0,
    MS_EV_STREAM_HEADER, /* u.stream */
    MS_EV_RECORD,        /* u.record: a record header (option record_events,
                            and always for a skipped unknown record) */
    MS_EV_DEVICE,        /* u.device */
    MS_EV_IMAGE_BEGIN,   /* u.image */
    MS_EV_CHUNK,         /* u.chunk: a CHUNK record's header; its image
                            bytes follow as MS_EV_DATA events */
    MS_EV_DATA,          /* u.data: image bytes */
    MS_EV_PACKET,        /* u.packet: device-state packet header; its bytes
                            follow as MS_EV_DATA events */
    MS_EV_IMAGE_END,     /* u.image, with length/hash/units */
    MS_EV_PRECOPY_INFO,  /* u.precopy */
    MS_EV_STATE_CHANGE,  /* u.state */
    MS_EV_STOP_COPY_SIZE, /* u.stop_copy */
    MS_EV_END,           /* u.end: the channel's end record */
    MS_EV_IMAGE_ASSEMBLED, /* set only: a packet-mode image was reassembled
                              and matched its end record (u.image) */
    /* QEMU main stream ("QEVM"); see spec/qemu-main.md */
    MS_EV_CONFIGURATION,  /* u.config: machine type, page bits, caps, uuid */
    MS_EV_SECTION,        /* u.section: a section header */
    MS_EV_SECTION_FOOTER, /* u.section: the footer; length covers it all */
    MS_EV_COMMAND,        /* u.command */
    MS_EV_RAM_BLOCK,      /* u.ram: one entry of the RAM block list */
    MS_EV_RAM_PAGE,       /* u.ram: a page record (data for PAGE etc.) */
    MS_EV_RAM_MARKER,     /* u.ram: EOS, MULTIFD_FLUSH, HOOK */
    MS_EV_VFIO_MARKER,    /* u.vfio: a VFIO migration marker; device bytes
                             follow as MS_EV_DATA (device = section id) */
    MS_EV_SUBSECTION,     /* u.field: a VMState subsection header */
    MS_EV_FIELD,          /* u.field: one decoded VMState field */
    MS_EV_UNDECODED,      /* u.section: a section walked without decoding
                             its contents (detail says why) */
    MS_EV_QEMU_EOF,       /* the EOF record: end of device state */
    MS_EV_VMDESC,         /* u.vmdesc: the JSON trailer */
    /* QEMU multifd channel; see spec/qemu-multifd.md */
    MS_EV_CHANNEL,        /* u.channel: the channel's init packet */
    MS_EV_MULTIFD_PACKET, /* u.mfd: a packet header; RAM pages follow as
                             MS_EV_RAM_PAGE, device state as MS_EV_DATA */
    /* VFIO driver payloads; see spec/payloads.md */
    MS_EV_PAYLOAD_RECORD, /* u.precord: one record / packet / struct */
    MS_EV_PAYLOAD_IMAGE,  /* u.image: a device image inside the payload
                             (length = its bytes without SW headers) */
    MS_EV_PAYLOAD_FIELD,  /* u.pfield: one decoded field */
    /* QEMU mapped-ram (spec/qemu-main.md): a RAM block's header and
     * bitmap, after the block's MS_EV_RAM_BLOCK and before its pages */
    MS_EV_MAPPED_RAM,     /* u.mapped */
    /* QEMU postcopy; see spec/qemu-main.md */
    MS_EV_RAM_DISCARD,    /* u.discard: one range of a POSTCOPY_RAM_DISCARD
                             command (after its MS_EV_COMMAND event) */
    /* QEMU "dirty-bitmap" sections; see spec/qemu-main.md */
    MS_EV_DIRTY_BITMAP,   /* u.dbm: one record of a dirty-bitmap section,
                             or a piece of a BITS record's buffer */
    /* QEMU CPR state; see spec/qemu-cpr.md */
    MS_EV_CPR,            /* u.cpr: one saved fd, one VFIO device, or the
                             end of a list */
    /* QEMU return path; see spec/qemu-return-path.md */
    MS_EV_RP_MESSAGE,     /* u.rp: one message (RECV_BITMAP: its bitmap
                             follows as MS_EV_DATA views) */
    /* libvirt save images; see spec/libvirt-save.md */
    MS_EV_LIBVIRT_HEADER, /* u.libvirt: the header, domain XML and cookie
                             before the QEVM stream (offset 0, length
                             covers them all); follows the image's
                             stream event, precedes the QEVM events */
    /* salvage (ms_options.salvage; spec/salvage.md) */
    MS_EV_DAMAGE,         /* u.damage: bytes offset..offset+length are
                             damaged; decoding went on after them */
    /* migstream 2.1 archives: embedded byte streams (spec/migstream.md 5.10) */
    MS_EV_ARCHIVE_BEGIN,  /* u.archive: a STREAM_BEGIN record (label) */
    MS_EV_ARCHIVE_DATA,   /* u.archive: original bytes of an embedded stream
                             (data, size at stream offset `offset`); the
                             event's offset is data[0]'s archive offset */
    MS_EV_ARCHIVE_END     /* u.archive: a STREAM_END record, its length and
                             XXH3-64 checked against the bytes read */
} ms_event_kind;

MS_API const char *ms_event_kind_name(ms_event_kind k); /* "image_begin" */

typedef enum ms_phase {
    MS_PHASE_NONE = 0,
    MS_PHASE_INITIAL = 1,
    MS_PHASE_MIDDLE = 2,
    MS_PHASE_FINAL = 3
} ms_phase;
MS_API const char *ms_phase_name(ms_phase p); /* "initial" ... */

typedef enum ms_transport {
    MS_TRANSPORT_CHUNKS = 0,  /* image bytes in CHUNK records on its channel */
    MS_TRANSPORT_PACKETS = 1  /* device-state packets on any channel */
} ms_transport;


/* Flag bits the writer API takes (spec/migstream.md). */
#define MS_RECORD_OPTIONAL 0x1u /* record flags: an unknown one is skipped */
#define MS_IMAGE_FULL 0x1u      /* image flags: self-contained image */
#define MS_HEADER_ARCHIVE 0x1u  /* stream header_flags (2.1): the channel
                                   carries embedded streams (an archive) */
#define MS_PRECOPY_REINIT 0x1u  /* precopy info flags: new initial data */
#define MS_PACKET_CONFIG 0x1u   /* packet flags: the device config buffer */

typedef enum ms_compression {
    MS_COMPRESSION_NONE = 0,
    MS_COMPRESSION_ZLIB = 1
} ms_compression;

typedef struct ms_stream_info {
    ms_format format;
    uint16_t version_major, version_minor;
    uint8_t uuid[16];
    uint32_t channel_index, channel_count;
    uint64_t created_ns;
    uint64_t header_check;
    uint32_t header_flags; /* migstream: MS_HEADER_ARCHIVE (2.1) */
} ms_stream_info;

typedef struct ms_record_info {
    uint32_t tag;
    uint32_t flags;
    uint64_t size; /* payload bytes */
    int known;     /* 0: unknown optional record, skipped (checks verified) */
} ms_record_info;

typedef struct ms_device_info {
    uint32_t handle;
    uint32_t instance_id;
    ms_payload_kind payload_kind;
    uint32_t flags;
    const char *idstr;     /* NUL terminated; valid until the next call */
    uint32_t idstr_len;
    const uint8_t *compat; /* compatibility data; valid until the next call */
    uint32_t compat_len;
} ms_device_info;

typedef struct ms_image_info {
    uint32_t device;
    uint32_t seq;
    ms_phase phase;
    ms_transport transport;
    uint32_t flags;
    uint64_t timestamp_ns;
    /* IMAGE_END and IMAGE_ASSEMBLED only: */
    uint64_t length;     /* image bytes (uncompressed; data packets only) */
    uint64_t hash;       /* migstream 2.x: XXH3-64 of the units' hashes
                            (spec 5.4); 1.x and others: of the image bytes */
    uint64_t unit_count; /* chunks, or data packets */
    uint64_t config_length, config_hash; /* packet mode: the config packet */
} ms_image_info;

typedef struct ms_data_info {
    const uint8_t *data;   /* valid until the next call on this reader/set */
    size_t size;
    uint32_t device, seq;
    ms_phase phase;
    uint64_t image_offset;  /* offset of data[0] within the image */
    uint64_t stream_offset; /* raw: absolute offset of data[0] in the stream;
                               decompressed: offset of the chunk's data */
    int zero_copy;          /* 1: data points into the caller's input */
    int compressed;         /* 1: inflated from a compressed chunk */
    int in_packet;          /* 1: bytes of a device-state packet */
    const char *idstr;      /* QEMU multifd device state: the device */
    uint32_t instance_id;
    uint32_t packet_idx;
    int config;             /* 1: bytes of a config packet (not image bytes) */
    /* migstream: 1 on the last DATA event of a CHUNK or PACKET (none for an
     * empty packet; the set's reassembled packets too).  In a 2.x stream
     * unit_hash is then the unit hash of spec 4.3: XXH3-64 of all the unit's
     * data (decompressed for a zlib chunk), seed 0, as read (the record's
     * payload check may still fail after this event); 0 in 1.x streams and
     * without verify_checks. */
    int unit_end;
    uint64_t unit_hash;
} ms_data_info;

typedef struct ms_chunk_info {
    uint32_t device, seq;
    ms_compression compression;
    uint32_t raw_len;     /* image bytes it holds */
    uint64_t stored_len;  /* bytes on the wire after the chunk prefix */
    uint64_t image_offset; /* offset of its first byte within the image */
} ms_chunk_info;

typedef struct ms_packet_info {
    uint32_t device, seq, idx, flags;
    uint64_t size; /* data bytes */
    int config;
} ms_packet_info;

typedef struct ms_precopy_info {
    uint32_t device, flags; /* flags bit 0: REINIT */
    uint64_t initial_bytes, dirty_bytes, timestamp_ns;
} ms_precopy_info;

/* A VFIO device's migration state (Linux's enum vfio_device_mig_state,
 * include/uapi/linux/vfio.h): ms_state_info.from/to and the states
 * ms_writer_state_change takes. */
typedef enum ms_vfio_state {
    MS_VFIO_STATE_ERROR = 0,
    MS_VFIO_STATE_STOP = 1,
    MS_VFIO_STATE_RUNNING = 2,
    MS_VFIO_STATE_STOP_COPY = 3,
    MS_VFIO_STATE_RESUMING = 4,
    MS_VFIO_STATE_RUNNING_P2P = 5,
    MS_VFIO_STATE_PRE_COPY = 6,
    MS_VFIO_STATE_PRE_COPY_P2P = 7
} ms_vfio_state;
/* "ERROR", "STOP", ... "PRE_COPY_P2P"; "?" for another number. */
MS_API const char *ms_vfio_state_name(uint32_t state);

typedef struct ms_state_info {
    uint32_t device;
    uint32_t from, to; /* ms_vfio_state values */
    uint64_t timestamp_ns;
} ms_state_info;

typedef struct ms_stop_copy_info {
    uint32_t device;
    uint64_t bytes, timestamp_ns;
} ms_stop_copy_info;

typedef struct ms_end_info {
    uint64_t record_count, stream_bytes, image_bytes, packet_count;
    uint32_t device_count, image_count;
    uint64_t timestamp_ns;
    uint64_t final_check; /* chained check value of the whole channel */
} ms_end_info;

/* ---- QEMU main stream --------------------------------------------------- */
typedef enum ms_qemu_section_type {
    MS_QSEC_START = 1,
    MS_QSEC_PART = 2,
    MS_QSEC_END = 3,
    MS_QSEC_FULL = 4
} ms_qemu_section_type;
MS_API const char *ms_qemu_section_type_name(ms_qemu_section_type t);

typedef struct ms_config_info {
    const char *machine; /* NUL terminated; valid until the next call */
    uint32_t machine_len;
    int has_page_bits;
    uint32_t page_bits;
    uint32_t capability_count; /* capabilities listed (names not kept) */
    int cap_x_ignore_shared, cap_mapped_ram;
    int has_uuid;
    uint8_t uuid[16];
    /* "postcopy-preempt" listed among the capabilities (QEMU up to 10.x
     * never lists it: only x-ignore-shared and mapped-ram are validated) */
    int cap_postcopy_preempt;
} ms_config_info;

typedef struct ms_section_info {
    ms_qemu_section_type type;
    uint32_t section_id;
    const char *idstr; /* NUL terminated; valid until the next call */
    uint32_t instance_id, version_id;
    uint64_t section_offset; /* footer/undecoded: the section's first byte */
    const char *detail;      /* undecoded: why */
} ms_section_info;

/* QEMU_VM_COMMAND numbers (ms_command_info.cmd; MIG_CMD_* in QEMU's
 * migration/savevm.c).  Appended to as QEMU adds commands. */
typedef enum ms_qemu_command {
    MS_QCMD_INVALID = 0,
    MS_QCMD_OPEN_RETURN_PATH = 1,
    MS_QCMD_PING = 2,
    MS_QCMD_POSTCOPY_ADVISE = 3,
    MS_QCMD_POSTCOPY_LISTEN = 4,
    MS_QCMD_POSTCOPY_RUN = 5,
    MS_QCMD_POSTCOPY_RAM_DISCARD = 6,
    MS_QCMD_PACKAGED = 7,
    MS_QCMD_ENABLE_COLO = 8,
    MS_QCMD_POSTCOPY_RESUME = 9,
    MS_QCMD_RECV_BITMAP = 10,
    MS_QCMD_SWITCHOVER_START = 11
} ms_qemu_command;
/* "OPEN_RETURN_PATH", ...; "?" for a number QEMU does not define. */
MS_API const char *ms_qemu_command_name(uint32_t cmd);

typedef struct ms_command_info {
    uint16_t cmd, len;    /* cmd: ms_qemu_command */
    const char *name;     /* "OPEN_RETURN_PATH", ... */
    const uint8_t *args;  /* `len` bytes; valid until the next call */
    uint64_t value;       /* PING value, PACKAGED length */
    int nesting;          /* 0 top level, 1 inside a PACKAGED stream, ... */
    /* POSTCOPY_ADVISE with arguments: the OR of every RAM block's page
     * size on the source, and the target page size */
    uint64_t page_size_summary, target_page_size;
    /* POSTCOPY_RAM_DISCARD, RECV_BITMAP: the RAM block named (NUL
     * terminated; valid until the next call); DISCARD: how many ranges
     * follow as MS_EV_RAM_DISCARD events */
    const char *block;
    uint32_t discard_ranges;
    /* the destination's postcopy state after this command: "none",
     * "advised", "discarding", "listening", "running" */
    const char *postcopy_state;
} ms_command_info;

typedef enum ms_ram_record {
    MS_RAM_ZERO = 0x02,
    MS_RAM_MEM_SIZE = 0x04,
    MS_RAM_PAGE = 0x08,
    MS_RAM_EOS = 0x10,
    MS_RAM_XBZRLE = 0x40,
    MS_RAM_HOOK = 0x80,
    MS_RAM_COMPRESS_PAGE = 0x100,
    MS_RAM_MULTIFD_FLUSH = 0x200
} ms_ram_record;

typedef struct ms_ram_info {
    ms_ram_record record;
    const char *block;     /* block idstr; valid until the next call */
    uint32_t block_index;  /* in the block list */
    uint64_t offset;       /* page offset in the block; block list: 0 */
    uint32_t page_size;    /* the stream's target page size */
    uint64_t used_length;  /* block list entry / the block's length */
    uint64_t total;        /* MEM_SIZE: total RAM bytes */
    const uint8_t *data;   /* PAGE, COMPRESS_PAGE (inflated): page bytes;
                              XBZRLE: encoded delta */
    size_t size;
    int zero_copy;         /* data points into the caller's input */
    uint8_t fill;          /* ZERO: the fill byte */
    /* Ordering for rebuilding RAM offline: pages of sync epoch n (count of
     * sync points seen on this channel) precede those of epoch n + 1; in
     * one epoch the higher multifd packet number wins. */
    uint32_t epoch;
    uint64_t packet_num;   /* multifd packet; 0 on the main channel */
} ms_ram_info;

/* A RAM block of a mapped-ram file: its MappedRamHeader and what its
 * bitmap says.  Pages whose bit is set follow as MS_EV_RAM_PAGE (record
 * MS_RAM_PAGE, ev.offset = the page's file offset); a clear bit is a zero
 * page that is not in the file (a hole), never emitted. */
typedef struct ms_mapped_ram_info {
    const char *block;    /* valid until the next call */
    uint32_t block_index;
    uint32_t version;     /* MappedRamHeader version (1) */
    uint64_t used_length;
    uint64_t page_size;
    uint64_t bitmap_offset, bitmap_size; /* file offset and bytes */
    uint64_t pages_offset; /* file offset of page 0 */
    uint64_t pages_total;  /* used_length / page_size */
    uint64_t pages_set;    /* bits set: pages present in the file */
    uint64_t resume_offset; /* where the main stream goes on */
    int ignored;          /* x-ignore-shared block: zero offsets, nothing
                             of it in the file */
} ms_mapped_ram_info;

typedef struct ms_channel_info {
    uint32_t channel_id;
    uint32_t version;
    uint8_t uuid[16];
} ms_channel_info;

typedef struct ms_multifd_info {
    uint32_t flags;          /* SYNC 0x01, compression 0x3e, DEVICE_STATE 0x40 */
    const char *compression; /* "none", "zlib", "zstd", "qpl", "uadk", "qatzip" */
    int sync, device_state;
    /* RAM packet */
    uint32_t pages_alloc, normal_pages, zero_pages;
    uint32_t next_packet_size; /* as written (7.2 may leave it stale) */
    uint64_t packet_num;
    const char *block;         /* valid until the next call */
    uint64_t payload_size;     /* bytes of payload actually following */
    /* device-state packet */
    const char *idstr;
    uint32_t instance_id;
    uint32_t buffer_version, idx, buffer_flags; /* VFIO buffer header */
    int config;                                 /* CONFIG_STATE buffer */
} ms_multifd_info;

/* QEMU's VFIO migration markers (hw/vfio/migration.c): the be64 value
 * MS_VFIO_MARKER_BASE + one of these (ms_vfio_info.marker). */
#define MS_VFIO_MARKER_BASE 0xffffffffef100000ull
typedef enum ms_vfio_marker {
    MS_VFIO_END_OF_STATE = 1,
    MS_VFIO_DEV_CONFIG_STATE = 2,
    MS_VFIO_DEV_SETUP_STATE = 3,
    MS_VFIO_DEV_DATA_STATE = 4,
    MS_VFIO_DEV_INIT_DATA_SENT = 5,
    MS_VFIO_DEV_CONFIG_LOAD_READY = 6
} ms_vfio_marker;
/* "END_OF_STATE", "DEV_DATA_STATE", ... for the whole be64 marker; NULL
 * for a value that is not one of them. */
MS_API const char *ms_vfio_marker_name(uint64_t marker);

typedef struct ms_vfio_info {
    uint64_t marker; /* MS_VFIO_MARKER_BASE + ms_vfio_marker */
    const char *name; /* "END_OF_STATE", "DATA_STATE", ... */
    uint32_t section_id;
    const char *idstr;
    uint64_t data_size; /* DATA_STATE: bytes that follow */
    ms_phase phase;     /* phase the following bytes belong to */
} ms_vfio_info;

/* QEMU block dirty bitmaps ("dirty-bitmap" sections, version 1). */
typedef enum ms_dbm_record {
    MS_DBM_EOS = 1,      /* end of the section's records */
    MS_DBM_START = 2,    /* a bitmap begins: granularity, bitmap flags */
    MS_DBM_COMPLETE = 3, /* a bitmap is complete */
    MS_DBM_BITS = 4,     /* a chunk of bits (or ZEROES); a buffer follows
                            as MS_DBM_BUFFER events unless zeroes */
    MS_DBM_BUFFER = 5    /* a piece of the BITS buffer (a view) */
} ms_dbm_record;

typedef struct ms_dirty_bitmap_info {
    ms_dbm_record record;
    uint32_t flags;      /* DIRTY_BITMAP_MIG_FLAG_* as QEMU applies them */
    uint32_t flags_size; /* bytes of flags on the wire: 1, 2 or 4 */
    const char *node;    /* node alias / bitmap alias the record is for;
                            NULL for EOS; valid until the next call */
    const char *bitmap;
    uint32_t granularity; /* START: bytes per bit */
    uint8_t bitmap_flags; /* START: 0x01 enabled, 0x02 persistent */
    uint64_t first_sector; /* BITS: 512-byte sectors covered */
    uint32_t nr_sectors;
    int zeroes;            /* BITS: all zero, no buffer */
    uint64_t buf_size;     /* BITS: buffer bytes that follow */
    const uint8_t *data;   /* BUFFER: this piece */
    size_t size;
    uint64_t buf_offset;   /* BUFFER: offset of data[0] in the buffer */
} ms_dirty_bitmap_info;

/* QEMU CPR state (cpr-transfer / cpr-exec, QEMU >= 10.0). */
typedef enum ms_cpr_record {
    MS_CPR_FD = 1,          /* one entry of the fd list */
    MS_CPR_VFIO_DEVICE = 2, /* one entry of the "vfio devices" list */
    MS_CPR_LIST_END = 3     /* the end of a list (count = its entries) */
} ms_cpr_record;

typedef struct ms_cpr_info {
    ms_cpr_record record;
    const char *name;  /* FD, VFIO_DEVICE: NUL terminated; valid until the
                          next call */
    uint32_t name_len; /* bytes on the wire, with the NUL */
    int32_t id;        /* FD: the id QEMU saved it under */
    int fd_passed;     /* FD: 1 when the fd travelled as SCM_RIGHTS
                          ancillary data (cpr-transfer: one placeholder
                          byte), 0 when written as a number (cpr-exec) */
    int32_t fd;        /* FD: the number (cpr-exec), -1 when passed */
    int32_t devid;     /* VFIO_DEVICE */
    uint32_t ioas_id, hwpt_id;
    uint32_t list;     /* LIST_END: 0 the fd list, 1 the vfio device list */
    uint32_t count;    /* LIST_END: entries in the list */
} ms_cpr_info;

typedef struct ms_field_info {
    uint32_t section_id;
    const char *path;    /* "parent_obj.config", "tx.size", subsection name */
    const char *type;    /* VMState type name from the JSON trailer */
    const uint8_t *data; /* the field's bytes (valid until the next call) */
    size_t size;
    uint32_t version;    /* subsection: its version_id */
} ms_field_info;

/* One POSTCOPY_RAM_DISCARD range: the destination drops these bytes of the
 * block (they read as zero) until a later page record rewrites them. */
typedef struct ms_discard_info {
    const char *block;     /* valid until the next call */
    uint32_t block_index;  /* in the block list */
    uint64_t start, length; /* bytes, page aligned, inside the block */
    uint32_t index, count; /* this range of the command's `count` */
    uint64_t command_offset; /* the POSTCOPY_RAM_DISCARD record */
    uint32_t page_size;    /* the stream's target page size */
    uint32_t epoch;        /* RAM sync epoch (ms_ram_info.epoch) it falls in */
} ms_discard_info;

typedef struct ms_vmdesc_info {
    const char *json; /* the JSON text (not NUL terminated) */
    size_t len;
} ms_vmdesc_info;

/* ---- QEMU return path ----------------------------------------------------
 * Messages the destination sends back to the source: be16 type, be16 len,
 * `len` payload bytes.  A return path ends with SHUT.  The stream starts
 * with an MS_EV_STREAM_HEADER (format MS_FORMAT_QEMU_RETURN_PATH, offset 0,
 * length 0) like every stream. */
typedef enum ms_rp_type {
    MS_RP_SHUT = 1,           /* value: 0 ok, else the destination failed */
    MS_RP_PONG = 2,           /* value: the PING's value */
    MS_RP_REQ_PAGES_ID = 3,   /* start, length, block (named here) */
    MS_RP_REQ_PAGES = 4,      /* start, length; block of the last _ID */
    MS_RP_RECV_BITMAP = 5,    /* block; then the received bitmap */
    MS_RP_RESUME_ACK = 6,     /* value (1) */
    MS_RP_SWITCHOVER_ACK = 7  /* no payload (QEMU 8.1+) */
} ms_rp_type;

typedef struct ms_rp_info {
    uint16_t type, len;   /* as on the wire; len: payload bytes */
    const char *name;     /* "PONG", "REQ_PAGES_ID", ... */
    uint32_t value;       /* SHUT, PONG, RESUME_ACK */
    uint64_t start;       /* REQ_PAGES(_ID): byte offset in the block */
    uint32_t length;      /* REQ_PAGES(_ID): bytes requested (a host page) */
    const char *block;    /* REQ_PAGES_ID, RECV_BITMAP: the name it carries;
                             REQ_PAGES: the last REQ_PAGES_ID's; NUL
                             terminated, valid until the next call */
    int block_named;      /* 1: this message carries the block name */
    uint64_t bitmap_size; /* RECV_BITMAP: bitmap bytes that follow (the
                             be64 size field, then the bitmap, then the
                             be64 end mark 0x0123456789abcdef, checked) */
    uint64_t bitmap_offset; /* RECV_BITMAP: offset of its first byte */
} ms_rp_info;

/* ---- libvirt save images ("virsh save", "virsh managedsave") -------------- */
/* The header's format field (libvirt's virQEMUSaveFormat; values pinned). */
typedef enum ms_libvirt_format {
    MS_LIBVIRT_RAW = 0,
    MS_LIBVIRT_GZIP = 1,
    MS_LIBVIRT_BZIP2 = 2,
    MS_LIBVIRT_XZ = 3,
    MS_LIBVIRT_LZOP = 4,
    MS_LIBVIRT_ZSTD = 5,  /* libvirt >= 10.4 */
    MS_LIBVIRT_SPARSE = 6 /* libvirt >= 11.2: QEMU mapped-ram, uncompressed */
} ms_libvirt_format;

typedef struct ms_libvirt_info {
    uint32_t version;        /* header version: 1 or 2 */
    int big_endian;          /* the header was written by a big-endian host */
    uint32_t was_running;    /* the guest ran when it was saved */
    uint32_t format;         /* ms_libvirt_format, as written */
    const char *format_name; /* "raw", "gzip", ..., "sparse" */
    int decompressed;        /* 1: the QEVM events that follow come from
                                decompressed bytes (MS_EVF_DECOMPRESSED) */
    uint32_t data_len;       /* bytes after the header: XML, cookie, NULs */
    uint32_t cookie_offset;  /* header field: the cookie's offset in the
                                data (0: no cookie) */
    uint32_t xml_len;        /* domain XML text bytes (before its NUL) */
    uint32_t cookie_len;     /* cookie text bytes (before its NUL) */
    uint64_t xml_offset;     /* file offset of the XML (92) */
    uint64_t body_offset;    /* file offset of the QEVM stream, or of the
                                compressed data (92 + data_len) */
} ms_libvirt_info;

/* ---- VFIO driver payloads ------------------------------------------------ */
typedef struct ms_payload_record {
    ms_payload_kind payload_kind;
    const char *name;      /* "FW_DATA", "STOP_COPY_SIZE", "DEVICE_DATA",
                              "acc_vf_data", "DESCRIPTOR", "setup block"... */
    uint32_t tag, flags;   /* SW headers: as written; others: 0 */
    int optional;
    uint64_t size;         /* payload bytes after the record's header */
    uint64_t value;        /* STOP_COPY_SIZE: the size; others: 0 */
    ms_phase phase;        /* phase its bytes belong to, NONE if unknown */
} ms_payload_record;

typedef struct ms_payload_field {
    const char *name;      /* "DRV_FEATURES", "dev_id", "bnk0.mregs" ... */
    uint64_t value;        /* integer fields */
    const uint8_t *data;   /* raw bytes (valid until the next call) */
    size_t size;
    uint32_t index;        /* queue index / KLV key / section depth */
} ms_payload_field;

/* ---- salvage (ms_options.salvage; spec/salvage.md) ----------------------
 * One MS_EV_DAMAGE per damaged byte range (ev.offset, ev.length: from the
 * first byte of the first record that failed to the next record that
 * verifies), then one more per image that may have lost bytes in it
 * (same range, image set).  Bytes of a damaged unit may already have gone
 * out as MS_EV_DATA before its check failed: image_offset/image_length
 * name them (length_known 1), and a tool must not trust them.  After a
 * loss of unknown size (length_known 0) the reader goes on counting image
 * offsets from the bytes it received: later bytes of that image come at
 * image offsets short by the lost length (IMAGE_END's length tells it). */
typedef struct ms_damage_info {
    ms_error cause;        /* the check or rule that showed the damage */
    uint64_t cause_offset; /* where, as the error would have said */
    const char *detail;    /* the error's detail; valid until the next call */
    int has_image;         /* 1: an image lost bytes in this range */
    uint32_t device, seq;  /* that image (device handle, image_seq) */
    ms_phase phase;
    const char *idstr;     /* the device's idstr; valid until the next call */
    int in_packet;         /* 1: a device-state packet (packet_idx) */
    uint32_t packet_idx;
    int length_known;      /* 1: image_length bytes at image_offset are
                              damaged; 0: an unknown number of bytes was
                              lost at image_offset (bytes received so far) */
    uint64_t image_offset, image_length;
} ms_damage_info;

/* migstream 2.1 embedded streams (spec/migstream.md 5.10-5.12). */
typedef enum ms_archive_role {
    MS_ARCHIVE_CAPTURE = 0,  /* an original capture file, byte for byte */
    MS_ARCHIVE_MANIFEST = 1, /* the capture's manifest.json */
    MS_ARCHIVE_SUMMARY = 2   /* the archiver's decoded summary (JSON lines) */
} ms_archive_role;
typedef enum ms_archive_direction {
    MS_ARCHIVE_DIR_NONE = 0,
    MS_ARCHIVE_DIR_S2D = 1, /* source -> destination */
    MS_ARCHIVE_DIR_D2S = 2  /* destination -> source (return path) */
} ms_archive_direction;
#define MS_ARCHIVE_NO_CONNECTION 0xFFFFFFFFu
#define MS_ARCHIVE_LENGTH_UNKNOWN UINT64_MAX

typedef struct ms_archive_info {
    uint32_t stream;   /* stream id: STREAM_BEGIN records before it */
    ms_archive_role role;
    ms_archive_direction direction;
    uint32_t connection; /* N of connN, or MS_ARCHIVE_NO_CONNECTION */
    ms_format format;    /* what the archiver detected */
    const char *name;    /* BEGIN: file name, NUL terminated; valid until
                            the next call */
    uint32_t name_len;
    uint64_t declared_length; /* BEGIN: or MS_ARCHIVE_LENGTH_UNKNOWN */
    const uint8_t *data; /* DATA: the bytes; valid until the next call */
    size_t size;
    uint64_t offset;     /* DATA: stream offset of data[0] */
    uint64_t length;     /* END: the stream's length */
    uint64_t hash;       /* END: XXH3-64(stream bytes, seed 0) */
} ms_archive_info;

typedef struct ms_event {
    ms_event_kind kind;
    uint64_t offset; /* absolute offset of the element's first byte */
    uint64_t length; /* bytes of the element on the wire */
    uint32_t channel; /* set events: the caller's channel slot */
    uint32_t flags;   /* MS_EVF_*; fills what was padding, so the layout of
                         every other field is unchanged */
    union {
        ms_stream_info stream;
        ms_record_info record;
        ms_device_info device;
        ms_image_info image;
        ms_data_info data;
        ms_chunk_info chunk;
        ms_packet_info packet;
        ms_precopy_info precopy;
        ms_state_info state;
        ms_stop_copy_info stop_copy;
        ms_end_info end;
        ms_config_info config;
        ms_section_info section;
        ms_command_info command;
        ms_ram_info ram;
        ms_vfio_info vfio;
        ms_field_info field;
        ms_vmdesc_info vmdesc;
        ms_channel_info channel;
        ms_multifd_info mfd;
        ms_payload_record precord;
        ms_payload_field pfield;
        ms_mapped_ram_info mapped;
        ms_discard_info discard;
        ms_dirty_bitmap_info dbm;
        ms_cpr_info cpr;
        ms_rp_info rp;
        ms_libvirt_info libvirt;
        ms_damage_info damage;
        ms_archive_info archive; /* no larger than ms_data_info: the
                                    union's size is unchanged */
    } u;
} ms_event;

/* ms_event.flags */
#define MS_EVF_DECOMPRESSED 0x1u /* offset, length (and data stream_offset)
                                    count bytes of the decompressed stream
                                    of a compressed libvirt save image, its
                                    first QEVM byte at 0; not file offsets */

/* Render a decoded VMState field's value the way QEMU's
 * scripts/analyze-migration.py prints it ("0x0000002a", "00 01 ff", true,
 * ...).  Writes at most `cap` bytes including the NUL; returns the length
 * the full text needs (like snprintf). */
MS_API size_t ms_field_format(const ms_field_info *f, char *out, size_t cap);

/* ---- VMState nesting ------------------------------------------------------
 * MS_EV_FIELD paths are flat ("env.fpregs[3].tmp"); QEMU's
 * scripts/analyze-migration.py -d state prints the same values nested in
 * objects and lists.  An ms_nest, made from the JSON description the
 * reader was given, replays the reader's walk: feed it the reader's
 * events in order (kinds other than SECTION, SUBSECTION, FIELD and
 * SECTION_FOOTER are ignored), and after each one pull the steps it
 * implies until ms_nest_next returns 0.  A FULL section's body is the
 * object at depth 0:
 *   FIELD       -> CLOSE* OPEN* FIELD
 *   SUBSECTION  -> CLOSE* OPEN* (the last OPEN is the subsection)
 *   its FOOTER  -> CLOSE* (back to depth 0)
 * Keys: a struct element or field goes under its name, in a list when
 * in_list (an array, or a name its level uses more than once), at
 * `index` of that list; a subsection under its name.  spec/qemu-main.md */
typedef enum ms_nest_kind {
    MS_NEST_OPEN = 1,  /* an object opens at `depth` (>= 1) */
    MS_NEST_FIELD = 2, /* the fed field is a value in the object at `depth` */
    MS_NEST_CLOSE = 3  /* the innermost object, at `depth`, is complete */
} ms_nest_kind;

typedef struct ms_nest_step {
    ms_nest_kind kind;
    uint32_t depth;
    const char *key; /* OPEN, FIELD: key in the enclosing object (valid
                        until ms_nest_free) */
    int in_list;     /* OPEN, FIELD: the key holds a list; `index` in it */
    uint64_t index;
    int subsection;  /* OPEN: 1 subsection, 0 struct element */
} ms_nest_step;

typedef struct ms_nest ms_nest;
/* NULL options: defaults.  NULL on failure, with *err (if given) set. */
MS_API ms_nest *ms_nest_create(const ms_options *opt, const char *json,
                               size_t len, ms_error_info *err);
MS_API void ms_nest_free(ms_nest *n); /* accepts NULL */
/* 0, or -1 (sticky): the event does not follow the description's walk
 * (vmstate, at the event's offset), or the steps of the previous event
 * were not all pulled (usage). */
MS_API int ms_nest_feed(ms_nest *n, const ms_event *ev);
/* 1: *step filled; 0: the fed event has no more steps; -1: error */
MS_API int ms_nest_next(ms_nest *n, ms_nest_step *step);
MS_API const ms_error_info *ms_nest_error(const ms_nest *n);

/* ---- XBZRLE deltas ------------------------------------------------------
 * A QEMU RAM record with the XBZRLE flag carries a delta of one page against
 * the copy the destination holds (spec/qemu-main.md, "XBZRLE deltas").  The
 * reader checks every delta with the rules below; a tool rebuilding RAM
 * applies them with ms_xbzrle_apply. */

/* NULL when `delta` (n bytes) is a valid delta for a page of `page_size`
 * bytes, else a short reason, with *bad_offset (may be NULL) the offset in
 * the delta of the offending run's length field (0 for an empty delta or
 * one longer than the page, which the reader reports at the record's
 * length).  The reader refuses exactly the deltas this refuses. */
MS_API const char *ms_xbzrle_check(const void *delta, size_t n,
                                   size_t page_size, size_t *bad_offset);

/* Apply `delta` to `page` in place: 0, or -1 for a malformed delta (then
 * *bad_offset is set as by ms_xbzrle_check and `page` is unchanged). */
MS_API int ms_xbzrle_apply(const void *delta, size_t n, uint8_t *page,
                           size_t page_size, size_t *bad_offset);

/* ---- reader ----------------------------------------------------------- */
typedef struct ms_reader ms_reader;

/* QEMU: locate the JSON trailer (0x06, be32 len, JSON) that ends a complete
 * stream held in memory.  Returns 1 and its JSON's offset and length, or 0.
 * Only the last `max_scan` bytes are examined. */
MS_API int ms_qemu_find_vmdesc(const void *buf, size_t len, size_t max_scan,
                               size_t *json_off, size_t *json_len);

enum {
    MS_NEXT_ERROR = -1,
    MS_NEXT_INPUT = 0,
    MS_NEXT_EVENT = 1,
    MS_NEXT_SEEK = 2 /* only with ms_options.input_seekable: hand input
                        starting at ms_reader_seek_target() next */
};

/* NULL options: defaults.  Returns NULL when memory is short or the
 * options are invalid (wrong struct_size). */
MS_API ms_reader *ms_reader_create(const ms_options *opt);
MS_API void ms_reader_free(ms_reader *r); /* accepts NULL */

/* Hand the reader the next slice of input.  The previous slice must have
 * been consumed (ms_reader_next returned MS_NEXT_INPUT).  The slice must
 * stay valid until then (or until the reader is freed with input_stable). */
MS_API int ms_reader_input(ms_reader *r, const void *buf, size_t len);

/* Pull the next event: MS_NEXT_EVENT (*ev filled), MS_NEXT_INPUT (slice
 * consumed; give more or call ms_reader_finish), MS_NEXT_SEEK (seekable
 * input only: the stream goes on at another offset), MS_NEXT_ERROR. */
MS_API int ms_reader_next(ms_reader *r, ms_event *ev);

/* Seekable input (ms_options.input_seekable).  A decoder that must read
 * at another offset (a mapped-ram file's bitmap and pages) jumps inside
 * the current slice by itself -- a whole file given as one slice (e.g.
 * mmap) never sees MS_NEXT_SEEK -- and otherwise drops the slice and
 * returns MS_NEXT_SEEK.  The caller then hands bytes starting exactly at
 * ms_reader_seek_target() with ms_reader_input_at (or calls
 * ms_reader_finish when the input ends before it).  ms_reader_input_at
 * with any other offset is a usage error; so is ms_reader_input while a
 * seek is pending.  ms_reader_input_at at ms_reader_offset() is the same
 * as ms_reader_input.  Without input_seekable, MS_NEXT_SEEK never comes:
 * such a stream fails with MS_ERR_SEEKABLE_INPUT instead. */
MS_API uint64_t ms_reader_seek_target(const ms_reader *r);
MS_API int ms_reader_input_at(ms_reader *r, uint64_t offset, const void *buf,
                              size_t len);

/* No more input.  Returns 0 when the stream ended cleanly, else -1 (cut
 * inside a record, or no end record). */
MS_API int ms_reader_finish(ms_reader *r);

/* QEMU: give the reader the stream's JSON trailer before the stream, so it
 * can decode FULL sections (VMState fields) as they come.  Without it the
 * reader still walks every section but decodes no VMState fields.  The
 * text is copied.  Returns 0 or -1 (malformed JSON or over a limit). */
MS_API int ms_reader_set_vmdesc(ms_reader *r, const char *json, size_t len);

/* QEMU: like ms_reader_set_vmdesc, for a stream that carries no trailer of
 * its own (postcopy): `json` is the trailer of another stream of the same
 * machine and devices.  It may lack a device or a subsection the stream
 * has (QEMU lists only what it sent); such a section is then walked to its
 * footer and reported as MS_EV_UNDECODED, where the stream's own trailer
 * would make it an error. */
MS_API int ms_reader_borrow_vmdesc(ms_reader *r, const char *json,
                                   size_t len);

/* MS_FORMAT_PAYLOAD: the carrier knows which phase the bytes given next
 * belong to (QEMU PART/END, multifd, migstream images): say so before
 * handing them in.  Overrides payload_final_offset. */
MS_API void ms_reader_set_phase(ms_reader *r, ms_phase phase);

/* Which payload kind bytes look like (heuristics of spec/payloads.md):
 * the kind, -1 when none fits, or -2 when `len` is too short to tell. */
MS_API int ms_payload_detect(const void *buf, size_t len);

MS_API const ms_error_info *ms_reader_error(const ms_reader *r);
/* Stream offset of the next input byte (bytes consumed, for input read in
 * order; after a seek, the offset sought). */
MS_API uint64_t ms_reader_offset(const ms_reader *r);
MS_API ms_format ms_reader_format(const ms_reader *r);

/* ---- multi-channel set ------------------------------------------------ */
typedef struct ms_set ms_set;

MS_API ms_set *ms_set_create(const ms_options *opt);
MS_API void ms_set_free(ms_set *s);

/* Hand the set each event a channel's reader produced.  `channel` is the
 * caller's slot for that reader (0, 1, ... in any order). Returns 0 or -1. */
MS_API int ms_set_observe(ms_set *s, uint32_t channel, const ms_event *ev);

/* Tell the set that a channel's reader finished cleanly. */
MS_API int ms_set_channel_done(ms_set *s, uint32_t channel);

/* Pull events the set derives (reassembled packet-image data as MS_EV_DATA
 * in index order, MS_EV_IMAGE_ASSEMBLED).  Same return codes as
 * ms_reader_next.  Call until MS_NEXT_INPUT after every observe. */
MS_API int ms_set_next(ms_set *s, ms_event *ev);

/* All channels handed in: check completeness.  Returns 0 or -1. */
MS_API int ms_set_finish(ms_set *s);
MS_API const ms_error_info *ms_set_error(const ms_set *s);

/* Devices a set invents for QEMU multifd device state (an (idstr,
 * instance id) pair seen in device-state packets) get handles
 * MS_DEVICE_HANDLE_QEMU + n, n = 0, 1, ... in the order their first packet
 * reached the set; they appear in the set's MS_EV_DATA and
 * MS_EV_IMAGE_ASSEMBLED events (u.data.device, u.image.device).  Test
 * `handle & MS_DEVICE_HANDLE_QEMU` to tell them from a migstream stream's
 * own handles (a migration is either migstream or QEMU channels). */
#define MS_DEVICE_HANDLE_QEMU 0x80000000u

/* ---- one migration: channels -> readers -> set -> nested payloads --------
 * An ms_migration decodes every channel of one migration the way the tools
 * do: one reader per channel (slot), one set for what spans channels, and
 * (MS_MIGRATION_NESTED_PAYLOADS) each VFIO device's bytes -- QEMU main
 * stream VFIO sections, multifd device-state images reassembled by the set,
 * migstream device images in seq order -- decoded by a driver payload
 * reader of their own.  Push each channel's bytes in; events and problems
 * come out through callbacks.
 *
 *   bytes -> [slot 0 reader] -+
 *   bytes -> [slot 1 reader] -+-> ms_set -> derived events
 *   ...                       |      |
 *                             v      v
 *                     nested payload readers (one per device)
 *                             |
 *                       on_event(ev, origin) / on_problem(e)
 *
 * What it does for the caller:
 * - QEMU: a multifd channel needs the target page size from the main
 *   channel's CONFIGURATION.  A channel whose first bytes are a multifd
 *   magic is held until that record was decoded (or until the main
 *   channels ended, ms_migration_no_main or ms_migration_finish: then the
 *   page size known, else 4096, is used);
 *   ms_options.qemu_page_size != 0 skips the hold.  A held channel keeps
 *   views of its input when ms_options.input_stable, else copies, at most
 *   max_buffered_bytes of them for the whole migration (over it: a limit
 *   problem for that channel).
 * - QEMU: a main channel whose whole input the caller gives
 *   (ms_channel_input.whole) gets its JSON trailer before decoding, so FULL
 *   sections decode as they come; a main channel without one gets the
 *   trailer from ms_migration_give_vmdesc if any.
 * - A channel with no magic whose first be64 looks like a RAM page record,
 *   opened with format AUTO, after a main channel that advised postcopy,
 *   is decoded as MS_FORMAT_QEMU_PREEMPT.  Such a channel is held until
 *   the main channels have ended (or no_main / finish).  A forced
 *   MS_FORMAT_QEMU_PREEMPT does not apply to a channel that starts with a
 *   QEMU main or libvirt magic (so one format can be given for all).
 * - Deterministic order: channels other than QEMU main channels hand their
 *   first event to the set in the order they were opened (the set compares
 *   later channels with the first one).  Single-threaded (default), a
 *   channel whose turn has not come is held (as above) and decoded as soon
 *   as the channels opened before it have handed their first event or
 *   ended; feeding slot 1 before slot 0 is fine.  A channel whose bytes
 *   have not told its format yet counts as not having had its turn: open
 *   a main channel with format MS_FORMAT_QEMU_MAIN (or LIBVIRT_SAVE) so
 *   the others need not wait for its first bytes.  With
 *   MS_MIGRATION_CONCURRENT the call waits instead (see Threads).
 * - Every event is shown to on_event: a reader's event before the set sees
 *   it, then the events the set derived from it (origin->derived), and a
 *   device's payload events (origin->device != NULL) before the carrier
 *   event whose bytes produced them.  A problem in one channel stops that
 *   channel, a problem in one device's payload stops that device; the rest
 *   goes on, so every channel gets checked.  A set problem stops the set
 *   (channels are still decoded).
 *
 * Threads: decoding runs unlocked; the set, the nested payload readers,
 * the hold and the callbacks are serialised by a mutex inside the
 * migration (pthread), so callbacks never run concurrently; a callback
 * must not call ms_migration_* functions (the mutex is held).  Calls for one
 * slot must not overlap; calls for different slots may run on different
 * threads only with MS_MIGRATION_CONCURRENT: a channel then waits (blocks)
 * where it would be held, so every opened channel must be fed to its end
 * (or ended) by some thread; ms_migration_finish and _free run alone. */
typedef struct ms_migration ms_migration;

typedef struct ms_event_origin {
    uint32_t channel;   /* the slot the event (or its carrier bytes) came
                           from; derived events: the set's channel */
    int derived;        /* 1: the set derived it (ms_set_next) */
    /* nested driver payload events (MS_EV_PAYLOAD_*): */
    const char *device; /* the device's idstr; NULL for every other event */
    uint32_t instance_id; /* QEMU: the section's / packet's instance id */
    ms_phase phase;     /* phase of the device bytes it came out of */
    uint64_t carrier_offset; /* channel offset of those device bytes */
} ms_event_origin;

typedef struct ms_migration_callbacks {
    /* every event; `ev` and its pointers are valid during the call */
    void (*on_event)(void *ctx, const ms_event *ev,
                     const ms_event_origin *origin);
    /* every problem; e->has_channel says which slot (0: the migration as a
     * whole, e.g. a set check at finish) */
    void (*on_problem)(void *ctx, const ms_error_info *e);
    void *ctx;
} ms_migration_callbacks;

/* ms_migration_create flags */
#define MS_MIGRATION_NESTED_PAYLOADS 0x1u /* decode VFIO device bytes with
                                             driver payload readers */
#define MS_MIGRATION_CONCURRENT 0x2u      /* slots fed on several threads */

/* One channel as the caller sees it. */
typedef struct ms_channel_input {
    ms_format format;  /* MS_FORMAT_AUTO: ms_options.format */
    int seekable;      /* the caller can hand input at any offset */
    uint64_t size;     /* bytes of the whole input when known, else 0 */
    /* The whole input when the caller has it in memory (e.g. mmap), valid
     * until ms_migration_free; NULL otherwise.  Used only to find a QEMU
     * stream's JSON trailer and to tell a postcopy-preempt channel: the
     * bytes are still handed in with ms_migration_input. */
    const void *whole;
    size_t whole_len;
} ms_channel_input;

/* NULL options: defaults; callbacks are required.  NULL when memory is
 * short, the options are invalid, or a callback is missing. */
MS_API ms_migration *ms_migration_create(const ms_options *opt,
                                         const ms_migration_callbacks *cb,
                                         unsigned flags);
MS_API void ms_migration_free(ms_migration *m); /* accepts NULL */

/* The JSON trailer of another stream of the same machine, given to QEMU
 * main channels that carry none (see ms_reader_borrow_vmdesc); copied.
 * Before the channels it concerns are opened.  0, or -1 (memory, or over
 * max_vmdesc_bytes). */
MS_API int ms_migration_give_vmdesc(ms_migration *m, const char *json,
                                    size_t len);

/* No QEMU main channel will come (or no more of them): channels held for
 * the page size or for postcopy-preempt detection go on with what is
 * known. */
MS_API void ms_migration_no_main(ms_migration *m);

/* Open slot `slot` (< max_channels; each slot once).  `in` may be NULL
 * (format AUTO, not seekable, size unknown).  0 or -1 (a problem was
 * reported). */
MS_API int ms_migration_channel_open(ms_migration *m, uint32_t slot,
                                     const ms_channel_input *in);

/* The channel's next bytes, in order.  Returns 0 (consumed, or held),
 * MS_NEXT_SEEK (seekable channels only: give the bytes starting at
 * ms_migration_seek_target next, with ms_migration_input_at; bytes given
 * while a seek is pending are not used), or -1: the channel failed (its
 * problem was reported; later calls for it return -1 and do nothing).
 * The bytes need to stay valid only during the call, unless
 * ms_options.input_stable. */
MS_API int ms_migration_input(ms_migration *m, uint32_t slot, const void *buf,
                              size_t len);
/* Bytes starting at channel offset `offset` (seekable channels). */
MS_API int ms_migration_input_at(ms_migration *m, uint32_t slot,
                                 uint64_t offset, const void *buf, size_t len);
MS_API uint64_t ms_migration_seek_target(const ms_migration *m, uint32_t slot);

/* The channel's input is over: its reader finishes (a stream cut inside a
 * record is a problem) and the set is told.  A held channel is finished
 * once it is decoded.  0, or -1 when the channel failed. */
MS_API int ms_migration_channel_end(ms_migration *m, uint32_t slot);

/* All input is over: held channels are decoded and ended (opened channels
 * not ended yet are ended), the set's whole-migration checks run when
 * every channel ended cleanly, and nested payloads cut inside a record are
 * reported.  Returns 0 when no problem was reported at all, else -1. */
MS_API int ms_migration_finish(ms_migration *m);

/* Problems reported so far. */
MS_API uint64_t ms_migration_problems(const ms_migration *m);

/* ---- writer (migstream 2.0, or 1.0 on request) ------------------------- */
typedef struct ms_writer ms_writer;

/* Output of one channel: write all `len` bytes, return 0, or -1 on failure. */
typedef int (*ms_write_fn)(void *opaque, const void *buf, size_t len);

/* struct_size: as for ms_options, any size from MS_WRITER_OPTIONS_SIZE_V1
 * to sizeof(ms_writer_options) is accepted; new fields are appended. */
typedef struct ms_writer_options {
    uint32_t struct_size;   /* sizeof(ms_writer_options) */
    uint8_t uuid[16];       /* stream UUID shared by all channels */
    uint32_t channel_count; /* >= 1 */
    uint64_t created_ns;    /* written in every channel header */
    size_t chunk_size;      /* largest CHUNK record data (default 1 MiB) */
    int compression_level;  /* 0: none; 1..9: zlib per chunk (kept raw when
                               it does not shrink) */
    ms_allocator allocator;
    /* appended after MS_WRITER_OPTIONS_SIZE_V1 (older callers get 0): */
    int format_major;       /* format version written: 1 (1.0) or 2 (2.0);
                               0: MS_FORMAT_VERSION_MAJOR */
    int archive;            /* 1: channels may carry embedded streams
                               (ms_writer_stream_*): written as 2.1 with
                               the header flag MS_HEADER_ARCHIVE; needs
                               format 2 */
} ms_writer_options;

/* The smallest struct_size accepted (the first layout: up to allocator). */
#define MS_WRITER_OPTIONS_SIZE_V1                                             \
    (offsetof(ms_writer_options, allocator) + sizeof(ms_allocator))

MS_API void ms_writer_options_init(ms_writer_options *opt);

/* Concurrency: calls for different channels may run on different threads
 * as long as calls touching one channel, and calls touching one device,
 * are serialised.  Declare all devices before writing any record. */
MS_API ms_writer *ms_writer_create(const ms_writer_options *opt);
MS_API void ms_writer_free(ms_writer *w);
MS_API const ms_error_info *ms_writer_error(const ms_writer *w);

/* Set where a channel's bytes go; writes the channel header. */
MS_API int ms_writer_open_channel(ms_writer *w, uint32_t channel,
                                  ms_write_fn fn, void *opaque);

MS_API int ms_writer_add_device(ms_writer *w, uint32_t handle,
                                const char *idstr, uint32_t instance_id,
                                ms_payload_kind payload_kind,
                                const void *compat, uint32_t compat_len);

/* Images.  An image begins and ends on one channel (the device's home
 * channel; all images of a device use one channel).  Chunk-mode bytes go
 * through ms_writer_image_data on that channel; packet-mode bytes through
 * ms_writer_image_packet on any channel, in index order (the writer
 * numbers packets). */
MS_API int ms_writer_image_begin(ms_writer *w, uint32_t channel,
                                 uint32_t device, ms_phase phase,
                                 ms_transport transport, uint32_t flags,
                                 uint64_t timestamp_ns);
MS_API int ms_writer_image_data(ms_writer *w, uint32_t device,
                                const void *data, size_t len);
MS_API int ms_writer_image_packet(ms_writer *w, uint32_t channel,
                                  uint32_t device, const void *data,
                                  size_t len, int config);
MS_API int ms_writer_image_end(ms_writer *w, uint32_t device,
                               uint64_t timestamp_ns);

MS_API int ms_writer_precopy_info(ms_writer *w, uint32_t channel,
                                  uint32_t device, uint32_t flags,
                                  uint64_t initial_bytes,
                                  uint64_t dirty_bytes,
                                  uint64_t timestamp_ns);
MS_API int ms_writer_state_change(ms_writer *w, uint32_t channel,
                                  uint32_t device, uint32_t from,
                                  uint32_t to, uint64_t timestamp_ns);
MS_API int ms_writer_stop_copy_size(ms_writer *w, uint32_t channel,
                                    uint32_t device, uint64_t bytes,
                                    uint64_t timestamp_ns);
/* A vendor / future record (tag >= 0x80000000 must be optional). */
MS_API int ms_writer_raw_record(ms_writer *w, uint32_t channel, uint32_t tag,
                                uint32_t flags, const void *payload,
                                size_t len);

/* Embedded byte streams (format 2.1, ms_writer_options.archive): an
 * original file kept byte for byte, labelled.  stream_begin gives the
 * stream's id on the channel (0, 1, ... in begin order); stream_data cuts
 * the bytes into STREAM_DATA records of at most chunk_size bytes (no
 * compression); stream_end writes the length and XXH3-64.  Streams may
 * interleave; all must end before the channel closes.  declared_length:
 * the stream's total, or MS_ARCHIVE_LENGTH_UNKNOWN.  name: a file name
 * (1..255 bytes, no '/', not "." or ".."). */
MS_API int ms_writer_stream_begin(ms_writer *w, uint32_t channel,
                                  ms_archive_role role,
                                  ms_archive_direction direction,
                                  uint32_t connection, ms_format format,
                                  const char *name, uint64_t declared_length,
                                  uint32_t *stream_id);
MS_API int ms_writer_stream_data(ms_writer *w, uint32_t channel,
                                 uint32_t stream, const void *data,
                                 size_t len);
MS_API int ms_writer_stream_end(ms_writer *w, uint32_t channel,
                                uint32_t stream);

/* Write the channel's end record.  After it the channel takes no records. */
MS_API int ms_writer_close_channel(ms_writer *w, uint32_t channel,
                                   uint64_t timestamp_ns);

#ifdef __cplusplus
}
#endif
#endif /* MIGSTREAM_H */
