/**
 * The public verifier: checks an attestation offline with nothing but the file, the parties'
 * root public keys, the relay's checkpoint key and (optionally) the witnesses' keys.
 *
 * Order of checks, each failure with its own stable code:
 *   1. the document's shape                                     ATTESTATION_INVALID
 *   2. the issuer: certificate chain to a trusted root, signature PARTY_UNTRUSTED, CERT_*, SIG_INVALID
 *   3. the checkpoint: relay signature, witness cosignatures    SIG_INVALID, NOTE_UNVERIFIED, COSIGNATURE_INVALID, WITNESS_MISSING
 *   4. each entry: in this channel's log (RFC 9162 inclusion)    NOT_IN_LOG
 *   5. each entry's sender: certificate and envelope signature   PARTY_UNTRUSTED, CERT_*, SIG_INVALID
 *   6. each disclosed event: the sender's signed commitment      COMMITMENT_MISMATCH
 *   7. the claim itself against what the entries show            CLAIM_UNSUPPORTED, TIME_OUTSIDE_WINDOW, READOUT_EARLY,
 *                                                                DOC_TEXT_MISMATCH, DOC_NOT_AGREED, ROLE_FORBIDDEN
 */
import { constantTimeEqual, fromBase64url } from '../bytes/index.ts';
import { decodeEntry } from '../envelope/entry.ts';
import { verifyEnvelope } from '../envelope/envelope.ts';
import type { ProtocolErrorCode } from '../errors.ts';
import { verifyCommitment } from '../events/commitment.ts';
import type { ChannelEvent } from '../events/event.ts';
import {
  type DeviceCertificate,
  decodeDeviceCertificate,
  type Role,
  verifyDeviceCertificate,
} from '../identity/certificate.ts';
import { nobleEd25519, type SignatureSuite, verifyWithLabel } from '../identity/keys.ts';
import { type PartyId, partyIdFromKey } from '../ids.ts';
import { parseCheckpoint } from '../transcript/checkpoint.ts';
import { verifyCosignatures } from '../transcript/cosignature.ts';
import { leafHash, verifyInclusion } from '../transcript/merkle.ts';
import {
  ALG_COSIGNATURE_V1,
  ALG_ED25519,
  parseNote,
  parseVerifierKey,
  verifyNote,
} from '../transcript/note.ts';
import { type AgreedText, checkClaim, type ProvenEntry, type ReadoutComparison } from './claims.ts';
import {
  type Attestation,
  attestationSigningBody,
  type Claim,
  type ClaimKind,
  eventFromJson,
  parseAttestation,
} from './document.ts';

export interface VerifyAttestationOptions {
  /** Root public keys (32 bytes) of the parties the verifier trusts, obtained out of band. */
  readonly parties: readonly Uint8Array[];
  /** The relay's checkpoint verifier key(s), C2SP form "<name>+<key id>+<key>". */
  readonly relayKeys: readonly string[];
  /** Witnesses (C2SP cosignature/v1 verifier keys) that must all have co-signed the checkpoint. */
  readonly witnesses?: readonly string[];
  /** The verifier's clock (ms). Nothing in an attestation may be later than this (+ skew). */
  readonly now: number;
  /** Refuse liveness claims older than this (default: no limit). */
  readonly maxAgeMs?: number;
  /** Allowed clock difference between the verifier, the relay and the witnesses (default 5 min). */
  readonly skewMs?: number;
  /** Ed25519 backend (default noble; Node may pass node:crypto). */
  readonly suite?: SignatureSuite;
}

export type AttestationVerdict =
  | {
      readonly valid: true;
      readonly kind: ClaimKind;
      readonly claim: Claim;
      /** The claim in one plain sentence. */
      readonly statement: string;
      /** What was checked, in plain language. */
      readonly facts: readonly string[];
      readonly issuer: {
        readonly party: PartyId;
        readonly device: string;
        readonly name: string;
        readonly role: Role;
      };
      readonly witnesses: ReadonlyArray<{ readonly name: string; readonly at: number }>;
      readonly disclosed: ReadonlyArray<{ readonly index: number; readonly event: ChannelEvent }>;
      readonly readouts?: ReadoutComparison;
      /** For an agreed-text claim: the text both sides signed, and who signed when. */
      readonly agreed?: AgreedText;
    }
  | {
      readonly valid: false;
      readonly code: ProtocolErrorCode;
      /** Why, in plain language. */
      readonly reason: string;
      /** Where in the document. */
      readonly at: string;
      readonly kind?: ClaimKind;
    };

class Refusal {
  constructor(
    readonly code: ProtocolErrorCode,
    readonly reason: string,
    readonly at: string,
  ) {}
}

function refuse(code: ProtocolErrorCode, reason: string, at: string): never {
  throw new Refusal(code, reason, at);
}

/** Caches signature checks within one verification (a certificate is often used twice). */
function memo(suite: SignatureSuite): SignatureSuite {
  const seen = new Map<string, Array<{ msg: Uint8Array; ok: boolean }>>();
  return {
    sign: suite.sign,
    verify(sig, msg, pk) {
      const k = String.fromCharCode(...sig, ...pk);
      const hits = seen.get(k) ?? [];
      const hit = hits.find((h) => h.msg.length === msg.length && h.msg.every((b, i) => b === msg[i]));
      if (hit !== undefined) return hit.ok;
      const ok = suite.verify(sig, msg, pk);
      hits.push({ msg, ok });
      seen.set(k, hits);
      return ok;
    },
  };
}

function b64(s: string, at: string): Uint8Array {
  try {
    return fromBase64url(s, at);
  } catch {
    return refuse('ATTESTATION_INVALID', 'a field is not base64url', at);
  }
}

export function verifyAttestation(input: unknown, opts: VerifyAttestationOptions): AttestationVerdict {
  const parsed = parseAttestation(input);
  if (!parsed.ok) return { valid: false, code: parsed.code, reason: parsed.message, at: parsed.at };
  const doc = parsed.value;
  try {
    return verifyParsed(doc, opts);
  } catch (e) {
    if (e instanceof Refusal)
      return { valid: false, code: e.code, reason: e.reason, at: e.at, kind: doc.claim.kind };
    throw e;
  }
}

function verifyParsed(doc: Attestation, opts: VerifyAttestationOptions): AttestationVerdict {
  const suite = memo(opts.suite ?? nobleEd25519);
  const skewMs = opts.skewMs ?? 5 * 60_000;
  const roots = new Map<PartyId, Uint8Array>();
  for (const k of opts.parties) roots.set(partyIdFromKey(k), k);
  const facts: string[] = [];

  const checkCert = (cert: DeviceCertificate, at: number, where: string) => {
    const root = roots.get(cert.body.party);
    if (root === undefined)
      refuse(
        'PARTY_UNTRUSTED',
        `party ${cert.body.party} is not among the parties whose keys you gave`,
        where,
      );
    const r = verifyDeviceCertificate(cert, { rootPublicKey: root, now: at, suite });
    if (!r.ok) refuse(r.code, `the device certificate is not valid: ${r.reason}`, where);
  };

  // 2. The issuer and its signature.
  const issuerCert = decodeDeviceCertificate(b64(doc.issuer, 'issuer'));
  if (!issuerCert.ok) refuse('ATTESTATION_INVALID', 'the issuer certificate is malformed', 'issuer');
  const ic = issuerCert.value;
  checkCert(ic, doc.issuedAt, 'issuer');
  const sig = b64(doc.signature, 'signature');
  if (!verifyWithLabel(ic.body.devicePublicKey, 'attestation', attestationSigningBody(doc), sig, suite)) {
    refuse(
      'SIG_INVALID',
      'the attestation’s signature does not verify: it was altered or not signed by its issuer',
      'signature',
    );
  }
  if (doc.issuedAt > opts.now + skewMs)
    refuse('TIME_OUTSIDE_WINDOW', 'the attestation is dated in the future', 'issuedAt');
  facts.push(`signed by “${ic.body.name}” (${ic.body.role}), a device certified by party ${ic.body.party}`);

  // 3. The checkpoint: relay signature, then witnesses.
  const note = parseNote(doc.checkpoint);
  if (!note.ok) refuse('ATTESTATION_INVALID', `the checkpoint is malformed: ${note.message}`, 'checkpoint');
  const relayKeys = opts.relayKeys.map((s) => {
    const k = parseVerifierKey(s);
    if (!k.ok || k.value.alg !== ALG_ED25519)
      refuse('KEY_INVALID', 'a relay key you gave is not an Ed25519 note verifier key', 'relayKeys');
    return k.value;
  });
  const signed = verifyNote(note.value, relayKeys, suite);
  if (!signed.ok) {
    refuse(
      signed.code,
      signed.code === 'NOTE_UNVERIFIED'
        ? 'the checkpoint is not signed by the relay key you gave'
        : 'the relay signature on the checkpoint does not verify',
      'checkpoint',
    );
  }
  const cp = parseCheckpoint(note.value.text);
  if (!cp.ok) refuse('ATTESTATION_INVALID', `the checkpoint is malformed: ${cp.message}`, 'checkpoint');
  if (!cp.value.origin.endsWith(`/${doc.claim.channel}`))
    refuse(
      'NOT_IN_LOG',
      `the checkpoint is of another log (${cp.value.origin}), not channel ${doc.claim.channel}`,
      'checkpoint',
    );
  const witnessKeys = (opts.witnesses ?? []).map((s) => {
    const k = parseVerifierKey(s);
    if (!k.ok || k.value.alg !== ALG_COSIGNATURE_V1)
      refuse('KEY_INVALID', 'a witness key you gave is not a cosignature/v1 verifier key', 'witnesses');
    return k.value;
  });
  const cos = verifyCosignatures(note.value, witnessKeys, suite);
  if (!cos.ok)
    refuse('COSIGNATURE_INVALID', 'a witness cosignature on the checkpoint does not verify', 'checkpoint');
  for (const w of witnessKeys) {
    const c = cos.value.find((x) => x.witness.name === w.name && constantTimeEqual(x.witness.keyId, w.keyId));
    if (c === undefined)
      refuse(
        'WITNESS_MISSING',
        `the checkpoint is not co-signed by the required witness “${w.name}”`,
        'checkpoint',
      );
    if (c.timeSeconds * 1000 > opts.now + skewMs)
      refuse('TIME_OUTSIDE_WINDOW', `witness “${w.name}” dated its cosignature in the future`, 'checkpoint');
  }
  facts.push(
    `the relay log of channel ${doc.claim.channel} had ${cp.value.size} entries in a checkpoint signed by the relay` +
      (witnessKeys.length === 0
        ? ''
        : ` and co-signed by ${witnessKeys.map((w) => `“${w.name}”`).join(', ')}`),
  );

  // 4–5. Entries: inclusion, sender certificate, envelope signature.
  const certs = new Map<string, DeviceCertificate>();
  for (const [i, c] of doc.certificates.entries()) {
    const d = decodeDeviceCertificate(b64(c, `certificates[${i}]`));
    if (!d.ok) refuse('ATTESTATION_INVALID', 'a certificate is malformed', `certificates[${i}]`);
    certs.set(d.value.body.device, d.value);
  }
  const proven = new Map<number, ProvenEntry>();
  for (const [i, e] of doc.entries.entries()) {
    const at = `entries[${i}]`;
    if (proven.has(e.index)) refuse('ATTESTATION_INVALID', 'an entry is listed twice', at);
    const bytes = b64(e.entry, `${at}.entry`);
    const proof = e.proof.map((p, j) => b64(p, `${at}.proof[${j}]`));
    // RFC 9162 §2.1.3.2: the leaf hash must lead to the signed root through exactly this path.
    if (!verifyInclusion(leafHash(bytes), e.index, cp.value.size, proof, cp.value.root))
      refuse('NOT_IN_LOG', `entry ${e.index} is not in the signed log (its inclusion proof fails)`, at);
    const d = decodeEntry(bytes);
    if (!d.ok) refuse('ATTESTATION_INVALID', `entry ${e.index} is malformed`, at);
    if (d.value.entry.seq !== e.index || d.value.entry.channel !== doc.claim.channel)
      refuse('NOT_IN_LOG', `entry ${e.index} belongs to another position or channel`, at);
    const sender = d.value.entry.sender;
    const cert = certs.get(sender);
    if (cert === undefined)
      refuse('ATTESTATION_INVALID', `no certificate for the sender of entry ${e.index}`, at);
    checkCert(cert, d.value.entry.receivedAt, at);
    if (!verifyEnvelope(d.value.envelope, cert.body.devicePublicKey, suite))
      refuse('SIG_INVALID', `entry ${e.index} is not signed by its sender's device`, at);
    proven.set(e.index, { index: e.index, decoded: d.value, party: cert.body.party, role: cert.body.role });
  }

  // 6. Disclosures: each revealed event must match the commitment its sender signed.
  for (const [i, x] of doc.disclosures.entries()) {
    const at = `disclosures[${i}]`;
    const p = proven.get(x.index);
    if (p === undefined)
      refuse('ATTESTATION_INVALID', `disclosure of entry ${x.index}, which is not included`, at);
    if (p.event !== undefined) refuse('ATTESTATION_INVALID', 'an entry is disclosed twice', at);
    const body = p.decoded.envelope.body;
    if (body.kind !== 'application' || body.commitment === undefined)
      refuse('CLAIM_UNSUPPORTED', `entry ${x.index} carries no event`, at);
    const ev = eventFromJson(x.event, `${at}.event`);
    if (!ev.ok) refuse('ATTESTATION_INVALID', `the disclosed event is malformed: ${ev.message}`, at);
    if (ev.value.id !== body.msgId)
      refuse('CLAIM_UNSUPPORTED', `the disclosed event is not the one logged at entry ${x.index}`, at);
    if (!verifyCommitment(ev.value, b64(x.salt, `${at}.salt`), body.commitment))
      refuse(
        'COMMITMENT_MISMATCH',
        `the disclosed event differs from what its sender committed to at entry ${x.index}: it was edited`,
        at,
      );
    proven.set(x.index, { ...p, event: ev.value });
  }

  // The witness's time bounds the relay's: an entry cannot be logged after a witness saw the log.
  const earliestCosig = Math.min(...cos.value.map((c) => c.timeSeconds * 1000));
  for (const p of proven.values()) {
    if (p.decoded.entry.receivedAt > opts.now + skewMs || p.decoded.entry.receivedAt > earliestCosig + skewMs)
      refuse(
        'TIME_OUTSIDE_WINDOW',
        `entry ${p.index} is dated after the checkpoint was co-signed or after now`,
        `entries`,
      );
  }

  // 7. The claim.
  const r = checkClaim({
    claim: doc.claim,
    issuerParty: ic.body.party,
    issuedAt: doc.issuedAt,
    entries: proven,
    checkpointSize: cp.value.size,
    now: opts.now,
    skewMs,
    maxAgeMs: opts.maxAgeMs,
    suite,
  });
  if (!r.ok) refuse(r.code, r.reason, r.at);
  return {
    valid: true,
    kind: doc.claim.kind,
    claim: doc.claim,
    statement: r.statement,
    facts: [...facts, ...r.facts],
    issuer: { party: ic.body.party, device: ic.body.device, name: ic.body.name, role: ic.body.role },
    witnesses: cos.value.map((c) => ({ name: c.witness.name, at: c.timeSeconds * 1000 })),
    disclosed: [...proven.values()].flatMap((p) =>
      p.event === undefined ? [] : [{ index: p.index, event: p.event }],
    ),
    ...(r.readouts === undefined ? {} : { readouts: r.readouts }),
    ...(r.agreed === undefined ? {} : { agreed: r.agreed }),
  };
}
