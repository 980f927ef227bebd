#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only
# spec/example.md is what migstream-synth --example prints, and its bytes
# are a valid stream that dumps as the spec describes.
. "$(dirname "$0")/lib.bash"
expect_exit 0 "synth --example" -- "$SYNTH" --example
if diff -u "$SRC/spec/example.md" "$WORK/out" >&2; then ok; else bad "spec/example.md is stale: regenerate with migstream-synth --example"; fi
# Rebuild the bytes from the hex dump lines ("  OFFSET: hex bytes").
python3 - "$SRC/spec/example.md" "$WORK/example.mig" <<'PY' && ok || bad "hex dump offsets are not contiguous"
import re, sys
data = bytearray()
for line in open(sys.argv[1]):
    m = re.match(r"^  ([0-9a-f]{6}): ((?:[0-9a-f]{2} ?)+)$", line.rstrip("\n"))
    if m:
        assert int(m.group(1), 16) == len(data), (m.group(1), len(data))
        data += bytes.fromhex(m.group(2))
open(sys.argv[2], "wb").write(data)
assert len(data) == 421
PY
expect_exit 0 "the example verifies" -- "$VERIFY" "$WORK/example.mig"
expect_exit 0 "the example dumps" -- "$DUMP" "$WORK/example.mig"
expect_grep "$WORK/out" "^ +253  image_end +device 0 image 0 initial 4 bytes in 1 chunks hash 082ba382d35f50a8" "example image_end (2.0: XXH3 of le64 XXH3(de ad be ef))"
finish
