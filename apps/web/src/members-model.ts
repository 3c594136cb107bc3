/** A channel's members grouped by party, and the late-join note, for the channel screen (no React, no I/O). */
import type { ChannelMember, PartyId, Role } from '@backchannel/client/browser';

export interface MemberDevice {
  readonly device: string;
  readonly name: string;
  readonly role: Role;
  /** This device (the browser showing the list). */
  readonly self: boolean;
}

export interface PartyMembers {
  readonly party: PartyId;
  /** This device's own party. */
  readonly us: boolean;
  /** The party's devices in the channel's group: this device first, then by name. */
  readonly devices: readonly MemberDevice[];
}

/**
 * The members grouped by party: ours first, then the channel's parties in the order the channel
 * has them, then any other party with a device in the group. A party of the channel with no
 * device left in the group is listed with none.
 */
export function membersByParty(
  members: readonly ChannelMember[],
  me: { readonly party: PartyId; readonly device: string },
  parties: readonly PartyId[],
): PartyMembers[] {
  const order: PartyId[] = [me.party];
  for (const p of [...parties, ...members.map((m) => m.party)]) if (!order.includes(p)) order.push(p);
  return order.map((party) => ({
    party,
    us: party === me.party,
    devices: members
      .filter((m) => m.party === party)
      .map((m) => ({ device: m.device, name: m.name, role: m.role, self: m.device === me.device }))
      .sort(
        (x, y) =>
          Number(y.self) - Number(x.self) || x.name.localeCompare(y.name) || x.device.localeCompare(y.device),
      ),
  }));
}

/**
 * What a device added to the channel after it opened cannot read: MLS gives a new member no keys
 * for earlier epochs. `unreadable` counts the entries from before its join it could not read (the
 * lifecycle, track and document events and open proposals disclosed to it by its party are readable); none, no note.
 */
export function joinNote(joinedEpoch: number, unreadable: number): string | undefined {
  if (unreadable <= 0) return undefined;
  const entries = unreadable === 1 ? '1 earlier entry' : `${unreadable} earlier entries`;
  return `This device joined at epoch ${joinedEpoch}; messages before that are not readable on this device (${entries}).`;
}
