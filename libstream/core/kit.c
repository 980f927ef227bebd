/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* The stage runner every framing decoder's `next` op is (kit.h). */
#include "kit.h"

int ms_run_stages(ms_reader *r, ms_event *ev, const ms_stage_table *t,
                  const int *stage)
{
    for (;;) {
        /* unsigned: a stage below `first` wraps to a large index */
        size_t i = (size_t)(unsigned)(*stage - t->first);
        const ms_stage *s = i < t->count ? &t->stages[i] : NULL;
        int rc;
        if (s && s->emit)
            rc = s->emit(r, ev);
        else if (s && s->walk)
            rc = s->walk(r);
        else if (s && s->ends_after)
            rc = ms_rd_expect_end(r, s->ends_after);
        else
            return MS_FAIL(r, MS_ERR_USAGE, ms_rd_pos(r),
                           "internal: invalid decoder stage");
        if (rc == MS_GO_ON)
            continue;
        if (rc == MS_NEXT_ERROR && !r->err.code)
            MS_FAIL(r, MS_ERR_USAGE, ms_rd_pos(r),
                    "internal: stage %s failed without an error code", s->name);
        return r->err.code ? MS_NEXT_ERROR : rc;
    }
}

void *ms_framing_new(ms_reader *r, size_t size)
{
    char *st = ms_calloc(&r->opt.allocator, 1, size);
    if (!st) {
        MS_FAIL(r, MS_ERR_NO_MEMORY, 0, "decoder state");
        return NULL;
    }
    r->framing = st;
    if (r->ops->stages)
        *(int *)(st + r->ops->stage_at) = r->ops->stages->first;
    return st;
}

void ms_framing_free(ms_reader *r)
{
    ms_free(&r->opt.allocator, r->framing);
    r->framing = NULL;
}
