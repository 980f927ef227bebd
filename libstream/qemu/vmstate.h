/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* VMState descriptions from QEMU's JSON trailer, and a resumable walk over
 * one device's fields, for decoding FULL sections as their bytes stream by.
 *
 * The walk never looks at stream bytes itself: it tells the decoder how
 * many bytes the next field has, and asks it whether a subsection follows
 * (the decoder peeks for the 0x05 byte and reads the subsection header).
 * So the decoder stays resumable at any byte and the walk allocates nothing.
 */
#ifndef MS_VMSTATE_H
#define MS_VMSTATE_H

#include "common.h"

typedef struct vms_desc vms_desc;     /* a parsed trailer */
typedef struct vms_device vms_device; /* one entry of its "devices" */

/* Parse the trailer's JSON.  Bounded by opt->max_vmdesc_bytes (input) and
 * by internal depth/count limits; on failure fills *err (code
 * MS_ERR_VMDESC, offset = byte offset within the JSON text) and returns -1. */
int vms_desc_parse(const ms_allocator *a, const ms_options *opt,
                   const char *json, size_t len, vms_desc **out,
                   ms_error_info *err);
void vms_desc_free(const ms_allocator *a, vms_desc *d);

uint32_t vms_desc_page_size(const vms_desc *d); /* 0 when absent */
size_t vms_desc_device_count(const vms_desc *d);
/* The description of section (idstr, instance_id), or NULL. */
const vms_device *vms_desc_find(const vms_desc *d, const char *idstr,
                                uint32_t instance_id);
/* The version the trailer gives the device (its section's version_id), or
 * -1 when it gives none (old-style devices). */
int64_t vms_device_version(const vms_device *dev);

typedef enum vms_step_kind {
    VMS_FIELD,         /* take step.size bytes: that field's value */
    VMS_SUBSECTION_OR_END, /* peek: 0x05 starts a subsection, else none */
    VMS_END            /* the device's fields and subsections are done */
} vms_step_kind;

typedef struct vms_step {
    vms_step_kind kind;
    const char *path; /* FIELD: "parent_obj.config", "tx.size", "mac[3]";
                         SUBSECTION_OR_END: the level's path ("" device) */
    const char *type; /* FIELD: the JSON type name;
                         SUBSECTION_OR_END: the level's VMSD name (a
                         subsection of it has a longer name starting so) */
    size_t size;      /* FIELD: bytes */
    /* FIELD: where analyze-migration.py puts the value in its level's
     * object: under `key`, as element `index` of a list when in_list
     * (an array, or a name the level uses more than once). */
    const char *key;
    uint64_t index;
    int in_list;
} vms_step;

#define VMS_MAX_DEPTH 16
#define VMS_PATH_MAX 512

/* Fixed-size walk state: no allocation while walking. */
typedef struct vms_walk {
    const vms_device *dev;
    /* private to vmstate.c */
    int depth;
    struct vms_frame {
        const void *node; /* description node being walked */
        size_t index;     /* next field (or array element) */
        size_t path_len;  /* length of `path` at this level */
        int phase;
        /* The object this level is in analyze-migration.py's output (see
         * vms_step.key; `sub`: a subsection), and a number no other level
         * pushed during this walk got, to tell a level from its
         * successor at the same depth (ms_nest, vmstate_nest.c). */
        const char *key;
        uint64_t elem;
        int in_list, sub;
        uint64_t serial;
    } frames[VMS_MAX_DEPTH];
    uint64_t pushes;
    char path[VMS_PATH_MAX];
    char detail[160]; /* why the last call failed */
} vms_walk;

void vms_walk_begin(vms_walk *w, const vms_device *dev);
/* The next step. Returns 0, or -1 with w->detail set (description deeper
 * than VMS_MAX_DEPTH, or a path longer than VMS_PATH_MAX). */
int vms_walk_next(vms_walk *w, vms_step *step);
/* After VMS_SUBSECTION_OR_END: a subsection header was read (its name and
 * version_id).  Returns 0 when the description has a subsection of that
 * name at this level (its fields come next), or -1 with w->detail set. */
int vms_walk_subsection(vms_walk *w, const char *name, uint32_t version);
/* After VMS_SUBSECTION_OR_END: no 0x05 byte follows; this level is done. */
void vms_walk_no_subsection(vms_walk *w);

#endif
