/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* A migstream archive (spec/migstream.md 5.10) given to dump, verify or
 * extract: the archive itself (its own records and checks) plus each
 * embedded capture stream as a channel file of its own, named
 * "ARCHIVE[NAME]" (NAME: the original file name), whose offsets are those
 * of the original file.  tool_parse_options expands the file list;
 * tool_run reads the archive entry with a reader of its own (not a
 * channel of the migration) and the streams from the archive's bytes. */
#ifndef MS_ARCHIVE_INPUT_H
#define MS_ARCHIVE_INPUT_H

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

#include "migstream.h"

typedef struct archive_stream archive_stream;

/* Replace each archive in files[0..n) by itself followed by its capture
 * streams.  *files then points at a list this module owns.  0, or -1
 * after printing an I/O or memory error. */
int archive_input_expand(const char *prog, char *const **files, size_t *n);

/* What `name` (an entry of the expanded list) is: 1 and *stream for an
 * embedded stream; 2 for an archive itself; 0 for an ordinary file. */
int archive_input_lookup(const char *name, const archive_stream **stream);

uint64_t archive_input_size(const archive_stream *s);
ms_format archive_input_format(const archive_stream *s);
/* Its label: which direction of which connection (MS_ARCHIVE_NO_CONNECTION
 * when the file name said none). */
ms_archive_direction archive_input_direction(const archive_stream *s);
uint32_t archive_input_connection(const archive_stream *s);
/* The stream's bytes at `pos`: a view into the mapped archive (*at), at
 * most `max` bytes; 0 at the end. */
size_t archive_input_view(const archive_stream *s, uint64_t pos, size_t max,
                          const uint8_t **at);

/* An embedded QEMU main stream's JSON trailer (at most max_json bytes):
 * 1 and a malloc'd copy, 0 when it has none, -1 when memory is short. */
int archive_input_vmdesc(const archive_stream *s, uint64_t max_json,
                         char **json, size_t *len);

/* Read the archive `name` through a reader of its own: every event to
 * on_event, the first problem (channel = slot) to on_problem. */
typedef void (*archive_event_fn)(void *ctx, const ms_event *ev,
                                 const ms_event_origin *o);
typedef void (*archive_problem_fn)(void *ctx, const ms_error_info *e);
void archive_input_read(const char *name, uint32_t slot, const ms_options *opt,
                        archive_event_fn on_event,
                        archive_problem_fn on_problem, void *ctx);

/* "capture", "manifest", "summary"; "none", "s2d", "d2s" ("unknown"
 * for other values). */
const char *archive_role_name(ms_archive_role r);
const char *archive_direction_name(ms_archive_direction d);

/* migstream-dump: the rest of the line of an ARCHIVE_* event (human
 * text; JSON keys after "length"), nothing for other events. */
void archive_input_human(FILE *o, const ms_event *ev);
void archive_input_json(FILE *o, const ms_event *ev);

#endif
