/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* The decoder kit: what a framing decoder is built from (ARCHITECTURE.md,
 * "How a framing decoder is built").
 *   - input slicing and the stash (input.h): take / peek / skip / untake /
 *     seek, resumable at any byte split;
 *   - the stage runner (kit.c): the decoder names its stages in an enum,
 *     gives one function per stage in a table, and its ops name the
 *     table: the reader runs it with ms_run_stages;
 *   - data views: MS_EV_DATA events that point into the caller's input
 *     (or the stash) instead of copying. */
#ifndef MS_KIT_H
#define MS_KIT_H

#include "input.h"

/* What a stage function returns: MS_NEXT_EVENT (*ev is filled),
 * MS_NEXT_INPUT (the slice is used up), MS_NEXT_ERROR (recorded with
 * MS_FAIL), or MS_GO_ON: the stage changed (st->stage set to the next
 * one) or made progress without an event; the runner calls again. */
#define MS_GO_ON (-2)

/* One stage: its name (as in the decoder's diagram) and what runs it,
 * exactly one of:
 *   emit        a function that may produce an event;
 *   walk        one that never does (it consumes bytes, moves the stage);
 *   ends_after  none: the stream may end here, and any further byte is
 *               trailing data after what this names ("the END record"). */
typedef struct ms_stage {
    const char *name;
    int (*emit)(ms_reader *r, ms_event *ev);
    int (*walk)(ms_reader *r);
    const char *ends_after;
} ms_stage;

/* A decoder's stages: stages[i] runs stage value `first + i` (stage enums
 * start at a non-zero value so that a zeroed state is caught as invalid).
 * Decoders write the entries with a local
 *   #define AT(stage) [(stage) - ST_FIRST]
 * as AT(ST_X) = {"X", .emit = read_x}. */
typedef struct ms_stage_table {
    int first;
    size_t count;
    const ms_stage *stages;
} ms_stage_table;

#define MS_STAGE_TABLE(first_stage, array)                                     \
    {                                                                          \
        (first_stage), sizeof(array) / sizeof((array)[0]), (array)             \
    }

/* Run the stage *stage names until one returns something other than
 * MS_GO_ON; the stage functions move *stage on.  Returns MS_NEXT_EVENT,
 * MS_NEXT_INPUT or MS_NEXT_ERROR (also when a stage recorded an error but
 * returned otherwise). */
int ms_run_stages(ms_reader *r, ms_event *ev, const ms_stage_table *t,
                  const int *stage);

/* Allocate a framing's state of `size` bytes, zeroed, as r->framing (the
 * ops already chosen), its stage set to the first of the ops' table.
 * NULL with the error recorded. */
void *ms_framing_new(ms_reader *r, size_t size);

/* Free r->framing (what ms_framing_new allocated): a framing's `destroy`
 * when its state owns nothing else, else the end of its `destroy`. */
void ms_framing_free(ms_reader *r);

/* The current stage of a framing whose ops name their stage table. */
static inline const int *ms_framing_stage(const ms_reader *r)
{
    return (const int *)((const char *)r->framing + r->ops->stage_at);
}

/* The next bytes of the input, at most `max`, as a data view in *ev (see
 * ms_ev_data in common.h; zero_copy when they are the caller's input, not the
 * stash), consumed.  Returns the number of bytes (0: more input needed) and
 * sets *d to the event's data part. */
static inline size_t ms_rd_view(ms_reader *r, ms_event *ev, uint64_t max,
                                ms_data_info **d)
{
    const uint8_t *p;
    uint64_t at = ms_rd_pos(r);
    size_t n = ms_rd_peek(r, (size_t)MS_MIN(max, SIZE_MAX), &p);
    if (n == 0)
        return 0;
    *d = ms_ev_data(ev, p, n, at, ms_rd_in_input(r, p));
    ms_rd_skip(r, n);
    return n;
}

#endif
