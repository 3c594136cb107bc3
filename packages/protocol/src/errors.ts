/**
 * The one error class of @backchannel/protocol. Every code is stable, listed in
 * docs/ERRORS.md (a test keeps the two in agreement) and never carries secret values.
 */
export const PROTOCOL_ERROR_CODES = [
  // decoding untrusted bytes
  'DECODE_MALFORMED',
  'DECODE_TOO_LARGE',
  'DECODE_NOT_CANONICAL',
  'SCHEMA_INVALID',
  'ID_INVALID',
  // signatures, keys, certificates
  'SIG_INVALID',
  'KEY_INVALID',
  'CERT_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_REVOKED',
  'CERT_WRONG_PARTY',
  'ROLE_FORBIDDEN',
  'CARD_INVALID',
  // events and channel state
  'EVENT_INVALID',
  'COMMITMENT_MISMATCH',
  'TRANSITION_INVALID',
  'CHANNEL_NOT_OPEN',
  'CHANNEL_CLOSED',
  'TRACK_UNKNOWN',
  'TRACK_EXISTS',
  'NOT_A_MEMBER',
  'LIFECYCLE_VIEW_INVALID',
  // negotiated documents
  'DOC_UNKNOWN',
  'DOC_INVALID',
  'DOC_REVISION_STALE',
  'DOC_REVISION_UNKNOWN',
  'DOC_BRACKETS_OPEN',
  'DOC_SIGNATURE_FORBIDDEN',
  'DOC_NOT_AGREED',
  'DOC_TEXT_MISMATCH',
  'DOC_ID_MISMATCH',
  'BUNDLE_INVALID',
  // transcript, checkpoints, notes
  'PROOF_INVALID',
  'NOTE_MALFORMED',
  'NOTE_UNVERIFIED',
  'CHECKPOINT_INVALID',
  'CHECKPOINT_INCONSISTENT',
  'COSIGNATURE_INVALID',
  // MLS group and envelopes
  'ENVELOPE_INVALID',
  'EPOCH_STALE',
  'EPOCH_FUTURE',
  'GROUP_MISMATCH',
  'MLS_DECRYPT_FAILED',
  'MLS_COMMIT_REJECTED',
  'MLS_CREDENTIAL_REJECTED',
  'MLS_DUPLICATE',
  'MLS_REMOVED',
  'KEY_PACKAGE_INVALID',
  'KEY_PACKAGE_USED',
  // attestations
  'ATTESTATION_INVALID',
  'CLAIM_UNSUPPORTED',
  'TIME_OUTSIDE_WINDOW',
  'WITNESS_MISSING',
  'NOT_IN_LOG',
  'PARTY_UNTRUSTED',
  'READOUT_EARLY',
  'RELAY_RECEIPT_INVALID',
  'FORK_EVIDENCE_INVALID',
] as const;

export type ProtocolErrorCode = (typeof PROTOCOL_ERROR_CODES)[number];

export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
  readonly code: ProtocolErrorCode;
  /** Where in the input the problem was found (a field path), never the value itself. */
  readonly at: string | undefined;

  constructor(code: ProtocolErrorCode, message: string, at?: string) {
    super(message);
    this.code = code;
    this.at = at;
  }
}

export function isProtocolError(e: unknown): e is ProtocolError {
  return e instanceof ProtocolError;
}

/** A decoder's answer: the value, or the reason it was refused. */
export type Decoded<T> =
  | { ok: true; value: T }
  | { ok: false; code: ProtocolErrorCode; at: string; message: string };

export function fail<T = never>(code: ProtocolErrorCode, at: string, message: string): Decoded<T> {
  return { ok: false, code, at, message };
}

/** Turns a refused decode into a thrown ProtocolError (for callers that prefer exceptions). */
export function unwrap<T>(d: Decoded<T>): T {
  if (d.ok) return d.value;
  throw new ProtocolError(d.code, d.message, d.at);
}
