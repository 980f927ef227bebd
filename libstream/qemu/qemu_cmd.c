/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* QEMU main stream: QEMU_VM_COMMAND records (0x08).
 *
 *   0x08 | be16 cmd | be16 len | len bytes of arguments
 *
 *   CMD_HEADER --(known command, length fits its rule)--> CMD_ARGS
 *   CMD_ARGS   --(arguments checked, postcopy state moved)--> MS_EV_COMMAND
 *       |-- POSTCOPY_RAM_DISCARD --> CMD_DISCARD_RANGES: one MS_EV_RAM_DISCARD
 *       |                            per (be64 start, be64 length) range
 *       |-- PACKAGED: the be32 bytes after the record are a nested stream
 *       +--> TOP
 *
 * Postcopy commands move the destination's PostcopyState the way QEMU's
 * loader (migration/savevm.c) does, and are rejected where it rejects them:
 *
 *   NONE --ADVISE--> ADVISED --DISCARD--> DISCARDING --LISTEN--> LISTENING
 *                       |                   (repeats)     ^          |
 *                       +-------------LISTEN--------------+        RUN
 *                                                                    v
 *                                                                 RUNNING
 *
 * PING and RECV_BITMAP need a return path (OPEN_RETURN_PATH before them).
 * Facts: spec/qemu-postcopy.md (sections 1 and 2), spec/qemu-main.md. */
#include "qemu_impl.h"

/* MIG_CMD_* values (enum q_cmd) and argument sizes: qemu_wire.h. */
#define ARGS_VARIABLE (-1)
#define ADVISE_ARGS QCMD_ADVISE_ARGS
/* version, name length, a name of at least one byte, NUL, one range */
#define DISCARD_MIN_ARGS (1 + 1 + 1 + 1 + 16)
#define DISCARD_VERSION QCMD_DISCARD_VERSION
#define DISCARD_RANGE QCMD_DISCARD_RANGE

static const struct {
    const char *name;
    int args; /* argument bytes, or ARGS_VARIABLE */
} commands[QCMD_COUNT] = {
    [QCMD_INVALID] = {"INVALID", ARGS_VARIABLE},
    [QCMD_OPEN_RETURN_PATH] = {"OPEN_RETURN_PATH", 0},
    [QCMD_PING] = {"PING", 4},
    [QCMD_POSTCOPY_ADVISE] = {"POSTCOPY_ADVISE", ARGS_VARIABLE},
    [QCMD_POSTCOPY_LISTEN] = {"POSTCOPY_LISTEN", 0},
    [QCMD_POSTCOPY_RUN] = {"POSTCOPY_RUN", 0},
    [QCMD_POSTCOPY_RAM_DISCARD] = {"POSTCOPY_RAM_DISCARD", ARGS_VARIABLE},
    [QCMD_PACKAGED] = {"PACKAGED", 4},
    [QCMD_ENABLE_COLO] = {"ENABLE_COLO", 0},
    [QCMD_POSTCOPY_RESUME] = {"POSTCOPY_RESUME", 0},
    [QCMD_RECV_BITMAP] = {"RECV_BITMAP", ARGS_VARIABLE},
    [QCMD_SWITCHOVER_START] = {"SWITCHOVER_START", 0},
};

/* Public (migstream.h): the commands' names live in the table above. */
const char *ms_qemu_command_name(uint32_t cmd)
{
    return cmd < QCMD_COUNT ? commands[cmd].name : "?";
}

/* Steps of this stage (st->step). */
enum cmd_step {
    CMD_HEADER = 0,    /* be16 cmd, be16 len */
    CMD_ARGS,          /* the len argument bytes, checked */
    CMD_DISCARD_RANGES /* POSTCOPY_RAM_DISCARD: its ranges, one event each */
};

static const char *postcopy_state_name(int ps)
{
    static const char *const names[] = {"none", "advised", "discarding",
                                        "listening", "running"};
    return ps >= QP_NONE && ps <= QP_RUNNING ? names[ps] : "?";
}

static int block_index(const q_state *st, const char *name)
{
    for (size_t i = 0; i < st->nblocks; i++)
        if (strcmp(st->blocks[i].name, name) == 0)
            return (int)i;
    return -1;
}

/* ---- per-command argument rules -------------------------------------------
 */

/* A postcopy command in a state QEMU's loader refuses it in. */
static int wrong_state(ms_reader *r, const char *cmd, const char *wants)
{
    q_state *st = QST(r);
    return MS_FAIL(r, MS_ERR_COMMAND, st->rec_off,
                   "%s in postcopy state %s: QEMU takes it only %s", cmd,
                   postcopy_state_name(st->postcopy_state), wants);
}

static int check_advise(ms_reader *r, const uint8_t *a, uint16_t len,
                        ms_command_info *c)
{
    q_state *st = QST(r);
    if (st->postcopy_state != QP_NONE)
        return wrong_state(r, "POSTCOPY_ADVISE",
                           "once, before any other "
                           "postcopy command");
    st->postcopy_state = QP_ADVISED;
    if (len == 0) /* postcopy of something other than RAM */
        return 0;
    uint64_t summary = ms_be64(a), target = ms_be64(a + 8);
    if (target != st->page_size)
        return MS_FAIL(r, MS_ERR_COMMAND, st->rec_off + 5 + 8,
                       "POSTCOPY_ADVISE target page size %llu, the stream's "
                       "is %u",
                       (unsigned long long)target, st->page_size);
    if (summary == 0 || (summary & (target - 1)))
        return MS_FAIL(r, MS_ERR_COMMAND, st->rec_off + 5,
                       "POSTCOPY_ADVISE page-size summary 0x%llx holds no "
                       "page size of at least the target page",
                       (unsigned long long)summary);
    st->postcopy_advised = 1;
    st->advise_page_summary = summary;
    st->advise_target_page = target;
    c->page_size_summary = summary;
    c->target_page_size = target;
    return 0;
}

/* version 0, counted block name, NUL, then whole 16-byte ranges; keeps the
 * ranges for CMD_DISCARD_RANGES. */
static int check_discard(ms_reader *r, const uint8_t *a, uint16_t len,
                         ms_command_info *c)
{
    q_state *st = QST(r);
    uint64_t at = st->rec_off + 5;
    if (st->postcopy_state != QP_ADVISED && st->postcopy_state != QP_DISCARDING)
        return wrong_state(r, "POSTCOPY_RAM_DISCARD",
                           "after POSTCOPY_ADVISE and before "
                           "POSTCOPY_LISTEN");
    if (len < DISCARD_MIN_ARGS)
        return MS_FAIL(r, MS_ERR_COMMAND, st->rec_off,
                       "POSTCOPY_RAM_DISCARD with %u argument bytes, needs "
                       "at least %d (a named block and one range)",
                       len, DISCARD_MIN_ARGS);
    if (a[0] != DISCARD_VERSION)
        return MS_FAIL(r, MS_ERR_COMMAND, at,
                       "POSTCOPY_RAM_DISCARD version %u, must be 0", a[0]);
    uint8_t n = a[1];
    if (n == 0 || 3u + n > len)
        return MS_FAIL(r, MS_ERR_COMMAND, at + 1,
                       "POSTCOPY_RAM_DISCARD block name of %u bytes in %u "
                       "argument bytes",
                       n, len);
    if (a[2 + n] != 0)
        return MS_FAIL(r, MS_ERR_COMMAND, at + 2 + n,
                       "POSTCOPY_RAM_DISCARD: byte 0x%02x after the block "
                       "name, must be 0",
                       a[2 + n]);
    if ((len - 3u - n) % DISCARD_RANGE)
        return MS_FAIL(r, MS_ERR_COMMAND, st->rec_off,
                       "POSTCOPY_RAM_DISCARD: %u bytes after the block name "
                       "are not whole 16-byte ranges",
                       len - 3u - n);
    if (ms_grow(ALLOC(r), (void **)&st->discard_args, 1, &st->discard_cap,
                len) < 0)
        return MS_FAIL(r, MS_ERR_NO_MEMORY, st->rec_off, "discard ranges");
    memcpy(st->discard_args, a, len);
    st->discard_args[2 + n] = 0; /* the name, NUL terminated in place */
    const char *name = (const char *)st->discard_args + 2;
    if (memchr(name, 0, n))
        return MS_FAIL(r, MS_ERR_COMMAND, at + 2,
                       "POSTCOPY_RAM_DISCARD block name contains a NUL byte");
    if ((st->discard_block = block_index(st, name)) < 0)
        return MS_FAIL(r, MS_ERR_COMMAND, at + 1,
                       "POSTCOPY_RAM_DISCARD for RAM block \"%s\", which "
                       "the block list does not have",
                       name);
    st->postcopy_state = QP_DISCARDING;
    st->discard_count = (len - 3u - n) / DISCARD_RANGE;
    st->discard_next = 0;
    st->discard_off = at + 3 + n;
    c->block = name;
    c->discard_ranges = st->discard_count;
    return 0;
}

static int check_recv_bitmap(ms_reader *r, const uint8_t *a, uint16_t len,
                             ms_command_info *c)
{
    q_state *st = QST(r);
    if (len == 0 || a[0] + 1u != len)
        return MS_FAIL(r, MS_ERR_COMMAND, st->rec_off,
                       "RECV_BITMAP name length %u in %u bytes", len ? a[0] : 0,
                       len);
    if (!st->return_path)
        return MS_FAIL(r, MS_ERR_COMMAND, st->rec_off,
                       "RECV_BITMAP without a return path (no "
                       "OPEN_RETURN_PATH before it)");
    memcpy(st->name, a + 1, a[0]);
    st->name[a[0]] = 0;
    if (block_index(st, st->name) < 0)
        return MS_FAIL(r, MS_ERR_COMMAND, st->rec_off + 6,
                       "RECV_BITMAP for RAM block \"%s\", which the block "
                       "list does not have",
                       st->name);
    c->block = st->name;
    return 0;
}

/* The rules of one command's arguments and place; fills what the event
 * says beyond the common fields.  0, or -1 with the error recorded. */
static int check_command(ms_reader *r, const uint8_t *a, ms_command_info *c)
{
    q_state *st = QST(r);
    switch (c->cmd) {
    case QCMD_OPEN_RETURN_PATH:
        st->return_path = 1; /* a second one: QEMU only warns */
        return 0;
    case QCMD_PING:
        c->value = ms_be32(a);
        if (!st->return_path)
            return MS_FAIL(r, MS_ERR_COMMAND, st->rec_off,
                           "PING 0x%llx without a return path (no "
                           "OPEN_RETURN_PATH before it)",
                           (unsigned long long)c->value);
        return 0;
    case QCMD_POSTCOPY_ADVISE:
        return check_advise(r, a, c->len, c);
    case QCMD_POSTCOPY_RAM_DISCARD:
        return check_discard(r, a, c->len, c);
    case QCMD_POSTCOPY_LISTEN:
        if (st->postcopy_state != QP_ADVISED &&
            st->postcopy_state != QP_DISCARDING)
            return wrong_state(r, "POSTCOPY_LISTEN",
                               "after POSTCOPY_ADVISE (and its discards)");
        st->postcopy_state = QP_LISTENING;
        return 0;
    case QCMD_POSTCOPY_RUN:
        if (st->postcopy_state != QP_LISTENING)
            return wrong_state(r, "POSTCOPY_RUN", "after POSTCOPY_LISTEN");
        st->postcopy_state = QP_RUNNING;
        return 0;
    case QCMD_RECV_BITMAP:
        return check_recv_bitmap(r, a, c->len, c);
    case QCMD_PACKAGED:
        c->value = ms_be32(a);
        return 0;
    case QCMD_ENABLE_COLO:
        st->colo = 1;
        return 0;
    default: /* POSTCOPY_RESUME, SWITCHOVER_START: no rule */
        return 0;
    }
}

/* PACKAGED: the next c->value bytes are a nested stream. */
static int enter_package(ms_reader *r, const ms_command_info *c)
{
    q_state *st = QST(r);
    if ((uint32_t)st->nest >= r->opt.max_nesting)
        return MS_FAIL_LIMIT(r, MS_LIMIT_MAX_NESTING, st->rec_off,
                             "PACKAGED nested deeper than max_nesting (%u)",
                             r->opt.max_nesting);
    if ((size_t)st->nest >= sizeof st->pkg_end / sizeof st->pkg_end[0])
        return MS_FAIL_LIMIT(r, MS_LIMIT_NONE, st->rec_off,
                             "PACKAGED nested deeper than the %zu levels "
                             "migstream tracks",
                             sizeof st->pkg_end / sizeof st->pkg_end[0]);
    uint64_t end = ms_rd_pos(r) + c->value;
    if (st->nest && end > st->pkg_end[st->nest - 1])
        return MS_FAIL(r, MS_ERR_COMMAND, st->rec_off,
                       "PACKAGED of %llu bytes overruns its enclosing "
                       "package",
                       (unsigned long long)c->value);
    st->pkg_cmd[st->nest] = st->rec_off;
    st->pkg_end[st->nest++] = end;
    return 0;
}

/* ---- stage ------------------------------------------------------------------
 */

/* CMD_DISCARD_RANGES: the next range as an event, checked against its
 * block (QEMU's ram_block_discard_range refuses unaligned or overrunning
 * ranges). */
static int discard_range_event(ms_reader *r, ms_event *ev)
{
    q_state *st = QST(r);
    if (st->discard_next == st->discard_count) {
        st->stage = QS_TOP;
        st->step = CMD_HEADER;
        return MS_GO_ON;
    }
    uint32_t i = st->discard_next++;
    const uint8_t *a = st->discard_args;
    const uint8_t *range = a + 3 + a[1] + (size_t)i * DISCARD_RANGE;
    const q_block *b = &st->blocks[st->discard_block];
    uint64_t start = ms_be64(range), length = ms_be64(range + 8);
    uint64_t off = st->discard_off + (uint64_t)i * DISCARD_RANGE;
    if (start % st->page_size || length % st->page_size)
        return MS_FAIL(r, MS_ERR_COMMAND, off,
                       "discard range 0x%llx+0x%llx of \"%s\" is not aligned "
                       "to the %u-byte page",
                       (unsigned long long)start, (unsigned long long)length,
                       b->name, st->page_size);
    if (start > b->used_length || length > b->used_length - start)
        return MS_FAIL(r, MS_ERR_COMMAND, off,
                       "discard range 0x%llx+0x%llx overruns RAM block "
                       "\"%s\" (0x%llx bytes)",
                       (unsigned long long)start, (unsigned long long)length,
                       b->name, (unsigned long long)b->used_length);
    ms_q_ram_discarded(st, st->discard_block, start, length);
    ev->kind = MS_EV_RAM_DISCARD;
    ev->offset = off;
    ev->length = DISCARD_RANGE;
    ms_discard_info *d = &ev->u.discard;
    d->block = b->name;
    d->block_index = (uint32_t)st->discard_block;
    d->start = start;
    d->length = length;
    d->index = i;
    d->count = st->discard_count;
    d->command_offset = st->rec_off;
    d->page_size = st->page_size;
    d->epoch = st->epoch;
    return MS_NEXT_EVENT;
}

int ms_q_read_command(ms_reader *r, ms_event *ev)
{
    q_state *st = QST(r);
    const uint8_t *p;
    switch (st->step) {
    case CMD_HEADER: { /* the command and its argument length */
        MS_TAKE_OR_RETURN(r, 4, &p);
        st->cmd_rec.cmd = ms_be16(p);     /* cmd */
        st->cmd_rec.len = ms_be16(p + 2); /* len */
        if (st->cmd_rec.cmd == QCMD_INVALID || st->cmd_rec.cmd >= QCMD_COUNT)
            return MS_FAIL(r, MS_ERR_COMMAND, st->rec_off, "unknown command %u",
                           st->cmd_rec.cmd);
        int want = commands[st->cmd_rec.cmd].args;
        if (st->cmd_rec.cmd == QCMD_POSTCOPY_ADVISE && st->cmd_rec.len != 0)
            want = ADVISE_ARGS; /* 0 (no RAM postcopy) or 16 */
        if (want != ARGS_VARIABLE && (int)st->cmd_rec.len != want)
            return MS_FAIL(r, MS_ERR_COMMAND, st->rec_off,
                           "%s with %u argument bytes, must be %d",
                           commands[st->cmd_rec.cmd].name, st->cmd_rec.len, want);
        st->step = CMD_ARGS;
    }
        /* fallthrough */
    case CMD_ARGS: { /* the arguments, checked; the command event */
        MS_TAKE_OR_RETURN(r, st->cmd_rec.len, &p);
        ev->kind = MS_EV_COMMAND;
        ev->offset = st->rec_off;
        ev->length = 5 + (uint64_t)st->cmd_rec.len;
        ms_command_info *c = &ev->u.command;
        c->cmd = (uint16_t)st->cmd_rec.cmd;
        c->len = (uint16_t)st->cmd_rec.len;
        c->name = commands[c->cmd].name;
        c->args = p;
        c->nesting = st->nest;
        if (check_command(r, p, c) < 0)
            return MS_NEXT_ERROR;
        if (c->cmd == QCMD_PACKAGED && enter_package(r, c) < 0)
            return MS_NEXT_ERROR;
        c->postcopy_state = postcopy_state_name(st->postcopy_state);
        if (c->cmd == QCMD_POSTCOPY_RAM_DISCARD) {
            st->step = CMD_DISCARD_RANGES;
            return MS_NEXT_EVENT;
        }
        st->stage = QS_TOP;
        st->step = CMD_HEADER;
        return MS_NEXT_EVENT;
    }
    case CMD_DISCARD_RANGES:
        return discard_range_event(r, ev);
    }
    return MS_FAIL(r, MS_ERR_USAGE, ms_rd_pos(r), "internal: command step");
}
