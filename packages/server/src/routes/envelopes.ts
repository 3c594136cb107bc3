/**
 * POST /v1/channels/{channel}/envelopes — append an envelope. Body: application/cbor (the wire
 * bytes) or JSON {envelope: base64url}. Checks, in order: decode, path channel, sender = the
 * authenticated device (a signed request), or — unsigned — a registered valid sender, then the
 * envelope signature (which authenticates an unsigned post, PROTOCOL.md §11); then (in the group-commit queue) idempotency,
 * membership, epoch, access-list change; then the durable append. The answer carries the seq,
 * an inclusion proof and the signed checkpoint it is against.
 */
import { type ChannelId, MAX_ENVELOPE_BYTES } from '@backchannel/protocol';
import { createRoute, z } from '@hono/zod-openapi';
import { type AcceptDeps, acceptEnvelope, appendAnswerJson } from '../channels/accept.ts';
import { body, isJsonType } from '../http/body.ts';
import type { AppDeps, RelayApp } from '../http/context.ts';
import type { DeviceRecord } from '../store/store.ts';
import { authenticated, limitDevice, limitWrite } from '../http/guards.ts';
import { authHeaders, b64, base64url, channelIdSchema, errors, security } from '../http/schemas.ts';

const appendAnswer = z
  .object({
    seq: z.number().int().openapi({ description: '0-based position in the channel log' }),
    leafIndex: z.number().int().openapi({ description: 'Merkle leaf index (= seq)' }),
    receivedAt: z.number().int().openapi({ description: 'relay clock when made durable (ms)' }),
    inclusionProof: z.array(base64url(64)).openapi({ description: 'RFC 9162 inclusion proof, bottom-up' }),
    checkpoint: z.string().openapi({
      description:
        'C2SP signed note (tlog-checkpoint) the proof is against: the first checkpoint issued above seq (a retry gets the same one)',
    }),
    size: z.number().int().openapi({ description: 'tree size of that checkpoint' }),
    duplicate: z
      .boolean()
      .openapi({ description: 'true when this was a retry of an envelope already logged' }),
    receipt: z.string().openapi({
      description:
        "relay receipt: base64url CBOR {body: {v, channel, msgId, envelopeHash, seq, receivedAt}, [batch: {index, size, path},] sig} signed with the relay's checkpoint key (one signature per group commit: PROTOCOL.md, relay receipts)",
    }),
  })
  .openapi('AppendAnswer');

const append = (deps: AppDeps) =>
  createRoute({
    method: 'post',
    path: '/v1/channels/{channel}/envelopes',
    tags: ['channels'],
    summary: 'Append a signed envelope to the channel transcript',
    security,
    middleware: [
      body(deps, deps.config.limits.envelopeBodyBytes),
      // An envelope post is idempotent and its envelope signed: a replay only gets the original
      // answer, so it skips the cluster-wide signature record (a database round trip per post).
      authenticated(deps, { optional: true, clusterWide: false }),
    ] as const,
    request: {
      params: z.object({ channel: channelIdSchema }),
      headers: authHeaders,
      body: {
        required: false,
        content: {
          'application/json': {
            schema: z.strictObject({
              envelope: base64url(Math.ceil(MAX_ENVELOPE_BYTES / 3) * 4).openapi({
                description: 'envelope wire bytes',
              }),
            }),
          },
          'application/cbor': {
            schema: z.string().openapi({ format: 'binary', description: 'envelope wire bytes' }),
          },
        },
      },
    },
    responses: {
      200: {
        description: 'A retry: answered as of the first acceptance (receipt signed alone)',
        content: { 'application/json': { schema: appendAnswer } },
      },
      201: { description: 'Appended and durable', content: { 'application/json': { schema: appendAnswer } } },
      400: errors[400],
      401: errors[401],
      403: errors[403],
      409: errors[409],
      413: errors[413],
      429: errors[429],
    },
  });

export function envelopeRoutes(app: RelayApp, deps: AppDeps): void {
  // An unsigned post is a request and a write of its sender (taken once its envelope verifies).
  const accept: AcceptDeps = {
    ...deps,
    limitDevice: (d, now) => {
      limitDevice(deps, d, now);
      limitWrite(deps, d, now);
    },
  };
  app.openapi(append(deps), async (c) => {
    // (also on the WebSocket: `send` frames, text or binary — PROTOCOL.md §11)
    const wire = isJsonType(c.req.header('content-type'))
      ? b64((c.req.valid('json') as { envelope: string }).envelope, 'envelope')
      : c.var.rawBody;
    const answer = appendAnswerJson(
      await acceptEnvelope(accept, wire, {
        signedBy: c.get('device') as DeviceRecord | undefined,
        channel: c.req.valid('param').channel as ChannelId,
      }),
    );
    return c.json(answer, answer.duplicate ? 200 : 201);
  });
}
