#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only
# migstream-replay into real destination QEMUs (replay.py says what is
# checked): the bundled 7.2 multifd captures over TCP and a unix socket (the
# zlib one's guest memory against its ground truth) and the precopy capture
# through -incoming exec:.  Exit 77 (skip) without qemu-system-x86_64.
. "$(dirname "$0")/lib.bash"
run_py replay.py --bin "$BIN" --captures "$SRC/tests/data/captures" --qemu "$qemu"
