#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only
# The real QEMU 10.0.2 multifd capture (main channel + 4 zstd channels,
# tests/data/captures/qemu-10.0-pc-multifd4-zstd, ground truth in its
# README): the set verifies in any file order; extract --ram rebuilds pc.ram
# as blob.bin at 0x1000000 and zeros elsewhere (sha256 against a file built
# here from blob.bin), the other blocks with the README's page counts and
# their firmware/ACPI contents; dump shows the README's per-channel totals.
# Damaged sets (a channel missing, a channel's last SYNC packet gone, a
# channel cut inside a packet, a header field changed) fail with exit 1 and
# a FILE:OFFSET line.
. "$(dirname "$0")/lib.bash"
EXTRACT=$BIN/migstream-extract
C=$SRC/tests/data/captures/qemu-10.0-pc-multifd4-zstd
SET=("$C/conn0.bin" "$C/conn1.bin" "$C/conn2.bin" "$C/conn3.bin" "$C/conn4.bin")
HDR=1344 # RAM packet header with 4 KiB pages: 320 + 128 x 8

# ---- verify --------------------------------------------------------------------
expect_exit 0 "verify" -- "$VERIFY" "${SET[@]}"
[ ! -s "$WORK/out" ] && ok || bad "verify printed output on success"
expect_exit 0 "verify, channels first" -- "$VERIFY" "$C/conn4.bin" "$C/conn2.bin" \
    "$C/conn1.bin" "$C/conn3.bin" "$C/conn0.bin"

# ---- extract --ram ---------------------------------------------------------------
X=$WORK/x
expect_exit 0 "extract --ram" -- "$EXTRACT" -v --ram "$X" "${SET[@]}"
# the README: pc.ram is blob.bin at 0x1000000, zero elsewhere (128 MiB)
truncate -s 134217728 "$WORK/want.ram"
dd if="$C/blob.bin" of="$WORK/want.ram" bs=1M seek=16 conv=notrunc status=none
want=$(sha256sum <"$WORK/want.ram" | cut -d' ' -f1)
got=$(sha256sum <"$X/pc.ram" | cut -d' ' -f1)
[ "$got" = "$want" ] && ok || bad "pc.ram sha256 $got, expected $want (blob.bin at 0x1000000)"
# page counts per block: 307 normal and 32,591 zero pages in all, as QEMU
# counted; the README names the normal pages outside pc.ram
while IFS='|' read -r file block pages zero; do
    expect_grep "$WORK/out" "/$file: block $block, [0-9]+ bytes, $pages pages, $zero zero pages" \
        "extract: $block has $pages pages and $zero zero pages"
done <<'EOF'
pc.ram|pc.ram|256|32512
rom@etc/acpi/tables|/rom@etc/acpi/tables|2|30
pc.bios|pc.bios|47|17
pc.rom|pc.rom|0|32
rom@etc/table-loader|/rom@etc/table-loader|1|0
rom@etc/acpi/rsdp|/rom@etc/acpi/rsdp|1|0
EOF
# firmware and ACPI data: SeaBIOS with its reset vector (jmp f000:e05b),
# the ACPI RSDP signature
[ "$(head -c 8 "$X/rom@etc/acpi/rsdp")" = "RSD PTR " ] && ok || bad "rsdp does not start with 'RSD PTR '"
[ "$(od -An -tx1 -j $((0x3fff0)) -N5 "$X/pc.bios" | tr -d ' \n')" = "ea5be000f0" ] && ok ||
    bad "pc.bios: no reset vector at 0x3fff0"
grep -aq "SeaBIOS" "$X/pc.bios" && ok || bad "pc.bios is not SeaBIOS"
[ "$(tr -d '\0' <"$X/pc.rom" | wc -c)" -eq 0 ] && ok || bad "pc.rom: zero pages only, yet not zero"

# ---- dump: per-channel totals (README table) --------------------------------------
expect_exit 0 "dump --summary" -- "$DUMP" --summary "${SET[@]}"
while IFS='|' read -r id file packets pages zero; do
    expect_grep "$WORK/out" "multifd channel $id \(.*/$file\): $packets packets, 3 SYNC, $pages pages, $zero zero pages, [0-9]+ payload bytes, 0 device-state packets" \
        "dump: channel $id totals"
done <<'EOF'
0|conn1.bin|67|1|8064
1|conn2.bin|69|131|8094
2|conn3.bin|66|175|7825
3|conn4.bin|71|0|8608
EOF
expect_grep "$WORK/out" "307 pages sent \+ 32591 zero pages: valid" "dump: QEMU's normal and duplicate counts"
expect_exit 0 "dump" -- "$DUMP" "${SET[@]}"
expect_grep "$WORK/out" "^ +64  packet +RAM #0 SYNC -: 0 pages \+ 0 zero, payload 0 \(none\)$" \
    "dump: the first packet is a header-only SYNC"

# ---- damaged sets ---------------------------------------------------------------------
# the last channel missing: nothing names the channel count, but QEMU 10
# numbers the packets 0..272 across the channels
expect_exit 1 "last channel missing" -- "$VERIFY" "$C/conn0.bin" "$C/conn1.bin" "$C/conn2.bin" "$C/conn3.bin"
expect_grep "$WORK/out" "^[^ :]+\.bin:[0-9]+: multifd: multifd packet number 3 never arrived" \
    "last channel missing: the first lost packet number"
# conn1's last SYNC packet gone (a clean cut at a packet boundary)
n=$(stat -c %s "$C/conn1.bin")
head -c $((n - HDR)) "$C/conn1.bin" >"$WORK/conn1-nosync.bin"
expect_exit 1 "last SYNC gone" -- "$VERIFY" "$C/conn0.bin" "$WORK/conn1-nosync.bin" \
    "$C/conn2.bin" "$C/conn3.bin" "$C/conn4.bin"
expect_grep "$WORK/out" "conn1-nosync\.bin:$((n - HDR)): multifd: multifd channel 0 carries 2 SYNC packets" \
    "last SYNC gone: the channel and where it ends"
# every channel's last SYNC packet gone: the channels agree with each other
# and their numbers have no gap (269..272 were the highest), but the main
# channel has 3 sync points (MULTIFD_FLUSH in RAM START, PART and END)
for k in 1 2 3 4; do
    n=$(stat -c %s "$C/conn$k.bin")
    head -c $((n - HDR)) "$C/conn$k.bin" >"$WORK/c$k-nosync.bin"
done
expect_exit 1 "every last SYNC gone" -- "$VERIFY" "$C/conn0.bin" "$WORK"/c[1-4]-nosync.bin
expect_grep "$WORK/out" "c1-nosync\.bin:[0-9]+: multifd: multifd channel 0 carries 2 SYNC packets, the main channel has 3 sync points" \
    "every last SYNC gone: the main channel's sync points"
# conn2 cut inside the blob's packet (0x2f80)
head -c $((0x2f80 + HDR + 1000)) "$C/conn2.bin" >"$WORK/conn2-cut.bin"
expect_exit 1 "channel cut inside a packet" -- "$VERIFY" "$C/conn0.bin" "$C/conn1.bin" \
    "$WORK/conn2-cut.bin" "$C/conn3.bin" "$C/conn4.bin"
expect_grep "$WORK/out" "conn2-cut\.bin:$((0x2f80 + HDR + 1000)): truncated" "cut channel: the offset of the cut"
# a header field changed: the first SYNC packet of conn3 given a block name
cp "$C/conn3.bin" "$WORK/conn3-name.bin"
printf 'x' | dd of="$WORK/conn3-name.bin" bs=1 seek=$((64 + 64)) conv=notrunc status=none
expect_exit 1 "SYNC packet naming a block" -- "$VERIFY" "$C/conn0.bin" "$C/conn1.bin" \
    "$C/conn2.bin" "$WORK/conn3-name.bin" "$C/conn4.bin"
expect_grep "$WORK/out" "conn3-name\.bin:128: multifd: SYNC packet without page slots names a RAM block" \
    "SYNC with a name: its offset"
# the blob's packet with one byte of its zstd payload changed
cp "$C/conn2.bin" "$WORK/conn2-z.bin"
printf '\377' | dd of="$WORK/conn2-z.bin" bs=1 seek=$((0x2f80 + HDR + 2)) conv=notrunc status=none
expect_exit 1 "zstd payload damaged" -- "$VERIFY" "$C/conn0.bin" "$C/conn1.bin" \
    "$WORK/conn2-z.bin" "$C/conn3.bin" "$C/conn4.bin"
expect_grep "$WORK/out" "conn2-z\.bin:[0-9]+: decompress: " "zstd payload damaged: decompress"

finish
