import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { ChannelEvent } from '../../src/events/event.ts';
import { ROLES, type Role } from '../../src/identity/certificate.ts';
import type { ChannelId, DeviceId, EventId, PartyId, TrackId } from '../../src/ids.ts';
import {
  type ChannelState,
  encodeState,
  fold,
  foldAll,
  initialState,
  roleMaySend,
  type VerifiedEvent,
} from '../../src/state/channel-state.ts';
import { liveness, outstandingReceipts, overdueNotices } from '../../src/state/queries.ts';

const id = (p: string, n: number) => `${p}${String(n).padStart(22, 'A')}`;
const CH = id('c_', 1) as ChannelId;
const A = id('p_', 1) as PartyId;
const B = id('p_', 2) as PartyId;
const NUCLEAR = id('t_', 1) as TrackId;
const dev = (n: number) => id('d_', n) as DeviceId;
const who = {
  aMinister: { device: dev(1), party: A, role: 'principal' as Role },
  aStaff1: { device: dev(2), party: A, role: 'staff' as Role },
  aStaff2: { device: dev(3), party: A, role: 'staff' as Role },
  aObserver: { device: dev(4), party: A, role: 'observer' as Role },
  bEnvoy: { device: dev(10), party: B, role: 'principal' as Role },
  bNeg: { device: dev(11), party: B, role: 'negotiator' as Role },
};

let seq = 0;
let evn = 0;
function ev(
  sender: VerifiedEvent['sender'],
  body: Record<string, unknown>,
  at = 1_000 + seq * 1_000,
): VerifiedEvent {
  const event = { v: 1, id: id('e_', ++evn) as EventId, at, ...body } as ChannelEvent;
  return { event, sender, seq: seq++, receivedAt: at };
}

function play(state: ChannelState, v: VerifiedEvent): ChannelState {
  const r = fold(state, v);
  if (!r.ok) throw new Error(`refused ${v.event.kind}: ${r.code} ${r.reason}`);
  return r.state;
}

describe('the reference scenario through the reducer', () => {
  it('steps 1–6 and 8 produce the expected state after each step', () => {
    seq = 0;
    let s = initialState(CH);
    // Step 2 — last year: outreach, accept, track opened; after a strike B suspends track and channel.
    s = play(s, ev(who.aMinister, { kind: 'outreach', from: A, to: B, note: 'Opening a line.' }));
    expect(s.lifecycle).toBe('proposed');
    expect(s.parties).toEqual([A, B]);
    s = play(s, ev(who.bEnvoy, { kind: 'channel.accept' }));
    s = play(s, ev(who.aMinister, { kind: 'track.open', trackId: NUCLEAR, name: 'nuclear' }));
    expect(s.tracks[NUCLEAR]?.status).toBe('active');
    s = play(s, ev(who.bEnvoy, { kind: 'track.suspend', trackId: NUCLEAR, reason: 'military strike' }));
    s = play(s, ev(who.bEnvoy, { kind: 'channel.suspend', reason: 'no contact' }));
    expect(s.lifecycle).toBe('suspended');
    expect(s.tracks[NUCLEAR]?.history.at(-1)?.reason).toBe('military strike');

    // Step 3 — A reaches out; B accepts; the track is revived.
    const outreach = ev(who.aMinister, { kind: 'outreach', from: A, to: B, note: 'Resume?' });
    s = play(s, outreach);
    expect(s.lifecycle).toBe('proposed');
    expect(fold(s, ev(who.aMinister, { kind: 'channel.accept' }))).toMatchObject({
      ok: false,
      code: 'TRANSITION_INVALID',
    });
    s = play(s, ev(who.bEnvoy, { kind: 'channel.accept' }));
    s = play(s, ev(who.bNeg, { kind: 'track.revive', trackId: NUCLEAR }));
    expect(s.lifecycle).toBe('open');
    expect(s.tracks[NUCLEAR]?.status).toBe('revived');
    expect(s.lifecycleHistory.find((h) => h.seq === outreach.seq)?.by).toBe(A);

    // Step 4 — B conveys points; A's devices acknowledge delivery, then read.
    const points = ev(who.bEnvoy, {
      kind: 'points',
      title: 'Conditions',
      items: ['one', 'two'],
      track: NUCLEAR,
    });
    s = play(s, points);
    expect(outstandingReceipts(s)).toEqual([{ event: points.event.id, from: B, awaiting: [A] }]);
    s = play(s, ev(who.aStaff1, { kind: 'receipt', type: 'delivered', of: [points.event.id] }));
    s = play(s, ev(who.aStaff2, { kind: 'receipt', type: 'delivered', of: [points.event.id] }));
    const firstDelivery = s.receipts.get(points.event.id)?.delivered[A];
    expect(firstDelivery).toBeDefined();
    s = play(s, ev(who.aMinister, { kind: 'receipt', type: 'read', of: [points.event.id] }));
    expect(s.receipts.get(points.event.id)?.delivered[A]).toBe(firstDelivery);
    expect(s.receipts.get(points.event.id)?.read[A]).toBeDefined();
    expect(outstandingReceipts(s)).toEqual([]);

    // Step 5 — heartbeats; liveness open → quiet → silent.
    const hbA = ev(who.aStaff1, { kind: 'heartbeat', intervalMs: 60_000 });
    s = play(s, hbA);
    s = play(s, ev(who.bNeg, { kind: 'heartbeat', intervalMs: 60_000 }));
    const t = hbA.receivedAt;
    expect(liveness(s, A, t + 30_000)).toBe('open');
    expect(liveness(s, A, t + 90_000)).toBe('quiet');
    expect(liveness(s, A, t + 200_000)).toBe('silent');

    // Step 6 — the state supports the claims: outreach by A at D, open as of T.
    expect(s.lifecycleHistory.filter((h) => h.status === 'proposed').map((h) => h.by)).toEqual([A, A]);
    expect(s.lifecycle).toBe('open');

    // Step 8 — a removed staff device is the group's business; the reducer still refuses an observer posting.
    expect(fold(s, ev(who.aObserver, { kind: 'message', text: 'hi' }))).toMatchObject({
      ok: false,
      code: 'ROLE_FORBIDDEN',
    });
  });
});

/** An open channel between A and B with the nuclear track open (sequence numbers from 0). */
function openWithTrack(): ChannelState {
  seq = 0;
  return foldAll(CH, [
    ev(who.aMinister, { kind: 'outreach', from: A, to: B, note: 'x' }),
    ev(who.bEnvoy, { kind: 'channel.accept' }),
    ev(who.aMinister, { kind: 'track.open', trackId: NUCLEAR, name: 'nuclear' }),
  ]).state;
}

describe('roleMaySend (what user interfaces offer) is the rule fold applies', () => {
  const open = openWithTrack();
  const bodies: Array<Record<string, unknown>> = [
    { kind: 'message', text: 'x' },
    { kind: 'points', title: 't', items: ['a'] },
    { kind: 'proposal', title: 't', text: 'x' },
    { kind: 'heartbeat', intervalMs: 60_000, lifecycle: 'open' },
    { kind: 'track.open', trackId: id('t_', 2), name: 'trade' },
    { kind: 'track.suspend', trackId: NUCLEAR, reason: 'r' },
    { kind: 'track.conclude', trackId: NUCLEAR },
    { kind: 'channel.suspend', reason: 'r' },
    { kind: 'channel.close' },
    { kind: 'notice', title: 't', text: 'x', ackBy: 10_000_000 },
    { kind: 'readout', round: 'r1', commitment: new Uint8Array(32) },
    { kind: 'receipt', type: 'read', of: [id('e_', 1)] },
  ];
  it('refuses with ROLE_FORBIDDEN exactly what roleMaySend says no to (property)', () => {
    fc.assert(
      fc.property(fc.constantFrom(...ROLES), fc.constantFrom(...bodies), (role, body) => {
        const sender = { device: dev(50), party: A, role };
        const r = fold(open, ev(sender, body));
        const forbidden = !r.ok && r.code === 'ROLE_FORBIDDEN';
        expect(forbidden).toBe(!roleMaySend(role, body.kind as ChannelEvent['kind']));
      }),
      { numRuns: 300 },
    );
    expect(roleMaySend('staff', 'channel.close')).toBe(false);
    expect(roleMaySend('staff', 'message')).toBe(true);
    expect(roleMaySend('observer', 'message')).toBe(false);
    expect(roleMaySend('observer', 'receipt')).toBe(true);
  });
});

describe('rejected inputs leave the state byte-identical', () => {
  const open = openWithTrack();
  const concluded = play(open, ev(who.aMinister, { kind: 'track.conclude', trackId: NUCLEAR }));
  const suspended = play(open, ev(who.aMinister, { kind: 'channel.suspend', reason: 'pause' }));
  const closed = play(open, ev(who.aMinister, { kind: 'channel.close' }));
  const stranger = { device: dev(99), party: id('p_', 9) as PartyId, role: 'principal' as Role };

  it.each([
    [
      'reviving a concluded track',
      concluded,
      ev(who.aMinister, { kind: 'track.revive', trackId: NUCLEAR }),
      'TRANSITION_INVALID',
    ],
    [
      'a staff member closing the channel',
      open,
      ev(who.aStaff1, { kind: 'channel.close' }),
      'ROLE_FORBIDDEN',
    ],
    ['an observer posting', open, ev(who.aObserver, { kind: 'message', text: 'x' }), 'ROLE_FORBIDDEN'],
    [
      'a message on a suspended channel',
      suspended,
      ev(who.aMinister, { kind: 'message', text: 'x' }),
      'CHANNEL_NOT_OPEN',
    ],
    [
      'anything on a closed channel',
      closed,
      ev(who.aMinister, { kind: 'heartbeat', intervalMs: 60_000 }),
      'CHANNEL_CLOSED',
    ],
    [
      'the initiator accepting its own outreach',
      initialState(CH),
      ev(who.aMinister, { kind: 'channel.accept' }),
      'CHANNEL_NOT_OPEN',
    ],
    ['a party outside the channel', open, ev(stranger, { kind: 'message', text: 'x' }), 'NOT_A_MEMBER'],
    [
      'opening an existing track',
      open,
      ev(who.aMinister, { kind: 'track.open', trackId: NUCLEAR, name: 'again' }),
      'TRACK_EXISTS',
    ],
    [
      'suspending an unknown track',
      open,
      ev(who.aMinister, { kind: 'track.suspend', trackId: id('t_', 7), reason: 'x' }),
      'TRACK_UNKNOWN',
    ],
    [
      'a message on a concluded track',
      concluded,
      ev(who.aMinister, { kind: 'message', text: 'x', track: NUCLEAR }),
      'TRANSITION_INVALID',
    ],
    [
      'an outreach from another party than the sender',
      initialState(CH),
      ev(who.aMinister, { kind: 'outreach', from: B, to: A, note: 'x' }),
      'EVENT_INVALID',
    ],
    [
      'a reopening outreach that changes the delivery bound',
      suspended,
      ev(who.aMinister, { kind: 'outreach', from: A, to: B, note: 'Resume?', deliveryBoundMs: 1_000 }),
      'EVENT_INVALID',
    ],
    [
      'suspending a suspended channel',
      suspended,
      ev(who.aMinister, { kind: 'channel.suspend', reason: 'x' }),
      'TRANSITION_INVALID',
    ],
    [
      'a response to an unknown event',
      open,
      ev(who.aMinister, { kind: 'response', to: id('e_', 999), stance: 'note', text: 'x' }),
      'EVENT_INVALID',
    ],
    [
      'staff opening a track',
      open,
      ev(who.aStaff1, { kind: 'track.open', trackId: id('t_', 8), name: 'y' }),
      'ROLE_FORBIDDEN',
    ],
  ] as const)('%s → %s', (_what, state, v, code) => {
    const before = encodeState(state);
    const r = fold(state, v);
    expect(r).toMatchObject({ ok: false, code });
    expect(encodeState(r.state)).toEqual(before);
  });

  it('notices unanswered past their deadline are overdue, until acknowledged', () => {
    const n = ev(who.bEnvoy, { kind: 'notice', title: 'Formal', text: 'x', ackBy: 50_000 });
    let s = play(open, n);
    expect(overdueNotices(s, 40_000)).toEqual([]);
    expect(overdueNotices(s, 60_000).map((o) => o.unanswered)).toEqual([[A]]);
    s = play(s, ev(who.aMinister, { kind: 'response', to: n.event.id, stance: 'note', text: 'received' }));
    expect(overdueNotices(s, 60_000)).toEqual([]);
  });
});

describe('reducer properties', () => {
  const roles: Role[] = ['principal', 'negotiator', 'staff', 'observer', 'admin'];
  const arbEvent = fc
    .record({
      party: fc.constantFrom(A, B),
      role: fc.constantFrom(...roles),
      body: fc.oneof(
        fc.constant({ kind: 'channel.accept' }),
        fc.constant({ kind: 'channel.reopen' }),
        fc.constant({ kind: 'channel.suspend', reason: 'r' }),
        fc.constant({ kind: 'channel.close' }),
        fc.constant({ kind: 'message', text: 'm' }),
        fc.constant({ kind: 'heartbeat', intervalMs: 60_000 }),
        fc.constantFrom(...[1, 2].map((n) => ({ kind: 'track.open', trackId: id('t_', n), name: `t${n}` }))),
        fc.constantFrom(...[1, 2].map((n) => ({ kind: 'track.suspend', trackId: id('t_', n), reason: 'r' }))),
        fc.constantFrom(...[1, 2].map((n) => ({ kind: 'track.revive', trackId: id('t_', n) }))),
        fc.constantFrom(...[1, 2].map((n) => ({ kind: 'track.conclude', trackId: id('t_', n) }))),
        fc.constant({ kind: 'receipt', type: 'delivered', of: [id('e_', 3)] }),
      ),
    })
    .map(({ party, role, body }) => ({ party, role, body }));

  const build = (items: Array<{ party: PartyId; role: Role; body: object }>) => {
    seq = 0;
    evn = 0;
    const first = ev(who.aMinister, { kind: 'outreach', from: A, to: B, note: 'x' });
    return [
      first,
      ...items.map((i) =>
        ev(
          { device: dev(i.party === A ? 1 : 10), party: i.party, role: i.role },
          i.body as Record<string, unknown>,
        ),
      ),
    ];
  };

  it('is deterministic: the same events give the same bytes', () => {
    fc.assert(
      fc.property(fc.array(arbEvent, { maxLength: 40 }), (items) => {
        const x = encodeState(foldAll(CH, build(items)).state);
        const y = encodeState(foldAll(CH, build(items)).state);
        expect(x).toEqual(y);
      }),
      { numRuns: 200 },
    );
  });

  it('never throws, and a refused event never changes the state', () => {
    fc.assert(
      fc.property(fc.array(arbEvent, { maxLength: 40 }), (items) => {
        let s = initialState(CH);
        for (const v of build(items)) {
          const before = encodeState(s);
          const r = fold(s, v);
          if (!r.ok) expect(encodeState(r.state)).toEqual(before);
          s = r.state;
        }
      }),
      { numRuns: 200 },
    );
  });

  it('does not mutate its input', () => {
    seq = 0;
    const s = Object.freeze(initialState(CH));
    expect(() => fold(s, ev(who.aMinister, { kind: 'outreach', from: A, to: B, note: 'x' }))).not.toThrow();
    expect(s.lifecycle).toBe('none');
  });
});

describe('join.context', () => {
  it('a join.context leaves the channel as it was, and is a manager’s to send', () => {
    seq = 0;
    let s = initialState(CH);
    s = play(s, ev(who.aMinister, { kind: 'outreach', from: A, to: B, note: 'Opening a line.' }));
    s = play(s, ev(who.bEnvoy, { kind: 'channel.accept' }));
    const ctx = { kind: 'join.context', devices: [dev(5)], disclosures: [] };
    const before = s;
    s = play(s, ev(who.aMinister, ctx));
    expect(s.lifecycle).toBe(before.lifecycle);
    expect(s.tracks).toEqual(before.tracks);
    expect(s.receipts.size).toBe(before.receipts.size);
    const staff = fold(s, ev(who.aStaff1, ctx));
    expect(staff.ok ? 'ok' : staff.code).toBe('ROLE_FORBIDDEN');
  });
});
