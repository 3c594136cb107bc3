/** The channel screen's member list (grouped by party) and the note a late-joining device gets. */
import type { ChannelMember, DeviceId, PartyId } from '@backchannel/client/browser';
import { describe, expect, it } from 'vitest';
import { joinNote, membersByParty } from '../src/members-model.ts';
import { A, B } from './fixture.ts';

const M = 'p_MMMMMMMMMMMMMMMMMMMMMM' as PartyId;
const member = (
  party: PartyId,
  device: string,
  name: string,
  role: ChannelMember['role'],
): ChannelMember => ({
  party,
  device: device as DeviceId,
  name,
  role,
});
const desk = member(A, 'd_a_desk', 'desk browser', 'admin');
const laptop = member(A, 'd_a_laptop', 'staff laptop', 'staff');
const minister = member(A, 'd_a_minister', 'minister', 'principal');
const envoy = member(B, 'd_b_envoy', 'envoy', 'principal');

describe('members by party', () => {
  it("lists our party first with this device first, then the other party's devices", () => {
    const groups = membersByParty([envoy, minister, desk, laptop], { party: A, device: laptop.device }, [
      B,
      A,
    ]);
    expect(groups.map((g) => [g.party, g.us])).toEqual([
      [A, true],
      [B, false],
    ]);
    expect(groups[0]?.devices).toEqual([
      { device: laptop.device, name: 'staff laptop', role: 'staff', self: true },
      { device: desk.device, name: 'desk browser', role: 'admin', self: false },
      { device: minister.device, name: 'minister', role: 'principal', self: false },
    ]);
    expect(groups[1]?.devices).toEqual([
      { device: envoy.device, name: 'envoy', role: 'principal', self: false },
    ]);
  });

  it('after a removal the device is gone; a party of the channel with no device left is listed with none', () => {
    const after = membersByParty([desk, minister], { party: A, device: desk.device }, [A, B]);
    expect(after.map((g) => g.devices.map((d) => d.name))).toEqual([['desk browser', 'minister'], []]);
    expect(after[1]?.party).toBe(B);
  });

  it("a party in the group that the channel's state does not name yet (a mediator) is still shown", () => {
    const mediator = member(M, 'd_m_relay', 'relay desk', 'observer');
    const groups = membersByParty([desk, envoy, mediator], { party: A, device: desk.device }, [A, B]);
    expect(groups.map((g) => g.party)).toEqual([A, B, M]);
  });
});

describe('the late-join note', () => {
  it('a device that joined late is told from which epoch it reads, and how much it cannot', () => {
    expect(joinNote(3, 7)).toBe(
      'This device joined at epoch 3; messages before that are not readable on this device (7 earlier entries).',
    );
    expect(joinNote(2, 1)).toBe(
      'This device joined at epoch 2; messages before that are not readable on this device (1 earlier entry).',
    );
  });

  it('a device that can read everything gets no note', () => {
    expect(joinNote(1, 0)).toBeUndefined();
    expect(joinNote(0, 0)).toBeUndefined();
  });
});
