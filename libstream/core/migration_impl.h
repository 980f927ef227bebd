/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* Inside ms_migration (migration.c): the nested payload router (nested.c)
 * that hands each VFIO device's bytes, from whichever carrier they come,
 * to a driver payload reader of their own. */
#ifndef MS_MIGRATION_IMPL_H
#define MS_MIGRATION_IMPL_H

#include "migstream.h"

typedef struct ms_nested ms_nested;

/* Where the router's output goes (the migration's delivery, under its
 * lock). */
typedef struct ms_nested_sink {
    void (*event)(void *ctx, const ms_event *ev, const ms_event_origin *o);
    void (*problem)(void *ctx, const ms_error_info *e);
    void *ctx;
} ms_nested_sink;

/* `opt`: the migration's options (limits, allocator).  NULL on no memory. */
ms_nested *ms_nested_create(const ms_options *opt, const ms_nested_sink *sink);
void ms_nested_free(ms_nested *n);
/* Offer every event of the migration: reader events of slot `slot`
 * (derived 0) and the set's (derived 1, slot = the event's channel). */
void ms_nested_feed(ms_nested *n, uint32_t slot, const ms_event *ev,
                    int derived);
/* Input is over: a payload cut inside a record is a problem. */
void ms_nested_finish(ms_nested *n);

#endif
