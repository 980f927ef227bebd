/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* migstream-replay's return path: what the destination sends back on the
 * main connection (spec/qemu-return-path.md), read on a thread of its own
 * while the capture goes out, decoded by the library (format
 * qemu-return-path), one line per message:
 *
 *   socket --read--> ms_reader (MS_FORMAT_QEMU_RETURN_PATH) --> "PONG 1"
 *                                                              "SHUT 0" ...
 *   REQ_PAGES(_ID) -> replay_pages_request: the capture's records of the
 *                     pages queued for the main sender (replay_pages.c),
 *                     or "not answered: ..."
 *   EOF -> closed; ECONNRESET -> reset; undecodable bytes -> the problem
 *   printed, the rest only counted (still read, so the destination is
 *   never blocked writing to us)
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <unistd.h>

#include "replay.h"
#include "tool_common.h"

/* Bytes read at once: messages are small (at most 268 bytes but a
 * RECV_BITMAP's bitmap). */
#define RP_READ (16 * 1024)

/* One line for one message. */
static void print_message(replay_rp *rp, const ms_event *ev)
{
    const ms_rp_info *m = &ev->u.rp;
    FILE *out = rp->out;
    fprintf(out, "return-path %" PRIu64 ": %s", ev->offset, m->name);
    switch (m->type) {
    case MS_RP_SHUT:
    case MS_RP_PONG:
    case MS_RP_RESUME_ACK:
        fprintf(out, " %" PRIu32, m->value);
        break;
    case MS_RP_REQ_PAGES_ID:
    case MS_RP_REQ_PAGES:
        fprintf(out, " %s 0x%" PRIx64 " %" PRIu32, m->block, m->start,
                m->length);
        break;
    case MS_RP_RECV_BITMAP:
        fprintf(out, " %s %" PRIu64, m->block, m->bitmap_size);
        break;
    default:
        break;
    }
    fputc('\n', out);
    fflush(out);
}

/* A page request: answered from the capture's postcopy part when it has
 * the pages (replay_pages), else said. */
static void note_request(replay_rp *rp, const ms_rp_info *m)
{
    if (rp->pages &&
        replay_pages_request(rp->pages, m->block, m->start, m->length))
        return;
    fprintf(rp->out,
            "not answered: %s 0x%" PRIx64 " is not in the capture's "
            "postcopy part\n",
            m->block, m->start);
    fflush(rp->out);
}

/* What one message tells the verdict. */
static void note_message(replay_rp *rp, const ms_event *ev)
{
    rp->messages++;
    if (ev->u.rp.type == MS_RP_SHUT) {
        rp->shut_value = ev->u.rp.value;
        __atomic_store_n(&rp->shut_seen, 1, __ATOMIC_RELEASE);
    } else if (ev->u.rp.type == MS_RP_REQ_PAGES ||
               ev->u.rp.type == MS_RP_REQ_PAGES_ID) {
        rp->page_requests++;
        note_request(rp, &ev->u.rp);
    }
}

/* Hand `n` bytes to the decoder; 0, or -1 once the bytes are not a return
 * path (the problem printed). */
static int decode(replay_rp *rp, ms_reader *r, const uint8_t *buf, size_t n)
{
    if (ms_reader_input(r, buf, n) != 0)
        return -1;
    ms_event ev;
    int got;
    while ((got = ms_reader_next(r, &ev)) == MS_NEXT_EVENT) {
        if (ev.kind != MS_EV_RP_MESSAGE)
            continue;
        print_message(rp, &ev);
        note_message(rp, &ev);
    }
    return got == MS_NEXT_INPUT ? 0 : -1;
}

static void report_problem(replay_rp *rp, const ms_reader *r)
{
    fflush(rp->out);
    fputs("return path: ", stderr);
    tool_print_problem(stderr, "main connection", ms_reader_error(r));
    rp->decode_failed = 1;
}

static void *rp_main(void *arg)
{
    replay_rp *rp = arg;
    ms_options opt;
    ms_options_init(&opt);
    opt.format = MS_FORMAT_QEMU_RETURN_PATH;
    ms_reader *r = ms_reader_create(&opt);
    uint8_t buf[RP_READ];
    int decoding = r != NULL;
    for (;;) {
        ssize_t got = read(rp->fd, buf, sizeof buf);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            __atomic_store_n(&rp->reset, 1, __ATOMIC_RELEASE);
            break;
        }
        if (got == 0) {
            __atomic_store_n(&rp->closed, 1, __ATOMIC_RELEASE);
            break;
        }
        rp->bytes += (uint64_t)got;
        if (decoding && decode(rp, r, buf, (size_t)got) < 0) {
            report_problem(rp, r);
            decoding = 0;
        }
    }
    /* a return path cut inside a message is a problem; one that never
     * started (no return-path capability) is not */
    if (decoding && rp->bytes > 0 && !rp->shut_seen &&
        ms_reader_finish(r) != 0) {
        const ms_error_info *e = ms_reader_error(r);
        if (e->code != MS_ERR_MISSING_END)
            report_problem(rp, r);
    }
    ms_reader_free(r);
    return NULL;
}

int replay_rp_start(replay_rp *rp)
{
    return pthread_create(&rp->thread, NULL, rp_main, rp) == 0 ? 0 : -1;
}

void replay_rp_join(replay_rp *rp)
{
    pthread_join(rp->thread, NULL);
}
