// C2SP signed notes (c2sp.org/signed-note), checkpoints (c2sp.org/tlog-checkpoint) and witness
// cosignatures (c2sp.org/tlog-cosignature v1): docs/PROTOCOL.md §10.
import { concat, equal, fromBase64, readUintBE, SealbridgeError, text, type Bytes } from "./bytes.js";
import { ed25519Verify, sha256 } from "./hash.js";

export const MAX_NOTE_BYTES = 128 * 1024;
const MAX_SIGNATURES = 64;
const SIG_PREFIX = "\u2014 ";
const ED25519_TYPE = 0x01;
const COSIGNATURE_TYPE = 0x04;

export interface Checkpoint {
  origin: string;
  size: bigint;
  root: Bytes;
  /** The note text (the signed body). */
  text: string;
}

/** A note verifier key: `<name>+<key id hex>+<base64(type ‖ key)>`. */
export interface NoteKey {
  name: string;
  keyId: number;
  publicKey: Bytes;
  type: number;
}

function checkName(name: string): void {
  if (name.length === 0 || /[\s+\p{Cc}]/u.test(name)) {
    throw new SealbridgeError("malformed", `key name ${JSON.stringify(name)} is not valid`);
  }
}

export function keyId(name: string, type: number, publicKey: Bytes): number {
  return Number(readUintBE(sha256(concat(text(name), Uint8Array.of(0x0a, type), publicKey)), 0, 4));
}

/** The log's key for `origin` and the attested Ed25519 key (§10: the key name is the origin). */
export function logKey(origin: string, publicKey: Bytes): NoteKey {
  checkName(origin);
  return { name: origin, keyId: keyId(origin, ED25519_TYPE, publicKey), publicKey, type: ED25519_TYPE };
}

/** Parse a vkey string (type 0x01 note keys and 0x04 cosignature keys). */
export function parseVkey(vkey: string): NoteKey {
  // The base64 key may itself hold '+': split at the first two only (names cannot hold one).
  const m = /^([^+]*)\+([^+]*)\+(.*)$/s.exec(vkey);
  const parts = m ? [m[1], m[2], m[3]] : [];
  if (parts.length !== 3 || !/^[0-9a-f]{8}$/.test(parts[1])) {
    throw new SealbridgeError("malformed", `vkey ${JSON.stringify(vkey)} is not name+id+key`);
  }
  checkName(parts[0]);
  const raw = fromBase64(parts[2]);
  if (raw.length !== 33 || (raw[0] !== ED25519_TYPE && raw[0] !== COSIGNATURE_TYPE)) {
    throw new SealbridgeError("unsupported", "vkey: not an Ed25519 note or cosignature key");
  }
  const k: NoteKey = { name: parts[0], keyId: parseInt(parts[1], 16), publicKey: raw.slice(1), type: raw[0] };
  if (keyId(k.name, k.type, k.publicKey) !== k.keyId) {
    throw new SealbridgeError("malformed", "vkey: key id does not match the key");
  }
  return k;
}

interface SplitNote {
  text: string;
  signatures: { name: string; raw: Bytes }[];
}

/** Split a note into its text and well-formed signature lines (any malformed line: refused). */
export function splitNote(note: string): SplitNote {
  if (text(note).length > MAX_NOTE_BYTES) throw new SealbridgeError("malformed", "note too large");
  if (/[\u0000-\u0009\u000b-\u001f\u007f]/.test(note)) {
    throw new SealbridgeError("malformed", "note has control characters");
  }
  const sep = note.lastIndexOf("\n\n");
  if (sep < 0 || !note.endsWith("\n")) throw new SealbridgeError("malformed", "not a signed note");
  const body = note.slice(0, sep + 1);
  const lines = note.slice(sep + 2, -1).split("\n");
  if (lines.length > MAX_SIGNATURES) throw new SealbridgeError("malformed", "too many signatures");
  const signatures = lines.map((l) => {
    if (!l.startsWith(SIG_PREFIX)) throw new SealbridgeError("malformed", "malformed signature line");
    const rest = l.slice(SIG_PREFIX.length);
    const space = rest.indexOf(" ");
    if (space <= 0) throw new SealbridgeError("malformed", "malformed signature line");
    const name = rest.slice(0, space);
    checkName(name);
    const raw = fromBase64(rest.slice(space + 1));
    if (raw.length < 5) throw new SealbridgeError("malformed", "signature too short");
    return { name, raw };
  });
  return { text: body, signatures };
}

/** Parse a checkpoint body (strict: §10 "Checkpoint body"). */
export function parseCheckpoint(body: string): Checkpoint {
  const lines = body.split("\n");
  if (lines.length < 4 || lines[lines.length - 1] !== "" || lines.slice(0, -1).some((l) => l === "")) {
    throw new SealbridgeError("malformed", "checkpoint: lines missing or empty");
  }
  const [origin, size, root] = lines;
  if (!/^(0|[1-9][0-9]*)$/.test(size) || BigInt(size) >= 1n << 64n) {
    throw new SealbridgeError("malformed", "checkpoint: tree size is not a decimal u64");
  }
  const r = fromBase64(root);
  if (r.length !== 32) throw new SealbridgeError("malformed", "checkpoint: root is not 32 bytes");
  return { origin, size: BigInt(size), root: r, text: body };
}

/**
 * Verify a checkpoint note signed by `key` for `origin`: lines of other keys (witnesses) are
 * ignored, every line of this key must verify and at least one must.
 */
export function verifyCheckpoint(note: string, origin: string, key: NoteKey): Checkpoint {
  const { text: body, signatures } = splitNote(note);
  let verified = 0;
  for (const s of signatures) {
    if (s.name !== key.name || s.raw.length < 4 || Number(readUintBE(s.raw, 0, 4)) !== key.keyId) continue;
    if (s.raw.length !== 68 || !ed25519Verify(key.publicKey, s.raw.slice(4), text(body))) {
      throw new SealbridgeError("bad-signature", `checkpoint: the signature of ${key.name} does not verify`);
    }
    verified++;
  }
  if (verified === 0) throw new SealbridgeError("wrong-key", `checkpoint: not signed by ${key.name}`);
  const cp = parseCheckpoint(body);
  if (cp.origin !== origin) {
    throw new SealbridgeError("wrong-origin", `checkpoint of origin ${cp.origin}, not ${origin}`);
  }
  return cp;
}

export interface Cosigned {
  witness: string;
  timestamp: bigint;
}

/**
 * The witnesses among `witnesses` (cosignature keys, type 0x04) whose cosignature on the note
 * verifies; each key counts once, and a line that does not verify cancels nothing.
 */
export function verifyCosignatures(note: string, witnesses: NoteKey[]): Cosigned[] {
  const { text: body, signatures } = splitNote(note);
  const out: Cosigned[] = [];
  const counted: Bytes[] = [];
  for (const s of signatures) {
    if (s.raw.length !== 76) continue;
    const id = Number(readUintBE(s.raw, 0, 4));
    const w = witnesses.find((w) => w.type === COSIGNATURE_TYPE && w.name === s.name && w.keyId === id);
    if (!w) continue;
    const timestamp = readUintBE(s.raw, 4, 8);
    const msg = text(`cosignature/v1\ntime ${timestamp}\n${body}`);
    if (!ed25519Verify(w.publicKey, s.raw.slice(12), msg)) continue;
    if (counted.some((k) => equal(k, w.publicKey))) continue;
    counted.push(w.publicKey);
    out.push({ witness: w.name, timestamp });
  }
  return out;
}

/** Require `k` distinct witnesses of `witnesses` to have cosigned `note`. */
export function requireWitnesses(note: string, witnesses: NoteKey[], k: number): Cosigned[] {
  const c = verifyCosignatures(note, witnesses);
  if (c.length < k) {
    throw new SealbridgeError("bad-signature", `checkpoint cosigned by ${c.length} of the required ${k} witnesses`);
  }
  return c;
}
