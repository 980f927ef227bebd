# SPDX-License-Identifier: BSD-3-Clause OR GPL-2.0-only
# bash completion for the migstream tools: migstream-dump, -verify,
# -extract, -synth, -bench, -replay, -record and -archive.  Installed under
# each tool's name in share/bash-completion/completions/ (bash-completion
# loads a file by the command's name); sourcing it by hand registers all of
# them.
#
# The option lists follow each tool's --help; tests/cli/completion.sh
# fails when they differ, so they cannot go stale.

# Options of the reader every decoding tool shares (tools/tool_common.c):
# the format, payload and trailer options, and one --max-NAME per limit
# of MS_LIMIT_LIST (include/migstream.h).
_migstream_reader_opts="--format --payload --final-offset --vmdesc
    --max-record-payload --max-devices --max-images --max-name-length
    --max-compat-length --max-channels --max-packets --max-buffered-bytes
    --max-vmdesc-bytes --max-sections --max-ram-blocks --max-nesting
    --max-decompress-bytes --max-zstd-window"

# Each tool's own options.
_migstream_opts_dump="--json --summary --records --pages --state
    --no-payloads --bandwidth --channels --quiet --help --version
    $_migstream_reader_opts"
_migstream_opts_verify="--verbose --quiet --expect-machine
    --expect-page-bits --expect-uuid --expect-capability --expect-field
    --no-payloads --salvage --help --version $_migstream_reader_opts"
_migstream_opts_extract="--ram --device --out --config --phase --verbose
    --salvage --quiet --help --version $_migstream_reader_opts"
_migstream_opts_synth="--stdout --example --raw --return-path --qemu
    --multifd --mapped-ram --postcopy --qemu-ram --devices --kind
    --initial-size --middle --middle-size --final-size --chunk-size
    --packet-size --channels --final-transport --compress --seed
    --vendor-record --switchover-ack --expect-dir --compress-multifd
    --qemu-version --uuid --ram-size --ram-passes --preempt --help
    --version"
_migstream_opts_bench="--json --size --reps --case --help --version"
_migstream_opts_replay="--to --rate --wait --help --version"
_migstream_opts_record="--listen --to --out --count --idle --quiet --help
    --version"
_migstream_opts_archive="--output --unpack --list --help --version"

# The fixed lists some options take.
_migstream_formats="auto migstream qemu-main qemu-multifd libvirt-save
    qemu-preempt qemu-return-path qemu-cpr"
_migstream_payloads="auto mlx5 virtio hisi_acc qat xe pds raw"
_migstream_kinds="raw mlx5 virtio hisi_acc qat xe pds"
_migstream_bench_cases="verify-memory verify-64k-slices parse-only write
    reassemble-4ch-stable reassemble-4ch-copying verify-zlib-chunks
    qemu-list-ram qemu-extract-ram multifd-zlib-1 multifd-zlib-2
    hostile-min-records hostile-empty-records"

# _migstream_values TOOL OPTION CUR: complete OPTION's value into
# COMPREPLY.  Returns 1 when OPTION takes no value (complete options or
# files instead).
_migstream_values() {
    local tool=$1 opt=$2 cur=$3 words=""
    case "$tool:$opt" in
    *:--format) words=$_migstream_formats ;;
    *:--payload) words=$_migstream_payloads ;;
    synth:--kind) words=$_migstream_kinds ;;
    synth:--final-transport) words="chunks packets" ;;
    synth:--compress-multifd) words="none zlib zstd" ;;
    synth:--qemu-version) words="9.0 9.1 9.2 10.0" ;;
    extract:--phase) words="initial middle final" ;;
    bench:--case) words=$_migstream_bench_cases ;;
    replay:--to) words="tcp: unix: exec" ;;
    *:--vmdesc | extract:--out | extract:-o | extract:--config | \
        synth:--raw | synth:--qemu | synth:--preempt | synth:--return-path | \
        synth:-o | archive:--output | archive:-o)
        mapfile -t COMPREPLY < <(compgen -f -- "$cur")
        return 0
        ;;
    extract:--ram | synth:--expect-dir | record:--out | record:-o | \
        archive:--unpack)
        mapfile -t COMPREPLY < <(compgen -d -- "$cur")
        return 0
        ;;
    *:--final-offset | *:--max-* | dump:--bandwidth | dump:--channels | \
        verify:--expect-* | extract:--device | synth:--devices | \
        synth:--*-size | synth:--middle | synth:--channels | \
        synth:--compress | synth:--seed | synth:--multifd | \
        synth:--uuid | synth:--ram-passes | synth:--qemu-ram | \
        bench:--size | bench:--reps | replay:--rate | replay:--wait | \
        record:--listen | record:--to | record:--count | record:--idle)
        COMPREPLY=() # a number or a name: nothing to offer
        return 0
        ;;
    *) return 1 ;;
    esac
    mapfile -t COMPREPLY < <(compgen -W "$words" -- "$cur")
    return 0
}

_migstream() {
    local tool=${1##*/}
    tool=${tool#migstream-}
    local cur=${COMP_WORDS[COMP_CWORD]} prev="" opt=""
    [ "$COMP_CWORD" -gt 0 ] && prev=${COMP_WORDS[COMP_CWORD - 1]}
    COMPREPLY=()
    # --opt=value: bash splits at '=' (COMP_WORDBREAKS), so the words are
    # --opt, =, value (or --opt, = while the value is empty).
    if [ "$cur" = "=" ]; then
        opt=$prev
        cur=""
    elif [ "$prev" = "=" ] && [ "$COMP_CWORD" -gt 1 ]; then
        opt=${COMP_WORDS[COMP_CWORD - 2]}
    elif [[ $cur == --*=* ]]; then # '=' not a word break here
        opt=${cur%%=*}
        cur=${cur#*=}
    else
        opt=$prev
    fi
    if [[ $opt == -* ]] && _migstream_values "$tool" "$opt" "$cur"; then
        return 0
    fi
    if [[ $cur == -* ]]; then
        local var=_migstream_opts_$tool
        mapfile -t COMPREPLY < <(compgen -W "${!var}" -- "$cur")
        return 0
    fi
    # operands: the stream files (bench and record take none)
    [ "$tool" = bench ] || [ "$tool" = record ] && return 0
    mapfile -t COMPREPLY < <(compgen -f -- "$cur")
}

complete -o filenames -F _migstream migstream-dump migstream-verify \
    migstream-extract migstream-synth migstream-bench migstream-replay \
    migstream-record migstream-archive
