#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only
# Install the Debian packages migstream needs to build, test and fuzz.
#
#   scripts/setup-deps.sh        # silent when everything is installed
#
# As root it installs what is missing (apt-get, non-interactive, no stdin
# needed); otherwise it prints the command to run and exits 1.  Idempotent.
# Set MIGSTREAM_SKIP_DEPS=1 to skip the check (e.g. on a non-Debian system
# where the equivalents are installed by other means).
set -euo pipefail

packages=(
    build-essential  # gcc, make, libc headers
    cmake            # build system (>= 3.25)
    pkg-config       # finds the libraries below
    zlib1g-dev       # zlib: chunk compression, QEMU zlib multifd channels, gzip images
    libzstd-dev      # zstd: QEMU zstd multifd channels, zstd libvirt save images
    liblzma-dev      # xz: libvirt save images compressed with xz
    liblzo2-dev      # LZO1X: libvirt save images compressed with lzop
    libbz2-dev       # bzip2: libvirt save images compressed with bzip2
    libxxhash-dev    # XXH3 check values
    libcmocka-dev    # unit tests
    python3          # CLI tests: JSON Lines checks, hex dump of the spec example
    gzip bzip2 xz-utils lzop zstd # CLI tests: compress libvirt save images
                                  # with the programs libvirt runs
    clang            # libFuzzer harnesses, second compiler
    libclang-rt-14-dev # libFuzzer, ASan and UBSan runtimes for clang 14
    valgrind         # make check-valgrind: memcheck over the unit tests
    qemu-system-x86  # tests/qemu/differential.sh: QEMU 7.2's loader judges
                     # mutated captures (QEMU 10.0 for the qemu-10.0-*
                     # ones: scripts/fetch-qemu10.sh, from backports)
    # CLI tests: tests/cli/json_schema.sh validates every migstream-dump
    # --json line against spec/migstream-dump.schema.json (draft 2020-12)
    python3-jsonschema
)

# Man pages (tests/cli/manpages.sh renders them with groff -ww;
# tests/cli/install.sh looks them up with man from the install prefix):
# groff-base (groff, nroff; ~3.6 MB) and man-db (man; ~3 MB).  Both are
# "standard" on Debian, so usually there already.
packages+=(groff-base man-db)

if [[ "${MIGSTREAM_SKIP_DEPS:-0}" == 1 ]]; then
    exit 0
fi

if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "setup-deps: not a Debian system; make sure these (or equivalents) are" \
         "installed: ${packages[*]}" >&2
    exit 0
fi

missing=()
for pkg in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null || true)
    if [[ "$status" != ii* ]]; then
        missing+=("$pkg")
    fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
    exit 0
fi

if [[ "$(id -u)" -ne 0 ]]; then
    echo "setup-deps: missing Debian packages: ${missing[*]}" >&2
    echo "setup-deps: install them with:" >&2
    echo "  sudo apt-get install -y ${missing[*]}" >&2
    exit 1
fi

echo "setup-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update </dev/null
apt-get install -y --no-install-recommends "${missing[@]}" </dev/null
