#!/usr/bin/env bash
# Witness cosigning latency (issue 13): a development node on anvil with three witnesses
# (`sealbridge witness serve`, loopback), N envelopes put through it; /metrics is sampled every
# 50 ms and each distinct `sealbridge_witness_round_micros` (one round: every witness asked to
# cosign the newest checkpoint, with its consistency proof, and answering) is collected. Prints
# rounds seen, median, p90 and max (ms), and the cosignatures on the final /checkpoint.
# A benchmark, not a test: figures are printed, never asserted.
#
#   scripts/bench-witness.sh [N]      (default: 20000)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="${SEALBRIDGE_BIN:-}"
if [ -z "$BIN" ]; then
  (cd "$ROOT" && cargo build --release -q --bin sealbridge)
  BIN="$TARGET/release/sealbridge"
fi
ANVIL="${SEALBRIDGE_ANVIL:-$(ls "$ROOT"/node_modules/@foundry-rs/anvil-*/bin/anvil 2>/dev/null | head -1)}"
[ -x "$ANVIL" ] || { echo "no anvil: run npm ci" >&2; exit 2; }
N="${1:-20000}"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
WORK="$(mktemp -d)"
PIDS=()
trap 'kill ${PIDS[@]} 2>/dev/null || true; rm -rf "$WORK"' EXIT
AP=$(free_port); NP=$(free_port)
"$ANVIL" --port "$AP" --silent >/dev/null 2>&1 & PIDS+=($!)
sleep 1
WITNESS_ARGS=()
WPORTS=()
for i in 0 1 2; do
  WP=$(free_port); WPORTS+=("$WP")
  V=$("$BIN" witness init --data-dir "$WORK/w$i" --name "witness-$i.example" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["vkey"])')
  WITNESS_ARGS+=(--witness "$V@http://127.0.0.1:$WP")
done
RUST_LOG=warn "$BIN" node --dev --chain "http://127.0.0.1:$AP" --data-dir "$WORK/data" \
  --listen "127.0.0.1:$NP" --participants 8 --self-audit-interval 0 "${WITNESS_ARGS[@]}" >/dev/null 2>"$WORK/node.err" & PIDS+=($!)
NODE="http://127.0.0.1:$NP"
for _ in $(seq 600); do curl -sf "$NODE/v1/status" >/dev/null && break; sleep 0.2; done
LOG_VKEY=$("$BIN" witness log-vkey --node "$NODE")
for i in 0 1 2; do
  RUST_LOG=warn "$BIN" witness serve --data-dir "$WORK/w$i" --log "$LOG_VKEY" \
    --listen "127.0.0.1:${WPORTS[$i]}" >/dev/null 2>&1 & PIDS+=($!)
done
python3 -c '
import sys, time, urllib.request
last = None
while True:
    try:
        m = urllib.request.urlopen(sys.argv[1] + "/metrics", timeout=2).read().decode()
        v = [l.split()[1] for l in m.splitlines() if l.startswith("sealbridge_witness_round_micros ")]
        if v and v[0] != last and v[0] != "0":
            last = v[0]
            print(last, flush=True)
    except Exception:
        pass
    time.sleep(0.05)
' "$NODE" > "$WORK/samples.txt" &
SAMPLER=$!
PIDS+=($SAMPLER)
"$BIN" load --node "$NODE" --chain "http://127.0.0.1:$AP" --allow-simulated --count "$N" --json > "$WORK/load.json" || true
sleep 3
kill $SAMPLER 2>/dev/null || true
wait $SAMPLER 2>/dev/null || true
python3 - "$WORK/samples.txt" "$NODE" <<'PY'
import json, statistics, sys, urllib.request
vals = [int(l) for l in open(sys.argv[1]) if l.strip()]
note = urllib.request.urlopen(sys.argv[2] + "/checkpoint").read().decode()
cosigs = sum(1 for l in note.split("\n") if l.startswith("\u2014 witness-"))
if not vals:
    print(json.dumps({"rounds": 0})); sys.exit()
vals.sort()
ms = lambda v: round(v / 1000, 2)
print(json.dumps({"rounds_seen": len(vals), "median_ms": ms(statistics.median(vals)),
                  "p90_ms": ms(vals[int(0.9 * (len(vals) - 1))]), "max_ms": ms(vals[-1]),
                  "cosignatures_on_checkpoint": cosigs}))
PY
