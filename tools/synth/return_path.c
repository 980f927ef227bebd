/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* --return-path: the destination's answers to a main stream.
 * spec/qemu-return-path.md: reads a QEMU main stream and writes the return
 * path a destination would send for it: a PONG for every PING, in stream
 * order; SWITCHOVER_ACK once every VFIO device (a START section named
 * .../vfio) sent DEV_INIT_DATA_SENT; SHUT 0 at the end.  No page requests:
 * whether the guest faults is not in the stream. */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "synth.h"

typedef struct rp_synth {
    FILE *out;
    enc_out enc;
    uint32_t vfio_devices, init_data_sent;
    int acked;
    uint64_t messages;
} rp_synth;

static void rp_put(rp_synth *o, uint16_t type, uint32_t value, int has_value)
{
    enc_rp_message(&o->enc, type, value, has_value);
    o->messages++;
}

static void rp_answer(rp_synth *o, const ms_event *ev)
{
    switch (ev->kind) {
    case MS_EV_SECTION: {
        size_t n = strlen(ev->u.section.idstr);
        if (ev->u.section.type == MS_QSEC_START && n >= 5 &&
            strcmp(ev->u.section.idstr + n - 5, "/vfio") == 0)
            o->vfio_devices++;
        break;
    }
    case MS_EV_VFIO_MARKER:
        if (strcmp(ev->u.vfio.name, "DEV_INIT_DATA_SENT") == 0 &&
            ++o->init_data_sent >= o->vfio_devices && !o->acked) {
            rp_put(o, MS_RP_SWITCHOVER_ACK, 0, 0);
            o->acked = 1;
        }
        break;
    case MS_EV_COMMAND:
        if (strcmp(ev->u.command.name, "PING") == 0)
            rp_put(o, MS_RP_PONG, (uint32_t)ev->u.command.value, 1);
        break;
    default:
        break;
    }
}

int return_path_mode(int argc, char **argv)
{
    const char *in = NULL, *out = NULL;
    int to_stdout = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--return-path") == 0 && i + 1 < argc)
            in = argv[++i];
        else if (strcmp(argv[i], "-o") == 0 && i + 1 < argc)
            out = argv[++i];
        else if (strcmp(argv[i], "--stdout") == 0)
            to_stdout = 1;
        else {
            usage_error("--return-path takes MAIN.mig and one of -o OUT / "
                        "--stdout, not '%s'",
                        argv[i]);
            return TOOL_USAGE;
        }
    }
    if (!in || !out == !to_stdout) {
        usage_error("usage: --return-path MAIN.mig -o OUT | --stdout");
        return TOOL_USAGE;
    }
    FILE *f = fopen(in, "rb");
    if (!f) {
        fprintf(stderr, PROG ": %s: %s\n", in, strerror(errno));
        return TOOL_USAGE;
    }
    rp_synth o = {.out = to_stdout ? stdout : fopen(out, "wb")};
    if (!o.out) {
        fprintf(stderr, PROG ": %s: %s\n", out, strerror(errno));
        fclose(f);
        return TOOL_USAGE;
    }
    enc_out_file(&o.enc, o.out);
    ms_reader *r = ms_reader_create(NULL);
    static uint8_t buf[1 << 16];
    size_t n;
    int rc = r ? 0 : -1;
    ms_event ev;
    while (rc == 0 && (n = fread(buf, 1, sizeof buf, f)) > 0) {
        rc = ms_reader_input(r, buf, n);
        int k = MS_NEXT_INPUT;
        while (rc == 0 && (k = ms_reader_next(r, &ev)) == MS_NEXT_EVENT) {
            if (ev.kind == MS_EV_STREAM_HEADER &&
                ev.u.stream.format != MS_FORMAT_QEMU_MAIN &&
                ev.u.stream.format != MS_FORMAT_LIBVIRT_SAVE) {
                fprintf(stderr, PROG ": %s: not a QEMU main stream (%s)\n", in,
                        ms_format_name(ev.u.stream.format));
                rc = -2;
            }
            rp_answer(&o, &ev);
        }
        if (rc == 0 && k == MS_NEXT_ERROR)
            rc = -1;
    }
    if (rc == 0)
        rc = ms_reader_finish(r);
    if (rc == -1 && r)
        tool_print_problem(stderr, in, ms_reader_error(r));
    if (rc == 0)
        rp_put(&o, MS_RP_SHUT, 0, 1);
    ms_reader_free(r);
    fclose(f);
    if ((!to_stdout && fclose(o.out) != 0) || fflush(stdout) != 0 ||
        o.enc.err) {
        fprintf(stderr, PROG ": write error\n");
        rc = -2;
    }
    if (rc && !to_stdout)
        unlink(out); /* no half answer left behind */
    return rc == 0 ? TOOL_OK : rc == -1 ? TOOL_INVALID : TOOL_USAGE;
}
