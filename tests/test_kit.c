/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* The decoder kit (libstream/core/kit.h): the stage runner and data views,
 * driven with a small stage table of the test's own, not through a
 * framing (every framing's tests exercise the kit through real streams). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "kit.h"

enum t_stage { T_FIRST = 0x7400, T_SECOND, T_EVENT, T_SILENT_ERROR, T_DONE };

/* What the test stages do; they find it through r->framing. */
typedef struct t_state {
    int stage;
    int first_runs, second_runs;
} t_state;

/* walks on without an event */
static int t_first(ms_reader *r)
{
    t_state *st = r->framing;
    st->first_runs++;
    st->stage = T_SECOND;
    return MS_GO_ON;
}

/* makes progress twice without an event, then moves on */
static int t_second(ms_reader *r)
{
    t_state *st = r->framing;
    if (++st->second_runs < 3)
        return MS_GO_ON;
    st->stage = T_EVENT;
    return MS_GO_ON;
}

static int t_event(ms_reader *r, ms_event *ev)
{
    t_state *st = r->framing;
    ev->kind = MS_EV_QEMU_EOF;
    st->stage = T_DONE;
    return MS_NEXT_EVENT;
}

/* returns an error without recording one (a decoder bug) */
static int t_silent_error(ms_reader *r)
{
    (void)r;
    return MS_NEXT_ERROR;
}

#define AT(stage) [(stage)-T_FIRST]
static const ms_stage t_stages[] = {
    AT(T_FIRST) = {"FIRST", .walk = t_first},
    AT(T_SECOND) = {"SECOND", .walk = t_second},
    AT(T_EVENT) = {"EVENT", .emit = t_event},
    AT(T_SILENT_ERROR) = {"SILENT_ERROR", .walk = t_silent_error},
    AT(T_DONE) = {"DONE", .ends_after = "the test stream"},
};
#undef AT
static const ms_stage_table t_table = MS_STAGE_TABLE(T_FIRST, t_stages);

static ms_reader *new_reader(t_state *st)
{
    ms_reader *r = ms_reader_create(NULL);
    assert_non_null(r);
    memset(st, 0, sizeof *st);
    st->stage = T_FIRST;
    r->framing = st; /* the test's: not freed by ms_reader_free */
    return r;
}

static void free_reader(ms_reader *r)
{
    r->framing = NULL;
    ms_reader_free(r);
}

/* GO_ON runs the next stage at once; an event returns; the end stage asks
 * for input while none is pending. */
static void test_runner_walks_to_event(void **state)
{
    (void)state;
    t_state st;
    ms_reader *r = new_reader(&st);
    ms_event ev;
    memset(&ev, 0, sizeof ev);
    assert_int_equal(ms_run_stages(r, &ev, &t_table, &st.stage), MS_NEXT_EVENT);
    assert_int_equal(ev.kind, MS_EV_QEMU_EOF);
    assert_int_equal(st.first_runs, 1);
    assert_int_equal(st.second_runs, 3);
    assert_int_equal(st.stage, T_DONE);
    assert_int_equal(ms_run_stages(r, &ev, &t_table, &st.stage), MS_NEXT_INPUT);
    assert_int_equal(ms_reader_error(r)->code, MS_ERR_OK);
    free_reader(r);
}

/* An end stage: a further byte is trailing data, at its offset. */
static void test_runner_end_stage(void **state)
{
    (void)state;
    t_state st;
    ms_reader *r = new_reader(&st);
    st.stage = T_DONE;
    ms_event ev;
    assert_int_equal(ms_reader_input(r, "xyz", 3), 0);
    assert_int_equal(ms_run_stages(r, &ev, &t_table, &st.stage), MS_NEXT_ERROR);
    const ms_error_info *e = ms_reader_error(r);
    assert_int_equal(e->code, MS_ERR_TRAILING_DATA);
    assert_int_equal(e->offset, 0);
    assert_string_equal(e->detail, "3 bytes after the test stream");
    free_reader(r);
}

/* Stages outside the table, and an error without a code, are caught. */
static void test_runner_catches_bugs(void **state)
{
    (void)state;
    t_state st;
    ms_event ev;
    const int bad[] = {0, T_FIRST - 1, T_DONE + 1};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ms_reader *r = new_reader(&st);
        st.stage = bad[i];
        assert_int_equal(ms_run_stages(r, &ev, &t_table, &st.stage),
                         MS_NEXT_ERROR);
        assert_int_equal(ms_reader_error(r)->code, MS_ERR_USAGE);
        assert_string_equal(ms_reader_error(r)->detail,
                            "internal: invalid decoder stage");
        free_reader(r);
    }
    ms_reader *r = new_reader(&st);
    st.stage = T_SILENT_ERROR;
    assert_int_equal(ms_run_stages(r, &ev, &t_table, &st.stage), MS_NEXT_ERROR);
    assert_int_equal(ms_reader_error(r)->code, MS_ERR_USAGE);
    assert_string_equal(ms_reader_error(r)->detail,
                        "internal: stage SILENT_ERROR failed without an "
                        "error code");
    free_reader(r);
}

/* Views of the caller's input are zero copy and consume what they show;
 * bytes given back into the stash come out as views that are not. */
static void test_data_views(void **state)
{
    (void)state;
    t_state st;
    ms_reader *r = new_reader(&st);
    ms_event ev;
    ms_data_info *d = NULL;
    static const uint8_t a[] = "ab", b[] = "cdefgh";
    assert_int_equal(ms_rd_view(r, &ev, 4, &d), 0); /* no input yet */
    assert_int_equal(ms_reader_input(r, a, 2), 0);
    const uint8_t *p;
    /* a 3-byte unit split across slices: gathered, then given back */
    assert_int_equal(ms_rd_take_reserved(r, 3, &p), 0);
    assert_int_equal(ms_reader_input(r, b, 6), 0);
    assert_int_equal(ms_rd_take_reserved(r, 3, &p), 1);
    assert_memory_equal(p, "abc", 3);
    ms_rd_untake(r);
    assert_int_equal(ms_rd_view(r, &ev, 100, &d), 3);
    assert_int_equal(ev.kind, MS_EV_DATA);
    assert_ptr_equal(d, &ev.u.data);
    assert_int_equal(ev.offset, 0);
    assert_int_equal(ev.length, 3);
    assert_int_equal(d->stream_offset, 0);
    assert_int_equal(d->zero_copy, 0);
    assert_memory_equal(d->data, "abc", 3);
    assert_int_equal(ms_rd_view(r, &ev, 4, &d), 4);
    assert_ptr_equal(d->data, b + 1);
    assert_int_equal(d->zero_copy, 1);
    assert_int_equal(ev.offset, 3);
    assert_int_equal(d->size, 4);
    assert_int_equal(ms_rd_pos(r), 7);
    assert_int_equal(ms_rd_view(r, &ev, 4, &d), 1);
    assert_int_equal(ms_rd_view(r, &ev, 4, &d), 0);
    free_reader(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_runner_walks_to_event),
        cmocka_unit_test(test_runner_end_stage),
        cmocka_unit_test(test_runner_catches_bugs),
        cmocka_unit_test(test_data_views),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
