/**
 * Transcript endpoints (members; former members up to their removal):
 *   GET  …/checkpoint                      the latest checkpoint + witness cosignatures
 *   GET  …/checkpoints/{size}              the checkpoint issued at that size, if any
 *   GET  …/proof/inclusion?index=&size=    RFC 9162 inclusion proof
 *   GET  …/proof/consistency?from=&to=     RFC 9162 consistency proof
 *   POST …/cosignatures {size, cosignature} store a witness's C2SP cosignature line
 * The relay stores any syntactically valid cosignature; verifying it is the reader's job. It
 * keeps at most MAX_COSIGNATURES per checkpoint, and at most MAX_COSIGNATURES_PER_PARTY from the
 * devices of one party (a witness signs once; a party posting more lines is crowding others out).
 */
import type { ChannelId } from '@backchannel/protocol';
import { parseNote } from '@backchannel/protocol/transcript';
import { toB64u } from '../bytes.node.ts';
import { createRoute, z } from '@hono/zod-openapi';
import type { MiddlewareHandler } from 'hono';
import { visibility } from '../channels/access.ts';
import { ProofBuilder } from '../channels/node-cache.ts';
import { RelayError } from '../errors.ts';
import { body } from '../http/body.ts';
import type { AppDeps, RelayApp, RelayEnv } from '../http/context.ts';
import { authenticated } from '../http/guards.ts';
import { authHeaders, base64url, channelIdSchema, errors, security, uintString } from '../http/schemas.ts';

export const MAX_COSIGNATURES = 32;
export const MAX_COSIGNATURES_PER_PARTY = 4;

const checkpointAnswer = z
  .object({
    checkpoint: z.string().openapi({ description: 'relay-signed C2SP tlog-checkpoint note' }),
    size: z.number().int(),
    cosignatures: z.array(z.string()).openapi({ description: 'C2SP tlog-cosignature lines' }),
  })
  .openapi('Checkpoint');

const proofAnswer = z.object({ proof: z.array(base64url(64)) });
const params = z.object({ channel: channelIdSchema });

function guarded(deps: AppDeps, maxBody = 0): [MiddlewareHandler<RelayEnv>, MiddlewareHandler<RelayEnv>] {
  return [body(deps, maxBody), authenticated(deps)];
}

const latest = (deps: AppDeps) =>
  createRoute({
    method: 'get',
    path: '/v1/channels/{channel}/checkpoint',
    tags: ['transcript'],
    summary: 'The latest checkpoint and its cosignatures',
    security,
    middleware: guarded(deps),
    request: { params, headers: authHeaders },
    responses: {
      200: { description: 'Checkpoint', content: { 'application/json': { schema: checkpointAnswer } } },
      401: errors[401],
      403: errors[403],
    },
  });

const atSize = (deps: AppDeps) =>
  createRoute({
    method: 'get',
    path: '/v1/channels/{channel}/checkpoints/{size}',
    tags: ['transcript'],
    summary: 'The checkpoint issued at a given tree size',
    security,
    middleware: guarded(deps),
    request: { params: params.extend({ size: uintString }), headers: authHeaders },
    responses: {
      200: { description: 'Checkpoint', content: { 'application/json': { schema: checkpointAnswer } } },
      401: errors[401],
      403: errors[403],
      404: errors[404],
    },
  });

const inclusion = (deps: AppDeps) =>
  createRoute({
    method: 'get',
    path: '/v1/channels/{channel}/proof/inclusion',
    tags: ['transcript'],
    summary: 'Inclusion proof of leaf `index` in the tree of `size` leaves',
    security,
    middleware: guarded(deps),
    request: { params, query: z.object({ index: uintString, size: uintString }), headers: authHeaders },
    responses: {
      200: {
        description: 'Proof (base64url hashes, bottom-up)',
        content: {
          'application/json': {
            schema: proofAnswer.extend({ index: z.number().int(), size: z.number().int() }),
          },
        },
      },
      400: errors[400],
      401: errors[401],
      403: errors[403],
    },
  });

const consistency = (deps: AppDeps) =>
  createRoute({
    method: 'get',
    path: '/v1/channels/{channel}/proof/consistency',
    tags: ['transcript'],
    summary: 'Consistency proof between tree sizes `from` and `to`',
    security,
    middleware: guarded(deps),
    request: { params, query: z.object({ from: uintString, to: uintString }), headers: authHeaders },
    responses: {
      200: {
        description: 'Proof (base64url hashes)',
        content: {
          'application/json': {
            schema: proofAnswer.extend({ from: z.number().int(), to: z.number().int() }),
          },
        },
      },
      400: errors[400],
      401: errors[401],
      403: errors[403],
    },
  });

const cosign = (deps: AppDeps) =>
  createRoute({
    method: 'post',
    path: '/v1/channels/{channel}/cosignatures',
    tags: ['transcript'],
    summary: "Store a witness's cosignature of a checkpoint",
    security,
    middleware: guarded(deps, deps.config.limits.bodyBytes),
    request: {
      params,
      headers: authHeaders,
      body: {
        required: true,
        content: {
          'application/json': {
            schema: z.strictObject({
              size: z.number().int().nonnegative(),
              cosignature: z
                .string()
                .max(1000)
                .openapi({ description: '"— <name> <base64>" signature line' }),
            }),
          },
        },
      },
    },
    responses: {
      200: {
        description: 'Stored',
        content: {
          'application/json': {
            schema: z.object({ size: z.number().int(), cosignatures: z.number().int() }),
          },
        },
      },
      400: errors[400],
      401: errors[401],
      403: errors[403],
      404: errors[404],
      409: errors[409],
    },
  });

function noteText(note: string): string {
  return note.slice(0, note.indexOf('\n\n') + 1);
}

/** A C2SP tlog-cosignature/v1 line: one signature line whose blob is 8-byte time + 64-byte signature. */
export function parseCosignatureLine(checkpointNote: string, line: string): string {
  const l = line.endsWith('\n') ? line : `${line}\n`;
  const parsed = parseNote(`${noteText(checkpointNote)}\n${l}`);
  if (!parsed.ok || parsed.value.signatures.length !== 1 || parsed.value.signatures[0]?.blob.length !== 72) {
    throw new RelayError('COSIGNATURE_INVALID', 'expected one C2SP cosignature/v1 signature line');
  }
  return l;
}

export function transcriptRoutes(app: RelayApp, deps: AppDeps): void {
  app.openapi(latest(deps), async (c) => {
    const channel = c.req.valid('param').channel as ChannelId;
    const v = await deps.store.read((tx) => visibility(tx, channel, c.var.device.device));
    const cp = v.checkpoint;
    return c.json({ checkpoint: cp.note, size: cp.size, cosignatures: [...cp.cosignatures] }, 200);
  });

  app.openapi(atSize(deps), async (c) => {
    const { channel, size } = c.req.valid('param');
    const cp = await deps.store.read(async (tx) => {
      const v = await visibility(tx, channel as ChannelId, c.var.device.device);
      if (size > v.checkpoint.size) return undefined;
      return tx.getCheckpoint(channel as ChannelId, size);
    });
    if (cp === undefined)
      throw new RelayError('CHECKPOINT_NOT_FOUND', 'no checkpoint was issued at this size');
    return c.json({ checkpoint: cp.note, size: cp.size, cosignatures: [...cp.cosignatures] }, 200);
  });

  app.openapi(inclusion(deps), async (c) => {
    const channel = c.req.valid('param').channel as ChannelId;
    const { index, size } = c.req.valid('query');
    const proof = await deps.store.read(async (tx) => {
      const v = await visibility(tx, channel, c.var.device.device);
      if (!(index < size && size <= v.checkpoint.size)) {
        throw new RelayError('RANGE_INVALID', `need index < size ≤ ${v.checkpoint.size}`);
      }
      const b = new ProofBuilder(channel, deps.nodeCache);
      b.needInclusion(index, size);
      await b.load(tx);
      return b.inclusion(index, size);
    });
    return c.json({ index, size, proof: proof.map(toB64u) }, 200);
  });

  app.openapi(consistency(deps), async (c) => {
    const channel = c.req.valid('param').channel as ChannelId;
    const { from, to } = c.req.valid('query');
    const proof = await deps.store.read(async (tx) => {
      const v = await visibility(tx, channel, c.var.device.device);
      if (!(from <= to && to <= v.checkpoint.size)) {
        throw new RelayError('RANGE_INVALID', `need from ≤ to ≤ ${v.checkpoint.size}`);
      }
      const b = new ProofBuilder(channel, deps.nodeCache);
      b.needConsistency(from, to);
      await b.load(tx);
      return b.consistency(from, to);
    });
    return c.json({ from, to, proof: proof.map(toB64u) }, 200);
  });

  app.openapi(cosign(deps), async (c) => {
    const channel = c.req.valid('param').channel as ChannelId;
    const { size, cosignature } = c.req.valid('json');
    const { device, party } = c.var.device;
    const count = await deps.store.write(async (tx) => {
      const v = await visibility(tx, channel, device);
      if (size > v.checkpoint.size) {
        throw new RelayError('CHECKPOINT_NOT_FOUND', 'no checkpoint was issued at this size');
      }
      // The caps are checked and the line added under one lock (several relay nodes may take posts).
      await tx.lockCheckpoint(channel, size);
      const cp = await tx.getCheckpoint(channel, size);
      if (cp === undefined)
        throw new RelayError('CHECKPOINT_NOT_FOUND', 'no checkpoint was issued at this size');
      const line = parseCosignatureLine(cp.note, cosignature);
      if (cp.cosignatures.includes(line)) return cp.cosignatures.length;
      if (cp.cosignatures.length >= MAX_COSIGNATURES) {
        throw new RelayError('COSIGNATURES_FULL', `at most ${MAX_COSIGNATURES} cosignatures per checkpoint`);
      }
      if ((await tx.countCosignatures(channel, size, party)) >= MAX_COSIGNATURES_PER_PARTY) {
        throw new RelayError(
          'COSIGNATURES_PARTY_FULL',
          `at most ${MAX_COSIGNATURES_PER_PARTY} cosignatures per party per checkpoint`,
        );
      }
      await tx.addCosignature(channel, size, line, party);
      return cp.cosignatures.length + 1;
    });
    return c.json({ size, cosignatures: count }, 200);
  });
}
