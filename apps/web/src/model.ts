/** Pure derivations from channel state for the screens (no React, no I/O). */
import {
  type ChannelState,
  type EventRecord,
  type Liveness,
  liveness,
  type PartyId,
} from '@backchannel/client/browser';
import type { Badge } from './ui.tsx';

const RANK: Record<Liveness, number> = { open: 0, quiet: 1, silent: 2 };

export function badgeOf(s: ChannelState, me: PartyId, now: number): Badge {
  switch (s.lifecycle) {
    case 'none':
    case 'proposed':
      return s.initiator !== undefined && s.initiator !== me ? 'outreach waiting' : 'proposed';
    case 'suspended':
      return s.reopenProposedBy !== undefined && s.reopenProposedBy !== me ? 'outreach waiting' : 'suspended';
    case 'closed':
      return 'closed';
    case 'open': {
      let worst: Liveness = 'open';
      for (const p of s.parties) {
        if (p === me) continue;
        const l = liveness(s, p, now);
        if (RANK[l] > RANK[worst]) worst = l;
      }
      return worst;
    }
  }
}

/** Substantive events from other parties this party has not marked read. */
export function unreadIds(s: ChannelState, me: PartyId): string[] {
  const out: string[] = [];
  for (const [id, r] of s.receipts.entries()) if (r.from !== me && r.read[me] === undefined) out.push(id);
  return out;
}

export type Readable = Extract<EventRecord, { status: 'ok' | 'rejected' | 'unchecked' }>;

export function isReadable(r: EventRecord): r is Readable {
  return r.status === 'ok' || r.status === 'rejected' || r.status === 'unchecked';
}

/** Events a response can answer: proposals, points and notices from other parties. */
export function answerable(timeline: readonly EventRecord[], me: PartyId): Readable[] {
  return timeline.filter(
    (r): r is Readable =>
      isReadable(r) &&
      r.status === 'ok' &&
      r.party !== me &&
      (r.event.kind === 'proposal' || r.event.kind === 'points' || r.event.kind === 'notice'),
  );
}
