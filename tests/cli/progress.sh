#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only
# The progress line of migstream-verify, -dump and -extract: on stderr when
# it is a terminal (a pseudo-terminal here), redrawn in place with \r,
# taken away before a problem line and at the end; never with --quiet (or
# verify's -q) or when stderr is not a terminal; not by dump while its
# elements go to the same terminal.  MIGSTREAM_PROGRESS_INTERVAL_MS=0
# redraws at every window, and 64 KiB windows give a 6 MiB stream ~100.
. "$(dirname "$0")/lib.bash"
EXTRACT=$BIN/migstream-extract
command -v python3 >/dev/null || { bad "python3 is needed"; finish; exit 1; }
export MIGSTREAM_PROGRESS_INTERVAL_MS=0 MIGSTREAM_MAP_WINDOW=64K

# on_tty [--both] -- COMMAND...: run with stderr (with --both stdout too)
# on a pseudo-terminal; what the terminal got goes to $WORK/tty, stdout
# otherwise to $WORK/out; the command's exit status is kept.
cat >"$WORK/run_on_pty.py" <<'PY'
import os, pty, subprocess, sys
both = sys.argv[1] == "--both"
master, slave = pty.openpty()
with open(sys.argv[2], "wb") as out:
    child = subprocess.Popen(sys.argv[4:], stdin=subprocess.DEVNULL,
                             stdout=slave if both else out, stderr=slave)
os.close(slave)
got = b""
while True:
    try:
        chunk = os.read(master, 65536)
    except OSError:  # EIO: the child's end closed
        break
    if not chunk:
        break
    got += chunk
with open(sys.argv[3], "wb") as tty:
    tty.write(got)
sys.exit(child.wait())
PY
on_tty() {
    local mode=--stderr
    [ "$1" = --both ] && { mode=--both; shift; }
    shift
    python3 "$WORK/run_on_pty.py" "$mode" "$WORK/out" "$WORK/tty" "$@"
}

# progress_lines: how many progress lines the terminal got
progress_lines() { grep -ao $'\r[a-z-]*: [0-9.]* [KMG]*i*B[^\r]*/s' "$WORK/tty" | wc -l; }
# cleared_at_end: the terminal's last bytes take the line away
cleared_at_end() { [ "$(tail -c 4 "$WORK/tty" | od -An -c | tr -d ' ')" = '\r033[K' ]; }

expect_exit 0 "synth a 6 MiB set" -- "$SYNTH" --devices 1 --channels 2 \
    --initial-size 0 --middle 0 --final-size 6M -o "$WORK/s"
set -- "$WORK/s/channel-0.mig" "$WORK/s/channel-1.mig"

# ---- verify: progress of the whole set, then the line cleared ------------
on_tty -- "$VERIFY" "$@" && ok || bad "verify under a terminal failed"
n=$(progress_lines)
[ "$n" -ge 20 ] && ok || bad "verify: $n progress lines on the terminal (20 or more expected)"
grep -aEq $'\rmigstream-verify: [0-9.]+ [KM]iB of 6\\.[0-9] MiB \\([0-9]+%\\), [0-9.]+ [KMG]?i?B/s, [0-9]+:[0-9]{2} left\033\\[K' "$WORK/tty" &&
    ok || bad "verify: no 'N MiB of 6.x MiB (P%), RATE/s, M:SS left' line"
grep -aq $'\rmigstream-verify: 6\\.[0-9] MiB of 6\\.[0-9] MiB (100%)' "$WORK/tty" &&
    ok || bad "verify: the last update does not say 100%"
cleared_at_end && ok || bad "verify: the progress line is not cleared at the end"
[ ! -s "$WORK/out" ] && ok || bad "verify: stdout is not empty"

# ---- nothing with --quiet, -q, or stderr not a terminal -------------------
for q in --quiet -q --status; do
    on_tty -- "$VERIFY" "$q" "$@" && ok || bad "verify $q failed"
    [ ! -s "$WORK/tty" ] && ok || bad "verify $q: the terminal got $(wc -c <"$WORK/tty") bytes"
done
on_tty -- "$DUMP" --quiet --summary "$@" && ok || bad "dump --quiet failed"
[ ! -s "$WORK/tty" ] && ok || bad "dump --quiet: the terminal got output"
expect_grep "$WORK/out" "^summary: " "dump --quiet still prints its summary"
on_tty -- sh -c '"$@" 2>"$0"' "$WORK/err-file" "$VERIFY" "$@" && ok ||
    bad "verify, stderr to a file, failed"
[ ! -s "$WORK/err-file" ] && ok || bad "verify: progress written to a file"
[ ! -s "$WORK/tty" ] && ok || bad "verify, stderr to a file: the terminal got output"

# ---- dump: with --summary it shows progress; elements printed to the same
# terminal as they come are progress enough ---------------------------------
on_tty -- "$DUMP" --summary "$@" && ok || bad "dump --summary failed"
[ "$(progress_lines)" -ge 20 ] && ok || bad "dump --summary: no progress"
cleared_at_end && ok || bad "dump --summary: progress line not cleared"
on_tty --both -- "$DUMP" "$@" && ok || bad "dump to a terminal failed"
[ "$(progress_lines)" -eq 0 ] && ok || bad "dump to a terminal: progress cut into its output"
grep -aq "summary: " "$WORK/tty" && ok || bad "dump to a terminal: no summary"

# ---- extract, and standard input (a pipe: size unknown, no total) ---------
expect_exit 0 "synth a QEMU multifd set" -- "$SYNTH" --multifd 2 --final-size 4M -o "$WORK/m"
on_tty -- "$EXTRACT" --ram "$WORK/ram" "$WORK"/m/*.mig && ok || bad "extract under a terminal failed"
[ "$(progress_lines)" -ge 5 ] && ok || bad "extract: no progress"
cleared_at_end && ok || bad "extract: progress line not cleared"
on_tty -- "$EXTRACT" --quiet --ram "$WORK/ram2" "$WORK"/m/*.mig && ok || bad "extract --quiet failed"
[ ! -s "$WORK/tty" ] && ok || bad "extract --quiet: the terminal got output"
on_tty -- sh -c 'cat "$1" | "$0" -' "$VERIFY" "$WORK/s/channel-0.mig" || true
grep -aEq $'\rmigstream-verify: [0-9.]+ [KM]iB, [0-9.]+ [KMG]?i?B/s\033\\[K' "$WORK/tty" &&
    ok || bad "verify of a pipe: no 'N MiB, RATE/s' line"

# ---- a problem line starts on a line of its own, after the progress line
# was taken away ------------------------------------------------------------
cp "$WORK/s/channel-1.mig" "$WORK/damaged.mig"
printf '\377' | dd of="$WORK/damaged.mig" bs=1 seek=3000000 conv=notrunc status=none
on_tty --both -- "$VERIFY" "$WORK/s/channel-0.mig" "$WORK/damaged.mig"
[ $? -eq 1 ] && ok || bad "verify of a damaged set under a terminal: not exit 1"
grep -aq $'\r\033\\[K[^\r]*damaged.mig:[0-9]*: ' "$WORK/tty" && ok ||
    bad "verify: the problem line does not follow a cleared progress line"
grep -aq $'left[^\r]*damaged.mig:' "$WORK/tty" && bad "verify: a problem printed behind the progress line" || ok
finish
