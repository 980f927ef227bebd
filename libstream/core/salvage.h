/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* Salvage helpers every framing's salvage op is built from (salvage.c;
 * spec/salvage.md): the sliding scan for the next unit that passes a
 * framing's test, and the damaged range with its MS_EV_DAMAGE event. */
#ifndef MS_SALVAGE_H
#define MS_SALVAGE_H

#include "kit.h"

/* The largest window a framing's test looks at. */
#define MS_SALVAGE_WINDOW_MAX 32

/* A framing's test of the `window` bytes at w: 1 when a unit starts at
 * w + lead (*seed: what the framing needs to go on, e.g. a chain). */
typedef int (*ms_salvage_match_fn)(const void *ctx, const uint8_t *w,
                                   uint64_t *seed);

/* Slide a `window`-byte window (<= MS_SALVAGE_WINDOW_MAX) over the input
 * one byte at a time, from the next input byte on, until `match` says a
 * unit starts at the window's byte `lead`: then 1, the input positioned at
 * that unit.  MS_NEXT_INPUT (the bytes of windows not yet complete are
 * kept, at most 2 * window), MS_NEXT_ERROR.  Resumable at any split. */
int ms_salvage_slide(ms_reader *r, size_t window, size_t lead,
                     ms_salvage_match_fn match, const void *ctx,
                     uint64_t *seed);

/* A damaged range and what was lost in it. */
typedef struct ms_salvage_range {
    uint64_t from, to;
    ms_damage_info lost; /* the error that started it; a unit lost */
    char detail[sizeof(((ms_error_info *)0)->detail)];
    char idstr[256];
} ms_salvage_range;

/* 1 when the reader's error is damage salvage may go on after (not a
 * limit, memory, usage or seekable-input error). */
int ms_salvage_can(const ms_error_info *e);

/* The range starts at `from`: keep the reader's error as its cause and
 * clear it; `unit` (may be NULL) is what is known lost, `idstr` its
 * device's name. */
void ms_salvage_take_error(ms_reader *r, ms_salvage_range *s, uint64_t from,
                           const ms_damage_info *unit, const char *idstr);

/* The range's MS_EV_DAMAGE event (s->to set). */
void ms_salvage_event(const ms_salvage_range *s, ms_event *ev);

/* Input ended inside the range: the error naming the damaged tail. */
int ms_salvage_finish(ms_reader *r, const ms_salvage_range *s);

#endif
