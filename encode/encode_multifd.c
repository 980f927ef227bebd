/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* QEMU multifd packets (encode.h; facts: spec/qemu-multifd.md):
 *   init packet    be32 magic, be32 version, uuid[16], u8 id, zeros to 64
 *   RAM packet     be32 magic, version, flags, pages_alloc, normal pages,
 *                  next_packet_size; be64 packet_num; be32 zero pages;
 *                  reserved; ramblock[256]; be64 offsets (normal, zero)
 *   device state   be32 magic, version, flags (DEVICE_STATE); idstr[256];
 *                  be32 instance_id, next_packet_size; then the VFIO
 *                  buffer header: be32 version, idx, flags */
#include "encode.h"

#include <string.h>

/* the RAM packet's fields after the common header */
enum {
    RAM_OFF_PAGES_ALLOC = 12,
    RAM_OFF_NORMAL = 16,
    RAM_OFF_NEXT_SIZE = 20,
    RAM_OFF_PACKET_NUM = 24,
    RAM_OFF_ZERO = 32
};
/* the device-state packet's */
enum { DEV_OFF_IDSTR = 12, DEV_OFF_INSTANCE = 268, DEV_OFF_NEXT_SIZE = 272 };

static void packet_header(uint8_t *p, uint32_t flags)
{
    enc_store_be32(p, MULTIFD_MAGIC);
    enc_store_be32(p + 4, MULTIFD_VERSION);
    enc_store_be32(p + 8, flags);
}

void enc_mfd_init(uint8_t *p, const uint8_t *uuid, uint8_t channel_id)
{
    memset(p, 0, MULTIFD_INIT_SIZE);
    enc_store_be32(p, MULTIFD_MAGIC);
    enc_store_be32(p + 4, MULTIFD_VERSION);
    if (uuid)
        memcpy(p + MULTIFD_INIT_OFF_UUID, uuid, 16);
    p[MULTIFD_INIT_OFF_ID] = channel_id;
}

size_t enc_mfd_ram_size(uint32_t slots)
{
    return MULTIFD_RAM_FIXED + 8 * (size_t)slots;
}

size_t enc_mfd_ram_header(uint8_t *p, uint32_t slots, const enc_mfd_ram *r)
{
    size_t size = enc_mfd_ram_size(slots);
    memset(p, 0, size);
    packet_header(p, r->flags);
    enc_store_be32(p + RAM_OFF_PAGES_ALLOC, r->pages_alloc);
    enc_store_be32(p + RAM_OFF_NORMAL, r->normal);
    enc_store_be32(p + RAM_OFF_NEXT_SIZE, r->payload_len);
    enc_store_be64(p + RAM_OFF_PACKET_NUM, r->packet_num);
    enc_store_be32(p + RAM_OFF_ZERO, r->zero);
    if (r->block) /* < 256 bytes, NUL padded */
        memcpy(p + MULTIFD_RAM_OFF_NAME, r->block, strlen(r->block));
    uint8_t *slot = p + MULTIFD_RAM_FIXED;
    for (uint32_t i = 0; i < r->normal; i++, slot += 8)
        enc_store_be64(slot, r->normal_off[i]);
    for (uint32_t i = 0; i < r->zero; i++, slot += 8)
        enc_store_be64(slot, r->zero_off[i]);
    return size;
}

size_t enc_mfd_device_header(uint8_t *p, const char *idstr,
                             uint32_t instance_id, uint32_t idx, int config,
                             size_t data_len)
{
    memset(p, 0, MULTIFD_DEV_HDR);
    packet_header(p, MULTIFD_FLAG_DEVICE_STATE);
    memcpy(p + DEV_OFF_IDSTR, idstr, strlen(idstr)); /* < 256, NUL padded */
    enc_store_be32(p + DEV_OFF_INSTANCE, instance_id);
    enc_store_be32(p + DEV_OFF_NEXT_SIZE,
                   (uint32_t)(VFIO_BUFFER_HDR + data_len));
    uint8_t *v = p + MULTIFD_DEV_HDR;
    enc_store_be32(v, 0); /* VFIO buffer version */
    enc_store_be32(v + 4, idx);
    enc_store_be32(v + 8, config ? VFIO_BUFFER_CONFIG : 0);
    return MULTIFD_DEV_HDR + VFIO_BUFFER_HDR;
}
