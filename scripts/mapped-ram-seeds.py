#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only
"""Write the committed fuzz seeds of fuzz/fuzz_mapped_ram.c: small QEMU
mapped-ram files (spec/qemu-main.md, "Mapped-ram files") with 1 KiB target
pages (one with 512 bytes) and page-aligned regions, each under 64 KiB.

    scripts/mapped-ram-seeds.py fuzz/corpus/mapped_ram
"""
import struct
import sys

PBITS = 10
PS = 1 << PBITS


def counted(s):
    b = s.encode()
    return bytes([len(b)]) + b


def be32(v):
    return struct.pack(">I", v)


def be64(v):
    return struct.pack(">Q", v)


def mapped_file(blocks, ignore_shared=False, align=PS, cmd=True, pbits=PBITS,
                prefix=b""):
    """blocks: (name, pages, bits string, ignored, addr)."""
    ps = 1 << pbits
    caps = (["x-ignore-shared"] if ignore_shared else []) + ["mapped-ram"]
    out = bytearray(prefix + b"QEVM" + be32(3))
    machine = b"pc-i440fx-10.0"
    out += b"\x07" + be32(len(machine)) + machine
    out += b"\x05" + counted("configuration/target-page-bits") + be32(1) + be32(pbits)
    out += b"\x05" + counted("configuration/capabilities") + be32(1) + be32(len(caps))
    for c in caps:
        out += counted(c)
    out += b"\x01" + be32(2) + counted("ram") + be32(0) + be32(4)
    total = sum(p * ps for _, p, _, _, _ in blocks)
    out += be64(total | 0x04)
    for k, (name, pages, bits, ignored, addr) in enumerate(blocks):
        out += counted(name) + be64(pages * ps)
        if ignore_shared:
            out += be64(addr)
        out += be32(1) + be64(ps)
        if ignored:
            out += be64(0) + be64(0)
            continue
        bsize = (pages + 63) // 64 * 8
        bmp = len(out) + 16
        pages_off = (bmp + bsize + align - 1) // align * align
        out += be64(bmp) + be64(pages_off)
        bitmap = bytearray(bsize)
        for i, c in enumerate(bits[:pages]):
            if c == "1":
                bitmap[i // 8] |= 1 << (i % 8)
        out += bitmap
        out += bytes(pages_off - len(out))
        for i in range(pages):
            c = bits[i] if i < len(bits) else "0"
            if c == "0":
                out += bytes(ps)
            else:  # set, or 's': a stale slot whose bit is clear
                out += bytes((k * 131 + i * 7 + j * 13 + 1) & 0xFF for j in range(ps))
    eos = be64(0x10)
    out += eos + b"\x7e" + be32(2)
    out += b"\x02" + be32(2) + eos + b"\x7e" + be32(2)
    if cmd:
        out += b"\x08" + struct.pack(">HH", 11, 0)  # SWITCHOVER_START
    out += b"\x03" + be32(2) + eos + b"\x7e" + be32(2)
    out += b"\x00"
    return bytes(out)


def libvirt_header(xml, fmt):
    """libvirt save image header, version 2, host (little-endian) order."""
    return (b"LibvirtQemudSave" + struct.pack("<5I", 2, len(xml), 0, fmt, 0)
            + bytes(56) + xml)


SEEDS = {
    "libvirt-sparse.mig": mapped_file([("pc.ram", 4, "1s01", False, 0)],
                                      prefix=libvirt_header(b"<domain/>" + bytes(23), 6)),
    "basic.mig": mapped_file([("pc.ram", 8, "10110s00", False, 0),
                              ("pc.rom", 4, "", False, 0),
                              ("/rom@etc/acpi/rsdp", 1, "1", False, 0)]),
    # 512-byte pages: a block past 64 pages (two bitmap words) stays small
    "two-words.mig": mapped_file([("big", 66, "s1" + "0" * 62 + "11", False, 0),
                                  ("more", 1, "1", False, 0)], align=512, pbits=9),
    "ignore-shared.mig": mapped_file([("pc.ram", 8, "0101", False, 0),
                                      ("shm", 16, "", True, 1 << 32),
                                      ("pc.bios", 2, "11", False, 0xFFFE0000)],
                                     ignore_shared=True),
    "aligned-4k.mig": mapped_file([("pc.ram", 12, "111000111000", False, 0),
                                   ("pc.bios", 4, "1s1s", False, 0)], align=4096, cmd=False),
    "all-set.mig": mapped_file([("pc.ram", 16, "1" * 16, False, 0)]),
}


def main():
    out = sys.argv[1]
    for name, data in SEEDS.items():
        assert len(data) < 65536, name
        with open(f"{out}/{name}", "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
