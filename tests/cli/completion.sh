#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only
# completions/migstream.bash: sourced in bash it registers every tool;
# sample completions (options, fixed value lists, files); each tool's
# completed options are exactly the long options its --help lists, and
# migstream-bench's --case list is the case list of its --help.
. "$(dirname "$0")/lib.bash"
COMP=$SRC/completions/migstream.bash
# Every tool the build made (a new one needs its page and completion too).
TOOLS=$(cd "$BIN" && for f in migstream-*; do [ -x "$f" ] && echo "${f#migstream-}"; done)
[ "$(echo $TOOLS | wc -w)" -ge 5 ] && ok || bad "tools not found in $BIN: $TOOLS"
# shellcheck source=/dev/null
. "$COMP" || bad "sourcing $COMP failed"

for t in $TOOLS; do
    complete -p "migstream-$t" >"$WORK/spec" 2>&1 && ok || bad "no completion for migstream-$t"
    expect_grep "$WORK/spec" "-F _migstream migstream-$t\$" "migstream-$t completion function"
done

# complete WORD...: COMPREPLY for the command line WORD... (the last word
# being completed), as bash's programmable completion calls the function.
complete_line() {
    COMP_WORDS=("$@")
    COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
    COMP_LINE="$*"
    COMP_POINT=${#COMP_LINE}
    COMPREPLY=()
    _migstream "$1" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]:-}"
    printf '%s\n' "${COMPREPLY[@]}" | sort >"$WORK/reply"
}
# expect_reply DESCRIPTION WANT...: COMPREPLY is exactly WANT (sorted).
expect_reply() {
    local what=$1
    shift
    if printf '%s\n' "$@" | sort | diff - "$WORK/reply" >/dev/null; then ok; else
        bad "$what: got $(tr '\n' ' ' <"$WORK/reply"), expected $*"
    fi
}

complete_line migstream-verify --he
expect_reply "verify --he" --help
complete_line migstream-verify --expect-c
expect_reply "verify --expect-c" --expect-capability
complete_line migstream-bench --case verify-
expect_reply "bench --case verify-" verify-memory verify-64k-slices verify-zlib-chunks
complete_line migstream-dump --format = qemu-m
expect_reply "dump --format=qemu-m" qemu-main qemu-multifd
complete_line migstream-dump --payload=hi
expect_reply "dump --payload=hi (one word)" hisi_acc
complete_line migstream-synth --kind m
expect_reply "synth --kind m" mlx5
complete_line migstream-extract --phase ""
expect_reply "extract --phase" initial middle final
touch "$WORK/chan-a.mig" "$WORK/chan-b.mig"
mkdir "$WORK/chan-dir"
complete_line migstream-verify "$WORK/chan-"
expect_reply "verify FILE" "$WORK/chan-a.mig" "$WORK/chan-b.mig" "$WORK/chan-dir"
complete_line migstream-extract --ram "$WORK/chan-"
expect_reply "extract --ram DIR" "$WORK/chan-dir"
complete_line migstream-bench ""
expect_reply "bench takes no files"

# Every tool: the options completed == the long options of --help (a
# mention of another tool's option, "migstream-dump --payload", is not
# one of its own).
for t in $TOOLS; do
    complete_line "migstream-$t" --
    "$BIN/migstream-$t" --help 2>&1 |
        sed -E "s/migstream-$t //g; s/migstream-[a-z]+ --[a-z0-9-]+//g" |
        grep -oE -- '--[a-z][a-z0-9-]*' >"$WORK/help.opts"
    extra=help_extra_$t lacks=help_lacks_$t
    for o in ${!lacks-}; do echo "$o"; done >>"$WORK/help.opts"
    sort -u "$WORK/help.opts" | grep -vxF -e "${!extra-@}" >"$WORK/want"
    if diff "$WORK/want" "$WORK/reply" >"$WORK/diff"; then ok; else
        bad "migstream-$t: completed options differ from --help (< help, > completion)"
        sed 's/^/  /' "$WORK/diff" >&2
    fi
done

# migstream-bench --case: the names its --help lists under "cases".
complete_line migstream-bench --case ""
"$BIN/migstream-bench" --help | sed -n '/^cases/,$p' | grep -E '^  [a-z]' |
    sed -E 's/^  //; s/ {2,}.*//; s/, /\n/g' | sort -u >"$WORK/want"
[ "$(wc -l <"$WORK/want")" -ge 10 ] && ok || bad "bench --help: case list not found"
if diff "$WORK/want" "$WORK/reply" >"$WORK/diff"; then ok; else
    bad "bench --case completion differs from its --help (< help, > completion)"
    sed 's/^/  /' "$WORK/diff" >&2
fi
finish
