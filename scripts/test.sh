#!/usr/bin/env bash
# The test command of README.md: the whole workspace except `*_slow` tests
# (run those with `cargo nextest run --workspace --profile slow`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# libnvrtc from the wheel setup.sh installed (the kernels' NVRTC compilation tests).
export LD_LIBRARY_PATH="${DUALCHAIN_NVRTC_DIR:-$HOME/.cache/dualchain-nvrtc}/nvidia/cu13/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
cargo nextest run --workspace "$@"
