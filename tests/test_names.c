/* SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only */
/* The public names of wire numbers (include/migstream.h), checked against
 * the numbers as QEMU and Linux define them (written out here from
 * spec/qemu-main.md, spec/qemu-postcopy.md and Linux's
 * include/uapi/linux/vfio.h, not taken from the library):
 *
 *   - ms_vfio_state_name: enum vfio_device_mig_state 0..7, "?" past it;
 *   - ms_qemu_command_name: MIG_CMD_* 0..11, "?" past it;
 *   - ms_vfio_marker_name: 0xffffffffef100001..6, NULL for other values;
 *   - the public enums hold those numbers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "migstream.h"

static void test_vfio_states(void **state)
{
    (void)state;
    static const char *const want[] = {
        "ERROR",    "STOP",        "RUNNING",  "STOP_COPY",
        "RESUMING", "RUNNING_P2P", "PRE_COPY", "PRE_COPY_P2P"};
    for (uint32_t s = 0; s < 8; s++)
        assert_string_equal(ms_vfio_state_name(s), want[s]);
    assert_string_equal(ms_vfio_state_name(8), "?");
    assert_string_equal(ms_vfio_state_name(UINT32_MAX), "?");
    assert_int_equal(MS_VFIO_STATE_STOP_COPY, 3);
    assert_int_equal(MS_VFIO_STATE_PRE_COPY, 6);
    assert_int_equal(MS_VFIO_STATE_PRE_COPY_P2P, 7);
}

static void test_commands(void **state)
{
    (void)state;
    static const char *const want[] = {"INVALID",
                                       "OPEN_RETURN_PATH",
                                       "PING",
                                       "POSTCOPY_ADVISE",
                                       "POSTCOPY_LISTEN",
                                       "POSTCOPY_RUN",
                                       "POSTCOPY_RAM_DISCARD",
                                       "PACKAGED",
                                       "ENABLE_COLO",
                                       "POSTCOPY_RESUME",
                                       "RECV_BITMAP",
                                       "SWITCHOVER_START"};
    for (uint32_t c = 0; c < 12; c++)
        assert_string_equal(ms_qemu_command_name(c), want[c]);
    assert_string_equal(ms_qemu_command_name(12), "?");
    assert_string_equal(ms_qemu_command_name(0xffff), "?");
    assert_int_equal(MS_QCMD_PING, 2);
    assert_int_equal(MS_QCMD_PACKAGED, 7);
    assert_int_equal(MS_QCMD_SWITCHOVER_START, 11);
}

static void test_vfio_markers(void **state)
{
    (void)state;
    static const char *const want[] = {
        "END_OF_STATE",   "DEV_CONFIG_STATE",   "DEV_SETUP_STATE",
        "DEV_DATA_STATE", "DEV_INIT_DATA_SENT", "DEV_CONFIG_LOAD_READY"};
    const uint64_t base = 0xffffffffef100000ull;
    assert_true(MS_VFIO_MARKER_BASE == base);
    for (uint64_t m = 1; m <= 6; m++)
        assert_string_equal(ms_vfio_marker_name(base + m), want[m - 1]);
    assert_null(ms_vfio_marker_name(base));
    assert_null(ms_vfio_marker_name(base + 7));
    assert_null(ms_vfio_marker_name(4));
    assert_int_equal(MS_VFIO_DEV_DATA_STATE, 4);
    assert_int_equal(MS_VFIO_DEV_CONFIG_LOAD_READY, 6);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vfio_states),
        cmocka_unit_test(test_commands),
        cmocka_unit_test(test_vfio_markers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
