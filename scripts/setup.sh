#!/usr/bin/env bash
# Installs the tools dualchain's build and tests need on a fresh Debian machine with Rust.
#   scripts/setup.sh           what the build and the tests need (the README's test command)
#   scripts/setup.sh --build   only what the build needs (the README's demo command)
set -euo pipefail

build_only=false
case "${1:-}" in
  --build) build_only=true ;;
  "") ;;
  *) echo "usage: $0 [--build]" >&2; exit 2 ;;
esac

need_apt=()
command -v cc >/dev/null 2>&1 || need_apt+=(build-essential)
command -v pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)
# bindgen (RocksDB's Rust bindings) needs libclang.
ls /usr/lib/llvm-*/lib/libclang.so* /usr/lib/x86_64-linux-gnu/libclang*.so* >/dev/null 2>&1 || need_apt+=(libclang-dev)
command -v c++ >/dev/null 2>&1 || need_apt+=(g++)
if ! $build_only; then
  # pip, for the NVRTC wheel below.
  python3 -m pip --version >/dev/null 2>&1 || need_apt+=(python3-pip)
  # The chaos tests: network namespaces and veth (iproute2), delay and loss through
  # NFQUEUE (iptables), a skewed wall clock (libfaketime).
  command -v ip >/dev/null 2>&1 || need_apt+=(iproute2)
  command -v iptables >/dev/null 2>&1 || need_apt+=(iptables)
  command -v faketime >/dev/null 2>&1 || need_apt+=(faketime)
  # The SMART Backend Services test with curl, as an integration engine would call a node
  # (scripts/fhir-smart-curl.sh: openssl signs the RS384 assertion).
  command -v curl >/dev/null 2>&1 || need_apt+=(curl)
  command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
  # The privacy officer's console is tested in headless Chromium through WebDriver
  # (scripts/console-check.py).
  command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
  command -v chromedriver >/dev/null 2>&1 || need_apt+=(chromium-driver)
  # The benchmark charts' text (bench's chart tests draw with it).
  [ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need_apt+=(fonts-dejavu-core)
fi
if ((${#need_apt[@]})); then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
  elif command -v sudo >/dev/null 2>&1; then
    sudo apt-get update -qq
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
  else
    echo "missing system packages: ${need_apt[*]} (install them with apt-get)" >&2
    exit 1
  fi
fi

if $build_only; then
  exit 0
fi

if ! cargo nextest --version >/dev/null 2>&1; then
  cargo install cargo-nextest --locked
fi
rustup component add rustfmt clippy >/dev/null 2>&1 || true

# NVRTC for the kernel tests: the kernels are compiled at run time, and CI compiles every
# one of them without a GPU. The nvidia-cuda-nvrtc wheel carries libnvrtc.so.13 and its
# builtins; scripts/test.sh puts its lib directory on LD_LIBRARY_PATH.
# --break-system-packages: Debian's pip refuses installs it does not manage (PEP 668) even
# with --target, which touches no system package; older pips do not know the flag.
pip_flags=(--quiet --disable-pip-version-check)
if python3 -m pip install --help 2>/dev/null | grep -q -- --break-system-packages; then
  pip_flags+=(--break-system-packages)
fi
nvrtc_dir="${DUALCHAIN_NVRTC_DIR:-$HOME/.cache/dualchain-nvrtc}"
if ! ls "$nvrtc_dir"/nvidia/cu13/lib/libnvrtc.so.13 >/dev/null 2>&1; then
  python3 -m pip install "${pip_flags[@]}" --target "$nvrtc_dir" "nvidia-cuda-nvrtc>=13,<14"
fi

# fhirclient (SMART on FHIR's Python client, FHIR R4 models): the tests validate every FHIR
# answer with it and start it against a node (scripts/fhir-validate.py).
py_dir="${DUALCHAIN_PY_DIR:-$HOME/.cache/dualchain-py}"
# PyJWT with cryptography signs the SMART Backend Services assertions of the stock-client
# test (scripts/fhir-smart-client.py); Selenium drives Chromium for the console's test
# (scripts/console-check.py). One install, so that --target keeps them all.
if ! ls "$py_dir"/fhirclient-4.4.0.dist-info "$py_dir"/PyJWT-2.10.1.dist-info \
  "$py_dir"/selenium-4.40.0.dist-info >/dev/null 2>&1; then
  python3 -m pip install "${pip_flags[@]}" --upgrade --target "$py_dir" "fhirclient==4.4.0" "PyJWT[crypto]==2.10.1" \
    "selenium==4.40.0"
fi
