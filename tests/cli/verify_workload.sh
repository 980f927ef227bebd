#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only
# The issue's acceptance workload: 4 channels, 2 devices, initial + 2 middle
# + final images each, final images as device-state packets.
. "$(dirname "$0")/lib.bash"
D=$WORK/default
expect_exit 0 "synth default workload" -- "$SYNTH" -o "$D"
n=$(ls "$D"/*.mig | wc -l)
[ "$n" -eq 4 ] && ok || bad "default workload has $n channel files, expected 4"
expect_exit 0 "verify all channels" -- "$VERIFY" "$D"/*.mig
[ ! -s "$WORK/out" ] && ok || bad "verify printed output on success"
expect_exit 0 "verify in reverse order" -- "$VERIFY" "$D/channel-3.mig" "$D/channel-2.mig" "$D/channel-1.mig" "$D/channel-0.mig"
expect_exit 0 "verify --verbose" -- "$VERIFY" --verbose "$D"/*.mig
expect_grep "$WORK/out" "^migration: ok: 4 of 4 channels, 8 images, 2 reassembled" "verbose summary"

# Deterministic: the same options give the same bytes.
expect_exit 0 "synth again" -- "$SYNTH" -o "$WORK/again"
for f in "$D"/*.mig; do
    cmp -s "$f" "$WORK/again/$(basename "$f")" && ok || bad "synth not deterministic: $(basename "$f")"
done
expect_exit 0 "synth other seed" -- "$SYNTH" --seed 7 -o "$WORK/seed7"
cmp -s "$D/channel-0.mig" "$WORK/seed7/channel-0.mig" && bad "seed has no effect" || ok

# A missing channel is reported, not called valid.
expect_exit 1 "three of four channels" -- "$VERIFY" "$D/channel-0.mig" "$D/channel-1.mig" "$D/channel-2.mig"
expect_grep "$WORK/out" "channel-set: 1 of 4 channels missing \(first missing: channel 3\)" "missing channel named"
# A channel twice.
expect_exit 1 "a channel twice" -- "$VERIFY" "$D"/*.mig "$D/channel-2.mig"
expect_grep "$WORK/out" "channel-2.mig:32: channel-set: channel index 2 appears twice" "duplicate channel"
# A channel of another migration.
expect_exit 1 "foreign channel" -- "$VERIFY" "$D/channel-0.mig" "$D/channel-1.mig" "$WORK/seed7/channel-2.mig" "$D/channel-3.mig"
expect_grep "$WORK/out" "seed7/channel-2.mig:16: channel-uuid:" "foreign channel named with file and offset"

# Streamed input (not mapped) makes the set copy early packets: the cap on
# held bytes is enforced and the error names the option that raises it.
expect_exit 1 "buffer cap from stdin" -- bash -c "cat '$D/channel-1.mig' | '$VERIFY' --max-buffered-bytes=100K '$D/channel-0.mig' - '$D/channel-2.mig' '$D/channel-3.mig'"
expect_grep "$WORK/out" "limit: max_buffered_bytes \(102400\) reached: .* waiting for packet idx 0 .*\(raise it with --max-buffered-bytes\)" "buffer cap named"
expect_exit 0 "same from stdin, default cap" -- bash -c "cat '$D/channel-1.mig' | '$VERIFY' '$D/channel-0.mig' - '$D/channel-2.mig' '$D/channel-3.mig'"
expect_exit 0 "forced format" -- "$VERIFY" --format=migstream "$D"/*.mig
expect_exit 2 "unknown format name" -- "$VERIFY" --format=nope "$D"/*.mig

# Compressed chunks and chunk-mode final images on one channel.
expect_exit 0 "synth compressed" -- "$SYNTH" --compress 6 --channels 1 --devices 3 -o "$WORK/z"
expect_exit 0 "verify compressed" -- "$VERIFY" "$WORK/z/channel-0.mig"
zs=$(stat -c %s "$WORK/z/channel-0.mig")
expect_exit 0 "synth uncompressed" -- "$SYNTH" --channels 1 --devices 3 -o "$WORK/u"
us=$(stat -c %s "$WORK/u/channel-0.mig")
[ "$zs" -lt "$us" ] && ok || bad "compression did not shrink ($zs >= $us)"
# Standard input.
expect_exit 0 "verify from stdin" -- bash -c "cat '$WORK/z/channel-0.mig' | '$VERIFY' -"
expect_exit 1 "truncated stdin" -- bash -c "head -c 5000 '$WORK/z/channel-0.mig' | '$VERIFY' -"
expect_grep "$WORK/out" "^-:5000: truncated:" "truncated stdin offset"
# An optional vendor record is skipped and still verified.
expect_exit 0 "synth vendor record" -- "$SYNTH" --vendor-record --channels 2 -o "$WORK/v"
expect_exit 0 "verify with vendor record" -- "$VERIFY" "$WORK/v"/*.mig
expect_exit 0 "dump with vendor record" -- "$DUMP" "$WORK/v"/*.mig
expect_grep "$WORK/out" "unknown optional, skipped" "vendor record shown as skipped"
finish
