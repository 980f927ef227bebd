#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only
# Generate the fuzzers' seed corpora: built seeds plus the committed,
# minimised ones of fuzz/corpus/NAME/ (see fuzz/corpus/README.md).
#
#   scripts/make-corpus.sh BIN_DIR OUT_DIR [NAME...]
#
# BIN_DIR holds migstream-synth.  Writes, replacing what was there:
#   OUT_DIR/reader/     every channel file of every workload, one seed each,
#                       plus QEMU main-stream seeds (qemu-*.mig, see below)
#   OUT_DIR/set/        per workload, its channel files concatenated in order
#   OUT_DIR/roundtrip/  a few small files of deterministic bytes
# Each NAME not among these gets a directory with the reader seeds, so a new
# harness fuzz/fuzz_NAME.c has seeds from day one.  Seeds over 64 KiB are
# left out (they would only slow fuzzing down).  CTest runs this as the
# fixture test make-corpus.
set -euo pipefail

if [[ $# -lt 2 ]]; then
    echo "usage: $0 BIN_DIR OUT_DIR [NAME...]" >&2
    exit 2
fi
bin_dir=$1
out_dir=$2
shift 2

synth="$bin_dir/migstream-synth"
if [[ ! -x "$synth" ]]; then
    echo "make-corpus: $synth not found; build tools/synth/ first" >&2
    exit 1
fi

max_seed=65535
tmp=$(mktemp -d "${TMPDIR:-/tmp}/migstream-corpus.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

rm -rf "$out_dir/reader" "$out_dir/set" "$out_dir/roundtrip"
mkdir -p "$out_dir/reader" "$out_dir/set" "$out_dir/roundtrip"

small="--initial-size 3000 --middle-size 1000 --final-size 5000 --chunk-size 1024 --packet-size 2048"
# One line per workload: migstream-synth options (without -o).
workloads=(
    "--devices 1 --channels 1 --middle 0 $small --compress 0 --seed 1"
    "--devices 1 --channels 1 --middle 1 $small --compress 6 --seed 2"
    "--devices 2 --channels 2 --middle 1 $small --compress 0 --final-transport packets --seed 3"
    "--devices 3 --channels 4 --middle 2 $small --compress 6 --final-transport packets --seed 4"
    "--devices 2 --channels 3 --middle 0 $small --compress 0 --final-transport chunks --vendor-record --seed 5"
    "--devices 1 --channels 2 --middle 2 $small --compress 6 --final-transport packets --vendor-record --seed 6"
    "--devices 3 --channels 1 --middle 1 $small --compress 6 --final-transport chunks --seed 7"
    "--devices 1 --channels 1 --middle 0 --initial-size 1 --middle-size 1 --final-size 17 --chunk-size 7 --packet-size 5 --compress 0 --final-transport packets --seed 8"
    "--devices 2 --channels 4 --middle 1 --initial-size 200 --middle-size 100 --final-size 300 --chunk-size 64 --packet-size 50 --compress 6 --final-transport packets --vendor-record --seed 9"
)

# add_seed FILE DEST: copy FILE to DEST unless it is too big.
add_seed() {
    local size
    size=$(wc -c <"$1")
    if ((size > max_seed)); then
        echo "make-corpus: leaving out $2 ($size bytes > $max_seed)" >&2
        return 0
    fi
    cp "$1" "$2"
}

n_reader=0
n_set=0
i=0
for opts in "${workloads[@]}"; do
    dir="$tmp/w$i"
    mkdir -p "$dir"
    # shellcheck disable=SC2086  # options are split on purpose
    if ! "$synth" $opts -o "$dir" >"$tmp/synth.log" 2>&1; then
        echo "make-corpus: migstream-synth $opts -o $dir failed:" >&2
        cat "$tmp/synth.log" >&2
        exit 1
    fi
    channels=()
    c=0
    while [[ -f "$dir/channel-$c.mig" ]]; do
        channels+=("$dir/channel-$c.mig")
        c=$((c + 1))
    done
    if [[ ${#channels[@]} -eq 0 ]]; then
        echo "make-corpus: migstream-synth $opts wrote no channel-*.mig" >&2
        exit 1
    fi
    for ((c = 0; c < ${#channels[@]}; c++)); do
        add_seed "${channels[$c]}" "$out_dir/reader/w$i-channel-$c.mig"
    done
    cat "${channels[@]}" >"$tmp/set-w$i.mig"
    add_seed "$tmp/set-w$i.mig" "$out_dir/set/w$i.mig"
    i=$((i + 1))
done

# Round-trip seeds: the bytes only steer the workload, so any will do; a
# few sizes and patterns, plus slices of real streams.
rt="$out_dir/roundtrip"
printf '\x01\x01' >"$rt/tiny"
printf '\x02\x02\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\xcc\xdd\xee\xff\x00\x01\x02\x03\x04\x05\x06\x07\x40\x00\x07\x03' >"$rt/two-by-two"
head -c 256 /dev/zero >"$rt/zeros-256"
head -c 512 /dev/zero | tr '\0' '\377' >"$rt/ones-512"
i=0
for f in "$out_dir"/reader/*.mig; do
    [[ -f "$f" ]] || continue
    head -c $((64 + 97 * i)) "$f" >"$rt/stream-prefix-$i"
    tail -c $((300 + 211 * i)) "$f" >"$rt/stream-suffix-$i"
    i=$((i + 1))
    ((i < 4)) || break
done
seq 1 300 | tr '\n' ' ' >"$rt/text"

# QEMU main-stream ("QEVM") seeds for the reader, written by python3 from the
# format facts: hand-built streams with every record kind (qemu-rich: every
# command, PACKAGED nesting, every RAM record, every VFIO marker, walked
# sections, a JSON trailer; 1 KiB pages via target-page-bits keep it small),
# capabilities with x-ignore-shared, a libvirt save image, and excerpts of the
# real QEMU 7.2 capture that are valid streams themselves (qemu-capture-ram:
# RAM START and END sections and the small FULL sections; qemu-capture-devices:
# the small FULL sections and a trailer describing them), plus two cut
# streams.  Without python3 (or the capture) those seeds are left out.
src_dir=${MIGSTREAM_SRC_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
capture="$src_dir/tests/data/captures/qemu-7.2-pc-precopy/main.mig"
if command -v python3 >/dev/null 2>&1; then
    python3 - "$tmp/qemu" "$capture" <<'PY'
import json, os, random, struct, sys, zlib

out, capture = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)


def be16(v): return struct.pack(">H", v)
def be32(v): return struct.pack(">I", v)
def be64(v): return struct.pack(">Q", v & 0xFFFFFFFFFFFFFFFF)
def counted(s): s = s.encode(); return bytes([len(s)]) + s


def blob(n, seed):  # deterministic bytes without 0x7e (no false footers)
    r = random.Random(seed)
    return bytes(b if b != 0x7E else 0x11 for b in r.getrandbits(8 * n).to_bytes(n, "little")) if n else b""


def header(version=3): return be32(0x5145564D) + be32(version)


def config(machine="pc-i440fx-7.2", page_bits=None, caps=None, uuid=None):
    b = b"\x07" + be32(len(machine)) + machine.encode()
    sub = lambda name: b"\x05" + counted("configuration/" + name) + be32(1)
    if page_bits is not None:
        b += sub("target-page-bits") + be32(page_bits)
    if caps is not None:
        b += sub("capabilities") + be32(len(caps)) + b"".join(counted(c) for c in caps)
    if uuid is not None:
        b += sub("uuid") + uuid
    return b


def start(t, sid, idstr, inst, ver): return bytes([t]) + be32(sid) + counted(idstr) + be32(inst) + be32(ver)
def part(t, sid): return bytes([t]) + be32(sid)
def footer(sid): return b"\x7e" + be32(sid)
def cmd(c, args=b""): return b"\x08" + be16(c) + be16(len(args)) + args
def packaged(pkg): return cmd(7, be32(len(pkg))) + pkg
def trailer(js): js = js.encode(); return b"\x06" + be32(len(js)) + js


ZERO, MEM_SIZE, PAGE, EOS, CONT, XBZRLE, COMPRESS, FLUSH = 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x100, 0x200


def rec(off, flags, block=None):  # block None: CONTINUE
    return be64(off | flags | (0 if block else CONT)) + (counted(block) if block else b"")


def blocks(lst, extra=b""):
    return be64(sum(l for _, l in lst) | MEM_SIZE) + b"".join(counted(n) + be64(l) + extra for n, l in lst)


VFIO = 0xFFFFFFFFEF100000
def mk(n): return be64(VFIO + n)
def vdata(d): return mk(4) + be64(len(d)) + d


PS = 1024  # target-page-bits 10 (the smallest with room for every RAM flag)
JSON = ('{"page_size": 1024, "devices": [{"name": "timer", "instance_id": 0, "vmsd_name": "timer", '
        '"version": 2, "fields": [{"name": "cpu_ticks_offset", "type": "int64", "size": 8}, '
        '{"name": "unused", "type": "unused_buffer", "size": 8}, {"name": "cpu_clock_offset", '
        '"type": "int64", "size": 8}], "subsections": [{"vmsd_name": "timer/x", "version": 1, '
        '"fields": [{"name": "x", "type": "uint32", "size": 4}]}]}]}')
seeds = {}
seeds["qemu-minimal.mig"] = header() + config() + b"\x00"

# every record kind
pg = [blob(PS, 100 + i) for i in range(4)]
bl = [("pc.ram", 16 * PS), ("pc.bios", 4 * PS)]
V = "0000:00:02.0/vfio"
inner = (cmd(4) + start(4, 0, "timer", 0, 2) + be64(0x1D36891F2) + bytes(8) + be64(0xB40A33F2)
         + b"\x05" + counted("timer/x") + be32(1) + be32(7) + footer(0) + cmd(2, be32(3)) + cmd(5))
s = (header() + config(page_bits=10, uuid=bytes(range(16)))
     + cmd(1) + cmd(2, be32(1)) + cmd(3, be64(PS) + be64(PS)) + cmd(3)
     + cmd(6, b"\x00" + counted("pc.ram") + b"\x00" + be64(0) + be64(PS))
     + cmd(10, counted("pc.ram")) + cmd(8) + cmd(9)
     + start(1, 2, "ram", 0, 4) + blocks(bl) + be64(FLUSH) + be64(EOS) + footer(2)
     + start(1, 3, V, 0, 1) + mk(3) + mk(1) + footer(3)
     + start(1, 5, "block", 0, 1) + blob(20, 1) + footer(5)
     + part(2, 2) + rec(0, PAGE, "pc.ram") + pg[0] + rec(PS, ZERO) + b"\x00"
     + rec(2 * PS, XBZRLE) + b"\x01" + be16(12) + blob(12, 2)
     + rec(PS, COMPRESS, "pc.bios") + (lambda z: be32(len(z)) + z)(zlib.compress(pg[1]))
     + rec(15 * PS, PAGE, "pc.ram") + pg[2] + be64(FLUSH) + be64(EOS) + footer(2)
     + part(2, 3) + vdata(blob(40, 3)) + mk(1) + footer(3)
     + part(2, 3) + vdata(b"") + mk(1) + footer(3)
     + part(2, 3) + vdata(blob(30, 4)) + mk(5) + footer(3)
     + part(2, 2) + rec(14 * PS, ZERO) + b"\x00" + be64(EOS) + footer(2)
     + part(2, 3) + vdata(blob(9, 5)) + mk(1) + footer(3)
     + part(2, 5) + blob(7, 6) + footer(5)
     + cmd(4) + packaged(inner + packaged(cmd(2, be32(9)) + b"\x00")) + cmd(11)
     + part(3, 2) + rec(PS, PAGE, "pc.bios") + pg[3] + rec(0, ZERO) + b"\x00" + be64(EOS) + footer(2)
     + part(3, 3) + vdata(blob(100, 7)) + vdata(blob(3, 8)) + mk(1) + footer(3)
     + part(3, 5) + footer(5)
     + start(4, 3, V, 0, 1) + mk(2) + blob(24, 9) + mk(1) + footer(3)
     + start(4, 6, "0000:00:04.0/vfio", 0, 1) + mk(6) + footer(6)
     + b"\x00" + trailer(JSON))
seeds["qemu-rich.mig"] = s
seeds["qemu-rich-cut.mig"] = s[: len(s) * 2 // 3]

# capabilities (x-ignore-shared: a guest address per block), 4 KiB pages
page = blob(4096, 11)
seeds["qemu-ignore-shared.mig"] = (
    header() + config(machine="pc-q35-7.2", page_bits=12, caps=["x-ignore-shared"], uuid=blob(16, 12))
    + cmd(1) + start(1, 2, "ram", 0, 4) + blocks([("pc.ram", 0x4000)], be64(0x100000)) + be64(EOS) + footer(2)
    + part(3, 2) + rec(0x1000, ZERO, "pc.ram") + b"\x00" + rec(0x3000, PAGE) + page
    + rec(0, COMPRESS) + (lambda z: be32(len(z)) + z)(zlib.compress(page)) + be64(EOS) + footer(2)
    + b"\x00")

# libvirt save image around a small stream
xml = b"<domain type='kvm'><name>seed</name></domain>\n".ljust(96, b"\x00")
seeds["qemu-libvirt.mig"] = (b"LibvirtQemudSave" + struct.pack("<5I", 2, len(xml), 1, 0, 0) + bytes(56)
                             + xml + header() + config(page_bits=10) + start(1, 2, "ram", 0, 4)
                             + blocks(bl) + be64(EOS) + footer(2) + part(3, 2) + rec(0, PAGE, "pc.ram")
                             + pg[0] + be64(EOS) + footer(2) + b"\x00")

# an excerpt of the real capture that is itself a valid stream
if os.path.isfile(capture):
    data = open(capture, "rb").read()
    eof = -1  # the EOF byte: right before the trailer (0x06, be32 n, n bytes)
    for i in range(len(data) - 6, max(0, len(data) - (1 << 24)), -1):
        if data[i] == 6 and data[i + 5] == 0x7B and struct.unpack(">I", data[i + 1 : i + 5])[0] == len(data) - i - 5:
            eof = i - 1
            break
    if eof > 0 and data[eof] == 0:
        desc = json.loads(data[eof + 6 :])

        def find(sid, name):  # a FULL/START section header: type, be32 id, counted name
            i = data.find(bytes([4]) + be32(sid) + counted(name) + be32(0))
            return i

        cfg_end = 8 + 1 + 4 + struct.unpack(">I", data[9:13])[0]
        # RAM START ends where the first RAM PART (type 2, id 2) begins
        part_at = data.find(part(2, 2), cfg_end)
        end_at = data.find(part(3, 2) + be64(0 | PAGE) + counted("pc.ram"), part_at)
        timer_at = find(0, "timer")
        vnet_at = find(41, "0000:00:02.0/virtio-net")
        acpi_at = find(43, "acpi_build")
        if min(part_at, end_at, timer_at, vnet_at, acpi_at) > 0:
            # RAM START + END and the small FULL sections, ending at EOF
            seeds["qemu-capture-ram.mig"] = (data[:part_at] + data[end_at:vnet_at]
                                             + data[acpi_at : eof + 1])
            # the small FULL sections and a trailer describing as many of
            # their devices as fit
            body = data[:cfg_end] + data[timer_at:vnet_at] + data[acpi_at : eof + 1]
            keep = [d for d in desc["devices"] if d["name"] not in
                    ("0000:00:02.0/virtio-net", "0000:00:03.0/e1000")]
            while keep:  # drop the largest descriptions until it fits
                js = json.dumps({"page_size": desc["page_size"], "devices": keep})
                if len(body) + 5 + len(js) <= 65535:
                    break
                keep.remove(max(keep, key=lambda d: len(json.dumps(d))))
            seeds["qemu-capture-devices.mig"] = body + (trailer(js) if keep else b"")
        seeds["qemu-capture-head.mig"] = data[:6000]
else:
    print("make-corpus: %s not found; capture excerpts left out" % capture, file=sys.stderr)

for name, b in sorted(seeds.items()):
    with open(os.path.join(out, name), "wb") as f:
        f.write(b)
PY
    for f in "$tmp"/qemu/qemu-*.mig; do
        [[ -f "$f" ]] || continue
        add_seed "$f" "$out_dir/reader/$(basename "$f")"
    done
else
    echo "make-corpus: python3 not found; QEMU main-stream seeds left out" >&2
fi

# QEMU multifd channel seeds for the reader: small synthetic sets from
# migstream-synth --multifd (raw pages with device-state packets, zlib, zstd;
# every channel and the main channel), the small real channel conn3 of the
# multifd4 capture whole, and the first 20 KiB of two real channels (raw and
# zlib) as truncated seeds.
mfd_sets=(
    "raw-dev|--multifd 2 --ram-size 16K --ram-passes 2 --devices 2 --final-size 3000 --packet-size 1000 --seed 11"
    "zlib|--multifd 2 --compress-multifd zlib --ram-size 32K --ram-passes 2 --seed 12"
    "zstd|--multifd 2 --compress-multifd zstd --ram-size 32K --ram-passes 2 --uuid 5a1e7700123445568798a9bacbdcedfe --seed 13"
)
for entry in "${mfd_sets[@]}"; do
    name=${entry%%|*}
    opts=${entry#*|}
    dir="$tmp/mfd-$name"
    # shellcheck disable=SC2086  # options are split on purpose
    if ! "$synth" $opts -o "$dir" >"$tmp/synth.log" 2>&1; then
        echo "make-corpus: migstream-synth $opts -o $dir failed:" >&2
        cat "$tmp/synth.log" >&2
        exit 1
    fi
    for f in "$dir"/*.mig; do
        add_seed "$f" "$out_dir/reader/qemu-multifd-$name-$(basename "$f")"
    done
done
mfd4="$src_dir/tests/data/captures/qemu-7.2-pc-multifd4"
zlib2="$src_dir/tests/data/captures/qemu-7.2-pc-multifd2-zlib"
if [[ -f "$mfd4/conn3.bin" && -f "$mfd4/conn1.bin" && -f "$zlib2/conn1.bin" ]]; then
    add_seed "$mfd4/conn3.bin" "$out_dir/reader/qemu-multifd-capture-channel.mig"
    head -c 20480 "$mfd4/conn1.bin" >"$tmp/mfd-head-raw"
    add_seed "$tmp/mfd-head-raw" "$out_dir/reader/qemu-multifd-capture-head-raw.mig"
    head -c 20480 "$zlib2/conn1.bin" >"$tmp/mfd-head-zlib"
    add_seed "$tmp/mfd-head-zlib" "$out_dir/reader/qemu-multifd-capture-head-zlib.mig"
else
    echo "make-corpus: multifd captures not found; their seeds left out" >&2
fi

# Seeds for harnesses without a dedicated recipe.
for name in "$@"; do
    case "$name" in
    reader | set | roundtrip) ;;
    # inputs of their own layout (a mode byte, a bare section body, a
    # delta, JSON): the committed corpus below is their seed corpus
    qemu_main | multifd | dirty_bitmap | xbzrle | json) ;;
    *)
        rm -rf "${out_dir:?}/$name"
        mkdir -p "$out_dir/$name"
        cp "$out_dir"/reader/* "$out_dir/$name"/ 2>/dev/null || true
        ;;
    esac
done

for d in "$out_dir"/*/; do
    n=$(find "$d" -type f | wc -l)
    echo "make-corpus: $(basename "$d"): $n seeds"
    if ((n == 0)); then
        echo "make-corpus: no seeds in $d" >&2
        exit 1
    fi
done

# QEMU multifd sets for the set harness: main channel and channel files
# joined by the 8-byte delimiter fuzz/fuzz_set.c splits at.
if [[ -d "$out_dir/set" ]]; then
    qdelim=$(printf '\377MSFUZZ\377')
    k=0
    for args in "--multifd 2 --ram-size 32K --ram-passes 2 --devices 1 --final-size 6K --packet-size 2K" \
                "--multifd 3 --ram-size 48K --ram-passes 1 --devices 2 --final-size 3K --packet-size 1K --seed 5" \
                "--multifd 2 --ram-size 64K --ram-passes 2 --devices 0 --compress-multifd zlib" \
                "--multifd 2 --ram-size 64K --ram-passes 2 --devices 0 --compress-multifd zstd"; do
        d="$tmp/qset$k"
        # shellcheck disable=SC2086
        if "$bin_dir/migstream-synth" $args -o "$d" >/dev/null 2>&1; then
            { cat "$d/main.mig"; for f in "$d"/channel-*.mig; do printf '%s' "$qdelim"; cat "$f"; done; } \
                > "$out_dir/set/qemu-multifd-$k"
        else
            echo "make-corpus: synth $args failed; seed left out" >&2
        fi
        k=$((k + 1))
    done
fi

# VFIO driver payload seeds for fuzz/fuzz_payload.c (added to the reader
# seeds the loop above copied, when that harness is named): hand-made
# streams of every driver, from the VFIO device-streams reference.  Byte 0
# picks how the harness reads the rest: payload_kind = byte0 % 8 - 1 (-1
# detects), and byte0 / 8 a final offset (0: none).
if [[ -d "$out_dir/payload" ]]; then
    if command -v python3 >/dev/null 2>&1; then
        python3 - "$out_dir/payload" <<'PY'
import os, random, struct, sys

out = sys.argv[1]
le16 = lambda v: struct.pack("<H", v)
le32 = lambda v: struct.pack("<I", v)
le64 = lambda v: struct.pack("<Q", v)


def blob(n, seed):
    r = random.Random(seed)
    return bytes(r.getrandbits(8) for _ in range(n))


def rec(tag, payload, flags=0, size=None):  # mlx5 / virtio SW header
    return le64(len(payload) if size is None else size) + le32(flags) + le32(tag) + payload


def part(t, payload, flags=0, sel=0):  # virtio device part
    return le16(t) + bytes([flags, 0]) + le64(sel) + le32(len(payload)) + payload


def vq(q):
    return le16(256) + le16(q + 1) + le16(1) + le16(0) + le64(0x10000 * (q + 1)) + le64(0x20000 * (q + 1)) + le64(0x30000 * (q + 1))


snap = (part(0x100, le64(0x130000067) + le64(1), 1) + part(0x101, le64(0x130000023))
        + part(0x102, le16(2), 0, 18) + part(0x102, le16(0xFFFF), 0, 16) + part(0x103, b"\x0f")
        + part(0x201, blob(40, 1)) + part(0x104, vq(0), 0, 0) + part(0x104, vq(1), 0, 1)
        + part(0x105, le16(0) + le16(0x10) + bytes(4), 0, 0) + part(0x105, le16(1) + le16(0x11) + bytes(4), 0, 1)
        + part(0x700, b"hello", 1))
mlx5 = (rec(1, le64(123456), 1) + rec(0, blob(300, 2)) + rec(0, blob(100, 3))
        + rec(9, b"abc", 1) + rec(0, blob(700, 4)) + rec(0, blob(90, 5)))
virtio = rec(0, snap) + rec(0, snap) + rec(0, snap)
hisi_v2 = le64(0xAACCFEEDDECADEDE) + le32(4) + le32(0xA255) + le32(0) + le32(64) + le32(1) + le16(1) + le16(0) + bytes(8)
hisi = hisi_v2 + blob(104, 6) + le64(0x1000) + le64(0x2000) + le64(0x3000) + le64(0x4000)
hisi_v1 = le64(0xCDCDCDCDFEEDAACC) + hisi[8:40]


def qsect(name, payload, sub=0):
    return name.encode().ljust(8, b"\0") + le32(len(payload)) + le32(sub) + payload


def qblock(sects):
    body = b"".join(sects)
    return le32(0xADF5CAEA) + le32(1) + le16(16) + le16(len(sects)) + le32(len(body)) + body


qsetup = qblock([qsect("CONFIG", qsect("gencap", le64(0xFF)) + qsect("svcmap", le64(0x21)) + qsect("extdc", le32(1)), 3)])
qstate = qblock([qsect("GENER", qsect("iovinit", le32(1)) + qsect("compver", le32(3)) + qsect("sla", bytes(8)), 3),
                 qsect("MISCBAR", qsect("visrc", le32(0)) + qsect("vimsk", le32(0xFF)), 2),
                 qsect("ETRBAR", qsect("bnk0", qsect("mregs", blob(64, 7)), 1), 1)])
qat = (qsetup + qstate).ljust(4096, b"\0")


def xpkt(t, payload, tile=0, gt=0, off=0):
    return bytes([1, t, tile, gt]) + le32(0) + le64(off) + le64(len(payload)) + payload


xe = (xpkt(1, le32(0xF0010001) + le32(0x56A0) + le32(0xF0020001) + le32(8))
      + xpkt(3, blob(64, 8)) + xpkt(4, blob(32, 9), 0, 0) + xpkt(5, blob(48, 10), 0, 1)
      + xpkt(6, blob(200, 11), 0, 0, 0) + xpkt(6, blob(100, 12), 0, 0, 200) + xpkt(2, b""))

KIND = {"detect": -1, "raw": 0, "mlx5": 1, "virtio": 2, "hisi": 3, "qat": 4, "xe": 5, "pds": 6}


def seed(name, kind, f, payload):
    b0 = (KIND[kind] + 1) | (f << 3)
    with open(os.path.join(out, "payload-" + name), "wb") as fh:
        fh.write(bytes([b0]) + payload)


for how in ("named", "detect"):
    k = lambda drv: drv if how == "named" else "detect"
    seed("mlx5-%s" % how, k("mlx5"), 0, mlx5)
    seed("mlx5-%s-final" % how, k("mlx5"), 16, mlx5)
    seed("virtio-%s" % how, k("virtio"), 21, virtio)
    seed("hisi-%s" % how, k("hisi"), 0, hisi)
    seed("qat-%s" % how, k("qat"), 0, qat)
    seed("xe-%s" % how, k("xe"), 0, xe)
seed("mlx5-cut", "mlx5", 0, mlx5[: len(mlx5) - 37])
seed("mlx5-old-6.2", "mlx5", 0, rec(0, blob(200, 13)) + rec(0, blob(50, 14)))
seed("mlx5-bad-scs", "mlx5", 0, rec(1, le64(5) + le64(6), 1) + rec(0, b"x"))
seed("virtio-none", "virtio", 0, virtio)
seed("virtio-disorder", "virtio", 0, rec(0, part(0x103, b"\x01") + part(0x100, le64(1))))
seed("hisi-40", "hisi", 0, hisi[:40])
seed("hisi-v1", "hisi", 0, hisi_v1)
seed("hisi-v1-full", "hisi", 0, hisi_v1 + hisi[40:])
seed("qat-setup-only", "qat", 0, qsetup)
seed("xe-final", "xe", 8, xe)
seed("pds", "pds", 0, blob(3000, 15))
seed("pds-final", "pds", 31, blob(700, 16))
seed("raw", "raw", 11, blob(2000, 17))
PY
    else
        echo "make-corpus: python3 not found; payload seeds left out" >&2
    fi
    echo "make-corpus: payload: $(find "$out_dir/payload" -type f | wc -l) seeds with the hand-made payloads"
fi

# Committed seeds: fuzz/corpus/NAME/ (minimised inputs and regression inputs
# of crashers once fixed) join the generated ones for every harness.
for name in "$@"; do
    committed="$src_dir/fuzz/corpus/$name"
    [[ -d "$committed" ]] || continue
    mkdir -p "$out_dir/$name"
    cp "$committed"/* "$out_dir/$name"/ 2>/dev/null || true
    echo "make-corpus: $name: $(find "$committed" -type f | wc -l) committed seeds"
done
