#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only
# examples/record_migration writes a two-channel migration;
# examples/images_by_phase reads it back: every image of both devices,
# by phase, verified (examples/record_migration.expected, which
# tests/cli/install.sh checks against the installed copy too);
# migstream-verify agrees.  Channel 0 alone: the final images'
# packets on channel 1 are missing, so they are NOT verified (exit 1).
. "$(dirname "$0")/../tests/cli/lib.bash"
EX=$BIN/examples

expect_exit 0 "record_migration" -- "$EX/record_migration" "$WORK/c0.mig" "$WORK/c1.mig"
expect_exit 0 "images_by_phase" -- "$EX/images_by_phase" "$WORK/c0.mig" "$WORK/c1.mig"
if diff -u "$SRC/examples/record_migration.expected" "$WORK/out" >&2; then ok; else bad "images_by_phase output"; fi
expect_exit 0 "migstream-verify of the recording" -- "$VERIFY" -v "$WORK/c0.mig" "$WORK/c1.mig"
expect_grep "$WORK/out" "2 of 2 channels, 6 images, 2 reassembled from packets" "verify summary"

# one channel alone: packets of the final images are on the missing one
expect_exit 1 "one channel of two" -- "$EX/images_by_phase" "$WORK/c0.mig"
expect_grep "$WORK/out" "final   seq 2: 12288 bytes, packets, NOT verified" "final image unverified"
expect_grep "$WORK/err" "channel-set" "missing channel reported"
finish
