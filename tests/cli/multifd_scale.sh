#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only
# Reassembly at scale (issue 4): 4 VFIO devices of 100 MiB final state in
# 1 MiB device-state buffers, shuffled over 6 multifd channels.  Every
# image must come back byte-exact; the set holds early buffers as views of
# the mapped files, so this also shows it does not copy them.
. "$(dirname "$0")/lib.bash"
EXTRACT=$BIN/migstream-extract
D=$WORK/set
E=$WORK/expect
expect_exit 0 "synth 4 x 100 MiB over 6 channels" -- \
    "$SYNTH" --multifd 6 --devices 4 --final-size 100M --packet-size 1M --seed 11 -o "$D" --expect-dir "$E"
expect_exit 0 "verify the set (files reversed)" -- "$VERIFY" --verbose $(ls -r "$D"/*.mig)
expect_grep "$WORK/out" "migration: ok: 1 main channel, 6 multifd channels, 4 device images reassembled" "4 images reassembled"
while read -r n idstr _; do
    expect_exit 0 "extract $idstr" -- "$EXTRACT" --device "$idstr" --out "$WORK/dev.bin" --phase final "$D"/*.mig
    cmp -s "$WORK/dev.bin" "$E/$n.final" && ok || bad "$idstr: reassembled image differs from what synth wrote"
done < "$E/devices"
# One buffer of one device dropped from a channel: the set names the idx.
python3 - "$D/channel-2.mig" "$WORK/drop.mig" <<'PY' || bad "could not build the damaged channel"
import struct, sys
b = open(sys.argv[1], 'rb').read()
o, out, dropped = 64, bytearray(b[:64]), False
while o < len(b):
    flags = struct.unpack('>I', b[o + 8:o + 12])[0]
    if flags & 0x40:
        n = 276 + struct.unpack('>I', b[o + 272:o + 276])[0]
        if not dropped and not struct.unpack('>I', b[o + 284:o + 288])[0] & 1:
            dropped = True
            o += n
            continue
    else:
        pa, npg, nps = struct.unpack('>III', b[o + 12:o + 24])
        comp = flags & 0x3e
        n = 320 + 8 * 128 + ((npg * 4096 if comp == 0 else nps) if npg else 0)
    out += b[o:o + n]
    o += n
assert dropped
open(sys.argv[2], 'wb').write(out)
PY
expect_exit 1 "a dropped device-state buffer" -- "$VERIFY" "$D/main.mig" "$D/channel-0.mig" "$D/channel-1.mig" "$WORK/drop.mig" "$D/channel-3.mig" "$D/channel-4.mig" "$D/channel-5.mig"
expect_grep "$WORK/out" ": packet-missing: .*buffer idx [0-9]+ never arrived" "missing buffer named"
finish
