# SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only
# Shared by the tests that drive a real QEMU (sourced; not a test itself):
# BIN and SRC from CTest's environment, and $qemu, the system's
# qemu-system-x86_64 (Debian 12's 7.2, installed by scripts/setup-deps.sh);
# without one the test is skipped (exit 77).
set -u
BIN=${MIGSTREAM_BIN_DIR:?MIGSTREAM_BIN_DIR not set}
SRC=${MIGSTREAM_SRC_DIR:?MIGSTREAM_SRC_DIR not set}

qemu=$(command -v qemu-system-x86_64) || {
    echo "SKIP: qemu-system-x86_64 not found (Debian: apt-get install" \
         "qemu-system-x86, as scripts/setup-deps.sh does)"
    exit 77
}

# run_py SCRIPT ARGS...: python3 tests/qemu/SCRIPT ARGS... --work WORK (a
# fresh directory, removed at exit) in the background; the script kills
# every QEMU it starts (in a finally, and on SIGTERM), so an interrupted
# test stops it by its process id.  Exits with the script's status.
run_py() {
    local script=$1
    shift
    WORK=$(mktemp -d)
    py_pid=
    trap '[ -n "$py_pid" ] && kill "$py_pid" 2>/dev/null && wait "$py_pid"; rm -rf "$WORK"' EXIT
    trap 'exit 130' INT TERM
    python3 "$SRC/tests/qemu/$script" "$@" --work "$WORK" &
    py_pid=$!
    wait "$py_pid"
    local rc=$?
    py_pid=
    exit $rc
}
