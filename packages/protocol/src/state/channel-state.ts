/**
 * Channel state as a pure, deterministic reducer over verified events:
 * fold(state, verifiedEvent) → state. Same events, same state, byte for byte (encodeState).
 * An invalid transition is refused with a typed code and leaves the state unchanged.
 */
import { Map as PersistentMap } from 'immutable';
import { encodeCanonical } from '../codec/cbor.ts';
import { type DocumentState, foldDocument } from '../documents/state.ts';
import type { ProtocolErrorCode } from '../errors.ts';
import type { ChannelEvent } from '../events/event.ts';
import { aRole, type Role } from '../identity/certificate.ts';
import type { ChannelId, DeviceId, EventId, PartyId, TrackId } from '../ids.ts';

export type Lifecycle = 'none' | 'proposed' | 'open' | 'suspended' | 'closed';
export type TrackStatus = 'active' | 'suspended' | 'revived' | 'concluded';

export interface HistoryItem<S extends string> {
  readonly status: S;
  readonly at: number;
  readonly by: PartyId;
  readonly seq: number;
  readonly reason?: string;
}

export interface TrackState {
  readonly name: string;
  readonly status: TrackStatus;
  readonly history: readonly HistoryItem<TrackStatus>[];
}

export interface ReceiptState {
  readonly from: PartyId;
  readonly kind: ChannelEvent['kind'];
  readonly at: number;
  readonly delivered: Readonly<Record<string, number>>;
  readonly read: Readonly<Record<string, number>>;
}

export interface NoticeState {
  readonly from: PartyId;
  readonly at: number;
  readonly ackBy: number;
  /** First acknowledgement (a response or a read receipt) by another party, per party. */
  readonly acknowledged: Readonly<Record<string, number>>;
}

export interface HeartbeatState {
  readonly at: number;
  readonly intervalMs: number;
}

export interface ChannelState {
  readonly channel: ChannelId;
  readonly lifecycle: Lifecycle;
  readonly lifecycleHistory: readonly HistoryItem<Lifecycle>[];
  readonly initiator: PartyId | undefined;
  readonly parties: readonly PartyId[];
  readonly mediator: 'none' | 'blind' | 'member';
  /** The delivery bound the opening outreach stated (ms), if any: later is provable delay. */
  readonly deliveryBoundMs: number | undefined;
  /** Set while an outreach on a suspended channel awaits an answer. */
  readonly reopenProposedBy: PartyId | undefined;
  readonly tracks: Readonly<Record<string, TrackState>>;
  readonly lastHeard: Readonly<Record<string, number>>;
  readonly lastHeardDevice: Readonly<Record<string, number>>;
  readonly lastHeartbeat: Readonly<Record<string, HeartbeatState>>;
  /** One record per substantive event: a persistent map (O(log n) updates, shared structure). */
  readonly receipts: PersistentMap<string, ReceiptState>;
  readonly notices: Readonly<Record<string, NoticeState>>;
  readonly readouts: Readonly<
    Record<string, Readonly<Record<string, { seq: number; at: number; committed: boolean }>>>
  >;
  readonly events: number;
  /** Negotiated documents by id (documents/state.ts). */
  readonly documents: Readonly<Record<string, DocumentState>>;
}

export interface VerifiedEvent {
  readonly event: ChannelEvent;
  readonly sender: { readonly device: DeviceId; readonly party: PartyId; readonly role: Role };
  readonly seq: number;
  readonly receivedAt: number;
}

export type FoldResult =
  | { readonly ok: true; readonly state: ChannelState }
  | {
      readonly ok: false;
      readonly code: ProtocolErrorCode;
      readonly reason: string;
      readonly state: ChannelState;
    };

export function initialState(channel: ChannelId): ChannelState {
  return {
    channel,
    lifecycle: 'none',
    lifecycleHistory: [],
    initiator: undefined,
    parties: [],
    mediator: 'none',
    deliveryBoundMs: undefined,
    reopenProposedBy: undefined,
    tracks: {},
    lastHeard: {},
    lastHeardDevice: {},
    lastHeartbeat: {},
    receipts: PersistentMap<string, ReceiptState>(),
    notices: {},
    readouts: {},
    events: 0,
    documents: {},
  };
}

const SUBSTANTIVE = new Set(['message', 'points', 'proposal', 'response', 'readout', 'notice']);
const LIFECYCLE_ROLES: readonly Role[] = ['principal', 'admin', 'negotiator'];
const CLOSE_ROLES: readonly Role[] = ['principal', 'admin'];
const TRACK_ROLES: readonly Role[] = ['principal', 'admin', 'negotiator'];
const CONTENT_ROLES: readonly Role[] = ['principal', 'admin', 'negotiator', 'staff'];

/** Who may send each kind (observers only receipts; staff no lifecycle or track changes). */
function allowedRoles(kind: ChannelEvent['kind']): readonly Role[] {
  switch (kind) {
    case 'receipt':
      return ['principal', 'admin', 'negotiator', 'staff', 'observer'];
    case 'message':
    case 'points':
    case 'proposal':
    case 'response':
    case 'notice':
    case 'heartbeat':
    case 'doc.revision':
    case 'doc.comment':
    case 'doc.sign':
      return CONTENT_ROLES;
    case 'readout':
    case 'track.open':
    case 'track.suspend':
    case 'track.revive':
    case 'track.conclude':
      return TRACK_ROLES;
    case 'channel.close':
      return CLOSE_ROLES;
    default:
      return LIFECYCLE_ROLES;
  }
}

/**
 * May a device of this role send this kind of event? The rule fold() applies (ROLE_FORBIDDEN),
 * for user interfaces to offer only what would be accepted.
 */
export function roleMaySend(role: Role, kind: ChannelEvent['kind']): boolean {
  return allowedRoles(kind).includes(role);
}

const refuse = (state: ChannelState, code: ProtocolErrorCode, reason: string): FoldResult => ({
  ok: false,
  code,
  reason,
  state,
});

export function fold(state: ChannelState, v: VerifiedEvent): FoldResult {
  const { event: e, sender } = v;
  const party = sender.party;
  if (!allowedRoles(e.kind).includes(sender.role)) {
    return refuse(state, 'ROLE_FORBIDDEN', `${aRole(sender.role)} may not send ${e.kind}`);
  }
  if (state.lifecycle === 'closed') return refuse(state, 'CHANNEL_CLOSED', 'the channel is closed');
  if (state.lifecycle === 'none') {
    if (e.kind !== 'outreach') return refuse(state, 'CHANNEL_NOT_OPEN', 'a channel starts with an outreach');
  } else if (!state.parties.includes(party)) {
    return refuse(state, 'NOT_A_MEMBER', `party ${party} is not a party to this channel`);
  }
  if (e.track !== undefined) {
    const t = state.tracks[e.track];
    if (t === undefined && e.kind !== 'track.open')
      return refuse(state, 'TRACK_UNKNOWN', `no track ${e.track}`);
    if (
      t !== undefined &&
      (t.status === 'suspended' || t.status === 'concluded') &&
      !e.kind.startsWith('track.') &&
      e.kind !== 'receipt'
    ) {
      return refuse(state, 'TRANSITION_INVALID', `track "${t.name}" is ${t.status}`);
    }
  }
  const next = apply(state, v);
  if (!next.ok) return next;
  return { ok: true, state: touch(next.state, v) };
}

/** Records when the party and device were last heard from. */
function touch(s: ChannelState, v: VerifiedEvent): ChannelState {
  return {
    ...s,
    lastHeard: { ...s.lastHeard, [v.sender.party]: v.receivedAt },
    lastHeardDevice: { ...s.lastHeardDevice, [v.sender.device]: v.receivedAt },
    events: s.events + 1,
  };
}

function lifecycleTo(s: ChannelState, status: Lifecycle, v: VerifiedEvent, reason?: string): ChannelState {
  const item: HistoryItem<Lifecycle> = {
    status,
    at: v.receivedAt,
    by: v.sender.party,
    seq: v.seq,
    ...(reason === undefined ? {} : { reason }),
  };
  return { ...s, lifecycle: status, lifecycleHistory: [...s.lifecycleHistory, item] };
}

function trackTo(
  s: ChannelState,
  id: TrackId,
  t: TrackState,
  status: TrackStatus,
  v: VerifiedEvent,
  reason?: string,
): ChannelState {
  const item: HistoryItem<TrackStatus> = {
    status,
    at: v.receivedAt,
    by: v.sender.party,
    seq: v.seq,
    ...(reason === undefined ? {} : { reason }),
  };
  return { ...s, tracks: { ...s.tracks, [id]: { ...t, status, history: [...t.history, item] } } };
}

function needOpen(s: ChannelState, what: string): string | undefined {
  return s.lifecycle === 'open' ? undefined : `cannot ${what}: the channel is ${s.lifecycle}`;
}

function apply(s: ChannelState, v: VerifiedEvent): FoldResult {
  const e = v.event;
  const party = v.sender.party;
  switch (e.kind) {
    case 'outreach': {
      if (e.from !== party)
        return refuse(s, 'EVENT_INVALID', 'an outreach must come from its sender’s party');
      if (e.from === e.to) return refuse(s, 'EVENT_INVALID', 'a party cannot reach out to itself');
      if (s.lifecycle === 'none') {
        const withParties: ChannelState = {
          ...s,
          initiator: party,
          parties: [e.from, e.to],
          mediator: e.mediator ?? 'none',
          deliveryBoundMs: e.deliveryBoundMs,
        };
        return { ok: true, state: lifecycleTo(withParties, 'proposed', v, e.note) };
      }
      if (s.lifecycle !== 'suspended')
        return refuse(s, 'TRANSITION_INVALID', `cannot reach out on ${aOrAn(s.lifecycle)} channel`);
      if (!s.parties.includes(e.to))
        return refuse(s, 'NOT_A_MEMBER', 'the outreach names a party outside the channel');
      // The mediator and delivery bound are stated once, when the channel opens.
      if (e.mediator !== undefined || e.deliveryBoundMs !== undefined)
        return refuse(
          s,
          'EVENT_INVALID',
          'a reopening outreach cannot change the mediator or the delivery bound',
        );
      return { ok: true, state: { ...lifecycleTo(s, 'proposed', v, e.note), reopenProposedBy: party } };
    }
    case 'channel.accept':
    case 'channel.decline': {
      if (s.lifecycle !== 'proposed')
        return refuse(
          s,
          'TRANSITION_INVALID',
          `nothing to ${e.kind.slice(8)}: the channel is ${s.lifecycle}`,
        );
      const proposer = s.reopenProposedBy ?? s.initiator;
      if (party === proposer)
        return refuse(s, 'TRANSITION_INVALID', 'the party that reached out cannot answer its own outreach');
      if (e.kind === 'channel.accept')
        return { ok: true, state: { ...lifecycleTo(s, 'open', v, e.reason), reopenProposedBy: undefined } };
      const back: Lifecycle = s.reopenProposedBy === undefined ? 'closed' : 'suspended';
      return { ok: true, state: { ...lifecycleTo(s, back, v, e.reason), reopenProposedBy: undefined } };
    }
    case 'channel.suspend':
      if (s.lifecycle !== 'open')
        return refuse(s, 'TRANSITION_INVALID', `cannot suspend ${aOrAn(s.lifecycle)} channel`);
      return { ok: true, state: lifecycleTo(s, 'suspended', v, e.reason) };
    case 'channel.reopen':
      if (s.lifecycle !== 'suspended')
        return refuse(s, 'TRANSITION_INVALID', `cannot reopen ${aOrAn(s.lifecycle)} channel`);
      return { ok: true, state: lifecycleTo(s, 'open', v, e.reason) };
    case 'channel.close':
      return { ok: true, state: lifecycleTo(s, 'closed', v, e.reason) };
    case 'track.open': {
      const why = needOpen(s, 'open a track');
      if (why !== undefined) return refuse(s, 'CHANNEL_NOT_OPEN', why);
      if (s.tracks[e.trackId] !== undefined)
        return refuse(s, 'TRACK_EXISTS', `track ${e.trackId} already exists`);
      const t: TrackState = { name: e.name, status: 'active', history: [] };
      return { ok: true, state: trackTo(s, e.trackId, t, 'active', v) };
    }
    case 'track.suspend':
    case 'track.revive':
    case 'track.conclude': {
      const why = needOpen(s, 'change a track');
      if (why !== undefined) return refuse(s, 'CHANNEL_NOT_OPEN', why);
      const t = s.tracks[e.trackId];
      if (t === undefined) return refuse(s, 'TRACK_UNKNOWN', `no track ${e.trackId}`);
      const target: TrackStatus =
        e.kind === 'track.suspend' ? 'suspended' : e.kind === 'track.revive' ? 'revived' : 'concluded';
      const from: Record<TrackStatus, readonly TrackStatus[]> = {
        suspended: ['active', 'revived'],
        revived: ['suspended'],
        concluded: ['active', 'suspended', 'revived'],
        active: [],
      };
      if (!from[target].includes(t.status)) {
        return refuse(s, 'TRANSITION_INVALID', `track "${t.name}" is ${t.status}: cannot become ${target}`);
      }
      return { ok: true, state: trackTo(s, e.trackId, t, target, v, e.reason) };
    }
    case 'heartbeat': {
      if (e.view !== undefined) {
        const why = checkLifecycleView(s, e.view, v.seq);
        if (why !== undefined) return refuse(s, 'LIFECYCLE_VIEW_INVALID', why);
      }
      return {
        ok: true,
        state: {
          ...s,
          lastHeartbeat: { ...s.lastHeartbeat, [party]: { at: v.receivedAt, intervalMs: e.intervalMs } },
        },
      };
    }
    case 'receipt':
      return { ok: true, state: applyReceipt(s, v, e.type, e.of) };
    case 'join.context':
      // Only for the devices it names (they fold the disclosed events); the state is unchanged.
      return { ok: true, state: s };
    case 'doc.revision':
    case 'doc.comment':
    case 'doc.sign': {
      const why = needOpen(s, `send a ${e.kind}`);
      if (why !== undefined) return refuse(s, 'CHANNEL_NOT_OPEN', why);
      const r = foldDocument(s.documents[e.doc], e, {
        channel: s.channel,
        parties: s.parties,
        sender: v.sender,
        seq: v.seq,
        receivedAt: v.receivedAt,
      });
      if (!r.ok) return refuse(s, r.code, r.reason);
      return { ok: true, state: { ...s, documents: { ...s.documents, [e.doc]: r.doc } } };
    }
    default: {
      // message, points, proposal, response, readout, notice
      const why = needOpen(s, `send a ${e.kind}`);
      if (why !== undefined) return refuse(s, 'CHANNEL_NOT_OPEN', why);
      let next = s;
      if (e.kind === 'response') {
        if (!s.receipts.has(e.to)) return refuse(s, 'EVENT_INVALID', `response to unknown event ${e.to}`);
        const n = s.notices[e.to];
        if (n !== undefined && n.from !== party && n.acknowledged[party] === undefined) {
          next = {
            ...next,
            notices: {
              ...next.notices,
              [e.to]: { ...n, acknowledged: { ...n.acknowledged, [party]: v.receivedAt } },
            },
          };
        }
      }
      if (e.kind === 'notice') {
        next = {
          ...next,
          notices: {
            ...next.notices,
            [e.id]: { from: party, at: v.receivedAt, ackBy: e.ackBy, acknowledged: {} },
          },
        };
      }
      if (e.kind === 'readout') {
        const round = next.readouts[e.round] ?? {};
        next = {
          ...next,
          readouts: {
            ...next.readouts,
            [e.round]: {
              ...round,
              [party]: { seq: v.seq, at: v.receivedAt, committed: e.commitment !== undefined },
            },
          },
        };
      }
      if (!SUBSTANTIVE.has(e.kind)) return { ok: true, state: next };
      const r: ReceiptState = { from: party, kind: e.kind, at: v.receivedAt, delivered: {}, read: {} };
      return { ok: true, state: { ...next, receipts: next.receipts.set(e.id, r) } };
    }
  }
}

/** The entry of the last lifecycle change accepted at or before entry `seen` (undefined: none). */
export function lifecycleHeadAt(s: ChannelState, seen: number): number | undefined {
  let head: number | undefined;
  for (const h of s.lifecycleHistory) if (h.seq <= seen) head = h.seq;
  return head;
}

/**
 * Why a device's stated view of the lifecycle is false (undefined: it is true). A view looks back
 * from before the event that carries it, and names exactly the last change accepted up to there.
 */
function checkLifecycleView(
  s: ChannelState,
  view: { readonly seen: number; readonly lifecycle: number },
  seq: number,
): string | undefined {
  if (view.seen >= seq) return `a view cannot include its own entry ${seq} or later ones`;
  const head = lifecycleHeadAt(s, view.seen);
  if (head !== view.lifecycle)
    return `as of entry ${view.seen} the last lifecycle change is entry ${head ?? '(none)'}, not ${view.lifecycle}`;
  return undefined;
}

/** Receipts for unknown events and a party's receipts for its own events are ignored (not errors). */
function applyReceipt(
  s: ChannelState,
  v: VerifiedEvent,
  type: 'delivered' | 'read',
  of: readonly EventId[],
): ChannelState {
  const party = v.sender.party;
  let receipts = s.receipts;
  let notices = s.notices;
  for (const id of of) {
    const r = receipts.get(id);
    if (r === undefined || r.from === party) continue;
    const delivered =
      r.delivered[party] === undefined ? { ...r.delivered, [party]: v.receivedAt } : r.delivered;
    const read =
      type === 'read' && r.read[party] === undefined ? { ...r.read, [party]: v.receivedAt } : r.read;
    if (delivered !== r.delivered || read !== r.read) receipts = receipts.set(id, { ...r, delivered, read });
    const n = notices[id];
    if (type === 'read' && n !== undefined && n.acknowledged[party] === undefined) {
      notices = { ...notices, [id]: { ...n, acknowledged: { ...n.acknowledged, [party]: v.receivedAt } } };
    }
  }
  return receipts === s.receipts && notices === s.notices ? s : { ...s, receipts, notices };
}

export function foldAll(
  channel: ChannelId,
  events: readonly VerifiedEvent[],
): { state: ChannelState; rejected: Array<{ seq: number; code: ProtocolErrorCode }> } {
  let state = initialState(channel);
  const rejected: Array<{ seq: number; code: ProtocolErrorCode }> = [];
  for (const v of events) {
    const r = fold(state, v);
    if (r.ok) state = r.state;
    else rejected.push({ seq: v.seq, code: r.code });
  }
  return { state, rejected };
}

/** Canonical bytes of a state (deterministic CBOR; absent optional fields omitted). */
export function encodeState(s: ChannelState): Uint8Array {
  return encodeCanonical({ ...s, receipts: Object.fromEntries(s.receipts) });
}

/** "a suspended", "an open". */
function aOrAn(word: string): string {
  return `${/^[aeiou]/.test(word) ? 'an' : 'a'} ${word}`;
}
