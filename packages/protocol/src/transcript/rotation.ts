/**
 * A relay checkpoint key rotation statement: a C2SP signed note whose text names the retiring
 * verifier key and its successor, signed by BOTH keys.
 *
 *   backchannel/v1 relay key rotation
 *   from <old verifier key>
 *   to <new verifier key>
 *
 * The old key's signature is the endorsement a device or witness that pinned it can check; the
 * new key's proves its holder took part (a statement cannot hand trust to a key nobody holds).
 * Both keys carry the same name: the relay's identity does not change with its key.
 */
import { constantTimeEqual } from '../bytes/index.ts';
import { type Decoded, fail } from '../errors.ts';
import type { SignatureSuite } from '../identity/keys.ts';
import { type NoteVerifierKey, parseNote, parseVerifierKey, signNote, verifyNote } from './note.ts';

export const KEY_ROTATION_HEADER = 'backchannel/v1 relay key rotation';

function sameKey(a: NoteVerifierKey, b: NoteVerifierKey): boolean {
  return (
    a.name === b.name &&
    a.alg === b.alg &&
    constantTimeEqual(a.keyId, b.keyId) &&
    constantTimeEqual(a.publicKey, b.publicKey)
  );
}

/** The statement that `name`'s checkpoint key moves from `oldSeed`'s to `newSeed`'s, signed by both. */
export function signKeyRotation(
  name: string,
  oldSeed: Uint8Array,
  newSeed: Uint8Array,
  oldVkey: string,
  newVkey: string,
): string {
  return signNote(`${KEY_ROTATION_HEADER}\nfrom ${oldVkey}\nto ${newVkey}\n`, [
    { name, seed: oldSeed },
    { name, seed: newSeed },
  ]);
}

/**
 * Checks a rotation statement against the key the caller trusts: it must name that key as the
 * one retiring, and carry valid signatures by it and by the successor (same name). Returns the
 * successor.
 */
export function verifyKeyRotation(
  statement: string,
  trusted: NoteVerifierKey,
  suite?: SignatureSuite,
): Decoded<NoteVerifierKey> {
  const note = parseNote(statement);
  if (!note.ok) return note;
  const lines = note.value.text.split('\n');
  if (lines.length !== 4 || lines[0] !== KEY_ROTATION_HEADER || lines[3] !== '')
    return fail('NOTE_MALFORMED', 'rotation', 'not a relay key rotation statement');
  const [from, to] = [lines[1] ?? '', lines[2] ?? ''];
  if (!from.startsWith('from ') || !to.startsWith('to '))
    return fail(
      'NOTE_MALFORMED',
      'rotation',
      'a rotation statement names its keys as "from <key>" and "to <key>"',
    );
  const oldKey = parseVerifierKey(from.slice('from '.length));
  if (!oldKey.ok) return oldKey;
  const newKey = parseVerifierKey(to.slice('to '.length));
  if (!newKey.ok) return newKey;
  if (!sameKey(oldKey.value, trusted))
    return fail('NOTE_UNVERIFIED', 'rotation.from', 'the rotation retires another key than the one trusted');
  if (newKey.value.name !== trusted.name)
    return fail('NOTE_MALFORMED', 'rotation.to', 'the successor key carries another name than the relay');
  if (sameKey(newKey.value, trusted))
    return fail('NOTE_MALFORMED', 'rotation.to', 'the rotation names the same key twice');
  // Each key must have signed (verifyNote refuses a known key whose signature fails).
  for (const k of [trusted, newKey.value]) {
    const v = verifyNote(note.value, [k], suite);
    if (!v.ok) return v;
  }
  return newKey;
}
