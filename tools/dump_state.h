/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* migstream-dump --state: a QEMU main stream's device state in the shape
 * QEMU's scripts/analyze-migration.py -d state prints (dump_state.c). */
#ifndef MS_DUMP_STATE_H
#define MS_DUMP_STATE_H
#include <stdio.h>

#include "migstream.h"

typedef struct dump_state dump_state;

/* `files` stay valid while the state lives; their JSON trailers (read
 * from the files again) give the nesting.  NULL when memory is short. */
dump_state *dump_state_new(const char *prog, char *const *files, size_t nfiles,
                           const ms_options *opt);
void dump_state_free(dump_state *s);
/* A JSON description given apart from the streams (a stream without a
 * trailer, e.g. postcopy): it nests every file that has no trailer of its
 * own.  Call before any event; the reader needs it too
 * (ms_reader_set_vmdesc).  Returns 0, or -1 after printing why. */
int dump_state_use_vmdesc(dump_state *s, const char *json, size_t len,
                          const ms_options *opt);
/* Every event tool_run delivers. */
void dump_state_event(dump_state *s, size_t file, const ms_event *ev);
/* Problems found while nesting (the events did not follow the JSON
 * description), each already printed on stderr. */
uint64_t dump_state_problems(const dump_state *s);
/* The whole document: indented like the script (a plain diff works), or
 * on one line when `compact`. */
void dump_state_print(const dump_state *s, FILE *out, int compact);

#endif
