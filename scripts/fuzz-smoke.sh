#!/usr/bin/env bash
# Short bounded fuzz run of every parser of untrusted bytes (cargo-fuzz on stable via RUSTC_BOOTSTRAP).
# Usage: scripts/fuzz-smoke.sh [seconds per target, default 20]
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs=${1:-20}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
v=../vectors
# Seed corpora with the real vectors.
seed() { d="corpus/$1"; shift; mkdir -p "$d"; cp "$@" "$d/" 2>/dev/null || true; }
seed dcap_quote $v/sgx/*.bin $v/tdx/*.bin
seed dcap_collateral $v/sgx/*.collateral.json $v/tdx/*.collateral.json
seed snp_report $v/snp/*.bin
seed nitro_document $v/nitro/*.cose
for t in dcap_quote dcap_collateral snp_report nitro_document sim_quote policy_json \
         envelope receipt boundary_frame checkpoint_note obligation audit_inputs; do
  echo "==> fuzz $t (${secs}s)"
  mkdir -p corpus/$t
  cargo fuzz run "$t" "corpus/$t" -- -max_total_time="$secs" -max_len=16384
done
