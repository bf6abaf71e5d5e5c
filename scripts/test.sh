#!/usr/bin/env bash
# The whole test suite, from a fresh clone. Installs what it needs (idempotent):
#   - the contract toolchain from npm (solc-js 0.8.37, OpenZeppelin 5, anvil), pinned in package-lock.json;
#   - Debian's chromium (headless browser test of the audit view), when it is missing;
#   - Debian's faketime (the real-TEE production test runs at the collateral's time), when missing;
#   - the TypeScript SDK's dependencies (npm workspace sdk/ts: viem, @hpke/*, cborg, @noble/*,
#     typescript), pinned in the same package-lock.json;
# then checks that the committed contract artifacts are what solc produces, and runs every Rust test.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages, each installed once when its command is missing: `need CMD PACKAGE WHY`.
need() {
  command -v "$1" >/dev/null 2>&1 && return 0
  echo "==> apt-get install $2 ($3)"
  if [ "$(id -u)" = 0 ]; then as_root=(); else as_root=(sudo); fi
  export DEBIAN_FRONTEND=noninteractive
  "${as_root[@]}" apt-get install -y -q "$2" >/dev/null \
    || { "${as_root[@]}" apt-get update -q >/dev/null && "${as_root[@]}" apt-get install -y -q "$2" >/dev/null; }
}
# Chromium: the browser test of the web audit view (crates/cli/tests/audit_web.rs).
need chromium chromium "the audit view's browser test"
# libfaketime: the real-TEE production test (crates/cli/tests/tee_production.rs) runs its chain,
# verifiers, keyholders and nodes at a time inside the validity of the real Intel collateral and
# AWS document in vectors/ (signed in 2023–2025; they cannot be re-signed).
need faketime faketime "the real-TEE production test"

# npm toolchain: reinstall only when package-lock.json changed since the last install.
stamp=node_modules/.sealbridge-lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "==> npm ci (contract toolchain, TypeScript SDK)"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$want" > "$stamp"
fi

echo "==> TypeScript SDK (sdk/ts): build and node --test against test-vectors/"
npm test --silent -w sdk/ts

echo "==> contract artifacts are fresh (solc $(node -e 'console.log(require("solc/package.json").version)'))"
node contracts/build.mjs --check

echo "==> dependencies declared once in the workspace, none unused"
python3 scripts/check-deps.py

echo "==> TCB crates are free of async runtimes, network and RPC clients"
bash scripts/check-tcb.sh

bash scripts/prune-target.sh

echo "==> cargo test (workspace, all targets)"
cargo test --workspace --all-targets --locked
echo "==> cargo test --doc"
cargo test --workspace --doc --locked
