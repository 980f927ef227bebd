#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only
# migstream-replay into real destination QEMUs (replay.py says what is
# checked): the bundled 7.2 multifd captures over TCP and a unix socket (the
# zlib one's guest memory against its ground truth) and the precopy capture
# through -incoming exec:.  Exit 77 (skip) without qemu-system-x86_64.
. "$(dirname "$0")/lib.bash"
WORK=$(mktemp -d)
# replay.py kills every QEMU it starts (in a finally, and on SIGTERM): an
# interrupted run stops it by its process id
pid=
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid"
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
python3 "$SRC/tests/qemu/replay.py" --bin "$BIN" \
    --captures "$SRC/tests/data/captures" --work "$WORK" --qemu "$qemu" &
pid=$!
wait "$pid"
rc=$?
pid=
exit $rc
