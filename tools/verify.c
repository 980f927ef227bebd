/* migstream-verify: check everything that can be checked in the files of
 * one migration; silent on success unless asked, one line per problem. */
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "tool_common.h"

static const char *prog = "migstream-verify";

typedef struct verify_ctx {
    char *const *files;
    size_t nfiles;
    int quiet;
    uint64_t *records, *bytes; /* per file */
    uint64_t images, assembled;
    uint32_t channel_count;
} verify_ctx;

static void on_event(void *ctx, size_t file, const ms_event *ev, int from_set)
{
    verify_ctx *v = ctx;
    if (from_set) {
        if (ev->kind == MS_EV_IMAGE_ASSEMBLED)
            v->assembled++;
        return;
    }
    if (ev->kind == MS_EV_DATA)
        return;
    v->records[file]++;
    v->bytes[file] = ev->offset + ev->length;
    if (ev->kind == MS_EV_IMAGE_END)
        v->images++;
    if (ev->kind == MS_EV_STREAM_HEADER)
        v->channel_count = ev->u.stream.channel_count;
}

static void on_problem(void *ctx, size_t file, const ms_error_info *e)
{
    verify_ctx *v = ctx;
    if (!v->quiet)
        tool_print_problem(stdout, v->files[file == (size_t)-1 ? 0 : file], e);
}

static void usage(FILE *o)
{
    fprintf(o,
            "usage: %s [options] FILE...\n"
            "Check migration streams: structure, every check value, image\n"
            "sequences and hashes, packet reassembly across channels, end\n"
            "records, and that every channel of the migration is present.\n"
            "On a problem prints FILE:OFFSET: error-name: detail.\n"
            "  -v, --verbose    say what was checked when all is well\n"
            "  -q, --quiet      print nothing; the exit status tells\n"
            "  -h, --help       this help\n"
            "  -V, --version    version\n"
            "reader options:\n",
            prog);
    tool_reader_help(o);
    fprintf(o, "exit: 0 valid, 1 invalid input, 2 usage or I/O error\n");
}

int main(int argc, char **argv)
{
    verify_ctx v = {0};
    int verbose = 0;
    ms_options opt;
    ms_options_init(&opt);
    opt.input_stable = 1;
    opt.verify_checks = 1; /* never report "valid" for unchecked bytes */
    static const struct option own[] = {
        {"verbose", no_argument, 0, 'v'},
        {"quiet", no_argument, 0, 'q'},
        {"status", no_argument, 0, 'q'},
        {"help", no_argument, 0, 'h'},
        {"version", no_argument, 0, 'V'},
        {0, 0, 0, 0}};
    struct option *longs = tool_long_options(own);
    int c, li;
    while ((c = getopt_long(argc, argv, "vqhV", longs, &li)) != -1) {
        switch (c) {
        case 'v': verbose = 1; break;
        case 'q': v.quiet = 1; break;
        case TOOL_OPT_READER:
            if (tool_reader_option(prog, &opt, longs[li].name, optarg) < 0)
                return TOOL_USAGE;
            break;
        case 'h': usage(stdout); return TOOL_OK;
        case 'V': printf("%s %s\n", prog, ms_version_string()); return TOOL_OK;
        default: usage(stderr); return TOOL_USAGE;
        }
    }
    free(longs);
    if (optind >= argc) {
        usage(stderr);
        return TOOL_USAGE;
    }
    v.files = argv + optind;
    v.nfiles = (size_t)(argc - optind);
    v.records = calloc(v.nfiles, sizeof *v.records);
    v.bytes = calloc(v.nfiles, sizeof *v.bytes);
    if (!v.records || !v.bytes) {
        fprintf(stderr, "%s: out of memory\n", prog);
        return TOOL_USAGE;
    }
    int rc = tool_run(prog, v.files, v.nfiles, &opt, on_event, on_problem, &v);
    if (rc == TOOL_OK && verbose && !v.quiet) {
        for (size_t i = 0; i < v.nfiles; i++)
            printf("%s: ok: %" PRIu64 " elements, %" PRIu64
                   " bytes, every check value verified\n",
                   v.files[i], v.records[i], v.bytes[i]);
        printf("migration: ok: %zu of %u channels, %" PRIu64
               " images, %" PRIu64 " reassembled from packets\n",
               v.nfiles, v.channel_count, v.images, v.assembled);
    }
    free(v.records);
    free(v.bytes);
    if (fflush(stdout) != 0) {
        fprintf(stderr, "%s: write error on standard output\n", prog);
        return TOOL_USAGE;
    }
    return rc;
}
