/**
 * Devices enrolled after a channel opened. A member device of the same party that may add
 * devices (admin, principal: the relay's rule) adds them when it syncs: it claims the new device's
 * key package, commits an MLS Add (the relay orders commits and refuses a stale epoch: of two
 * devices adding at once, the loser syncs and finds the device added), sends the Welcome through
 * the party inboxes, then `join.context` events disclosing what the new device needs to take part
 * (isDisclosable). MLS gives the new member no earlier keys: everything else before its join stays
 * unreadable on it. The new device checks each disclosure against the commitment its sender
 * signed in the transcript, and folds the disclosed events in their place.
 */
import {
  type ChannelId,
  type DecodedEntry,
  type DeviceId,
  decodeEntry,
  decodeEvent,
  encodeEvent,
  MAX_EVENT_BYTES,
  MAX_JOIN_DISCLOSURES,
  type PartyId,
  verifyCommitment,
  verifyEnvelope,
} from '@backchannel/protocol';
import { decodeEventRecords, type EventRecord, keys } from './channel-record.ts';
import type { EngineContext } from './context.ts';
import type { ChannelView } from './view.ts';

/** Lifecycle and track events: what makes the channel's state. */
export function isStructural(kind: string): boolean {
  return kind === 'outreach' || kind.startsWith('channel.') || kind.startsWith('track.');
}

/**
 * The event kinds a device added later may be disclosed: what it needs to take part. The
 * channel's lifecycle and tracks, its documents (each one's whole chain of revisions, comments and
 * sign-offs: a document's state is folded from all of them), and the proposals and notices its
 * party has still to answer. Messages, points, read-outs and receipts are not: handing over the
 * conversation itself would need every party's consent.
 */
export function isDisclosable(kind: string): boolean {
  return isStructural(kind) || kind.startsWith('doc.') || kind === 'proposal' || kind === 'notice';
}

export interface Disclosure {
  readonly seq: number;
  readonly event: Uint8Array;
  readonly salt: Uint8Array;
}

/**
 * Room kept in a join.context for its own fields (id, time: CONTEXT_BASE; each device named:
 * PER_DEVICE) and each disclosure's (seq, salt, framing).
 */
const CONTEXT_BASE = 1024;
const PER_DEVICE = 40;
const PER_DISCLOSURE_OVERHEAD = 48;
/**
 * The largest event a join.context naming up to 25 devices can disclose: the SDK drafts no larger
 * revision (documents.ts).
 */
export const MAX_DISCLOSABLE_EVENT_BYTES =
  MAX_EVENT_BYTES - CONTEXT_BASE - 25 * PER_DEVICE - PER_DISCLOSURE_OVERHEAD;

/**
 * What a device of `party` discloses to the devices it just added, in chunks of one join.context
 * each (at most MAX_JOIN_DISCLOSURES, and within MAX_EVENT_BYTES): every lifecycle, track and
 * document event it accepted, and the proposals and notices of other parties that no device of
 * `party` has answered yet.
 */
export function joinDisclosures(view: ChannelView, party: PartyId, devices = 1): Disclosure[][] {
  const answered = new Set<string>();
  for (const r of view.timeline)
    if (r.status === 'ok' && r.event.kind === 'response' && r.party === party) answered.add(r.event.to);
  const all: Disclosure[] = [];
  for (const r of view.timeline) {
    if (r.status !== 'ok' || !isDisclosable(r.event.kind)) continue;
    const k = r.event.kind;
    if ((k === 'proposal' || k === 'notice') && (r.party === party || answered.has(r.event.id))) continue;
    all.push({ seq: r.seq, event: encodeEvent(r.event), salt: r.salt });
  }
  const chunks: Disclosure[][] = [];
  let chunk: Disclosure[] = [];
  let bytes = 0;
  const budget = MAX_EVENT_BYTES - CONTEXT_BASE - devices * PER_DEVICE;
  for (const d of all) {
    const size = d.event.length + PER_DISCLOSURE_OVERHEAD;
    // An event too large to disclose even alone is left out: a revision drafted before the SDK
    // capped them (or by another client). The device then sees that document's later events
    // refused (DOC_UNKNOWN / DOC_REVISION_STALE).
    if (size > budget) continue;
    if (chunk.length === MAX_JOIN_DISCLOSURES || bytes + size > budget) {
      chunks.push(chunk);
      chunk = [];
      bytes = 0;
    }
    chunk.push(d);
    bytes += size;
  }
  if (chunk.length > 0 || chunks.length === 0) chunks.push(chunk);
  return chunks;
}

/**
 * The records a join.context gives this device: for each disclosure of an entry it could not
 * read (another device's application message from before `joinedEpoch`), the event if it matches
 * the commitment its sender signed there. The caller (Channel) accepts one from a device of this
 * device's party, or from another party's device whose commit added this one (the re-seating,
 * client.ts #reseat). Each event
 * is checked against its own sender's signed commitment, so a discloser can only choose what to
 * show among the disclosable events, never alter one; what several disclosers show adds up.
 */
export async function disclosedRecords(
  ctx: EngineContext,
  channel: ChannelId,
  joinedEpoch: number,
  context: EventRecord,
  entryAt: (seq: number) => Promise<DecodedEntry | undefined>,
): Promise<EventRecord[]> {
  if (context.status !== 'ok' || context.event.kind !== 'join.context') return [];
  const me = ctx.identity;
  if (!context.event.devices.includes(me.device)) return [];
  const out: EventRecord[] = [];
  const parties: PartyId[] = ctx.certs.parties();
  for (const d of context.event.disclosures) {
    const entry = await entryAt(d.seq);
    if (entry === undefined) continue;
    const body = entry.envelope.body;
    if (entry.entry.channel !== channel || body.kind !== 'application' || body.commitment === undefined)
      continue;
    if (body.epoch >= joinedEpoch || body.sender === me.device) continue;
    const ev = decodeEvent(d.event);
    if (!ev.ok || ev.value.id !== body.msgId || !isDisclosable(ev.value.kind)) continue;
    // RFC-style selective disclosure (PROTOCOL.md §5): the sender signed C over (salt, event).
    if (!verifyCommitment(ev.value, d.salt, body.commitment, ctx.sha256)) continue;
    const cert = await ctx.certs.find(body.sender, parties, ctx.now());
    if (cert === undefined) continue;
    // The entry itself must be its sender's: a disclosure takes the place of the stored record,
    // which may be one refused for a bad signature (a relay's forgery).
    if (!verifyEnvelope(entry.envelope, cert.body.devicePublicKey, ctx.suite)) continue;
    const valid = ctx.certs.check(cert, Math.min(ctx.now(), entry.entry.receivedAt));
    out.push({
      seq: d.seq,
      receivedAt: entry.entry.receivedAt,
      sender: body.sender,
      party: cert.body.party,
      role: cert.body.role,
      status: valid === undefined ? 'ok' : 'rejected',
      ...(valid === undefined ? {} : { code: 'CERT_INVALID' }),
      event: ev.value,
      salt: d.salt,
      disclosedBy: context.sender,
    });
  }
  return out;
}

/** The entry at `seq` from this device's copy of the transcript. */
export async function storedEntry(
  ctx: EngineContext,
  channel: ChannelId,
  seq: number,
): Promise<DecodedEntry | undefined> {
  const [e] = await ctx.store.entries(channel, seq, 1);
  if (e === undefined || e.seq !== seq) return undefined;
  const d = decodeEntry(e.entry);
  return d.ok ? d.value : undefined;
}

/** Every record of the channel, disclosed events in place of the entries they disclose. */
export async function loadRecords(ctx: EngineContext, channel: ChannelId): Promise<EventRecord[]> {
  const bySeq = new Map<number, EventRecord>();
  for (const prefix of [keys.eventPrefix(channel), keys.disclosedPrefix(channel)]) {
    for (const k of await ctx.store.keys(prefix)) {
      const b = await ctx.store.get(k);
      if (b !== undefined) for (const r of decodeEventRecords(b)) bySeq.set(r.seq, r);
    }
  }
  return [...bySeq.values()];
}

/** The devices of this device's party that are valid now and not in the channel's group. */
export function missingDevices(ctx: EngineContext, members: ReadonlySet<DeviceId>): DeviceId[] {
  return ctx.certs
    .validDevices(ctx.identity.party, ctx.now())
    .map((c) => c.body.device)
    .filter((d) => !members.has(d));
}
