/**
 * Devices enrolled after a channel opened. A member device of the same party that may add
 * devices (admin, principal: the relay's rule) adds them when it syncs: it claims the new device's
 * key package, commits an MLS Add (the relay orders commits and refuses a stale epoch: of two
 * devices adding at once, the loser syncs and finds the device added), sends the Welcome through
 * the party inboxes, then a `join.context` event disclosing the channel's lifecycle and track
 * events. MLS gives the new member no earlier keys: everything else before its join stays
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
  MAX_JOIN_DISCLOSURES,
  type PartyId,
  verifyCommitment,
} from '@backchannel/protocol';
import { decodeEventRecords, type EventRecord, keys } from './channel-record.ts';
import type { EngineContext } from './context.ts';
import type { ChannelView } from './view.ts';

/** The event kinds a device added later is disclosed: what makes the channel's state. */
export function isStructural(kind: string): boolean {
  return kind === 'outreach' || kind.startsWith('channel.') || kind.startsWith('track.');
}

export interface Disclosure {
  readonly seq: number;
  readonly event: Uint8Array;
  readonly salt: Uint8Array;
}

/** The lifecycle and track events this device accepted, in chunks of one join.context each. */
export function joinDisclosures(view: ChannelView): Disclosure[][] {
  const all: Disclosure[] = [];
  for (const r of view.timeline) {
    if (r.status !== 'ok' || !isStructural(r.event.kind)) continue;
    all.push({ seq: r.seq, event: encodeEvent(r.event), salt: r.salt });
  }
  const chunks: Disclosure[][] = [];
  for (let i = 0; i < all.length; i += MAX_JOIN_DISCLOSURES)
    chunks.push(all.slice(i, i + MAX_JOIN_DISCLOSURES));
  return chunks.length === 0 ? [[]] : chunks;
}

/**
 * The records a join.context gives this device: for each disclosure of an entry it could not
 * read (another device's application message from before `joinedEpoch`), the event if it matches
 * the commitment its sender signed there. Accepted only from a device of this device's own
 * party, naming this device.
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
  if (context.party !== me.party || !context.event.devices.includes(me.device)) return [];
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
    if (!ev.ok || ev.value.id !== body.msgId || !isStructural(ev.value.kind)) continue;
    // RFC-style selective disclosure (PROTOCOL.md §5): the sender signed C over (salt, event).
    if (!verifyCommitment(ev.value, d.salt, body.commitment, ctx.sha256)) continue;
    const cert = await ctx.certs.find(body.sender, parties, ctx.now());
    if (cert === undefined) continue;
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
