/**
 * Fuzz target of the SDK's relay client: whatever a relay (or anything on the path) answers —
 * any status, any body, any JSON shape — every call resolves to a typed answer or rejects with a
 * ClientError of a documented code, never a TypeError from a missing field.
 */
import fc from 'fast-check';
import { mutatedJson } from '../../../protocol/test/fuzz/mutate.ts';
import { defineTarget, FuzzBug, type FuzzTarget } from '../../../protocol/test/fuzz/targets.ts';
import { CLIENT_ERROR_CODES, ClientError } from '../../src/sdk/errors.ts';
import { RelayClient } from '../../src/sdk/relay-client.ts';

const CODES = new Set<string>(CLIENT_ERROR_CODES);
const B = 'AAAA';
const CHANNEL = 'c_AAAAAAAAAAAAAAAAAAAAAA';

/** One call per client method, and a valid answer the relay could give to it. */
const calls: ReadonlyArray<{ name: string; call: (c: RelayClient) => Promise<unknown>; answer: unknown }> = [
  { name: 'relayInfo', call: (c) => c.relayInfo(), answer: { name: 'relay', vkey: 'relay+00000000+AA' } },
  { name: 'getCard', call: (c) => c.getCard('p_x'), answer: { card: B, issuedAt: 1 } },
  {
    name: 'listDevices',
    call: (c) => c.listDevices('p_x'),
    answer: { certificates: [B], revocations: [] },
  },
  {
    name: 'claimKeyPackages',
    call: (c) => c.claimKeyPackages('p_x'),
    answer: { keyPackages: [{ device: 'd_x', certificate: B, keyPackage: B }] },
  },
  {
    name: 'postEnvelope',
    call: (c) => c.postEnvelope(CHANNEL, new Uint8Array(4)),
    answer: {
      seq: 1,
      leafIndex: 1,
      receivedAt: 5,
      inclusionProof: [B],
      checkpoint: 'cp',
      size: 2,
      duplicate: false,
    },
  },
  {
    name: 'getEntries',
    call: (c) => c.getEntries(CHANNEL, 0),
    answer: { entries: [{ seq: 0, entry: B }], checkpoint: 'cp' },
  },
  {
    name: 'getCheckpoint',
    call: (c) => c.getCheckpoint(CHANNEL),
    answer: { checkpoint: 'cp', cosignatures: [] },
  },
  {
    name: 'getCheckpointAt',
    call: (c) => c.getCheckpointAt(CHANNEL, 2),
    answer: { checkpoint: 'cp', size: 2, cosignatures: ['x'] },
  },
  {
    name: 'postCosignature',
    call: (c) => c.postCosignature(CHANNEL, 2, 'line'),
    answer: { size: 2, cosignatures: 1 },
  },
  {
    name: 'getConsistency',
    call: (c) => c.getConsistency(CHANNEL, 1, 2),
    answer: { from: 1, to: 2, proof: [B] },
  },
  {
    name: 'getInbox',
    call: (c) => c.getInbox(0),
    answer: { items: [{ cursor: 1, channel: CHANNEL, seq: 0, entry: B }] },
  },
  {
    name: 'putCard',
    call: (c) => c.putCard(new Uint8Array(2)),
    answer: { party: 'p_x', issuedAt: 1, devices: 1 },
  },
];

const errorAnswers = [
  { error: { code: 'NOT_A_MEMBER', message: 'no' } },
  { error: { code: 'RATE_LIMITED', message: 'slow down', retryAfterMs: 1000 } },
];

export const clientTargets: readonly FuzzTarget[] = [
  defineTarget({
    name: 'relay-client',
    weight: 2,
    input: fc.record({
      call: fc.nat({ max: calls.length - 1 }),
      status: fc.oneof(
        { arbitrary: fc.constantFrom(200, 201), weight: 4 },
        { arbitrary: fc.constantFrom(400, 401, 403, 404, 409, 413, 429, 500, 502, 503), weight: 2 },
        { arbitrary: fc.integer({ min: 200, max: 599 }), weight: 1 },
      ),
      body: fc.oneof(
        { arbitrary: mutatedJson([...calls.map((c) => c.answer), ...errorAnswers]), weight: 6 },
        {
          arbitrary: fc.constantFrom('', 'null', '[]', '0', '"x"', '{}', '<html>', '{"error":null}'),
          weight: 1,
        },
      ),
      retryAfter: fc.option(fc.constantFrom('1', '0', '-5', 'soon', '1e400', ''), { nil: undefined }),
    }),
    check: async (c) => {
      const call = calls[c.call] as (typeof calls)[number];
      const client = new RelayClient({
        endpoints: ['http://relay.test'],
        fetch: async () =>
          new Response(c.status === 204 || c.status === 205 || c.status === 304 ? null : c.body, {
            status: c.status,
            headers: c.retryAfter === undefined ? {} : { 'retry-after': c.retryAfter },
          }),
      });
      try {
        await call.call(client);
      } catch (e) {
        if (e instanceof ClientError && CODES.has(e.code)) {
          if (e.retryAfterMs !== undefined && !(e.retryAfterMs >= 0))
            throw new FuzzBug(`${call.name}: retryAfterMs ${e.retryAfterMs} is not a delay`);
          return;
        }
        throw new FuzzBug(
          `${call.name} threw ${e instanceof Error ? `${e.name}: ${e.message}` : typeof e}`.slice(0, 300),
        );
      }
    },
  }),
];
