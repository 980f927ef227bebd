#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only
# A FULL section its stream's own JSON trailer does not list, or lists with
# another version, is damage (QEMU's loader refuses both: "Unknown savevm
# section or instance", "unsupported version"); found by
# tests/qemu/differential.sh.  Both are made here in the real QEMU 7.2 capture
# by changing the acpi_build section's instance id, then its version.
. "$(dirname "$0")/lib.bash"
D=$SRC/tests/data/captures/qemu-7.2-pc-precopy
# the FULL header ends with be32 instance_id, be32 version_id
"$DUMP" --json "$D/main.mig" >"$WORK/dump.json" && ok || bad "dump the capture"
hdr_end=$(python3 -c '
import json, sys
for l in open(sys.argv[1]):
    d = json.loads(l)
    if d.get("kind") == "section" and d.get("idstr") == "acpi_build":
        print(d["offset"] + d["length"])' "$WORK/dump.json")
[ -n "$hdr_end" ] && ok || bad "no acpi_build section in the dump"
# patch FILE OFFSET BYTE: one byte changed in a copy of the capture
patch() {
    cp "$D/main.mig" "$1" && chmod u+w "$1"
    printf "$(printf '\\x%02x' "$3")" |
        dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}
expect_exit 0 "the capture verifies" -- "$VERIFY" "$D/main.mig"
patch "$WORK/instance.mig" $((hdr_end - 5)) 1 # instance 0 -> 1
expect_exit 1 "acpi_build instance 1" -- "$VERIFY" "$WORK/instance.mig"
expect_grep "$WORK/out" "section: section [0-9]+ \(acpi_build, instance 1\) is not in the stream's JSON trailer" \
    "unlisted section reported"
patch "$WORK/version.mig" $((hdr_end - 1)) 2 # version 1 -> 2
expect_exit 1 "acpi_build version 2" -- "$VERIFY" "$WORK/version.mig"
expect_grep "$WORK/out" "section: section [0-9]+ \(acpi_build\) has version 2, its JSON trailer says 1" \
    "version mismatch reported"
# A trailer borrowed from another stream (postcopy carries none) may
# describe another QEMU's version of a device: the section is walked blind
# and says why, never decoded with a description of another version.
P=$SRC/tests/data/captures/qemu-10.0-pc-postcopy/conn0.s2d
V=$SRC/tests/data/captures/qemu-10.0-pc-multifd4-zstd/conn0.bin
i8259=$(python3 -c '
import json, sys
for l in sys.stdin:
    d = json.loads(l)
    if d.get("kind") == "section" and d.get("idstr") == "i8259":
        print(d["offset"] + d["length"]); break' < <("$DUMP" --json "$P"))
cp "$P" "$WORK/pc.s2d" && chmod u+w "$WORK/pc.s2d"
printf '\x02' | dd of="$WORK/pc.s2d" bs=1 seek=$((i8259 - 1)) conv=notrunc status=none
expect_exit 0 "borrowed trailer, i8259 version 2: dump" -- "$DUMP" --json --vmdesc "$V" "$WORK/pc.s2d"
expect_grep "$WORK/out" '"kind":"undecoded".*"idstr":"i8259".*"reason":"the JSON trailer taken from another stream describes version 1 of this device, the section has version 2"' \
    "borrowed trailer of another version: walked blind"
finish
