/**
 * The table of bad inputs, each with the error code and status it must get. Shared by the
 * app.request() suite and the real-process suite (same table, two transports).
 */
import { randomBytes } from 'node:crypto';
import {
  type ChannelId,
  concatBytes,
  encodeCanonical,
  signWithLabel,
  toBase64url,
  utf8,
} from '@backchannel/protocol';
import {
  type Answer,
  type Caller,
  commit,
  envelope,
  makeDevice,
  makeParty,
  newChannel,
  revocationOf,
  suite,
  type TestDevice,
} from './helpers.ts';

export interface BadContext {
  readonly caller: Caller;
  readonly a: TestDevice;
  readonly b: TestDevice;
  readonly outsider: TestDevice;
  readonly revoked: TestDevice;
  readonly unregistered: TestDevice;
  /** A channel of a and b at epoch 2 with a few entries. */
  readonly channel: ChannelId;
}

export async function setupBadContext(caller: Caller): Promise<BadContext> {
  const A = makeParty('A');
  const B = makeParty('B');
  const a = makeDevice(A, 'a', 'admin');
  const revoked = makeDevice(A, 'revoked', 'staff');
  const b = makeDevice(B, 'b', 'principal');
  const outsider = makeDevice(B, 'outsider', 'staff');
  await caller.publishParty(A, [a, revoked]);
  await caller.publishParty(B, [b, outsider]);
  const channel = newChannel();
  for (const [dev, env] of [
    [a, commit(a, channel, 0, [b, revoked])],
    [b, commit(b, channel, 1)],
    [a, envelope(a, channel, { epoch: 2 })],
  ] as const) {
    const res = await caller.append(dev, env);
    if (res.status !== 201) throw new Error(`setup: ${res.status} ${JSON.stringify(res.body)}`);
  }
  const rev = await caller.post('/v1/revocations', undefined, {
    revocation: toBase64url(revocationOf(revoked)),
  });
  if (rev.status !== 200) throw new Error('setup: revocation');
  return { caller, a, b, outsider, revoked, unregistered: makeDevice(A, 'ghost', 'staff'), channel };
}

export interface BadCase {
  readonly name: string;
  readonly status: number;
  readonly code: string;
  run(ctx: BadContext): Promise<Answer<unknown>>;
}

const postJson = (
  ctx: BadContext,
  as: TestDevice | undefined,
  channel: ChannelId,
  json: unknown,
  time?: number,
) =>
  ctx.caller.call('POST', `/v1/channels/${channel}/envelopes`, {
    ...(as === undefined ? {} : { as }),
    json,
    ...(time === undefined ? {} : { time }),
  });

const postWire = (ctx: BadContext, as: TestDevice, channel: ChannelId, wire: Uint8Array) =>
  postJson(ctx, as, channel, { envelope: toBase64url(wire) });

export const badCases: readonly BadCase[] = [
  {
    name: 'malformed CBOR envelope',
    status: 400,
    code: 'DECODE_MALFORMED',
    run: (c) => postWire(c, c.a, c.channel, Uint8Array.of(0xff, 0x00, 0x13)),
  },
  {
    name: 'non-canonical CBOR envelope',
    status: 400,
    code: 'DECODE_NOT_CANONICAL',
    run: (c) => {
      const env = envelope(c.a, c.channel, { epoch: 2 });
      // the same map with its keys in non-canonical order ("body" before "sig")
      const bad = concatBytes(
        Uint8Array.of(0xa2),
        encodeCanonical('body'),
        encodeCanonical(env.bodyBytes),
        encodeCanonical('sig'),
        encodeCanonical(env.sig),
      );
      return postWire(c, c.a, c.channel, bad);
    },
  },
  {
    name: 'malformed raw CBOR body',
    status: 400,
    code: 'DECODE_MALFORMED',
    run: (c) =>
      c.caller.call('POST', `/v1/channels/${c.channel}/envelopes`, {
        as: c.a,
        raw: Uint8Array.of(0xff, 0xfe, 0x00),
        contentType: 'application/cbor',
      }),
  },
  {
    name: 'envelope without its required commitment',
    status: 400,
    code: 'ENVELOPE_INVALID',
    run: (c) => {
      const body = encodeCanonical({
        v: 1,
        channel: c.channel,
        sender: c.a.device,
        msgId: `e_${randomBytes(16).toString('base64url')}`,
        epoch: 2,
        kind: 'application',
        mls: randomBytes(8),
        sentAt: Date.now(),
      });
      const wire = encodeCanonical({ body, sig: signWithLabel(c.a.kp.secretKey, 'envelope', body, suite) });
      return postWire(c, c.a, c.channel, wire);
    },
  },
  {
    name: 'base64url that is not',
    status: 400,
    code: 'DECODE_MALFORMED',
    run: (c) => postJson(c, c.a, c.channel, { envelope: 'A' }),
  },
  {
    name: 'wrong envelope signature',
    status: 400,
    code: 'SIG_INVALID',
    run: (c) => {
      const env = envelope(c.a, c.channel, { epoch: 2 });
      const sig = env.sig.slice();
      sig[5] = (sig[5] as number) ^ 0x40;
      return postWire(c, c.a, c.channel, encodeCanonical({ body: env.bodyBytes, sig }));
    },
  },
  {
    name: 'envelope of another sender than the signing device',
    status: 403,
    code: 'SENDER_MISMATCH',
    run: (c) => c.caller.append(c.a, envelope(c.b, c.channel, { epoch: 2 })),
  },
  {
    name: 'envelope for another channel than the path',
    status: 400,
    code: 'CHANNEL_MISMATCH',
    run: (c) => c.caller.append(c.a, envelope(c.a, newChannel()), c.channel),
  },
  {
    name: 'oversize body',
    status: 413,
    code: 'BODY_TOO_LARGE',
    run: (c) => postJson(c, undefined, c.channel, { envelope: 'A'.repeat(3_000_000) }),
  },
  {
    name: 'a route asked with a method it does not take',
    status: 405,
    code: 'METHOD_NOT_ALLOWED',
    run: (c) => c.caller.call('DELETE', '/v1/relay'),
  },
  {
    name: 'a known path with a trailing slash is no route (not a method to change)',
    status: 404,
    code: 'NOT_FOUND',
    run: (c) => c.caller.call('GET', '/v1/relay/'),
  },
  {
    name: 'malformed JSON',
    status: 400,
    code: 'BODY_MALFORMED',
    run: (c) =>
      c.caller.call('POST', `/v1/channels/${c.channel}/envelopes`, {
        as: c.a,
        raw: utf8('{"envelope":'),
        contentType: 'application/json',
      }),
  },
  {
    name: '__proto__ in JSON',
    status: 400,
    code: 'BODY_MALFORMED',
    run: (c) =>
      c.caller.call('POST', '/v1/key-packages/claim', {
        as: c.a,
        raw: utf8('{"party":"p_AAAAAAAAAAAAAAAAAAAAAA","__proto__":{"admin":true}}'),
        contentType: 'application/json',
      }),
  },
  {
    name: 'unsupported content type',
    status: 415,
    code: 'UNSUPPORTED_MEDIA_TYPE',
    run: (c) =>
      c.caller.call('POST', `/v1/channels/${c.channel}/envelopes`, {
        as: c.a,
        raw: utf8('x'),
        contentType: 'text/plain',
      }),
  },
  {
    name: 'an installation id too short to be random',
    status: 400,
    code: 'SCHEMA_INVALID',
    run: (c) =>
      c.caller.post('/v1/devices/enrollment', c.a, { installation: toBase64url(new Uint8Array(4)) }),
  },
  {
    name: 'unknown field in a request body',
    status: 400,
    code: 'REQUEST_INVALID',
    run: (c) => c.caller.post('/v1/key-packages/claim', c.a, { party: c.a.party.party, extra: 1 }),
  },
  {
    name: 'invalid channel id in the path',
    status: 400,
    code: 'REQUEST_INVALID',
    run: (c) => c.caller.get('/v1/channels/not-a-channel/entries', c.a),
  },
  {
    name: 'unknown channel read',
    status: 403,
    code: 'NOT_A_MEMBER',
    run: (c) => c.caller.get(`/v1/channels/${newChannel()}/entries`, c.a),
  },
  {
    name: 'non-member read',
    status: 403,
    code: 'NOT_A_MEMBER',
    run: (c) => c.caller.get(`/v1/channels/${c.channel}/entries`, c.outsider),
  },
  {
    name: 'non-member post',
    status: 403,
    code: 'NOT_A_MEMBER',
    run: (c) => c.caller.append(c.outsider, envelope(c.outsider, c.channel, { epoch: 2 })),
  },
  {
    name: 'stale epoch commit',
    status: 409,
    code: 'EPOCH_STALE',
    run: (c) => c.caller.append(c.b, commit(c.b, c.channel, 1)),
  },
  {
    name: 'future epoch',
    status: 409,
    code: 'EPOCH_FUTURE',
    run: (c) => c.caller.append(c.b, envelope(c.b, c.channel, { epoch: 9 })),
  },
  {
    name: 'membership change beyond the role',
    status: 403,
    code: 'ROLE_FORBIDDEN',
    run: (c) => c.caller.append(c.b, commit(c.b, c.channel, 2, [], [c.a])),
  },
  {
    name: 'adding an unregistered device',
    status: 422,
    code: 'MEMBER_INVALID',
    run: (c) => c.caller.append(c.a, commit(c.a, c.channel, 2, [c.unregistered])),
  },
  {
    name: 'revoked device',
    status: 403,
    code: 'CERT_REVOKED',
    run: (c) => c.caller.get(`/v1/channels/${c.channel}/entries`, c.revoked),
  },
  {
    name: 'unregistered device',
    status: 401,
    code: 'DEVICE_UNKNOWN',
    run: (c) => c.caller.get(`/v1/channels/${c.channel}/entries`, c.unregistered),
  },
  {
    name: 'unsigned request',
    status: 401,
    code: 'AUTH_MISSING',
    run: (c) => c.caller.get(`/v1/channels/${c.channel}/entries`),
  },
  {
    name: 'request signed for another path',
    status: 401,
    code: 'AUTH_INVALID',
    run: async (c) => {
      const relayName = await c.caller.relayName();
      const signed = await import('@backchannel/protocol').then((p) =>
        p.requestHeaders(
          c.a.device,
          c.a.kp.secretKey,
          'GET',
          '/v1/inbox',
          Date.now(),
          new Uint8Array(0),
          relayName,
          suite,
        ),
      );
      return c.caller.call('GET', `/v1/channels/${c.channel}/entries`, { headers: signed });
    },
  },
  {
    name: 'request signed for another relay',
    status: 401,
    code: 'AUTH_INVALID',
    run: (c) =>
      c.caller.call('GET', `/v1/channels/${c.channel}/entries`, { as: c.a, relay: 'other.example' }),
  },
  {
    name: 'request time outside the window',
    status: 401,
    code: 'AUTH_EXPIRED',
    run: (c) =>
      c.caller.call('GET', `/v1/channels/${c.channel}/entries`, { as: c.a, time: Date.now() - 6 * 60_000 }),
  },
  {
    name: 'replayed request',
    status: 401,
    code: 'AUTH_REPLAY',
    run: async (c) => {
      const time = Date.now();
      const first = await c.caller.call('GET', '/v1/inbox', { as: c.a, time });
      if (first.status !== 200) throw new Error('first request should pass');
      return c.caller.call('GET', '/v1/inbox', { as: c.a, time });
    },
  },
  {
    name: 'duplicate msgId with other bytes',
    status: 409,
    code: 'DUPLICATE_MESSAGE_ID',
    run: async (c) => {
      const first = envelope(c.a, c.channel, { epoch: 2 });
      await c.caller.append(c.a, first);
      return c.caller.append(c.a, envelope(c.a, c.channel, { epoch: 2, msgId: first.body.msgId }));
    },
  },
  {
    name: 'unknown route',
    status: 404,
    code: 'NOT_FOUND',
    run: (c) => c.caller.get('/v1/nothing-here'),
  },
];
