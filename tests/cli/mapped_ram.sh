# SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only
# QEMU mapped-ram files: the real QEMU 10.0 capture (stored gzipped, expanded
# here to a sparse file whose bytes are the original's), checked against its
# README's ground truth; damaged copies; the same file through a pipe.
. "$(dirname "$0")/lib.bash"
EXTRACT=$BIN/migstream-extract
DATA=$SRC/tests/data/captures/qemu-10.0-pc-mapped-ram-32m
M=$WORK/main.mig

# ---- the capture, expanded sparse; provenance by hash ------------------------
gzip -dc "$DATA/main.mig.gz" | dd of="$M" conv=sparse bs=64K iflag=fullblock status=none
[ "$(sha256sum <"$M" | cut -d' ' -f1)" = \
    a12ad110afbdec8ff41f3e46284708eefc6167a5d444d5a3c93a1c9cb1013d20 ] &&
    ok || bad "expanded main.mig is not the capture's bytes"
[ "$(stat -c %s "$M")" -eq 39962020 ] && ok || bad "expanded size"

# patch FILE OFFSET HEX: overwrite bytes in place (HEX like "00000002")
patch() {
    local f=$1 off=$2 hex=$3 esc=""
    while [ -n "$hex" ]; do
        esc="$esc\\x${hex:0:2}"
        hex=${hex:2}
    done
    printf "$esc" | dd of="$f" bs=1 seek="$off" conv=notrunc status=none
}
damaged() { cp --sparse=always "$M" "$WORK/d.mig"; patch "$WORK/d.mig" "$@"; }

# ---- verify, dump ------------------------------------------------------------------
expect_exit 0 "verify the capture" -- "$VERIFY" "$M"
expect_exit 0 "verify -v the capture" -- "$VERIFY" -v "$M"
expect_grep "$WORK/out" "^mapped-ram: ok: 6 RAM blocks, 307 of 8322 pages in the file" "verify -v: mapped-ram summary"
expect_exit 0 "dump the capture" -- "$DUMP" "$M"
cp "$WORK/out" "$WORK/dump"
# README table: record at, block, used_length, bitmap_offset, pages_offset,
# bits set / pages (dump prints the header's offset: record + 1 + name + 8)
while read -r hdr name bitmap pages set total resume; do
    expect_grep "$WORK/dump" \
        "^ *$hdr  mapped_ram +$name v1 page 4096 bitmap $bitmap \([0-9]+ bytes\) pages $pages: $set / $total pages set, stream resumes at $resume\$" \
        "mapped-ram header of $name"
    expect_grep "$WORK/dump" "^  ram $name: .* $set pages, 0 zero, mapped-ram: $set / $total pages set\$" \
        "summary of $name"
done <<'EOF'
114 pc.ram 0x8e 0x100000 256 8192 0x2100000
34603037 /rom@etc/acpi/tables 0x2100039 0x2200000 2 32 0x2220000
35782672 pc.bios 0x222002c 0x2300000 47 64 0x2340000
36962319 pc.rom 0x234002b 0x2400000 0 32 0x2420000
37879838 /rom@etc/table-loader 0x242003a 0x2500000 1 1 0x2501000
38801435 /rom@etc/acpi/rsdp 0x2501037 0x2600000 1 1 0x2601000
EOF
[ "$(grep -c ' mapped_ram ' "$WORK/dump")" -eq 6 ] && ok || bad "six mapped-ram blocks"
expect_grep "$WORK/dump" "^ *39849997  section +part  1 ram" "the stream resumes at 0x2601000"
expect_grep "$WORK/dump" "INVALID|valid$" "summary line"
expect_grep "$WORK/dump" ": valid$" "summary says valid"
expect_exit 0 "dump --json" -- "$DUMP" --json "$M"
expect_grep "$WORK/out" '"kind":"mapped_ram","offset":114,.*"bitmap_offset":142,"bitmap_size":"1024","pages_offset":1048576,"pages_set":256,"pages_total":"8192"' \
    "JSON mapped_ram event"
expect_exit 0 "dump --pages" -- "$DUMP" --pages "$M"
[ "$(grep -c ' ram_page ' "$WORK/out")" -eq 307 ] && ok || bad "307 page events"
expect_grep "$WORK/out" "^ *17825792  ram_page +page pc.ram 0x1000000\$" "first blob page at its file offset"

# ---- extract --ram: pc.ram = 16 MiB zeros + blob.bin + zeros, sparse ----------
R=$WORK/ram
expect_exit 0 "extract --ram" -- "$EXTRACT" --ram "$R" "$M"
want=$( { head -c $((0x1000000)) /dev/zero; cat "$DATA/blob.bin"
          head -c $((0x2000000 - 0x1000000 - 0x100000)) /dev/zero; } | sha256sum | cut -d' ' -f1)
[ "$(sha256sum <"$R/pc.ram" | cut -d' ' -f1)" = "$want" ] && ok ||
    bad "pc.ram is not 16 MiB zeros + blob.bin + zeros"
used=$(du -k "$R/pc.ram" | cut -f1)
[ "$used" -lt 4096 ] && ok || bad "pc.ram not sparse ($used KiB on disk)"
[ "$(stat -c %s "$R/pc.rom")" -eq $((0x20000)) ] && ok || bad "pc.rom size"
[ "$(du -k "$R/pc.rom" | cut -f1)" -eq 0 ] && ok || bad "pc.rom (no page set) not a hole"
for f in pc.bios "rom@etc/acpi/tables" "rom@etc/table-loader" "rom@etc/acpi/rsdp"; do
    [ -f "$R/$f" ] && ok || bad "extract: $f missing"
done

# ---- the same file through a pipe; a redirected file is seekable ----------------
cat "$M" | "$VERIFY" - >"$WORK/out" 2>"$WORK/err"
[ $? -eq 1 ] && ok || bad "piped mapped-ram file must fail"
expect_grep "$WORK/out" "^-:[0-9]+: seekable-input: mapped-ram file: pages live at fixed offsets: .*give the file itself, not a pipe" \
    "pipe: the seekable-input error says why"
expect_exit 0 "verify - < file (pread)" -- "$VERIFY" - <"$M"
"$DUMP" - <"$M" | grep ' mapped_ram ' >"$WORK/pread"
grep ' mapped_ram ' "$WORK/dump" | cmp -s - "$WORK/pread" && ok || bad "pread path: other mapped-ram lines"

# ---- damage: each fails with the offending field's offset -----------------------
# pc.ram's header is at 114 (0x72): version +0, page size +4, bitmap +12,
# pages +20
damaged 114 00000002
expect_exit 1 "header version 2" -- "$VERIFY" "$WORK/d.mig"
expect_grep "$WORK/out" "d.mig:114: ram: RAM block \"pc.ram\": mapped-ram header version 2" "version offset"
damaged 118 0000000000002000
expect_exit 1 "header page size 8192" -- "$VERIFY" "$WORK/d.mig"
expect_grep "$WORK/out" "d.mig:118: ram: .*page size 8192, the stream's target page size is 4096" "page size offset"
damaged 134 0000000000100800
expect_exit 1 "pages_offset not page aligned" -- "$VERIFY" "$WORK/d.mig"
expect_grep "$WORK/out" "d.mig:134: ram: .*pages_offset 0x100800 is not on a page" "misaligned (page)"
# page aligned but not on QEMU's 1 MiB: QEMU's loader takes it, so the
# header passes; the stream then resumes 4 KiB late, inside a hole
damaged 134 0000000000101000
expect_exit 1 "pages_offset moved by a page" -- "$VERIFY" "$WORK/d.mig"
expect_grep "$WORK/out" "d.mig:$((0x2101000)): " "moved pages: the stream resumes at the wrong place"
damaged 134 0000000000000000
expect_exit 1 "pages_offset over the bitmap" -- "$VERIFY" "$WORK/d.mig"
expect_grep "$WORK/out" "d.mig:134: ram: .*pages_offset 0x0 overlaps the bitmap at 0x8e" "overlap with the bitmap"
# /rom@etc/acpi/tables (header at 34603037): its bitmap pointed back into
# pc.ram's pages
damaged $((34603037 + 12)) 0000000002000000
expect_exit 1 "bitmap inside the previous block's pages" -- "$VERIFY" "$WORK/d.mig"
expect_grep "$WORK/out" "d.mig:$((34603037 + 12)): ram: .*bitmap_offset 0x2000000 lies before the end of its mapped-ram header" \
    "overlap with the previous block"
# pc.rom (header at 36962319): pages beyond the end of the file
damaged $((36962319 + 20)) 0000000003000000
expect_exit 1 "pages beyond EOF" -- "$VERIFY" "$WORK/d.mig"
expect_grep "$WORK/out" "d.mig:$((36962319 + 20)): ram: .*pages 0x3000000\.\.0x3020000 go beyond the end of the file \(39962020 bytes\)" \
    "beyond EOF"
# a bit past pc.ram's 8192 pages cannot be: its bitmap is exactly 1024
# bytes, so damage /rom@etc/table-loader's (1 page, bitmap at 0x242003a)
damaged $((0x242003a)) 03
expect_exit 1 "bitmap bit past the last page" -- "$VERIFY" "$WORK/d.mig"
expect_grep "$WORK/out" "d.mig:$((0x242003a)): ram: .*bitmap bit set for a page past the block's 1 pages" "bit past the end"
# a bit set over a hole is a zero page that happens to be in the file: fine
damaged 142 01
expect_exit 0 "bitmap bit over a hole" -- "$VERIFY" "$WORK/d.mig"
expect_exit 0 "dump: 257 pages set" -- "$DUMP" "$WORK/d.mig"
expect_grep "$WORK/out" "^  ram pc.ram: .*mapped-ram: 257 / 8192 pages set" "hole page counted"
expect_exit 0 "extract with a bit over a hole" -- "$EXTRACT" --ram "$WORK/ram2" "$WORK/d.mig"
[ "$(sha256sum <"$WORK/ram2/pc.ram" | cut -d' ' -f1)" = "$want" ] && ok || bad "hole page changed pc.ram"
# cut inside pc.ram's pages: the stream never resumes
head -c $((0x1800000)) "$M" >"$WORK/cut.mig"
expect_exit 1 "cut inside the pages" -- "$VERIFY" "$WORK/cut.mig"
expect_grep "$WORK/out" "cut.mig:134: ram: .*go beyond the end of the file \(25165824 bytes\)" "cut: pages beyond EOF"

# ---- migstream-synth --mapped-ram: files this test did not write by hand ------
SYNTH=$BIN/migstream-synth
for seed in 1 2 3; do
    S=$WORK/syn$seed
    mkdir -p "$S.exp"
    expect_exit 0 "synth --mapped-ram seed $seed" -- "$SYNTH" --mapped-ram -o "$S.mig" \
        --ram-size $((2 + seed))M --ram-passes $((seed + 1)) --seed $seed --expect-dir "$S.exp"
    expect_exit 0 "verify synth seed $seed" -- "$VERIFY" "$S.mig"
    expect_exit 0 "dump synth seed $seed" -- "$DUMP" "$S.mig"
    [ "$(grep -c ' mapped_ram ' "$WORK/out")" -eq 3 ] && ok || bad "synth seed $seed: three blocks"
    expect_exit 0 "extract synth seed $seed" -- "$EXTRACT" --ram "$S.ram" "$S.mig"
    while read -r k len name; do
        cmp -s "$S.ram/${name#/}" "$S.exp/ram-$k.bin" && ok ||
            bad "synth seed $seed: $name differs from the synthesizer's RAM"
    done <"$S.exp/ram"
    cat "$S.mig" | "$VERIFY" - >"$WORK/out"
    expect_grep "$WORK/out" "seekable-input" "synth seed $seed through a pipe"
done
expect_exit 2 "--mapped-ram with --stdout" -- "$SYNTH" --mapped-ram --stdout
expect_exit 2 "--mapped-ram without -o" -- "$SYNTH" --mapped-ram

finish
