#!/usr/bin/env bash
# Live audit benchmark (issue 13): throughput (log entries per second) and peak RSS of
# `sealbridge audit --rpc URL --settlement ADDR --node URL` on a log of N entries.
#
# It starts an anvil and a development node on it (`sealbridge node --dev`, batch size 16384),
# puts N envelopes through it with `sealbridge load`, waits until every input settled, then runs
# the live audit under /usr/bin/time -v (GNU time) and prints: the log size, wall time of the
# audit, entries/s, and the audit's peak RSS. A benchmark, not a test: figures are printed,
# never asserted.
#
#   scripts/bench-audit.sh [N ...]        (default: 100000)
#
# Needs anvil (npm ci) and GNU time; builds the release binary unless SEALBRIDGE_BIN is set.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="${SEALBRIDGE_BIN:-}"
if [ -z "$BIN" ]; then
  echo "==> building the release binary" >&2
  (cd "$ROOT" && cargo build --release -q --bin sealbridge)
  BIN="$TARGET/release/sealbridge"
fi
ANVIL="${SEALBRIDGE_ANVIL:-$(ls "$ROOT"/node_modules/@foundry-rs/anvil-*/bin/anvil 2>/dev/null | head -1)}"
[ -x "$ANVIL" ] || { echo "no anvil: run npm ci" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "needs GNU time (/usr/bin/time)" >&2; exit 2; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
[ $# -gt 0 ] || set -- 100000
for N in "$@"; do
  WORK="$(mktemp -d)"
  AP=$(free_port); NP=$(free_port)
  "$ANVIL" --port "$AP" --silent >/dev/null 2>&1 &
  APID=$!
  trap 'kill $APID ${NPID:-} 2>/dev/null || true; rm -rf "$WORK"' EXIT
  for _ in $(seq 100); do curl -sf -X POST -H 'content-type: application/json' \
    --data '{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}' "http://127.0.0.1:$AP" >/dev/null && break; sleep 0.1; done
  # The development policy keeps at most 100,000 live nonces per sender: enough participants
  # that N envelopes are all accepted.
  P=$(( N / 90000 + 4 ))
  RUST_LOG=warn "$BIN" node --dev --chain "http://127.0.0.1:$AP" --data-dir "$WORK/data" \
    --listen "127.0.0.1:$NP" --participants "$P" --self-audit-interval 0 >/dev/null 2>"$WORK/node.err" &
  NPID=$!
  NODE="http://127.0.0.1:$NP"
  for _ in $(seq 600); do curl -sf "$NODE/v1/status" >/dev/null && break; sleep 0.2; done
  echo "==> N=$N: load" >&2
  "$BIN" load --node "$NODE" --chain "http://127.0.0.1:$AP" --allow-simulated --count "$N" \
    --concurrency 32 --json > "$WORK/load.json" || echo "load: some envelopes were refused" >&2
  echo "==> N=$N: waiting until every input settled" >&2
  for _ in $(seq 3000); do
    S=$(curl -sf "$NODE/v1/status" || echo '{}')
    python3 -c 'import json,sys; s=json.loads(sys.argv[1]); sys.exit(0 if s.get("accepted",0)>0 and s.get("accepted")==s.get("settled_inputs") else 1)' "$S" && break
    sleep 0.5
  done
  SETTLEMENT=$(curl -sf "$NODE/v1/enclave" | python3 -c 'import json,sys; print(json.load(sys.stdin)["settlement"])')
  echo "==> N=$N: live audit" >&2
  /usr/bin/time -v "$BIN" audit --rpc "http://127.0.0.1:$AP" --settlement "$SETTLEMENT" \
    --node "$NODE" --json > "$WORK/audit.json" 2> "$WORK/audit.time" || true
  python3 - "$WORK" "$N" <<'PY'
import json, re, sys
work, n = sys.argv[1], int(sys.argv[2])
r = json.load(open(f"{work}/audit.json"))
t = open(f"{work}/audit.time").read()
wall = t.split("Elapsed (wall clock) time (h:mm:ss or m:ss):")[1].split("\n")[0].strip()
parts = [float(p) for p in wall.split(":")]
secs = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", t).group(1))
size = r["summary"]["log_size"]
print(json.dumps({"envelopes": n, "log_entries": size, "audit_ok": r["ok"],
                  "audit_secs": round(secs, 2), "entries_per_sec": round(size / secs),
                  "peak_rss_mib": round(rss / 1024, 1),
                  "failed": [c["name"] for c in r["checks"] if c["status"] == "fail"]}))
PY
  kill $NPID $APID 2>/dev/null || true
  wait $NPID $APID 2>/dev/null || true
  rm -rf "$WORK"
  trap - EXIT
done
