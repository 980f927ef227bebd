#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only
# Any truncation or bit flip of the acceptance workload makes verify exit 1
# with FILE:OFFSET.  (Every offset of small streams is covered by the cmocka
# tests; here a spread of offsets over real-size channel files.)
. "$(dirname "$0")/lib.bash"
D=$WORK/w
"$SYNTH" -o "$D" || { bad "synth"; finish; exit 1; }
files=("$D"/channel-*.mig)
for victim in 0 2; do
    f=${files[$victim]}
    size=$(stat -c %s "$f")
    others=()
    for g in "${files[@]}"; do [ "$g" != "$f" ] && others+=("$g"); done
    # Truncations: every byte of the first 200 and last 200, and a stride.
    offs=$( (seq 0 199; seq $((size - 200)) $((size - 1)); seq 200 7919 $((size - 201))) | sort -un)
    for n in $offs; do
        head -c "$n" "$f" > "$WORK/t.mig"
        "$VERIFY" "${others[@]}" "$WORK/t.mig" > "$WORK/out" 2>&1
        rc=$?
        if [ $rc -ne 1 ]; then bad "truncated to $n: exit $rc"; continue; fi
        grep -Eq "^$WORK/t.mig:[0-9]+: (truncated|missing-end|bad-magic|format-unknown)" "$WORK/out" && ok ||
            bad "truncated to $n: $(head -1 "$WORK/out")"
    done
    # Bit flips: every bit of the stream header, every byte of the first
    # record headers, and a stride through the rest.
    offs=$( (seq 0 120; seq 121 997 $((size - 1)); echo $((size - 1))) | sort -un)
    for o in $offs; do
        cp "$f" "$WORK/b.mig"
        byte=$(od -An -tu1 -j "$o" -N1 "$f" | tr -d ' ')
        bit=$((1 << (o % 8)))
        printf "$(printf '\\%03o' $((byte ^ bit)))" | dd of="$WORK/b.mig" bs=1 seek="$o" conv=notrunc 2>/dev/null
        "$VERIFY" "${others[@]}" "$WORK/b.mig" > "$WORK/out" 2>&1
        rc=$?
        if [ $rc -ne 1 ]; then bad "bit flip at $o: exit $rc"; continue; fi
        grep -Eq "^$WORK/b.mig:[0-9]+: [a-z-]+: " "$WORK/out" && ok ||
            bad "bit flip at $o: $(head -1 "$WORK/out")"
    done
done
finish
