// Receipts (docs/PROTOCOL.md §2): COSE_Sign1 (RFC 9052, tag 18), EdDSA, signed by the enclave's
// attested Ed25519 key over Sig_structure with external_aad "sealbridge/v1/receipt".
import { equal, SealbridgeError, text, toHex, type Bytes } from "./bytes.js";
import { bstr, decodeStrict, decodeTagged, encodeCbor, uint } from "./cbor.js";
import { ed25519Verify, sha256 } from "./hash.js";

export const MAX_RECEIPT_BYTES = 512;
/** The sequence of a rejection that is not logged (§2): it has no log entry. */
export const UNLOGGED_SEQUENCE = (1n << 64n) - 1n;
const RECEIPT_CONTEXT = text("sealbridge/v1/receipt");

/** Reason codes (§11), index = code. */
export const REASONS = [
  "",
  "malformed",
  "unsupported-version",
  "unsupported-suite",
  "wrong-instance",
  "unknown-epoch",
  "retired-epoch",
  "wrong-program",
  "expired",
  "replayed",
  "undecryptable",
  "bad-sender-signature",
  "unauthorised-sender",
  "program-rejected",
  "oversized",
  "quota-exceeded",
  "suite-deprecated",
] as const;

export interface Receipt {
  /** Hex, 64 digits. */
  envelopeId: string;
  /** The log index of its entry, or [`UNLOGGED_SEQUENCE`]. */
  sequence: bigint;
  accepted: boolean;
  /** 0 when accepted, else a reason code (§11). */
  reason: number;
  reasonName: string;
  epoch: bigint;
  enclaveTime: bigint;
  /** Whether the receipt has a log entry (not an unlogged rejection). */
  logged: boolean;
  /** The exact bytes, as signed. */
  bytes: Bytes;
}

/** Parse and verify a receipt under the attested Ed25519 key `publicKey`. */
export function verifyReceipt(bytes: Bytes, publicKey: Bytes): Receipt {
  if (bytes.length > MAX_RECEIPT_BYTES) {
    throw new SealbridgeError("malformed", `receipt of ${bytes.length} bytes (at most ${MAX_RECEIPT_BYTES})`);
  }
  const top = decodeTagged(bytes, 18, "receipt");
  if (!Array.isArray(top) || top.length !== 4) {
    throw new SealbridgeError("malformed", "receipt: not a COSE_Sign1 array of 4");
  }
  const [prot, unprot, payloadRaw, sigRaw] = top as unknown[];
  const protectedBytes = bstr(prot, "receipt protected header");
  if (!(unprot instanceof Map) || unprot.size !== 0) {
    throw new SealbridgeError("malformed", "receipt: unprotected header must be empty");
  }
  const payload = bstr(payloadRaw, "receipt payload");
  const signature = bstr(sigRaw, "receipt signature", 64);
  const hdr = decodeStrict(protectedBytes, "receipt protected header");
  if (!(hdr instanceof Map) || hdr.size !== 2 || hdr.get(1) !== -8) {
    throw new SealbridgeError("malformed", "receipt: protected header is not { alg: EdDSA, kid }");
  }
  const kid = bstr(hdr.get(4), "receipt kid", 32);
  if (!equal(kid, sha256(publicKey))) {
    throw new SealbridgeError("wrong-key", "receipt: kid is not this enclave's instance id");
  }
  const sigStructure = encodeCbor(["Signature1", protectedBytes, RECEIPT_CONTEXT, payload]);
  if (!ed25519Verify(publicKey, signature, sigStructure)) {
    throw new SealbridgeError("bad-signature", "receipt: signature does not verify under the enclave key");
  }
  const p = decodeStrict(payload, "receipt payload");
  if (!Array.isArray(p) || p.length !== 7 || p[0] !== 1) {
    throw new SealbridgeError("malformed", "receipt payload: not a version-1 array of 7");
  }
  const status = Number(uint(p[3], "status"));
  const reason = Number(uint(p[4], "reason"));
  const ok = (status === 0 && reason === 0) || (status === 1 && reason >= 1 && reason < REASONS.length);
  if (!ok) throw new SealbridgeError("malformed", `receipt: status ${status} with reason ${reason}`);
  const sequence = uint(p[2], "sequence");
  return {
    envelopeId: toHex(bstr(p[1], "envelope id", 32)),
    sequence,
    accepted: status === 0,
    reason,
    reasonName: REASONS[reason] || "accepted",
    epoch: uint(p[5], "epoch"),
    enclaveTime: uint(p[6], "enclave time"),
    logged: sequence !== UNLOGGED_SEQUENCE,
    bytes,
  };
}

/** The log entry of a logged receipt (§10 kind 3): `0x01 ‖ 0x03 ‖ receipt`. */
export function receiptEntry(receipt: Bytes): Bytes {
  const out = new Uint8Array(receipt.length + 2);
  out.set([1, 3]);
  out.set(receipt, 2);
  return out;
}
