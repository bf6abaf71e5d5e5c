#!/usr/bin/env bash
# Issue 12's three figures in one run, on one machine state: handover time (drain to the
# successor's first statement) with N accepted-but-unsettled inputs, keyholder release time
# (challenge + evidence + release over HTTP on loopback) and 2-of-3 recovery, and X25519 beside
# X-Wing per operation (keygen, encaps, decaps, envelope seal/open).
# Usage: scripts/bench-lifecycle.sh [N] (default 100000). Prints one JSON object.
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-100000}"
target="${CARGO_TARGET_DIR:-target}"
echo "==> building (release: the handover bench and sealbridge; the keyholder test profile is optimized)" >&2
cargo build --release -q -p sealbridge-enclave --example bench_handover
cargo build --release -q -p sealbridge-cli --bin sealbridge
cargo test -q -p sealbridge-keyholder --test http --no-run 2>/dev/null
echo "==> handover with $n unsettled inputs" >&2
handover=$("$target/release/examples/bench_handover" "$n")
echo "==> keyholder release and recovery (HTTP on loopback)" >&2
keyholder=$(cargo test -q -p sealbridge-keyholder --test http -- --nocapture 2>/dev/null \
    | grep -o 'keyholder release over HTTP.*' || true)
echo "==> X25519 beside X-Wing (sealbridge bench --no-gas)" >&2
bench=$("$target/release/sealbridge" bench --no-gas --json)
HANDOVER="$handover" KEYHOLDER="$keyholder" BENCH="$bench" N="$n" python3 - <<'PY'
import json, os, re
k = os.environ["KEYHOLDER"]
m = re.search(r"release\): ([0-9.]+) ms; 2-of-3 recovery.*: ([0-9.]+) ms", k)
bench = json.loads(os.environ["BENCH"])
print(json.dumps({
    "command": f"scripts/bench-lifecycle.sh {os.environ['N']}",
    "handover": json.loads(os.environ["HANDOVER"]),
    "keyholder": {
        "release_ms": float(m.group(1)) if m else None,
        "recovery_2_of_3_ms": float(m.group(2)) if m else None,
    },
    "kem": bench.get("kem"),
    "envelopes_per_sec": bench.get("suites", bench.get("envelopes_per_sec")),
}, indent=2))
PY
