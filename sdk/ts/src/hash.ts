// Hash and signature primitives from well-kept libraries (@noble/hashes, @noble/curves).
import { sha256 as nobleSha256, sha512 } from "@noble/hashes/sha2.js";
import { keccak_256 } from "@noble/hashes/sha3.js";
import { ed25519 } from "@noble/curves/ed25519.js";
import type { Bytes } from "./bytes.js";

export const sha256 = (b: Bytes): Bytes => nobleSha256(b);
export const keccak256 = (b: Bytes): Bytes => keccak_256(b);
export { sha512 };

/** RFC 8032 Ed25519 verification (strict: non-canonical encodings refused). */
export function ed25519Verify(publicKey: Bytes, signature: Bytes, message: Bytes): boolean {
  if (publicKey.length !== 32 || signature.length !== 64) return false;
  try {
    return ed25519.verify(signature, message, publicKey, { zip215: false });
  } catch {
    return false;
  }
}

export function ed25519PublicKey(seed: Bytes): Bytes {
  return ed25519.getPublicKey(seed);
}

export function ed25519Sign(seed: Bytes, message: Bytes): Bytes {
  return ed25519.sign(message, seed);
}
