#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only
# QEMU postcopy through the tools: the real QEMU 10.0 postcopy capture
# (verify says what it could not check without a JSON trailer, and decodes
# with one borrowed via --vmdesc; dump lists the README's commands at the
# README's offsets; extract --ram gives the README's sha256 for all six
# blocks; damage in the command area fails at its offset), and synth
# --postcopy streams with a preempt channel round-tripping through verify
# and extract.  The expectations are read from the capture's README here,
# not from the tools.
. "$(dirname "$0")/lib.bash"
EXTRACT=$BIN/migstream-extract
DIR=$SRC/tests/data/captures/qemu-10.0-pc-postcopy
CAP=$DIR/conn0.s2d
README=$DIR/README.md
OTHER=$SRC/tests/data/captures/qemu-10.0-pc-multifd4-zstd/conn0.bin
BASE=$SRC/tests/data/captures/qemu-7.2-pc-precopy/main.mig
command -v python3 >/dev/null || { bad "python3 is needed"; finish; exit 1; }
command -v sha256sum >/dev/null || { bad "sha256sum is needed"; finish; exit 1; }

# ---- verify: valid, but not everything checked without a trailer ----------
expect_exit 0 "verify the capture" -- "$VERIFY" "$CAP"
expect_grep "$WORK/out" "not checked: 30 of 63 sections not decoded: no JSON trailer" \
    "verify says 30 sections were not decoded"
expect_exit 0 "verify -v the capture" -- "$VERIFY" -v "$CAP"
grep -q "conn0.s2d: ok: " "$WORK/out" && bad "verify -v says a plain ok" || ok
expect_grep "$WORK/out" "ok as far as decoded" "verify -v qualifies its ok"
expect_grep "$WORK/out" "give --vmdesc FILE" "verify -v names --vmdesc"
# a trailer of the same machine (pc-i440fx-10.0, same devices) from the
# multifd capture: all but the sections the running guest sent more of
expect_exit 0 "verify --vmdesc" -- "$VERIFY" -v --vmdesc "$OTHER" "$CAP"
expect_grep "$WORK/out" "2 of 63 sections not decoded: the JSON trailer taken from another stream" \
    "borrowed trailer: 2 sections left"
python3 - "$OTHER" "$WORK/desc.json" <<'PY'
import struct, sys
d = open(sys.argv[1], 'rb').read()
for i in range(len(d) - 6, 0, -1):   # 0x06, be32 n, n bytes of JSON at the end
    if d[i] == 6 and d[i + 5:i + 6] == b'{' and struct.unpack('>I', d[i+1:i+5])[0] == len(d) - i - 5:
        open(sys.argv[2], 'wb').write(d[i + 5:])
        break
PY
expect_exit 0 "verify --vmdesc JSON" -- "$VERIFY" -v --vmdesc "$WORK/desc.json" "$CAP"
expect_grep "$WORK/out" "2 of 63 sections not decoded" "a raw JSON --vmdesc works the same"
expect_exit 0 "dump --vmdesc --state" -- "$DUMP" --state --vmdesc "$OTHER" "$CAP"
expect_grep "$WORK/out" '"timer \(0\)"' "timer state decoded"
expect_exit 2 "--vmdesc of a file without a trailer" -- "$VERIFY" --vmdesc "$CAP" "$CAP"

# ---- dump: the README's commands, in order, at its offsets ----------------
python3 - "$README" > "$WORK/want-cmds" <<'PY'
import re, sys
for line in open(sys.argv[1]):
    m = re.match(r'^(0x[0-9a-f]{8})\s+([A-Z_]+)\s', line)
    if m:
        print(int(m.group(1), 16), m.group(2))
PY
[ "$(wc -l < "$WORK/want-cmds")" -eq 16 ] && ok || bad "README lists $(wc -l < "$WORK/want-cmds") commands, expected 16"
expect_exit 0 "dump the capture" -- "$DUMP" "$CAP"
awk '$2 == "command" { n = $3 == "(packaged)" ? $4 : $3; print $1, n }' "$WORK/out" > "$WORK/got-cmds"
cmp -s "$WORK/want-cmds" "$WORK/got-cmds" && ok || {
    bad "dump's commands differ from the README"; diff "$WORK/want-cmds" "$WORK/got-cmds" | head >&2; }
# the discard ranges as the README states them ("start 0x.. len 0x..")
python3 - "$README" > "$WORK/want-disc" <<'PY'
import re, sys
for line in open(sys.argv[1]):
    m = re.search(r"ramblock '([^']+)' ranges (.*)$", line)
    if m:
        for s, l in re.findall(r'start (0x[0-9a-f]+) len (0x[0-9a-f]+)', m.group(2)):
            print(m.group(1), int(s, 16), int(l, 16))
PY
"$DUMP" --json "$CAP" | python3 -c '
import json, sys
for l in sys.stdin:
    e = json.loads(l)
    if e.get("kind") == "ram_discard":
        print(e["block"], e["ram_start"], e["ram_length"])' > "$WORK/got-disc"
[ -s "$WORK/want-disc" ] && cmp -s "$WORK/want-disc" "$WORK/got-disc" && ok || {
    bad "discard ranges differ from the README"; diff "$WORK/want-disc" "$WORK/got-disc" | head >&2; }

# ---- extract --ram: the README's sha256 of every block --------------------
expect_exit 0 "extract --ram" -- "$EXTRACT" --ram "$WORK/ram" "$CAP"
python3 - "$README" > "$WORK/want-sha" <<'PY'
import re, sys
for line in open(sys.argv[1]):
    m = re.match(r'^\| `([^`]+)` \| 0x[0-9a-f]+ \| `([0-9a-f]{64})`', line)
    if m:
        print(m.group(2), m.group(1))
PY
[ "$(wc -l < "$WORK/want-sha")" -eq 6 ] && ok || bad "README lists $(wc -l < "$WORK/want-sha") blocks, expected 6"
while read -r sha name; do
    got=$(sha256sum "$WORK/ram/${name#/}" 2>/dev/null | cut -d' ' -f1)
    [ "$got" = "$sha" ] && ok || bad "block $name: sha256 $got, README $sha"
done < "$WORK/want-sha"
# sparse: the 512 MiB pc.ram takes about the pages that were sent
used=$(du -k "$WORK/ram/pc.ram" | cut -f1)
[ "$used" -lt 65536 ] && ok || bad "pc.ram not sparse: $used KiB on disk"

# ---- damage in the command area fails at its offset -----------------------
damage() { # OFFSET BYTE: a copy of the capture with one byte changed
    python3 - "$CAP" "$WORK/bad.s2d" "$1" "$2" <<'PY'
import sys
d = bytearray(open(sys.argv[1], 'rb').read())
d[int(sys.argv[3], 0)] = int(sys.argv[4], 0)
open(sys.argv[2], 'wb').write(d)
PY
}
damage 0x62e155 1   # the first DISCARD's version byte
expect_exit 1 "DISCARD version 1" -- "$VERIFY" "$WORK/bad.s2d"
expect_grep "$WORK/out" "bad.s2d:6480213: command: POSTCOPY_RAM_DISCARD version 1" "DISCARD version at its offset"
damage 0x62e252 5   # POSTCOPY_LISTEN (inside the package) made RUN
expect_exit 1 "RUN before LISTEN" -- "$VERIFY" "$WORK/bad.s2d"
expect_grep "$WORK/out" "bad.s2d:6480464: command: POSTCOPY_RUN in postcopy state discarding" "RUN before LISTEN at its offset"
damage 0x2b 0x06    # ADVISE made DISCARD (cmd 3 -> 6) before any ADVISE
expect_exit 1 "DISCARD before ADVISE" -- "$VERIFY" "$WORK/bad.s2d"
expect_grep "$WORK/out" "bad.s2d:41: command: POSTCOPY_RAM_DISCARD in postcopy state none" "DISCARD before ADVISE at its offset"
damage 0x1d 0x02    # OPEN_RETURN_PATH made a PING of 0 bytes
expect_exit 1 "PING of 0 bytes" -- "$VERIFY" "$WORK/bad.s2d"
expect_grep "$WORK/out" "bad.s2d:27: command: PING with 0 argument bytes" "bad length at its offset"
rm -f "$WORK/bad.s2d"

# ---- synth --postcopy round trip, with a preempt channel ------------------
S=$WORK/s
expect_exit 0 "synth --postcopy" -- "$SYNTH" --qemu "$BASE" --postcopy --preempt "$S.pre" -o "$S.mig" --expect-dir "$S.exp" --seed 3
expect_exit 0 "verify main + preempt" -- "$VERIFY" -v "$S.mig" "$S.pre"
expect_grep "$WORK/out" "1 postcopy-preempt channel" "the preempt channel joined"
expect_grep "$WORK/out" "sections not decoded: no JSON trailer" "synth's stream has no trailer"
expect_exit 0 "verify with BASE's trailer" -- "$VERIFY" --vmdesc "$BASE" "$S.mig" "$S.pre"
[ ! -s "$WORK/out" ] && ok || bad "verify --vmdesc BASE still leaves something unchecked"
expect_exit 0 "dump the preempt channel" -- "$DUMP" --pages "$S.mig" "$S.pre"
expect_grep "$WORK/out" "qemu-preempt" "dump names the format"
awk '/qemu-preempt/ { p = 1 } p' "$WORK/out" > "$WORK/pre-dump"
expect_grep "$WORK/pre-dump" "ram_page +(page|zero) pc.ram" "dump shows preempt pages"
# alone, a preempt channel cannot be checked against its blocks
expect_exit 1 "a preempt channel alone" -- "$DUMP" --format qemu-preempt "$S.pre"
expect_grep "$WORK/err" "no main channel" "alone: says why"
"$DUMP" "$S.mig" | awk '$2 == "command" { print ($3 == "(packaged)" ? $4 : $3) }' | uniq > "$WORK/seq"
printf '%s\n' OPEN_RETURN_PATH PING POSTCOPY_ADVISE POSTCOPY_RAM_DISCARD PING PACKAGED \
    POSTCOPY_LISTEN PING POSTCOPY_RUN PING > "$WORK/seq-want"
cmp -s "$WORK/seq" "$WORK/seq-want" && ok || { bad "synth's command order"; cat "$WORK/seq" >&2; }
expect_exit 0 "extract main + preempt" -- "$EXTRACT" --ram "$S.ram" "$S.mig" "$S.pre"
while read -r k len name; do
    cmp -s "$S.ram/${name#/}" "$S.exp/ram-$k.bin" && ok || bad "synth block $name differs"
done < "$S.exp/ram"
# without its preempt channel the RAM is not the destination's
expect_exit 0 "extract main alone" -- "$EXTRACT" --ram "$S.alone" "$S.mig"
cmp -s "$S.alone/pc.ram" "$S.exp/ram-0.bin" && bad "pc.ram right without the preempt pages" || ok
# the preempt channel must belong to a postcopy main stream
expect_exit 1 "preempt with a precopy main" -- "$VERIFY" --format qemu-preempt "$BASE" "$S.pre"
expect_grep "$WORK/out" "channel-set: a postcopy-preempt channel, but the main stream never advised" \
    "preempt channel without postcopy"
# a preempt page for a block the main stream does not list
python3 - "$WORK/evil.pre" <<'PY'
import struct, sys
name = b'nosuch'
open(sys.argv[1], 'wb').write(struct.pack('>Q', 0x1000 | 0x02) + bytes([len(name)]) + name +
                              b'\0' + struct.pack('>Q', 0x10))
PY
expect_exit 1 "preempt page of an unlisted block" -- "$VERIFY" "$S.mig" "$WORK/evil.pre"
expect_grep "$WORK/out" "evil.pre:0: ram: preempt-channel page for RAM block \"nosuch\"" "unlisted block at its offset"
# a return path (be16 type, be16 len: PONG 1) has no magic either, but does
# not start like a page record: it is read as a return path (cut before its
# SHUT), not taken for the preempt channel
printf '\000\002\000\004\000\000\000\001' > "$WORK/rp.bin"
expect_exit 1 "a return path beside the main stream" -- "$VERIFY" "$S.mig" "$WORK/rp.bin"
expect_grep "$WORK/out" "rp.bin:8: missing-end: .*without SHUT" "the return path is not read as preempt"
# deterministic
"$SYNTH" --qemu "$BASE" --postcopy --preempt "$S.pre2" -o "$S.mig2" --seed 3
cmp -s "$S.mig" "$S.mig2" && cmp -s "$S.pre" "$S.pre2" && ok || bad "synth --postcopy not deterministic"
expect_exit 2 "--postcopy without --qemu" -- "$SYNTH" --postcopy -o "$WORK/x.mig"
expect_exit 1 "--postcopy on a postcopy base" -- "$SYNTH" --qemu "$CAP" --postcopy -o "$WORK/x.mig"

finish
