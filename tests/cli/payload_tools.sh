#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only
# Driver payloads through the tools (issue 5): raw data-fd captures with
# --payload, phases with --final-offset, nested decoding of VFIO data in a
# QEMU stream, the downtime summary, --expect-field, and errors with offsets.
. "$(dirname "$0")/lib.bash"
python3 - "$WORK" <<'PY'
import struct, sys
w = sys.argv[1]
rec = lambda tag, flags, p: struct.pack('<QII', len(p), flags, tag) + p
good = rec(1, 1, struct.pack('<Q', 5000)) + rec(0, 0, b'\x11' * 1000) + \
       rec(0, 0, b'\x22' * 300) + rec(0, 0, b'\x33' * 4000)
open(w + '/mlx5.bin', 'wb').write(good)
open(w + '/mlx5-badtag.bin', 'wb').write(good + rec(7, 0, b'x'))
open(w + '/mlx5-optional.bin', 'wb').write(good + rec(7, 1, b'x'))
open(w + '/mlx5-cut.bin', 'wb').write(good[:-10])
h = bytearray(176)
h[0:8] = struct.pack('<Q', 0xAACCFEEDDECADEDE)
struct.pack_into('<IIIII', h, 8, 4, 0xa255, 1, 0, 1)
struct.pack_into('<HH', h, 28, 1, 0)
open(w + '/hisi.bin', 'wb').write(h)
PY
expect_exit 0 "raw mlx5 dump" -- "$DUMP" --payload mlx5 "$WORK/mlx5.bin"
expect_grep "$WORK/out" "image 2 phase unknown \(give --final-offset\): 4000 bytes" "phase unknown said"
expect_exit 0 "raw mlx5 with the stop-copy offset" -- "$DUMP" --summary --payload mlx5 --final-offset 1356 --bandwidth 8G --channels 2 "$WORK/mlx5.bin"
expect_grep "$WORK/out" "initial 1 image 1000 B in 1 record; middle 1 image 300 B in 1 record; final 1 image 4000 B in 1 record;" "images by phase"
expect_grep "$WORK/out" "sent before the guest stopped 1300 B, after 4000 B; STOP_COPY_SIZE estimate 5000 B \(final is 80.0% of it\); stop-copy transfer 0.002 ms at 8 Gbit/s x 2 channels" "downtime figures"
expect_exit 0 "raw mlx5 JSON" -- "$DUMP" --json --payload mlx5 --final-offset 1356 "$WORK/mlx5.bin"
python3 - "$WORK/out" <<'PY' && ok || bad "record/image JSON"
import json, sys
objs = [json.loads(l) for l in open(sys.argv[1])]
recs = [o for o in objs if o["kind"] == "payload_record"]
assert [r["name"] for r in recs] == ["STOP_COPY_SIZE", "FW_DATA", "FW_DATA", "FW_DATA"], recs
for r in recs:
    assert r["payload"] == "mlx5" and {"tag", "flags", "size", "offset"} <= set(r), r
imgs = [o for o in objs if o["kind"] == "payload_image"]
assert [(i["phase"], i["size"]) for i in imgs] == [("initial", 1000), ("middle", 300), ("final", 4000)], imgs
PY
expect_exit 0 "unknown optional record skipped" -- "$VERIFY" --payload mlx5 "$WORK/mlx5-optional.bin"
expect_exit 1 "unknown mandatory record" -- "$VERIFY" --payload mlx5 "$WORK/mlx5-badtag.bin"
expect_grep "$WORK/out" "mlx5-badtag.bin:5372: unknown-mandatory: " "mandatory tag named with offset"
expect_exit 1 "cut inside a record" -- "$VERIFY" --payload mlx5 "$WORK/mlx5-cut.bin"
expect_grep "$WORK/out" "mlx5-cut.bin:5362: truncated: " "cut named"
expect_exit 0 "auto-detected mlx5" -- "$VERIFY" --payload auto "$WORK/mlx5.bin"
expect_exit 0 "hisi with the expected dev_id" -- "$VERIFY" --payload hisi_acc --expect-field dev_id=0xa255 "$WORK/hisi.bin"
expect_exit 1 "hisi with another dev_id" -- "$VERIFY" --payload hisi_acc --expect-field dev_id=0xa256 "$WORK/hisi.bin"
expect_grep "$WORK/out" "hisi.bin:12: payload-compat: device .*dev_id is 0xa255, the destination expects 0xa256" "compat mismatch"
expect_exit 1 "an expected field nothing carries" -- "$VERIFY" --payload mlx5 --expect-field dev_id=1 "$WORK/mlx5.bin"
expect_exit 2 "unknown payload kind" -- "$VERIFY" --payload nvme "$WORK/mlx5.bin"
# QAT: the destination's capabilities must be a superset of the source's.
"$SYNTH" --raw "$WORK/qat.bin" --kind qat || bad "synth --raw qat"
expect_exit 0 "qat capabilities within the destination's" -- "$VERIFY" --payload qat --expect-field 'CONFIG.gencap<=0xffffffffff' "$WORK/qat.bin"
expect_exit 1 "qat capabilities beyond the destination's" -- "$VERIFY" --payload qat --expect-field 'CONFIG.gencap<=0xffff' "$WORK/qat.bin"
expect_grep "$WORK/out" "payload-compat: .*CONFIG.gencap is 0xffffffff, bits 0xffff0000 are beyond what the destination offers \(0xffff\)" "superset rule named"

# Nested: VFIO data inside a QEMU stream is decoded as mlx5, with phases.
"$SYNTH" --qemu "$SRC/tests/data/captures/qemu-7.2-pc-precopy/main.mig" --kind mlx5 --switchover-ack -o "$WORK/q.mig" || bad "synth --qemu"
expect_exit 0 "nested mlx5 verifies" -- "$VERIFY" "$WORK/q.mig"
expect_exit 0 "nested summary" -- "$DUMP" --summary "$WORK/q.mig"
expect_grep "$WORK/out" "^  payload 0000:00:10.0/vfio \(mlx5\): initial 1 image 262144 B in 1 record; middle 2 images 131072 B in 2 records; final 1 image 1048576 B in 1 record;" "nested images by phase"
# Break one FW_DATA record header inside the first device's data: a
# mandatory unknown tag; verify names the file and the chunk's offset.
python3 - "$WORK/q.mig" "$WORK/q-bad.mig" <<'PY'
import sys
b = bytearray(open(sys.argv[1], 'rb').read())
i = b.index(bytes.fromhex('ffffffffef100004'))   # first DEV_DATA_STATE
j = i + 16 + 24                                  # its STOP_COPY_SIZE record, then FW_DATA header
b[j + 12] = 9                                    # FW_DATA tag 0 -> 9, still mandatory
open(sys.argv[2], 'wb').write(b)
PY
expect_exit 1 "corrupted nested payload" -- "$VERIFY" "$WORK/q-bad.mig"
expect_grep "$WORK/out" "q-bad.mig:[0-9]+: unknown-mandatory: device 0000:00:10.0/vfio payload byte 24: " "nested problem with file offset"
expect_exit 0 "--no-payloads skips it" -- "$VERIFY" --no-payloads "$WORK/q-bad.mig"
# Nested mlx5 in a 4-channel migstream set whose final images are packets
# spread over all channels: a device's final image can be reassembled
# before its earlier images are read; images still go in seq order.
"$SYNTH" --kind mlx5 -o "$WORK/m" || bad "synth --kind mlx5"
for order in fwd rev; do
    if [ $order = fwd ]; then files=$(ls "$WORK"/m/*.mig); else files=$(ls -r "$WORK"/m/*.mig); fi
    # shellcheck disable=SC2086
    expect_exit 0 "mlx5 set verifies ($order)" -- "$VERIFY" $files
    # shellcheck disable=SC2086
    expect_exit 0 "mlx5 set summary ($order)" -- "$DUMP" --summary $files
    for dev in 0000:00:02.0 0000:00:03.0; do
        expect_grep "$WORK/out" "^  payload $dev/vfio \(mlx5\): initial 1 image 262144 B in 1 record; middle 2 images 131072 B in 2 records; final 1 image 1048576 B in 1 record;" "$dev images by phase ($order)"
    done
done
finish
