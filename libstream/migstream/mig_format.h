/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* migstream wire layout (versions 1.x and 2.x have the same layouts):
 * every size, offset and value that both the reader and the writer need.
 * spec/migstream.md is normative; this file must match it. */
#ifndef MS_MIG_FORMAT_H
#define MS_MIG_FORMAT_H

#include <stdint.h>
#include <string.h>

#include "common.h" /* ms_put_le64, ms_hash64 */

#include "migstream.h" /* the public flag values */

/* Stream header (64 bytes, little endian). */
#define MIG_MAGIC_LEN 8
extern const uint8_t mig_magic[MIG_MAGIC_LEN]; /* 8D 'M' 'I' 'G' 0D 0A 1A 0A */
#define MIG_HDR_SIZE 64
#define MIG_HDR_OFF_MAJOR 8
#define MIG_HDR_OFF_MINOR 10
#define MIG_HDR_OFF_FLAGS 12
#define MIG_HDR_OFF_UUID 16
#define MIG_HDR_OFF_CHANNEL 32
#define MIG_HDR_OFF_CHANNELS 36
#define MIG_HDR_OFF_CREATED 40
#define MIG_HDR_OFF_RESERVED 48
#define MIG_HDR_OFF_CHECK 56 /* XXH3-64(bytes 0..55, seed 0) */

/* Record framing: 24-byte header, payload, 8-byte payload check. */
#define MIG_REC_HDR_SIZE 24
#define MIG_REC_OFF_SIZE 0   /* le64 payload size */
#define MIG_REC_OFF_FLAGS 8  /* le32 */
#define MIG_REC_OFF_TAG 12   /* le32 */
#define MIG_REC_OFF_CHECK 16 /* le64 XXH3-64(bytes 0..15, seed = chain) */
#define MIG_REC_TRAILER_SIZE 8 /* le64 XXH3-64(payload, seed = hdr check) */
#define MIG_REC_OVERHEAD (MIG_REC_HDR_SIZE + MIG_REC_TRAILER_SIZE)

#define MIG_FLAG_OPTIONAL MS_RECORD_OPTIONAL
#define MIG_FLAGS_KNOWN MIG_FLAG_OPTIONAL

enum mig_tag {
    MIG_TAG_DEVICE = 0x0001,
    MIG_TAG_IMAGE_BEGIN = 0x0002,
    MIG_TAG_CHUNK = 0x0003,
    MIG_TAG_IMAGE_END = 0x0004,
    MIG_TAG_PACKET = 0x0005,
    MIG_TAG_PRECOPY_INFO = 0x0010,
    MIG_TAG_STATE_CHANGE = 0x0011,
    MIG_TAG_STOP_COPY_SIZE = 0x0012,
    MIG_TAG_STREAM_BEGIN = 0x0020, /* 2.1: embedded streams (archives) */
    MIG_TAG_STREAM_DATA = 0x0021,
    MIG_TAG_STREAM_END = 0x0022,
    MIG_TAG_END = 0x00FF
};
/* Vendor tags, 0x80000000..0xFFFFFFFF, must be optional.  (A define: the
 * value does not fit an int enumerator in ISO C.) */
#define MIG_TAG_VENDOR_FIRST 0x80000000u

/* Payload sizes (fixed records) and prefixes (records with data). */
#define MIG_DEVICE_FIXED 24 /* + idstr + compat */
#define MIG_IDSTR_MAX 255   /* QEMU's idstr limit */
#define MIG_IMAGE_BEGIN_SIZE 32
#define MIG_CHUNK_PREFIX 16
#define MIG_IMAGE_END_SIZE 56
#define MIG_PACKET_PREFIX 24
#define MIG_PRECOPY_INFO_SIZE 32
#define MIG_STATE_CHANGE_SIZE 24
#define MIG_STOP_COPY_SIZE_SIZE 24

/* Spec 4.3: a 2.x unit record's (CHUNK, PACKET) payload check covers its
 * prefix (`prefix_len` bytes, at most MIG_PACKET_PREFIX) then the le64
 * XXH3-64 of its data, seeded with the record's header check.  The one
 * home of the rule: the reader checks it, the writer writes it. */
static inline uint64_t mig_unit_payload_check(const uint8_t *prefix,
                                              size_t prefix_len,
                                              uint64_t data_hash,
                                              uint64_t header_check)
{
    uint8_t buf[MIG_PACKET_PREFIX + 8];
    memcpy(buf, prefix, prefix_len);
    ms_put_le64(buf + prefix_len, data_hash);
    return ms_hash64(buf, prefix_len + 8, header_check);
}
#define MIG_END_SIZE 48

/* 2.1 embedded streams (spec 5.10-5.12). */
#define MIG_HDR_FLAG_ARCHIVE MS_HEADER_ARCHIVE
#define MIG_ARCHIVE_MINOR 1 /* the minor version that brought them */
#define MIG_STREAM_BEGIN_FIXED 40 /* + name */
#define MIG_SB_OFF_ID 0
#define MIG_SB_OFF_ROLE 4
#define MIG_SB_OFF_DIRECTION 5
#define MIG_SB_OFF_RESERVED16 6
#define MIG_SB_OFF_CONNECTION 8
#define MIG_SB_OFF_FORMAT 12
#define MIG_SB_OFF_LENGTH 16
#define MIG_SB_OFF_RESERVED64 24
#define MIG_SB_OFF_NAME_LEN 32
#define MIG_SB_OFF_RESERVED32 36
#define MIG_STREAM_NAME_MAX 255
#define MIG_STREAM_ROLE_MAX MS_ARCHIVE_SUMMARY
#define MIG_STREAM_DIR_MAX MS_ARCHIVE_DIR_D2S
#define MIG_STREAM_DATA_PREFIX 16 /* le32 id, le32 reserved, le64 offset */
#define MIG_STREAM_END_SIZE 24    /* le32 id, le32 reserved, le64 length,
                                     le64 XXH3-64 of the stream */

#define MIG_IMAGE_FLAG_FULL MS_IMAGE_FULL
#define MIG_PACKET_FLAG_CONFIG MS_PACKET_CONFIG
#define MIG_PRECOPY_FLAG_REINIT MS_PRECOPY_REINIT
#define MIG_DEVICE_HANDLE_INVALID 0xFFFFFFFFu
#define MIG_VFIO_STATE_MAX MS_VFIO_STATE_PRE_COPY_P2P /* ms_vfio_state: 0..7 */

#endif
