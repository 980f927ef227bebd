#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only
# examples/print_events against migstream-dump: on a bundled QEMU capture
# and on streams with VFIO device payloads (made by migstream-synth) in a
# QEMU main stream, in multifd device state and in migstream images, every
# event kind migstream-dump --json reports comes out of the example as often
# (nested payload records and images per device included), and the example
# exits 0.
. "$(dirname "$0")/../tests/cli/lib.bash"
PE=$BIN/examples/print_events
CAP=$SRC/tests/data/captures

# compare WHAT FILE...: run both, compare the counts per kind.
compare() {
    local what=$1
    shift
    "$PE" "$@" >"$WORK/pe.txt" 2>"$WORK/pe.err" || { bad "$what: print_events exit $?"; return; }
    "$DUMP" --json "$@" >"$WORK/dump.json" 2>"$WORK/dump.err" || { bad "$what: migstream-dump exit $?"; return; }
    python3 - "$WORK/pe.txt" "$WORK/dump.json" "$what" <<'PY' && ok || bad "$what: counts differ"
import collections, json, sys
pe, dump = collections.Counter(), collections.Counter()
for line in open(sys.argv[1]):
    t = line.split()
    if t[1] == "payload":            # SLOT payload DEVICE PHASE KIND ...
        pe[("payload", t[2], t[4])] += 1
    elif t[1] in ("read", "set"):
        pe[("event", t[2])] += 1
    else:
        pe[("problem",)] += 1
# dump's kind names (spec/json.md) -> the library's, which the example prints
lib_name = {"multifd_packet": "packet", "payload_record": "record",
            "payload_image": "image"}
for line in open(sys.argv[2]):
    o = json.loads(line)
    if o["kind"] == "json_header" or o["kind"].endswith("_summary"):
        continue
    kind = lib_name.get(o["kind"], o["kind"])
    if o["kind"].startswith("payload_") and "idstr" in o:
        dump[("payload", o["idstr"], kind)] += 1
    else:
        dump[("event", kind)] += 1
wrong = [(k, dump[k], pe[k]) for k in dump if dump[k] != pe[k]]
for k, d, p in wrong:
    print(f"{sys.argv[3]}: {k}: migstream-dump {d}, print_events {p}", file=sys.stderr)
if pe[("problem",)]:
    print(f"{sys.argv[3]}: print_events reported problems", file=sys.stderr)
want_payload = not sys.argv[3].startswith("capture")
has_payload = any(k[0] == "payload" and k[2] == "record" for k in dump)
if want_payload and not has_payload:
    print(f"{sys.argv[3]}: no nested payload records", file=sys.stderr)
sys.exit(1 if wrong or pe[("problem",)] or want_payload != has_payload else 0)
PY
}

compare capture "$CAP"/qemu-10.0-pc-multifd4-zstd/conn{0,1,2,3,4}.bin
# multifd channels before their main channel: held until its page size
compare "capture, main last" "$CAP"/qemu-10.0-pc-multifd4-zstd/conn{1,2,3,4,0}.bin

small="--initial-size 4K --middle 1 --middle-size 2K --final-size 16K"
"$SYNTH" --multifd 2 --devices 2 --kind mlx5 --final-size 64K --packet-size 16K \
    --ram-size 1M --ram-passes 1 -o "$WORK/mfd" || bad "synth --multifd"
compare "multifd device state" "$WORK/mfd/main.mig" "$WORK"/mfd/channel-*.mig
"$SYNTH" --kind mlx5 --devices 2 --channels 2 $small --chunk-size 4K \
    --packet-size 4K -o "$WORK/mig" || bad "synth migstream"
compare "migstream images" "$WORK"/mig/channel-*.mig
"$SYNTH" --qemu "$CAP/qemu-7.2-pc-precopy/main.mig" --kind mlx5 --devices 2 \
    $small -o "$WORK/q.mig" || bad "synth --qemu"
compare "QEMU main stream" "$WORK/q.mig"

# a broken stream: a problem line, exit 1
head -c 1000 "$WORK/q.mig" >"$WORK/cut.mig"
expect_exit 1 "cut stream" -- "$PE" "$WORK/cut.mig"
expect_grep "$WORK/out" "^0 problem truncated @" "problem line"
finish
