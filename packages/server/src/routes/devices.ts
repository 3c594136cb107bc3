/**
 * Devices: POST /v1/devices (a root-signed certificate), POST /v1/revocations (root-signed),
 * GET /v1/parties/{party}/devices (any registered device) → certificates and revocations.
 */
import {
  constantTimeEqual,
  type DeviceCertificate,
  type DeviceId,
  decodeDeviceCertificate,
  decodeRevocation,
  type PartyId,
  type Revocation,
  unwrap,
  verifyDeviceCertificate,
  verifyDeviceKeyProof,
  verifyRevocation,
} from '@backchannel/protocol';
import { toB64u } from '../bytes.node.ts';
import { createRoute, z } from '@hono/zod-openapi';
import { fromProtocol, RelayError } from '../errors.ts';
import { body } from '../http/body.ts';
import type { AppDeps, RelayApp } from '../http/context.ts';
import { authenticated, unsignedPost } from '../http/guards.ts';
import {
  authHeaders,
  b64,
  base64url,
  deviceIdSchema,
  errors,
  partyIdSchema,
  security,
} from '../http/schemas.ts';
import type { WriteTx } from '../store/store.ts';

/**
 * Stores a verified certificate; refuses a device registered under another party (a root can
 * certify any public key it has seen: the first party to register a device key keeps it), a
 * revoked device, or a certificate older than the one held.
 */
export async function registerCertificate(
  tx: WriteTx,
  cert: DeviceCertificate,
  bytes: Uint8Array,
): Promise<DeviceId> {
  const b = cert.body;
  // Held until the transaction ends, before the checks read the record (a shared store: a
  // renewal or revocation on another node waits, and one under way is seen).
  await tx.lockDevices([b.device]);
  const prev = await tx.getDevice(b.device);
  if (prev !== undefined && prev.party !== b.party) {
    throw new RelayError('CERT_WRONG_PARTY', 'this device is registered under another party');
  }
  if (prev?.revokedAt !== undefined)
    throw new RelayError('CERT_REVOKED', 'this device was revoked by its party');
  if (prev !== undefined && b.notBefore < prev.notBefore) {
    throw new RelayError('CERT_STALE', 'a newer certificate is registered for this device');
  }
  await tx.putDevice({
    device: b.device,
    party: b.party,
    publicKey: b.devicePublicKey,
    role: b.role,
    notBefore: b.notBefore,
    notAfter: b.notAfter,
    certificate: bytes,
  });
  return b.device;
}

const postDevice = (deps: AppDeps) =>
  createRoute({
    method: 'post',
    path: '/v1/devices',
    tags: ['directory'],
    summary:
      "Register a device certificate (signed by the party root key) with the device key's proof of possession",
    middleware: [unsignedPost(deps), body(deps, deps.config.limits.bodyBytes)] as const,
    request: {
      body: {
        required: true,
        content: {
          'application/json': {
            schema: z.strictObject({
              certificate: base64url(40_000),
              proof: base64url(100).openapi({
                description:
                  "the device key's Ed25519 signature over the certificate, labelled 'device-key-proof' (PROTOCOL.md §4)",
              }),
            }),
          },
        },
      },
    },
    responses: {
      200: {
        description: 'Registered',
        content: {
          'application/json': {
            schema: z.object({ device: deviceIdSchema, party: partyIdSchema, role: z.string() }),
          },
        },
      },
      400: errors[400],
      403: errors[403],
      404: errors[404],
      409: errors[409],
      429: errors[429],
    },
  });

const postRevocation = (deps: AppDeps) =>
  createRoute({
    method: 'post',
    path: '/v1/revocations',
    tags: ['directory'],
    summary: 'Revoke a device (a revocation signed by the party root key)',
    middleware: [unsignedPost(deps), body(deps, deps.config.limits.bodyBytes)] as const,
    request: {
      body: {
        required: true,
        content: { 'application/json': { schema: z.strictObject({ revocation: base64url(40_000) }) } },
      },
    },
    responses: {
      200: {
        description: 'Recorded',
        content: {
          'application/json': { schema: z.object({ device: deviceIdSchema, revokedAt: z.number().int() }) },
        },
      },
      400: errors[400],
      404: errors[404],
      429: errors[429],
    },
  });

const postEnrollment = (deps: AppDeps) =>
  createRoute({
    method: 'post',
    path: '/v1/devices/enrollment',
    tags: ['directory'],
    summary:
      "Redeem this device's invite: the first installation to enroll with the device's key keeps it; another is refused (INVITE_USED)",
    security,
    middleware: [body(deps, deps.config.limits.bodyBytes), authenticated(deps)] as const,
    request: {
      headers: authHeaders,
      body: {
        required: true,
        content: {
          'application/json': {
            schema: z.strictObject({
              installation: base64url(64).openapi({
                description:
                  'random bytes (16–32) naming the installation, kept by it: a retry sends the same',
              }),
            }),
          },
        },
      },
    },
    responses: {
      200: {
        description: 'Enrolled (now, or earlier by this same installation)',
        content: { 'application/json': { schema: z.object({ enrolledAt: z.number().int() }) } },
      },
      400: errors[400],
      401: errors[401],
      409: errors[409],
    },
  });

const listDevices = (deps: AppDeps) =>
  createRoute({
    method: 'get',
    path: '/v1/parties/{party}/devices',
    tags: ['directory'],
    summary: "A party's device certificates and revocations (any registered device may ask)",
    security,
    middleware: [body(deps, 0), authenticated(deps)] as const,
    request: { params: z.object({ party: partyIdSchema }), headers: authHeaders },
    responses: {
      200: {
        description: 'Encoded certificates and revocations',
        content: {
          'application/json': {
            schema: z.object({
              certificates: z.array(base64url(40_000)),
              revocations: z.array(base64url(40_000)),
            }),
          },
        },
      },
      401: errors[401],
      404: errors[404],
    },
  });

export function deviceRoutes(app: RelayApp, deps: AppDeps): void {
  app.openapi(postEnrollment(deps), async (c) => {
    const installation = b64(c.req.valid('json').installation, 'installation');
    if (installation.length < 16 || installation.length > 32)
      throw new RelayError('SCHEMA_INVALID', 'installation: 16 to 32 random bytes');
    const device = c.var.device.device;
    const first = await deps.store.write((tx) => tx.claimEnrollment(device, installation, deps.now()));
    if (!constantTimeEqual(first.installation, installation))
      throw new RelayError(
        'INVITE_USED',
        `the invite of device ${device} was already redeemed, on ${new Date(first.at).toISOString()}, by another installation: two installations must not share one device key; ask your admin for a new invite (device add), and revoke this device if that was not you`,
      );
    return c.json({ enrolledAt: first.at }, 200);
  });

  app.openapi(postDevice(deps), async (c) => {
    const json = c.req.valid('json');
    const bytes = b64(json.certificate, 'certificate');
    const d = decodeDeviceCertificate(bytes);
    if (!d.ok) throw fromProtocol(d.code, d.message, 'SCHEMA_INVALID');
    const cert = d.value;
    if (!verifyDeviceKeyProof(cert, bytes, b64(json.proof, 'proof'), deps.suite)) {
      throw new RelayError(
        'SIG_INVALID',
        "the proof does not verify under the certified device key: only the device key's holder registers it",
      );
    }
    const now = deps.now();
    const device = await deps.store.write(async (tx) => {
      const card = await tx.getCard(cert.body.party);
      if (card === undefined) throw new RelayError('PARTY_UNKNOWN', 'publish the party contact card first');
      const revocations: Revocation[] = (await tx.listRevocations(cert.body.party)).map((r) =>
        unwrap(decodeRevocation(r.revocation)),
      );
      const check = verifyDeviceCertificate(cert, {
        rootPublicKey: card.rootPublicKey,
        now,
        revocations,
        suite: deps.suite,
      });
      if (!check.ok) throw fromProtocol(check.code, check.reason, 'SIG_INVALID');
      return registerCertificate(tx, cert, bytes);
    });
    deps.directory.invalidate(device);
    return c.json({ device, party: cert.body.party, role: cert.body.role }, 200);
  });

  app.openapi(postRevocation(deps), async (c) => {
    const bytes = b64(c.req.valid('json').revocation, 'revocation');
    const d = decodeRevocation(bytes);
    if (!d.ok) throw fromProtocol(d.code, d.message, 'SCHEMA_INVALID');
    const r = d.value;
    const revokedAt = await deps.store.write(async (tx) => {
      const card = await tx.getCard(r.body.party);
      if (card === undefined) throw new RelayError('PARTY_UNKNOWN', 'no contact card for this party');
      if (!verifyRevocation(r, card.rootPublicKey)) {
        throw new RelayError('SIG_INVALID', 'revocation signature does not verify under the party root key');
      }
      await tx.lockDevices([r.body.device]);
      const dev = await tx.getDevice(r.body.device);
      if (dev !== undefined && dev.party !== r.body.party) {
        throw new RelayError('CERT_WRONG_PARTY', 'this device belongs to another party');
      }
      await tx.putRevocation({
        party: r.body.party,
        device: r.body.device,
        revokedAt: r.body.revokedAt,
        revocation: bytes,
      });
      // The earliest revocation of the device wins: answer the one in force, not the one posted.
      const kept = (await tx.listRevocations(r.body.party)).find((x) => x.device === r.body.device);
      return kept?.revokedAt ?? r.body.revokedAt;
    });
    deps.directory.invalidate(r.body.device, revokedAt <= deps.now());
    return c.json({ device: r.body.device, revokedAt }, 200);
  });

  app.openapi(listDevices(deps), async (c) => {
    const party = c.req.valid('param').party as PartyId;
    const out = await deps.store.read(async (tx) => {
      if ((await tx.getCard(party)) === undefined) return undefined;
      return { devices: await tx.listDevices(party), revocations: await tx.listRevocations(party) };
    });
    if (out === undefined) throw new RelayError('PARTY_UNKNOWN', 'no contact card for this party');
    return c.json(
      {
        certificates: out.devices.map((d) => toB64u(d.certificate)),
        revocations: out.revocations.map((r) => toB64u(r.revocation)),
      },
      200,
    );
  });
}
