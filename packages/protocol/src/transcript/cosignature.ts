/**
 * C2SP tlog-cosignature v1 (https://c2sp.org/tlog-cosignature): a witness's Ed25519 signature
 * over "cosignature/v1\ntime <T>\n" + checkpoint text, in a signed-note signature line whose
 * blob is timestamp (8 bytes, big-endian seconds) || signature (64 bytes); key alg 0x04.
 */
import { ed25519 } from '@noble/curves/ed25519.js';
import { concatBytes, constantTimeEqual, utf8 } from '../bytes/index.ts';
import { type Decoded, fail } from '../errors.ts';
import { nobleEd25519, type SignatureSuite } from '../identity/keys.ts';
import {
  ALG_COSIGNATURE_V1,
  makeVerifierKey,
  type Note,
  type NoteSignature,
  type NoteVerifierKey,
  signatureLine,
} from './note.ts';

export function cosignatureKey(name: string, publicKey: Uint8Array): NoteVerifierKey {
  return makeVerifierKey(name, publicKey, ALG_COSIGNATURE_V1);
}

function signedMessage(checkpointText: string, timeSeconds: number): Uint8Array {
  return utf8(`cosignature/v1\ntime ${timeSeconds}\n${checkpointText}`);
}

function u64(n: number): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(n));
  return b;
}

/** A witness cosigns a checkpoint (the note's text) at `timeSeconds`; returns the signature line. */
export function cosign(
  checkpointText: string,
  witness: { name: string; seed: Uint8Array },
  timeSeconds: number,
): string {
  const key = cosignatureKey(witness.name, ed25519.getPublicKey(witness.seed));
  const sig = ed25519.sign(signedMessage(checkpointText, timeSeconds), witness.seed);
  return signatureLine(witness.name, concatBytes(key.keyId, u64(timeSeconds), sig));
}

export interface VerifiedCosignature {
  readonly witness: NoteVerifierKey;
  readonly timeSeconds: number;
}

function verifyOne(
  text: string,
  sig: NoteSignature,
  key: NoteVerifierKey,
  suite: SignatureSuite | undefined,
): VerifiedCosignature | undefined {
  if (sig.blob.length !== 72) return undefined;
  const t = new DataView(sig.blob.buffer, sig.blob.byteOffset, 8).getBigUint64(0);
  if (t > BigInt(Number.MAX_SAFE_INTEGER)) return undefined;
  const timeSeconds = Number(t);
  try {
    const msg = signedMessage(text, timeSeconds);
    const ok = (suite ?? nobleEd25519).verify(sig.blob.slice(8), msg, key.publicKey);
    return ok ? { witness: key, timeSeconds } : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Verifies the cosignatures of the given witnesses on a checkpoint note. A present but invalid
 * cosignature by a known witness is COSIGNATURE_INVALID; missing ones are simply not returned.
 */
export function verifyCosignatures(
  note: Note,
  witnesses: readonly NoteVerifierKey[],
  suite?: SignatureSuite,
): Decoded<VerifiedCosignature[]> {
  const out: VerifiedCosignature[] = [];
  for (const sig of note.signatures) {
    const key = witnesses.find(
      (w) => w.alg === ALG_COSIGNATURE_V1 && w.name === sig.name && constantTimeEqual(w.keyId, sig.keyId),
    );
    if (key === undefined) continue;
    const v = verifyOne(note.text, sig, key, suite);
    if (v === undefined)
      return fail(
        'COSIGNATURE_INVALID',
        `note.signatures.${sig.name}`,
        'a witness cosignature does not verify',
      );
    out.push(v);
  }
  return { ok: true, value: out };
}
