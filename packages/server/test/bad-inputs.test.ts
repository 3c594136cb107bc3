import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BadContext, badCases, setupBadContext } from './bad-inputs.ts';
import { type TestRelay, testRelay } from './helpers.ts';

let r: TestRelay;
let ctx: BadContext;

beforeAll(async () => {
  r = await testRelay();
  ctx = await setupBadContext(r.caller);
});
afterAll(() => r.close());

describe('bad inputs (app.request)', () => {
  it.each(badCases.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    const res = await c.run(ctx);
    expect(res.body, JSON.stringify(res.body)).toEqual({
      error: { code: c.code, message: expect.any(String) },
    });
    expect(res.status).toBe(c.status);
    expect(JSON.stringify(res.body)).not.toMatch(/at .*\.ts:\d+|stack/);
  });
});
