/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* The multi-channel set: device-state packet images spread over channels
 * in any order (built by hand so the order is ours), reassembly in index
 * order, and the cross-channel errors of spec sections 5.5 and 6. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mig_format.h"
#include "test_util.h"

#define DEV 1u
#define IDSTR "0000:00:02.0/vfio"
#define NPKT 10

/* ---- the standard packet image: 10 data packets and a config packet ---- */
static uint8_t D[2000];  /* image bytes */
static size_t D_len;
static size_t P_off[NPKT + 1]; /* packet i covers D[P_off[i], P_off[i+1]) */
static uint8_t C[21];    /* config bytes */

static void init_data(void)
{
    tb_fill_random(D, sizeof D, 77);
    tb_fill_random(C, sizeof C, 78);
    size_t off = 0;
    for (int i = 0; i < NPKT; i++) {
        P_off[i] = off;
        off += 37 + 13 * (size_t)i;
    }
    P_off[NPKT] = off;
    D_len = off;
}

typedef struct pk {
    uint32_t ch;    /* channel it is written on */
    uint32_t idx;
    uint32_t flags; /* MIG_PACKET_FLAG_CONFIG */
    const uint8_t *d;
    size_t len;
    uint32_t seq;
} pk;

typedef struct plan {
    pk p[64];
    size_t n;
} plan;

/* Data packets 0..9 and the config packet at idx 10, in a shuffled order
 * over nch channels; seed 0: in order, round robin. */
static void std_plan(plan *pl, uint32_t nch, uint64_t seed)
{
    pl->n = 0;
    for (uint32_t i = 0; i <= NPKT; i++) {
        pk *q = &pl->p[pl->n++];
        q->idx = i;
        q->seq = 0;
        if (i < NPKT) {
            q->flags = 0;
            q->d = D + P_off[i];
            q->len = P_off[i + 1] - P_off[i];
        } else {
            q->flags = MIG_PACKET_FLAG_CONFIG;
            q->d = C;
            q->len = sizeof C;
        }
        q->ch = i % nch;
    }
    if (!seed)
        return;
    uint64_t st = seed;
    for (size_t i = pl->n - 1; i > 0; i--) {
        size_t j = (size_t)(tb_rand(&st) % (i + 1));
        pk t = pl->p[i];
        pl->p[i] = pl->p[j];
        pl->p[j] = t;
    }
    for (size_t i = 0; i < pl->n; i++)
        pl->p[i].ch = (uint32_t)(tb_rand(&st) % nch);
}

static void plan_remove_idx(plan *pl, uint32_t idx)
{
    for (size_t i = 0; i < pl->n; i++)
        if (pl->p[i].idx == idx) {
            memmove(&pl->p[i], &pl->p[i + 1],
                    (pl->n - i - 1) * sizeof pl->p[0]);
            pl->n--;
            return;
        }
}

static pk *plan_find(plan *pl, uint32_t idx)
{
    for (size_t i = 0; i < pl->n; i++)
        if (pl->p[i].idx == idx)
            return &pl->p[i];
    return NULL;
}

typedef struct iend {
    uint64_t length, hash, units, cfg_len, cfg_hash;
} iend;

/* The format version pset_begin writes: 1, or 2 for the tests run with
 * the v2 setup (the set checks 2.x images from unit hashes, spec 5.4). */
static uint16_t set_major = 1;

static int v2_setup(void **state)
{
    (void)state;
    set_major = 2;
    return 0;
}

static int v2_teardown(void **state)
{
    (void)state;
    set_major = 1;
    return 0;
}

/* IMAGE_END's image_hash of the standard image: 1.x of D's bytes, 2.x of
 * the le64 XXH3-64 of each data packet in idx order. */
static uint64_t std_hash(void)
{
    if (set_major < 2)
        return tb_hash(D, D_len);
    uint8_t le[NPKT * 8];
    for (int i = 0; i < NPKT; i++)
        tb_set_le64(le + 8 * i, tb_hash(D + P_off[i], P_off[i + 1] - P_off[i]));
    return tb_hash(le, sizeof le);
}

static iend std_end(void)
{
    iend e = {D_len, std_hash(), NPKT, sizeof C, tb_hash(C, sizeof C)};
    return e;
}

typedef struct pset {
    tb_stream ch[4];
    uint32_t n;
} pset;

/* Headers (uuid_a, channel i of `count`) and DEVICE 1 on every channel. */
static void pset_begin(pset *ps, uint32_t n, uint32_t count)
{
    ps->n = n;
    for (uint32_t i = 0; i < n; i++) {
        tb_stream_init(&ps->ch[i]);
        tb_header_ex(&ps->ch[i], tb_magic, set_major, 0, 0, tb_uuid_a, i,
                     count, 0, 0);
        tb_device(&ps->ch[i], DEV, IDSTR, MS_PAYLOAD_MLX5);
    }
}

static void pset_packets(pset *ps, const plan *pl)
{
    for (size_t i = 0; i < pl->n; i++) {
        const pk *q = &pl->p[i];
        tb_packet(&ps->ch[q->ch], DEV, q->seq, q->idx, q->flags, q->d,
                  q->len);
    }
}

static void pset_end(pset *ps)
{
    for (uint32_t i = 0; i < ps->n; i++)
        tb_end_auto(&ps->ch[i], 100 + i);
}

static void pset_free(pset *ps)
{
    for (uint32_t i = 0; i < ps->n; i++)
        tb_stream_free(&ps->ch[i]);
}

/* The standard layout: the image's home channel is 0. */
static void build_std(pset *ps, uint32_t nch, const plan *pl, iend e)
{
    pset_begin(ps, nch, nch);
    tb_image_begin(&ps->ch[0], DEV, 0, MS_PHASE_FINAL, MS_TRANSPORT_PACKETS,
                   0, 5);
    pset_packets(ps, pl);
    tb_image_end(&ps->ch[0], DEV, 0, e.length, e.hash, e.units, 6, e.cfg_len,
                 e.cfg_hash);
    pset_end(ps);
}

/* ---- expectations ------------------------------------------------------- */
static const struct {
    size_t slice;
    uint64_t seed;
} modes[] = {{0, 0}, {1, 0}, {7, 0}, {50, 3}, {9, 1234}};
#define NMODES (sizeof modes / sizeof modes[0])

static void expect_set_err_(int line, const pset *ps, const ms_options *o,
                            ms_error code, const char *detail_has)
{
    int bad = 0;
    for (size_t m = 0; m < NMODES; m++) {
        tb_result r;
        tb_run_set_streams(ps->ch, ps->n, o, modes[m].slice, modes[m].seed,
                           &r);
        if (r.rc == 0 || r.err.code != code ||
            (detail_has && !strstr(r.err.detail, detail_has))) {
            print_message("line %d (slice %zu seed %llu): expected %s%s%s; "
                          "got rc %d, %s at %llu%s: %s\n",
                          line, modes[m].slice,
                          (unsigned long long)modes[m].seed,
                          ms_error_name(code),
                          detail_has ? " naming " : "",
                          detail_has ? detail_has : "", r.rc,
                          ms_error_name(r.err.code),
                          (unsigned long long)r.err.offset,
                          r.err_from_set ? " (set)" : " (reader)",
                          r.err.detail);
            bad = 1;
        }
        tb_result_free(&r);
    }
    if (bad)
        fail();
}
#define EXPECT_SET_ERR(ps, code) expect_set_err_(__LINE__, ps, NULL, code, NULL)

/* Run every mode; the image must come out as D with config C. */
static void expect_assembled_(int line, const pset *ps, const ms_options *o)
{
    int bad = 0;
    for (size_t m = 0; m < NMODES; m++) {
        tb_result r;
        tb_run_set_streams(ps->ch, ps->n, o, modes[m].slice, modes[m].seed,
                           &r);
        const char *why = NULL;
        tb_image *im = tb_result_image(&r, DEV, 0);
        if (r.rc != 0)
            why = "failed";
        else if (!im || !im->assembled)
            why = "no image-assembled event";
        else if (im->data.len != D_len || memcmp(im->data.p, D, D_len))
            why = "reassembled bytes differ (or not in index order)";
        else if (im->config.len != sizeof C ||
                 memcmp(im->config.p, C, sizeof C))
            why = "config bytes differ";
        else if (im->asm_info.length != D_len ||
                 im->asm_info.hash != std_hash() ||
                 im->asm_info.unit_count != NPKT ||
                 im->asm_info.config_length != sizeof C ||
                 im->asm_info.config_hash != tb_hash(C, sizeof C) ||
                 im->asm_info.device != DEV || im->asm_info.seq != 0)
            why = "image-assembled fields wrong";
        else if (r.data_offset_errors)
            why = "DATA image_offset not contiguous in index order";
        else if (tb_result_count(&r, MS_EV_IMAGE_ASSEMBLED) != 1)
            why = "image-assembled not exactly once";
        if (why) {
            print_message("line %d (slice %zu seed %llu): %s; rc %d %s at "
                          "%llu: %s\n",
                          line, modes[m].slice,
                          (unsigned long long)modes[m].seed, why, r.rc,
                          ms_error_name(r.err.code),
                          (unsigned long long)r.err.offset, r.err.detail);
            bad = 1;
        }
        tb_result_free(&r);
    }
    if (bad)
        fail();
}
#define EXPECT_ASSEMBLED(ps, o) expect_assembled_(__LINE__, ps, o)

/* ---- reassembly --------------------------------------------------------- */
static void set_reassemble_three_channels_shuffled(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 6; seed++) {
        plan pl;
        pset ps;
        std_plan(&pl, 3, seed);
        build_std(&ps, 3, &pl, std_end());
        EXPECT_ASSEMBLED(&ps, NULL);
        pset_free(&ps);
    }
    /* fully reversed, config first */
    plan pl;
    pset ps;
    std_plan(&pl, 3, 0);
    for (size_t i = 0; i < pl.n / 2; i++) {
        pk t = pl.p[i];
        pl.p[i] = pl.p[pl.n - 1 - i];
        pl.p[pl.n - 1 - i] = t;
    }
    build_std(&ps, 3, &pl, std_end());
    EXPECT_ASSEMBLED(&ps, NULL);
    pset_free(&ps);
}

/* Every packet on channels other than the home channel. */
static void set_reassemble_all_remote(void **state)
{
    (void)state;
    plan pl;
    pset ps;
    std_plan(&pl, 3, 5);
    for (size_t i = 0; i < pl.n; i++)
        pl.p[i].ch = 1 + (uint32_t)(i % 2);
    build_std(&ps, 3, &pl, std_end());
    EXPECT_ASSEMBLED(&ps, NULL);
    pset_free(&ps);
}

static void set_reassemble_input_stable(void **state)
{
    (void)state;
    ms_options o;
    ms_options_init(&o);
    o.input_stable = 1;
    for (uint64_t seed = 1; seed <= 3; seed++) {
        plan pl;
        pset ps;
        std_plan(&pl, 3, seed);
        build_std(&ps, 3, &pl, std_end());
        EXPECT_ASSEMBLED(&ps, &o);
        pset_free(&ps);
    }
}

static void set_reassemble_single_channel(void **state)
{
    (void)state;
    plan pl;
    pset ps;
    std_plan(&pl, 1, 9);
    build_std(&ps, 1, &pl, std_end());
    EXPECT_ASSEMBLED(&ps, NULL);
    pset_free(&ps);
}

/* An image with no data packets, only an (empty) config packet. */
static void set_reassemble_config_only(void **state)
{
    (void)state;
    pset ps;
    pset_begin(&ps, 2, 2);
    tb_image_begin(&ps.ch[0], DEV, 0, 1, 1, 0, 0);
    tb_packet(&ps.ch[1], DEV, 0, 0, MIG_PACKET_FLAG_CONFIG, NULL, 0);
    tb_image_end(&ps.ch[0], DEV, 0, 0, tb_hash("", 0), 0, 0, 0,
                 tb_hash("", 0));
    pset_end(&ps);
    for (size_t m = 0; m < NMODES; m++) {
        tb_result r;
        int rc = tb_run_set_streams(ps.ch, ps.n, NULL, modes[m].slice,
                                    modes[m].seed, &r);
        if (rc)
            tb_print_err("config only", &r.err);
        assert_int_equal(rc, 0);
        tb_image *im = tb_result_image(&r, DEV, 0);
        assert_non_null(im);
        assert_true(im->assembled);
        assert_int_equal(im->asm_info.length, 0);
        assert_int_equal(im->data.len, 0);
        tb_result_free(&r);
    }
    pset_free(&ps);
}

/* Chunk images and packet images of two devices with different home
 * channels, several images each. */
static void set_mixed_images(void **state)
{
    (void)state;
    uint8_t a[500], b[300];
    tb_fill_random(a, sizeof a, 1);
    tb_fill_compressible(b, sizeof b, 2);
    pset ps;
    ps.n = 3;
    for (uint32_t i = 0; i < 3; i++) {
        tb_stream_init(&ps.ch[i]);
        tb_header(&ps.ch[i], tb_uuid_a, i, 3);
        tb_device(&ps.ch[i], 1, "dev-one", 1);
        tb_device(&ps.ch[i], 2, "dev-two", 2);
    }
    /* device 1, home 0: initial chunks, middle packets, final chunks */
    tb_chunk_image(&ps.ch[0], 1, 0, 1, a, 500, 128, 1);
    tb_image_begin(&ps.ch[0], 1, 1, 2, 1, 0, 0);
    tb_packet(&ps.ch[2], 1, 1, 1, 0, b + 100, 200);
    tb_packet(&ps.ch[1], 1, 1, 2, MIG_PACKET_FLAG_CONFIG, "cfg", 3);
    tb_packet(&ps.ch[0], 1, 1, 0, 0, b, 100);
    tb_image_end(&ps.ch[0], 1, 1, 300, tb_hash(b, 300), 2, 0, 3,
                 tb_hash("cfg", 3));
    tb_chunk_image(&ps.ch[0], 1, 2, 3, b, 300, 1000, 0);
    /* device 2, home 2: a packet image then a chunk image */
    tb_image_begin(&ps.ch[2], 2, 0, 1, 1, 0, 0);
    tb_packet(&ps.ch[0], 2, 0, 1, 0, a + 250, 250);
    tb_packet(&ps.ch[1], 2, 0, 0, 0, a, 250);
    tb_packet(&ps.ch[2], 2, 0, 2, MIG_PACKET_FLAG_CONFIG, NULL, 0);
    tb_image_end(&ps.ch[2], 2, 0, 500, tb_hash(a, 500), 2, 0, 0,
                 tb_hash("", 0));
    tb_chunk_image(&ps.ch[2], 2, 1, 3, a, 77, 10, 0);
    pset_end(&ps);
    for (size_t m = 0; m < NMODES; m++) {
        tb_result r;
        int rc = tb_run_set_streams(ps.ch, ps.n, NULL, modes[m].slice,
                                    modes[m].seed, &r);
        if (rc)
            tb_print_err("mixed", &r.err);
        assert_int_equal(rc, 0);
        tb_image *im = tb_result_image(&r, 1, 0);
        assert_non_null(im);
        assert_int_equal(im->data.len, 500);
        assert_memory_equal(im->data.p, a, 500);
        assert_false(im->assembled);
        im = tb_result_image(&r, 1, 1);
        assert_non_null(im);
        assert_true(im->assembled);
        assert_int_equal(im->data.len, 300);
        assert_memory_equal(im->data.p, b, 300);
        assert_int_equal(im->config.len, 3);
        im = tb_result_image(&r, 1, 2);
        assert_non_null(im);
        assert_int_equal(im->data.len, 300);
        assert_memory_equal(im->data.p, b, 300);
        im = tb_result_image(&r, 2, 0);
        assert_non_null(im);
        assert_true(im->assembled);
        assert_int_equal(im->data.len, 500);
        assert_memory_equal(im->data.p, a, 500);
        assert_int_equal(im->config.len, 0);
        im = tb_result_image(&r, 2, 1);
        assert_non_null(im);
        assert_int_equal(im->data.len, 77);
        assert_int_equal(tb_result_count(&r, MS_EV_IMAGE_ASSEMBLED), 2);
        tb_result_free(&r);
    }
    pset_free(&ps);
}

/* ---- packet errors (5.5) ------------------------------------------------ */
static void set_packet_duplicate(void **state)
{
    (void)state;
    plan pl;
    pset ps;
    std_plan(&pl, 3, 4);
    pk dup = *plan_find(&pl, 3);
    dup.ch = (dup.ch + 1) % 3;
    pl.p[pl.n++] = dup;
    build_std(&ps, 3, &pl, std_end());
    EXPECT_SET_ERR(&ps, MS_ERR_PACKET_DUPLICATE);
    pset_free(&ps);
    /* the config packet twice at the same idx: a duplicate idx as well */
    std_plan(&pl, 3, 4);
    dup = *plan_find(&pl, NPKT);
    dup.ch = (dup.ch + 2) % 3;
    pl.p[pl.n++] = dup;
    build_std(&ps, 3, &pl, std_end());
    expect_set_err_(__LINE__, &ps, NULL, MS_ERR_PACKET_DUPLICATE, NULL);
    pset_free(&ps);
}

static void set_packet_missing(void **state)
{
    (void)state;
    plan pl;
    pset ps;
    /* a gap below the highest idx */
    std_plan(&pl, 3, 2);
    plan_remove_idx(&pl, 4);
    build_std(&ps, 3, &pl, std_end());
    EXPECT_SET_ERR(&ps, MS_ERR_PACKET_MISSING);
    pset_free(&ps);
    /* idx 0 missing */
    std_plan(&pl, 3, 2);
    plan_remove_idx(&pl, 0);
    build_std(&ps, 3, &pl, std_end());
    EXPECT_SET_ERR(&ps, MS_ERR_PACKET_MISSING);
    pset_free(&ps);
    /* the last data packet missing: fewer data packets than unit_count
     * (the config packet's idx is unit_count, so this is a gap too) */
    std_plan(&pl, 3, 2);
    plan_remove_idx(&pl, NPKT - 1);
    build_std(&ps, 3, &pl, std_end());
    EXPECT_SET_ERR(&ps, MS_ERR_PACKET_MISSING);
    pset_free(&ps);
}

/* No CONFIG packet: data packets 0..9 all present and unit_count 10, so
 * there is no gap below the highest idx and no shortfall against
 * unit_count; 5.5 names this case packet-config. */
static void set_packet_config_missing(void **state)
{
    (void)state;
    plan pl;
    pset ps;
    std_plan(&pl, 3, 6);
    plan_remove_idx(&pl, NPKT);
    build_std(&ps, 3, &pl, std_end());
    EXPECT_SET_ERR(&ps, MS_ERR_PACKET_CONFIG);
    pset_free(&ps);
}

static void set_packet_config(void **state)
{
    (void)state;
    plan pl;
    pset ps;
    /* a second config packet (at idx unit_count + 1) */
    std_plan(&pl, 3, 6);
    pk extra = *plan_find(&pl, NPKT);
    extra.idx = NPKT + 1;
    extra.ch = 1;
    pl.p[pl.n++] = extra;
    build_std(&ps, 3, &pl, std_end());
    EXPECT_SET_ERR(&ps, MS_ERR_PACKET_CONFIG);
    pset_free(&ps);
    /* the config packet not at idx unit_count: data 0..3 and 5, config 4,
     * unit_count 5 — no idx missing, none doubled */
    std_plan(&pl, 3, 6);
    for (uint32_t i = 5; i <= NPKT; i++)
        plan_remove_idx(&pl, i);
    pk *c4 = plan_find(&pl, 4);
    pk d5 = *c4;
    c4->flags = MIG_PACKET_FLAG_CONFIG;
    c4->d = C;
    c4->len = sizeof C;
    d5.idx = 5;
    pl.p[pl.n++] = d5;
    /* data packets 0..3 and 5 carry D[0, P_off[5]) */
    iend e = {P_off[5], tb_hash(D, P_off[5]), 5, sizeof C,
              tb_hash(C, sizeof C)};
    build_std(&ps, 3, &pl, e);
    EXPECT_SET_ERR(&ps, MS_ERR_PACKET_CONFIG);
    pset_free(&ps);
}

static void set_packet_orphan(void **state)
{
    (void)state;
    pset ps;
    uint8_t a[64];
    tb_fill_random(a, sizeof a, 3);
    /* a packet for a chunk-mode image (on another channel) */
    pset_begin(&ps, 2, 2);
    tb_chunk_image(&ps.ch[0], DEV, 0, 1, a, 64, 32, 0);
    tb_packet(&ps.ch[1], DEV, 0, 0, 0, a, 10);
    pset_end(&ps);
    EXPECT_SET_ERR(&ps, MS_ERR_PACKET_ORPHAN);
    pset_free(&ps);
    /* ... even when it comes first in the other channel */
    pset_begin(&ps, 2, 2);
    tb_packet(&ps.ch[1], DEV, 0, 0, 0, a, 10);
    tb_chunk_image(&ps.ch[0], DEV, 0, 1, a, 64, 32, 0);
    pset_end(&ps);
    EXPECT_SET_ERR(&ps, MS_ERR_PACKET_ORPHAN);
    pset_free(&ps);
    /* a packet for an image never begun */
    pset_begin(&ps, 2, 2);
    tb_packet(&ps.ch[1], DEV, 0, 0, 0, a, 10);
    tb_packet(&ps.ch[1], DEV, 0, 1, MIG_PACKET_FLAG_CONFIG, a, 1);
    pset_end(&ps);
    EXPECT_SET_ERR(&ps, MS_ERR_PACKET_ORPHAN);
    pset_free(&ps);
    /* a packet for the seq after the last image */
    plan pl;
    std_plan(&pl, 2, 8);
    pk stray = pl.p[0];
    stray.seq = 1;
    stray.ch = 1;
    stray.flags = 0;
    stray.idx = 0;
    stray.d = a;
    stray.len = 10;
    pl.p[pl.n++] = stray;
    build_std(&ps, 2, &pl, std_end());
    EXPECT_SET_ERR(&ps, MS_ERR_PACKET_ORPHAN);
    pset_free(&ps);
}

static void set_image_hash_and_length(void **state)
{
    (void)state;
    plan pl;
    pset ps;
    iend e;
    std_plan(&pl, 3, 10);
    e = std_end();
    e.hash ^= 0x100;
    build_std(&ps, 3, &pl, e);
    EXPECT_SET_ERR(&ps, MS_ERR_IMAGE_HASH);
    pset_free(&ps);
    /* config hash */
    e = std_end();
    e.cfg_hash ^= 1;
    build_std(&ps, 3, &pl, e);
    EXPECT_SET_ERR(&ps, MS_ERR_IMAGE_HASH);
    pset_free(&ps);
    /* one data byte changed in a packet (its record checks are right) */
    uint8_t alt[200];
    pk *q = plan_find(&pl, 6);
    memcpy(alt, q->d, q->len);
    alt[5] ^= 0x55;
    q->d = alt;
    build_std(&ps, 3, &pl, std_end());
    EXPECT_SET_ERR(&ps, MS_ERR_IMAGE_HASH);
    pset_free(&ps);
    /* length */
    std_plan(&pl, 3, 10);
    e = std_end();
    e.length += 1;
    build_std(&ps, 3, &pl, e);
    EXPECT_SET_ERR(&ps, MS_ERR_IMAGE_LENGTH);
    pset_free(&ps);
    /* config_length wrong: image-length (section 8) */
    e = std_end();
    e.cfg_len -= 1;
    build_std(&ps, 3, &pl, e);
    EXPECT_SET_ERR(&ps, MS_ERR_IMAGE_LENGTH);
    pset_free(&ps);
}

/* ---- channel set (6) ---------------------------------------------------- */
static void set_channel_uuid(void **state)
{
    (void)state;
    pset ps;
    ps.n = 2;
    tb_stream_init(&ps.ch[0]);
    tb_header(&ps.ch[0], tb_uuid_a, 0, 2);
    tb_end_auto(&ps.ch[0], 0);
    tb_stream_init(&ps.ch[1]);
    tb_header(&ps.ch[1], tb_uuid_b, 1, 2);
    tb_end_auto(&ps.ch[1], 0);
    EXPECT_SET_ERR(&ps, MS_ERR_CHANNEL_UUID);
    pset_free(&ps);
}

static void hdr_only(pset *ps, const uint32_t *idx, const uint32_t *count,
                     uint32_t n)
{
    ps->n = n;
    for (uint32_t i = 0; i < n; i++) {
        tb_stream_init(&ps->ch[i]);
        tb_header(&ps->ch[i], tb_uuid_a, idx[i], count[i]);
        tb_end_auto(&ps->ch[i], 0);
    }
}

static void set_channel_set(void **state)
{
    (void)state;
    pset ps;
    /* the same index twice */
    {
        uint32_t idx[] = {0, 0}, cnt[] = {2, 2};
        hdr_only(&ps, idx, cnt, 2);
        EXPECT_SET_ERR(&ps, MS_ERR_CHANNEL_SET);
        pset_free(&ps);
    }
    {
        uint32_t idx[] = {1, 0, 1}, cnt[] = {3, 3, 3};
        hdr_only(&ps, idx, cnt, 3);
        EXPECT_SET_ERR(&ps, MS_ERR_CHANNEL_SET);
        pset_free(&ps);
    }
    /* channel_count differs */
    {
        uint32_t idx[] = {0, 1}, cnt[] = {2, 3};
        hdr_only(&ps, idx, cnt, 2);
        EXPECT_SET_ERR(&ps, MS_ERR_CHANNEL_SET);
        pset_free(&ps);
    }
    /* a channel missing: 2 of 3, and 0 and 2 of 3 */
    {
        uint32_t idx[] = {0, 1}, cnt[] = {3, 3};
        hdr_only(&ps, idx, cnt, 2);
        EXPECT_SET_ERR(&ps, MS_ERR_CHANNEL_SET);
        pset_free(&ps);
    }
    {
        uint32_t idx[] = {2, 0}, cnt[] = {3, 3};
        hdr_only(&ps, idx, cnt, 2);
        EXPECT_SET_ERR(&ps, MS_ERR_CHANNEL_SET);
        pset_free(&ps);
    }
    /* one channel of a two-channel migration, alone */
    {
        uint32_t idx[] = {1}, cnt[] = {2};
        hdr_only(&ps, idx, cnt, 1);
        EXPECT_SET_ERR(&ps, MS_ERR_CHANNEL_SET);
        pset_free(&ps);
    }
    /* and all present, in any slot order: valid */
    {
        uint32_t idx[] = {2, 0, 1}, cnt[] = {3, 3, 3};
        hdr_only(&ps, idx, cnt, 3);
        for (size_t m = 0; m < NMODES; m++) {
            tb_result r;
            int rc = tb_run_set_streams(ps.ch, ps.n, NULL, modes[m].slice,
                                        modes[m].seed, &r);
            if (rc)
                tb_print_err("complete set", &r.err);
            assert_int_equal(rc, 0);
            tb_result_free(&r);
        }
        pset_free(&ps);
    }
}

/* A channel whose reader fails makes the set invalid (the driver reports
 * the reader's error); a set given a channel that was never finished must
 * not be reported valid. */
static void set_channel_not_done(void **state)
{
    (void)state;
    pset ps;
    uint32_t idx[] = {0, 1}, cnt[] = {2, 2};
    hdr_only(&ps, idx, cnt, 2);
    ms_set *s = ms_set_create(NULL);
    assert_non_null(s);
    for (uint32_t c = 0; c < 2; c++) {
        ms_reader *r = ms_reader_create(NULL);
        assert_non_null(r);
        assert_int_equal(ms_reader_input(r, ps.ch[c].b.p, ps.ch[c].b.len),
                         0);
        ms_event ev;
        int k;
        while ((k = ms_reader_next(r, &ev)) == MS_NEXT_EVENT) {
            assert_int_equal(ms_set_observe(s, c, &ev), 0);
            while ((k = ms_set_next(s, &ev)) == MS_NEXT_EVENT)
                ;
            assert_int_equal(k, MS_NEXT_INPUT);
        }
        assert_int_equal(ms_reader_finish(r), 0);
        if (c == 0)
            assert_int_equal(ms_set_channel_done(s, c), 0);
        /* channel 1: its END was observed, but channel_done not called */
        ms_reader_free(r);
    }
    if (ms_set_finish(s) == 0) {
        print_message("set_finish accepted a set with a channel never "
                      "reported done\n");
        fail();
    }
    ms_set_free(s);
    pset_free(&ps);
}

static void set_device_declared_differently(void **state)
{
    (void)state;
    for (int k = 0; k < 4; k++) {
        pset ps;
        ps.n = 2;
        for (uint32_t i = 0; i < 2; i++) {
            tb_stream_init(&ps.ch[i]);
            tb_header(&ps.ch[i], tb_uuid_a, i, 2);
        }
        tb_device_ex(&ps.ch[0], DEV, 3, MS_PAYLOAD_MLX5, IDSTR, "cc", 2);
        switch (k) {
        case 0: /* another idstr */
            tb_device_ex(&ps.ch[1], DEV, 3, MS_PAYLOAD_MLX5,
                         "0000:00:09.0/vfio", "cc", 2);
            break;
        case 1: /* another kind */
            tb_device_ex(&ps.ch[1], DEV, 3, MS_PAYLOAD_QAT, IDSTR, "cc", 2);
            break;
        case 2: /* another instance id */
            tb_device_ex(&ps.ch[1], DEV, 4, MS_PAYLOAD_MLX5, IDSTR, "cc", 2);
            break;
        default: /* other compatibility data */
            tb_device_ex(&ps.ch[1], DEV, 3, MS_PAYLOAD_MLX5, IDSTR, "cd", 2);
            break;
        }
        pset_end(&ps);
        expect_set_err_(__LINE__, &ps, NULL, MS_ERR_DEVICE_DUPLICATE, NULL);
        pset_free(&ps);
    }
}

static void set_image_two_channels(void **state)
{
    (void)state;
    uint8_t a[40];
    tb_fill_random(a, sizeof a, 8);
    pset ps;
    pset_begin(&ps, 2, 2);
    tb_chunk_image(&ps.ch[0], DEV, 0, 1, a, 40, 40, 0);
    tb_chunk_image(&ps.ch[1], DEV, 0, 1, a, 40, 40, 0);
    pset_end(&ps);
    EXPECT_SET_ERR(&ps, MS_ERR_IMAGE_STATE);
    pset_free(&ps);
    /* a packet image begun on one channel, a chunk image on the other */
    pset_begin(&ps, 2, 2);
    tb_chunk_image(&ps.ch[1], DEV, 0, 2, a, 40, 40, 0);
    tb_image_begin(&ps.ch[0], DEV, 0, 3, 1, 0, 0);
    tb_packet(&ps.ch[0], DEV, 0, 0, 0, a, 40);
    tb_packet(&ps.ch[0], DEV, 0, 1, 1, NULL, 0);
    tb_image_end(&ps.ch[0], DEV, 0, 40, tb_hash(a, 40), 1, 0, 0,
                 tb_hash("", 0));
    pset_end(&ps);
    EXPECT_SET_ERR(&ps, MS_ERR_IMAGE_STATE);
    pset_free(&ps);
}

/* ---- limits ------------------------------------------------------------- */
static void set_limit_buffered_bytes(void **state)
{
    (void)state;
    /* one channel: idx 0..12 in order, then 14..40, then 13 (16 bytes
     * each); out-of-order bytes held while waiting for idx 13 reach
     * 27 * 16 = 432 > 300 */
    uint8_t img[41 * 16];
    tb_fill_random(img, sizeof img, 13);
    pset ps;
    pset_begin(&ps, 1, 1);
    tb_image_begin(&ps.ch[0], DEV, 0, 1, 1, 0, 0);
    for (uint32_t i = 0; i <= 40; i++) {
        uint32_t idx = i <= 12 ? i : i == 40 ? 13 : i + 1;
        tb_packet(&ps.ch[0], DEV, 0, idx, 0, img + 16 * idx, 16);
    }
    tb_packet(&ps.ch[0], DEV, 0, 41, 1, "c", 1);
    tb_image_end(&ps.ch[0], DEV, 0, sizeof img, tb_hash(img, sizeof img), 41,
                 0, 1, tb_hash("c", 1));
    pset_end(&ps);

    /* with the default limit it reassembles */
    tb_result r;
    int rc = tb_run_set_streams(ps.ch, 1, NULL, 0, 0, &r);
    if (rc)
        tb_print_err("default limit", &r.err);
    assert_int_equal(rc, 0);
    tb_image *im = tb_result_image(&r, DEV, 0);
    assert_non_null(im);
    assert_int_equal(im->data.len, sizeof img);
    assert_memory_equal(im->data.p, img, sizeof img);
    tb_result_free(&r);

    ms_options o;
    ms_options_init(&o);
    o.max_buffered_bytes = 300;
    for (size_t m = 0; m < NMODES; m++) {
        rc = tb_run_set_streams(ps.ch, 1, &o, modes[m].slice, modes[m].seed,
                                &r);
        if (rc == 0 || r.err.code != MS_ERR_LIMIT ||
            !strstr(r.err.detail, "max_buffered_bytes") ||
            !tb_detail_has_number(r.err.detail, 13)) {
            print_message("slice %zu: expected limit naming "
                          "max_buffered_bytes and idx 13; got rc %d, %s: "
                          "%s\n",
                          modes[m].slice, rc, ms_error_name(r.err.code),
                          r.err.detail);
            fail();
        }
        tb_result_free(&r);
    }
    pset_free(&ps);
}

static void set_limit_packets_and_channels(void **state)
{
    (void)state;
    plan pl;
    pset ps;
    std_plan(&pl, 3, 11);
    build_std(&ps, 3, &pl, std_end());
    ms_options o;
    ms_options_init(&o);
    o.max_packets = 4;
    expect_set_err_(__LINE__, &ps, &o, MS_ERR_LIMIT, "max_packets");
    ms_options_init(&o);
    o.max_channels = 2;
    expect_set_err_(__LINE__, &ps, &o, MS_ERR_LIMIT, "max_channels");
    o.max_channels = 3;
    EXPECT_ASSEMBLED(&ps, &o);
    pset_free(&ps);
}

/* ---- API ---------------------------------------------------------------- */
static void set_api_defaults_and_sticky(void **state)
{
    (void)state;
    ms_set *s = ms_set_create(NULL);
    assert_non_null(s);
    assert_int_equal(ms_set_error(s)->code, MS_ERR_OK);
    ms_set_free(s);
    ms_set_free(NULL);
    ms_options o;
    ms_options_init(&o);
    o.struct_size = 3;
    assert_null(ms_set_create(&o));

    /* after a set error every call fails with it */
    pset ps;
    ps.n = 2;
    tb_stream_init(&ps.ch[0]);
    tb_header(&ps.ch[0], tb_uuid_a, 0, 2);
    tb_end_auto(&ps.ch[0], 0);
    tb_stream_init(&ps.ch[1]);
    tb_header(&ps.ch[1], tb_uuid_b, 1, 2);
    tb_end_auto(&ps.ch[1], 0);
    s = ms_set_create(NULL);
    assert_non_null(s);
    int failed = 0;
    for (uint32_t c = 0; c < 2 && !failed; c++) {
        ms_reader *r = ms_reader_create(NULL);
        assert_int_equal(ms_reader_input(r, ps.ch[c].b.p, ps.ch[c].b.len),
                         0);
        ms_event ev;
        while (!failed && ms_reader_next(r, &ev) == MS_NEXT_EVENT) {
            if (ms_set_observe(s, c, &ev) != 0)
                failed = 1;
            else
                while (ms_set_next(s, &ev) == MS_NEXT_EVENT)
                    ;
        }
        if (!failed) {
            assert_int_equal(ms_reader_finish(r), 0);
            if (ms_set_channel_done(s, c) != 0)
                failed = 1;
        }
        ms_reader_free(r);
    }
    if (!failed)
        failed = ms_set_finish(s) != 0;
    assert_true(failed);
    ms_error_info first = *ms_set_error(s);
    assert_int_equal(first.code, MS_ERR_CHANNEL_UUID);
    ms_event ev;
    memset(&ev, 0, sizeof ev);
    assert_int_equal(ms_set_next(s, &ev), MS_NEXT_ERROR);
    assert_int_not_equal(ms_set_finish(s), 0);
    assert_int_not_equal(ms_set_channel_done(s, 0), 0);
    ev.kind = MS_EV_END;
    assert_int_not_equal(ms_set_observe(s, 0, &ev), 0);
    assert_int_equal(ms_set_error(s)->code, first.code);
    assert_string_equal(ms_set_error(s)->detail, first.detail);
    ms_set_free(s);
    pset_free(&ps);
}

static int setup(void **state)
{
    (void)state;
    init_data();
    return 0;
}

/* A 1.0 channel and a 2.0 channel are not one migration (spec 6). */
static void set_two_versions(void **state)
{
    (void)state;
    plan pl;
    pset ps;
    std_plan(&pl, 2, 0);
    build_std(&ps, 2, &pl, std_end());
    tb_stream one;
    tb_stream_init(&one);
    tb_header_ex(&one, tb_magic, 1, 0, 0, tb_uuid_a, 1, 2, 0, 0);
    tb_device(&one, DEV, IDSTR, MS_PAYLOAD_MLX5);
    tb_end_auto(&one, 0);
    tb_stream_free(&ps.ch[1]);
    ps.ch[1] = one;
    EXPECT_SET_ERR(&ps, MS_ERR_CHANNEL_SET);
    pset_free(&ps);
}

#define V2(f) cmocka_unit_test_setup_teardown(f, v2_setup, v2_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(set_reassemble_three_channels_shuffled),
        cmocka_unit_test(set_reassemble_all_remote),
        cmocka_unit_test(set_reassemble_input_stable),
        cmocka_unit_test(set_reassemble_single_channel),
        cmocka_unit_test(set_reassemble_config_only),
        cmocka_unit_test(set_mixed_images),
        cmocka_unit_test(set_packet_duplicate),
        cmocka_unit_test(set_packet_missing),
        cmocka_unit_test(set_packet_config_missing),
        cmocka_unit_test(set_packet_config),
        cmocka_unit_test(set_packet_orphan),
        cmocka_unit_test(set_image_hash_and_length),
        cmocka_unit_test(set_channel_uuid),
        cmocka_unit_test(set_channel_set),
        cmocka_unit_test(set_channel_not_done),
        cmocka_unit_test(set_device_declared_differently),
        cmocka_unit_test(set_image_two_channels),
        cmocka_unit_test(set_limit_buffered_bytes),
        cmocka_unit_test(set_limit_packets_and_channels),
        cmocka_unit_test(set_api_defaults_and_sticky),
        /* packet images again, as 2.0 */
        V2(set_reassemble_three_channels_shuffled),
        V2(set_reassemble_all_remote),
        V2(set_reassemble_input_stable),
        V2(set_reassemble_single_channel),
        V2(set_reassemble_config_only),
        V2(set_image_hash_and_length),
        V2(set_two_versions),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
