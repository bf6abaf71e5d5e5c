// Deterministic CBOR (RFC 8949 §4.2.1) through cborg: encoding the structures we produce and a
// strict decoder (minimal integers and lengths, no indefinite lengths, no duplicate keys).
import { decode, encode } from "cborg";
import { concat, SealbridgeError, type Bytes } from "./bytes.js";

/** Deterministic encoding (cborg sorts map keys and encodes every integer minimally). A copy:
 * under Node cborg may hand back a view of a larger buffer. */
export function encodeCbor(value: unknown): Bytes {
  return Uint8Array.from(encode(value));
}

/** A COSE message: the one-byte head of tag `tag` (< 24) before the encoded array. */
export function encodeTagged(tag: number, value: unknown): Bytes {
  if (tag < 0 || tag >= 24) throw new SealbridgeError("unsupported", `tag ${tag}`);
  return concat(Uint8Array.of(0xc0 | tag), encode(value));
}

/** The content of a COSE message with the one-byte tag `tag` (< 24), decoded strictly. */
export function decodeTagged(bytes: Bytes, tag: number, what: string): unknown {
  if (bytes.length < 1 || bytes[0] !== (0xc0 | tag)) {
    throw new SealbridgeError("malformed", `${what}: not tagged ${tag}`);
  }
  return decodeStrict(bytes.subarray(1), what);
}

/** Strict decode of one item: anything but deterministic CBOR is refused. */
export function decodeStrict(bytes: Bytes, what: string): unknown {
  try {
    return decode(bytes, {
      strict: true,
      useMaps: true,
      rejectDuplicateMapKeys: true,
      allowIndefinite: false,
      allowUndefined: false,
      allowInfinity: false,
      allowNaN: false,
      allowBigInt: true,
    });
  } catch (e) {
    throw new SealbridgeError("malformed", `${what}: ${(e as Error).message}`);
  }
}

/** A CBOR unsigned integer as a bigint (cborg gives numbers below 2^53, bigints above). */
export function uint(v: unknown, what: string): bigint {
  if (typeof v === "number" && Number.isInteger(v) && v >= 0) return BigInt(v);
  if (typeof v === "bigint" && v >= 0n) return v;
  throw new SealbridgeError("malformed", `${what}: not an unsigned integer`);
}

export function bstr(v: unknown, what: string, len?: number): Bytes {
  if (!(v instanceof Uint8Array)) throw new SealbridgeError("malformed", `${what}: not a byte string`);
  if (len !== undefined && v.length !== len) {
    throw new SealbridgeError("malformed", `${what}: ${v.length} bytes, not ${len}`);
  }
  return v;
}
