/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* Problem lines held back and printed sorted (tool_held.h). */
#include "tool_held.h"

#include <stdarg.h>
#include <stdlib.h>

#include "tool_common.h"

struct tool_held_line {
    size_t file;     /* TOOL_HELD_MIGRATION sorts as file 0 */
    uint64_t offset; /* the offset it names */
    uint64_t arrival;
    char *text; /* whole line(s) */
};

void tool_held_init(tool_held *h, FILE *out)
{
    *h = (tool_held){.out = out};
}

static int held_order(const void *a, const void *b)
{
    const tool_held_line *x = a, *y = b;
    size_t fx = x->file == TOOL_HELD_MIGRATION ? 0 : x->file;
    size_t fy = y->file == TOOL_HELD_MIGRATION ? 0 : y->file;
    if (fx != fy)
        return fx < fy ? -1 : 1;
    if (x->offset != y->offset)
        return x->offset < y->offset ? -1 : 1;
    return x->arrival < y->arrival ? -1 : x->arrival > y->arrival;
}

void tool_held_flush(tool_held *h)
{
    if (h->count == 0)
        return; /* lines may be NULL: not for qsort */
    qsort(h->lines, h->count, sizeof *h->lines, held_order);
    for (size_t i = 0; i < h->count; i++) {
        fputs(h->lines[i].text, h->out);
        free(h->lines[i].text);
    }
    h->count = 0;
    fflush(h->out);
}

void tool_held_free(tool_held *h)
{
    tool_held_flush(h);
    free(h->lines);
    h->lines = NULL;
    h->cap = 0;
}

void tool_held_text(tool_held *h, size_t file, uint64_t offset, char *text)
{
    if (h->count == h->cap) {
        size_t cap = h->cap ? 2 * h->cap : 64;
        tool_held_line *grown = cap <= TOOL_HELD_MAX
                                    ? realloc(h->lines, cap * sizeof *grown)
                                    : NULL;
        if (!grown) /* at the bound (or out of memory): a sorted batch */
            tool_held_flush(h);
        else {
            h->lines = grown;
            h->cap = cap;
        }
    }
    if (h->count < h->cap) {
        h->lines[h->count++] =
            (tool_held_line){file, offset, ++h->arrivals, text};
        return;
    }
    fputs(text, h->out);
    free(text);
}

/* A memory stream for one line; NULL (no memory): print straight out. */
static FILE *line_stream(char **text, size_t *len)
{
    *text = NULL;
    return open_memstream(text, len);
}

/* The line written to `m` (from line_stream), held; `m` closed.  `text`
 * is read after fclose: open_memstream sets it final only then. */
static void hold_stream(tool_held *h, size_t file, uint64_t offset, FILE *m,
                        char **text)
{
    if (fclose(m) != 0 || !*text) {
        free(*text);
        return;
    }
    tool_held_text(h, file, offset, *text);
}

void tool_held_printf(tool_held *h, size_t file, uint64_t offset,
                      const char *fmt, ...)
{
    char *text;
    size_t len;
    FILE *m = line_stream(&text, &len);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(m ? m : h->out, fmt, ap);
    va_end(ap);
    if (m)
        hold_stream(h, file, offset, m, &text);
}

void tool_held_problem(tool_held *h, size_t file, const char *name,
                       const ms_error_info *e)
{
    char *text;
    size_t len;
    FILE *m = line_stream(&text, &len);
    tool_print_problem(m ? m : h->out, name, e);
    if (m)
        hold_stream(h, file, e->offset, m, &text);
}
