#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only
# Time the migstream tools as whole processes on generated files, side by
# side with what a user would otherwise run, and print a table of ratios
# with each row's target (issue 10).  Informative: the script exits 0
# unless a tool fails (or a program it needs is missing); PASS/MISS only
# say whether this run met the target.
#
#   scripts/bench-tools.sh                 (after a build in ./build)
#   BUILD=build-rel VERIFY_SIZE=256M RSS_SIZE=1G scripts/bench-tools.sh
#
# Variables (sizes take K, M, G):
#   BUILD        the build directory with the tools (default build)
#   BENCH_TMP    where the files go (default: a new directory under
#                ${TMPDIR:-/tmp}, removed at the end); dd and extract
#                write there too, so both write to one filesystem
#   VERIFY_SIZE  image bytes of the stream verified against xxhsum (1G)
#   RSS_SIZE     image bytes of the stream whose peak RSS is taken (4G)
#   RAM_SIZE     RAM of the QEMU stream extracted against dd (256M)
#   MULTIFD_RAM  RAM of the multifd channel sets (256M)
#   REPS         best of REPS runs, cache warm (3)
#
# Rows:
#   verify vs xxhsum   migstream-verify of a migstream stream against
#                      `xxhsum -H3` of the same file: time_xxhsum /
#                      time_verify, target >= 1.00 (no slower)
#   peak RSS           migstream-verify and migstream-dump (stdout to
#                      /dev/null) of a RSS_SIZE stream: KiB from
#                      /usr/bin/time, target <= 32 MiB
#   extract vs dd      migstream-extract --ram of a QEMU main stream
#                      against `dd bs=1M` of as many bytes as its pages
#                      hold: time_extract / time_dd, target <= 1.50
#   multifd 1 vs 2     migstream-extract --ram of 1 and of 2 zlib multifd
#                      channel files: wall time and CPU% (informative)
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$here/build}
VERIFY_SIZE=${VERIFY_SIZE:-1G}
RSS_SIZE=${RSS_SIZE:-4G}
RAM_SIZE=${RAM_SIZE:-256M}
MULTIFD_RAM=${MULTIFD_RAM:-256M}
REPS=${REPS:-3}
RSS_TARGET_KIB=32768

SYNTH=$BUILD/migstream-synth
VERIFY=$BUILD/migstream-verify
DUMP=$BUILD/migstream-dump
EXTRACT=$BUILD/migstream-extract

# ---- what is needed ----------------------------------------------------------
need() { # PROGRAM DEBIAN-PACKAGE
    if ! command -v "$1" >/dev/null 2>&1; then
        echo "bench-tools: $1 not found: install the Debian package $2" \
             "(apt-get install $2)" >&2
        exit 2
    fi
}
need xxhsum xxhash
need /usr/bin/time time
need dd coreutils
for t in "$SYNTH" "$VERIFY" "$DUMP" "$EXTRACT"; do
    [ -x "$t" ] || { echo "bench-tools: $t missing: build first (make build)" >&2; exit 2; }
done

if [ -n "${BENCH_TMP:-}" ]; then
    work=$BENCH_TMP
    mkdir -p "$work"
else
    work=$(mktemp -d "${TMPDIR:-/tmp}/migstream-bench.XXXXXX")
    trap 'rm -rf "$work"' EXIT
fi

# ---- helpers ------------------------------------------------------------------
# bytes SIZE: a K/M/G size in bytes
bytes() {
    local n=${1%[KkMmGg]} u=${1#"${1%[KkMmGg]}"}
    case $u in
    K | k) echo $((n << 10)) ;; M | m) echo $((n << 20)) ;;
    G | g) echo $((n << 30)) ;; *) echo "$n" ;;
    esac
}

# run DESCRIPTION COMMAND...: a tool that fails stops the script
run() {
    local what=$1
    shift
    if ! "$@"; then
        echo "bench-tools: $what failed: $*" >&2
        exit 1
    fi
}

# best_time OUTPUT COMMAND...: the best wall time (seconds) of REPS runs
# of COMMAND (stdout to /dev/null), OUTPUT (a path COMMAND writes; "" for
# none) removed, untimed, before each; the first, untimed run warms the
# cache
best_time() {
    local output=$1 best="" t0 t1 ns i
    shift
    for ((i = 0; i <= REPS; i++)); do
        [ -z "$output" ] || rm -rf "$output"
        t0=$(date +%s%N)
        run "$1" "$@" >/dev/null
        t1=$(date +%s%N)
        ns=$((t1 - t0))
        if [ "$i" -gt 0 ] && { [ -z "$best" ] || [ "$ns" -lt "$best" ]; }; then
            best=$ns
        fi
    done
    awk -v ns="$best" 'BEGIN { printf "%.3f", ns / 1e9 }'
}

# rss_kib COMMAND...: peak resident set (KiB) of COMMAND, stdout dropped
rss_kib() {
    run "$1" /usr/bin/time -f %M -o "$work/rss" "$@" >/dev/null
    cat "$work/rss"
}

# row NAME MIGSTREAM OTHER VALUE TARGET OK(1/0)
row() {
    printf '%-30s %-14s %-14s %-9s %-10s %s\n' "$1" "$2" "$3" "$4" "$5" \
        "$([ "$6" = 1 ] && echo PASS || echo MISS)"
}
info() {
    printf '%-30s %-14s %-14s %-9s %-10s %s\n' "$1" "$2" "$3" "$4" "$5" "-"
}
cmp_ge() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a >= b) }' && echo 1 || echo 0; }
cmp_le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a <= b) }' && echo 1 || echo 0; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

# migstream STREAM SIZE: one channel, one device, one final image of SIZE
# bytes in 1 MiB chunks
migstream() {
    run "migstream-synth" "$SYNTH" --channels 1 --devices 1 --initial-size 0 \
        --middle 0 --final-size "$2" --chunk-size 1M --stdout >"$1"
}

# xxhsum clears its progress line on stderr (kept in a file, shown when it
# fails)
xxhsum_h3() {
    xxhsum -H3 "$1" 2>"$work/xxhsum.err" || { cat "$work/xxhsum.err" >&2; return 1; }
}

# ---- the rows ---------------------------------------------------------------
verify_vs_xxhsum() {
    migstream "$work/verify.mig" "$VERIFY_SIZE"
    local tv tx r
    tv=$(best_time "" "$VERIFY" -q "$work/verify.mig")
    tx=$(best_time "" xxhsum_h3 "$work/verify.mig")
    r=$(ratio "$tx" "$tv")
    row "verify $VERIFY_SIZE vs xxhsum -H3" "${tv}s" "${tx}s" "${r}x" ">= 1.00x" \
        "$(cmp_ge "$r" 1.0)"
    rm -f "$work/verify.mig"
}

peak_rss() {
    migstream "$work/rss.mig" "$RSS_SIZE"
    local v d
    v=$(rss_kib "$VERIFY" -q "$work/rss.mig")
    d=$(rss_kib "$DUMP" "$work/rss.mig")
    row "peak RSS verify $RSS_SIZE" "${v} KiB" "" "" "<= 32 MiB" \
        "$(cmp_le "$v" "$RSS_TARGET_KIB")"
    row "peak RSS dump $RSS_SIZE" "${d} KiB" "" "" "<= 32 MiB" \
        "$(cmp_le "$d" "$RSS_TARGET_KIB")"
    rm -f "$work/rss.mig"
}

# dd copies as many whole MiB as the stream's page records hold.
extract_vs_dd() {
    run "migstream-synth" "$SYNTH" --qemu-ram "$RAM_SIZE" -o "$work/ram.mig"
    local ram pages count te td r
    ram=$(bytes "$RAM_SIZE")
    pages=$((ram / 4096 - ram / 4096 / 8)) # every 8th page is a ZERO record
    count=$(((pages * 4096 + (1 << 20) - 1) >> 20))
    te=$(best_time "$work/ram.out" \
        "$EXTRACT" --ram "$work/ram.out" "$work/ram.mig")
    td=$(best_time "$work/dd.out" \
        dd if="$work/ram.mig" of="$work/dd.out" bs=1M count="$count" status=none)
    r=$(ratio "$te" "$td")
    row "extract --ram $RAM_SIZE vs dd" "${te}s" "${td}s" "${r}x" "<= 1.50x" \
        "$(cmp_le "$r" 1.5)"
    rm -rf "$work/ram.mig" "$work/ram.out" "$work/dd.out"
}

# wall seconds and CPU% of one extract of channel set DIR
multifd_extract() {
    local dir=$1 i best="" line
    for ((i = 0; i <= REPS; i++)); do
        rm -rf "$dir/out"
        run "migstream-extract" /usr/bin/time -f '%e %P' -o "$work/time" \
            "$EXTRACT" --ram "$dir/out" "$dir"/main.mig "$dir"/channel-*.mig
        line=$(cat "$work/time")
        if [ "$i" -gt 0 ] && { [ -z "$best" ] ||
            awk -v a="${line% *}" -v b="${best% *}" 'BEGIN { exit !(a < b) }'; }; then
            best=$line
        fi
    done
    rm -rf "$dir/out"
    echo "$best"
}

multifd_1_vs_2() {
    local n one two
    for n in 1 2; do
        run "migstream-synth" "$SYNTH" --multifd "$n" --compress-multifd zlib \
            --ram-size "$MULTIFD_RAM" --ram-passes 1 -o "$work/mfd$n"
    done
    one=$(multifd_extract "$work/mfd1")
    two=$(multifd_extract "$work/mfd2")
    info "multifd zlib $MULTIFD_RAM: 1 ch" "${one% *}s" "CPU ${one#* }" "" "info"
    info "multifd zlib $MULTIFD_RAM: 2 ch" "${two% *}s" "CPU ${two#* }" \
        "$(ratio "${one% *}" "${two% *}")x" "info"
    rm -rf "$work/mfd1" "$work/mfd2"
}

echo "migstream tools on $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo |
    sed 's/.*: //')), best of $REPS, cache warm, files in $work"
printf '%-30s %-14s %-14s %-9s %-10s %s\n' measurement migstream other ratio \
    target result
verify_vs_xxhsum
peak_rss
extract_vs_dd
multifd_1_vs_2
