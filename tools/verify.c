/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* migstream-verify: check everything that can be checked in the files of
 * one migration; silent on success unless asked, one line per problem. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tool_common.h"
#include "tool_held.h"

static const char *prog = "migstream-verify";

/* What the destination expects of a QEMU stream's configuration record;
 * QEMU's loader rejects a mismatch. */
typedef struct expectations {
    const char *machine;
    int page_bits; /* -1: not checked */
    const char *uuid; /* 32 hex digits */
    const char *caps[8];
    int ncaps;
} expectations;

/* --expect-field NAME=VALUE: a decoded payload field the destination
 * requires (HiSilicon dev_id, Xe devid, ...). */
typedef struct field_expect {
    const char *name;
    uint64_t value;
    int within; /* NAME<=MASK: every bit of the field must be in MASK (a
                   destination offering a superset of capabilities) */
    int seen;
} field_expect;

typedef struct verify_ctx {
    field_expect fx[16];
    int nfx;
    char *const *files;
    size_t nfiles;
    int quiet;
    int verbose; /* say what was checked when all is well */
    int expect_failures;
    int no_payloads;
    expectations ex;
    uint64_t *records, *bytes; /* per file */
    uint64_t images, assembled;
    uint32_t channel_count, qemu_mains, qemu_channels, qemu_preempt,
        return_paths;
    uint64_t rp_messages;
    uint64_t problems; /* every problem printed, nested ones too */
    uint64_t mapped_blocks, mapped_set, mapped_total; /* mapped-ram files */
    ms_format *format; /* per file */
    /* QEMU: sections walked without decoding (per file), and why */
    uint64_t *sections, *undecoded;
    int *why_mixed;        /* the reasons differ */
    char (*why_copy)[192]; /* the first reason */
    /* --salvage: per file, where the next intact region begins, and where
     * input ended in damage no record verified after (UINT64_MAX: none) */
    int salvage;
    uint64_t *intact_from, *damaged_tail;
    /* problem and --salvage region lines, printed sorted by file and
     * offset at the end */
    tool_held held;
} verify_ctx;

static void on_problem(void *ctx, size_t file, const ms_error_info *e);

static void expect_fail(verify_ctx *v, size_t file, uint64_t off,
                        const char *what, const char *got, const char *want)
{
    ms_error_info e = {.code = MS_ERR_CONFIGURATION, .offset = off};
    snprintf(e.detail, sizeof e.detail, "%s is %s, the destination expects %s",
             what, got, want);
    v->expect_failures++;
    on_problem(v, file, &e);
}

static void check_config(verify_ctx *v, size_t file, const ms_event *ev)
{
    const ms_config_info *c = &ev->u.config;
    const expectations *x = &v->ex;
    char got[64], want[64], hex[33];
    if (x->machine && strcmp(c->machine, x->machine) != 0)
        expect_fail(v, file, ev->offset, "machine type", c->machine,
                    x->machine);
    /* QEMU sends target-page-bits only when it differs from the target's
     * minimum, and assumes that minimum when it is absent (12 on x86). */
    unsigned bits = c->has_page_bits ? c->page_bits : 12;
    if (x->page_bits >= 0 && (int)bits != x->page_bits) {
        snprintf(got, sizeof got, "%u%s", bits,
                 c->has_page_bits ? "" : " (absent: the x86 minimum)");
        snprintf(want, sizeof want, "%d", x->page_bits);
        expect_fail(v, file, ev->offset, "target page bits", got, want);
    }
    if (x->uuid) {
        if (c->has_uuid)
            tool_hex(hex, c->uuid, 16);
        if (!c->has_uuid || strcasecmp(hex, x->uuid) != 0)
            expect_fail(v, file, ev->offset, "VM UUID",
                        c->has_uuid ? hex : "absent", x->uuid);
    }
    if (!x->ncaps)
        return;
    /* The capabilities that change the stream must match both ways. */
    static const char *const known[] = {"x-ignore-shared", "mapped-ram"};
    for (int k = 0; k < 2; k++) {
        int sent = k ? c->cap_mapped_ram : c->cap_x_ignore_shared, wanted = 0;
        for (int i = 0; i < x->ncaps; i++)
            wanted |= strcmp(x->caps[i], known[k]) == 0;
        if (sent != wanted)
            expect_fail(v, file, ev->offset, known[k],
                        sent ? "listed" : "not listed",
                        wanted ? "it listed" : "it absent");
    }
}

/* A decoded payload field against --expect-field. */
static void check_field(verify_ctx *v, size_t file, uint64_t at,
                        const char *device, const ms_event *ev)
{
    const ms_payload_field *f = &ev->u.pfield;
    for (int i = 0; i < v->nfx; i++) {
        if (strcmp(v->fx[i].name, f->name) != 0)
            continue;
        v->fx[i].seen = 1;
        uint64_t want = v->fx[i].value;
        if (v->fx[i].within ? (f->value & ~want) == 0 : f->value == want)
            continue;
        ms_error_info e = {.code = MS_ERR_PAYLOAD_COMPAT, .offset = at};
        if (v->fx[i].within)
            snprintf(e.detail, sizeof e.detail,
                     "device %.60s: %s is 0x%llx, bits 0x%llx are beyond "
                     "what the destination offers (0x%llx)",
                     device, f->name, (unsigned long long)f->value,
                     (unsigned long long)(f->value & ~want),
                     (unsigned long long)want);
        else
            snprintf(e.detail, sizeof e.detail,
                     "device %.60s: %s is 0x%llx, the destination expects "
                     "0x%llx",
                     device, f->name, (unsigned long long)f->value,
                     (unsigned long long)want);
        v->expect_failures++;
        on_problem(v, file, &e);
    }
}

/* A section the reader walked blind: verify may not call it checked. */
static void note_undecoded(verify_ctx *v, size_t file, const char *why)
{
    if (!v->undecoded[file]++)
        snprintf(v->why_copy[file], sizeof v->why_copy[file], "%s", why);
    else if (strcmp(v->why_copy[file], why) != 0)
        v->why_mixed[file] = 1;
}

/* "N of M sections not decoded: WHY" for a file that had some. */
static void print_undecoded(const verify_ctx *v, size_t i, const char *lead)
{
    const char *why = v->why_copy[i];
    int no_trailer = strstr(why, "no JSON trailer") != NULL;
    printf("%s%" PRIu64 " of %" PRIu64 " sections not decoded: %s%s%s\n",
           lead, v->undecoded[i], v->sections[i],
           no_trailer ? "no JSON trailer (postcopy streams and pipes have none)"
                      : why,
           v->why_mixed[i] ? ", and other reasons" : "",
           no_trailer ? "; give --vmdesc FILE (the trailer of a stream of "
                        "the same machine)"
                      : "");
}

/* --salvage: what a damage event says was lost. */
static void damage_what(const ms_damage_info *d, char *out, size_t cap)
{
    if (!d->has_image) {
        snprintf(out, cap, "records lost");
        return;
    }
    int n = snprintf(out, cap, "device %u '%s' image %u (%s) ", d->device,
                     d->idstr ? d->idstr : "?", d->seq,
                     d->in_packet ? "packets" : ms_phase_name(d->phase));
    if (n < 0 || (size_t)n >= cap)
        return;
    if (d->in_packet)
        snprintf(out + n, cap - n, "packet %u lost (%" PRIu64 " bytes)",
                 d->packet_idx, d->image_length);
    else if (d->length_known)
        snprintf(out + n, cap - n,
                 "bytes 0x%" PRIx64 "-0x%" PRIx64 " lost (zero-filled)",
                 d->image_offset, d->image_offset + d->image_length - 1);
    else
        snprintf(out + n, cap - n,
                 "bytes lost after image offset 0x%" PRIx64
                 " (how many: IMAGE_END's length, if it survived)",
                 d->image_offset);
}

/* --salvage: what a region outside the damaged ones is.  Only migstream
 * check values cover every byte; of other streams the structure was
 * decoded, their data never checked. */
static const char *region_word(const verify_ctx *v, size_t file)
{
    return v->format[file] == MS_FORMAT_MIGSTREAM ? "intact" : "decoded";
}

/* --salvage: the intact region before `to` (if any), then the damage. */
static void print_damage(verify_ctx *v, size_t file, const ms_event *ev)
{
    const ms_damage_info *d = &ev->u.damage;
    char what[400];
    v->problems++;
    if (v->quiet)
        return;
    if (ev->offset > v->intact_from[file])
        tool_held_printf(&v->held, file, v->intact_from[file],
                  "%s:%" PRIu64 ": %s: bytes 0x%" PRIx64 "-0x%" PRIx64
                  " (%" PRIu64 " bytes)\n",
                  v->files[file], v->intact_from[file], region_word(v, file),
                  v->intact_from[file], ev->offset - 1,
                  ev->offset - v->intact_from[file]);
    if (ev->offset + ev->length > v->intact_from[file])
        v->intact_from[file] = ev->offset + ev->length;
    damage_what(d, what, sizeof what);
    tool_held_printf(&v->held, file, ev->offset,
              "%s:%" PRIu64 ": damaged: bytes 0x%" PRIx64 "-0x%" PRIx64
              " damaged: %s (%s at %" PRIu64 ": %s)\n",
              v->files[file], ev->offset, ev->offset,
              ev->offset + ev->length - 1, what, ms_error_name(d->cause),
              d->cause_offset, d->detail);
}

static void on_event(void *ctx, const ms_event *ev,
                     const ms_event_origin *origin)
{
    verify_ctx *v = ctx;
    size_t file = origin->channel;
    int from_set = origin->derived;
    if (origin->device) { /* a driver payload nested in a carrier */
        if (ev->kind == MS_EV_PAYLOAD_FIELD)
            check_field(v, file, origin->carrier_offset, origin->device, ev);
        return;
    }
    if (ev->kind == MS_EV_PAYLOAD_FIELD) /* a raw driver payload file */
        check_field(v, file, ev->offset, v->files[file], ev);
    if (ev->kind == MS_EV_CONFIGURATION && !from_set)
        check_config(v, file, ev);
    if (from_set) {
        if (ev->kind == MS_EV_IMAGE_ASSEMBLED)
            v->assembled++;
        return;
    }
    if (ev->kind == MS_EV_DATA)
        return;
    if (ev->kind == MS_EV_DAMAGE) {
        print_damage(v, file, ev);
        v->bytes[file] = ev->offset + ev->length;
        return;
    }
    if (ev->kind == MS_EV_SECTION)
        v->sections[file]++;
    if (ev->kind == MS_EV_UNDECODED)
        note_undecoded(v, file, ev->u.section.detail);
    v->records[file]++;
    v->bytes[file] = ev->offset + ev->length;
    if (ev->kind == MS_EV_IMAGE_END)
        v->images++;
    if (ev->kind == MS_EV_MAPPED_RAM) {
        v->mapped_blocks++;
        v->mapped_set += ev->u.mapped.pages_set;
        v->mapped_total += ev->u.mapped.pages_total;
    }
    if (ev->kind == MS_EV_RP_MESSAGE)
        v->rp_messages++;
    if (ev->kind == MS_EV_STREAM_HEADER) {
        v->channel_count = ev->u.stream.channel_count;
        v->format[file] = ev->u.stream.format;
        if (ev->u.stream.format == MS_FORMAT_QEMU_MULTIFD)
            v->qemu_channels++;
        else if (ev->u.stream.format == MS_FORMAT_QEMU_PREEMPT)
            v->qemu_preempt++;
        else if (ev->u.stream.format == MS_FORMAT_QEMU_RETURN_PATH)
            v->return_paths++;
        else if (ev->u.stream.format != MS_FORMAT_MIGSTREAM)
            v->qemu_mains++;
    }
}

static void on_problem(void *ctx, size_t file, const ms_error_info *e)
{
    verify_ctx *v = ctx;
    v->problems++;
    /* the reader's "damaged to the end of input" (mig_salvage_finish) */
    if (v->salvage && file != (size_t)-1 && e->offset < v->damaged_tail[file] &&
        strncmp(e->detail, "damaged to the end", 18) == 0)
        v->damaged_tail[file] = e->offset;
    if (v->quiet)
        return;
    tool_held_problem(&v->held, file, v->files[file == (size_t)-1 ? 0 : file],
                      e);
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
            "  --expect-machine=TYPE, --expect-page-bits=N, --expect-uuid=HEX,\n"
            "  --expect-capability=NAME (repeatable)\n"
            "                   QEMU: what the destination would require of "
            "the\n"
            "                   configuration record (its loader rejects a "
            "mismatch)\n"
            "  --expect-field=NAME=VALUE  a decoded driver payload field the "
            "destination\n"
            "                   requires (e.g. dev_id=0xa255 for hisi_acc, "
            "devid for xe);\n"
            "                   NAME<=MASK: the field's bits must lie in MASK "
            "(QAT\n"
            "                   CONFIG.gencap: the destination's capabilities)\n"
            "  --no-payloads    do not decode device data as driver payloads\n"
            "  --salvage        list every intact and damaged byte range of "
            "each file\n"
            "                   (migstream streams: decoding goes on at the "
            "next record\n"
            "                   whose checks verify; spec/salvage.md); exit 1 "
            "when any\n"
            "                   is damaged\n"
            "  -q, --quiet      print nothing (no progress line on stderr "
            "either, which\n"
            "                   is shown on a terminal); the exit status "
            "tells\n"
            "  -h, --help       this help\n"
            "  -V, --version    version\n"
            "reader options:\n",
            prog);
    tool_reader_help(o);
    fprintf(o, "exit: 0 valid, 1 invalid input, 2 usage or I/O error\n");
}

/* --expect-field NAME=VALUE or NAME<=MASK: one more field to check. */
static int add_field_expect(verify_ctx *v, char *arg)
{
    char *eq = strchr(arg, '=');
    uint64_t val;
    char *end;
    int within = eq && eq > arg && eq[-1] == '<';
    if (!eq || eq - within == arg || v->nfx == 16) {
        fprintf(stderr, "%s: --expect-field wants NAME=VALUE or "
                        "NAME<=MASK\n",
                prog);
        return TOOL_USAGE;
    }
    errno = 0;
    val = strtoull(eq + 1, &end, 0);
    if (errno || *end || end == eq + 1) {
        fprintf(stderr, "%s: bad value in --expect-field %s\n", prog,
                arg);
        return TOOL_USAGE;
    }
    eq[-within] = 0;
    v->fx[v->nfx++] = (field_expect){arg, val, within, 0};
    return TOOL_GO_ON;
}

/* One of verify's own options (tool_option_fn). */
static int verify_option(void *ctx, int c)
{
    verify_ctx *v = ctx;
    switch (c) {
    case 'v': v->verbose = 1; break;
    case 'q':
    case TOOL_OPT_QUIET: v->quiet = 1; break;
    case 'M': v->ex.machine = optarg; break;
    case 'B': {
        char *end;
        long b = strtol(optarg, &end, 10);
        if (*end || b < 9 || b > 21) {
            fprintf(stderr, "%s: bad --expect-page-bits %s\n", prog,
                    optarg);
            return TOOL_USAGE;
        }
        v->ex.page_bits = (int)b;
        break;
    }
    case 'U':
        if (strlen(optarg) != 32 ||
            strspn(optarg, "0123456789abcdefABCDEF") != 32) {
            fprintf(stderr, "%s: --expect-uuid wants 32 hex digits\n",
                    prog);
            return TOOL_USAGE;
        }
        v->ex.uuid = optarg;
        break;
    case 'P': v->no_payloads = 1; break;
    case 'S': v->salvage = 1; break;
    case 'F': return add_field_expect(v, optarg);
    case 'C':
        if (v->ex.ncaps == 8) {
            fprintf(stderr, "%s: too many --expect-capability\n", prog);
            return TOOL_USAGE;
        }
        v->ex.caps[v->ex.ncaps++] = optarg;
        break;
    }
    return TOOL_GO_ON;
}

/* The per-file counters: 0, or -1 when memory ran out. */
static int alloc_per_file(verify_ctx *v)
{
    v->records = calloc(v->nfiles, sizeof *v->records);
    v->bytes = calloc(v->nfiles, sizeof *v->bytes);
    v->format = calloc(v->nfiles, sizeof *v->format);
    v->sections = calloc(v->nfiles, sizeof *v->sections);
    v->undecoded = calloc(v->nfiles, sizeof *v->undecoded);
    v->why_mixed = calloc(v->nfiles, sizeof *v->why_mixed);
    v->why_copy = calloc(v->nfiles, sizeof *v->why_copy);
    v->intact_from = calloc(v->nfiles, sizeof *v->intact_from);
    v->damaged_tail = malloc(v->nfiles * sizeof *v->damaged_tail);
    if (!v->records || !v->bytes || !v->format || !v->sections ||
        !v->undecoded || !v->why_mixed || !v->why_copy || !v->intact_from ||
        !v->damaged_tail)
        return -1;
    for (size_t i = 0; i < v->nfiles; i++)
        v->damaged_tail[i] = UINT64_MAX;
    return 0;
}

/* What alloc_per_file allocated. */
static void free_per_file(verify_ctx *v)
{
    tool_held_free(&v->held);
    free(v->records);
    free(v->bytes);
    free(v->format);
    free(v->sections);
    free(v->undecoded);
    free(v->why_mixed);
    free(v->why_copy);
    free(v->intact_from);
    free(v->damaged_tail);
}

/* An --expect-field no decoded payload had: nothing was checked, which is
 * a failure, not a pass. */
static void unseen_fields(verify_ctx *v)
{
    for (int i = 0; i < v->nfx; i++)
        if (!v->fx[i].seen) {
            ms_error_info e = {.code = MS_ERR_PAYLOAD_COMPAT};
            snprintf(e.detail, sizeof e.detail,
                     "no decoded payload has the field %.60s that "
                     "--expect-field names: nothing was checked",
                     v->fx[i].name);
            v->expect_failures++;
            on_problem(v, 0, &e);
        }
}

/* --verbose on a valid migration: a line per file, then what was checked
 * across files (mapped-ram, the return path, the migration's channels). */
static void print_checked(const verify_ctx *v)
{
    size_t read = 0;
    for (size_t i = 0; i < v->nfiles; i++) {
        if (tool_unreadable(i)) {
            printf("%s: not read: it could not be opened\n", v->files[i]);
            continue;
        }
        read++;
        printf("%s: ok%s: %" PRIu64 " elements, %" PRIu64 " bytes, %s%s\n",
               v->files[i], v->undecoded[i] ? " as far as decoded" : "",
               v->records[i], v->bytes[i],
               v->format[i] == MS_FORMAT_MIGSTREAM
                   ? "every check value verified"
                   : "structure checked (QEMU streams carry no check "
                     "values)",
               v->undecoded[i] ? ";" : "");
        if (v->undecoded[i])
            print_undecoded(v, i, "  ");
    }
    if (v->mapped_blocks)
        printf("mapped-ram: ok: %" PRIu64 " RAM blocks, %" PRIu64
               " of %" PRIu64 " pages in the file (headers, bitmaps and "
               "page regions checked)\n",
               v->mapped_blocks, v->mapped_set, v->mapped_total);
    if (v->return_paths)
        printf("return path: ok: %" PRIu64 " messages%s\n",
               v->rp_messages,
               v->qemu_mains ? ", checked against the main stream (PONGs, "
                               "page requests, SWITCHOVER_ACK)"
                             : "; no main stream given: not cross-checked");
    if (v->return_paths && v->return_paths == v->nfiles)
        ; /* the return path alone: said above */
    else if (v->qemu_mains || v->qemu_channels || v->qemu_preempt)
        printf("migration: ok: %u main channel, %u multifd channel%s, "
               "%s%" PRIu64 " device image%s reassembled from packets\n",
               v->qemu_mains, v->qemu_channels,
               v->qemu_channels == 1 ? "" : "s",
               v->qemu_preempt ? "1 postcopy-preempt channel, " : "",
               v->assembled, v->assembled == 1 ? "" : "s");
    else
        printf("migration: ok: %zu of %u channels, %" PRIu64
               " images, %" PRIu64 " reassembled from packets\n",
               read, v->channel_count, v->images, v->assembled);
}

/* --salvage: each file's last intact region: to its end, or to where
 * damage no record verified after began, or to where decoding stopped
 * (what follows was not checked: never called intact). */
static void print_intact_tails(verify_ctx *v)
{
    for (size_t i = 0; i < v->nfiles; i++) {
        FILE *f = fopen(v->files[i], "rb");
        uint64_t size = 0;
        if (f && fseeko(f, 0, SEEK_END) == 0 && ftello(f) > 0)
            size = (uint64_t)ftello(f);
        if (f)
            fclose(f);
        uint64_t end = v->damaged_tail[i] < size ? v->damaged_tail[i] : size;
        uint64_t checked = end < v->bytes[i] ? end : v->bytes[i];
        int covered = v->format[i] == MS_FORMAT_MIGSTREAM;
        if (checked > v->intact_from[i])
            tool_held_printf(&v->held, i, v->intact_from[i],
                      "%s:%" PRIu64 ": %s: bytes 0x%" PRIx64 "-0x%" PRIx64
                      " (%" PRIu64 " bytes%s)\n",
                      v->files[i], v->intact_from[i], region_word(v, i),
                      v->intact_from[i], checked - 1,
                      checked - v->intact_from[i],
                      covered ? "" : "; no check values cover them");
        if (checked < end)
            tool_held_printf(&v->held, i, checked,
                      "%s:%" PRIu64 ": not checked: bytes 0x%" PRIx64
                      "-0x%" PRIx64 " (decoding stopped before them)\n",
                      v->files[i], checked, checked, end - 1);
        if (end < size)
            tool_held_printf(&v->held, i, end,
                      "%s:%" PRIu64 ": damaged: bytes 0x%" PRIx64 "-0x%" PRIx64
                      " damaged: the rest of the file (no record verifies "
                      "in it)\n",
                      v->files[i], end, end, size - 1);
    }
}

int main(int argc, char **argv)
{
    verify_ctx v = {.ex.page_bits = -1};
    ms_options opt;
    ms_options_init(&opt);
    opt.input_stable = 1;
    opt.verify_checks = 1; /* never report "valid" for unchecked bytes */
    opt.data_only = 1;  /* image bytes, not records: no CHUNK events */
    static const struct option own[] = {
        {"verbose", no_argument, 0, 'v'},
        {"status", no_argument, 0, 'q'}, /* --quiet: tool_parse_options */
        {"expect-machine", required_argument, 0, 'M'},
        {"expect-page-bits", required_argument, 0, 'B'},
        {"expect-uuid", required_argument, 0, 'U'},
        {"expect-capability", required_argument, 0, 'C'},
        {"expect-field", required_argument, 0, 'F'},
        {"no-payloads", no_argument, 0, 'P'},
        {"salvage", no_argument, 0, 'S'},
        {0, 0, 0, 0}};
    int parsed = tool_parse_options(prog, argc, argv, "vqhV", own, &opt,
                                    verify_option, usage, &v, &v.files,
                                    &v.nfiles);
    if (parsed != TOOL_GO_ON)
        return parsed;
    opt.salvage = v.salvage;
    tool_held_init(&v.held, stdout);
    if (alloc_per_file(&v) < 0) {
        fprintf(stderr, "%s: out of memory\n", prog);
        return TOOL_USAGE;
    }
    tool_run_payloads(!v.no_payloads && opt.format != MS_FORMAT_PAYLOAD);
    tool_run_parallel(1); /* verify keeps no order-dependent output */
    if (v.quiet)
        tool_run_progress(0); /* -q, --status */
    int rc = tool_run(prog, v.files, v.nfiles, &opt, on_event, on_problem, &v);
    if (rc != TOOL_USAGE)
        unseen_fields(&v);
    if (v.salvage && rc != TOOL_USAGE && !v.quiet)
        print_intact_tails(&v);
    tool_held_flush(&v.held);
    if (rc == TOOL_OK && (v.expect_failures || v.problems))
        rc = TOOL_INVALID;
    /* Valid as far as it was read, but not everything was checked: say
     * what was not, even without --verbose (never a plain "ok"). */
    if (rc == TOOL_OK && !v.verbose && !v.quiet)
        for (size_t i = 0; i < v.nfiles; i++)
            if (v.undecoded[i]) {
                char lead[4200];
                snprintf(lead, sizeof lead, "%s: not checked: ", v.files[i]);
                print_undecoded(&v, i, lead);
            }
    if (rc == TOOL_OK && v.verbose && !v.quiet)
        print_checked(&v);
    free_per_file(&v);
    if (fflush(stdout) != 0) {
        fprintf(stderr, "%s: write error on standard output\n", prog);
        return TOOL_USAGE;
    }
    return tool_exit_status(rc);
}
