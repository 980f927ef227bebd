#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only
# migstream-verify prints problems sorted by file (in the order given) and
# offset, the same on every run although channels decode on threads, and
# marks a problem that only follows from another: a device payload cut
# short because its image never completed is a "knock-on".
. "$(dirname "$0")/lib.bash"
mkdir -p "$WORK/demo"
"$SYNTH" --kind mlx5 -o "$WORK/demo" >/dev/null || bad "synth failed"
D=$WORK/demo
head -c 500000 "$D/channel-1.mig" >"$WORK/cut.mig"

for run in 1 2 3 4 5; do
    "$VERIFY" "$D/channel-0.mig" "$WORK/cut.mig" "$D/channel-2.mig" \
        "$D/channel-3.mig" >"$WORK/run$run" 2>&1
done
for run in 2 3 4 5; do
    cmp -s "$WORK/run1" "$WORK/run$run" && ok || bad "run $run printed otherwise"
done
# file order, then offsets: channel-0's line before cut.mig's
python3 - "$WORK/run1" "$D/channel-0.mig" "$WORK/cut.mig" "$D/channel-2.mig" \
    "$D/channel-3.mig" <<'PY' && ok || bad "problems not sorted by file and offset"
import sys
files = sys.argv[2:]
keys = []
for line in open(sys.argv[1]):
    name, off = line.split(":", 2)[:2]
    keys.append((files.index(name), int(off)))
sys.exit(0 if keys == sorted(keys) and len(keys) >= 2 else 1)
PY
expect_grep "$WORK/run1" "cut.mig:500000: truncated: input ends inside the PACKET record" \
    "the cut itself"
# named in the file its offset is in: the cut channel, where the device's
# last packet began (was channel-0, where the device was first seen)
expect_grep "$WORK/run1" "cut.mig:[0-9]+: truncated: knock-on: device 0000:00:02.0/vfio payload byte" \
    "the payload cut short is marked a knock-on, in the cut file"

# a missing channel: the set's problem, then the two devices' knock-ons
"$VERIFY" "$D/channel-0.mig" "$D/channel-1.mig" "$D/channel-2.mig" >"$WORK/out" 2>&1
expect_grep "$WORK/out" "^[^ ]*channel-0.mig:0: channel-set: 1 of 4 channels missing" "missing channel first"
[ "$(grep -c 'knock-on: device' "$WORK/out")" -eq 2 ] && ok || bad "two knock-ons expected"
# a real payload problem is not a knock-on
grep 'knock-on' "$WORK/out" | grep -vq 'input ends inside' && bad "knock-on on a non-truncation" || ok
finish
