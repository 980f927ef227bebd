#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only
# Damage anywhere in the structure of a real QEMU 10.0 stream makes verify
# exit 1 with FILE:OFFSET.  QEMU streams carry no check values, so a flipped
# byte inside a page or a VMState value cannot be seen by anyone; what must
# be seen is damage to what frames them: every record's first bytes (section
# headers and footers, RAM records and markers, commands, the configuration,
# the trailer's header) and every cut.  Structural offsets come from dump's
# own --json --pages output of the intact stream.
. "$(dirname "$0")/lib.bash"
CAP=$SRC/tests/data/captures/qemu-10.0-q35-precopy/main.mig
command -v python3 >/dev/null || { echo "python3 missing"; exit 1; }
"$VERIFY" "$CAP" >"$WORK/out" 2>&1 && ok || bad "intact capture: $(head -1 "$WORK/out")"
python3 - "$VERIFY" "$DUMP" "$CAP" "$WORK" <<'PY' || FAIL=$((FAIL + 1))
import json, os, random, re, subprocess, sys
verify, dump, src, work = sys.argv[1:5]
data = open(src, "rb").read()
out = subprocess.run([dump, "--json", "--pages", src], capture_output=True, check=True).stdout
evs = [e for e in map(json.loads, out.splitlines()) if "offset" in e]
rng = random.Random(10)
pages = [e for e in evs if e["kind"] == "ram_page"]
chosen = [e for e in evs if e["kind"] != "ram_page"] + rng.sample(pages, min(20, len(pages)))
mutants, bad = 0, []
path = os.path.join(work, "m.mig")
line = re.compile(re.escape(path) + r":[0-9]+: [a-z-]+: ")

def check(what, blob):
    global mutants
    mutants += 1
    open(path, "wb").write(blob)
    r = subprocess.run([verify, path], capture_output=True, text=True)
    if r.returncode != 1 or not line.search(r.stdout + r.stderr):
        bad.append("%s: exit %d %s" % (what, r.returncode, (r.stdout + r.stderr).strip()[:160]))

for e in chosen:
    # the record's first byte (high bit) and, for longer records, the low
    # bit of its second byte
    flips = [(e["offset"], 0x80)]
    if e.get("length", 1) > 1:
        flips.append((e["offset"] + 1, 0x01))
    for off, x in flips:
        b = bytearray(data)
        b[off] ^= x
        check("%s at %d ^0x%02x" % (e["kind"], off, x), bytes(b))
# cuts: at every record but pages and one byte after, plus a stride
cuts = {o for e in evs if e["kind"] != "ram_page" for o in (e["offset"], e["offset"] + 1)}
cuts |= set(range(1, len(data), 199999))
# A stream may end right after its EOF record (machines with
# suppress-vmdesc write no trailer): cut there, verify must say that the
# sections it could not decode were not checked instead of failing.
eof_end = [e["offset"] + 1 for e in evs if e["kind"] == "eof"][0]
for n in sorted(c for c in cuts if 0 < c < len(data) and c != eof_end):
    check("cut at %d" % n, data[:n])
open(path, "wb").write(data[:eof_end])
r = subprocess.run([verify, path], capture_output=True, text=True)
mutants += 1
if r.returncode != 0 or "not checked: " not in r.stdout + r.stderr:
    bad.append("cut after EOF: exit %d %s" % (r.returncode, (r.stdout + r.stderr).strip()[:160]))
print("qemu10_damage: %d mutants, %d accepted or without an offset" % (mutants, len(bad)))
for b in bad[:20]:
    print("FAIL:", b, file=sys.stderr)
sys.exit(1 if bad else 0)
PY
[ $FAIL -eq 0 ] && ok
finish
