#!/usr/bin/env bash
# Every pending GPU check in one command, in two halves:
#
#   scripts/gpu-check.sh build        here, with Rust and no GPU: builds the GPU and NVRTC
#                                     test binaries and the bench binary, stripped, into
#                                     gpu-carry/ (ignored by git; under 64 MiB)
#   scripts/gpu-check.sh run [DIR]    on a machine with the CUDA toolkit and no Rust: runs
#                                     every GPU test (one process each, each under its own
#                                     time limit), the G1 MSM at 2^24 against the CPU, the
#                                     device's known-answer self-test and `bench kernels
#                                     --quick`; writes summary.json, logs.tar.gz, the bench
#                                     rows and the compiled kernels (kernels.tar.gz) to DIR
#                                     ($OUT, else gpu-check-out/)
#
# `run` reads, where set: GPU_CHECK_BUDGET (s, default 480: the whole run's limit; a step
# gets at most what is left), GPU_CHECK_ONLY (an extended regex: steps whose names do not
# match are reported as not run), GPU_CHECK_BENCH_ARGS (default `--quick`; e.g.
# `--max-log-size 24` for the full suite). A kernels.tar.gz from an earlier run put in
# gpu-carry/ saves compiling the kernels again on the same toolkit.
#
# Without a GPU, `run` still runs what needs none (NVRTC compiles every kernel, the bench's
# CPU rows) and reports the GPU tests as not run, so CI keeps both halves working.
set -euo pipefail
cd "$(dirname "$0")/.."

CARRY=gpu-carry
LIMIT_BYTES=$((64 << 20))

build() {
    export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/dualchain-target}"
    rm -rf "$CARRY"
    mkdir -p "$CARRY/bin"
    local list
    list=$(mktemp)
    cargo test -p dualchain-kernels --test gpu --test nvrtc --no-run --message-format=json >"$list"
    cargo build -p bench --message-format=json >>"$list"
    python3 - "$list" "$CARRY/bin" <<'EOF'
import json, shutil, sys
wanted = {("gpu", "test"), ("nvrtc", "test"), ("bench", "bin")}
for line in open(sys.argv[1]):
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") != "compiler-artifact" or not m.get("executable"):
        continue
    t = m["target"]
    key = (t["name"], t["kind"][0])
    if key in wanted:
        shutil.copy(m["executable"], f"{sys.argv[2]}/{t['name']}")
        wanted.discard(key)
if wanted:
    sys.exit(f"not built: {sorted(wanted)}")
EOF
    rm -f "$list"
    strip --strip-debug "$CARRY"/bin/*
    local bytes
    bytes=$(du -cb "$CARRY"/bin/* | tail -1 | cut -f1)
    echo "gpu-check build: $(ls "$CARRY/bin" | tr '\n' ' ')($((bytes >> 20)) MiB) in $CARRY/bin"
    if [ "$bytes" -gt "$LIMIT_BYTES" ]; then
        echo "gpu-check build: the binaries exceed 64 MiB" >&2
        exit 1
    fi
    { git rev-parse HEAD && git diff --quiet HEAD || echo "(with uncommitted changes)"; } 2>/dev/null | tr "\n" " " >"$CARRY/commit" || true
}

# JSON string (quotes, backslashes and control characters escaped).
jstr() {
    printf '"%s"' "$(printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' | tr -d '\000-\037')"
}

run() {
    local out="${1:-${OUT:-gpu-check-out}}"
    mkdir -p "$out/logs"
    [ -x "$CARRY/bin/gpu" ] || { echo "no $CARRY/bin/gpu: run scripts/gpu-check.sh build first" >&2; exit 1; }
    # NVRTC: the CUDA toolkit's, else the wheel scripts/setup.sh installs.
    for d in /usr/local/cuda/lib64 "$HOME/.cache/dualchain-nvrtc/nvidia/cu13/lib"; do
        [ -d "$d" ] && export LD_LIBRARY_PATH="$d:${LD_LIBRARY_PATH:-}"
    done
    export DUALCHAIN_KERNEL_CACHE="${TMPDIR:-/tmp}/dualchain-gpu-check-kernels"
    mkdir -p "$DUALCHAIN_KERNEL_CACHE"
    # Modules compiled by an earlier run on the same toolkit (its kernels.tar.gz, put in
    # gpu-carry/): the cache key holds the NVRTC version and options, so a different
    # toolkit compiles again.
    [ -f "$CARRY/kernels.tar.gz" ] && tar -xzf "$CARRY/kernels.tar.gz" -C "$DUALCHAIN_KERNEL_CACHE"
    export RUST_BACKTRACE=1
    # The whole run's time budget (s): each step gets at most what is left of it, and a
    # step that cannot start in time is reported as not run.
    local budget="${GPU_CHECK_BUDGET:-480}"
    local device="none"
    if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
        device=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | head -1)
        nvidia-smi >"$out/logs/nvidia-smi.log" 2>&1 || true
    fi
    echo "gpu-check run: device: $device; budget ${budget} s"
    local started=$SECONDS results=() resources="[]"

    # name, binary, args, limit (s), needs a GPU
    step() {
        local name=$1 bin=$2 args=$3 limit=$4 gpu=$5 rc status t0=$SECONDS
        local left=$((budget - (SECONDS - started)))
        [ "$left" -lt "$limit" ] && limit=$left
        if [ -n "${GPU_CHECK_ONLY:-}" ] && ! grep -Eq "$GPU_CHECK_ONLY" <<<"$name"; then
            status="not run (GPU_CHECK_ONLY)"
        elif [ "$gpu" = 1 ] && [ "$device" = none ]; then
            status="not run (no GPU)"
        elif [ "$limit" -lt 10 ]; then
            status="not run (time budget spent)"
        else
            set +e
            # shellcheck disable=SC2086
            timeout -k 5 "$limit" "$CARRY/bin/$bin" $args >"$out/logs/$name.log" 2>&1
            rc=$?
            set -e
            case $rc in
                0) status=pass ;;
                124 | 137) status="timeout after ${limit} s" ;;
                *) status="fail (exit $rc)" ;;
            esac
        fi
        echo "  $name: $status ($((SECONDS - t0)) s)"
        results+=("{\"step\":$(jstr "$name"),\"status\":$(jstr "$status"),\"seconds\":$((SECONDS - t0))}")
    }

    # Every ignored test of the GPU binary, one process each (a hang or a crash costs only
    # its own step). The cheapest come first: the first one opened compiles every kernel
    # unit for the device (cached for the rest), and a broken device shows at once; the
    # proofs and the 2^24 MSM come last.
    local tests ordered=""
    tests=$("$CARRY/bin/gpu" --list --ignored 2>/dev/null | sed -n 's/: test$//p')
    for t in kernel_resources_are_reported the_device_passes_its_self_test; do
        grep -qx "$t" <<<"$tests" && ordered="$ordered $t"
    done
    for t in $tests; do
        case " $ordered " in *" $t "*) ;; *)
            case $t in cuda_proofs_equal_cpu_proofs_and_verify | msm_g1_at_2_24_matches_cpu) ;; *) ordered="$ordered $t" ;; esac
        esac
    done
    for t in cuda_proofs_equal_cpu_proofs_and_verify msm_g1_at_2_24_matches_cpu; do
        grep -qx "$t" <<<"$tests" && ordered="$ordered $t"
    done
    local first=1
    for t in $ordered; do
        local limit=90
        [ "$first" = 1 ] && limit=180
        case $t in cuda_proofs_equal_cpu_proofs_and_verify | msm_g1_at_2_24_matches_cpu) limit=150 ;; esac
        first=0
        step "gpu::$t" gpu "--exact $t --ignored --test-threads=1 --nocapture" "$limit" 1
    done
    if [ -f "$out/logs/gpu::kernel_resources_are_reported.log" ]; then
        resources=$(sed -n 's/^KERNEL_RESOURCES //p' "$out/logs/gpu::kernel_resources_are_reported.log" | head -1)
        resources=${resources:-[]}
    fi
    local bench_args="${GPU_CHECK_BENCH_ARGS:---quick}"
    step "bench kernels $bench_args" bench "kernels $bench_args --out $out/bench-kernels.json" 360 0
    # NVRTC for every target architecture; on a GPU machine the tests above already
    # compiled every unit for this device, so this runs last, in what is left.
    step "nvrtc" nvrtc "--test-threads=1" 300 0
    # The compiled modules come back for the next run on the same toolkit.
    tar -czf "$out/kernels.tar.gz" -C "$DUALCHAIN_KERNEL_CACHE" . 2>/dev/null || true
    (cd "$out/logs" && tar -czf ../logs.tar.gz . && cd .. && rm -rf logs)

    local commit="unknown"
    [ -f "$CARRY/commit" ] && commit=$(cat "$CARRY/commit")
    local joined
    joined=$(IFS=,; echo "${results[*]}")
    printf '{"device":%s,"commit":%s,"seconds":%d,"steps":[%s],"kernel_resources":%s}\n' \
        "$(jstr "$device")" "$(jstr "$commit")" $((SECONDS - started)) "$joined" "$resources" >"$out/summary.json"
    echo "gpu-check run: $out/summary.json, $out/logs.tar.gz"
    if grep -q '"status":"fail\|"status":"timeout' "$out/summary.json"; then
        exit 1
    fi
}

case "${1:-}" in
    build) build ;;
    run) shift; run "$@" ;;
    *) echo "usage: scripts/gpu-check.sh build | run [DIR]" >&2; exit 2 ;;
esac
