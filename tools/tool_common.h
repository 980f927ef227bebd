/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* What the command-line tools share: reading the files of one migration
 * through readers and a set, error lines, JSON output, option values. */
#ifndef MS_TOOL_COMMON_H
#define MS_TOOL_COMMON_H

#include <stdint.h>
#include <stdio.h>

#include "migstream.h"

/* Exit codes shared by every tool. */
enum { TOOL_OK = 0, TOOL_INVALID = 1, TOOL_USAGE = 2 };

/* Called for every event: origin->channel indexes the file list;
 * origin->derived is 1 for events the set derived (reassembled packet
 * data, assembled images); origin->device names the device of a nested
 * driver payload event (tool_run_payloads). */
typedef void (*tool_event_fn)(void *ctx, const ms_event *ev,
                              const ms_event_origin *origin);
/* Called for every problem found; file is (size_t)-1 for the migration
 * as a whole. */
typedef void (*tool_problem_fn)(void *ctx, size_t file,
                                const ms_error_info *e);

/* Read every file (one channel each; "-" is standard input) as a channel
 * of one ms_migration.  Reading goes on after a problem in one file, and
 * after a file that cannot be opened (said on stderr; the migration then
 * lacks that channel), so every file gets checked.  Returns TOOL_OK,
 * TOOL_INVALID when a problem was reported, or TOOL_USAGE after an I/O
 * error (printed); a file that could not be opened does not change it, so
 * the tool still reports what it read: its exit status then comes from
 * tool_exit_status. */
int tool_run(const char *prog, char *const *files, size_t nfiles,
             ms_options *opt, tool_event_fn on_event,
             tool_problem_fn on_problem, void *ctx);
/* The exit status for the tool's final `rc`: TOOL_USAGE (the worst) when
 * tool_run could not open a file, else rc. */
int tool_exit_status(int rc);
/* 1 when the last tool_run could not open file `file` (index in its
 * list). */
int tool_unreadable(size_t file);

/* Let tool_run decode channel files (all but a QEMU main channel) on one
 * thread each when they are mapped; callbacks are then serialised by a
 * lock but may see channels' events interleaved.  Off by default. */
void tool_run_parallel(int on);

/* Let tool_run decode VFIO device data inside the carriers (QEMU VFIO
 * sections, multifd device state, migstream device images) with driver
 * payload readers (MS_MIGRATION_NESTED_PAYLOADS): their events come with
 * origin->device set.  Off by default. */
void tool_run_payloads(int on);

/* While tool_run reads, show progress on stderr when it is a terminal: one
 * line (bytes read of all, rate, time left) rewritten in place, taken away
 * before a problem is reported and at the end.  On by default; --quiet
 * (tool_parse_options) turns it off, and so does a tool whose own output
 * goes to the same terminal as it reads.  MIGSTREAM_PROGRESS_INTERVAL_MS
 * in the environment: milliseconds between updates (default 250). */
void tool_run_progress(int on);

/* "FILE:OFFSET: error-name: detail" (+ a hint naming the option that
 * raises a limit) on `out`. */
void tool_print_problem(FILE *out, const char *file, const ms_error_info *e);

/* JSON helpers: a string with escapes, and 16 bytes as 32 hex digits. */
void tool_json_string(FILE *out, const char *s, size_t len);
void tool_hex(char *dst, const uint8_t *src, size_t n); /* dst: 2n+1 */

/* Parse a byte count with optional K/M/G (1024-based) suffix. */
int tool_parse_size(const char *s, uint64_t *out);

/* Reader options every reading tool takes: --format NAME and the limits
 * (--max-record-payload=N, --max-buffered-bytes=N, ...).  getopt_long
 * returns TOOL_OPT_READER for each; pass it to tool_reader_option. */
struct option;
#define TOOL_OPT_READER 0x7100
/* The tool's own long options followed by the reader options, written to
 * `out` (TOOL_LONG_OPTIONS_MAX entries; no allocation, nothing to free). */
#define TOOL_LONG_OPTIONS_MAX 64
void tool_long_options(const struct option *own, struct option *out);
/* Apply one; returns 0, or -1 after printing what is wrong. */
int tool_reader_option(const char *prog, ms_options *opt, const char *name,
                       const char *value);
/* The reader options, one line each, for --help. */
void tool_reader_help(FILE *out);


/* ---- the command line every reading tool shares ---------------------------
 * dump, verify and extract ran the same getopt_long loop around their own
 * cases; the cases they share (reader options, -h/--help, -V/--version, an
 * unknown option) live here once. */

/* tool_parse_options and a tool's own-option callback: carry on. */
#define TOOL_GO_ON (-1)
/* --quiet, which every reading tool takes: no progress line
 * (tool_run_progress(0)); the tool's own_option then gets TOOL_OPT_QUIET
 * too, for what else it keeps quiet about. */
#define TOOL_OPT_QUIET 0x7101
/* The --help line of --quiet for a tool that adds nothing to it. */
#define TOOL_QUIET_HELP                                                        \
    "  --quiet          no progress line on stderr (shown on a terminal)\n"
/* One of the tool's own options: `c` is what getopt_long returned (optarg
 * holds its value).  Returns TOOL_GO_ON, or TOOL_USAGE after printing what
 * is wrong with the value. */
typedef int (*tool_option_fn)(void *ctx, int c);
/* Parse argv: `own` (the tool's long options; --help, --version and
 * --quiet are added) and `shorts` (getopt's short options, "hV" among
 * them) go to own_option, the reader options into `opt`; -h prints
 * usage(stdout), -V the version, an unknown option usage(stderr).  With
 * `files`, at least one FILE must follow (else usage(stderr)): *files and
 * *nfiles get them.  Returns TOOL_GO_ON with optind at the first file, or
 * the exit status. */
int tool_parse_options(const char *prog, int argc, char **argv,
                       const char *shorts, const struct option *own,
                       ms_options *opt, tool_option_fn own_option,
                       void (*usage)(FILE *), void *ctx, char *const **files,
                       size_t *nfiles);

/* Archives (migstream 2.1, tools/archive_input.h) among *files: each is
 * replaced by itself and its embedded files "ARCHIVE[NAME]", which
 * tool_run then reads.  tool_parse_options does it for the tools that let
 * it find their files; a tool that finds them itself calls this.  0, or -1
 * after printing what went wrong. */
int tool_expand_inputs(const char *prog, char *const **files, size_t *nfiles);

#endif
