/**
 * The channel as the user sees it: the reducer's state (a pure function of the verified
 * transcript) plus the timeline of readable events and what was refused and why.
 */
import { type ChannelId, type ChannelState, fold, initialState } from '@backchannel/protocol';
import type { EventRecord } from './channel-record.ts';

export interface ChannelView {
  readonly state: ChannelState;
  /** Readable events in transcript order (accepted or refused by the reducer). */
  readonly timeline: readonly EventRecord[];
  /** Transcript size this view reflects. */
  readonly size: number;
  /** Entries from before this device joined that it cannot read (MLS: no earlier keys). */
  readonly beforeJoin: number;
}

export class ViewState {
  readonly view: ChannelView;

  constructor(view: ChannelView) {
    this.view = view;
  }

  fold(records: readonly EventRecord[]): ViewState {
    let state = this.view.state;
    // The timeline is append-only and shared between successive views (copying it on every
    // batch would make a long channel quadratic); older views are never kept.
    const timeline = this.view.timeline as EventRecord[];
    let size = this.view.size;
    let beforeJoin = this.view.beforeJoin;
    for (const r of records) {
      size = Math.max(size, r.seq + 1);
      if (r.status === 'unreadable' && r.code === 'BEFORE_JOIN') beforeJoin++;
      if (r.status !== 'ok' && r.status !== 'rejected') continue;
      if (r.status === 'ok') {
        const res = fold(state, {
          event: r.event,
          sender: { device: r.sender, party: r.party, role: r.role },
          seq: r.seq,
          receivedAt: r.receivedAt,
        });
        if (res.ok) {
          state = res.state;
          timeline.push(r);
        } else {
          timeline.push({ ...r, status: 'rejected', code: res.code });
        }
      } else {
        timeline.push(r);
      }
    }
    return new ViewState({ state, timeline, size, beforeJoin });
  }
}

export function foldRecords(channel: ChannelId, records: readonly EventRecord[]): ViewState {
  return new ViewState({ state: initialState(channel), timeline: [], size: 0, beforeJoin: 0 }).fold(
    [...records].sort((a, b) => a.seq - b.seq),
  );
}
