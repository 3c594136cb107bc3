/**
 * The device's local store. Every value is sealed at rest (see sealed-box); implementations:
 * SQLite in Node (sqlite.node.ts), IndexedDB in browsers (with the web app).
 */
export interface StoredEntry {
  readonly seq: number;
  /** The transcript entry bytes exactly as the relay logged them. */
  readonly entry: Uint8Array;
}

/** Consecutive transcript entries of one channel. */
export interface ChannelEntries {
  readonly channel: string;
  readonly entries: readonly StoredEntry[];
}

export interface OutboxItem {
  readonly id: string;
  readonly channel: string;
  readonly createdAt: number;
  /** The signed envelope wire bytes, ready to (re)post. */
  readonly wire: Uint8Array;
}

/**
 * How durable a write must be before it resolves.
 * - `disk` (the default): on disk before it resolves; it survives a power loss.
 * - `process`: it survives a crash of the process (kill -9) but may not yet be on disk: a power
 *   loss or an OS crash can roll it back, together with every later `process` write and never an
 *   earlier `disk` one (SQLite's WAL keeps commits in order; a later `disk` write makes all
 *   before it durable). Only for what the relay serves again: received entries, the records and
 *   the MLS state derived from them, acknowledged outbox items (resent, the relay answers with
 *   the original receipt). Never for what this device sends (its MLS state before a post: a
 *   rolled-back sender ratchet would reuse keys), a checkpoint it saw, or fork evidence.
 */
export type Durability = 'disk' | 'process';

/**
 * Writes (put, appendEntries, outboxAdd, outboxRemove) take effect in the order they were called,
 * whatever their sealing takes: a write called after another never has its values overwritten by
 * it. Channel.sendMany relies on this (it frees the channel before its write commits, and the
 * next operation's MLS state must be the one that stays). A read after a write resolved sees it.
 */
export interface LocalStore {
  get(key: string): Promise<Uint8Array | undefined>;
  /**
   * Writes several records (undefined deletes), outbox items and transcript entries (as
   * appendEntries) atomically: all or nothing, `durability` 'disk' unless said otherwise.
   */
  put(
    records: ReadonlyArray<readonly [string, Uint8Array | undefined]>,
    outbox?: readonly OutboxItem[],
    entries?: ChannelEntries,
    durability?: Durability,
  ): Promise<void>;
  keys(prefix: string): Promise<string[]>;

  appendEntries(channel: string, entries: readonly StoredEntry[]): Promise<void>;
  entries(channel: string, fromSeq: number, limit: number): Promise<StoredEntry[]>;
  entryCount(channel: string): Promise<number>;

  outboxAdd(item: OutboxItem): Promise<void>;
  outboxList(): Promise<OutboxItem[]>;
  /**
   * Removes acknowledged outbox items, writing `records` in the same transaction (their relay
   * receipts), with 'process' durability (see Durability: a rolled-back removal is resent, and
   * the relay answers with the original receipt).
   */
  outboxRemove(ids: readonly string[], records?: ReadonlyArray<readonly [string, Uint8Array]>): Promise<void>;

  close(): void;
}
