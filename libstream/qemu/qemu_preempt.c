/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* QEMU postcopy-preempt channel (capability postcopy-preempt, QEMU >= 7.1).
 *
 *   [RAM page record]* | be64 0x10 (EOS)
 *
 * A second connection that carries, once postcopy runs, the pages the
 * destination faulted on, so they overtake the background stream of the
 * main channel.  It has no magic, no header, no sections and no footers:
 * only the "ram" section's page records (ZERO or PAGE; be64 offset|flags,
 * the counted block name unless CONTINUE -- relative to the previous record
 * on this channel --, then the fill byte or the page), decoded by the one
 * RAM record reader in qemu_ram.c, and one EOS that the source writes when
 * the migration completes (postcopy_preempt_shutdown_file).
 *
 *   HEADER (a synthetic MS_EV_STREAM_HEADER) -> RAM records -> DONE (EOS)
 *
 * The channel names blocks but does not list them: blocks are learnt as
 * they come (their length unknown, so page events carry used_length 0),
 * and a set checks each page against the main stream's block list.  The
 * page size comes from ms_options.qemu_page_size (the main stream's).
 * Facts: spec/qemu-postcopy.md (section 5). */
#include "qemu_impl.h"

int ms_q_preempt_block(ms_reader *r)
{
    q_state *st = QST(r);
    if (st->nblocks >= r->opt.max_ram_blocks) {
        MS_FAIL_LIMIT(r, MS_LIMIT_MAX_RAM_BLOCKS, st->rec_off + 8,
                      "more than max_ram_blocks (%u) RAM blocks",
                      r->opt.max_ram_blocks);
        return -1;
    }
    if (ms_grow(ALLOC(r), (void **)&st->blocks, sizeof *st->blocks,
                &st->blockcap, st->nblocks + 1) < 0) {
        MS_FAIL(r, MS_ERR_NO_MEMORY, st->rec_off, "block list");
        return -1;
    }
    q_block *b = &st->blocks[st->nblocks];
    memcpy(b->name, st->name, sizeof b->name);
    b->used_length = UINT64_MAX; /* only the main stream knows it */
    return (int)st->nblocks++;
}

/* ---- stages ------------------------------------------------------------ */

/* HEADER: the channel has none; say what it is. */
static int p_header(ms_reader *r, ms_event *ev)
{
    q_state *st = QST(r);
    ev->kind = MS_EV_STREAM_HEADER;
    ev->u.stream.format = MS_FORMAT_QEMU_PREEMPT;
    ev->u.stream.channel_count = 1;
    st->stage = QS_RAM;
    st->step = Q_STEP_FIRST;
    return MS_NEXT_EVENT;
}

/* The diagram at the top of this file, stage by stage (the main stream's
 * other stages are never entered here: the runner rejects them). */
#define AT(stage) [(stage) - QS_HEADER] /* the table starts at QS_HEADER */
static const ms_stage p_stages[] = {
    AT(QS_HEADER) = {"HEADER", .emit = p_header},
    AT(QS_RAM) = {"RAM", .emit = ms_q_read_ram},
    AT(QS_DONE) = {"DONE", .ends_after = "the EOS that ends the "
                                         "preempt channel"},
};
#undef AT
static const ms_stage_table p_table = MS_STAGE_TABLE(QS_HEADER, p_stages);

/* The runner, and what a page event lacks on this channel. */
static int p_next(ms_reader *r, ms_event *ev)
{
    q_state *st = QST(r);
    int rc = ms_run_stages(r, ev, &p_table, &st->stage);
    if (rc == MS_NEXT_EVENT && ev->kind == MS_EV_RAM_PAGE) {
        ev->u.ram.used_length = 0; /* not known on this channel */
        st->records++;
    }
    return rc;
}

static int p_finish(ms_reader *r)
{
    q_state *st = QST(r);
    if (st->stage == QS_DONE)
        return 0;
    if (st->stage == QS_RAM && st->step == Q_STEP_FIRST && r->stash_len == 0)
        return MS_FAIL(r, MS_ERR_MISSING_END, r->offset,
                       "input ends after %d page records without the EOS "
                       "(be64 0x10) that ends a preempt channel",
                       st->records);
    return MS_FAIL(r, MS_ERR_TRUNCATED, r->offset,
                   "input ends inside the RAM record that began at %llu",
                   (unsigned long long)st->rec_off);
}

static int ms_qemu_preempt_init(ms_reader *r)
{
    q_state *st = ms_framing_new(r, sizeof *st);
    if (!st)
        return -1;
    st->stage = QS_HEADER; /* its own runner: the ops name no table */
    st->preempt = 1;
    st->cur_block = -1;
    st->cur_type = MS_QSEC_PART; /* page records, never a block list */
    st->postcopy_state = QP_RUNNING;
    uint32_t ps = r->opt.qemu_page_size;
    st->page_size =
        ps >= 512 && ps <= (1u << 21) && !(ps & (ps - 1)) ? ps : 4096;
    return 0;
}

const ms_framing_ops ms_qemu_preempt_ops = {
    .format = MS_FORMAT_QEMU_PREEMPT,
    .init = ms_qemu_preempt_init,
    .next = p_next,
    .finish = p_finish,
    .destroy = ms_q_free_state,
};
