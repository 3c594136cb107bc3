/** Questions asked of a channel state at a given time. */
import type { EventId, PartyId } from '../ids.ts';
import type { ChannelState, NoticeState } from './channel-state.ts';

export type Liveness = 'open' | 'quiet' | 'silent';

export interface LivenessOptions {
  /** Quiet after this long without a heartbeat (default: the party's own heartbeat interval). */
  readonly quietAfterMs?: number;
  /** Silent after this long (default: twice the quiet threshold). */
  readonly silentAfterMs?: number;
}

const DEFAULT_INTERVAL_MS = 5 * 60_000;

/** open: heard within one heartbeat interval; quiet: within two; silent: longer, or never. */
export function liveness(s: ChannelState, party: PartyId, now: number, opts: LivenessOptions = {}): Liveness {
  const hb = s.lastHeartbeat[party];
  const interval = hb?.intervalMs ?? DEFAULT_INTERVAL_MS;
  const quiet = opts.quietAfterMs ?? interval;
  const silent = opts.silentAfterMs ?? 2 * quiet;
  const last = Math.max(hb?.at ?? Number.NEGATIVE_INFINITY, s.lastHeard[party] ?? Number.NEGATIVE_INFINITY);
  if (!Number.isFinite(last)) return 'silent';
  const age = now - last;
  if (age <= quiet) return 'open';
  if (age <= silent) return 'quiet';
  return 'silent';
}

/** Substantive events some other party has not yet acknowledged delivering. */
export function outstandingReceipts(
  s: ChannelState,
): Array<{ event: EventId; from: PartyId; awaiting: PartyId[] }> {
  return [...s.receipts.entries()].flatMap(([id, r]) => {
    const awaiting = s.parties.filter((p) => p !== r.from && r.delivered[p] === undefined);
    return awaiting.length === 0 ? [] : [{ event: id as EventId, from: r.from, awaiting }];
  });
}

/** Notices past their deadline that some other party has not acknowledged: escalate to the sender's principal. */
export function overdueNotices(
  s: ChannelState,
  now: number,
): Array<{ event: EventId; notice: NoticeState; unanswered: PartyId[] }> {
  return Object.entries(s.notices).flatMap(([id, n]) => {
    if (now <= n.ackBy) return [];
    const unanswered = s.parties.filter((p) => p !== n.from && n.acknowledged[p] === undefined);
    return unanswered.length === 0 ? [] : [{ event: id as EventId, notice: n, unanswered }];
  });
}
