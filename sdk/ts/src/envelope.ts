// Envelope sealing (docs/PROTOCOL.md §1 and §12): COSE_Encrypt0 (RFC 9052) with HPKE base mode
// (RFC 9180) through @hpke/core, the sender's Ed25519 signature inside the ciphertext.
import { Aes128Gcm, Aes256Gcm, CipherSuite, DhkemX25519HkdfSha256, HkdfSha256 } from "@hpke/core";
import { Chacha20Poly1305 } from "@hpke/chacha20poly1305";
import { XWing } from "@hpke/hybridkem-x-wing";
import { concat, SealbridgeError, uintBE, type Bytes } from "./bytes.js";
import { encodeCbor, encodeTagged } from "./cbor.js";
import { ed25519PublicKey, ed25519Sign, sha256 } from "./hash.js";

/** Suites (§1, §12): 1 X25519/AES-128-GCM, 2 X25519/ChaCha20-Poly1305, 3 X-Wing/AES-256-GCM. */
export type Suite = 1 | 2 | 3;
export const SUITES: readonly Suite[] = [1, 2, 3];
const ALG: Record<Suite, number> = { 1: 41, 2: 42, 3: -65537 };
/** Envelope version this SDK produces (version 1 is version 2 without suite 3). */
export const ENVELOPE_VERSION = 2;
export const MAX_ENVELOPE_BYTES = 65_536;
const ENVELOPE_SENDER_CONTEXT = "sealbridge/v1/envelope-sender";
const LABEL = { alg: 1, kid: 4, version: -65537, suite: -65538, instance: -65539, epoch: -65540, program: -65541, nonce: -65542, expires: -65543, trace: -65544 } as const;
const LABEL_EK = -4;

/** What the protected header says. */
export interface EnvelopeHeader {
  version?: number;
  suite: Suite;
  /** Instance id (32 bytes): SHA-256 of the enclave's Ed25519 key. */
  instanceId: Bytes;
  epoch: bigint | number;
  /** Program id (32 bytes). */
  programId: Bytes;
  /** 16 fresh random bytes per envelope (replay protection). */
  nonce: Bytes;
  /** Unix seconds after which the enclave refuses the envelope. */
  expiresAt: bigint | number;
  /** 16 bytes tying logs and traces together. */
  traceId: Bytes;
}

/** The epoch public key to seal to: 32-byte X25519 (suites 1, 2) or 1216-byte X-Wing (suite 3). */
export interface SealOptions {
  header: EnvelopeHeader;
  recipientPublicKey: Bytes;
  /** The sender's Ed25519 seed (32 bytes). */
  senderSeed: Bytes;
  payload: Bytes;
  /**
   * Known-answer tests only: the HPKE ephemeral key material (the 32-byte `ikm` of
   * DeriveKeyPair for X25519, the 64-byte `eseed` for X-Wing). Never set it otherwise.
   */
  ekm?: Bytes;
}

function cipherSuite(suite: Suite): CipherSuite {
  switch (suite) {
    case 1:
      return new CipherSuite({ kem: new DhkemX25519HkdfSha256(), kdf: new HkdfSha256(), aead: new Aes128Gcm() });
    case 2:
      return new CipherSuite({ kem: new DhkemX25519HkdfSha256(), kdf: new HkdfSha256(), aead: new Chacha20Poly1305() });
    case 3:
      return new CipherSuite({ kem: new XWing(), kdf: new HkdfSha256(), aead: new Aes256Gcm() });
    default:
      throw new SealbridgeError("unsupported", `suite ${suite as number}`);
  }
}

const need = (b: Bytes, len: number, what: string) => {
  if (!(b instanceof Uint8Array) || b.length !== len) {
    throw new SealbridgeError("malformed", `${what} must be ${len} bytes`);
  }
};

/** The protected header bytes (a deterministic CBOR map of 10 entries). */
export function protectedHeader(h: EnvelopeHeader, recipientPublicKey: Bytes): Bytes {
  const version = h.version ?? ENVELOPE_VERSION;
  if (version !== 1 && version !== 2) throw new SealbridgeError("unsupported", `envelope version ${version}`);
  if (!SUITES.includes(h.suite)) throw new SealbridgeError("unsupported", `suite ${h.suite}`);
  if (version === 1 && h.suite === 3) throw new SealbridgeError("unsupported", "X-Wing needs envelope version 2");
  need(h.instanceId, 32, "instance id");
  need(h.programId, 32, "program id");
  need(h.nonce, 16, "nonce");
  need(h.traceId, 16, "trace id");
  need(recipientPublicKey, h.suite === 3 ? 1216 : 32, "recipient public key");
  const m = new Map<number, unknown>([
    [LABEL.alg, ALG[h.suite]],
    [LABEL.kid, sha256(recipientPublicKey).slice(0, 16)],
    [LABEL.version, version],
    [LABEL.suite, h.suite],
    [LABEL.instance, h.instanceId],
    [LABEL.epoch, BigInt(h.epoch)],
    [LABEL.program, h.programId],
    [LABEL.nonce, h.nonce],
    [LABEL.expires, BigInt(h.expiresAt)],
    [LABEL.trace, h.traceId],
  ]);
  return encodeCbor(m);
}

/** Seal `payload`: returns the envelope bytes; its id is SHA-256 of them (`envelopeId`). */
export async function sealEnvelope(o: SealOptions): Promise<Bytes> {
  need(o.senderSeed, 32, "sender seed");
  const protectedBytes = protectedHeader(o.header, o.recipientPublicKey);
  const signature = ed25519Sign(o.senderSeed, encodeCbor([ENVELOPE_SENDER_CONTEXT, protectedBytes, o.payload]));
  const plaintext = encodeCbor([ed25519PublicKey(o.senderSeed), signature, o.payload]);
  const aad = encodeCbor(["Encrypt0", protectedBytes, new Uint8Array(0)]);
  const suite = cipherSuite(o.header.suite);
  const recipientPublicKey = await suite.kem.deserializePublicKey(Uint8Array.from(o.recipientPublicKey).buffer);
  const sealed = await suite.seal(
    { recipientPublicKey, ...(o.ekm ? { ekm: Uint8Array.from(o.ekm).buffer } : {}) },
    Uint8Array.from(plaintext).buffer,
    Uint8Array.from(aad).buffer,
  );
  const out = encodeTagged(16, [
    protectedBytes,
    new Map([[LABEL_EK, new Uint8Array(sealed.enc)]]),
    new Uint8Array(sealed.ct),
  ]);
  if (out.length > MAX_ENVELOPE_BYTES) {
    throw new SealbridgeError("malformed", `envelope of ${out.length} bytes exceeds ${MAX_ENVELOPE_BYTES}`);
  }
  return out;
}

export const envelopeId = (envelope: Bytes): Bytes => sha256(envelope);

/** The netting program's obligation (§4): pay `amount` of `token` to `to`. 57 bytes. */
export function nettingObligation(to: Bytes, token: Bytes, amount: bigint): Bytes {
  need(to, 20, "to");
  need(token, 20, "token");
  if (amount <= 0n || amount > (1n << 127n) - 1n) {
    throw new SealbridgeError("malformed", "amount must be in 1..=2^127-1");
  }
  return concat(Uint8Array.of(1), to, token, uintBE(amount, 16));
}

