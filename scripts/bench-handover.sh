#!/usr/bin/env bash
# Handover time (issue 12): drain to the successor's first statement with N accepted-but-unsettled
# inputs in the open batch, in process, release build. Usage: scripts/bench-handover.sh [N ...]
# (default 100000). Prints one JSON object per N (see crates/enclave/examples/bench_handover.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -gt 0 ] || set -- 100000
cargo build --release -q -p sealbridge-enclave --example bench_handover
bin="${CARGO_TARGET_DIR:-target}/release/examples/bench_handover"
for n in "$@"; do
    "$bin" "$n"
done
