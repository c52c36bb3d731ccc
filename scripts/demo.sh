#!/usr/bin/env bash
# The demo command of README.md: installs what the build needs (scripts/setup.sh --build),
# then runs the demo consortium's whole sharing flow. Arguments go to the demo
# (`scripts/demo.sh --records 128 --seed 7`; `--help` lists them).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --build
exec cargo run --release --locked -p dualchain-testkit --bin dualchain-demo -- "$@"
