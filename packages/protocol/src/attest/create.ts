/**
 * Building attestations from a device's verified copy of a transcript: choose the entries a claim
 * needs (plan*), prove them against the checkpoint (RFC 9162 inclusion proofs computed from the
 * device's own leaves), disclose only the events the claim names, and sign.
 */
import { constantTimeEqual, toBase64url } from '../bytes/index.ts';
import { requiredSignoff, revisionBody, revisionHash, rolesFor } from '../documents/model.ts';
import type { DecodedEntry } from '../envelope/entry.ts';
import { ProtocolError } from '../errors.ts';
import type { ChannelEvent, EventOf } from '../events/event.ts';
import { type DeviceCertificate, encodeDeviceCertificate } from '../identity/certificate.ts';
import { nobleEd25519, type SignatureSuite, signWithLabel } from '../identity/keys.ts';
import type { ChannelId, EventId, PartyId } from '../ids.ts';
import { parseCheckpoint } from '../transcript/checkpoint.ts';
import { inclusionProof, leafHash, MemoryNodeStore } from '../transcript/merkle.ts';
import { parseNote } from '../transcript/note.ts';
import {
  ATTESTATION_TYPE,
  type Attestation,
  attestationSigningBody,
  type Claim,
  eventToJson,
  type UnsignedAttestation,
} from './document.ts';

/** One position of the transcript as the attesting device knows it. */
export interface TranscriptRecord {
  readonly index: number;
  /** The encoded log entry (the Merkle leaf data). */
  readonly entry: Uint8Array;
  readonly decoded: DecodedEntry;
  /** The sender's party, when its certificate is known. */
  readonly party?: PartyId;
  /** The plaintext and its salt, when this device could read the entry. */
  readonly event?: ChannelEvent;
  readonly salt?: Uint8Array;
}

export interface TranscriptSnapshot {
  readonly channel: ChannelId;
  /** Every entry from 0 up to at least the checkpoint's size, in order. */
  readonly records: readonly TranscriptRecord[];
  /** The relay-signed checkpoint note, with any witness cosignature lines appended. */
  readonly checkpoint: string;
  /** The sender certificates this device verified. */
  readonly certificate: (device: string) => DeviceCertificate | undefined;
}

/** Which entries a claim needs, and which of them it discloses. */
export interface AttestationPlan {
  readonly claim: Claim;
  readonly entries: readonly number[];
  readonly disclosures: readonly number[];
}

export interface Issuer {
  readonly certificate: DeviceCertificate;
  readonly secretKey: Uint8Array;
}

const unsupported = (msg: string): never => {
  throw new ProtocolError('CLAIM_UNSUPPORTED', msg, 'claim');
};

function checkpointSize(snap: TranscriptSnapshot): number {
  const note = parseNote(snap.checkpoint);
  if (!note.ok) throw new ProtocolError(note.code, note.message, 'checkpoint');
  const cp = parseCheckpoint(note.value.text);
  if (!cp.ok) throw new ProtocolError(cp.code, cp.message, 'checkpoint');
  return cp.value.size;
}

/** Records inside the checkpoint that carry a readable event of a kind. */
function readable<K extends ChannelEvent['kind']>(
  snap: TranscriptSnapshot,
  kind: K,
): Array<TranscriptRecord & { event: EventOf<K>; party: PartyId }> {
  const size = checkpointSize(snap);
  return snap.records.filter(
    (r): r is TranscriptRecord & { event: EventOf<K>; party: PartyId } =>
      r.index < size && r.event?.kind === kind && r.party !== undefined && r.salt !== undefined,
  );
}

/** The latest outreach in the verified log (or the first, for the channel's opening). */
export function planOutreach(
  snap: TranscriptSnapshot,
  opts: { which?: 'first' | 'latest' } = {},
): AttestationPlan {
  const all = readable(snap, 'outreach');
  const o = opts.which === 'first' ? all[0] : all.at(-1);
  if (o === undefined) return unsupported('no outreach in the verified transcript');
  const before = snap.records.slice(0, o.index);
  const opening = before.every((r) => r.decoded.envelope.body.kind !== 'application');
  return {
    claim: {
      kind: 'outreach',
      channel: snap.channel,
      from: o.event.from,
      to: o.event.to,
      at: o.decoded.entry.receivedAt,
      opening,
    },
    entries: [...(opening ? before.map((r) => r.index) : []), o.index],
    disclosures: [o.index],
  };
}

/** The latest heartbeat of each party, if all fall within `withinHours` before `asOf`. */
export function planLiveness(
  snap: TranscriptSnapshot,
  opts: { parties: readonly PartyId[]; asOf: number; withinHours: number },
): AttestationPlan {
  const beats = readable(snap, 'heartbeat');
  const chosen = opts.parties.map((p) => {
    const last = beats.filter((b) => b.party === p && b.decoded.entry.receivedAt <= opts.asOf).at(-1);
    if (last === undefined) return unsupported(`no heartbeat from party ${p} in the verified transcript`);
    return last.index;
  });
  return {
    claim: {
      kind: 'liveness',
      channel: snap.channel,
      parties: [...opts.parties],
      asOf: opts.asOf,
      withinHours: opts.withinHours,
    },
    entries: chosen,
    disclosures: chosen,
  };
}

/** An event and the first receipt by another party that acknowledges it. */
export function planDelivery(
  snap: TranscriptSnapshot,
  opts: { event: EventId; receipt?: 'delivered' | 'read' },
): AttestationPlan {
  const kind = opts.receipt ?? 'delivered';
  const size = checkpointSize(snap);
  const ev = snap.records.find(
    (r) =>
      r.index < size &&
      r.decoded.envelope.body.kind === 'application' &&
      r.decoded.envelope.body.msgId === opts.event,
  );
  if (ev?.party === undefined) return unsupported(`event ${opts.event} is not in the verified transcript`);
  const ack = readable(snap, 'receipt').find(
    (r) =>
      r.index > ev.index &&
      r.party !== ev.party &&
      r.event.of.includes(opts.event) &&
      (kind === 'delivered' || r.event.type === 'read'),
  );
  if (ack === undefined) return unsupported(`no ${kind} receipt for event ${opts.event} yet`);
  return {
    claim: {
      kind: 'delivery',
      channel: snap.channel,
      event: opts.event,
      from: ev.party,
      at: ev.decoded.entry.receivedAt,
      by: ack.party,
      acknowledgedAt: ack.decoded.entry.receivedAt,
      receipt: kind,
    },
    entries: [ev.index, ack.index],
    disclosures: [ack.index],
  };
}

/** One event, revealed with its salt. */
export function planDisclosure(snap: TranscriptSnapshot, opts: { event: EventId }): AttestationPlan {
  const size = checkpointSize(snap);
  const r = snap.records.find((x) => x.index < size && x.event?.id === opts.event);
  if (r?.event === undefined || r.party === undefined || r.salt === undefined)
    return unsupported(`event ${opts.event} is not readable in the verified transcript`);
  return {
    claim: {
      kind: 'disclosure',
      channel: snap.channel,
      event: opts.event,
      from: r.party,
      at: r.decoded.entry.receivedAt,
    },
    entries: [r.index],
    disclosures: [r.index],
  };
}

/** Both parties' read-out commitments and reveals for a round. */
export function planReadouts(
  snap: TranscriptSnapshot,
  opts: { round: string; parties: readonly PartyId[] },
): AttestationPlan {
  const all = readable(snap, 'readout').filter((r) => r.event.round === opts.round);
  const idx: number[] = [];
  for (const p of opts.parties) {
    const commit = all.find(
      (r) => r.party === p && r.event.commitment !== undefined && r.event.text === undefined,
    );
    const reveal = all.find((r) => r.party === p && r.event.text !== undefined && r.event.salt !== undefined);
    if (commit === undefined || reveal === undefined)
      return unsupported(`party ${p} has not both committed to and revealed its read-out of “${opts.round}”`);
    idx.push(commit.index, reveal.index);
  }
  return {
    claim: { kind: 'readouts', channel: snap.channel, round: opts.round, parties: [...opts.parties] },
    entries: idx,
    disclosures: idx,
  };
}

/**
 * Agreed text: the doc.revision event of revision `revision` (default: the latest revision every
 * signatory signed at the level the type requires) and, for each signatory, its first such
 * signature over that revision's hash.
 */
export function planAgreed(
  snap: TranscriptSnapshot,
  opts: { doc: EventId; revision?: number },
): AttestationPlan {
  const revs = readable(snap, 'doc.revision').filter((r) => r.event.doc === opts.doc);
  if (revs.length === 0) return unsupported(`no revision of document ${opts.doc} in the verified transcript`);
  const signs = readable(snap, 'doc.sign').filter(
    (r) => r.event.doc === opts.doc && r.event.clause === undefined,
  );
  const candidates =
    opts.revision === undefined ? [...revs].reverse() : revs.filter((r) => r.event.n === opts.revision);
  if (candidates.length === 0)
    return unsupported(`revision ${opts.revision} of document ${opts.doc} is not in the verified transcript`);
  let missing = '';
  for (const rev of candidates) {
    const body = revisionBody(rev.event);
    const need = requiredSignoff(body.docType);
    if (need === undefined) return unsupported(`a ${body.docType} is never signed: it has no agreed text`);
    const hash = revisionHash(body);
    const roles = rolesFor(body.docType, need.level);
    const chosen: number[] = [];
    const evidence: number[] = [];
    for (const party of body.parties) {
      const mine = signs.filter(
        (r) =>
          r.index > rev.index &&
          r.party === party &&
          r.event.level === need.level &&
          constantTimeEqual(r.event.revision, hash) &&
          roles.includes(snap.certificate(r.decoded.entry.sender)?.body.role ?? ''),
      );
      // The first signature the parties' heartbeats show was logged while the channel was open.
      let why = '';
      const s = mine.find((r) => {
        const open = lifecycleEvidence(snap, body.parties, r.index);
        if (typeof open === 'string') why = open;
        else evidence.push(...open);
        return typeof open !== 'string';
      });
      if (s === undefined) {
        missing =
          mine.length === 0
            ? `party ${party} has not ${need.level === 'sign' ? 'signed' : 'initialled'} revision ${body.n}`
            : why;
        break;
      }
      chosen.push(s.index);
    }
    if (chosen.length !== body.parties.length) continue;
    const last = chosen.map((i) => snap.records[i]?.decoded.entry.receivedAt ?? 0);
    return {
      claim: {
        kind: 'agreed',
        channel: snap.channel,
        doc: opts.doc,
        docType: body.docType,
        revision: body.n,
        hash: toBase64url(hash),
        parties: [...body.parties],
        agreedAt: Math.max(...last),
      },
      entries: [...new Set([rev.index, ...chosen, ...evidence])].sort((a, b) => a - b),
      disclosures: [...new Set([rev.index, ...chosen, ...evidence])].sort((a, b) => a - b),
    };
  }
  return unsupported(
    opts.revision === undefined
      ? `no revision of document ${opts.doc} is agreed yet`
      : `${missing}: it is not agreed`,
  );
}

/**
 * The entries that show the channel was open when entry `at` was logged: per party, its first
 * heartbeat whose view covers `at`, and the lifecycle change those views name (an accept or a
 * reopen). A string says why there are none.
 */
function lifecycleEvidence(
  snap: TranscriptSnapshot,
  parties: readonly PartyId[],
  at: number,
): number[] | string {
  const beats = readable(snap, 'heartbeat');
  const out: number[] = [];
  const heads = new Set<number>();
  for (const p of parties) {
    const h = beats.find(
      (r) =>
        r.party === p &&
        r.event.view !== undefined &&
        r.event.view.seen < r.index &&
        r.event.view.seen >= at &&
        r.event.view.lifecycle <= at,
    );
    if (h?.event.view === undefined)
      return `party ${p} has sent no heartbeat since it saw entry ${at} (a signature): one from each party is needed to show the channel was open then (backchannel heartbeat, then sync)`;
    out.push(h.index);
    heads.add(h.event.view.lifecycle);
  }
  const [head] = heads;
  if (heads.size !== 1 || head === undefined)
    return `the parties' heartbeats disagree on the channel's lifecycle at entry ${at}`;
  const change = snap.records[head]?.event?.kind;
  if (change !== 'channel.accept' && change !== 'channel.reopen')
    return `the channel was not open when entry ${at} was logged (entry ${head}, a ${change ?? 'hidden event'}, is the last lifecycle change before it)`;
  return [...out, head];
}

/** Proves the planned entries against the snapshot's checkpoint and signs the document. */
export function createAttestation(
  snap: TranscriptSnapshot,
  plan: AttestationPlan,
  issuer: Issuer,
  issuedAt: number,
  suite: SignatureSuite = nobleEd25519,
): Attestation {
  const size = checkpointSize(snap);
  if (snap.records.length < size)
    throw new ProtocolError('NOT_IN_LOG', 'the transcript is shorter than its checkpoint', 'records');
  const tree = new MemoryNodeStore();
  for (let i = 0; i < size; i++) {
    const r = snap.records[i] as TranscriptRecord;
    if (r.index !== i) throw new ProtocolError('NOT_IN_LOG', 'the transcript has a gap', `records[${i}]`);
    tree.append(leafHash(r.entry));
  }
  const indexes = [...new Set(plan.entries)].sort((a, b) => a - b);
  const certs = new Map<string, DeviceCertificate>();
  const entries = indexes.map((i) => {
    const r = snap.records[i];
    if (r === undefined || i >= size)
      throw new ProtocolError('NOT_IN_LOG', `entry ${i} is beyond the checkpoint`, 'plan');
    const cert = snap.certificate(r.decoded.entry.sender);
    if (cert === undefined)
      throw new ProtocolError('CLAIM_UNSUPPORTED', `no certificate for the sender of entry ${i}`, 'plan');
    certs.set(cert.body.device, cert);
    return {
      index: i,
      entry: toBase64url(r.entry),
      proof: inclusionProof(i, size, tree.read).map(toBase64url),
    };
  });
  const disclosures = [...new Set(plan.disclosures)]
    .sort((a, b) => a - b)
    .map((i) => {
      const r = snap.records[i];
      if (r?.event === undefined || r.salt === undefined)
        throw new ProtocolError('CLAIM_UNSUPPORTED', `entry ${i} cannot be disclosed`, 'plan');
      return { index: i, event: eventToJson(r.event), salt: toBase64url(r.salt) };
    });
  const unsigned: UnsignedAttestation = {
    type: ATTESTATION_TYPE,
    v: 1,
    claim: plan.claim,
    issuer: toBase64url(encodeDeviceCertificate(issuer.certificate)),
    issuedAt,
    checkpoint: snap.checkpoint,
    entries,
    certificates: [...certs.values()].map((c) => toBase64url(encodeDeviceCertificate(c))),
    disclosures,
  };
  return signAttestation(unsigned, issuer.secretKey, suite);
}

/** Signs a document (also used by tests to build forgeries signed by a lying party). */
export function signAttestation(
  unsigned: UnsignedAttestation,
  deviceSecretKey: Uint8Array,
  suite: SignatureSuite = nobleEd25519,
): Attestation {
  const sig = signWithLabel(deviceSecretKey, 'attestation', attestationSigningBody(unsigned), suite);
  return { ...unsigned, signature: toBase64url(sig) };
}
