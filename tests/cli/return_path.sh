#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only
# The QEMU return path from the command line (spec/qemu-return-path.md):
# migstream-dump lists the real capture's 15 messages in order with their
# offsets and fields (text and JSON); migstream-verify passes it alone and
# with its main stream, and fails with FILE:OFFSET on damaged copies built
# here (a wrong length, a cut, bytes after SHUT, a PONG removed, a request
# for a page the main stream never sent in postcopy); migstream-synth
# --return-path answers a main stream, with SWITCHOVER_ACK when its VFIO
# devices use switchover-ack.
. "$(dirname "$0")/lib.bash"
RP=$SRC/tests/data/captures/qemu-10.0-pc-postcopy/conn0.d2s
MAIN=$SRC/tests/data/captures/qemu-10.0-pc-postcopy/conn0.s2d
command -v python3 >/dev/null || { bad "python3 is needed"; finish; exit 1; }

# ---- dump: every message, in order ---------------------------------------------
expect_exit 0 "dump conn0.d2s" -- "$DUMP" "$RP"
grep -E 'rp_message' "$WORK/out" | awk '{print $1, $3, $4, $5}' >"$WORK/got"
cat >"$WORK/want" <<'EOF'
0 PONG 0x1 
8 PONG 0x2 
16 PONG 0x4 
24 PONG 0x3 
32 REQ_PAGES_ID pc.ram 0x51c0000
55 REQ_PAGES pc.ram 0x5fc0000
71 REQ_PAGES pc.ram 0x2000000
87 REQ_PAGES pc.ram 0x2040000
103 REQ_PAGES pc.ram 0x2f40000
119 REQ_PAGES pc.ram 0x2f80000
135 REQ_PAGES pc.ram 0x3c40000
151 REQ_PAGES pc.ram 0x3c80000
167 REQ_PAGES pc.ram 0x3cc0000
183 REQ_PAGES pc.ram 0x4940000
199 SHUT 0x0 
EOF
if diff "$WORK/want" "$WORK/got" >"$WORK/diff"; then ok; else
    bad "dump lists other messages than the README's"
    sed 's/^/  /' "$WORK/diff" >&2
fi
expect_grep "$WORK/out" '^return path: 15 messages: 1 SHUT 4 PONG 1 REQ_PAGES_ID 9 REQ_PAGES: valid' \
    "dump summary"
expect_grep "$WORK/out" 'qemu-return-path' "dump names the format"

# JSON: one object per message, fields decoded
expect_exit 0 "dump --json" -- "$DUMP" --json "$RP"
python3 - "$WORK/out" >"$WORK/json" 2>&1 <<'PY'
import json, sys
msgs = [o for o in map(json.loads, open(sys.argv[1])) if o["kind"] == "rp_message"]
assert len(msgs) == 15, len(msgs)
assert [m["value"] for m in msgs[:4]] == ["1", "2", "4", "3"]
r = msgs[4]
assert (r["name"], int(r["ram_start"]), r["request_length"], r["block"], r["block_named"]) == \
    ("REQ_PAGES_ID", 0x51c0000, 0x1000, "pc.ram", True), r
assert all(m["name"] == "REQ_PAGES" and not m["block_named"] and m["block"] == "pc.ram"
           for m in msgs[5:14])
assert msgs[14]["name"] == "SHUT" and msgs[14]["value"] == "0" and msgs[14]["offset"] == 199
print("ok")
PY
if grep -qx ok "$WORK/json"; then ok; else bad "dump --json: $(cat "$WORK/json")"; fi

# forced format, and the name in --format
expect_exit 0 "verify --format qemu-return-path" -- \
    "$VERIFY" --format qemu-return-path "$RP"
expect_exit 0 "verify alone" -- "$VERIFY" -v "$RP"
expect_grep "$WORK/out" '^return path: ok: 15 messages; no main stream given' "verify -v alone"

# ---- damaged copies --------------------------------------------------------------
damage() { # NAME PYTHON-EXPRESSION-ON-d (bytearray)
    python3 -c "import sys; d = bytearray(open(sys.argv[1], 'rb').read()); $2; \
open(sys.argv[2], 'wb').write(d)" "$RP" "$WORK/$1"
}
damage badlen 'd[32 + 3] = 20'                # REQ_PAGES_ID len 19 -> 20
expect_exit 1 "wrong REQ_PAGES_ID length" -- "$VERIFY" "$WORK/badlen"
expect_grep "$WORK/out" '/badlen:48: return-path: REQ_PAGES_ID: the name.s length byte' "wrong length: at the name's length byte"
damage badtype 'd[71 + 1] = 9'                # an unknown type at 71
expect_exit 1 "unknown type" -- "$VERIFY" "$WORK/badtype"
expect_grep "$WORK/out" '/badtype:71: return-path: message type 0x0009 is unknown' \
    "unknown type: offset"
damage cut 'del d[100:]'                       # inside the REQ_PAGES at 87
expect_exit 1 "cut" -- "$VERIFY" "$WORK/cut"
expect_grep "$WORK/out" '/cut:100: truncated: input ends inside the REQ_PAGES message at 87' \
    "cut: offset"
damage noshut 'del d[199:]'
expect_exit 1 "no SHUT" -- "$VERIFY" "$WORK/noshut"
expect_grep "$WORK/out" '/noshut:199: missing-end: ' "no SHUT: offset"
damage trailing 'd += d[0:8]'
expect_exit 1 "bytes after SHUT" -- "$VERIFY" "$WORK/trailing"
expect_grep "$WORK/out" '/trailing:207: trailing-data: ' "trailing: offset"
damage shut1 'd[199 + 7] = 1'
expect_exit 1 "SHUT 1" -- "$VERIFY" "$WORK/shut1"
expect_grep "$WORK/out" '/shut1:199: return-path: SHUT 1' "SHUT 1: offset"

# ---- with the main stream ----------------------------------------------------------
if [ -f "$MAIN" ]; then
    expect_exit 0 "main + return path" -- "$VERIFY" -v "$MAIN" "$RP"
    expect_grep "$WORK/out" '^return path: ok: 15 messages, checked against the main stream' \
        "verify -v pair"
    expect_exit 0 "return path + main (other order)" -- "$VERIFY" "$RP" "$MAIN"
    damage nopong3 'del d[24:32]'              # PONG 3 removed
    expect_exit 1 "PONG 3 removed" -- "$VERIFY" "$MAIN" "$WORK/nopong3"
    expect_grep "$WORK/out" '/nopong3:191: return-path: PING 0x3 .* has no PONG' \
        "PONG removed: reported at the SHUT"
    damage badreq 'd[55 + 4:55 + 12] = (0x1000000).to_bytes(8, "big")'
    expect_exit 1 "request for a page sent only in precopy" -- "$VERIFY" "$MAIN" "$WORK/badreq"
    expect_grep "$WORK/out" '/badreq:55: return-path: requested page "pc.ram" 0x1000000 was not sent' \
        "bad request: offset"
    damage badpong 'd[4:8] = (9).to_bytes(4, "big")'
    expect_exit 1 "PONG without PING" -- "$VERIFY" "$MAIN" "$WORK/badpong"
    expect_grep "$WORK/out" '/badpong:0: return-path: PONG 0x9 answers no PING' "PONG 9: offset"
    expect_exit 0 "dump of the pair" -- "$DUMP" --summary "$MAIN" "$RP"
    expect_grep "$WORK/out" '^return path: 15 messages' "pair summary"
    # synth answers the real main stream as its destination did, apart from
    # the page requests and the PONG order
    SYNTH_RP=$WORK/synth.d2s
    expect_exit 0 "synth --return-path" -- "$SYNTH" --return-path "$MAIN" -o "$SYNTH_RP"
    expect_exit 0 "verify the synthesized pair" -- "$VERIFY" "$MAIN" "$SYNTH_RP"
else
    echo "SKIP: $MAIN not available: pair checks not run"
fi

# ---- switchover-ack: synth writes a main stream with DEV_INIT_DATA_SENT and
# its return path; without the ack the pair fails at the SHUT
BASE=$SRC/tests/data/captures/qemu-7.2-pc-precopy/main.mig
expect_exit 0 "synth --qemu --switchover-ack" -- \
    "$SYNTH" --qemu "$BASE" --switchover-ack --devices 2 -o "$WORK/sa.mig"
expect_exit 0 "synth --return-path (switchover-ack)" -- \
    "$SYNTH" --return-path "$WORK/sa.mig" -o "$WORK/sa.d2s"
expect_exit 0 "dump the synthesized return path" -- "$DUMP" "$WORK/sa.d2s"
expect_grep "$WORK/out" '^ +0 +rp_message +SWITCHOVER_ACK' "SWITCHOVER_ACK first"
expect_grep "$WORK/out" '^ +4 +rp_message +SHUT 0x0' "then SHUT"
expect_exit 0 "switchover-ack pair" -- "$VERIFY" "$WORK/sa.mig" "$WORK/sa.d2s"
tail -c 8 "$WORK/sa.d2s" >"$WORK/sa-noack.d2s"
expect_exit 1 "switchover-ack pair without the ack" -- \
    "$VERIFY" "$WORK/sa.mig" "$WORK/sa-noack.d2s"
expect_grep "$WORK/out" '/sa-noack.d2s:0: return-path: the main stream uses switchover-ack' \
    "missing ack: at the SHUT"
expect_exit 2 "synth --return-path of a non-main stream" -- \
    "$SYNTH" --return-path "$RP" -o "$WORK/x.d2s"
if [ -e "$WORK/x.d2s" ]; then bad "a failed --return-path left its output"; else ok; fi
finish
