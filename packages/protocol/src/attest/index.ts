// @backchannel/protocol/attest — attestations (claims anyone can verify), the witness's decision
// and fork evidence, commit-then-reveal read-outs, and relay receipts.
export {
  type AttestationPlan,
  createAttestation,
  type Issuer,
  planAgreed,
  planDelivery,
  planDisclosure,
  planLiveness,
  planOutreach,
  planReadouts,
  signAttestation,
  type TranscriptRecord,
  type TranscriptSnapshot,
} from './create.ts';
export type { AgreedText, ProvenEntry, ReadoutComparison } from './claims.ts';
export {
  ATTESTATION_KINDS,
  ATTESTATION_TYPE,
  type Attestation,
  attestationSigningBody,
  type Claim,
  type ClaimKind,
  type ClaimOf,
  encodeAttestation,
  eventFromJson,
  eventToJson,
  type JsonValue,
  parseAttestation,
  type UnsignedAttestation,
} from './document.ts';
export {
  type DiffPart,
  READOUT_SALT_BYTES,
  readoutCommitment,
  renderWordDiff,
  verifyReadoutCommitment,
  wordDiff,
} from './readout.ts';
export {
  checkReceiptAgainstLog,
  RECEIPT_SKEW_MS,
  decodeRelayReceipt,
  encodeRelayReceipt,
  encodeRelayReceiptBytes,
  type ReceiptCheck,
  receiptDisagreement,
  type RelayReceipt,
  type RelayReceiptBatch,
  type RelayReceiptBody,
  signRelayReceipt,
  signRelayReceipts,
  verifyRelayReceipt,
} from './relay-receipt.ts';
export { type AttestationVerdict, type VerifyAttestationOptions, verifyAttestation } from './verify.ts';
export {
  FORK_EVIDENCE_TYPE,
  type ForkEvidence,
  type ForkEvidenceCheck,
  prefixMismatchEvidence,
  relayOnlyNote,
  verifyForkEvidence,
  type WitnessDecision,
  type WitnessedCheckpoint,
  type WitnessInput,
  witnessDecide,
} from './witness.ts';
