#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only
# Every line migstream-dump --json prints validates against
# spec/migstream-dump.schema.json (spec/json.md): over every bundled QEMU
# capture, every fuzz seed (damaged inputs give error lines), and synth
# streams of every kind (migstream v1 sets, driver payloads raw and nested,
# QEMU main streams, multifd, mapped-ram, postcopy, return paths, libvirt
# images), with --records, --pages and --summary; --state --json prints one
# line, the state document.  The schema itself keeps one JSON type per key
# name, and a line that breaks it must fail (checked on purpose).
. "$(dirname "$0")/lib.bash"
command -v python3 >/dev/null || { bad "python3 is needed"; finish; exit 1; }
python3 -c 'import jsonschema' 2>/dev/null ||
    { bad "python3-jsonschema is needed (scripts/setup-deps.sh)"; finish; exit 1; }
SCHEMA=$SRC/spec/migstream-dump.schema.json
C=$SRC/tests/data/captures
J=$WORK/json
mkdir -p "$J"

# validate.py SCHEMA DEF FILE...: every line of every FILE against the
# schema (DEF "-") or one of its $defs; prints the kinds seen, one per line.
cat > "$WORK/validate.py" <<'PY'
import json, sys
from jsonschema import Draft202012Validator
schema = json.load(open(sys.argv[1]))
Draft202012Validator.check_schema(schema)
def ref(name):
    return Draft202012Validator({"$defs": schema["$defs"], "$ref": "#/$defs/" + name})
whole = Draft202012Validator(schema) if sys.argv[2] == "-" else ref(sys.argv[2])
# The whole schema picks a line's definition by its kind (allOf/if/then):
# the first 50 lines of a kind go through it, the rest straight to their
# kind's definition (the same check, without trying 40 ifs per line).
by_kind, seen = {}, {}
def validator(obj):
    k = obj.get("kind") if isinstance(obj, dict) and sys.argv[2] == "-" else None
    if k not in schema["$defs"] or seen.setdefault(k, 0) < 50:
        seen[k] = seen.get(k, 0) + 1
        return whole
    return by_kind.setdefault(k, ref(k))
bad, kinds = 0, set()
for path in sys.argv[3:]:
    for n, line in enumerate(open(path), 1):
        try:
            obj = json.loads(line)
        except ValueError as e:
            bad += 1
            print("%s:%d: not JSON: %s" % (path, n, e), file=sys.stderr)
            continue
        errs = list(validator(obj).iter_errors(obj))
        if errs:
            bad += 1
            if bad <= 10:
                e = errs[0]
                print("%s:%d: %s: %s at %s" % (path, n, obj.get("kind"), e.message,
                      "/".join(map(str, e.absolute_path))), file=sys.stderr)
        if isinstance(obj, dict) and "kind" in obj:
            kinds.add(obj["kind"])
for k in sorted(kinds):
    print(k)
sys.exit(1 if bad else 0)
PY
validate() { python3 "$WORK/validate.py" "$SCHEMA" "$@"; }

# dumpj NAME [ARGS...]: migstream-dump --json ARGS into $J/NAME.jsonl; a
# usage or I/O error (exit 2) is a failure, an invalid input (1) is not.
dumpj() {
    local name=$1
    shift
    "$DUMP" --json "$@" >"$J/$name.jsonl" 2>"$WORK/err"
    local rc=$?
    if [ $rc -le 1 ] && [ -s "$J/$name.jsonl" ]; then ok; else
        bad "$name: dump --json exit $rc: $(head -3 "$WORK/err")"
    fi
}

# ---- the schema: valid, one type per key name across the kinds ------------
python3 - "$SCHEMA" <<'PY' && ok || bad "schema: a key has two types"
import json, sys
s = json.load(open(sys.argv[1]))
defs = s["$defs"]
def shape(p):
    if "$ref" in p:
        return p["$ref"]
    if "const" in p or "enum" in p:
        return "string"
    return p.get("type")
types = {}
for name in s["properties"]["kind"]["enum"]:
    for key, p in defs[name]["properties"].items():
        t = shape(p)
        t = {"#/$defs/count": "integer", "#/$defs/file_offset": "integer"}.get(t, t)
        if key != "kind":
            types.setdefault(key, set()).add(t if isinstance(t, str) else json.dumps(t))
two = {k: t for k, t in types.items() if len(t) > 1}
assert not two, two
PY

# ---- bundled captures: every file, alone and as the set it belongs to ------
for d in "$C"/*/; do
    n=$(basename "$d")
    for f in "$d"*.mig "$d"*.bin "$d"*.d2s "$d"*.s2d; do
        [ -f "$f" ] || continue
        dumpj "$n-$(basename "$f")" "$f"
        dumpj "$n-$(basename "$f")-records" --records "$f"
    done
    for f in "$d"*.mig.gz; do
        [ -f "$f" ] || continue
        gzip -dc "$f" >"$WORK/$n.mig"
        dumpj "$n-gz" --pages "$WORK/$n.mig"
    done
    set -- "$d"conn*.bin
    [ -f "$1" ] && dumpj "$n-set" "$@" && dumpj "$n-set-summary" --summary "$@"
done
dumpj q72-pages --pages "$C/qemu-7.2-pc-precopy/main.mig"
dumpj pair "$C/qemu-10.0-pc-postcopy/conn0.s2d" "$C/qemu-10.0-pc-postcopy/conn0.d2s"
# a migstream 2.1 archive: its STREAM_* records and the files in it
"$BIN/migstream-archive" -o "$WORK/archive.mig" "$C/qemu-7.2-pc-multifd2-zlib" &&
    dumpj archive "$WORK/archive.mig"
# libvirt save image around the 7.2 capture (spec/libvirt-save.md)
python3 - "$C/qemu-7.2-pc-precopy/main.mig" "$WORK/save.img" <<'PY'
import struct, sys
xml = b"<domain type='kvm'><name>j</name></domain>\n\0"
cookie = b"<qemuDomainSaveCookie/>\n\0"
data = xml + cookie + bytes(4096)
hdr = b"LibvirtQemudSave" + struct.pack("<5I", 2, len(data), 1, 0, len(xml)) + bytes(56)
open(sys.argv[2], "wb").write(hdr + data + open(sys.argv[1], "rb").read())
PY
dumpj libvirt "$WORK/save.img"

# ---- fuzz seeds: small, many formats, damaged ones give error lines --------
for f in "$SRC"/fuzz/corpus/*/*; do
    case $f in *.md) continue ;; esac
    dumpj "seed-$(basename "$(dirname "$f")")-$(basename "$f")" "$f"
done

# ---- synth streams --------------------------------------------------------
S=$WORK/s
mkdir -p "$S"
BASE=$C/qemu-7.2-pc-precopy/main.mig
synth() { "$SYNTH" "$@" >/dev/null 2>"$WORK/err" || bad "synth $*: $(head -2 "$WORK/err")"; }
synth --channels 2 --devices 2 --middle 1 -o "$S/v1"
dumpj v1 --records "$S"/v1/*.mig
synth --compress 6 --channels 1 --devices 1 -o "$S/v1z"
dumpj v1z "$S"/v1z/*.mig
for k in mlx5 virtio hisi_acc qat xe pds; do
    synth --raw "$S/$k.bin" --kind "$k" --expect-dir "$S/e-$k" --final-size 5000
    dumpj "raw-$k" --payload "$k" --final-offset "$(cat "$S/e-$k/final-offset")" "$S/$k.bin"
    synth --kind "$k" --channels 2 --seed 4 -o "$S/v1-$k"
    dumpj "v1-$k" "$S/v1-$k"/*.mig
    synth --multifd 2 --kind "$k" --final-size 5000 --ram-size 64K --ram-passes 2 -o "$S/mfd-$k"
    dumpj "mfd-$k" "$S/mfd-$k"/*
    synth --qemu "$BASE" --kind "$k" -o "$S/q-$k.mig"
    dumpj "q-$k" "$S/q-$k.mig"
done
synth --multifd 2 --compress-multifd zstd --devices 0 -o "$S/mfdz"
dumpj mfdz --pages "$S"/mfdz/*
synth --multifd 2 --qemu-version 9.2 --devices 0 -o "$S/mfd92"
dumpj mfd92 "$S"/mfd92/*
synth --mapped-ram -o "$S/mr.mig"
dumpj mapped-ram --pages "$S/mr.mig"
synth --qemu-ram 1M -o "$S/qram.mig"
dumpj qemu-ram --pages "$S/qram.mig"
synth --qemu "$BASE" --switchover-ack --devices 2 -o "$S/sa.mig"
dumpj switchover-ack "$S/sa.mig"
synth --return-path "$S/sa.mig" -o "$S/sa.d2s"
dumpj return-path "$S/sa.d2s"
dumpj pair-synth "$S/sa.mig" "$S/sa.d2s"
synth --qemu "$BASE" --postcopy -o "$S/pc.mig"
dumpj postcopy "$S/pc.mig"
synth --qemu "$BASE" --postcopy --preempt "$S/pc.pre" -o "$S/pcp.mig" --seed 3
dumpj preempt "$S/pcp.mig" "$S/pc.pre"
# a cut and a damaged stream: error lines
head -c 3000 "$S"/v1/channel-0.mig >"$S/cut.mig"
dumpj cut "$S/cut.mig"
dumpj cut-set "$S/cut.mig" "$S"/v1/channel-1.mig

# ---- every line validates; the kinds seen -----------------------------------
if validate - "$J"/*.jsonl >"$WORK/kinds"; then ok; else bad "lines that do not validate (above)"; fi
python3 - "$SCHEMA" "$WORK/kinds" <<'PY' && ok || bad "kinds no input printed"
import json, sys
kinds = json.load(open(sys.argv[1]))["properties"]["kind"]["enum"]
seen = set(open(sys.argv[2]).read().split())
# no bundled input or synth option makes these (spec/json.md, "Coverage")
unmade = {"dirty_bitmap"}
missing = set(kinds) - seen - unmade
assert not missing, sorted(missing)
PY

# ---- --state --json: the state document on one line --------------------------
for s in "$C/qemu-7.2-pc-precopy/main.mig" "$C/qemu-10.0-q35-precopy/main.mig"; do
    "$DUMP" --state --json "$s" >"$WORK/state.json" || bad "--state --json $s"
    [ "$(wc -l <"$WORK/state.json")" -eq 1 ] && ok || bad "--state --json: not one line"
    validate state_document "$WORK/state.json" >/dev/null && ok || bad "--state --json: not a state document"
done

# ---- the README's sample is what the tool prints (tool_version aside) ------
"$DUMP" --json "$SRC/tests/data/migstream-1.0/chunk.mig" | head -3 >"$WORK/sample.got"
awk '/^    \$ migstream-dump --json tests\/data\/migstream-1.0\/chunk.mig/ {n = 3; next}
     n > 0 {sub(/^    /, ""); print; n--}' "$SRC/README.md" >"$WORK/sample.want"
sed -i 's/"tool_version":"[^"]*"/"tool_version":"X"/' "$WORK/sample.got" "$WORK/sample.want"
if [ -s "$WORK/sample.want" ] && cmp -s "$WORK/sample.got" "$WORK/sample.want"; then ok; else
    bad "README JSON sample differs from the output"
    diff "$WORK/sample.want" "$WORK/sample.got" >&2
fi

# ---- the check fails when a line breaks the schema (on purpose) -------------
grep -m1 '"kind":"image_end"' "$J/v1.jsonl" >"$WORK/good.jsonl"
validate - "$WORK/good.jsonl" >/dev/null && ok || bad "the line to break does not validate"
sed 's/"timestamp_ns":"\([0-9]*\)"/"timestamp_ns":\1/' "$WORK/good.jsonl" >"$WORK/broken.jsonl"
cmp -s "$WORK/good.jsonl" "$WORK/broken.jsonl" && bad "the line was not broken"
if validate - "$WORK/broken.jsonl" >/dev/null 2>&1; then bad "a broken line validates"; else ok; fi
printf '%s\n' '{"kind":"packet","offset":0,"channel_id":1}' >"$WORK/broken.jsonl"
if validate - "$WORK/broken.jsonl" >/dev/null 2>&1; then bad "a multifd shape under packet validates"; else ok; fi
printf '%s\n' '{"kind":"state_change","offset":0,"device":"0","from":"a","to":"b","timestamp_ns":"1"}' >"$WORK/broken.jsonl"
if validate - "$WORK/broken.jsonl" >/dev/null 2>&1; then bad "a string device validates"; else ok; fi
finish
