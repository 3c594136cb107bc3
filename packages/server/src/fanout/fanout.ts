/** What the relay publishes after each committed batch, to every node's WebSocket hub. */
import type { ChannelId, DeviceId, PartyId } from '@backchannel/protocol';

export interface PublishedEntry {
  readonly seq: number;
  readonly entry: Uint8Array;
  /** Devices this entry (a commit) removed from the channel. */
  readonly removed: readonly DeviceId[];
}

export interface PublishedChannel {
  readonly channel: ChannelId;
  /** New entries in seq order (contiguous). */
  readonly entries: readonly PublishedEntry[];
  /** The checkpoint signed at the end of the batch. */
  readonly checkpoint: { readonly size: number; readonly note: string };
}

export interface PublishedInboxItem {
  readonly party: PartyId;
  readonly cursor: number;
  readonly channel: ChannelId;
  readonly seq: number;
  readonly entry: Uint8Array;
}

export interface FanoutMessage {
  readonly channels: readonly PublishedChannel[];
  readonly inbox: readonly PublishedInboxItem[];
  /** Devices whose party revoked them just now: every node drops its cached record and closes their sockets. */
  readonly revoked?: readonly DeviceId[];
}

export interface Fanout {
  publish(m: FanoutMessage): void;
  subscribe(listener: (m: FanoutMessage) => void): () => void;
  /**
   * Called when messages may have been lost (the transport between nodes reconnected): live
   * subscribers should re-read the store. In-process fan-out loses nothing and never calls it.
   */
  onResync?(listener: () => void): () => void;
  close(): Promise<void>;
}
