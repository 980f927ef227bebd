#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only
# migstream-synth --qemu-ram: a QEMU main stream of RAM pages that
# migstream-verify accepts and migstream-extract --ram turns into the
# bytes --expect-dir wrote; the page pattern (every 8th page zero, the
# rest pseudo-random) is checked on its own, and the usage errors.
. "$(dirname "$0")/lib.bash"
EXTRACT=$BIN/migstream-extract
command -v python3 >/dev/null || { bad "python3 is needed"; finish; exit 1; }

# check_ram FILE BYTES: size, every 8th page zero, the others not
check_ram() {
    if python3 - "$1" "$2" <<'PY'; then ok; else bad "page pattern of $1"; fi
import sys
data = open(sys.argv[1], 'rb').read()
assert len(data) == int(sys.argv[2]), (len(data), sys.argv[2])
for i in range(len(data) // 4096):
    page = data[i * 4096:(i + 1) * 4096]
    assert (page.count(0) == 4096) == (i % 8 == 7), i
PY
}

# SIZE NAME: one stream, verified, extracted and compared
run_size() {
    local size=$1 bytes=$2 d=$WORK/$1
    mkdir -p "$d/expect"
    expect_exit 0 "synth --qemu-ram $size" -- \
        "$SYNTH" --qemu-ram "$size" -o "$d/ram.mig" --expect-dir "$d/expect"
    expect_exit 0 "verify --qemu-ram $size" -- "$VERIFY" "$d/ram.mig"
    expect_exit 0 "extract --ram of --qemu-ram $size" -- \
        "$EXTRACT" --ram "$d/out" "$d/ram.mig"
    if cmp -s "$d/out/pc.ram" "$d/expect/ram-0.bin"; then ok; else
        bad "$size: extracted pc.ram differs from --expect-dir"; fi
    expect_grep "$d/expect/ram" "^0 $bytes pc.ram$" "$size: DIR/ram"
    check_ram "$d/out/pc.ram" "$bytes"
}

run_size 1M 1048576
# one page past a 64 MiB PART section: a second section, named block again
run_size 65540K 67112960
expect_exit 0 "dump of the two-section stream" -- "$DUMP" "$WORK/65540K/ram.mig"
if [ "$(grep -c 'section  *part ' "$WORK/out")" -eq 2 ]; then ok; else
    bad "expected 2 PART sections in the dump"; grep part "$WORK/out" | head >&2; fi

# the stream on stdout is the same bytes; another seed other bytes
expect_exit 0 "synth --qemu-ram --stdout" -- "$SYNTH" --qemu-ram 1M --stdout
if cmp -s "$WORK/out" "$WORK/1M/ram.mig"; then ok; else bad "--stdout differs from -o"; fi
expect_exit 0 "synth --qemu-ram --seed 2" -- \
    "$SYNTH" --qemu-ram 1M --seed 2 -o "$WORK/seed2.mig"
if cmp -s "$WORK/seed2.mig" "$WORK/1M/ram.mig"; then bad "--seed 2 made the same bytes"; else ok; fi

# usage errors
expect_exit 2 "--qemu-ram not a page multiple" -- "$SYNTH" --qemu-ram 5000 -o "$WORK/x.mig"
expect_grep "$WORK/err" "multiple of 4096" "page multiple said"
expect_exit 2 "--qemu-ram with --multifd" -- "$SYNTH" --qemu-ram 1M --multifd 2 -o "$WORK/x"
expect_grep "$WORK/err" "--multifd does not apply to --qemu-ram" "--multifd refused"
expect_exit 2 "--qemu-ram without output" -- "$SYNTH" --qemu-ram 1M
expect_grep "$WORK/err" "exactly one of -o OUT.mig and --stdout" "output needed"
finish
