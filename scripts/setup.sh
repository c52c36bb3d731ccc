#!/usr/bin/env bash
# Installs the tools dualchain's build and tests need on a fresh Debian machine with Rust.
set -euo pipefail

need_apt=()
command -v cc >/dev/null 2>&1 || need_apt+=(build-essential)
command -v pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)
# bindgen (RocksDB's Rust bindings) needs libclang.
ls /usr/lib/llvm-*/lib/libclang.so* /usr/lib/x86_64-linux-gnu/libclang*.so* >/dev/null 2>&1 || need_apt+=(libclang-dev)
command -v c++ >/dev/null 2>&1 || need_apt+=(g++)
if ((${#need_apt[@]})); then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && apt-get install -y -qq "${need_apt[@]}"
  else
    echo "missing system packages: ${need_apt[*]} (install them with apt-get)" >&2
    exit 1
  fi
fi

if ! cargo nextest --version >/dev/null 2>&1; then
  cargo install cargo-nextest --locked
fi
rustup component add rustfmt clippy >/dev/null 2>&1 || true

# NVRTC for the kernel tests: the kernels are compiled at run time, and CI compiles every
# one of them without a GPU. The nvidia-cuda-nvrtc wheel carries libnvrtc.so.13 and its
# builtins; scripts/test.sh puts its lib directory on LD_LIBRARY_PATH.
nvrtc_dir="${DUALCHAIN_NVRTC_DIR:-$HOME/.cache/dualchain-nvrtc}"
if ! ls "$nvrtc_dir"/nvidia/cu13/lib/libnvrtc.so.13 >/dev/null 2>&1; then
  python3 -m pip install --quiet --disable-pip-version-check --target "$nvrtc_dir" "nvidia-cuda-nvrtc>=13,<14"
fi
