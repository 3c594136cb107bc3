/**
 * Which PostgreSQL failures are transient: the server is unreachable, restarting, out of
 * connections or of lock-table room, or aborted the transaction to break a deadlock or a
 * serialization conflict.
 * Those become STORE_UNAVAILABLE (HTTP 503 + Retry-After): nothing was committed, retry.
 * Anything else stays an internal error (a bug or a broken schema, not something to retry).
 */
import { RelayError } from '../../errors.ts';

/** How long a client should wait before retrying a write the store could not take. */
export const STORE_RETRY_AFTER_MS = 1_000;

const CONNECTION_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  // postgres.js
  'CONNECTION_CLOSED',
  'CONNECTION_ENDED',
  'CONNECTION_DESTROYED',
  'CONNECT_TIMEOUT',
]);

const SQLSTATES = new Set([
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now (starting up, recovering)
  '53300', // too_many_connections
  '53200', // out_of_memory: also a full lock table (max_locks_per_transaction), freed as others end
  '40001', // serialization_failure
  '40P01', // deadlock_detected
]);

function codeOf(e: unknown): string | undefined {
  if (typeof e !== 'object' || e === null || !('code' in e)) return undefined;
  const code = (e as { code: unknown }).code;
  return typeof code === 'string' ? code : undefined;
}

export function isTransientPgError(e: unknown): boolean {
  const code = codeOf(e);
  if (code === undefined) return false;
  // SQLSTATE class 08: connection exception.
  return CONNECTION_CODES.has(code) || SQLSTATES.has(code) || /^08[0-9A-Z]{3}$/.test(code);
}

/** The typed error a transient failure becomes (no driver message: it may name hosts). */
export function storeUnavailable(): RelayError {
  return new RelayError('STORE_UNAVAILABLE', 'the relay cannot reach its database right now; retry', {
    retryAfterMs: STORE_RETRY_AFTER_MS,
  });
}
