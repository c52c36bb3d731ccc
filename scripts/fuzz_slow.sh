#!/usr/bin/env bash
# The long fuzzing run: scripts/fuzz.sh with an hour in total, split evenly across the
# targets named (default: every target). Seconds in total: FUZZ_TOTAL_SECONDS (3600).
set -euo pipefail
cd "$(dirname "$0")/.."
total="${FUZZ_TOTAL_SECONDS:-3600}"
if [ $# -gt 0 ]; then
    count=$#
else
    count=$(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -c -v -x -e dualchain-fuzz -e seeds)
fi
exec scripts/fuzz.sh --seconds $(( total / count )) "$@"
