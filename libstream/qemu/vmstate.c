/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* VMState descriptions from QEMU's JSON trailer, the walk over one device's
 * fields, and ms_field_format.
 *
 * The JSON tree is compiled once into flat arrays (levels and fields), so
 * the walk never touches JSON and does no lookups: a "level" is one VMSD
 * (a device body, a struct, or a subsection) with its fields and the
 * subsections the trailer lists for it.
 *
 * Naming follows QEMU's scripts/analyze-migration.py -d state, so paths
 * can be compared with its output: a member of a struct or subsection is
 * "<parent>.<name>"; a name that occurs more than once at one level (an
 * "array_len" field, or QEMU's per-element "index" entries) becomes a list
 * in the script's output, so each occurrence is "<name>[i]" counted over
 * the level; a name that occurs once stays bare (even "array_len": 1).
 * Names QEMU itself writes with brackets ("config[0]", "mac_reg[RDH]")
 * are kept as they are.  A subsection's fields are "<level>.<subsection
 * name>.<name>", e.g. "e1000/mit_state.mit_irq_level" or
 * "state.drives[0].fdrive/media_rate.media_rate".
 *
 * The same rule, kept structured (vms_step.key/index/in_list for a field,
 * the frames' key/elem/in_list/sub for the levels open), gives the
 * script's nesting; ms_nest (vmstate_nest.c) replays the walk for it.
 *
 * Subsections follow QEMU's vmstate_subsection_load: at a level's end a
 * 0x05 byte starts a subsection of that level only if the name after it
 * is longer than the level's VMSD name and starts with it; otherwise the
 * level ends and the enclosing one goes on (see vms_walk_subsection). */
#include "vmstate.h"

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

#include "json.h"

#define VMS_JSON_DEPTH 64
#define VMS_MAX_STRING 65536
/* A device or subsection whose walk takes more than 8 steps per byte it
 * makes the decoder read, plus 4096, is refused: zero-size fields or huge
 * arrays of empty structs would otherwise let a small stream keep a
 * decoder busy without reading input. */
#define VMS_STEP_SLACK 4096
#define VMS_STEPS_PER_BYTE 8
/* Levels with at most this many subsections accept them in any order (a
 * bit each in the frame's index); longer lists must come in the listed
 * order, which is the order QEMU writes them in. */
#define VMS_SEEN_BITS (sizeof(size_t) * CHAR_BIT)

typedef struct vms_level vms_level;

typedef struct vms_field {
    const char *name;     /* as the trailer spells it */
    const char *type;
    size_t size;          /* bytes per element */
    uint64_t count;       /* elements: "array_len", or 1 */
    uint64_t name_total;  /* elements named `name` at this level */
    uint64_t name_base;   /* of those, how many come before this field */
    const vms_level *sub; /* type "struct": the struct's description */
} vms_field;

struct vms_level {
    const char *vmsd_name; /* NULL: an old-style device (no subsections) */
    int64_t version;       /* -1: not given */
    const vms_field *fields;
    size_t nfields;
    const vms_level *subs; /* the subsections listed for this level */
    size_t nsubs;
};

struct vms_device {
    const char *name;
    uint32_t instance_id;
    vms_level body;
};

struct vms_desc {
    json_doc *doc; /* owns every string the arrays point to */
    uint32_t page_size;
    vms_device *devs; /* trailer order */
    size_t ndevs;
    const vms_device **sorted; /* by (name, instance_id, trailer order) */
    vms_field *fields;
    vms_level *levels;
};

/* ---- compiling the JSON ----------------------------------------------------
 * One function both validates and builds: the first pass only counts (so
 * the field and level arrays are allocated once, at their exact size), the
 * second fills them.  Both passes visit the same nodes in the same order. */

typedef struct builder {
    const ms_allocator *a;
    ms_error_info *err;
    int fill;
    vms_field *fields; /* fill pass: the pools; cursors count in both */
    size_t nfields;
    vms_level *levels;
    size_t nlevels;
    vms_field **names; /* scratch: a level's fields sorted by name */
    size_t names_cap;
} builder;

enum level_kind { LV_DEVICE, LV_STRUCT, LV_SUBSECTION };

static uint64_t sat_add(uint64_t x, uint64_t y)
{
    return x > UINT64_MAX - y ? UINT64_MAX : x + y;
}

static uint64_t sat_mul(uint64_t x, uint64_t y)
{
    return y && x > UINT64_MAX / y ? UINT64_MAX : x * y;
}

static int bad(builder *b, const json_value *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int bad(builder *b, const json_value *at, const char *fmt, ...)
{
    char msg[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return ms_fail(b->err, MS_ERR_VMDESC, json_offset(at), "%s", msg);
}

/* obj[key] as a C string.  Absent: *out = NULL (an error if required).
 * Strings with an embedded NUL are refused: names are used as C strings. */
static int get_str(builder *b, const json_value *obj, const char *key,
                   int required, const char *what, const char **out)
{
    const json_value *v = json_get(obj, key);
    *out = NULL;
    if (!v)
        return required ? bad(b, obj, "%s has no \"%s\"", what, key) : 0;
    size_t len;
    const char *s = json_string(v, &len);
    if (!s)
        return bad(b, v, "%s: \"%s\" is not a string", what, key);
    if (strlen(s) != len)
        return bad(b, v, "%s: \"%s\" contains a NUL character", what, key);
    *out = s;
    return 0;
}

/* obj[key] as an integer in [0, max].  Absent: *present = 0. */
static int get_uint(builder *b, const json_value *obj, const char *key,
                    int required, uint64_t max, const char *what,
                    uint64_t *out, int *present)
{
    const json_value *v = json_get(obj, key);
    int64_t i;
    *present = v != NULL;
    *out = 0;
    if (!v)
        return required ? bad(b, obj, "%s has no \"%s\"", what, key) : 0;
    if (json_int(v, &i) < 0 || i < 0 || (uint64_t)i > max)
        return bad(b, v, "%s: \"%s\" is not an integer in 0..%" PRIu64, what,
                   key, max);
    *out = (uint64_t)i;
    return 0;
}

static int cmp_field_name(const void *x, const void *y)
{
    const vms_field *a = *(const vms_field *const *)x;
    const vms_field *b = *(const vms_field *const *)y;
    int c = strcmp(a->name, b->name);
    if (c)
        return c;
    return a < b ? -1 : a > b; /* the pool is in trailer order */
}

/* name_total/name_base of a level's fields (see the naming rule on top);
 * sorted, so a hostile level with many fields costs O(n log n). */
static int assign_names(builder *b, vms_field *fs, size_t n)
{
    if (n == 0)
        return 0;
    if (ms_grow(b->a, (void **)&b->names, sizeof *b->names, &b->names_cap,
                n) < 0)
        return ms_fail(b->err, MS_ERR_NO_MEMORY, 0, "out of memory");
    for (size_t i = 0; i < n; i++)
        b->names[i] = &fs[i];
    qsort(b->names, n, sizeof *b->names, cmp_field_name);
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        uint64_t total = 0;
        while (j < n && strcmp(b->names[j]->name, b->names[i]->name) == 0)
            total = sat_add(total, b->names[j++]->count);
        uint64_t base = 0;
        for (size_t k = i; k < j; k++) {
            vms_field *f = b->names[k];
            f->name_total = total;
            f->name_base = base;
            base = sat_add(base, f->count);
        }
        i = j;
    }
    return 0;
}

static int build_level(builder *b, const json_value *obj, enum level_kind kind,
                       vms_level *out, uint64_t *steps, uint64_t *bytes);

static int build_field(builder *b, const json_value *fo, vms_field *f,
                       uint64_t *steps, uint64_t *bytes)
{
    int present;
    uint64_t v;
    memset(f, 0, sizeof *f);
    if (!json_is(fo, JSON_OBJECT))
        return bad(b, fo, "a field is not an object");
    if (get_str(b, fo, "name", 1, "a field", &f->name) < 0)
        return -1;
    char what[80];
    snprintf(what, sizeof what, "field \"%.60s\"", f->name);
    if (get_str(b, fo, "type", 1, what, &f->type) < 0 ||
        get_uint(b, fo, "size", 1, SIZE_MAX, what, &v, &present) < 0)
        return -1;
    f->size = (size_t)v;
    if (get_uint(b, fo, "array_len", 0, UINT32_MAX, what, &v, &present) < 0)
        return -1;
    f->count = present ? v : 1;
    uint64_t el_steps = 1, el_bytes = f->size;
    /* Only "struct" is descended into, as analyze-migration.py does;
     * "vstruct", "tmp" and the rest are their "size" bytes. */
    if (strcmp(f->type, "struct") == 0) {
        const json_value *so = json_get(fo, "struct");
        if (!json_is(so, JSON_OBJECT))
            return bad(b, so ? so : fo, "%s: type struct without a \"struct\""
                       " object", what);
        vms_level dummy;
        vms_level *sl = b->fill ? &b->levels[b->nlevels] : &dummy;
        b->nlevels++;
        /* Its cost is what its fields read, not the "size" it claims. */
        el_steps = 0;
        el_bytes = 0;
        if (build_level(b, so, LV_STRUCT, sl, &el_steps, &el_bytes) < 0)
            return -1;
        el_steps = sat_add(el_steps, 1); /* its SUBSECTION_OR_END step */
        f->sub = b->fill ? sl : NULL;
    }
    /* An empty array still costs the walk one look. */
    *steps = sat_add(*steps, f->count ? sat_mul(f->count, el_steps) : 1);
    *bytes = sat_add(*bytes, sat_mul(f->count, el_bytes));
    return 0;
}

static int build_level(builder *b, const json_value *obj, enum level_kind kind,
                       vms_level *out, uint64_t *steps, uint64_t *bytes)
{
    static const char *const kind_name[] = {"a device", "a struct",
                                            "a subsection"};
    const char *what = kind_name[kind];
    uint64_t v;
    int present;
    memset(out, 0, sizeof *out);
    if (!json_is(obj, JSON_OBJECT))
        return bad(b, obj, "%s is not an object", what);
    if (get_str(b, obj, "vmsd_name", kind != LV_DEVICE, what,
                &out->vmsd_name) < 0 ||
        get_uint(b, obj, "version", 0, UINT32_MAX, what, &v, &present) < 0)
        return -1;
    out->version = present ? (int64_t)v : -1;
    const json_value *fl = json_get(obj, "fields");
    if (!json_is(fl, JSON_ARRAY))
        return bad(b, fl ? fl : obj, "%s has no \"fields\" array", what);
    size_t n = json_len(fl);
    if (n > INT_MAX) /* the walk keeps a field index in an int */
        return bad(b, fl, "%s has too many fields", what);
    vms_field *fs = b->fill ? &b->fields[b->nfields] : NULL;
    b->nfields += n;
    for (size_t i = 0; i < n; i++) {
        vms_field tmp;
        if (build_field(b, json_at(fl, i), b->fill ? &fs[i] : &tmp, steps,
                        bytes) < 0)
            return -1;
    }
    out->fields = fs;
    out->nfields = n;
    if (b->fill && assign_names(b, fs, n) < 0)
        return -1;

    const json_value *sl = json_get(obj, "subsections");
    if (sl && !json_is(sl, JSON_ARRAY))
        return bad(b, sl, "%s: \"subsections\" is not an array", what);
    size_t ns = json_len(sl);
    if (ns && kind == LV_DEVICE && !out->vmsd_name)
        return bad(b, sl, "an old-style device (no \"vmsd_name\") has "
                   "subsections");
    vms_level *subs = b->fill ? &b->levels[b->nlevels] : NULL;
    b->nlevels += ns;
    for (size_t i = 0; i < ns; i++) {
        const json_value *so = json_at(sl, i);
        vms_level tmp;
        uint64_t s_steps = 1, s_bytes = 0;
        if (build_level(b, so, LV_SUBSECTION, b->fill ? &subs[i] : &tmp,
                        &s_steps, &s_bytes) < 0)
            return -1;
        if (s_steps > sat_add(sat_mul(s_bytes, VMS_STEPS_PER_BYTE),
                              VMS_STEP_SLACK))
            return bad(b, so, "subsection \"%.60s\": %" PRIu64 " walk steps "
                       "for %" PRIu64 " bytes", b->fill ? subs[i].vmsd_name
                       : tmp.vmsd_name, s_steps, s_bytes);
    }
    out->subs = subs;
    out->nsubs = ns;
    return 0;
}

static int cmp_device(const void *x, const void *y)
{
    const vms_device *a = *(const vms_device *const *)x;
    const vms_device *b = *(const vms_device *const *)y;
    int c = strcmp(a->name, b->name);
    if (c)
        return c;
    if (a->instance_id != b->instance_id)
        return a->instance_id < b->instance_id ? -1 : 1;
    return a < b ? -1 : a > b; /* duplicates: trailer order */
}

/* Both passes over the root; fills *d in the second. */
static int build_desc(builder *b, const json_value *root, vms_desc *d)
{
    uint64_t v;
    int present;
    if (!json_is(root, JSON_OBJECT))
        return bad(b, root, "the trailer is not a JSON object");
    if (get_uint(b, root, "page_size", 0, UINT32_MAX, "the trailer", &v,
                 &present) < 0)
        return -1;
    d->page_size = (uint32_t)v;
    const json_value *dl = json_get(root, "devices");
    if (!json_is(dl, JSON_ARRAY))
        return bad(b, dl ? dl : root, "the trailer has no \"devices\" array");
    size_t n = json_len(dl);
    for (size_t i = 0; i < n; i++) {
        const json_value *o = json_at(dl, i);
        vms_device tmp, *dev = b->fill ? &d->devs[i] : &tmp;
        if (!json_is(o, JSON_OBJECT))
            return bad(b, o, "a device is not an object");
        if (get_str(b, o, "name", 1, "a device", &dev->name) < 0)
            return -1;
        char what[80];
        snprintf(what, sizeof what, "device \"%.60s\"", dev->name);
        if (get_uint(b, o, "instance_id", 1, UINT32_MAX, what, &v,
                     &present) < 0)
            return -1;
        dev->instance_id = (uint32_t)v;
        uint64_t steps = 1, bytes = 0;
        if (build_level(b, o, LV_DEVICE, &dev->body, &steps, &bytes) < 0)
            return -1;
        if (steps > sat_add(sat_mul(bytes, VMS_STEPS_PER_BYTE),
                            VMS_STEP_SLACK))
            return bad(b, o, "%s: %" PRIu64 " walk steps for %" PRIu64
                       " bytes", what, steps, bytes);
    }
    d->ndevs = n;
    return 0;
}

int vms_desc_parse(const ms_allocator *a, const ms_options *opt,
                   const char *json, size_t len, vms_desc **out,
                   ms_error_info *err)
{
    ms_options o;
    *out = NULL;
    if (ms_options_import(&o, opt) < 0)
        return ms_fail(err, MS_ERR_USAGE, 0, "options: wrong struct_size");
    if (len > o.max_vmdesc_bytes)
        return MS_FAIL_LIMIT_E(
            err, MS_LIMIT_MAX_VMDESC_BYTES, 0,
            "JSON trailer of %zu bytes is over max_vmdesc_bytes "
            "(%" PRIu64 ")",
            len, o.max_vmdesc_bytes);
    /* Real trailers spend about 15 bytes per JSON value; 4 leaves room
     * and bounds the tree at a few times the text. */
    json_limits lim = {.max_depth = VMS_JSON_DEPTH,
                       .max_nodes = len / 4 + 64,
                       .max_string = VMS_MAX_STRING};
    json_doc *doc;
    json_error je;
    if (json_parse(a, json, len, &lim, &doc, &je) < 0)
        return ms_fail(err, je.kind == JSON_ERR_MEMORY ? MS_ERR_NO_MEMORY
                                                       : MS_ERR_VMDESC,
                       je.offset, "JSON: %s", je.detail);
    vms_desc *d = ms_calloc(a, 1, sizeof *d);
    if (!d) {
        json_free(a, doc);
        return ms_fail(err, MS_ERR_NO_MEMORY, 0, "out of memory");
    }
    d->doc = doc;
    builder b = {.a = a, .err = err};
    const json_value *root = json_root(doc);
    int rc = build_desc(&b, root, d);
    if (rc == 0) {
        size_t nf = b.nfields, nl = b.nlevels;
        d->devs = ms_calloc(a, d->ndevs, sizeof *d->devs);
        d->sorted = ms_calloc(a, d->ndevs, sizeof *d->sorted);
        d->fields = ms_calloc(a, nf, sizeof *d->fields);
        d->levels = ms_calloc(a, nl, sizeof *d->levels);
        if (!d->devs || !d->sorted || !d->fields || !d->levels)
            rc = ms_fail(err, MS_ERR_NO_MEMORY, 0, "out of memory");
        if (rc == 0) {
            b.fill = 1;
            b.nfields = b.nlevels = 0;
            b.fields = d->fields;
            b.levels = d->levels;
            rc = build_desc(&b, root, d);
        }
    }
    ms_free(a, b.names);
    if (rc < 0) {
        vms_desc_free(a, d);
        return -1;
    }
    for (size_t i = 0; i < d->ndevs; i++)
        d->sorted[i] = &d->devs[i];
    qsort(d->sorted, d->ndevs, sizeof *d->sorted, cmp_device);
    *out = d;
    return 0;
}

void vms_desc_free(const ms_allocator *a, vms_desc *d)
{
    if (!d)
        return;
    json_free(a, d->doc);
    ms_free(a, d->devs);
    ms_free(a, d->sorted);
    ms_free(a, d->fields);
    ms_free(a, d->levels);
    ms_free(a, d);
}

uint32_t vms_desc_page_size(const vms_desc *d) { return d ? d->page_size : 0; }

size_t vms_desc_device_count(const vms_desc *d) { return d ? d->ndevs : 0; }

const vms_device *vms_desc_find(const vms_desc *d, const char *idstr,
                                uint32_t instance_id)
{
    if (!d || !idstr)
        return NULL;
    /* Lower bound: the first of equal entries, which is the first in the
     * trailer (QEMU 7.2 lists two "slirp" devices with instance 0). */
    size_t lo = 0, hi = d->ndevs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const vms_device *m = d->sorted[mid];
        int c = strcmp(m->name, idstr);
        if (c < 0 || (c == 0 && m->instance_id < instance_id))
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < d->ndevs && strcmp(d->sorted[lo]->name, idstr) == 0 &&
        d->sorted[lo]->instance_id == instance_id)
        return d->sorted[lo];
    return NULL;
}

int64_t vms_device_version(const vms_device *dev)
{
    return dev->body.version;
}

/* ---- the walk --------------------------------------------------------------
 * frames[depth] is the level being walked.  While phase < nfields, phase is
 * the field and index the element within it; once phase == nfields the
 * level is at its subsection point and index records the subsections seen
 * (a bit each, or the next allowed position for long lists).  A struct
 * element or a subsection pushes a frame; the end of a level pops it.
 * depth -1: the device is done; WALK_FAILED: a call failed (sticky). */

#define WALK_FAILED (-2)

static int walk_fail(vms_walk *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int walk_fail(vms_walk *w, const char *fmt, ...)
{
    if (w->depth != WALK_FAILED) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(w->detail, sizeof w->detail, fmt, ap);
        va_end(ap);
        w->depth = WALK_FAILED;
    }
    return -1;
}

void vms_walk_begin(vms_walk *w, const vms_device *dev)
{
    w->dev = dev;
    w->depth = dev ? 0 : -1;
    w->path[0] = 0;
    w->detail[0] = 0;
    w->pushes = 0;
    if (dev) {
        memset(&w->frames[0], 0, sizeof w->frames[0]);
        w->frames[0].node = &dev->body;
    }
}

/* Append ".name" (or "name" at the top) after the first `base` bytes of the
 * path, with "[i]" when asked; *len gets the new length. */
static int path_put(vms_walk *w, size_t base, const char *name, int indexed,
                    uint64_t i, size_t *len)
{
    size_t room = VMS_PATH_MAX - base;
    int n = indexed ? snprintf(w->path + base, room, "%s%s[%" PRIu64 "]",
                               base ? "." : "", name, i)
                    : snprintf(w->path + base, room, "%s%s", base ? "." : "",
                               name);
    if (n < 0 || (size_t)n >= room) {
        w->path[base] = 0;
        return walk_fail(w, "path \"%.60s...\" is longer than %d bytes",
                         w->path, VMS_PATH_MAX - 1);
    }
    *len = base + (size_t)n;
    return 0;
}

/* Enter level `lv`: an element of a struct field (`fd`, element `elem`
 * counted over the fields sharing its name) or, with fd NULL, the
 * subsection `lv` itself. */
static int push(vms_walk *w, const vms_level *lv, size_t path_len,
                const vms_field *fd, uint64_t elem)
{
    if (w->depth + 1 >= VMS_MAX_DEPTH)
        return walk_fail(w, "nested deeper than %d levels at %.100s",
                         VMS_MAX_DEPTH, w->path);
    struct vms_frame *f = &w->frames[++w->depth];
    f->node = lv;
    f->index = 0;
    f->path_len = path_len;
    f->phase = 0;
    f->key = fd ? fd->name : lv->vmsd_name;
    f->elem = fd ? elem : 0;
    f->in_list = fd && fd->name_total != 1;
    f->sub = !fd;
    f->serial = ++w->pushes;
    return 0;
}

int vms_walk_next(vms_walk *w, vms_step *step)
{
    memset(step, 0, sizeof *step);
    step->path = "";
    step->type = "";
    if (w->depth == WALK_FAILED)
        return -1;
    for (;;) {
        if (w->depth < 0) {
            step->kind = VMS_END;
            return 0;
        }
        struct vms_frame *f = &w->frames[w->depth];
        const vms_level *lv = f->node;
        if ((size_t)f->phase < lv->nfields) {
            const vms_field *fd = &lv->fields[f->phase];
            if (f->index >= fd->count) {
                f->phase++;
                f->index = 0;
                continue;
            }
            size_t len = 0; /* set by path_put on success */
            uint64_t elem = fd->name_base + f->index;
            if (path_put(w, f->path_len, fd->name, fd->name_total != 1, elem,
                         &len) < 0)
                return -1;
            f->index++;
            if (fd->sub) {
                if (push(w, fd->sub, len, fd, elem) < 0)
                    return -1;
                continue;
            }
            step->kind = VMS_FIELD;
            step->path = w->path;
            step->type = fd->type;
            step->size = fd->size;
            step->key = fd->name;
            step->index = elem;
            step->in_list = fd->name_total != 1;
            return 0;
        }
        if (!lv->vmsd_name) { /* old-style device: QEMU reads no more */
            w->depth--;
            continue;
        }
        w->path[f->path_len] = 0;
        step->kind = VMS_SUBSECTION_OR_END;
        step->path = w->path;
        step->type = lv->vmsd_name;
        return 0;
    }
}

/* The frame waiting at its subsection point, or NULL. */
static struct vms_frame *at_subsection_point(vms_walk *w)
{
    if (w->depth < 0)
        return NULL;
    struct vms_frame *f = &w->frames[w->depth];
    const vms_level *lv = f->node;
    if ((size_t)f->phase < lv->nfields || !lv->vmsd_name)
        return NULL;
    return f;
}

/* QEMU's vmstate_subsection_load takes a subsection for a VMSD only when
 * its name is longer than the VMSD's name and starts with it; otherwise
 * that level ends there without subsections and its parent goes on. */
static int name_belongs(const char *name, const char *vmsd_name)
{
    size_t pl = strlen(vmsd_name);
    return strlen(name) > pl && strncmp(name, vmsd_name, pl) == 0;
}

int vms_walk_subsection(vms_walk *w, const char *name, uint32_t version)
{
    if (w->depth == WALK_FAILED)
        return -1;
    struct vms_frame *f;
    /* The header may belong to an enclosing level: a struct that ends a
     * level is followed directly by that level's subsections.  Leave the
     * levels it does not belong to, as QEMU does, as long as no field
     * comes between (a field would have read these bytes as its data). */
    for (;;) {
        f = at_subsection_point(w);
        if (!f)
            return walk_fail(w, "subsection \"%.60s\" where none can start",
                             name);
        const vms_level *lv = f->node;
        if (name_belongs(name, lv->vmsd_name))
            break;
        w->path[f->path_len] = 0;
        char where[80];
        snprintf(where, sizeof where, "%.30s%s%.40s", lv->vmsd_name,
                 f->path_len ? " at " : "", w->path);
        w->depth--;
        vms_step st;
        if (vms_walk_next(w, &st) < 0)
            return -1;
        if (st.kind == VMS_FIELD)
            return walk_fail(w, "\"%.60s\" is no subsection of %s, so QEMU "
                             "reads its bytes as field %.40s (check the "
                             "name against the step's VMSD name before "
                             "taking it)", name, where, st.path);
        if (st.kind == VMS_END)
            return walk_fail(w, "subsection \"%.60s\" belongs to no level "
                             "of the device", name);
    }
    const vms_level *lv = f->node;
    size_t j = 0;
    while (j < lv->nsubs && strcmp(lv->subs[j].vmsd_name, name) != 0)
        j++;
    w->path[f->path_len] = 0;
    if (j == lv->nsubs)
        return walk_fail(w, "subsection \"%.60s\" of %s%s%.40s is not in the "
                         "JSON trailer", name, lv->vmsd_name,
                         f->path_len ? " at " : "", w->path);
    if (lv->nsubs <= VMS_SEEN_BITS) {
        size_t bit = (size_t)1 << j;
        if (f->index & bit)
            return walk_fail(w, "subsection \"%.60s\" twice", name);
        f->index |= bit;
    } else {
        if (j < f->index)
            return walk_fail(w, "subsection \"%.60s\" twice or out of the "
                             "trailer's order", name);
        f->index = j + 1;
    }
    const vms_level *sub = &lv->subs[j];
    if (sub->version >= 0 && (uint64_t)sub->version != version)
        return walk_fail(w, "subsection \"%.60s\" has version %" PRIu32
                         ", the JSON trailer says %" PRId64, name, version,
                         sub->version);
    size_t len = 0; /* set by path_put on success */
    if (path_put(w, f->path_len, sub->vmsd_name, 0, 0, &len) < 0)
        return -1;
    return push(w, sub, len, NULL, 0);
}

void vms_walk_no_subsection(vms_walk *w)
{
    if (w->depth == WALK_FAILED)
        return;
    if (!at_subsection_point(w)) {
        walk_fail(w, "internal: no subsection point to leave");
        return;
    }
    w->depth--;
}

/* ---- ms_field_format -------------------------------------------------------
 * analyze-migration.py's rendering, by reader class:
 *  - VMSDFieldInt (signed): "0x%0*x" of the unsigned big-endian value,
 *    width 2 * size, and " (%d)" of the signed value when it is negative;
 *  - VMSDFieldUInt: the same without the signed part;
 *  - bool: true / false from the first byte;
 *  - nullptr: "nullptr"; capability: the counted string;
 *  - anything else (buffer, timer, float64, tmp, virtio, "pci config",
 *    unknown names): the bytes as "%02x" joined by single spaces.
 * Note that "int32 le" means "less or equal" (a load-time check) and is
 * stored big-endian like the rest; the script reads it so. */

static const char *const signed_types[] = {
    "int8",     "int16",       "int32",       "int64",       "int32 equal",
    "int32 le", "int64 equal", "uint8 equal", "uint16 equal"};
static const char *const unsigned_types[] = {"uint8", "uint16", "uint32",
                                             "uint64", "uint32 equal"};
#define BIGDEC_MAX_BYTES 256 /* larger negative ints lose their "(-n)" */

typedef struct fmt_out {
    char *p;
    size_t cap, len;
} fmt_out;

static void out_mem(fmt_out *o, const char *s, size_t n)
{
    if (o->cap && o->len < o->cap - 1) {
        size_t k = MS_MIN(n, o->cap - 1 - o->len);
        memcpy(o->p + o->len, s, k);
    }
    o->len += n;
}

static void out_str(fmt_out *o, const char *s) { out_mem(o, s, strlen(s)); }

static int in_list(const char *t, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(t, list[i]) == 0)
            return 1;
    return 0;
}

static void out_hex_bytes(fmt_out *o, const uint8_t *d, size_t n,
                          const char *sep)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        char b[2] = {hex[d[i] >> 4], hex[d[i] & 15]};
        if (i && *sep)
            out_str(o, sep);
        out_mem(o, b, 2);
    }
}

/* Decimal of the big-endian magnitude m[0..n) (n <= BIGDEC_MAX_BYTES). */
static void out_big_decimal(fmt_out *o, const uint8_t *m, size_t n)
{
    uint8_t q[BIGDEC_MAX_BYTES];
    char digits[BIGDEC_MAX_BYTES * 3 + 1]; /* 2^(8n) has < 2.41n digits */
    size_t nd = 0, lead = 0;
    memcpy(q, m, n);
    do {
        unsigned rem = 0;
        for (size_t i = lead; i < n; i++) {
            unsigned cur = (rem << 8) | q[i];
            q[i] = (uint8_t)(cur / 10);
            rem = cur % 10;
        }
        digits[nd++] = (char)('0' + rem);
        while (lead < n && q[lead] == 0)
            lead++;
    } while (lead < n);
    while (nd)
        out_mem(o, &digits[--nd], 1);
}

static void out_int(fmt_out *o, const uint8_t *d, size_t n, int is_signed)
{
    int negative = is_signed && n && (d[0] & 0x80);
    out_str(o, "0x");
    if (n == 0) {
        out_str(o, "0"); /* '0x%00x' % 0 */
        return;
    }
    out_hex_bytes(o, d, n, ""); /* zero-padded to 2 * size digits */
    if (!negative)
        return;
    if (n > BIGDEC_MAX_BYTES)
        return;
    /* Magnitude of the two's complement value: invert and add one. */
    uint8_t m[BIGDEC_MAX_BYTES];
    unsigned carry = 1;
    for (size_t i = n; i-- > 0;) {
        unsigned v = (uint8_t)~d[i] + carry;
        m[i] = (uint8_t)v;
        carry = v >> 8;
    }
    out_str(o, " (-");
    out_big_decimal(o, m, n);
    out_str(o, ")");
}

size_t ms_field_format(const ms_field_info *f, char *out, size_t cap)
{
    fmt_out o = {.p = out, .cap = out ? cap : 0};
    if (f) {
        const uint8_t *d = f->data;
        size_t n = d ? f->size : 0;
        const char *t = f->type ? f->type : "";
        if (in_list(t, signed_types,
                    sizeof signed_types / sizeof signed_types[0]))
            out_int(&o, d, n, 1);
        else if (in_list(t, unsigned_types,
                         sizeof unsigned_types / sizeof unsigned_types[0]))
            out_int(&o, d, n, 0);
        else if (strcmp(t, "bool") == 0 && n)
            out_str(&o, d[0] ? "true" : "false");
        else if (strcmp(t, "nullptr") == 0)
            out_str(&o, "nullptr");
        else if (strcmp(t, "capability") == 0 && n)
            out_mem(&o, (const char *)d + 1, MS_MIN((size_t)d[0], n - 1));
        else
            out_hex_bytes(&o, d, n, " ");
    }
    if (o.cap)
        o.p[MS_MIN(o.len, o.cap - 1)] = 0;
    return o.len;
}
