#!/usr/bin/env bash
# Real QEMU 7.2 captures are recognised by their magic.  Decoding QEMU
# framings is not implemented yet: the tools must say so and exit 1, never
# report the data valid.
. "$(dirname "$0")/lib.bash"
C=$SRC/tests/data/captures
for f in "$C"/qemu-7.2-pc-precopy/main.mig "$C"/qemu-7.2-pc-multifd4/conn0.bin; do
    expect_exit 1 "verify $(basename "$f")" -- "$VERIFY" "$f"
    expect_grep "$WORK/out" ":0: format-unsupported: qemu-main streams are recognised but not decoded" "qemu main recognised"
done
expect_exit 1 "verify multifd channel" -- "$VERIFY" "$C"/qemu-7.2-pc-multifd4/conn1.bin
expect_grep "$WORK/out" "format-unsupported: qemu-multifd" "multifd recognised"
printf 'hello world, not a stream' > "$WORK/text"
expect_exit 1 "verify text" -- "$VERIFY" "$WORK/text"
expect_grep "$WORK/out" ":0: format-unknown:" "unknown format"
finish
