/** What the device persists per channel, besides its MLS state and the entries themselves. */
import {
  type ChannelEvent,
  type ChannelId,
  type DeviceId,
  decodeCanonical,
  encodeCanonical,
  type EventId,
  type PartyId,
  parseEvent,
  type Role,
  unwrap,
} from '@backchannel/protocol';

export interface ChannelRecord {
  readonly channel: ChannelId;
  /** The MLS epoch at which this device joined (it cannot read what came before). */
  readonly joinedEpoch: number;
  /** Next transcript sequence number to fetch. */
  readonly nextSeq: number;
  /**
   * The relay's time on the last entry applied: the next may not carry an earlier one (the relay
   * stamps times that never go back, PROTOCOL.md §6), so a relay cannot date an entry it appends
   * now before what it already logged. 0 before the first (and in records written before it).
   */
  readonly lastAt: number;
  /** Compact Merkle frontier of the transcript so far (RFC 9162 perfect subtree roots). */
  readonly frontier: readonly Uint8Array[];
  /** The last relay checkpoint this device verified against its own copy of the log. */
  readonly checkpoint: string | undefined;
  readonly checkpointSize: number;
  /** Set once this device was removed from the channel. */
  readonly removed: boolean;
  /** Post-compromise security: when this device last refreshed its MLS leaf, and messages since. */
  readonly lastUpdateAt: number;
  readonly sentSinceUpdate: number;
  /**
   * The latest epoch in which the log holds an application message of this device that its store
   * has no record of (a store restored from an older copy, or copied to a second machine): its
   * sender ratchet there may be behind what was already used, so the device refreshes its leaf
   * before it sends in that epoch (a send would reuse a key and nonce). -1: none.
   */
  readonly staleSenderEpoch: number;
  /**
   * The epoch of a commit of this device that the log holds and its store has no record of (a
   * store restored from a copy older than that commit): MLS gives the committer no way to process
   * its own commit, so this device cannot follow the group past it; it can neither read nor post
   * there any more (CHANNEL_STATE_LOST), and is replaced by a new device. -1: none.
   */
  readonly lostAtEpoch: number;
}

/**
 * A commit of this device written before it is posted (Channel.commit): the group state it leads
 * to and the Welcome it owes. A sync that meets the commit in the log adopts it; so a commit the
 * relay accepted whose answer never came (a timeout, a crash right after) is not lost to its own
 * device. A page that applies any commit deletes them all (adopted, or beaten to their epoch).
 */
export interface PendingCommit {
  readonly msgId: string;
  readonly epoch: number;
  readonly state: Uint8Array;
  /** The Welcome's outbox item, when the commit adds devices. */
  readonly welcome: { readonly id: string; readonly wire: Uint8Array } | undefined;
  /** When it was posted (this device's clock; 0 in records written before it was kept). */
  readonly postedAt: number;
}

/** The epoch a pending commit's key names (keys.pendingCommit). */
export function pendingCommitEpoch(key: string): number {
  return Number(key.split(':').at(-2));
}

export function encodePendingCommit(p: PendingCommit): Uint8Array {
  return encodeCanonical({
    msgId: p.msgId,
    epoch: p.epoch,
    state: p.state,
    welcomeId: p.welcome?.id ?? null,
    welcome: p.welcome?.wire ?? null,
    postedAt: p.postedAt,
  });
}

export function decodePendingCommit(b: Uint8Array): PendingCommit {
  const v = unwrap(decodeCanonical(b)) as Record<string, unknown>;
  return {
    msgId: v.msgId as string,
    epoch: v.epoch as number,
    state: v.state as Uint8Array,
    welcome:
      typeof v.welcomeId === 'string' && v.welcome instanceof Uint8Array
        ? { id: v.welcomeId, wire: v.welcome }
        : undefined,
    postedAt: typeof v.postedAt === 'number' ? v.postedAt : 0,
  };
}

/**
 * What an adopted commit of this device owes the devices it added: the join.context its caller
 * never got to send (Channel #discloseOwed). Written with the page that adopts the commit and
 * deleted with the write that queues the disclosure, so a stop between the two loses nothing.
 */
export interface OwedDisclosure {
  /** The commit's position in the log: what is disclosed is the timeline before it. */
  readonly seq: number;
  readonly add: readonly DeviceId[];
}

export function encodeOwedDisclosure(o: OwedDisclosure): Uint8Array {
  return encodeCanonical({ seq: o.seq, add: [...o.add] });
}

export function decodeOwedDisclosure(b: Uint8Array): OwedDisclosure | undefined {
  const v = decodeCanonical(b);
  if (!v.ok) return undefined;
  const o = v.value as Record<string, unknown>;
  if (typeof o.seq !== 'number' || !Array.isArray(o.add) || !o.add.every((d) => typeof d === 'string'))
    return undefined;
  return { seq: o.seq, add: o.add as DeviceId[] };
}

export function encodeChannelRecord(r: ChannelRecord): Uint8Array {
  return encodeCanonical({ ...r, frontier: [...r.frontier], checkpoint: r.checkpoint ?? null });
}

export function decodeChannelRecord(b: Uint8Array): ChannelRecord {
  const v = unwrap(decodeCanonical(b)) as Record<string, unknown>;
  return {
    channel: v.channel as ChannelId,
    joinedEpoch: v.joinedEpoch as number,
    nextSeq: v.nextSeq as number,
    lastAt: typeof v.lastAt === 'number' ? v.lastAt : 0,
    frontier: (v.frontier as Uint8Array[]) ?? [],
    checkpoint: typeof v.checkpoint === 'string' ? v.checkpoint : undefined,
    checkpointSize: (v.checkpointSize as number) ?? 0,
    removed: v.removed === true,
    lastUpdateAt: typeof v.lastUpdateAt === 'number' ? v.lastUpdateAt : 0,
    sentSinceUpdate: typeof v.sentSinceUpdate === 'number' ? v.sentSinceUpdate : 0,
    staleSenderEpoch: typeof v.staleSenderEpoch === 'number' ? v.staleSenderEpoch : -1,
    lostAtEpoch: typeof v.lostAtEpoch === 'number' ? v.lostAtEpoch : -1,
  };
}

/** One transcript position as this device understood it. */
export type EventRecord =
  | {
      readonly seq: number;
      readonly receivedAt: number;
      readonly sender: DeviceId;
      readonly party: PartyId;
      readonly role: Role;
      /**
       * `unchecked` (in a view, never stored): the event refers to one from before this device
       * joined, which it cannot read; it could not be checked against it and the device's state
       * does not count it. Not a refusal: the channel's other members may well have accepted it.
       */
      readonly status: 'ok' | 'rejected' | 'unchecked';
      /** For rejected events: the reducer's or verifier's code; for unchecked: REFERS_BEFORE_JOIN. */
      readonly code?: string;
      readonly event: ChannelEvent;
      readonly salt: Uint8Array;
      /** An entry before this device joined, disclosed to it by this member (join.ts). */
      readonly disclosedBy?: DeviceId;
      /** In a view: what the event refers to that this device cannot judge or does not know. */
      readonly refs?: References;
    }
  | {
      readonly seq: number;
      readonly receivedAt: number;
      readonly sender: DeviceId;
      readonly status: 'unreadable' | 'handshake';
      readonly code: string;
      /** An applied commit (COMMIT_APPLIED, OWN_COMMIT): the devices it added and removed, if any. */
      readonly devicesAdded?: readonly DeviceId[];
      readonly devicesRemoved?: readonly DeviceId[];
      /**
       * For BEFORE_JOIN: the id of the event the entry carries (its envelope's msgId, in the clear
       * and signed by its sender), so that later references to it are told from invalid ones.
       */
      readonly id?: EventId;
    };

/** The event ids an event refers to (a response's `to`, a receipt's `of`) this device cannot resolve. */
export interface References {
  /** Entries from before this device joined (its join epoch): their seqs. */
  readonly beforeJoin: readonly number[];
  readonly joinedEpoch: number;
  /** Ids no entry of the channel carries, as far as this device can tell. */
  readonly unknown: number;
}

function eventRecordOf(v: Record<string, unknown>): EventRecord {
  if (v.status === 'ok' || v.status === 'rejected' || v.status === 'unchecked') {
    return { ...(v as unknown as EventRecord), event: unwrap(parseEvent(v.event)) } as EventRecord;
  }
  return v as unknown as EventRecord;
}

/** The records of one applied page, stored as one value under keys.event(channel, first seq). */
export function encodeEventRecords(records: readonly EventRecord[]): Uint8Array {
  return encodeCanonical(records);
}

/** A page of records, or one record (stores written before pages kept one per seq). */
export function decodeEventRecords(b: Uint8Array): EventRecord[] {
  const v = unwrap(decodeCanonical(b, MAX_EVENT_PAGE_BYTES));
  return Array.isArray(v)
    ? v.map((r) => eventRecordOf(r as Record<string, unknown>))
    : [eventRecordOf(v as Record<string, unknown>)];
}

/** A page holds up to 1,000 records; our own sealed bytes, far below this. */
const MAX_EVENT_PAGE_BYTES = 256 << 20;

export const keys = {
  channel: (c: string) => `ch:${c}`,
  mls: (c: string) => `mls:${c}`,
  /** A commit of this device posted without an answer yet (PendingCommit), by its message id. */
  pendingCommit: (c: string, epoch: number, msgId: string) =>
    `pending:${c}:${String(epoch).padStart(12, '0')}:${msgId}`,
  pendingCommitPrefix: (c: string) => `pending:${c}:`,
  /** The join.context an adopted commit of this device owes the devices it added (OwedDisclosure). */
  owedDisclosure: (c: string, seq: number) => `owed:${c}:${String(seq).padStart(12, '0')}`,
  owedDisclosurePrefix: (c: string) => `owed:${c}:`,
  event: (c: string, seq: number) => `ev:${c}:${String(seq).padStart(12, '0')}`,
  eventPrefix: (c: string) => `ev:${c}:`,
  /** Events before this device joined, disclosed to it (join.ts): one record per key. */
  disclosed: (c: string, seq: number) => `disc:${c}:${String(seq).padStart(12, '0')}`,
  disclosedPrefix: (c: string) => `disc:${c}:`,
  own: (c: string, id: EventId | string) => `own:${c}:${id}`,
  identity: 'identity',
  /** The random id this installation redeemed its invite with (Backchannel.enroll). */
  installation: 'installation',
  /** Set while an enrollment has not redeemed its invite yet (Backchannel.enroll finishes it). */
  enrollmentPending: 'enrollment:pending',
  keyPackage: (n: number) => `kp:${String(n).padStart(8, '0')}`,
  keyPackagePrefix: 'kp:',
  card: (party: string) => `card:${party}`,
  cardPrefix: 'card:',
  /** The revocations of a party this device has verified (kept: a relay cannot make it forget one). */
  revocations: (party: string) => `rev:${party}`,
  revocationsPrefix: 'rev:',
  inboxCursor: 'inbox:cursor',
  relayKey: 'relay:vkey',
  /** The relay keys this device retired through rotation statements (JSON list, newest first). */
  relayRetiredKeys: 'relay:vkey:retired',
  receiptSent: (c: string, last: string) => `rcpt:${c}:${last}`,
  settings: 'settings',
} as const;
