/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* ms_nest: where each decoded VMState value sits in the nested objects
 * QEMU's scripts/analyze-migration.py -d state prints.
 *
 * The reader's MS_EV_FIELD events carry flat paths, which cannot be split
 * back into levels (QEMU names contain dots and brackets: "env.regs",
 * "mac_reg[RDH]").  So ms_nest replays the reader's own walk (vmstate.c)
 * over the same description, taking the decisions the events show:
 *
 *   event fed           walk advanced until            steps pulled
 *   SECTION (FULL)      vms_walk_begin                 none
 *   FIELD path          its FIELD step (same path)     CLOSE* OPEN* FIELD
 *   SUBSECTION name     the subsection is entered      CLOSE* OPEN*
 *   SECTION_FOOTER      VMS_END                        CLOSE*
 *
 * Wherever the walk stops (a field, or a level's subsection point) the
 * levels open in it (frames 1..depth; a serial tells a struct element
 * from the next one at the same depth) are compared with the levels
 * reported open: those the walk left are closed, innermost first, then
 * the walk's new ones are opened.  So an empty struct, which the walk
 * only passes at its subsection point, still opens and closes.  A
 * subsection point where the fed event is not a subsection is where
 * QEMU found none (vms_walk_no_subsection), as the reader decided.
 *
 * Steps are produced one per ms_nest_next call, advancing the walk only
 * as far as needed, so a description with many empty structs between
 * two fields costs no buffering. */
#include <inttypes.h>
#include <stdio.h>

#include "vmstate.h"

enum nest_target { NT_IDLE, NT_FIELD, NT_SUBSECTION, NT_END };

enum nest_phase {
    NP_ADVANCE, /* move the walk on */
    NP_DECIDE,  /* the walk is at a subsection point: enter or leave */
    NP_REPORT,  /* the field was reached: report it once in sync */
    NP_DONE     /* the target was reached: done once in sync */
};

struct ms_nest {
    ms_options opt;
    vms_desc *desc;
    ms_error_info err;
    vms_walk walk;
    int in_section; /* a described FULL section is being walked */
    uint32_t section_id;
    int target; /* what the fed event needs the walk to reach */
    int phase;
    uint64_t ev_offset;           /* the fed event's, for errors */
    char want[VMS_PATH_MAX];      /* FIELD: its path; SUBSECTION: its name */
    uint32_t version;             /* SUBSECTION: its version_id */
    vms_step field;               /* the FIELD step reached */
    uint64_t open[VMS_MAX_DEPTH]; /* serials of levels reported open, 1.. */
    int nopen;
};

static int nest_fail(ms_nest *n, ms_error code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int nest_fail(ms_nest *n, ms_error code, const char *fmt, ...)
{
    char msg[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return ms_fail(&n->err, code, n->ev_offset, "%s", msg);
}

ms_nest *ms_nest_create(const ms_options *opt, const char *json, size_t len,
                        ms_error_info *err)
{
    ms_error_info local;
    ms_options o;
    if (!err)
        err = &local;
    memset(err, 0, sizeof *err);
    if (ms_options_import(&o, opt) < 0) {
        ms_fail(err, MS_ERR_USAGE, 0, "options: wrong struct_size");
        return NULL;
    }
    if (!json) {
        ms_fail(err, MS_ERR_USAGE, 0, "no JSON description");
        return NULL;
    }
    ms_nest *n = ms_calloc(&o.allocator, 1, sizeof *n);
    if (!n) {
        ms_fail(err, MS_ERR_NO_MEMORY, 0, "out of memory");
        return NULL;
    }
    n->opt = o;
    if (vms_desc_parse(&n->opt.allocator, &n->opt, json, len, &n->desc, err) <
        0) {
        ms_free(&o.allocator, n);
        return NULL;
    }
    return n;
}

void ms_nest_free(ms_nest *n)
{
    if (!n)
        return;
    ms_allocator a = n->opt.allocator;
    vms_desc_free(&a, n->desc);
    ms_free(&a, n);
}

const ms_error_info *ms_nest_error(const ms_nest *n)
{
    return &n->err;
}

/* Start walking the FULL section an MS_EV_SECTION announces. */
static void begin_section(ms_nest *n, const ms_section_info *s)
{
    const vms_device *d = vms_desc_find(n->desc, s->idstr, s->instance_id);
    vms_walk_begin(&n->walk, d);
    n->in_section = d != NULL;
    n->section_id = s->section_id;
    n->nopen = 0;
}

int ms_nest_feed(ms_nest *n, const ms_event *ev)
{
    if (n->err.code)
        return -1;
    int target;
    uint32_t section;
    const char *want = "";
    switch (ev->kind) {
    case MS_EV_SECTION:
    case MS_EV_SECTION_FOOTER:
        section = ev->u.section.section_id;
        target = NT_END;
        break;
    case MS_EV_FIELD:
        section = ev->u.field.section_id;
        target = NT_FIELD;
        want = ev->u.field.path ? ev->u.field.path : "";
        break;
    case MS_EV_SUBSECTION:
        section = ev->u.field.section_id;
        target = NT_SUBSECTION;
        want = ev->u.field.path ? ev->u.field.path : "";
        break;
    default:
        return 0;
    }
    n->ev_offset = ev->offset;
    if (n->target != NT_IDLE)
        return nest_fail(n, MS_ERR_USAGE,
                         "an event was fed before the "
                         "previous one's steps were all pulled");
    if (ev->kind == MS_EV_SECTION) {
        if (ev->u.section.type == MS_QSEC_FULL && ev->u.section.idstr)
            begin_section(n, &ev->u.section);
        return 0;
    }
    if (!n->in_section || section != n->section_id) {
        if (ev->kind == MS_EV_SECTION_FOOTER)
            return 0; /* an iterable or undescribed section's */
        return nest_fail(n, MS_ERR_VMSTATE,
                         "\"%.60s\" of section %" PRIu32
                         " is outside a described FULL section",
                         want, section);
    }
    size_t len = strlen(want);
    if (len >= sizeof n->want)
        return nest_fail(n, MS_ERR_VMSTATE,
                         "path \"%.60s...\" is longer "
                         "than %d bytes",
                         want, VMS_PATH_MAX - 1);
    memcpy(n->want, want, len + 1);
    n->version = target == NT_SUBSECTION ? ev->u.field.version : 0;
    n->target = target;
    n->phase = NP_ADVANCE;
    return 0;
}

/* One CLOSE or OPEN that brings the reported levels in line with the
 * walk's, or 0 when they agree. */
static int reconcile(ms_nest *n, ms_nest_step *st)
{
    int depth = n->walk.depth > 0 ? n->walk.depth : 0;
    int same = 0;
    while (same < n->nopen && same < depth &&
           n->open[same + 1] == n->walk.frames[same + 1].serial)
        same++;
    if (n->nopen > same) {
        st->kind = MS_NEST_CLOSE;
        st->depth = (uint32_t)n->nopen--;
        return 1;
    }
    if (depth > n->nopen) {
        const struct vms_frame *f = &n->walk.frames[n->nopen + 1];
        n->open[++n->nopen] = f->serial;
        st->kind = MS_NEST_OPEN;
        st->depth = (uint32_t)n->nopen;
        st->key = f->key;
        st->in_list = f->in_list;
        st->index = f->elem;
        st->subsection = f->sub;
        return 1;
    }
    return 0;
}

/* Move the walk to its next stop and check it against the fed event. */
static int advance(ms_nest *n)
{
    static const char *const what[] = {"", "field", "subsection",
                                       "section footer"};
    vms_step s;
    if (vms_walk_next(&n->walk, &s) < 0)
        return nest_fail(n, MS_ERR_VMSTATE, "%s", n->walk.detail);
    switch (s.kind) {
    case VMS_FIELD:
        if (n->target != NT_FIELD || strcmp(s.path, n->want) != 0)
            return nest_fail(n, MS_ERR_VMSTATE,
                             "%s \"%.60s\" where the "
                             "description has field \"%.60s\"",
                             what[n->target], n->want, s.path);
        n->field = s;
        n->phase = NP_REPORT;
        return 0;
    case VMS_SUBSECTION_OR_END:
        n->phase = NP_DECIDE;
        return 0;
    case VMS_END:
        if (n->target != NT_END)
            return nest_fail(n, MS_ERR_VMSTATE,
                             "%s \"%.60s\" after the "
                             "description's last field",
                             what[n->target], n->want);
        n->phase = NP_DONE;
        return 0;
    }
    return nest_fail(n, MS_ERR_USAGE, "internal: walk step %d", (int)s.kind);
}

/* At a subsection point: the fed subsection starts here (or at an
 * enclosing level, which vms_walk_subsection finds), or there is none. */
static int decide(ms_nest *n)
{
    if (n->target == NT_SUBSECTION) {
        if (vms_walk_subsection(&n->walk, n->want, n->version) < 0)
            return nest_fail(n, MS_ERR_VMSTATE, "%s", n->walk.detail);
        n->phase = NP_DONE;
        return 0;
    }
    vms_walk_no_subsection(&n->walk);
    n->phase = NP_ADVANCE;
    return 0;
}

int ms_nest_next(ms_nest *n, ms_nest_step *st)
{
    memset(st, 0, sizeof *st);
    st->key = "";
    for (;;) {
        if (n->err.code)
            return -1;
        if (n->target == NT_IDLE)
            return 0;
        if (reconcile(n, st))
            return 1;
        switch (n->phase) {
        case NP_REPORT:
            st->kind = MS_NEST_FIELD;
            st->depth = (uint32_t)n->nopen;
            st->key = n->field.key;
            st->in_list = n->field.in_list;
            st->index = n->field.index;
            n->target = NT_IDLE;
            return 1;
        case NP_DONE:
            if (n->target == NT_END)
                n->in_section = 0;
            n->target = NT_IDLE;
            return 0;
        case NP_DECIDE:
            decide(n);
            break;
        default:
            advance(n);
            break;
        }
    }
}
