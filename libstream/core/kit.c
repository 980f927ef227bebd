/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* The stage runner every framing decoder's `next` op is (kit.h). */
#include "kit.h"

int ms_run_stages(ms_reader *r, ms_event *ev, const ms_stage_table *t,
                  const int *stage)
{
    for (;;) {
        /* unsigned: a stage below `first` wraps to a large index */
        size_t i = (size_t)(unsigned)(*stage - t->first);
        if (i >= t->count || !(t->stages[i].emit || t->stages[i].walk))
            return MS_FAIL(r, MS_ERR_USAGE, ms_rd_pos(r),
                           "internal: invalid decoder stage");
        const ms_stage *s = &t->stages[i];
        int rc = s->emit ? s->emit(r, ev) : s->walk(r);
        if (rc == MS_GO_ON)
            continue;
        if (rc == MS_NEXT_ERROR && !r->err.code)
            MS_FAIL(r, MS_ERR_USAGE, ms_rd_pos(r),
                    "internal: stage %s failed without an error code",
                    s->name);
        return r->err.code ? MS_NEXT_ERROR : rc;
    }
}
