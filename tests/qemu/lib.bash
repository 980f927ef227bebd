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
