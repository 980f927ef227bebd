#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only
# Real QEMU 7.2 captures: main streams decode and verify completely; the
# section list matches what QEMU's analyze-migration.py printed; multifd
# channel sets verify in any file order with the per-channel totals the
# captures' README gives.
. "$(dirname "$0")/lib.bash"
C=$SRC/tests/data/captures
P=$C/qemu-7.2-pc-precopy/main.mig
for f in "$P" "$C"/qemu-7.2-pc-multifd4/conn0.bin "$C"/qemu-7.2-pc-multifd2-zlib/conn0.bin; do
    expect_exit 0 "verify $(basename "$(dirname "$f")")/$(basename "$f")" -- "$VERIFY" "$f"
done
expect_exit 0 "dump --summary" -- "$DUMP" --summary "$P"
expect_grep "$WORK/out" "^summary: QEMU stream, machine pc-i440fx-7.2, .* 371 pages sent \+ 16281 zero pages: valid$" "page totals QEMU reported"
expect_grep "$WORK/out" "^  ram pc.ram: 0x4000000 bytes, " "pc.ram block"

expect_exit 0 "dump --json" -- "$DUMP" --json "$P"
python3 - "$WORK/out" "$C/qemu-7.2-pc-precopy/reference-state.json" <<'PY' && ok || bad "section list / JSON shape"
import json, sys
objs = [json.loads(l) for l in open(sys.argv[1])]
ref = list(json.load(open(sys.argv[2])).keys())
cfg = [o for o in objs if o["kind"] == "configuration"]
assert len(cfg) == 1 and cfg[0]["machine"] == "pc-i440fx-7.2" and "uuid" not in cfg[0], cfg
secs = [o for o in objs if o["kind"] == "section"]
for o in secs:
    for k in ("section_type", "section_id", "idstr", "instance_id", "version_id", "offset"):
        assert k in o, (k, o)
    assert o["section_type"] in ("start", "part", "end", "full"), o
# analyze-migration.py lists each device once, keyed "name (section_id)",
# in stream order of first appearance.
seen, order = set(), []
for o in secs:
    key = "%s (%d)" % (o["idstr"], o["section_id"])
    if key not in seen:
        seen.add(key)
        order.append(key)
assert order == ref, (order, ref)
s = objs[-1]
assert s["kind"] == "qemu_summary" and s["valid"] is True, s
assert s["normal_pages"] == 371 and s["zero_pages"] == 16281, s
PY

# What the destination expects of the configuration (QEMU rejects a
# mismatch): checked with the configuration record's offset.
expect_exit 0 "expectations met" -- "$VERIFY" --expect-machine=pc-i440fx-7.2 --expect-page-bits=12 "$P"
expect_exit 1 "machine type mismatch" -- "$VERIFY" --expect-machine=pc-q35-7.2 "$P"
expect_grep "$WORK/out" "main.mig:8: configuration: machine type is pc-i440fx-7.2, the destination expects pc-q35-7.2" "machine mismatch named"
expect_exit 1 "uuid expected" -- "$VERIFY" --expect-uuid=00112233445566778899aabbccddeeff "$P"
expect_grep "$WORK/out" "main.mig:8: configuration: VM UUID is absent" "uuid mismatch named"
expect_exit 1 "capability expected" -- "$VERIFY" --expect-capability=x-ignore-shared "$P"
expect_exit 2 "bad uuid option" -- "$VERIFY" --expect-uuid=xyz "$P"

# Multifd channel sets: any order; a channel or the main channel missing.
M4=$C/qemu-7.2-pc-multifd4
Z2=$C/qemu-7.2-pc-multifd2-zlib
expect_exit 0 "multifd4 set" -- "$VERIFY" "$M4/conn3.bin" "$M4/conn1.bin" "$M4/conn0.bin" "$M4/conn4.bin" "$M4/conn2.bin"
expect_exit 0 "zlib set" -- "$VERIFY" "$Z2/conn2.bin" "$Z2/conn0.bin" "$Z2/conn1.bin"
expect_exit 1 "multifd set without main" -- "$VERIFY" "$M4/conn1.bin" "$M4/conn2.bin"
expect_grep "$WORK/out" "channel-set: 2 multifd channel files but no main channel" "main channel missing"
expect_exit 1 "multifd set with a gap" -- "$VERIFY" "$M4/conn0.bin" "$M4/conn1.bin" "$M4/conn2.bin" "$M4/conn4.bin"
expect_grep "$WORK/out" "channel-set: multifd channel 2 is missing" "channel gap"
# the last channels missing (no gap in the ids): QEMU 7.2's packet numbers
# (skipped numbers come back as stale copies) show it
expect_exit 1 "multifd4 without its last two channels" -- "$VERIFY" "$M4/conn0.bin" "$M4/conn1.bin" "$M4/conn2.bin"
expect_grep "$WORK/out" "multifd: 8 multifd packets \(\+ 2 stale copies\) but QEMU numbered them up to 16" "last channels missing"
expect_exit 1 "zlib without its last channel" -- "$VERIFY" "$Z2/conn0.bin" "$Z2/conn1.bin"
expect_grep "$WORK/out" "multifd: 6 multifd packets \(\+ 1 stale copies\)" "last zlib channel missing"
expect_exit 1 "a channel twice" -- "$VERIFY" "$M4"/conn*.bin "$M4/conn2.bin"
expect_grep "$WORK/out" "conn2.bin:24: channel-set: multifd channel id 1 appears twice" "duplicate channel"
head -c 100000 "$M4/conn1.bin" > "$WORK/cut1.bin"
expect_exit 1 "cut channel" -- "$VERIFY" "$M4/conn0.bin" "$WORK/cut1.bin" "$M4/conn2.bin" "$M4/conn3.bin" "$M4/conn4.bin"
expect_grep "$WORK/out" "cut1.bin:100000: truncated: channel 0: input ends inside the packet at 1408" "cut channel offset"
expect_exit 0 "dump --json multifd4" -- "$DUMP" --json "$M4"/conn*.bin
python3 - "$WORK/out" <<'PY' && ok || bad "multifd JSON / per-channel totals"
import json, sys
objs = [json.loads(l) for l in open(sys.argv[1])]
chans = [o for o in objs if o["kind"] == "channel"]
assert sorted(o["channel_id"] for o in chans) == [0, 1, 2, 3], chans
assert all("uuid" in o and "file" in o for o in chans)
pk = [o for o in objs if o["kind"] == "multifd_packet"]
assert all("channel_id" in o and "flags" in o and "packet_num" in o and
           "normal_pages" in o and "zero_pages" in o and "payload_size" in o for o in pk)
s = objs[-1]
want = {0: (5, 3, 189), 1: (5, 3, 45), 2: (5, 3, 3), 3: (4, 3, 46)}
got = {c["channel_id"]: (c["packets"], c["sync_packets"], c["normal_pages"]) for c in s["channels"]}
assert got == want, got
assert s["normal_pages"] == 283, s["normal_pages"]
PY
printf 'hello world, not a stream' > "$WORK/text"
expect_exit 1 "verify text" -- "$VERIFY" "$WORK/text"
expect_grep "$WORK/out" ":0: format-unknown:" "unknown format"
# A cut capture fails with an offset, from a file and from a pipe.
head -c 1000000 "$P" > "$WORK/cut.mig"
expect_exit 1 "cut capture" -- "$VERIFY" "$WORK/cut.mig"
expect_grep "$WORK/out" "cut.mig:1000000: truncated: input ends inside section 2 \(part ram\)" "cut capture offset"
expect_exit 1 "cut capture from a pipe" -- bash -c "head -c 1700000 '$P' | '$VERIFY' -"
expect_grep "$WORK/out" "^-:1700000: truncated: " "cut pipe offset"
finish
