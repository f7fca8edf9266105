#!/usr/bin/env bash
# The test command (README "Test"): host packages, formatting and lints, every unit and
# fixture test, then a real image built by `hearth build --test-agent` booted in QEMU
# by each scenario in qemu-tests/tests/. Fails loudly on the first red step.
set -euo pipefail
cd "$(dirname "$0")/.."

image/host-deps.sh

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hearth/target}"
export HEARTH_CACHE="${HEARTH_CACHE:-$HOME/.cache/hearth}"
export CARGO_TERM_COLOR=never

step() { printf '\n=== %s ===\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "unit, fixture and host integration tests"
cargo test --workspace --locked

step "privileged host tests (root; each creates its own network namespaces)"
[ "$(id -u)" -eq 0 ] || { echo "run-all: the privileged tests need root" >&2; exit 1; }
cargo test --locked -p hearth-init -- --ignored
cargo test --locked -p dnsd --test dhcp_netns -- --ignored --test-threads=1
cargo test --locked -p dnsd --test dns_netns -- --ignored --test-threads=1
cargo test --locked -p netd --test netns -- --ignored --test-threads=1
cargo test --locked -p netd --test dhcp_wan -- --ignored --test-threads=1

step "fuzz dnsd's parsers of untrusted input (10 s per target; a crash fails)"
agents/dnsd/fuzz/run.sh 10

step "build the test image (hearth build --test-agent)"
image_dir="$CARGO_TARGET_DIR/qemu-image"
cargo run --release --locked -p hearth -- build --test-agent --cache "$HEARTH_CACHE" --out "$image_dir"

step "image tests: reproducible rebuild (needs the Debian mirror and the cache)"
HEARTH_IMAGE_TESTS=1 cargo test --locked -p hearth -- --ignored --test-threads=1

step "QEMU scenarios"
HEARTH_QEMU_TESTS=1 HEARTH_TEST_IMAGE="$image_dir" \
  cargo test --locked -p hearth-qemu-tests -- --ignored --test-threads=2
