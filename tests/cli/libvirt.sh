#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only
# libvirt save images around the real QEMU 7.2 capture, compressed by the
# programs libvirt runs (gzip, bzip2, xz -3, lzop, zstd, each with -c) and a
# few of their other settings: migstream-verify accepts each (from a file
# and from a pipe), migstream-extract --ram rebuilds the same RAM (sha256)
# as from the bare capture, migstream-dump names the libvirt header; a
# corrupt or cut compressed image fails at a file offset naming the
# compressor.  The libvirt header is written here from spec/libvirt-save.md.
. "$(dirname "$0")/lib.bash"
EXTRACT=$BIN/migstream-extract
CAP=$SRC/tests/data/captures/qemu-7.2-pc-precopy/main.mig
for tool in python3 gzip bzip2 xz lzop zstd sha256sum; do
    command -v "$tool" >/dev/null ||
        { bad "$tool is needed (scripts/setup-deps.sh installs it)"; finish; exit 1; }
done

# header(FORMAT, VERSION) > file: 92-byte header (little endian), domain
# XML, cookie, 64 KiB of NULs, as libvirt's virQEMUSaveDataWrite lays it out
cat > "$WORK/header.py" <<'PY'
import struct, sys
fmt, version = int(sys.argv[1]), int(sys.argv[2])
xml = b"<domain type='kvm'>\n  <name>cli</name>\n</domain>\n\0"
cookie = b"<qemuDomainSaveCookie/>\n\0" if version == 2 else b""
data = xml + cookie + bytes(64 * 1024)
hdr = b"LibvirtQemudSave" + struct.pack("<5I", version, len(data), 1, fmt,
                                       len(xml) if cookie else 0) + bytes(56)
sys.stdout.buffer.write(hdr + data)
PY
image() { # image NAME FORMAT VERSION COMMAND... (the command compresses stdin)
    local name=$1 fmt=$2 version=$3
    shift 3
    python3 "$WORK/header.py" "$fmt" "$version" > "$WORK/$name.img"
    "$@" < "$CAP" >> "$WORK/$name.img"
}
image raw 0 2 cat
image v1 0 1 cat
image gzip 1 2 gzip -c
image gzip9 1 2 gzip -9 -c
image bzip2 2 2 bzip2 -c
image xz 3 2 xz -3 -c
image xz9 3 2 xz -9 -c
image lzop 4 2 lzop -c
image lzop9 4 2 lzop -9 -c
image lzopcrc 4 2 lzop --crc32 -c
image zstd 5 2 zstd -q -c
image zstd19 5 2 zstd -q -19 -c
# two gzip members back to back: gzip -dc gives one stream
half=$(( $(stat -c %s "$CAP") / 2 ))
python3 "$WORK/header.py" 1 2 > "$WORK/gzip2.img"
head -c "$half" "$CAP" | gzip -c >> "$WORK/gzip2.img"
tail -c +"$((half + 1))" "$CAP" | gzip -c >> "$WORK/gzip2.img"
NAMES="raw v1 gzip gzip9 bzip2 xz xz9 lzop lzop9 lzopcrc zstd zstd19 gzip2"

ram_sums() { # ram_sums DIR: "sha256 relative-path" lines, sorted
    (cd "$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum)
}
expect_exit 0 "extract --ram of the bare capture" -- "$EXTRACT" --ram "$WORK/ram-bare" "$CAP"
ram_sums "$WORK/ram-bare" > "$WORK/bare.sums"
[ -s "$WORK/bare.sums" ] && ok || bad "no RAM blocks from the bare capture"

for n in $NAMES; do
    img=$WORK/$n.img
    expect_exit 0 "verify $n" -- "$VERIFY" "$img"
    expect_exit 0 "verify $n from a pipe" -- bash -c "cat '$img' | '$VERIFY' -"
    expect_exit 0 "extract --ram $n" -- "$EXTRACT" --ram "$WORK/ram-$n" "$img"
    ram_sums "$WORK/ram-$n" > "$WORK/$n.sums"
    if cmp -s "$WORK/bare.sums" "$WORK/$n.sums"; then ok; else
        bad "$n: RAM differs from the bare capture's"
        diff "$WORK/bare.sums" "$WORK/$n.sums" | head -5 >&2
    fi
    expect_exit 0 "dump $n" -- "$DUMP" "$img"
    expect_grep "$WORK/out" "^ +0  libvirt_header +version " "dump $n: libvirt header line"
done
expect_grep "$WORK/out" "^ +0  stream +libvirt-save version 2" "dump: the image's stream line"
"$DUMP" "$WORK/xz.img" > "$WORK/out"
expect_grep "$WORK/out" "libvirt_header +version 2 xz, was running, XML [0-9]+ bytes at 92, cookie 24 bytes, QEMU stream at 65[0-9]{3} \(offsets below: decompressed stream\)" \
    "dump xz: libvirt header fields"
"$DUMP" "$WORK/v1.img" > "$WORK/out"
expect_grep "$WORK/out" "libvirt_header +version 1 raw, .*cookie 0 bytes, QEMU stream at 65[0-9]{3}$" \
    "dump v1: no cookie, file offsets"
"$DUMP" --json "$WORK/zstd.img" > "$WORK/out"
expect_grep "$WORK/out" '"kind":"libvirt_header".*"compression":"zstd".*"decompressed":true' \
    "dump --json: libvirt header"

# damage (verify reports problems on stdout): a flipped byte inside the
# gzip data, an xz image cut short, junk after a zstd image
size=$(stat -c %s "$WORK/gzip.img")
python3 - "$WORK/gzip.img" "$WORK/gzip-bad.img" <<'PY'
import sys
b = bytearray(open(sys.argv[1], 'rb').read())
b[len(b) // 2] ^= 0x5a
open(sys.argv[2], 'wb').write(b)
PY
expect_exit 1 "verify corrupt gzip" -- "$VERIFY" "$WORK/gzip-bad.img"
expect_grep "$WORK/out" "gzip-bad.img:[0-9]+: [a-z-]+: gzip" "corrupt gzip: file offset and compressor named"
off=$(sed -n 's/.*gzip-bad.img:\([0-9]*\):.*/\1/p' "$WORK/out" | head -1)
[ -n "$off" ] && [ "$off" -ge 65700 ] && [ "$off" -le "$size" ] && ok ||
    bad "corrupt gzip: offset '$off' outside the compressed data [65700, $size]"
head -c 300000 "$WORK/xz.img" > "$WORK/xz-cut.img"
expect_exit 1 "verify cut xz" -- "$VERIFY" "$WORK/xz-cut.img"
expect_grep "$WORK/out" "xz-cut.img:300000: truncated: input ends inside xz stream 1" "cut xz: where and why"
{ cat "$WORK/zstd.img"; printf 'junk'; } > "$WORK/zstd-junk.img"
expect_exit 1 "verify zstd with trailing bytes" -- "$VERIFY" "$WORK/zstd-junk.img"
expect_grep "$WORK/out" "zstd-junk.img:$(stat -c %s "$WORK/zstd.img"): trailing-data: byte 0x6a after the end of the zstd stream" \
    "zstd junk: first extra byte"
# an image libvirt did not finish writing
python3 - "$WORK/raw.img" "$WORK/part.img" <<'PY'
import sys
b = bytearray(open(sys.argv[1], 'rb').read())
b[12:16] = b"Part"
open(sys.argv[2], 'wb').write(b)
PY
expect_exit 1 "verify LibvirtQemudPart" -- "$VERIFY" "$WORK/part.img"
expect_grep "$WORK/out" "part.img:0: truncated: libvirt save image marked incomplete" "LibvirtQemudPart: incomplete"

finish
