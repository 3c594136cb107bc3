/**
 * The SDK in a browser: an IndexedDB store sealed under the passphrase, ts-mls's default
 * crypto provider (WebCrypto + noble, no node:), noble Ed25519 and WebCrypto randomness.
 * `@backchannel/client/browser` re-exports what the web app needs, so the app imports the
 * client package only.
 */
import { defaultCryptoProvider } from 'ts-mls';
import { Backchannel } from './client.ts';
import { IndexedDbLocalStore, type Pbkdf2Params } from './indexeddb.dom.ts';
import { createMlsFactory } from './mls-factory.ts';

/** crypto.getRandomValues fills at most 65,536 bytes per call. */
export function browserRandom(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let off = 0; off < n; off += 65_536)
    globalThis.crypto.getRandomValues(out.subarray(off, off + 65_536));
  return out;
}

export interface OpenBrowserDeviceOptions {
  /** IndexedDB database name (one per device profile). */
  readonly name: string;
  readonly passphrase: string;
  readonly kdf?: Pbkdf2Params;
  readonly relays?: readonly string[];
  readonly indexedDB?: IDBFactory;
}

export async function openBrowserDevice(o: OpenBrowserDeviceOptions): Promise<Backchannel> {
  const store = await IndexedDbLocalStore.open({
    name: o.name,
    passphrase: o.passphrase,
    ...(o.kdf === undefined ? {} : { kdf: o.kdf }),
    ...(o.indexedDB === undefined ? {} : { indexedDB: o.indexedDB }),
  });
  try {
    return await Backchannel.open({
      store,
      mls: (identity, certs) =>
        createMlsFactory({ identity, certs, crypto: defaultCryptoProvider, now: () => Date.now() }),
      ...(o.relays === undefined ? {} : { relays: o.relays }),
      random: browserRandom,
    });
  } catch (e) {
    store.close();
    throw e;
  }
}

export {
  type ChannelEvent,
  type ChannelId,
  channelIdFrom,
  type DeviceId,
  eventIdFrom,
  type ChannelState,
  decodeContactCard,
  decodeDeviceCertificate,
  decodeRevocation,
  constantTimeEqual,
  type EventId,
  fingerprint,
  fromBase64url,
  type Lifecycle,
  liveness,
  type Liveness,
  nobleEd25519,
  outstandingReceipts,
  type PartyId,
  parseEventId,
  parsePartyId,
  type ReceiptState,
  ROLES,
  roleMaySend,
  type Role,
  safetyNumber,
  signRequest,
  toBase64url,
  type TrackId,
  trackIdFrom,
  type TrackState,
} from '@backchannel/protocol';
export {
  ATTESTATION_KINDS,
  ATTESTATION_TYPE,
  type Attestation,
  type AttestationVerdict,
  type ClaimKind,
  encodeAttestation,
  FORK_EVIDENCE_TYPE,
  type ForkEvidenceCheck,
  verifyAttestation,
  verifyForkEvidence,
} from '@backchannel/protocol/attest';
export { ALG_COSIGNATURE_V1, ALG_ED25519, parseVerifierKey } from '@backchannel/protocol/transcript';
export {
  type ClauseDiff,
  type ClauseStatus,
  type DiffPart,
  DOCUMENT_TYPE_NAMES,
  DOCUMENT_TYPES,
  type DocumentBundle,
  type DocumentState,
  type DocumentType,
  diffRevisions,
  type EditStep,
  headOf,
  isBracket,
  type RevisionRecord,
  requiredSignoff,
  rolesFor,
  type Segment,
} from '@backchannel/protocol';
export { Backchannel, type RefusedSend } from './client.ts';
export type { Channel, DraftEvent } from './channel.ts';
export { explainRefusal } from './channel.ts';
export type { EventRecord } from './channel-record.ts';
export { type AttestRequest, attest, type PublicKeysDocument, publicKeysDocument } from './proofs.ts';
export { ClientError } from './errors.ts';
export { foldRecords } from './view.ts';
export { type ChannelMember, channelMembers } from './members.ts';
export { type DocumentView, Documents, type NewDocument, slug } from './documents.ts';
export type { DeviceIdentity } from './identity.ts';
export { DEFAULT_PBKDF2, IndexedDbLocalStore, type Pbkdf2Params } from './indexeddb.dom.ts';
export { newInviteCodeWith, openInviteWith, type PortableInviteFile, sealInviteWith } from './invite.ts';
export { openRecoveryKit, type RecoveredParty, type RecoveryKitFile } from './recovery.ts';
