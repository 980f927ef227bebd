/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* Problem lines held back and printed sorted by file and offset.
 *
 * Channel files decoded on threads report in any order, a problem that
 * follows from another (a knock-on) may be found first, and the migration
 * as a whole reports at the end: the tools hold their problem lines and
 * print them in (file as given, offset, arrival) order.  At most
 * TOOL_HELD_MAX lines are held; beyond that they are printed in sorted
 * batches, so memory stays bounded on a file with millions of problems.
 * Not locked: tool_run serialises the callbacks that call it. */
#ifndef MS_TOOL_HELD_H
#define MS_TOOL_HELD_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "migstream.h"

#define TOOL_HELD_MAX 262144

/* File index of a line about the migration as a whole: sorted with the
 * first file (tool_problem_fn's (size_t)-1). */
#define TOOL_HELD_MIGRATION ((size_t)-1)

typedef struct tool_held_line tool_held_line;

typedef struct tool_held {
    FILE *out;             /* where tool_held_flush prints */
    tool_held_line *lines; /* NULL until the first line */
    size_t count, cap;
    uint64_t arrivals; /* ties in (file, offset) keep arrival order */
} tool_held;

void tool_held_init(tool_held *h, FILE *out);
/* Hold `text` (malloc'd, one or more whole lines; taken over) about
 * `file` at `offset`; printed at once when it cannot be held. */
void tool_held_text(tool_held *h, size_t file, uint64_t offset, char *text);
/* Hold a printf-formatted line. */
void tool_held_printf(tool_held *h, size_t file, uint64_t offset,
                      const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Hold tool_print_problem's line for `e` in file `name`. */
void tool_held_problem(tool_held *h, size_t file, const char *name,
                       const ms_error_info *e);
/* Print every held line, sorted; then none is held. */
void tool_held_flush(tool_held *h);
/* Flush, then free what it holds. */
void tool_held_free(tool_held *h);

#endif
