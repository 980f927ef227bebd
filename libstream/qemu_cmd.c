/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* QEMU main stream: QEMU_VM_COMMAND records (0x08): be16 command, be16
 * length, arguments.  PACKAGED opens a nested stream of the given length.
 * Facts: spec/qemu-main.md. */
#include "qemu_impl.h"

static const char *command_name(uint16_t cmd)
{
    static const char *const names[] = {
        "INVALID",        "OPEN_RETURN_PATH", "PING",
        "POSTCOPY_ADVISE", "POSTCOPY_LISTEN",  "POSTCOPY_RUN",
        "POSTCOPY_RAM_DISCARD", "PACKAGED",    "ENABLE_COLO",
        "POSTCOPY_RESUME", "RECV_BITMAP",      "SWITCHOVER_START"};
    return cmd < sizeof names / sizeof names[0] ? names[cmd] : NULL;
}

/* ---- commands ------------------------------------------------------------- */

int ms_q_read_command(ms_reader *r, ms_event *ev)
{
    q_state *st = QST(r);
    const uint8_t *p;
    int t;
    if (st->step == 0) {
        if ((t = ms_rd_take_reserved(r, 4, &p)) <= 0)
            return t < 0 ? MS_NEXT_ERROR : MS_NEXT_INPUT;
        st->u32a = ms_be16(p);     /* cmd */
        st->u32b = ms_be16(p + 2); /* len */
        const char *name = command_name((uint16_t)st->u32a);
        /* fixed lengths per command; -1: variable */
        static const int fixed[] = {-2, 0, 4, -1, 0, 0, -1, 4, 0, 0, -1, 0};
        if (!name || st->u32a == 0)
            return MS_FAIL(r, MS_ERR_COMMAND, st->rec_off,
                           "unknown command %u", st->u32a);
        int want = fixed[st->u32a];
        if (st->u32a == 3 && st->u32b != 0 && st->u32b != 16)
            want = 16; /* POSTCOPY_ADVISE: 0 or 16 */
        if (want >= 0 && (int)st->u32b != want)
            return MS_FAIL(r, MS_ERR_COMMAND, st->rec_off,
                           "%s with %u argument bytes, must be %d", name,
                           st->u32b, want);
        st->step = 1;
    }
    if ((t = ms_rd_take_reserved(r, st->u32b, &p)) <= 0)
        return t < 0 ? MS_NEXT_ERROR : MS_NEXT_INPUT;
    uint16_t cmd = (uint16_t)st->u32a, len = (uint16_t)st->u32b;
    ev->kind = MS_EV_COMMAND;
    ev->offset = st->rec_off;
    ev->length = 5 + (uint64_t)len;
    ms_command_info *c = &ev->u.command;
    c->cmd = cmd;
    c->len = len;
    c->name = command_name(cmd);
    c->args = p;
    c->nesting = st->nest;
    if (cmd == 2 || cmd == 7)
        c->value = ms_be32(p);
    if (cmd == 3 && len == 16) {
        st->postcopy_advised = 1;
        st->advise_page_summary = ms_be64(p);
        st->advise_target_page = ms_be64(p + 8);
    }
    if (cmd == 10 && (len == 0 || p[0] + 1u != len))
        return MS_FAIL(r, MS_ERR_COMMAND, st->rec_off,
                       "RECV_BITMAP name length %u in %u bytes",
                       len ? p[0] : 0, len);
    if (cmd == 6 && (len < 3 || p[0] != 0 || 2u + p[1] + 1 > len ||
                     (len - 2u - p[1] - 1) % 16 != 0))
        return MS_FAIL(r, MS_ERR_COMMAND, st->rec_off,
                       "malformed POSTCOPY_RAM_DISCARD arguments");
    if (cmd == 7) { /* PACKAGED: the next pkg_len bytes are a nested stream */
        if ((uint32_t)st->nest >= MS_MIN(r->opt.max_nesting, 8u))
            return MS_FAIL(r, MS_ERR_LIMIT, st->rec_off,
                           "PACKAGED nested deeper than max_nesting (%u)",
                           r->opt.max_nesting);
        uint64_t end = ms_rd_pos(r) + c->value;
        if (st->nest && end > st->pkg_end[st->nest - 1])
            return MS_FAIL(r, MS_ERR_COMMAND, st->rec_off,
                           "PACKAGED of %llu bytes overruns its enclosing "
                           "package",
                           (unsigned long long)c->value);
        st->pkg_cmd[st->nest] = st->rec_off;
        st->pkg_end[st->nest++] = end;
    }
    st->stage = QS_TOP;
    st->step = 0;
    return MS_NEXT_EVENT;
}
