/**
 * Relay receipts (the accountable mediator). For every envelope it accepts, the relay signs
 *   body = CBOR({ v: 1, channel, msgId, envelopeHash: SHA-256(wire), seq, receivedAt })
 *   sig  = Ed25519(relay checkpoint key, CBOR(['backchannel/v1 relay-receipt', body]))
 * Batched: for the envelopes of one group commit the relay signs once, over the RFC 9162 Merkle
 * root of the bodies' leaf hashes, and each receipt carries its place in that tree:
 *   batch = { index, size, path }   (path: the inclusion proof of leafHash(body) at index of size)
 *   sig   = Ed25519(relay checkpoint key, CBOR(['backchannel/v1 relay-receipt-batch',
 *                                              CBOR({ root, size })]))
 * Either form proves the same thing: the relay signed this body.
 * A sender holding a receipt can prove the relay took the envelope. The transcript then shows
 * whether it was delivered: the entry at `seq` in any later relay-signed checkpoint must be that
 * envelope. If it is not, the receipt and the checkpoint together prove the relay dropped or
 * altered it (checkReceiptAgainstLog). An entry dated before its receipt is proof, signed twice, that
 * the relay backdated it (an honest relay logs it at the receipt's time; later only when delayed).
 *
 * Delay: a channel may state a delivery bound (the opening outreach's `deliveryBoundMs`). The
 * relay then delayed an envelope past the bound, provably, when
 *   - the entry at `seq` is the receipted envelope but the relay logged it (entry.receivedAt) later
 *     than receipt.receivedAt + bound — all three facts are signed by the relay; or
 *   - a relay-signed checkpoint that a trusted witness co-signed at time T > receivedAt + bound
 *     still does not reach `seq` — the witness dates what the relay showed it as its log.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { z } from 'zod';
import { constantTimeEqual, fromBase64url, isBytes, toBase64url } from '../bytes/index.ts';
import { decodeCanonical, encodeCanonical } from '../codec/cbor.ts';
import { decodeEntry, type LogEntry } from '../envelope/entry.ts';
import { envelopeHash } from '../envelope/envelope.ts';
import { type Decoded, fail } from '../errors.ts';
import { channelIdSchema, eventIdSchema, timestampSchema } from '../events/common.ts';
import { nobleEd25519, type SignatureSuite, signWithLabel, verifyWithLabel } from '../identity/keys.ts';
import type { ChannelId, EventId } from '../ids.ts';
import { parseCheckpoint } from '../transcript/checkpoint.ts';
import {
  inclusionProof,
  inclusionRoot,
  leafHash,
  leafHashWith,
  MemoryNodeStore,
  type Sha256Fn,
  treeRoot,
  verifyInclusion,
} from '../transcript/merkle.ts';
import { verifyCosignatures } from '../transcript/cosignature.ts';
import { parseNote, type NoteVerifierKey, verifyNote } from '../transcript/note.ts';

export interface RelayReceiptBody {
  readonly v: 1;
  readonly channel: ChannelId;
  readonly msgId: EventId;
  readonly envelopeHash: Uint8Array;
  readonly seq: number;
  readonly receivedAt: number;
}

/** Where a batched receipt's body sits in the tree whose root the relay signed. */
export interface RelayReceiptBatch {
  readonly index: number;
  readonly size: number;
  readonly path: readonly Uint8Array[];
}

export interface RelayReceipt {
  readonly body: RelayReceiptBody;
  /** Present when the signature covers a batch of receipts (see the header). */
  readonly batch?: RelayReceiptBatch;
  readonly sig: Uint8Array;
}

/** Longest batch path accepted (2^32 receipts per signature; relays batch far fewer). */
const MAX_BATCH_PATH = 32;

const bodySchema = z.strictObject({
  v: z.literal(1),
  channel: channelIdSchema,
  msgId: eventIdSchema,
  envelopeHash: z.custom<Uint8Array>((x) => isBytes(x) && x.length === 32),
  seq: z.number().int().nonnegative(),
  receivedAt: timestampSchema,
});

export function signRelayReceipt(
  body: RelayReceiptBody,
  relaySeed: Uint8Array,
  suite: SignatureSuite = nobleEd25519,
): RelayReceipt {
  return { body, sig: signWithLabel(relaySeed, 'relay-receipt', encodeCanonical(body), suite) };
}

/**
 * Receipts for many bodies with one signature (see the header); a single body gets the
 * unbatched form. The bodies' order is their index in the batch.
 */
export function signRelayReceipts(
  bodies: readonly RelayReceiptBody[],
  relaySeed: Uint8Array,
  suite: SignatureSuite = nobleEd25519,
): RelayReceipt[] {
  if (bodies.length <= 1) return bodies.map((b) => signRelayReceipt(b, relaySeed, suite));
  const tree = new MemoryNodeStore();
  for (const b of bodies) tree.append(leafHash(encodeCanonical(b)));
  const size = bodies.length;
  const root = treeRoot(tree.state);
  const sig = signWithLabel(relaySeed, 'relay-receipt-batch', encodeCanonical({ root, size }), suite);
  return bodies.map((body, index) => ({
    body,
    batch: { index, size, path: inclusionProof(index, size, tree.read) },
    sig,
  }));
}

/** CBOR({body, sig}) or CBOR({body, batch, sig}). */
export function encodeRelayReceiptBytes(r: RelayReceipt): Uint8Array {
  return encodeCanonical(
    r.batch === undefined
      ? { body: r.body, sig: r.sig }
      : {
          body: r.body,
          batch: { index: r.batch.index, size: r.batch.size, path: [...r.batch.path] },
          sig: r.sig,
        },
  );
}

/** base64url of CBOR({body, sig}) (or with `batch`) — what the relay returns and a sender keeps. */
export function encodeRelayReceipt(r: RelayReceipt): string {
  return toBase64url(encodeRelayReceiptBytes(r));
}

export function decodeRelayReceipt(s: string): Decoded<RelayReceipt> {
  let bytes: Uint8Array;
  try {
    bytes = fromBase64url(s, 'receipt');
  } catch {
    return fail('RELAY_RECEIPT_INVALID', 'receipt', 'not base64url');
  }
  const d = decodeCanonical(bytes, 4096);
  if (!d.ok) return d;
  const outer = receiptSchema().safeParse(d.value);
  if (!outer.success) return fail('RELAY_RECEIPT_INVALID', 'receipt', 'expected {body, [batch,] sig}');
  const { body, batch, sig } = outer.data;
  return {
    ok: true,
    value: { body: body as RelayReceiptBody, ...(batch === undefined ? {} : { batch }), sig },
  };
}

const batchSchema = z
  .strictObject({
    index: z.number().int().nonnegative(),
    size: z
      .number()
      .int()
      .min(2)
      .max(2 ** 32),
    path: z.array(z.custom<Uint8Array>((x) => isBytes(x) && x.length === 32)).max(MAX_BATCH_PATH),
  })
  .refine((b) => b.index < b.size, 'index must be below size');

/** Built once (zod compiles a schema on its first parse; a schema per call recompiles each time). */
let receiptSchemaMemo:
  | z.ZodType<{ body: unknown; batch?: RelayReceipt['batch']; sig: Uint8Array }>
  | undefined;
function receiptSchema() {
  receiptSchemaMemo ??= z.strictObject({
    body: bodySchema,
    batch: batchSchema.optional(),
    sig: z.custom<Uint8Array>((x) => isBytes(x) && x.length === 64),
  }) as unknown as z.ZodType<{ body: unknown; batch?: RelayReceipt['batch']; sig: Uint8Array }>;
  return receiptSchemaMemo;
}

/** `hash`: the SHA-256 of the batch path's Merkle hashing (merkle.ts Sha256Fn; same bytes any way). */
export function verifyRelayReceipt(
  r: RelayReceipt,
  relayPublicKey: Uint8Array,
  suite: SignatureSuite = nobleEd25519,
  hash: Sha256Fn = sha256,
): boolean {
  if (r.batch === undefined) {
    return verifyWithLabel(relayPublicKey, 'relay-receipt', encodeCanonical(r.body), r.sig, suite);
  }
  const { index, size, path } = r.batch;
  // As the decoder demands (PROTOCOL.md): a batch form covers at least two bodies.
  if (path.length > MAX_BATCH_PATH || size < 2 || index < 0 || index >= size) return false;
  // RFC 9162 §2.1.3.2: the path must lead from this body's leaf to a root of exactly `size` leaves.
  const root = inclusionRoot(leafHashWith(hash, encodeCanonical(r.body)), index, size, path, hash);
  if (root === undefined) return false;
  return verifyWithLabel(
    relayPublicKey,
    'relay-receipt-batch',
    encodeCanonical({ root, size }),
    r.sig,
    suite,
  );
}

/** The clock skew a delay judged from witness times allows (as the attestation verifier does). */
export const RECEIPT_SKEW_MS = 5 * 60_000;

export type ReceiptCheck =
  | { readonly kind: 'delivered'; readonly seq: number; readonly receivedAt: number }
  | {
      readonly kind: 'delayed';
      readonly seq: number;
      readonly boundMs: number;
      /** When the relay logged the entry (absent: still not in a checkpoint a witness dated). */
      readonly loggedAt?: number;
      /** The witness and the time it co-signed a checkpoint that did not yet hold the entry. */
      readonly witnessed?: { readonly name: string; readonly at: number; readonly size: number };
      readonly reason: string;
    }
  | { readonly kind: 'not-yet-logged'; readonly size: number }
  | { readonly kind: 'dropped'; readonly reason: string }
  | {
      readonly kind: 'backdated';
      readonly seq: number;
      readonly receivedAt: number;
      readonly loggedAt: number;
      readonly reason: string;
    }
  | { readonly kind: 'invalid'; readonly code: string; readonly reason: string };

/**
 * Checks a relay receipt against a relay-signed checkpoint and the entry the log holds at the
 * receipted position (with its inclusion proof). "dropped" is proof, signed twice by the relay,
 * that it accepted an envelope and then logged something else in its place.
 */
export function checkReceiptAgainstLog(input: {
  readonly receipt: RelayReceipt;
  /** The relay's key, or its keys across a rotation (transcript/rotation.ts): any of them signs for it. */
  readonly relayKey: NoteVerifierKey | readonly NoteVerifierKey[];
  readonly checkpoint: string;
  /** The entry at receipt.body.seq and its inclusion proof (absent when the log is shorter). */
  readonly entry?: { readonly bytes: Uint8Array; readonly proof: readonly Uint8Array[] };
  /** The channel's stated delivery bound (ms); without it, lateness is not judged. */
  readonly boundMs?: number;
  /**
   * Witnesses (cosignature/v1 keys) whose cosignature lines on `checkpoint` date it: all of them
   * must have co-signed it, and the earliest of their times is the one judged.
   */
  readonly witnesses?: readonly NoteVerifierKey[];
  /** Clock skew allowed between the relay's and the witnesses' clocks (default 5 minutes). */
  readonly skewMs?: number;
  readonly suite?: SignatureSuite;
}): ReceiptCheck {
  const { receipt } = input;
  const relayKeys = Array.isArray(input.relayKey) ? input.relayKey : [input.relayKey as NoteVerifierKey];
  if (!relayKeys.some((k) => verifyRelayReceipt(receipt, k.publicKey, input.suite)))
    return {
      kind: 'invalid',
      code: 'RELAY_RECEIPT_INVALID',
      reason: 'the receipt is not signed by this relay',
    };
  const note = parseNote(input.checkpoint);
  if (!note.ok) return { kind: 'invalid', code: note.code, reason: note.message };
  const signed = verifyNote(note.value, relayKeys, input.suite);
  if (!signed.ok)
    return { kind: 'invalid', code: signed.code, reason: 'the checkpoint is not signed by this relay' };
  const cp = parseCheckpoint(note.value.text);
  if (!cp.ok) return { kind: 'invalid', code: cp.code, reason: cp.message };
  if (!cp.value.origin.endsWith(`/${receipt.body.channel}`))
    return { kind: 'invalid', code: 'NOT_IN_LOG', reason: 'the checkpoint is for another channel' };
  const { seq, receivedAt, msgId } = receipt.body;
  const bound = input.boundMs;
  const deadline = bound === undefined ? undefined : receivedAt + bound;
  if (cp.value.size <= seq) {
    if (bound === undefined || deadline === undefined || (input.witnesses ?? []).length === 0)
      return { kind: 'not-yet-logged', size: cp.value.size };
    const cos = verifyCosignatures(note.value, input.witnesses ?? [], input.suite);
    if (!cos.ok)
      return {
        kind: 'invalid',
        code: 'COSIGNATURE_INVALID',
        reason: 'a witness cosignature does not verify',
      };
    // Every witness the checker names must have co-signed this stale checkpoint, and the
    // EARLIEST of their times is what counts, with the clock skew allowed: one witness (perhaps
    // the accuser's own) dating an old checkpoint late proves nothing about the relay.
    const witnesses = input.witnesses ?? [];
    const byName = new Map(cos.value.map((c) => [c.witness.name, c]));
    if (witnesses.some((w) => !byName.has(w.name))) return { kind: 'not-yet-logged', size: cp.value.size };
    const earliest = [...byName.values()].reduce((a, b) => (b.timeSeconds < a.timeSeconds ? b : a));
    const at = earliest.timeSeconds * 1000;
    if (at <= deadline + (input.skewMs ?? RECEIPT_SKEW_MS))
      return { kind: 'not-yet-logged', size: cp.value.size };
    const names = witnesses.map((w) => `“${w.name}”`).join(', ');
    return {
      kind: 'delayed',
      seq,
      boundMs: bound,
      witnessed: { name: earliest.witness.name, at, size: cp.value.size },
      reason: `the relay receipted envelope ${msgId} at ${iso(receivedAt)} for position ${seq}, yet by ${iso(at)} — past the channel's ${seconds(bound)} delivery bound and the allowed clock skew — witnesses ${names} had all co-signed a relay-signed log of ${cp.value.size} entries that still did not hold it`,
    };
  }
  if (input.entry === undefined)
    return { kind: 'invalid', code: 'NOT_IN_LOG', reason: 'the entry at the receipted position is needed' };
  if (
    !verifyInclusion(
      leafHash(input.entry.bytes),
      receipt.body.seq,
      cp.value.size,
      input.entry.proof,
      cp.value.root,
    )
  ) {
    return { kind: 'invalid', code: 'NOT_IN_LOG', reason: 'the entry is not at the receipted position' };
  }
  const d = decodeEntry(input.entry.bytes);
  if (!d.ok) return { kind: 'invalid', code: d.code, reason: d.message };
  const disagreement = receiptDisagreement(receipt.body, d.value.entry, envelopeHash);
  if (disagreement === 'another-entry') {
    return {
      kind: 'dropped',
      reason: `the relay receipted envelope ${receipt.body.msgId} at position ${receipt.body.seq}, then signed a log holding another entry there`,
    };
  }
  const loggedAt = d.value.entry.receivedAt;
  if (bound !== undefined && deadline !== undefined && loggedAt > deadline) {
    return {
      kind: 'delayed',
      seq,
      boundMs: bound,
      loggedAt,
      reason: `the relay receipted envelope ${msgId} at ${iso(receivedAt)} but logged it only at ${iso(loggedAt)}, ${seconds(loggedAt - receivedAt)} later: past the channel's ${seconds(bound)} delivery bound`,
    };
  }
  if (disagreement === 'earlier') {
    return {
      kind: 'backdated',
      seq,
      receivedAt,
      loggedAt,
      reason: `the relay receipted envelope ${msgId} at ${iso(receivedAt)}, then signed a log that dates it earlier, ${iso(loggedAt)}`,
    };
  }
  return { kind: 'delivered', seq: d.value.entry.seq, receivedAt: loggedAt };
}

/**
 * How the entry a relay logged contradicts its receipt for the envelope: another entry at the
 * receipted position (other envelope bytes or position), or the same entry dated earlier than the
 * receipt. (Dated later is delay, judged against the channel's bound by checkReceiptAgainstLog.)
 */
export function receiptDisagreement(
  body: RelayReceiptBody,
  entry: Pick<LogEntry, 'seq' | 'receivedAt' | 'envelope'>,
  hash: (bytes: Uint8Array) => Uint8Array = envelopeHash,
): 'another-entry' | 'earlier' | undefined {
  if (entry.seq !== body.seq || !constantTimeEqual(hash(entry.envelope), body.envelopeHash))
    return 'another-entry';
  return entry.receivedAt < body.receivedAt ? 'earlier' : undefined;
}

const iso = (t: number) => new Date(t).toISOString();
const seconds = (ms: number) => (ms % 1000 === 0 ? `${ms / 1000} s` : `${(ms / 1000).toFixed(3)} s`);
