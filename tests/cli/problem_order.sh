#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only
# migstream-verify (and extract and dump, on stderr) print problems sorted by file (in the order given) and
# offset, the same on every run although channels decode on threads, and
# marks a problem that only follows from another: a device payload cut
# short because its image never completed is a "knock-on".
. "$(dirname "$0")/lib.bash"
mkdir -p "$WORK/demo"
"$SYNTH" --kind mlx5 -o "$WORK/demo" >/dev/null || bad "synth failed"
D=$WORK/demo
# sorted_by_file LINES MIN_FILES FILE...: every line of LINES is FILE:OFFSET:...,
# sorted by the file's place in the list, then offset, naming at least
# MIN_FILES files and at least two lines.
sorted_by_file() {
    python3 - "$@" <<'PY'
import sys
lines, min_files, files = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
keys = []
for line in open(lines):
    name, off = line.split(":", 2)[:2]
    keys.append((files.index(name), int(off)))
ok = keys == sorted(keys) and len(keys) >= 2 and len({k[0] for k in keys}) >= min_files
sys.exit(0 if ok else 1)
PY
}
head -c 500000 "$D/channel-1.mig" >"$WORK/cut.mig"

for run in 1 2 3 4 5; do
    "$VERIFY" "$D/channel-0.mig" "$WORK/cut.mig" "$D/channel-2.mig" \
        "$D/channel-3.mig" >"$WORK/run$run" 2>&1
done
for run in 2 3 4 5; do
    cmp -s "$WORK/run1" "$WORK/run$run" && ok || bad "run $run printed otherwise"
done
# file order, then offsets: channel-0's line before cut.mig's
sorted_by_file "$WORK/run1" 1 "$D/channel-0.mig" "$WORK/cut.mig" "$D/channel-2.mig" \
    "$D/channel-3.mig" && ok || bad "problems not sorted by file and offset"
expect_grep "$WORK/run1" "cut.mig:500000: truncated: input ends inside the PACKET record" \
    "the cut itself"
# named in the file its offset is in: the cut channel, where the device's
# last packet began (was channel-0, where the device was first seen)
expect_grep "$WORK/run1" "cut.mig:[0-9]+: truncated: knock-on: device 0000:00:02.0/vfio payload byte" \
    "the payload cut short is marked a knock-on, in the cut file"

# extract and dump print their problem lines (stderr) sorted the same way
# (a second damaged channel: a byte of channel-3 flipped, so two threads
# report)
EXTRACT=$BIN/migstream-extract
cp "$D/channel-3.mig" "$WORK/bad3.mig"
printf '\x55' | dd of="$WORK/bad3.mig" bs=1 seek=70000 conv=notrunc status=none
for run in 1 2 3; do
    "$EXTRACT" --device 0000:00:02.0/vfio -o "$WORK/x.bin" "$D/channel-0.mig" "$WORK/cut.mig" \
        "$D/channel-2.mig" "$WORK/bad3.mig" >/dev/null 2>"$WORK/xrun$run"
    "$DUMP" "$D/channel-0.mig" "$WORK/cut.mig" "$D/channel-2.mig" "$WORK/bad3.mig" \
        >/dev/null 2>"$WORK/drun$run"
done
for t in x d; do
    for run in 2 3; do
        cmp -s "$WORK/${t}run1" "$WORK/${t}run$run" && ok || bad "$t: run $run printed otherwise"
    done
    grep -v '^migstream-' "$WORK/${t}run1" >"$WORK/${t}lines"
    sorted_by_file "$WORK/${t}lines" 2 "$D/channel-0.mig" "$WORK/cut.mig" "$D/channel-2.mig" \
        "$WORK/bad3.mig" && ok || bad "$t: problems not sorted by file and offset"
    expect_grep "$WORK/${t}lines" "cut.mig:500000: truncated" "$t: the cut itself"
    expect_grep "$WORK/${t}lines" "bad3.mig:" "$t: the flipped byte"
done

# a missing channel: the set's problem, then the two devices' knock-ons
"$VERIFY" "$D/channel-0.mig" "$D/channel-1.mig" "$D/channel-2.mig" >"$WORK/out" 2>&1
expect_grep "$WORK/out" "^[^ ]*channel-0.mig:0: channel-set: 1 of 4 channels missing" "missing channel first"
[ "$(grep -c 'knock-on: device' "$WORK/out")" -eq 2 ] && ok || bad "two knock-ons expected"
# a real payload problem is not a knock-on
grep 'knock-on' "$WORK/out" | grep -vq 'input ends inside' && bad "knock-on on a non-truncation" || ok
finish
