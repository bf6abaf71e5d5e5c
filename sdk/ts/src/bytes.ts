// Byte helpers shared by the SDK (no dependencies).

export type Bytes = Uint8Array;

export function fromHex(h: string): Bytes {
  const s = h.trim().replace(/^0x/i, "");
  if (s.length % 2 !== 0 || /[^0-9a-fA-F]/.test(s)) {
    throw new SealbridgeError("malformed", `not hex: ${h.slice(0, 40)}`);
  }
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.substr(2 * i, 2), 16);
  return out;
}

export function toHex(b: Bytes): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

export function fromHexLen(h: string, len: number, what: string): Bytes {
  const b = fromHex(h);
  if (b.length !== len) {
    throw new SealbridgeError("malformed", `${what}: ${b.length} bytes, not ${len}`);
  }
  return b;
}

export function concat(...parts: Bytes[]): Bytes {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

export function equal(a: Bytes, b: Bytes): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** `n` as a big-endian unsigned integer of `len` bytes. */
export function uintBE(n: bigint | number, len: number): Bytes {
  let v = BigInt(n);
  if (v < 0n || v >= 1n << BigInt(8 * len)) {
    throw new SealbridgeError("malformed", `${n} does not fit ${len} bytes`);
  }
  const out = new Uint8Array(len);
  for (let i = len - 1; i >= 0; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

export function readUintBE(b: Bytes, at: number, len: number): bigint {
  let v = 0n;
  for (let i = 0; i < len; i++) v = (v << 8n) | BigInt(b[at + i]);
  return v;
}

const utf8 = new TextEncoder();
export const text = (s: string): Bytes => utf8.encode(s);

export function fromBase64(s: string): Bytes {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(s) || s.length % 4 !== 0) {
    throw new SealbridgeError("malformed", "not canonical base64");
  }
  const b = new Uint8Array(Buffer.from(s, "base64"));
  if (Buffer.from(b).toString("base64") !== s) {
    throw new SealbridgeError("malformed", "not canonical base64");
  }
  return b;
}

export const toBase64 = (b: Bytes): string => Buffer.from(b).toString("base64");

/**
 * Every failure the SDK reports: `code` is stable (tests and callers match on it), `message`
 * says what was wrong in words.
 */
export class SealbridgeError extends Error {
  constructor(
    readonly code:
      | "malformed"
      | "bad-signature"
      | "wrong-key"
      | "wrong-origin"
      | "not-included"
      | "not-registered"
      | "chain-mismatch"
      | "unsupported"
      | "http",
    message: string,
  ) {
    super(message);
    this.name = "SealbridgeError";
  }
}
