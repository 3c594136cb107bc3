/**
 * The relay's rules for one envelope, as MLS Delivery Service and access-list keeper. Pure:
 * the appender passes in the channel's state and the directory records it looked up.
 *
 * - The first envelope of an unknown channel must be a commit at epoch 0; its sender becomes a member.
 *   That opening commit removes nobody: its creator is the only member there is, and a channel
 *   opened without its creator would hold another party's devices, or no device at all.
 * - Only current members post. A commit carries the current epoch and advances it by one;
 *   other envelopes may carry the current or an older epoch, never a future one.
 * - A commit's declared members.add/remove update the access list: devices of the committer's
 *   own party are added or removed only by an admin or principal (anyone may remove itself);
 *   another party's devices are removed only once their root revoked them, and added only by an
 *   admin, principal or negotiator while that party has no device left in the channel after the
 *   commit's removals (the outreach, and the re-seating of a party whose every device there was
 *   revoked), never by staff or an observer; added devices must be
 *   registered, valid now and not revoked.
 */
import type { DeviceId, EnvelopeBody, PartyId, Role } from '@backchannel/protocol';
import { deviceStatus } from '../directory/devices.ts';
import { RelayError } from '../errors.ts';
import type { DeviceRecord, MemberRecord } from '../store/store.ts';

export const MANAGER_ROLES: readonly Role[] = ['admin', 'principal'];
/** Roles that may add another party's devices (the outreach, a re-seating). */
const ADDS_OTHERS: readonly Role[] = [...MANAGER_ROLES, 'negotiator'];

export function isCurrentMember(m: MemberRecord | undefined): m is MemberRecord {
  return m !== undefined && m.removedSeq === undefined;
}

/** Epoch check (RFC 9420 §14 Delivery Service: one commit per epoch, in order). */
export function checkEpoch(body: Pick<EnvelopeBody, 'kind' | 'epoch'>, current: number): void {
  if (body.kind === 'commit') {
    if (body.epoch < current) {
      throw new RelayError(
        'EPOCH_STALE',
        `commit for epoch ${body.epoch}, the channel is at epoch ${current}`,
      );
    }
    if (body.epoch > current) {
      throw new RelayError(
        'EPOCH_FUTURE',
        `commit for epoch ${body.epoch}, the channel is at epoch ${current}`,
      );
    }
  } else if (body.epoch > current) {
    throw new RelayError(
      'EPOCH_FUTURE',
      `envelope for epoch ${body.epoch}, the channel is at epoch ${current}`,
    );
  }
}

/**
 * The opening commit's own rule: it may add devices (checked as any commit's additions) but
 * remove none — the only member to remove is its creator, which would leave the channel to the
 * devices it added (another party's, in an outreach) or to nobody.
 */
export function checkOpeningCommit(declared: { readonly remove: readonly DeviceId[] } | undefined): void {
  if (declared !== undefined && declared.remove.length > 0) {
    throw new RelayError('MEMBER_INVALID', 'the opening commit of a channel may not remove devices');
  }
}

export interface MembershipChange {
  readonly add: ReadonlyArray<{ readonly device: DeviceId; readonly party: PartyId }>;
  readonly remove: readonly DeviceId[];
}

/**
 * Validates a commit's declared membership change against the current access list.
 * `members` holds current and former members; `lookup` returns directory records of added
 * devices, and of removed devices of another party than the committer's.
 */
export function checkMembershipChange(
  committer: DeviceRecord,
  declared: { readonly add: readonly DeviceId[]; readonly remove: readonly DeviceId[] },
  members: ReadonlyMap<DeviceId, MemberRecord>,
  lookup: (device: DeviceId) => DeviceRecord | undefined,
  now: number,
): MembershipChange {
  const seen = new Set<DeviceId>();
  for (const d of [...declared.add, ...declared.remove]) {
    if (seen.has(d)) throw new RelayError('MEMBER_INVALID', 'a device appears twice in members.add/remove');
    seen.add(d);
  }
  const manager = MANAGER_ROLES.includes(committer.role);
  for (const d of declared.remove) {
    if (!isCurrentMember(members.get(d))) {
      throw new RelayError('MEMBER_INVALID', 'members.remove names a device that is not a member');
    }
    if (d === committer.device) continue;
    const party = (members.get(d) as MemberRecord).party;
    if (party !== committer.party) {
      // Any revocation its root signed, whatever its date (members check the same, without
      // their clocks: devicePolicy in the SDK).
      const rec = lookup(d);
      if (rec?.revokedAt === undefined) {
        throw new RelayError(
          'ROLE_FORBIDDEN',
          "a party may remove another party's devices only once that party's root revoked them",
        );
      }
    }
    if (!manager) throw new RelayError('ROLE_FORBIDDEN', `role ${committer.role} may not remove devices`);
  }
  // The parties with a device in the channel once this commit's removals are made.
  const leaving = new Set(declared.remove);
  const partiesPresent = new Set<PartyId>();
  for (const m of members.values())
    if (isCurrentMember(m) && !leaving.has(m.device)) partiesPresent.add(m.party);
  const add: Array<{ device: DeviceId; party: PartyId }> = [];
  for (const d of declared.add) {
    if (d === committer.device && isCurrentMember(members.get(d))) continue;
    if (isCurrentMember(members.get(d))) {
      throw new RelayError('MEMBER_INVALID', 'members.add names a device that is already a member');
    }
    const rec = lookup(d);
    if (rec === undefined) throw new RelayError('MEMBER_INVALID', 'members.add names an unregistered device');
    if (deviceStatus(rec, now) !== undefined) {
      throw new RelayError(
        'MEMBER_INVALID',
        'members.add names a revoked device or one whose certificate is not valid',
      );
    }
    // Its own party's devices: a manager's act. Another party's (an outreach, a re-seating): a
    // manager's or a negotiator's, as every member's MLS policy allows; never staff or observers.
    if (!(rec.party === committer.party ? manager : ADDS_OTHERS.includes(committer.role))) {
      throw new RelayError('ROLE_FORBIDDEN', `role ${committer.role} may not add devices`);
    }
    if (rec.party !== committer.party && partiesPresent.has(rec.party)) {
      throw new RelayError(
        'ROLE_FORBIDDEN',
        "another party's devices are added only while that party has none in the channel",
      );
    }
    add.push({ device: d, party: rec.party });
  }
  return { add, remove: [...declared.remove] };
}
