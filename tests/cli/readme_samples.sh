#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only
# The README's sample sessions are the tools' own output: every ``` block
# right after a "<!-- sample: checked by tests/cli/readme_samples.sh -->"
# line is run, "$ COMMAND" lines in a shell (in a directory holding
# build/demo/ as `make demo` writes it, the tools first in PATH), and the
# lines after each command must be what it prints (stdout and stderr).
#   MIGSTREAM_UPDATE_README=1: rewrite the README's blocks instead.
. "$(dirname "$0")/lib.bash"
mkdir -p "$WORK/run/build/demo"
"$SYNTH" --kind mlx5 -o "$WORK/run/build/demo" >/dev/null || bad "synth failed"
PATH=$BIN:$PATH python3 - "$SRC/README.md" "$WORK/run" \
    "${MIGSTREAM_UPDATE_README:-0}" <<'PY' && ok || bad "README samples differ from the tools' output"
import subprocess, sys
readme, rundir, update = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
MARK = "<!-- sample: checked by tests/cli/readme_samples.sh -->"
lines = open(readme).read().split("\n")
out, i, blocks, bad = [], 0, 0, 0
while i < len(lines):
    out.append(lines[i])
    if lines[i] != MARK:
        i += 1
        continue
    assert lines[i + 1] == "```", "the marker must precede a ``` block"
    end = lines.index("```", i + 2)
    block, blocks = lines[i + 2:end], blocks + 1
    got = []
    for line in block:
        if not line.startswith("$ "):
            continue
        r = subprocess.run(["bash", "-c", line[2:]], cwd=rundir,
                           capture_output=True, text=True)
        got.append(line)
        text = (r.stdout + r.stderr).rstrip("\n")
        if text:
            got.extend(text.split("\n"))
    if got != block:
        bad += 1
        import difflib
        sys.stderr.writelines(l + "\n" for l in difflib.unified_diff(
            block, got, "README", "tools", lineterm=""))
    out.extend(["```"] + got + ["```"])
    i = end + 1
if blocks == 0:
    sys.exit("no sample blocks found in the README")
if update:
    open(readme, "w").write("\n".join(out))
    sys.exit(0)
sys.exit(1 if bad else 0)
PY
finish
