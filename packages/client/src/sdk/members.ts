/**
 * A channel's members as this device's MLS group has them: each device with the party, name
 * and role its certificate gives (every member's certificate was checked as the group took it).
 * The list follows the commits this device applied (Add, Remove); a device removed from the
 * channel keeps the list as it was when it was removed.
 */
import type { DeviceId, PartyId, Role } from '@backchannel/protocol';
import type { MlsGroup } from './mls.ts';

export interface ChannelMember {
  readonly party: PartyId;
  readonly device: DeviceId;
  readonly name: string;
  readonly role: Role;
}

/** The members of a channel's group, in the group's leaf order; none when this device has no group. */
export function channelMembers(ch: {
  readonly group: Pick<MlsGroup, 'members'> | undefined;
}): ChannelMember[] {
  return (ch.group?.members() ?? []).map((m) => ({
    party: m.certificate.body.party,
    device: m.device,
    name: m.certificate.body.name,
    role: m.certificate.body.role,
  }));
}
