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
finish
