#!/usr/bin/env bash
# Settlement pace benchmark (issue 11, part 8): does settlement keep pace with ingest?
#
# For each block time (default: 2 s, then 12 s) it starts an anvil with `--block-time B`, a
# default development node on it (`sealbridge node --dev`), and `sealbridge load` offering
# RATE envelopes/s for SECS seconds. It samples `/v1/status` at every new block and prints:
#   - the largest backlog (accepted inputs not yet final) in blocks' worth of offered load
#     (RATE × B inputs), during the load and after it;
#   - the drain time: blocks (and seconds) from the end of the load until nothing accepted is
#     pending any more (null if it has not drained within DRAIN_LIMIT blocks);
#   - gas per settled input: the gas of every settle transaction (receipts of the transactions
#     sent to the Settlement contract during the run) over the inputs they settled.
# Goals (issue 11): backlog ≤ 3 blocks' worth and drain ≤ 3 blocks at 2-second blocks; ≤ 25 gas
# per input at 12-second blocks. A benchmark, not a test: figures are printed, never asserted.
#
#   scripts/bench-settlement.sh [--json] [--rate 1000] [--secs 20] [--block-times "2 12"]
#                               [--bin PATH] [--drain-limit 30] [--concurrency 64]
#
# Everything runs on loopback. Needs anvil (npm ci: node_modules/@foundry-rs/anvil-*, or
# SEALBRIDGE_ANVIL) and a sealbridge binary (--bin, default: the release build under
# $CARGO_TARGET_DIR, built with `cargo build --release --bin sealbridge` unless --bin is given).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export ROOT
exec python3 - "$@" <<'PY'
import argparse, glob, json, os, shutil, signal, socket, subprocess, sys, tempfile, time
import urllib.request

ROOT = os.environ["ROOT"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def anvil_path():
    if os.environ.get("SEALBRIDGE_ANVIL"):
        return os.environ["SEALBRIDGE_ANVIL"]
    found = glob.glob(os.path.join(ROOT, "node_modules/@foundry-rs/anvil-*/bin/anvil"))
    return found[0] if found else shutil.which("anvil") or sys.exit("no anvil: run npm ci")


def get_json(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.load(r)


def rpc(url, method, params):
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    req = urllib.request.Request(url, body, {"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        v = json.load(r)
    if "error" in v:
        raise RuntimeError(f"{method}: {v['error']}")
    return v["result"]


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def run_one(exe, block_time, args, keep):
    data = tempfile.mkdtemp(prefix=f"sealbridge-bench-{block_time}s-")
    anvil_port, node_port = free_port(), free_port()
    chain = f"http://127.0.0.1:{anvil_port}"
    node = f"http://127.0.0.1:{node_port}"
    procs = []
    try:
        anvil = subprocess.Popen(
            [anvil_path(), "--port", str(anvil_port), "--block-time", str(block_time), "--silent"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        procs.append(anvil)
        for _ in range(200):
            try:
                rpc(chain, "eth_chainId", [])
                break
            except Exception:
                time.sleep(0.05)
        node_log = open(os.path.join(data, "node.log"), "ab")
        nproc = subprocess.Popen(
            [exe, "node", "--dev", "--chain", chain, "--data-dir", os.path.join(data, "d"),
             "--listen", f"127.0.0.1:{node_port}", "--self-audit-interval", "0"],
            stdout=node_log, stderr=node_log, start_new_session=True,
            env=dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "info")))
        procs.append(nproc)
        started = time.monotonic()
        while True:
            try:
                with urllib.request.urlopen(node + "/readyz", timeout=1) as r:
                    if r.status == 200:
                        break
            except Exception:
                pass
            if nproc.poll() is not None:
                sys.exit(f"node exited with {nproc.returncode}; see {data}/node.log")
            if time.monotonic() - started > 180:
                sys.exit(f"node not ready in 180 s; see {data}/node.log")
            time.sleep(0.05)
        count = args.rate * args.secs
        log(f"[{block_time} s blocks] node ready; load: {count} envelopes at {args.rate}/s")
        load_out = open(os.path.join(data, "load.json"), "wb")
        load = subprocess.Popen(
            [exe, "load", "--node", node, "--chain", chain, "--allow-simulated", "--rate",
             str(args.rate), "--count", str(count), "--concurrency", str(args.concurrency),
             "--json"], stdout=load_out, stderr=subprocess.DEVNULL, start_new_session=True)
        procs.append(load)
        per_block = args.rate * block_time
        samples, last_block = [], None
        load_start = load_end = None  # block numbers
        load_start_t = load_end_t = None
        drained_block = drained_t = None
        first_block = int(rpc(chain, "eth_blockNumber", []), 16)
        base_accepted = None
        while True:
            b = int(rpc(chain, "eth_blockNumber", []), 16)
            if b != last_block:
                last_block = b
                s = get_json(node + "/v1/status")
                if base_accepted is None:
                    base_accepted = s["accepted"]
                now = time.monotonic()
                load_done = load.poll() is not None
                if load_start is None and s["accepted"] > base_accepted:
                    load_start, load_start_t = b, now
                if load_done and load_end is None:
                    load_end, load_end_t = b, now
                samples.append({
                    "block": b, "t": round(now - started, 2), "accepted": s["accepted"],
                    "pending_inputs": s["pending_inputs"], "settled_inputs": s["settled_inputs"],
                    "last_signed": s["last_signed_sequence"],
                    "last_settled": s["last_settled_sequence"],
                    "backlog_blocks": round(s["pending_inputs"] / per_block, 3),
                    "load_running": not load_done,
                })
                if not args.json:
                    log(f"  block {b}: pending {s['pending_inputs']:>6} "
                        f"({s['pending_inputs'] / per_block:.2f} blocks' worth), settled "
                        f"{s['settled_inputs']:>6}, signed {s['last_signed_sequence']}, "
                        f"final {s['last_settled_sequence']}{'' if load_done else ' (load)'}")
                if (load_end is not None and s["pending_inputs"] == 0
                        and s["last_signed_sequence"] == s["last_settled_sequence"]):
                    drained_block, drained_t = b, now
                    break
                if load_end is not None and b - load_end >= args.drain_limit:
                    break
            time.sleep(0.05)
        load.wait()
        load_out.close()
        try:
            with open(os.path.join(data, "load.json")) as f:
                summary = json.loads(f.read().strip().splitlines()[-1])
        except Exception:
            summary = None
        status = get_json(node + "/v1/status")
        # Gas of every settle transaction of the run: the statements the node settled (their
        # transactions from /v1/settlements), each transaction's gasUsed from its receipt, over
        # the inputs those statements carry.
        gas, txs, settled, statements, seen = 0, 0, 0, 0, set()
        per_statement = []
        nxt = 1
        while True:
            page = get_json(f"{node}/v1/settlements?from={nxt}&limit=1000")["statements"]
            if not page:
                break
            for st in page:
                nxt = st["sequence"] + 1
                if not st["included"] or not st["tx_hash"]:
                    continue
                statements += 1
                settled += st["input_count"]
                if st["tx_hash"] in seen:
                    continue
                seen.add(st["tx_hash"])
                rc = rpc(chain, "eth_getTransactionReceipt", [st["tx_hash"]])
                if rc:
                    used = int(rc["gasUsed"], 16)
                    gas += used
                    txs += 1
                    per_statement.append({"sequence": st["sequence"], "inputs": st["input_count"],
                                          "gas": used, "block": st["block_number"]})
        during = [s for s in samples if load_start is not None and s["block"] >= load_start]
        max_backlog = max((s["pending_inputs"] for s in during), default=0)
        return {
            "block_time_s": block_time,
            "offered_rate": args.rate,
            "load_secs": args.secs,
            "load": summary,
            "inputs_per_block_offered": per_block,
            "max_backlog_inputs": max_backlog,
            "max_backlog_blocks": round(max_backlog / per_block, 3),
            "max_backlog_blocks_during_load": round(max(
                (s["pending_inputs"] for s in during if s["load_running"]), default=0)
                / per_block, 3),
            "pending_at_load_end": next((s["pending_inputs"] for s in samples
                                         if s["block"] == load_end), None),
            "drain_blocks": None if drained_block is None else drained_block - load_end,
            "drain_secs": None if drained_t is None else round(drained_t - load_end_t, 2),
            "statements_settled": statements,
            "settle_txs": txs,
            "settle_gas": gas,
            "settled_inputs": settled,
            "gas_per_settled_input": round(gas / settled, 2) if settled else None,
            # Without the run's first and last statement (ramp-up and drain: a statement costs
            # about the same whatever it carries): what a sustained load pays.
            "gas_per_input_sustained": (lambda mid: round(sum(x["gas"] for x in mid) / max(
                1, sum(x["inputs"] for x in mid)), 2) if len(mid) else None)(
                [x for x in per_statement if x["inputs"] > 0][1:-1]),
            "statements": per_statement,
            "final_status": {k: status[k] for k in ("accepted", "settled_inputs", "pending_inputs",
                                                     "last_signed_sequence",
                                                     "last_settled_sequence")},
            "samples": samples if args.samples else len(samples),
            "data_dir": data if keep else None,
        }
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGINT)
                    p.wait(timeout=15)
                except Exception:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait()
        if not keep:
            shutil.rmtree(data, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description="settlement pace benchmark (issue 11, part 8)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--rate", type=int, default=1000, help="envelopes/s offered")
    ap.add_argument("--secs", type=int, default=20, help="seconds of load")
    ap.add_argument("--block-times", default="2 12", help="anvil block times to run, in s")
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--drain-limit", type=int, default=30,
                    help="blocks after the load to wait for the backlog to drain")
    ap.add_argument("--bin", help="sealbridge binary (default: build the release one)")
    ap.add_argument("--samples", action="store_true", help="include every sample in the JSON")
    ap.add_argument("--keep", action="store_true", help="keep the data dirs (node logs)")
    args = ap.parse_args()
    exe = args.bin
    if not exe:
        target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
        subprocess.run(["cargo", "build", "--release", "--locked", "--bin", "sealbridge"],
                       cwd=ROOT, check=True)
        exe = os.path.join(target, "release", "sealbridge")
    report = {"goals": {"max_backlog_blocks_at_2s": 3, "drain_blocks_at_2s": 3,
                        "gas_per_input_at_12s": 25}, "runs": []}
    for bt in [int(x) for x in args.block_times.split()]:
        report["runs"].append(run_one(exe, bt, args, args.keep))
    if args.json:
        print(json.dumps(report))
    else:
        for r in report["runs"]:
            print(f"{r['block_time_s']:>3} s blocks: max backlog {r['max_backlog_blocks']} blocks' "
                  f"worth ({r['max_backlog_inputs']} inputs), drain {r['drain_blocks']} blocks "
                  f"({r['drain_secs']} s) after the load, {r['settle_txs']} settle txs, "
                  f"{r['gas_per_settled_input']} gas per settled input "
                  f"({r['gas_per_input_sustained']} without the first and last statement); load "
                  f"{(r['load'] or {}).get('envelopes_per_s')} envelopes/s")


if __name__ == "__main__":
    main()
PY
