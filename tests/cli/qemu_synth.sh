#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only
# migstream-synth --qemu: VFIO devices inserted into a real QEMU 7.2
# capture.  The output verifies and dumps, phases are attributed as QEMU's
# markers say (with and without switchover-ack), BASE's own bytes are all
# still there unchanged, the mlx5 payload is a valid SW-header stream, and
# any truncation makes migstream-verify exit 1 with the offset.
. "$(dirname "$0")/lib.bash"
EXTRACT=$BIN/migstream-extract
CAPS=$SRC/tests/data/captures
BASE=$CAPS/qemu-7.2-pc-precopy/main.mig
command -v python3 >/dev/null || { bad "python3 is needed"; finish; exit 1; }

cat > "$WORK/chk.py" <<'PY'
import json, struct, sys

def events(path):
    return [json.loads(l) for l in open(path)]

def inserted(evs, base, out):
    """OUT minus the sections of devices BASE does not have == BASE."""
    b, o = open(base, 'rb').read(), open(out, 'rb').read()
    start, cut = {}, []
    for e in evs:
        if e['kind'] == 'section' and e['idstr'].startswith('0000:00:1'):
            start[e['section_id']] = e['offset']
        if e['kind'] == 'footer' and e['section_id'] in start:
            cut.append((start.pop(e['section_id']), e['offset'] + 5))
    rest, pos = b'', 0
    for s, t in sorted(cut):
        rest += o[pos:s]
        pos = t
    rest += o[pos:]
    if rest != b:
        sys.exit('output without the inserted sections differs from BASE')
    print(len(cut))

def phases(evs, ack, devices):
    """DATA_STATE phases follow the markers; INIT_DATA_SENT once if ack."""
    sec_type, seen_init, counts = {}, {}, {}
    for e in evs:
        if e['kind'] == 'section':
            sec_type[e['section_id']] = e['section_type']
        if e['kind'] != 'vfio_marker':
            continue
        sid, m, ph = e['section_id'], e['marker'], e['phase']
        t = sec_type[sid]
        if m == 'DEV_INIT_DATA_SENT':
            if not ack or seen_init.get(sid) or t != 'part':
                sys.exit('unexpected DEV_INIT_DATA_SENT in section %d' % sid)
            seen_init[sid] = True
        if m == 'DEV_DATA_STATE':
            want = ('final' if t == 'end' else
                    'middle' if seen_init.get(sid) else 'initial')
            if ph != want or t not in ('part', 'end'):
                sys.exit('section %d %s: data phase %s, expected %s' % (
                    sid, t, ph, want))
            counts[(sid, ph)] = counts.get((sid, ph), 0) + int(e['data_size'])
    if ack and len(seen_init) != devices:
        sys.exit('DEV_INIT_DATA_SENT for %d of %d devices' % (
            len(seen_init), devices))
    for k in sorted(counts):
        print(k[0], k[1], counts[k])

def order(evs):
    """Section order: RAM PART, then device PARTs, as QEMU's iterations."""
    print(' '.join(e['section_type'][0] + ('r' if e['idstr'] == 'ram' else 'v')
                   for e in evs if e['kind'] == 'section'))

def mlx5(path, middles, sizes):
    """STOP_COPY_SIZE (tag 1, optional, 8 bytes), then FW_DATA records."""
    d, p, recs = open(path, 'rb').read(), 0, []
    while p < len(d):
        size, flags, tag = struct.unpack_from('<QII', d, p)
        recs.append((tag, flags & 1, size))
        p += 16 + size
    if p != len(d):
        sys.exit('mlx5 stream overruns its bytes')
    init, mid, fin = (int(x) for x in sizes.split(','))
    want = [(1, 1, 8)] + ([(0, 0, init)] if init else []) + \
        [(0, 0, mid)] * int(middles) + [(0, 0, fin)]
    if recs != want:
        sys.exit('mlx5 records %s, expected %s' % (recs, want))

def multi_part_base(out):
    """A small QEMU stream with three RAM PART sections and no trailer."""
    be32 = lambda v: struct.pack('>I', v)
    be64 = lambda v: struct.pack('>Q', v)
    ps = 4096
    def sec(t, sid, body, hdr=b''):
        return bytes([t]) + be32(sid) + hdr + body + be64(0x10) + b'\x7e' + be32(sid)
    s = b'QEVM' + be32(3) + b'\x07' + be32(6) + b'pc-7.2'
    s += sec(1, 3, be64(8 * ps | 4) + b'\x06pc.ram' + be64(8 * ps),
             b'\x03ram' + be32(0) + be32(4))
    for i in range(3):
        s += sec(2, 3, be64(i * ps | 8) + b'\x06pc.ram' + bytes([i + 1]) * ps)
    s += sec(3, 3, be64(7 * ps | 0x28) + bytes([9]) * ps)
    open(out, 'wb').write(s + b'\x00')

f = {'inserted': lambda a: inserted(events(a[0]), a[1], a[2]),
     'phases': lambda a: phases(events(a[0]), a[1] == 'ack', int(a[2])),
     'order': lambda a: order(events(a[0])),
     'mlx5': lambda a: mlx5(*a),
     'multi_part_base': lambda a: multi_part_base(a[0])}
f[sys.argv[1]](sys.argv[2:])
PY
PY=(python3 "$WORK/chk.py")

# ---- the default: 2 devices, mlx5 payloads, no switchover-ack -------------
Q=$WORK/q.mig
expect_exit 0 "synth --qemu" -- "$SYNTH" --qemu "$BASE" -o "$Q" --expect-dir "$WORK/qe"
[ ! -s "$WORK/out" ] && [ ! -s "$WORK/err" ] && ok || bad "synth --qemu printed something"
expect_exit 0 "verify synth --qemu" -- "$VERIFY" "$Q"
# the only output: the VFIO config states synth does not describe were not
# checked (verify says so instead of a silent "valid")
! grep -v 'not checked: 2 of .* sections not decoded: VFIO PCI config state' "$WORK/out" | grep -q . \
    && ok || bad "verify printed more than the not-checked note on success"
expect_exit 0 "verify from a pipe (no trailer handed over)" -- bash -c "cat '$Q' | '$VERIFY' -"
expect_exit 0 "dump synth --qemu" -- "$DUMP" "$Q"
expect_grep "$WORK/out" "section +start 45 0000:00:10.0/vfio instance 0 version 1" "START of device 0 (id above BASE's 44)"
expect_grep "$WORK/out" "section +full +46 0000:00:11.0/vfio instance 0 version 1" "FULL of device 1 with its START's id"
expect_grep "$WORK/out" "DEV_CONFIG_STATE" "config state shown"
expect_exit 0 "dump --json" -- "$DUMP" --json "$Q"
cp "$WORK/out" "$WORK/q.json"
expect_exit 0 "BASE's bytes unchanged around the inserted sections" -- "${PY[@]}" inserted "$WORK/q.json" "$BASE" "$Q"
expect_grep "$WORK/out" "^10$" "2 devices x (START, 2 PARTs, END, FULL) inserted"
expect_exit 0 "phases without switchover-ack" -- "${PY[@]}" phases "$WORK/q.json" noack 2
expect_grep "$WORK/out" "^45 initial 393288$" "all precopy bytes initial (256K + 2 x 64K + mlx5 headers)"
expect_grep "$WORK/out" "^45 final 1048592$" "final bytes"
grep -q middle "$WORK/out" && bad "middle phase without switchover-ack" || ok
grep -q '"marker":"DEV_INIT_DATA_SENT"' "$WORK/q.json" && bad "INIT_DATA_SENT without --switchover-ack" || ok
tail -c 100000 "$BASE" | cmp -s - <(tail -c 100000 "$Q") && ok || bad "JSON trailer changed"
# The inserted payload is a valid mlx5 SW-header stream: STOP_COPY_SIZE,
# FW_DATA initial, 2 middle, final.
expect_exit 0 "extract device 0" -- "$EXTRACT" --device 0000:00:10.0/vfio --out "$WORK/d0" "$Q"
expect_exit 0 "mlx5 records" -- "${PY[@]}" mlx5 "$WORK/d0" 2 262144,65536,1048576
cat "$WORK/qe/0.initial" "$WORK/qe/0.middle" "$WORK/qe/0.final" | cmp -s - "$WORK/d0" && ok ||
    bad "device 0 bytes differ from --expect-dir"
[ "$(cat "$WORK/qe/devices")" = "$(printf '0 0000:00:10.0/vfio 45\n1 0000:00:11.0/vfio 46')" ] && ok ||
    bad "devices list: $(cat "$WORK/qe/devices")"
# Deterministic; --stdout gives the same bytes; the seed matters.
expect_exit 0 "synth --qemu --stdout" -- bash -c "'$SYNTH' --qemu '$BASE' --stdout > '$WORK/q2.mig'"
cmp -s "$Q" "$WORK/q2.mig" && ok || bad "--stdout differs from -o"
expect_exit 0 "synth --qemu seed 2" -- "$SYNTH" --qemu "$BASE" -o "$WORK/q3.mig" --seed 2
cmp -s "$Q" "$WORK/q3.mig" && bad "--seed has no effect" || ok
# --devices 0 is BASE itself.
expect_exit 0 "synth --qemu --devices 0" -- "$SYNTH" --qemu "$BASE" -o "$WORK/q0.mig" --devices 0
cmp -s "$BASE" "$WORK/q0.mig" && ok || bad "--devices 0 changed BASE"

# ---- switchover-ack: initial, then middle ------------------------------------
A=$WORK/a.mig
expect_exit 0 "synth --switchover-ack" -- "$SYNTH" --qemu "$BASE" -o "$A" --switchover-ack \
    --devices 4 --middle 3 --middle-size 100K --packet-size 64K --expect-dir "$WORK/ae"
expect_exit 0 "verify --switchover-ack" -- "$VERIFY" "$A"
"$DUMP" --json "$A" > "$WORK/a.json" || bad "dump --json --switchover-ack"
expect_exit 0 "phases with switchover-ack" -- "${PY[@]}" phases "$WORK/a.json" ack 4
expect_grep "$WORK/out" "^45 initial 262184$" "initial bytes (STOP_COPY_SIZE + FW_DATA 256K)"
expect_grep "$WORK/out" "^48 middle 307248$" "middle bytes (3 x (100K + 16))"
expect_grep "$WORK/out" "^46 final 1048592$" "final bytes"
for n in 0 1 2 3; do
    s=$(stat -c %s "$WORK/ae/$n.middle")
    [ "$s" -eq 307248 ] && ok || bad "expect-dir $n.middle is $s bytes"
done
expect_exit 0 "dump summary --switchover-ack" -- "$DUMP" --summary "$A"
expect_grep "$WORK/out" "vfio 0000:00:13.0/vfio \(section 48\): initial 262184 B in 5 chunks; middle 307248 B in 5 chunks; final 1048592 B in 17 chunks;" "summary per phase"
expect_exit 0 "BASE unchanged (4 devices)" -- "${PY[@]}" inserted "$WORK/a.json" "$BASE" "$A"
# No initial data: a PART holding only DEV_INIT_DATA_SENT comes first.
expect_exit 0 "synth --switchover-ack without initial data" -- "$SYNTH" --qemu "$BASE" -o "$WORK/n.mig" \
    --switchover-ack --initial-size 0 --kind raw
expect_exit 0 "verify without initial data" -- "$VERIFY" "$WORK/n.mig"
"$DUMP" --json "$WORK/n.mig" > "$WORK/n.json"
expect_exit 0 "phases without initial data" -- "${PY[@]}" phases "$WORK/n.json" ack 2
grep -q " initial " "$WORK/out" && bad "initial bytes with --initial-size 0 --kind raw" || ok
expect_grep "$WORK/out" "^45 middle 131072$" "middle bytes only"

# ---- other bases ---------------------------------------------------------------------
# The main channels of the multifd captures.
for b in "$CAPS"/qemu-7.2-pc-multifd4/conn0.bin "$CAPS"/qemu-7.2-pc-multifd2-zlib/conn0.bin; do
    expect_exit 0 "synth on $(basename "$(dirname "$b")")" -- "$SYNTH" --qemu "$b" -o "$WORK/m.mig" --switchover-ack
    expect_exit 0 "verify on $(basename "$(dirname "$b")")" -- "$VERIFY" "$WORK/m.mig"
done
# Three RAM PARTs: device PARTs spread after them, QEMU-iteration style.
"${PY[@]}" multi_part_base "$WORK/mp.mig"
expect_exit 0 "verify the 3-PART base" -- "$VERIFY" "$WORK/mp.mig"
expect_exit 0 "synth on the 3-PART base" -- "$SYNTH" --qemu "$WORK/mp.mig" -o "$WORK/mpo.mig" \
    --devices 2 --initial-size 100K --middle 2 --middle-size 50K --packet-size 40K --kind raw --switchover-ack
expect_exit 0 "verify on the 3-PART base" -- "$VERIFY" "$WORK/mpo.mig"
"$DUMP" --json "$WORK/mpo.mig" > "$WORK/mpo.json"
expect_exit 0 "section order" -- "${PY[@]}" order "$WORK/mpo.json"
# 3 initial + 3 middle chunks per device: 2 rounds after each RAM PART.
expect_grep "$WORK/out" "^sr sv sv pr pv pv pv pv pr pv pv pv pv pr pv pv pv pv er ev ev fv fv$" "device PARTs after every RAM PART"
expect_exit 0 "phases on the 3-PART base" -- "${PY[@]}" phases "$WORK/mpo.json" ack 2

# ---- usage and input errors ------------------------------------------------------------
expect_exit 2 "--qemu with --channels" -- "$SYNTH" --qemu "$BASE" -o "$WORK/x.mig" --channels 2
expect_grep "$WORK/err" "--channels does not apply to --qemu" "v1-only option named"
expect_exit 2 "--qemu without output" -- "$SYNTH" --qemu "$BASE"
expect_exit 2 "--qemu with an unknown kind" -- "$SYNTH" --qemu "$BASE" -o "$WORK/x.mig" --kind nope
expect_exit 2 "--switchover-ack without --qemu" -- "$SYNTH" --switchover-ack -o "$WORK/x"
expect_exit 2 "--expect-dir without --qemu" -- "$SYNTH" --expect-dir "$WORK/e" -o "$WORK/x"
expect_exit 2 "missing BASE" -- "$SYNTH" --qemu "$WORK/nope.mig" -o "$WORK/x.mig"
"$SYNTH" --channels 1 -o "$WORK/v1" >/dev/null 2>&1
expect_exit 1 "BASE not a QEMU stream" -- "$SYNTH" --qemu "$WORK/v1/channel-0.mig" -o "$WORK/x.mig"
expect_grep "$WORK/err" "channel-0.mig:0: format-unsupported: not a QEMU main stream" "not QEMU said"
head -c 1000000 "$BASE" > "$WORK/cut.mig"
expect_exit 1 "truncated BASE" -- "$SYNTH" --qemu "$WORK/cut.mig" -o "$WORK/x.mig"
expect_grep "$WORK/err" "cut.mig:1000000: truncated:" "truncated BASE reported"
cp "$BASE" "$WORK/self.mig"
expect_exit 2 "output is BASE" -- "$SYNTH" --qemu "$WORK/self.mig" -o "$WORK/self.mig"
cmp -s "$BASE" "$WORK/self.mig" && ok || bad "synth overwrote BASE"
expect_exit 2 "unwritable output" -- "$SYNTH" --qemu "$BASE" -o "$WORK/no/such/x.mig"

# ---- truncations: exit 1 with the offset where the input ends ---------------------------
# Every offset of the inserted START sections, around the first device
# PART and the FULL sections, and a spread over the rest.  A stream may
# end right after its EOF byte, so that one cut is valid.
size=$(stat -c %s "$A")
eof=$(grep '"kind":"eof"' "$WORK/a.json" | sed 's/.*"offset":\([0-9]*\).*/\1/')
first_part=$(grep '"section_type":"part","section_id":45' "$WORK/a.json" | head -1 | sed 's/.*"offset":\([0-9]*\).*/\1/')
offs=$( (seq 1 40; seq 262 480; seq "$first_part" $((first_part + 40)); seq $((eof - 130)) $((eof + 8));
        seq 500 27077 $((size - 1)); echo $((size - 1))) | sort -un)
n=0
for off in $offs; do
    n=$((n + 1))
    head -c "$off" "$A" | "$VERIFY" - > "$WORK/out" 2>&1
    rc=$?
    if [ "$off" -eq $((eof + 1)) ]; then
        [ $rc -eq 0 ] && ok || bad "cut right after EOF: exit $rc"
        continue
    fi
    if [ $rc -ne 1 ]; then bad "cut at $off: exit $rc"; continue; fi
    grep -Eq "^-:$off: (truncated|missing-end): " "$WORK/out" && ok || bad "cut at $off: $(head -1 "$WORK/out")"
done
[ "$n" -gt 300 ] && ok || bad "only $n truncations tried"
# mapped files (the trailer is looked for first) report the same offsets
for off in 300 "$first_part" $((eof - 1)) "$eof" $((eof + 20)) $((size - 1)); do
    head -c "$off" "$A" > "$WORK/t.mig"
    "$VERIFY" "$WORK/t.mig" > "$WORK/out" 2>&1
    [ $? -eq 1 ] && grep -Eq "^$WORK/t.mig:$off: (truncated|missing-end): " "$WORK/out" && ok ||
        bad "mapped cut at $off: $(head -1 "$WORK/out")"
done
finish
