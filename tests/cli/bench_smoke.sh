#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only
# The benchmark runs every case, checks what it decoded, and prints one
# JSON object per case in the documented shape (no speed is asserted:
# issue 10 judges speed by these ratios, never by a timed test).
. "$(dirname "$0")/lib.bash"
BENCH=$BIN/migstream-bench
CASES="verify-memory verify-64k-slices parse-only write reassemble-4ch-stable
reassemble-4ch-copying verify-zlib-chunks qemu-list-ram qemu-extract-ram
multifd-zlib-1 multifd-zlib-2 hostile-min-records"

expect_exit 0 "bench --json on 4 MiB" -- "$BENCH" --json --size 4M --reps 1
cp "$WORK/out" "$WORK/json"
# every line one object with the six keys, of the right types, and the
# ratio the quotient of the two speeds
if python3 - "$WORK/json" $CASES <<'PY'; then ok; else bad "bench --json lines"; fi
import json, sys
path, want = sys.argv[1], sys.argv[2:]
seen = []
for n, line in enumerate(open(path), 1):
    o = json.loads(line)
    assert sorted(o) == sorted(["case", "mb_per_s", "baseline",
                                "baseline_mb_per_s", "ratio", "peak_kib"]), (n, o)
    assert isinstance(o["case"], str) and isinstance(o["baseline"], str), o
    assert o["mb_per_s"] > 0 and o["baseline_mb_per_s"] > 0, o
    assert isinstance(o["peak_kib"], int) and o["peak_kib"] >= 0, o
    q = o["mb_per_s"] / o["baseline_mb_per_s"]
    assert abs(o["ratio"] - q) <= 0.002 + 0.01 * q, (o, q)
    seen.append(o["case"])
missing = [c for c in want if c not in seen]
assert not missing, ("missing cases", missing)
assert len(seen) == len(set(seen)), ("a case twice", seen)
PY

# the readable table names every case too
expect_exit 0 "bench table on 1 MiB" -- "$BENCH" --size 1M --reps 1
for c in $CASES; do
    expect_grep "$WORK/out" "^$c " "bench table row $c"
done

# --case runs one case; an unknown one is a usage error
expect_exit 0 "bench --case hostile-min-records" -- \
    "$BENCH" --json --size 1M --reps 1 --case hostile-min-records
if [ "$(wc -l <"$WORK/out")" -eq 1 ]; then ok; else bad "--case printed $(wc -l <"$WORK/out") lines"; fi
expect_grep "$WORK/out" '"case": "hostile-min-records".*"baseline": "verify-memory"' "--case row"
expect_exit 2 "bench --case nosuch" -- "$BENCH" --case nosuch
expect_grep "$WORK/err" "unknown case 'nosuch'" "unknown case said"
finish
