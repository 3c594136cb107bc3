/**
 * Agreed text and the channel's lifecycle (review findings): the document id names the header,
 * and a sign-off the channel refused because it was not open never counts, whatever the issuer
 * chooses to disclose.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type AttestationPlan,
  createAttestation,
  planAgreed,
  verifyAttestation,
} from '../../src/attest/index.ts';
import { eventIdFrom } from '../../src/index.ts';
import { buildFixture, type Fixture, type FixtureOptions, type LifecycleStep } from './fixture.ts';

const verify = (f: Fixture, plan: AttestationPlan, issuer = f.issuerB) =>
  verifyAttestation(
    createAttestation(f.snap, plan, issuer, f.snap.records.at(-1)!.decoded.entry.receivedAt + 1),
    { parties: f.roots, relayKeys: [f.relayKey], witnesses: f.witnessKeys, now: f.now },
  );

const honest = buildFixture();
const honestClaim = planAgreed(honest.snap, { doc: honest.ids.doc }).claim;

/** The agreed claim an issuer would make, with entries of its own choosing (all disclosed). */
function forged(f: Fixture, entries: readonly number[]): AttestationPlan {
  const claim = honestClaim;
  if (claim.kind !== 'agreed') throw new Error('not an agreed claim');
  const sorted = [...new Set(entries)].sort((a, b) => a - b);
  return {
    claim: { ...claim, doc: f.ids.doc, agreedAt: f.snap.records[f.at.signB]!.decoded.entry.receivedAt },
    entries: sorted,
    disclosures: sorted,
  };
}

/** Entries of kind `kind` (by the fixture's own plaintexts). */
const indexesOf = (f: Fixture, kind: string) =>
  f.snap.records.filter((r) => r.event?.kind === kind).map((r) => r.index);

describe('agreed text: the document id and the channel lifecycle', () => {
  it('a document id of the creator’s choosing, not derived from the header, is refused (DOC_ID_MISMATCH)', () => {
    const f = buildFixture(undefined, { docId: eventIdFrom(new Uint8Array(16).fill(0x77)) });
    // Every member's reducer refused the revision; the verifier sees only what is disclosed.
    expect(f.refused).toContainEqual({ index: f.at.signA - 1, code: 'DOC_UNKNOWN' });
    const v = verify(f, planAgreed(f.snap, { doc: f.ids.doc }));
    expect(v).toMatchObject({ valid: false, code: 'DOC_ID_MISMATCH' });
  });

  it('a sign-off made while the channel was suspended is refused, whatever is disclosed', () => {
    const f = buildFixture(undefined, { lifecycle: [[], ['suspend'], []] });
    const { signA, signB, beats } = f.at;
    const suspend = signA + 1;
    expect(f.refused).toEqual([{ index: signB, code: 'CHANNEL_NOT_OPEN' }]);
    expect(() => planAgreed(f.snap, { doc: f.ids.doc, revision: 1 })).toThrow(/was not open when entry/);
    const rev = signA - 1;
    // What verified before the fix: the revision and one signature per party, nothing else.
    expect(verify(f, forged(f, [rev, signA, signB]))).toMatchObject({
      valid: false,
      code: 'CLAIM_UNSUPPORTED',
    });
    // Every relevant event disclosed: the heartbeats name the suspension as the last change.
    expect(verify(f, forged(f, [3, suspend, rev, signA, signB, ...beats]))).toMatchObject({
      valid: false,
      code: 'CHANNEL_NOT_OPEN',
    });
    // The suspension hidden: the change the heartbeats name is missing.
    expect(verify(f, forged(f, [3, rev, signA, signB, ...beats]))).toMatchObject({
      valid: false,
      code: 'CLAIM_UNSUPPORTED',
    });
    // Only B's own heartbeat: A's view is required too.
    expect(verify(f, forged(f, [3, rev, signA, signB, beats[1]!]))).toMatchObject({
      valid: false,
      code: 'CLAIM_UNSUPPORTED',
    });
  });

  it('a heartbeat that misstates the lifecycle is refused by every member and cannot outvote the other party’s', () => {
    const f = buildFixture(undefined, {
      lifecycle: [[], ['suspend'], []],
      bView: { seen: 68, lifecycle: 3 },
    });
    const { signA, signB, beats } = f.at;
    expect(f.refused).toEqual([
      { index: signB, code: 'CHANNEL_NOT_OPEN' },
      { index: beats[1], code: 'LIFECYCLE_VIEW_INVALID' },
    ]);
    expect(verify(f, forged(f, [3, signA - 1, signA, signB, ...beats]))).toMatchObject({
      valid: false,
      code: 'LIFECYCLE_VIEW_INVALID',
    });
  });

  it('signatures on both sides of a suspension count when heartbeats show the channel open at each', () => {
    const f = buildFixture(undefined, { lifecycle: [[], ['beats', 'suspend', 'reopen'], []] });
    expect(f.refused).toEqual([]);
    const plan = planAgreed(f.snap, { doc: f.ids.doc });
    const reopen = f.at.signB - 1;
    expect(plan.entries).toContain(3);
    expect(plan.entries).toContain(reopen);
    const v = verify(f, plan);
    expect(v.valid, v.valid ? '' : `${v.code} ${v.reason}`).toBe(true);
    if (!v.valid) return;
    expect(v.facts.filter((x) => x.startsWith('the channel was open'))).toHaveLength(2);
    // Without the heartbeats between the first signature and the suspension it cannot be shown.
    const bare = buildFixture(undefined, { lifecycle: [[], ['suspend', 'reopen'], []] });
    expect(() => planAgreed(bare.snap, { doc: bare.ids.doc, revision: 1 })).toThrow(
      /has sent no heartbeat since/,
    );
  });

  it('property: an agreed-text attestation verifies only if every member’s reducer accepted its signatures', () => {
    const step = fc.constantFrom<LifecycleStep>('suspend', 'reopen', 'beats');
    const slot = fc.array(step, { maxLength: 3 });
    fc.assert(
      fc.property(fc.tuple(slot, slot, slot), (lifecycle) => {
        const f = buildFixture(undefined, { lifecycle } as FixtureOptions);
        const refusedSign = f.refused.some((r) => r.index === f.at.signA || r.index === f.at.signB);
        // The issuer discloses every lifecycle change and heartbeat it likes: all of them.
        const all = [
          3,
          f.at.signA - 1,
          f.at.signA,
          f.at.signB,
          ...indexesOf(f, 'channel.suspend'),
          ...indexesOf(f, 'channel.reopen'),
          ...indexesOf(f, 'heartbeat').filter((i) => i > f.at.signA),
        ];
        const v = verify(f, forged(f, all));
        if (refusedSign) expect(v.valid ? 'valid' : v.code).toMatch(/^(CHANNEL_NOT_OPEN|CLAIM_UNSUPPORTED)$/);
        let planned: AttestationPlan | undefined;
        try {
          planned = planAgreed(f.snap, { doc: f.ids.doc });
        } catch {
          planned = undefined;
        }
        if (planned !== undefined) {
          expect(refusedSign).toBe(false);
          expect(verify(f, planned).valid).toBe(true);
        }
        // With no change after the first signature, the closing heartbeats always suffice.
        if (lifecycle[1].every((s) => s === 'beats') && lifecycle[2].every((s) => s === 'beats'))
          expect(planned !== undefined).toBe(!refusedSign);
      }),
      { numRuns: 25 },
    );
  });
});
