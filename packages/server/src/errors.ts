/**
 * The one error class of the relay. Every code is stable, maps to exactly one HTTP status,
 * is listed in packages/server/ERRORS.md (a test keeps the two in agreement), and its JSON
 * form is {error: {code, message}} — never a stack trace, never a secret or a body.
 */
import type { ProtocolErrorCode } from '@backchannel/protocol';

export const RELAY_ERROR_STATUS = {
  // requests
  REQUEST_INVALID: 400,
  BODY_MALFORMED: 400,
  BODY_TOO_LARGE: 413,
  HEADERS_TOO_LARGE: 431,
  UNSUPPORTED_MEDIA_TYPE: 415,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  RATE_LIMITED: 429,
  // authentication
  AUTH_MISSING: 401,
  AUTH_INVALID: 401,
  AUTH_EXPIRED: 401,
  AUTH_REPLAY: 401,
  DEVICE_UNKNOWN: 401,
  CERT_REVOKED: 403,
  CERT_EXPIRED: 403,
  CERT_NOT_YET_VALID: 403,
  // decoding and signatures (the protocol's codes, passed through)
  DECODE_MALFORMED: 400,
  DECODE_TOO_LARGE: 413,
  DECODE_NOT_CANONICAL: 400,
  SCHEMA_INVALID: 400,
  ENVELOPE_INVALID: 400,
  ID_INVALID: 400,
  SIG_INVALID: 400,
  CERT_WRONG_PARTY: 400,
  CARD_INVALID: 400,
  // directory
  PARTY_UNKNOWN: 404,
  CARD_STALE: 409,
  CERT_STALE: 409,
  KEY_PACKAGE_INVALID: 400,
  KEY_PACKAGES_FULL: 409,
  KEY_PACKAGES_EXHAUSTED: 409,
  INVITE_USED: 409,
  // channels
  CHANNEL_MISMATCH: 400,
  SENDER_MISMATCH: 403,
  NOT_A_MEMBER: 403,
  ROLE_FORBIDDEN: 403,
  MEMBER_INVALID: 422,
  EPOCH_STALE: 409,
  EPOCH_FUTURE: 409,
  DUPLICATE_MESSAGE_ID: 409,
  // transcript
  CHECKPOINT_NOT_FOUND: 404,
  RANGE_INVALID: 400,
  COSIGNATURE_INVALID: 400,
  COSIGNATURES_FULL: 409,
  COSIGNATURES_PARTY_FULL: 409,
  // WebSocket frames
  FRAME_INVALID: 400,
  FRAME_TOO_LARGE: 413,
  SLOW_CONSUMER: 503,
  SEND_BUFFER_FULL: 503,
  TOO_MANY_CONNECTIONS: 429,
  // the relay itself
  NOT_READY: 503,
  RELAY_BUSY: 503,
  STORE_UNAVAILABLE: 503,
  INTERNAL: 500,
} as const satisfies Record<string, number>;

export type RelayErrorCode = keyof typeof RELAY_ERROR_STATUS;
export const RELAY_ERROR_CODES = Object.keys(RELAY_ERROR_STATUS) as RelayErrorCode[];

export class RelayError extends Error {
  override readonly name = 'RelayError';
  readonly code: RelayErrorCode;
  readonly retryAfterMs: number | undefined;

  constructor(code: RelayErrorCode, message: string, opts: { retryAfterMs?: number } = {}) {
    super(message);
    this.code = code;
    this.retryAfterMs = opts.retryAfterMs;
  }

  get status(): number {
    return RELAY_ERROR_STATUS[this.code];
  }

  toJSON(): { error: { code: RelayErrorCode; message: string; retryAfterMs?: number } } {
    return {
      error: {
        code: this.code,
        message: this.message,
        ...(this.retryAfterMs === undefined ? {} : { retryAfterMs: this.retryAfterMs }),
      },
    };
  }
}

export function isRelayError(e: unknown): e is RelayError {
  return e instanceof RelayError;
}

export function isRelayErrorCode(code: string): code is RelayErrorCode {
  return Object.hasOwn(RELAY_ERROR_STATUS, code);
}

/** A protocol refusal (decoder or verifier) as a relay error with the same code when the relay knows it. */
export function fromProtocol(code: ProtocolErrorCode, message: string, fallback: RelayErrorCode): RelayError {
  return new RelayError(isRelayErrorCode(code) ? code : fallback, message);
}
