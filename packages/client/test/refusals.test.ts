/** What the CLI tells the user: a refused send's reason and what to do about it; status lines. */
import { aRole, type ChannelId, type DeviceId, initialState, type PartyId } from '@backchannel/protocol';
import { describe, expect, it } from 'vitest';
import { describe as describeRecord, renderStatus, type StatusReport } from '../src/cli/commands/watch.ts';
import { explainRefusal } from '../src/sdk/channel.ts';

const channel = 'c_AAAAAAAAAAAAAAAAAAAAAA' as ChannelId;
const device = (role: string) => ({
  party: 'p_AAAAAAAAAAAAAAAAAAAAAA' as PartyId,
  certificate: { body: { role } },
});

describe('explainRefusal', () => {
  it('tells an admin device to act from a principal or negotiator device, others to ask', () => {
    const state = initialState(channel);
    const reason = `${aRole('admin')} may not sign a signed-text`;
    expect(explainRefusal(channel, state, 'ROLE_FORBIDDEN', reason, device('admin'))).toBe(
      "an admin may not sign a signed-text (an admin device manages the party's devices: do this from a principal or negotiator device, or enroll one with `backchannel device add --role principal`)",
    );
    expect(
      explainRefusal(channel, state, 'ROLE_FORBIDDEN', 'a staff may not send channel.close', device('staff')),
    ).toBe('a staff may not send channel.close (ask a principal or your admin)');
  });

  it('names roles with their article', () => {
    expect(['admin', 'observer', 'principal', 'negotiator', 'staff'].map((r) => aRole(r as 'admin'))).toEqual(
      ['an admin', 'an observer', 'a principal', 'a negotiator', 'a staff'],
    );
  });
});

describe('renderStatus', () => {
  const report = (over: Partial<StatusReport>): StatusReport => ({
    channel: 'c_AAAAAAAAAAAAAAAAAAAAAA',
    lifecycle: 'open',
    since: null,
    reason: null,
    parties: [
      { party: 'p_AAAAAAAAAAAAAAAAAAAAAA' as PartyId, name: 'Ministry', liveness: 'open', lastHeard: 0 },
      { party: 'p_BBBBBBBBBBBBBBBBBBBBBB' as PartyId, name: 'Envoy', liveness: 'open', lastHeard: 0 },
    ],
    tracks: [],
    size: 5,
    verifiedCheckpoint: 5,
    outstandingReceipts: 0,
    awaitingDelivery: [],
    overdueNotices: 0,
    overdue: [],
    members: [],
    joinedEpoch: 0,
    unreadableBeforeJoin: 0,
    stateLost: null,
    ...over,
  });

  it('names each overdue notice: title, sender, deadline, who has not acknowledged it', () => {
    const text = renderStatus(
      report({
        overdueNotices: 1,
        overdue: [
          {
            event: 'e_CCCCCCCCCCCCCCCCCCCCCC',
            title: 'Exercises',
            from: 'p_AAAAAAAAAAAAAAAAAAAAAA' as PartyId,
            ackBy: Date.UTC(2026, 11, 7, 12),
            unanswered: ['p_BBBBBBBBBBBBBBBBBBBBBB' as PartyId],
          },
        ],
      }),
      Date.UTC(2026, 11, 7, 13),
    );
    expect(text).toContain('overdue notices: 1');
    expect(text).toMatch(
      /\n {2}overdue notice e_CCCCCCCCCCCCCCCCCCCCCC "Exercises" from .*Ministry.*, due 2026-12-07T12:00:00\.000Z, unacknowledged by .*Envoy/,
    );
  });

  it('shows track ids only where two tracks share a name', () => {
    const text = renderStatus(
      report({
        tracks: [
          { id: 't_1', name: 'energy', status: 'concluded', reason: null },
          { id: 't_2', name: 'energy', status: 'active', reason: null },
          { id: 't_3', name: 'nuclear', status: 'active', reason: null },
        ],
      }),
      0,
    );
    expect(text).toContain('  track "energy" (t_1): concluded');
    expect(text).toContain('  track "energy" (t_2): active');
    expect(text).toContain('  track "nuclear": active');
  });
});

describe('log and watch lines of handshakes', () => {
  it('say in words what changed, after the code', () => {
    const line = (code: string) =>
      describeRecord({
        seq: 7,
        receivedAt: 0,
        sender: 'd_AAAAAAAAAAAAAAAAAAAAAA' as DeviceId,
        status: 'handshake',
        code,
      });
    expect(line('REMOVED_SELF')).toBe(
      '#7 1970-01-01T00:00:00.000Z d_AAAAAAAAAAAAAAAAAAAAAA [handshake: REMOVED_SELF] — this device was removed from the channel: it can no longer read or post here',
    );
    expect(line('COMMIT_APPLIED')).toContain("— the channel's members or keys changed (an MLS commit)");
    expect(line('welcome')).toContain('— a Welcome: a device joins the channel');
    const d = (c: string) => `d_${c.repeat(22)}` as DeviceId;
    expect(
      describeRecord({
        seq: 9,
        receivedAt: 0,
        sender: d('A'),
        status: 'handshake',
        code: 'COMMIT_APPLIED',
        devicesAdded: [d('B')],
        devicesRemoved: [d('C'), d('D')],
      }),
    ).toBe(
      `#9 1970-01-01T00:00:00.000Z ${d('A')} [handshake: COMMIT_APPLIED] — the channel's members or keys changed (an MLS commit): added ${d('B')}; removed ${d('C')}, ${d('D')}`,
    );
  });
});
