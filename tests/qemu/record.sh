#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only
# A real 2-channel multifd migration between two QEMU 7.2 processes,
# recorded by migstream-record (record.py says what is checked: the
# destination's memory holds the blob, the recording's manifest, verify and
# extract --ram on the recording).
#
#   RECORD_KEEP_DIR=DIR  where the run's files go (default: qemu-record in
#                        the working directory, the build dir under ctest):
#                        DIR/capture is the recording, DIR/blob.bin the blob
#                        the guest had at 0x1000000.  Kept after the test
#                        (archive and replay tests start from it); the next
#                        run replaces DIR/capture.
#
# Exit 77 (skip) when there is no qemu-system-x86_64.
. "$(dirname "$0")/lib.bash" # BIN, SRC, $qemu (or skip)
KEEP=${RECORD_KEEP_DIR:-$PWD/qemu-record}
mkdir -p "$KEEP" || exit 1
KEEP=$(cd "$KEEP" && pwd)
# record.py kills every process it started (at its end, on SIGTERM, and
# through PR_SET_PDEATHSIG when it is killed); stopped here with the test.
timeout -k 5 120 python3 "$SRC/tests/qemu/record.py" --bin "$BIN" \
    --qemu "$qemu" --keep "$KEEP" &
py=$!
trap 'kill "$py" 2>/dev/null' EXIT INT TERM
wait "$py"
