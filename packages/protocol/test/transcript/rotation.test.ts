/**
 * Relay key rotation statements (transcript/rotation.ts): a note naming the retiring key and its
 * successor, signed by both, checked against the key a device or witness pinned.
 */
import { ed25519 } from '@noble/curves/ed25519.js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeVerifierKey, makeVerifierKey, parseVerifierKey, signNote } from '../../src/transcript/note.ts';
import { KEY_ROTATION_HEADER, signKeyRotation, verifyKeyRotation } from '../../src/transcript/rotation.ts';

const NAME = 'relay.example';
const keyOf = (seed: Uint8Array, name = NAME) => makeVerifierKey(name, ed25519.getPublicKey(seed));
const vkeyOf = (seed: Uint8Array, name = NAME) => encodeVerifierKey(keyOf(seed, name));
const seed = (n: number) => new Uint8Array(32).fill(n);
const OLD = seed(1);
const NEW = seed(2);

const rotation = (oldSeed = OLD, newSeed = NEW) =>
  signKeyRotation(NAME, oldSeed, newSeed, vkeyOf(oldSeed), vkeyOf(newSeed));

describe('relay key rotation statements', () => {
  it('a statement by both keys hands trust from the pinned key to its successor', () => {
    const r = verifyKeyRotation(rotation(), keyOf(OLD));
    expect(r.ok).toBe(true);
    if (r.ok) expect(encodeVerifierKey(r.value)).toBe(vkeyOf(NEW));
    expect(rotation().startsWith(`${KEY_ROTATION_HEADER}\nfrom ${vkeyOf(OLD)}\nto ${vkeyOf(NEW)}\n\n`)).toBe(
      true,
    );
  });

  it('is refused against another pinned key, and when either key did not sign', () => {
    expect(verifyKeyRotation(rotation(), keyOf(seed(3)))).toMatchObject({
      ok: false,
      code: 'NOTE_UNVERIFIED',
    });
    const text = `${KEY_ROTATION_HEADER}\nfrom ${vkeyOf(OLD)}\nto ${vkeyOf(NEW)}\n`;
    // Only the old key signed: no proof the successor's holder took part.
    expect(verifyKeyRotation(signNote(text, [{ name: NAME, seed: OLD }]), keyOf(OLD))).toMatchObject({
      ok: false,
      code: 'NOTE_UNVERIFIED',
    });
    // Only the new key signed: no endorsement by the pinned key.
    expect(verifyKeyRotation(signNote(text, [{ name: NAME, seed: NEW }]), keyOf(OLD))).toMatchObject({
      ok: false,
      code: 'NOTE_UNVERIFIED',
    });
    // A third key signing in the old key's name (same name, other key id) does not count.
    expect(
      verifyKeyRotation(
        signNote(text, [
          { name: NAME, seed: seed(9) },
          { name: NAME, seed: NEW },
        ]),
        keyOf(OLD),
      ).ok,
    ).toBe(false);
  });

  it('refuses a successor under another name, the same key twice, and text that is not a rotation', () => {
    const renamed = signNote(
      `${KEY_ROTATION_HEADER}\nfrom ${vkeyOf(OLD)}\nto ${vkeyOf(NEW, 'other.example')}\n`,
      [
        { name: NAME, seed: OLD },
        { name: 'other.example', seed: NEW },
      ],
    );
    expect(verifyKeyRotation(renamed, keyOf(OLD))).toMatchObject({ ok: false, code: 'NOTE_MALFORMED' });
    const same = signNote(`${KEY_ROTATION_HEADER}\nfrom ${vkeyOf(OLD)}\nto ${vkeyOf(OLD)}\n`, [
      { name: NAME, seed: OLD },
    ]);
    expect(verifyKeyRotation(same, keyOf(OLD))).toMatchObject({ ok: false, code: 'NOTE_MALFORMED' });
    const checkpoint = signNote(`${NAME}/c_x\n1\nAAAA\n`, [
      { name: NAME, seed: OLD },
      { name: NAME, seed: NEW },
    ]);
    expect(verifyKeyRotation(checkpoint, keyOf(OLD))).toMatchObject({ ok: false, code: 'NOTE_MALFORMED' });
    expect(verifyKeyRotation('not a note', keyOf(OLD)).ok).toBe(false);
  });

  it('property: any pair of distinct keys rotates, and any edit of the signed statement is refused', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.nat(),
        fc.integer({ min: 1, max: 255 }),
        (a, b, at, flip) => {
          fc.pre(!a.every((x, i) => x === b[i]));
          const statement = rotation(a, b);
          const ok = verifyKeyRotation(statement, keyOf(a));
          expect(ok.ok && encodeVerifierKey(ok.value) === vkeyOf(b)).toBe(true);
          // One byte of the text or of a signature changed: refused, whatever it became.
          const bytes = new TextEncoder().encode(statement);
          const i = at % bytes.length;
          const edited = bytes.slice();
          edited[i] = (edited[i] as number) ^ flip;
          const r = verifyKeyRotation(new TextDecoder().decode(edited), keyOf(a));
          expect(r.ok).toBe(false);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('the successor it returns parses back from its verifier key string', () => {
    const r = verifyKeyRotation(rotation(), keyOf(OLD));
    expect(r.ok && parseVerifierKey(encodeVerifierKey(r.value)).ok).toBe(true);
  });
});
