# SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only
# Shared by the CLI tests (sourced; not a test itself).
# Each test runs with MIGSTREAM_BIN_DIR and MIGSTREAM_SRC_DIR set by CTest.
set -u
BIN=${MIGSTREAM_BIN_DIR:?MIGSTREAM_BIN_DIR not set}
SRC=${MIGSTREAM_SRC_DIR:?MIGSTREAM_SRC_DIR not set}
SYNTH=$BIN/migstream-synth
DUMP=$BIN/migstream-dump
VERIFY=$BIN/migstream-verify
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
PASS=0
FAIL=0

ok() { PASS=$((PASS + 1)); }
bad() { FAIL=$((FAIL + 1)); echo "FAIL: $*" >&2; }

# expect_exit CODE DESCRIPTION -- COMMAND...: run, check the exit code;
# stdout/stderr land in $WORK/out and $WORK/err.
expect_exit() {
    local want=$1 what=$2
    shift 3
    "$@" >"$WORK/out" 2>"$WORK/err"
    local got=$?
    if [ "$got" -eq "$want" ]; then ok; else
        bad "$what: exit $got, expected $want"
        sed 's/^/  stdout: /' "$WORK/out" | head -5 >&2
        sed 's/^/  stderr: /' "$WORK/err" | head -5 >&2
    fi
}

# expect_grep FILE REGEX DESCRIPTION
expect_grep() {
    if grep -Eq -- "$2" "$1"; then ok; else
        bad "$3: no line matching /$2/ in $(basename "$1")"
        head -5 "$1" | sed 's/^/  /' >&2
    fi
}

finish() {
    echo "$PASS passed, $FAIL failed"
    [ "$FAIL" -eq 0 ]
}
