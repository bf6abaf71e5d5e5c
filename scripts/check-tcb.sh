#!/usr/bin/env bash
# STYLE: "A test (or CI step) fails if tokio, hyper, reqwest or an RPC client enters a TCB crate's
# tree." Checks the full normal-dependency tree of every TCB crate, as cargo resolves it for that
# crate alone.
set -euo pipefail
cd "$(dirname "$0")/.."
tcb=(sealbridge-proto sealbridge-seal sealbridge-log sealbridge-programs sealbridge-enclave)
forbidden='^(tokio|tokio-util|mio|hyper|hyper-util|h2|reqwest|ureq|axum|tower|alloy-provider|alloy-rpc-client|alloy-transport|jsonrpsee|rusqlite|libsqlite3-sys|revm|async-trait|futures-executor) v'
status=0
for c in "${tcb[@]}"; do
  found=$(cargo tree -p "$c" -e normal --prefix none --locked 2>/dev/null | grep -E "$forbidden" | sort -u || true)
  if [ -n "$found" ]; then
    echo "TCB violation: $c depends on:"; echo "$found" | sed 's/^/    /'
    status=1
  fi
done
if [ $status -eq 0 ]; then echo "TCB dependency check: ${#tcb[@]} crates clean"; fi
exit $status
