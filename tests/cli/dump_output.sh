#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only
# migstream-dump: human lines with offsets, JSON Lines, summary, golden.
. "$(dirname "$0")/lib.bash"
D=$WORK/w
"$SYNTH" -o "$D" || bad "synth"
expect_exit 0 "dump" -- "$DUMP" "$D"/*.mig
for k in stream device image_begin chunk packet image_end precopy_info state_change stop_copy_size end image_assembled; do
    expect_grep "$WORK/out" "^ +([0-9]+|set)  $k " "human line for $k"
done
expect_grep "$WORK/out" "^summary: 4 files, migration [0-9a-f]{32}, 4 of 4 channels ended, .*: valid$" "human summary"
expect_grep "$WORK/out" "^  device 0 0000:00:02.0/vfio \(raw\): initial 1 image 262144 B; middle 2 images 131072 B; final 1 image 1048576 B;" "per-device summary"

expect_exit 0 "dump --json" -- "$DUMP" --json "$D"/*.mig
cp "$WORK/out" "$WORK/json"
python3 - "$WORK/json" "$D" <<'PY' && ok || bad "JSON Lines check"
import json, sys
lines = open(sys.argv[1]).read().splitlines()
objs = [json.loads(l) for l in lines]
# spec/json.md: a json_header first, then events (offset, file), a summary last
h = objs[0]
assert h["kind"] == "json_header" and h["schema"] == "migstream-dump", h
assert h["version"].split(".")[0] == "1", h
for o in objs[1:-1]:
    assert "kind" in o and "offset" in o, o
    assert o.get("file", "").startswith(sys.argv[2]), o
assert objs[-1]["kind"] == "migstream_summary", objs[-1]
assert "offset" not in objs[-1] and "file" not in objs[-1], objs[-1]
s = objs[-1]
assert s["valid"] is True and s["channel_count"] == 4 and s["channels_read"] == 4, s
assert len(s["devices"]) == 2, s
for d in s["devices"]:
    assert d["initial"] == {"images": 1, "bytes": 262144}, d
    assert d["middle"] == {"images": 2, "bytes": 131072}, d
    assert d["final"] == {"images": 1, "bytes": 1048576}, d
    assert d["assembled"] == 1, d
kinds = {o["kind"] for o in objs}
for k in ("stream", "device", "image_begin", "chunk", "packet", "image_end", "end", "image_assembled"):
    assert k in kinds, k
ends = [o for o in objs if o["kind"] == "image_end"]
assert {o["phase"] for o in ends} == {"initial", "middle", "final"}
PY

# Single file: no "file" member.
"$SYNTH" --channels 1 --devices 1 --middle 0 -o "$WORK/one" || bad "synth one"
expect_exit 0 "dump --json one file" -- "$DUMP" --json "$WORK/one/channel-0.mig"
grep -q '"file"' "$WORK/out" && bad "single-file JSON has file members" || ok

# Errors: JSON error object, stderr line, exit 1, summary says invalid.
head -c 3000 "$WORK/one/channel-0.mig" > "$WORK/cut.mig"
expect_exit 1 "dump --json of a cut file" -- "$DUMP" --json "$WORK/cut.mig"
expect_grep "$WORK/out" '^\{"kind":"error","offset":3000,"error":"truncated"' "JSON error object"
expect_grep "$WORK/out" '"valid":false' "JSON summary invalid"
expect_grep "$WORK/err" "cut.mig:3000: truncated: " "error line on stderr"

# Golden: a small deterministic workload, byte-exact human dump.
"$SYNTH" --channels 2 --devices 1 --initial-size 3000 --middle 1 --middle-size 1000 \
    --final-size 5000 --chunk-size 2048 --packet-size 2048 --seed 3 -o "$WORK/g" || bad "synth golden"
(cd "$WORK/g" && "$DUMP" channel-0.mig channel-1.mig) > "$WORK/golden.out"
if diff -u "$SRC/tests/cli/golden/small.dump" "$WORK/golden.out" >&2; then ok; else bad "golden dump differs"; fi
finish
