/**
 * Who may read what: a current member reads the whole channel; a former member reads up to and
 * including the commit that removed it, and is shown the checkpoint signed right after it.
 * Anyone else — and any unknown channel — gets the same NOT_A_MEMBER, so existence does not leak.
 */
import type { ChannelId, DeviceId } from '@backchannel/protocol';
import { RelayError } from '../errors.ts';
import type { CheckpointRecord, ReadTx } from '../store/store.ts';

export interface Visibility {
  /** Exclusive end of the readable log (the removal commit's seq + 1), or undefined for current members. */
  readonly until: number | undefined;
  /** The latest checkpoint this device may see. */
  readonly checkpoint: CheckpointRecord;
}

export const notAMember = (): RelayError => new RelayError('NOT_A_MEMBER', 'not a member of this channel');

export async function visibility(tx: ReadTx, channel: ChannelId, device: DeviceId): Promise<Visibility> {
  const m = await tx.getMember(channel, device);
  if (m === undefined) throw notAMember();
  const until = m.removedSeq === undefined ? undefined : m.removedSeq + 1;
  const checkpoint = await tx.getCheckpoint(channel, until);
  if (checkpoint === undefined) throw notAMember();
  return { until, checkpoint };
}
