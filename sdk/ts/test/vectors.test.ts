// The TypeScript side of the cross-language vectors in test-vectors/ (produced and checked by
// the Rust side in crates/client/tests/vectors.rs): same inputs, same bytes, same verdicts.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import {
  effectsHash,
  fromHex,
  leafHash,
  logKey,
  nettingObligation,
  parseEnclave,
  parseVkey,
  protectedHeader,
  sealEnvelope,
  sealingSuite,
  SealbridgeError,
  statementDigest,
  toHex,
  verifyCheckpoint,
  verifyConsistency,
  verifyCosignatures,
  verifyEpochAnnouncement,
  verifyInclusion,
  verifyReceipt,
  verifyStatement,
  type Statement,
  type Suite,
} from "../src/index.js";

const vectors = (name: string): any =>
  JSON.parse(readFileSync(fileURLToPath(new URL(`../../../../test-vectors/${name}`, import.meta.url)), "utf8"));

const code = (f: () => unknown): string => {
  try {
    f();
  } catch (e) {
    assert.ok(e instanceof SealbridgeError, `not a SealbridgeError: ${e}`);
    return e.code;
  }
  return "accepted";
};

test("envelopes sealed here are the Rust envelopes byte for byte (suites 1, 2, 3; versions 1, 2)", async () => {
  const v = vectors("envelope.json");
  assert.equal(v.cases.length, 4);
  for (const c of v.cases) {
    const header = {
      version: c.version,
      suite: c.suite as Suite,
      instanceId: fromHex(c.instance_id),
      epoch: BigInt(c.epoch),
      programId: fromHex(c.program_id),
      nonce: fromHex(c.nonce),
      expiresAt: BigInt(c.expires_at),
      traceId: fromHex(c.trace_id),
    };
    const pk = fromHex(c.recipient_public_key);
    assert.equal(toHex(protectedHeader(header, pk)), c.protected, `${c.name}: protected header`);
    const env = await sealEnvelope({ header, recipientPublicKey: pk, senderSeed: fromHex(c.sender_seed), payload: fromHex(c.payload), ekm: fromHex(c.ekm) });
    assert.equal(toHex(env), c.envelope, `${c.name}: envelope`);
  }
});

test("the netting obligation encoding is the payload of the vectors", () => {
  const c = vectors("envelope.json").cases[0];
  const p = fromHex(c.payload);
  assert.equal(toHex(nettingObligation(p.slice(1, 21), p.slice(21, 41), 1_000_000n)), c.payload);
  assert.equal(code(() => nettingObligation(p.slice(1, 21), p.slice(21, 41), 0n)), "malformed");
});

test("receipts: valid ones verify with their fields, invalid ones are refused for the right reason", () => {
  const v = vectors("receipt.json");
  const key = fromHex(v.public_key);
  for (const c of v.cases) {
    if (c.valid) {
      const r = verifyReceipt(fromHex(c.receipt), key);
      assert.equal(r.envelopeId, c.envelope_id, c.name);
      assert.equal(r.sequence, BigInt(c.sequence), c.name);
      assert.equal(r.accepted, c.accepted, c.name);
      assert.equal(r.reason, c.reason, c.name);
      assert.equal(r.epoch, BigInt(c.epoch), c.name);
      assert.equal(r.enclaveTime, BigInt(c.enclave_time), c.name);
      assert.equal(r.logged, c.logged, c.name);
    } else {
      assert.equal(code(() => verifyReceipt(fromHex(c.receipt), key)), c.error, c.name);
    }
  }
});

test("checkpoints and witness cosignatures", () => {
  const v = vectors("checkpoint.json");
  const key = logKey(v.origin, fromHex(v.public_key));
  const witnesses = v.witnesses.map(parseVkey);
  for (const c of v.cases) {
    if (!c.valid) {
      assert.equal(code(() => verifyCheckpoint(c.note, v.origin, key)), c.error, c.name);
      continue;
    }
    const cp = verifyCheckpoint(c.note, v.origin, key);
    assert.equal(cp.size, BigInt(c.size));
    assert.equal(toHex(cp.root), c.root);
    const cosigned = verifyCosignatures(c.note, witnesses).map((w) => w.witness);
    assert.deepEqual(cosigned, c.cosigned_by ?? [], c.name);
  }
});

test("Merkle inclusion and consistency proofs verify, and fail with any hash changed", () => {
  const v = vectors("merkle.json");
  const flip = (h: string) => {
    const b = fromHex(h);
    b[0] ^= 1;
    return b;
  };
  for (const c of v.inclusion) {
    const proof = c.proof.map(fromHex);
    verifyInclusion(BigInt(c.index), BigInt(c.size), fromHex(c.leaf_hash), proof, fromHex(c.root));
    for (let i = 0; i < proof.length; i++) {
      const bad = c.proof.map((h: string, j: number) => (i === j ? flip(h) : fromHex(h)));
      assert.equal(code(() => verifyInclusion(BigInt(c.index), BigInt(c.size), fromHex(c.leaf_hash), bad, fromHex(c.root))), "not-included");
    }
    assert.equal(code(() => verifyInclusion(BigInt(c.index), BigInt(c.size), flip(c.leaf_hash), proof, fromHex(c.root))), "not-included");
  }
  assert.equal(toHex(leafHash(new TextEncoder().encode("entry 0"))), v.inclusion[0].leaf_hash);
  for (const c of v.consistency) {
    const args = [BigInt(c.size1), BigInt(c.size2), fromHex(c.root1), fromHex(c.root2)] as const;
    verifyConsistency(...args, c.proof.map(fromHex));
    for (let i = 0; i < c.proof.length; i++) {
      const bad = c.proof.map((h: string, j: number) => (i === j ? flip(h) : fromHex(h)));
      assert.equal(code(() => verifyConsistency(...args, bad)), "not-included");
    }
  }
});

test("statements: effects hash, EIP-712 digest and signer; high s and tampering refused", async () => {
  const v = vectors("statement.json");
  const toStatement = (s: any): Statement => ({
    ...s,
    sequence: BigInt(s.sequence),
    logSize: BigInt(s.logSize),
    notBefore: BigInt(s.notBefore),
    notAfter: BigInt(s.notAfter),
  });
  const s = toStatement(v.statement);
  const effects = v.effects.map((e: any) => ({ ...e, delta: BigInt(e.delta) }));
  const exits = v.exits.map((e: any) => ({ ...e, amount: BigInt(e.amount) }));
  assert.equal(effectsHash(effects, exits), s.effectsHash);
  const chainId = BigInt(v.chain_id);
  assert.equal(statementDigest(s, chainId, v.settlement), v.digest);
  assert.equal(await verifyStatement(s, v.signature, chainId, v.settlement, v.signer), v.signer);
  await assert.rejects(verifyStatement(s, v.high_s_signature, chainId, v.settlement), /high s/);
  await assert.rejects(verifyStatement(toStatement(v.tampered_statement), v.signature, chainId, v.settlement, v.signer), /signed by/);
});

test("enclave descriptions: bundle, announcements, program id and the suite to seal with", () => {
  const v = vectors("enclave.json");
  const e = parseEnclave({
    ...v,
    tee: "simulated",
    chain_id: 31337,
    registry: "0x" + "11".repeat(20),
    settlement: "0x" + "22".repeat(20),
    token: "0x" + "33".repeat(20),
  });
  assert.equal(e.address, v.address);
  assert.equal(toHex(e.epoch.x25519), v.x25519_public_key);
  assert.equal(toHex(e.epoch.xwing!), v.xwing_public_key);
  assert.equal(e.epoch.epoch, 7n);
  for (const [t, suite] of Object.entries(v.sealing_suite)) assert.equal(sealingSuite(e.epoch, BigInt(t)), suite);
  assert.equal(code(() => verifyEpochAnnouncement(fromHex(v.bad_epoch_announcement), e.ed25519)), "bad-signature");
  // Without the signed lifecycle (stripped by the node) no suite is picked for the caller.
  const stripped = parseEnclave({ ...v, xwing_announcement: "", tee: "", chain_id: 1, registry: v.address, settlement: v.address, token: v.address });
  assert.equal(code(() => sealingSuite(stripped.epoch, 0n)), "unsupported");
  assert.equal(code(() => parseEnclave({ ...v, program_id: v.program_id, instance_id: "00".repeat(32), tee: "", chain_id: 1, registry: v.address, settlement: v.address, token: v.address })), "wrong-key");
  assert.equal(code(() => parseEnclave({ ...v, epoch_announcement: v.bad_epoch_announcement, tee: "", chain_id: 1, registry: v.address, settlement: v.address, token: v.address })), "bad-signature");
});
