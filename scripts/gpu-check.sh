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
#                                     --quick`; writes summary.json, the logs and the bench
#                                     rows to DIR ($OUT, else gpu-check-out/)
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
    git rev-parse HEAD >"$CARRY/commit" 2>/dev/null || true
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
    export RUST_BACKTRACE=1
    local device="none"
    if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
        device=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | head -1)
    fi
    echo "gpu-check run: device: $device"
    local started=$SECONDS results=() resources="[]"

    # name, binary, args, limit (s), needs a GPU
    step() {
        local name=$1 bin=$2 args=$3 limit=$4 gpu=$5 rc status t0=$SECONDS
        if [ "$gpu" = 1 ] && [ "$device" = none ]; then
            status="not run (no GPU)"
            rc=-1
        else
            set +e
            # shellcheck disable=SC2086
            timeout "$limit" "$CARRY/bin/$bin" $args >"$out/logs/$name.log" 2>&1
            rc=$?
            set -e
            case $rc in
                0) status=pass ;;
                124) status="timeout after ${limit} s" ;;
                *) status="fail (exit $rc)" ;;
            esac
        fi
        echo "  $name: $status ($((SECONDS - t0)) s)"
        results+=("{\"step\":$(jstr "$name"),\"status\":$(jstr "$status"),\"seconds\":$((SECONDS - t0))}")
    }

    # Every ignored test of the GPU binary, one process each (a hang or a crash costs only
    # its own step); the 2^24 MSM gets the longest limit.
    local tests
    tests=$("$CARRY/bin/gpu" --list --ignored 2>/dev/null | sed -n 's/: test$//p')
    local first=1
    for t in $tests; do
        # The first test compiles every kernel unit for the device (cached for the rest).
        local limit=150
        [ "$first" = 1 ] && limit=300
        [ "$t" = msm_g1_at_2_24_matches_cpu ] && limit=240
        first=0
        step "gpu::$t" gpu "--exact $t --ignored --test-threads=1 --nocapture" "$limit" 1
    done
    if [ -f "$out/logs/gpu::kernel_resources_are_reported.log" ]; then
        resources=$(sed -n 's/^KERNEL_RESOURCES //p' "$out/logs/gpu::kernel_resources_are_reported.log" | head -1)
        resources=${resources:-[]}
    fi
    step "nvrtc" nvrtc "--test-threads=1" 300 0
    step "bench kernels --quick" bench "kernels --quick --out $out/bench-kernels.json" 300 0

    local commit="unknown"
    [ -f "$CARRY/commit" ] && commit=$(cat "$CARRY/commit")
    local joined
    joined=$(IFS=,; echo "${results[*]}")
    printf '{"device":%s,"commit":%s,"seconds":%d,"steps":[%s],"kernel_resources":%s}\n' \
        "$(jstr "$device")" "$(jstr "$commit")" $((SECONDS - started)) "$joined" "$resources" >"$out/summary.json"
    echo "gpu-check run: $out/summary.json"
    if grep -q '"status":"fail\|"status":"timeout' "$out/summary.json"; then
        exit 1
    fi
}

case "${1:-}" in
    build) build ;;
    run) shift; run "$@" ;;
    *) echo "usage: scripts/gpu-check.sh build | run [DIR]" >&2; exit 2 ;;
esac
