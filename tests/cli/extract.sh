#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only
# migstream-extract: RAM blocks of a real QEMU capture and of crafted
# streams (ZERO after PAGE, XBZRLE, COMPRESS_PAGE, hostile block names),
# and device bytes of synth --qemu and migstream v1 streams, all checked
# byte for byte against an independent reader written in Python here.
. "$(dirname "$0")/lib.bash"
EXTRACT=$BIN/migstream-extract
CAP=$SRC/tests/data/captures/qemu-7.2-pc-precopy/main.mig
command -v python3 >/dev/null || { bad "python3 is needed"; finish; exit 1; }

cat > "$WORK/ref.py" <<'PY'
"""Independent readers for the checks (no code shared with libstream)."""
import os, struct, sys, zlib

# ---- QEMU main stream: RAM records (and VFIO sections around them) -----
ZERO, MEM_SIZE, PAGE, EOS, CONT, XBZRLE, HOOK, COMP, FLUSH = (
    0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0x100, 0x200)
VFIO = 0xffffffffef100000

class Cut(Exception):
    pass

class In:
    def __init__(self, data):
        self.d, self.p = data, 0
    def take(self, n):
        if self.p + n > len(self.d):
            raise Cut()
        b = self.d[self.p:self.p + n]
        self.p += n
        return b
    def u8(self): return self.take(1)[0]
    def be16(self): return struct.unpack('>H', self.take(2))[0]
    def be32(self): return struct.unpack('>I', self.take(4))[0]
    def be64(self): return struct.unpack('>Q', self.take(8))[0]
    def cstr(self): return self.take(self.u8()).decode()

def uleb(b, i):
    if b[i] < 0x80:
        return b[i], 1
    if b[i + 1] >= 0x80:
        raise ValueError('uleb128 longer than 2 bytes')
    return (b[i] & 0x7f) | (b[i + 1] << 7), 2

def xbzrle_decode(delta, page):
    """(zero run, data run, data)*: data replaces the old bytes."""
    i = d = 0
    while i < len(delta):
        z, k = uleb(delta, i); i += k; d += z
        n, k = uleb(delta, i); i += k
        if n == 0 or d + n > len(page):
            raise ValueError('bad xbzrle')
        page[d:d + n] = delta[i:i + n]
        i += n; d += n

def relpath(name):
    comps = [c for c in name.split('/') if c]
    comps = ['%2E' * len(c) if c in ('.', '..') else c for c in comps]
    return '/'.join(comps) if comps else '%2F'

def ram_model(data):
    """Block contents after loading every complete RAM record."""
    s = In(data)
    ps = 4096
    blocks, order, stats = {}, [], {'pages': 0, 'zero': 0}
    secs, cur = {}, None
    try:
        assert s.take(4) == b'QEVM' and s.be32() == 3
        if s.d[s.p] == 0x07:
            s.u8(); s.take(s.be32())
            while s.d[s.p] == 0x05:
                s.u8(); name = s.cstr(); s.be32()
                if name == 'configuration/target-page-bits':
                    ps = 1 << s.be32()
                elif name == 'configuration/capabilities':
                    for _ in range(s.be32()):
                        s.cstr()
                elif name == 'configuration/uuid':
                    s.take(16)
        while True:
            t = s.u8()
            if t == 0x00:
                break
            if t == 0x08:
                s.be16(); s.take(s.be16()); continue
            sid = s.be32()
            if t in (1, 4):
                secs[sid] = s.cstr(); s.be32(); s.be32()
            idstr = secs[sid]
            if idstr == 'ram':
                while True:
                    v = s.be64(); fl, addr = v & (ps - 1), v & ~(ps - 1)
                    if fl & MEM_SIZE:
                        total = addr
                        while total:
                            name = s.cstr(); ln = s.be64(); total -= ln
                            if name not in blocks:
                                order.append(name)
                            blocks[name] = bytearray(ln)
                        continue
                    if fl & EOS:
                        break
                    if fl == FLUSH:
                        continue
                    if not fl & CONT:
                        cur = s.cstr()
                    kind = fl & ~CONT
                    if kind == ZERO:
                        s.u8()
                        blocks[cur][addr:addr + ps] = bytes(ps)
                        stats['zero'] += 1
                        continue
                    if kind == PAGE:
                        page = s.take(ps)
                    elif kind == COMP:
                        page = zlib.decompress(s.take(s.be32()))
                    elif kind == XBZRLE:
                        assert s.u8() == 1
                        delta = s.take(s.be16())
                        page = bytearray(blocks[cur][addr:addr + ps])
                        xbzrle_decode(delta, page)
                    else:
                        raise ValueError('RAM flags %#x' % fl)
                    blocks[cur][addr:addr + ps] = page
                    stats['pages'] += 1
            elif idstr.endswith('/vfio') and t != 4:
                while True:
                    m = s.be64() - VFIO
                    if m == 4:
                        s.take(s.be64())
                    elif m in (1, 5):
                        break
            else:
                break  # FULL sections: precopy RAM is complete
            assert s.u8() == 0x7e and s.be32() == sid
    except Cut:
        stats['cut'] = s.p
    return blocks, order, stats

def cmd_check(stream, outdir):
    """Compare DIR with the model: same files, sizes and bytes."""
    blocks, order, stats = ram_model(open(stream, 'rb').read())
    want = {relpath(n): n for n in order}
    have = set()
    for root, dirs, files in os.walk(outdir):
        for f in files:
            have.add(os.path.relpath(os.path.join(root, f), outdir))
    errs = ['extra file %s' % f for f in sorted(have - set(want))]
    errs += ['missing file %s' % f for f in sorted(set(want) - have)]
    nonzero = {}
    for rel, name in sorted(want.items()):
        if rel not in have:
            continue
        got = open(os.path.join(outdir, rel), 'rb').read()
        if got != bytes(blocks[name]):
            errs.append('%s (%s): %d bytes differ from the model (%d vs %d '
                        'bytes)' % (rel, name, sum(a != b for a, b in
                        zip(got, blocks[name])), len(got), len(blocks[name])))
        b = blocks[name]
        nonzero[name] = sum(1 for o in range(0, len(b), 4096)
                            if any(b[o:o + 4096]))
    for e in errs:
        print('MISMATCH', e)
    print('pages %d zero %d blocks %d nonzero_pc.ram %d' % (
        stats['pages'], stats['zero'], len(order), nonzero.get('pc.ram', -1)))
    sys.exit(1 if errs else 0)

def hole_map(path, ps=4096):
    """Per page of the file: True where SEEK_DATA finds no data in it."""
    fd = os.open(path, os.O_RDONLY)
    size, holes, off = os.fstat(fd).st_size, [], 0
    try:
        while off < size:
            try:
                data = os.lseek(fd, off, os.SEEK_DATA)
            except OSError:  # ENXIO: only a hole from here to the end
                data = size
            holes.append(data >= off + ps)
            off += ps
    finally:
        os.close(fd)
    return holes

def can_hole(d):
    """Does the file system under d keep 4 KiB holes that SEEK_DATA sees?"""
    probe = os.path.join(d, '.hole-probe')
    with open(probe, 'wb') as f:
        f.truncate(3 * 4096)
        f.seek(4096)
        f.write(b'x')
    ok = os.statvfs(d).f_bsize <= 4096 and hole_map(probe) == [True, False, True]
    os.unlink(probe)
    return ok

GAP_PAGES = 16  # EW_GAP_MAX (tools/extract_extent.h) in 4 KiB pages

def zero_runs(data, npages):
    """(first, count) of each maximal run of all-zero pages."""
    runs, first = [], None
    for i in range(npages + 1):
        zero = i < npages and not any(data[i * 4096:(i + 1) * 4096])
        if zero and first is None:
            first = i
        elif not zero and first is not None:
            runs.append((first, i - first))
            first = None
    return runs

def cmd_holes(*files):
    """Zero pages take no disk: every run of more than GAP_PAGES all-zero
    pages is a hole (shorter runs between data pages may be written as
    zeros in the same write); pages with data never read as holes."""
    if not can_hole(os.path.dirname(os.path.abspath(files[0]))):
        print('SKIP no 4 KiB holes on this file system')
        return
    errs, nholes = [], 0
    for path in files:
        data, holes = open(path, 'rb').read(), hole_map(path)
        nholes += sum(holes)
        for first, count in zero_runs(data, len(holes)):
            if count <= GAP_PAGES:
                continue
            for i in range(first, first + count):
                if not holes[i]:
                    errs.append('%s: page %d (in a run of %d zero pages) '
                                'written as bytes' % (path, i, count))
    for e in errs[:10]:
        print('MISMATCH', e)
    print('hole pages %d' % nholes)
    sys.exit(1 if errs else 0)

def cmd_pages(path, *spec):
    """Each FIRST:COUNT:what: pages FIRST.. are 'hole' (a hole, zero) or
    'data' (bytes on disk, not all zero)."""
    if not can_hole(os.path.dirname(os.path.abspath(path))):
        print('SKIP no 4 KiB holes on this file system')
        return
    data, holes, errs = open(path, 'rb').read(), hole_map(path), []
    for s in spec:
        first, count, what = s.split(':')
        for i in range(int(first), int(first) + int(count)):
            zero = not any(data[i * 4096:(i + 1) * 4096])
            if (what == 'hole') != (holes[i] and zero):
                errs.append('page %d: expected %s' % (i, what))
    for e in errs:
        print('MISMATCH', e)
    sys.exit(1 if errs else 0)

# ---- crafted streams --------------------------------------------------------
def be32(v): return struct.pack('>I', v)
def be64(v): return struct.pack('>Q', v)
def cstr(s): return bytes([len(s)]) + s.encode()
def uleb_enc(n): return bytes([n]) if n < 0x80 else bytes([(n & 0x7f) | 0x80, n >> 7])

def xbzrle_encode(old, new):
    out, i, n = b'', 0, len(new)
    while i < n:
        z = i
        while i < n and old[i] == new[i]:
            i += 1
        if i == n:
            break  # a trailing unchanged run is not sent
        zrun, j = i - z, i
        while i < n and old[i] != new[i]:
            i += 1
        out += uleb_enc(zrun) + uleb_enc(i - j) + bytes(new[j:i])
    return out

def cmd_craft(out, variant):
    """A small stream; 'clash'/'clash2': names that map to one path or to
    a file and its directory; 'badxb': a malformed XBZRLE delta;
    'rewrite': a second pass over one block (zero pages over data)."""
    import random
    ps, r = 4096, random.Random(7)
    names = ['pc.ram', '/rom@etc/acpi/tables', '../evil', 'a/./b/../../c',
             '/', '../..', 'dir/sub/file']
    sizes = [16 * ps, 2 * ps, ps, ps, ps, ps, ps]
    if variant == 'clash':
        names, sizes = ['a/b', 'a//b'], [ps, ps]
    if variant == 'clash2':
        names, sizes = ['x', 'x/y'], [ps, ps]
    if variant == 'rewrite':
        names, sizes = ['pc.ram'], [64 * ps]
    model = {n: bytearray(sz) for n, sz in zip(names, sizes)}
    ram, sections = [], []
    def rnd(): return bytes(r.randrange(256) for _ in range(ps))
    def rec(name, off, kind, payload, cont=False):
        ram.append(be64(off | kind | (CONT if cont else 0)) +
                   (b'' if cont else cstr(name)) + payload)
    def page(name, off, data, cont=False):
        rec(name, off, PAGE, data, cont)
        model[name][off:off + ps] = data
    def zero(name, off, cont=False):
        rec(name, off, ZERO, b'\0', cont)
        model[name][off:off + ps] = bytes(ps)
    def xb(name, off, new, cont=False):
        delta = xbzrle_encode(model[name][off:off + ps], new)
        chk = bytearray(model[name][off:off + ps]); xbzrle_decode(delta, chk)
        assert chk == new
        rec(name, off, XBZRLE, b'\x01' + struct.pack('>H', len(delta)) + delta,
            cont)
        model[name][off:off + ps] = new
    def comp(name, off, data, cont=False):
        z = zlib.compress(data)
        rec(name, off, COMP, be32(len(z)) + z, cont)
        model[name][off:off + ps] = data
    def end_section():
        sections.append(b''.join(ram)); ram.clear()
    def write_stream():
        """START (the block list), PART and END from the two sections."""
        blist = be64(sum(sizes) | MEM_SIZE) + b''.join(
            cstr(n) + be64(sz) for n, sz in zip(names, sizes))
        def section(t, sid, body, hdr=b''):
            return (bytes([t]) + be32(sid) + hdr + body + be64(EOS) +
                    b'\x7e' + be32(sid))
        s = b'QEVM' + be32(3) + b'\x07' + be32(6) + b'pc-7.2'
        s += section(1, 2, blist, cstr('ram') + be32(0) + be32(4))
        s += section(2, 2, sections[0])
        s += section(3, 2, sections[1])
        s += b'\x00'
        open(out, 'wb').write(s)
    if variant == 'rewrite':
        # an iterative precopy, later pages win: pass 1 pages 0-31 data,
        # 32-63 ZERO; pass 2 ZERO over data (8-23), an all-zero PAGE over
        # data (30), data over ZERO (40), XBZRLE to an all-zero page (5,
        # sparse before)
        sparse = bytearray(ps); sparse[10] = 1; sparse[4095] = 2
        for i in range(64):
            if i < 32:  # page 5: a delta to zeros fits in a page
                page(names[0], i * ps, bytes(sparse) if i == 5 else rnd(),
                     i > 0)
            else:
                zero(names[0], i * ps, True)
        end_section()
        for i in range(8, 24):
            zero(names[0], i * ps, i > 8)
        page(names[0], 30 * ps, bytes(ps))
        page(names[0], 40 * ps, rnd(), True)
        xb(names[0], 5 * ps, bytes(ps), True)
        end_section()
        write_stream()
        return
    # PART: pages, a ZERO that clears one, XBZRLE on old and on unwritten
    for n in names:
        page(n, 0, rnd())
    if not variant.startswith('clash'):
        page('pc.ram', ps, rnd())
        page('pc.ram', 2 * ps, rnd(), cont=True)
        zero('pc.ram', ps, cont=True)          # ZERO after PAGE: clears it
        zero('pc.ram', 9 * ps, cont=True)      # ZERO of an untouched page
        new = bytearray(model['pc.ram'][2 * ps:3 * ps])
        for k in (0, 1, 100, 101, 102, 4000, 4095):
            new[k] ^= 0x5a
        new[200:1500] = bytes(r.randrange(256) for _ in range(1300))
        xb('pc.ram', 2 * ps, bytes(new), cont=True)
        sparse = bytearray(ps); sparse[10] = 1; sparse[4095] = 2
        xb('pc.ram', 5 * ps, bytes(sparse), cont=True)  # old page is zero
        comp('pc.ram', 7 * ps, bytes([3]) * 2000 + bytes(ps - 2000), cont=True)
        comp('../evil', 0, rnd())
    end_section()
    # END: more pages, XBZRLE again, ZERO after PAGE in a subdirectory
    if variant == 'badxb':
        rec('pc.ram', 3 * ps, XBZRLE, b'\x01\x00\x03' + b'\x00\x00\x01')
    if not variant.startswith('clash'):
        page('pc.ram', 15 * ps, rnd())
        new = bytearray(model['pc.ram'][2 * ps:3 * ps]); new[4095] ^= 1
        xb('pc.ram', 2 * ps, bytes(new))
        zero('dir/sub/file', 0)
    end_section()
    write_stream()

# ---- migstream v1: one device's images, reassembled --------------------------
def cmd_v1(idstr, phase, out, *files):
    images = {}  # seq -> [phase, {('c', n) or ('p', idx): bytes}]
    handle = None
    for f in files:
        d = open(f, 'rb').read()
        p = 64
        while p + 24 <= len(d):
            size, flags, tag = struct.unpack_from('<QII', d, p)
            pl = d[p + 24:p + 24 + size]
            p += 24 + size + 8
            if tag == 1:
                h, ln = struct.unpack_from('<I', pl, 0)[0], struct.unpack_from('<I', pl, 16)[0]
                if pl[24:24 + ln].decode() == idstr:
                    handle = h
            elif tag == 2 and struct.unpack_from('<I', pl)[0] == handle:
                seq = struct.unpack_from('<I', pl, 4)[0]
                images.setdefault(seq, [None, {}])[0] = pl[8]
            elif tag == 3 and struct.unpack_from('<I', pl)[0] == handle:
                seq = struct.unpack_from('<I', pl, 4)[0]
                data = zlib.decompress(pl[16:]) if pl[8] == 1 else pl[16:]
                im = images.setdefault(seq, [None, {}])[1]
                im[('c', len(im))] = data
            elif tag == 5 and struct.unpack_from('<I', pl)[0] == handle:
                seq, idx, fl = struct.unpack_from('<III', pl, 4)
                if not fl & 1:
                    images.setdefault(seq, [None, {}])[1][('p', idx)] = pl[24:]
    want = {'all': None, 'initial': 1, 'middle': 2, 'final': 3}[phase]
    res = b''
    for seq in sorted(images):
        ph, parts = images[seq]
        if want is None or ph == want:
            res += b''.join(parts[k] for k in sorted(parts))
    open(out, 'wb').write(res)
    print(len(res))

if __name__ == '__main__':
    {'check': cmd_check, 'craft': cmd_craft, 'v1': cmd_v1, 'holes': cmd_holes,
     'pages': cmd_pages}[sys.argv[1]](*sys.argv[2:])
PY
PY=(python3 "$WORK/ref.py")

# ---- tool basics ----------------------------------------------------------
expect_exit 0 "--help" -- "$EXTRACT" --help
expect_grep "$WORK/out" "usage: migstream-extract" "--help text"
expect_exit 0 "--version" -- "$EXTRACT" --version
expect_grep "$WORK/out" "^migstream-extract [0-9]+\.[0-9]+\.[0-9]+$" "--version text"
expect_exit 2 "no mode" -- "$EXTRACT" "$CAP"
expect_exit 2 "--device without --out" -- "$EXTRACT" --device x "$CAP"
expect_exit 2 "--out without --device" -- "$EXTRACT" --ram "$WORK/r0" --out "$WORK/x" "$CAP"
expect_exit 2 "bad --phase" -- "$EXTRACT" --device x --out "$WORK/x" --phase later "$CAP"
expect_exit 2 "no files" -- "$EXTRACT" --ram "$WORK/r0"
expect_exit 2 "missing input" -- "$EXTRACT" --ram "$WORK/r0" "$WORK/nope.mig"
expect_exit 2 "unknown device" -- "$EXTRACT" --device 0000:00:09.0/vfio --out "$WORK/nodev" "$CAP"
expect_grep "$WORK/err" "no device \"0000:00:09.0/vfio\"" "unknown device named"
[ ! -e "$WORK/nodev" ] && ok || bad "output of an unknown device left behind"

# ---- RAM of the real capture ------------------------------------------------
R=$WORK/ram
expect_exit 0 "extract --ram capture" -- "$EXTRACT" --ram "$R" "$CAP"
[ ! -s "$WORK/out" ] && ok || bad "extract printed output on success"
# Sizes are the block list's used_length (dump --json ram_block).
"$DUMP" --json "$CAP" | python3 -c '
import json, sys, os
sys.path.insert(0, os.path.dirname(sys.argv[2])); import ref
for line in sys.stdin:
    e = json.loads(line)
    if e["kind"] == "ram_block":
        p = os.path.join(sys.argv[1], ref.relpath(e["block"]))
        print(e["block"], e["used_length"], os.path.getsize(p))
' "$R" "$WORK/ref.py" > "$WORK/sizes"
[ "$(wc -l < "$WORK/sizes")" -eq 8 ] && ok || bad "capture: expected 8 RAM blocks"
awk '$2 != $3 { exit 1 }' "$WORK/sizes" && ok || bad "block file size differs from used_length: $(cat "$WORK/sizes")"
grep -q "^pc.ram 67108864 67108864$" "$WORK/sizes" && ok || bad "pc.ram is not 64 MiB"
# Names as analyze-migration.py -x: '/' makes directories, leading '/' dropped.
for f in pc.ram pc.bios pc.rom "rom@etc/acpi/tables" "rom@etc/table-loader" \
    "rom@etc/acpi/rsdp" "0000:00:02.0/virtio-net-pci.rom" "0000:00:03.0/e1000.rom"; do
    [ -f "$R/$f" ] && ok || bad "no block file $f"
done
# Sparse: 64 MiB of guest RAM with 199 pages sent takes far less disk.
used=$(du -k "$R/pc.ram" | cut -f1)
[ "$used" -lt 8192 ] && ok || bad "pc.ram not sparse ($used KiB on disk)"
# Every byte equals the independent model; 371 normal + 16281 zero pages.
expect_exit 0 "capture: files equal the Python model" -- "${PY[@]}" check "$CAP" "$R"
expect_grep "$WORK/out" "^pages 371 zero 16281 blocks 8 " "capture page counts (QEMU: 371 normal, 16281 zero)"
nz=$(sed -n 's/.*nonzero_pc.ram \([0-9]*\).*/\1/p' "$WORK/out")
[ -n "$nz" ] && [ "$nz" -gt 0 ] && [ "$nz" -le 199 ] && ok || bad "pc.ram non-zero pages: '$nz'"
# Zero pages are holes: every all-zero page of every block takes no disk.
expect_exit 0 "capture: zero pages are holes" -- "${PY[@]}" holes "$R/pc.ram" "$R/pc.bios" "$R/rom@etc/acpi/tables"
grep -q SKIP "$WORK/out" || expect_grep "$WORK/out" "^hole pages 16[0-9]{3}$" "capture: pc.ram's holes counted"
# Option ROMs and the BIOS look like what they are.
[ "$(head -c 2 "$R/0000:00:03.0/e1000.rom" | od -An -tx1 | tr -d ' ')" = 55aa ] && ok ||
    bad "e1000 option ROM lacks its 55 AA signature"
grep -q SeaBIOS "$R/pc.bios" && ok || bad "pc.bios holds no SeaBIOS string"
# Running again over existing files gives the same result.
expect_exit 0 "extract --ram again" -- "$EXTRACT" --ram "$R" "$CAP"
expect_exit 0 "again: equal to the model" -- "${PY[@]}" check "$CAP" "$R"
expect_exit 0 "extract --ram -v" -- "$EXTRACT" -v --ram "$WORK/rv" "$CAP"
expect_grep "$WORK/out" "/rv/pc.ram: block pc.ram, 67108864 bytes, 199 pages, 16195 zero pages" "verbose listing"
# From a pipe (no JSON trailer handed over first) the RAM is the same.
expect_exit 0 "extract --ram from stdin" -- bash -c "cat '$CAP' | '$EXTRACT' --ram '$WORK/rpipe' -"
expect_exit 0 "stdin: equal to the model" -- "${PY[@]}" check "$CAP" "$WORK/rpipe"

# A truncated capture: exit 1 with FILE:OFFSET, every page before the cut kept.
head -c 1000000 "$CAP" > "$WORK/cut.mig"
expect_exit 1 "truncated capture" -- "$EXTRACT" --ram "$WORK/rcut" "$WORK/cut.mig"
expect_grep "$WORK/err" "cut.mig:1000000: truncated:" "truncation reported with offset"
expect_exit 0 "truncated: files equal the model of what was read" -- "${PY[@]}" check "$WORK/cut.mig" "$WORK/rcut"
# A migstream v1 stream has no RAM.
"$SYNTH" --channels 1 -o "$WORK/v1one" >/dev/null 2>&1
expect_exit 2 "--ram on a migstream file" -- "$EXTRACT" --ram "$WORK/rv1" "$WORK/v1one/channel-0.mig"
expect_grep "$WORK/err" "no QEMU RAM blocks" "no RAM said"

# ---- crafted RAM records and hostile names ----------------------------------------
"${PY[@]}" craft "$WORK/craft.mig" normal
expect_exit 0 "verify crafted stream" -- "$VERIFY" "$WORK/craft.mig"
C=$WORK/box/ram
mkdir -p "$WORK/box"
expect_exit 0 "extract crafted" -- "$EXTRACT" --ram "$C" "$WORK/craft.mig"
expect_exit 0 "crafted: ZERO-after-PAGE, XBZRLE, COMPRESS_PAGE as the model" -- "${PY[@]}" check "$WORK/craft.mig" "$C"
expect_grep "$WORK/out" "^pages 15 zero 3 blocks 7 " "crafted record counts"
for f in pc.ram "rom@etc/acpi/tables" "%2E%2E/evil" "a/%2E/b/%2E%2E/%2E%2E/c" "%2F" "%2E%2E/%2E%2E" "dir/sub/file"; do
    [ -f "$C/$f" ] && ok || bad "crafted: no file '$f'"
done
n=$(find "$WORK/box" -mindepth 1 -not -path "$C" -not -path "$C/*" | wc -l)
[ "$n" -eq 0 ] && ok || bad "crafted: files written outside DIR: $(find "$WORK/box" -mindepth 1 -not -path "$C*")"
[ ! -e "$WORK/evil" ] && [ ! -e "$WORK/box/evil" ] && ok || bad "'../evil' escaped DIR"
# A symlink planted in DIR is not followed.
S=$WORK/sym
mkdir -p "$S" && echo keep > "$WORK/victim" && ln -s "$WORK/victim" "$S/pc.ram"
expect_exit 2 "symlink in DIR" -- "$EXTRACT" --ram "$S" "$WORK/craft.mig"
[ "$(cat "$WORK/victim")" = keep ] && ok || bad "extract wrote through a symlink"
mkdir -p "$WORK/sym2" && ln -s "$WORK" "$WORK/sym2/dir"
expect_exit 2 "symlinked directory in DIR" -- "$EXTRACT" --ram "$WORK/sym2" "$WORK/craft.mig"
[ ! -e "$WORK/sub" ] && ok || bad "extract followed a symlinked directory"
# Two names for one path.
"${PY[@]}" craft "$WORK/clash.mig" clash
expect_exit 2 "colliding block names" -- "$EXTRACT" --ram "$WORK/rclash" "$WORK/clash.mig"
expect_grep "$WORK/err" "RAM blocks \"a/b\" and \"a//b\" map to the same file" "collision named"
"${PY[@]}" craft "$WORK/clash2.mig" clash2
expect_exit 2 "block name that is another's directory" -- "$EXTRACT" --ram "$WORK/rclash2" "$WORK/clash2.mig"
expect_grep "$WORK/err" "RAM blocks \"x\" and \"x/y\" map to a file and a directory" "file/directory collision named"
# A malformed XBZRLE delta is invalid input: reported, the rest still written.
"${PY[@]}" craft "$WORK/badxb.mig" badxb
expect_exit 1 "bad XBZRLE delta" -- "$EXTRACT" --ram "$WORK/rbad" "$WORK/badxb.mig"
expect_grep "$WORK/err" "badxb.mig:[0-9]+: ram: XBZRLE delta" "bad delta reported with offset"
[ "$(stat -c %s "$WORK/rbad/pc.ram")" -eq 65536 ] && ok || bad "bad delta: pc.ram not written"

# A second pass: later pages win, zero pages over data become holes again.
"${PY[@]}" craft "$WORK/rewrite.mig" rewrite
expect_exit 0 "extract a rewrite pass" -- "$EXTRACT" -v --ram "$WORK/rrw" "$WORK/rewrite.mig"
expect_grep "$WORK/out" "pc.ram: block pc.ram, 262144 bytes, 34 pages, 48 zero pages, 1 xbzrle pages, 19 superseded" "rewrite: counts"
expect_exit 0 "rewrite: equal to the model" -- "${PY[@]}" check "$WORK/rewrite.mig" "$WORK/rrw"
expect_exit 0 "rewrite: zero pages are holes" -- "${PY[@]}" holes "$WORK/rrw/pc.ram"
expect_exit 0 "rewrite: holes and data where the second pass put them" -- "${PY[@]}" pages "$WORK/rrw/pc.ram" \
    0:5:data 5:1:hole 6:2:data 8:16:hole 24:6:data 30:1:hole 31:1:data 32:8:hole 40:1:data 41:23:hole
# Multifd channels (zero pages as offsets in packets, later passes over
# earlier ones): the synthesizer's RAM, holes where it is zero.
expect_exit 0 "synth --multifd 3 passes" -- "$SYNTH" --multifd 2 --ram-size 4M --ram-passes 3 --devices 0 \
    --seed 3 -o "$WORK/mf" --expect-dir "$WORK/mf.exp"
expect_exit 0 "extract multifd" -- "$EXTRACT" --ram "$WORK/rmf" "$WORK/mf/channel-1.mig" "$WORK/mf/main.mig" \
    "$WORK/mf/channel-0.mig"
cmp -s "$WORK/rmf/pc.ram" "$WORK/mf.exp/ram-0.bin" && ok || bad "multifd: pc.ram differs from the synthesizer's"
expect_exit 0 "multifd: zero pages are holes" -- "${PY[@]}" holes "$WORK/rmf/pc.ram" "$WORK/rmf/pc.bios"
grep -q SKIP "$WORK/out" || expect_grep "$WORK/out" "^hole pages [1-9][0-9]*$" "multifd: holes found"

# ---- device bytes: synth --qemu -------------------------------------------------
for ack in "" --switchover-ack; do
    Q=$WORK/q$ack
    expect_exit 0 "synth --qemu $ack" -- "$SYNTH" --qemu "$CAP" -o "$Q.mig" --expect-dir "$Q.exp" \
        --devices 3 --middle 3 --packet-size 100K $ack
    while read -r n id sid; do
        e=$Q.exp/$n
        expect_exit 0 "extract $id all $ack" -- "$EXTRACT" --device "$id" --out "$Q.all" "$Q.mig"
        cat "$e.initial" "$e.middle" "$e.final" | cmp -s - "$Q.all" && ok || bad "$id $ack: all phases differ"
        for ph in initial middle final; do
            expect_exit 0 "extract $id $ph $ack" -- "$EXTRACT" --device "$id" --out "$Q.$ph" --phase "$ph" "$Q.mig"
        done
        cmp -s "$Q.final" "$e.final" && ok || bad "$id $ack: final differs"
        if [ -n "$ack" ]; then
            cmp -s "$Q.initial" "$e.initial" && ok || bad "$id: initial differs"
            cmp -s "$Q.middle" "$e.middle" && ok || bad "$id: middle differs"
        else
            # Without switchover-ack all precopy bytes read as initial.
            cat "$e.initial" "$e.middle" | cmp -s - "$Q.initial" && ok || bad "$id: precopy differs"
            [ ! -s "$Q.middle" ] && ok || bad "$id: middle bytes without switchover-ack"
        fi
    done < "$Q.exp/devices"
done
# raw payloads, one device, device bytes and RAM from one run
expect_exit 0 "synth --qemu raw" -- "$SYNTH" --qemu "$CAP" -o "$WORK/raw.mig" --expect-dir "$WORK/raw.exp" \
    --devices 1 --kind raw --seed 9 --initial-size 3M --final-size 2500K
expect_exit 0 "extract --ram and --device together" -- "$EXTRACT" --ram "$WORK/rraw" \
    --device 0000:00:10.0/vfio --out "$WORK/raw.all" "$WORK/raw.mig"
cat "$WORK/raw.exp/0.initial" "$WORK/raw.exp/0.middle" "$WORK/raw.exp/0.final" | cmp -s - "$WORK/raw.all" &&
    ok || bad "raw device bytes differ"
expect_exit 0 "RAM unchanged by the inserted devices" -- "${PY[@]}" check "$CAP" "$WORK/rraw"
# a cut inside the device data: exit 1, the bytes before the cut kept
size=$(stat -c %s "$WORK/raw.mig")
cut=$(( size / 2 ))
head -c $cut "$WORK/raw.mig" > "$WORK/rawcut.mig"
expect_exit 1 "cut device stream" -- "$EXTRACT" --device 0000:00:10.0/vfio --out "$WORK/rawcut.all" "$WORK/rawcut.mig"
expect_grep "$WORK/err" "rawcut.mig:$cut: truncated:" "cut reported"
got=$(stat -c %s "$WORK/rawcut.all")
[ "$got" -gt 0 ] && cmp -s -n "$got" "$WORK/raw.all" "$WORK/rawcut.all" && ok || bad "cut: $got bytes kept, not a prefix"
cp "$WORK/raw.mig" "$WORK/raw2.mig"
expect_exit 2 "--out naming an input" -- "$EXTRACT" --device 0000:00:10.0/vfio --out "$WORK/raw2.mig" "$WORK/raw2.mig"
cmp -s "$WORK/raw.mig" "$WORK/raw2.mig" && ok || bad "--out overwrote its input"
expect_exit 2 "--out into a missing directory" -- "$EXTRACT" --device 0000:00:10.0/vfio --out "$WORK/no/such" "$WORK/raw.mig"

# ---- device bytes: migstream v1 (chunks and reassembled packets) ------------------
V=$WORK/v1
"$SYNTH" -o "$V" --devices 2 --middle 2 --compress 6 --packet-size 50K >/dev/null 2>&1 || bad "synth v1"
for id in 0000:00:02.0/vfio 0000:00:03.0/vfio; do
    for ph in all initial middle final; do
        "${PY[@]}" v1 "$id" "$ph" "$WORK/v1.want" "$V"/channel-*.mig > /dev/null
        opt=(); [ "$ph" != all ] && opt=(--phase "$ph")
        expect_exit 0 "v1 $id $ph" -- "$EXTRACT" --device "$id" --out "$WORK/v1.got" "${opt[@]}" "$V"/channel-*.mig
        cmp -s "$WORK/v1.want" "$WORK/v1.got" && ok || bad "v1 $id $ph differs"
        # packets read before their image's home channel: same bytes
        expect_exit 0 "v1 $id $ph reversed" -- "$EXTRACT" --device "$id" --out "$WORK/v1.rev" "${opt[@]}" \
            "$V/channel-3.mig" "$V/channel-2.mig" "$V/channel-1.mig" "$V/channel-0.mig"
        cmp -s "$WORK/v1.want" "$WORK/v1.rev" && ok || bad "v1 $id $ph in reverse channel order differs"
    done
done
[ "$(stat -c %s "$WORK/v1.want")" -gt 1000000 ] && ok || bad "v1 final image unexpectedly small"

# ---- -o -: standard output (through a pipe and into a file), -v on stderr ---------
id=0000:00:03.0/vfio
"${PY[@]}" v1 "$id" all "$WORK/v1.want" "$V"/channel-*.mig > /dev/null
"$EXTRACT" --device "$id" -o - -v "$V"/channel-*.mig 2>"$WORK/pipe.err" | cat > "$WORK/v1.pipe"
[ "${PIPESTATUS[0]}" -eq 0 ] && ok || bad "-o - through a pipe: exit ${PIPESTATUS[0]}"
cmp -s "$WORK/v1.want" "$WORK/v1.pipe" && ok || bad "-o - through a pipe differs"
expect_grep "$WORK/pipe.err" "^-: device $id, $(stat -c %s "$WORK/v1.want") bytes" "-v line on stderr with -o -"
expect_exit 0 "-o - into a file" -- "$EXTRACT" --device "$id" --out - "$V"/channel-*.mig
cmp -s "$WORK/v1.want" "$WORK/out" && ok || bad "-o - into a file differs"
expect_exit 2 "--out - and --config - together" -- "$EXTRACT" --device "$id" --out - --config - "$V"/channel-*.mig
# a damaged copy: what was decoded before the problem is still written
cp "$V/channel-0.mig" "$WORK/v1cut.mig"; truncate -s 300000 "$WORK/v1cut.mig"
"$EXTRACT" --device 0000:00:02.0/vfio -o - "$WORK/v1cut.mig" > "$WORK/v1cut.out" 2>"$WORK/v1cut.err"
[ $? -eq 1 ] && ok || bad "-o - on a cut stream: not exit 1"
expect_grep "$WORK/v1cut.err" "v1cut.mig:[0-9]*: truncated" "cut stream reported with -o -"
finish
