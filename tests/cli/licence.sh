#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only
# Every source file names the project's licence (LICENSE: BSD-3-Clause OR
# GPL-2.0-only) in an SPDX line near its top, and both licence texts ship.
. "$(dirname "$0")/lib.bash"
SRC=$MIGSTREAM_SRC_DIR
spdx='SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only'
missing=$WORK/missing
: > "$missing"
# Sources, scripts and build files; test data and corpora are not code.
while IFS= read -r f; do
    head -n 3 "$f" | grep -qF "$spdx" || echo "${f#"$SRC"/}" >> "$missing"
done < <(find "$SRC" \( -path "$SRC/build*" -o -path "$SRC/.git" \
                        -o -path "$SRC/tests/data" -o -path "$SRC/fuzz/corpus" \) -prune \
              -o -type f \( -name '*.c' -o -name '*.h' -o -name '*.sh' \
                            -o -name '*.bash' -o -name '*.py' -o -name '*.cmake' \
                            -o -name 'CMakeLists.txt' -o -name Makefile \) -print)
expect_exit 0 "every source file has the SPDX line" -- test ! -s "$missing"
[ -s "$missing" ] && head -20 "$missing" >&2
expect_exit 0 "the CI entry point has it" -- grep -qF "$spdx" "$SRC/.ci/run"
expect_exit 0 "LICENSE holds the BSD-3-Clause text" -- \
    grep -q "Redistributions of source code must retain" "$SRC/LICENSE"
expect_exit 0 "COPYING holds the GPL-2.0 text" -- \
    grep -q "GNU GENERAL PUBLIC LICENSE" "$SRC/COPYING"
finish
