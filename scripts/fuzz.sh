#!/usr/bin/env bash
# Coverage-guided fuzzing (fuzz/README.md): builds every target of fuzz/ once with
# `cargo +nightly fuzz`, runs each for a fixed time on a temporary copy of its committed seed
# corpus (the committed corpus never grows here), fails on any crash, and prints per target
# the executions, exec/s, coverage (libFuzzer's `cov:` edges and `ft:` features) and corpus
# size, as a table on stdout and in ${FUZZ_REPORT:-target/fuzz-report.md}.
#
#   scripts/fuzz.sh [--seconds N] [--no-build] [target...]    (default: 20 s, every target)
#
# The fuzz build has its own target directory (${FUZZ_TARGET_DIR:-~/.cache/dualchain-fuzz-target}).
# RocksDB's C++ takes minutes to compile: unless ROCKSDB_LIB_DIR is set, the librocksdb.a the
# main build produced (under $CARGO_TARGET_DIR, or ~/.cache/dualchain-target) is copied once
# next to the fuzz build and linked; on a machine without one it is compiled.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

seconds=20
build=1
targets=()
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) seconds="$2"; shift 2 ;;
        --seconds=*) seconds="${1#*=}"; shift ;;
        --no-build) build=0; shift ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
        *) targets+=("$1"); shift ;;
    esac
done

target_dir="${FUZZ_TARGET_DIR:-$HOME/.cache/dualchain-fuzz-target}"
# Where the main build (which may have produced librocksdb.a) puts its artefacts.
main_target="${DUALCHAIN_TARGET_DIR:-${CARGO_TARGET_DIR:-$HOME/.cache/dualchain-target}}"
report="${FUZZ_REPORT:-$root/target/fuzz-report.md}"
mkdir -p "$target_dir" "$(dirname "$report")"
# The fuzz crate is its own workspace with its own target directory, whatever the caller uses.
export CARGO_TARGET_DIR="$target_dir"
# Progress bars and log lines of the crates, once per input, would drown libFuzzer's output.
export DUALCHAIN_PROGRESS=off

if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

if [ -z "${ROCKSDB_LIB_DIR:-}" ]; then
    # Keyed by the librocksdb-sys version the fuzz build links (the main build pins the same).
    version=$(grep -A1 '^name = "librocksdb-sys"' fuzz/Cargo.lock | sed -n 's/^version = "\(.*\)"/\1/p')
    cached="$target_dir/rocksdb-lib/$version"
    if [ ! -f "$cached/librocksdb.a" ]; then
        found=$(ls -t "$main_target"/*/build/librocksdb-sys-*/out/librocksdb.a 2>/dev/null | head -n 1 || true)
        if [ -n "$found" ]; then
            mkdir -p "$cached"
            cp "$found" "$cached/librocksdb.a.tmp" && mv "$cached/librocksdb.a.tmp" "$cached/librocksdb.a"
            echo "fuzz.sh: linking RocksDB from $found"
        fi
    fi
    if [ -f "$cached/librocksdb.a" ]; then
        export ROCKSDB_LIB_DIR="$cached" ROCKSDB_STATIC=1
    else
        echo "fuzz.sh: no prebuilt librocksdb.a; compiling RocksDB (several minutes)"
    fi
fi

all=$(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v -x -e dualchain-fuzz -e seeds)
if [ ${#targets[@]} -eq 0 ]; then
    read -r -a targets <<<"$(echo $all)"
fi
for t in "${targets[@]}"; do
    if ! grep -q -x -e "$t" <<<"$all"; then
        echo "fuzz.sh: no fuzz target $t (targets: $(echo $all))" >&2
        exit 2
    fi
done

# --sanitizer none: every crate the targets reach forbids `unsafe` (only `kernels` has
# any, and no target reaches it), so AddressSanitizer would find nothing the Rust checks do
# not, and it costs build time and halves the executions. Panics, overflows (checks on),
# timeouts and memory blow-ups are still caught by libFuzzer.
if [ "$build" = 1 ]; then
    start=$(date +%s)
    cargo +nightly fuzz build --sanitizer none
    echo "fuzz.sh: built the fuzz targets in $(( $(date +%s) - start )) s"
fi
bin_dir="$target_dir/x86_64-unknown-linux-gnu/release"

# libFuzzer's log of each target is kept (target/fuzz-logs/<target>.log); the corpus copies are not.
logs="${FUZZ_LOG_DIR:-$root/target/fuzz-logs}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$logs"
failed=()
rows=()
for t in "${targets[@]}"; do
    corpus="$work/corpus-$t"
    mkdir -p "$corpus" "fuzz/artifacts/$t"
    seeds=0
    if [ -d "fuzz/corpus/$t" ]; then
        cp fuzz/corpus/"$t"/* "$corpus"/ 2>/dev/null || true
        seeds=$(ls "fuzz/corpus/$t" | wc -l)
    fi
    echo "fuzz.sh: $t for ${seconds} s ($seeds seeds)"
    set +e
    "$bin_dir/$t" "$corpus" -max_total_time="$seconds" -print_final_stats=1 -timeout=30 -rss_limit_mb=4096 \
        -artifact_prefix="fuzz/artifacts/$t/" >"$logs/$t.log" 2>&1
    rc=$?
    set -e
    stat() { sed -n "s/^stat::$1: *//p" "$logs/$t.log" | tail -n 1; }
    last=$(grep -E ' cov: [0-9]+ ft: [0-9]+' "$logs/$t.log" | tail -n 1 || true)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    corp=$(sed -n 's/.* corp: \([0-9]*\/[0-9A-Za-z]*\).*/\1/p' <<<"$last")
    result=ok
    if [ $rc -ne 0 ]; then
        result="FAILED (exit $rc)"
        failed+=("$t")
        echo "---- $t: libFuzzer exited with $rc; the end of its log:" >&2
        tail -n 60 "$logs/$t.log" >&2
        ls -1 "fuzz/artifacts/$t" >&2 || true
    fi
    rows+=("| $t | $seconds | $(stat number_of_executed_units) | $(stat average_exec_per_sec) | ${cov:-?} | ${ft:-?} | ${corp:-?} | $seeds | $result |")
done

{
    echo "# Fuzzing report"
    echo
    echo "$(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(uname -m), $(nproc) cores"
    echo
    echo "| target | s | execs | exec/s | cov | ft | corpus (units/bytes) | seeds | result |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
    printf '%s\n' "${rows[@]}"
} >"$report"
cat "$report"
echo "fuzz.sh: report in $report"

if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz.sh: crashes in ${failed[*]} (inputs under fuzz/artifacts/); reproduce with" >&2
    echo "  $bin_dir/<target> fuzz/artifacts/<target>/<file>" >&2
    exit 1
fi
