/**
 * Proofs for the public, from this device's verified transcript: attestations (outreach,
 * liveness, delivery, disclosure, read-outs, agreed text), witness finality, and the public keys a verifier
 * needs. Attestations are built only up to the last checkpoint this device verified against its
 * own Merkle tree, with the witness cosignatures the relay stores for that checkpoint.
 */
import {
  type ChannelId,
  constantTimeEqual,
  decodeCanonical,
  decodeEntry,
  encodeCanonical,
  type EventId,
  type PartyId,
  toBase64url,
  unwrap,
} from '@backchannel/protocol';
import {
  type Attestation,
  type AttestationPlan,
  checkReceiptAgainstLog,
  createAttestation,
  decodeRelayReceipt,
  planAgreed,
  planDelivery,
  planDisclosure,
  planLiveness,
  planOutreach,
  planReadouts,
  type ReceiptCheck,
  READOUT_SALT_BYTES,
  readoutCommitment,
  type TranscriptRecord,
  type TranscriptSnapshot,
} from '@backchannel/protocol/attest';
import {
  inclusionProof,
  leafHash,
  MemoryNodeStore,
  parseCheckpoint,
  parseNote,
  parseVerifierKey,
  treeRoot,
  verifyCosignatures,
  verifyNote,
} from '@backchannel/protocol/transcript';
import type { DraftEvent } from './channel.ts';
import type { Backchannel } from './client.ts';
import { ClientError } from './errors.ts';

export type AttestRequest =
  | { readonly kind: 'outreach'; readonly which?: 'first' | 'latest' }
  | { readonly kind: 'liveness'; readonly asOf?: number; readonly withinHours?: number }
  | { readonly kind: 'delivery'; readonly event: EventId; readonly receipt?: 'delivered' | 'read' }
  | { readonly kind: 'disclosure'; readonly event: EventId }
  | { readonly kind: 'readouts'; readonly round: string }
  /** Agreed text: a document (id or unique prefix) and its revision (default: the latest agreed one). */
  | { readonly kind: 'agreed'; readonly doc: string; readonly revision?: number };

/** The verified transcript of a channel, with the cosignatures stored for its checkpoint. */
export async function transcriptSnapshot(
  bc: Backchannel,
  channel: string,
  opts: { atSize?: number } = {},
): Promise<TranscriptSnapshot> {
  const ch = await bc.channel(channel);
  let note = ch.record.checkpoint;
  if (note === undefined || ch.record.checkpointSize === 0)
    throw new ClientError(
      'INVALID_ARGUMENT',
      `no verified checkpoint for channel ${channel} yet: sync first`,
    );
  let size = ch.record.checkpointSize;
  let cosignatures: string[] = [];
  if (opts.atSize !== undefined && opts.atSize !== size) {
    // An earlier checkpoint (say, the last one the witnesses co-signed): this device checks it
    // itself — the pinned relay key, and the root of its own copy of the first atSize entries.
    if (opts.atSize > size || opts.atSize < 1)
      throw new ClientError('INVALID_ARGUMENT', `this device has verified only ${size} entries`);
    const at = await bc.relay.getCheckpointAt(ch.id, opts.atSize);
    const trusted = bc.relayKeys.flatMap((v) => {
      const k = parseVerifierKey(v);
      return k.ok ? [k.value] : [];
    });
    const parsed = parseNote(at.checkpoint);
    const cp = parsed.ok ? parseCheckpoint(parsed.value.text) : undefined;
    const leaves = await bc.store.entries(ch.id, 0, opts.atSize);
    const tree = new MemoryNodeStore();
    for (const e of leaves) tree.append(leafHash(e.entry));
    if (
      trusted.length === 0 ||
      !parsed.ok ||
      cp === undefined ||
      !cp.ok ||
      !verifyNote(parsed.value, trusted).ok ||
      cp.value.size !== opts.atSize ||
      !constantTimeEqual(cp.value.root, treeRoot(tree.state))
    ) {
      throw new ClientError(
        'FORK_DETECTED',
        `the relay's checkpoint at size ${opts.atSize} does not match this device's copy`,
      );
    }
    note = at.checkpoint;
    size = opts.atSize;
    cosignatures = at.cosignatures;
  } else {
    try {
      const at = await bc.relay.getCheckpointAt(ch.id, size);
      // Only lines for the very checkpoint this device verified (the relay could serve another).
      if (at.checkpoint === note) cosignatures = at.cosignatures;
    } catch (e) {
      if (!(e instanceof ClientError) || e.code === 'RELAY_UNREACHABLE') throw e;
    }
  }
  const readable = new Map(
    ch.view.timeline.flatMap((r) => ('event' in r && r.status === 'ok' ? [[r.seq, r] as const] : [])),
  );
  const stored = await bc.store.entries(ch.id, 0, size);
  const records: TranscriptRecord[] = stored.map((s) => {
    const d = decodeEntry(s.entry);
    if (!d.ok) throw new ClientError('TRANSCRIPT_INVALID', `stored entry ${s.seq} does not decode`);
    const r = readable.get(s.seq);
    const cert = bc.certificates.certificate(d.value.entry.sender);
    return {
      index: s.seq,
      entry: s.entry,
      decoded: d.value,
      ...(cert === undefined ? {} : { party: cert.body.party }),
      ...(r === undefined ? {} : { event: r.event, salt: r.salt }),
    };
  });
  return {
    channel: ch.id,
    records,
    checkpoint: note + cosignatures.map((l) => (l.endsWith('\n') ? l : `${l}\n`)).join(''),
    certificate: (device) => bc.certificates.certificate(device as never),
  };
}

export function planFor(
  bc: Backchannel,
  snap: TranscriptSnapshot,
  req: AttestRequest,
  parties: readonly PartyId[],
): AttestationPlan {
  switch (req.kind) {
    case 'outreach':
      return planOutreach(snap, req.which === undefined ? {} : { which: req.which });
    case 'liveness':
      return planLiveness(snap, { parties, asOf: req.asOf ?? bc.now, withinHours: req.withinHours ?? 24 });
    case 'delivery':
      return planDelivery(snap, {
        event: req.event,
        ...(req.receipt === undefined ? {} : { receipt: req.receipt }),
      });
    case 'disclosure':
      return planDisclosure(snap, { event: req.event });
    case 'readouts':
      return planReadouts(snap, { round: req.round, parties });
    case 'agreed':
      return planAgreed(snap, {
        doc: req.doc as EventId,
        ...(req.revision === undefined ? {} : { revision: req.revision }),
      });
  }
}

/** A document id from an id or a unique prefix of one in this channel (as `backchannel doc` takes). */
function resolveDoc(ids: readonly string[], idOrPrefix: string): string {
  if (ids.includes(idOrPrefix)) return idOrPrefix;
  const hits = ids.filter((k) => idOrPrefix.length >= 4 && k.startsWith(idOrPrefix));
  if (hits.length !== 1)
    throw new ClientError(
      'DOCUMENT_UNKNOWN',
      `this channel has ${hits.length > 1 ? 'several documents' : 'no document'} matching ${idOrPrefix}`,
    );
  return hits[0] as string;
}

/**
 * A liveness attestation says "the line was open": the verifier sees only the heartbeats it
 * discloses, so the issuing device vouches for the rest and refuses when, in its own verified
 * view, the channel was not open at that time (suspended, closed, or not yet accepted).
 */
function lineOpenAt(
  channel: string,
  history: ReadonlyArray<{ status: string; at: number; reason?: string }>,
  asOf: number,
): void {
  const inForce = history.filter((h) => h.at <= asOf).at(-1);
  if (inForce?.status === 'open') return;
  const since = inForce === undefined ? '' : ` since ${new Date(inForce.at).toISOString()}`;
  const why = inForce?.reason === undefined ? '' : ` (“${inForce.reason}”)`;
  throw new ClientError(
    'INVALID_ARGUMENT',
    `channel ${channel} was ${inForce?.status ?? 'not yet open'}${since}${why} at ${new Date(asOf).toISOString()}: a liveness attestation would say the line was open`,
  );
}

/** Creates and signs an attestation with this device's key. */
export async function attest(
  bc: Backchannel,
  channel: string,
  req: AttestRequest,
  opts: { atSize?: number } = {},
): Promise<Attestation> {
  const ch = await bc.channel(channel);
  const snap = await transcriptSnapshot(bc, ch.id, opts);
  const resolved =
    req.kind === 'agreed' ? { ...req, doc: resolveDoc(Object.keys(ch.view.state.documents), req.doc) } : req;
  if (req.kind === 'liveness') lineOpenAt(ch.id, ch.view.state.lifecycleHistory, req.asOf ?? bc.now);
  const plan = planFor(bc, snap, resolved, ch.view.state.parties);
  try {
    return createAttestation(
      snap,
      plan,
      { certificate: bc.identity.certificate, secretKey: bc.identity.deviceSecretKey },
      bc.now,
    );
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    if (code === 'CLAIM_UNSUPPORTED' || code === 'NOT_IN_LOG')
      throw new ClientError('INVALID_ARGUMENT', (e as Error).message, { causeCode: code });
    throw e;
  }
}

/**
 * What a verifier needs, all public: the channel parties' root keys and the relay's key (with
 * the keys it retired by rotation: older checkpoints and receipts carry them).
 */
export function publicKeysOf(
  bc: Backchannel,
  parties: readonly PartyId[],
): { parties: Record<string, Uint8Array>; relayKey: string; relayKeys: string[] } {
  const roots: Record<string, Uint8Array> = {};
  for (const p of parties) {
    const k = bc.certificates.rootKey(p);
    if (k !== undefined) roots[p] = k;
  }
  const relayKey = bc.relayKey;
  if (relayKey === undefined) throw new ClientError('NOT_INITIALIZED', 'no relay key pinned yet');
  return { parties: roots, relayKey, relayKeys: [...bc.relayKeys] };
}

/** The public-keys file a verifier needs (the shape `backchannel keys` writes), all public. */
export interface PublicKeysDocument {
  readonly type: 'backchannel/public-keys';
  readonly v: 1;
  /** party id → base64url root public key */
  readonly parties: Record<string, string>;
  readonly relayKeys: string[];
  readonly witnesses: string[];
}

/** The public-keys file for a channel's parties, ready for JSON (used by the web app). */
export function publicKeysDocument(
  bc: Backchannel,
  parties: readonly PartyId[],
  witnesses: readonly string[] = [],
): PublicKeysDocument {
  const k = publicKeysOf(bc, parties);
  return {
    type: 'backchannel/public-keys',
    v: 1,
    parties: Object.fromEntries(Object.entries(k.parties).map(([p, key]) => [p, toBase64url(key)])),
    relayKeys: k.relayKeys,
    witnesses: [...witnesses],
  };
}

/**
 * Finality: an entry is final once the checkpoint this device verified covers it and every
 * required witness has co-signed that checkpoint (so the relay cannot show another history
 * without a witness noticing).
 */
export async function isFinal(
  bc: Backchannel,
  channel: ChannelId,
  seq: number,
  witnesses: readonly string[],
): Promise<{ final: boolean; missing: string[] }> {
  const ch = await bc.channel(channel);
  const note = ch.record.checkpoint;
  const names = witnesses.map((w) => {
    const k = parseVerifierKey(w);
    if (!k.ok) throw new ClientError('INVALID_ARGUMENT', `not a witness key: ${k.message}`);
    return k.value;
  });
  if (note === undefined || seq >= ch.record.checkpointSize)
    return { final: false, missing: names.map((n) => n.name) };
  const at = await bc.relay.getCheckpointAt(ch.id, ch.record.checkpointSize);
  if (at.checkpoint !== note) return { final: false, missing: names.map((n) => n.name) };
  const full = parseNote(note + at.cosignatures.map((l) => (l.endsWith('\n') ? l : `${l}\n`)).join(''));
  if (!full.ok) return { final: false, missing: names.map((n) => n.name) };
  const v = verifyCosignatures(full.value, names);
  const ok = v.ok ? v.value.map((c) => c.witness.name) : [];
  const missing = names.map((n) => n.name).filter((n) => !ok.includes(n));
  return { final: missing.length === 0, missing };
}

const readoutKey = (channel: string, round: string) => `readout:${channel}:${round}`;

/**
 * Commit-then-reveal, step 1: posts only the salted hash of this party's read-out of `round`;
 * the text and salt stay on this device until revealReadout.
 */
export async function commitReadout(
  bc: Backchannel,
  channel: string,
  round: string,
  text: string,
): Promise<EventId> {
  const ch = await bc.channel(channel);
  const salt = bc.random(READOUT_SALT_BYTES);
  const id = await ch.send({
    kind: 'readout',
    round,
    commitment: readoutCommitment(round, text, salt),
  } as DraftEvent);
  await bc.store.put([[readoutKey(ch.id, round), encodeCanonical({ text, salt })]]);
  await bc.outbox.flush();
  return id;
}

/**
 * Step 2: publishes the committed text with its salt — refused until every party of the channel
 * has committed to its own read-out of the round (otherwise the others could adapt theirs).
 */
export async function revealReadout(bc: Backchannel, channel: string, round: string): Promise<EventId> {
  const ch = await bc.channel(channel);
  await ch.sync();
  const stored = await bc.store.get(readoutKey(ch.id, round));
  if (stored === undefined)
    throw new ClientError('INVALID_ARGUMENT', `no read-out of “${round}” committed from this device`);
  const s = ch.view.state;
  const waiting = s.parties.filter((p) => s.readouts[round]?.[p] === undefined);
  if (waiting.length > 0)
    throw new ClientError(
      'EVENT_REJECTED',
      `not every party has committed to its read-out of “${round}” yet (waiting for ${waiting.join(', ')})`,
      {
        causeCode: 'READOUT_EARLY',
      },
    );
  const { text, salt } = unwrap(decodeCanonical(stored)) as { text: string; salt: Uint8Array };
  const id = await ch.send({ kind: 'readout', round, text, salt } as DraftEvent);
  await bc.outbox.flush();
  return id;
}

/** The relay receipt this device kept for one of its envelopes (base64url), if any. */
export async function relayReceiptOf(
  bc: Backchannel,
  channel: string,
  msgId: string,
): Promise<string | undefined> {
  const b = await bc.store.get(`rr:${channel}:${msgId}`);
  return b === undefined ? undefined : new TextDecoder().decode(b);
}

/**
 * Accountable mediator: checks the relay's receipt for one of our envelopes against the log this
 * device verified. "dropped" means the relay receipted the envelope and then signed a log that
 * holds something else at that position; "delayed" that it logged it later than the channel's
 * stated delivery bound (or showed a witness a log without it past the bound) — and the returned
 * evidence proves either to anyone.
 */
export async function checkRelayReceipt(
  bc: Backchannel,
  channel: string,
  msgId: string,
  opts: {
    /** The delivery bound to judge by (default: the one the channel's outreach stated). */
    readonly boundMs?: number;
    /** Witness cosignature keys whose cosignatures date the checkpoint (for a still-missing entry). */
    readonly witnesses?: readonly string[];
  } = {},
): Promise<{
  check: ReceiptCheck;
  evidence?: {
    receipt: string;
    checkpoint: string;
    entry?: string;
    proof?: string[];
    /**
     * The bound judged by, and who stated it: the channel's outreach (prove it to a third party
     * with an outreach attestation, which discloses that event) or the checker alone.
     */
    boundMs?: number;
    boundStatedBy?: 'outreach' | 'checker';
  };
}> {
  const ch = await bc.channel(channel);
  const r = await relayReceiptOf(bc, ch.id, msgId);
  if (r === undefined) throw new ClientError('INVALID_ARGUMENT', `no relay receipt kept for ${msgId}`);
  const receipt = decodeRelayReceipt(r);
  if (!receipt.ok) return { check: { kind: 'invalid', code: receipt.code, reason: receipt.message } };
  const relayKeys = bc.relayKeys.flatMap((v) => {
    const k = parseVerifierKey(v);
    return k.ok ? [k.value] : [];
  });
  if (relayKeys.length === 0) throw new ClientError('NOT_INITIALIZED', 'no relay key pinned');
  const verified = ch.record.checkpoint;
  if (verified === undefined) return { check: { kind: 'not-yet-logged', size: 0 } };
  const boundMs = opts.boundMs ?? ch.view.state.deliveryBoundMs;
  const witnesses = (opts.witnesses ?? []).map((w) => {
    const k = parseVerifierKey(w);
    if (!k.ok) throw new ClientError('INVALID_ARGUMENT', `not a witness key: ${k.message}`);
    return k.value;
  });
  const size = ch.record.checkpointSize;
  // The witnesses' cosignatures on the very checkpoint this device verified date it.
  let note = verified;
  if (witnesses.length > 0) {
    const at = await bc.relay.getCheckpointAt(ch.id, size);
    if (at.checkpoint === verified)
      note = verified + at.cosignatures.map((l) => (l.endsWith('\n') ? l : `${l}\n`)).join('');
  }
  const bound = {
    ...(boundMs === undefined ? {} : { boundMs }),
    ...(witnesses.length === 0 ? {} : { witnesses }),
  };
  const statedBound =
    boundMs === undefined
      ? {}
      : { boundMs, boundStatedBy: opts.boundMs === undefined ? ('outreach' as const) : ('checker' as const) };
  const stored = await bc.store.entries(ch.id, 0, size);
  const seq = receipt.value.body.seq;
  const at = stored[seq];
  if (seq >= size || at === undefined) {
    const check = checkReceiptAgainstLog({
      receipt: receipt.value,
      relayKey: relayKeys,
      checkpoint: note,
      ...bound,
    });
    return {
      check,
      ...(check.kind === 'delayed' ? { evidence: { receipt: r, checkpoint: note, ...statedBound } } : {}),
    };
  }
  const tree = new MemoryNodeStore();
  for (const e of stored) tree.append(leafHash(e.entry));
  const proof = inclusionProof(seq, size, tree.read);
  const check = checkReceiptAgainstLog({
    receipt: receipt.value,
    relayKey: relayKeys,
    checkpoint: note,
    entry: { bytes: at.entry, proof },
    ...bound,
  });
  return {
    check,
    ...(check.kind === 'dropped' || check.kind === 'delayed' || check.kind === 'backdated'
      ? {
          evidence: {
            receipt: r,
            checkpoint: note,
            entry: toBase64url(at.entry),
            proof: proof.map(toBase64url),
            ...statedBound,
          },
        }
      : {}),
  };
}
