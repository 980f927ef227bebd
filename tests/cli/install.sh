#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only
# The installed copy, used as a program outside the tree would:
#   cmake --install into a temporary prefix, then
#   (a) both examples built with pkg-config (shared library) and run:
#       record_migration writes two channels, images_by_phase reads them;
#   (b) the prefix moved elsewhere: built and run again (relocatable .pc);
#   (c) a CMake project (tests/install/) with find_package(migstream)
#       builds them against migstream::migstream and
#       migstream::migstream_static; they run;
#   (d) nm: no global symbol outside ms_ in libmigstream.a or the .so;
#   (e) man finds migstream-verify(1) and migstream(3) under the prefix
#       (skipped without man);
#   (f) man pages and bash completions are installed for every tool.
. "$(dirname "$0")/lib.bash"
PREFIX=$WORK/prefix
EXAMPLES=$SRC/examples

# The compiler and sanitizer flags of the build under test: a program
# linking a sanitized libmigstream needs the same runtime.
cache() { sed -n "s/^$1:[A-Z]*=//p" "$BIN/CMakeCache.txt"; }
CC=$(cache CMAKE_C_COMPILER)
FLAGS="-std=c11"
[ "$(cache MIGSTREAM_SANITIZE)" = ON ] && FLAGS="$FLAGS -fsanitize=address,undefined"
[ "$(cache MIGSTREAM_TSAN)" = ON ] && FLAGS="$FLAGS -fsanitize=thread"

expect_exit 0 "cmake --install" -- cmake --install "$BIN" --prefix "$PREFIX"
LIBDIR=$(cd "$PREFIX" && ls -d lib*/pkgconfig | head -1 | xargs dirname)
[ -n "$LIBDIR" ] && ok || bad "no lib*/pkgconfig under the prefix"

WANT=$EXAMPLES/record_migration.expected # images_by_phase of the recording

# run_pair WHAT RECORD IMAGES: record two channels, read them back.
run_pair() {
    local what=$1 rec=$2 img=$3
    rm -f "$WORK"/ch*.mig
    expect_exit 0 "$what: record_migration" -- "$rec" "$WORK/ch0.mig" "$WORK/ch1.mig"
    [ -s "$WORK/ch0.mig" ] && [ -s "$WORK/ch1.mig" ] && ok || bad "$what: two channel files"
    expect_exit 0 "$what: images_by_phase" -- "$img" "$WORK/ch0.mig" "$WORK/ch1.mig"
    diff -u "$WANT" "$WORK/out" >&2 && ok || bad "$what: images_by_phase output"
}

# build_pc WHAT PREFIX: both examples through pkg-config, rpath to the
# library pkg-config names, then run them.
build_pc() {
    local what=$1 pfx=$2 out=$WORK/pc-$1 pc flags libdir
    mkdir -p "$out"
    pc="env PKG_CONFIG_PATH=$pfx/$LIBDIR/pkgconfig pkg-config"
    flags=$($pc --cflags --libs migstream) || { bad "$what: pkg-config"; return; }
    libdir=$($pc --variable=libdir migstream)
    case $libdir in "$pfx"/*) ok ;; *) bad "$what: libdir $libdir outside $pfx" ;; esac
    for ex in record_migration images_by_phase; do
        # shellcheck disable=SC2086
        expect_exit 0 "$what: cc $ex" -- $CC $FLAGS -o "$out/$ex" "$EXAMPLES/$ex.c" \
            $flags -Wl,-rpath,"$libdir"
    done
    run_pair "$what" "$out/record_migration" "$out/images_by_phase"
    # the program uses the installed library, not the build tree's
    linked_to "$out/images_by_phase" "$pfx" || bad "$what: not linked to $pfx/$LIBDIR/libmigstream.so.0"
}

# linked_to PROGRAM PREFIX: the libmigstream.so.0 PROGRAM loads is PREFIX's.
linked_to() {
    local got
    got=$(ldd "$1" | awk '$1 == "libmigstream.so.0" { print $3 }')
    [ -n "$got" ] && [ "$(readlink -f "$got")" = "$(readlink -f "$2/$LIBDIR/libmigstream.so.0")" ] && ok
}

# (a) pkg-config, (b) the same after moving the prefix
build_pc installed "$PREFIX"
MOVED=$WORK/elsewhere/moved-prefix
mkdir -p "$WORK/elsewhere"
mv "$PREFIX" "$MOVED"
build_pc moved "$MOVED"

# (c) find_package, shared and static
CB=$WORK/consumer
expect_exit 0 "consumer: cmake configure" -- cmake -S "$SRC/tests/install" -B "$CB" \
    -DCMAKE_PREFIX_PATH="$MOVED" -DMS_EXAMPLES_DIR="$EXAMPLES" \
    -DCMAKE_C_COMPILER="$CC" -DCMAKE_C_FLAGS="$FLAGS" -DCMAKE_BUILD_TYPE=Release
expect_exit 0 "consumer: cmake build" -- cmake --build "$CB" -j2
for kind in shared static; do
    run_pair "find_package $kind" "$CB/record_migration_$kind" "$CB/images_by_phase_$kind"
done
ldd "$CB/images_by_phase_static" | grep -q libmigstream && bad "static consumer links libmigstream.so" || ok
linked_to "$CB/images_by_phase_shared" "$MOVED" ||
    bad "shared consumer not linked to the installed libmigstream.so.0"

# (d) only the public API is global
nm -g --defined-only "$MOVED/$LIBDIR/libmigstream.a" | awk 'NF == 3 { print $3 }' >"$WORK/a.syms"
nm -D --defined-only "$MOVED/$LIBDIR/libmigstream.so.0" | awk 'NF == 3 { print $3 }' >"$WORK/so.syms"
for f in a so; do
    [ "$(grep -c '^ms_' "$WORK/$f.syms")" -ge 50 ] && ok || bad "libmigstream.$f: too few ms_ symbols"
    if grep -v '^ms_' "$WORK/$f.syms" >"$WORK/$f.other"; then
        bad "libmigstream.$f exports symbols outside ms_: $(head -5 "$WORK/$f.other" | tr '\n' ' ')"
    else ok; fi
done
grep -qx ms_reader_create "$WORK/a.syms" && ok || bad "libmigstream.a lacks ms_reader_create"

# (e) man from the prefix
if command -v man >/dev/null; then
    for page in "migstream-verify" "3 migstream"; do
        # shellcheck disable=SC2086
        MANPATH=$MOVED/share/man man -P cat $page >"$WORK/man.txt" 2>"$WORK/man.err" &&
            ok || bad "man $page: exit $?: $(head -2 "$WORK/man.err")"
    done
    expect_grep "$WORK/man.txt" "ABI POLICY" "man 3 migstream text"
else
    echo "SKIP (e): man not installed (Debian: man-db): the pages were not looked up"
fi

# (f) a page and a completion file for every installed tool
n=0
for tool in "$MOVED"/bin/migstream-*; do
    name=$(basename "$tool")
    n=$((n + 1))
    [ -f "$MOVED/share/man/man1/$name.1" ] && ok || bad "no man page for $name"
    comp=$MOVED/share/bash-completion/completions/$name
    [ -f "$comp" ] && ok || { bad "no bash completion for $name"; continue; }
    bash -c '. "$1" && complete -p "$2"' _ "$comp" "$name" >/dev/null 2>&1 &&
        ok || bad "$comp does not register $name"
done
[ "$n" -ge 5 ] && ok || bad "only $n tools installed"
[ -f "$MOVED/share/man/man3/migstream.3" ] && ok || bad "no migstream(3)"
finish
