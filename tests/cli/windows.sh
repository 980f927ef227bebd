#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only
# The tools hand a mapped file to the library one window at a time and drop
# each window's pages once it is read (tools/tool_common.c).  Small windows
# (MIGSTREAM_MAP_WINDOW) make records, packets held across channels,
# mapped-ram seeks and QEMU JSON trailers cross window edges: every tool
# must say exactly what it says with the default window.  And peak RSS must
# not grow with the file: a stream several times the window verifies and
# dumps within a bound the whole file would exceed.
. "$(dirname "$0")/lib.bash"
EXTRACT=$BIN/migstream-extract
C=$SRC/tests/data/captures
command -v python3 >/dev/null || { bad "python3 is needed"; finish; exit 1; }

# same_output WHAT -- COMMAND...: the command's exit status, stdout and
# stderr are the same with windows of 4 KiB, 12345 bytes and 1 MiB as with
# the default window.
same_output() {
    local what=$1
    shift 2
    "$@" >"$WORK/want.out" 2>"$WORK/want.err"
    local want=$? w
    for w in 4096 12345 1M; do
        MIGSTREAM_MAP_WINDOW=$w "$@" >"$WORK/got.out" 2>"$WORK/got.err"
        local got=$?
        if [ "$got" -eq "$want" ] && cmp -s "$WORK/want.out" "$WORK/got.out" &&
            cmp -s "$WORK/want.err" "$WORK/got.err"; then ok; else
            bad "$what: window $w: exit $got (default $want) or other output"
            diff "$WORK/want.out" "$WORK/got.out" | head -5 >&2
        fi
    done
}

# ---- real captures: main streams (trailer at the end), multifd sets,
# postcopy, mapped-ram (the reader seeks to the bitmap and the pages) ------
gzip -dc "$C/qemu-10.0-pc-mapped-ram-32m/main.mig.gz" |
    dd of="$WORK/mapped-ram.mig" conv=sparse bs=64K iflag=fullblock status=none
for set in "$C/qemu-7.2-pc-precopy/main.mig" \
    "$C/qemu-10.0-q35-precopy/main.mig" \
    "$C/qemu-10.0-pc-postcopy/conn0.s2d" \
    "$WORK/mapped-ram.mig" \
    "$(echo "$C"/qemu-7.2-pc-multifd4/conn*.bin)" \
    "$(echo "$C"/qemu-10.0-pc-multifd4-zstd/conn*.bin)"; do
    name=$(basename "$(dirname "${set%% *}")")/$(basename "${set%% *}")
    # shellcheck disable=SC2086 # a set is several files
    {
        same_output "dump $name" -- "$DUMP" $set
        same_output "verify -v $name" -- "$VERIFY" -v $set
    }
done
same_output "dump --state (JSON trailer)" -- \
    "$DUMP" --state "$C/qemu-10.0-q35-precopy/main.mig"
expect_exit 0 "extract --ram, default window" -- \
    "$EXTRACT" --ram "$WORK/ram-default" "$C"/qemu-7.2-pc-multifd4/conn*.bin
expect_exit 0 "extract --ram, 4 KiB windows" -- \
    env MIGSTREAM_MAP_WINDOW=4096 "$EXTRACT" --ram "$WORK/ram-small" \
    "$C"/qemu-7.2-pc-multifd4/conn*.bin
diff -r "$WORK/ram-default" "$WORK/ram-small" >/dev/null && ok ||
    bad "extract --ram: other RAM with 4 KiB windows"

# ---- synthetic sets: migstream packets reassembled across 4 channels (the
# set holds views of packets that arrive early, whose pages were dropped),
# a QEMU multifd set with device state -------------------------------------
expect_exit 0 "synth migstream set" -- "$SYNTH" --final-size 3M -o "$WORK/ms"
same_output "verify -v migstream set" -- "$VERIFY" -v "$WORK"/ms/*.mig
same_output "dump migstream set" -- "$DUMP" "$WORK"/ms/*.mig
same_output "verify -v migstream set, last channel first" -- \
    "$VERIFY" -v "$WORK/ms/channel-3.mig" "$WORK/ms/channel-0.mig" \
    "$WORK/ms/channel-1.mig" "$WORK/ms/channel-2.mig"
expect_exit 0 "synth multifd set" -- "$SYNTH" --multifd 3 -o "$WORK/mfd"
same_output "verify -v multifd set" -- "$VERIFY" -v "$WORK"/mfd/*.mig
same_output "dump multifd set" -- "$DUMP" "$WORK"/mfd/*.mig

# A damaged set says the same problem at the same offset.
cp "$WORK/ms/channel-2.mig" "$WORK/damaged.mig"
printf '\377' | dd of="$WORK/damaged.mig" bs=1 seek=200000 conv=notrunc status=none
same_output "verify damaged set" -- "$VERIFY" "$WORK/ms/channel-0.mig" \
    "$WORK/ms/channel-1.mig" "$WORK/damaged.mig" "$WORK/ms/channel-3.mig"
expect_grep "$WORK/want.out" "damaged.mig:[0-9]+: " "the damage is reported"

# ---- bounded memory: peak RSS of a 96 MiB stream read in 4 MiB windows
# stays far below the file (mapping it whole touched every page); so does a
# 4-channel 192 MiB set whose packets the set holds across channels as views
# of the files (read again when their turn comes, then dropped again; with
# only each window dropped, 116 and 150 MiB) -------------------------------
expect_exit 0 "synth 96 MiB stream" -- "$SYNTH" --devices 1 --channels 1 \
    --initial-size 0 --middle 0 --final-size 96M -o "$WORK/big"
expect_exit 0 "synth 4-channel 192 MiB set" -- "$SYNTH" --devices 1 \
    --channels 4 --initial-size 0 --middle 0 --final-size 192M -o "$WORK/big4"
# peak_rss_mib COMMAND...: the child's peak RSS in MiB (exit status kept)
peak_rss_mib() {
    python3 - "$@" <<'PY'
import resource, subprocess, sys
rc = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024)
sys.exit(rc)
PY
}
# The set's bound leaves room for packets held while one channel's thread
# lags (verify reads each channel on a thread of its own): those pages are
# read again when drained and only then dropped.
for tool in "$VERIFY" "$DUMP"; do
    for set in "40 $WORK/big/channel-0.mig" "64 $(echo "$WORK"/big4/*.mig)"; do
        max=${set%% *}
        set=${set#* }
        what="$(basename "$tool") of $(basename "$(dirname "${set%% *}")")"
        # shellcheck disable=SC2086 # a set is several files
        rss=$(MIGSTREAM_MAP_WINDOW=4M peak_rss_mib "$tool" $set) &&
            ok || bad "$what failed"
        [ "${rss:-999}" -le "$max" ] && ok ||
            bad "$what: peak RSS ${rss:-?} MiB (at most $max expected)"
    done
done
finish
