/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* Internals shared by the QEMU main-stream decoder's files:
 *   qemu_main.c     framing: header, CONFIGURATION, the
 *                   top-level record switch, EOF, the JSON trailer, ops
 *   qemu_cmd.c      QEMU_VM_COMMAND records (postcopy, PACKAGED, PING...)
 *   qemu_section.c  section headers and footers, VMState walking, the
 *                   footer scan for payloads nothing decodes
 *   qemu_ram.c      the "ram" section (version 4): block list, page records
 *   qemu_vfio.c     VFIO device sections: markers and device data
 *   qemu_dirty_bitmap.c  "dirty-bitmap" sections (block dirty bitmaps)
 * Facts: spec/qemu-main.md. */
#ifndef MS_QEMU_IMPL_H
#define MS_QEMU_IMPL_H

#include <zlib.h>

#include "decompress.h"
#include "kit.h"
#include "qemu_salvage.h"
#include "qemu_wire.h"
#include "vfio_wire.h"
#include "vmstate.h"

enum q_stage {
    QS_HEADER = 0x5145, /* not 0: a zeroed state is caught as invalid */
    QS_TOP,
    QS_CONFIG,
    QS_COMMAND,
    QS_SECTION_HEADER,
    QS_RAM,
    QS_VFIO,
    QS_VFIO_DATA,
    QS_VMSTATE,
    QS_SCAN,
    QS_FOOTER,
    QS_AFTER_EOF,
    QS_VMDESC,
    QS_DONE,
    QS_DIRTY_BITMAP,
    QS_VFIO_CONFIG,
    QS_RESYNC /* salvage: the next plausible record (qemu_salvage.c) */
};

/* Steps inside a stage (st->step) are named by an enum in the file that
 * reads the stage (e.g. RS_* in qemu_ram.c); each stage starts at step 0,
 * which code handing over to a stage whose step names it cannot see
 * sets by this name. */
enum { Q_STEP_FIRST = 0 };

/* Wire constants (QEVM_MAGIC, enum q_type, enum q_cmd, RAM flags):
 * qemu_wire.h; VFIO markers: vfio_wire.h. */

typedef enum q_kind { QK_OTHER, QK_RAM, QK_VFIO, QK_DIRTY_BITMAP } q_kind;

/* dirty-bitmap sections (qemu_dirty_bitmap.c): the names the records
 * refer to persist across records and sections, as in QEMU's loader. */
typedef struct q_dbm_bitmap {
    char node[256], bitmap[256];
    uint32_t granularity;
    int completed;
} q_dbm_bitmap;

typedef struct q_dbm {
    char node[256], bitmap[256]; /* current names; "" before any */
    uint32_t flags, flags_size;
    uint64_t buf_size, buf_done; /* BITS buffer being streamed */
    q_dbm_bitmap *bitmaps;       /* every bitmap STARTed */
    size_t nbitmaps, cap;
    size_t cur; /* 1 + index of the current bitmap; 0: none resolved */
} q_dbm;

typedef struct q_section {
    uint32_t id;
    char idstr[256];
    uint32_t instance_id, version_id;
    q_kind kind;
    /* iterable life cycle: QEMU sends one START, PARTs, then one END */
    int started, ended;
    uint64_t start_off; /* the START section's first byte */
    /* VFIO */
    int init_sent, load_ready, setup_seen;
    uint64_t device_bytes; /* data bytes so far: the next image_offset */
} q_section;

typedef struct q_block {
    char name[256];
    uint64_t used_length;
} q_block;

/* mapped-ram: the block whose header, bitmap and pages are being read
 * (qemu_ram.c; spec/qemu-main.md "Mapped-ram files"). */
typedef struct q_mapped {
    uint32_t block;     /* index in the block list */
    uint32_t version;
    uint64_t hdr_off;   /* file offset of the MappedRamHeader */
    uint64_t page_size, bitmap_offset, bitmap_size, pages_offset;
    uint64_t npages, pages_set;
    uint64_t next_page; /* pages below it are emitted */
    uint8_t *bitmap;    /* bitmap_size bytes, gathered */
    uint64_t bitmap_cap, bitmap_got;
    int ignored;        /* x-ignore-shared: zero offsets */
} q_mapped;

typedef struct q_state {
    int stage, step;
    uint32_t page_size;
    int seen_config, seen_eof, records;
    int cap_ignore_shared, cap_mapped_ram;
    /* POSTCOPY_ADVISE with arguments: the stream was written with the
     * postcopy-ram capability.  advise_page_summary is the OR of every RAM
     * block's page size, advise_target_page the target page size; the
     * block list carries a block's page size only where it differs from
     * the source's host page size (decided in qemu_ram.c). */
    int postcopy_advised;
    uint64_t advise_page_summary, advise_target_page;
    /* postcopy commands (qemu_cmd.c): the destination's PostcopyState
     * (enum q_postcopy), whether OPEN_RETURN_PATH came (PING and
     * RECV_BITMAP need it), and a POSTCOPY_RAM_DISCARD's ranges kept while
     * their MS_EV_RAM_DISCARD events go out */
    int postcopy_state, return_path;
    /* ENABLE_COLO came: at every checkpoint COLO sends the device state
     * again (START is not repeated, but PART/END follow an END) */
    int colo;
    uint8_t *discard_args; /* the command's arguments (<= 65535 bytes) */
    size_t discard_cap;
    uint32_t discard_count, discard_next; /* ranges, the next to emit */
    uint64_t discard_off; /* stream offset of the first range */
    int discard_block;    /* block list index */
    /* the decoder reads a postcopy-preempt channel (qemu_preempt.c): RAM
     * records only, blocks named in it are learnt, EOS ends the stream */
    int preempt;

    /* PACKAGED nesting: where each enclosing package ends */
    uint64_t pkg_end[8], pkg_cmd[8]; /* end, and the PACKAGED command */
    int nest;

    /* the record being read */
    uint64_t rec_off;
    uint8_t type;
    /* What the stage being read keeps between its steps, named by the
     * stage; only the current stage's member is meaningful. */
    union {
        struct { /* QS_CONFIG */
            uint32_t machine_len; /* CFG_MACHINE_LEN: bytes to come */
            uint32_t caps_left;   /* CFG_CAP_*: capability names to come */
        } cfg_rec;
        struct { /* QS_COMMAND: the command header */
            uint32_t cmd, len; /* command number, argument bytes */
        } cmd_rec;
        struct { /* QS_SECTION_HEADER */
            uint32_t id; /* the section id being read */
        } sec_rec;
        struct { /* QS_RAM: the record being read (qemu_ram.c) */
            uint32_t flags;    /* its flag bits (with CONTINUE) */
            uint64_t addr;     /* page offset in its block; MEM_SIZE: the
                                  total of the block list */
            uint32_t data_len; /* XBZRLE / COMPRESS_PAGE bytes to come */
        } ram_rec;
        struct { /* QS_VMSTATE */
            uint64_t field_size;   /* the field being read or skipped */
            uint32_t sub_name_len; /* VST_SUB_*: the subsection's name */
        } vms_rec;
    };
    uint32_t counted_len; /* ms_q_take_counted: the string's length */
    char name[256]; /* a counted string being read */
    char machine[256];
    ms_event pending; /* an event built over several steps */

    /* sections */
    q_section *secs;
    size_t nsecs, seccap;
    ms_u32map secmap;
    q_section *cur;
    ms_qemu_section_type cur_type;
    uint64_t sec_off;

    /* RAM */
    q_block *blocks;
    size_t nblocks, blockcap;
    int cur_block; /* -1: none yet */
    uint64_t mem_total, mem_sum;
    /* multifd sync epoch: QEMU 7.2 syncs its channels at every RAM section
     * end (EOS); newer QEMU marks sync points with MULTIFD_FLUSH instead */
    uint32_t epoch;
    int seen_flush;
    q_mapped mr;
    /* postcopy-ram: which target pages the destination holds, a bitmap per
     * block index (NULL until the block's first page), so that a page
     * placed again after POSTCOPY_LISTEN is refused as QEMU's UFFDIO_COPY
     * refuses it (qemu_ram.c); placed_bytes: their total size */
    uint8_t **placed;
    size_t placed_n;
    uint64_t placed_bytes;
    uint8_t *page_buf; /* inflated COMPRESS_PAGE */
    ms_dec_mem zmem; /* what zs holds: max_decompress_bytes */
    z_stream zs;
    int zs_ready;

    /* VFIO */
    uint64_t vfio_left;
    uint64_t last_marker;
    int vfio_part_data; /* this PART section carried its data chunk */
    /* the PCI config state after DEV_CONFIG_STATE (qemu_vfio.c) */
    uint32_t cfg_space;  /* 256 or 4096 config bytes */
    uint32_t msix_bytes; /* MSI-X table + PBA bytes, 0 without MSI-X */
    int cfg_fields;      /* report them as MS_EV_FIELD (see qemu_vfio.c) */

    /* dirty-bitmap sections */
    q_dbm dbm;

    /* VMState (FULL sections described by the trailer) */
    vms_walk walk;
    const char *vms_level; /* VMSD name of the level being closed */
    size_t field_left;     /* bytes of a large field being skipped */

    /* footer scan */
    uint8_t ring[16];
    uint64_t scanned;
    int scan_vfio; /* the footer must follow an END_OF_STATE marker */
    const char *scan_why; /* to announce as MS_EV_UNDECODED first */
    char why_buf[192];    /* scan_why when it names something */

    /* JSON trailer */
    uint8_t *vmdesc_buf;
    uint64_t vmdesc_len, vmdesc_got, vmdesc_off;

    q_salvage salv; /* ms_options.salvage (qemu_salvage.c) */
} q_state;

#define QST(r) ((q_state *)(r)->framing)
#define ALLOC(r) (&(r)->opt.allocator)

/* One counted string (u8 length + bytes) into st->name; uses step values
 * `at` and `at + 1`.  Returns 1 when read, 0 for more input, -1 error. */
int ms_q_take_counted(ms_reader *r, int at, const char *what);

/* PostcopyState of QEMU's destination (migration/postcopy-ram.h). */
enum q_postcopy {
    QP_NONE = 0,   /* before POSTCOPY_ADVISE */
    QP_ADVISED,    /* after ADVISE */
    QP_DISCARDING, /* after the first POSTCOPY_RAM_DISCARD */
    QP_LISTENING,  /* after POSTCOPY_LISTEN: pages load in postcopy mode */
    QP_RUNNING     /* after POSTCOPY_RUN */
};

/* Free the decoder state (qemu_main.c; qemu_preempt.c shares it). */
void ms_q_free_state(ms_reader *r);

/* At the top-level EOF: every STARTed section must have had its END.
 * Returns 0 or -1 (error recorded). */
int ms_q_check_sections_ended(ms_reader *r);

/* Walk the current section's payload blind until its footer. */
void ms_q_start_scan(q_state *st, int vfio);

/* Stage functions: MS_NEXT_EVENT / MS_NEXT_INPUT / MS_NEXT_ERROR / MS_GO_ON */
int ms_q_read_command(ms_reader *r, ms_event *ev);      /* qemu_cmd.c */
int ms_q_read_section_header(ms_reader *r, ms_event *ev); /* qemu_section.c */
int ms_q_read_footer(ms_reader *r, ms_event *ev);
int ms_q_read_scan(ms_reader *r, ms_event *ev);
int ms_q_read_vmstate(ms_reader *r, ms_event *ev);
int ms_q_read_ram(ms_reader *r, ms_event *ev);          /* qemu_ram.c */
/* A POSTCOPY_RAM_DISCARD range (checked: page aligned, inside the block)
 * drops its pages from the destination (qemu_ram.c). */
void ms_q_ram_discarded(q_state *st, int block, uint64_t start,
                        uint64_t length);
void ms_q_ram_free(ms_reader *r); /* the placed-page bitmaps */
int ms_q_read_vfio(ms_reader *r, ms_event *ev);         /* qemu_vfio.c */
/* A preempt channel names a block its own list lacks (st->name): learn it
 * (qemu_preempt.c).  Returns its index, or -1 with the error recorded. */
int ms_q_preempt_block(ms_reader *r);
int ms_q_read_vfio_data(ms_reader *r, ms_event *ev);
int ms_q_read_vfio_config(ms_reader *r, ms_event *ev);
int ms_q_read_dirty_bitmap(ms_reader *r, ms_event *ev); /* qemu_dirty_bitmap.c */
void ms_q_dirty_bitmap_free(ms_reader *r);

/* Salvage (qemu_salvage.c; spec/salvage.md 5b): the framing's salvage op,
 * the RESYNC stage, and the plausibility of a START/FULL header (idstr,
 * instance and version) that salvage holds a header to before believing
 * it: 1 plausible, 0 not. */
int ms_q_salvage(ms_reader *r, ms_event *ev);
int ms_q_read_resync(ms_reader *r, ms_event *ev);
int ms_q_salvage_header_plausible(const uint8_t *idstr, size_t len,
                                  uint32_t instance, uint32_t version);
/* Salvage, QS_SCAN: at a footer of another id (the ring's last 5 bytes),
 * followed by a plausible section header or EOF: an error (the walked
 * section's header or footer was damaged).  MS_GO_ON: scan on;
 * MS_NEXT_INPUT; MS_NEXT_ERROR. */
int ms_q_salvage_scan_footer(ms_reader *r);

#endif
