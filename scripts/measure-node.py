#!/usr/bin/env python3
"""Measure the node the way issue 5 asks: sustained envelopes/s through HTTP with receipt latency
(`sealbridge load`), time until everything accepted has settled, and recovery time after a
`kill -9` with a long write-ahead log.

Everything runs on loopback: an anvil from npm (`npm ci`), `sealbridge node --dev` on it, and
`sealbridge load`. Figures are printed, never asserted (benchmarks, not tests).

    python3 scripts/measure-node.py [--count 30000] [--recovery-count 100000] [--enclave spawn]

Needs a release build: `cargo build --release --bin sealbridge` (the script builds it).
"""

import argparse
import glob
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def anvil_path():
    if os.environ.get("SEALBRIDGE_ANVIL"):
        return os.environ["SEALBRIDGE_ANVIL"]
    found = glob.glob(os.path.join(ROOT, "node_modules/@foundry-rs/anvil-*/bin/anvil"))
    if found:
        return found[0]
    return os.path.join(ROOT, "node_modules/.bin/anvil")


def get_json(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, json.load(r)


def ready(node):
    try:
        status, _ = get_json(node + "/readyz", timeout=1)
        return status == 200
    except Exception:
        return False


def wait_ready(node, proc, limit=120):
    started = time.monotonic()
    while not ready(node):
        if proc.poll() is not None:
            sys.exit(f"node exited with {proc.returncode}; see its log")
        if time.monotonic() - started > limit:
            sys.exit("node not ready in time")
        time.sleep(0.01)
    return time.monotonic() - started


def wait_settled(node, limit=600):
    started = time.monotonic()
    while True:
        _, s = get_json(node + "/v1/status")
        if s["pending_inputs"] == 0 and s["enclave_state_root"] == s["chain_state_root"]:
            return time.monotonic() - started, s
        if time.monotonic() - started > limit:
            return None, s
        time.sleep(0.1)


class Run:
    def __init__(self, exe, anvil_url, enclave, extra):
        self.exe, self.anvil_url, self.enclave, self.extra = exe, anvil_url, enclave, extra
        self.data = tempfile.mkdtemp(prefix="sealbridge-measure-")
        self.port = free_port()
        self.node = f"http://127.0.0.1:{self.port}"
        self.log = open(os.path.join(self.data, "node.log"), "ab")
        self.proc = None

    def start(self):
        cmd = [self.exe, "node", "--dev", "--chain", self.anvil_url, "--data-dir",
               os.path.join(self.data, "d"), "--listen", f"127.0.0.1:{self.port}",
               "--enclave", self.enclave] + self.extra
        if node_has_flag(self.exe, b"--self-audit-interval"):
            cmd += ["--self-audit-interval", "0"]  # the node's own audit would load the figures
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=self.log,
                                     env=dict(os.environ, RUST_LOG="info"), start_new_session=True)
        return wait_ready(self.node, self.proc)

    def kill9(self):
        # The whole process group: the node and, with --enclave spawn, its enclave child.
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill9()

    def load(self, count, concurrency):
        cmd = [self.exe, "load", "--node", self.node, "--allow-simulated", "--count", str(count),
               "--concurrency", str(concurrency), "--json"]
        if load_has_chain_flag(self.exe):
            cmd += ["--chain", self.anvil_url]
        out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        return json.loads(out.stdout.decode().strip().splitlines()[-1])

    def journal_records(self):
        db = sqlite3.connect(os.path.join(self.data, "d", "node.db"))
        try:
            return db.execute("SELECT count(*) FROM journal").fetchone()[0]
        finally:
            db.close()

    def recovered_line(self):
        with open(os.path.join(self.data, "node.log"), "rb") as f:
            lines = [l.decode(errors="replace") for l in f if b"enclave recovered" in l]
        if not lines:
            return None
        line = re.sub(r"\x1b\[[0-9;]*m", "", lines[-1]).strip()
        fields = dict(re.findall(r"(\w+)=(\d+)", line))
        return {k: int(v) for k, v in fields.items()}


_HAS_CHAIN = {}


_NODE_FLAGS = {}


def node_has_flag(exe, flag):
    if exe not in _NODE_FLAGS:
        h = subprocess.run([exe, "node", "--help"], stdout=subprocess.PIPE, check=True)
        _NODE_FLAGS[exe] = h.stdout
    return flag in _NODE_FLAGS[exe]


def load_has_chain_flag(exe):
    if exe not in _HAS_CHAIN:
        h = subprocess.run([exe, "load", "--help"], stdout=subprocess.PIPE, check=True)
        _HAS_CHAIN[exe] = b"--chain" in h.stdout
    return _HAS_CHAIN[exe]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=30000)
    ap.add_argument("--recovery-count", type=int, default=100000)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--enclave", default="spawn")
    ap.add_argument("--skip-build", action="store_true")
    args = ap.parse_args()

    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    if not args.skip_build:
        subprocess.run(["cargo", "build", "--release", "--locked", "--bin", "sealbridge"],
                       cwd=ROOT, check=True)
    exe = os.path.join(target, "release", "sealbridge")

    anvil_port = free_port()
    anvil = subprocess.Popen([anvil_path(), "--port", str(anvil_port), "--silent"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    anvil_url = f"http://127.0.0.1:{anvil_port}"
    runs = []
    report = {}
    try:
        time.sleep(1.0)
        # 1. Throughput and latency through HTTP, then time until all of it settled.
        r = Run(exe, anvil_url, args.enclave, [])
        runs.append(r)
        r.start()
        print(f"[1/2] load: {args.count} envelopes, --enclave {args.enclave}", file=sys.stderr)
        summary = r.load(args.count, args.concurrency)
        settled_after, status = wait_settled(r.node)
        report["throughput"] = {
            "enclave": args.enclave,
            "count": args.count,
            "concurrency": args.concurrency,
            "load": summary,
            "settled_s_after_load": settled_after,
            "status": status,
        }
        r.stop()

        # 2. Recovery: no snapshot since boot, N records in the journal, kill -9, restart.
        r = Run(exe, anvil_url, args.enclave, ["--snapshot-every", "1000000000"])
        runs.append(r)
        r.start()
        print(f"[2/2] recovery: {args.recovery_count} envelopes then kill -9", file=sys.stderr)
        r.load(args.recovery_count, args.concurrency)
        r.kill9()
        records = r.journal_records()
        to_ready = r.start()
        report["recovery"] = {
            "journal_records": records,
            "restart_to_readyz_s": to_ready,
            "enclave_recovered": r.recovered_line(),
        }
        settled_after, status = wait_settled(r.node)
        report["recovery"]["settled_s_after_restart"] = settled_after
        report["recovery"]["status"] = status
    finally:
        for r in runs:
            r.stop()
        anvil.terminate()
        anvil.wait()
    print(json.dumps(report, indent=2))
    for r in runs:
        shutil.rmtree(r.data, ignore_errors=True)


if __name__ == "__main__":
    main()
