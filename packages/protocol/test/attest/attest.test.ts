import { describe, expect, it } from 'vitest';
import {
  createAttestation,
  encodeAttestation,
  parseAttestation,
  planAgreed,
  planDelivery,
  signAttestation,
  planDisclosure,
  planLiveness,
  planOutreach,
  planReadouts,
  verifyAttestation,
} from '../../src/attest/index.ts';
import { renderWordDiff, wordDiff } from '../../src/attest/readout.ts';
import { buildFixture } from './fixture.ts';

const f = buildFixture();
const opts = { parties: f.roots, relayKeys: [f.relayKey], witnesses: f.witnessKeys, now: f.now };
const asOf = f.snap.records[5]!.decoded.entry.receivedAt;
const issuedAt = f.snap.records.at(-1)!.decoded.entry.receivedAt + 1;

const plans = {
  outreach: planOutreach(f.snap),
  liveness: planLiveness(f.snap, { parties: [f.A, f.B], asOf, withinHours: 1 }),
  delivery: planDelivery(f.snap, { event: f.ids.points, receipt: 'read' }),
  disclosure: planDisclosure(f.snap, { event: f.ids.message }),
  readouts: planReadouts(f.snap, { round: 'r1', parties: [f.A, f.B] }),
  agreed: planAgreed(f.snap, { doc: f.ids.doc }),
};

describe('attestation format (protocol)', () => {
  it.each(Object.entries(plans))('%s: create → file → verify', (_kind, plan) => {
    const doc = createAttestation(f.snap, plan, f.issuerA, issuedAt);
    const file = encodeAttestation(doc);
    const v = verifyAttestation(file, { ...opts, maxAgeMs: 10 * 365 * 86_400_000 });
    expect(v.valid, v.valid ? '' : `${v.code} ${v.reason}`).toBe(true);
  });

  it('an opening outreach includes the handshake entries before it and nothing else', () => {
    expect(plans.outreach.entries).toEqual([0, 1, 2]);
    expect(plans.outreach.disclosures).toEqual([2]);
    expect(plans.outreach.claim).toMatchObject({ opening: true, from: f.A, to: f.B });
  });

  it('agreed text: the latest revision every party signed, its revision event and one signature each', () => {
    const { signA, signB, beats } = f.at;
    expect(plans.agreed.claim).toMatchObject({ kind: 'agreed', revision: 1, parties: [f.A, f.B].sort() });
    // The accept that opened the channel, revision 1, both signatures, one heartbeat per party.
    expect(plans.agreed.entries).toEqual([3, signA - 1, signA, signB, ...beats]);
    expect(plans.agreed.disclosures).toEqual(plans.agreed.entries);
    const v = verifyAttestation(createAttestation(f.snap, plans.agreed, f.issuerB, issuedAt), opts);
    expect(v.valid, v.valid ? '' : `${v.code} ${v.reason}`).toBe(true);
    if (!v.valid) return;
    expect(v.agreed?.clauses[1]?.text).toEqual({
      en: 'Talks continue in Geneva next month.',
      fr: 'Les pourparlers se poursuivent à Genève le mois prochain.',
    });
    expect(v.agreed?.signatures.map((s) => s.party)).toEqual([f.A, f.B].sort());
    expect(v.statement).toContain('signed revision 1');
    expect(v.facts).toContain(
      `the channel was open at entries ${signA}, ${signB}: its last lifecycle change before them is entry 3 (a channel.accept), as the heartbeats of every party (entries ${beats.join(', ')}) state`,
    );
    // Revision 0 was signed by B only: no agreed-text attestation can be made for it.
    expect(() => planAgreed(f.snap, { doc: f.ids.doc, revision: 0 })).toThrow(/has not signed revision 0/);
  });

  it('agreed text: a signature over the other revision never counts, and the hash is the text’s', () => {
    const { signA, signB } = f.at;
    // B's signature over revision 0 offered in place of its signature over revision 1.
    const swap = (xs: readonly number[]) => xs.map((i) => (i === signB ? signA - 2 : i));
    const swapped = {
      ...plans.agreed,
      entries: swap(plans.agreed.entries),
      disclosures: swap(plans.agreed.disclosures),
    };
    expect(verifyAttestation(createAttestation(f.snap, swapped, f.issuerA, issuedAt), opts)).toMatchObject({
      valid: false,
      code: 'DOC_NOT_AGREED',
    });
    const doc = createAttestation(f.snap, plans.agreed, f.issuerA, issuedAt);
    const { signature: _s, ...unsigned } = doc;
    const claim = plans.agreed.claim;
    if (claim.kind !== 'agreed') throw new Error('not an agreed claim');
    const hash = claim.hash.replace(/^./, (c) => (c === 'A' ? 'B' : 'A'));
    const forged = signAttestation({ ...unsigned, claim: { ...claim, hash } }, f.issuerA.secretKey);
    expect(verifyAttestation(forged, opts)).toMatchObject({ valid: false, code: 'DOC_TEXT_MISMATCH' });
  });

  it('a stale liveness claim is refused when the verifier sets a maximum age', () => {
    const doc = createAttestation(f.snap, plans.liveness, f.issuerA, issuedAt);
    expect(verifyAttestation(doc, { ...opts, maxAgeMs: 3_600_000 })).toMatchObject({
      valid: false,
      code: 'TIME_OUTSIDE_WINDOW',
    });
  });

  it('a malformed relay or witness key gives a KEY_INVALID verdict, not a throw', () => {
    const doc = createAttestation(f.snap, plans.disclosure, f.issuerA, issuedAt);
    const bad = 'relay+00000000+not-a-key';
    expect(verifyAttestation(doc, { ...opts, relayKeys: [bad] })).toMatchObject({
      valid: false,
      code: 'KEY_INVALID',
    });
    expect(verifyAttestation(doc, { ...opts, witnesses: [bad] })).toMatchObject({
      valid: false,
      code: 'KEY_INVALID',
    });
  });

  it.each([
    ['not JSON', '{'],
    ['a number', 42],
    ['null', null],
    ['an empty object', {}],
    ['a wrong type', { type: 'something-else', v: 1 }],
    ['a huge string', 'x'.repeat((1 << 20) + 1)],
  ])('junk input (%s) is refused with a reason, never a throw', (_n, junk) => {
    const p = parseAttestation(junk);
    expect(p.ok).toBe(false);
    const v = verifyAttestation(junk, opts);
    expect(v.valid).toBe(false);
  });

  it('word diff marks what only one read-out says', () => {
    const d = wordDiff('the talks were frank', 'the talks were frank and useful');
    expect(d).toEqual([
      { op: 'same', text: 'the talks were frank' },
      { op: 'only-b', text: 'and useful' },
    ]);
    expect(renderWordDiff(wordDiff('a b c', 'a x c'))).toBe('a [-b-] {+x+} c');
  });
});
