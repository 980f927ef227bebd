/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* migstream-synth: write valid synthetic migstream v1 streams, or (with
 * --qemu) a real QEMU main stream with VFIO devices inserted, or (with
 * --multifd) a QEMU multifd channel set: main channel, RAM pages and VFIO
 * device-state packets on N multifd channels, or (with --mapped-ram) a
 * mapped-ram file, or (with --postcopy) BASE as a postcopy migration, or
 * (with --return-path) the return path answering a QEMU main stream, or
 * (with --qemu-ram) a QEMU main stream of RAM pages alone.
 * This file: the options and the mode switch (synth.h lists the others). */
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "synth.h"

/* clang-format off */
/* The modes and the migstream options. */
static void usage_migstream(FILE *out)
{
    fputs(
"usage: " PROG " [options] -o DIR    one file per channel: DIR/channel-N.mig\n"
"       " PROG " [options] --stdout  (--channels 1 only) the stream on stdout\n"
"       " PROG " --example           the byte-level example of spec section 9\n"
"       " PROG " --raw FILE [options] one device's payload alone, as read\n"
"                      from its migration data fd, every phase in order\n"
"                      (for migstream-dump --payload KIND); --kind, the\n"
"                      sizes and --seed apply, and --expect-dir DIR writes\n"
"                      DIR/final-offset: where the stop-copy bytes begin\n"
"                      (for migstream-dump --final-offset)\n"
"       " PROG " --return-path MAIN.mig -o OUT | --stdout\n"
"                      the return path a destination sends for the QEMU\n"
"                      main stream MAIN: a PONG per PING, SWITCHOVER_ACK\n"
"                      when its VFIO devices use switchover-ack, SHUT 0\n"
"       " PROG " --qemu BASE.mig [options] -o OUT.mig | --stdout\n"
"                      BASE (a real QEMU main stream) with --devices VFIO\n"
"                      devices inserted: START/PART/END sections carrying\n"
"                      the device bytes, a FULL config section each\n"
"options (sizes take K, M, G suffixes, powers of 1024):\n"
"  --devices N           devices (default 2)\n"
"  --kind KIND           payload kind of all devices: raw, mlx5, virtio,\n"
"                        hisi_acc, qat, xe, pds.  Every image carries the\n"
"                        driver's valid payload (spec/payloads.md).\n"
"                        Default: raw (random state bytes) for migstream\n"
"                        sets, mlx5 for --qemu, --multifd and --raw.\n"
"                        Per kind:\n"
"                        mlx5: STOP_COPY_SIZE record, one FW_DATA record\n"
"                          per image (sizes: the FW_DATA payloads)\n"
"                        virtio: one DEVICE_DATA snapshot per image, padded\n"
"                          by a device-specific part to about the size\n"
"                        hisi_acc: 40-byte match data (initial), 136 bytes\n"
"                          more (final); qat: the 4096-byte buffer, setup\n"
"                          block initial, the rest final; both fixed:\n"
"                          --initial-size, --middle, --middle-size and\n"
"                          --final-size are ignored\n"
"                        xe: final only (no precopy): DESCRIPTOR, GGTT,\n"
"                          MMIO, GUC, VRAM packets of --final-size bytes in\n"
"                          all, TRAILER\n"
"                        pds: final only, one blob of --final-size bytes,\n"
"                          at most 64K\n"
"  --initial-size BYTES  initial image per device (default 256K; 0: none)\n"
"  --middle N            middle images per device (default 2)\n"
"  --middle-size BYTES   size of each middle image (default 64K)\n"
"  --final-size BYTES    final image per device (default 1M)\n"
"  --chunk-size BYTES    CHUNK data size (default 64K)\n"
"  --packet-size BYTES   device-state packet data size (default 128K)\n"
"  --channels N          channels (default 4)\n"
"  --final-transport chunks|packets\n"
"                        (default: packets with more than one channel)\n"
"  --compress LEVEL      zlib level 0..9 for chunks (default 0)\n"
"  --seed N              PRNG seed (default 1)\n"
"  --vendor-record       also write an optional vendor record on channel 0\n", out);
}

/* The QEMU modes. */
static void usage_qemu(FILE *out)
{
    fputs(
"--qemu mode (--devices, --kind, --initial-size, --middle,\n"
"--middle-size, --final-size and --seed apply; --packet-size caps each\n"
"DEV_DATA_STATE chunk, default 1M):\n"
"  --switchover-ack      end the initial data with DEV_INIT_DATA_SENT\n"
"                        (QEMU >= 8.1), so later precopy data is middle data\n"
"  --expect-dir DIR      also write the inserted bytes: DIR/devices (one\n"
"                        line per device: N IDSTR SECTION_ID) and\n"
"                        DIR/N.initial, DIR/N.middle, DIR/N.final\n"
"       " PROG " --multifd N [--qemu BASE.mig] [options] -o DIR\n"
"                      a QEMU multifd channel set: DIR/main.mig (the main\n"
"                      channel: BASE with its pages moved to the channels,\n"
"                      or a minimal QEMU 10 stream) and DIR/channel-K.mig,\n"
"                      K = 0..N-1 (N <= 255): RAM pages and, with --devices,\n"
"                      VFIO device-state packets (the stop-copy state of\n"
"                      --final-size bytes in --packet-size buffers, default\n"
"                      1M, then a config buffer); --devices (default 2, 0\n"
"                      with compression), --kind (all device state in\n"
"                      the final phase: hisi_acc and qat whole), --seed\n"
"                      and --expect-dir apply, and:\n"
"  --compress-multifd none|zlib|zstd\n"
"                        RAM page compression (device state needs none)\n"
"  --qemu-version V      the QEMU whose channels to write (default 10.0):\n"
"                        9.0 and 9.1 send SYNC packets with pages_alloc\n"
"                        128, 9.2 and later header-only SYNC packets\n"
"                        (pages_alloc 0); device state and the main\n"
"                        channel's SWITCHOVER_START need 10.0 or later;\n"
"                        all write zero pages as offsets and number the\n"
"                        packets 0..n-1 across the channels\n"
"  --uuid UUID           the VM UUID in every init packet (and, without\n"
"                        BASE, the main channel's configuration)\n"
"  --ram-size BYTES      without BASE: pc.ram size (default 4M; pc.bios\n"
"                        and a ROM take 1/16 and 1/32 of it, at most\n"
"                        256K and 128K)\n"
"  --ram-passes N        without BASE: RAM passes, the last one after the\n"
"                        switchover (default 3)\n"
"  --expect-dir DIR      also DIR/N.config and the RAM the destination\n"
"                        ends with: DIR/ram (K USED_LENGTH NAME per block)\n"
"                        and DIR/ram-K.bin\n"
"       " PROG " --mapped-ram -o OUT.mig [options]\n"
"                      a QEMU >= 9.0 mapped-ram file (file: migration,\n"
"                      capability mapped-ram): pages at fixed offsets,\n"
"                      holes for zero pages, bitmaps written last; later\n"
"                      passes leave stale slots whose bit is clear, as\n"
"                      multifd + mapped-ram does.  --ram-size,\n"
"                      --ram-passes, --seed and --expect-dir (DIR/ram and\n"
"                      DIR/ram-K.bin, as above) apply\n"
"       " PROG " --qemu BASE.mig --postcopy [--preempt FILE] -o OUT.mig\n"
"                      BASE (a precopy QEMU main stream) as a postcopy\n"
"                      migration: OPEN_RETURN_PATH, PING, POSTCOPY_ADVISE,\n"
"                      BASE's block list, precopy pages, a DISCARD per\n"
"                      block, PACKAGED{LISTEN, BASE's device sections,\n"
"                      PING, RUN}, the postcopy pages (every discarded page\n"
"                      that had been sent, and more), EOF, no JSON trailer.\n"
"                      No VFIO devices (QEMU refuses postcopy with VFIO).\n"
"                      --seed applies, and:\n"
"  --preempt FILE        also a postcopy-preempt channel: a third of the\n"
"                        postcopy pages go there, then EOS\n"
"  --expect-dir DIR      the RAM the destination ends with: DIR/ram\n"
"                        (K USED_LENGTH NAME per block) and DIR/ram-K.bin\n"
"       " PROG " --qemu-ram SIZE -o OUT.mig | --stdout\n"
"                      a QEMU main stream of RAM alone: block pc.ram of\n"
"                      SIZE bytes (a multiple of 4096), every page sent\n"
"                      once, pseudo-random bytes with every 8th page a\n"
"                      zero page, in PART sections of 64 MiB (for timing\n"
"                      migstream-extract --ram; scripts/bench-tools.sh).\n"
"                      --seed applies, and:\n"
"  --expect-dir DIR      the RAM the destination ends with: DIR/ram\n"
"                        (K USED_LENGTH NAME per block) and DIR/ram-K.bin\n"
"  -h, --help            this help\n"
"  -V, --version         the version\n", out);
}
/* clang-format on */

static void usage(FILE *out)
{
    usage_migstream(out);
    usage_qemu(out);
}

static void workload_defaults(workload *wl)
{
    memset(wl, 0, sizeof *wl);
    wl->devices = 2;
    wl->kind = MS_PAYLOAD_MLX5;
    wl->initial_size = 256 << 10;
    wl->middle_count = 2;
    wl->middle_size = 64 << 10;
    wl->final_size = 1 << 20;
    wl->chunk_size = 64 << 10;
    wl->packet_size = 128 << 10;
    wl->channels = 4;
    wl->final_transport = -1;
    wl->seed = 1;
    wl->ram_size = 4 << 20;
    wl->ram_passes = 3;
    wl->qemu_version = 1000;
}

/* Numeric options: where each lands in a workload, and its bounds. */
typedef enum { FIELD_U64, FIELD_U32, FIELD_INT } field_type;
typedef struct numeric_option {
    const char *name;
    uint64_t lo, hi;
    size_t offset;
    field_type type;
} numeric_option;

#define NUM(name, lo, hi, field, type)                                         \
    {                                                                          \
        name, lo, hi, offsetof(workload, field), type                          \
    }
static const numeric_option numeric_options[] = {
    NUM("--devices", 0, MAX_DEVICES, devices, FIELD_U32),
    NUM("--initial-size", 0, UINT64_MAX, initial_size, FIELD_U64),
    NUM("--middle", 0, UINT32_MAX, middle_count, FIELD_U64),
    NUM("--middle-size", 0, UINT64_MAX, middle_size, FIELD_U64),
    NUM("--final-size", 0, UINT64_MAX, final_size, FIELD_U64),
    NUM("--chunk-size", 1, MAX_UNIT, chunk_size, FIELD_U64),
    NUM("--packet-size", 1, MAX_UNIT, packet_size, FIELD_U64),
    NUM("--channels", 1, MAX_CHANNELS, channels, FIELD_U32),
    NUM("--compress", 0, 9, compress, FIELD_INT),
    NUM("--seed", 0, UINT64_MAX, seed, FIELD_U64),
    NUM("--multifd", 1, 255, multifd, FIELD_U32),
    NUM("--ram-size", 4096, (uint64_t)1 << 40, ram_size, FIELD_U64),
    NUM("--ram-passes", 1, 1000, ram_passes, FIELD_U64),
    NUM("--qemu-ram", 4096, (uint64_t)1 << 40, qemu_ram, FIELD_U64),
};
#undef NUM

static const numeric_option *find_numeric(const char *name)
{
    for (size_t k = 0; k < sizeof numeric_options / sizeof numeric_options[0];
         k++)
        if (strcmp(name, numeric_options[k].name) == 0)
            return &numeric_options[k];
    return NULL;
}

static int set_numeric(workload *wl, const numeric_option *o, const char *value)
{
    uint64_t v;
    if (tool_parse_size(value, &v) < 0 || v < o->lo || v > o->hi)
        return usage_error("bad value '%s' for %s (%llu..%llu)", value, o->name,
                           (unsigned long long)o->lo,
                           (unsigned long long)o->hi);
    char *field = (char *)wl + o->offset;
    if (o->type == FIELD_U64)
        *(uint64_t *)(void *)field = v;
    else if (o->type == FIELD_U32)
        *(uint32_t *)(void *)field = (uint32_t)v;
    else
        *(int *)(void *)field = (int)v;
    return 0;
}

static int is_text_option(const char *name)
{
    return strcmp(name, "-o") == 0 || strcmp(name, "--kind") == 0 ||
           strcmp(name, "--final-transport") == 0 ||
           strcmp(name, "--qemu") == 0 || strcmp(name, "--expect-dir") == 0 ||
           strcmp(name, "--compress-multifd") == 0 ||
           strcmp(name, "--qemu-version") == 0 || strcmp(name, "--uuid") == 0 ||
           strcmp(name, "--raw") == 0 || strcmp(name, "--preempt") == 0;
}

/* Options only the --multifd mode takes (besides --multifd itself): the
 * option's name as a literal (`name` may be a temporary copy), or NULL. */
static const char *multifd_only(const char *name)
{
    static const char *const names[] = {"--compress-multifd", "--qemu-version",
                                        "--uuid", "--ram-size", "--ram-passes"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(name, names[i]) == 0)
            return names[i];
    return NULL;
}

/* --qemu-version: 9.0 .. 10.x ("9" and "10" are 9.0 and 10.0), as
 * major * 100 + minor; -1 when not one of them. */
static int parse_qemu_version(const char *s)
{
    char *end;
    unsigned long major = strtoul(s, &end, 10), minor = 0;
    if (end == s || (major != 9 && major != 10))
        return -1;
    if (*end == '.') {
        const char *m = end + 1;
        minor = strtoul(m, &end, 10);
        if (end == m || minor > 99)
            return -1;
    }
    return *end ? -1 : (int)(major * 100 + minor);
}

/* Options --multifd refuses: it has no precopy images and its own
 * channel count. */
static int is_not_multifd(const char *name)
{
    static const char *const names[] = {
        "--channels",        "--chunk-size",    "--compress",
        "--final-transport", "--vendor-record", "--example",
        "--initial-size",    "--middle",        "--middle-size",
        "--switchover-ack",  "--stdout"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(name, names[i]) == 0)
            return 1;
    return 0;
}

/* 32 hex digits, dashes anywhere (8-4-4-4-12 or none). */
static int parse_uuid(const char *s, uint8_t out[16])
{
    unsigned n = 0;
    for (; *s; s++) {
        if (*s == '-')
            continue;
        int v = *s >= '0' && *s <= '9'   ? *s - '0'
                : *s >= 'a' && *s <= 'f' ? *s - 'a' + 10
                : *s >= 'A' && *s <= 'F' ? *s - 'A' + 10
                                         : -1;
        if (v < 0 || n >= 32)
            return -1;
        if (n % 2 == 0)
            out[n / 2] = (uint8_t)(v << 4);
        else
            out[n / 2] |= (uint8_t)v;
        n++;
    }
    return n == 32 ? 0 : -1;
}

/* Options that only shape migstream v1 output; --qemu refuses them. */
static int is_v1_only(const char *name)
{
    static const char *const names[] = {"--channels",      "--chunk-size",
                                        "--compress",      "--final-transport",
                                        "--vendor-record", "--example"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(name, names[i]) == 0)
            return 1;
    return 0;
}

/* -o, --kind, --final-transport, --qemu, --expect-dir... (is_text_option). */
static int set_text(workload *wl, const char *name, const char *value)
{
    if (strcmp(name, "-o") == 0) {
        wl->out_dir = value;
    } else if (strcmp(name, "--qemu") == 0) {
        wl->qemu_base = value;
    } else if (strcmp(name, "--expect-dir") == 0) {
        wl->expect_dir = value;
    } else if (strcmp(name, "--raw") == 0) {
        wl->raw_file = value;
    } else if (strcmp(name, "--preempt") == 0) {
        wl->preempt_file = value;
    } else if (strcmp(name, "--compress-multifd") == 0) {
        if (strcmp(value, "none") == 0)
            wl->multifd_comp = 0;
        else if (strcmp(value, "zlib") == 0)
            wl->multifd_comp = MULTIFD_COMP_ZLIB;
        else if (strcmp(value, "zstd") == 0)
            wl->multifd_comp = MULTIFD_COMP_ZSTD;
        else
            return usage_error("unknown multifd compression '%s' (none, "
                               "zlib, zstd)",
                               value);
    } else if (strcmp(name, "--qemu-version") == 0) {
        int v = parse_qemu_version(value);
        if (v < 0)
            return usage_error("--qemu-version '%s': 9.0, 9.1, 9.2 or 10.x "
                               "(the channel layouts written)",
                               value);
        wl->qemu_version = (uint32_t)v;
    } else if (strcmp(name, "--uuid") == 0) {
        if (parse_uuid(value, wl->uuid) < 0)
            return usage_error("bad UUID '%s' (32 hex digits)", value);
        wl->has_uuid = 1;
    } else if (strcmp(name, "--kind") == 0) {
        wl->kind = ms_payload_kind_from_name(value);
        wl->kind_given = 1;
        if (wl->kind < 0)
            return usage_error("unknown payload kind '%s'", value);
    } else {
        if (strcmp(value, "chunks") == 0)
            wl->final_transport = MS_TRANSPORT_CHUNKS;
        else if (strcmp(value, "packets") == 0)
            wl->final_transport = MS_TRANSPORT_PACKETS;
        else
            return usage_error("unknown transport '%s'", value);
    }
    return 0;
}

/* An option that takes a value (NULL: the command line ended). */
static int set_option(workload *wl, const char *name, const char *value)
{
    const numeric_option *o = find_numeric(name);
    if (!o && !is_text_option(name))
        return usage_error("unknown option '%s'", name);
    if (!value)
        return usage_error("option '%s' needs a value", name);
    if (strcmp(name, "--packet-size") == 0)
        wl->packet_size_set = 1;
    if (strcmp(name, "--devices") == 0)
        wl->devices_set = 1;
    if (o &&
        (strcmp(name, "--ram-size") == 0 || strcmp(name, "--ram-passes") == 0))
        wl->ram_option = o->name;
    if (!wl->multifd_only)
        wl->multifd_only = multifd_only(name);
    if (!wl->not_multifd && is_not_multifd(name))
        wl->not_multifd = o ? o->name : "--final-transport";
    if (!wl->v1_only && is_v1_only(name))
        wl->v1_only = o ? o->name : "--final-transport";
    return o ? set_numeric(wl, o, value) : set_text(wl, name, value);
}

/* --multifd: the options it takes and its defaults. */
static int check_multifd_args(workload *wl)
{
    if (wl->not_multifd)
        return usage_error("%s does not apply to --multifd", wl->not_multifd);
    if (!wl->out_dir)
        return usage_error("--multifd needs -o DIR");
    if (wl->qemu_base && wl->ram_option)
        return usage_error("%s does not apply with --qemu BASE (its RAM "
                           "comes from BASE)",
                           wl->ram_option);
    if (wl->ram_size % 4096)
        return usage_error("--ram-size must be a multiple of 4096");
    /* device state over multifd: QEMU >= 10.0, compression none */
    if (wl->qemu_version < 1000) {
        if (wl->devices_set && wl->devices)
            return usage_error("device-state packets need --qemu-version "
                               "10.0 or later (give --devices 0)");
        wl->devices = 0;
    }
    if (wl->multifd_comp) {
        if (wl->devices_set && wl->devices)
            return usage_error("device-state packets need "
                               "--compress-multifd none (give --devices 0)");
        wl->devices = 0;
    }
    return 0;
}

/* The default mode (and --example). */
static int check_migstream_args(workload *wl)
{
    if (wl->switchover_ack || wl->expect_dir)
        return usage_error(wl->switchover_ack
                               ? "--switchover-ack needs --qemu BASE.mig"
                               : "--expect-dir needs --qemu BASE.mig, "
                                 "--multifd N or --raw FILE");
    if (wl->example)
        return 0;
    if (!wl->out_dir == !wl->to_stdout)
        return usage_error("give exactly one of -o DIR and --stdout");
    if (wl->to_stdout && wl->channels != 1)
        return usage_error("--stdout needs --channels 1");
    if (wl->final_transport < 0)
        wl->final_transport =
            wl->channels > 1 ? MS_TRANSPORT_PACKETS : MS_TRANSPORT_CHUNKS;
    return 0;
}

/* --mapped-ram: -o OUT.mig; --ram-size, --ram-passes, --seed and
 * --expect-dir apply. */
static int check_mapped_ram_args(workload *wl)
{
    const char *bad = wl->multifd        ? "--multifd"
                      : wl->qemu_base    ? "--qemu"
                      : wl->raw_file     ? "--raw"
                      : wl->to_stdout    ? "--stdout (the file is written "
                                           "at fixed offsets)"
                      : wl->not_multifd  ? wl->not_multifd
                      : wl->has_uuid     ? "--uuid"
                      : wl->multifd_comp ? "--compress-multifd"
                      : wl->devices_set  ? "--devices"
                                         : NULL;
    if (bad)
        return usage_error("%s does not apply to --mapped-ram", bad);
    if (!wl->out_dir)
        return usage_error("--mapped-ram needs -o OUT.mig");
    if (wl->ram_size % 4096)
        return usage_error("--ram-size must be a multiple of 4096");
    return 0;
}

/* --qemu-ram: -o OUT.mig or --stdout; --seed and --expect-dir apply. */
static int check_qemu_ram_args(workload *wl)
{
    const char *bad = wl->multifd          ? "--multifd"
                      : wl->qemu_base      ? "--qemu"
                      : wl->raw_file       ? "--raw"
                      : wl->mapped_ram     ? "--mapped-ram"
                      : wl->postcopy       ? "--postcopy"
                      : wl->preempt_file   ? "--preempt"
                      : wl->v1_only        ? wl->v1_only
                      : wl->multifd_only   ? wl->multifd_only
                      : wl->switchover_ack ? "--switchover-ack"
                      : wl->devices_set    ? "--devices"
                                           : NULL;
    if (bad)
        return usage_error("%s does not apply to --qemu-ram", bad);
    if (!wl->out_dir == !wl->to_stdout)
        return usage_error("give exactly one of -o OUT.mig and --stdout");
    if (wl->qemu_ram % 4096)
        return usage_error("--qemu-ram must be a multiple of 4096");
    return 0;
}

/* Returns 0 to go on, 1 when done (help, version), -1 on a usage error. */

/* Options without a value: which mode or output they choose, and the
 * first option given that a mode refuses. */
static void set_flag(workload *wl, const char *name)
{
    int not_multifd = 1, v1_only = 0;
    if (strcmp(name, "--stdout") == 0) {
        wl->to_stdout = 1;
    } else if (strcmp(name, "--vendor-record") == 0) {
        wl->vendor_record = 1;
        v1_only = 1;
    } else if (strcmp(name, "--example") == 0) {
        wl->example = 1;
        v1_only = 1;
    } else if (strcmp(name, "--switchover-ack") == 0) {
        wl->switchover_ack = 1;
    } else {
        not_multifd = 0;
        if (strcmp(name, "--mapped-ram") == 0)
            wl->mapped_ram = 1;
        else
            wl->postcopy = 1;
    }
    /* name points into long_options: it outlives the parse */
    if (not_multifd && !wl->not_multifd)
        wl->not_multifd = name;
    if (v1_only && !wl->v1_only)
        wl->v1_only = name;
}

/* What getopt_long is told; an option's name is "--" + its long name. */
static const char *const flag_names[] = {"--stdout",   "--vendor-record",
                                         "--example",  "--mapped-ram",
                                         "--postcopy", "--switchover-ack"};
static const char *const value_names[] = {"--kind",
                                          "--final-transport",
                                          "--qemu",
                                          "--expect-dir",
                                          "--compress-multifd",
                                          "--qemu-version",
                                          "--uuid",
                                          "--raw",
                                          "--preempt",
                                          "--devices",
                                          "--initial-size",
                                          "--middle",
                                          "--middle-size",
                                          "--final-size",
                                          "--chunk-size",
                                          "--packet-size",
                                          "--channels",
                                          "--compress",
                                          "--seed",
                                          "--multifd",
                                          "--ram-size",
                                          "--ram-passes",
                                          "--qemu-ram"};
#define N_FLAGS (sizeof flag_names / sizeof flag_names[0])
#define N_VALUES (sizeof value_names / sizeof value_names[0])
enum { OPT_FLAG = 0x100, OPT_VALUE = 0x200 };

static void long_options(struct option *o)
{
    size_t n = 0;
    for (size_t i = 0; i < N_FLAGS; i++)
        o[n++] = (struct option){flag_names[i] + 2, no_argument, NULL,
                                 OPT_FLAG + (int)i};
    for (size_t i = 0; i < N_VALUES; i++)
        o[n++] = (struct option){value_names[i] + 2, required_argument, NULL,
                                 OPT_VALUE + (int)i};
    o[n++] = (struct option){"help", no_argument, NULL, 'h'};
    o[n++] = (struct option){"version", no_argument, NULL, 'V'};
    o[n] = (struct option){0, 0, 0, 0};
}

/* The option getopt_long could not take, as the user wrote it (without
 * "=value"). */
static int bad_option(char **argv, int c)
{
    const char *arg = argv[optind - 1];
    if (optopt && optopt < OPT_FLAG && optopt != 'o')
        return usage_error("unknown option '-%c'", optopt);
    size_t len = strncmp(arg, "--", 2) == 0 ? strcspn(arg, "=") : strlen(arg);
    if (c == ':')
        return usage_error("option '%.*s' needs a value", (int)len, arg);
    return usage_error("unknown option '%.*s'", (int)len, arg);
}

/* Check the combination given and settle the defaults that depend on it. */
static int check_args(workload *wl)
{
    if (wl->qemu_ram)
        return check_qemu_ram_args(wl);
    if (wl->raw_file) {
        const char *bad = wl->multifd          ? "--multifd"
                          : wl->qemu_base      ? "--qemu"
                          : wl->out_dir        ? "-o"
                          : wl->to_stdout      ? "--stdout"
                          : wl->v1_only        ? wl->v1_only
                          : wl->multifd_only   ? wl->multifd_only
                          : wl->switchover_ack ? "--switchover-ack"
                                               : NULL;
        if (bad)
            return usage_error("%s does not apply to --raw", bad);
        if (wl->devices_set && wl->devices != 1)
            return usage_error("--raw writes one device's bytes (--devices "
                               "1)");
        return 0;
    }
    if (wl->mapped_ram)
        return check_mapped_ram_args(wl);
    if ((wl->postcopy || wl->preempt_file) &&
        (!wl->qemu_base || wl->multifd || !wl->out_dir || wl->to_stdout ||
         !wl->postcopy || wl->switchover_ack))
        return usage_error("--postcopy needs --qemu BASE.mig -o OUT.mig "
                           "(no --multifd, --stdout, --switchover-ack); "
                           "--preempt needs --postcopy");
    if (wl->multifd)
        return check_multifd_args(wl);
    if (wl->multifd_only)
        return usage_error("%s needs --multifd N", wl->multifd_only);
    if (wl->qemu_base) {
        if (wl->v1_only)
            return usage_error("%s does not apply to --qemu", wl->v1_only);
        if (!wl->out_dir == !wl->to_stdout)
            return usage_error("give exactly one of -o OUT.mig and --stdout");
        return 0;
    }
    return check_migstream_args(wl);
}

/* Returns 0 to go on, 1 when done (help, version), -1 on a usage error. */
static int parse_args(int argc, char **argv, workload *wl)
{
    struct option longs[N_FLAGS + N_VALUES + 3];
    long_options(longs);
    workload_defaults(wl);
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "+:o:hV", longs, NULL)) != -1) {
        if (c == 'h') {
            usage(stdout);
            return 1;
        }
        if (c == 'V') {
            printf(PROG " " MIGSTREAM_VERSION_STRING "\n");
            return 1;
        }
        if (c >= OPT_VALUE &&
            set_option(wl, value_names[c - OPT_VALUE], optarg) < 0)
            return -1;
        if (c == 'o' && set_option(wl, "-o", optarg) < 0)
            return -1;
        if (c >= OPT_FLAG && c < OPT_VALUE)
            set_flag(wl, flag_names[c - OPT_FLAG]);
        if (c == '?' || c == ':')
            return bad_option(argv, c);
    }
    if (optind > 1 && strcmp(argv[optind - 1], "--") == 0)
        return usage_error("unknown option '--'");
    if (optind < argc)
        return usage_error("unexpected argument '%s'", argv[optind]);
    return check_args(wl);
}

int main(int argc, char **argv)
{
    workload wl;
    if (argc > 1 && strcmp(argv[1], "--return-path") == 0)
        return return_path_mode(argc, argv);
    int parsed = parse_args(argc, argv, &wl);
    if (parsed != 0)
        return parsed > 0 ? TOOL_OK : TOOL_USAGE;
    if (wl.example)
        return print_example();
    if (wl.qemu_ram)
        return qemu_ram_mode(&wl);
    if (wl.mapped_ram)
        return mapped_ram_mode(&wl);
    if (wl.multifd)
        return multifd_mode(&wl);
    if (wl.qemu_base && wl.postcopy)
        return postcopy_mode(&wl);
    if (wl.qemu_base)
        return qemu_mode(&wl);
    if (wl.raw_file)
        return raw_mode(&wl);
    return migstream_mode(&wl);
}
