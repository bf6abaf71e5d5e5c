// Sealbridge audit view (issue 13). Renders what `sealbridge audit --serve` audited, or what
// the node audited of itself when it serves this page at /audit (api/view, relative to the
// page's base), and verifies a pasted receipt in this browser: the receipt's COSE_Sign1 Ed25519
// signature, the checkpoint note's signature and the RFC 9162 inclusion proof, with WebCrypto
// only (no framework, no build step), against the Ed25519 keys of the enclaves the audit found
// registered on chain. Nothing the server says about a receipt is taken on trust.
"use strict";

const $ = (id) => document.getElementById(id);
const enc = new TextEncoder();

function fromHex(h) {
  h = h.trim().replace(/^0x/, "");
  if (h.length % 2 !== 0 || /[^0-9a-fA-F]/.test(h)) throw new Error("not hex");
  const out = new Uint8Array(h.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(h.substr(2 * i, 2), 16);
  return out;
}
const toHex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
const fromB64 = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
const concat = (...parts) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
};
const equal = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);

async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

async function ed25519Verify(publicKey, signature, message) {
  const key = await crypto.subtle.importKey("raw", publicKey, { name: "Ed25519" }, false, ["verify"]);
  return crypto.subtle.verify({ name: "Ed25519" }, key, signature, message);
}

// ---- CBOR (RFC 8949): the subset a receipt uses -------------------------------------------
function cborDecode(bytes) {
  let pos = 0;
  const arg = (info) => {
    if (info < 24) return info;
    const n = { 24: 1, 25: 2, 26: 4, 27: 8 }[info];
    if (!n || pos + n > bytes.length) throw new Error("bad CBOR length");
    let v = 0n;
    for (let i = 0; i < n; i++) v = (v << 8n) | BigInt(bytes[pos++]);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error("CBOR integer too large");
    return Number(v);
  };
  const item = () => {
    if (pos >= bytes.length) throw new Error("truncated CBOR");
    const b = bytes[pos++];
    const major = b >> 5, info = b & 31;
    const a = arg(info);
    switch (major) {
      case 0: return a;
      case 1: return -1 - a;
      case 2: case 3: {
        if (pos + a > bytes.length) throw new Error("truncated CBOR string");
        const s = bytes.slice(pos, pos + a); pos += a;
        return major === 2 ? s : new TextDecoder().decode(s);
      }
      case 4: { const out = []; for (let i = 0; i < a; i++) out.push(item()); return out; }
      case 5: { const m = new Map(); for (let i = 0; i < a; i++) { const k = item(); m.set(k, item()); } return m; }
      case 6: return { tag: a, value: item() };
      default: throw new Error("unsupported CBOR item");
    }
  };
  const v = item();
  if (pos !== bytes.length) throw new Error("trailing bytes after CBOR item");
  return v;
}

function cborHead(major, len) {
  if (len < 24) return Uint8Array.of((major << 5) | len);
  if (len < 256) return Uint8Array.of((major << 5) | 24, len);
  if (len < 65536) return Uint8Array.of((major << 5) | 25, len >> 8, len & 255);
  return Uint8Array.of((major << 5) | 26, len >>> 24, (len >> 16) & 255, (len >> 8) & 255, len & 255);
}
const cborBytes = (b) => concat(cborHead(2, b.length), b);
const cborText = (s) => { const b = enc.encode(s); return concat(cborHead(3, b.length), b); };

// ---- receipts (RFC 9052 COSE_Sign1, tag 18; docs/PROTOCOL.md) -----------------------------
const RECEIPT_CONTEXT = enc.encode("sealbridge/v1/receipt");

function parseReceipt(bytes) {
  let v = cborDecode(bytes);
  if (v && v.tag === 18) v = v.value;
  if (!Array.isArray(v) || v.length !== 4) throw new Error("not a COSE_Sign1 array");
  const [protectedHeader, , payload, signature] = v;
  const p = cborDecode(payload);
  if (!Array.isArray(p) || p.length !== 7 || p[0] !== 1) throw new Error("not a receipt payload");
  return {
    protectedHeader, payload, signature,
    envelopeId: toHex(p[1]), sequence: p[2], accepted: p[3] === 0, reason: p[4], epoch: p[5], time: p[6],
  };
}

async function verifyReceipt(r, keys) {
  const sigStructure = concat(Uint8Array.of(0x84), cborText("Signature1"), cborBytes(r.protectedHeader),
    cborBytes(RECEIPT_CONTEXT), cborBytes(r.payload));
  for (const k of keys) {
    if (await ed25519Verify(k, r.signature, sigStructure)) return k;
  }
  return null;
}

// ---- checkpoints (C2SP signed note, tlog-checkpoint) --------------------------------------
async function verifyCheckpoint(note, origin, keys) {
  const sep = note.indexOf("\n\n");
  if (sep < 0) throw new Error("not a signed note");
  const text = note.slice(0, sep + 1);
  const [o, size, root] = text.split("\n");
  if (o !== origin) throw new Error(`checkpoint of origin ${o}, not ${origin}`);
  const lines = note.slice(sep + 2).split("\n").filter((l) => l.length);
  for (const k of keys) {
    const id = (await sha256(concat(enc.encode(origin), Uint8Array.of(0x0a, 0x01), k))).slice(0, 4);
    for (const l of lines) {
      if (!l.startsWith("\u2014 " + origin + " ")) continue;
      const raw = fromB64(l.slice(origin.length + 3));
      if (raw.length !== 68 || !equal(raw.slice(0, 4), id)) continue;
      if (await ed25519Verify(k, raw.slice(4), enc.encode(text))) {
        return { size: Number(size), root: fromB64(root) };
      }
    }
  }
  return null;
}

// ---- RFC 9162 §2.1.3.2 inclusion proof verification ---------------------------------------
async function rootFromInclusion(index, size, leaf, proof) {
  let fn = BigInt(index), sn = BigInt(size) - 1n, r = leaf;
  if (fn > sn) throw new Error("index beyond the tree");
  for (const p of proof) {
    if (sn === 0n) throw new Error("proof too long");
    if ((fn & 1n) === 1n || fn === sn) {
      r = await sha256(concat(Uint8Array.of(1), p, r));
      while ((fn & 1n) === 0n && fn !== 0n) { fn >>= 1n; sn >>= 1n; }
    } else {
      r = await sha256(concat(Uint8Array.of(1), r, p));
    }
    fn >>= 1n; sn >>= 1n;
  }
  if (sn !== 0n) throw new Error("proof too short");
  return r;
}

// ---- the page -----------------------------------------------------------------------------
let view = null;
const TEE = ["simulated", "SGX", "TDX", "SEV-SNP", "Nitro"];
const when = (t) => (t ? new Date(t * 1000).toISOString().replace(".000Z", "Z") : "—");
const cell = (tr, text, cls) => { const td = tr.insertCell(); td.textContent = text; if (cls) td.className = cls; return td; };
const row = (table, k, v, testid) => {
  const tr = table.insertRow(); cell(tr, k); const td = cell(tr, v, "mono");
  if (testid) td.dataset.testid = testid;
};

// The node's own audit (served at /audit) says so: it is not an independent verdict.
function whoAudits(v) {
  const self = v.auditor === "node";
  $("self-audit").hidden = !self;
  return self ? "This node's audit of itself: " : "";
}

function render(v) {
  const r = v.report;
  const who = whoAudits(v);
  $("subtitle").textContent = `chain ${v.chain_id} · ${v.settlement}${who ? " · self-audit by the node" : ""}`;
  const failed = r.checks.filter((c) => c.status === "fail").map((c) => c.name);
  const continuous = !v.continuity || v.continuity.ok;
  if (!continuous) failed.push("continuity");
  const ok = r.ok && continuous && !v.stale;
  const verdict = $("verdict");
  verdict.className = ok ? "ok" : v.stale && r.ok && continuous ? "wait" : "fail";
  verdict.textContent = who + (v.stale
    ? `STALE: the audit has not run since ${when(v.audited_at)} (${v.stale.error})`
    : ok
      ? `All ${r.checks.length} audit checks pass (audited ${when(v.audited_at)})`
      : `AUDIT FAILED: ${failed.join(", ") || "a check did not run"} (audited ${when(v.audited_at)})`);
  verdict.dataset.ok = String(ok);
  if (!continuous) {
    verdict.textContent += ` — ${v.continuity.detail}`;
  }

  const d = $("deployment"); d.innerHTML = "";
  row(d, "Chain id", String(v.chain_id));
  row(d, "Settlement", v.settlement);
  row(d, "Registry", v.registry);
  row(d, "Log origin", v.origin);
  row(d, "Policy hash", v.policy_hash || "—");
  row(d, "Statements settled", String(r.summary.statements_settled), "statements-settled");
  row(d, "Inputs settled", String(r.summary.inputs_settled), "inputs-settled");
  row(d, "Deposits logged / on chain", `${r.summary.deposits_logged} / ${r.summary.deposits_on_chain}`);

  const et = $("enclaves").tBodies[0]; et.innerHTML = "";
  for (const e of r.enclaves) {
    const tr = et.insertRow();
    cell(tr, e.address, "mono"); cell(tr, TEE[e.tee] || `kind ${e.tee}`);
    cell(tr, e.measurement, "mono"); cell(tr, e.tcb_status === 0 ? "up to date" : `status ${e.tcb_status}`);
    cell(tr, when(e.expires_at) + (e.expires_at * 1000 < Date.now() ? " (expired)" : ""));
  }
  $("enclaves").dataset.count = String(r.enclaves.length);

  const st = $("statements").tBodies[0]; st.innerHTML = "";
  const recent = r.settled.slice(-50).reverse();
  for (const s of recent) {
    const tr = st.insertRow();
    cell(tr, String(s.sequence)); cell(tr, String(s.inputs));
    cell(tr, v.gas && v.gas[s.tx] !== undefined ? String(v.gas[s.tx]) : "—");
    cell(tr, s.block_time && s.signed_at ? `${Math.max(0, s.block_time - s.signed_at)} s` : "—");
    cell(tr, String(s.block)); cell(tr, String(s.log_size));
  }
  const max = Math.max(1, ...r.settled.map((s) => s.inputs));
  const w = 8, h = 60;
  const bars = r.settled.slice(-120).map((s, i) => {
    const bh = Math.max(1, Math.round((s.inputs / max) * h));
    return `<rect x="${i * w}" y="${h - bh}" width="${w - 1}" height="${bh}"><title>statement ${s.sequence}: ${s.inputs} inputs</title></rect>`;
  });
  $("chart").innerHTML = `<svg width="${Math.max(w, bars.length * w)}" height="${h}" role="img" aria-label="inputs per statement">${bars.join("")}</svg>`;

  const lg = $("log"); lg.innerHTML = "";
  row(lg, "Log size", String(r.summary.log_size), "log-size");
  row(lg, "Accepted / rejected receipts", `${r.summary.accepted_receipts} / ${r.summary.rejected_receipts}`, "receipts");
  row(lg, "Pending (not yet settled)", String(r.summary.pending_receipts));
  row(lg, "Witness cosignatures", v.cosignatures.length
    ? v.cosignatures.map((c) => `${c.witness} at ${when(c.timestamp)}`).join("; ")
    : "none required or none verified", "cosignatures");
  row(lg, "Checkpoint", v.checkpoint || "—");

  const ct = $("checks").tBodies[0]; ct.innerHTML = "";
  for (const c of r.checks) {
    const tr = ct.insertRow(); tr.dataset.check = c.name; tr.dataset.status = c.status;
    cell(tr, c.name); cell(tr, c.status, c.status); cell(tr, String(c.checked)); cell(tr, c.detail || "");
  }
}

async function refresh() {
  try {
    const res = await fetch("api/view", { cache: "no-store" });
    const v = await res.json();
    if (v.ready) { view = v; render(v); return; }
    whoAudits(v);
    const verdict = $("verdict");
    if (v.unavailable) {
      // No audit will run here: say why, and show no verdict (grey, never green).
      verdict.className = "wait"; verdict.dataset.ok = "false";
      verdict.textContent = `No verdict: ${v.unavailable}`;
    } else if (v.error) {
      verdict.className = "fail"; verdict.dataset.ok = "false";
      verdict.textContent = `Audit could not run: ${v.error}`;
    }
  } catch (e) {
    $("verdict").className = "fail"; $("verdict").dataset.ok = "false";
    $("verdict").textContent = `Cannot reach the auditor: ${e}`;
  }
}

function say(ok, text) {
  const li = document.createElement("li");
  li.className = ok === null ? "" : ok ? "pass" : "fail";
  li.textContent = (ok === null ? "· " : ok ? "✔ " : "✘ ") + text;
  $("receipt-result").appendChild(li);
  return ok;
}

async function checkReceipt(input) {
  $("receipt-result").innerHTML = "";
  $("receipt-result").dataset.verified = "pending";
  if (!view) return say(false, "no audit yet");
  const keys = view.report.enclaves.map((e) => fromHex(e.ed25519));
  let receiptBytes = null, id = input.trim().replace(/^0x/, "").toLowerCase();
  if (id.length !== 64) {
    receiptBytes = fromHex(id);
    id = parseReceipt(receiptBytes).envelopeId;
  }
  const res = await fetch(`api/receipt/${id}`, { cache: "no-store" });
  const info = await res.json();
  if (!res.ok) return say(false, `the node has no receipt for ${id}: ${info.message || res.status}`);
  const bytes = fromHex(info.receipt);
  let ok = true;
  if (receiptBytes && !equal(receiptBytes, bytes)) {
    ok = say(false, "the node holds another receipt for this envelope than the one pasted");
  }
  const r = parseReceipt(bytes);
  ok = say(r.envelopeId === id, `receipt names envelope ${r.envelopeId}`) && ok;
  const signer = await verifyReceipt(r, keys);
  ok = say(!!signer, signer ? `receipt signed by the attested enclave key ${toHex(signer).slice(0, 16)}…` : "receipt signature does not verify under any attested key") && ok;
  say(null, `${r.accepted ? "accepted" : "rejected"} at log index ${r.sequence}, enclave time ${when(r.time)}`);
  const inc = info.inclusion;
  if (!inc) return say(false, "no inclusion proof yet (no checkpoint covers it)");
  const cp = await verifyCheckpoint(inc.checkpoint, view.origin, keys);
  ok = say(!!cp, cp ? `checkpoint of size ${cp.size} signed by an attested enclave key` : "checkpoint signature does not verify") && ok;
  if (!cp) return;
  const leaf = await sha256(concat(Uint8Array.of(0), Uint8Array.of(1, 3), bytes));
  let included = false;
  try {
    const root = await rootFromInclusion(r.sequence, cp.size, leaf, inc.proof.map(fromHex));
    included = inc.leaf_index === r.sequence && equal(root, cp.root);
  } catch (e) { say(false, `inclusion proof: ${e.message}`); }
  ok = say(included, included ? `included in the log at index ${r.sequence} (RFC 9162 proof of ${inc.proof.length} hashes)` : "inclusion proof does not verify") && ok;
  if (r.accepted) {
    // The batch holding it is closed by the first cut after it: a statement anchored past its
    // index that settled inputs (a heartbeat settles none and leaves the batch open).
    const s = view.report.settled.find((s) => s.log_size > r.sequence && s.inputs > 0);
    ok = say(!!s, s ? `settled in statement ${s.sequence}, block ${s.block}, transaction ${s.tx}` : "not settled yet") && ok;
  }
  $("receipt-result").dataset.verified = String(ok);
}

$("receipt-form").addEventListener("submit", (e) => {
  e.preventDefault();
  checkReceipt($("receipt-input").value).catch((err) => say(false, err.message));
});

refresh().then(() => {
  const q = new URLSearchParams(location.search).get("receipt");
  if (q) { $("receipt-input").value = q; return checkReceipt(q).catch((err) => say(false, err.message)); }
});
setInterval(refresh, 10000);
