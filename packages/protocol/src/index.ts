// @backchannel/protocol — pure, I/O-free core. Subpaths: ./transcript (Merkle log, notes,
// checkpoints) and ./group (MLS sessions).
export {
  assertBytes,
  concatBytes,
  constantTimeEqual,
  fromBase64url,
  fromHex,
  fromUtf8,
  isBytes,
  toBase64url,
  toHex,
  utf8,
} from './bytes/index.ts';
export { type CborValue, DEFAULT_MAX_DECODE_BYTES, decodeCanonical, encodeCanonical } from './codec/cbor.ts';
export {
  type ClauseDiff,
  type DiffPart,
  applyDiff,
  diffRevisions,
  diffWords,
  renderDiff,
  tokenize,
} from './documents/diff.ts';
export { type EditStep, firstRevision, type NewDocumentInput, nextRevision } from './documents/edit.ts';
export { AKN_NAMESPACE, renderAkomaNtoso, renderMarkdown } from './documents/render.ts';
export {
  type BundleCheck,
  type DocumentBundle,
  type ExportedDocument,
  exportDocument,
  type VerifyBundleOptions,
  verifyDocumentBundle,
} from './documents/export.ts';
export {
  type Bracket,
  type Clause,
  checkRevisionBody,
  clauseHash,
  DOCUMENT_TYPE_NAMES,
  type DocumentHeader,
  documentId,
  encodeRevisionBody,
  hasBrackets,
  isBracket,
  parseSegments,
  renderSegments,
  type RevisionBody,
  type RevisionEvent,
  requiredSignoff,
  revisionBody,
  revisionHash,
  rolesFor,
  type Segment,
} from './documents/model.ts';
export { type Signoff, type SignoffBody, signSignoff, verifySignoff } from './documents/signoff.ts';
export {
  type ClauseStatus,
  clauseAgreedBy,
  clauseStatus,
  type CommentRecord,
  type DocumentState,
  type DocumentStatus,
  documentStatus,
  headOf,
  openBrackets,
  type RevisionRecord,
  type SignoffRecord,
} from './documents/state.ts';
export { decodeEntry, type DecodedEntry, encodeEntry, type LogEntry } from './envelope/entry.ts';
export {
  decodeEnvelope,
  type EnvelopeBody,
  envelopeHash,
  MAX_ENVELOPE_BYTES,
  MLS_KINDS,
  type MlsKind,
  type SignedEnvelope,
  signEnvelope,
  verifyEnvelope,
  envelopeSignedMessage,
} from './envelope/envelope.ts';
export {
  type Decoded,
  fail,
  isProtocolError,
  PROTOCOL_ERROR_CODES,
  ProtocolError,
  type ProtocolErrorCode,
  unwrap,
} from './errors.ts';
export {
  commitEvent,
  encodeSealedEvent,
  openSealedEvent,
  SALT_BYTES,
  type SealedEvent,
  type Sha256,
  sealEvent,
  verifyCommitment,
} from './events/commitment.ts';
export { DOCUMENT_TYPES, type DocumentType, SIGNOFF_LEVELS, type SignoffLevel } from './events/documents.ts';
export {
  type ChannelEvent,
  decodeEvent,
  EVENT_KINDS,
  type EventKind,
  type EventOf,
  encodeEvent,
  eventSchema,
  MAX_EVENT_BYTES,
  parseEvent,
} from './events/event.ts';
export { MAX_JOIN_DISCLOSURES } from './events/membership.ts';
export {
  type CertificateCheck,
  type DeviceCertBody,
  type DeviceCertificate,
  decodeDeviceCertificate,
  decodeRevocation,
  encodeDeviceCertificate,
  encodeRevocation,
  type IssueCertificateInput,
  issueDeviceCertificate,
  issueRevocation,
  ROLES,
  type Revocation,
  type Role,
  verifyDeviceCertificate,
  verifyRevocation,
} from './identity/certificate.ts';
export {
  type ContactCard,
  cardParty,
  decodeContactCard,
  encodeContactCard,
  fingerprint,
  type MakeContactCardInput,
  makeContactCard,
  safetyNumber,
} from './identity/contact-card.ts';
export {
  REQUEST_HEADERS,
  requestHeaders,
  requestSigningBody,
  signRequest,
  verifyRequest,
} from './identity/request.ts';
export {
  hasSmallOrderR,
  isWeakEd25519Key,
  type KeyPair,
  keyPairFromSeed,
  labelledMessage,
  nobleEd25519,
  type SignatureLabel,
  type SignatureSuite,
  type SodiumSign,
  signWithLabel,
  sodiumEd25519,
  verifyWithLabel,
} from './identity/keys.ts';
export {
  type ChannelState,
  encodeState,
  type FoldResult,
  fold,
  foldAll,
  type HeartbeatState,
  type HistoryItem,
  initialState,
  type Lifecycle,
  type NoticeState,
  type ReceiptState,
  type TrackState,
  type TrackStatus,
  type VerifiedEvent,
} from './state/channel-state.ts';
export {
  type Liveness,
  type LivenessOptions,
  liveness,
  outstandingReceipts,
  overdueNotices,
} from './state/queries.ts';
export {
  type ChannelId,
  channelIdFrom,
  type DeviceId,
  deviceIdFromKey,
  type EventId,
  eventIdFrom,
  isId,
  type PartyId,
  parseChannelId,
  parseDeviceId,
  parseEventId,
  parsePartyId,
  parseTrackId,
  partyIdFromKey,
  type TrackId,
  trackIdFrom,
} from './ids.ts';
