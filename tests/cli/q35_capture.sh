#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only
# The real QEMU 10.0 q35 precopy capture: verify passes, and
# `migstream-extract --ram` rebuilds every RAM block with the sha256 the
# capture's README gives (its ground truth: analyze-migration.py -x, the
# nonzero page counts adding up to QEMU's `normal` 373).  The expected
# hashes are read from the README table, not written here.
. "$(dirname "$0")/lib.bash"
D=$SRC/tests/data/captures/qemu-10.0-q35-precopy
EXTRACT=$BIN/migstream-extract
expect_exit 0 "verify the capture" -- "$VERIFY" "$D/main.mig"
expect_exit 0 "extract --ram" -- "$EXTRACT" --ram "$WORK/ram" "$D/main.mig"
# README rows: | `name` | pages ... | `sha256` |
grep -E '^\| `[^`]+` \| [0-9]+ .*\| `[0-9a-f]{64}` \|$' "$D/README.md" |
    sed -E 's/^\| `([^`]+)` \|.*\| `([0-9a-f]{64})` \|$/\1 \2/' >"$WORK/want"
[ "$(wc -l <"$WORK/want")" -eq 8 ] && ok || bad "README: expected 8 RAM block rows, found $(wc -l <"$WORK/want")"
while read -r name sum; do
    f=$WORK/ram/${name#/}
    got=$(sha256sum "$f" 2>/dev/null | cut -d' ' -f1)
    [ "$got" = "$sum" ] && ok || bad "block $name: sha256 ${got:-missing}, README says $sum"
done <"$WORK/want"
# nothing beyond the README's blocks
[ "$(find "$WORK/ram" -type f | wc -l)" -eq 8 ] && ok || bad "extract wrote $(find "$WORK/ram" -type f | wc -l) files, expected 8"
finish
