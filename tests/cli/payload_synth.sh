#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only
# migstream-synth --kind KIND writes valid VFIO driver payloads (spec/payloads.md)
# in every carrier: --raw captures (with DIR/final-offset), migstream v1 sets,
# QEMU main streams (--qemu BASE) and multifd sets; a corrupted payload byte
# makes migstream-verify fail.
. "$(dirname "$0")/lib.bash"
BASE=$SRC/tests/data/captures/qemu-7.2-pc-precopy/main.mig
SIZES=(--initial-size 3000 --middle 2 --middle-size 1000 --final-size 5000)
HAVE_PAYLOAD=0
"$DUMP" --help | grep -q -- --payload && HAVE_PAYLOAD=1
[ $HAVE_PAYLOAD = 1 ] || echo "migstream-dump has no --payload: raw checks skipped"

# kind: expected "initial middle final" image counts and final image bytes
# of a --raw capture (with --final-offset) with SIZES
declare -A WANT=(
    [mlx5]="1 2 1 5000" [virtio]="1 2 1 4984" [hisi_acc]="1 0 1 136"
    [qat]="1 0 1 -" [xe]="0 0 1 -" [pds]="0 0 1 5000")
for k in mlx5 virtio hisi_acc qat xe pds; do
    r=$WORK/$k.bin e=$WORK/e-$k
    expect_exit 0 "synth --raw $k" -- "$SYNTH" --raw "$r" --kind "$k" --expect-dir "$e" "${SIZES[@]}"
    [ -s "$e/final-offset" ] && ok || bad "$k: no final-offset"
    if [ $HAVE_PAYLOAD = 1 ]; then
        fo=$(cat "$e/final-offset")
        expect_exit 0 "verify --payload $k" -- "$VERIFY" --payload "$k" --final-offset "$fo" "$r"
        expect_exit 0 "dump --payload $k --json" -- "$DUMP" --payload "$k" --final-offset "$fo" --json "$r"
        python3 - "$WORK/out" ${WANT[$k]} <<'PY' && ok || bad "$k: raw capture images"
import json, sys
objs = [json.loads(l) for l in open(sys.argv[1])]
last = {}
for o in objs:
    if o.get("kind") in ("image", "payload_image") and "seq" in o:
        last[o["seq"]] = o
n = {"initial": 0, "middle": 0, "final": 0}
for o in last.values():
    n[o["phase"]] += 1
want = [int(x) for x in sys.argv[2:5]]
assert [n["initial"], n["middle"], n["final"]] == want, (n, want)
fin = [o for o in last.values() if o["phase"] == "final"]
if sys.argv[5] != "-":
    assert fin[0].get("size", fin[0].get("length")) == int(sys.argv[5]), fin
PY
        # detection names the kind (pds cannot be detected)
        if [ "$k" != pds ]; then
            expect_exit 0 "verify --payload auto $k" -- "$VERIFY" --payload auto "$r"
        fi
    fi
    # migstream v1 set, chunks and packets
    expect_exit 0 "synth v1 $k" -- "$SYNTH" --kind "$k" "${SIZES[@]}" --channels 2 --seed 4 -o "$WORK/v1-$k"
    expect_exit 0 "verify v1 $k" -- "$VERIFY" "$WORK/v1-$k"/*.mig
    expect_exit 0 "dump v1 $k" -- "$DUMP" "$WORK/v1-$k"/*.mig
    expect_grep "$WORK/out" "payload $k" "v1 $k device kind"
    # multifd set: all device state in the final phase
    expect_exit 0 "synth multifd $k" -- "$SYNTH" --multifd 2 --kind "$k" --final-size 5000 --ram-size 64K --ram-passes 2 -o "$WORK/mfd-$k"
    expect_exit 0 "verify multifd $k" -- "$VERIFY" "$WORK/mfd-$k"/*.mig
    # QEMU main stream
    if [ -n "$BASE" ] && [ -f "$BASE" ]; then
        expect_exit 0 "synth qemu $k" -- "$SYNTH" --qemu "$BASE" --kind "$k" "${SIZES[@]}" -o "$WORK/q-$k.mig"
        expect_exit 0 "verify qemu $k" -- "$VERIFY" "$WORK/q-$k.mig"
    fi
done

# Corruptions: a byte of the payload changed makes the payload invalid.
corrupt() { # FILE OFFSET HEXBYTE
    printf "\\x$3" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}
if [ $HAVE_PAYLOAD = 1 ]; then
    cp "$WORK/mlx5.bin" "$WORK/c.bin"; corrupt "$WORK/c.bin" 0 09   # STOP_COPY_SIZE record_size 9
    expect_exit 1 "mlx5 record size" -- "$VERIFY" --payload mlx5 "$WORK/c.bin"
    # virtio: DEV_FEATURES (at 16) turned into a second DEVICE_STATUS type: order
    cp "$WORK/virtio.bin" "$WORK/c.bin"; corrupt "$WORK/c.bin" 16 05   # 0x105 first
    expect_exit 1 "virtio part order" -- "$VERIFY" --payload virtio "$WORK/c.bin"
    cp "$WORK/hisi_acc.bin" "$WORK/c.bin"; corrupt "$WORK/c.bin" 0 00
    expect_exit 1 "hisi magic" -- "$VERIFY" --payload hisi_acc "$WORK/c.bin"
    cp "$WORK/qat.bin" "$WORK/c.bin"; corrupt "$WORK/c.bin" 8 11         # preh_len 17
    expect_exit 1 "qat preamble" -- "$VERIFY" --payload qat "$WORK/c.bin"
    cp "$WORK/xe.bin" "$WORK/c.bin"; corrupt "$WORK/c.bin" 0 02          # version 2
    expect_exit 1 "xe version" -- "$VERIFY" --payload xe "$WORK/c.bin"
    head -c 65537 /dev/zero > "$WORK/big.bin"
    expect_exit 1 "pds over 64K" -- "$VERIFY" --payload pds "$WORK/big.bin"
fi
# Nested: the payload inside a migstream v1 set (first image at its first
# CHUNK: the hisi magic's first byte).
python3 - "$WORK/v1-hisi_acc/channel-0.mig" <<'PY' && ok || bad "corrupt nested hisi"
import sys
p = sys.argv[1]; b = bytearray(open(p, "rb").read())
i = b.find(bytes.fromhex("dedecadeedfeccaa"))
assert i > 0
b[i] ^= 0xff
open(p, "wb").write(b)
PY
expect_exit 1 "nested hisi magic in a v1 set" -- "$VERIFY" "$WORK/v1-hisi_acc"/*.mig

# Fixed-size kinds ignore the size options; default migstream sets stay raw.
"$SYNTH" --raw "$WORK/h2.bin" --kind hisi_acc --final-size 9M --initial-size 0
[ "$(stat -c %s "$WORK/h2.bin")" = 176 ] && ok || bad "hisi_acc not 176 bytes"
"$SYNTH" --raw "$WORK/p2.bin" --kind pds --final-size 1M
[ "$(stat -c %s "$WORK/p2.bin")" = 65536 ] && ok || bad "pds not capped at 64K"
expect_exit 2 "--raw with -o" -- "$SYNTH" --raw "$WORK/x.bin" -o "$WORK/x"
expect_exit 2 "--raw with --devices 2" -- "$SYNTH" --raw "$WORK/x.bin" --devices 2
finish
