#!/usr/bin/env bash
# The test command of README.md: the whole workspace except `*_slow` tests
# (run those with `cargo nextest run --workspace --profile slow`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo nextest run --workspace "$@"
