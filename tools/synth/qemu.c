/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* --qemu: VFIO devices inserted into a real QEMU main stream.
 * BASE's bytes are copied unchanged; the devices' sections go where QEMU
 * puts them (spec/qemu-main.md section 8, protocol v2):
 *   after the RAM START footer  START per device: SETUP_STATE, END_OF_STATE
 *   after each RAM PART footer  PARTs: at most one DATA_STATE chunk each,
 *                               then END_OF_STATE (or INIT_DATA_SENT)
 *   after the RAM END footer    END per device: DATA_STATE chunks of the
 *                               final data, END_OF_STATE
 *   before the EOF byte         FULL per device (the START's section id):
 *                               CONFIG_STATE, config bytes, END_OF_STATE
 * The JSON trailer stays as it is: QEMU does not describe VFIO sections in
 * it.  Where those places are comes from the library's reader run over
 * BASE, so the tool trusts no hand-written offsets. */

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "synth.h"

/* ---- BASE ---------------------------------------------------------------- */
/* A reader over the mapped BASE capture, given its JSON trailer first so
 * FULL sections are walked by their description rather than by looking
 * for their footer.  NULL (after saying so) when memory is short. */
ms_reader *base_reader(const qemu_base *b)
{
    ms_options opt;
    ms_options_init(&opt);
    opt.input_stable = 1;
    ms_reader *r = ms_reader_create(&opt);
    if (!r) {
        fprintf(stderr, PROG ": out of memory\n");
        return NULL;
    }
    size_t joff, jlen;
    if (ms_qemu_find_vmdesc(b->bytes, b->len, (size_t)64 << 20, &joff, &jlen))
        ms_reader_set_vmdesc(r, (const char *)b->bytes + joff, jlen);
    return r;
}

int base_problem(const qemu_base *b, uint64_t off, ms_error code,
                 const char *detail)
{
    ms_error_info e = {.code = code, .offset = off};
    snprintf(e.detail, sizeof e.detail, "%s", detail);
    tool_print_problem(stderr, b->path, &e);
    return TOOL_INVALID;
}

static int base_event(qemu_synth *q, const ms_event *ev)
{
    qemu_base *b = &q->base;
    switch (ev->kind) {
    case MS_EV_STREAM_HEADER:
        if (ev->u.stream.format != MS_FORMAT_QEMU_MAIN)
            return base_problem(b, 0, MS_ERR_FORMAT_UNSUPPORTED,
                                "not a QEMU main stream");
        break;
    case MS_EV_COMMAND:
        /* Sections inside a PACKAGED stream are counted in its length,
         * so nothing may be inserted there; postcopy bases are out. */
        if (ev->u.command.cmd == MS_QCMD_PACKAGED)
            return base_problem(b, ev->offset, MS_ERR_FORMAT_UNSUPPORTED,
                                "PACKAGED command (postcopy): --qemu needs "
                                "a precopy base stream");
        break;
    case MS_EV_SECTION:
        if (ev->u.section.section_id > b->max_section_id)
            b->max_section_id = ev->u.section.section_id;
        for (uint32_t d = 0; d < q->wl->devices; d++) {
            char idstr[32];
            uint32_t slot = 0x10 + d;
            snprintf(idstr, sizeof idstr, "0000:%02x:%02x.0/vfio", slot / 32,
                     slot % 32);
            if (strcmp(ev->u.section.idstr, idstr) == 0) {
                char why[128];
                snprintf(why, sizeof why,
                         "BASE already has a section \"%s\", the name of "
                         "inserted device %u",
                         idstr, d);
                return base_problem(b, ev->offset, MS_ERR_SECTION, why);
            }
        }
        break;
    case MS_EV_SECTION_FOOTER: {
        if (strcmp(ev->u.section.idstr, "ram") != 0)
            break;
        uint64_t end = ev->offset + Q_FOOTER_SIZE;
        if (ev->u.section.type == MS_QSEC_START && !b->have_start) {
            b->ram_start_end = end;
            b->have_start = 1;
        } else if (ev->u.section.type == MS_QSEC_PART && b->have_start &&
                   !b->have_end) {
            if (grow_array((void **)&b->part_ends, &b->partcap, b->nparts + 1,
                           sizeof *b->part_ends) < 0) {
                fprintf(stderr, PROG ": out of memory\n");
                return TOOL_USAGE;
            }
            b->part_ends[b->nparts++] = end;
        } else if (ev->u.section.type == MS_QSEC_END && b->have_start &&
                   !b->have_end) {
            b->ram_end_end = end;
            b->have_end = 1;
        }
        break;
    }
    case MS_EV_QEMU_EOF:
        if (!b->have_eof) {
            b->eof_off = ev->offset;
            b->have_eof = 1;
        }
        break;
    default:
        break;
    }
    return TOOL_OK;
}

/* Map BASE (b->path): a regular, non-empty file. */
int map_base(qemu_base *b)
{
    int fd = open(b->path, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        int err = errno;
        if (fd >= 0)
            close(fd);
        return io_error(b->path, err);
    }
    if (!S_ISREG(st.st_mode) || st.st_size == 0) {
        close(fd);
        fprintf(stderr, PROG ": %s: not a regular, non-empty file\n", b->path);
        return TOOL_USAGE;
    }
    void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int err = errno;
    close(fd);
    if (m == MAP_FAILED)
        return io_error(b->path, err);
    b->bytes = m;
    b->len = (size_t)st.st_size;
    return TOOL_OK;
}

void free_base(qemu_base *b)
{
    if (b->bytes)
        munmap((void *)b->bytes, b->len);
    b->bytes = NULL;
    free(b->part_ends);
    b->part_ends = NULL;
}

/* Map BASE and find the insertion points with the library's reader. */
int read_base(qemu_synth *q)
{
    qemu_base *b = &q->base;
    int status = map_base(b);
    if (status != TOOL_OK)
        return status;
    ms_reader *r = base_reader(b);
    if (!r)
        return TOOL_USAGE;
    ms_event ev;
    int rc = ms_reader_input(r, b->bytes, b->len) < 0 ? MS_NEXT_ERROR
                                                      : MS_NEXT_EVENT;
    while (rc == MS_NEXT_EVENT && status == TOOL_OK)
        if ((rc = ms_reader_next(r, &ev)) == MS_NEXT_EVENT)
            status = base_event(q, &ev);
    if (status == TOOL_OK && (rc == MS_NEXT_ERROR || ms_reader_finish(r) < 0)) {
        tool_print_problem(stderr, b->path, ms_reader_error(r));
        status = TOOL_INVALID;
    }
    ms_reader_free(r);
    if (status != TOOL_OK)
        return status;
    if (!b->have_start || !b->have_end || !b->have_eof)
        return base_problem(b, b->len, MS_ERR_SECTION,
                            !b->have_start ? "no RAM START section"
                            : !b->have_end ? "no RAM END section"
                                           : "no EOF record");
    if (b->ram_end_end > b->eof_off)
        return base_problem(b, b->eof_off, MS_ERR_SECTION,
                            "EOF record before the RAM END section");
    return TOOL_OK;
}

/* Set up device d's name and generators. */
int qemu_dev_init(qemu_synth *q, uint32_t d)
{
    qemu_dev *dev = &q->devs[d];
    uint32_t slot = 0x10 + d; /* 0000:00:10.0 on: clear of BASE's NICs */
    snprintf(dev->idstr, sizeof dev->idstr, "0000:%02x:%02x.0/vfio", slot / 32,
             slot % 32);
    dev->section_id = q->base.max_section_id + 1 + d;
    return gens_init(q->wl, d, dev->gen, 0);
}

/* ---- writing ------------------------------------------------------------- */

void qcopy(qemu_synth *q, uint64_t *pos, uint64_t to)
{
    enc_bytes(&q->out, q->base.bytes + *pos, (size_t)(to - *pos));
    *pos = to;
}

const char *const phase_file[4] = {"config", "initial", "middle", "final"};

/* Also append the bytes to DIR/N.PHASE (--expect-dir). */
void expect_append(qemu_synth *q, uint32_t d, int phase, const uint8_t *p,
                   size_t n, int truncate)
{
    if (!q->wl->expect_dir || q->expect_err)
        return;
    char path[4096];
    snprintf(path, sizeof path, "%s/%u.%s", q->wl->expect_dir, d,
             phase_file[phase]);
    int fd =
        open(path, O_WRONLY | O_CREAT | (truncate ? O_TRUNC : O_APPEND), 0666);
    int failed = fd < 0;
    while (!failed && n) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        failed = k <= 0;
        if (!failed) {
            p += k;
            n -= (size_t)k;
        }
    }
    if (fd >= 0 && close(fd) < 0)
        failed = 1;
    if (failed) {
        q->expect_err = errno ? errno : EIO;
        io_error(path, q->expect_err);
    }
}

/* One DATA_STATE chunk of device d's phase, written and recorded. */

void qemu_devs_free(qemu_synth *q)
{
    for (uint32_t d = 0; q->devs && d < q->wl->devices; d++)
        gens_free(q->devs[d].gen);
    free(q->devs);
    q->devs = NULL;
}

/* One DATA_STATE chunk of device d's phase, written and recorded. */
static void qput_chunk(qemu_synth *q, uint32_t d, int phase)
{
    size_t n = gen_next(&q->devs[d].gen[phase], q->buf, q->chunk_max);
    enc_vfio_data(&q->out, q->buf, n);
    expect_append(q, d, phase, q->buf, n, 0);
}

static void qput_header(qemu_synth *q, uint8_t type, uint32_t d)
{
    const qemu_dev *dev = &q->devs[d];
    enc_q_section(&q->out, type, dev->section_id, dev->idstr, 0,
                  VFIO_SECTION_VERSION);
}

void vfio_section(qemu_synth *q, uint8_t type, uint32_t d, int config)
{
    qput_header(q, type, d);
    if (type == Q_START)
        enc_vfio_marker(&q->out, VFIO_SETUP_STATE);
    if (type == Q_FULL && config) {
        /* Stand-in for the PCI config VMState.  The reader finds its end
         * by looking for END_OF_STATE + footer, so no 0x7E byte here. */
        uint8_t cfg[VFIO_CONFIG_BYTES];
        rng_bytes(&q->devs[d].gen[0].rng, cfg, sizeof cfg);
        for (size_t i = 0; i < sizeof cfg; i++)
            if (cfg[i] == Q_FOOTER)
                cfg[i]++;
        enc_vfio_marker(&q->out, VFIO_CONFIG_STATE);
        enc_bytes(&q->out, cfg, sizeof cfg);
    }
    enc_vfio_marker(&q->out, VFIO_END_OF_STATE);
    enc_q_footer(&q->out, q->devs[d].section_id);
}

/* Precopy PART number k of device d (every device has the same plan). */
static void qput_part(qemu_synth *q, uint32_t d, uint64_t k)
{
    enum vfio_marker end = VFIO_END_OF_STATE;
    qput_header(q, Q_PART, d);
    if (k < q->n_init) {
        qput_chunk(q, d, MS_PHASE_INITIAL);
        if (q->wl->switchover_ack && k + 1 == q->n_init)
            end = VFIO_INIT_DATA_SENT;
    } else if (q->init_only && k == q->n_init) {
        end = VFIO_INIT_DATA_SENT; /* nothing initial to send */
    } else {
        qput_chunk(q, d, MS_PHASE_MIDDLE);
    }
    enc_vfio_marker(&q->out, end);
    enc_q_footer(&q->out, q->devs[d].section_id);
}

int write_expect_files(qemu_synth *q)
{
    const workload *wl = q->wl;
    if (!wl->expect_dir)
        return TOOL_OK;
    if (mkdir(wl->expect_dir, 0777) != 0 && errno != EEXIST)
        return io_error(wl->expect_dir, errno);
    char path[4096];
    snprintf(path, sizeof path, "%s/devices", wl->expect_dir);
    FILE *f = fopen(path, "w");
    if (!f)
        return io_error(path, errno);
    for (uint32_t d = 0; d < wl->devices; d++)
        fprintf(f, "%u %s %u\n", d, q->devs[d].idstr, q->devs[d].section_id);
    if (ferror(f) | (fclose(f) != 0))
        return io_error(path, errno ? errno : EIO);
    for (uint32_t d = 0; d < wl->devices; d++)
        for (int p = MS_PHASE_INITIAL; p <= MS_PHASE_FINAL; p++)
            expect_append(q, d, p, NULL, 0, 1);
    return q->expect_err ? TOOL_USAGE : TOOL_OK;
}

/* Precopy PARTs in rounds (one PART per device per round, as QEMU's
 * iteration loop visits every device once), spread evenly after the RAM
 * PARTs; a base without RAM PARTs gets them after the STARTs. */
static void write_precopy_parts(qemu_synth *q, uint64_t *pos)
{
    const qemu_base *b = &q->base;
    uint64_t rounds = q->n_init + (uint64_t)q->init_only + q->n_mid;
    uint64_t slots = b->nparts ? b->nparts : 1, done = 0;
    for (uint64_t i = 0; i < slots; i++) {
        if (b->nparts)
            qcopy(q, pos, b->part_ends[i]);
        uint64_t until =
            rounds / slots * (i + 1) + rounds % slots * (i + 1) / slots;
        for (; done < until; done++)
            for (uint32_t d = 0; d < q->wl->devices; d++)
                qput_part(q, d, done);
    }
}

static void write_qemu_stream(qemu_synth *q)
{
    const qemu_base *b = &q->base;
    uint32_t nd = q->wl->devices;
    uint64_t pos = 0;
    qcopy(q, &pos, b->ram_start_end);
    for (uint32_t d = 0; d < nd; d++)
        vfio_section(q, Q_START, d, 1);
    write_precopy_parts(q, &pos);
    qcopy(q, &pos, b->ram_end_end);
    uint64_t n_final =
        chunks_for(q->devs[0].gen[MS_PHASE_FINAL].total, q->chunk_max);
    for (uint32_t d = 0; d < nd; d++) {
        qput_header(q, Q_END, d);
        for (uint64_t k = 0; k < n_final; k++)
            qput_chunk(q, d, MS_PHASE_FINAL);
        enc_vfio_marker(&q->out, VFIO_END_OF_STATE);
        enc_q_footer(&q->out, q->devs[d].section_id);
    }
    qcopy(q, &pos, b->eof_off);
    for (uint32_t d = 0; d < nd; d++)
        vfio_section(q, Q_FULL, d, 1);
    qcopy(q, &pos, b->len); /* EOF and the JSON trailer */
}

/* ---- the mode ------------------------------------------------------------ */

/* BASE read, the devices set up, the chunk plan made; 0 or an exit code. */
static int qemu_prepare(qemu_synth *q)
{
    const workload *wl = q->wl;
    int status = read_base(q);
    if (status == TOOL_OK &&
        wl->devices > UINT32_MAX - 1 - q->base.max_section_id) {
        fprintf(stderr, PROG ": too many devices for BASE's section ids\n");
        status = TOOL_USAGE;
    }
    if (status == TOOL_OK) {
        q->devs = calloc(wl->devices ? wl->devices : 1, sizeof *q->devs);
        q->buf = malloc(q->chunk_max);
        if (!q->devs || !q->buf) {
            fprintf(stderr, PROG ": out of memory\n");
            status = TOOL_USAGE;
        }
    }
    for (uint32_t d = 0; status == TOOL_OK && d < wl->devices; d++)
        if (qemu_dev_init(q, d) < 0) {
            usage_error("device sizes too large");
            status = TOOL_USAGE;
        }
    if (status == TOOL_OK && wl->devices) {
        q->n_init =
            chunks_for(q->devs[0].gen[MS_PHASE_INITIAL].total, q->chunk_max);
        q->n_mid =
            chunks_for(q->devs[0].gen[MS_PHASE_MIDDLE].total, q->chunk_max);
        q->init_only = wl->switchover_ack && q->n_init == 0;
    }
    return status;
}

/* -o OUT (not BASE itself) or stdout; 0 or an exit code. */
static int qemu_open_output(qemu_synth *q, FILE **f)
{
    const workload *wl = q->wl;
    struct stat os, bs;
    if (!wl->to_stdout && stat(wl->out_dir, &os) == 0 &&
        stat(wl->qemu_base, &bs) == 0 && os.st_dev == bs.st_dev &&
        os.st_ino == bs.st_ino) {
        /* truncating it would pull BASE's pages from under the mapping */
        fprintf(stderr, PROG ": %s: the output is BASE itself\n", wl->out_dir);
        return TOOL_USAGE;
    }
    q->out_name = wl->to_stdout ? "<stdout>" : wl->out_dir;
    *f = wl->to_stdout ? stdout : fopen(wl->out_dir, "wb");
    if (!*f)
        return io_error(wl->out_dir, errno);
    enc_out_file(&q->out, *f);
    return TOOL_OK;
}

/* Write the stream, close it, and check the plan and the generators
 * agreed on every byte. */
static int qemu_write(qemu_synth *q, FILE *f)
{
    write_qemu_stream(q);
    int close_err = close_output(f);
    int err = q->out.err ? q->out.err : close_err;
    if (err)
        return io_error(q->out_name, err);
    if (q->expect_err)
        return TOOL_USAGE;
    int status = TOOL_OK;
    for (uint32_t d = 0; status == TOOL_OK && d < q->wl->devices; d++)
        for (int p = MS_PHASE_INITIAL; p <= MS_PHASE_FINAL; p++)
            if (gen_next(&q->devs[d].gen[p], q->buf, 1) != 0) {
                fprintf(stderr,
                        PROG ": internal: device %u phase %s "
                             "not fully written\n",
                        d, phase_file[p]);
                status = TOOL_INVALID;
            }
    return status;
}

int qemu_mode(const workload *wl)
{
    qemu_synth q = {.wl = wl};
    q.base.path = wl->qemu_base;
    q.chunk_max =
        wl->packet_size_set ? (size_t)wl->packet_size : QEMU_CHUNK_DEFAULT;
    FILE *f = NULL;
    int status = qemu_prepare(&q);
    if (status == TOOL_OK)
        status = write_expect_files(&q);
    if (status == TOOL_OK)
        status = qemu_open_output(&q, &f);
    if (status == TOOL_OK)
        status = qemu_write(&q, f);
    free_base(&q.base);
    qemu_devs_free(&q);
    free(q.buf);
    return status;
}
