/**
 * The SDK's relay client under fuzzed relay answers, briefly (`npm run fuzz` runs it long), and
 * the regressions the fuzzer found.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { openInviteWith } from '../../src/sdk/invite.ts';
import { openInvite } from '../../src/sdk/invite.node.ts';
import { RelayClient } from '../../src/sdk/relay-client.ts';
import { clientTargets } from './targets.ts';

const SEED = 20_261_125;

describe('relay client under fuzzed answers (short run; `npm run fuzz` for the long one)', () => {
  it.each(clientTargets.map((t) => [t.name, t] as const))('%s', async (_name, t) => {
    await fc.assert(
      fc.asyncProperty(t.input, async (x) => {
        await t.check(x);
      }),
      { numRuns: 200, seed: SEED },
    );
  });
});

const answering = (status: number, body: string, headers: Record<string, string> = {}) =>
  new RelayClient({
    endpoints: ['http://relay.test'],
    fetch: async () => new Response(body, { status, headers }),
  });

describe('regressions found by fuzzing', () => {
  it('an answer missing its fields is RELAY_ERROR, not a TypeError', async () => {
    await expect(answering(200, '{}').getEntries('c_x', 0)).rejects.toMatchObject({ code: 'RELAY_ERROR' });
    await expect(answering(200, '{"items":[{"entry":5}]}').getInbox(0)).rejects.toMatchObject({
      code: 'RELAY_ERROR',
    });
    await expect(answering(200, '{"card":"A"}').getCard('p_x')).rejects.toMatchObject({
      code: 'RELAY_ERROR',
    });
  });

  it('an error answer whose body is JSON null is RELAY_REFUSED, not a TypeError', async () => {
    await expect(answering(400, 'null').getCheckpoint('c_x')).rejects.toMatchObject({
      code: 'RELAY_REFUSED',
      cause_code: 'HTTP_400',
    });
  });

  it('a Retry-After that is not a number waits a second, not NaN', async () => {
    await expect(answering(429, '{}', { 'retry-after': 'soon' }).relayInfo()).rejects.toMatchObject({
      code: 'RATE_LIMITED',
      retryAfterMs: 1000,
    });
    await expect(answering(429, '{}', { 'retry-after': '2' }).relayInfo()).rejects.toMatchObject({
      retryAfterMs: 2000,
    });
  });

  it('a valid answer keeps the fields a newer relay adds', async () => {
    const body = '{"checkpoint":"cp","cosignatures":[],"size":3,"extra":true}';
    await expect(answering(200, body).getCheckpoint('c_x')).resolves.toMatchObject({ size: 3, extra: true });
  });

  it('an invite file asking for unbounded or invalid scrypt work, or with junk fields, is INVITE_INVALID', async () => {
    const file = (kdf: unknown, salt = 'AAAAAAAAAAAAAAAAAAAAAA', box = 'A'.repeat(60)) => ({
      v: 1,
      kind: 'backchannel-invite',
      party: 'p_x',
      device: 'd_x',
      salt,
      kdf,
      box,
    });
    const code = 'AAAA-BBBB-CCCC-DDDD';
    for (const f of [
      file({ N: 1024, r: 2 ** 40, p: 1 }), // was: a huge allocation
      file({ N: 1024, r: 8, p: 1e9 }), // was: hours of scrypt
      file({ N: 1000, r: 8, p: 1 }), // was: scrypt's own RangeError (CLI)
      file({ N: 1024, r: 8, p: 1 }, '!'), // was: a ProtocolError (CLI)
      file({ N: 1024, r: 8, p: 1 }, 'AAAA', 'AA'),
      null,
      'invite',
    ]) {
      expect(() => openInvite(f, code)).toThrow(expect.objectContaining({ code: 'INVITE_INVALID' }));
      await expect(openInviteWith(f, code)).rejects.toMatchObject({ code: 'INVITE_INVALID' });
    }
  });
});
