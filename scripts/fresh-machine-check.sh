#!/usr/bin/env bash
# Checks the README's two set-up commands on a fresh Debian machine with only Rust: a
# Debian bookworm root made by debootstrap (with ca-certificates and curl, as a machine
# that installed Rust by rustup has them), this machine's stable Rust toolchain copied in,
# an empty cargo cache, and a fresh clone of HEAD. Then, inside it, as a new user would:
#   scripts/demo.sh --records 16     (the README's first command)
#   scripts/test.sh                  (the README's second command)
# Needs root (debootstrap, chroot) and the Debian mirror. The build inside starts from
# nothing, RocksDB's C++ included: expect an hour or more on two cores.
#
#   scripts/fresh-machine-check.sh [--demo-only | --test-only] [--keep]
#   FRESH_ROOT=/var/tmp/dualchain-fresh (default) holds the machine; the base system is
#   kept between runs in $FRESH_ROOT.base.tar and the work tree is new each time.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
root="${FRESH_ROOT:-/var/tmp/dualchain-fresh}"
demo_only=false
test_only=false
keep=false
for a in "$@"; do
  case "$a" in
    --demo-only) demo_only=true ;;
    --test-only) test_only=true ;;
    --keep) keep=true ;;
    *) echo "usage: $0 [--demo-only | --test-only] [--keep]" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "run as root (debootstrap and chroot)" >&2; exit 1; }
command -v debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap; }

cleanup() {
  for m in dev/pts dev proc sys; do umount -l "$root/$m" 2>/dev/null || true; done
  if ! $keep; then rm -rf "$root"; fi
}
trap cleanup EXIT

rm -rf "$root"
if [ -f "$root.base.tar" ]; then
  mkdir -p "$root" && tar -C "$root" -xf "$root.base.tar"
else
  debootstrap --variant=minbase --include=ca-certificates,curl bookworm "$root"
  tar -C "$root" -cf "$root.base.tar" .
fi

# Rust as rustup installs it: the stable toolchain, nothing else (no nextest, no nightly).
toolchain=$(rustup toolchain list | awk '/^stable/ {print $1; exit}')
mkdir -p "$root/root/.rustup/toolchains" "$root/root/.cargo/bin"
cp -a "$HOME/.rustup/toolchains/$toolchain" "$root/root/.rustup/toolchains/"
printf 'version = "12"\ndefault_toolchain = "%s"\nprofile = "minimal"\n[overrides]\n' "$toolchain" \
  >"$root/root/.rustup/settings.toml"
for b in rustup cargo rustc rustfmt cargo-fmt cargo-clippy clippy-driver rustdoc; do
  [ -e "$HOME/.cargo/bin/$b" ] && cp -a "$HOME/.cargo/bin/$b" "$root/root/.cargo/bin/"
done
cp /etc/resolv.conf "$root/etc/resolv.conf"
# The site's own certificate authorities (a TLS-inspecting egress proxy, say) are part of
# any machine on this network, fresh or not: without them no registry answers.
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  mkdir -p "$root/usr/local/share/ca-certificates"
  cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
  chroot "$root" update-ca-certificates >/dev/null
fi

# A fresh clone of what is committed, with shared/ beside it as CI has it.
git clone -q --no-hardlinks "$repo" "$root/root/work/main"
[ -d "$repo/../shared" ] && cp -a "$repo/../shared" "$root/root/work/shared"

mount -t proc proc "$root/proc"
mount --rbind /sys "$root/sys"
mount --rbind /dev "$root/dev"

run() {
  echo "== fresh machine: $*"
  chroot "$root" /usr/bin/env -i HOME=/root TERM=dumb PATH=/root/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    /bin/bash -c "cd /root/work/main && $*"
}
if ! $test_only; then
  started=$(date +%s)
  run scripts/demo.sh --records 16
  echo "== the demo command passed ($(( $(date +%s) - started )) s)"
fi
if ! $demo_only; then
  started=$(date +%s)
  run scripts/test.sh
  echo "== the test command passed ($(( $(date +%s) - started )) s)"
fi
echo "== fresh-machine check passed"
