/**
 * The channel as the user sees it: the reducer's state (a pure function of the verified
 * transcript) plus the timeline of readable events and what was refused and why.
 */
import {
  type ChannelEvent,
  type ChannelId,
  type ChannelState,
  type EventId,
  fold,
  initialState,
  type VerifiedEvent,
} from '@backchannel/protocol';
import type { EventRecord, References } from './channel-record.ts';

export interface ChannelView {
  readonly state: ChannelState;
  /** Readable events in transcript order (accepted, refused by the reducer, or unchecked). */
  readonly timeline: readonly EventRecord[];
  /** Transcript size this view reflects. */
  readonly size: number;
  /** Entries from before this device joined that it cannot read (MLS: no earlier keys). */
  readonly beforeJoin: number;
  /** The MLS epoch at which this device joined the channel. */
  readonly joinedEpoch: number;
  /**
   * Applied commits that added or removed devices (handshake records with `devicesAdded` or
   * `devicesRemoved`), in transcript order: who joined and left, for the log. Not events: the
   * reducer never sees them.
   */
  readonly changes?: readonly EventRecord[];
}

export class ViewState {
  readonly view: ChannelView;
  /** The event ids of the entries from before this device joined (→ their seqs); shared, append-only. */
  readonly #earlier: Map<EventId, number>;
  /** The ids of unchecked events (readable, not in the state); shared, append-only. */
  readonly #unchecked: Set<EventId>;

  constructor(
    view: ChannelView,
    earlier: Map<EventId, number> = new Map(),
    unchecked: Set<EventId> = new Set(),
  ) {
    this.view = view;
    this.#earlier = earlier;
    this.#unchecked = unchecked;
  }

  fold(records: readonly EventRecord[]): ViewState {
    let state = this.view.state;
    // The timeline is append-only and shared between successive views (copying it on every
    // batch would make a long channel quadratic); older views are never kept.
    const timeline = this.view.timeline as EventRecord[];
    const changes = (this.view.changes ?? []) as EventRecord[];
    let size = this.view.size;
    let beforeJoin = this.view.beforeJoin;
    for (const r of records) {
      size = Math.max(size, r.seq + 1);
      if (r.status === 'unreadable' && r.code === 'BEFORE_JOIN') {
        beforeJoin++;
        if (r.id !== undefined) this.#earlier.set(r.id, r.seq);
      }
      if (r.status === 'handshake' && (r.devicesAdded !== undefined || r.devicesRemoved !== undefined))
        changes.push(r);
      if (r.status !== 'ok' && r.status !== 'rejected') continue;
      if (r.status === 'ok') {
        const v: VerifiedEvent = {
          event: r.event,
          sender: { device: r.sender, party: r.party, role: r.role },
          seq: r.seq,
          receivedAt: r.receivedAt,
        };
        const refs = this.#references(state, r.event);
        const res = fold(state, v);
        if (res.ok) {
          state = res.state;
          timeline.push(refs === undefined ? r : { ...r, refs });
        } else if (refs !== undefined && this.#onlyBeforeJoin(state, v, refs)) {
          timeline.push({ ...r, status: 'unchecked', code: 'REFERS_BEFORE_JOIN', refs });
          this.#unchecked.add(r.event.id);
        } else {
          timeline.push({
            ...r,
            status: 'rejected',
            code: res.code,
            ...(refs === undefined ? {} : { refs }),
          });
        }
      } else {
        timeline.push(r);
      }
    }
    return new ViewState(
      { state, timeline, size, beforeJoin, joinedEpoch: this.view.joinedEpoch, changes },
      this.#earlier,
      this.#unchecked,
    );
  }

  /**
   * The ids `e` refers to that the state does not hold: those of entries from before this device
   * joined (it cannot read them), and the others (undefined: none of either).
   */
  #references(state: ChannelState, e: ChannelEvent): References | undefined {
    const ids = e.kind === 'response' ? [e.to] : e.kind === 'receipt' ? e.of : [];
    const earlier: number[] = [];
    let unknown = 0;
    for (const id of ids) {
      if (state.receipts.has(id) || this.#unchecked.has(id)) continue;
      const seq = this.#earlier.get(id);
      if (seq === undefined) unknown++;
      else earlier.push(seq);
    }
    if (earlier.length === 0 && unknown === 0) return undefined;
    return { beforeJoin: earlier, joinedEpoch: this.view.joinedEpoch, unknown };
  }

  /**
   * Whether the reducer refused `v` only because what it answers came before this device joined:
   * it would accept it were the answered event known (a response's only reference).
   */
  #onlyBeforeJoin(state: ChannelState, v: VerifiedEvent, refs: References): boolean {
    const e = v.event;
    if (e.kind !== 'response' || refs.unknown > 0) return false;
    const placeholder = { from: v.sender.party, kind: 'proposal' as const, at: 0, delivered: {}, read: {} };
    return fold({ ...state, receipts: state.receipts.set(e.to, placeholder) }, v).ok;
  }
}

export function foldRecords(channel: ChannelId, records: readonly EventRecord[], joinedEpoch = 0): ViewState {
  return new ViewState({
    state: initialState(channel),
    timeline: [],
    size: 0,
    beforeJoin: 0,
    joinedEpoch,
  }).fold([...records].sort((a, b) => a.seq - b.seq));
}
