// A light client of a Sealbridge node over HTTP (fetch): describe and attest the enclave, seal
// and submit obligations, verify what comes back. It trusts nothing the node says that it can
// check: receipts, checkpoints and proofs are verified under the enclave key the chain vouches for.
import type { PublicClient } from "viem";
import { fromHex, SealbridgeError, toHex, type Bytes } from "./bytes.js";
import { verifyEnclaveOnChain, type ChainTie } from "./chain.js";
import { logOrigin, parseEnclave, sealingSuite, type Enclave, type EnclaveJson } from "./enclave.js";
import { envelopeId, sealEnvelope, type Suite } from "./envelope.js";
import { leafHash, verifyInclusion } from "./merkle.js";
import { logKey, requireWitnesses, verifyCheckpoint, type Checkpoint, type Cosigned, type NoteKey } from "./note.js";
import { receiptEntry, verifyReceipt, type Receipt } from "./receipt.js";

export interface SubmitResult {
  envelopeId: string;
  receipt: Receipt;
  /** The node's answer: 200 accepted, 422 rejected (a signed rejection). */
  httpStatus: number;
  resubmitted: boolean;
}

export interface Included {
  receipt: Receipt;
  checkpoint: Checkpoint;
  cosignatures: Cosigned[];
  statementSequence: number | null;
  settled: boolean;
  settlementTx: string | null;
}

const randomBytes = (n: number): Bytes => crypto.getRandomValues(new Uint8Array(n));

export class NodeClient {
  private enclave?: Enclave;
  private tie?: ChainTie;
  private witnesses: { keys: NoteKey[]; k: number } | null = null;

  /** `base`: the node's URL; `settlement`: the deployment's address, pinned by the caller. */
  constructor(
    readonly base: string,
    readonly settlement: `0x${string}`,
  ) {
    this.base = base.replace(/\/+$/, "");
  }

  private async get(path: string): Promise<{ status: number; body: any }> {
    let res: Response;
    try {
      res = await fetch(this.base + path, { cache: "no-store" });
    } catch (e) {
      throw new SealbridgeError("http", `GET ${path}: ${(e as Error).message}`);
    }
    const body = await res.json().catch(() => null);
    return { status: res.status, body };
  }

  /** Require `k` of `keys` (witness cosignature vkeys) on every checkpoint this client uses. */
  requireWitnesses(vkeys: NoteKey[], k: number): this {
    if (k < 1 || k > vkeys.length) throw new SealbridgeError("malformed", `cannot require ${k} of ${vkeys.length} witnesses`);
    this.witnesses = { keys: vkeys, k };
    return this;
  }

  /** `GET /v1/enclave`, checked for consistency (key bundle, announcements). */
  async describe(): Promise<Enclave> {
    const { status, body } = await this.get("/v1/enclave");
    if (status !== 200) throw new SealbridgeError("http", `GET /v1/enclave: ${status} ${body?.message ?? ""}`);
    const e = parseEnclave(body as EnclaveJson);
    this.enclave = e;
    return e;
  }

  /** Describe, then check on chain that the enclave key is registered and active here (§2b). */
  async attest(chain: PublicClient): Promise<{ enclave: Enclave; tie: ChainTie }> {
    const enclave = await this.describe();
    const tie = await verifyEnclaveOnChain(chain, enclave, this.settlement);
    this.tie = tie;
    return { enclave, tie };
  }

  private attested(): Enclave {
    if (!this.enclave || !this.tie) throw new SealbridgeError("not-registered", "attest the enclave first (attest(chain))");
    return this.enclave;
  }

  /** Seal `payload` with the sender's Ed25519 seed, to the current epoch, with the policy's suite unless `suite` is given. */
  async seal(payload: Bytes, senderSeed: Bytes, opts: { suite?: Suite; lifetimeSecs?: number; now?: number } = {}): Promise<Bytes> {
    const e = this.attested();
    const now = BigInt(opts.now ?? Math.floor(Date.now() / 1000));
    const suite = opts.suite ?? sealingSuite(e.epoch, now);
    const recipient = suite === 3 ? e.epoch.xwing : e.epoch.x25519;
    if (!recipient) throw new SealbridgeError("unsupported", "the node announced no X-Wing key");
    return sealEnvelope({
      header: {
        suite,
        instanceId: e.instanceId,
        epoch: e.epoch.epoch,
        programId: e.programId,
        nonce: randomBytes(16),
        expiresAt: now + BigInt(opts.lifetimeSecs ?? 600),
        traceId: randomBytes(16),
      },
      recipientPublicKey: recipient,
      senderSeed,
      payload,
    });
  }

  /** `POST /v1/envelopes`: the receipt, verified under the attested key and for these bytes. */
  async submit(envelope: Bytes): Promise<SubmitResult> {
    const e = this.attested();
    let res: Response;
    try {
      res = await fetch(`${this.base}/v1/envelopes`, {
        method: "POST",
        headers: { "content-type": "application/cose" },
        body: new Uint8Array(envelope),
      });
    } catch (err) {
      throw new SealbridgeError("http", `POST /v1/envelopes: ${(err as Error).message}`);
    }
    const body: any = await res.json().catch(() => null);
    if (res.status !== 200 && res.status !== 422) {
      throw new SealbridgeError("http", `POST /v1/envelopes: ${res.status} ${body?.error ?? ""} ${body?.message ?? ""}`);
    }
    const receipt = verifyReceipt(fromHex(body.receipt), e.ed25519);
    const id = toHex(envelopeId(envelope));
    if (receipt.envelopeId !== id) throw new SealbridgeError("wrong-key", "the receipt is for another envelope");
    if (body.envelope_id !== id || BigInt(body.sequence) !== receipt.sequence || (body.status === "accepted") !== receipt.accepted) {
      throw new SealbridgeError("malformed", "the node's JSON differs from the signed receipt");
    }
    return { envelopeId: id, receipt, httpStatus: res.status, resubmitted: !!body.resubmitted };
  }

  /** The node's latest checkpoint, verified (and cosigned as required). */
  async checkpoint(): Promise<Checkpoint> {
    const e = this.attested();
    let res: Response;
    try {
      res = await fetch(`${this.base}/checkpoint`, { cache: "no-store" });
    } catch (err) {
      throw new SealbridgeError("http", `GET /checkpoint: ${(err as Error).message}`);
    }
    if (res.status !== 200) throw new SealbridgeError("http", `GET /checkpoint: ${res.status}`);
    return this.verifyNote(await res.text(), e).checkpoint;
  }

  private verifyNote(note: string, e: Enclave): { checkpoint: Checkpoint; cosignatures: Cosigned[] } {
    const origin = logOrigin(e.chainId, e.settlement);
    const checkpoint = verifyCheckpoint(note, origin, logKey(origin, e.ed25519));
    const cosignatures = this.witnesses ? requireWitnesses(note, this.witnesses.keys, this.witnesses.k) : [];
    return { checkpoint, cosignatures };
  }

  /**
   * `GET /v1/receipts/{id}`: the receipt, verified; its inclusion proof against a checkpoint
   * signed by the enclave key (and cosigned as required); null while no checkpoint covers it.
   */
  async inclusion(envelopeIdHex: string): Promise<Included | null> {
    const e = this.attested();
    if (!/^[0-9a-f]{64}$/.test(envelopeIdHex)) throw new SealbridgeError("malformed", "envelope id: 64 lower-case hex digits");
    const { status, body } = await this.get(`/v1/receipts/${envelopeIdHex}`);
    if (status !== 200) throw new SealbridgeError("http", `GET /v1/receipts: ${status} ${body?.message ?? ""}`);
    const bytes = fromHex(body.receipt);
    const receipt = verifyReceipt(bytes, e.ed25519);
    if (receipt.envelopeId !== envelopeIdHex) throw new SealbridgeError("wrong-key", "the node answered with another envelope's receipt");
    if (!receipt.logged) throw new SealbridgeError("not-included", "an unlogged rejection has no log entry");
    const inc = body.inclusion;
    if (!inc) return null;
    const { checkpoint, cosignatures } = this.verifyNote(inc.checkpoint, e);
    if (BigInt(inc.leaf_index) !== receipt.sequence) {
      throw new SealbridgeError("not-included", `proof for leaf ${inc.leaf_index}, the receipt is at ${receipt.sequence}`);
    }
    verifyInclusion(receipt.sequence, checkpoint.size, leafHash(receiptEntry(bytes)), (inc.proof as string[]).map(fromHex), checkpoint.root);
    return {
      receipt,
      checkpoint,
      cosignatures,
      statementSequence: body.statement_sequence ?? null,
      settled: !!body.settled,
      settlementTx: body.settlement_tx ?? null,
    };
  }
}
