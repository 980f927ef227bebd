/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* Shared test helpers for the migstream test executables.
 *
 * 1. A hand builder of migstream v1 byte streams (tb_stream) written from
 *    spec/migstream.md alone: it does not use ms_writer, so the reader, the
 *    writer and the spec are checked against each other.  Payloads can be
 *    built with the tbp_* functions, altered by a test, and appended with
 *    tb_record; the tb_* record helpers do both for well-formed records.
 * 2. Drivers that push a buffer through ms_reader (one slice, one byte at a
 *    time, random slices) or several channel buffers through readers and an
 *    ms_set, collecting events and image bytes.
 * 3. A driver that writes a described workload with ms_writer into memory.
 */
#ifndef MS_TEST_UTIL_H
#define MS_TEST_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "migstream.h"

/* ---- soft checks ---------------------------------------------------------
 * A test counts what fails and asserts nothing failed at its end, so one
 * run names every failing case.  The test file defines `static int g_fail`
 * and includes <cmocka.h> (print_message, assert_int_equal). */
#define SOFT(cond, ...)                                                        \
    do {                                                                       \
        if (!(cond)) {                                                         \
            g_fail++;                                                          \
            print_message("  FAIL %s:%d: ", __FILE__, __LINE__);               \
            print_message(__VA_ARGS__);                                        \
            print_message("\n");                                               \
        }                                                                      \
    } while (0)
#define BEGIN() (g_fail = 0)
#define DONE() assert_int_equal(g_fail, 0)

/* A file of the source tree (e.g. a capture under tests/data), read whole:
 * `rel` is relative to $MIGSTREAM_SRC_DIR (set by CTest), else to the tree
 * this file was compiled from.  NULL (after a message) when it cannot be
 * read; free() the result.  A NUL byte follows the *len bytes (text files
 * are strings). */
uint8_t *tb_load_source(const char *rel, size_t *len);

/* ---- growable byte buffer ---------------------------------------------- */
typedef struct tb_buf {
    uint8_t *p;
    size_t len, cap;
} tb_buf;

void tb_buf_init(tb_buf *b);
void tb_buf_free(tb_buf *b);
void tb_buf_reset(tb_buf *b);
void tb_put(tb_buf *b, const void *data, size_t len);
void tb_put_u8(tb_buf *b, uint8_t v);
void tb_put_le16(tb_buf *b, uint16_t v);
void tb_put_le32(tb_buf *b, uint32_t v);
void tb_put_le64(tb_buf *b, uint64_t v);
void tb_put_zeros(tb_buf *b, size_t n);
void tb_buf_copy(tb_buf *dst, const tb_buf *src); /* dst := src */

/* little-endian loads/stores on raw memory */
uint32_t tb_le32(const uint8_t *p);
uint64_t tb_le64(const uint8_t *p);
void tb_set_le16(uint8_t *p, uint16_t v);
void tb_set_le32(uint8_t *p, uint32_t v);
void tb_set_le64(uint8_t *p, uint64_t v);

/* XXH3-64(data, seed 0), the image / config hash of the spec. */
uint64_t tb_hash(const void *data, size_t len);
uint64_t tb_hash_seed(const void *data, size_t len, uint64_t seed);

/* Deterministic pseudo-random generator (xorshift64*). */
uint64_t tb_rand(uint64_t *state);
/* Fill with pseudo-random bytes (incompressible). */
void tb_fill_random(uint8_t *p, size_t n, uint64_t seed);
/* Fill with compressible bytes (short random runs of repeated bytes). */
void tb_fill_compressible(uint8_t *p, size_t n, uint64_t seed);

/* ---- hand builder of a channel stream ---------------------------------- */
typedef struct tb_stream {
    tb_buf b;        /* the bytes so far */
    uint64_t chain;  /* current chain seed (spec 4.1) */
    /* totals for END, kept from every record appended (spec 5.9) */
    uint64_t record_count, image_bytes, packet_count;
    uint32_t device_count, image_count;
    size_t last_off; /* first byte of the last record appended */
    size_t last_len; /* its total length (header + payload + check) */
    uint16_t major;  /* format version of the header written (1, 2) */
} tb_stream;

void tb_stream_init(tb_stream *s);
void tb_stream_free(tb_stream *s);

extern const uint8_t tb_magic[8];
extern const uint8_t tb_uuid_a[16];
extern const uint8_t tb_uuid_b[16];

/* Stream header, version 1.0, no flags, created_ns 0, reserved 0.
 * (tb_header_ex with major 2 starts a 2.0 stream: tb_record, tb_chunk_image
 * then compute 2.x checks.) */
void tb_header(tb_stream *s, const uint8_t uuid[16], uint32_t index,
               uint32_t count);
/* Stream header with every field explicit; header_check computed. */
void tb_header_ex(tb_stream *s, const uint8_t magic[8], uint16_t major,
                  uint16_t minor, uint32_t header_flags,
                  const uint8_t uuid[16], uint32_t index, uint32_t count,
                  uint64_t created_ns, uint64_t reserved);
/* After a test edited bytes 0..55 of the header: recompute header_check
 * and restart the chain from it (only valid before any record). */
void tb_header_refresh(tb_stream *s);

/* A record's payload_check in format `major` (spec 4.1, 4.3: a 2.x CHUNK
 * or PACKET covers prefix || le64 XXH3-64(data)). */
uint64_t tb_payload_check(uint16_t major, uint32_t tag, const void *payload,
                          size_t len, uint64_t header_check);
/* A 2.x image hash (spec 5.4) of `data` cut into units of `unit_size`
 * bytes (the last one shorter): XXH3-64 of their le64 XXH3-64s. */
uint64_t tb_units_hash(const void *data, size_t len, size_t unit_size);

/* Append a record: header (size, flags, tag, header_check chained), the
 * payload and its payload_check; the chain moves on.  Returns the offset of
 * the record's first byte.  Totals for END are updated by tag. */
size_t tb_record(tb_stream *s, uint32_t flags, uint32_t tag,
                 const void *payload, size_t len);

/* Payload builders (append the payload bytes to `p`). */
void tbp_device(tb_buf *p, uint32_t handle, uint32_t instance_id,
                uint32_t kind, uint32_t flags, const void *idstr,
                uint32_t idstr_len, const void *compat, uint32_t compat_len);
void tbp_image_begin(tb_buf *p, uint32_t device, uint32_t seq, uint8_t phase,
                     uint8_t transport, uint32_t flags, uint64_t ts);
/* Chunk with explicit raw_len and stored data (stored as given). */
void tbp_chunk(tb_buf *p, uint32_t device, uint32_t seq, uint8_t compression,
               uint32_t raw_len, const void *stored, size_t stored_len);
void tbp_image_end(tb_buf *p, uint32_t device, uint32_t seq, uint64_t length,
                   uint64_t hash, uint64_t unit_count, uint64_t ts,
                   uint64_t config_length, uint64_t config_hash);
void tbp_packet(tb_buf *p, uint32_t device, uint32_t seq, uint32_t idx,
                uint32_t flags, const void *data, size_t len);
void tbp_precopy_info(tb_buf *p, uint32_t device, uint32_t flags,
                      uint64_t initial, uint64_t dirty, uint64_t ts);
void tbp_state_change(tb_buf *p, uint32_t device, uint32_t from, uint32_t to,
                      uint64_t ts);
void tbp_stop_copy_size(tb_buf *p, uint32_t device, uint64_t bytes,
                        uint64_t ts);
void tbp_end(tb_buf *p, uint64_t record_count, uint64_t stream_bytes,
             uint64_t image_bytes, uint64_t packet_count,
             uint32_t device_count, uint32_t image_count, uint64_t ts);

/* Whole records with the flags the spec's tag table gives. Each returns
 * the record's first byte offset. */
size_t tb_device(tb_stream *s, uint32_t handle, const char *idstr,
                 uint32_t kind);
size_t tb_device_ex(tb_stream *s, uint32_t handle, uint32_t instance_id,
                    uint32_t kind, const char *idstr, const void *compat,
                    uint32_t compat_len);
size_t tb_image_begin(tb_stream *s, uint32_t device, uint32_t seq,
                      uint8_t phase, uint8_t transport, uint32_t flags,
                      uint64_t ts);
/* compression 0: data stored as is; 1: zlib compress2 level 6 of data;
 * raw_len = len. */
size_t tb_chunk(tb_stream *s, uint32_t device, uint32_t seq,
                uint8_t compression, const void *data, size_t len);
/* compression 1 with an explicit raw_len (may be wrong on purpose). */
size_t tb_chunk_zlib_rawlen(tb_stream *s, uint32_t device, uint32_t seq,
                            const void *data, size_t len, uint32_t raw_len);
size_t tb_image_end(tb_stream *s, uint32_t device, uint32_t seq,
                    uint64_t length, uint64_t hash, uint64_t unit_count,
                    uint64_t ts, uint64_t config_length,
                    uint64_t config_hash);
size_t tb_packet(tb_stream *s, uint32_t device, uint32_t seq, uint32_t idx,
                 uint32_t flags, const void *data, size_t len);
size_t tb_precopy_info(tb_stream *s, uint32_t device, uint32_t flags,
                       uint64_t initial, uint64_t dirty, uint64_t ts);
size_t tb_state_change(tb_stream *s, uint32_t device, uint32_t from,
                       uint32_t to, uint64_t ts);
size_t tb_stop_copy_size(tb_stream *s, uint32_t device, uint64_t bytes,
                         uint64_t ts);
size_t tb_end(tb_stream *s, uint64_t record_count, uint64_t stream_bytes,
              uint64_t image_bytes, uint64_t packet_count,
              uint32_t device_count, uint32_t image_count, uint64_t ts);
/* END with the totals of everything appended so far. */
size_t tb_end_auto(tb_stream *s, uint64_t ts);

/* A complete chunk-mode image: IMAGE_BEGIN, chunks of at most chunk_size
 * bytes (compression as tb_chunk), IMAGE_END with the right length, hash
 * and unit count. */
void tb_chunk_image(tb_stream *s, uint32_t device, uint32_t seq,
                    uint8_t phase, const void *data, size_t len,
                    size_t chunk_size, uint8_t compression);

/* ---- running a buffer through a reader --------------------------------- */
typedef struct tb_image {
    uint32_t device, seq;
    tb_buf data;   /* image bytes: chunk DATA (reader) / reassembled (set) */
    tb_buf pkt;    /* reader: packet DATA bytes in arrival order */
    tb_buf config; /* set: config packet bytes */
    int ended;     /* IMAGE_END seen */
    int assembled; /* IMAGE_ASSEMBLED seen (set) */
    ms_image_info end; /* IMAGE_END info */
    ms_image_info asm_info; /* IMAGE_ASSEMBLED info (set) */
} tb_image;

typedef struct tb_result {
    int rc;             /* 0: clean finish; -1: error */
    int failed_in_finish; /* the error came from ms_reader_finish */
    ms_error_info err;  /* copy of the reader's (or set's) error */
    int err_from_set;   /* set runs: 1 when the set (not a reader) failed */
    ms_event *events;   /* every non-DATA event, pointers cleared */
    size_t n_events, cap_events;
    size_t n_data_events;
    int all_data_zero_copy; /* every reader DATA event had zero_copy */
    /* DATA events whose image_offset is not the number of bytes of that
     * image handed out before (chunk DATA from readers, non-config DATA
     * from the set): image bytes must come contiguously and in order */
    size_t data_offset_errors;
    tb_image *images;
    size_t n_images, cap_images;
    uint64_t bytes_fed;
} tb_result;

void tb_result_free(tb_result *r);
tb_image *tb_result_image(tb_result *r, uint32_t device, uint32_t seq);
size_t tb_result_count(const tb_result *r, ms_event_kind kind);
const ms_event *tb_result_find(const tb_result *r, ms_event_kind kind,
                               size_t nth);

/* slice == 0: the whole buffer in one slice; slice == 1: one byte at a
 * time; otherwise slices of `slice` bytes.  Each slice is copied to a fresh
 * heap block that is poisoned and freed once the reader consumed it (unless
 * opt->input_stable).  Returns res->rc. */
int tb_read(const uint8_t *p, size_t len, const ms_options *opt, size_t slice,
            tb_result *res);
int tb_read_all(const uint8_t *p, size_t len, const ms_options *opt,
                tb_result *res);
int tb_read_bytewise(const uint8_t *p, size_t len, const ms_options *opt,
                     tb_result *res);
/* Random slice sizes 1..max_slice from a deterministic seed. */
int tb_read_random(const uint8_t *p, size_t len, const ms_options *opt,
                   uint64_t seed, size_t max_slice, tb_result *res);
/* Just the verdict: 0 clean, -1 error (err filled when non-NULL). */
int tb_verify(const uint8_t *p, size_t len, const ms_options *opt,
              ms_error_info *err);

/* Events equal apart from DATA splitting (kind, offset, length and the
 * kind's fields; pointers compared by content where they exist). */
int tb_events_equal(const tb_result *a, const tb_result *b, char *why,
                    size_t why_len);

/* ---- several channels through readers and a set ------------------------ */
/* Channel buffers in `chans` (n of them) are read by one reader each; every
 * reader event goes to ms_set_observe (slot = index in chans), ms_set_next
 * is drained after each, ms_set_channel_done after a clean finish, then
 * ms_set_finish.  Channels are interleaved slice by slice: slice as in
 * tb_read (0 = whole channel at once); seed != 0 picks the next channel
 * and the slice sizes (1..slice, or 1..64 when slice is 0) at random.
 * Images in res: chunk bytes from reader DATA events, packet images from
 * the set's DATA events (in index order).  res->events holds set events
 * (DATA excluded) and reader events. */
int tb_run_set(const tb_buf *chans, size_t n, const ms_options *opt,
               size_t slice, uint64_t seed, tb_result *res);
int tb_run_set_streams(const tb_stream *chans, size_t n,
                       const ms_options *opt, size_t slice, uint64_t seed,
                       tb_result *res);

/* ---- a workload written with ms_writer --------------------------------- */
typedef struct tb_wdevice {
    uint32_t handle;
    const char *idstr;
    uint32_t instance_id;
    uint32_t kind;
    uint32_t home; /* home channel */
    const void *compat;
    uint32_t compat_len;
} tb_wdevice;

typedef struct tb_wimage {
    uint32_t device;
    ms_phase phase;
    ms_transport transport;
    const uint8_t *data;
    size_t len;
    size_t piece;          /* bytes per image_data call / per data packet */
    const uint8_t *config; /* packet mode: config packet bytes */
    size_t config_len;
    int extras;            /* also write precopy/state/stop-copy records */
} tb_wimage;

typedef struct tb_workload {
    uint32_t channels;
    int compression;       /* writer compression level */
    size_t chunk_size;     /* 0: writer default */
    const uint8_t *uuid;   /* NULL: tb_uuid_a */
    uint64_t created_ns;
    const tb_wdevice *devs;
    size_t n_devs;
    const tb_wimage *imgs;
    size_t n_imgs;
    int format_major;      /* writer format_major: 0 (default 2), 1, 2 */
} tb_workload;

/* The image_hash IMAGE_END must hold for `im` written as tb_write_workload
 * writes it (spec 5.4): 1.x the bytes' hash; 2.x the unit hashes' hash,
 * units cut as the writer cuts them (packets: `piece`; chunks: each piece
 * cut by the chunk size). */
uint64_t tb_wimage_hash(const tb_workload *wl, const tb_wimage *im);

/* Write the workload; out[] (channels entries, each tb_buf_init'ed by the
 * caller) receives the bytes.
 * Returns 0 or -1 (err filled). */
int tb_write_workload(const tb_workload *w, tb_buf *out, ms_error_info *err);

/* ---- assertions helpers ------------------------------------------------ */
/* Print an error info (for diagnosis) with a label. */
void tb_print_err(const char *label, const ms_error_info *e);
/* 1 when `detail` contains the decimal number v as a token of its own. */
int tb_detail_has_number(const char *detail, uint64_t v);


/* ---- QEMU main stream ("QEVM") hand builder ----------------------------
 * Written from the reference notes on QEMU's format (the qemu-main-stream
 * reference, sections 1-9), not from the decoder.  Every tq_* function
 * appends to a tb_buf and returns the offset of the first byte it wrote.
 * All QEMU framing is big-endian; the libvirt header is little-endian. */
#define TQ_MAGIC 0x5145564Du /* "QEVM" */
#define TQ_VERSION 3u

enum tq_type {
    TQ_EOF = 0x00,
    TQ_START = 0x01,
    TQ_PART = 0x02,
    TQ_END = 0x03,
    TQ_FULL = 0x04,
    TQ_SUBSECTION = 0x05,
    TQ_VMDESC = 0x06,
    TQ_CONFIGURATION = 0x07,
    TQ_COMMAND = 0x08,
    TQ_FOOTER = 0x7E
};

enum tq_cmd {
    TQ_CMD_INVALID = 0,
    TQ_CMD_OPEN_RETURN_PATH = 1,
    TQ_CMD_PING = 2,
    TQ_CMD_POSTCOPY_ADVISE = 3,
    TQ_CMD_POSTCOPY_LISTEN = 4,
    TQ_CMD_POSTCOPY_RUN = 5,
    TQ_CMD_POSTCOPY_RAM_DISCARD = 6,
    TQ_CMD_PACKAGED = 7,
    TQ_CMD_ENABLE_COLO = 8,
    TQ_CMD_POSTCOPY_RESUME = 9,
    TQ_CMD_RECV_BITMAP = 10,
    TQ_CMD_SWITCHOVER_START = 11
};

/* RAM record flags (low bits of the record's be64). */
#define TQ_RAM_ZERO 0x02u
#define TQ_RAM_MEM_SIZE 0x04u
#define TQ_RAM_PAGE 0x08u
#define TQ_RAM_EOS 0x10u
#define TQ_RAM_CONTINUE 0x20u
#define TQ_RAM_XBZRLE 0x40u
#define TQ_RAM_HOOK 0x80u
#define TQ_RAM_COMPRESS_PAGE 0x100u
#define TQ_RAM_MULTIFD_FLUSH 0x200u

/* VFIO markers: TQ_VFIO_BASE + n. */
#define TQ_VFIO_BASE 0xffffffffef100000ull
enum tq_vfio {
    TQ_VFIO_END_OF_STATE = 1,
    TQ_VFIO_CONFIG_STATE = 2,
    TQ_VFIO_SETUP_STATE = 3,
    TQ_VFIO_DATA_STATE = 4,
    TQ_VFIO_INIT_DATA_SENT = 5,
    TQ_VFIO_CONFIG_LOAD_READY = 6
};

#define TQ_LIBVIRT_HEADER 92 /* 16 magic + 5 u32 + 14 unused u32 */

void tb_put_be16(tb_buf *b, uint16_t v);
void tb_put_be32(tb_buf *b, uint32_t v);
void tb_put_be64(tb_buf *b, uint64_t v);
void tb_set_be32(uint8_t *p, uint32_t v);
void tb_set_be64(uint8_t *p, uint64_t v);

/* u8 length + bytes (no NUL); strlen(s) must be <= 255. */
size_t tq_counted(tb_buf *b, const char *s);

/* File header: be32 magic, be32 version. */
size_t tq_header(tb_buf *b); /* QEVM, 3 */
size_t tq_header_ex(tb_buf *b, uint32_t magic, uint32_t version);

/* CONFIGURATION record: 0x07, be32 len, machine type, then the "needed"
 * subsections in QEMU's order (target-page-bits, capabilities, uuid), each
 * framed as 0x05, counted name, be32 version 1, fields. */
typedef struct tq_cfg {
    const char *machine;     /* NULL: "pc-i440fx-7.2" */
    int has_page_bits;
    uint32_t page_bits;
    int has_caps;            /* write the capabilities subsection */
    const char *const *caps; /* n_caps counted strings */
    uint32_t n_caps;
    const uint8_t *uuid;     /* NULL: no uuid subsection */
} tq_cfg;
size_t tq_config(tb_buf *b, const tq_cfg *c);
size_t tq_config_machine(tb_buf *b, const char *machine); /* no subsections */
/* A subsection header: 0x05, counted name, be32 version. */
size_t tq_subsection(tb_buf *b, const char *name, uint32_t version);
/* Header + configuration for machine "pc-i440fx-7.2" (no subsections). */
size_t tq_begin(tb_buf *b);

/* Section headers (the payload and tq_footer follow). */
size_t tq_section_start(tb_buf *b, uint8_t type /* TQ_START/TQ_FULL */,
                        uint32_t section_id, const char *idstr,
                        uint32_t instance_id, uint32_t version_id);
size_t tq_section_part(tb_buf *b, uint8_t type /* TQ_PART/TQ_END */,
                       uint32_t section_id);
size_t tq_footer(tb_buf *b, uint32_t section_id);
/* RAM's END section as QEMU's source ends it (nothing left to send): END
 * header, RAM_SAVE_FLAG_EOS, footer (5 + 8 + 5 bytes). */
size_t tq_ram_end(tb_buf *b, uint32_t section_id);
size_t tq_eof(tb_buf *b);
/* JSON trailer: 0x06, be32 len, len bytes. */
size_t tq_vmdesc(tb_buf *b, const char *json, size_t len);

/* Commands: 0x08, be16 cmd, be16 len, len argument bytes. */
size_t tq_command(tb_buf *b, uint16_t cmd, const void *args, uint16_t len);
size_t tq_cmd_ping(tb_buf *b, uint32_t value);
/* PACKAGED: the command (be32 pkg_len) followed by the pkg_len bytes. */
size_t tq_cmd_packaged(tb_buf *b, const void *pkg, uint32_t pkg_len);
/* POSTCOPY_ADVISE with its 16 argument bytes. */
size_t tq_cmd_postcopy_advise(tb_buf *b, uint64_t page_summary,
                              uint64_t target_page_size);
/* POSTCOPY_RAM_DISCARD: version 0, name, 0, n x (be64 start, be64 len);
 * ranges holds 2 * n values. */
size_t tq_cmd_ram_discard(tb_buf *b, const char *block,
                          const uint64_t *ranges, size_t n);
/* RECV_BITMAP: counted block name. */
size_t tq_cmd_recv_bitmap(tb_buf *b, const char *block);

/* RAM records (inside a "ram" section payload).  block NULL: the record
 * gets the CONTINUE flag and no name. */
size_t tq_ram_raw(tb_buf *b, uint64_t v); /* a bare be64 */
size_t tq_ram_mem_size(tb_buf *b, uint64_t total);
size_t tq_ram_block_entry(tb_buf *b, const char *name, uint64_t used_length);
/* MEM_SIZE with the sum of the lengths, then one entry per block. */
size_t tq_ram_block_list(tb_buf *b, const char *const *names,
                         const uint64_t *lengths, size_t n);
size_t tq_ram_zero(tb_buf *b, uint64_t offset, const char *block,
                   uint8_t fill);
size_t tq_ram_page(tb_buf *b, uint64_t offset, const char *block,
                   const uint8_t *page, size_t page_size);
size_t tq_ram_xbzrle(tb_buf *b, uint64_t offset, const char *block,
                     uint8_t encoding, const uint8_t *data, uint16_t len);
/* COMPRESS_PAGE: zlib (compress2, level 6) of the page. */
size_t tq_ram_compress(tb_buf *b, uint64_t offset, const char *block,
                       const uint8_t *page, size_t page_size);
/* COMPRESS_PAGE with the stored bytes given as they are. */
size_t tq_ram_compress_raw(tb_buf *b, uint64_t offset, const char *block,
                           const void *zdata, uint32_t zlen);
size_t tq_ram_eos(tb_buf *b);
size_t tq_ram_flush(tb_buf *b); /* MULTIFD_FLUSH */

/* VFIO: a marker (be64 TQ_VFIO_BASE + n); DATA_STATE + be64 len + bytes. */
size_t tq_vfio_marker(tb_buf *b, unsigned n);
size_t tq_vfio_data(tb_buf *b, const void *data, uint64_t len);

/* libvirt save image header (92 bytes, little endian); the domain XML of
 * xml_len bytes and the QEVM stream follow. */
size_t tq_libvirt_header(tb_buf *b, const char magic[16], uint32_t version,
                         uint32_t xml_len, uint32_t was_running,
                         uint32_t compressed, uint32_t cookie_off);

/* ---- QEMU multifd channel hand builder ---------------------------------
 * Written from the qemu-multifd reference (sections 1-5), not from the
 * decoder.  Every tm_* function appends to a tb_buf and returns the offset
 * of the first byte it wrote.  All framing is big-endian. */
#define TM_MAGIC 0x11223344u
#define TM_VERSION 1u
#define TM_INIT_SIZE 64u
#define TM_RAM_FIXED 320u   /* RAM packet: header through the block name */
#define TM_DEV_HDR 276u     /* device-state packet header */
#define TM_VFIO_HDR 12u     /* VFIO buffer header inside its payload */
#define TM_PACKET_DATA (512u * 1024) /* page data a RAM packet may carry */

enum tm_flag {
    TM_SYNC = 0x01,
    TM_ZLIB = 0x02,
    TM_ZSTD = 0x04,
    TM_QPL = 0x08,
    TM_UADK = 0x10,
    TM_QATZIP = 0x20,
    TM_DEVICE_STATE = 0x40
};
#define TM_VFIO_CONFIG 0x1u /* VFIO buffer flags: CONFIG_STATE */

/* Init packet: magic, version, uuid (NULL: all zero), id, zeros. */
size_t tm_init(tb_buf *b, const uint8_t *uuid, uint8_t id);
size_t tm_init_ex(tb_buf *b, uint32_t magic, uint32_t version,
                  const uint8_t *uuid, uint8_t id);

/* One RAM packet, every field explicit.  The header has `slots` offset
 * slots on the wire (0: pages_alloc of them); offsets[] gives the first
 * normal + zero slots (the rest are zero).  next_packet_size is written
 * as given; the payload (payload_len bytes) follows the header. */
typedef struct tm_ram {
    uint32_t magic, version;  /* 0: TM_MAGIC, TM_VERSION */
    uint32_t flags;
    uint32_t pages_alloc;     /* 0: TM_PACKET_DATA / 4096 */
    uint32_t slots;
    uint32_t normal, zero;
    uint32_t next_packet_size;
    uint64_t packet_num;
    const char *block;        /* NULL: an all-zero name */
    const uint64_t *offsets;
    const void *payload;
    size_t payload_len;
} tm_ram;
size_t tm_ram_ex(tb_buf *b, const tm_ram *p);

/* A RAM packet of 4 KiB pages with raw payload: normal pages at offsets[0..
 * normal), their bytes in `pages` (normal * 4096); zero pages after them;
 * next_packet_size = normal * 4096. */
size_t tm_ram_raw(tb_buf *b, uint32_t flags, uint64_t packet_num,
                  const char *block, const uint64_t *offsets, uint32_t normal,
                  uint32_t zero, const uint8_t *pages);
/* A packet without pages (e.g. a SYNC packet): no payload, the given
 * next_packet_size (7.2 leaves a stale one) and block name (may be NULL). */
size_t tm_ram_empty(tb_buf *b, uint32_t flags, uint64_t packet_num,
                    uint32_t next_packet_size, const char *block);

/* One zlib or zstd stream per channel, persistent across packets as QEMU
 * keeps it: pages are fed one by one and each packet ends with a sync
 * flush (zlib Z_SYNC_FLUSH on the last page; zstd ZSTD_e_flush). */
typedef struct tm_comp tm_comp;
tm_comp *tm_comp_new(uint32_t method /* TM_ZLIB or TM_ZSTD */, int level);
void tm_comp_free(tm_comp *c);
/* Compress n pages of page_size bytes: the packet's payload into `out`
 * (replaced). */
void tm_comp_pages(tm_comp *c, const uint8_t *pages, size_t n,
                   size_t page_size, tb_buf *out);
/* A RAM packet of 4 KiB pages compressed with c: flags gain the method's
 * bit; next_packet_size is the compressed length. */
size_t tm_ram_comp(tb_buf *b, tm_comp *c, uint32_t flags,
                   uint64_t packet_num, const char *block,
                   const uint64_t *offsets, uint32_t normal, uint32_t zero,
                   const uint8_t *pages);

/* Device-state packet: header (flags DEVICE_STATE, idstr, instance_id,
 * next_packet_size = 12 + len), VFIO buffer header (version 0, idx,
 * buf_flags), len data bytes. */
size_t tm_device(tb_buf *b, const char *idstr, uint32_t instance_id,
                 uint32_t idx, uint32_t buf_flags, const void *data,
                 size_t len);
/* A VFIO config buffer's bytes: be64 DEV_CONFIG_STATE, `n` bytes of
 * deterministic filler (seed), be64 END_OF_STATE; into `out` (replaced). */
void tm_config_bytes(tb_buf *out, size_t n, uint64_t seed);

/* ---- peak memory of a run ----------------------------------------------
 * fn(arg, extra) runs in a forked child whose peak-RSS mark is reset first
 * (/proc/self/clear_refs 5); the result is how far the child's peak
 * resident set (VmHWM) rose above its resident set at the start, in KiB,
 * *err what fn returned and *extra (when not NULL) what fn stored in its
 * `extra` (e.g. the peak of a counting allocator: memory allocated but
 * never touched does not show in RSS).  -1 when the child could not run
 * or died. */
typedef ms_error_info (*tb_rss_fn)(void *arg, uint64_t *extra);
long tb_peak_rss_kib(tb_rss_fn fn, void *arg, ms_error_info *err,
                     uint64_t *extra);

/* A counting allocator (malloc underneath): live and peak bytes. */
typedef struct tb_count_alloc {
    uint64_t live, peak;
} tb_count_alloc;
ms_allocator tb_count_allocator(tb_count_alloc *c);
/* tb_verify with a counting allocator in *opt (replaced): the error, and
 * the peak of the bytes the reader held in *peak_alloc. */
ms_error_info tb_verify_counting(const uint8_t *p, size_t len, ms_options *opt,
                                 uint64_t *peak_alloc);

#endif
