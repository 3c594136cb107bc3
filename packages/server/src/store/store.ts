/**
 * Storage behind one interface with typed read and write transactions. Every method is async
 * so a PostgreSQL implementation can pass the same contract suite (test/contract/) as SQLite.
 * A write transaction is atomic and durable when write() resolves; a read transaction sees one
 * committed snapshot.
 */
import type { ChannelId, DeviceId, PartyId, Role } from '@backchannel/protocol';
import type { NodeRef, StoredNode } from '@backchannel/protocol/transcript';

export interface CardRecord {
  readonly party: PartyId;
  readonly rootPublicKey: Uint8Array;
  /** The encoded, self-signed contact card. */
  readonly card: Uint8Array;
  readonly issuedAt: number;
}

export interface DeviceRecord {
  readonly device: DeviceId;
  readonly party: PartyId;
  readonly publicKey: Uint8Array;
  readonly role: Role;
  readonly notBefore: number;
  readonly notAfter: number;
  /** The encoded certificate, root-signed. */
  readonly certificate: Uint8Array;
  /** When the party revoked the device (ms), if it did. */
  readonly revokedAt: number | undefined;
}

export interface RevocationRecord {
  readonly party: PartyId;
  readonly device: DeviceId;
  readonly revokedAt: number;
  readonly revocation: Uint8Array;
}

/** The relay's state of one channel: MLS epoch (Delivery Service) and the Merkle log's right edge. */
export interface ChannelHead {
  readonly channel: ChannelId;
  /** The current epoch: the next commit must carry it. */
  readonly epoch: number;
  /** Entries in the log (= the next seq). */
  readonly size: number;
  /** Perfect-subtree roots of the right edge, largest first (protocol's TreeState.frontier). */
  readonly frontier: readonly Uint8Array[];
  /** receivedAt of the last entry (the log's clock never runs backwards). */
  readonly lastAt: number;
  readonly createdAt: number;
}

export interface MemberRecord {
  readonly channel: ChannelId;
  readonly device: DeviceId;
  readonly party: PartyId;
  /** Seq of the commit that added the device. */
  readonly addedSeq: number;
  /** Seq of the commit that removed it; a former member may read up to and including it. */
  readonly removedSeq: number | undefined;
}

export interface EntryRecord {
  readonly seq: number;
  readonly msgId: string;
  readonly sender: DeviceId;
  /** SHA-256 of the envelope wire bytes (idempotency: same msgId, same bytes). */
  readonly envelopeHash: Uint8Array;
  readonly receivedAt: number;
  /** The canonical LogEntry bytes: the Merkle leaf data. */
  readonly entry: Uint8Array;
}

export interface MessageRef {
  readonly seq: number;
  readonly envelopeHash: Uint8Array;
  readonly receivedAt: number;
}

export interface CheckpointRecord {
  readonly size: number;
  /** The relay-signed note (C2SP tlog-checkpoint). */
  readonly note: string;
  readonly issuedAt: number;
  /** Witness cosignature lines (C2SP tlog-cosignature) stored for this checkpoint. */
  readonly cosignatures: readonly string[];
}

export interface InboxItemRecord {
  readonly cursor: number;
  readonly channel: ChannelId;
  readonly seq: number;
  readonly entry: Uint8Array;
}

export interface ClaimedPackage {
  readonly keyPackage: Uint8Array;
  readonly lastResort: boolean;
}

/** The length of an entry of `n` bytes as base64url text (what a page of entries costs in JSON). */
export function entryTextBytes(n: number): number {
  return Math.ceil((n * 4) / 3);
}

/** How many of the leading entries (of these byte sizes) fit in `maxBytes`: at least one. */
export function entriesThatFit(sizes: readonly number[], maxBytes: number): number {
  let total = 0;
  for (let i = 0; i < sizes.length; i++) {
    total += entryTextBytes(sizes[i] as number);
    if (total > maxBytes) return Math.max(i, 1);
  }
  return sizes.length;
}

export interface ReadTx {
  getCard(party: PartyId): Promise<CardRecord | undefined>;
  getDevice(device: DeviceId): Promise<DeviceRecord | undefined>;
  listDevices(party: PartyId): Promise<DeviceRecord[]>;
  listRevocations(party: PartyId): Promise<RevocationRecord[]>;
  countKeyPackages(device: DeviceId): Promise<{ oneTime: number; lastResort: boolean }>;

  getChannel(channel: ChannelId): Promise<ChannelHead | undefined>;
  getMember(channel: ChannelId, device: DeviceId): Promise<MemberRecord | undefined>;
  /** Current and former members. */
  listMembers(channel: ChannelId): Promise<MemberRecord[]>;
  findMessage(channel: ChannelId, msgId: string): Promise<MessageRef | undefined>;
  /** findMessage for many ids at once (one round trip on a networked store); absent ids are left out. */
  findMessages(channel: ChannelId, msgIds: readonly string[]): Promise<Map<string, MessageRef>>;
  /**
   * Entries with from ≤ seq < min(from + limit, until), in seq order. With `maxBytes`, only as
   * many as fit in it, their entries counted as base64url text (entryTextBytes) — but at least one.
   */
  getEntries(
    channel: ChannelId,
    from: number,
    limit: number,
    until?: number,
    maxBytes?: number,
  ): Promise<EntryRecord[]>;
  /** Stored perfect-subtree hashes, in the order asked; a missing node is an error. */
  readNodes(channel: ChannelId, refs: readonly NodeRef[]): Promise<Uint8Array[]>;
  /** The checkpoint issued at exactly `size`, or the latest one when size is omitted. */
  getCheckpoint(channel: ChannelId, size?: number): Promise<CheckpointRecord | undefined>;
  /**
   * The first checkpoint issued at a size above `seq`: the one that first covered entry `seq`
   * (what its append was answered with). Without its cosignatures.
   */
  getCheckpointAfter(
    channel: ChannelId,
    seq: number,
  ): Promise<Omit<CheckpointRecord, 'cosignatures'> | undefined>;
  /**
   * The party inbox after a cursor, oldest first. With `device`: without the items of a channel
   * logged after that device's removal from it (a former member sees nothing past its removal).
   */
  getInbox(party: PartyId, after: number, limit: number, device?: DeviceId): Promise<InboxItemRecord[]>;
}

export interface WriteTx extends ReadTx {
  /**
   * Serializes writers of these channels until the transaction ends (a shared store: one
   * writer per channel across relay nodes; an embedded one already has a single writer).
   * Call it once, first, with every channel the transaction will append to. `readAhead` names
   * the msgIds the caller will look up next per channel: a networked store may read them and the
   * channel heads in the same round trip as the lock (answering the next getChannel/findMessages).
   */
  lockChannels(
    channels: readonly ChannelId[],
    readAhead?: ReadonlyMap<ChannelId, readonly string[]>,
  ): Promise<void>;
  /**
   * These devices' records as committed now (absent ones left out), held against change until the
   * transaction ends: on a shared store, a revocation or re-registration of one of them waits for
   * this transaction, so what it appends is ordered before that change, and one under way is
   * waited for and seen (an embedded store has one writer already). One round trip for all.
   */
  shareDevices(devices: readonly DeviceId[]): Promise<Map<DeviceId, DeviceRecord>>;
  /**
   * Holds these devices' records for a change until the transaction ends (putDevice and
   * putRevocation hold their own device): call it first in a transaction that changes several,
   * so that its locks are taken in the one global order and never wait on another's in a cycle.
   */
  lockDevices(devices: readonly DeviceId[]): Promise<void>;
  putCard(rec: CardRecord): Promise<void>;
  /** Inserts or replaces the device (its revocation, once set, is kept). */
  putDevice(rec: Omit<DeviceRecord, 'revokedAt'>): Promise<void>;
  /**
   * Records the revocation — one per (device, party): the earliest revokedAt wins — and marks the
   * device revoked if it is registered under that party (or when it registers under it later).
   */
  putRevocation(rec: RevocationRecord): Promise<void>;
  /** Adds one-time key packages and, when given, replaces the device's last-resort package. */
  addKeyPackages(device: DeviceId, oneTime: readonly Uint8Array[], lastResort?: Uint8Array): Promise<void>;
  /** Takes one key package: a one-time one (deleted) or else the last-resort one (kept). */
  takeKeyPackage(device: DeviceId): Promise<ClaimedPackage | undefined>;
  /**
   * Records that `installation` redeemed the device's invite at `at`, unless one already did:
   * returns the installation recorded first, and when (the first claim wins).
   */
  claimEnrollment(
    device: DeviceId,
    installation: Uint8Array,
    at: number,
  ): Promise<{ installation: Uint8Array; at: number }>;

  /** Inserts or updates a channel head. */
  putChannel(head: ChannelHead): Promise<void>;
  putMember(rec: MemberRecord): Promise<void>;
  appendEntry(channel: ChannelId, rec: EntryRecord): Promise<void>;
  putNodes(channel: ChannelId, nodes: readonly StoredNode[]): Promise<void>;
  putCheckpoint(channel: ChannelId, rec: Omit<CheckpointRecord, 'cosignatures'>): Promise<void>;
  /**
   * Serializes writers of one checkpoint's cosignatures until the transaction ends (a shared
   * store: the caps on them are checked under it; an embedded one has a single writer already).
   */
  lockCheckpoint(channel: ChannelId, size: number): Promise<void>;
  /** How many cosignature lines of a checkpoint `party` attached. */
  countCosignatures(channel: ChannelId, size: number, party: PartyId): Promise<number>;
  /** Stores a cosignature line once, attributed to the party that attached it; false when it was already there. */
  addCosignature(channel: ChannelId, size: number, line: string, party: PartyId): Promise<boolean>;
  /** Appends an item to a party's inbox; returns its cursor (increasing). */
  addInboxItem(party: PartyId, channel: ChannelId, seq: number): Promise<number>;
}

export interface Store {
  readonly kind: 'sqlite' | 'postgres';
  /**
   * True when other relay nodes may write the same database: state cached between
   * transactions (channel heads, members) must be re-read under lockChannels(), and senders'
   * device records under shareDevices().
   */
  readonly shared: boolean;
  /**
   * True when write() hands the next transaction its turn as soon as fn has returned, while this
   * one's commit is still under way (the embedded store's writer thread): transactions then
   * commit in the order they were written, and if one fails, every one queued behind it fails
   * too. A caller may keep state across them (the appender does) without waiting for each commit.
   */
  readonly pipelined?: boolean;
  /**
   * With a shared store: records that a signed request (device, signature) was accepted, for the
   * whole cluster. False when some node already recorded it (a replay). Rows signed before
   * `forgetBefore` may be dropped: the time check refuses them anyway.
   */
  claimRequest?(device: DeviceId, sig: string, signedAt: number, forgetBefore: number): Promise<boolean>;
  /** False when the store can no longer write (the embedded store's writer thread died). */
  readonly healthy?: boolean;
  read<T>(fn: (tx: ReadTx) => Promise<T>): Promise<T>;
  /** Runs fn in one atomic, durable transaction (rolled back if fn throws). */
  write<T>(fn: (tx: WriteTx) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}
