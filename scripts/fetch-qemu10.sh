#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only
# Unpack QEMU 10.0 (Debian 12 bookworm-backports' qemu-system-x86 and the
# packages holding its firmware) into a cache directory, beside the system's
# QEMU 7.2, for the differential test of the qemu-10.0-* captures
# (tests/qemu/differential.sh).  Nothing is installed system-wide: apt-get
# runs with a private source list and state, and the packages are unpacked
# with dpkg-deb -x.  Their shared libraries are those of Debian 12's
# qemu-system-x86 (installed by scripts/setup-deps.sh).
#
#   scripts/fetch-qemu10.sh [DIR]
#
# DIR defaults to $MIGSTREAM_QEMU10_DIR, else ~/.cache/migstream/qemu10.
# Prints the unpacked root (run ROOT/usr/bin/qemu-system-x86_64 with
# QEMU_MODULE_DIR=ROOT/usr/lib/x86_64-linux-gnu/qemu and
# -L ROOT/usr/share/qemu -L ROOT/usr/share/seabios) and exits 0; exits 1
# with the reason on stderr when the suite cannot be reached.  Idempotent:
# a complete unpack is reused without network access.
set -euo pipefail

dir=${1:-${MIGSTREAM_QEMU10_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/migstream/qemu10}}
mirror=${MIGSTREAM_BACKPORTS_MIRROR:-http://deb.debian.org/debian}
suite=bookworm-backports
packages=(qemu-system-x86 qemu-system-common qemu-system-data seabios)

# A complete unpack runs and says it is QEMU 10.
works() {
    local root=$1
    [[ -x "$root/usr/bin/qemu-system-x86_64" ]] &&
        QEMU_MODULE_DIR="$root/usr/lib/x86_64-linux-gnu/qemu" \
            "$root/usr/bin/qemu-system-x86_64" --version 2>/dev/null |
        grep -q '^QEMU emulator version 1[0-9]\.'
}

if works "$dir/root"; then
    echo "$dir/root"
    exit 0
fi
for tool in apt-get dpkg-deb flock; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "fetch-qemu10: $tool not found (a Debian system is needed)" >&2
        exit 1
    fi
done

mkdir -p "$dir"
exec 9>"$dir/lock" # one fetch at a time (parallel test runs share DIR)
flock 9
if works "$dir/root"; then
    echo "$dir/root"
    exit 0
fi

# Stage 1: the suite's package list, in a private apt state.
apt_dir=$dir/apt
rm -rf "$apt_dir" "$dir/root.new"
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/debs"
echo "deb $mirror $suite main" >"$apt_dir/sources.list"
apt_opts=(-o "Dir::Etc::sourcelist=$apt_dir/sources.list"
          -o "Dir::Etc::sourceparts=-"
          -o "Dir::State::Lists=$apt_dir/lists"
          -o "Dir::Cache=$apt_dir/cache"
          -o "APT::Get::List-Cleanup=0"
          -o "Debug::NoLocking=1")
if [[ "$(id -u)" -eq 0 ]]; then
    apt_opts+=(-o "APT::Sandbox::User=root") # downloads into a root-owned dir
fi
if ! apt-get "${apt_opts[@]}" -qq update </dev/null >"$apt_dir/update.log" 2>&1 ||
    grep -q '^[WE]:' "$apt_dir/update.log"; then
    echo "fetch-qemu10: cannot read $suite from $mirror:" >&2
    sed 's/^/  /' "$apt_dir/update.log" >&2
    exit 1
fi

# Stage 2: download the suite's version of each package and unpack it.
pins=()
for pkg in "${packages[@]}"; do
    pins+=("$pkg/$suite")
done
if ! (cd "$apt_dir/debs" &&
      apt-get "${apt_opts[@]}" -qq download "${pins[@]}" </dev/null) \
    >"$apt_dir/download.log" 2>&1; then
    echo "fetch-qemu10: apt-get download ${pins[*]} failed:" >&2
    sed 's/^/  /' "$apt_dir/download.log" >&2
    exit 1
fi
mkdir -p "$dir/root.new"
for deb in "$apt_dir"/debs/*.deb; do
    dpkg-deb -x "$deb" "$dir/root.new"
done

# Stage 3: keep it only if it runs (its libraries are the system's).
if ! works "$dir/root.new"; then
    echo "fetch-qemu10: the unpacked qemu-system-x86_64 does not run:" >&2
    QEMU_MODULE_DIR="$dir/root.new/usr/lib/x86_64-linux-gnu/qemu" \
        "$dir/root.new/usr/bin/qemu-system-x86_64" --version >&2 || true
    exit 1
fi
rm -rf "$dir/root"
mv "$dir/root.new" "$dir/root"
rm -rf "$apt_dir/cache" "$apt_dir/debs"
echo "$dir/root"
