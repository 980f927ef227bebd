#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only
# migstream-record without QEMU: a tiny source and destination
# (record_peers.py) around it.  Both directions forwarded and recorded
# byte-exactly over several concurrent connections (half-closes each way,
# an empty direction each way), tcp and unix sockets, --count, a
# destination that closes early and one that is not there (reported,
# exit 1, the source sees its connection fail), SIGTERM while a connection
# is open, and the manifest.
. "$(dirname "$0")/lib.bash"
REC=$BIN/migstream-record
PEERS=$SRC/tests/cli/record_peers.py

for c in tcp unix count early-close no-destination signal; do
    mkdir -p "$WORK/$c"
    if timeout 90 python3 "$PEERS" --record "$REC" --work "$WORK/$c" \
        --case "$c" >"$WORK/$c.out" 2>&1; then ok; else
        bad "record case $c"
        grep -v '^ok ' "$WORK/$c.out" | sed 's/^/  /' >&2
    fi
done

# usage errors
expect_exit 2 "no --to" -- "$REC" --listen 127.0.0.1:0 -o "$WORK/u"
expect_exit 2 "bad --count" -- "$REC" --listen 127.0.0.1:0 --to 127.0.0.1:1 -o "$WORK/u" --count 0
expect_exit 2 "bad address" -- "$REC" --listen nowhere --to 127.0.0.1:1 -o "$WORK/u"
expect_grep "$WORK/err" "expected HOST:PORT" "bad address said"
# a directory that holds a capture is not overwritten
mkdir -p "$WORK/full" && touch "$WORK/full/manifest.json"
expect_exit 1 "capture dir in use" -- "$REC" --listen 127.0.0.1:0 --to 127.0.0.1:1 -o "$WORK/full"
expect_grep "$WORK/err" "already holds a capture" "capture dir in use said"
finish
