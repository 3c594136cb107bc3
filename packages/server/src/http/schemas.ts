/** Shared request/response schemas (zod + OpenAPI from the same source). */
import { z } from '@hono/zod-openapi';
import { fromB64u } from '../bytes.node.ts';
import { RelayError } from '../errors.ts';

export const base64url = (maxChars: number) =>
  z
    .string()
    .max(maxChars)
    .regex(/^[A-Za-z0-9_-]*$/, 'base64url without padding')
    .openapi({ format: 'base64url' });

export const channelIdSchema = z
  .string()
  .regex(/^c_[A-Za-z0-9_-]{22}$/, 'a channel id (c_…)')
  .openapi({ example: 'c_AAAAAAAAAAAAAAAAAAAAAA' });
export const partyIdSchema = z
  .string()
  .regex(/^p_[A-Za-z0-9_-]{22}$/, 'a party id (p_…)')
  .openapi({ example: 'p_AAAAAAAAAAAAAAAAAAAAAA' });
export const deviceIdSchema = z
  .string()
  .regex(/^d_[A-Za-z0-9_-]{22}$/, 'a device id (d_…)')
  .openapi({ example: 'd_AAAAAAAAAAAAAAAAAAAAAA' });

/** A non-negative integer in a query string or path ("0", "17"; no sign, no exponent). */
export const uintString = z
  .string()
  .regex(/^(0|[1-9][0-9]{0,14})$/, 'a non-negative integer')
  .transform(Number)
  .openapi({ type: 'integer' });

export const errorSchema = z
  .object({
    error: z.object({
      code: z.string().openapi({ example: 'NOT_A_MEMBER' }),
      message: z.string(),
      retryAfterMs: z.number().int().optional(),
    }),
  })
  .openapi('Error');

const errorContent = { 'application/json': { schema: errorSchema } };

/** The error responses a route documents (every code and its status are in ERRORS.md). */
export const errors = {
  400: {
    description: 'Invalid request (REQUEST_INVALID, BODY_MALFORMED, DECODE_*, …)',
    content: errorContent,
  },
  401: { description: 'Not authenticated (AUTH_*, DEVICE_UNKNOWN)', content: errorContent },
  403: { description: 'Not allowed (CERT_REVOKED, NOT_A_MEMBER, ROLE_FORBIDDEN, …)', content: errorContent },
  404: { description: 'Not found', content: errorContent },
  409: {
    description: 'Conflict (EPOCH_STALE, EPOCH_FUTURE, DUPLICATE_MESSAGE_ID, …)',
    content: errorContent,
  },
  413: { description: 'Body too large', content: errorContent },
  429: { description: 'Rate limited (RATE_LIMITED with retryAfterMs)', content: errorContent },
} as const;

export const authHeaders = z.object({
  'x-bc-device': deviceIdSchema.optional().openapi({ description: 'the signing device' }),
  'x-bc-time': z.string().optional().openapi({ description: 'ms since the Unix epoch' }),
  'x-bc-sig': z.string().optional().openapi({
    description:
      "base64url Ed25519 signature: signWithLabel(deviceSk, 'request', CBOR([METHOD, pathWithQuery, time, SHA-256(body), relayName])), relayName = GET /v1/relay `name`",
  }),
});

export const security = [{ signedRequest: [] }];

/** Decodes a base64url field, refusing it with DECODE_MALFORMED. */
export function b64(s: string, field: string): Uint8Array {
  const b = fromB64u(s);
  if (b === undefined) throw new RelayError('DECODE_MALFORMED', `${field} is not valid base64url`);
  return b;
}
