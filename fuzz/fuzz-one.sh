#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only
# Run one libFuzzer harness over a working copy of its seeds, with the
# harness's own options (fuzz/NAME.options: "key = value" lines, each passed
# as -key=value, e.g. max_len) and dictionary (fuzz/NAME.dict when present).
#
#   fuzz/fuzz-one.sh BINARY NAME SECONDS WORK_DIR ARTIFACT_DIR [--merge DIR] SEED_DIR...
#
# WORK_DIR is emptied and filled with the seeds (libFuzzer adds what it finds
# there); crashes land in ARTIFACT_DIR/NAME-*.  With --merge DIR, inputs of
# WORK_DIR that add coverage (a new edge) over DIR are then copied into DIR
# (libFuzzer -merge=1): `make fuzz` merges back into fuzz/corpus/NAME/.
# Exits with libFuzzer's status (non-zero on a crash, leak or timeout).
set -euo pipefail

if [[ $# -lt 6 ]]; then
    echo "usage: $0 BINARY NAME SECONDS WORK_DIR ARTIFACT_DIR [--merge DIR] SEED_DIR..." >&2
    exit 2
fi
binary=$1 name=$2 seconds=$3 work=$4 artifacts=$5
shift 5
merge=""
if [[ $1 == --merge ]]; then
    merge=$2
    shift 2
fi
fuzz_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

args=()
if [[ -f "$fuzz_dir/$name.options" ]]; then
    while IFS= read -r line; do
        [[ $line =~ ^[[:space:]]*([a-z_]+)[[:space:]]*=[[:space:]]*([^[:space:]]+) ]] || continue
        args+=("-${BASH_REMATCH[1]}=${BASH_REMATCH[2]}")
    done <"$fuzz_dir/$name.options"
fi
if [[ -f "$fuzz_dir/$name.dict" ]]; then
    args+=("-dict=$fuzz_dir/$name.dict")
fi

rm -rf "$work"
mkdir -p "$work" "$artifacts"
for seeds in "$@"; do
    if [[ -d "$seeds" ]]; then
        cp -R "$seeds"/. "$work"/
    fi
done

status=0
"$binary" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=20 \
    -print_final_stats=1 -artifact_prefix="$artifacts/$name-" \
    "${args[@]}" "$work" || status=$?
if [[ $status -eq 0 && -n $merge ]]; then
    mkdir -p "$merge"
    before=$(find "$merge" -type f | wc -l)
    # edges only (-use_counters=0): an input is kept for a new edge, not
    # for a new hit count, so committed corpora grow slowly
    "$binary" -merge=1 -use_counters=0 -rss_limit_mb=2048 -timeout=20 "${args[@]}" \
        "$merge" "$work" 2>"$work.merge.log" || status=$?
    after=$(find "$merge" -type f | wc -l)
    echo "fuzz-one: $name: merged $((after - before)) new input(s) into $merge"
fi
exit $status
