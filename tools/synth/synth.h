/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* migstream-synth's parts (one file per mode):
 *   main.c         options (getopt_long), --help, the mode switch
 *   common.c       PRNG, device-state look-alike bytes, errors, the RAM
 *                  files --expect-dir writes
 *   migstream.c    migstream v1 sets (the default mode) and --example
 *   payloads.c     VFIO driver payloads (--kind) and --raw
 *   qemu.c         BASE (a real QEMU main stream) read with the library's
 *                  reader; --qemu: VFIO devices inserted into it
 *   multifd.c      --multifd: the channels' packets
 *   multifd_main.c --multifd: the main channel, with or without BASE
 *   mapped_ram.c   --mapped-ram
 *   postcopy.c     --qemu BASE --postcopy [--preempt]
 *   return_path.c  --return-path
 *   ram.c          --qemu-ram: a QEMU main stream of RAM pages
 * QEMU's records are written by the encoder library (encode/encode.h). */
#ifndef MS_SYNTH_H
#define MS_SYNTH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "encode.h"
#include "migstream.h"
#include "tool_common.h"

#define PROG "migstream-synth"

#define MAX_DEVICES 4096  /* the reference reader's max_devices */
#define MAX_CHANNELS 1024 /* the reference reader's max_channels */
/* chunk/packet data: their records stay under a 1 GiB payload */
#define MAX_UNIT (((uint64_t)1 << 30) - 64)
#define CREATED_BASE_NS 1795305600000000000ull /* 2026-11-22T00:00:00Z */
#define QEMU_CHUNK_DEFAULT (1u << 20) /* QEMU reads the data fd 1 MiB a go */
#define VFIO_CONFIG_BYTES 64          /* stand-in PCI config state */
#define VFIO_SECTION_VERSION 1
#define RAM_SECTION_ID 2u /* the synthetic main channels' ram section */
#define SYNTH_PAGE 4096u  /* the page size synthetic RAM is written in */
#define SYNTH_MACHINE "pc-q35-%u.%u" /* the --qemu-version */

typedef struct workload {
    uint32_t devices;
    ms_payload_kind kind;
    int kind_given; /* --kind given: migstream images carry valid payloads */
    int no_precopy; /* --multifd: all device state in the final phase */
    const char *raw_file; /* --raw: the device's data-fd bytes alone */
    uint64_t initial_size, middle_count, middle_size, final_size;
    uint64_t chunk_size, packet_size;
    uint32_t channels;
    int final_transport; /* -1: by channel count */
    int compress;
    uint64_t seed;
    int vendor_record;
    int example;         /* --example: spec/example.md on stdout */
    const char *out_dir; /* --qemu: the output file */
    int to_stdout;
    /* --qemu mode */
    const char *qemu_base;  /* BASE.mig */
    const char *expect_dir; /* where the inserted device bytes also go */
    int switchover_ack;
    int packet_size_set; /* --packet-size given (else 1 MiB chunks) */
    const char *v1_only; /* first option given that --qemu ignores */
    /* --multifd mode */
    uint32_t multifd;      /* multifd channels; 0: not this mode */
    int multifd_comp;      /* 0 none, MULTIFD_COMP_ZLIB, MULTIFD_COMP_ZSTD */
    uint32_t qemu_version; /* --qemu-version: major * 100 + minor */
    int has_uuid;
    uint8_t uuid[16];
    uint64_t ram_size, ram_passes;
    int devices_set;          /* --devices given */
    const char *ram_option;   /* --ram-size or --ram-passes, if given */
    const char *multifd_only; /* first option only --multifd takes */
    const char *not_multifd;  /* first option --multifd refuses */
    int mapped_ram;           /* --mapped-ram: a mapped-ram file */
    /* --qemu BASE --postcopy: BASE rewritten as a postcopy migration */
    int postcopy;
    const char *preempt_file; /* --preempt FILE: its preempt channel */
    uint64_t qemu_ram;        /* --qemu-ram SIZE: 0, not this mode */
} workload;

/* ---- common.c ------------------------------------------------------------ */
uint64_t rng_next(uint64_t *state);
uint64_t rng_below(uint64_t *state, uint64_t n); /* n > 0 */
void rng_bytes(uint64_t *state, uint8_t *out, size_t len);
/* Device state look-alike: random runs, zero runs, repeated patterns. */
void fill_state(uint64_t *rng, uint8_t *buf, size_t len);
/* Packets go to the channels in rounds, each round a fresh shuffle of all
 * `n` channels (order[n]; *left 0 at first). */
uint32_t shuffled_next(uint64_t *rng, uint32_t *order, uint32_t *left,
                       uint32_t n);
uint64_t chunks_for(uint64_t bytes, uint64_t max);
/* *p (an array of *cap elements of `unit` bytes) holds at least `need`:
 * 0, or -1 when memory is short (*p is kept). */
int grow_array(void **p, size_t *cap, size_t need, size_t unit);
/* "PROG: message" and a pointer to --help on stderr; returns -1. */
int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "PROG: PATH: strerror" on stderr; returns TOOL_USAGE. */
int io_error(const char *path, int err);
/* Close a stdio output: 0, or the errno of a failed write or close. */
int close_output(FILE *f);

/* --expect-dir RAM files: DIR/ram (one line per block: K USED_LENGTH
 * NAME) and the sparse DIR/ram-K.bin, opened for pwrite (*fd). */
typedef struct ram_desc {
    const char *name;
    uint64_t len;
} ram_desc;
int expect_ram_list(const char *dir, const ram_desc *blocks, size_t n);
int expect_ram_image(const char *dir, size_t k, uint64_t len, int *fd);
/* The synthetic blocks: guest RAM of `ram` bytes, a BIOS and a ROM whose
 * name has slashes (1/16 and 1/32 of it, 256 KiB and 128 KiB at most). */
void synthetic_blocks(uint64_t ram, ram_desc out[3]);

/* ---- payloads.c: one device's bytes of one phase, made as written -------- */
typedef struct gen_seg {
    size_t off, len; /* fixed bytes: own[off, off + len) */
    uint64_t fill;   /* then this many fill_state bytes */
} gen_seg;

/* Raw bytes, or mlx5 records (STOP_COPY_SIZE first, then one FW_DATA per
 * image), or the other kinds' templates. */
typedef struct dev_gen {
    uint64_t rng;
    int mlx5;
    uint8_t hdr[24]; /* mlx5 header bytes still to give */
    size_t hdr_len, hdr_pos;
    uint64_t payload_left; /* image bytes of the current record */
    int stop_copy_pending;
    uint64_t stop_copy_size;
    uint64_t records_left, record_size;
    uint64_t total; /* all bytes of the phase */
    /* the other kinds (virtio, hisi_acc, qat, xe, pds): a template of
     * segments (fixed bytes from own[], then fill_state bytes), given
     * reps times; image_size is one image's bytes (virtio's snapshots) */
    uint8_t *own;
    gen_seg *segs;
    size_t nsegs, segcap, owncap, ownlen;
    uint64_t reps, seg_pos;
    size_t seg_i;
    uint64_t image_size;
} dev_gen;

/* The next up to `cap` bytes; 0 when the phase is done. */
size_t gen_next(dev_gen *g, uint8_t *out, size_t cap);
/* Device d's generators, gen[4] by ms_phase (gen[0]'s rng also gives the
 * config bytes); -1 when the sizes overflow.  stop_copy_in_middle: with
 * precopy but no initial image, mlx5's STOP_COPY_SIZE goes in front of
 * the first middle image (migstream images) rather than in the initial
 * data (QEMU, where the first PART carries it). */
int gens_init(const workload *wl, uint32_t d, dev_gen *gen,
              int stop_copy_in_middle);
void gens_free(dev_gen *gen);

/* ---- qemu.c: BASE and the devices inserted into QEMU streams ------------- */
/* Where BASE gets the device sections (byte offsets in BASE). */
typedef struct qemu_base {
    const char *path;
    const uint8_t *bytes;
    size_t len;
    uint64_t ram_start_end, ram_end_end, eof_off;
    int have_start, have_end, have_eof;
    uint64_t *part_ends; /* after each RAM PART footer */
    size_t nparts, partcap;
    uint32_t max_section_id;
} qemu_base;

typedef struct qemu_dev {
    char idstr[32];
    uint32_t section_id;
    dev_gen gen[4]; /* by ms_phase; [0] gives the config bytes */
} qemu_dev;

typedef struct qemu_synth {
    const workload *wl;
    qemu_base base;
    qemu_dev *devs;
    enc_out out;          /* the main stream */
    const char *out_name; /* for errors */
    uint8_t *buf;
    size_t chunk_max;
    uint64_t n_init, n_mid; /* DATA_STATE chunks per device */
    int init_only;          /* an INIT_DATA_SENT PART without data */
    int expect_err;
} qemu_synth;

/* Map BASE (b->path); 0 or an exit code (printed). */
int map_base(qemu_base *b);
/* A reader over the mapped BASE, given its JSON trailer; NULL (said) when
 * memory is short. */
ms_reader *base_reader(const qemu_base *b);
/* "BASE:OFFSET: error: detail"; returns TOOL_INVALID. */
int base_problem(const qemu_base *b, uint64_t off, ms_error code,
                 const char *detail);
/* Map BASE and find the insertion points with the library's reader. */
int read_base(qemu_synth *q);
void free_base(qemu_base *b);
/* Device d's name, section id and generators. */
int qemu_dev_init(qemu_synth *q, uint32_t d);
void qemu_devs_free(qemu_synth *q);
/* BASE's bytes from *pos to `to`, copied to the output. */
void qcopy(qemu_synth *q, uint64_t *pos, uint64_t to);
/* A VFIO section of device d: header, (START: SETUP_STATE), END_OF_STATE
 * and the footer; FULL also carries CONFIG_STATE and the config bytes
 * before END_OF_STATE when `config` (--qemu) is set. */
void vfio_section(qemu_synth *q, uint8_t type, uint32_t d, int config);
/* --expect-dir: DIR/devices and empty DIR/N.PHASE files. */
int write_expect_files(qemu_synth *q);
/* Also append the bytes to DIR/N.PHASE (--expect-dir). */
void expect_append(qemu_synth *q, uint32_t d, int phase, const uint8_t *p,
                   size_t n, int truncate);
extern const char *const phase_file[4];

/* ---- the modes ----------------------------------------------------------- */
int migstream_mode(workload *wl); /* migstream.c */
int print_example(void);
int raw_mode(const workload *wl); /* payloads.c */
int qemu_mode(const workload *wl);
int multifd_mode(const workload *wl);
int mapped_ram_mode(const workload *wl);
int postcopy_mode(const workload *wl);
int return_path_mode(int argc, char **argv);
int qemu_ram_mode(const workload *wl); /* ram.c */

#endif
