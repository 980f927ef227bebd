#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only
# migstream-replay without QEMU: a fake destination (replay_dest.py) takes
# the connections.  Bytes arrive byte-exactly, main first and the channels
# in capture order; the destination reading channel 1 to its end before
# the main channel does not deadlock the replay; --rate slows it down;
# --to exec writes the main stream unchanged; return-path messages are
# printed and decide the exit status; a reset names the file and offset;
# usage errors exit 2.
. "$(dirname "$0")/lib.bash"
REPLAY=$BIN/migstream-replay
DEST="python3 $SRC/tests/cli/replay_dest.py"
CAP=$SRC/tests/data/captures
Z=$CAP/qemu-7.2-pc-multifd2-zlib
PRE=$CAP/qemu-7.2-pc-precopy/main.mig
M4=$CAP/qemu-7.2-pc-multifd4

dest_pid=
# start_dest NAME ARGS...: the fake destination on TCP in the background,
# saving to $WORK/NAME; $port is the port it listens on.
start_dest() {
    local name=$1
    shift
    mkdir -p "$WORK/$name"
    rm -f "$WORK/port"
    $DEST --listen tcp --port-file "$WORK/port" --out "$WORK/$name" "$@" \
        2>"$WORK/$name.err" &
    dest_pid=$!
    for _ in $(seq 100); do [ -s "$WORK/port" ] && break; sleep 0.05; done
    port=$(cat "$WORK/port" 2>/dev/null)
}
# wait_dest: the destination's exit status (0: every connection ended).
wait_dest() {
    wait "$dest_pid"
    local rc=$?
    dest_pid=
    return $rc
}
# same_conns NAME DIR SUFFIX: what the destination got on connections 0-2
# is DIR/connN.SUFFIX, byte for byte.
same_conns() {
    for n in 0 1 2; do
        cmp -s "$WORK/$1/conn$n" "$2/conn$n.$3" && ok ||
            bad "$1: connection $n differs from $2/conn$n.$3"
    done
}
trap '[ -n "$dest_pid" ] && kill "$dest_pid" 2>/dev/null; rm -rf "$WORK"' EXIT

# ---- a capture directory over TCP: every byte, in accept order ----------------
start_dest zlib --conns 3
expect_exit 0 "replay multifd2-zlib dir" -- timeout 30 "$REPLAY" --to "tcp:127.0.0.1:$port" "$Z"
wait_dest && ok || bad "fake destination failed (zlib)"
same_conns zlib "$Z" bin

# ---- the same capture as a migstream archive: the same bytes -------------------
"$BIN/migstream-archive" -o "$WORK/zlib.mig" "$Z" >/dev/null 2>&1 || bad "archive zlib"
start_dest zarch --conns 3
expect_exit 0 "replay multifd2-zlib archive" -- timeout 30 "$REPLAY" --to "tcp:127.0.0.1:$port" "$WORK/zlib.mig"
wait_dest && ok || bad "fake destination failed (zlib archive)"
same_conns zarch "$Z" bin
# a damaged archive is refused before anything is sent
cp "$WORK/zlib.mig" "$WORK/zbad.mig"
printf '\x55' | dd of="$WORK/zbad.mig" bs=1 seek=200000 conv=notrunc status=none
expect_exit 2 "replay of a damaged archive" -- "$REPLAY" --to "tcp:127.0.0.1:1" "$WORK/zbad.mig"
expect_grep "$WORK/err" "zbad.mig:[0-9]+: payload-check: .*a damaged archive is not replayed" "damaged archive named"

# ---- files; the destination reads channel 1 to its end before the main ------
# channel (QEMU waits for its channels too): a replay that holds channel 1
# back until main is sent deadlocks here (main is 2 MB, far above the
# socket buffers)
sock=$WORK/dest.sock
mkdir -p "$WORK/order"
$DEST --listen "unix:$sock" --conns 2 --read-order 1,0 --out "$WORK/order" \
    --timeout 15 2>"$WORK/order.err" &
dest_pid=$!
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done
expect_exit 0 "replay main + channel, channel read first" -- timeout 30 "$REPLAY" --to "unix:$sock" "$PRE" "$M4/conn1.bin"
wait_dest && ok || bad "fake destination failed (read order): $(cat "$WORK/order.err")"
cmp -s "$WORK/order/conn0" "$PRE" && ok || bad "main channel differs (read order)"
cmp -s "$WORK/order/conn1" "$M4/conn1.bin" && ok || bad "channel 1 differs (read order)"

# ---- the record layout: manifest.json, connN.s2d (index order, not list order)
R=$WORK/rec
mkdir -p "$R"
cp "$Z/conn0.bin" "$R/conn0.s2d"
cp "$Z/conn2.bin" "$R/conn1.s2d"
cp "$Z/conn1.bin" "$R/conn2.s2d"
cat >"$R/manifest.json" <<'EOF'
{"migstream_capture":"1.0","listen":"tcp:127.0.0.1:4444","to":"tcp:127.0.0.1:4445",
 "started":"2026-12-05T22:00:00Z","future_key":[1,2],
 "connections":[
  {"index":2,"kind":"qemu-multifd","s2d":{"file":"conn2.s2d","bytes":"1"}},
  {"index":0,"kind":"qemu-main","s2d":{"file":"conn0.s2d","bytes":"1"},"d2s":{"file":"conn0.d2s","bytes":"0"}},
  {"index":1,"kind":"qemu-multifd","s2d":{"file":"conn1.s2d","bytes":"1"}}]}
EOF
start_dest rec --conns 3
expect_exit 0 "replay a record directory" -- timeout 30 "$REPLAY" --to "tcp:127.0.0.1:$port" "$R"
wait_dest && ok || bad "fake destination failed (record layout)"
same_conns rec "$R" s2d

# ---- --rate: 512 KiB at 256 KiB/s takes about 2 s (only a lower bound) ---------
head -c 524288 "$PRE" >"$WORK/half.mig"
start_dest rate --conns 1
t0=$(date +%s.%N)
expect_exit 0 "replay --rate" -- timeout 30 "$REPLAY" --rate 256K --to "tcp:127.0.0.1:$port" "$WORK/half.mig"
t1=$(date +%s.%N)
wait_dest && ok || bad "fake destination failed (rate)"
cmp -s "$WORK/rate/conn0" "$WORK/half.mig" && ok || bad "--rate: bytes differ"
awk -v a="$t0" -v b="$t1" 'BEGIN { exit !(b - a >= 1.5) }' && ok ||
    bad "--rate 256K sent 512 KiB in $(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }') s (expected >= 1.5)"

# ---- --to exec: the main stream on stdout, byte for byte ------------------------
"$REPLAY" --to exec "$CAP/qemu-7.2-pc-precopy" >"$WORK/exec.out" 2>"$WORK/exec.err" && ok ||
    bad "--to exec failed: $(cat "$WORK/exec.err")"
cmp -s "$WORK/exec.out" "$PRE" && ok || bad "--to exec output differs from main.mig"
expect_exit 2 "--to exec with channels" -- "$REPLAY" --to exec "$Z"
expect_grep "$WORK/err" "3 connections" "--to exec refuses a multi-channel capture"
# a reader that goes away early: exit 1, naming the file and offset
"$REPLAY" --to exec "$PRE" 2>"$WORK/err" | head -c 1000 >/dev/null
[ "${PIPESTATUS[0]}" -eq 1 ] && ok || bad "--to exec into a closed pipe: exit ${PIPESTATUS[0]}, expected 1"
expect_grep "$WORK/err" "main.mig:[0-9]+: write failed" "--to exec: the offset of the failed write"

# ---- the return path: printed; SHUT decides -------------------------------------
PONG=000200040000000b
REQ=00030013000000000000200000001000067063$(printf 2e72616d)
SHUT1=0001000400000001
SHUT0=0001000400000000
start_dest rp1 --conns 1 --reply "$PONG$REQ$SHUT1"
expect_exit 1 "SHUT 1 from the destination" -- timeout 30 "$REPLAY" --to "tcp:127.0.0.1:$port" "$WORK/half.mig"
wait_dest && ok || bad "fake destination failed (rp1)"
expect_grep "$WORK/out" "^return-path 0: PONG 11$" "PONG printed"
expect_grep "$WORK/out" "^return-path 8: REQ_PAGES_ID pc.ram 0x2000 4096$" "REQ_PAGES_ID printed"
expect_grep "$WORK/out" "^return-path 31: SHUT 1$" "SHUT printed"
expect_grep "$WORK/err" "SHUT 1 \(failed\)" "SHUT 1 said on stderr"
expect_grep "$WORK/out" "^not answered: pc.ram 0x2000 " "a page request of a precopy stream is not answered"
start_dest rp0 --conns 1 --reply "$PONG$SHUT0"
expect_exit 0 "SHUT 0 from the destination" -- timeout 30 "$REPLAY" --to "tcp:127.0.0.1:$port" "$WORK/half.mig"
wait_dest && ok || bad "fake destination failed (rp0)"
expect_grep "$WORK/out" "^return-path 8: SHUT 0$" "SHUT 0 printed"
# bytes that are no return path: the problem with its offset, exit 1
start_dest rpbad --conns 1 --reply 0009000400000000
expect_exit 1 "an invalid return path" -- timeout 30 "$REPLAY" --to "tcp:127.0.0.1:$port" "$WORK/half.mig"
wait_dest && ok || bad "fake destination failed (rpbad)"
expect_grep "$WORK/err" "main connection:0: return-path:" "the invalid message named"

# ---- postcopy page requests answered from the capture ---------------------------
# A postcopy stream (synth, from the 7.2 precopy capture): the destination
# asks for the last page of the capture's postcopy part while the device
# state still goes out; that page's record must come before the postcopy
# part's first page (named: its block is not the one before it), never a
# second time, and the stream must stay valid with the same RAM.
"$SYNTH" --qemu "$PRE" --postcopy -o "$WORK/pc.mig" >/dev/null || bad "synth --postcopy failed"
"$DUMP" --json --pages "$WORK/pc.mig" >"$WORK/pc.json"
read -r last_block last_page last_off < <(python3 - "$WORK/pc.json" <<'PY'
import json, sys
L = [json.loads(l) for l in open(sys.argv[1])]
run = next(d["offset"] for d in L if d.get("name") == "POSTCOPY_RUN")
pages = [d for d in L if d.get("kind") == "ram_page" and d["offset"] > run]
print(pages[-1]["block"], pages[-1]["page_offset"], pages[-1]["offset"])
PY
)
first_pc=$(python3 -c '
import json, sys
L = [json.loads(l) for l in open(sys.argv[1])]
run = next(d["offset"] for d in L if d.get("name") == "POSTCOPY_RUN")
print(min(d["offset"] for d in L if d.get("kind") == "ram_page" and d["offset"] > run))' "$WORK/pc.json")
hexname=$(printf %s "$last_block" | od -An -tx1 | tr -d ' \n')
req=$(printf '0003%04x%016x00001000%02x%s' $((13 + ${#last_block})) "$last_page" ${#last_block} "$hexname")
# and a page the postcopy part does not have
miss=$(printf '0004000c%016x00001000' $((0x3fff000)))
start_dest pc --conns 1 --reply-after 100000 --reply "$req$miss"
expect_exit 0 "replay postcopy with a page request" -- timeout 30 "$REPLAY" --rate 1M --to "tcp:127.0.0.1:$port" "$WORK/pc.mig"
wait_dest && ok || bad "fake destination failed (postcopy)"
expect_grep "$WORK/out" "^answered: $last_block 0x$(printf %x "$last_page") from .*pc.mig:$last_off$" "the answer said"
expect_grep "$WORK/out" "^not answered: $last_block 0x3fff000 " "a page the capture lacks said"
"$VERIFY" "$WORK/pc/conn0" >"$WORK/v.out" 2>&1 && ok || bad "the answered stream does not verify: $(head -3 "$WORK/v.out")"
"$DUMP" --json --pages "$WORK/pc/conn0" | python3 -c '
import json, sys
blk, page, first = sys.argv[1], sys.argv[2], int(sys.argv[3])
hits = [d["offset"] for d in map(json.loads, sys.stdin)
        if d.get("kind") == "ram_page" and d["block"] == blk and d["page_offset"] == page]
# once in the precopy part (maybe), once in the postcopy part: before its first page
post = [o for o in hits if o >= first - 64]
sys.exit(0 if len(post) == 1 and post[0] <= first else "%s" % hits)' \
    "$last_block" "$last_page" "$first_pc" && ok || bad "the requested page was not moved forward once"
"$BIN/migstream-extract" --ram "$WORK/ram-a" "$WORK/pc.mig" >/dev/null 2>&1
"$BIN/migstream-extract" --ram "$WORK/ram-b" "$WORK/pc/conn0" >/dev/null 2>&1
diff -r "$WORK/ram-a" "$WORK/ram-b" >/dev/null && [ -n "$(ls "$WORK/ram-a")" ] && ok ||
    bad "RAM of the answered stream differs from the capture's"

# ---- a reset before every byte was taken: exit 1, file and offset ---------------
start_dest reset --conns 1 --reset-after 100000
expect_exit 1 "destination resets" -- timeout 30 "$REPLAY" --to "tcp:127.0.0.1:$port" "$PRE"
wait_dest && ok || bad "fake destination failed (reset)"
expect_grep "$WORK/err" "main.mig:[0-9]+: send failed" "the failed send names file and offset"

# ---- usage and I/O errors: exit 2 --------------------------------------------------
expect_exit 2 "no --to" -- "$REPLAY" "$PRE"
expect_exit 2 "bad --to" -- "$REPLAY" --to ftp:x "$PRE"
expect_exit 2 "bad --rate" -- "$REPLAY" --rate fast --to exec "$PRE"
expect_exit 2 "missing file" -- "$REPLAY" --to exec "$WORK/nothing.mig"
expect_exit 2 "a multifd channel first" -- "$REPLAY" --to exec "$Z/conn1.bin" "$Z/conn0.bin"
expect_grep "$WORK/err" "must be the main channel" "wrong order said"
expect_exit 2 "empty directory" -- "$REPLAY" --to exec "$WORK/order/../rate/.."
expect_exit 2 "nobody listening" -- "$REPLAY" --to "unix:$WORK/none.sock" "$PRE"
expect_exit 0 "--help" -- "$REPLAY" --help
expect_grep "$WORK/out" "--rate" "--help lists --rate"

finish
