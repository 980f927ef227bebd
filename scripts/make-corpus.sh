#!/usr/bin/env bash
# Generate the fuzzers' seed corpora (they are built, not committed).
#
#   scripts/make-corpus.sh BIN_DIR OUT_DIR [NAME...]
#
# BIN_DIR holds migstream-synth.  Writes, replacing what was there:
#   OUT_DIR/reader/     every channel file of every workload, one seed each
#   OUT_DIR/set/        per workload, its channel files concatenated in order
#   OUT_DIR/roundtrip/  a few small files of deterministic bytes
# Each NAME not among these gets a directory with the reader seeds, so a new
# harness fuzz/fuzz_NAME.c has seeds from day one.  Seeds over 64 KiB are
# left out (they would only slow fuzzing down).  CTest runs this as the
# fixture test make-corpus.
set -euo pipefail

if [[ $# -lt 2 ]]; then
    echo "usage: $0 BIN_DIR OUT_DIR [NAME...]" >&2
    exit 2
fi
bin_dir=$1
out_dir=$2
shift 2

synth="$bin_dir/migstream-synth"
if [[ ! -x "$synth" ]]; then
    echo "make-corpus: $synth not found; build tools/synth.c first" >&2
    exit 1
fi

max_seed=65535
tmp=$(mktemp -d "${TMPDIR:-/tmp}/migstream-corpus.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

rm -rf "$out_dir/reader" "$out_dir/set" "$out_dir/roundtrip"
mkdir -p "$out_dir/reader" "$out_dir/set" "$out_dir/roundtrip"

small="--initial-size 3000 --middle-size 1000 --final-size 5000 --chunk-size 1024 --packet-size 2048"
# One line per workload: migstream-synth options (without -o).
workloads=(
    "--devices 1 --channels 1 --middle 0 $small --compress 0 --seed 1"
    "--devices 1 --channels 1 --middle 1 $small --compress 6 --seed 2"
    "--devices 2 --channels 2 --middle 1 $small --compress 0 --final-transport packets --seed 3"
    "--devices 3 --channels 4 --middle 2 $small --compress 6 --final-transport packets --seed 4"
    "--devices 2 --channels 3 --middle 0 $small --compress 0 --final-transport chunks --vendor-record --seed 5"
    "--devices 1 --channels 2 --middle 2 $small --compress 6 --final-transport packets --vendor-record --seed 6"
    "--devices 3 --channels 1 --middle 1 $small --compress 6 --final-transport chunks --seed 7"
    "--devices 1 --channels 1 --middle 0 --initial-size 1 --middle-size 1 --final-size 17 --chunk-size 7 --packet-size 5 --compress 0 --final-transport packets --seed 8"
    "--devices 2 --channels 4 --middle 1 --initial-size 200 --middle-size 100 --final-size 300 --chunk-size 64 --packet-size 50 --compress 6 --final-transport packets --vendor-record --seed 9"
)

# add_seed FILE DEST: copy FILE to DEST unless it is too big.
add_seed() {
    local size
    size=$(wc -c <"$1")
    if ((size > max_seed)); then
        echo "make-corpus: leaving out $2 ($size bytes > $max_seed)" >&2
        return 0
    fi
    cp "$1" "$2"
}

n_reader=0
n_set=0
i=0
for opts in "${workloads[@]}"; do
    dir="$tmp/w$i"
    mkdir -p "$dir"
    # shellcheck disable=SC2086  # options are split on purpose
    if ! "$synth" $opts -o "$dir" >"$tmp/synth.log" 2>&1; then
        echo "make-corpus: migstream-synth $opts -o $dir failed:" >&2
        cat "$tmp/synth.log" >&2
        exit 1
    fi
    channels=()
    c=0
    while [[ -f "$dir/channel-$c.mig" ]]; do
        channels+=("$dir/channel-$c.mig")
        c=$((c + 1))
    done
    if [[ ${#channels[@]} -eq 0 ]]; then
        echo "make-corpus: migstream-synth $opts wrote no channel-*.mig" >&2
        exit 1
    fi
    for ((c = 0; c < ${#channels[@]}; c++)); do
        add_seed "${channels[$c]}" "$out_dir/reader/w$i-channel-$c.mig"
    done
    cat "${channels[@]}" >"$tmp/set-w$i.mig"
    add_seed "$tmp/set-w$i.mig" "$out_dir/set/w$i.mig"
    i=$((i + 1))
done

# Round-trip seeds: the bytes only steer the workload, so any will do; a
# few sizes and patterns, plus slices of real streams.
rt="$out_dir/roundtrip"
printf '\x01\x01' >"$rt/tiny"
printf '\x02\x02\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\xcc\xdd\xee\xff\x00\x01\x02\x03\x04\x05\x06\x07\x40\x00\x07\x03' >"$rt/two-by-two"
head -c 256 /dev/zero >"$rt/zeros-256"
head -c 512 /dev/zero | tr '\0' '\377' >"$rt/ones-512"
i=0
for f in "$out_dir"/reader/*.mig; do
    [[ -f "$f" ]] || continue
    head -c $((64 + 97 * i)) "$f" >"$rt/stream-prefix-$i"
    tail -c $((300 + 211 * i)) "$f" >"$rt/stream-suffix-$i"
    i=$((i + 1))
    ((i < 4)) || break
done
seq 1 300 | tr '\n' ' ' >"$rt/text"

# Seeds for harnesses without a dedicated recipe.
for name in "$@"; do
    case "$name" in
    reader | set | roundtrip) ;;
    *)
        rm -rf "${out_dir:?}/$name"
        mkdir -p "$out_dir/$name"
        cp "$out_dir"/reader/* "$out_dir/$name"/ 2>/dev/null || true
        ;;
    esac
done

for d in "$out_dir"/*/; do
    n=$(find "$d" -type f | wc -l)
    echo "make-corpus: $(basename "$d"): $n seeds"
    if ((n == 0)); then
        echo "make-corpus: no seeds in $d" >&2
        exit 1
    fi
done
