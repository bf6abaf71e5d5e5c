#!/usr/bin/env node
// sealbridge-ts: the SDK from the command line, one JSON object per run on stdout.
//
//   sealbridge-ts pay --node URL --rpc URL --settlement ADDR --from I --to J --amount N [--suite 1|2|3] [--dev]
//       attest the enclave on chain, seal a netting obligation from participant I to J, submit it,
//       verify the receipt, wait for a checkpoint covering it and verify the inclusion proof.
//       `--dev`: participants are `sealbridge node --dev`'s, whose keys derive from public labels
//       (INSECURE, development only); otherwise `--sender-seed HEX --to-account ADDR`.
//   sealbridge-ts receipt --node URL --rpc URL --settlement ADDR --id HEX   verify a receipt's inclusion
//   sealbridge-ts statements --rpc URL --settlement ADDR                     verify every settled statement
import { parseArgs } from "node:util";
import { createPublicClient, http, keccak256, toBytes, type PublicClient } from "viem";
import { fromHex, SealbridgeError, toHex } from "./bytes.js";
import { settledStatements } from "./chain.js";
import { NodeClient } from "./client.js";
import { nettingObligation, type Suite } from "./envelope.js";
import { parseVkey } from "./note.js";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    node: { type: "string" },
    rpc: { type: "string" },
    settlement: { type: "string" },
    from: { type: "string" },
    to: { type: "string" },
    "sender-seed": { type: "string" },
    "to-account": { type: "string" },
    amount: { type: "string" },
    suite: { type: "string" },
    id: { type: "string" },
    dev: { type: "boolean" },
    witness: { type: "string", multiple: true },
    "witnesses-required": { type: "string" },
    "wait-secs": { type: "string" },
  },
});

function need(name: keyof typeof values): string {
  const v = values[name];
  if (typeof v !== "string" || v === "") throw new SealbridgeError("malformed", `--${name} is required`);
  return v;
}

const settlementArg = () => {
  const s = need("settlement");
  if (!/^0x[0-9a-fA-F]{40}$/.test(s)) throw new SealbridgeError("malformed", "--settlement: not an address");
  return s as `0x${string}`;
};
const chain = (): PublicClient => createPublicClient({ transport: http(need("rpc")) }) as PublicClient;
const devSeed = (i: string) => toBytes(keccak256(toBytes(`sealbridge/dev/participant/${i}/ed25519`)));
const devAccount = (i: string) => toBytes(keccak256(toBytes(`sealbridge/dev/participant/${i}/account`))).slice(12);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function client(): Promise<NodeClient> {
  const c = new NodeClient(need("node"), settlementArg());
  if (values.witness?.length) {
    c.requireWitnesses(values.witness.map(parseVkey), Number(values["witnesses-required"] ?? values.witness.length));
  }
  await c.attest(chain());
  return c;
}

async function waitIncluded(c: NodeClient, id: string) {
  const deadline = Date.now() + 1000 * Number(values["wait-secs"] ?? 60);
  for (;;) {
    const inc = await c.inclusion(id);
    if (inc) return inc;
    if (Date.now() > deadline) throw new SealbridgeError("not-included", `no checkpoint covers ${id} yet`);
    await sleep(200);
  }
}

async function pay() {
  const c = await client();
  const e = await c.describe();
  const [seed, to] = values.dev
    ? [devSeed(need("from")), devAccount(need("to"))]
    : [fromHex(need("sender-seed")), fromHex(need("to-account"))];
  const suite = values.suite ? (Number(values.suite) as Suite) : undefined;
  const payload = nettingObligation(to, fromHex(e.token), BigInt(need("amount")));
  const envelope = await c.seal(payload, seed, { suite });
  const sent = await c.submit(envelope);
  const out: Record<string, unknown> = {
    envelope_id: sent.envelopeId,
    suite: Number(values.suite ?? 0) || null,
    envelope_bytes: envelope.length,
    accepted: sent.receipt.accepted,
    reason: sent.receipt.reasonName,
    sequence: sent.receipt.sequence.toString(),
    receipt_verified: true,
    tee: e.tee,
    enclave: e.address,
  };
  if (sent.receipt.logged) {
    const inc = await waitIncluded(c, sent.envelopeId);
    out.checkpoint_size = inc.checkpoint.size.toString();
    out.checkpoint_root = toHex(inc.checkpoint.root);
    out.inclusion_verified = true;
    out.cosigned_by = inc.cosignatures.map((w) => w.witness);
  }
  return out;
}

async function receipt() {
  const c = await client();
  const inc = await c.inclusion(need("id"));
  if (!inc) return { included: false };
  return {
    included: true,
    sequence: inc.receipt.sequence.toString(),
    accepted: inc.receipt.accepted,
    checkpoint_size: inc.checkpoint.size.toString(),
    cosigned_by: inc.cosignatures.map((w) => w.witness),
    statement_sequence: inc.statementSequence,
    settled: inc.settled,
  };
}

async function statements() {
  const s = await settledStatements(chain(), settlementArg());
  return {
    statements: s.length,
    verified: s.map((x) => ({
      sequence: Number(x.statement.sequence),
      signer: x.signer,
      input_count: x.statement.inputCount,
      effects: x.effects.length,
      exits: x.exits.length,
      log_size: Number(x.statement.logSize),
      tx: x.txHash,
    })),
  };
}

const commands: Record<string, () => Promise<unknown>> = { pay, receipt, statements };
const cmd = commands[positionals[0] ?? ""];
if (!cmd) {
  console.error("usage: sealbridge-ts pay|receipt|statements … (see the header of src/bin.ts)");
  process.exit(2);
}
cmd().then(
  (out) => console.log(JSON.stringify(out)),
  (e) => {
    const code = e instanceof SealbridgeError ? e.code : "error";
    console.log(JSON.stringify({ error: code, message: e.message }));
    console.error(`sealbridge-ts: ${e.message}`);
    process.exit(1);
  },
);
