#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only
# The limits of ms_options as options of every reading tool: one per entry
# of MS_LIMIT_LIST (include/migstream.h), in --help, accepted, range-checked
# against the field's width, and named by the hint of a limit error.
. "$(dirname "$0")/lib.bash"
EXTRACT=$BIN/migstream-extract
P=$SRC/tests/data/captures/qemu-7.2-pc-precopy/main.mig
# the options, as the list in the public header spells them
mapfile -t OPTS < <(sed -n '/^#define MS_LIMIT_LIST/,/^$/p' "$SRC/include/migstream.h" |
    grep -o '"max-[a-z-]*"' | tr -d '"')
[ "${#OPTS[@]}" -ge 13 ] && ok || bad "found ${#OPTS[@]} limits in MS_LIMIT_LIST"

for t in "$DUMP" "$VERIFY" "$EXTRACT"; do
    name=$(basename "$t")
    "$t" --help >"$WORK/help" 2>&1
    for o in "${OPTS[@]}"; do
        grep -q -- "--$o=N .*limit: " "$WORK/help" && ok || bad "$name --help lacks --$o"
    done
done

# Every option is accepted by verify with a value that lets the capture
# through; a 32-bit limit refuses a value over 32 bits, a 64-bit one takes it.
for o in "${OPTS[@]}"; do
    expect_exit 0 "verify --$o=1G" -- "$VERIFY" "--$o=1G" "$P"
done
expect_exit 2 "--max-sections over 32 bits" -- "$VERIFY" --max-sections=5G "$P"
expect_exit 0 "--max-vmdesc-bytes over 32 bits" -- "$VERIFY" --max-vmdesc-bytes=5G "$P"
expect_exit 2 "--max-nesting not a number" -- "$VERIFY" --max-nesting=deep "$P"

# A QEMU limit that had no option before: the error names the option.
expect_exit 1 "verify --max-ram-blocks=1" -- "$VERIFY" --max-ram-blocks=1 "$P"
expect_grep "$WORK/out" "main.mig:66: limit: more than max_ram_blocks \(1\) RAM blocks \(raise it with --max-ram-blocks\)$" "verify names --max-ram-blocks"
expect_exit 1 "dump --max-sections=1" -- "$DUMP" --max-sections=1 "$P"
cat "$WORK/out" "$WORK/err" >"$WORK/both"
expect_grep "$WORK/both" "limit: more than max_sections \(1\) sections \(raise it with --max-sections\)" "dump names --max-sections"
expect_exit 1 "extract --max-ram-blocks=1" -- "$EXTRACT" --ram "$WORK/ram" --max-ram-blocks=1 "$P"
cat "$WORK/out" "$WORK/err" >"$WORK/both"
expect_grep "$WORK/both" "main.mig:66: limit: .*\(raise it with --max-ram-blocks\)" "extract names --max-ram-blocks"
finish
