import { describe, expect, it } from 'vitest';
import { ed25519 } from '@noble/curves/ed25519.js';
import { encodeCheckpoint, parseCheckpoint } from '../../src/transcript/checkpoint.ts';
import { cosign, cosignatureKey, verifyCosignatures } from '../../src/transcript/cosignature.ts';
import {
  encodeNote,
  encodeVerifierKey,
  makeVerifierKey,
  parseNote,
  parseSignerKey,
  parseVerifierKey,
  signNote,
  verifyNote,
} from '../../src/transcript/note.ts';

// golang.org/x/mod/sumdb/note: the published example key, text and signed note.
const GO_VKEY = 'PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW';
const GO_SKEY = 'PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz';
const GO_TEXT =
  "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
const GO_NOTE = `${GO_TEXT}\n\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n`;

describe('C2SP signed-note against Go sumdb/note', () => {
  it('parses the published verifier and signer keys', () => {
    const v = parseVerifierKey(GO_VKEY);
    expect(v.ok).toBe(true);
    if (v.ok) expect(encodeVerifierKey(v.value)).toBe(GO_VKEY);
    const s = parseSignerKey(GO_SKEY);
    expect(s.ok && encodeVerifierKey(s.value.verifier)).toBe(GO_VKEY);
  });

  it('reproduces the published signed note byte for byte', () => {
    const s = parseSignerKey(GO_SKEY);
    if (!s.ok) throw new Error(s.message);
    expect(signNote(GO_TEXT, [{ name: s.value.name, seed: s.value.seed }])).toBe(GO_NOTE);
  });

  it('verifies the published note, round-trips it, and refuses an edited one', () => {
    const v = parseVerifierKey(GO_VKEY);
    if (!v.ok) throw new Error('vkey');
    const n = parseNote(GO_NOTE);
    if (!n.ok) throw new Error(n.message);
    expect(encodeNote(n.value)).toBe(GO_NOTE);
    expect(verifyNote(n.value, [v.value]).ok).toBe(true);
    const edited = parseNote(GO_NOTE.replace('cryptography', 'cryptographY'));
    if (!edited.ok) throw new Error('parse');
    expect(verifyNote(edited.value, [v.value])).toMatchObject({ ok: false, code: 'SIG_INVALID' });
  });

  it('refuses mangled verifier keys', () => {
    for (const bad of [
      GO_VKEY.replace('c74f20a3', 'c74f20a4'),
      GO_VKEY.replace('PeterNeumann', 'PeterNeumann2'),
      GO_VKEY.slice(0, -2),
      'PeterNeumann+c74f20a3',
      `+c74f20a3+${GO_VKEY.split('+')[2]}`,
    ]) {
      expect(parseVerifierKey(bad).ok).toBe(false);
    }
  });

  it.each([
    ['wrong dash', GO_NOTE.replace('\u2014', '-'), 'NOTE_MALFORMED'],
    ['missing blank line', GO_NOTE.replace('\n\n', '\n'), 'NOTE_MALFORMED'],
    ['bad base64', GO_NOTE.replace('x08go', 'x08g!'), 'NOTE_MALFORMED'],
    ['truncated signature', `${GO_TEXT}\n\u2014 PeterNeumann x08=\n`, 'NOTE_MALFORMED'],
    ['no final newline', GO_NOTE.slice(0, -1), 'NOTE_MALFORMED'],
    ['no signatures', `${GO_TEXT}\n`, 'NOTE_MALFORMED'],
    ['control character', GO_NOTE.replace('If you', 'If\u0007you'), 'NOTE_MALFORMED'],
    ['oversize', `${'a'.repeat(1 << 20)}\n\n\u2014 x AAAAAAAA\n`, 'DECODE_TOO_LARGE'],
  ])('refuses a note with %s', (_name, text, code) => {
    expect(parseNote(text)).toMatchObject({ ok: false, code });
  });

  it('refuses non-UTF-8 bytes', () => {
    expect(parseNote(new Uint8Array([0xff, 0xfe, 0x0a, 0x0a]))).toMatchObject({
      ok: false,
      code: 'NOTE_MALFORMED',
    });
  });

  it('a note signed only by unknown keys is NOTE_UNVERIFIED', () => {
    const other = makeVerifierKey('other', ed25519.getPublicKey(new Uint8Array(32).fill(3)));
    const n = parseNote(GO_NOTE);
    if (!n.ok) throw new Error('parse');
    expect(verifyNote(n.value, [other])).toMatchObject({ ok: false, code: 'NOTE_UNVERIFIED' });
  });
});

describe('C2SP tlog-checkpoint and tlog-cosignature', () => {
  const root = new Uint8Array(32).fill(7);
  const body = encodeCheckpoint({ origin: 'relay.example/c_abc', size: 42, root, extensions: [] });

  it('serializes and parses byte-exactly', () => {
    expect(body).toBe(`relay.example/c_abc\n42\n${Buffer.from(root).toString('base64')}\n`);
    const p = parseCheckpoint(body);
    expect(p.ok && encodeCheckpoint(p.value)).toBe(body);
  });

  it.each([
    ['leading zero', body.replace('\n42\n', '\n042\n')],
    ['negative size', body.replace('\n42\n', '\n-1\n')],
    ['short root', body.replace(/\n[^\n]+\n$/, '\nAAAA\n')],
    ['missing newline', body.slice(0, -1)],
    ['empty origin', body.replace('relay.example/c_abc', '')],
  ])('refuses a checkpoint with %s', (_n, text) => {
    expect(parseCheckpoint(text).ok).toBe(false);
  });

  it('a witness cosignature verifies with its timestamp and fails on another checkpoint', () => {
    const relaySeed = new Uint8Array(32).fill(1);
    const witnessSeed = new Uint8Array(32).fill(2);
    const signed = signNote(body, [{ name: 'relay.example', seed: relaySeed }]);
    const line = cosign(body, { name: 'witness.a', seed: witnessSeed }, 1_700_000_000);
    const withCosig = parseNote(signed + line);
    if (!withCosig.ok) throw new Error(withCosig.message);
    const wkey = cosignatureKey('witness.a', ed25519.getPublicKey(witnessSeed));
    const r = verifyCosignatures(withCosig.value, [wkey]);
    expect(r.ok && r.value.map((c) => c.timeSeconds)).toEqual([1_700_000_000]);
    // the relay's own signature still verifies alongside
    const rkey = makeVerifierKey('relay.example', ed25519.getPublicKey(relaySeed));
    expect(verifyNote(withCosig.value, [rkey]).ok).toBe(true);
    // the same cosignature line moved onto another checkpoint fails
    const other = encodeCheckpoint({ origin: 'relay.example/c_abc', size: 43, root, extensions: [] });
    const moved = parseNote(signNote(other, [{ name: 'relay.example', seed: relaySeed }]) + line);
    if (!moved.ok) throw new Error('parse');
    expect(verifyCosignatures(moved.value, [wkey])).toMatchObject({ ok: false, code: 'COSIGNATURE_INVALID' });
  });
});
