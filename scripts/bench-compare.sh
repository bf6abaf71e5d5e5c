#!/usr/bin/env bash
# Compare two release builds in one run (the machine is noisy: alternate them, same conditions):
# enclave envelopes/s (`sealbridge bench --no-gas`) and receipt latency through a `--dev` node
# (`sealbridge load`, 5,000 envelopes, 16 clients). Usage:
#   scripts/bench-compare.sh BASE_BIN HEAD_BIN [ROUNDS] [HEAD_NODE_FLAGS]
# e.g. HEAD_NODE_FLAGS="--rate-limit 0" when the head has the gateway's rate limit and the base
# does not. Prints one line per run; files go to ${OUT:-target/bench-compare}.
set -uo pipefail
base=${1:?base binary}; head=${2:?head binary}; rounds=${3:-3}; head_flags=${4:-}
out=${OUT:-target/bench-compare}; rm -rf "$out"; mkdir -p "$out"
for round in $(seq "$rounds"); do
  for b in base head; do
    bin=$base; [ $b = head ] && bin=$head
    "$bin" bench --no-gas --envelopes 20000 --dh-ops 1000 --json > "$out/bench-$b-$round.json" 2>/dev/null
    python3 -c "import json;d=json.load(open('$out/bench-$b-$round.json'));print('bench $b $round envelopes/s', round(d['enclave_envelopes_per_sec']))"
  done
done
port=18900
for round in $(seq "$rounds"); do
  for b in base head; do
    bin=$base; flags=""; [ $b = head ] && { bin=$head; flags=$head_flags; }
    port=$((port + 1)); dir="$out/node-$b-$round"
    # shellcheck disable=SC2086
    "$bin" node --dev --data-dir "$dir" --listen 127.0.0.1:$port $flags > "$dir.log" 2>&1 &
    pid=$!
    for _ in $(seq 60); do curl -sf http://127.0.0.1:$port/readyz > /dev/null && break; sleep 1; done
    "$bin" load --node http://127.0.0.1:$port --count 5000 --concurrency 16 --allow-simulated --json \
      > "$out/load-$b-$round.json" 2>/dev/null
    python3 -c "import json;d=json.load(open('$out/load-$b-$round.json'));print('load $b $round envelopes/s', round(d['envelopes_per_s']), 'latency ms', {k: round(v,2) for k,v in d['latency_ms'].items()})"
    kill -TERM $pid; wait $pid
  done
done
