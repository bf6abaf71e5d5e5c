#!/usr/bin/env bash
# Cold (collateral fetched from a loopback PCS/KDS stub) and cached verification times per TEE kind
# (SGX, TDX, SNP) beside dcap-qvl called directly on the same quote and collateral, in one run
# (crates/attest/benches/collateral.rs). Prints a Markdown table for docs/ATTESTATION.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_INCREMENTAL=0
echo "machine: $(nproc) cores, $(uname -m), $(date -u +%Y-%m-%dT%H:%MZ)"
cargo bench -q -p sealbridge-attest --features stub --bench collateral
