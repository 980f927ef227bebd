#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only
# Record a real 2-channel multifd migration with migstream-record, archive
# it, replay the archive into a new destination QEMU and find the blob in
# its memory; the bundled zlib capture archived and replayed the same way
# (e2e.py says what is checked).  Exit 77 (skip) without
# qemu-system-x86_64.
. "$(dirname "$0")/lib.bash" # BIN, SRC, $qemu (or skip)
run_py e2e.py --bin "$BIN" --captures "$SRC/tests/data/captures" --qemu "$qemu"
