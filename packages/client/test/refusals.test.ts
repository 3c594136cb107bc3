/** What a refused send tells the user: the reason, and what to do about it from this device. */
import { aRole, type ChannelId, initialState, type PartyId } from '@backchannel/protocol';
import { describe, expect, it } from 'vitest';
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
