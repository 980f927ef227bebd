#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only
# migstream 1.0 files written by the 1.0 build (tests/data/migstream-1.0)
# read with today's reader: valid, the same events as the 1.0 build's dump,
# and damage reported where it is.
. "$(dirname "$0")/lib.bash"
D=$SRC/tests/data/migstream-1.0
cp "$D"/*.mig "$WORK/"
cd "$WORK" || exit 2

# same_events OLD OURS: the 1.0 build's dump --json (JSON output before
# spec/json.md) mapped to the documented shapes (spec/json.md, change log of
# version 1.0) equals today's output, line by line.
same_events() {
    python3 - "$1" "$2" <<'PY'
import json, sys
AS_STRING = {"timestamp_ns", "created_ns", "initial_bytes", "dirty_bytes",
             "stop_copy_estimate", "stop_copy_ns"}
RENAME = {"stream": {"version": "format_version"},
          "stop_copy_size": {"bytes": "stop_copy_bytes"},
          "end": {"devices": "device_count"}}
def upgrade(o):
    ren = RENAME.get(o["kind"], {})
    o = {ren.get(k, k): str(v) if k in AS_STRING or ren.get(k) == "stop_copy_bytes" else v
         for k, v in o.items()}
    if o["kind"] == "summary":
        del o["offset"]
        o.update(kind="migstream_summary", format="migstream")
        o["devices"] = [{k: str(v) if k in AS_STRING else v for k, v in d.items()}
                        for d in o["devices"]]
    return o
old = [upgrade(json.loads(l)) for l in open(sys.argv[1])]
ours = [json.loads(l) for l in open(sys.argv[2])]
assert ours[0]["kind"] == "json_header", ours[0]
for n, (a, b) in enumerate(zip(old, ours[1:])):
    if a != b:
        sys.exit("line %d: 1.0 build %s, now %s" % (n + 2, a, b))
if len(old) != len(ours) - 1:
    sys.exit("%d events, the 1.0 build printed %d" % (len(ours) - 1, len(old)))
PY
}

for name in chunk zlib; do
    expect_exit 0 "$name.mig verifies" -- "$VERIFY" "$name.mig"
    expect_exit 0 "$name.mig dumps" -- "$DUMP" --json "$name.mig"
    if same_events "$D/$name.json" "$WORK/out"; then ok; else bad "$name.mig: events differ from the 1.0 build's"; fi
done
P="packet-0.mig packet-1.mig packet-2.mig packet-3.mig"
# shellcheck disable=SC2086
expect_exit 0 "packet set verifies" -- "$VERIFY" $P
# shellcheck disable=SC2086
expect_exit 0 "packet set dumps" -- "$DUMP" --json $P
if same_events "$D/packet.json" "$WORK/out"; then ok; else bad "packet set: events differ from the 1.0 build's"; fi

# flip one byte at OFFSET of a copy of FILE; the error must be at WANT
damage() {
    local file=$1 off=$2 err=$3 want=$4
    cp "$file" bad.mig
    printf "$(printf '\\%03o' $(( $(od -An -tu1 -j "$off" -N1 bad.mig) ^ 0x40 )))" |
        dd of=bad.mig bs=1 seek="$off" conv=notrunc status=none
    shift 4
    expect_exit 1 "$file byte $off damaged" -- "$VERIFY" bad.mig "$@"
    expect_grep "$WORK/out" "bad.mig:$want: $err" "$file byte $off: $err at $want"
}
# chunk.mig: the first CHUNK record is at 377 (4144 bytes: its check at
# 377 + 4144 - 8 = 4513); its data starts at 377 + 24 + 16
damage chunk.mig 500 payload-check 4513
damage chunk.mig 377 record-check 377
# the first IMAGE_END's image_hash (record at 4521, payload + 16)
damage chunk.mig $((4521 + 24 + 16)) payload-check $((4521 + 88 - 8))
# zlib.mig: a compressed CHUNK's stored bytes (record at 487, 3967 bytes)
damage zlib.mig 700 payload-check $((487 + 3967 - 8))
finish
