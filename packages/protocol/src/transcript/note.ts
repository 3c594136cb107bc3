/**
 * C2SP signed-note (https://c2sp.org/signed-note) with Ed25519 keys, byte-compatible with
 * Go's golang.org/x/mod/sumdb/note.
 *
 *   note      = text "\n" 1*signature-line
 *   text      = 1*(line "\n")             (UTF-8, no control characters but newline)
 *   sig line  = "— " name " " base64(keyID(4) || signature) "\n"
 *   keyID     = SHA-256(name || "\n" || alg || public key)[:4]   (alg 0x01 = Ed25519)
 */
import { ed25519 } from '@noble/curves/ed25519.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { base64 } from '@scure/base';
import { concatBytes, constantTimeEqual, fromHex, fromUtf8, toHex, utf8 } from '../bytes/index.ts';
import { type Decoded, fail, ProtocolError } from '../errors.ts';
import { nobleEd25519, type SignatureSuite } from '../identity/keys.ts';

export const ALG_ED25519 = 0x01;
export const ALG_COSIGNATURE_V1 = 0x04;
export const MAX_NOTE_BYTES = 1 << 20;
const MAX_SIGNATURES = 100;
const DASH = '\u2014';

export interface NoteSignature {
  readonly name: string;
  readonly keyId: Uint8Array;
  /** The decoded signature blob after the 4-byte key id. */
  readonly blob: Uint8Array;
}

export interface Note {
  /** The signed text, ending in a newline. */
  readonly text: string;
  readonly signatures: readonly NoteSignature[];
}

export interface NoteVerifierKey {
  readonly name: string;
  readonly keyId: Uint8Array;
  readonly alg: number;
  readonly publicKey: Uint8Array;
}

/** A key name: non-empty, no Unicode whitespace, no plus sign. */
export function isValidKeyName(name: string): boolean {
  return name.length > 0 && !/[\s+]/u.test(name) && !name.includes('\u2014');
}

export function keyId(name: string, alg: number, publicKey: Uint8Array): Uint8Array {
  return sha256(concatBytes(utf8(name), Uint8Array.of(0x0a, alg), publicKey)).slice(0, 4);
}

export function makeVerifierKey(name: string, publicKey: Uint8Array, alg = ALG_ED25519): NoteVerifierKey {
  if (!isValidKeyName(name)) throw new ProtocolError('KEY_INVALID', 'invalid key name', 'name');
  if (publicKey.length !== 32)
    throw new ProtocolError('KEY_INVALID', 'Ed25519 public keys are 32 bytes', 'publicKey');
  return { name, keyId: keyId(name, alg, publicKey), alg, publicKey };
}

/** "<name>+<hex key id>+<base64(alg || public key)>" — Go's verifier key string. */
export function encodeVerifierKey(k: NoteVerifierKey): string {
  return `${k.name}+${toHex(k.keyId)}+${base64.encode(concatBytes(Uint8Array.of(k.alg), k.publicKey))}`;
}

export function parseVerifierKey(s: string): Decoded<NoteVerifierKey> {
  const i = s.indexOf('+');
  const j = i < 0 ? -1 : s.indexOf('+', i + 1);
  if (i <= 0 || j < 0) return fail('KEY_INVALID', 'vkey', 'expected name+keyid+key');
  const name = s.slice(0, i);
  const hexId = s.slice(i + 1, j);
  if (!isValidKeyName(name) || !/^[0-9a-f]{8}$/.test(hexId))
    return fail('KEY_INVALID', 'vkey', 'bad name or key id');
  let raw: Uint8Array;
  try {
    raw = base64.decode(s.slice(j + 1));
  } catch {
    return fail('KEY_INVALID', 'vkey', 'key is not base64');
  }
  const alg = raw[0];
  if ((alg !== ALG_ED25519 && alg !== ALG_COSIGNATURE_V1) || raw.length !== 33) {
    return fail('KEY_INVALID', 'vkey', 'only Ed25519 (0x01) and cosignature/v1 (0x04) keys are supported');
  }
  const publicKey = raw.slice(1);
  const id = fromHex(hexId);
  if (!constantTimeEqual(id, keyId(name, alg, publicKey)))
    return fail('KEY_INVALID', 'vkey', 'key id does not match');
  return { ok: true, value: { name, keyId: id, alg, publicKey } };
}

/** "PRIVATE+KEY+<name>+<hex key id>+<base64(alg || seed)>" — Go's signer key string. */
export function parseSignerKey(
  s: string,
): Decoded<{ name: string; seed: Uint8Array; verifier: NoteVerifierKey }> {
  const parts = s.split('+');
  if (parts.length < 5 || parts[0] !== 'PRIVATE' || parts[1] !== 'KEY')
    return fail('KEY_INVALID', 'skey', 'not a signer key');
  const name = parts[2] as string;
  let raw: Uint8Array;
  try {
    raw = base64.decode(parts.slice(4).join('+'));
  } catch {
    return fail('KEY_INVALID', 'skey', 'key is not base64');
  }
  if (raw[0] !== ALG_ED25519 || raw.length !== 33)
    return fail('KEY_INVALID', 'skey', 'only Ed25519 signer keys');
  const seed = raw.slice(1);
  const verifier = makeVerifierKey(name, ed25519.getPublicKey(seed));
  if (toHex(verifier.keyId) !== parts[3]) return fail('KEY_INVALID', 'skey', 'key id does not match');
  return { ok: true, value: { name, seed, verifier } };
}

/** True when `s` holds a C0 control character or DEL (newline allowed when asked). */
export function hasControlCharacters(s: string, allowNewline: boolean): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if ((c < 0x20 && !(allowNewline && c === 0x0a)) || c === 0x7f) return true;
  }
  return false;
}

function checkText(text: string): string | undefined {
  if (text.length === 0 || !text.endsWith('\n')) return 'text must be non-empty and end in a newline';
  if (text.includes('\n\n') || text.startsWith('\n')) return 'text must not contain blank lines';
  // No control characters other than newline (signed-note: text is UTF-8 with no other controls).
  if (hasControlCharacters(text, true)) return 'text contains control characters';
  return undefined;
}

/** Signs text with Ed25519 keys (seed, name) and returns the encoded note. */
export function signNote(text: string, signers: ReadonlyArray<{ name: string; seed: Uint8Array }>): string {
  const problem = checkText(text);
  if (problem !== undefined) throw new ProtocolError('NOTE_MALFORMED', problem, 'text');
  const msg = utf8(text);
  const lines = signers.map(({ name, seed }) => {
    const k = makeVerifierKey(name, ed25519.getPublicKey(seed));
    return signatureLine(name, concatBytes(k.keyId, ed25519.sign(msg, seed)));
  });
  return `${text}\n${lines.join('')}`;
}

export function signatureLine(name: string, keyIdAndBlob: Uint8Array): string {
  return `${DASH} ${name} ${base64.encode(keyIdAndBlob)}\n`;
}

/** Parses a note strictly (size, text rules, signature-line syntax). Signatures are not checked here. */
export function parseNote(input: string | Uint8Array): Decoded<Note> {
  let s: string;
  if (typeof input === 'string') s = input;
  else {
    if (input.length > MAX_NOTE_BYTES) return fail('DECODE_TOO_LARGE', 'note', 'note too large');
    try {
      s = fromUtf8(input, 'note');
    } catch {
      return fail('NOTE_MALFORMED', 'note', 'note is not UTF-8');
    }
  }
  if (s.length > MAX_NOTE_BYTES) return fail('DECODE_TOO_LARGE', 'note', 'note too large');
  const split = s.lastIndexOf('\n\n');
  if (split < 0) return fail('NOTE_MALFORMED', 'note', 'missing the blank line before signatures');
  const text = s.slice(0, split + 1);
  const problem = checkText(text);
  if (problem !== undefined) return fail('NOTE_MALFORMED', 'note.text', problem);
  const sigPart = s.slice(split + 2);
  if (sigPart.length === 0 || !sigPart.endsWith('\n'))
    return fail('NOTE_MALFORMED', 'note.signatures', 'no signatures');
  const lines = sigPart.slice(0, -1).split('\n');
  if (lines.length > MAX_SIGNATURES) return fail('NOTE_MALFORMED', 'note.signatures', 'too many signatures');
  const signatures: NoteSignature[] = [];
  for (const [i, line] of lines.entries()) {
    const m = /^\u2014 (\S+) ([A-Za-z0-9+/=]+)$/u.exec(line);
    if (m === null) return fail('NOTE_MALFORMED', `note.signatures[${i}]`, 'malformed signature line');
    const name = m[1] as string;
    if (!isValidKeyName(name)) return fail('NOTE_MALFORMED', `note.signatures[${i}]`, 'invalid key name');
    let raw: Uint8Array;
    try {
      raw = base64.decode(m[2] as string);
    } catch {
      return fail('NOTE_MALFORMED', `note.signatures[${i}]`, 'signature is not base64');
    }
    if (raw.length < 5) return fail('NOTE_MALFORMED', `note.signatures[${i}]`, 'signature too short');
    signatures.push({ name, keyId: raw.slice(0, 4), blob: raw.slice(4) });
  }
  return { ok: true, value: { text, signatures } };
}

export function encodeNote(note: Note): string {
  return `${note.text}\n${note.signatures.map((x) => signatureLine(x.name, concatBytes(x.keyId, x.blob))).join('')}`;
}

function matches(sig: NoteSignature, k: NoteVerifierKey): boolean {
  return sig.name === k.name && constantTimeEqual(sig.keyId, k.keyId);
}

/**
 * Verifies the Ed25519 (0x01) signatures of the given keys. Signatures by unknown keys are
 * ignored (a note may carry others' cosignatures); a known key whose signature does not verify
 * makes the whole note invalid (SIG_INVALID); no known signature at all is NOTE_UNVERIFIED.
 */
export function verifyNote(
  note: Note,
  keys: readonly NoteVerifierKey[],
  suite?: SignatureSuite,
): Decoded<NoteVerifierKey[]> {
  const msg = utf8(note.text);
  const verified: NoteVerifierKey[] = [];
  for (const sig of note.signatures) {
    const k = keys.find((key) => key.alg === ALG_ED25519 && matches(sig, key));
    if (k === undefined) continue;
    let ok = false;
    try {
      ok = sig.blob.length === 64 && (suite ?? nobleEd25519).verify(sig.blob, msg, k.publicKey);
    } catch {
      ok = false;
    }
    if (!ok) return fail('SIG_INVALID', `note.signatures.${sig.name}`, 'a note signature does not verify');
    if (!verified.includes(k)) verified.push(k);
  }
  if (verified.length === 0) return fail('NOTE_UNVERIFIED', 'note', 'no signature by a known key');
  return { ok: true, value: verified };
}
