/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* migstream-dump --state: a QEMU main stream's device state in the shape
 * QEMU's scripts/analyze-migration.py -d state prints, so the two can be
 * compared with diff.
 *
 *   events (main stream only)      document
 *   SECTION START/FULL      ->  "idstr (section_id)": {...}, stream order
 *   RAM_BLOCK (ram START)   ->  "ram (N)": {"section sizes": {block: size}}
 *   FIELD / SUBSECTION      ->  ms_nest steps: objects, lists, values
 *   UNDECODED               ->  "(not decoded)": why (the script fails
 *                               there: no description, iterable device)
 *
 * The document is built in memory and printed at the end: the script
 * puts a name used twice in one level in a list at the FIRST one's place,
 * so a level is not final before it ends.  Values are ms_field_format's
 * text; "bool" fields are JSON true/false as the script's are.  Output is
 * Python's json.dumps(indent=4) (ensure_ascii, ", " / ": ") plus the
 * newline print adds, or separators "," ":" on one line (--json). */
#include "dump_state.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tool_common.h"

/* Where a trailer is looked for: tool_common gives readers the trailer
 * found in the last 64 MiB of a mapped file; the same one is used here. */
#define STATE_VMDESC_SCAN ((size_t)64 << 20)
#define STATE_HEAD 4096 /* bytes read to detect the format */
#define STATE_DEPTH 64  /* objects open in one section (ms_nest: 16) */
#define NOT_DECODED "(not decoded)"

typedef enum jv_kind { JV_OBJECT, JV_LIST, JV_STRING, JV_LITERAL } jv_kind;

/* A JSON value of the document. */
typedef struct jv {
    jv_kind kind;
    char *text;        /* STRING, LITERAL */
    char **keys;       /* OBJECT: keys[i] names items[i] */
    struct jv **items; /* OBJECT values, LIST elements */
    size_t n, cap;
} jv;

struct dump_state {
    const char *prog;
    char *const *files;
    size_t nfiles;
    ms_nest **nests; /* per file: from its JSON trailer, or NULL */
    int have_main, warned_other;
    size_t main_file;  /* the file the document shows */
    jv *doc;           /* the top-level object */
    uint32_t *sec_ids; /* doc->items[i] shows section sec_ids[i] */
    size_t sec_cap;
    jv *sizes;              /* the ram section being read: its sizes */
    jv *stack[STATE_DEPTH]; /* the FULL section being walked; [0]: body */
    int depth;
    int flat; /* nesting failed: later fields keyed by path */
    uint64_t problems;
};

/* ---- memory: the tool gives up when it runs out -------------------------- */

static const char *g_prog = "migstream-dump";

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) {
        fprintf(stderr, "%s: out of memory\n", g_prog);
        exit(TOOL_USAGE);
    }
    return q;
}

static char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(xrealloc(NULL, n), s, n);
}

/* ---- the document tree -----------------------------------------------------
 */

static jv *jv_new(jv_kind kind, const char *text)
{
    jv *v = xrealloc(NULL, sizeof *v);
    memset(v, 0, sizeof *v);
    v->kind = kind;
    if (text)
        v->text = xstrdup(text);
    return v;
}

static void jv_free(jv *v)
{
    if (!v)
        return;
    for (size_t i = 0; i < v->n; i++) {
        if (v->keys)
            free(v->keys[i]);
        jv_free(v->items[i]);
    }
    free(v->keys);
    free(v->items);
    free(v->text);
    free(v);
}

static void jv_grow(jv *v)
{
    if (v->n < v->cap)
        return;
    v->cap = v->cap ? 2 * v->cap : 8;
    v->items = xrealloc(v->items, v->cap * sizeof *v->items);
    if (v->kind == JV_OBJECT)
        v->keys = xrealloc(v->keys, v->cap * sizeof *v->keys);
}

static void list_add(jv *list, jv *val)
{
    jv_grow(list);
    list->items[list->n++] = val;
}

static void obj_add(jv *obj, const char *key, jv *val)
{
    jv_grow(obj);
    obj->keys[obj->n] = xstrdup(key);
    obj->items[obj->n++] = val;
}

/* The index of `key`, or -1.  From the end: the key wanted is nearly
 * always the one added last. */
static long obj_find(const jv *obj, const char *key)
{
    for (size_t i = obj->n; i-- > 0;)
        if (strcmp(obj->keys[i], key) == 0)
            return (long)i;
    return -1;
}

/* As a Python dict assignment: a key keeps its place, its value changes. */
static void obj_set(jv *obj, const char *key, jv *val)
{
    long i = obj_find(obj, key);
    if (i < 0) {
        obj_add(obj, key, val);
        return;
    }
    jv_free(obj->items[i]);
    obj->items[i] = val;
}

/* ---- sections --------------------------------------------------------------
 */

static long section_slot(const dump_state *s, uint32_t id)
{
    for (size_t i = s->doc->n; i-- > 0;)
        if (s->sec_ids[i] == id)
            return (long)i;
    return -1;
}

static jv *section_value(const dump_state *s, uint32_t id)
{
    long i = section_slot(s, id);
    return i < 0 ? NULL : s->doc->items[i];
}

/* What the script makes of a new section: RamSection for ("ram", 0), ""
 * for the HTAB and s390 storage-attribute sections, else an object. */
static jv *section_new_value(const ms_section_info *sec)
{
    if (sec->instance_id == 0 && strcmp(sec->idstr, "ram") == 0) {
        jv *v = jv_new(JV_OBJECT, NULL);
        obj_add(v, "section sizes", jv_new(JV_OBJECT, NULL));
        return v;
    }
    if (sec->instance_id == 0 &&
        (strcmp(sec->idstr, "spapr/htab") == 0 ||
         strcmp(sec->idstr, "s390-storage_attributes") == 0))
        return jv_new(JV_STRING, "");
    return jv_new(JV_OBJECT, NULL);
}

/* START and FULL add "idstr (id)" in stream order (a section id seen
 * again keeps its place, as in the script's dict); every section header
 * says which section RAM_BLOCK events belong to. */
static void section_begin(dump_state *s, const ms_section_info *sec)
{
    const char *idstr = sec->idstr ? sec->idstr : "";
    if (sec->type == MS_QSEC_START || sec->type == MS_QSEC_FULL) {
        char key[512];
        snprintf(key, sizeof key, "%s (%" PRIu32 ")", idstr, sec->section_id);
        jv *val = section_new_value(sec);
        long i = section_slot(s, sec->section_id);
        if (i >= 0) {
            jv_free(s->doc->items[i]);
            free(s->doc->keys[i]);
            s->doc->keys[i] = xstrdup(key);
            s->doc->items[i] = val;
        } else {
            if (s->doc->n == s->sec_cap) {
                s->sec_cap = s->sec_cap ? 2 * s->sec_cap : 64;
                s->sec_ids =
                    xrealloc(s->sec_ids, s->sec_cap * sizeof *s->sec_ids);
            }
            s->sec_ids[s->doc->n] = sec->section_id;
            obj_add(s->doc, key, val);
        }
    }
    jv *v = section_value(s, sec->section_id);
    s->sizes = NULL;
    if (v && v->kind == JV_OBJECT && v->n && strcmp(idstr, "ram") == 0 &&
        strcmp(v->keys[0], "section sizes") == 0)
        s->sizes = v->items[0];
    s->depth = 0;
    s->stack[0] =
        sec->type == MS_QSEC_FULL && v && v->kind == JV_OBJECT ? v : NULL;
}

static void ram_block(dump_state *s, const ms_ram_info *ram)
{
    if (!s->sizes || !ram->block)
        return;
    char size[32];
    snprintf(size, sizeof size, "0x%016" PRIx64, ram->used_length);
    obj_set(s->sizes, ram->block, jv_new(JV_STRING, size));
}

static void undecoded(dump_state *s, const ms_section_info *sec)
{
    jv *v = section_value(s, sec->section_id);
    if (v && v->kind == JV_OBJECT && obj_find(v, NOT_DECODED) < 0)
        obj_add(v, NOT_DECODED,
                jv_new(JV_STRING, sec->detail ? sec->detail : ""));
}

/* ---- fields
 * ------------------------------------------------------------------ */

static jv *field_value(const ms_field_info *f)
{
    char buf[256];
    if (!f->data && f->size) { /* the reader reports huge fields unkept */
        snprintf(buf, sizeof buf, "(%zu bytes, not kept by the reader)",
                 f->size);
        return jv_new(JV_STRING, buf);
    }
    size_t n = ms_field_format(f, buf, sizeof buf);
    char *text = buf;
    if (n >= sizeof buf) {
        text = xrealloc(NULL, n + 1);
        ms_field_format(f, text, n + 1);
    }
    int literal = f->type && strcmp(f->type, "bool") == 0 && f->data && f->size;
    jv *v = jv_new(literal ? JV_LITERAL : JV_STRING, text);
    if (text != buf)
        free(text);
    return v;
}

/* Put `val` where a step says: under its key, or appended to the list
 * that key holds (made by the list's first element). */
static void place(jv *obj, const ms_nest_step *st, jv *val)
{
    if (!st->in_list) {
        if (st->subsection)
            obj_set(obj, st->key, val); /* the script's dict assignment */
        else
            obj_add(obj, st->key, val); /* a name used once per level */
        return;
    }
    jv *list = NULL;
    if (st->index > 0) {
        long i = obj_find(obj, st->key);
        if (i >= 0 && obj->items[i]->kind == JV_LIST)
            list = obj->items[i];
    }
    if (!list) {
        list = jv_new(JV_LIST, NULL);
        obj_add(obj, st->key, list);
    }
    list_add(list, val);
}

/* Apply one nesting step; -1 when it does not fit the objects open. */
static int apply_step(dump_state *s, const ms_nest_step *st, const ms_event *ev)
{
    jv *cur = s->stack[s->depth];
    if (!cur || st->depth != (uint32_t)s->depth + (st->kind == MS_NEST_OPEN))
        return -1;
    switch (st->kind) {
    case MS_NEST_OPEN: {
        if (s->depth + 1 >= STATE_DEPTH)
            return -1;
        jv *o = jv_new(JV_OBJECT, NULL);
        place(cur, st, o);
        s->stack[++s->depth] = o;
        return 0;
    }
    case MS_NEST_CLOSE:
        if (s->depth == 0)
            return -1;
        s->depth--;
        return 0;
    case MS_NEST_FIELD:
        if (ev->kind != MS_EV_FIELD)
            return -1;
        place(cur, st, field_value(&ev->u.field));
        return 0;
    }
    return -1;
}

static void nest_problem(dump_state *s, size_t file, const ms_error_info *e)
{
    ms_error_info copy = *e;
    snprintf(copy.detail, sizeof copy.detail, "--state nesting: %.160s",
             e->detail);
    tool_print_problem(stderr, s->files[file], &copy);
    s->problems++;
    s->flat = 1;
}

/* FIELD, SUBSECTION, SECTION and SECTION_FOOTER through the file's
 * ms_nest; without one (or after it failed) fields go flat, keyed by
 * their path in their section's object. */
static void nest_event(dump_state *s, size_t file, const ms_event *ev)
{
    ms_nest *n = s->nests[file];
    if (n && !s->flat) {
        ms_nest_step st;
        int rc = ms_nest_feed(n, ev);
        while (rc == 0 && (rc = ms_nest_next(n, &st)) == 1)
            rc = apply_step(s, &st, ev) < 0 ? -2 : 0;
        if (rc == 0)
            return;
        if (rc == -2) {
            ms_error_info e = {.code = MS_ERR_USAGE, .offset = ev->offset};
            snprintf(e.detail, sizeof e.detail,
                     "internal: step %d at depth %u does not fit", st.kind,
                     st.depth);
            nest_problem(s, file, &e);
        } else {
            nest_problem(s, file, ms_nest_error(n));
        }
    }
    if (ev->kind == MS_EV_FIELD) {
        jv *v = section_value(s, ev->u.field.section_id);
        if (v && v->kind == JV_OBJECT)
            obj_add(v, ev->u.field.path ? ev->u.field.path : "",
                    field_value(&ev->u.field));
    }
}

void dump_state_event(dump_state *s, size_t file, const ms_event *ev)
{
    switch (ev->kind) {
    case MS_EV_SECTION:
    case MS_EV_SECTION_FOOTER:
    case MS_EV_FIELD:
    case MS_EV_SUBSECTION:
    case MS_EV_RAM_BLOCK:
    case MS_EV_UNDECODED:
        break;
    default:
        return;
    }
    /* One document, like the script's: the first QEMU main stream. */
    if (!s->have_main) {
        if (ev->kind != MS_EV_SECTION)
            return;
        s->have_main = 1;
        s->main_file = file;
    }
    if (file != s->main_file) {
        if (!s->warned_other && ev->kind == MS_EV_SECTION)
            fprintf(stderr,
                    "%s: %s: --state shows one QEMU main stream "
                    "(%s); this one is left out\n",
                    s->prog, s->files[file], s->files[s->main_file]);
        s->warned_other |= ev->kind == MS_EV_SECTION;
        return;
    }
    switch (ev->kind) {
    case MS_EV_SECTION:
        section_begin(s, &ev->u.section);
        nest_event(s, file, ev);
        break;
    case MS_EV_RAM_BLOCK:
        ram_block(s, &ev->u.ram);
        break;
    case MS_EV_UNDECODED:
        undecoded(s, &ev->u.section);
        break;
    default:
        nest_event(s, file, ev);
        break;
    }
}

/* ---- JSON trailers ---------------------------------------------------------
 */

/* The ms_nest for a regular file holding a QEMU main stream with a JSON
 * trailer, or NULL (the reader reports a missing or broken trailer). */
static ms_nest *load_nest(const char *path, const ms_options *opt)
{
    struct stat sb;
    if (strcmp(path, "-") == 0 || stat(path, &sb) != 0 ||
        !S_ISREG(sb.st_mode) || sb.st_size <= 0)
        return NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    uint8_t head[STATE_HEAD];
    size_t need, got = fread(head, 1, sizeof head, f);
    ms_format fmt = ms_detect(head, got, &need);
    ms_nest *n = NULL;
    if (fmt == MS_FORMAT_QEMU_MAIN || fmt == MS_FORMAT_LIBVIRT_SAVE) {
        uint64_t size = (uint64_t)sb.st_size;
        size_t tail =
            size > STATE_VMDESC_SCAN ? STATE_VMDESC_SCAN : (size_t)size;
        uint8_t *buf = xrealloc(NULL, tail);
        size_t off, len;
        if (fseeko(f, (off_t)(size - tail), SEEK_SET) == 0 &&
            fread(buf, 1, tail, f) == tail &&
            ms_qemu_find_vmdesc(buf, tail, tail, &off, &len))
            n = ms_nest_create(opt, (const char *)buf + off, len, NULL);
        free(buf);
    }
    fclose(f);
    return n;
}

dump_state *dump_state_new(const char *prog, char *const *files, size_t nfiles,
                           const ms_options *opt)
{
    g_prog = prog;
    dump_state *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->prog = prog;
    s->files = files;
    s->nfiles = nfiles;
    s->nests = calloc(nfiles ? nfiles : 1, sizeof *s->nests);
    if (!s->nests) {
        free(s);
        return NULL;
    }
    for (size_t i = 0; i < nfiles; i++)
        s->nests[i] = load_nest(files[i], opt);
    s->doc = jv_new(JV_OBJECT, NULL);
    return s;
}

void dump_state_free(dump_state *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->nfiles; i++)
        ms_nest_free(s->nests[i]);
    free(s->nests);
    jv_free(s->doc);
    free(s->sec_ids);
    free(s);
}

int dump_state_use_vmdesc(dump_state *s, const char *json, size_t len,
                          const ms_options *opt)
{
    ms_error_info err;
    for (size_t i = 0; i < s->nfiles; i++) {
        if (s->nests[i])
            continue;
        if (!(s->nests[i] = ms_nest_create(opt, json, len, &err))) {
            fprintf(stderr, "%s: --state: the JSON description: %s\n", s->prog,
                    err.detail);
            return -1;
        }
    }
    return 0;
}

uint64_t dump_state_problems(const dump_state *s)
{
    return s->problems;
}

/* ---- printing as Python's json module does ---------------------------------
 */

/* One code point from UTF-8, or 0 bytes when the sequence is invalid. */
static size_t utf8_next(const unsigned char *p, uint32_t *cp)
{
    static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
    size_t len = p[0] >= 0xf0 && p[0] < 0xf5   ? 4
                 : p[0] >= 0xe0 && p[0] < 0xf0 ? 3
                 : p[0] >= 0xc2 && p[0] < 0xe0 ? 2
                                               : 0;
    if (!len)
        return 0;
    uint32_t c = p[0] & (0x7f >> len);
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        c = (c << 6) | (p[i] & 0x3f);
    }
    if (c < min[len] || c > 0x10ffff || (c >= 0xd800 && c < 0xe000))
        return 0;
    *cp = c;
    return len;
}

/* ensure_ascii: printable ASCII as is, the usual short escapes, anything
 * else as \uXXXX (UTF-16 pairs above U+FFFF).  A byte that is not UTF-8
 * (the script would have failed to decode it) is shown as U+00XX. */
static void put_string(FILE *o, const char *str)
{
    const unsigned char *p = (const unsigned char *)str;
    fputc('"', o);
    while (*p) {
        uint32_t c = *p;
        size_t len = 1;
        if (c >= 0x80 && (len = utf8_next(p, &c)) == 0) {
            c = *p;
            len = 1;
        }
        p += len;
        const char *esc = c == '"'    ? "\\\""
                          : c == '\\' ? "\\\\"
                          : c == '\n' ? "\\n"
                          : c == '\r' ? "\\r"
                          : c == '\t' ? "\\t"
                          : c == '\b' ? "\\b"
                          : c == '\f' ? "\\f"
                                      : NULL;
        if (esc)
            fputs(esc, o);
        else if (c >= 0x20 && c < 0x7f)
            fputc((int)c, o);
        else if (c > 0xffff)
            fprintf(o, "\\u%04x\\u%04x", 0xd800 + ((c - 0x10000) >> 10),
                    0xdc00 + ((c - 0x10000) & 0x3ff));
        else
            fprintf(o, "\\u%04x", c);
    }
    fputc('"', o);
}

static void put_newline(FILE *o, int level)
{
    fputc('\n', o);
    for (int i = 0; i < level; i++)
        fputs("    ", o);
}

static void put_value(FILE *o, const jv *v, int compact, int level)
{
    if (v->kind == JV_STRING) {
        put_string(o, v->text);
        return;
    }
    if (v->kind == JV_LITERAL) {
        fputs(v->text, o);
        return;
    }
    int obj = v->kind == JV_OBJECT;
    fputc(obj ? '{' : '[', o);
    for (size_t i = 0; i < v->n; i++) {
        if (i)
            fputc(',', o);
        if (!compact)
            put_newline(o, level + 1);
        if (obj) {
            put_string(o, v->keys[i]);
            fputs(compact ? ":" : ": ", o);
        }
        put_value(o, v->items[i], compact, level + 1);
    }
    if (!compact && v->n)
        put_newline(o, level);
    fputc(obj ? '}' : ']', o);
}

void dump_state_print(const dump_state *s, FILE *out, int compact)
{
    put_value(out, s->doc, compact, 0);
    fputc('\n', out);
}
