#!/bin/sh
# Run every dnsd fuzz target for a while; fail loudly on the first crash.
#
#   agents/dnsd/fuzz/run.sh [SECONDS] [TARGET...]
#
# SECONDS per target (default 10, or $FUZZ_SECONDS); TARGETs default to all of them.
# Needs cargo-fuzz (installed with `cargo install cargo-fuzz --locked` when missing)
# and a nightly toolchain for -Zsanitizer (installed with rustup when missing; if
# that is impossible, the stable toolchain is used with RUSTC_BOOTSTRAP=1). The
# corpus lives in fuzz/corpus/<target> and grows across runs; a crash leaves its
# input in fuzz/artifacts/<target>/ and makes this script exit 1. Fixed crashes are
# kept in fuzz/regressions/<target>-<what> and replayed by every run.
set -eu

cd "$(dirname "$0")"
secs="${1:-${FUZZ_SECONDS:-10}}"
[ $# -gt 0 ] && shift
targets="$*"
[ -n "$targets" ] || targets="dhcp_packet dns_query dns_wire_cache dns_upstream_answer blocklist lease_log"

if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

toolchain="+nightly"
if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz: installing a minimal nightly toolchain" >&2
    if ! rustup toolchain install nightly --profile minimal; then
        echo "fuzz: no nightly; using stable with RUSTC_BOOTSTRAP=1" >&2
        toolchain=""
        export RUSTC_BOOTSTRAP=1
    fi
fi

# Our own target dir, so fuzz builds never contend with the workspace's.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR_FUZZ:-$HOME/.cache/hearth/target-dnsd-fuzz}"

# Seeds: a few valid inputs so every run starts deep in the parsers.
seed() { # target name bytes-as-printf-format
    mkdir -p "corpus/$1"
    # shellcheck disable=SC2059
    printf "$3" > "corpus/$1/$2"
}
seed blocklist hosts '# ads\n0.0.0.0 ads.example tracker.example.\n::1 ip6-localhost\nplain.example\n'
seed lease_log log '{"ip":"10.9.0.100","mac":"02:00:00:00:00:01","expires":1700,"hostname":"laptop"}\n{"ip":"10.9.0.101","expires":99}\n{"ip":"10.9.0.1'
# dig +qr nas.home.arpa A (with EDNS): the query bytes.
seed dns_query a '\000\001\001\040\000\001\000\000\000\000\000\001\003nas\004home\004arpa\000\000\001\000\001\000\000\051\004\320\000\000\000\000\000\000'
seed dns_wire_cache a '\000\001\001\000\000\001\000\000\000\000\000\000\003nas\004home\004arpa\000\000\001\000\001'
seed dns_upstream_answer a '\000\001\201\200\000\001\000\001\000\000\000\000\007example\004test\000\000\001\000\001\300\014\000\001\000\001\000\000\001\054\000\004\300\000\002\007'
# A DHCPDISCOVER from 02:00:00:00:00:01 asking for options 1, 3, 6, 42, 121.
seed dhcp_packet discover '\001\001\006\000\000\000\000\001\000\000\200\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\000\002\000\000\000\000\001\000\000\000\000\000\000\000\000\000\000'"$(printf '%0192d' 0 | sed 's/0/\\000/g')"'\143\202\123\143\065\001\001\067\005\001\003\006\052\171\377'

# Inputs that once crashed a target (fuzz/regressions/<target>-*) are always replayed.
for f in regressions/*; do
    [ -e "$f" ] || continue
    t="${f#regressions/}"
    t="${t%%-*}"
    mkdir -p "corpus/$t"
    cp "$f" "corpus/$t/"
done

status=0
for t in $targets; do
    echo "fuzz: $t for ${secs}s" >&2
    # dhcp_packet is built like the shipped binary, without debug assertions:
    # dhcproto 0.15 has `debug_assert!(len == 4)` on some option lengths it then
    # reads safely anyway (fuzz/regressions/dhcp_packet-bulk-lease-option-len), which
    # only a debug build turns into a panic. Every other target keeps them on.
    mode=""
    [ "$t" = dhcp_packet ] && mode="-O"
    # shellcheck disable=SC2086
    if ! cargo $toolchain fuzz run $mode "$t" "corpus/$t" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1; then
        echo "fuzz: $t FAILED (crash input in $(pwd)/artifacts/$t/)" >&2
        status=1
    fi
done
exit $status
