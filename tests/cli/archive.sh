# SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only
# migstream-archive: every bundled capture archived and unpacked byte for
# byte; verify, dump and extract give on the archive what they give on the
# original files; a damaged archive byte is reported at its record and
# unpack refuses it.
. "$(dirname "$0")/lib.bash"
ARCHIVE=$BIN/migstream-archive
EXTRACT=$BIN/migstream-extract
CAPS=$SRC/tests/data/captures

# The capture files of a directory, as migstream-archive selects them.
capture_files() {
    ls "$1" | grep -E '^(conn[0-9]+\.(s2d|d2s|bin)|.*\.mig|manifest\.json)$'
}

# Problem lines name files; compare them with the names made equal:
# ARCHIVE[NAME] and DIR/NAME both become NAME.
normalise() { sed -E -e 's#[^ :(]*\.mig\[([^]]*)\]#\1#g' -e "s#$2/##g" "$1"; }

for dir in "$CAPS"/*/; do
    name=$(basename "$dir")
    in=$dir
    if [ -e "$dir/main.mig.gz" ]; then # the sparse mapped-ram file, expanded
        in=$WORK/in-$name
        mkdir -p "$in"
        gzip -dc "$dir/main.mig.gz" |
            dd of="$in/main.mig" conv=sparse bs=64K iflag=fullblock status=none
    fi
    in=${in%/}
    files=$(capture_files "$in")
    A=$WORK/$name.mig
    expect_exit 0 "$name: archive" -- "$ARCHIVE" -o "$A" "$in"

    # ---- unpack: the same files, byte for byte -----------------------------
    expect_exit 0 "$name: unpack" -- "$ARCHIVE" --unpack "$WORK/u-$name" "$A"
    [ "$(ls "$WORK/u-$name")" = "$files" ] && ok ||
        bad "$name: unpacked $(ls "$WORK/u-$name" | tr '\n' ' ') for $files"
    for f in $files; do
        cmp -s "$in/$f" "$WORK/u-$name/$f" && ok || bad "$name: $f differs"
    done
    expect_exit 0 "$name: --list" -- "$ARCHIVE" --list "$A"
    expect_grep "$WORK/out" 'summary summary\.jsonl' "$name: list shows the summary"

    # ---- verify: the same verdict and problems -----------------------------
    orig=()
    for f in $files; do orig+=("$in/$f"); done
    "$VERIFY" "${orig[@]}" >"$WORK/v1" 2>&1
    v1=$?
    "$VERIFY" "$A" >"$WORK/v2" 2>&1
    v2=$?
    [ "$v1" -eq "$v2" ] && ok || bad "$name: verify exits $v1 on the files, $v2 on the archive"
    if diff <(normalise "$WORK/v1" "$in") <(normalise "$WORK/v2" "$in") >"$WORK/d"; then ok; else
        bad "$name: verify says other things on the archive"
        head -5 "$WORK/d" >&2
    fi

    # ---- dump: the archive's records, then the files' own lines ------------
    expect_exit "$v1" "$name: dump" -- "$DUMP" "$A"
    expect_grep "$WORK/out" 'archive_end +stream 0 ' "$name: dump shows the archive records"
    "$DUMP" --summary "${orig[@]}" >"$WORK/s1" 2>&1
    "$DUMP" --summary "$A" >"$WORK/s2" 2>&1
    if diff <(normalise "$WORK/s1" "$in") <(normalise "$WORK/s2" "$in") >"$WORK/d"; then ok; else
        bad "$name: dump --summary differs"
        head -6 "$WORK/d" >&2
    fi

    # ---- extract --ram: the same RAM files ---------------------------------
    "$EXTRACT" --ram "$WORK/r1-$name" "${orig[@]}" >/dev/null 2>&1
    x1=$?
    "$EXTRACT" --ram "$WORK/r2-$name" "$A" >/dev/null 2>&1
    x2=$?
    [ "$x1" -eq "$x2" ] && ok || bad "$name: extract exits $x1 on the files, $x2 on the archive"
    if [ -d "$WORK/r1-$name" ]; then
        blocks=$(cd "$WORK/r1-$name" && find . -type f | sort)
        [ "$blocks" = "$(cd "$WORK/r2-$name" 2>/dev/null && find . -type f | sort)" ] && ok ||
            bad "$name: extract --ram made other files"
        [ -n "$blocks" ] && ok || bad "$name: no RAM extracted"
        for f in $blocks; do
            cmp -s "$WORK/r1-$name/$f" "$WORK/r2-$name/$f" && ok ||
                bad "$name: RAM block $f differs"
        done
    fi
    rm -rf "$WORK/u-$name" "$WORK/r1-$name" "$WORK/r2-$name" "$WORK/in-$name"
    [ "$name" = qemu-7.2-pc-multifd2-zlib ] || rm -f "$A"
done

# ---- a damaged byte: reported at its record, unpack refuses ----------------------
A=$WORK/qemu-7.2-pc-multifd2-zlib.mig
D=$WORK/damaged.mig
cp "$A" "$D"
at=300000
printf '\x5a' | dd of="$D" bs=1 seek=$at conv=notrunc status=none
cmp -s "$A" "$D" && bad "the byte was already 0x5a" || ok
expect_exit 1 "damaged: unpack refuses" -- "$ARCHIVE" --unpack "$WORK/ud" "$D"
[ ! -e "$WORK/ud" ] && ok || bad "damaged: unpack wrote $WORK/ud"
expect_grep "$WORK/err" "damaged\.mig:[0-9]+: payload-check: STREAM_DATA" "damaged: unpack names the check"
off=$(sed -nE 's/^.*damaged\.mig:([0-9]+): payload-check.*/\1/p' "$WORK/err" | head -1)
# the check that failed is the one of the record holding the byte (records
# of at most 1 MiB + 40 bytes of framing)
[ -n "$off" ] && [ "$off" -gt "$at" ] && [ $((off - at)) -le $((1048576 + 40)) ] && ok ||
    bad "damaged: offset ${off:-none} is not that of the record holding byte $at"
expect_exit 1 "damaged: verify" -- "$VERIFY" "$D"
expect_grep "$WORK/out" "damaged\.mig:$off: payload-check" "damaged: verify reports the archive's check"
expect_exit 1 "damaged: --list" -- "$ARCHIVE" --list "$D"

# ---- usage -------------------------------------------------------------------------
expect_exit 2 "no mode" -- "$ARCHIVE" "$A"
expect_exit 2 "two modes" -- "$ARCHIVE" --list -o "$WORK/x.mig" "$A"
expect_exit 1 "--list of a non-archive" -- "$ARCHIVE" --list "$CAPS/qemu-7.2-pc-multifd4/conn0.bin"
finish
