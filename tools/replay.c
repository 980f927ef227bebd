/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* migstream-replay: feed a captured migration into a destination QEMU.
 *
 *   options --> replay_input_open (capture dir or files, main first)
 *           --> --to tcp:/unix:  replay_to_socket (connections in order,
 *                                one sender thread each, return path read
 *                                and printed, verdict from the sockets)
 *           --> --to exec        replay_to_stdout (main stream only)
 *
 * Exit status: 0 the destination took the stream (SHUT 0, or every byte
 * sent and the main connection closed cleanly), 1 it refused it (SHUT
 * non-zero, a send failed, a reset, no close in --wait seconds), 2 usage
 * or I/O errors.  Parts: replay.h. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "replay.h"
#include "tool_common.h"

static const char *const prog = "migstream-replay";

/* Default seconds to wait for the destination after the last byte. */
#define DEFAULT_WAIT_S 60.0

static void usage(FILE *out)
{
    fprintf(
        out,
        "usage: %s --to DEST [options] CAPTURE_DIR|ARCHIVE\n"
        "       %s --to DEST [options] MAIN_FILE [CHANNEL_FILE...]\n"
        "Send a captured migration to a destination QEMU: the main\n"
        "connection first, then the multifd / preempt channels in capture\n"
        "order, all sent at once; print what the destination says back on\n"
        "the return path.\n"
        "  --to DEST        tcp:HOST:PORT, unix:PATH, or exec (the main\n"
        "                   stream on standard output, for -incoming exec:)\n"
        "  --rate N         send at most N bytes per second in all (K/M/G)\n"
        "  --wait S         seconds to wait for the destination to close\n"
        "                   after the last byte (default 60; 0: no limit)\n"
        "  -h, --help       this help\n"
        "  -V, --version    version\n"
        "CAPTURE_DIR: migstream-record's directory (manifest.json,\n"
        "connN.s2d) or connN.bin files (conn0 the main channel).\n"
        "ARCHIVE: a migstream-archive file, checked whole first (a damaged\n"
        "one is refused); its source-to-destination streams are sent.\n"
        "Exit status: 0 the destination took the stream, 1 it refused it,\n"
        "2 usage or I/O error.\n",
        prog, prog);
}

typedef struct replay_args {
    const char *to;
    uint64_t rate;
    double wait_s;
} replay_args;

/* The options; returns the index of the first operand, or -(status+1). */
static int parse_args(int argc, char **argv, replay_args *a)
{
    static const struct option longs[] = {
        {"to", required_argument, NULL, 't'},
        {"rate", required_argument, NULL, 'r'},
        {"wait", required_argument, NULL, 'w'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0}};
    int c;
    char *end;
    while ((c = getopt_long(argc, argv, "hV", longs, NULL)) != -1) {
        switch (c) {
        case 't':
            a->to = optarg;
            break;
        case 'r':
            if (tool_parse_size(optarg, &a->rate) < 0 || a->rate == 0) {
                fprintf(stderr,
                        "%s: --rate %s: expected bytes per second "
                        "(K/M/G suffix allowed)\n",
                        prog, optarg);
                return -(TOOL_USAGE + 1);
            }
            break;
        case 'w':
            a->wait_s = strtod(optarg, &end);
            if (*end || end == optarg || a->wait_s < 0) {
                fprintf(stderr, "%s: --wait %s: expected seconds\n", prog,
                        optarg);
                return -(TOOL_USAGE + 1);
            }
            break;
        case 'h':
            usage(stdout);
            return -(TOOL_OK + 1);
        case 'V':
            printf("%s %s\n", prog, ms_version_string());
            return -(TOOL_OK + 1);
        default:
            usage(stderr);
            return -(TOOL_USAGE + 1);
        }
    }
    if (!a->to || optind >= argc) {
        fprintf(stderr, "%s: %s\n", prog,
                !a->to ? "--to is required" : "no capture given");
        usage(stderr);
        return -(TOOL_USAGE + 1);
    }
    if (strcmp(a->to, "exec") != 0 && strncmp(a->to, "tcp:", 4) != 0 &&
        strncmp(a->to, "unix:", 5) != 0) {
        fprintf(stderr,
                "%s: --to %s: expected tcp:HOST:PORT, unix:PATH or "
                "exec\n",
                prog, a->to);
        return -(TOOL_USAGE + 1);
    }
    return optind;
}

int main(int argc, char **argv)
{
    replay_args a = {.wait_s = DEFAULT_WAIT_S};
    int first = parse_args(argc, argv, &a);
    if (first < 0)
        return -first - 1;
    /* a closed destination shows as a failed write, not a signal */
    signal(SIGPIPE, SIG_IGN);
    replay_input in;
    if (replay_input_open(prog, argv + first, (size_t)(argc - first), &in) < 0)
        return TOOL_USAGE;
    replay_pace pace;
    replay_pace_init(&pace, a.rate);
    int exec = strcmp(a.to, "exec") == 0;
    int status =
        exec ? replay_to_stdout(prog, &in, &pace)
             : replay_to_socket(prog, a.to, &in, &pace, a.wait_s, stdout);
    replay_input_close(&in);
    return status;
}
