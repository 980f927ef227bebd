#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only
# A file that cannot be opened does not stop the tools (issue 12, CLI
# conventions): it is named on stderr, every other file is still read and
# reported, and the exit status is the worst (2).
. "$(dirname "$0")/lib.bash"
EXTRACT=$BIN/migstream-extract
V1=$SRC/tests/data/migstream-1.0
CAP=$SRC/tests/data/captures/qemu-7.2-pc-precopy/main.mig
NOPE=$WORK/does-not-exist.mig

# verify: the four packet channels with the missing file between them:
# still a whole migration, checked; exit 2 for the missing file.
expect_exit 2 "verify with an unreadable file" -- \
    "$VERIFY" -v "$V1/packet-0.mig" "$NOPE" "$V1/packet-1.mig" \
    "$V1/packet-2.mig" "$V1/packet-3.mig"
expect_grep "$WORK/err" "does-not-exist.mig: No such file or directory" \
    "verify names the unreadable file"
expect_grep "$WORK/out" "migration: ok: 4 of 4 channels" \
    "verify still checks the other files"

# verify: the unreadable file leaves a channel missing, which is reported.
expect_exit 2 "verify with a channel unreadable" -- \
    "$VERIFY" "$V1/packet-0.mig" "$NOPE" "$V1/packet-1.mig" "$V1/packet-2.mig"
expect_grep "$WORK/out" "1 of 4 channels missing" \
    "verify reports the channel it could not read as missing"

# dump: the summary of what was read, exit 2.
expect_exit 2 "dump with an unreadable file" -- \
    "$DUMP" --summary "$NOPE" "$V1/chunk.mig"
expect_grep "$WORK/out" "^summary: .*: valid as far as read \(a file given could not be read\)" "dump still summarises, not as plainly valid"
expect_grep "$WORK/err" "does-not-exist.mig" "dump names the unreadable file"

# extract --ram: the readable stream's RAM is written, exit 2.
expect_exit 2 "extract with an unreadable file" -- \
    "$EXTRACT" --ram "$WORK/ram" "$NOPE" "$CAP"
[ -s "$WORK/ram/pc.ram" ] && ok || bad "extract wrote no pc.ram"

# every file unreadable: nothing to do, exit 2, no output
expect_exit 2 "verify with only unreadable files" -- "$VERIFY" "$NOPE"
[ -s "$WORK/out" ] && bad "verify printed on stdout for no input" || ok

finish
