/**
 * The protocol fuzz targets, briefly (a fixed seed, a few thousand cases: `npm run fuzz` runs a
 * million), and the regressions the fuzzer found, as plain tests.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  createAttestation,
  encodeAttestation,
  parseAttestation,
  planDisclosure,
  verifyAttestation,
} from '../../src/attest/index.ts';
import { decodePrivateKeyPackage } from '../../src/group/key-package.ts';
import { decodeCanonical, encodeCanonical } from '../../src/index.ts';
import { parseCheckpoint } from '../../src/transcript/index.ts';
import { buildFixture } from '../attest/fixture.ts';
import { nestedCbor } from './mutate.ts';
import { ATTESTATION_KINDS_WITHOUT_SEED, protocolTargets } from './targets.ts';

/** Cases for the whole suite in `npm test`, shared by target weight. */
const BUDGET = 2400;
const SEED = 20_261_125;
const weights = protocolTargets.reduce((n, t) => n + t.weight, 0);

describe('protocol decoders under fuzzing (short run; `npm run fuzz` for the long one)', () => {
  it.each(protocolTargets.map((t) => [t.name, t] as const))('%s', async (_name, t) => {
    const numRuns = Math.max(20, Math.round((BUDGET * t.weight) / weights));
    await fc.assert(
      fc.asyncProperty(t.input, async (x) => {
        await t.check(x);
      }),
      { numRuns, seed: SEED },
    );
  });

  it('every attestation kind has a seed document to mutate', () => {
    // a new claim kind adds its plan to ATTESTATION_SEED_PLANS in test/fuzz/targets.ts
    expect(ATTESTATION_KINDS_WITHOUT_SEED).toEqual([]);
  });
});

describe('regressions found by fuzzing', () => {
  it('CBOR nested deeper than 64 levels is DECODE_MALFORMED (it decoded, then broke re-encoding)', () => {
    expect(decodeCanonical(nestedCbor(10_000))).toMatchObject({ ok: false, code: 'DECODE_MALFORMED' });
    expect(decodeCanonical(nestedCbor(65))).toMatchObject({ ok: false, code: 'DECODE_MALFORMED' });
    const deepest = decodeCanonical(nestedCbor(64));
    expect(deepest.ok).toBe(true);
    if (deepest.ok) expect(encodeCanonical(deepest.value)).toEqual(nestedCbor(64));
  });

  it('a private key package that is CBOR null is KEY_PACKAGE_INVALID, not a TypeError', () => {
    expect(decodePrivateKeyPackage(Uint8Array.of(0xf6))).toMatchObject({
      ok: false,
      code: 'KEY_PACKAGE_INVALID',
    });
    expect(decodePrivateKeyPackage(Uint8Array.of(0x01))).toMatchObject({
      ok: false,
      code: 'KEY_PACKAGE_INVALID',
    });
  });

  it('a checkpoint whose origin holds a control character is refused, as encodeCheckpoint refuses it', () => {
    const root = 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=';
    expect(parseCheckpoint(`relay\u007f/c\n1\n${root}\n`)).toMatchObject({
      ok: false,
      code: 'CHECKPOINT_INVALID',
    });
    expect(parseCheckpoint(`relay/c\n1\n${root}\next\u0001\n`)).toMatchObject({
      ok: false,
      code: 'CHECKPOINT_INVALID',
    });
    expect(parseCheckpoint(`relay/c\n1\n${root}\n`).ok).toBe(true);
  });

  const f = buildFixture();
  const doc = JSON.parse(
    encodeAttestation(
      createAttestation(f.snap, planDisclosure(f.snap, { event: f.ids.message }), f.issuerA, f.now - 1000),
    ),
  ) as { disclosures: { event: unknown }[] };
  const opts = { parties: f.roots, relayKeys: [f.relayKey], witnesses: f.witnessKeys, now: f.now };

  it('an attestation with a deeply nested disclosure is ATTESTATION_INVALID, not a RangeError', () => {
    const n = 10_000;
    const text = JSON.stringify({ ...doc, disclosures: [{ ...doc.disclosures[0], event: 0 }] }).replace(
      '"event":0',
      `"event":${'['.repeat(n)}${']'.repeat(n)}`,
    );
    expect(parseAttestation(text)).toMatchObject({ ok: false, code: 'ATTESTATION_INVALID' });
    expect(verifyAttestation(text, opts)).toMatchObject({ valid: false, code: 'ATTESTATION_INVALID' });
  });

  it('an attestation with a fraction in a disclosed event gets a verdict, not a thrown ProtocolError', () => {
    const bad = structuredClone(doc);
    (bad.disclosures[0] as { event: unknown }).event = { kind: 'message', text: 'x', v: 1.5 };
    expect(parseAttestation(bad)).toMatchObject({ ok: false, code: 'ATTESTATION_INVALID' });
    expect(verifyAttestation(bad, opts)).toMatchObject({ valid: false, code: 'ATTESTATION_INVALID' });
  });
});
