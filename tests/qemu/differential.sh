#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only
# QEMU's loader as a judge: mutants of the bundled QEMU captures (bit flips,
# byte overwrites and cuts, mostly in the non-page structure) are loaded by
# a real destination QEMU and checked by migstream-verify; the test fails
# when verify accepts a stream QEMU rejects (differential.py says how).
#
#   DIFF_MUTANTS=N   mutants in all (default 40, spread over the captures)
#   DIFF_SEED=S      the mutation seed (default 1)
#   DIFF_ONLY=a,b    only these captures (names of tests/data/captures/*)
#   DIFF_TIMEOUT=S   seconds a destination QEMU gets per load (default 8;
#                    a mutant it neither loads nor refuses by then counts
#                    as refused: "timeout")
#   DIFF_KEEP=DIR    copy the failing mutants there
#   MIGSTREAM_QEMU10=BIN  a QEMU >= 10.0 for the qemu-10.0-* captures;
#                    default: the system's if it is >= 10.0, else the one
#                    scripts/fetch-qemu10.sh unpacks from bookworm-backports
#
# The qemu-7.2-* captures are loaded by the system's qemu-system-x86_64
# (Debian 12's 7.2, installed by scripts/setup-deps.sh).  Exit 77 (skip)
# when there is no qemu-system-x86_64 at all.
. "$(dirname "$0")/lib.bash" # BIN, SRC, $qemu (or skip)
# "QEMU emulator version 7.2.22 (...)" -> 7
major() { "$@" --version 2>/dev/null | sed -nE '1s/^QEMU emulator version ([0-9]+)\..*/\1/p'; }
args=(--qemu72 "$qemu")

q10=${MIGSTREAM_QEMU10:-}
if [[ -z "$q10" && "$(major "$qemu")" -ge 10 ]]; then
    q10=$qemu
fi
if [[ -n "$q10" ]]; then
    args+=(--qemu10 "$q10")
elif root=$(bash "$SRC/scripts/fetch-qemu10.sh"); then
    args+=(--qemu10 "$root/usr/bin/qemu-system-x86_64" --qemu10-data "$root")
else
    echo "NOTE: no QEMU 10.0 (scripts/fetch-qemu10.sh failed, above): the" \
         "qemu-10.0-* captures are not judged"
fi

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
python3 "$SRC/tests/qemu/differential.py" --bin "$BIN" \
    --captures "$SRC/tests/data/captures" --work "$WORK" "${args[@]}" \
    --mutants "${DIFF_MUTANTS:-40}" --seed "${DIFF_SEED:-1}" \
    --timeout "${DIFF_TIMEOUT:-8}" \
    --only "${DIFF_ONLY:-}"
rc=$?
if [[ $rc -eq 1 && -n "${DIFF_KEEP:-}" ]]; then
    mkdir -p "$DIFF_KEEP" && cp -r "$WORK"/fail-* "$DIFF_KEEP"/ 2>/dev/null
    echo "failing mutants copied to $DIFF_KEEP"
fi
exit $rc
