#!/usr/bin/env bash
# The benchmark runs and reads back what it wrote (no speed is asserted).
. "$(dirname "$0")/lib.bash"
expect_exit 0 "bench on 1 MiB" -- "$BIN/migstream-bench" --size 1M --reps 1
for c in "baseline memcpy" "baseline XXH3-64" "read\+verify chunks" "reassemble 4 ch" "read\+verify zlib chunks" "qemu list RAM pages" "qemu extract RAM" "multifd zlib channel"; do
    expect_grep "$WORK/out" "^$c" "bench case $c"
done
finish
