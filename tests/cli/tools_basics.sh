#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only
# --help, --version, usage errors and I/O errors of every tool.
. "$(dirname "$0")/lib.bash"
for t in "$SYNTH" "$DUMP" "$VERIFY"; do
    name=$(basename "$t")
    expect_exit 0 "$name --help" -- "$t" --help
    expect_grep "$WORK/out" "usage: $name" "$name --help text"
    expect_exit 0 "$name --version" -- "$t" --version
    expect_grep "$WORK/out" "^$name [0-9]+\.[0-9]+\.[0-9]+$" "$name --version text"
    expect_exit 2 "$name with a bad option" -- "$t" --no-such-option
done
expect_exit 2 "dump without files" -- "$DUMP"
expect_exit 2 "verify without files" -- "$VERIFY"
expect_exit 2 "verify of a missing file" -- "$VERIFY" "$WORK/nope.mig"
expect_grep "$WORK/err" "nope.mig: No such file" "missing file named"
expect_exit 2 "dump of a missing file" -- "$DUMP" "$WORK/nope.mig"
expect_exit 2 "bad limit value" -- "$VERIFY" --max-buffered-bytes=lots x
expect_exit 2 "synth without output" -- "$SYNTH"
expect_exit 2 "synth bad size" -- "$SYNTH" --final-size 12Q -o "$WORK/x"
finish
