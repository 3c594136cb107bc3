/**
 * Sign-offs: an Ed25519 signature by a party member's device over the revision hash.
 *
 *   body = CBOR({ v: 1, doc, revision, level, clause?, party, device, signedAt })
 *   sig  = Ed25519(deviceKey, CBOR(['backchannel/v1 document-signature', body]))
 *
 * The signature names the party and device (from the certificate), the level (agree a clause,
 * initial, sign) and the exact revision hash, so it can never count for another revision, another
 * document, another level or another clause.
 */
import { encodeCanonical } from '../codec/cbor.ts';
import type { ProtocolErrorCode } from '../errors.ts';
import type { SignoffLevel } from '../events/documents.ts';
import {
  type DeviceCertificate,
  decodeDeviceCertificate,
  encodeDeviceCertificate,
} from '../identity/certificate.ts';
import { nobleEd25519, type SignatureSuite, signWithLabel, verifyWithLabel } from '../identity/keys.ts';
import type { DeviceId, EventId, PartyId } from '../ids.ts';

export interface ClauseRef {
  readonly id: string;
  readonly lang: string;
  readonly hash: Uint8Array;
}

export interface SignoffBody {
  readonly doc: EventId;
  readonly revision: Uint8Array;
  readonly level: SignoffLevel;
  readonly clause?: ClauseRef | undefined;
  readonly signedAt: number;
}

/** What the doc.sign event carries besides its transport fields. */
export interface Signoff extends SignoffBody {
  readonly cert: Uint8Array;
  readonly sig: Uint8Array;
}

export function signoffMessage(b: SignoffBody, party: PartyId, device: DeviceId): Uint8Array {
  return encodeCanonical({
    v: 1,
    doc: b.doc,
    revision: b.revision,
    level: b.level,
    ...(b.clause === undefined
      ? {}
      : { clause: { id: b.clause.id, lang: b.clause.lang, hash: b.clause.hash } }),
    party,
    device,
    signedAt: b.signedAt,
  });
}

export function signSignoff(
  b: SignoffBody,
  certificate: DeviceCertificate,
  deviceSecretKey: Uint8Array,
  suite: SignatureSuite = nobleEd25519,
): Signoff {
  const msg = signoffMessage(b, certificate.body.party, certificate.body.device);
  return {
    ...b,
    cert: encodeDeviceCertificate(certificate),
    sig: signWithLabel(deviceSecretKey, 'document-signature', msg, suite),
  };
}

export type SignoffCheck =
  | { readonly ok: true; readonly certificate: DeviceCertificate }
  | { readonly ok: false; readonly code: ProtocolErrorCode; readonly reason: string };

/**
 * Checks the signature against the certificate it carries (not the certificate's own chain to
 * the party root: the channel checked that for the sender, the bundle verifier checks it offline).
 */
export function verifySignoff(s: Signoff, suite: SignatureSuite = nobleEd25519): SignoffCheck {
  const d = decodeDeviceCertificate(s.cert);
  if (!d.ok) return { ok: false, code: d.code, reason: `sign-off certificate: ${d.message}` };
  const cert = d.value;
  const msg = signoffMessage(s, cert.body.party, cert.body.device);
  if (!verifyWithLabel(cert.body.devicePublicKey, 'document-signature', msg, s.sig, suite)) {
    return { ok: false, code: 'SIG_INVALID', reason: 'the sign-off signature does not verify' };
  }
  return { ok: true, certificate: cert };
}
