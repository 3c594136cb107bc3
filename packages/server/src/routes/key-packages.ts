/**
 * MLS key packages: POST /v1/key-packages (a device uploads its own one-time packages and an
 * optional last-resort one), POST /v1/key-packages/claim {party, device?} → one package per valid
 * device of that party (or only for `device`, a device of that party: adding one device to a
 * channel it is not in yet), each one-time package handed out exactly once (one write transaction),
 * within a claim budget per claiming device (rateLimits.keyPackageClaims).
 */
import type { PartyId } from '@backchannel/protocol';
import { toB64u } from '../bytes.node.ts';
import { createRoute, z } from '@hono/zod-openapi';
import { deviceStatus } from '../directory/devices.ts';
import { RelayError } from '../errors.ts';
import { body } from '../http/body.ts';
import type { AppDeps, RelayApp } from '../http/context.ts';
import { authenticated, rateLimited } from '../http/guards.ts';
import {
  authHeaders,
  b64,
  base64url,
  deviceIdSchema,
  errors,
  partyIdSchema,
  security,
} from '../http/schemas.ts';

export const MAX_KEY_PACKAGE_BYTES = 16 * 1024;
export const MAX_STORED_KEY_PACKAGES = 500;
const KP_CHARS = Math.ceil((MAX_KEY_PACKAGE_BYTES * 4) / 3);

const upload = (deps: AppDeps) =>
  createRoute({
    method: 'post',
    path: '/v1/key-packages',
    tags: ['directory'],
    summary: "Upload this device's MLS key packages",
    security,
    middleware: [body(deps, deps.config.limits.keyPackageBodyBytes), authenticated(deps)] as const,
    request: {
      headers: authHeaders,
      body: {
        required: true,
        content: {
          'application/json': {
            schema: z.strictObject({
              keyPackages: z.array(base64url(KP_CHARS)).max(100),
              lastResort: base64url(KP_CHARS).optional(),
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
            schema: z.object({ available: z.number().int(), lastResort: z.boolean() }),
          },
        },
      },
      400: errors[400],
      401: errors[401],
      409: errors[409],
    },
  });

const claim = (deps: AppDeps) =>
  createRoute({
    method: 'post',
    path: '/v1/key-packages/claim',
    tags: ['directory'],
    summary: 'Claim one key package for each valid device of a party',
    security,
    middleware: [body(deps, deps.config.limits.bodyBytes), authenticated(deps)] as const,
    request: {
      headers: authHeaders,
      body: {
        required: true,
        content: {
          'application/json': {
            schema: z.strictObject({ party: partyIdSchema, device: deviceIdSchema.optional() }),
          },
        },
      },
    },
    responses: {
      200: {
        description:
          'One package per device that had one (with `device`: that device only, or none when it has none yet)',
        content: {
          'application/json': {
            schema: z.object({
              keyPackages: z.array(
                z.object({
                  device: deviceIdSchema,
                  certificate: base64url(40_000),
                  keyPackage: base64url(KP_CHARS),
                  lastResort: z.boolean(),
                }),
              ),
            }),
          },
        },
      },
      401: errors[401],
      404: errors[404],
      409: errors[409],
      429: errors[429],
    },
  });

function decodeKeyPackage(s: string, field: string): Uint8Array {
  const b = b64(s, field);
  if (b.length === 0 || b.length > MAX_KEY_PACKAGE_BYTES) {
    throw new RelayError('KEY_PACKAGE_INVALID', `${field} must be 1..${MAX_KEY_PACKAGE_BYTES} bytes`);
  }
  return b;
}

export function keyPackageRoutes(app: RelayApp, deps: AppDeps): void {
  app.openapi(upload(deps), async (c) => {
    const req = c.req.valid('json');
    const device = c.var.device.device;
    const oneTime = req.keyPackages.map((k, i) => decodeKeyPackage(k, `keyPackages[${i}]`));
    const lastResort =
      req.lastResort === undefined ? undefined : decodeKeyPackage(req.lastResort, 'lastResort');
    const counts = await deps.store.write(async (tx) => {
      const before = await tx.countKeyPackages(device);
      if (before.oneTime + oneTime.length > MAX_STORED_KEY_PACKAGES) {
        throw new RelayError(
          'KEY_PACKAGES_FULL',
          `at most ${MAX_STORED_KEY_PACKAGES} unclaimed key packages per device`,
        );
      }
      await tx.addKeyPackages(device, oneTime, lastResort);
      return tx.countKeyPackages(device);
    });
    return c.json({ available: counts.oneTime, lastResort: counts.lastResort }, 200);
  });

  app.openapi(claim(deps), async (c) => {
    const { party, device: only } = c.req.valid('json') as { party: PartyId; device?: string };
    const now = deps.now();
    // One-time packages are what keeps a party's Welcomes forward-secret: one device may not drain them.
    const wait = deps.limiters.keyPackageClaims.take(c.var.device.device, now);
    if (wait > 0) {
      deps.metrics.rateLimited.inc({ scope: 'keyPackageClaims' });
      throw rateLimited(wait);
    }
    const claimed = await deps.store.write(async (tx) => {
      if ((await tx.getCard(party)) === undefined)
        throw new RelayError('PARTY_UNKNOWN', 'no contact card for this party');
      const out: Array<{ device: string; certificate: string; keyPackage: string; lastResort: boolean }> = [];
      for (const d of await tx.listDevices(party)) {
        if (only !== undefined && d.device !== only) continue;
        if (deviceStatus(d, now) !== undefined) continue;
        const kp = await tx.takeKeyPackage(d.device);
        if (kp === undefined) continue;
        out.push({
          device: d.device,
          certificate: toB64u(d.certificate),
          keyPackage: toB64u(kp.keyPackage),
          lastResort: kp.lastResort,
        });
      }
      // A named device with none is "not yet" (it is added once it has enrolled and uploaded
      // some): an empty answer, not a refusal. A party with none at all cannot be reached.
      if (out.length === 0 && only === undefined) {
        throw new RelayError('KEY_PACKAGES_EXHAUSTED', 'no device of this party has a key package left');
      }
      return out;
    });
    return c.json({ keyPackages: claimed }, 200);
  });
}
