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

export interface LocalStore {
  get(key: string): Promise<Uint8Array | undefined>;
  /**
   * Writes several records (undefined deletes), outbox items and transcript entries (as
   * appendEntries) atomically: all or nothing.
   */
  put(
    records: ReadonlyArray<readonly [string, Uint8Array | undefined]>,
    outbox?: readonly OutboxItem[],
    entries?: ChannelEntries,
  ): Promise<void>;
  keys(prefix: string): Promise<string[]>;

  appendEntries(channel: string, entries: readonly StoredEntry[]): Promise<void>;
  entries(channel: string, fromSeq: number, limit: number): Promise<StoredEntry[]>;
  entryCount(channel: string): Promise<number>;

  outboxAdd(item: OutboxItem): Promise<void>;
  outboxList(): Promise<OutboxItem[]>;
  /** Removes outbox items, writing `records` in the same transaction (e.g. their relay receipts). */
  outboxRemove(ids: readonly string[], records?: ReadonlyArray<readonly [string, Uint8Array]>): Promise<void>;

  close(): void;
}
