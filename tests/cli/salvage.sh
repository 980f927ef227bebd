#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only
# Salvage (spec/salvage.md) of a synthetic 4-channel migstream migration
# with one byte damaged in one channel: in a device-state packet, in a
# CHUNK's data, in a CHUNK's record header.  `migstream-extract --salvage`
# gives every other device's bytes exactly as the extract of the undamaged
# set, and the damaged device's bytes exactly too except the ranges it
# lists as zero-filled (which hold the damaged byte's image bytes and are
# zero); exit 1.  `migstream-verify --salvage` lists intact and damaged
# ranges that tile each file, the damaged one holding the flipped byte,
# exit 1; the undamaged set lists only intact ranges, exit 0.  And QEMU
# captures (at the end): an uncompressed and a zlib multifd channel with a
# packet header damaged, a main stream with a RAM record header damaged.
. "$(dirname "$0")/lib.bash"
EXTRACT=$BIN/migstream-extract
command -v python3 >/dev/null || { bad "python3 is needed"; finish; exit 1; }

cat > "$WORK/sv.py" <<'PY'
"""Independent helpers (no code shared with libstream)."""
import re, struct, sys

def records(path):
    """(offset, tag, size) of every record of a migstream channel."""
    b = open(path, 'rb').read()
    p, out = 64, []
    while p + 24 <= len(b):
        size, flags, tag = struct.unpack_from('<QII', b, p)
        out.append((p, tag, size))
        p += 24 + size + 8
    return out

def pick(path, tag, where):
    """An offset inside the middle record of `tag`: 'data' (a payload
    byte past the prefix) or 'header' (its size field)."""
    rs = [r for r in records(path) if r[1] == tag]
    off, _, size = rs[len(rs) // 2]
    prefix = 24 if tag == 5 else 16
    return off + 24 + prefix + (size - prefix) // 2 if where == 'data' else off + 2

def flip(path, off):
    with open(path, 'r+b') as f:
        f.seek(off); b = f.read(1); f.seek(off); f.write(bytes([b[0] ^ 0x41]))

def zero_ranges(err, out):
    """The output ranges extract listed as zero-filled (inclusive)."""
    rx = re.compile(r': %s: bytes 0x([0-9a-f]+)-0x([0-9a-f]+) zero-filled' % re.escape(out))
    return [(int(m.group(1), 16), int(m.group(2), 16))
            for m in map(rx.search, open(err)) if m]

def compare(good, bad, err, out, must_differ):
    """bad equals good outside the listed ranges, is zero inside them; the
    ranges are listed iff must_differ."""
    g, b = open(good, 'rb').read(), open(bad, 'rb').read()
    rs = zero_ranges(err, out)
    assert len(g) == len(b), ('length', len(g), len(b))
    assert bool(rs) == must_differ, ('zero-filled ranges listed', rs)
    inside = bytearray(len(g))
    for lo, hi in rs:
        assert b[lo:hi + 1] == bytes(hi + 1 - lo), ('not zero', lo, hi)
        inside[lo:hi + 1] = b'\1' * (hi + 1 - lo)
    diff = [i for i in range(len(g)) if g[i] != b[i] and not inside[i]]
    assert not diff, ('bytes differ outside the listed ranges', diff[:5])
    if must_differ:
        assert any(g[i] != 0 for lo, hi in rs for i in range(lo, hi + 1)), \
            'the zero-filled range held only zeros: nothing was damaged there'

def tiles(listing, path, size, flipped):
    """verify --salvage's ranges for `path` tile [0, size); the damaged
    ones hold `flipped` (None: there must be none)."""
    rx = re.compile(r'^%s:\d+: (intact|damaged): bytes 0x([0-9a-f]+)-0x([0-9a-f]+)' % re.escape(path))
    rs, seen = [], set()
    for line in open(listing):
        m = rx.match(line)
        if m and (m.group(2), m.group(3)) not in seen:  # notes repeat a range
            seen.add((m.group(2), m.group(3)))
            rs.append((int(m.group(2), 16), int(m.group(3), 16), m.group(1)))
    rs.sort()
    pos = 0
    for lo, hi, kind in rs:
        assert lo == pos, ('gap or overlap at', pos, lo)
        pos = hi + 1
    assert pos == size, ('ranges end at', pos, size)
    dmg = [(lo, hi) for lo, hi, k in rs if k == 'damaged']
    if flipped is None:
        assert not dmg, dmg
    else:
        assert dmg and all(lo <= flipped <= hi for lo, hi in dmg), (dmg, flipped)

def mfd_pages(path, off):
    """(block, page offsets) of the multifd RAM packet at `off` (QEMU 7.2
    layout: pages_alloc at 12, normal_pages at 16, zero_pages at 32, the
    block name at 64, offsets at 320)."""
    b = open(path, 'rb').read()
    assert b[off:off + 8] == bytes.fromhex('1122334400000001'), 'no packet'
    alloc, normal = struct.unpack_from('>II', b, off + 12)
    zero = struct.unpack_from('>I', b, off + 32)[0]
    name = b[off + 64:off + 320].split(b'\0')[0].decode()
    offs = struct.unpack_from('>%dQ' % (normal + zero), b, off + 320)
    return name, offs

def ram_diff(good_dir, bad_dir, path, off):
    """Block files equal, except pages the lost packet carried."""
    import os
    name, offs = mfd_pages(path, off)
    assert offs, 'the packet carries no pages'
    lost = {o // 4096 for o in offs}
    changed = 0
    for root, _, files in os.walk(good_dir):
        for f in files:
            g = os.path.join(root, f)
            rel = os.path.relpath(g, good_dir)
            gb, bb = open(g, 'rb').read(), open(os.path.join(bad_dir, rel), 'rb').read()
            assert len(gb) == len(bb), rel
            for p in range(0, len(gb), 4096):
                if gb[p:p + 4096] != bb[p:p + 4096]:
                    assert rel == name and p // 4096 in lost, (rel, p)
                    changed += 1
    assert changed, 'nothing differs: the lost packet held only pages a later one rewrote?'

def ram_diff_listed(good_dir, bad_dir, verify_out, extra):
    """Block files equal, except pages verify listed lost ("'BLOCK' ...
    bytes 0xA-0xB lost") and the `extra` pages (BLOCK:OFFSET,... or
    FILE@PACKET: the pages a multifd packet carried); pages listed lost
    are zero (never written)."""
    import os
    lost = set()
    for m in re.finditer(r"'([^']+)' image \d+ \([a-z]+\) bytes 0x([0-9a-f]+)-0x([0-9a-f]+) lost",
                         open(verify_out).read()):
        for p in range(int(m.group(2), 16), int(m.group(3), 16) + 1, 4096):
            lost.add((m.group(1), p // 4096))
    allowed = set(lost)
    for e in filter(None, extra.split(',')):
        if '@' in e:
            path, off = e.split('@')
            name, offs = mfd_pages(path, int(off))
            allowed |= {(name, o // 4096) for o in offs}
        else:
            name, off = e.rsplit(':', 1)
            allowed.add((name, int(off, 0) // 4096))
    changed = 0
    for root, _, files in os.walk(good_dir):
        for f in files:
            g = os.path.join(root, f)
            rel = os.path.relpath(g, good_dir)
            gb, bb = open(g, 'rb').read(), open(os.path.join(bad_dir, rel), 'rb').read()
            for p in range(0, len(gb), 4096):
                if gb[p:p + 4096] != bb[p:p + 4096]:
                    assert (rel, p // 4096) in allowed, (rel, p)
                    changed += 1
                if (rel, p // 4096) in lost:
                    assert not any(bb[p:p + 4096]), ('listed page not zero', rel, p)
    return changed

cmd = sys.argv[1]
if cmd == 'ram_diff': ram_diff(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
elif cmd == 'ram_diff_listed':
    # the lost page may have been resent later (pc.ram page 0 is, in END)
    ram_diff_listed(*sys.argv[2:6])
elif cmd == 'pick': print(pick(sys.argv[2], int(sys.argv[3]), sys.argv[4]))
elif cmd == 'flip': flip(sys.argv[2], int(sys.argv[3]))
elif cmd == 'compare': compare(*sys.argv[2:6], sys.argv[6] == '1')
elif cmd == 'tiles':
    tiles(sys.argv[2], sys.argv[3], int(sys.argv[4]),
          None if sys.argv[5] == '-' else int(sys.argv[5]))
PY
PY="python3 $WORK/sv.py"

G=$WORK/good
"$SYNTH" -o "$G" --channels 4 --devices 2 --initial-size 128K --middle 1 \
    --middle-size 64K --final-size 512K --chunk-size 16K --packet-size 64K \
    > /dev/null || { bad "synth"; finish; exit 1; }
DEVS=$("$DUMP" "$G"/channel-*.mig | awk '$2 == "device" { print $5 }' | sort -u)
[ "$(echo "$DEVS" | wc -l)" -eq 2 ] || { bad "two devices expected: $DEVS"; finish; exit 1; }
for d in $DEVS; do
    n=$(echo "$d" | tr -c 'a-z0-9\n' _)
    expect_exit 0 "extract $d (undamaged)" -- "$EXTRACT" --device "$d" -o "$WORK/good-$n.bin" "$G"/channel-*.mig
done
# The undamaged set: only intact ranges, exit 0.
expect_exit 0 "verify --salvage (undamaged)" -- "$VERIFY" --salvage "$G"/channel-*.mig
for f in "$G"/channel-*.mig; do
    $PY tiles "$WORK/out" "$f" "$(stat -c %s "$f")" - && ok || bad "undamaged listing of $f"
done

# case NAME CHANNEL TAG WHERE: one byte flipped; salvage checked.
case_one() {
    local name=$1 ch=$2 tag=$3 where=$4
    local D=$WORK/$name
    rm -rf "$D"; cp -r "$G" "$D"
    local f=$D/channel-$ch.mig
    local off
    off=$($PY pick "$f" "$tag" "$where")
    $PY flip "$f" "$off"
    expect_exit 1 "$name: verify without --salvage" -- "$VERIFY" "$D"/channel-*.mig
    expect_exit 1 "$name: verify --salvage" -- "$VERIFY" --salvage "$D"/channel-*.mig
    expect_grep "$WORK/out" "^$f:[0-9]+: damaged: bytes 0x[0-9a-f]+-0x[0-9a-f]+ damaged: " "$name: damage listed"
    cp "$WORK/out" "$WORK/listing"
    for g in "$D"/channel-*.mig; do
        local fl=-
        [ "$g" = "$f" ] && fl=$off
        $PY tiles "$WORK/listing" "$g" "$(stat -c %s "$g")" "$fl" && ok || bad "$name: listing of $g"
    done
    local hit=0
    for d in $DEVS; do
        local n
        n=$(echo "$d" | tr -c 'a-z0-9\n' _)
        "$EXTRACT" --salvage --device "$d" -o "$WORK/bad-$n.bin" "$D"/channel-*.mig \
            > /dev/null 2> "$WORK/err"
        local rc=$?
        [ $rc -eq 1 ] && ok || bad "$name: extract --salvage $d: exit $rc"
        local differ=0
        grep -q "$WORK/bad-$n.bin: bytes .* zero-filled" "$WORK/err" && differ=1
        hit=$((hit + differ))
        $PY compare "$WORK/good-$n.bin" "$WORK/bad-$n.bin" "$WORK/err" "$WORK/bad-$n.bin" $differ &&
            ok || bad "$name: $d not recovered as listed"
    done
    # exactly one device lost bytes (the one the flipped record carried)
    [ "$hit" -eq 1 ] && ok || bad "$name: $hit devices list zero-filled ranges, expected 1"
}

# Device-state packets travel on channels 2 and 3; chunks on 0 and 1.
case_one packet-data 2 5 data
case_one chunk-data 0 3 data
case_one chunk-header 1 3 header

# A QEMU 7.2 capture (4 multifd channels, uncompressed): the magic of a
# packet in the middle of channel conn2 flipped.  verify --salvage names
# the range from that packet to the next packet header; extract --salvage
# --ram gives every page exactly as from the undamaged capture except pages
# the lost packet carried (read from the undamaged packet's offsets).
CAP=$SRC/tests/data/captures/qemu-7.2-pc-multifd4
Q=$WORK/q
mkdir -p "$Q"
cp "$CAP"/conn*.bin "$Q"/
POFF=1408 # the second packet of conn2 (after the init packet and a SYNC)
$PY flip "$Q/conn2.bin" $((POFF + 2))
expect_exit 1 "capture: verify --salvage" -- "$VERIFY" --salvage "$Q"/conn*.bin
expect_grep "$WORK/out" "^$Q/conn2.bin:$POFF: damaged: bytes 0x580-0x[0-9a-f]+ damaged: records lost \(multifd at $POFF" "capture: damaged range"
expect_grep "$WORK/out" "^$Q/conn2.bin:[0-9]+: decoded: bytes 0x[0-9a-f]+-0x2ea7f " "capture: decoded after the range"
expect_exit 0 "capture: extract --ram (undamaged)" -- "$EXTRACT" --ram "$WORK/qgood" "$CAP"/conn*.bin
expect_exit 1 "capture: extract --salvage --ram" -- "$EXTRACT" --salvage --ram "$WORK/qbad" "$Q"/conn*.bin
$PY ram_diff "$WORK/qgood" "$WORK/qbad" "$CAP/conn2.bin" $POFF && ok || bad "capture: RAM differs beyond the lost packet's pages"
# without --salvage the channel stops at the packet: later packets lost
expect_exit 1 "capture: extract --ram (damaged, no salvage)" -- "$EXTRACT" --ram "$WORK/qstop" "$Q"/conn*.bin

# A QEMU 7.2 main stream (precopy capture): the flags of the first RAM page
# record (pc.ram page 0, at 272) damaged.  verify --salvage names the range
# from that record to the next one (3 chained RAM records verify it);
# extract --salvage --ram rebuilds every page exactly as from the undamaged
# stream except pc.ram page 0, whose record was lost.
MC=$SRC/tests/data/captures/qemu-7.2-pc-precopy/main.mig
cp "$MC" "$WORK/main.mig"
$PY flip "$WORK/main.mig" 279
expect_exit 1 "main: verify --salvage" -- "$VERIFY" --salvage "$WORK/main.mig"
expect_grep "$WORK/out" "^$WORK/main.mig:272: damaged: bytes 0x110-0x111e damaged: records lost \(ram at 272: section 2 \(ram\)" "main: damaged range"
cp "$WORK/out" "$WORK/mverify"
expect_exit 0 "main: extract --ram (undamaged)" -- "$EXTRACT" --ram "$WORK/mgood" "$MC"
expect_exit 1 "main: extract --salvage --ram" -- "$EXTRACT" --salvage --ram "$WORK/mbad" "$WORK/main.mig"
$PY ram_diff_listed "$WORK/mgood" "$WORK/mbad" "$WORK/mverify" "pc.ram:0" && ok || bad "main: RAM differs beyond the lost record's page"

# A QEMU 7.2 zlib multifd capture: the magic of conn1's second packet
# flipped.  The channel's zlib stream cannot go on: verify --salvage lists
# every later normal page of conn1 lost by block and offset; extract
# --salvage --ram differs from the undamaged rebuild only in those pages
# (zero) and the lost packet's own.
ZC=$SRC/tests/data/captures/qemu-7.2-pc-multifd2-zlib
Z=$WORK/z
mkdir -p "$Z"
cp "$ZC"/conn*.bin "$Z"/
$PY flip "$Z/conn1.bin" 1410
expect_exit 1 "zlib: verify --salvage" -- "$VERIFY" --salvage "$Z"/conn*.bin
expect_grep "$WORK/out" "^$Z/conn1.bin:296831: damaged: bytes 0x4877f-0x803c0 damaged: device 0 'pc.ram' image 0 \(none\) bytes 0x[0-9a-f]+-0x[0-9a-f]+ lost" "zlib: later pages listed"
cp "$WORK/out" "$WORK/zverify"
expect_exit 0 "zlib: extract --ram (undamaged)" -- "$EXTRACT" --ram "$WORK/zgood" "$ZC"/conn*.bin
expect_exit 1 "zlib: extract --salvage --ram" -- "$EXTRACT" --salvage --ram "$WORK/zbad" "$Z"/conn*.bin
$PY ram_diff_listed "$WORK/zgood" "$WORK/zbad" "$WORK/zverify" "$ZC/conn1.bin@1408" && ok || bad "zlib: RAM differs beyond the listed pages"

finish
