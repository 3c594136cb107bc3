/**
 * The SDK's one error class. Callers get decisions, not status numbers:
 * `retryable` says whether trying again can help, `retryAfterMs` when.
 */
export const CLIENT_ERROR_CODES = [
  'PASSPHRASE_WRONG',
  'STORE_LOCKED',
  'STORE_CORRUPT',
  'STORE_FAILED',
  'NOT_INITIALIZED',
  'ALREADY_INITIALIZED',
  'NOT_ADMIN',
  'INVITE_INVALID',
  'RECOVERY_INVALID',
  'RELAY_UNREACHABLE',
  'RELAY_ERROR',
  'RELAY_REFUSED',
  'RATE_LIMITED',
  'CHANNEL_UNKNOWN',
  'CHANNEL_NOT_JOINED',
  'CHANNEL_STATE_LOST',
  'CARD_UNKNOWN',
  'NO_KEY_PACKAGES',
  'FORK_DETECTED',
  'TRANSCRIPT_INVALID',
  'EVENT_REJECTED',
  'INVALID_ARGUMENT',
  'DOCUMENT_UNKNOWN',
  'DOCUMENT_NOT_AGREED',
  'BACKUP_INVALID',
] as const;
export type ClientErrorCode = (typeof CLIENT_ERROR_CODES)[number];

export class ClientError extends Error {
  override readonly name = 'ClientError';
  readonly code: ClientErrorCode;
  readonly retryable: boolean;
  readonly retryAfterMs: number | undefined;
  /** For RELAY_REFUSED / EVENT_REJECTED: the relay's or the protocol's own code. */
  readonly cause_code: string | undefined;

  constructor(
    code: ClientErrorCode,
    message: string,
    opts: { retryable?: boolean; retryAfterMs?: number; causeCode?: string } = {},
  ) {
    super(message);
    this.code = code;
    this.retryable = opts.retryable ?? false;
    this.retryAfterMs = opts.retryAfterMs;
    this.cause_code = opts.causeCode;
  }
}

export function isRetryable(e: unknown): boolean {
  return e instanceof ClientError && e.retryable;
}
