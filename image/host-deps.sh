#!/usr/bin/env bash
# Installs the host packages Hearth needs to build images and boot them, on Debian or
# Ubuntu, and the Rust musl target. Safe to re-run: it installs only what is missing.
#
#   qemu-system-x86   boots images (TCG, or KVM when usable)
#   gpgv              verifies the Debian archive's InRelease signatures
#   debian-archive-keyring   the keys it verifies against (on Ubuntu: install it too)
#   musl-tools        C toolchain for static musl builds of init and the agents
#   busybox-static, cpio, zstd, xz-utils   test images and inspecting outputs
#   gpg               the test suite signs a fake mirror with a throwaway key
#   iproute2, isc-dhcp-client, bind9-dnsutils, dnsmasq-base, nftables, netcat-openbsd
#                     real peers for the agents' network-namespace tests
#   dhcpcd-base       the third real DHCP client of dnsd's namespace tests
#   mdadm             stord's compatibility scenario reads members with mdadm --examine
#   g++               cargo-fuzz's libFuzzer build (dnsd's fuzz targets)
#   dnsperf, kea-admin (perfdhcp)   the peers `dnsd bench` drives against dnsmasq
#   dbus-daemon       heartbeatd's test registers on a real bus
set -euo pipefail

packages=(qemu-system-x86 gpgv gpg debian-archive-keyring musl-tools busybox-static cpio zstd xz-utils ca-certificates
  e2fsprogs dbus-daemon iproute2 isc-dhcp-client bind9-dnsutils dnsmasq-base nftables netcat-openbsd
  dhcpcd-base mdadm g++ dnsperf kea-admin)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ] || [ "${CI:-}" = true ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "host-deps: apt-get update"
  $sudo apt-get update -qq
  if [ ${#missing[@]} -gt 0 ]; then
    echo "host-deps: installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
fi

if ! rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl; then
  echo "host-deps: rustup target add x86_64-unknown-linux-musl"
  rustup target add x86_64-unknown-linux-musl
fi
