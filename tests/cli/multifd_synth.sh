#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only
# migstream-synth --multifd: QEMU multifd channel sets (main channel +
# channel-K.mig) with raw, zlib and zstd RAM pages, with and without VFIO
# device-state packets, with and without a real capture as BASE.  Every set
# verifies in any file order and dumps; the packets on the wire are checked
# against the format facts by an independent Python walker; extract rebuilds
# exactly the RAM and device images synth wrote to --expect-dir; the same
# options give the same bytes.  Damaged sets (a channel missing, doubled,
# from another migration, cut inside a packet or at a packet boundary, a
# device-state packet doubled, a config buffer missing) make
# migstream-verify exit 1 with a FILE:OFFSET line.
. "$(dirname "$0")/lib.bash"
EXTRACT=$BIN/migstream-extract
CAPS=$SRC/tests/data/captures
command -v python3 >/dev/null || { bad "python3 is needed"; finish; exit 1; }

cat > "$WORK/mfd.py" <<'PY'
"""Walk QEMU multifd channel files from the format facts (qemu-multifd
reference sections 1-5), 4 KiB pages, and edit them for the damage tests."""
import glob, json, os, struct, sys

MAGIC, PS, SLOTS = 0x11223344, 4096, 128
HDR = 320 + 8 * SLOTS


def walk(path):
    """The init packet, then (offset, length, info) per packet."""
    b = open(path, 'rb').read()
    magic, ver = struct.unpack_from('>II', b, 0)
    assert magic == MAGIC and ver == 1, (path, 'init packet')
    assert b[25:64] == bytes(39), (path, 'init reserved bytes')
    init = {'uuid': b[8:24].hex(), 'id': b[24]}
    p, out = 64, []
    while p < len(b):
        magic, ver, flags = struct.unpack_from('>III', b, p)
        assert magic == MAGIC and ver == 1, (path, p, 'packet header')
        if flags & 0x40:
            assert flags == 0x40, (path, p, 'device-state flags')
            idstr = b[p + 12:p + 268].split(b'\0')[0].decode()
            inst, n = struct.unpack_from('>II', b, p + 268)
            v, idx, bf = struct.unpack_from('>III', b, p + 276)
            assert v == 0 and bf in (0, 1) and n >= 12, (path, p)
            out.append((p, 276 + n, dict(dev=True, idstr=idstr, inst=inst,
                                         idx=idx, config=bf == 1,
                                         data=b[p + 288:p + 276 + n])))
            p += 276 + n
            continue
        alloc, normal, nps, num, zero = struct.unpack_from('>IIIQI', b, p + 12)
        if alloc == 0:  # QEMU >= 9.2 SYNC: header only, zeroed
            assert flags == 1 and normal == zero == nps == 0, (path, p)
            assert b[p + 32:p + HDR] == bytes(HDR - 32), (path, p, 'zeroed')
        else:
            assert alloc == SLOTS and normal + zero <= alloc, (path, p)
        assert b[p + 36:p + 64] == bytes(28), (path, p, 'reserved')
        name = b[p + 64:p + 320]
        assert 0 in name, (path, p, 'name')
        offs = struct.unpack_from('>%dQ' % (normal + zero), b, p + 320)
        assert all(o % PS == 0 for o in offs), (path, p, 'offsets')
        assert b[p + 320 + 8 * (normal + zero):p + HDR] == \
            bytes(8 * (SLOTS - normal - zero)), (path, p, 'unused slots')
        comp = flags & 0x3e
        pay = (normal * PS if comp == 0 else nps) if normal else 0
        if comp == 0:
            assert nps == pay, (path, p, 'next_packet_size')
        out.append((p, HDR + pay, dict(dev=False, flags=flags, comp=comp,
                                       alloc=alloc,
                                       sync=bool(flags & 1), normal=normal,
                                       zero=zero, num=num, offs=offs,
                                       block=name.split(b'\0')[0].decode())))
        p += HDR + pay
    assert p == len(b), (path, 'ends inside a packet')
    return init, out


def check(d, channels, comp, devices, passes, version='10.0'):
    """The set synth wrote: channel ids, numbers, SYNCs (header only from
    QEMU 9.2 on), compression, device buffers against --expect-dir's
    images."""
    major, minor = (int(x) for x in version.split('.'))
    sync_alloc = 0 if (major, minor) >= (9, 2) else SLOTS
    files = sorted(glob.glob(os.path.join(d, 'channel-*.mig')))
    assert len(files) == channels, files
    nums, ids, bufs, uuids = [], [], {}, set()
    want_comp = {'none': 0, 'zlib': 2, 'zstd': 4}[comp]
    for f in files:
        init, pk = walk(f)
        ids.append(init['id'])
        uuids.add(init['uuid'])
        assert os.path.basename(f) == 'channel-%d.mig' % init['id'], f
        ram = [i for _, _, i in pk if not i['dev']]
        assert ram[0]['sync'] and ram[0]['normal'] + ram[0]['zero'] == 0, \
            (f, 'first packet: a SYNC without pages')
        assert not any(i['dev'] for _, _, i in pk[:1]), f
        syncs = sum(i['sync'] for i in ram)
        assert syncs == passes + 1, (f, syncs, 'SYNC packets')
        assert pk[-1][2].get('sync'), (f, 'ends with a SYNC')
        for i in ram:
            nums.append(i['num'])
            if i['normal'] + i['zero']:
                assert i['comp'] == want_comp, (f, i['comp'])
            if i['sync']:
                assert i['normal'] + i['zero'] == 0, (f, 'SYNC with pages')
                assert i['alloc'] == sync_alloc, (f, version, 'SYNC layout')
        for _, _, i in pk:
            if i['dev']:
                key = (i['idstr'], i['inst'])
                assert (key, i['idx']) not in bufs, ('buffer twice', key, i)
                bufs[(key, i['idx'])] = i
    assert sorted(ids) == list(range(channels)), ids
    assert len(uuids) == 1, uuids
    assert len(nums) == len(set(nums)), 'packet numbers repeat'
    assert sorted(nums) == list(range(len(nums))), 'packet numbers: gaps'
    devs = sorted({k for k, _ in bufs})
    assert len(devs) == devices, devs
    exp = d + '.exp'
    lines = [l.split() for l in open(os.path.join(exp, 'devices'))]
    assert len(lines) == devices, lines
    for n, idstr, _ in lines:
        key = (idstr, 0)
        idxs = sorted(i for k, i in bufs if k == key)
        assert idxs == list(range(len(idxs))), (idstr, idxs)
        cfg = [i for i in idxs if bufs[(key, i)]['config']]
        assert cfg == [idxs[-1]], (idstr, 'config buffer last', cfg)
        image = b''.join(bufs[(key, i)]['data'] for i in idxs[:-1])
        assert image == open(os.path.join(exp, n + '.final'), 'rb').read(), \
            (idstr, 'final image')
        c = bufs[(key, idxs[-1])]['data']
        assert c[:8] == bytes.fromhex('ffffffffef100002') and \
            c[-8:] == bytes.fromhex('ffffffffef100001'), (idstr, 'config')
        assert c == open(os.path.join(exp, n + '.config'), 'rb').read()
    print(len(nums), len(bufs))


def packets(path, kind):
    """Offsets of the packets of a kind: dev-data, dev-config, ram, sync."""
    _, pk = walk(path)
    for off, n, i in pk:
        k = ('dev-config' if i['config'] else 'dev-data') if i['dev'] else \
            ('sync' if i['sync'] else 'ram')
        if k == kind:
            print(off, n)


def splice(path, out, off, n, times):
    """The packet at off (n bytes) `times` times (0: dropped)."""
    b = open(path, 'rb').read()
    open(out, 'wb').write(b[:off] + b[off:off + n] * times + b[off + n:])


def dump_json(path, channels):
    """dump --json of a set: one channel event per channel, packets as the
    walker saw them, a valid summary."""
    objs = [json.loads(l) for l in open(path)]
    chans = [o for o in objs if o['kind'] == 'channel']
    assert sorted(o['channel_id'] for o in chans) == list(range(channels)), \
        ('one channel event per channel file', chans)
    pk = [o for o in objs if o['kind'] == 'multifd_packet']
    for o in pk:
        for k in ('offset', 'length', 'flags', 'sync', 'compression',
                  'device_state', 'payload_size'):
            assert k in o, (k, o)
    s = objs[-1]
    assert s['kind'] == 'qemu_summary' and s['valid'] is True, s
    print(len(pk))


cmd = sys.argv[1]
if cmd == 'check':
    check(sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5]),
          int(sys.argv[6]), *sys.argv[7:])
elif cmd == 'packets':
    packets(sys.argv[2], sys.argv[3])
elif cmd == 'splice':
    splice(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]),
           int(sys.argv[6]))
elif cmd == 'dump_json':
    dump_json(sys.argv[2], int(sys.argv[3]))
PY
PY=(python3 "$WORK/mfd.py")

# expect_problem WHAT: the last verify printed "FILE:OFFSET: name:" for a
# file of the set (stdout or stderr)
expect_problem() {
    cat "$WORK/out" "$WORK/err" >"$WORK/both"
    expect_grep "$WORK/both" "^[^ :]+\.mig:[0-9]+: [a-z-]+: " "$1: FILE:OFFSET: error line"
}

# same_ram SET: extract --ram equals the RAM synth wrote to SET.exp
same_ram() {
    local set=$1 x=$WORK/x.$RANDOM k name
    expect_exit 0 "$set: extract --ram" -- "$EXTRACT" --ram "$x" "$set"/*.mig
    local bad_blocks=0
    while read -r k _ name; do
        cmp -s "$x/${name#/}" "$set.exp/ram-$k.bin" || {
            bad_blocks=1
            bad "$set: block $name differs from the expected RAM"
        }
    done <"$set.exp/ram"
    [ $bad_blocks -eq 0 ] && ok
    rm -rf "$x"
}

# same_devices SET: extract --device equals SET.exp/N.final and N.config
same_devices() {
    local set=$1 n id
    while read -r n id _; do
        expect_exit 0 "$set: extract $id" -- "$EXTRACT" --device "$id" --phase final \
            --out "$WORK/dev" --config "$WORK/cfg" "$set"/*.mig
        cmp -s "$WORK/dev" "$set.exp/$n.final" && ok || bad "$set: $id final image differs"
        cmp -s "$WORK/cfg" "$set.exp/$n.config" && ok || bad "$set: $id config differs"
    done <"$set.exp/devices"
}

# ---- valid sets ---------------------------------------------------------------
# name | synth options | channels | compression | devices | RAM passes |
# QEMU version of the layout
while IFS='|' read -r name opts n comp devs passes ver <&3; do
    S=$WORK/$name
    # shellcheck disable=SC2086  # options are split on purpose
    expect_exit 0 "$name: synth" -- "$SYNTH" --multifd "$n" $opts -o "$S" --expect-dir "$S.exp"
    [ ! -s "$WORK/out" ] && [ ! -s "$WORK/err" ] && ok || bad "$name: synth printed something"
    expect_exit 0 "$name: verify" -- "$VERIFY" "$S"/*.mig
    [ ! -s "$WORK/out" ] && ok || bad "$name: verify printed output on success"
    # shellcheck disable=SC2046  # one word per file
    expect_exit 0 "$name: verify, files reversed" -- "$VERIFY" $(ls -r "$S"/*.mig)
    expect_exit 0 "$name: packets on the wire" -- "${PY[@]}" check "$S" "$n" "$comp" "$devs" "$passes" "$ver"
    expect_exit 0 "$name: dump" -- "$DUMP" "$S"/*.mig
    expect_grep "$WORK/out" "multifd channel $((n - 1)) uuid " "$name: dump shows the last channel"
    if [ "$devs" -gt 0 ]; then
        expect_grep "$WORK/out" "device state 0000:00:10\.0/vfio instance 0 idx 0 " "$name: dump shows device state"
    fi
    expect_exit 0 "$name: dump --json" -- "$DUMP" --json "$S"/*.mig
    cp "$WORK/out" "$WORK/$name.json"
    expect_exit 0 "$name: dump --json shape" -- "${PY[@]}" dump_json "$WORK/$name.json" "$n"
    same_ram "$S"
    [ "$devs" -gt 0 ] && same_devices "$S"
    # the same options, the same bytes
    # shellcheck disable=SC2086
    expect_exit 0 "$name: synth again" -- "$SYNTH" --multifd "$n" $opts -o "$S.again"
    for f in "$S"/*.mig; do
        cmp -s "$f" "$S.again/$(basename "$f")" && ok || bad "$name: $(basename "$f") differs on a second run"
    done
done 3<<EOF
none-dev|--devices 2 --final-size 300K --packet-size 64K --seed 3|4|none|2|3|10.0
none|--devices 0 --ram-size 1M --seed 4|2|none|0|3|10.0
zlib|--compress-multifd zlib --ram-size 2M --ram-passes 2 --seed 5|3|zlib|0|2|10.0
zstd|--compress-multifd zstd --ram-size 2M --ram-passes 4 --seed 6|3|zstd|0|4|10.0
one|--devices 1 --kind raw --final-size 10K --ram-size 64K --ram-passes 1 --uuid 5a1e7700-1234-4556-8798-a9bacbdcedfe|1|none|1|1|10.0
q10-zstd-dev0|--qemu-version 10 --compress-multifd zstd --ram-size 1M --seed 8|4|zstd|0|3|10.0
q92|--qemu-version 9.2 --ram-size 1M --seed 9|3|none|0|3|9.2
q90-zlib|--qemu-version 9.0 --compress-multifd zlib --ram-size 1M --seed 10|2|zlib|0|3|9.0
q91|--qemu-version 9.1 --ram-size 512K --ram-passes 4 --seed 11|5|none|0|4|9.1
EOF

# a real capture as BASE: its pages move to the channels, RAM unchanged
B=$WORK/base
expect_exit 0 "BASE: synth" -- "$SYNTH" --qemu "$CAPS/qemu-7.2-pc-precopy/main.mig" --multifd 3 \
    --devices 2 --final-size 200K --packet-size 32K -o "$B" --expect-dir "$B.exp"
expect_exit 0 "BASE: verify" -- "$VERIFY" "$B"/*.mig
# 7.2 BASE: a sync point per RAM section (START, one PART, END)
expect_exit 0 "BASE: packets on the wire" -- "${PY[@]}" check "$B" 3 none 2 2
expect_exit 0 "BASE: extract BASE alone" -- "$EXTRACT" --ram "$WORK/xbase" "$CAPS/qemu-7.2-pc-precopy/main.mig"
same=1
while read -r k _ name; do
    cmp -s "$WORK/xbase/${name#/}" "$B.exp/ram-$k.bin" || { same=0; bad "BASE: block $name differs from BASE's own RAM"; }
done <"$B.exp/ram"
[ $same -eq 1 ] && ok
same_ram "$B"
same_devices "$B"
# the main channel of a real multifd migration as BASE (no pages to move)
expect_exit 0 "multifd BASE: synth" -- "$SYNTH" --qemu "$CAPS/qemu-7.2-pc-multifd4/conn0.bin" \
    --multifd 2 --devices 1 --final-size 100K -o "$WORK/base4" --expect-dir "$WORK/base4.exp"
expect_exit 0 "multifd BASE: verify" -- "$VERIFY" "$WORK/base4"/*.mig
same_ram "$WORK/base4"
expect_exit 0 "BASE: dump main" -- "$DUMP" "$B/main.mig"
expect_grep "$WORK/out" "section +end +45 0000:00:10\.0/vfio" "BASE: VFIO END inserted with an id above BASE's"

# ---- usage errors ---------------------------------------------------------------
expect_exit 2 "zlib with devices" -- "$SYNTH" --multifd 2 --compress-multifd zlib --devices 1 -o "$WORK/u"
expect_grep "$WORK/err" "compress-multifd none" "zlib with devices: why"
expect_exit 2 "zstd with devices" -- "$SYNTH" --multifd 2 --compress-multifd zstd --devices 2 -o "$WORK/u"
expect_exit 2 "unknown compression" -- "$SYNTH" --multifd 2 --compress-multifd lz4 -o "$WORK/u"
expect_exit 2 "256 channels" -- "$SYNTH" --multifd 256 -o "$WORK/u"
expect_exit 2 "device state before QEMU 10.0" -- "$SYNTH" --multifd 2 --qemu-version 9.2 --devices 1 -o "$WORK/u"
expect_grep "$WORK/err" "qemu-version 10\.0" "device state before QEMU 10.0: why"
expect_exit 2 "unknown QEMU version" -- "$SYNTH" --multifd 2 --qemu-version 8.2 -o "$WORK/u"
expect_exit 2 "--qemu-version without --multifd" -- "$SYNTH" --qemu-version 10.0 -o "$WORK/u"
expect_exit 2 "--multifd without -o" -- "$SYNTH" --multifd 2
expect_exit 2 "--multifd with --channels" -- "$SYNTH" --multifd 2 --channels 2 -o "$WORK/u"
expect_exit 2 "--uuid without --multifd" -- "$SYNTH" --uuid 00112233445566778899aabbccddeeff -o "$WORK/u"
expect_exit 2 "bad --uuid" -- "$SYNTH" --multifd 2 --uuid 0011 -o "$WORK/u"
expect_exit 2 "--ram-size with BASE" -- "$SYNTH" --multifd 2 --qemu "$CAPS/qemu-7.2-pc-precopy/main.mig" --ram-size 8M -o "$WORK/u"

# ---- damaged sets -----------------------------------------------------------------
D=$WORK/none-dev
ch() { echo "$D/channel-$1.mig"; }
# a set with channel K's file replaced by $1 (the others as they are)
with() {
    local k=$1 f=$2 out=()
    for g in "$D"/main.mig "$D"/channel-*.mig; do
        if [ "$g" = "$(ch "$k")" ]; then out+=("$f"); else out+=("$g"); fi
    done
    printf '%s\n' "${out[@]}"
}

# a channel file missing: channel 1 (a gap in the ids) ...
expect_exit 1 "missing channel 1" -- "$VERIFY" "$D/main.mig" "$(ch 0)" "$(ch 2)" "$(ch 3)"
expect_problem "missing channel 1"
expect_grep "$WORK/both" "channel-set: multifd channel 1 is missing" "missing channel 1 named"
# ... and the last one (its device-state buffers never arrive)
expect_exit 1 "missing the last channel" -- "$VERIFY" "$D/main.mig" "$(ch 0)" "$(ch 1)" "$(ch 2)"
expect_problem "missing the last channel"

# a channel twice (the same file under another name)
cp "$(ch 2)" "$WORK/dup.mig"
expect_exit 1 "duplicated channel" -- "$VERIFY" "$D"/*.mig "$WORK/dup.mig"
expect_problem "duplicated channel"
expect_grep "$WORK/both" "channel id 2 appears twice" "duplicated channel named"

# a channel of another migration (another VM UUID)
O=$WORK/other
expect_exit 0 "other set: synth" -- "$SYNTH" --multifd 4 --devices 2 --final-size 300K \
    --packet-size 64K --seed 3 --uuid 00112233-4455-6677-8899-aabbccddeeff -o "$O"
mapfile -t files < <(with 2 "$O/channel-2.mig")
expect_exit 1 "channel from another set" -- "$VERIFY" "${files[@]}"
expect_problem "channel from another set"
expect_grep "$WORK/both" "channel-uuid" "channel from another set: channel-uuid"

# a channel cut inside a packet: truncated where the file ends
read -r off len < <("${PY[@]}" packets "$(ch 1)" ram | head -1)
cut=$((off + len / 2))
head -c "$cut" "$(ch 1)" >"$WORK/cut.mig"
mapfile -t files < <(with 1 "$WORK/cut.mig")
expect_exit 1 "channel cut inside a packet" -- "$VERIFY" "${files[@]}"
expect_problem "channel cut inside a packet"
expect_grep "$WORK/both" "cut\.mig:$cut: truncated" "cut channel: offset of the cut"

# a channel cut at a packet boundary: its last SYNC packet gone.  The reader
# takes that as a clean end; the set must notice the missing tail (the
# channel has fewer sync points than the main channel and the others).
read -r off len < <("${PY[@]}" packets "$(ch 1)" sync | tail -1)
head -c "$off" "$(ch 1)" >"$WORK/tail.mig"
mapfile -t files < <(with 1 "$WORK/tail.mig")
expect_exit 1 "channel cut at a packet boundary (last SYNC gone)" -- "$VERIFY" "${files[@]}"
expect_problem "channel cut at a packet boundary"

# a device-state packet twice (spliced in after itself)
k=""
for c in 0 1 2 3; do
    if read -r off len < <("${PY[@]}" packets "$(ch $c)" dev-data | head -1); then
        k=$c
        break
    fi
done
if [ -n "$k" ]; then
    "${PY[@]}" splice "$(ch "$k")" "$WORK/dupdev.mig" "$off" "$len" 2
    mapfile -t files < <(with "$k" "$WORK/dupdev.mig")
    expect_exit 1 "device-state packet twice" -- "$VERIFY" "${files[@]}"
    expect_problem "device-state packet twice"
    expect_grep "$WORK/both" "packet-duplicate" "device-state packet twice: packet-duplicate"
else
    bad "no device-state data packet found in $D"
fi

# a config buffer missing (its packet cut out)
k=""
for c in 0 1 2 3; do
    if read -r off len < <("${PY[@]}" packets "$(ch $c)" dev-config | head -1); then
        k=$c
        break
    fi
done
if [ -n "$k" ]; then
    "${PY[@]}" splice "$(ch "$k")" "$WORK/nocfg.mig" "$off" "$len" 0
    mapfile -t files < <(with "$k" "$WORK/nocfg.mig")
    expect_exit 1 "config buffer missing" -- "$VERIFY" "${files[@]}"
    expect_problem "config buffer missing"
    expect_grep "$WORK/both" "packet-config|packet-missing" "config buffer missing: named"
else
    bad "no config packet found in $D"
fi

# a data buffer missing
k=""
for c in 3 2 1 0; do
    if read -r off len < <("${PY[@]}" packets "$(ch $c)" dev-data | tail -1); then
        k=$c
        break
    fi
done
if [ -n "$k" ]; then
    "${PY[@]}" splice "$(ch "$k")" "$WORK/nodata.mig" "$off" "$len" 0
    mapfile -t files < <(with "$k" "$WORK/nodata.mig")
    expect_exit 1 "data buffer missing" -- "$VERIFY" "${files[@]}"
    expect_problem "data buffer missing"
    expect_grep "$WORK/both" "packet-missing" "data buffer missing: packet-missing"
fi

# the main channel missing
expect_exit 1 "main channel missing" -- "$VERIFY" "$D"/channel-*.mig
expect_problem "main channel missing"

finish
