#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only
# migstream-dump --state prints what QEMU's scripts/analyze-migration.py
# -d state printed for the same stream (the captures' reference files):
# equal as JSON with key order kept, and byte for byte; --state --json is
# the same document on one line.
. "$(dirname "$0")/lib.bash"
C=$SRC/tests/data/captures

# same_json OURS REFERENCE: equal after parsing, key order included.
same_json() {
    python3 - "$1" "$2" <<'PY'
import json, sys
def load(p):
    with open(p) as f:
        return json.load(f, object_pairs_hook=list)
ours, ref = load(sys.argv[1]), load(sys.argv[2])
if ours != ref:
    # name the first section that differs
    for a, b in zip(ours, ref):
        if a != b:
            sys.exit("first difference in section %r / %r" % (a[0], b[0]))
    sys.exit("%d sections, the reference has %d" % (len(ours), len(ref)))
PY
}

check() { # NAME STREAM REFERENCE [more files of the migration]
    local name=$1 stream=$2 ref=$3
    shift 3
    expect_exit 0 "$name: --state" -- "$DUMP" --state "$stream" "$@"
    cp "$WORK/out" "$WORK/state.json"
    if same_json "$WORK/state.json" "$ref"; then ok; else bad "$name: JSON differs from the reference"; fi
    if diff -q "$ref" "$WORK/state.json" >/dev/null; then ok; else
        bad "$name: not byte-identical to the reference"
        diff "$ref" "$WORK/state.json" | head -10 >&2
    fi
    expect_exit 0 "$name: --state --json" -- "$DUMP" --state --json "$stream" "$@"
    if [ "$(wc -l <"$WORK/out")" -eq 1 ] && same_json "$WORK/out" "$ref"; then ok; else
        bad "$name: --state --json is not the reference on one line"
    fi
}

Q10=$C/qemu-10.0-q35-precopy
M10=$C/qemu-10.0-pc-multifd4-zstd
Q72=$C/qemu-7.2-pc-precopy
check "10.0 q35" "$Q10/main.mig" "$Q10/reference-state.json"
check "10.0 multifd main channel" "$M10/conn0.bin" "$M10/reference-state-conn0.json"
check "7.2 pc" "$Q72/main.mig" "$Q72/reference-state.json"
# The main channel among its multifd channels: the same document.
expect_exit 0 "7.2 multifd set --state" -- "$DUMP" --state "$C"/qemu-7.2-pc-multifd4/conn*.bin
cp "$WORK/out" "$WORK/set.json"
expect_exit 0 "7.2 multifd main --state" -- "$DUMP" --state "$C/qemu-7.2-pc-multifd4/conn0.bin"
if cmp -s "$WORK/out" "$WORK/set.json"; then ok; else bad "a set's --state differs from its main channel's"; fi

# Shape details the references show: ram sizes, nested arrays of structs,
# bool literals, the subsection key.
python3 - "$Q10/reference-state.json" <<'PY' && ok || bad "reference shape facts"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["ram (3)"] == {"section sizes": {
    "pc.ram": "0x0000000008000000", "/rom@etc/acpi/tables": "0x0000000000020000",
    "pc.bios": "0x0000000000040000",
    "0000:00:01.0/virtio-net-pci.rom": "0x0000000000040000",
    "0000:00:02.0/e1000e.rom": "0x0000000000040000", "pc.rom": "0x0000000000020000",
    "/rom@etc/table-loader": "0x0000000000001000",
    "/rom@etc/acpi/rsdp": "0x0000000000001000"}}
assert isinstance(d["cpu (6)"]["env.regs"], list) and len(d["cpu (6)"]["env.regs"]) == 16
assert d["cpu (6)"]["env.eip"] == "0x000000000000922f"
assert isinstance(d["i8254 (21)"]["channels"], list)
assert d["i8254 (21)"]["channels"][0]["mode"] == "0x02"
PY

# A stream given through a pipe has no trailer: every FULL section says
# why it is not decoded, the ram section still has its sizes.
expect_exit 0 "--state from a pipe" -- bash -c "'$DUMP' --state - < '$Q10/main.mig'"
python3 - "$WORK/out" <<'PY' && ok || bad "pipe: same sections, not decoded"
import json, sys
d = json.load(open(sys.argv[1]), object_pairs_hook=list)
keys = [k for k, _ in d]
assert len(keys) == 37 and keys[0] == "ram (3)" and keys[-1] == "globalstate (45)", keys
assert dict(d[0][1]) == {"section sizes": dict(d[0][1])["section sizes"]}
assert len(dict(d[0][1])["section sizes"]) == 8
for k, v in d[1:]:
    assert v[0][0] == "(not decoded)", (k, v)
PY
# A hand-made stream with what the captures lack, against the shape the
# script's rules give, printed by Python's own json module: non-ASCII and
# escaped names, a name used twice apart, an empty struct, bool, a struct
# subsection, an old-style device, and the HTAB section ("").
python3 - "$WORK/syn.mig" "$WORK/syn.want" <<'PY' || bad "synthetic stream"
import json, struct, sys
from collections import OrderedDict as O
b = bytearray(b"QEVM" + struct.pack(">I", 3))
m = b"pc-i440fx-10.0"
b += b"\x07" + struct.pack(">I", len(m)) + m
def counted(s):
    s = s.encode()
    return bytes([len(s)]) + s
def start(t, sid, name, inst=0, ver=1):
    return bytes([t]) + struct.pack(">I", sid) + counted(name) + struct.pack(">II", inst, ver)
def footer(sid):
    return b"\x7e" + struct.pack(">I", sid)
def sub(name, ver=1):
    return b"\x05" + counted(name) + struct.pack(">I", ver)
blocks = [("pc.ram", 0x10000), ("rom\u20ac", 0x1000)]
b += start(1, 1, "ram", 0, 4) + struct.pack(">Q", sum(l for _, l in blocks) | 4)
for n, l in blocks:
    b += counted(n) + struct.pack(">Q", l)
b += struct.pack(">Q", 0x10) + footer(1)
dev = "d\u00e9v"
b += start(4, 2, dev) + bytes([5, 1, 0, 1, 0, 2, 0, 0x10, 0, 0x11, 7, 8, 9, 0xfe])
b += sub("st/sub", 2) + b"\x00" + sub(dev + "/sub") + b"\x01\x02\x03" + footer(2)
b += start(1, 3, "spapr/htab") + b"\xff\xff\xff\xff" + footer(3)
b += start(4, 4, "slirp", 0, 4) + b"\xaa\xbb" + footer(4)
# the iterable sections STARTed end before EOF, as QEMU's source ends
# them: RAM with EOS alone, HTAB without an HPT with its -1 header
end = lambda sid: b"\x03" + struct.pack(">I", sid)
b += end(1) + struct.pack(">Q", 0x10) + footer(1)
b += end(3) + b"\xff\xff\xff\xff" + footer(3)
b += b"\x00"
u8 = lambda n: {"name": n, "type": "uint8", "size": 1}
desc = {"page_size": 4096, "devices": [
    {"name": dev, "instance_id": 0, "vmsd_name": dev, "version": 1, "fields": [
        u8('\u00f1"q\\'),
        {"name": "t\tab", "type": "bool", "size": 1},
        {"name": "arr", "type": "uint16", "size": 2, "array_len": 2},
        {"name": "e", "type": "struct", "size": 0,
         "struct": {"vmsd_name": "empty", "version": 1, "fields": []}},
        {"name": "sa", "type": "struct", "size": 2, "array_len": 2,
         "struct": {"vmsd_name": "el", "version": 1,
                    "fields": [{"name": "w", "type": "uint16", "size": 2}]}},
        u8("rep"), u8("x"), u8("rep"),
        {"name": "s", "type": "struct", "size": 1,
         "struct": {"vmsd_name": "st", "version": 1,
                    "fields": [{"name": "y", "type": "int8", "size": 1}],
                    "subsections": [{"vmsd_name": "st/sub", "version": 2,
                                     "fields": [{"name": "z", "type": "bool", "size": 1}]}]}}],
     "subsections": [{"vmsd_name": dev + "/sub", "version": 1,
                      "fields": [{"name": "k", "type": "buffer", "size": 3}]}]},
    {"name": "slirp", "instance_id": 0, "fields": [{"name": "data", "type": "buffer", "size": 2}]}]}
j = json.dumps(desc, ensure_ascii=False).encode()
b += b"\x06" + struct.pack(">I", len(j)) + j
open(sys.argv[1], "wb").write(b)
want = O([
    ("ram (1)", O([("section sizes", O([("pc.ram", "0x0000000000010000"),
                                         ("rom\u20ac", "0x0000000000001000")]))])),
    (dev + " (2)", O([('\u00f1"q\\', "0x05"), ("t\tab", True),
                      ("arr", ["0x0001", "0x0002"]), ("e", O()),
                      ("sa", [O([("w", "0x0010")]), O([("w", "0x0011")])]),
                      ("rep", ["0x07", "0x09"]), ("x", "0x08"),
                      ("s", O([("y", "0xfe (-2)"), ("st/sub", O([("z", False)]))])),
                      (dev + "/sub", O([("k", "01 02 03")]))])),
    ("spapr/htab (3)", ""),
    ("slirp (4)", O([("data", "aa bb")]))])
open(sys.argv[2], "w").write(json.dumps(want, indent=4, separators=(",", ": ")) + "\n")
PY
expect_exit 0 "synthetic --state" -- "$DUMP" --state "$WORK/syn.mig"
if diff "$WORK/syn.want" "$WORK/out" >&2; then ok; else bad "synthetic --state differs from the script's rules"; fi
expect_exit 0 "synthetic --state --json" -- "$DUMP" --state --json "$WORK/syn.mig"
if python3 -c 'import json,sys; a=json.load(open(sys.argv[1])); b=json.load(open(sys.argv[2])); sys.exit(a != b or json.dumps(a, separators=(",", ":")) + "\n" != open(sys.argv[2]).read())' "$WORK/syn.want" "$WORK/out"; then ok; else bad "synthetic --state --json"; fi
finish
