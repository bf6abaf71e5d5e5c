#!/usr/bin/env bash
# Keep the shared build cache from filling the disk. A debug build of this workspace links some
# sixty test executables of tens of megabytes each, and every change of a crate's hash leaves the
# old ones behind; on a shared disk that once ran a CI link step out of space (ld: Bus error).
# Only when free space is low: first remove incremental caches and test executables not rebuilt
# for an hour (cargo relinks them when needed), and if that is not enough, the whole cache.
set -euo pipefail
target="${CARGO_TARGET_DIR:-$(dirname "$0")/../target}"
want_gib="${SEALBRIDGE_MIN_FREE_GIB:-30}"
[ -d "$target" ] || exit 0
free_gib() { df -P -BG "$target" | awk 'NR==2 { sub("G", "", $4); print $4 }'; }
if [ "$(free_gib)" -ge "$want_gib" ]; then exit 0; fi
echo "==> $(free_gib) GiB free under $target (want $want_gib): pruning stale build outputs"
for profile in "$target"/debug "$target"/*/debug "$target"/release "$target"/*/release; do
  [ -d "$profile" ] || continue
  rm -rf "$profile/incremental"
  if [ -d "$profile/deps" ]; then
    find "$profile/deps" -maxdepth 1 -type f -perm -u+x ! -name '*.so' ! -name '*.rlib' ! -name '*.rmeta' \
      -mmin +60 -delete
  fi
done
if [ "$(free_gib)" -lt "$((want_gib / 3))" ]; then
  echo "==> still $(free_gib) GiB free: removing the whole build cache $target"
  rm -rf "$target"
fi
echo "==> $(free_gib) GiB free"
