// RFC 9162 §2.1 Merkle trees: leaf and node hashes, inclusion and consistency proof checks, with
// transparency-dev/merkle's edge cases (docs/PROTOCOL.md §10).
import { concat, equal, SealbridgeError, type Bytes } from "./bytes.js";
import { sha256 } from "./hash.js";

export const leafHash = (data: Bytes): Bytes => sha256(concat(Uint8Array.of(0), data));
export const nodeHash = (l: Bytes, r: Bytes): Bytes => sha256(concat(Uint8Array.of(1), l, r));
export const EMPTY_ROOT = sha256(new Uint8Array(0));

/** MTH over leaf data (for small trees and tests). */
export function merkleRoot(leaves: Bytes[]): Bytes {
  const hashes = leaves.map(leafHash);
  const mth = (a: number, b: number): Bytes => {
    if (b - a === 0) return EMPTY_ROOT;
    if (b - a === 1) return hashes[a];
    let k = 1;
    while (k * 2 < b - a) k *= 2;
    return nodeHash(mth(a, a + k), mth(a + k, b));
  };
  return mth(0, hashes.length);
}

/** RFC 9162 §2.1.3.2: the root an inclusion proof leads to (throws for a malformed proof). */
export function rootFromInclusion(index: bigint, size: bigint, leaf: Bytes, proof: Bytes[]): Bytes {
  if (index >= size) throw new SealbridgeError("not-included", `leaf ${index} is beyond a tree of ${size}`);
  let fn = index;
  let sn = size - 1n;
  let r = leaf;
  for (const p of proof) {
    if (p.length !== 32) throw new SealbridgeError("malformed", "proof hash of the wrong length");
    if (sn === 0n) throw new SealbridgeError("not-included", "inclusion proof too long");
    if ((fn & 1n) === 1n || fn === sn) {
      r = nodeHash(p, r);
      while ((fn & 1n) === 0n && fn !== 0n) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      r = nodeHash(r, p);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) throw new SealbridgeError("not-included", "inclusion proof too short");
  return r;
}

/** Whether `leaf` is at `index` of the tree of `size` with `root`. */
export function verifyInclusion(index: bigint, size: bigint, leaf: Bytes, proof: Bytes[], root: Bytes): void {
  if (!equal(rootFromInclusion(index, size, leaf, proof), root)) {
    throw new SealbridgeError("not-included", `inclusion proof for leaf ${index} does not lead to the root`);
  }
}

/** RFC 9162 §2.1.4.2: the tree of `size1` with `root1` is a prefix of `size2` with `root2`. */
export function verifyConsistency(size1: bigint, size2: bigint, root1: Bytes, root2: Bytes, proof: Bytes[]): void {
  const fail = (why: string) => {
    throw new SealbridgeError("not-included", `consistency ${size1} → ${size2}: ${why}`);
  };
  if (size1 === 0n) fail("from the empty tree");
  if (size1 > size2) fail("the first tree is larger");
  if (size1 === size2) {
    if (proof.length !== 0 || !equal(root1, root2)) fail("equal sizes need an empty proof and equal roots");
    return;
  }
  let path = proof;
  if ((size1 & (size1 - 1n)) === 0n) path = [root1, ...proof];
  if (path.length === 0) fail("empty proof");
  let fn = size1 - 1n;
  let sn = size2 - 1n;
  while ((fn & 1n) === 1n) {
    fn >>= 1n;
    sn >>= 1n;
  }
  let fr = path[0];
  let sr = path[0];
  for (const c of path.slice(1)) {
    if (sn === 0n) fail("proof too long");
    if ((fn & 1n) === 1n || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      while ((fn & 1n) === 0n && fn !== 0n) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) fail("proof too short");
  if (!equal(fr, root1) || !equal(sr, root2)) fail("roots do not match");
}
