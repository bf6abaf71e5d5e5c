#!/usr/bin/env bash
# Reproducible build of the enclave binary (issue 14 part 5): builds `sealbridge` (release,
# `--locked`, the toolchain pinned in rust-toolchain.toml) twice, from two copies of the
# committed source in different directories, and compares the SHA-256 of the two binaries.
# Exit 0 and one JSON line when they are identical, 1 otherwise.
#
#   scripts/repro-build.sh [OUT_DIR]     (OUT_DIR keeps both binaries; default a temp dir)
#
# What makes it reproducible: source paths remapped (--remap-path-prefix for the source tree and
# CARGO_HOME), no debug info, symbols stripped, no build id, SOURCE_DATE_EPOCH from the commit,
# dependencies pinned by Cargo.lock. Both builds share one target directory of their own
# (REPRO_TARGET_DIR, default /work/cache/target-repro or ~/.cache/sealbridge/target-repro):
# dependencies from crates.io are compiled once (their paths are the same in both builds), every
# workspace crate is compiled twice, once per source directory. The container recipe is
# deploy/repro/Dockerfile (the same command in a pinned image).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUT=${1:-$(mktemp -d)}
mkdir -p "$OUT"
if [ -z "${REPRO_TARGET_DIR:-}" ]; then
  if mkdir -p /work/cache/target-repro 2>/dev/null; then REPRO_TARGET_DIR=/work/cache/target-repro
  else REPRO_TARGET_DIR="$HOME/.cache/sealbridge/target-repro"; mkdir -p "$REPRO_TARGET_DIR"; fi
fi
COMMIT=$(git rev-parse HEAD)
export SOURCE_DATE_EPOCH
SOURCE_DATE_EPOCH=$(git log -1 --format=%ct "$COMMIT")
CARGO_HOME=${CARGO_HOME:-$HOME/.cargo}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

build() { # $1: a directory name; prints the binary's path
  local src="$WORK/$1/sealbridge-src"
  mkdir -p "$src"
  git archive "$COMMIT" | tar -x -C "$src"
  cp -r "$ROOT/contracts/out" "$src/contracts/" 2>/dev/null || true
  ( cd "$src" && \
    CARGO_TARGET_DIR="$REPRO_TARGET_DIR" CARGO_INCREMENTAL=0 \
    CARGO_PROFILE_RELEASE_DEBUG=0 CARGO_PROFILE_RELEASE_STRIP=symbols \
    RUSTFLAGS="--remap-path-prefix=$src=/sealbridge --remap-path-prefix=$CARGO_HOME=/cargo -C link-arg=-Wl,--build-id=none" \
    cargo build --release --locked --quiet --bin sealbridge >&2 )
  cp "$REPRO_TARGET_DIR/release/sealbridge" "$OUT/sealbridge-$1"
  echo "$OUT/sealbridge-$1"
}

echo "==> reproducible build of $COMMIT: first copy" >&2
a=$(build a)
echo "==> second copy, another directory" >&2
b=$(build second-build-elsewhere)
ha=$(sha256sum "$a" | cut -d' ' -f1)
hb=$(sha256sum "$b" | cut -d' ' -f1)
same=$([ "$ha" = "$hb" ] && echo true || echo false)
echo "{\"commit\": \"$COMMIT\", \"rustc\": \"$(rustc --version)\", \"sha256\": [\"$ha\", \"$hb\"], \"identical\": $same, \"bytes\": $(stat -c %s "$a")}"
[ "$same" = true ] || { echo "the two builds differ: diffoscope $a $b shows where" >&2; exit 1; }
