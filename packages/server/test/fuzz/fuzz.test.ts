/**
 * The relay fuzz targets, briefly (a fixed seed: `npm run fuzz` runs the long campaign), and the
 * regression the fuzzer found in the HTTP layer.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FuzzTarget } from '../../../protocol/test/fuzz/targets.ts';
import { type TestRelay, testRelay } from '../helpers.ts';
import { openServerTargets, type ServerTargets } from './targets.ts';

const BUDGET = 1200;
const utf8Json = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
const SEED = 20_261_125;

let s: ServerTargets;
beforeAll(async () => {
  s = await openServerTargets();
});
afterAll(() => s.close());

const NAMES = ['ws-frame', 'ws-binary-frame', 'json-body', 'cosignature-line', 'fanout', 'http'];

describe('relay inputs under fuzzing (short run; `npm run fuzz` for the long one)', () => {
  it('has the targets this file runs', () => {
    expect(s.targets.map((t) => t.name)).toEqual(NAMES);
  });
  it.each(NAMES)('%s', async (name) => {
    const t = s.targets.find((x) => x.name === name) as FuzzTarget;
    const weights = s.targets.reduce((n, x) => n + x.weight, 0);
    await fc.assert(
      fc.asyncProperty(t.input, async (x) => {
        await t.check(x);
      }),
      { numRuns: Math.max(20, Math.round((BUDGET * t.weight) / weights)), seed: SEED },
    );
  });
});

describe('regressions found by fuzzing', () => {
  let r: TestRelay;
  beforeAll(async () => {
    r = await testRelay();
  });
  afterAll(() => r.close());

  it('a JSON body without a content type is 415 UNSUPPORTED_MEDIA_TYPE, not a 500 (body read twice)', async () => {
    for (const path of ['/v1/revocations', '/v1/devices', '/v1/cards']) {
      const res = await r.core.app.request(path, {
        method: path === '/v1/cards' ? 'PUT' : 'POST',
        body: utf8Json({ x: 1 }),
      });
      expect(res.status).toBe(415);
      expect(await res.json()).toEqual({
        error: { code: 'UNSUPPORTED_MEDIA_TYPE', message: expect.any(String) },
      });
    }
  });
});
