/** Contact cards: PUT /v1/cards (self-signed; registers the party root key), GET /v1/cards/{party}. */
import {
  constantTimeEqual,
  decodeContactCard,
  decodeDeviceCertificate,
  type DeviceCertificate,
  type DeviceId,
  type PartyId,
  verifyDeviceCertificate,
} from '@backchannel/protocol';
import { toB64u } from '../bytes.node.ts';
import { createRoute, z } from '@hono/zod-openapi';
import { fromProtocol, RelayError } from '../errors.ts';
import { body } from '../http/body.ts';
import type { AppDeps, RelayApp } from '../http/context.ts';
import { unsignedPost } from '../http/guards.ts';
import { b64, base64url, errors, partyIdSchema } from '../http/schemas.ts';
import type { WriteTx } from '../store/store.ts';
import { registerCertificate } from './devices.ts';

const putCard = (deps: AppDeps) =>
  createRoute({
    method: 'put',
    path: '/v1/cards',
    tags: ['directory'],
    summary: "Publish or update a party's contact card (self-signed by the party root key)",
    middleware: [unsignedPost(deps), body(deps, deps.config.limits.cardBodyBytes)] as const,
    request: {
      body: {
        required: true,
        content: {
          'application/json': {
            schema: z.strictObject({
              card: base64url(800_000).openapi({ description: 'encoded contact card' }),
            }),
          },
        },
      },
    },
    responses: {
      200: {
        description: 'Stored (or already the current card)',
        content: {
          'application/json': {
            schema: z.object({ party: partyIdSchema, issuedAt: z.number().int(), devices: z.number().int() }),
          },
        },
      },
      400: errors[400],
      409: errors[409],
      413: errors[413],
      429: errors[429],
    },
  });

const getCard = createRoute({
  method: 'get',
  path: '/v1/cards/{party}',
  tags: ['directory'],
  summary: "A party's current contact card (public)",
  request: { params: z.object({ party: partyIdSchema }) },
  responses: {
    200: {
      description: 'The encoded card',
      content: {
        'application/json': { schema: z.object({ card: base64url(800_000), issuedAt: z.number().int() }) },
      },
    },
    404: errors[404],
  },
});

export function cardRoutes(app: RelayApp, deps: AppDeps): void {
  app.openapi(putCard(deps), async (c) => {
    const bytes = b64(c.req.valid('json').card, 'card');
    const d = decodeContactCard(bytes);
    if (!d.ok) throw fromProtocol(d.code, d.message, 'CARD_INVALID');
    const card = d.value;
    const party = card.body.party as PartyId;
    const now = deps.now();
    const registered = await deps.store.write(async (tx) => {
      const prev = await tx.getCard(party);
      if (prev !== undefined) {
        if (
          card.body.issuedAt < prev.issuedAt ||
          (card.body.issuedAt === prev.issuedAt && !constantTimeEqual(prev.card, bytes))
        ) {
          throw new RelayError(
            'CARD_STALE',
            'a card with a later (or the same) issuedAt is already published',
          );
        }
      }
      await tx.putCard({
        party,
        rootPublicKey: card.body.rootPublicKey,
        card: bytes,
        issuedAt: card.body.issuedAt,
      });
      return registerCardDevices(deps, tx, card.body.rootPublicKey, card.body.devices, now);
    });
    for (const d of registered) deps.directory.invalidate(d);
    return c.json({ party, issuedAt: card.body.issuedAt, devices: registered.length }, 200);
  });

  app.openapi(getCard, async (c) => {
    const party = c.req.valid('param').party as PartyId;
    const rec = await deps.store.read((tx) => tx.getCard(party));
    if (rec === undefined) throw new RelayError('PARTY_UNKNOWN', 'no contact card for this party');
    return c.json({ card: toB64u(rec.card), issuedAt: rec.issuedAt }, 200);
  });
}

/**
 * Renews the certificates a card carries for devices already registered under this party that
 * verify now (others are skipped). A card never registers a new device: that takes the device
 * key's proof of possession (POST /v1/devices), which a card does not carry.
 */
async function registerCardDevices(
  deps: AppDeps,
  tx: WriteTx,
  rootPublicKey: Uint8Array,
  certs: readonly Uint8Array[],
  now: number,
): Promise<DeviceId[]> {
  const out: DeviceId[] = [];
  const valid: Array<{ cert: DeviceCertificate; bytes: Uint8Array }> = [];
  for (const bytes of certs) {
    const cert = decodeDeviceCertificate(bytes);
    if (!cert.ok) continue;
    const check = verifyDeviceCertificate(cert.value, { rootPublicKey, now, suite: deps.suite });
    if (check.ok) valid.push({ cert: cert.value, bytes });
  }
  // Only devices registered under this party are renewed: a card may name any device key, and
  // its publisher must not hold another party's devices locked.
  const ours: typeof valid = [];
  for (const v of valid) {
    const rec = await tx.getDevice(v.cert.body.device);
    if (rec !== undefined && rec.party === v.cert.body.party) ours.push(v);
  }
  // All of them at once, first: one device at a time, in the card's order, could wait in a cycle
  // with an append batch on another relay node that holds some of them (a shared store).
  // registerCertificate reads each again under its lock.
  await tx.lockDevices(ours.map((v) => v.cert.body.device));
  for (const { cert, bytes } of ours) {
    try {
      out.push(await registerCertificate(tx, cert, bytes));
    } catch (e) {
      if (!(e instanceof RelayError)) throw e;
    }
  }
  return out;
}
