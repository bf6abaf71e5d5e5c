// What a node says about its enclave (GET /v1/enclave), checked against the attested key:
// key bundle (§5), epoch announcements (§6, §12), program id (§7), the suite to seal with.
import { concat, equal, fromHex, readUintBE, SealbridgeError, text, toHex, uintBE, type Bytes } from "./bytes.js";
import { ed25519Verify, keccak256, sha256 } from "./hash.js";
import type { Suite } from "./envelope.js";

/** The JSON of `GET /v1/enclave` (fields the SDK reads; the node's OpenAPI has them all). */
export interface EnclaveJson {
  key_bundle: string;
  ed25519: string;
  address: string;
  instance_id: string;
  measurement: string;
  program_id: string;
  policy_hash: string;
  epoch_announcement: string;
  xwing_announcement?: string;
  tee: string;
  evidence_format?: string;
  chain_id: number;
  registry: string;
  settlement: string;
  token: string;
  [more: string]: unknown;
}

export interface EpochKeys {
  epoch: bigint;
  notBefore: bigint;
  notAfter: bigint;
  x25519: Bytes;
  xwing?: Bytes;
  /** The suite lifecycle of the policy in force: suite id → state (1 preferred, 2 allowed, 3 deprecated-after). */
  suites?: Map<number, { state: number; date: bigint }>;
}

/** A description whose parts agree with each other and with the enclave key. */
export interface Enclave {
  ed25519: Bytes;
  /** The secp256k1 address that signs statements (0x, lower case). */
  address: `0x${string}`;
  instanceId: Bytes;
  measurement: Bytes;
  programId: Bytes;
  policyHash: Bytes;
  keyBundleHash: Bytes;
  epoch: EpochKeys;
  tee: string;
  chainId: bigint;
  registry: `0x${string}`;
  settlement: `0x${string}`;
  token: `0x${string}`;
  json: EnclaveJson;
}

const framed = (context: string, msg: Bytes) => concat(uintBE(text(context).length, 2), text(context), msg);
const EPOCH_CONTEXT = "sealbridge/v1/epoch-announcement";
const XWING_CONTEXT = "sealbridge/v1/xwing-epoch-announcement";
const ANNOUNCEMENT_LEN = 153;
const XWING_PK = 1216;

export const instanceIdOf = (ed25519: Bytes): Bytes => sha256(ed25519);

/** `programId = keccak256("sealbridge/v1/program-id" ‖ measurement ‖ policyHash)` (§7). */
export function programId(measurement: Bytes, policyHash: Bytes): Bytes {
  return keccak256(concat(text("sealbridge/v1/program-id"), measurement, policyHash));
}

/** §6: the epoch's X25519 key, signed by the instance key. */
export function verifyEpochAnnouncement(bytes: Bytes, ed25519: Bytes): EpochKeys {
  if (bytes.length !== ANNOUNCEMENT_LEN) throw new SealbridgeError("malformed", "epoch announcement length");
  const body = bytes.slice(0, ANNOUNCEMENT_LEN - 64);
  if (!ed25519Verify(ed25519, bytes.slice(ANNOUNCEMENT_LEN - 64), framed(EPOCH_CONTEXT, body))) {
    throw new SealbridgeError("bad-signature", "epoch announcement not signed by the enclave key");
  }
  if (body[0] !== 1) throw new SealbridgeError("unsupported", "epoch announcement version");
  if (!equal(body.slice(1, 33), instanceIdOf(ed25519))) {
    throw new SealbridgeError("wrong-key", "epoch announcement names another instance");
  }
  return {
    epoch: readUintBE(body, 33, 8),
    x25519: body.slice(41, 73),
    notBefore: readUintBE(body, 73, 8),
    notAfter: readUintBE(body, 81, 8),
  };
}

/** §12: the same epoch's X-Wing key and the suite lifecycle, signed by the instance key. */
export function verifyXWingAnnouncement(bytes: Bytes, ed25519: Bytes, epoch: EpochKeys): EpochKeys {
  const fixed = 1 + 32 + 8 + XWING_PK + 8 + 8;
  if (bytes.length < fixed + 1 + 64) throw new SealbridgeError("malformed", "X-Wing announcement length");
  const body = bytes.slice(0, bytes.length - 64);
  if (!ed25519Verify(ed25519, bytes.slice(bytes.length - 64), framed(XWING_CONTEXT, body))) {
    throw new SealbridgeError("bad-signature", "X-Wing announcement not signed by the enclave key");
  }
  if (body[0] !== 1) throw new SealbridgeError("unsupported", "X-Wing announcement version");
  if (!equal(body.slice(1, 33), instanceIdOf(ed25519)) || readUintBE(body, 33, 8) !== epoch.epoch) {
    throw new SealbridgeError("wrong-key", "X-Wing announcement names another instance or epoch");
  }
  const n = body[fixed];
  if (body.length !== fixed + 1 + 11 * n) throw new SealbridgeError("malformed", "suite lifecycle length");
  const suites = new Map<number, { state: number; date: bigint }>();
  for (let i = 0; i < n; i++) {
    const at = fixed + 1 + 11 * i;
    suites.set(Number(readUintBE(body, at, 2)), { state: body[at + 2], date: readUintBE(body, at + 3, 8) });
  }
  return { ...epoch, xwing: body.slice(41, 41 + XWING_PK), suites };
}

/** The suite to seal with at `now` (unix seconds): the preferred suite if acceptable, else the first acceptable (§12). */
export function sealingSuite(epoch: EpochKeys, now: bigint): Suite {
  // No signed lifecycle: a node before issue 12, or a hostile node that stripped the X-Wing
  // announcement to push clients from X-Wing down to X25519 (harvest now, decrypt later). As the
  // Rust client does, refuse to pick: the caller names the suite explicitly.
  if (!epoch.suites) {
    throw new SealbridgeError("unsupported", "the node sent no signed suite lifecycle (X-Wing announcement): name the suite explicitly");
  }
  const ok = (s: { state: number; date: bigint }) => s.state === 1 || s.state === 2 || (s.state === 3 && now < s.date);
  const ids = [...epoch.suites.keys()].sort((a, b) => a - b).filter((id) => id >= 1 && id <= 3);
  const preferred = ids.find((id) => epoch.suites!.get(id)!.state === 1 && ok(epoch.suites!.get(id)!));
  const pick = preferred ?? ids.find((id) => ok(epoch.suites!.get(id)!));
  if (pick === undefined) throw new SealbridgeError("unsupported", "no suite the policy accepts now");
  return pick as Suite;
}

const addr = (s: string, what: string): `0x${string}` => {
  if (!/^0x[0-9a-fA-F]{40}$/.test(s)) throw new SealbridgeError("malformed", `${what} is not an address`);
  return s.toLowerCase() as `0x${string}`;
};

/**
 * Check a `/v1/enclave` description for internal consistency: the key bundle holds the Ed25519
 * key and address it names, the instance id is the key's hash, the announcements are signed by
 * the key. What the chain says about the key is checked by `verifyEnclaveOnChain`.
 */
export function parseEnclave(json: EnclaveJson): Enclave {
  const bundle = fromHex(json.key_bundle);
  if (bundle.length !== 57 || !equal(bundle.slice(0, 5), concat(text("SBKB"), Uint8Array.of(1)))) {
    throw new SealbridgeError("malformed", "key bundle: not SBKB version 1 of 57 bytes");
  }
  const ed25519 = bundle.slice(5, 37);
  const address = `0x${toHex(bundle.slice(37, 57))}` as `0x${string}`;
  if (!equal(fromHex(json.ed25519), ed25519) || addr(json.address, "address") !== address) {
    throw new SealbridgeError("wrong-key", "description: key or address differ from the key bundle");
  }
  const instanceId = instanceIdOf(ed25519);
  if (!equal(fromHex(json.instance_id), instanceId)) {
    throw new SealbridgeError("wrong-key", "description: instance id is not the hash of the key");
  }
  let epoch = verifyEpochAnnouncement(fromHex(json.epoch_announcement), ed25519);
  if (json.xwing_announcement) epoch = verifyXWingAnnouncement(fromHex(json.xwing_announcement), ed25519, epoch);
  return {
    ed25519,
    address,
    instanceId,
    measurement: fromHex(json.measurement),
    programId: fromHex(json.program_id),
    policyHash: fromHex(json.policy_hash),
    keyBundleHash: sha256(bundle),
    epoch,
    tee: json.tee,
    chainId: BigInt(json.chain_id),
    registry: addr(json.registry, "registry"),
    settlement: addr(json.settlement, "settlement"),
    token: addr(json.token, "token"),
    json,
  };
}

/** The log origin (and checkpoint key name) of a deployment (§10). */
export function logOrigin(chainId: bigint, settlement: string): string {
  return `sealbridge/${chainId}/${settlement.toLowerCase()}`;
}
