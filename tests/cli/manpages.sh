#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only
# man/: every tool has a section-1 page whose options are exactly the long
# options its --help lists (both ways, so neither can go stale); the
# library page names every error code and limit of include/migstream.h;
# every page has the sections a man page needs and renders without
# warnings (groff -ww, else man --warnings; skipped when neither exists).
. "$(dirname "$0")/lib.bash"
MAN=$SRC/man
# Every tool the build made (a new one needs its page and completion too).
TOOLS=$(cd "$BIN" && for f in migstream-*; do [ -x "$f" ] && echo "${f#migstream-}"; done)
[ "$(echo $TOOLS | wc -w)" -ge 5 ] && ok || bad "tools not found in $BIN: $TOOLS"

# long_options TOOL: the --options in stdin, one per line, sorted.  A
# mention of another tool's option ("migstream-dump --payload") is not one.
long_options() {
    sed -E "s/migstream-$1 //g; s/migstream-[a-z]+ --[a-z0-9-]+//g" |
        grep -oE -- '--[a-z][a-z0-9-]*' | sort -u
}

# Options a tool accepts that its --help does not list (none now; an
# entry help_lacks_TOOL="--opt ..." would excuse them).

# roff_text PAGE: the page's text as typed, escapes for '-' and fonts gone.
roff_text() {
    grep -v '^\.\\"' "$1" | sed -E 's/\\-/-/g; s/\\f[BIRP]//g; s/\\&//g'
}

for t in $TOOLS; do
    page=$MAN/migstream-$t.1
    [ -f "$page" ] || { bad "man/migstream-$t.1 missing"; continue; }
    "$BIN/migstream-$t" --help >"$WORK/help" 2>&1 || bad "migstream-$t --help failed"
    lacks=help_lacks_$t
    { long_options "$t" <"$WORK/help"; for o in ${!lacks-}; do echo "$o"; done; } |
        sort -u >"$WORK/help.opts"
    roff_text "$page" | long_options "$t" >"$WORK/man.opts"
    missing=$(comm -23 "$WORK/help.opts" "$WORK/man.opts" | tr '\n' ' ')
    extra=$(comm -13 "$WORK/help.opts" "$WORK/man.opts" | tr '\n' ' ')
    [ -z "$missing" ] && ok || bad "migstream-$t.1 lacks options of --help: $missing"
    [ -z "$extra" ] && ok || bad "migstream-$t.1 has options --help does not list: $extra"
    [ "$(wc -l <"$WORK/help.opts")" -ge 4 ] && ok || bad "migstream-$t --help: too few options found"
done

# migstream(3): every error name and every limit field of the header.
lib=$MAN/migstream.3
roff_text "$lib" >"$WORK/lib.txt"
names=$(sed -nE 's/.*X\(([A-Z_]+), *[0-9]+, *"([a-z-]+)".*/\2/p' "$SRC/include/migstream.h")
[ "$(echo "$names" | wc -w)" -ge 40 ] && ok || bad "error names not found in migstream.h"
for n in $names; do
    grep -q -- "^\.BR $n " "$WORK/lib.txt" && ok || bad "migstream.3 lacks error $n"
done
fields=$(tr -d '\\\n' <"$SRC/include/migstream.h" |
    grep -oE 'X\(MAX_[A-Z_]+, *[0-9]+, *[a-z_]+' | sed -E 's/.*, *//')
[ "$(echo "$fields" | wc -w)" -ge 10 ] && ok || bad "limits not found in migstream.h"
for f in $fields; do
    grep -q -- "$f" "$WORK/lib.txt" && ok || bad "migstream.3 lacks limit $f"
done

# Sections every page has.
for page in "$MAN"/*.[13]; do
    for s in NAME SYNOPSIS DESCRIPTION "SEE ALSO"; do
        grep -q "^\.SH $s" "$page" && ok || bad "$(basename "$page"): no $s section"
    done
    case $page in
    *.1) for s in OPTIONS "EXIT STATUS" EXAMPLES; do
            grep -q "^\.SH $s" "$page" && ok || bad "$(basename "$page"): no $s section"
        done ;;
    esac
    head -1 "$page" | grep -q 'SPDX-License-Identifier' && ok || bad "$(basename "$page"): no SPDX line"
done

# Rendering, warnings as failures.
if command -v groff >/dev/null; then
    for page in "$MAN"/*.[13]; do
        groff -man -Tutf8 -ww -z "$page" >"$WORK/warn" 2>&1
        [ ! -s "$WORK/warn" ] && ok || { bad "$(basename "$page") renders with warnings"; head -5 "$WORK/warn" >&2; }
    done
elif command -v man >/dev/null; then
    for page in "$MAN"/*.[13]; do
        MANROFFSEQ='' man --warnings -l -P cat "$page" 2>"$WORK/warn" >/dev/null
        [ ! -s "$WORK/warn" ] && ok || { bad "$(basename "$page") renders with warnings"; head -5 "$WORK/warn" >&2; }
    done
else
    echo "SKIP: neither groff nor man installed (Debian: groff-base, man-db): pages not rendered"
fi
finish
