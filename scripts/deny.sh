#!/usr/bin/env bash
# cargo-deny's offline checks of the dependency graph against deny.toml: licenses, bans, sources.
# Advisories are not checked here: that needs the RustSec database fetched from the network, which
# CI does not have. Installs the pinned cargo-deny if it is missing (idempotent): into
# /work/cache/tools when that is writable (kept between runs on the same machine), else ~/.cargo.
set -euo pipefail
cd "$(dirname "$0")/.."

version=0.20.2
if mkdir -p /work/cache/tools 2>/dev/null && [ -w /work/cache/tools ]; then
  root=/work/cache/tools
else
  root="${CARGO_HOME:-$HOME/.cargo}"
fi
deny="$root/bin/cargo-deny"

if [ ! -x "$deny" ] || [ "$("$deny" --version 2>/dev/null)" != "cargo-deny $version" ]; then
  echo "==> installing cargo-deny $version into $root (a few minutes, once per machine)"
  start=$(date +%s)
  # Its own target directory, so the install neither shares nor locks the workspace's.
  tmp=$(mktemp -d)
  CARGO_TARGET_DIR="$tmp" cargo install cargo-deny --locked --version "$version" --root "$root"
  rm -rf "$tmp"
  echo "==> cargo-deny $version installed in $(($(date +%s) - start)) s"
fi

echo "==> cargo deny check licenses bans sources ($("$deny" --version))"
"$deny" --locked check --hide-inclusion-graph licenses bans sources
