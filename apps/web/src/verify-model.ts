/**
 * The public verifier's logic, kept free of React: read a public-keys file and an attestation
 * (or fork evidence) as text, and verify them in the page with the noble Ed25519 backend — no
 * device, no relay, no network. The same rules as `backchannel verify FILE --keys KEYS`.
 */
import {
  ALG_COSIGNATURE_V1,
  ALG_ED25519,
  ATTESTATION_TYPE,
  type AttestationVerdict,
  FORK_EVIDENCE_TYPE,
  type ForkEvidenceCheck,
  fromBase64url,
  nobleEd25519,
  parseVerifierKey,
  verifyAttestation,
  verifyForkEvidence,
} from '@backchannel/client/browser';

/** The public keys a verifier needs (`backchannel keys` writes this file). */
export interface VerifierKeys {
  /** party id → root public key */
  readonly parties: ReadonlyArray<{ readonly party: string; readonly key: Uint8Array }>;
  readonly relayKeys: readonly string[];
  readonly witnesses: readonly string[];
}

export type Parsed<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly error: string };

/** The largest file the page reads (an attestation is capped at 1 MiB of JSON). */
export const MAX_FILE_BYTES = 2 * 1024 * 1024;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function parseJson(text: string): Parsed<unknown> {
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch {
    return { ok: false, error: 'it is not JSON (it may be the wrong file, or damaged)' };
  }
}

function stringList(v: unknown): string[] | undefined {
  if (v === undefined) return [];
  if (!Array.isArray(v) || !v.every((x): x is string => typeof x === 'string')) return undefined;
  return v;
}

/** Reads a public-keys file; every key is checked here, so the verifier never sees a bad one. */
export function parseKeysFile(text: string): Parsed<VerifierKeys> {
  const j = parseJson(text);
  if (!j.ok) return { ok: false, error: `The public-keys file cannot be read: ${j.error}.` };
  const v = j.value;
  if (!isRecord(v) || v.type !== 'backchannel/public-keys' || !isRecord(v.parties))
    return {
      ok: false,
      error: 'This is not a Backchannel public-keys file (expected "type": "backchannel/public-keys").',
    };
  const parties: Array<{ party: string; key: Uint8Array }> = [];
  for (const [party, k] of Object.entries(v.parties)) {
    let key: Uint8Array | undefined;
    try {
      key = typeof k === 'string' ? fromBase64url(k) : undefined;
    } catch {
      key = undefined;
    }
    if (key?.length !== 32)
      return { ok: false, error: `The root key given for party ${party} is not a 32-byte base64url key.` };
    parties.push({ party, key });
  }
  const relayKeys = stringList(v.relayKeys);
  const witnesses = stringList(v.witnesses);
  if (relayKeys === undefined || witnesses === undefined)
    return { ok: false, error: 'The public-keys file lists relay keys or witnesses in an unknown form.' };
  for (const r of relayKeys) {
    const k = parseVerifierKey(r);
    if (!k.ok || k.value.alg !== ALG_ED25519)
      return { ok: false, error: `The relay key “${r}” is not an Ed25519 checkpoint key.` };
  }
  for (const w of witnesses) {
    const k = parseVerifierKey(w);
    if (!k.ok || k.value.alg !== ALG_COSIGNATURE_V1)
      return { ok: false, error: `The witness key “${w}” is not a cosignature/v1 witness key.` };
  }
  return { ok: true, value: { parties, relayKeys, witnesses } };
}

/** What the checkpoint text says (origin, size, root), once the verifier has accepted it. */
export interface CheckpointSummary {
  readonly origin: string;
  readonly size: string;
  readonly root: string;
}

export type VerifyOutcome =
  /** The files could not be checked at all (not JSON, wrong kind of file, missing keys). */
  | { readonly kind: 'error'; readonly message: string }
  | {
      readonly kind: 'attestation';
      readonly verdict: AttestationVerdict;
      readonly issuedAt?: number;
      readonly checkpoint?: CheckpointSummary;
    }
  | { readonly kind: 'fork-evidence'; readonly check: ForkEvidenceCheck };

function checkpointSummary(text: unknown): CheckpointSummary | undefined {
  if (typeof text !== 'string') return undefined;
  const [origin, size, root] = text.split('\n');
  if (origin === undefined || size === undefined || root === undefined) return undefined;
  return { origin, size, root };
}

/** Verifies an attestation (or fork evidence) file's text against a public-keys file's text. */
export function verifyFiles(docText: string, keysText: string | undefined, now: number): VerifyOutcome {
  const j = parseJson(docText);
  if (!j.ok) return { kind: 'error', message: `The attestation file cannot be read: ${j.error}.` };
  const doc = j.value;
  const type = isRecord(doc) ? doc.type : undefined;
  const keys = keysText === undefined ? undefined : parseKeysFile(keysText);
  if (keys !== undefined && !keys.ok) return { kind: 'error', message: keys.error };
  if (type === FORK_EVIDENCE_TYPE) {
    const relayKeys = keys?.value.relayKeys ?? [];
    return {
      kind: 'fork-evidence',
      check: verifyForkEvidence(doc, {
        suite: nobleEd25519,
        ...(relayKeys.length === 0 ? {} : { relayKey: relayKeys }),
      }),
    };
  }
  if (type !== ATTESTATION_TYPE)
    return {
      kind: 'error',
      message:
        'This file is JSON but not a Backchannel attestation or fork evidence (expected "type": "backchannel/attestation").',
    };
  if (keys === undefined)
    return {
      kind: 'error',
      message: 'Choose the public-keys file too: an attestation is checked against it.',
    };
  if (keys.value.parties.length === 0 || keys.value.relayKeys.length === 0)
    return {
      kind: 'error',
      message: 'The public-keys file must name at least one party key and the relay key.',
    };
  const verdict = verifyAttestation(doc, {
    parties: keys.value.parties.map((p) => p.key),
    relayKeys: keys.value.relayKeys,
    witnesses: keys.value.witnesses,
    now,
    suite: nobleEd25519,
  });
  const issuedAt = isRecord(doc) && typeof doc.issuedAt === 'number' ? doc.issuedAt : undefined;
  const checkpoint = isRecord(doc) ? checkpointSummary(doc.checkpoint) : undefined;
  return {
    kind: 'attestation',
    verdict,
    ...(issuedAt === undefined ? {} : { issuedAt }),
    ...(checkpoint === undefined ? {} : { checkpoint }),
  };
}

/** Each refusal code in plain words (docs/ATTESTATIONS.md has the full story). */
export const REFUSAL_TITLES: Readonly<Record<string, string>> = {
  ATTESTATION_INVALID: 'The file is not a well-formed attestation',
  PARTY_UNTRUSTED: 'Signed by a party whose key you did not give',
  CERT_EXPIRED: 'A device certificate was not valid at the time',
  CERT_NOT_YET_VALID: 'A device certificate was not yet valid at the time',
  CERT_REVOKED: 'A device certificate was revoked',
  CERT_WRONG_PARTY: 'A device certificate belongs to another party',
  SIG_INVALID: 'Bad signature: the file was altered or not signed by its issuer',
  NOTE_UNVERIFIED: 'The relay checkpoint is not signed by the relay key you gave',
  COSIGNATURE_INVALID: 'A witness cosignature does not verify',
  WITNESS_MISSING: 'A required witness did not co-sign the relay checkpoint',
  NOT_IN_LOG: 'Not in the relay log: an entry is not in the signed log',
  COMMITMENT_MISMATCH: 'A disclosed message was edited after it was sent',
  CLAIM_UNSUPPORTED: 'The claim is not supported by the entries in the file',
  TIME_OUTSIDE_WINDOW: 'A time is outside the allowed window',
  READOUT_EARLY: 'A read-out was revealed before every party had committed',
  FORK_EVIDENCE_INVALID: 'The fork evidence does not hold',
  DOC_TEXT_MISMATCH: 'The agreed text was altered: it does not match the revision that was signed',
  DOC_NOT_AGREED: 'Not every party signed this revision of the document',
  DOC_BRACKETS_OPEN: 'The revision still has bracketed (unresolved) wording',
  DOC_SIGNATURE_FORBIDDEN: 'A sign-off was given by a device that may not give it',
  ROLE_FORBIDDEN: 'A sign-off came from a device whose role may not give it',
};

export function refusalTitle(code: string): string {
  return REFUSAL_TITLES[code] ?? 'The attestation does not verify';
}

/** Claim fields that are times (ms since the epoch). */
const TIME_FIELDS = new Set(['at', 'asOf', 'acknowledgedAt', 'agreedAt']);

const FIELD_LABELS: Readonly<Record<string, string>> = {
  kind: 'Kind of claim',
  channel: 'Channel',
  from: 'From party',
  to: 'To party',
  at: 'At (relay time)',
  opening: 'Opened the channel',
  parties: 'Parties',
  asOf: 'As of',
  withinHours: 'Within (hours)',
  event: 'Event',
  by: 'Acknowledged by party',
  acknowledgedAt: 'Acknowledged at',
  receipt: 'Receipt',
  round: 'Round',
  doc: 'Document',
  docType: 'Type of document',
  revision: 'Revision',
  hash: 'Revision hash',
  agreedAt: 'Agreed at (last signature, relay time)',
};

export function formatTime(ms: number): string {
  return `${new Date(ms)
    .toISOString()
    .replace('T', ' ')
    .replace(/\.\d+Z$/, '')} UTC`;
}

/** The claim's fields as label/value rows, times in UTC. */
export function claimRows(claim: Readonly<Record<string, unknown>>): Array<{ label: string; value: string }> {
  return Object.entries(claim).map(([k, v]) => ({
    label: FIELD_LABELS[k] ?? k,
    value:
      TIME_FIELDS.has(k) && typeof v === 'number'
        ? formatTime(v)
        : typeof v === 'boolean'
          ? v
            ? 'yes'
            : 'no'
          : Array.isArray(v)
            ? v.map(String).join(', ')
            : String(v),
  }));
}
